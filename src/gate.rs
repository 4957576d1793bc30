//! A listener that can stop accepting while its sessions go on, and counts
//! the sessions still open: what a graceful stop needs.
//!
//! indymilter stops in one step: when its shutdown future completes it
//! stops accepting *and* tells every session to end after the command it
//! is processing, dropping the commands queued behind it, so a message in
//! progress would be lost (the MTA applies its default action). mailward
//! stops in two: [`GateHandle::close`] drops the listening socket (new
//! connections are refused, so the MTA goes to its default action at once
//! rather than waiting in a backlog), then [`GateHandle::wait_idle`] waits
//! until every accepted connection has ended, and only then — or when the
//! grace time is up — is indymilter's shutdown future completed.
//!
//! # Invariants
//!
//! * A session is counted from its accept to the drop of its stream, which
//!   indymilter does when the session ends (QUIT, the MTA closing the
//!   connection, an error).
//! * Once closed, the listener never accepts again; its socket is closed at
//!   once, not when indymilter next polls it.
//! * An error accepting one connection does not end the milter (indymilter
//!   would stop on any): a connection reset before it was accepted is
//!   skipped, and running out of file descriptors or memory (`EMFILE`,
//!   `ENFILE`, `ENOBUFS`, `ENOMEM`) pauses accepting for [`BACKOFF`],
//!   logged, while the open sessions go on. Other errors end the milter.
//! * Accepted TCP connections have `TCP_NODELAY` set. indymilter writes
//!   each reply as it comes, and at end of message an action (the verdict
//!   header) is followed at once by the final reply: with Nagle's algorithm
//!   that reply would wait for the MTA's delayed acknowledgement of the
//!   action, 40 ms on Linux, for every tagged message.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use std::future::Future;

