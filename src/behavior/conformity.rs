//! Conformity checks of one SMTP session: HELO/EHLO, MAIL FROM, RCPT TO
//! and the header section, each turned into [`Finding`]s with stable codes.
//!
//! Each check is a plain function over the bytes the MTA passed; the
//! caller (the session) decides what a finding costs. The checks never
//! panic, allocate only for the findings they return, and do not look at
//! anything but their arguments.

use std::net::IpAddr;

use super::address::{self, PathKind};
use super::finding::{Code, Finding, detail};
use super::params;

/// RFC 5322 §2.1.1: the longest header line, without its CRLF.
pub const MAX_LINE: usize = 998;

/// What a HELO check needs to know about the server and the client.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeloContext<'a> {
    /// The client's address (`None` when the MTA did not say).
    pub client: Option<IpAddr>,
    /// The server's own names (`j`, configured names), lower case.
    pub own_names: &'a [String],
    /// The address the client connected to (`{daemon_addr}`).
    pub own_addr: Option<IpAddr>,
    /// The name given by an earlier HELO in this session.
    pub previous: Option<&'a [u8]>,
}

impl HeloContext<'_> {
    /// A client on this host may call itself localhost or the server.
    fn remote(&self) -> bool {
        self.client
            .is_some_and(|c| !c.to_canonical().is_loopback() && Some(c) != self.own_addr)
    }

    fn is_own_addr(&self, a: IpAddr) -> bool {
        self.own_addr
            .is_some_and(|o| o.to_canonical() == a.to_canonical())
    }
}

fn push(out: &mut Vec<Finding>, code: Code, what: &[u8]) {
    out.push(Finding {
        code,
        detail: detail(what),
    });
}

/// Checks a HELO/EHLO argument.
pub fn check_helo(arg: &[u8], cx: &HeloContext, out: &mut Vec<Finding>) {
    let arg = arg.trim_ascii();
    if arg.is_empty() {
        push(out, Code::HeloMissing, b"");
        return;
    }
    if let Some(prev) = cx.previous
        && !prev.eq_ignore_ascii_case(arg)
    {
        let mut d = prev.to_vec();
        d.extend_from_slice(b" -> ");
        d.extend_from_slice(arg);
        push(out, Code::HeloChanged, &d);
    }
    let ip = if arg[0] == b'[' {
        match address::check_literal(arg) {
            Ok(ip) => ip,
            Err(_) => {
                push(out, Code::HeloInvalid, arg);
                return;
            }
        }
    } else if let Some(ip) = address::parse_ip(arg) {
        push(out, Code::HeloBareIp, arg);
        Some(ip)
    } else {
        None
    };
    let remote = cx.remote();
    if let Some(ip) = ip {
        if remote && ip.to_canonical().is_loopback() {
            push(out, Code::HeloLocalhost, arg);
        } else if remote && cx.is_own_addr(ip) {
            push(out, Code::HeloOwnName, arg);
        }
        return;
    }
    let lower = arg.to_ascii_lowercase();
    let localhost = lower == b"localhost"
        || lower == b"localhost.localdomain"
        || lower.ends_with(b".localhost");
    if localhost {
        if remote {
            push(out, Code::HeloLocalhost, arg);
        }
        return;
    }
    if address::check_domain(arg).is_err() {
        push(out, Code::HeloInvalid, arg);
        return;
    }
    if !arg.contains(&b'.') {
        push(out, Code::HeloSingleLabel, arg);
    }
    if remote
        && cx
            .own_names
            .iter()
            .any(|n| n.as_bytes() == lower.as_slice())
    {
        push(out, Code::HeloOwnName, arg);
    }
}

/// The codes of one command's path and parameter findings.
struct PathCodes {
    brackets: Code,
    local: Code,
    domain: Code,
    route: Code,
    unknown: Code,
    bad: Code,
    eight_bit: Code,
}

const MAIL_CODES: PathCodes = PathCodes {
    brackets: Code::MailNoAngleBrackets,
    local: Code::MailBadLocalPart,
    domain: Code::MailBadDomain,
    route: Code::MailSourceRoute,
    unknown: Code::MailUnknownParam,
    bad: Code::MailBadParam,
    eight_bit: Code::Mail8bitWithoutSmtputf8,
};

const RCPT_CODES: PathCodes = PathCodes {
    brackets: Code::RcptNoAngleBrackets,
    local: Code::RcptBadLocalPart,
    domain: Code::RcptBadDomain,
    route: Code::RcptSourceRoute,
    unknown: Code::RcptUnknownParam,
    bad: Code::RcptBadParam,
    eight_bit: Code::Rcpt8bitWithoutSmtputf8,
};

