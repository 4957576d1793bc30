//! Scan throughput, build time and index memory of the keyword index
//! against aho-corasick (contiguous NFA everywhere; DFA where it builds) on
//! the same libraries and the same normalized text.
//!
//! `cargo bench --bench engine` runs the synthetic libraries of 10 k, 100 k
//! and 1 M strings (`MAILWARD_BENCH_SIZES=10000,100000` to choose). With
//! `MAILWARD_CORPUS` set to a folder holding `lexicon-zh/*.txt` and
//! `spamassassin/`, the real lists are scanned against the real messages
//! too, raw and decoded (the texts the milter scans). Each index is built
//! once per run, outside criterion's loop; the build times and memory are
//! printed as a table at the end and written to `target/bench-engine.md`,
//! followed by a second table: mailward and aho-corasick's NFA timed in
//! alternating rounds, outside criterion, and the median of the per-round
//! ratios (criterion measures one engine after the other, and this
//! machine's speed drifts in between).

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mailward::library::normalize::normalize;
use mailward::library::{Attrs, BuildOptions, Builder, Library, MatchMode, Origin, Scanner};

const TEXT_BYTES: usize = 4 << 20;

struct Row {
    name: String,
    strings: usize,
    raw_bytes: usize,
    engine: &'static str,
    build: Option<Duration>,
    memory: Option<usize>,
    matches: Option<usize>,
    /// Against aho-corasick's NFA, scans alternated (mailward rows only).
    paired: Option<common::Versus>,
}

/// Rounds of the paired measurement. Criterion times one engine after the
/// other, a minute apart; on a shared VM whose speed drifts, their ratio
/// moves with the machine. The paired ratio is the figure the targets are
/// read from.
const PAIRED_ROUNDS: usize = 31;

fn build_ours(strings: &[String], opts: BuildOptions) -> (Library, Duration) {
    let t = Instant::now();
    let mut b = Builder::new(opts);
    let source = b.add_source("bench");
    b.reserve(strings.len(), 16);
    let attrs = Attrs {
        weight: 1.0,
        category: b.category("bench"),
        action: None,
        mode: MatchMode::Substring,
    };
    for (i, s) in strings.iter().enumerate() {
        // Generated and real strings are all valid entries; skip any that
        // normalize to nothing rather than abort the benchmark.
        let _ = b.add(
            s,
            attrs,
            None,
            Origin {
                source,
                line: i as u32 + 1,
            },
        );
    }
    let lib = b.build();
    (lib, t.elapsed())
}

fn build_ac(strings: &[String], kind: AhoCorasickKind) -> Option<(AhoCorasick, Duration)> {
    let t = Instant::now();
    AhoCorasick::builder()
        .kind(Some(kind))
        .match_kind(MatchKind::Standard)
        .build(strings)
        .ok()
        .map(|ac| (ac, t.elapsed()))
}

/// Vectorscan's literal API in block mode: every match reported, so its
/// count equals the others'.
#[cfg(feature = "vectorscan")]
mod vectorscan {
    use std::time::{Duration, Instant};

    use hyperscan_sys as hs;

    pub struct Db {
        db: *mut hs::hs_database_t,
        scratch: *mut hs::hs_scratch_t,
    }

    impl Db {
        pub fn build(strings: &[String]) -> Option<(Db, Duration)> {
            let t = Instant::now();
            let ptrs: Vec<*const libc::c_char> =
                strings.iter().map(|s| s.as_ptr().cast()).collect();
            let lens: Vec<usize> = strings.iter().map(String::len).collect();
            let ids: Vec<libc::c_uint> = (0..strings.len() as libc::c_uint).collect();
            let flags = vec![0 as libc::c_uint; strings.len()];
            let mut db = std::ptr::null_mut();
            let mut err = std::ptr::null_mut();
            // SAFETY: the arrays hold `strings.len()` valid elements each.
            let rc = unsafe {
                hs::hs_compile_lit_multi(
                    ptrs.as_ptr(),
                    flags.as_ptr(),
                    ids.as_ptr(),
                    lens.as_ptr(),
                    strings.len() as libc::c_uint,
                    hs::HS_MODE_BLOCK,
                    std::ptr::null(),
                    &mut db,
                    &mut err,
                )
            };
            if rc != hs::HS_SUCCESS as i32 {
                // SAFETY: on failure `err` is a compile error to free.
                unsafe { hs::hs_free_compile_error(err) };
                return None;
            }
            let mut scratch = std::ptr::null_mut();
            // SAFETY: `db` is a valid database.
            if unsafe { hs::hs_alloc_scratch(db, &mut scratch) } != hs::HS_SUCCESS as i32 {
                return None;
            }
            Some((Db { db, scratch }, t.elapsed()))
        }

