use super::*;

#[test]
fn a_word_names_its_state_place_and_generation() {
    let w = next_word(FREE, HELD, 5);
    assert_eq!((state_of(w), place_of(w)), (HELD, 5));
    let q = next_word(w, QUEUED, 0xFFFF_FFFF);
    assert_eq!(
        (state_of(q), place_of(q), block_state(q)),
        (QUEUED, u32::MAX, BlockState::Queued)
    );
    assert_ne!(next_word(w, HELD, 5), w, "a new generation");
}

#[test]
fn every_change_bumps_the_generation_and_it_wraps() {
    let mut w = FREE;
    let mut seen = std::collections::HashSet::new();
    for k in 0..4096u64 {
        assert!(seen.insert(w), "word {w:#x} again after {k} changes");
        w = next_word(w, FREE, 0);
    }
    let last = (GEN_MASK << GEN_SHIFT) | FREE;
    assert_eq!(
        next_word(last, FREE, 0),
        FREE,
        "the generation wraps after 2^30 changes"
    );
}

#[test]
fn a_process_claims_one_slot_and_gives_it_back_on_drop() {
    let region = HeapRegion::new(MemPool::required_size(4, 64));
    let pool = MemPool::create(&region, 4, 64).unwrap();
    let a = pool.get().unwrap();
    let b = pool.get().unwrap();
    let me = ProcessId::current().to_word();
    let claimed: Vec<u32> = (0..SLOTS)
        .filter(|&s| pool.owner(s).load(Ordering::Relaxed) == me)
        .collect();
    assert_eq!(claimed, [0], "one slot per handle and process");
    // A second attach in the same process is another handle: its own slot.
    let other = MemPool::attach(&region).unwrap();
    let c = other.get().unwrap();
    assert_eq!(other.slot().unwrap(), 1);
    drop((a, b, c));
    drop(other);
    assert_eq!(
        pool.owner(1).load(Ordering::Relaxed),
        0,
        "given back on drop"
    );
    // A leaked block keeps its slot claimed.
    let leaked = MemPool::attach(&region).unwrap();
    std::mem::forget(leaked.get().unwrap());
    let s = leaked.slot().unwrap();
    drop(leaked);
    assert_eq!(pool.owner(s).load(Ordering::Relaxed), me);
}

#[test]
fn a_full_owner_table_is_a_typed_error() {
    let region = HeapRegion::new(MemPool::required_size(2, 64));
    let pool = MemPool::create(&region, 2, 64).unwrap();
    // Every slot taken by a live process (this one, under other handles).
    let me = ProcessId::current().to_word();
    for s in 0..SLOTS {
        pool.owner(s).store(me, Ordering::Relaxed);
    }
    match pool.get() {
        Err(PoolError::TooManyProcesses { slots, .. }) => assert_eq!(slots, OWNER_SLOTS),
        other => panic!("get with a full owner table: {other:?}"),
    }
    let msg = pool.get().unwrap_err().to_string();
    assert!(msg.contains("all 128 owner slots"), "{msg}");
    // A slot of a dead process is taken over when the table is full.
    let mut dead = ProcessId::current();
    dead.start_time += 1;
    pool.owner(7).store(dead.to_word(), Ordering::Relaxed);
    let block = pool.get().unwrap();
    assert_eq!(pool.slot().unwrap(), 7);
    drop(block);
}

#[test]
fn fifo_and_lifo_hand_out_in_their_order() {
    for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
        let pool = MemPool::new_heap_with(4, 64, PoolOptions::new().order(order)).unwrap();
        let fresh: Vec<u32> = (0..4)
            .map(|_| pool.get().unwrap().into_id().unwrap().0)
            .collect();
        assert_eq!(fresh, [0, 1, 2, 3], "{order:?}");
        for id in [2, 0, 3, 1] {
            pool.put(BlockId(id)).unwrap();
        }
        let again: Vec<u32> = (0..4)
            .map(|_| pool.get().unwrap().into_id().unwrap().0)
            .collect();
        let want = match order {
            FreeOrder::Fifo => [2, 0, 3, 1],
            FreeOrder::Lifo => [1, 3, 0, 2],
        };
        assert_eq!(again, want, "{order:?}");
    }
}

#[test]
fn every_block_once_then_exhausted_then_all_back() {
    for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
        let pool = MemPool::new_heap_with(5, 64, PoolOptions::new().order(order)).unwrap();
        let blocks: Vec<_> = (0..5).map(|_| pool.get().unwrap()).collect();
        let mut ids: Vec<u32> = blocks.iter().map(|b| b.id().0).collect();
        ids.sort_unstable();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert!(matches!(
            pool.get(),
            Err(PoolError::Exhausted { blocks: 5, .. })
        ));
        drop(blocks);
        assert_eq!(pool.check().unwrap(), 5);
    }
}

