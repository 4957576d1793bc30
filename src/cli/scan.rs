//! `mailward scan`: judges message files offline with the rules the milter
//! would build from the same files, through the same decoding and
//! judgment ([`Rules::decode`], [`Rules::evaluate_decoded`]).
//!
//! What the milter sees differs from a file in two ways, and the file is
//! read to match: mbox `From ` lines (which no MTA passes to a milter)
//! are dropped, an mbox of several messages being judged message by
//! message ([`super::mbox`]), and only the first `limits.message_bytes`
//! bytes of each are judged, the rest counted as cut, as the milter keeps
//! them. Nothing here
//! knows of an envelope, so no exemption applies: the verdict is the
//! content's.
//!
//! Output goes to stdout, one block (or one JSON line) per message in the
//! order the paths were given, directories walked in name order, so two
//! runs over the same files print the same thing, whatever the number of
//! judging threads (`--jobs`; see [`scan`] for how they share the work and
//! why memory stays bounded). Problems and the summary go to stderr.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, IsTerminal, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mailward::Rules;
use mailward::judge::{self, Verdict};
use mailward::library::Scanner;
use mailward::library::normalize::normalize;
use mailward::message::Decoded;
use mailward::rules::Evaluation;
use serde::Serialize;

use super::mbox::{Messages, Sizes};
use super::{EXIT_FAILURE, EXIT_USAGE, Source, bytes, init_logging, load_rules, say};

/// How the results are printed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// One JSON object per line instead of text blocks.
    pub json: bool,
    /// Add the normalized text of every part scanned.
    pub text: bool,
    /// Messages judged at once; 0: one per CPU.
    pub jobs: usize,
}

/// The progress bar is shown for more messages than this (when stderr is
/// a terminal): below it, a scan is over before a bar means anything.
const BAR_MIN_INPUTS: usize = 1;
/// At most this many threads judge messages, whatever `--jobs` says.
const MAX_JOBS: usize = 256;
/// Batches read and not yet printed, per judging thread: enough to keep
/// every thread busy while a slow message holds up the output.
const IN_FLIGHT_PER_JOB: usize = 2;

