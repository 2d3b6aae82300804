//! The job pool: places orders in jobs, starts a job's task when a job is
//! created and stops it when it empties, and publishes each job's
//! membership. How a job's task is started is a [`Launcher`]: the daemon
//! spawns [`job::run_job`]; the unit tests record what would run.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::job::{self, JobCtx, JobKey, Member, Members, ProbeDeps};
use crate::order::OrderId;
use crate::schedule;
use crate::sink::Sinks;
use crate::store::StoreHandle;
use crate::supervise::Supervisor;

/// A job to start: what its task needs besides the shared resources.
#[derive(Debug)]
pub struct NewJob {
    /// Grouping key.
    pub key: JobKey,
    /// Fixed offset after each step boundary, ms.
    pub offset_ms: u64,
    /// Its members, as published.
    pub members: watch::Receiver<Members>,
    /// Stops the job.
    pub cancel: CancellationToken,
    /// Name for logs.
    pub name: String,
}

/// Starts the task of a new job.
pub trait Launcher {
    /// Starts `job`'s task; it runs until `job.cancel` fires.
    fn launch(&mut self, job: NewJob);
}

/// The daemon's launcher: spawns [`job::run_job`] on a task tracker, with
/// the shared probe resources, the store and the sinks; a panicking job
/// is reported to the supervisor.
#[derive(Debug)]
pub struct Spawner {
    /// Shared probe resources.
    pub deps: Arc<ProbeDeps>,
    /// The daemon's counters of rounds.
    pub counters: Arc<crate::counters::JobStats>,
    /// Where results go.
    pub store: StoreHandle,
    /// Line-protocol destinations.
    pub sinks: Arc<Sinks>,
    /// Where job tasks run.
    pub tracker: TaskTracker,
    /// Told when a job task panics.
    pub supervisor: Supervisor,
}

impl Launcher for Spawner {
    fn launch(&mut self, job: NewJob) {
        let ctx = JobCtx {
            key: job.key,
            offset_ms: job.offset_ms,
            deps: self.deps.clone(),
            counters: self.counters.clone(),
            store: self.store.clone(),
            sinks: self.sinks.clone(),
            members: job.members,
            cancel: job.cancel,
            name: job.name.clone(),
        };
        self.tracker
            .spawn(self.supervisor.watch(job.name, job::run_job(ctx)));
    }
}

/// Where an order was placed: its job key and the job's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The job key.
    pub key: JobKey,
    /// The job's id (unique for the registry's lifetime).
    pub job: u64,
}

#[derive(Debug)]
struct Job {
    id: u64,
    /// Its members: the very list last published, shared with the job
    /// task until it changes (copied on the first change after a publish,
    /// so a member costs one list entry, not a map entry and a list
    /// entry). Sorted by id when `sorted`; [`JobPool::place`] appends.
    members: Members,
    sorted: bool,
    tx: watch::Sender<Members>,
    cancel: CancellationToken,
    capacity: usize,
    dirty: bool,
}

/// The jobs; see the module docs.
#[derive(Debug)]
pub struct JobPool<L> {
    jobs: HashMap<JobKey, Vec<Job>>,
    next_job: u64,
    /// Parent of every job's cancellation token.
    cancel: CancellationToken,
    launcher: L,
}

impl<L: Launcher> JobPool<L> {
    /// An empty pool; jobs stop when `cancel` fires.
    pub fn new(launcher: L, cancel: CancellationToken) -> JobPool<L> {
        JobPool {
            jobs: HashMap::new(),
            next_job: 0,
            cancel,
            launcher,
        }
    }

    /// Running jobs.
    pub fn len(&self) -> usize {
        self.jobs.values().map(Vec::len).sum()
    }

    /// True without jobs.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Puts `member` in a job of `key` with room, creating (and launching)
    /// a new job when none has. The new member is published at the next
    /// [`JobPool::publish`]. The caller places an order only when it is in
    /// no job (the registry takes a changed order out first).
    pub fn place(&mut self, key: JobKey, member: Member) -> Slot {
        let jobs = self.jobs.entry(key.clone()).or_default();
        // The newest job first: while many orders arrive (the first scan)
        // it is the one with room, and the others need not be looked at.
        let room = match jobs.last() {
            Some(j) if j.members.len() < j.capacity => Some(jobs.len() - 1),
            _ => jobs.iter().position(|j| j.members.len() < j.capacity),
        };
        if let Some(j) = room.map(|i| &mut jobs[i]) {
            Arc::make_mut(&mut j.members).push(member);
            j.sorted = false;
            j.dirty = true;
            return Slot { key, job: j.id };
        }
        self.next_job += 1;
        let job_id = self.next_job;
        let offset_ms = schedule::random_offset_ms(key.step(), key.pings(), &mut rand::rng());
        let members = Arc::new(vec![member]);
        let (tx, rx) = watch::channel(Arc::clone(&members));
        let cancel = self.cancel.child_token();
        self.launcher.launch(NewJob {
            key: key.clone(),
            offset_ms,
            members: rx,
            cancel: cancel.clone(),
            name: format!("job-{job_id} {}", key.label()),
        });
        jobs.push(Job {
            id: job_id,
            members,
            sorted: true,
            tx,
            cancel,
            capacity: key.capacity(),
            dirty: false,
        });
        Slot { key, job: job_id }
    }

