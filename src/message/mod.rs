//! Message text extraction: raw RFC 822 bytes to the texts to scan, and a
//! record of what could not be read as declared.
//!
//! ```text
//! raw ──walk──▶ subjects, file names, [text parts (still encoded)]
//!      └─budget──▶ subject ▶ plain/html parts ▶ link hosts, file names ▶ other text
//!                  (transfer decoding ▶ charset decoding ▶ HTML to text)
//! ```
//!
//! [`decode`] reads the subject (RFC 2047 encoded words in any charset),
//! every text/plain and text/html part at any depth (multiparts and nested
//! message/rfc822, base64 or quoted-printable), the host names of HTML
//! links and images (and image `alt` text), attachment file names (RFC
//! 2231 and RFC 2047 forms), and other text parts when room is left:
//! text/enriched and the like, text sent as an attachment, documents named
//! `.htm`/`.html`/`.txt` under a binary type, delivery reports.
//!
//! # Invariants
//!
//! * [`decode`] never panics and always returns, whatever the bytes; its
//!   work is linear in the input for a given nesting depth, and the depth
//!   is capped ([`DecodeOptions::max_depth`], at most [`MAX_DEPTH_LIMIT`]).
//! * No text is dropped silently: whatever was not read as declared, or not
//!   read at all, is a [`Note`] in [`Decoded::notes`]. Parts that carry no
//!   text (images, applications) are not read, by design, and get no note;
//!   neither do MIME preambles and epilogues, which mail clients never show.
//! * Every [`TextPart::text`] is non-empty and free of NUL characters, and
//!   the sum of their lengths, [`Decoded::text_bytes`], is at most
//!   [`DecodeOptions::max_text_bytes`]. The budget goes, in this order, to
//!   subjects, plain and HTML parts in message order, link hosts and file
//!   names, then other text parts; what does not fit is cut
//!   ([`Note::Truncated`]) or not decoded at all ([`Note::Skipped`]).
//! * Parts of one multipart/alternative share an [`TextPart::alt_group`]:
//!   they are renderings of the same content, so a caller counting matches
//!   must count an entry once per group (the maximum of its counts over the
//!   group's parts) and add up counts across groups and ungrouped parts.
//!
//! # Charsets
//!
//! Charset names are matched leniently (quotes, case, punctuation and the
//! usual aliases such as `GB-2312`, `cp936`, `x-gbk`, `utf8`,
//! `ks_c_5601-1987`, `unicode-1-1-utf-7`); an unknown name counts as none.
//! Text with no usable charset is UTF-8 when it is valid UTF-8, else it is
//! read with [`DecodeOptions::fallback_charset`] (GB18030 by default). Text
//! declared in a legacy charset that is valid UTF-8 with several multi-byte
//! characters is read as UTF-8; text declared UTF-8 with more invalid
//! sequences than valid multi-byte ones is read with the fallback when that
//! reads it with fewer errors. US-ASCII and names that declare nothing
//! (`DEFAULT_CHARSET`, `unknown-8bit`) count as no charset. An HTML
//! part without a usable charset in its header uses the one its `<meta>`
//! declares.
//!
//! # Costs traded
//!
//! The MIME walk is written here rather than taken from a general mail
//! parser because every decision must leave a note and raw bytes must be
//! re-read under another charset: one pass finds the parts (borrowing the
//! input; only nested messages sent base64 or quoted-printable are copied),
//! and each text part is transfer-decoded and charset-decoded once, reusing
//! the buffer when the bytes are already UTF-8. A part that straddles the
//! text budget is decoded whole and then cut, so the note can say how much
//! was lost; parts after it are not decoded. HTML is reduced by a small
//! tokenizer, not a DOM: no tree, no CSS, so text hidden by styles is kept
//! (more text to scan, never less).
//!
//! Modules: `mime` (header blocks, content types, multipart splitting),
//! `words` (encoded words, parameters), `transfer` (base64,
//! quoted-printable), `charset` (names and decoding policy), `html`
//! (HTML to text, hosts).

mod charset;
mod html;
mod mime;
mod transfer;
mod words;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

pub use charset::charset_by_name;
pub use encoding_rs::Encoding;

use charset::{Charset, decode_text, lookup};
use html::HostSet;
use mime::{Leaf, Walker};
use transfer::{Cte, decode_base64_body, decode_qp};

/// The largest nesting depth [`decode`] follows, whatever the options say
/// (it bounds the recursion).
pub const MAX_DEPTH_LIMIT: usize = 64;

/// Bytes of an HTML part searched for a `<meta>` charset.
const META_SNIFF_BYTES: usize = 4096;

