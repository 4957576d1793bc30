//! RFC 5321 envelope paths, domains and address literals, as sent in
//! MAIL FROM, RCPT TO and HELO/EHLO.
//!
//! The grammar is RFC 5321 §4.1.2 and §4.1.3 with RFC 6531's extension:
//! UTF-8 is allowed in local parts and domain labels (it is *reported*, so
//! the caller can flag it when the transaction did not announce SMTPUTF8,
//! but it is not a syntax error). Odd but valid forms are accepted: the
//! null path `<>` (MAIL only), `<postmaster>` without a domain (RCPT
//! only), quoted local parts with spaces and quoted pairs, every `atext`
//! character, address literals `[192.0.2.1]`, `[IPv6:2001:db8::1]` and
//! general literals `[tag:content]`, source routes `<@a,@b:user@c>`
//! (obsolete: accepted and reported).
//!
//! Invariants: never panics, whatever the bytes; allocates nothing; runs in
//! one pass over the input (plus the standard library's IP parsers on
//! address literals, which are at most a few dozen bytes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1: the longest local part, domain and path, in octets.
pub const MAX_LOCAL: usize = 64;
pub const MAX_DOMAIN: usize = 255;
pub const MAX_PATH: usize = 256;
const MAX_LABEL: usize = 63;

/// Which command a path came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    Mail,
    Rcpt,
}

/// What is wrong with (or notable about) a path. Empty means valid and
/// plain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathReport {
    /// The path was not enclosed in `<` `>`.
    pub no_angle_brackets: bool,
    /// An obsolete source route came before the mailbox.
    pub source_route: bool,
    /// Why the local part is invalid.
    pub bad_local: Option<&'static str>,
    /// Why the domain is invalid.
    pub bad_domain: Option<&'static str>,
    /// Bytes outside ASCII appear (valid only with SMTPUTF8).
    pub eight_bit: bool,
    /// The null path `<>`.
    pub null: bool,
}

/// Checks an envelope path as the MTA passed it (`<user@example.com>`).
pub fn check_path(raw: &[u8], kind: PathKind) -> PathReport {
    let mut r = PathReport {
        eight_bit: !raw.is_ascii(),
        ..PathReport::default()
    };
    let inner = match (raw.first(), raw.last()) {
        (Some(b'<'), Some(b'>')) if raw.len() >= 2 => &raw[1..raw.len() - 1],
        _ => {
            r.no_angle_brackets = true;
            let s = raw.strip_prefix(b"<").unwrap_or(raw);
            s.strip_suffix(b">").unwrap_or(s)
        }
    };
    if raw.len() > MAX_PATH {
        r.bad_domain = Some("path longer than 256 octets");
    }
    if inner.is_empty() {
        r.null = true;
        if r.no_angle_brackets {
            r.bad_local = Some("no path");
        } else if kind == PathKind::Rcpt {
            r.bad_local = Some("null path as a recipient");
        }
        return r;
    }
    let mailbox = if inner.first() == Some(&b'@') {
        r.source_route = true;
        match inner.iter().position(|&b| b == b':') {
            Some(colon) => {
                for hop in inner[..colon].split(|&b| b == b',') {
                    let ok = hop
                        .strip_prefix(b"@")
                        .is_some_and(|d| check_domain(d).is_ok());
                    if !ok && r.bad_domain.is_none() {
                        r.bad_domain = Some("invalid source route");
                    }
                }
                &inner[colon + 1..]
            }
            None => {
                r.bad_local = Some("source route without a mailbox");
                return r;
            }
        }
    } else {
        inner
    };
    let (local, domain) = match split_mailbox(mailbox) {
        Ok(parts) => parts,
        Err(why) => {
            r.bad_local = Some(why);
            return r;
        }
    };
    if let Err(why) = check_local(local) {
        r.bad_local = Some(why);
    }
    match domain {
        Some(d) => {
            if let Err(why) = check_domain_or_literal(d) {
                r.bad_domain = r.bad_domain.or(Some(why));
            }
        }
        // RFC 5321 §4.1.1.3: `RCPT TO:<Postmaster>` needs no domain.
        None if kind == PathKind::Rcpt && local.eq_ignore_ascii_case(b"postmaster") => {}
        None => r.bad_domain = r.bad_domain.or(Some("no domain")),
    }
    r
}

