//! The server's connections: accepted with `TCP_NODELAY` (a response that goes out in pieces,
//! a log stream, is not held back waiting for an acknowledgement), and closed late when their
//! client closed them first.
//!
//! Why late: when one write releases a thousand blocked readers, each reader's client reads
//! its answer and closes its connection while the server is still answering the others. The
//! close costs the server a `shutdown` (its FIN, and the client's socket moving to TIME_WAIT,
//! both processed by the kernel on the server's time), an `epoll_ctl` and a `close`: work that
//! nobody waits for, done in the middle of the work that the remaining readers wait for. So a
//! connection whose client has closed it is handed to a task that closes such connections
//! once none has come for a moment ([`QUIET`]) — after the burst — or after [`HOLD_AT_MOST`].
//! A connection the server closes itself (an idle timeout, `Connection: close`) is closed at
//! once, as before.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long without another client-closed connection before the held ones are closed.
pub const QUIET: Duration = Duration::from_millis(5);
/// The longest a connection is held.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(1);
/// Connections that may be held whatever the file descriptor limit says (see
/// [`hold_at_most_count`]).
const HOLD_AT_LEAST_COUNT: usize = 512;

/// Accepts connections for `axum::serve`; wrap a bound listener ([`crate::listen::bind`]).
pub struct Listener {
    inner: TcpListener,
    closer: Closer,
}

impl Listener {
    /// Starts the closing task too: call it within the server's runtime.
    pub fn new(inner: TcpListener) -> Self {
        Self { inner, closer: Closer::start() }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return (Connection { stream: Some(stream), peer_closed: false, closer: self.closer.clone() }, peer);
                }
                // The connection went before it was taken: take the next.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => {}
                // Out of file descriptors, say: close what is held, wait, try again (as axum
                // does for its own listener).
                Err(e) => {
                    tracing::error!(error = %e, "accepting a connection failed");
                    self.closer.0.close_all();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One accepted connection (a `TcpStream` that notices its client closing it).
pub struct Connection {
    // Taken only in `drop`.
    stream: Option<TcpStream>,
    /// A read found the end of the stream: the client closed its side.
    peer_closed: bool,
    closer: Closer,
}

impl Connection {
    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.stream.as_mut().expect("taken only when dropped"))
    }
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = self.stream().poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() == before && buf.remaining() > 0 {
            self.peer_closed = true;
        }
        read
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    /// After the client closed its side, the FIN goes with the (late) close instead.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.peer_closed {
            return Poll::Ready(Ok(()));
        }
        self.stream().poll_shutdown(cx)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let (true, Some(stream)) = (self.peer_closed, self.stream.take()) {
            self.closer.hold(stream);
        }
    }
}

/// What `axum::serve` asks of each new connection: the router, with the client's address as
/// [`axum::extract::ConnectInfo`] (what `into_make_service_with_connect_info` gives for a
/// plain `TcpListener`).
#[derive(Clone)]
pub struct WithPeer(pub axum::Router);

impl tower::Service<axum::serve::IncomingStream<'_, Listener>> for WithPeer {
    type Response = axum::middleware::AddExtension<axum::Router, axum::extract::ConnectInfo<SocketAddr>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: axum::serve::IncomingStream<'_, Listener>) -> Self::Future {
        // A reference-counted copy of the router, as `into_make_service` makes.
        let peer = axum::extract::ConnectInfo(*stream.remote_addr());
        std::future::ready(Ok(tower::Layer::layer(&axum::Extension(peer), self.0.clone())))
    }
}

/// The task that closes client-closed connections after the burst. A connection handed over
/// costs a push under a lock; the task is woken once per burst, not once per connection.
#[derive(Clone)]
struct Closer(Arc<Held>);

struct Held {
    streams: Mutex<Vec<TcpStream>>,
    /// How many were ever handed over (the task compares it to see whether the burst goes on).
    handed: AtomicU64,
    /// The most held at once ([`hold_at_most_count`]): the one that reaches it closes them all.
    most: usize,
    /// Wakes the task: a first connection held, or the listener and its connections gone.
    arrived: Arc<Notify>,
}

impl Drop for Held {
    /// The task holds only a weak reference: woken now, it finds nothing and ends (a test
    /// process starts many servers; none leaves a task behind).
    fn drop(&mut self) {
        self.arrived.notify_one();
    }
}

impl Closer {
    fn start() -> Self {
        Self::holding_at_most(hold_at_most_count())
    }

