//! Keyword values, their hash, and the bitmap pre-filter.
//!
//! A keyword is a fixed-length byte window read as one little-endian
//! integer. Windows of different lengths share one hash table, so each
//! length carries a tag in the first byte past the window: a control byte
//! (1–7) that normalized text never contains. A window of width `k` (4–7)
//! becomes `w | TAG[k]`, a short string of 1–4 bytes `s | TAG_SHORT[len]`
//! (tags in byte 5), and an 8-byte window is used as it is. Two keys of
//! different kinds therefore always differ in some byte: where one has a
//! tag the other has a text byte (0x20 or more), a different tag, or zero.
//!
//! The hash is a folded 64×64→128 multiply: one `mul` instruction, and every
//! output bit depends on every input bit (a plain multiplicative hash leaves
//! the low bits weak, and hashbrown takes its bucket index from them).

/// Tags of windows, indexed by kind (`width - 3`): widths 4 to 8.
pub const TAG: [u64; 6] = [0, 1 << 40, 5 << 40, 6 << 48, 7 << 56, 0];
/// Tags of short strings (keyed whole), indexed by length.
pub const TAG_SHORT: [u64; 5] = [0, 2 << 40, 3 << 40, 4 << 40, 9 << 40];

const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline(always)]
pub fn mix(x: u64) -> u64 {
    let p = (x as u128).wrapping_mul(K as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Little-endian integer of up to 8 bytes.
#[inline(always)]
pub fn read_le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// `BuildHasher` for maps keyed by one `u64` (keyword values, entry
/// numbers): [`mix`] of the value, nothing else.
#[derive(Clone, Copy, Debug, Default)]
pub struct MixState;

#[derive(Default)]
pub struct MixHasher(u64);

impl std::hash::BuildHasher for MixState {
    type Hasher = MixHasher;
    fn build_hasher(&self) -> MixHasher {
        MixHasher(0)
    }
}

impl std::hash::Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than integers; still a fine hash.
        for chunk in bytes.chunks(8) {
            self.0 = mix(self.0 ^ read_le(chunk));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = mix(self.0 ^ x);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }
}

/// A set of keyword values with false positives and no false negatives: a
/// blocked Bloom filter with two bits per key, both in one 64-bit word, so
/// a test is one memory access. At 16 bits per key about 2 % of absent
/// keys pass (one bit per key would let 6 % through, each costing a table
/// lookup).
///
/// The word and the bits come from the top bits of one multiply of the key
/// (each depends on every key bit below it): cheaper than [`mix`] because
/// it runs at every text position; `mix` is computed only for keys that
/// pass.
#[derive(Clone, Debug)]
pub struct Bitmap {
    /// A power of two of words, never empty.
    words: Box<[u64]>,
}

const BM_K: u64 = 0xD6E8_FEB8_6659_FD93;

static BIT: [u64; 64] = {
    let mut t = [0u64; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = 1 << i;
        i += 1;
    }
    t
};

impl Bitmap {
    /// A filter with about `bits_per_key` bits for each of `keys` keys
    /// (rounded up to a power of two, from 4096 bits to 2^30).
    pub fn with_keys(keys: usize, bits_per_key: usize) -> Bitmap {
        let bits = (keys.saturating_mul(bits_per_key))
            .next_power_of_two()
            .clamp(1 << 12, 1 << 30);
        Bitmap {
            words: vec![0; bits / 64].into_boxed_slice(),
        }
    }

    /// The word index and the two-bit mask of `key`: the word from product
    /// bits 40.., the bits from 34..40 and 28..34 (constant shifts: this runs
    /// at every text position).
    #[inline(always)]
    fn place(words: &[u64], key: u64) -> (usize, u64) {
        // The bits are chosen from product bits 28..40, which depend on key
        // bits 0..40 only: keys with data above bit 40 (8-byte windows)
        // fold their high half in first. Others skip the fold: this runs at
        // every text position.
        let key = if key >> 48 != 0 { key ^ (key >> 29) } else { key };
        let h = key.wrapping_mul(BM_K);
        // `words.len()` is a nonzero power of two, so the index is in range
        // and the compiler can drop the bounds check.
        let word = (h >> 40) as usize & (words.len().wrapping_sub(1));
        // Two table loads are cheaper than two variable shifts on x86-64
        // without BMI2 (the count must go through `cl`).
        let mask = BIT[(h >> 34) as usize & 63] | BIT[(h >> 28) as usize & 63];
        (word, mask)
    }

    /// Bit `j` of the result set where the key of the 8-byte window at
    /// `text[j..]` may be in the set, for the 64 windows of a block;
    /// `key_of` turns a window into a key. A separate, non-inlined loop so
    /// that its few live values stay in registers.
    #[inline(never)]
    pub fn filter64(&self, text: &[u8; 71], key_of: impl Fn(u64) -> u64) -> u64 {
        let words = &*self.words;
        if words.is_empty() {
            return 0;
        }
        let mut m = 0u64;
        for j in 0..64 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&text[j..j + 8]);
            let (w, bits) = Bitmap::place(words, key_of(u64::from_le_bytes(a)));
            let hit = (words[w] & bits == bits) as u64;
            // Shift in from the top: constant shifts only; after 64 steps
            // bit j holds window j.
            m = (m >> 1) | (hit << 63);
        }
        m
    }

    pub fn insert(&mut self, key: u64) {
        let (w, m) = Bitmap::place(&self.words, key);
        self.words[w] |= m;
    }

    /// 1 if `key` may be in the set, 0 if it is not.
    #[inline(always)]
    pub fn test(&self, key: u64) -> u64 {
        let (w, m) = Bitmap::place(&self.words, key);
        match self.words.get(w) {
            Some(&x) => (x & m == m) as u64,
            None => 0,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_has_no_false_negatives() {
        let mut b = Bitmap::with_keys(1000, 16);
        for x in 0..1000u64 {
            b.insert(x | TAG[1]);
        }
        assert!((0..1000u64).all(|x| b.test(x | TAG[1]) == 1));
        let fp = (1000..101_000u64)
            .filter(|&x| b.test(x | TAG[1]) == 1)
            .count();
        assert!(fp < 100_000 / 8, "false positive rate too high: {fp}");
    }

    #[test]
    fn read_le_pads_with_zeros() {
        assert_eq!(read_le(b"ab"), 0x6261);
        assert_eq!(read_le(b""), 0);
    }
}
