//! The `mailward` binary under signals, as an init system drives it:
//! SIGHUP reloads the library (the next messages get the new verdicts and
//! the new rules generation, and the log says so), SIGTERM stops it
//! gracefully (a session in flight still gets its verdict, new connections
//! are refused, the process logs its stop and exits 0). A unix socket is
//! created with the configured mode, owner and group, replaces a stale
//! socket file and is removed on exit; logs go to a syslog socket when
//! configured.

mod common;
#[path = "support/loadgen.rs"]
mod loadgen;

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TempDir;
use indymilter_test::{Actions, Status, TestConnection};
use loadgen::{Mail, Options};

/// The longest wait for anything the binary does.
const WAIT: Duration = Duration::from_secs(30);

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Library before the reload: "viagra" rejects.
const LIBRARY_1: &str = "entries:\n  - {text: viagra, id: v1, weight: 10}\n";
/// After: "meeting" rejects, "viagra" is gone.
const LIBRARY_2: &str = "entries:\n  - {text: meeting, id: v2, weight: 10}\n";

const SPAM: &str = "Cheap viagra here, order today.";
const HAM: &str = "Hi Alice, the meeting moved to Thursday at ten.";

/// Where the binary's log lines are read from.
enum Log {
    File(PathBuf),
    /// Datagrams received on a syslog socket, gathered by a thread.
    Syslog(Arc<Mutex<Vec<String>>>),
}

impl Log {
    fn lines(&self) -> Vec<String> {
        match self {
            Log::File(p) => std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect(),
            Log::Syslog(l) => l.lock().unwrap().clone(),
        }
    }
}

/// The binary, killed on drop if still running.
struct Mailward {
    child: Child,
    log: Log,
}

impl Mailward {
    fn spawn(config: &Path, stderr: &Path, log: Log) -> Mailward {
        let child = Command::new(env!("CARGO_BIN_EXE_mailward"))
            .arg("--config")
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .expect("spawn mailward");
        Mailward { child, log }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid, with a valid signal.
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill {sig}");
    }

