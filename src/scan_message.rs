//! One message through the decoder and the library: the entries found in
//! it, with the decoder's notes.
//!
//! Counting rule: the parts of one `multipart/alternative` are renderings
//! of the same content, so an entry counts once per alternative group (the
//! most occurrences in any one of the group's parts) and counts add up
//! across groups and ungrouped parts (subject, plain parts, link hosts,
//! file names). No match spans two parts.
//!
//! This module knows nothing of the milter: the `scan` command uses it on
//! files as well.

use crate::judge::Mark;
use crate::library::{Entry, Hit, Library, Scanner};
use crate::message::{self, DecodeOptions, Decoded, Note};

/// What a scan of one message found.
#[derive(Clone, Debug, Default)]
pub struct MessageScan {
    /// Each entry found once, with its combined count; sorted by entry.
    pub hits: Vec<Hit>,
    /// The decoder's notes (what was not read as declared, or cut).
    pub notes: Vec<Note>,
    /// Bytes of decoded text scanned.
    pub text_bytes: usize,
    /// Texts scanned (subject, parts, link hosts, file names).
    pub parts: usize,
}

impl MessageScan {
    /// Whether the decoder left text out (text budget, part count, depth).
    pub fn text_cut(&self) -> bool {
        self.notes.iter().any(|n| {
            matches!(
                n,
                Note::Truncated { .. }
                    | Note::Skipped { .. }
                    | Note::TooManyParts { .. }
                    | Note::TooDeep { .. }
            )
        })
    }
}

/// Decodes `raw` (header lines, blank line, body) and scans its texts.
pub fn scan_message(
    lib: &Library,
    raw: &[u8],
    opts: &DecodeOptions,
    scanner: &mut Scanner,
) -> MessageScan {
    let decoded = message::decode(raw, opts);
    MessageScan {
        hits: count_hits(lib, &decoded, scanner),
        text_bytes: decoded.text_bytes,
        parts: decoded.parts.len(),
        notes: decoded.notes,
    }
}

/// Scans the texts of a message already decoded, for callers that also
/// show those texts (the `scan` command's `--text`). The result is the
/// one [`scan_message`] gives for the same raw message and options.
pub fn scan_decoded(lib: &Library, decoded: &Decoded, scanner: &mut Scanner) -> MessageScan {
    MessageScan {
        hits: count_hits(lib, decoded, scanner),
        notes: decoded.notes.clone(),
        text_bytes: decoded.text_bytes,
        parts: decoded.parts.len(),
    }
}

/// Each entry found once, counted by the rule of the module
/// documentation; sorted by entry.
fn count_hits(lib: &Library, decoded: &Decoded, scanner: &mut Scanner) -> Vec<Hit> {
    let ungrouped = decoded
        .parts
        .iter()
        .filter(|p| p.alt_group.is_none())
        .map(|p| p.text.as_str());
    let mut counts = scanner.scan_parts(lib, ungrouped).to_vec();

    let mut groups: Vec<u32> = decoded.parts.iter().filter_map(|p| p.alt_group).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        let mut best = Vec::new();
        for p in decoded.parts.iter().filter(|p| p.alt_group == Some(g)) {
            best = merge(&best, scanner.scan(lib, &p.text), u32::max);
        }
        counts = merge(&counts, &best, u32::saturating_add);
    }
    counts
}

/// Merges two lists of hits sorted by entry, each entry at most once in
/// each, combining the counts of an entry in both (the scanner's lists are
/// sorted, so no map is needed).
fn merge(a: &[Hit], b: &[Hit], combine: fn(u32, u32) -> u32) -> Vec<Hit> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.entry.cmp(&y.entry) {
            std::cmp::Ordering::Less => {
                out.push(*x);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(*y);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(Hit {
                    entry: x.entry,
                    count: combine(x.count, y.count),
                });
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(a.get(i..).unwrap_or_default());
    out.extend_from_slice(b.get(j..).unwrap_or_default());
    out
}

/// The judge's view of the hits: one mark per entry.
pub fn marks<'a>(lib: &'a Library, hits: &'a [Hit]) -> impl Iterator<Item = Mark<'a>> + 'a {
    hits.iter().filter_map(|h| {
        let e = lib.entry(h.entry)?;
        Some(Mark {
            category: e.category(),
            weight: e.weight(),
            action: e.action(),
        })
    })
}

