//! The ring benches' peers and loops, shared by `benches/ring.rs` (criterion)
//! and `benches/goals.rs` (the interleaved goals harness): one message at a
//! time over anything (our rings, rtrb, pipes, sockets, iceoryx2), the sink
//! and echo loops, the child processes that run them, SPSC between two
//! threads, batches and chunks, and the MPMC jobs.
//!
//! A child is the bench binary run again with [`ROLE_ENV`] set: its `main`
//! calls [`child_main`] first. It dies with its parent (`PR_SET_PDEATHSIG`),
//! and the parent arms `alarm(2)` around every measured step. Segment names
//! are unlinked as soon as the child has attached.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::{ipc, LogLevel, NodeBuilder, ServiceName, SignalHandlingMode};
use shm::ring::{Consumer, MpmcRing, Producer, PushError, RingOptions, SpscRing};
use shm::segment::{Mapping, PosixOptions, PosixShm};

use super::iox_domain::IoxDomain;
use super::{die_with_parent, env, pin_slot, set_affinity, watchdog};

/// Slots in every ring and queue of every peer.
pub(crate) const CAPACITY: usize = 4096;
/// Items per bulk operation.
pub(crate) const BATCH: usize = 32;
/// Tells a sink or an echo to exit. Data values never reach it.
pub(crate) const QUIT: u64 = u64::MAX;
/// A peer's first message: "attached and ready".
pub(crate) const READY: u64 = u64::MAX - 1;

/// Which role a re-executed child plays.
pub(crate) const ROLE_ENV: &str = "SHM_RING_BENCH_ROLE";
/// Comma-separated POSIX names (rings) or iceoryx2 service names.
pub(crate) const NAMES_ENV: &str = "SHM_RING_BENCH_NAMES";
/// The parent's pid: the child exits if it has already been re-parented.
pub(crate) const PARENT_ENV: &str = "SHM_RING_BENCH_PARENT";
/// The CPU the child pins itself to.
pub(crate) const CPU_ENV: &str = "SHM_RING_BENCH_CPU";

/// How long setup (a child attaching, a thread starting) may take.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one measured step (one `iter_custom` call) may take before the
/// watchdog ends the run. Steps take seconds at most.
pub(crate) const STEP_LIMIT_S: u32 = 120;
/// How long a blocking call waits before the bench calls it a hang.
pub(crate) const BLOCKING_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Back-off (the watchdog and the CPUs are in `common`)
// ---------------------------------------------------------------------------

/// What every busy-polling loop of every peer does on "full" or "empty":
/// spin a little, then yield (two cores are shared by up to 16 threads in
/// the MPMC group), then sleep briefly once the other side is clearly idle.
pub(crate) struct Backoff(u32);

impl Backoff {
    #[inline]
    pub(crate) fn new() -> Self {
        Backoff(0)
    }

    #[inline]
    pub(crate) fn snooze(&mut self) {
        if self.0 < 64 {
            std::hint::spin_loop();
        } else if self.0 < 10_000 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(50));
        }
        self.0 = self.0.saturating_add(1);
    }
}

/// The sum of `0..n`, which every sink checks.
pub(crate) fn expected_sum(n: u64) -> u64 {
    let n = u128::from(n);
    (n * n.saturating_sub(1) / 2) as u64
}

// ---------------------------------------------------------------------------
// One message at a time, over anything: rings, rtrb, fds, iceoryx2
// ---------------------------------------------------------------------------

pub(crate) trait Sender {
    fn send(&mut self, v: u64);
}

pub(crate) trait Receiver {
    fn try_recv(&mut self) -> Option<u64>;

    /// Busy-polls (with [`Backoff`]) until a value arrives. Forced inline
    /// for every peer alike, so that the harness never decides a ratio.
    #[inline(always)]
    fn recv(&mut self) -> u64 {
        let mut backoff = Backoff::new();
        loop {
            if let Some(v) = self.try_recv() {
                return v;
            }
            backoff.snooze();
        }
    }

    /// For setup only: waits up to `timeout`, politely.
    fn recv_within(&mut self, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.try_recv() {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_micros(200));
        }
    }
}

impl<R> Sender for Producer<u64, R> {
    #[inline(always)]
    fn send(&mut self, mut v: u64) {
        let mut backoff = Backoff::new();
        while let Err(PushError::Full(back)) = self.push(v) {
            v = back;
            backoff.snooze();
        }
    }
}

impl<R> Receiver for Consumer<u64, R> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<u64> {
        self.pop().ok()
    }
}

impl Sender for rtrb::Producer<u64> {
    #[inline(always)]
    fn send(&mut self, mut v: u64) {
        let mut backoff = Backoff::new();
        while let Err(rtrb::PushError::Full(back)) = self.push(v) {
            v = back;
            backoff.snooze();
        }
    }
}

impl Receiver for rtrb::Consumer<u64> {
    #[inline(always)]
    fn try_recv(&mut self) -> Option<u64> {
        self.pop().ok()
    }
}

/// Our ring's blocking calls: a futex sleep when the ring was created with
/// `RingOptions::blocking(true)`.
pub(crate) struct BlockingTx<'a, R>(pub(crate) &'a mut Producer<u64, R>);
pub(crate) struct BlockingRx<'a, R>(pub(crate) &'a mut Consumer<u64, R>);

impl<R> Sender for BlockingTx<'_, R> {
    fn send(&mut self, v: u64) {
        if self.0.push_blocking(v, BLOCKING_TIMEOUT).is_err() {
            panic!("ring still full after {BLOCKING_TIMEOUT:?}: is the peer alive?");
        }
    }
}

impl<R> Receiver for BlockingRx<'_, R> {
    fn try_recv(&mut self) -> Option<u64> {
        self.0.pop().ok()
    }

    fn recv(&mut self) -> u64 {
        // An idle peer may wait a long time between benchmarks: keep waiting
        // (the watchdog and PR_SET_PDEATHSIG end a real hang).
        loop {
            if let Ok(v) = self.0.pop_blocking(BLOCKING_TIMEOUT) {
                return v;
            }
        }
    }
}

