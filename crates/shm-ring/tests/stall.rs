//! A producer that claimed a position of an MPMC ring and died before
//! publishing it: consumers get every item before the hole, then
//! `PopError::Stalled { position }` from `pop_blocking` at its deadline
//! (not a hang, not `Empty`); producers go on until the ring wraps around
//! to the hole.
//!
//! The dead producer is simulated the way it looks in memory: the shared
//! tail is bumped (the claim) and the slot's sequence is left at "free"
//! (nothing published). The control block starts at offset 128 and the
//! tail position is its first word (`crates/shm-ring/src/shared.rs`).

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shm_ring::{MpmcRing, PopError, PushError, RingOptions};
use shm_segment::{HeapRegion, Region};

const CAP: usize = 8;
const TIMEOUT: Duration = Duration::from_millis(50);

/// A ring with three items, a claimed-but-unpublished position 3, and two
/// items after it (positions 4 and 5).
fn ring_with_hole(region: &HeapRegion, blocking: bool) -> MpmcRing<u64, &HeapRegion> {
    let opts = RingOptions::new().blocking(blocking);
    let ring = MpmcRing::<u64, _>::create(region, CAP as u64, opts).unwrap();
    assert_eq!(ring.push_slice(&[10, 11, 12]), 3);
    // The dead producer's claim of position 3.
    let tail = region.atomic_u64(common::TAIL_POS).unwrap();
    assert_eq!(
        tail.fetch_add(1, Ordering::AcqRel),
        3,
        "tail is not where the layout says"
    );
    ring.push(14).unwrap();
    ring.push(15).unwrap();
    ring
}

fn stalled_behind_dead_producer(blocking: bool) {
    let region = HeapRegion::new(MpmcRing::<u64, ()>::required_size(CAP));
    let ring = ring_with_hole(&region, blocking);
    // Another handle, as another process would have.
    let other = MpmcRing::<u64, _>::attach(&region).unwrap();

    // Everything before the hole is delivered.
    assert_eq!(other.pop(), Ok(10));
    assert_eq!(ring.pop_blocking(TIMEOUT), Ok(11));
    let mut out = [0; 4];
    assert_eq!(other.pop_into(&mut out), 1);
    assert_eq!(out[0], 12);

    // Then the hole: Stalled at the deadline, not before it and not much later.
    let t0 = Instant::now();
    let got = ring.pop_blocking(TIMEOUT);
    let waited = t0.elapsed();
    assert_eq!(got, Err(PopError::Stalled { position: 3 }));
    assert!(
        waited >= TIMEOUT,
        "gave up after {waited:?}, before the {TIMEOUT:?} timeout"
    );
    assert!(
        waited < TIMEOUT + Duration::from_secs(5),
        "took {waited:?} for a {TIMEOUT:?} timeout"
    );
    assert_eq!(
        other.pop_blocking(Duration::ZERO),
        Err(PopError::Stalled { position: 3 })
    );
    // The non-blocking calls say empty and take nothing.
    assert_eq!(ring.pop(), Err(PopError::Empty));
    assert_eq!(ring.pop_into(&mut out), 0);
    // Positions 3, 4, 5 are claimed and not taken.
    assert_eq!(ring.len(), 3);

    // Producers are not stalled: positions 6..=10 use the slots that were
    // freed, until the ring wraps around to the hole (slot 3 = position 11).
    for v in 16..=20 {
        ring.push(v).unwrap();
    }
    assert_eq!(ring.push(21), Err(PushError::Full(21)));
    assert_eq!(ring.push_blocking(21, TIMEOUT), Err(PushError::Full(21)));
    assert_eq!(ring.push_slice(&[21, 22]), 0);
    assert!(ring.push_exact(&[21]).is_err());
    assert_eq!(ring.len(), CAP);

    // Still stalled, and the items behind the hole are intact: publish the
    // hole the way the producer would have (sequence 2p + 1 for p = 3;
    // its value stays zero), and everything flows in order.
    assert_eq!(
        ring.pop_blocking(TIMEOUT),
        Err(PopError::Stalled { position: 3 })
    );
    let slot = common::mpmc_slot_size::<u64>();
    let slots = common::slots_offset(region.len(), CAP, slot);
    let seq = region.atomic_u64(slots + 3 * slot).unwrap();
    assert_eq!(
        seq.load(Ordering::Acquire),
        6,
        "slot 3 is not free for position 3"
    );
    seq.store(7, Ordering::Release);
    let mut rest = Vec::new();
    while let Ok(v) = other.pop_blocking(Duration::ZERO) {
        rest.push(v);
    }
    assert_eq!(rest, [0, 14, 15, 16, 17, 18, 19, 20]);
    assert_eq!(ring.pop_blocking(TIMEOUT), Err(PopError::Empty));
    assert!(ring.is_empty());
    ring.push(23).unwrap();
    assert_eq!(ring.pop(), Ok(23));
}

#[test]
fn stalled_behind_dead_producer_polling() {
    stalled_behind_dead_producer(false);
}

#[test]
fn stalled_behind_dead_producer_futex() {
    stalled_behind_dead_producer(true);
}

/// A consumer already asleep in `pop_blocking` when the hole appears wakes
/// for the items before it and then reports `Stalled`, not a hang.
#[test]
fn sleeping_consumer_reports_stalled() {
    let region = HeapRegion::new(MpmcRing::<u64, ()>::required_size(CAP));
    let ring =
        MpmcRing::<u64, _>::create(&region, CAP as u64, RingOptions::new().blocking(true)).unwrap();
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let first = ring.pop_blocking(Duration::from_secs(30));
            let second = ring.pop_blocking(Duration::from_millis(500));
            (first, second)
        });
        std::thread::sleep(Duration::from_millis(20));
        ring.push(1).unwrap();
        let tail = region.atomic_u64(common::TAIL_POS).unwrap();
        tail.fetch_add(1, Ordering::AcqRel);
        ring.push(2).unwrap();
        let (first, second) = consumer.join().unwrap();
        assert_eq!(first, Ok(1));
        assert_eq!(second, Err(PopError::Stalled { position: 1 }));
    });
}

/// An empty ring says `Empty`, never `Stalled`.
#[test]
fn empty_is_not_stalled() {
    let ring = MpmcRing::<u64, _>::new_heap(CAP).unwrap();
    assert_eq!(ring.pop_blocking(TIMEOUT), Err(PopError::Empty));
    ring.push(1).unwrap();
    assert_eq!(ring.pop_blocking(TIMEOUT), Ok(1));
    assert_eq!(ring.pop_blocking(TIMEOUT), Err(PopError::Empty));
}
