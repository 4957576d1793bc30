//! The rules in force, and their replacement on reload.
//!
//! # Invariants
//!
//! * [`Shared::current`] always returns a complete rules snapshot; a
//!   reload swaps the `Arc` under a write lock held only for the swap.
//! * Loading (configuration and library) runs on the blocking pool. When
//!   it fails, the rules in force stay and the error (file:line:col) is
//!   logged and returned to the requester.
//! * Generations only grow: each successful reload is one more than the
//!   rules it replaces.
//! * A replaced snapshot is kept here until no message holds it, then
//!   freed on the blocking pool: freeing a library of a million strings
//!   takes time no callback should spend.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::config::{self, Config};
use crate::rules::{Rules, RulesError};

/// How often replaced snapshots are checked for release.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// What a reload did: the generation now in force, or why the rules in
/// force were kept.
pub type ReloadOutcome = Result<u64, Arc<RulesError>>;

/// A request to reload the configuration and the library.
#[derive(Debug, Default)]
pub struct Reload {
    done: Option<oneshot::Sender<ReloadOutcome>>,
}

impl Reload {
    /// A request whose outcome nobody waits for (SIGHUP).
    pub fn new() -> Reload {
        Reload::default()
    }

    /// A request and the receiver of its outcome.
    pub fn with_reply() -> (Reload, oneshot::Receiver<ReloadOutcome>) {
        let (tx, rx) = oneshot::channel();
        (Reload { done: Some(tx) }, rx)
    }

    /// Hands `outcome` to the requester, if one waits.
    pub(crate) fn answer(self, outcome: ReloadOutcome) {
        if let Some(done) = self.done {
            let _ = done.send(outcome);
        }
    }
}

pub struct Shared {
    current: RwLock<Arc<Rules>>,
}

impl Shared {
    pub fn new(rules: Rules) -> Shared {
        Shared {
            current: RwLock::new(Arc::new(rules)),
        }
    }

    /// The rules in force.
    pub fn current(&self) -> Arc<Rules> {
        // Nothing panics while holding the lock; a poisoned one still
        // holds a complete snapshot.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn swap(&self, rules: Arc<Rules>) -> Arc<Rules> {
        let mut guard = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, rules)
    }
}

/// Sets the log level from the configuration unless `RUST_LOG` decides.
pub fn apply_log_level(config: &Config) {
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(config.log.level.filter());
    }
}

/// Reads the configuration again (or keeps `running`'s when it was not
/// read from a file) and loads its library.
fn load(running: &Config, generation: u64) -> Result<Rules, RulesError> {
    let config = match &running.path {
        Some(p) => Config::load(p).map_err(RulesError::Config)?,
        None => running.clone(),
    };
    Rules::build(config, generation)
}

/// Serves reload requests until the channel closes, then keeps freeing
/// replaced snapshots until it is dropped.
pub async fn reload_task(shared: Arc<Shared>, mut requests: mpsc::Receiver<Reload>) {
    // Restart-only settings are compared with the ones the milter started
    // with, not with the last reload's, which did not apply them.
    let started = shared.current().config.clone();
    let mut retired: Vec<Arc<Rules>> = Vec::new();
    let mut open = true;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            req = requests.recv(), if open => match req {
                Some(req) => {
                    let outcome = reload(&shared, &started, &mut retired).await;
                    if let Some(done) = req.done {
                        let _ = done.send(outcome);
                    }
                }
                None => open = false,
            },
            _ = sweep.tick(), if !retired.is_empty() => {
                release(&mut retired);
            }
            else => std::future::pending::<()>().await,
        }
    }
}

async fn reload(shared: &Shared, started: &Config, retired: &mut Vec<Arc<Rules>>) -> ReloadOutcome {
    let running = shared.current();
    let generation = running.generation + 1;
    let source: PathBuf = running
        .config
        .path
        .clone()
        .unwrap_or_else(|| running.config.library_path());
    log::info!("reloading {}", source.display());
    let old = running.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&old.config, generation)).await;
    let rules = match loaded {
        Ok(Ok(rules)) => rules,
        Ok(Err(e)) => {
            log::error!("reload failed, keeping gen={}: {e}", running.generation);
            return Err(Arc::new(e));
        }
        Err(e) => {
            log::error!("reload failed, keeping gen={}: {e}", running.generation);
            let e = RulesError::Internal(format!("loading {}: {e}", source.display()));
            return Err(Arc::new(e));
        }
    };
    for change in config::restart_needed(started, &rules.config) {
        log::warn!("reload: {change} takes effect only after a restart");
    }
    apply_log_level(&rules.config);
    log::info!("reloaded gen={}: {}", rules.generation, rules.describe());
    let generation = rules.generation;
    drop(running);
    retired.push(shared.swap(Arc::new(rules)));
    release(retired);
    Ok(generation)
}

/// Frees, on the blocking pool, the replaced snapshots no message holds;
/// returns the tasks doing so.
fn release(retired: &mut Vec<Arc<Rules>>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut still_held = Vec::new();
    let mut tasks = Vec::new();
    for r in retired.drain(..) {
        match Arc::try_unwrap(r) {
            Ok(rules) => {
                let generation = rules.generation;
                tasks.push(tokio::task::spawn_blocking(move || {
                    drop(rules);
                    log::debug!("released gen={generation}");
                }));
            }
            Err(r) => still_held.push(r),
        }
    }
    *retired = still_held;
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::{BuildOptions, EntrySpec, Library};

    fn rules(generation: u64) -> Rules {
        let lib = Library::from_specs(&[EntrySpec::new("x")], BuildOptions::default()).unwrap();
        Rules {
            generation,
            config: Config::default(),
            library: lib,
            policy: Default::default(),
            decode: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_replaced_snapshot_is_freed_only_when_no_message_holds_it() {
        let shared = Shared::new(rules(1));
        let held = shared.current();
        let weak = Arc::downgrade(&held);
        let mut retired = vec![shared.swap(Arc::new(rules(2)))];
        assert_eq!(shared.current().generation, 2);
        assert!(
            release(&mut retired).is_empty(),
            "a message still holds gen 1"
        );
        assert_eq!(retired.len(), 1);
        drop(held);
        assert!(weak.upgrade().is_some(), "the message never frees it");
        for t in release(&mut retired) {
            t.await.unwrap();
        }
        assert!(retired.is_empty());
        assert!(weak.upgrade().is_none());
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_rules_and_their_generation() {
        let mut r = rules(1);
        r.config.library = Some("/nonexistent/library.yaml".into());
        let shared = Arc::new(Shared::new(r));
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(reload_task(shared.clone(), rx));
        let (req, done) = Reload::with_reply();
        tx.send(req).await.unwrap();
        let e = done.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/library.yaml"), "{e}");
        assert_eq!(shared.current().generation, 1);
        task.abort();
    }
}
