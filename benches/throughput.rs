//! Milter throughput: mailward with a 100 000-string library against a
//! do-nothing milter that negotiates exactly the same events, replies,
//! macros and actions, both driven by the load generator
//! (`tests/support/loadgen.rs`) over loopback in the same process run, on
//! the same messages.
//!
//! ```sh
//! cargo bench --bench throughput                       # generated messages
//! MAILWARD_CORPUS=path/to/corpus cargo bench --bench throughput
//! cargo bench --bench throughput -- --sessions 32 --rounds 3 --only mailward
//! ```
//!
//! Messages: every raw file under `$MAILWARD_CORPUS/spamassassin/` when
//! set, else 1 000 generated ones of about 5 KB with 15 header fields, a
//! third of them multipart/alternative with an HTML part. Their text comes
//! from a vocabulary of its own; one in five also carries three library
//! strings and one in five a library string every 100 bytes. The library
//! is one plain-text include (weight 1, word match) of
//! `common::library(100_000, 42)`.
//!
//! Closed loop: each run sends the same `--messages` (6 400) messages in
//! sessions of `--per-session` (10) messages, over 1, 8 and 32 concurrent
//! sessions (`--sessions`), each session sending its next message as soon
//! as the last is answered. Fixed load: `--paced` (1 000 and 2 000 msg/s)
//! runs of `--paced-messages` (3 200) over the most sessions, for latency
//! below saturation. The two milters alternate run by run for `--rounds`
//! (5) rounds, so that background load falls on both; figures are medians
//! over the rounds with their range.
//!
//! Both milters serve on a multi-thread tokio runtime with one worker per
//! core, as the binary does; mailward logs each message's line through
//! env_logger into /dev/null (`MAILWARD_BENCH_LOG=stderr` to see them):
//! the formatting and the write cost what they cost in production. The
//! generator runs on a current-thread runtime of its own thread, so its CPU
//! time is that thread's; the milter's is the process's minus the
//! generator's; the rest of the machine's is the background load.
//!
//! `--only mailward|nothing` runs one milter, `--library N` sizes the
//! library, `--connect HOST:PORT` only drives a milter already running
//! there. The table is printed and written to `target/bench-throughput.md`.

mod common;
#[path = "../tests/support/loadgen.rs"]
mod loadgen;

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indymilter::{Actions, Callbacks, MacroStage, ProtoOpts, Status};
use loadgen::{Mail, Options, Report};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// The actions and macros mailward asks for (src/milter.rs). The bench
/// checks that both milters negotiate the same before measuring.
const ACTIONS: Actions = Actions::ADD_HEADER
    .union(Actions::CHANGE_HEADER)
    .union(Actions::QUARANTINE)
    .union(Actions::REQUEST_MACROS);
const MACROS: &[(MacroStage, &str)] = &[
    (
        MacroStage::Connect,
        "{client_addr} {client_name} j {daemon_addr}",
    ),
    (MacroStage::Mail, "i {auth_type} {auth_authen} {mail_addr}"),
    (MacroStage::Rcpt, "{rcpt_addr}"),
    (MacroStage::Data, "i"),
    (MacroStage::Eom, "i"),
];

/// A milter that registers mailward's callbacks and does nothing in them.
fn do_nothing() -> Callbacks<()> {
    Callbacks::new()
        .on_negotiate(|cx, actions, opts| {
            Box::pin(async move {
                cx.requested_actions = actions & ACTIONS;
                cx.requested_opts |= opts & (ProtoOpts::NOREPLY_HEADER | ProtoOpts::NOREPLY_EOH);
                if actions.contains(Actions::REQUEST_MACROS) {
                    cx.requested_macros = MACROS
                        .iter()
                        .map(|(s, m)| (*s, CString::new(*m).unwrap()))
                        .collect::<HashMap<_, _>>();
                }
                Status::Continue
            })
        })
        .on_connect(|_, _, _| Box::pin(async { Status::Continue }))
        .on_helo(|_, _| Box::pin(async { Status::Continue }))
        .on_data(|_| Box::pin(async { Status::Continue }))
        .on_unknown(|_, _| Box::pin(async { Status::Continue }))
        .on_close(|_| Box::pin(async { Status::Continue }))
        .on_mail(|_, _| Box::pin(async { Status::Continue }))
        .on_rcpt(|_, _| Box::pin(async { Status::Continue }))
        .on_header(|_, _, _| Box::pin(async { Status::Noreply }))
        .on_eoh(|_| Box::pin(async { Status::Noreply }))
        .on_body(|_, _| Box::pin(async { Status::Continue }))
        .on_eom(|_| Box::pin(async { Status::Accept }))
        .on_abort(|_| Box::pin(async { Status::Continue }))
}

