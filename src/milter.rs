//! The indymilter callbacks: glue between the MTA's events and the rules.
//!
//! # Invariants
//!
//! * All per-connection data lives in the milter context ([`Session`]);
//!   nothing is shared between connections but the current rules.
//! * Every callback before end-of-message answers Continue (or nothing,
//!   where the MTA agreed not to wait): an Accept earlier would end the
//!   session's events for the message. The one exception is Skip, below.
//! * A message takes the rules snapshot in force at its MAIL command and
//!   keeps it to its end, so a reload never changes the rules under it.
//! * The raw message kept is at most `limits.message_bytes`; the rest is
//!   counted, not kept, and the log line says how much was cut. Once a
//!   body chunk overflows it, an MTA that took SMFIP_SKIP is told to skip
//!   the rest of the body (`rest=skipped`: `cut` is then a lower bound).
//! * Decoding, scanning and judging run on the blocking pool, except for
//!   messages up to `milter.inline_judge`, judged on the connection's
//!   thread; a panic on either is an internal error handled as
//!   `milter.on_error` says.
//! * The callbacks never drop the last reference to a rules snapshot: the
//!   reload task keeps retired snapshots and frees them itself.
//! * Behavior monitoring (`crate::behavior`) sees every event; its policy
//!   is the one of the rules in force at connect, then at each MAIL. A
//!   behavior refusal at end of message replaces only a delivery, and
//!   never applies to a message for a role recipient.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::sync::Arc;

use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext,
    ProtoOpts, SetErrorReply, SocketInfo, Status,
};

use crate::behavior::finding::Stage;
use crate::behavior::{Decision, Monitor, Policy, SessionState};
use crate::config::model::{OnError, Reply, ReplyKind};
use crate::judge::{self, Act, Disposition, Exemption};
use crate::library::Scanner;
use crate::metrics::{Metrics, SessionGuard};
use crate::rules::{Evaluation, Rules};
use crate::state::Shared;

/// Longest client name, sender or login kept for the log line.
const MAX_FIELD: usize = 256;

/// Macros requested in negotiation, by stage. Postfix sends exactly these
/// (a request replaces its `milter_*_macros` defaults for that stage).
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

/// Events answered only with Continue, sent without awaiting a reply when
/// the MTA offers it.
const NO_REPLY: ProtoOpts = ProtoOpts::NOREPLY_HEADER.union(ProtoOpts::NOREPLY_EOH);

/// The actions mailward uses, requested when the MTA offers them: the
/// verdict header, removal of forged ones, quarantine, macro requests.
const WANTED_ACTIONS: Actions = Actions::ADD_HEADER
    .union(Actions::CHANGE_HEADER)
    .union(Actions::QUARANTINE)
    .union(Actions::REQUEST_MACROS);

/// Per-connection state.
#[derive(Default)]
pub struct Session {
    client_addr: Option<IpAddr>,
    client_name: String,
    message: Option<Message>,
    behavior: SessionState,
    /// The behavior policy; `None` when behavior monitoring is off.
    policy: Option<Arc<Policy>>,
    /// Counts the session as active while it lives.
    _active: Option<SessionGuard>,
    /// What was agreed in negotiation of [`NO_REPLY`] and Skip: the events
    /// the MTA sends without awaiting a reply, and whether it takes Skip
    /// for the rest of a body.
    agreed: ProtoOpts,
}

/// Per-message state, from MAIL to end of message.
struct Message {
    rules: Arc<Rules>,
    sender: String,
    login: Option<String>,
    recipients: u32,
    role_recipient: bool,
    raw: Vec<u8>,
    /// Bytes received but not kept.
    cut: u64,
    /// The MTA was told to skip the rest of the body: `cut` is a lower bound.
    skipped: bool,
    in_body: bool,
    /// Verdict headers that came with the message.
    forged: u32,
}

impl Message {
    fn new(rules: Arc<Rules>) -> Message {
        Message {
            rules,
            sender: String::new(),
            login: None,
            recipients: 0,
            role_recipient: false,
            raw: Vec::new(),
            cut: 0,
            skipped: false,
            in_body: false,
            forged: 0,
        }
    }