/// Checks MAIL FROM's arguments (the path, then ESMTP parameters);
/// returns whether the transaction announced SMTPUTF8.
pub fn check_mail(args: &[&[u8]], out: &mut Vec<Finding>) -> bool {
    let params = params::check_params(args.iter().skip(1).copied(), PathKind::Mail);
    check_command(
        args,
        PathKind::Mail,
        &MAIL_CODES,
        params.smtputf8,
        &params,
        out,
    );
    params.smtputf8
}

/// Checks RCPT TO's arguments; `smtputf8` is what MAIL announced.
pub fn check_rcpt(args: &[&[u8]], smtputf8: bool, out: &mut Vec<Finding>) {
    let params = params::check_params(args.iter().skip(1).copied(), PathKind::Rcpt);
    check_command(args, PathKind::Rcpt, &RCPT_CODES, smtputf8, &params, out);
}

fn check_command(
    args: &[&[u8]],
    kind: PathKind,
    codes: &PathCodes,
    smtputf8: bool,
    params: &params::ParamReport,
    out: &mut Vec<Finding>,
) {
    let path = args.first().copied().unwrap_or_default();
    let r = address::check_path(path, kind);
    if r.no_angle_brackets {
        push(out, codes.brackets, path);
    }
    if r.source_route {
        push(out, codes.route, path);
    }
    if let Some(why) = r.bad_local {
        push(
            out,
            codes.local,
            format!("{why}: {}", detail(path)).as_bytes(),
        );
    }
    if let Some(why) = r.bad_domain {
        push(
            out,
            codes.domain,
            format!("{why}: {}", detail(path)).as_bytes(),
        );
    }
    let eight_bit_param = args.iter().skip(1).any(|a| !a.is_ascii());
    if (r.eight_bit || eight_bit_param) && !smtputf8 {
        push(out, codes.eight_bit, path);
    }
    if let Some(p) = &params.unknown {
        push(out, codes.unknown, p);
    }
    if let Some(p) = &params.bad {
        push(out, codes.bad, p);
    }
}

/// Header fields RFC 5322 §3.6 allows at most once, with their
/// duplicate codes.
const SINGLETONS: &[(&str, Code)] = &[
    ("date", Code::HdrDuplicateDate),
    ("from", Code::HdrDuplicateFrom),
    ("sender", Code::HdrDuplicateSender),
    ("reply-to", Code::HdrDuplicateReplyTo),
    ("to", Code::HdrDuplicateTo),
    ("cc", Code::HdrDuplicateCc),
    ("bcc", Code::HdrDuplicateBcc),
    ("message-id", Code::HdrDuplicateMessageId),
    ("in-reply-to", Code::HdrDuplicateInReplyTo),
    ("references", Code::HdrDuplicateReferences),
    ("subject", Code::HdrDuplicateSubject),
];

/// The header section of one message, seen one field at a time.
///
/// Costs: a few bytes of counters; no allocation until [`finish`].
///
/// [`finish`]: HeaderCheck::finish
#[derive(Clone, Debug, Default)]
pub struct HeaderCheck {
    counts: [u16; SINGLETONS.len()],
    eight_bit: bool,
    /// The length of the first line over the limit.
    long_line: Option<usize>,
}

