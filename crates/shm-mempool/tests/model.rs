//! Model tests: random sequences of pool and channel operations, checked
//! after every step against a model that does the same thing with plain
//! collections.
//!
//! The model holds the free list as a stack (the pool is a Treiber stack:
//! `get` takes the block `put` gave back last, and a fresh pool hands out
//! block 0 first), the blocks held through a guard, the blocks held as bare
//! ids (`into_id`), the ids queued in the channel (FIFO), and every block's
//! bytes and `used` count. After each step:
//!
//! - `stats()` of both handles (the creator's and a second `attach` to the
//!   same memory) equals the model's counts, with this process as the only
//!   owner, and `check()` walks exactly the model's free blocks;
//! - a block that comes out of the pool (`get`, `from_id`, `recv`) holds the
//!   bytes last written into it, so the pool never writes into a block nor
//!   hands one out twice.
//!
//! A double `put`, a `put` or `from_id` of a free, queued or out-of-range id,
//! a `get` from an empty pool and a write past a block's end return the
//! typed error with the numbers in it, and change nothing.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use shm_mempool::{Block, BlockId, Channel, MemPool, PoolError, RecvError, SendError};
use shm_ring::{PopError, RingOptions};
use shm_segment::{HeapRegion, ProcessId, Region, SubRegion};

/// How a test picks an id for `put` and `from_id`.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// One of the ids held bare (after `into_id`): the call succeeds.
    Held(usize),
    /// A free block: `WrongState`.
    Free(usize),
    /// A block queued in the channel: `WrongState`.
    Queued(usize),
    /// `blocks + k` (saturating): `OutOfRange`.
    Out(u32),
}

#[derive(Debug, Clone)]
enum Op {
    /// `get()` on handle `h`, keeping the guard.
    Get(usize),
    /// `get()?.into_id()`.
    GetId(usize),
    /// Drops guard `g` (gives the block back).
    Drop(usize),
    /// Guard `g` becomes a bare id.
    IntoId(usize),
    Put(usize, Pick),
    FromId(usize, Pick),
    /// `write_at(offset % (size + 8), seeded bytes of len)` on guard `g`.
    Write {
        g: usize,
        offset: usize,
        len: usize,
        seed: u8,
    },
    SetUsed(usize, usize),
    /// Sends guard `g` through the channel handle whose pool it came from.
    Send {
        g: usize,
        blocking: bool,
    },
    SendBytes {
        h: usize,
        len: usize,
        seed: u8,
    },
    Recv {
        h: usize,
        blocking: bool,
    },
    /// `reclaim_dead()`: this process is alive, so nothing.
    Reclaim(usize),
    /// `recover_orphans(ids in the ring)`: there are no orphans.
    Recover(usize),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => any::<usize>().prop_map(Pick::Held),
        2 => any::<usize>().prop_map(Pick::Free),
        1 => any::<usize>().prop_map(Pick::Queued),
        1 => prop_oneof![0u32..3, Just(u32::MAX)].prop_map(Pick::Out),
    ]
}

fn op(channel: bool) -> impl Strategy<Value = Op> {
    let h = || 0usize..2;
    let g = || any::<usize>();
    let pool_ops = prop_oneof![
        6 => h().prop_map(Op::Get),
        3 => h().prop_map(Op::GetId),
        5 => g().prop_map(Op::Drop),
        2 => g().prop_map(Op::IntoId),
        4 => (h(), pick()).prop_map(|(h, p)| Op::Put(h, p)),
        3 => (h(), pick()).prop_map(|(h, p)| Op::FromId(h, p)),
        3 => (g(), 0usize..400, 0usize..80, any::<u8>())
            .prop_map(|(g, offset, len, seed)| Op::Write { g, offset, len, seed }),
        1 => (g(), 0usize..400).prop_map(|(g, n)| Op::SetUsed(g, n)),
        1 => h().prop_map(Op::Reclaim),
        1 => h().prop_map(Op::Recover),
    ];
    let channel_ops = prop_oneof![
        5 => (g(), any::<bool>()).prop_map(|(g, blocking)| Op::Send { g, blocking }),
        3 => (h(), 0usize..300, any::<u8>()).prop_map(|(h, len, seed)| Op::SendBytes { h, len, seed }),
        6 => (h(), any::<bool>()).prop_map(|(h, blocking)| Op::Recv { h, blocking }),
    ];
    if channel {
        prop_oneof![3 => pool_ops, 2 => channel_ops].boxed()
    } else {
        pool_ops.boxed()
    }
}