    fn keep(&mut self, parts: &[&[u8]]) {
        let cap = self.rules.config.limits.message_bytes.0;
        for p in parts {
            let room = cap.saturating_sub(self.raw.len());
            let n = room.min(p.len());
            let need = self.raw.len() + n;
            if need > self.raw.capacity() {
                // Grow by doubling, but never past the cap: the cap bounds
                // the memory held, not only the bytes kept.
                let target = need.max(self.raw.capacity() * 2).min(cap);
                self.raw.reserve_exact(target - self.raw.len());
            }
            self.raw.extend_from_slice(&p[..n]);
            self.cut = self.cut.saturating_add((p.len() - n) as u64);
        }
    }

    fn start_body(&mut self) {
        if !self.in_body {
            self.in_body = true;
            self.keep(&[b"\r\n"]);
        }
    }
}

/// A value from the MTA for the log line: UTF-8 (lossy), control
/// characters replaced so that no value can forge a log line, at most
/// [`MAX_FIELD`] bytes.
fn lossy(s: &CStr) -> String {
    let mut s: String = String::from_utf8_lossy(s.to_bytes())
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.len() > MAX_FIELD {
        let end = s.floor_char_boundary(MAX_FIELD);
        s.truncate(end);
    }
    s
}

fn macro_value(macros: &indymilter::Macros, name: &CStr) -> Option<String> {
    macros.get(name).map(lossy).filter(|v| !v.is_empty())
}

/// An address from `{client_addr}` (Sendmail writes IPv6 ones as
/// `IPv6:…`).
fn parse_client_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("ipv6:"))
        .map_or(s, |_| &s[5..]);
    s.parse().ok()
}

/// Whether an envelope address is a role mailbox every domain must accept
/// mail for (RFC 2142 `abuse`, RFC 5321 `postmaster`), with or without a
/// domain.
pub fn is_role_recipient(addr: &str) -> bool {
    let a = addr.trim();
    let a = a.strip_prefix('<').unwrap_or(a);
    let a = a.strip_suffix('>').unwrap_or(a);
    // A source route (`@relay:user@host`) is obsolete but legal.
    let a = a
        .rsplit_once(':')
        .filter(|_| a.starts_with('@'))
        .map_or(a, |(_, r)| r);
    let local = a.rsplit_once('@').map_or(a, |(l, _)| l);
    let local = local.trim_matches('"');
    local.eq_ignore_ascii_case("postmaster") || local.eq_ignore_ascii_case("abuse")
}

thread_local! {
    /// Scan buffers, reused by each blocking-pool thread.
    static SCANNER: RefCell<Scanner> = RefCell::new(Scanner::new());
}

/// What the callbacks share: the current rules, the behavior monitor and
/// the metrics.
struct Shares {
    rules: Arc<Shared>,
    monitor: Arc<Monitor>,
    metrics: Arc<Metrics>,
}

/// The callbacks, sharing `shared` for the current rules, `monitor` for
/// behavior and `metrics` for the counters.
pub fn callbacks(
    shared: Arc<Shared>,
    monitor: Arc<Monitor>,
    metrics: Arc<Metrics>,
) -> Callbacks<Session> {
    let all = Arc::new(Shares {
        rules: shared,
        monitor,
        metrics,
    });
    let (a0, a1, a2, a3, a4) = (
        all.clone(),
        all.clone(),
        all.clone(),
        all.clone(),
        all.clone(),
    );
    let (m5, m6, m7) = (all.clone(), all.clone(), all.monitor.clone());
    Callbacks::new()
        .on_negotiate(move |cx, actions, opts| {
            let metrics = a0.metrics.clone();
            Box::pin(async move { negotiate(&metrics, cx, actions, opts) })
        })
        .on_connect(move |cx, name, info| {
            let a = a1.clone();
            Box::pin(async move { connect(&a, cx, name, info).await })
        })
        .on_helo(move |cx, arg| {
            let a = a2.clone();
            Box::pin(async move { helo(&a, cx, arg).await })
        })
        .on_mail(move |cx, args| {
            let a = a3.clone();
            Box::pin(async move { mail(&a, cx, args).await })
        })
        .on_rcpt(move |cx, args| {
            let a = a4.clone();
            Box::pin(async move { rcpt(&a, cx, args).await })
        })
        .on_data(|cx| Box::pin(async move { data(cx) }))
        .on_header(|cx, name, value| Box::pin(async move { header(cx, name, value) }))
        .on_eoh(|cx| Box::pin(async move { eoh(cx) }))
        .on_body(|cx, chunk| Box::pin(async move { body(cx, &chunk) }))
        .on_eom(move |cx| {
            let a = m5.clone();
            Box::pin(async move { eom(&a, cx).await })
        })
        .on_abort(|cx| Box::pin(async move { abort(cx) }))
        .on_unknown(move |cx, command| {
            let a = m6.clone();
            Box::pin(async move { unknown(&a, cx, command).await })
        })
        .on_close(move |cx| {
            let monitor = m7.clone();
            Box::pin(async move { close(&monitor, cx) })
        })
}

