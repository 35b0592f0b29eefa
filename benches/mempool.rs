//! The block pool and the channel against their peers, in one run (results
//! in `docs/benchmarks.md`, section "Mempool and channel").
//!
//! - `alloc_free_64`: one thread takes a 64-byte block and gives it back
//!   (`MemPool::get` + drop) against `Box::new([0u8; 64])` + drop (the
//!   process allocator). One iteration is one pair. `mempool_get_put` is
//!   the default (FIFO) pool, `mempool_get_put_lifo` one made with
//!   `FreeOrder::Lifo`.
//! - `alloc_free_64_2_threads`: the same on two threads at once, sharing one
//!   pool (both hit the same free-list head) against two threads boxing and
//!   freeing (each through its own allocator cache). One iteration is one
//!   pair on each thread; the time is wall time.
//! - `message_4KiB_process`, `message_64KiB_process`: a stream of messages
//!   to a child process that checks each one (sequence number and checksum
//!   at both ends of the message) and drops it. Every sender starts from the
//!   same bytes in a local buffer and writes them once: ours into a block of
//!   a `Channel` in a POSIX segment (then sends the 4-byte id); a pipe with
//!   `write_all` (the child `read_exact`s into its buffer); iceoryx2 into a
//!   loaned sample of a publish-subscribe service of `[u8; N]` (the child
//!   reads the received sample in place). A batch ends with an
//!   acknowledgement from the child, inside the measured time. One iteration
//!   is one message (`Throughput::Bytes`).
//!
//! ```text
//! cargo bench -p shm-benches --bench mempool
//! cargo bench -p shm-benches --bench mempool -- message_4KiB   # one group
//! ```
//!
//! A child is this bench binary run again with `SHM_MEMPOOL_BENCH_ROLE`
//! set, spawned once per benchmark and stopped after its last sample. It
//! dies with its parent (`PR_SET_PDEATHSIG`), exits if it was re-parented
//! before that was armed, and gives up after a minute without a message;
//! the parent arms `alarm(2)` around every measured step and every wait has
//! a deadline, so a hung peer ends the run with a message instead of hanging
//! it. The segment's name is unlinked as soon as the child has attached, so
//! nothing is left in `/dev/shm` even when a run is killed. iceoryx2 runs in
//! a private domain (its own file prefix and root directory) removed at the
//! end; what a killed run left is removed by the next run.
//!
//! Placement: with two or more CPUs, this side runs on the first CPU this
//! process may use and the child (or the second thread) on the second.

use std::fmt::Debug;
use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{
    ipc, LogLevel, NodeBuilder, ServiceName, SignalHandlingMode, ZeroCopySend,
};
use shm::mempool::{
    Channel, ChannelOptions, FreeOrder, MemPool, PoolError, PoolOptions, RecvError,
};
use shm::segment::{AnonShared, Mapping, PosixOptions, PosixShm, Region};

mod common;
use common::iox_domain::IoxDomain;
use common::{cpu_for, cpus, die_with_parent, env, install_watchdog, pin, watchdog};

/// Blocks in the channel (and samples the iceoryx2 subscriber may buffer).
const BLOCKS: usize = 16;
/// Which role a re-executed child plays.
const ROLE_ENV: &str = "SHM_MEMPOOL_BENCH_ROLE";
/// The segment name or the iceoryx2 domain, for the child.
const NAMES_ENV: &str = "SHM_MEMPOOL_BENCH_NAMES";
/// The parent's pid: the child exits if it has already been re-parented.
const PARENT_ENV: &str = "SHM_MEMPOOL_BENCH_PARENT";
/// The CPU the child pins itself to.
const CPU_ENV: &str = "SHM_MEMPOOL_BENCH_CPU";
/// How long setup (a child attaching) and one acknowledgement may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a child waits for the next message before it gives up.
const CHILD_IDLE: Duration = Duration::from_secs(60);
/// How long one measured step may take before the watchdog ends the run.
const STEP_LIMIT_S: u32 = 120;

/// First word of a message that starts a batch (the count follows).
const BATCH: u64 = u64::MAX - 1;
/// First word of a message that tells the child to exit.
const QUIT: u64 = u64::MAX;
/// The child's word in the channel segment once it has attached.
const ATTACHED: u64 = u64::MAX;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

// ---------------------------------------------------------------------------
// Back-off (the watchdog and the CPUs are in `common`)
// ---------------------------------------------------------------------------

/// Every busy-polling loop of every peer backs off alike: 64 spins, then
/// `sched_yield`, then 50 µs sleeps; and gives up at a deadline.
struct Backoff {
    round: u32,
    deadline: Instant,
    what: &'static str,
}

impl Backoff {
    fn new(what: &'static str, timeout: Duration) -> Self {
        Backoff {
            round: 0,
            deadline: Instant::now() + timeout,
            what,
        }
    }

