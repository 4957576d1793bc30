//! The keyword index: one total hash table from keyword to a list of the
//! library strings that contain it.
//!
//! # Shape
//!
//! Every string gets exactly one keyword (chosen by [`super::keyword`]):
//!
//! * a window of the string at offset `kw_off`, 4 bytes wide by default;
//! * in large libraries the window widens with the string, so that a
//!   keyword stays rare in text: 5 bytes for strings of 5–7 bytes (at least
//!   [`BuildOptions::tier5_min`] of them: 4-byte windows of short words
//!   occur all over ordinary text), 8 bytes for strings of 8 bytes or more
//!   (at least [`BuildOptions::tier8_min`] of them: 4-byte windows get
//!   crowded past a few hundred thousand strings);
//! * strings of 1–3 bytes are their own keyword, the "short" kind: those
//!   of 1 or 2 bytes found through an exact 64 Kibit table of their first
//!   two bytes, those of 3 bytes (a CJK character, a symbol) through a
//!   filter and a small hash table of their own.
//!
//! The lists are built as an arena linked by a `next` index (strings in
//! input order; the links come from sorting `(keyword, position)` pairs),
//! then frozen: each list is laid out as one contiguous run of nodes, the
//! following slot is the next element, and a `LAST` bit ends the run. The
//! runs of strings keyed whole come first, then the table's runs grouped by
//! the top [`GROUP_BITS`] of their keys' home slots (the order in which the
//! batched scan looks keys up, so it reads the nodes in the same sweep). The
//! table (`hashbrown::HashTable<u32>`) maps a keyword to the first node
//! of its run; a bucket is the node number alone. hashbrown's control byte
//! (seven bits of the hash) refuses most absent keys without reading a
//! bucket; a key whose control byte matches is confirmed against the
//! keyword in the node's prefix, which verifying its strings reads anyway.
//! Strings of 1 to 3 bytes are not in the
//! table: `byte_nodes` and `pair_nodes` name the runs of those of 1 or 2
//! bytes directly, and `short3` (a `HashTable` of its own, a few entries
//! that stay in the caches) those of 3 bytes.
//!
//! Nodes double as the library's entries: entry `i` is node `i`, so a hit
//! needs no further indirection to be counted.
//!
//! # Invariants
//!
//! * Patterns are normalized, non-empty, at most [`MAX_LEN`] bytes, valid
//!   UTF-8 without control bytes.
//! * `node.prefix` holds 8 bytes of the string (fewer, zero-padded, at its
//!   end) from its anchor: offset 0 when the keyword lies in the first 8
//!   bytes, else `kw_off`; so the keyword is always in the prefix. The other
//!   `len - 8` bytes, if any, are at `tails[node.tail..]`: those before the
//!   anchor, then those after the prefix.
//! * Every node of a run has the same keyword value; the table holds one
//!   entry per run of strings of 4 bytes or more, `short3` one per run of
//!   3-byte strings, each at the run's first node;
//!   the last node of a run, and only it, has `LAST` set.
//! * Each key of the table is the keyword of the node its bucket names
//!   ([`Index::is_key`]), so a list found for a key is that key's list once
//!   the node confirms it.
//! * The filter of each kind holds every keyword of that kind (the short
//!   filter: of the 3-byte strings); when the 4-byte keywords ride on the
//!   3-byte pass, the union filter holds every 3-byte keyword and, in the
//!   word of its first three bytes, every 4-byte keyword (the filters of
//!   those two kinds are then left empty); `pairs` holds the first two
//!   bytes of every string of 1 or 2 bytes (all 256 second bytes for a
//!   1-byte string), see [`super::pairs`].
//!
//! # Costs traded
//!
//! A node is 16 bytes and a bucket 4 (plus hashbrown's control byte): at a
//! million strings the table is 10 MiB instead of the 18 MiB of buckets
//! holding a 32-bit check beside the node number. The price: a key whose
//! control byte matches another key's earlier on its probe path (0.4 % of
//! 19 000 keys in a test) reads that key's node first, then probes again,
//! and an absent key whose control byte matches is refused only by a node
//! (by estimate, 16 buckets of a group half full against a 7-bit tag:
//! some 6 % of the absent keys that pass a filter). Most
//! candidates are verified (or refused) by one masked 64-bit compare of the
//! prefix without touching `tails`. The filters cost two to four bytes per
//! keyword and keep the table out of the scan loop for almost every text
//! position; each window width in use costs one filter pass over the text,
//! which is why the wider tiers switch on only for large libraries. The
//! direct tables for strings of 1 or 2 bytes cost 1.5 KiB, plus 1 KiB per
//! distinct first byte of the 2-byte strings.

use hashbrown::HashTable;

use super::hash::{Bitmap, TAG, TAG_SHORT, mix, read_le};
use super::keyword::{Chooser, byte_prior, mail_words};
use super::pairs::Pairs;

/// Longest library string, in bytes after normalization.
pub const MAX_LEN: usize = 1024;

const OFF_MASK: u16 = 0x3FF;
const KIND_SHIFT: u16 = 10;
const WORD_START: u16 = 1 << 13;
const WORD_END: u16 = 1 << 14;
const LAST: u16 = 1 << 15;

