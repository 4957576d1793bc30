//! The library file format: YAML with plain-text list includes.
//!
//! ```yaml
//! defaults: { weight: 1, category: spam, match: substring }
//! entries:
//!   - viagra                      # shorthand: just the string
//!   - text: 发票代开
//!     id: zh-invoice
//!     weight: 5
//!     category: fraud
//!     action: reject              # reject | tempfail | quarantine | tag
//!     match: word                 # word | substring
//! include:
//!   - lists/domains.txt           # shorthand: defaults apply
//!   - path: lists/adult.txt
//!     weight: 3
//!     category: adult
//! ```
//!
//! Errors name the file, line and column. The shorthand is read by a
//! hand-written visitor rather than an untagged enum, which would discard
//! both the location and the field name of an error inside a long list.
//! Checks that need the text (empty after normalization, too long) run in
//! that visitor, so their errors carry the entry's own location too.
//!
//! Include files are read as bytes: one string per line, `#` starts a
//! comment line, blank lines are skipped, `\#` at the start stands for a
//! literal `#`. They skip YAML entirely, which is why large lists load
//! fastest from them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::Library;
use super::build::{AddError, Attrs, Builder};
use super::index::{BuildOptions, MAX_LEN};
use super::model::{Action, MatchMode, Origin};
use super::normalize::normalize;

/// A library that could not be loaded: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub path: PathBuf,
    /// 1-based; 0 when the error is about the whole file.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

impl LoadError {
    fn new(path: &Path, line: usize, column: usize, message: impl Into<String>) -> LoadError {
        LoadError {
            path: path.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn from_yaml(path: &Path, e: serde_norway::Error) -> LoadError {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        // serde's messages end with "at line L column C"; the location is
        // already in front.
        let mut msg = e.to_string();
        if let Some(i) = msg.find(" at line ") {
            msg.truncate(i);
        }
        LoadError::new(path, line, column, msg)
    }
}

// ---- the YAML model ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    entries: Vec<EntryItem>,
    #[serde(default)]
    include: Vec<IncludeItem>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    weight: Option<Weight>,
    category: Option<String>,
    action: Option<ActionName>,
    #[serde(rename = "match")]
    mode: Option<ModeName>,
}

/// Optional attributes of an entry or include; unset ones come from
/// `defaults`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EntryFull {
    text: String,
    id: Option<String>,
    weight: Option<Weight>,
    category: Option<String>,
    action: Option<ActionName>,
    #[serde(rename = "match")]
    mode: Option<ModeName>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncludeFull {
    path: String,
    weight: Option<Weight>,
    category: Option<String>,
    action: Option<ActionName>,
    #[serde(rename = "match")]
    mode: Option<ModeName>,
}

/// A weight: any finite number (negative weights lower the score).
#[derive(Clone, Copy)]
struct Weight(f64);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Weight, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Weight;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a finite number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Weight, E> {
                if v.is_finite() {
                    Ok(Weight(v))
                } else {
                    Err(E::custom(format!(
                        "bad weight {v}: expected a finite number"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Weight, E> {
                Ok(Weight(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Weight, E> {
                Ok(Weight(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

struct ActionName(Action);

impl<'de> Deserialize<'de> for ActionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ActionName, D::Error> {
        let s = String::deserialize(d)?;
        Action::parse(&s).map(ActionName).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown action `{s}`, expected one of `reject`, `tempfail`, `quarantine`, `tag`"
            ))
        })
    }
}

struct ModeName(MatchMode);

impl<'de> Deserialize<'de> for ModeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ModeName, D::Error> {
        let s = String::deserialize(d)?;
        MatchMode::parse(&s).map(ModeName).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown match `{s}`, expected `substring` or `word`"
            ))
        })
    }
}

/// An entry: a plain string or a mapping. Validated while it is read, so
/// that its errors carry its location.
struct EntryItem(EntryFull);

fn check_text<E: de::Error>(text: &str) -> Result<(), E> {
    let n = normalize(text);
    if n.is_empty() {
        Err(E::custom(AddError::Empty))
    } else if n.len() > MAX_LEN {
        Err(E::custom(AddError::TooLong(n.len())))
    } else {
        Ok(())
    }
}

impl<'de> Deserialize<'de> for EntryItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EntryItem, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EntryItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a mapping with `text`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EntryItem, E> {
                check_text(v)?;
                Ok(EntryItem(EntryFull {
                    text: v.to_owned(),
                    ..EntryFull::default()
                }))
            }
            // A plain scalar of digits (a phone or QQ number) is read as an
            // integer by YAML; its digits are the string.
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EntryItem, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EntryItem, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EntryItem, A::Error> {
                let full = EntryFull::deserialize(de::value::MapAccessDeserializer::new(map))?;
                check_text(&full.text)?;
                Ok(EntryItem(full))
            }
        }
        d.deserialize_any(V)
    }
}

struct IncludeItem(IncludeFull);

