//! A private, throw-away Sendmail instance for end-to-end tests.
//!
//! [`SendmailInstance::builder`] writes a `.mc` file into a fresh temporary
//! directory, turns it into a `sendmail.cf` with `m4` and Sendmail's `cf`
//! macros, and runs `sendmail -bD` (the daemon, in the foreground) on it:
//!
//! ```text
//! DIR/sendmail.mc, sendmail.cf  the instance's configuration
//! DIR/queue/                    QueueDirectory
//! DIR/aliases, aliases.db       its alias file (built with `sendmail -bi`)
//! DIR/deliver                   the local mailer: one file per message in DIR/mail
//! DIR/mail/                     every delivered message, as NANOS-PID.eml
//! DIR/dev/                      the /dev that Sendmail sees; DIR/dev/log is its syslog
//! DIR/sendmail.out              the daemon's standard output and error
//! ```
//!
//! The instance listens for SMTP on `127.0.0.1:<free port>` only, takes
//! `@example.test` (and its own name) as local, accepts unresolvable sender
//! domains and delivers every local recipient, whatever its name, through
//! DIR/deliver. Milters and other settings are added as `.mc` text with
//! [`SendmailBuilder::mc`], e.g. the lines of `contrib/sendmail/mailward.mc`.
//!
//! Sendmail wants a host name with a domain (with a bare one it sleeps and
//! retries at start), and it logs only through syslog. So the daemon runs in
//! its own UTS and mount namespaces (`unshare -um`), where the host name is
//! [`HOSTNAME`] and DIR/dev is mounted over /dev, with the few device nodes
//! Sendmail opens bound into it beside DIR/dev/log, a datagram socket that
//! the harness reads: the log lines end up in [`SendmailInstance::log`]
//! without a syslog daemon, and nothing outside the instance changes.
//!
//! Readiness is judged by the listening socket (`ss -ltn`), never by
//! connecting. Delivery happens in the background after the `250` to DATA,
//! so tests poll with [`SendmailInstance::wait_delivered`]. Dropping the
//! instance sends SIGTERM to the daemon, then SIGKILL to whatever is left
//! of its process group, and removes DIR; when a test panics, the log and
//! the queue are printed first. Instances left by a killed test run are
//! stopped and removed by the next run.
//!
//! Prerequisites: root, `unshare` and `mount` (util-linux), `ss`, `m4`,
//! Sendmail's binary and its `cf` directory (the one holding `m4/cf.m4`).
//! The binary is looked up as `/usr/libexec/sendmail/sendmail`,
//! `/usr/lib/sm.bin/sendmail` or `/usr/sbin/sendmail-mta` (not
//! `/usr/sbin/sendmail`, which may be Postfix's), the `cf` directory as
//! `/usr/share/sendmail/cf` or `/usr/share/sendmail-cf`; the environment
//! variables `MAILWARD_SENDMAIL` and `MAILWARD_SENDMAIL_CF` name others. When
//! something is missing, [`SendmailBuilder::start`] returns `None` after
//! saying why; with `CI=true` it panics instead.

#![allow(dead_code)]

use std::env;
use std::fs;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::postfix::{ci, find_program, free_port, poll, process_group, wait_listening};

/// The instance's host name (`$j`, its greeting) inside its namespace.
pub const HOSTNAME: &str = "mx.example.test";
/// The mail domain the instance takes as local.
pub const DOMAIN: &str = "example.test";

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Prefix of the instance directories, used to find stale ones.
const DIR_PREFIX: &str = "mailward-sendmail-";
/// Device nodes bound into the instance's /dev.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// Configuration of a [`SendmailInstance`] before it starts.
#[derive(Clone, Debug, Default)]
pub struct SendmailBuilder {
    mc: Vec<String>,
}

impl SendmailBuilder {
    /// Adds `.mc` text (e.g. `INPUT_MAIL_FILTER` and `define` lines) after
    /// the harness's own settings and before the `MAILER` lines.
    pub fn mc(mut self, text: impl Into<String>) -> Self {
        self.mc.push(text.into());
        self
    }

