//! The metrics listener and the admin API of a milter started in process
//! (`mailward::run_with`, metrics on 127.0.0.1 and a port the system
//! picks): a few sessions through a real milter client (indymilter-test),
//! then `/metrics` read over HTTP and its counters checked; a limited
//! client's key read and reset through the admin API, after which the
//! client is accepted again.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::*;
use indymilter_test::Status;

const LIBRARY: &str = "\
entries:
  - {text: viagra, id: en-viagra, weight: 6, category: pharma, match: word}
  - {text: cialis, id: en-cialis, weight: 6, category: pharma, match: word}
  - {text: free gift, id: en-gift, weight: 0, category: promo}
";

const SPAM: &str = "Hello,\r\nbuy viagra and cialis today.\r\n";
const HAM: &str = "Hi Alice,\r\nthe meeting moved to Thursday.\r\n";

const CONFIG: &str = "\
metrics:
  listen: 127.0.0.1:0
  top_entries: 5
admin:
  enabled: true
behavior:
  unknown_commands: {disconnect_at: 2}
  limits:
    - {key: ip, metric: connections, window: 1h, max: 2}
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn scrape(addr: SocketAddr) -> String {
    let r = http(addr, "GET", "/metrics", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.body
}

/// The value of `series`, which must be exposed.
fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Checks the text format: every sample is `name{labels} value` with a
/// number, after the `# TYPE` line of its family, and no family is
/// declared twice.
fn well_formed(text: &str) {
    let mut declared: Vec<(&str, &str)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(!declared.iter().any(|(n, _)| *n == name), "twice: {name}");
            declared.push((name, kind));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, v) = line.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
        }
        let family = declared.last().map(|(n, _)| *n).unwrap_or("");
        let ok = name == family
            || declared.last().is_some_and(|(_, k)| *k == "histogram")
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(family));
        assert!(ok, "{line} outside its family {family}");
    }
}

