//! End-to-end tests through a real Postfix (see `support/postfix.rs`): a
//! private Postfix instance on 127.0.0.1 consults a milter for every SMTP
//! session; swaks or a raw SMTP client talks to Postfix, and the tests check
//! what the client was told, what Postfix logged and what it delivered.
//!
//! Without Postfix, swaks and root these tests are skipped (with a message);
//! with `CI=true` they fail instead.
//!
//! For now the milter is a small stub built with indymilter, which checks the
//! harness itself: it refuses (550 5.7.1) any message whose body contains
//! `SPAMWORD`, adds `X-Stub: seen` to the others, and answers unknown SMTP
//! commands (see [`unknown_commands_through_postfix`]).
//!
//! # Testing the real milter the same way
//!
//! Only the milter changes; the Postfix side stays as below.
//!
//! - In process: bind `tokio::net::TcpListener::bind("127.0.0.1:0")`, take its
//!   port, and run `mailward::run(listener, config, reload_rx, shutdown)` on a
//!   runtime in a background thread, exactly as [`Stub::start`] runs
//!   `indymilter::run`; a oneshot channel as `shutdown` stops it.
//! - As the binary: take a port with `support::postfix::free_port()`, write a
//!   `milter.yaml` that listens on `inet:127.0.0.1:<port>` into a temporary
//!   directory, spawn `env!("CARGO_BIN_EXE_mailward")` with
//!   `--config <that file>`, wait with `support::postfix::wait_listening(port, …)`
//!   (never by connecting: that would be a milter session), and kill the
//!   child by its pid when the test ends (a guard whose `Drop` kills and
//!   waits). If the port was taken in between, the child exits early: retry
//!   with a new port.
//!
//! Then `PostfixInstance::builder().milter_port(port).start()`, send spam and
//! ham with `send`, and assert on the codes, `wait_log` and `wait_delivered`
//! as these tests do.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use indymilter::{
    Actions, Callbacks, Config, Context, ContextActions, EomContext, Macros, NegotiateContext,
    SetErrorReply, Status,
};
use support::postfix::PostfixInstance;
use support::smtp::Smtp;
use tokio::sync::oneshot;

/// Upper bound for each wait on Postfix (delivery, log lines, replies).
const WAIT: Duration = Duration::from_secs(30);
/// The stub answers 421 to this unknown command of a session (1-based).
const UNKNOWN_LIMIT: usize = 5;

/// Per-session state of the stub milter.
#[derive(Default)]
struct Session {
    body: Vec<u8>,
    unknown: usize,
}

/// What the stub milter received, over all its sessions.
#[derive(Default)]
struct Seen {
    /// Unknown commands, in order.
    unknown: Mutex<Vec<String>>,
    /// The macros defined at each stage (connect, mail, rcpt, data, eom), in
    /// order.
    macros: Mutex<Vec<(&'static str, BTreeMap<String, String>)>>,
}

impl Seen {
    fn record(&self, stage: &'static str, macros: &Macros) {
        let macros = macros
            .to_hash_map()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        self.macros.lock().unwrap().push((stage, macros));
    }

    /// The macros of the first `stage` event.
    fn macros_at(&self, stage: &str) -> BTreeMap<String, String> {
        let all = self.macros.lock().unwrap();
        all.iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("no {stage} event reached the milter: {all:?}"))
    }
}

