//! Header values: RFC 2047 encoded words, MIME parameters and RFC 2231
//! extended parameters.

use std::borrow::Cow;

use encoding_rs::Encoding;
use memchr::memmem;

use super::Note;
use super::charset::decode_text;
use super::transfer::{decode_base64, decode_percent, decode_q};

/// Decodes an unstructured header value: unfolds it, decodes encoded words
/// (adjacent words in one charset are joined before decoding, so a
/// character split between them survives; blanks between encoded words are
/// dropped) and reads raw 8-bit bytes as UTF-8 or the fallback charset.
pub(super) fn decode_header(
    value: &[u8],
    fallback: &'static Encoding,
    notes: &mut Vec<Note>,
) -> String {
    let value = trim(value);
    let mut out = String::with_capacity(value.len());
    if !value.contains(&b'\r') && !value.contains(&b'\n') && memmem::find(value, b"=?").is_none() {
        out.push_str(&decode_text(Cow::Borrowed(value), None, fallback, notes));
        return out;
    }
    let mut raw: Vec<u8> = Vec::new();
    let mut word: Vec<u8> = Vec::new();
    let mut word_charset: &[u8] = b"";
    let mut after_word = false;
    let mut closes = CloseCache::default();
    let mut i = 0;
    while i < value.len() {
        let Some(p) = memmem::find(&value[i..], b"=?") else {
            break;
        };
        let at = i + p;
        let Some(w) = encoded_word(value, at, &mut closes) else {
            unfold_into(&value[i..at + 2], &mut raw);
            after_word = false;
            i = at + 2;
            continue;
        };
        let between = &value[i..at];
        if !(after_word && between.iter().all(u8::is_ascii_whitespace)) {
            flush_word(&mut word, word_charset, &mut out, fallback, notes);
            unfold_into(between, &mut raw);
        }
        if !raw.is_empty() {
            flush_word(&mut word, word_charset, &mut out, fallback, notes);
            flush_raw(&mut raw, &mut out, fallback, notes);
        }
        if !word.is_empty() && !w.charset.eq_ignore_ascii_case(word_charset) {
            flush_word(&mut word, word_charset, &mut out, fallback, notes);
        }
        word_charset = w.charset;
        if w.base64 {
            let rep = decode_base64(w.text, &mut word);
            if rep.bad > 0 || rep.dangling {
                notes.push(Note::BrokenBase64 {
                    bad_bytes: rep.bad,
                    read_as_text: false,
                });
            }
        } else {
            decode_q(w.text, &mut word);
        }
        after_word = true;
        i = at + w.len;
    }
    flush_word(&mut word, word_charset, &mut out, fallback, notes);
    unfold_into(&value[i.min(value.len())..], &mut raw);
    flush_raw(&mut raw, &mut out, fallback, notes);
    out
}

fn flush_word(
    word: &mut Vec<u8>,
    charset: &[u8],
    out: &mut String,
    fallback: &'static Encoding,
    notes: &mut Vec<Note>,
) {
    if !word.is_empty() {
        let bytes = std::mem::take(word);
        out.push_str(&decode_text(
            Cow::Owned(bytes),
            Some(charset),
            fallback,
            notes,
        ));
    }
}

fn flush_raw(
    raw: &mut Vec<u8>,
    out: &mut String,
    fallback: &'static Encoding,
    notes: &mut Vec<Note>,
) {
    if !raw.is_empty() {
        out.push_str(&decode_text(Cow::Borrowed(raw), None, fallback, notes));
        raw.clear();
    }
}

/// Appends `s` without its line breaks (folding whitespace stays).
fn unfold_into(s: &[u8], out: &mut Vec<u8>) {
    out.extend(s.iter().filter(|&&b| b != b'\r' && b != b'\n'));
}

struct Word<'a> {
    charset: &'a [u8],
    base64: bool,
    text: &'a [u8],
    len: usize,
}

/// The last search for `?=`: from where, and what it found. A later search
/// from a point at or before the found one has the same answer, which keeps
/// a value full of `=?` linear.
#[derive(Default)]
struct CloseCache {
    from: usize,
    found: Option<usize>,
    valid: bool,
}

impl CloseCache {
    fn find(&mut self, value: &[u8], from: usize) -> Option<usize> {
        if self.valid && from >= self.from && self.found.is_none_or(|f| f >= from) {
            return self.found;
        }
        self.from = from;
        self.found = memmem::find(value.get(from..)?, b"?=").map(|p| from + p);
        self.valid = true;
        self.found
    }
}

