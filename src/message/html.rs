//! HTML to text, in one pass.
//!
//! Text between tags is kept with runs of ASCII whitespace collapsed to one
//! space, and so is the `alt` text of images; character references are
//! decoded; comments, declarations and the
//! content of `script` and `style` are dropped. A tag that breaks the text
//! when rendered (block elements, `br`, table cells, …) becomes a space,
//! any other tag nothing, so `v<b>i</b>agra` stays one word. Host names of
//! `href`, `src`, `action` and `background` attributes and of a
//! `<meta http-equiv=refresh>` target go to a [`HostSet`].
//!
//! Linear: every byte is looked at a bounded number of times (searches for
//! the end of a comment or of a script start where the previous one ended;
//! an unterminated comment is searched once more, for its `>`).

use std::borrow::Cow;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};
use memchr::{memchr, memchr2, memmem};

use super::transfer::decode_percent;

/// Distinct host names in order of first appearance.
#[derive(Default)]
pub(super) struct HostSet {
    /// Indices into `list`, hashed by the name there: each name stored once.
    seen: HashTable<usize>,
    hasher: DefaultHashBuilder,
    list: Vec<String>,
    taken: usize,
}

impl HostSet {
    pub fn insert(&mut self, host: String) {
        let Self {
            seen, hasher, list, ..
        } = self;
        let h = hasher.hash_one(host.as_str());
        let rehash = |&i: &usize| hasher.hash_one(list[i].as_str());
        if let Entry::Vacant(v) = seen.entry(h, |&i| list[i] == host, rehash) {
            v.insert(list.len());
            list.push(host);
        }
    }

    /// Hosts added since the last call, one per line.
    pub fn take_new(&mut self) -> String {
        let new = &self.list[self.taken..];
        self.taken = self.list.len();
        new.join("\n")
    }
}

/// The text of an HTML document; hosts of its links and images go to
/// `hosts`.
pub(super) fn strip(src: &str, hosts: &mut HostSet) -> String {
    let b = src.as_bytes();
    let mut out = Out {
        s: String::with_capacity(b.len() / 2),
        space: false,
    };
    let mut no_close_from = usize::MAX;
    let mut i = 0;
    while i < b.len() {
        let Some(p) = memchr2(b'<', b'&', &b[i..]) else {
            out.text(&src[i..]);
            break;
        };
        let at = i + p;
        out.text(&src[i..at]);
        if b[at] == b'&' {
            match entity(b, at, false) {
                Some((c, len)) => {
                    out.ch(c);
                    i = at + len;
                }
                None => {
                    out.text("&");
                    i = at + 1;
                }
            }
            continue;
        }
        i = markup(src, at, &mut out, hosts, &mut no_close_from);
    }
    out.s
}

struct Out {
    s: String,
    space: bool,
}

/// HTML's ASCII whitespace.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

impl Out {
    fn flush_space(&mut self) {
        if self.space {
            if !self.s.is_empty() && !self.s.ends_with(' ') {
                self.s.push(' ');
            }
            self.space = false;
        }
    }

    /// Appends `t` with its runs of whitespace collapsed to one space
    /// (deferred: none before the first word, nor at the end).
    ///
    /// Words separated by one plain space, the usual case, are copied as
    /// one span rather than word by word.
    fn text(&mut self, t: &str) {
        let b = t.as_bytes();
        let mut k = 0;
        while k < b.len() {
            if is_space(b[k]) {
                self.space = true;
                k += 1;
                continue;
            }
            // A span: words joined by single spaces, ending before other
            // whitespace, a run of it, or the end.
            let start = k;
            while k < b.len() {
                match b[k] {
                    b' ' if k + 1 < b.len() && !is_space(b[k + 1]) => k += 2,
                    c if is_space(c) => break,
                    _ => k += 1,
                }
            }
            self.flush_space();
            self.s.push_str(&t[start..k]);
        }
    }

    fn ch(&mut self, c: char) {
        self.flush_space();
        self.s.push(c);
    }
}