/// The answer for a behavior decision at `stage` (the reply is set for a
/// refusal, and the refusal counted).
fn answer(
    metrics: &Metrics,
    stage: Stage,
    reply: &mut indymilter::SmtpReply,
    d: &Decision,
) -> Status {
    match d {
        Decision::Continue => Status::Continue,
        Decision::Refuse { reply: r, by } => {
            metrics.refusal(stage, by);
            if let Err(e) = reply.set_error_reply(&r.code, Some(&r.status), [r.text.as_str()]) {
                // Checked when the configuration was read.
                log::error!("reply {} {}: {e}", r.code, r.status);
            }
            if r.code.starts_with('5') {
                Status::Reject
            } else {
                Status::Tempfail
            }
        }
    }
}

fn negotiate(
    metrics: &Arc<Metrics>,
    cx: &mut NegotiateContext<Session>,
    actions: Actions,
    opts: ProtoOpts,
) -> Status {
    cx.requested_actions = actions & WANTED_ACTIONS;
    // Headers and the end of headers are only ever answered Continue: an
    // MTA that can skip awaiting those replies saves a round trip per
    // header (Postfix 3.7 offers it: tests/loadgen_like_postfix.rs).
    // Once the kept bytes are full, the rest of a body is only counted:
    // an MTA that takes Skip need not send it at all.
    let agreed = opts & NO_REPLY.union(ProtoOpts::SKIP);
    cx.requested_opts |= agreed;
    if actions.contains(Actions::REQUEST_MACROS) {
        let mut m = HashMap::new();
        for (stage, names) in MACROS {
            if let Ok(c) = CString::new(*names) {
                m.insert(*stage, c);
            }
        }
        cx.requested_macros = m;
    }
    log::debug!(
        "negotiation: the MTA offers {actions:?} {opts:?}; asked {:?} {:?}",
        cx.requested_actions,
        cx.requested_opts
    );
    cx.data = Some(Session {
        _active: Some(metrics.session()),
        agreed,
        ..Session::default()
    });
    Status::Continue
}

async fn connect(a: &Shares, cx: &mut Context<Session>, name: CString, info: SocketInfo) -> Status {
    let (shared, monitor) = (&a.rules, &a.monitor);
    let own_name = macro_value(&cx.macros, c"j");
    let own_addr = macro_value(&cx.macros, c"{daemon_addr}").and_then(|v| parse_client_addr(&v));
    let s = cx.data.get_or_insert_with(Session::default);
    s.client_name = lossy(&name);
    s.client_addr = match info {
        SocketInfo::Inet(a) => Some(a.ip()),
        _ => macro_value(&cx.macros, c"{client_addr}").and_then(|v| parse_client_addr(&v)),
    };
    let rules = shared.current();
    let p = monitor.policy(&rules.config, rules.generation);
    if !p.enabled {
        return Status::Continue;
    }
    let d = monitor
        .connect(
            &mut s.behavior,
            &p,
            s.client_addr,
            &s.client_name,
            own_name.as_deref(),
            own_addr,
        )
        .await;
    s.policy = Some(p);
    answer(&a.metrics, Stage::Connect, &mut cx.reply, &d)
}

/// The session and its behavior policy, when behavior monitoring is on.
fn watched(cx: &mut Context<Session>) -> Option<(&mut SessionState, Arc<Policy>)> {
    let s = cx.data.as_mut()?;
    let p = s.policy.clone()?;
    Some((&mut s.behavior, p))
}

async fn helo(a: &Shares, cx: &mut Context<Session>, arg: CString) -> Status {
    let Some((st, p)) = watched(cx) else {
        return Status::Continue;
    };
    let d = a.monitor.helo(st, &p, arg.to_bytes()).await;
    answer(&a.metrics, Stage::Helo, &mut cx.reply, &d)
}

