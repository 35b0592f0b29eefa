//! A position of an MPMC ring that a peer claimed and did not finish.
//!
//! - A producer that died between claiming a position and publishing it:
//!   consumers skip the hole and every item behind it flows on, in order
//!   (no `Stalled`, no `Empty` while items wait, producers not stuck at
//!   `Full` a lap later).
//! - A consumer that died between claiming a slot and releasing it:
//!   producers free the slot when they wrap around to it.
//! - A producer (consumer) that is alive but stopped there: `pop` waits for
//!   it rather than say `Empty` (`push` rather than say `Full`), and says
//!   `Stalled` (`Full`) only after holding on for a second; everything flows
//!   once it goes on.
//! - A position claimed without any claim record (what only a corrupted
//!   ring shows) is not skipped: `Stalled`, and the items behind it stay.
//!
//! Death is simulated in-process with the `fault-injection` hooks
//! (`Action::Die`: the claimer's lane passes to a process that does not
//! exist); `tests/kill.rs` kills real processes there.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shm_ring::fault::{arm, Action, Point};
use shm_ring::{MpmcRing, PopError, PushError, RingOptions};
use shm_segment::{HeapRegion, Region};

const CAP: usize = 8;
const TIMEOUT: Duration = Duration::from_millis(50);
/// How long `pop`/`push` wait for a live peer (the ring's stall limit).
const STALL_LIMIT: Duration = Duration::from_secs(1);

/// A ring with three items, a position 3 claimed by a producer that died
/// before publishing it, and two items after it (positions 4 and 5).
fn ring_with_dead_hole(region: &HeapRegion, blocking: bool) -> MpmcRing<u64, &HeapRegion> {
    let opts = RingOptions::new().blocking(blocking);
    let ring = MpmcRing::<u64, _>::create(region, CAP, opts).unwrap();
    assert_eq!(ring.push_slice(&[10, 11, 12]), 3);
    arm(Point::PushClaimed, Action::Die);
    ring.push(13).unwrap(); // claims position 3 and "dies" there
    let tail = region.atomic_u64(common::TAIL_POS).unwrap();
    assert_eq!(
        tail.load(Ordering::Acquire),
        4,
        "position 3 was not claimed"
    );
    ring.push(14).unwrap();
    ring.push(15).unwrap();
    ring
}

fn dead_producers_hole_is_skipped(blocking: bool) {
    let region = HeapRegion::new(MpmcRing::<u64>::required_size(CAP));
    let ring = ring_with_dead_hole(&region, blocking);
    // Another handle, as another process would have.
    let other = MpmcRing::<u64, _>::attach(&region).unwrap();
    assert_eq!(ring.len(), 6, "positions 0..6 are claimed");

    // Everything before the hole, then everything behind it, in order.
    assert_eq!(other.pop(), Ok(10));
    assert_eq!(ring.pop_blocking(TIMEOUT), Ok(11));
    let mut out = [0; 4];
    assert_eq!(other.pop_into(&mut out), 1, "stops before the hole");
    assert_eq!(out[0], 12);
    let t0 = Instant::now();
    assert_eq!(ring.pop(), Ok(14), "the hole at 3 is skipped");
    let took = t0.elapsed();
    assert!(
        took < STALL_LIMIT / 2,
        "skipping a dead producer's hole took {took:?}"
    );
    assert_eq!(other.pop_blocking(TIMEOUT), Ok(15));
    assert_eq!(ring.pop_blocking(TIMEOUT), Err(PopError::Empty));
    assert!(ring.is_empty() && other.is_empty());
    assert_eq!(ring.recovered().skipped, 1);
    assert_eq!(other.recovered().reclaimed, 0);

    // Producers go round the ring, over the skipped slot, and no further.
    for v in 16..16 + CAP as u64 {
        ring.push(v).unwrap();
    }
    assert_eq!(ring.push(99), Err(PushError::Full(99)));
    assert_eq!(ring.push_blocking(99, TIMEOUT), Err(PushError::Full(99)));
    let mut all = [0; CAP];
    assert_eq!(other.pop_into(&mut all), CAP);
    assert_eq!(all, [16, 17, 18, 19, 20, 21, 22, 23]);
    assert_eq!(ring.recovered().skipped, 1, "nothing else was skipped");
}

#[test]
fn dead_producers_hole_is_skipped_polling() {
    dead_producers_hole_is_skipped(false);
}

#[test]
fn dead_producers_hole_is_skipped_futex() {
    dead_producers_hole_is_skipped(true);
}

