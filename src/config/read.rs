//! Reading `milter.yaml`: two passes over the YAML text.
//!
//! 1. A generic walk refuses a key given twice in any mapping, pointing at
//!    the second occurrence (derived code would point at the start of the
//!    mapping, and a map of category caps would silently keep the last).
//! 2. The derived model of [`super::model`] reads the values; unknown keys
//!    are refused, and each constrained scalar is checked as it is read.
//!
//! Then the reader checks what spans keys (a library is named) and resolves
//! relative paths against the directory of the file. Errors name the file,
//! line and column (both 1-based; 0 when the error is about the whole
//! file).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

use super::model::{Config, Listen};

/// Largest configuration file read (it is a short hand-written file).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A configuration that could not be read: where, and why.
pub type ConfigError = crate::located::LocatedError;

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::whole(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(ConfigError::whole(path, "not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError::whole(
            path,
            format!("larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| ConfigError::whole(path, e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError::whole(
            path,
            format!(
                "not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut config = from_str(&text, path, base)?;
    config.path = Some(path.to_owned());
    Ok(config)
}

/// Reads configuration text; `name` stands for the file in errors and
/// relative paths are resolved against `base`.
pub fn from_str(text: &str, name: &Path, base: &Path) -> Result<Config, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_norway::from_str::<Walk>(text).map_err(|e| ConfigError::from_yaml(name, e))?;
    let mut config: Config =
        serde_norway::from_str(text).map_err(|e| ConfigError::from_yaml(name, e))?;
    match &config.library {
        None => {
            return Err(ConfigError::whole(
                name,
                "`library` is required: the path of the library file",
            ));
        }
        Some(p) if p.as_os_str().is_empty() => {
            return Err(ConfigError::whole(name, "`library` is empty"));
        }
        Some(p) => config.library = Some(base.join(p)),
    }
    if let Listen::Unix(p) = &config.listen
        && p.is_relative()
    {
        config.listen = Listen::Unix(base.join(p));
    }
    let socket = &config.log.syslog_socket.0;
    if socket.as_os_str().is_empty() {
        return Err(ConfigError::whole(name, "log.syslog_socket is empty"));
    }
    config.log.syslog_socket.0 = base.join(socket);
    if let Some(p) = &config.behavior.records {
        if p.as_os_str().is_empty() {
            return Err(ConfigError::whole(name, "behavior.records is empty"));
        }
        config.behavior.records = Some(base.join(p));
    }
    if let Some(p) = &config.admin.token_file {
        if p.as_os_str().is_empty() {
            return Err(ConfigError::whole(name, "admin.token_file is empty"));
        }
        config.admin.token_file = Some(base.join(p));
    }
    if let Some(l) = &config.metrics.listen
        && !l.0.ip().is_loopback()
        && config.admin.enabled
        && config.admin.token_file.is_none()
    {
        return Err(ConfigError::whole(
            name,
            format!(
                "metrics.listen {l} is not a loopback address: the admin API there needs admin.token_file (or admin.enabled: false)"
            ),
        ));
    }
    crate::behavior::Policy::check(&config.behavior)
        .map_err(|e| ConfigError::whole(name, format!("behavior: {e}")))?;
    Ok(config)
}

// ---- pass 1: duplicate keys ----

/// Any YAML value; refuses a repeated key in any mapping.
struct Walk;

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Walk, D::Error> {
        d.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = Walk;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_str<E>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_unit<E>(self) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_none<E>(self) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Walk, D::Error> {
        Walk::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walk, A::Error> {
        while seq.next_element::<Walk>()?.is_some() {}
        Ok(Walk)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walk, A::Error> {
        let mut seen = HashSet::new();
        while map.next_key_seed(KeySeed(&mut seen))?.is_some() {
            map.next_value::<Walk>()?;
        }
        Ok(Walk)
    }
    fn visit_enum<A: EnumAccess<'de>>(self, _: A) -> Result<Walk, A::Error> {
        Err(de::Error::custom("YAML tags are not used in this file"))
    }
}

/// A mapping key, checked against the keys seen before it.
struct KeySeed<'a>(&'a mut HashSet<String>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.0.insert(v.to_owned()) {
            Ok(())
        } else {
            Err(E::custom(format_args!("duplicate key `{v}`")))
        }
    }
}
