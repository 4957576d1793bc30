//! The load generator (`tests/support/loadgen.rs`) talks to a milter as a
//! real Postfix does. A recording relay sits between the MTA side and
//! mailward and writes down what the MTA side sends: the negotiation's
//! version, actions and protocol options, every command in order, and the
//! names of the macros sent before each (their values differ between the
//! two senders by nature: addresses, queue ids, host names). One message
//! goes through a real Postfix (swaks as the client), then one through the
//! load generator, and the two records must be the same, runs of header
//! and body chunks counted as one.
//!
//! Without Postfix, swaks and root this test is skipped (with a message);
//! with `CI=true` it fails instead.

#[path = "support/loadgen.rs"]
mod loadgen;
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::mailward::MailwardProcess;
use support::postfix::PostfixInstance;
use support::smtp::Smtp;

const WAIT: Duration = Duration::from_secs(30);
const LIBRARY: &str = "entries:\n  - { text: cheap pills, weight: 12, id: pills }\n";

/// Relays milter connections to `target`, recording what the MTA side
/// sends; each session's record is kept once its connection closes.
struct Recorder {
    addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Recorder {
    fn start(target: u16) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&sessions);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || relay(client, target, &kept));
            }
        });
        Recorder { addr, sessions }
    }

    /// The records of the first `n` sessions to close.
    fn wait_sessions(&self, n: usize) -> Vec<Vec<String>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.sessions.lock().expect("records").clone();
            if s.len() >= n {
                return s;
            }
            assert!(Instant::now() < deadline, "{} session(s) recorded", s.len());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn relay(mut client: TcpStream, target: u16, kept: &Mutex<Vec<Vec<String>>>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let (Ok(mut back_from), Ok(mut back_to)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut back_from, &mut back_to);
        let _ = back_to.shutdown(Shutdown::Write);
    });
    let mut events = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if client.read_exact(&mut len).is_err() {
            break;
        }
        let mut packet = vec![0u8; u32::from_be_bytes(len) as usize];
        if client.read_exact(&mut packet).is_err()
            || server.write_all(&len).is_err()
            || server.write_all(&packet).is_err()
        {
            break;
        }
        events.push(describe(&packet));
    }
    let _ = server.shutdown(Shutdown::Write);
    kept.lock().expect("records").push(events);
}

/// One MTA packet as the record keeps it.
fn describe(packet: &[u8]) -> String {
    let Some((&command, data)) = packet.split_first() else {
        return "empty packet".into();
    };
    let word = |i: usize| {
        data.get(i * 4..i * 4 + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    match command {
        b'O' => match (word(0), word(1), word(2)) {
            (Some(v), Some(a), Some(p)) => format!("O version={v} actions={a:#x} protocol={p:#x}"),
            _ => "O (short)".into(),
        },
        b'D' => {
            let stage = data.first().map_or('?', |&b| b as char);
            let mut names: Vec<String> = data
                .get(1..)
                .unwrap_or_default()
                .split(|&b| b == 0)
                .step_by(2)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            names.sort();
            format!("D{stage} {}", names.join(" "))
        }
        b'C' => {
            // Host name, NUL, then the address family.
            let family = data
                .iter()
                .position(|&b| b == 0)
                .and_then(|i| data.get(i + 1))
                .map_or('?', |&b| b as char);
            format!("C family={family}")
        }
        other => (other as char).to_string(),
    }
}

/// Each macro packet joined to the command it precedes, then runs of
/// headers (`L`) and of body chunks (`B`) counted as one.
fn collapse(events: &[String]) -> Vec<String> {
    let mut joined: Vec<String> = Vec::new();
    let mut pending: Option<&String> = None;
    for e in events {
        if e.starts_with('D') {
            pending = Some(e);
            continue;
        }
        joined.push(match pending.take() {
            Some(d) => format!("{d} + {e}"),
            None => e.clone(),
        });
    }
    joined.dedup_by(|b, a| a == b && (a.ends_with('L') || a.ends_with('B')));
    joined
}

/// The message both senders send, five header lines. (Postfix 3.7's smtpd
/// passes the milter these alone, not the `Received:` line it adds: seen on
/// the wire, and asserted below.)
fn message(to: &[String]) -> String {
    format!(
        "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: sender@client.test\r\nTo: {}\r\n\
         Subject: lunch\r\nMessage-Id: <1@client.test>\r\n\r\nA friendly note about lunch.\r\n",
        to.join(", ")
    )
}

#[test]
fn the_load_generator_speaks_to_a_milter_as_postfix_does() {
    let m = MailwardProcess::start(LIBRARY, "");
    let recorder = Recorder::start(m.port());
    let Some(pf) = PostfixInstance::builder()
        .milter(format!("inet:{}", recorder.addr))
        .start()
    else {
        return;
    };
    // One session, two messages of two recipients each.
    let to = [pf.address("user"), pf.address("other")];
    let mut smtp = Smtp::connect(pf.smtp_addr(), WAIT);
    assert!(smtp.send("EHLO client.test").starts_with("250"));
    for _ in 0..2 {
        assert!(
            smtp.send("MAIL FROM:<sender@client.test>")
                .starts_with("250")
        );
        for rcpt in &to {
            let r = smtp.send(&format!("RCPT TO:<{rcpt}>"));
            assert!(r.starts_with("250"), "{r}");
        }
        assert!(smtp.send("DATA").starts_with("354"));
        let r = smtp.send(&format!("{}.", message(&to)));
        assert!(r.starts_with("250"), "{r}\n{}", pf.maillog());
    }
    assert!(smtp.send("QUIT").starts_with("221"));
    let postfix = recorder.wait_sessions(1).remove(0);

    let mut mail = loadgen::Mail::from_raw(message(&to).as_bytes());
    mail.sender = "<sender@client.test>".into();
    mail.recipients = to.iter().map(|t| format!("<{t}>")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let opts = loadgen::Options {
        messages_per_session: 2,
        ..loadgen::Options::default()
    };
    let report = runtime.block_on(loadgen::run(recorder.addr, vec![mail].into(), &opts));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.results.len(), 2);
    assert!(
        report.results.iter().all(|r| r.reply.is_accept()),
        "{:?}",
        report.results
    );
    let ours = recorder.wait_sessions(2).remove(1);

    // The records are not trivially alike: they hold the whole exchange.
    assert!(
        postfix
            .first()
            .is_some_and(|e| e.starts_with("O version=6 "))
    );
    assert_eq!(postfix.iter().filter(|e| *e == "E").count(), 2);
    assert_eq!(postfix.iter().filter(|e| *e == "R").count(), 4);
    let headers = |events: &[String]| events.iter().filter(|e| *e == "L").count();
    assert_eq!(headers(&postfix), 2 * 5);
    assert_eq!(headers(&ours), headers(&postfix));
    assert_eq!(
        collapse(&ours),
        collapse(&postfix),
        "load generator (left) and Postfix (right) differ;\nPostfix sent: {postfix:#?}"
    );
}
