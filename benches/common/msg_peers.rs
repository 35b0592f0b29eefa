//! The mempool bench's message links, shared by `benches/mempool.rs`
//! (criterion) and `benches/goals.rs` (the interleaved goals harness): a
//! stream of messages to a child process that checks each one, over our
//! `Channel` in a POSIX segment, a pipe, or iceoryx2 publish-subscribe.
//!
//! A child is the bench binary run again with [`ROLE_ENV`] set: its `main`
//! calls [`child_main`] first. It dies with its parent (`PR_SET_PDEATHSIG`),
//! exits if it was re-parented before that was armed, and gives up after a
//! minute without a message. The segment's name is unlinked as soon as the
//! child has attached.

use std::fmt::Debug;
use std::fs::File;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{
    ipc, LogLevel, NodeBuilder, ServiceName, SignalHandlingMode, ZeroCopySend,
};
use shm::mempool::{Block, Channel, ChannelOptions, RecvError};
use shm::segment::{Mapping, PosixOptions, PosixShm, Region, SubRegion};

use super::iox_domain::IoxDomain;
use super::{cpu_for, die_with_parent, env, pin, watchdog};

/// Blocks in the channel (and samples the iceoryx2 subscriber may buffer).
pub(crate) const BLOCKS: usize = 16;
/// Which role a re-executed child plays.
pub(crate) const ROLE_ENV: &str = "SHM_MEMPOOL_BENCH_ROLE";
/// The segment name or the iceoryx2 domain, for the child.
pub(crate) const NAMES_ENV: &str = "SHM_MEMPOOL_BENCH_NAMES";
/// The parent's pid: the child exits if it has already been re-parented.
pub(crate) const PARENT_ENV: &str = "SHM_MEMPOOL_BENCH_PARENT";
/// The CPU the child pins itself to.
pub(crate) const CPU_ENV: &str = "SHM_MEMPOOL_BENCH_CPU";
/// How long setup (a child attaching) and one acknowledgement may take.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a child waits for the next message before it gives up.
pub(crate) const CHILD_IDLE: Duration = Duration::from_secs(60);
/// How long one measured step may take before the watchdog ends the run.
pub(crate) const STEP_LIMIT_S: u32 = 120;

/// First word of a message that starts a batch (the count follows).
pub(crate) const BATCH: u64 = u64::MAX - 1;
/// First word of a message that tells the child to exit.
pub(crate) const QUIT: u64 = u64::MAX;
/// The child's word in the channel segment once it has attached.
pub(crate) const ATTACHED: u64 = u64::MAX;

// ---------------------------------------------------------------------------
// Back-off (the watchdog and the CPUs are in `common`)
// ---------------------------------------------------------------------------

/// Every busy-polling loop of every peer backs off alike: 64 spins, then
/// `sched_yield`, then 50 µs sleeps; and gives up at a deadline. Making one
/// reads no clock (every sender and sink makes one per message): the
/// deadline is set at the first clock check, 1024 rounds in, so a wait
/// gives up `timeout` after that (a little later than `timeout` from
/// `new`).
pub(crate) struct Backoff {
    round: u32,
    deadline: Option<Instant>,
    timeout: Duration,
    what: &'static str,
}

impl Backoff {
    #[inline]
    pub(crate) fn new(what: &'static str, timeout: Duration) -> Self {
        Backoff {
            round: 0,
            deadline: None,
            timeout,
            what,
        }
    }

    #[inline]
    pub(crate) fn snooze(&mut self) {
        if self.round < 64 {
            std::hint::spin_loop();
        } else if self.round < 10_000 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(50));
        }
        self.round = self.round.saturating_add(1);
        if self.round % 1024 == 0 {
            let now = Instant::now();
            let deadline = *self.deadline.get_or_insert(now + self.timeout);
            if now > deadline {
                panic!("{}: gave up waiting", self.what);
            }
        }
    }

    /// Whether it has backed off long enough to sleep in the kernel instead.
    pub(crate) fn sleepy(&self) -> bool {
        self.round >= 10_000
    }
}