    fn holding_at_most(most: usize) -> Self {
        let arrived = Arc::new(Notify::new());
        let held = Arc::new(Held { streams: Mutex::default(), handed: AtomicU64::new(0), most, arrived: arrived.clone() });
        let weak = Arc::downgrade(&held);
        tokio::spawn(async move {
            loop {
                arrived.notified().await;
                let Some(task) = weak.upgrade() else { return };
                let first = tokio::time::Instant::now();
                let mut seen = task.handed.load(Ordering::Relaxed);
                loop {
                    tokio::time::sleep(QUIET).await;
                    let handed = task.handed.load(Ordering::Relaxed);
                    if handed == seen || first.elapsed() >= HOLD_AT_MOST {
                        break;
                    }
                    seen = handed;
                }
                task.close_all();
            }
        });
        Self(held)
    }

    fn hold(&self, stream: TcpStream) {
        let (first, full) = {
            let mut streams = self.0.streams.lock().expect("not poisoned");
            streams.push(stream);
            (streams.len() == 1, streams.len() >= self.0.most)
        };
        self.0.handed.fetch_add(1, Ordering::Relaxed);
        if full {
            self.0.close_all();
        } else if first {
            self.0.arrived.notify_one();
        }
    }
}

impl Held {
    /// Closes what is held, outside the lock.
    fn close_all(&self) {
        let closing = std::mem::take(&mut *self.streams.lock().expect("not poisoned"));
        drop(closing);
    }
}

/// The most connections held: half of what the process may open, so that a burst of
/// thousands is held whole and the server keeps room for new connections.
fn hold_at_most_count() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if known {
        (limit.rlim_cur as usize / 2).max(HOLD_AT_LEAST_COUNT)
    } else {
        HOLD_AT_LEAST_COUNT
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A connection of the listener, with the client's end.
    async fn pair(listener: &mut Listener) -> (Connection, TcpStream) {
        let client = TcpStream::connect(axum::serve::Listener::local_addr(listener).unwrap());
        let (accepted, client) = tokio::join!(axum::serve::Listener::accept(listener), client);
        (accepted.0, client.unwrap())
    }

    #[tokio::test]
    async fn a_connection_its_client_closed_is_closed_after_a_quiet_moment() {
        let mut listener = Listener::new(crate::listen::bind("127.0.0.1:0").await.unwrap());
        let (mut conn, mut client) = pair(&mut listener).await;
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 4);
        assert!(!conn.peer_closed);
        client.shutdown().await.unwrap();
        assert_eq!(conn.read(&mut buf).await.unwrap(), 0, "the client's end");
        assert!(conn.peer_closed);
        // The answer still reaches the client, and then the end of the stream, a little later.
        conn.write_all(b"pong").await.unwrap();
        conn.shutdown().await.unwrap();
        let dropped = Instant::now();
        drop(conn);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"pong");
        assert!(dropped.elapsed() >= QUIET, "closed late: {:?}", dropped.elapsed());
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_first_ends_at_once() {
        let mut listener = Listener::new(crate::listen::bind("127.0.0.1:0").await.unwrap());
        let (mut conn, mut client) = pair(&mut listener).await;
        conn.write_all(b"bye").await.unwrap();
        conn.shutdown().await.unwrap();
        // The FIN went with the shutdown: the client sees the end while the server still
        // holds the connection.
        let mut got = Vec::new();
        // Without the FIN this read would wait for ever: fail instead.
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut got)).await.expect("the end of the stream").unwrap();
        assert_eq!(got, b"bye");
        assert!(!conn.peer_closed);
        drop(conn);
    }

    #[tokio::test]
    async fn the_closing_task_ends_with_the_listener_and_its_connections() {
        let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let before = tasks();
        let mut listener = Listener::new(crate::listen::bind("127.0.0.1:0").await.unwrap());
        assert_eq!(tasks(), before + 1);
        let (conn, _client) = pair(&mut listener).await;
        drop(listener);
        tokio::task::yield_now().await;
        assert_eq!(tasks(), before + 1, "a connection still holds the closer");
        drop(conn);
        for _ in 0..100 {
            if tasks() == before {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the closing task outlived its listener and connections");
    }

    #[tokio::test]
    async fn reaching_the_most_held_closes_them_all_at_once() {
        let mut listener = Listener::new(crate::listen::bind("127.0.0.1:0").await.unwrap());
        let closer = Closer::holding_at_most(2);
        let (mut a, _client_a) = pair(&mut listener).await;
        let (mut b, _client_b) = pair(&mut listener).await;
        closer.hold(a.stream.take().unwrap());
        assert_eq!(closer.0.streams.lock().unwrap().len(), 1);
        closer.hold(b.stream.take().unwrap());
        assert!(closer.0.streams.lock().unwrap().is_empty(), "the second one reached the most");
    }

    #[tokio::test]
    async fn accepted_connections_do_not_wait_for_acknowledgements() {
        let mut listener = Listener::new(crate::listen::bind("127.0.0.1:0").await.unwrap());
        let (conn, _client) = pair(&mut listener).await;
        assert!(conn.stream.as_ref().unwrap().nodelay().unwrap());
    }
}