/// Runs the command. Exit status: 0 when every message was scanned, 1
/// when some input could not be read, 2 when the rules could not be
/// loaded.
///
/// One thread reads the inputs in order and numbers what it finds; `jobs`
/// threads judge and format the messages; this thread prints the results
/// in their numbers' order. Messages travel in batches (up to
/// `BATCH_MESSAGES` messages or `BATCH_BYTES` bytes plus one message); a
/// batch is read only with one of
/// `IN_FLIGHT_PER_JOB × jobs` tokens, given back once it is printed, so
/// memory stays within that many batches however slow one message is.
pub fn scan(source: Source<'_>, paths: &[PathBuf], opts: &Options) -> ExitCode {
    init_logging();
    let Some(rules) = load_rules(source) else {
        return ExitCode::from(EXIT_USAGE);
    };
    let mut not_found = 0usize;
    let inputs = collect_inputs(paths, &mut |p, e| {
        not_found += 1;
        say!("mailward: {}: {e}", p.display());
    });
    let jobs = match opts.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(MAX_JOBS);

    let bar = if inputs.len() > BAR_MIN_INPUTS && io::stderr().is_terminal() {
        progress_bar(inputs.len())
    } else {
        ProgressBar::hidden()
    };
    let stdout_tty = io::stdout().is_terminal();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let started = Instant::now();
    let mut failures = not_found;
    let mut tally = Tally::default();
    let mut write_failed = None;

    std::thread::scope(|s| {
        let in_flight = jobs * IN_FLIGHT_PER_JOB;
        // Tokens: a batch is read only with one, and each carries the
        // message buffers of a printed batch back to the reader.
        let (pool_tx, pool_rx) = mpsc::sync_channel::<Vec<Vec<u8>>>(in_flight);
        for _ in 0..in_flight {
            let _ = pool_tx.send(Vec::new());
        }
        let (batch_tx, batch_rx) = mpsc::sync_channel::<Batch>(in_flight);
        // Dropped with the last judging thread, so that the reader stops
        // when they have (output failed).
        let batch_rx = Arc::new(Mutex::new(batch_rx));
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let (rules, inputs) = (&rules, &inputs);
        s.spawn(move || read_inputs(inputs, rules, &pool_rx, &batch_tx));
        for _ in 0..jobs {
            let (batch_rx, done_tx) = (Arc::clone(&batch_rx), done_tx.clone());
            s.spawn(move || {
                let mut judge = Judge {
                    rules,
                    opts: *opts,
                    scanner: Scanner::new(),
                };
                while let Some(batch) = next_batch(&batch_rx) {
                    if done_tx.send(judge.batch(batch)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((batch_rx, done_tx));

        // Batches come in any order; they are printed in the inputs'.
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        'print: for done in done_rx {
            waiting.insert(done.seq, done);
            while let Some(done) = waiting.remove(&next) {
                next += 1;
                tally.add(&done.tally);
                for output in done.outputs {
                    match output {
                        Output::Report(text) => {
                            // Through `suspend` only when the bar shares the terminal.
                            let written = if stdout_tty && !bar.is_hidden() {
                                bar.suspend(|| {
                                    out.write_all(text.as_bytes()).and_then(|()| out.flush())
                                })
                            } else {
                                out.write_all(text.as_bytes())
                            };
                            if let Err(e) = written {
                                write_failed = Some(e);
                                // Dropping the receivers and the pool ends
                                // the other threads at their next step.
                                break 'print;
                            }
                        }
                        Output::Failed(e) => {
                            failures += 1;
                            bar.suspend(|| say!("mailward: {e}"));
                        }
                        Output::InputDone(name) => {
                            bar.set_message(name);
                            bar.inc(1);
                        }
                    }
                }
                let _ = pool_tx.send(done.buffers);
            }
        }
        drop(pool_tx);
    });
    bar.finish_and_clear();
    if let Some(e) = write_failed {
        return stdout_failed(&e);
    }
    if let Err(e) = out.flush() {
        return stdout_failed(&e);
    }
    if tally.messages + failures > 1 {
        say!(
            "mailward: {}",
            tally.summary(failures, started.elapsed().as_secs_f64())
        );
    }
    if failures > 0 {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// Consecutive items for one judging thread, numbered in the order they
/// are printed. Small messages travel in batches: one hand-over between
/// threads per message costs more than judging a small one.
struct Batch {
    seq: u64,
    items: Vec<Item>,
    /// Buffers not used, back to the reader with the others.
    spare: Vec<Vec<u8>>,
}

enum Item {
    /// A message read, and its name.
    Message {
        name: String,
        raw: Vec<u8>,
        read: Sizes,
    },
    /// An input that could not be read (further): the reason.
    Failed(String),
    /// Every message of an input has been read: its name.
    InputDone(String),
}

/// A judged batch.
struct Done {
    seq: u64,
    outputs: Vec<Output>,
    /// What the batch adds to the summary.
    tally: Tally,
    /// The messages' buffers, back to the reader once printed.
    buffers: Vec<Vec<u8>>,
}

enum Output {
    Report(String),
    Failed(String),
    InputDone(String),
}

/// A batch is handed on once it holds this many messages …
const BATCH_MESSAGES: usize = 32;
/// … or this many bytes (so a batch holds at most this plus one message).
const BATCH_BYTES: u64 = 256 << 10;

/// Message buffers up to this size are reused.
const KEEP_BUFFER: usize = 64 << 10;

/// The next batch, the lock held only to take it; `None` once the reader
/// is done and every batch taken.
fn next_batch(batches: &Mutex<mpsc::Receiver<Batch>>) -> Option<Batch> {
    batches.lock().ok()?.recv().ok()
}

/// Gathers the reader's items into batches; every batch is begun with a
/// token from the pool.
struct Batcher<'a> {
    pool: &'a mpsc::Receiver<Vec<Vec<u8>>>,
    out: &'a mpsc::SyncSender<Batch>,
    seq: u64,
    items: Vec<Item>,
    bytes: u64,
    /// The token's buffers; `None` before a token is taken.
    buffers: Option<Vec<Vec<u8>>>,
}

impl Batcher<'_> {
    /// A buffer for the next message; `None` when the printing side is
    /// gone.
    fn buffer(&mut self) -> Option<Vec<u8>> {
        if self.buffers.is_none() {
            self.buffers = Some(self.pool.recv().ok()?);
        }
        Some(self.buffers.as_mut()?.pop().unwrap_or_default())
    }

    /// Gives back a buffer that was not used.
    fn unused(&mut self, buf: Vec<u8>) {
        if let Some(b) = &mut self.buffers {
            b.push(buf);
        }
    }

    /// Adds an item, handing the batch on when full (or `now`); false when
    /// the judging side is gone.
    fn push(&mut self, item: Item, now: bool) -> bool {
        if let Item::Message { raw, .. } = &item {
            self.bytes += raw.len() as u64;
        }
        self.items.push(item);
        if now || self.items.len() >= BATCH_MESSAGES || self.bytes >= BATCH_BYTES {
            return self.flush();
        }
        true
    }

    fn flush(&mut self) -> bool {
        if self.items.is_empty() {
            return true;
        }
        let batch = Batch {
            seq: self.seq,
            items: std::mem::take(&mut self.items),
            spare: self.buffers.take().unwrap_or_default(),
        };
        self.seq += 1;
        self.bytes = 0;
        self.out.send(batch).is_ok()
    }
}

/// Reads every message of every input in order, in batches; stops when
/// the printing or the judging side is gone (output failed).
fn read_inputs(
    inputs: &[Input],
    rules: &Rules,
    pool: &mpsc::Receiver<Vec<Vec<u8>>>,
    out: &mpsc::SyncSender<Batch>,
) {
    let cap = rules.config.limits.message_bytes.0;
    let mut batcher = Batcher {
        pool,
        out,
        seq: 0,
        items: Vec::new(),
        bytes: 0,
        buffers: None,
    };
    for input in inputs {
        let name = input.name();
        // Someone typing messages sees each judged at once.
        let interactive = matches!(input, Input::Stdin) && io::stdin().is_terminal();
        let reader: Option<Box<dyn BufRead>> = match input {
            Input::Stdin => Some(Box::new(io::stdin().lock())),
            Input::File(p) => match std::fs::File::open(p) {
                Ok(f) => Some(Box::new(io::BufReader::new(f))),
                Err(e) => {
                    if !batcher.push(Item::Failed(format!("{name}: {e}")), false) {
                        return;
                    }
                    None
                }
            },
        };
        if let Some(reader) = reader {
            let mut messages = Messages::new(reader);
            for n in 1.. {
                let Some(mut raw) = batcher.buffer() else {
                    return;
                };
                let item = match messages.next_message(cap, &mut raw) {
                    Ok(Some(read)) => {
                        // An mbox of several messages names them `name#1`, `name#2`, ….
                        let name = if n == 1 && !messages.more() {
                            name.clone()
                        } else {
                            format!("{name}#{n}")
                        };
                        Item::Message { name, raw, read }
                    }
                    Ok(None) => {
                        batcher.unused(raw);
                        break;
                    }
                    Err(e) => {
                        batcher.unused(raw);
                        Item::Failed(format!("{name}: {e}"))
                    }
                };
                let failed = matches!(item, Item::Failed(_));
                if !batcher.push(item, interactive) {
                    return;
                }
                if failed {
                    break;
                }
            }
        }
        if !batcher.push(Item::InputDone(name), false) {
            return;
        }
    }
    batcher.flush();
}

/// One judging thread's state, its scanner reused from one message to the
/// next.
struct Judge<'a> {
    rules: &'a Rules,
    opts: Options,
    scanner: Scanner,
}

impl Judge<'_> {
    fn batch(&mut self, batch: Batch) -> Done {
        let mut tally = Tally::default();
        let mut buffers = batch.spare;
        let mut outputs = Vec::with_capacity(batch.items.len());
        for item in batch.items {
            outputs.push(match item {
                Item::Message { name, raw, read } => {
                    tally.bytes += read.total;
                    let output = match self.one(&name, &raw, &read, &mut tally) {
                        Ok(text) => Output::Report(text),
                        Err(e) => Output::Failed(format!("{name}: {e}")),
                    };
                    // Kept for reuse only when small: a few large
                    // messages must not pin their size in every batch.
                    if raw.capacity() <= KEEP_BUFFER {
                        buffers.push(raw);
                    }
                    output
                }
                Item::Failed(e) => Output::Failed(e),
                Item::InputDone(name) => Output::InputDone(name),
            });
        }
        Done {
            seq: batch.seq,
            outputs,
            tally,
            buffers,
        }
    }

    /// Judges and formats the message in `raw`; the error says why it
    /// could not be.
    fn one(
        &mut self,
        name: &str,
        raw: &[u8],
        read: &Sizes,
        tally: &mut Tally,
    ) -> Result<String, String> {
        // The decoder never panics by design; should it anyway, the other
        // messages are still scanned, as the milter still serves.
        let (rules, scanner) = (self.rules, &mut self.scanner);
        let judged = catch_unwind(AssertUnwindSafe(|| {
            let decoded = rules.decode(raw);
            let ev = rules.evaluate_decoded(&decoded, scanner);
            report(rules, name.to_owned(), read, &decoded, &ev, self.opts.text)
        }));
        let Ok(report) = judged else {
            self.scanner = Scanner::new();
            return Err("internal error judging the message".into());
        };
        tally.count(&report);
        if self.opts.json {
            let mut j = serde_json::to_string(&report).map_err(|e| e.to_string())?;
            j.push('\n');
            Ok(j)
        } else {
            Ok(human(&report))
        }
    }
}

/// A reader that went away (`| head`) needs no message.
fn stdout_failed(e: &io::Error) -> ExitCode {
    if e.kind() != io::ErrorKind::BrokenPipe {
        say!("mailward: stdout: {e}");
    }
    ExitCode::from(EXIT_FAILURE)
}

fn progress_bar(len: usize) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} messages, {eta} left  {wide_msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr()).with_style(style)
}

