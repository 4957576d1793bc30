//! Charset names and the decoding policy for bytes of text.
//!
//! Names are looked up as the WHATWG Encoding Standard labels them, then
//! through a table of the aliases real mail uses (`GB-2312`, `cp936`,
//! `ks_c_5601-1987`, `utf8`, `x-sjis`, …), compared after dropping case,
//! quotes and punctuation. UTF-7 and HZ-GB-2312 have no `Encoding` and are
//! decoded here; the other ISO-2022 variants are unknown.
//!
//! The policy ([`decode_text`]): bytes with no usable charset are UTF-8 when
//! valid, else the fallback charset; bytes declared in a legacy charset that
//! are valid UTF-8 with several multi-byte characters are UTF-8 mislabelled;
//! bytes declared UTF-8 that are mostly invalid are decoded with the
//! fallback. Every departure from the declared charset is a [`Note`].

use std::borrow::Cow;

use encoding_rs::{
    BIG5, EUC_JP, EUC_KR, Encoding, GB18030, GBK, IBM866, ISO_2022_JP, KOI8_R, KOI8_U, MACINTOSH,
    REPLACEMENT, SHIFT_JIS, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_874, X_MAC_CYRILLIC,
};

use super::Note;

/// A charset this module can decode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Charset {
    Enc(&'static Encoding),
    /// US-ASCII: decoded as if no charset were declared (8-bit bytes under
    /// it are a lie; the declaration says nothing about them).
    Ascii,
    /// A name that declares nothing (`DEFAULT_CHARSET`, `unknown-8bit`):
    /// decoded as if no charset were declared.
    Placeholder,
    Utf7,
    Hz,
}

/// The charset a declared name stands for, or `None` when unknown.
pub(super) fn lookup(name: &[u8]) -> Option<Charset> {
    let name = trim_name(name);
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    let mut buf = [0u8; 64];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let lower = &*lower;

    let mut cbuf = [0u8; 64];
    let mut n = 0;
    for &b in lower {
        if b.is_ascii_alphanumeric() {
            cbuf[n] = b;
            n += 1;
        }
    }
    let mut compact = &cbuf[..n];
    if is_ascii_name(compact) {
        return Some(Charset::Ascii);
    }
    if matches!(
        compact,
        b"default"
            | b"defaultcharset"
            | b"unknown8bit"
            | b"unknown"
            | b"xunknown"
            | b"none"
            | b"charset"
            | b"8bit"
    ) {
        return Some(Charset::Placeholder);
    }
    if let Some(e) = Encoding::for_label(lower) {
        if e != REPLACEMENT {
            return Some(Charset::Enc(e));
        }
        return match compact {
            b"hzgb2312" => Some(Charset::Hz),
            _ => None,
        };
    }
    // Windows font charset names: `GB2312_CHARSET`.
    if compact.len() > 7 && compact.ends_with(b"charset") {
        compact = &compact[..compact.len() - 7];
    }
    if let Some(c) = alias(compact) {
        return Some(c);
    }
    if (lower.starts_with(b"x-") || lower.starts_with(b"x_")) && compact.len() > 1 {
        return alias(&compact[1..]);
    }
    None
}

fn trim_name(name: &[u8]) -> &[u8] {
    let junk = |b: &u8| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b';' | b',' | b'\\');
    let start = name.iter().position(|b| !junk(b)).unwrap_or(name.len());
    let end = name.iter().rposition(|b| !junk(b)).map_or(start, |p| p + 1);
    &name[start..end.max(start)]
}

fn is_ascii_name(compact: &[u8]) -> bool {
    matches!(
        compact,
        b"usascii"
            | b"ascii"
            | b"ansix341968"
            | b"ansix341986"
            | b"iso646us"
            | b"isoir6"
            | b"us"
            | b"cp367"
            | b"ibm367"
            | b"csascii"
            | b"646"
    )
}