    #[inline]
    fn snooze(&mut self) {
        if self.round < 64 {
            std::hint::spin_loop();
        } else if self.round < 10_000 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(50));
        }
        self.round = self.round.saturating_add(1);
        if self.round % 1024 == 0 && Instant::now() > self.deadline {
            panic!("{}: gave up waiting", self.what);
        }
    }

    /// Whether it has backed off long enough to sleep in the kernel instead.
    fn sleepy(&self) -> bool {
        self.round >= 10_000
    }
}

// ---------------------------------------------------------------------------
// a. Allocation, one thread and two
// ---------------------------------------------------------------------------

fn bench_alloc(c: &mut Criterion) {
    pin(cpu_for(0));
    let region = AnonShared::new(MemPool::required_size(1024, 64)).expect("anonymous region");
    let pool = MemPool::create(&region, 1024, 64).expect("pool");

    let mut g = c.benchmark_group("alloc_free_64");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mempool_get_put", |b| {
        b.iter(|| {
            let block = pool.get().expect("a free block");
            black_box(&block);
        })
    });
    let lifo_region = AnonShared::new(MemPool::required_size(1024, 64)).expect("anonymous region");
    let lifo = MemPool::create_with(
        &lifo_region,
        1024,
        64,
        PoolOptions::new().order(FreeOrder::Lifo),
    )
    .expect("pool");
    g.bench_function("mempool_get_put_lifo", |b| {
        b.iter(|| {
            let block = lifo.get().expect("a free block");
            black_box(&block);
        })
    });
    g.bench_function("box_64", |b| {
        b.iter(|| {
            let boxed = Box::new([0u8; 64]);
            black_box(&boxed);
        })
    });
    g.finish();
    assert_eq!(lifo.check().expect("check"), 1024, "the pool lost blocks");

    let mut g = c.benchmark_group("alloc_free_64_2_threads");
    g.throughput(Throughput::Elements(2));
    g.bench_function("mempool_get_put", |b| {
        b.iter_custom(|n| {
            two_threads(n, || {
                let block = pool.get().expect("a free block");
                black_box(&block);
            })
        })
    });
    g.bench_function("box_64", |b| {
        b.iter_custom(|n| {
            two_threads(n, || {
                let boxed = Box::new([0u8; 64]);
                black_box(&boxed);
            })
        })
    });
    g.finish();
    assert_eq!(pool.check().expect("check"), 1024, "the pool lost blocks");
}

