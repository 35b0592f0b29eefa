//! Rings across `fork(2)`.
//!
//! 1. An SPSC [`Producer`] or [`Consumer`] that a forked child inherits is
//!    inert in the child: every operation fails with `ForkedHandle` or moves
//!    nothing, and its drop does not give back the parent's role, so a third
//!    process asking for the role still gets `RoleTaken` while the parent
//!    lives, and the parent keeps working.
//! 2. The pattern of pyshm still works: the ring is created before the fork
//!    and each process takes its own role after it (SPSC), or simply uses
//!    its inherited handle (MPMC, which has no roles).
//! 3. An MPMC handle used in the child announces its claims in lanes of the
//!    child's own, so a child killed mid-claim leaves a hole the parent skips.
//!
//! `fork` in a multi-threaded process is a trap (only the forking thread
//! survives, holding whatever locks the others held), so this target runs
//! without the test harness (`harness = false` in Cargo.toml): `main` is
//! single-threaded, runs each case, prints `N passed, M failed` and exits
//! non-zero on failure. A child never returns into `main`: it ends with
//! `_exit`, also when its body panics, so it runs no destructor it was not
//! told to run.
//!
//! Arguments: a bare word runs only the cases whose name contains it;
//! `--list` lists the cases; other flags (`--nocapture`…) are ignored.

mod common;

use std::time::{Duration, Instant};

use common::{
    check, posix_name, run_cases, Case, CaseResult, Forked, UnlinkGuard, HANG, MISMATCH, OK,
};
use shm_ring::fault::{arm, Action, Point};
use shm_ring::{
    inspect, BulkError, Consumer, MpmcRing, PopError, Producer, PushError, RingError, RingOptions,
    SpscRing,
};
use shm_segment::{AnonShared, PosixOptions, PosixShm, Region};

const CAP: usize = 16;
/// Items the pyshm-pattern cases move from one process to the other.
const ITEMS: u64 = 2000;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A child's verdict: `OK`, or `MISMATCH` after printing what went wrong.
fn verdict(result: CaseResult) -> i32 {
    match result {
        Ok(()) => OK,
        Err(why) => {
            eprintln!("[child {}] {why}", std::process::id());
            MISMATCH
        }
    }
}

/// `ring.producer()` (or `consumer()`) refused because `holder` holds it.
fn taken_by<T>(claim: Result<T, RingError>, role: &str, holder: u32) -> CaseResult {
    match claim {
        Err(RingError::RoleTaken {
            role: r, holder: h, ..
        }) if r == role && h.pid == holder => Ok(()),
        Err(e) => Err(format!("claiming the {role}: {e}, want held by {holder}")),
        Ok(_) => Err(format!(
            "claimed the {role} role while process {holder} holds it"
        )),
    }
}

/// Every producing operation of an inherited producer, in the child.
fn inherited_producer_is_inert<R: Region>(
    tx: &mut Producer<u64, R>,
    ring: &SpscRing<u64, R>,
    parent: u32,
) -> CaseResult {
    check(tx.is_inert(), || "is_inert() is false in the child".into())?;
    let pushed = tx.push(99);
    check(pushed == Err(PushError::ForkedHandle(99)), || {
        format!("push: {pushed:?}")
    })?;
    let pushed = tx.push_blocking(98, Duration::from_millis(10));
    check(pushed == Err(PushError::ForkedHandle(98)), || {
        format!("push_blocking: {pushed:?}")
    })?;
    let n = tx.push_slice(&[97; 3]);
    check(n == 0, || format!("push_slice pushed {n}"))?;
    let exact = tx.push_exact(&[96]);
    check(exact == Err(BulkError::ForkedHandle), || {
        format!("push_exact: {exact:?}")
    })?;
    let chunk = tx.write_chunk(1).err();
    check(chunk == Some(BulkError::ForkedHandle), || {
        format!("write_chunk: {chunk:?}")
    })?;
    check(tx.slots() == 0, || format!("slots: {}", tx.slots()))?;
    check(tx.capacity() == CAP, || {
        format!("capacity {}", tx.capacity())
    })?;
    check(ring.len() == 1, || {
        format!("the ring holds {}, want the parent's 1", ring.len())
    })?;
    // The ring itself works in the child: its claim is refused, the parent holds the role.
    taken_by(ring.producer(), "producer", parent)
}

