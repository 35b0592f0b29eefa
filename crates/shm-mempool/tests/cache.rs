//! [`BlockCache`](shm_mempool::BlockCache): blocks cycle through the cache,
//! the stats say what is cached, overflow and flush give blocks back in
//! order, cache blocks hand on as ids and through a channel, a pool without
//! a cache keeps its FIFO order, and a process killed with a full cache
//! loses nothing (`reclaim_dead` gives its cached blocks back).

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::{Running, HANG};
use shm_mempool::{BlockState, Channel, FreeOrder, MemPool, PoolError, PoolOptions};
use shm_segment::{PosixOptions, PosixShm, Region};

#[test]
fn a_block_given_back_to_the_cache_comes_out_of_it_again() {
    for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
        let pool = MemPool::new_heap_with(8, 64, PoolOptions::new().order(order)).unwrap();
        let cache = pool.cache(4).unwrap();
        assert_eq!((cache.capacity(), cache.len()), (4, 0));
        let a = cache.get().unwrap();
        // The first miss took half the capacity: one out, one cached.
        assert_eq!(cache.len(), 1);
        let s = pool.stats();
        assert_eq!((s.free, s.held, s.cached), (6, 1, 1), "{order:?}");
        let id = a.id();
        drop(a);
        for _ in 0..100 {
            assert_eq!(
                cache.get().unwrap().id(),
                id,
                "{order:?}: most recent first"
            );
        }
        let s = pool.stats();
        assert_eq!((s.free, s.held, s.cached, s.dead), (6, 0, 2, 0));
        assert!(s.by_owner.is_empty(), "cached blocks are not held: {s:?}");
        // Cached blocks are on no list, and that is not corruption.
        assert_eq!(pool.check().unwrap(), 6);
        assert!(pool.reclaim_dead().unwrap().is_empty(), "we are alive");
        drop(cache);
        let s = pool.stats();
        assert_eq!((s.free, s.cached), (8, 0));
        assert_eq!(pool.check().unwrap(), 8);
    }
}

#[test]
fn a_full_cache_gives_its_older_half_back_in_order() {
    let pool = MemPool::new_heap(16, 64).unwrap();
    let cache = pool.cache(4).unwrap();
    let blocks: Vec<_> = (0..8).map(|_| cache.get().unwrap()).collect();
    let ids: Vec<u32> = blocks.iter().map(|b| b.id().0).collect();
    assert_eq!(
        ids,
        (0..8).collect::<Vec<_>>(),
        "taken from the pool in FIFO order"
    );
    assert_eq!(cache.len(), 0);
    drop(blocks); // 0..3 fill the cache; 4 spills 0, 1; 5, 6; 7 spills 2, 3
    assert_eq!(cache.len(), 4);
    let s = pool.stats();
    assert_eq!((s.free, s.cached, s.held), (12, 4, 0));
    // The free list: 8..16, then the spilled blocks in the order given back.
    let plain = pool.clone();
    let order: Vec<u32> = (0..12)
        .map(|_| plain.get().unwrap().into_id().unwrap().0)
        .collect();
    assert_eq!(order, [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3]);
    for id in order {
        plain.put(shm_mempool::BlockId(id)).unwrap();
    }
    // The cache hands out its own, most recent first.
    let from_cache: Vec<u32> = (0..4)
        .map(|_| cache.get().unwrap().into_id().unwrap().0)
        .collect();
    assert_eq!(from_cache, [7, 6, 5, 4]);
    for id in from_cache {
        pool.put(shm_mempool::BlockId(id)).unwrap();
    }
    cache.flush();
    assert_eq!(pool.check().unwrap(), 16);
}

#[test]
fn cache_blocks_hand_on_as_ids_and_through_a_channel() {
    let pool = MemPool::new_heap(4, 64).unwrap();
    let cache = pool.cache(4).unwrap();
    let id = cache.get().unwrap().into_id().unwrap();
    assert_eq!(pool.stats().in_transit, 1);
    let again = pool.from_id(id).unwrap(); // a plain block now: back to the pool
    drop(again);
    assert!(matches!(
        pool.put(id),
        Err(PoolError::WrongState {
            found: BlockState::Free,
            ..
        })
    ));

    let name = format!("cache-chan-{}", std::process::id());
    let ch = Channel::create_memfd(&name, 4, 64).unwrap();
    let cache = ch.pool().cache(2).unwrap();
    let b = cache.get().unwrap();
    b.write_at(0, b"cached").unwrap();
    b.set_used(6);
    ch.send(b).unwrap();
    let got = ch.recv().unwrap();
    assert_eq!(got.used(), 6);
    drop(got); // received: back to the pool, not to the sender's cache
    let s = ch.pool().stats();
    assert_eq!((s.free, s.cached, s.queued), (4, 0, 0));
    drop(cache.get().unwrap());
    assert_eq!((ch.pool().stats().cached, cache.len()), (1, 1));
    drop(cache);
    assert_eq!(ch.pool().check().unwrap(), 4);
}

