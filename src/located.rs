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
