//! The cost of scanning one small message: a subject (the body's first 60
//! bytes), a body of 2 000 bytes and a second part of 200 (mixed English
//! and CJK from the benchmark's generator) against a synthetic library of
//! 100 000 strings, normalized and scanned part by part as the milter does. A quick look while tuning;
//! exact figures come from callgrind:
//! `valgrind --tool=callgrind --toggle-collect='*scan_buf*'
//! --toggle-collect='*normalize_into*' target/release/examples/small_scan`
#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use mailward::library::{BuildOptions, EntrySpec, Library, Scanner};

const MESSAGES: usize = 50_000;

fn main() {
    let strings = common::library(100_000, 42);
    let text = common::text(64 << 10, &strings, 7);
    let specs: Vec<EntrySpec> = strings.iter().map(EntrySpec::new).collect();
    let lib = Library::from_specs(&specs, BuildOptions::default()).expect("valid");
    let cut = |at: usize| {
        (at..)
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len())
    };
    let (a, b, c) = (cut(60), cut(2000), cut(2200));
    let parts = [&text[..a], &text[..b], &text[b..c]];
    let mut s = Scanner::new();
    for round in 0..3 {
        let t = Instant::now();
        let mut hits = 0;
        for _ in 0..MESSAGES {
            hits += s.scan_parts(&lib, parts).len();
        }
        println!(
            "round {round}: {:.2} µs per message of {} bytes ({} hits each)",
            t.elapsed().as_secs_f64() * 1e6 / MESSAGES as f64,
            a + c,
            hits / MESSAGES
        );
    }
}
