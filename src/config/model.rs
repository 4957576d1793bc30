//! The settings of `milter.yaml`: its sections and their keys. The
//! checked scalar types of the values are in `values` (re-exported here).
//!
//! Every key has a default, so an absent section or key means the default;
//! so does a section, list or mapping key written with no value (every item
//! commented out). A scalar key written with no value is an error. The one
//! required key, `library`, is checked by the reader.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use super::behavior::*;
pub use super::values::*;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The file this was read from; reloads read it again. `None` for a
    /// configuration built in memory.
    #[serde(skip)]
    pub path: Option<PathBuf>,
    pub listen: Listen,
    pub socket_mode: FileMode,
    /// The library file; relative paths are resolved against the
    /// directory of the configuration file by the reader.
    pub library: Option<PathBuf>,
    pub milter: MilterSettings,
    pub judge: JudgeSettings,
    pub replies: Replies,
    pub limits: Limits,
    pub exempt: Exempt,
    pub log: LogSettings,
    pub behavior: BehaviorSettings,
    pub metrics: MetricsSettings,
    pub admin: AdminSettings,
}

impl Config {
    /// The library path (the reader guarantees it is set).
    pub fn library_path(&self) -> PathBuf {
        self.library.clone().unwrap_or_default()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MilterSettings {
    pub max_connections: Count<1, 1_000_000, 100>,
    pub connection_timeout: Seconds<7210>,
    pub on_error: OnError,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeSettings {
    pub mode: Mode,
    pub reject_score: Threshold,
    pub tempfail_score: Threshold,
    pub quarantine_score: Threshold,
    pub tag_score: Threshold,
    /// Most a category adds to a score.
    pub category_caps: BTreeMap<CategoryName, Cap>,
    pub header: HeaderName,
    pub tag_accepted: bool,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        JudgeSettings {
            mode: Mode::Enforce,
            reject_score: Threshold(Some(10.0)),
            tempfail_score: Threshold(Some(6.0)),
            quarantine_score: Threshold(None),
            tag_score: Threshold(None),
            category_caps: BTreeMap::new(),
            header: HeaderName::default(),
            tag_accepted: false,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replies {
    pub reject: Reply<RejectKind>,
    pub tempfail: Reply<TempfailKind>,
    pub error: Reply<ErrorKind>,
    pub quarantine: ReplyText<QuarantineKind>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub message_bytes: ByteSize<{ 10 << 20 }>,
    pub text_bytes: ByteSize<{ 1 << 20 }>,
    pub parts: Count<1, 100_000, 256>,
    pub depth: Count<1, { crate::message::MAX_DEPTH_LIMIT }, 16>,
    pub fallback_charset: Charset,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Exempt {
    pub trusted_networks: Vec<Net>,
    pub authenticated: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub level: LogLevel,
}

/// The HTTP listener serving `/metrics` (and the admin API).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Where the listener binds; none (the default) serves nothing.
    pub listen: Option<HttpListen>,
    /// HTTP connections served at once; more wait to be accepted.
    pub max_connections: Count<1, 1000, 16>,
    /// Library entries listed in `mailward_top_entry_hits_total`.
    pub top_entries: Count<0, 1000, 20>,
}

/// The admin API on the metrics listener.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Serve `/admin/…`; off by default.
    pub enabled: bool,
    /// A file holding the bearer token `/admin/…` requests must carry;
    /// none: no token asked (a loopback listener only). Relative paths
    /// start at the configuration file's directory.
    pub token_file: Option<PathBuf>,
}

// ---- enumerations ----

/// What a message gets when mailward itself fails on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Tempfail,
    Accept,
}

/// `enforce` applies verdicts; `tag` only adds the verdict header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Tag,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}
