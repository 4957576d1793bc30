//! mailward behind a real Sendmail: the `mailward` binary runs on its own
//! configuration and library (`support/mailward.rs`), a private Sendmail
//! instance (`support/sendmail.rs`) consults it through the lines of
//! `contrib/sendmail/mailward.mc` (only the port changed), and a plain SMTP
//! client talks to Sendmail.
//!
//! Ignored by default: on Debian, installing Sendmail (`sendmail-bin`)
//! removes Postfix, which the other end-to-end tests need. `.ci/run` runs
//! these in a second stage, after the Postfix tests:
//! `cargo test --test sendmail_e2e -- --ignored`. Without Sendmail they
//! are skipped with a message; with `CI=true` they fail instead.

mod support;

use std::time::Duration;

use support::mailward::MailwardProcess;
use support::sendmail::{HOSTNAME, SendmailInstance};
use support::smtp::{MAIL_FROMS, Smtp};

/// Upper bound for each wait on Sendmail or mailward.
const WAIT: Duration = Duration::from_secs(30);

/// The shipped .mc lines.
const CONTRIB_MC: &str = include_str!("../contrib/sendmail/mailward.mc");

const LIBRARY: &str = "\
defaults: { weight: 1, category: spam }
entries:
  - { text: cheap pills, weight: 12, id: pills }
  - { text: 发票代开, weight: 12, id: zh-invoice }
";

const RECORDS: &str = "sessions.jsonl";

/// The contrib lines, pointed at the milter on `port`.
fn contrib_mc(port: u16) -> String {
    const SHIPPED: &str = "S=inet:8894@127.0.0.1";
    assert!(
        CONTRIB_MC.contains(SHIPPED),
        "contrib/sendmail/mailward.mc names {SHIPPED}"
    );
    CONTRIB_MC.replace(SHIPPED, &format!("S=inet:{port}@127.0.0.1"))
}

/// mailward with `extra` configuration, and Sendmail in front of it.
fn start(extra: &str) -> Option<(MailwardProcess, SendmailInstance)> {
    let m = MailwardProcess::start(
        LIBRARY,
        &format!("behavior:\n  records: {RECORDS}\n{extra}"),
    );
    let sm = SendmailInstance::builder()
        .mc(contrib_mc(m.port()))
        .start()?;
    Some((m, sm))
}

/// Connects, reads the greeting and says EHLO.
fn connect(sm: &SendmailInstance) -> Smtp {
    let mut s = greeted(sm);
    let ehlo = s.send("EHLO client.test");
    assert!(ehlo.starts_with("250"), "{ehlo}");
    s
}

/// Connects and reads the greeting.
fn greeted(sm: &SendmailInstance) -> Smtp {
    Smtp::connect(sm.smtp_addr(), WAIT)
}

/// The queue id in Sendmail's `250 2.0.0 <id> Message accepted for delivery`.
fn queue_id(reply: &str) -> String {
    reply
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no queue id in {reply:?}"))
        .to_string()
}

