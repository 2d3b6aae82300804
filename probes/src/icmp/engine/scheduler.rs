//! The sender thread: every round's state, the heap of due times, the
//! socket cache, and the sends due at one wake-up prepared and sent per
//! socket in one `sendmmsg`.

use super::receive::{drain, receive_loop};
use super::*;

/// A socket of the engine and its receive thread.
struct OpenSocket {
    endpoint: Arc<dyn Endpoint>,
    id: u32,
    receiver: Option<JoinHandle<()>>,
}

/// A round in progress (owned by the sender thread).
struct Round {
    shared: Arc<RoundShared>,
    schedule: Schedule,
    targets: Vec<IpAddr>,
    endpoint: Arc<dyn Endpoint>,
    socket_id: u32,
    reply: Reply,
    /// Pings prepared so far (their keys are in `shared`'s slots while
    /// they are pending).
    prepared: u64,
    timeout: Duration,
    /// Size, TOS and TTL of its echo requests.
    options: EchoOptions,
    deadline: Option<Instant>,
    send_errors: u64,
    /// Pings that could not be sent, by target index.
    target_send_errors: Vec<u32>,
}

enum Finish {
    Completed,
    Abandoned,
    Stopped,
}

/// The sender thread.
pub(super) struct Scheduler {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    opener: OpenFn,
    sockets: HashMap<Binding, OpenSocket>,
    /// Round ids are ours (sequential): a fast non-keyed hash is safe.
    rounds: rustc_hash::FxHashMap<u64, Round>,
    /// `(due, round id)`; entries of finished rounds are skipped when popped.
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    next_round: u64,
    next_key: u32,
    next_socket_id: u32,
    rng: StdRng,
    /// Origin of the send ticks.
    epoch: Instant,
    /// Tick length; zero sends as soon as due.
    quantum: Duration,
    /// Sends prepared at this wake-up, sent together by `flush`.
    batch: Vec<Prepared>,
    /// Scratch for `flush` (kept to reuse its allocation).
    batch_results: Vec<io::Result<()>>,
    /// Buffers for draining a socket at a round's end.
    drain_batch: RecvBatch,
}

/// A send prepared for this wake-up's batch: its pending entry is in the
/// table; the packet goes out in `flush`.
struct Prepared {
    endpoint: Arc<dyn Endpoint>,
    socket_id: u32,
    round: u64,
    key: u32,
    target: IpAddr,
    /// Index of `target` in its round.
    target_index: usize,
    packet: Vec<u8>,
    /// TOS and TTL, set per packet.
    tos: u8,
    ttl: Option<u8>,
}