impl HeaderCheck {
    /// One header field as the MTA passes it: the name, and the value
    /// without the space after the colon; folded lines are separated by
    /// `\n` or `\r\n`.
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        if let Some(i) = SINGLETONS
            .iter()
            .position(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
        {
            self.counts[i] = self.counts[i].saturating_add(1);
        }
        if !(name.is_ascii() && value.is_ascii()) {
            self.eight_bit = true;
        }
        if self.long_line.is_none() {
            // The first line carries `Name: `.
            let mut extra = name.len() + 2;
            for line in value.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() + extra > MAX_LINE {
                    self.long_line = Some(line.len() + extra);
                    break;
                }
                extra = 0;
            }
        }
    }

    /// The findings of the whole section; `smtputf8` is what MAIL
    /// announced.
    pub fn finish(&self, smtputf8: bool, out: &mut Vec<Finding>) {
        let count = |name: &str| {
            SINGLETONS
                .iter()
                .position(|(n, _)| *n == name)
                .map_or(0, |i| self.counts[i])
        };
        if count("from") == 0 {
            push(out, Code::HdrMissingFrom, b"");
        }
        if count("date") == 0 {
            push(out, Code::HdrMissingDate, b"");
        }
        for (i, (name, code)) in SINGLETONS.iter().enumerate() {
            if self.counts[i] > 1 {
                push(out, *code, format!("{name} x{}", self.counts[i]).as_bytes());
            }
        }
        if self.eight_bit && !smtputf8 {
            push(out, Code::Hdr8bit, b"");
        }
        if let Some(len) = self.long_line {
            push(out, Code::HdrLineTooLong, format!("{len} bytes").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn helo_with(arg: &str, cx: &HeloContext) -> Vec<Code> {
        let mut out = Vec::new();
        check_helo(arg.as_bytes(), cx, &mut out);
        out.iter().map(|f| f.code).collect()
    }

    fn remote() -> HeloContext<'static> {
        HeloContext {
            client: Some([192, 0, 2, 10].into()),
            ..Default::default()
        }
    }

    #[test]
    fn helo_valid_forms() {
        for a in [
            "mail.example.com",
            "MX1.Example.ORG",
            "[192.0.2.10]",
            "[IPv6:2001:db8::10]",
            "xn--bcher-kva.example",
            "a-b.c1.example",
        ] {
            assert_eq!(helo_with(a, &remote()), [], "{a}");
        }
    }

    #[test]
    fn helo_invalid_forms() {
        let cx = remote();
        assert_eq!(helo_with("", &cx), [Code::HeloMissing]);
        assert_eq!(helo_with("  ", &cx), [Code::HeloMissing]);
        assert_eq!(helo_with("192.0.2.10", &cx), [Code::HeloBareIp]);
        assert_eq!(helo_with("2001:db8::1", &cx), [Code::HeloBareIp]);
        assert_eq!(helo_with("under_score.example", &cx), [Code::HeloInvalid]);
        assert_eq!(helo_with("-x.example", &cx), [Code::HeloInvalid]);
        assert_eq!(helo_with("example.com.", &cx), [Code::HeloInvalid]);
        assert_eq!(helo_with("[192.0.2.300]", &cx), [Code::HeloInvalid]);
        assert_eq!(helo_with("two words", &cx), [Code::HeloInvalid]);
        assert_eq!(helo_with("host.123", &cx), [Code::HeloInvalid]);
        assert_eq!(helo_with("mypc", &cx), [Code::HeloSingleLabel]);
    }

    #[test]
    fn helo_localhost_and_own_name_only_from_remote_clients() {
        let names = ["mx.example.test".to_string()];
        let own: IpAddr = [198, 51, 100, 1].into();
        let cx = HeloContext {
            own_names: &names,
            own_addr: Some(own),
            ..remote()
        };
        for a in [
            "localhost",
            "LOCALHOST.localdomain",
            "[127.0.0.1]",
            "[IPv6:::1]",
            "foo.localhost",
        ] {
            assert_eq!(helo_with(a, &cx), [Code::HeloLocalhost], "{a}");
        }
        assert_eq!(
            helo_with("127.0.0.1", &cx),
            [Code::HeloBareIp, Code::HeloLocalhost]
        );
        assert_eq!(helo_with("MX.example.test", &cx), [Code::HeloOwnName]);
        assert_eq!(helo_with("[198.51.100.1]", &cx), [Code::HeloOwnName]);
        // The same names from this host are fine.
        let local = HeloContext {
            client: Some([127, 0, 0, 1].into()),
            ..cx
        };
        assert_eq!(helo_with("localhost", &local), []);
        assert_eq!(helo_with("mx.example.test", &local), []);
        let unknown = HeloContext { client: None, ..cx };
        assert_eq!(helo_with("localhost", &unknown), []);
    }

    #[test]
    fn helo_changed() {
        let prev = b"a.example".as_slice();
        let cx = HeloContext {
            previous: Some(prev),
            ..remote()
        };
        assert_eq!(helo_with("A.EXAMPLE", &cx), []);
        assert_eq!(helo_with("b.example", &cx), [Code::HeloChanged]);
    }

    fn mail(args: &[&str]) -> (Vec<Code>, bool) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = Vec::new();
        let u = check_mail(&args, &mut out);
        (out.iter().map(|f| f.code).collect(), u)
    }

    fn rcpt(args: &[&str], smtputf8: bool) -> Vec<Code> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = Vec::new();
        check_rcpt(&args, smtputf8, &mut out);
        out.iter().map(|f| f.code).collect()
    }

    #[test]
    fn mail_and_rcpt_findings() {
        assert_eq!(mail(&["<a@example.com>", "SIZE=10"]), (vec![], false));
        assert_eq!(mail(&["<>"]), (vec![], false));
        assert_eq!(
            mail(&[]).0,
            [Code::MailNoAngleBrackets, Code::MailBadLocalPart]
        );
        assert_eq!(mail(&["a@example.com"]).0, [Code::MailNoAngleBrackets]);
        assert_eq!(
            mail(&["<@r.example:a@example.com>"]).0,
            [Code::MailSourceRoute]
        );
        assert_eq!(mail(&["<a..b@example.com>"]).0, [Code::MailBadLocalPart]);
        assert_eq!(mail(&["<a@example..com>"]).0, [Code::MailBadDomain]);
        assert_eq!(
            mail(&["<a@example.com>", "FOO=1"]).0,
            [Code::MailUnknownParam]
        );
        assert_eq!(mail(&["<a@example.com>", "SIZE=x"]).0, [Code::MailBadParam]);
        assert_eq!(
            mail(&["<jos\u{e9}@example.com>"]).0,
            [Code::Mail8bitWithoutSmtputf8]
        );
        assert_eq!(
            mail(&["<jos\u{e9}@example.com>", "SMTPUTF8"]),
            (vec![], true)
        );
        assert_eq!(rcpt(&["<b@example.com>", "NOTIFY=NEVER"], false), []);
        assert_eq!(rcpt(&["<postmaster>"], false), []);
        assert_eq!(rcpt(&["b@example.com"], false), [Code::RcptNoAngleBrackets]);
        assert_eq!(
            rcpt(&["<@r:b@example.com>"], false),
            [Code::RcptSourceRoute]
        );
        assert_eq!(rcpt(&["<b@@example.com>"], false), [Code::RcptBadDomain]);
        assert_eq!(rcpt(&["<.b@example.com>"], false), [Code::RcptBadLocalPart]);
        assert_eq!(
            rcpt(&["<b@example.com>", "SIZE=1"], false),
            [Code::RcptBadParam]
        );
        assert_eq!(
            rcpt(&["<b@example.com>", "XX"], false),
            [Code::RcptUnknownParam]
        );
        assert_eq!(
            rcpt(&["<b\u{fc}@example.com>"], false),
            [Code::Rcpt8bitWithoutSmtputf8]
        );
        assert_eq!(rcpt(&["<b\u{fc}@example.com>"], true), []);
        assert_eq!(rcpt(&["<>"], false), [Code::RcptBadLocalPart]);
    }

    fn headers(fields: &[(&str, &[u8])], smtputf8: bool) -> Vec<Code> {
        let mut h = HeaderCheck::default();
        for (n, v) in fields {
            h.add(n.as_bytes(), v);
        }
        let mut out = Vec::new();
        h.finish(smtputf8, &mut out);
        out.iter().map(|f| f.code).collect()
    }

    #[test]
    fn header_findings() {
        let ok: &[(&str, &[u8])] = &[
            ("From", b"a@example.com"),
            ("Date", b"Mon, 1 Jan 2024 00:00:00 +0000"),
            ("Received", b"x"),
            ("Received", b"y"),
        ];
        assert_eq!(headers(ok, false), []);
        assert_eq!(headers(&[("Date", b"x")], false), [Code::HdrMissingFrom]);
        assert_eq!(headers(&[("from", b"x")], false), [Code::HdrMissingDate]);
        let dup: &[(&str, &[u8])] = &[
            ("From", b"a"),
            ("FROM", b"b"),
            ("Date", b"d"),
            ("Subject", b"s"),
            ("subject", b"t"),
            ("Message-ID", b"<1@x>"),
            ("Message-Id", b"<2@x>"),
            ("Sender", b"a"),
            ("Sender", b"b"),
            ("Date", b"e"),
        ];
        assert_eq!(
            headers(dup, false),
            [
                Code::HdrDuplicateDate,
                Code::HdrDuplicateFrom,
                Code::HdrDuplicateSender,
                Code::HdrDuplicateMessageId,
                Code::HdrDuplicateSubject
            ]
        );
        let utf8: &[(&str, &[u8])] = &[
            ("From", b"a"),
            ("Date", b"d"),
            ("Subject", "héllo".as_bytes()),
        ];
        assert_eq!(headers(utf8, false), [Code::Hdr8bit]);
        assert_eq!(headers(utf8, true), []);
        let long = vec![b'x'; 990];
        let fields: &[(&str, &[u8])] = &[("From", b"a"), ("Date", b"d"), ("Subject", &long)];
        assert_eq!(headers(fields, false), [Code::HdrLineTooLong]);
        let mut folded = vec![b'x'; 900];
        folded.extend_from_slice(b"\r\n\t");
        folded.extend(vec![b'y'; 900]);
        let fields: &[(&str, &[u8])] = &[("From", b"a"), ("Date", b"d"), ("Subject", &folded)];
        assert_eq!(
            headers(fields, false),
            [],
            "folded lines are measured one by one"
        );
        let short = vec![b'x'; 985];
        let fields: &[(&str, &[u8])] = &[("From", b"a"), ("Date", b"d"), ("Subject", &short)];
        assert_eq!(headers(fields, false), [], "998 with `Subject: `");
    }
}