/// Handles the markup starting with `<` at `at`; returns where text resumes.
/// `no_close_from` is where a search found no `-->` up to the end.
fn markup(
    src: &str,
    at: usize,
    out: &mut Out,
    hosts: &mut HostSet,
    no_close_from: &mut usize,
) -> usize {
    let b = src.as_bytes();
    let next = b.get(at + 1).copied().unwrap_or(0);
    if b[at..].starts_with(b"<!--") {
        // An unterminated comment would hide the rest of the document; end
        // it at the next `>` instead, as older renderers did.
        let close = if at + 4 >= *no_close_from {
            None
        } else {
            memmem::find(&b[at + 4..], b"-->")
        };
        return match close {
            Some(p) => at + 4 + p + 3,
            None => {
                *no_close_from = (*no_close_from).min(at + 4);
                memchr(b'>', &b[at..]).map_or(b.len(), |p| at + p + 1)
            }
        };
    }
    if next == b'!' || next == b'?' {
        return memchr(b'>', &b[at..]).map_or(b.len(), |p| at + p + 1);
    }
    if next == b'/' && b.get(at + 2).is_some_and(u8::is_ascii_alphabetic) {
        let name_end = name_end(b, at + 2);
        if is_block(&b[at + 2..name_end]) {
            out.space = true;
        }
        return memchr(b'>', &b[name_end..]).map_or(b.len(), |p| name_end + p + 1);
    }
    if !next.is_ascii_alphabetic() {
        out.text("<");
        return at + 1;
    }
    let name_end = name_end(b, at + 1);
    let name = &b[at + 1..name_end];
    let (end, alt) = attributes(b, name_end, name, hosts);
    if is_block(name) {
        out.space = true;
    }
    if let Some(alt) = alt {
        out.space = true;
        out.text(&alt);
        out.space = true;
    }
    if name.eq_ignore_ascii_case(b"script") || name.eq_ignore_ascii_case(b"style") {
        out.space = true;
        return end_of_raw_text(b, end, name);
    }
    end
}

fn name_end(b: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < b.len() && !(is_space(b[j]) || matches!(b[j], b'/' | b'>')) {
        j += 1;
    }
    j
}

/// After the closing tag `</name>` that ends raw text starting at `from`.
fn end_of_raw_text(b: &[u8], from: usize, name: &[u8]) -> usize {
    let mut j = from;
    while let Some(p) = memchr(b'<', &b[j..]) {
        let k = j + p;
        if b.get(k + 1) == Some(&b'/')
            && b.len() >= k + 2 + name.len()
            && b[k + 2..k + 2 + name.len()].eq_ignore_ascii_case(name)
            && !b
                .get(k + 2 + name.len())
                .is_some_and(u8::is_ascii_alphanumeric)
        {
            return memchr(b'>', &b[k..]).map_or(b.len(), |q| k + q + 1);
        }
        j = k + 1;
    }
    b.len()
}

