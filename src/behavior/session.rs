//! One SMTP session as the behavior monitor sees it: its findings, its
//! messages, its unknown commands and the limits it tripped, and the
//! counter operations each stage sends to the store.
//!
//! Each stage method is synchronous and fills the session's [`Batch`];
//! the monitor (`super::monitor`) sends the batch to the store and hands
//! the tripped limits back to [`SessionState::decide`].
//!
//! # Rules
//!
//! * A limit is checked at the earliest stage where its count can change
//!   or its key becomes known: every limit of the client address at
//!   connect, every limit of the address, login and sender at MAIL, and
//!   the limits of the metrics a stage changes (recipients at RCPT,
//!   unknown commands and findings at their stage, spam verdicts at end of
//!   message).
//! * Clients in trusted networks and sessions with a trusted login count
//!   nothing and are never refused for their behavior; their findings are
//!   still recorded.
//! * The session's conformity score is the sum of its findings' weights;
//!   its own thresholds are checked at MAIL, RCPT and end of message.
//! * Every list in the record is capped; totals are kept beside them.
//!
//! Costs: a stage allocates only for what it records (findings, trips,
//! messages); the batch and the trip buffer are reused.

use std::net::IpAddr;

use super::conformity::{self, HeaderCheck, HeloContext};
use super::finding::{Code, Finding, Stage, detail};
use super::limits::{KeyKind, LimitAction, Metric, SmtpReply, Trip};
use super::policy::Policy;
use super::record::{self, FindingRecord, MessageRecord, SessionRecord, TripRecord};
use super::store::{Batch, Key, Store};
use super::table::Op;

/// What a stage answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Continue,
    /// Refuse with `reply` (a 4xx or 5xx).
    Refuse {
        reply: SmtpReply,
        by: &'static str,
    },
}

impl Decision {
    pub fn is_refusal(&self) -> bool {
        matches!(self, Decision::Refuse { .. })
    }
}

/// The message in progress.
#[derive(Debug, Default)]
struct Msg {
    sender: String,
    sender_key: Option<(Key, String)>,
    smtputf8: bool,
    recipients: u32,
    headers: HeaderCheck,
    header_findings: u32,
    queue_id: Option<String>,
}

/// The behavior of one session.
#[derive(Debug, Default)]
pub struct SessionState {
    pub record: SessionRecord,
    client: Option<IpAddr>,
    ip: Option<(Key, String)>,
    ip_fp: u32,
    trusted_ip: bool,
    trusted_login: bool,
    helo_raw: Option<Vec<u8>>,
    own_names: Vec<String>,
    own_addr: Option<IpAddr>,
    login: Option<(Key, String)>,
    login_counted: bool,
    unknown: u32,
    msg: Option<Msg>,
    pub(super) batch: Batch,
    pub(super) trips: Vec<Trip>,
    found: Vec<Finding>,
}

/// Longest unknown command kept, in bytes.
const MAX_COMMAND: usize = 40;

impl SessionState {
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    fn exempt(&self) -> bool {
        self.trusted_ip || self.trusted_login
    }

    /// Records the findings in `self.found`; returns how many there were.
    fn take_findings(&mut self, p: &Policy) -> u32 {
        let n = self.found.len() as u32;
        for f in self.found.drain(..) {
            p.counters.finding(f.code);
            let w = p.weights.get(f.code);
            self.record.score += w;
            self.record.findings_total = self.record.findings_total.saturating_add(1);
            if self.record.findings.len() < p.max_findings {
                self.record.findings.push(FindingRecord {
                    code: f.code,
                    weight: w,
                    detail: f.detail,
                });
            }
        }
        n
    }

    /// Adds `op` for each key known (unless the session is exempt).
    fn each_key(&mut self, op: Op, with_sender: bool) {
        if self.exempt() {
            return;
        }
        if let Some((k, _)) = self.ip {
            self.batch.push(k, op);
        }
        if let Some((k, _)) = self.login {
            self.batch.push(k, op);
        }
        if with_sender && let Some((k, _)) = self.msg.as_ref().and_then(|m| m.sender_key.as_ref()) {
            self.batch.push(*k, op);
        }
    }