// ---- inputs ----

/// One message to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// The name printed for it: the path as given or found, `-` for stdin.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// The messages named by `paths`, in order: `-` is stdin, a directory
/// stands for the files under it (walked depth first, each directory in
/// name order; symbolic links to files are read, those to directories not
/// followed; pipes, sockets and devices found in a walk are skipped). A
/// path or directory that cannot be read goes to `failed`.
pub fn collect_inputs(paths: &[PathBuf], failed: &mut dyn FnMut(&Path, io::Error)) -> Vec<Input> {
    let mut inputs = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut inputs, failed),
            // Anything else named outright is read: a pipe or /dev/stdin
            // is what its user meant.
            Ok(_) => inputs.push(Input::File(p.clone())),
            Err(e) => failed(p, e),
        }
    }
    inputs
}

/// The files under `root`, without recursion (a deep tree cannot exhaust
/// the stack): a stack of paths still to visit, each directory's entries
/// pushed in reverse name order so they come off in name order.
fn walk(root: &Path, inputs: &mut Vec<Input>, failed: &mut dyn FnMut(&Path, io::Error)) {
    enum Item {
        Dir(PathBuf),
        File(PathBuf),
    }
    let mut stack = vec![Item::Dir(root.to_owned())];
    while let Some(item) = stack.pop() {
        let dir = match item {
            Item::File(p) => {
                inputs.push(Input::File(p));
                continue;
            }
            Item::Dir(d) => d,
        };
        let reader = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) => {
                failed(&dir, e);
                continue;
            }
        };
        let mut entries: Vec<(OsString, Item)> = Vec::new();
        for entry in reader {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    failed(&dir, e);
                    continue;
                }
            };
            let path = entry.path();
            let kind = match entry.file_type() {
                Ok(t) => t,
                Err(e) => {
                    failed(&path, e);
                    continue;
                }
            };
            let item = if kind.is_dir() {
                Item::Dir(path)
            } else if kind.is_file() {
                Item::File(path)
            } else if kind.is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => Item::File(path),
                    // A link to a directory could loop.
                    Ok(_) => continue,
                    Err(e) => {
                        failed(&path, e);
                        continue;
                    }
                }
            } else {
                continue;
            };
            entries.push((entry.file_name(), item));
        }
        entries.sort_by(|a, b| b.0.cmp(&a.0));
        stack.extend(entries.into_iter().map(|(_, item)| item));
    }
}

