//! The messages of one input: a message file, or an mbox of several.
//!
//! An input whose first line starts with `From ` (and ends within
//! [`MAX_FROM_LINE`] bytes) is an mbox: a message starts after each `From `
//! line that begins the input or follows an empty line. The separator line
//! and the empty line before it belong to neither message (mbox writers
//! add that empty line), and a line quoted as `>From `, `>>From `, … loses
//! one `>` (mboxrd; in the older mboxo form such lines were written
//! unquoted or quoted alike, and read back the same here). Any other input
//! is one message, read as it is.
//!
//! # Invariants
//!
//! * Memory stays at `cap` bytes of message plus one line piece of at most
//!   [`PIECE`] bytes, whatever the input's size or line lengths: a longer
//!   line is read in pieces, and only a piece at the start of a line can be
//!   a separator or a quoted `From `;
//! * every byte of the input is counted in exactly one message's `total`
//!   (separators and the empty lines before them with the message they
//!   end), so the totals add up to the input's size.

use std::io::{self, BufRead, Read};

/// Longest mbox `From ` line recognized; a longer first line is kept (it is
/// then no mbox separator the milter could be spared).
pub const MAX_FROM_LINE: usize = 4096;
/// Longest piece of a line read at once.
const PIECE: usize = 64 << 10;

/// Appends to `out` the input up to and including the next `\n`, or up to
/// `max` bytes, whichever comes first; returns the bytes read (0 at the
/// end of the input). What `take(max).read_until(b'\n', out)` does, with
/// the vectorized `memchr`: mbox lines are short, and the standard
/// library's byte search took most of reading an mbox.
fn read_piece(r: &mut impl BufRead, max: usize, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut n = 0;
    while n < max {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let avail = &buf[..buf.len().min(max - n)];
        let (used, eol) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        out.extend_from_slice(&avail[..used]);
        r.consume(used);
        n += used;
        if eol {
            break;
        }
    }
    Ok(n)
}

/// What was read of one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Bytes judged (the `size=` of the milter's log line).
    pub size: u64,
    /// Bytes past `limits.message_bytes`, not judged (`cut=`).
    pub cut: u64,
    /// Every byte read for it, separator lines included.
    pub total: u64,
}

/// Reads the messages of one input in turn.
pub struct Messages<R> {
    r: R,
    /// The first line has been read (and with it, whether this is an mbox).
    started: bool,
    /// The last message read ended at a separator: another follows.
    more: bool,
    /// Nothing is left to read.
    done: bool,
    piece: Vec<u8>,
}

impl<R: BufRead> Messages<R> {
    pub fn new(r: R) -> Messages<R> {
        Messages {
            r,
            started: false,
            more: false,
            done: false,
            piece: Vec::new(),
        }
    }

    /// Whether another message follows the last one read: known once that
    /// one has been read.
    pub fn more(&self) -> bool {
        self.more
    }

    /// Reads the next message into `raw` (cleared first), keeping at most
    /// `cap` bytes and counting the rest; `None` when the input is over
    /// (an empty input is one empty message).
    pub fn next_message(&mut self, cap: usize, raw: &mut Vec<u8>) -> io::Result<Option<Sizes>> {
        raw.clear();
        if self.done {
            return Ok(None);
        }
        let mut sizes = Sizes::default();
        if !self.started {
            self.started = true;
            let mut first = Vec::new();
            read_piece(&mut self.r, MAX_FROM_LINE, &mut first)?;
            sizes.total = first.len() as u64;
            if !(first.starts_with(b"From ") && first.ends_with(b"\n")) {
                // No mbox: the whole input is one message.
                self.done = true;
                keep(raw, cap, &first, &mut sizes);
                let room = cap.saturating_sub(raw.len()) as u64;
                sizes.total += (&mut self.r).take(room).read_to_end(raw)? as u64;
                let rest = io::copy(&mut self.r, &mut io::sink())?;
                sizes.cut += rest;
                sizes.total += rest;
                sizes.size = raw.len() as u64;
                return Ok(Some(sizes));
            }
        }
        self.read_mbox_message(cap, raw, sizes).map(Some)
    }

