//! Behavior monitoring through a real milter client (indymilter-test):
//! unknown commands, conformity findings in the session record, limits per
//! login and per client address, monitor-only limits, trusted networks,
//! and the conformity score in the message judgment.

mod common;

use std::net::IpAddr;

use common::*;
use indymilter_test::{MacroStage, Status};

const LIBRARY: &str = "entries:\n  - {text: viagra, id: en-viagra, weight: 6, match: word}\n";
const HAM: &str = "Hi Alice,\r\nthe meeting moved to Thursday.\r\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn codes(record: &serde_json::Value) -> Vec<String> {
    record["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_configured_unknown_command_gets_421_and_is_recorded() {
    let m = Milter::start(
        "behavior:\n  records: sessions.jsonl\n  unknown_commands: {disconnect_at: 3}\n",
        LIBRARY,
    )
    .await;
    let mut c = m.client().await;
    assert_eq!(c.conn.unknown("XFOO").await.unwrap(), Status::Continue);
    assert_eq!(c.conn.unknown("GET\x01").await.unwrap(), Status::Continue);
    let status = c.conn.unknown("XBAR").await.unwrap();
    assert!(is_tempfail(&status), "{status:?}");
    assert_eq!(
        reject_text(&status).as_deref(),
        Some("421 4.7.0 Too many unknown commands, closing connection")
    );
    c.close().await;
    let r = &m.records("sessions.jsonl", 1).await[0];
    assert_eq!(r["unknown_total"], 3);
    assert_eq!(
        r["unknown_commands"],
        serde_json::json!(["XFOO", "GET\\x01", "XBAR"])
    );
    assert_eq!(r["disconnected"], true);
    assert_eq!(codes(r), ["cmd.unknown", "cmd.unknown", "cmd.unknown"]);
    m.stop().await;
}

