//! Per-scan hit counts: entry number → occurrences.
//!
//! An open-addressing table with linear probing, keyed by entry number
//! plus one (zero marks an empty slot) and doubled when half full, so a
//! probe sequence stays short. A count is one multiply and, almost always,
//! one slot; a general map costs several times that, and a scan of dense
//! text counts a hit every few dozen bytes.
//!
//! Counts go through a short queue first: when it is full, the slots of a
//! few entries ahead are prefetched while each is counted, so that on a
//! table larger than the caches the misses overlap (a dense text against a
//! large library counts tens of thousands of distinct entries).
//!
//! # Invariants
//!
//! * `slots.len()` is a power of two and more than twice `used.len()`;
//! * `queue` holds at most [`QUEUE`] entries, counted before any result is
//!   read;
//! * `used` lists exactly the occupied slots, so clearing after a scan
//!   touches only them: a short text scanned after a long one costs no more
//!   than it would alone. Memory stays at the most distinct entries one
//!   scan has counted (16 bytes each, at most the library's entries).

use super::scan::Hit;

pub struct Tally {
    /// `(entry + 1, count)`; `(0, 0)` is empty.
    slots: Vec<(u32, u32)>,
    used: Vec<u32>,
    shift: u32,
    /// Entries not yet counted.
    queue: Vec<u32>,
}

/// Entries queued before they are counted.
const QUEUE: usize = 256;
/// How far ahead in the queue slots are prefetched.
const AHEAD: usize = 8;

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
            queue: Vec::with_capacity(QUEUE),
        }
    }

    #[inline(always)]
    fn home(&self, key: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B1) >> self.shift) as usize
    }

    /// Counts one occurrence of `entry` (below `u32::MAX`).
    #[inline]
    pub fn add(&mut self, entry: u32) {
        self.queue.push(entry);
        if self.queue.len() >= QUEUE {
            self.flush();
        }
    }

    /// Counts the queued entries.
    fn flush(&mut self) {
        let queue = std::mem::take(&mut self.queue);
        for (j, &entry) in queue.iter().enumerate() {
            if let Some(&ahead) = queue.get(j + AHEAD) {
                let home = self.home(ahead.wrapping_add(1));
                super::index::prefetch(self.slots.as_ptr().wrapping_add(home) as usize);
            }
            self.count(entry);
        }
        self.queue = queue;
        self.queue.clear();
    }

    #[inline]
    fn count(&mut self, entry: u32) {
        let key = entry.wrapping_add(1);
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let Some(s) = self.slots.get_mut(i) else {
                return;
            };
            if s.0 == key {
                s.1 += 1;
                return;
            }
            if s.0 == 0 {
                *s = (key, 1);
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
        // Called from `flush`, which holds the queue meanwhile.
        let old = std::mem::replace(self, Tally::with_bits(33 - self.shift));
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

    /// Appends every counted entry to `out` (in no particular order) and
    /// empties the tally.
    pub fn drain_into(&mut self, out: &mut Vec<Hit>) {
        self.flush();
        self.empty(|h| out.push(h));
    }

    /// Forgets every count.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.empty(|_| {});
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
        t.drain_into(&mut out);
        out.sort_unstable();
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
}