#[test]
#[ignore = "needs Sendmail, which replaces Postfix: .ci/run runs it in its second stage"]
fn spam_is_refused_with_550_and_ham_delivered() {
    let Some((m, sm)) = start("judge:\n  reject_score: 10\n  tempfail_score: 6\n") else {
        return;
    };
    let to = sm.address("user");

    let mut s = connect(&sm);
    let r = s.message(&to, &["Subject: deal"], "Get CHEAP\n  Pills today.");
    assert_eq!(
        r.trim_end(),
        "550 5.7.1 Message refused by content filter",
        "spam refused at end of data"
    );
    // Same session: RSET reaches mailward as an abort, the next message is
    // judged on its own.
    assert!(s.send("RSET").starts_with("250"));
    let r = s.message(&to, &["Subject: hello"], "A friendly note about lunch.");
    assert!(r.starts_with("250 2.0.0 "), "ham accepted: {r}");
    let ham_id = queue_id(&r);
    assert!(s.send("QUIT").starts_with("221"));

    // Sendmail logs the milter's verdict under its queue id.
    let line = sm
        .wait_log(
            "Milter: data, reject=550 5.7.1 Message refused by content filter",
            WAIT,
        )
        .unwrap_or_else(|| panic!("no milter reject line in Sendmail's log:\n{}", sm.log()));
    let spam_id = line
        .split(": Milter:")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .expect("queue id in the Milter line")
        .to_string();
    // mailward logs the same queue ids (macro i) with its verdicts.
    let verdict = m
        .wait_log(&[&spam_id, "verdict=reject", "ids=pills"], WAIT)
        .unwrap_or_else(|| panic!("no mailward line for {spam_id}:\n{}", m.log()));
    assert!(verdict.contains("act=reject"), "{verdict}");
    assert!(
        m.wait_log(&[&ham_id, "verdict=accept", "act=deliver"], WAIT)
            .is_some(),
        "no accept line for {ham_id}:\n{}",
        m.log()
    );

    let delivered = sm
        .wait_delivered(|msg| msg.contains("Subject: hello"), WAIT)
        .unwrap_or_else(|| panic!("ham not delivered; queue {:?}", sm.queue()));
    assert!(delivered.contains("friendly note"), "{delivered}");
    assert!(
        delivered.contains(&format!("by {HOSTNAME}")),
        "Sendmail's Received line: {delivered}"
    );
    assert!(
        !delivered.contains("X-Mailward"),
        "no header on accepted mail by default\n{delivered}"
    );
    assert!(
        sm.delivered()
            .iter()
            .all(|msg| !msg.contains("Subject: deal")),
        "spam never delivered"
    );

    // One session record: both messages, with Sendmail's queue ids.
    let records = m.records(RECORDS, 1, WAIT);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["helo"], "client.test");
    assert_eq!(r["client"]["addr"], "127.0.0.1");
    let messages = r["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{r}");
    assert_eq!(messages[0]["queue_id"], spam_id.as_str());
    assert_eq!(messages[0]["verdict"], "reject");
    assert_eq!(messages[0]["refused_by"], "content");
    assert_eq!(messages[1]["queue_id"], ham_id.as_str());
    assert_eq!(messages[1]["verdict"], "accept");
    // Sendmail passes the path with its angle brackets.
    assert_eq!(messages[1]["sender"], "<sender@client.test>");
    assert_eq!(messages[1]["recipients"], 1);
}

#[test]
#[ignore = "needs Sendmail, which replaces Postfix: .ci/run runs it in its second stage"]
fn tag_mode_adds_the_verdict_header_and_removes_forged_ones() {
    let Some((_m, sm)) = start("judge:\n  mode: tag\n") else {
        return;
    };
    let to = sm.address("user");
    let mut s = connect(&sm);
    let r = s.message(
        &to,
        &[
            "Subject: =?UTF-8?B?5Y+R56Wo?=",
            "X-Mailward: score=0.0 verdict=accept",
            "Content-Type: text/plain; charset=UTF-8",
            "Content-Transfer-Encoding: 8bit",
            "X-Mailward: score=-5 verdict=accept",
        ],
        "本公司长期发票代开，欢迎来电。",
    );
    assert!(r.starts_with("250 2.0.0 "), "tag mode delivers: {r}");
    assert!(s.send("QUIT").starts_with("221"));
    let delivered = sm
        .wait_delivered(|msg| msg.contains("X-Mailward"), WAIT)
        .unwrap_or_else(|| panic!("nothing delivered; queue {:?}", sm.queue()));
    let headers: Vec<&str> = delivered
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("X-Mailward"))
        .collect();
    assert_eq!(
        headers,
        ["X-Mailward: score=12.0 verdict=reject gen=1"],
        "one header, mailward's; both forged ones removed\n{delivered}"
    );
}