/// Splits `local@domain` at the `@` after the local part (a quoted local
/// part may contain `@`). No `@`: the whole is the local part.
fn split_mailbox(m: &[u8]) -> Result<(&[u8], Option<&[u8]>), &'static str> {
    let end = if m.first() == Some(&b'"') {
        let mut i = 1;
        loop {
            match m.get(i) {
                None => return Err("unterminated quoted local part"),
                Some(b'\\') => i += 2,
                Some(b'"') => break i + 1,
                Some(_) => i += 1,
            }
        }
    } else {
        m.iter().position(|&b| b == b'@').unwrap_or(m.len())
    };
    match m.get(end) {
        None => Ok((m.get(..end).unwrap_or(m), None)),
        Some(b'@') => Ok((&m[..end], Some(&m[end + 1..]))),
        Some(_) => Err("text after the quoted local part"),
    }
}

/// RFC 5322 `atext`.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// A local part: a dot-string or a quoted string (RFC 5321 §4.1.2).
pub fn check_local(l: &[u8]) -> Result<(), &'static str> {
    if l.is_empty() {
        return Err("empty local part");
    }
    if l.len() > MAX_LOCAL {
        return Err("local part longer than 64 octets");
    }
    if !l.is_ascii() && std::str::from_utf8(l).is_err() {
        return Err("local part not UTF-8");
    }
    if l[0] == b'"' {
        if l.len() < 2 || l[l.len() - 1] != b'"' {
            return Err("unterminated quoted local part");
        }
        let body = &l[1..l.len() - 1];
        let mut i = 0;
        while let Some(&b) = body.get(i) {
            match b {
                b'\\' => match body.get(i + 1) {
                    Some(&n) if (32..=126).contains(&n) => i += 2,
                    _ => return Err("bad quoted pair in local part"),
                },
                b'"' => return Err("bare quote in quoted local part"),
                32..=126 | 0x80.. => i += 1,
                _ => return Err("control character in local part"),
            }
        }
        return Ok(());
    }
    for atom in l.split(|&b| b == b'.') {
        if atom.is_empty() {
            return Err("empty atom in local part (leading, trailing or double dot)");
        }
        if !atom.iter().all(|&b| is_atext(b)) {
            return Err("character not allowed unquoted in a local part");
        }
    }
    Ok(())
}

/// A domain name (RFC 5321 `Domain`; U-labels allowed) or an address
/// literal.
pub fn check_domain_or_literal(d: &[u8]) -> Result<(), &'static str> {
    if d.first() == Some(&b'[') {
        check_literal(d).map(|_| ())
    } else {
        check_domain(d)
    }
}

/// A domain name: dot-separated labels of letters, digits and inner
/// hyphens (any non-ASCII UTF-8 counts as a letter), each at most 63
/// octets, at most 255 in all, no trailing dot, and a top-level label that
/// is not all digits (RFC 1123 §2.1: a bare IP address is not a domain).
pub fn check_domain(d: &[u8]) -> Result<(), &'static str> {
    if d.is_empty() {
        return Err("empty domain");
    }
    if d.len() > MAX_DOMAIN {
        return Err("domain longer than 255 octets");
    }
    if !d.is_ascii() && std::str::from_utf8(d).is_err() {
        return Err("domain not UTF-8");
    }
    let mut last: &[u8] = &[];
    for label in d.split(|&b| b == b'.') {
        if label.is_empty() {
            return Err("empty label in domain");
        }
        if label.len() > MAX_LABEL {
            return Err("domain label longer than 63 octets");
        }
        let let_dig = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
        if !let_dig(label[0]) || !let_dig(label[label.len() - 1]) {
            return Err("domain label starts or ends with a hyphen or symbol");
        }
        if !label.iter().all(|&b| let_dig(b) || b == b'-') {
            return Err("character not allowed in a domain");
        }
        last = label;
    }
    if last.iter().all(u8::is_ascii_digit) {
        return Err(if parse_ip(d).is_some() {
            "IP address without brackets"
        } else {
            "numeric top-level label"
        });
    }
    Ok(())
}

