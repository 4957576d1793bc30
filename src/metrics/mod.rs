//! Counters for the metrics endpoint, and the endpoint itself.
//!
//! ```text
//! milter callbacks ─▶ Metrics (atomics) ─┐
//! behavior monitor ─▶ behavior::counters ─┼─▶ render (Prometheus text) ─▶ GET /metrics
//! rules in force, store tables ──────────┘
//! admin API ─▶ behavior store (inspect, reset one key)
//! ```
//!
//! # Costs on the hot path
//!
//! Every counter is a relaxed atomic add; a histogram observation is two
//! (its bucket and its sum). Hits by category go to a fixed array of
//! atomics through a per-thread map from the library's category numbers
//! to counter slots, rebuilt once per thread and rules generation (a lock
//! then, none in the steady state). The top entries take one short lock
//! per message with hits (never while awaiting), on a table of a bounded
//! size. Reading all of it for a scrape takes the locks once each.
//!
//! Modules: `render` (the text exposition), `http` (the listener, the
//! routes and the admin API).

pub mod http;
mod render;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::behavior::finding::Stage;
use crate::judge::{Exemption, Verdict};
use crate::library::Hit;
use crate::rules::Rules;

/// Category counters; categories past this many (over all the libraries
/// loaded since start) are counted together under [`OTHER`].
pub const MAX_CATEGORIES: usize = 512;

/// The label of the categories past [`MAX_CATEGORIES`].
pub const OTHER: &str = "(other)";

/// Upper bounds of the latency buckets, in seconds (the last bucket,
/// `+Inf`, is implicit).
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const VERDICTS: [Verdict; 5] = [
    Verdict::Accept,
    Verdict::Tag,
    Verdict::Quarantine,
    Verdict::Tempfail,
    Verdict::Reject,
];

/// What was done with a message, as logged (`act=`).
const ACTIONS: [&str; 4] = ["deliver", "quarantine", "tempfail", "reject"];

const EXEMPTIONS: [Exemption; 3] = [
    Exemption::RoleRecipient,
    Exemption::TrustedNetwork,
    Exemption::Authenticated,
];

/// Who refused: the `by` of a behavior decision.
const REFUSERS: [&str; 3] = ["limit", "conformity", "unknown-commands"];

const STAGES: [Stage; 8] = [
    Stage::Connect,
    Stage::Helo,
    Stage::Mail,
    Stage::Rcpt,
    Stage::Data,
    Stage::Headers,
    Stage::Eom,
    Stage::Unknown,
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one is still
    // consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A latency histogram: one atomic counter per bucket of
/// [`LATENCY_BOUNDS`] (not cumulative: summed when read) and the sum in
/// nanoseconds.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// A histogram read at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative counts per bound of [`LATENCY_BOUNDS`], then `+Inf`.
    pub cumulative: Vec<u64>,
    pub sum_secs: f64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: zeros(),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS.partition_point(|&b| b < secs);
        add(&self.buckets[i], 1);
        add(
            &self.sum_ns,
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        );
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += get(b);
                total
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum_secs: get(&self.sum_ns) as f64 / 1e9,
        }
    }
}

/// Observes the time from its creation to its drop.
pub struct Timer<'a>(&'a Histogram, Instant);

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.0.observe(self.1.elapsed());
    }
}

/// Category names and their counter slots.
#[derive(Debug, Default)]
struct Registry {
    names: Vec<Box<str>>,
    /// Category number → slot, for the latest rules generations seen.
    maps: Vec<(u64, Arc<[u16]>)>,
}

/// Generations whose category maps are kept.
const MAPS_KEPT: usize = 4;

impl Registry {
    fn slot(&mut self, name: &str) -> u16 {
        if let Some(i) = self.names.iter().position(|n| &**n == name) {
            return i as u16;
        }
        if self.names.len() < MAX_CATEGORIES {
            self.names.push(name.into());
            return (self.names.len() - 1) as u16;
        }
        MAX_CATEGORIES as u16
    }
}

/// The most-hit library entries, by id: a table of at most
/// [`TopEntries::capacity`] ids, kept as the Space-Saving algorithm does
/// (Metwally et al., 2005) with evictions in batches. When a new id finds
/// the table full, the half with the fewest hits is dropped and the
/// highest count dropped becomes the floor; a new id starts at the floor
/// plus one. So a count is an upper bound, exact for an entry that never
/// left the table since the first drop, and an entry found in more than
/// about one message hit in `capacity / 2` stays listed.
#[derive(Debug, Default)]
struct TopEntries {
    table: Mutex<TopTable>,
}