impl Scheduler {
    /// The sender thread's state, nothing sent yet.
    pub(super) fn new(
        shared: Arc<Shared>,
        commands: mpsc::Sender<Command>,
        opener: OpenFn,
        mut rng: StdRng,
    ) -> Scheduler {
        Scheduler {
            shared,
            commands,
            opener,
            sockets: HashMap::new(),
            rounds: rustc_hash::FxHashMap::default(),
            queue: BinaryHeap::new(),
            next_round: 0,
            next_key: rng.random_range(0..KEY_LIMIT),
            next_socket_id: rng.random(),
            rng,
            epoch: Instant::now(),
            quantum: Duration::ZERO,
            batch: Vec::new(),
            batch_results: Vec::new(),
            drain_batch: RecvBatch::new(DRAIN_BATCH, RECV_BUF_LEN),
        }
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Command>) {
        let shared = Arc::clone(&self.shared);
        let _watch = DeathWatch {
            shared: &shared,
            name: "the sender thread".into(),
        };
        // Wake up on time for sub-millisecond spacings (default slack: 50 µs).
        if let Err(e) = nix::sys::prctl::set_timerslack(1_000) {
            tracing::debug!("cannot lower the sender thread's timer slack: {e}");
        }
        loop {
            let now = Instant::now();
            let command = match self.wait_time(now) {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => rx.recv_timeout(d),
            };
            match command {
                Ok(Command::Submit(req, reply)) => self.submit(*req, reply),
                Ok(Command::Quantum(q)) => self.quantum = q,
                Ok(Command::Answered(id)) => self.answered(id),
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.run_due();
        }
        self.shutdown();
    }

    /// How long to sleep: until the earliest due send or round end (never
    /// a periodic tick). An abandoned round is noticed at its next due time.
    fn wait_time(&self, now: Instant) -> Option<Duration> {
        self.queue
            .peek()
            .map(|Reverse((due, _))| quantize(*due, self.epoch, self.quantum))
            .map(|w| w.saturating_duration_since(now))
    }

    fn submit(&mut self, req: RoundRequest, reply: Reply) {
        if reply.is_closed() {
            return;
        }
        let n = req.targets.len();
        if n == 0 || req.pings == 0 {
            let _ = reply.send(Ok(RoundResult {
                rtts: Rtts::new(n, 0),
                send_errors: vec![0; n],
                reply_ttl: vec![None; n],
            }));
            return;
        }
        let (endpoint, socket_id) = match self.socket_for(&req.binding) {
            Ok(s) => s,
            Err(msg) => {
                tracing::debug!("round for {:?} failed: {msg}", req.binding);
                let _ = reply.send(Err(RoundError::Socket(msg)));
                return;
            }
        };
        let family = req.binding.family;
        let eligible: Vec<usize> = (0..n)
            .filter(|&i| Family::of(&req.targets[i]) == family)
            .collect();
        let mismatched = n - eligible.len();
        if mismatched > 0 {
            tracing::debug!(
                "{mismatched} of {n} targets are not {family:?} addresses; their pings are lost"
            );
            Counters::add(
                &self.shared.matcher.counters.send_errors,
                (mismatched as u64).saturating_mul(u64::from(req.pings)),
            );
        }
        let id = self.next_round;
        self.next_round += 1;
        let schedule = Schedule::new(
            eligible,
            req.pings,
            req.interval,
            req.spacing,
            req.start,
            &mut self.rng,
        );
        let next_due = schedule.next_due();
        let round = Round {
            shared: Arc::new(RoundShared::new(id, n, req.pings, req.timeout)),
            schedule,
            targets: req.targets,
            endpoint,
            socket_id,
            reply,
            prepared: 0,
            timeout: req.timeout,
            options: req.options,
            deadline: None,
            send_errors: 0,
            target_send_errors: vec![0; n],
        };
        Counters::inc(&self.shared.matcher.counters.rounds_active);
        self.rounds.insert(id, round);
        match next_due {
            Some(due) => self.queue.push(Reverse((due, id))),
            None => self.finish(id, Finish::Completed),
        }
    }

    /// The cached socket of a binding, opening it (and starting its receive
    /// thread) on first use. Failures are not cached: a later round retries.
    fn socket_for(&mut self, binding: &Binding) -> Result<(Arc<dyn Endpoint>, u32), SocketError> {
        if let Some(s) = self.sockets.get(binding) {
            return Ok((Arc::clone(&s.endpoint), s.id));
        }
        let endpoint = (self.opener)(binding)?;
        if endpoint.family() != binding.family {
            return Err(SocketError::new(
                SocketCause::Other,
                format!(
                    "ICMP socket for {:?} has family {:?}",
                    binding.family,
                    endpoint.family()
                ),
            ));
        }
        let id = self.next_socket_id;
        self.next_socket_id = self.next_socket_id.wrapping_add(1);
        let info = SocketInfo {
            id,
            family: endpoint.family(),
            kind: endpoint.kind(),
        };
        let receiver = {
            let endpoint = Arc::clone(&endpoint);
            let shared = Arc::clone(&self.shared);
            let commands = self.commands.clone();
            thread::Builder::new()
                .name(format!(
                    "icmp-recv-{}",
                    match info.family {
                        Family::V4 => "v4",
                        Family::V6 => "v6",
                    }
                ))
                .spawn(move || receive_loop(endpoint.as_ref(), info, &shared, &commands))
                .map_err(|e| {
                    SocketError::new(
                        SocketCause::Other,
                        format!("cannot start ICMP receive thread: {e}"),
                    )
                })?
        };
        self.shared.kinds[family_index(info.family)].store(
            match info.kind {
                SocketKind::Raw => 2,
                _ => 1,
            },
            Ordering::Relaxed,
        );
        self.sockets.insert(
            binding.clone(),
            OpenSocket {
                endpoint: Arc::clone(&endpoint),
                id,
                receiver: Some(receiver),
            },
        );
        Ok((endpoint, id))
    }

    fn answered(&mut self, id: u64) {
        if let Some(r) = self.rounds.get(&id) {
            if r.schedule.is_done() && r.shared.is_complete() {
                self.finish(id, Finish::Completed);
            }
        }
    }

    /// Processes every due queue entry: one send (or the completion) per
    /// entry, re-queued at its next due time, until nothing is due.
    fn run_due(&mut self) {
        let clock = (SystemTime::now(), Instant::now());
        loop {
            let now = Instant::now();
            let id = match self.queue.peek() {
                Some(Reverse((due, id))) if *due <= now => *id,
                _ => break,
            };
            self.queue.pop();
            // With a send quantum, the schedule works on the tick we woke
            // for: a wake-up a few µs late must not push the round's next
            // send (due one spacing after this one) past the next tick.
            let sched_now = floor_quantize(now, self.epoch, self.quantum);
            self.step(id, sched_now, clock);
        }
        self.flush();
    }

    /// Sends the prepared batch: per socket, in one `sendmmsg`. A send that
    /// fails takes its ping out of the pending table and counts an error.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        // One group per socket and TOS and TTL (set per packet), in send
        // order within each.
        batch.sort_by_key(|p| (p.socket_id, p.tos, p.ttl));
        let counters = &self.shared.matcher.counters;
        let mut start = 0;
        while start < batch.len() {
            let group_key = (batch[start].socket_id, batch[start].tos, batch[start].ttl);
            let end = batch[start..]
                .iter()
                .position(|p| (p.socket_id, p.tos, p.ttl) != group_key)
                .map_or(batch.len(), |n| start + n);
            let group = &batch[start..end];
            let packets: Vec<(&[u8], IpAddr)> = group
                .iter()
                .map(|p| (p.packet.as_slice(), p.target))
                .collect();
            let set = PacketSettings {
                tos: group_key.1,
                ttl: group_key.2,
            };
            group[0]
                .endpoint
                .send_batch(&packets, set, &mut self.batch_results);
            for (i, p) in group.iter().enumerate() {
                match self.batch_results.get(i) {
                    Some(Ok(())) => Counters::inc(&counters.sent),
                    failed => {
                        self.shared.matcher.expire(p.key);
                        Counters::inc(&counters.send_errors);
                        if let Some(round) = self.rounds.get_mut(&p.round) {
                            round.send_errors += 1;
                            if let Some(e) = round.target_send_errors.get_mut(p.target_index) {
                                *e += 1;
                            }
                            if round.send_errors == 1 {
                                let why = match failed {
                                    Some(Err(e)) => e.to_string(),
                                    _ => "not sent".into(),
                                };
                                tracing::debug!(
                                    "round {}: sending to {} failed: {why}",
                                    p.round,
                                    p.target
                                );
                            }
                        }
                    }
                }
            }
            start = end;
        }
        batch.clear();
        self.batch = batch;
    }