/// An address literal `[…]`; the address when it is an IP literal.
pub fn check_literal(d: &[u8]) -> Result<Option<IpAddr>, &'static str> {
    let inner = d
        .strip_prefix(b"[")
        .and_then(|s| s.strip_suffix(b"]"))
        .ok_or("unterminated address literal")?;
    if let Some(v6) = strip_prefix_ci(inner, b"IPv6:") {
        return std::str::from_utf8(v6)
            .ok()
            .and_then(|s| s.parse::<Ipv6Addr>().ok())
            .map(|a| Some(IpAddr::V6(a)))
            .ok_or("invalid IPv6 address literal");
    }
    if let Some(a) = parse_v4(inner) {
        return Ok(Some(IpAddr::V4(a)));
    }
    if std::str::from_utf8(inner).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok()) {
        return Err("IPv6 address literal without the IPv6: tag");
    }
    // General-address-literal: Standardized-tag ":" 1*dcontent.
    if let Some(colon) = inner.iter().position(|&b| b == b':') {
        let (tag, content) = (&inner[..colon], &inner[colon + 1..]);
        let tag_ok = !tag.is_empty()
            && tag.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
            && tag[tag.len() - 1] != b'-';
        let content_ok = !content.is_empty()
            && content
                .iter()
                .all(|&b| (33..=90).contains(&b) || (94..=126).contains(&b));
        if tag_ok && content_ok {
            return Ok(None);
        }
    }
    Err("invalid address literal")
}

fn strip_prefix_ci<'a>(s: &'a [u8], p: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p)).then(|| &s[p.len()..])
}

/// A dotted quad of 1-3 digit decimals up to 255 (RFC 5321
/// `IPv4-address-literal`).
fn parse_v4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    for part in s.split(|&b| b == b'.') {
        if n == 4 || part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = part.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
        octets[n] = u8::try_from(v).ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(octets))
}

