//! How many random cache lines per second this machine reads from a buffer
//! of a given size, with 1 to 32 independent chains of dependent reads in
//! flight: the ceiling for the scan's table lookups, each of which reads a
//! few lines at random from an index of tens of megabytes.
//! `cargo run --release --example memory_lines -- 64 1,8,32`
//! (buffer size in MiB, then the chain counts; defaults 64 and 1,8,32)

use std::time::Instant;

/// Reads per timed run, shared among the chains.
const READS: usize = 4_000_000;
const LINE_WORDS: usize = 8;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let chains: Vec<usize> = args
        .next()
        .map(|s| s.split(',').filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 32]);
    let lines = (mib << 20) / 64;
    // One cycle through every line in a random order: each line's first
    // word holds the index of the next line's first word.
    let mut order: Vec<usize> = (0..lines).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut buf = vec![0usize; lines * LINE_WORDS];
    for (k, &line) in order.iter().enumerate() {
        buf[line * LINE_WORDS] = order[(k + 1) % lines] * LINE_WORDS;
    }
    for &c in chains.iter().filter(|&&c| c > 0) {
        let steps = READS / c;
        // Best of five: the machine may be shared.
        let mut best = f64::MAX;
        for _ in 0..5 {
            let mut at: Vec<usize> = (0..c)
                .map(|k| order[k * (lines / c)] * LINE_WORDS)
                .collect();
            let t = Instant::now();
            for _ in 0..steps {
                for p in at.iter_mut() {
                    *p = buf[*p];
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
            std::hint::black_box(&at);
        }
        let reads = (steps * c) as f64;
        println!(
            "{mib} MiB, {c:2} chains: {:6.1} ns per read, {:6.1} M lines/s",
            best / reads * 1e9,
            reads / best / 1e6
        );
    }
}
