//! The keyword index: one total hash table from keyword to a list of the
//! library strings that contain it.
//!
//! # Shape
//!
//! Every string gets exactly one keyword (see [`super::keyword`]):
//!
//! * strings of 1–3 bytes: the whole string (the "short" kind);
//! * strings of 4 bytes or more: a 4-byte window at offset `kw_off`;
//! * in large libraries (at least [`BuildOptions::tier8_min`] strings of 8
//!   bytes or more), those strings use an 8-byte window instead: 4-byte
//!   windows get crowded past a few hundred thousand strings and each hit
//!   would walk a long list.
//!
//! The lists are built as an arena linked by a `next` index (strings in
//! input order, heads and tails kept in a build-time map), then frozen: each
//! list is laid out as one contiguous run of nodes, the following slot is
//! the next element, and a `LAST` bit ends the run. The table
//! (`hashbrown::HashTable`) maps a keyword to the first node of its run; a
//! bucket holds the keyword too (12 bytes), so a keyword that is not in the
//! library is refused without touching the nodes, and lookups are
//! independent of each other (the scanner issues a block's lookups before
//! it verifies any candidate, so their cache misses overlap).
//!
//! Nodes double as the library's entries: entry `i` is node `i`, so a hit
//! needs no further indirection to be counted.
//!
//! # Invariants
//!
//! * Patterns are normalized, non-empty, at most [`MAX_LEN`] bytes, valid
//!   UTF-8 without control bytes.
//! * `node.prefix` holds the first `min(len, 8)` bytes, zero-padded; the
//!   remaining `len - 8` bytes are at `tails[node.tail..]`.
//! * Every node of a run has the same keyword value; the table holds one
//!   entry per run, at the run's first node; the last node of a run, and
//!   only it, has `LAST` set.
//! * Each bitmap holds the hash of every keyword of its kind.
//!
//! # Costs traded
//!
//! A node is 16 bytes and carries the first 8 bytes of its string, so most
//! candidates are verified (or refused) by one masked 64-bit compare without
//! touching `tails`. The bitmaps cost about two bytes per keyword and keep
//! the table out of the scan loop for almost every text position.

use hashbrown::hash_map::Entry;
use hashbrown::{HashMap, HashTable};

use super::hash::{Bitmap, MixState, TAG_SHORT, TAG4, mix, read_le};
use super::keyword::Chooser;

/// Indexes up to this size are taken to stay in the caches (a typical L2 is
/// 1–2 MiB per core).
const CACHE_RESIDENT_BYTES: usize = 2 << 20;

/// Longest library string, in bytes after normalization.
pub const MAX_LEN: usize = 1024;

const OFF_MASK: u16 = 0x3FF;
const KIND_SHIFT: u16 = 10;
const WORD_START: u16 = 1 << 12;
const WORD_END: u16 = 1 << 13;
const LAST: u16 = 1 << 14;

pub(crate) const KIND_SHORT: u16 = 0;
pub(crate) const KIND_4: u16 = 1;
pub(crate) const KIND_8: u16 = 2;

/// Tuning of the index build. The defaults come from the benchmarks in
/// `docs/benchmarks.md`.
#[derive(Clone, Copy, Debug)]
pub struct BuildOptions {
    /// Bitmap bits per keyword (rounded up to a power of two in total).
    pub bits_per_key: usize,
    /// Use 8-byte keywords for strings of 8 bytes or more once the library
    /// has at least this many of them.
    pub tier8_min: usize,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            bits_per_key: 16,
            tier8_min: 200_000,
        }
    }
}

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
        (self.meta >> KIND_SHIFT) & 3
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

/// A table entry: the keyword and the first node of its list. Three `u32`
/// rather than `(u64, u32)` so that a bucket is 12 bytes, not 16.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    key_lo: u32,
    key_hi: u32,
    pub head: u32,
}

impl Slot {
    fn new(key: u64, head: u32) -> Slot {
        Slot {
            key_lo: key as u32,
            key_hi: (key >> 32) as u32,
            head,
        }
    }

    #[inline(always)]
    pub fn key(&self) -> u64 {
        (self.key_hi as u64) << 32 | self.key_lo as u64
    }
}

/// One string handed to the index builder.
pub(crate) struct Pattern<'a> {
    pub bytes: &'a [u8],
    pub word: bool,
}

pub(crate) struct Index {
    pub nodes: Vec<Node>,
    pub tails: Vec<u8>,
    pub table: HashTable<Slot>,
    pub bm4: Bitmap,
    pub bm8: Bitmap,
    pub bm_short: Bitmap,
    /// Bit `len - 1` set when a short string of that length starts with the
    /// byte.
    pub short_first: [u8; 256],
    /// Bit `b0 | b1 << 8` set when a short string may start with bytes
    /// `b0 b1` (a 1-byte string sets all 256 of its pairs): one L1-resident
    /// test per position instead of up to three hashed ones.
    pub short_pairs: Box<[u64; 1024]>,
    pub has4: bool,
    pub has8: bool,
    pub longest_list: usize,
    /// Small enough to stay in the CPU caches: the scanner then skips its
    /// prefetching passes.
    pub cache_resident: bool,
}