    /// The first log line containing every one of `parts`, waiting for it;
    /// `None` if the process exited or the wait ran out first.
    fn wait_log(&mut self, parts: &[&str]) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .log
                .lines()
                .into_iter()
                .find(|l| parts.iter().all(|p| l.contains(p)));
            if found.is_some() {
                return found;
            }
            if Instant::now() > deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn expect_log(&mut self, parts: &[&str]) -> String {
        self.wait_log(parts).unwrap_or_else(|| {
            panic!(
                "no log line with {parts:?}; the log:\n{}",
                self.log.lines().join("\n")
            )
        })
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "mailward did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mailward {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary on a free loopback port with `extra` configuration,
/// once its rules are loaded (retrying when the port was taken meanwhile).
fn start_tcp(dir: &TempDir, extra: &str) -> (Mailward, SocketAddr) {
    for _ in 0..5 {
        let port = free_port();
        let config = dir.write(
            "milter.yaml",
            format!("listen: inet:127.0.0.1:{port}\nlibrary: library.yaml\n{extra}"),
        );
        let stderr = dir.path().join("stderr.log");
        let mut m = Mailward::spawn(&config, &stderr, Log::File(stderr.clone()));
        if m.wait_log(&["rules gen=1:"]).is_some() {
            return (m, SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let log = m.log.lines().join("\n");
        assert!(log.contains("cannot listen"), "{log}");
    }
    panic!("mailward did not start on any port");
}

fn mails() -> Arc<[Mail]> {
    Arc::from(vec![
        Mail::from_raw(&loadgen::synthetic(0, SPAM)),
        Mail::from_raw(&loadgen::synthetic(1, HAM)),
    ])
}

/// Verdicts (from the tag-mode header) and generations of a few messages
/// sent by the load generator, by mail index.
fn drive(addr: SocketAddr, prefix: &str) -> Vec<(usize, String, u64, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = Options {
        concurrency: 2,
        messages_per_session: 2,
        queue_id_prefix: prefix.into(),
        ..Options::default()
    };
    let report = rt.block_on(loadgen::run(addr, mails(), &opts));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.results.len(), 4);
    report
        .results
        .iter()
        .map(|r| {
            (
                r.mail,
                r.header_field("X-Mailward", "verdict")
                    .unwrap_or("none")
                    .to_string(),
                r.generation("X-Mailward").unwrap_or(0),
                r.queue_id.clone(),
            )
        })
        .collect()
}

/// A client that has sent MAIL and RCPT of a message and waits.
async fn message_in_flight(conn: &mut TestConnection) {
    assert_eq!(
        conn.connect("client.example", [192, 0, 2, 10])
            .await
            .unwrap(),
        Status::Continue
    );
    assert_eq!(
        conn.mail(["<sender@example.net>"]).await.unwrap(),
        Status::Continue
    );
    assert_eq!(
        conn.rcpt(["<alice@example.com>"]).await.unwrap(),
        Status::Continue
    );
}

/// The rest of the message (its body names `text`), and its status.
async fn finish_message(conn: &mut TestConnection, text: &str) -> (Status, Option<String>) {
    conn.header("Subject", c"hello").await.unwrap();
    conn.eoh().await.unwrap();
    conn.body(text.as_bytes().to_vec()).await.unwrap();
    conn.macros(indymilter_test::MacroStage::Eom, [("i", "INFLIGHT1")])
        .await
        .unwrap();
    let (actions, status) = conn.eom().await.unwrap();
    let header = common::added_headers(&actions)
        .into_iter()
        .find(|(n, _)| n == "X-Mailward")
        .map(|(_, v)| v);
    (status, header)
}

#[test]
fn sighup_reloads_the_library_and_sigterm_lets_the_session_in_flight_finish() {
    let dir = TempDir::new("signals");
    dir.write("library.yaml", LIBRARY_1);
    let (mut m, addr) = start_tcp(&dir, "judge: {mode: tag, tag_accepted: true}\n");
    m.expect_log(&[&format!("mailward {VERSION} starting on inet:{addr}")]);

    // Generation 1: spam (mail 0) is judged reject, ham (mail 1) accept.
    for (mail, verdict, generation, qid) in drive(addr, "GA") {
        let want = if mail == 0 { "reject" } else { "accept" };
        assert_eq!((verdict.as_str(), generation), (want, 1), "{qid}");
        m.expect_log(&[&format!("{qid}: "), &format!("verdict={want}"), "gen=1"]);
    }

    // SIGHUP with a changed library: the verdicts turn round, under
    // generation 2, and the log says so.
    dir.write("library.yaml", LIBRARY_2);
    m.signal(libc::SIGHUP);
    let line = m.expect_log(&["reloaded gen=2"]);
    assert!(line.contains("1 entries"), "{line}");
    for (mail, verdict, generation, qid) in drive(addr, "GB") {
        let want = if mail == 0 { "accept" } else { "reject" };
        assert_eq!((verdict.as_str(), generation), (want, 2), "{qid}");
        m.expect_log(&[&format!("{qid}: "), &format!("verdict={want}"), "gen=2"]);
    }

    // A reload with a broken library keeps generation 2 and says where.
    dir.write("library.yaml", "entries:\n  - {text: x, colour: red}\n");
    m.signal(libc::SIGHUP);
    let line = m.expect_log(&["reload failed", "keeping gen=2"]);
    assert!(line.contains("library.yaml:2:"), "{line}");
    assert!(line.contains("unknown key `colour`"), "{line}");

    // SIGTERM with a message in flight: the milter stops accepting, the
    // message still gets its verdict, then the process exits 0.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut conn = rt.block_on(async {
        let mut conn = TestConnection::configure()
            .available_actions(Actions::all())
            .open_tcp(addr)
            .await
            .unwrap();
        message_in_flight(&mut conn).await;
        conn
    });
    m.signal(libc::SIGTERM);
    m.expect_log(&["SIGTERM received"]);
    // (Sessions of the load generator may still be ending.)
    m.expect_log(&["stopped accepting connections; waiting up to 30s for"]);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "new connections are refused"
    );
    let (status, header) = rt.block_on(finish_message(&mut conn, HAM));
    assert_eq!(status, Status::Accept);
    let header = header.expect("the verdict header");
    assert!(
        header.contains("verdict=reject") && header.contains("gen=2"),
        "{header}"
    );
    m.expect_log(&["INFLIGHT1: ", "verdict=reject", "gen=2"]);
    rt.block_on(conn.close()).unwrap();

