//! Where strings of one or two bytes may start: the pair pass's filter.
//!
//! A library keeps few such strings (symbols, single letters and digits,
//! rare letter pairs), but each needs a test at every text position. The
//! exact answer is one bit per pair of bytes (64 Kibit, [`Pairs::has`]);
//! reading it costs a memory access per position. So the scan first asks a
//! looser question that needs no memory access: is the first byte one that
//! starts such a string, and is either that byte a whole string or the
//! second byte one that ends a 2-byte string? Each of the three byte sets
//! is tested 32 (AVX2) or 64 (AVX-512) positions at a time with two
//! nibble-table shuffles
//! ([`ByteSet`]). Only positions that pass are checked against the exact
//! table, by the caller.
//!
//! # Invariants
//!
//! * `bits` has bit `b0 | b1 << 8` set exactly for the pairs that start a
//!   string of 1 or 2 bytes (all 256 second bytes of a 1-byte string);
//! * every pair of `bits` passes [`Pairs::chunk`]: `first` holds every
//!   string's first byte, `one` the 1-byte strings' byte, `second` every
//!   2-byte string's second byte.
//!
//! Costs: some 30 vector instructions per 32 positions, against eight
//! loads per eight positions for the exact table; positions that pass the sets cost a load
//! each (at a million strings the pair pass went from 3.3–4.1 to 1.5 ms
//! per 4 MiB of text; on an Intel Xeon, AVX-512 against AVX2, 0.99 to 0.86
//! ms). A library whose short strings start with common
//! bytes (a single common letter as a string) passes many positions, and
//! those are mostly matches anyway.

#[cfg(any(target_arch = "x86_64", test))]
use super::hash::clip;
use super::hash::{BLOCKS, CHUNK, CHUNK_BYTES};

/// A set of bytes, as the nibble tables the vector test shuffles:
/// `low8[c & 15]` has bit `c >> 4` for the bytes below 128, `high8[c & 15]`
/// bit `(c >> 4) - 8` for the others.
#[derive(Clone, Debug, Default)]
pub(crate) struct ByteSet {
    low8: [u8; 16],
    high8: [u8; 16],
}

impl ByteSet {
    /// Whether `c` is in the high table, its entry there and its bit.
    #[inline(always)]
    fn at(c: u8) -> (bool, usize, u8) {
        (c >= 128, (c & 15) as usize, 1 << ((c >> 4) & 7))
    }

    fn insert(&mut self, c: u8) {
        let (high, e, bit) = ByteSet::at(c);
        let table = if high {
            &mut self.high8
        } else {
            &mut self.low8
        };
        table[e] |= bit;
    }

    #[inline(always)]
    fn contains(&self, c: u8) -> bool {
        let (high, e, bit) = ByteSet::at(c);
        let table = if high { &self.high8 } else { &self.low8 };
        table[e] & bit != 0
    }
}

/// The strings of 1 and 2 bytes, by their bytes (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Pairs {
    bits: Box<[u64; 1024]>,
    first: ByteSet,
    one: ByteSet,
    second: ByteSet,
}

impl Default for Pairs {
    fn default() -> Pairs {
        Pairs {
            bits: Box::new([0; 1024]),
            first: ByteSet::default(),
            one: ByteSet::default(),
            second: ByteSet::default(),
        }
    }
}

impl Pairs {
    /// Adds a string of 1 or 2 bytes (longer ones are ignored).
    pub fn insert(&mut self, s: &[u8]) {
        let seconds = match *s {
            [b0] => {
                self.one.insert(b0);
                0..=255
            }
            [_, b1] => {
                self.second.insert(b1);
                b1..=b1
            }
            _ => return,
        };
        self.first.insert(s[0]);
        for b1 in seconds {
            let pair = s[0] as usize | (b1 as usize) << 8;
            self.bits[pair >> 6] |= 1 << (pair & 63);
        }
    }

    /// Whether a string of 1 or 2 bytes starts with `b0 b1` (exact).
    #[inline(always)]
    pub fn has(&self, b0: u8, b1: u8) -> bool {
        let pair = b0 as usize | (b1 as usize) << 8;
        self.bits[pair >> 6] >> (pair & 63) & 1 == 1
    }

    /// Bit `j % 64` of word `j / 64` set where position `j` of the chunk
    /// may start a string of 1 or 2 bytes: every position where one does,
    /// and others (see the module docs), among the first `len`. AVX-512 or
    /// AVX2 when the CPU has it; every path gives the same bits.
    #[inline]
    pub fn chunk(&self, text: &[u8; CHUNK_BYTES], len: usize) -> [u64; BLOCKS] {
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = vector_kernels().next() {
            // SAFETY: the CPU has the kernel's features (`vector_kernels`).
            return clip(unsafe { kernel(self, text, len.div_ceil(64)) }, len);
        }
        self.chunk_scalar(text, len)
    }

