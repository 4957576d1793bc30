//! The `mailward` command: parses the command line and runs one of its
//! commands. `run` (the default) sets up logging, binds the socket, wires
//! signals (SIGHUP reloads, SIGINT and SIGTERM stop) and hands over to
//! [`mailward::run`]; `check` and `scan` are in [`cli`].

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indymilter::EitherListener;
use mailward::config::model::{Account, Listen};
use mailward::{Config, Reload, RunError};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use cli::{EXIT_FAILURE, EXIT_USAGE};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The command line. clap's derive rather than a hand-written parser:
/// three subcommands with their own options and help, a repeated
/// positional argument, `--opt=value`, `--` and conflicting options are
/// what a parser crate is for (the reasons are in docs/cli.md).
#[derive(Debug, Parser)]
#[command(
    name = "mailward",
    version,
    about = "A milter that intercepts spam with a keyword-indexed string library",
    after_help = "Without a command, mailward runs the milter (`mailward run`).\n\
                  Exit status: 0 success; 1 a failure while working (socket, unreadable\n\
                  message file); 2 a bad command line, configuration or library.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `run`, the default command.
    #[command(flatten)]
    run: ConfigArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the milter protocol (the default command)
    #[command(
        after_help = "Signals: SIGHUP reloads the configuration and the library;\n\
                      SIGINT and SIGTERM stop the milter. RUST_LOG, when set,\n\
                      overrides log.level."
    )]
    Run(ConfigArgs),
    /// Check the configuration and the library, and print figures about them
    #[command(after_help = "Errors are printed as FILE:LINE:COLUMN: MESSAGE.\n\
                      Exit status: 0 when both are valid, 2 otherwise.")]
    Check(ConfigArgs),
    /// Judge message files offline, with the milter's decoding and judgment
    #[command(
        after_help = "A PATH is a message file (RFC 822, one message per file), a directory\n\
                      (walked recursively, in name order) or - for standard input.\n\
                      Exit status: 0 when every message was scanned; 1 when a file could\n\
                      not be read; 2 for a bad command line, configuration or library."
    )]
    Scan(ScanArgs),
}

/// The options of `run` and `check`.
#[derive(Debug, Args, PartialEq)]
struct ConfigArgs {
    /// The configuration file
    #[arg(short, long, value_name = "FILE", default_value = "milter.yaml")]
    config: PathBuf,
}

#[derive(Debug, Args, PartialEq)]
struct ScanArgs {
    /// The configuration file [default: milter.yaml]
    #[arg(short, long, value_name = "FILE", conflicts_with = "library")]
    config: Option<PathBuf>,
    /// A library file alone, judged with the default thresholds
    #[arg(short, long, value_name = "FILE")]
    library: Option<PathBuf>,
    /// Print one JSON object per message, one per line
    #[arg(long)]
    json: bool,
    /// Also print the normalized text the library was matched against
    #[arg(long)]
    text: bool,
    /// Messages judged at once [default: one per CPU]
    #[arg(
        short,
        long,
        value_name = "N",
        default_value_t = 0,
        hide_default_value = true
    )]
    jobs: usize,
    /// Message files, directories, or - for standard input
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to
            // stderr with status 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        None => run(&cli.run.config),
        Some(Command::Run(a)) => run(&a.config),
        Some(Command::Check(a)) => cli::check::check(&a.config),
        Some(Command::Scan(a)) => {
            let source = match (&a.library, &a.config) {
                (Some(l), _) => cli::Source::Library(l),
                (None, Some(c)) => cli::Source::Config(c),
                (None, None) => cli::Source::Config(Path::new("milter.yaml")),
            };
            let opts = cli::scan::Options {
                json: a.json,
                text: a.text,
                jobs: a.jobs,
            };
            cli::scan::scan(source, &a.paths, &opts)
        }
    }
}

/// The milter: runs until SIGINT or SIGTERM.
fn run(config_path: &Path) -> ExitCode {
    mailward::logging::init();
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Err(e) = mailward::logging::apply_destination(&config.log) {
        log::error!("{e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let listen = config.listen.clone();
    let listener = match bind(&config).await {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {listen}: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let (mut hup, mut int, mut term) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(h), Ok(i), Ok(t)) => (h, i, t),
        _ => {
            log::error!("cannot install signal handlers");
            remove_socket(&listen);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // A full queue already holds a reload that will read the
            // newest files.
            let _ = reload_tx.try_send(Reload::new());
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = int.recv() => log::info!("SIGINT received, stopping"),
            _ = term.recv() => log::info!("SIGTERM received, stopping"),
        }
    };
    log::info!(
        "mailward {VERSION} starting on {listen}, library {}",
        config.library_path().display()
    );
    let result = mailward::run(listener, config, reload_rx, shutdown).await;
    remove_socket(&listen);
    match result {
        Ok(()) => {
            log::info!("mailward {VERSION} stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            log::info!("mailward {VERSION} stopped");
            // A library that cannot be loaded is the administrator's to fix,
            // like a bad configuration.
            match e {
                RunError::Rules(_) => ExitCode::from(EXIT_USAGE),
                RunError::Io(_) | RunError::Http(..) => ExitCode::from(EXIT_FAILURE),
            }
        }
    }
}

async fn bind(config: &Config) -> std::io::Result<EitherListener<TcpListener, UnixListener>> {
    match &config.listen {
        Listen::Inet(addr) => Ok(EitherListener::Tcp(TcpListener::bind(addr).await?)),
        Listen::Unix(path) => {
            // Names are looked up before anything is touched on disk.
            let owner = config.socket_owner.as_ref().map(uid).transpose()?;
            let group = config.socket_group.as_ref().map(gid).transpose()?;
            remove_stale_socket(path).await?;
            let l = UnixListener::bind(path)?;
            let set = || -> std::io::Result<()> {
                use std::os::unix::fs::PermissionsExt;
                if owner.is_some() || group.is_some() {
                    std::os::unix::fs::chown(path, owner, group)?;
                }
                // After chown, which may clear set-id bits.
                std::fs::set_permissions(
                    path,
                    std::fs::Permissions::from_mode(config.socket_mode.0),
                )
            };
            if let Err(e) = set() {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
            Ok(EitherListener::Unix(l))
        }
    }
}

/// The user id of `a`.
fn uid(a: &Account) -> std::io::Result<u32> {
    match a {
        Account::Id(n) => Ok(*n),
        Account::Name(name) => match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok(u.uid.as_raw()),
            Ok(None) => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("socket_owner: no user `{name}`"),
            )),
            Err(e) => Err(std::io::Error::other(format!(
                "socket_owner: looking up `{name}`: {e}"
            ))),
        },
    }
}

