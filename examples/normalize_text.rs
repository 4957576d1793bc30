//! Normalization speed on real mail: the texts the milter scans in the
//! messages of `$MAILWARD_CORPUS/spamassassin` (subjects and text parts
//! decoded, HTML reduced to text), normalized `ROUNDS` times (default 20).
//! Exact figures from callgrind: `ROUNDS=1 valgrind --tool=callgrind
//! --toggle-collect='*normalize_into*' target/release/examples/normalize_text`
#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use mailward::library::normalize::normalize_into;

fn main() {
    let Some(dir) = common::corpus() else {
        eprintln!("set MAILWARD_CORPUS to a folder with spamassassin/");
        std::process::exit(2);
    };
    let opts = mailward::message::DecodeOptions::default();
    let parts: Vec<String> = common::messages(&dir.join("spamassassin"))
        .iter()
        .flat_map(|m| mailward::message::decode(m, &opts).parts)
        .map(|p| p.text)
        .collect();
    let bytes: usize = parts.iter().map(String::len).sum();
    let rounds: usize = common::env_or("ROUNDS", 20);
    let mut out = String::with_capacity(bytes);
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        out.clear();
        // One text at a time, as the milter normalizes each part.
        for p in &parts {
            normalize_into(p, &mut out);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{} bytes in {} texts -> {} bytes; {:.0} MB/s",
        bytes,
        parts.len(),
        out.len(),
        bytes as f64 / best / 1e6
    );
}
