//! A failed take from an empty pool is cheap: `try_get` reports it as
//! `Ok(None)` without building an error, so a retry loop allocates nothing
//! (`get`'s `Exhausted` names the pool's segment, a `String`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use shm_mempool::{Channel, MemPool, PoolError};

/// Counts this thread's allocations (the test harness's own threads allocate
/// too, so a global count would be noisy).
struct Counting;

std::thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a thread-local
// `Cell` with a const initializer, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

fn shm_name(what: &str) -> String {
    format!("/shm-test-cheap-{what}-{}", std::process::id())
}

#[test]
fn try_get_on_an_empty_pool_is_none_and_allocates_nothing() {
    let name = shm_name("pool");
    let pool = MemPool::create_posix(&name, 2, 64).expect("pool");
    let _ = shm_segment::PosixShm::unlink_name(&name);
    let held = [pool.get().unwrap(), pool.get().unwrap()];
    let n = allocations_in(|| {
        for _ in 0..1000 {
            assert!(pool.try_get().unwrap().is_none());
        }
    });
    assert_eq!(n, 0, "1000 failed try_get calls allocated {n} times");
    // `get` still says why, naming the segment.
    match pool.get() {
        Err(e @ PoolError::Exhausted { blocks: 2, .. }) => {
            assert!(e.to_string().contains(&name), "{e}")
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    drop(held);
    let block = pool.try_get().unwrap().expect("a block came back");
    assert_eq!(pool.stats().held, 1);
    drop(block);
}

#[test]
fn try_get_of_a_cache_and_a_channel_is_none_when_empty() {
    let pool = MemPool::new_heap(4, 64).unwrap();
    let cache = pool.cache(4).unwrap();
    let held: Vec<_> = (0..4).map(|_| cache.get().unwrap()).collect();
    let n = allocations_in(|| {
        for _ in 0..1000 {
            assert!(cache.try_get().unwrap().is_none());
        }
    });
    assert_eq!(n, 0, "1000 failed cache try_get calls allocated {n} times");
    drop(held);
    assert!(cache.try_get().unwrap().is_some());

    let ch = Channel::create_memfd("shm-test-cheap", 1, 64).unwrap();
    let block = ch.get().unwrap();
    assert!(ch.try_get().unwrap().is_none());
    drop(block);
    assert!(ch.try_get().unwrap().is_some());
}
