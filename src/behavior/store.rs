//! Where the counters live: the [`Store`] interface and its in-memory
//! implementation.
//!
//! The interface is asynchronous so that a networked store (Redis, shared
//! by several milters) can implement it without blocking the runtime: a
//! session builds a [`Batch`] of operations for the keys it knows, awaits
//! [`Store::observe`], and gets back the limits over their maximum. The
//! in-memory store does the work at once and returns a ready future.
//!
//! Keys reach the store as 64-bit hashes of their canonical bytes, made
//! by the store itself ([`Store::key`]), so each store chooses its hashing
//! (a networked one would use a fixed key, shared by its milters).
//!
//! Invariants of [`MemoryStore`]: one table per kind of key, each behind
//! its own mutex held only for one key's operations (never across an
//! await); a flood of one kind of key evicts only that kind; every table
//! holds at most its `max_keys` keys.

use std::future::Future;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use super::limits::{KeyKind, Rule, Trip};
use super::table::{Op, Table};

/// Operations on one key at most per batch.
pub const MAX_OPS: usize = 6;

/// A key, hashed by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub kind: KeyKind,
    pub hash: u64,
}

/// The operations of one stage on one key.
#[derive(Clone, Copy, Debug)]
pub struct KeyOps {
    pub key: Key,
    /// Check every limit of the key, not only those of changed metrics.
    pub check_all: bool,
    ops: [Option<Op>; MAX_OPS],
}

impl KeyOps {
    pub fn ops(&self) -> impl Iterator<Item = Op> + '_ {
        self.ops.iter().flatten().copied()
    }
}

/// The operations of one stage of a session: at most one entry per kind
/// of key. Fixed size: building one allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    keys: [Option<KeyOps>; 3],
}

impl Batch {
    fn entry(&mut self, key: Key) -> &mut KeyOps {
        self.keys[key.kind.index()].get_or_insert(KeyOps {
            key,
            check_all: false,
            ops: [None; MAX_OPS],
        })
    }

    /// Adds an operation on `key` (beyond [`MAX_OPS`] per key, ignored).
    pub fn push(&mut self, key: Key, op: Op) {
        let e = self.entry(key);
        if let Some(slot) = e.ops.iter_mut().find(|o| o.is_none()) {
            *slot = Some(op);
        }
    }

    /// Asks for every limit of `key` to be checked.
    pub fn check_all(&mut self, key: Key) {
        self.entry(key).check_all = true;
    }

    pub fn keys(&self) -> impl Iterator<Item = &KeyOps> {
        self.keys.iter().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.iter().all(Option::is_none)
    }
}

/// Counters per key over sliding windows.
pub trait Store: Send + Sync + 'static {
    /// The key for the canonical bytes of a client network, login or
    /// sender.
    fn key(&self, kind: KeyKind, canonical: &[u8]) -> Key;

    /// The fingerprint of an item counted by a distinct metric.
    fn item(&self, canonical: &[u8]) -> u32;

    /// Applies `batch` at `now` (seconds since the epoch) and appends the
    /// limits over their maximum to `out`.
    fn observe<'a>(
        &'a self,
        now: u64,
        batch: &'a Batch,
        out: &'a mut Vec<Trip>,
    ) -> impl Future<Output = ()> + Send + 'a;
}

/// What a table holds, for logs and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStats {
    pub kind: KeyKind,
    pub keys: usize,
    pub max_keys: usize,
    pub bytes: usize,
    pub evictions: u64,
}

/// The counters in this process's memory.
#[derive(Debug)]
pub struct MemoryStore {
    hasher: std::hash::RandomState,
    tables: [Mutex<Table>; 3],
}

