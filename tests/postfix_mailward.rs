//! mailward itself behind a real Postfix: the `mailward` binary runs on its
//! own configuration and library, a private Postfix instance consults it
//! (see `support/postfix.rs`), and swaks plays the SMTP client.
//!
//! Without Postfix, swaks and root these tests are skipped (with a message);
//! with `CI=true` they fail instead.

mod support;

use std::time::Duration;

use support::mailward::MailwardProcess;
use support::postfix::PostfixInstance;
use support::smtp::{MAIL_FROMS, Smtp};

/// Upper bound for each wait on Postfix or mailward.
const WAIT: Duration = Duration::from_secs(30);

const LIBRARY: &str = "\
defaults: { weight: 1, category: spam }
entries:
  - { text: cheap pills, weight: 12, id: pills }
  - { text: 发票代开, weight: 12, id: zh-invoice }
  - { text: limited offer, weight: 3, id: offer }
";

/// mailward on [`LIBRARY`]; killed by pid on drop.
struct Mailward(MailwardProcess);

impl Mailward {
    /// Starts mailward with `judge` as its judge section.
    fn start(judge: &str) -> Mailward {
        Mailward::start_with(&format!("judge:\n{judge}"))
    }

    /// Starts mailward with `extra` appended to its configuration.
    fn start_with(extra: &str) -> Mailward {
        Mailward(MailwardProcess::start(LIBRARY, extra))
    }

    fn port(&self) -> u16 {
        self.0.port()
    }

    fn stop(&mut self) {
        self.0.stop();
    }

    fn log(&self) -> String {
        self.0.log()
    }

    /// Waits for a line of mailward's log that contains every one of `parts`.
    fn wait_log(&self, parts: &[&str]) -> Option<String> {
        self.0.wait_log(parts, WAIT)
    }

    /// The session records written to `sessions.jsonl`, once there are at
    /// least `n` (or after the wait).
    fn records(&self, n: usize) -> Vec<serde_json::Value> {
        self.0.records("sessions.jsonl", n, WAIT)
    }
}

fn send(pf: &PostfixInstance, subject: &str, body: &str) -> (i32, String) {
    let to = pf.address("user");
    let subject = format!("Subject: {subject}");
    pf.send(&[
        "--from",
        "sender@client.test",
        "--to",
        &to,
        "--header",
        &subject,
        "--body",
        body,
    ])
}

fn postfix(m: &Mailward) -> Option<PostfixInstance> {
    PostfixInstance::builder().milter_port(m.port()).start()
}

#[test]
fn spam_is_refused_and_ham_delivered() {
    let m = Mailward::start("  reject_score: 10\n  tempfail_score: 6\n");
    let Some(pf) = postfix(&m) else {
        return;
    };

    let (code, transcript) = send(&pf, "deal", "Get CHEAP\r\n  Pills today.");
    assert_eq!(code, 26, "refused after DATA\n{transcript}");
    assert!(
        transcript.contains("550 5.7.1 Message refused by content filter"),
        "{transcript}"
    );
    assert!(
        !transcript.contains("pills"),
        "the reply does not reveal the string\n{transcript}"
    );
    let line = pf
        .wait_log("milter-reject: END-OF-MESSAGE", WAIT)
        .unwrap_or_else(|| panic!("no milter-reject line:\n{}", pf.maillog()));
    assert!(
        line.contains("5.7.1 Message refused by content filter"),
        "{line}"
    );
    // mailward logs the verdict under Postfix's queue id.
    let queue_id = line
        .split(": milter-reject")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .expect("queue id in the milter-reject line")
        .to_string();
    let verdict = m
        .wait_log(&[&queue_id, "reject"])
        .unwrap_or_else(|| panic!("no mailward line for {queue_id}:\n{}", m.log()));
    assert!(verdict.contains("pills"), "entry id logged: {verdict}");

    let (code, transcript) = send(&pf, "hello", "A friendly note about lunch.");
    assert_eq!(code, 0, "accepted\n{transcript}");
    assert!(transcript.contains("250 2.0.0 Ok: queued"), "{transcript}");
    let delivered = pf
        .wait_delivered(|msg| msg.contains("Subject: hello"), WAIT)
        .unwrap_or_else(|| panic!("ham not delivered:\n{}", pf.maillog()));
    assert!(delivered.contains("friendly note"), "{delivered}");
    assert!(
        !delivered.contains("X-Mailward"),
        "no header on accepted mail by default\n{delivered}"
    );
}

