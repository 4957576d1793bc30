//! Deterministic test data for the benchmarks: libraries of mixed English
//! words and phrases, CJK phrases, domains and a few 1–2 character strings,
//! and text of the same kind with library strings dropped in, dense with
//! hits.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// xorshift64*: small, fast, reproducible across platforms.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Roughly Zipf-distributed index below `n`: small indices are common.
    pub fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (((n as f64 + 1.0).powf(u) - 1.0) as usize).min(n - 1)
    }
}

/// Letters weighted by their frequency in English text.
const LETTERS: &[u8] = b"eeeeeeeeeeeetttttttttaaaaaaaaoooooooiiiiiiinnnnnnnsssssshhhhhhrrrrrrddddlllluuucccmmmwwffggyyppbbvkjxqz";
const TLDS: &[&str] = &[
    "com", "net", "org", "cn", "info", "biz", "ru", "top", "xyz", "co.uk",
];

pub struct Vocab {
    pub words: Vec<String>,
    pub cjk: Vec<char>,
}

impl Vocab {
    pub fn new(rng: &mut Rng) -> Vocab {
        let mut seen = HashSet::new();
        let mut words = Vec::new();
        // Frequent short words first: the Zipf draw favours them, as text does.
        for w in [
            "the", "and", "for", "you", "your", "free", "now", "to", "of", "in", "is",
        ] {
            seen.insert(w.to_string());
            words.push(w.to_string());
        }
        // Then words of random letters at English frequencies, shorter
        // ones first (they get the higher Zipf ranks, as in real text).
        while words.len() < 30_000 {
            let n = 2 + (words.len() * 9 / 30_000) + rng.below(3);
            let w: String = (0..n)
                .map(|_| LETTERS[rng.below(LETTERS.len())] as char)
                .collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        // 3 500 ideographs, the first ones most common.
        let mut cjk = Vec::new();
        let mut seen = HashSet::new();
        while cjk.len() < 3500 {
            let c = char::from_u32(0x4E00 + rng.below(0x9FA5 - 0x4E00) as u32).unwrap_or('中');
            if seen.insert(c) {
                cjk.push(c);
            }
        }
        Vocab { words, cjk }
    }

    fn word(&self, rng: &mut Rng) -> &str {
        &self.words[rng.zipf(self.words.len())]
    }

    fn rare_word(&self, rng: &mut Rng) -> &str {
        &self.words[rng.below(self.words.len())]
    }

    fn domain(&self, rng: &mut Rng) -> String {
        let mut d = self.rare_word(rng).to_string();
        if rng.below(2) == 0 {
            d.push_str(&rng.below(1000).to_string());
        }
        if rng.below(3) == 0 {
            d = format!("{}-{d}", self.word(rng));
        }
        format!("{d}.{}", TLDS[rng.below(TLDS.len())])
    }

    fn cjk_phrase(&self, rng: &mut Rng, min: usize, max: usize) -> String {
        let n = min + rng.below(max - min + 1);
        (0..n).map(|_| self.cjk[rng.zipf(self.cjk.len())]).collect()
    }
}

/// `n` distinct library strings (already lowercase and single-spaced, so
/// normalization leaves them as they are): English phrases of two to four
/// words (a rare word, then common ones), rare single words, CJK phrases of
/// two to six characters (at most 20 000 of two characters: a language
/// has only so many short words), domains, and about 200 strings of one or
/// two characters (CJK characters, symbols, pairs of rare letters or of a
/// digit and a letter).
pub fn library(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let v = Vocab::new(&mut rng);
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for i in 0..200 {
        let s = match i % 4 {
            0 => v.cjk[rng.below(v.cjk.len())].to_string(),
            // Two letters from the rarest ones ("qq", "xz"): a list entry of
            // two common letters would hit half of all mail.
            1 => {
                let rare = b"qxzjkv";
                let a = rare[rng.below(rare.len())] as char;
                let b = rare[rng.below(rare.len())] as char;
                format!("{a}{b}")
            }
            2 => format!(
                "{}{}",
                (b'0' + rng.below(10) as u8) as char,
                (b'a' + rng.below(26) as u8) as char
            ),
            _ => ["$", "¥", "€", "!!", "%", "★", "☆", "※"][rng.below(8)].to_string(),
        };
        if out.len() < n && seen.insert(s.clone()) {
            out.push(s);
        }
    }
    // A language has only so many short words: two-character CJK phrases
    // are capped, longer libraries grow with longer phrases.
    let mut cjk2 = 0;
    while out.len() < n {
        let s = match rng.below(20) {
            // English phrases (30 %): a rare word first, then common ones.
            0..=5 => {
                let k = 1 + rng.below(3);
                let mut words = vec![v.rare_word(&mut rng)];
                words.extend((0..k).map(|_| v.word(&mut rng)));
                words.join(" ")
            }
            // Rare single words (10 %).
            6..=7 => v.words[5000 + rng.below(v.words.len() - 5000)].clone(),
            // CJK phrases (35 %).
            8..=14 => {
                if cjk2 < 20_000 && rng.below(2) == 0 {
                    cjk2 += 1;
                    v.cjk_phrase(&mut rng, 2, 2)
                } else {
                    v.cjk_phrase(&mut rng, 3, 6)
                }
            }
            // Domains (25 %).
            _ => v.domain(&mut rng),
        };
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    out
}

/// About `bytes` of text: English sentences, CJK sentences and links from
/// the vocabulary of `seed` (the benchmarks pass 7, a vocabulary of the
/// same kind as their libraries' 42 but independent of it; 42 writes the
/// text from the library's own words), with a library string dropped in
/// about every 100 bytes ("dense": real mail has far fewer hits).
pub fn text(bytes: usize, lib: &[String], seed: u64) -> String {
    text_with_gap(bytes, lib, seed, 100)
}

/// As [`text`], with a library string dropped in about every `gap` bytes.
pub fn text_with_gap(bytes: usize, lib: &[String], seed: u64, gap: usize) -> String {
    let mut rng = Rng::new(seed ^ 0xABCD);
    let v = Vocab::new(&mut Rng::new(seed));
    let mut t = String::with_capacity(bytes + 256);
    let mut next_insert = gap;
    while t.len() < bytes {
        match rng.below(10) {
            0..=5 => {
                for _ in 0..4 + rng.below(8) {
                    t.push_str(v.word(&mut rng));
                    t.push(' ');
                }
            }
            6..=8 => {
                t.push_str(&v.cjk_phrase(&mut rng, 5, 20));
                t.push(' ');
            }
            _ => {
                t.push_str("https://www.");
                t.push_str(&v.domain(&mut rng));
                t.push_str("/x ");
            }
        }
        if !lib.is_empty() && t.len() >= next_insert {
            t.push_str(&lib[rng.below(lib.len())]);
            t.push(' ');
            next_insert = t.len() + gap;
        }
    }
    t
}

/// `$name` read as a `T`, else `default` (unset or not a `T`).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The text generator's vocabulary seed: `$TEXT_SEED`, else 7 (independent
/// of the library's 42).
pub fn text_seed() -> u64 {
    env_or("TEXT_SEED", 7)
}

/// `$MAILWARD_CORPUS`, when it names a directory.
pub fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("MAILWARD_CORPUS")?);
    p.is_dir().then_some(p)
}

