//! A byte ring as a pipe: `io::Write` on the producer, `io::Read` on the
//! consumer, end of file once the producer is gone and the ring drained,
//! `BrokenPipe` once the consumer is gone and the ring full.

mod common;

use std::io::{self, Read, Write};
use std::thread;

use shm_ring::{RingOptions, SpscRing};

/// Deterministic bytes that are not a repeating pattern of the ring's size.
fn data(len: usize) -> Vec<u8> {
    let mut rng = common::Rng::new(0x5eed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn io_copy_through_a_small_ring() {
    let src = data(1 << 20);
    let (tx, mut rx) = SpscRing::<u8>::new_heap(64).unwrap();
    let copy = src.clone();
    let writer = thread::spawn(move || {
        let mut tx = tx;
        io::copy(&mut io::Cursor::new(copy), &mut tx).unwrap()
    });
    let mut got = Vec::new();
    rx.read_to_end(&mut got).unwrap();
    assert_eq!(writer.join().unwrap(), src.len() as u64);
    assert_eq!(got.len(), src.len());
    assert!(got == src, "the bytes differ");
}

#[test]
fn io_copy_through_a_posix_segment_with_futex_wakeups() {
    let name = common::posix_name("ring-io");
    let _guard = common::UnlinkGuard(name.clone());
    let opts = RingOptions::new().blocking(true);
    let ring = SpscRing::<u8>::create_posix_with(&name, 256, opts).unwrap();
    // The consumer attaches by name, as another process would.
    let other = SpscRing::<u8>::open_posix(&name).unwrap();
    let mut rx = other.consumer().unwrap();
    let mut tx = ring.producer().unwrap();
    let src = data(300_000);
    let copy = src.clone();
    let writer = thread::spawn(move || {
        io::copy(&mut &copy[..], &mut tx).unwrap();
        // `tx` drops here: end of file for the reader.
    });
    let mut got = Vec::new();
    io::copy(&mut rx, &mut got).unwrap();
    writer.join().unwrap();
    assert!(got == src, "the bytes differ");
}

#[test]
fn read_gives_eof_after_the_producer_drops_and_the_ring_drains() {
    let (mut tx, mut rx) = SpscRing::<u8>::new_heap(8).unwrap();
    assert_eq!(tx.write(b"abcdefghijk").unwrap(), 8, "only what fits");
    tx.flush().unwrap();
    drop(tx);
    let mut buf = [0; 5];
    assert_eq!(rx.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf, b"abcde");
    assert_eq!(rx.read(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"fgh");
    assert_eq!(rx.read(&mut buf).unwrap(), 0, "end of file");
    assert_eq!(rx.read(&mut buf).unwrap(), 0, "still end of file");
}

#[test]
fn read_waits_for_a_slow_writer() {
    let (mut tx, mut rx) = SpscRing::<u8>::new_heap(8).unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(30));
        tx.write_all(b"late").unwrap();
    });
    let mut buf = [0; 4];
    rx.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late");
    writer.join().unwrap();
    assert_eq!(rx.read(&mut buf).unwrap(), 0);
}

#[test]
fn write_fails_with_broken_pipe_once_the_consumer_is_gone() {
    let (mut tx, rx) = SpscRing::<u8>::new_heap(8).unwrap();
    drop(rx);
    let err = tx.write_all(&[1; 20]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn empty_buffers_move_nothing() {
    let (mut tx, mut rx) = SpscRing::<u8>::new_heap(8).unwrap();
    assert_eq!(tx.write(&[]).unwrap(), 0);
    assert_eq!(rx.read(&mut []).unwrap(), 0);
    assert!(rx.is_empty());
}
