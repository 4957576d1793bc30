//! Scan speed of the keyword index and of aho-corasick's contiguous NFA on
//! synthetic texts of several hit densities, one library.
//! `cargo run --release --example ac_density -- 1000000 100,50,25,10`;
//! `mail` among the gaps scans 4 MiB of the corpus' decoded messages
//! instead (`MAILWARD_CORPUS=…`): ordinary mail against the synthetic library.
#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use mailward::library::normalize::normalize;
use mailward::library::{BuildOptions, EntrySpec, Library, Scanner};

fn best<F: FnMut() -> usize>(runs: usize, bytes: usize, mut f: F) -> (f64, usize) {
    let mut secs = f64::MAX;
    let mut n = 0;
    for _ in 0..runs {
        let t = Instant::now();
        n = f();
        secs = secs.min(t.elapsed().as_secs_f64());
    }
    (bytes as f64 / secs / (1 << 20) as f64, n)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let gaps: Vec<String> = args
        .next()
        .unwrap_or_else(|| "100".into())
        .split(',')
        .map(String::from)
        .collect();
    let runs: usize = std::env::var("SCANS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let strings = common::library(n, 42);
    let specs: Vec<EntrySpec> = strings.iter().map(EntrySpec::new).collect();
    let lib = Library::from_specs(&specs, BuildOptions::default()).expect("valid");
    let mut norm: Vec<String> = strings.iter().map(|s| normalize(s)).collect();
    norm.sort_unstable();
    norm.dedup();
    let ac = AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .match_kind(MatchKind::Standard)
        .build(&norm)
        .expect("builds");
    let mut scanner = Scanner::new();
    println!("strings {n}");
    for gap in gaps {
        let text = match gap.parse() {
            Ok(g) => normalize(&common::text_with_gap(4 << 20, &strings, 7, g)),
            Err(_) => {
                let dir = common::corpus()
                    .expect("MAILWARD_CORPUS")
                    .join("spamassassin");
                let mut t = String::new();
                for m in common::messages(&dir) {
                    common::push_decoded(&m, &mut t);
                    if t.len() > 4 << 20 {
                        break;
                    }
                }
                normalize(&t)
            }
        };
        let (ours, m1) = best(runs, text.len(), || {
            scanner
                .scan_normalized(&lib, &text)
                .iter()
                .map(|h| h.count as usize)
                .sum()
        });
        let (theirs, m2) = best(runs, text.len(), || ac.find_overlapping_iter(&text).count());
        println!(
            "gap {gap:>4}: mailward {ours:7.1} MiB/s  ac-nfa {theirs:6.1} MiB/s  ratio {:.2}  matches {m1}/{m2} ({:.1} bytes/match)",
            ours / theirs,
            text.len() as f64 / m1 as f64
        );
    }
}
