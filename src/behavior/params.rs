//! ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 §4.1.2
//! `esmtp-param`): the ones mailward knows, checked against their own
//! RFCs, and everything else reported as unknown.
//!
//! | parameter  | command | value                                  | RFC  |
//! |------------|---------|----------------------------------------|------|
//! | `SIZE`     | MAIL    | 1 to 20 digits                         | 1870 |
//! | `BODY`     | MAIL    | `7BIT`, `8BITMIME`, `BINARYMIME`        | 6152, 3030 |
//! | `SMTPUTF8` | MAIL    | none                                   | 6531 |
//! | `RET`      | MAIL    | `FULL` or `HDRS`                        | 3461 |
//! | `ENVID`    | MAIL    | xtext, at most 100 characters           | 3461 |
//! | `AUTH`     | MAIL    | xtext or `<>`                            | 4954 |
//! | `NOTIFY`   | RCPT    | `NEVER`, or `SUCCESS`/`FAILURE`/`DELAY` | 3461 |
//! | `ORCPT`    | RCPT    | `addr-type;xtext`                       | 3461 |
//!
//! Keywords and fixed values are case-insensitive. A known parameter given
//! with the other command, or twice, is malformed.
//!
//! Invariants: never panics; allocates only for a finding's detail.

use super::address::PathKind;

/// The problems found in one command's parameters, and whether it
/// announced SMTPUTF8.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamReport {
    pub smtputf8: bool,
    /// Parameters not in the table (the first one, for the record).
    pub unknown: Option<Vec<u8>>,
    /// A known parameter with a bad or missing value, or repeated: the
    /// parameter as given.
    pub bad: Option<Vec<u8>>,
}

const KNOWN: &[(&str, PathKind)] = &[
    ("SIZE", PathKind::Mail),
    ("BODY", PathKind::Mail),
    ("SMTPUTF8", PathKind::Mail),
    ("RET", PathKind::Mail),
    ("ENVID", PathKind::Mail),
    ("AUTH", PathKind::Mail),
    ("NOTIFY", PathKind::Rcpt),
    ("ORCPT", PathKind::Rcpt),
];

/// Checks the parameters after the path (`["SIZE=100", "BODY=8BITMIME"]`).
pub fn check_params<'a>(params: impl IntoIterator<Item = &'a [u8]>, kind: PathKind) -> ParamReport {
    let mut r = ParamReport::default();
    let mut seen = [false; KNOWN.len()];
    for p in params {
        let (kw, value) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], Some(&p[i + 1..])),
            None => (p, None),
        };
        let known = KNOWN
            .iter()
            .position(|(name, _)| kw.eq_ignore_ascii_case(name.as_bytes()));
        let Some(i) = known else {
            let keyword_ok = !kw.is_empty()
                && kw[0].is_ascii_alphanumeric()
                && kw.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-');
            let value_ok = value.is_none_or(|v| {
                !v.is_empty() && v.iter().all(|&b| b > 32 && b != b'=' && b != 127)
            });
            if keyword_ok && value_ok {
                r.unknown.get_or_insert_with(|| p.to_vec());
            } else {
                r.bad.get_or_insert_with(|| p.to_vec());
            }
            continue;
        };
        let ok = KNOWN[i].1 == kind && !seen[i] && value_ok(KNOWN[i].0, value);
        seen[i] = true;
        if KNOWN[i].0 == "SMTPUTF8" {
            r.smtputf8 = true;
        }
        if !ok {
            r.bad.get_or_insert_with(|| p.to_vec());
        }
    }
    r
}

