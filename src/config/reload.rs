//! What a reload can change.
//!
//! The listening socket, indymilter's own settings (connection limit and
//! timeout) and the metrics listener (address, connection limit) are fixed
//! when the milter starts; everything else (the library,
//! judgment, replies, limits, exemptions, log level) takes effect from the
//! next message after a reload. A reload that changes a fixed setting keeps
//! the running value and says so.

use super::model::Config;

/// The fixed settings that differ between `running` and `loaded`, as
/// `key (running → loaded)` descriptions.
pub fn restart_needed(running: &Config, loaded: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if running.listen != loaded.listen {
        out.push(format!("listen ({} → {})", running.listen, loaded.listen));
    }
    if running.socket_mode != loaded.socket_mode {
        out.push(format!(
            "socket_mode ({:04o} → {:04o})",
            running.socket_mode.0, loaded.socket_mode.0
        ));
    }
    let (a, b) = (&running.milter, &loaded.milter);
    if a.max_connections != b.max_connections {
        out.push(format!(
            "milter.max_connections ({} → {})",
            a.max_connections.0, b.max_connections.0
        ));
    }
    if a.connection_timeout != b.connection_timeout {
        out.push(format!(
            "milter.connection_timeout ({}s → {}s)",
            a.connection_timeout.0.as_secs(),
            b.connection_timeout.0.as_secs()
        ));
    }
    let (a, b) = (&running.metrics, &loaded.metrics);
    if a.listen != b.listen {
        let show = |l: &Option<super::model::HttpListen>| l.map_or("off".into(), |l| l.to_string());
        out.push(format!(
            "metrics.listen ({} → {})",
            show(&a.listen),
            show(&b.listen)
        ));
    }
    if a.max_connections != b.max_connections {
        out.push(format!(
            "metrics.max_connections ({} → {})",
            a.max_connections.0, b.max_connections.0
        ));
    }
    out
}
