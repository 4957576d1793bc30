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

/// Which of the filter kernels this CPU runs: `"AVX-512"`, `"AVX2"` or
/// `"scalar"` (the scan's speed depends on it; `mailward check` shows it).
pub fn kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if let Some((name, _)) = vector_kernels() {
        return name;
    }
    "scalar"
}

/// A vector filter kernel for one shape (see [`avx2::filter_chunk`]).
#[cfg(target_arch = "x86_64")]
type Kernel =
    unsafe fn(&[u32], u32, &[u8; CHUNK_BYTES], u64, u64, (u64, u64), usize) -> [[u64; BLOCKS]; 2];

/// Each family's kernels, indexed by shape.
#[cfg(target_arch = "x86_64")]
const AVX512_KERNELS: [Kernel; 4] = [
    avx512::filter_chunk::<0>,
    avx512::filter_chunk::<1>,
    avx512::filter_chunk::<2>,
    avx512::filter_chunk::<3>,
];
#[cfg(target_arch = "x86_64")]
const AVX2_KERNELS: [Kernel; 4] = [
    avx2::filter_chunk::<0>,
    avx2::filter_chunk::<1>,
    avx2::filter_chunk::<2>,
    avx2::filter_chunk::<3>,
];

/// The widest kernels this CPU runs, with their name; none where only the
/// scalar loops serve.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn vector_kernels() -> Option<(&'static str, [Kernel; 4])> {
    if avx512::usable() {
        Some(("AVX-512", AVX512_KERNELS))
    } else if std::arch::is_x86_feature_detected!("avx2") {
        Some(("AVX2", AVX2_KERNELS))
    } else {
        None
    }
}

/// The kernel shape of a window's key (see [`avx2::filter_chunk`]): how the
/// window splits into the hash's two halves. None for a key no kernel
/// takes (the scalar loop serves it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn shape(mask: u64, tag: u64) -> Option<usize> {
    match mask {
        u64::MAX => Some(2),
        0xFF_FFFF_FFFF => Some(1),
        m if narrow(m, tag) => Some(0),
        _ => None,
    }
}

/// Little-endian integer of up to 8 bytes.
#[inline(always)]
pub fn read_le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// A set of keyword values with false positives and no false negatives: a
/// blocked Bloom filter with three bits per key, all in one 32-bit word, so
/// a test is one memory access. Each absent key that passes costs a table
/// lookup: at a million strings (16 bits per key, rounded up to a power of
/// two) three bits let half as many through as two did (43 000 against
/// 84 000 per 4 MiB of text), for one more shift and bit per test.
///
/// The filter hashes a key as two 32-bit halves, so that the vector paths
/// test eight (AVX2) or sixteen (AVX-512) text positions per step in 32-bit
/// lanes (AVX2 has no 64-bit multiply): `h = (fold(lo) ^ fold(hi)·K2)·K1`,
/// where `fold` brings the high bits down first (in a 32-bit product an
/// input bit reaches only the output bits above it). The word is the top
/// bits of `h`; the three bits come from the top of `h·K3`, which depends
/// on every bit of `h`. [`mix`] is computed only for keys that pass.
#[derive(Clone, Debug)]
pub struct Bitmap {
    /// A power of two of words, at least 128.
    words: Box<[u32]>,
    /// `32 - log2(words.len())`: the word is `h >> shift`.
    shift: u32,
}

/// Filters up to this size get twice the bits per key they ask for: a
/// quarter of a small L2 cache.
pub const ROOMY_BYTES: usize = 512 << 10;

const F_K1: u32 = 0x9E37_79B1;
const F_K2: u32 = 0x85EB_CA77;
const F_K3: u32 = 0xC2B2_AE3D;

/// Blocks of 64 positions a filter call covers: enough to spread its fixed
/// costs (dispatch, constants), few enough for the candidate buffers.
pub const BLOCKS: usize = 8;
/// Positions a filter call covers.
pub const CHUNK: usize = 64 * BLOCKS;
/// Bytes of text a filter call reads: `CHUNK` windows of 8 bytes, and room
/// for the 16-byte loads of the vector path.
pub const CHUNK_BYTES: usize = CHUNK + 15;

