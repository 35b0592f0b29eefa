//! The MPMC ring is linearizable: `push` says `Full` only when the ring is
//! full and `pop` says `Empty` only when it is empty, also while other
//! threads are in the middle of their own push or pop.
//!
//! crossbeam's `linearizable` test for its `ArrayQueue`
//! (`crossbeam-queue/tests/array_queue.rs`), on our ring: 4 threads share a
//! ring of capacity 4, and each loops "push one, then pop one". Each thread
//! holds at most one item, so at any instant the ring holds at most 4 items
//! and at least as many as the threads between their push and their pop: a
//! push never finds it full and a pop never finds it empty. A ring that
//! reports `Full` while a consumer is between claiming a slot and releasing
//! it, or `Empty` while a producer is between claiming a position and
//! publishing it (although an item it could take is ready behind it), fails.
//!
//! Over a heap region (one handle shared by the threads) and over a POSIX
//! segment (a handle per thread, attached by name as another process would).

mod common;

use std::time::Duration;

use shm_ring::{MpmcRing, PopError, PushError, RingOptions};
use shm_segment::{HeapRegion, PosixOptions, PosixShm, Region};

const THREADS: usize = 4;
const COUNT: u64 = 25_000;

/// One thread's loop: push, then pop, `COUNT` times, each asserted.
fn push_then_pop<R: Region>(ring: &MpmcRing<u64, R>, id: u64, batches: bool) {
    for i in 0..COUNT {
        let v = id << 32 | i;
        if batches && i % 2 == 1 {
            assert_eq!(
                ring.push_slice(&[v]),
                1,
                "thread {id}, round {i}: push_slice found the ring full"
            );
            // One slot: taking two would leave another thread nothing.
            let mut out = [0; 1];
            assert_eq!(
                ring.pop_into(&mut out),
                1,
                "thread {id}, round {i}: pop_into found the ring empty"
            );
        } else {
            match ring.push(v) {
                Ok(()) => {}
                Err(PushError::Full(_)) => panic!(
                    "thread {id}, round {i}: push said Full with at most {} items in a ring of {THREADS}",
                    THREADS - 1
                ),
                Err(e) => panic!("thread {id}, round {i}: push: {e}"),
            }
            match ring.pop() {
                Ok(_) => {}
                Err(PopError::Empty) => {
                    panic!("thread {id}, round {i}: pop said Empty after this thread's own push")
                }
                Err(e) => panic!("thread {id}, round {i}: pop: {e}"),
            }
        }
    }
}

fn heap(batches: bool) {
    common::within(common::HANG, "linearizable over the heap", move || {
        let region = HeapRegion::new(MpmcRing::<u64>::required_size(THREADS));
        let ring = MpmcRing::<u64, _>::create(region, THREADS, RingOptions::new()).unwrap();
        std::thread::scope(|s| {
            for id in 0..THREADS as u64 {
                let ring = &ring;
                s.spawn(move || push_then_pop(ring, id, batches));
            }
        });
        assert!(ring.is_empty());
        assert_eq!(ring.pop(), Err(PopError::Empty));
    });
}

fn posix(blocking: bool) {
    common::within(
        common::HANG,
        "linearizable over a POSIX segment",
        move || {
            let name = common::posix_name("ring-linearizable");
            let size = MpmcRing::<u64>::required_size(THREADS);
            let shm = PosixOptions::new()
                .unlink_on_drop(true)
                .create(&name, size)
                .unwrap();
            let opts = RingOptions::new().blocking(blocking);
            let ring = MpmcRing::<u64, _>::create(shm.map().unwrap(), THREADS, opts).unwrap();
            std::thread::scope(|s| {
                for id in 0..THREADS as u64 {
                    let name = &name;
                    s.spawn(move || {
                        let map = PosixShm::open(name).unwrap().map().unwrap();
                        let ring = MpmcRing::<u64, _>::attach(map).unwrap();
                        push_then_pop(&ring, id, blocking);
                    });
                }
            });
            assert!(ring.is_empty());
            assert_eq!(ring.pop_blocking(Duration::ZERO), Err(PopError::Empty));
        },
    );
}

#[test]
fn linearizable_heap() {
    heap(false);
}

#[test]
fn linearizable_heap_batches() {
    heap(true);
}

#[test]
fn linearizable_posix() {
    posix(false);
}

#[test]
fn linearizable_posix_blocking_batches() {
    posix(true);
}
