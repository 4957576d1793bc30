//! Collecting entries: normalization, validation and duplicate merging,
//! before the index is built.
//!
//! Entries are keyed by their normalized text and match mode: the same text
//! as a substring entry and as a word entry are two rules. A duplicate key
//! merges into the first entry: the highest weight wins (with its
//! category), the strongest action wins, every id is kept, and the merge is
//! counted.
//!
//! Texts live in one byte arena rather than one `String` each, so
//! collecting a million entries costs little more than their bytes.
//! Duplicates are found once, when the library is built, by sorting the
//! entries' hashes ([`merge_duplicates`]): a hash table probed as each entry
//! arrives reads memory at random once the library outgrows the caches,
//! and at a million entries that was up to a fifth of the whole build.
//!
//! # Invariants
//!
//! * Before [`Builder::build`], `drafts` holds every entry added, duplicates
//!   included, in the order added; `ids` names drafts by that order.
//! * After merging, each surviving entry is the first of its key, and its
//!   attributes are what merging its duplicates into it one by one, in the
//!   order they were added, gives.

use std::hash::BuildHasher;
use std::time::Instant;

use hashbrown::{DefaultHashBuilder, HashMap};

use super::index::{BuildOptions, Index, MAX_LEN, Pattern};
use super::model::{Action, EntrySpec, MatchMode, Origin};
use super::normalize::normalize_into;
use super::{Class, Library, Stats};

/// Most bytes of distinct normalized strings in one library (4 GiB - 1).
pub const MAX_TEXT_BYTES: usize = u32::MAX as usize;
/// Most distinct entries in one library.
pub const MAX_ENTRIES: usize = (u32::MAX - 1) as usize;

/// Why one entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddError {
    /// Nothing is left after normalization (only whitespace or invisible
    /// characters).
    Empty,
    /// Longer than [`MAX_LEN`] bytes after normalization.
    TooLong(usize),
    /// The weight is not a finite number.
    BadWeight,
    /// The library would exceed [`MAX_TEXT_BYTES`] or [`MAX_ENTRIES`].
    TooLarge,
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Empty => f.write_str(
                "the string is empty after normalization (only whitespace or invisible characters)",
            ),
            AddError::TooLong(n) => write!(
                f,
                "the string is {n} bytes long after normalization (at most {MAX_LEN})"
            ),
            AddError::BadWeight => f.write_str("the weight is not a finite number"),
            AddError::TooLarge => write!(
                f,
                "the library is full: at most {MAX_TEXT_BYTES} bytes of strings and {MAX_ENTRIES} entries"
            ),
        }
    }
}

/// The attributes of an entry other than its text, id and origin; shared by
/// all lines of an include file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attrs {
    pub weight: f64,
    pub category: u32,
    pub action: Option<Action>,
    pub mode: MatchMode,
}

struct Draft {
    start: u32,
    len: u16,
    attrs: Attrs,
    origin: Origin,
}

impl Draft {
    /// The normalized bytes, in the builder's arena `texts`.
    fn bytes<'a>(&self, texts: &'a [u8]) -> &'a [u8] {
        &texts[self.start as usize..self.start as usize + self.len as usize]
    }
}

/// Collects entries and builds a [`Library`].
pub struct Builder {
    opts: BuildOptions,
    started: Instant,
    texts: Vec<u8>,
    drafts: Vec<Draft>,
    categories: Vec<String>,
    category_ids: HashMap<String, u32>,
    /// The category named last: entries come in runs of one category.
    last_category: Option<u32>,
    sources: Vec<String>,
    ids: Vec<(u32, Box<str>)>,
    scratch: String,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new(BuildOptions::default())
    }
}

impl Builder {
    pub fn new(opts: BuildOptions) -> Builder {
        Builder {
            opts,
            started: Instant::now(),
            texts: Vec::new(),
            drafts: Vec::new(),
            categories: Vec::new(),
            category_ids: HashMap::new(),
            last_category: None,
            sources: Vec::new(),
            ids: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Registers a source file name for [`Origin::source`].
    pub fn add_source(&mut self, name: impl Into<String>) -> u32 {
        self.sources.push(name.into());
        (self.sources.len() - 1) as u32
    }

    /// The number of a category name, interning it on first use.
    pub fn category(&mut self, name: &str) -> u32 {
        if let Some(id) = self.last_category
            && self.categories.get(id as usize).is_some_and(|c| c == name)
        {
            return id;
        }
        let id = match self.category_ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.categories.len() as u32;
                self.categories.push(name.to_owned());
                self.category_ids.insert(name.to_owned(), id);
                id
            }
        };
        self.last_category = Some(id);
        id
    }