struct Args {
    messages: usize,
    per_session: usize,
    sessions: Vec<usize>,
    rounds: usize,
    only: Option<String>,
    library: usize,
    connect: Option<SocketAddr>,
    paced: Vec<f64>,
    paced_messages: usize,
}

fn args() -> Args {
    let mut a = Args {
        messages: 6400,
        per_session: 10,
        sessions: vec![1, 8, 32],
        rounds: 5,
        only: None,
        library: 100_000,
        connect: None,
        paced: vec![1000.0, 2000.0],
        paced_messages: 3200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--messages" => a.messages = v().parse().expect("--messages N"),
            "--per-session" => a.per_session = v().parse().expect("--per-session N"),
            "--sessions" => {
                a.sessions = v()
                    .split(',')
                    .map(|s| s.parse().expect("--sessions 1,8,32"))
                    .collect()
            }
            "--rounds" => a.rounds = v().parse().expect("--rounds N"),
            "--only" => a.only = Some(v()),
            "--library" => a.library = v().parse().expect("--library N"),
            "--connect" => a.connect = Some(v().parse().expect("--connect HOST:PORT")),
            "--paced" => {
                a.paced = v()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("--paced 1000,2000"))
                    .collect()
            }
            "--paced-messages" => a.paced_messages = v().parse().expect("--paced-messages N"),
            // cargo bench passes --bench; criterion-style filters are ignored.
            _ => {}
        }
    }
    a
}

/// About `bytes` of English-like text: sentences of words drawn (Zipf)
/// from `v`, now and then a link; with `lib`, a library string after
/// every `every` bytes.
fn prose(
    rng: &mut common::Rng,
    v: &common::Vocab,
    bytes: usize,
    lib: &[String],
    every: usize,
) -> String {
    let mut t = String::with_capacity(bytes + 256);
    let mut next = every;
    while t.len() < bytes {
        let n = 5 + rng.below(12);
        for k in 0..n {
            let w = &v.words[rng.zipf(v.words.len())];
            if k == 0 {
                let mut c = w.chars();
                if let Some(f) = c.next() {
                    t.extend(f.to_uppercase());
                    t.push_str(c.as_str());
                }
            } else {
                t.push(' ');
                t.push_str(w);
            }
        }
        t.push_str(". ");
        if rng.below(8) == 0 {
            let w = &v.words[rng.below(v.words.len())];
            t.push_str(&format!(
                "See https://www.{w}.com/news/{} ",
                rng.below(10_000)
            ));
        }
        if !lib.is_empty() && t.len() >= next {
            t.push_str(&lib[rng.below(lib.len())]);
            t.push_str(". ");
            next = t.len() + every;
        }
    }
    t
}

