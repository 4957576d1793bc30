//! The counters of one kind of key (client addresses, logins or senders),
//! with a fixed maximum of keys.
//!
//! # Layout
//!
//! Keys are 64-bit keyed hashes (the store hashes the canonical key with a
//! per-process random key; two keys share counters with probability about
//! `n² / 2⁶⁵`, 3·10⁻⁸ at a million keys). Key `i` owns row `i` of three
//! parallel arrays — its hash, its last touch (seconds since the table's
//! origin) and `stride` words of counters: a ring of `B` buckets per
//! counting limit (`super::window`) and [`WORDS`] words per distinct limit
//! (`super::distinct`). A `hashbrown` table maps hashes to rows. Only the
//! limits of this kind of key take room: a table without limits counts
//! nothing and holds nothing.
//!
//! # Bounded memory and eviction
//!
//! The table never holds more than `max_keys` rows, and its arrays never
//! grow past `max_keys` rows. A new key in a full table takes the row of
//! a victim: [`SAMPLES`] rows drawn at random, the one whose highest
//! `count / max` over the limits is smallest, the longest idle among equals.
//! Keys over or near a limit have the highest ratios, so a flood of new
//! keys (each with one connection) evicts its own kind, and a key at half
//! its limit is evicted only if all the sampled rows are at half their
//! limits or more: with 1 % of the rows that close, about once in 10¹⁶
//! evictions. Expired keys (all counts zero) are the first to go.
//!
//! # Costs
//!
//! Per key: 8 (hash) + 4 (last touch) + 4 × `stride` bytes, about 10 bytes
//! in the hash index (4-byte row plus a control byte at ⅞ load, rounded
//! to a power of two), and 128 bytes per distinct limit whose count went
//! past [`distinct::EXACT`]. [`Table::worst_case_bytes`] gives the bound for
//! a configuration. A touch advances every ring of the key (`stride` words)
//! and costs one hash lookup; an eviction reads `SAMPLES` rows.

use std::sync::Arc;

use hashbrown::HashTable;

use super::distinct::{self, Pool, WORDS};
use super::limits::{KeyKind, Metric, Rule, Trip};
use super::window;

/// Rows examined per eviction.
pub const SAMPLES: usize = 8;

/// One operation on a key's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Add to a counting metric.
    Add(Metric, u32),
    /// Record an item (fingerprint) for a distinct metric.
    Item(Metric, u32),
}

impl Op {
    fn metric(self) -> Metric {
        match self {
            Op::Add(m, _) | Op::Item(m, _) => m,
        }
    }
}

/// Where a limit's counters sit in a row.
#[derive(Clone, Debug)]
struct Slot {
    rule: Arc<Rule>,
    offset: usize,
    /// Ring length or distinct window, in buckets.
    buckets: u64,
    resolution: u64,
}

impl Slot {
    fn width(&self) -> usize {
        if self.rule.metric.is_distinct() {
            WORDS
        } else {
            self.buckets as usize
        }
    }
}

/// The counters of one kind of key.
#[derive(Debug)]
pub struct Table {
    kind: KeyKind,
    slots: Vec<Slot>,
    stride: usize,
    max_keys: usize,
    hashes: Vec<u64>,
    last: Vec<u32>,
    words: Vec<u32>,
    index: HashTable<u32>,
    pool: Pool,
    /// Seconds since the epoch at second 0 of the table.
    origin: u64,
    /// The latest second seen (the clock never goes back here).
    now: u32,
    rng: u64,
    evictions: u64,
}

fn slots_for(kind: KeyKind, rules: &[Arc<Rule>]) -> (Vec<Slot>, usize) {
    let mut slots = Vec::new();
    let mut offset = 0;
    for r in rules.iter().filter(|r| r.key == kind) {
        let s = Slot {
            rule: r.clone(),
            offset,
            buckets: u64::from(r.ring()),
            resolution: u64::from(r.resolution()),
        };
        offset += s.width();
        slots.push(s);
    }
    (slots, offset)
}

