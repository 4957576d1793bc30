//! Tests of the configuration reader: defaults, the shipped file, and each
//! kind of error with its exact location.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::model::*;
use super::*;

fn read(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str(text, Path::new("m.yaml"), Path::new("/etc/mailward"))
}

fn ok(text: &str) -> Config {
    read(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The error of `text` as `line:column: message`.
fn err(text: &str) -> String {
    match read(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert_eq!(e.path, Path::new("m.yaml"));
            format!("{}:{}: {}", e.line, e.column, e.message)
        }
    }
}

fn assert_err(text: &str, at: &str, needle: &str) {
    let e = err(text);
    assert!(e.starts_with(at), "expected at {at}, got: {e}");
    assert!(e.contains(needle), "expected {needle:?} in: {e}");
}

#[test]
fn defaults() {
    let c = ok("library: lib.yaml\n");
    assert_eq!(c.library, Some("/etc/mailward/lib.yaml".into()));
    assert_eq!(
        c.listen,
        Listen::Inet(([127, 0, 0, 1], DEFAULT_PORT).into())
    );
    assert_eq!(c.socket_mode.0, 0o660);
    assert_eq!(c.milter.max_connections.0, 100);
    assert_eq!(c.milter.connection_timeout.0, Duration::from_secs(7210));
    assert_eq!(c.milter.on_error, OnError::Tempfail);
    assert_eq!(c.judge.mode, Mode::Enforce);
    assert_eq!(c.judge.reject_score.0, Some(10.0));
    assert_eq!(c.judge.tempfail_score.0, Some(6.0));
    assert_eq!(c.judge.quarantine_score.0, None);
    assert_eq!(c.judge.tag_score.0, None);
    assert!(c.judge.category_caps.is_empty());
    assert_eq!(c.judge.header.0, "X-Mailward");
    assert!(!c.judge.tag_accepted);
    assert_eq!(c.replies.reject.code.as_str(), "550");
    assert_eq!(c.replies.reject.status.as_str(), "5.7.1");
    assert_eq!(c.replies.tempfail.code.as_str(), "451");
    assert_eq!(c.replies.tempfail.status.as_str(), "4.7.1");
    assert_eq!(c.replies.error.status.as_str(), "4.3.0");
    assert!(!c.replies.quarantine.as_str().is_empty());
    assert_eq!(c.limits.message_bytes.0, 10 << 20);
    assert_eq!(c.limits.text_bytes.0, 1 << 20);
    assert_eq!(c.limits.parts.0, 256);
    assert_eq!(c.limits.depth.0, 16);
    assert_eq!(c.limits.fallback_charset.0, encoding_rs::GB18030);
    assert!(c.exempt.trusted_networks.is_empty());
    assert!(!c.exempt.authenticated);
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c.log.destination, LogDestination::Stderr);
    assert_eq!(c.log.facility, Facility::Mail);
    assert_eq!(c.log.syslog_socket.0, Path::new("/dev/log"));
    assert_eq!(c.socket_owner, None);
    assert_eq!(c.socket_group, None);
    assert_eq!(c.milter.shutdown_grace.0, Duration::from_secs(30));
    assert_eq!(c.milter.inline_judge, InlineBytes(Some(32 << 10)));
    assert_eq!(c.path, None);
}

#[test]
fn default_replies_do_not_reveal_anything() {
    let c = ok("library: l\n");
    for t in [
        c.replies.reject.text.as_str(),
        c.replies.tempfail.text.as_str(),
        c.replies.error.text.as_str(),
    ] {
        assert!(!t.contains('%') && !t.contains('{'), "{t}");
    }
}

#[test]
fn shipped_file_loads_and_names_the_shipped_library() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("milter.yaml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.path.as_deref(), Some(path.as_path()));
    let lib = c.library_path();
    assert!(lib.is_file(), "{}", lib.display());
    assert!(lib.ends_with("library/library.yaml"));
    assert!(matches!(c.listen, Listen::Inet(a) if a.ip().is_loopback()));
}

