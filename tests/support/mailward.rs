//! The `mailward` binary as a child process, for end-to-end tests behind a
//! real MTA.
//!
//! [`MailwardProcess::start`] writes a library and a `milter.yaml` that
//! listens on `inet:127.0.0.1:<free port>` into a fresh temporary
//! directory, starts `mailward --config` on them with its log (at `info`,
//! `debug` for the milter's callbacks)
//! going to `DIR/mailward.log`, and waits until the port listens (`ss`,
//! never by connecting: a connection would be a milter session). If the
//! port was taken in between, the child exits and a new port is tried.
//! [`MailwardProcess::start_unix`] listens on a unix socket instead, and
//! waits for the socket file. Dropping it kills the child by its pid and
//! removes the directory.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::postfix::{free_port, poll, wait_listening};

/// A running `mailward`; killed on drop.
pub struct MailwardProcess {
    child: Option<Child>,
    /// The TCP port; 0 with a unix socket.
    port: u16,
    dir: PathBuf,
}

/// How long mailward may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

impl MailwardProcess {
    /// Starts mailward on `library` (the text of `library.yaml`) with
    /// `extra` appended to its configuration (`judge:`, `behavior:`, …).
    /// Relative paths in `extra` (e.g. `records: sessions.jsonl`) start in
    /// the process's directory.
    pub fn start(library: &str, extra: &str) -> MailwardProcess {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let mut m = MailwardProcess::spawn(
                library,
                &format!("listen: inet:127.0.0.1:{port}\n{extra}"),
                port,
            );
            if m.wait_until(|| wait_listening(port, Duration::ZERO)) {
                return m;
            }
            eprintln!("mailward did not listen on {port}:\n{}", m.log());
        }
        panic!("mailward did not start on any port");
    }

    /// Like [`MailwardProcess::start`], listening on the unix socket
    /// `socket` with mode `0666` (so that an MTA running as another user
    /// can connect).
    pub fn start_unix(library: &str, socket: &Path, extra: &str) -> MailwardProcess {
        let mut m = MailwardProcess::spawn(
            library,
            &format!(
                "listen: unix:{}\nsocket_mode: \"0666\"\n{extra}",
                socket.display()
            ),
            0,
        );
        let is_socket = || fs::symlink_metadata(socket).is_ok_and(|md| md.file_type().is_socket());
        if !m.wait_until(is_socket) {
            panic!(
                "mailward did not listen on {}:\n{}",
                socket.display(),
                m.log()
            );
        }
        m
    }

    /// Writes the library and the configuration (`listen` and the rest
    /// in `config`) into a fresh directory and starts mailward on them.
    fn spawn(library: &str, config: &str, port: u16) -> MailwardProcess {
        let dir = make_dir();
        fs::write(dir.join("library.yaml"), library).expect("write library.yaml");
        let path = dir.join("milter.yaml");
        fs::write(&path, format!("library: library.yaml\n{config}")).expect("write milter.yaml");
        let log = fs::File::create(dir.join("mailward.log")).expect("create mailward.log");
        let child = Command::new(env!("CARGO_BIN_EXE_mailward"))
            .arg("--config")
            .arg(&path)
            // Debug for the milter: its negotiation line says what the MTA offers.
            .env("RUST_LOG", "info,mailward::milter=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mailward");
        MailwardProcess {
            child: Some(child),
            port,
            dir,
        }
    }

    /// Polls `ready` until it holds (true) or the process exits or the
    /// start timeout passes (false).
    fn wait_until(&mut self, ready: impl Fn() -> bool) -> bool {
        poll(START_TIMEOUT, || {
            if ready() {
                return Some(true);
            }
            self.exited().then_some(false)
        }) == Some(true)
    }

    /// The milter's port on 127.0.0.1 (0 with a unix socket).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its configuration, library and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("mailward.log")).unwrap_or_default()
    }

    /// Polls the log until a line contains every one of `parts`.
    pub fn wait_log(&self, parts: &[&str], timeout: Duration) -> Option<String> {
        poll(timeout, || {
            self.log()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .map(str::to_owned)
        })
    }

    /// Checks that the MTA offered what mailward asks in negotiation (no
    /// replies to headers and end of headers, Skip), and that the message
    /// whose log line contains every one of `parts` had the rest of its body
    /// skipped: what was counted past the kept bytes is under one body
    /// chunk (64 KiB), however long the message. Returns that line.
    pub fn assert_skipped(&self, parts: &[&str], timeout: Duration) -> String {
        let offer = self
            .wait_log(&["negotiation: the MTA offers"], timeout)
            .unwrap_or_else(|| panic!("no negotiation line:\n{}", self.log()));
        for opt in ["NOREPLY_HEADER", "NOREPLY_EOH", "SKIP"] {
            assert!(offer.contains(opt), "{opt} not offered: {offer}");
        }
        let mut parts = parts.to_vec();
        parts.push(" rest=skipped");
        let line = self
            .wait_log(&parts, timeout)
            .unwrap_or_else(|| panic!("no line with {parts:?}:\n{}", self.log()));
        let cut: u64 = line
            .split(" cut=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no cut= in {line}"));
        assert!(cut > 0 && cut < 64 << 10, "cut={cut}: {line}");
        line
    }

    /// The session records in `name` (relative to its directory), once
    /// there are at least `n` of them or after `timeout`.
    pub fn records(&self, name: &str, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        let path = self.dir.join(name);
        let read = || fs::read_to_string(&path).unwrap_or_default();
        let text = poll(timeout, || {
            let t = read();
            (t.lines().count() >= n).then_some(t)
        })
        .unwrap_or_else(read);
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Kills the process (SIGKILL by pid) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }
}

impl Drop for MailwardProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- mailward log ---\n{}", self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn make_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "mailward-bin-{}-{n}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the mailward directory");
    dir
}