#[test]
#[ignore = "needs Sendmail, which replaces Postfix: .ci/run runs it in its second stage"]
fn quarantine_holds_the_message_in_sendmails_queue() {
    let Some((m, sm)) =
        start("judge:\n  reject_score: off\n  tempfail_score: off\n  quarantine_score: 5\n")
    else {
        return;
    };
    let to = sm.address("user");
    let mut s = connect(&sm);
    let r = s.message(&to, &["Subject: deal"], "cheap pills");
    assert!(r.starts_with("250 2.0.0 "), "accepted, then held: {r}");
    let id = queue_id(&r);
    assert!(s.send("QUIT").starts_with("221"));
    let line = sm
        .wait_log("quarantine=", WAIT)
        .unwrap_or_else(|| panic!("no quarantine line:\n{}", sm.log()));
    assert!(line.contains(&id), "{line}");
    assert!(line.contains("held by content filter"), "{line}");
    assert!(
        m.wait_log(&[&id, "verdict=quarantine", "act=quarantine"], WAIT)
            .is_some(),
        "{}",
        m.log()
    );
    // A quarantined queue file is an hf file, left for the administrator.
    let held = format!("hf{id}");
    assert!(
        eventually(|| sm.queue().contains(&held)),
        "queue: {:?}",
        sm.queue()
    );
    assert!(sm.delivered().is_empty(), "nothing delivered");
}

/// Polls `f` for up to [`WAIT`].
fn eventually(f: impl Fn() -> bool) -> bool {
    support::postfix::poll(WAIT, || f().then_some(())).is_some()
}

#[test]
#[ignore = "needs Sendmail, which replaces Postfix: .ci/run runs it in its second stage"]
fn a_stopped_milter_gives_a_temporary_failure_with_f_t() {
    let Some((mut m, sm)) = start("") else {
        return;
    };
    let to = sm.address("user");
    let mut s = connect(&sm);
    let r = s.message(&to, &["Subject: before"], "Nothing to see.");
    assert!(r.starts_with("250"), "accepted while mailward runs: {r}");
    assert!(s.send("QUIT").starts_with("221"));

    m.stop();
    let mut s = connect(&sm);
    let r = s.message(&to, &["Subject: after"], "Nothing to see either.");
    assert!(
        r.starts_with("451 4."),
        "F=T: a temporary failure while mailward is down: {r}"
    );
    assert!(
        sm.wait_log("Milter (mailward): to error state", WAIT)
            .is_some(),
        "{}",
        sm.log()
    );
}

/// The forms of `tests/postfix_mailward.rs`'s conformity probe, through
/// Sendmail with its defaults: what reaches the checks (docs/behavior.md,
/// "What the MTA lets through").
#[test]
#[ignore = "needs Sendmail, which replaces Postfix: .ci/run runs it in its second stage"]
fn what_sendmail_passes_to_the_conformity_checks() {
    let Some((m, sm)) = start("") else {
        return;
    };
    let mut s = greeted(&sm);
    let to = format!("RCPT TO:<{}>", sm.address("user"));
    let mut replies = Vec::new();
    let mut say = |s: &mut Smtp, line: &str| {
        let r = s.send(line);
        replies.push(format!("{line} -> {}", r.trim_end()));
        r
    };
    // Sendmail takes MAIL before any HELO.
    assert!(say(&mut s, "MAIL FROM:<early@client.test>").starts_with("250"));
    say(&mut s, "RSET");
    say(&mut s, "EHLO 192.0.2.1");
    say(&mut s, "EHLO client.test");
    // An unknown command reaches the milter with its argument.
    say(&mut s, "XBAR one");
    for mail in MAIL_FROMS {
        say(&mut s, mail);
        say(&mut s, &to);
        say(&mut s, "RSET");
    }
    // Between a transaction's end and the next MAIL, Sendmail keeps unknown
    // commands from its milters.
    say(&mut s, "XFOO two");
    say(&mut s, "MAIL FROM:<sender@client.test>");
    say(&mut s, "RCPT TO:<postmaster>");
    say(&mut s, "RCPT TO:user@example.test");
    say(&mut s, "RCPT TO:<user@example.test> NOTIFY=NEVER");
    say(&mut s, "DATA");
    let long = "x".repeat(1200);
    let data = format!(
        "Subject: one\r\nSubject: two\r\nX-Long: {long}\r\nX-Utf8: h\u{e9}\r\n\r\nbody\r\n."
    );
    let end = say(&mut s, &data);
    assert!(end.starts_with("250"), "{end}");
    say(&mut s, "QUIT");
    let records = m.records(RECORDS, 1, WAIT);
    let r = &records[0];
    let codes: Vec<&str> = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().unwrap_or_default())
        .collect();
    let context = || {
        format!(
            "{}\n{}",
            replies.join("\n"),
            serde_json::to_string_pretty(r).unwrap_or_default()
        )
    };
    // Refused by Sendmail itself, so never seen: `client..test` (553
    // 5.1.2), `FOO=bar` (555 5.5.4). Passed: everything else, SIZE=abc
    // included; Sendmail adds no Date or From for the client.
    assert_eq!(
        codes,
        [
            "mail.no-helo",
            "helo.bare-ip",
            "helo.changed",
            "cmd.unknown",
            "mail.no-angle-brackets",
            "mail.source-route",
            "mail.bad-local-part",
            "mail.bad-param",
            "mail.8bit-without-smtputf8",
            "rcpt.no-angle-brackets",
            "hdr.missing-from",
            "hdr.missing-date",
            "hdr.duplicate-subject",
            "hdr.8bit",
            "hdr.line-too-long",
        ],
        "{}",
        context()
    );
    assert_eq!(
        r["unknown_commands"],
        serde_json::json!(["XBAR one"]),
        "{}",
        context()
    );
    let messages = r["messages"].as_array().expect("messages");
    // Sendmail passes the path as the client wrote it.
    assert_eq!(messages[1]["sender"], "sender@client.test", "{}", context());
    let last = messages.last().expect("a message");
    assert_eq!(last["verdict"], "accept", "{}", context());
    assert_eq!(last["recipients"], 3, "{}", context());
}