    fn start(&mut self) {
        self.batch = Batch::default();
        self.trips.clear();
    }

    /// The client connected.
    #[allow(clippy::too_many_arguments)]
    pub fn connect<S: Store>(
        &mut self,
        p: &Policy,
        store: &S,
        now_ms: u64,
        client: Option<IpAddr>,
        name: &str,
        own_name: Option<&str>,
        own_addr: Option<IpAddr>,
    ) {
        self.start();
        self.record.start_ms = now_ms;
        self.record.end_ms = now_ms;
        self.record.client_name = name.to_owned();
        self.client = client;
        self.own_addr = own_addr;
        self.own_names = p.own_names.clone();
        if let Some(n) = own_name {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            if !n.is_empty() && !self.own_names.contains(&n) {
                self.own_names.push(n);
            }
        }
        let Some(ip) = client else { return };
        let net = p.network(ip);
        self.record.client_addr = Some(ip.to_canonical().to_string());
        self.trusted_ip = p.is_trusted_ip(ip);
        self.record.trusted = self.trusted_ip;
        self.ip_fp = store.item(net.as_bytes());
        let key = store.key(KeyKind::Ip, net.as_bytes());
        self.ip = Some((key, net));
        if !self.trusted_ip {
            self.batch.push(key, Op::Add(Metric::Connections, 1));
            self.batch.check_all(key);
        }
    }

    /// HELO or EHLO.
    pub fn helo(&mut self, p: &Policy, arg: &[u8]) {
        self.start();
        let cx = HeloContext {
            client: self.client,
            own_names: &self.own_names,
            own_addr: self.own_addr,
            previous: self.helo_raw.as_deref(),
        };
        conformity::check_helo(arg, &cx, &mut self.found);
        let n = self.take_findings(p);
        self.record.helos = self.record.helos.saturating_add(1);
        self.record.helo = Some(detail(arg));
        self.helo_raw = Some(arg.get(..255).unwrap_or(arg).to_vec());
        if n > 0 {
            self.each_key(Op::Add(Metric::Findings, n), false);
        }
    }

    /// MAIL FROM with its arguments and the login the MTA passed.
    pub fn mail<S: Store>(&mut self, p: &Policy, store: &S, args: &[&[u8]], login: Option<&str>) {
        self.start();
        self.end_message("aborted", None);
        if self.helo_raw.is_none() {
            self.found.push(Finding {
                code: Code::MailNoHelo,
                detail: String::new(),
            });
        }
        let smtputf8 = conformity::check_mail(args, &mut self.found);
        let n = self.take_findings(p);
        let raw = args.first().copied().unwrap_or_default();
        let mut msg = Msg {
            sender: detail(raw),
            smtputf8,
            ..Msg::default()
        };
        if let Some(l) = login {
            let changed = self.login.as_ref().is_none_or(|(_, old)| old != l);
            if changed {
                self.login = Some((store.key(KeyKind::Login, l.as_bytes()), l.to_owned()));
                self.login_counted = false;
                self.trusted_login = p.is_trusted_login(l);
            }
            self.record.login = Some(l.to_owned());
        }
        self.record.trusted = self.trusted_ip || self.trusted_login;
        let canonical = canonical_sender(raw);
        if !canonical.is_empty() {
            let k = store.key(KeyKind::Sender, canonical.as_bytes());
            msg.sender_key = Some((k, canonical));
        }
        self.msg = Some(msg);
        if self.exempt() {
            return;
        }
        self.each_key(Op::Add(Metric::Messages, 1), true);
        if n > 0 {
            self.each_key(Op::Add(Metric::Findings, n), true);
        }
        let ip_fp = self.ip_fp;
        let have_ip = self.ip.is_some();
        if let Some((k, name)) = &self.login {
            if !self.login_counted {
                self.batch.push(*k, Op::Add(Metric::Connections, 1));
                self.login_counted = true;
            }
            if have_ip {
                self.batch.push(*k, Op::Item(Metric::DistinctIps, ip_fp));
            }
            if let Some((ik, _)) = self.ip {
                self.batch.push(
                    ik,
                    Op::Item(Metric::DistinctLogins, store.item(name.as_bytes())),
                );
            }
            self.batch.check_all(*k);
        }
        if let Some((k, _)) = self.msg.as_ref().and_then(|m| m.sender_key.as_ref()) {
            let k = *k;
            if have_ip {
                self.batch.push(k, Op::Item(Metric::DistinctIps, ip_fp));
            }
            self.batch.check_all(k);
        }
        if let Some((k, _)) = self.ip {
            self.batch.check_all(k);
        }
    }

