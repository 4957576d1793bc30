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
//! counter update; memory is two counter arrays sized to the number of
//! windows (at most 2^23 counters each, 16 MiB together), freed after the
//! build.

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

pub struct Chooser {
    freq: Vec<u16>,
    assigned: Vec<u16>,
    shift: u32,
}

impl Chooser {
    /// A chooser sized for about `windows` window occurrences.
    pub fn new(windows: usize) -> Chooser {
        let size = windows.next_power_of_two().clamp(1 << 12, 1 << 22);
        Chooser {
            freq: vec![0; size],
            assigned: vec![0; size],
            shift: 64 - size.trailing_zeros(),
        }
    }

    #[inline]
    fn slot(&self, key: u64) -> usize {
        (mix(key) >> self.shift) as usize
    }

    /// Counts one library occurrence of a keyword value.
    pub fn count(&mut self, key: u64) {
        let s = self.slot(key);
        self.freq[s] = self.freq[s].saturating_add(1);
    }

    /// Lower is better: library occurrences first, then the text prior of
    /// the window's bytes, then the length of its list so far.
    pub fn cost(&self, key: u64, bytes: &[u8]) -> (u64, u16) {
        let s = self.slot(key);
        let prior: u64 = bytes.iter().map(|&b| BYTE_PRIOR[b as usize] as u64).sum();
        (self.freq[s] as u64 * 64 + prior, self.assigned[s])
    }

    /// Records that a string was put in this keyword's list.
    pub fn assign(&mut self, key: u64) {
        let s = self.slot(key);
        self.assigned[s] = self.assigned[s].saturating_add(1);
    }
}
