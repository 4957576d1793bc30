//! The scan: every library entry present in a text, with its count.
//!
//! The text is normalized into the scanner's buffer and padded with eight
//! NUL bytes, so every position can read an 8-byte window without a bounds
//! branch; NUL never occurs in a normalized string, so padding cannot
//! complete a keyword or a string.
//!
//! For each byte position `i` of the text:
//!
//! 1. the 4-byte window (and the 8-byte window, when the library has 8-byte
//!    keywords) is hashed and tested against its bitmap;
//! 2. if the byte starts some string shorter than 4 bytes (a 256-entry
//!    table), those 1–3 byte keys are tested against the short bitmap;
//! 3. only on a bitmap hit is the table consulted; on a keyword hit the
//!    list is walked and each candidate verified at `i - kw_off`: a masked
//!    compare of its first 8 bytes, then its tail, then word boundaries.
//!
//! Every occurrence of a string has its keyword at exactly one position
//! (`start + kw_off`), so each occurrence is counted exactly once, and
//! overlapping occurrences all count. A verified match is a byte-equal
//! copy of a valid UTF-8 string inside valid UTF-8, so it starts and ends
//! on character boundaries without checking.

use hashbrown::HashMap;

use super::Library;
use super::hash::{MixState, TAG_SHORT, TAG4, mix};
use super::index::{Index, Node};
use super::normalize::normalize_into;

/// One library entry found in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    /// The entry; look it up with [`Library::entry`].
    pub entry: u32,
    /// How many times it occurs (overlapping occurrences count).
    pub count: u32,
}

const PAD: usize = 8;

/// Reusable scan state: the normalized text buffer and the hit counts. One
/// per thread or per message; it holds no reference to a library.
#[derive(Default)]
pub struct Scanner {
    buf: String,
    counts: HashMap<u32, u32, MixState>,
    hits: Vec<Hit>,
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Normalizes `text` and returns every entry of `lib` found in it,
    /// sorted by entry.
    pub fn scan(&mut self, lib: &Library, text: &str) -> &[Hit] {
        self.scan_parts(lib, [text])
    }

    /// Like [`Scanner::scan`] over several independent texts (subject, body
    /// parts, …): counts add up, and no match spans two parts.
    pub fn scan_parts<'t>(
        &mut self,
        lib: &Library,
        parts: impl IntoIterator<Item = &'t str>,
    ) -> &[Hit] {
        self.counts.clear();
        for part in parts {
            self.buf.clear();
            normalize_into(part, &mut self.buf);
            self.scan_buf(&lib.index);
        }
        self.collect()
    }

    /// Scans text that is already normalized (benchmarks and callers that
    /// normalize once and scan twice). Matching normalized text is the
    /// caller's promise; text that is not normalized is scanned as it is.
    pub fn scan_normalized(&mut self, lib: &Library, text: &str) -> &[Hit] {
        self.counts.clear();
        self.buf.clear();
        self.buf.push_str(text);
        self.scan_buf(&lib.index);
        self.collect()
    }

    /// The normalized text of the last part scanned.
    pub fn last_text(&self) -> &str {
        self.buf.trim_end_matches('\0')
    }

    fn collect(&mut self) -> &[Hit] {
        self.hits.clear();
        self.hits.extend(
            self.counts
                .iter()
                .map(|(&entry, &count)| Hit { entry, count }),
        );
        self.hits.sort_unstable();
        &self.hits
    }

    fn scan_buf(&mut self, idx: &Index) {
        let n = self.buf.len();
        self.buf.extend(std::iter::repeat_n('\0', PAD));
        scan_bytes(idx, self.buf.as_bytes(), n, &mut self.counts);
        self.buf.truncate(n);
    }
}

/// Scans `t[..n]`; `t` has at least `PAD` bytes after `n`.
fn scan_bytes(idx: &Index, t: &[u8], n: usize, counts: &mut HashMap<u32, u32, MixState>) {
    let mut found = |node: usize| *counts.entry(node as u32).or_insert(0) += 1;
    for i in 0..n {
        let Some(chunk) = t[i..].first_chunk::<PAD>() else {
            break;
        };
        let w = u64::from_le_bytes(*chunk);
        if idx.has4 {
            let key = (w & 0xFFFF_FFFF) | TAG4;
            let h = mix(key);
            if idx.bm4.contains(h) {
                probe(idx, h, key, i, t, n, &mut found);
            }
        }
        if idx.has8 {
            let h = mix(w);
            if idx.bm8.contains(h) {
                probe(idx, h, w, i, t, n, &mut found);
            }
        }
        let lens = idx.short_first[chunk[0] as usize];
        if lens != 0 {
            for len in 1..=3 {
                if lens & (1 << (len - 1)) != 0 {
                    let key = (w & ((1 << (8 * len)) - 1)) | TAG_SHORT[len];
                    let h = mix(key);
                    if idx.bm_short.contains(h) {
                        probe(idx, h, key, i, t, n, &mut found);
                    }
                }
            }
        }
    }
}

