//! A milter load generator: the MTA side of the milter protocol, lean
//! enough to drive many concurrent sessions from one thread.
//!
//! [`run`] opens `concurrency` sessions to a milter and sends each a series
//! of messages the way Postfix does: negotiate (offering every action and
//! protocol option Postfix 3 offers), connect with its macros, HELO, then
//! for each message MAIL, RCPT, DATA, the headers one by one, end of
//! headers, the body in chunks of at most 65 535 bytes, end of message and
//! an abort, then an abort and a quit at the end. Events the milter
//! declined in negotiation (`NO_HELO`, `NO_DATA`, …) are not sent, replies
//! it declined (`NR_*`) are not awaited. Macros go as Postfix 3.7 sends
//! them (`tests/loadgen_like_postfix.rs` compares the two on the wire):
//! before each command, the list the milter asked for at that stage or
//! else Postfix's default list, in one packet even when none has a value;
//! the end-of-header list before every header, the end of headers and
//! every body chunk; no queue id before a recipient has been accepted.
//!
//! Sessions send their messages back to back (a closed loop: the load is
//! as high as the milter allows), or at a fixed overall rate
//! ([`Options::rate`], for latency under a given load).
//!
//! Each message yields a [`MessageResult`]: the final reply (at end of
//! message, or earlier when the milter decided earlier), the end-of-message
//! actions (e.g. the verdict header, whose `gen=` tells which rules judged
//! it), its queue id (macro `i`, unique per message, so that log lines can
//! be matched), its latency, from the first event of the message to
//! the reply that ended it, the longest wait for one reply within it, and
//! when its MAIL was answered (so that a test can tell which rules were in
//! force when the milter took its MAIL). Errors end a session, not the run: they are
//! reported per session and the worker goes on with its next session.
//!
//! Cost: a message is encoded straight from its parsed headers and body
//! into one reused buffer; commands that get no reply (macros, abort) go
//! out in the same write as the next command that does, so one message
//! costs one write and one read per awaited reply and no allocation but
//! the result. The wire format is four bytes of length (command byte
//! included, big-endian), the command byte, then its data.
//!
//! Messages come from raw RFC 5322 files ([`Mail::from_raw`], e.g. the
//! SpamAssassin corpus) or from [`synthetic`], which wraps a given text
//! into a typical message of about fifteen headers.

#![allow(dead_code)]

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Commands (libmilter's `SMFIC_*`).
mod cmd {
    pub const ABORT: u8 = b'A';
    pub const BODY: u8 = b'B';
    pub const CONNECT: u8 = b'C';
    pub const MACRO: u8 = b'D';
    pub const EOM: u8 = b'E';
    pub const HELO: u8 = b'H';
    pub const HEADER: u8 = b'L';
    pub const MAIL: u8 = b'M';
    pub const EOH: u8 = b'N';
    pub const OPTNEG: u8 = b'O';
    pub const QUIT: u8 = b'Q';
    pub const RCPT: u8 = b'R';
    pub const DATA: u8 = b'T';
}

/// Protocol options (libmilter's `SMFIP_*`).
pub mod opt {
    pub const NO_CONNECT: u32 = 0x1;
    pub const NO_HELO: u32 = 0x2;
    pub const NO_MAIL: u32 = 0x4;
    pub const NO_RCPT: u32 = 0x8;
    pub const NO_BODY: u32 = 0x10;
    pub const NO_HDRS: u32 = 0x20;
    pub const NO_EOH: u32 = 0x40;
    pub const NR_HDR: u32 = 0x80;
    pub const NO_UNKNOWN: u32 = 0x100;
    pub const NO_DATA: u32 = 0x200;
    pub const SKIP: u32 = 0x400;
    pub const RCPT_REJ: u32 = 0x800;
    pub const NR_CONN: u32 = 0x1000;
    pub const NR_HELO: u32 = 0x2000;
    pub const NR_MAIL: u32 = 0x4000;
    pub const NR_RCPT: u32 = 0x8000;
    pub const NR_DATA: u32 = 0x10000;
    pub const NR_UNKN: u32 = 0x20000;
    pub const NR_EOH: u32 = 0x40000;
    pub const NR_BODY: u32 = 0x80000;
    pub const HDR_LEADSPC: u32 = 0x100000;
    /// Everything Postfix 3 offers.
    pub const POSTFIX: u32 = 0x1F_FFFF;
}

/// Every action (`SMFIF_*`) Postfix 3 offers: headers, body, recipients,
/// quarantine, sender, macro requests.
pub const POSTFIX_ACTIONS: u32 = 0x1FF;

/// Postfix 3.7's `milter_*_macros` defaults, by [`Stage`]: what it sends
/// at a stage for which the milter requested no macros.
const POSTFIX_MACROS: [&str; 7] = [
    "j {daemon_name} {daemon_addr} v _",
    "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    "i",
    "i",
    "i",
];

/// Longest body chunk, as Postfix and libmilter send them.
const CHUNK: usize = 65_535;
/// Longest reply accepted (libmilter's limit).
const MAX_REPLY: usize = 1 << 20;

/// Macro stages: the index in negotiation and the command byte in `D`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect = 0,
    Helo = 1,
    Mail = 2,
    Rcpt = 3,
    Data = 4,
    Eom = 5,
    Eoh = 6,
}

