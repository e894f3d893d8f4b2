//! A listener whose connections a handler can kill (to emulate dropped connections) and that
//! closes connections that hold the server without sending a request: idle keep-alive
//! connections and requests whose head does not arrive in time (slowloris). A half-sent body is
//! the gate's business (`body_read_timeout`), as the connection is then busy with a request.

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use parking_lot::Mutex;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// How long a connection may sit without a request in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnTimeouts {
    /// From the first byte of a request to its complete head.
    pub header_read: Duration,
    /// From the end of the last response (or the accept) to the first byte of a request.
    pub idle: Duration,
}

/// Wraps a [`TcpListener`]; every accepted stream carries a kill switch and the timeouts.
pub(crate) struct KillableListener {
    inner: TcpListener,
    timeouts: ConnTimeouts,
}

impl KillableListener {
    pub fn new(inner: TcpListener, timeouts: ConnTimeouts) -> Self {
        KillableListener { inner, timeouts }
    }
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((s, a)) => {
                    let _ = s.set_nodelay(true);
                    let state = Arc::new(ConnState::new(self.timeouts));
                    return (
                        KillableStream {
                            inner: s,
                            state,
                            timer: None,
                        },
                        a,
                    );
                }
                Err(e) => {
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// What the connection is doing, for its deadline.
#[derive(Debug)]
struct Phase {
    /// Requests being answered (HTTP/1: at most one; HTTP/2: any).
    busy: usize,
    /// Since when the connection has had no request in progress.
    idle_since: Instant,
    /// When the first byte of the next request arrived (its head is being read).
    head_since: Option<Instant>,
}

/// State shared by a stream and the handlers of its requests.
#[derive(Debug)]
struct ConnState {
    kill: AtomicBool,
    timeouts: ConnTimeouts,
    phase: Mutex<Phase>,
}

impl ConnState {
    fn new(timeouts: ConnTimeouts) -> Self {
        ConnState {
            kill: AtomicBool::new(false),
            timeouts,
            phase: Mutex::new(Phase {
                busy: 0,
                idle_since: Instant::now(),
                head_since: None,
            }),
        }
    }

    /// When the connection is to be closed unless a request starts: `None` while one is in
    /// progress.
    fn deadline(&self) -> Option<Instant> {
        let p = self.phase.lock();
        if p.busy > 0 {
            return None;
        }
        Some(match p.head_since {
            Some(t) => t + self.timeouts.header_read,
            None => p.idle_since + self.timeouts.idle,
        })
    }

    fn bytes_read(&self) {
        let mut p = self.phase.lock();
        if p.busy == 0 && p.head_since.is_none() {
            p.head_since = Some(Instant::now());
        }
    }

    fn bytes_written(&self) {
        let mut p = self.phase.lock();
        if p.busy == 0 && p.head_since.is_none() {
            // a response still being written after its handler returned: not idle yet
            p.idle_since = Instant::now();
        }
    }
}

/// A TCP stream that fails every read and write once killed, so hyper closes the socket
/// without sending the response, and fails a read once its deadline passes with no request in
/// progress, so hyper closes an idle or slowloris connection.
pub(crate) struct KillableStream {
    inner: TcpStream,
    state: Arc<ConnState>,
    timer: Option<Pin<Box<Sleep>>>,
}

fn killed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "sandbox dropped the connection",
    )
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "no complete request in time; the sandbox closed the connection",
    )
}

impl KillableStream {
    /// Whether the deadline (if any) has passed; registers the waker for it otherwise.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.state.deadline() else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.kill.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state.kill.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed()));
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.state.bytes_written();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state.kill.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed()));
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.state.bytes_written();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.state.kill.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed()));
        }
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Connect info handed to handlers: the connection's kill switch and request bookkeeping.
#[derive(Clone, Debug)]
pub(crate) struct ConnHandle(Arc<ConnState>);

impl ConnHandle {
    /// Makes the connection fail: the pending response is never written.
    pub fn kill(&self) {
        self.0.kill.store(true, Ordering::Relaxed);
    }

    /// Marks a request in progress until the guard drops: no idle or header deadline runs
    /// meanwhile.
    pub fn begin(&self) -> Busy {
        let mut p = self.0.phase.lock();
        p.busy += 1;
        p.head_since = None;
        Busy(self.0.clone())
    }
}

/// A request in progress on a connection (see [`ConnHandle::begin`]).
pub(crate) struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut p = self.0.phase.lock();
        p.busy = p.busy.saturating_sub(1);
        if p.busy == 0 {
            p.idle_since = Instant::now();
            p.head_since = None;
        }
    }
}

impl Connected<IncomingStream<'_, KillableListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        ConnHandle(stream.io().state.clone())
    }
}