/// Every line of every `*.txt` file of `dir` (blank lines skipped).
pub fn list_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "txt"));
    files.sort();
    let mut out = Vec::new();
    for f in files {
        if let Ok(s) = std::fs::read_to_string(&f) {
            out.extend(
                s.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
        }
    }
    out
}

/// Appends the texts the milter scans in a raw message (subjects and text
/// parts decoded, HTML reduced to text), one per line.
pub fn push_decoded(raw: &[u8], out: &mut String) {
    let opts = mailward::message::DecodeOptions::default();
    for part in mailward::message::decode(raw, &opts).parts {
        out.push_str(&part.text);
        out.push('\n');
    }
}

/// About `bytes` of the corpus' SpamAssassin messages (`MAILWARD_CORPUS`
/// must be set), whole messages in path order: the texts the milter scans
/// when `decoded`, else the raw messages. Not normalized.
pub fn mail_text(bytes: usize, decoded: bool) -> String {
    let dir = corpus().expect("MAILWARD_CORPUS").join("spamassassin");
    let mut t = String::new();
    for m in messages(&dir) {
        if decoded {
            push_decoded(&m, &mut t);
        } else {
            t.push_str(&String::from_utf8_lossy(&m));
        }
        if t.len() > bytes {
            break;
        }
    }
    t
}