    #[inline(never)]
    pub fn chunk_scalar(&self, text: &[u8; CHUNK_BYTES], len: usize) -> [u64; BLOCKS] {
        let mut m = [0u64; BLOCKS];
        for j in 0..len.min(CHUNK) {
            let (b0, b1) = (text[j], text[j + 1]);
            let may =
                self.first.contains(b0) && (self.one.contains(b0) || self.second.contains(b1));
            m[j / 64] |= (may as u64) << (j % 64);
        }
        m
    }
}

/// A vector kernel of [`Pairs::chunk`] over `blocks` blocks of 64.
#[cfg(target_arch = "x86_64")]
type Kernel = unsafe fn(&Pairs, &[u8; CHUNK_BYTES], usize) -> [u64; BLOCKS];

/// The vector kernels this CPU runs, widest first.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn vector_kernels() -> impl Iterator<Item = Kernel> {
    let has_avx2 = std::arch::is_x86_feature_detected!("avx2");
    [
        (avx512::usable(), avx512::chunk as Kernel),
        (has_avx2, avx2::chunk as Kernel),
    ]
    .into_iter()
    .filter_map(|(has, k)| has.then_some(k))
}

/// `1 << (h & 7)` for each high nibble `h`: the nibble tables' row bits,
/// for the shuffles of both kernels.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const ROW_BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCKS, ByteSet, CHUNK_BYTES, Pairs, ROW_BIT};

    /// The nibble tables of a set, each in both 128-bit halves.
    #[target_feature(enable = "avx2")]
    fn tables(set: &ByteSet) -> (__m256i, __m256i) {
        // SAFETY: both arrays are 16 bytes; unaligned loads.
        let (lo, hi) = unsafe {
            (
                _mm_loadu_si128(set.low8.as_ptr().cast()),
                _mm_loadu_si128(set.high8.as_ptr().cast()),
            )
        };
        (
            _mm256_broadcastsi128_si256(lo),
            _mm256_broadcastsi128_si256(hi),
        )
    }

    /// [`Pairs::chunk`], 32 positions per step.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn chunk(
        p: &Pairs,
        text: &[u8; CHUNK_BYTES],
        blocks: usize,
    ) -> [u64; BLOCKS] {
        let (first, one, second) = (tables(&p.first), tables(&p.one), tables(&p.second));
        // SAFETY: 16 bytes, an unaligned load.
        let row_bit =
            _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(ROW_BIT.as_ptr().cast()) });
        let nibble = _mm256_set1_epi8(0x0F);
        let zero = _mm256_setzero_si256();
        // Bytes of `v` in the set `(low8, high8)`: 0xFF where a byte is.
        let member = |v: __m256i, (low8, high8): (__m256i, __m256i)| {
            let lo = _mm256_and_si256(v, nibble);
            let rows = _mm256_blendv_epi8(
                _mm256_shuffle_epi8(low8, lo),
                _mm256_shuffle_epi8(high8, lo),
                v,
            );
            let bit =
                _mm256_shuffle_epi8(row_bit, _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble));
            let out = _mm256_cmpeq_epi8(_mm256_and_si256(rows, bit), zero);
            _mm256_xor_si256(out, _mm256_cmpeq_epi8(zero, zero))
        };
        let mut m = [0u64; BLOCKS];
        for (blk, mb) in m.iter_mut().enumerate().take(blocks) {
            for half in 0..2 {
                let j = 64 * blk + 32 * half;
                // SAFETY: j + 1 + 32 <= CHUNK + 1 <= CHUNK_BYTES: both loads
                // stay in `text`.
                let (b0, b1) = unsafe {
                    (
                        _mm256_loadu_si256(text.as_ptr().add(j).cast()),
                        _mm256_loadu_si256(text.as_ptr().add(j + 1).cast()),
                    )
                };
                let may = _mm256_and_si256(
                    member(b0, first),
                    _mm256_or_si256(member(b0, one), member(b1, second)),
                );
                *mb |= (_mm256_movemask_epi8(may) as u32 as u64) << (32 * half);
            }
        }
        m
    }
}

