//! The blocking calls and the edges of the public API: timeouts are kept
//! (neither much early nor much late), a sleeper is woken by the other side
//! (futex rings) or notices by polling (plain rings), and arguments at the
//! extremes (a timeout of `Duration::MAX`, an impossible capacity) give an
//! answer or an error, never a panic.
//!
//! Then what a blocking call does when the other side dies: a consumer
//! waiting with `Duration::MAX` whose producer process is killed gets what
//! was published, then `PeerGone` within a few slices (and the producer of
//! a killed consumer likewise); a wake-up lost to a process killed between
//! publishing and waking costs one slice, not a hang; a sleeper killed in
//! its futex wait is forgotten by the next wake-up, after which pushes make
//! no syscall; `is_abandoned` for a role never taken, given back and held by
//! a dead process; and each `WaitStrategy` waits as it says. The dead peers
//! are real child processes (this test binary run again, see
//! `shm_testkit::child`), killed with `SIGKILL`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Running, HANG};
use shm_ring::{MpmcRing, PopError, PushError, RingError, RingOptions, SpscRing, WaitStrategy};
use shm_segment::{HeapRegion, Mapping, PosixOptions, PosixShm, Region};

const WAIT: Duration = Duration::from_millis(30);
/// How late a timed-out call may return on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(5);

fn assert_timed(t0: Instant, what: &str) {
    let took = t0.elapsed();
    assert!(
        took >= WAIT,
        "{what}: gave up after {took:?}, before its {WAIT:?}"
    );
    assert!(
        took < WAIT + SLACK,
        "{what}: took {took:?} for a {WAIT:?} timeout"
    );
}

fn spsc(cap: usize, blocking: bool) -> SpscRing<u64, HeapRegion> {
    let region = HeapRegion::new(SpscRing::<u64>::required_size(cap));
    SpscRing::create(region, cap, RingOptions::new().blocking(blocking)).unwrap()
}

fn mpmc(cap: usize, blocking: bool) -> MpmcRing<u64, HeapRegion> {
    let region = HeapRegion::new(MpmcRing::<u64>::required_size(cap));
    MpmcRing::create(region, cap, RingOptions::new().blocking(blocking)).unwrap()
}

#[test]
fn timeouts_are_kept() {
    for blocking in [false, true] {
        let ring = spsc(2, blocking);
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let t0 = Instant::now();
        assert_eq!(rx.pop_blocking(WAIT), Err(PopError::Empty));
        assert_timed(t0, "SPSC pop_blocking");
        tx.push_slice(&[1, 2]);
        let t0 = Instant::now();
        assert_eq!(tx.push_blocking(3, WAIT), Err(PushError::Full(3)));
        assert_timed(t0, "SPSC push_blocking");

        let ring = mpmc(2, blocking);
        let t0 = Instant::now();
        assert_eq!(ring.pop_blocking(WAIT), Err(PopError::Empty));
        assert_timed(t0, "MPMC pop_blocking");
        ring.push_slice(&[1, 2]);
        let t0 = Instant::now();
        assert_eq!(ring.push_blocking(3, WAIT), Err(PushError::Full(3)));
        assert_timed(t0, "MPMC push_blocking");
    }
}

/// A sleeping consumer is woken by a push, a sleeping producer by a pop,
/// long before their timeouts, on both kinds of ring and with and without
/// futexes; many times, so that a lost wake-up would show up as a timeout.
#[test]
fn sleepers_are_woken() {
    const ROUNDS: u64 = 300;
    let long = Duration::from_secs(20);
    for blocking in [false, true] {
        let t0 = Instant::now();
        let ring = spsc(1, blocking);
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..ROUNDS {
                    tx.push_blocking(i, long).expect("producer not woken");
                }
            });
            for i in 0..ROUNDS {
                assert_eq!(rx.pop_blocking(long), Ok(i), "consumer not woken");
            }
        });
        let ring = mpmc(1, blocking);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..ROUNDS {
                    ring.push_blocking(i, long).expect("producer not woken");
                }
            });
            for i in 0..ROUNDS {
                assert_eq!(ring.pop_blocking(long), Ok(i), "consumer not woken");
            }
        });
        let took = t0.elapsed();
        eprintln!("blocking={blocking}: {ROUNDS} hand-offs each way in {took:?}");
        assert!(took < long, "hand-offs took {took:?}: wake-ups were lost");
    }
}

