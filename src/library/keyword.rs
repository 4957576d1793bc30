//! Keyword choice: which window of each library string heads its list.
//!
//! A string is found through exactly one keyword, so the choice decides how
//! often the scanner walks a list for nothing. Each string gets its *rarest*
//! window, where rarity is estimated from two sources:
//!
//! * how many windows of the whole library share the value (counted in a
//!   hashed table of saturating 16-bit counters: collisions only make a
//!   window look more common than it is, never rarer);
//! * a small prior for text that the library does not show: spaces, common
//!   English letters and UTF-8 lead bytes carry little information.
//!
//! Ties go to the window whose list is shortest so far (counted in a second
//! hashed table), which spreads strings sharing rare windows over several
//! lists.
//!
//! Cost: two passes over every window of every string, each a hash and one
//! access to a counter array sized to the number of windows (at most 2^20
//! slots of 4 bytes, 4 MiB: small enough to stay in the caches, which
//! matters more for build time than the extra collisions matter for the
//! choice), freed after the build.

use super::hash::mix;

/// Commonness of a byte in mail text: higher is more common. Kept below 8
/// so that four of them stay under one library occurrence (see `cost`).
static BYTE_PRIOR: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b' ' => 7,
            b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' | b'h' => 4,
            b'a'..=b'z' => 3,
            b'.' | b',' | b'-' | b'/' | b':' | b'\'' | b'"' => 4,
            b'0'..=b'9' => 3,
            0x21..=0x7E => 2,
            // UTF-8 lead bytes say only which block follows.
            0xC2..=0xF4 => 5,
            // Continuation bytes carry the character's identity.
            _ => 1,
        };
        b += 1;
    }
    t
};

/// How common byte `b` is in mail text (0–7).
#[inline]
pub fn byte_prior(b: u8) -> u32 {
    BYTE_PRIOR[b as usize] as u32
}

pub struct Chooser {
    /// Per hashed slot: library occurrences (low half) and strings assigned
    /// so far (high half), together so that a cost is one memory access.
    slots: Vec<u32>,
    shift: u32,
}

impl Chooser {
    /// A chooser sized for about `windows` window occurrences.
    pub fn new(windows: usize) -> Chooser {
        let size = windows.next_power_of_two().clamp(1 << 12, 1 << 20);
        Chooser {
            slots: vec![0; size],
            shift: 64 - size.trailing_zeros(),
        }
    }

    #[inline]
    fn slot(&self, key: u64) -> usize {
        (mix(key) >> self.shift) as usize
    }

    /// Counts one library occurrence of a keyword value.
    #[inline]
    pub fn count(&mut self, key: u64) {
        let s = self.slot(key);
        if self.slots[s] & 0xFFFF != 0xFFFF {
            self.slots[s] += 1;
        }
    }

    /// Lower is better: library occurrences first, then the text prior of
    /// the window's bytes, then the length of its list so far.
    /// `prior` is the sum of [`byte_prior`] over the window's bytes.
    #[inline]
    pub fn cost(&self, key: u64, prior: u32) -> (u64, u32) {
        let v = self.slots[self.slot(key)];
        ((v & 0xFFFF) as u64 * 64 + prior as u64, v >> 16)
    }

    /// Records that a string was put in this keyword's list.
    #[inline]
    pub fn assign(&mut self, key: u64) {
        let s = self.slot(key);
        if self.slots[s] >> 16 != 0xFFFF {
            self.slots[s] += 1 << 16;
        }
    }
}
