//! Keyword choice: which window of each library string heads its list.
//!
//! A string is found through exactly one keyword, so the choice decides how
//! often the scanner walks a list for nothing. Each string gets its *rarest*
//! window, where rarity is estimated from these sources:
//!
//! * how many windows of the whole library share the value (counted in a
//!   hashed table of saturating 16-bit counters: collisions only make a
//!   window look more common than it is, never rarer);
//! * a small prior for text that the library does not show: spaces, common
//!   English letters and UTF-8 lead bytes carry little information;
//! * windows of words and tokens common in any mail (`mail_words.txt`:
//!   the most frequent English words, mail and web plumbing such as
//!   `http`, `/www`, `unsubscribe`) count as [`MAIL_WORD_WEIGHT`] library
//!   occurrences each: a library of domains would otherwise key one on
//!   `from` or `know` if no other string shares those windows;
//! * a penalty for windows that hold a space: they span a word boundary, and
//!   in running text such windows are made of short common words and word
//!   ends however rare they are in the library (a phrase's window inside
//!   its rare word, even shared by the other phrases that use the word, is
//!   found far less often). It weighs as much as [`SPACE_PENALTY`] library
//!   occurrences.
//!
//! Ties go to the window whose list is shortest so far (counted in a second
//! hashed table), which spreads strings sharing rare windows over several
//! lists.
//!
//! Cost: two passes over every window of every string, each a hash and one
//! access to a counter array sized to the number of windows (at most 2^23
//! slots of 4 bytes, 32 MiB, freed after the build). Collisions only make
//! windows look common, but they blur the choice: at a million strings a
//! 2^20-slot array gave 26 % more candidates to verify than 2^23. The
//! array outgrows the caches, so counting runs [`AHEAD`] windows ahead of
//! its increments with prefetches, and the choice prefetches the counters
//! of a string a few places ahead (without them the larger array tripled
//! the time of both passes).

use super::hash::mix;
use super::index::prefetch;

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

/// What a space in a window costs, in library occurrences. Measured on the
/// benchmark's text at 100 000 strings: 1 changed little, 4 cut the table
/// lookups by 17 %, 16 by 22 %; 64 lengthened the lists at a million.
pub const SPACE_PENALTY: u64 = 16;

/// Words and tokens common in mail text (`mail_words.txt`).
static MAIL_WORDS: &str = include_str!("mail_words.txt");

/// How many library occurrences each window of a common mail word counts
/// as. Measured on the real lexicon against decoded SpamAssassin mail: its
/// domains were found through windows like `from`, `know` or `/www`, 57 000
/// lists per 4 MiB of text for 300 matches.
pub const MAIL_WORD_WEIGHT: u32 = 32;

/// The words of `mail_words.txt`, each between spaces as in running text.
pub fn mail_words() -> impl Iterator<Item = String> {
    MAIL_WORDS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|w| format!(" {w} "))
}

/// Whether a key holds a space byte (its tag and padding bytes never do).
#[inline(always)]
fn has_space(key: u64) -> bool {
    let x = key ^ 0x2020_2020_2020_2020;
    (x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080) != 0
}

pub struct Chooser {
    /// Per hashed slot: library occurrences (low half) and strings assigned
    /// so far (high half), together so that a cost is one memory access.
    slots: Vec<u32>,
    shift: u32,
    /// Slots prefetched and not yet counted (see [`Chooser::count`]).
    ring: [u32; AHEAD],
    pending: usize,
}

/// How many windows [`Chooser::count`] runs ahead of its increments.
const AHEAD: usize = 32;

impl Chooser {
    /// A chooser sized for about `windows` window occurrences.
    pub fn new(windows: usize) -> Chooser {
        let size = windows.next_power_of_two().clamp(1 << 12, 1 << 23);
        Chooser {
            slots: vec![0; size],
            shift: 64 - size.trailing_zeros(),
            ring: [0; AHEAD],
            pending: 0,
        }
    }

    #[inline]
    fn slot(&self, key: u64) -> usize {
        (mix(key) >> self.shift) as usize
    }

    /// Counts one library occurrence of a keyword value. The increment
    /// lands [`AHEAD`] calls later, after a prefetch of its slot (a
    /// million-string library's table outgrows the caches); call
    /// [`Chooser::counted`] before any cost.
    #[inline]
    pub fn count(&mut self, key: u64) {
        let s = self.slot(key);
        self.fetch(s);
        let at = self.pending % AHEAD;
        if self.pending >= AHEAD {
            self.add(self.ring[at] as usize, 1);
        }
        self.ring[at] = s as u32;
        self.pending += 1;
    }

