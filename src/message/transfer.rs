//! Content transfer encodings: lenient base64 and quoted-printable.

use memchr::memchr;

/// A part's Content-Transfer-Encoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Cte {
    /// 7bit, 8bit, binary, absent, or unknown (read as is).
    Identity,
    Base64,
    QuotedPrintable,
}

/// Parses a Content-Transfer-Encoding value. `Err` carries an unknown name
/// (the part is then read as is).
pub(super) fn parse_cte(value: Option<&[u8]>) -> Result<Cte, String> {
    let Some(value) = value else {
        return Ok(Cte::Identity);
    };
    let mut compact = [0u8; 24];
    let mut n = 0;
    for &b in value {
        if b == b';' || b == b'(' {
            break;
        }
        if b.is_ascii_alphanumeric() {
            if n == compact.len() {
                return Err(String::from_utf8_lossy(value).trim().to_string());
            }
            compact[n] = b.to_ascii_lowercase();
            n += 1;
        }
    }
    match &compact[..n] {
        b"base64" | b"b64" => Ok(Cte::Base64),
        b"quotedprintable" | b"qp" | b"quotedprint" => Ok(Cte::QuotedPrintable),
        b"" | b"7bit" | b"8bit" | b"binary" | b"7bits" | b"8bits" | b"none" => Ok(Cte::Identity),
        _ => Err(String::from_utf8_lossy(value).trim().to_string()),
    }
}

const INVALID: u8 = 0xFF;
const SKIP: u8 = 0xFE;
const PAD: u8 = 0xFD;

static B64: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'\r' as usize] = SKIP;
    t[b'\n' as usize] = SKIP;
    t[b'=' as usize] = PAD;
    t
};

/// What a base64 decode met besides the alphabet.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Base64Report {
    /// Foreign bytes skipped inside encoded lines (spaces included).
    pub bad: usize,
    /// Bytes of encoded lines.
    pub total: usize,
    /// Bytes of lines that are plainly text (see [`decode_base64_body`]).
    pub text: usize,
    /// A final lone character carried less than a byte.
    pub dangling: bool,
}

impl Base64Report {
    /// Whether the input is text labelled base64 rather than base64 with
    /// flaws: text lines outweigh encoded ones four to one, or more than
    /// one byte in eight of these is foreign.
    pub fn looks_like_text(&self) -> bool {
        self.text > 4 * self.total || (self.bad > 0 && self.bad * 8 > self.total)
    }

    /// Whether anything besides clean base64 was met.
    pub fn is_broken(&self) -> bool {
        self.bad > 0 || self.text > 0 || self.dangling
    }
}

/// Decodes base64, skipping foreign bytes and restarting after padding
/// (concatenated encodings). Appends to `out`.
pub(super) fn decode_base64(src: &[u8], out: &mut Vec<u8>) -> Base64Report {
    out.reserve(src.len() / 4 * 3 + 3);
    let mut rep = Base64Report::default();
    let mut st = (0u32, 0u32);
    decode_run(src, out, &mut st, &mut rep.bad);
    rep.total = src.len();
    flush(&mut st, out, &mut rep);
    rep
}

/// Decodes a base64 body line by line. A line that is plainly text rather
/// than damaged base64 (it starts with `--`, has a blank between other
/// characters, or has two or more foreign bytes making up over a sixteenth
/// of it: a footer a list server appended, a stray boundary) is not
/// decoded but appended to `text`, one line each.
pub(super) fn decode_base64_body(
    src: &[u8],
    out: &mut Vec<u8>,
    text: &mut Vec<u8>,
) -> Base64Report {
    out.reserve(src.len() / 4 * 3 + 3);
    let mut rep = Base64Report::default();
    let mut st = (0u32, 0u32);
    let mut i = 0;
    while i < src.len() {
        let end = memchr(b'\n', &src[i..]).map_or(src.len(), |p| i + p);
        let line = src[i..end].trim_ascii();
        i = end + 1;
        if line.is_empty() {
            continue;
        }
        let (mark, saved) = (out.len(), st);
        let mut bad = 0;
        decode_run(line, out, &mut st, &mut bad);
        let blank_inside = line.iter().any(|&b| b == b' ' || b == b'\t');
        if line.starts_with(b"--") || blank_inside || (bad >= 2 && bad * 16 > line.len()) {
            out.truncate(mark);
            st = saved;
            rep.text += line.len();
            text.extend_from_slice(line);
            text.push(b'\n');
        } else {
            rep.bad += bad;
            rep.total += line.len();
        }
    }
    flush(&mut st, out, &mut rep);
    rep
}

/// Decodes one run of base64 into `out`, carrying a partial quantum in
/// `st` (bits, count); counts foreign bytes in `bad`.
fn decode_run(src: &[u8], out: &mut Vec<u8>, st: &mut (u32, u32), bad: &mut usize) {
    let (mut acc, mut n) = *st;
    for &b in src {
        let v = B64[b as usize];
        if v < 64 {
            acc = (acc << 6) | v as u32;
            n += 1;
            if n == 4 {
                out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
                acc = 0;
                n = 0;
            }
            continue;
        }
        match v {
            SKIP => {}
            PAD => {
                match n {
                    2 => out.push((acc >> 4) as u8),
                    3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
                    _ => {}
                }
                acc = 0;
                n = 0;
            }
            _ => *bad += 1,
        }
    }
    *st = (acc, n);
}

fn flush(st: &mut (u32, u32), out: &mut Vec<u8>, rep: &mut Base64Report) {
    let (acc, n) = *st;
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        1 => rep.dangling = true,
        _ => {}
    }
    *st = (0, 0);
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Decodes quoted-printable: `=XX` escapes and soft line breaks (trailing
/// blanks allowed before them); a stray `=` stays as it is. Appends to `out`.
pub(super) fn decode_qp(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(src.len());
    let mut i = 0;
    while let Some(p) = memchr(b'=', &src[i..]) {
        let eq = i + p;
        out.extend_from_slice(&src[i..eq]);
        let j = eq + 1;
        if let (Some(h), Some(l)) = (
            src.get(j).copied().and_then(hex),
            src.get(j + 1).copied().and_then(hex),
        ) {
            out.push(h << 4 | l);
            i = j + 2;
            continue;
        }
        let mut k = j;
        while k < src.len() && (src[k] == b' ' || src[k] == b'\t') {
            k += 1;
        }
        if k < src.len() && src[k] == b'\r' {
            k += 1;
        }
        if k >= src.len() {
            i = src.len();
        } else if src[k] == b'\n' {
            i = k + 1;
        } else {
            out.push(b'=');
            i = j;
        }
    }
    out.extend_from_slice(&src[i..]);
}

/// Decodes the `Q` encoding of RFC 2047 encoded words (`_` is a space).
pub(super) fn decode_q(src: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'_' => {
                out.push(b' ');
                i += 1;
            }
            b'=' => match (
                src.get(i + 1).copied().and_then(hex),
                src.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// Decodes `%XX` escapes (RFC 2231 values, URLs); others stay.
pub(super) fn decode_percent(src: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() {
        if src[i] == b'%'
            && let (Some(h), Some(l)) = (
                src.get(i + 1).copied().and_then(hex),
                src.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(src[i]);
        i += 1;
    }
}