/// One 8-byte `write(2)` per message (std's pipe, socket and file writers
/// are unbuffered).
pub(crate) struct FdTx<W>(W);
/// One 8-byte `read(2)` per message (pipes and stream sockets never split
/// an 8-byte write, so `read_exact` makes one call).
pub(crate) struct FdRx<R>(R);

impl<W: Write> Sender for FdTx<W> {
    #[inline]
    fn send(&mut self, v: u64) {
        self.0.write_all(&v.to_ne_bytes()).expect("write(2)");
    }
}

impl<R: Read + AsRawFd> Receiver for FdRx<R> {
    fn try_recv(&mut self) -> Option<u64> {
        poll_readable(self.0.as_raw_fd(), 0).then(|| self.recv())
    }

    #[inline]
    fn recv(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        match self.0.read_exact(&mut bytes) {
            Ok(()) => u64::from_ne_bytes(bytes),
            // The other end closed: as good as QUIT.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => QUIT,
            Err(e) => panic!("read(2): {e}"),
        }
    }

    fn recv_within(&mut self, timeout: Duration) -> Option<u64> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        poll_readable(self.0.as_raw_fd(), ms).then(|| self.recv())
    }
}

/// Whether `fd` becomes readable (or hung up) within `timeout_ms`.
pub(crate) fn poll_readable(fd: libc::c_int, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, and we pass a count of 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    rc > 0
}

pub(crate) type IoxPublisher = Publisher<ipc::Service, u64, ()>;
pub(crate) type IoxSubscriber = Subscriber<ipc::Service, u64, ()>;

/// iceoryx2's zero-copy path: loan a sample, write it, send it.
pub(crate) struct IoxTx(IoxPublisher);
pub(crate) struct IoxRx(IoxSubscriber);

impl Sender for IoxTx {
    #[inline]
    fn send(&mut self, v: u64) {
        let sample = self.0.loan_uninit().expect("iceoryx2 loan");
        sample.write_payload(v).send().expect("iceoryx2 send");
    }
}

impl Receiver for IoxRx {
    #[inline]
    fn try_recv(&mut self) -> Option<u64> {
        self.0.receive().expect("iceoryx2 receive").map(|s| *s)
    }
}

// ---------------------------------------------------------------------------
// The loops every peer runs
// ---------------------------------------------------------------------------

/// Sink: says READY, then per step reads a count `n`, takes `n` items and
/// acknowledges with their sum; QUIT ends it.
pub(crate) fn sink_loop(rx: &mut impl Receiver, ack: &mut impl Sender) {
    ack.send(READY);
    loop {
        let n = rx.recv();
        if n == QUIT {
            return;
        }
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(rx.recv());
        }
        ack.send(sum);
    }
}

/// [`sink_loop`] with our bulk calls: items arrive through `pop_into`.
pub(crate) fn bulk_sink_loop<R>(rx: &mut Consumer<u64, R>, ack: &mut impl Sender) {
    ack.send(READY);
    loop {
        let n = rx.recv();
        if n == QUIT {
            return;
        }
        let sum = pop_batches(n, |out| rx.pop_into(out));
        ack.send(sum);
    }
}

/// [`send_batch`] with our bulk calls: items leave through `push_slice`.
pub(crate) fn send_batch_bulk<R>(
    tx: &mut Producer<u64, R>,
    ack: &mut Consumer<u64, R>,
    n: u64,
) -> Duration {
    watchdog(STEP_LIMIT_S);
    let start = Instant::now();
    tx.send(n);
    push_batches(n, |v| tx.push_slice(v));
    let sum = ack.recv();
    let elapsed = start.elapsed();
    watchdog(0);
    assert_eq!(sum, expected_sum(n), "the sink lost or changed items");
    elapsed
}

/// Echo: says READY, then sends back every value until QUIT.
pub(crate) fn echo_loop(rx: &mut impl Receiver, tx: &mut impl Sender) {
    tx.send(READY);
    loop {
        let v = rx.recv();
        if v == QUIT {
            return;
        }
        tx.send(v);
    }
}

/// One throughput step: the count, `n` items, then wait for the sink's sum.
pub(crate) fn send_batch(tx: &mut impl Sender, ack: &mut impl Receiver, n: u64) -> Duration {
    watchdog(STEP_LIMIT_S);
    let start = Instant::now();
    tx.send(n);
    for i in 0..n {
        tx.send(i);
    }
    let sum = ack.recv();
    let elapsed = start.elapsed();
    watchdog(0);
    assert_eq!(sum, expected_sum(n), "the sink lost or changed items");
    elapsed
}

/// `n` round trips, each checked.
pub(crate) fn round_trips(tx: &mut impl Sender, rx: &mut impl Receiver, n: u64) -> Duration {
    watchdog(STEP_LIMIT_S);
    let start = Instant::now();
    for i in 0..n {
        tx.send(i);
        let back = rx.recv();
        if back != i {
            panic!("round trip {i} came back as {back}");
        }
    }
    let elapsed = start.elapsed();
    watchdog(0);
    elapsed
}

/// Items per burst in [`burst_round_trips`].
pub(crate) const BURST: u64 = 8;

/// `n` round trips of a burst of [`BURST`] items, sent and received one at a
/// time (an echo returns each as it comes), each checked: a consumer finds
/// several items at once and no more after them, which a ring that waits
/// for a streaming producer must not wait for.
pub(crate) fn burst_round_trips(tx: &mut impl Sender, rx: &mut impl Receiver, n: u64) -> Duration {
    watchdog(STEP_LIMIT_S);
    let start = Instant::now();
    for i in 0..n {
        for k in 0..BURST {
            tx.send(i * BURST + k);
        }
        for k in 0..BURST {
            let back = rx.recv();
            if back != i * BURST + k {
                panic!("burst {i}, item {k} came back as {back}");
            }
        }
    }
    let elapsed = start.elapsed();
    watchdog(0);
    elapsed
}

