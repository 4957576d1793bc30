//! Writes the benchmarks' synthetic library (`benches/common`) as a plain-text
//! list, one string per line, for sizing a library of a given size with
//! `mailward check` (docs/operations.md).
//!
//! `cargo run --release --example gen_library -- 1000000 > big.txt`
#[path = "../benches/common/mod.rs"]
mod common;

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut out = BufWriter::new(std::io::stdout().lock());
    for s in common::library(n, 42) {
        writeln!(out, "{s}")?;
    }
    out.flush()
}