/// `Duration::MAX` is how callers say "wait as long as it takes" (std's
/// `recv_timeout` and crossbeam accept it). A call that can succeed at once
/// must do so, not panic computing its deadline.
#[test]
fn longest_timeout_does_not_panic() {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let ring = spsc(2, true);
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        tx.push_blocking(1, Duration::MAX).unwrap();
        assert_eq!(rx.pop_blocking(Duration::MAX), Ok(1));
        let ring = mpmc(2, true);
        ring.push_blocking(1, Duration::MAX).unwrap();
        assert_eq!(ring.pop_blocking(Duration::MAX), Ok(1));
    }));
    if let Err(panic) = outcome {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        panic!("a blocking call with timeout Duration::MAX panicked: {msg}");
    }
}

/// The heap constructors return a `Result`: an impossible capacity is an
/// error, not a panic or an abort.
#[test]
fn impossible_heap_capacities_are_errors() {
    // Not a power of two: refused by `create`.
    assert!(matches!(
        SpscRing::<u64>::new_heap(3),
        Err(RingError::Capacity { capacity: 3, .. })
    ));
    assert!(matches!(
        MpmcRing::<u64>::new_heap(0),
        Err(RingError::Capacity { capacity: 0, .. })
    ));
    // So large that the byte size overflows.
    let spsc = catch_unwind(|| SpscRing::<u64>::new_heap(1 << 62).map(|_| ()));
    let mpmc = catch_unwind(|| MpmcRing::<u64>::new_heap(1 << 62).map(|_| ()));
    assert!(
        matches!(spsc, Ok(Err(RingError::Capacity { .. }))),
        "SpscRing::new_heap(1 << 62) panicked instead of returning RingError::Capacity"
    );
    assert!(
        matches!(mpmc, Ok(Err(RingError::Capacity { .. }))),
        "MpmcRing::new_heap(1 << 62) panicked instead of returning RingError::Capacity"
    );
}

/// A role given back on drop can be taken again, by another handle too; the
/// position carries over.
#[test]
fn roles_are_given_back() {
    let region = HeapRegion::new(SpscRing::<u64>::required_size(4));
    let ring = SpscRing::<u64, _>::create(&region, 4, RingOptions::new()).unwrap();
    let other = SpscRing::<u64, _>::attach(&region).unwrap();
    let mut tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    let me = std::process::id();
    assert!(
        matches!(other.producer(), Err(RingError::RoleTaken { role: "producer", holder, .. }) if holder.pid == me)
    );
    assert!(
        matches!(other.consumer(), Err(RingError::RoleTaken { role: "consumer", holder, .. }) if holder.pid == me)
    );
    let err: std::io::Error = other.producer().unwrap_err().into();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    tx.push_slice(&[1, 2, 3]);
    drop(tx);
    drop(rx);
    let mut tx = other.producer().unwrap();
    let mut rx = other.consumer().unwrap();
    assert_eq!(rx.pop(), Ok(1));
    tx.push(4).unwrap();
    let mut out = [0; 4];
    assert_eq!(rx.pop_into(&mut out), 3);
    assert_eq!(out[..3], [2, 3, 4]);
}

// ---------------------------------------------------------------------------
// A blocking call never outlives the other side.

/// How soon after `kill -9` of its peer a blocking call must return
/// `PeerGone`. The waiter checks between sleep slices of 10 ms; the
/// rest is slack for a loaded 2-core CI machine.
const GONE_WITHIN: Duration = Duration::from_millis(250);
/// Ring capacity of the cross-process tests.
const CAP: usize = 4;

/// A blocking SPSC ring of `u64` in a fresh POSIX segment (unlinked on drop).
fn posix_ring(what: &str) -> (String, PosixShm, Mapping) {
    let name = common::posix_name(what);
    let size = SpscRing::<u64>::required_size(CAP);
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, size)
        .unwrap();
    let map = shm.map().unwrap();
    SpscRing::<u64, _>::create(&map, CAP, RingOptions::new().blocking(true)).unwrap();
    (name, shm, map)
}