async fn mail(a: &Shares, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let (shared, monitor) = (&a.rules, &a.monitor);
    let mut m = Message::new(shared.current());
    m.sender = args.first().map(|a| lossy(a)).unwrap_or_default();
    m.login = macro_value(&cx.macros, c"{auth_authen}");
    let queue_id = macro_value(&cx.macros, c"i");
    let p = monitor.policy(&m.rules.config, m.rules.generation);
    let login = m.login.clone();
    let s = cx.data.get_or_insert_with(Session::default);
    s.message = Some(m);
    if !p.enabled {
        s.policy = None;
        return Status::Continue;
    }
    let started = s.policy.is_some();
    s.policy = Some(p.clone());
    if !started {
        // Behavior was off at connect: the session starts being watched now.
        let _ = monitor
            .connect(
                &mut s.behavior,
                &p,
                s.client_addr,
                &s.client_name,
                None,
                None,
            )
            .await;
    }
    let args: Vec<&[u8]> = args.iter().map(|a| a.to_bytes()).collect();
    let d = monitor
        .mail(
            &mut s.behavior,
            &p,
            &args,
            login.as_deref(),
            queue_id.as_deref(),
        )
        .await;
    answer(&a.metrics, Stage::Mail, &mut cx.reply, &d)
}

/// The message being received. Events of a message without MAIL (the MTA
/// always sends it, as the callback is registered) are ignored, and its end
/// is an internal error.
fn message(cx: &mut Context<Session>) -> Option<&mut Message> {
    cx.data.as_mut().and_then(|s| s.message.as_mut())
}

async fn rcpt(a: &Shares, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    if let Some(m) = message(cx) {
        m.recipients = m.recipients.saturating_add(1);
        if args.first().is_some_and(|a| is_role_recipient(&lossy(a))) {
            m.role_recipient = true;
        }
    }
    let Some((st, p)) = watched(cx) else {
        return Status::Continue;
    };
    let args: Vec<&[u8]> = args.iter().map(|a| a.to_bytes()).collect();
    let d = a.monitor.rcpt(st, &p, &args).await;
    answer(&a.metrics, Stage::Rcpt, &mut cx.reply, &d)
}

fn data(cx: &mut Context<Session>) -> Status {
    let queue_id = macro_value(&cx.macros, c"i");
    if let Some((st, _)) = watched(cx) {
        st.data(queue_id.as_deref());
    }
    Status::Continue
}

async fn unknown(a: &Shares, cx: &mut Context<Session>, command: CString) -> Status {
    let Some((st, p)) = watched(cx) else {
        return Status::Continue;
    };
    let d = a.monitor.unknown(st, &p, command.to_bytes()).await;
    if let Decision::Refuse {
        by: "unknown-commands",
        reply,
    } = &d
    {
        log::info!(
            "{}: client={} unknown command {}: answering {} {}",
            st.log_prefix(),
            st.record.client_addr.as_deref().unwrap_or("unknown"),
            st.record.unknown_total,
            reply.code,
            reply.status
        );
    }
    answer(&a.metrics, Stage::Unknown, &mut cx.reply, &d)
}

fn close(monitor: &Monitor, cx: &mut Context<Session>) -> Status {
    if let Some(s) = cx.data.as_mut()
        && let Some(p) = s.policy.take()
    {
        monitor.close(&mut s.behavior, &p);
    }
    Status::Continue
}

fn header(cx: &mut Context<Session>, name: CString, value: CString) -> Status {
    if let Some((st, _)) = watched(cx) {
        st.header(name.to_bytes(), value.to_bytes());
    }
    if let Some(m) = message(cx) {
        let n = name.to_bytes();
        let verdict_header = m.rules.config.judge.header.0.as_bytes();
        if n.eq_ignore_ascii_case(verdict_header) {
            m.forged = m.forged.saturating_add(1);
        }
        m.keep(&[n, b": ", value.to_bytes(), b"\r\n"]);
    }
    continue_or_quiet(cx, ProtoOpts::NOREPLY_HEADER)
}

/// Continue, or no reply where the MTA agreed to send `event` without
/// awaiting one (indymilter would send none then anyway, but warn for each
/// callback that did not say so).
fn continue_or_quiet(cx: &Context<Session>, event: ProtoOpts) -> Status {
    match &cx.data {
        Some(s) if s.agreed.contains(event) => Status::Noreply,
        _ => Status::Continue,
    }
}