    /// Creates and starts the instance. Returns `None` (after printing why)
    /// when Sendmail cannot run here; panics instead under CI, and whenever
    /// Sendmail is present but fails to start.
    pub fn start(self) -> Option<SendmailInstance> {
        let tools = match Tools::find() {
            Ok(tools) => tools,
            Err(reason) => {
                if ci() {
                    panic!(
                        "CI is set, but the Sendmail end-to-end test cannot run: {reason}. \
                         Install Debian's sendmail-bin, sendmail-cf and m4 and run the test \
                         as root (.ci/run does both in its second stage)."
                    );
                }
                eprintln!(
                    "skipping the Sendmail end-to-end test: {reason} (with CI=true this fails)"
                );
                return None;
            }
        };
        reap_stale_instances();
        let dir = make_temp_dir().expect("create the instance directory");
        let syslog = Syslog::start(&dir.join("dev").join("log")).expect("bind the syslog socket");
        let mut instance = SendmailInstance {
            dir,
            tools,
            port: 0,
            daemon: None,
            syslog,
        };
        instance.prepare();
        instance.boot(&self.mc);
        Some(instance)
    }
}

/// The programs the instance needs.
#[derive(Clone, Debug)]
struct Tools {
    sendmail: PathBuf,
    /// The directory holding `m4/cf.m4`.
    cf: PathBuf,
    m4: PathBuf,
    unshare: PathBuf,
}

impl Tools {
    fn find() -> Result<Self, String> {
        let sendmail = match env::var_os("MAILWARD_SENDMAIL") {
            Some(p) => Some(PathBuf::from(p)),
            None => [
                "/usr/libexec/sendmail/sendmail",
                "/usr/lib/sm.bin/sendmail",
                "/usr/sbin/sendmail-mta",
            ]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
        }
        .filter(|p| p.exists())
        .ok_or("Sendmail is not installed (no sendmail-mta binary)")?;
        let cf = match env::var_os("MAILWARD_SENDMAIL_CF") {
            Some(p) => Some(PathBuf::from(p)),
            None => ["/usr/share/sendmail/cf", "/usr/share/sendmail-cf"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.join("m4/cf.m4").exists()),
        }
        .filter(|p| p.join("m4/cf.m4").exists())
        .ok_or("Sendmail's cf macros are not installed (no m4/cf.m4: package sendmail-cf)")?;
        let m4 = find_program("m4").ok_or("the `m4` command is not installed")?;
        let unshare = find_program("unshare").ok_or("the `unshare` command is not installed")?;
        find_program("mount").ok_or("the `mount` command is not installed")?;
        find_program("ss").ok_or("the `ss` command (iproute2) is not installed")?;
        let euid = fs::metadata("/proc/self")
            .map(|m| m.uid())
            .map_err(|e| format!("cannot read /proc/self: {e}"))?;
        if euid != 0 {
            return Err("Sendmail's daemon and its namespaces need root".into());
        }
        Ok(Tools {
            sendmail,
            cf,
            m4,
            unshare,
        })
    }
}

/// A running private Sendmail instance; stopped and removed on drop.
pub struct SendmailInstance {
    dir: PathBuf,
    tools: Tools,
    port: u16,
    daemon: Option<Child>,
    syslog: Syslog,
}

impl SendmailInstance {
    /// A builder with no milter.
    pub fn builder() -> SendmailBuilder {
        SendmailBuilder::default()
    }

    /// The port of the instance's SMTP service on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address of the instance's SMTP service.
    pub fn smtp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `local@example.test`: an address the instance delivers locally.
    pub fn address(&self, local: &str) -> String {
        format!("{local}@{DOMAIN}")
    }