#[test]
#[ignore = "needs Sendmail, which replaces Postfix: .ci/run runs it in its second stage"]
fn unknown_commands_through_sendmail_end_with_mailwards_421() {
    let Some((m, sm)) = start("  unknown_commands: {disconnect_at: 3}\n") else {
        return;
    };
    let mut s = connect(&sm);
    for cmd in ["XFOO", "XBAR one two"] {
        let r = s.send(cmd);
        assert!(r.starts_with("500 5.5.1"), "Sendmail's own answer: {r}");
    }
    let r = s.send("XBAZ");
    assert_eq!(
        r.trim_end(),
        "421 4.7.0 Too many unknown commands, closing connection"
    );
    assert_eq!(s.reply(), "", "Sendmail hung up");
    let records = m.records(RECORDS, 1, WAIT);
    let r = &records[0];
    assert_eq!(r["unknown_total"], 3);
    assert_eq!(r["disconnected"], true);
    // Sendmail passes the whole command line.
    assert_eq!(
        r["unknown_commands"],
        serde_json::json!(["XFOO", "XBAR one two", "XBAZ"])
    );
}

#[test]
#[ignore = "needs Sendmail, which replaces Postfix: .ci/run runs it in its second stage"]
fn sendmail_offers_the_options_mailward_asks_and_skips_a_long_body() {
    let Some((m, sm)) = start("limits:\n  message_bytes: 1 KiB\n") else {
        return;
    };
    let to = sm.address("user");
    // 2 MiB of body, the spam string at its end (past the kept bytes).
    let line = "lorem ipsum dolor sit amet, consectetur adipiscing elit\n";
    let body = format!("{}cheap pills\n", line.repeat((2 << 20) / line.len()));
    let mut s = connect(&sm);
    let r = s.message(&to, &["Subject: large"], &body);
    assert!(r.starts_with("250 2.0.0 "), "judged on the kept bytes: {r}");
    let id = queue_id(&r);
    assert!(s.send("QUIT").starts_with("221"));

    // Sendmail offered what mailward asks, and stopped sending after the
    // chunk that filled the kept bytes.
    m.assert_skipped(&[&id, "verdict=accept"], WAIT);
    let delivered = sm
        .wait_delivered(|msg| msg.contains("Subject: large"), WAIT)
        .unwrap_or_else(|| panic!("not delivered; queue {:?}", sm.queue()));
    assert!(delivered.contains("cheap pills"), "delivered whole");
}
