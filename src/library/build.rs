//! Collecting entries: normalization, validation and duplicate merging,
//! before the index is built.
//!
//! Entries are keyed by their normalized text and match mode: the same text
//! as a substring entry and as a word entry are two rules. A duplicate key
//! merges into the first entry: the highest weight wins (with its
//! category), the strongest action wins, every id is kept, and the merge is
//! counted.
//!
//! Texts live in one byte arena rather than one `String` each, and the
//! duplicate table stores only entry numbers, so collecting a million
//! entries costs little more than their bytes.

use std::hash::BuildHasher;
use std::time::Instant;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

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

/// Collects entries and builds a [`Library`].
pub struct Builder {
    opts: BuildOptions,
    started: Instant,
    texts: Vec<u8>,
    drafts: Vec<Draft>,
    dedup: HashTable<u32>,
    hasher: DefaultHashBuilder,
    categories: Vec<String>,
    category_ids: HashMap<String, u32>,
    sources: Vec<String>,
    ids: Vec<(u32, Box<str>)>,
    merged: usize,
    raw_bytes: usize,
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
            dedup: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            categories: Vec::new(),
            category_ids: HashMap::new(),
            sources: Vec::new(),
            ids: Vec::new(),
            merged: 0,
            raw_bytes: 0,
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
        if let Some(&id) = self.category_ids.get(name) {
            return id;
        }
        let id = self.categories.len() as u32;
        self.categories.push(name.to_owned());
        self.category_ids.insert(name.to_owned(), id);
        id
    }

    /// Makes room for `additional` more entries of about `avg_len` bytes
    /// (a hint: growing the tables while adding costs more).
    pub fn reserve(&mut self, additional: usize, avg_len: usize) {
        self.drafts.reserve(additional);
        self.texts.reserve(additional.saturating_mul(avg_len));
        let (drafts, texts, hasher) = (&self.drafts, &self.texts, &self.hasher);
        self.dedup.reserve(additional, |&x| {
            let x = &drafts[x as usize];
            let b = &texts[x.start as usize..x.start as usize + x.len as usize];
            hasher.hash_one((b, x.attrs.mode == MatchMode::Word))
        });
    }

    /// Entries added so far (after merging).
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
    /// and mode) is merged into it.
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
        // Offsets are `u32` in the builder and the index.
        if self.texts.len() + norm.len() > MAX_TEXT_BYTES || self.drafts.len() >= MAX_ENTRIES {
            return Err(AddError::TooLarge);
        }
        let hash = self.hasher.hash_one((norm, attrs.mode == MatchMode::Word));
        let texts = &self.texts;
        let drafts = &self.drafts;
        let same = |&d: &u32| {
            let d = &drafts[d as usize];
            d.attrs.mode == attrs.mode
                && &texts[d.start as usize..d.start as usize + d.len as usize] == norm
        };
        let entry = if let Some(&d) = self.dedup.find(hash, same) {
            self.merged += 1;
            let old = &mut self.drafts[d as usize].attrs;
            if attrs.weight > old.weight {
                old.weight = attrs.weight;
                old.category = attrs.category;
            }
            old.action = old.action.max(attrs.action);
            d
        } else {
            let d = self.drafts.len() as u32;
            self.raw_bytes += norm.len();
            self.drafts.push(Draft {
                start: self.texts.len() as u32,
                len: norm.len() as u16,
                attrs,
                origin,
            });
            self.texts.extend_from_slice(norm);
            let (texts, drafts, hasher) = (&self.texts, &self.drafts, &self.hasher);
            self.dedup.insert_unique(hash, d, |&x| {
                let x = &drafts[x as usize];
                let b = &texts[x.start as usize..x.start as usize + x.len as usize];
                hasher.hash_one((b, x.attrs.mode == MatchMode::Word))
            });
            d
        };
        if let Some(id) = id {
            self.ids.push((entry, id.into()));
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
            dedup,
            categories,
            sources,
            ids,
            merged,
            raw_bytes,
            ..
        } = self;
        drop(dedup);
        log::debug!("library collected in {:?}", started.elapsed());
        let patterns: Vec<Pattern> = drafts
            .iter()
            .map(|d| Pattern {
                bytes: &texts[d.start as usize..d.start as usize + d.len as usize],
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
            .map(|(e, id)| (new_pos[e as usize], id))
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
