//! Corrupted headers and corrupted shared state.
//!
//! 1. Attaching a pool or a channel to memory that is not one (random
//!    bytes, a valid header with one field changed, a region too small)
//!    returns a typed error naming what is wrong, and never panics.
//! 2. A free list that no correct process could have written. LIFO: the
//!    head or a link out of range, a cycle, a block listed twice, a held
//!    block on the list. FIFO: a cell naming a block out of range, a stamp
//!    no lap explains at the head or the tail, a cell a lap behind whose
//!    block is queued there, a block queued twice (a taker skips the second
//!    entry, and `reclaim_dead` queues the block it overwrote again). Both:
//!    random scribbles. `get` works or returns `PoolError::Corrupted`,
//!    `check` returns `Corrupted`, and every call ends (each walk stops
//!    within a lap or two; each test runs under a time limit). The pools
//!    live in memory with `PROT_NONE` guard pages on both sides, so an
//!    access out of bounds would fault instead of passing unnoticed. A FIFO
//!    head or tail left behind (a process killed before moving the hint) is
//!    no corruption: the next call moves it on.
//! 3. What a process killed in the middle of an operation leaves, written
//!    into the shared words as it would leave it, case by case: the next
//!    operation or `reclaim_dead` finishes it, and nothing is lost;
//!    `recover_orphans` frees only ids that nobody alive knows.
//!
//! The layout used to simulate these comes from `shm_mempool::layout`
//! (through `tests/common`), computed from the structures the code uses:
//! the control block, the owner table, the records (`next: u32` index + 1,
//! `used: u32`, `word: u64`), then the cells of the free queue and of the
//! channel queue, `stamp << 32 | index`. `tests/api.rs` pins its numbers.
//!
//! Random inputs come from a seed printed at the start of each test; set
//! `SHM_CORRUPT_SEED` to replay one.

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{
    cell_off, next_off, set_raw_word, within, Guarded, Rng, FIFO_HEAD, FIFO_TAIL, FREE, HEAD,
    IN_TRANSIT, OFF_CAPACITY, OFF_ELEM_ALIGN, OFF_ELEM_SIZE, OFF_KIND, OFF_MAGIC, OFF_STATE,
    OFF_TOTAL, OFF_VERSION, ORDER, PAGE,
};
use shm_mempool::{BlockId, Channel, ChannelOptions, FreeOrder, MemPool, PoolError, PoolOptions};
use shm_segment::{Error, HeaderError, HeapRegion, Kind, Region, SubRegion, HEADER_SIZE};

/// How long any single corrupted-pool scenario may run.
const LIMIT: Duration = Duration::from_secs(20);

/// The header error inside a pool error; panics on any other kind.
fn header_error(err: PoolError) -> HeaderError {
    match err {
        PoolError::Segment(Error::Header { source, .. }) => source,
        other => panic!("expected a header error, got {other:?}"),
    }
}

fn is_corrupted<T: std::fmt::Debug>(r: &Result<T, PoolError>) -> bool {
    matches!(r, Err(PoolError::Corrupted { .. }))
}

// ---------------------------------------------------------------------------
// 1. Attaching to what is not a pool or a channel.

const N: u32 = 8;
/// [`N`] as the API counts blocks.
const NB: usize = N as usize;
const SIZE: usize = 64;

fn pool_bytes() -> Vec<u8> {
    let region = HeapRegion::new(MemPool::required_size(NB, SIZE));
    MemPool::create(&region, NB, SIZE).unwrap();
    region.to_vec()
}

fn channel_bytes() -> Vec<u8> {
    let region = HeapRegion::new(Channel::required_size(NB, SIZE));
    Channel::create_with(&region, NB, SIZE, ChannelOptions::new()).unwrap();
    region.to_vec()
}

/// A valid pool's bytes with `edit` applied; attach must fail with a header
/// error that `check` accepts.
fn pool_refuses(what: &str, edit: impl Fn(&Guarded), check: impl Fn(&HeaderError) -> bool) {
    let g = Guarded::with_bytes(&pool_bytes());
    edit(&g);
    let err = MemPool::attach(&g).expect_err(what);
    let msg = err.to_string();
    let source = header_error(err);
    assert!(
        check(&source),
        "{what}: unexpected error {source:?} ({msg})"
    );
}

fn channel_refuses(what: &str, edit: impl Fn(&Guarded), check: impl Fn(&PoolError) -> bool) {
    let g = Guarded::with_bytes(&channel_bytes());
    edit(&g);
    let err = Channel::attach(&g).expect_err(what);
    assert!(check(&err), "{what}: unexpected error {err:?} ({err})");
}

fn put32(off: usize, v: u32) -> impl Fn(&Guarded) {
    move |g| g.write_pod(off, &v).unwrap()
}

fn put64(off: usize, v: u64) -> impl Fn(&Guarded) {
    move |g| g.write_pod(off, &v).unwrap()
}

#[test]
fn valid_pools_and_channels_attach() {
    let g = Guarded::with_bytes(&pool_bytes());
    let pool = MemPool::attach(&g).unwrap();
    assert_eq!((pool.blocks(), pool.block_size()), (NB, SIZE));
    assert_eq!(pool.check().unwrap(), NB);
    let g = Guarded::with_bytes(&channel_bytes());
    let ch = Channel::attach(&g).unwrap();
    ch.send_bytes(b"hello").unwrap();
    assert_eq!(ch.recv().unwrap().used(), 5);
}