#[tokio::test]
async fn a_bare_ip_helo_and_a_missing_date_appear_in_the_session_record() {
    let m = Milter::start("behavior:\n  records: sessions.jsonl\n", LIBRARY).await;
    let mut c = m.client().await;
    assert_eq!(c.conn.helo("192.0.2.10").await.unwrap(), Status::Continue);
    let mut msg = Msg::new("meeting", HAM).id("Q1");
    msg.login = Some("bob".into());
    let (_, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    let records = m.records("sessions.jsonl", 1).await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(codes(r), ["helo.bare-ip", "hdr.missing-date"]);
    assert_eq!(r["helo"], "192.0.2.10");
    assert_eq!(r["client"]["addr"], "192.0.2.10");
    assert_eq!(r["client"]["name"], "client.example");
    assert_eq!(r["login"], "bob");
    assert_eq!(r["score"], 2.0);
    let msg = &r["messages"][0];
    assert_eq!(msg["queue_id"], "Q1");
    assert_eq!(msg["sender"], "<sender@example.net>");
    assert_eq!(msg["recipients"], 1);
    assert_eq!(msg["verdict"], "accept");
    assert_eq!(msg["action"], "deliver");
    assert!(r["start"].as_str().unwrap().ends_with('Z'));
    m.stop().await;
}

#[tokio::test]
async fn a_login_used_from_too_many_addresses_is_tempfailed() {
    let m = Milter::start(
        "behavior:
  records: sessions.jsonl
  limits:
    - {key: login, metric: distinct_ips, window: 1h, max: 2, action: tempfail, text: Login used from too many places}
",
        LIBRARY,
    )
    .await;
    for (n, addr) in ["192.0.2.1", "198.51.100.1", "192.0.2.1", "203.0.113.5"]
        .iter()
        .enumerate()
    {
        let mut c = m.client_from(ip(addr)).await;
        c.conn
            .macros(MacroStage::Mail, [("{auth_authen}", "alice")])
            .await
            .unwrap();
        let status = c.conn.mail(["<alice@example.com>"]).await.unwrap();
        if n < 3 {
            assert_eq!(status, Status::Continue, "{addr}");
        } else {
            assert_eq!(
                reject_text(&status).as_deref(),
                Some("451 4.7.1 Login used from too many places")
            );
        }
        c.close().await;
    }
    // Another login from the same addresses is not affected.
    let mut c = m.client_from(ip("203.0.113.5")).await;
    c.conn
        .macros(MacroStage::Mail, [("{auth_authen}", "carol")])
        .await
        .unwrap();
    assert_eq!(
        c.conn.mail(["<carol@example.com>"]).await.unwrap(),
        Status::Continue
    );
    c.close().await;
    let records = m.records("sessions.jsonl", 5).await;
    let trip = &records[3]["limits"][0];
    assert_eq!(trip["key"], "login");
    assert_eq!(trip["value"], "alice");
    assert_eq!(trip["metric"], "distinct_ips");
    assert_eq!(trip["count"], 3);
    assert_eq!(trip["stage"], "mail");
    assert_eq!(records[3]["messages"][0]["action"], "tempfail");
    assert_eq!(records[3]["messages"][0]["refused_by"], "limit");
    m.stop().await;
}

#[tokio::test]
async fn a_client_over_its_connection_rate_is_tempfailed_at_connect() {
    let m = Milter::start(
        "behavior:\n  limits:\n    - {key: ip, metric: connections, window: 1m, max: 2}\n",
        LIBRARY,
    )
    .await;
    for _ in 0..2 {
        m.client_from(ip("198.51.100.7")).await.close().await;
    }
    let mut conn = m.open().await;
    let status = conn
        .connect("client.example", ip("198.51.100.7"))
        .await
        .unwrap();
    assert_eq!(
        reject_text(&status).as_deref(),
        Some("451 4.7.1 Too much activity, try again later")
    );
    conn.close().await.unwrap();
    // Another client is still served.
    m.client_from(ip("198.51.100.8")).await.close().await;
    m.stop().await;
}

#[tokio::test]
async fn a_monitor_only_limit_records_but_does_not_refuse() {
    let m = Milter::start(
        "behavior:
  records: sessions.jsonl
  limits:
    - {key: ip, metric: connections, window: 1m, max: 1, action: monitor}
    - {key: ip, metric: recipients, window: 1m, max: 1, action: monitor}
",
        LIBRARY,
    )
    .await;
    m.client_from(ip("198.51.100.7")).await.close().await;
    let mut c = m.client_from(ip("198.51.100.7")).await;
    let mut msg = Msg::new("meeting", HAM);
    msg.rcpts = vec!["<a@example.com>".into(), "<b@example.com>".into()];
    let (_, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    let records = m.records("sessions.jsonl", 2).await;
    assert_eq!(records[0]["limits_total"], 0);
    let trips = records[1]["limits"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = trips
        .iter()
        .map(|t| {
            (
                t["stage"].as_str().unwrap(),
                t["metric"].as_str().unwrap(),
                t["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("connect", "connections", "monitor"),
            ("mail", "connections", "monitor"),
            ("rcpt", "recipients", "monitor")
        ]
    );
    assert_eq!(records[1]["messages"][0]["action"], "deliver");
    m.stop().await;
}

#[tokio::test]
async fn a_trusted_network_is_never_limited() {
    let m = Milter::start(
        "behavior:
  records: sessions.jsonl
  trusted_networks: [192.0.2.0/24]
  unknown_commands: {disconnect_at: 1}
  conformity: {reject_score: 0.1}
  limits:
    - {key: ip, metric: connections, window: 1h, max: 0, action: reject}
",
        LIBRARY,
    )
    .await;
    for _ in 0..3 {
        let mut c = m.client_from(ip("192.0.2.20")).await;
        assert_eq!(c.conn.helo("1.2.3.4").await.unwrap(), Status::Continue);
        assert_eq!(c.conn.unknown("XFOO").await.unwrap(), Status::Continue);
        let (_, status) = c.send(&Msg::new("meeting", HAM)).await;
        assert_eq!(status, Status::Accept);
        c.close().await;
    }
    let mut conn = m.open().await;
    let status = conn.connect("x", ip("198.51.100.1")).await.unwrap();
    assert!(is_reject(&status), "untrusted: {status:?}");
    conn.close().await.unwrap();
    let records = m.records("sessions.jsonl", 4).await;
    let r = &records[0];
    assert_eq!(r["trusted"], true);
    assert_eq!(r["limits_total"], 0);
    assert_eq!(r["disconnected"], false);
    assert_eq!(
        codes(r),
        ["helo.bare-ip", "cmd.unknown", "hdr.missing-date"],
        "still recorded"
    );
    m.stop().await;
}

#[tokio::test]
async fn the_conformity_score_can_feed_the_message_judgment() {
    let m = Milter::start(
        "behavior:\n  conformity:\n    judge_factor: 5\n    weights: {helo.bare-ip: 2}\n",
        LIBRARY,
    )
    .await;
    let mut c = m.client().await;
    c.conn.helo("192.0.2.10").await.unwrap();
    // helo.bare-ip 2 + hdr.missing-date 1 = 3, times 5 = 15 ≥ reject 10.
    let (_, status) = c.send(&Msg::new("meeting", HAM).id("CONF1")).await;
    assert!(is_reject(&status), "{status:?}");
    assert!(
        log_line("CONF1").contains("score=15.0"),
        "{}",
        log_line("CONF1")
    );
    c.close().await;
    let mut c = m.client().await;
    c.conn.helo("mail.example.net").await.unwrap();
    let msg = Msg::new("meeting", HAM).header("Date", "Mon, 1 Jan 2024 00:00:00 +0000");
    let (_, status) = c.send(&msg).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn the_session_score_has_its_own_thresholds() {
    let m = Milter::start("behavior:\n  conformity: {tempfail_score: 2}\n", LIBRARY).await;
    let mut c = m.client().await;
    c.conn.helo("localhost").await.unwrap();
    let status = c.conn.mail(["<a@example.com>"]).await.unwrap();
    assert_eq!(
        reject_text(&status).as_deref(),
        Some("451 4.7.1 Too much activity, try again later")
    );
    c.close().await;
    m.stop().await;
}

#[tokio::test]
async fn limit_lines_start_with_the_queue_id_or_noqueue() {
    let m = Milter::start(
        "behavior:\n  limits:\n    - {key: ip, metric: messages, window: 1m, max: 1, action: monitor}\n",
        LIBRARY,
    )
    .await;
    let mut c = m.client_from(ip("198.51.100.77")).await;
    for q in ["QMAIL1", "QMAIL2"] {
        c.conn.macros(MacroStage::Mail, [("i", q)]).await.unwrap();
        let status = c.conn.mail(["<a@example.com>"]).await.unwrap();
        assert_eq!(status, Status::Continue, "{q}");
        c.conn.abort().await.unwrap();
    }
    c.close().await;
    // An MTA that passes no queue id at MAIL (Postfix by default).
    let mut c = m.client_from(ip("198.51.100.77")).await;
    let status = c.conn.mail(["<a@example.com>"]).await.unwrap();
    assert_eq!(status, Status::Continue);
    c.close().await;
    let client = "limit 0: client=198.51.100.77 ip=198.51.100.77 messages";
    assert!(!logged(&format!("QMAIL1: {client}")), "under the limit");
    assert!(logged(&format!("QMAIL2: {client} 2 > 1")));
    assert!(logged(&format!("NOQUEUE: {client} 3 > 1")));
    m.stop().await;
}