    fn step(&mut self, id: u64, now: Instant, clock: (SystemTime, Instant)) {
        let Some(round) = self.rounds.get_mut(&id) else {
            return; // finished earlier; stale entry
        };
        if round.reply.is_closed() {
            self.finish(id, Finish::Abandoned);
            return;
        }
        match round.schedule.next_due() {
            Some(due) if due <= now => {
                if let Some(p) =
                    prepare_one(&self.shared, &mut self.next_key, id, round, now, clock)
                {
                    self.batch.push(p);
                }
                if let Some(next) = round.schedule.next_due() {
                    self.queue.push(Reverse((next, id)));
                } else {
                    let last = round.schedule.last_send().unwrap_or(now);
                    let deadline = add_capped(last, round.timeout + RECEIVE_GRACE);
                    round.deadline = Some(deadline);
                    if round.shared.mark_all_sent() {
                        self.finish(id, Finish::Completed);
                    } else {
                        self.queue.push(Reverse((deadline, id)));
                    }
                }
            }
            Some(due) => self.queue.push(Reverse((due, id))),
            None => match round.deadline {
                Some(deadline) if deadline > now => self.queue.push(Reverse((deadline, id))),
                _ => self.finish(id, Finish::Completed),
            },
        }
    }

    fn finish(&mut self, id: u64, how: Finish) {
        let Some(round) = self.rounds.remove(&id) else {
            return;
        };
        if matches!(how, Finish::Completed) {
            // Replies in time may still be queued (the receive thread drains
            // only every few ms): read them now.
            let info = SocketInfo {
                id: round.socket_id,
                family: round.endpoint.family(),
                kind: round.endpoint.kind(),
            };
            drain(
                round.endpoint.as_ref(),
                info,
                &self.shared,
                &self.commands,
                &mut self.drain_batch,
            );
        }
        // Remove the remaining pending pings (lost, or answered without a
        // transmit timestamp) before reading results: the receive threads
        // store RTTs under the same locks. Their keys are in the slots.
        for key in round.shared.pending_keys() {
            self.shared.matcher.expire(key);
        }
        Counters::dec(&self.shared.matcher.counters.rounds_active);
        match how {
            Finish::Completed => {
                if round.send_errors > 0 {
                    tracing::debug!(
                        "round {id}: {} of {} pings could not be sent",
                        round.send_errors,
                        round.schedule.total()
                    );
                }
                let _ = round.reply.send(Ok(RoundResult {
                    rtts: round.shared.results(),
                    send_errors: round.target_send_errors,
                    reply_ttl: round.shared.reply_ttls(),
                }));
            }
            Finish::Abandoned => {
                tracing::debug!("round {id} abandoned ({} pings sent)", round.prepared);
            }
            Finish::Stopped => {
                let _ = round.reply.send(Err(RoundError::Stopped));
            }
        }
    }