/// Block counts 1..=8 and sizes that round to 64, 128 and 256 bytes.
fn case(channel: bool) -> impl Strategy<Value = (u32, usize, Vec<Op>)> {
    (
        1u32..=8,
        prop::sample::select(vec![1usize, 64, 100, 200]),
        prop::collection::vec(op(channel), 1..150),
    )
}

// ---------------------------------------------------------------------------
// The channel side, behind a trait so one runner serves a bare pool too.

trait Chan<P: Region> {
    #[allow(clippy::result_large_err)]
    fn send_block<'c>(
        &'c self,
        block: Block<'c, P>,
        blocking: bool,
    ) -> Result<(), SendError<Block<'c, P>>>;
    fn send_data(&self, data: &[u8]) -> Result<(), PoolError>;
    fn receive(&self, blocking: bool) -> Result<Block<'_, P>, RecvError>;
    fn queued(&self) -> usize;
}

impl<X: Region> Chan<SubRegion<Arc<X>>> for Channel<X> {
    fn send_block<'c>(
        &'c self,
        block: Block<'c, SubRegion<Arc<X>>>,
        blocking: bool,
    ) -> Result<(), SendError<Block<'c, SubRegion<Arc<X>>>>> {
        if blocking {
            self.send_blocking(block, Duration::from_millis(1))
        } else {
            self.send(block)
        }
    }
    fn send_data(&self, data: &[u8]) -> Result<(), PoolError> {
        self.send_bytes(data)
    }
    fn receive(&self, blocking: bool) -> Result<Block<'_, SubRegion<Arc<X>>>, RecvError> {
        if blocking {
            self.recv_blocking(Duration::from_millis(1))
        } else {
            self.recv()
        }
    }
    fn queued(&self) -> usize {
        self.len()
    }
}

/// No channel: the pool-only runs never generate channel operations.
struct NoChan;

impl<P: Region> Chan<P> for NoChan {
    fn send_block<'c>(&'c self, _: Block<'c, P>, _: bool) -> Result<(), SendError<Block<'c, P>>> {
        unreachable!("no channel")
    }
    fn send_data(&self, _: &[u8]) -> Result<(), PoolError> {
        unreachable!("no channel")
    }
    fn receive(&self, _: bool) -> Result<Block<'_, P>, RecvError> {
        unreachable!("no channel")
    }
    fn queued(&self) -> usize {
        0
    }
}

// ---------------------------------------------------------------------------
// The model.

struct Model {
    blocks: u32,
    size: usize,
    /// Free blocks as a stack: `last()` is what `get` returns next.
    free: Vec<u32>,
    /// Held as bare ids.
    ids: BTreeSet<u32>,
    /// Queued in the channel, oldest first.
    queue: VecDeque<u32>,
    /// Every block's bytes.
    mem: Vec<Vec<u8>>,
    /// Every block's `used` count.
    used: Vec<usize>,
}

impl Model {
    fn new(blocks: u32, size: usize) -> Self {
        Model {
            blocks,
            size,
            free: (0..blocks).rev().collect(),
            ids: BTreeSet::new(),
            queue: VecDeque::new(),
            mem: vec![vec![0; size]; blocks as usize],
            used: vec![0; blocks as usize],
        }
    }