    /// One mbox message, the separator before it already read.
    fn read_mbox_message(
        &mut self,
        cap: usize,
        raw: &mut Vec<u8>,
        mut sizes: Sizes,
    ) -> io::Result<Sizes> {
        self.more = false;
        let mut line_start = true;
        // An empty line, held back until it is known not to precede a
        // separator.
        let mut held: Option<&'static [u8]> = None;
        loop {
            if line_start && held.is_none() {
                // The lines that need no decision (most of them) go over
                // in one copy, straight from the reader's buffer.
                let buf = self.r.fill_buf()?;
                let ordinary = ordinary_lines(buf);
                if ordinary > 0 {
                    keep(raw, cap, &buf[..ordinary], &mut sizes);
                    self.r.consume(ordinary);
                    sizes.total += ordinary as u64;
                    continue;
                }
            }
            self.piece.clear();
            let n = read_piece(&mut self.r, PIECE, &mut self.piece)?;
            if n == 0 {
                self.done = true;
                break;
            }
            sizes.total += n as u64;
            let at_start = line_start;
            line_start = self.piece.ends_with(b"\n");
            let p = &self.piece[..];
            if at_start {
                if held.is_some() && p.starts_with(b"From ") {
                    // A separator: it and the held empty line end this
                    // message.
                    self.more = true;
                    break;
                }
                if let Some(h) = held.take() {
                    keep(raw, cap, h, &mut sizes);
                }
                if p == b"\n" || p == b"\r\n" {
                    held = Some(if p.len() == 1 { b"\n" } else { b"\r\n" });
                    continue;
                }
                let quoted = p.iter().take_while(|&&b| b == b'>').count();
                if quoted > 0 && p[quoted..].starts_with(b"From ") {
                    keep(raw, cap, &p[1..], &mut sizes);
                    continue;
                }
            }
            keep(raw, cap, p, &mut sizes);
        }
        // An empty line still held ends the input: mbox writers add it after
        // the last message as after every other, so it is dropped too.
        sizes.size = raw.len() as u64;
        Ok(sizes)
    }
}

/// The length of the whole lines at the start of `buf` that are neither
/// empty nor start with `From ` or `>`: text to keep as it is, whatever
/// surrounds it.
fn ordinary_lines(buf: &[u8]) -> usize {
    let mut end = 0;
    while let Some(nl) = memchr::memchr(b'\n', &buf[end..]) {
        let line = &buf[end..end + nl + 1];
        if matches!(line, [b'\n'] | [b'\r', b'\n'] | [b'>', ..]) || line.starts_with(b"From ") {
            break;
        }
        end += nl + 1;
    }
    end
}