    /// RCPT TO with its arguments.
    pub fn rcpt(&mut self, p: &Policy, args: &[&[u8]]) {
        self.start();
        let Some(m) = self.msg.as_mut() else { return };
        m.recipients = m.recipients.saturating_add(1);
        conformity::check_rcpt(args, m.smtputf8, &mut self.found);
        if m.recipients == p.max_recipients.saturating_add(1) {
            self.found.push(Finding {
                code: Code::RcptTooMany,
                detail: format!("more than {}", p.max_recipients),
            });
        }
        let n = self.take_findings(p);
        self.each_key(Op::Add(Metric::Recipients, 1), true);
        if n > 0 {
            self.each_key(Op::Add(Metric::Findings, n), true);
        }
    }

    /// DATA: the queue id is known from here on.
    pub fn data(&mut self, queue_id: Option<&str>) {
        self.set_queue_id(queue_id);
    }

    /// The queue id of the message in progress, when the MTA passes one
    /// (Sendmail does from MAIL on, Postfix from DATA on by default).
    pub fn set_queue_id(&mut self, queue_id: Option<&str>) {
        if let (Some(m), Some(q)) = (self.msg.as_mut(), queue_id) {
            m.queue_id = Some(q.to_owned());
        }
    }

    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        if let Some(m) = self.msg.as_mut() {
            m.headers.add(name, value);
        }
    }

    /// End of headers: the header findings.
    pub fn eoh(&mut self, p: &Policy) {
        let Some(m) = self.msg.as_mut() else { return };
        m.headers.finish(m.smtputf8, &mut self.found);
        let n = self.take_findings(p);
        if let Some(m) = self.msg.as_mut() {
            m.header_findings = m.header_findings.saturating_add(n);
        }
    }

    /// An unknown command. Returns the disconnect decision when this is
    /// the command the session is dropped at.
    pub fn unknown(&mut self, p: &Policy, command: &[u8]) -> Option<Decision> {
        self.start();
        self.unknown = self.unknown.saturating_add(1);
        self.record.unknown_total = self.unknown;
        let mut d = detail(command.get(..MAX_COMMAND).unwrap_or(command));
        if command.len() > MAX_COMMAND {
            d.push('…');
        }
        if self.record.unknown_commands.len() < p.keep_unknown {
            self.record.unknown_commands.push(d.clone());
        }
        self.found.push(Finding {
            code: Code::CmdUnknown,
            detail: d,
        });
        let n = self.take_findings(p);
        self.each_key(Op::Add(Metric::UnknownCommands, 1), true);
        self.each_key(Op::Add(Metric::Findings, n), true);
        if p.disconnect_at > 0 && self.unknown >= p.disconnect_at && !self.exempt() {
            self.record.disconnected = true;
            return Some(Decision::Refuse {
                reply: p.disconnect_reply.clone(),
                by: "unknown-commands",
            });
        }
        None
    }

    /// End of message, before the answer: counts a spam verdict and the
    /// header findings.
    pub fn eom(&mut self, spam: bool, queue_id: Option<&str>) {
        self.start();
        if let (Some(m), Some(q)) = (self.msg.as_mut(), queue_id) {
            m.queue_id = Some(q.to_owned());
        }
        let n = self.msg.as_ref().map_or(0, |m| m.header_findings);
        if spam {
            self.each_key(Op::Add(Metric::Spam, 1), true);
        }
        if n > 0 {
            self.each_key(Op::Add(Metric::Findings, n), true);
        }
    }

    /// The session's conformity score.
    pub fn score(&self) -> f64 {
        self.record.score
    }

    /// What a log line about this session starts with: the queue id of
    /// the message in progress once the MTA has passed it, else
    /// `NOQUEUE` (as Postfix writes it).
    pub fn log_prefix(&self) -> &str {
        self.msg
            .as_ref()
            .and_then(|m| m.queue_id.as_deref())
            .unwrap_or("NOQUEUE")
    }

    /// Records the limits in `self.trips` and decides: the strongest
    /// refusing limit, else the conformity thresholds when `thresholds`.
    pub fn decide(&mut self, p: &Policy, stage: Stage, thresholds: bool) -> Decision {
        let mut refusal: Option<(LimitAction, SmtpReply)> = None;
        for t in std::mem::take(&mut self.trips) {
            let value = match t.rule.key {
                KeyKind::Ip => self.ip.as_ref().map(|(_, v)| v.clone()),
                KeyKind::Login => self.login.as_ref().map(|(_, v)| v.clone()),
                KeyKind::Sender => self
                    .msg
                    .as_ref()
                    .and_then(|m| m.sender_key.as_ref())
                    .map(|(_, v)| v.clone()),
            }
            .unwrap_or_default();
            log::info!(
                "{}: limit {}: client={} {}={value} {} {} > {} in {}s: {}",
                self.log_prefix(),
                t.rule.index,
                self.record.client_addr.as_deref().unwrap_or("unknown"),
                t.rule.key,
                t.rule.metric,
                t.count,
                t.rule.max,
                t.rule.window,
                t.rule.action.as_str()
            );
            p.counters.trip(&t.rule);
            self.record.limits_total = self.record.limits_total.saturating_add(1);
            if self.record.limits.len() < record::MAX_TRIPS {
                self.record.limits.push(TripRecord {
                    stage,
                    limit: t.rule.index,
                    key: t.rule.key,
                    value,
                    metric: t.rule.metric,
                    window: t.rule.window,
                    max: t.rule.max,
                    count: t.count,
                    action: t.rule.action,
                });
            }
            let stronger = match (&refusal, t.rule.action) {
                (_, LimitAction::Monitor) => false,
                (None, _) => true,
                (Some((LimitAction::Tempfail, _)), LimitAction::Reject) => true,
                _ => false,
            };
            if stronger {
                refusal = Some((t.rule.action, t.rule.reply.clone()));
            }
        }
        if self.exempt() {
            return Decision::Continue;
        }
        if let Some((_, reply)) = refusal {
            return Decision::Refuse { reply, by: "limit" };
        }
        if thresholds {
            let reaches = |t: Option<f64>| t.is_some_and(|t| self.record.score >= t - 1e-9);
            if reaches(p.reject_score) {
                return Decision::Refuse {
                    reply: p.reject_reply.clone(),
                    by: "conformity",
                };
            }
            if reaches(p.tempfail_score) {
                return Decision::Refuse {
                    reply: p.tempfail_reply.clone(),
                    by: "conformity",
                };
            }
        }
        Decision::Continue
    }

    /// Records the message in progress as ended with `action`.
    pub fn finish_message(
        &mut self,
        action: &'static str,
        refused_by: Option<&'static str>,
        verdict: Option<&'static str>,
        score: Option<f64>,
        ids: &[String],
    ) {
        let Some(m) = self.msg.take() else { return };
        self.record.messages_total = self.record.messages_total.saturating_add(1);
        if self.record.messages.len() < record::MAX_MESSAGES {
            self.record.messages.push(MessageRecord {
                queue_id: m.queue_id,
                sender: m.sender,
                login: self.login.as_ref().map(|(_, l)| l.clone()),
                recipients: m.recipients,
                verdict,
                score,
                action,
                refused_by,
                ids: ids.to_vec(),
            });
        }
    }

    /// Ends the message in progress, if any, without a verdict.
    pub fn end_message(&mut self, action: &'static str, refused_by: Option<&'static str>) {
        self.finish_message(action, refused_by, None, None, &[]);
    }

    /// The session closed: its finished record.
    pub fn close(&mut self, now_ms: u64) -> &SessionRecord {
        self.end_message("aborted", None);
        self.record.end_ms = now_ms.max(self.record.start_ms);
        &self.record
    }
}