pub(crate) fn expect_ready(rx: &mut impl Receiver, who: &str) {
    match rx.recv_within(SETUP_TIMEOUT) {
        Some(READY) => {}
        Some(v) => panic!("{who}: expected READY, got {v}"),
        None => panic!("{who}: not ready within {SETUP_TIMEOUT:?}"),
    }
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// A child process running one role; killed and reaped if not finished.
pub(crate) struct Peer {
    child: Option<Child>,
    role: &'static str,
}

impl Peer {
    /// Re-executes this binary as `role`, pinned to `cpu`.
    pub(crate) fn spawn(
        role: &'static str,
        cpu: Option<usize>,
        names: &str,
        stdin: Stdio,
        stdout: Stdio,
    ) -> Child {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.env(ROLE_ENV, role)
            .env(NAMES_ENV, names)
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::inherit());
        if let Some(cpu) = cpu {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn child {role}: {e}"))
    }

    pub(crate) fn new(child: Child, role: &'static str) -> Self {
        Peer {
            child: Some(child),
            role,
        }
    }

    /// After QUIT was sent: waits (bounded) for a clean exit.
    pub(crate) fn finish(mut self) {
        let mut child = self.child.take().expect("finished twice");
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            match child.try_wait().expect("waitpid") {
                Some(status) => {
                    assert!(status.success(), "child {} failed: {status}", self.role);
                    return;
                }
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("child {} did not exit within {SETUP_TIMEOUT:?}", self.role);
                }
                None => thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A child's main: set up the safety nets, then run the role.
pub(crate) fn child_main(role: &str) {
    die_with_parent(PARENT_ENV);
    if let Ok(cpu) = std::env::var(CPU_ENV) {
        set_affinity(&[cpu.parse().expect("cpu number")]);
    }
    let names = env(NAMES_ENV);
    let names: Vec<&str> = names.split(',').collect();
    match role {
        "ring-sink" => {
            let (mut rx, mut ack) = attach_remote_ends(&names);
            sink_loop(&mut rx, &mut ack);
        }
        "ring-sink-bulk" => {
            let (mut rx, mut ack) = attach_remote_ends(&names);
            bulk_sink_loop(&mut rx, &mut ack);
        }
        "ring-echo" => {
            let (mut rx, mut tx) = attach_remote_ends(&names);
            echo_loop(&mut rx, &mut tx);
        }
        "ring-echo-blocking" => {
            let (mut rx, mut tx) = attach_remote_ends(&names);
            echo_loop(&mut BlockingRx(&mut rx), &mut BlockingTx(&mut tx));
        }
        "fd-sink" => {
            let (mut rx, mut tx) = std_fds();
            sink_loop(&mut rx, &mut tx);
        }
        "fd-echo" => {
            let (mut rx, mut tx) = std_fds();
            echo_loop(&mut rx, &mut tx);
        }
        "iceoryx2-echo" => {
            let domain = IoxDomain {
                prefix: names[2].to_owned(),
                root: names[3].to_owned(),
            };
            let mut link = IoxLink::new(names[1], names[0], &domain);
            echo_loop(&mut link.rx, &mut link.tx);
        }
        other => panic!("unknown role {other}"),
    }
}

/// The child's fd 0 and 1, set up by the parent for this role.
pub(crate) fn std_fds() -> (FdRx<File>, FdTx<File>) {
    // SAFETY: the parent made fds 0 and 1 of this child a pipe or socket for
    // this role; nothing else in this process reads stdin or writes stdout,
    // so these Files are their only owners.
    unsafe {
        (
            FdRx(File::from(OwnedFd::from_raw_fd(0))),
            FdTx(File::from(OwnedFd::from_raw_fd(1))),
        )
    }
}

// ---------------------------------------------------------------------------
// Rings in POSIX segments
// ---------------------------------------------------------------------------

/// One SPSC ring in its own POSIX segment (unlinked on drop, or earlier).
pub(crate) struct SpscSegment {
    shm: PosixShm,
    ring: SpscRing<u64, Mapping>,
}

impl SpscSegment {
    pub(crate) fn new(tag: &str, opts: RingOptions) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "/shm-bench-ring-{}-{tag}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let size = SpscRing::<u64>::required_size(CAPACITY);
        let shm = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, size)
            .expect("create POSIX segment");
        let ring = SpscRing::create(shm.map().expect("map"), CAPACITY, opts).expect("create ring");
        SpscSegment { shm, ring }
    }
}

/// Two rings: `out` (this side produces) and `back` (the peer produces).
pub(crate) struct RingLink {
    out: SpscSegment,
    back: SpscSegment,
}

impl RingLink {
    pub(crate) fn new(tag: &str, opts: RingOptions) -> Self {
        RingLink {
            out: SpscSegment::new(tag, opts),
            back: SpscSegment::new(tag, opts),
        }
    }

    pub(crate) fn names(&self) -> String {
        format!(
            "{},{}",
            self.out.shm.name().as_str(),
            self.back.shm.name().as_str()
        )
    }

    pub(crate) fn local_ends(&self) -> (Producer<u64, Mapping>, Consumer<u64, Mapping>) {
        (
            self.out.ring.producer().expect("producer"),
            self.back.ring.consumer().expect("consumer"),
        )
    }

    pub(crate) fn remote_ends(&self) -> (Consumer<u64, Mapping>, Producer<u64, Mapping>) {
        (
            self.out.ring.consumer().expect("consumer"),
            self.back.ring.producer().expect("producer"),
        )
    }

    /// Once the peer has attached, the names are no longer needed.
    pub(crate) fn unlink(&self) {
        let _ = self.out.shm.unlink();
        let _ = self.back.shm.unlink();
    }
}

/// What a child does with the names of a [`RingLink`].
pub(crate) fn attach_remote_ends(
    names: &[&str],
) -> (Consumer<u64, Mapping>, Producer<u64, Mapping>) {
    let attach = |name: &str| {
        let map = PosixShm::open(name)
            .expect("open segment")
            .map()
            .expect("map");
        SpscRing::<u64, Mapping>::attach(map).expect("attach ring")
    };
    let out = attach(names[0]);
    let back = attach(names[1]);
    (
        out.consumer().expect("consumer"),
        back.producer().expect("producer"),
    )
}

// ---------------------------------------------------------------------------
// Peers set up once per benchmark
// ---------------------------------------------------------------------------

/// Our rings to a child process running `role` on `cpu`.
pub(crate) struct RingProcess {
    tx: Producer<u64, Mapping>,
    rx: Consumer<u64, Mapping>,
    peer: Peer,
    _link: RingLink,
}

impl RingProcess {
    pub(crate) fn start(role: &'static str, opts: RingOptions, cpu: Option<usize>) -> Self {
        let link = RingLink::new(role, opts);
        let (tx, mut rx) = link.local_ends();
        let child = Peer::spawn(role, cpu, &link.names(), Stdio::null(), Stdio::null());
        let peer = Peer::new(child, role);
        expect_ready(&mut rx, role);
        link.unlink();
        RingProcess {
            tx,
            rx,
            peer,
            _link: link,
        }
    }

    pub(crate) fn stop(mut self) {
        self.tx.send(QUIT);
        self.peer.finish();
    }
}

/// A thread on the other core running a loop over the peer's ends.
pub(crate) struct ThreadPeer {
    handle: Option<thread::JoinHandle<()>>,
}

impl ThreadPeer {
    pub(crate) fn spawn(work: impl FnOnce() + Send + 'static) -> Self {
        let handle = thread::spawn(move || {
            pin_slot(1);
            work();
        });
        ThreadPeer {
            handle: Some(handle),
        }
    }

    /// After QUIT was sent.
    pub(crate) fn finish(mut self) {
        watchdog(STEP_LIMIT_S);
        let handle = self.handle.take().expect("finished twice");
        handle.join().expect("peer thread panicked");
        watchdog(0);
    }
}

/// A pipe pair (`fd-*` roles): the child's stdin and stdout.
pub(crate) struct PipeProcess {
    tx: FdTx<ChildStdin>,
    rx: FdRx<ChildStdout>,
    peer: Peer,
}

impl PipeProcess {
    pub(crate) fn start(role: &'static str, cpu: Option<usize>) -> Self {
        let mut child = Peer::spawn(role, cpu, "", Stdio::piped(), Stdio::piped());
        let tx = FdTx(child.stdin.take().expect("child stdin"));
        let mut rx = FdRx(child.stdout.take().expect("child stdout"));
        let peer = Peer::new(child, role);
        expect_ready(&mut rx, role);
        PipeProcess { tx, rx, peer }
    }

    pub(crate) fn stop(mut self) {
        self.tx.send(QUIT);
        drop(self.tx);
        self.peer.finish();
    }
}

/// A Unix stream socket pair: the child's stdin and stdout are its end.
pub(crate) struct SocketProcess {
    tx: FdTx<UnixStream>,
    rx: FdRx<UnixStream>,
    peer: Peer,
}

impl SocketProcess {
    pub(crate) fn start(role: &'static str, cpu: Option<usize>) -> Self {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let theirs_out = theirs.try_clone().expect("dup");
        let child = Peer::spawn(
            role,
            cpu,
            "",
            Stdio::from(OwnedFd::from(theirs)),
            Stdio::from(OwnedFd::from(theirs_out)),
        );
        let peer = Peer::new(child, role);
        let tx = FdTx(ours.try_clone().expect("dup"));
        let mut rx = FdRx(ours);
        expect_ready(&mut rx, role);
        SocketProcess { tx, rx, peer }
    }

    pub(crate) fn stop(mut self) {
        self.tx.send(QUIT);
        self.peer.finish();
    }
}

/// An iceoryx2 node with a publisher on one service and a subscriber on
/// another. Fields drop in order: ports, then services, then the node.
pub(crate) struct IoxLink {
    tx: IoxTx,
    rx: IoxRx,
    _services: Vec<Box<dyn std::any::Any>>,
    _node: iceoryx2::node::Node<ipc::Service>,
}

impl IoxLink {
    pub(crate) fn new(publish_to: &str, subscribe_to: &str, domain: &IoxDomain) -> Self {
        iceoryx2::prelude::set_log_level(LogLevel::Error);
        let node = NodeBuilder::new()
            .config(&domain.config())
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .expect("iceoryx2 node");
        let service = |name: &str| {
            node.service_builder(&ServiceName::new(name).expect("service name"))
                .publish_subscribe::<u64>()
                .history_size(0)
                .open_or_create()
                .expect("iceoryx2 service")
        };
        let out = service(publish_to);
        let back = service(subscribe_to);
        let tx = IoxTx(out.publisher_builder().create().expect("publisher"));
        let rx = IoxRx(back.subscriber_builder().create().expect("subscriber"));
        IoxLink {
            tx,
            rx,
            _services: vec![Box::new(out), Box::new(back)],
            _node: node,
        }
    }
}

/// iceoryx2 publish-subscribe to a child process that echoes.
pub(crate) struct IoxProcess {
    link: IoxLink,
    peer: Peer,
    domain: IoxDomain,
}

impl IoxProcess {
    pub(crate) fn start(cpu: Option<usize>) -> Self {
        IoxDomain::remove_stale("ring");
        let domain = IoxDomain::new("ring");
        let (ping, pong) = ("shm-bench-ring/ping", "shm-bench-ring/pong");
        let mut link = IoxLink::new(ping, pong, &domain);
        let names = format!("{ping},{pong},{},{}", domain.prefix, domain.root);
        let child = Peer::spawn("iceoryx2-echo", cpu, &names, Stdio::null(), Stdio::null());
        let peer = Peer::new(child, "iceoryx2-echo");
        // Samples sent before the child's subscriber connects are lost
        // (history 0): probe until one comes back, then drain the rest.
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            link.tx.send(READY);
            if link.rx.recv_within(Duration::from_millis(20)).is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "iceoryx2 echo did not answer within {SETUP_TIMEOUT:?}"
            );
        }
        thread::sleep(Duration::from_millis(50));
        while link.rx.try_recv().is_some() {}
        IoxProcess { link, peer, domain }
    }

    pub(crate) fn stop(self) {
        let IoxProcess {
            mut link,
            peer,
            domain,
        } = self;
        link.tx.send(QUIT);
        peer.finish();
        drop(link);
        domain.remove();
    }
}