/// The stub milter, running on its own runtime thread until stopped.
struct Stub {
    port: u16,
    seen: Arc<Seen>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    fn start() -> Stub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the stub milter");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("stub address").port();
        let seen = Arc::new(Seen::default());
        let callbacks = stub_callbacks(Arc::clone(&seen));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("stub runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                indymilter::run(listener, callbacks, Config::default(), stopped)
                    .await
                    .expect("stub milter");
            });
        });
        Stub {
            port,
            seen,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Stops the milter and waits until its listener is closed.
    fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("stub milter thread");
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The stub asks for no macros in negotiate: it sees what main.cf's
/// `milter_*_macros` (or Postfix's defaults) send.
fn stub_callbacks(seen: Arc<Seen>) -> Callbacks<Session> {
    let (on_connect, on_mail, on_rcpt, on_data, on_eom, on_unknown) = (
        Arc::clone(&seen),
        Arc::clone(&seen),
        Arc::clone(&seen),
        Arc::clone(&seen),
        Arc::clone(&seen),
        seen,
    );
    Callbacks::new()
        .on_negotiate(|cx, _, _| Box::pin(negotiate(cx)))
        .on_connect(move |cx, _, _| {
            on_connect.record("connect", &cx.macros);
            Box::pin(async move {
                cx.data = Some(Session::default());
                Status::Continue
            })
        })
        .on_mail(move |cx, _| {
            on_mail.record("mail", &cx.macros);
            Box::pin(async move {
                if let Some(s) = cx.data.as_mut() {
                    s.body.clear();
                }
                Status::Continue
            })
        })
        .on_rcpt(move |cx, _| {
            on_rcpt.record("rcpt", &cx.macros);
            Box::pin(async { Status::Continue })
        })
        .on_data(move |cx| {
            on_data.record("data", &cx.macros);
            Box::pin(async { Status::Continue })
        })
        .on_body(|cx, chunk| {
            Box::pin(async move {
                if let Some(s) = cx.data.as_mut() {
                    s.body.extend_from_slice(&chunk);
                }
                Status::Continue
            })
        })
        .on_eom(move |cx| {
            on_eom.record("eom", &cx.macros);
            Box::pin(eom(cx))
        })
        .on_unknown(move |cx, command| {
            on_unknown
                .unknown
                .lock()
                .unwrap()
                .push(command.to_string_lossy().into_owned());
            Box::pin(unknown(cx))
        })
}

async fn negotiate(cx: &mut NegotiateContext<Session>) -> Status {
    cx.requested_actions |= Actions::ADD_HEADER;
    Status::Continue
}

async fn eom(cx: &mut EomContext<Session>) -> Status {
    let spam = cx
        .data
        .as_ref()
        .is_some_and(|s| s.body.windows(8).any(|w| w == b"SPAMWORD"));
    if spam {
        cx.reply
            .set_error_reply("550", Some("5.7.1"), ["Message refused by the stub milter"])
            .expect("valid reply");
        return Status::Reject;
    }
    cx.actions
        .add_header("X-Stub", "seen")
        .await
        .expect("add header");
    Status::Continue
}

/// Answers the unknown commands of a session in
/// turn: 1st reject with its own 550 reply, 2nd plain reject, 3rd plain
/// tempfail, 4th continue, and from the [`UNKNOWN_LIMIT`]th on 421, to show
/// what Postfix does with each answer.
async fn unknown(cx: &mut Context<Session>) -> Status {
    let Some(s) = cx.data.as_mut() else {
        return Status::Continue;
    };
    s.unknown += 1;
    match s.unknown {
        1 => {
            cx.reply
                .set_error_reply(
                    "550",
                    Some("5.5.1"),
                    ["Unknown command refused by the stub"],
                )
                .expect("valid reply");
            Status::Reject
        }
        2 => Status::Reject,
        3 => Status::Tempfail,
        n if n < UNKNOWN_LIMIT => Status::Continue,
        _ => {
            cx.reply
                .set_error_reply("421", Some("4.7.0"), ["Too many unknown commands"])
                .expect("valid reply");
            Status::Tempfail
        }
    }
}

/// A Postfix instance consulting `stub`, or `None` when Postfix cannot run
/// here (see the module docs).
fn postfix_with(stub: &Stub) -> Option<PostfixInstance> {
    PostfixInstance::builder().milter_port(stub.port).start()
}

/// Sends one message from sender@client.test to `to`@example.test.
fn send(pf: &PostfixInstance, to: &str, subject: &str, body: &str) -> (i32, String) {
    let to = pf.address(to);
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

#[test]
fn spam_is_refused_after_data() {
    let stub = Stub::start();
    let Some(pf) = postfix_with(&stub) else {
        return;
    };
    let (code, transcript) = send(&pf, "user", "spam test", "Buy now: SPAMWORD inside.");
    assert_eq!(
        code, 26,
        "swaks exit code (refused after data)\n{transcript}"
    );
    assert!(
        transcript.contains("550 5.7.1 Message refused by the stub milter"),
        "client transcript:\n{transcript}"
    );
    let line = pf
        .wait_log("milter-reject: END-OF-MESSAGE", WAIT)
        .unwrap_or_else(|| panic!("no milter-reject line:\n{}", pf.maillog()));
    // Postfix logs the reply without its 550: "<queue id>: milter-reject:
    // END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.1 Message refused by the
    // stub milter; from=<sender@client.test> to=<user@example.test>
    // proto=ESMTP helo=<...>", logged by cleanup, which holds the milter
    // conversation for the message content.
    assert!(
        line.contains(": 5.7.1 Message refused by the stub milter;"),
        "{line}"
    );
    assert!(line.contains("to=<user@example.test>"), "{line}");
    assert!(line.contains("from=<sender@client.test>"), "{line}");
    assert!(pf.delivered().is_empty(), "a refused message was delivered");
}

/// The `milter_*_macros` lines of the shipped main.cf snippet.
fn snippet_macros() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/postfix/main.cf.snippet"
    );
    let text = std::fs::read_to_string(path).expect("read contrib/postfix/main.cf.snippet");
    let lines: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .filter(|(name, _)| name.starts_with("milter_") && name.ends_with("_macros"))
        .collect();
    assert!(lines.len() >= 4, "macro lines of the snippet: {lines:?}");
    lines
}