/// Sleepers counted in a `*_WAITERS` word.
fn sleepers(region: &impl Region, at: usize) -> u64 {
    region.load_u64(at, Ordering::Acquire).unwrap() & common::WAITERS_COUNT_MASK
}

/// Waits (at most `HANG`) until someone sleeps on the words at `at`.
fn await_sleeper(region: &impl Region, at: usize, what: &str) {
    assert!(
        common::wait_until(HANG, || sleepers(region, at) > 0),
        "{what} never went to sleep"
    );
}

/// The child side of the cross-process tests, when this process is one:
/// `ARG` is `NAME:ROLE`. It attaches to the ring at NAME and takes a role:
///
/// - `produce`: the producer role; pushes 0, 1, 2; waits to be killed.
/// - `consume`: the consumer role; waits to be killed.
/// - `sleep`: the consumer role; sleeps in `pop_blocking` until killed
///   (the parent never pushes while it lives).
///
/// Each prints `ready` once set. None ends by itself before `HANG`.
fn child_side(test: &str) -> bool {
    if !common::is_child(test) {
        return false;
    }
    let arg = common::child_arg();
    let (name, role) = arg.rsplit_once(':').unwrap();
    let map = PosixShm::open(name).unwrap().map().unwrap();
    let ring = SpscRing::<u64, _>::attach(&map).unwrap();
    let deadline = Instant::now() + HANG;
    match role {
        "produce" => {
            let mut tx = ring.producer().unwrap();
            for v in 0..3 {
                tx.push(v).unwrap();
            }
            println!("ready");
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        "consume" => {
            let _rx = ring.consumer().unwrap();
            println!("ready");
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        "sleep" => {
            let mut rx = ring.consumer().unwrap();
            println!("ready");
            // Ends only if the parent (the producer) died first, or at HANG.
            let got = rx.pop_blocking(HANG);
            assert!(got.is_err(), "the parent pushed nothing, yet got {got:?}");
        }
        other => panic!("unknown child role {other:?}"),
    }
    common::child_done(test);
    true
}

const KILLED_PRODUCER: &str = "consumer_of_a_killed_producer_gets_peer_gone";

/// A consumer asleep in `pop_blocking(Duration::MAX)` whose producer process
/// is killed takes what was published, then gets `PeerGone` soon after the
/// death, and at once on the next call; a new producer makes it wait again.
#[test]
fn consumer_of_a_killed_producer_gets_peer_gone() {
    if child_side(KILLED_PRODUCER) {
        return;
    }
    let (name, shm, map) = posix_ring("gone-producer");
    // Its own mapping, so that the handle can move to a thread.
    let ring = SpscRing::<u64, _>::attach(shm.map().unwrap()).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut child = Running::child(KILLED_PRODUCER, &format!("{name}:produce"));
    child.until("ready", HANG);
    assert!(!rx.is_abandoned(), "held by a live child");

    let (done, results) = mpsc::channel();
    let consumer = std::thread::spawn(move || loop {
        let got = rx.pop_blocking(Duration::MAX);
        let _ = done.send((got, Instant::now()));
        if got.is_err() {
            return rx;
        }
    });
    // The three items, then the consumer sleeps waiting for a fourth.
    for v in 0..3 {
        let (got, _) = results.recv_timeout(HANG).unwrap();
        assert_eq!(got, Ok(v));
    }
    await_sleeper(&map, common::ITEMS_SEQ + 8, "the consumer");
    std::thread::sleep(Duration::from_millis(20));
    let killed = Instant::now();
    child.kill9();
    let (got, at) = results
        .recv_timeout(HANG)
        .expect("pop_blocking(Duration::MAX) outlived its producer");
    let latency = at.saturating_duration_since(killed);
    eprintln!("PeerGone {latency:?} after the kill of its producer");
    assert_eq!(got, Err(PopError::PeerGone));
    assert!(latency < GONE_WITHIN, "PeerGone took {latency:?}");

    let mut rx = consumer.join().unwrap();
    assert!(rx.is_abandoned());
    let t0 = Instant::now();
    assert_eq!(rx.pop_blocking(Duration::MAX), Err(PopError::PeerGone));
    assert!(
        t0.elapsed() < GONE_WITHIN,
        "the second call took {:?}",
        t0.elapsed()
    );
    // The dead producer's role is taken over: waiting makes sense again.
    let mut tx = ring.producer().expect("the role of a dead producer");
    assert!(!rx.is_abandoned());
    assert_eq!(rx.pop_blocking(WAIT), Err(PopError::Empty));
    tx.push(7).unwrap();
    assert_eq!(rx.pop_blocking(Duration::MAX), Ok(7));
}

const KILLED_CONSUMER: &str = "producer_of_a_killed_consumer_gets_peer_gone";

/// A producer waiting in `push_blocking(_, Duration::MAX)` on a full ring
/// whose consumer process is killed gets its value back as `PeerGone`.
#[test]
fn producer_of_a_killed_consumer_gets_peer_gone() {
    if child_side(KILLED_CONSUMER) {
        return;
    }
    let (name, shm, map) = posix_ring("gone-consumer");
    // Its own mapping, so that the handle can move to a thread.
    let ring = SpscRing::<u64, _>::attach(shm.map().unwrap()).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut child = Running::child(KILLED_CONSUMER, &format!("{name}:consume"));
    child.until("ready", HANG);
    assert!(!tx.is_abandoned(), "held by a live child");
    assert_eq!(tx.push_slice(&[0; CAP]), CAP);

    let (done, result) = mpsc::channel();
    let producer = std::thread::spawn(move || {
        let got = tx.push_blocking(9, Duration::MAX);
        let _ = done.send((got, Instant::now()));
        tx
    });
    await_sleeper(&map, common::ROOM_SEQ + 8, "the producer");
    std::thread::sleep(Duration::from_millis(20));
    let killed = Instant::now();
    child.kill9();
    let (got, at) = result
        .recv_timeout(HANG)
        .expect("push_blocking(_, Duration::MAX) outlived its consumer");
    let latency = at.saturating_duration_since(killed);
    eprintln!("PeerGone {latency:?} after the kill of its consumer");
    assert_eq!(got, Err(PushError::PeerGone(9)));
    assert!(latency < GONE_WITHIN, "PeerGone took {latency:?}");
    let mut tx = producer.join().unwrap();
    assert!(tx.is_abandoned());
    // Room left: a push succeeds whether or not anyone consumes.
    let mut rx = ring.consumer().expect("the role of a dead consumer");
    assert_eq!(rx.pop(), Ok(0));
    drop(rx);
    assert!(tx.is_abandoned(), "given back");
    assert_eq!(tx.push_blocking(10, Duration::MAX), Ok(()));
    assert_eq!(
        tx.push_blocking(11, Duration::MAX),
        Err(PushError::PeerGone(11))
    );
}

const KILLED_SLEEPER: &str = "a_sleeper_killed_in_the_futex_is_forgotten";

/// A consumer killed while it sleeps in the futex leaves itself counted as a
/// sleeper. The first push after that wakes nobody and resets the count;
/// every later push makes no `FUTEX_WAKE` syscall.
#[test]
fn a_sleeper_killed_in_the_futex_is_forgotten() {
    if child_side(KILLED_SLEEPER) {
        return;
    }
    let waiters = common::ITEMS_SEQ + 8;
    for attempt in 1.. {
        let (name, _shm, map) = posix_ring("gone-sleeper");
        let ring = SpscRing::<u64, _>::attach(&map).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut child = Running::child(KILLED_SLEEPER, &format!("{name}:sleep"));
        child.until("ready", HANG);
        await_sleeper(&map, waiters, "the child");
        child.kill9();
        // Killed between two sleep slices, it had unregistered: nothing to
        // heal. Try again (rare: a slice is 10 ms, the gap microseconds).
        if sleepers(&map, waiters) == 0 {
            assert!(attempt < 20, "the child was never killed asleep");
            continue;
        }
        assert_eq!(sleepers(&map, waiters), 1);
        let before = shm_ring::thread_counts().futex_wakes;
        tx.push(1).unwrap();
        assert_eq!(
            shm_ring::thread_counts().futex_wakes,
            before + 1,
            "the first push wakes (nobody)"
        );
        assert_eq!(sleepers(&map, waiters), 0, "the count was not healed");
        let mut rx = ring.consumer().expect("the role of a dead consumer");
        for v in 2..200 {
            tx.push(v).unwrap();
            assert_eq!(rx.pop(), Ok(v - 1));
        }
        assert_eq!(
            shm_ring::thread_counts().futex_wakes,
            before + 1,
            "pushes with no sleeper made FUTEX_WAKE syscalls"
        );
        return;
    }
}

/// The same healing on an MPMC ring, and for producers' sleepers: a count
/// left by a dead sleeper (written as it would be left) costs one syscall.
#[test]
fn mpmc_sleeper_counts_heal() {
    let region = HeapRegion::new(MpmcRing::<u64>::required_size(2));
    let ring = MpmcRing::<u64, _>::create(&region, 2, RingOptions::new().blocking(true)).unwrap();
    // One registration: count 1, ticket 1, generation 0.
    let dead_sleeper = 1 | (1 << 24);
    for at in [common::ITEMS_SEQ + 8, common::ROOM_SEQ + 8] {
        region
            .atomic_u64(at)
            .unwrap()
            .store(dead_sleeper, Ordering::Release);
    }
    let before = shm_ring::thread_counts().futex_wakes;
    ring.push(1).unwrap(); // heals the consumers' count
    ring.pop().unwrap(); // heals the producers' count
    assert_eq!(shm_ring::thread_counts().futex_wakes, before + 2);
    for at in [common::ITEMS_SEQ + 8, common::ROOM_SEQ + 8] {
        assert_eq!(sleepers(&region, at), 0);
    }
    for v in 0..100 {
        ring.push(v).unwrap();
        assert_eq!(ring.pop(), Ok(v));
    }
    assert_eq!(shm_ring::thread_counts().futex_wakes, before + 2);
}

/// A producer killed after publishing and before waking the sleeper (the
/// item is written, the position stored, nobody woken): the sleeper finds
/// the item at the end of its slice, not never. Both kinds of ring.
#[test]
fn a_publish_without_a_wake_up_is_found() {
    // The sleepers run on threads of their own (not scoped), so that a
    // sleeper that never wakes fails this test instead of hanging it.
    let limit = Duration::from_secs(10);
    let opts = RingOptions::new().blocking(true);
    // SPSC: the value in slot 0, then the tail.
    let size = SpscRing::<u64>::required_size(CAP);
    let ring = SpscRing::<u64, _>::create(HeapRegion::new(size), CAP, opts).unwrap();
    let _tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let region = ring.region();
    let (done, woke) = mpsc::channel();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let _ = done.send((rx.pop_blocking(Duration::MAX), t0.elapsed()));
    });
    await_sleeper(region, common::ITEMS_SEQ + 8, "the SPSC consumer");
    let slots = common::spsc_slots_offset::<u64>();
    region.write_pod(slots, &42u64).unwrap();
    region
        .atomic_u64(common::TAIL_POS)
        .unwrap()
        .store(1, Ordering::Release);
    let (got, took) = woke
        .recv_timeout(limit)
        .expect("SPSC: a publish without a wake-up was never seen");
    eprintln!("SPSC: found after {took:?}");
    assert_eq!(got, Ok(42));

    // MPMC: the claim (tail), the value, then the slot's sequence (2p + 1
    // for p = 0).
    let size = MpmcRing::<u64>::required_size(CAP);
    let ring = MpmcRing::<u64, _>::create(HeapRegion::new(size), CAP, opts).unwrap();
    let sleeper = ring.clone();
    let (done, woke) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(sleeper.pop_blocking(Duration::MAX));
    });
    let region = ring.region();
    await_sleeper(region, common::ITEMS_SEQ + 8, "the MPMC consumer");
    let slots = common::mpmc_slots_offset::<u64>();
    region
        .atomic_u64(common::TAIL_POS)
        .unwrap()
        .store(1, Ordering::Release);
    region.write_pod(slots + 8, &43u64).unwrap();
    region
        .atomic_u64(slots)
        .unwrap()
        .store(1, Ordering::Release);
    let got = woke
        .recv_timeout(limit)
        .expect("MPMC: a publish without a wake-up was never seen");
    assert_eq!(got, Ok(43));
}