fn lock(m: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // Nothing panics while holding the lock (the table's code has no
    // panicking paths); a poisoned table is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    /// Tables for `rules`, each holding at most `max_keys[kind]` keys.
    pub fn new(rules: &[Arc<Rule>], max_keys: [usize; 3], now: u64) -> MemoryStore {
        MemoryStore {
            hasher: std::hash::RandomState::new(),
            tables: KeyKind::ALL
                .map(|k| Mutex::new(Table::new(k, rules, max_keys[k.index()], now))),
        }
    }

    /// Installs new limits, keeping the counters that still count the
    /// same thing (see [`Table::reconfigured`]).
    pub fn reconfigure(&self, rules: &[Arc<Rule>], max_keys: [usize; 3]) {
        for k in KeyKind::ALL {
            let mut t = lock(&self.tables[k.index()]);
            let placeholder = Table::new(k, &[], 1, 0);
            let old = std::mem::replace(&mut *t, placeholder);
            *t = old.reconfigured(rules, max_keys[k.index()]);
        }
    }

    pub fn stats(&self) -> [TableStats; 3] {
        KeyKind::ALL.map(|k| {
            let t = lock(&self.tables[k.index()]);
            TableStats {
                kind: k,
                keys: t.len(),
                max_keys: t.max_keys(),
                bytes: t.memory_bytes(),
                evictions: t.evictions(),
            }
        })
    }

    /// The most the tables can hold for `rules` and `max_keys`.
    pub fn worst_case_bytes(rules: &[Arc<Rule>], max_keys: [usize; 3]) -> usize {
        KeyKind::ALL
            .iter()
            .map(|&k| Table::worst_case_bytes(k, rules, max_keys[k.index()]))
            .sum()
    }

    /// Whether `key` is tracked, and the count of each limit of its kind
    /// at `now` (seconds since the epoch); adds no key.
    pub fn inspect(&self, now: u64, key: Key) -> (bool, Vec<(Arc<Rule>, u64)>) {
        lock(&self.tables[key.kind.index()]).inspect(now, key.hash)
    }

    /// Forgets `key` and its counters; returns whether it was tracked.
    pub fn reset(&self, key: Key) -> bool {
        lock(&self.tables[key.kind.index()]).remove(key.hash)
    }

    /// [`Store::observe`] without the future.
    pub fn observe_now(&self, now: u64, batch: &Batch, out: &mut Vec<Trip>) {
        let mut ops = [Op::Add(super::limits::Metric::Connections, 0); MAX_OPS];
        for k in batch.keys() {
            let mut n = 0;
            for op in k.ops() {
                ops[n] = op;
                n += 1;
            }
            lock(&self.tables[k.key.kind.index()]).observe(
                now,
                k.key.hash,
                &ops[..n],
                k.check_all,
                out,
            );
        }
    }
}

impl Store for MemoryStore {
    fn key(&self, kind: KeyKind, canonical: &[u8]) -> Key {
        Key {
            kind,
            hash: self.hasher.hash_one((kind.index(), canonical)),
        }
    }

    fn item(&self, canonical: &[u8]) -> u32 {
        self.hasher.hash_one(canonical) as u32
    }

    fn observe<'a>(
        &'a self,
        now: u64,
        batch: &'a Batch,
        out: &'a mut Vec<Trip>,
    ) -> impl Future<Output = ()> + Send + 'a {
        self.observe_now(now, batch, out);
        std::future::ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::limits::{LimitAction, Metric, SmtpReply};

    fn rule(index: usize, key: KeyKind, metric: Metric, max: u64) -> Arc<Rule> {
        Arc::new(Rule {
            index,
            key,
            metric,
            window: 60,
            buckets: 6,
            max,
            action: LimitAction::Monitor,
            reply: SmtpReply {
                code: "451".into(),
                status: "4.7.1".into(),
                text: "x".into(),
            },
        })
    }

    #[tokio::test]
    async fn batches_reach_the_tables_of_their_keys() {
        let rules = [
            rule(0, KeyKind::Ip, Metric::Messages, 1),
            rule(1, KeyKind::Login, Metric::Messages, 0),
        ];
        let s = MemoryStore::new(&rules, [10, 10, 10], 1000);
        let ip = s.key(KeyKind::Ip, b"192.0.2.1");
        let login = s.key(KeyKind::Login, b"bob");
        assert_ne!(ip.hash, s.key(KeyKind::Login, b"192.0.2.1").hash);
        let mut b = Batch::default();
        b.push(ip, Op::Add(Metric::Messages, 1));
        b.push(login, Op::Add(Metric::Messages, 1));
        let mut out = Vec::new();
        s.observe(1000, &b, &mut out).await;
        let tripped: Vec<usize> = out.iter().map(|t| t.rule.index).collect();
        assert_eq!(tripped, [1]);
        out.clear();
        s.observe(1001, &b, &mut out).await;
        assert_eq!(out.len(), 2);
        let st = s.stats();
        assert_eq!((st[0].keys, st[1].keys, st[2].keys), (1, 1, 0));
        assert!(MemoryStore::worst_case_bytes(&rules, [10, 10, 10]) >= st[0].bytes);
        s.reconfigure(&rules[..1], [10, 10, 10]);
        assert_eq!(s.stats()[1].keys, 0);
        assert_eq!(s.stats()[0].keys, 1);
    }
}
