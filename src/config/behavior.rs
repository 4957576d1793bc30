//! The `behavior:` section of `milter.yaml`: conformity checks, limits,
//! tracking caps and session records (every key is documented in
//! `docs/config.md` and `docs/behavior.md`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::values::*;
use crate::behavior::address;
use crate::behavior::finding::Code;
use crate::behavior::limits::{KeyKind, LimitAction, Metric};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviorSettings {
    /// Conformity checks, counting, limits and records; `false` turns all
    /// of it off.
    pub enabled: bool,
    /// The session record file (one JSON line per session); none by
    /// default. Relative paths start at the configuration file's
    /// directory.
    pub records: Option<PathBuf>,
    /// Records waiting to be written at most; more are dropped (and
    /// counted in the log).
    pub records_queue: Count<1, 1_000_000, 10_000>,
    /// Clients never limited or refused for their behavior.
    pub trusted_networks: Vec<Net>,
    /// Logins never limited or refused for their behavior.
    pub trusted_logins: Vec<Login>,
    pub unknown_commands: UnknownCommands,
    pub conformity: Conformity,
    pub tracking: Tracking,
    pub limits: Vec<LimitSpec>,
    pub replies: BehaviorReplies,
}

impl Default for BehaviorSettings {
    fn default() -> Self {
        BehaviorSettings {
            enabled: true,
            records: None,
            records_queue: Count::default(),
            trusted_networks: Vec::new(),
            trusted_logins: Vec::new(),
            unknown_commands: UnknownCommands::default(),
            conformity: Conformity::default(),
            tracking: Tracking::default(),
            limits: Vec::new(),
            replies: BehaviorReplies::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnknownCommands {
    /// The unknown command (counted in one session) answered with `reply`
    /// so that the MTA drops the client; 0: never.
    pub disconnect_at: Count<0, 1000, 5>,
    /// Unknown commands kept in the session record.
    pub keep: Count<0, 100, 10>,
    pub reply: Reply<DisconnectKind>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Conformity {
    /// Weights by finding code; codes not listed keep their defaults.
    pub weights: BTreeMap<FindingCode, Weight>,
    /// The session's conformity score times this is added to each
    /// message's score (category `conformity`); 0 keeps them apart.
    pub judge_factor: Factor,
    /// The session's score that tempfails its transactions.
    pub tempfail_score: Threshold,
    /// The session's score that rejects its transactions.
    pub reject_score: Threshold,
    /// Recipients of one message before `rcpt.too-many`.
    pub max_recipients: Count<1, 100_000, 100>,
    /// The server's own names, beside the MTA's `j` macro.
    pub own_names: Vec<DomainName>,
    /// Findings kept in one session record.
    pub max_findings: Count<1, 10_000, 100>,
}

impl Default for Conformity {
    fn default() -> Self {
        Conformity {
            weights: BTreeMap::new(),
            judge_factor: Factor(0.0),
            tempfail_score: Threshold(None),
            reject_score: Threshold(None),
            max_recipients: Count::default(),
            own_names: Vec::new(),
            max_findings: Count::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tracking {
    /// Client addresses are counted per network of this prefix length.
    pub ipv4_prefix: Count<8, 32, 32>,
    pub ipv6_prefix: Count<16, 128, 64>,
    pub max_keys: MaxKeys,
    /// The most the counters may take with every table full; a
    /// configuration that could take more is refused.
    pub max_memory: ByteSize<{ 256 << 20 }>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxKeys {
    pub ip: Count<1, 10_000_000, 300_000>,
    pub login: Count<1, 10_000_000, 100_000>,
    pub sender: Count<1, 10_000_000, 100_000>,
}

impl MaxKeys {
    /// Indexed by [`KeyKind::index`].
    pub fn by_kind(&self) -> [usize; 3] {
        [self.ip.0, self.login.0, self.sender.0]
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BehaviorReplies {
    pub tempfail: Reply<LimitTempfailKind>,
    pub reject: Reply<LimitRejectKind>,
}

// ---- reply kinds ----

reply_kind!(
    DisconnectKind,
    '4',
    "421",
    "4.7.0",
    "Too many unknown commands, closing connection"
);

reply_kind!(
    LimitTempfailKind,
    '4',
    "451",
    "4.7.1",
    "Too much activity, try again later"
);

reply_kind!(
    LimitRejectKind,
    '5',
    "550",
    "5.7.1",
    "Refused by local policy"
);

// A reply text of either class.
reply_kind!(AnyTextKind, '0', "", "", "");

// ---- scalars ----

/// A finding code (`helo.bare-ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindingCode(pub Code);

impl<'de> Deserialize<'de> for FindingCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Code::parse(s.trim())
            .map(FindingCode)
            .ok_or_else(|| de::Error::custom(format_args!("unknown finding code `{s}`")))
    }
}

/// Any finite number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weight(pub f64);

/// A finite number, zero or more.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Factor(pub f64);

/// An authenticated login name, as the MTA passes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login(pub String);

/// A domain name, stored in lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainName(pub String);

/// Implements a checking `Deserialize` through `deserialize_str`.
macro_rules! text_scalar {
    ($ty:ty, $expecting:expr, $parse:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        let parse: fn(&str) -> Result<$ty, String> = $parse;
                        parse(v.trim()).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

fn finite(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

text_scalar!(Weight, "a number", |s| finite(s)
    .map(Weight)
    .ok_or_else(|| format!("`{s}`: expected a finite number")));

text_scalar!(Factor, "a number", |s| finite(s)
    .filter(|v| *v >= 0.0)
    .map(Factor)
    .ok_or_else(|| format!(
        "`{s}`: expected a finite number, zero or more"
    )));

text_scalar!(Login, "a login name", |s| {
    if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
        Err(format!(
            "`{s}`: expected a login name of 1 to 256 printable characters"
        ))
    } else {
        Ok(Login(s.to_owned()))
    }
});

text_scalar!(DomainName, "a domain name", |s| {
    address::check_domain(s.as_bytes())
        .map(|()| DomainName(s.to_ascii_lowercase()))
        .map_err(|why| format!("`{s}` is not a domain name: {why}"))
});

// ---- limits ----

/// One entry of `behavior.limits`.
#[derive(Clone, Debug)]
pub struct LimitSpec {
    pub key: KeyKind,
    pub metric: Metric,
    pub window: Seconds<3600>,
    pub buckets: Count<1, 120, 10>,
    pub max: u64,
    pub action: LimitAction,
    /// Replaces the text of `behavior.replies.tempfail` or `.reject`.
    pub text: Option<ReplyText<AnyTextKind>>,
}

/// Largest `max` of a limit.
pub const MAX_LIMIT: u64 = 1_000_000_000;

/// A metric, checked against the key read before it.
struct MetricSeed(Option<KeyKind>);

impl<'de> DeserializeSeed<'de> for MetricSeed {
    type Value = Metric;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Metric, D::Error> {
        let m = Metric::deserialize(d)?;
        check_pair(self.0, Some(m)).map_err(de::Error::custom)?;
        Ok(m)
    }
}

/// A key, checked against the metric read before it.
struct KeySeed(Option<Metric>);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = KeyKind;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KeyKind, D::Error> {
        let k = KeyKind::deserialize(d)?;
        check_pair(Some(k), self.0).map_err(de::Error::custom)?;
        Ok(k)
    }
}

fn check_pair(k: Option<KeyKind>, m: Option<Metric>) -> Result<(), String> {
    match (k, m) {
        (Some(k), Some(m)) if !m.valid_for(k) => Err(format!(
            "metric `{m}` is not counted for key `{k}` (connections: ip or login; distinct_ips: login or sender; distinct_logins: ip)"
        )),
        _ => Ok(()),
    }
}

struct MaxValue;

impl<'de> DeserializeSeed<'de> for MaxValue {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        let c = Count::<0, { MAX_LIMIT as usize }, 0>::deserialize(d)?;
        Ok(c.0 as u64)
    }
}

const LIMIT_FIELDS: &[&str] = &[
    "key", "metric", "window", "buckets", "max", "action", "text",
];

impl<'de> Deserialize<'de> for LimitSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LimitSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a limit: {key, metric, window, buckets, max, action, text}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LimitSpec, A::Error> {
                let mut key = None;
                let mut metric = None;
                let mut window = None;
                let mut buckets = None;
                let mut max = None;
                let mut action = None;
                let mut text = None;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "key" => key = Some(map.next_value_seed(KeySeed(metric))?),
                        "metric" => metric = Some(map.next_value_seed(MetricSeed(key))?),
                        "window" => window = Some(map.next_value()?),
                        "buckets" => buckets = Some(map.next_value()?),
                        "max" => max = Some(map.next_value_seed(MaxValue)?),
                        "action" => action = Some(map.next_value()?),
                        "text" => text = Some(map.next_value()?),
                        other => {
                            map.next_value::<IgnoredAny>()?;
                            return Err(de::Error::unknown_field(other, LIMIT_FIELDS));
                        }
                    }
                }
                Ok(LimitSpec {
                    key: key.ok_or_else(|| de::Error::missing_field("key"))?,
                    metric: metric.ok_or_else(|| de::Error::missing_field("metric"))?,
                    window: window.unwrap_or_default(),
                    buckets: buckets.unwrap_or_default(),
                    max: max.ok_or_else(|| de::Error::missing_field("max"))?,
                    action: action.unwrap_or_default(),
                    text,
                })
            }
        }
        d.deserialize_map(V)
    }
}