    let status = m.wait_exit();
    assert!(status.success(), "{status:?}");
    m.expect_log(&["every session has ended"]);
    m.expect_log(&[&format!("mailward {VERSION} stopped")]);
}

/// The running user's and group's ids.
fn ids() -> (u32, u32) {
    // SAFETY: getuid and getgid cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

#[test]
fn a_unix_socket_gets_its_mode_and_owner_replaces_a_stale_one_and_is_removed_on_exit() {
    let dir = TempDir::new("unix");
    dir.write("library.yaml", LIBRARY_1);
    let socket = dir.path().join("milter.sock");
    // A socket file left by a process that died.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    // Logs go to a syslog socket of the test's own.
    let syslog_path = dir.path().join("log");
    let syslog = UnixDatagram::bind(&syslog_path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gather = {
        let (lines, done) = (lines.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0; 65536];
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = syslog.recv(&mut buf) {
                    let l = String::from_utf8_lossy(&buf[..n]).into_owned();
                    lines.lock().unwrap().push(l);
                }
            }
        })
    };

    let (uid, gid) = ids();
    let config = dir.write(
        "milter.yaml",
        format!(
            "listen: unix:milter.sock\nsocket_mode: 0640\nsocket_owner: {uid}\n\
             socket_group: {gid}\nlibrary: library.yaml\n\
             log: {{destination: syslog, facility: local1, syslog_socket: log}}\n"
        ),
    );
    let stderr = dir.path().join("stderr.log");
    let mut m = Mailward::spawn(&config, &stderr, Log::Syslog(lines.clone()));
    let pid = m.pid();
    // local1 (17) * 8 + info (6)
    let prefix = format!("<142>mailward[{pid}]: ");
    m.expect_log(&[&prefix, "removing stale socket"]);
    m.expect_log(&[&prefix, &format!("mailward {VERSION} starting on unix:")]);
    m.expect_log(&[&prefix, "rules gen=1:"]);

    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = TestConnection::configure()
            .available_actions(Actions::all())
            .open_unix(&socket)
            .await
            .unwrap();
        message_in_flight(&mut conn).await;
        let (status, _) = finish_message(&mut conn, SPAM).await;
        assert!(matches!(status, Status::Reject { .. }), "{status:?}");
        conn.close().await.unwrap();
    });
    m.expect_log(&[&prefix, "INFLIGHT1: ", "verdict=reject"]);

    m.signal(libc::SIGTERM);
    let status = m.wait_exit();
    assert!(status.success(), "{status:?}");
    m.expect_log(&[&prefix, &format!("mailward {VERSION} stopped")]);
    assert!(!socket.exists(), "the socket file is removed on exit");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    gather.join().unwrap();
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    assert!(stderr.is_empty(), "everything went to syslog: {stderr}");
}

#[test]
fn a_socket_another_process_answers_on_is_not_taken_over() {
    let dir = TempDir::new("busy");
    dir.write("library.yaml", LIBRARY_1);
    let socket = dir.path().join("milter.sock");
    let _other = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let config = dir.write(
        "milter.yaml",
        "listen: unix:milter.sock\nlibrary: library.yaml\n",
    );
    let stderr = dir.path().join("stderr.log");
    let mut m = Mailward::spawn(&config, &stderr, Log::File(stderr.clone()));
    let status = m.wait_exit();
    assert_eq!(status.code(), Some(1));
    m.expect_log(&["another process is listening on this socket"]);
    assert!(socket.exists(), "the other process's socket stays");
}
