//! loom models of the pool: both free lists (the FIFO queue whose cells
//! change by one CAS each, and the LIFO Treiber stack with a tagged head)
//! and the ownership protocol (exactly-once claim of an id, release only
//! from the exact word a handle wrote).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-mempool --test loom --release`
//! (`cargo xtask loom` runs these with the rings' models).
#![cfg(loom)]

use loom::thread;
use shm_mempool::{BlockId, FreeOrder, MemPool, PoolError, PoolOptions};
use shm_segment::{HeapRegion, Region};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

const ORDERS: [FreeOrder; 2] = [FreeOrder::Fifo, FreeOrder::Lifo];

fn pool(blocks: u32, order: FreeOrder) -> MemPool<HeapRegion> {
    MemPool::new_heap_with(blocks, 64, PoolOptions::new().order(order)).unwrap()
}

#[test]
fn two_takers_never_get_the_same_block() {
    for order in ORDERS {
        model(move || {
            let pool = pool(2, order);
            let other = pool.clone();
            let t = thread::spawn(move || other.get().map(|b| b.into_id().unwrap()).ok());
            let mine = pool.get().map(|b| b.into_id().unwrap()).ok();
            let theirs = t.join().unwrap();
            assert!(
                mine.is_some() && theirs.is_some(),
                "two blocks for two takers"
            );
            assert_ne!(mine, theirs);
        });
    }
}

#[test]
fn take_and_give_back_race_keeps_the_list_whole() {
    // The ABA shape: one thread takes A while another takes A, takes B and
    // gives A back; the LIFO tag and the FIFO stamps make the stale take fail.
    for order in ORDERS {
        model(move || {
            let pool = pool(2, order);
            let other = pool.clone();
            let t = thread::spawn(move || {
                let a = other.get().unwrap();
                let b = other.get().ok();
                drop(a);
                b.map(|b| b.into_id().unwrap())
            });
            let mine = pool.get().ok().map(|b| b.into_id().unwrap());
            let theirs = t.join().unwrap();
            if let (Some(m), Some(t)) = (mine, theirs) {
                assert_ne!(m, t, "a block handed out twice");
            }
            for id in [mine, theirs].into_iter().flatten() {
                pool.put(id).unwrap();
            }
            assert_eq!(
                pool.check().unwrap(),
                2,
                "both blocks back on the list, no cycle"
            );
        });
    }
}

#[test]
fn fifo_givers_and_takers_on_one_block_lap_the_queue() {
    // One block, queue capacity 2: each give-back and take moves a lap on,
    // from two threads at once, with the head and tail hints lagging.
    model(|| {
        let pool = pool(1, FreeOrder::Fifo);
        let other = pool.clone();
        let t = thread::spawn(move || {
            let mut got = 0;
            for _ in 0..2 {
                if let Ok(b) = other.get() {
                    b.write_pod(0, &1u64).unwrap();
                    got += 1;
                }
            }
            got
        });
        let mut got = 0;
        for _ in 0..2 {
            if let Ok(b) = pool.get() {
                b.write_pod(0, &2u64).unwrap();
                got += 1;
            }
        }
        let theirs = t.join().unwrap();
        assert!(got + theirs >= 1, "nobody got the only block");
        assert_eq!(pool.check().unwrap(), 1);
        assert_eq!(pool.stats().free, 1);
    });
}

#[test]
fn fifo_order_holds_between_a_giver_and_a_taker() {
    // Blocks 0 and 1 given back in that order by one thread: a taker that
    // gets both gets them in that order.
    model(|| {
        let pool = pool(2, FreeOrder::Fifo);
        let ids: Vec<BlockId> = (0..2)
            .map(|_| pool.get().unwrap().into_id().unwrap())
            .collect();
        let other = pool.clone();
        let t = thread::spawn(move || {
            for id in ids {
                other.put(id).unwrap();
            }
        });
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match pool.get() {
                Ok(b) => seen.push(b.into_id().unwrap()),
                Err(PoolError::Exhausted { .. }) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        t.join().unwrap();
        assert_eq!(seen, [BlockId(0), BlockId(1)]);
    });
}

#[test]
fn data_written_before_into_id_is_seen_by_the_claimer_and_the_next_taker() {
    for order in ORDERS {
        model(move || {
            let pool = pool(1, order);
            let block = pool.get().unwrap();
            block.write_pod(0, &3u64).unwrap();
            let id: BlockId = block.into_id().unwrap();
            let other = pool.clone();
            let t = thread::spawn(move || {
                let b = other.from_id(id).unwrap();
                assert_eq!(b.read_pod::<u64>(0).unwrap(), 3);
                b.write_pod(0, &7u64).unwrap();
            });
            t.join().unwrap();
            let again = pool.get().unwrap();
            assert_eq!(again.read_pod::<u64>(0).unwrap(), 7);
        });
    }
}

#[test]
fn an_id_is_claimed_exactly_once() {
    // Two threads race `from_id` on one id while a third `put`s it: exactly
    // one of the three succeeds; the others see it held or free.
    model(|| {
        let pool = pool(1, FreeOrder::Fifo);
        let id = pool.get().unwrap().into_id().unwrap();
        let claimers: Vec<_> = (0..2)
            .map(|_| {
                let p = pool.clone();
                thread::spawn(move || match p.from_id(id) {
                    Ok(b) => {
                        // While this claim holds, nobody else has the block.
                        assert_eq!(p.stats().held, 1);
                        drop(b);
                        true
                    }
                    Err(PoolError::WrongState { found, .. }) => {
                        assert!(found == "held" || found == "free", "{found}");
                        false
                    }
                    Err(e) => panic!("{e}"),
                })
            })
            .collect();
        let put = pool.put(id).is_ok();
        let wins = claimers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&won| won)
            .count()
            + usize::from(put);
        assert_eq!(wins, 1, "an id claimed {wins} times");
        assert_eq!(pool.check().unwrap(), 1);
    });
}

#[test]
fn a_stale_handle_gives_back_nothing() {
    // Thread A holds a block. A peer that wrongly thinks A's process dead
    // frees it (what `reclaim_dead` does to a dead owner's block), and
    // thread B takes it. A's drop, racing B's use, must free nothing.
    for order in ORDERS {
        model(move || {
            let pool = pool(1, order);
            let stale = pool.get().unwrap();
            pool.loom_free_as_if_owner_died(stale.id());
            let other = pool.clone();
            let t = thread::spawn(move || {
                let b = other.get().unwrap();
                b.write_pod(0, &9u64).unwrap();
                thread::yield_now();
                assert_eq!(b.read_pod::<u64>(0).unwrap(), 9);
                b.into_id().unwrap()
            });
            drop(stale);
            let id = t.join().unwrap();
            let s = pool.stats();
            assert_eq!((s.in_transit, s.free), (1, 0), "the stale drop freed it");
            pool.put(id).unwrap();
            assert_eq!(pool.check().unwrap(), 1);
        });
    }
}
