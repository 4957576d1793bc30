//! The engine against a plain search: a library of the input's lines (the
//! keyword tiers, the filter size, the 4-byte riders and the batched or
//! pipelined scan chosen by its first byte) and a text; every entry found
//! with its count, exactly as counting every overlapping occurrence of each
//! normalized string in the normalized text finds them.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use mailward::library::normalize::normalize;
use mailward::library::{BuildOptions, EntrySpec, Library, MatchMode};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(rest);
    // The library's strings, then the text, after the first NUL.
    let (lib_part, text) = s.split_once('\0').unwrap_or((&s, ""));
    let specs: Vec<EntrySpec> = lib_part
        .split('\n')
        .filter(|line| !normalize(line).is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut e = EntrySpec::new(line);
            if mode & 0x10 != 0 && i % 3 == 0 {
                e.mode = MatchMode::Word;
            }
            e
        })
        .collect();
    let opts = BuildOptions {
        bits_per_key: [16, 1, 4, 64][(mode & 3) as usize],
        tier5_min: if mode & 4 != 0 { 0 } else { usize::MAX },
        tier8_min: if mode & 8 != 0 { 0 } else { usize::MAX },
        merge4_max: if mode & 0x20 != 0 { 0 } else { 4096 },
        // Batched from the first byte (a batch per chunk, or one for all),
        // or pipelined.
        batch_min: if mode & 0x40 != 0 { 0 } else { usize::MAX },
        batch_keys: if mode & 0x80 != 0 { 1 } else { 1 << 18 },
    };
    let Ok(lib) = Library::from_specs(&specs, opts) else {
        return;
    };
    let norm = normalize(text);
    let t = norm.as_bytes();
    let mut want = BTreeMap::new();
    for e in lib.entries() {
        let p = e.text();
        let p = p.as_bytes();
        let word = e.mode() == MatchMode::Word;
        let alnum = |i: usize| t.get(i).is_some_and(u8::is_ascii_alphanumeric);
        let count = (0..t.len().saturating_sub(p.len() - 1))
            .filter(|&i| t[i..].starts_with(p))
            .filter(|&i| {
                !word
                    || !((p[0].is_ascii_alphanumeric() && i > 0 && alnum(i - 1))
                        || (p[p.len() - 1].is_ascii_alphanumeric() && alnum(i + p.len())))
            })
            .count() as u32;
        if count > 0 {
            want.insert(e.number(), count);
        }
    }
    let got: BTreeMap<u32, u32> = lib.scan(text).iter().map(|h| (h.entry, h.count)).collect();
    assert_eq!(got, want, "library {specs:?} text {norm:?}");
});
