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
    // URL-safe alphabet, seen in the wild.
    t[b'-' as usize] = 62;
    t[b'_' as usize] = 63;
    t[b'\r' as usize] = SKIP;
    t[b'\n' as usize] = SKIP;
    t[b'=' as usize] = PAD;
    t
};

/// What a base64 decode met besides the alphabet.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Base64Report {
    /// Bytes that are neither base64 nor line breaks (spaces included).
    pub bad: usize,
    /// Non-line-break bytes read.
    pub total: usize,
    /// A final lone character carried less than a byte.
    pub dangling: bool,
}

impl Base64Report {
    /// Whether the input is text labelled base64 rather than broken base64:
    /// more than one byte in eight is foreign.
    pub fn looks_like_text(&self) -> bool {
        self.bad > 0 && self.bad * 8 > self.total
    }
}

/// Decodes base64, skipping foreign bytes and restarting after padding
/// (concatenated encodings). Appends to `out`.
pub(super) fn decode_base64(src: &[u8], out: &mut Vec<u8>) -> Base64Report {
    out.reserve(src.len() / 4 * 3 + 3);
    let mut rep = Base64Report::default();
    let mut acc: u32 = 0;
    let mut n = 0u32;
    for &b in src {
        let v = B64[b as usize];
        if v < 64 {
            rep.total += 1;
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
                rep.total += 1;
                flush(&mut acc, &mut n, out, &mut rep);
            }
            _ => {
                rep.total += 1;
                rep.bad += 1;
            }
        }
    }
    flush(&mut acc, &mut n, out, &mut rep);
    rep
}

fn flush(acc: &mut u32, n: &mut u32, out: &mut Vec<u8>, rep: &mut Base64Report) {
    match *n {
        2 => out.push((*acc >> 4) as u8),
        3 => out.extend_from_slice(&[(*acc >> 10) as u8, (*acc >> 2) as u8]),
        1 => rep.dangling = true,
        _ => {}
    }
    *acc = 0;
    *n = 0;
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