/// `masks` with the bits of positions `len` and beyond cleared (the vector
/// kernels work in whole blocks; the scalar loops stop at `len`).
#[cfg(any(target_arch = "x86_64", test))]
#[inline(always)]
pub fn clip(mut masks: [u64; BLOCKS], len: usize) -> [u64; BLOCKS] {
    if len >= CHUNK {
        return masks;
    }
    for (b, m) in masks.iter_mut().enumerate() {
        let keep = len.saturating_sub(64 * b);
        if keep < 64 {
            *m &= (1u64 << keep) - 1;
        }
    }
    masks
}

/// Whether a key's upper half is the tag alone, so the vector path takes
/// it as a constant.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn narrow(mask: u64, tag: u64) -> bool {
    mask <= 0xFFFF_FFFF && tag as u32 == 0
}

#[inline(always)]
fn fold(x: u32) -> u32 {
    x ^ (x >> 15)
}

/// The filter's hash of a key (see [`Bitmap`]).
#[inline(always)]
fn h32(key: u64) -> u32 {
    (fold(key as u32) ^ hi_term((key >> 32) as u32)).wrapping_mul(F_K1)
}

/// What a key's upper half adds to its hash (see [`Bitmap`]); the vector
/// kernels take it as a constant for a key whose upper half is its tag.
#[inline(always)]
fn hi_term(hi: u32) -> u32 {
    fold(hi).wrapping_mul(F_K2)
}

/// The three bits of a key in its word (two may coincide).
#[inline(always)]
fn bits_of(h: u32) -> u32 {
    let g = h.wrapping_mul(F_K3);
    (1 << (g >> 27)) | (1 << ((g >> 22) & 31)) | (1 << ((g >> 17) & 31))
}

impl Bitmap {
    /// A filter with about `bits_per_key` bits for each of `keys` keys
    /// (rounded up to a power of two, from 4096 bits to 2^30), doubled
    /// while that keeps it within [`ROOMY_BYTES`]: each false positive
    /// costs a table lookup, and a filter that small stays in the caches.
    pub fn with_keys(keys: usize, bits_per_key: usize) -> Bitmap {
        let mut bits = (keys.saturating_mul(bits_per_key))
            .next_power_of_two()
            .clamp(1 << 12, 1 << 30);
        if bits * 2 <= ROOMY_BYTES * 8 {
            bits *= 2;
        }
        let words = bits / 32;
        Bitmap {
            words: vec![0; words].into_boxed_slice(),
            shift: 32 - words.trailing_zeros(),
        }
    }

    /// Bit `j % 64` of word `j / 64` of the result set where the key of the
    /// 8-byte window at `text[j..]` may be in the set, for the `CHUNK`
    /// windows of a chunk. A
    /// window's key is `(window & mask) | tag`, where `mask` keeps the
    /// first 1 to 5 or all 8 bytes and `tag` lies above the kept bytes.
    /// Only the first `len` windows are tested (a short last chunk), the
    /// bits of the others are clear. Uses AVX-512 (sixteen windows per
    /// step) or AVX2 (eight) when the CPU has it, else a scalar loop; all
    /// give the same bits.
    #[inline]
    pub fn filter_chunk(
        &self,
        text: &[u8; CHUNK_BYTES],
        mask: u64,
        tag: u64,
        len: usize,
    ) -> [u64; BLOCKS] {
        #[cfg(target_arch = "x86_64")]
        if let (Some((_, kernels)), Some(shape)) = (vector_kernels(), shape(mask, tag)) {
            // SAFETY: the CPU has the kernels' features (`vector_kernels`);
            // the shape is the key's; a `Bitmap`'s shift keeps every index
            // in its words.
            let [m, _] = unsafe {
                kernels[shape](
                    &self.words,
                    self.shift,
                    text,
                    mask,
                    tag,
                    (0, 0),
                    len.div_ceil(64),
                )
            };
            return clip(m, len);
        }
        self.filter_chunk_scalar(text, mask, tag, len)
    }