/// The group id of `a`.
fn gid(a: &Account) -> std::io::Result<u32> {
    match a {
        Account::Id(n) => Ok(*n),
        Account::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            Ok(None) => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("socket_group: no group `{name}`"),
            )),
            Err(e) => Err(std::io::Error::other(format!(
                "socket_group: looking up `{name}`: {e}"
            ))),
        },
    }
}

/// Removes a socket left by an earlier run; refuses to take over one that
/// a running process still answers on, or a path that is not a socket.
async fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        ));
    }
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another process is listening on this socket",
        ));
    }
    log::info!("removing stale socket {}", path.display());
    std::fs::remove_file(path)
}

fn remove_socket(listen: &Listen) {
    if let Listen::Unix(path) = listen
        && let Err(e) = std::fs::remove_file(path)
    {
        log::warn!("cannot remove {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("mailward").chain(args.iter().copied()))
    }

    fn run_config(args: &[&str]) -> Option<PathBuf> {
        match parse(args).ok()? {
            Cli { command: None, run } => Some(run.config),
            Cli {
                command: Some(Command::Run(a)),
                ..
            } => Some(a.config),
            _ => None,
        }
    }

    #[test]
    fn socket_owners_by_name_or_id() {
        assert_eq!(uid(&Account::Name("root".into())).unwrap(), 0);
        assert_eq!(gid(&Account::Name("root".into())).unwrap(), 0);
        assert_eq!(uid(&Account::Id(123)).unwrap(), 123);
        let e = uid(&Account::Name("no-such-user-mailward".into())).unwrap_err();
        assert!(
            e.to_string().contains("no user `no-such-user-mailward`"),
            "{e}"
        );
        let e = gid(&Account::Name("no-such-group-mailward".into())).unwrap_err();
        assert!(e.to_string().contains("no group"), "{e}");
    }

    #[test]
    fn run_is_the_default_command() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(run_config(&[]), p("milter.yaml"));
        assert_eq!(run_config(&["run"]), p("milter.yaml"));
        assert_eq!(run_config(&["run", "--config", "a.yaml"]), p("a.yaml"));
        assert_eq!(run_config(&["-c", "b.yaml"]), p("b.yaml"));
        assert_eq!(run_config(&["--config=c.yaml"]), p("c.yaml"));
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["run", "extra"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(
            parse(&["-c", "a.yaml", "check"]).is_err(),
            "run options before a command"
        );
    }

    #[test]
    fn help_and_version_everywhere() {
        for args in [
            &["--help"][..],
            &["run", "--help"],
            &["check", "-h"],
            &["scan", "--help"],
            &["--version"],
            &["-V"],
        ] {
            let e = parse(args).unwrap_err();
            assert!(!e.use_stderr(), "{args:?}: {e}");
        }
    }

    #[test]
    fn check_and_scan_options() {
        match parse(&["check"]).unwrap().command {
            Some(Command::Check(a)) => assert_eq!(a.config, PathBuf::from("milter.yaml")),
            c => panic!("{c:?}"),
        }
        match parse(&["scan", "--json", "--text", "-l", "lib.yaml", "-", "dir"])
            .unwrap()
            .command
        {
            Some(Command::Scan(a)) => {
                assert!(a.json && a.text);
                assert_eq!(a.library, Some(PathBuf::from("lib.yaml")));
                assert_eq!(a.config, None);
                assert_eq!(a.paths, [PathBuf::from("-"), PathBuf::from("dir")]);
            }
            c => panic!("{c:?}"),
        }
        assert!(parse(&["scan"]).is_err(), "a path is required");
        assert!(
            parse(&["scan", "-c", "m.yaml", "-l", "l.yaml", "x"]).is_err(),
            "--config and --library conflict"
        );
        match parse(&["scan", "--", "--json"]).unwrap().command {
            Some(Command::Scan(a)) => {
                assert!(!a.json);
                assert_eq!(a.paths, [PathBuf::from("--json")]);
            }
            c => panic!("{c:?}"),
        }
    }
}