#[test]
fn full_file() {
    let c = ok("\
listen: unix:run/milter.sock
socket_mode: '0600'
socket_owner: mailward
socket_group: 125
library: /srv/lib.yaml
milter:
  max_connections: 20
  connection_timeout: 5m
  on_error: accept
  shutdown_grace: 2m
  inline_judge: off
judge:
  mode: tag
  reject_score: 12.5
  tempfail_score: off
  quarantine_score: 4
  tag_score: -1
  category_caps: {domains: 8, zh-ads: 0}
  header: X-Spam-Verdict
  tag_accepted: true
replies:
  reject: {code: 554, status: 5.7.0, text: Go away}
  tempfail: {text: Later}
  error: {code: 421, status: 4.3.2, text: Oops}
  quarantine: held for review
limits:
  message_bytes: 2MiB
  text_bytes: 65536
  parts: 10
  depth: 64
  fallback_charset: big5
exempt:
  trusted_networks: [192.0.2.0/24, '2001:db8::/32', 10.1.2.3]
  authenticated: true
log:
  level: debug
  destination: syslog
  facility: local3
  syslog_socket: run/log
");
    assert_eq!(
        c.listen,
        Listen::Unix("/etc/mailward/run/milter.sock".into())
    );
    assert_eq!(c.socket_mode.0, 0o600);
    assert_eq!(c.library, Some("/srv/lib.yaml".into()));
    assert_eq!(c.milter.max_connections.0, 20);
    assert_eq!(c.milter.connection_timeout.0, Duration::from_secs(300));
    assert_eq!(c.milter.on_error, OnError::Accept);
    assert_eq!(c.judge.mode, Mode::Tag);
    assert_eq!(c.judge.reject_score.0, Some(12.5));
    assert_eq!(c.judge.tempfail_score.0, None);
    assert_eq!(c.judge.quarantine_score.0, Some(4.0));
    assert_eq!(c.judge.tag_score.0, Some(-1.0));
    let caps: Vec<(String, f64)> = c
        .judge
        .category_caps
        .iter()
        .map(|(k, v)| (k.0.clone(), v.0))
        .collect();
    assert_eq!(caps, [("domains".into(), 8.0), ("zh-ads".into(), 0.0)]);
    assert_eq!(c.judge.header.0, "X-Spam-Verdict");
    assert!(c.judge.tag_accepted);
    assert_eq!(c.replies.reject.code.as_str(), "554");
    assert_eq!(c.replies.reject.text.as_str(), "Go away");
    assert_eq!(c.replies.tempfail.code.as_str(), "451", "default kept");
    assert_eq!(c.replies.tempfail.text.as_str(), "Later");
    assert_eq!(c.replies.error.code.as_str(), "421");
    assert_eq!(c.replies.quarantine.as_str(), "held for review");
    assert_eq!(c.limits.message_bytes.0, 2 << 20);
    assert_eq!(c.limits.text_bytes.0, 65536);
    assert_eq!(c.limits.parts.0, 10);
    assert_eq!(c.limits.depth.0, 64);
    assert_eq!(c.limits.fallback_charset.0, encoding_rs::BIG5);
    assert_eq!(c.exempt.trusted_networks.len(), 3);
    assert_eq!(c.exempt.trusted_networks[2].prefix, 32);
    assert!(c.exempt.authenticated);
    assert_eq!(c.log.level, LogLevel::Debug);
    assert_eq!(c.log.destination, LogDestination::Syslog);
    assert_eq!(c.log.facility, Facility::Local3);
    assert_eq!(c.log.facility.code(), 19);
    assert_eq!(c.log.syslog_socket.0, Path::new("/etc/mailward/run/log"));
    assert_eq!(c.socket_owner, Some(Account::Name("mailward".into())));
    assert_eq!(c.socket_group, Some(Account::Id(125)));
    assert_eq!(c.milter.shutdown_grace.0, Duration::from_secs(120));
    assert_eq!(c.milter.inline_judge, InlineBytes(None));
}

#[test]
fn socket_owners_and_log_destinations() {
    for (text, at, needle) in [
        (
            "socket_owner: -x\n",
            "1:15:",
            "expected a user or group name",
        ),
        (
            "socket_owner: 'a b'\n",
            "1:15:",
            "expected a user or group name",
        ),
        (
            "socket_group: 4294967295\n",
            "1:15:",
            "not a valid numeric id",
        ),
        (
            "socket_group: 99999999999\n",
            "1:15:",
            "not a valid numeric id",
        ),
        (
            "log: {destination: file}\n",
            "1:20:",
            "unknown variant `file`",
        ),
        ("log: {facility: kern}\n", "1:17:", "unknown variant `kern`"),
        ("milter: {shutdown_grace: 0}\n", "1:26:", "from 1 second"),
        ("milter: {inline_judge: 0}\n", "1:24:", "from 1 KiB"),
        (
            "milter: {inline_judge: on}\n",
            "1:24:",
            "expected a number of bytes",
        ),
    ] {
        let e = err(&format!("library: l\n{text}"));
        let want = at.replacen("1:", "2:", 1);
        assert!(e.starts_with(&want), "{text}: expected at {want}, got: {e}");
        assert!(e.contains(needle), "{text}: expected {needle:?} in: {e}");
    }
    assert_eq!(
        ok("library: l\nsocket_owner: postfix$\n").socket_owner,
        Some(Account::Name("postfix$".into()))
    );
    assert_eq!(
        ok("library: l\nsocket_group: 0\n").socket_group,
        Some(Account::Id(0))
    );
    assert_eq!(
        ok("library: l\nmilter: {inline_judge: 64 KiB}\n")
            .milter
            .inline_judge,
        InlineBytes(Some(64 << 10))
    );
    assert!(err("library: l\nlog: {syslog_socket: ''}\n").contains("log.syslog_socket is empty"));
}

#[test]
fn empty_sections_and_keys_mean_defaults() {
    let c = ok(
        "library: l\nmilter:\njudge:\n  category_caps:\nlimits: {}\nexempt:\n  trusted_networks:\n",
    );
    assert_eq!(c.judge.reject_score.0, Some(10.0));
    assert_eq!(c.milter.max_connections.0, 100);
    assert!(c.exempt.trusted_networks.is_empty());
}

#[test]
fn a_scalar_needs_a_value() {
    assert_err("library: l\njudge:\n  reject_score:\n", "3:16:", "no value");
    assert_err("library: l\nlimits:\n  parts:\n", "3:9:", "no value");
    assert_err(
        "library: l\njudge:\n  tag_accepted:\n",
        "3:16:",
        "invalid type",
    );
}

#[test]
fn library_is_required() {
    let e = read("").unwrap_err();
    assert_eq!((e.line, e.column), (0, 0));
    assert!(e.message.contains("`library` is required"), "{e}");
    assert!(read("judge: {}\n").is_err());
    assert!(read("library: ''\n").unwrap_err().message.contains("empty"));
}

#[test]
fn unknown_keys_are_located() {
    assert_err("library: l\nlibary: x\n", "2:1:", "unknown field `libary`");
    assert_err(
        "library: l\njudge:\n  reject_score: 3\n  rejectscore: 4\n",
        "4:3:",
        "unknown field `rejectscore`",
    );
    assert_err(
        "library: l\nreplies:\n  reject: {code: 550, txt: x}\n",
        "3:23:",
        "unknown field `txt`",
    );
}

#[test]
fn duplicate_keys_are_located_at_the_second() {
    assert_err(
        "library: l\nlibrary: m\n",
        "2:1:",
        "duplicate key `library`",
    );
    assert_err(
        "library: l\njudge:\n  category_caps:\n    a: 1\n    b: 2\n    a: 3\n",
        "6:5:",
        "duplicate key `a`",
    );
}

#[test]
fn bad_values_are_located_at_the_value() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "listen: tcp:1.2.3.4:5\n",
            "1:9:",
            "inet:ADDRESS:PORT or unix:PATH",
        ),
        ("listen: inet:localhost:25\n", "1:9:", "IP address"),
        ("listen: inet:127.0.0.1:0\n", "1:9:", "port 0"),
        ("listen: 'unix:'\n", "1:9:", "needs a socket path"),
        ("socket_mode: 0999\n", "1:14:", "not a file mode"),
        ("socket_mode: 01777\n", "1:14:", "not a file mode"),
        (
            "milter:\n  max_connections: 0\n",
            "2:20:",
            "from 1 to 1000000",
        ),
        (
            "milter:\n  max_connections: many\n",
            "2:20:",
            "whole number",
        ),
        ("milter:\n  connection_timeout: 3d\n", "2:23:", "s, m or h"),
        (
            "milter:\n  connection_timeout: 0\n",
            "2:23:",
            "from 1 second",
        ),
        (
            "milter:\n  on_error: reject\n",
            "2:13:",
            "unknown variant `reject`",
        ),
        (
            "judge:\n  mode: strict\n",
            "2:9:",
            "unknown variant `strict`",
        ),
        (
            "judge:\n  reject_score: ten\n",
            "2:17:",
            "finite number or `off`",
        ),
        ("judge:\n  reject_score: .nan\n", "2:17:", "finite number"),
        ("judge:\n  tempfail_score: inf\n", "2:19:", "finite number"),
        (
            "judge:\n  category_caps:\n    a: -1\n",
            "3:8:",
            "zero or more",
        ),
        (
            "judge:\n  category_caps:\n    '': 1\n",
            "3:5:",
            "category name",
        ),
        (
            "judge:\n  header: 'X Bad'\n",
            "2:11:",
            "not a header field name",
        ),
        (
            "judge:\n  header: 'X:Bad'\n",
            "2:11:",
            "not a header field name",
        ),
        (
            "judge:\n  header: Subject\n",
            "2:11:",
            "standard header field",
        ),
        ("judge:\n  tag_accepted: maybe\n", "2:17:", "invalid type"),
        (
            "replies:\n  reject: {code: 450}\n",
            "2:18:",
            "5xx reply code",
        ),
        (
            "replies:\n  reject: {code: 5500}\n",
            "2:18:",
            "5xx reply code",
        ),
        (
            "replies:\n  tempfail: {code: 550}\n",
            "2:20:",
            "4xx reply code",
        ),
        ("replies:\n  reject: {status: 4.7.1}\n", "2:20:", "class 5"),
        (
            "replies:\n  tempfail: {status: 4.07.1}\n",
            "2:22:",
            "class 4",
        ),
        ("replies:\n  error: {status: 4.7}\n", "2:19:", "class 4"),
        (
            "replies:\n  reject: {text: 'naïve'}\n",
            "2:18:",
            "printable ASCII",
        ),
        (
            "replies:\n  reject: {text: ''}\n",
            "2:18:",
            "printable ASCII",
        ),
        (
            "replies:\n  quarantine: \"a\\tb\"\n",
            "2:15:",
            "printable ASCII",
        ),
        (
            "limits:\n  message_bytes: 10 MB\n",
            "2:18:",
            "KiB, MiB or GiB",
        ),
        (
            "limits:\n  message_bytes: 100\n",
            "2:18:",
            "from 1 KiB to 1 GiB",
        ),
        (
            "limits:\n  text_bytes: 2 GiB\n",
            "2:15:",
            "from 1 KiB to 1 GiB",
        ),
        ("limits:\n  parts: 0\n", "2:10:", "from 1 to 100000"),
        ("limits:\n  depth: 65\n", "2:10:", "from 1 to 64"),
        (
            "limits:\n  fallback_charset: klingon\n",
            "2:21:",
            "unknown charset `klingon`",
        ),
        (
            "exempt:\n  trusted_networks: [10.0.0.1/8]\n",
            "2:22:",
            "did you mean 10.0.0.0/8",
        ),
        (
            "exempt:\n  trusted_networks: [10.0.0.0/33]\n",
            "2:22:",
            "from 0 to 32",
        ),
        (
            "exempt:\n  trusted_networks:\n    - ::1\n    - nowhere\n",
            "4:7:",
            "IP address",
        ),
        (
            "exempt:\n  trusted_networks: 10.0.0.0/8\n",
            "2:21:",
            "invalid type",
        ),
        ("log:\n  level: loud\n", "2:10:", "unknown variant `loud`"),
    ];
    let mut wrong = Vec::new();
    for (text, at, needle) in cases {
        let e = err(&format!("{text}library: l\n"));
        if !e.starts_with(at) || !e.contains(needle) {
            wrong.push(format!("{text:?}: expected {at} {needle:?}, got {e}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn errors_name_the_path_in_the_key() {
    let e = err("judge:\n  reject_score: ten\nlibrary: l\n");
    assert!(e.contains("judge.reject_score"), "{e}");
}

#[test]
fn not_a_mapping() {
    assert_err("- a\n- b\n", "1:1:", "invalid type");
}

#[test]
fn file_errors_name_the_file() {
    let e = Config::load(Path::new("/nonexistent/milter.yaml")).unwrap_err();
    assert_eq!(e.path, Path::new("/nonexistent/milter.yaml"));
    assert_eq!(e.line, 0);
    let e = Config::load(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
    assert!(e.message.contains("not a regular file"), "{e}");
}

#[test]
fn a_plain_mode_is_octal() {
    assert_eq!(ok("library: l\nsocket_mode: 0640\n").socket_mode.0, 0o640);
    assert_eq!(ok("library: l\nsocket_mode: 660\n").socket_mode.0, 0o660);
}

#[test]
fn a_byte_order_mark_is_ignored() {
    ok("\u{feff}library: l\n");
}

#[test]
fn networks_contain() {
    let n = Net::parse("192.0.2.0/24").unwrap();
    assert!(n.contains("192.0.2.77".parse().unwrap()));
    assert!(!n.contains("192.0.3.1".parse().unwrap()));
    assert!(
        n.contains("::ffff:192.0.2.1".parse().unwrap()),
        "mapped IPv4"
    );
    assert!(!n.contains("2001:db8::1".parse().unwrap()));
    let n = Net::parse("2001:db8::/32").unwrap();
    assert!(n.contains("2001:db8:1::1".parse().unwrap()));
    assert!(!n.contains("2001:db9::1".parse().unwrap()));
    let all = Net::parse("0.0.0.0/0").unwrap();
    assert!(all.contains("203.0.113.9".parse().unwrap()));
    let one = Net::parse("::1").unwrap();
    assert_eq!(one.prefix, 128);
    assert!(one.contains(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])));
    assert_eq!(one.to_string(), "::1/128");
}

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_bytes("1024"), Ok(1024));
    assert_eq!(parse_bytes("4 KiB"), Ok(4096));
    assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
    assert!(parse_bytes("99999999999999999999").is_err());
    assert!(parse_bytes("KiB").is_err());
    assert_eq!(parse_seconds("90"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_seconds("2h"), Ok(Duration::from_secs(7200)));
    assert!(parse_seconds("25h").is_err());
}

#[test]
fn restart_needed_names_fixed_settings() {
    let a = ok("library: l\n");
    let b = ok(
        "library: other\nlisten: inet:127.0.0.1:9000\nmilter: {max_connections: 5}\njudge: {reject_score: 3}\n",
    );
    let changes = restart_needed(&a, &b);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].starts_with("listen"));
    assert!(changes[1].starts_with("milter.max_connections"));
    assert!(restart_needed(&a, &a).is_empty());
    let c = ok(
        "library: l\nsocket_group: mail\nlog: {destination: syslog, facility: daemon}\nmilter: {shutdown_grace: 5s}\n",
    );
    let changes = restart_needed(&a, &c);
    assert_eq!(
        changes,
        [
            "socket_group (unset → mail)",
            "log.destination (stderr → syslog)",
            "log.facility (mail → daemon)"
        ],
        "the grace time reloads"
    );
}