    /// Makes room for `additional` more entries of about `avg_len` bytes
    /// (a hint: growing the tables while adding costs more).
    pub fn reserve(&mut self, additional: usize, avg_len: usize) {
        self.drafts.reserve(additional);
        self.texts.reserve(additional.saturating_mul(avg_len));
    }

    /// Entries added so far, duplicates included (they merge when the
    /// library is built).
    pub fn len(&self) -> usize {
        self.drafts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.drafts.is_empty()
    }

    /// Adds an owned entry description.
    pub fn add_spec(&mut self, spec: &EntrySpec) -> Result<(), AddError> {
        let attrs = Attrs {
            weight: spec.weight,
            category: self.category(&spec.category),
            action: spec.action,
            mode: spec.mode,
        };
        self.add(&spec.text, attrs, spec.id.as_deref(), spec.origin)
    }

    /// Adds one entry; a duplicate of an earlier one (same normalized text
    /// and mode) is merged into it when the library is built.
    pub fn add(
        &mut self,
        text: &str,
        attrs: Attrs,
        id: Option<&str>,
        origin: Origin,
    ) -> Result<(), AddError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        normalize_into(text, &mut scratch);
        let result = self.add_normalized(&scratch, attrs, id, origin);
        self.scratch = scratch;
        result
    }

    /// [`Builder::add`] for a text that is already the output of
    /// [`normalize`](super::normalize::normalize) (the loader normalizes
    /// while it validates, and need not do it twice).
    pub(super) fn add_normalized(
        &mut self,
        norm: &str,
        attrs: Attrs,
        id: Option<&str>,
        origin: Origin,
    ) -> Result<(), AddError> {
        if !attrs.weight.is_finite() {
            return Err(AddError::BadWeight);
        }
        let norm = norm.as_bytes();
        if norm.is_empty() {
            return Err(AddError::Empty);
        }
        if norm.len() > MAX_LEN {
            return Err(AddError::TooLong(norm.len()));
        }
        // Offsets are `u32` in the builder and the index; duplicates hold
        // their bytes until the build.
        if self.texts.len() + norm.len() > MAX_TEXT_BYTES || self.drafts.len() >= MAX_ENTRIES {
            return Err(AddError::TooLarge);
        }
        let d = self.drafts.len() as u32;
        self.drafts.push(Draft {
            start: self.texts.len() as u32,
            len: norm.len() as u16,
            attrs,
            origin,
        });
        self.texts.extend_from_slice(norm);
        if let Some(id) = id {
            self.ids.push((d, id.into()));
        }
        Ok(())
    }

    /// Builds the index and the entry table.
    pub fn build(self) -> Library {
        let Builder {
            opts,
            started,
            texts,
            drafts,
            categories,
            sources,
            ids,
            ..
        } = self;
        log::debug!("library collected in {:?}", started.elapsed());
        let added = drafts.len();
        let hasher = DefaultHashBuilder::default();
        let hash = |bytes: &[u8], word: bool| hasher.hash_one((bytes, word));
        let (drafts, new_of) = merge_duplicates(&texts, drafts, hash);
        let merged = added - drafts.len();
        let raw_bytes = drafts.iter().map(|d| d.len as usize).sum();
        log::debug!("duplicates merged ({merged}) after {:?}", started.elapsed());
        let patterns: Vec<Pattern> = drafts
            .iter()
            .map(|d| Pattern {
                bytes: d.bytes(&texts),
                word: d.attrs.mode == MatchMode::Word,
            })
            .collect();
        let (index, order) = Index::build(&patterns, opts);
        drop(patterns);

        // Entry metadata in index order; attribute sets are shared.
        let mut classes: Vec<Class> = Vec::new();
        let mut class_ids: HashMap<(u64, u32, Option<Action>, MatchMode), u32> = HashMap::new();
        let mut class = Vec::with_capacity(drafts.len());
        let mut origins = Vec::with_capacity(drafts.len());
        let mut new_pos = vec![0u32; drafts.len()];
        for (pos, &old) in order.iter().enumerate() {
            let d = &drafts[old as usize];
            new_pos[old as usize] = pos as u32;
            let a = d.attrs;
            let k = (a.weight.to_bits(), a.category, a.action, a.mode);
            let c = *class_ids.entry(k).or_insert_with(|| {
                classes.push(Class {
                    weight: a.weight,
                    category: a.category,
                    action: a.action,
                    mode: a.mode,
                });
                (classes.len() - 1) as u32
            });
            class.push(c);
            origins.push(d.origin);
        }
        let mut ids: Vec<(u32, Box<str>)> = ids
            .into_iter()
            .map(|(e, id)| (new_pos[new_of[e as usize] as usize], id))
            .collect();
        // Stable: the ids of one entry stay in file order.
        ids.sort_by_key(|&(e, _)| e);
        ids.shrink_to_fit();

        let index_bytes = index.heap_bytes();
        let meta_bytes = class.capacity() * 4
            + origins.capacity() * std::mem::size_of::<Origin>()
            + ids.iter().map(|(_, s)| s.len() + 24).sum::<usize>()
            + classes.capacity() * std::mem::size_of::<Class>();
        let stats = Stats {
            entries: drafts.len(),
            merged_duplicates: merged,
            distinct_keywords: index.distinct_keywords(),
            longest_list: index.longest_list,
            short_entries: index.short_entries(),
            raw_bytes,
            index_bytes,
            memory_bytes: index_bytes + meta_bytes,
            build_time: started.elapsed(),
        };
        Library {
            index,
            class,
            classes,
            origins,
            ids,
            categories,
            sources,
            stats,
        }
    }
}