    /// The id a pick names, and what the pool must say to `put`/`from_id` of
    /// it: `None` for success, else the state it is found in.
    fn resolve(&self, pick: Pick) -> (BlockId, Result<(), Option<&'static str>>) {
        let nth = |set: &mut dyn ExactSizeIterator<Item = u32>, k: usize| {
            let len = set.len();
            set.nth(k % len.max(1))
        };
        match pick {
            Pick::Held(k) => {
                if let Some(id) = nth(&mut self.ids.iter().copied(), k) {
                    return (BlockId(id), Ok(()));
                }
            }
            Pick::Free(k) => {
                if let Some(id) = nth(&mut self.free.iter().copied(), k) {
                    return (BlockId(id), Err(Some("free")));
                }
            }
            Pick::Queued(k) => {
                if let Some(id) = nth(&mut self.queue.iter().copied(), k) {
                    return (BlockId(id), Err(Some("queued in a channel")));
                }
            }
            Pick::Out(k) => {
                return (BlockId(self.blocks.saturating_add(k)), Err(None));
            }
        }
        (BlockId(self.blocks), Err(None))
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ 0x5A)
        .collect()
}

/// The block's bytes are what the model says.
fn check_bytes<R: Region>(block: &Block<'_, R>, model: &Model) -> Result<(), TestCaseError> {
    let mut bytes = vec![0; model.size];
    block.read_at(0, &mut bytes).unwrap();
    prop_assert!(
        bytes == model.mem[block.id().0 as usize],
        "block {} does not hold what was last written into it",
        block.id().0
    );
    prop_assert_eq!(block.len(), model.size);
    Ok(())
}

fn check_error(
    got: PoolError,
    id: BlockId,
    expect: Option<&'static str>,
    blocks: u32,
) -> Result<(), TestCaseError> {
    match (got, expect) {
        (
            PoolError::WrongState {
                id: got_id,
                expected: "held",
                found,
                ..
            },
            Some(state),
        ) => {
            prop_assert_eq!(got_id, id);
            prop_assert_eq!(found, state);
        }
        (
            PoolError::OutOfRange {
                id: got_id,
                blocks: got_blocks,
                ..
            },
            None,
        ) => {
            prop_assert_eq!(got_id, id);
            prop_assert_eq!(got_blocks, blocks);
        }
        (other, expect) => {
            prop_assert!(false, "got {other:?} for id {}, expected {expect:?}", id.0)
        }
    }
    Ok(())
}