#[test]
fn behavior_defaults() {
    let c = ok("library: l\n");
    let b = &c.behavior;
    assert!(b.enabled);
    assert_eq!(b.records, None);
    assert_eq!(b.records_queue.0, 10_000);
    assert!(b.trusted_networks.is_empty() && b.trusted_logins.is_empty());
    assert_eq!(b.unknown_commands.disconnect_at.0, 5);
    assert_eq!(b.unknown_commands.reply.code.as_str(), "421");
    assert_eq!(b.unknown_commands.reply.status.as_str(), "4.7.0");
    assert_eq!(b.conformity.judge_factor.0, 0.0);
    assert_eq!(b.conformity.tempfail_score.0, None);
    assert_eq!(b.conformity.reject_score.0, None);
    assert_eq!(b.conformity.max_recipients.0, 100);
    assert_eq!(b.tracking.ipv4_prefix.0, 32);
    assert_eq!(b.tracking.ipv6_prefix.0, 64);
    assert_eq!(b.tracking.max_keys.by_kind(), [300_000, 100_000, 100_000]);
    assert_eq!(b.tracking.max_memory.0, 256 << 20);
    assert!(b.limits.is_empty());
    assert_eq!(b.replies.tempfail.code.as_str(), "451");
    assert_eq!(b.replies.reject.code.as_str(), "550");
}