use indymilter::{EitherStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

type Slot<L> = Arc<Mutex<Option<L>>>;

/// The pause after accepting failed for lack of resources.
pub const BACKOFF: Duration = Duration::from_millis(100);

/// The listener indymilter polls.
pub struct Gate<L> {
    inner: Slot<L>,
    open: Arc<watch::Sender<usize>>,
    /// Accepting is paused until this sleep ends.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Accept errors so far, for the log.
    errors: u64,
}

/// Closes a [`Gate`] and watches its sessions.
pub struct GateHandle<L> {
    inner: Slot<L>,
    open: Arc<watch::Sender<usize>>,
}

/// Wraps `listener`; the handle closes it.
pub fn gate<L: Listener>(listener: L) -> (Gate<L>, GateHandle<L>) {
    let inner = Arc::new(Mutex::new(Some(listener)));
    let open = Arc::new(watch::Sender::new(0));
    (
        Gate {
            inner: inner.clone(),
            open: open.clone(),
            pause: None,
            errors: 0,
        },
        GateHandle { inner, open },
    )
}

impl<L> GateHandle<L> {
    /// Stops accepting: closes the listening socket.
    pub fn close(&self) {
        let listener = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(listener);
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Waits until no session is open.
    pub async fn wait_idle(&self) {
        let mut rx = self.open.subscribe();
        // The sender lives in `self`: this cannot fail.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

impl<L: Listener> Listener for Gate<L> {
    type Io = Tracked<L::Io>;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        let Gate {
            inner,
            open,
            pause,
            errors,
        } = self;
        if let Some(p) = pause.as_mut() {
            if p.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            *pause = None;
        }
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        // Closed: never ready again (indymilter drops this future when its
        // shutdown future completes).
        let Some(listener) = inner.as_mut() else {
            return Poll::Pending;
        };
        loop {
            return match listener.poll_accept(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(io)) => {
                    no_delay(&io);
                    open.send_modify(|n| *n += 1);
                    Poll::Ready(Ok(Tracked {
                        io,
                        open: open.clone(),
                    }))
                }
                Poll::Ready(Err(e)) => match transient(&e) {
                    None => Poll::Ready(Err(e)),
                    Some(then_pause) => {
                        *errors += 1;
                        if errors.is_power_of_two() {
                            log::warn!(
                                "accepting a connection: {e} ({errors} time(s) so far){}",
                                if then_pause { "; pausing 100 ms" } else { "" }
                            );
                        }
                        if !then_pause {
                            continue;
                        }
                        let mut sleep = Box::pin(tokio::time::sleep(BACKOFF));
                        // Registers the wake-up; a sleep just made is pending.
                        let _ = sleep.as_mut().poll(cx);
                        *pause = Some(sleep);
                        Poll::Pending
                    }
                },
            };
        }
    }
}

/// Whether an accept error concerns only that connection or a passing
/// lack of resources (`Some(true)`: pause before the next accept), rather
/// than the listener itself.
fn transient(e: &io::Error) -> Option<bool> {
    match e.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => Some(false),
        _ => match e.raw_os_error() {
            Some(
                nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM,
            ) => Some(true),
            _ => None,
        },
    }
}

/// Sets `TCP_NODELAY` on a TCP stream (as accepted by the listeners the
/// binary and the tests use); other streams are left as they are.
fn no_delay(io: &dyn std::any::Any) {
    use tokio::net::{TcpStream, UnixStream};
    let tcp = if let Some(s) = io.downcast_ref::<TcpStream>() {
        Some(s)
    } else if let Some(EitherStream::Tcp(s)) =
        io.downcast_ref::<EitherStream<TcpStream, UnixStream>>()
    {
        Some(s)
    } else {
        None
    };
    if let Some(s) = tcp
        && let Err(e) = s.set_nodelay(true)
    {
        log::debug!("TCP_NODELAY: {e}");
    }
}

/// An accepted connection, counted until dropped.
pub struct Tracked<S> {
    io: S,
    open: Arc<watch::Sender<usize>>,
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn sessions_are_counted_and_a_closed_gate_refuses() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (mut gate, handle) = gate(l);
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let s1 = gate.accept().await.unwrap();
        assert!(s1.io.nodelay().unwrap(), "replies are not held back");
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let s2 = gate.accept().await.unwrap();
        assert_eq!(handle.open(), 2);
        handle.close();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the socket is closed at once"
        );
        let pending = futures_poll_once(&mut gate);
        assert!(pending, "a closed gate never accepts");
        drop(s1);
        assert_eq!(handle.open(), 1);
        let waiter = tokio::spawn(async move {
            handle.wait_idle().await;
            handle
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(s2);
        let handle = waiter.await.unwrap();
        assert_eq!(handle.open(), 0);
    }

    #[tokio::test]
    async fn tcp_streams_of_the_binary_listener_get_no_delay() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let either = indymilter::EitherListener::<_, tokio::net::UnixListener>::Tcp(l);
        let (mut gate, _handle) = gate(either);
        let _c = TcpStream::connect(addr).await.unwrap();
        match &gate.accept().await.unwrap().io {
            EitherStream::Tcp(s) => assert!(s.nodelay().unwrap()),
            EitherStream::Unix(_) => unreachable!(),
        }
    }

    /// Fails as told, then accepts from a real listener.
    struct Flaky {
        errors: Vec<io::Error>,
        real: TcpListener,
    }

    impl Listener for Flaky {
        type Io = TcpStream;
        fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
            match self.errors.pop() {
                Some(e) => Poll::Ready(Err(e)),
                None => self.real.poll_accept(cx).map_ok(|(s, _)| s),
            }
        }
    }

    #[tokio::test]
    async fn running_out_of_descriptors_pauses_accepting_and_does_not_end_it() {
        let real = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = real.local_addr().unwrap();
        let errors = vec![
            io::Error::from_raw_os_error(nix::libc::EMFILE),
            io::Error::from(io::ErrorKind::ConnectionAborted),
        ];
        let (mut gate, handle) = gate(Flaky { errors, real });
        let _c = TcpStream::connect(addr).await.unwrap();
        let start = std::time::Instant::now();
        let s = gate.accept().await.unwrap();
        assert!(start.elapsed() >= BACKOFF, "paused after EMFILE");
        assert_eq!(handle.open(), 1);
        drop(s);
        let (mut gate, _) = super::gate(Flaky {
            errors: vec![io::Error::from(io::ErrorKind::PermissionDenied)],
            real: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        });
        assert!(gate.accept().await.is_err(), "other errors end it");
    }

    /// Polls `gate.accept()` once; true when pending.
    fn futures_poll_once<L: Listener>(gate: &mut Gate<L>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        gate.poll_accept(&mut cx).is_pending()
    }
}