/// The ids of the `n` heaviest entries found (entries with an action
/// first, then by weight, then in library order), for logs. A dense
/// message finds thousands of entries: only the `n` taken are sorted.
pub fn top_ids(lib: &Library, hits: &[Hit], n: usize) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let mut entries: Vec<_> = hits.iter().filter_map(|h| lib.entry(h.entry)).collect();
    // A total order (entry numbers are distinct), so the selection does not
    // depend on the order the hits come in.
    let heavier = |a: &Entry<'_>, b: &Entry<'_>| {
        b.action()
            .cmp(&a.action())
            .then(b.weight().total_cmp(&a.weight()))
            .then(a.place().cmp(&b.place()))
    };
    if entries.len() > n {
        entries.select_nth_unstable_by(n - 1, heavier);
        entries.truncate(n);
    }
    entries.sort_unstable_by(heavier);
    entries.into_iter().map(|e| e.id().into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::{BuildOptions, EntrySpec};

    fn lib(texts: &[&str]) -> Library {
        let specs: Vec<EntrySpec> = texts.iter().map(|t| EntrySpec::new(*t)).collect();
        Library::from_specs(&specs, BuildOptions::default()).unwrap()
    }

    #[test]
    fn equal_entries_are_logged_in_file_order() {
        // Forty entries of one weight: the index numbers them its own way
        // (by their keywords' slots), the log names them as the file does.
        let yaml: String = std::iter::once("entries:\n".to_string())
            .chain((0..40).map(|i| format!("  - {{ text: word{i:02}long, id: e{i:02} }}\n")))
            .collect();
        let l = Library::from_yaml_str(
            &yaml,
            std::path::Path::new("lib.yaml"),
            std::path::Path::new("."),
        )
        .unwrap();
        let number = |id: String| l.entries().find(|e| e.id() == id).map(|e| e.number());
        let numbers: Vec<u32> = (0..40).filter_map(|i| number(format!("e{i:02}"))).collect();
        assert_eq!(numbers.len(), 40);
        assert!(
            numbers.windows(2).any(|w| w[0] > w[1]),
            "the case needs entry numbers out of file order: {numbers:?}"
        );
        let text: String = (0..40).rev().map(|i| format!("word{i:02}long ")).collect();
        let hits = Scanner::new().scan(&l, &text).to_vec();
        assert_eq!(hits.len(), 40);
        let want: Vec<String> = (0..5).map(|i| format!("e{i:02}")).collect();
        assert_eq!(top_ids(&l, &hits, 5), want);
    }

    #[test]
    fn merging_keeps_entry_order_and_combines_shared_entries() {
        let h = |entry, count| Hit { entry, count };
        let a = [h(1, 2), h(4, 1), h(9, u32::MAX)];
        let b = [h(0, 1), h(4, 3), h(9, 1), h(12, 1)];
        assert_eq!(
            merge(&a, &b, u32::saturating_add),
            [h(0, 1), h(1, 2), h(4, 4), h(9, u32::MAX), h(12, 1)]
        );
        assert_eq!(
            merge(&a, &b, u32::max),
            [h(0, 1), h(1, 2), h(4, 3), h(9, u32::MAX), h(12, 1)]
        );
        assert_eq!(merge(&[], &b, u32::max), b);
        assert_eq!(merge(&a, &[], u32::max), a);
    }

    fn count(lib: &Library, scan: &MessageScan, text: &str) -> u32 {
        scan.hits
            .iter()
            .find(|h| lib.entry(h.entry).unwrap().text() == text)
            .map_or(0, |h| h.count)
    }

    fn scan(lib: &Library, raw: &str) -> MessageScan {
        scan_message(
            lib,
            raw.as_bytes(),
            &DecodeOptions::default(),
            &mut Scanner::new(),
        )
    }

    #[test]
    fn subject_and_body_add_up() {
        let l = lib(&["viagra"]);
        let s = scan(&l, "Subject: viagra\r\n\r\nviagra and viagra\r\n");
        assert_eq!(count(&l, &s, "viagra"), 3);
        assert_eq!(s.hits.len(), 1);
        assert!(s.parts >= 2);
    }

    #[test]
    fn an_alternative_pair_counts_once() {
        let l = lib(&["viagra", "only in html"]);
        let raw = "Subject: hi\r\n\
            Content-Type: multipart/alternative; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nviagra viagra\r\n\
            --b\r\nContent-Type: text/html\r\n\r\n<p>viagra</p><p>only in html</p>\r\n\
            --b--\r\n";
        let s = scan(&l, raw);
        assert_eq!(
            count(&l, &s, "viagra"),
            2,
            "max over the group, not the sum"
        );
        assert_eq!(count(&l, &s, "only in html"), 1);
    }

    #[test]
    fn groups_and_ungrouped_parts_add() {
        let l = lib(&["viagra"]);
        let raw = "Subject: viagra\r\n\
            Content-Type: multipart/mixed; boundary=m\r\n\r\n\
            --m\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nviagra\r\n\
            --b\r\nContent-Type: text/html\r\n\r\n<b>viagra</b>\r\n\
            --b--\r\n\
            --m\r\nContent-Type: text/plain\r\n\r\nviagra\r\n\
            --m--\r\n";
        let s = scan(&l, raw);
        assert_eq!(count(&l, &s, "viagra"), 3);
    }

    #[test]
    fn a_decoded_message_scans_as_its_raw_bytes() {
        let l = lib(&["viagra", "only in html"]);
        let raw = "Subject: viagra\r\n\
            Content-Type: multipart/alternative; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nviagra\0 viagra\r\n\
            --b\r\nContent-Type: text/html\r\n\r\n<p>viagra</p><p>only in html</p>\r\n\
            --b--\r\n";
        let opts = DecodeOptions::default();
        let mut scanner = Scanner::new();
        let whole = scan_message(&l, raw.as_bytes(), &opts, &mut scanner);
        let decoded = message::decode(raw.as_bytes(), &opts);
        let split = scan_decoded(&l, &decoded, &mut scanner);
        assert_eq!(whole.hits, split.hits);
        assert_eq!(whole.notes, split.notes);
        assert!(!split.notes.is_empty());
        assert_eq!(
            (whole.text_bytes, whole.parts),
            (split.text_bytes, split.parts)
        );
        assert_eq!(count(&l, &split, "viagra"), 3);
    }

    #[test]
    fn notes_are_passed_on_and_cuts_seen() {
        let l = lib(&["viagra"]);
        let opts = DecodeOptions {
            max_text_bytes: 16,
            ..DecodeOptions::default()
        };
        let raw = format!("Subject: x\r\n\r\n{}viagra\r\n", "a ".repeat(100));
        let s = scan_message(&l, raw.as_bytes(), &opts, &mut Scanner::new());
        assert!(s.text_cut());
        assert!(s.text_bytes <= 16);
        assert_eq!(count(&l, &s, "viagra"), 0);
    }

    #[test]
    fn marks_and_top_ids_follow_the_library() {
        let y = "entries:\n  - {text: aaa, id: light, weight: 1}\n  - {text: bbb, id: heavy, weight: 5}\n  - {text: ccc, id: act, weight: 0, action: tag}\n";
        let l =
            Library::from_yaml_str(y, std::path::Path::new("l.yaml"), std::path::Path::new("."))
                .unwrap();
        let s = scan(&l, "Subject: aaa bbb ccc\r\n\r\n");
        assert_eq!(s.hits.len(), 3);
        let total: f64 = marks(&l, &s.hits).map(|m| m.weight).sum();
        assert_eq!(total, 6.0);
        assert_eq!(top_ids(&l, &s.hits, 2), ["act", "heavy"]);
    }

    #[test]
    fn top_ids_take_the_heaviest_of_many_in_any_hit_order() {
        // Weights repeat (ties go to library order) and some entries act.
        let specs: Vec<EntrySpec> = (0..300)
            .map(|i| EntrySpec {
                id: Some(format!("e{i}")),
                weight: f64::from(i * 7 % 13),
                action: (i % 41 == 5).then_some(crate::library::Action::Tag),
                ..EntrySpec::new(format!("w{i:03}x"))
            })
            .collect();
        let l = Library::from_specs(&specs, BuildOptions::default()).unwrap();
        let mut hits: Vec<Hit> = (0..300).map(|entry| Hit { entry, count: 1 }).collect();
        let mut want: Vec<_> = hits.iter().filter_map(|h| l.entry(h.entry)).collect();
        want.sort_by(|a, b| {
            b.action()
                .cmp(&a.action())
                .then(b.weight().total_cmp(&a.weight()))
                .then(a.place().cmp(&b.place()))
        });
        let want: Vec<String> = want.iter().map(|e| e.id().into_owned()).collect();
        // The hits in three orders: sorted, reversed, interleaved.
        for round in 0..3 {
            match round {
                1 => hits.reverse(),
                2 => hits.sort_by_key(|h| (h.entry % 7, h.entry)),
                _ => {}
            }
            for n in [0, 1, 2, 5, 40, 299, 300, 301] {
                assert_eq!(top_ids(&l, &hits, n), want[..n.min(300)], "n {n}");
            }
        }
        assert_eq!(
            top_ids(&l, &hits, 1),
            ["e128"],
            "the heaviest entry with an action"
        );
    }
}
