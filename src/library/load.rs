//! The library file format: YAML with plain-text list includes (documented
//! for list maintainers in `docs/library.md`).
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
//! Errors name the file, line and column. Every mapping of the file is read
//! by a hand-written visitor rather than derived code or an untagged enum:
//! an untagged enum discards both the location and the field name of an
//! error inside a long list, and derived structs report duplicate keys and
//! bad values at the start of their mapping. Here every check runs while
//! the offending scalar is being read (unknown or repeated key, bad weight,
//! action or match, empty or too long text, missing include file), so the
//! YAML deserializer stamps the error with that scalar's own position.
//!
//! YAML resolves a plain scalar such as `12345`, `+86138…` or `0x1F` to an
//! integer. A shorthand entry that is an integer is taken as the string its
//! author wrote: a second, cheap pass over the document reads those items
//! again as raw strings (it only runs when there is such an item). Floats,
//! booleans and nulls are refused with a hint to quote them.
//!
//! Include files are read as bytes: one string per line, `#` starts a
//! comment line, blank lines are skipped, `\#` at the start stands for a
//! literal `#`. They skip YAML entirely, which is why large lists load
//! fastest from them.
//!
//! Lines are 1-based; columns are 1-based and count characters.

use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Library;
use super::build::{AddError, Attrs, Builder};
use super::index::{BuildOptions, MAX_LEN};
use super::model::{Action, MatchMode, Origin};
use super::normalize::normalize;

/// A library that could not be loaded: where, and why.
pub type LoadError = crate::located::LocatedError;

// ---- the YAML model ----

#[derive(Default)]
struct FileModel {
    defaults: AttrSpec,
    entries: Vec<EntryItem>,
    include: Vec<IncludeItem>,
}

/// Attributes of `defaults`, an entry or an include; unset ones come from
/// `defaults`, then from the built-in defaults.
#[derive(Default)]
struct AttrSpec {
    weight: Option<f64>,
    category: Option<String>,
    action: Option<Action>,
    mode: Option<MatchMode>,
}

struct EntryItem {
    /// Normalized and checked; for an integer shorthand, its decimal form
    /// until the raw text is read back.
    text: String,
    id: Option<String>,
    attrs: AttrSpec,
    /// A shorthand entry that YAML read as an integer.
    integer: bool,
}

struct IncludeItem {
    path: String,
    attrs: AttrSpec,
}

const FILE_KEYS: &[&str] = &["defaults", "entries", "include"];
const DEFAULTS_KEYS: &[&str] = &["weight", "category", "action", "match"];
const ENTRY_KEYS: &[&str] = &["text", "id", "weight", "category", "action", "match"];
const INCLUDE_KEYS: &[&str] = &["path", "weight", "category", "action", "match"];

/// Reads one mapping key: one of `keys`, each at most once per mapping.
/// Checked while the key is read, so the error points at the key.
struct Key<'a> {
    keys: &'static [&'static str],
    seen: &'a mut u32,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = &'static str;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'static str, E> {
        let Some(i) = self.keys.iter().position(|k| *k == v) else {
            let expected = self
                .keys
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>();
            return Err(E::custom(format_args!(
                "unknown key `{v}`, expected one of {}",
                expected.join(", ")
            )));
        };
        if *self.seen & (1 << i) != 0 {
            return Err(E::custom(format_args!("duplicate key `{v}`")));
        }
        *self.seen |= 1 << i;
        Ok(self.keys[i])
    }
}

/// Reads the value of an attribute key into `spec`.
fn read_attr<'de, A: MapAccess<'de>>(
    map: &mut A,
    key: &str,
    spec: &mut AttrSpec,
) -> Result<(), A::Error> {
    match key {
        "weight" => spec.weight = Some(map.next_value_seed(WeightSeed)?),
        "category" => spec.category = Some(map.next_value_seed(NameSeed("category"))?),
        "action" => spec.action = Some(map.next_value_seed(ActionSeed)?),
        "match" => spec.mode = Some(map.next_value_seed(ModeSeed)?),
        _ => {
            return Err(de::Error::custom(format_args!("unexpected key `{key}`")));
        }
    }
    Ok(())
}