// ---------------------------------------------------------------------------
// b. Messages to a child process
// ---------------------------------------------------------------------------

pub(crate) fn checksum(seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23) ^ 0x5EED_F00D
}

/// Sets a message's sequence number (first word) and checksum (last word).
#[inline]
pub(crate) fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_ne_bytes());
    msg[n - 8..].copy_from_slice(&checksum(seq).to_ne_bytes());
}

pub(crate) fn word(msg: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(msg[at..at + 8].try_into().expect("8 bytes"))
}

/// What a child does with each message; returns `false` on QUIT.
pub(crate) struct Sink {
    expect: u64,
    count: u64,
    batch: u64,
}

impl Sink {
    pub(crate) fn new() -> Self {
        Sink {
            expect: 0,
            count: 0,
            batch: 0,
        }
    }

    /// Checks one message (its first words and its last word); returns the
    /// batch id when a batch is complete.
    pub(crate) fn take(&mut self, head: [u64; 3], last: u64) -> Result<Option<u64>, ()> {
        match head[0] {
            QUIT => Err(()),
            BATCH => {
                self.expect = head[1];
                self.batch = head[2];
                self.count = 0;
                Ok((self.expect == 0).then_some(self.batch))
            }
            seq => {
                assert_eq!(seq, self.count, "message out of order or lost");
                assert_eq!(last, checksum(seq), "message {seq} is torn");
                self.count += 1;
                Ok((self.count == self.expect).then_some(self.batch))
            }
        }
    }
}

/// A transport from this process to a child that checks every message.
pub(crate) trait Link {
    /// Sends one message (its bytes are copied once, into the transport).
    fn send(&mut self, msg: &[u8]);
    /// Waits for the child's acknowledgement of batch `batch`.
    fn wait_ack(&mut self, batch: u64);
    /// Tells the child to exit and reaps it; cleans up.
    fn stop(self);
}

/// `n` messages as one batch, acknowledged; the measured step.
pub(crate) fn batch<L: Link>(link: &mut L, msg: &mut [u8], id: u64, n: u64) -> Duration {
    watchdog(STEP_LIMIT_S);
    let start = Instant::now();
    msg[..8].copy_from_slice(&BATCH.to_ne_bytes());
    msg[8..16].copy_from_slice(&n.to_ne_bytes());
    msg[16..24].copy_from_slice(&id.to_ne_bytes());
    link.send(msg);
    for seq in 0..n {
        stamp(msg, seq);
        link.send(msg);
    }
    link.wait_ack(id);
    let elapsed = start.elapsed();
    watchdog(0);
    elapsed
}

/// Messages per burst in [`channel_batch_many`]: half the channel, so the
/// child can drain one burst while the next is filled.
pub(crate) const BURST: usize = BLOCKS / 2;

/// [`batch`] for our channel in bursts of [`BURST`] messages: take and fill
/// `BURST` blocks, then send them with one `Channel::send_many` (one
/// wake-up check for the burst; each block still has its own decisive
/// step). The child takes what is there with `recv_many`.
pub(crate) fn channel_batch_many(
    link: &mut ChannelLink,
    msg: &mut [u8],
    id: u64,
    n: u64,
) -> Duration {
    watchdog(STEP_LIMIT_S);
    let start = Instant::now();
    msg[..8].copy_from_slice(&BATCH.to_ne_bytes());
    msg[8..16].copy_from_slice(&n.to_ne_bytes());
    msg[16..24].copy_from_slice(&id.to_ne_bytes());
    link.send(msg);
    let mut seq = 0;
    let mut blocks = Vec::with_capacity(BURST);
    while seq < n {
        let k = (n - seq).min(BURST as u64);
        for _ in 0..k {
            stamp(msg, seq);
            blocks.push(link.filled_block(msg));
            seq += 1;
        }
        if let Err(e) = link.ch.send_many(blocks.drain(..)) {
            panic!("send_many: {e}");
        }
    }
    drop(blocks);
    link.wait_ack(id);
    let elapsed = start.elapsed();
    watchdog(0);
    elapsed
}

