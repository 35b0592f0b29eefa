//! Checks that Miri runs (`cargo +nightly miri test -p shm-segment --test miri`,
//! which `cargo xtask ci` runs when nightly has Miri): the safe copies of a
//! [`Region`] are race-free in Rust's memory model, also when two threads of
//! one process copy the same bytes at the same time. These tests use only heap
//! memory, so they run under Miri as well as natively.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::thread;

use shm_segment::{HeapRegion, Region};

/// Rounds per thread: enough for Miri to explore interleavings, few enough
/// that it finishes in seconds.
const ROUNDS: usize = if cfg!(miri) { 20 } else { 200 };

/// A writer fills a record with one byte value at a time while a reader copies
/// it out: a data race with plain `memcpy`, defined behaviour with atomic
/// copies. Every byte the reader sees was written whole by some round.
#[test]
fn concurrent_write_at_and_read_at_of_the_same_bytes() {
    let region = Arc::new(HeapRegion::new(64));
    // Offset 3, 37 bytes: an unaligned head, whole words, and a tail.
    let offset = 3;
    let writer = {
        let region = Arc::clone(&region);
        thread::spawn(move || {
            for round in 0..ROUNDS {
                region.write_at(offset, &[round as u8; 37]).unwrap();
            }
        })
    };
    let reader = {
        let region = Arc::clone(&region);
        thread::spawn(move || {
            let mut buf = [0u8; 37];
            for _ in 0..ROUNDS {
                region.read_at(offset, &mut buf).unwrap();
                assert!(buf.iter().all(|&b| (b as usize) < ROUNDS));
            }
        })
    };
    writer.join().unwrap();
    reader.join().unwrap();
    let mut last = [0u8; 37];
    region.read_at(offset, &mut last).unwrap();
    assert_eq!(last, [(ROUNDS - 1) as u8; 37]);
}

/// The other safe copies: Pod values, `fill`, and the cursor.
#[test]
fn concurrent_pod_fill_and_cursor_copies() {
    let region = Arc::new(HeapRegion::new(128));
    let writer = {
        let region = Arc::clone(&region);
        thread::spawn(move || {
            for round in 0..ROUNDS as u64 {
                region.write_pod(8, &[round; 4]).unwrap();
                region.fill(64, 32, round as u8).unwrap();
                let mut cursor = region.cursor();
                cursor.seek(SeekFrom::Start(100)).unwrap();
                cursor.write_all(&[round as u8; 20]).unwrap();
            }
        })
    };
    let reader = {
        let region = Arc::clone(&region);
        thread::spawn(move || {
            for _ in 0..ROUNDS {
                let words: [u64; 4] = region.read_pod(8).unwrap();
                assert!(words.iter().all(|&w| (w as usize) < ROUNDS));
                let mut filled = [0u8; 32];
                region.read_at(64, &mut filled).unwrap();
                let mut cursor = region.cursor();
                cursor.seek(SeekFrom::Start(100)).unwrap();
                let mut tail = [0u8; 20];
                cursor.read_exact(&mut tail).unwrap();
            }
        })
    };
    writer.join().unwrap();
    reader.join().unwrap();
    assert_eq!(region.read_pod::<u64>(8).unwrap(), ROUNDS as u64 - 1);
}

/// The public raw copies (`shm_segment::copy`): while a writer fills a
/// record, a reader copies it both into a private buffer and, shared to
/// shared, into another place of the same region. No data race, and every
/// byte copied is one that some round wrote whole.
#[test]
fn concurrent_copy_shared_to_shared_of_a_record_being_written() {
    use shm_segment::copy::{copy_from_shared, copy_shared_to_shared, copy_to_shared};
    let region = Arc::new(HeapRegion::new(128));
    let len = 37;
    let writer = {
        let region = Arc::clone(&region);
        thread::spawn(move || {
            for round in 0..ROUNDS {
                // SAFETY: bytes 3..40 are inside the region; every access to
                // them is atomic (this module and `Region`'s methods).
                unsafe { copy_to_shared(&[round as u8; 37], region.as_ptr().add(3)) };
            }
        })
    };
    let mut out = [0u8; 37];
    for _ in 0..ROUNDS {
        // SAFETY: 3..40 and 69..106 are inside the region; only this thread
        // writes the second range, and all access is atomic.
        unsafe {
            copy_shared_to_shared(region.as_ptr().add(3), region.as_ptr().add(69), len);
            copy_from_shared(region.as_ptr().add(69), &mut out);
        }
        assert!(out.iter().all(|&b| (b as usize) < ROUNDS));
    }
    writer.join().unwrap();
    // SAFETY: as above; the writer has finished.
    unsafe { copy_shared_to_shared(region.as_ptr().add(3), region.as_ptr().add(69), len) };
    let last = (ROUNDS - 1) as u8;
    assert_eq!(region.to_vec()[69..69 + len], [last; 37]);
}