impl Stage {
    fn command(self) -> u8 {
        match self {
            Stage::Connect => cmd::CONNECT,
            Stage::Helo => cmd::HELO,
            Stage::Mail => cmd::MAIL,
            Stage::Rcpt => cmd::RCPT,
            Stage::Data => cmd::DATA,
            Stage::Eom => cmd::EOM,
            Stage::Eoh => cmd::EOH,
        }
    }
}

/// Where in a message the milter gave its final reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    Mail,
    Rcpt,
    Data,
    Header,
    Eoh,
    Body,
    Eom,
}

/// A milter's reply to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Continue,
    Accept,
    Discard,
    Reject,
    Tempfail,
    Skip,
    /// A reply with its own SMTP text (`y`), e.g. `550 5.7.1 Refused`.
    Code(String),
}

impl Reply {
    pub fn is_reject(&self) -> bool {
        match self {
            Reply::Reject => true,
            Reply::Code(c) => c.starts_with('5'),
            _ => false,
        }
    }

    pub fn is_tempfail(&self) -> bool {
        match self {
            Reply::Tempfail => true,
            Reply::Code(c) => c.starts_with('4'),
            _ => false,
        }
    }

    /// Whether the MTA would take the message (Continue at end of message
    /// means accept too).
    pub fn is_accept(&self) -> bool {
        matches!(self, Reply::Accept | Reply::Continue)
    }
}

/// An end-of-message action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    AddHeader {
        name: String,
        value: String,
    },
    InsertHeader {
        index: i32,
        name: String,
        value: String,
    },
    /// An empty value deletes the header.
    ChangeHeader {
        index: i32,
        name: String,
        value: String,
    },
    Quarantine {
        reason: String,
    },
    /// Any other action, by its reply byte.
    Other(u8),
}

/// One message's outcome.
#[derive(Clone, Debug)]
pub struct MessageResult {
    pub worker: usize,
    /// The session's number in the run (from 0).
    pub session: usize,
    /// The message's number in the run (from 0); [`run`] sends mail
    /// `seq % mails.len()` as message `seq`.
    pub seq: u64,
    /// The index of the mail sent, in the slice given to [`run`].
    pub mail: usize,
    /// Macro `i`: the prefix of [`Options`] and `seq` in hex.
    pub queue_id: String,
    pub at: At,
    pub reply: Reply,
    pub actions: Vec<Action>,
    /// When the first event of the message was sent.
    pub started: Instant,
    /// When the reply to MAIL came (`None` when MAIL was not sent or gets
    /// no reply): the milter's MAIL callback ran between `started` and
    /// this.
    pub mail_answered: Option<Instant>,
    /// From the first event of the message to the reply that ended it.
    pub latency: Duration,
    /// The longest wait for one reply of the message (a callback's round
    /// trip).
    pub slowest_reply: Duration,
}

impl MessageResult {
    /// The value of the header added (or inserted) under `name`.
    pub fn added_header(&self, name: &str) -> Option<&str> {
        self.actions.iter().find_map(|a| match a {
            Action::AddHeader { name: n, value } | Action::InsertHeader { name: n, value, .. }
                if n.eq_ignore_ascii_case(name) =>
            {
                Some(value.as_str())
            }
            _ => None,
        })
    }

    /// The `key=value` field `key` of the header added under `name`
    /// (`verdict`, `score`, `gen` of mailward's verdict header).
    pub fn header_field(&self, name: &str, key: &str) -> Option<&str> {
        self.added_header(name)?
            .split_ascii_whitespace()
            .find_map(|f| {
                f.strip_prefix(key)
                    .and_then(|r| r.strip_prefix('='))
                    .filter(|v| !v.is_empty())
            })
    }

    /// The rules generation named by the verdict header `name` (`gen=N`).
    pub fn generation(&self, name: &str) -> Option<u64> {
        self.header_field(name, "gen")?.parse().ok()
    }

    pub fn quarantined(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Quarantine { .. }))
    }
}

/// Why a session ended early.
#[derive(Clone, Debug)]
pub struct SessionError {
    pub worker: usize,
    pub session: usize,
    /// The message being sent, if any.
    pub seq: Option<u64>,
    pub error: String,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {}", self.session)?;
        if let Some(s) = self.seq {
            write!(f, " message {s}")?;
        }
        write!(f, ": {}", self.error)
    }
}