/// Kind of a node's keyword: the whole string (shorter than 4 bytes), or a
/// window of `kind + 3` bytes (kinds 1..=5 are widths 4..=8).
pub(crate) const KIND_SHORT: u16 = 0;
pub(crate) const KINDS: usize = 6;
/// Longest string keyed whole.
pub(crate) const SHORT_MAX: usize = 3;
/// Longest string found through the exact two-byte table alone.
pub(crate) const PAIR_MAX: usize = 2;
/// Top bits of a home slot by which the build groups the table's lists,
/// and the batched scan the keys it looks up, so that both come out in the
/// same order.
pub(crate) const GROUP_BITS: u32 = 11;
/// How many strings ahead freezing the lists prefetches their data.
const FREEZE_AHEAD: usize = 16;
/// How many strings ahead the keyword choice prefetches its counters.
const CHOOSE_AHEAD: usize = 4;
/// No node.
pub(crate) const NONE: u32 = u32::MAX;

#[inline(always)]
pub(crate) const fn width(kind: u16) -> usize {
    kind as usize + 3
}

/// Tuning of the index build. The defaults come from the benchmarks in
/// `docs/benchmarks.md`.
#[derive(Clone, Copy, Debug)]
pub struct BuildOptions {
    /// Filter bits per keyword (rounded up to a power of two in total).
    pub bits_per_key: usize,
    /// Use 5-byte keywords for strings of 5 to 7 bytes once the library has
    /// at least this many of them (4-byte windows of short words are common
    /// in text; each common keyword is a table lookup for nothing).
    pub tier5_min: usize,
    /// Use 8-byte keywords for strings of 8 bytes or more once the library
    /// has at least this many of them.
    pub tier8_min: usize,
    /// With 5-byte keywords on, test the 4-byte strings in the pass of the
    /// 3-byte ones (by their first three bytes) while there are at most
    /// this many; beyond, they get a pass of their own.
    pub merge4_max: usize,
    /// Texts of at least this many bytes are scanned in batches: the keys
    /// that pass the filters are queued, grouped by table slot and looked
    /// up in that order, and the lists found walked in that order (which
    /// the build makes node order too), so that an index larger than the
    /// caches is read in sweeps rather than at random. Below it, and for
    /// indexes whose table layout is unknown, the pipelined scan (which
    /// overlaps each chunk's misses with the next chunk's filters).
    pub batch_min: usize,
    /// Keys queued before a batch is looked up (16 bytes each, twice: the
    /// queue and its grouped copy; checked after each chunk of a filter
    /// pass, which queues at most two keys per position). More keys per
    /// batch read the index in denser sweeps.
    pub batch_keys: usize,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            bits_per_key: 16,
            tier5_min: 10_000,
            tier8_min: 200_000,
            merge4_max: 4096,
            batch_min: 1 << 16,
            batch_keys: 1 << 18,
        }
    }
}

/// One library string in the frozen lists (16 bytes).
///
/// `prefix` holds 8 bytes of the string starting at its *anchor*: offset 0
/// when the keyword lies within the first 8 bytes, else the keyword's
/// offset. `tails[tail..]` holds the other `len - 8` bytes (those before
/// the anchor, then those after the 8 prefix bytes), if any. The keyword can
/// therefore always be read from `prefix` alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub prefix: u64,
    pub tail: u32,
    pub len: u16,
    meta: u16,
}

impl Node {
    #[inline(always)]
    pub fn kw_off(&self) -> usize {
        (self.meta & OFF_MASK) as usize
    }
    #[inline(always)]
    pub fn kind(&self) -> u16 {
        (self.meta >> KIND_SHIFT) & 7
    }
    /// Offset in the string of the bytes held in `prefix`.
    #[inline(always)]
    pub fn anchor(&self) -> usize {
        anchor(self.kind(), self.kw_off())
    }
    #[inline(always)]
    pub fn is_last(&self) -> bool {
        self.meta & LAST != 0
    }
    #[inline(always)]
    pub fn word_start(&self) -> bool {
        self.meta & WORD_START != 0
    }
    #[inline(always)]
    pub fn word_end(&self) -> bool {
        self.meta & WORD_END != 0
    }
}

#[inline(always)]
fn anchor(kind: u16, kw_off: usize) -> usize {
    if kind == KIND_SHORT || kw_off + width(kind) <= 8 {
        0
    } else {
        kw_off
    }
}

/// The hash of a 3-byte string's bytes in [`Index::short3`].
#[inline(always)]
fn hash3(v: u32) -> u64 {
    mix(v as u64)
}

/// One string handed to the index builder.
pub(crate) struct Pattern<'a> {
    pub bytes: &'a [u8],
    pub word: bool,
}

/// The addresses of the table's parts, learned after the build so that the
/// scan can prefetch a key's control bytes and home bucket before it looks
/// the key up (on an index larger than the caches each lookup is otherwise
/// two dependent misses). hashbrown keeps the buckets just below the
/// control bytes, bucket `i` (4 bytes) at `ctrl - (i + 1) * 4`, and
/// starts a probe at control byte `hash & (buckets - 1)`. This is checked
/// against [`HashTable::get_bucket`] for every occupied bucket at build
/// time; if it does not hold, there is no layout and the scan only loses
/// its prefetches. The addresses are only ever prefetched, never read.
#[derive(Clone, Copy, Debug)]
struct TableLayout {
    ctrl: usize,
    bucket_mask: usize,
}

