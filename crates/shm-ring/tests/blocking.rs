//! The blocking calls and the edges of the public API: timeouts are kept
//! (neither much early nor much late), a sleeper is woken by the other side
//! (futex rings) or notices by polling (plain rings), and arguments at the
//! extremes (a timeout of `Duration::MAX`, an impossible capacity) give an
//! answer or an error, never a panic.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use shm_ring::{MpmcRing, PopError, PushError, RingError, RingOptions, SpscRing};
use shm_segment::HeapRegion;

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
    let region = HeapRegion::new(SpscRing::<u64, ()>::required_size(cap));
    SpscRing::create(region, cap as u64, RingOptions::new().blocking(blocking)).unwrap()
}

fn mpmc(cap: usize, blocking: bool) -> MpmcRing<u64, HeapRegion> {
    let region = HeapRegion::new(MpmcRing::<u64, ()>::required_size(cap));
    MpmcRing::create(region, cap as u64, RingOptions::new().blocking(blocking)).unwrap()
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
        SpscRing::<u64, _>::new_heap(3),
        Err(RingError::Capacity { capacity: 3, .. })
    ));
    assert!(matches!(
        MpmcRing::<u64, _>::new_heap(0),
        Err(RingError::Capacity { capacity: 0, .. })
    ));
    // So large that the byte size overflows.
    let spsc = catch_unwind(|| SpscRing::<u64, _>::new_heap(1 << 62).map(|_| ()));
    let mpmc = catch_unwind(|| MpmcRing::<u64, _>::new_heap(1 << 62).map(|_| ()));
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
    let region = HeapRegion::new(SpscRing::<u64, ()>::required_size(4));
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