    fn shutdown(mut self) {
        let ids: Vec<u64> = self.rounds.keys().copied().collect();
        for id in ids {
            self.finish(id, Finish::Stopped);
        }
        self.shared.stopping.store(true, Ordering::Release);
        for (_, mut s) in self.sockets.drain() {
            if let Some(t) = s.receiver.take() {
                let _ = t.join();
            }
        }
    }
}

/// `t` rounded up to the next tick of `quantum` after `epoch` (unchanged
/// for a zero quantum or a time before the epoch).
pub(super) fn quantize(t: Instant, epoch: Instant, quantum: Duration) -> Instant {
    let q = quantum.as_nanos();
    if q == 0 || t <= epoch {
        return t;
    }
    let since = (t - epoch).as_nanos();
    let ticks = since.div_ceil(q);
    let nanos = u64::try_from(ticks.saturating_mul(q)).unwrap_or(u64::MAX);
    add_capped(epoch, Duration::from_nanos(nanos))
}

/// `t` rounded down to the last tick of `quantum` at or before it
/// (unchanged for a zero quantum or a time before the epoch).
pub(super) fn floor_quantize(t: Instant, epoch: Instant, quantum: Duration) -> Instant {
    let q = quantum.as_nanos();
    if q == 0 || t <= epoch {
        return t;
    }
    let ticks = (t - epoch).as_nanos() / q;
    let nanos = u64::try_from(ticks.saturating_mul(q)).unwrap_or(u64::MAX);
    add_capped(epoch, Duration::from_nanos(nanos))
}

/// Prepares the next send of `round` (id `id`): takes its slot, allocates
/// a key, builds the packet and enters the ping in the pending table. The
/// packet is sent by `flush` with the rest of this wake-up's batch.
fn prepare_one(
    shared: &Shared,
    next_key: &mut u32,
    id: u64,
    round: &mut Round,
    sched_now: Instant,
    clock: (SystemTime, Instant),
) -> Option<Prepared> {
    let slot = round.schedule.take(sched_now)?;
    let counters = &shared.matcher.counters;
    let Some(&target) = round.targets.get(slot.target) else {
        Counters::inc(&counters.send_errors);
        round.send_errors += 1;
        return None;
    };
    let target_index = slot.target;
    round.shared.add_outstanding();
    // The user-space send time (read once per wake-up): used only when the
    // kernel gives no transmit timestamp.
    let mut pending = Pending::new(
        Arc::clone(&round.shared),
        round.shared.slot(slot.target, slot.ping),
        clock.0,
        clock.1,
        round.endpoint.tx_timestamps(),
    );
    // The next free key; only the sender thread inserts, so a free key
    // stays free until then.
    let mut key = None;
    for _ in 0..4096 {
        let k = *next_key;
        *next_key = (k + 1) % KEY_LIMIT;
        match shared.matcher.insert(k, pending) {
            Ok(()) => {
                key = Some(k);
                break;
            }
            Err(p) => pending = p,
        }
    }
    let Some(key) = key else {
        round.shared.finish_one();
        Counters::inc(&counters.send_errors);
        round.send_errors += 1;
        if let Some(e) = round.target_send_errors.get_mut(target_index) {
            *e += 1;
        }
        return None;
    };
    let (ident, seq) = SocketInfo::ident_seq(key);
    let token = Token {
        magic: shared.matcher.magic(),
        socket_id: round.socket_id,
        key,
    };
    let packet = build_echo_request(
        round.endpoint.family(),
        ident,
        seq,
        &token.payload(usize::from(round.options.data_bytes)),
    );
    round.prepared += 1;
    Some(Prepared {
        endpoint: Arc::clone(&round.endpoint),
        socket_id: round.socket_id,
        round: id,
        key,
        target,
        target_index,
        packet,
        tos: round.options.tos,
        ttl: round.options.ttl,
    })
}