/// Reads the attributes of a start tag from `from`; returns the index after
/// its `>` and, for an image, its `alt` text. Link attributes feed `hosts`.
fn attributes(b: &[u8], from: usize, tag: &[u8], hosts: &mut HostSet) -> (usize, Option<String>) {
    let is_meta = tag.eq_ignore_ascii_case(b"meta");
    let is_img = tag.eq_ignore_ascii_case(b"img");
    let mut alt = None;
    let mut refresh = false;
    let mut content: Option<(usize, usize)> = None;
    let mut j = from;
    loop {
        while j < b.len() && (is_space(b[j]) || b[j] == b'/') {
            j += 1;
        }
        if j >= b.len() {
            break;
        }
        if b[j] == b'>' {
            j += 1;
            break;
        }
        let ns = j;
        j += 1; // an attribute name may start with `=`
        while j < b.len() && !is_space(b[j]) && !matches!(b[j], b'=' | b'>' | b'/') {
            j += 1;
        }
        let name = &b[ns..j];
        while j < b.len() && is_space(b[j]) {
            j += 1;
        }
        if b.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while j < b.len() && is_space(b[j]) {
            j += 1;
        }
        let (vs, ve);
        match b.get(j) {
            Some(&q) if q == b'"' || q == b'\'' => {
                vs = j + 1;
                ve = memchr(q, &b[vs..]).map_or(b.len(), |p| vs + p);
                j = (ve + 1).min(b.len());
            }
            _ => {
                vs = j;
                while j < b.len() && !is_space(b[j]) && b[j] != b'>' {
                    j += 1;
                }
                ve = j;
            }
        }
        let value = &b[vs..ve];
        if ["href", "src", "action", "background"]
            .iter()
            .any(|a| name.eq_ignore_ascii_case(a.as_bytes()))
        {
            if let Some(h) = host_of(&attr_value(value)) {
                hosts.insert(h);
            }
        } else if is_img && name.eq_ignore_ascii_case(b"alt") && !value.is_empty() {
            alt = Some(attr_value(value).into_owned());
        } else if is_meta && name.eq_ignore_ascii_case(b"http-equiv") {
            refresh = value.eq_ignore_ascii_case(b"refresh");
        } else if is_meta && name.eq_ignore_ascii_case(b"content") {
            content = Some((vs, ve));
        }
    }
    if refresh && let Some((vs, ve)) = content {
        let v = attr_value(&b[vs..ve]);
        if let Some(p) = find_ascii_ci(&v, b"url") {
            let rest = v[p + 3..].trim_start_matches([' ', '\t', '=']);
            let rest = rest.trim_start_matches(['"', '\'']);
            if let Some(h) = host_of(rest) {
                hosts.insert(h);
            }
        }
    }
    (j, alt)
}

fn find_ascii_ci(hay: &str, needle: &[u8]) -> Option<usize> {
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// An attribute value with character references decoded.
fn attr_value(v: &[u8]) -> Cow<'_, str> {
    let s = String::from_utf8_lossy(v);
    if !v.contains(&b'&') {
        return s;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while let Some(p) = memchr(b'&', &b[i..]) {
        let at = i + p;
        out.push_str(&s[i..at]);
        match entity(b, at, true) {
            Some((c, len)) => {
                out.push(c);
                i = at + len;
            }
            None => {
                out.push('&');
                i = at + 1;
            }
        }
    }
    out.push_str(&s[i..]);
    Cow::Owned(out)
}

/// The host name a URL points to, lowercased: `http(s)://`, `ftp://`,
/// `//host`, `www.` and `mailto:` forms; `None` for relative and other
/// URLs and for names without a dot.
pub(super) fn host_of(url: &str) -> Option<String> {
    let cleaned: String;
    let mut u = url.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    if memchr::memchr3(b'\t', b'\n', b'\r', u.as_bytes()).is_some() {
        cleaned = u
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
            .collect();
        u = &cleaned;
    }
    let ub = u.as_bytes();
    let starts = |p: &str| ub.len() >= p.len() && ub[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    let rest: &str = if starts("http:") {
        u[5..].trim_start_matches(['/', '\\'])
    } else if starts("https:") {
        u[6..].trim_start_matches(['/', '\\'])
    } else if starts("ftp://") {
        &u[6..]
    } else if starts("//") || starts("\\\\") {
        &u[2..]
    } else if starts("www.") {
        u
    } else if starts("mailto:") {
        let addr = &u[7..];
        let addr = &addr[..ascii_find(addr, |c| matches!(c, b'?' | b',' | b';'))];
        let at = addr.rfind('@')?;
        return clean_host(&addr[at + 1..]);
    } else {
        return None;
    };
    let end = ascii_find(rest, |c| {
        matches!(c, b'/' | b'\\' | b'?' | b'#' | b' ' | b'"' | b'\'')
    });
    let authority = &rest[..end];
    let host = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |p| &host[..=p])
    } else {
        host.split(':').next().unwrap_or(host)
    };
    clean_host(host)
}