/// Most notes kept; more become one [`Note::Omitted`].
const MAX_NOTES: usize = 64;

/// Limits and choices of [`decode`].
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// Most bytes of text returned, all parts together (default 1 MiB).
    pub max_text_bytes: usize,
    /// Most MIME entities examined, containers included (default 256).
    pub max_parts: usize,
    /// Deepest nesting examined: each multipart level and each nested
    /// message adds one (default 16, at most [`MAX_DEPTH_LIMIT`]).
    pub max_depth: usize,
    /// Charset for 8-bit text with no usable charset that is not UTF-8
    /// (default GB18030). [`charset_by_name`] turns a name into one.
    pub fallback_charset: &'static Encoding,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_text_bytes: 1 << 20,
            max_parts: 256,
            max_depth: 16,
            fallback_charset: encoding_rs::GB18030,
        }
    }
}

/// What a [`TextPart`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartKind {
    /// A Subject header, decoded (one part per message, nested ones too).
    Subject,
    /// A text/plain part (or a multipart body without boundary lines).
    Plain,
    /// The text of a text/html part.
    Html,
    /// Distinct host names of HTML links, images, forms and redirects, one
    /// per line, lowercased.
    LinkHosts,
    /// Distinct attachment file names, one per line.
    FileNames,
    /// Other text: text/* subtypes besides plain and html, text parts sent
    /// as attachments, `.htm`/`.html`/`.txt` files under a binary type,
    /// delivery reports.
    Other,
}

impl PartKind {
    /// A short lowercase name, for logs and records.
    pub fn name(self) -> &'static str {
        match self {
            PartKind::Subject => "subject",
            PartKind::Plain => "plain",
            PartKind::Html => "html",
            PartKind::LinkHosts => "link-hosts",
            PartKind::FileNames => "file-names",
            PartKind::Other => "other",
        }
    }
}

/// One text to scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextPart {
    pub kind: PartKind,
    /// Non-empty, without NUL characters.
    pub text: String,
    /// The multipart/alternative this part is one rendering of, if any:
    /// count an entry once per group (the maximum over the group's parts).
    /// Groups are numbered from 0 in message order; a part inside nested
    /// alternatives belongs to the outermost one.
    pub alt_group: Option<u32>,
}

/// Something that could not be read as declared, or was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// The input does not start with a header block: all of it was read as
    /// a text/plain body.
    NoHeaders,
    /// A declared charset is unknown: the text was read as if none were
    /// declared (see [`Note::CharsetFallback`]).
    UnknownCharset { name: String },
    /// Text was read with `used` instead of its declared charset
    /// (`declared` is `None` when none was declared): no charset, an unknown
    /// one or US-ASCII over 8-bit bytes, UTF-8 mislabelled, or mostly
    /// invalid UTF-8.
    CharsetFallback {
        declared: Option<String>,
        used: &'static str,
    },
    /// Bytes invalid in `charset` were replaced by U+FFFD, `replaced` times.
    MalformedText {
        charset: &'static str,
        replaced: usize,
    },
    /// Base64 with `bad_bytes` foreign bytes or a dangling last character:
    /// what could be decoded was, and lines that are plainly text (a footer
    /// appended after the data) were read as text after it; with
    /// `read_as_text`, so much was foreign that the whole part was read
    /// undecoded, as text.
    BrokenBase64 {
        bad_bytes: usize,
        read_as_text: bool,
    },
    /// An unknown Content-Transfer-Encoding: the part was read as is.
    UnknownTransferEncoding { name: String },
    /// A multipart without a boundary parameter or without any boundary
    /// line: its body was read as one text/plain part.
    MissingBoundary { boundary: Option<String> },
    /// More MIME entities than `max`: the rest were not examined.
    TooManyParts { max: usize },
    /// Nesting deeper than `max`: deeper entities were not examined.
    TooDeep { max: usize },
    /// A part cut by the text budget: `kept` of its `total` text bytes.
    Truncated {
        kind: PartKind,
        kept: usize,
        total: usize,
    },
    /// Parts not decoded because the text budget was spent: how many, and
    /// their encoded size (or text size for subjects, hosts and names).
    Skipped {
        kind: PartKind,
        parts: usize,
        bytes: usize,
    },
    /// NUL characters removed from the text.
    NulBytes { removed: usize },
    /// More notes than fit in a record; `count` were left out.
    Omitted { count: usize },
}