/// A child process running one role; killed and reaped if not finished.
pub(crate) struct Peer(Option<Child>);

impl Peer {
    pub(crate) fn spawn(role: String, names: &str, stdin: Stdio, stdout: Stdio) -> Child {
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.env(ROLE_ENV, &role)
            .env(NAMES_ENV, names)
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::inherit());
        if let Some(cpu) = cpu_for(1) {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn child {role}: {e}"))
    }

    /// After QUIT: waits (bounded) for a clean exit.
    pub(crate) fn finish(mut self) {
        let mut child = self.0.take().expect("finished twice");
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            match child.try_wait().expect("waitpid") {
                Some(status) => {
                    assert!(status.success(), "child failed: {status}");
                    return;
                }
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("child did not exit within {SETUP_TIMEOUT:?}");
                }
                None => thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// --- ours: a Channel in a POSIX segment --------------------------------------

/// The word after the channel where the child acknowledges batches.
pub(crate) fn ack_offset(size: usize) -> usize {
    Channel::required_size(BLOCKS, size).next_multiple_of(128)
}

pub(crate) struct ChannelLink {
    ch: Channel<Arc<Mapping>>,
    map: Arc<Mapping>,
    size: usize,
    peer: Peer,
}

impl ChannelLink {
    pub(crate) fn start(size: usize) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "/shm-bench-mempool-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let shm = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, ack_offset(size) + 128)
            .expect("create the segment");
        let map = Arc::new(shm.map().expect("map"));
        let opts = ChannelOptions::new().blocking(true);
        let ch = Channel::create_with(Arc::clone(&map), BLOCKS, size, opts).expect("channel");
        let child = Peer::spawn(
            format!("channel-sink-{size}"),
            &name,
            Stdio::null(),
            Stdio::null(),
        );
        let peer = Peer(Some(child));
        let ack = map.atomic_u64(ack_offset(size)).expect("ack word");
        let mut backoff = Backoff::new("the child attaching", SETUP_TIMEOUT);
        while ack.load(Ordering::Acquire) != ATTACHED {
            backoff.snooze();
        }
        drop(shm); // unlinks the name: nothing left behind from here on
        ChannelLink {
            ch,
            map,
            size,
            peer,
        }
    }
}

impl ChannelLink {
    /// A free block of the channel holding a copy of `msg` (waits for one).
    #[inline]
    // The channel's blocks live in a part of its region (an `Arc` of ours).
    #[allow(clippy::redundant_allocation)]
    fn filled_block(&self, msg: &[u8]) -> Block<'_, SubRegion<Arc<Arc<Mapping>>>> {
        let mut backoff = Backoff::new("a free block", SETUP_TIMEOUT);
        let block = loop {
            match self.ch.try_get() {
                Ok(Some(block)) => break block,
                Ok(None) => backoff.snooze(),
                Err(e) => panic!("alloc: {e}"),
            }
        };
        block.write_at(0, msg).expect("fill the block");
        block.set_used(msg.len());
        block
    }
}

impl Link for ChannelLink {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        if let Err(e) = self.ch.send(self.filled_block(msg)) {
            panic!("send: {e}");
        }
    }

    fn wait_ack(&mut self, batch: u64) {
        let ack = self
            .map
            .atomic_u64(ack_offset(self.size))
            .expect("ack word");
        let mut backoff = Backoff::new("the child's acknowledgement", SETUP_TIMEOUT);
        while ack.load(Ordering::Acquire) != batch {
            backoff.snooze();
        }
    }

    fn stop(mut self) {
        let mut quit = vec![0u8; self.size];
        quit[..8].copy_from_slice(&QUIT.to_ne_bytes());
        self.send(&quit);
        self.peer.finish();
    }
}

