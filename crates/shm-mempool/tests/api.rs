//! The one-call constructors (a pool or a channel that owns its segment),
//! creating over a live structure, and the shapes of the public API: sizes
//! without a region type, block states as an enum, the channel's inspection
//! as a struct.

mod common;

use common::{posix_name, shm_path, UnlinkGuard};
use shm_mempool::{
    inspect_channel, BlockId, BlockState, Channel, ChannelOptions, FreeOrder, MemPool, PoolError,
    PoolOptions,
};
use shm_segment::{Error, HeaderError, HeapRegion, Kind, Region, Segment, SysvKey};

fn header_error(err: PoolError) -> HeaderError {
    match err {
        PoolError::Segment(Error::Header { source, .. }) => source,
        other => panic!("expected a header error, got {other:?}"),
    }
}

#[test]
fn a_posix_pool_owns_its_name_and_unlinks_it_on_drop() {
    let name = posix_name("api-pool");
    let _guard = UnlinkGuard(name.clone());
    let pool = MemPool::create_posix(&name, 4, 100).unwrap();
    assert!(pool.region().created());
    assert_eq!(pool.region().len(), MemPool::required_size(4, 100));
    assert_eq!((pool.blocks(), pool.block_size()), (4, 128));

    let other = MemPool::open_posix(&name).unwrap();
    assert!(!other.region().created(), "an opener never unlinks");
    let id = other.get().unwrap().into_id().unwrap();
    assert_eq!(pool.from_id(id).unwrap().id(), id);
    drop(other);
    assert!(
        shm_path(&name).exists(),
        "the opener's drop unlinked the name"
    );

    // A clone shares the segment: the name stays until the last handle.
    let clone = pool.clone();
    drop(pool);
    assert!(shm_path(&name).exists());
    drop(clone);
    assert!(
        !shm_path(&name).exists(),
        "the creator's drop left the name"
    );
    assert!(MemPool::open_posix(&name).is_err());
}

#[test]
fn set_remove_on_drop_false_keeps_the_segment() {
    let name = posix_name("api-keep");
    let _guard = UnlinkGuard(name.clone());
    let ch = Channel::create_posix(&name, 2, 64).unwrap();
    ch.send_bytes(b"kept").unwrap();
    ch.region().set_remove_on_drop(false);
    drop(ch);
    assert!(shm_path(&name).exists());
    let again = Channel::open_posix(&name).unwrap();
    assert_eq!(again.recv().unwrap().used(), 4, "the message survived");
}

#[test]
fn creating_over_a_live_pool_or_channel_is_refused_and_changes_nothing() {
    let name = posix_name("api-twice");
    let _guard = UnlinkGuard(name.clone());
    let pool = MemPool::create_posix(&name, 2, 64).unwrap();
    let held = pool.get().unwrap();
    // The name exists: the segment layer refuses.
    let err = MemPool::create_posix(&name, 2, 64).unwrap_err();
    assert!(
        matches!(&err, PoolError::Segment(e) if e.is_exists()),
        "{err:?}"
    );
    // The same memory, laid out again through another mapping: the header
    // is checked before a byte is written.
    let again = Segment::open_posix(&name).unwrap();
    let err = MemPool::create(&again, 2, 64).unwrap_err();
    assert_eq!(
        header_error(err),
        HeaderError::AlreadyInitialised {
            kind: Kind::MEMPOOL
        }
    );
    assert_eq!(pool.stats().held, 1, "the live pool was not touched");
    drop(held);

    let region = HeapRegion::new(Channel::required_size(2, 64));
    let ch = Channel::create(&region, 2, 64).unwrap();
    ch.send_bytes(b"x").unwrap();
    let err = Channel::create(&region, 2, 64).unwrap_err();
    assert_eq!(
        header_error(err),
        HeaderError::AlreadyInitialised {
            kind: Kind::CHANNEL
        }
    );
    assert_eq!(ch.len(), 1, "the live channel was not touched");
}

#[test]
fn memfd_and_sysv_constructors_lay_out_what_they_were_asked_for() {
    let pool = MemPool::create_memfd_with("api", 3, 64, PoolOptions::new().order(FreeOrder::Lifo))
        .unwrap();
    assert!(pool.region().memfd().is_some());
    assert_eq!(
        (pool.blocks(), pool.order()),
        (3, FreeOrder::Lifo),
        "{pool:?}"
    );

    let key = SysvKey::random();
    let tx = Channel::create_sysv_with(key, 4, 64, ChannelOptions::new().blocking(true)).unwrap();
    assert!(tx.region().sysv().is_some());
    let rx = Channel::open_sysv(key).unwrap();
    tx.send_bytes(b"over sysv").unwrap();
    assert_eq!(rx.recv().unwrap().used(), 9);
    drop(rx);
    drop(tx);
    assert!(
        Channel::open_sysv(key).is_err(),
        "the creator's drop removes the System V segment"
    );

    let key = SysvKey::random();
    let pool = MemPool::create_sysv(key, 2, 64).unwrap();
    assert_eq!(MemPool::open_sysv(key).unwrap().blocks(), 2);
    drop(pool);
    assert!(MemPool::open_sysv(key).is_err());
}

