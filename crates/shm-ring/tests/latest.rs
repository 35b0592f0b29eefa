//! The SPSC ring's copy of the last single item in the tail's cache line
//! (what a caught-up consumer's `pop` reads instead of the slot): never
//! stale, never torn, and only for the types it fits.

mod common;

use std::sync::atomic::Ordering;
use std::thread;

use shm_ring::{RingOptions, SpscRing};
use shm_segment::{HeapRegion, Region};

#[test]
fn a_bulk_push_after_a_single_one_is_popped_from_its_slot() {
    let (mut tx, mut rx) = SpscRing::<u64>::new_heap(8).unwrap();
    tx.push(1).unwrap();
    assert_eq!(rx.pop(), Ok(1));
    // The copy still holds 1; the next item arrives without one.
    assert_eq!(tx.push_slice(&[2]), 1);
    assert_eq!(rx.pop(), Ok(2));
    let mut chunk = tx.write_chunk(1).unwrap();
    chunk.write_slice(&[3]);
    chunk.commit_all();
    assert_eq!(rx.pop(), Ok(3));
    // Two ready, the last of them copied: the first comes from its slot.
    tx.push(4).unwrap();
    tx.push(5).unwrap();
    assert_eq!((rx.pop(), rx.pop()), (Ok(4), Ok(5)));
    assert!(rx.pop().is_err());
}

/// Positions wrap around at 2^64: the tail 0 reached that way must not
/// take the never-written copy (whose `begun` is 0 too).
#[test]
fn a_tail_wrapped_to_zero_reads_the_slot() {
    let region = HeapRegion::new(SpscRing::<u64>::required_size(4));
    let ring = SpscRing::<u64, _>::create(&region, 4, RingOptions::new()).unwrap();
    for word in [common::TAIL_POS, common::HEAD_POS] {
        region
            .atomic_u64(word)
            .unwrap()
            .store(u64::MAX, Ordering::Relaxed);
    }
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert_eq!(tx.push_slice(&[7]), 1); // position u64::MAX, no copy
    assert_eq!(rx.pop(), Ok(7));
    tx.push(8).unwrap(); // position 0: its copy has `begun` 0
    assert_eq!(rx.pop(), Ok(8));
}

#[test]
fn items_of_every_size_come_back_whole() {
    fn round_trip<T: bytemuck::Pod + PartialEq + std::fmt::Debug>(items: [T; 3]) {
        let (mut tx, mut rx) = SpscRing::<T>::new_heap(4).unwrap();
        for v in items {
            tx.push(v).unwrap();
            assert_eq!(rx.pop(), Ok(v));
        }
    }
    round_trip([[1u8; 3], [2; 3], [3; 3]]);
    round_trip([[1u16; 20], [2; 20], [3; 20]]);
    round_trip([[1u64; 5], [2; 5], [3; 5]]); // fills the tail's line
    round_trip([[1u8; 48], [2; 48], [3; 48]]); // too big: slots only
    round_trip([[1u128; 1], [2; 1], [3; 1]]); // aligned to 16: slots only
}

/// Multi-word items (every word the same) through a small ring, single and
/// bulk pushes mixed, single pops: a torn or stale copy shows as an item
/// whose words differ or that is out of sequence.
#[test]
fn a_racing_producer_never_tears_the_copy() {
    const ITEMS: u64 = 200_000;
    let (mut tx, mut rx) = SpscRing::<[u64; 5]>::new_heap(8).unwrap();
    let producer = thread::spawn(move || {
        let mut v = 0;
        while v < ITEMS {
            if v % 7 == 3 {
                let batch = [[v; 5], [v + 1; 5]];
                let n = (ITEMS - v).min(2) as usize;
                v += tx.push_slice(&batch[..n]) as u64;
            } else if tx.push([v; 5]).is_ok() {
                v += 1;
            }
        }
    });
    let mut next = 0;
    while next < ITEMS {
        if let Ok(item) = rx.pop() {
            assert_eq!(item, [next; 5], "item {next} came out torn or stale");
            next += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    producer.join().unwrap();
}
