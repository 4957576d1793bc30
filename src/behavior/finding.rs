//! Conformity findings: stable codes, the stage that produces each, and
//! their weights.
//!
//! A code never changes meaning once published: records and configuration
//! files name findings by code. Codes are `stage.what` in lower case; the
//! duplicate-header codes are `hdr.duplicate-<field name>` for each field
//! RFC 5322 §3.6 allows at most once.
//!
//! Costs: a [`Code`] is one byte; [`Weights`] is a fixed array indexed by
//! code, so looking up a weight is an index, never a map lookup.

use std::fmt;

/// Declares [`Code`] with its string form and default weight.
macro_rules! codes {
    ($($variant:ident = $name:literal, $weight:literal;)*) => {
        /// A kind of conformity finding.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Code { $($variant),* }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable name, e.g. `helo.bare-ip`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name),* }
            }

            /// The weight used when the configuration gives none.
            pub fn default_weight(self) -> f64 {
                match self { $(Code::$variant => $weight),* }
            }
        }
    };
}

codes! {
    HeloMissing = "helo.missing", 1.0;
    HeloBareIp = "helo.bare-ip", 1.0;
    HeloInvalid = "helo.invalid", 1.0;
    HeloSingleLabel = "helo.single-label", 0.5;
    HeloLocalhost = "helo.localhost", 2.0;
    HeloOwnName = "helo.own-name", 3.0;
    HeloChanged = "helo.changed", 1.0;
    MailNoHelo = "mail.no-helo", 1.0;
    MailNoAngleBrackets = "mail.no-angle-brackets", 1.0;
    MailBadLocalPart = "mail.bad-local-part", 1.0;
    MailBadDomain = "mail.bad-domain", 1.0;
    MailSourceRoute = "mail.source-route", 0.5;
    MailUnknownParam = "mail.unknown-param", 1.0;
    MailBadParam = "mail.bad-param", 1.0;
    Mail8bitWithoutSmtputf8 = "mail.8bit-without-smtputf8", 1.0;
    RcptNoAngleBrackets = "rcpt.no-angle-brackets", 1.0;
    RcptBadLocalPart = "rcpt.bad-local-part", 1.0;
    RcptBadDomain = "rcpt.bad-domain", 1.0;
    RcptSourceRoute = "rcpt.source-route", 0.5;
    RcptUnknownParam = "rcpt.unknown-param", 1.0;
    RcptBadParam = "rcpt.bad-param", 1.0;
    Rcpt8bitWithoutSmtputf8 = "rcpt.8bit-without-smtputf8", 1.0;
    RcptTooMany = "rcpt.too-many", 1.0;
    CmdUnknown = "cmd.unknown", 1.0;
    HdrMissingFrom = "hdr.missing-from", 1.0;
    HdrMissingDate = "hdr.missing-date", 1.0;
    HdrDuplicateDate = "hdr.duplicate-date", 1.0;
    HdrDuplicateFrom = "hdr.duplicate-from", 1.0;
    HdrDuplicateSender = "hdr.duplicate-sender", 1.0;
    HdrDuplicateReplyTo = "hdr.duplicate-reply-to", 1.0;
    HdrDuplicateTo = "hdr.duplicate-to", 1.0;
    HdrDuplicateCc = "hdr.duplicate-cc", 1.0;
    HdrDuplicateBcc = "hdr.duplicate-bcc", 1.0;
    HdrDuplicateMessageId = "hdr.duplicate-message-id", 1.0;
    HdrDuplicateInReplyTo = "hdr.duplicate-in-reply-to", 1.0;
    HdrDuplicateReferences = "hdr.duplicate-references", 1.0;
    HdrDuplicateSubject = "hdr.duplicate-subject", 1.0;
    Hdr8bit = "hdr.8bit", 0.5;
    HdrLineTooLong = "hdr.line-too-long", 0.5;
}

/// The number of codes.
pub const CODES: usize = Code::ALL.len();

impl Code {
    /// The code named `s`, if any.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// The stage whose command or data produces this finding.
    pub fn stage(self) -> Stage {
        match self.as_str().split('.').next() {
            Some("helo") => Stage::Helo,
            Some("mail") => Stage::Mail,
            Some("rcpt") => Stage::Rcpt,
            Some("cmd") => Stage::Unknown,
            _ => Stage::Headers,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a session something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    Headers,
    Eom,
    Unknown,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::Headers => "headers",
            Stage::Eom => "eom",
            Stage::Unknown => "unknown",
        }
    }
}

/// A weight per code.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights([f64; CODES]);

impl Default for Weights {
    fn default() -> Self {
        let mut w = [0.0; CODES];
        for c in Code::ALL {
            w[*c as usize] = c.default_weight();
        }
        Weights(w)
    }
}

impl Weights {
    pub fn get(&self, c: Code) -> f64 {
        self.0[c as usize]
    }

    pub fn set(&mut self, c: Code, w: f64) {
        self.0[c as usize] = w;
    }
}

/// One finding: its code and what was seen (short, printable).
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub code: Code,
    pub detail: String,
}

/// Longest detail kept, in bytes.
pub const MAX_DETAIL: usize = 80;

/// A value from the client as a finding detail: lossy UTF-8, control
/// characters written as `\xNN`, at most [`MAX_DETAIL`] bytes (a cut
/// value ends with `…`).
pub fn detail(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for c in String::from_utf8_lossy(bytes).chars() {
        let before = out.len();
        if c.is_control() {
            let _ = write!(out, "\\x{:02X}", u32::from(c) & 0xff);
        } else {
            out.push(c);
        }
        if out.len() > MAX_DETAIL {
            out.truncate(before);
            out.push('…');
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(*c));
            assert!(c.as_str().is_ascii() && !c.as_str().contains(' '));
        }
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CODES);
        assert_eq!(Code::parse("helo.nope"), None);
        assert_eq!(Code::RcptTooMany.stage(), Stage::Rcpt);
        assert_eq!(Code::HdrDuplicateMessageId.stage(), Stage::Headers);
        assert_eq!(Code::CmdUnknown.stage(), Stage::Unknown);
    }

    #[test]
    fn details_are_printable_and_short() {
        assert_eq!(detail(b"a\r\nb"), "a\\x0D\\x0Ab");
        assert_eq!(detail(b"\xff"), "\u{fffd}");
        let long = detail(&[b'x'; 200]);
        assert!(
            long.len() <= MAX_DETAIL + 3 && long.ends_with('…'),
            "{long}"
        );
    }
}