#[test]
fn sizes_need_no_region_type_and_too_large_is_an_error() {
    // One function per structure, whatever region it will live in.
    let n = MemPool::required_size(16, 100);
    assert!(n >= 16 * 128);
    let region = HeapRegion::new(n);
    assert_eq!(MemPool::create(&region, 16, 100).unwrap().blocks(), 16);
    assert!(Channel::required_size(16, 100) > n);

    let name = posix_name("api-huge");
    let _guard = UnlinkGuard(name.clone());
    for err in [
        MemPool::create_posix(&name, usize::MAX, 64).unwrap_err(),
        MemPool::create_memfd("api", 1, usize::MAX).unwrap_err(),
        Channel::create_posix(&name, usize::MAX / 2, 1 << 20).unwrap_err(),
    ] {
        assert!(matches!(err, PoolError::InvalidLayout { .. }), "{err:?}");
    }
    assert!(!shm_path(&name).exists(), "nothing was created");
    let err = MemPool::new_heap(0, 64).unwrap_err();
    assert!(err.to_string().contains("block count 0"), "{err}");
    let err = MemPool::new_heap(1 << 32, 64).unwrap_err();
    assert!(matches!(err, PoolError::InvalidLayout { .. }), "{err:?}");
}

#[test]
fn wrong_states_are_named_by_the_enum() {
    let pool = MemPool::new_heap(2, 64).unwrap();
    let block = pool.get().unwrap();
    let id = block.id();
    match pool.from_id(id) {
        Err(PoolError::WrongState {
            op,
            id: got,
            expected,
            found,
            ..
        }) => {
            assert_eq!(
                (op, got, expected, found),
                ("from_id", id, BlockState::InTransit, BlockState::Held)
            );
        }
        other => panic!("{other:?}"),
    }
    let err = pool.put(BlockId(1)).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("the block is free, not in transit"),
        "{err}"
    );
    // The guard's own operations need the block held by this very handle.
    let msg = PoolError::WrongState {
        op: "into_id",
        target: shm_segment::Target::Heap,
        id: BlockId(0),
        expected: BlockState::Held,
        found: BlockState::Free,
    }
    .to_string();
    assert!(
        msg.ends_with("the block is free, not held by this handle"),
        "{msg}"
    );
    assert_eq!(BlockState::Queued.to_string(), "queued");
    drop(block);
}

#[test]
fn inspect_channel_names_its_parts() {
    let region = HeapRegion::new(Channel::required_size(3, 64));
    let ch = Channel::create_with(&region, 3, 64, ChannelOptions::new().blocking(true)).unwrap();
    ch.send_bytes(b"one").unwrap();
    ch.send_bytes(b"two").unwrap();
    let _held = ch.get().unwrap();
    let info = inspect_channel(&region).unwrap();
    assert_eq!(
        (
            info.pool.blocks,
            info.pool.free,
            info.pool.held,
            info.pool.queued
        ),
        (3, 0, 1, 2)
    );
    assert_eq!(
        (info.queue.capacity, info.queue.len, info.queue.blocking),
        (4, 2, true)
    );
    assert_eq!(info.queue.tail - info.queue.head, 2);
}

#[test]
#[allow(deprecated)]
fn channel_get_is_the_pools_get_and_alloc_is_its_old_name() {
    let ch = Channel::create_memfd("api", 2, 64).unwrap();
    let a = ch.get().unwrap();
    let b = ch.alloc().unwrap();
    assert_eq!((a.id(), b.id()), (BlockId(0), BlockId(1)));
    assert!(matches!(
        ch.get(),
        Err(PoolError::Exhausted { blocks: 2, .. })
    ));
}

/// The shared layout (version 4) is what peers built from other commits
/// read: a change to these numbers needs a new layout version.
#[test]
#[cfg(target_arch = "x86_64")]
fn the_layout_of_version_4_is_pinned() {
    use shm_mempool::layout::*;
    assert_eq!(VERSION, 4);
    // Version 4: a held word's place may carry the cached bit.
    assert_eq!(CACHED, 1 << 31);
    // `CachePadded` is 128 bytes on x86-64.
    assert_eq!(
        (ORDER, HEAD, FIFO_HEAD, FIFO_TAIL, SENT_HEAD, SENT_TAIL),
        (128, 256, 384, 512, 640, 768)
    );
    assert_eq!((OWNERS, SLOTS, RECORDS, RECORD), (1152, 128, 2176, 16));
    assert_eq!((RECORD_NEXT, RECORD_USED, RECORD_WORD), (0, 4, 8));
    assert_eq!((FREE, HELD, IN_TRANSIT, QUEUED), (0, 1, 2, 3));
    assert_eq!(word(HELD, 3, 7), 7 << 32 | 3 << 2 | 1);
    assert_eq!(CHANNEL_POOL, 4096);
    // Cells follow the records; the channel queue's follow the free queue's.
    assert_eq!(cell_off(8, 0), RECORDS + 8 * RECORD);
    assert_eq!(sent_cell_off(8, 1), cell_off(8, queue_cap(8)) + 8);
    assert_eq!(queue_cap(1), 2);
}