#[test]
fn each_pool_header_field_changed_is_a_typed_error() {
    let total = MemPool::required_size(NB, SIZE) as u64;
    pool_refuses("magic", put64(OFF_MAGIC, 0x1234), |e| {
        matches!(e, HeaderError::BadMagic { found: 0x1234 })
    });
    pool_refuses(
        "all zero",
        |g| g.fill(0, HEADER_SIZE, 0).unwrap(),
        |e| matches!(e, HeaderError::NotInitialised),
    );
    pool_refuses("state", put32(OFF_STATE, 7), |e| {
        matches!(e, HeaderError::NotReady { state: 7 })
    });
    // Layout versions 1 (a LIFO-only pool), 2 (no owner table) and 3 (no
    // cached blocks) are refused, not misread.
    for old in [1, 2, 3] {
        pool_refuses(
            "version",
            put32(OFF_VERSION, old),
            |e| matches!(e, HeaderError::Version { expected: 4, found } if *found == old),
        );
    }
    for kind in [Kind::SPSC_RING, Kind::MPMC_RING, Kind::CHANNEL, Kind(77)] {
        pool_refuses(
            "kind",
            put32(OFF_KIND, kind.0),
            |e| matches!(e, HeaderError::WrongKind { expected: Kind::MEMPOOL, found } if *found == kind),
        );
    }
    pool_refuses("alignment", put32(OFF_ELEM_ALIGN, 8), |e| {
        matches!(
            e,
            HeaderError::ElemAlign {
                expected: 64,
                found: 8
            }
        )
    });
    for size in [0u32, 1, 63, 65, 100] {
        pool_refuses(
            "block size",
            put32(OFF_ELEM_SIZE, size),
            |e| matches!(e, HeaderError::ElemSize { found, .. } if *found == size),
        );
    }
    // A block size that is a multiple of 64 but not this pool's: the
    // layout it implies is not the total size.
    pool_refuses(
        "block size 128",
        put32(OFF_ELEM_SIZE, 128),
        |e| matches!(e, HeaderError::Layout { found, .. } if *found == total),
    );
    pool_refuses("capacity 0", put64(OFF_CAPACITY, 0), |e| {
        matches!(e, HeaderError::Capacity { capacity: 0, .. })
    });
    for cap in [(1 << 31) + 1, u64::from(u32::MAX), 1 << 40, u64::MAX] {
        pool_refuses(
            "capacity too large",
            put64(OFF_CAPACITY, cap),
            |e| matches!(e, HeaderError::Capacity { capacity, .. } if *capacity == cap),
        );
    }
    for cap in [u64::from(N) - 1, u64::from(N) + 1, 1 << 31] {
        pool_refuses(
            "capacity",
            put64(OFF_CAPACITY, cap),
            |e| matches!(e, HeaderError::Layout { found, .. } if *found == total),
        );
    }
    pool_refuses(
        "total larger than the region",
        put64(OFF_TOTAL, total + 1),
        |e| matches!(e, HeaderError::Truncated { .. }),
    );
    pool_refuses(
        "total smaller",
        put64(OFF_TOTAL, total - 64),
        |e| matches!(e, HeaderError::Layout { found, .. } if *found == total - 64),
    );
    // A region too small for the header, and one cut short.
    for len in [0usize, 1, 63] {
        let g = Guarded::new(len);
        let err = MemPool::attach(&g).unwrap_err();
        assert!(
            matches!(header_error(err), HeaderError::RegionTooSmall { .. }),
            "{len} bytes"
        );
    }
    let bytes = pool_bytes();
    let short = Guarded::with_bytes(&bytes[..bytes.len() - 64]);
    assert!(matches!(
        header_error(MemPool::attach(&short).unwrap_err()),
        HeaderError::Truncated { .. }
    ));
    // The free order is no header field, but is checked the same way.
    for order in [0u32, 3, u32::MAX] {
        let g = Guarded::with_bytes(&bytes);
        g.write_pod(ORDER, &order).unwrap();
        let err = MemPool::attach(&g).unwrap_err();
        assert!(
            matches!(&err, PoolError::Corrupted { what, .. } if what.contains("free-order")),
            "{err:?}"
        );
    }
}