    /// Every message delivered so far, oldest first.
    pub fn delivered(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.join("mail"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|p| fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    /// Polls until a delivered message satisfies `pred` and returns it, or
    /// `None` after `timeout`.
    pub fn wait_delivered(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        poll(timeout, || self.delivered().into_iter().find(|m| pred(m)))
    }

    /// The instance's syslog lines so far (priority removed), one per line.
    pub fn log(&self) -> String {
        self.syslog.text()
    }

    /// Polls the log until a line contains `pattern` and returns that line,
    /// or `None` after `timeout`.
    pub fn wait_log(&self, pattern: &str, timeout: Duration) -> Option<String> {
        poll(timeout, || {
            self.log()
                .lines()
                .find(|l| l.contains(pattern))
                .map(str::to_owned)
        })
    }

    /// The names of the files in the queue directory.
    pub fn queue(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.join("queue"))
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Writes the files that do not depend on the port.
    fn prepare(&self) {
        let d = &self.dir;
        for sub in ["queue", "mail", "dev"] {
            fs::create_dir_all(d.join(sub)).expect("create instance directories");
        }
        // Sendmail refuses a queue directory others can write or read.
        fs::set_permissions(d.join("queue"), fs::Permissions::from_mode(0o700))
            .expect("chmod queue");
        // The local mailer may run as another user.
        fs::set_permissions(d.join("mail"), fs::Permissions::from_mode(0o1777))
            .expect("chmod mail");
        for dev in DEVICES {
            fs::write(d.join("dev").join(dev), "").expect("create a device mount point");
        }
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            std::os::unix::fs::symlink(target, d.join("dev").join(name)).expect("symlink in dev");
        }
        fs::write(d.join("aliases"), "postmaster: root\n").expect("write aliases");
        for f in ["local-host-names", "relay-domains"] {
            fs::write(d.join(f), "").expect("write an empty class file");
        }
        let mail = d.join("mail");
        let deliver = d.join("deliver");
        fs::write(
            &deliver,
            format!(
                "#!/bin/sh\n\
                 # Local mailer of a test instance: one file per message.\n\
                 set -e\n\
                 f={}/$(date +%s%N)-$$\n\
                 cat > \"$f.tmp\"\n\
                 mv \"$f.tmp\" \"$f.eml\"\n",
                mail.display()
            ),
        )
        .expect("write the local mailer");
        fs::set_permissions(&deliver, fs::Permissions::from_mode(0o755)).expect("chmod deliver");
    }

    /// The instance's `.mc` text for `port`, with `extra` before the mailers.
    fn mc_text(&self, extra: &[String]) -> String {
        let d = self.dir.display();
        let cf = self.tools.cf.display();
        let port = self.port;
        let mut mc = format!(
            "divert(-1)dnl\n\
             dnl # Private Sendmail instance for mailward's end-to-end tests.\n\
             divert(0)dnl\n\
             include(`{cf}/m4/cf.m4')dnl\n\
             VERSIONID(`mailward end-to-end test instance')dnl\n\
             OSTYPE(`linux')dnl\n\
             define(`confDOMAIN_NAME', `{HOSTNAME}')dnl\n\
             define(`QUEUE_DIR', `{d}/queue')dnl\n\
             define(`confPID_FILE', `{d}/sendmail.pid')dnl\n\
             define(`STATUS_FILE', `{d}/statistics')dnl\n\
             define(`ALIAS_FILE', `{d}/aliases')dnl\n\
             define(`confCW_FILE', `-o {d}/local-host-names')dnl\n\
             define(`confCR_FILE', `-o {d}/relay-domains')dnl\n\
             define(`confDEAD_LETTER_DROP', `{d}/dead.letter')dnl\n\
             dnl # The instance lives under the temporary directory (sticky bit).\n\
             define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl\n\
             define(`confDONT_PROBE_INTERFACES', `True')dnl\n\
             define(`confTO_IDENT', `0s')dnl\n\
             define(`confLOG_LEVEL', `9')dnl\n\
             define(`LOCAL_MAILER_PATH', `{d}/deliver')dnl\n\
             define(`LOCAL_MAILER_ARGS', `deliver $u')dnl\n\
             dnl # Any local name is a mailbox: no w flag (user must exist).\n\
             define(`_DEF_LOCAL_MAILER_FLAGS', `lsDFMA5:/|@q')dnl\n\
             FEATURE(`accept_unresolvable_domains')dnl\n\
             LOCAL_DOMAIN(`{DOMAIN}')dnl\n\
             DAEMON_OPTIONS(`Family=inet, Addr=127.0.0.1, Port={port}, Name=MTA')dnl\n"
        );
        for text in extra {
            mc.push_str(text);
            if !text.ends_with('\n') {
                mc.push('\n');
            }
        }
        mc.push_str("MAILER(`local')dnl\nMAILER(`smtp')dnl\n");
        mc
    }

    /// Writes sendmail.mc for the current port and builds sendmail.cf.
    fn configure(&self, extra: &[String]) {
        let mc = self.dir.join("sendmail.mc");
        fs::write(&mc, self.mc_text(extra)).expect("write sendmail.mc");
        let out = Command::new(&self.tools.m4)
            .arg(&mc)
            .stdin(Stdio::null())
            .output()
            .expect("run m4");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !stderr.trim().is_empty() {
            panic!(
                "m4 failed on {}: {}\n{stderr}\n--- sendmail.mc ---\n{}",
                mc.display(),
                out.status,
                fs::read_to_string(&mc).unwrap_or_default()
            );
        }
        fs::write(self.dir.join("sendmail.cf"), &out.stdout).expect("write sendmail.cf");
    }

    /// The shell script run inside the namespaces: /dev with the syslog
    /// socket, the host name, the alias database, then the daemon.
    fn script(&self) -> String {
        let d = self.dir.display();
        let sm = self.tools.sendmail.display();
        let mut s = String::from("set -e\n");
        for dev in DEVICES {
            s.push_str(&format!(
                "if [ -e /dev/{dev} ]; then mount --bind /dev/{dev} '{d}/dev/{dev}'; fi\n"
            ));
        }
        s.push_str(&format!(
            "mount --rbind '{d}/dev' /dev\n\
             hostname {HOSTNAME}\n\
             '{sm}' -C '{d}/sendmail.cf' -bi\n\
             exec '{sm}' -C '{d}/sendmail.cf' -bD\n"
        ));
        s
    }

    /// Starts Sendmail on a free port, retrying when the port was taken in
    /// the meantime, and waits until it listens.
    fn boot(&mut self, extra: &[String]) {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            self.port = free_port();
            self.configure(extra);
            let out = fs::File::create(self.dir.join("sendmail.out")).expect("create sendmail.out");
            let err = out.try_clone().expect("clone sendmail.out");
            // unshare execs the shell, which execs the daemon: the child's
            // pid is the daemon's, and the leader of its own process group.
            let child = Command::new(&self.tools.unshare)
                .args(["--uts", "--mount", "--propagation", "private", "sh", "-c"])
                .arg(self.script())
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0)
                .spawn()
                .expect("run unshare");
            self.daemon = Some(child);
            let up = poll(START_TIMEOUT, || {
                if wait_listening(self.port, Duration::ZERO) {
                    return Some(true);
                }
                self.exited().then_some(false)
            });
            if up == Some(true) {
                return;
            }
            self.stop();
            let output = fs::read_to_string(self.dir.join("sendmail.out")).unwrap_or_default();
            let log = self.log();
            if (log.contains("Address already in use") || output.contains("Address already in use"))
                && attempt < ATTEMPTS
            {
                continue;
            }
            panic!(
                "Sendmail did not start listening on 127.0.0.1:{}\n--- output ---\n{output}\n\
                 --- log ---\n{log}",
                self.port
            );
        }
    }

    /// Whether the daemon has exited (it is reaped then).
    fn exited(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// SIGTERM to the daemon, a wait, then SIGKILL to every process left in
    /// its process group (children that handle a session or a delivery).
    fn stop(&mut self) {
        let Some(mut child) = self.daemon.take() else {
            return;
        };
        let pid = child.id();
        if matches!(child.try_wait(), Ok(None)) {
            signal(pid, libc::SIGTERM);
            let stopped = poll(STOP_TIMEOUT, || {
                (!matches!(child.try_wait(), Ok(None))).then_some(())
            });
            if stopped.is_none() {
                eprintln!("warning: Sendmail (pid {pid}) ignored SIGTERM; killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for p in process_group(pid) {
            signal(p, libc::SIGKILL);
        }
    }
}

impl Drop for SendmailInstance {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- log of the Sendmail instance on port {} ---\n{}\n--- its queue: {:?} ---\n\
                 --- its output ---\n{}",
                self.port,
                self.log(),
                self.queue(),
                fs::read_to_string(self.dir.join("sendmail.out")).unwrap_or_default()
            );
        }
        self.stop();
        self.syslog.stop();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory effects; a stale pid only fails.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Collects the datagrams sent to a unix socket, as syslog(3) sends them.
struct Syslog {
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Syslog {
    fn start(path: &Path) -> io::Result<Syslog> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let sock = UnixDatagram::bind(path)?;
        // Sendmail's children may send as another user.
        fs::set_permissions(path, fs::Permissions::from_mode(0o666))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (lines, stop) = (lines.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    match sock.recv(&mut buf) {
                        Ok(n) => {
                            let line = strip_priority(&String::from_utf8_lossy(&buf[..n]))
                                .trim_end()
                                .to_string();
                            lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                        }
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            })
        };
        Ok(Syslog {
            lines,
            stop,
            thread: Some(thread),
        })
    }

    fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `<22>Nov 23 15:00:00 sm-mta[1]: text` without its `<22>`.
fn strip_priority(s: &str) -> &str {
    s.strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .filter(|(pri, _)| pri.bytes().all(|b| b.is_ascii_digit()))
        .map_or(s, |(_, rest)| rest)
}

/// A fresh instance directory, named after this process so that a later
/// run can tell whether its owner is gone.
fn make_temp_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = env::temp_dir();
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
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Stops and removes the instances of test processes that died without
/// dropping them (Ctrl-C): the daemon's pid is the first line of its pid
/// file, and the leader of its process group.
fn reap_stale_instances() {
    let Ok(entries) = fs::read_dir(env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        let dir = entry.path();
        let daemon = fs::read_to_string(dir.join("sendmail.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok());
        if let Some(pid) = daemon {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sendmail" {
                for p in process_group(pid) {
                    signal(p, libc::SIGKILL);
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