/// The top-level mapping; include paths are checked against `base`.
struct FileSeed<'a> {
    base: &'a Path,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = FileModel;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<FileModel, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = FileModel;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping with `defaults`, `entries` and `include`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileModel, A::Error> {
        let mut model = FileModel::default();
        let mut seen = 0;
        let keys = FILE_KEYS;
        while let Some(key) = map.next_key_seed(Key {
            keys,
            seen: &mut seen,
        })? {
            match key {
                "defaults" => model.defaults = map.next_value_seed(DefaultsSeed)?,
                "entries" => model.entries = map.next_value_seed(EntriesSeed)?,
                _ => model.include = map.next_value_seed(IncludesSeed { base: self.base })?,
            }
        }
        Ok(model)
    }
}

struct DefaultsSeed;

impl<'de> DeserializeSeed<'de> for DefaultsSeed {
    type Value = AttrSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AttrSpec, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DefaultsSeed {
    type Value = AttrSpec;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of `weight`, `category`, `action` and `match`")
    }
    /// `defaults:` with nothing after it.
    fn visit_unit<E: de::Error>(self) -> Result<AttrSpec, E> {
        Ok(AttrSpec::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttrSpec, A::Error> {
        let mut spec = AttrSpec::default();
        let mut seen = 0;
        while let Some(key) = map.next_key_seed(Key {
            keys: DEFAULTS_KEYS,
            seen: &mut seen,
        })? {
            read_attr(&mut map, key, &mut spec)?;
        }
        Ok(spec)
    }
}

struct EntriesSeed;

impl<'de> DeserializeSeed<'de> for EntriesSeed {
    type Value = Vec<EntryItem>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<EntryItem>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed {
    type Value = Vec<EntryItem>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of entries")
    }
    /// `entries:` with nothing after it (every item commented out).
    fn visit_unit<E: de::Error>(self) -> Result<Vec<EntryItem>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<EntryItem>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(item) = seq.next_element_seed(EntrySeed)? {
            items.push(item);
        }
        Ok(items)
    }
}

/// One entry: a plain string or a mapping.
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = EntryItem;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EntryItem, D::Error> {
        d.deserialize_any(self)
    }
}

impl EntrySeed {
    fn integer(digits: String) -> EntryItem {
        EntryItem {
            text: digits,
            id: None,
            attrs: AttrSpec::default(),
            integer: true,
        }
    }
}

