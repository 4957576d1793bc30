//! The `mailward` binary's offline commands, run as a user runs them:
//! `scan` against the milter itself on the same messages and files,
//! `check` on every kind of configuration and library error, and the
//! command line's inputs, outputs and exit statuses.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::*;
use serde_json::Value;

const LIBRARY: &str = "\
entries:
  - {text: viagra, id: en-viagra, weight: 6, category: pharma, match: word}
  - {text: cialis, id: en-cialis, weight: 6, category: pharma, match: word}
  - {text: bank details, id: en-bank, weight: 1, category: scam, action: quarantine}
  - {text: free gift, id: en-gift, weight: 0, category: promo, action: tag}
  - {text: 代开发票, id: zh-daikai, weight: 10, category: zh}
  - {text: 刷单, id: zh-shuadan, weight: 10, category: zh}
  - {text: 办证, id: zh-banzheng, weight: 10, category: zh}
  - {text: spam-domain.example, id: dom, weight: 10, category: domains, match: word}
  - {text: lorem, id: lorem, weight: 0.5, category: filler}
";

const SPAM: &str = "Hello,\r\nbuy viagra and cialis today.\r\n";
const HAM: &str = "Hi Alice,\r\nthe meeting moved to Thursday.\r\n";

/// Starts `mailward ARGS` in `dir`, its three standard streams piped.
fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mailward"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `mailward ARGS` in `dir`, with `stdin` as its standard input.
fn mailward(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn(dir, args);
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The JSON objects printed by `scan --json`, one per line.
fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The message as the milter keeps it: header lines, blank line, body.
fn raw(m: &Msg) -> Vec<u8> {
    let mut v = Vec::new();
    for (name, value) in &m.headers {
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(b": ");
        v.extend_from_slice(value);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(&m.body);
    v
}

fn gbk(s: &str) -> Vec<u8> {
    let (bytes, _, bad) = encoding_rs::GBK.encode(s);
    assert!(!bad);
    bytes.into_owned()
}

/// The `key=value` fields of a milter log line, and its flags.
fn fields(line: &str) -> HashMap<String, String> {
    line.split(' ')
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (f.to_owned(), String::new()),
        })
        .collect()
}

/// Messages covering every verdict, legacy Chinese encodings, HTML-only
/// mail and decoder notes, with the verdict each gets under the default
/// thresholds in enforce mode.
fn messages() -> Vec<(Msg, &'static str)> {
    let html = |body: &str| {
        Msg::new("news", format!("<html><body>{body}</body></html>\r\n"))
            .header("MIME-Version", "1.0")
            .header("Content-Type", "text/html; charset=utf-8")
    };
    vec![
        (Msg::new("offer", SPAM), "reject"),
        (Msg::new("meeting", HAM), "accept"),
        (Msg::new("offer", "only viagra here\r\n"), "tempfail"),
        (
            Msg::new("account", "please send your bank details\r\n"),
            "quarantine",
        ),
        (Msg::new("a free gift", HAM), "tag"),
        (
            Msg::new(
                "hello",
                base64(&gbk("您好！专业代开发票，请联系我们。\r\n")),
            )
            .header("MIME-Version", "1.0")
            .header("Content-Type", "text/plain; charset=\"GB2312\"")
            .header("Content-Transfer-Encoding", "base64"),
            "reject",
        ),
        (
            Msg::new(
                &format!("=?GBK?B?{}?=", base64(&gbk("在家刷单，日结"))),
                "see subject\r\n",
            ),
            "reject",
        ),
        (
            Msg::new("hello", gbk("诚信办证，质量保证。\r\n"))
                .header("MIME-Version", "1.0")
                .header("Content-Type", "text/plain")
                .header("Content-Transfer-Encoding", "8bit"),
            "reject",
        ),
        (
            html("<p>Cheap&nbsp;<b>via</b><b>gra</b> &amp; <i>cialis</i></p>"),
            "reject",
        ),
        (
            html("<p>Visit <a href=\"https://www.spam-domain.example/x\">our shop</a></p>"),
            "reject",
        ),
        (
            html("<p>Visit <a href=\"https://example.org/\">our shop</a> lorem</p>"),
            "accept",
        ),
        (
            Msg::new("x", format!("!!!{SPAM}###\r\n"))
                .header("Content-Type", "text/plain; charset=\"x-klingon\"")
                .header("Content-Transfer-Encoding", "base64"),
            "reject",
        ),
    ]
}

