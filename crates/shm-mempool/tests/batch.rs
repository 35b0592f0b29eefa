//! `Channel::send_many` and `Channel::recv_many`: order, partial batches
//! (fewer queued than asked for, an empty queue, a block that cannot be
//! sent), one batch of blocks from a `BlockCache`, and a batch through a
//! channel between two processes.

mod common;

use common::{Running, HANG};
use shm_mempool::{BlockId, Channel, ChannelOptions, SendError};
use shm_segment::{PosixOptions, PosixShm, Region};

fn channel(blocks: usize) -> Channel<shm_segment::HeapRegion> {
    let region = shm_segment::HeapRegion::new(Channel::required_size(blocks, 64));
    Channel::create_with(region, blocks, 64, ChannelOptions::new().blocking(true)).unwrap()
}

#[test]
fn a_batch_arrives_in_order_and_recv_many_takes_what_is_there() {
    let ch = channel(8);
    let mut out = Vec::new();
    assert_eq!(ch.recv_many(&mut out, 4).unwrap(), 0, "empty");
    assert_eq!(ch.send_many(Vec::new()).unwrap(), 0);
    let blocks: Vec<_> = (0..6u64)
        .map(|k| {
            let b = ch.get().unwrap();
            b.write_pod(0, &k).unwrap();
            b
        })
        .collect();
    let ids: Vec<BlockId> = blocks.iter().map(|b| b.id()).collect();
    assert_eq!(ch.send_many(blocks).unwrap(), 6);
    assert_eq!(ch.len(), 6);
    assert_eq!(ch.pool().stats().queued, 6);
    // Fewer than queued, then the rest, then nothing.
    assert_eq!(ch.recv_many(&mut out, 4).unwrap(), 4);
    assert_eq!(ch.recv_many(&mut out, 4).unwrap(), 2);
    assert_eq!(ch.recv_many(&mut out, 4).unwrap(), 0);
    assert_eq!(out.iter().map(|b| b.id()).collect::<Vec<_>>(), ids);
    for (k, b) in out.iter().enumerate() {
        assert_eq!(b.read_pod::<u64>(0).unwrap(), k as u64);
    }
    // Single sends and batches interleave in one order.
    drop(out);
    ch.send_bytes(b"a").unwrap();
    ch.send_many([ch.get().unwrap(), ch.get().unwrap()])
        .unwrap();
    ch.send_bytes(b"d").unwrap();
    let mut out = Vec::new();
    assert_eq!(ch.recv_many(&mut out, 0).unwrap(), 0);
    assert_eq!(ch.recv_many(&mut out, 100).unwrap(), 4);
    assert_eq!((out[0].used(), out[3].used()), (1, 1));
    drop(out);
    assert_eq!(ch.pool().check().unwrap(), 8);
}

#[test]
fn a_batch_stops_at_a_block_it_cannot_send() {
    let ch = channel(4);
    let other = channel(4);
    let foreign = other.get().unwrap();
    let foreign_id = foreign.id();
    let mut blocks = vec![ch.get().unwrap(), foreign, ch.get().unwrap()].into_iter();
    match ch.send_many(&mut blocks) {
        Err(SendError::ForeignBlock(b)) => assert_eq!(b.id(), foreign_id),
        other => panic!("{other:?}"),
    }
    // The first was sent; the third is still the caller's.
    assert_eq!(ch.len(), 1);
    let rest: Vec<_> = blocks.collect();
    assert_eq!(rest.len(), 1);
    assert_eq!(ch.send_many(rest).unwrap(), 1);
    let mut out = Vec::new();
    assert_eq!(ch.recv_many(&mut out, 4).unwrap(), 2);
    drop(out);
    assert_eq!(
        (ch.pool().check().unwrap(), other.pool().check().unwrap()),
        (4, 4)
    );
}

#[test]
fn a_batch_from_a_cache() {
    let ch = channel(16);
    let cache = ch.pool().cache(8).unwrap();
    for round in 0..10u32 {
        let batch: Vec<_> = (0..4).map(|_| cache.get().unwrap()).collect();
        for b in &batch {
            b.write_pod(0, &round).unwrap();
        }
        assert_eq!(ch.send_many(batch).unwrap(), 4);
        let mut out = Vec::new();
        assert_eq!(ch.recv_many(&mut out, 16).unwrap(), 4);
        assert!(out.iter().all(|b| b.read_pod::<u32>(0).unwrap() == round));
    }
    drop(cache);
    assert_eq!(ch.pool().check().unwrap(), 16);
}

const PROC_TEST: &str = "batches_cross_processes_in_order";

#[test]
fn batches_cross_processes_in_order() {
    const N: u64 = 2000;
    if common::is_child(PROC_TEST) {
        let shm = PosixShm::open(&common::child_arg()).unwrap();
        let map = shm.map().unwrap();
        let ch = Channel::attach(&map).unwrap();
        let mut next = 0u64;
        let mut out = Vec::new();
        while next < N {
            ch.recv_many(&mut out, 8).unwrap();
            for b in out.drain(..) {
                assert_eq!(b.read_pod::<u64>(0).unwrap(), next);
                next += 1;
            }
            if out.is_empty() {
                std::thread::yield_now();
            }
        }
        common::child_done(PROC_TEST);
        return;
    }
    let name = common::posix_name("batch");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, Channel::required_size(16, 64))
        .unwrap();
    let map = shm.map().unwrap();
    let ch = Channel::create(&map, 16, 64).unwrap();
    let child = Running::child(PROC_TEST, &name);
    let mut seq = 0u64;
    while seq < N {
        let mut batch = Vec::new();
        while batch.len() < 8 && seq < N {
            match ch.get() {
                Ok(b) => {
                    b.write_pod(0, &seq).unwrap();
                    seq += 1;
                    batch.push(b);
                }
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            std::thread::yield_now();
            continue;
        }
        ch.send_many(batch).unwrap();
    }
    // The child checked the order of every message.
    child.wait(HANG).assert_child_passed(PROC_TEST);
    assert_eq!(ch.pool().check().unwrap(), 16);
}