        pub fn memory(&self) -> usize {
            let (mut db, mut sc) = (0usize, 0usize);
            // SAFETY: valid database and scratch.
            unsafe {
                hs::hs_database_size(self.db, &mut db);
                hs::hs_scratch_size(self.scratch, &mut sc);
            }
            db + sc
        }

        pub fn count(&self, text: &str) -> usize {
            unsafe extern "C" fn on_match(
                _id: libc::c_uint,
                _from: libc::c_ulonglong,
                _to: libc::c_ulonglong,
                _flags: libc::c_uint,
                ctx: *mut libc::c_void,
            ) -> libc::c_int {
                // SAFETY: `ctx` is the `usize` counter passed below.
                unsafe { *ctx.cast::<usize>() += 1 };
                0
            }
            let mut n = 0usize;
            // SAFETY: valid database, scratch and text; the callback only
            // touches the counter.
            unsafe {
                hs::hs_scan(
                    self.db,
                    text.as_ptr().cast(),
                    text.len() as libc::c_uint,
                    0,
                    self.scratch,
                    Some(on_match),
                    (&mut n as *mut usize).cast(),
                );
            }
            n
        }
    }

    impl Drop for Db {
        fn drop(&mut self) {
            // SAFETY: allocated by `build`, freed once.
            unsafe {
                hs::hs_free_scratch(self.scratch);
                hs::hs_free_database(self.db);
            }
        }
    }
}

fn ours_matches(lib: &Library, text: &str) -> usize {
    let mut s = Scanner::new();
    s.scan_normalized(lib, text)
        .iter()
        .map(|h| h.count as usize)
        .sum()
}

fn compare(c: &mut Criterion, rows: &mut Vec<Row>, name: &str, strings: Vec<String>, text: String) {
    // The same normalized strings for every engine.
    let mut strings: Vec<String> = strings
        .iter()
        .map(|s| normalize(s))
        .filter(|s| !s.is_empty())
        .collect();
    strings.sort_unstable();
    strings.dedup();
    let text = normalize(&text);
    let raw_bytes: usize = strings.iter().map(String::len).sum();
    let n = strings.len();
    let row = |engine, build, memory, matches| Row {
        name: name.to_string(),
        strings: n,
        raw_bytes,
        engine,
        build,
        memory,
        matches,
        paired: None,
    };

    let (lib, t) = build_ours(&strings, BuildOptions::default());
    rows.push(row(
        "mailward",
        Some(t),
        Some(lib.stats().index_bytes),
        Some(ours_matches(&lib, &text)),
    ));
    let nfa = build_ac(&strings, AhoCorasickKind::ContiguousNFA);
    if let Some((ac, t)) = &nfa {
        if let Some(ours) = rows.last_mut() {
            ours.paired = Some(common::versus_nfa(PAIRED_ROUNDS, &lib, ac, &text));
        }
        rows.push(row(
            "ac-nfa",
            Some(*t),
            Some(ac.memory_usage()),
            Some(ac.find_overlapping_iter(&text).count()),
        ));
    }
    // The DFA needs gigabytes near a million strings: not built there.
    let dfa = if n <= 150_000 {
        build_ac(&strings, AhoCorasickKind::DFA)
    } else {
        None
    };
    match &dfa {
        Some((ac, t)) => rows.push(row(
            "ac-dfa",
            Some(*t),
            Some(ac.memory_usage()),
            Some(ac.find_overlapping_iter(&text).count()),
        )),
        None => rows.push(row("ac-dfa", None, None, None)),
    }

    #[cfg(feature = "vectorscan")]
    let vs = vectorscan::Db::build(&strings);
    #[cfg(feature = "vectorscan")]
    match &vs {
        Some((db, t)) => rows.push(row(
            "vectorscan",
            Some(*t),
            Some(db.memory()),
            Some(db.count(&text)),
        )),
        None => rows.push(row("vectorscan", None, None, None)),
    }

    let mut g = c.benchmark_group(format!("scan/{name}"));
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    let mut scanner = Scanner::new();
    g.bench_function(BenchmarkId::new("mailward", n), |b| {
        b.iter(|| scanner.scan_normalized(&lib, &text).len())
    });
    if let Some((ac, _)) = &nfa {
        g.bench_function(BenchmarkId::new("ac-nfa", n), |b| {
            b.iter(|| ac.find_overlapping_iter(&text).count())
        });
    }
    if let Some((ac, _)) = &dfa {
        g.bench_function(BenchmarkId::new("ac-dfa", n), |b| {
            b.iter(|| ac.find_overlapping_iter(&text).count())
        });
    }
    #[cfg(feature = "vectorscan")]
    if let Some((db, _)) = &vs {
        g.bench_function(BenchmarkId::new("vectorscan", n), |b| {
            b.iter(|| db.count(&text))
        });
    }
    g.finish();
}