    /// The portable [`Bitmap::filter_chunk`]. A separate, non-inlined loop
    /// so that its few live values stay in registers.
    #[inline(never)]
    pub fn filter_chunk_scalar(
        &self,
        text: &[u8; CHUNK_BYTES],
        mask: u64,
        tag: u64,
        len: usize,
    ) -> [u64; BLOCKS] {
        let mut m = [0u64; BLOCKS];
        for j in 0..len.min(CHUNK) {
            let mut a = [0u8; 8];
            a.copy_from_slice(&text[j..j + 8]);
            m[j / 64] |= self.test((u64::from_le_bytes(a) & mask) | tag) << (j % 64);
        }
        m
    }

    /// Like [`Bitmap::filter_chunk`] for a key and a *rider*: `[own,
    /// rider]` masks, `own` where `(window & mask) | tag` may be in the set,
    /// `rider` where `(window & mask2) | tag2` may have been put in the
    /// word of the first key by [`Bitmap::insert_in`]. One memory access
    /// serves both (a 4-byte string riding on its first three bytes).
    #[inline]
    pub fn filter_pair_chunk(
        &self,
        text: &[u8; CHUNK_BYTES],
        (mask, tag): (u64, u64),
        rider: (u64, u64),
        len: usize,
    ) -> [[u64; BLOCKS]; 2] {
        #[cfg(target_arch = "x86_64")]
        if let Some((_, kernels)) = vector_kernels()
            && narrow(mask, tag)
            && narrow(rider.0, rider.1)
        {
            let blocks = len.div_ceil(64);
            // SAFETY: the CPU has the kernels' features (`vector_kernels`);
            // both keys are narrow (shape 3); a `Bitmap`'s shift keeps every
            // index in its words.
            let [own, rides] =
                unsafe { kernels[3](&self.words, self.shift, text, mask, tag, rider, blocks) };
            return [clip(own, len), clip(rides, len)];
        }
        self.filter_pair_chunk_scalar(text, (mask, tag), rider, len)
    }

    /// The portable [`Bitmap::filter_pair_chunk`].
    #[inline(never)]
    pub fn filter_pair_chunk_scalar(
        &self,
        text: &[u8; CHUNK_BYTES],
        (mask, tag): (u64, u64),
        (mask2, tag2): (u64, u64),
        len: usize,
    ) -> [[u64; BLOCKS]; 2] {
        let mut m = [[0u64; BLOCKS]; 2];
        for j in 0..len.min(CHUNK) {
            let mut a = [0u8; 8];
            a.copy_from_slice(&text[j..j + 8]);
            let w = u64::from_le_bytes(a);
            let key = (w & mask) | tag;
            m[0][j / 64] |= self.test(key) << (j % 64);
            m[1][j / 64] |= self.test_in(key, (w & mask2) | tag2) << (j % 64);
        }
        m
    }

    /// Puts `bits_key` in the word of `word_key` (see
    /// [`Bitmap::filter_pair_chunk`]).
    pub fn insert_in(&mut self, word_key: u64, bits_key: u64) {
        let w = (h32(word_key) >> self.shift) as usize;
        if let Some(x) = self.words.get_mut(w) {
            *x |= bits_of(h32(bits_key));
        }
    }

    /// 1 if [`Bitmap::insert_in`] may have put `bits_key` in the word of
    /// `word_key`, 0 if it did not.
    #[inline(always)]
    pub fn test_in(&self, word_key: u64, bits_key: u64) -> u64 {
        let m = bits_of(h32(bits_key));
        match self.words.get((h32(word_key) >> self.shift) as usize) {
            Some(&x) => (x & m == m) as u64,
            None => 0,
        }
    }

    pub fn insert(&mut self, key: u64) {
        self.insert_in(key, key);
    }

