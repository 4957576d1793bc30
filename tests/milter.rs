//! The milter through a real milter client (indymilter-test): each test
//! starts `mailward::run` on its own configuration and library, on
//! 127.0.0.1 and a free port, drives whole SMTP transactions through the
//! milter protocol and checks the replies and end-of-message actions.

mod common;

use common::*;
use indymilter_test::{Actions, MacroStage, ProtoOpts, Status};

/// Entries for most tests. With the default thresholds (tempfail 6, reject
/// 10): one brand name tempfails, two reject.
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
";

const SPAM: &str = "Hello,\r\nbuy viagra and cialis today.\r\n";
const HAM: &str = "Hi Alice,\r\nthe meeting moved to Thursday.\r\n";

#[tokio::test]
async fn spam_is_rejected_with_the_configured_reply() {
    let m = Milter::start(
        "replies:\n  reject: {code: 554, status: 5.7.0, text: Refused by policy}\n",
        LIBRARY,
    )
    .await;
    let mut c = m.client().await;
    let (actions, status) = c.send(&Msg::new("offer", SPAM).id("SPAM1")).await;
    assert!(is_reject(&status), "{status:?}");
    assert_eq!(
        reject_text(&status).as_deref(),
        Some("554 5.7.0 Refused by policy")
    );
    assert!(added_headers(&actions).is_empty());
    let line = log_line("SPAM1");
    for part in [
        "client=client.example[192.0.2.10]",
        "from=<sender@example.net>",
        "verdict=reject act=reject score=12.0 gen=1",
        "hits=2 ids=en-viagra,en-cialis",
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn the_default_reject_reply_does_not_name_the_string() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    let text = reject_text(&status).unwrap();
    assert!(text.starts_with("550 5.7.1 "), "{text}");
    assert!(!text.contains("viagra") && !text.contains("en-"), "{text}");
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn ham_is_accepted_untouched() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let (actions, status) = c.send(&Msg::new("meeting", HAM)).await;
    assert_eq!(status, Status::Accept);
    assert!(actions.actions.is_empty(), "{actions:?}");
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn the_tempfail_threshold_gives_a_4xx() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let (_, status) = c.send(&Msg::new("offer", "only viagra here\r\n")).await;
    assert!(is_tempfail(&status), "{status:?}");
    let text = reject_text(&status).unwrap();
    assert!(text.starts_with("451 4.7.1 "), "{text}");
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn tag_mode_adds_the_header_and_accepts() {
    let m = Milter::start("judge:\n  mode: tag\n", LIBRARY).await;
    let mut c = m.client().await;
    let (actions, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert_eq!(status, Status::Accept);
    assert_eq!(
        added_headers(&actions),
        [(
            "X-Mailward".to_string(),
            "score=12.0 verdict=reject gen=1".to_string()
        )]
    );
    let (actions, status) = c.send(&Msg::new("meeting", HAM)).await;
    assert_eq!(status, Status::Accept);
    assert!(added_headers(&actions).is_empty(), "ham is not tagged");
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn tag_accepted_and_tag_actions_add_the_header() {
    let m = Milter::start(
        "judge:\n  tag_accepted: true\n  header: X-Spam-Verdict\n",
        LIBRARY,
    )
    .await;
    let mut c = m.client().await;
    let (actions, status) = c.send(&Msg::new("meeting", HAM)).await;
    assert_eq!(status, Status::Accept);
    assert_eq!(
        added_headers(&actions),
        [(
            "X-Spam-Verdict".to_string(),
            "score=0.0 verdict=accept gen=1".to_string()
        )]
    );
    let (actions, status) = c.send(&Msg::new("a free gift", HAM)).await;
    assert_eq!(status, Status::Accept);
    assert_eq!(added_headers(&actions)[0].1, "score=0.0 verdict=tag gen=1");
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn forged_verdict_headers_are_removed() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let msg = Msg::new("meeting", HAM)
        .header("X-Mailward", "score=0.0 verdict=accept gen=1")
        .header("Received", "from somewhere")
        .header("x-mailward", "trust me");
    let (actions, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    assert_eq!(
        deleted_headers(&actions),
        [("X-Mailward".to_string(), 2), ("X-Mailward".to_string(), 1)]
    );
    // In tag mode the forged ones go and the real one is added.
    c.close().await;
    m.stop().await;

    let m = Milter::start("judge:\n  mode: tag\n", LIBRARY).await;
    let mut c = m.client().await;
    let msg = Msg::new("offer", SPAM).header("X-Mailward", "score=0.0 verdict=accept");
    let (actions, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    assert_eq!(deleted_headers(&actions), [("X-Mailward".to_string(), 1)]);
    assert_eq!(added_headers(&actions).len(), 1);
    assert!(added_headers(&actions)[0].1.contains("verdict=reject"));
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn quarantine_uses_the_quarantine_action() {
    let m = Milter::start("replies:\n  quarantine: held for review\n", LIBRARY).await;
    let mut c = m.client().await;
    let (actions, status) = c
        .send(&Msg::new("account", "please send your bank details\r\n"))
        .await;
    assert_eq!(status, Status::Accept);
    assert_eq!(
        quarantine_reason(&actions).as_deref(),
        Some("held for review")
    );
    assert_eq!(
        added_headers(&actions),
        [(
            "X-Mailward".to_string(),
            "score=1.0 verdict=quarantine gen=1".to_string()
        )]
    );
    c.close().await;

    // An MTA that does not offer quarantine still gets an answer.
    let mut c = m.client_with(Actions::ADD_HEADER).await;
    assert_eq!(c.conn.negotiated_actions(), Actions::ADD_HEADER);
    let (actions, status) = c
        .send(&Msg::new("account", "please send your bank details\r\n"))
        .await;
    assert_eq!(status, Status::Accept);
    assert_eq!(quarantine_reason(&actions), None);
    assert_eq!(added_headers(&actions).len(), 1);
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn negotiation_requests_macros_and_only_offered_actions() {
    let m = Milter::start("", LIBRARY).await;
    let c = m.client().await;
    assert_eq!(
        c.conn.negotiated_actions(),
        Actions::ADD_HEADER
            | Actions::CHANGE_HEADER
            | Actions::QUARANTINE
            | Actions::REQUEST_MACROS
    );
    let macros = c.conn.requested_macros();
    let at = |s| {
        macros
            .get(&s)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    assert!(at(MacroStage::Connect).contains("{client_addr}"));
    assert!(at(MacroStage::Connect).contains("{client_name}"));
    assert!(at(MacroStage::Connect).contains("{daemon_addr}"));
    assert!(at(MacroStage::Connect).split(' ').any(|m| m == "j"));
    assert!(at(MacroStage::Data).split(' ').any(|m| m == "i"));
    assert!(at(MacroStage::Mail).contains("{auth_authen}"));
    assert!(at(MacroStage::Mail).contains("{auth_type}"));
    assert!(at(MacroStage::Rcpt).contains("{rcpt_addr}"));
    assert!(at(MacroStage::Eom).split(' ').any(|m| m == "i"));
    c.close().await;

    let c = m.client_with(Actions::ADD_HEADER | Actions::ADD_RCPT).await;
    assert_eq!(c.conn.negotiated_actions(), Actions::ADD_HEADER);
    assert!(
        c.conn.requested_macros().is_empty(),
        "no macro requests unless offered"
    );
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn postmaster_and_abuse_are_exempt() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let (actions, status) = c
        .send(
            &Msg::new("offer", SPAM)
                .to("<Postmaster@example.com>")
                .id("PM1"),
        )
        .await;
    assert_eq!(status, Status::Accept);
    assert!(actions.actions.is_empty());
    let line = log_line("PM1");
    assert!(
        line.contains("verdict=reject act=deliver score=12.0 gen=1 exempt=role-recipient"),
        "judged and logged though delivered: {line}"
    );
    let mut msg = Msg::new("offer", SPAM);
    msg.rcpts = vec!["<alice@example.com>".into(), "<abuse@example.com>".into()];
    let (_, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    // The same message to an ordinary mailbox is refused.
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert!(is_reject(&status), "{status:?}");
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn trusted_networks_and_authenticated_senders_are_exempt_when_configured() {
    let m = Milter::start("exempt:\n  trusted_networks: [192.0.2.0/24]\n", LIBRARY).await;
    let mut c = m.client().await; // connects from 192.0.2.10
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    m.stop().await;

    let m = Milter::start("exempt:\n  authenticated: true\n", LIBRARY).await;
    let mut c = m.client().await;
    let mut msg = Msg::new("offer", SPAM);
    msg.login = Some("bob".into());
    let (_, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    let mut c = m.client().await;
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert!(is_reject(&status), "not authenticated: {status:?}");
    c.close().await;
    m.stop().await;

    // Without the setting, a login does not exempt.
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let (_, status) = c.send(&msg).await;
    assert!(is_reject(&status), "{status:?}");
    c.close().await;
    m.stop().await;
}

fn gbk(s: &str) -> Vec<u8> {
    let (bytes, _, bad) = encoding_rs::GBK.encode(s);
    assert!(!bad);
    bytes.into_owned()
}

#[tokio::test]
async fn chinese_text_in_legacy_encodings_hits_chinese_entries() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;

    // A base64 GB2312 body.
    let body = base64(&gbk("您好！专业代开发票，请联系我们。\r\n"));
    let msg = Msg::new("hello", body)
        .header("MIME-Version", "1.0")
        .header("Content-Type", "text/plain; charset=\"GB2312\"")
        .header("Content-Transfer-Encoding", "base64");
    let (_, status) = c.send(&msg).await;
    assert!(is_reject(&status), "base64 GB2312 body: {status:?}");

    // An RFC 2047 GBK subject.
    let subject = format!("=?GBK?B?{}?=", base64(&gbk("在家刷单，日结")));
    let (_, status) = c.send(&Msg::new(&subject, "see subject\r\n")).await;
    assert!(is_reject(&status), "RFC 2047 GBK subject: {status:?}");

    // 8-bit GBK text with no charset.
    let msg = Msg::new("hello", gbk("诚信办证，质量保证。\r\n"))
        .header("MIME-Version", "1.0")
        .header("Content-Type", "text/plain")
        .header("Content-Transfer-Encoding", "8bit");
    let (_, status) = c.send(&msg).await;
    assert!(is_reject(&status), "8-bit GBK without charset: {status:?}");

    // The same encodings without a library string pass.
    let msg = Msg::new("hello", gbk("明天下午三点开会。\r\n")).header("Content-Type", "text/plain");
    let (_, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn an_html_only_message_hits_through_its_text_and_its_links() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let html = |body: &str| {
        Msg::new("news", format!("<html><body>{body}</body></html>\r\n"))
            .header("MIME-Version", "1.0")
            .header("Content-Type", "text/html; charset=utf-8")
    };

    let (_, status) = c
        .send(&html(
            "<p>Cheap&nbsp;<b>via</b><b>gra</b> &amp; <i>cialis</i></p>",
        ))
        .await;
    // Tags split inside a word join up in the text: "viagra".
    assert!(is_reject(&status), "text: {status:?}");

    let (_, status) = c
        .send(&html(
            "<p>Visit <a href=\"https://www.spam-domain.example/offer?id=1\">our shop</a></p>",
        ))
        .await;
    assert!(is_reject(&status), "link host: {status:?}");

    let (_, status) = c
        .send(&html(
            "<p>Visit <a href=\"https://example.org/\">our shop</a></p>",
        ))
        .await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn a_message_over_the_caps_is_judged_on_what_was_kept() {
    let filler = "lorem ipsum dolor sit amet ".repeat(100); // 2700 bytes
    // Raw bytes kept: 1 KiB.
    let m = Milter::start("limits:\n  message_bytes: 1 KiB\n", LIBRARY).await;
    let mut c = m.client().await;
    let (_, status) = c
        .send(&Msg::new("x", format!("{SPAM}{filler}\r\n")).over_cap())
        .await;
    assert!(is_reject(&status), "spam within the kept bytes: {status:?}");
    let (_, status) = c
        .send(
            &Msg::new("x", format!("{filler}\r\n{SPAM}"))
                .id("CUT1")
                .over_cap(),
        )
        .await;
    assert_eq!(status, Status::Accept, "spam beyond the kept bytes");
    let line = log_line("CUT1");
    assert!(line.contains(" size=1024 cut="), "{line}");
    assert!(line.contains(" rest=skipped"), "{line}");
    c.close().await;
    m.stop().await;

    // Decoded text scanned: 1 KiB.
    let m = Milter::start(
        "limits:\n  message_bytes: 1 MiB\n  text_bytes: 1 KiB\n",
        LIBRARY,
    )
    .await;
    let mut c = m.client().await;
    let (_, status) = c.send(&Msg::new("x", format!("{SPAM}{filler}\r\n"))).await;
    assert!(
        is_reject(&status),
        "spam within the text budget: {status:?}"
    );
    let (_, status) = c
        .send(&Msg::new("x", format!("{filler}\r\n{SPAM}")).id("CUT2"))
        .await;
    assert_eq!(status, Status::Accept, "spam beyond the text budget");
    let line = log_line("CUT2");
    assert!(line.contains("notes=truncated"), "{line}");
    assert!(!line.contains(" cut="), "{line}");
    // Larger than one body chunk (64 KiB), spam first: still judged.
    let big = format!("{SPAM}{}", filler.repeat(100));
    let (_, status) = c.send(&Msg::new("x", big)).await;
    assert!(is_reject(&status), "{status:?}");
    c.close().await;
    m.stop().await;
}

/// A deterministic byte generator (no external randomness in tests).
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        })
        .collect()
}

#[tokio::test]
async fn garbled_mime_is_still_judged_and_does_not_crash_the_milter() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;

    let spammy: Vec<(&str, Msg)> = vec![
        (
            "multipart without boundary lines",
            Msg::new("x", SPAM).header("Content-Type", "multipart/mixed; boundary=\"zzz\""),
        ),
        (
            "multipart without a boundary parameter",
            Msg::new("x", format!("--a\r\n\r\n{SPAM}--a--\r\n"))
                .header("Content-Type", "multipart/alternative"),
        ),
        (
            "broken base64",
            Msg::new("x", format!("!!!{SPAM}###\r\n"))
                .header("Content-Type", "text/plain; charset=utf-8")
                .header("Content-Transfer-Encoding", "base64"),
        ),
        (
            "unknown charset and transfer encoding",
            Msg::new("x", SPAM)
                .header("Content-Type", "text/plain; charset=\"x-klingon\"")
                .header("Content-Transfer-Encoding", "x-rot13"),
        ),
        (
            "unterminated nested parts",
            Msg::new(
                "x",
                format!(
                    "--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\n{SPAM}"
                ),
            )
            .header("Content-Type", "multipart/mixed; boundary=o"),
        ),
    ];
    for (what, msg) in &spammy {
        let (_, status) = c.send(msg).await;
        assert!(is_reject(&status), "{what}: {status:?}");
    }

    // Deep nesting, NUL bytes and noise: any verdict, but a verdict.
    let mut deep = String::new();
    for i in 0..200 {
        deep.push_str(&format!(
            "--b{i}\r\nContent-Type: multipart/mixed; boundary=b{}\r\n\r\n",
            i + 1
        ));
    }
    deep.push_str(SPAM);
    let mut garbage = noise(20_000, 7);
    garbage.extend_from_slice(b"\r\n\0\0\0--\r\n");
    let odd: Vec<Msg> = vec![
        Msg::new("x", deep).header("Content-Type", "multipart/mixed; boundary=b0"),
        Msg::new("x", garbage.clone()),
        Msg::new("x", garbage.clone())
            .header("Content-Type", "multipart/mixed; boundary=\"\"")
            .header("Content-Transfer-Encoding", "quoted-printable"),
        Msg::new("=?utf-8?B?!!!?= =?gbk?Q?=ZZ?=", Vec::new()),
    ];
    for msg in &odd {
        let (_, status) = c.send(msg).await;
        assert!(
            matches!(
                status,
                Status::Accept | Status::Reject { .. } | Status::Tempfail { .. }
            ),
            "{status:?}"
        );
    }

    // The connection and the milter still work.
    let (_, status) = c.send(&Msg::new("meeting", HAM)).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    let mut c = m.client().await;
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert!(is_reject(&status));
    c.close().await;
    m.stop().await;
}

const LIB_V1: &str = "entries:\n  - {text: viagra, weight: 6}\n";
const LIB_V2: &str =
    "entries:\n  - {text: viagra, weight: 6}\n  - {text: cheap watches, id: watches, weight: 20}\n";

#[tokio::test]
async fn a_reload_between_two_messages_changes_the_second_verdict() {
    let m = Milter::start("judge:\n  tag_accepted: true\n", LIB_V1).await;
    let mut c = m.client().await;
    let msg = Msg::new("deal", "cheap watches for sale\r\n");
    let (actions, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    assert!(added_headers(&actions)[0].1.ends_with("gen=1"));

    m.write_library(LIB_V2);
    assert_eq!(m.reload().await.unwrap(), 2);
    let (_, status) = c.send(&msg).await;
    assert!(is_reject(&status), "{status:?}");
    let (actions, status) = c.send(&Msg::new("meeting", HAM)).await;
    assert_eq!(status, Status::Accept);
    assert!(added_headers(&actions)[0].1.ends_with("gen=2"));

    // A broken library keeps the rules in force.
    m.write_library("entries:\n  - {text: cheap watches, weight: heavy}\n");
    let e = m.reload().await.unwrap_err().to_string();
    assert!(e.contains("library.yaml:2:"), "{e}");
    let (_, status) = c.send(&msg).await;
    assert!(is_reject(&status), "old rules kept: {status:?}");
    let (actions, _) = c.send(&Msg::new("meeting", HAM)).await;
    assert!(added_headers(&actions)[0].1.ends_with("gen=2"));

    // So does a broken configuration, and a missing library.
    m.write_library(LIB_V1);
    m.write_config("judge:\n  reject_score: lots\n");
    let e = m.reload().await.unwrap_err().to_string();
    assert!(e.contains("milter.yaml:3:17"), "{e}");
    m.write_config("judge:\n  tag_accepted: true\n");
    std::fs::remove_file(m.dir.path().join("library.yaml")).unwrap();
    assert!(m.reload().await.is_err());
    let (_, status) = c.send(&msg).await;
    assert!(is_reject(&status), "old rules kept: {status:?}");

    // A good reload after failures takes the next generation.
    m.write_library(LIB_V1);
    assert_eq!(m.reload().await.unwrap(), 3);
    let (actions, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    assert!(added_headers(&actions)[0].1.ends_with("gen=3"));
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn a_message_keeps_the_rules_in_force_at_its_mail_command() {
    let m = Milter::start("judge:\n  tag_accepted: true\n", LIB_V1).await;
    let mut c = m.client().await;
    let msg = Msg::new("deal", "cheap watches for sale\r\n");
    c.envelope(&msg).await;
    m.write_library(LIB_V2);
    assert_eq!(m.reload().await.unwrap(), 2);
    let (actions, status) = c.content(&msg).await;
    assert_eq!(status, Status::Accept, "judged by the rules at MAIL");
    assert!(added_headers(&actions)[0].1.ends_with("gen=1"));
    let (_, status) = c.send(&msg).await;
    assert!(is_reject(&status), "the next message takes the new rules");
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn a_reload_applies_new_judgment_settings() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert!(is_reject(&status));
    m.write_config("judge:\n  mode: tag\n");
    assert_eq!(m.reload().await.unwrap(), 2);
    let (actions, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert_eq!(status, Status::Accept);
    assert_eq!(
        added_headers(&actions)[0].1,
        "score=12.0 verdict=reject gen=2"
    );
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn headers_go_without_replies_only_where_the_mta_offers_it() {
    let quiet = ProtoOpts::NOREPLY_HEADER | ProtoOpts::NOREPLY_EOH;
    let m = Milter::start("", LIBRARY).await;
    // Offered (the test connection offers every option): asked for, and
    // the message still judged (Client::send expects no header replies).
    let mut c = m.client().await;
    assert!(c.conn.negotiated_opts().contains(quiet));
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert!(is_reject(&status), "{status:?}");
    c.close().await;
    // The callbacks said so themselves: indymilter, which sends no reply
    // there whatever they answer, had nothing to correct.
    assert!(!logged("Noreply requested but not used"));

    // Not offered: every header and the end of headers answered
    // (Client::send expects what was agreed).
    let mut c = m
        .client_offering(Actions::all(), ProtoOpts::all().difference(quiet))
        .await;
    assert!(!c.conn.negotiated_opts().intersects(quiet));
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert!(is_reject(&status), "{status:?}");
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn the_rest_of_a_body_past_the_kept_bytes_is_skipped_where_the_mta_takes_skip() {
    let m = Milter::start("limits:\n  message_bytes: 1 KiB\n", LIBRARY).await;
    let kib = "lorem ipsum dolor sit amet ".repeat(38); // 1026 bytes
    for offered in [true, false] {
        let mut opts = ProtoOpts::all();
        opts.set(ProtoOpts::SKIP, offered);
        let mut c = m.client_offering(Actions::all(), opts).await;
        assert_eq!(c.agreed(ProtoOpts::SKIP), offered);
        let queue_id = if offered { "SKIP1" } else { "SKIP0" };
        // The spam is in the first chunk, the kept bytes fill in the second.
        let msg = Msg::new("x", "").id(queue_id);
        c.envelope(&msg).await;
        c.headers(&msg).await;
        let first = c.conn.body(format!("{SPAM}\r\n")).await.unwrap();
        assert_eq!(first, Status::Continue, "room left after the first chunk");
        let second = c.conn.body(kib.clone()).await.unwrap();
        if offered {
            assert_eq!(second, Status::Skip, "kept bytes full");
        } else {
            assert_eq!(second, Status::Continue);
            let third = c.conn.body(kib.clone()).await.unwrap();
            assert_eq!(third, Status::Continue, "no Skip without SMFIP_SKIP");
        }
        let (_, status) = c.end(&msg).await;
        assert!(is_reject(&status), "judged on the kept bytes: {status:?}");
        let line = log_line(queue_id);
        assert!(line.contains(" size=1024 cut="), "{line}");
        assert_eq!(line.contains(" rest=skipped"), offered, "{line}");
        c.close().await;
    }
    m.stop().await;
}

#[tokio::test]
async fn messages_are_judged_alike_in_place_and_on_the_blocking_pool() {
    let large = format!("{}{SPAM}", "lorem ipsum dolor sit amet\r\n".repeat(100));
    // Off: all on the pool; 1 KiB: the small ones in place, the large one
    // on the pool; the default (32 KiB): all in place.
    for config in [
        "milter: {inline_judge: off}\n",
        "milter: {inline_judge: 1 KiB}\n",
        "",
    ] {
        let m = Milter::start(config, LIBRARY).await;
        let mut c = m.client().await;
        let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
        assert!(is_reject(&status), "{config}: {status:?}");
        let (_, status) = c.send(&Msg::new("offer", large.clone())).await;
        assert!(is_reject(&status), "{config}: {status:?}");
        let (_, status) = c.send(&Msg::new("meeting", HAM)).await;
        assert_eq!(status, Status::Accept, "{config}");
        c.close().await;
        m.stop().await;
    }
}

#[tokio::test]
async fn an_aborted_message_leaves_no_trace_in_the_next() {
    let m = Milter::start("", LIBRARY).await;
    let mut c = m.client().await;
    let spam = Msg::new("offer", SPAM);
    c.envelope(&spam).await;
    c.conn.header("Subject", "viagra cialis").await.unwrap();
    c.conn.abort().await.unwrap();
    let (_, status) = c.send(&Msg::new("meeting", HAM)).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn the_milter_serves_a_unix_socket() {
    let dir = TempDir::new("unix");
    dir.write("library.yaml", LIBRARY);
    dir.write("milter.yaml", "library: library.yaml\n");
    let config = mailward::Config::load(&dir.path().join("milter.yaml")).unwrap();
    let sock = dir.path().join("milter.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let (_reload, rx) = tokio::sync::mpsc::channel(1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(mailward::run(listener, config, rx, async move {
        let _ = stopped.await;
    }));
    let conn = indymilter_test::TestConnection::configure()
        .open_unix(&sock)
        .await
        .unwrap();
    let mut c = Client { conn };
    c.conn
        .connect("client.example", [192, 0, 2, 1])
        .await
        .unwrap();
    let (_, status) = c.send(&Msg::new("offer", SPAM)).await;
    assert!(is_reject(&status));
    c.close().await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_broken_library_at_start_is_an_error() {
    let dir = TempDir::new("broken");
    dir.write("library.yaml", "entries:\n  - {text: x, colour: red}\n");
    dir.write("milter.yaml", "library: library.yaml\n");
    let config = mailward::Config::load(&dir.path().join("milter.yaml")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_reload, rx) = tokio::sync::mpsc::channel(1);
    let e = mailward::run(listener, config, rx, std::future::pending::<()>())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("library.yaml:2:15"), "{e}");
}

#[tokio::test]
async fn the_shipped_configuration_and_library_work_as_they_are() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("milter.yaml");
    let config = mailward::Config::load(&path).unwrap();
    // The shipped port may be taken on this machine: serve on a free one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reload, rx) = tokio::sync::mpsc::channel(1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(mailward::run(listener, config, rx, async move {
        let _ = stopped.await;
    }));
    let conn = indymilter_test::TestConnection::open(addr).await.unwrap();
    let mut c = Client { conn };
    c.conn
        .connect("client.example", [192, 0, 2, 1])
        .await
        .unwrap();
    let (_, status) = c
        .send(&Msg::new("发票", "本公司常年代开发票，欢迎来电。\r\n"))
        .await;
    assert!(is_reject(&status), "{status:?}");
    let (_, status) = c
        .send(&Msg::new(
            "buy now",
            "Cheap viagra and cialis, no prescription needed.\r\n",
        ))
        .await;
    assert!(is_reject(&status), "{status:?}");
    let (_, status) = c.send(&Msg::new("meeting", HAM)).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