#[test]
fn ham_is_delivered_with_the_milter_header_and_snippet_macros() {
    let stub = Stub::start();
    let mut builder = PostfixInstance::builder().milter_port(stub.port);
    for (name, value) in snippet_macros() {
        builder = builder.param(name, value);
    }
    let Some(pf) = builder.start() else {
        return;
    };
    let (code, transcript) = send(&pf, "user", "ham test", "Just a friendly note.");
    assert_eq!(code, 0, "swaks exit code (accepted)\n{transcript}");
    assert!(transcript.contains("250 2.0.0 Ok: queued"), "{transcript}");
    let message = pf
        .wait_delivered(|m| m.contains("Subject: ham test"), WAIT)
        .unwrap_or_else(|| panic!("nothing delivered:\n{}", pf.maillog()));
    assert!(message.contains("X-Stub: seen"), "delivered:\n{message}");
    assert!(
        message.contains("Just a friendly note."),
        "delivered:\n{message}"
    );
    assert!(
        message.contains(&format!("Delivered-To: {}", pf.address("user"))),
        "delivered:\n{message}"
    );
    assert!(!pf.maillog().contains("milter-reject"), "{}", pf.maillog());

    // The snippet's macros reach the milter (the stub requests none itself;
    // Postfix's default connect macros have no {client_addr}).
    let connect = stub.seen.macros_at("connect");
    assert_eq!(
        connect.get("{client_addr}").map(String::as_str),
        Some("127.0.0.1"),
        "{connect:?}"
    );
    assert_eq!(
        connect.get("{client_name}").map(String::as_str),
        Some("localhost"),
        "{connect:?}"
    );
    assert_eq!(
        connect.get("j").map(String::as_str),
        Some(support::postfix::HOSTNAME),
        "{connect:?}"
    );
    let mail = stub.seen.macros_at("mail");
    assert_eq!(
        mail.get("{mail_addr}").map(String::as_str),
        Some("sender@client.test"),
        "{mail:?}"
    );
    assert!(
        !mail.contains_key("{auth_authen}"),
        "no AUTH, no login: {mail:?}"
    );
    // No queue id yet at MAIL nor at the first RCPT: Postfix opens the queue
    // file after the first accepted recipient. It is there from DATA on.
    assert!(!mail.contains_key("i"), "{mail:?}");
    assert!(!stub.seen.macros_at("rcpt").contains_key("i"));
    assert!(stub.seen.macros_at("data").contains_key("i"));
    let rcpt = stub.seen.macros_at("rcpt");
    assert_eq!(
        rcpt.get("{rcpt_addr}").map(String::as_str),
        Some("user@example.test"),
        "{rcpt:?}"
    );
    // The queue id at end of message is the one Postfix delivered under.
    let queue_id = stub
        .seen
        .macros_at("eom")
        .get("i")
        .cloned()
        .expect("queue id at eom");
    let sent = pf
        .wait_log("status=sent", WAIT)
        .unwrap_or_else(|| panic!("no delivery logged:\n{}", pf.maillog()));
    assert!(
        sent.contains(&format!(" {queue_id}: ")),
        "queue id {queue_id}: {sent}"
    );
}

