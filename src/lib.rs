//! mailward: a milter that watches SMTP behavior and intercepts spam with a
//! keyword-indexed string library.
//!
//! ```text
//! MTA ──milter──▶ milter (callbacks, per-session state)
//!                   └─ end of message ─▶ rules snapshot: decode ▶ scan ▶ judge
//! reload requests ─▶ state (load off the callback threads, swap, free old)
//! ```
//!
//! [`run`] serves the milter protocol on a listener until a shutdown future
//! completes; the binary only parses its command line, wires signals and
//! binds the socket, so tests drive [`run`] directly.
//!
//! Modules: [`config`] (`milter.yaml`), [`library`] (the string library),
//! [`message`] (raw message to texts), [`scan_message`] (message to hits),
//! [`judge`] (hits to verdict), [`rules`] (the snapshot in force), `state`
//! (reloads), [`behavior`] (conformity checks, counters, limits, session
//! records), `milter` (the callbacks), `metrics` (counters, the metrics
//! listener and the admin API), `gate` (stopping without losing a
//! message), [`logging`] (standard error or syslog), [`located`] (errors
//! naming file:line:col).

pub mod behavior;
pub mod config;
mod gate;
pub mod judge;
pub mod library;
pub mod located;
pub mod logging;
pub mod message;
mod metrics;
mod milter;
pub mod rules;
pub mod scan_message;
mod state;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use indymilter::Listener;
use tokio::sync::{mpsc, oneshot};

pub use config::Config;
pub use milter::is_role_recipient;
pub use rules::{Rules, RulesError};
pub use state::{
    Reload, ReloadCounts, ReloadOutcome, ReloadReport, ReloadStats, Reloaded, apply_log_level,
};