impl TableLayout {
    fn learn(table: &HashTable<u32>) -> Option<TableLayout> {
        let size = std::mem::size_of::<u32>();
        let buckets = table.num_buckets();
        let first = table.iter_buckets().next()?;
        let ctrl = std::ptr::from_ref(table.get_bucket(first)?) as usize + (first + 1) * size;
        let layout = TableLayout {
            ctrl,
            bucket_mask: buckets.checked_sub(1)?,
        };
        table
            .iter_buckets()
            .all(|i| {
                table
                    .get_bucket(i)
                    .is_some_and(|s| std::ptr::from_ref(s) as usize == layout.bucket(i))
            })
            .then_some(layout)
    }

    #[inline(always)]
    fn bucket(&self, i: usize) -> usize {
        self.ctrl.wrapping_sub((i + 1) * std::mem::size_of::<u32>())
    }
}

/// Asks the CPU to bring the line at `addr` into the caches. Never faults,
/// whatever the address. The pointer handed to the instruction carries no
/// provenance: it is never dereferenced, and Miri then has no
/// integer-to-pointer cast to warn of.
#[inline(always)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
            std::ptr::without_provenance(addr),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// The first node of the run of each 2-byte string, in blocks of 256 by
/// first byte, allocated only for the first bytes that occur (a few KiB
/// where a flat table would take 256).
pub(crate) struct PairNodes {
    /// Block of each first byte, or `u16::MAX`.
    block_of: Box<[u16; 256]>,
    /// `NONE` where no string is.
    nodes: Vec<u32>,
}

impl Default for PairNodes {
    fn default() -> PairNodes {
        PairNodes {
            block_of: Box::new([u16::MAX; 256]),
            nodes: Vec::new(),
        }
    }
}

impl PairNodes {
    /// The node of the string `b0 b1`, or [`NONE`].
    #[inline(always)]
    pub fn get(&self, b0: u8, b1: u8) -> u32 {
        let block = self.block_of[b0 as usize] as usize;
        self.nodes
            .get(block * 256 + b1 as usize)
            .copied()
            .unwrap_or(NONE)
    }

    fn set(&mut self, b0: u8, b1: u8, node: u32) {
        if self.block_of[b0 as usize] == u16::MAX {
            self.block_of[b0 as usize] = (self.nodes.len() / 256) as u16;
            self.nodes.extend_from_slice(&[NONE; 256]);
        }
        let at = self.block_of[b0 as usize] as usize * 256 + b1 as usize;
        if let Some(slot) = self.nodes.get_mut(at) {
            *slot = node;
        }
    }

    fn heap_bytes(&self) -> usize {
        512 + self.nodes.capacity() * 4
    }
}

/// The nodes of one run, up to and including the one marked `LAST`.
pub(crate) struct Run<'a> {
    /// Empty once the last node is out.
    nodes: &'a [Node],
    at: usize,
}

impl<'a> Iterator for Run<'a> {
    type Item = (usize, &'a Node);

    #[inline(always)]
    fn next(&mut self) -> Option<(usize, &'a Node)> {
        let (node, rest) = self.nodes.split_first()?;
        self.nodes = if node.is_last() { &[] } else { rest };
        self.at += 1;
        Some((self.at - 1, node))
    }
}

/// One filter pass: the key at a text position is `(window & mask) | tag`,
/// tested against `filters[filter]`, or against the union filter when
/// `filter` is [`UNION`]. Every key that passes is a candidate. The union
/// filter also carries a *rider*, `(mask, tag)` of the 4-byte keys put in
/// the words of their first three bytes, tested in the same memory access;
/// `own` is false when the union holds only riders (no 3-byte strings).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pass {
    pub filter: u16,
    pub mask: u64,
    pub tag: u64,
    pub own: bool,
    pub rider: Option<(u64, u64)>,
    /// The own keys are 3-byte strings, looked up at once in
    /// [`Index::short3`] rather than in the table.
    pub direct: bool,
}

/// [`Pass::filter`] of the pass over the union filter.
pub(crate) const UNION: u16 = u16::MAX;

pub(crate) struct Index {
    pub nodes: Vec<Node>,
    pub tails: Vec<u8>,
    /// Keyword -> first node of its list. A bucket is the node number
    /// alone: the key is in the node's prefix, which verifying a candidate
    /// reads anyway (see [`Index::find_slot`]).
    pub table: HashTable<u32>,
    /// Where the table keeps its control bytes and buckets, for prefetching
    /// (see [`TableLayout`]); `None` when it could not be confirmed.
    layout: Option<TableLayout>,
    /// See [`BuildOptions::batch_min`] and [`BuildOptions::batch_keys`].
    pub batch_min: usize,
    pub batch_keys: usize,
    /// One filter per keyword kind (`filters[KIND_SHORT]` holds the
    /// 3-byte strings); `kinds` lists the window kinds in use.
    pub filters: [Bitmap; KINDS],
    /// With the 4-byte strings riding on the 3-byte pass: every 3-byte
    /// keyword, and every 4-byte one in the word of its first three bytes.
    pub union: Option<Bitmap>,
    pub kinds: Vec<u16>,
    /// The filter passes over the text, one per kind of key in use.
    pub passes: Vec<Pass>,
    /// The first node of the run of each 2-byte string: strings of 1 or 2
    /// bytes are looked up directly, never in the table.
    pub pair_nodes: PairNodes,
    /// The first node of the run of each 3-byte string, by its bytes (a
    /// little-endian `u32`): a small table of their own, since they are
    /// few and found often; it stays in the caches, so their lookups need
    /// not wait in the scan's pipeline.
    pub short3: HashTable<(u32, u32)>,
    /// The first node of the run of the 1-byte string `b0`, or [`NONE`].
    pub byte_nodes: Box<[u32; 256]>,
    /// The pairs of bytes that start a string of 1 or 2 bytes (exact, so
    /// these strings need no filter), and the byte sets that find the
    /// positions worth checking.
    pub pairs: Pairs,
    pub has_pairs: bool,
    pub longest_list: usize,
    /// The nodes below this one are the strings keyed whole (one to three
    /// bytes), whose runs the build lays out first.
    pub short_nodes: usize,
}

