//! What a reload can change.
//!
//! The listening socket (address, mode, owner, group), indymilter's own
//! settings (connection limit and timeout), the metrics listener (address,
//! connection limit) and the log destination are fixed when the milter
//! starts; everything else (the library, judgment, replies, limits,
//! exemptions, behavior rules, the record file, the log level, the shutdown
//! grace time) takes effect from the next message after a reload. A reload
//! that changes a fixed setting keeps the running value and says so.

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
    let account = |a: &Option<super::model::Account>| match a {
        Some(a) => a.to_string(),
        None => "unset".into(),
    };
    if running.socket_owner != loaded.socket_owner {
        out.push(format!(
            "socket_owner ({} → {})",
            account(&running.socket_owner),
            account(&loaded.socket_owner)
        ));
    }
    if running.socket_group != loaded.socket_group {
        out.push(format!(
            "socket_group ({} → {})",
            account(&running.socket_group),
            account(&loaded.socket_group)
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
    let (a, b) = (&running.log, &loaded.log);
    if a.destination != b.destination {
        out.push(format!(
            "log.destination ({} → {})",
            a.destination.as_str(),
            b.destination.as_str()
        ));
    }
    if a.facility != b.facility {
        out.push(format!(
            "log.facility ({} → {})",
            a.facility.as_str(),
            b.facility.as_str()
        ));
    }
    if a.syslog_socket != b.syslog_socket {
        out.push(format!(
            "log.syslog_socket ({} → {})",
            a.syslog_socket.0.display(),
            b.syslog_socket.0.display()
        ));
    }
    out
}