/// Aliases in compact form (lowercase ASCII letters and digits only).
fn alias(c: &[u8]) -> Option<Charset> {
    let e = match c {
        b"utf8" | b"unicode11utf8" | b"unicode20utf8" | b"utf" => UTF_8,
        b"utf7" | b"unicode11utf7" | b"unicode20utf7" | b"csunicode11utf7" => {
            return Some(Charset::Utf7);
        }
        b"hz" | b"hzgb2312" | b"hzgb" => return Some(Charset::Hz),
        b"gb2312" | b"gb231280" | b"gb23121980" | b"gbk" | b"cp936" | b"ms936" | b"windows936"
        | b"euccn" | b"cngb" | b"gb" | b"chinese" | b"csgb2312" | b"gb2312gbk" | b"936" => GBK,
        b"gb18030" | b"gb180302000" | b"gb180302005" | b"gb18030200" => GB18030,
        b"big5" | b"big5hkscs" | b"cp950" | b"ms950" | b"windows950" | b"cnbig5" | b"csbig5"
        | b"big5et" | b"950" | b"big" => BIG5,
        b"shiftjis" | b"sjis" | b"mskanji" | b"cp932" | b"ms932" | b"windows31j"
        | b"windows932" | b"csshiftjis" | b"shiftjis2004" | b"sjisopen" | b"932" => SHIFT_JIS,
        b"eucjp" | b"ujis" | b"cseucpkdfmtjapanese" | b"eucjpms" => EUC_JP,
        b"iso2022jp" | b"csiso2022jp" | b"jis" | b"iso2022jp1" | b"iso2022jp2" | b"jis7" => {
            ISO_2022_JP
        }
        b"euckr" | b"ksc56011987" | b"ksc5601" | b"ksc56011989" | b"cp949" | b"ms949"
        | b"windows949" | b"uhc" | b"korean" | b"csksc56011987" | b"ks" | b"949" => EUC_KR,
        b"koi8r" | b"koi8" | b"koi" | b"cskoi8r" => KOI8_R,
        b"koi8u" | b"koi8ru" => KOI8_U,
        b"utf16" | b"ucs2" | b"unicode" | b"utf16le" | b"ucs2le" => UTF_16LE,
        b"utf16be" | b"unicodefffe" | b"ucs2be" => UTF_16BE,
        b"tis620" | b"cp874" | b"windows874" | b"iso885911" | b"874" => WINDOWS_874,
        b"cp866" | b"ibm866" | b"866" => IBM866,
        b"macintosh" | b"mac" | b"macroman" => MACINTOSH,
        b"maccyrillic" => X_MAC_CYRILLIC,
        _ => return numbered(c),
    };
    Some(Charset::Enc(e))
}

/// `iso8859N`, `windows125N`/`cp125N`/`win125N`/`ms125N`, `latinN`.
fn numbered(c: &[u8]) -> Option<Charset> {
    let digits = |s: &[u8]| !s.is_empty() && s.len() <= 2 && s.iter().all(u8::is_ascii_digit);
    let mut label = Vec::with_capacity(16);
    if let Some(n) = c.strip_prefix(b"iso8859").filter(|n| digits(n)) {
        label.extend_from_slice(b"iso-8859-");
        label.extend_from_slice(n);
    } else if let Some(n) = [&b"windows"[..], b"win", b"cp", b"ms"]
        .iter()
        .find_map(|p| c.strip_prefix(*p))
        .and_then(|r| r.strip_prefix(b"125"))
        .filter(|n| n.len() == 1 && n[0].is_ascii_digit())
    {
        label.extend_from_slice(b"windows-125");
        label.extend_from_slice(n);
    } else if let Some(n) = c.strip_prefix(b"latin").filter(|n| digits(n)) {
        label.extend_from_slice(b"latin");
        label.extend_from_slice(n);
    } else {
        return None;
    }
    Encoding::for_label(&label)
        .filter(|e| *e != REPLACEMENT)
        .map(Charset::Enc)
}

/// The [`Encoding`] a charset name maps to, with the same names and aliases
/// the decoder accepts (case, quotes and punctuation do not matter).
///
/// Meant for validating a configured fallback charset. Returns `None` for
/// unknown names and for the charsets decoded without an `Encoding` (UTF-7,
/// HZ) and for names that declare nothing (`DEFAULT_CHARSET`); US-ASCII
/// maps to windows-1252, its superset.
pub fn charset_by_name(name: &str) -> Option<&'static Encoding> {
    match lookup(name.as_bytes())? {
        Charset::Enc(e) => Some(e),
        Charset::Ascii => Some(encoding_rs::WINDOWS_1252),
        Charset::Utf7 | Charset::Hz | Charset::Placeholder => None,
    }
}