/// How to load the milter.
#[derive(Clone, Debug)]
pub struct Options {
    /// Sessions open at once (one worker each).
    pub concurrency: usize,
    /// Sessions each worker opens, one after the other.
    pub sessions_per_worker: usize,
    pub messages_per_session: usize,
    /// Queue ids are this prefix and the message number in hex.
    pub queue_id_prefix: String,
    /// The client host name; its address is 192.0.2.(10 + worker % 200).
    pub client_name: String,
    pub helo: String,
    /// `{auth_authen}` (and `{auth_type}` PLAIN) at MAIL when set.
    pub login: Option<String>,
    /// Longest wait for a connection and its negotiation, and for one
    /// whole message.
    pub timeout: Duration,
    /// Checked before each message: once set, sessions finish the message
    /// under way and quit.
    pub stop: Option<Arc<AtomicBool>>,
    /// Messages per second over the whole run, when set: message slots
    /// are spaced evenly and dealt to the workers in turn, and a worker
    /// waits for its next slot (a worker behind schedule sends at once).
    /// Without it every session sends as fast as the milter answers.
    pub rate: Option<f64>,
    pub actions: u32,
    pub protocol: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 1,
            sessions_per_worker: 1,
            messages_per_session: 1,
            queue_id_prefix: "LG".into(),
            client_name: "client.example".into(),
            helo: "client.example".into(),
            login: None,
            timeout: Duration::from_secs(30),
            stop: None,
            rate: None,
            actions: POSTFIX_ACTIONS,
            protocol: opt::POSTFIX,
        }
    }
}

/// A run's results.
#[derive(Debug)]
pub struct Report {
    /// Ordered by message number.
    pub results: Vec<MessageResult>,
    pub errors: Vec<SessionError>,
    pub started: Instant,
    /// From the start to the last session's end.
    pub elapsed: Duration,
}

impl Report {
    pub fn messages_per_second(&self) -> f64 {
        self.results.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latencies sorted, shortest first.
    pub fn latencies(&self) -> Vec<Duration> {
        let mut l: Vec<Duration> = self.results.iter().map(|r| r.latency).collect();
        l.sort_unstable();
        l
    }

    /// The `q` quantile of the latencies (nearest rank), zero if none.
    pub fn latency_quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies(), q)
    }
}

/// The `q` quantile (nearest rank) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A message as the MTA passes it to milters: envelope, unfolded header
/// fields, body with CRLF line ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mail {
    /// MAIL FROM argument, with angle brackets.
    pub sender: String,
    /// RCPT TO arguments, with angle brackets.
    pub recipients: Vec<String>,
    /// Name and value (no leading space; continuation lines joined by
    /// `\n`, as Postfix passes them). No NUL bytes.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Mail {
    /// Splits a raw message (LF or CRLF line ends; a leading mbox `From `
    /// line is dropped) into header fields and body. The sender is the
    /// Return-Path when there is one; the recipient is
    /// `<postbox@example.test>`. A line that is neither a field nor a
    /// continuation ends the header, as in Postfix's cleanup.
    pub fn from_raw(raw: &[u8]) -> Mail {
        let mut lines = raw.split_inclusive(|&b| b == b'\n').peekable();
        if lines.peek().is_some_and(|l| l.starts_with(b"From ")) {
            lines.next();
        }
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut body = Vec::with_capacity(raw.len());
        let mut in_body = false;
        for line in lines {
            let text = trim_eol(line);
            if in_body {
                body.extend_from_slice(text);
                body.extend_from_slice(b"\r\n");
                continue;
            }
            if text.is_empty() {
                in_body = true;
                continue;
            }
            if matches!(text[0], b' ' | b'\t')
                && let Some((_, v)) = headers.last_mut()
            {
                v.push(b'\n');
                v.extend(text.iter().filter(|&&b| b != 0));
                continue;
            }
            let colon = text.iter().position(|&b| b == b':');
            match colon {
                Some(i)
                    if i > 0 && text[..i].iter().all(|&b| b.is_ascii_graphic() && b != b':') =>
                {
                    let name = text[..i].to_vec();
                    let v = &text[i + 1..];
                    let start = v
                        .iter()
                        .position(|&b| b != b' ' && b != b'\t')
                        .unwrap_or(v.len());
                    let value = v[start..].iter().copied().filter(|&b| b != 0).collect();
                    headers.push((name, value));
                }
                _ => {
                    in_body = true;
                    body.extend_from_slice(text);
                    body.extend_from_slice(b"\r\n");
                }
            }
        }
        let sender = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(b"return-path"))
            .and_then(|(_, v)| {
                let v = String::from_utf8_lossy(v);
                let v = v.trim();
                (v.starts_with('<') && v.ends_with('>') && !v.contains(char::is_whitespace))
                    .then(|| v.to_string())
            })
            .unwrap_or_else(|| "<sender@example.net>".into());
        Mail {
            sender,
            recipients: vec!["<postbox@example.test>".into()],
            headers,
            body,
        }
    }

    /// The message as the milter reassembles it, about: header lines,
    /// blank line, body.
    pub fn size(&self) -> usize {
        self.headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>()
            + 2
            + self.body.len()
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A typical message of about fifteen header fields around `text`
/// (UTF-8, wrapped at about 76 bytes): plain text, except every third
/// message (`seq % 3 == 2`), which is multipart/alternative with the first
/// half of `text` as plain text and as HTML. Deterministic in `seq` and
/// `text`.
pub fn synthetic(seq: usize, text: &str) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut m = String::with_capacity(text.len() + 2048);
    let host = ["mx1", "relay", "smtp-out", "mail"][seq % 4];
    let day = 1 + seq % 28;
    let subject: String = text
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ");
    let _ = write!(
        m,
        "Return-Path: <news{seq}@sender{n}.example>\r\n\
         Received: from {host}.sender{n}.example ({host}.sender{n}.example [198.51.100.{o}])\r\n\
         \tby mx.example.test (Postfix) with ESMTPS id 4Q{seq:08X}\r\n\
         \tfor <postbox@example.test>; Mon, {day} Jul 2024 10:{mi:02}:{se:02} +0000 (UTC)\r\n\
         Received: from internal.sender{n}.example (internal [10.0.{o}.7])\r\n\
         \tby {host}.sender{n}.example with ESMTP id {seq:x}a; Mon, {day} Jul 2024 10:{mi:02}:{se:02} +0000\r\n\
         Received: by app.sender{n}.example (mailer, from userid 1000); Mon, {day} Jul 2024\r\n\
         \t10:{mi:02}:{se:02} +0000\r\n\
         Date: Mon, {day} Jul 2024 10:{mi:02}:{se:02} +0000\r\n\
         From: \"Sender {n}\" <news{seq}@sender{n}.example>\r\n\
         Reply-To: <reply{seq}@sender{n}.example>\r\n\
         To: <postbox@example.test>\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{seq:x}.{n}@sender{n}.example>\r\n\
         MIME-Version: 1.0\r\n\
         X-Mailer: Mailer {n}.{o}\r\n\
         List-Unsubscribe: <https://sender{n}.example/unsubscribe?id={seq}>\r\n\
         X-Priority: 3\r\n",
        n = seq % 97,
        o = seq % 250,
        mi = seq % 60,
        se = (seq * 7) % 60,
    );
    if seq % 3 == 2 {
        let half = &text[..text.floor_char_boundary(text.len() / 2)];
        let b = format!("=_alt_{seq}");
        let _ = write!(
            m,
            "Content-Type: multipart/alternative; boundary=\"{b}\"\r\n\r\n\
             This is a multi-part message in MIME format.\r\n\r\n\
             --{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n"
        );
        wrap(&mut m, half, "");
        let _ = write!(
            m,
            "\r\n--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n\
             <html><head><title>{seq}</title></head><body><p>\r\n"
        );
        wrap(&mut m, half, "<br>");
        let _ = write!(m, "</p></body></html>\r\n\r\n--{b}--\r\n");
    } else {
        m.push_str(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        );
        wrap(&mut m, text, "");
    }
    m.into_bytes()
}