fn eoh(cx: &mut Context<Session>) -> Status {
    if let Some((st, p)) = watched(cx) {
        st.eoh(&p);
    }
    if let Some(m) = message(cx) {
        m.start_body();
    }
    continue_or_quiet(cx, ProtoOpts::NOREPLY_EOH)
}

fn body(cx: &mut Context<Session>, chunk: &[u8]) -> Status {
    let Some(s) = cx.data.as_mut() else {
        return Status::Continue;
    };
    let Some(m) = s.message.as_mut() else {
        return Status::Continue;
    };
    m.start_body();
    m.keep(&[chunk]);
    if m.cut > 0 && s.agreed.contains(ProtoOpts::SKIP) {
        // Nothing more would be kept: spare the MTA sending the rest.
        m.skipped = true;
        return Status::Skip;
    }
    Status::Continue
}

fn abort(cx: &mut Context<Session>) -> Status {
    if let Some(s) = cx.data.as_mut() {
        s.message = None;
        s.behavior.end_message("aborted", None);
    }
    Status::Continue
}

fn set_reply<K: ReplyKind>(cx: &mut EomContext<Session>, r: &Reply<K>) {
    if let Err(e) =
        cx.reply
            .set_error_reply(r.code.as_str(), Some(r.status.as_str()), [r.text.as_str()])
    {
        // Checked when the configuration was read; the MTA's default
        // reply is used if it fails anyway.
        log::error!("reply {} {}: {e}", r.code.as_str(), r.status.as_str());
    }
}

async fn eom(a: &Shares, cx: &mut EomContext<Session>) -> Status {
    let _timer = a.metrics.eom_timer();
    let monitor = &a.monitor;
    let queue_id = macro_value(&cx.macros, c"i").unwrap_or_else(|| "NOQUEUE".into());
    // indymilter only passes end of message after MAIL, so both exist.
    let Some(session) = cx.data.as_mut() else {
        log::error!("{queue_id}: end of message without a session");
        return Status::Tempfail;
    };
    let Some(mut msg) = session.message.take() else {
        log::error!("{queue_id}: end of message without a message");
        return Status::Tempfail;
    };
    let client = format!(
        "{}[{}]",
        if session.client_name.is_empty() {
            "unknown"
        } else {
            &session.client_name
        },
        session
            .client_addr
            .map_or_else(|| "unknown".into(), |a| a.to_string())
    );
    let exemption = exemption(&msg, session.client_addr);
    let policy = session.policy.clone();
    let conformity = policy
        .as_ref()
        .map(|p| p.judge_factor * session.behavior.score())
        .filter(|w| *w != 0.0)
        .map(|weight| judge::Mark {
            category: "conformity",
            weight,
            action: None,
        });

    // Decoding and scanning take milliseconds on large mail: off the
    // callback threads, on the blocking pool (the raw bytes are freed there
    // too). A small message costs less judged in place than the two thread
    // hand-overs of the pool (milter.inline_judge).
    let rules = msg.rules.clone();
    let raw = std::mem::take(&mut msg.raw);
    let kept = raw.len();
    let inline = rules
        .config
        .milter
        .inline_judge
        .0
        .is_some_and(|max| kept <= max);
    let metrics = a.metrics.clone();
    let judge = move || {
        let start = std::time::Instant::now();
        let ev = SCANNER.with(|s| rules.evaluate_with(&raw, &mut s.borrow_mut(), conformity));
        metrics.scan.observe(start.elapsed());
        metrics.hits(&rules, &ev.scan.hits, rules.config.metrics.top_entries.0);
        ev
    };
    // A panic is an internal error either way, never a lost session.
    let evaluated: Result<_, String> = if inline {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(judge))
            .map_err(|_| "the judgment panicked".to_string())
    } else {
        tokio::task::spawn_blocking(judge)
            .await
            .map_err(|e| e.to_string())
    };
    let config = &msg.rules.config;
    let ev = match evaluated {
        Ok(ev) => ev,
        Err(e) => {
            log::error!(
                "{queue_id}: client={client} internal error judging the message: {e}; on_error={:?}",
                config.milter.on_error
            );
            let (status, action) = match config.milter.on_error {
                OnError::Accept => (Status::Accept, "deliver"),
                OnError::Tempfail => {
                    set_reply(cx, &config.replies.error);
                    (Status::Tempfail, "tempfail")
                }
            };
            if let Some(s) = cx.data.as_mut() {
                s.behavior.end_message(action, Some("error"));
            }
            a.metrics.error(action);
            return status;
        }
    };

    let j = &ev.judgment;
    let d = judge::dispose(
        j.verdict,
        config.judge.mode,
        exemption,
        config.judge.tag_accepted,
    );
    // Behavior: a spam verdict counts; a limit or the session's conformity
    // score may refuse a message the content would let through.
    let spam = j.verdict >= judge::Verdict::Quarantine;
    let behavior = match (&policy, cx.data.as_mut()) {
        (Some(p), Some(s)) => {
            monitor
                .eom(&mut s.behavior, p, spam, Some(queue_id.as_str()))
                .await
        }
        _ => Decision::Continue,
    };
    let refused_by = match &behavior {
        Decision::Refuse { by, .. }
            if exemption != Some(Exemption::RoleRecipient)
                && matches!(d.act, Act::Deliver | Act::Quarantine) =>
        {
            Some(*by)
        }
        _ => None,
    };
    let (status, problems) = match refused_by {
        Some(_) => (
            answer(&a.metrics, Stage::Eom, &mut cx.reply, &behavior),
            Vec::new(),
        ),
        None => apply(cx, &msg, &ev, exemption, d).await,
    };
    let action = match (refused_by, status) {
        (None, _) => d.act.as_str(),
        (Some(_), Status::Reject) => "reject",
        (Some(_), _) => "tempfail",
    };
    a.metrics.message(j.verdict, action, exemption);
    if msg.cut > 0 {
        a.metrics.cut(msg.skipped);
    }
    if let Some(s) = cx.data.as_mut() {
        let by = refused_by.or(matches!(d.act, Act::Tempfail | Act::Reject).then_some("content"));
        s.behavior.finish_message(
            action,
            by,
            Some(j.verdict.as_str()),
            Some(j.score),
            &ev.top_ids,
        );
    }

    let mut line = format!(
        "{queue_id}: client={client} from={} rcpts={} size={kept}",
        if msg.sender.is_empty() {
            "<>"
        } else {
            &msg.sender
        },
        msg.recipients
    );
    log_details(&mut line, &msg, &ev, exemption, d);
    if let (Some(by), Decision::Refuse { reply, .. }) = (refused_by, &behavior) {
        use std::fmt::Write;
        let _ = write!(line, " behavior={by}:{}", reply.code);
    }
    log::info!("{line}");
    for n in &ev.scan.notes {
        log::debug!("{queue_id}: note: {n}");
    }
    for p in problems {
        log::warn!("{queue_id}: {p}");
    }
    status
}