#[cfg(test)]
fn mask(k: usize) -> u64 {
    if k >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * k)) - 1
    }
}

/// The keyword value of `bytes` (a pattern or a text window) for `kind`.
#[inline(always)]
pub(crate) fn key_of(kind: u16, bytes: &[u8]) -> u64 {
    match kind {
        KIND_SHORT => read_le(bytes) | TAG_SHORT[bytes.len()],
        KIND_4 => read_le(bytes) | TAG4,
        _ => read_le(bytes),
    }
}

impl Index {
    /// Builds the index. Returns it with the permutation applied to the
    /// input: `order[i]` is the input position of entry `i`.
    pub fn build(patterns: &[Pattern<'_>], opts: BuildOptions) -> (Index, Vec<u32>) {
        let long = patterns.iter().filter(|p| p.bytes.len() >= 8).count();
        let use8 = long > 0 && long >= opts.tier8_min;
        let kind_of = |len: usize| {
            if len < 4 {
                KIND_SHORT
            } else if use8 && len >= 8 {
                KIND_8
            } else {
                KIND_4
            }
        };
        let width = |kind: u16| if kind == KIND_8 { 8 } else { 4 };

        // Pass 1: how common is each window in the library.
        let windows: usize = patterns
            .iter()
            .map(|p| p.bytes.len().saturating_sub(3))
            .sum();
        let mut chooser = Chooser::new(windows);
        for p in patterns {
            let kind = kind_of(p.bytes.len());
            if kind == KIND_SHORT {
                continue;
            }
            for w in p.bytes.windows(width(kind)) {
                chooser.count(key_of(kind, w));
            }
        }

        // Pass 2: each string's rarest window, linked into its list: an
        // arena where `next[i]` follows entry `i`, heads and tails by key.
        const NIL: u32 = u32::MAX;
        let mut keys = Vec::with_capacity(patterns.len());
        let mut offs = Vec::with_capacity(patterns.len());
        let mut next = vec![NIL; patterns.len()];
        let mut is_head = vec![false; patterns.len()];
        let mut lists: HashMap<u64, u32, MixState> = HashMap::with_hasher(MixState);
        for (i, p) in patterns.iter().enumerate() {
            let kind = kind_of(p.bytes.len());
            let (off, key) = if kind == KIND_SHORT {
                (0, key_of(kind, p.bytes))
            } else {
                let best = p
                    .bytes
                    .windows(width(kind))
                    .enumerate()
                    .map(|(o, w)| (chooser.cost(key_of(kind, w), w), o, key_of(kind, w)))
                    .min_by_key(|&(cost, o, _)| (cost, o));
                match best {
                    Some((_, o, key)) => (o, key),
                    None => (0, key_of(KIND_SHORT, p.bytes)),
                }
            };
            chooser.assign(key);
            keys.push(key);
            offs.push(off as u16);
            match lists.entry(key) {
                Entry::Occupied(mut e) => {
                    next[*e.get() as usize] = i as u32;
                    *e.get_mut() = i as u32;
                }
                Entry::Vacant(e) => {
                    e.insert(i as u32);
                    is_head[i] = true;
                }
            }
        }
        drop(chooser);
        drop(lists);

        // Freeze: lay each list out as a contiguous run, lists in the order
        // their first string came, strings in input order within a list.
        let mut order: Vec<u32> = Vec::with_capacity(patterns.len());
        for (i, &head) in is_head.iter().enumerate() {
            if head {
                let mut j = i as u32;
                while j != NIL {
                    order.push(j);
                    j = next[j as usize];
                }
            }
        }

        let tail_bytes: usize = patterns
            .iter()
            .map(|p| p.bytes.len().saturating_sub(8))
            .sum();
        let mut nodes = Vec::with_capacity(patterns.len());
        let mut tails = Vec::with_capacity(tail_bytes);
        let mut short_first = [0u8; 256];
        let mut short_pairs = Box::new([0u64; 1024]);
        let (mut n4, mut n8, mut ns) = (0usize, 0usize, 0usize);
        for &i in &order {
            let p = &patterns[i as usize];
            let b = p.bytes;
            let kind = kind_of(b.len());
            if is_head[i as usize] {
                match kind {
                    KIND_SHORT => ns += 1,
                    KIND_4 => n4 += 1,
                    _ => n8 += 1,
                }
            }
            if kind == KIND_SHORT {
                short_first[b[0] as usize] |= 1 << (b.len() - 1);
                let seconds = if b.len() == 1 { 0..=255 } else { b[1]..=b[1] };
                for b1 in seconds {
                    let pair = b[0] as usize | (b1 as usize) << 8;
                    short_pairs[pair >> 6] |= 1 << (pair & 63);
                }
            }
            let mut meta = offs[i as usize] | (kind << KIND_SHIFT);
            if p.word && b[0].is_ascii_alphanumeric() {
                meta |= WORD_START;
            }
            if p.word && b[b.len() - 1].is_ascii_alphanumeric() {
                meta |= WORD_END;
            }
            if next[i as usize] == NIL {
                meta |= LAST;
            }
            nodes.push(Node {
                prefix: read_le(&b[..b.len().min(8)]),
                tail: tails.len() as u32,
                len: b.len() as u16,
                meta,
            });
            if b.len() > 8 {
                tails.extend_from_slice(&b[8..]);
            }
        }

        let mut index = Index {
            nodes,
            tails,
            table: HashTable::with_capacity(n4 + n8 + ns),
            bm4: Bitmap::with_keys(n4, opts.bits_per_key),
            bm8: Bitmap::with_keys(n8, opts.bits_per_key),
            bm_short: Bitmap::with_keys(ns, opts.bits_per_key),
            short_first,
            short_pairs,
            has4: n4 > 0,
            has8: n8 > 0,
            longest_list: 0,
            cache_resident: false,
        };
        let mut run = 0;
        for pos in 0..index.nodes.len() {
            run += 1;
            let node = index.nodes[pos];
            if is_head[order[pos] as usize] {
                let key = keys[order[pos] as usize];
                let h = mix(key);
                match node.kind() {
                    KIND_SHORT => index.bm_short.insert(key),
                    KIND_4 => index.bm4.insert(key),
                    _ => index.bm8.insert(key),
                }
                index
                    .table
                    .insert_unique(h, Slot::new(key, pos as u32), |s| mix(s.key()));
            }
            if node.is_last() {
                index.longest_list = index.longest_list.max(run);
                run = 0;
            }
        }
        index.cache_resident = index.heap_bytes() <= CACHE_RESIDENT_BYTES;
        (index, order)
    }

    /// Byte `i` of node `n`'s string.
    #[inline]
    fn byte(&self, node: &Node, i: usize) -> u8 {
        byte_of(&self.tails, node, i)
    }

    /// The whole string of entry `n`.
    pub fn pattern(&self, n: usize) -> Vec<u8> {
        let node = &self.nodes[n];
        (0..node.len as usize).map(|i| self.byte(node, i)).collect()
    }

    /// The head of the list for `key`, whose hash is `h`.
    #[inline(always)]
    pub fn find(&self, h: u64, key: u64) -> Option<usize> {
        self.table
            .find(h, |s| s.key() == key)
            .map(|s| s.head as usize)
    }

    pub fn distinct_keywords(&self) -> usize {
        self.table.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.tails.capacity()
            + self.table.allocation_size()
            + self.bm4.heap_bytes()
            + self.bm8.heap_bytes()
            + self.bm_short.heap_bytes()
            + std::mem::size_of::<[u64; 1024]>()
    }
}

#[inline]
fn byte_of(tails: &[u8], node: &Node, i: usize) -> u8 {
    if i < 8 {
        (node.prefix >> (8 * i)) as u8
    } else {
        tails.get(node.tail as usize + i - 8).copied().unwrap_or(0)
    }
}

/// The keyword value of node `n`, read back from the node.
#[cfg(test)]
fn node_key(nodes: &[Node], tails: &[u8], n: u32) -> u64 {
    let Some(node) = nodes.get(n as usize) else {
        return u64::MAX;
    };
    let off = node.kw_off();
    let (k, tag) = match node.kind() {
        KIND_SHORT => (node.len as usize, TAG_SHORT[(node.len as usize).min(3)]),
        KIND_4 => (4, TAG4),
        _ => (8, 0),
    };
    let v = if off + k <= 8 {
        (node.prefix >> (8 * off)) & mask(k)
    } else {
        let mut v = 0u64;
        for j in 0..k {
            v |= (byte_of(tails, node, off + j) as u64) << (8 * j);
        }
        v
    };
    v | tag
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
    fn lists_are_contiguous_runs_with_one_table_entry_each() {
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
        let runs = idx.nodes.iter().filter(|n| n.is_last()).count();
        assert_eq!(runs, idx.distinct_keywords());
        for n in 0..idx.nodes.len() {
            let key = node_key(&idx.nodes, &idx.tails, n as u32);
            let head = idx
                .find(mix(key), key)
                .expect("every keyword is in the table");
            // The head starts the run that holds n.
            assert!(head <= n);
            assert!(idx.nodes[head..n].iter().all(|x| !x.is_last()));
        }
    }

    #[test]
    fn tier8_is_used_only_past_the_threshold() {
        let strs = ["abcdefghij", "0123456789"];
        let (idx, _) = build(&strs, BuildOptions::default());
        assert!(idx.has4 && !idx.has8);
        let opts = BuildOptions {
            tier8_min: 1,
            ..BuildOptions::default()
        };
        let (idx, _) = build(&strs, opts);
        assert!(!idx.has4 && idx.has8);
        assert!(idx.nodes.iter().all(|n| n.kind() == KIND_8));
    }

    #[test]
    fn shared_rare_window_is_avoided_when_a_rarer_one_exists() {
        // "tion" is in every string; each string also has a unique window.
        let strs = ["nation", "motion", "lotion", "potion"];
        let (idx, _) = build(&strs, BuildOptions::default());
        assert_eq!(idx.longest_list, 1);
    }
}