/// The sender as counted: the address without brackets, lower case; empty
/// for the null sender.
pub fn canonical_sender(raw: &[u8]) -> String {
    let s = raw.trim_ascii();
    let s = s.strip_prefix(b"<").unwrap_or(s);
    let s = s.strip_suffix(b">").unwrap_or(s);
    let s = s.get(..320).unwrap_or(s);
    String::from_utf8_lossy(s)
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::store::MemoryStore;
    use crate::config::model::BehaviorSettings;

    fn policy(yaml: &str) -> Policy {
        let b: BehaviorSettings = serde_norway::from_str(yaml).unwrap();
        Policy::compile(&b)
    }

    #[test]
    fn senders() {
        assert_eq!(canonical_sender(b"<Bob@Example.COM>"), "bob@example.com");
        assert_eq!(canonical_sender(b"<>"), "");
        assert_eq!(canonical_sender(b"a\r@b"), "a@b");
    }

    #[test]
    fn a_session_records_findings_messages_and_unknown_commands() {
        let p = policy("unknown_commands: {disconnect_at: 2, keep: 1}\n");
        let store = MemoryStore::new(&p.rules, p.max_keys, 0);
        let mut s = SessionState::default();
        s.connect(
            &p,
            &store,
            1_000,
            Some([192, 0, 2, 1].into()),
            "c.example",
            Some("mx.example"),
            None,
        );
        s.helo(&p, b"192.0.2.1");
        assert!(s.unknown(&p, b"XFOO\x01").is_none());
        let d = s.unknown(&p, &[b'Y'; 100]).unwrap();
        assert!(matches!(&d, Decision::Refuse { reply, .. } if reply.code == "421"));
        s.mail(&p, &store, &[b"<a@example.com>"], Some("bob"));
        s.rcpt(&p, &[b"<b@example.com>"]);
        s.data(Some("Q1"));
        s.header(b"From", b"a@example.com");
        s.eoh(&p);
        s.eom(false, None);
        s.finish_message("deliver", None, Some("accept"), Some(0.0), &["x".into()]);
        s.mail(&p, &store, &[b"<a@example.com>"], Some("bob"));
        let line = s.close(2_000).to_json();
        let r = &s.record;
        let codes: Vec<&str> = r.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "helo.bare-ip",
                "cmd.unknown",
                "cmd.unknown",
                "hdr.missing-date"
            ]
        );
        assert_eq!(r.unknown_commands, ["XFOO\\x01"]);
        assert_eq!(r.unknown_total, 2);
        assert!(r.findings[2].detail.ends_with('…'));
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.messages[0].queue_id.as_deref(), Some("Q1"));
        assert_eq!(r.messages[1].action, "aborted");
        assert!(r.disconnected);
        assert_eq!(r.login.as_deref(), Some("bob"));
        assert!(line.contains("\"helo\":\"192.0.2.1\""), "{line}");
    }

    #[test]
    fn conformity_thresholds_refuse_and_trust_exempts() {
        let p =
            policy("conformity: {tempfail_score: 2, reject_score: 3}\ntrusted_logins: [boss]\n");
        let store = MemoryStore::new(&p.rules, p.max_keys, 0);
        let mut s = SessionState::default();
        s.connect(&p, &store, 0, Some([192, 0, 2, 1].into()), "c", None, None);
        s.mail(&p, &store, &[b"a@example.com"], None);
        // mail.no-helo + mail.no-angle-brackets = 2.
        match s.decide(&p, Stage::Mail, true) {
            Decision::Refuse { reply, by } => {
                assert_eq!((reply.code.as_str(), by), ("451", "conformity"));
            }
            d => panic!("{d:?}"),
        }
        s.rcpt(&p, &[b"b@example.com"]);
        assert!(
            matches!(s.decide(&p, Stage::Rcpt, true), Decision::Refuse { reply, .. } if reply.code == "550")
        );
        s.mail(&p, &store, &[b"<a@example.com>"], Some("boss"));
        assert_eq!(s.decide(&p, Stage::Mail, true), Decision::Continue);
    }
}