    /// Takes order `id` out of the job at `slot`, stopping the job when it
    /// empties.
    pub fn remove(&mut self, slot: &Slot, id: &OrderId) {
        let Some(jobs) = self.jobs.get_mut(&slot.key) else {
            return;
        };
        if let Some(pos) = jobs.iter().position(|j| j.id == slot.job) {
            let j = &mut jobs[pos];
            let members = Arc::make_mut(&mut j.members);
            if !j.sorted {
                members.sort_unstable_by(|a, b| a.order.id.cmp(&b.order.id));
                j.sorted = true;
            }
            if let Ok(i) = members.binary_search_by(|m| m.order.id.cmp(id)) {
                members.remove(i);
            }
            j.dirty = true;
            if j.members.is_empty() {
                j.cancel.cancel();
                jobs.remove(pos);
            }
        }
        if jobs.is_empty() {
            self.jobs.remove(&slot.key);
        }
    }

    /// Publishes the membership of every job that changed: from here on
    /// the jobs run their new members.
    pub fn publish(&mut self) {
        for jobs in self.jobs.values_mut() {
            for j in jobs.iter_mut().filter(|j| j.dirty) {
                if !j.sorted {
                    Arc::make_mut(&mut j.members)
                        .sort_unstable_by(|a, b| a.order.id.cmp(&b.order.id));
                    j.sorted = true;
                }
                // Shared from here on: the next change copies the list.
                j.tx.send_replace(Arc::clone(&j.members));
                j.dirty = false;
            }
        }
    }

    /// Stops every job.
    pub fn stop_all(&self) {
        for jobs in self.jobs.values() {
            for j in jobs {
                j.cancel.cancel();
            }
        }
    }

