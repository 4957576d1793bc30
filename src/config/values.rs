//! The checked scalar values of `milter.yaml`.
//!
//! Every scalar with a constraint has its own type whose `Deserialize`
//! checks it while the YAML scalar is being read, so an error carries that
//! scalar's line and column (a check made after the mapping is read would
//! point at the start of the mapping). Scalars are read as the text written
//! (`deserialize_str`): `0660` stays octal, `550` stays a reply code, and
//! sizes and durations may carry units.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use encoding_rs::Encoding;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::message::charset_by_name;

/// The error for a scalar key written without a value.
fn no_value<E: de::Error>(expecting: &str) -> E {
    E::custom(format_args!("no value: expected {expecting}"))
}

/// Implements `Deserialize` for a scalar type through `deserialize_str`
/// and a parse function returning `Result<Self, String>`.
macro_rules! scalar {
    ($ty:ty, $expecting:expr, $parse:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        if v.trim().is_empty() {
                            return Err(no_value($expecting));
                        }
                        let parse: fn(&str) -> Result<$ty, String> = $parse;
                        parse(v.trim()).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

/// Where the milter listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `inet:127.0.0.1:8894`, `inet:[::1]:8894`.
    Inet(SocketAddr),
    /// `unix:/run/mailward/milter.sock` (relative paths are resolved
    /// against the configuration file's directory).
    Unix(PathBuf),
}

pub const DEFAULT_PORT: u16 = 8894;

impl Default for Listen {
    fn default() -> Self {
        Listen::Inet(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Inet(a) => write!(f, "inet:{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Listen {
    pub fn parse(s: &str) -> Result<Listen, String> {
        if let Some(rest) = s.strip_prefix("inet:") {
            let addr: SocketAddr = rest.parse().map_err(|_| {
                format!("`{s}`: expected inet:ADDRESS:PORT with an IP address (IPv6 in brackets)")
            })?;
            if addr.port() == 0 {
                return Err(format!("`{s}`: port 0 is not a fixed port"));
            }
            Ok(Listen::Inet(addr))
        } else if let Some(rest) = s.strip_prefix("unix:") {
            if rest.is_empty() {
                return Err("`unix:` needs a socket path".into());
            }
            // sun_path holds 108 bytes with the terminating NUL.
            if rest.len() > 107 {
                return Err(format!("unix socket path longer than 107 bytes: `{rest}`"));
            }
            Ok(Listen::Unix(PathBuf::from(rest)))
        } else {
            Err(format!("`{s}`: expected inet:ADDRESS:PORT or unix:PATH"))
        }
    }
}

scalar!(Listen, "inet:ADDRESS:PORT or unix:PATH", Listen::parse);

/// The metrics listener's address: `ADDRESS:PORT`, IPv6 in brackets. Port
/// 0 takes any free port (logged at start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpListen(pub SocketAddr);

impl fmt::Display for HttpListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

scalar!(HttpListen, "ADDRESS:PORT", |s| {
    s.parse().map(HttpListen).map_err(|_| {
        format!("`{s}`: expected ADDRESS:PORT with an IP address (IPv6 in brackets), such as 127.0.0.1:9894")
    })
});

/// Permission bits of a unix socket, written in octal (`0660`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl Default for FileMode {
    fn default() -> Self {
        FileMode(0o660)
    }
}

scalar!(FileMode, "an octal file mode such as 0660", |s| {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o777 => Ok(FileMode(m)),
        _ => Err(format!(
            "`{s}` is not a file mode: write octal digits up to 0777, such as 0660"
        )),
    }
});

/// A user or group: a name, or a numeric id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Account {
    Id(u32),
    Name(String),
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Id(n) => write!(f, "{n}"),
            Account::Name(s) => f.write_str(s),
        }
    }
}