/// Appends `text` in lines of about 76 bytes, broken at spaces (or at a
/// character boundary in long runs without one), each ending in `suffix`
/// and CRLF.
fn wrap(out: &mut String, text: &str, suffix: &str) {
    let mut rest = text.trim();
    while !rest.is_empty() {
        let end = if rest.len() <= 76 {
            rest.len()
        } else {
            let limit = rest.floor_char_boundary(76);
            rest[..limit]
                .rfind(' ')
                .filter(|&i| i > 0)
                .unwrap_or_else(|| rest.floor_char_boundary(100).max(limit))
        };
        out.push_str(&rest[..end]);
        out.push_str(suffix);
        out.push_str("\r\n");
        rest = rest[end..].trim_start();
    }
}

/// What a milter asked for in negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub actions: u32,
    pub protocol: u32,
    /// Macro names by stage (index: [`Stage`]).
    pub macros: [Vec<String>; 7],
}

/// Negotiates with the milter at `target` as [`run`] would, then quits:
/// which events, replies, macros and actions the milter wants.
pub async fn negotiate(target: SocketAddr, opts: &Options) -> Result<Negotiated, String> {
    let mut c = tokio::time::timeout(opts.timeout, Conn::open(target, opts))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let n = Negotiated {
        actions: c.actions,
        protocol: c.protocol,
        macros: c.macros.clone().map(|l| {
            l.iter()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect()
        }),
    };
    c.frame(cmd::QUIT, &[]);
    let _ = c.flush().await;
    Ok(n)
}

/// Sends `mails` to the milter at `target` as `opts` says and returns
/// every message's result. Runs on the current runtime: on a
/// current-thread runtime of its own thread, its CPU time is that
/// thread's.
pub async fn run(target: SocketAddr, mails: Arc<[Mail]>, opts: &Options) -> Report {
    assert!(!mails.is_empty(), "no mail to send");
    let opts = Arc::new(opts.clone());
    let started = Instant::now();
    let workers: Vec<_> = (0..opts.concurrency)
        .map(|w| tokio::spawn(worker(w, target, mails.clone(), opts.clone(), started)))
        .collect();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (w, task) in workers.into_iter().enumerate() {
        match task.await {
            Ok((r, e)) => {
                results.extend(r);
                errors.extend(e);
            }
            Err(e) => errors.push(SessionError {
                worker: w,
                session: w * opts.sessions_per_worker,
                seq: None,
                error: format!("worker failed: {e}"),
            }),
        }
    }
    let elapsed = started.elapsed();
    results.sort_unstable_by_key(|r| r.seq);
    Report {
        results,
        errors,
        started,
        elapsed,
    }
}