#[test]
fn stopped_milter_gives_the_default_tempfail() {
    let mut stub = Stub::start();
    let Some(pf) = postfix_with(&stub) else {
        return;
    };
    // While the milter runs, mail goes through.
    let (code, transcript) = send(&pf, "user", "before stop", "Hello.");
    assert_eq!(code, 0, "{transcript}");

    stub.stop();
    // milter_default_action = tempfail: Postfix cannot reach the milter at
    // connect and answers every later command with 451 4.7.1; swaks gives up
    // at MAIL FROM (exit 23).
    let (code, transcript) = send(&pf, "user", "after stop", "Hello again.");
    assert_eq!(code, 23, "swaks exit code (MAIL refused)\n{transcript}");
    assert!(
        transcript.contains("451 4.7.1 Service unavailable - try again later"),
        "{transcript}"
    );
    let refused = format!("connect to Milter service inet:127.0.0.1:{}", stub.port);
    pf.wait_log(&refused, WAIT)
        .unwrap_or_else(|| panic!("no milter connect failure logged:\n{}", pf.maillog()));
    let line = pf
        .wait_log("milter-reject: MAIL from", WAIT)
        .unwrap_or_else(|| panic!("no milter-reject at MAIL:\n{}", pf.maillog()));
    assert!(line.contains("451 4.7.1"), "{line}");
    assert!(
        pf.wait_delivered(|m| m.contains("Subject: before stop"), WAIT)
            .is_some()
    );
    assert!(
        !pf.delivered()
            .iter()
            .any(|m| m.contains("Subject: after stop")),
        "mail went through without the milter"
    );
}

#[test]
fn unknown_commands_through_postfix() {
    let stub = Stub::start();
    let Some(pf) = postfix_with(&stub) else {
        return;
    };
    let mut smtp = Smtp::connect(pf.smtp_addr(), WAIT);
    let ehlo = smtp.send("EHLO x");
    assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");

    let mut replies = Vec::new();
    for i in 1..=UNKNOWN_LIMIT + 2 {
        let reply = smtp.send(&format!("FOOBAR {i}"));
        let end = reply.is_empty() || reply.starts_with("421");
        replies.push(reply);
        if end {
            break;
        }
    }
    let after = smtp.reply();

    // What the milter sees: the command word only, without its arguments.
    let seen = stub.seen.unknown.lock().unwrap().clone();
    assert_eq!(seen, ["FOOBAR"; UNKNOWN_LIMIT], "replies: {replies:?}");
    // Every answer of the milter reaches the client (a 5xx too), and only
    // 421 ends the session: its own 550 reply as given; a plain reject as
    // Postfix's "550 5.7.1 Command rejected"; a plain tempfail as "451 4.7.1
    // Service unavailable - try again later"; continue as Postfix's own
    // "500 5.5.2 Error: command not recognized".
    assert_eq!(
        replies,
        [
            "550 5.5.1 Unknown command refused by the stub\r\n",
            "550 5.7.1 Command rejected\r\n",
            "451 4.7.1 Service unavailable - try again later\r\n",
            "500 5.5.2 Error: command not recognized\r\n",
            "421 4.7.0 Too many unknown commands\r\n",
        ]
    );
    assert_eq!(after, "", "the connection stays open after 421");
    // Postfix logs a milter-reject line for each refusal of the milter:
    // "NOQUEUE: milter-reject: UNKNOWN from localhost[127.0.0.1]: 421 4.7.0
    // Too many unknown commands; proto=ESMTP helo=<x>", then "disconnect
    // from localhost[127.0.0.1] ehlo=1 unknown=0/5 commands=1/6".
    let line = pf
        .wait_log(
            "milter-reject: UNKNOWN from localhost[127.0.0.1]: 421",
            WAIT,
        )
        .unwrap_or_else(|| panic!("no milter-reject line:\n{}", pf.maillog()));
    assert!(
        line.contains("421 4.7.0 Too many unknown commands"),
        "{line}"
    );
    assert!(line.contains("helo=<x>"), "{line}");
    let log = pf.maillog();
    assert_eq!(log.matches("milter-reject: UNKNOWN").count(), 4, "{log}");
    pf.wait_log("unknown=0/5", WAIT)
        .unwrap_or_else(|| panic!("no disconnect line:\n{}", pf.maillog()));
}