/// [`mask`] of each kind's window width (none for the short kind).
const WINDOW_MASK: [u64; KINDS] = [0, mask(4), mask(5), mask(6), mask(7), mask(8)];

#[inline(always)]
pub(crate) const fn mask(k: usize) -> u64 {
    if k >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * k)) - 1
    }
}

/// The keyword value of the first bytes of `w` (a little-endian window) for
/// `kind`; for a short string `kind` is 0 and `len` its length.
#[inline(always)]
pub(crate) fn key_of_window(w: u64, kind: u16, len: usize) -> u64 {
    if kind == KIND_SHORT {
        (w & mask(len)) | TAG_SHORT[len]
    } else {
        (w & mask(width(kind))) | TAG[kind as usize]
    }
}

impl Index {
    /// Builds the index. Returns it with the permutation applied to the
    /// input: `order[i]` is the input position of entry `i`.
    pub fn build(patterns: &[Pattern<'_>], opts: BuildOptions) -> (Index, Vec<u32>) {
        let t0 = std::time::Instant::now();
        let mid = patterns
            .iter()
            .filter(|p| (5..8).contains(&p.bytes.len()))
            .count();
        let long = patterns.iter().filter(|p| p.bytes.len() >= 8).count();
        let use5 = mid > 0 && mid >= opts.tier5_min;
        let use8 = long > 0 && long >= opts.tier8_min;
        let kind_of = |len: usize| -> u16 {
            match len {
                ..=SHORT_MAX => KIND_SHORT,
                8.. if use8 => 5,
                5.. if use5 => 2,
                _ => 1,
            }
        };
        let key = |kind: u16, w: &[u8]| key_of_window(read_le(&w[..w.len().min(8)]), kind, w.len());

        // Pass 1: how common is each window in the library.
        let windows: usize = patterns
            .iter()
            .map(|p| p.bytes.len().saturating_sub(3))
            .sum();
        let mut chooser = Chooser::new(windows);
        let mut buf = Vec::with_capacity(MAX_LEN + 8);
        let kinds_used = [Some(1), use5.then_some(2), use8.then_some(5)];
        for w in mail_words() {
            for &kind in kinds_used.iter().flatten() {
                for_windows(w.as_bytes(), kind, &mut buf, |_, k, _| {
                    chooser.count_common(k)
                });
            }
        }
        for p in patterns {
            let kind = kind_of(p.bytes.len());
            if kind != KIND_SHORT {
                for_windows(p.bytes, kind, &mut buf, |_, k, _| chooser.count(k));
            }
        }
        chooser.counted();

        let t_pass1 = t0.elapsed();
        // Pass 2: each string's rarest window, linked into its list: an
        // arena where `next[i]` follows entry `i`, tails kept by key.
        const NIL: u32 = u32::MAX;
        let mut keys = Vec::with_capacity(patterns.len());
        let mut offs = Vec::with_capacity(patterns.len());
        let mut next = vec![NIL; patterns.len()];
        let mut is_head = vec![false; patterns.len()];
        for (j, p) in patterns.iter().enumerate() {
            // The counters of a string a few ahead are fetched meanwhile.
            if let Some(q) = patterns.get(j + CHOOSE_AHEAD) {
                let kind = kind_of(q.bytes.len());
                if kind != KIND_SHORT {
                    for_windows(q.bytes, kind, &mut buf, |_, k, _| chooser.prefetch(k));
                }
            }
            let kind = kind_of(p.bytes.len());
            let (off, k) = if kind == KIND_SHORT {
                (0, key(kind, p.bytes))
            } else {
                let mut best = (u64::MAX, u32::MAX, 0, 0);
                for_windows(p.bytes, kind, &mut buf, |o, k, prior| {
                    let (c, assigned) = chooser.cost(k, prior);
                    if (c, assigned) < (best.0, best.1) {
                        best = (c, assigned, o, k);
                    }
                });
                (best.2, best.3)
            };
            chooser.assign(k);
            keys.push(k);
            offs.push(off as u16);
        }
        drop(chooser);
        // Link each keyword's strings in input order: sorted by (key,
        // input position), a keyword's strings are one run (a sort beats a
        // map here: a million random inserts miss the caches each time).
        let mut by_key: Vec<(u64, u32)> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u32))
            .collect();
        by_key.sort_unstable();
        for run in by_key.chunk_by(|a, b| a.0 == b.0) {
            if let Some(&(_, first)) = run.first() {
                is_head[first as usize] = true;
            }
            for pair in run.windows(2) {
                next[pair[0].1 as usize] = pair[1].1;
            }
        }
        drop(by_key);
        let t_choose = t0.elapsed();

