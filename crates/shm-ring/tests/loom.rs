//! loom models of both ring algorithms, over heap memory.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-ring --test loom --release`
//! (`cargo xtask loom` does the same). Under `cfg(loom)` the rings' atomics
//! and slot cells are loom's, so these explore every interleaving (up to the
//! preemption bound) of the real push/pop code, weak memory included. The
//! MPMC ring's claim records are 3 lanes under loom (64 otherwise: 2 bound to
//! a thread, 1 taken per operation, so a model's third thread takes that path), and a
//! process's death is simulated with the `fault-injection` hooks (this
//! crate's tests build with them).
#![cfg(loom)]

use loom::thread;
use shm_ring::fault::{arm, Action, Point};
use shm_ring::{MpmcRing, PopError, SpscRing};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Retries `op` until it succeeds, letting loom schedule others meanwhile.
fn retry<T>(mut op: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = op() {
            return v;
        }
        thread::yield_now();
    }
}

#[test]
fn spsc_delivers_in_order_across_a_wrap() {
    model(|| {
        let (mut tx, mut rx) = SpscRing::<u64>::new_heap(2).unwrap();
        let producer = thread::spawn(move || {
            for v in 1..=3 {
                retry(|| tx.push(v).ok());
            }
        });
        let got: Vec<u64> = (0..3).map(|_| retry(|| rx.pop().ok())).collect();
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}

/// A caught-up consumer's `pop` reads the last single item from the tail's
/// line: never a torn copy (two-word items) nor a stale one (a bulk push in
/// between writes none).
#[test]
fn spsc_copy_in_the_tail_line_is_never_torn_or_stale() {
    model(|| {
        let (mut tx, mut rx) = SpscRing::<[u64; 2]>::new_heap(4).unwrap();
        let producer = thread::spawn(move || {
            retry(|| tx.push([1, 1]).ok());
            retry(|| (tx.push_slice(&[[2, 2]]) == 1).then_some(()));
            retry(|| tx.push([3, 3]).ok());
        });
        let got: Vec<[u64; 2]> = (0..3).map(|_| retry(|| rx.pop().ok())).collect();
        producer.join().unwrap();
        assert_eq!(got, [[1, 1], [2, 2], [3, 3]]);
    });
}

#[test]
fn spsc_bulk_publishes_whole_batches() {
    model(|| {
        let (mut tx, mut rx) = SpscRing::<u64>::new_heap(4).unwrap();
        let producer = thread::spawn(move || {
            let mut sent = 0;
            while sent < 3 {
                sent += tx.push_slice(&[10, 20, 30][sent..]);
                thread::yield_now();
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut buf = [0; 4];
            let n = rx.pop_into(&mut buf);
            got.extend_from_slice(&buf[..n]);
            thread::yield_now();
        }
        producer.join().unwrap();
        assert_eq!(got, [10, 20, 30]);
    });
}

#[test]
fn mpmc_two_producers_one_consumer_lose_nothing() {
    model(|| {
        let ring = MpmcRing::<u64>::new_heap(2).unwrap();
        let producers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|v| {
                let ring = ring.clone();
                thread::spawn(move || retry(|| ring.push(v).ok()))
            })
            .collect();
        let mut got = [retry(|| ring.pop().ok()), retry(|| ring.pop().ok())];
        producers.into_iter().for_each(|p| p.join().unwrap());
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(ring.pop().is_err());
    });
}

#[test]
fn mpmc_two_consumers_take_each_item_once() {
    model(|| {
        let ring = MpmcRing::<u64>::new_heap(2).unwrap();
        ring.push_slice(&[7, 8]);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let ring = ring.clone();
                thread::spawn(move || ring.pop().expect("two items for two consumers"))
            })
            .collect();
        let mut got: Vec<u64> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [7, 8]);
    });
}

#[test]
fn mpmc_capacity_one_never_overwrites_an_unread_item() {
    model(|| {
        let ring = MpmcRing::<u64>::new_heap(1).unwrap();
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                for v in 1..=3 {
                    retry(|| ring.push(v).ok());
                }
            })
        };
        let got: Vec<u64> = (0..3).map(|_| retry(|| ring.pop().ok())).collect();
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}

#[test]
fn mpmc_bulk_push_against_single_pops() {
    model(|| {
        let ring = MpmcRing::<u64>::new_heap(2).unwrap();
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut sent = 0;
                while sent < 3 {
                    sent += ring.push_slice(&[1, 2, 3][sent..]);
                    thread::yield_now();
                }
            })
        };
        let got: Vec<u64> = (0..3).map(|_| retry(|| ring.pop().ok())).collect();
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3], "one producer: its items stay in order");
    });
}

/// A producer dies between claiming its position and publishing it (the
/// fault-injection hook hands its lane to a process that does not exist and
/// abandons the push there). The consumer must still get the item another
/// producer published, whichever position it got, and then find the ring
/// empty: the hole is skipped, never reported as `Empty` before the item
/// behind it, and nothing is taken twice.
#[test]
fn mpmc_dead_producers_hole_is_skipped() {
    model(|| {
        let ring = MpmcRing::<u64>::new_heap(2).unwrap();
        let dying = {
            let ring = ring.clone();
            thread::spawn(move || {
                arm(Point::PushClaimed, Action::Die);
                ring.push(1).unwrap();
            })
        };
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || retry(|| ring.push(2).ok()))
        };
        let got = retry(|| ring.pop().ok());
        dying.join().unwrap();
        producer.join().unwrap();
        assert_eq!(got, 2);
        assert_eq!(ring.pop(), Err(PopError::Empty));
        assert_eq!(ring.recovered().skipped, 1);
        assert!(ring.is_empty());
    });
}

/// A consumer dies between claiming the only slot and releasing it. The
/// producer that needs the slot a lap later must get it (not `Full` for
/// ever), and its item must come out intact.
#[test]
fn mpmc_dead_consumers_slot_is_reclaimed() {
    model(|| {
        let ring = MpmcRing::<u64>::new_heap(1).unwrap();
        ring.push(1).unwrap();
        let dying = {
            let ring = ring.clone();
            thread::spawn(move || {
                arm(Point::PopClaimed, Action::Die);
                let _ = ring.pop();
            })
        };
        let producer = {
            let ring = ring.clone();
            thread::spawn(move || retry(|| ring.push(2).ok()))
        };
        dying.join().unwrap();
        producer.join().unwrap();
        assert_eq!(ring.pop(), Ok(2));
        assert_eq!(ring.recovered().reclaimed, 1);
    });
}

/// Linearizability in miniature: two threads, capacity 2, each pushes one
/// item and then pops one. Neither may find the ring full or empty, however
/// the other's claim and publish interleave with its own.
#[test]
fn mpmc_push_then_pop_never_fails() {
    model(|| {
        let ring = MpmcRing::<u64>::new_heap(2).unwrap();
        let other = {
            let ring = ring.clone();
            thread::spawn(move || {
                ring.push(1)
                    .expect("push found a ring of 2 full with 1 item");
                ring.pop().expect("pop found the ring empty after a push")
            })
        };
        ring.push(2)
            .expect("push found a ring of 2 full with 1 item");
        let mine = ring.pop().expect("pop found the ring empty after a push");
        let theirs = other.join().unwrap();
        let mut got = [mine, theirs];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}