/// A whole batch claimed by a producer that died: every position of it is
/// skipped, in one pop.
#[test]
fn dead_producers_batch_is_skipped() {
    let ring = MpmcRing::<u64>::new_heap(CAP).unwrap();
    ring.push(1).unwrap();
    arm(Point::PushClaimed, Action::Die);
    assert_eq!(ring.push_slice(&[2, 3, 4]), 3);
    arm(Point::PushClaimed, Action::Die);
    ring.push_exact(&[5, 6]).unwrap();
    ring.push(7).unwrap();
    let mut out = [0; CAP];
    assert_eq!(ring.pop_into(&mut out), 1);
    assert_eq!(out[0], 1);
    assert_eq!(ring.pop_into(&mut out), 1);
    assert_eq!(out[0], 7);
    assert_eq!(ring.recovered().skipped, 5);
    assert!(ring.is_empty());
}

/// A consumer already asleep in `pop_blocking` when the dead producer's
/// hole appears gets the item behind it.
#[test]
fn sleeping_consumer_gets_the_item_behind_a_dead_hole() {
    let region = HeapRegion::new(MpmcRing::<u64>::required_size(CAP));
    let ring = MpmcRing::<u64, _>::create(&region, CAP, RingOptions::new().blocking(true)).unwrap();
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let first = ring.pop_blocking(Duration::from_secs(30));
            let second = ring.pop_blocking(Duration::from_secs(30));
            (first, second)
        });
        std::thread::sleep(Duration::from_millis(20));
        ring.push(1).unwrap();
        arm(Point::PushClaimed, Action::Die);
        ring.push(2).unwrap(); // the hole
        ring.push(3).unwrap();
        let (first, second) = consumer.join().unwrap();
        assert_eq!((first, second), (Ok(1), Ok(3)));
    });
    assert_eq!(ring.recovered().skipped, 1);
}

/// A consumer that died between claiming a slot and releasing it: the item
/// is gone with it, and producers free the slot when they get back to it.
#[test]
fn dead_consumers_slot_is_reclaimed() {
    let ring = MpmcRing::<u64>::new_heap(CAP).unwrap();
    assert_eq!(ring.push_slice(&[1, 2, 3]), 3);
    arm(Point::PopClaimed, Action::Die);
    assert_eq!(ring.pop(), Err(PopError::Empty)); // claimed 1 and "died"
    assert_eq!(ring.pop(), Ok(2));
    arm(Point::PopClaimed, Action::Die);
    let mut out = [0; 1];
    assert_eq!(ring.pop_into(&mut out), 0); // claimed 3 and "died"
    assert!(ring.is_empty());
    // Two laps: the producers get to slots 0 and 2 again and free them.
    for round in 0..2u64 {
        let values: Vec<u64> = (0..CAP as u64).map(|i| 100 * round + i).collect();
        for &v in &values {
            ring.push(v)
                .unwrap_or_else(|e| panic!("round {round}: push {v}: {e}"));
        }
        assert_eq!(ring.push(7), Err(PushError::Full(7)));
        let mut all = [0; CAP];
        assert_eq!(ring.pop_into(&mut all), CAP);
        assert_eq!(all.as_slice(), values.as_slice());
    }
    assert_eq!(ring.recovered().reclaimed, 2);
    assert_eq!(ring.recovered().skipped, 0);
}

static PRODUCER_PARKED: AtomicBool = AtomicBool::new(false);
static PRODUCER_GO: AtomicBool = AtomicBool::new(false);

fn park_producer() {
    PRODUCER_PARKED.store(true, Ordering::SeqCst);
    let mut wait = common::Patience::new("the test to release the producer", common::HANG);
    while !PRODUCER_GO.load(Ordering::SeqCst) {
        wait.wait();
    }
}

/// A producer that is alive but stopped between claim and publish: `pop`
/// waits for it rather than say `Empty` (an item is ready behind it), says
/// `Stalled` once it held on for the stall limit, and everything flows in
/// order when it goes on.
#[test]
fn live_producer_between_claim_and_publish() {
    let ring = MpmcRing::<u64>::new_heap(CAP).unwrap();
    ring.push(1).unwrap();
    std::thread::scope(|s| {
        let slow = s.spawn(|| {
            arm(Point::PushClaimed, Action::Call(park_producer));
            ring.push(2).unwrap();
        });
        let mut wait = common::Patience::new("the producer to park", common::HANG);
        while !PRODUCER_PARKED.load(Ordering::SeqCst) {
            wait.wait();
        }
        ring.push(3).unwrap(); // behind the parked position
        assert_eq!(ring.pop(), Ok(1));
        // Held by a live producer: not Empty, not skipped.
        let t0 = Instant::now();
        assert_eq!(ring.pop(), Err(PopError::Stalled { position: 1 }));
        let waited = t0.elapsed();
        assert!(
            waited >= STALL_LIMIT && waited < STALL_LIMIT + Duration::from_secs(10),
            "pop gave up after {waited:?}"
        );
        assert_eq!(ring.len(), 2);
        // A pop that starts now gets the parked item once it is published.
        let waiter = s.spawn(|| ring.pop());
        std::thread::sleep(Duration::from_millis(100));
        PRODUCER_GO.store(true, Ordering::SeqCst);
        slow.join().unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(2));
        assert_eq!(ring.pop(), Ok(3));
    });
    assert_eq!(ring.recovered().skipped, 0);
}