pub(crate) fn channel_sink(name: &str, size: usize) {
    let shm = PosixShm::open(name).expect("open the segment");
    let map = shm.map().expect("map");
    drop(shm);
    let ch = Channel::attach(&map).expect("attach the channel");
    let ack = map.atomic_u64(ack_offset(size)).expect("ack word");
    ack.store(ATTACHED, Ordering::Release);
    let mut sink = Sink::new();
    let mut got = Vec::with_capacity(BURST);
    loop {
        let mut backoff = Backoff::new("the next message", CHILD_IDLE);
        // What is there, up to a burst (`recv_many`); one block at a time
        // with a futex sleep once the sender has been idle a while.
        while got.is_empty() {
            if backoff.sleepy() {
                match ch.recv_blocking(Duration::from_millis(10)) {
                    Ok(block) => got.push(block),
                    Err(RecvError::Empty) => {}
                    Err(e) => panic!("recv: {e}"),
                }
            } else if ch.recv_many(&mut got, BURST).expect("recv_many") == 0 {
                backoff.snooze();
            }
        }
        for block in got.drain(..) {
            // Read in place: three words at the start, one at the end.
            let head: [u64; 3] = block.read_pod(0).expect("head");
            let last: u64 = block.read_pod(size - 8).expect("trailer");
            drop(block);
            match sink.take(head, last) {
                Ok(Some(batch)) => ack.store(batch, Ordering::Release),
                Ok(None) => {}
                Err(()) => return,
            }
        }
    }
}

// --- the floor: a copy into shared memory and one store -----------------------

/// The floor's segment: the tail (the parent's next message), the head (the
/// child's), the acknowledgement word, each on its own line; then
/// [`BLOCKS`] message buffers.
const FLOOR_TAIL: usize = 0;
const FLOOR_HEAD: usize = 128;
const FLOOR_ACK: usize = 256;
const FLOOR_BUFS: usize = 4096;

fn floor_buf(seq: u64, size: usize) -> usize {
    FLOOR_BUFS + (seq % BLOCKS as u64) as usize * size
}

/// What moving a message to another process costs at least: the sender
/// copies it into one of [`BLOCKS`] buffers of a POSIX segment and stores
/// the new tail (one word); the child reads the message's first words and
/// its last one in place, as the other sinks do, and stores its head. No
/// ownership, no free list, no crash safety: an SPSC ring of buffers.
pub(crate) struct FloorLink {
    map: Mapping,
    size: usize,
    /// The next message's sequence number, and the child's head as last read.
    tail: u64,
    head: u64,
    peer: Peer,
}

impl FloorLink {
    pub(crate) fn start(size: usize) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "/shm-bench-floor-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let shm = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, FLOOR_BUFS + BLOCKS * size)
            .expect("create the segment");
        let map = shm.map().expect("map");
        let child = Peer::spawn(
            format!("floor-sink-{size}"),
            &name,
            Stdio::null(),
            Stdio::null(),
        );
        let peer = Peer(Some(child));
        let ack = map.atomic_u64(FLOOR_ACK).expect("ack word");
        let mut backoff = Backoff::new("the child attaching", SETUP_TIMEOUT);
        while ack.load(Ordering::Acquire) != ATTACHED {
            backoff.snooze();
        }
        drop(shm); // unlinks the name
        FloorLink {
            map,
            size,
            tail: 0,
            head: 0,
            peer,
        }
    }
}