/// A peer set up once per benchmark: this side's two ends, and a clean stop.
pub(crate) trait Link {
    type Tx: Sender;
    type Rx: Receiver;
    fn ends(&mut self) -> (&mut Self::Tx, &mut Self::Rx);
    fn stop(self);
}

impl Link for RingProcess {
    type Tx = Producer<u64, Mapping>;
    type Rx = Consumer<u64, Mapping>;
    fn ends(&mut self) -> (&mut Self::Tx, &mut Self::Rx) {
        (&mut self.tx, &mut self.rx)
    }
    fn stop(self) {
        RingProcess::stop(self)
    }
}

impl Link for PipeProcess {
    type Tx = FdTx<ChildStdin>;
    type Rx = FdRx<ChildStdout>;
    fn ends(&mut self) -> (&mut Self::Tx, &mut Self::Rx) {
        (&mut self.tx, &mut self.rx)
    }
    fn stop(self) {
        PipeProcess::stop(self)
    }
}

impl Link for SocketProcess {
    type Tx = FdTx<UnixStream>;
    type Rx = FdRx<UnixStream>;
    fn ends(&mut self) -> (&mut Self::Tx, &mut Self::Rx) {
        (&mut self.tx, &mut self.rx)
    }
    fn stop(self) {
        SocketProcess::stop(self)
    }
}

