//! The `behavior:` settings compiled for use: limits as shared [`Rule`]s,
//! weights as an array, names lower-cased, replies resolved.
//!
//! A policy is built once per rules generation (`super::monitor`), never
//! per session.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::counters::Counters;
use super::finding::Weights;
use super::limits::{KeyKind, LimitAction, Rule, SmtpReply};
use super::store::MemoryStore;
use crate::config::model::{BehaviorSettings, Net, Reply, ReplyKind};

fn reply<K: ReplyKind>(r: &Reply<K>) -> SmtpReply {
    SmtpReply {
        code: r.code.as_str().to_owned(),
        status: r.status.as_str().to_owned(),
        text: r.text.as_str().to_owned(),
    }
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub enabled: bool,
    pub rules: Vec<Arc<Rule>>,
    pub max_keys: [usize; 3],
    pub weights: Weights,
    pub own_names: Vec<String>,
    pub trusted_networks: Vec<Net>,
    pub trusted_logins: Vec<String>,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// 0: never.
    pub disconnect_at: u32,
    pub disconnect_reply: SmtpReply,
    pub keep_unknown: usize,
    pub max_recipients: u32,
    pub max_findings: usize,
    pub judge_factor: f64,
    pub tempfail_score: Option<f64>,
    pub reject_score: Option<f64>,
    pub tempfail_reply: SmtpReply,
    pub reject_reply: SmtpReply,
    pub records: Option<PathBuf>,
    pub records_queue: usize,
    /// Where findings and trips are counted: the monitor's, shared by
    /// every policy it compiles (a fresh one elsewhere).
    pub counters: Arc<Counters>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::compile(&BehaviorSettings::default())
    }
}

impl Policy {
    pub fn compile(b: &BehaviorSettings) -> Policy {
        let tempfail_reply = reply(&b.replies.tempfail);
        let reject_reply = reply(&b.replies.reject);
        let rules = b
            .limits
            .iter()
            .enumerate()
            .map(|(index, l)| {
                let mut reply = match l.action {
                    LimitAction::Reject => reject_reply.clone(),
                    _ => tempfail_reply.clone(),
                };
                if let Some(t) = &l.text {
                    reply.text = t.as_str().to_owned();
                }
                Arc::new(Rule {
                    index,
                    key: l.key,
                    metric: l.metric,
                    window: u32::try_from(l.window.0.as_secs()).unwrap_or(u32::MAX),
                    buckets: u32::try_from(l.buckets.0).unwrap_or(1),
                    max: l.max,
                    action: l.action,
                    reply,
                })
            })
            .collect();
        let mut weights = Weights::default();
        for (code, w) in &b.conformity.weights {
            weights.set(code.0, w.0);
        }
        let c = &b.conformity;
        Policy {
            enabled: b.enabled,
            rules,
            max_keys: b.tracking.max_keys.by_kind(),
            weights,
            own_names: c.own_names.iter().map(|n| n.0.clone()).collect(),
            trusted_networks: b.trusted_networks.clone(),
            trusted_logins: b.trusted_logins.iter().map(|l| l.0.clone()).collect(),
            ipv4_prefix: b.tracking.ipv4_prefix.0 as u8,
            ipv6_prefix: b.tracking.ipv6_prefix.0 as u8,
            disconnect_at: u32::try_from(b.unknown_commands.disconnect_at.0).unwrap_or(0),
            disconnect_reply: reply(&b.unknown_commands.reply),
            keep_unknown: b.unknown_commands.keep.0,
            max_recipients: u32::try_from(c.max_recipients.0).unwrap_or(u32::MAX),
            max_findings: c.max_findings.0,
            judge_factor: c.judge_factor.0,
            tempfail_score: c.tempfail_score.0,
            reject_score: c.reject_score.0,
            tempfail_reply,
            reject_reply,
            records: b.records.clone(),
            records_queue: b.records_queue.0,
            counters: Arc::default(),
        }
    }