/// A bare IP address (`192.0.2.1`, `2001:db8::1`, `IPv6:2001:db8::1`).
pub fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    if let Some(a) = parse_v4(s) {
        return Some(IpAddr::V4(a));
    }
    let s = strip_prefix_ci(s, b"IPv6:").unwrap_or(s);
    std::str::from_utf8(s)
        .ok()
        .filter(|s| s.contains(':'))
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(s: &str) -> PathReport {
        check_path(s.as_bytes(), PathKind::Mail)
    }
    fn rcpt(s: &str) -> PathReport {
        check_path(s.as_bytes(), PathKind::Rcpt)
    }

    #[test]
    fn valid_paths_including_odd_ones() {
        for p in [
            "<user@example.com>",
            "<User.Name+tag@Sub.Example.COM>",
            "<!#$%&'*+-/=?^_`{|}~@example.org>",
            "<\"john doe\"@example.com>",
            "<\"a\\\"b\\\\c\"@example.com>",
            "<\"a@b\"@example.com>",
            "<\"\"@example.com>",
            "<user@[192.0.2.1]>",
            "<user@[IPv6:2001:db8::1]>",
            "<user@[ipv6:::ffff:192.0.2.1]>",
            "<user@[x-tag:some.content]>",
            "<user@a.b-c.d>",
            "<user@123.example>",
            "<user@xn--bcher-kva.example>",
            &format!("<{}@example.com>", "a".repeat(64)),
        ] {
            assert_eq!(mail(p), PathReport::default(), "{p}");
            assert_eq!(rcpt(p), PathReport::default(), "{p}");
        }
    }

    #[test]
    fn null_path_and_postmaster() {
        let r = mail("<>");
        assert!(r.null && r.bad_local.is_none() && r.bad_domain.is_none());
        assert!(rcpt("<>").bad_local.is_some(), "no null recipient");
        assert_eq!(rcpt("<postmaster>"), PathReport::default());
        assert_eq!(rcpt("<PostMaster>"), PathReport::default());
        assert_eq!(mail("<postmaster>").bad_domain, Some("no domain"));
        assert_eq!(rcpt("<alice>").bad_domain, Some("no domain"));
    }

    #[test]
    fn angle_brackets() {
        assert!(mail("user@example.com").no_angle_brackets);
        assert!(mail("<user@example.com").no_angle_brackets);
        assert!(mail("user@example.com>").no_angle_brackets);
        let r = mail("user@example.com");
        assert!(r.bad_local.is_none() && r.bad_domain.is_none());
        assert!(mail("").no_angle_brackets);
    }

    #[test]
    fn source_routes() {
        let r = rcpt("<@relay.example,@b.example:user@example.com>");
        assert!(r.source_route && r.bad_domain.is_none() && r.bad_local.is_none());
        let r = mail("<@relay..example:user@example.com>");
        assert!(r.source_route && r.bad_domain.is_some());
        assert!(mail("<@relay.example>").bad_local.is_some());
    }

    #[test]
    fn bad_local_parts() {
        for p in [
            "<.user@example.com>",
            "<user.@example.com>",
            "<us..er@example.com>",
            "<us er@example.com>",
            "<a(b)@example.com>",
            "<a,b@example.com>",
            "<a[b@example.com>",
            "<@example.com>",
            "<\"unterminated@example.com>",
            "<\"a\"b@example.com>",
            "<\"a\x01\"@example.com>",
            "<a\x7f@example.com>",
            &format!("<{}@example.com>", "a".repeat(65)),
        ] {
            assert!(mail(p).bad_local.is_some(), "{p:?}: {:?}", mail(p));
        }
    }

    #[test]
    fn bad_domains() {
        for p in [
            "<user@>",
            "<user@example..com>",
            "<user@.example.com>",
            "<user@example.com.>",
            "<user@-example.com>",
            "<user@example-.com>",
            "<user@exa_mple.com>",
            "<user@exa mple.com>",
            "<user@192.0.2.1>",
            "<user@example.123>",
            "<user@[192.0.2.256]>",
            "<user@[192.0.2]>",
            "<user@[IPv6:2001:db8::g]>",
            "<user@[2001:db8::1]>",
            "<user@[192.0.2.1>",
            "<user@[tag:]>",
            "<user@[:x]>",
            &format!("<user@{}.com>", "a".repeat(64)),
            &format!("<user@{}com>", "abcdefghi.".repeat(26)),
        ] {
            assert!(mail(p).bad_domain.is_some(), "{p:?}: {:?}", mail(p));
        }
        assert_eq!(
            mail("<user@192.0.2.1>").bad_domain,
            Some("IP address without brackets")
        );
    }

    #[test]
    fn eight_bit_is_reported_not_refused() {
        let r = mail("<用户@例子.example>");
        assert!(r.eight_bit && r.bad_local.is_none() && r.bad_domain.is_none());
        let r = mail("<jos\u{e9}@example.com>");
        assert!(r.eight_bit && r.bad_local.is_none());
        let r = check_path(b"<a\xff@example.com>", PathKind::Mail);
        assert!(r.eight_bit && r.bad_local.is_some());
    }

    #[test]
    fn literals_and_ips() {
        assert_eq!(
            check_literal(b"[127.0.0.1]"),
            Ok(Some([127, 0, 0, 1].into()))
        );
        assert_eq!(
            check_literal(b"[IPv6:::1]"),
            Ok(Some("::1".parse().unwrap()))
        );
        assert_eq!(check_literal(b"[tag:x]"), Ok(None));
        assert!(check_literal(b"[01.2.3.4.5]").is_err());
        assert_eq!(parse_ip(b"192.0.2.1"), Some([192, 0, 2, 1].into()));
        assert_eq!(parse_ip(b"2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(parse_ip(b"IPv6:::1"), "::1".parse().ok());
        assert_eq!(parse_ip(b"example.com"), None);
        assert_eq!(parse_ip(b"1234"), None);
    }

    #[test]
    fn never_panics_on_junk() {
        let junk: &[&[u8]] = &[
            b"<",
            b">",
            b"<>>",
            b"<<>",
            b"\"",
            b"<\">",
            b"<\"\\>",
            b"<@:>",
            b"<@>",
            b"@",
            b":",
            b"[",
            b"<a@[>",
            b"<a@[]>",
            b"\xff\xfe",
            b"<\"\\\xff\"@x>",
        ];
        for j in junk {
            let _ = check_path(j, PathKind::Mail);
            let _ = check_path(j, PathKind::Rcpt);
            let _ = check_domain_or_literal(j);
            let _ = parse_ip(j);
        }
    }
}
