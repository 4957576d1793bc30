//! Limits: what is counted per key, and what happens over a maximum.
//!
//! A limit is a rule `(key, metric, window, buckets, max, action, reply)`:
//! when the count of `metric` for one `key` over the last `window` exceeds
//! `max`, the limit trips and `action` applies (`monitor` only records).
//! Which stage checks which limit is the session's business
//! (`super::session`); the tracker only counts.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

/// What a counter is kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The client address, IPv6 grouped by prefix.
    Ip,
    /// The authenticated login (`{auth_authen}`).
    Login,
    /// The envelope sender, lower-cased.
    Sender,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Ip, KeyKind::Login, KeyKind::Sender];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Ip => "ip",
            KeyKind::Login => "login",
            KeyKind::Sender => "sender",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Sessions (for a login or sender: sessions that used it).
    Connections,
    /// Transactions (MAIL commands).
    Messages,
    /// Recipients the MTA accepted.
    Recipients,
    /// Unknown commands.
    UnknownCommands,
    /// Conformity findings.
    Findings,
    /// Messages judged spam (reject, tempfail or quarantine).
    Spam,
    /// Distinct client addresses (for a login or a sender).
    DistinctIps,
    /// Distinct logins (for a client address).
    DistinctLogins,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Connections => "connections",
            Metric::Messages => "messages",
            Metric::Recipients => "recipients",
            Metric::UnknownCommands => "unknown_commands",
            Metric::Findings => "findings",
            Metric::Spam => "spam",
            Metric::DistinctIps => "distinct_ips",
            Metric::DistinctLogins => "distinct_logins",
        }
    }

    pub fn is_distinct(self) -> bool {
        matches!(self, Metric::DistinctIps | Metric::DistinctLogins)
    }

    /// Whether the metric means something for `key`.
    pub fn valid_for(self, key: KeyKind) -> bool {
        match self {
            Metric::DistinctIps => key != KeyKind::Ip,
            Metric::DistinctLogins => key == KeyKind::Ip,
            // A sender is not a session.
            Metric::Connections => key != KeyKind::Sender,
            _ => true,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a tripped limit does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitAction {
    #[default]
    Tempfail,
    Reject,
    /// Record and log only.
    Monitor,
}

impl LimitAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitAction::Tempfail => "tempfail",
            LimitAction::Reject => "reject",
            LimitAction::Monitor => "monitor",
        }
    }
}

/// An SMTP reply: code, enhanced status, text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpReply {
    pub code: String,
    pub status: String,
    pub text: String,
}

/// One limit, compiled from the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Its place in `behavior.limits` (0-based), for logs and records.
    pub index: usize,
    pub key: KeyKind,
    pub metric: Metric,
    /// Seconds.
    pub window: u32,
    pub buckets: u32,
    pub max: u64,
    pub action: LimitAction,
    /// The reply for `tempfail` or `reject`.
    pub reply: SmtpReply,
}

impl Rule {
    /// Seconds per bucket (at least 1).
    pub fn resolution(&self) -> u32 {
        (self.window / self.buckets.max(1)).max(1)
    }

    /// Buckets actually used (a window shorter than its bucket count has
    /// one bucket per second).
    pub fn ring(&self) -> u32 {
        self.buckets.clamp(1, self.window.max(1))
    }

    /// Whether `other` counts the same thing the same way (its counters can
    /// be carried over a reload).
    pub fn same_counter(&self, other: &Rule) -> bool {
        self.key == other.key
            && self.metric == other.metric
            && self.window == other.window
            && self.ring() == other.ring()
    }
}

/// A limit over its maximum.
#[derive(Clone, Debug)]
pub struct Trip {
    pub rule: Arc<Rule>,
    pub count: u64,
}
