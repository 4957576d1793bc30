//! Helpers of the milter integration tests: a temporary directory with a
//! configuration and a library, a running milter on a free loopback port,
//! and a milter client that sends whole messages.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indymilter_test::{
    Actions, EomAction, EomActions, MacroStage, ProtoOpts, Status, TestConnection,
};
use mailward::{Config, Reload, ReloadOutcome, RunError, RunOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "mailward-milter-test-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Info lines logged by mailward, kept for the tests to read (and printed
/// when `RUST_LOG` is set).
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
const LOG_CAP: usize = 100_000;

struct CaptureLogger;

impl log::Log for CaptureLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if std::env::var_os("RUST_LOG").is_some() {
            eprintln!("{} {} {}", r.level(), r.target(), r.args());
        }
        // mailward's lines, and indymilter's warnings (a callback that
        // answers against what was negotiated).
        let ours = r.level() <= log::Level::Info && r.target().starts_with("mailward");
        if ours || r.level() <= log::Level::Warn && r.target().starts_with("indymilter") {
            let mut lines = LOG.lock().unwrap_or_else(|e| e.into_inner());
            if lines.len() < LOG_CAP {
                lines.push(r.args().to_string());
            }
        }
    }
    fn flush(&self) {}
}

pub fn capture_logs() {
    static LOGGER: CaptureLogger = CaptureLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// The captured lines that start with `queue_id: `.
pub fn log_lines(queue_id: &str) -> Vec<String> {
    let prefix = format!("{queue_id}: ");
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .cloned()
        .collect()
}

/// Whether any captured line contains `needle`.
pub fn logged(needle: &str) -> bool {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|l| l.contains(needle))
}

/// The one line logged for the message with `queue_id`.
pub fn log_line(queue_id: &str) -> String {
    let lines = log_lines(queue_id);
    assert_eq!(lines.len(), 1, "one line per message: {lines:?}");
    lines[0].clone()
}