#[test]
fn each_channel_header_field_changed_is_a_typed_error() {
    let header = |check: fn(&HeaderError) -> bool| move |e: &PoolError| matches!(e, PoolError::Segment(Error::Header { source, .. }) if check(source));
    channel_refuses(
        "magic",
        put64(OFF_MAGIC, 1),
        header(|e| matches!(e, HeaderError::BadMagic { .. })),
    );
    channel_refuses(
        "state",
        put32(OFF_STATE, 0),
        header(|e| matches!(e, HeaderError::NotReady { .. })),
    );
    channel_refuses(
        "version",
        put32(OFF_VERSION, 9),
        header(|e| matches!(e, HeaderError::Version { .. })),
    );
    channel_refuses(
        "kind",
        put32(OFF_KIND, Kind::MEMPOOL.0),
        header(|e| {
            matches!(
                e,
                HeaderError::WrongKind {
                    expected: Kind::CHANNEL,
                    found: Kind::MEMPOOL
                }
            )
        }),
    );
    channel_refuses(
        "capacity 0",
        put64(OFF_CAPACITY, 0),
        header(|e| matches!(e, HeaderError::Capacity { .. })),
    );
    channel_refuses(
        "capacity",
        put64(OFF_CAPACITY, u64::from(N) * 2),
        // 16 blocks need as many pages as 8: the pool's header disagrees.
        header(|e| {
            matches!(
                e,
                HeaderError::Layout { .. }
                    | HeaderError::Truncated { .. }
                    | HeaderError::Capacity { capacity: 8, .. }
            )
        }),
    );
    channel_refuses(
        "block size 0",
        put32(OFF_ELEM_SIZE, 0),
        header(|e| matches!(e, HeaderError::ElemSize { found: 0, .. })),
    );
    channel_refuses(
        "block size",
        put32(OFF_ELEM_SIZE, 4096),
        header(|e| {
            matches!(
                e,
                HeaderError::Layout { .. } | HeaderError::Truncated { .. }
            )
        }),
    );
    channel_refuses(
        "total",
        put64(OFF_TOTAL, 4096),
        header(|e| matches!(e, HeaderError::Layout { .. })),
    );
    channel_refuses(
        "version 2 (a channel with a ring)",
        put32(OFF_VERSION, 2),
        header(|e| {
            matches!(
                e,
                HeaderError::Version {
                    expected: 3,
                    found: 2
                }
            )
        }),
    );
    // The pool's own header, inside the channel.
    channel_refuses(
        "the pool's magic",
        put64(common::CHANNEL_POOL + OFF_MAGIC, 3),
        header(|e| matches!(e, HeaderError::BadMagic { found: 3 })),
    );
    channel_refuses(
        "the pool's kind",
        put32(common::CHANNEL_POOL + OFF_KIND, Kind::CHANNEL.0),
        header(|e| matches!(e, HeaderError::WrongKind { .. })),
    );
    channel_refuses(
        "the pool's capacity",
        put64(common::CHANNEL_POOL + OFF_CAPACITY, 3),
        header(|e| matches!(e, HeaderError::Layout { .. })),
    );
    channel_refuses(
        "the pool's version",
        put32(common::CHANNEL_POOL + OFF_VERSION, 2),
        header(|e| matches!(e, HeaderError::Version { .. })),
    );
    // Another structure where a channel should be.
    let g = Guarded::with_bytes(&pool_bytes());
    let err = Channel::attach(&g).unwrap_err();
    assert!(
        matches!(
            err,
            PoolError::Segment(Error::Header {
                source: HeaderError::WrongKind { .. },
                ..
            })
        ),
        "{err:?}"
    );
    let g = Guarded::with_bytes(&channel_bytes());
    let err = MemPool::attach(&g).unwrap_err();
    assert!(matches!(
        header_error(err),
        HeaderError::WrongKind {
            found: Kind::CHANNEL,
            ..
        }
    ));
}

/// Extreme block counts and sizes in the header: attach must say what is
/// wrong, not panic (on an overflow in the layout arithmetic) and not
/// touch memory outside the region.
fn extreme_headers(attach: impl Fn(&Guarded) -> Result<(), PoolError>, bytes: &[u8]) {
    let caps = [
        0u64,
        1,
        2,
        7,
        9,
        1 << 31,
        u64::from(u32::MAX) - 1,
        u64::from(u32::MAX),
        1 << 40,
        u64::MAX,
    ];
    let sizes = [0u32, 1, 64, 65, 1 << 31, u32::MAX - 63, u32::MAX];
    let mut panics = Vec::new();
    for cap in caps {
        for size in sizes {
            let g = Guarded::with_bytes(bytes);
            g.write_pod(OFF_CAPACITY, &cap).unwrap();
            g.write_pod(OFF_ELEM_SIZE, &size).unwrap();
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| attach(&g)));
            match result {
                Ok(Ok(())) => assert!(
                    cap == u64::from(N) && size == SIZE as u32,
                    "attached with capacity {cap}, block size {size}"
                ),
                Ok(Err(_)) => {}
                Err(_) => panics.push((cap, size)),
            }
        }
    }
    assert!(
        panics.is_empty(),
        "attach panicked for (capacity, block size) {panics:?}"
    );
}

#[test]
fn pool_attach_with_extreme_counts_and_sizes_is_an_error() {
    extreme_headers(|g| MemPool::attach(g).map(drop), &pool_bytes());
}

#[test]
fn channel_attach_with_extreme_counts_and_sizes_is_an_error_not_a_panic() {
    extreme_headers(|g| Channel::attach(g).map(drop), &channel_bytes());
}