impl Link for IoxProcess {
    type Tx = IoxTx;
    type Rx = IoxRx;
    fn ends(&mut self) -> (&mut Self::Tx, &mut Self::Rx) {
        (&mut self.link.tx, &mut self.link.rx)
    }
    fn stop(self) {
        IoxProcess::stop(self)
    }
}

/// This side's ends of a pair of queues whose other ends a [`ThreadPeer`] runs.
pub(crate) struct ThreadLink<T, R> {
    tx: T,
    rx: R,
    peer: ThreadPeer,
    /// Segments that must outlive both ends.
    _keep: Option<RingLink>,
}

impl<T: Sender, R: Receiver> ThreadLink<T, R> {
    /// Starts `work` on the peer thread and waits for its READY.
    pub(crate) fn start(
        tx: T,
        mut rx: R,
        keep: Option<RingLink>,
        work: impl FnOnce() + Send + 'static,
    ) -> Self {
        let peer = ThreadPeer::spawn(work);
        expect_ready(&mut rx, "peer thread");
        ThreadLink {
            tx,
            rx,
            peer,
            _keep: keep,
        }
    }
}

impl<T: Sender, R: Receiver> Link for ThreadLink<T, R> {
    type Tx = T;
    type Rx = R;
    fn ends(&mut self) -> (&mut T, &mut R) {
        (&mut self.tx, &mut self.rx)
    }
    fn stop(mut self) {
        self.tx.send(QUIT);
        self.peer.finish();
    }
}

// ---------------------------------------------------------------------------
// a. SPSC throughput between two threads
// ---------------------------------------------------------------------------

/// Runs `produce` here (pinned to CPU slot 0 by the caller) and `consume` on
/// a fresh thread pinned to slot 1; the clock starts when the consumer runs.
pub(crate) fn two_threads<P, C>(
    n: u64,
    (mut p, c): (P, C),
    produce: impl FnOnce(&mut P, u64),
    consume: fn(C, u64) -> u64,
) -> Duration
where
    C: Send + 'static,
{
    watchdog(STEP_LIMIT_S);
    let (ready_tx, ready_rx) = mpsc::channel();
    let consumer = thread::spawn(move || {
        pin_slot(1);
        ready_tx.send(()).expect("ready");
        consume(c, n)
    });
    ready_rx
        .recv_timeout(SETUP_TIMEOUT)
        .expect("consumer thread did not start");
    let start = Instant::now();
    produce(&mut p, n);
    let sum = consumer.join().expect("consumer panicked");
    let elapsed = start.elapsed();
    watchdog(0);
    assert_eq!(sum, expected_sum(n), "the consumer lost or changed items");
    elapsed
}

pub(crate) fn send_all(tx: &mut impl Sender, n: u64) {
    for i in 0..n {
        tx.send(i);
    }
}

pub(crate) fn recv_all(mut rx: impl Receiver, n: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(rx.recv());
    }
    sum
}

/// Feeds `push` (which returns how many of the slice it took) batches of
/// `BATCH` consecutive values.
#[inline]
pub(crate) fn push_batches(n: u64, mut push: impl FnMut(&[u64]) -> usize) {
    let mut buf = [0u64; BATCH];
    let mut next = 0u64;
    let mut backoff = Backoff::new();
    while next < n {
        let k = (n - next).min(BATCH as u64) as usize;
        for (j, slot) in buf[..k].iter_mut().enumerate() {
            *slot = next + j as u64;
        }
        let mut off = 0;
        while off < k {
            let pushed = push(&buf[off..k]);
            if pushed == 0 {
                backoff.snooze();
            } else {
                backoff = Backoff::new();
            }
            off += pushed;
        }
        next += k as u64;
    }
}

