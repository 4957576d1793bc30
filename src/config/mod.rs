//! The milter's configuration file, `milter.yaml` (every key is documented
//! in `docs/config.md`).
//!
//! ```yaml
//! listen: inet:127.0.0.1:8894
//! library: library/library.yaml
//! judge:
//!   reject_score: 10
//!   tempfail_score: 6
//! ```
//!
//! Modules: [`model`] (the sections and keys), `values` (the scalar types,
//! each checked as it is read; re-exported by [`model`]),
//! `read` (the file reader: duplicate and unknown keys, errors with file,
//! line and column, relative paths), `reload` (which settings a reload
//! cannot change).
//!
//! Invariants: a [`Config`] returned by [`Config::load`] names a library
//! (an absolute path, or one relative to the working directory when the
//! configuration file's own path was relative), and every value in it is
//! within its documented bounds.

pub mod behavior;
pub mod model;
mod read;
mod reload;
mod values;

use std::path::Path;

pub use model::Config;
pub use read::ConfigError;
pub use reload::restart_needed;

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        read::load(path)
    }

    /// Reads configuration text; `name` stands for the file in errors and
    /// relative paths are resolved against `base`. The result has no
    /// [`Config::path`], so a reload re-reads only its library.
    pub fn from_yaml_str(text: &str, name: &Path, base: &Path) -> Result<Config, ConfigError> {
        read::from_str(text, name, base)
    }
}

#[cfg(test)]
mod tests;
