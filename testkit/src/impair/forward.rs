//! A TCP port inside a test namespace that leads to a server outside it:
//! a daemon in a prober namespace (which has no route out) reaches a store
//! the test started on the caller's loopback, as a node reaches its
//! cluster. The listening socket is opened inside the namespace; every
//! connection to it is carried to the target from the caller's namespace.
//! A target that refuses closes the client's connection at once, so the
//! client sees the outage.

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running forwarder; dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct Forward {
    /// The port on 127.0.0.1 inside the namespace.
    pub port: u16,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

/// Listens on 127.0.0.1 inside namespace `ns` and carries each connection
/// to `to`; stops by itself after `max_life`.
pub fn forward_tcp(ns: &str, to: SocketAddr, max_life: Duration) -> io::Result<Forward> {
    let path = format!("/run/netns/{ns}");
    let listener = std::thread::Builder::new()
        .name("forward-ns".into())
        .spawn(move || -> io::Result<TcpListener> {
            let f = std::fs::File::open(&path)?;
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        })?
        .join()
        .map_err(|_| io::Error::other("forward: namespace thread panicked"))??;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let stop = Arc::new(AtomicBool::new(false));
    let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + max_life;
    let thread = {
        let (stop, open) = (stop.clone(), open.clone());
        std::thread::Builder::new()
            .name("forward-accept".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((client, _)) => carry(client, to, &open),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                close_all(&open);
            })?
    };
    Ok(Forward {
        port,
        stop,
        open,
        thread: Some(thread),
    })
}

fn close_all(open: &Mutex<Vec<TcpStream>>) {
    let mut v = open
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for s in v.drain(..) {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// Connects to `to` and copies both ways, each way on a thread of its
/// own, until either side closes.
fn carry(client: TcpStream, to: SocketAddr, open: &Mutex<Vec<TcpStream>>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
        // The target is down: so is the port, for the client.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    {
        let mut v = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Closed connections are forgotten now and then.
        if v.len() > 256 {
            forget_closed(&mut v);
        }
        if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
            v.push(c);
            v.push(s);
        }
    }
    for (from, into) in pairs {
        if let (Ok(mut from), Ok(mut into)) = (from, into) {
            let _ = std::thread::Builder::new()
                .name("forward-copy".into())
                .spawn(move || {
                    let _ = io::copy(&mut from, &mut into);
                    let _ = into.shutdown(Shutdown::Write);
                    let _ = from.shutdown(Shutdown::Read);
                });
        }
    }
}

/// Drops the streams whose peer is gone.
fn forget_closed(v: &mut Vec<TcpStream>) {
    v.retain(|s| s.peer_addr().is_ok() && s.take_error().ok().flatten().is_none());
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        close_all(&self.open);
    }
}