fn quote_hint<E: de::Error>(what: fmt::Arguments) -> E {
    E::custom(format_args!(
        "this entry is read as {what}, not as a string: put it in quotes"
    ))
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = EntryItem;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or a mapping with `text`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<EntryItem, E> {
        Ok(EntryItem {
            text: checked_text(v)?,
            id: None,
            attrs: AttrSpec::default(),
            integer: false,
        })
    }
    // A plain scalar of digits (a phone or QQ number) is read as an integer
    // by YAML; its raw text is read back later.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<EntryItem, E> {
        Ok(EntrySeed::integer(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<EntryItem, E> {
        Ok(EntrySeed::integer(v.to_string()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<EntryItem, E> {
        Ok(EntrySeed::integer(v.to_string()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<EntryItem, E> {
        Ok(EntrySeed::integer(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<EntryItem, E> {
        Err(quote_hint(format_args!("the number {}", show_f64(v))))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<EntryItem, E> {
        Err(quote_hint(format_args!("the boolean `{v}`")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<EntryItem, E> {
        Err(E::custom(
            "empty entry: an item needs a string or a mapping with `text` (quote \"null\" or \"~\" to mean the word)",
        ))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryItem, A::Error> {
        let mut text = None;
        let mut id = None;
        let mut attrs = AttrSpec::default();
        let mut seen = 0;
        while let Some(key) = map.next_key_seed(Key {
            keys: ENTRY_KEYS,
            seen: &mut seen,
        })? {
            match key {
                "text" => text = Some(map.next_value_seed(TextSeed)?),
                "id" => id = Some(map.next_value_seed(NameSeed("id"))?),
                _ => read_attr(&mut map, key, &mut attrs)?,
            }
        }
        let text = text.ok_or_else(|| de::Error::missing_field("text"))?;
        Ok(EntryItem {
            text,
            id,
            attrs,
            integer: false,
        })
    }
}

/// A float as YAML would write it.
fn show_f64(v: f64) -> String {
    if v.is_nan() {
        ".nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { ".inf" } else { "-.inf" }.into()
    } else {
        v.to_string()
    }
}

/// The normalized form of an entry text, if it is a valid entry.
fn checked_text<E: de::Error>(text: &str) -> Result<String, E> {
    let n = normalize(text);
    if n.is_empty() {
        Err(E::custom(AddError::Empty))
    } else if n.len() > MAX_LEN {
        Err(E::custom(AddError::TooLong(n.len())))
    } else {
        Ok(n)
    }
}

/// The `text` of an entry mapping: any scalar, taken as written.
struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for TextSeed {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        checked_text(v)
    }
}

/// A non-empty name (`id`, `category`): any scalar, taken as written.
struct NameSeed(&'static str);

impl<'de> DeserializeSeed<'de> for NameSeed {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for NameSeed {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a string (the {})", self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.trim().is_empty() {
            Err(E::custom(format_args!("empty {}", self.0)))
        } else {
            Ok(v.to_owned())
        }
    }
}

/// A weight: any finite number (negative weights lower the score).
struct WeightSeed;

impl<'de> DeserializeSeed<'de> for WeightSeed {
    type Value = f64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for WeightSeed {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number (the weight)")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(E::custom(format_args!(
                "bad weight `{}`: expected a finite number",
                show_f64(v)
            )))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        if v.trim().parse::<f64>().is_ok_and(f64::is_finite) {
            Err(E::custom(format_args!(
                "bad weight \"{v}\": a weight is a number, write it without quotes"
            )))
        } else {
            Err(E::custom(format_args!(
                "bad weight `{v}`: expected a finite number"
            )))
        }
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<f64, E> {
        Err(E::custom(format_args!(
            "bad weight `{v}`: expected a finite number"
        )))
    }
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Err(E::custom("missing weight: expected a finite number"))
    }
}

struct ActionSeed;

impl<'de> DeserializeSeed<'de> for ActionSeed {
    type Value = Action;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Action, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for ActionSeed {
    type Value = Action;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an action")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Action, E> {
        Action::parse(v).ok_or_else(|| {
            E::custom(format_args!(
                "unknown action `{v}`, expected one of `reject`, `tempfail`, `quarantine`, `tag`"
            ))
        })
    }
}

struct ModeSeed;

impl<'de> DeserializeSeed<'de> for ModeSeed {
    type Value = MatchMode;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MatchMode, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for ModeSeed {
    type Value = MatchMode;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a match mode")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<MatchMode, E> {
        MatchMode::parse(v).ok_or_else(|| {
            E::custom(format_args!(
                "unknown match `{v}`, expected `substring` or `word`"
            ))
        })
    }
}

struct IncludesSeed<'a> {
    base: &'a Path,
}

impl<'de> DeserializeSeed<'de> for IncludesSeed<'_> {
    type Value = Vec<IncludeItem>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<IncludeItem>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IncludesSeed<'_> {
    type Value = Vec<IncludeItem>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of include files")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<IncludeItem>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<IncludeItem>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(IncludeSeed { base: self.base })? {
            items.push(item);
        }
        Ok(items)
    }
}

/// One include: a path or a mapping with `path`.
struct IncludeSeed<'a> {
    base: &'a Path,
}

impl<'de> DeserializeSeed<'de> for IncludeSeed<'_> {
    type Value = IncludeItem;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<IncludeItem, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IncludeSeed<'_> {
    type Value = IncludeItem;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a path or a mapping with `path`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<IncludeItem, E> {
        Ok(IncludeItem {
            path: PathSeed { base: self.base }.visit_str(v)?,
            attrs: AttrSpec::default(),
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IncludeItem, A::Error> {
        let mut path = None;
        let mut attrs = AttrSpec::default();
        let mut seen = 0;
        while let Some(key) = map.next_key_seed(Key {
            keys: INCLUDE_KEYS,
            seen: &mut seen,
        })? {
            match key {
                "path" => path = Some(map.next_value_seed(PathSeed { base: self.base })?),
                _ => read_attr(&mut map, key, &mut attrs)?,
            }
        }
        let path = path.ok_or_else(|| de::Error::missing_field("path"))?;
        Ok(IncludeItem { path, attrs })
    }
}

/// An include path, relative to the library file. That the file exists is
/// checked here, so that a missing one is reported where it is named.
struct PathSeed<'a> {
    base: &'a Path,
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for PathSeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a path")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        if v.trim().is_empty() {
            return Err(E::custom("empty include path"));
        }
        match std::fs::metadata(self.base.join(v)) {
            Ok(m) if m.is_dir() => Err(E::custom(format_args!(
                "cannot read include file `{v}`: it is a directory"
            ))),
            // A device or a pipe could block or never end.
            Ok(m) if !m.is_file() => Err(E::custom(format_args!(
                "cannot read include file `{v}`: not a regular file"
            ))),
            Ok(_) => Ok(v.to_owned()),
            Err(e) => Err(E::custom(format_args!(
                "cannot read include file `{v}`: {e}"
            ))),
        }
    }
}

/// The raw text of the entries at the `wanted` positions, read from the
/// source as strings (for shorthand entries YAML resolved to integers).
fn raw_entry_texts(
    text: &str,
    wanted: &[bool],
) -> Result<Vec<Option<String>>, serde_norway::Error> {
    struct Top<'a>(&'a [bool]);
    impl<'de> DeserializeSeed<'de> for Top<'_> {
        type Value = Vec<Option<String>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Top<'_> {
        type Value = Vec<Option<String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == "entries" {
                    out = map.next_value_seed(Items(self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    struct Items<'a>(&'a [bool]);
    impl<'de> DeserializeSeed<'de> for Items<'_> {
        type Value = Vec<Option<String>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Items<'_> {
        type Value = Vec<Option<String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(self.0.len());
            for &want in self.0 {
                let item = if want {
                    seq.next_element::<String>()?
                } else {
                    seq.next_element::<IgnoredAny>()?.map(|_| String::new())
                };
                match item {
                    Some(s) => out.push(want.then_some(s)),
                    None => break,
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }
    Top(wanted).deserialize(serde_norway::Deserializer::from_str(text))
}

// ---- loading ----

pub(super) fn load(path: &Path, opts: BuildOptions) -> Result<Library, LoadError> {
    let bytes =
        std::fs::read(path).map_err(|e| LoadError::new(path, 0, 0, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let (line, column) = line_col(&bytes, e.valid_up_to());
        LoadError::new(path, line, column, utf8_message(&bytes, &e))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(text, path, base, opts)
}

fn utf8_message(bytes: &[u8], e: &std::str::Utf8Error) -> String {
    match bytes.get(e.valid_up_to()) {
        Some(b) => format!("not valid UTF-8 (byte 0x{b:02X})"),
        None => "not valid UTF-8".to_owned(),
    }
}

pub(super) fn load_str(
    text: &str,
    name: &Path,
    base: &Path,
    opts: BuildOptions,
) -> Result<Library, LoadError> {
    // A byte order mark is not part of the first line.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut b = Builder::new(opts);
    let source = b.add_source(name.display().to_string());
    // An empty document is an empty library, not an error.
    let mut model = if text.trim().is_empty() {
        FileModel::default()
    } else {
        FileSeed { base }
            .deserialize(serde_norway::Deserializer::from_str(text))
            .map_err(|e| tab_hint(LoadError::from_yaml(name, e), text))?
    };

    // Lines of the list items, for the origins of entries without an id;
    // only trusted when they account for every item.
    let [entry_lines, include_lines] = block_item_lines(text, ["entries", "include"]);
    let entry_lines = Some(entry_lines).filter(|l| l.len() == model.entries.len());
    let include_lines = Some(include_lines).filter(|l| l.len() == model.include.len());

    // Integer shorthands: their text is what the author wrote.
    let wanted: Vec<bool> = model.entries.iter().map(|e| e.integer).collect();
    if wanted.contains(&true) {
        let raw = raw_entry_texts(text, &wanted).map_err(|e| LoadError::from_yaml(name, e))?;
        for (e, raw) in model.entries.iter_mut().zip(raw) {
            if let Some(raw) = raw {
                e.text = normalize(&raw);
            }
        }
    }

    let defaults = &model.defaults;
    let attrs_of = |b: &mut Builder, spec: &AttrSpec| Attrs {
        weight: spec.weight.or(defaults.weight).unwrap_or(1.0),
        category: b.category(
            spec.category
                .as_deref()
                .or(defaults.category.as_deref())
                .unwrap_or("default"),
        ),
        action: spec.action.or(defaults.action),
        mode: spec.mode.or(defaults.mode).unwrap_or(MatchMode::Substring),
    };

    for (i, e) in model.entries.iter().enumerate() {
        let attrs = attrs_of(&mut b, &e.attrs);
        let line = entry_lines.as_ref().map_or(0, |l| l[i]);
        let origin = Origin {
            source,
            line: line as u32,
        };
        b.add_normalized(&e.text, attrs, e.id.as_deref(), origin)
            .map_err(|err| LoadError::new(name, line, 0, err.to_string()))?;
    }
    for (i, inc) in model.include.iter().enumerate() {
        let attrs = attrs_of(&mut b, &inc.attrs);
        let path = base.join(&inc.path);
        let line = include_lines.as_ref().map_or(0, |l| l[i]);
        load_list(&mut b, &path, attrs).map_err(|e| included_from(e, name, line))?;
    }
    Ok(b.build())
}

/// Names the include item (`name`, `line`; 0 if unknown) in an error about
/// a whole include file (one that could not be read after all).
fn included_from(mut e: LoadError, name: &Path, line: usize) -> LoadError {
    if e.line == 0 {
        let at = if line > 0 {
            format!(" at {}:{line}", name.display())
        } else {
            String::new()
        };
        e.message = format!("{} (included{at})", e.message);
    }
    e
}

/// YAML does not allow tabs for indentation, and its parser only says it
/// found a character that cannot start a token: say which.
fn tab_hint(mut e: LoadError, text: &str) -> LoadError {
    let at = text
        .lines()
        .nth(e.line.wrapping_sub(1))
        .and_then(|l| l.chars().nth(e.column.wrapping_sub(1)));
    if at == Some('\t') {
        e.message.push_str(" (a tab: indent with spaces)");
    }
    e
}

/// Adds every string of a plain-text list file.
fn load_list(b: &mut Builder, path: &Path, attrs: Attrs) -> Result<(), LoadError> {
    let bytes =
        std::fs::read(path).map_err(|e| LoadError::new(path, 0, 0, format!("cannot read: {e}")))?;
    let source = b.add_source(path.display().to_string());
    let bytes = bytes.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(&bytes);
    // A final newline does not start an extra line (and an empty last line
    // would be skipped anyway).
    for (i, raw) in bytes.split(|&c| c == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|e| {
            let column = String::from_utf8_lossy(&raw[..e.valid_up_to()])
                .chars()
                .count()
                + 1;
            LoadError::new(path, line_no, column, utf8_message(raw, &e))
        })?;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let text = trimmed
            .strip_prefix('\\')
            .filter(|t| t.starts_with('#'))
            .unwrap_or(trimmed);
        let origin = Origin {
            source,
            line: line_no as u32,
        };
        b.add(text, attrs, None, origin).map_err(|e| {
            let column = line[..line.len() - trimmed.len()].chars().count() + 1;
            LoadError::new(path, line_no, column, e.to_string())
        })?;
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte `pos`, which ends a
/// valid UTF-8 prefix of `bytes`.
fn line_col(bytes: &[u8], pos: usize) -> (usize, usize) {
    let before = &bytes[..pos.min(bytes.len())];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, col)
}

/// Lines (1-based) of the items of the block sequence under each
/// top-level key of `keys`, in one pass over the text. A flow sequence, or
/// any layout this does not follow, gives a count that does not match the
/// parsed items, and the caller then ignores it.
fn block_item_lines<const N: usize>(text: &str, keys: [&str; N]) -> [Vec<usize>; N] {
    let mut lines: [Vec<usize>; N] = std::array::from_fn(|_| Vec::new());
    // The key whose block the line is in, and the depth of its items.
    let mut inside: Option<usize> = None;
    let mut indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        let depth = line.len() - content.len();
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        if depth == 0 && !content.starts_with('-') {
            // A top-level key: one of ours starts its block, any other
            // ends the block.
            inside = keys.iter().position(|key| {
                content
                    .strip_prefix(key)
                    .and_then(|r| r.trim_start().strip_prefix(':'))
                    .is_some_and(|r| r.trim().is_empty() || r.trim_start().starts_with('#'))
            });
            indent = None;
            continue;
        }
        let Some(k) = inside else {
            continue;
        };
        let is_item = content == "-" || content.starts_with("- ") || content.starts_with("-\t");
        if is_item && indent.is_none_or(|d| d == depth) {
            indent = Some(depth);
            lines[k].push(i + 1);
        }
    }
    lines
}

#[cfg(test)]
mod tests;