impl Note {
    /// A short stable name of the note's kind, for counters and records.
    pub fn kind(&self) -> &'static str {
        match self {
            Note::NoHeaders => "no-headers",
            Note::UnknownCharset { .. } => "unknown-charset",
            Note::CharsetFallback { .. } => "charset-fallback",
            Note::MalformedText { .. } => "malformed-text",
            Note::BrokenBase64 { .. } => "broken-base64",
            Note::UnknownTransferEncoding { .. } => "unknown-transfer-encoding",
            Note::MissingBoundary { .. } => "missing-boundary",
            Note::TooManyParts { .. } => "too-many-parts",
            Note::TooDeep { .. } => "too-deep",
            Note::Truncated { .. } => "truncated",
            Note::Skipped { .. } => "skipped",
            Note::NulBytes { .. } => "nul-bytes",
            Note::Omitted { .. } => "omitted",
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::NoHeaders => write!(f, "no header block, read as a plain body"),
            Note::UnknownCharset { name } => write!(f, "unknown charset {name:?}"),
            Note::CharsetFallback {
                declared: Some(d),
                used,
            } => write!(f, "declared charset {d:?}, read as {used}"),
            Note::CharsetFallback {
                declared: None,
                used,
            } => {
                write!(f, "no charset, read as {used}")
            }
            Note::MalformedText { charset, replaced } => {
                write!(f, "{replaced} malformed sequences in {charset} replaced")
            }
            Note::BrokenBase64 {
                bad_bytes,
                read_as_text,
            } => {
                write!(f, "broken base64 ({bad_bytes} foreign bytes)")?;
                if *read_as_text {
                    write!(f, ", read as text")?;
                }
                Ok(())
            }
            Note::UnknownTransferEncoding { name } => {
                write!(f, "unknown transfer encoding {name:?}, read as is")
            }
            Note::MissingBoundary { boundary: Some(b) } => {
                write!(f, "multipart boundary {b:?} not found, body read as text")
            }
            Note::MissingBoundary { boundary: None } => {
                write!(f, "multipart without boundary, body read as text")
            }
            Note::TooManyParts { max } => write!(f, "more than {max} parts, rest not read"),
            Note::TooDeep { max } => write!(f, "nested deeper than {max}, not read"),
            Note::Truncated { kind, kept, total } => {
                write!(f, "{} cut to {kept} of {total} bytes", kind.name())
            }
            Note::Skipped { kind, parts, bytes } => {
                write!(f, "{parts} {} parts ({bytes} bytes) not read", kind.name())
            }
            Note::NulBytes { removed } => write!(f, "{removed} NUL characters removed"),
            Note::Omitted { count } => write!(f, "{count} more notes"),
        }
    }
}

/// The result of [`decode`].
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    /// Texts in budget order: subjects, plain and HTML parts in message
    /// order, link hosts, file names, other text (and hosts found there).
    pub parts: Vec<TextPart>,
    /// Problems met, in the order met; duplicates merged.
    pub notes: Vec<Note>,
    /// Total bytes of `parts` texts.
    pub text_bytes: usize,
}

impl Decoded {
    /// The texts of one kind, in order.
    pub fn texts(&self, kind: PartKind) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .filter(move |p| p.kind == kind)
            .map(|p| p.text.as_str())
    }
}

/// Extracts the texts of a raw message (header lines, blank line, body;
/// CRLF or LF line ends). See the module documentation.
pub fn decode(raw: &[u8], opts: &DecodeOptions) -> Decoded {
    let mut w = Walker::new(opts);
    w.message(0, raw, raw, 0, None);
    let Walker {
        buffers,
        leaves,
        subjects,
        file_names,
        notes,
        ..
    } = w;
    let mut b = Budget {
        parts: Vec::new(),
        notes,
        left: opts.max_text_bytes,
        used: 0,
        nul: 0,
        skipped: Vec::new(),
    };
    for s in subjects {
        b.push(PartKind::Subject, s, None, false);
    }
    let mut hosts = HostSet::default();
    let (main, other): (Vec<&Leaf>, Vec<&Leaf>) =
        leaves.iter().partition(|l| l.kind != PartKind::Other);
    for leaf in main {
        b.leaf(leaf, raw, &buffers, &mut hosts, opts);
    }
    b.push(PartKind::LinkHosts, hosts.take_new(), None, true);
    b.push(PartKind::FileNames, file_names.join("\n"), None, true);
    for leaf in other {
        b.leaf(leaf, raw, &buffers, &mut hosts, opts);
    }
    b.push(PartKind::LinkHosts, hosts.take_new(), None, true);
    b.finish()
}

/// Hands out the text budget.
struct Budget {
    parts: Vec<TextPart>,
    notes: Vec<Note>,
    left: usize,
    used: usize,
    nul: usize,
    skipped: Vec<(PartKind, usize, usize)>,
}