    /// The launcher (for tests).
    #[cfg(test)]
    pub fn launcher(&self) -> &L {
        &self.launcher
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::order::{parse_order, Order};

    /// A launcher that records the jobs it was asked to start.
    #[derive(Debug, Default)]
    pub(crate) struct Recorder {
        pub(crate) jobs: Vec<NewJob>,
    }

    impl Launcher for Recorder {
        fn launch(&mut self, job: NewJob) {
            self.jobs.push(job);
        }
    }

    impl Recorder {
        /// The published member ids of each job that is still running.
        pub(crate) fn running(&self) -> Vec<(String, Vec<String>)> {
            self.jobs
                .iter()
                .filter(|j| !j.cancel.is_cancelled())
                .map(|j| {
                    (
                        j.name.clone(),
                        j.members
                            .borrow()
                            .iter()
                            .map(|m| m.order.id.as_str().to_owned())
                            .collect(),
                    )
                })
                .collect()
        }
    }

    fn order(id: &str, yaml: &str) -> Arc<Order> {
        let id = OrderId::new(id).unwrap();
        Arc::new(
            parse_order(std::path::Path::new("orders/x"), &id, yaml.as_bytes())
                .unwrap()
                .order,
        )
    }

    fn member(o: &Arc<Order>) -> Member {
        Member {
            order: o.clone(),
            generation: 1,
            active_from_ms: 0,
        }
    }

    #[test]
    fn places_by_key_and_capacity_and_publishes_on_demand() {
        let mut pool = JobPool::new(Recorder::default(), CancellationToken::new());
        let http = |i: usize| {
            order(
                &format!("h{i:02}"),
                "user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://127.0.0.1/'}\n",
            )
        };
        let mut slots = Vec::new();
        for i in 0..16 {
            let o = http(i);
            slots.push(pool.place(JobKey::of(&o), member(&o)));
        }
        assert_eq!(pool.len(), 2, "15 httping orders per job");
        assert_eq!(pool.launcher().jobs.len(), 2);
        assert_eq!(slots[14].job, slots[0].job);
        assert_ne!(slots[15].job, slots[0].job);
        // Not published yet: the first job's receiver shows its first member.
        assert_eq!(pool.launcher().jobs[0].members.borrow().len(), 1);
        pool.publish();
        let running = pool.launcher().running();
        assert_eq!(running[0].1.len(), 15);
        assert_eq!(running[1].1, ["h15"]);
        assert!(
            running[0].0.contains("httping step=60 pings=5"),
            "{running:?}"
        );

        let v4 = order(
            "a",
            "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n",
        );
        let v6 = order(
            "b",
            "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: '::1'}\n",
        );
        let other_step = order(
            "c",
            "user: u\nstep: 30\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n",
        );
        let same = order(
            "d",
            "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.2}\n",
        );
        let s_v4 = pool.place(JobKey::of(&v4), member(&v4));
        let s_v6 = pool.place(JobKey::of(&v6), member(&v6));
        let s_step = pool.place(JobKey::of(&other_step), member(&other_step));
        let s_same = pool.place(JobKey::of(&same), member(&same));
        assert_ne!(s_v4.job, s_v6.job, "families never share a job");
        assert_ne!(s_v4.job, s_step.job, "steps never share a job");
        assert_eq!(s_v4.job, s_same.job);
        assert_eq!(pool.len(), 5);
    }

    #[test]
    fn an_emptied_job_stops() {
        let mut pool = JobPool::new(Recorder::default(), CancellationToken::new());
        let a = order(
            "a",
            "user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 22}\n",
        );
        let b = order(
            "b",
            "user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 23}\n",
        );
        let sa = pool.place(JobKey::of(&a), member(&a));
        let sb = pool.place(JobKey::of(&b), member(&b));
        assert_eq!(sa, sb);
        pool.remove(&sa, &a.id);
        pool.publish();
        assert_eq!(pool.launcher().running()[0].1, ["b"]);
        pool.remove(&sb, &b.id);
        assert!(pool.is_empty());
        assert!(pool.launcher().jobs[0].cancel.is_cancelled());
        // Removing again is harmless.
        pool.remove(&sb, &b.id);
    }

    #[test]
    fn members_are_published_sorted_and_kept_once() {
        let mut pool = JobPool::new(Recorder::default(), CancellationToken::new());
        let o = |id: &str, host: &str| {
            order(
                id,
                &format!("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {{host: {host}}}\n"),
            )
        };
        let (o1, o2, o3, o0) = (
            o("o1", "127.0.0.1"),
            o("o2", "127.0.0.2"),
            o("o3", "127.0.0.3"),
            o("o0", "127.0.0.4"),
        );
        let slot = pool.place(JobKey::of(&o3), member(&o3));
        pool.place(JobKey::of(&o1), member(&o1));
        pool.place(JobKey::of(&o2), member(&o2));
        pool.publish();
        assert_eq!(pool.launcher().running()[0].1, ["o1", "o2", "o3"]);
        // Appended after the publish, removed before the next one.
        pool.place(JobKey::of(&o0), member(&o0));
        pool.remove(&slot, &o2.id);
        // Not published yet: the job still runs what it had.
        assert_eq!(pool.launcher().running()[0].1, ["o1", "o2", "o3"]);
        pool.publish();
        assert_eq!(pool.launcher().running()[0].1, ["o0", "o1", "o3"]);
        // Removing an id the job does not have changes nothing.
        pool.remove(&slot, &o2.id);
        pool.publish();
        assert_eq!(pool.launcher().running()[0].1, ["o0", "o1", "o3"]);
        // One list, shared by the pool and the job task.
        let job = &pool.jobs[&JobKey::of(&o1)][0];
        assert!(Arc::ptr_eq(
            &job.members,
            &pool.launcher().jobs[0].members.borrow()
        ));
    }

    #[test]
    fn fping_capacity_keeps_the_interval_formula() {
        let mut pool = JobPool::new(Recorder::default(), CancellationToken::new());
        // step 8, pings 3: schedule::job_capacity allows fewer than 1000.
        let cap = schedule::job_capacity(8, 3, false, schedule::FPING_TIMEOUT_MS);
        assert!(cap < 1000);
        for i in 0..=cap {
            let o = order(
                &format!("o{i}"),
                "user: u\nstep: 8\npings: 3\nprobe: fping\nfping: {host: 127.0.0.1}\n",
            );
            pool.place(JobKey::of(&o), member(&o));
        }
        assert_eq!(pool.len(), 2);
    }
}