/// Every consuming operation of an inherited consumer, in the child.
fn inherited_consumer_is_inert<R: Region>(
    rx: &mut Consumer<u64, R>,
    ring: &SpscRing<u64, R>,
    parent: u32,
) -> CaseResult {
    check(rx.is_inert(), || "is_inert() is false in the child".into())?;
    let popped = rx.pop();
    check(popped == Err(PopError::ForkedHandle), || {
        format!("pop: {popped:?}")
    })?;
    let popped = rx.pop_blocking(Duration::from_millis(10));
    check(popped == Err(PopError::ForkedHandle), || {
        format!("pop_blocking: {popped:?}")
    })?;
    let mut out = [0u64; 4];
    let n = rx.pop_into(&mut out);
    check(n == 0, || format!("pop_into took {n}"))?;
    let exact = rx.pop_exact(&mut out[..1]);
    check(exact == Err(BulkError::ForkedHandle), || {
        format!("pop_exact: {exact:?}")
    })?;
    let chunk = rx.read_chunk(1).err();
    check(chunk == Some(BulkError::ForkedHandle), || {
        format!("read_chunk: {chunk:?}")
    })?;
    check(rx.slots() == 0, || format!("slots: {}", rx.slots()))?;
    check(rx.is_empty(), || "is_empty() is false".into())?;
    check(ring.len() == 3, || {
        format!("the ring holds {}, want the parent's 3", ring.len())
    })?;
    taken_by(ring.consumer(), "consumer", parent)
}

/// A producer inherited by a child cannot push, and the child's drop of it
/// leaves the role with the parent: a third process that attaches by name
/// is refused, and the parent pushes on. The ring lives in a named POSIX
/// segment (`shm-test-…`, unlinked by a guard, also on panic).
fn inherited_producer_is_inert_and_keeps_the_role() -> CaseResult {
    let name = posix_name("ring-fork-producer");
    let _guard = UnlinkGuard(name.clone());
    let size = SpscRing::<u64>::required_size(CAP);
    let shm = PosixOptions::new().create(&name, size).map_err(err)?;
    let map = shm.map().map_err(err)?;
    let ring = SpscRing::<u64, _>::create(&map, CAP, RingOptions::new()).map_err(err)?;
    let mut tx = Some(ring.producer().map_err(err)?);
    let mut rx = ring.consumer().map_err(err)?;
    tx.as_mut().unwrap().push(1).map_err(err)?;

    let me = std::process::id();
    let mut child = Forked::spawn(|| {
        let mut tx = tx.take().unwrap();
        let result = inherited_producer_is_inert(&mut tx, &ring, me);
        drop(tx); // must not release the parent's role
        verdict(result)
    })?;
    child.passed("the child's inherited producer", HANG)?;

    let holder = inspect(&map).map_err(err)?.producer.map(|p| p.pid);
    check(holder == Some(me), || {
        format!("after the child's drop the producer role is held by {holder:?}, want {me}")
    })?;
    let mut third = Forked::spawn(|| {
        let result = PosixShm::open(&name)
            .and_then(|shm| shm.map())
            .map_err(err)
            .and_then(|map| SpscRing::<u64, _>::attach(map).map_err(err))
            .and_then(|ring| taken_by(ring.producer(), "producer", me));
        verdict(result)
    })?;
    third.passed("a third process claiming the producer role", HANG)?;

    let tx = tx.as_mut().unwrap();
    check(!tx.is_inert(), || "the parent's producer is inert".into())?;
    tx.push(2).map_err(err)?;
    check(tx.push_slice(&[3, 4]) == 2, || "push_slice".into())?;
    let mut out = [0u64; 8];
    let n = rx.pop_into(&mut out);
    check(out[..n] == [1, 2, 3, 4], || {
        format!("the consumer got {:?}, want [1, 2, 3, 4]", &out[..n])
    })
}

/// A consumer inherited by a child cannot pop (nothing is taken from the
/// parent), and the child's drop of it leaves the role with the parent: a
/// third forked process is refused, and the parent pops on. The ring lives
/// in anonymous shared memory.
fn inherited_consumer_is_inert_and_keeps_the_role() -> CaseResult {
    let region = AnonShared::new(SpscRing::<u64>::required_size(CAP)).map_err(err)?;
    let ring = SpscRing::<u64, _>::create(&region, CAP, RingOptions::new()).map_err(err)?;
    let mut tx = ring.producer().map_err(err)?;
    let mut rx = Some(ring.consumer().map_err(err)?);
    check(tx.push_slice(&[1, 2, 3]) == 3, || "push_slice".into())?;

    let me = std::process::id();
    let mut child = Forked::spawn(|| {
        let mut rx = rx.take().unwrap();
        let result = inherited_consumer_is_inert(&mut rx, &ring, me);
        drop(rx); // must not release the parent's role
        verdict(result)
    })?;
    child.passed("the child's inherited consumer", HANG)?;

    let holder = inspect(&region).map_err(err)?.consumer.map(|p| p.pid);
    check(holder == Some(me), || {
        format!("after the child's drop the consumer role is held by {holder:?}, want {me}")
    })?;
    let mut third = Forked::spawn(|| verdict(taken_by(ring.consumer(), "consumer", me)))?;
    third.passed("a third process claiming the consumer role", HANG)?;

    let rx = rx.as_mut().unwrap();
    check(!rx.is_inert(), || "the parent's consumer is inert".into())?;
    let mut out = [0u64; 8];
    let n = rx.pop_into(&mut out);
    check(out[..n] == [1, 2, 3], || {
        format!("the parent got {:?}, want [1, 2, 3]", &out[..n])
    })?;
    tx.push(4).map_err(err)?;
    check(rx.pop() == Ok(4), || "pop after the child".into())
}