/// Scrapes until `series` reads `want` (sessions end after the client has
/// its answer), at most 10 s.
async fn eventually(addr: SocketAddr, series: &str, want: f64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(addr).await;
        if sample(&text, series) == Some(want) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_count_sessions_and_the_admin_api_unblocks_a_client() {
    let m = Milter::start(CONFIG, LIBRARY).await;
    let addr = m.http.expect("the metrics listener");
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    // Before any mail: every family is there, at zero.
    let text = scrape(addr).await;
    assert_eq!(value(&text, "mailward_sessions_total"), 0.0);
    assert_eq!(
        value(&text, "mailward_messages_total{verdict=\"reject\"}"),
        0.0
    );
    assert_eq!(
        value(&text, "mailward_library_hits_total{category=\"pharma\"}"),
        0.0
    );
    assert_eq!(value(&text, "mailward_library_entries"), 3.0);
    assert_eq!(value(&text, "mailward_library_categories"), 2.0);
    assert_eq!(value(&text, "mailward_rules_generation"), 1.0);
    assert_eq!(value(&text, "mailward_scan_seconds_count"), 0.0);
    assert!(value(&text, "mailward_last_good_load_timestamp_seconds") > 1.6e9);

    // Spam and ham in one session.
    let mut c = m.client().await;
    let (_, status) = c.send(&Msg::new("offer", SPAM).id("M1")).await;
    assert!(is_reject(&status), "{status:?}");
    let (_, status) = c.send(&Msg::new("meeting", HAM).id("M2")).await;
    assert_eq!(status, Status::Accept);
    c.close().await;

    // Unknown commands: the second one drops the client.
    let mut c = m.client_from(ip("198.51.100.1")).await;
    assert_eq!(c.conn.unknown("XFOO").await.unwrap(), Status::Continue);
    assert!(is_tempfail(&c.conn.unknown("XBAR").await.unwrap()));
    c.close().await;

    // A client over its connection limit.
    let limited = ip("203.0.113.5");
    for _ in 0..2 {
        m.client_from(limited).await.close().await;
    }
    let mut conn = m.open().await;
    let status = conn.connect("client.example", limited).await.unwrap();
    assert_eq!(
        reject_text(&status).as_deref(),
        Some("451 4.7.1 Too much activity, try again later")
    );
    conn.close().await.unwrap();

    let text = eventually(addr, "mailward_sessions_active", 0.0).await;
    for (series, want) in [
        ("mailward_sessions_total", 5.0),
        ("mailward_sessions_active", 0.0),
        ("mailward_messages_total{verdict=\"reject\"}", 1.0),
        ("mailward_messages_total{verdict=\"accept\"}", 1.0),
        ("mailward_messages_total{verdict=\"tempfail\"}", 0.0),
        ("mailward_message_actions_total{action=\"reject\"}", 1.0),
        ("mailward_message_actions_total{action=\"deliver\"}", 1.0),
        ("mailward_message_errors_total", 0.0),
        ("mailward_library_hits_total{category=\"pharma\"}", 2.0),
        ("mailward_library_hits_total{category=\"promo\"}", 0.0),
        ("mailward_top_entry_hits_total{id=\"en-viagra\"}", 1.0),
        ("mailward_top_entry_hits_total{id=\"en-cialis\"}", 1.0),
        ("mailward_findings_total{code=\"cmd.unknown\"}", 2.0),
        ("mailward_findings_total{code=\"mail.no-helo\"}", 2.0),
        ("mailward_findings_total{code=\"hdr.missing-date\"}", 2.0),
        ("mailward_findings_total{code=\"helo.bare-ip\"}", 0.0),
        (
            "mailward_limit_trips_total{limit=\"0\",key=\"ip\",metric=\"connections\",window=\"3600\",max=\"2\",action=\"tempfail\"}",
            1.0,
        ),
        (
            "mailward_behavior_refusals_total{by=\"limit\",stage=\"connect\"}",
            1.0,
        ),
        (
            "mailward_behavior_refusals_total{by=\"unknown-commands\",stage=\"unknown\"}",
            1.0,
        ),
        (
            "mailward_behavior_refusals_total{by=\"limit\",stage=\"mail\"}",
            0.0,
        ),
        ("mailward_tracked_keys{kind=\"ip\"}", 3.0),
        ("mailward_tracked_keys{kind=\"login\"}", 0.0),
        ("mailward_scan_seconds_count", 2.0),
        ("mailward_scan_seconds_bucket{le=\"+Inf\"}", 2.0),
        ("mailward_eom_seconds_count", 2.0),
        ("mailward_reloads_total{outcome=\"ok\"}", 0.0),
    ] {
        assert_eq!(value(&text, series), want, "{series}");
    }
    assert!(value(&text, "process_resident_memory_bytes") > 0.0);
    well_formed(&text);
    // Each family is declared once, before its samples.
    assert_eq!(
        text.matches("# TYPE mailward_scan_seconds histogram\n")
            .count(),
        1
    );

    // The admin API: the limited client's counters, then a reset.
    let path = "/admin/key/ip/203.0.113.5";
    let r = http(addr, "GET", path, &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["kind"], "ip");
    assert_eq!(j["key"], "203.0.113.5");
    assert_eq!(j["tracked"], true);
    assert_eq!(j["limits"][0]["metric"], "connections");
    assert_eq!(j["limits"][0]["count"], 3);
    assert_eq!(j["limits"][0]["max"], 2);
    assert_eq!(j["limits"][0]["over"], true);
    let r = http(addr, "DELETE", path, &[]).await;
    assert_eq!((r.status, &r.json()["reset"]), (200, &true.into()), "{r:?}");
    let j = http(addr, "GET", path, &[]).await.json();
    assert_eq!(j["tracked"], false);
    assert_eq!(j["limits"][0]["count"], 0);
    assert_eq!(j["limits"][0]["over"], false);
    let r = http(addr, "DELETE", path, &[]).await;
    assert_eq!(r.json()["reset"], false, "nothing left to reset");
    // Accepted again.
    m.client_from(limited).await.close().await;
    let j = http(addr, "GET", path, &[]).await.json();
    assert_eq!(j["limits"][0]["count"], 1);
    // Other clients kept their counts.
    let j = http(addr, "GET", "/admin/key/ip/198.51.100.1", &[])
        .await
        .json();
    assert_eq!(
        (j["tracked"].clone(), j["limits"][0]["count"].clone()),
        (true.into(), 1.into())
    );
    // Logins and senders: no limit counts them here.
    let j = http(
        addr,
        "GET",
        "/admin/key/sender/%3CBob%40Example.COM%3E",
        &[],
    )
    .await
    .json();
    assert_eq!(j["key"], "bob@example.com");
    assert_eq!(j["tracked"], false);
    assert_eq!(j["limits"], serde_json::json!([]));

    // Reloads are counted.
    m.reload().await.unwrap();
    m.write_library("entries:\n  - {text: x, weight: nope}\n");
    m.reload().await.unwrap_err();
    let text = scrape(addr).await;
    assert_eq!(value(&text, "mailward_reloads_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(
        value(&text, "mailward_reloads_total{outcome=\"failed\"}"),
        1.0
    );
    assert_eq!(value(&text, "mailward_rules_generation"), 2.0);
    // The counters survive the reload.
    assert_eq!(
        value(&text, "mailward_library_hits_total{category=\"pharma\"}"),
        2.0
    );
    // The listener stops with the milter.
    m.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_listener_goes_on() {
    let m = Milter::start(CONFIG, LIBRARY).await;
    let addr = m.http.unwrap();
    for (method, path, status) in [
        ("GET", "/", 404),
        ("GET", "/metrics/x", 404),
        ("GET", "/admin/", 404),
        ("GET", "/admin/key/ip", 404),
        ("GET", "/admin/key/host/mx.example", 404),
        ("GET", "/admin/key/ip/not-an-address", 400),
        ("GET", "/admin/key/ip/", 400),
        ("GET", "/admin/key/login/%FF%FE", 400),
        ("DELETE", "/admin/key/login/bob%0Aadmin:%20reset", 400),
        ("GET", "/admin/key/sender/%3C%3E", 400),
        ("POST", "/metrics", 405),
        ("PUT", "/admin/key/ip/192.0.2.1", 405),
    ] {
        let r = http(addr, method, path, &[]).await;
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
    }
    let long = format!("/admin/key/login/{}", "a".repeat(2000));
    assert_eq!(http(addr, "GET", &long, &[]).await.status, 400);
    // Not HTTP at all.
    let r = http_raw(addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert_eq!(r.status, 400, "{r:?}");
    // A head larger than the server reads.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let r = http_raw(addr, big.as_bytes()).await;
    assert_eq!(r.status, 431, "{r:?}");
    // A body is never read: the answer comes anyway.
    let r = http_raw(
        addr,
        b"DELETE /admin/key/ip/192.0.2.9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000000000\r\n\r\nxx",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(http(addr, "GET", "/metrics", &[]).await.status, 200);
    m.stop().await;
}

#[tokio::test]
async fn the_admin_api_is_off_by_default_and_can_require_a_token() {
    let m = Milter::start("metrics: {listen: 127.0.0.1:0}\n", LIBRARY).await;
    let addr = m.http.unwrap();
    assert_eq!(http(addr, "GET", "/metrics", &[]).await.status, 200);
    assert_eq!(
        http(addr, "GET", "/admin/key/ip/192.0.2.1", &[])
            .await
            .status,
        404
    );
    m.stop().await;

    let m = Milter::start(
        "metrics: {listen: 127.0.0.1:0}\nadmin: {enabled: true, token_file: admin.token}\n",
        LIBRARY,
    )
    .await;
    let addr = m.http.unwrap();
    let path = "/admin/key/ip/192.0.2.1";
    // An unreadable token file refuses everything.
    assert_eq!(http(addr, "GET", path, &[]).await.status, 503);
    m.dir.write("admin.token", "s3cret\n");
    let r = http(addr, "GET", path, &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"mailward\"")
    );
    let wrong = http(addr, "GET", path, &["Authorization: Bearer s3cre7"]).await;
    assert_eq!(wrong.status, 401);
    let r = http(addr, "GET", path, &["Authorization: Bearer s3cret"]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["tracked"], false);
    // /metrics needs no token.
    assert_eq!(http(addr, "GET", "/metrics", &[]).await.status, 200);
    m.stop().await;

    let m = Milter::start("", LIBRARY).await;
    assert_eq!(m.http, None, "no listener unless configured");
    m.stop().await;
}

#[tokio::test]
async fn messages_over_the_kept_bytes_are_counted_by_what_became_of_the_rest() {
    let m = Milter::start(
        &format!("{CONFIG}limits:\n  message_bytes: 1 KiB\n"),
        LIBRARY,
    )
    .await;
    let addr = m.http.expect("the metrics listener");
    let long = format!("{SPAM}{}", "lorem ipsum dolor sit amet\r\n".repeat(60));
    // The test connection offers Skip: the rest is skipped.
    let mut c = m.client().await;
    let (_, status) = c.send(&Msg::new("offer", long.clone()).over_cap()).await;
    assert!(is_reject(&status), "{status:?}");
    let (_, status) = c.send(&Msg::new("meeting", HAM)).await;
    assert_eq!(status, Status::Accept);
    c.close().await;
    // A connection without Skip receives the rest.
    let no_skip = indymilter_test::ProtoOpts::all().difference(indymilter_test::ProtoOpts::SKIP);
    let mut c = m
        .client_offering(indymilter_test::Actions::all(), no_skip)
        .await;
    let (_, status) = c.send(&Msg::new("offer", long).over_cap()).await;
    assert!(is_reject(&status), "{status:?}");
    c.close().await;

    let text = eventually(addr, "mailward_sessions_active", 0.0).await;
    well_formed(&text);
    for rest in ["skipped", "received"] {
        let series = format!("mailward_messages_cut_total{{rest=\"{rest}\"}}");
        assert_eq!(value(&text, &series), 1.0, "{series}");
    }
    m.stop().await;
}