static CONSUMER_PARKED: AtomicBool = AtomicBool::new(false);
static CONSUMER_GO: AtomicBool = AtomicBool::new(false);

fn park_consumer() {
    CONSUMER_PARKED.store(true, Ordering::SeqCst);
    let mut wait = common::Patience::new("the test to release the consumer", common::HANG);
    while !CONSUMER_GO.load(Ordering::SeqCst) {
        wait.wait();
    }
}

/// A consumer that is alive but stopped between claim and release: `push`
/// a lap later waits for it rather than say `Full` (`len() < capacity`),
/// says `Full` once it held on for the stall limit, and goes on when it does.
#[test]
fn live_consumer_between_claim_and_release() {
    let ring = MpmcRing::<u64>::new_heap(CAP).unwrap();
    assert_eq!(ring.push_slice(&[0, 1, 2, 3, 4, 5, 6, 7]), CAP);
    std::thread::scope(|s| {
        let slow = s.spawn(|| {
            arm(Point::PopClaimed, Action::Call(park_consumer));
            ring.pop()
        });
        let mut wait = common::Patience::new("the consumer to park", common::HANG);
        while !CONSUMER_PARKED.load(Ordering::SeqCst) {
            wait.wait();
        }
        assert_eq!(ring.len(), CAP - 1);
        let t0 = Instant::now();
        assert_eq!(ring.push(8), Err(PushError::Full(8)));
        let waited = t0.elapsed();
        assert!(
            waited >= STALL_LIMIT && waited < STALL_LIMIT + Duration::from_secs(10),
            "push gave up after {waited:?}"
        );
        let pusher = s.spawn(|| ring.push(8));
        std::thread::sleep(Duration::from_millis(100));
        CONSUMER_GO.store(true, Ordering::SeqCst);
        assert_eq!(slow.join().unwrap(), Ok(0));
        assert_eq!(pusher.join().unwrap(), Ok(()));
    });
    let mut all = [0; CAP];
    assert_eq!(ring.pop_into(&mut all), CAP);
    assert_eq!(all, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(ring.recovered().reclaimed, 0);
}

/// A position claimed with no claim record at all (the tail bumped by hand:
/// what only a corrupted ring shows) is not skipped: `Stalled`, at once,
/// and the items behind it stay until it is published.
#[test]
fn unrecorded_claim_is_reported_not_skipped() {
    let region = HeapRegion::new(MpmcRing::<u64>::required_size(CAP));
    let ring = MpmcRing::<u64, _>::create(&region, CAP, RingOptions::new()).unwrap();
    assert_eq!(ring.push_slice(&[10, 11, 12]), 3);
    let tail = region.atomic_u64(common::TAIL_POS).unwrap();
    assert_eq!(tail.fetch_add(1, Ordering::AcqRel), 3);
    ring.push(14).unwrap();
    let mut out = [0; CAP];
    assert_eq!(ring.pop_into(&mut out), 3);
    let t0 = Instant::now();
    assert_eq!(ring.pop(), Err(PopError::Stalled { position: 3 }));
    assert_eq!(ring.pop_into(&mut out), 0);
    assert_eq!(
        ring.pop_blocking(TIMEOUT),
        Err(PopError::Stalled { position: 3 })
    );
    assert!(t0.elapsed() < STALL_LIMIT, "no live claimer to wait for");
    assert_eq!(ring.len(), 2);
    assert_eq!(ring.recovered().skipped, 0);
    // Publish it by hand (sequence 2p + 1 for p = 3; the value stays 0).
    let slot = common::mpmc_slot_size::<u64>();
    let slots = common::mpmc_slots_offset::<u64>();
    let seq = region.atomic_u64(slots + 3 * slot).unwrap();
    assert_eq!(seq.load(Ordering::Acquire), 6, "slot 3 is not free for 3");
    seq.store(7, Ordering::Release);
    assert_eq!(ring.pop_into(&mut out), 2);
    assert_eq!(&out[..2], &[0, 14]);
}

/// An empty ring says `Empty`, never `Stalled`.
#[test]
fn empty_is_not_stalled() {
    let ring = MpmcRing::<u64>::new_heap(CAP).unwrap();
    assert_eq!(ring.pop_blocking(TIMEOUT), Err(PopError::Empty));
    ring.push(1).unwrap();
    assert_eq!(ring.pop_blocking(TIMEOUT), Ok(1));
    assert_eq!(ring.pop_blocking(TIMEOUT), Err(PopError::Empty));
}