impl Table {
    /// A table for the limits in `rules` whose key is `kind`, holding at
    /// most `max_keys` keys; `origin` is the current time in seconds.
    pub fn new(kind: KeyKind, rules: &[Arc<Rule>], max_keys: usize, origin: u64) -> Table {
        let (slots, stride) = slots_for(kind, rules);
        let distinct = slots.iter().filter(|s| s.rule.metric.is_distinct()).count();
        Table {
            kind,
            slots,
            stride,
            max_keys: max_keys.max(1),
            hashes: Vec::new(),
            last: Vec::new(),
            words: Vec::new(),
            index: HashTable::new(),
            pool: Pool::new(max_keys.saturating_mul(distinct)),
            origin,
            now: 0,
            rng: origin | 1,
            evictions: 0,
        }
    }

    /// Whether any limit counts this kind of key.
    pub fn is_active(&self) -> bool {
        self.stride > 0
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Bytes held now.
    pub fn memory_bytes(&self) -> usize {
        self.hashes.capacity() * 8
            + self.last.capacity() * 4
            + self.words.capacity() * 4
            + self.index.allocation_size()
            + self.pool.memory_bytes()
    }

    /// The most this table can hold for `rules` and `max_keys`.
    pub fn worst_case_bytes(kind: KeyKind, rules: &[Arc<Rule>], max_keys: usize) -> usize {
        let (slots, stride) = slots_for(kind, rules);
        if stride == 0 {
            return 0;
        }
        let distinct = slots.iter().filter(|s| s.rule.metric.is_distinct()).count();
        // hashbrown keeps ⅞ of its buckets usable and, when deleted
        // entries fill a table more than half full, doubles it once.
        let buckets = (max_keys.saturating_mul(16).div_ceil(7))
            .next_power_of_two()
            .max(8);
        max_keys.saturating_mul(12 + 4 * stride + distinct * (distinct::SKETCH + 4))
            + buckets * 5
            + 64
    }

    fn rel(&mut self, now: u64) -> u32 {
        let rel = u32::try_from(now.saturating_sub(self.origin)).unwrap_or(u32::MAX);
        self.now = self.now.max(rel);
        self.now
    }

    fn row(&self, i: usize) -> &[u32] {
        &self.words[i * self.stride..(i + 1) * self.stride]
    }

    /// Brings every counter of row `i` to the current second.
    fn advance(&mut self, i: usize) {
        let now = u64::from(self.now);
        let last = u64::from(self.last[i]);
        let stride = self.stride;
        let row = &mut self.words[i * stride..(i + 1) * stride];
        for s in &self.slots {
            let w = &mut row[s.offset..s.offset + s.width()];
            let (l, n) = (last / s.resolution, now / s.resolution);
            if s.rule.metric.is_distinct() {
                distinct::advance(w, &mut self.pool, s.buckets, l, n);
            } else {
                window::advance(w, l, n);
            }
        }
        self.last[i] = self.now;
    }

    fn count(&self, i: usize, s: &Slot) -> u64 {
        let w = &self.row(i)[s.offset..s.offset + s.width()];
        if s.rule.metric.is_distinct() {
            distinct::count(w, &self.pool)
        } else {
            window::sum(w)
        }
    }

    /// How close row `i` is to its nearest limit (its counts must be
    /// current).
    fn importance(&self, i: usize) -> f64 {
        self.slots
            .iter()
            .map(|s| self.count(i, s) as f64 / (s.rule.max.max(1)) as f64)
            .fold(0.0, f64::max)
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: sampling needs spread, not secrecy.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The row of `hash`, created (evicting another key when full) if
    /// absent, advanced to now.
    fn touch(&mut self, hash: u64) -> usize {
        let hashes = &self.hashes;
        if let Some(&i) = self.index.find(hash, |&i| hashes[i as usize] == hash) {
            let i = i as usize;
            self.advance(i);
            return i;
        }
        let i = if self.hashes.len() < self.max_keys {
            let i = self.hashes.len();
            self.grow();
            self.hashes.push(hash);
            self.last.push(self.now);
            self.words.extend(std::iter::repeat_n(0, self.stride));
            i
        } else {
            let victim = self.victim();
            let old = self.hashes[victim];
            if let Ok(e) = self.index.find_entry(old, |&r| r as usize == victim) {
                e.remove();
            }
            // Give back the victim's sketches.
            self.last[victim] = 0;
            let now = self.now;
            self.now = u32::MAX;
            self.advance(victim);
            self.now = now;
            self.hashes[victim] = hash;
            self.last[victim] = self.now;
            self.evictions += 1;
            victim
        };
        let stride = self.stride;
        let row = &mut self.words[i * stride..(i + 1) * stride];
        row.fill(0);
        for s in &self.slots {
            if s.rule.metric.is_distinct() {
                distinct::init(&mut row[s.offset..s.offset + WORDS]);
            }
        }
        let hashes = &self.hashes;
        self.index
            .insert_unique(hash, i as u32, |&r| hashes[r as usize]);
        i
    }

    /// Reserves room for one more row, doubling up to `max_keys` rows.
    fn grow(&mut self) {
        if self.hashes.len() < self.hashes.capacity() {
            return;
        }
        let rows = (self.hashes.len() * 2).max(64).min(self.max_keys);
        let more = rows - self.hashes.len();
        self.hashes.reserve_exact(more);
        self.last.reserve_exact(more);
        self.words.reserve_exact(more * self.stride);
    }

    fn victim(&mut self) -> usize {
        let mut best = (f64::INFINITY, u32::MAX, 0usize);
        for _ in 0..SAMPLES {
            let i = (self.random() % self.hashes.len() as u64) as usize;
            self.advance(i);
            let cand = (self.importance(i), self.last[i], i);
            if cand.0 < best.0 || (cand.0 == best.0 && cand.1 < best.1) {
                best = cand;
            }
        }
        best.2
    }

    /// Applies `ops` to key `hash` at `now` (seconds since the epoch) and
    /// appends to `out` each limit over its maximum among those whose
    /// metric was changed, or all of this kind's limits when `check_all`.
    pub fn observe(
        &mut self,
        now: u64,
        hash: u64,
        ops: &[Op],
        check_all: bool,
        out: &mut Vec<Trip>,
    ) {
        if !self.is_active() {
            return;
        }
        self.rel(now);
        let i = self.touch(hash);
        let epoch_now = u64::from(self.now);
        let stride = self.stride;
        for op in ops {
            for s in &self.slots {
                if s.rule.metric != op.metric() {
                    continue;
                }
                let w = &mut self.words[i * stride + s.offset..i * stride + s.offset + s.width()];
                let e = epoch_now / s.resolution;
                match *op {
                    Op::Add(_, n) => window::add(w, e, n),
                    Op::Item(_, fp) => distinct::add(w, &mut self.pool, fp, e),
                }
            }
        }
        for s in &self.slots {
            if !check_all && !ops.iter().any(|o| o.metric() == s.rule.metric) {
                continue;
            }
            let count = self.count(i, s);
            if count > s.rule.max {
                out.push(Trip {
                    rule: s.rule.clone(),
                    count,
                });
            }
        }
    }

    /// The count of each limit of this kind for key `hash` at `now`
    /// (seconds since the epoch), without adding the key: whether it is
    /// tracked, and each limit with its count (zero when untracked).
    pub fn inspect(&mut self, now: u64, hash: u64) -> (bool, Vec<(Arc<Rule>, u64)>) {
        let hashes = &self.hashes;
        let row = self
            .index
            .find(hash, |&i| hashes[i as usize] == hash)
            .map(|&i| i as usize);
        if let Some(i) = row {
            self.rel(now);
            self.advance(i);
        }
        let counts = self
            .slots
            .iter()
            .map(|s| (s.rule.clone(), row.map_or(0, |i| self.count(i, s))))
            .collect();
        (row.is_some(), counts)
    }

    /// Forgets key `hash` and its counters (an administrator's reset);
    /// returns whether it was tracked. The last row moves into its place.
    pub fn remove(&mut self, hash: u64) -> bool {
        let hashes = &self.hashes;
        let Ok(e) = self.index.find_entry(hash, |&i| hashes[i as usize] == hash) else {
            return false;
        };
        let i = e.remove().0 as usize;
        // Give back the row's sketches, as an eviction does.
        self.last[i] = 0;
        let now = self.now;
        self.now = u32::MAX;
        self.advance(i);
        self.now = now;
        let last = self.hashes.len() - 1;
        if i != last {
            let moved = self.hashes[last];
            self.hashes[i] = moved;
            self.last[i] = self.last[last];
            let stride = self.stride;
            self.words
                .copy_within(last * stride..(last + 1) * stride, i * stride);
            if let Ok(mut e) = self.index.find_entry(moved, |&r| r as usize == last) {
                *e.get_mut() = i as u32;
            }
        }
        self.hashes.pop();
        self.last.pop();
        self.words.truncate(last * self.stride);
        true
    }

    /// A table for new limits that keeps the counters of the limits that
    /// count the same thing the same way, for as many keys as fit.
    pub fn reconfigured(mut self, rules: &[Arc<Rule>], max_keys: usize) -> Table {
        let mut new = Table::new(self.kind, rules, max_keys, self.origin);
        new.now = self.now;
        new.rng = self.rng;
        if !new.is_active() {
            return new;
        }
        let same_layout = new.max_keys == self.max_keys
            && new.slots.len() == self.slots.len()
            && new
                .slots
                .iter()
                .zip(&self.slots)
                .all(|(a, b)| a.rule.same_counter(&b.rule));
        if same_layout {
            self.slots = new.slots;
            return self;
        }
        let pairs: Vec<(usize, usize)> = new
            .slots
            .iter()
            .enumerate()
            .filter_map(|(ni, ns)| {
                self.slots
                    .iter()
                    .position(|os| os.rule.same_counter(&ns.rule))
                    .map(|oi| (ni, oi))
            })
            .collect();
        for row in 0..self.hashes.len() {
            self.advance(row);
            let i = new.touch(self.hashes[row]);
            for &(ni, oi) in &pairs {
                let (ns, os) = (&new.slots[ni], &self.slots[oi]);
                let src = &self.words[row * self.stride + os.offset..][..os.width()];
                let dst = &mut new.words[i * new.stride + ns.offset..][..ns.width()];
                if ns.rule.metric.is_distinct() {
                    // Items are moved one by one: the pools differ.
                    if let Some(sk) = self.pool_sketch(src) {
                        let taken = new_pool_copy(&mut new.pool, sk);
                        distinct::init(dst);
                        dst[WORDS - 1] = taken;
                    } else {
                        dst.copy_from_slice(src);
                    }
                } else {
                    dst.copy_from_slice(src);
                }
            }
            new.last[i] = self.last[row];
        }
        new
    }

    fn pool_sketch(&self, w: &[u32]) -> Option<&[u8; distinct::SKETCH]> {
        self.pool.sketch(w[WORDS - 1])
    }
}

fn new_pool_copy(pool: &mut Pool, sk: &[u8; distinct::SKETCH]) -> u32 {
    pool.insert(sk).unwrap_or(distinct::NO_SKETCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::limits::{LimitAction, SmtpReply};

    pub fn rule(
        index: usize,
        key: KeyKind,
        metric: Metric,
        window: u32,
        buckets: u32,
        max: u64,
    ) -> Arc<Rule> {
        Arc::new(Rule {
            index,
            key,
            metric,
            window,
            buckets,
            max,
            action: LimitAction::Tempfail,
            reply: SmtpReply {
                code: "451".into(),
                status: "4.7.1".into(),
                text: "slow down".into(),
            },
        })
    }

    const T0: u64 = 1_700_000_000;

    fn trips(t: &mut Table, now: u64, key: u64, ops: &[Op]) -> Vec<u64> {
        let mut out = Vec::new();
        t.observe(now, key, ops, false, &mut out);
        out.iter().map(|t| t.count).collect()
    }

    #[test]
    fn a_limit_trips_then_recovers_when_the_window_passes() {
        let rules = [rule(0, KeyKind::Ip, Metric::Connections, 60, 6, 3)];
        let mut t = Table::new(KeyKind::Ip, &rules, 100, T0);
        let c = Op::Add(Metric::Connections, 1);
        for s in 0..3 {
            assert!(trips(&mut t, T0 + s, 7, &[c]).is_empty());
        }
        assert_eq!(trips(&mut t, T0 + 5, 7, &[c]), [4]);
        assert_eq!(trips(&mut t, T0 + 50, 7, &[c]), [5]);
        // Other keys are not affected.
        assert!(trips(&mut t, T0 + 50, 8, &[c]).is_empty());
        // At 60 s the first bucket (0-9 s) has left: 5 - 4 + 1 = 2.
        assert!(trips(&mut t, T0 + 60, 7, &[c]).is_empty());
        assert!(trips(&mut t, T0 + 200, 7, &[c]).is_empty());
        // A clock that goes back counts in the latest bucket.
        assert!(trips(&mut t, T0 + 100, 7, &[c]).is_empty());
    }

    #[test]
    fn check_all_reports_limits_already_over() {
        let rules = [
            rule(0, KeyKind::Ip, Metric::Connections, 60, 6, 100),
            rule(1, KeyKind::Ip, Metric::Spam, 3600, 12, 1),
        ];
        let mut t = Table::new(KeyKind::Ip, &rules, 100, T0);
        let mut out = Vec::new();
        t.observe(T0, 1, &[Op::Add(Metric::Spam, 2)], false, &mut out);
        assert_eq!(out.len(), 1);
        out.clear();
        t.observe(
            T0 + 1,
            1,
            &[Op::Add(Metric::Connections, 1)],
            false,
            &mut out,
        );
        assert!(out.is_empty(), "only changed metrics are checked");
        t.observe(
            T0 + 1,
            1,
            &[Op::Add(Metric::Connections, 1)],
            true,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rule.index, 1);
    }

    #[test]
    fn distinct_ips_per_login_trips_at_the_configured_count() {
        let rules = [rule(0, KeyKind::Login, Metric::DistinctIps, 3600, 12, 3)];
        let mut t = Table::new(KeyKind::Login, &rules, 100, T0);
        for ip in 0..3u32 {
            assert!(
                trips(
                    &mut t,
                    T0 + u64::from(ip),
                    42,
                    &[Op::Item(Metric::DistinctIps, ip)]
                )
                .is_empty()
            );
            // The same address again does not count.
            assert!(trips(&mut t, T0 + 10, 42, &[Op::Item(Metric::DistinctIps, ip)]).is_empty());
        }
        assert_eq!(
            trips(&mut t, T0 + 20, 42, &[Op::Item(Metric::DistinctIps, 99)]),
            [4]
        );
        // An hour later the four have left the window.
        assert!(trips(&mut t, T0 + 3700, 42, &[Op::Item(Metric::DistinctIps, 100)]).is_empty());
    }

    #[test]
    fn a_table_without_limits_holds_nothing() {
        let rules = [rule(0, KeyKind::Login, Metric::Messages, 60, 6, 3)];
        let mut t = Table::new(KeyKind::Ip, &rules, 100, T0);
        assert!(!t.is_active());
        assert!(trips(&mut t, T0, 1, &[Op::Add(Metric::Messages, 1)]).is_empty());
        assert_eq!(t.len(), 0);
        assert_eq!(Table::worst_case_bytes(KeyKind::Ip, &rules, 1000), 0);
    }

    #[test]
    fn eviction_keeps_memory_at_the_cap_and_keys_near_their_limit() {
        let rules = [
            rule(0, KeyKind::Ip, Metric::Connections, 600, 10, 10),
            rule(1, KeyKind::Ip, Metric::DistinctLogins, 600, 10, 20),
        ];
        let cap = 1000;
        let mut t = Table::new(KeyKind::Ip, &rules, cap, T0);
        // Ten clients at their limit, with sketches.
        for k in 0..10u64 {
            for _ in 0..10 {
                trips(&mut t, T0, k, &[Op::Add(Metric::Connections, 1)]);
            }
            for l in 0..12 {
                trips(&mut t, T0, k, &[Op::Item(Metric::DistinctLogins, l)]);
            }
        }
        let c = Op::Add(Metric::Connections, 1);
        for k in 1000..(1000 + cap as u64) {
            trips(&mut t, T0 + 1, k, &[c]);
        }
        assert_eq!(t.len(), cap);
        // Floods of spoofed addresses: the memory stops growing.
        let worst = Table::worst_case_bytes(KeyKind::Ip, &rules, cap);
        let mut sizes = Vec::new();
        for flood in 0..3u64 {
            for k in 0..50_000u64 {
                let key = 10_000 + flood * 50_000 + k;
                trips(&mut t, T0 + 2 + key / 5000, key, &[c]);
            }
            assert_eq!(t.len(), cap);
            sizes.push(t.memory_bytes());
            assert!(t.memory_bytes() <= worst, "{} > {worst}", t.memory_bytes());
        }
        assert!(t.evictions() >= 150_000);
        assert_eq!(sizes[1], sizes[2], "{sizes:?}");
        // The near-limit clients are still counted: one more trips.
        for k in 0..10u64 {
            assert_eq!(trips(&mut t, T0 + 200, k, &[c]), [10 + 1], "key {k}");
        }
    }

    #[test]
    fn a_removed_key_starts_again_from_zero_and_the_others_keep_their_counts() {
        let rules = [
            rule(0, KeyKind::Ip, Metric::Connections, 60, 6, 2),
            rule(1, KeyKind::Ip, Metric::DistinctLogins, 60, 6, 100),
        ];
        let mut t = Table::new(KeyKind::Ip, &rules, 100, T0);
        let c = Op::Add(Metric::Connections, 1);
        for key in 1..=3u64 {
            for n in 0..3 {
                trips(&mut t, T0, key, &[c]);
                for l in 0..20 {
                    trips(&mut t, T0, key, &[Op::Item(Metric::DistinctLogins, l + n)]);
                }
            }
        }
        let (tracked, counts) = t.inspect(T0 + 1, 1);
        assert!(tracked);
        let counts: Vec<(usize, u64)> = counts.iter().map(|(r, n)| (r.index, *n)).collect();
        assert_eq!(counts[0], (0, 3));
        // 22 distinct logins, past the exact count: an estimate.
        assert!((20..=24).contains(&counts[1].1), "{counts:?}");
        let before: Vec<u64> = [2, 3]
            .iter()
            .map(|&k| t.inspect(T0 + 1, k).1[1].1)
            .collect();
        assert_eq!(t.pool.in_use(), 3);
        // Key 1 is not the last row: key 3's row moves into its place.
        assert!(t.remove(1));
        assert!(!t.remove(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.pool.in_use(), 2, "its sketch went back to the pool");
        let (tracked, counts) = t.inspect(T0 + 1, 1);
        assert!(!tracked);
        assert!(counts.iter().all(|(_, n)| *n == 0));
        assert_eq!(t.len(), 2, "inspecting adds no key");
        for (key, distinct) in [2, 3].into_iter().zip(before) {
            let (tracked, counts) = t.inspect(T0 + 1, key);
            assert!(tracked, "key {key}");
            assert_eq!((counts[0].1, counts[1].1), (3, distinct), "key {key}");
            assert_eq!(trips(&mut t, T0 + 1, key, &[c]), [4], "key {key}");
        }
        assert!(trips(&mut t, T0 + 1, 1, &[c]).is_empty());
        assert!(t.remove(3), "the last row");
        assert!(t.remove(2));
        assert!(t.remove(1));
        assert!(t.is_empty());
        let (_, counts) = Table::new(KeyKind::Login, &rules, 10, T0).inspect(T0, 1);
        assert!(counts.is_empty(), "no limit counts logins");
    }

    #[test]
    fn reload_keeps_matching_counters() {
        let a = rule(0, KeyKind::Ip, Metric::Connections, 60, 6, 3);
        let d = rule(1, KeyKind::Ip, Metric::DistinctLogins, 60, 6, 3);
        let mut t = Table::new(KeyKind::Ip, &[a.clone(), d.clone()], 100, T0);
        for l in 0..9 {
            trips(
                &mut t,
                T0,
                5,
                &[
                    Op::Add(Metric::Connections, 1),
                    Op::Item(Metric::DistinctLogins, l),
                ],
            );
        }
        // Same layout, new maximum: kept as is.
        let a2 = rule(0, KeyKind::Ip, Metric::Connections, 60, 6, 50);
        let t = t.reconfigured(&[a2.clone(), d.clone()], 100);
        assert!(trips(&mut { t }, T0, 5, &[Op::Add(Metric::Connections, 1)]).is_empty());
        // New layout: the connection and distinct counters move over.
        let mut t = Table::new(KeyKind::Ip, &[a.clone(), d.clone()], 100, T0);
        for l in 0..9 {
            trips(
                &mut t,
                T0,
                5,
                &[
                    Op::Add(Metric::Connections, 1),
                    Op::Item(Metric::DistinctLogins, l),
                ],
            );
        }
        let m = rule(0, KeyKind::Ip, Metric::Messages, 60, 6, 3);
        let mut t = t.reconfigured(&[m, d, a], 10);
        let mut out = Vec::new();
        t.observe(T0 + 1, 5, &[], true, &mut out);
        let counts: Vec<(usize, u64)> = out.iter().map(|t| (t.rule.index, t.count)).collect();
        assert_eq!(counts, [(1, 9), (0, 9)]);
    }
}
