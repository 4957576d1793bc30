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

/// Bytes of text a block filter reads: 64 windows of 8 bytes, and room for
/// the 16-byte loads of the vector path.
pub const BLOCK_BYTES: usize = 64 + 15;

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
        let key = if key >> 48 != 0 {
            key ^ (key >> 29)
        } else {
            key
        };
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
    /// `text[j..]` may be in the set, for the 64 windows of a block. A
    /// window's key is `(window & mask) | tag`. Uses AVX2 when the CPU has
    /// it (four windows per step), else a scalar loop; both give the same
    /// bits.
    #[inline]
    pub fn filter64(&self, text: &[u8; BLOCK_BYTES], mask: u64, tag: u64) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            return unsafe { avx2::filter64(&self.words, text, mask, tag) };
        }
        self.filter64_scalar(text, mask, tag)
    }

    /// The portable [`Bitmap::filter64`]. A separate, non-inlined loop so
    /// that its few live values stay in registers.
    #[inline(never)]
    pub fn filter64_scalar(&self, text: &[u8; BLOCK_BYTES], mask: u64, tag: u64) -> u64 {
        let words = &*self.words;
        if words.is_empty() {
            return 0;
        }
        let mut m = 0u64;
        for j in 0..64 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&text[j..j + 8]);
            let (w, bits) = Bitmap::place(words, (u64::from_le_bytes(a) & mask) | tag);
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

/// The vector filter: the same hash, word and bits as [`Bitmap::place`],
/// four windows per step.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_BYTES, BM_K};

    /// # Safety
    ///
    /// The CPU must support AVX2. `words` must be non-empty with a
    /// power-of-two length (every [`super::Bitmap`] is).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn filter64(
        words: &[u64],
        text: &[u8; BLOCK_BYTES],
        mask: u64,
        tag: u64,
    ) -> u64 {
        if words.is_empty() {
            return 0;
        }
        let word_mask = _mm256_set1_epi64x(words.len() as i64 - 1);
        let kmask = _mm256_set1_epi64x(mask as i64);
        let ktag = _mm256_set1_epi64x(tag as i64);
        let klo = _mm256_set1_epi64x((BM_K & 0xFFFF_FFFF) as i64);
        let khi = _mm256_set1_epi64x((BM_K >> 32) as i64);
        let c63 = _mm256_set1_epi64x(63);
        let one = _mm256_set1_epi64x(1);
        let zero = _mm256_setzero_si256();
        // The four 8-byte windows at offsets 0..4 of a 16-byte load, one per
        // 64-bit lane (the load is in both 128-bit halves).
        #[rustfmt::skip]
        let spread = _mm256_setr_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 8,
            2, 3, 4, 5, 6, 7, 8, 9, 3, 4, 5, 6, 7, 8, 9, 10,
        );
        let mut m = 0u64;
        for j in (0..64).step_by(4) {
            // SAFETY: j + 16 <= 76 < BLOCK_BYTES: the load stays in `text`.
            let v = unsafe { _mm_loadu_si128(text.as_ptr().add(j).cast()) };
            let w = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(v), spread);
            let key = _mm256_or_si256(_mm256_and_si256(w, kmask), ktag);
            // Fold where the key has data above bit 48, as `place` does.
            let folded = _mm256_xor_si256(key, _mm256_srli_epi64::<29>(key));
            let low = _mm256_cmpeq_epi64(_mm256_srli_epi64::<48>(key), zero);
            let key = _mm256_blendv_epi8(folded, key, low);
            // 64-bit multiply from 32-bit halves (no vpmullq in AVX2).
            let cross = _mm256_add_epi64(
                _mm256_mul_epu32(key, khi),
                _mm256_mul_epu32(_mm256_srli_epi64::<32>(key), klo),
            );
            let h = _mm256_add_epi64(_mm256_mul_epu32(key, klo), _mm256_slli_epi64::<32>(cross));
            let idx = _mm256_and_si256(_mm256_srli_epi64::<40>(h), word_mask);
            // SAFETY: every index is masked to below `words.len()`.
            let got = unsafe { _mm256_i64gather_epi64::<8>(words.as_ptr().cast(), idx) };
            let b1 = _mm256_and_si256(_mm256_srli_epi64::<34>(h), c63);
            let b2 = _mm256_and_si256(_mm256_srli_epi64::<28>(h), c63);
            let bits = _mm256_or_si256(_mm256_sllv_epi64(one, b1), _mm256_sllv_epi64(one, b2));
            let hit = _mm256_cmpeq_epi64(_mm256_and_si256(got, bits), bits);
            m |= (_mm256_movemask_pd(_mm256_castsi256_pd(hit)) as u64) << j;
        }
        m
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
    fn vector_and_scalar_filters_agree() {
        let mut b = Bitmap::with_keys(3000, 4);
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut text = [0u8; BLOCK_BYTES];
        for round in 0..200 {
            for byte in text.iter_mut() {
                *byte = b"abc \xe5\x8f\x91"[(next() % 7) as usize];
            }
            // Put some windows of this text in the set, at every width.
            for j in 0..8 {
                let at = (next() % 64) as usize;
                let w = u64::from_le_bytes(text[at..at + 8].try_into().unwrap_or_default());
                let (m, t) = [
                    (0xFFFF_FFFF, TAG[1]),
                    (0xFF_FFFF_FFFF, TAG[2]),
                    (u64::MAX, 0),
                ][j % 3];
                b.insert((w & m) | t);
            }
            for (m, t) in [
                (0xFFFF_FFFF, TAG[1]),
                (0xFF_FFFF_FFFF, TAG[2]),
                (u64::MAX, 0),
            ] {
                let want = b.filter64_scalar(&text, m, t);
                assert_eq!(b.filter64(&text, m, t), want, "round {round}");
                for j in 0..64 {
                    let w = u64::from_le_bytes(text[j..j + 8].try_into().unwrap_or_default());
                    assert_eq!((want >> j) & 1, b.test((w & m) | t));
                }
            }
        }
    }

    #[test]
    fn read_le_pads_with_zeros() {
        assert_eq!(read_le(b"ab"), 0x6261);
        assert_eq!(read_le(b""), 0);
    }
}
