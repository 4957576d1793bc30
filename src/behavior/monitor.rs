//! The behavior monitor shared by all sessions: the store of counters, the
//! clock, the record writer and the compiled policy of the newest rules.
//!
//! The milter glue calls one method per SMTP event with the session's
//! [`SessionState`]; each builds the stage's counter operations, awaits
//! the store, and returns the [`Decision`].
//!
//! Invariants: the policy follows the newest rules generation seen (a
//! reload is picked up by the next event; the store's limits change with
//! it, keeping the counters that still count the same thing); the store
//! lives as long as the milter, across reloads.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use super::clock::Clock;
use super::counters::Counters;
use super::finding::Stage;
use super::policy::Policy;
use super::recorder::Recorder;
use super::session::{Decision, SessionState};
use super::store::{MemoryStore, Store};
use crate::config::Config;

pub struct Monitor {
    store: MemoryStore,
    clock: Arc<dyn Clock>,
    recorder: Recorder,
    counters: Arc<Counters>,
    /// The generation the policy was compiled from, and the policy.
    policy: RwLock<(u64, Arc<Policy>)>,
}

impl Monitor {
    /// A monitor for the rules of `generation` read from `config`.
    pub fn new(config: &Config, generation: u64, clock: Arc<dyn Clock>) -> Monitor {
        let counters = Arc::new(Counters::default());
        let mut p = Policy::compile(&config.behavior);
        p.counters = counters.clone();
        let now = clock.now_secs();
        let store = MemoryStore::new(&p.rules, p.max_keys, now);
        if p.enabled && !p.rules.is_empty() {
            log::info!(
                "behavior: {} limit(s), counters up to {} MiB",
                p.rules.len(),
                p.worst_case_bytes().div_ceil(1 << 20)
            );
        }
        let recorder = Recorder::start(p.records.clone(), p.records_queue);
        Monitor {
            store,
            clock,
            recorder,
            counters,
            policy: RwLock::new((generation, Arc::new(p))),
        }
    }

    /// The policy of the newest rules; `config` and `generation` are the
    /// rules the caller holds.
    pub fn policy(&self, config: &Config, generation: u64) -> Arc<Policy> {
        {
            let g = self.policy.read().unwrap_or_else(|e| e.into_inner());
            if g.0 >= generation {
                return g.1.clone();
            }
        }
        let mut g = self.policy.write().unwrap_or_else(|e| e.into_inner());
        if g.0 < generation {
            let mut p = Policy::compile(&config.behavior);
            p.counters = self.counters.clone();
            self.store.reconfigure(&p.rules, p.max_keys);
            if p.records != g.1.records {
                self.recorder.reopen(p.records.clone());
            }
            log::info!(
                "behavior gen={generation}: {} limit(s), counters up to {} MiB",
                p.rules.len(),
                p.worst_case_bytes().div_ceil(1 << 20)
            );
            *g = (generation, Arc::new(p));
        }
        g.1.clone()
    }

    /// Reopens the record file (SIGHUP).
    pub fn reopen_records(&self) {
        let path = self
            .policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .records
            .clone();
        self.recorder.reopen(path);
    }

    /// Findings and trips since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn store(&self) -> &MemoryStore {
        &self.store
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    async fn settle(
        &self,
        st: &mut SessionState,
        p: &Policy,
        stage: Stage,
        thresholds: bool,
    ) -> Decision {
        // Without limits there is nothing to count: no store call.
        if !st.batch.is_empty() && !p.rules.is_empty() {
            self.store
                .observe(self.clock.now_secs(), &st.batch, &mut st.trips)
                .await;
        }
        st.decide(p, stage, thresholds)
    }

    pub async fn connect(
        &self,
        st: &mut SessionState,
        p: &Policy,
        client: Option<IpAddr>,
        name: &str,
        own_name: Option<&str>,
        own_addr: Option<IpAddr>,
    ) -> Decision {
        st.connect(
            p,
            &self.store,
            self.now_ms(),
            client,
            name,
            own_name,
            own_addr,
        );
        self.settle(st, p, Stage::Connect, false).await
    }

    pub async fn helo(&self, st: &mut SessionState, p: &Policy, arg: &[u8]) -> Decision {
        st.helo(p, arg);
        self.settle(st, p, Stage::Helo, false).await
    }

