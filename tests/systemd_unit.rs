//! The shipped systemd files (`contrib/systemd/`), unchanged, under a real
//! systemd: systemd boots as PID 1 of a private PID and mount namespace,
//! with tmpfs over the directories it would change (`/run`, `/etc/systemd/system`,
//! `/etc/mailward`, `/var/log`, `/var/lib/systemd`, `/usr/local/bin`) and
//! the mailward account added by `systemd-sysusers` to copies of
//! `/etc/passwd` and `/etc/group` mounted over the originals, so nothing
//! outside the namespace changes but the cgroups systemd makes in the
//! host's hierarchies, removed after (and checked). The test then checks what an
//! administrator relies on: the unit passes `systemd-analyze verify`;
//! mailward runs as its own user under the unit's sandbox (no capabilities,
//! no new privileges, a seccomp filter) and still judges mail; session
//! records land in the `LogsDirectory`; `systemctl reload` keeps the rules in
//! force when the new library is broken and applies a good one; a unix
//! socket in the `RuntimeDirectory` works; `systemctl stop` is a clean
//! exit; a broken library at start is exit status 2, not restarted.
//!
//! Needs root, systemd, `unshare` and `nsenter`; without them the test is
//! skipped with a message, and with `CI=true` it fails instead.

mod common;
mod support;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Msg, TempDir, is_reject};
use indymilter_test::{Status, TestConnection};
use support::postfix::{ci, free_port};

const SYSTEMD: &str = "/lib/systemd/systemd";
const WAIT: Duration = Duration::from_secs(30);
const LIBRARY: &str = "entries:\n  - { text: cheap pills, weight: 12, id: pills }\n";
const SPAM: &str = "Cheap pills, delivered overnight.\r\n";
const HAM: &str = "The quarterly meeting moves to Tuesday.\r\n";

/// Runs inside the namespaces: private mounts, the shipped files installed
/// as docs/operations.md says, then systemd as PID 1. `$1` is the staging
/// directory, `$2` the mailward binary, `$3` the repository's contrib/systemd.
const BOOT: &str = r#"
set -euo pipefail
stage=$1 bin=$2 contrib=$3
for d in /run /etc/systemd/system /etc/mailward /var/log /var/lib/systemd /usr/local/bin; do
    mkdir -p "$d"
    mount -t tmpfs -o mode=0755 tmpfs "$d"