/// The position of the first ASCII byte of `s` that `stop` picks, or its
/// length: a char boundary either way.
fn ascii_find(s: &str, stop: impl Fn(u8) -> bool) -> usize {
    s.bytes().position(stop).unwrap_or(s.len())
}

fn clean_host(host: &str) -> Option<String> {
    let decoded: String;
    let mut h = host;
    if host.contains('%') {
        let mut v = Vec::with_capacity(host.len());
        decode_percent(host.as_bytes(), &mut v);
        decoded = String::from_utf8_lossy(&v).into_owned();
        h = &decoded;
    }
    let h = h.trim_matches('.');
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.contains('.')
        && !h.chars().any(|c| {
            if c.is_ascii() {
                // Most names are ASCII: a byte test, no Unicode tables.
                let b = c as u8;
                b <= b' '
                    || b == 0x7F
                    || matches!(
                        b,
                        b'<' | b'>' | b'"' | b'\'' | b'`' | b'{' | b'}' | b'|' | b'^' | b'@'
                    )
            } else {
                c.is_whitespace() || c.is_control()
            }
        });
    ok.then(|| h.to_ascii_lowercase())
}

fn is_block(name: &[u8]) -> bool {
    if name.len() > 10 {
        return false;
    }
    let mut buf = [0u8; 10];
    let n = &mut buf[..name.len()];
    n.copy_from_slice(name);
    n.make_ascii_lowercase();
    matches!(
        &*n,
        b"address"
            | b"article"
            | b"aside"
            | b"blockquote"
            | b"body"
            | b"br"
            | b"button"
            | b"caption"
            | b"center"
            | b"dd"
            | b"details"
            | b"dialog"
            | b"dir"
            | b"div"
            | b"dl"
            | b"dt"
            | b"fieldset"
            | b"figcaption"
            | b"figure"
            | b"footer"
            | b"form"
            | b"frame"
            | b"frameset"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"head"
            | b"header"
            | b"hr"
            | b"html"
            | b"iframe"
            | b"input"
            | b"legend"
            | b"li"
            | b"main"
            | b"menu"
            | b"nav"
            | b"noframes"
            | b"noscript"
            | b"ol"
            | b"optgroup"
            | b"option"
            | b"p"
            | b"pre"
            | b"section"
            | b"select"
            | b"summary"
            | b"table"
            | b"tbody"
            | b"td"
            | b"textarea"
            | b"tfoot"
            | b"th"
            | b"thead"
            | b"title"
            | b"tr"
            | b"ul"
    )
}

/// Windows-1252 meanings of numeric references 0x80–0x9F (HTML5).
const C1: [u16; 32] = [
    0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0xFFFD, 0x017D, 0xFFFD, 0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
];

/// Decodes the character reference at `b[at]` (`&`): the character and the
/// bytes consumed. In attribute values a name without `;` followed by an
/// alphanumeric or `=` is left alone, as browsers do.
pub(super) fn entity(b: &[u8], at: usize, in_attr: bool) -> Option<(char, usize)> {
    let s = b.get(at + 1..)?;
    if s.first() == Some(&b'#') {
        let (hexa, start) = match s.get(1) {
            Some(b'x' | b'X') => (true, 2),
            _ => (false, 1),
        };
        let mut v: u32 = 0;
        let mut k = start;
        while let Some(&d) = s.get(k) {
            let dv = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' if hexa => d - b'a' + 10,
                b'A'..=b'F' if hexa => d - b'A' + 10,
                _ => break,
            };
            v = v
                .saturating_mul(if hexa { 16 } else { 10 })
                .saturating_add(dv as u32);
            k += 1;
        }
        if k == start {
            return None;
        }
        if s.get(k) == Some(&b';') {
            k += 1;
        }
        let c = match v {
            0x80..=0x9F => char::from_u32(C1[(v - 0x80) as usize] as u32),
            0 => None,
            _ => char::from_u32(v),
        }
        .unwrap_or('\u{FFFD}');
        return Some((c, 1 + k));
    }
    let n = s
        .iter()
        .take(32)
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    if n == 0 {
        return None;
    }
    let name = std::str::from_utf8(&s[..n]).ok()?;
    if s.get(n) == Some(&b';') {
        return named(name).map(|c| (c, n + 2));
    }
    if in_attr && s.get(n).is_some_and(|&c| c == b'=') {
        return None;
    }
    if let Some(c) = named(name).filter(|_| legacy(name)) {
        return Some((c, n + 1));
    }
    if in_attr {
        return None;
    }
    // `&copy2024`: the longest legacy name that is a prefix (those names
    // have at most six letters).
    (2..n.min(7)).rev().find_map(|k| {
        named(&name[..k])
            .filter(|_| legacy(&name[..k]))
            .map(|c| (c, k + 1))
    })
}

