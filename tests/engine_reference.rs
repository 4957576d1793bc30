//! The engine against a reference: aho-corasick's overlapping search over
//! the same normalized strings and text must report exactly the same
//! entries with the same counts.

use std::collections::BTreeMap;

use aho_corasick::{AhoCorasick, MatchKind};
use mailward::library::normalize::normalize;
use mailward::library::{BuildOptions, EntrySpec, Library, MatchMode, Scanner};
use proptest::prelude::*;

/// Reference hits: (normalized text, word?) -> count.
fn reference(specs: &[EntrySpec], text: &str) -> BTreeMap<(String, bool), u32> {
    let mut pats: Vec<(String, bool)> = Vec::new();
    for s in specs {
        let k = (normalize(&s.text), s.mode == MatchMode::Word);
        if !k.0.is_empty() && !pats.contains(&k) {
            pats.push(k);
        }
    }
    let mut out = BTreeMap::new();
    if pats.is_empty() {
        return out;
    }
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .build(pats.iter().map(|p| p.0.as_bytes()))
        .expect("reference automaton builds");
    let t = normalize(text);
    let tb = t.as_bytes();
    for m in ac.find_overlapping_iter(&t) {
        let (p, word) = &pats[m.pattern().as_usize()];
        let pb = p.as_bytes();
        if *word {
            let glued_start = pb[0].is_ascii_alphanumeric()
                && m.start() > 0
                && tb[m.start() - 1].is_ascii_alphanumeric();
            let glued_end = pb[pb.len() - 1].is_ascii_alphanumeric()
                && m.end() < tb.len()
                && tb[m.end()].is_ascii_alphanumeric();
            if glued_start || glued_end {
                continue;
            }
        }
        *out.entry((p.clone(), *word)).or_insert(0) += 1;
    }
    out
}

fn engine(lib: &Library, text: &str) -> BTreeMap<(String, bool), u32> {
    let mut scanner = Scanner::new();
    scanner
        .scan(lib, text)
        .iter()
        .map(|h| {
            let e = lib.entry(h.entry).expect("hit names an entry");
            ((e.text(), e.mode() == MatchMode::Word), h.count)
        })
        .collect()
}

/// Pieces chosen to overlap and nest: ASCII letters and digits, a space,
/// CJK, full-width forms, an invisible soft hyphen, a 2-byte letter.
const PIECES: &[&str] = &[
    "a", "b", "ab", "ba", "c", "1", " ", ".", "发", "票", "发票", "代开", "Ａ", "\u{AD}", "é", "x",
    "abc", "\n",
];

fn piece_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 1..max).prop_map(|v| v.concat())
}

fn spec() -> impl Strategy<Value = EntrySpec> {
    (piece_string(8), any::<bool>()).prop_map(|(text, word)| {
        EntrySpec::new(text).with_mode(if word {
            MatchMode::Word
        } else {
            MatchMode::Substring
        })
    })
}

fn options() -> impl Strategy<Value = BuildOptions> {
    // Tiny bitmaps force collisions; tier8_min 1 forces 8-byte keywords;
    // merge4_max decides whether 4-byte strings ride on the 3-byte pass;
    // batch_min whether the scan is batched or pipelined.
    (
        prop::sample::select(vec![1usize, 2, 16]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![None, Some(1usize), Some(1 << 18)]),
    )
        .prop_map(|(bits, t5, t8, m4, batch)| BuildOptions {
            bits_per_key: bits,
            tier5_min: if t5 { 1 } else { usize::MAX },
            tier8_min: if t8 { 1 } else { usize::MAX },
            merge4_max: if m4 { usize::MAX } else { 0 },
            // Batched from the first byte, one chunk per batch or all in
            // one; or pipelined.
            batch_min: if batch.is_some() { 0 } else { usize::MAX },
            batch_keys: batch.unwrap_or(1 << 18),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn same_entries_and_counts_as_aho_corasick(
        specs in prop::collection::vec(spec(), 1..40),
        texts in prop::collection::vec(piece_string(120), 1..4),
        opts in options(),
    ) {
        let specs: Vec<EntrySpec> =
            specs.into_iter().filter(|s| !normalize(&s.text).is_empty()).collect();
        let lib = Library::from_specs(&specs, opts).expect("specs are valid");
        for text in &texts {
            prop_assert_eq!(engine(&lib, text), reference(&specs, text), "text {:?}", text);
        }
    }

    /// Library strings taken from the text itself, so hits are dense, with
    /// long strings that use the 8-byte tier and the tails.
    #[test]
    fn dense_hits_from_text_slices(
        text in piece_string(300),
        cuts in prop::collection::vec((0usize..400, 1usize..40), 1..60),
        opts in options(),
    ) {
        let chars: Vec<char> = text.chars().collect();
        let specs: Vec<EntrySpec> = cuts
            .iter()
            .filter_map(|&(start, len)| {
                let start = start % chars.len();
                let end = (start + len).min(chars.len());
                let s: String = chars[start..end].iter().collect();
                (!normalize(&s).is_empty()).then(|| EntrySpec::new(s))
            })
            .collect();
        prop_assume!(!specs.is_empty());
        let lib = Library::from_specs(&specs, opts).expect("specs are valid");
        let got = engine(&lib, &text);
        prop_assert!(!got.is_empty(), "slices of the text are found in it");
        prop_assert_eq!(got, reference(&specs, &text));
    }
}

#[test]
fn random_ascii_library_and_text_agree_with_reference() {
    // A larger deterministic case: 5 000 strings over a 4-letter alphabet,
    // so lists get long and many candidates fail verification.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alpha = ['a', 'b', 'c', ' '];
    let mut specs = Vec::new();
    for _ in 0..5000 {
        let len = 1 + (next() % 14) as usize;
        let s: String = (0..len).map(|_| alpha[(next() % 4) as usize]).collect();
        if !normalize(&s).is_empty() {
            let word = next() % 3 == 0;
            specs.push(EntrySpec::new(s).with_mode(if word {
                MatchMode::Word
            } else {
                MatchMode::Substring
            }));
        }
    }
    let text: String = (0..20_000).map(|_| alpha[(next() % 4) as usize]).collect();
    let batched = [(usize::MAX, 1 << 18), (0, 1), (0, 1 << 18)];
    for (tier8_min, (batch_min, batch_keys)) in [1, usize::MAX]
        .into_iter()
        .flat_map(|t| batched.map(|b| (t, b)))
    {
        let opts = BuildOptions {
            tier8_min,
            batch_min,
            batch_keys,
            ..BuildOptions::default()
        };
        let lib = Library::from_specs(&specs, opts).expect("specs are valid");
        let want = reference(&specs, &text);
        assert!(want.len() > 1000, "the case is dense");
        assert_eq!(engine(&lib, &text), want);
    }
}