    pub async fn mail(
        &self,
        st: &mut SessionState,
        p: &Policy,
        args: &[&[u8]],
        login: Option<&str>,
        queue_id: Option<&str>,
    ) -> Decision {
        st.mail(p, &self.store, args, login);
        st.set_queue_id(queue_id);
        let d = self.settle(st, p, Stage::Mail, true).await;
        if let Decision::Refuse { by, reply } = &d {
            let action = if reply.code.starts_with('5') {
                "reject"
            } else {
                "tempfail"
            };
            st.end_message(action, Some(by));
        }
        d
    }

    pub async fn rcpt(&self, st: &mut SessionState, p: &Policy, args: &[&[u8]]) -> Decision {
        st.rcpt(p, args);
        self.settle(st, p, Stage::Rcpt, true).await
    }

    pub async fn unknown(&self, st: &mut SessionState, p: &Policy, command: &[u8]) -> Decision {
        let disconnect = st.unknown(p, command);
        let d = self.settle(st, p, Stage::Unknown, false).await;
        disconnect.unwrap_or(d)
    }

    /// End of message: counts a spam verdict, checks limits and the
    /// conformity thresholds. The caller then records the outcome with
    /// [`SessionState::finish_message`].
    pub async fn eom(
        &self,
        st: &mut SessionState,
        p: &Policy,
        spam: bool,
        queue_id: Option<&str>,
    ) -> Decision {
        st.eom(spam, queue_id);
        self.settle(st, p, Stage::Eom, true).await
    }

    /// The session closed: queues its record.
    pub fn close(&self, st: &mut SessionState, p: &Policy) {
        let line = st.close(self.now_ms());
        // The JSON line is only built when there is a file to write it to.
        if p.records.is_some() {
            self.recorder.record(line.to_json());
        }
    }

    /// Writes the queued records and stops the writer.
    pub fn shutdown(&self) {
        self.recorder.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::clock::FakeClock;
    use std::path::Path;

    fn config(behavior: &str) -> Config {
        Config::from_yaml_str(
            &format!("library: l\nbehavior:\n{behavior}"),
            Path::new("m.yaml"),
            Path::new("/"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn connect(m: &Monitor, p: &Policy, ip: [u8; 4]) -> Decision {
        let mut st = SessionState::default();
        m.connect(&mut st, p, Some(ip.into()), "c", None, None)
            .await
    }

    #[tokio::test]
    async fn a_connection_limit_trips_and_recovers_as_the_fake_clock_moves() {
        let c = config(
            "  limits:\n    - {key: ip, metric: connections, window: 1m, buckets: 6, max: 2}\n",
        );
        let clock = Arc::new(FakeClock::new(1_700_000_000_000));
        let m = Monitor::new(&c, 1, clock.clone());
        let p = m.policy(&c, 1);
        for _ in 0..2 {
            assert_eq!(connect(&m, &p, [192, 0, 2, 1]).await, Decision::Continue);
        }
        assert!(connect(&m, &p, [192, 0, 2, 1]).await.is_refusal());
        clock.advance_secs(30);
        assert!(
            connect(&m, &p, [192, 0, 2, 1]).await.is_refusal(),
            "still in the window"
        );
        clock.advance_secs(31);
        assert_eq!(
            connect(&m, &p, [192, 0, 2, 1]).await,
            Decision::Continue,
            "window passed"
        );
        m.shutdown();
    }

    #[tokio::test]
    async fn a_new_generation_reconfigures_the_store_and_keeps_counts() {
        let c1 = config("  limits:\n    - {key: ip, metric: connections, window: 1h, max: 100}\n");
        let clock = Arc::new(FakeClock::new(1_700_000_000_000));
        let m = Monitor::new(&c1, 1, clock);
        let p1 = m.policy(&c1, 1);
        for _ in 0..3 {
            assert_eq!(connect(&m, &p1, [192, 0, 2, 1]).await, Decision::Continue);
        }
        let c2 = config(
            "  limits:\n    - {key: ip, metric: connections, window: 1h, max: 3, action: reject}\n",
        );
        let p2 = m.policy(&c2, 2);
        assert_eq!(p2.rules[0].max, 3);
        // An older snapshot does not bring the old policy back.
        assert_eq!(m.policy(&c1, 1).rules[0].max, 3);
        match connect(&m, &p2, [192, 0, 2, 1]).await {
            Decision::Refuse { reply, .. } => assert_eq!(reply.code, "550"),
            d => panic!("{d:?}"),
        }
        m.shutdown();
    }
}