/// Runs `op` `n` times on each of two threads (pinned to the two CPUs),
/// started together; returns the wall time until both are done.
fn two_threads(n: u64, op: impl Fn() + Sync) -> Duration {
    watchdog(STEP_LIMIT_S);
    let barrier = Barrier::new(3);
    let elapsed = thread::scope(|s| {
        for k in 0..2 {
            let (barrier, op) = (&barrier, &op);
            s.spawn(move || {
                pin(cpu_for(k));
                barrier.wait();
                for _ in 0..n {
                    op();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    watchdog(0);
    elapsed
}

// ---------------------------------------------------------------------------
// b. Messages to a child process
// ---------------------------------------------------------------------------

fn checksum(seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23) ^ 0x5EED_F00D
}

/// Sets a message's sequence number (first word) and checksum (last word).
#[inline]
fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_ne_bytes());
    msg[n - 8..].copy_from_slice(&checksum(seq).to_ne_bytes());
}

fn word(msg: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(msg[at..at + 8].try_into().expect("8 bytes"))
}

/// What a child does with each message; returns `false` on QUIT.
struct Sink {
    expect: u64,
    count: u64,
    batch: u64,
}

impl Sink {
    fn new() -> Self {
        Sink {
            expect: 0,
            count: 0,
            batch: 0,
        }
    }

    /// Checks one message (its first words and its last word); returns the
    /// batch id when a batch is complete.
    fn take(&mut self, head: [u64; 3], last: u64) -> Result<Option<u64>, ()> {
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
trait Link {
    /// Sends one message (its bytes are copied once, into the transport).
    fn send(&mut self, msg: &[u8]);
    /// Waits for the child's acknowledgement of batch `batch`.
    fn wait_ack(&mut self, batch: u64);
    /// Tells the child to exit and reaps it; cleans up.
    fn stop(self);
}

/// `n` messages as one batch, acknowledged; the measured step.
fn batch<L: Link>(link: &mut L, msg: &mut [u8], id: u64, n: u64) -> Duration {
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

fn bench_link<L: Link>(g: &mut Group<'_>, name: &str, size: usize, start: impl FnOnce() -> L) {
    let mut start = Some(start);
    let mut link: Option<L> = None;
    let mut msg = vec![0xA5u8; size];
    let mut id = 0;
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        let l = link.get_or_insert_with(|| (start.take().expect("started once"))());
        b.iter_custom(|n| {
            id += 1;
            batch(l, &mut msg, id, n)
        });
    });
    if let Some(l) = link {
        l.stop();
    }
}

/// A child process running one role; killed and reaped if not finished.
struct Peer(Option<Child>);

impl Peer {
    fn spawn(role: String, names: &str, stdin: Stdio, stdout: Stdio) -> Child {
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
    fn finish(mut self) {
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
fn ack_offset(size: usize) -> usize {
    Channel::required_size(BLOCKS, size).next_multiple_of(128)
}

struct ChannelLink {
    ch: Channel<Arc<Mapping>>,
    map: Arc<Mapping>,
    size: usize,
    peer: Peer,
}

impl ChannelLink {
    fn start(size: usize) -> Self {
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

impl Link for ChannelLink {
    #[inline]
    fn send(&mut self, msg: &[u8]) {
        let mut backoff = Backoff::new("a free block", SETUP_TIMEOUT);
        let block = loop {
            match self.ch.get() {
                Ok(block) => break block,
                Err(PoolError::Exhausted { .. }) => backoff.snooze(),
                Err(e) => panic!("alloc: {e}"),
            }
        };
        block.write_at(0, msg).expect("fill the block");
        block.set_used(msg.len());
        if let Err(e) = self.ch.send(block) {
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

fn channel_sink(name: &str, size: usize) {
    let shm = PosixShm::open(name).expect("open the segment");
    let map = shm.map().expect("map");
    drop(shm);
    let ch = Channel::attach(&map).expect("attach the channel");
    let ack = map.atomic_u64(ack_offset(size)).expect("ack word");
    ack.store(ATTACHED, Ordering::Release);
    let mut sink = Sink::new();
    loop {
        let mut backoff = Backoff::new("the next message", CHILD_IDLE);
        let block = loop {
            let got = if backoff.sleepy() {
                ch.recv_blocking(Duration::from_millis(10))
            } else {
                ch.recv()
            };
            match got {
                Ok(block) => break block,
                Err(RecvError::Empty) => backoff.snooze(),
                Err(e) => panic!("recv: {e}"),
            }
        };
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

// --- a pipe ------------------------------------------------------------------

struct PipeLink {
    tx: ChildStdin,
    rx: ChildStdout,
    peer: Peer,
    size: usize,
}

impl PipeLink {
    fn start(size: usize) -> Self {
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

fn pipe_sink(size: usize) {
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

const IOX_DATA: &str = "shm-bench-mempool/data";
const IOX_ACK: &str = "shm-bench-mempool/ack";

/// A node with a publisher of `[u8; N]` messages and a subscriber of `u64`
/// acknowledgements (or the other way round, in the child). Fields drop in
/// order: ports, then services, then the node.
struct IoxEnds<Out: Debug + ZeroCopySend + 'static, In: Debug + ZeroCopySend + 'static> {
    tx: Publisher<ipc::Service, Out, ()>,
    rx: Subscriber<ipc::Service, In, ()>,
    _services: Vec<Box<dyn std::any::Any>>,
    _node: iceoryx2::node::Node<ipc::Service>,
}

type ParentEnds<const N: usize> = IoxEnds<[u8; N], u64>;
type ChildEnds<const N: usize> = IoxEnds<u64, [u8; N]>;

fn iox_node(domain: &IoxDomain) -> iceoryx2::node::Node<ipc::Service> {
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

fn parent_ends<const N: usize>(domain: &IoxDomain) -> ParentEnds<N> {
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

fn child_ends<const N: usize>(domain: &IoxDomain) -> ChildEnds<N> {
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

struct IoxLink<const N: usize> {
    ends: ParentEnds<N>,
    peer: Peer,
    domain: IoxDomain,
}

impl<const N: usize> IoxLink<N> {
    fn start() -> Self {
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
    fn send_bytes(&mut self, msg: &[u8]) {
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

fn iox_sink<const N: usize>(names: &str) {
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

// ---------------------------------------------------------------------------

fn bench_messages(c: &mut Criterion) {
    pin(cpu_for(0));
    for (label, size) in [
        ("message_4KiB_process", 4096),
        ("message_64KiB_process", 65536),
    ] {
        let mut g = c.benchmark_group(label);
        g.throughput(Throughput::Bytes(size as u64));
        bench_link(&mut g, "mempool_channel", size, || ChannelLink::start(size));
        bench_link(&mut g, "pipe", size, || PipeLink::start(size));
        if size == 4096 {
            bench_link(&mut g, "iceoryx2", size, IoxLink::<4096>::start);
        } else {
            bench_link(&mut g, "iceoryx2", size, IoxLink::<65536>::start);
        }
        g.finish();
    }
}

/// A child's main: set up the safety nets, then run the role.
fn child_main(role: &str) {
    die_with_parent(PARENT_ENV);
    pin(std::env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()));
    let names = env(NAMES_ENV);
    let (kind, size) = role.rsplit_once('-').expect("role-size");
    let size: usize = size.parse().expect("size");
    match (kind, size) {
        ("channel-sink", _) => channel_sink(&names, size),
        ("pipe-sink", _) => pipe_sink(size),
        ("iox-sink", 4096) => iox_sink::<4096>(&names),
        ("iox-sink", 65536) => iox_sink::<65536>(&names),
        _ => panic!("unknown role {role}"),
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child_main(&role);
        return;
    }
    cpus(); // read the CPU list before anything is pinned
    install_watchdog();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    bench_alloc(&mut c);
    bench_messages(&mut c);
    c.final_summary();
}