#[derive(Debug, Default)]
struct TopTable {
    counts: HashMap<Box<str>, u64>,
    floor: u64,
}

impl TopEntries {
    /// Ids kept for a top `n`.
    fn capacity(n: usize) -> usize {
        (n * 8).max(64)
    }

    fn record<'a>(&self, n: usize, ids: impl Iterator<Item = std::borrow::Cow<'a, str>>) {
        let cap = TopEntries::capacity(n);
        let mut guard = lock(&self.table);
        let t = &mut *guard;
        for id in ids {
            if let Some(c) = t.counts.get_mut(&*id) {
                *c += 1;
                continue;
            }
            if t.counts.len() >= cap {
                let mut counts: Vec<u64> = t.counts.values().copied().collect();
                counts.sort_unstable_by(|a, b| b.cmp(a));
                let cut = counts.get(cap / 2).copied().unwrap_or(0);
                // Ties at the cut go too, so the table always shrinks.
                t.counts.retain(|_, c| *c > cut);
                t.floor = t.floor.max(cut);
            }
            t.counts
                .insert(id.into_owned().into_boxed_str(), t.floor + 1);
        }
    }

    /// The `n` most hit, most first (ties by id).
    fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = lock(&self.table)
            .counts
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

/// Distinguishes the [`Metrics`] of several milters in one process (tests)
/// in the per-thread category maps.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A category map with the metrics id and the rules generation it is for.
type CachedMap = (usize, u64, Arc<[u16]>);

thread_local! {
    /// The category map last used on this thread.
    static CATEGORY_MAP: RefCell<Option<CachedMap>> = const { RefCell::new(None) };
}

