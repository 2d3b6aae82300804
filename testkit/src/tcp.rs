//! Plain TCP servers: one that accepts and closes, one that sends an SSH
//! banner; and ports nothing listens on.

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::background::Background;

/// How long an SSH banner connection is kept after the banner.
const BANNER_HOLD: Duration = Duration::from_secs(1);
/// Upper bound on one connection's handling.
const CONN_LIMIT: Duration = Duration::from_secs(60);

/// Binds a std listener on `127.0.0.1:0`, ready for tokio.
pub(crate) fn bind_loopback() -> StdTcpListener {
    let listener = StdTcpListener::bind("127.0.0.1:0").expect("testkit: cannot bind 127.0.0.1:0");
    listener
        .set_nonblocking(true)
        .expect("testkit: cannot make the listener non-blocking");
    listener
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, never
/// listened on, released). Another process may take it; tests use it only
/// for "nothing listens there".
pub fn free_tcp_port() -> u16 {
    // Bound but never listening: even a child forked meanwhile that
    // inherits the socket for a moment cannot accept a connection on it.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("testkit: cannot create a TCP socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("testkit: cannot bind 127.0.0.1:0");
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("testkit: socket has no address")
        .port()
}

/// `127.0.0.1:PORT` where nothing listens: connecting is refused.
pub fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_tcp_port()))
}

/// Accepts TCP connections on 127.0.0.1 and closes them at once.
#[derive(Debug)]
pub struct TcpListenerServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    _bg: Background,
}

impl TcpListenerServer {
    /// Starts the server. With `delay_accept`, it waits that long before
    /// each `accept` (the kernel still completes handshakes meanwhile, up
    /// to the listen backlog).
    pub fn start(delay_accept: Option<Duration>) -> TcpListenerServer {
        let std_listener = bind_loopback();
        let addr = std_listener
            .local_addr()
            .expect("testkit: listener has no address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let bg = Background::spawn("tcp", move |mut stop| async move {
            let listener =
                TcpListener::from_std(std_listener).expect("testkit: cannot register listener");
            loop {
                if let Some(delay) = delay_accept {
                    tokio::select! {
                        _ = &mut stop => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                tokio::select! {
                    _ = &mut stop => return,
                    res = listener.accept() => match res {
                        Ok((stream, _)) => {
                            count.fetch_add(1, Ordering::SeqCst);
                            drop(stream);
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                }
            }
        });
        TcpListenerServer {
            addr,
            accepted,
            _bg: bg,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Sends a fixed first line on every connection, like an SSH server's
/// identification string.
#[derive(Debug)]
pub struct SshBannerServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    _bg: Background,
}

impl SshBannerServer {
    /// Starts the server: on each connection it waits `delay`, writes
    /// `banner` exactly as given (include the `\r\n`, e.g.
    /// `"SSH-2.0-testkit\r\n"`; any other text makes a non-SSH server),
    /// keeps the connection ~1 s and closes it. An empty `banner` closes
    /// right after `delay` without sending anything.
    pub fn start(banner: &str, delay: Duration) -> SshBannerServer {
        let std_listener = bind_loopback();
        let addr = std_listener
            .local_addr()
            .expect("testkit: listener has no address");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let banner: Arc<[u8]> = Arc::from(banner.as_bytes());
        let bg = Background::spawn("ssh", move |mut stop| async move {
            let listener =
                TcpListener::from_std(std_listener).expect("testkit: cannot register listener");
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    res = listener.accept() => match res {
                        Ok((mut stream, _)) => {
                            count.fetch_add(1, Ordering::SeqCst);
                            let banner = banner.clone();
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(CONN_LIMIT, async {
                                    tokio::time::sleep(delay).await;
                                    if banner.is_empty() {
                                        return;
                                    }
                                    if stream.write_all(&banner).await.is_ok() {
                                        let _ = stream.flush().await;
                                        tokio::time::sleep(BANNER_HOLD).await;
                                    }
                                })
                                .await;
                            });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                }
            }
        });
        SshBannerServer {
            addr,
            connections,
            _bg: bg,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