/// Decodes `bytes`, declared in charset `declared` (a raw parameter value,
/// `None` when absent), following the module's policy.
pub(super) fn decode_text(
    bytes: Cow<'_, [u8]>,
    declared: Option<&[u8]>,
    fallback: &'static Encoding,
    notes: &mut Vec<Note>,
) -> String {
    let declared = declared.map(trim_name).filter(|d| !d.is_empty());
    let charset = match declared {
        None => None,
        Some(name) => {
            let c = lookup(name);
            if c.is_none() {
                notes.push(Note::UnknownCharset { name: lossy(name) });
            }
            c
        }
    };
    match charset {
        None | Some(Charset::Ascii | Charset::Placeholder) => {
            undeclared(bytes, declared, fallback, notes)
        }
        Some(Charset::Enc(e)) if e == UTF_8 => declared_utf8(bytes, fallback, notes),
        Some(Charset::Enc(e)) => legacy(bytes, e, declared, notes),
        Some(Charset::Utf7) => {
            let (s, errors) = decode_utf7(&bytes);
            if errors > 0 {
                notes.push(Note::MalformedText {
                    charset: "UTF-7",
                    replaced: errors,
                });
            }
            s
        }
        Some(Charset::Hz) => {
            let gbk = hz_to_gbk(&bytes);
            with_encoding(Cow::Owned(gbk), GBK, notes)
        }
    }
}

/// `b` as a `String`, invalid sequences replaced. Valid input (nearly all
/// of it) is checked by `str::from_utf8`, which runs through ASCII a word
/// at a time, several times faster than the lossy decoder's chunks.
fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// No charset, an unknown one, or US-ASCII.
fn undeclared(
    bytes: Cow<'_, [u8]>,
    declared: Option<&[u8]>,
    fallback: &'static Encoding,
    notes: &mut Vec<Note>,
) -> String {
    let bytes = match utf8_string(bytes) {
        Ok(s) => {
            // Plain ASCII is what any declaration would read alike.
            if let Some(d) = declared
                && !s.is_ascii()
            {
                notes.push(Note::CharsetFallback {
                    declared: Some(lossy(d)),
                    used: "UTF-8",
                });
            }
            return s;
        }
        Err(bytes) => bytes,
    };
    notes.push(Note::CharsetFallback {
        declared: declared.map(lossy),
        used: fallback.name(),
    });
    with_encoding(bytes, fallback, notes)
}

/// Declared UTF-8: invalid sequences are replaced, unless there are more of
/// them than valid multi-byte characters and the fallback charset reads the
/// bytes with fewer errors: then the text is in that charset.
fn declared_utf8(
    bytes: Cow<'_, [u8]>,
    fallback: &'static Encoding,
    notes: &mut Vec<Note>,
) -> String {
    // Valid (nearly always): no need to count characters and errors.
    let bytes = match utf8_string(bytes) {
        Ok(s) => return s,
        Err(bytes) => bytes,
    };
    let (valid_multibyte, errors) = utf8_profile(&bytes);
    if errors > valid_multibyte {
        let (text, had_errors) = fallback.decode_without_bom_handling(&bytes);
        let replaced = if had_errors {
            count_replacements(&text)
        } else {
            0
        };
        if replaced < errors {
            let text = text.into_owned();
            notes.push(Note::CharsetFallback {
                declared: Some("utf-8".into()),
                used: fallback.name(),
            });
            if replaced > 0 {
                notes.push(Note::MalformedText {
                    charset: fallback.name(),
                    replaced,
                });
            }
            return text;
        }
    }
    let s = String::from_utf8_lossy(&bytes).into_owned();
    notes.push(Note::MalformedText {
        charset: "UTF-8",
        replaced: count_replacements(&s),
    });
    s
}

/// A legacy charset, unless the bytes are plainly UTF-8.
fn legacy(
    mut bytes: Cow<'_, [u8]>,
    e: &'static Encoding,
    declared: Option<&[u8]>,
    notes: &mut Vec<Note>,
) -> String {
    if (e.is_ascii_compatible() || e == ISO_2022_JP) && !bytes.is_ascii() {
        // ISO-2022-JP is 7-bit: any valid multi-byte UTF-8 is a mislabel.
        let needed = if e == ISO_2022_JP { 1 } else { 4 };
        // Validated once: the string is the answer or gives its bytes back.
        bytes = match utf8_string(bytes) {
            Ok(s)
                if s.chars()
                    .filter(|c| !c.is_ascii())
                    .nth(needed - 1)
                    .is_some() =>
            {
                notes.push(Note::CharsetFallback {
                    declared: declared.map(lossy),
                    used: "UTF-8",
                });
                return s;
            }
            Ok(s) => Cow::Owned(s.into_bytes()),
            Err(b) => b,
        };
    }
    with_encoding(bytes, e, notes)
}