impl Link for FloorLink {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        if self.tail - self.head >= BLOCKS as u64 {
            let head = self.map.atomic_u64(FLOOR_HEAD).expect("head word");
            let mut backoff = Backoff::new("a free buffer", SETUP_TIMEOUT);
            loop {
                // SYNC POINT: Acquire pairs with the child's Release store
                // of its head: it is done with the buffers before it.
                self.head = head.load(Ordering::Acquire);
                if self.tail - self.head < BLOCKS as u64 {
                    break;
                }
                backoff.snooze();
            }
        }
        self.map
            .write_at(floor_buf(self.tail, self.size), msg)
            .expect("fill the buffer");
        self.tail += 1;
        // SYNC POINT: Release publishes the buffer's bytes to the child.
        self.map
            .atomic_u64(FLOOR_TAIL)
            .expect("tail word")
            .store(self.tail, Ordering::Release);
    }

    fn wait_ack(&mut self, batch: u64) {
        let ack = self.map.atomic_u64(FLOOR_ACK).expect("ack word");
        let mut backoff = Backoff::new("the child's acknowledgement", SETUP_TIMEOUT);
        while ack.load(Ordering::Acquire) != batch {
            backoff.snooze();
        }
    }

    fn stop(mut self) {
        let mut quit = vec![0u8; self.size];
        quit[..8].copy_from_slice(&QUIT.to_ne_bytes());
        self.send(&quit);
        self.peer.finish();
    }
}

pub(crate) fn floor_sink(name: &str, size: usize) {
    let shm = PosixShm::open(name).expect("open the segment");
    let map = shm.map().expect("map");
    drop(shm);
    let tail = map.atomic_u64(FLOOR_TAIL).expect("tail word");
    let head = map.atomic_u64(FLOOR_HEAD).expect("head word");
    let ack = map.atomic_u64(FLOOR_ACK).expect("ack word");
    ack.store(ATTACHED, Ordering::Release);
    let mut sink = Sink::new();
    let mut next = 0u64;
    loop {
        let mut backoff = Backoff::new("the next message", CHILD_IDLE);
        // SYNC POINT: Acquire pairs with the parent's Release store of the
        // tail: the buffer's bytes are visible.
        while tail.load(Ordering::Acquire) == next {
            backoff.snooze();
        }
        let at = floor_buf(next, size);
        let head3: [u64; 3] = map.read_pod(at).expect("head");
        let last: u64 = map.read_pod(at + size - 8).expect("trailer");
        next += 1;
        // SYNC POINT: Release: done with the buffer, the parent may reuse it.
        head.store(next, Ordering::Release);
        match sink.take(head3, last) {
            Ok(Some(batch)) => ack.store(batch, Ordering::Release),
            Ok(None) => {}
            Err(()) => return,
        }
    }
}

// --- a pipe ------------------------------------------------------------------

pub(crate) struct PipeLink {
    tx: ChildStdin,
    rx: ChildStdout,
    peer: Peer,
    size: usize,
}

impl PipeLink {
    pub(crate) fn start(size: usize) -> Self {
        let mut child = Peer::spawn(
            format!("pipe-sink-{size}"),
            "",
            Stdio::piped(),
            Stdio::piped(),
        );
        let tx = child.stdin.take().expect("stdin");
        let rx = child.stdout.take().expect("stdout");
        PipeLink {
            tx,
            rx,
            peer: Peer(Some(child)),
            size,
        }
    }
}

impl Link for PipeLink {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        self.tx.write_all(msg).expect("write to the pipe");
    }

    fn wait_ack(&mut self, batch: u64) {
        let mut ack = [0u8; 8];
        self.rx
            .read_exact(&mut ack)
            .expect("read the acknowledgement");
        assert_eq!(u64::from_ne_bytes(ack), batch, "wrong acknowledgement");
    }

    fn stop(mut self) {
        let mut quit = vec![0u8; self.size];
        quit[..8].copy_from_slice(&QUIT.to_ne_bytes());
        self.send(&quit);
        drop(self.tx);
        self.peer.finish();
    }
}

pub(crate) fn pipe_sink(size: usize) {
    // SAFETY: the parent made fds 0 and 1 of this child the two pipes of
    // this role; nothing else in this process uses stdin or stdout, so these
    // Files are their only owners.
    let (mut rx, mut tx) = unsafe {
        (
            File::from(OwnedFd::from_raw_fd(0)),
            File::from(OwnedFd::from_raw_fd(1)),
        )
    };
    let mut buf = vec![0u8; size];
    let mut sink = Sink::new();
    loop {
        rx.read_exact(&mut buf).expect("read a message");
        let head = [word(&buf, 0), word(&buf, 8), word(&buf, 16)];
        match sink.take(head, word(&buf, size - 8)) {
            Ok(Some(batch)) => tx.write_all(&batch.to_ne_bytes()).expect("acknowledge"),
            Ok(None) => {}
            Err(()) => return,
        }
    }
}