    /// Counts a window of a common mail word as [`MAIL_WORD_WEIGHT`]
    /// library occurrences (at once, not through the prefetch ring).
    pub fn count_common(&mut self, key: u64) {
        self.add(self.slot(key), MAIL_WORD_WEIGHT);
    }

    /// Lands the increments still pending.
    pub fn counted(&mut self) {
        let n = self.pending.min(AHEAD);
        for j in self.pending - n..self.pending {
            self.add(self.ring[j % AHEAD] as usize, 1);
        }
        self.pending = 0;
    }

    /// Adds `n` occurrences to slot `s`, saturating.
    #[inline]
    fn add(&mut self, s: usize, n: u32) {
        if let Some(v) = self.slots.get_mut(s) {
            *v = (*v & !0xFFFF) | ((*v & 0xFFFF) + n).min(0xFFFF);
        }
    }

    #[inline]
    fn fetch(&self, s: usize) {
        prefetch(self.slots.as_ptr().wrapping_add(s) as usize);
    }

    /// Prefetches the slot of a key whose cost will be asked soon.
    #[inline]
    pub fn prefetch(&self, key: u64) {
        self.fetch(self.slot(key));
    }

    /// Lower is better: library occurrences (plus [`SPACE_PENALTY`] for a
    /// window holding a space) first, then the text prior of the window's
    /// bytes, then the length of its list so far. `prior` is the sum of
    /// [`byte_prior`] over the window's bytes.
    #[inline]
    pub fn cost(&self, key: u64, prior: u32) -> (u64, u32) {
        let v = self.slots[self.slot(key)];
        let count = (v & 0xFFFF) as u64 + if has_space(key) { SPACE_PENALTY } else { 0 };
        (count * 64 + prior as u64, v >> 16)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_are_found_in_any_byte_and_only_there() {
        for at in 0..8 {
            let mut b = *b"abcdefgh";
            b[at] = b' ';
            assert!(has_space(u64::from_le_bytes(b)));
        }
        assert!(!has_space(u64::from_le_bytes(*b"abcdefgh")));
        // Tags (control bytes) and zero padding are not spaces.
        assert!(!has_space(0x0000_0105_6463_6261));
        assert!(!has_space(0x21_1F_FF_00_41_3F_7E_80));
    }

    #[test]
    fn windows_of_common_mail_words_cost_more() {
        let words: Vec<String> = mail_words().collect();
        // Each word once: a repeated one would weigh twice.
        let distinct: std::collections::HashSet<&String> = words.iter().collect();
        assert_eq!(distinct.len(), words.len());
        assert!(words.iter().any(|w| w == " from "));
        assert!(words.iter().any(|w| w == " unsubscribe "));
        assert!(words.iter().all(|w| {
            let inner = &w[1..w.len() - 1];
            w.starts_with(' ')
                && w.ends_with(' ')
                && !inner.contains([' ', '#'])
                && !inner.is_empty()
        }));
        let mut c = Chooser::new(16);
        let from = u64::from_le_bytes(*b"from\0\0\0\0") | (1 << 40);
        let rare = u64::from_le_bytes(*b"qzvx\0\0\0\0") | (1 << 40);
        assert_eq!(c.cost(from, 14), c.cost(rare, 14));
        c.count_common(from);
        assert!(c.cost(from, 14) > c.cost(rare, 14));
        // Weighed like many library occurrences, not one.
        let mut shared = Chooser::new(16);
        for _ in 0..(MAIL_WORD_WEIGHT - 1) {
            shared.count(rare);
        }
        shared.counted();
        assert!(c.cost(from, 0) > shared.cost(rare, 0));
    }

    #[test]
    fn a_spaced_window_costs_more_than_a_shared_one() {
        let mut c = Chooser::new(16);
        let inside = u64::from_le_bytes(*b"wbfat\0\0\0") | (5 << 40);
        let spanning = u64::from_le_bytes(*b"tof h\0\0\0") | (5 << 40);
        for _ in 0..3 {
            c.count(inside);
        }
        c.count(spanning);
        assert!(c.cost(inside, 20) < c.cost(spanning, 20));
    }
}