impl<'de> Deserialize<'de> for IncludeItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IncludeItem, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IncludeItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a mapping with `path`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IncludeItem, E> {
                Ok(IncludeItem(IncludeFull {
                    path: v.to_owned(),
                    weight: None,
                    category: None,
                    action: None,
                    mode: None,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IncludeItem, A::Error> {
                IncludeFull::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(IncludeItem)
            }
        }
        d.deserialize_any(V)
    }
}

// ---- loading ----

pub(super) fn load(path: &Path, opts: BuildOptions) -> Result<Library, LoadError> {
    let bytes =
        std::fs::read(path).map_err(|e| LoadError::new(path, 0, 0, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let (line, column) = line_col(&bytes, e.valid_up_to());
        LoadError::new(path, line, column, "not valid UTF-8")
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(text, path, base, opts)
}

pub(super) fn load_str(
    text: &str,
    name: &Path,
    base: &Path,
    opts: BuildOptions,
) -> Result<Library, LoadError> {
    let mut b = Builder::new(opts);
    let source = b.add_source(name.display().to_string());
    // An empty document is an empty library, not an error.
    let model: FileModel = if text.trim().is_empty() {
        FileModel::default()
    } else {
        serde_norway::from_str(text).map_err(|e| LoadError::from_yaml(name, e))?
    };
    let defaults = &model.defaults;
    let attrs_with = |b: &mut Builder,
                      weight: &Option<Weight>,
                      category: &Option<String>,
                      action: &Option<ActionName>,
                      mode: &Option<ModeName>| {
        let category = category
            .as_deref()
            .or(defaults.category.as_deref())
            .unwrap_or("default");
        Attrs {
            weight: weight.or(defaults.weight).map_or(1.0, |w| w.0),
            category: b.category(category),
            action: action.as_ref().or(defaults.action.as_ref()).map(|a| a.0),
            mode: mode
                .as_ref()
                .or(defaults.mode.as_ref())
                .map_or(MatchMode::Substring, |m| m.0),
        }
    };

    // Lines of the list items, for the origins of entries without an id;
    // only trusted when they account for every item.
    let entry_lines =
        Some(block_item_lines(text, "entries")).filter(|l| l.len() == model.entries.len());
    let include_lines =
        Some(block_item_lines(text, "include")).filter(|l| l.len() == model.include.len());

    for (i, EntryItem(e)) in model.entries.iter().enumerate() {
        let attrs = attrs_with(&mut b, &e.weight, &e.category, &e.action, &e.mode);
        let line = entry_lines.as_ref().map_or(0, |l| l[i]);
        b.add(
            &e.text,
            attrs,
            e.id.as_deref(),
            Origin {
                source,
                line: line as u32,
            },
        )
        .map_err(|err| LoadError::new(name, line, 0, err.to_string()))?;
    }
    for (i, IncludeItem(inc)) in model.include.iter().enumerate() {
        let attrs = attrs_with(&mut b, &inc.weight, &inc.category, &inc.action, &inc.mode);
        let path = base.join(&inc.path);
        load_list(&mut b, &path, attrs).map_err(|mut e| {
            if e.line == 0 {
                let at = include_lines.as_ref().map_or(String::new(), |l| {
                    format!(" at {}:{}", name.display(), l[i])
                });
                e.message = format!("{} (included{at})", e.message);
            }
            e
        })?;
    }
    Ok(b.build())
}

/// Adds every string of a plain-text list file.
fn load_list(b: &mut Builder, path: &Path, attrs: Attrs) -> Result<(), LoadError> {
    let bytes =
        std::fs::read(path).map_err(|e| LoadError::new(path, 0, 0, format!("cannot read: {e}")))?;
    let source = b.add_source(path.display().to_string());
    let mut line_no = 0usize;
    for raw in bytes.split(|&c| c == b'\n') {
        line_no += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if line_no == 1 {
            raw.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(raw)
        } else {
            raw
        };
        let line = std::str::from_utf8(raw)
            .map_err(|e| LoadError::new(path, line_no, e.valid_up_to() + 1, "not valid UTF-8"))?;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let text = trimmed
            .strip_prefix('\\')
            .filter(|t| t.starts_with('#'))
            .unwrap_or(trimmed);
        let column = line.len() - trimmed.len() + 1;
        let origin = Origin {
            source,
            line: line_no as u32,
        };
        b.add(text, attrs, None, origin)
            .map_err(|e| LoadError::new(path, line_no, column, e.to_string()))?;
    }
    // A final newline is not an extra line.
    Ok(())
}

/// 1-based line and column of byte `pos`.
fn line_col(bytes: &[u8], pos: usize) -> (usize, usize) {
    let before = &bytes[..pos.min(bytes.len())];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&c| c != b'\n').count() + 1;
    (line, col)
}

/// Lines (1-based) of the items of the block sequence under the top-level
/// `key`. A flow sequence, or any layout this does not follow, gives a
/// count that does not match the parsed items, and the caller then
/// ignores it.
fn block_item_lines(text: &str, key: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut inside = false;
    let mut indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let content = line.trim_start();
        let depth = line.len() - content.len();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if depth == 0 && !content.starts_with('-') {
            // A top-level key: ours starts the block, any other ends it.
            inside = content
                .strip_prefix(key)
                .and_then(|r| r.trim_start().strip_prefix(':'))
                .is_some_and(|r| r.trim().is_empty() || r.trim_start().starts_with('#'));
            indent = None;
            continue;
        }
        if !inside {
            continue;
        }
        let is_item = content == "-" || content.starts_with("- ");
        if is_item && indent.is_none_or(|d| d == depth) {
            indent = Some(depth);
            lines.push(i + 1);
        }
    }
    lines
}

#[cfg(test)]
mod tests;