        // Freeze: lay each list out as a contiguous run, strings in input
        // order within a list; the lists of strings keyed whole first, in
        // the order their first string came, then the table's lists in the
        // order of their keys' home slots in the table (the batched scan
        // looks keys up in slot order, and so walks the lists it finds in
        // node order, reading the nodes in the same sweep as the table).
        let table_keys = is_head
            .iter()
            .zip(patterns)
            .filter(|&(&h, p)| h && p.bytes.len() > SHORT_MAX)
            .count();
        // The table itself, made now for its number of buckets.
        let table = HashTable::with_capacity(table_keys);
        let slot_mask = table.num_buckets().saturating_sub(1);
        // Grouped, not sorted: the scan groups keys by the top bits of
        // their slots (`GROUP_BITS`) and needs no finer order.
        let slot_bits = usize::BITS - slot_mask.leading_zeros();
        let group = |i: usize| -> usize {
            if patterns[i].bytes.len() > SHORT_MAX {
                1 + ((mix(keys[i]) as usize & slot_mask) >> slot_bits.saturating_sub(GROUP_BITS))
            } else {
                0
            }
        };
        let mut starts = vec![0u32; (1 << GROUP_BITS) + 2];
        for (i, _) in is_head.iter().enumerate().filter(|&(_, &h)| h) {
            starts[group(i) + 1] += 1;
        }
        for g in 1..starts.len() {
            starts[g] += starts[g - 1];
        }
        let mut heads = vec![0u32; starts[starts.len() - 1] as usize];
        for (i, _) in is_head.iter().enumerate().filter(|&(_, &h)| h) {
            let at = &mut starts[group(i)];
            if let Some(slot) = heads.get_mut(*at as usize) {
                *slot = i as u32;
            }
            *at += 1;
        }
        let mut order: Vec<u32> = Vec::with_capacity(patterns.len());
        for i in heads {
            let mut j = i;
            while j != NIL {
                order.push(j);
                j = next[j as usize];
            }
        }

        let tail_bytes: usize = patterns
            .iter()
            .map(|p| p.bytes.len().saturating_sub(8))
            .sum();
        let mut nodes = Vec::with_capacity(patterns.len());
        let mut tails = Vec::with_capacity(tail_bytes);
        let mut pair_nodes = PairNodes::default();
        let mut byte_nodes = Box::new([NONE; 256]);
        let mut pairs = Pairs::default();
        let mut per_kind = [0usize; KINDS];
        let (mut pair_strings, mut three_heads) = (0, 0);
        // The keys of the lists' first nodes, in node order, for the table.
        let mut head_keys: Vec<Option<u64>> = Vec::with_capacity(patterns.len());
        // `order` visits the strings at random: what each needs is fetched
        // a few strings ahead (the pattern itself a few more, for the
        // address of its bytes).
        let ahead = |j: usize| order.get(j).map(|&q| q as usize);
        for (j, &i) in order.iter().enumerate() {
            if let Some(q) = ahead(j + 2 * FREEZE_AHEAD) {
                prefetch(std::ptr::from_ref(&patterns[q]) as usize);
            }
            if let Some(q) = ahead(j + FREEZE_AHEAD) {
                prefetch(patterns[q].bytes.as_ptr() as usize);
                prefetch(std::ptr::from_ref(&offs[q]) as usize);
                prefetch(std::ptr::from_ref(&next[q]) as usize);
                prefetch(std::ptr::from_ref(&is_head[q]) as usize);
                prefetch(std::ptr::from_ref(&keys[q]) as usize);
            }
            let p = &patterns[i as usize];
            let b = p.bytes;
            let kind = kind_of(b.len());
            head_keys.push(is_head[i as usize].then(|| keys[i as usize]));
            if is_head[i as usize] {
                per_kind[kind as usize] += 1;
            }
            match b.len() {
                ..=PAIR_MAX if is_head[i as usize] => pair_strings += 1,
                SHORT_MAX if is_head[i as usize] => three_heads += 1,
                _ => {}
            }
            if kind == KIND_SHORT && b.len() <= PAIR_MAX {
                pairs.insert(b);
                // The head of the run: the same bytes may be two entries (a
                // word and a substring one).
                if is_head[i as usize] {
                    let at = nodes.len() as u32;
                    match b {
                        [b0] => byte_nodes[*b0 as usize] = at,
                        [b0, b1] => pair_nodes.set(*b0, *b1, at),
                        _ => {}
                    }
                }
            }
            let off = offs[i as usize];
            let mut meta = off | (kind << KIND_SHIFT);
            if p.word && b[0].is_ascii_alphanumeric() {
                meta |= WORD_START;
            }
            if p.word && b[b.len() - 1].is_ascii_alphanumeric() {
                meta |= WORD_END;
            }
            if next[i as usize] == NIL {
                meta |= LAST;
            }
            let a = anchor(kind, off as usize);
            let held = (b.len() - a).min(8);
            nodes.push(Node {
                prefix: read_le(&b[a..a + held]),
                tail: tails.len() as u32,
                len: b.len() as u16,
                meta,
            });
            tails.extend_from_slice(&b[..a]);
            tails.extend_from_slice(&b[a + held..]);
        }

