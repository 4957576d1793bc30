//! The behavior tracker: updates per second with a million distinct keys,
//! and the memory each key takes.
//!
//! ```sh
//! cargo bench --bench tracker
//! ```
//!
//! Plain `main` (no criterion): each phase is one timed pass over a
//! million operations through `MemoryStore`, hashing included, as a
//! session's events would send them. Figures go to `docs/benchmarks.md`.

use std::sync::Arc;
use std::time::Instant;

use mailward::behavior::limits::{KeyKind, Metric, Rule};
use mailward::behavior::store::{Batch, MemoryStore, Store};
use mailward::behavior::table::Op;
use mailward::config::model::BehaviorSettings;

const KEYS: usize = 1_000_000;
const T0: u64 = 1_700_000_000;

fn rules() -> Vec<Arc<Rule>> {
    let yaml = "
limits:
  - {key: ip, metric: connections, window: 1m, buckets: 6, max: 30}
  - {key: ip, metric: connections, window: 1h, buckets: 12, max: 300}
  - {key: ip, metric: distinct_logins, window: 1h, max: 5}
";
    let b: BehaviorSettings = serde_norway::from_str(yaml).expect("limits");
    mailward::behavior::Policy::compile(&b).rules
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<usize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn ip(i: usize) -> [u8; 4] {
    let i = i as u32 + 0x0a00_0000;
    i.to_be_bytes()
}

/// One connection from client `i` at `now`; returns the tripped limits.
fn connect(
    store: &MemoryStore,
    batch: &mut Batch,
    out: &mut Vec<mailward::behavior::limits::Trip>,
    i: usize,
    now: u64,
) {
    let key = store.key(KeyKind::Ip, &ip(i));
    *batch = Batch::default();
    batch.push(key, Op::Add(Metric::Connections, 1));
    batch.check_all(key);
    out.clear();
    store.observe_now(now, batch, out);
}

fn phase(name: &str, n: usize, f: impl FnMut(usize)) {
    let start = Instant::now();
    (0..n).for_each(f);
    let s = start.elapsed().as_secs_f64();
    println!(
        "| {name} | {n} | {:.2} | {:.2} M/s | {:.0} ns |",
        s,
        n as f64 / s / 1e6,
        s * 1e9 / n as f64
    );
}

fn main() {
    let rules = rules();
    let base_rss = rss_bytes();
    let store = MemoryStore::new(&rules, [KEYS, 1, 1], T0);
    let mut batch = Batch::default();
    let mut out = Vec::new();
    println!("| phase | operations | seconds | rate | per operation |");
    println!("|---|---:|---:|---:|---:|");
    phase("1 M new keys (one connection each)", KEYS, |i| {
        connect(&store, &mut batch, &mut out, i, T0 + (i / 20_000) as u64)
    });
    let full = store.stats()[0];
    let rss_full = rss_bytes();
    // Existing keys in a scattered order.
    phase("1 M updates of existing keys", KEYS, |i| {
        let k = i.wrapping_mul(2_654_435_761) % KEYS;
        connect(
            &store,
            &mut batch,
            &mut out,
            k,
            T0 + 50 + (i / 20_000) as u64,
        )
    });
    phase("1 M new keys into the full table (evictions)", KEYS, |i| {
        connect(
            &store,
            &mut batch,
            &mut out,
            KEYS + i,
            T0 + 100 + (i / 20_000) as u64,
        )
    });
    // Logins per client: most clients use one, some many (sketches).
    phase(
        "1 M distinct-login items (1 in 100 clients: 50 logins)",
        KEYS,
        |i| {
            let client = i % 20_000;
            let login = if client % 100 == 0 { i % 50 } else { 0 };
            let key = store.key(KeyKind::Ip, &ip(client));
            batch = Batch::default();
            batch.push(
                key,
                Op::Item(Metric::DistinctLogins, store.item(&login.to_le_bytes())),
            );
            out.clear();
            store.observe_now(T0 + 160, &batch, &mut out);
        },
    );
    let after = store.stats()[0];
    let rss_after = rss_bytes();
    let worst = MemoryStore::worst_case_bytes(&rules, [KEYS, 1, 1]);
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| keys held (cap) | {} ({}) |", after.keys, after.max_keys);
    println!("| evictions | {} |", after.evictions);
    println!(
        "| table bytes per key, full | {:.1} |",
        full.bytes as f64 / full.keys as f64
    );
    println!(
        "| table bytes per key, after floods and sketches | {:.1} |",
        after.bytes as f64 / after.keys as f64
    );
    println!(
        "| worst case bytes per key (bound) | {:.1} |",
        worst as f64 / KEYS as f64
    );
    println!(
        "| resident memory per key, full | {:.1} |",
        (rss_full - base_rss) as f64 / KEYS as f64
    );
    println!(
        "| resident memory per key, after | {:.1} |",
        (rss_after.max(base_rss) - base_rss) as f64 / KEYS as f64
    );
}
