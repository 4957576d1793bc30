//! Reload under load: a library of a million strings (one plain-text
//! include) is reloaded again and again while 32 milter sessions send
//! messages back to back, and every message must be judged by the rules in
//! force when the milter took its MAIL. A release-mode run, ignored by
//! default (`.ci/run` runs it):
//!
//! ```sh
//! cargo test --release --test reload_stress -- --ignored --nocapture
//! ```
//!
//! # The check
//!
//! Two library versions share the million strings (weight 0: they are
//! found, so the scan does its full work, but score nothing) and differ in
//! one marker entry of weight 20: version A rejects messages that carry
//! `alphamarkerqz`, version B those that carry `betamarkerqz`. The milter
//! runs in tag mode, so every message is accepted with a verdict header
//! naming its verdict and its rules generation. Generation 1 is A, and
//! reloads alternate B, A, (a broken library, which must change nothing),
//! B: an odd generation is A, an even one B.
//!
//! For every message the load generator records when its MAIL was sent
//! and when it was answered; each successful reload reports the instants
//! just before and after its swap. A message whose MAIL was answered
//! before a swap started must carry the older generation; one whose MAIL
//! was sent after the swap was done must carry the newer one (a MAIL in
//! flight during the swap may carry either). Its verdict must then be the
//! one its generation's version gives. Any message failed, refused, not
//! tagged, judged by the wrong generation or judged wrongly fails the run.
//!
//! # The figures
//!
//! Printed, not asserted (the machine is shared): per reload, its load
//! time and what the sessions saw while it ran; then, during the reloads
//! and outside them, throughput, message latency quantiles, the longest
//! single reply wait (one callback's round trip) and the longest gap
//! between two consecutive end-of-message replies of all sessions (a stall
//! of the whole milter).
//!
//! `MAILWARD_RELOAD_STRINGS` sizes the library (default 1 000 000);
//! `MAILWARD_RELOAD_RATE` paces the sessions to that many messages per
//! second in all (default: as fast as the milter answers), for latencies
//! below saturation.

#[path = "../benches/common/mod.rs"]
mod data;
#[path = "support/loadgen.rs"]
mod loadgen;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadgen::{At, Mail, MessageResult, Options, Reply};
use mailward::{Config, Reload, Reloaded};
use tokio::sync::{mpsc, oneshot};

const SESSIONS: usize = 32;
const MESSAGES_PER_SESSION: usize = 20;
/// Load before the first reload, and between reloads.
const WARM_UP: Duration = Duration::from_secs(3);
const GAP: Duration = Duration::from_secs(2);
const HEADER: &str = "X-Mailward";

const ALPHA: &str = "alphamarkerqz";
const BETA: &str = "betamarkerqz";

/// Log lines kept: warnings, errors, the start and the reloads; the rest
/// is formatted (as a real logger would) and dropped.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        let line = r.args().to_string();
        if r.level() <= log::Level::Warn
            || r.target() == "mailward::state"
            || line.starts_with("rules gen")
        {
            LOG.lock().unwrap().push(format!("{} {line}", r.level()));
        }
    }
    fn flush(&self) {}
}

fn logged(needle: &str) -> Option<String> {
    LOG.lock()
        .unwrap()
        .iter()
        .find(|l| l.contains(needle))
        .cloned()
}

/// Which library version a generation has.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Version {
    A,
    B,
}

fn version(generation: u64) -> Version {
    if generation % 2 == 1 {
        Version::A
    } else {
        Version::B
    }
}

/// The marker a mail carries: mail `i` carries alpha when `i % 3 == 0`,
/// beta when 1, none when 2.
fn expected(version: Version, mail: usize) -> &'static str {
    match (version, mail % 3) {
        (Version::A, 0) | (Version::B, 1) => "reject",
        _ => "accept",
    }
}

