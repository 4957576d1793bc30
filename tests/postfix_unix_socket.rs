//! mailward on a unix socket under Postfix's queue directory, named in
//! `smtpd_milters` by a path relative to that directory, as
//! `contrib/postfix/main.cf.snippet` and docs/operations.md advise for the
//! chroot: Postfix's daemons work in the queue directory (chrooted or not),
//! so `unix:mailward/mailward.sock` is the socket
//! `<queue_directory>/mailward/mailward.sock` either way.
//!
//! Without Postfix, swaks and root this test is skipped (with a message);
//! with `CI=true` it fails instead.

mod support;

use std::fs;
use std::time::Duration;

use support::mailward::MailwardProcess;
use support::postfix::PostfixInstance;

const WAIT: Duration = Duration::from_secs(30);

const LIBRARY: &str = "entries:\n  - { text: cheap pills, weight: 12, id: pills }\n";

#[test]
fn a_socket_named_relative_to_the_queue_directory() {
    let Some(pf) = PostfixInstance::builder()
        .milter("unix:mailward/mailward.sock")
        .start()
    else {
        return;
    };
    let queue = pf
        .config_dir()
        .parent()
        .expect("instance directory")
        .join("queue");
    let socket_dir = queue.join("mailward");
    fs::create_dir(&socket_dir).expect("create the socket directory");
    let m = MailwardProcess::start_unix(LIBRARY, &socket_dir.join("mailward.sock"), "");

    let to = pf.address("user");
    let (code, transcript) = pf.send(&[
        "--from",
        "sender@client.test",
        "--to",
        &to,
        "--header",
        "Subject: deal",
        "--body",
        "cheap pills",
    ]);
    assert_eq!(code, 26, "refused after DATA\n{transcript}");
    assert!(
        transcript.contains("550 5.7.1 Message refused by content filter"),
        "{transcript}"
    );
    let (code, transcript) = pf.send(&[
        "--from",
        "sender@client.test",
        "--to",
        &to,
        "--header",
        "Subject: hello",
        "--body",
        "lunch",
    ]);
    assert_eq!(code, 0, "accepted\n{transcript}");
    assert!(
        pf.wait_delivered(|msg| msg.contains("Subject: hello"), WAIT)
            .is_some(),
        "{}",
        pf.maillog()
    );
    assert!(
        m.wait_log(&["verdict=reject", "ids=pills"], WAIT).is_some(),
        "{}",
        m.log()
    );
}
