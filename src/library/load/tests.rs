//! Tests of the library file format: every error case with its exact
//! location, includes, duplicate merging, ids, and the shipped example.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;
use crate::library::{Entry, MAX_LEN};

// ---- helpers ----

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mailward-load-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `name` (with its parent directories) and returns its path.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads YAML text named `lib.yaml`, includes relative to `base`.
fn yaml_in(text: &str, base: &Path) -> Result<Library, LoadError> {
    Library::from_yaml_str(text, Path::new("lib.yaml"), base)
}

fn yaml(text: &str) -> Result<Library, LoadError> {
    yaml_in(text, Path::new("."))
}

fn lib(text: &str) -> Library {
    yaml(text).unwrap_or_else(|e| panic!("{e}"))
}

trait Failed {
    /// The error of a load that must fail.
    fn error(self) -> LoadError;
}

impl Failed for Result<Library, LoadError> {
    #[track_caller]
    fn error(self) -> LoadError {
        match self {
            Ok(l) => panic!("loaded {} entries, expected an error", l.len()),
            Err(e) => e,
        }
    }
}

fn err(text: &str) -> LoadError {
    match yaml(text) {
        Ok(_) => panic!("loaded, expected an error:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the location and that the message contains every needle.
#[track_caller]
fn check(e: &LoadError, line: usize, column: usize, needles: &[&str]) {
    assert_eq!(
        (e.line, e.column),
        (line, column),
        "wrong location in `{e}`"
    );
    for n in needles {
        assert!(e.message.contains(n), "`{e}` does not mention `{n}`");
    }
    // The location is not repeated in the message.
    assert!(
        !e.message.contains(&format!("line {line} column {column}")),
        "location repeated in `{e}`"
    );
}

fn find<'a>(lib: &'a Library, text: &str) -> Entry<'a> {
    lib.entries().find(|e| e.text() == text).unwrap_or_else(|| {
        panic!(
            "no entry `{text}` in {:?}",
            lib.entries().collect::<Vec<_>>()
        )
    })
}

fn texts(lib: &Library) -> Vec<String> {
    let mut t: Vec<String> = lib.entries().map(|e| e.text()).collect();
    t.sort();
    t
}

fn ids(e: Entry<'_>) -> Vec<String> {
    e.explicit_ids().map(str::to_owned).collect()
}

// ---- the format ----

#[test]
fn display_is_file_line_column_message() {
    let e = LoadError::new(Path::new("a/lib.yaml"), 3, 7, "boom");
    assert_eq!(e.to_string(), "a/lib.yaml:3:7: boom");
    let e = LoadError::new(Path::new("lib.yaml"), 3, 0, "boom");
    assert_eq!(e.to_string(), "lib.yaml:3: boom");
    let e = LoadError::new(Path::new("lib.yaml"), 0, 0, "boom");
    assert_eq!(e.to_string(), "lib.yaml: boom");
    let e = err("entries:\n  - text: a\n    colour: red\n");
    assert_eq!(
        e.to_string(),
        "lib.yaml:3:5: entries[0]: unknown key `colour`, expected one of `text`, `id`, \
         `weight`, `category`, `action`, `match`"
    );
}

#[test]
fn full_entries_shorthand_and_defaults() {
    let l = lib("\
defaults:
  weight: 2
  category: spam
  action: tag
  match: word
entries:
  - Viagra
  - text: 发票代开
    id: zh-invoice
    weight: 5.5
    category: fraud
    action: reject
    match: substring
  - text: cheap
    weight: -1
");
    assert_eq!(l.len(), 3);
    let v = find(&l, "viagra");
    assert_eq!(
        (v.weight(), v.category(), v.action(), v.mode()),
        (2.0, "spam", Some(Action::Tag), MatchMode::Word)
    );
    let z = find(&l, "发票代开");
    assert_eq!(
        (z.weight(), z.category(), z.action(), z.mode()),
        (5.5, "fraud", Some(Action::Reject), MatchMode::Substring)
    );
    assert_eq!(z.id(), "zh-invoice");
    let c = find(&l, "cheap");
    assert_eq!((c.weight(), c.category()), (-1.0, "spam"));
}

#[test]
fn built_in_defaults() {
    let l = lib("entries:\n  - a\n");
    let a = find(&l, "a");
    assert_eq!(
        (a.weight(), a.category(), a.action(), a.mode()),
        (1.0, "default", None, MatchMode::Substring)
    );
}

#[test]
fn every_action_and_match_value() {
    for a in Action::ALL {
        let l = lib(&format!("entries:\n  - text: x\n    action: {a}\n"));
        assert_eq!(find(&l, "x").action(), Some(a));
    }
    for m in [MatchMode::Word, MatchMode::Substring] {
        let l = lib(&format!(
            "entries:\n  - text: x\n    match: {}\n",
            m.as_str()
        ));
        assert_eq!(find(&l, "x").mode(), m);
    }
}

#[test]
fn empty_documents_are_empty_libraries() {
    for text in [
        "",
        "\n\n",
        "# nothing yet\n",
        "\u{FEFF}",
        "entries:\n",
        "entries:\n  # - commented out\ninclude:\ndefaults:\n",
        "entries: []\ninclude: []\ndefaults: {}\n",
        "{}",
    ] {
        let l = yaml(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(l.is_empty(), "{text:?}");
    }
}

#[test]
fn byte_order_mark_is_ignored() {
    let l = lib("\u{FEFF}entries:\n  - a\n");
    assert_eq!(find(&l, "a").id(), "lib.yaml:2");
}

#[test]
fn flow_style_is_accepted() {
    let l = lib("{entries: [a, {text: b, weight: 3}], defaults: {category: c}}");
    assert_eq!(texts(&l), ["a", "b"]);
    assert_eq!(find(&l, "b").weight(), 3.0);
    assert_eq!(find(&l, "a").category(), "c");
}

#[test]
fn anchors_and_aliases() {
    let l = lib("entries:\n  - &x foo\n  - *x\n  - text: *x\n    weight: 4\n");
    assert_eq!(l.len(), 1);
    assert_eq!(find(&l, "foo").weight(), 4.0);
    assert_eq!(l.stats().merged_duplicates, 2);
}

// ---- shorthand scalars ----

#[test]
fn integers_are_strings_as_written() {
    let l = lib("\
entries:
  - 12345678
  - +8613800138000
  - 0x1F
  - 0o17
  - 0b101
  - -0
  - -42
  - 007
  - 123456789012345678901234567890
  - text: 99
  - plain
");
    assert_eq!(
        texts(&l),
        [
            "+8613800138000",
            "-0",
            "-42",
            "007",
            "0b101",
            "0o17",
            "0x1f",
            "12345678",
            "123456789012345678901234567890",
            "99",
            "plain",
        ]
    );
    // Their ids are still their lines.
    assert_eq!(find(&l, "0x1f").id(), "lib.yaml:4");
}

#[test]
fn integers_in_flow_lists_and_aliases() {
    let l = lib("defaults: {weight: 3}\nentries: [+1, &n 0x10, *n, {text: x}]\n");
    assert_eq!(texts(&l), ["+1", "0x10", "x"]);
    assert_eq!(l.stats().merged_duplicates, 1);
}

#[test]
fn floats_booleans_and_nulls_must_be_quoted() {
    let e = err("entries:\n  - a\n  - 3.14\n");
    check(
        &e,
        3,
        5,
        &["entries[1]", "the number 3.14", "put it in quotes"],
    );
    let e = err("entries:\n  - 1e3\n");
    check(&e, 2, 5, &["the number 1000", "quotes"]);
    let e = err("entries:\n  - .nan\n");
    check(&e, 2, 5, &["the number .nan", "quotes"]);
    let e = err("entries:\n  - a\n  -   true\n");
    check(&e, 3, 7, &["the boolean `true`", "quotes"]);
    let e = err("entries:\n  - FALSE\n");
    check(&e, 2, 5, &["the boolean `false`", "quotes"]);
    let e = err("entries:\n  - ~\n");
    check(&e, 2, 5, &["empty entry"]);
    let e = err("entries:\n  - a\n  -\n  - b\n");
    check(&e, 3, 4, &["entries[1]", "empty entry"]);
    // Quoted, they are strings.
    let l = lib("entries:\n  - \"3.14\"\n  - 'true'\n  - \"~\"\n  - text: 2.5\n");
    assert_eq!(texts(&l), ["2.5", "3.14", "true", "~"]);
}

#[test]
fn lists_and_nested_values_are_refused() {
    let e = err("entries:\n  - [a, b]\n");
    check(
        &e,
        2,
        5,
        &[
            "invalid type: sequence",
            "a string or a mapping with `text`",
        ],
    );
    let e = err("entries:\n  - text: [a]\n");
    check(&e, 2, 11, &["entries[0].text", "invalid type: sequence"]);
    let e = err("entries: a\n");
    check(&e, 1, 10, &["a list of entries"]);
    let e = err("- a\n- b\n");
    check(
        &e,
        1,
        1,
        &["expected a mapping with `defaults`, `entries` and `include`"],
    );
    let e = err("entries:\n  - id: x\n    weight: 2\n");
    check(&e, 2, 5, &["entries[0]", "missing field `text`"]);
    let e = err("include:\n  - weight: 2\n");
    check(&e, 2, 5, &["include[0]", "missing field `path`"]);
}

// ---- error locations ----

/// 1000 entries alternating shorthand and mappings (of 1 to 3 lines); one
/// of them carries the fault. Returns the text and the fault's line.
fn long_list(bad: usize, fault: &str) -> (String, usize) {
    let mut text = String::from("# a long list\ndefaults:\n  weight: 2\nentries:\n");
    let mut line = 5;
    let mut at = 0;
    for i in 0..1000 {
        if i == bad {
            at = line;
            text.push_str(fault);
            line += fault.matches('\n').count();
            continue;
        }
        let n = match i % 4 {
            0 => {
                writeln!(text, "  - word{i}").unwrap();
                1
            }
            1 => {
                writeln!(text, "  - text: 词{i}\n    weight: 3").unwrap();
                2
            }
            2 => {
                writeln!(text, "  # comment\n  - 'quoted {i}'").unwrap();
                2
            }
            _ => {
                writeln!(text, "  - text: t{i}\n    id: id{i}\n    match: word").unwrap();
                3
            }
        };
        line += n;
    }
    (text, at)
}

#[test]
fn unknown_key_deep_in_a_long_list_is_reported_at_its_own_line() {
    let (text, at) = long_list(499, "  - text: bad\n    weight: 1\n    colour: red\n");
    assert!(at > 1000, "the fault is deep in the file (line {at})");
    let e = err(&text);
    check(
        &e,
        at + 2,
        5,
        &[
            "entries[499]",
            "unknown key `colour`",
            "expected one of `text`",
        ],
    );
    // The same list without the fault loads, with line ids.
    let (good, at) = long_list(499, "  - fine\n");
    let l = lib(&good);
    assert_eq!(l.len(), 1000);
    assert_eq!(find(&l, "fine").id(), format!("lib.yaml:{at}"));
}

#[test]
fn shorthand_faults_deep_in_a_long_list_are_reported_at_their_own_line() {
    for (fault, column, needle) in [
        ("  - 2.5\n", 5, "the number 2.5"),
        ("  - \"\u{00AD}\"\n", 5, "empty after normalization"),
        ("  - {text: x, wight: 1}\n", 15, "unknown key `wight`"),
        ("  - text: x\n    weight: heavy\n", 13, "bad weight `heavy`"),
    ] {
        let (text, at) = long_list(700, fault);
        let line = at + fault.matches('\n').count() - 1;
        let e = err(&text);
        check(&e, line, column, &["entries[700]", needle]);
    }
}

#[test]
fn unknown_keys() {
    let e = err("entries: []\nincludes:\n  - x\n");
    check(
        &e,
        2,
        1,
        &["unknown key `includes`", "`defaults`, `entries`, `include`"],
    );
    let e = err("defaults:\n  weight: 1\n  wieght: 2\n");
    check(&e, 3, 3, &["defaults", "unknown key `wieght`", "`weight`"]);
    let e = err("entries:\n  - a\n  - text: b\n    catgory: x\n");
    check(&e, 4, 5, &["entries[1]", "unknown key `catgory`"]);
    let dir = TempDir::new();
    dir.write("x.txt", "a\n");
    let e = yaml_in(
        "include:\n  - x.txt\n  - path: x.txt\n    txt: 1\n",
        dir.path(),
    )
    .error();
    check(&e, 4, 5, &["include[1]", "unknown key `txt`", "`path`"]);
    // A non-string key.
    let e = err("entries:\n  - text: a\n    1: b\n");
    check(&e, 3, 5, &["unknown key `1`"]);
}

#[test]
fn duplicate_keys_point_at_the_second_one() {
    let e = err("entries:\n  - a\ndefaults: {}\nentries:\n  - b\n");
    check(&e, 4, 1, &["duplicate key `entries`"]);
    let e = err("defaults:\n  category: a\n  category: b\n");
    check(&e, 3, 3, &["defaults", "duplicate key `category`"]);
    let e = err("entries:\n  - text: a\n    weight: 1\n    weight: 2\n");
    check(&e, 4, 5, &["entries[0]", "duplicate key `weight`"]);
    let e = err("entries:\n  - {text: a, text: b}\n");
    check(&e, 2, 15, &["duplicate key `text`"]);
    let dir = TempDir::new();
    dir.write("x.txt", "a\n");
    let e = yaml_in("include:\n  - path: x.txt\n    path: x.txt\n", dir.path()).error();
    check(&e, 3, 5, &["include[0]", "duplicate key `path`"]);
}

#[test]
fn yaml_syntax_errors() {
    let e = err("entries:\n  - a\n   b: c\n");
    check(&e, 3, 5, &["mapping values are not allowed"]);
    let e = err("entries:\n  - \"unterminated\n");
    check(&e, 3, 1, &["found unexpected end of stream"]);
    let e = err("entries:\n  - text: a\n  weight: 1\n");
    check(
        &e,
        3,
        3,
        &[
            "did not find expected '-' indicator",
            "while parsing a block collection",
        ],
    );
    // The context of a parser error keeps its own location.
    let e = err("entries: [a, b\nfoo: 1\n");
    check(
        &e,
        2,
        4,
        &[
            "did not find expected ',' or ']'",
            "while parsing a flow sequence at line 1 column 10",
        ],
    );
    let e = err("entries:\n  - \"a\\q\"\n");
    check(&e, 2, 7, &["found unknown escape character"]);
    let e = err("entries:\n  - @x\n");
    check(&e, 2, 5, &["cannot start any token"]);
    let e = err("entries:\n\t- a\n");
    check(&e, 2, 1, &["tab"]);
    let e = err("entries:\n  - *nowhere\n");
    check(&e, 2, 5, &["unknown anchor"]);
    // About the whole file: no location.
    let e = err("entries: []\n---\nentries: []\n");
    check(&e, 0, 0, &["more than one document"]);
    assert!(e.to_string().starts_with("lib.yaml: deserializing"), "{e}");
}

#[test]
fn columns_count_characters() {
    let e = err("entries:\n  - {text: 中文词, colour: 1}\n");
    check(&e, 2, 17, &["unknown key `colour`"]);
}

#[test]
fn empty_after_normalization() {
    let e = err("entries:\n  - a\n  - \"   \"\n");
    check(&e, 3, 5, &["entries[1]", "empty after normalization"]);
    let e = err("entries:\n  - \"\\u00AD\"\n");
    check(&e, 2, 5, &["empty after normalization"]);
    let e = err("entries:\n  - \"\u{200B}\u{FEFF}\u{3000}\"\n");
    check(&e, 2, 5, &["empty after normalization"]);
    let e = err("entries:\n  - text: \"\\t\\n\"\n    weight: 2\n");
    check(&e, 2, 11, &["entries[0].text", "empty after normalization"]);
    let e = err("entries:\n  - text:\n    weight: 2\n");
    check(&e, 2, 10, &["empty after normalization"]);
    let e = err("entries:\n  - \"\"\n");
    check(&e, 2, 5, &["empty after normalization"]);
}

#[test]
fn too_long_strings() {
    let ok = "a".repeat(MAX_LEN);
    assert_eq!(lib(&format!("entries:\n  - {ok}\n")).len(), 1);
    let long = "a".repeat(MAX_LEN + 1);
    let e = err(&format!("entries:\n  - x\n  - {long}\n"));
    check(&e, 3, 5, &["1025 bytes", "at most 1024"]);
    let e = err(&format!("entries:\n  - text: {long}\n"));
    check(&e, 2, 11, &["entries[0].text", "1025 bytes"]);
    // Counted in bytes after normalization: 342 CJK characters are 1026
    // bytes; runs of spaces collapse first.
    let cjk = "字".repeat(342);
    let e = err(&format!("entries:\n  - {cjk}\n"));
    check(&e, 2, 5, &["1026 bytes"]);
    let spaced = format!("a{}b", " ".repeat(3000));
    assert_eq!(lib(&format!("entries:\n  - \"{spaced}\"\n")).len(), 1);
}

#[test]
fn bad_weights() {
    for (value, needle) in [
        ("'5'", "write it without quotes"),
        ("\"2.5\"", "write it without quotes"),
        ("heavy", "bad weight `heavy`"),
        (".nan", "bad weight `.nan`"),
        (".inf", "bad weight `.inf`"),
        ("-.inf", "bad weight `-.inf`"),
        ("1e400", "bad weight `1e400`"),
        ("true", "bad weight `true`"),
        ("~", "missing weight"),
        ("[1]", "invalid type: sequence"),
    ] {
        let e = err(&format!("entries:\n  - text: a\n    weight: {value}\n"));
        check(&e, 3, 13, &["entries[0].weight", needle]);
        let e = err(&format!("defaults:\n  weight: {value}\n"));
        check(&e, 2, 11, &["defaults.weight", needle]);
    }
    let dir = TempDir::new();
    dir.write("x.txt", "a\n");
    let e = yaml_in("include:\n  - path: x.txt\n    weight: .NaN\n", dir.path()).error();
    check(&e, 3, 13, &["include[0].weight", "bad weight `.nan`"]);
    // Integers, floats and negatives are fine.
    let l = lib("entries:\n  - {text: a, weight: 3}\n  - {text: b, weight: -0.5}\n");
    assert_eq!(find(&l, "b").weight(), -0.5);
}

#[test]
fn bad_actions_and_matches() {
    let e = err("entries:\n  - text: a\n    action: Reject\n");
    check(
        &e,
        3,
        13,
        &[
            "entries[0].action",
            "unknown action `Reject`",
            "`reject`, `tempfail`, `quarantine`, `tag`",
        ],
    );
    let e = err("defaults:\n  action: drop\n");
    check(&e, 2, 11, &["unknown action `drop`"]);
    let e = err("entries:\n  - text: a\n    match: exact\n");
    check(
        &e,
        3,
        12,
        &[
            "entries[0].match",
            "unknown match `exact`",
            "`substring` or `word`",
        ],
    );
    let e = err("defaults: {match: 1}\n");
    check(&e, 1, 19, &["unknown match `1`"]);
    let dir = TempDir::new();
    dir.write("x.txt", "a\n");
    let e = yaml_in(
        "include:\n  - path: x.txt\n    action: bounce\n",
        dir.path(),
    )
    .error();
    check(&e, 3, 13, &["include[0].action", "unknown action `bounce`"]);
    let e = yaml_in("include:\n  - {path: x.txt, match: words}\n", dir.path()).error();
    check(&e, 2, 26, &["unknown match `words`"]);
}

#[test]
fn empty_names() {
    let e = err("entries:\n  - text: a\n    id: ''\n");
    check(&e, 3, 9, &["empty id"]);
    let e = err("defaults:\n  category: \" \"\n");
    check(&e, 2, 13, &["empty category"]);
}

#[test]
fn invalid_utf8_in_the_library_file() {
    let dir = TempDir::new();
    let path = dir.write("lib.yaml", b"entries:\n  - ok\n  - \xE5\x8F\x91\xFF\n");
    let e = Library::load(&path).error();
    assert_eq!(e.path, path);
    // Column 6: after two spaces, the dash, a space and one CJK character.
    check(&e, 3, 6, &["not valid UTF-8", "0xFF"]);
    let path = dir.write("first.yaml", b"\xC0");
    check(&Library::load(&path).error(), 1, 1, &["not valid UTF-8"]);
    // A truncated sequence at the very end.
    let path = dir.write("end.yaml", b"entries:\n  - \xE5\x8F");
    check(&Library::load(&path).error(), 2, 5, &["not valid UTF-8"]);
}

#[test]
fn missing_library_file() {
    let dir = TempDir::new();
    let path = dir.path().join("none.yaml");
    let e = Library::load(&path).error();
    assert_eq!((e.path.as_path(), e.line), (path.as_path(), 0));
    assert!(e.message.starts_with("cannot read"), "{e}");
}

// ---- includes ----

#[test]
fn include_files_comments_blanks_and_escapes() {
    let dir = TempDir::new();
    dir.write(
        "lists/a.txt",
        "\u{FEFF}# a comment\nfirst\n\n   \n  # an indented comment\n  Second  Line \r\n\\#hashtag\n\\not-a-comment\n  \\# indented escape\nlast without newline",
    );
    let lib_path = dir.write("lib.yaml", "include:\n  - lists/a.txt\n");
    let l = Library::load(&lib_path).unwrap();
    assert_eq!(
        texts(&l),
        [
            "# indented escape",
            "#hashtag",
            "\\not-a-comment",
            "first",
            "last without newline",
            "second line",
        ]
    );
    let list = dir.path().join("lists/a.txt").display().to_string();
    assert_eq!(find(&l, "first").id(), format!("{list}:2"));
    assert_eq!(find(&l, "second line").id(), format!("{list}:6"));
    assert_eq!(find(&l, "#hashtag").id(), format!("{list}:7"));
    assert_eq!(find(&l, "last without newline").id(), format!("{list}:10"));
}

#[test]
fn include_attributes_and_defaults() {
    let dir = TempDir::new();
    dir.write("lists/domains.txt", "spam.example\n");
    dir.write("lists/zh.txt", "代开发票\n");
    dir.write("lists/plain.txt", "plain\n");
    let text = "\
defaults: {weight: 2, category: spam, action: tag}
include:
  - lists/plain.txt
  - path: lists/domains.txt
    weight: 8
    category: domains
    action: reject
    match: word
  - {path: lists/zh.txt, category: zh, action: quarantine}
";
    let l = yaml_in(text, dir.path()).unwrap();
    let p = find(&l, "plain");
    assert_eq!(
        (p.weight(), p.category(), p.action(), p.mode()),
        (2.0, "spam", Some(Action::Tag), MatchMode::Substring)
    );
    let d = find(&l, "spam.example");
    assert_eq!(
        (d.weight(), d.category(), d.action(), d.mode()),
        (8.0, "domains", Some(Action::Reject), MatchMode::Word)
    );
    let z = find(&l, "代开发票");
    assert_eq!(
        (z.weight(), z.category(), z.action()),
        (2.0, "zh", Some(Action::Quarantine))
    );
}

#[test]
fn include_paths_are_relative_to_the_library_file() {
    let dir = TempDir::new();
    dir.write("conf/lists/x.txt", "from conf\n");
    dir.write("lists/x.txt", "wrong one\n");
    let lib_path = dir.write("conf/library.yaml", "include: [lists/x.txt]\n");
    let l = Library::load(&lib_path).unwrap();
    assert_eq!(texts(&l), ["from conf"]);
    // An absolute path is taken as it is.
    let abs = dir.path().join("lists/x.txt");
    let text = format!("include:\n  - '{}'\n", abs.display());
    let l = Library::load(&dir.write("conf/abs.yaml", text)).unwrap();
    assert_eq!(texts(&l), ["wrong one"]);
}

#[test]
fn missing_include_names_the_file_and_where_it_was_included() {
    let dir = TempDir::new();
    dir.write("lists/there.txt", "a\n");
    let lib_path = dir.write(
        "lib.yaml",
        "entries:\n  - a\ninclude:\n  - lists/there.txt\n  - lists/missing.txt\n",
    );
    let e = Library::load(&lib_path).error();
    assert_eq!(e.path, lib_path);
    check(
        &e,
        5,
        5,
        &["include[1]", "cannot read include file `lists/missing.txt`"],
    );
    let e = yaml_in("include:\n  - weight: 3\n    path: nope.txt\n", dir.path()).error();
    check(&e, 3, 11, &["include[0].path", "`nope.txt`"]);
    let e = yaml_in("include:\n  - lists\n", dir.path()).error();
    check(&e, 2, 5, &["`lists`", "is a directory"]);
    #[cfg(unix)]
    {
        let e = yaml_in("include:\n  - /dev/null\n", dir.path()).error();
        check(&e, 2, 5, &["`/dev/null`", "not a regular file"]);
    }
    let e = yaml_in("include:\n  - ''\n", dir.path()).error();
    check(&e, 2, 5, &["empty include path"]);
}

#[test]
fn include_read_failure_after_parsing_says_where_it_was_included() {
    // The file vanishes between the check and the read: the error is about
    // the include file and mentions the include item.
    let dir = TempDir::new();
    dir.write("a.txt", "a\n");
    let mut b = Builder::new(BuildOptions::default());
    let attrs = Attrs {
        weight: 1.0,
        category: b.category("c"),
        action: None,
        mode: MatchMode::Substring,
    };
    let e = load_list(&mut b, &dir.path().join("gone.txt"), attrs).unwrap_err();
    assert_eq!((e.line, e.column), (0, 0));
    assert!(e.message.starts_with("cannot read:"), "{e}");
    assert!(e.path.ends_with("gone.txt"));
    let e = included_from(e, Path::new("lib.yaml"), 7);
    assert!(
        e.to_string().ends_with(
            "gone.txt: cannot read: No such file or directory (os error 2) (included at lib.yaml:7)"
        ),
        "{e}"
    );
    let e = included_from(
        LoadError::new(Path::new("x.txt"), 0, 0, "boom"),
        Path::new("lib.yaml"),
        0,
    );
    assert_eq!(e.to_string(), "x.txt: boom (included)");
    // Errors at a line of the include file are left alone.
    let e = included_from(
        LoadError::new(Path::new("x.txt"), 3, 1, "boom"),
        Path::new("lib.yaml"),
        7,
    );
    assert_eq!(e.to_string(), "x.txt:3:1: boom");
}

#[test]
fn crlf_library_files() {
    let l = lib("entries:\r\n  - a\r\n  - text: b\r\n    weight: 2\r\n");
    assert_eq!(find(&l, "a").id(), "lib.yaml:2");
    assert_eq!(find(&l, "b").id(), "lib.yaml:3");
    let e = err("entries:\r\n  - a\r\n  - text: b\r\n    wait: 2\r\n");
    check(&e, 4, 5, &["unknown key `wait`"]);
}

#[test]
fn include_errors_name_the_include_line_and_column() {
    let dir = TempDir::new();
    dir.write("bad.txt", "ok\n# c\n   \u{00AD}\n");
    let e = yaml_in("include: [bad.txt]\n", dir.path()).error();
    assert_eq!(e.path, dir.path().join("bad.txt"));
    check(&e, 3, 4, &["empty after normalization"]);
    // Leading full-width spaces count as one column each.
    dir.write(
        "long.txt",
        format!("ok\n\u{3000}\u{3000}{}\n", "b".repeat(MAX_LEN + 1)),
    );
    let e = yaml_in("include: [long.txt]\n", dir.path()).error();
    check(&e, 2, 3, &["1025 bytes"]);
    dir.write("ctl.txt", "ok\n\u{200B}\u{200D}\n");
    let e = yaml_in("include: [ctl.txt]\n", dir.path()).error();
    check(&e, 2, 1, &["empty after normalization"]);
}

#[test]
fn invalid_utf8_in_an_include() {
    let dir = TempDir::new();
    dir.write("bad.txt", b"fine\n\xE5\x8F\x91\xE7\xA5\xA8x\x80y\n");
    let e = yaml_in("include:\n  - bad.txt\n", dir.path()).error();
    assert_eq!(e.path, dir.path().join("bad.txt"));
    check(&e, 2, 4, &["not valid UTF-8", "0x80"]);
    dir.write("crlf.txt", b"a\r\nb\xFF\r\n");
    let e = yaml_in("include:\n  - crlf.txt\n", dir.path()).error();
    check(&e, 2, 2, &["not valid UTF-8", "0xFF"]);
    // Even in a comment line.
    dir.write("comment.txt", b"# \xFF\n");
    let e = yaml_in("include:\n  - comment.txt\n", dir.path()).error();
    check(&e, 1, 3, &["not valid UTF-8"]);
}

// ---- duplicates ----

#[test]
fn duplicates_merge_highest_weight_strongest_action_all_ids() {
    let l = lib("\
entries:
  - text: Cheap Pills
    id: first
    weight: 2
    category: low
    action: reject
  - text: cheap  pills
    id: second
    weight: 7
    category: high
    action: tag
  - CHEAP PILLS
  - text: \"cheap\\u00ADpills \"
    weight: 9
  - text: ｃｈｅａｐ　ｐｉｌｌｓ
    id: third
    weight: 1
");
    // `cheap­pills` (soft hyphen) is `cheappills`: another entry.
    assert_eq!(texts(&l), ["cheap pills", "cheappills"]);
    let e = find(&l, "cheap pills");
    assert_eq!(e.weight(), 7.0);
    assert_eq!(e.category(), "high", "the category goes with the weight");
    assert_eq!(e.action(), Some(Action::Reject));
    assert_eq!(ids(e), ["first", "second", "third"]);
    assert_eq!(e.id(), "first");
    assert_eq!(e.origin(), ("lib.yaml", 2));
    assert_eq!(l.stats().merged_duplicates, 3);
    assert_eq!(l.stats().entries, 2);
}

#[test]
fn duplicates_between_yaml_and_includes() {
    let dir = TempDir::new();
    dir.write("a.txt", "Casino\ncasino\nbonus\n");
    dir.write("b.txt", "BONUS\n");
    let text = "\
entries:
  - text: casino
    id: casino-rule
    weight: 3
    action: tag
include:
  - path: a.txt
    weight: 5
    action: quarantine
    category: gambling
  - path: b.txt
    weight: 1
    action: reject
";
    let l = yaml_in(text, dir.path()).unwrap();
    assert_eq!(texts(&l), ["bonus", "casino"]);
    let c = find(&l, "casino");
    assert_eq!(
        (c.weight(), c.category(), c.action()),
        (5.0, "gambling", Some(Action::Quarantine))
    );
    assert_eq!(c.id(), "casino-rule");
    assert_eq!(c.origin(), ("lib.yaml", 2));
    let b = find(&l, "bonus");
    assert_eq!(
        (b.weight(), b.category(), b.action()),
        (5.0, "gambling", Some(Action::Reject))
    );
    assert_eq!(b.id(), format!("{}:3", dir.path().join("a.txt").display()));
    assert_eq!(l.stats().merged_duplicates, 3);
}

#[test]
fn word_and_substring_of_the_same_text_are_two_entries() {
    let l = lib("\
entries:
  - sex
  - text: sex
    match: word
  - text: SEX
    match: word
    weight: 4
");
    assert_eq!(l.len(), 2);
    assert_eq!(l.stats().merged_duplicates, 1);
    let modes: Vec<_> = l.entries().map(|e| (e.mode(), e.weight())).collect();
    assert!(modes.contains(&(MatchMode::Substring, 1.0)), "{modes:?}");
    assert!(modes.contains(&(MatchMode::Word, 4.0)), "{modes:?}");
    // Only the substring entry hits inside a longer word.
    let hits = l.scan("essex");
    assert_eq!(hits.len(), 1);
    assert_eq!(l.entry(hits[0].entry).unwrap().mode(), MatchMode::Substring);
    assert_eq!(l.scan("buy sex now").len(), 2);
}

#[test]
fn word_entries_as_documented() {
    let l = lib("\
defaults: {match: word}
entries:
  - sex
  - cialis
  - $$$
  - 代开
  - text: cialis
    match: substring
");
    let hit = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = l
            .scan(text)
            .iter()
            .map(|h| {
                let e = l.entry(h.entry).unwrap();
                format!("{}/{}", e.text(), e.mode().as_str())
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(hit("Sex! sex_toys"), ["sex/word"]);
    assert!(hit("Essex sextant 2sex sex9").is_empty());
    assert_eq!(hit("specialist"), ["cialis/substring"]);
    assert_eq!(hit("CIALIS."), ["cialis/substring", "cialis/word"]);
    assert_eq!(hit("win$$$now"), ["$$$/word"]);
    assert_eq!(hit("长期代开发票"), ["代开/word"]);
    assert_eq!(hit("sexé"), ["sex/word"]);
}

// ---- ids ----

#[test]
fn ids_of_yaml_entries_follow_block_layout() {
    let l = lib("\
# header comment
defaults:
  weight: 1

entries:
  # a comment between items
  - one
  - text: two
    weight: 2

  - text: |
      three
      - not an item
    weight: 3
  -   four   # trailing comment
  -
    text: five
  - text: six
    id: six-id
include: []
");
    let id = |t: &str| find(&l, t).id().into_owned();
    assert_eq!(id("one"), "lib.yaml:7");
    assert_eq!(id("two"), "lib.yaml:8");
    assert_eq!(id("three - not an item"), "lib.yaml:11");
    assert_eq!(id("four"), "lib.yaml:15");
    assert_eq!(id("five"), "lib.yaml:16");
    assert_eq!(id("six"), "six-id");
    assert_eq!(find(&l, "six").origin(), ("lib.yaml", 18));
}

#[test]
fn ids_with_unindented_items_and_entries_after_include() {
    let dir = TempDir::new();
    dir.write("x.txt", "\n\nfrom include\n");
    let text = "include:\n- x.txt\nentries:\n- a\n- text: b\n  weight: 2\n";
    let l = yaml_in(text, dir.path()).unwrap();
    assert_eq!(find(&l, "a").id(), "lib.yaml:4");
    assert_eq!(find(&l, "b").id(), "lib.yaml:5");
    let inc = dir.path().join("x.txt").display().to_string();
    assert_eq!(find(&l, "from include").id(), format!("{inc}:3"));
}

#[test]
fn flow_sequences_fall_back_to_line_zero() {
    let l = lib("entries: [a, b,\n  c]\n");
    for t in ["a", "b", "c"] {
        assert_eq!(find(&l, t).id(), "lib.yaml:0", "{t}");
    }
    // A flow sequence on its own lines looks like nothing to the heuristic.
    let l = lib("entries:\n  [a,\n   b]\n");
    assert_eq!(find(&l, "b").id(), "lib.yaml:0");
    // A layout whose item count does not match is not trusted either: here
    // a quoted scalar continues on a line that looks like an item.
    let text = "entries:\n  - a\n  - \"b\n  - c\"\n";
    assert_eq!(block_item_lines(text, ["entries"])[0], [2, 3, 4]);
    let l = lib(text);
    assert_eq!(l.len(), 2);
    assert_eq!(find(&l, "a").id(), "lib.yaml:0");
    assert_eq!(find(&l, "b - c").id(), "lib.yaml:0");
}

#[test]
fn block_item_lines_heuristic() {
    let text = "entries:\n  - a\n  - b: |\n      - c\n    d: 1\n  -\n    e: 2\ninclude:\n  - x\n";
    assert_eq!(block_item_lines(text, ["entries"])[0], [2, 3, 6]);
    assert_eq!(block_item_lines(text, ["include"])[0], [9]);
    assert_eq!(block_item_lines(text, ["defaults"])[0], Vec::<usize>::new());
    // Both keys in one pass, as the loader asks.
    assert_eq!(
        block_item_lines(text, ["entries", "include"]),
        [vec![2, 3, 6], vec![9]]
    );
    assert_eq!(
        block_item_lines(text, ["include", "entries"]),
        [vec![9], vec![2, 3, 6]]
    );
    // A key whose value is on its own line is not a block.
    assert_eq!(
        block_item_lines("entries: [a]\n", ["entries"])[0],
        Vec::<usize>::new()
    );
    assert_eq!(
        block_item_lines("entries: &x\n  - a\n", ["entries"])[0],
        Vec::<usize>::new()
    );
    // A longer key that starts like ours is another key.
    assert_eq!(
        block_item_lines("entries2:\n  - a\n", ["entries"])[0],
        Vec::<usize>::new()
    );
    assert_eq!(
        block_item_lines("entries:   # c\n- a\n-\tb\n", ["entries"])[0],
        [2, 3]
    );
}

// ---- robustness ----

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for text in [
        // (The parser takes quadratic time on unclosed flow nesting: keep
        // these small.)
        format!("entries: {}", "[".repeat(2_000)),
        format!("entries: {}", "{a: ".repeat(2_000)),
        format!("entries:\n{}", "- ".repeat(10_000)),
        format!("defaults: {}", "[".repeat(2_000)),
        format!("include:\n  - {}", "{a: [".repeat(1_000)),
    ] {
        assert!(yaml(&text).is_err());
    }
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        writeln!(
            text,
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]"
        )
        .unwrap();
    }
    text.push_str("entries: *a8\n");
    assert!(yaml(&text).is_err());
}

/// The library format's own keys and values, to garble a file with.
const LIBRARY_WORDS: &[&str] = &[
    "entries:",
    "include:",
    "defaults:",
    "text:",
    "id:",
    "weight:",
    "category:",
    "action:",
    "match:",
    "path:",
    "reject",
    "word",
    "substring",
    "x.txt",
];

fn fragment() -> impl Strategy<Value = String> {
    crate::located::garble::fragment(LIBRARY_WORDS)
}

/// A valid library document to garble.
const SEED_DOC: &str = "\
defaults: {weight: 2, category: spam}
entries:
  - viagra
  - 12345
  - text: 发票代开
    id: zh
    weight: 5
    action: reject
    match: word
include:
  - x.txt
  - path: x.txt
    weight: 3
";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbled_yaml_never_panics(frags in prop::collection::vec(fragment(), 0..60)) {
        let text: String = frags.concat();
        crate::located::garble::located_inside(&text, Path::new("lib.yaml"), yaml(&text))?;
    }

    #[test]
    fn edited_documents_never_panic(edits in crate::located::garble::edits(LIBRARY_WORDS, 6)) {
        let text = crate::located::garble::apply(SEED_DOC.to_owned(), edits);
        crate::located::garble::located_inside(&text, Path::new("lib.yaml"), yaml(&text))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_bytes_never_panic(
        list in prop::collection::vec(
            prop_oneof![
                any::<u8>(),
                prop::sample::select(vec![b'\n', b'\r', b'#', b'\\', b' ', 0xC2, 0xAD, 0xE5, 0x80]),
            ],
            0..300,
        ),
        doc in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let dir = TempDir::new();
        dir.write("x.txt", &list);
        let path = dir.write("lib.yaml", SEED_DOC);
        let _ = Library::load(&path);
        let mut garbled = SEED_DOC.as_bytes().to_vec();
        garbled.extend_from_slice(&doc);
        let path = dir.write("garbled.yaml", &garbled);
        let _ = Library::load(&path);
        let path = dir.write("bytes.yaml", &doc);
        let _ = Library::load(&path);
    }
}

// ---- the shipped example library ----

#[test]
fn shipped_library_loads_and_hits() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("library/library.yaml");
    let l = Library::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(l.len() > 60, "{} entries", l.len());
    assert!(l.categories().len() >= 3);
    // Phrases listed both in the YAML and in an include are merged: the
    // higher weight and the action of the YAML entry stay.
    let e = find(&l, "发票代开");
    assert_eq!((e.weight(), e.action()), (8.0, Some(Action::Reject)));
    assert_eq!(e.id(), "zh-fapiao-daikai");
    assert!(e.origin().0.ends_with("library.yaml"));
    assert!(l.stats().merged_duplicates >= 2);
    assert_eq!(find(&l, "#兼职#").category(), "zh-ads");

    // The judgment of the milter: per category, the sum of the weights of
    // the distinct entries hit; the score is the sum over categories.
    let judge = |text: &str| -> (f64, Vec<String>, Option<Action>) {
        let hits = l.scan(text);
        let mut ids: Vec<String> = Vec::new();
        let mut score = 0.0;
        let mut action = None;
        for h in &hits {
            let e = l.entry(h.entry).unwrap();
            ids.push(e.id().into_owned());
            score += e.weight();
            action = action.max(e.action());
        }
        ids.sort();
        eprintln!("{score:5} {action:?} {ids:?} <- {text}");
        (score, ids, action)
    };

    let (score, ids, action) = judge("Meeting moved to 3pm, see agenda attached.");
    assert_eq!((score, ids.len(), action), (0.0, 0, None), "{ids:?}");

    // Word entries do not hit inside longer words.
    let (score, ids, _) = judge("The Essex office sent the specialist report.");
    assert_eq!(score, 0.0, "{ids:?}");

    let (score, ids, _) = judge("Order now at https://cheap-pills.example - VIAGRA 90% off!!!");
    assert!(ids.iter().any(|i| i == "en-viagra"), "{ids:?}");
    assert!(ids.iter().any(|i| i.contains("domains.txt")), "{ids:?}");
    assert!(score >= 10.0, "score {score} {ids:?}");

    let (score, ids, action) = judge("长期代开发票，请联系QQ 12345678，\n 代 开 增值税发票");
    assert!(ids.iter().any(|i| i == "zh-daikai-fapiao"), "{ids:?}");
    assert!(ids.iter().any(|i| i.contains("zh-ads.txt")), "{ids:?}");
    assert_eq!(action, Some(Action::Reject), "{ids:?}");
    assert!(score >= 10.0, "score {score} {ids:?}");

    // One mild phrase alone stays below the tempfail threshold.
    let (score, ids, _) = judge("Click here to unsubscribe from our newsletter.");
    assert!(score > 0.0 && score < 6.0, "score {score} {ids:?}");

    // Full-width and spaced-out Chinese still hit.
    let (score, ids, _) = judge("招聘兼职　日结，在家 刷 单 轻松月入过万");
    assert!(score >= 6.0, "score {score} {ids:?}");
}