#[test]
fn tag_mode_delivers_spam_with_the_verdict_header() {
    let m = Mailward::start("  mode: tag\n  tag_accepted: true\n");
    let Some(pf) = postfix(&m) else {
        return;
    };
    // A forged verdict header from outside must not survive.
    let to = pf.address("user");
    let (code, transcript) = pf.send(&[
        "--from",
        "sender@client.test",
        "--to",
        &to,
        "--header",
        "Subject: 发票",
        "--header",
        "X-Mailward: score=0.0 verdict=accept",
        "--body",
        "本公司长期发票代开，欢迎来电。",
    ]);
    assert_eq!(code, 0, "tag mode accepts\n{transcript}");
    let delivered = pf
        .wait_delivered(|msg| msg.contains("X-Mailward"), WAIT)
        .unwrap_or_else(|| panic!("nothing delivered:\n{}", pf.maillog()));
    assert!(
        delivered.contains("X-Mailward: score=12.0 verdict=reject"),
        "{delivered}"
    );
    assert!(
        !delivered.contains("verdict=accept"),
        "the forged header is removed\n{delivered}"
    );
    assert!(!pf.maillog().contains("milter-reject"), "{}", pf.maillog());
}

#[test]
fn a_stopped_milter_gives_postfix_default_tempfail() {
    let mut m = Mailward::start("  reject_score: 10\n");
    let Some(pf) = postfix(&m) else {
        return;
    };
    let (code, transcript) = send(&pf, "before", "Nothing to see.");
    assert_eq!(code, 0, "accepted while mailward runs\n{transcript}");

    m.stop();
    let (code, transcript) = send(&pf, "after", "Nothing to see either.");
    assert_ne!(code, 0, "refused while mailward is down\n{transcript}");
    assert!(
        transcript.contains("451 4.7.1"),
        "milter_default_action = tempfail\n{transcript}"
    );
    assert!(
        pf.wait_log("Connection refused", WAIT).is_some(),
        "{}",
        pf.maillog()
    );
}

#[test]
fn unknown_commands_through_postfix_end_with_mailwards_421() {
    let m = Mailward::start_with(
        "behavior:\n  records: sessions.jsonl\n  unknown_commands: {disconnect_at: 3}\n",
    );
    let Some(pf) = postfix(&m) else {
        return;
    };
    let mut s = Smtp::connect(pf.smtp_addr(), WAIT);
    assert!(s.send("EHLO client.test").starts_with("250"));
    for cmd in ["XFOO", "XBAR one two"] {
        let r = s.send(cmd);
        assert!(r.starts_with("500 5.5.2"), "Postfix's own answer: {r}");
    }
    let r = s.send("XBAZ");
    assert_eq!(
        r.trim_end(),
        "421 4.7.0 Too many unknown commands, closing connection"
    );
    assert_eq!(s.reply(), "", "Postfix hung up");
    let line = pf
        .wait_log("milter-reject: UNKNOWN", WAIT)
        .unwrap_or_else(|| panic!("no milter-reject line:\n{}", pf.maillog()));
    assert!(
        line.contains("421 4.7.0 Too many unknown commands, closing connection"),
        "{line}"
    );
    assert!(
        line.contains("NOQUEUE: milter-reject: UNKNOWN from localhost[127.0.0.1]"),
        "{line}"
    );
    let records = m.records(1);
    let r = &records[0];
    assert_eq!(r["unknown_total"], 3);
    assert_eq!(r["disconnected"], true);
    // Postfix passes the command word only.
    assert_eq!(
        r["unknown_commands"],
        serde_json::json!(["XFOO", "XBAR", "XBAZ"])
    );
    assert_eq!(r["helo"], "client.test");
}

