//! The load generator (`tests/support/loadgen.rs`) against mailward run
//! in-process: every message of several concurrent sessions gets the
//! verdict its content calls for, the log line of its queue id says the
//! same, and the verdict header names the rules generation.

mod common;
#[path = "support/loadgen.rs"]
mod loadgen;

use std::sync::Arc;

use common::{Milter, log_line};
use loadgen::{At, Mail, Options, Reply};

const LIBRARY: &str = "\
entries:
  - {text: viagra, id: en-viagra, weight: 6, category: pharma, match: word}
  - {text: cialis, id: en-cialis, weight: 6, category: pharma, match: word}
  - {text: bank details, id: en-bank, weight: 1, category: scam, action: quarantine}
";

const MEETING: &str = "Hi Alice, the meeting moved to Thursday at ten. \
    The agenda is the budget for the next quarter and the hiring plan.";

#[derive(Debug, PartialEq)]
enum Expect {
    Accept,
    Tempfail,
    Reject,
    Quarantine,
}

/// Synthetic messages and the verdict each calls for. Message 2 is
/// multipart/alternative (both halves of its text name both drugs).
fn mails() -> (Vec<Mail>, Vec<Expect>) {
    let texts = [
        (0, MEETING.to_string(), Expect::Accept),
        (1, format!("Cheap viagra here. {MEETING}"), Expect::Tempfail),
        (
            2,
            "viagra and cialis, best prices. ".repeat(8),
            Expect::Reject,
        ),
        (
            3,
            format!("Please confirm your bank details today. {MEETING}"),
            Expect::Quarantine,
        ),
    ];
    texts
        .into_iter()
        .map(|(seq, text, e)| (Mail::from_raw(&loadgen::synthetic(seq, &text)), e))
        .unzip()
}

#[tokio::test]
async fn every_message_of_concurrent_sessions_gets_its_verdict() {
    let m = Milter::start("", LIBRARY).await;
    let (mails, expected) = mails();
    let opts = Options {
        concurrency: 3,
        messages_per_session: 5,
        queue_id_prefix: "LGV".into(),
        ..Options::default()
    };
    let report = loadgen::run(m.addr, Arc::from(mails), &opts).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.results.len(), 15);
    for (i, r) in report.results.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.mail, i % 4);
        assert_eq!(r.at, At::Eom, "{r:?}");
        let e = &expected[r.mail];
        let (ok, verdict) = match e {
            Expect::Accept => (r.reply == Reply::Accept && r.actions.is_empty(), "accept"),
            Expect::Tempfail => (r.reply.is_tempfail(), "tempfail"),
            Expect::Reject => (r.reply.is_reject(), "reject"),
            Expect::Quarantine => (
                r.reply == Reply::Accept
                    && r.quarantined()
                    && r.header_field("X-Mailward", "verdict") == Some("quarantine"),
                "quarantine",
            ),
        };
        assert!(ok, "{e:?}: {r:?}");
        let line = log_line(&r.queue_id);
        assert!(line.contains(&format!(" verdict={verdict} ")), "{line}");
        assert!(line.contains("client=client.example[192.0.2."), "{line}");
    }
    m.stop().await;
}

#[tokio::test]
async fn tag_mode_headers_name_the_rules_generation() {
    let m = Milter::start("judge: {mode: tag, tag_accepted: true}\n", LIBRARY).await;
    let (mails, expected) = mails();
    let mails: Arc<[Mail]> = Arc::from(mails);
    let opts = Options {
        concurrency: 2,
        messages_per_session: 4,
        queue_id_prefix: "LGT".into(),
        ..Options::default()
    };
    let report = loadgen::run(m.addr, mails.clone(), &opts).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.results.len(), 8);
    for r in &report.results {
        assert_eq!(r.reply, Reply::Accept, "tag mode delivers: {r:?}");
        assert_eq!(r.generation("X-Mailward"), Some(1), "{r:?}");
        let verdict = r.header_field("X-Mailward", "verdict");
        let want = match expected[r.mail] {
            Expect::Accept => "accept",
            Expect::Tempfail => "tempfail",
            Expect::Reject => "reject",
            Expect::Quarantine => "quarantine",
        };
        assert_eq!(verdict, Some(want), "{r:?}");
    }

    m.write_library("entries:\n  - {text: meeting, weight: 10}\n");
    assert_eq!(m.reload().await.unwrap(), 2);
    let opts = Options {
        queue_id_prefix: "LGU".into(),
        ..opts
    };
    let report = loadgen::run(m.addr, mails, &opts).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for r in &report.results {
        assert_eq!(r.generation("X-Mailward"), Some(2), "{r:?}");
        let want = if r.mail == 2 { "accept" } else { "reject" };
        assert_eq!(r.header_field("X-Mailward", "verdict"), Some(want), "{r:?}");
    }
    m.stop().await;
}

#[tokio::test]
async fn a_stop_flag_ends_sessions_between_messages() {
    let m = Milter::start("", LIBRARY).await;
    let (mails, _) = mails();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = Options {
        concurrency: 2,
        messages_per_session: 3,
        stop: Some(stop),
        ..Options::default()
    };
    let report = loadgen::run(m.addr, Arc::from(mails), &opts).await;
    assert!(report.results.is_empty() && report.errors.is_empty());
    m.stop().await;
}

#[tokio::test]
async fn a_closed_port_is_a_session_error_not_a_panic() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (mails, _) = mails();
    let opts = Options {
        concurrency: 2,
        sessions_per_worker: 2,
        ..Options::default()
    };
    let report = loadgen::run(addr, Arc::from(mails), &opts).await;
    assert!(report.results.is_empty());
    assert_eq!(report.errors.len(), 4, "{:?}", report.errors);
}

#[test]
fn raw_messages_are_split_as_the_mta_passes_them() {
    let raw = b"From someone@example.org  Thu Aug 22 12:36:23 2002\n\
        Return-Path: <list-admin@example.org>\n\
        Received: from a\n\tby b\n    for c\n\
        Subject:  hello\x00 there\n\
        X-Empty:\n\
        \n\
        line one\r\n\
        \n\
        line three";
    let m = Mail::from_raw(raw);
    assert_eq!(m.sender, "<list-admin@example.org>");
    assert_eq!(m.recipients, ["<postbox@example.test>"]);
    let h: Vec<(&[u8], &[u8])> = m
        .headers
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    assert_eq!(
        h,
        [
            (&b"Return-Path"[..], &b"<list-admin@example.org>"[..]),
            (b"Received", b"from a\n\tby b\n    for c"),
            (b"Subject", b"hello there"),
            (b"X-Empty", b""),
        ]
    );
    assert_eq!(m.body, b"line one\r\n\r\nline three\r\n");

    // A line that is no header field starts the body.
    let m = Mail::from_raw(b"Subject: x\nnot a header\nmore\n");
    assert_eq!(m.headers.len(), 1);
    assert_eq!(m.body, b"not a header\r\nmore\r\n");
    assert_eq!(m.sender, "<sender@example.net>");
}

#[test]
fn synthetic_messages_are_typical_and_deterministic() {
    let text = "word ".repeat(800);
    for seq in 0..3 {
        let raw = loadgen::synthetic(seq, &text);
        assert_eq!(raw, loadgen::synthetic(seq, &text));
        let m = Mail::from_raw(&raw);
        assert!((14..=18).contains(&m.headers.len()), "{}", m.headers.len());
        assert!((4000..6000).contains(&raw.len()), "{}", raw.len());
        assert!(m.body.split(|&b| b == b'\n').all(|l| l.len() <= 102));
    }
}
