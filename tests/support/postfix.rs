//! A private, throw-away Postfix instance for end-to-end tests.
//!
//! [`PostfixInstance::builder`] writes a complete Postfix configuration into a
//! fresh temporary directory and starts it with `postfix -c DIR start`:
//!
//! ```text
//! DIR/etc/main.cf, master.cf   the instance's own configuration
//! DIR/queue/                   queue_directory (`postfix start` fills it)
//! DIR/data/                    data_directory, owned by the postfix user
//! DIR/log/maillog              maillog_file (DIR/log is its maillog_file_prefixes)
//! DIR/mail/sink/new/           every accepted message, as one maildir file
//! ```
//!
//! The instance listens for SMTP on `127.0.0.1:<free port>` only, runs no
//! service chrooted, accepts mail for `@example.test` (anything else is refused
//! at RCPT) and delivers it with Postfix's `virtual` agent into one maildir,
//! whatever the recipient. Milters are attached with `smtpd_milters`,
//! `milter_protocol = 6` and `milter_default_action = tempfail`; any main.cf
//! parameter can be set or overridden through [`PostfixBuilder::param`].
//!
//! Readiness is judged by the listening socket (`ss -ltn`), never by
//! connecting: a connection would be a real SMTP session with milter events.
//! Delivery is asynchronous, so tests poll with [`PostfixInstance::wait_delivered`]
//! and [`PostfixInstance::wait_log`]. Dropping the instance stops Postfix
//! (`postfix -c DIR stop`; the processes of its master's group are killed by
//! pid if it does not stop) and removes DIR. When a test panics, the maillog is
//! printed first.
//!
//! Postfix must be started as root. When `postfix`, `swaks` or `ss` is missing
//! or the test does not run as root, [`PostfixBuilder::start`] returns `None`
//! after saying why, so a developer without Postfix can still run
//! `cargo test`; with `CI=true` it panics instead, so CI cannot pass without
//! running the end-to-end tests.
//!
//! While an instance runs, DIR/etc is listed in `alternate_config_directories`
//! of the default `/etc/postfix/main.cf` (Postfix's set-gid tools refuse other
//! configuration directories without it; `postfix -c` as root does not need
//! it). The entry is removed again on drop, under a lock shared by concurrent
//! tests. Instances and entries left by a killed test run (Ctrl-C) are
//! stopped and removed by the next run.

#![allow(dead_code)]

use std::env;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The mail domain the instance accepts and delivers to its maildir sink.
pub const DOMAIN: &str = "example.test";
/// The instance's `myhostname`, shown in its SMTP greeting.
pub const HOSTNAME: &str = "mx.example.test";

/// How long start-up, shut-down and the default waits may take.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// Prefix of the temporary directories, used to prune stale
/// `alternate_config_directories` entries.
const DIR_PREFIX: &str = "mailward-postfix-";
const DEFAULT_MAIN_CF: &str = "/etc/postfix/main.cf";
const ALTERNATE_DIRS: &str = "alternate_config_directories";
const MARKER: &str =
    "# alternate_config_directories below is kept by mailward's Postfix end-to-end tests.";

