//! Scan speed of the keyword index and of aho-corasick's contiguous NFA on
//! synthetic texts of several hit densities, one library.
//! `cargo run --release --example ac_density -- 1000000 100,50,25,10`;
//! `mail` among the gaps scans 4 MiB of the corpus' decoded messages
//! instead (`MAILWARD_CORPUS=…`): ordinary mail against the synthetic library.
//! `TEXT_MIB` sets the size of each text (default 4 MiB), `TEXT_SEED=42`
//! writes it from the library's own vocabulary (default 7: independent).
//! The two engines scan alternately (`SCANS` rounds): each one's median
//! speed and the median of the per-round ratios, which a drifting machine
//! speed moves far less than a ratio of separate measurements.
#[path = "../benches/common/mod.rs"]
mod common;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use mailward::library::normalize::normalize;
use mailward::library::{BuildOptions, EntrySpec, Library};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let gaps: Vec<String> = args
        .next()
        .unwrap_or_else(|| "100".into())
        .split(',')
        .map(String::from)
        .collect();
    let runs: usize = common::env_or("SCANS", 5);
    let mib: usize = common::env_or("TEXT_MIB", 4);
    let text_seed = common::text_seed();
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
    println!("strings {n}");
    for gap in gaps {
        let text = match gap.parse() {
            Ok(g) => normalize(&common::text_with_gap(mib << 20, &strings, text_seed, g)),
            Err(_) => normalize(&common::mail_text(mib << 20, true)),
        };
        let v = common::versus_nfa(runs, &lib, &ac, &text);
        let ((ratio, low, high), (m1, m2)) = (v.ratio, v.matches);
        println!(
            "gap {gap:>4}: mailward {:7.1} MiB/s  ac-nfa {:6.1} MiB/s (medians)  paired ratio {ratio:.2} (min {low:.2}, max {high:.2})  matches {m1}/{m2} ({:.1} bytes/match)",
            v.ours,
            v.theirs,
            text.len() as f64 / m1 as f64
        );
    }
}
