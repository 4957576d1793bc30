//! The cost of scanning one small message: a subject (the body's first 60
//! bytes), a body of 2 000 bytes and a second part of 200 (mixed English
//! and CJK from the benchmark's generator) against a synthetic library of
//! 100 000 strings, normalized and scanned part by part as the milter does. A quick look while tuning;
//! exact figures come from callgrind:
//! `valgrind --tool=callgrind --toggle-collect='*scan_buf*'
//! --toggle-collect='*normalize_into*' target/release/examples/small_scan`.
//! `BITS=n` sets the filters' bits per key; `COLD=m` writes through `m` MiB
//! between messages, as a milter's other work would, so each scan starts
//! with the index out of the caches (that writing is timed apart and taken
//! off).
#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use mailward::library::{BuildOptions, EntrySpec, Library, Scanner};

const MESSAGES: usize = 50_000;

fn main() {
    let strings = common::library(100_000, 42);
    let text = common::text(64 << 10, &strings, 7);
    let specs: Vec<EntrySpec> = strings.iter().map(EntrySpec::new).collect();
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let opts = BuildOptions {
        bits_per_key: env("BITS").unwrap_or(BuildOptions::default().bits_per_key),
        ..BuildOptions::default()
    };
    let lib = Library::from_specs(&specs, opts).expect("valid");
    let mut cold = vec![0u8; env("COLD").unwrap_or(0) << 20];
    let messages = if cold.is_empty() {
        MESSAGES
    } else {
        MESSAGES / 10
    };
    let mut thrash = |round: u8| {
        for line in cold.chunks_mut(64) {
            line[0] = line[0].wrapping_add(round);
        }
    };
    println!("memory {} bytes", lib.stats().memory_bytes);
    let cut = |at: usize| {
        (at..)
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len())
    };
    let (a, b, c) = (cut(60), cut(2000), cut(2200));
    let parts = [&text[..a], &text[..b], &text[b..c]];
    let mut s = Scanner::new();
    for round in 0..3u8 {
        let (mut scanning, mut thrashing) = (0.0, 0.0);
        let mut hits = 0;
        for _ in 0..messages {
            let t = Instant::now();
            thrash(round);
            thrashing += t.elapsed().as_secs_f64();
            let t = Instant::now();
            hits += s.scan_parts(&lib, parts).len();
            scanning += t.elapsed().as_secs_f64();
        }
        println!(
            "round {round}: {:.2} µs per message of {} bytes ({} hits each; {:.1} µs writing between)",
            scanning * 1e6 / messages as f64,
            a + c,
            hits / messages,
            thrashing * 1e6 / messages as f64
        );
    }
}