/// True when running under CI (`CI` set to anything but empty, `0` or
/// `false`): missing prerequisites are then a failure, not a skip.
pub fn ci() -> bool {
    matches!(env::var("CI"), Ok(v) if !v.is_empty() && v != "0" && v != "false")
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then
/// released). Someone else may take it before it is used: callers retry.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Configuration of a [`PostfixInstance`] before it starts.
#[derive(Clone, Debug, Default)]
pub struct PostfixBuilder {
    milters: Vec<String>,
    params: Vec<(String, String)>,
}

impl PostfixBuilder {
    /// Adds a milter to `smtpd_milters`, e.g. `inet:127.0.0.1:10025` or
    /// `unix:/path/to/socket`. Milters are consulted in the order added.
    pub fn milter(mut self, spec: impl Into<String>) -> Self {
        self.milters.push(spec.into());
        self
    }

    /// Adds the milter listening on `127.0.0.1:port`.
    pub fn milter_port(self, port: u16) -> Self {
        self.milter(format!("inet:127.0.0.1:{port}"))
    }

    /// Sets `milter_<stage>_macros` (stage: `connect`, `helo`, `mail`, `rcpt`,
    /// `data`, `eoh`, `end_of_data`, `unknown_command`).
    pub fn milter_macros(self, stage: &str, macros: &str) -> Self {
        self.param(format!("milter_{stage}_macros"), macros)
    }

    /// Sets any main.cf parameter, replacing the harness's own value if it has
    /// one (e.g. `milter_default_action`, `smtpd_soft_error_limit`).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        self.params.retain(|(n, _)| *n != name);
        self.params.push((name, value));
        self
    }

    /// Creates and starts the instance. Returns `None` (after printing why)
    /// when Postfix cannot run here; panics instead under CI, and whenever
    /// Postfix is present but fails to start.
    pub fn start(self) -> Option<PostfixInstance> {
        let tools = match Tools::find() {
            Ok(tools) => tools,
            Err(reason) => return unavailable(&reason),
        };
        reap_stale_instances(&tools.postfix);
        let dir = make_temp_dir().expect("create the instance directory");
        let mut instance = PostfixInstance {
            config_dir: dir.join("etc"),
            maildir: dir.join("mail").join("sink"),
            log: dir.join("log").join("maillog"),
            dir,
            tools,
            port: 0,
            running: false,
            listed: false,
        };
        instance.prepare(&self);
        instance.boot();
        Some(instance)
    }
}

/// Says why the end-to-end test cannot run: a skip locally, a failure in CI.
fn unavailable(reason: &str) -> Option<PostfixInstance> {
    if ci() {
        panic!(
            "CI is set, but the real-Postfix end-to-end test cannot run: {reason}. \
             Install Debian's postfix and swaks and run the tests as root (.ci/run does both)."
        );
    }
    eprintln!("skipping the real-Postfix end-to-end test: {reason} (with CI=true this fails)");
    None
}

/// The programs and the account the instance needs.
#[derive(Clone, Debug)]
struct Tools {
    postfix: PathBuf,
    swaks: PathBuf,
    ss: PathBuf,
    /// `script`, to give `postfix` a terminal: it reports fatal errors only
    /// to a terminal or to its log.
    script: Option<PathBuf>,
    uid: u32,
    gid: u32,
}

impl Tools {
    fn find() -> Result<Self, String> {
        let postfix = find_program("postfix").ok_or("the `postfix` command is not installed")?;
        let swaks = find_program("swaks").ok_or("the `swaks` command is not installed")?;
        let ss = find_program("ss").ok_or("the `ss` command (iproute2) is not installed")?;
        let euid = fs::metadata("/proc/self")
            .map(|m| m.uid())
            .map_err(|e| format!("cannot read /proc/self: {e}"))?;
        if euid != 0 {
            return Err("Postfix must be started as root".into());
        }
        let (uid, gid) = user_ids("postfix").ok_or("there is no `postfix` user")?;
        Ok(Tools {
            postfix,
            swaks,
            ss,
            script: find_program("script"),
            uid,
            gid,
        })
    }
}

