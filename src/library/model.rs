//! Value types of the string library: what an entry says, independent of how
//! it was read or indexed.

use std::fmt;

/// What a hit asks for, regardless of the message score. Ordered by
/// strength: when several apply, the greatest wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Add the verdict header, deliver.
    Tag,
    /// Deliver to the MTA's hold queue.
    Quarantine,
    /// 4xx: ask the sender to try later.
    Tempfail,
    /// 5xx: refuse.
    Reject,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Tag,
        Action::Quarantine,
        Action::Tempfail,
        Action::Reject,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Tag => "tag",
            Action::Quarantine => "quarantine",
            Action::Tempfail => "tempfail",
            Action::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an entry must sit in the text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatchMode {
    /// Anywhere, also inside a longer word.
    #[default]
    Substring,
    /// Not glued to an ASCII letter or digit on either side: an end of the
    /// entry that is an ASCII letter or digit must not be next to one in the
    /// text (`sex` does not hit `essex`; `$$$` has no alphanumeric end and
    /// behaves as a substring).
    Word,
}

impl MatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMode::Substring => "substring",
            MatchMode::Word => "word",
        }
    }

    pub fn parse(s: &str) -> Option<MatchMode> {
        match s {
            "substring" => Some(MatchMode::Substring),
            "word" => Some(MatchMode::Word),
            _ => None,
        }
    }
}

/// Where an entry was defined: a source file (index into the library's
/// source list) and a 1-based line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub source: u32,
    pub line: u32,
}

/// One library string as its author wrote it, before normalization and
/// merging.
#[derive(Clone, Debug, PartialEq)]
pub struct EntrySpec {
    pub text: String,
    pub id: Option<String>,
    pub weight: f64,
    pub category: String,
    pub action: Option<Action>,
    pub mode: MatchMode,
    pub origin: Origin,
}

impl EntrySpec {
    /// A substring entry with weight 1 in category `default`, for tests and
    /// programmatic libraries.
    pub fn new(text: impl Into<String>) -> EntrySpec {
        EntrySpec {
            text: text.into(),
            id: None,
            weight: 1.0,
            category: "default".into(),
            action: None,
            mode: MatchMode::Substring,
            origin: Origin { source: 0, line: 0 },
        }
    }

    pub fn with_mode(mut self, mode: MatchMode) -> EntrySpec {
        self.mode = mode;
        self
    }
}