/// Parses `=?charset[*lang]?B|Q?text?=` at `value[at..]`.
fn encoded_word<'a>(value: &'a [u8], at: usize, closes: &mut CloseCache) -> Option<Word<'a>> {
    let rest = value.get(at + 2..)?;
    let q1 = rest.iter().take(72).position(|&b| b == b'?')?;
    let full_charset = &rest[..q1];
    if full_charset.is_empty()
        || full_charset
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return None;
    }
    let charset = match full_charset.iter().position(|&b| b == b'*') {
        Some(star) => &full_charset[..star],
        None => full_charset,
    };
    let base64 = match rest.get(q1 + 1)? {
        b'B' | b'b' => true,
        b'Q' | b'q' => false,
        _ => return None,
    };
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let end = closes.find(value, at + 2 + text_start)? - (at + 2 + text_start);
    let text = &rest[text_start..text_start + end];
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        return None;
    }
    Some(Word {
        charset,
        base64,
        text,
        len: 2 + text_start + end + 2,
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &s[start..end.max(start)]
}

/// The lowercased first token of a structured value (`text/plain` of a
/// Content-Type, `attachment` of a Content-Disposition) and the rest, which
/// holds the parameters.
pub(super) fn split_value(value: &[u8]) -> (Vec<u8>, &[u8]) {
    let v = trim(value);
    let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
    let mut token: Vec<u8> = trim(&v[..end])
        .iter()
        .filter(|b| !b.is_ascii_whitespace() && **b != b'"')
        .map(u8::to_ascii_lowercase)
        .collect();
    // Comments, rare but legal: `text/plain (comment)`.
    if let Some(p) = token.iter().position(|&b| b == b'(') {
        token.truncate(p);
    }
    (token, &v[end..])
}

/// Iterates `name=value` parameters of a structured header value.
pub(super) struct Params<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Params<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Params { s, i: 0 }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = (&'a [u8], Cow<'a, [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        loop {
            while self.i < s.len() && (s[self.i].is_ascii_whitespace() || s[self.i] == b';') {
                self.i += 1;
            }
            if self.i >= s.len() {
                return None;
            }
            let start = self.i;
            while self.i < s.len() && !matches!(s[self.i], b'=' | b';') {
                self.i += 1;
            }
            if self.i >= s.len() || s[self.i] == b';' {
                continue;
            }
            let name = trim(&s[start..self.i]);
            self.i += 1;
            while self.i < s.len() && s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
            let value = if s.get(self.i) == Some(&b'"') {
                self.i += 1;
                let vstart = self.i;
                let mut owned: Option<Vec<u8>> = None;
                while self.i < s.len() && s[self.i] != b'"' {
                    let b = s[self.i];
                    if b == b'\\' || b == b'\r' || b == b'\n' {
                        let o = owned.get_or_insert_with(|| s[vstart..self.i].to_vec());
                        if b == b'\\' {
                            self.i += 1;
                            if let Some(&e) = s.get(self.i) {
                                o.push(e);
                            }
                        }
                    } else if let Some(o) = owned.as_mut() {
                        o.push(b);
                    }
                    self.i += 1;
                }
                let end = self.i.min(s.len());
                self.i = end + 1;
                match owned {
                    Some(o) => Cow::Owned(o),
                    None => Cow::Borrowed(&s[vstart..end]),
                }
            } else {
                let vstart = self.i;
                while self.i < s.len() && !(s[self.i] == b';' || s[self.i].is_ascii_whitespace()) {
                    self.i += 1;
                }
                Cow::Borrowed(&s[vstart..self.i])
            };
            if name.is_empty() {
                continue;
            }
            return Some((name, value));
        }
    }
}

/// A simple parameter (`boundary`, `charset`): the first with that name.
pub(super) fn param<'a>(params: &'a [u8], name: &str) -> Option<Cow<'a, [u8]>> {
    Params::new(params)
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v)
}

/// A text parameter (`filename`, `name`), decoded: RFC 2231 extended and
/// continued forms (`name*=utf-8''%E4%B8%AD`, `name*0*=…; name*1=…`) win
/// over the plain one, whose RFC 2047 encoded words are decoded.
pub(super) fn text_param(
    params: &[u8],
    name: &str,
    fallback: &'static Encoding,
    notes: &mut Vec<Note>,
) -> Option<String> {
    let name = name.as_bytes();
    let mut plain: Option<Cow<'_, [u8]>> = None;
    let mut segments: Vec<(u32, bool, Cow<'_, [u8]>)> = Vec::new();
    for (n, v) in Params::new(params) {
        if n.len() < name.len() || !n[..name.len()].eq_ignore_ascii_case(name) {
            continue;
        }
        let rest = &n[name.len()..];
        if rest.is_empty() {
            if plain.is_none() {
                plain = Some(v);
            }
            continue;
        }
        let Some(rest) = rest.strip_prefix(b"*") else {
            continue;
        };
        let (digits, extended) = match rest.strip_suffix(b"*") {
            Some(d) => (d, true),
            None => (rest, rest.is_empty()),
        };
        let index = if digits.is_empty() {
            0
        } else if digits.len() <= 4 && digits.iter().all(u8::is_ascii_digit) {
            digits.iter().fold(0u32, |a, d| a * 10 + (d - b'0') as u32)
        } else {
            continue;
        };
        if segments.len() < 256 {
            segments.push((index, extended, v));
        }
    }
    if segments.is_empty() {
        let v = plain?;
        let s = decode_header(&v, fallback, notes);
        return Some(s).filter(|s| !s.is_empty());
    }
    segments.sort_by_key(|s| s.0);
    let mut charset: Option<Vec<u8>> = None;
    let mut bytes = Vec::new();
    for (k, (_, extended, v)) in segments.iter().enumerate() {
        let mut v: &[u8] = v;
        if k == 0 && *extended {
            // charset'language'value
            let mut it = v.splitn(3, |&b| b == b'\'');
            if let (Some(cs), Some(_lang), Some(rest)) = (it.next(), it.next(), it.next()) {
                charset = Some(cs.to_vec());
                v = rest;
            }
        }
        if *extended {
            decode_percent(v, &mut bytes);
        } else {
            bytes.extend_from_slice(v);
        }
    }
    let s = decode_text(Cow::Owned(bytes), charset.as_deref(), fallback, notes);
    Some(s).filter(|s| !s.is_empty())
}