#[test]
fn behavior_full_section() {
    let c = ok("\
library: l
behavior:
  records: log/sessions.jsonl
  trusted_networks: [10.0.0.0/8]
  trusted_logins: [relay-user]
  unknown_commands: {disconnect_at: 3, keep: 2, reply: {code: 421, status: 4.7.0, text: Bye}}
  conformity:
    weights: {helo.bare-ip: 2.5, hdr.missing-date: 0}
    judge_factor: 1.5
    tempfail_score: 5
    reject_score: off
    max_recipients: 50
    own_names: [MX.Example.COM]
  tracking: {ipv4_prefix: 24, ipv6_prefix: 56, max_keys: {ip: 1000}, max_memory: 64 MiB}
  limits:
    - {key: ip, metric: connections, window: 1m, buckets: 6, max: 30}
    - key: login
      metric: distinct_ips
      max: 5
      action: reject
      text: Account locked
");
    let b = &c.behavior;
    assert_eq!(b.records, Some("/etc/mailward/log/sessions.jsonl".into()));
    assert_eq!(b.trusted_logins[0].0, "relay-user");
    assert_eq!(b.unknown_commands.disconnect_at.0, 3);
    assert_eq!(b.unknown_commands.reply.text.as_str(), "Bye");
    let p = crate::behavior::Policy::compile(b);
    assert_eq!(
        p.weights.get(crate::behavior::finding::Code::HeloBareIp),
        2.5
    );
    assert_eq!(
        p.weights
            .get(crate::behavior::finding::Code::HdrMissingDate),
        0.0
    );
    assert_eq!(p.own_names, ["mx.example.com"]);
    assert_eq!(p.max_keys, [1000, 100_000, 100_000]);
    assert_eq!(p.rules.len(), 2);
    assert_eq!(
        (p.rules[0].window, p.rules[0].buckets, p.rules[0].max),
        (60, 6, 30)
    );
    assert_eq!(p.rules[1].window, 3600, "default window");
    assert_eq!(p.rules[1].reply.code, "550");
    assert_eq!(p.rules[1].reply.text, "Account locked");
    assert_eq!(p.tempfail_score, Some(5.0));
    assert_eq!(p.judge_factor, 1.5);
}

#[test]
fn behavior_errors_point_at_the_value() {
    assert_err(
        "library: l\nbehavior:\n  conformity:\n    weights: {helo.nope: 1}\n",
        "4:14",
        "unknown finding code `helo.nope`",
    );
    assert_err(
        "library: l\nbehavior:\n  limits:\n    - {key: ip, metric: connections, max: 1}\n    - {key: ip, metric: distinct_ips, max: 1}\n",
        "5:7",
        "metric `distinct_ips` is not counted for key `ip`",
    );
    assert_err(
        "library: l\nbehavior:\n  limits:\n    - {metric: distinct_logins, key: login, max: 1}\n",
        "4:7",
        "is not counted for key `login`",
    );
    assert_err(
        "library: l\nbehavior:\n  limits:\n    - {key: ip, metric: connections}\n",
        "4:7",
        "missing field `max`",
    );
    assert_err(
        "library: l\nbehavior:\n  limits:\n    - {key: ip, metric: connections, max: 1, per: 2}\n",
        "4:7",
        "unknown field `per`",
    );
    assert_err(
        "library: l\nbehavior:\n  limits:\n    - {key: ip, metric: conns, max: 1}\n",
        "4:",
        "unknown variant `conns`",
    );
    assert_err(
        "library: l\nbehavior:\n  limits:\n    - {key: ip, metric: spam, max: 1, buckets: 500}\n",
        "4:",
        "from 1 to 120",
    );
    assert_err(
        "library: l\nbehavior:\n  unknown_commands: {reply: {code: 521}}\n",
        "3:",
        "4xx",
    );
    assert_err(
        "library: l\nbehavior:\n  conformity: {own_names: [bad_name.example]}\n",
        "3:",
        "not a domain name",
    );
    let e = err(
        "library: l\nbehavior:\n  tracking: {max_keys: {ip: 10000000}, max_memory: 16 MiB}\n  limits:\n    - {key: ip, metric: connections, max: 1}\n",
    );
    assert!(
        e.starts_with("0:0: behavior: ") && e.contains("over tracking.max_memory"),
        "{e}"
    );
}

#[test]
fn metrics_and_admin() {
    let c = ok("library: l\n");
    assert_eq!(c.metrics.listen, None);
    assert_eq!(c.metrics.max_connections.0, 16);
    assert_eq!(c.metrics.top_entries.0, 20);
    assert!(!c.admin.enabled);
    assert_eq!(c.admin.token_file, None);
    let c = ok(
        "library: l\nmetrics: {listen: \"[::1]:9894\", top_entries: 5, max_connections: 2}\nadmin: {enabled: true, token_file: admin.token}\n",
    );
    assert_eq!(
        c.metrics.listen.map(|l| l.0),
        Some("[::1]:9894".parse().unwrap())
    );
    assert_eq!(c.metrics.top_entries.0, 5);
    assert_eq!(
        c.admin.token_file.as_deref(),
        Some(Path::new("/etc/mailward/admin.token"))
    );
    assert_err(
        "library: l\nmetrics:\n  listen: localhost:9894\n",
        "3:11:",
        "expected ADDRESS:PORT",
    );
    assert_err(
        "library: l\nmetrics:\n  top_entries: 1001\n",
        "3:16:",
        "from 0 to 1000",
    );
    // The admin API on an outside address needs a token.
    assert_err(
        "library: l\nmetrics: {listen: 0.0.0.0:9894}\nadmin: {enabled: true}\n",
        "0:0:",
        "admin.token_file",
    );
    ok("library: l\nmetrics: {listen: 0.0.0.0:9894}\n");
    ok("library: l\nmetrics: {listen: 0.0.0.0:9894}\nadmin: {enabled: true, token_file: t}\n");
    // The listener is fixed at start; the rest reloads.
    let a = ok("library: l\nmetrics: {listen: 127.0.0.1:9894}\n");
    let b = ok(
        "library: l\nmetrics: {listen: 127.0.0.1:9895, top_entries: 3}\nadmin: {enabled: true}\n",
    );
    let changes = restart_needed(&a, &b);
    assert_eq!(
        changes,
        ["metrics.listen (127.0.0.1:9894 → 127.0.0.1:9895)"]
    );
    let off = ok("library: l\n");
    assert_eq!(
        restart_needed(&off, &a),
        ["metrics.listen (off → 127.0.0.1:9894)"]
    );
}

// ---- garbled files ----

/// The configuration's own keys and values, to garble a file with.
const CONFIG_WORDS: &[&str] = &[
    "listen:",
    "library:",
    "milter:",
    "judge:",
    "limits:",
    "behavior:",
    "tracking:",
    "metrics:",
    "admin:",
    "logging:",
    "replies:",
    "max_connections:",
    "connection_timeout:",
    "inline_judge:",
    "message_bytes:",
    "reject_score:",
    "trusted_networks:",
    "conformity:",
    "unknown_commands:",
    "off",
    "10 MiB",
    "99999999999 GiB",
    "7210s",
    "0s",
    "1h",
    "inet:127.0.0.1:8894",
    "unix:/run/x.sock",
    "0.0.0.0/0",
    "::1/129",
    "192.0.2.0/33",
    "enforce",
    "monitor",
    "tempfail",
    "reject",
    "GB18030",
    "no-such-charset",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(384))]

    /// Whatever the edits to the shipped file, the reader answers with a
    /// configuration or an error located inside the file (or about the
    /// whole file), never a panic.
    #[test]
    fn garbled_configurations_are_refused_with_a_location(
        edits in crate::located::garble::edits(CONFIG_WORDS, 8),
    ) {
        use crate::located::garble;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("milter.yaml");
        let text = garble::apply(std::fs::read_to_string(path).unwrap_or_default(), edits);
        garble::located_inside(&text, Path::new("m.yaml"), read(&text))?;
    }
}