/// The messages: the corpus when `MAILWARD_CORPUS` is set, else generated.
fn mails(lib: &[String]) -> (Vec<Mail>, String) {
    if let Some(dir) = common::corpus() {
        let dir = dir.join("spamassassin");
        let raw = common::messages(&dir);
        assert!(!raw.is_empty(), "no messages under {}", dir.display());
        let mails: Vec<Mail> = raw.iter().map(|r| Mail::from_raw(r)).collect();
        let avg = raw.iter().map(Vec::len).sum::<usize>() / raw.len();
        let headers = mails.iter().map(|m| m.headers.len()).sum::<usize>() / mails.len();
        let desc = format!(
            "{} SpamAssassin corpus messages (mean {avg} bytes, {headers} header fields)",
            mails.len()
        );
        return (mails, desc);
    }
    // Ham is written from a vocabulary of its own (the library's strings
    // come from another one); one message in five carries three library
    // strings, one in five a string every 100 bytes.
    let n = 1000;
    let mut rng = common::Rng::new(7);
    let v = common::Vocab::new(&mut rng);
    let mails: Vec<Mail> = (0..n)
        .map(|i| {
            let text = match i % 5 {
                3 => prose(&mut rng, &v, 3900, lib, 1300),
                4 => prose(&mut rng, &v, 3900, lib, 100),
                _ => prose(&mut rng, &v, 3900, &[], 0),
            };
            Mail::from_raw(&loadgen::synthetic(i, &text))
        })
        .collect();
    let avg = mails.iter().map(Mail::size).sum::<usize>() / n;
    let headers = mails.iter().map(|m| m.headers.len()).sum::<usize>() / n;
    (
        mails,
        format!("{n} generated messages (mean {avg} bytes, {headers} header fields)"),
    )
}

/// The message as mailward reassembles it from the milter events.
fn reassembled(m: &Mail) -> Vec<u8> {
    let mut raw = Vec::with_capacity(m.size());
    for (n, v) in &m.headers {
        raw.extend_from_slice(n);
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&m.body);
    raw
}

/// Mean CPU time of decoding, scanning and judging one message on one
/// thread, outside the milter: the floor of mailward's extra cost per
/// message over the do-nothing milter.
fn evaluate_alone(dir: &std::path::Path, mails: &[Mail]) -> Duration {
    let config = mailward::Config::load(&dir.join("milter.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let rules = mailward::Rules::build(config, 1).unwrap_or_else(|e| panic!("{e}"));
    let raws: Vec<Vec<u8>> = mails.iter().map(reassembled).collect();
    let mut scanner = mailward::library::Scanner::new();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = thread_cpu();
        for r in &raws {
            std::hint::black_box(rules.evaluate(r, &mut scanner));
        }
        best = best.min((thread_cpu() - t) / raws.len() as u32);
    }
    best
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of the whole process (user + system).
fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid rusage for the call to fill.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One generator run and its CPU times.
struct Run {
    report: Report,
    generator_cpu: Duration,
    process_cpu: Duration,
    /// CPU the rest of the machine used meanwhile, in cores.
    background: f64,
}

/// CPU time the whole machine has spent busy (all cores), from
/// /proc/stat; zero where there is none.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else {
        return Duration::ZERO;
    };
    let f: Vec<u64> = cpu
        .split_ascii_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // counted in user already).
    let busy: u64 = f.iter().take(8).sum::<u64>() - f.get(3).unwrap_or(&0) - f.get(4).unwrap_or(&0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(busy as f64 / hz as f64)
}

/// Runs the generator on a thread of its own with a current-thread
/// runtime.
fn drive(target: SocketAddr, mails: &Arc<[Mail]>, opts: &Options) -> Run {
    let mails = mails.clone();
    let opts = opts.clone();
    let before = process_cpu();
    let busy_before = machine_busy();
    let (report, generator_cpu) = std::thread::Builder::new()
        .name("loadgen".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let t0 = thread_cpu();
            let report = rt.block_on(loadgen::run(target, mails, &opts));
            (report, thread_cpu() - t0)
        })
        .expect("generator thread")
        .join()
        .expect("generator thread");
    let process_cpu = process_cpu() - before;
    let busy = machine_busy().saturating_sub(busy_before);
    let background =
        busy.saturating_sub(process_cpu).as_secs_f64() / report.elapsed.as_secs_f64().max(1e-9);
    Run {
        report,
        generator_cpu,
        process_cpu,
        background,
    }
}

/// A milter serving on its own runtime until dropped.
struct Served {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    _reload: Option<mpsc::Sender<mailward::Reload>>,
}

