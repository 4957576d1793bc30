//! Per-scan hit counts: entry number → occurrences.
//!
//! Each hit is first appended to a queue of entry numbers. When the scan
//! ends, the queue is sorted (a least-significant-digit radix sort) and
//! each run of one entry becomes a [`Hit`]: already in entry order, which
//! the scan's result needs anyway. A hash per hit cost more: a dense text
//! against a large library counts tens of thousands of distinct entries,
//! whose slots lie past the caches, while the batched scan reports its
//! entries nearly in order, so sorting them reads and writes in sweeps
//! (the whole 4 MiB scan at a million strings 4–7 % faster).
//!
//! A queue that reaches [`QUEUE`] entries is folded into an
//! open-addressing table with linear probing, keyed by entry number plus
//! one (zero marks an empty slot) and doubled when half full: sorted, and
//! counted one slot per run. Only a scan with that many hits pays for it.
//!
//! The first entries (those below [`Tally::start`]'s bound: the
//! library's strings of one to three bytes, which the index numbers
//! first) skip the queue: each has a counter of its own. They are few and
//! found often (single CJK characters, symbols: 40 % of the hits of the
//! benchmark's text at a million strings, from 519 entries), and sorting
//! every one of their hits cost a scan of 4 MiB 0.5 ms of its 1.3 ms of
//! counting.
//!
//! # Invariants
//!
//! * an entry below `direct.len()` is counted in `direct` only; `touched`
//!   lists, once each, the entries whose counter is not zero, and every
//!   other counter is zero;
//! * `queue` holds at most [`QUEUE`] entries; every other hit is either in
//!   it or counted in `slots`, never both;
//! * `slots.len()` is a power of two and more than twice `used.len()`;
//! * `used` lists exactly the occupied slots, so clearing after a scan
//!   touches only them: a short text scanned after a long one costs no more
//!   than it would alone.
//!
//! Memory: the queue and the sort's second buffer, 4 bytes per hit each,
//! at most [`QUEUE`] hits (2 MiB in all); the table, 8 bytes per slot, at
//! most four slots per distinct entry of a scan that folded; the direct
//! counters and their list, 8 bytes per entry, at most [`DIRECT_MAX`]
//! entries (512 KiB). All are kept for the next scan.

use super::scan::Hit;

pub struct Tally {
    /// `(entry + 1, count)`; `(0, 0)` is empty.
    slots: Vec<(u32, u32)>,
    used: Vec<u32>,
    shift: u32,
    /// Entries not yet counted, in the order they were found.
    queue: Vec<u32>,
    /// The radix sort's second buffer.
    spare: Vec<u32>,
    /// A counter for each entry below its length, and the entries whose
    /// counter is not zero.
    direct: Vec<u32>,
    touched: Vec<u32>,
}

/// Most entries counted directly (see [`Tally::start`]).
pub const DIRECT_MAX: usize = 1 << 16;

/// Hits queued before they are folded into the table.
const QUEUE: usize = 1 << 18;

impl Default for Tally {
    fn default() -> Tally {
        Tally::with_bits(10)
    }
}

impl Tally {
    fn with_bits(bits: u32) -> Tally {
        Tally {
            slots: vec![(0, 0); 1 << bits],
            used: Vec::new(),
            shift: 32 - bits,
            queue: Vec::new(),
            spare: Vec::new(),
            direct: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Forgets every count, and from now on counts the entries below
    /// `direct` (at most [`DIRECT_MAX`]) each in a counter of its own. The
    /// counters are kept when `direct` is the same as last time.
    pub fn start(&mut self, direct: usize) {
        self.clear();
        let n = direct.min(DIRECT_MAX);
        if self.direct.len() != n {
            self.direct.clear();
            self.direct.resize(n, 0);
        }
    }

    #[inline(always)]
    fn home(&self, key: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B1) >> self.shift) as usize
    }

    /// Counts one occurrence of `entry` (below `u32::MAX`).
    #[inline]
    pub fn add(&mut self, entry: u32) {
        if let Some(c) = self.direct.get_mut(entry as usize) {
            if *c == 0 {
                self.touched.push(entry);
            }
            *c += 1;
            return;
        }
        self.queue.push(entry);
        if self.queue.len() >= QUEUE {
            self.fold();
        }
    }