/// Names browsers also accept without the semicolon: the Latin-1 set.
fn legacy(name: &str) -> bool {
    matches!(
        name,
        "amp" | "lt" | "gt" | "quot" | "AMP" | "LT" | "GT" | "QUOT"
    ) || named(name).is_some_and(|c| ('\u{A0}'..='\u{FF}').contains(&c))
}

/// The HTML 4 named character references (plus `apos`).
fn named(name: &str) -> Option<char> {
    let v: u32 = match name {
        "quot" | "QUOT" => 34,
        "amp" | "AMP" => 38,
        "apos" => 39,
        "lt" | "LT" => 60,
        "gt" | "GT" => 62,
        "nbsp" => 160,
        "iexcl" => 161,
        "cent" => 162,
        "pound" => 163,
        "curren" => 164,
        "yen" => 165,
        "brvbar" => 166,
        "sect" => 167,
        "uml" => 168,
        "copy" | "COPY" => 169,
        "ordf" => 170,
        "laquo" => 171,
        "not" => 172,
        "shy" => 173,
        "reg" | "REG" => 174,
        "macr" => 175,
        "deg" => 176,
        "plusmn" => 177,
        "sup2" => 178,
        "sup3" => 179,
        "acute" => 180,
        "micro" => 181,
        "para" => 182,
        "middot" => 183,
        "cedil" => 184,
        "sup1" => 185,
        "ordm" => 186,
        "raquo" => 187,
        "frac14" => 188,
        "frac12" => 189,
        "frac34" => 190,
        "iquest" => 191,
        "Agrave" => 192,
        "Aacute" => 193,
        "Acirc" => 194,
        "Atilde" => 195,
        "Auml" => 196,
        "Aring" => 197,
        "AElig" => 198,
        "Ccedil" => 199,
        "Egrave" => 200,
        "Eacute" => 201,
        "Ecirc" => 202,
        "Euml" => 203,
        "Igrave" => 204,
        "Iacute" => 205,
        "Icirc" => 206,
        "Iuml" => 207,
        "ETH" => 208,
        "Ntilde" => 209,
        "Ograve" => 210,
        "Oacute" => 211,
        "Ocirc" => 212,
        "Otilde" => 213,
        "Ouml" => 214,
        "times" => 215,
        "Oslash" => 216,
        "Ugrave" => 217,
        "Uacute" => 218,
        "Ucirc" => 219,
        "Uuml" => 220,
        "Yacute" => 221,
        "THORN" => 222,
        "szlig" => 223,
        "agrave" => 224,
        "aacute" => 225,
        "acirc" => 226,
        "atilde" => 227,
        "auml" => 228,
        "aring" => 229,
        "aelig" => 230,
        "ccedil" => 231,
        "egrave" => 232,
        "eacute" => 233,
        "ecirc" => 234,
        "euml" => 235,
        "igrave" => 236,
        "iacute" => 237,
        "icirc" => 238,
        "iuml" => 239,
        "eth" => 240,
        "ntilde" => 241,
        "ograve" => 242,
        "oacute" => 243,
        "ocirc" => 244,
        "otilde" => 245,
        "ouml" => 246,
        "divide" => 247,
        "oslash" => 248,
        "ugrave" => 249,
        "uacute" => 250,
        "ucirc" => 251,
        "uuml" => 252,
        "yacute" => 253,
        "thorn" => 254,
        "yuml" => 255,
        "OElig" => 338,
        "oelig" => 339,
        "Scaron" => 352,
        "scaron" => 353,
        "Yuml" => 376,
        "fnof" => 402,
        "circ" => 710,
        "tilde" => 732,
        "Alpha" => 913,
        "Beta" => 914,
        "Gamma" => 915,
        "Delta" => 916,
        "Epsilon" => 917,
        "Zeta" => 918,
        "Eta" => 919,
        "Theta" => 920,
        "Iota" => 921,
        "Kappa" => 922,
        "Lambda" => 923,
        "Mu" => 924,
        "Nu" => 925,
        "Xi" => 926,
        "Omicron" => 927,
        "Pi" => 928,
        "Rho" => 929,
        "Sigma" => 931,
        "Tau" => 932,
        "Upsilon" => 933,
        "Phi" => 934,
        "Chi" => 935,
        "Psi" => 936,
        "Omega" => 937,
        "alpha" => 945,
        "beta" => 946,
        "gamma" => 947,
        "delta" => 948,
        "epsilon" => 949,
        "zeta" => 950,
        "eta" => 951,
        "theta" => 952,
        "iota" => 953,
        "kappa" => 954,
        "lambda" => 955,
        "mu" => 956,
        "nu" => 957,
        "xi" => 958,
        "omicron" => 959,
        "pi" => 960,
        "rho" => 961,
        "sigmaf" => 962,
        "sigma" => 963,
        "tau" => 964,
        "upsilon" => 965,
        "phi" => 966,
        "chi" => 967,
        "psi" => 968,
        "omega" => 969,
        "thetasym" => 977,
        "upsih" => 978,
        "piv" => 982,
        "ensp" => 8194,
        "emsp" => 8195,
        "thinsp" => 8201,
        "zwnj" => 8204,
        "zwj" => 8205,
        "lrm" => 8206,
        "rlm" => 8207,
        "ndash" => 8211,
        "mdash" => 8212,
        "lsquo" => 8216,
        "rsquo" => 8217,
        "sbquo" => 8218,
        "ldquo" => 8220,
        "rdquo" => 8221,
        "bdquo" => 8222,
        "dagger" => 8224,
        "Dagger" => 8225,
        "bull" => 8226,
        "hellip" => 8230,
        "permil" => 8240,
        "prime" => 8242,
        "Prime" => 8243,
        "lsaquo" => 8249,
        "rsaquo" => 8250,
        "oline" => 8254,
        "frasl" => 8260,
        "euro" => 8364,
        "image" => 8465,
        "weierp" => 8472,
        "real" => 8476,
        "trade" | "TRADE" => 8482,
        "alefsym" => 8501,
        "larr" => 8592,
        "uarr" => 8593,
        "rarr" => 8594,
        "darr" => 8595,
        "harr" => 8596,
        "crarr" => 8629,
        "lArr" => 8656,
        "uArr" => 8657,
        "rArr" => 8658,
        "dArr" => 8659,
        "hArr" => 8660,
        "forall" => 8704,
        "part" => 8706,
        "exist" => 8707,
        "empty" => 8709,
        "nabla" => 8711,
        "isin" => 8712,
        "notin" => 8713,
        "ni" => 8715,
        "prod" => 8719,
        "sum" => 8721,
        "minus" => 8722,
        "lowast" => 8727,
        "radic" => 8730,
        "prop" => 8733,
        "infin" => 8734,
        "ang" => 8736,
        "and" => 8743,
        "or" => 8744,
        "cap" => 8745,
        "cup" => 8746,
        "int" => 8747,
        "there4" => 8756,
        "sim" => 8764,
        "cong" => 8773,
        "asymp" => 8776,
        "ne" => 8800,
        "equiv" => 8801,
        "le" => 8804,
        "ge" => 8805,
        "sub" => 8834,
        "sup" => 8835,
        "nsub" => 8836,
        "sube" => 8838,
        "supe" => 8839,
        "oplus" => 8853,
        "otimes" => 8855,
        "perp" => 8869,
        "sdot" => 8901,
        "lceil" => 8968,
        "rceil" => 8969,
        "lfloor" => 8970,
        "rfloor" => 8971,
        "lang" => 9001,
        "rang" => 9002,
        "loz" => 9674,
        "spades" => 9824,
        "clubs" => 9827,
        "hearts" => 9829,
        "diams" => 9830,
        _ => return None,
    };
    char::from_u32(v)
}

