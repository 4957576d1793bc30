//! The session record: what one SMTP session did, written as one JSON
//! line when it closes (fields documented in `docs/records.md`).
//!
//! The JSON is written by hand into one `String`: every value is a
//! string, number, boolean or null, strings are escaped (quotes,
//! backslashes and every control character), so a line never contains a
//! raw newline and always parses. Lists are capped by the session, and the
//! record says how many items there were in all.

use std::fmt::Write;

use super::finding::{Code, Stage};
use super::limits::{KeyKind, LimitAction, Metric};

/// Messages kept in one record.
pub const MAX_MESSAGES: usize = 1000;
/// Tripped limits kept in one record.
pub const MAX_TRIPS: usize = 100;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageRecord {
    pub queue_id: Option<String>,
    pub sender: String,
    pub login: Option<String>,
    pub recipients: u32,
    /// The content verdict, when the message was judged.
    pub verdict: Option<&'static str>,
    pub score: Option<f64>,
    /// What was done: deliver, quarantine, tempfail, reject, or aborted.
    pub action: &'static str,
    /// What refused it: content, limit, conformity.
    pub refused_by: Option<&'static str>,
    pub ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FindingRecord {
    pub code: Code,
    pub weight: f64,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TripRecord {
    pub stage: Stage,
    pub limit: usize,
    pub key: KeyKind,
    pub value: String,
    pub metric: Metric,
    pub window: u32,
    pub max: u64,
    pub count: u64,
    pub action: LimitAction,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SessionRecord {
    pub start_ms: u64,
    pub end_ms: u64,
    pub client_addr: Option<String>,
    pub client_name: String,
    pub helo: Option<String>,
    pub helos: u32,
    pub login: Option<String>,
    pub trusted: bool,
    pub messages: Vec<MessageRecord>,
    pub messages_total: u32,
    pub findings: Vec<FindingRecord>,
    pub findings_total: u32,
    pub score: f64,
    pub unknown_commands: Vec<String>,
    pub unknown_total: u32,
    pub limits: Vec<TripRecord>,
    pub limits_total: u32,
    pub disconnected: bool,
}

/// Writes `s` as a JSON string.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

fn num(out: &mut String, v: f64) {
    if v.is_finite() {
        // One decimal like the log lines; JSON has no -0.
        let _ = write!(out, "{:.1}", if v == 0.0 { 0.0 } else { v });
    } else {
        out.push_str("null");
    }
}

/// `"name":` after a comma unless first.
fn field(out: &mut String, name: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    json_str(out, name);
    out.push(':');
}

fn list<T>(out: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, it);
    }
    out.push(']');
}

/// RFC 3339 UTC time with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

impl SessionRecord {
    /// The record as one JSON line, newline included.
    pub fn to_json(&self) -> String {
        let mut o = String::with_capacity(512);
        o.push('{');
        field(&mut o, "start");
        json_str(&mut o, &rfc3339(self.start_ms));
        field(&mut o, "end");
        json_str(&mut o, &rfc3339(self.end_ms));
        field(&mut o, "client");
        o.push('{');
        field(&mut o, "addr");
        opt_str(&mut o, self.client_addr.as_deref());
        field(&mut o, "name");
        json_str(&mut o, &self.client_name);
        o.push('}');
        field(&mut o, "helo");
        opt_str(&mut o, self.helo.as_deref());
        field(&mut o, "helos");
        let _ = write!(o, "{}", self.helos);
        field(&mut o, "login");
        opt_str(&mut o, self.login.as_deref());
        field(&mut o, "trusted");
        o.push_str(if self.trusted { "true" } else { "false" });
        field(&mut o, "messages");
        list(&mut o, &self.messages, |o, m| {
            o.push('{');
            field(o, "queue_id");
            opt_str(o, m.queue_id.as_deref());
            field(o, "sender");
            json_str(o, &m.sender);
            field(o, "login");
            opt_str(o, m.login.as_deref());
            field(o, "recipients");
            let _ = write!(o, "{}", m.recipients);
            field(o, "verdict");
            opt_str(o, m.verdict);
            field(o, "score");
            match m.score {
                Some(s) => num(o, s),
                None => o.push_str("null"),
            }
            field(o, "action");
            json_str(o, m.action);
            field(o, "refused_by");
            opt_str(o, m.refused_by);
            field(o, "ids");
            list(o, &m.ids, |o, id| json_str(o, id));
            o.push('}');
        });
        field(&mut o, "messages_total");
        let _ = write!(o, "{}", self.messages_total);
        field(&mut o, "score");
        num(&mut o, self.score);
        field(&mut o, "findings");
        list(&mut o, &self.findings, |o, f| {
            o.push('{');
            field(o, "code");
            json_str(o, f.code.as_str());
            field(o, "stage");
            json_str(o, f.code.stage().as_str());
            field(o, "weight");
            num(o, f.weight);
            field(o, "detail");
            json_str(o, &f.detail);
            o.push('}');
        });
        field(&mut o, "findings_total");
        let _ = write!(o, "{}", self.findings_total);
        field(&mut o, "unknown_commands");
        list(&mut o, &self.unknown_commands, |o, c| json_str(o, c));
        field(&mut o, "unknown_total");
        let _ = write!(o, "{}", self.unknown_total);
        field(&mut o, "limits");
        list(&mut o, &self.limits, |o, t| {
            o.push('{');
            field(o, "stage");
            json_str(o, t.stage.as_str());
            field(o, "limit");
            let _ = write!(o, "{}", t.limit);
            field(o, "key");
            json_str(o, t.key.as_str());
            field(o, "value");
            json_str(o, &t.value);
            field(o, "metric");
            json_str(o, t.metric.as_str());
            field(o, "window");
            let _ = write!(o, "{}", t.window);
            field(o, "max");
            let _ = write!(o, "{}", t.max);
            field(o, "count");
            let _ = write!(o, "{}", t.count);
            field(o, "action");
            json_str(o, t.action.as_str());
            o.push('}');
        });
        field(&mut o, "limits_total");
        let _ = write!(o, "{}", self.limits_total);
        field(&mut o, "disconnected");
        o.push_str(if self.disconnected { "true" } else { "false" });
        o.push_str("}\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn strings_are_escaped_and_the_line_has_one_newline() {
        let r = SessionRecord {
            client_name: "a\"b\\c\r\nd\u{1}é\u{2028}".into(),
            findings: vec![FindingRecord {
                code: Code::HeloBareIp,
                weight: 1.0,
                detail: "1.2.3.4".into(),
            }],
            score: -0.0,
            ..Default::default()
        };
        let line = r.to_json();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with("}\n"));
        assert!(
            line.contains(r#""name":"a\"b\\c\r\nd\u0001é\u2028""#),
            "{line}"
        );
        assert!(
            line.contains(r#""code":"helo.bare-ip","stage":"helo","weight":1.0"#),
            "{line}"
        );
        assert!(line.contains(r#""score":0.0,"#), "{line}");
    }
}