impl Account {
    /// All digits is an id; anything else must look like a POSIX user or
    /// group name (letters, digits, `_`, `.`, `-`, not starting with `-`;
    /// a trailing `$` is allowed, as Samba machine accounts have it).
    pub fn parse(s: &str) -> Result<Account, String> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u32>()
                .ok()
                .filter(|&n| n != u32::MAX)
                .map(Account::Id)
                .ok_or_else(|| format!("`{s}`: not a valid numeric id"));
        }
        let body = s.strip_suffix('$').unwrap_or(s);
        let ok = !body.is_empty()
            && s.len() <= 64
            && !body.starts_with('-')
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Account::Name(s.to_owned()))
        } else {
            Err(format!(
                "`{s}`: expected a user or group name (letters, digits, `_`, `.`, `-`) or a numeric id"
            ))
        }
    }
}

scalar!(
    Account,
    "a user or group name, or a numeric id",
    Account::parse
);

/// A count between `MIN` and `MAX`, `DEF` by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count<const MIN: usize, const MAX: usize, const DEF: usize>(pub usize);

impl<const MIN: usize, const MAX: usize, const DEF: usize> Default for Count<MIN, MAX, DEF> {
    fn default() -> Self {
        Count(DEF)
    }
}

impl<'de, const MIN: usize, const MAX: usize, const DEF: usize> Deserialize<'de>
    for Count<MIN, MAX, DEF>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: usize, const MAX: usize, const DEF: usize>;
        impl<const MIN: usize, const MAX: usize, const DEF: usize> Visitor<'_> for V<MIN, MAX, DEF> {
            type Value = Count<MIN, MAX, DEF>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a whole number from {MIN} to {MAX}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Err(no_value("a whole number"));
                }
                match v.trim().parse::<usize>() {
                    Ok(n) if (MIN..=MAX).contains(&n) => Ok(Count(n)),
                    _ => Err(E::custom(format_args!(
                        "`{v}`: expected a whole number from {MIN} to {MAX}"
                    ))),
                }
            }
        }
        d.deserialize_str(V::<MIN, MAX, DEF>)
    }
}

/// A number of bytes: digits, optionally followed by `KiB`, `MiB` or
/// `GiB` (`10 MiB`). At least 1 KiB and at most 1 GiB: the buffers they
/// bound are held in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize<const DEF: usize>(pub usize);

impl<const DEF: usize> Default for ByteSize<DEF> {
    fn default() -> Self {
        ByteSize(DEF)
    }
}

pub const MIN_BYTES: usize = 1 << 10;
pub const MAX_BYTES: usize = 1 << 30;

pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}`: expected a number of bytes, optionally with KiB, MiB or GiB"
            ));
        }
    };
    let n = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}`: expected a number of bytes"))?;
    if !(MIN_BYTES..=MAX_BYTES).contains(&n) {
        return Err(format!("`{s}`: must be from 1 KiB to 1 GiB"));
    }
    Ok(n)
}

impl<'de, const DEF: usize> Deserialize<'de> for ByteSize<DEF> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const DEF: usize>;
        impl<const DEF: usize> Visitor<'_> for V<DEF> {
            type Value = ByteSize<DEF>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 10 MiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Err(no_value("a size such as 10 MiB"));
                }
                parse_bytes(v.trim()).map(ByteSize).map_err(E::custom)
            }
        }
        d.deserialize_str(V::<DEF>)
    }
}

/// The largest message judged on the thread that serves its connection
/// (a size as for [`ByteSize`]), or `off`: every message goes to the
/// blocking pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InlineBytes(pub Option<usize>);

impl Default for InlineBytes {
    fn default() -> Self {
        InlineBytes(Some(32 << 10))
    }
}

scalar!(InlineBytes, "a size such as 32 KiB, or `off`", |s| {
    if s == "off" {
        return Ok(InlineBytes(None));
    }
    parse_bytes(s).map(|n| InlineBytes(Some(n)))
});

/// A duration: whole seconds, or a number with `s`, `m` or `h` (`2h`).
/// From 1 second to 1 day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds<const DEF: u64>(pub Duration);

