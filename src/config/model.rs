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
    /// Owner and group of a `unix:` socket; unchanged when unset.
    pub socket_owner: Option<Account>,
    pub socket_group: Option<Account>,
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
    /// How long a stop waits for open sessions to end before it closes
    /// them.
    pub shutdown_grace: Seconds<30>,
    /// Messages up to this size are judged on the connection's own thread;
    /// larger ones on the blocking pool.
    pub inline_judge: InlineBytes,
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
    pub destination: LogDestination,
    pub facility: Facility,
    /// The syslog daemon's socket (a datagram socket).
    pub syslog_socket: SyslogSocket,
}

/// The path of the local syslog socket, `/dev/log` by default.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SyslogSocket(pub PathBuf);

impl Default for SyslogSocket {
    fn default() -> Self {
        SyslogSocket(PathBuf::from("/dev/log"))
    }
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

/// Where log lines go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogDestination {
    /// Standard error, one line per record (systemd's journal takes it).
    #[default]
    Stderr,
    /// The local syslog daemon, through its socket.
    Syslog,
}

impl LogDestination {
    pub fn as_str(self) -> &'static str {
        match self {
            LogDestination::Stderr => "stderr",
            LogDestination::Syslog => "syslog",
        }
    }
}

/// A syslog facility (RFC 5424 numbering).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facility {
    User,
    #[default]
    Mail,
    Daemon,
    Auth,
    Authpriv,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// The facility's code.
    pub fn code(self) -> u8 {
        match self {
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Authpriv => 10,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Facility::User => "user",
            Facility::Mail => "mail",
            Facility::Daemon => "daemon",
            Facility::Auth => "auth",
            Facility::Authpriv => "authpriv",
            Facility::Local0 => "local0",
            Facility::Local1 => "local1",
            Facility::Local2 => "local2",
            Facility::Local3 => "local3",
            Facility::Local4 => "local4",
            Facility::Local5 => "local5",
            Facility::Local6 => "local6",
            Facility::Local7 => "local7",
        }
    }
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