/// Decodes with `e` (a byte order mark overrides it), noting replacements.
fn with_encoding(bytes: Cow<'_, [u8]>, e: &'static Encoding, notes: &mut Vec<Note>) -> String {
    let (text, used, errors) = e.decode(&bytes);
    if errors {
        let s = text.into_owned();
        notes.push(Note::MalformedText {
            charset: used.name(),
            replaced: count_replacements(&s),
        });
        return s;
    }
    match text {
        Cow::Owned(s) => s,
        // Borrowed means the bytes are the text: reuse an owned buffer.
        Cow::Borrowed(_) => into_string(bytes),
    }
}

fn count_replacements(s: &str) -> usize {
    memchr::memmem::find_iter(s.as_bytes(), "\u{FFFD}".as_bytes()).count()
}

/// The bytes as a `String` if they are valid UTF-8 (checked once, not
/// copied when already owned), else the bytes back.
fn utf8_string(bytes: Cow<'_, [u8]>) -> Result<String, Cow<'_, [u8]>> {
    match bytes {
        Cow::Owned(v) => String::from_utf8(v).map_err(|e| Cow::Owned(e.into_bytes())),
        Cow::Borrowed(b) => std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| Cow::Borrowed(b)),
    }
}

/// Valid UTF-8 bytes as a `String` without copying when already owned
/// (invalid sequences, should there be any, replaced).
fn into_string(bytes: Cow<'_, [u8]>) -> String {
    utf8_string(bytes).unwrap_or_else(|b| String::from_utf8_lossy(&b).into_owned())
}

/// (valid multi-byte characters, invalid sequences) of a byte string.
fn utf8_profile(mut b: &[u8]) -> (usize, usize) {
    let mut valid = 0;
    let mut errors = 0;
    loop {
        match std::str::from_utf8(b) {
            Ok(s) => {
                valid += s.bytes().filter(|&c| c >= 0xC0).count();
                return (valid, errors);
            }
            Err(e) => {
                let (good, rest) = b.split_at(e.valid_up_to());
                valid += good.iter().filter(|&&c| c >= 0xC0).count();
                errors += 1;
                match e.error_len() {
                    Some(n) => b = &rest[n..],
                    None => return (valid, errors),
                }
            }
        }
    }
}

/// UTF-7 (RFC 2152). Returns the text and the number of replaced sequences.
pub(super) fn decode_utf7(src: &[u8]) -> (String, usize) {
    let mut out = String::with_capacity(src.len());
    let mut errors = 0;
    let mut units: Vec<u16> = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b != b'+' {
            if b.is_ascii() {
                out.push(b as char);
            } else {
                out.push('\u{FFFD}');
                errors += 1;
            }
            i += 1;
            continue;
        }
        i += 1;
        if src.get(i) == Some(&b'-') {
            out.push('+');
            i += 1;
            continue;
        }
        units.clear();
        let (mut acc, mut bits) = (0u32, 0u32);
        while let Some(v) = src.get(i).and_then(|&c| b64_value(c)) {
            acc = (acc << 6) | v as u32;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push((acc >> bits) as u16);
                acc &= (1 << bits) - 1;
            }
            i += 1;
        }
        for c in char::decode_utf16(units.iter().copied()) {
            out.push(c.unwrap_or_else(|_| {
                errors += 1;
                '\u{FFFD}'
            }));
        }
        if src.get(i) == Some(&b'-') {
            i += 1;
        }
    }
    (out, errors)
}

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// HZ-GB-2312 (RFC 1843) to GBK bytes: `~{` … `~}` hold GB 2312 pairs with
/// the high bits cleared.
pub(super) fn hz_to_gbk(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut gb = false;
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b == b'~' {
            match src.get(i + 1) {
                Some(b'{') => {
                    gb = true;
                    i += 2;
                    continue;
                }
                Some(b'}') => {
                    gb = false;
                    i += 2;
                    continue;
                }
                Some(b'~') if !gb => {
                    out.push(b'~');
                    i += 2;
                    continue;
                }
                Some(b'\n') => {
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        if b == b'\n' || b == b'\r' {
            gb = false;
        }
        if gb
            && (0x21..=0x7E).contains(&b)
            && let Some(&t) = src.get(i + 1).filter(|t| (0x21..=0x7E).contains(*t))
        {
            out.push(b | 0x80);
            out.push(t | 0x80);
            i += 2;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}
