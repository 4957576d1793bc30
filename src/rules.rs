//! The rules in force: a configuration, its library and what is derived
//! from them, numbered by a generation.
//!
//! A [`Rules`] value is immutable. The milter keeps the current one behind
//! an `Arc`; a reload builds a new one and swaps it in, and each message
//! keeps the snapshot it took at its MAIL command. Building one loads the
//! library (up to millions of strings), so it runs off the callback
//! threads.

use std::collections::HashMap;
use std::fmt;

use crate::config::{Config, ConfigError};
use crate::judge::{self, Judgment, Policy};
use crate::library::{Library, LoadError, Scanner};
use crate::message::{self, DecodeOptions, Decoded};
use crate::scan_message::{self, MessageScan};

/// Entry ids named in a log line.
pub const LOGGED_IDS: usize = 5;

pub struct Rules {
    /// 1 for the rules loaded at start-up, one more for each successful
    /// reload.
    pub generation: u64,
    pub config: Config,
    pub library: Library,
    pub policy: Policy,
    pub decode: DecodeOptions,
}

/// Why rules could not be built.
#[derive(Debug)]
pub enum RulesError {
    Config(ConfigError),
    Library(LoadError),
    /// Loading panicked (a bug); the message says where it was caught.
    Internal(String),
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RulesError::Config(e) => write!(f, "configuration: {e}"),
            RulesError::Library(e) => write!(f, "library: {e}"),
            RulesError::Internal(e) => write!(f, "internal error: {e}"),
        }
    }
}

impl std::error::Error for RulesError {}

/// The result of judging one message.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub scan: MessageScan,
    pub judgment: Judgment,
    /// The ids of the weightiest entries found, at most [`LOGGED_IDS`].
    pub top_ids: Vec<String>,
}

impl Rules {
    /// Loads the library `config` names and derives the rest.
    pub fn build(config: Config, generation: u64) -> Result<Rules, RulesError> {
        let library = Library::load(&config.library_path()).map_err(RulesError::Library)?;
        let j = &config.judge;
        let policy = Policy {
            reject: j.reject_score.0,
            tempfail: j.tempfail_score.0,
            quarantine: j.quarantine_score.0,
            tag: j.tag_score.0,
            caps: j
                .category_caps
                .iter()
                .map(|(k, v)| (k.0.clone(), v.0))
                .collect::<HashMap<_, _>>(),
        };
        for name in policy.caps.keys() {
            if !library.categories().iter().any(|c| c == name) {
                log::warn!(
                    "judge.category_caps: the library has no category `{name}` (gen={generation})"
                );
            }
        }
        let l = &config.limits;
        let decode = DecodeOptions {
            max_text_bytes: l.text_bytes.0,
            max_parts: l.parts.0,
            max_depth: l.depth.0,
            fallback_charset: l.fallback_charset.0,
        };
        Ok(Rules {
            generation,
            config,
            library,
            policy,
            decode,
        })
    }

    /// Entries, categories, memory and build time, for logs.
    pub fn describe(&self) -> String {
        let s = self.library.stats();
        let mem = if s.memory_bytes >= 10 << 20 {
            format!("{} MiB", s.memory_bytes >> 20)
        } else {
            format!("{} KiB", s.memory_bytes.div_ceil(1 << 10))
        };
        format!(
            "{} entries, {} categories, {mem}, built in {:.2}s",
            s.entries,
            self.library.categories().len(),
            s.build_time.as_secs_f64()
        )
    }

    /// Decodes, scans and judges one raw message.
    pub fn evaluate(&self, raw: &[u8], scanner: &mut Scanner) -> Evaluation {
        self.evaluate_with(raw, scanner, None)
    }

    /// [`Rules::evaluate`] with one more mark in the judgment (the
    /// session's conformity score, category `conformity`).
    pub fn evaluate_with(
        &self,
        raw: &[u8],
        scanner: &mut Scanner,
        extra: Option<judge::Mark<'static>>,
    ) -> Evaluation {
        let scan = scan_message::scan_message(&self.library, raw, &self.decode, scanner);
        self.judged(scan, extra)
    }

    /// Scans and judges a message decoded with [`Rules::decode`]: the
    /// same result as [`Rules::evaluate`] on its raw bytes, for callers
    /// that also show the decoded texts.
    pub fn evaluate_decoded(&self, decoded: &Decoded, scanner: &mut Scanner) -> Evaluation {
        self.judged(
            scan_message::scan_decoded(&self.library, decoded, scanner),
            None,
        )
    }

    /// Decodes a raw message with the limits of these rules.
    pub fn decode(&self, raw: &[u8]) -> Decoded {
        message::decode(raw, &self.decode)
    }

    fn judged(&self, scan: MessageScan, extra: Option<judge::Mark<'static>>) -> Evaluation {
        let marks = scan_message::marks(&self.library, &scan.hits).chain(extra);
        let judgment = judge::judge(&self.policy, marks);
        let top_ids = scan_message::top_ids(&self.library, &scan.hits, LOGGED_IDS);
        Evaluation {
            scan,
            judgment,
            top_ids,
        }
    }
}
