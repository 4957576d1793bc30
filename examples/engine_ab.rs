//! Two builds of one synthetic library, A with the default options and B
//! with others, scanned alternately over the same text: the median of the
//! per-round speed ratios B / A, and a check that both find the same
//! entries with the same counts. On a machine whose speed drifts, this
//! tells a change of a few per cent from noise where two separate runs
//! cannot.
//!
//! `cargo run --release --example engine_ab -- 1000000 bits=32 rounds=21`
//! (B's options: `bits=` filter bits per key, `tier5=`, `tier8=`,
//! `merge4=`, `batch=` the least text scanned in batches, `batch_keys=`;
//! `rounds=` defaults to 15; `TEXT_SEED=42` writes the text from
//! the library's own vocabulary, `TEXT_KIB=k` makes it `k` KiB instead of
//! 4 MiB).
#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use mailward::library::normalize::normalize;
use mailward::library::{BuildOptions, EntrySpec, Library, Scanner};

/// Every entry found, as (text, count), sorted: entry numbers may differ
/// between two builds.
fn found(lib: &Library, scanner: &mut Scanner, text: &str) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = scanner
        .scan_normalized(lib, text)
        .iter()
        .filter_map(|h| lib.entry(h.entry).map(|e| (e.text().to_string(), h.count)))
        .collect();
    v.sort_unstable();
    v
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut b_opts = BuildOptions::default();
    let mut rounds = 15;
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            panic!("expected name=value, got {arg}");
        };
        let value: usize = value.parse().expect("a number");
        match name {
            "bits" => b_opts.bits_per_key = value,
            "tier5" => b_opts.tier5_min = value,
            "tier8" => b_opts.tier8_min = value,
            "merge4" => b_opts.merge4_max = value,
            "batch" => b_opts.batch_min = value,
            "batch_keys" => b_opts.batch_keys = value,
            "rounds" => rounds = value.max(1),
            _ => panic!("unknown option {name}"),
        }
    }
    let strings = common::library(n, 42);
    let specs: Vec<EntrySpec> = strings.iter().map(EntrySpec::new).collect();
    let build = |opts| {
        let t = Instant::now();
        let lib = Library::from_specs(&specs, opts).expect("valid");
        (lib, t.elapsed())
    };
    let (a, a_build) = build(BuildOptions::default());
    let (b, b_build) = build(b_opts);
    println!("B: {b_opts:?}");
    println!(
        "build A {a_build:.2?} B {b_build:.2?}; index A {} B {} bytes",
        a.stats().index_bytes,
        b.stats().index_bytes
    );
    let kib: usize = std::env::var("TEXT_KIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let text = normalize(&common::text(kib << 10, &strings, common::text_seed()));
    let mut scanner = Scanner::new();
    let (fa, fb) = (
        found(&a, &mut scanner, &text),
        found(&b, &mut scanner, &text),
    );
    assert!(fa == fb, "A and B find different entries");
    let (mut scan_a, mut scan_b) = (Scanner::new(), Scanner::new());
    let scan = |scanner: &mut Scanner, lib: &Library| {
        std::hint::black_box(scanner.scan_normalized(lib, &text).len());
    };
    // B first: the ratio is how many times faster the first job ran.
    let times = common::alternate(rounds, || scan(&mut scan_b, &b), || scan(&mut scan_a, &a));
    let (speed_b, speed_a) = times.mib_s(text.len());
    let (mid, low, high) = times.ratio();
    println!(
        "A {speed_a:.1} MiB/s  B {speed_b:.1} MiB/s (medians)  speed B/A {mid:.3} (min {low:.3}, max {high:.3}), {} entries found by both",
        fa.len()
    );
}
