//! A server's background thread: own tokio runtime, stop signal, bounded
//! join on drop.

use std::future::Future;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

/// How long [`Background`]'s drop waits for the thread to finish.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A running background server; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Background {
    name: &'static str,
    stop: Option<oneshot::Sender<()>>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Runs `serve(stop)` on a new thread with a current-thread runtime.
    /// `serve` should return soon after `stop` resolves; tasks it spawned
    /// are cancelled when the runtime is dropped right after.
    pub(crate) fn spawn<F, Fut>(name: &'static str, serve: F) -> Background
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("testkit-{name}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("testkit: cannot build a tokio runtime");
                runtime.block_on(serve(stop_rx));
                drop(runtime);
                let _ = done_tx.send(());
            })
            .expect("testkit: cannot spawn a server thread");
        Background {
            name,
            stop: Some(stop_tx),
            done: done_rx,
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.done.recv_timeout(JOIN_TIMEOUT) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                eprintln!(
                    "testkit: {} server did not stop within {JOIN_TIMEOUT:?}; leaving its thread",
                    self.name
                );
            }
        }
    }
}
