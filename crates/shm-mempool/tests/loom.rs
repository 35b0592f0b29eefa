//! loom models of the pool: both free lists (the FIFO queue whose cells
//! change by one CAS each, and the LIFO Treiber stack with a tagged and
//! marked head), the ownership protocol (exactly-once claim of an id,
//! release only from the exact word a handle wrote), and kills at every
//! step: a handle standing in for another process is killed before each
//! of its writes in turn, in the middle of get, give-back, send and
//! receive, while live threads work; `reclaim_dead` then runs while another
//! live thread works, and nothing may be lost (see the end of the file).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-mempool --test loom --release`
//! (`cargo xtask loom` runs these with the rings' models).
#![cfg(loom)]

use loom::thread;
use shm_mempool::{BlockId, BlockState, FreeOrder, MemPool, PoolError, PoolOptions};
use shm_segment::{HeapRegion, Region};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// The kill models: more steps, so fewer preemptions.
fn kill_model(f: impl Fn() + Sync + Send + 'static) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    let before = RUNS.load(std::sync::atomic::Ordering::Relaxed);
    builder.check(move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "kill model: {} interleavings",
        RUNS.load(std::sync::atomic::Ordering::Relaxed) - before
    );
}

const ORDERS: [FreeOrder; 2] = [FreeOrder::Fifo, FreeOrder::Lifo];

fn pool(blocks: usize, order: FreeOrder) -> MemPool<HeapRegion> {
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
                        assert!(
                            found == BlockState::Held || found == BlockState::Free,
                            "{found}"
                        );
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

// ---------------------------------------------------------------------------
// Kills at every step. A second handle stands in for another process (its
// owner word is one the liveness check calls dead); it is "killed" just
// before its k-th write to shared memory, for every k, while a live handle
// works; then a live thread calls `reclaim_dead` while another keeps
// working. Nothing may be lost: every block ends up free and listed
// (`check` walks them all), or queued for a receiver.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use shm_mempool::{Channel, ChannelOptions, LoomKilled};

/// Writes enough to cover every step of the dying handle's operations.
const MAX_STEPS: u32 = 12;

fn quiet_kills() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<LoomKilled>().is_none() {
                previous(info);
            }
        }));
    });
}

/// Runs `op` as the dying process: killed before its `k`-th write (a
/// killed handle's drop writes nothing: a killed process runs no
/// destructor). Returns whether the kill happened (false: `op` ran to the
/// end).
fn die_at<T>(handle: T, k: u32, set: impl Fn(&T, u32), op: impl FnOnce(&T)) -> bool {
    set(&handle, k);
    let killed = match catch_unwind(AssertUnwindSafe(|| op(&handle))) {
        Ok(()) => false,
        Err(payload) => {
            assert!(
                payload.is::<LoomKilled>(),
                "a real panic in the dying handle"
            );
            true
        }
    };
    drop(handle);
    killed
}

#[test]
fn a_process_killed_at_any_step_of_get_or_give_back_loses_nothing() {
    quiet_kills();
    for order in ORDERS {
        for k in 1..=MAX_STEPS {
            kill_model(move || {
                let region = Arc::new(HeapRegion::new(MemPool::required_size(2, 64)));
                let opts = PoolOptions::new().order(order);
                let live = MemPool::create_with(Arc::clone(&region), 2, 64, opts).unwrap();
                let dying = MemPool::attach(Arc::clone(&region)).unwrap();
                dying.loom_as_other_process();
                let worker = live.clone();
                let t = thread::spawn(move || {
                    if let Ok(b) = worker.get() {
                        b.write_pod(0, &1u64).unwrap();
                    }
                });
                let killed = die_at(
                    dying,
                    k,
                    |p, k| p.loom_kill_after(k),
                    |p| {
                        if let Ok(b) = p.get() {
                            b.write_pod(0, &2u64).unwrap();
                            drop(b); // a give-back: killed at any of its steps too
                        }
                    },
                );
                t.join().unwrap();
                if !killed {
                    return; // k is past the last step: nothing to see
                }
                // Reclaim while another live thread takes and gives back.
                let worker = live.clone();
                let t = thread::spawn(move || {
                    if let Ok(b) = worker.get() {
                        b.write_pod(0, &3u64).unwrap();
                    }
                });
                live.reclaim_dead().unwrap();
                t.join().unwrap();
                let s = live.stats();
                assert_eq!((s.free, s.held, s.dead), (2, 0, 0), "k = {k}: {s:?}");
                assert_eq!(live.check().unwrap(), 2, "k = {k}");
            });
        }
    }
}