/// Looks for an executable in PATH and the usual system directories (the
/// sbin directories are often missing from PATH).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The uid and gid of a user, from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Where instance directories go: the temporary directory, if the postfix
/// user can traverse it (Postfix's daemons must reach the queue), else /tmp.
fn base_dir() -> PathBuf {
    let base = env::temp_dir();
    if base
        .ancestors()
        .all(|a| a.metadata().is_ok_and(|m| m.mode() & 0o001 != 0))
    {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

/// Stops and removes the instances of test processes that died without
/// dropping them (a test run interrupted with Ctrl-C leaves its Postfix
/// running: the master detaches from the terminal). The directory name
/// carries the pid of the test process that made it.
fn reap_stale_instances(postfix: &Path) {
    let Ok(entries) = fs::read_dir(base_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        let config_dir = dir.join("etc");
        if config_dir.join("main.cf").exists() {
            // Stops that instance's master, found by its own pid file.
            let _ = Command::new(postfix)
                .arg("-c")
                .arg(&config_dir)
                .arg("stop")
                .stdin(Stdio::null())
                .output();
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A fresh directory that the postfix user can traverse.
fn make_temp_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = base_dir();
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{DIR_PREFIX}{}-{n}-{nanos:x}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A running private Postfix instance; stopped and removed on drop.
pub struct PostfixInstance {
    dir: PathBuf,
    config_dir: PathBuf,
    maildir: PathBuf,
    log: PathBuf,
    tools: Tools,
    port: u16,
    running: bool,
    listed: bool,
}

impl PostfixInstance {
    /// A builder with no milter and the harness's defaults.
    pub fn builder() -> PostfixBuilder {
        PostfixBuilder::default()
    }

    /// The port of the instance's SMTP service on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address of the instance's SMTP service.
    pub fn smtp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The instance's configuration directory (`postfix -c` argument).
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// `local@example.test`: an address the instance delivers to its sink.
    pub fn address(&self, local: &str) -> String {
        format!("{local}@{DOMAIN}")
    }

    /// Runs `swaks --server 127.0.0.1:<port>` with `args` and returns its exit
    /// code and transcript (stdout, then stderr). swaks exits 0 when the
    /// message was accepted; 23, 24 or 25 when MAIL, every RCPT or DATA was
    /// refused; 26 when the message was refused after its data was sent.
    /// Give at least `--to`; stdin is closed so swaks never prompts.
    pub fn send(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(&self.tools.swaks)
            .arg("--server")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run swaks");
        let mut transcript = String::from_utf8_lossy(&out.stdout).into_owned();
        transcript.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), transcript)
    }

    /// Every message delivered so far, oldest first by file name.
    pub fn delivered(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| fs::read_dir(self.maildir.join(sub)).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        files
            .iter()
            .filter_map(|p| fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    /// Polls the maildir until a delivered message satisfies `pred` and
    /// returns it (headers and body as stored), or `None` after `timeout`.
    pub fn wait_delivered(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        poll(timeout, || self.delivered().into_iter().find(|m| pred(m)))
    }

    /// The instance's maillog so far.
    pub fn maillog(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Polls the maillog until a line contains `pattern` and returns that
    /// line, or `None` after `timeout`.
    pub fn wait_log(&self, pattern: &str, timeout: Duration) -> Option<String> {
        self.wait_log_line(|line| line.contains(pattern), timeout)
    }

    /// Polls the maillog until a line satisfies `pred` and returns it.
    pub fn wait_log_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        poll(timeout, || {
            self.maillog()
                .lines()
                .find(|line| pred(line))
                .map(str::to_owned)
        })
    }

    /// Writes the configuration and the directories Postfix expects.
    fn prepare(&mut self, builder: &PostfixBuilder) {
        let (uid, gid) = (self.tools.uid, self.tools.gid);
        for sub in ["etc", "log", "queue"] {
            fs::create_dir(self.dir.join(sub)).expect("create the instance's directories");
        }
        for sub in ["data", "mail"] {
            let path = self.dir.join(sub);
            fs::create_dir(&path).expect("create the instance's directories");
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .expect("give the data and mail directories to the postfix user");
        }
        fs::set_permissions(self.dir.join("data"), fs::Permissions::from_mode(0o700))
            .expect("chmod data_directory");
        fs::write(self.config_dir.join("main.cf"), self.main_cf(builder)).expect("write main.cf");

        match update_alternate_dirs(Some(&self.config_dir), None) {
            Ok(()) => self.listed = true,
            Err(e) => eprintln!(
                "warning: could not list {} in {ALTERNATE_DIRS} of {DEFAULT_MAIN_CF}: {e}",
                self.config_dir.display()
            ),
        }
    }

    fn main_cf(&self, builder: &PostfixBuilder) -> String {
        let d = self.dir.display();
        let (uid, gid) = (self.tools.uid, self.tools.gid);
        let mut params: Vec<(String, String)> = [
            ("compatibility_level", "3.6".to_string()),
            ("queue_directory", format!("{d}/queue")),
            ("data_directory", format!("{d}/data")),
            ("maillog_file", self.log.display().to_string()),
            ("maillog_file_prefixes", format!("{d}/log")),
            ("myhostname", HOSTNAME.into()),
            ("mydomain", DOMAIN.into()),
            ("myorigin", "$myhostname".into()),
            ("mydestination", String::new()),
            ("relay_domains", String::new()),
            ("inet_interfaces", "loopback-only".into()),
            ("inet_protocols", "ipv4".into()),
            ("mynetworks", "127.0.0.0/8".into()),
            // Only the sink's domain is accepted; nothing leaves the instance.
            (
                "smtpd_relay_restrictions",
                "reject_unauth_destination".into(),
            ),
            (
                "default_transport",
                "error:no delivery outside the test instance".into(),
            ),
            ("biff", "no".into()),
            // No local delivery, so no alias database to open.
            ("alias_maps", String::new()),
            ("alias_database", String::new()),
            ("virtual_mailbox_domains", DOMAIN.into()),
            ("virtual_mailbox_base", format!("{d}/mail")),
            // A trailing slash makes the mailbox a maildir.
            ("virtual_mailbox_maps", "static:sink/".into()),
            ("virtual_uid_maps", format!("static:{uid}")),
            ("virtual_gid_maps", format!("static:{gid}")),
            ("virtual_minimum_uid", "1".into()),
            ("smtpd_milters", builder.milters.join(", ")),
            ("milter_default_action", "tempfail".into()),
            ("milter_protocol", "6".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (name, value) in &builder.params {
            match params.iter_mut().find(|(n, _)| n == name) {
                Some(p) => p.1 = value.clone(),
                None => params.push((name.clone(), value.clone())),
            }
        }
        let mut text =
            String::from("# Private Postfix instance for mailward's end-to-end tests.\n");
        for (name, value) in params {
            text.push_str(&format!("{name} = {value}\n"));
        }
        text
    }

    fn master_cf(&self) -> String {
        // type private unpriv chroot wakeup maxproc command; chroot is off
        // everywhere so the instance needs no copy of system files.
        let services = [
            ("pickup", "unix", "n", "-", "60", "1", "pickup"),
            ("cleanup", "unix", "n", "-", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "-", "300", "1", "qmgr"),
            ("rewrite", "unix", "-", "-", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "-", "0", "bounce"),
            ("defer", "unix", "-", "-", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "-", "0", "bounce"),
            ("verify", "unix", "-", "-", "-", "1", "verify"),
            ("flush", "unix", "n", "-", "1000?", "0", "flush"),
            ("proxymap", "unix", "-", "-", "-", "-", "proxymap"),
            ("showq", "unix", "n", "-", "-", "-", "showq"),
            ("error", "unix", "-", "-", "-", "-", "error"),
            ("retry", "unix", "-", "-", "-", "-", "error"),
            ("discard", "unix", "-", "-", "-", "-", "discard"),
            ("virtual", "unix", "-", "n", "-", "-", "virtual"),
            ("anvil", "unix", "-", "-", "-", "1", "anvil"),
            ("scache", "unix", "-", "-", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "-", "1", "postlogd"),
        ];
        let mut text =
            String::from("# Private Postfix instance for mailward's end-to-end tests.\n");
        text.push_str(&format!("127.0.0.1:{} inet n - n - - smtpd\n", self.port));
        for (name, kind, private, unpriv, wakeup, maxproc, command) in services {
            text.push_str(&format!(
                "{name} {kind} {private} {unpriv} n {wakeup} {maxproc} {command}\n"
            ));
        }
        text
    }

    /// Starts Postfix on a free port, retrying when the port was taken in
    /// the meantime, and waits until it listens.
    fn boot(&mut self) {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            self.port = free_port();
            fs::write(self.config_dir.join("master.cf"), self.master_cf())
                .expect("write master.cf");
            let log_before = self.maillog().len();
            let (ok, output) = self.postfix(&["start"]);
            if ok {
                self.running = true;
                if poll(START_TIMEOUT, || self.listening().then_some(())).is_none() {
                    panic!(
                        "Postfix started but does not listen on 127.0.0.1:{} after {:?}\n\
                         --- postfix start ---\n{output}\n--- maillog ---\n{}",
                        self.port,
                        START_TIMEOUT,
                        self.maillog()
                    );
                }
                return;
            }
            let log = self.maillog();
            let new_log = log.get(log_before..).unwrap_or(&log);
            if new_log.contains("Address already in use") && attempt < ATTEMPTS {
                continue;
            }
            panic!(
                "`postfix -c {} start` failed\n--- postfix start ---\n{output}\n--- maillog ---\n{log}",
                self.config_dir.display()
            );
        }
    }

    /// Runs `postfix -c DIR <args>` under a terminal when `script` exists
    /// (postfix reports fatal errors only to a terminal or its log).
    fn postfix(&self, args: &[&str]) -> (bool, String) {
        let mut argv = vec![
            self.tools.postfix.display().to_string(),
            "-c".into(),
            self.config_dir.display().to_string(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let out = match &self.tools.script {
            Some(script) => {
                let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
                Command::new(script)
                    .args(["-qec", &line.join(" "), "/dev/null"])
                    .stdin(Stdio::null())
                    .output()
            }
            None => Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .output(),
        }
        .expect("run postfix");
        let mut text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Whether `ss -ltn` shows the SMTP service listening.
    fn listening(&self) -> bool {
        listening_with(&self.tools.ss, self.port)
    }

    /// The master's pid, from its pid file.
    fn master_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops Postfix: `postfix stop` (which waits for the master to exit),
    /// then, if anything of the master's process group is still alive,
    /// SIGKILL to each of those pids.
    fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let master = self.master_pid();
        let (ok, output) = self.postfix(&["stop"]);
        let Some(master) = master else {
            if !ok {
                eprintln!("warning: `postfix stop` failed and no master pid is known:\n{output}");
            }
            return;
        };
        let group_alive = || !process_group(master).is_empty();
        if poll(Duration::from_secs(10), || (!group_alive()).then_some(())).is_none() {
            eprintln!("warning: Postfix did not stop ({output}); killing its processes");
            for pid in process_group(master) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

impl Drop for PostfixInstance {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- maillog of the Postfix instance on port {} ---\n{}",
                self.port,
                self.maillog()
            );
        }
        self.stop();
        if self.listed
            && let Err(e) = update_alternate_dirs(None, Some(&self.config_dir))
        {
            eprintln!("warning: could not update {DEFAULT_MAIN_CF}: {e}");
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Waits until something listens on `127.0.0.1:port`, as `ss -ltn` shows
/// it (no connection is made). For milters started by a test, e.g. the
/// `mailward` binary. False after `timeout`, or when `ss` is missing.
pub fn wait_listening(port: u16, timeout: Duration) -> bool {
    let Some(ss) = find_program("ss") else {
        return false;
    };
    poll(timeout, || listening_with(&ss, port).then_some(())).is_some()
}

fn listening_with(ss: &Path, port: u16) -> bool {
    let want = format!("127.0.0.1:{port}");
    Command::new(ss)
        .arg("-Hltn")
        .stdin(Stdio::null())
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|line| line.split_whitespace().nth(3) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn process_group(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid pgrp ..."; comm may hold spaces.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .collect()
}

/// Calls `f` until it returns `Some` or `timeout` passes (then one last try).
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return f();
        }
        thread::sleep(POLL);
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Adds `add` to and removes `remove` from `alternate_config_directories` in
/// the default main.cf, pruning entries of test instances that no longer
/// exist. Serialised across threads and processes by a lock file.
fn update_alternate_dirs(add: Option<&Path>, remove: Option<&Path>) -> io::Result<()> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env::temp_dir().join("mailward-postfix.lock"))?;
    lock.lock()?;

    let main_cf = Path::new(DEFAULT_MAIN_CF);
    let text = match fs::read_to_string(main_cf) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let exists = |d: &str| Path::new(d).exists();
    match edit_alternate_dirs(text.as_deref(), add, remove, exists) {
        None => match fs::remove_file(main_cf) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Some(new) if Some(&new) != text.as_ref() => {
            let tmp = main_cf.with_extension("cf.mailward-tmp");
            fs::write(&tmp, &new)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
            fs::rename(&tmp, main_cf)
        }
        Some(_) => Ok(()),
    }
}

/// The new main.cf text (`None`: remove the file) after adding `add` to and
/// removing `remove` from `alternate_config_directories`, given the current
/// text (`None`: no file). Entries of test instances for which `exists` is
/// false are pruned (runs killed before their drop). A file created here
/// starts with [`MARKER`] and is removed again once nothing else is in it.
fn edit_alternate_dirs(
    text: Option<&str>,
    add: Option<&Path>,
    remove: Option<&Path>,
    exists: impl Fn(&str) -> bool,
) -> Option<String> {
    let (mut rest, dirs) = match text {
        Some(text) => split_parameter(text, ALTERNATE_DIRS),
        None => (format!("{MARKER}\n"), Vec::new()),
    };
    let mut dirs: Vec<String> = dirs
        .into_iter()
        .filter(|d| Some(Path::new(d)) != remove)
        .filter(|d| !d.contains(DIR_PREFIX) || exists(d))
        .collect();
    if let Some(add) = add {
        let add = add.display().to_string();
        if !dirs.contains(&add) {
            dirs.push(add);
        }
    }
    if dirs.is_empty() {
        return (rest.trim() != MARKER).then_some(rest);
    }
    if !rest.is_empty() && !rest.ends_with('\n') {
        rest.push('\n');
    }
    rest.push_str(&format!("{ALTERNATE_DIRS} = {}\n", dirs.join(", ")));
    Some(rest)
}

/// Splits main.cf text into everything but the logical lines that set
/// `name`, and the list value of the last of them. A logical line continues
/// on the following lines that start with whitespace.
fn split_parameter(text: &str, name: &str) -> (String, Vec<String>) {
    let mut kept = String::new();
    let mut value = None;
    let mut in_param = false;
    for line in text.split_inclusive('\n') {
        let continuation = line.starts_with([' ', '\t'])
            && !line.trim().is_empty()
            && !line.trim_start().starts_with('#');
        if !continuation {
            in_param = line
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == name && !k.trim_start().starts_with('#'));
            if in_param {
                value = Some(line.split_once('=').map_or("", |(_, v)| v).to_string());
                continue;
            }
        } else if in_param {
            if let Some(v) = value.as_mut() {
                v.push(' ');
                v.push_str(line);
            }
            continue;
        }
        kept.push_str(line);
    }
    let dirs = value
        .unwrap_or_default()
        .split([',', ' ', '\t', '\n', '\r'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (kept, dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/tmp/mailward-postfix-1-0-a/etc";
    const B: &str = "/tmp/mailward-postfix-1-1-b/etc";

    fn edit(text: Option<&str>, add: Option<&str>, remove: Option<&str>) -> Option<String> {
        edit_alternate_dirs(text, add.map(Path::new), remove.map(Path::new), |d| {
            d != "/tmp/mailward-postfix-9-9-gone/etc"
        })
    }

    #[test]
    fn no_main_cf_is_created_then_removed() {
        let added = edit(None, Some(A), None).unwrap();
        assert_eq!(added, format!("{MARKER}\n{ALTERNATE_DIRS} = {A}\n"));
        let both = edit(Some(&added), Some(B), None).unwrap();
        assert_eq!(both, format!("{MARKER}\n{ALTERNATE_DIRS} = {A}, {B}\n"));
        assert_eq!(edit(Some(&both), Some(B), None).as_ref(), Some(&both));
        let one = edit(Some(&both), None, Some(A)).unwrap();
        assert_eq!(one, format!("{MARKER}\n{ALTERNATE_DIRS} = {B}\n"));
        assert_eq!(edit(Some(&one), None, Some(B)), None);
    }

    #[test]
    fn an_existing_main_cf_keeps_everything_else() {
        let text = "myhostname = a.example\nalternate_config_directories = /etc/postfix-b,\n    /tmp/mailward-postfix-9-9-gone/etc\n# comment\nmydomain = example\n";
        let added = edit(Some(text), Some(A), None).unwrap();
        assert_eq!(
            added,
            format!(
                "myhostname = a.example\n# comment\nmydomain = example\n\
                 {ALTERNATE_DIRS} = /etc/postfix-b, {A}\n"
            )
        );
        let removed = edit(Some(&added), None, Some(A)).unwrap();
        assert_eq!(
            removed,
            format!(
                "myhostname = a.example\n# comment\nmydomain = example\n\
                 {ALTERNATE_DIRS} = /etc/postfix-b\n"
            )
        );
        let bare = "myhostname = a.example";
        assert_eq!(
            edit(Some(bare), None, Some(A)).as_deref(),
            Some(bare),
            "a file with nothing to change keeps its text"
        );
    }
}