/// Merges each draft into the first draft of its key (normalized text and
/// mode), in the order they were added: the highest weight wins with its
/// category (the earlier on a tie), the strongest action wins. Returns the
/// surviving drafts, in the order added, and for every draft the number
/// of the survivor it became.
///
/// Duplicates are found by sorting `(hash, draft)` by hash: a key's drafts
/// lie together, put back in the order added, and the first of them
/// survives. Drafts of different keys with the same hash are told apart by
/// their bytes.
fn merge_duplicates(
    texts: &[u8],
    mut drafts: Vec<Draft>,
    hash: impl Fn(&[u8], bool) -> u64,
) -> (Vec<Draft>, Vec<u32>) {
    let bytes = |d: &Draft| d.bytes(texts);
    let mut keys: Vec<(u64, u32)> = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| (hash(bytes(d), d.attrs.mode == MatchMode::Word), i as u32))
        .collect();
    keys.sort_unstable_by_key(|k| k.0);
    // `into[i]`: the draft that draft `i` merges into (itself if none).
    let mut into: Vec<u32> = (0..drafts.len() as u32).collect();
    let mut merged = 0;
    for group in keys.chunk_by_mut(|a, b| a.0 == b.0) {
        if group.len() < 2 {
            continue;
        }
        group.sort_unstable_by_key(|k| k.1);
        for (k, &(_, i)) in group.iter().enumerate() {
            let (i, d) = (i as usize, &drafts[i as usize]);
            // The first earlier survivor of the same key (almost always the
            // group's first draft).
            let same = group[..k].iter().map(|&(_, f)| f as usize).find(|&f| {
                let e = &drafts[f];
                into[f] as usize == f && e.attrs.mode == d.attrs.mode && bytes(e) == bytes(d)
            });
            if let Some(f) = same {
                merged += 1;
                into[i] = f as u32;
                let new = d.attrs;
                let old = &mut drafts[f].attrs;
                if new.weight > old.weight {
                    old.weight = new.weight;
                    old.category = new.category;
                }
                old.action = old.action.max(new.action);
            }
        }
    }
    drop(keys);
    if merged == 0 {
        return (drafts, into);
    }
    let mut new_of = vec![0u32; drafts.len()];
    let mut kept = Vec::with_capacity(drafts.len());
    for (i, d) in drafts.into_iter().enumerate() {
        // A survivor comes before its duplicates: its number is known.
        new_of[i] = match into[i] as usize {
            f if f == i => {
                kept.push(d);
                (kept.len() - 1) as u32
            }
            f => new_of[f],
        };
    }
    (kept, new_of)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as StdMap;

    use proptest::prelude::*;

    use super::*;
    use crate::library::normalize::normalize;

    /// What merging must give, computed the plain way: one map from key to
    /// entry, entries in the order their keys first appear.
    struct Expected {
        text: String,
        mode: MatchMode,
        weight: f64,
        category: String,
        action: Option<Action>,
        line: u32,
        ids: Vec<String>,
    }

    fn expected(specs: &[EntrySpec]) -> Vec<Expected> {
        let mut at: StdMap<(String, MatchMode), usize> = StdMap::new();
        let mut out: Vec<Expected> = Vec::new();
        for s in specs {
            let key = (normalize(&s.text), s.mode);
            let e = match at.get(&key) {
                Some(&k) => &mut out[k],
                None => {
                    at.insert(key.clone(), out.len());
                    out.push(Expected {
                        text: key.0,
                        mode: s.mode,
                        weight: s.weight,
                        category: s.category.clone(),
                        action: s.action,
                        line: s.origin.line,
                        ids: Vec::new(),
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            if s.weight > e.weight {
                e.weight = s.weight;
                e.category = s.category.clone();
            }
            e.action = e.action.max(s.action);
            e.ids.extend(s.id.clone());
        }
        out
    }

    fn check(specs: &[EntrySpec], lib: &Library) {
        let want = expected(specs);
        assert_eq!(lib.len(), want.len());
        assert_eq!(lib.stats().merged_duplicates, specs.len() - want.len());
        let mut got: Vec<Expected> = (0..lib.len() as u32)
            .filter_map(|n| lib.entry(n))
            .map(|e| Expected {
                text: e.text(),
                mode: e.mode(),
                weight: e.weight(),
                category: e.category().to_owned(),
                action: e.action(),
                line: e.origin().1,
                ids: e.explicit_ids().map(str::to_owned).collect(),
            })
            .collect();
        // The index orders entries its own way: compare in key order.
        got.sort_by_key(|e| e.line);
        let mut want = want;
        want.sort_by_key(|e| e.line);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (
                    &g.text,
                    g.mode,
                    g.weight,
                    &g.category,
                    g.action,
                    g.line,
                    &g.ids
                ),
                (
                    &w.text,
                    w.mode,
                    w.weight,
                    &w.category,
                    w.action,
                    w.line,
                    &w.ids
                )
            );
        }
    }

    fn spec(
        (text, weight, category, action, word, id): (usize, usize, usize, usize, bool, bool),
        line: usize,
    ) -> EntrySpec {
        // Texts that normalize alike: case, full-width forms, spaces, and
        // whitespace between CJK characters.
        const TEXTS: [&str; 9] = [
            "spam",
            "SPAM",
            "ｓｐａｍ",
            "spam ",
            "eggs",
            "发票",
            "发 票",
            "a b",
            "a  b",
        ];
        let actions = [
            None,
            Some(Action::Tag),
            Some(Action::Tempfail),
            Some(Action::Reject),
        ];
        let mut s = EntrySpec::new(TEXTS[text % TEXTS.len()]);
        s.weight = [0.5, 1.0, 2.0, 2.0, 3.5][weight % 5];
        s.category = ["x", "y", "z"][category % 3].into();
        s.action = actions[action % 4];
        if word {
            s.mode = MatchMode::Word;
        }
        s.id = id.then(|| format!("id{line}"));
        s.origin.line = line as u32 + 1;
        s
    }

    proptest! {
        #[test]
        fn duplicates_merge_as_if_one_at_a_time(
            raw in prop::collection::vec(
                (0..9usize, 0..5usize, 0..3usize, 0..4usize, any::<bool>(), any::<bool>()),
                0..60,
            )
        ) {
            let specs: Vec<EntrySpec> = raw.into_iter().enumerate().map(|(i, r)| spec(r, i)).collect();
            let lib = Library::from_specs(&specs, BuildOptions::default()).expect("valid specs");
            check(&specs, &lib);
        }
    }

    #[test]
    fn keys_with_one_hash_are_told_apart_by_their_bytes() {
        // Every draft hashes alike: only the bytes and the mode separate keys.
        let specs: Vec<EntrySpec> = (0..40)
            .map(|i| spec((i * 7, i, i, i, i % 3 == 0, i % 2 == 0), i))
            .collect();
        let mut b = Builder::default();
        for s in &specs {
            b.add_spec(s).expect("valid spec");
        }
        let (drafts, new_of) = merge_duplicates(&b.texts, std::mem::take(&mut b.drafts), |_, _| 7);
        let want = expected(&specs);
        assert_eq!(drafts.len(), want.len());
        for (d, w) in drafts.iter().zip(&want) {
            let text = d.bytes(&b.texts);
            assert_eq!(text, w.text.as_bytes());
            assert_eq!(
                (d.attrs.mode, d.attrs.weight, d.attrs.action, d.origin.line),
                (w.mode, w.weight, w.action, w.line)
            );
            assert_eq!(b.categories[d.attrs.category as usize], w.category);
        }
        // Each draft became the survivor of its key.
        for (i, s) in specs.iter().enumerate() {
            let w = &want[new_of[i] as usize];
            assert_eq!((normalize(&s.text), s.mode), (w.text.clone(), w.mode));
        }
    }
}