/// Calls `pop` (which fills the front of the slice and returns how many)
/// until `n` values arrived; returns their sum.
#[inline]
pub(crate) fn pop_batches(n: u64, mut pop: impl FnMut(&mut [u64]) -> usize) -> u64 {
    let mut buf = [0u64; BATCH];
    let mut left = n;
    let mut sum = 0u64;
    let mut backoff = Backoff::new();
    while left > 0 {
        let want = left.min(BATCH as u64) as usize;
        let got = pop(&mut buf[..want]);
        if got == 0 {
            backoff.snooze();
            continue;
        }
        backoff = Backoff::new();
        for v in &buf[..got] {
            sum = sum.wrapping_add(*v);
        }
        left -= got as u64;
    }
    sum
}

/// rtrb's chunk API: reserve up to `values.len()` slots, fill, commit.
#[inline]
pub(crate) fn rtrb_push_chunk(p: &mut rtrb::Producer<u64>, values: &[u64]) -> usize {
    let n = match p.write_chunk_uninit(values.len()) {
        Ok(chunk) => return chunk.fill_from_iter(values.iter().copied()),
        Err(rtrb::chunks::ChunkError::TooFewSlots(free)) => free,
    };
    if n == 0 {
        return 0;
    }
    let chunk = p.write_chunk_uninit(n).expect("slots reported free");
    chunk.fill_from_iter(values[..n].iter().copied())
}

/// rtrb's chunk API: borrow up to `out.len()` items, copy them out, commit.
#[inline]
pub(crate) fn rtrb_pop_chunk(c: &mut rtrb::Consumer<u64>, out: &mut [u64]) -> usize {
    let chunk = match c.read_chunk(out.len()) {
        Ok(chunk) => chunk,
        Err(rtrb::chunks::ChunkError::TooFewSlots(0)) => return 0,
        Err(rtrb::chunks::ChunkError::TooFewSlots(ready)) => {
            c.read_chunk(ready).expect("items reported ready")
        }
    };
    let (a, b) = chunk.as_slices();
    out[..a.len()].copy_from_slice(a);
    out[a.len()..a.len() + b.len()].copy_from_slice(b);
    let n = chunk.len();
    chunk.commit_all();
    n
}

/// The batch floor: the least any SPSC ring of `u64`s between two threads
/// can do per batch. Copy the items into a shared array with `memcpy`, then
/// publish one index (Release); each side keeps the other's index cached
/// and reloads it only when the cache says full or empty, and then lets a
/// streaming peer get ahead first ([`floor_slip`]: the best order of lines
/// crossing between the cores that is known). No header, no roles, no
/// checks of shared indices, no crash safety: what every real ring (ours,
/// rtrb) adds to it is its cost above this.
pub(crate) struct FloorRing {
    slots: Box<[std::cell::UnsafeCell<u64>]>,
    head: crossbeam_utils::CachePadded<AtomicUsize>,
    tail: crossbeam_utils::CachePadded<AtomicUsize>,
}

// SAFETY: a slot is written only by the producer while it is free (between
// the head the producer loaded and the tail it has not yet published) and
// read only by the consumer once published; the indices' Release/Acquire
// order the two.
unsafe impl Sync for FloorRing {}

/// The producer end of a [`FloorRing`].
pub(crate) struct FloorTx {
    ring: Arc<FloorRing>,
    tail: usize,
    head: usize,
}

/// The consumer end of a [`FloorRing`].
pub(crate) struct FloorRx {
    ring: Arc<FloorRing>,
    head: usize,
    tail: usize,
}

/// A [`FloorRing`] of [`CAPACITY`] slots, split into its ends.
pub(crate) fn floor_ring() -> (FloorTx, FloorRx) {
    let ring = Arc::new(FloorRing {
        slots: (0..CAPACITY).map(|_| 0.into()).collect(),
        head: Default::default(),
        tail: Default::default(),
    });
    let rx = FloorRx {
        ring: Arc::clone(&ring),
        head: 0,
        tail: 0,
    };
    (
        FloorTx {
            ring,
            tail: 0,
            head: 0,
        },
        rx,
    )
}

/// "Temporal slipping" (FastForward) in its most eager form: a side that
/// reloaded its peer's index and found `room` (items or free slots) between
/// 2 and an eighth of the ring looks again, 16 spin-loop hints apart, at
/// most 8 times, while the peer makes progress, so that the two sides stop
/// writing and reading the same lines. Best for a steady stream, which is
/// all the floor measures; our ring waits this long only once a streak of
/// refreshes says the peer streams (`shm-ring/src/slip.rs`), so that a
/// burst that ended is not waited for.
#[cold]
#[inline(never)]
fn floor_slip(mut room: usize, mut reload: impl FnMut() -> usize) -> usize {
    let enough = CAPACITY / 8;
    if room < 2 || room >= enough {
        return room;
    }
    for _ in 0..8 {
        for _ in 0..16 {
            std::hint::spin_loop();
        }
        let now = reload();
        if now >= enough || now == room {
            return now;
        }
        room = now;
    }
    room
}

impl FloorTx {
    /// Copies as many of `values` as fit; returns how many.
    #[inline]
    pub(crate) fn push(&mut self, values: &[u64]) -> usize {
        if CAPACITY - (self.tail - self.head) < values.len() {
            self.head = self.ring.head.load(Ordering::Acquire);
            let room = CAPACITY - (self.tail - self.head);
            if room >= 2 {
                floor_slip(room, || {
                    self.head = self.ring.head.load(Ordering::Acquire);
                    CAPACITY - (self.tail - self.head)
                });
            }
        }
        let n = values.len().min(CAPACITY - (self.tail - self.head));
        let at = self.tail % CAPACITY;
        let first = n.min(CAPACITY - at);
        let base = self.ring.slots.as_ptr().cast_mut().cast::<u64>();
        // SAFETY: `at + first <= CAPACITY` and `n - first <= at`: both runs
        // are inside `slots`, and free (the consumer's head is at most `n`
        // slots behind a lap); `values` is a private slice.
        unsafe {
            std::ptr::copy_nonoverlapping(values.as_ptr(), base.add(at), first);
            if first < n {
                std::ptr::copy_nonoverlapping(values.as_ptr().add(first), base, n - first);
            }
        }
        self.tail += n;
        self.ring.tail.store(self.tail, Ordering::Release);
        n
    }
}

