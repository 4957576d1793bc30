//! Stopping `mailward::run` gracefully: once its shutdown future completes
//! it refuses new connections, lets the sessions open finish their
//! messages, and returns when they have ended or the grace time is up.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::net::TcpStream;

const LIBRARY: &str = "\
entries:
  - {text: viagra, id: en-viagra, weight: 6, match: word}
  - {text: cialis, id: en-cialis, weight: 6, match: word}
";

const SPAM: &str = "Hello,\r\nbuy viagra and cialis today.\r\n";

/// Waits (up to 10 s) until connections to `addr` are refused; a
/// connection accepted meanwhile is closed at once.
async fn wait_refused(addr: SocketAddr) {
    for _ in 0..1000 {
        match TcpStream::connect(addr).await {
            Err(_) => return,
            Ok(s) => drop(s),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{addr} still accepts connections");
}

#[tokio::test]
async fn a_message_in_flight_is_judged_after_the_stop_and_new_connections_are_refused() {
    let mut m = Milter::start("", LIBRARY).await;
    let addr = m.addr;
    let mut c = m.client().await;
    let msg = Msg::new("offer", SPAM).id("STOP1");
    c.envelope(&msg).await;

    m.begin_stop();
    wait_refused(addr).await;

    // The session goes on: its message is judged as before the stop, and
    // a second message on the same connection too.
    let (_, status) = c.content(&msg).await;
    assert!(is_reject(&status), "{status:?}");
    assert!(log_line("STOP1").contains("verdict=reject"));
    let (_, status) = c.send(&Msg::new("offer", SPAM).id("STOP2")).await;
    assert!(is_reject(&status), "{status:?}");
    c.close().await;

    m.join().await.unwrap();
    // Probing connections may still have been open when it stopped.
    assert!(logged(
        "stopped accepting connections; waiting up to 30s for"
    ));
    assert!(logged("every session has ended"));
}

#[tokio::test]
async fn sessions_still_open_after_the_grace_time_are_closed() {
    let mut m = Milter::start("milter: {shutdown_grace: 1s}\n", LIBRARY).await;
    let mut c = m.client().await;
    let msg = Msg::new("offer", SPAM).id("STOP3");
    c.envelope(&msg).await;
    m.begin_stop();
    // The client stays silent: the milter returns after the grace time.
    m.join().await.unwrap();
    assert!(logged("1 session(s) still open after 1s: closing them"));
    // The connection was closed under the client (end of message, since
    // headers get no reply to fail on).
    let closed = c.conn.eom().await;
    assert!(closed.is_err(), "{closed:?}");
}

#[tokio::test]
async fn without_sessions_the_stop_is_immediate() {
    let mut m = Milter::start("", LIBRARY).await;
    let addr = m.addr;
    m.begin_stop();
    m.join().await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