async fn worker(
    w: usize,
    target: SocketAddr,
    mails: Arc<[Mail]>,
    opts: Arc<Options>,
    start: Instant,
) -> (Vec<MessageResult>, Vec<SessionError>) {
    let mut results = Vec::with_capacity(opts.sessions_per_worker * opts.messages_per_session);
    let mut errors = Vec::new();
    let ip = Ipv4Addr::new(192, 0, 2, 10 + (w % 200) as u8);
    let mut pace = opts.rate.map(|rate| Pace {
        start,
        rate,
        next: w,
        step: opts.concurrency,
    });
    for s in 0..opts.sessions_per_worker {
        if stopped(&opts) {
            break;
        }
        let session = w * opts.sessions_per_worker + s;
        let mut current = None;
        let outcome = run_session(
            w,
            session,
            target,
            ip,
            &mails,
            &opts,
            &mut results,
            &mut current,
            pace.as_mut(),
        )
        .await;
        if let Err(error) = outcome {
            errors.push(SessionError {
                worker: w,
                session,
                seq: current,
                error,
            });
        }
    }
    (results, errors)
}

/// A worker's share of evenly spaced message slots.
struct Pace {
    start: Instant,
    rate: f64,
    /// The worker's next slot.
    next: usize,
    /// Slots between two of the worker's.
    step: usize,
}

impl Pace {
    async fn wait(&mut self) {
        let due = self.start + Duration::from_secs_f64(self.next as f64 / self.rate);
        self.next += self.step;
        tokio::time::sleep_until(due.into()).await;
    }
}

fn stopped(opts: &Options) -> bool {
    opts.stop
        .as_ref()
        .is_some_and(|s| s.load(Ordering::Relaxed))
}

#[allow(clippy::too_many_arguments)]
async fn run_session(
    w: usize,
    session: usize,
    target: SocketAddr,
    ip: Ipv4Addr,
    mails: &[Mail],
    opts: &Options,
    results: &mut Vec<MessageResult>,
    current: &mut Option<u64>,
    mut pace: Option<&mut Pace>,
) -> Result<(), String> {
    let mut conn = tokio::time::timeout(opts.timeout, Conn::open(target, opts))
        .await
        .map_err(|_| "timed out connecting and negotiating".to_string())?
        .map_err(|e| format!("connecting and negotiating: {e}"))?;
    let greeted = tokio::time::timeout(opts.timeout, conn.greet(opts, ip, w as u16))
        .await
        .map_err(|_| "timed out at connect/HELO".to_string())?;
    match greeted.map_err(|e| format!("connect/HELO: {e}"))? {
        Reply::Continue => {}
        r => return Err(format!("connect/HELO answered {r:?}")),
    }
    for k in 0..opts.messages_per_session {
        if let Some(p) = pace.as_deref_mut() {
            p.wait().await;
        }
        if stopped(opts) {
            break;
        }
        let seq = (session * opts.messages_per_session + k) as u64;
        *current = Some(seq);
        let mail_index = (seq % mails.len() as u64) as usize;
        let queue_id = format!("{}{seq:06X}", opts.queue_id_prefix);
        let started = Instant::now();
        let sent = tokio::time::timeout(
            opts.timeout,
            conn.message(&mails[mail_index], &queue_id, opts),
        )
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
        let latency = started.elapsed();
        let (at, reply, actions) = sent;
        results.push(MessageResult {
            worker: w,
            session,
            seq,
            mail: mail_index,
            queue_id,
            at,
            reply,
            actions,
            started,
            mail_answered: conn.mail_answered.take(),
            latency,
            slowest_reply: std::mem::take(&mut conn.slowest_reply),
        });
        *current = None;
        // Postfix resets the milter at the end of every transaction …
        conn.frame(cmd::ABORT, &[]);
    }
    // … and again as the session ends.
    conn.frame(cmd::ABORT, &[]);
    conn.frame(cmd::QUIT, &[]);
    conn.flush().await.map_err(|e| format!("quit: {e}"))?;
    let _ = conn.stream.shutdown().await;
    Ok(())
}