/// Why the message is not to be refused for its content, if it is not.
fn exemption(msg: &Message, client_addr: Option<IpAddr>) -> Option<Exemption> {
    let exempt = &msg.rules.config.exempt;
    if msg.role_recipient {
        Some(Exemption::RoleRecipient)
    } else if client_addr.is_some_and(|ip| exempt.trusted_networks.iter().any(|n| n.contains(ip))) {
        Some(Exemption::TrustedNetwork)
    } else if exempt.authenticated && msg.login.is_some() {
        Some(Exemption::Authenticated)
    } else {
        None
    }
}

/// Carries out a disposition: header actions, quarantine, the reply.
/// Returns the status and the actions that failed.
async fn apply(
    cx: &mut EomContext<Session>,
    msg: &Message,
    ev: &Evaluation,
    exemption: Option<Exemption>,
    d: Disposition,
) -> (Status, Vec<String>) {
    let config = &msg.rules.config;
    let header_name = config.judge.header.0.as_str();
    let mut problems = Vec::new();
    if d.act == Act::Deliver || d.act == Act::Quarantine {
        // Highest index first: removing one renumbers those after it.
        for i in (1..=msg.forged).rev() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let removed = cx
                .actions
                .change_header(header_name, i, None::<CString>)
                .await;
            if let Err(e) = removed {
                problems.push(format!("removing forged {header_name}: {e}"));
                break;
            }
        }
        if d.header {
            let value = judge::header_value(&ev.judgment, msg.rules.generation, exemption);
            if let Err(e) = cx.actions.add_header(header_name, value).await {
                problems.push(format!("adding {header_name}: {e}"));
            }
        }
    }
    let status = match d.act {
        Act::Deliver => Status::Accept,
        Act::Quarantine => {
            let reason = config.replies.quarantine.as_str();
            if let Err(e) = cx.actions.quarantine(reason).await {
                problems.push(format!("quarantine: {e}"));
            }
            Status::Accept
        }
        Act::Tempfail => {
            set_reply(cx, &config.replies.tempfail);
            Status::Tempfail
        }
        Act::Reject => {
            set_reply(cx, &config.replies.reject);
            Status::Reject
        }
    };
    (status, problems)
}