        let t_freeze = t0.elapsed();
        // A few 4-byte keywords (the 4-byte strings, when 5-byte windows
        // take the longer ones) ride on the 3-byte pass: each sets its two
        // bits in the union filter's word of its first three bytes, so one
        // gathered word answers for the 3-byte key and the 4-byte key of a
        // position. That saves a whole pass over the text for a handful of
        // strings.
        let merge4 = use5 && per_kind[1] > 0 && per_kind[1] <= opts.merge4_max;
        let mut index = Index {
            nodes,
            tails,
            table,
            layout: None,
            batch_min: opts.batch_min,
            batch_keys: opts.batch_keys,
            // The short filter holds few keys (3-byte strings: single CJK
            // characters, symbols) that are common in text: more bits.
            // The keys in the union need no filter of their own.
            filters: std::array::from_fn(|k| {
                let bits = if k == KIND_SHORT as usize {
                    opts.bits_per_key * 4
                } else {
                    opts.bits_per_key
                };
                let in_union = merge4 && (k == 1 || k == KIND_SHORT as usize);
                Bitmap::with_keys(if in_union { 0 } else { per_kind[k] }, bits)
            }),
            union: merge4.then(|| {
                let keys = per_kind[KIND_SHORT as usize] + per_kind[1];
                Bitmap::with_keys(keys, opts.bits_per_key * 4)
            }),
            kinds: (1..KINDS as u16)
                .filter(|&k| per_kind[k as usize] > 0)
                .collect(),
            passes: Vec::new(),
            pair_nodes,
            short3: HashTable::new(),
            byte_nodes,
            pairs,
            has_pairs: pair_strings > 0,
            longest_list: 0,
            short_nodes: patterns
                .iter()
                .filter(|p| p.bytes.len() <= SHORT_MAX)
                .count(),
        };
        let pass = |filter: u16, mask: u64, tag: u64| Pass {
            filter,
            mask,
            tag,
            own: true,
            rider: None,
            direct: false,
        };
        let three = |filter| Pass {
            direct: true,
            ..pass(filter, mask(SHORT_MAX), TAG_SHORT[SHORT_MAX])
        };
        index.passes = index
            .kinds
            .iter()
            .filter(|&&k| !(merge4 && k == 1))
            .map(|&k| pass(k, mask(width(k)), TAG[k as usize]))
            .collect();
        if merge4 {
            index.passes.push(Pass {
                own: three_heads > 0,
                rider: Some((mask(width(1)), TAG[1])),
                ..three(UNION)
            });
        } else if three_heads > 0 {
            index.passes.push(three(KIND_SHORT));
        }
        let mut run = 0;
        for (pos, &head_key) in head_keys.iter().enumerate() {
            run += 1;
            let node = index.nodes[pos];
            // Strings of 1 or 2 bytes have tables of their own.
            if let Some(k) = head_key
                && node.len as usize > PAIR_MAX
            {
                match (node.kind(), index.union.as_mut()) {
                    (KIND_SHORT, Some(u)) => u.insert(k),
                    (1, Some(u)) => u.insert_in(key_of_window(k, KIND_SHORT, SHORT_MAX), k),
                    (kind, _) => index.filters[kind as usize].insert(k),
                }
                if node.len as usize == SHORT_MAX {
                    let v = (k & mask(SHORT_MAX)) as u32;
                    index
                        .short3
                        .insert_unique(hash3(v), (v, pos as u32), |e| hash3(e.0));
                } else {
                    index.insert_key(pos, k);
                }
            }
            if node.is_last() {
                index.longest_list = index.longest_list.max(run);
                run = 0;
            }
        }
        // Padding: the scan reads tails eight bytes at a time.
        index.tails.extend_from_slice(&[0; 8]);
        index.tails.shrink_to_fit();
        index.layout = TableLayout::learn(&index.table);
        if index.layout.is_none() && !index.table.is_empty() {
            log::debug!("index build: table layout not confirmed, scanning without prefetches");
        }
        log::debug!(
            "index build: keywords per kind {per_kind:?}, filter bytes {:?}, union {:?}, table buckets {}",
            index.filters.each_ref().map(Bitmap::heap_bytes),
            index.union.as_ref().map(Bitmap::heap_bytes),
            index.table.num_buckets()
        );
        log::debug!(
            "index build: windows counted {:?}, keywords chosen {:?}, lists frozen {:?}, table and filters {:?}",
            t_pass1,
            t_choose - t_pass1,
            t_freeze - t_choose,
            t0.elapsed() - t_freeze
        );
        (index, order)
    }

    /// The whole string of entry `n`.
    pub fn pattern(&self, n: usize) -> Vec<u8> {
        let node = &self.nodes[n];
        let (len, a, tail) = (node.len as usize, node.anchor(), node.tail as usize);
        let held = (len - a).min(8);
        let rest = self.tails.get(tail..tail + len - held).unwrap_or_default();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&rest[..a.min(rest.len())]);
        out.extend_from_slice(&node.prefix.to_le_bytes()[..held]);
        out.extend_from_slice(rest.get(a..).unwrap_or_default());
        out
    }

    /// The filter a pass tests at every position.
    #[inline(always)]
    pub fn pass_filter(&self, pass: &Pass) -> Option<&Bitmap> {
        match pass.filter {
            UNION => self.union.as_ref(),
            f => self.filters.get(f as usize),
        }
    }

    /// The nodes of the run (one list) that starts at node `head`, with
    /// their numbers; none if `head` is [`NONE`].
    #[inline(always)]
    pub fn run(&self, head: usize) -> Run<'_> {
        Run {
            nodes: self.nodes.get(head..).unwrap_or_default(),
            at: head,
        }
    }

    /// The head of the list for `key`, whose hash is `h`.
    #[inline(always)]
    pub fn find(&self, h: u64, key: u64) -> Option<usize> {
        self.table
            .find(h, |&n| self.is_key(n as usize, key))
            .map(|&n| n as usize)
    }

    /// The head of the first list on the probe path of a key of hash `h`
    /// whose control byte (seven bits of the hash) matches, without reading
    /// a node: `None` if the key is surely absent. Usually the key's own
    /// list; the caller confirms it with [`Index::is_key`] (reading the node
    /// it is about to verify anyway) and, if it is another key's, falls
    /// back to [`Index::find`].
    #[inline(always)]
    pub fn find_slot(&self, h: u64) -> Option<usize> {
        self.table.find(h, |_| true).map(|&n| n as usize)
    }

    /// Calls `f` with the head of every list on the probe path of a key of
    /// hash `h` whose control byte matches, without reading a node: the
    /// key's own list, if it is in the table, is one of them (usually the
    /// only one). (`find` with a test that refuses every bucket: unlike
    /// `iter_hash`, whose iterator the compiler left out of line, it
    /// inlines.)
    #[inline(always)]
    pub fn for_each_head(&self, h: u64, mut f: impl FnMut(usize)) {
        let _ = self.table.find(h, |&n| {
            f(n as usize);
            false
        });
    }

    /// Whether node `n` heads the list of `key` (a key of the table).
    #[inline(always)]
    pub fn is_key(&self, n: usize, key: u64) -> bool {
        node_key(&self.nodes, n as u32) == key
    }

    /// Prefetches what looking up a key of hash `h` reads first: the line of
    /// its home control byte and that of its home bucket (where most keys
    /// are found; prefetching the whole group's lines measured slower).
    #[inline(always)]
    pub fn prefetch_slot(&self, h: u64) {
        if let Some(l) = &self.layout {
            let home = h as usize & l.bucket_mask;
            prefetch(l.ctrl.wrapping_add(home));
            prefetch(l.bucket(home));
        }
    }

    /// The table's bucket mask (home slot = hash & mask), if its layout is
    /// known.
    #[inline(always)]
    pub fn bucket_mask(&self) -> Option<usize> {
        self.layout.map(|l| l.bucket_mask)
    }

    /// Prefetches node `n`.
    #[inline(always)]
    pub fn prefetch_node(&self, n: usize) {
        prefetch(self.nodes.as_ptr().wrapping_add(n) as usize);
    }

    /// Entries keyed whole (the short kind).
    pub fn short_entries(&self) -> usize {
        self.short_nodes
    }

    pub fn distinct_keywords(&self) -> usize {
        self.table.len() + self.short3.len()
    }

    /// Puts the list at node `pos`, of keyword `key`, in the table.
    fn insert_key(&mut self, pos: usize, key: u64) {
        let nodes = &self.nodes;
        self.table
            .insert_unique(mix(key), pos as u32, |&n| mix(node_key(nodes, n)));
    }

    /// The head of the run of the 3-byte string whose bytes are `v`.
    #[inline(always)]
    pub fn find3(&self, v: u32) -> Option<usize> {
        self.short3
            .find(hash3(v), |e| e.0 == v)
            .map(|e| e.1 as usize)
    }

    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.tails.capacity()
            + self.table.allocation_size()
            + self.short3.allocation_size()
            + self.filters.iter().map(Bitmap::heap_bytes).sum::<usize>()
            + self.union.as_ref().map_or(0, Bitmap::heap_bytes)
            + std::mem::size_of::<[u64; 1024]>()
            + self.pair_nodes.heap_bytes()
            + std::mem::size_of::<[u32; 256]>()
    }
}