#[test]
fn random_bytes_in_and_around_a_header_never_panic() {
    let mut rng = Rng::from_env("SHM_CORRUPT_SEED");
    let (pool, channel) = (pool_bytes(), channel_bytes());
    for round in 0..2000 {
        // Random bytes, or a real header with random bytes somewhere in it.
        let mut bytes = match rng.below(3) {
            0 => {
                let mut b = vec![0; rng.below(2 * PAGE as u64) as usize];
                rng.fill(&mut b);
                b
            }
            1 => pool.clone(),
            _ => channel.clone(),
        };
        if !bytes.is_empty() {
            let at = rng.below(HEADER_SIZE.min(bytes.len()) as u64) as usize;
            let n = (1 + rng.below(8) as usize).min(bytes.len() - at);
            rng.fill(&mut bytes[at..at + n]);
        }
        let g = Guarded::with_bytes(&bytes);
        let p = std::panic::catch_unwind(AssertUnwindSafe(|| MemPool::attach(&g).map(drop)));
        let c = std::panic::catch_unwind(AssertUnwindSafe(|| Channel::attach(&g).map(drop)));
        assert!(
            p.is_ok() && c.is_ok(),
            "round {round}: attach panicked on {bytes:02x?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 2. A corrupted free list.

/// A fresh guarded LIFO pool of N blocks, all free (list 0 -> 1 -> ... -> N-1).
fn guarded_pool() -> (Arc<Guarded>, MemPool<Arc<Guarded>>) {
    guarded(FreeOrder::Lifo)
}

/// A fresh guarded FIFO pool of N blocks, all free (cells 0..N hold blocks
/// 0..N at stamps 1..=N; head 0, tail N).
fn guarded_fifo() -> (Arc<Guarded>, MemPool<Arc<Guarded>>) {
    guarded(FreeOrder::Fifo)
}

fn guarded(order: FreeOrder) -> (Arc<Guarded>, MemPool<Arc<Guarded>>) {
    let g = Arc::new(Guarded::new(MemPool::required_size(NB, SIZE)));
    let pool =
        MemPool::create_with(Arc::clone(&g), NB, SIZE, PoolOptions::new().order(order)).unwrap();
    (g, pool)
}

/// Sets FIFO cell `c` to `stamp << 32 | index`.
fn set_cell(g: &Guarded, c: u64, stamp: u32, index: u32) {
    g.atomic_u64(cell_off(N, c)).unwrap().store(
        (u64::from(stamp) << 32) | u64::from(index),
        Ordering::Release,
    );
}

fn set_pos(g: &Guarded, at: usize, pos: u64) {
    g.atomic_u64(at).unwrap().store(pos, Ordering::Release);
}

fn pos(g: &Guarded, at: usize) -> u64 {
    g.load_u64(at, Ordering::Acquire).unwrap()
}

/// Sets the head to `link` (index + 1, 0 = empty), with a tag and no
/// pending mark.
fn set_head(g: &Guarded, link: u32) {
    g.atomic_u64(HEAD)
        .unwrap()
        .store((7 << 40) | u64::from(link), Ordering::Release);
}

fn set_next(g: &Guarded, i: u32, link: u32) {
    g.atomic_u32(next_off(i))
        .unwrap()
        .store(link, Ordering::Release);
}

/// Takes blocks until `get` fails; never more than N + 1 calls. Returns how
/// many it got and the error.
fn drain(pool: &MemPool<Arc<Guarded>>) -> (Vec<BlockId>, PoolError) {
    let mut got = Vec::new();
    for _ in 0..=N {
        match pool.get() {
            Ok(b) => got.push(b.into_id().unwrap()),
            Err(e) => return (got, e),
        }
    }
    panic!("took {} blocks from a pool of {N}", got.len());
}

#[test]
fn head_out_of_range_is_corrupted() {
    within(LIMIT, "head out of range", || {
        for link in [N + 1, N + 2, u32::MAX] {
            let (g, pool) = guarded_pool();
            set_head(&g, link);
            assert!(
                is_corrupted(&pool.get().map(|b| b.into_id())),
                "get, head {link}"
            );
            assert!(is_corrupted(&pool.check()), "check, head {link}");
            assert!(
                is_corrupted(&pool.recover_orphans(&[])),
                "recover, head {link}"
            );
            // Counting by records still works and shows all free.
            assert_eq!(pool.stats().free, NB);
            let msg = pool.check().unwrap_err().to_string();
            assert!(msg.contains("corrupted"), "{msg}");
            let io: std::io::Error = pool.check().unwrap_err().into();
            assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
        }
    });
}

#[test]
fn link_out_of_range_is_corrupted() {
    within(LIMIT, "link out of range", || {
        let (g, pool) = guarded_pool();
        set_next(&g, 2, N + 5); // 0 -> 1 -> 2 -> (out of range)
        assert!(is_corrupted(&pool.check()));
        // Block 2 comes off the list; the bad link below it is found when
        // the head that took block 2 off is settled, by the next call.
        let (got, err) = drain(&pool);
        assert_eq!(got, [BlockId(0), BlockId(1), BlockId(2)]);
        assert!(matches!(err, PoolError::Corrupted { .. }), "{err:?}");
        // It stays corrupted (the bad link is still at the head), not
        // worse: a give-back, which links to it, says so too.
        assert!(is_corrupted(&pool.get().map(|b| b.into_id())));
        assert!(is_corrupted(&pool.put(got[0])));
        assert_eq!(
            pool.stats().in_transit,
            2,
            "the refused put left it as it was"
        );
    });
}

#[test]
fn a_cycle_is_corrupted_and_every_walk_ends() {
    within(LIMIT, "cycle", || {
        let (g, pool) = guarded_pool();
        // 0 -> 1 -> 0 -> ...: blocks 2.. are on no list.
        set_head(&g, 1);
        set_next(&g, 0, 2);
        set_next(&g, 1, 1);
        let err = pool.check().unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
        assert!(is_corrupted(&pool.recover_orphans(&[])));
        let (got, err) = drain(&pool);
        assert_eq!(got, [BlockId(0), BlockId(1)], "each block at most once");
        assert!(matches!(err, PoolError::Corrupted { .. }), "{err:?}");
        let s = pool.stats();
        assert_eq!((s.in_transit, s.free), (2, NB - 2));
    });
}

#[test]
fn a_block_listed_twice_is_corrupted() {
    within(LIMIT, "listed twice", || {
        let (g, pool) = guarded_pool();
        // 0 -> 1 -> 2 -> 1: block 1 appears twice on the walk.
        set_next(&g, 2, 2);
        assert!(is_corrupted(&pool.check()));
        let (got, err) = drain(&pool);
        assert_eq!(got, [BlockId(0), BlockId(1), BlockId(2)]);
        let msg = err.to_string();
        assert!(matches!(err, PoolError::Corrupted { .. }), "{msg}");
        assert!(msg.contains("block 1"), "{msg}");
    });
}

#[test]
fn a_held_block_on_the_list_is_corrupted() {
    within(LIMIT, "held on the list", || {
        let (g, pool) = guarded_pool();
        let held = pool.get().unwrap(); // block 0, now held; head -> 1
                                        // Put it back on the list while it is still held.
        set_next(&g, 0, 2);
        set_head(&g, 1);
        let err = pool.check().unwrap_err();
        assert!(err.to_string().contains("held"), "{err}");
        // `get` takes the entry off, finds it held, and says so: the holder
        // keeps it.
        assert!(is_corrupted(&pool.get().map(|b| b.into_id())));
        assert_eq!(pool.stats().by_owner[0].1, 1);
        assert_eq!(
            pool.check().unwrap(),
            NB - 1,
            "the rest of the list is fine"
        );
        drop(held);
        assert_eq!(pool.check().unwrap(), NB);
        // A record in another state on the list (block 0 is on top again):
        // queued in the channel queue, as far as its word says.
        set_raw_word(&*g, 0, common::QUEUED);
        assert!(is_corrupted(&pool.check()));
        assert_eq!(pool.stats().queued, 1);
        assert!(is_corrupted(&pool.get().map(|b| b.into_id())));
    });
}

#[test]
fn random_scribbles_never_panic_never_hang() {
    let seed = Rng::from_env("SHM_CORRUPT_SEED").next_u64();
    within(Duration::from_secs(120), "random scribbles", move || {
        let mut rng = Rng::new(seed);
        let (mut corrupted, mut ok) = (0u64, 0u64);
        for round in 0..600 {
            let order = if round % 2 == 0 {
                FreeOrder::Fifo
            } else {
                FreeOrder::Lifo
            };
            let (g, pool) = guarded(order);
            let cap = u64::from(N.next_power_of_two());
            let mut held = Vec::new();
            for _ in 0..60 {
                match rng.below(10) {
                    // Scribble a head, a link or cell, a word.
                    0 => match order {
                        FreeOrder::Lifo => set_head(&g, rng.below(u64::from(N) + 3) as u32),
                        _ => set_pos(
                            &g,
                            if rng.below(2) == 0 {
                                FIFO_HEAD
                            } else {
                                FIFO_TAIL
                            },
                            match rng.below(3) {
                                0 => rng.next_u64(),
                                _ => pos(&g, FIFO_HEAD).wrapping_add(rng.below(2 * cap + 2)),
                            },
                        ),
                    },
                    1 => match order {
                        FreeOrder::Lifo => set_next(
                            &g,
                            rng.below(u64::from(N)) as u32,
                            rng.below(u64::from(N) + 3) as u32,
                        ),
                        _ => set_cell(
                            &g,
                            rng.below(cap),
                            match rng.below(3) {
                                0 => rng.next_u64() as u32,
                                _ => (pos(&g, FIFO_HEAD) + rng.below(2 * cap + 2)) as u32,
                            },
                            rng.below(u64::from(N) + 2) as u32,
                        ),
                    },
                    2 => set_raw_word(
                        &*g,
                        rng.below(u64::from(N)) as u32,
                        match rng.below(4) {
                            0 => FREE,
                            1 => IN_TRANSIT,
                            2 => 3,
                            _ => rng.next_u64(),
                        },
                    ),
                    3..=5 => match pool.get() {
                        Ok(b) => held.push(b.into_id().unwrap()),
                        Err(PoolError::Corrupted { .. }) => corrupted += 1,
                        Err(PoolError::Exhausted { .. }) => {}
                        Err(e) => panic!("get: {e}"),
                    },
                    6 if !held.is_empty() => {
                        let id = held.swap_remove(0);
                        let _ = pool.put(id);
                    }
                    7 => match pool.check() {
                        Ok(n) => {
                            assert!(n <= NB);
                            ok += 1;
                        }
                        Err(PoolError::Corrupted { .. }) => corrupted += 1,
                        Err(e) => panic!("check: {e}"),
                    },
                    8 => {
                        let _ = pool.reclaim_dead();
                        let s = pool.stats();
                        assert_eq!(s.free + s.held + s.in_transit + s.queued + s.unknown, NB);
                    }
                    _ => match pool.recover_orphans(&[]) {
                        Ok(ids) => assert!(ids.len() <= N as usize),
                        Err(PoolError::Corrupted { .. }) => corrupted += 1,
                        Err(e) => panic!("recover_orphans: {e}"),
                    },
                }
            }
        }
        eprintln!("{corrupted} Corrupted errors, {ok} clean checks");
        assert!(corrupted > 0);
    });
}

// ---------------------------------------------------------------------------
// 2b. A corrupted FIFO queue, and hints a killed process left behind.

#[test]
fn fifo_cell_out_of_range_is_corrupted() {
    within(LIMIT, "cell out of range", || {
        for index in [N, N + 1, u32::MAX] {
            let (g, pool) = guarded_fifo();
            set_cell(&g, 0, 1, index); // full for position 0, names `index`
            let err = pool.get().map(|b| b.into_id()).unwrap_err();
            assert!(
                matches!(&err, PoolError::Corrupted { what, .. } if what.contains(&format!("block {index}"))),
                "{err:?}"
            );
            assert!(is_corrupted(&pool.check()), "check, index {index}");
            assert!(is_corrupted(&pool.recover_orphans(&[])));
            // It stays corrupted (the bad cell is still at the head), not
            // worse, and counting by records still works.
            assert!(is_corrupted(&pool.get().map(|b| b.into_id())));
            assert_eq!(pool.stats().free, NB);
            let io: std::io::Error = pool.check().unwrap_err().into();
            assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);
        }
    });
}

#[test]
fn fifo_stamps_no_lap_explains_are_corrupted_and_every_call_ends() {
    within(LIMIT, "bad stamps", || {
        let cap = u64::from(N.next_power_of_two());
        // At the head: a stamp from far behind or ahead.
        for stamp in [5000u32, u32::MAX, 3, cap as u32 + 3] {
            let (g, pool) = guarded_fifo();
            set_cell(&g, 0, stamp, 0);
            assert!(
                is_corrupted(&pool.get().map(|b| b.into_id())),
                "get, stamp {stamp}"
            );
            assert!(is_corrupted(&pool.check()), "check, stamp {stamp}");
        }
        // At the tail: a cell still full from a lap before, naming a block
        // whose word says it is queued there: the queue would hold more
        // blocks than the pool has. The put says so, and changes nothing.
        let (g, pool) = guarded_fifo();
        let id = pool.get().unwrap().into_id().unwrap(); // block 0, head 1
        let wrap = u64::from(N) % cap;
        set_cell(&g, wrap, (u64::from(N) + 1 - cap) as u32, 2);
        let two = common::raw_word(&*g, 2);
        set_raw_word(&*g, 2, two & 0xFFFF_FFFF); // free, at position 0
        let err = pool.put(id).unwrap_err();
        assert!(
            matches!(&err, PoolError::Corrupted { what, .. } if what.contains("more blocks")),
            "{err:?}"
        );
        assert_eq!(
            pool.stats().in_transit,
            1,
            "the refused put changed the block"
        );
        // Repaired, the put goes through.
        set_cell(&g, wrap, N, 0);
        set_raw_word(&*g, 2, two);
        assert_eq!(pool.check().unwrap(), NB - 1);
        pool.put(id).unwrap();
        assert_eq!(pool.check().unwrap(), NB);
        // A cell a lap behind whose block was taken since (a taker killed
        // before emptying it, a lap ago): the giver empties it and goes on.
        let (g, pool) = guarded_fifo();
        let id = pool.get().unwrap().into_id().unwrap(); // block 0, head 1
        set_cell(&g, wrap, (u64::from(N) + 1 - cap) as u32, 0);
        pool.put(id).unwrap();
        assert_eq!(pool.check().unwrap(), NB);
    });
}

#[test]
fn fifo_block_queued_twice_is_corrupted_and_reclaim_repairs_it() {
    within(LIMIT, "queued twice", || {
        let (g, pool) = guarded_fifo();
        // Cell 2 names block 1 too: 0, 1, 1, 3, ...; block 2 fell out of
        // the queue when its cell was overwritten.
        set_cell(&g, 2, 3, 1);
        let err = pool.check().unwrap_err();
        assert!(err.to_string().contains("block 1"), "{err}");
        let a = pool.get().unwrap().into_id().unwrap();
        let b = pool.get().unwrap().into_id().unwrap();
        assert_eq!((a, b), (BlockId(0), BlockId(1)));
        // The second entry of block 1 names a block that is taken: a taker
        // skips it, as it skips a cell whose taker was killed before
        // emptying it. Nobody gets block 1 twice.
        let c = pool.get().unwrap().into_id().unwrap();
        assert_eq!(c, BlockId(3));
        let err = pool.check().unwrap_err();
        assert!(
            err.to_string().contains("block 2 is free but in no list"),
            "{err}"
        );
        // Block 2's word says where it was queued; reclaim_dead (or
        // recover_orphans) finds its cell taken and queues it again.
        assert!(pool.reclaim_dead().unwrap().is_empty());
        assert_eq!(pool.check().unwrap(), NB - 3);
        for id in [a, b, c] {
            pool.put(id).unwrap();
        }
        assert_eq!(pool.check().unwrap(), NB);
    });
}

#[test]
fn fifo_hints_a_killed_process_left_behind_are_moved_on() {
    within(LIMIT, "lagging hints", || {
        let (g, pool) = guarded_fifo();
        // A taker killed after emptying cell 0, before moving the head.
        let first = pool.get().unwrap().into_id().unwrap();
        assert_eq!(pos(&g, FIFO_HEAD), 1);
        set_pos(&g, FIFO_HEAD, 0);
        assert_eq!(
            pool.check().unwrap(),
            NB - 1,
            "a lagging head is no corruption"
        );
        assert_eq!(pool.get().unwrap().into_id().unwrap(), BlockId(1));
        assert_eq!(pos(&g, FIFO_HEAD), 2);
        // A giver killed after filling a cell, before moving the tail.
        pool.put(first).unwrap();
        let tail = pos(&g, FIFO_TAIL);
        set_pos(&g, FIFO_TAIL, tail - 1);
        assert_eq!(pool.check().unwrap(), NB - 1);
        pool.put(BlockId(1)).unwrap();
        assert_eq!(pos(&g, FIFO_TAIL), tail + 1);
        assert_eq!(pool.check().unwrap(), NB);
        // A giver killed after filling, before moving the tail, and then a
        // taker that emptied that cell: the tail is behind the head.
        let (g2, small) = {
            let g = Arc::new(Guarded::new(MemPool::required_size(2, SIZE)));
            let p = MemPool::create(Arc::clone(&g), 2, SIZE).unwrap();
            (g, p)
        };
        let a = small.get().unwrap().into_id().unwrap();
        let b = small.get().unwrap().into_id().unwrap();
        small.put(a).unwrap(); // filled at position 2, tail 3
        set_pos(&g2, FIFO_TAIL, 2);
        assert_eq!(small.get().unwrap().into_id().unwrap(), a); // head 3
        assert_eq!(pos(&g2, FIFO_HEAD), 3);
        assert_eq!(
            small.check().unwrap(),
            0,
            "a tail behind the head is no corruption"
        );
        small.put(b).unwrap();
        small.put(a).unwrap();
        assert_eq!(small.check().unwrap(), 2);
        // The queue order survived: 2, 3, …, then 0, then 1.
        let order: Vec<u32> = (0..N)
            .map(|_| pool.get().unwrap().into_id().unwrap().0)
            .collect();
        let mut want: Vec<u32> = (2..N).collect();
        want.extend([0, 1]);
        assert_eq!(order, want);
    });
}

// ---------------------------------------------------------------------------
// 3. What a process killed in the middle of an operation leaves, and who
//    finishes it. Each case writes the shared words as the killed process
//    left them (its owner slot: a dead process's) and checks that the next
//    operation, or `reclaim_dead`, finishes or undoes the step, with
//    nothing lost. (The pool before layout 3 left a block free but on no
//    list in the first two cases, which only `recover_orphans` found, with
//    every other process stopped.)

/// The slot the "killed" process held blocks through.
const DEAD: u32 = 40;

#[test]
fn fifo_killed_after_marking_a_block_free_before_queueing_it() {
    let (g, pool) = guarded_fifo();
    let id = pool.get().unwrap().into_id().unwrap(); // block 0
                                                     // A giver marked block 0 free at the tail (position N) and was killed
                                                     // before filling the cell.
    let w = common::raw_word(&*g, 0);
    let free_at_tail = (u64::from(N) << 32) | (common::generation(w) + 1) << 2;
    set_raw_word(&*g, 0, free_at_tail);
    let _ = id;
    let err = pool.check().unwrap_err();
    assert!(
        err.to_string().contains("block 0 is free but in no list"),
        "{err}"
    );
    assert!(pool.reclaim_dead().unwrap().is_empty(), "nobody held it");
    assert_eq!(pool.check().unwrap(), NB);
    // Another giver took that position meanwhile: the block moves on.
    let (g, pool) = guarded_fifo();
    let a = pool.get().unwrap().into_id().unwrap(); // block 0
    let b = pool.get().unwrap().into_id().unwrap(); // block 1
    let w = common::raw_word(&*g, 0);
    set_raw_word(
        &*g,
        0,
        (u64::from(N) << 32) | (common::generation(w) + 1) << 2,
    );
    pool.put(b).unwrap(); // fills position N
    assert!(is_corrupted(&pool.check()));
    assert!(pool.reclaim_dead().unwrap().is_empty());
    assert_eq!(pool.check().unwrap(), NB);
    let order: Vec<u32> = (0..N)
        .map(|_| pool.get().unwrap().into_id().unwrap().0)
        .collect();
    assert_eq!(&order[N as usize - 2..], [1, 0], "queued after block 1");
    let _ = a;
}

#[test]
fn fifo_killed_after_taking_a_block_before_emptying_its_cell() {
    let (g, pool) = guarded_fifo();
    // A taker marked block 0 held by itself (the decisive step) and was
    // killed before emptying cell 0 or moving the head.
    common::steal_for_the_dead(&*g, DEAD, 0);
    assert_eq!(pool.stats().dead, 1);
    assert_eq!(
        pool.check().unwrap(),
        NB - 1,
        "a taken cell is no corruption"
    );
    // The next taker empties the cell for it and takes the next block.
    assert_eq!(pool.get().unwrap().into_id().unwrap(), BlockId(1));
    assert_eq!(pool.reclaim_dead().unwrap(), vec![BlockId(0)]);
    assert_eq!(common::owner(&*g, DEAD), 0);
    assert_eq!(pool.check().unwrap(), NB - 1);
}

#[test]
fn lifo_killed_with_a_marked_head() {
    // Killed right after the decisive CAS of a get: the head says "popped
    // by slot DEAD", block 0's word still says free.
    let (g, pool) = guarded_pool();
    g.atomic_u64(HEAD).unwrap().store(
        (7 << 40) | ((2 + u64::from(DEAD)) << 32) | 1,
        Ordering::Release,
    );
    common::set_owner(&*g, DEAD, common::dead_owner());
    // The next get settles it (block 0 is the dead's) and takes block 1.
    assert_eq!(pool.get().unwrap().into_id().unwrap(), BlockId(1));
    assert_eq!(common::state(common::raw_word(&*g, 0)), common::HELD);
    assert_eq!(pool.reclaim_dead().unwrap(), vec![BlockId(0)]);
    assert_eq!(pool.check().unwrap(), NB - 1);

    // Killed right after the decisive CAS of a give-back: block 0 is linked
    // on top ("pushed"), its word still says held by the dead.
    let (g, pool) = guarded_pool();
    let id = pool.get().unwrap().into_id().unwrap(); // block 0, head -> 1
    common::steal_for_the_dead(&*g, DEAD, id.0);
    set_next(&g, 0, 2);
    g.atomic_u64(HEAD)
        .unwrap()
        .store((9 << 40) | (1 << 32) | 1, Ordering::Release);
    // reclaim_dead settles the head first: the block is free and listed
    // once, not given back a second time.
    assert!(pool.reclaim_dead().unwrap().is_empty());
    assert_eq!(pool.check().unwrap(), NB);
    assert_eq!(common::owner(&*g, DEAD), 0, "the dead's slot is free");
}

#[test]
fn killed_after_queueing_a_send_before_filling_its_cell() {
    let region = HeapRegion::new(Channel::required_size(NB, SIZE));
    let ch = Channel::create_with(&region, NB, SIZE, ChannelOptions::new()).unwrap();
    let pool_region = SubRegion::new(
        &region,
        common::CHANNEL_POOL,
        Channel::required_size(NB, SIZE) - common::CHANNEL_POOL,
    )
    .unwrap();
    ch.send_bytes(b"first").unwrap();
    let lost = ch.get().unwrap();
    lost.write_at(0, b"second").unwrap();
    lost.set_used(6);
    let id = lost.into_id().unwrap();
    // A sender marked it queued at position 1 and was killed before
    // filling the cell: the message is sent, only not yet in its cell.
    let w = common::raw_word(&pool_region, id.0);
    set_raw_word(
        &pool_region,
        id.0,
        (1 << 32) | (common::generation(w) + 1) << 2 | common::QUEUED,
    );
    assert_eq!(ch.pool().stats().queued, 2);
    assert!(is_corrupted(&ch.pool().check()));
    assert_eq!(ch.recv().unwrap().used(), 5);
    assert!(ch.pool().reclaim_dead().unwrap().is_empty());
    let second = ch.recv().unwrap();
    assert_eq!((second.id(), second.used()), (id, 6), "delivered, in order");
    drop(second);
    assert_eq!(ch.pool().check().unwrap(), NB);
}

#[test]
fn recover_orphans_frees_ids_only_the_dead_knew_and_nothing_queued() {
    let region = HeapRegion::new(Channel::required_size(NB, SIZE));
    let ch = Channel::create_with(&region, NB, SIZE, ChannelOptions::new()).unwrap();
    let pool = ch.pool();
    ch.send_bytes(b"queued").unwrap();
    let kept = pool.get().unwrap().into_id().unwrap();
    let lost = pool.get().unwrap().into_id().unwrap(); // only a dead process knew it
    assert!(pool.reclaim_dead().unwrap().is_empty(), "nobody owns ids");
    assert_eq!(pool.recover_orphans(&[kept]).unwrap(), vec![lost]);
    let s = pool.stats();
    assert_eq!((s.in_transit, s.queued), (1, 1));
    assert!(matches!(
        pool.recover_orphans(&[BlockId(N)]),
        Err(PoolError::OutOfRange { .. })
    ));
    assert_eq!(pool.check().unwrap(), NB - 2);
    assert_eq!(ch.recv().unwrap().used(), 6);
}

/// Fills a stretch of this thread's stack with a marker, so that whatever a
/// following call leaves uninitialised on the stack reads as the marker.
#[inline(never)]
fn dirty_the_stack() {
    let junk = std::hint::black_box([0xA5_u8; 16 * 1024]);
    std::hint::black_box(&junk);
}

/// Creating a pool writes no byte of this process's stack into shared
/// memory: between its words, the control block (the gaps `CachePadded`
/// leaves) stays zero. The old code wrote a whole `Control` value, padding
/// included, from the stack.
#[test]
fn creating_a_pool_leaks_no_stack_bytes_into_the_control_block() {
    use shm_mempool::layout;
    for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
        let opts = PoolOptions::new().order(order);
        dirty_the_stack();
        let pool = MemPool::new_heap_with(4, 64, opts).unwrap();
        let bytes = pool.region().to_vec();
        let words = [
            (layout::ORDER, 4),
            (layout::HEAD, 8),
            (layout::FIFO_TAIL, 8),
            (layout::FLAGS, 4),
        ];
        let control = bytes[..layout::OWNERS]
            .iter()
            .enumerate()
            .skip(layout::ORDER);
        for (at, &b) in control {
            if words.iter().any(|&(w, n)| (w..w + n).contains(&at)) {
                continue;
            }
            assert_eq!(b, 0, "{order:?}: byte {at} of the control block");
        }
    }
}