#[test]
fn what_postfix_passes_to_the_conformity_checks() {
    let m = Mailward::start_with("behavior:\n  records: sessions.jsonl\n");
    // From its own addresses (the test's 127.0.0.1) Postfix adds a missing
    // Date before the milter sees the headers; not from other clients.
    let Some(pf) = PostfixInstance::builder()
        .milter_port(m.port())
        .param("local_header_rewrite_clients", "")
        .start()
    else {
        return;
    };
    let mut s = Smtp::connect(pf.smtp_addr(), WAIT);
    let to = format!("RCPT TO:<{}>", pf.address("user"));
    let mut replies = Vec::new();
    let mut say = |s: &mut Smtp, line: &str| {
        let r = s.send(line);
        replies.push(format!("{line} -> {}", r.trim_end()));
    };
    say(&mut s, "EHLO 192.0.2.1");
    say(&mut s, "EHLO client.test");
    for mail in MAIL_FROMS {
        say(&mut s, mail);
        say(&mut s, &to);
        say(&mut s, "RSET");
    }
    say(&mut s, "MAIL FROM:<sender@client.test>");
    say(&mut s, "RCPT TO:<postmaster>");
    say(&mut s, "RCPT TO:user@example.test");
    say(&mut s, "RCPT TO:<user@example.test> NOTIFY=NEVER");
    say(&mut s, "DATA");
    let long = "x".repeat(1200);
    let data = format!(
        "From: a@client.test\r\nSubject: one\r\nSubject: two\r\nX-Long: {long}\r\nX-Utf8: h\u{e9}\r\n\r\nbody\r\n."
    );
    say(&mut s, &data);
    say(&mut s, "QUIT");
    let records = m.records(1);
    let r = &records[0];
    let codes: Vec<&str> = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().unwrap_or_default())
        .collect();
    // Refused by Postfix itself, so never seen: `client..test` (501),
    // `FOO=bar` (555), `SIZE=abc` (501). Valid and passed: the quoted local
    // part, the address literal, `<postmaster>`, NOTIFY, BODY.
    assert_eq!(
        codes,
        [
            "helo.bare-ip",
            "helo.changed",
            "mail.no-angle-brackets",
            "mail.source-route",
            "mail.bad-local-part",
            "mail.8bit-without-smtputf8",
            "rcpt.no-angle-brackets",
            "hdr.missing-date",
            "hdr.duplicate-subject",
            "hdr.8bit",
            "hdr.line-too-long",
        ],
        "{}\n{}",
        replies.join("\n"),
        serde_json::to_string_pretty(r).unwrap_or_default()
    );
    // Postfix passes the path as the client wrote it.
    assert_eq!(r["messages"][0]["sender"], "sender@client.test");
    assert_eq!(r["messages"][7]["recipients"], 3);
    assert_eq!(r["messages"][7]["verdict"], "accept");
    assert!(
        r["messages"][7]["queue_id"]
            .as_str()
            .is_some_and(|q| !q.is_empty())
    );
}

#[test]
fn postfix_skips_the_rest_of_a_body_past_the_kept_bytes() {
    let m = Mailward::start_with("limits:\n  message_bytes: 1 KiB\n");
    let Some(pf) = postfix(&m) else {
        return;
    };
    // 2 MiB of body, the spam string at its end (past the kept bytes).
    let line = "lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n";
    let body = format!("{}cheap pills\r\n", line.repeat((2 << 20) / line.len()));
    // Too long for a command line: swaks reads it from a file (`@path`).
    let path = std::env::temp_dir().join(format!("mailward-large-{}.txt", std::process::id()));
    std::fs::write(&path, body).expect("write the body");
    let (code, transcript) = send(&pf, "large", &format!("@{}", path.display()));
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "accepted: judged on the kept bytes\n{transcript}");
    let delivered = pf
        .wait_delivered(|msg| msg.contains("Subject: large"), WAIT)
        .unwrap_or_else(|| panic!("not delivered:\n{}", pf.maillog()));
    assert!(delivered.contains("cheap pills"), "delivered whole");
    // Postfix stopped sending after the chunk that filled the kept bytes.
    m.0.assert_skipped(&["verdict=accept"], WAIT);
}