/// The charset an HTML document declares in a `<meta>` tag within its
/// first bytes (`charset=…` or `content="text/html; charset=…"`).
pub(super) fn meta_charset(head: &[u8]) -> Option<&[u8]> {
    let mut j = 0;
    while let Some(p) = memchr(b'<', &head[j..]) {
        let k = j + p;
        j = k + 1;
        if !head
            .get(k + 1..k + 5)
            .is_some_and(|t| t.eq_ignore_ascii_case(b"meta"))
        {
            continue;
        }
        let end = memchr(b'>', &head[k..]).map_or(head.len(), |q| k + q);
        let tag = &head[k..end];
        let Some(c) = tag
            .windows(7)
            .position(|w| w.eq_ignore_ascii_case(b"charset"))
        else {
            continue;
        };
        let mut v = &tag[c + 7..];
        while let [
            b' ' | b'\t' | b'\r' | b'\n' | b'=' | b'"' | b'\'',
            rest @ ..,
        ] = v
        {
            v = rest;
        }
        let n = v
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
            .count();
        if n > 0 {
            return Some(&v[..n]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `Out::text` as it was first written: word by word.
    fn text_by_words(out: &mut Out, t: &str) {
        for (k, word) in t.split(is_space_char).enumerate() {
            if k > 0 {
                out.space = true;
            }
            if !word.is_empty() {
                out.flush_space();
                out.s.push_str(word);
            }
        }
    }

    fn is_space_char(c: char) -> bool {
        c.is_ascii() && is_space(c as u8)
    }

    proptest! {
        /// Spans copied whole give what copying word by word gives, over
        /// several calls (the pending space carries from one to the next).
        #[test]
        fn text_spans_equal_words(parts in prop::collection::vec("[ a\t\n\r\x0c\x01发b]{0,12}|[ ab]{0,40}|[a-z]{0,20}", 0..6)) {
            let (mut fast, mut slow) = (Out { s: String::new(), space: false }, Out { s: String::new(), space: false });
            for p in &parts {
                fast.text(p);
                text_by_words(&mut slow, p);
                prop_assert_eq!(&fast.s, &slow.s);
                prop_assert_eq!(fast.space, slow.space);
            }
        }

        /// Distinct names in order of first appearance, each once.
        #[test]
        fn host_set_keeps_first_appearances(names in prop::collection::vec("[a-c]{1,2}\\.x", 0..30), cut in 0usize..30) {
            let mut set = HostSet::default();
            let mut expected: Vec<String> = Vec::new();
            let mut insert = |set: &mut HostSet, names: &[String]| {
                for n in names {
                    set.insert(n.clone());
                    if !expected.contains(n) {
                        expected.push(n.clone());
                    }
                }
                expected.clone()
            };
            let (first, second) = names.split_at(cut.min(names.len()));
            let seen = insert(&mut set, first);
            prop_assert_eq!(set.take_new(), seen.join("\n"));
            let all = insert(&mut set, second);
            prop_assert_eq!(set.take_new(), all[seen.len()..].join("\n"));
        }
    }
}
