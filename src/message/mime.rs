//! The MIME structure: header blocks, content types, multipart bodies and
//! nested messages, walked once to list the parts that hold text.
//!
//! Nothing is decoded here except header values (subjects, file names) and
//! nested messages sent with a transfer encoding, whose decoded bytes are
//! kept in [`Walker::buffers`] so the parts inside can point into them.

use std::borrow::Cow;

use memchr::{memchr, memmem};

use super::transfer::{Cte, decode_base64_body, decode_qp, parse_cte};
use super::words::{decode_header, param, split_value, text_param};
use super::{DecodeOptions, MAX_DEPTH_LIMIT, Note, PartKind};

/// The headers a walk needs; values are raw (folded, undecoded).
#[derive(Default)]
pub(super) struct Headers<'a> {
    content_type: Option<&'a [u8]>,
    cte: Option<&'a [u8]>,
    disposition: Option<&'a [u8]>,
    subjects: Vec<&'a [u8]>,
}

/// Splits an entity into its header block and body. `has_headers` is false
/// when the data does not start with a header line (then the body is all of
/// it) or starts with the blank line.
pub(super) fn split_headers(data: &[u8], top: bool) -> (Headers<'_>, &[u8], bool) {
    let mut h = Headers::default();
    let mut pos = 0;
    if top && data.starts_with(b"From ") {
        pos = memchr(b'\n', data).map_or(data.len(), |p| p + 1);
    }
    let mut any = false;
    // (name, value start) of the header being read.
    let mut current: Option<(&[u8], usize)> = None;
    let body_start;
    loop {
        if pos >= data.len() {
            finish(&mut h, current.take(), data, data.len());
            body_start = data.len();
            break;
        }
        let line_end = memchr(b'\n', &data[pos..]).map_or(data.len(), |p| pos + p);
        let next = (line_end + 1).min(data.len());
        let mut line = &data[pos..line_end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.is_empty() {
            finish(&mut h, current.take(), data, pos);
            body_start = next;
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if !any {
                body_start = pos;
                break;
            }
            pos = next;
            continue;
        }
        match header_name(line) {
            Some((name, colon)) => {
                finish(&mut h, current.take(), data, pos);
                current = Some((name, pos + colon + 1));
                any = true;
                pos = next;
            }
            None => {
                finish(&mut h, current.take(), data, pos);
                body_start = pos;
                break;
            }
        }
    }
    (h, &data[body_start..], any)
}

/// `Name:` at the start of a line: the name (trailing blanks allowed before
/// the colon) and the colon's index.
fn header_name(line: &[u8]) -> Option<(&[u8], usize)> {
    let colon = memchr(b':', &line[..line.len().min(256)])?;
    let name = &line[..colon];
    let trimmed = name.trim_ascii_end();
    if trimmed.is_empty() || !trimmed.iter().all(|&b| (0x21..0x7F).contains(&b)) {
        return None;
    }
    Some((trimmed, colon))
}

fn finish<'a>(h: &mut Headers<'a>, cur: Option<(&'a [u8], usize)>, data: &'a [u8], end: usize) {
    let Some((name, start)) = cur else {
        return;
    };
    let value = &data[start.min(end)..end];
    let slot = if name.eq_ignore_ascii_case(b"content-type") {
        &mut h.content_type
    } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
        &mut h.cte
    } else if name.eq_ignore_ascii_case(b"content-disposition") {
        &mut h.disposition
    } else {
        if name.eq_ignore_ascii_case(b"subject") && h.subjects.len() < 8 {
            h.subjects.push(value);
        }
        return;
    };
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// What a content type says about reading a part.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Type {
    Plain,
    Html,
    /// Other text: text/enriched, text/calendar, delivery reports, …
    OtherText,
    Multipart {
        alternative: bool,
        digest: bool,
    },
    Message,
    /// Images, applications, …: only the file name is read.
    Binary,
}

fn classify(token: &[u8]) -> Type {
    let (major, minor) = match memchr(b'/', token) {
        Some(p) => (&token[..p], &token[p + 1..]),
        None => (token, &b""[..]),
    };
    match major {
        b"text" => match minor {
            b"plain" | b"" => Type::Plain,
            b"html" | b"x-html" | b"xhtml" => Type::Html,
            _ => Type::OtherText,
        },
        b"multipart" => Type::Multipart {
            alternative: minor == b"alternative",
            digest: minor == b"digest",
        },
        b"message" => match minor {
            b"rfc822" | b"global" | b"news" => Type::Message,
            b"delivery-status"
            | b"disposition-notification"
            | b"global-delivery-status"
            | b"global-disposition-notification"
            | b"feedback-report" => Type::OtherText,
            _ => Type::Binary,
        },
        b"application" if minor == b"xhtml+xml" => Type::Html,
        b"application" | b"image" | b"audio" | b"video" | b"font" | b"model" => Type::Binary,
        // Missing or malformed: RFC 2045 says text/plain.
        _ if minor.is_empty() => Type::Plain,
        _ => Type::Binary,
    }
}

