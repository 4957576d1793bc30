//! Errors about a file that say where: `file:line:col: message`, the form
//! compilers use, so editors and administrators can jump to the spot.
//! Shared by the configuration and the library readers.

use std::fmt;
use std::path::{Path, PathBuf};

/// A file that could not be read or understood: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedError {
    pub path: PathBuf,
    /// 1-based; 0 when the error is about the whole file.
    pub line: usize,
    /// 1-based, in characters; 0 when unknown.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LocatedError {}

impl LocatedError {
    pub fn new(
        path: &Path,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> LocatedError {
        LocatedError {
            path: path.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    /// An error about the whole file (unreadable, too large, not UTF-8).
    pub fn whole(path: &Path, message: impl Into<String>) -> LocatedError {
        LocatedError::new(path, 0, 0, message)
    }

    /// A YAML parser error, with its location moved in front.
    pub fn from_yaml(path: &Path, e: serde_norway::Error) -> LocatedError {
        let Some(loc) = e.location() else {
            return LocatedError::whole(path, e.to_string());
        };
        let (line, column) = (loc.line(), loc.column());
        // The message repeats the location as "at line L column C"; it is
        // already in front. Only that one mention goes: a parser message may
        // add a second location, of its context, which stays.
        let mut message = e.to_string();
        let own = format!(" at line {line} column {column}");
        if let Some(i) = message.find(&own) {
            message.replace_range(i..i + own.len(), "");
        }
        LocatedError::new(path, line, column, message)
    }
}

/// Property-test helpers shared by the readers of YAML files: garbling a
/// document and checking where an error points.
#[cfg(test)]
pub(crate) mod garble {
    use std::path::Path;

    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    use super::LocatedError;

    /// YAML syntax and values of every kind, to splice into a document.
    const YAML_PIECES: &[&str] = &[
        "\n",
        "\n  ",
        "\n  - ",
        "- ",
        "  ",
        ": ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\"",
        "'",
        "&a ",
        "*a",
        "!!str ",
        "!!int ",
        "? ",
        "|",
        ">-",
        "#",
        "---",
        "...",
        "~",
        "null",
        "true",
        "1.5",
        "-1",
        ".nan",
        "-.inf",
        "0x1F",
        "+12",
        "1e999",
        "\u{00AD}",
        "\u{3000}",
        "发票",
        "\t",
        "\r",
        "\\",
        "%YAML 1.2",
        "<<: ",
        "\u{FEFF}",
    ];

    /// A fragment: one of `words` (the file's own keys and values), a
    /// piece of YAML, or a few arbitrary characters.
    pub fn fragment(words: &'static [&'static str]) -> impl Strategy<Value = String> {
        let pieces: Vec<&str> = words.iter().chain(YAML_PIECES).copied().collect();
        prop_oneof![
            prop::sample::select(pieces).prop_map(str::to_owned),
            "\\PC{0,6}",
            any::<char>().prop_map(String::from),
        ]
    }

    /// Edits: where (any index), how many bytes to delete, what to insert.
    pub fn edits(
        words: &'static [&'static str],
        max: usize,
    ) -> impl Strategy<Value = Vec<(prop::sample::Index, usize, String)>> {
        prop::collection::vec(
            (any::<prop::sample::Index>(), 0usize..6, fragment(words)),
            1..max,
        )
    }

    /// `text` with the edits applied, each on character boundaries.
    pub fn apply(mut text: String, edits: Vec<(prop::sample::Index, usize, String)>) -> String {
        for (at, del, frag) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            let mut j = (i + del).min(text.len());
            while !text.is_char_boundary(j) {
                j += 1;
            }
            text.replace_range(i..j, &frag);
        }
        text
    }

    /// An error about `text`, read as `name`, says something and points
    /// inside it or at the whole file. Errors about other files (a
    /// library's includes) are not checked.
    pub fn located_inside<T>(
        text: &str,
        name: &Path,
        r: Result<T, LocatedError>,
    ) -> Result<(), TestCaseError> {
        let Err(e) = r else { return Ok(()) };
        prop_assert!(!e.message.is_empty());
        if e.path == name {
            // YAML breaks lines at CR, NEL, LS and PS too: counting each
            // as a break bounds the lines and a line's width from above.
            let brk = |c: char| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
            let (lines, widest) = text
                .split(brk)
                .fold((0, 0), |(n, w), l| (n + 1, w.max(l.chars().count())));
            prop_assert!(e.line <= lines + 1, "{} beyond {} lines", e, lines);
            prop_assert!(e.column <= widest + 2, "{} beyond {} columns", e, widest);
            prop_assert!(e.line > 0 || e.column == 0, "{}", e);
        }
        Ok(())
    }
}