/// Everything counted by the milter itself (behavior monitoring counts in
/// [`crate::behavior::counters`]).
#[derive(Debug)]
pub struct Metrics {
    id: usize,
    started: u64,
    sessions: AtomicU64,
    active: AtomicU64,
    verdicts: [AtomicU64; VERDICTS.len()],
    actions: [AtomicU64; ACTIONS.len()],
    exempt: [AtomicU64; EXEMPTIONS.len()],
    /// Messages over `limits.message_bytes`: the rest received, skipped.
    cut: [AtomicU64; 2],
    errors: AtomicU64,
    refusals: [[AtomicU64; STAGES.len()]; REFUSERS.len()],
    pub scan: Histogram,
    pub eom: Histogram,
    categories: Mutex<Registry>,
    hits: [AtomicU64; MAX_CATEGORIES + 1],
    top: TopEntries,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts a session as active until dropped (with the session).
#[derive(Debug)]
pub struct SessionGuard(Arc<Metrics>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let now = unix_secs();
        Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            started: now,
            sessions: AtomicU64::new(0),
            active: AtomicU64::new(0),
            verdicts: zeros(),
            actions: zeros(),
            exempt: zeros(),
            cut: zeros(),
            errors: AtomicU64::new(0),
            refusals: std::array::from_fn(|_| zeros()),
            scan: Histogram::default(),
            eom: Histogram::default(),
            categories: Mutex::new(Registry::default()),
            hits: zeros(),
            top: TopEntries::default(),
        }
    }

    /// A new milter session (connection); active until the guard drops.
    pub fn session(self: &Arc<Self>) -> SessionGuard {
        add(&self.sessions, 1);
        add(&self.active, 1);
        SessionGuard(self.clone())
    }

    /// Times the end-of-message callback until the timer drops.
    pub fn eom_timer(&self) -> Timer<'_> {
        Timer(&self.eom, Instant::now())
    }

    /// A message judged: the verdict of its content, what was done with it
    /// (`act=` of its log line) and its exemption.
    pub fn message(&self, verdict: Verdict, action: &str, exemption: Option<Exemption>) {
        if let Some(i) = VERDICTS.iter().position(|v| *v == verdict) {
            add(&self.verdicts[i], 1);
        }
        self.action(action);
        if let Some(e) = exemption
            && let Some(i) = EXEMPTIONS.iter().position(|x| *x == e)
        {
            add(&self.exempt[i], 1);
        }
    }

    /// A message judged on its first `limits.message_bytes`; `skipped`
    /// when the MTA was told to skip the rest of its body.
    pub fn cut(&self, skipped: bool) {
        add(&self.cut[usize::from(skipped)], 1);
    }

    /// A message mailward failed to judge (an internal error), and what
    /// it got.
    pub fn error(&self, action: &str) {
        add(&self.errors, 1);
        self.action(action);
    }

    fn action(&self, action: &str) {
        if let Some(i) = ACTIONS.iter().position(|a| *a == action) {
            add(&self.actions[i], 1);
        }
    }

    /// Behavior monitoring refused at `stage`, `by` a limit, the conformity
    /// score or unknown commands.
    pub fn refusal(&self, stage: Stage, by: &str) {
        let s = STAGES.iter().position(|x| *x == stage);
        let b = REFUSERS.iter().position(|x| *x == by);
        if let (Some(s), Some(b)) = (s, b) {
            add(&self.refusals[b][s], 1);
        }
    }

    /// The entries found in one message judged by `rules`: one hit per
    /// entry for its category, and for the top entries (`top_n` of them
    /// listed; 0: not kept).
    pub fn hits(&self, rules: &Rules, hits: &[Hit], top_n: usize) {
        if hits.is_empty() {
            return;
        }
        let lib = &rules.library;
        let map = self.category_map(rules);
        for h in hits {
            if let Some(e) = lib.entry(h.entry) {
                let slot = map
                    .get(e.category_index())
                    .map_or(MAX_CATEGORIES, |&s| usize::from(s));
                add(&self.hits[slot.min(MAX_CATEGORIES)], 1);
            }
        }
        if top_n > 0 {
            self.top.record(
                top_n,
                hits.iter()
                    .filter_map(|h| lib.entry(h.entry))
                    .map(|e| e.id()),
            );
        }
    }

    /// The slots of `rules`' categories: from this thread's cache, else
    /// from the registry.
    fn category_map(&self, rules: &Rules) -> Arc<[u16]> {
        let cached = CATEGORY_MAP.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(id, g, _)| *id == self.id && *g == rules.generation)
                .map(|(_, _, m)| m.clone())
        });
        if let Some(m) = cached {
            return m;
        }
        let m = self.register(rules);
        CATEGORY_MAP.with(|c| *c.borrow_mut() = Some((self.id, rules.generation, m.clone())));
        m
    }

    /// Gives every category of `rules` a slot (so that a scrape lists them
    /// before their first hit); returns their map.
    pub fn register(&self, rules: &Rules) -> Arc<[u16]> {
        let mut reg = lock(&self.categories);
        if let Some((_, m)) = reg.maps.iter().find(|(g, _)| *g == rules.generation) {
            return m.clone();
        }
        let map: Arc<[u16]> = rules
            .library
            .categories()
            .iter()
            .map(|c| reg.slot(c))
            .collect();
        if reg.maps.len() >= MAPS_KEPT {
            reg.maps.remove(0);
        }
        reg.maps.push((rules.generation, map.clone()));
        map
    }

    /// Hits by category: every category registered, then [`OTHER`] when
    /// it counted any.
    fn category_hits(&self) -> Vec<(String, u64)> {
        let names: Vec<String> = lock(&self.categories)
            .names
            .iter()
            .map(|n| n.to_string())
            .collect();
        let mut out: Vec<(String, u64)> = names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, get(&self.hits[i])))
            .collect();
        let other = get(&self.hits[MAX_CATEGORIES]);
        if other > 0 {
            out.push((OTHER.to_string(), other));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::library::{BuildOptions, EntrySpec, Library};

    fn rules(generation: u64, entries: &[(&str, &str)]) -> Rules {
        let specs: Vec<EntrySpec> = entries
            .iter()
            .map(|(text, cat)| {
                let mut s = EntrySpec::new(*text);
                s.id = Some(format!("id-{text}"));
                s.category = (*cat).to_string();
                s
            })
            .collect();
        Rules {
            generation,
            config: Config::default(),
            library: Library::from_specs(&specs, BuildOptions::default()).unwrap(),
            policy: Default::default(),
            decode: Default::default(),
        }
    }

    fn hits(r: &Rules, texts: &[&str]) -> Vec<Hit> {
        r.library
            .entries()
            .filter(|e| texts.contains(&e.text().as_str()))
            .map(|e| Hit {
                entry: e.number(),
                count: 1,
            })
            .collect()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), LATENCY_BOUNDS.len() + 1);
        // 0.0005: 1, 0.001: 2 (a bound is inclusive), 0.0025: 2, 0.005: 3.
        assert_eq!(&s.cumulative[..4], [1, 2, 2, 3]);
        assert_eq!(s.cumulative[LATENCY_BOUNDS.len() - 1], 3);
        assert_eq!(s.count(), 4);
        assert!((s.sum_secs - 60.0041).abs() < 1e-9, "{}", s.sum_secs);
    }

    #[test]
    fn hits_count_by_category_across_reloads() {
        let m = Metrics::new();
        let r1 = rules(1, &[("viagra", "pharma"), ("gift", "promo")]);
        m.hits(&r1, &hits(&r1, &["viagra", "gift"]), 5);
        m.hits(&r1, &hits(&r1, &["viagra"]), 5);
        // A new library with its categories in another order.
        let r2 = rules(2, &[("lottery", "scam"), ("cialis", "pharma")]);
        m.register(&r2);
        m.hits(&r2, &hits(&r2, &["cialis"]), 5);
        assert_eq!(
            m.category_hits(),
            [
                ("pharma".to_string(), 3),
                ("promo".to_string(), 1),
                ("scam".to_string(), 0)
            ]
        );
        assert_eq!(
            m.top.top(2),
            [("id-viagra".to_string(), 2), ("id-cialis".to_string(), 1)]
        );
        // Another milter's metrics on the same thread keep their own maps.
        let other = Metrics::new();
        let r = rules(1, &[("x", "only")]);
        other.hits(&r, &hits(&r, &["x"]), 0);
        assert_eq!(other.category_hits(), [("only".to_string(), 1)]);
        assert!(other.top.top(5).is_empty(), "top 0 keeps nothing");
        m.hits(&r1, &hits(&r1, &["gift"]), 5);
        assert_eq!(m.category_hits()[1], ("promo".to_string(), 2));
    }

    #[test]
    fn categories_past_the_cap_count_as_other() {
        let m = Metrics::new();
        let names: Vec<String> = (0..MAX_CATEGORIES + 2).map(|i| format!("c{i}")).collect();
        let entries: Vec<(String, &str)> = names
            .iter()
            .map(|n| (format!("w{n}"), n.as_str()))
            .collect();
        let e: Vec<(&str, &str)> = entries.iter().map(|(t, c)| (t.as_str(), *c)).collect();
        let r = rules(1, &e);
        let all: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
        m.hits(&r, &hits(&r, &all), 0);
        let c = m.category_hits();
        assert_eq!(c.len(), MAX_CATEGORIES + 1);
        assert_eq!(c[MAX_CATEGORIES], (OTHER.to_string(), 2));
    }

    #[test]
    fn the_top_table_stays_bounded_and_keeps_the_frequent() {
        let t = TopEntries::default();
        let cap = TopEntries::capacity(3);
        // Three entries in 5 % of the hits each, among 5000 found once.
        for round in 0..50u64 {
            for _ in 0..6 {
                let ids = ["hot-a", "hot-b", "hot-c"].map(std::borrow::Cow::Borrowed);
                t.record(3, ids.into_iter());
            }
            for k in 0..100u64 {
                let id = format!("cold-{}", round * 100 + k);
                t.record(3, std::iter::once(std::borrow::Cow::Owned(id)));
                assert!(lock(&t.table).counts.len() <= cap);
            }
        }
        let top = t.top(4);
        let names: Vec<&str> = top.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..3], ["hot-a", "hot-b", "hot-c"]);
        // Upper bounds, no lower than the truth.
        assert!(top[..3].iter().all(|(_, n)| *n >= 300), "{top:?}");
        assert!(top[3].1 < 300, "{top:?}");
        // Without evictions the counts are exact.
        let t = TopEntries::default();
        for _ in 0..3 {
            t.record(1, ["a", "b"].map(std::borrow::Cow::Borrowed).into_iter());
        }
        t.record(1, std::iter::once(std::borrow::Cow::Borrowed("a")));
        assert_eq!(t.top(1), [("a".to_string(), 4)]);
    }

    #[test]
    fn messages_refusals_and_sessions() {
        let m = Arc::new(Metrics::new());
        m.message(Verdict::Reject, "reject", None);
        m.message(Verdict::Accept, "deliver", Some(Exemption::Authenticated));
        m.error("tempfail");
        m.refusal(Stage::Mail, "limit");
        m.refusal(Stage::Mail, "nobody");
        m.cut(true);
        assert_eq!(get(&m.verdicts[4]), 1);
        assert_eq!((get(&m.cut[0]), get(&m.cut[1])), (0, 1));
        assert_eq!(get(&m.actions[2]), 1);
        assert_eq!(get(&m.exempt[2]), 1);
        assert_eq!(get(&m.refusals[0][2]), 1);
        let g = m.session();
        let g2 = m.session();
        assert_eq!(get(&m.active), 2);
        drop(g);
        drop(g2);
        assert_eq!((get(&m.active), get(&m.sessions)), (0, 2));
    }
}
