//! Keyword values, their hash, and the bitmap pre-filter.
//!
//! A keyword is a fixed-length byte window read as one integer. Windows of
//! different lengths share one hash table, so each length carries a tag in
//! byte 5 of the value: a 4-byte window `w` becomes `w | TAG4`, a short
//! string of 1–3 bytes `s | TAG_SHORT[len]`, and an 8-byte window is used as
//! it is. Tags are control bytes (1–4) that normalized text never contains,
//! so an 8-byte window can never equal a tagged value.
//!
//! The hash is a folded 64×64→128 multiply: one `mul` instruction, and every
//! output bit depends on every input bit (a plain multiplicative hash leaves
//! the low bits weak, and hashbrown takes its bucket index from them).

pub const TAG4: u64 = 1 << 40;
/// Tags of strings shorter than a 4-byte window, indexed by length.
pub const TAG_SHORT: [u64; 4] = [0, 2 << 40, 3 << 40, 4 << 40];

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

/// A set of hash values with false positives and no false negatives: one
/// bit per slot, slot taken from hash bits that hashbrown does not use for
/// its bucket index or control byte, so a false positive here is usually
/// rejected by the table's control byte without a key comparison.
#[derive(Clone, Debug)]
pub struct Bitmap {
    words: Vec<u64>,
    shift: u32,
}

impl Bitmap {
    /// A bitmap with about `bits_per_key` bits for each of `keys` keys
    /// (rounded up to a power of two, at least 512 bits).
    pub fn with_keys(keys: usize, bits_per_key: usize) -> Bitmap {
        let bits = (keys.saturating_mul(bits_per_key))
            .next_power_of_two()
            .max(512);
        Bitmap {
            words: vec![0; bits / 64],
            shift: 64 - bits.trailing_zeros(),
        }
    }

    #[inline(always)]
    fn slot(&self, h: u64) -> usize {
        (h.rotate_left(24) >> self.shift) as usize
    }

    pub fn insert(&mut self, h: u64) {
        let s = self.slot(h);
        self.words[s >> 6] |= 1 << (s & 63);
    }

    #[inline(always)]
    pub fn contains(&self, h: u64) -> bool {
        let s = self.slot(h);
        // The slot is < bits by construction of `shift`; `get` keeps the
        // scan free of panics and costs nothing measurable.
        match self.words.get(s >> 6) {
            Some(w) => w & (1 << (s & 63)) != 0,
            None => false,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_has_no_false_negatives() {
        let mut b = Bitmap::with_keys(1000, 16);
        for x in 0..1000u64 {
            b.insert(mix(x));
        }
        assert!((0..1000u64).all(|x| b.contains(mix(x))));
        let fp = (1000..101_000u64).filter(|&x| b.contains(mix(x))).count();
        assert!(fp < 100_000 / 8, "false positive rate too high: {fp}");
    }

    #[test]
    fn read_le_pads_with_zeros() {
        assert_eq!(read_le(b"ab"), 0x6261);
        assert_eq!(read_le(b""), 0);
    }
}
