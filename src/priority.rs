//! Who gets the CPU first when the machine is busy: probing. The threads
//! whose work may lag (the store writers, the order-file loaders of a scan)
//! lower their own scheduling priority; the ICMP engine's threads, the
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
}