impl FloorRx {
    /// Copies up to `out.len()` published items out; returns how many.
    #[inline]
    pub(crate) fn pop(&mut self, out: &mut [u64]) -> usize {
        if self.tail - self.head < out.len() {
            self.tail = self.ring.tail.load(Ordering::Acquire);
            if self.tail - self.head >= 2 {
                floor_slip(self.tail - self.head, || {
                    self.tail = self.ring.tail.load(Ordering::Acquire);
                    self.tail - self.head
                });
            }
        }
        let n = out.len().min(self.tail - self.head);
        let at = self.head % CAPACITY;
        let first = n.min(CAPACITY - at);
        let base = self.ring.slots.as_ptr().cast::<u64>();
        // SAFETY: both runs are inside `slots` (as in `push`) and published
        // (below the tail loaded with Acquire); `out` is a private slice.
        unsafe {
            std::ptr::copy_nonoverlapping(base.add(at), out.as_mut_ptr(), first);
            if first < n {
                std::ptr::copy_nonoverlapping(base, out.as_mut_ptr().add(first), n - first);
            }
        }
        self.head += n;
        self.ring.head.store(self.head, Ordering::Release);
        n
    }
}

// ---------------------------------------------------------------------------
// d. MPMC throughput
// ---------------------------------------------------------------------------

pub(crate) type Job<T> = Box<dyn FnOnce() -> T + Send>;

/// Splits `n` into `k` near-equal parts.
pub(crate) fn split(n: u64, k: usize) -> Vec<u64> {
    let k64 = k as u64;
    (0..k64).map(|i| n / k64 + u64::from(i < n % k64)).collect()
}

/// The first value of each producer's range: ranges tile `0..n`.
pub(crate) fn starts(quotas: &[u64]) -> Vec<u64> {
    quotas
        .iter()
        .scan(0, |acc, &q| {
            let s = *acc;
            *acc += q;
            Some(s)
        })
        .collect()
}