impl<const DEF: u64> Default for Seconds<DEF> {
    fn default() -> Self {
        Seconds(Duration::from_secs(DEF))
    }
}

pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            return Err(format!(
                "`{s}`: expected seconds, or a number with s, m or h"
            ));
        }
    };
    let n = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}`: expected a duration such as 30s, 5m or 2h"))?;
    if !(1..=86_400).contains(&n) {
        return Err(format!("`{s}`: must be from 1 second to 24 hours"));
    }
    Ok(Duration::from_secs(n))
}

impl<'de, const DEF: u64> Deserialize<'de> for Seconds<DEF> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const DEF: u64>;
        impl<const DEF: u64> Visitor<'_> for V<DEF> {
            type Value = Seconds<DEF>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 5m or 2h")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Err(no_value("a duration such as 30s, 5m or 2h"));
                }
                parse_seconds(v.trim()).map(Seconds).map_err(E::custom)
            }
        }
        d.deserialize_str(V::<DEF>)
    }
}

/// A finite number, parsed from its text.
fn finite(s: &str) -> Option<f64> {
    // Rust parses `inf` and `NaN`; YAML spells them `.inf` and `.nan`.
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A score threshold, or `off`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold(pub Option<f64>);

scalar!(Threshold, "a number or `off`", |s| {
    if s == "off" {
        return Ok(Threshold(None));
    }
    finite(s)
        .map(|v| Threshold(Some(v)))
        .ok_or_else(|| format!("`{s}`: expected a finite number or `off`"))
});

/// The most a category adds to a score: a finite number, zero or more.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cap(pub f64);

scalar!(Cap, "a number", |s| {
    finite(s)
        .filter(|v| *v >= 0.0)
        .map(Cap)
        .ok_or_else(|| format!("`{s}`: expected a finite number, zero or more"))
});

/// A library category name (non-empty).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CategoryName(pub String);

scalar!(CategoryName, "a category name", |s| {
    if s.is_empty() {
        Err("a category name cannot be empty".into())
    } else {
        Ok(CategoryName(s.to_owned()))
    }
});

/// The verdict header's field name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderName(pub String);

pub const DEFAULT_HEADER: &str = "X-Mailward";

impl Default for HeaderName {
    fn default() -> Self {
        HeaderName(DEFAULT_HEADER.into())
    }
}

/// Fields a message needs: removing them as forged verdicts would damage
/// every message.
const PROTECTED_HEADERS: &[&str] = &[
    "received",
    "return-path",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "dkim-signature",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "authentication-results",
];

scalar!(HeaderName, "a header field name", |s| {
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !ok {
        return Err(format!(
            "`{s}` is not a header field name (1 to 64 printable ASCII characters, no colon or space)"
        ));
    }
    if PROTECTED_HEADERS.contains(&s.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "`{s}` is a standard header field: incoming ones are removed, so choose a name of its own such as {DEFAULT_HEADER}"
        ));
    }
    Ok(HeaderName(s.to_owned()))
});

/// A charset name known to the decoder (for 8-bit text with none).
#[derive(Clone, Copy, Debug)]
pub struct Charset(pub &'static Encoding);

impl Default for Charset {
    fn default() -> Self {
        Charset(encoding_rs::GB18030)
    }
}

scalar!(Charset, "a charset name", |s| {
    charset_by_name(s)
        .map(Charset)
        .ok_or_else(|| format!("unknown charset `{s}`"))
});

/// An IP network: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    pub fn parse(s: &str) -> Result<Net, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("`{s}`: expected an IP address or network such as 192.0.2.0/24")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{s}`: the prefix length must be from 0 to {max}")),
            },
        };
        let net = Net { addr, prefix };
        if net.masked() != addr {
            return Err(format!(
                "`{s}` has host bits set: did you mean {}/{prefix}?",
                net.masked()
            ));
        }
        Ok(net)
    }

    fn masked(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & m).into())
            }
        }
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as
    /// IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        Net {
            addr: ip,
            prefix: self.prefix,
        }
        .masked()
            == self.addr
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