/// Why [`run`] stopped with an error.
#[derive(Debug)]
pub enum RunError {
    /// The rules could not be loaded at start-up.
    Rules(RulesError),
    /// The listener failed.
    Io(std::io::Error),
    /// The metrics listener (`metrics.listen`) could not be bound.
    Http(SocketAddr, std::io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Rules(e) => e.fmt(f),
            RunError::Io(e) => write!(f, "milter: {e}"),
            RunError::Http(a, e) => write!(f, "metrics.listen {a}: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Loads the library `config` names, then serves milter connections on
/// `listener` until `shutdown` completes, reloading on each request
/// received from `reload`.
///
/// Stopping: when `shutdown` completes, the listener is closed (new
/// connections are refused) and the sessions open go on until they end,
/// for at most `milter.shutdown_grace` (of the rules in force); then the
/// sessions still open are closed after the command each is processing,
/// the queued session records are written, and `run` returns.
pub async fn run(
    listener: impl Listener,
    config: Config,
    reload: mpsc::Receiver<Reload>,
    shutdown: impl Future,
) -> Result<(), RunError> {
    run_with_clock(
        listener,
        config,
        reload,
        shutdown,
        Arc::new(behavior::SystemClock),
    )
    .await
}

/// [`run`] with the clock behavior monitoring counts time by (tests move
/// a [`behavior::FakeClock`]).
pub async fn run_with_clock(
    listener: impl Listener,
    config: Config,
    reload: mpsc::Receiver<Reload>,
    shutdown: impl Future,
    clock: Arc<dyn behavior::Clock>,
) -> Result<(), RunError> {
    let opts = RunOptions {
        clock,
        ..RunOptions::default()
    };
    run_with(listener, config, reload, shutdown, opts).await
}

/// What tests and embedders may set beside the configuration.
pub struct RunOptions {
    /// The clock behavior monitoring counts time by.
    pub clock: Arc<dyn behavior::Clock>,
    /// Told the address the metrics listener bound (`metrics.listen` with
    /// port 0 takes any free port).
    pub http_bound: Option<oneshot::Sender<SocketAddr>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            clock: Arc::new(behavior::SystemClock),
            http_bound: None,
        }
    }
}

/// [`run`] with [`RunOptions`].
pub async fn run_with(
    listener: impl Listener,
    config: Config,
    mut reload: mpsc::Receiver<Reload>,
    shutdown: impl Future,
    opts: RunOptions,
) -> Result<(), RunError> {
    let milter_config = indymilter::Config {
        max_connections: config.milter.max_connections.0,
        connection_timeout: config.milter.connection_timeout.0,
        ..Default::default()
    };
    apply_log_level(&config);
    let rules = tokio::task::spawn_blocking(move || Rules::build(config, 1))
        .await
        .map_err(|e| RunError::Rules(RulesError::Internal(e.to_string())))?
        .map_err(RunError::Rules)?;
    log::info!("rules gen=1: {}", rules.describe());
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.register(&rules);
    let http_bound = opts.http_bound;
    let http_listener = match rules.config.metrics.listen {
        None => {
            drop(http_bound);
            None
        }
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr.0)
                .await
                .map_err(|e| RunError::Http(addr.0, e))?;
            let bound = l.local_addr().map_err(|e| RunError::Http(addr.0, e))?;
            log::info!(
                "metrics on http://{bound}/metrics, admin API {}",
                if rules.config.admin.enabled {
                    "on"
                } else {
                    "off"
                }
            );
            if let Some(tx) = http_bound {
                let _ = tx.send(bound);
            }
            Some(l)
        }
    };
    let http_connections = rules.config.metrics.max_connections.0;
    let monitor = Arc::new(behavior::Monitor::new(&rules.config, 1, opts.clock));
    let shared = Arc::new(state::Shared::new(rules));
    // Every reload request (SIGHUP) first reopens the session record file,
    // whether or not the reload succeeds, so that logrotate works (the
    // reload task counts outcomes for the logs and the metrics).
    let (forward, forwarded) = mpsc::channel(4);
    let records = monitor.clone();
    let relay = tokio::spawn(async move {
        while let Some(req) = reload.recv().await {
            records.reopen_records();
            if forward.send(req).await.is_err() {
                break;
            }
        }
    });
    let reloader = tokio::spawn(state::reload_task(shared.clone(), forwarded));
    let http = http_listener.map(|l| {
        let h = Arc::new(metrics::http::Http {
            shared: shared.clone(),
            monitor: monitor.clone(),
            metrics: metrics.clone(),
        });
        tokio::spawn(metrics::http::serve(l, h, http_connections))
    });
    let (listener, gate) = gate::gate(listener);
    let rules = shared.clone();
    let stop = async move {
        shutdown.await;
        gate.close();
        let current = rules.current();
        let grace = current.config.milter.shutdown_grace.0;
        let reloads = rules.reloads().snapshot();
        log::info!(
            "stopping with gen={} in force ({} reload(s), {} failed)",
            current.generation,
            reloads.ok,
            reloads.failed
        );
        drop(current);
        let open = gate.open();
        if open == 0 {
            log::info!("stopped accepting connections; no session open");
            return;
        }
        log::info!(
            "stopped accepting connections; waiting up to {}s for {open} open session(s)",
            grace.as_secs()
        );
        match tokio::time::timeout(grace, gate.wait_idle()).await {
            Ok(()) => log::info!("every session has ended"),
            Err(_) => log::warn!(
                "{} session(s) still open after {}s: closing them",
                gate.open(),
                grace.as_secs()
            ),
        }
    };
    let result = indymilter::run(
        listener,
        milter::callbacks(shared, monitor.clone(), metrics),
        milter_config,
        stop,
    )
    .await;
    if let Some(h) = http {
        // Its listener and connections close with the task.
        h.abort();
        let _ = h.await;
    }
    relay.abort();
    reloader.abort();
    // The closed sessions' records are queued: write them before returning.
    let _ = tokio::task::spawn_blocking(move || monitor.shutdown()).await;
    result.map_err(RunError::Io)
}