fn value_ok(name: &str, v: Option<&[u8]>) -> bool {
    let one_of = |v: &[u8], set: &[&str]| set.iter().any(|s| v.eq_ignore_ascii_case(s.as_bytes()));
    match (name, v) {
        ("SMTPUTF8", None) => true,
        (_, None) | ("SMTPUTF8", Some(_)) => false,
        ("SIZE", Some(v)) => (1..=20).contains(&v.len()) && v.iter().all(u8::is_ascii_digit),
        ("BODY", Some(v)) => one_of(v, &["7BIT", "8BITMIME", "BINARYMIME"]),
        ("RET", Some(v)) => one_of(v, &["FULL", "HDRS"]),
        ("ENVID", Some(v)) => v.len() <= 100 && is_xtext(v),
        ("AUTH", Some(v)) => v == b"<>" || is_xtext(v),
        ("NOTIFY", Some(v)) => {
            if v.eq_ignore_ascii_case(b"NEVER") {
                return true;
            }
            let mut seen = [false; 3];
            v.split(|&b| b == b',').all(|w| {
                match ["SUCCESS", "FAILURE", "DELAY"]
                    .iter()
                    .position(|s| w.eq_ignore_ascii_case(s.as_bytes()))
                {
                    Some(i) if !seen[i] => {
                        seen[i] = true;
                        true
                    }
                    _ => false,
                }
            })
        }
        ("ORCPT", Some(v)) => match v.iter().position(|&b| b == b';') {
            Some(i) => {
                let (t, a) = (&v[..i], &v[i + 1..]);
                !t.is_empty()
                    && t[0].is_ascii_alphanumeric()
                    && t.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
                    && !a.is_empty()
                    && (is_xtext(a) || t.eq_ignore_ascii_case(b"utf-8"))
            }
            None => false,
        },
        _ => false,
    }
}

/// RFC 3461 xtext: printable ASCII but `+` and `=`, and `+XX` with two
/// upper-case hex digits.
fn is_xtext(v: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        match b {
            b'+' => {
                let hex = |o: usize| {
                    v.get(i + o)
                        .is_some_and(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
                };
                if !(hex(1) && hex(2)) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            33..=126 => i += 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(p: &[&str]) -> ParamReport {
        check_params(p.iter().map(|s| s.as_bytes()), PathKind::Mail)
    }
    fn rcpt(p: &[&str]) -> ParamReport {
        check_params(p.iter().map(|s| s.as_bytes()), PathKind::Rcpt)
    }

    #[test]
    fn valid_parameters() {
        let r = mail(&[
            "SIZE=12345",
            "body=8bitmime",
            "SMTPUTF8",
            "RET=HDRS",
            "ENVID=QQ314159+2B",
            "AUTH=<>",
        ]);
        assert_eq!(
            r,
            ParamReport {
                smtputf8: true,
                ..Default::default()
            }
        );
        assert_eq!(mail(&["AUTH=user+40example.com"]), ParamReport::default());
        assert_eq!(
            mail(&["BODY=BINARYMIME", "BODY=7BIT"]).bad.as_deref(),
            Some(&b"BODY=7BIT"[..])
        );
        assert_eq!(
            rcpt(&[
                "NOTIFY=SUCCESS,FAILURE,DELAY",
                "ORCPT=rfc822;user+40example.com"
            ]),
            ParamReport::default()
        );
        assert_eq!(rcpt(&["NOTIFY=never"]), ParamReport::default());
        assert_eq!(
            rcpt(&["ORCPT=utf-8;us\\x{e9}r@example.com"]),
            ParamReport::default()
        );
    }

    #[test]
    fn bad_values() {
        for p in [
            "SIZE=",
            "SIZE=12a",
            "SIZE=123456789012345678901",
            "SIZE",
            "BODY=9BIT",
            "SMTPUTF8=yes",
            "RET=ALL",
            "ENVID=a=b",
            "ENVID=+2",
            "ENVID=+2b",
            "AUTH=a b",
            "NOTIFY=SUCCESS",
            "=x",
            "-X=1",
            "X=a=b",
        ] {
            assert!(mail(&[p]).bad.is_some(), "{p}: {:?}", mail(&[p]));
        }
        assert!(mail(&[&format!("ENVID={}", "a".repeat(101))]).bad.is_some());
        for p in [
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=SUCCESS,SUCCESS",
            "NOTIFY=",
            "ORCPT=rfc822",
            "ORCPT=;x",
            "SIZE=1",
        ] {
            assert!(rcpt(&[p]).bad.is_some(), "{p}");
        }
    }

    #[test]
    fn unknown_parameters() {
        let r = mail(&["XYZZY=1", "HOLDFOR=10"]);
        assert_eq!(r.unknown.as_deref(), Some(&b"XYZZY=1"[..]));
        assert!(r.bad.is_none());
        assert!(mail(&["X-FLAG"]).unknown.is_some());
        assert!(rcpt(&["REQUIRETLS"]).unknown.is_some());
    }
}