    /// 1 if `key` may be in the set, 0 if it is not.
    #[inline(always)]
    pub fn test(&self, key: u64) -> u64 {
        self.test_in(key, key)
    }

    pub fn heap_bytes(&self) -> usize {
        self.words.len() * 4
    }
}

/// The vector filter: the same hash, word and bits as [`Bitmap::test`],
/// eight windows per step in 32-bit lanes.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCKS, CHUNK_BYTES, F_K1, F_K2, F_K3, hi_term};

    /// `words[idx[l]]` in lane `l`: eight scalar loads, not a gather. On
    /// the AMD Zen 3 measured the loads cost less than the gather instruction
    /// (the whole scan 2–8 % faster at every library size); Intel CPUs
    /// whose microcode mitigates Gather Data Sampling are reported to run a
    /// gather slower still (not measured here).
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2; every lane of `idx` must be below
    /// `words.len()`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) unsafe fn load8(words: &[u32], idx: __m256i) -> __m256i {
        let mut at = [0u32; 8];
        // SAFETY: `at` is 32 bytes; an unaligned store.
        unsafe { _mm256_storeu_si256(at.as_mut_ptr().cast(), idx) };
        // SAFETY: every index is below `words.len()` (the caller's promise).
        let got: [u32; 8] =
            std::array::from_fn(|l| unsafe { *words.get_unchecked(at[l] as usize) });
        // SAFETY: `got` is 32 bytes; an unaligned load.
        unsafe { _mm256_loadu_si256(got.as_ptr().cast()) }
    }

    /// `SHAPE` is 0 (narrow: `hi` is the tag's constant), 1 (five bytes:
    /// `hi` is the fifth byte and the tag), 2 (wide: `hi` is bytes 4..8) or
    /// 3 (narrow, with a narrow rider `(mask2, tag2)` tested in the same
    /// word: its bits in the second mask). Other shapes leave the second
    /// mask empty.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2. Every index `h >> shift` must be below
    /// `words.len()` (true of every [`super::Bitmap`]: `shift` is
    /// `32 - log2(len)`).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn filter_chunk<const SHAPE: u8>(
        words: &[u32],
        shift: u32,
        text: &[u8; CHUNK_BYTES],
        mask: u64,
        tag: u64,
        (mask2, tag2): (u64, u64),
        blocks: usize,
    ) -> [[u64; BLOCKS]; 2] {
        // The eight 4-byte windows at offsets 0..8 of a 16-byte load (the
        // load is in both 128-bit halves; a shuffle stays in its half).
        #[rustfmt::skip]
        let lo_at = _mm256_setr_epi8(
            0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6,
            4, 5, 6, 7, 5, 6, 7, 8, 6, 7, 8, 9, 7, 8, 9, 10,
        );
        // The same windows four bytes on: bytes 4..8 of each 8-byte window.
        #[rustfmt::skip]
        let hi_at = _mm256_setr_epi8(
            4, 5, 6, 7, 5, 6, 7, 8, 6, 7, 8, 9, 7, 8, 9, 10,
            8, 9, 10, 11, 9, 10, 11, 12, 10, 11, 12, 13, 11, 12, 13, 14,
        );
        // The fifth byte of each window alone (-1 zeroes a byte).
        #[rustfmt::skip]
        let fifth_at = _mm256_setr_epi8(
            4, -1, -1, -1, 5, -1, -1, -1, 6, -1, -1, -1, 7, -1, -1, -1,
            8, -1, -1, -1, 9, -1, -1, -1, 10, -1, -1, -1, 11, -1, -1, -1,
        );
        let hi_tag = (tag >> 32) as u32;
        let lo_mask = _mm256_set1_epi32(mask as u32 as i32);
        let narrow_hi = _mm256_set1_epi32(hi_term(hi_tag) as i32);
        let tag_hi = _mm256_set1_epi32(hi_tag as i32);
        let k1 = _mm256_set1_epi32(F_K1 as i32);
        let k2 = _mm256_set1_epi32(F_K2 as i32);
        let k3 = _mm256_set1_epi32(F_K3 as i32);
        let count = _mm_cvtsi32_si128(shift as i32);
        let c31 = _mm256_set1_epi32(31);
        let one = _mm256_set1_epi32(1);
        let rider_mask = _mm256_set1_epi32(mask2 as u32 as i32);
        let rider_hi = _mm256_set1_epi32(hi_term((tag2 >> 32) as u32) as i32);
        let fold8 = |x: __m256i| _mm256_xor_si256(x, _mm256_srli_epi32::<15>(x));
        // The key's three bits in its word, from the top of `h·K3`.
        let bits8 = |h: __m256i| {
            let g = _mm256_mullo_epi32(h, k3);
            let b1 = _mm256_srli_epi32::<27>(g);
            let b2 = _mm256_and_si256(_mm256_srli_epi32::<22>(g), c31);
            let b3 = _mm256_and_si256(_mm256_srli_epi32::<17>(g), c31);
            _mm256_or_si256(
                _mm256_or_si256(_mm256_sllv_epi32(one, b1), _mm256_sllv_epi32(one, b2)),
                _mm256_sllv_epi32(one, b3),
            )
        };
        let has = |got: __m256i, bits: __m256i| {
            let hit = _mm256_cmpeq_epi32(_mm256_and_si256(got, bits), bits);
            _mm256_movemask_ps(_mm256_castsi256_ps(hit)) as u32 as u64
        };
        let (mut own, mut rider) = ([0u64; BLOCKS], [0u64; BLOCKS]);
        // Block by block, so that each step's shift is a constant.
        let pairs = own.iter_mut().zip(rider.iter_mut());
        for (blk, (mo, mr)) in pairs.enumerate().take(blocks) {
            for k in (0..64).step_by(8) {
                let j = 64 * blk + k;
                // SAFETY: j + 16 <= CHUNK + 8 < CHUNK_BYTES: the load stays in
                // `text`.
                let v = unsafe { _mm_loadu_si128(text.as_ptr().add(j).cast()) };
                let b = _mm256_broadcastsi128_si256(v);
                let four = _mm256_shuffle_epi8(b, lo_at);
                let lo = _mm256_and_si256(four, lo_mask);
                let hi = match SHAPE {
                    0 | 3 => narrow_hi,
                    1 => _mm256_mullo_epi32(
                        fold8(_mm256_or_si256(_mm256_shuffle_epi8(b, fifth_at), tag_hi)),
                        k2,
                    ),
                    _ => _mm256_mullo_epi32(fold8(_mm256_shuffle_epi8(b, hi_at)), k2),
                };
                let h = _mm256_mullo_epi32(_mm256_xor_si256(fold8(lo), hi), k1);
                let idx = _mm256_srl_epi32(h, count);
                // SAFETY: every index is below `words.len()` (see above).
                let got = unsafe { load8(words, idx) };
                *mo |= has(got, bits8(h)) << k;
                if SHAPE == 3 {
                    let lo2 = _mm256_and_si256(four, rider_mask);
                    let h2 = _mm256_mullo_epi32(_mm256_xor_si256(fold8(lo2), rider_hi), k1);
                    *mr |= has(got, bits8(h2)) << k;
                }
            }
        }
        [own, rider]
    }
}