// --- iceoryx2 ----------------------------------------------------------------

pub(crate) const IOX_DATA: &str = "shm-bench-mempool/data";
pub(crate) const IOX_ACK: &str = "shm-bench-mempool/ack";

/// A node with a publisher of `[u8; N]` messages and a subscriber of `u64`
/// acknowledgements (or the other way round, in the child). Fields drop in
/// order: ports, then services, then the node.
pub(crate) struct IoxEnds<Out: Debug + ZeroCopySend + 'static, In: Debug + ZeroCopySend + 'static> {
    tx: Publisher<ipc::Service, Out, ()>,
    rx: Subscriber<ipc::Service, In, ()>,
    _services: Vec<Box<dyn std::any::Any>>,
    _node: iceoryx2::node::Node<ipc::Service>,
}

pub(crate) type ParentEnds<const N: usize> = IoxEnds<[u8; N], u64>;
pub(crate) type ChildEnds<const N: usize> = IoxEnds<u64, [u8; N]>;

pub(crate) fn iox_node(domain: &IoxDomain) -> iceoryx2::node::Node<ipc::Service> {
    iceoryx2::prelude::set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .config(&domain.config())
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

macro_rules! iox_service {
    ($node:expr, $name:expr, $ty:ty) => {
        $node
            .service_builder(&ServiceName::new($name).expect("service name"))
            .publish_subscribe::<$ty>()
            .history_size(0)
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(BLOCKS)
            .subscriber_max_borrowed_samples(2)
            .open_or_create()
            .expect("iceoryx2 service")
    };
}

pub(crate) fn parent_ends<const N: usize>(domain: &IoxDomain) -> ParentEnds<N> {
    let node = iox_node(domain);
    let data = iox_service!(node, IOX_DATA, [u8; N]);
    let ack = iox_service!(node, IOX_ACK, u64);
    let tx = data
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .max_loaned_samples(2)
        .create()
        .expect("publisher");
    let rx = ack.subscriber_builder().create().expect("subscriber");
    IoxEnds {
        tx,
        rx,
        _services: vec![Box::new(data), Box::new(ack)],
        _node: node,
    }
}

pub(crate) fn child_ends<const N: usize>(domain: &IoxDomain) -> ChildEnds<N> {
    let node = iox_node(domain);
    let data = iox_service!(node, IOX_DATA, [u8; N]);
    let ack = iox_service!(node, IOX_ACK, u64);
    let rx = data.subscriber_builder().create().expect("subscriber");
    let tx = ack
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    IoxEnds {
        tx,
        rx,
        _services: vec![Box::new(data), Box::new(ack)],
        _node: node,
    }
}

pub(crate) struct IoxLink<const N: usize> {
    ends: ParentEnds<N>,
    peer: Peer,
    domain: IoxDomain,
}

impl<const N: usize> IoxLink<N> {
    pub(crate) fn start() -> Self {
        IoxDomain::remove_stale("mempool");
        let domain = IoxDomain::new("mempool");
        let mut ends = parent_ends::<N>(&domain);
        let names = format!("{},{}", domain.prefix, domain.root);
        let child = Peer::spawn(
            format!("iox-sink-{N}"),
            &names,
            Stdio::null(),
            Stdio::null(),
        );
        let peer = Peer(Some(child));
        // Samples published before the child's subscriber connects are lost
        // (history 0): empty batches (id 0) until one is acknowledged.
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let mut msg = vec![0u8; N];
        msg[..8].copy_from_slice(&BATCH.to_ne_bytes());
        'probe: loop {
            ends.send_bytes(&msg);
            let until = Instant::now() + Duration::from_millis(20);
            while Instant::now() < until {
                if ends.rx.receive().expect("iceoryx2 receive").is_some() {
                    break 'probe;
                }
                thread::sleep(Duration::from_micros(200));
            }
            assert!(Instant::now() < deadline, "iceoryx2 child did not answer");
        }
        thread::sleep(Duration::from_millis(50));
        while ends.rx.receive().expect("iceoryx2 receive").is_some() {}
        IoxLink { ends, peer, domain }
    }
}