#[test]
fn a_fifo_queue_laps_many_times() {
    // Capacity 2 for one block: every put and get moves a lap on.
    let pool = MemPool::new_heap(1, 64).unwrap();
    for round in 0..10_000u64 {
        let b = pool.get().unwrap();
        b.write_pod(0, &round).unwrap();
    }
    assert_eq!(pool.check().unwrap(), 1);
    let pool = MemPool::new_heap(3, 64).unwrap();
    for _ in 0..10_000 {
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        drop(a);
        let c = pool.get().unwrap();
        drop((b, c));
    }
    assert_eq!(pool.check().unwrap(), 3);
}

#[test]
fn corrupted_links_are_errors_not_out_of_bounds() {
    let pool = MemPool::new_heap_with(4, 64, PoolOptions::new().order(FreeOrder::Lifo)).unwrap();
    pool.control().stack.store(99, Ordering::Relaxed);
    assert!(matches!(pool.get(), Err(PoolError::Corrupted { .. })));
    assert!(matches!(pool.check(), Err(PoolError::Corrupted { .. })));
    // A cycle: 1 -> 2 -> 1.
    pool.control().stack.store(1, Ordering::Relaxed);
    pool.meta(0).next.store(2, Ordering::Relaxed);
    pool.meta(1).next.store(1, Ordering::Relaxed);
    let err = pool.check().unwrap_err();
    assert!(err.to_string().contains("cycle"), "{err}");
    assert!(pool.recover_orphans(&[]).is_err());
}

#[test]
fn threads_share_blocks_without_loss() {
    for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
        let pool = MemPool::new_heap_with(64, 64, PoolOptions::new().order(order)).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let pool = &pool;
                s.spawn(move || {
                    for i in 0..20_000u64 {
                        let block = pool.get().unwrap();
                        block.write_pod(0, &[t, i]).unwrap();
                        assert_eq!(block.read_pod::<[u64; 2]>(0).unwrap(), [t, i]);
                    }
                });
            }
        });
        assert_eq!(pool.check().unwrap(), 64, "{order:?}");
        assert_eq!(pool.stats().free, 64);
    }
}

#[test]
fn threads_on_a_tiny_fifo_never_share_a_block() {
    // Two blocks, four threads: the queue is empty most of the time and
    // laps constantly, the hardest case for the stamps and the hints.
    let pool = MemPool::new_heap(2, 64).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pool = &pool;
            s.spawn(move || {
                let mut got = 0;
                while got < 20_000u64 {
                    match pool.get() {
                        Ok(block) => {
                            block.write_pod(0, &[t, got]).unwrap();
                            std::hint::spin_loop();
                            assert_eq!(block.read_pod::<[u64; 2]>(0).unwrap(), [t, got]);
                            got += 1;
                        }
                        Err(PoolError::Exhausted { .. }) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    assert_eq!(pool.check().unwrap(), 2);
}

/// Threads that take, give back, send and receive on a channel of
/// either order lose nothing. (A LIFO give-back that read a head already
/// moved on once called the list corrupted, and the dropped block stayed
/// held by nobody.)
#[test]
fn threads_send_and_receive_through_both_orders_without_loss() {
    use crate::{Channel, ChannelOptions, RecvError};
    for order in [FreeOrder::Lifo, FreeOrder::Fifo] {
        let region = HeapRegion::new(Channel::required_size(8, 64));
        let ch = Channel::create_with(&region, 8, 64, ChannelOptions::new().order(order)).unwrap();
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let ch = &ch;
                s.spawn(move || {
                    let mut x = t + 1;
                    let mut held = Vec::new();
                    for _ in 0..50_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        match x % 4 {
                            0 if held.len() < 2 => held.extend(ch.get().ok()),
                            1 if !held.is_empty() => drop(held.pop()),
                            2 => {
                                if let Ok(b) = ch.get() {
                                    ch.send(b).unwrap();
                                }
                            }
                            _ => match ch.recv() {
                                Ok(b) => drop(b),
                                Err(RecvError::Empty) => {}
                                Err(e) => panic!("{e}"),
                            },
                        }
                    }
                });
            }
        });
        while let Ok(b) = ch.recv() {
            drop(b);
        }
        let s = ch.pool().stats();
        assert_eq!((s.free, s.held, s.queued), (8, 0, 0), "{order:?}: {s:?}");
        assert_eq!(ch.pool().check().unwrap(), 8);
    }
}