/// A part that holds text, still transfer-encoded, in buffer `buf` (0 is
/// the raw message, others [`Walker::buffers`]).
pub(super) struct Leaf {
    pub buf: usize,
    pub start: usize,
    pub end: usize,
    pub cte: Cte,
    pub charset: Option<Vec<u8>>,
    pub html: bool,
    pub kind: PartKind,
    pub alt_group: Option<u32>,
}

pub(super) struct Walker<'o> {
    opts: &'o DecodeOptions,
    max_depth: usize,
    pub buffers: Vec<Vec<u8>>,
    pub leaves: Vec<Leaf>,
    pub subjects: Vec<String>,
    pub file_names: Vec<String>,
    pub notes: Vec<Note>,
    parts: usize,
    groups: u32,
    too_many: bool,
    too_deep: bool,
}

/// The default content type of a part with none.
#[derive(Clone, Copy, PartialEq)]
enum DefaultType {
    Text,
    Message,
}

impl<'o> Walker<'o> {
    pub fn new(opts: &'o DecodeOptions) -> Self {
        Walker {
            opts,
            max_depth: opts.max_depth.min(MAX_DEPTH_LIMIT),
            buffers: vec![Vec::new()],
            leaves: Vec::new(),
            subjects: Vec::new(),
            file_names: Vec::new(),
            notes: Vec::new(),
            parts: 0,
            groups: 0,
            too_many: false,
            too_deep: false,
        }
    }

    /// Walks a message (top level when `depth` is 0) held in buffer `buf`.
    pub fn message(
        &mut self,
        buf: usize,
        base: &[u8],
        data: &[u8],
        depth: usize,
        alt: Option<u32>,
    ) {
        let (h, body, has_headers) = split_headers(data, depth == 0);
        if depth == 0 && !has_headers && !data.is_empty() {
            self.notes.push(Note::NoHeaders);
        }
        for s in &h.subjects {
            let text = decode_header(s, self.opts.fallback_charset, &mut self.notes);
            if !text.is_empty() {
                self.subjects.push(text);
            }
        }
        self.entity(buf, base, &h, body, depth, alt, DefaultType::Text);
    }