/// Runs producers and consumers on their own threads, spread over the CPUs;
/// the clock starts when all of them are ready and stops when all are done.
pub(crate) fn run_jobs(producers: Vec<Job<()>>, consumers: Vec<Job<u64>>) -> (Duration, u64) {
    watchdog(STEP_LIMIT_S);
    let total = producers.len() + consumers.len();
    let ready = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let spawn = |slot: usize, job: Job<u64>| {
        let (ready, go) = (Arc::clone(&ready), Arc::clone(&go));
        thread::spawn(move || {
            pin_slot(slot);
            ready.fetch_add(1, Ordering::AcqRel);
            while !go.load(Ordering::Acquire) {
                thread::yield_now();
            }
            job()
        })
    };
    let mut handles = Vec::with_capacity(total);
    // Interleave so that producer i and consumer i sit on different CPUs.
    for (i, job) in producers.into_iter().enumerate() {
        handles.push(spawn(
            2 * i,
            Box::new(move || {
                job();
                0
            }),
        ));
    }
    for (i, job) in consumers.into_iter().enumerate() {
        handles.push(spawn(2 * i + 1, job));
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while ready.load(Ordering::Acquire) < total {
        assert!(Instant::now() < deadline, "worker threads did not start");
        thread::sleep(Duration::from_micros(50));
    }
    let start = Instant::now();
    go.store(true, Ordering::Release);
    let mut sum = 0u64;
    for h in handles {
        sum = sum.wrapping_add(h.join().expect("worker panicked"));
    }
    let elapsed = start.elapsed();
    watchdog(0);
    (elapsed, sum)
}

#[derive(Clone, Copy)]
pub(crate) enum MpmcPeer {
    OursSingle,
    OursBatch,
    Crossbeam,
    StdSyncChannel,
}

pub(crate) fn mpmc_step(peer: MpmcPeer, n: u64, producers: usize, consumers: usize) -> Duration {
    let pq = split(n, producers);
    let ps = starts(&pq);
    let cq = split(n, consumers);
    let mut prod: Vec<Job<()>> = Vec::new();
    let mut cons: Vec<Job<u64>> = Vec::new();
    match peer {
        MpmcPeer::OursSingle => {
            let ring = MpmcRing::<u64, _>::new_heap(CAPACITY).expect("ring");
            for (&s, &q) in ps.iter().zip(&pq) {
                let ring = ring.clone();
                prod.push(Box::new(move || {
                    for v in s..s + q {
                        let mut v = v;
                        let mut backoff = Backoff::new();
                        while let Err(PushError::Full(back)) = ring.push(v) {
                            v = back;
                            backoff.snooze();
                        }
                    }
                }));
            }
            for &q in &cq {
                let ring = ring.clone();
                cons.push(Box::new(move || {
                    let mut sum = 0u64;
                    for _ in 0..q {
                        let mut backoff = Backoff::new();
                        loop {
                            if let Ok(v) = ring.pop() {
                                sum = sum.wrapping_add(v);
                                break;
                            }
                            backoff.snooze();
                        }
                    }
                    sum
                }));
            }
        }
        MpmcPeer::OursBatch => {
            let ring = MpmcRing::<u64, _>::new_heap(CAPACITY).expect("ring");
            for (&s, &q) in ps.iter().zip(&pq) {
                let ring = ring.clone();
                prod.push(Box::new(move || {
                    // Values s..s+q: push_batches counts from 0, so offset them.
                    push_batches(q, |v| {
                        let mut shifted = [0u64; BATCH];
                        for (d, x) in shifted.iter_mut().zip(v) {
                            *d = x + s;
                        }
                        ring.push_slice(&shifted[..v.len()])
                    })
                }));
            }
            for &q in &cq {
                let ring = ring.clone();
                cons.push(Box::new(move || pop_batches(q, |out| ring.pop_into(out))));
            }
        }
        MpmcPeer::Crossbeam => {
            let queue = Arc::new(ArrayQueue::<u64>::new(CAPACITY));
            for (&s, &q) in ps.iter().zip(&pq) {
                let queue = Arc::clone(&queue);
                prod.push(Box::new(move || {
                    for v in s..s + q {
                        let mut v = v;
                        let mut backoff = Backoff::new();
                        while let Err(back) = queue.push(v) {
                            v = back;
                            backoff.snooze();
                        }
                    }
                }));
            }
            for &q in &cq {
                let queue = Arc::clone(&queue);
                cons.push(Box::new(move || {
                    let mut sum = 0u64;
                    for _ in 0..q {
                        let mut backoff = Backoff::new();
                        loop {
                            if let Some(v) = queue.pop() {
                                sum = sum.wrapping_add(v);
                                break;
                            }
                            backoff.snooze();
                        }
                    }
                    sum
                }));
            }
        }
        MpmcPeer::StdSyncChannel => {
            let (tx, rx) = mpsc::sync_channel::<u64>(CAPACITY);
            for (&s, &q) in ps.iter().zip(&pq) {
                let tx = tx.clone();
                prod.push(Box::new(move || {
                    for v in s..s + q {
                        tx.send(v).expect("send");
                    }
                }));
            }
            drop(tx);
            cons.push(Box::new(move || {
                let mut sum = 0u64;
                for _ in 0..n {
                    sum = sum.wrapping_add(rx.recv().expect("recv"));
                }
                sum
            }));
        }
    }
    let (elapsed, sum) = run_jobs(prod, cons);
    assert_eq!(sum, expected_sum(n), "consumers lost or changed items");
    elapsed
}

// ---------------------------------------------------------------------------
// Our chunk API, and the thread peers both benches start
// ---------------------------------------------------------------------------

/// Our chunk API, as [`rtrb_push_chunk`] uses rtrb's: reserve up to
/// `values.len()` slots, fill them in place with one copy
/// (`write_slice`, as rtrb's `fill_from_iter`), commit.
#[inline]
pub(crate) fn ours_push_chunk<R>(p: &mut Producer<u64, R>, values: &[u64]) -> usize {
    let n = match p.write_chunk(values.len()) {
        Ok(mut chunk) => {
            chunk.write_slice(values);
            return chunk.commit_all();
        }
        Err(shm::ring::BulkError::TooFew { available, .. }) => available,
        Err(e) => panic!("write_chunk: {e}"),
    };
    if n == 0 {
        return 0;
    }
    let mut chunk = p.write_chunk(n).expect("slots reported free");
    chunk.write_slice(&values[..n]);
    chunk.commit_all()
}

/// Our chunk API, as [`rtrb_pop_chunk`] uses rtrb's: borrow up to
/// `out.len()` items in place, copy them out (`read_slice`, as rtrb's
/// `as_slices` + copy), commit.
#[inline]
pub(crate) fn ours_pop_chunk<R>(c: &mut Consumer<u64, R>, out: &mut [u64]) -> usize {
    let chunk = match c.read_chunk(out.len()) {
        Ok(chunk) => chunk,
        Err(shm::ring::BulkError::TooFew { available: 0, .. }) => return 0,
        Err(shm::ring::BulkError::TooFew { available, .. }) => {
            c.read_chunk(available).expect("items reported ready")
        }
        Err(e) => panic!("read_chunk: {e}"),
    };
    let n = chunk.read_slice(out);
    chunk.commit_all();
    n
}

/// Our rings in POSIX segments to a sink thread on the other CPU: the same
/// ring and protocol as [`RingProcess`] with `ring-sink`, between threads.
pub(crate) fn sink_thread_link() -> impl Link {
    let link = RingLink::new("sink-thread", RingOptions::new());
    let (tx, rx) = link.local_ends();
    let (mut peer_rx, mut peer_tx) = link.remote_ends();
    ThreadLink::start(tx, rx, Some(link), move || {
        sink_loop(&mut peer_rx, &mut peer_tx)
    })
}

/// [`sink_thread_link`] with our bulk calls on both sides.
pub(crate) fn bulk_sink_thread_link(
) -> impl Link<Tx = Producer<u64, Mapping>, Rx = Consumer<u64, Mapping>> {
    let link = RingLink::new("bulk-sink-thread", RingOptions::new());
    let (tx, rx) = link.local_ends();
    let (mut peer_rx, mut peer_tx) = link.remote_ends();
    ThreadLink::start(tx, rx, Some(link), move || {
        bulk_sink_loop(&mut peer_rx, &mut peer_tx)
    })
}

/// Two of our heap rings to an echo thread on the other CPU.
pub(crate) fn ours_echo_thread_link() -> impl Link {
    let (tx, mut peer_rx) = SpscRing::<u64>::new_heap(CAPACITY).expect("ring");
    let (mut peer_tx, rx) = SpscRing::<u64>::new_heap(CAPACITY).expect("ring");
    ThreadLink::start(tx, rx, None, move || echo_loop(&mut peer_rx, &mut peer_tx))
}

/// Two rtrb rings to an echo thread on the other CPU.
pub(crate) fn rtrb_echo_thread_link() -> impl Link {
    let (tx, mut peer_rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    let (mut peer_tx, rx) = rtrb::RingBuffer::<u64>::new(CAPACITY);
    ThreadLink::start(tx, rx, None, move || echo_loop(&mut peer_rx, &mut peer_tx))
}
