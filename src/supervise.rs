//! No silent zombie: when a thread or task the daemon depends on dies (a
//! store writer, a job, the stats writer, a line-protocol writer, a thread
//! of the ICMP engine), the daemon stops with an error and a non-zero exit
//! status, so that its service manager restarts it, instead of going on
//! running without measuring.
//!
//! Tasks run through [`Supervisor::watch`] and threads hold a
//! [`Supervisor::guard`]; either reports a panic with [`Supervisor::fail`].
//! The daemon waits on [`Supervisor::failed`] beside its signals and also
//! polls the health of what reports nothing by itself (the ICMP engine's
//! threads, finished tasks).

use probes::sync::lock;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use tokio::sync::Notify;

/// Shared by everything supervised; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    failure: Mutex<Option<String>>,
    notify: Notify,
}

impl Supervisor {
    /// A supervisor with nothing failed.
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// Records that `what` died (the first failure is kept) and wakes
    /// [`Supervisor::failed`].
    pub fn fail(&self, what: impl Into<String>) {
        let mut f = lock(&self.inner.failure);
        if f.is_none() {
            *f = Some(what.into());
        }
        drop(f);
        self.inner.notify.notify_waiters();
        self.inner.notify.notify_one();
    }

    /// What died, if anything.
    pub fn failure(&self) -> Option<String> {
        lock(&self.inner.failure).clone()
    }

    /// Resolves once something failed.
    pub async fn failed(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.failure().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Runs `f`; if it panics, reports `name` as dead.
    pub fn watch<F>(&self, name: String, f: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let sup = self.clone();
        async move {
            if AssertUnwindSafe(f).catch_unwind().await.is_err() {
                sup.fail(format!("{name} panicked"));
            }
        }
    }

    /// A guard for a thread: reports `name` as dead if the thread unwinds
    /// while holding it.
    pub fn guard(&self, name: impl Into<String>) -> Guard {
        Guard {
            sup: self.clone(),
            name: name.into(),
        }
    }
}

/// See [`Supervisor::guard`].
#[derive(Debug)]
pub struct Guard {
    sup: Supervisor,
    name: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.sup.fail(format!("{} panicked", self.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_or_thread_is_reported() {
        let sup = Supervisor::new();
        assert_eq!(sup.failure(), None);
        sup.watch("quiet task".into(), async {}).await;
        assert_eq!(sup.failure(), None);
        let waiter = tokio::spawn({
            let s = sup.clone();
            async move { s.failed().await }
        });
        sup.watch("job-1".into(), async { panic!("deliberate (expected)") })
            .await;
        assert_eq!(sup.failure().as_deref(), Some("job-1 panicked"));
        waiter.await.unwrap();

        let sup = Supervisor::new();
        let s = sup.clone();
        let t = std::thread::spawn(move || {
            let _g = s.guard("store writer 0");
            panic!("deliberate (expected)");
        });
        assert!(t.join().is_err());
        assert_eq!(sup.failure().as_deref(), Some("store writer 0 panicked"));
        // The first failure is kept.
        sup.fail("later");
        assert_eq!(sup.failure().as_deref(), Some("store writer 0 panicked"));
    }
}