/// The judgment part of a message's log line.
fn log_details(
    line: &mut String,
    msg: &Message,
    ev: &Evaluation,
    exemption: Option<Exemption>,
    d: Disposition,
) {
    use std::fmt::Write;
    let j = &ev.judgment;
    if msg.cut > 0 {
        let _ = write!(line, " cut={}", msg.cut);
        if msg.skipped {
            line.push_str(" rest=skipped");
        }
    }
    let _ = write!(
        line,
        " verdict={} act={} score={:.1} gen={}",
        j.verdict,
        d.act.as_str(),
        j.score,
        msg.rules.generation
    );
    if let Some(e) = exemption {
        let _ = write!(line, " exempt={e}");
    }
    if d.header {
        line.push_str(" tagged");
    }
    let _ = write!(line, " hits={}", ev.scan.hits.len());
    if !ev.top_ids.is_empty() {
        let _ = write!(line, " ids={}", ev.top_ids.join(","));
    }
    if !ev.scan.notes.is_empty() {
        let mut kinds: Vec<&str> = Vec::new();
        for k in ev.scan.notes.iter().map(|n| n.kind()) {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        let _ = write!(line, " notes={}", kinds.join(","));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_recipients() {
        for a in [
            "<postmaster@example.com>",
            "<Postmaster@Example.COM>",
            "<postmaster>",
            "postmaster",
            "<abuse@example.org>",
            "<ABUSE@x>",
            "<@relay.example:abuse@example.org>",
            "<\"postmaster\"@example.com>",
        ] {
            assert!(is_role_recipient(a), "{a}");
        }
        for a in [
            "<alice@example.com>",
            "<postmaster.x@example.com>",
            "<notabuse@example.com>",
            "<abuse+x@example.com>",
            "<>",
            "",
        ] {
            assert!(!is_role_recipient(a), "{a}");
        }
    }

    fn message(cap_kib: usize) -> Message {
        let mut config = crate::Config::default();
        config.limits.message_bytes = crate::config::model::ByteSize(cap_kib << 10);
        let library = crate::library::Library::from_specs(
            &[crate::library::EntrySpec::new("x")],
            Default::default(),
        )
        .unwrap();
        Message::new(Arc::new(Rules {
            generation: 1,
            config,
            library,
            policy: Default::default(),
            decode: Default::default(),
        }))
    }

    #[test]
    fn the_kept_bytes_and_their_memory_stay_under_the_cap() {
        let mut m = message(10);
        let chunk = vec![b'a'; 3000];
        for _ in 0..5 {
            m.keep(&[&chunk]);
        }
        assert_eq!(m.raw.len(), 10 << 10);
        assert!(m.raw.capacity() <= 10 << 10, "{}", m.raw.capacity());
        assert_eq!(m.cut, 15000 - (10 << 10));
        m.start_body();
        assert_eq!(m.cut, 15000 - (10 << 10) + 2);
    }

    #[test]
    fn headers_and_body_are_kept_as_a_message() {
        let mut m = message(1);
        m.keep(&[b"Subject", b": ", b"hi", b"\r\n"]);
        m.start_body();
        m.start_body();
        m.keep(&[b"body\r\n"]);
        assert_eq!(m.raw, b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(m.cut, 0);
    }

    #[test]
    fn logged_values_are_tamed() {
        assert_eq!(lossy(c"<a@b>\r\nfake line"), "<a@b>??fake line");
        assert_eq!(lossy(c"\xff\xfe"), "\u{fffd}\u{fffd}");
        assert_eq!(
            lossy(&CString::new("é".repeat(200)).unwrap()).len(),
            MAX_FIELD
        );
    }

    #[test]
    fn client_addresses() {
        assert_eq!(parse_client_addr("192.0.2.1"), Some([192, 0, 2, 1].into()));
        assert_eq!(
            parse_client_addr("IPv6:2001:db8::1"),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(parse_client_addr("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(parse_client_addr("unknown"), None);
        assert_eq!(parse_client_addr(""), None);
    }
}