const DEAD_HOLDER: &str = "is_abandoned_tells_never_taken_given_back_and_dead";

/// `is_abandoned`: false for a role never taken (and the waiter keeps
/// waiting: `Empty` at its deadline, not `PeerGone`), true once it was given
/// back or its holder died, false again once someone takes it.
#[test]
fn is_abandoned_tells_never_taken_given_back_and_dead() {
    if child_side(DEAD_HOLDER) {
        return;
    }
    // Never taken.
    let ring = spsc(CAP, true);
    let mut tx = ring.producer().unwrap();
    assert!(!tx.is_abandoned());
    let mut rx = ring.consumer().unwrap();
    assert!(!rx.is_abandoned());
    // Given back.
    drop(rx);
    assert!(tx.is_abandoned());
    tx.push_slice(&[1; CAP]);
    assert_eq!(
        tx.push_blocking(2, Duration::MAX),
        Err(PushError::PeerGone(2))
    );
    rx = ring.consumer().unwrap();
    assert!(!tx.is_abandoned());
    drop(tx);
    assert!(rx.is_abandoned());
    // Items published before the producer left are still delivered.
    let mut out = [0; CAP];
    for slot in &mut out {
        *slot = rx.pop_blocking(Duration::MAX).unwrap();
    }
    assert_eq!(out, [1; CAP]);
    assert_eq!(rx.pop_blocking(Duration::MAX), Err(PopError::PeerGone));
    // A fresh ring: the consumer waits for a producer that never came.
    let ring = spsc(CAP, true);
    let mut rx = ring.consumer().unwrap();
    let t0 = Instant::now();
    assert_eq!(rx.pop_blocking(WAIT), Err(PopError::Empty));
    assert_timed(t0, "pop_blocking with a producer never taken");

    // Dead: the holder is a killed child process.
    let (name, _shm, map) = posix_ring("abandoned");
    let ring = SpscRing::<u64, _>::attach(&map).unwrap();
    let tx = ring.producer().unwrap();
    assert!(!tx.is_abandoned(), "never taken");
    let mut child = Running::child(DEAD_HOLDER, &format!("{name}:consume"));
    child.until("ready", HANG);
    let pid = child.id();
    assert!(!tx.is_abandoned(), "held by a live child");
    child.kill9();
    assert!(tx.is_abandoned(), "held by a dead child");
    let info = shm_ring::inspect(&map).unwrap();
    assert_eq!(info.consumer.map(|c| c.pid), Some(pid));
    let rx = ring.consumer().unwrap();
    assert!(!tx.is_abandoned(), "taken again");
    drop(rx);
    assert!(tx.is_abandoned(), "given back");
    assert_eq!(shm_ring::inspect(&map).unwrap().consumer, None);
}

