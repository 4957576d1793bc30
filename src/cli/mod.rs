//! The offline commands, `check` and `scan`, and what they share: loading
//! the rules with errors printed where they are, logging to the terminal,
//! and number formatting.
//!
//! Both build the same [`Rules`] the milter builds at start-up, so what
//! they say is what the milter would do with the same files.

pub mod check;
pub mod mbox;
pub mod scan;

use std::path::Path;

use mailward::library::LoadError;
use mailward::{Config, Rules, RulesError};

/// Prints one line on stderr. Unlike `eprintln!`, a stderr that cannot
/// be written (a closed pipe) does not panic: the message is lost, the exit
/// status still tells.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

/// Some work failed (a socket, an unreadable message file).
pub const EXIT_FAILURE: u8 = 1;
/// The command line, the configuration or the library is wrong.
pub const EXIT_USAGE: u8 = 2;

/// Where the rules come from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// A configuration file and the library it names.
    Config(&'a Path),
    /// A library file alone, with the default configuration.
    Library(&'a Path),
}

/// Loads the rules as the milter does at start-up. Errors are printed on
/// stderr as `FILE:LINE:COLUMN: MESSAGE`; `None` then.
pub fn load_rules(source: Source<'_>) -> Option<Rules> {
    let config = match source {
        Source::Config(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                say!("{e}");
                return None;
            }
        },
        Source::Library(path) => Config {
            library: Some(path.to_owned()),
            ..Config::default()
        },
    };
    let config_path = config.path.clone();
    match Rules::build(config, 1) {
        Ok(r) => Some(r),
        Err(RulesError::Library(e)) => {
            say!("{e}");
            if let Some(at) = config_path.as_deref().and_then(|c| library_named_at(c, &e)) {
                say!("{at}: note: the library is named here");
            }
            None
        }
        Err(e) => {
            say!("mailward: {e}");
            None
        }
    }
}

/// `FILE:LINE:COLUMN` of the `library` value in the configuration file,
/// when `e` is about the library file as a whole (it is missing or
/// unreadable): the place to fix is then the configuration. Found by
/// reading the file's lines, as the configuration reader keeps no
/// positions once it has read a value.
fn library_named_at(config: &Path, e: &LoadError) -> Option<String> {
    if e.line != 0 {
        return None;
    }
    let text = std::fs::read_to_string(config).ok()?;
    let (line, column) = top_level_value(&text, "library")?;
    Some(format!("{}:{line}:{column}", config.display()))
}

/// The 1-based line and column (in characters) of the value of the
/// block-style top-level `key`.
fn top_level_value(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, l)| {
        let l = l.strip_prefix('\u{feff}').unwrap_or(l);
        let rest = l.strip_prefix(key)?.trim_start_matches(' ');
        let value = rest.strip_prefix(':')?;
        let skipped = l.len() - value.trim_start_matches(' ').len();
        Some((i + 1, l[..skipped].chars().count() + 1))
    })
}

/// Logging for the offline commands: warnings and errors (such as a
/// category cap naming no library category) on stderr, as
/// `mailward: warning: …`; `RUST_LOG` overrides the level.
pub fn init_logging() {
    use std::io::Write;
    let mut b = env_logger::Builder::new();
    b.filter_level(log::LevelFilter::Warn);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(|f, r| {
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        writeln!(f, "mailward: {level}: {}", r.args())
    });
    let _ = b.try_init();
}

/// A byte count for people: `512 B`, `12.5 KiB`, `3.0 MiB`.
pub fn bytes(n: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10 << 20), "10.0 MiB");
    }

    #[test]
    fn the_library_key_is_found() {
        let text = "listen: inet:127.0.0.1:1\n# library: no\nlibrary:   lib/x.yaml\n";
        assert_eq!(top_level_value(text, "library"), Some((3, 12)));
        assert_eq!(top_level_value("library : x\n", "library"), Some((1, 11)));
        assert_eq!(top_level_value("  library: x\n", "library"), None);
        assert_eq!(top_level_value("libraryx: y\n", "library"), None);
    }
}