/// Appends what `cap` leaves room for of `bytes` to `raw`; the rest is cut.
fn keep(raw: &mut Vec<u8>, cap: usize, bytes: &[u8], sizes: &mut Sizes) {
    let room = cap.saturating_sub(raw.len()).min(bytes.len());
    raw.extend_from_slice(&bytes[..room]);
    sizes.cut += (bytes.len() - room) as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], cap: usize) -> Vec<(Vec<u8>, Sizes, bool)> {
        all_from(input, cap)
    }

    fn all_from(input: impl BufRead, cap: usize) -> Vec<(Vec<u8>, Sizes, bool)> {
        let mut m = Messages::new(input);
        let mut out = Vec::new();
        let mut raw = Vec::new();
        while let Some(s) = m.next_message(cap, &mut raw).unwrap() {
            out.push((raw.clone(), s, m.more()));
        }
        out
    }

    #[test]
    fn one_message_with_an_mbox_line_drops_it_and_caps_after_it() {
        let from = b"From a@b Mon Jan  1 00:00:00 2024\n";
        let msg = b"Subject: x\n\nbody\n";
        let got = all(&[&from[..], msg].concat(), 16);
        assert_eq!(got.len(), 1);
        let (raw, s, more) = &got[0];
        assert_eq!(raw, b"Subject: x\n\nbody");
        assert_eq!((s.size, s.cut), (16, 1));
        assert_eq!(s.total, (from.len() + msg.len()) as u64);
        assert!(!more);
        // A first line that is all there is, or no mbox line at all, is
        // kept.
        assert_eq!(all(b"From nowhere", 1024)[0].0, b"From nowhere");
        assert_eq!(all(b"From: a@b\n\nhi\n", 1024)[0].0, b"From: a@b\n\nhi\n");
    }

    #[test]
    fn a_file_without_mbox_line_is_one_message_under_its_cap() {
        let got = all(b"Subject: x\r\n\r\nbody\r\n\r\nFrom me\r\n", 1024);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, b"Subject: x\r\n\r\nbody\r\n\r\nFrom me\r\n");
        let got = all(&[b'a'; 5000], 1024);
        assert_eq!(got[0].0.len(), 1024);
        let s = got[0].1;
        assert_eq!((s.size, s.cut, s.total), (1024, 3976, 5000));
        // An empty input is one empty message.
        assert_eq!(all(b"", 10), [(Vec::new(), Sizes::default(), false)]);
    }

    #[test]
    fn an_mbox_splits_at_separators_after_empty_lines_and_unquotes() {
        let input: &[u8] = b"From a Mon Jan  1 00:00:00 2024\n\
Subject: one\n\
\n\
Hello,\n\
From here on, a body line (not a separator: no empty line before).\n\
>From quoted\n\
>>From twice\n\
\n\
\n\
From b Mon Jan  1 00:00:01 2024\r\n\
Subject: two\r\n\
\r\n\
body\r\n\
\r\n\
From c Mon Jan  1 00:00:02 2024\n\
Subject: three\n\
\n\
last\n";
        let got = all(input, 1 << 20);
        let texts: Vec<&[u8]> = got.iter().map(|g| &g.0[..]).collect();
        assert_eq!(
            texts,
            [
                &b"Subject: one\n\nHello,\nFrom here on, a body line (not a separator: no empty line before).\nFrom quoted\n>From twice\n\n"[..],
                b"Subject: two\r\n\r\nbody\r\n",
                b"Subject: three\n\nlast\n",
            ]
        );
        assert_eq!(
            got.iter().map(|g| g.2).collect::<Vec<_>>(),
            [true, true, false]
        );
        let total: u64 = got.iter().map(|g| g.1.total).sum();
        assert_eq!(total, input.len() as u64);
        assert!(got.iter().all(|g| g.1.size == g.0.len() as u64));
    }

    proptest::proptest! {
        /// Messages written as an mbox (mboxrd: a `From ` line, lines
        /// starting with `>*From ` quoted once more, an empty line after
        /// each message) are read back exactly, each one whole.
        #[test]
        fn an_mbox_written_is_read_back_message_by_message(
            messages in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![
                    "Subject: x\n", "\n", "\r\n", "From here\n", ">From there\n",
                    ">>From afar\n", "body line\r\n", "From\n", " From indented\n",
                ]), 0..12),
                1..6,
            ),
            capacity in 1usize..64,
        ) {
            let mut input = Vec::new();
            let originals: Vec<Vec<u8>> = messages.iter().map(|m| m.concat().into_bytes()).collect();
            for m in &messages {
                input.extend_from_slice(b"From sender@example.net Mon Jan  1 00:00:00 2024\n");
                for line in m {
                    let quoted = line.trim_start_matches('>').starts_with("From ");
                    if quoted {
                        input.push(b'>');
                    }
                    input.extend_from_slice(line.as_bytes());
                }
                input.extend_from_slice(b"\n");
            }
            let got = all(&input, 1 << 20);
            let texts: Vec<Vec<u8>> = got.iter().map(|g| g.0.clone()).collect();
            proptest::prop_assert_eq!(texts, originals);
            let total: u64 = got.iter().map(|g| g.1.total).sum();
            proptest::prop_assert_eq!(total, input.len() as u64);
            // The same through a small buffer: lines across its refills.
            let small = io::BufReader::with_capacity(capacity, &input[..]);
            proptest::prop_assert_eq!(all_from(small, 1 << 20), got);
        }

        /// `read_piece` cuts an input as `take(max).read_until(b'\n')`
        /// does, with lines and pieces across the reader's buffer refills.
        #[test]
        fn pieces_are_what_read_until_gives(
            input in proptest::collection::vec(proptest::sample::select(b"ab\n".to_vec()), 0..300),
            max in 1usize..20,
            capacity in 1usize..16,
        ) {
            let mut ours = io::BufReader::with_capacity(capacity, &input[..]);
            let mut reference = io::BufReader::with_capacity(capacity, &input[..]);
            loop {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                let n = read_piece(&mut ours, max, &mut a).unwrap();
                let m = (&mut reference).take(max as u64).read_until(b'\n', &mut b).unwrap();
                proptest::prop_assert_eq!((n, &a), (m, &b));
                if n == 0 {
                    break;
                }
            }
        }
    }

    #[test]
    fn long_lines_and_the_cap_keep_memory_bounded() {
        let mut input = b"From a x\n".to_vec();
        input.extend_from_slice(b"Subject: long\n\n");
        // A line longer than a piece, whose second piece starts with
        // "From ": inside a line, so no separator.
        input.extend_from_slice(&vec![b'x'; PIECE]);
        input.extend_from_slice(b"From not-a-separator\n");
        input.extend_from_slice(&vec![b'y'; 2 * PIECE]);
        input.extend_from_slice(b"\n\nFrom b x\nSubject: next\n\nok\n");
        let got = all(&input, 100);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), 100);
        assert_eq!(got[0].1.size, 100);
        assert!(got[0].1.cut > 3 * PIECE as u64 - 100);
        assert_eq!(got[1].0, b"Subject: next\n\nok\n");
        let total: u64 = got.iter().map(|g| g.1.total).sum();
        assert_eq!(total, input.len() as u64);
    }
}