/// Sends every message through the milter on `config` and scans the same
/// messages as files with `mailward scan --json` on the same files; both
/// must say the same of each message. Returns the verdicts.
async fn milter_and_scan_agree(config: &str, tag: &str) -> Vec<String> {
    let m = Milter::start(config, LIBRARY).await;
    let mut c = m.client().await;
    let msgs = messages();
    let mut logged = Vec::new();
    for (i, (msg, _)) in msgs.iter().enumerate() {
        let id = format!("{tag}{i:02}");
        c.send(&msg.clone().id(&id)).await;
        logged.push(fields(&log_line(&id)));
        std::fs::create_dir_all(m.dir.path().join("mail")).unwrap();
        m.dir.write(&format!("mail/{i:02}.eml"), raw(msg));
    }
    c.close().await;

    let out = mailward(
        m.dir.path(),
        &["scan", "--json", "-c", "milter.yaml", "mail"],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let scanned = json_lines(&out);
    assert_eq!(scanned.len(), msgs.len());
    let mut verdicts = Vec::new();
    for (i, (log, json)) in logged.iter().zip(&scanned).enumerate() {
        let what = format!("message {i}: {log:?}\n{json}");
        assert_eq!(json["file"], format!("mail/{i:02}.eml"), "{what}");
        assert_eq!(
            json["verdict"].as_str(),
            Some(log["verdict"].as_str()),
            "{what}"
        );
        assert_eq!(json["act"].as_str(), Some(log["act"].as_str()), "{what}");
        let score = json["score"].as_f64().unwrap();
        assert_eq!(format!("{score:.1}"), log["score"], "{what}");
        assert_eq!(
            json["tagged"].as_bool(),
            Some(log.contains_key("tagged")),
            "{what}"
        );
        // The same bytes were judged.
        assert_eq!(json["size"].to_string(), log["size"], "{what}");
        let hits = json["hits"].as_array().unwrap();
        assert_eq!(hits.len().to_string(), log["hits"], "{what}");
        let ids: Vec<&str> = hits
            .iter()
            .take(5)
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids.join(","),
            log.get("ids").cloned().unwrap_or_default(),
            "{what}"
        );
        // The log names each kind of note once, in order of appearance.
        let mut kinds: Vec<&str> = Vec::new();
        for n in json["notes"].as_array().unwrap() {
            let k = n["kind"].as_str().unwrap();
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        assert_eq!(
            kinds.join(","),
            log.get("notes").cloned().unwrap_or_default(),
            "{what}"
        );
        verdicts.push(log["verdict"].clone());
    }
    m.stop().await;
    verdicts
}

#[tokio::test]
async fn scan_and_the_milter_judge_alike() {
    let verdicts = milter_and_scan_agree("", "AGREE").await;
    let expected: Vec<&str> = messages().iter().map(|(_, v)| *v).collect();
    assert_eq!(verdicts, expected);
}

#[tokio::test]
async fn scan_and_the_milter_judge_alike_in_tag_mode_with_more_thresholds() {
    let config = "judge:\n  mode: tag\n  tag_accepted: true\n  tempfail_score: off\n  quarantine_score: 5\n  tag_score: 0.5\n  category_caps: {pharma: 8}\n";
    let verdicts = milter_and_scan_agree(config, "TAGM").await;
    // The cap lowers two brand names to 8: quarantine, not reject; one
    // brand name (6) is quarantined too; the lorem filler (0.5) is tagged.
    assert_eq!(verdicts[0], "quarantine");
    assert_eq!(verdicts[2], "quarantine");
    assert_eq!(verdicts[10], "tag");
}

// ---- check ----

/// A directory with `milter.yaml` and `library.yaml`.
fn setup(config: &str, library: &str) -> TempDir {
    let dir = TempDir::new("cli");
    dir.write("milter.yaml", config);
    dir.write("library.yaml", library);
    dir
}

/// `mailward check` fails with status 2 and `location: …` on stderr.
fn check_fails(config: &str, library: &str, location: &str) -> String {
    let dir = setup(config, library);
    let out = mailward(dir.path(), &["check"], b"");
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.lines().any(|l| l.starts_with(&format!("{location}: "))),
        "{location} in {err}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    err
}

/// `mailward check` succeeds on these files; its output.
fn check_passes(config: &str, library: &str) -> Output {
    let dir = setup(config, library);
    let out = mailward(dir.path(), &["check"], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    out
}

#[test]
fn check_names_each_configuration_error_where_it_is() {
    let lib = "entries: [viagra]\n";
    let e = check_fails(
        "library: library.yaml\njudge:\n  reject_score: [1\n",
        lib,
        "milter.yaml:4:1",
    );
    assert!(e.contains("flow sequence"), "{e}");
    let e = check_fails(
        "library: library.yaml\njudge:\n  rejet_score: 5\n",
        lib,
        "milter.yaml:3:3",
    );
    assert!(e.contains("unknown field `rejet_score`"), "{e}");
    let e = check_fails(
        "library: library.yaml\njudge:\n  reject_score: lots\n",
        lib,
        "milter.yaml:3:17",
    );
    assert!(e.contains("`lots`"), "{e}");
    let e = check_fails(
        "listen: inet:127.0.0.1:8894\nlibrary:  nothere.yaml\n",
        lib,
        "milter.yaml:2:11",
    );
    assert!(e.contains("nothere.yaml: cannot read: "), "{e}");
    assert!(e.contains("note: the library is named here"), "{e}");
}

#[test]
fn check_names_each_library_error_where_it_is() {
    let config = "library: library.yaml\n";
    let e = check_fails(config, "entries:\n  - {text: x\n", "library.yaml:3:1");
    assert!(e.contains("flow mapping"), "{e}");
    let e = check_fails(
        config,
        "entries:\n  - viagra\n  - {text: x, colour: red}\n",
        "library.yaml:3:15",
    );
    assert!(e.contains("unknown key `colour`"), "{e}");
    let e = check_fails(
        config,
        "entries:\n  - viagra\n  - \"\\u200b \\u3000\"\n",
        "library.yaml:3:5",
    );
    assert!(e.contains("empty after normalization"), "{e}");
    let e = check_fails(
        config,
        "entries: [viagra]\ninclude:\n  - lists/none.txt\n",
        "library.yaml:3:5",
    );
    assert!(
        e.contains("cannot read include file `lists/none.txt`"),
        "{e}"
    );

    // An include line that normalizes to nothing: the list file's line.
    let dir = setup(config, "include:\n  - {path: lists/zh.txt, weight: 3}\n");
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    dir.write("lists/zh.txt", "代开发票\n\n  \u{200b}\u{3000}\n");
    let out = mailward(dir.path(), &["check"], b"");
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).starts_with("lists/zh.txt:3:3: the string is empty after normalization"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_prints_the_figures_of_a_good_configuration() {
    let out = check_passes(
        "library: library.yaml\nlisten: inet:127.0.0.1:9999\njudge:\n  mode: tag\n  quarantine_score: 4\n  category_caps: {zh: 12, nope: 1}\nbehavior:\n  tracking: {max_keys: {ip: 1000}}\n  limits:\n    - {key: ip, metric: connections, window: 1m, max: 60, action: monitor}\n",
        "entries:\n  - {text: viagra, category: pharma}\n  - {text: VIAGRA, category: pharma}\n  - {text: 代开发票, category: zh}\n  - {text: cheap watches, category: zh}\n",
    );
    let text = stdout(&out);
    let value = |label: &str| {
        text.lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{label} in {text}"))
    };
    assert!(
        text.starts_with("configuration milter.yaml: ok\n"),
        "{text}"
    );
    assert!(text.contains("\nlibrary library.yaml: ok\n"), "{text}");
    assert_eq!(value("listen"), "inet:127.0.0.1:9999");
    assert_eq!(value("mode"), "tag");
    assert_eq!(
        value("thresholds"),
        "reject 10, tempfail 6, quarantine 4, tag off"
    );
    assert_eq!(value("category caps"), "nope 1, zh 12");
    assert_eq!(value("entries"), "3");
    assert_eq!(value("merged duplicates"), "1");
    assert_eq!(value("categories"), "2: pharma 1, zh 2");
    for label in [
        "distinct keywords",
        "longest list",
        "short entries",
        "index memory",
        "total memory",
        "build time",
    ] {
        assert!(!value(label).is_empty(), "{label}");
    }
    assert!(value("distinct keywords").parse::<usize>().unwrap() >= 1);
    assert!(
        ["AVX-512", "AVX2", "scalar"].contains(&value("scan kernels").as_str()),
        "{text}"
    );
    // The limits, the keys tracked and the memory bound of their counters
    // (non-zero for one limit on 1 000 addresses), under the default cap.
    let behavior = value("behavior");
    assert!(
        behavior.starts_with(
            "1 limit(s); keys tracked up to ip 1000, login 100000, sender 100000; counters up to "
        ),
        "{behavior}"
    );
    assert!(behavior.ends_with(" KiB (cap 256.0 MiB)"), "{behavior}");
    // A cap on a category the library lacks is worth a warning, not a
    // failure.
    assert!(
        stderr(&out)
            .contains("mailward: warning: judge.category_caps: the library has no category `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_says_when_behavior_monitoring_is_off() {
    let out = check_passes(
        "library: library.yaml\nbehavior:\n  enabled: false\n",
        "entries: [viagra]\n",
    );
    assert!(
        stdout(&out).contains("\n  behavior           off\n"),
        "{}",
        stdout(&out)
    );
}

// ---- scan ----

#[test]
fn scan_walks_directories_in_name_order_and_reads_stdin() {
    let dir = setup("library: library.yaml\n", LIBRARY);
    for (name, subject) in [
        ("mail/c.eml", "viagra"),
        ("mail/b/2.eml", "hello"),
        ("mail/a.eml", "cialis"),
        ("mail/b/10.eml", "hello"),
        ("mail/b/deeper/x.eml", "刷单"),
    ] {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, raw(&Msg::new(subject, HAM))).unwrap();
    }
    let out = mailward(
        dir.path(),
        &["scan", "--json", "mail", "-", "mail/c.eml"],
        &raw(&Msg::new("offer", SPAM)),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&out);
    let files: Vec<&str> = lines.iter().map(|j| j["file"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        [
            "mail/a.eml",
            "mail/b/10.eml",
            "mail/b/2.eml",
            "mail/b/deeper/x.eml",
            "mail/c.eml",
            "-",
            "mail/c.eml"
        ]
    );
    let verdicts: Vec<&str> = lines
        .iter()
        .map(|j| j["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        [
            "tempfail", "accept", "accept", "reject", "tempfail", "reject", "tempfail"
        ]
    );
    // The summary counts every verdict.
    assert!(
        stderr(&out).contains(
            "7 messages scanned, 0 failed: accept 2, tag 0, quarantine 0, tempfail 3, reject 2; "
        ),
        "{}",
        stderr(&out)
    );
    // Deterministic: a second run prints the same.
    let again = mailward(
        dir.path(),
        &["scan", "--json", "mail", "-", "mail/c.eml"],
        &raw(&Msg::new("offer", SPAM)),
    );
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn an_unreadable_file_is_reported_and_the_others_still_scanned() {
    let dir = setup("library: library.yaml\n", LIBRARY);
    std::fs::create_dir(dir.path().join("mail")).unwrap();
    dir.write("mail/1.eml", raw(&Msg::new("offer", SPAM)));
    dir.write("mail/3.eml", raw(&Msg::new("meeting", HAM)));
    std::os::unix::fs::symlink(dir.path().join("gone.eml"), dir.path().join("mail/2.eml")).unwrap();
    let out = mailward(dir.path(), &["scan", "--json", "missing.eml", "mail"], b"");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("mailward: missing.eml: "), "{err}");
    assert!(err.contains("mailward: mail/2.eml: "), "{err}");
    assert!(err.contains("2 messages scanned, 2 failed: "), "{err}");
    let files: Vec<String> = json_lines(&out)
        .iter()
        .map(|j| j["file"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(files, ["mail/1.eml", "mail/3.eml"]);

    // One input: its error alone, no summary.
    let out = mailward(dir.path(), &["scan", "missing.eml"], b"");
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn text_shows_the_normalized_text_the_library_saw() {
    let dir = setup("library: library.yaml\n", LIBRARY);
    // Full-width letters, CJK split by a line break and spaces, an
    // invisible character inside a word, an HTML alternative.
    let body = "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                ＦＲＥＥ　ＧＩＦＴ for you: 代 开\r\n发 票 via\u{200b}gra\r\n\
                --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
                <p>FREE <b>GIFT</b></p>\r\n--b--\r\n";
    let msg = Msg::new("Ｈｅｌｌｏ", body)
        .header("MIME-Version", "1.0")
        .header("Content-Type", "multipart/alternative; boundary=b");
    dir.write("m.eml", raw(&msg));

    let out = mailward(dir.path(), &["scan", "--json", "--text", "m.eml"], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j = &json_lines(&out)[0];
    let texts = j["text"].as_array().unwrap();
    let kinds: Vec<&str> = texts.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["subject", "plain", "html"]);
    assert_eq!(texts[0]["text"], "hello");
    assert_eq!(texts[1]["text"], "free gift for you: 代开发票 viagra");
    assert_eq!(texts[1]["alt_group"], 0);
    assert_eq!(texts[2]["text"], "free gift");
    assert_eq!(texts[0]["alt_group"], Value::Null);
    let ids: Vec<&str> = j["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["en-gift", "zh-daikai", "en-viagra"]);
    // The gift occurs in both renderings: counted once.
    assert_eq!(j["hits"][0]["count"], 1);

    let out = mailward(dir.path(), &["scan", "--text", "m.eml"], b"");
    let text = stdout(&out);
    assert!(
        text.contains("\n  text plain alt=0: free gift for you: 代开发票 viagra\n"),
        "{text}"
    );
    assert!(text.contains("\n  text subject: hello\n"), "{text}");
    // Without --text, no text.
    let out = mailward(dir.path(), &["scan", "--json", "m.eml"], b"");
    assert!(json_lines(&out)[0].get("text").is_none());
    assert!(!stdout(&mailward(dir.path(), &["scan", "m.eml"], b"")).contains("  text "));
}

#[test]
fn json_carries_the_documented_fields() {
    let dir = setup(
        "library: library.yaml\njudge:\n  category_caps: {pharma: 7}\nlimits:\n  message_bytes: 1 KiB\n",
        LIBRARY,
    );
    let filler = "lorem ipsum dolor sit amet ".repeat(100);
    let msg = Msg::new("offer", format!("{SPAM}{filler}\r\nbank details\r\n"))
        .header("Content-Type", "text/plain; charset=x-klingon");
    dir.write("m.eml", raw(&msg));
    let out = mailward(dir.path(), &["scan", "--json", "m.eml"], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    let j = lines[0].as_object().unwrap();
    let mut keys: Vec<&str> = j.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "act",
            "by_action",
            "by_score",
            "categories",
            "cut",
            "file",
            "hits",
            "notes",
            "parts",
            "score",
            "size",
            "tagged",
            "text_bytes",
            "verdict"
        ]
    );
    assert_eq!(j["file"], "m.eml");
    // Capped at 7 (pharma) + 0.5 (lorem): tempfail by score; "bank
    // details" is past the 1 KiB kept, so no quarantine action.
    assert_eq!(j["verdict"], "tempfail");
    assert_eq!(j["by_score"], "tempfail");
    assert_eq!(j["by_action"], Value::Null);
    assert_eq!(j["act"], "tempfail");
    assert_eq!(j["tagged"], false);
    assert_eq!(j["score"].as_f64(), Some(7.5));
    assert_eq!(j["size"], 1024);
    assert_eq!(j["cut"].as_u64().unwrap() + 1024, raw(&msg).len() as u64);
    assert!(j["text_bytes"].as_u64().unwrap() > 0);
    assert_eq!(j["parts"], 2);
    let hits = j["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    let h = &hits[0];
    assert_eq!(h["id"], "en-viagra");
    assert_eq!(h["text"], "viagra");
    assert_eq!(h["category"], "pharma");
    assert_eq!(h["weight"].as_f64(), Some(6.0));
    assert_eq!(h["count"], 1);
    assert_eq!(h["action"], Value::Null);
    assert_eq!(h["match"], "word");
    assert_eq!(hits[2]["id"], "lorem");
    assert!(hits[2]["count"].as_u64().unwrap() > 10);
    let cats = j["categories"].as_array().unwrap();
    assert_eq!(cats[0]["name"], "pharma");
    assert_eq!(cats[0]["score"].as_f64(), Some(7.0));
    assert_eq!(cats[0]["capped"], true);
    let notes = j["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["kind"] == "unknown-charset"
            && n["message"].as_str().unwrap().contains("x-klingon")),
        "{notes:?}"
    );
}

#[test]
fn the_human_form_reads_like_the_log_line() {
    let dir = setup(
        "library: library.yaml\njudge:\n  tag_accepted: true\n",
        LIBRARY,
    );
    dir.write(
        "q.eml",
        raw(&Msg::new("account", "please send your bank details\r\n")),
    );
    dir.write("h.eml", raw(&Msg::new("hi", HAM)));
    let out = mailward(dir.path(), &["scan", "q.eml", "h.eml"], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let blocks: Vec<&str> = text.split("\n\n").filter(|b| !b.is_empty()).collect();
    assert_eq!(blocks.len(), 2, "{text}");
    let q: Vec<&str> = blocks[0].lines().collect();
    assert_eq!(
        q[0],
        "q.eml: verdict=quarantine act=quarantine score=1.0 tagged hits=1 size=100"
    );
    assert_eq!(
        q[1],
        "  hit en-bank \"bank details\" category=scam weight=1 count=1 action=quarantine"
    );
    assert_eq!(q[2], "  category scam score=1.0");
    assert!(blocks[1].starts_with("h.eml: verdict=accept act=deliver score=0.0 tagged hits=0"));
}

#[test]
fn a_library_alone_is_judged_with_the_default_thresholds() {
    let dir = TempDir::new("lib");
    dir.write("lib.yaml", LIBRARY);
    dir.write("one.eml", raw(&Msg::new("x", "only viagra here\r\n")));
    dir.write("two.eml", raw(&Msg::new("x", SPAM)));
    // A broken milter.yaml in the directory is not read.
    dir.write("milter.yaml", "nonsense: [\n");
    let out = mailward(
        dir.path(),
        &[
            "scan",
            "--json",
            "--library",
            "lib.yaml",
            "one.eml",
            "two.eml",
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: Vec<String> = json_lines(&out)
        .iter()
        .map(|j| j["verdict"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(v, ["tempfail", "reject"]);
    // Without --library, that milter.yaml is the configuration.
    let out = mailward(dir.path(), &["scan", "one.eml"], b"");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).starts_with("milter.yaml:"), "{}", stderr(&out));
}

#[test]
fn an_mbox_from_line_is_not_part_of_the_message() {
    let dir = setup("library: library.yaml\n", LIBRARY);
    let msg = raw(&Msg::new("offer", SPAM));
    let mut mbox = b"From sender@example.net Mon Jan  1 00:00:00 2024\n".to_vec();
    mbox.extend_from_slice(&msg);
    dir.write("plain.eml", &msg);
    dir.write("mbox.eml", &mbox);
    let out = mailward(
        dir.path(),
        &["scan", "--json", "plain.eml", "mbox.eml"],
        b"",
    );
    let lines = json_lines(&out);
    for j in &lines {
        assert_eq!(j["verdict"], "reject", "{j}");
        assert_eq!(j["size"], msg.len(), "{j}");
        assert_eq!(j["notes"].as_array().unwrap().len(), 0, "{j}");
    }
}

#[test]
fn an_mbox_of_several_messages_is_judged_message_by_message() {
    let dir = setup("library: library.yaml\n", LIBRARY);
    let (spam, ham) = (raw(&Msg::new("offer", SPAM)), raw(&Msg::new("hello", HAM)));
    // Each message after its separator line, an empty line after each; a
    // body line starting with "From " is quoted in the file.
    let mut quoted = ham.clone();
    quoted.extend_from_slice(b">From the desk of Alice\r\n");
    let mut mbox = Vec::new();
    for m in [&spam, &quoted, &spam] {
        mbox.extend_from_slice(b"From sender@example.net Mon Jan  1 00:00:00 2024\n");
        mbox.extend_from_slice(m);
        mbox.extend_from_slice(b"\n");
    }
    dir.write("box.mbox", &mbox);
    let out = mailward(dir.path(), &["scan", "--json", "--text", "box.mbox"], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&out);
    let files: Vec<&str> = lines.iter().map(|j| j["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["box.mbox#1", "box.mbox#2", "box.mbox#3"]);
    let verdicts: Vec<&str> = lines
        .iter()
        .map(|j| j["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["reject", "accept", "reject"]);
    // Each message judged as the milter would see it: its own bytes, the
    // quoted line unquoted.
    let sizes: Vec<u64> = lines.iter().map(|j| j["size"].as_u64().unwrap()).collect();
    assert_eq!(
        sizes,
        [spam.len(), quoted.len() - 1, spam.len()].map(|n| n as u64)
    );
    assert!(
        lines[1].to_string().contains("from the desk of alice"),
        "{}",
        lines[1]
    );
    assert!(
        stderr(&out).contains(
            "3 messages scanned, 0 failed: accept 1, tag 0, quarantine 0, tempfail 0, reject 2"
        ),
        "{}",
        stderr(&out)
    );
    // The same from standard input, in the human form.
    let out = mailward(dir.path(), &["scan", "-"], &mbox);
    let text = stdout(&out);
    let firsts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(firsts, ["-#1", "-#2", "-#3"]);
}

/// Lines of stderr, the summary cut before its timing.
fn problems(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .map(|l| l.split_once(';').map_or(l, |(before, _)| before).to_owned())
        .collect()
}

#[test]
fn judging_threads_print_what_one_thread_prints() {
    let dir = setup("library: library.yaml\n", LIBRARY);
    std::fs::create_dir(dir.path().join("mail")).unwrap();
    let all = messages();
    // Many messages of very different sizes, so that they finish out of
    // order; an mbox, and a file that cannot be read, among them.
    for i in (0..120).filter(|i| ![50, 60].contains(i)) {
        let (m, _) = &all[i % all.len()];
        let mut bytes = raw(m);
        bytes.extend(
            std::iter::repeat_n(b"filler text line\r\n".as_slice(), (i % 7) * 400).flatten(),
        );
        dir.write(&format!("mail/{i:03}.eml"), bytes);
    }
    let mut mbox = Vec::new();
    for (m, _) in &all {
        mbox.extend_from_slice(b"From sender@example.net Mon Jan  1 00:00:00 2024\n");
        mbox.extend_from_slice(&raw(m));
        // Each message ends its last line, then an empty line.
        if !mbox.ends_with(b"\n") {
            mbox.extend_from_slice(b"\r\n");
        }
        mbox.extend_from_slice(b"\n");
    }
    dir.write("mail/050.mbox", &mbox);
    std::os::unix::fs::symlink(dir.path().join("gone.eml"), dir.path().join("mail/060.eml"))
        .unwrap();
    let run = |jobs: &str, json: bool| {
        let mut args = vec!["scan", "--jobs", jobs, "mail", "-"];
        if json {
            args.push("--json");
        }
        mailward(dir.path(), &args, &mbox)
    };
    let one = run("1", true);
    assert_eq!(code(&one), 1, "{}", stderr(&one));
    let lines = json_lines(&one);
    assert_eq!(lines.len(), 118 + 2 * all.len());
    assert_eq!(lines[50]["file"], "mail/050.mbox#1");
    assert_eq!(lines.last().unwrap()["file"], format!("-#{}", all.len()));
    let expected: Vec<&str> = all.iter().map(|(_, v)| *v).collect();
    let from_stdin: Vec<&str> = lines[lines.len() - all.len()..]
        .iter()
        .map(|j| j["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(from_stdin, expected);
    let problems_one = problems(&one);
    assert_eq!(problems_one.len(), 2, "{problems_one:?}");
    assert!(problems_one[0].starts_with("mailward: mail/060.eml: "));
    for jobs in ["2", "5", "0"] {
        let many = run(jobs, true);
        assert_eq!(code(&many), 1);
        assert!(many.stdout == one.stdout, "--jobs {jobs} printed otherwise");
        assert_eq!(problems(&many), problems_one, "--jobs {jobs}");
    }
    let human_one = run("1", false);
    let human_many = run("4", false);
    assert!(human_one.stdout == human_many.stdout);
    assert_eq!(problems(&human_one), problems(&human_many));
}

#[test]
fn a_reader_that_goes_away_stops_every_thread() {
    let dir = setup("library: library.yaml\n", LIBRARY);
    // An endless mbox on standard input: mailward is still reading and
    // judging when its output goes away, however large the pipe.
    let mut child = spawn(dir.path(), &["scan", "--jobs", "3", "-"]);
    let mut input = child.stdin.take().unwrap();
    let mut message = b"From sender@example.net Mon Jan  1 00:00:00 2024\n".to_vec();
    message.extend_from_slice(&raw(&Msg::new("offer", SPAM)));
    message.extend_from_slice(b"\n");
    let feeder = std::thread::spawn(move || {
        // Ends when mailward has exited and its input is closed.
        while input.write_all(&message).is_ok() {}
    });
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert!(first.starts_with("-#1: verdict=reject"), "{first}");
    // Like `| head -1`: the reader closes the pipe.
    drop(out);
    // A hang here is the failure this test looks for (threads waiting on
    // one another once the output is gone).
    let status = child.wait().unwrap();
    feeder.join().unwrap();
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.is_empty(), "a broken pipe needs no message: {err}");
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let dir = setup("library: library.yaml\n", LIBRARY);
    for args in [
        &["scan"][..],
        &["scan", "-c", "milter.yaml", "-l", "library.yaml", "x"],
        &["scan", "--frobnicate", "x"],
        &["check", "extra"],
        &["nonsense"],
    ] {
        let out = mailward(dir.path(), args, b"");
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(
            stderr(&out).contains("Usage: mailward"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    for (args, usage) in [
        (&["--help"][..], "Usage: mailward [OPTIONS]"),
        (&["run", "--help"], "Usage: mailward run [OPTIONS]"),
        (&["check", "--help"], "Usage: mailward check [OPTIONS]"),
        (
            &["scan", "--help"],
            "Usage: mailward scan [OPTIONS] <PATH>...",
        ),
    ] {
        let out = mailward(dir.path(), args, b"");
        assert_eq!(code(&out), 0, "{args:?}");
        assert!(stdout(&out).contains(usage), "{args:?}: {}", stdout(&out));
    }
    let out = mailward(dir.path(), &["--version"], b"");
    assert_eq!(
        stdout(&out),
        format!("mailward {}\n", env!("CARGO_PKG_VERSION"))
    );
    // A broken configuration stops a scan before any file is read.
    dir.write(
        "milter.yaml",
        "library: library.yaml\njudge:\n  mode: loud\n",
    );
    dir.write("m.eml", raw(&Msg::new("offer", SPAM)));
    let out = mailward(dir.path(), &["scan", "m.eml"], b"");
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).starts_with("milter.yaml:3:9: "),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}