    #[allow(clippy::too_many_arguments)]
    fn entity(
        &mut self,
        buf: usize,
        base: &[u8],
        h: &Headers<'_>,
        body: &[u8],
        depth: usize,
        alt: Option<u32>,
        default: DefaultType,
    ) {
        if self.parts >= self.opts.max_parts {
            if !self.too_many {
                self.too_many = true;
                self.notes.push(Note::TooManyParts {
                    max: self.opts.max_parts,
                });
            }
            return;
        }
        self.parts += 1;
        let (token, params) = match h.content_type {
            Some(ct) => split_value(ct),
            None => (Vec::new(), &b""[..]),
        };
        let ty = if token.is_empty() && default == DefaultType::Message {
            Type::Message
        } else {
            classify(&token)
        };
        let fallback = self.opts.fallback_charset;
        let mut attachment = false;
        let mut name = None;
        if let Some(d) = h.disposition {
            let (dtoken, dparams) = split_value(d);
            attachment = dtoken == b"attachment";
            name = text_param(dparams, "filename", fallback, &mut self.notes);
        }
        if name.is_none() {
            name = text_param(params, "name", fallback, &mut self.notes);
        }
        // A document attached as a binary type is still read as text.
        let mut named_text = None;
        if let Some(n) = name {
            let lower = n.to_ascii_lowercase();
            if [".htm", ".html", ".shtml", ".xhtml"]
                .iter()
                .any(|e| lower.ends_with(e))
            {
                named_text = Some(true);
            } else if lower.ends_with(".txt") {
                named_text = Some(false);
            }
            if !self.file_names.contains(&n) {
                self.file_names.push(n);
            }
        }
        let cte = match parse_cte(h.cte) {
            Ok(c) => c,
            Err(name) => {
                self.notes.push(Note::UnknownTransferEncoding { name });
                Cte::Identity
            }
        };
        let charset = || param(params, "charset").map(Cow::into_owned);
        match ty {
            Type::Multipart {
                alternative,
                digest,
            } => {
                let boundary = param(params, "boundary").filter(|b| !b.is_empty());
                let room = self.opts.max_parts.saturating_sub(self.parts) + 1;
                let split = boundary
                    .as_deref()
                    .and_then(|b| split_multipart(body, b, room));
                let Some(parts) = split else {
                    self.notes.push(Note::MissingBoundary {
                        boundary: boundary.map(|b| String::from_utf8_lossy(&b).into_owned()),
                    });
                    self.leaf(buf, base, body, cte, charset(), false, PartKind::Plain, alt);
                    return;
                };
                if depth + 1 > self.max_depth {
                    self.deep();
                    return;
                }
                let alt = alt.or_else(|| {
                    alternative.then(|| {
                        self.groups += 1;
                        self.groups - 1
                    })
                });
                let default = if digest {
                    DefaultType::Message
                } else {
                    DefaultType::Text
                };
                for p in parts {
                    let (ph, pbody, _) = split_headers(p, false);
                    self.entity(buf, base, &ph, pbody, depth + 1, alt, default);
                }
            }
            Type::Message => {
                if depth + 1 > self.max_depth {
                    self.deep();
                    return;
                }
                match cte {
                    Cte::Identity => self.message(buf, base, body, depth + 1, alt),
                    Cte::Base64 | Cte::QuotedPrintable => {
                        let mut decoded = Vec::new();
                        if cte == Cte::Base64 {
                            let mut text = Vec::new();
                            let rep = decode_base64_body(body, &mut decoded, &mut text);
                            if rep.is_broken() {
                                self.notes.push(Note::BrokenBase64 {
                                    bad_bytes: rep.bad + rep.text,
                                    read_as_text: false,
                                });
                            }
                            if !text.is_empty() {
                                decoded.push(b'\n');
                                decoded.append(&mut text);
                            }
                        } else {
                            decode_qp(body, &mut decoded);
                        }
                        let id = self.buffers.len();
                        self.buffers.push(Vec::new());
                        self.message(id, &decoded, &decoded, depth + 1, alt);
                        self.buffers[id] = decoded;
                    }
                }
            }
            Type::Plain | Type::Html | Type::OtherText => {
                let html = ty == Type::Html;
                let kind = if attachment || ty == Type::OtherText {
                    PartKind::Other
                } else if html {
                    PartKind::Html
                } else {
                    PartKind::Plain
                };
                self.leaf(buf, base, body, cte, charset(), html, kind, alt);
            }
            Type::Binary => {
                if let Some(html) = named_text {
                    self.leaf(buf, base, body, cte, charset(), html, PartKind::Other, alt);
                }
            }
        }
    }

    fn deep(&mut self) {
        if !self.too_deep {
            self.too_deep = true;
            self.notes.push(Note::TooDeep {
                max: self.max_depth,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &mut self,
        buf: usize,
        base: &[u8],
        body: &[u8],
        cte: Cte,
        charset: Option<Vec<u8>>,
        html: bool,
        kind: PartKind,
        alt: Option<u32>,
    ) {
        if body.is_empty() {
            return;
        }
        let start = offset_in(base, body);
        self.leaves.push(Leaf {
            buf,
            start,
            end: start + body.len(),
            cte,
            charset,
            html,
            kind,
            alt_group: if kind == PartKind::Other { None } else { alt },
        });
    }
}

/// Where `inner`, a subslice of `outer`, starts in it.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    let off = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
    debug_assert!(off + inner.len() <= outer.len());
    off.min(outer.len())
}

/// The parts of a multipart body (at most `max`), or `None` when no
/// delimiter line `--boundary` is found. The line break before a delimiter
/// belongs to it; preamble and epilogue are not parts. A missing close
/// delimiter ends the last part at the end of the body.
fn split_multipart<'a>(body: &'a [u8], boundary: &[u8], max: usize) -> Option<Vec<&'a [u8]>> {
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut found = false;
    for pos in memmem::find_iter(body, &delim) {
        if pos > 0 && body[pos - 1] != b'\n' {
            continue;
        }
        let after = pos + delim.len();
        let close = body[after..].starts_with(b"--");
        let line_end = memchr(b'\n', &body[after..]).map_or(body.len(), |p| after + p);
        if !close
            && !body[after..line_end]
                .iter()
                .all(|&b| b == b' ' || b == b'\t' || b == b'\r')
        {
            continue;
        }
        found = true;
        if let Some(s) = start.take() {
            let mut e = pos;
            if e > s && body[e - 1] == b'\n' {
                e -= 1;
                if e > s && body[e - 1] == b'\r' {
                    e -= 1;
                }
            }
            parts.push(&body[s..e]);
            if parts.len() >= max {
                return Some(parts);
            }
        }
        if close {
            break;
        }
        start = Some((line_end + 1).min(body.len()));
    }
    if let Some(s) = start {
        parts.push(&body[s..]);
    }
    found.then_some(parts)
}