/// Calls `f(offset, key, prior)` for every window of `kind` in `bytes`
/// (at least as long as the width), with the text prior of its bytes kept
/// as a running sum; `buf` is scratch space.
#[inline]
fn for_windows(bytes: &[u8], kind: u16, buf: &mut Vec<u8>, mut f: impl FnMut(usize, u64, u32)) {
    let k = width(kind);
    if bytes.len() < k {
        return;
    }
    buf.clear();
    buf.extend_from_slice(bytes);
    buf.extend_from_slice(&[0; 8]);
    let mut prior: u32 = bytes[..k].iter().map(|&b| byte_prior(b)).sum();
    for (o, w) in buf.windows(8).take(bytes.len() - k + 1).enumerate() {
        let Ok(a) = <[u8; 8]>::try_from(w) else {
            break;
        };
        f(o, key_of_window(u64::from_le_bytes(a), kind, 0), prior);
        if let Some(&next) = bytes.get(o + k) {
            prior = prior + byte_prior(next) - byte_prior(bytes[o]);
        }
    }
}

/// The keyword value of node `n` of a window kind (the only kinds in the
/// table), read from its prefix: 0 for a short string and `u64::MAX` for
/// no node, neither of them a key. Lean on purpose: the scan confirms every
/// list it finds with it.
#[inline(always)]
fn node_key(nodes: &[Node], n: u32) -> u64 {
    match nodes.get(n as usize) {
        Some(node) => {
            let kind = node.kind() as usize % KINDS;
            let shifted = node.prefix >> (8 * (node.kw_off() - node.anchor()));
            (shifted & WINDOW_MASK[kind]) | TAG[kind]
        }
        None => u64::MAX,
    }
}