// ---- the report ----

/// One message's result; its JSON form is documented in docs/cli.md.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub verdict: &'static str,
    pub score: f64,
    /// The verdict of the score alone.
    pub by_score: &'static str,
    /// The strongest action of an entry found.
    pub by_action: Option<&'static str>,
    /// What the milter would do, in the configured mode, with no
    /// exemption.
    pub act: &'static str,
    /// Whether the milter would add the verdict header.
    pub tagged: bool,
    pub hits: Vec<HitReport>,
    pub categories: Vec<CategoryReport>,
    pub notes: Vec<NoteReport>,
    pub size: u64,
    pub cut: u64,
    pub text_bytes: usize,
    pub parts: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Vec<TextReport>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HitReport {
    pub id: String,
    pub text: String,
    pub category: String,
    pub weight: f64,
    pub count: u32,
    pub action: Option<&'static str>,
    #[serde(rename = "match")]
    pub mode: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct CategoryReport {
    pub name: String,
    pub score: f64,
    pub capped: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct NoteReport {
    pub kind: &'static str,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TextReport {
    pub kind: &'static str,
    pub alt_group: Option<u32>,
    pub text: String,
}

/// The report of one judged message. Hits come in the order of the log
/// line's `ids=` (entries with an action first, then by weight), so the
/// first five ids are the ones the milter logs.
pub fn report(
    rules: &Rules,
    file: String,
    read: &Sizes,
    decoded: &Decoded,
    ev: &Evaluation,
    with_text: bool,
) -> Report {
    let lib = &rules.library;
    let mut entries: Vec<_> = ev
        .scan
        .hits
        .iter()
        .filter_map(|h| Some((lib.entry(h.entry)?, h.count)))
        .collect();
    entries.sort_by(|(a, _), (b, _)| {
        b.action()
            .cmp(&a.action())
            .then(b.weight().total_cmp(&a.weight()))
            .then(a.place().cmp(&b.place()))
    });
    let hits = entries
        .into_iter()
        .map(|(e, count)| HitReport {
            id: e.id().into_owned(),
            text: e.text(),
            category: e.category().to_owned(),
            weight: e.weight(),
            count,
            action: e.action().map(|a| a.as_str()),
            mode: e.mode().as_str(),
        })
        .collect();
    let j = &ev.judgment;
    let judge_settings = &rules.config.judge;
    let d = judge::dispose(
        j.verdict,
        judge_settings.mode,
        None,
        judge_settings.tag_accepted,
    );
    Report {
        file,
        verdict: j.verdict.as_str(),
        score: j.score,
        by_score: j.by_score.as_str(),
        by_action: j.by_action.map(|a| a.as_str()),
        act: d.act.as_str(),
        tagged: d.header,
        hits,
        categories: j
            .categories
            .iter()
            .map(|c| CategoryReport {
                name: c.name.clone(),
                score: c.score,
                capped: c.capped,
            })
            .collect(),
        notes: ev
            .scan
            .notes
            .iter()
            .map(|n| NoteReport {
                kind: n.kind(),
                message: n.to_string(),
            })
            .collect(),
        size: read.size,
        cut: read.cut,
        text_bytes: ev.scan.text_bytes,
        parts: ev.scan.parts,
        text: with_text.then(|| {
            decoded
                .parts
                .iter()
                .map(|p| TextReport {
                    kind: p.kind.name(),
                    alt_group: p.alt_group,
                    text: normalize(&p.text),
                })
                .collect()
        }),
    }
}

/// The human form: a first line like the milter's log line, then one line
/// per hit, category, note and text, then a blank line.
pub fn human(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{}: verdict={} act={} score={:.1}",
        r.file, r.verdict, r.act, r.score
    );
    if r.tagged {
        s.push_str(" tagged");
    }
    let _ = write!(s, " hits={} size={}", r.hits.len(), r.size);
    if r.cut > 0 {
        let _ = write!(s, " cut={}", r.cut);
    }
    s.push('\n');
    for h in &r.hits {
        let _ = write!(
            s,
            "  hit {} {:?} category={} weight={} count={}",
            h.id, h.text, h.category, h.weight, h.count
        );
        if let Some(a) = h.action {
            let _ = write!(s, " action={a}");
        }
        if h.mode != "substring" {
            let _ = write!(s, " match={}", h.mode);
        }
        s.push('\n');
    }
    for c in &r.categories {
        let _ = write!(s, "  category {} score={:.1}", c.name, c.score);
        if c.capped {
            s.push_str(" capped");
        }
        s.push('\n');
    }
    for n in &r.notes {
        let _ = writeln!(s, "  note {}: {}", n.kind, n.message);
    }
    for t in r.text.iter().flatten() {
        let _ = write!(s, "  text {}", t.kind);
        if let Some(g) = t.alt_group {
            let _ = write!(s, " alt={g}");
        }
        let _ = writeln!(s, ": {}", t.text);
    }
    s.push('\n');
    s
}

// ---- the summary ----

#[derive(Debug, Default)]
struct Tally {
    messages: usize,
    /// By verdict, weakest first.
    verdicts: [usize; 5],
    bytes: u64,
}

const VERDICTS: [Verdict; 5] = [
    Verdict::Accept,
    Verdict::Tag,
    Verdict::Quarantine,
    Verdict::Tempfail,
    Verdict::Reject,
];

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.messages += other.messages;
        for (a, b) in self.verdicts.iter_mut().zip(other.verdicts) {
            *a += b;
        }
        self.bytes += other.bytes;
    }

    fn count(&mut self, r: &Report) {
        self.messages += 1;
        if let Some(i) = VERDICTS.iter().position(|v| v.as_str() == r.verdict) {
            self.verdicts[i] += 1;
        }
    }

    fn summary(&self, failures: usize, seconds: f64) -> String {
        let verdicts: Vec<String> = VERDICTS
            .iter()
            .zip(self.verdicts)
            .map(|(v, n)| format!("{v} {n}"))
            .collect();
        let rate = if seconds > 0.0 {
            self.bytes as f64 / seconds / 1e6
        } else {
            0.0
        };
        format!(
            "{} messages scanned, {failures} failed: {}; {} in {seconds:.2} s ({rate:.1} MB/s)",
            self.messages,
            verdicts.join(", "),
            bytes(usize::try_from(self.bytes).unwrap_or(usize::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_every_verdict() {
        let t = Tally {
            messages: 3,
            verdicts: [1, 0, 0, 0, 2],
            bytes: 2048,
        };
        let s = t.summary(1, 0.5);
        assert!(
            s.starts_with(
                "3 messages scanned, 1 failed: accept 1, tag 0, quarantine 0, tempfail 0, reject 2; 2.0 KiB in 0.50 s"
            ),
            "{s}"
        );
    }
}