done
mkdir -p "$stage/root/etc"
cp /etc/passwd /etc/group "$stage/root/etc/"
systemd-sysusers --root="$stage/root" "$contrib/mailward.sysusers"
mount --bind "$stage/root/etc/passwd" /etc/passwd
mount --bind "$stage/root/etc/group" /etc/group
install -m 0755 "$bin" /usr/local/bin/mailward
cp "$stage/milter.yaml" "$stage/library.yaml" /etc/mailward/
chgrp -R mailward /etc/mailward
chmod 0750 /etc/mailward
chmod 0640 /etc/mailward/*
cp "$contrib/mailward.service" /etc/systemd/system/
systemd-analyze verify /etc/systemd/system/mailward.service
# For the test only: no boot dependencies (nothing else is started), and
# mailward's log in a file (no journal runs here).
mkdir /etc/systemd/system/mailward.service.d
printf '[Unit]\nDefaultDependencies=no\n[Service]\nStandardError=append:/run/mailward-stderr.log\n' \
    >/etc/systemd/system/mailward.service.d/test.conf
printf '[Unit]\nDescription=mailward unit test\nDefaultDependencies=no\nWants=mailward.service\n' \
    >/etc/systemd/system/probe.target
# systemd's own messages go to the console: a file here.
touch "$stage/console"
mount --bind "$stage/console" /dev/console
echo "booting systemd"
exec /lib/systemd/systemd --system --unit=probe.target --log-target=console
"#;

/// systemd in its namespaces; killed (with everything it started) on drop.
struct Systemd {
    unshare: Child,
    /// PID 1 of the namespace, as the host sees it.
    pid: u32,
    /// The boot script's output, and systemd's console.
    log: PathBuf,
    console: PathBuf,
    /// The mount point /etc/mailward was made for the test: removed after.
    made_conf_dir: bool,
    /// The cgroup directories before boot: systemd makes its own (init.scope,
    /// system.slice, …) in the host's hierarchies, removed after.
    cgroups_before: HashSet<PathBuf>,
    /// The links under /sys/fs/cgroup before boot (see [`cgroup_links`]).
    links_before: HashSet<PathBuf>,
}

impl Systemd {
    fn boot(stage: &TempDir) -> Systemd {
        let made_conf_dir = !Path::new("/etc/mailward").exists();
        let cgroups_before = cgroup_dirs();
        let links_before = cgroup_links();
        let log = stage.path().join("boot.log");
        let out = fs::File::create(&log).expect("create boot.log");
        let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd");
        let mut unshare = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount",
                "--mount-proc",
                "bash",
                "-c",
                BOOT,
            ])
            .arg("boot")
            .arg(stage.path())
            .arg(env!("CARGO_BIN_EXE_mailward"))
            .arg(&contrib)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup boot.log"))
            .stderr(out)
            .spawn()
            .expect("spawn unshare");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let deadline = Instant::now() + WAIT;
        let pid = loop {
            if let Some(pid) = fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
            {
                break pid;
            }
            if let Ok(Some(status)) = unshare.try_wait() {
                panic!("unshare exited ({status}):\n{}", read(&log));
            }
            assert!(
                Instant::now() < deadline,
                "no namespace init:\n{}",
                read(&log)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let console = stage.path().join("console");
        Systemd {
            unshare,
            pid,
            log,
            console,
            made_conf_dir,
            cgroups_before,
            links_before,
        }
    }

    /// A command inside the namespaces; its standard output, trimmed.
    fn run(&self, script: &str) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-m", "-p", "sh", "-c", script])
            .output()
            .expect("run nsenter");
        assert!(
            out.status.success(),
            "`{script}` failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn show(&self, property: &str) -> String {
        self.run(&format!("systemctl show -p {property} --value mailward"))
    }

    /// A path inside the namespace's mounts, reached from the host.
    fn path(&self, p: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{p}", self.pid))
    }

    /// mailward's log (its standard error, appended to a file).
    fn mailward_log(&self) -> String {
        read(&self.path("/run/mailward-stderr.log"))
    }

    /// Everything logged so far, for failure messages.
    fn logs(&self) -> String {
        let status = Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-m", "-p"])
            .args(["systemctl", "status", "--no-pager", "--full", "mailward"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        format!(
            "--- boot\n{}--- systemd\n{}--- systemctl status\n{status}--- mailward\n{}",
            read(&self.log),
            read(&self.console),
            self.mailward_log()
        )
    }

    /// Waits until mailward's log holds `needle` `n` times.
    fn wait_logged(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.mailward_log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "`{needle}` not logged {n} time(s):\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the unit's `ActiveState` is `state`.
    fn wait_state(&self, state: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.show("ActiveState");
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mailward.service stays {now}, not {state}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        // SIGKILL to a PID namespace's init ends every process in it.
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        let _ = self.unshare.wait();
        if self.made_conf_dir {
            // Empty once the namespace's tmpfs is gone.
            let _ = fs::remove_dir("/etc/mailward");
        }
        // Only directories this systemd made, deepest first; a cgroup is
        // removable once its killed processes are gone, hence the retries.
        let mut made: Vec<PathBuf> = cgroup_dirs()
            .difference(&self.cgroups_before)
            .cloned()
            .collect();
        made.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in &made {
            while fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Where /sys/fs/cgroup is a tmpfs of cgroup v1 hierarchies mounted
        // read-only, systemd remounts it writable in its namespace and makes
        // mount points (and links) for the controllers it mounts; the host
        // can remove them only through a writable mount, so a private mount
        // namespace makes the tmpfs writable for the removal and read-only
        // again after. The host's own mount stays read-only throughout.
        let left: Vec<PathBuf> = made.into_iter().filter(|d| d.exists()).collect();
        let links: Vec<PathBuf> = cgroup_links()
            .difference(&self.links_before)
            .cloned()
            .collect();
        if !left.is_empty() || !links.is_empty() {
            let _ = Command::new("unshare")
                .args(["-m", "sh", "-c"])
                .arg(
                    "mount -o remount,rw /sys/fs/cgroup || exit 1; \
                     rm -f -- $LINKS; rmdir -- \"$@\"; rc=$?; \
                     mount -o remount,ro /sys/fs/cgroup; exit $rc",
                )
                .arg("sh")
                .args(&left)
                .env(
                    "LINKS",
                    links
                        .iter()
                        .map(|l| l.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                )
                .status();
        }
    }
}

/// The symbolic links directly under /sys/fs/cgroup (systemd makes some,
/// such as `cpu -> cpu,cpuacct`, next to the mount points it makes).
fn cgroup_links() -> HashSet<PathBuf> {
    fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .map(|e| e.path())
        .collect()
}

/// Every directory under /sys/fs/cgroup (symbolic links not followed).
fn cgroup_dirs() -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    let mut todo = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(entry.path());
                out.insert(entry.path());
            }
        }
    }
    out
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("it needs root".into());
    }
    if !Path::new(SYSTEMD).exists() {
        return Some(format!("{SYSTEMD} is missing (Debian's systemd)"));
    }
    for tool in [
        "unshare",
        "nsenter",
        "systemctl",
        "systemd-analyze",
        "systemd-sysusers",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("`{tool}` is missing"));
        }
    }
    None
}

/// Sends one spam and one ham message over a new connection; their statuses.
async fn judge(conn: TestConnection) -> (Status, Status) {
    let mut c = Client { conn };
    c.conn
        .connect("client.example", [192, 0, 2, 1])
        .await
        .expect("connect");
    let (_, spam) = c.send(&Msg::new("offer", SPAM)).await;
    let (_, ham) = c.send(&Msg::new("meeting", HAM)).await;
    c.close().await;
    (spam, ham)
}

async fn judge_tcp(sd: &Systemd, port: u16) -> (Status, Status) {
    let deadline = Instant::now() + WAIT;
    let conn = loop {
        match TestConnection::open(("127.0.0.1", port)).await {
            Ok(c) => break c,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no milter on {port}: {e}\n{}",
                sd.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    judge(conn).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_unit_runs_mailward_under_systemd() {
    if let Some(reason) = missing() {
        assert!(
            !ci(),
            "CI is set, but the systemd unit test cannot run: {reason}. \
             Install Debian's systemd and util-linux and run the tests as root."
        );
        eprintln!("skipping the systemd unit test: {reason} (with CI=true this fails)");
        return;
    }
    let stage = TempDir::new("systemd");
    let port = free_port();
    let config = |listen: &str| {
        format!(
            "listen: {listen}\nlibrary: library.yaml\n\
             behavior:\n  records: /var/log/mailward/sessions.jsonl\n"
        )
    };
    stage.write("milter.yaml", config(&format!("inet:127.0.0.1:{port}")));
    stage.write("library.yaml", LIBRARY);
    // The stage directory lives as long as systemd, which reads it.
    let (sd, _stage) = tokio::task::spawn_blocking(move || (Systemd::boot(&stage), stage))
        .await
        .expect("boot");

    // Running, judging, as its own user inside the unit's sandbox.
    let (spam, ham) = judge_tcp(&sd, port).await;
    assert!(is_reject(&spam), "{spam:?}");
    assert_eq!(ham, Status::Accept);
    let uid = sd.run("id -u mailward");
    let status = sd.run(
        "grep -E '^(Uid|NoNewPrivs|Seccomp|CapEff):' /proc/$(systemctl show -p MainPID --value mailward)/status",
    );
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_ne!(uid, "0");
    assert_eq!(field("Uid:"), [uid.as_str(); 4], "{status}");
    assert_eq!(field("NoNewPrivs:"), ["1"], "{status}");
    assert_eq!(field("Seccomp:"), ["2"], "{status}");
    assert_eq!(field("CapEff:"), ["0000000000000000"], "{status}");

    // One record per session, in the LogsDirectory, owned by mailward and
    // not world-readable (UMask=0027).
    let records = sd.path("/var/log/mailward/sessions.jsonl");
    let deadline = Instant::now() + WAIT;
    while read(&records).lines().count() < 1 {
        assert!(Instant::now() < deadline, "no session record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = read(&records);
    assert!(text.contains("\"ids\":[\"pills\"]"), "{text}");
    let meta = fs::metadata(&records).expect("records");
    assert_eq!(meta.uid().to_string(), uid);
    assert_eq!(meta.mode() & 0o777, 0o640);

    // A broken library on reload: refused, the rules in force kept.
    let library = sd.path("/etc/mailward/library.yaml");
    fs::write(&library, "entries:\n  - {text: x, colour: red}\n").expect("write library");
    sd.run("systemctl reload mailward");
    sd.wait_logged("reload failed", 1);
    assert!(
        sd.mailward_log().contains("library.yaml:2:15"),
        "{}",
        sd.mailward_log()
    );
    let (spam, ham) = judge_tcp(&sd, port).await;
    assert!(is_reject(&spam), "{spam:?}");
    assert_eq!(ham, Status::Accept);
    // A good one: applied.
    fs::write(
        &library,
        format!("{LIBRARY}  - {{ text: quarterly meeting, weight: 12 }}\n"),
    )
    .expect("write library");
    sd.run("systemctl reload mailward");
    sd.wait_logged("reloaded gen=2", 1);
    let (_, ham) = judge_tcp(&sd, port).await;
    assert!(is_reject(&ham), "{ham:?}");

    // A unix socket in the RuntimeDirectory.
    fs::write(
        sd.path("/etc/mailward/milter.yaml"),
        config("unix:/run/mailward/mailward.sock"),
    )
    .expect("write config");
    sd.run("systemctl restart mailward");
    let socket = sd.path("/run/mailward/mailward.sock");
    let deadline = Instant::now() + WAIT;
    let conn = loop {
        match TestConnection::configure().open_unix(&socket).await {
            Ok(c) => break c,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no socket {}: {e}\n{}",
                socket.display(),
                sd.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (spam, _) = judge(conn).await;
    assert!(is_reject(&spam), "{spam:?}");

    // Stop: a clean exit.
    sd.run("systemctl stop mailward");
    assert_eq!(sd.show("Result"), "success");
    assert_eq!(sd.show("ExecMainStatus"), "0");
    assert!(
        sd.mailward_log().ends_with("stopped\n"),
        "{}",
        sd.mailward_log()
    );

    // A broken library at start: exit status 2, which the unit does not
    // restart (RestartPreventExitStatus=2).
    fs::write(&library, "entries:\n  - {text: x, colour: red}\n").expect("write library");
    sd.run("systemctl start mailward || true");
    sd.wait_state("failed");
    assert_eq!(sd.show("ExecMainStatus"), "2");
    // Past RestartSec=2s: still failed, never restarted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sd.show("ActiveState"), "failed");
    assert_eq!(sd.show("NRestarts"), "0");

    // Gone without a trace: the cgroups systemd made are removed too.
    let before = sd.cgroups_before.clone();
    drop(sd);
    let left: Vec<_> = cgroup_dirs().difference(&before).cloned().collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}