#[test]
fn a_process_killed_at_any_step_of_send_or_recv_loses_no_message() {
    quiet_kills();
    for (order, k) in ORDERS
        .into_iter()
        .flat_map(|o| (1..=MAX_STEPS).map(move |k| (o, k)))
    {
        kill_model(move || {
            let region = Arc::new(HeapRegion::new(Channel::required_size(2, 64)));
            let opts = ChannelOptions::new().order(order);
            let live = Channel::create_with(Arc::clone(&region), 2, 64, opts).unwrap();
            let dying = Channel::attach(Arc::clone(&region)).unwrap();
            dying.pool().loom_as_other_process();
            live.send_bytes(&[7]).unwrap();
            let worker = live.clone();
            let t = thread::spawn(move || {
                // A live sender and receiver at the same time.
                let _ = worker.send_bytes(&[8]);
                if let Ok(b) = worker.recv() {
                    let v = b.read_pod::<u8>(0).unwrap();
                    assert!((7..=9).contains(&v), "a message {v}");
                }
            });
            let killed = die_at(
                dying,
                k,
                |c, k| c.pool().loom_kill_after(k),
                |c| {
                    if let Ok(b) = c.get() {
                        b.write_pod(0, &9u8).unwrap();
                        c.send(b).unwrap();
                    }
                    if let Ok(b) = c.recv() {
                        std::mem::forget(b); // held when the process dies
                    }
                },
            );
            t.join().unwrap();
            live.pool().reclaim_dead().unwrap();
            let s = live.pool().stats();
            assert_eq!(s.free + s.queued, 2, "k = {k}, killed {killed}: {s:?}");
            assert_eq!((s.held, s.in_transit), (0, 0), "k = {k}: {s:?}");
            assert_eq!(live.pool().check().unwrap(), s.free, "k = {k}");
            assert_eq!(live.len(), s.queued, "k = {k}");
            // Whatever is queued is a whole message, delivered once.
            for _ in 0..s.queued {
                let b = live.recv().unwrap();
                let v = b.read_pod::<u8>(0).unwrap();
                assert!((7..=9).contains(&v), "k = {k}: a message {v}");
            }
            assert!(live.recv().is_err());
        });
    }
}

/// A process killed at any step while its `BlockCache` takes from the pool,
/// caches, hands out again and gives back (on drop): `reclaim_dead` gives
/// back whatever it held or cached, while a live thread works.
#[test]
fn a_process_killed_at_any_step_of_a_cache_loses_nothing() {
    quiet_kills();
    for order in ORDERS {
        for k in 1..=MAX_STEPS {
            kill_model(move || {
                let region = Arc::new(HeapRegion::new(MemPool::required_size(3, 64)));
                let opts = PoolOptions::new().order(order);
                let live = MemPool::create_with(Arc::clone(&region), 3, 64, opts).unwrap();
                let dying = MemPool::attach(Arc::clone(&region)).unwrap();
                dying.loom_as_other_process();
                let worker = live.clone();
                let t = thread::spawn(move || {
                    if let Ok(b) = worker.get() {
                        b.write_pod(0, &1u64).unwrap();
                    }
                });
                let killed = die_at(
                    dying,
                    k,
                    |p, k| p.loom_kill_after(k),
                    |p| {
                        let cache = p.cache(2).unwrap();
                        // A miss (one from the pool), into the cache, out
                        // of it again, back again; the drop gives it back.
                        for _ in 0..2 {
                            if let Ok(b) = cache.get() {
                                b.write_pod(0, &2u64).unwrap();
                            }
                        }
                    },
                );
                t.join().unwrap();
                if !killed {
                    let s = live.stats();
                    assert_eq!((s.free, s.cached), (3, 0), "k = {k}: {s:?}");
                    return;
                }
                let worker = live.clone();
                let t = thread::spawn(move || {
                    if let Ok(b) = worker.get() {
                        b.write_pod(0, &3u64).unwrap();
                    }
                });
                live.reclaim_dead().unwrap();
                t.join().unwrap();
                let s = live.stats();
                assert_eq!(
                    (s.free, s.held, s.cached, s.dead),
                    (3, 0, 0, 0),
                    "k = {k}: {s:?}"
                );
                assert_eq!(live.check().unwrap(), 3, "k = {k}");
            });
        }
    }
}
