//! The `mailward` command: parses the command line, sets up logging,
//! binds the socket, wires signals (SIGHUP reloads, SIGINT and SIGTERM
//! stop) and hands over to [`mailward::run`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indymilter::EitherListener;
use mailward::config::model::Listen;
use mailward::{Config, Reload};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

const VERSION: &str = env!("CARGO_PKG_VERSION");

const USAGE: &str = "\
Usage: mailward [run] [--config FILE]
       mailward --help | --version

Commands:
  run              serve the milter protocol (the default)

Options:
  -c, --config FILE   the configuration file (default: milter.yaml)
  -h, --help          print this help
  -V, --version       print the version

Signals: SIGHUP reloads the configuration and the library; SIGINT and
SIGTERM stop the milter. RUST_LOG, when set, overrides log.level.
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
enum Command {
    Run { config: PathBuf },
    Help,
    Version,
}

/// Parses the arguments after the program name. Hand-written: one
/// subcommand and three options do not need a parser crate, and the
/// subcommand-first shape leaves room for more subcommands.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|a| !a.starts_with('-')) {
        let sub = args.next().unwrap_or_default();
        if sub != "run" {
            return Err(format!("unknown command `{sub}`"));
        }
    }
    let mut config = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-c" | "--config" => match args.next() {
                Some(v) => config = Some(PathBuf::from(v)),
                None => return Err(format!("`{a}` needs a file")),
            },
            _ => match a.strip_prefix("--config=") {
                Some(v) => config = Some(PathBuf::from(v)),
                None => return Err(format!("unexpected argument `{a}`")),
            },
        }
    }
    Ok(Command::Run {
        config: config.unwrap_or_else(|| PathBuf::from("milter.yaml")),
    })
}

fn main() -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailward: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config_path = match command {
        Command::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("mailward {VERSION}");
            return ExitCode::SUCCESS;
        }
        Command::Run { config } => config,
    };
    init_logging();
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

/// Logs to standard error; the level comes from `RUST_LOG` when set,
/// else from the configuration (applied once it is read).
fn init_logging() {
    let mut b = env_logger::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(spec) => {
            b.parse_filters(&spec);
        }
        Err(_) => {
            // Let everything through the logger's own filter: the level in
            // force is `log::max_level`, which a reload can change.
            b.filter_level(log::LevelFilter::Trace);
        }
    }
    b.init();
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

async fn serve(config: Config) -> ExitCode {
    let listen = config.listen.clone();
    let listener = match bind(&listen, config.socket_mode.0).await {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
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
            return ExitCode::FAILURE;
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
            ExitCode::FAILURE
        }
    }
}

async fn bind(
    listen: &Listen,
    mode: u32,
) -> std::io::Result<EitherListener<TcpListener, UnixListener>> {
    match listen {
        Listen::Inet(addr) => Ok(EitherListener::Tcp(TcpListener::bind(addr).await?)),
        Listen::Unix(path) => {
            remove_stale_socket(path).await?;
            let l = UnixListener::bind(path)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            Ok(EitherListener::Unix(l))
        }
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

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn command_lines() {
        let run = |p: &str| {
            Ok(Command::Run {
                config: PathBuf::from(p),
            })
        };
        assert_eq!(parse(&[]), run("milter.yaml"));
        assert_eq!(parse(&["run"]), run("milter.yaml"));
        assert_eq!(parse(&["run", "--config", "a.yaml"]), run("a.yaml"));
        assert_eq!(parse(&["-c", "b.yaml"]), run("b.yaml"));
        assert_eq!(parse(&["--config=c.yaml"]), run("c.yaml"));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["run", "-V"]), Ok(Command::Version));
        assert!(parse(&["scan"]).is_err());
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["run", "extra"]).is_err());
    }
}