fn library_yaml(marker: &str, extra_include: Option<&str>) -> String {
    let mut y = format!(
        "entries:\n  - {{text: {marker}, id: marker, weight: 20, category: marker, match: word}}\n\
         include:\n  - {{path: list.txt, weight: 0, category: bulk, match: word}}\n"
    );
    if let Some(p) = extra_include {
        let _ = writeln!(y, "  - {{path: {p}, weight: 0, category: bulk}}");
    }
    y
}

/// Replaces `path` atomically (a reload never reads half a file).
fn replace(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// 300 messages of about 5 KB: text from the library's vocabulary, dense
/// with library strings, and a marker as the mail's index says.
fn mails(lib: &[String]) -> Vec<Mail> {
    const N: usize = 300;
    const BYTES: usize = 4000;
    let all = data::text(N * BYTES, lib, 11);
    let mut rest = all.as_str();
    (0..N)
        .map(|i| {
            let from = rest.floor_char_boundary(BYTES);
            let cut = rest[from..].find(' ').map_or(rest.len(), |k| from + k);
            let mut text = rest[..cut].to_string();
            rest = &rest[cut..];
            match i % 3 {
                0 => text.push_str(&format!(" {ALPHA} ")),
                1 => text.push_str(&format!(" {BETA} ")),
                _ => {}
            }
            Mail::from_raw(&loadgen::synthetic(i, &text))
        })
        .collect()
}

struct Step {
    name: &'static str,
    requested: Instant,
    answered: Instant,
    outcome: Result<Reloaded, String>,
}

/// The `q` quantile of `v` (sorted here), in milliseconds.
fn ms_quantile(v: &mut [Duration], q: f64) -> f64 {
    v.sort_unstable();
    loadgen::quantile(v, q).as_secs_f64() * 1e3
}

fn overlaps(a: (Instant, Instant), b: (Instant, Instant)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[test]
#[ignore = "release-mode stress run: cargo test --release --test reload_stress -- --ignored"]
fn reload_a_million_strings_under_load() {
    let strings: usize = std::env::var("MAILWARD_RELOAD_STRINGS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rate: Option<f64> = std::env::var("MAILWARD_RELOAD_RATE")
        .ok()
        .and_then(|s| s.parse().ok());
    if log::set_logger(&Capture).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }

    // ---- the files ----
    let t = Instant::now();
    let dir = std::env::temp_dir().join(format!("mailward-rs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lib = data::library(strings, 7);
    assert!(!lib.iter().any(|s| s.contains("markerqz")));
    let mut list = String::with_capacity(strings * 16);
    for s in &lib {
        list.push_str(s);
        list.push('\n');
    }
    std::fs::write(dir.join("list.txt"), &list).unwrap();
    drop(list);
    // A broken include: invalid UTF-8 on its line 3, column 3.
    std::fs::write(dir.join("broken.txt"), b"fine\nstill fine\nab\xffcd\n").unwrap();
    let library = dir.join("library.yaml");
    replace(&library, library_yaml(ALPHA, None).as_bytes());
    let config_path = dir.join("milter.yaml");
    std::fs::write(
        &config_path,
        "library: library.yaml\n\
         judge: {mode: tag, tag_accepted: true}\n\
         milter: {max_connections: 256}\n\
         behavior:\n  limits:\n    - {key: ip, metric: messages, window: 1m, max: 1000000000, action: monitor}\n",
    )
    .unwrap();
    let mails: Arc<[Mail]> = Arc::from(mails(&lib));
    drop(lib);
    println!(
        "files: {strings} strings, {:.1} MB list, written in {:.1}s",
        std::fs::metadata(dir.join("list.txt")).unwrap().len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // ---- the milter, as the binary runs it ----
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let t = Instant::now();
    let server = rt.spawn(mailward::run(listener, config, reload_rx, async move {
        let _ = stop_rx.await;
    }));
    // Connections are served once the rules are built.
    let probe = Options {
        timeout: Duration::from_secs(120),
        ..Options::default()
    };
    rt.block_on(loadgen::negotiate(addr, &probe)).unwrap();
    println!(
        "start: {} ({:.1}s)",
        logged("rules gen=1").unwrap_or_default(),
        t.elapsed().as_secs_f64()
    );

    // ---- the load ----
    let stop = Arc::new(AtomicBool::new(false));
    let opts = Options {
        concurrency: SESSIONS,
        sessions_per_worker: 1_000_000,
        messages_per_session: MESSAGES_PER_SESSION,
        queue_id_prefix: "RS".into(),
        stop: Some(stop.clone()),
        rate,
        timeout: Duration::from_secs(60),
        ..Options::default()
    };
    let load_started = Instant::now();
    let generator = {
        let mails = mails.clone();
        std::thread::Builder::new()
            .name("loadgen".into())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(loadgen::run(addr, mails, &opts))
            })
            .unwrap()
    };

    // ---- the reloads ----
    std::thread::sleep(WARM_UP);
    let mut steps = Vec::new();
    for (name, yaml) in [
        ("A → B", library_yaml(BETA, None)),
        ("B → A", library_yaml(ALPHA, None)),
        ("broken", library_yaml(BETA, Some("broken.txt"))),
        ("A → B", library_yaml(BETA, None)),
    ] {
        replace(&library, yaml.as_bytes());
        let (req, done) = Reload::with_report();
        let requested = Instant::now();
        rt.block_on(reload_tx.send(req)).unwrap();
        let outcome = rt.block_on(done).unwrap().map_err(|e| e.to_string());
        let answered = Instant::now();
        steps.push(Step {
            name,
            requested,
            answered,
            outcome,
        });
        std::thread::sleep(GAP);
    }
    stop.store(true, Ordering::Relaxed);
    let report = generator.join().unwrap();
    let load_ended = Instant::now();
    let _ = stop_tx.send(());
    rt.block_on(server).unwrap().unwrap();

    // ---- the outcomes of the reloads ----
    let mut swaps: Vec<(u64, Instant, Instant)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match (&s.outcome, s.name) {
            (Ok(r), name) => {
                assert_ne!(name, "broken", "the broken library was taken");
                swaps.push((r.generation, r.swap_started, r.swap_done));
            }
            (Err(e), "broken") => {
                assert!(e.contains("broken.txt:3:3: not valid UTF-8"), "{e}");
                let line = logged("reload failed").expect("the failure is logged");
                assert!(line.contains("keeping gen=3"), "{line}");
                assert!(line.contains("broken.txt:3:3"), "{line}");
            }
            (Err(e), _) => panic!("reload {i} failed: {e}"),
        }
    }
    assert_eq!(
        swaps.iter().map(|s| s.0).collect::<Vec<_>>(),
        [2, 3, 4],
        "generations"
    );

    // ---- every message ----
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut wrong = Vec::new();
    let mut ambiguous = 0;
    let mut by_generation = [0usize; 5];
    for r in &report.results {
        let verdict = r.header_field(HEADER, "verdict");
        let generation = r.generation(HEADER);
        let (Some(verdict), Some(generation), At::Eom, Reply::Accept) =
            (verdict, generation, r.at, &r.reply)
        else {
            wrong.push(format!("{}: not tagged and accepted: {r:?}", r.queue_id));
            continue;
        };
        let mail_answered = r.mail_answered.expect("MAIL is answered");
        let lo = swaps
            .iter()
            .filter(|s| s.2 < r.started)
            .map(|s| s.0)
            .max()
            .unwrap_or(1);
        let hi = swaps
            .iter()
            .filter(|s| s.1 < mail_answered)
            .map(|s| s.0)
            .max()
            .unwrap_or(1);
        if lo != hi {
            ambiguous += 1;
        }
        if !(lo..=hi).contains(&generation) {
            wrong.push(format!(
                "{}: gen={generation}, but gen {lo}..={hi} was in force at its MAIL",
                r.queue_id
            ));
        }
        let want = expected(version(generation), r.mail);
        if verdict != want {
            wrong.push(format!(
                "{}: mail {} judged {verdict} by gen={generation}, expected {want}",
                r.queue_id, r.mail
            ));
        }
        if let Some(n) = by_generation.get_mut(generation as usize) {
            *n += 1;
        }
    }

    // ---- the figures ----
    let windows: Vec<(Instant, Instant)> =
        steps.iter().map(|s| (s.requested, s.answered)).collect();
    let quiet_from = load_started + Duration::from_secs(1);
    let span = |r: &MessageResult| (r.started, r.started + r.latency);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} messages over {SESSIONS} sessions ({}) in {:.1}s ({:.0} msg/s); by generation {:?}; \
         {ambiguous} with MAIL in flight during a swap",
        report.results.len(),
        rate.map_or("closed loop".to_string(), |r| format!("paced at {r} msg/s")),
        (load_ended - load_started).as_secs_f64(),
        report.results.len() as f64 / (load_ended - load_started).as_secs_f64(),
        &by_generation[1..]
    );
    let _ = writeln!(
        out,
        "\n| reload | outcome | load s | messages during | longest reply wait ms |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for s in &steps {
        let during: Vec<&MessageResult> = report
            .results
            .iter()
            .filter(|r| overlaps(span(r), (s.requested, s.answered)))
            .collect();
        let worst = during
            .iter()
            .map(|r| r.slowest_reply)
            .max()
            .unwrap_or_default();
        let (outcome, load) = match &s.outcome {
            Ok(r) => (format!("gen={}", r.generation), r.load_time.as_secs_f64()),
            Err(_) => (
                "failed, kept gen=3".to_string(),
                (s.answered - s.requested).as_secs_f64(),
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {outcome} | {load:.2} | {} | {:.1} |",
            s.name,
            during.len(),
            worst.as_secs_f64() * 1e3
        );
    }
    // Gaps between consecutive end-of-message replies of all sessions.
    let mut ends: Vec<Instant> = report
        .results
        .iter()
        .map(|r| r.started + r.latency)
        .filter(|&e| e > quiet_from)
        .collect();
    ends.sort_unstable();
    let (mut gap_during, mut gap_quiet) = (Duration::ZERO, Duration::ZERO);
    for w in ends.windows(2) {
        let g = w[1] - w[0];
        if windows.iter().any(|&win| overlaps((w[0], w[1]), win)) {
            gap_during = gap_during.max(g);
        } else {
            gap_quiet = gap_quiet.max(g);
        }
    }
    let _ = writeln!(
        out,
        "\n| period | seconds | messages | msg/s | p50 ms | p99 ms | max ms | longest reply wait ms | longest gap between replies ms |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let during_secs: f64 = windows.iter().map(|w| (w.1 - w.0).as_secs_f64()).sum();
    let quiet_secs = (load_ended - quiet_from).as_secs_f64() - during_secs;
    for (period, secs, gap, during) in [
        ("during reloads", during_secs, gap_during, true),
        ("outside reloads", quiet_secs, gap_quiet, false),
    ] {
        let set: Vec<&MessageResult> = report
            .results
            .iter()
            .filter(|r| r.started > quiet_from)
            .filter(|r| windows.iter().any(|&w| overlaps(span(r), w)) == during)
            .collect();
        let mut lat: Vec<Duration> = set.iter().map(|r| r.latency).collect();
        let worst = set
            .iter()
            .map(|r| r.slowest_reply)
            .max()
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {period} | {secs:.1} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            set.len(),
            set.len() as f64 / secs.max(1e-9),
            ms_quantile(&mut lat, 0.5),
            ms_quantile(&mut lat, 0.99),
            ms_quantile(&mut lat, 1.0),
            worst.as_secs_f64() * 1e3,
            gap.as_secs_f64() * 1e3
        );
    }
    for l in LOG.lock().unwrap().iter() {
        let _ = writeln!(out, "log: {l}");
    }
    println!("{out}");
    let md = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reload-stress.md");
    let _ = std::fs::write(&md, &out);
    let _ = std::fs::remove_dir_all(&dir);

    assert!(
        wrong.is_empty(),
        "{} message(s) wrong:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    assert!(
        by_generation[1..].iter().all(|&n| n > 0),
        "every generation judged messages: {by_generation:?}"
    );
}
