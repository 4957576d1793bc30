//! Prints the statistics of a synthetic library (the benchmark's
//! generator) and times a few scans: a quick look while tuning.
//! `cargo run --release --example engine_stats -- 100000`
//! (further arguments: tier8_min, bits_per_key, tier5_min, merge4_max;
//! `REAL=1 MAILWARD_CORPUS=…` for the real lexicon and messages, plus
//! `DECODED=1` for the messages' decoded texts; `MAIL=1` scans those decoded
//! messages against the synthetic library; `TEXT_SEED=42` writes the text
//! from the library's own vocabulary; `CEILING=1` with `--features
//! scan-ceiling` times the whole scan against scans cut after each of the
//! pipeline's stages, alternately, and prints the share of the time each
//! stage costs: the `Filters` row is what free lookups would gain; with
//! `--features scan-timing` it prints the mean time of each stage of the
//! batched scan: a pass's time includes the lookups and walks of any batch
//! that fills during it, unless `BATCH_KEYS=4194304` holds a whole text's
//! keys in one batch; `THRASH=1024` writes 1 GiB before each timed scan,
//! so that scans start with the caches as cold as in a paired round)
#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use mailward::library::normalize::normalize;
use mailward::library::{BuildOptions, EntrySpec, Library, Scanner};

fn main() {
    env_logger::init();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let tier8_min: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let tier5_min: usize = std::env::args()
        .nth(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or(BuildOptions::default().tier5_min);
    let bits: usize = std::env::args()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let real = std::env::var_os("REAL").is_some();
    let mail = std::env::var_os("MAIL").is_some();
    // With REAL: scan the messages' decoded texts instead of the raw ones.
    let decoded = mail || std::env::var_os("DECODED").is_some();
    let mut strings = if real {
        common::list_lines(
            &common::corpus()
                .expect("MAILWARD_CORPUS")
                .join("lexicon-zh"),
        )
    } else {
        common::library(n, 42)
    };
    if std::env::var_os("NOSHORT").is_some() {
        strings.retain(|s| s.len() >= 4);
    }
    let text = if real || mail {
        normalize(&common::mail_text(4 << 20, decoded))
    } else {
        normalize(&common::text(4 << 20, &strings, common::text_seed()))
    };
    let specs: Vec<EntrySpec> = strings.iter().map(EntrySpec::new).collect();
    let t = Instant::now();
    let lib = Library::from_specs(
        &specs,
        BuildOptions {
            bits_per_key: bits,
            tier5_min,
            tier8_min,
            merge4_max: std::env::args()
                .nth(5)
                .and_then(|s| s.parse().ok())
                .unwrap_or(BuildOptions::default().merge4_max),
            batch_min: std::env::var("BATCH")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(BuildOptions::default().batch_min),
            batch_keys: std::env::var("BATCH_KEYS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(BuildOptions::default().batch_keys),
        },
    )
    .expect("valid");
    println!("from_specs {:?}", t.elapsed());
    println!("{:#?}", lib.stats());
    let _ = mailward::library::probe_stats::take();
    let mut s = Scanner::new();
    // Best of several runs: the machine may be shared.
    let mut total = 0;
    let mut secs = f64::MAX;
    let runs: usize = common::env_or("SCANS", 7);
    if std::env::var_os("CEILING").is_some() {
        ceiling(&lib, &text, runs);
        // The cut scans' counts and times are not the whole scan's.
        let _ = mailward::library::probe_stats::take();
        let _ = mailward::library::stage_times::take();
    }
    // With THRASH=MiB, that many bytes are written before each scan, so
    // that the scan starts with the caches as cold as after another
    // engine's scan of a large index (a paired round).
    let mut thrash = vec![0u8; common::env_or("THRASH", 0usize) << 20];
    for r in 0..runs {
        for b in thrash.iter_mut().step_by(64) {
            *b = b.wrapping_add(r as u8);
        }
        std::hint::black_box(&thrash);
        let t = Instant::now();
        total += s.scan_normalized(&lib, &text).len();
        secs = secs.min(t.elapsed().as_secs_f64());
    }
    let total = total * 5 / runs;
    let mut hits = s.scan_normalized(&lib, &text).to_vec();
    hits.sort_by_key(|h| std::cmp::Reverse(h.count));
    let matches: u32 = hits.iter().map(|h| h.count).sum();
    println!("matches {matches} in {} bytes; top:", text.len());
    let mut by = std::collections::BTreeMap::new();
    for h in &hits {
        let t = lib.entry(h.entry).map(|e| e.text()).unwrap_or_default();
        let kind = if t.len() < 4 {
            "short"
        } else if t.contains('.') {
            "domain"
        } else if t.is_ascii() {
            if t.contains(' ') { "phrase" } else { "word" }
        } else {
            "cjk"
        };
        let e = by.entry(kind).or_insert((0u32, 0u32));
        e.0 += 1;
        e.1 += h.count;
    }
    println!("by kind (entries, matches): {by:?}");
    for h in hits.iter().take(12) {
        println!("  {:?} {}", lib.entry(h.entry).map(|e| e.text()), h.count);
    }
    println!(
        "probes/found/cands/ok per scan: {:?}",
        mailward::library::probe_stats::take().map(|x| x / (runs as u64 + 1))
    );
    // With the `scan-timing` feature: mean milliseconds per scan by stage.
    let secs_by_stage = mailward::library::stage_times::take();
    if secs_by_stage.iter().any(|&s| s > 0.0) {
        let scans = runs as f64 + 1.0;
        let stages: Vec<String> = mailward::library::stage_times::STAGES
            .iter()
            .zip(secs_by_stage)
            .map(|(name, s)| format!("{name} {:.2}", s * 1e3 / scans))
            .collect();
        println!("ms per scan by stage: {}", stages.join(", "));
    }
    println!(
        "distinct hits {} ; {:.1} MB/s",
        total / 5,
        text.len() as f64 / secs / 1e6
    );
}

/// For each [`ceiling::Cut`], scans `text` `runs` times each way,
/// alternately: whole, and cut after that stage. The median ratio of each
/// cut gives the share of the whole scan's time left at that cut; the
/// differences between successive cuts are what each stage costs.
#[cfg(feature = "scan-ceiling")]
fn ceiling(lib: &Library, text: &str, runs: usize) {
    use mailward::library::ceiling::{self, Cut};
    let (mut whole, mut cut_short) = (Scanner::new(), Scanner::new());
    let mut left_before = 1.0;
    let mut rows = Vec::new();
    for cut in [
        Cut::Walk,
        Cut::NodePrefetch,
        Cut::Lookup,
        Cut::Prefetch,
        Cut::Filters,
    ] {
        let times = common::alternate(
            runs,
            || {
                ceiling::set(cut);
                std::hint::black_box(cut_short.scan_normalized(lib, text).len());
                ceiling::set(Cut::Whole);
            },
            || {
                std::hint::black_box(whole.scan_normalized(lib, text).len());
            },
        );
        let ratio = times.ratio().0;
        let left = 1.0 / ratio;
        rows.push((cut, ratio, left, left_before - left));
        left_before = left;
    }
    println!("scans cut short against whole ones, medians of {runs} alternations:");
    println!("cut after       speed  time left  the next stage's share");
    for (cut, ratio, left, next) in rows.iter().rev() {
        println!(
            "{:<14} {ratio:>5.2}x {:>8.0} % {:>10.0} %",
            format!("{cut:?}"),
            left * 100.0,
            next * 100.0
        );
    }
}

#[cfg(not(feature = "scan-ceiling"))]
fn ceiling(_: &Library, _: &str, _: usize) {
    println!("CEILING needs --features scan-ceiling");
}