fn run<P: Region, C: Chan<P>>(
    pools: [&MemPool<P>; 2],
    chans: Option<[&C; 2]>,
    blocks: u32,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let size = pools[0].block_size();
    prop_assert_eq!(size % 64, 0);
    let mut model = Model::new(blocks, size);
    // Each guard with the handle whose pool it borrows: a block is sent
    // through that handle's channel (the one it came from).
    let mut guards: Vec<(usize, Block<'_, P>)> = Vec::new();
    let me = ProcessId::current().pid;

    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Get(h) | Op::GetId(h) => match (pools[h].get(), model.free.pop()) {
                (Ok(block), Some(id)) => {
                    prop_assert_eq!(block.id(), BlockId(id), "not the top of the free stack");
                    prop_assert_eq!(block.used(), 0, "a fresh block has used() 0");
                    model.used[id as usize] = 0;
                    check_bytes(&block, &model)?;
                    if matches!(op, Op::GetId(_)) {
                        prop_assert_eq!(block.into_id(), BlockId(id));
                        model.ids.insert(id);
                    } else {
                        guards.push((h, block));
                    }
                }
                (Err(PoolError::Exhausted { blocks: b, .. }), None) => prop_assert_eq!(b, blocks),
                (got, want) => prop_assert!(false, "get gave {got:?}, the model {want:?}"),
            },
            Op::Drop(g) => {
                if !guards.is_empty() {
                    let (_, block) = guards.swap_remove(g % guards.len());
                    model.free.push(block.id().0);
                    drop(block);
                }
            }
            Op::IntoId(g) => {
                if !guards.is_empty() {
                    let id = guards.swap_remove(g % guards.len()).1.into_id();
                    model.ids.insert(id.0);
                }
            }
            Op::Put(h, pick) => {
                let (id, expect) = model.resolve(pick);
                match (pools[h].put(id), expect) {
                    (Ok(()), Ok(())) => {
                        model.ids.remove(&id.0);
                        model.free.push(id.0);
                    }
                    (Err(e), Err(state)) => check_error(e, id, state, blocks)?,
                    (got, want) => prop_assert!(false, "put({}) gave {got:?}, want {want:?}", id.0),
                }
            }
            Op::FromId(h, pick) => {
                let (id, expect) = model.resolve(pick);
                match (pools[h].from_id(id), expect) {
                    (Ok(block), Ok(())) => {
                        prop_assert_eq!(block.id(), id);
                        prop_assert_eq!(block.used(), model.used[id.0 as usize]);
                        check_bytes(&block, &model)?;
                        model.ids.remove(&id.0);
                        guards.push((h, block));
                    }
                    (Err(e), Err(state)) => check_error(e, id, state, blocks)?,
                    (got, want) => {
                        prop_assert!(false, "from_id({}) gave {got:?}, want {want:?}", id.0)
                    }
                }
            }
            Op::Write {
                g,
                offset,
                len,
                seed,
            } => {
                if !guards.is_empty() {
                    let block = &guards[g % guards.len()].1;
                    let offset = offset % (size + 8);
                    let bytes = data(len, seed);
                    let got = block.write_at(offset, &bytes);
                    let mem = &mut model.mem[block.id().0 as usize];
                    if offset + len <= size {
                        prop_assert!(got.is_ok(), "write in bounds failed: {got:?}");
                        mem[offset..offset + len].copy_from_slice(&bytes);
                    } else {
                        prop_assert!(got.is_err(), "write past the block's end succeeded");
                    }
                    check_bytes(block, &model)?;
                }
            }
            Op::SetUsed(g, n) => {
                if !guards.is_empty() {
                    let block = &guards[g % guards.len()].1;
                    block.set_used(n);
                    model.used[block.id().0 as usize] = n.min(size);
                    prop_assert_eq!(block.used(), n.min(size));
                }
            }
            Op::Send { g, blocking } => {
                if !guards.is_empty() {
                    let chans = chans.expect("channel op without a channel");
                    let (h, block) = guards.swap_remove(g % guards.len());
                    let id = block.id().0;
                    match chans[h].send_block(block, blocking) {
                        Ok(()) => model.queue.push_back(id),
                        Err(e) => prop_assert!(false, "send of block {id} failed: {e}"),
                    }
                }
            }
            Op::SendBytes { h, len, seed } => {
                let chans = chans.expect("channel op without a channel");
                let bytes = data(len, seed);
                match (chans[h].send_data(&bytes), model.free.last().copied()) {
                    (Ok(()), Some(id)) if len <= size => {
                        model.free.pop();
                        model.mem[id as usize][..len].copy_from_slice(&bytes);
                        model.used[id as usize] = len;
                        model.queue.push_back(id);
                    }
                    // Too long for a block: the block went back on top.
                    (Err(PoolError::Segment(_)), Some(_)) if len > size => {}
                    (Err(PoolError::Exhausted { blocks: b, .. }), None) => {
                        prop_assert_eq!(b, blocks)
                    }
                    (got, top) => prop_assert!(
                        false,
                        "send_bytes of {len} bytes gave {got:?} (free top {top:?}, size {size})"
                    ),
                }
            }
            Op::Recv { h, blocking } => {
                let chans = chans.expect("channel op without a channel");
                match (chans[h].receive(blocking), model.queue.pop_front()) {
                    (Ok(block), Some(id)) => {
                        prop_assert_eq!(block.id(), BlockId(id), "not FIFO");
                        prop_assert_eq!(block.used(), model.used[id as usize]);
                        check_bytes(&block, &model)?;
                        guards.push((h, block));
                    }
                    (Err(RecvError::Ring(PopError::Empty)), None) => {}
                    (got, want) => prop_assert!(false, "recv gave {got:?}, the model {want:?}"),
                }
            }
            Op::Reclaim(h) => {
                let got = pools[h].reclaim_dead().unwrap();
                prop_assert!(
                    got.is_empty(),
                    "reclaimed the blocks of a live process: {got:?}"
                );
            }
            Op::Recover(h) => {
                let in_ring: Vec<BlockId> = model.queue.iter().map(|&i| BlockId(i)).collect();
                let got = pools[h].recover_orphans(&in_ring).unwrap();
                prop_assert!(
                    got.is_empty(),
                    "recovered blocks that were no orphans: {got:?}"
                );
            }
        }

        // After every step, both handles agree with the model.
        let held = (guards.len() + model.ids.len()) as u32;
        prop_assert_eq!(
            held as usize + model.free.len() + model.queue.len(),
            blocks as usize
        );
        for pool in pools {
            let stats = pool.stats();
            prop_assert_eq!(
                (stats.free, stats.held, stats.queued, stats.unknown),
                (model.free.len() as u32, held, model.queue.len() as u32, 0),
                "step {}: {:?}",
                step,
                op
            );
            prop_assert_eq!((stats.blocks, stats.block_size), (blocks, size));
            let owners = if held > 0 { vec![(me, held)] } else { vec![] };
            prop_assert_eq!(stats.by_owner, owners);
            prop_assert_eq!(pool.check().unwrap(), model.free.len() as u32);
        }
        if let Some(chans) = chans {
            for chan in chans {
                prop_assert_eq!(chan.queued(), model.queue.len());
            }
        }
    }
    // Give everything back: the pool is whole again.
    drop(guards);
    for id in std::mem::take(&mut model.ids) {
        pools[0].put(BlockId(id)).unwrap();
    }
    if let Some(chans) = chans {
        while let Ok(block) = chans[1].receive(false) {
            drop(block);
        }
    }
    prop_assert_eq!(pools[1].check().unwrap(), blocks);
    prop_assert_eq!(pools[0].stats().free, blocks);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pool_matches_model((blocks, size, ops) in case(false)) {
        let region = HeapRegion::new(MemPool::<()>::required_size(blocks, size));
        let created = MemPool::create(&region, blocks, size).unwrap();
        let attached = MemPool::attach(&region).unwrap();
        run::<_, NoChan>([&created, &attached], None, blocks, &ops)?;
    }

    #[test]
    fn channel_matches_model((blocks, size, ops) in case(true), blocking in any::<bool>()) {
        let region = HeapRegion::new(Channel::<()>::required_size(blocks, size));
        let opts = RingOptions::new().blocking(blocking);
        let created = Channel::create(&region, blocks, size, opts).unwrap();
        let attached = Channel::attach(&region).unwrap();
        run(
            [created.pool(), attached.pool()],
            Some([&created, &attached]),
            blocks,
            &ops,
        )?;
    }
}

