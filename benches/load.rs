//! Library loading: the same strings as YAML shorthand entries, as YAML
//! mappings, and as one plain-text include; plus the build alone (no file
//! format) as the floor.
//!
//! `cargo bench --bench load -- --sample-size 10`
//!
//! The files are written to a temporary directory once, before timing.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailward::library::{BuildOptions, EntrySpec, Library};

const N: usize = 100_000;

/// Deterministic pseudo-random numbers (64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as u32
    }
}

/// `N` strings: two thirds ASCII phrases of one to three made-up words, one
/// third runs of 2 to 6 CJK ideographs. All are plain YAML scalars (letters,
/// spaces and ideographs only).
fn strings() -> Vec<String> {
    const ONSET: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "k", "l", "m", "p", "r", "s", "t", "v", "z", "st", "pr", "gl",
    ];
    const NUCLEUS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ou"];
    let mut rng = Lcg(0x6d61_696c_7761_7264);
    (0..N)
        .map(|i| {
            let mut s = String::new();
            if i % 3 == 2 {
                for _ in 0..2 + rng.next(5) {
                    s.push(char::from_u32(0x4E00 + rng.next(0x51A5)).unwrap_or('中'));
                }
            } else {
                for w in 0..1 + rng.next(3) {
                    if w > 0 {
                        s.push(' ');
                    }
                    for _ in 0..2 + rng.next(3) {
                        s.push_str(ONSET[rng.next(ONSET.len() as u32) as usize]);
                        s.push_str(NUCLEUS[rng.next(NUCLEUS.len() as u32) as usize]);
                    }
                }
            }
            s
        })
        .collect()
}

struct Files {
    dir: PathBuf,
    shorthand: PathBuf,
    mappings: PathBuf,
    include: PathBuf,
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_files(strings: &[String]) -> Files {
    let dir = std::env::temp_dir().join(format!("mailward-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write bench file");
        p
    };

    let mut short = String::from("defaults: {weight: 2, category: bench}\nentries:\n");
    let mut full = String::from("entries:\n");
    let mut list = String::from("# bench list\n");
    for (i, s) in strings.iter().enumerate() {
        writeln!(short, "  - {s}").unwrap();
        writeln!(
            full,
            "  - text: {s}\n    weight: 2\n    category: bench{}",
            i % 4
        )
        .unwrap();
        writeln!(list, "{s}").unwrap();
    }
    let files = Files {
        shorthand: write("shorthand.yaml", &short),
        mappings: write("mappings.yaml", &full),
        include: write(
            "include.yaml",
            "include:\n  - path: list.txt\n    weight: 2\n",
        ),
        dir: dir.clone(),
    };
    write("list.txt", &list);
    files
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn load(c: &mut Criterion) {
    let strings = strings();
    let files = write_files(&strings);
    let specs: Vec<EntrySpec> = strings.iter().map(EntrySpec::new).collect();
    let entries = Library::load(&files.shorthand).expect("loads").len();
    eprintln!(
        "{N} strings, {entries} distinct; shorthand.yaml {} bytes, mappings.yaml {} bytes, list.txt {} bytes",
        size(&files.shorthand),
        size(&files.mappings),
        size(&files.dir.join("list.txt")),
    );

    let mut g = c.benchmark_group("load_100k");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(N as u64));
    g.bench_function("yaml_shorthand", |b| {
        b.iter(|| black_box(Library::load(&files.shorthand).expect("loads")))
    });
    g.bench_function("yaml_mappings", |b| {
        b.iter(|| black_box(Library::load(&files.mappings).expect("loads")))
    });
    g.bench_function("text_include", |b| {
        b.iter(|| black_box(Library::load(&files.include).expect("loads")))
    });
    g.bench_function("build_only", |b| {
        b.iter(|| black_box(Library::from_specs(&specs, BuildOptions::default()).expect("builds")))
    });
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