/// Walks the list of `key` (hash `h`, seen at text position `i`) and
/// reports every candidate that matches.
#[inline]
fn probe(
    idx: &Index,
    h: u64,
    key: u64,
    i: usize,
    t: &[u8],
    n: usize,
    found: &mut impl FnMut(usize),
) {
    let Some(head) = idx.find(h, key) else {
        return;
    };
    for (j, node) in idx.nodes[head..].iter().enumerate() {
        if verify(idx, node, i, t, n) {
            found(head + j);
        }
        if node.is_last() {
            break;
        }
    }
}

#[inline]
fn verify(idx: &Index, node: &Node, i: usize, t: &[u8], n: usize) -> bool {
    let Some(s) = i.checked_sub(node.kw_off()) else {
        return false;
    };
    let len = node.len as usize;
    let end = s + len;
    if end > n {
        return false;
    }
    let Some(head) = t[s..].first_chunk::<PAD>() else {
        return false;
    };
    let m = if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    };
    if (u64::from_le_bytes(*head) ^ node.prefix) & m != 0 {
        return false;
    }
    if len > 8 {
        let tail = node.tail as usize;
        if idx.tails.get(tail..tail + len - 8) != Some(&t[s + 8..end]) {
            return false;
        }
    }
    if node.word_start() && s > 0 && t[s - 1].is_ascii_alphanumeric() {
        return false;
    }
    if node.word_end() && end < n && t[end].is_ascii_alphanumeric() {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::{BuildOptions, EntrySpec, MatchMode};

    fn lib(specs: &[EntrySpec], opts: BuildOptions) -> Library {
        Library::from_specs(specs, opts).expect("valid specs")
    }

    fn found(lib: &Library, text: &str) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = lib
            .scan(text)
            .iter()
            .map(|h| {
                (
                    lib.entry(h.entry).map(|e| e.text()).unwrap_or_default(),
                    h.count,
                )
            })
            .collect();
        v.sort();
        v
    }

    fn pairs(v: &[(&str, u32)]) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = v.iter().map(|&(s, c)| (s.to_owned(), c)).collect();
        v.sort();
        v
    }

    #[test]
    fn finds_all_lengths_with_counts_including_overlaps() {
        let specs: Vec<EntrySpec> = ["a", "ab", "aba", "abab", "ababab", "发票", "代开发票", "x"]
            .iter()
            .map(|s| EntrySpec::new(*s))
            .collect();
        for tier8_min in [1, usize::MAX] {
            let l = lib(
                &specs,
                BuildOptions {
                    tier8_min,
                    ..Default::default()
                },
            );
            assert_eq!(
                found(&l, "ABABAB 代开发票"),
                pairs(&[
                    ("a", 3),
                    ("ab", 3),
                    ("aba", 2),
                    ("abab", 2),
                    ("ababab", 1),
                    ("发票", 1),
                    ("代开发票", 1)
                ])
            );
        }
    }

    #[test]
    fn word_entries_need_boundaries_at_alphanumeric_ends() {
        let specs = vec![
            EntrySpec::new("sex").with_mode(MatchMode::Word),
            EntrySpec::new("$$$").with_mode(MatchMode::Word),
            EntrySpec::new("cheap pills").with_mode(MatchMode::Word),
        ];
        let l = lib(&specs, BuildOptions::default());
        assert!(found(&l, "Essex and sexy").is_empty());
        assert_eq!(found(&l, "sex, (sex) sex"), pairs(&[("sex", 3)]));
        assert_eq!(found(&l, "a$$$$b"), pairs(&[("$$$", 2)]));
        assert_eq!(
            found(&l, "CHEAP\n PILLS! cheap pillsx"),
            pairs(&[("cheap pills", 1)])
        );
    }

    #[test]
    fn text_is_normalized_before_matching() {
        let l = lib(
            &[EntrySpec::new("viagra"), EntrySpec::new("发票代开")],
            BuildOptions::default(),
        );
        assert_eq!(
            found(&l, "ＶＩＡ\u{AD}ＧＲＡ 发票\r\n代开"),
            pairs(&[("viagra", 1), ("发票代开", 1)])
        );
    }

    #[test]
    fn parts_do_not_join() {
        let l = lib(&[EntrySpec::new("ab")], BuildOptions::default());
        let mut s = Scanner::new();
        assert!(s.scan_parts(&l, ["a", "b"]).is_empty());
        assert_eq!(
            s.scan_parts(&l, ["ab", "xab"]),
            &[Hit { entry: 0, count: 2 }]
        );
    }

    #[test]
    fn matches_at_text_ends_and_padding_never_matches() {
        let l = lib(
            &[EntrySpec::new("abcdefghij"), EntrySpec::new("z")],
            BuildOptions::default(),
        );
        assert_eq!(found(&l, "abcdefghij"), pairs(&[("abcdefghij", 1)]));
        assert_eq!(found(&l, "abcdefghi"), pairs(&[]));
        assert_eq!(found(&l, "z"), pairs(&[("z", 1)]));
        assert_eq!(found(&l, ""), pairs(&[]));
    }
}