/// A milter served by `mailward::run` on 127.0.0.1 and a free port.
pub struct Milter {
    pub addr: SocketAddr,
    /// The metrics listener's address, when `metrics.listen` is set.
    pub http: Option<SocketAddr>,
    pub dir: TempDir,
    reload: mpsc::Sender<Reload>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

impl Milter {
    /// Writes `milter.yaml` (`config`, plus `library: library.yaml`) and
    /// `library.yaml`, and starts the milter on them.
    pub async fn start(config: &str, library: &str) -> Milter {
        capture_logs();
        let dir = TempDir::new("m");
        dir.write("milter.yaml", format!("library: library.yaml\n{config}"));
        dir.write("library.yaml", library);
        let config =
            Config::load(&dir.path().join("milter.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reload, reload_rx) = mpsc::channel(4);
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let (bound, bound_rx) = oneshot::channel();
        let opts = RunOptions {
            http_bound: Some(bound),
            ..RunOptions::default()
        };
        let task = tokio::spawn(mailward::run_with(
            listener,
            config,
            reload_rx,
            async move {
                let _ = shutdown_rx.await;
            },
            opts,
        ));
        // Answered once the rules are loaded: with the address, or by a
        // dropped sender when nothing listens (or the start failed).
        let http = bound_rx.await.ok();
        Milter {
            addr,
            http,
            dir,
            reload,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Replaces the library file (the milter reads it on reload).
    pub fn write_library(&self, text: &str) {
        self.dir.write("library.yaml", text);
    }

    /// Replaces the configuration file (the milter reads it on reload).
    pub fn write_config(&self, text: &str) {
        self.dir
            .write("milter.yaml", format!("library: library.yaml\n{text}"));
    }

    /// Asks for a reload and waits for its outcome.
    pub async fn reload(&self) -> ReloadOutcome {
        let (req, done) = Reload::with_reply();
        self.reload.send(req).await.unwrap();
        done.await.unwrap()
    }

    /// A client that offers every action.
    pub async fn client(&self) -> Client {
        self.client_with(Actions::all()).await
    }

    /// A client that offers only `actions`.
    pub async fn client_with(&self, actions: Actions) -> Client {
        self.client_offering(actions, ProtoOpts::all()).await
    }

    /// A client that offers only `actions` and the protocol options `opts`.
    pub async fn client_offering(&self, actions: Actions, opts: ProtoOpts) -> Client {
        let conn = TestConnection::configure()
            .available_actions(actions)
            .available_opts(opts)
            .open_tcp(self.addr)
            .await
            .unwrap();
        let mut c = Client { conn };
        let status = c
            .conn
            .connect("client.example", [192, 0, 2, 10])
            .await
            .unwrap();
        assert_eq!(status, Status::Continue);
        c
    }

    /// A connection that has negotiated but not yet connected.
    pub async fn open(&self) -> TestConnection {
        TestConnection::configure()
            .available_actions(Actions::all())
            .open_tcp(self.addr)
            .await
            .unwrap()
    }

    /// A client from `ip` whose connect was answered with Continue.
    pub async fn client_from(&self, ip: std::net::IpAddr) -> Client {
        let mut conn = self.open().await;
        let status = conn.connect("client.example", ip).await.unwrap();
        assert_eq!(status, Status::Continue, "connect from {ip}");
        Client { conn }
    }

    /// The session records written so far to `name` in the milter's
    /// directory, waiting (up to 10 s) until there are at least `n`.
    pub async fn records(&self, name: &str, n: usize) -> Vec<serde_json::Value> {
        let path = self.dir.path().join(name);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                    .collect();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Completes the shutdown future given to `mailward::run`.
    pub fn begin_stop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }

    /// Waits for `mailward::run` to return.
    pub async fn join(mut self) -> Result<(), RunError> {
        match self.task.take() {
            Some(t) => t.await.unwrap(),
            None => Ok(()),
        }
    }

    /// Stops the milter and checks that it stopped cleanly.
    pub async fn stop(mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

/// One message as the MTA passes it.
#[derive(Clone, Debug)]
pub struct Msg {
    pub from: String,
    pub rcpts: Vec<String>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub queue_id: String,
    /// `{auth_authen}` at MAIL.
    pub login: Option<String>,
    /// The body goes past `limits.message_bytes`.
    pub over_cap: bool,
}

impl Msg {
    pub fn new(subject: &str, body: impl Into<Vec<u8>>) -> Msg {
        Msg {
            from: "<sender@example.net>".into(),
            rcpts: vec!["<alice@example.com>".into()],
            headers: vec![
                ("From".into(), b"sender@example.net".to_vec()),
                ("To".into(), b"alice@example.com".to_vec()),
                ("Subject".into(), subject.as_bytes().to_vec()),
            ],
            body: body.into(),
            queue_id: "4AbCdEf".into(),
            login: None,
            over_cap: false,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Msg {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body goes past `limits.message_bytes`: mailward answers it
    /// Skip where the connection took Skip.
    pub fn over_cap(mut self) -> Msg {
        self.over_cap = true;
        self
    }

    pub fn id(mut self, queue_id: &str) -> Msg {
        self.queue_id = queue_id.into();
        self
    }

    pub fn to(mut self, rcpt: &str) -> Msg {
        self.rcpts = vec![rcpt.into()];
        self
    }
}

pub struct Client {
    pub conn: TestConnection,
}

impl Client {
    /// MAIL and RCPT of `m`.
    pub async fn envelope(&mut self, m: &Msg) {
        if let Some(login) = &m.login {
            self.conn
                .macros(MacroStage::Mail, [("{auth_authen}", login.as_str())])
                .await
                .unwrap();
        }
        assert_eq!(
            self.conn.mail([m.from.as_str()]).await.unwrap(),
            Status::Continue
        );
        for r in &m.rcpts {
            assert_eq!(
                self.conn.rcpt([r.as_str()]).await.unwrap(),
                Status::Continue
            );
        }
    }

    /// Headers, body and end of message of `m`.
    pub async fn content(&mut self, m: &Msg) -> (EomActions, Status) {
        self.headers(m).await;
        if !m.body.is_empty() {
            let skip = m.over_cap && self.agreed(ProtoOpts::SKIP);
            let want = if skip { Status::Skip } else { Status::Continue };
            assert_eq!(self.conn.body(m.body.clone()).await.unwrap(), want);
        }
        self.end(m).await
    }

    /// Whether negotiation settled on `opt`.
    pub fn agreed(&self, opt: ProtoOpts) -> bool {
        self.conn.negotiated_opts().contains(opt)
    }

    /// The header fields and end of headers of `m`: answered Continue, or
    /// not at all where mailward asked the MTA not to wait.
    pub async fn headers(&mut self, m: &Msg) {
        let reply = |quiet| {
            if quiet {
                Status::Noreply
            } else {
                Status::Continue
            }
        };
        let header_reply = reply(self.agreed(ProtoOpts::NOREPLY_HEADER));
        for (name, value) in &m.headers {
            let value = std::ffi::CString::new(value.clone()).unwrap();
            let status = self.conn.header(name.as_str(), value).await.unwrap();
            assert_eq!(status, header_reply, "header {name}");
        }
        let eoh_reply = reply(self.agreed(ProtoOpts::NOREPLY_EOH));
        assert_eq!(self.conn.eoh().await.unwrap(), eoh_reply);
    }

    /// The end of message of `m`, its queue id given first.
    pub async fn end(&mut self, m: &Msg) -> (EomActions, Status) {
        self.conn
            .macros(MacroStage::Eom, [("i", m.queue_id.as_str())])
            .await
            .unwrap();
        self.conn.eom().await.unwrap()
    }

    /// The whole message.
    pub async fn send(&mut self, m: &Msg) -> (EomActions, Status) {
        self.envelope(m).await;
        self.content(m).await
    }

    pub async fn close(self) {
        self.conn.close().await.unwrap();
    }
}

/// The headers added by end-of-message actions.
pub fn added_headers(a: &EomActions) -> Vec<(String, String)> {
    a.actions
        .iter()
        .filter_map(|a| match a {
            EomAction::AddHeader { name, value } | EomAction::InsertHeader { name, value, .. } => {
                Some((
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                ))
            }
            _ => None,
        })
        .collect()
}

/// The (name, index) of headers deleted by end-of-message actions.
pub fn deleted_headers(a: &EomActions) -> Vec<(String, i32)> {
    a.actions
        .iter()
        .filter_map(|a| match a {
            EomAction::DeleteHeader { name, index } => {
                Some((name.to_string_lossy().into_owned(), *index))
            }
            _ => None,
        })
        .collect()
}

pub fn quarantine_reason(a: &EomActions) -> Option<String> {
    a.actions.iter().find_map(|a| match a {
        EomAction::Quarantine { reason } => Some(reason.to_string_lossy().into_owned()),
        _ => None,
    })
}

pub fn reject_text(s: &Status) -> Option<String> {
    match s {
        Status::Reject { message } | Status::Tempfail { message } => {
            message.as_ref().map(|m| m.to_string_lossy().into_owned())
        }
        _ => None,
    }
}

pub fn is_reject(s: &Status) -> bool {
    matches!(s, Status::Reject { .. })
}

pub fn is_tempfail(s: &Status) -> bool {
    matches!(s, Status::Tempfail { .. })
}

/// Standard base64 with line breaks every 76 characters.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An HTTP/1.1 response: status, head (lower-cased header names) and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends `raw` bytes to `addr` and reads the whole answer (the request
/// should ask `Connection: close`).
pub async fn http_raw(addr: SocketAddr, raw: &[u8]) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    HttpResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// One HTTP/1.1 request with `headers` (e.g. `Authorization: Bearer x`).
pub async fn http(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> HttpResponse {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    http_raw(addr, req.as_bytes()).await
}

/// The value of one sample (`name{labels}` exactly as exposed) in a
/// Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}