/// The raw bytes of every message file below `dir`, in path order.
pub fn messages(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p
                    .file_name()
                    .is_some_and(|n| n != "README.md" && n != "LICENSE")
                {
                    paths.push(p);
                }
            }
        }
    }
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Seconds per round of two jobs timed alternately (see [`alternate`]).
pub struct Alternated {
    pub first: Vec<f64>,
    pub second: Vec<f64>,
}

impl Alternated {
    /// Each job's median speed over `bytes`, in MiB/s.
    pub fn mib_s(&self, bytes: usize) -> (f64, f64) {
        let mib = |v: &[f64]| bytes as f64 / median(&mut v.to_vec()) / (1 << 20) as f64;
        (mib(&self.first), mib(&self.second))
    }

    /// Median, lowest and highest of the per-round ratios second / first
    /// in time: how many times faster the first job ran.
    pub fn ratio(&self) -> (f64, f64, f64) {
        let mut r: Vec<f64> = self
            .first
            .iter()
            .zip(&self.second)
            .map(|(a, b)| b / a)
            .collect();
        let mid = median(&mut r);
        (mid, r[0], r[r.len() - 1])
    }
}

/// Times `first` and `second` alternately, `rounds` rounds (at least one).
/// The VMs these figures come from change speed within seconds: the ratio
/// of two jobs run back to back is far steadier than that of two medians
/// taken a minute apart, so the ratio is taken round by round.
pub fn alternate(rounds: usize, mut first: impl FnMut(), mut second: impl FnMut()) -> Alternated {
    let secs = |f: &mut dyn FnMut()| {
        let t = std::time::Instant::now();
        f();
        t.elapsed().as_secs_f64()
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        a.push(secs(&mut first));
        b.push(secs(&mut second));
    }
    Alternated {
        first: a,
        second: b,
    }
}

/// mailward against aho-corasick's NFA on one text, timed alternately
/// (see [`versus_nfa`]).
pub struct Versus {
    /// Median MiB/s of each.
    pub ours: f64,
    pub theirs: f64,
    /// Median, lowest and highest of the per-round ratios (ours / theirs
    /// in speed).
    pub ratio: (f64, f64, f64),
    /// Matches each reported (every occurrence), to check they agree.
    pub matches: (usize, usize),
}

/// Times a scan of `text` by `lib` and by `ac` alternately, `rounds`
/// rounds (at least one; see [`alternate`]).
pub fn versus_nfa(
    rounds: usize,
    lib: &mailward::library::Library,
    ac: &aho_corasick::AhoCorasick,
    text: &str,
) -> Versus {
    let mut scanner = mailward::library::Scanner::new();
    let (mut ours, mut theirs) = (0, 0);
    let times = alternate(
        rounds,
        || {
            ours = scanner
                .scan_normalized(lib, text)
                .iter()
                .map(|h| h.count as usize)
                .sum()
        },
        || theirs = ac.find_overlapping_iter(text).count(),
    );
    let (speed_ours, speed_theirs) = times.mib_s(text.len());
    Versus {
        ours: speed_ours,
        theirs: speed_theirs,
        ratio: times.ratio(),
        matches: (ours, theirs),
    }
}

/// The median of `v` (sorted in place); `v` is not empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