/// CPU time this thread has used (`getrusage(RUSAGE_THREAD)`).
fn thread_cpu() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value (integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable rusage for the call to fill.
    let ret = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(ret, 0, "getrusage: {}", std::io::Error::last_os_error());
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Waits `wait` in `pop_blocking` on an empty ring with `strategy`; returns
/// the thread's CPU time over the wait and how many times it parked.
fn wait_with(strategy: WaitStrategy, futex: bool, wait: Duration) -> (Duration, u64) {
    let ring = spsc(CAP, futex).with_wait_strategy(strategy);
    let _tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.wait_strategy(), strategy);
    std::thread::spawn(move || {
        let cpu = thread_cpu();
        let t0 = Instant::now();
        assert_eq!(rx.pop_blocking(wait), Err(PopError::Empty));
        assert!(t0.elapsed() >= wait);
        (thread_cpu() - cpu, shm_ring::thread_counts().parks)
    })
    .join()
    .unwrap()
}

/// With a parking strategy a waiting consumer sleeps (a few milliseconds of
/// CPU time over 200 ms of waiting), with and without futexes; spinning and
/// yielding strategies never park.
#[test]
fn the_wait_strategy_is_honoured() {
    let long = Duration::from_millis(200);
    for futex in [true, false] {
        for strategy in [
            WaitStrategy::DEFAULT,
            WaitStrategy::SpinYieldThenPark {
                spins: 0,
                yields: 0,
            },
        ] {
            let (cpu, parks) = wait_with(strategy, futex, long);
            eprintln!("{strategy:?}, futex {futex}: {cpu:?} of CPU in {long:?}, {parks} parks");
            assert!(parks > 0, "{strategy:?} never parked");
            assert!(
                cpu < Duration::from_millis(40),
                "{strategy:?} (futex {futex}) used {cpu:?} of CPU in {long:?}: it did not sleep"
            );
        }
    }
    for strategy in [WaitStrategy::Spin, WaitStrategy::SpinThenYield] {
        let (cpu, parks) = wait_with(strategy, true, WAIT);
        eprintln!("{strategy:?}: {cpu:?} of CPU in {WAIT:?}");
        assert_eq!(parks, 0, "{strategy:?} parked");
    }
    // MPMC handles take a strategy too.
    let parks = || shm_ring::thread_counts().parks;
    let before = parks();
    let ring = mpmc(CAP, true).with_wait_strategy(WaitStrategy::SpinThenYield);
    assert_eq!(ring.pop_blocking(WAIT), Err(PopError::Empty));
    assert_eq!(parks(), before);
    let ring = ring.with_wait_strategy(WaitStrategy::DEFAULT);
    assert_eq!(ring.pop_blocking(WAIT), Err(PopError::Empty));
    assert!(parks() > before);
}

