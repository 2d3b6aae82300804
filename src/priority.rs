//! Who gets the CPU first when the machine is busy: probing. The threads
//! whose work may lag (the store writers, the order-file loaders of a scan)
//! lower their own scheduling priority, and the web page's blocking
//! threads take the idle policy; the ICMP engine's threads, the
//! job tasks and the registry keep the default. On an idle machine this
//! changes nothing; on a busy one (a first start with a million orders, a
//! cold page cache, other programs) rounds still start on time and replies
//! are read before the socket's receive buffer fills, while storage
//! catches up later (it never holds up probing, `store::queue`).

/// The nice value of background threads (the default is 0; 19 the
/// lowest). Raising one's own nice value needs no privilege.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`]. Best
/// effort: a failure only leaves the thread at the default priority.
pub fn background_thread() {
    let tid = nix::unistd::gettid().as_raw();
    let Ok(who) = nix::libc::id_t::try_from(tid) else {
        return;
    };
    // SAFETY: setpriority(2) takes three integers and reads or writes no
    // memory of this process; with PRIO_PROCESS and a thread id it changes
    // only that thread's nice value. It cannot break any Rust invariant;
    // its result is an integer, checked below.
    #[allow(unsafe_code)]
    let r = unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, who, BACKGROUND_NICE) };
    if r != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot lower a background thread's priority"
        );
    }
}

/// Moves the calling thread to `SCHED_IDLE`: it runs only when no
/// thread of a normal policy wants the CPU, so on a busy machine what it
/// does waits and probing does not. For the web page's work, which a
/// reader can wait for. Best effort, as [`background_thread`].
pub fn idle_thread() {
    let param = nix::libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) with pid 0 changes the calling
    // thread's policy only; it reads the `sched_param` passed by reference,
    // which lives across the call, and writes no memory of this process.
    // Lowering one's own policy to SCHED_IDLE needs no privilege. Its
    // result is an integer, checked below.
    #[allow(unsafe_code)]
    let r = unsafe { nix::libc::sched_setscheduler(0, nix::libc::SCHED_IDLE, &param) };
    if r != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot move a web thread to SCHED_IDLE"
        );
        background_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_thread_has_the_background_nice_value_and_others_keep_theirs() {
        let nice_of = |tid: i32| -> i32 {
            let me = procfs::process::Process::myself().unwrap();
            let nice = me.task_from_tid(tid).unwrap().stat().unwrap().nice;
            i32::try_from(nice).unwrap()
        };
        let before = nice_of(nix::unistd::gettid().as_raw());
        let background = std::thread::spawn(move || {
            background_thread();
            nice_of(nix::unistd::gettid().as_raw())
        })
        .join()
        .unwrap();
        assert_eq!(background, BACKGROUND_NICE.max(before));
        assert_eq!(nice_of(nix::unistd::gettid().as_raw()), before);
    }

    #[test]
    fn an_idle_thread_has_the_idle_policy_and_others_keep_theirs() {
        // SAFETY: sched_getscheduler(2) takes a thread id and reads or
        // writes no memory.
        #[allow(unsafe_code)]
        let policy = |tid: i32| unsafe { nix::libc::sched_getscheduler(tid) };
        let before = policy(0);
        let idle = std::thread::spawn(move || {
            idle_thread();
            policy(0)
        })
        .join()
        .unwrap();
        assert_eq!(idle, nix::libc::SCHED_IDLE);
        assert_eq!(policy(0), before);
    }
}
