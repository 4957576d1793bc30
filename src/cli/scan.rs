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
//! runs over the same files print the same thing. Problems and the summary
//! go to stderr.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, IsTerminal, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
}

/// The progress bar is shown for more messages than this (when stderr is
/// a terminal): below it, a scan is over before a bar means anything.
const BAR_MIN_INPUTS: usize = 1;

/// Runs the command. Exit status: 0 when every message was scanned, 1
/// when some input could not be read, 2 when the rules could not be
/// loaded.
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

    let bar = if inputs.len() > BAR_MIN_INPUTS && io::stderr().is_terminal() {
        progress_bar(inputs.len())
    } else {
        ProgressBar::hidden()
    };
    let stdout_tty = io::stdout().is_terminal();
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut judge = Judge {
        rules: &rules,
        opts: *opts,
        scanner: Scanner::new(),
        raw: Vec::new(),
        tally: Tally::default(),
    };
    let started = Instant::now();
    let mut failures = not_found;
    for input in &inputs {
        let name = input.name();
        bar.set_message(name.clone());
        let mut write_failed = None;
        let mut emit = |result: Result<String, String>| match result {
            Ok(text) => {
                // Through `suspend` only when the bar shares the terminal.
                let written = if stdout_tty && !bar.is_hidden() {
                    bar.suspend(|| out.write_all(text.as_bytes()).and_then(|()| out.flush()))
                } else {
                    out.write_all(text.as_bytes())
                };
                if let Err(e) = written {
                    write_failed = Some(e);
                    return false;
                }
                true
            }
            Err(e) => {
                failures += 1;
                bar.suspend(|| say!("mailward: {e}"));
                true
            }
        };
        judge.input(input, &name, &mut emit);
        if let Some(e) = write_failed {
            bar.finish_and_clear();
            return stdout_failed(&e);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Err(e) = out.flush() {
        return stdout_failed(&e);
    }
    if judge.tally.messages + failures > 1 {
        say!(
            "mailward: {}",
            judge
                .tally
                .summary(failures, started.elapsed().as_secs_f64())
        );
    }
    if failures > 0 {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    }
}

/// The per-message work, with the buffers reused from one message to the
/// next.
struct Judge<'a> {
    rules: &'a Rules,
    opts: Options,
    scanner: Scanner,
    raw: Vec<u8>,
    tally: Tally,
}

impl Judge<'_> {
    /// Reads, judges and formats each message of `input` in turn, handing
    /// `emit` each report or the reason it could not be made (prefixed
    /// with the message's name); stops when `emit` says so or the input
    /// cannot be read further. One message is named `name`; the messages
    /// of an mbox of several `name#1`, `name#2`, ….
    fn input(
        &mut self,
        input: &Input,
        name: &str,
        emit: &mut dyn FnMut(Result<String, String>) -> bool,
    ) {
        let reader: Box<dyn BufRead> = match input {
            Input::Stdin => Box::new(io::stdin().lock()),
            Input::File(p) => match std::fs::File::open(p) {
                Ok(f) => Box::new(io::BufReader::new(f)),
                Err(e) => {
                    emit(Err(format!("{name}: {e}")));
                    return;
                }
            },
        };
        let cap = self.rules.config.limits.message_bytes.0;
        let mut messages = Messages::new(reader);
        for n in 1.. {
            let read = match messages.next_message(cap, &mut self.raw) {
                Ok(Some(read)) => read,
                Ok(None) => return,
                Err(e) => {
                    emit(Err(format!("{name}: {e}")));
                    return;
                }
            };
            let label = if n == 1 && !messages.more() {
                name.to_owned()
            } else {
                format!("{name}#{n}")
            };
            let result = self
                .one(label.clone(), &read)
                .map_err(|e| format!("{label}: {e}"));
            if !emit(result) {
                return;
            }
        }
    }

    /// Judges and formats the message read into `raw`; the error says why
    /// it could not be.
    fn one(&mut self, name: String, read: &Sizes) -> Result<String, String> {
        self.tally.bytes += read.total;
        // The decoder never panics by design; should it anyway, the other
        // messages are still scanned, as the milter still serves.
        let (rules, raw, scanner) = (self.rules, &self.raw, &mut self.scanner);
        let judged = catch_unwind(AssertUnwindSafe(|| {
            let decoded = rules.decode(raw);
            let ev = rules.evaluate_decoded(&decoded, scanner);
            report(rules, name, read, &decoded, &ev, self.opts.text)
        }));
        let Ok(report) = judged else {
            self.scanner = Scanner::new();
            return Err("internal error judging the message".into());
        };
        self.tally.count(&report);
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
            .then(a.number().cmp(&b.number()))
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
