//! One owner per block: the claim protocol, spelled out.
//!
//! 1. An id handed on with `into_id` is claimed exactly once: a second
//!    `from_id` is `WrongState` (it used to give a second `Block` over the
//!    same memory, and dropping either freed it under the other).
//! 2. `from_id` and `put` of a block that a guard holds (this process's
//!    included) are refused and change nothing.
//! 3. A stale handle: a `Block` whose block was taken from it (simulated by
//!    writing the record as another process, or this process under a newer
//!    generation, would: what a peer's `reclaim_dead` and a new `get` do
//!    when they wrongly think this process dead) gives nothing back when
//!    dropped, and `into_id` of it is refused.
//! 4. Threads racing to claim one id: exactly one wins, every round.
//! 5. `reclaim_dead` frees no block in transit.
//!
//! The model tests (`model.rs`) and the loom models (`loom.rs`) cover the
//! same protocol with random sequences and all interleavings.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use common::{generation, held_word, place, raw_word, set_owner, set_raw_word, state, HELD};
use shm_mempool::{BlockId, BlockState, FreeOrder, MemPool, PoolError, PoolOptions};
use shm_segment::{HeapRegion, ProcessId, Region};

const N: usize = 4;

fn pool_in(region: &HeapRegion, order: FreeOrder) -> MemPool<&HeapRegion> {
    MemPool::create_with(region, N, 64, PoolOptions::new().order(order)).unwrap()
}

fn region() -> HeapRegion {
    HeapRegion::new(MemPool::required_size(N, 64))
}

#[test]
fn a_second_from_id_of_one_id_is_an_error() {
    let pool = MemPool::new_heap(N, 64).unwrap();
    let block = pool.get().unwrap();
    block.write_pod(0, &7u64).unwrap();
    let id = block.into_id().unwrap();
    let first = pool.from_id(id).unwrap();
    match pool.from_id(id) {
        Err(PoolError::WrongState {
            op: "from_id",
            id: got,
            expected: BlockState::InTransit,
            found: BlockState::Held,
            ..
        }) => assert_eq!(got, id),
        Ok(second) => {
            drop(second);
            panic!(
                "a second from_id gave a second Block over block {}; dropping it gave \
                 the block back while the first still uses it: {:?}",
                id.0,
                pool.stats()
            );
        }
        Err(e) => panic!("second from_id: {e}"),
    }
    let msg = pool.from_id(id).unwrap_err().to_string();
    assert!(msg.contains("from_id") && msg.contains("held"), "{msg}");
    // The first claim is intact and the only one.
    assert_eq!(first.read_pod::<u64>(0).unwrap(), 7);
    assert_eq!(pool.stats().held, 1);
    drop(first);
    assert_eq!(pool.check().unwrap(), N);
}

#[test]
fn from_id_and_put_of_a_block_a_guard_holds_are_refused() {
    for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
        let r = region();
        let pool = pool_in(&r, order);
        let guard = pool.get().unwrap();
        let id = guard.id();
        let before = raw_word(&r, id.0);
        for (op, err) in [
            ("from_id", pool.from_id(id).map(drop).unwrap_err()),
            ("put", pool.put(id).unwrap_err()),
        ] {
            match err {
                PoolError::WrongState {
                    op: got,
                    found: BlockState::Held,
                    ..
                } => assert_eq!(got, op),
                other => panic!("{op} of a guarded block: {other:?}"),
            }
        }
        assert_eq!(
            raw_word(&r, id.0),
            before,
            "a refused call changed the record"
        );
        assert_eq!(pool.check().unwrap(), N - 1, "{order:?}");
        drop(guard);
        assert_eq!(pool.check().unwrap(), N);
    }
}

#[test]
fn a_stale_handle_does_not_free_a_block_someone_else_holds() {
    for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
        let r = region();
        let pool = pool_in(&r, order);
        let stale = pool.get().unwrap();
        let id = stale.id();
        let w = raw_word(&r, id.0);
        assert_eq!(state(w), HELD);
        // Another process holds the block now (a peer reclaimed it, thinking
        // us dead, and someone took it): pid 1 never runs our tests, but
        // exists, so `reclaim_dead` leaves it alone. It holds it through
        // owner slot 101.
        let init = ProcessId::of(1).expect("pid 1 exists");
        set_owner(&r, 101, init.to_word());
        let theirs = held_word(101, generation(w) + 2);
        set_raw_word(&r, id.0, theirs);
        drop(stale);
        assert_eq!(
            raw_word(&r, id.0),
            theirs,
            "{order:?}: the stale handle's drop freed a block another process holds"
        );
        assert_eq!(pool.check().unwrap(), N - 1, "{order:?}: on the free list");
        assert_eq!(pool.stats().by_owner, vec![(1, 1)]);

        // The same with this very process as the holder under a newer
        // generation (taken again through another path): the words differ.
        let stale = pool.get().unwrap();
        let id2 = stale.id();
        let w = raw_word(&r, id2.0);
        let again = held_word(place(w), generation(w) + 2);
        set_raw_word(&r, id2.0, again);
        drop(stale);
        assert_eq!(raw_word(&r, id2.0), again, "{order:?}");
        // into_id of a stale handle is refused, and changes nothing.
        let stale = pool.get().unwrap();
        let id3 = stale.id();
        let w = raw_word(&r, id3.0);
        let moved = held_word(place(w), generation(w) + 4);
        set_raw_word(&r, id3.0, moved);
        match stale.into_id() {
            Err(PoolError::WrongState {
                op: "into_id",
                found: BlockState::Held,
                ..
            }) => {}
            other => panic!("into_id of a stale handle: {other:?}"),
        }
        assert_eq!(raw_word(&r, id3.0), moved);
        assert_eq!(pool.check().unwrap(), N - 3);
    }
}

#[test]
fn threads_racing_to_claim_one_id_exactly_one_wins() {
    const THREADS: usize = 4;
    let pool = MemPool::new_heap(2, 64).unwrap();
    let barrier = Barrier::new(THREADS);
    for round in 0..200u64 {
        let block = pool.get().unwrap();
        block.write_pod(0, &round).unwrap();
        let id = block.into_id().unwrap();
        let wins = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    barrier.wait();
                    match pool.from_id(id) {
                        Ok(b) => {
                            wins.fetch_add(1, Ordering::Relaxed);
                            assert_eq!(b.read_pod::<u64>(0).unwrap(), round);
                            // Hold it until everyone tried.
                            barrier.wait();
                        }
                        Err(PoolError::WrongState { found, .. }) => {
                            assert!(
                                found == BlockState::Held || found == BlockState::Free,
                                "{found}"
                            );
                            barrier.wait();
                        }
                        Err(e) => panic!("{e}"),
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 1, "round {round}");
        assert_eq!(pool.check().unwrap(), 2);
    }
}

#[test]
fn reclaim_dead_frees_no_block_in_transit() {
    let r = region();
    let pool = pool_in(&r, FreeOrder::Fifo);
    let ids: Vec<BlockId> = (0..2)
        .map(|_| pool.get().unwrap().into_id().unwrap())
        .collect();
    let s = pool.stats();
    assert_eq!((s.in_transit, s.held, s.by_owner.len()), (2, 0, 0), "{s:?}");
    assert!(pool.reclaim_dead().unwrap().is_empty());
    assert_eq!(pool.stats().in_transit, 2);
    // Claimed, they are held (and reclaimable) again; given back, free.
    let b = pool.from_id(ids[0]).unwrap();
    assert_eq!(pool.stats().held, 1);
    drop(b);
    pool.put(ids[1]).unwrap();
    assert_eq!(pool.check().unwrap(), N);
}