impl<const N: usize> IoxEnds<[u8; N], u64> {
    /// Loans a sample, copies `msg` into it (the one copy every sender
    /// makes), sends it.
    #[inline]
    pub(crate) fn send_bytes(&mut self, msg: &[u8]) {
        assert_eq!(msg.len(), N);
        let mut sample = self.tx.loan_uninit().expect("iceoryx2 loan");
        let slot: &mut MaybeUninit<[u8; N]> = sample.payload_mut();
        // SAFETY: `slot` is N writable bytes of the loaned sample and `msg`
        // is N bytes; they do not overlap (the sample is in shared memory
        // this process just loaned, `msg` is a local buffer).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), slot.as_mut_ptr().cast::<u8>(), N) };
        // SAFETY: every byte of the payload was written just above.
        let sample = unsafe { sample.assume_init() };
        sample.send().expect("iceoryx2 send");
    }
}

impl<const N: usize> Link for IoxLink<N> {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        self.ends.send_bytes(msg);
    }

    fn wait_ack(&mut self, batch: u64) {
        let mut backoff = Backoff::new("the child's acknowledgement", SETUP_TIMEOUT);
        loop {
            if let Some(ack) = self.ends.rx.receive().expect("iceoryx2 receive") {
                assert_eq!(*ack, batch, "wrong acknowledgement");
                return;
            }
            backoff.snooze();
        }
    }

    fn stop(mut self) {
        let mut quit = vec![0u8; N];
        quit[..8].copy_from_slice(&QUIT.to_ne_bytes());
        self.send(&quit);
        let IoxLink { ends, peer, domain } = self;
        peer.finish();
        drop(ends);
        domain.remove();
    }
}

pub(crate) fn iox_sink<const N: usize>(names: &str) {
    let (prefix, root) = names.split_once(',').expect("prefix,root");
    let domain = IoxDomain {
        prefix: prefix.to_owned(),
        root: root.to_owned(),
    };
    let ends = child_ends::<N>(&domain);
    let mut sink = Sink::new();
    loop {
        let mut backoff = Backoff::new("the next message", CHILD_IDLE);
        let sample = loop {
            match ends.rx.receive().expect("iceoryx2 receive") {
                Some(sample) => break sample,
                None => backoff.snooze(),
            }
        };
        // Read in place.
        let msg: &[u8; N] = sample.payload();
        let head = [word(msg, 0), word(msg, 8), word(msg, 16)];
        let last = word(msg, N - 8);
        drop(sample);
        let done = match sink.take(head, last) {
            Ok(done) => done,
            Err(()) => return,
        };
        if let Some(batch) = done {
            let ack = ends.tx.loan_uninit().expect("iceoryx2 loan");
            ack.write_payload(batch).send().expect("iceoryx2 send");
        }
    }
}

/// A child's main: set up the safety nets, then run the role.
pub(crate) fn child_main(role: &str) {
    die_with_parent(PARENT_ENV);
    pin(std::env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()));
    let names = env(NAMES_ENV);
    let (kind, size) = role.rsplit_once('-').expect("role-size");
    let size: usize = size.parse().expect("size");
    match (kind, size) {
        ("channel-sink", _) => channel_sink(&names, size),
        ("pipe-sink", _) => pipe_sink(size),
        ("floor-sink", _) => floor_sink(&names, size),
        ("iox-sink", 4096) => iox_sink::<4096>(&names),
        ("iox-sink", 65536) => iox_sink::<65536>(&names),
        _ => panic!("unknown role {role}"),
    }
}