#[cfg(test)]
impl Index {
    /// The table's keys whose first control-byte match is another key's
    /// list, as (own head, that list's head): the lists the scan confirms,
    /// finds wrong and looks up again.
    pub(crate) fn shadowed(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.table.iter().filter_map(|&head| {
            let first = self.find_slot(mix(node_key(&self.nodes, head)))?;
            (first != head as usize).then_some((head as usize, first))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(strs: &[&str], opts: BuildOptions) -> (Index, Vec<u32>) {
        let pats: Vec<Pattern> = strs
            .iter()
            .map(|s| Pattern {
                bytes: s.as_bytes(),
                word: false,
            })
            .collect();
        Index::build(&pats, opts)
    }

    #[test]
    fn lists_are_contiguous_runs_with_one_table_or_direct_entry_each() {
        let strs = [
            "abcdxyz",
            "abcdqqq",
            "zzabcd",
            "ab",
            "a",
            "发票代开",
            "longer than eight",
        ];
        let (idx, order) = build(&strs, BuildOptions::default());
        assert_eq!(idx.nodes.len(), strs.len());
        for (n, &i) in order.iter().enumerate() {
            assert_eq!(idx.pattern(n), strs[i as usize].as_bytes());
        }
        // The strings keyed whole come first.
        assert_eq!(idx.short_nodes, 2);
        for (n, node) in idx.nodes.iter().enumerate() {
            assert_eq!(node.kind() == KIND_SHORT, n < idx.short_nodes);
        }
        let runs = idx.nodes.iter().filter(|n| n.is_last()).count();
        // "ab" and "a" are in the direct tables, not in the hash table.
        assert_eq!(runs, idx.distinct_keywords() + 2);
        for n in 0..idx.nodes.len() {
            let key = node_key(&idx.nodes, n as u32);
            let head = match &*idx.pattern(n) {
                [b0] => idx.byte_nodes[*b0 as usize] as usize,
                [b0, b1] => idx.pair_nodes.get(*b0, *b1) as usize,
                [b0, b1, b2] => idx
                    .find3(u32::from_le_bytes([*b0, *b1, *b2, 0]))
                    .expect("every 3-byte string is in its table"),
                _ => idx
                    .find(mix(key), key)
                    .expect("every longer keyword is in the table"),
            };
            // The head starts the run that holds n.
            assert!(head <= n);
            assert!(idx.nodes[head..n].iter().all(|x| !x.is_last()));
        }
    }

    #[test]
    fn keys_are_confirmed_by_their_node_and_kind() {
        // Enough keys that some share their control byte with another key
        // earlier on their probe path: the first match is then not theirs.
        let strs: Vec<String> = (0..20_000).map(|i| format!("w{i:05}q")).collect();
        let mut strs: Vec<&str> = strs.iter().map(String::as_str).collect();
        strs.extend(["abcdefghijk", "xabcdefgh", "abcd", "abcde"]);
        let (idx, _) = build(&strs, BuildOptions::default());
        for &head in &idx.table {
            let head = head as usize;
            let key = node_key(&idx.nodes, head as u32);
            let h = mix(key);
            assert!(idx.is_key(head, key));
            assert_eq!(idx.find(h, key), Some(head));
            assert!(idx.find_slot(h).is_some(), "a present key has a match");
            // The same bytes as a key of another kind are another key.
            let node = &idx.nodes[head];
            let w = node.prefix >> (8 * (node.kw_off() - node.anchor()));
            for kind in 1..KINDS as u16 {
                let other = key_of_window(w, kind, 0);
                assert_eq!(
                    idx.is_key(head, other),
                    kind == node.kind(),
                    "{kind} {node:?}"
                );
            }
        }
        let shadowed: Vec<(usize, usize)> = idx.shadowed().collect();
        assert!(!shadowed.is_empty(), "the fallback went untested");
        for (head, first) in shadowed {
            assert!(!idx.is_key(first, node_key(&idx.nodes, head as u32)));
        }
    }

    #[test]
    fn tier8_is_used_only_past_the_threshold() {
        let strs = ["abcdefghij", "0123456789"];
        let (idx, _) = build(&strs, BuildOptions::default());
        assert_eq!(idx.kinds, [1]);
        let opts = BuildOptions {
            tier8_min: 1,
            ..BuildOptions::default()
        };
        let (idx, order) = build(&strs, opts);
        assert_eq!(idx.kinds, [5]);
        assert!(idx.nodes.iter().all(|n| n.kind() == 5));
        for (n, &i) in order.iter().enumerate() {
            assert_eq!(idx.pattern(n), strs[i as usize].as_bytes());
        }
    }

    #[test]
    fn tier5_takes_strings_of_five_to_seven_bytes() {
        let strs = ["abcd", "abcde", "abcdefg", "abcdefgh", "ab"];
        let opts = BuildOptions {
            tier5_min: 1,
            tier8_min: 1,
            ..BuildOptions::default()
        };
        let (idx, order) = build(&strs, opts);
        assert_eq!(idx.kinds, [1, 2, 5]);
        for (n, &i) in order.iter().enumerate() {
            let want = match strs[i as usize].len() {
                0..=3 => KIND_SHORT,
                4 => 1,
                5..=7 => 2,
                _ => 5,
            };
            assert_eq!(idx.nodes[n].kind(), want);
        }
    }

    #[test]
    fn shared_rare_window_is_avoided_when_a_rarer_one_exists() {
        // "tion" is in every string; each string also has a unique window.
        let strs = ["nation", "motion", "lotion", "potion"];
        let (idx, _) = build(&strs, BuildOptions::default());
        assert_eq!(idx.longest_list, 1);
    }
}