/// A write chunk borrowed when the process forks: in the child, writes,
/// `write_bytes` and `commit` change nothing; the parent's chunk publishes
/// what the parent wrote.
fn chunk_alive_across_fork_is_inert_in_the_child() -> CaseResult {
    let region = AnonShared::new(SpscRing::<u64>::required_size(CAP)).map_err(err)?;
    let ring = SpscRing::<u64, _>::create(&region, CAP, RingOptions::new()).map_err(err)?;
    let mut tx = ring.producer().map_err(err)?;
    let mut rx = ring.consumer().map_err(err)?;
    let mut chunk = Some(tx.write_chunk(2).map_err(err)?);
    {
        let chunk = chunk.as_mut().unwrap();
        chunk.write(0, &7);
        chunk.write(1, &8);
    }
    let mut child = Forked::spawn(|| {
        let mut chunk = chunk.take().unwrap();
        chunk.write(0, &55);
        let bytes = chunk.write_bytes(1, 0, &[0xff; 8]);
        chunk.commit_all();
        verdict(
            check(bytes == Err(BulkError::ForkedHandle), || {
                format!("write_bytes: {bytes:?}")
            })
            .and_then(|()| {
                check(ring.is_empty(), || {
                    format!("the child's commit published {}", ring.len())
                })
            }),
        )
    })?;
    child.passed("the child's inherited write chunk", HANG)?;
    check(ring.is_empty(), || {
        format!("{} items published by the child", ring.len())
    })?;
    chunk.take().unwrap().commit_all();
    let mut out = [0u64; 4];
    let n = rx.pop_into(&mut out);
    check(out[..n] == [7, 8], || {
        format!("popped {:?}, want the parent's [7, 8]", &out[..n])
    })
}

/// pyshm's pattern for an SPSC ring: created before the fork; the child
/// takes the consumer role and the parent the producer role after it.
/// Once the child has exited, its role is taken over (its holder is dead).
fn spsc_ring_created_before_fork_roles_taken_after() -> CaseResult {
    let region = AnonShared::new(SpscRing::<u64>::required_size(64)).map_err(err)?;
    let opts = RingOptions::new().blocking(true);
    let ring = SpscRing::<u64, _>::create(&region, 64, opts).map_err(err)?;
    let mut child = Forked::spawn(|| {
        let result = ring.consumer().map_err(err).and_then(|mut rx| {
            for want in 0..ITEMS {
                let got = rx.pop_blocking(HANG).map_err(err)?;
                check(got == want, || format!("popped {got}, want {want}"))?;
            }
            Ok(())
        });
        verdict(result)
    })?;
    let mut tx = ring.producer().map_err(err)?;
    for i in 0..ITEMS {
        tx.push_blocking(i, HANG).map_err(err)?;
    }
    child.passed("the child consuming", HANG)?;
    check(ring.is_empty(), || format!("{} items left", ring.len()))?;
    let mut rx = ring.consumer().map_err(err)?;
    tx.push(ITEMS).map_err(err)?;
    check(rx.pop() == Ok(ITEMS), || "pop after takeover".into())
}

