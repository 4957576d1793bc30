//! Where the milter's log lines go: standard error (the default; under
//! systemd the journal takes it) or the local syslog daemon.
//!
//! [`init`] installs one logger for the whole run. It writes to standard
//! error until [`apply_destination`] switches it, once the configuration is read, so
//! that an error in the configuration itself still reaches the terminal or
//! the journal. The level in force is `log::max_level` (set from
//! `log.level`, changed by a reload) unless `RUST_LOG` sets a filter.
//!
//! # Syslog
//!
//! Each record is one RFC 3164 datagram sent to the daemon's socket
//! (`/dev/log`): `<PRI>mailward[PID]: MESSAGE`, where PRI is the facility
//! times 8 plus the severity (error 3, warning 4, info 6, debug and trace
//! 7). The timestamp and host name are left out, as the local daemons
//! (systemd-journald, rsyslog, syslog-ng, busybox syslogd) stamp local
//! datagrams on receipt. These few lines are written here rather than
//! taken from a crate: the `syslog` crate connects its socket once, so after
//! the daemon restarts (a new socket at the same path) every line would be
//! lost; here each datagram is addressed to the path, so the next line
//! after a restart reaches the new daemon. A line that cannot be sent is
//! written to standard error instead, and the first failure says why.
//!
//! A message is one line: control characters (a line break in an error)
//! are sent as spaces, and a message longer than [`MAX_MESSAGE`] bytes is
//! cut, as daemons cut them anyway (rsyslog's default limit is 8 KiB).

use std::io::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::model::{Facility, LogSettings};

/// Longest message sent to syslog, in bytes.
pub const MAX_MESSAGE: usize = 8000;

/// The tag of every syslog line.
const TAG: &str = "mailward";

/// Sends records to a syslog daemon's datagram socket.
pub struct Syslog {
    socket: UnixDatagram,
    path: PathBuf,
    facility: u8,
    pid: u32,
    failures: AtomicU64,
}

impl Syslog {
    /// A sender to the socket at `path`; fails when nothing listens there.
    pub fn open(path: &Path, facility: Facility) -> io::Result<Syslog> {
        // Checks that a daemon listens now; the datagrams themselves are
        // addressed to the path (see the module documentation).
        UnixDatagram::unbound()?.connect(path)?;
        Ok(Syslog {
            socket: UnixDatagram::unbound()?,
            path: path.to_owned(),
            facility: facility.code(),
            pid: std::process::id(),
            failures: AtomicU64::new(0),
        })
    }

    /// The datagram for one record.
    pub fn format(&self, level: log::Level, message: &str) -> String {
        let severity = match level {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        let pri = u16::from(self.facility) * 8 + severity;
        let mut line = format!("<{pri}>{TAG}[{}]: ", self.pid);
        let head = line.len();
        for c in message.chars() {
            if line.len() - head + c.len_utf8() > MAX_MESSAGE {
                break;
            }
            line.push(if c.is_control() { ' ' } else { c });
        }
        line
    }

    /// Sends one record; on failure writes it to standard error.
    pub fn send(&self, level: log::Level, message: &str) {
        let line = self.format(level, message);
        if let Err(e) = self.socket.send_to(line.as_bytes(), &self.path) {
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            let mut err = io::stderr().lock();
            if n == 1 || n.is_power_of_two() {
                let _ = writeln!(
                    err,
                    "mailward: cannot write to syslog at {}: {e} ({n} line(s) written here instead)",
                    self.path.display()
                );
            }
            let _ = writeln!(err, "{level} {message}");
        }
    }

    /// Lines that could not be sent.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

struct Logger {
    stderr: env_logger::Logger,
    syslog: OnceLock<Syslog>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level() && self.stderr.enabled(m)
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) || !self.stderr.matches(r) {
            return;
        }
        match self.syslog.get() {
            Some(s) => s.send(r.level(), &r.args().to_string()),
            None => self.stderr.log(r),
        }
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Installs the logger, writing to standard error; `RUST_LOG`, when set,
/// filters, else the level starts at info (the configuration's
/// `log.level` is applied once read).
pub fn init() {
    let mut b = env_logger::Builder::new();
    let from_env = match std::env::var("RUST_LOG") {
        Ok(spec) => {
            b.parse_filters(&spec);
            true
        }
        Err(_) => {
            // Let everything through the logger's own filter: the level in
            // force is `log::max_level`, which a reload can change.
            b.filter_level(log::LevelFilter::Trace);
            false
        }
    };
    let logger = Logger {
        stderr: b.build(),
        syslog: OnceLock::new(),
    };
    let max = if from_env {
        logger.stderr.filter()
    } else {
        log::LevelFilter::Info
    };
    let logger = LOGGER.get_or_init(|| logger);
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

/// Sends the log lines to syslog from now on, as `settings` say (when
/// they name syslog).
pub fn apply_destination(settings: &LogSettings) -> io::Result<()> {
    use crate::config::model::LogDestination;
    if settings.destination != LogDestination::Syslog {
        return Ok(());
    }
    let s = Syslog::open(&settings.syslog_socket.0, settings.facility).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot log to syslog at {}: {e}",
                settings.syslog_socket.0.display()
            ),
        )
    })?;
    if let Some(l) = LOGGER.get() {
        let _ = l.syslog.set(s);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(tag: &str) -> (PathBuf, UnixDatagram) {
        let dir = std::env::temp_dir().join(format!("mailward-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        (path, rx)
    }

    fn recv(rx: &UnixDatagram) -> String {
        let mut buf = vec![0; 65536];
        let n = rx.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn records_are_rfc3164_datagrams_with_the_facility_and_severity() {
        let (path, rx) = socket("fmt");
        let s = Syslog::open(&path, Facility::Mail).unwrap();
        let pid = std::process::id();
        s.send(log::Level::Info, "4Bq2xY0z3Mz9: client=x verdict=reject");
        assert_eq!(
            recv(&rx),
            format!("<22>mailward[{pid}]: 4Bq2xY0z3Mz9: client=x verdict=reject")
        );
        s.send(log::Level::Error, "reload failed\nsecond line\r");
        assert_eq!(
            recv(&rx),
            format!("<19>mailward[{pid}]: reload failed second line ")
        );
        let s = Syslog::open(&path, Facility::Local7).unwrap();
        s.send(log::Level::Warn, "w");
        assert_eq!(recv(&rx), format!("<188>mailward[{pid}]: w"));
        s.send(log::Level::Trace, "t");
        assert_eq!(recv(&rx), format!("<191>mailward[{pid}]: t"));
        assert_eq!(s.failures(), 0);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let (path, _rx) = socket("long");
        let s = Syslog::open(&path, Facility::Mail).unwrap();
        let line = s.format(log::Level::Info, &"é".repeat(MAX_MESSAGE));
        let message = line.split_once("]: ").unwrap().1;
        assert_eq!(message.len(), MAX_MESSAGE);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_daemon_restart_is_followed_and_a_missing_one_is_an_error() {
        let (path, rx) = socket("restart");
        let s = Syslog::open(&path, Facility::Mail).unwrap();
        drop(rx);
        std::fs::remove_file(&path).unwrap();
        s.send(log::Level::Info, "lost");
        assert_eq!(s.failures(), 1, "written to stderr instead");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.send(log::Level::Info, "after the restart");
        assert!(recv(&rx).ends_with("]: after the restart"));
        drop(rx);
        std::fs::remove_file(&path).unwrap();
        assert!(Syslog::open(&path, Facility::Mail).is_err());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