/// One milter connection: the negotiated options and macro requests, a
/// write buffer of frames not yet sent, a read buffer of replies.
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    /// The unread replies are `inbuf[pos..filled]`.
    pos: usize,
    filled: usize,
    actions: u32,
    protocol: u32,
    /// Requested macro names, by stage.
    macros: [Vec<Vec<u8>>; 7],
    /// The names sent, by stage: the requested ones, or Postfix's
    /// defaults where the milter asked for none.
    sent: [Vec<Vec<u8>>; 7],
    client_name: String,
    client_addr: String,
    /// The `_` macro: `name [address]`.
    client_underscore: String,
    /// `{mail_addr}` and `{rcpt_addr}`: the addresses without brackets.
    mail_addr: Vec<u8>,
    rcpt_addr: Vec<u8>,
    /// Of the message under way: when MAIL was answered, and the longest
    /// wait for a reply.
    mail_answered: Option<Instant>,
    slowest_reply: Duration,
}

type Io<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn bare_addr(a: &str) -> Vec<u8> {
    let a = a.trim();
    let a = a.strip_prefix('<').unwrap_or(a);
    a.strip_suffix('>').unwrap_or(a).as_bytes().to_vec()
}

fn cstr(s: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = s.iter().copied().filter(|&b| b != 0).collect();
    v.push(0);
    v
}