/// pyshm's pattern for MPMC rings: they have no roles, so the handles the
/// child inherits work there. Two rings made before the fork: the child pops
/// what the parent pushed into one and pushes a stream into the other, which
/// the parent pops.
fn mpmc_ring_inherited_by_the_child_works() -> CaseResult {
    let opts = RingOptions::new().blocking(true);
    let size = MpmcRing::<u64>::required_size(64);
    let (up_region, down_region) = (
        AnonShared::new(size).map_err(err)?,
        AnonShared::new(size).map_err(err)?,
    );
    let up = MpmcRing::<u64, _>::create(&up_region, 64, opts).map_err(err)?;
    let down = MpmcRing::<u64, _>::create(&down_region, 64, opts).map_err(err)?;
    down.push(u64::MAX).map_err(err)?;
    let mut child = Forked::spawn(|| {
        let result = (|| {
            let first = down.pop_blocking(HANG).map_err(err)?;
            check(first == u64::MAX, || format!("the child popped {first}"))?;
            for i in 0..ITEMS {
                up.push_blocking(i, HANG).map_err(err)?;
            }
            Ok(())
        })();
        drop(up.clone()); // dropping a handle in the child is harmless
        verdict(result)
    })?;
    for want in 0..ITEMS {
        let got = up.pop_blocking(HANG).map_err(err)?;
        check(got == want, || format!("popped {got}, want {want}"))?;
    }
    child.passed("the child using its inherited MPMC rings", HANG)?;
    check(down.is_empty(), || "the child did not pop".into())?;
    up.push(5).map_err(err)?;
    check(up.pop() == Ok(5), || {
        "the parent's ring after the child".into()
    })
}

/// Where a forked child's claim hook reports "claimed" (an address in a
/// shared mapping, set before the fork).
static CLAIMED_FLAG: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn report_claimed_and_wait() {
    let flag = CLAIMED_FLAG.load(std::sync::atomic::Ordering::SeqCst)
        as *const std::sync::atomic::AtomicU64;
    // SAFETY: set by the parent to an aligned word of a shared mapping that
    // outlives the child.
    unsafe { (*flag).store(1, std::sync::atomic::Ordering::SeqCst) };
    std::thread::sleep(HANG); // until killed
}

/// A forked child announces its claims in lanes of its own, never in the
/// lane of the parent's thread that it inherited a copy of: killed between
/// claim and publish, it leaves a hole that the parent, whose own lane it
/// excludes when looking for the claimer, recognises as a dead process's
/// and skips.
fn mpmc_forked_child_claims_in_its_own_lane() -> CaseResult {
    let size = MpmcRing::<u64>::required_size(CAP);
    let region = AnonShared::new(size).map_err(err)?;
    let flag_region = AnonShared::new(8).map_err(err)?;
    let flag = flag_region.atomic_u64(0).map_err(err)?;
    CLAIMED_FLAG.store(
        flag as *const _ as usize,
        std::sync::atomic::Ordering::SeqCst,
    );
    let ring = MpmcRing::<u64, _>::create(&region, CAP, RingOptions::new()).map_err(err)?;
    // The parent's thread binds a lane; the child inherits that binding's cache.
    ring.push(0).map_err(err)?;
    check(ring.pop() == Ok(0), || {
        "the parent's own push and pop".into()
    })?;
    let mut child = Forked::spawn(|| {
        if ring.push(1).is_err() {
            return MISMATCH;
        }
        arm(Point::PushClaimed, Action::Call(report_claimed_and_wait));
        let _ = ring.push(2); // parks after claiming position 2
        MISMATCH
    })?;
    let deadline = Instant::now() + HANG;
    while flag.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        check(Instant::now() < deadline, || {
            "the child did not claim".into()
        })?;
        std::thread::sleep(Duration::from_millis(1));
    }
    ring.push(3).map_err(err)?; // behind the child's hole
    child.kill();
    let t0 = Instant::now();
    let got = (ring.pop(), ring.pop(), ring.pop());
    check(got == (Ok(1), Ok(3), Err(PopError::Empty)), || {
        format!("after the child died between claim and publish the parent popped {got:?}")
    })?;
    check(t0.elapsed() < Duration::from_millis(900), || {
        format!("skipping the hole took {:?}", t0.elapsed())
    })?;
    check(ring.recovered().skipped == 1, || {
        format!("{:?}", ring.recovered())
    })
}

fn main() {
    let cases: [Case; 6] = [
        (
            "inherited_producer_is_inert_and_keeps_the_role",
            inherited_producer_is_inert_and_keeps_the_role,
        ),
        (
            "inherited_consumer_is_inert_and_keeps_the_role",
            inherited_consumer_is_inert_and_keeps_the_role,
        ),
        (
            "chunk_alive_across_fork_is_inert_in_the_child",
            chunk_alive_across_fork_is_inert_in_the_child,
        ),
        (
            "spsc_ring_created_before_fork_roles_taken_after",
            spsc_ring_created_before_fork_roles_taken_after,
        ),
        (
            "mpmc_ring_inherited_by_the_child_works",
            mpmc_ring_inherited_by_the_child_works,
        ),
        (
            "mpmc_forked_child_claims_in_its_own_lane",
            mpmc_forked_child_claims_in_its_own_lane,
        ),
    ];
    run_cases(&cases);
}
