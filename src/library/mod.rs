//! The string library: load, normalize, index and scan.
//!
//! ```text
//! library.yaml ──load──▶ Builder (normalize, validate, merge duplicates)
//!    + includes            └─build──▶ Library { Index, entry metadata }
//! text ──Scanner::scan──▶ normalize ─▶ keyword scan ─▶ verify ─▶ [Hit]
//! ```
//!
//! A [`Library`] is immutable once built and shared between threads; each
//! thread scans with its own [`Scanner`], which owns the only buffers a scan
//! needs. Every distinct entry present in a text is reported once, with the
//! number of its occurrences, overlapping ones included.
//!
//! Modules: [`normalize`] (the one text normalization), [`model`] (entry
//! value types), `build` (collecting and merging entries), `keyword` (which
//! window of a string is its keyword), `index` (the keyword table and its
//! lists), `scan` (the scan loop), `load` (the YAML file format and
//! plain-text includes).

mod build;
mod hash;
mod index;
mod keyword;
mod load;
pub mod model;
pub mod normalize;
mod pairs;
mod scan;
mod tally;

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

pub use build::{AddError, Attrs, Builder, MAX_ENTRIES, MAX_TEXT_BYTES};
pub use hash::kernels;
pub use index::{BuildOptions, MAX_LEN};
pub use load::LoadError;
pub use model::{Action, EntrySpec, MatchMode, Origin};
pub use scan::{Hit, Scanner, ceiling, probe_stats, stage_times};

use index::Index;

/// Attributes shared by many entries (a library has few distinct sets).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Class {
    weight: f64,
    category: u32,
    action: Option<Action>,
    mode: MatchMode,
}

/// Figures about a built library.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Distinct entries after merging duplicates.
    pub entries: usize,
    /// Entries merged into an earlier one with the same normalized text.
    pub merged_duplicates: usize,
    /// Keys in the total hash table (one list each).
    pub distinct_keywords: usize,
    /// Entries in the longest list.
    pub longest_list: usize,
    /// Entries keyed whole, shorter than the narrowest window in use.
    pub short_entries: usize,
    /// Bytes of the distinct normalized entries.
    pub raw_bytes: usize,
    /// Heap bytes of the index (table, lists, string bytes, bitmaps).
    pub index_bytes: usize,
    /// Heap bytes of the whole library (index plus entry metadata).
    pub memory_bytes: usize,
    /// From the start of loading to the end of the build.
    pub build_time: Duration,
}

/// A compiled string library.
pub struct Library {
    index: Index,
    class: Vec<u32>,
    classes: Vec<Class>,
    origins: Vec<Origin>,
    /// Explicit ids, sorted by entry.
    ids: Vec<(u32, Box<str>)>,
    categories: Vec<String>,
    sources: Vec<String>,
    stats: Stats,
}

impl Library {
    /// Loads a library file (YAML, with its plain-text includes).
    pub fn load(path: &Path) -> Result<Library, LoadError> {
        Library::load_with(path, BuildOptions::default())
    }

    pub fn load_with(path: &Path, opts: BuildOptions) -> Result<Library, LoadError> {
        load::load(path, opts)
    }

    /// Loads a library from YAML text; `name` stands for the file in error
    /// messages and includes are resolved against `base`.
    pub fn from_yaml_str(text: &str, name: &Path, base: &Path) -> Result<Library, LoadError> {
        load::load_str(text, name, base, BuildOptions::default())
    }

    /// Builds a library from entry descriptions (tests, benchmarks).
    pub fn from_specs<'a>(
        specs: impl IntoIterator<Item = &'a EntrySpec>,
        opts: BuildOptions,
    ) -> Result<Library, AddError> {
        let mut b = Builder::new(opts);
        b.add_source("<memory>");
        let specs = specs.into_iter();
        b.reserve(specs.size_hint().0, 16);
        for spec in specs {
            b.add_spec(spec)?;
        }
        Ok(b.build())
    }

    /// Number of distinct entries.
    pub fn len(&self) -> usize {
        self.class.len()
    }

    pub fn is_empty(&self) -> bool {
        self.class.is_empty()
    }

    /// The entry numbered `n` (from a [`Hit`]).
    pub fn entry(&self, n: u32) -> Option<Entry<'_>> {
        ((n as usize) < self.len()).then_some(Entry { lib: self, n })
    }

    /// All entries, in index order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        (0..self.len() as u32).map(|n| Entry { lib: self, n })
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// Scans `text` with a fresh scanner (convenience; reuse a [`Scanner`]
    /// on hot paths).
    pub fn scan(&self, text: &str) -> Vec<Hit> {
        Scanner::new().scan(self, text).to_vec()
    }
}

/// A view of one entry.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    lib: &'a Library,
    n: u32,
}

impl<'a> Entry<'a> {
    pub fn number(&self) -> u32 {
        self.n
    }

    fn class(&self) -> &'a Class {
        &self.lib.classes[self.lib.class[self.n as usize] as usize]
    }

    /// The normalized text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lib.index.pattern(self.n as usize)).into_owned()
    }

    pub fn weight(&self) -> f64 {
        self.class().weight
    }

    pub fn category(&self) -> &'a str {
        self.lib.categories[self.class().category as usize].as_str()
    }

    /// Its category's place in [`Library::categories`].
    pub fn category_index(&self) -> usize {
        self.class().category as usize
    }

    pub fn action(&self) -> Option<Action> {
        self.class().action
    }

    pub fn mode(&self) -> MatchMode {
        self.class().mode
    }

    /// Where the entry stands in the library: the file of its first
    /// definition (in the order the files were read) and its line there,
    /// then its number. A total order that follows the files, for listing
    /// entries of equal rank (entry numbers follow the index's layout, not
    /// the files).
    pub fn place(&self) -> (u32, u32, u32) {
        let o = self.lib.origins[self.n as usize];
        (o.source, o.line, self.n)
    }

    /// The file and line of the first definition.
    pub fn origin(&self) -> (&'a str, u32) {
        let o = self.lib.origins[self.n as usize];
        let file = self
            .lib
            .sources
            .get(o.source as usize)
            .map_or("?", |s| s.as_str());
        (file, o.line)
    }

    /// The explicit ids of every definition merged into this entry, in
    /// file order.
    pub fn explicit_ids(&self) -> impl Iterator<Item = &'a str> {
        let ids = &self.lib.ids;
        let start = ids.partition_point(|&(e, _)| e < self.n);
        ids[start..]
            .iter()
            .take_while(move |&&(e, _)| e == self.n)
            .map(|(_, id)| &**id)
    }

    /// The first explicit id, or `file:line` of the first definition.
    pub fn id(&self) -> Cow<'a, str> {
        match self.explicit_ids().next() {
            Some(id) => Cow::Borrowed(id),
            None => {
                let (file, line) = self.origin();
                Cow::Owned(format!("{file}:{line}"))
            }
        }
    }
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id())
            .field("text", &self.text())
            .field("weight", &self.weight())
            .field("category", &self.category())
            .field("action", &self.action())
            .field("mode", &self.mode())
            .finish()
    }
}