#[test]
fn a_pool_hands_out_fifo_whatever_another_handle_caches() {
    let pool = MemPool::new_heap(8, 64).unwrap();
    let other = pool.clone();
    let cache = other.cache(2).unwrap();
    drop(cache.get().unwrap()); // a miss takes half the capacity: block 0
    let got: Vec<u32> = (0..7)
        .map(|_| pool.get().unwrap().into_id().unwrap().0)
        .collect();
    assert_eq!(got, [1, 2, 3, 4, 5, 6, 7]);
    assert!(matches!(pool.get(), Err(PoolError::Exhausted { .. })));
    for id in [5, 2, 7] {
        pool.put(shm_mempool::BlockId(id)).unwrap();
    }
    let got: Vec<u32> = (0..3)
        .map(|_| pool.get().unwrap().into_id().unwrap().0)
        .collect();
    assert_eq!(got, [5, 2, 7], "given back order");
}

#[test]
fn a_cache_bigger_than_the_pool_is_clamped() {
    let pool = MemPool::new_heap(2, 64).unwrap();
    let cache = pool.cache(1000).unwrap();
    assert_eq!(cache.capacity(), 2);
    assert_eq!(pool.cache(0).unwrap().capacity(), 1);
    let a = cache.get().unwrap();
    let b = cache.get().unwrap();
    assert!(matches!(cache.get(), Err(PoolError::Exhausted { .. })));
    drop((a, b));
    assert_eq!((cache.len(), pool.stats().cached), (2, 2));
}

const KILL_TEST: &str = "a_process_killed_with_a_full_cache_loses_nothing";

#[test]
fn a_process_killed_with_a_full_cache_loses_nothing() {
    if common::is_child(KILL_TEST) {
        let arg = common::child_arg();
        let shm = PosixShm::open(&arg).unwrap();
        let map = shm.map().unwrap();
        let pool = MemPool::attach(&map).unwrap();
        let cache = pool.cache(8).unwrap();
        let held: Vec<_> = (0..6).map(|_| cache.get().unwrap()).collect();
        for b in &held[..5] {
            println!("cached {}", b.id().0);
        }
        println!("held {}", held[5].id().0);
        let keep = held.into_iter().rev().collect::<Vec<_>>();
        let mut keep = keep.into_iter();
        let last = keep.next().unwrap();
        drop(keep); // five back into the cache
        std::mem::forget(last);
        println!("ready");
        std::thread::sleep(HANG);
        std::process::exit(3);
    }
    let t0 = Instant::now();
    let name = common::posix_name("cache-kill");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, MemPool::required_size(16, 64))
        .unwrap();
    let map = shm.map().unwrap();
    let pool = MemPool::create(&map, 16, 64).unwrap();
    let mine = pool.get().unwrap();
    let mut child = Running::child(KILL_TEST, &name);
    let (lines, _) = child.until("ready", HANG);
    let ids = |word: &str| -> BTreeSet<u32> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(word))
            .map(|id| id.trim().parse().unwrap())
            .collect()
    };
    let (cached, held) = (ids("cached "), ids("held "));
    assert_eq!((cached.len(), held.len()), (5, 1));
    let s = pool.stats();
    // The child's cache: 5 given back, plus the 2 left of what its two
    // misses took (4 each: one handed out, three cached).
    assert_eq!((s.held, s.cached, s.dead), (2, 7, 0), "{s:?}");
    assert!(pool.reclaim_dead().unwrap().is_empty(), "alive");

    child.kill9();
    assert!(
        common::wait_until(HANG, || pool.stats().dead == 8),
        "{:?}",
        pool.stats()
    );
    let reclaimed: BTreeSet<u32> = pool.reclaim_dead().unwrap().iter().map(|b| b.0).collect();
    assert_eq!(reclaimed.len(), 8);
    assert!(reclaimed.is_superset(&cached) && reclaimed.is_superset(&held));
    assert!(!reclaimed.contains(&mine.id().0));
    let s = pool.stats();
    assert_eq!((s.free, s.held, s.cached, s.dead), (15, 1, 0, 0), "{s:?}");
    assert_eq!(pool.check().unwrap(), 15);
    drop(mine);
    assert!(t0.elapsed() < HANG);
}