// ---------------------------------------------------------------------------
// The typed errors, spelled out once.

#[test]
fn wrong_ids_are_typed_errors_that_change_nothing() {
    let pool = MemPool::new_heap(4, 64).unwrap();
    let held = pool.get().unwrap().into_id();
    let queued_elsewhere = pool.get().unwrap();
    let before = pool.stats();
    let list = pool.check().unwrap();

    pool.put(held).unwrap();
    let after_put = pool.stats();
    // Double put.
    match pool.put(held) {
        Err(PoolError::WrongState {
            id,
            expected: "held",
            found: "free",
            ..
        }) => assert_eq!(id, held),
        other => panic!("double put gave {other:?}"),
    }
    // Out of range, just past the end and far past it.
    for id in [BlockId(4), BlockId(5), BlockId(u32::MAX)] {
        match pool.put(id) {
            Err(PoolError::OutOfRange {
                id: got, blocks, ..
            }) => {
                assert_eq!((got, blocks), (id, 4))
            }
            other => panic!("put({id:?}) gave {other:?}"),
        }
        assert!(matches!(
            pool.from_id(id),
            Err(PoolError::OutOfRange { blocks: 4, .. })
        ));
    }
    // from_id of a free block.
    match pool.from_id(held) {
        Err(PoolError::WrongState {
            expected: "held",
            found: "free",
            ..
        }) => {}
        other => panic!("from_id of a free block gave {other:?}"),
    }
    assert_eq!(pool.stats(), after_put, "a refused call changed the pool");
    assert_eq!(pool.check().unwrap(), list + 1);
    assert_ne!(before, after_put);

    // Messages name the numbers.
    let msg = pool.put(BlockId(9)).unwrap_err().to_string();
    assert!(
        msg.contains("block id 9") && msg.contains("4 blocks"),
        "{msg}"
    );
    let err: std::io::Error = pool.put(held).unwrap_err().into();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    drop(queued_elsewhere);
    assert_eq!(pool.check().unwrap(), 4);
}