impl Budget {
    fn skip(&mut self, kind: PartKind, bytes: usize) {
        match self.skipped.iter_mut().find(|s| s.0 == kind) {
            Some(s) => {
                s.1 += 1;
                s.2 += bytes;
            }
            None => self.skipped.push((kind, 1, bytes)),
        }
    }

    /// Adds a text, cut to the budget (at a line end when `lines`).
    fn push(&mut self, kind: PartKind, mut text: String, alt_group: Option<u32>, lines: bool) {
        if text.contains('\0') {
            let before = text.len();
            text.retain(|c| c != '\0');
            self.nul += before - text.len();
        }
        if text.trim().is_empty() {
            return;
        }
        if self.left == 0 {
            self.skip(kind, text.len());
            return;
        }
        if text.len() > self.left {
            let mut kept = text.floor_char_boundary(self.left);
            if lines {
                kept = text[..kept].rfind('\n').unwrap_or(0);
            }
            self.notes.push(Note::Truncated {
                kind,
                kept,
                total: text.len(),
            });
            text.truncate(kept);
            self.left = 0;
            if text.is_empty() {
                return;
            }
        } else {
            self.left -= text.len();
        }
        self.used += text.len();
        self.parts.push(TextPart {
            kind,
            text,
            alt_group,
        });
    }

    fn leaf(
        &mut self,
        leaf: &Leaf,
        raw: &[u8],
        buffers: &[Vec<u8>],
        hosts: &mut HostSet,
        opts: &DecodeOptions,
    ) {
        let base: &[u8] = if leaf.buf == 0 {
            raw
        } else {
            buffers.get(leaf.buf).map_or(&[], Vec::as_slice)
        };
        let body = base.get(leaf.start..leaf.end).unwrap_or_default();
        if self.left == 0 {
            self.skip(leaf.kind, body.len());
            return;
        }
        let content: Cow<'_, [u8]> = match leaf.cte {
            Cte::Identity => Cow::Borrowed(body),
            Cte::Base64 => {
                let (mut v, mut t) = (Vec::new(), Vec::new());
                let rep = decode_base64_body(body, &mut v, &mut t);
                if rep.looks_like_text() {
                    self.notes.push(Note::BrokenBase64 {
                        bad_bytes: rep.bad + rep.text,
                        read_as_text: true,
                    });
                    Cow::Borrowed(body)
                } else {
                    if rep.is_broken() {
                        self.notes.push(Note::BrokenBase64 {
                            bad_bytes: rep.bad + rep.text,
                            read_as_text: false,
                        });
                    }
                    if !t.is_empty() {
                        v.push(b'\n');
                        v.append(&mut t);
                    }
                    Cow::Owned(v)
                }
            }
            Cte::QuotedPrintable => {
                let mut v = Vec::new();
                decode_qp(body, &mut v);
                Cow::Owned(v)
            }
        };
        let declared = leaf.charset.as_deref();
        let usable = |c: &[u8]| {
            lookup(c).is_some_and(|c| !matches!(c, Charset::Ascii | Charset::Placeholder))
        };
        let mut meta: Option<Vec<u8>> = None;
        if leaf.html && !declared.is_some_and(usable) {
            let head = &content[..content.len().min(META_SNIFF_BYTES)];
            meta = html::meta_charset(head)
                .filter(|m| usable(m))
                .map(<[u8]>::to_vec);
        }
        let charset = meta.as_deref().or(declared);
        let text = decode_text(content, charset, opts.fallback_charset, &mut self.notes);
        let text = if leaf.html {
            html::strip(&text, hosts)
        } else {
            text
        };
        self.push(leaf.kind, text, leaf.alt_group, false);
    }

    fn finish(mut self) -> Decoded {
        if self.nul > 0 {
            self.notes.push(Note::NulBytes { removed: self.nul });
        }
        for (kind, parts, bytes) in std::mem::take(&mut self.skipped) {
            self.notes.push(Note::Skipped { kind, parts, bytes });
        }
        let mut notes: Vec<Note> = Vec::with_capacity(self.notes.len().min(MAX_NOTES));
        let mut omitted = 0;
        for n in self.notes {
            if notes.contains(&n) {
                continue;
            }
            if notes.len() < MAX_NOTES {
                notes.push(n);
            } else {
                omitted += 1;
            }
        }
        if omitted > 0 {
            notes.push(Note::Omitted { count: omitted });
        }
        Decoded {
            parts: self.parts,
            notes,
            text_bytes: self.used,
        }
    }
}