/// [`Pairs::chunk`] on AVX-512: the same nibble tables, 64 positions per
/// step, the membership masks straight into mask registers.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCKS, ByteSet, CHUNK_BYTES, Pairs, ROW_BIT};

    /// Whether the CPU has what [`chunk`] needs.
    #[inline(always)]
    pub(super) fn usable() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }

    /// The nibble tables of a set, each in all four 128-bit lanes.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn tables(set: &ByteSet) -> (__m512i, __m512i) {
        // SAFETY: both arrays are 16 bytes; unaligned loads.
        let (lo, hi) = unsafe {
            (
                _mm_loadu_si128(set.low8.as_ptr().cast()),
                _mm_loadu_si128(set.high8.as_ptr().cast()),
            )
        };
        (_mm512_broadcast_i32x4(lo), _mm512_broadcast_i32x4(hi))
    }

    /// [`Pairs::chunk`], 64 positions per step.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX-512 F and BW ([`usable`]).
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn chunk(
        p: &Pairs,
        text: &[u8; CHUNK_BYTES],
        blocks: usize,
    ) -> [u64; BLOCKS] {
        let (first, one, second) = (tables(&p.first), tables(&p.one), tables(&p.second));
        // SAFETY: 16 bytes, an unaligned load.
        let row_bit = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(ROW_BIT.as_ptr().cast()) });
        let nibble = _mm512_set1_epi8(0x0F);
        // Bytes of `v` in the set `(low8, high8)`: their bits of the mask.
        let member = |v: __m512i, (low8, high8): (__m512i, __m512i)| {
            let lo = _mm512_and_si512(v, nibble);
            let rows = _mm512_mask_blend_epi8(
                _mm512_movepi8_mask(v),
                _mm512_shuffle_epi8(low8, lo),
                _mm512_shuffle_epi8(high8, lo),
            );
            let bit =
                _mm512_shuffle_epi8(row_bit, _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble));
            _mm512_test_epi8_mask(rows, bit)
        };
        let mut m = [0u64; BLOCKS];
        for (blk, mb) in m.iter_mut().enumerate().take(blocks) {
            let j = 64 * blk;
            // SAFETY: j + 1 + 64 <= CHUNK + 1 <= CHUNK_BYTES: both loads
            // stay in `text`.
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_si512(text.as_ptr().add(j).cast()),
                    _mm512_loadu_si512(text.as_ptr().add(j + 1).cast()),
                )
            };
            *mb = member(b0, first) & (member(b0, one) | member(b1, second));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::hash::tests::xorshift;

    #[test]
    fn every_pair_passes_and_both_paths_agree() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        for round in 0..100 {
            let mut p = Pairs::default();
            // A few strings, some of one byte, from a small alphabet with
            // bytes on both sides of 128.
            let alphabet = b"az09 !\xc2\xa5\xe4\xb8\x80\xff\x7f";
            let pick = |x: u64| alphabet[(x % alphabet.len() as u64) as usize];
            for k in 0..(round % 7 + 1) {
                let (a, b) = (pick(next()), pick(next()));
                if k % 3 == 0 {
                    p.insert(&[a]);
                } else {
                    p.insert(&[a, b]);
                }
            }
            let mut text = [0u8; CHUNK_BYTES];
            for b in text.iter_mut() {
                *b = pick(next());
            }
            let got = p.chunk_scalar(&text, CHUNK);
            assert_eq!(p.chunk(&text, CHUNK), got, "round {round}");
            // Each kernel this CPU has, not only the one `chunk` picks.
            #[cfg(target_arch = "x86_64")]
            for kernel in vector_kernels() {
                let blocks = 1 + round % BLOCKS;
                // SAFETY: the CPU has the kernel's features.
                let v = unsafe { kernel(&p, &text, blocks) };
                let (v, want) = (clip(v, 64 * blocks), clip(got, 64 * blocks));
                assert_eq!(v, want, "round {round}");
            }
            let len = 50 + 4 * round;
            assert_eq!(p.chunk(&text, len), clip(got, len));
            for j in 0..CHUNK {
                if p.has(text[j], text[j + 1]) {
                    assert_eq!((got[j / 64] >> (j % 64)) & 1, 1, "round {round} at {j}");
                }
            }
        }
    }

    #[test]
    fn byte_sets_hold_exactly_their_bytes() {
        let mut s = ByteSet::default();
        for c in [0u8, 15, 16, 127, 128, 200, 255] {
            s.insert(c);
        }
        let p = Pairs {
            first: s.clone(),
            one: s.clone(),
            ..Pairs::default()
        };
        let mut text = [0u8; CHUNK_BYTES];
        for (j, b) in text.iter_mut().enumerate() {
            *b = j as u8;
        }
        let m = p.chunk(&text, CHUNK);
        for j in 0..CHUNK {
            let want = [0u8, 15, 16, 127, 128, 200, 255].contains(&(j as u8));
            assert_eq!((m[j / 64] >> (j % 64)) & 1 == 1, want, "byte {j}");
        }
    }
}