#[test]
fn exhausted_and_queued_blocks_are_typed_errors() {
    let region = HeapRegion::new(Channel::<()>::required_size(2, 64));
    let ch = Channel::create(&region, 2, 64, RingOptions::new()).unwrap();
    ch.send_bytes(b"one").unwrap();
    let held = ch.alloc().unwrap();
    let err = ch.alloc().unwrap_err();
    assert!(
        matches!(err, PoolError::Exhausted { blocks: 2, .. }),
        "{err:?}"
    );
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::OutOfMemory
    );
    assert!(matches!(
        ch.send_bytes(b"two"),
        Err(PoolError::Exhausted { blocks: 2, .. })
    ));
    // Block 0 is queued: neither put nor from_id may touch it.
    let queued = BlockId(0);
    for err in [
        ch.pool().put(queued).unwrap_err(),
        ch.pool().from_id(queued).map(drop).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                PoolError::WrongState {
                    expected: "held",
                    found: "queued in a channel",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let stats = ch.pool().stats();
    assert_eq!((stats.free, stats.held, stats.queued), (0, 1, 1));
    drop(held);
    let got = ch.recv().unwrap();
    assert_eq!((got.id(), got.used()), (queued, 3));
}

/// A block of one channel sent through another: the other channel's pool
/// has a block with the same id, which belongs to someone else. The send
/// must refuse (the block is not this channel's) and change nothing.
#[test]
fn send_refuses_a_block_of_another_channel() {
    let r1 = HeapRegion::new(Channel::<()>::required_size(2, 64));
    let r2 = HeapRegion::new(Channel::<()>::required_size(2, 64));
    let ch1 = Channel::create(&r1, 2, 64, RingOptions::new()).unwrap();
    let ch2 = Channel::create(&r2, 2, 64, RingOptions::new()).unwrap();
    let foreign = ch1.alloc().unwrap();
    let mine = ch2.alloc().unwrap(); // block 0 of ch2, held here
    assert_eq!(foreign.id(), mine.id());
    let result = ch2.send(foreign);
    let s1 = ch1.pool().stats();
    let s2 = ch2.pool().stats();
    assert!(
        result.is_err(),
        "ch2 accepted a block of ch1: ch1 now has {} held block(s) that nobody can give \
         back, and ch2's block {} (still held through a guard) is queued: {s2:?}",
        s1.held,
        mine.id().0
    );
    assert_eq!((s2.held, s2.queued), (1, 0));
    drop(result);
    assert_eq!(ch1.pool().stats().free, 2);
}
