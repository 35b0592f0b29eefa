//! `get()` + drop of a block, one thread, 64-block pool of 64-byte blocks,
//! against `Box::new([0u8; 64])` + drop: a tiny loop for
//! `valgrind --tool=callgrind` instruction counts (run it with two counts
//! and take the difference) and for short wall-clock runs.
//!
//! ```text
//! cargo run -p shm-mempool --release --example get_drop -- MODE N
//! ```
//!
//! MODE: `fifo` (the default pool), `lifo`, `fifo-cache` and `lifo-cache`
//! (through a `BlockCache` of 32 blocks), `channel` (`get`, `send`, `recv`
//! and drop through a `Channel`, one thread), `box`, `none` (the empty loop).
//! Prints nanoseconds per pair.

use std::hint::black_box;
use std::time::Instant;

use shm_mempool::{Channel, FreeOrder, MemPool, PoolOptions};
use shm_segment::HeapRegion;

const BLOCKS: usize = 64;

fn pool(order: FreeOrder) -> MemPool<HeapRegion> {
    let region = HeapRegion::new(MemPool::required_size(BLOCKS, 64));
    MemPool::create_with(region, BLOCKS, 64, PoolOptions::new().order(order)).expect("pool")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "fifo".into());
    let n: u64 = args
        .next()
        .map_or(10_000_000, |s| s.parse().expect("a count"));
    let (start, what);
    match mode.as_str() {
        "fifo" | "lifo" => {
            let order = if mode == "fifo" {
                FreeOrder::Fifo
            } else {
                FreeOrder::Lifo
            };
            let pool = pool(order);
            drop(pool.get().expect("warm up"));
            start = Instant::now();
            for _ in 0..n {
                let block = pool.get().expect("a free block");
                black_box(&block);
            }
            what = start.elapsed();
            assert_eq!(pool.check().expect("check"), BLOCKS);
        }
        "fifo-cache" | "lifo-cache" => {
            let order = if mode == "fifo-cache" {
                FreeOrder::Fifo
            } else {
                FreeOrder::Lifo
            };
            let pool = pool(order);
            let cache = pool.cache(32).expect("cache");
            drop(cache.get().expect("warm up"));
            start = Instant::now();
            for _ in 0..n {
                let block = cache.get().expect("a free block");
                black_box(&block);
            }
            what = start.elapsed();
            drop(cache);
            assert_eq!(pool.check().expect("check"), BLOCKS);
        }
        "channel" => {
            let region = HeapRegion::new(Channel::required_size(BLOCKS, 64));
            let ch = Channel::create(region, BLOCKS, 64).expect("channel");
            start = Instant::now();
            for _ in 0..n {
                let block = ch.get().expect("a free block");
                ch.send(block).expect("send");
                let block = ch.recv().expect("the block just sent");
                black_box(&block);
            }
            what = start.elapsed();
            assert_eq!(ch.pool().check().expect("check"), BLOCKS);
        }
        "box" => {
            start = Instant::now();
            for _ in 0..n {
                let boxed = Box::new([0u8; 64]);
                black_box(&boxed);
            }
            what = start.elapsed();
        }
        "none" => {
            start = Instant::now();
            for i in 0..n {
                black_box(i);
            }
            what = start.elapsed();
        }
        other => panic!("unknown mode {other}"),
    }
    println!("{mode} {:.2} ns/pair", what.as_nanos() as f64 / n as f64);
}