fn engine(c: &mut Criterion) {
    let sizes: Vec<usize> = std::env::var("MAILWARD_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let mut rows = Vec::new();
    for &n in &sizes {
        let strings = common::library(n, 42);
        let text = common::text(TEXT_BYTES, &strings, 7);
        compare(c, &mut rows, &format!("synthetic-{n}"), strings, text);
    }
    if let Some(dir) = common::corpus() {
        let strings = common::list_lines(&dir.join("lexicon-zh"));
        let messages = common::messages(&dir.join("spamassassin"));
        // The messages as they arrive, and the texts the milter scans.
        let (mut raw, mut decoded) = (String::new(), String::new());
        for m in &messages {
            if raw.len() <= 16 << 20 {
                raw.push_str(&String::from_utf8_lossy(m));
                raw.push('\n');
            }
            if decoded.len() <= 16 << 20 {
                common::push_decoded(m, &mut decoded);
            }
        }
        for (name, text) in [("raw", raw), ("decoded", decoded)] {
            if !strings.is_empty() && !text.is_empty() {
                let name = format!("lexicon-zh+spamassassin-{name}");
                compare(c, &mut rows, &name, strings.clone(), text);
            }
        }
    }
    report(&rows);
}

fn report(rows: &[Row]) {
    let mut out = String::from(
        "| data | strings | raw MB | engine | build ms | index MB | index/raw | matches |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let mb = |b: usize| b as f64 / (1 << 20) as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} |",
            r.name,
            r.strings,
            mb(r.raw_bytes),
            r.engine,
            r.build.map_or("not built".into(), |d| format!(
                "{:.0}",
                d.as_secs_f64() * 1e3
            )),
            r.memory.map_or("-".into(), |m| format!("{:.1}", mb(m))),
            r.memory.map_or("-".into(), |m| format!(
                "{:.2}",
                m as f64 / r.raw_bytes as f64
            )),
            r.matches.map_or("-".into(), |m| m.to_string()),
        );
    }
    out.push_str(
        "\n| data | strings | mailward MiB/s | ac-nfa MiB/s | paired ratio (min-max) | matches |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        if let Some(p) = &r.paired {
            let (mid, low, high) = p.ratio;
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {mid:.2} ({low:.2}-{high:.2}) | {} / {} |",
                r.name, r.strings, p.ours, p.theirs, p.matches.0, p.matches.1
            );
        }
    }
    eprintln!("\n{out}");
    let _ = std::fs::create_dir_all("target");
    let _ = std::fs::write("target/bench-engine.md", out);
}

criterion_group!(benches, engine);
criterion_main!(benches);