/// `sched_yield` calls on this thread so far (`thread_counts`).
fn yields() -> u64 {
    shm_ring::thread_counts().yields
}

/// A blocking call yields as many times as its strategy says before it
/// parks: the SPSC calls' first yield, made before the wait is set up (the
/// hand-off), is one of them, not one more; a zero timeout and a peer
/// already gone skip it; an MPMC call (no hand-off) counts the same.
#[test]
fn yields_are_counted_as_the_strategy_says() {
    let cases = [
        (WaitStrategy::DEFAULT, 64),
        (
            WaitStrategy::SpinYieldThenPark {
                spins: 0,
                yields: 3,
            },
            3,
        ),
        (
            WaitStrategy::SpinYieldThenPark {
                spins: 0,
                yields: 1,
            },
            1,
        ),
        (
            WaitStrategy::SpinYieldThenPark {
                spins: 2,
                yields: 1,
            },
            1,
        ),
        (
            WaitStrategy::SpinYieldThenPark {
                spins: 0,
                yields: 0,
            },
            0,
        ),
    ];
    for (strategy, expected) in cases {
        // On a loaded machine each yield may give a whole time slice away:
        // leave room for all of them before the deadline.
        let wait = WAIT + Duration::from_millis(5) * expected as u32;
        for futex in [true, false] {
            // An empty ring, its producer held: pop waits the whole timeout.
            let ring = spsc(CAP, futex).with_wait_strategy(strategy);
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            let before = yields();
            assert_eq!(rx.pop_blocking(wait), Err(PopError::Empty));
            assert_eq!(
                yields() - before,
                expected,
                "pop, {strategy:?}, futex {futex}"
            );
            // A full ring, its consumer held: push waits the whole timeout.
            for v in 0..CAP as u64 {
                tx.push(v).unwrap();
            }
            let before = yields();
            assert_eq!(tx.push_blocking(9, wait), Err(PushError::Full(9)));
            assert_eq!(
                yields() - before,
                expected,
                "push, {strategy:?}, futex {futex}"
            );
            // MPMC: no hand-off, the same count.
            let ring = mpmc(CAP, futex).with_wait_strategy(strategy);
            let before = yields();
            assert_eq!(ring.pop_blocking(wait), Err(PopError::Empty));
            assert_eq!(
                yields() - before,
                expected,
                "mpmc pop, {strategy:?}, futex {futex}"
            );
        }
    }
    // No time to wait: no yield, no park.
    let ring = spsc(CAP, true);
    let _tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let (y, p) = (yields(), shm_ring::thread_counts().parks);
    assert_eq!(rx.pop_blocking(Duration::ZERO), Err(PopError::Empty));
    assert_eq!((yields(), shm_ring::thread_counts().parks), (y, p));
    // The producer given back: PeerGone at once, without a yield.
    let ring = spsc(CAP, true);
    drop(ring.producer().unwrap());
    let mut rx = ring.consumer().unwrap();
    let y = yields();
    assert_eq!(rx.pop_blocking(Duration::MAX), Err(PopError::PeerGone));
    assert_eq!(yields(), y);
}