fn serve_mailward(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> Served {
    let config = mailward::Config::load(&dir.join("milter.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (reload, reload_rx) = mpsc::channel(1);
    rt.spawn(async move {
        if let Err(e) = mailward::run(listener, config, reload_rx, stopped).await {
            panic!("mailward: {e}");
        }
    });
    Served {
        addr,
        _stop: stop,
        _reload: Some(reload),
    }
}

fn serve_nothing(rt: &tokio::runtime::Runtime) -> Served {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = indymilter::Config {
        max_connections: 100,
        ..Default::default()
    };
    rt.spawn(async move {
        indymilter::run(listener, do_nothing(), config, stopped)
            .await
            .expect("do-nothing milter");
    });
    Served {
        addr,
        _stop: stop,
        _reload: None,
    }
}

/// Waits until the milter answers a negotiation (mailward loads its
/// library first).
fn negotiated(addr: SocketAddr) -> loadgen::Negotiated {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    loop {
        match rt.block_on(loadgen::negotiate(addr, &Options::default())) {
            Ok(n) => return n,
            Err(e) if t.elapsed() > Duration::from_secs(120) => panic!("{addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The figures of one milter at one concurrency, over the rounds.
#[derive(Default)]
struct Cell {
    rates: Vec<f64>,
    /// Per round: p50, p99, p99.9 latency in ms.
    quantiles: Vec<[f64; 3]>,
    generator_us: Vec<f64>,
    milter_us: Vec<f64>,
    background: Vec<f64>,
    verdicts: HashMap<String, usize>,
    errors: usize,
}

impl Cell {
    fn add(&mut self, run: Run) {
        let r = &run.report;
        let n = r.results.len().max(1) as f64;
        self.rates.push(r.messages_per_second());
        self.background.push(run.background);
        let l = r.latencies();
        self.quantiles
            .push([0.5, 0.99, 0.999].map(|q| loadgen::quantile(&l, q).as_secs_f64() * 1e3));
        self.generator_us
            .push(run.generator_cpu.as_secs_f64() * 1e6 / n);
        self.milter_us.push(
            run.process_cpu
                .saturating_sub(run.generator_cpu)
                .as_secs_f64()
                * 1e6
                / n,
        );
        for m in &r.results {
            let v = if m.reply.is_reject() {
                "reject"
            } else if m.reply.is_tempfail() {
                "tempfail"
            } else if m.quarantined() {
                "quarantine"
            } else {
                "accept"
            };
            *self.verdicts.entry(v.into()).or_default() += 1;
        }
        self.errors += r.errors.len();
        for e in r.errors.iter().take(3) {
            eprintln!("  error: {e}");
        }
    }

    fn median_rate(&self) -> f64 {
        median(&self.rates)
    }

    /// Latency quantile `i` (p50, p99, p99.9): the median over the
    /// rounds and, for more than one round, their range.
    fn latency(&self, i: usize) -> String {
        let v: Vec<f64> = self.quantiles.iter().map(|q| q[i]).collect();
        let (lo, hi) = range(&v);
        if v.len() > 1 {
            format!("{:.2} ({lo:.2}–{hi:.2})", median(&v))
        } else {
            format!("{:.2}", median(&v))
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
        (lo.min(x), hi.max(x))
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn options(a: &Args, messages: usize, sessions: usize, prefix: &str) -> Options {
    let per_worker = messages.div_ceil(sessions * a.per_session).max(1);
    Options {
        concurrency: sessions,
        sessions_per_worker: per_worker,
        messages_per_session: a.per_session,
        queue_id_prefix: prefix.into(),
        ..Options::default()
    }
}

fn main() {
    let a = args();
    let lib = common::library(a.library, 42);
    let (mails, desc) = mails(&lib);
    let mails: Arc<[Mail]> = Arc::from(mails);

    if let Some(addr) = a.connect {
        println!("{desc}; driving {addr}");
        for &s in &a.sessions {
            let mut cell = Cell::default();
            cell.add(drive(addr, &mails, &options(&a, a.messages, s, "EXT")));
            println!(
                "{s:>3} sessions: {:>7.0} msg/s  p50 {} ms  p99 {} ms  generator {:.0} µs/msg  errors {}",
                cell.median_rate(),
                cell.latency(0),
                cell.latency(1),
                cell.generator_us[0],
                cell.errors
            );
        }
        return;
    }

    let dir =
        std::env::temp_dir().join(format!("mailward-bench-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut list = String::with_capacity(lib.len() * 16);
    for s in &lib {
        list.push_str(s);
        list.push('\n');
    }
    std::fs::write(dir.join("list.txt"), list).unwrap();
    std::fs::write(
        dir.join("library.yaml"),
        "include:\n  - path: list.txt\n    weight: 1\n    category: bench\n    match: word\n",
    )
    .unwrap();
    std::fs::write(dir.join("milter.yaml"), "library: library.yaml\n").unwrap();

    // mailward's log lines are formatted and written, to /dev/null unless
    // MAILWARD_BENCH_LOG=stderr.
    let target = if std::env::var_os("MAILWARD_BENCH_LOG").is_some_and(|v| v == "stderr") {
        env_logger::Target::Stderr
    } else {
        env_logger::Target::Pipe(Box::new(std::fs::File::create("/dev/null").unwrap()))
    };
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .target(target)
        .init();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("milter")
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let mailward = serve_mailward(&rt, &dir);
    let nothing = serve_nothing(&rt);
    let nm = negotiated(mailward.addr);
    let nn = negotiated(nothing.addr);
    assert_eq!(nm, nn, "both milters must ask for the same events");
    eprintln!(
        "{desc}; library of {} strings; milters ready in {:.2}s; negotiated protocol {:#x}, actions {:#x}",
        lib.len(),
        t.elapsed().as_secs_f64(),
        nm.protocol,
        nm.actions
    );

    let alone = evaluate_alone(&dir, &mails);
    eprintln!(
        "decode + scan + judge alone: {:.0} µs/msg",
        alone.as_secs_f64() * 1e6
    );

    let milters: Vec<(&str, SocketAddr)> = [("nothing", nothing.addr), ("mailward", mailward.addr)]
        .into_iter()
        .filter(|(n, _)| a.only.as_deref().is_none_or(|o| o == *n))
        .collect();

    // Warm-up: connections, allocator, caches.
    for (_, addr) in &milters {
        let mut o = options(&a, a.messages, 8, "WARM");
        o.sessions_per_worker = 2;
        let _ = drive(*addr, &mails, &o);
    }

    let mut cells: HashMap<(String, usize), Cell> = HashMap::new();
    let mut paced: HashMap<(String, u64), Cell> = HashMap::new();
    // Paced runs use the most sessions.
    let top = a.sessions.iter().copied().max().unwrap_or(32);
    for round in 0..a.rounds {
        for &s in &a.sessions {
            for (name, addr) in &milters {
                let o = options(&a, a.messages, s, &format!("R{round}S{s}"));
                let run = drive(*addr, &mails, &o);
                eprintln!(
                    "round {round} {name:>8} {s:>2} sessions: {:>6.0} msg/s, p99 {} ms, generator {:.0} µs/msg, process {:.0} µs/msg",
                    run.report.messages_per_second(),
                    ms(run.report.latency_quantile(0.99)),
                    run.generator_cpu.as_secs_f64() * 1e6 / run.report.results.len().max(1) as f64,
                    run.process_cpu.as_secs_f64() * 1e6 / run.report.results.len().max(1) as f64,
                );
                cells.entry((name.to_string(), s)).or_default().add(run);
            }
        }
        for &rate in &a.paced {
            for (name, addr) in &milters {
                let mut o = options(&a, a.paced_messages, top, &format!("R{round}P{rate}"));
                o.rate = Some(rate);
                let run = drive(*addr, &mails, &o);
                eprintln!(
                    "round {round} {name:>8} {top:>2} sessions at {rate} msg/s: {:>6.0} msg/s, p50 {} ms, p99 {} ms",
                    run.report.messages_per_second(),
                    ms(run.report.latency_quantile(0.5)),
                    ms(run.report.latency_quantile(0.99)),
                );
                paced
                    .entry((name.to_string(), rate as u64))
                    .or_default()
                    .add(run);
            }
        }
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "{desc}; {} messages per run in sessions of {}; {} rounds; \
         decode + scan + judge alone {:.0} µs/msg\n",
        a.messages,
        a.per_session,
        a.rounds,
        alone.as_secs_f64() * 1e6
    );
    let _ = writeln!(
        table,
        "| milter | sessions | msg/s (median) | range | mailward / nothing | p50 ms | p99 ms | milter CPU µs/msg | generator CPU µs/msg | CPU-bound ratio | background cores |"
    );
    let _ = writeln!(
        table,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut notes = Vec::new();
    for &s in &a.sessions {
        let nothing = cells.get(&("nothing".to_string(), s));
        let base = nothing.map(Cell::median_rate);
        let base_cpu = nothing.map(|c| (median(&c.milter_us), median(&c.generator_us)));
        for (name, _) in &milters {
            let Some(c) = cells.get(&(name.to_string(), s)) else {
                continue;
            };
            let (lo, hi) = range(&c.rates);
            let ratio = match (*name, base) {
                ("mailward", Some(b)) if b > 0.0 => format!("{:.0} %", 100.0 * c.median_rate() / b),
                _ => String::new(),
            };
            let (milter_us, generator_us) = (median(&c.milter_us), median(&c.generator_us));
            // Both CPU-bound on the same cores, throughput goes as the
            // inverse of the CPU a message costs, generator included.
            let cpu_ratio = match (*name, base_cpu) {
                ("mailward", Some((bm, bg))) => {
                    notes.push(format!(
                        "{s} sessions: mailward needs {:.0} µs more milter CPU per message than the do-nothing milter ({:.2}×; {:.0} % counting the milters alone)",
                        milter_us - bm,
                        milter_us / bm,
                        100.0 * bm / milter_us
                    ));
                    format!("{:.0} %", 100.0 * (bm + bg) / (milter_us + generator_us))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                table,
                "| {name} | {s} | {:.0} | {lo:.0}–{hi:.0} | {ratio} | {} | {} | {milter_us:.0} | {generator_us:.0} | {cpu_ratio} | {:.2} |",
                c.median_rate(),
                c.latency(0),
                c.latency(1),
                median(&c.background),
            );
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(table);
        for n in notes {
            let _ = writeln!(table, "- {n}");
        }
    }
    if !a.paced.is_empty() {
        let _ = writeln!(
            table,
            "\nAt a fixed offered load, {top} sessions, {} messages per run:\n",
            a.paced_messages
        );
        let _ = writeln!(
            table,
            "| milter | offered msg/s | achieved msg/s (median) | p50 ms | p99 ms | p99.9 ms | milter CPU µs/msg | generator CPU µs/msg | background cores |"
        );
        let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for &rate in &a.paced {
            for (name, _) in &milters {
                let Some(c) = paced.get(&(name.to_string(), rate as u64)) else {
                    continue;
                };
                let _ = writeln!(
                    table,
                    "| {name} | {rate:.0} | {:.0} | {} | {} | {} | {:.0} | {:.0} | {:.2} |",
                    c.median_rate(),
                    c.latency(0),
                    c.latency(1),
                    c.latency(2),
                    median(&c.milter_us),
                    median(&c.generator_us),
                    median(&c.background),
                );
            }
        }
    }
    if let Some(c) = cells
        .iter()
        .find(|((n, _), _)| n == "mailward")
        .map(|(_, c)| c)
    {
        let mut v: Vec<_> = c.verdicts.iter().collect();
        v.sort();
        let total: usize = v.iter().map(|(_, n)| **n).sum();
        let mix: Vec<String> = v
            .iter()
            .map(|(k, n)| format!("{k} {:.1} %", 100.0 * **n as f64 / total.max(1) as f64))
            .collect();
        let _ = writeln!(table, "\nmailward verdicts: {}", mix.join(", "));
    }
    let errors: usize = cells.values().chain(paced.values()).map(|c| c.errors).sum();
    if errors > 0 {
        let _ = writeln!(table, "\nsession errors: {errors}");
    }
    println!("\n{table}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-throughput.md");
    let _ = std::fs::write(out, &table);

    drop(mailward);
    drop(nothing);
    rt.shutdown_timeout(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}