    /// Sorts the queue and hands `f` each entry with its count, in entry
    /// order; leaves the queue empty.
    fn runs(&mut self, mut f: impl FnMut(&mut Self, u32, u32)) {
        let mut queue = std::mem::take(&mut self.queue);
        radix_sort(&mut queue, &mut self.spare, |&e| e);
        let mut rest = &queue[..];
        while let Some(&e) = rest.first() {
            let k = rest.iter().position(|&x| x != e).unwrap_or(rest.len());
            f(self, e, k as u32);
            rest = &rest[k..];
        }
        queue.clear();
        self.queue = queue;
    }

    /// Counts the queued entries in the table.
    fn fold(&mut self) {
        self.runs(|t, entry, n| t.count(entry, n));
    }

    fn count(&mut self, entry: u32, n: u32) {
        let key = entry.wrapping_add(1);
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let Some(s) = self.slots.get_mut(i) else {
                return;
            };
            if s.0 == key {
                s.1 += n;
                return;
            }
            if s.0 == 0 {
                *s = (key, n);
                self.used.push(i as u32);
                if self.used.len() * 2 > self.slots.len() {
                    self.grow();
                }
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let mut bigger = Tally::with_bits(33 - self.shift);
        // The queue and the sort's buffer go along, with their capacity.
        std::mem::swap(&mut bigger.queue, &mut self.queue);
        std::mem::swap(&mut bigger.spare, &mut self.spare);
        let old = std::mem::replace(self, bigger);
        for &i in &old.used {
            let (key, count) = old.slots[i as usize];
            let mask = self.slots.len() - 1;
            let mut j = self.home(key);
            while self.slots[j].0 != 0 {
                j = (j + 1) & mask;
            }
            self.slots[j] = (key, count);
            self.used.push(j as u32);
        }
    }

    /// Appends every counted entry to `out` and empties the tally. Returns
    /// whether `out` came out sorted by entry: always, unless the scan had
    /// more than [`QUEUE`] hits.
    pub fn drain_into(&mut self, out: &mut Vec<Hit>) -> bool {
        // The direct entries come first: they are the lowest.
        self.touched.sort_unstable();
        self.empty_direct(|h| out.push(h));
        if self.used.is_empty() {
            self.runs(|_, entry, count| out.push(Hit { entry, count }));
            return true;
        }
        self.fold();
        self.empty(|h| out.push(h));
        false
    }

    /// Forgets every count.
    fn clear(&mut self) {
        self.queue.clear();
        self.empty_direct(|_| {});
        self.empty(|_| {});
    }

    /// Hands every entry counted directly to `f`, in the order of
    /// `touched`, and zeroes its counter.
    fn empty_direct(&mut self, mut f: impl FnMut(Hit)) {
        for &entry in &self.touched {
            if let Some(c) = self.direct.get_mut(entry as usize) {
                f(Hit { entry, count: *c });
                *c = 0;
            }
        }
        self.touched.clear();
    }

    /// Hands every counted entry to `f` and clears its slot.
    fn empty(&mut self, mut f: impl FnMut(Hit)) {
        for &i in &self.used {
            if let Some(s) = self.slots.get_mut(i as usize) {
                f(Hit {
                    entry: s.0.wrapping_sub(1),
                    count: s.1,
                });
                *s = (0, 0);
            }
        }
        self.used.clear();
    }
}

/// Below this many items, [`radix_sort`] sorts by comparisons.
const RADIX_MIN: usize = 512;
/// Bits of the key per radix pass.
const DIGIT: u32 = 11;

/// Sorts `v` by `key`, using `spare` as the second buffer; items of equal
/// keys may change places (both callers' are identical or do not occur).
/// Short slices are sorted by comparisons; longer ones by a least-
/// significant-digit radix sort over the bits the largest key needs (two
/// passes below 2^22), which for tens of thousands of items took under
/// half the instructions of a comparison sort.
pub(crate) fn radix_sort<T: Copy>(v: &mut Vec<T>, spare: &mut Vec<T>, key: impl Fn(&T) -> u32) {
    if v.len() < RADIX_MIN {
        v.sort_unstable_by_key(&key);
        return;
    }
    let Some(&fill) = v.first() else {
        return;
    };
    let max = v.iter().map(&key).max().unwrap_or(0);
    let bits = u32::BITS - max.leading_zeros();
    let mut shift = 0;
    while shift < bits {
        let digit = |x: &T| ((key(x) >> shift) & ((1 << DIGIT) - 1)) as usize;
        let mut starts = [0usize; 1 << DIGIT];
        for x in v.iter() {
            starts[digit(x)] += 1;
        }
        let mut at = 0;
        for s in starts.iter_mut() {
            (*s, at) = (at, at + *s);
        }
        // Every item is written below: the old ones need no clearing.
        spare.resize(v.len(), fill);
        for x in v.iter() {
            let d = digit(x);
            if let Some(slot) = spare.get_mut(starts[d]) {
                *slot = *x;
            }
            starts[d] += 1;
        }
        std::mem::swap(v, spare);
        shift += DIGIT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_many_entries_through_growth_and_clears_between_scans() {
        let mut t = Tally::default();
        let mut want = std::collections::BTreeMap::new();
        // Entries spread wide and close together, zero and the largest.
        let entries: Vec<u32> = (0..5000u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 100_000)
            .chain([0, u32::MAX - 2, 1, 1])
            .collect();
        for (k, &e) in entries.iter().enumerate() {
            for _ in 0..=(k % 3) {
                t.add(e);
                *want.entry(e).or_insert(0u32) += 1;
            }
        }
        let mut out = Vec::new();
        assert!(t.drain_into(&mut out), "under QUEUE hits come out sorted");
        assert!(out.is_sorted_by_key(|h| h.entry));
        let got: Vec<(u32, u32)> = out.iter().map(|h| (h.entry, h.count)).collect();
        let want: Vec<(u32, u32)> = want.into_iter().collect();
        assert_eq!(got, want);
        // Drained: the next scan starts from nothing.
        t.add(7);
        out.clear();
        t.drain_into(&mut out);
        assert_eq!(out, [Hit { entry: 7, count: 1 }]);
        t.add(9);
        t.clear();
        out.clear();
        t.drain_into(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_scan_with_more_hits_than_the_queue_folds_them_and_loses_none() {
        let mut t = Tally::default();
        let mut want = std::collections::BTreeMap::new();
        // Three queues' worth and a bit: folded three times, the rest
        // queued at the drain; entry 5 is in every part.
        let hits = 3 * QUEUE + 1000;
        for k in 0..hits {
            let e = if k % 7 == 0 {
                5
            } else {
                (k as u32).wrapping_mul(40_503) % 70_001
            };
            t.add(e);
            *want.entry(e).or_insert(0u32) += 1;
        }
        let mut out = Vec::new();
        assert!(!t.drain_into(&mut out), "a folded tally drains unsorted");
        out.sort_unstable();
        let got: Vec<(u32, u32)> = out.iter().map(|h| (h.entry, h.count)).collect();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        // Emptied, table and queue: the next scan is counted alone.
        t.add(3);
        t.add(3);
        out.clear();
        assert!(t.drain_into(&mut out));
        assert_eq!(out, [Hit { entry: 3, count: 2 }]);
    }

    #[test]
    fn low_entries_are_counted_directly_and_come_first() {
        let mut t = Tally::default();
        t.start(10);
        let mut want = std::collections::BTreeMap::new();
        for k in 0..3000u32 {
            // Entries on both sides of the bound, in no order.
            let e = k.wrapping_mul(2_654_435_761) % 40;
            t.add(e);
            *want.entry(e).or_insert(0u32) += 1;
        }
        assert_eq!(t.touched.len(), 10);
        let mut out = Vec::new();
        assert!(t.drain_into(&mut out));
        let got: Vec<(u32, u32)> = out.iter().map(|h| (h.entry, h.count)).collect();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        assert!(t.direct.iter().all(|&c| c == 0) && t.touched.is_empty());
        // A started tally forgets its direct counts; a new bound starts
        // from zero.
        t.add(3);
        t.start(5);
        t.add(3);
        t.add(7);
        out.clear();
        assert!(t.drain_into(&mut out));
        assert_eq!(
            out,
            [Hit { entry: 3, count: 1 }, Hit { entry: 7, count: 1 }]
        );
        // The bound is capped.
        t.start(usize::MAX);
        assert_eq!(t.direct.len(), DIRECT_MAX);
    }

    #[test]
    fn radix_sort_agrees_with_a_comparison_sort() {
        let mut spare = Vec::new();
        for n in [0, 1, 511, 512, 5000] {
            let mut v: Vec<u32> = (0..n as u32)
                .map(|i| i.wrapping_mul(2_654_435_761) >> (i % 13))
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            radix_sort(&mut v, &mut spare, |&x| x);
            assert_eq!(v, want, "{n} items");
        }
    }
}