scalar!(Net, "an IP address or network", Net::parse);

// ---- SMTP replies ----

/// A reply kind: its code class (`'0'` when only the text is used) and its
/// generic defaults.
macro_rules! reply_kind {
    ($name:ident, $class:expr, $code:expr, $status:expr, $text:expr) => {
        #[derive(Clone, Debug)]
        pub struct $name;
        impl ReplyKind for $name {
            const CLASS: char = $class;
            const CODE: &'static str = $code;
            const STATUS: &'static str = $status;
            const TEXT: &'static str = $text;
        }
    };
}
pub(crate) use reply_kind;

/// The kind of a reply: its code class and generic defaults, which say
/// nothing about what matched.
pub trait ReplyKind {
    const CLASS: char;
    const CODE: &'static str;
    const STATUS: &'static str;
    const TEXT: &'static str;
}

reply_kind!(
    RejectKind,
    '5',
    "550",
    "5.7.1",
    "Message refused by content filter"
);

reply_kind!(
    TempfailKind,
    '4',
    "451",
    "4.7.1",
    "Message deferred by content filter, try again later"
);

reply_kind!(
    ErrorKind,
    '4',
    "451",
    "4.3.0",
    "Temporary local problem, try again later"
);

// Only its text is used (the reason given to the MTA's hold queue).
reply_kind!(QuarantineKind, '0', "", "", "held by content filter");

/// An SMTP reply: `code` (`550`), enhanced `status` (`5.7.1`) and `text`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct Reply<K: ReplyKind> {
    pub code: ReplyCode<K>,
    pub status: StatusCode<K>,
    pub text: ReplyText<K>,
}

impl<K: ReplyKind> Default for Reply<K> {
    fn default() -> Self {
        Reply {
            code: ReplyCode::default(),
            status: StatusCode::default(),
            text: ReplyText::default(),
        }
    }
}

/// Implements `Default` (from the kind) and a checking `Deserialize` for
/// a reply part.
macro_rules! reply_part {
    ($ty:ident, $default:ident, $expecting:expr, $check:expr) => {
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $ty<K>(pub String, PhantomData<K>);

        impl<K: ReplyKind> Default for $ty<K> {
            fn default() -> Self {
                $ty(K::$default.to_owned(), PhantomData)
            }
        }

        impl<K> $ty<K> {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de, K: ReplyKind> Deserialize<'de> for $ty<K> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V<K>(PhantomData<K>);
                impl<K: ReplyKind> Visitor<'_> for V<K> {
                    type Value = $ty<K>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty<K>, E> {
                        let check: fn(&str, char) -> Result<(), String> = $check;
                        let v = v.trim();
                        check(v, K::CLASS).map_err(E::custom)?;
                        Ok($ty(v.to_owned(), PhantomData))
                    }
                }
                d.deserialize_str(V::<K>(PhantomData))
            }
        }
    };
}

reply_part!(ReplyCode, CODE, "an SMTP reply code", |v, class| {
    let b = v.as_bytes();
    let ok = b.len() == 3
        && b[0] == class as u8
        && (b'0'..=b'5').contains(&b[1])
        && b[2].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{v}`: expected a {class}xx reply code such as {class}50"
        ))
    }
});

reply_part!(StatusCode, STATUS, "an enhanced status code", |v, class| {
    let mut it = v.split('.');
    let first = it.next() == Some(&*class.to_string());
    let num = |p: Option<&str>| {
        p.is_some_and(|p| {
            (1..=3).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'))
        })
    };
    if first && num(it.next()) && num(it.next()) && it.next().is_none() {
        Ok(())
    } else {
        Err(format!(
            "`{v}`: expected an enhanced status code of class {class}, such as {class}.7.1"
        ))
    }
});

reply_part!(ReplyText, TEXT, "a line of text", |v, _| {
    if v.is_empty() || v.len() > 400 || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Err("expected 1 to 400 printable ASCII characters on one line".into())
    } else {
        Ok(())
    }
});
