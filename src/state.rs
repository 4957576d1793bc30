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
//! * Every reload is counted in [`ReloadStats`], successful or not, with
//!   the time of the last successful one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::config::{self, Config};
use crate::rules::{Rules, RulesError};

/// How often replaced snapshots are checked for release.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// What a reload did: the generation now in force, or why the rules in
/// force were kept.
pub type ReloadOutcome = Result<u64, Arc<RulesError>>;

/// What a successful reload did, and when the new rules took over.
#[derive(Clone, Copy, Debug)]
pub struct Reloaded {
    /// The generation now in force.
    pub generation: u64,
    /// Just before the swap: a message whose MAIL callback ended before
    /// this instant was given the previous rules.
    pub swap_started: Instant,
    /// Just after the swap: a message whose MAIL callback started after
    /// this instant was given these rules.
    pub swap_done: Instant,
    /// Reading and building the new rules.
    pub load_time: Duration,
}

/// [`ReloadOutcome`] with the details of a successful reload.
pub type ReloadReport = Result<Reloaded, Arc<RulesError>>;

#[derive(Debug)]
enum Reply {
    Outcome(oneshot::Sender<ReloadOutcome>),
    Report(oneshot::Sender<ReloadReport>),
}

/// A request to reload the configuration and the library.
#[derive(Debug, Default)]
pub struct Reload {
    done: Option<Reply>,
}

impl Reload {
    /// A request whose outcome nobody waits for (SIGHUP).
    pub fn new() -> Reload {
        Reload::default()
    }

    /// A request and the receiver of its outcome.
    pub fn with_reply() -> (Reload, oneshot::Receiver<ReloadOutcome>) {
        let (tx, rx) = oneshot::channel();
        let done = Some(Reply::Outcome(tx));
        (Reload { done }, rx)
    }

    /// A request and the receiver of its outcome in detail.
    pub fn with_report() -> (Reload, oneshot::Receiver<ReloadReport>) {
        let (tx, rx) = oneshot::channel();
        let done = Some(Reply::Report(tx));
        (Reload { done }, rx)
    }

    fn answer(self, report: ReloadReport) {
        match self.done {
            None => {}
            Some(Reply::Outcome(tx)) => {
                let _ = tx.send(report.map(|r| r.generation));
            }
            Some(Reply::Report(tx)) => {
                let _ = tx.send(report);
            }
        }
    }
}

/// Reload counters, updated by the reload task and read by anyone (logs,
/// metrics).
#[derive(Debug, Default)]
pub struct ReloadStats {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Milliseconds since the Unix epoch of the last successful reload;
    /// 0 when there was none.
    last_ok_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`ReloadStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadCounts {
    /// Successful reloads since start.
    pub ok: u64,
    /// Failed reloads since start (the rules in force were kept).
    pub failed: u64,
    /// When the last successful reload swapped its rules in.
    pub last_ok: Option<SystemTime>,
    /// Why the last failed reload failed, if any failed.
    pub last_error: Option<String>,
}

impl ReloadStats {
    pub fn snapshot(&self) -> ReloadCounts {
        let ms = self.last_ok_ms.load(Ordering::Relaxed);
        ReloadCounts {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_ok: (ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms)),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    fn succeeded(&self) {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.last_ok_ms.store(ms, Ordering::Relaxed);
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, e: &RulesError) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct Shared {
    current: RwLock<Arc<Rules>>,
    reloads: ReloadStats,
}

impl Shared {
    pub fn new(rules: Rules) -> Shared {
        Shared {
            current: RwLock::new(Arc::new(rules)),
            reloads: ReloadStats::default(),
        }
    }

    /// The reload counters.
    pub fn reloads(&self) -> &ReloadStats {
        &self.reloads
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
                    let report = reload(&shared, &started, &mut retired).await;
                    match &report {
                        Ok(_) => shared.reloads.succeeded(),
                        Err(e) => shared.reloads.failed(e),
                    }
                    req.answer(report);
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

async fn reload(shared: &Shared, started: &Config, retired: &mut Vec<Arc<Rules>>) -> ReloadReport {
    let running = shared.current();
    let generation = running.generation + 1;
    let source: PathBuf = running
        .config
        .path
        .clone()
        .unwrap_or_else(|| running.config.library_path());
    log::info!("reloading {}", source.display());
    let old = running.clone();
    let t0 = Instant::now();
    let loaded = tokio::task::spawn_blocking(move || load(&old.config, generation)).await;
    let load_time = t0.elapsed();
    let rules = match loaded {
        Ok(Ok(rules)) => rules,
        Ok(Err(e)) => return Err(failed(running.generation, e, load_time)),
        Err(e) => {
            let e = RulesError::Internal(format!("loading {}: {e}", source.display()));
            return Err(failed(running.generation, e, load_time));
        }
    };
    for change in config::restart_needed(started, &rules.config) {
        log::warn!("reload: {change}: restart needed, the running value stays");
    }
    apply_log_level(&rules.config);
    log::info!(
        "reloaded gen={} in {:.2}s: {}",
        rules.generation,
        load_time.as_secs_f64(),
        rules.describe()
    );
    let generation = rules.generation;
    drop(running);
    let new = Arc::new(rules);
    let swap_started = Instant::now();
    retired.push(shared.swap(new));
    let swap_done = Instant::now();
    release(retired);
    Ok(Reloaded {
        generation,
        swap_started,
        swap_done,
        load_time,
    })
}

/// Logs a failed reload and wraps its error.
fn failed(keeping: u64, e: RulesError, took: Duration) -> Arc<RulesError> {
    log::error!(
        "reload failed after {:.2}s, keeping gen={keeping}: {e}",
        took.as_secs_f64()
    );
    Arc::new(e)
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
        let c = shared.reloads().snapshot();
        assert_eq!((c.ok, c.failed, c.last_ok), (0, 1, None));
        assert!(c.last_error.unwrap().contains("/nonexistent/library.yaml"));
        task.abort();
    }

    #[tokio::test]
    async fn reloads_are_counted_with_the_time_of_the_last_good_one() {
        let dir = std::env::temp_dir().join(format!("mailward-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("library.yaml");
        std::fs::write(&lib, "entries: [x]\n").unwrap();
        let mut r = rules(1);
        r.config.library = Some(lib.clone());
        let shared = Arc::new(Shared::new(r));
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(reload_task(shared.clone(), rx));
        let before = SystemTime::now() - Duration::from_millis(1);
        let (req, done) = Reload::with_report();
        tx.send(req).await.unwrap();
        let r = done.await.unwrap().unwrap();
        assert_eq!(r.generation, 2);
        assert!(r.swap_started <= r.swap_done);
        std::fs::write(&lib, "entries: [{text: x, colour: red}]\n").unwrap();
        let (req, done) = Reload::with_reply();
        tx.send(req).await.unwrap();
        let e = done.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("library.yaml:1:"), "{e}");
        let c = shared.reloads().snapshot();
        assert_eq!((c.ok, c.failed), (1, 1));
        let last = c.last_ok.unwrap();
        assert!(last >= before && last <= SystemTime::now(), "{last:?}");
        assert!(c.last_error.unwrap().contains("unknown key `colour`"));
        assert_eq!(shared.current().generation, 2);
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