    /// Refuses settings whose counters could exceed `max_memory`.
    pub fn check(b: &BehaviorSettings) -> Result<(), String> {
        let p = Policy::compile(b);
        let worst = MemoryStore::worst_case_bytes(&p.rules, p.max_keys);
        let cap = b.tracking.max_memory.0;
        if worst > cap {
            return Err(format!(
                "with tracking.max_keys {:?} (ip, login, sender) these limits could take {} MiB, over tracking.max_memory ({} MiB): lower max_keys or raise max_memory",
                p.max_keys,
                worst.div_ceil(1 << 20),
                cap >> 20
            ));
        }
        Ok(())
    }

    /// The most the counters can take.
    pub fn worst_case_bytes(&self) -> usize {
        MemoryStore::worst_case_bytes(&self.rules, self.max_keys)
    }

    pub fn is_trusted_ip(&self, ip: IpAddr) -> bool {
        self.trusted_networks.iter().any(|n| n.contains(ip))
    }

    pub fn is_trusted_login(&self, login: &str) -> bool {
        self.trusted_logins.iter().any(|l| l == login)
    }

    /// The network a client address is counted under, as text:
    /// `192.0.2.7` or `2001:db8:1:2::/64`.
    pub fn network(&self, ip: IpAddr) -> String {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let p = u32::from(self.ipv4_prefix.min(32));
                let m = u32::MAX.checked_shl(32 - p).unwrap_or(0);
                let net = std::net::Ipv4Addr::from(u32::from(a) & m);
                if p == 32 {
                    net.to_string()
                } else {
                    format!("{net}/{p}")
                }
            }
            IpAddr::V6(a) => {
                let p = u32::from(self.ipv6_prefix.min(128));
                let m = u128::MAX.checked_shl(128 - p).unwrap_or(0);
                let net = std::net::Ipv6Addr::from(u128::from(a) & m);
                if p == 128 {
                    net.to_string()
                } else {
                    format!("{net}/{p}")
                }
            }
        }
    }

    /// Whether any limit counts keys of `kind`.
    pub fn tracks(&self, kind: KeyKind) -> bool {
        self.rules.iter().any(|r| r.key == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let p = Policy::default();
        assert_eq!(p.network("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(p.network("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(
            p.network("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        let p = Policy {
            ipv4_prefix: 24,
            ipv6_prefix: 128,
            ..Policy::default()
        };
        assert_eq!(p.network("192.0.2.7".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(p.network("2001:db8::1".parse().unwrap()), "2001:db8::1");
    }

    #[test]
    fn the_default_caps_fit_in_256_mib_with_a_full_set_of_limits() {
        use crate::config::model::*;
        let mut b = BehaviorSettings::default();
        let yaml = "\
- {key: ip, metric: connections, window: 1m, max: 30}
- {key: ip, metric: connections, window: 1h, max: 300}
- {key: ip, metric: messages, window: 1h, max: 100}
- {key: ip, metric: recipients, window: 1h, max: 1000}
- {key: ip, metric: unknown_commands, window: 1h, max: 20}
- {key: ip, metric: findings, window: 1h, max: 50}
- {key: ip, metric: spam, window: 1h, max: 10}
- {key: ip, metric: distinct_logins, window: 1h, max: 5}
- {key: login, metric: messages, window: 1h, max: 200}
- {key: login, metric: recipients, window: 1h, max: 2000}
- {key: login, metric: distinct_ips, window: 1h, max: 10}
- {key: login, metric: spam, window: 1h, max: 5}
- {key: sender, metric: messages, window: 1h, max: 200}
- {key: sender, metric: distinct_ips, window: 1h, max: 20}
";
        b.limits = serde_norway::from_str(yaml).unwrap();
        let p = Policy::compile(&b);
        let worst = p.worst_case_bytes();
        assert!(worst <= 256 << 20, "{} MiB", worst >> 20);
        assert!(Policy::check(&b).is_ok());
    }
}