/// The vector filter on AVX-512 (with VBMI's byte permutes): the same
/// hash, word and bits as [`Bitmap::test`], sixteen windows per step, the
/// words fetched by one gather. On the Intel Xeon measured (2 MiB of L2),
/// a million strings' three filter passes took 10.0 ms per 4 MiB of text
/// against 15.4 with the AVX2 kernel; there the gather beats sixteen
/// scalar loads (the 5-byte pass 2.7 against 4.6 ms), and the loop waits
/// on it more than on its arithmetic.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCKS, CHUNK, CHUNK_BYTES, F_K1, F_K2, F_K3, hi_term};

    /// Whether the CPU has what [`filter_chunk`] needs.
    #[inline(always)]
    pub(crate) fn usable() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vbmi")
    }

    /// Byte indices of the 4-byte windows at offsets `first..first + 16`
    /// of one load, one window per 32-bit lane.
    const fn windows(first: u8) -> [u8; 64] {
        let mut at = [0u8; 64];
        let mut k = 0;
        while k < 64 {
            at[k] = first + (k / 4) as u8 + (k % 4) as u8;
            k += 1;
        }
        at
    }

    /// The fifth byte of each window alone, in the lane's low byte (the
    /// other bytes are masked off by [`FIFTH_KEEP`]).
    const FIFTH_AT: [u8; 64] = {
        let mut at = [0u8; 64];
        let mut k = 0;
        while k < 64 {
            at[k] = 4 + (k / 4) as u8;
            k += 4;
        }
        at
    };
    const FIFTH_KEEP: u64 = 0x1111_1111_1111_1111;
    const LO_AT: [u8; 64] = windows(0);
    const HI_AT: [u8; 64] = windows(4);

    /// Like [`super::avx2::filter_chunk`] (same `SHAPE`s, same result),
    /// sixteen windows per step.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX-512F, BW and VBMI ([`usable`]). Every
    /// index `h >> shift` must be below `words.len()` (true of every
    /// [`super::Bitmap`]: `shift` is `32 - log2(len)`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    pub(super) unsafe fn filter_chunk<const SHAPE: u8>(
        words: &[u32],
        shift: u32,
        text: &[u8; CHUNK_BYTES],
        mask: u64,
        tag: u64,
        (mask2, tag2): (u64, u64),
        blocks: usize,
    ) -> [[u64; BLOCKS]; 2] {
        // SAFETY: each table is 64 bytes; unaligned loads.
        let (lo_at, hi_at, fifth_at) = unsafe {
            (
                _mm512_loadu_si512(LO_AT.as_ptr().cast()),
                _mm512_loadu_si512(HI_AT.as_ptr().cast()),
                _mm512_loadu_si512(FIFTH_AT.as_ptr().cast()),
            )
        };
        let hi_tag = (tag >> 32) as u32;
        let lo_mask = _mm512_set1_epi32(mask as u32 as i32);
        let narrow_hi = _mm512_set1_epi32(hi_term(hi_tag) as i32);
        let tag_hi = _mm512_set1_epi32(hi_tag as i32);
        let k1 = _mm512_set1_epi32(F_K1 as i32);
        let k2 = _mm512_set1_epi32(F_K2 as i32);
        let k3 = _mm512_set1_epi32(F_K3 as i32);
        let count = _mm_cvtsi32_si128(shift as i32);
        let one = _mm512_set1_epi32(1);
        let rider_mask = _mm512_set1_epi32(mask2 as u32 as i32);
        let rider_hi = _mm512_set1_epi32(hi_term((tag2 >> 32) as u32) as i32);
        let fold16 = |x: __m512i| _mm512_xor_si512(x, _mm512_srli_epi32::<15>(x));
        // `1 << b` for the low five bits of each lane's `b`, by a
        // two-table permute: on Intel's AVX-512 the shifts share one port
        // with the multiplies, the permute has a port of its own.
        let (pow_lo, pow_hi) = (
            _mm512_sllv_epi32(
                one,
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            ),
            _mm512_sllv_epi32(
                one,
                _mm512_setr_epi32(
                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                ),
            ),
        );
        let bit = |b: __m512i| _mm512_permutex2var_epi32(pow_lo, b, pow_hi);
        let bits16 = |h: __m512i| {
            let g = _mm512_mullo_epi32(h, k3);
            let b1 = bit(_mm512_srli_epi32::<27>(g));
            let b2 = bit(_mm512_srli_epi32::<22>(g));
            let b3 = bit(_mm512_srli_epi32::<17>(g));
            _mm512_ternarylogic_epi32::<0xFE>(b1, b2, b3)
        };
        let has = |got: __m512i, bits: __m512i| {
            _mm512_cmpeq_epi32_mask(_mm512_and_si512(got, bits), bits) as u64
        };
        let (mut own, mut rider) = ([0u64; BLOCKS], [0u64; BLOCKS]);
        let pairs = own.iter_mut().zip(rider.iter_mut());
        for (blk, (mo, mr)) in pairs.enumerate().take(blocks) {
            for k in (0..64).step_by(16) {
                let j = 64 * blk + k;
                // Sixteen windows of 8 bytes read 23 bytes; the load stops
                // there (a masked load does not touch the bytes it masks
                // off), inside `text`: j + 23 <= CHUNK + 7 < CHUNK_BYTES.
                debug_assert!(j + 23 <= CHUNK + 7);
                // SAFETY: the 23 bytes loaded are in `text` (above).
                let b =
                    unsafe { _mm512_maskz_loadu_epi8((1 << 23) - 1, text.as_ptr().add(j).cast()) };
                let four = _mm512_permutexvar_epi8(lo_at, b);
                let lo = _mm512_and_si512(four, lo_mask);
                let hi = match SHAPE {
                    0 | 3 => narrow_hi,
                    1 => _mm512_mullo_epi32(
                        fold16(_mm512_or_si512(
                            _mm512_maskz_permutexvar_epi8(FIFTH_KEEP, fifth_at, b),
                            tag_hi,
                        )),
                        k2,
                    ),
                    _ => _mm512_mullo_epi32(fold16(_mm512_permutexvar_epi8(hi_at, b)), k2),
                };
                let h = _mm512_mullo_epi32(_mm512_xor_si512(fold16(lo), hi), k1);
                let idx = _mm512_srl_epi32(h, count);
                // SAFETY: every index is below `words.len()` (see above).
                let got = unsafe { _mm512_i32gather_epi32::<4>(idx, words.as_ptr().cast()) };
                *mo |= has(got, bits16(h)) << k;
                if SHAPE == 3 {
                    let lo2 = _mm512_and_si512(four, rider_mask);
                    let h2 = _mm512_mullo_epi32(_mm512_xor_si512(fold16(lo2), rider_hi), k1);
                    *mr |= has(got, bits16(h2)) << k;
                }
            }
        }
        [own, rider]
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    /// A reproducible stream of test numbers (xorshift).
    pub(crate) fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn vector_and_scalar_filters_agree() {
        let mut b = Bitmap::with_keys(3000, 4);
        let mut next = xorshift(0x1234_5678_9ABC_DEF0);
        let mut text = [0u8; CHUNK_BYTES];
        for round in 0..200 {
            for byte in text.iter_mut() {
                *byte = b"abc \xe5\x8f\x91"[(next() % 7) as usize];
            }
            // Put some windows of this text in the set, at every width.
            for j in 0..8 {
                let at = (next() % CHUNK as u64) as usize;
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
                let want = b.filter_chunk_scalar(&text, m, t, CHUNK);
                assert_eq!(b.filter_chunk(&text, m, t, CHUNK), want, "round {round}");
                // A short chunk: its windows only, on both paths.
                let len = 150 + round;
                let short = b.filter_chunk(&text, m, t, len);
                assert_eq!(short, b.filter_chunk_scalar(&text, m, t, len));
                assert_eq!(short, clip(want, len));
                for j in 0..CHUNK {
                    let w = u64::from_le_bytes(text[j..j + 8].try_into().unwrap_or_default());
                    assert_eq!((want[j / 64] >> (j % 64)) & 1, b.test((w & m) | t));
                }
            }
        }
    }

    #[test]
    fn riders_are_found_and_vector_and_scalar_agree() {
        let (three, four) = ((0xFF_FFFF, TAG_SHORT[3]), (0xFFFF_FFFF, TAG[1]));
        let mut b = Bitmap::with_keys(64, 16);
        let mut next = xorshift(0x0F1E_2D3C_4B5A_6978);
        let mut text = [0u8; CHUNK_BYTES];
        for byte in text.iter_mut() {
            *byte = b"abcdef \xe4\xb8"[(next() % 9) as usize];
        }
        let key = |at: usize, (m, t): (u64, u64)| {
            let w = u64::from_le_bytes(text[at..at + 8].try_into().unwrap_or_default());
            (w & m) | t
        };
        let mut put = Vec::new();
        for j in 0..40 {
            let at = (next() % CHUNK as u64) as usize;
            if j % 2 == 0 {
                b.insert(key(at, three));
            } else {
                b.insert_in(key(at, three), key(at, four));
            }
            put.push((at, j % 2));
        }
        let want = b.filter_pair_chunk_scalar(&text, three, four, CHUNK);
        assert_eq!(b.filter_pair_chunk(&text, three, four, CHUNK), want);
        let short = want.map(|m| clip(m, 100));
        assert_eq!(b.filter_pair_chunk(&text, three, four, 100), short);
        assert_eq!(b.filter_pair_chunk_scalar(&text, three, four, 100), short);
        for (at, which) in put {
            assert_eq!((want[which][at / 64] >> (at % 64)) & 1, 1, "{at} {which}");
        }
        // The own mask is the plain filter's.
        assert_eq!(
            want[0],
            b.filter_chunk_scalar(&text, three.0, three.1, CHUNK)
        );
    }

    /// Each vector kernel this CPU has gives the scalar loop's bits, in
    /// every shape (the dispatching calls above test only the widest one).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_vector_kernel_the_cpu_has_agrees_with_the_scalar_loop() {
        let shapes: [(u8, (u64, u64)); 4] = [
            (0, (0xFFFF_FFFF, TAG[1])),
            (1, (0xFF_FFFF_FFFF, TAG[2])),
            (2, (u64::MAX, 0)),
            (3, (0xFF_FFFF, TAG_SHORT[3])),
        ];
        let rider = (0xFFFF_FFFF, TAG[1]);
        let has_avx2 = std::arch::is_x86_feature_detected!("avx2");
        let kernels: Vec<[Kernel; 4]> =
            [(has_avx2, AVX2_KERNELS), (avx512::usable(), AVX512_KERNELS)]
                .into_iter()
                .filter_map(|(has, set)| has.then_some(set))
                .collect();
        let mut next = xorshift(0x5EED_0FF1_17E5);
        let mut text = [0u8; CHUNK_BYTES];
        // Miri interprets the AVX2 kernels slowly.
        let rounds = if cfg!(miri) { 8 } else { 100 };
        for round in 0..rounds {
            let mut b = Bitmap::with_keys(500 + 40 * round, 8);
            for byte in text.iter_mut() {
                *byte = b"ab \xe4\xb8\x80z"[(next() % 6) as usize];
            }
            let word =
                |at: usize| u64::from_le_bytes(text[at..at + 8].try_into().unwrap_or([0; 8]));
            let blocks = 1 + round % BLOCKS;
            for j in 0..60 {
                let at = (next() % (64 * blocks) as u64) as usize;
                let (_, (m, t)) = shapes[j % 4];
                b.insert((word(at) & m) | t);
                let (m2, t2) = rider;
                b.insert_in((word(at) & m) | t, (word(at) & m2) | t2);
            }
            for (shape, (m, t)) in shapes {
                let want = if shape == 3 {
                    b.filter_pair_chunk_scalar(&text, (m, t), rider, CHUNK)
                } else {
                    [b.filter_chunk_scalar(&text, m, t, CHUNK), [0; BLOCKS]]
                };
                let want = want.map(|w| clip(w, 64 * blocks));
                assert!(
                    want[0].iter().any(|&w| w != 0),
                    "round {round}: no key found"
                );
                for set in &kernels {
                    let k = set[shape as usize];
                    // SAFETY: the CPU has the kernel's features (checked
                    // when it was listed); a `Bitmap`'s shift keeps every
                    // index in its words.
                    let got = unsafe { k(&b.words, b.shift, &text, m, t, rider, blocks) };
                    assert_eq!(got, want, "round {round} shape {shape}");
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