fn cstring_at(data: &[u8], at: &mut usize) -> Io<String> {
    let rest = &data[*at..];
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or("string without NUL")?;
    *at += end + 1;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn i32_at(data: &[u8], at: &mut usize) -> Io<i32> {
    let b = data.get(*at..*at + 4).ok_or("short reply")?;
    *at += 4;
    Ok(i32::from_be_bytes(b.try_into().unwrap()))
}

/// A reply that ends or continues a stage; `None` for an action.
fn parse_reply(kind: u8, data: &[u8]) -> Io<Option<Reply>> {
    Ok(Some(match kind {
        b'c' => Reply::Continue,
        b'a' => Reply::Accept,
        b'd' => Reply::Discard,
        b'r' => Reply::Reject,
        b't' => Reply::Tempfail,
        b's' => Reply::Skip,
        b'y' => Reply::Code(cstring_at(data, &mut 0)?),
        b'h' | b'i' | b'm' | b'q' | b'+' | b'-' | b'2' | b'b' | b'e' => return Ok(None),
        k => return Err(format!("unexpected reply {:?}", k as char).into()),
    }))
}

fn parse_action(kind: u8, data: &[u8]) -> Io<Action> {
    let at = &mut 0;
    Ok(match kind {
        b'h' => Action::AddHeader {
            name: cstring_at(data, at)?,
            value: cstring_at(data, at)?,
        },
        b'i' => Action::InsertHeader {
            index: i32_at(data, at)?,
            name: cstring_at(data, at)?,
            value: cstring_at(data, at)?,
        },
        b'm' => Action::ChangeHeader {
            index: i32_at(data, at)?,
            name: cstring_at(data, at)?,
            value: cstring_at(data, at)?,
        },
        b'q' => Action::Quarantine {
            reason: cstring_at(data, at)?,
        },
        k => Action::Other(k),
    })
}

impl Conn {
    async fn open(target: SocketAddr, opts: &Options) -> Io<Conn> {
        let stream = TcpStream::connect(target).await?;
        // Frames are coalesced here; the kernel must not hold them back.
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            out: Vec::with_capacity(16 << 10),
            inbuf: vec![0; 16 << 10],
            pos: 0,
            filled: 0,
            actions: 0,
            protocol: 0,
            macros: Default::default(),
            sent: Default::default(),
            client_name: opts.client_name.clone(),
            client_addr: String::new(),
            client_underscore: String::new(),
            mail_addr: Vec::new(),
            rcpt_addr: Vec::new(),
            mail_answered: None,
            slowest_reply: Duration::ZERO,
        };
        let mut neg = Vec::with_capacity(12);
        neg.extend_from_slice(&6u32.to_be_bytes());
        neg.extend_from_slice(&opts.actions.to_be_bytes());
        neg.extend_from_slice(&opts.protocol.to_be_bytes());
        c.frame(cmd::OPTNEG, &[&neg]);
        c.flush().await?;
        let (kind, r) = c.read_frame().await?;
        let data = &c.inbuf[r];
        if kind != b'O' || data.len() < 12 {
            return Err(format!("negotiation answered {:?}", kind as char).into());
        }
        let actions = u32::from_be_bytes(data[4..8].try_into().unwrap());
        let protocol = u32::from_be_bytes(data[8..12].try_into().unwrap());
        let mut macros: [Vec<Vec<u8>>; 7] = Default::default();
        let mut at = 12;
        while data.len() - at > 4 {
            let stage = i32_at(data, &mut at)?;
            let names = cstring_at(data, &mut at)?;
            if let Some(list) = usize::try_from(stage).ok().and_then(|s| macros.get_mut(s)) {
                *list = names
                    .split(' ')
                    .filter(|n| !n.is_empty())
                    .map(|n| n.as_bytes().to_vec())
                    .collect();
            }
        }
        c.actions = actions;
        c.protocol = protocol;
        c.macros = macros;
        c.sent = c.macros.clone();
        for (list, default) in c.sent.iter_mut().zip(POSTFIX_MACROS) {
            if list.is_empty() {
                *list = default
                    .split(' ')
                    .filter(|n| !n.is_empty())
                    .map(|n| n.as_bytes().to_vec())
                    .collect();
            }
        }
        Ok(c)
    }

    fn has(&self, o: u32) -> bool {
        self.protocol & o != 0
    }

    /// Appends one frame to the write buffer.
    fn frame(&mut self, kind: u8, parts: &[&[u8]]) {
        let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        self.out.extend_from_slice(&(len as u32).to_be_bytes());
        self.out.push(kind);
        for p in parts {
            self.out.extend_from_slice(p);
        }
    }

    /// Appends the macros of `stage` before `command`, as Postfix does:
    /// a macro packet whenever the stage's list (the milter's request, or
    /// Postfix's default) names any, holding those that have a value (an
    /// MTA sends none it does not have, so the packet may be empty).
    fn macros_before(
        &mut self,
        stage: Stage,
        command: u8,
        queue_id: Option<&str>,
        login: Option<&str>,
    ) {
        let names = std::mem::take(&mut self.sent[stage as usize]);
        if !names.is_empty() {
            let start = self.out.len();
            self.out.extend_from_slice(&[0; 4]);
            self.out.push(cmd::MACRO);
            self.out.push(command);
            for n in &names {
                let bare = n
                    .strip_prefix(b"{")
                    .and_then(|n| n.strip_suffix(b"}"))
                    .unwrap_or(n);
                let value: Option<&[u8]> = match bare {
                    b"i" => queue_id.map(str::as_bytes),
                    b"j" => Some(b"mx.example.test"),
                    b"v" => Some(b"Postfix 3.7.11"),
                    b"_" => Some(self.client_underscore.as_bytes()),
                    b"daemon_name" => Some(b"mx.example.test"),
                    b"daemon_addr" => Some(b"127.0.0.1"),
                    b"client_addr" => Some(self.client_addr.as_bytes()),
                    b"client_name" => Some(self.client_name.as_bytes()),
                    b"mail_addr" if stage as u8 >= Stage::Mail as u8 => Some(&self.mail_addr),
                    b"rcpt_addr" if stage == Stage::Rcpt => Some(&self.rcpt_addr),
                    b"auth_authen" => login.map(str::as_bytes),
                    b"auth_type" => login.map(|_| b"PLAIN".as_slice()),
                    _ => None,
                };
                if let Some(v) = value {
                    self.out.extend_from_slice(n);
                    self.out.push(0);
                    self.out.extend(v.iter().filter(|&&b| b != 0));
                    self.out.push(0);
                }
            }
            let len = (self.out.len() - start - 4) as u32;
            self.out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
        self.sent[stage as usize] = names;
    }

    /// The macros of `stage` before its own command.
    fn macros(&mut self, stage: Stage, queue_id: Option<&str>, login: Option<&str>) {
        self.macros_before(stage, stage.command(), queue_id, login);
    }

    async fn flush(&mut self) -> Io<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads one reply frame: its kind and where its data is in `inbuf`
    /// (valid until the next read).
    async fn read_frame(&mut self) -> Io<(u8, std::ops::Range<usize>)> {
        loop {
            let have = self.filled - self.pos;
            if have >= 4 {
                let head = &self.inbuf[self.pos..self.pos + 4];
                let len = u32::from_be_bytes(head.try_into().unwrap()) as usize;
                if len == 0 || len > MAX_REPLY {
                    return Err(format!("reply length {len}").into());
                }
                if have >= 4 + len {
                    let start = self.pos;
                    self.pos += 4 + len;
                    return Ok((self.inbuf[start + 4], start + 5..start + 4 + len));
                }
                if self.pos + 4 + len > self.inbuf.len() {
                    self.compact();
                    if 4 + len > self.inbuf.len() {
                        self.inbuf.resize(4 + len, 0);
                    }
                }
            } else if self.pos == self.filled {
                self.pos = 0;
                self.filled = 0;
            } else if self.inbuf.len() - self.pos < 4 {
                self.compact();
            }
            let n = self.stream.read(&mut self.inbuf[self.filled..]).await?;
            if n == 0 {
                return Err("the milter closed the connection".into());
            }
            self.filled += n;
        }
    }

    fn compact(&mut self) {
        self.inbuf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.pos = 0;
    }

    /// Sends what is buffered and reads the reply to the last command,
    /// unless the milter asked for none (`noreply`): then the frames wait
    /// for the next write.
    async fn reply(&mut self, noreply: u32) -> Io<Reply> {
        if self.has(noreply) {
            return Ok(Reply::Continue);
        }
        self.flush().await?;
        let sent = Instant::now();
        loop {
            let (kind, r) = self.read_frame().await?;
            if kind == b'p' {
                continue;
            }
            self.slowest_reply = self.slowest_reply.max(sent.elapsed());
            return parse_reply(kind, &self.inbuf[r])?
                .ok_or_else(|| format!("action {:?} before end of message", kind as char).into());
        }
    }

    /// Connect and HELO.
    async fn greet(&mut self, opts: &Options, ip: Ipv4Addr, port: u16) -> Io<Reply> {
        self.client_addr = ip.to_string();
        self.client_underscore = format!("{} [{ip}]", self.client_name);
        if !self.has(opt::NO_CONNECT) {
            self.macros(Stage::Connect, None, None);
            let mut info = cstr(self.client_name.as_bytes());
            info.push(b'4');
            info.extend_from_slice(&port.to_be_bytes());
            info.extend_from_slice(&cstr(self.client_addr.as_bytes()));
            self.frame(cmd::CONNECT, &[&info]);
            let r = self.reply(opt::NR_CONN).await?;
            if r != Reply::Continue {
                return Ok(r);
            }
        }
        if !self.has(opt::NO_HELO) {
            self.macros(Stage::Helo, None, None);
            self.frame(cmd::HELO, &[&cstr(opts.helo.as_bytes())]);
            return self.reply(opt::NR_HELO).await;
        }
        Ok(Reply::Continue)
    }

    /// One message, from MAIL to the reply that ends it.
    async fn message(
        &mut self,
        mail: &Mail,
        queue_id: &str,
        opts: &Options,
    ) -> Io<(At, Reply, Vec<Action>)> {
        let qid = Some(queue_id);
        let login = opts.login.as_deref();
        let done = |at, r| Ok((at, r, Vec::new()));
        self.mail_answered = None;
        self.slowest_reply = Duration::ZERO;
        self.mail_addr = bare_addr(&mail.sender);
        // Postfix opens the queue file, and so has a queue id, once a
        // recipient is accepted (`smtpd_delay_open_until_valid_rcpt`).
        if !self.has(opt::NO_MAIL) {
            self.macros(Stage::Mail, None, login);
            self.frame(cmd::MAIL, &[mail.sender.as_bytes(), b"\0"]);
            let r = self.reply(opt::NR_MAIL).await?;
            if !self.has(opt::NR_MAIL) {
                self.mail_answered = Some(Instant::now());
            }
            if r != Reply::Continue {
                return done(At::Mail, r);
            }
        }
        if !self.has(opt::NO_RCPT) {
            let mut accepted = 0;
            let mut refused = Reply::Continue;
            for rcpt in &mail.recipients {
                self.rcpt_addr = bare_addr(rcpt);
                self.macros(Stage::Rcpt, qid.filter(|_| accepted > 0), login);
                self.frame(cmd::RCPT, &[rcpt.as_bytes(), b"\0"]);
                match self.reply(opt::NR_RCPT).await? {
                    Reply::Continue => accepted += 1,
                    Reply::Accept => return done(At::Rcpt, Reply::Accept),
                    r => refused = r,
                }
            }
            if accepted == 0 && !mail.recipients.is_empty() {
                return done(At::Rcpt, refused);
            }
        }
        if !self.has(opt::NO_DATA) {
            self.macros(Stage::Data, qid, login);
            self.frame(cmd::DATA, &[]);
            let r = self.reply(opt::NR_DATA).await?;
            if r != Reply::Continue {
                return done(At::Data, r);
            }
        }
        if !self.has(opt::NO_HDRS) {
            let space: &[u8] = if self.has(opt::HDR_LEADSPC) {
                b" "
            } else {
                b""
            };
            for (name, value) in &mail.headers {
                // Postfix sends the end-of-header macros before every
                // header, the end of headers and every body chunk.
                self.macros_before(Stage::Eoh, cmd::HEADER, qid, login);
                self.frame(cmd::HEADER, &[name, b"\0", space, value, b"\0"]);
                let r = self.reply(opt::NR_HDR).await?;
                if r != Reply::Continue {
                    return done(At::Header, r);
                }
            }
        }
        if !self.has(opt::NO_EOH) {
            self.macros(Stage::Eoh, qid, login);
            self.frame(cmd::EOH, &[]);
            let r = self.reply(opt::NR_EOH).await?;
            if r != Reply::Continue {
                return done(At::Eoh, r);
            }
        }
        if !self.has(opt::NO_BODY) {
            for chunk in mail.body.chunks(CHUNK) {
                self.macros_before(Stage::Eoh, cmd::BODY, qid, login);
                self.frame(cmd::BODY, &[chunk]);
                match self.reply(opt::NR_BODY).await? {
                    Reply::Continue => {}
                    Reply::Skip => break,
                    r => return done(At::Body, r),
                }
            }
        }
        self.macros(Stage::Eom, qid, login);
        self.frame(cmd::EOM, &[]);
        self.flush().await?;
        let sent = Instant::now();
        let mut actions = Vec::new();
        loop {
            let (kind, r) = self.read_frame().await?;
            if kind == b'p' {
                continue;
            }
            let data = &self.inbuf[r];
            match parse_reply(kind, data)? {
                Some(reply) => {
                    self.slowest_reply = self.slowest_reply.max(sent.elapsed());
                    return Ok((At::Eom, reply, actions));
                }
                None => actions.push(parse_action(kind, data)?),
            }
        }
    }
}
