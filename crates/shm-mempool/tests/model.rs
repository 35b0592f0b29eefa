//! Model tests: random sequences of pool and channel operations, checked
//! after every step against a model that does the same thing with plain
//! collections.
//!
//! The model holds the free list in the pool's order (FIFO, the default: a
//! queue, `get` takes the block given back longest ago; LIFO: a stack, `get`
//! takes the block given back last; a fresh pool hands out block 0 first
//! either way), the blocks held through a guard, the blocks in transit as
//! bare ids (`into_id`), the ids queued in the channel (FIFO), the blocks
//! another process holds now although a stale guard here still names them,
//! and every block's bytes and `used` count. After each step:
//!
//! - `stats()` of both handles (the creator's and a second `attach` to the
//!   same memory) equals the model's counts, with this process (and the
//!   forged owners, which reuse its pid) as the only owner, and `check()`
//!   walks exactly the model's free blocks;
//! - a block that comes out of the pool (`get`, `from_id`, `recv`) holds the
//!   bytes last written into it, so the pool never writes into a block nor
//!   hands one out twice.
//!
//! The ownership protocol: `from_id` and `put` take only ids in transit, so
//! a second claim of an id, a `put` or `from_id` of a free block, of one a
//! guard holds, or of an out-of-range id, a `get` from an empty pool and a
//! write past a block's end return the typed error with the numbers in it,
//! and change nothing. `Steal` writes a guard's record as another process
//! would hold it (a dead process that had our pid, as after a peer's
//! mistaken `reclaim_dead` and a new `get`): that guard is stale, its drop
//! and `into_id` change nothing, `stats` counts them as held by the dead,
//! and `reclaim_dead` frees exactly the stolen blocks.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use common::steal_for_the_dead;
use proptest::prelude::*;
use shm_mempool::{
    Block, BlockId, BlockState, Channel, ChannelOptions, FreeOrder, MemPool, PoolError,
    PoolOptions, RecvError, SendError,
};
use shm_segment::{HeapRegion, ProcessId, Region, SubRegion};

/// How a test picks an id for `put` and `from_id`.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// One of the ids in transit (after `into_id`): the call succeeds.
    Transit(usize),
    /// A free block: `WrongState`.
    Free(usize),
    /// A block a guard holds: `WrongState` (a second claim).
    Guarded(usize),
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
    /// `recover_orphans(ids in transit)`: there are no orphans.
    Recover(usize),
    /// Guard `g`'s block is now another process's: its record is written
    /// as held by a dead process that had our pid. The guard is stale.
    Steal(usize),
    /// Drops stale guard `s`: nothing changes.
    DropStale(usize),
    /// `into_id` of stale guard `s`: refused, nothing changes.
    IntoIdStale(usize),
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => any::<usize>().prop_map(Pick::Transit),
        2 => any::<usize>().prop_map(Pick::Free),
        2 => any::<usize>().prop_map(Pick::Guarded),
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
        1 => g().prop_map(Op::Steal),
        1 => g().prop_map(Op::DropStale),
        1 => g().prop_map(Op::IntoIdStale),
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

fn order() -> impl Strategy<Value = FreeOrder> {
    prop_oneof![Just(FreeOrder::Fifo), Just(FreeOrder::Lifo)]
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
        // The queue has a cell for every block: a send never waits.
        let _ = blocking;
        self.send(block)
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

/// The owner slot the stolen blocks are forged under (the test's two
/// handles take slots 0 and 1).
const DEAD_SLOT: u32 = 100;

// ---------------------------------------------------------------------------
// The model.

struct Model {
    blocks: u32,
    size: usize,
    order: FreeOrder,
    /// Free blocks: `front()` is what `get` returns next.
    free: VecDeque<u32>,
    /// In transit as bare ids.
    ids: BTreeSet<u32>,
    /// Queued in the channel, oldest first.
    queue: VecDeque<u32>,
    /// Held by a forged other owner (see `Op::Steal`).
    stolen: BTreeSet<u32>,
    /// Every block's bytes.
    mem: Vec<Vec<u8>>,
    /// Every block's `used` count.
    used: Vec<usize>,
}

impl Model {
    fn new(blocks: u32, size: usize, order: FreeOrder) -> Self {
        Model {
            blocks,
            size,
            order,
            free: (0..blocks).collect(),
            ids: BTreeSet::new(),
            queue: VecDeque::new(),
            stolen: BTreeSet::new(),
            mem: vec![vec![0; size]; blocks as usize],
            used: vec![0; blocks as usize],
        }
    }

    /// What `get` takes.
    fn take(&mut self) -> Option<u32> {
        self.free.pop_front()
    }

    /// A block given back.
    fn give(&mut self, id: u32) {
        match self.order {
            FreeOrder::Fifo => self.free.push_back(id),
            FreeOrder::Lifo => self.free.push_front(id),
        }
    }

    /// The id a pick names, and what the pool must say to `put`/`from_id` of
    /// it: `None` for success, else the state it is found in.
    fn resolve(&self, pick: Pick, guarded: &[u32]) -> (BlockId, Result<(), Option<BlockState>>) {
        let nth = |set: &mut dyn ExactSizeIterator<Item = u32>, k: usize| {
            let len = set.len();
            set.nth(k % len.max(1))
        };
        match pick {
            Pick::Transit(k) => {
                if let Some(id) = nth(&mut self.ids.iter().copied(), k) {
                    return (BlockId(id), Ok(()));
                }
            }
            Pick::Free(k) => {
                if let Some(id) = nth(&mut self.free.iter().copied(), k) {
                    return (BlockId(id), Err(Some(BlockState::Free)));
                }
            }
            Pick::Guarded(k) => {
                if let Some(id) = nth(&mut guarded.iter().copied(), k) {
                    return (BlockId(id), Err(Some(BlockState::Held)));
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
    op: &'static str,
    id: BlockId,
    expect: Option<BlockState>,
    blocks: u32,
) -> Result<(), TestCaseError> {
    match (got, expect) {
        (
            PoolError::WrongState {
                op: got_op,
                id: got_id,
                expected: BlockState::InTransit,
                found,
                ..
            },
            Some(state),
        ) => {
            prop_assert_eq!(got_op, op);
            prop_assert_eq!(got_id, id);
            prop_assert_eq!(found, state);
        }
        (
            PoolError::OutOfRange {
                op: got_op,
                id: got_id,
                blocks: got_blocks,
                ..
            },
            None,
        ) => {
            prop_assert_eq!(got_op, op);
            prop_assert_eq!(got_id, id);
            prop_assert_eq!(got_blocks, blocks as usize);
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
    prop_assert_eq!(pools[1].order(), pools[0].order());
    let mut model = Model::new(blocks, size, pools[0].order());
    // Each guard with the handle whose pool it borrows: a block is sent
    // through that handle's channel (the one it came from).
    let mut guards: Vec<(usize, Block<'_, P>)> = Vec::new();
    // Guards whose block was stolen (see `Op::Steal`).
    let mut stale: Vec<Block<'_, P>> = Vec::new();
    let me = ProcessId::current();
    // The region the records live in (both handles map the same memory).
    let raw = pools[0].region();

    for (step, op) in ops.iter().enumerate() {
        let guarded: Vec<u32> = guards.iter().map(|(_, b)| b.id().0).collect();
        match *op {
            Op::Get(h) | Op::GetId(h) => match (pools[h].get(), model.take()) {
                (Ok(block), Some(id)) => {
                    prop_assert_eq!(block.id(), BlockId(id), "not the model's next free block");
                    prop_assert_eq!(block.used(), 0, "a fresh block has used() 0");
                    model.used[id as usize] = 0;
                    check_bytes(&block, &model)?;
                    if matches!(op, Op::GetId(_)) {
                        prop_assert_eq!(block.into_id().unwrap(), BlockId(id));
                        model.ids.insert(id);
                    } else {
                        guards.push((h, block));
                    }
                }
                (Err(PoolError::Exhausted { blocks: b, .. }), None) => {
                    prop_assert_eq!(b, blocks as usize)
                }
                (got, want) => prop_assert!(false, "get gave {got:?}, the model {want:?}"),
            },
            Op::Drop(g) => {
                if !guards.is_empty() {
                    let (_, block) = guards.swap_remove(g % guards.len());
                    model.give(block.id().0);
                    drop(block);
                }
            }
            Op::IntoId(g) => {
                if !guards.is_empty() {
                    let id = guards.swap_remove(g % guards.len()).1.into_id().unwrap();
                    model.ids.insert(id.0);
                }
            }
            Op::Put(h, pick) => {
                let (id, expect) = model.resolve(pick, &guarded);
                match (pools[h].put(id), expect) {
                    (Ok(()), Ok(())) => {
                        model.ids.remove(&id.0);
                        model.give(id.0);
                    }
                    (Err(e), Err(state)) => check_error(e, "put", id, state, blocks)?,
                    (got, want) => prop_assert!(false, "put({}) gave {got:?}, want {want:?}", id.0),
                }
            }
            Op::FromId(h, pick) => {
                let (id, expect) = model.resolve(pick, &guarded);
                match (pools[h].from_id(id), expect) {
                    (Ok(block), Ok(())) => {
                        prop_assert_eq!(block.id(), id);
                        prop_assert_eq!(block.used(), model.used[id.0 as usize]);
                        check_bytes(&block, &model)?;
                        model.ids.remove(&id.0);
                        guards.push((h, block));
                    }
                    (Err(e), Err(state)) => check_error(e, "from_id", id, state, blocks)?,
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
                match (chans[h].send_data(&bytes), model.free.front().copied()) {
                    (Ok(()), Some(id)) if len <= size => {
                        model.take();
                        model.mem[id as usize][..len].copy_from_slice(&bytes);
                        model.used[id as usize] = len;
                        model.queue.push_back(id);
                    }
                    // Too long for a block: the block was taken and given back.
                    (Err(PoolError::Segment(_)), Some(id)) if len > size => {
                        model.take();
                        model.give(id);
                        model.used[id as usize] = 0;
                    }
                    (Err(PoolError::Exhausted { blocks: b, .. }), None) => {
                        prop_assert_eq!(b, blocks as usize)
                    }
                    (got, next) => prop_assert!(
                        false,
                        "send_bytes of {len} bytes gave {got:?} (next free {next:?}, size {size})"
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
                    (Err(RecvError::Empty), None) => {}
                    (got, want) => prop_assert!(false, "recv gave {got:?}, the model {want:?}"),
                }
            }
            Op::Reclaim(h) => {
                // Only the stolen blocks' owner is dead; they come back in
                // id order.
                let got = pools[h].reclaim_dead().unwrap();
                let want: Vec<BlockId> = model.stolen.iter().map(|&i| BlockId(i)).collect();
                prop_assert_eq!(&got, &want, "reclaimed other than the dead owner's blocks");
                for id in std::mem::take(&mut model.stolen) {
                    model.give(id);
                }
            }
            Op::Recover(h) => {
                let in_transit: Vec<BlockId> = model
                    .queue
                    .iter()
                    .chain(&model.ids)
                    .map(|&i| BlockId(i))
                    .collect();
                let got = pools[h].recover_orphans(&in_transit).unwrap();
                prop_assert!(
                    got.is_empty(),
                    "recovered blocks that were no orphans: {got:?}"
                );
            }
            Op::Steal(g) => {
                if !guards.is_empty() {
                    let (_, block) = guards.swap_remove(g % guards.len());
                    let i = block.id().0;
                    // Freed and taken again by a process that had our pid,
                    // and is gone.
                    steal_for_the_dead(raw, DEAD_SLOT, i);
                    model.stolen.insert(i);
                    stale.push(block);
                }
            }
            Op::DropStale(k) => {
                if !stale.is_empty() {
                    drop(stale.swap_remove(k % stale.len()));
                }
            }
            Op::IntoIdStale(k) => {
                if !stale.is_empty() {
                    let block = stale.swap_remove(k % stale.len());
                    let id = block.id();
                    match block.into_id() {
                        Err(PoolError::WrongState {
                            op: "into_id",
                            id: got,
                            ..
                        }) => prop_assert_eq!(got, id),
                        other => prop_assert!(false, "into_id of a stale guard gave {other:?}"),
                    }
                }
            }
        }

        // After every step, both handles agree with the model.
        let held = guards.len() + model.stolen.len();
        prop_assert_eq!(
            held + model.ids.len() + model.free.len() + model.queue.len(),
            blocks as usize
        );
        for pool in pools {
            let stats = pool.stats();
            prop_assert_eq!(
                (
                    stats.free,
                    stats.held,
                    stats.in_transit,
                    stats.queued,
                    stats.dead,
                    stats.unknown
                ),
                (
                    model.free.len(),
                    held,
                    model.ids.len(),
                    model.queue.len(),
                    model.stolen.len(),
                    0
                ),
                "step {}: {:?}",
                step,
                op
            );
            prop_assert_eq!((stats.blocks, stats.block_size), (blocks as usize, size));
            let owners = if held > 0 {
                vec![(me.pid, held)]
            } else {
                vec![]
            };
            prop_assert_eq!(stats.by_owner, owners);
            prop_assert_eq!(pool.check().unwrap(), model.free.len());
        }
        if let Some(chans) = chans {
            for chan in chans {
                prop_assert_eq!(chan.queued(), model.queue.len());
            }
        }
    }
    // Give everything back: the pool is whole again.
    drop(guards);
    drop(stale);
    for id in std::mem::take(&mut model.ids) {
        pools[0].put(BlockId(id)).unwrap();
    }
    if let Some(chans) = chans {
        while let Ok(block) = chans[1].receive(false) {
            drop(block);
        }
    }
    prop_assert_eq!(pools[0].reclaim_dead().unwrap().len(), model.stolen.len());
    prop_assert_eq!(pools[1].check().unwrap(), blocks as usize);
    prop_assert_eq!(pools[0].stats().free, blocks as usize);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pool_matches_model((blocks, size, ops) in case(false), order in order()) {
        let region = HeapRegion::new(MemPool::required_size(blocks as usize, size));
        let opts = PoolOptions::new().order(order);
        let created = MemPool::create_with(&region, blocks as usize, size, opts).unwrap();
        let attached = MemPool::attach(&region).unwrap();
        run::<_, NoChan>([&created, &attached], None, blocks, &ops)?;
    }

    #[test]
    fn channel_matches_model((blocks, size, ops) in case(true), blocking in any::<bool>()) {
        let region = HeapRegion::new(Channel::required_size(blocks as usize, size));
        let opts = ChannelOptions::new().blocking(blocking);
        let created = Channel::create_with(&region, blocks as usize, size, opts).unwrap();
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
    let sent = pool.get().unwrap().into_id().unwrap();
    let guarded = pool.get().unwrap();
    let before = pool.stats();
    let list = pool.check().unwrap();

    pool.put(sent).unwrap();
    let after_put = pool.stats();
    // Double put.
    match pool.put(sent) {
        Err(PoolError::WrongState {
            op: "put",
            id,
            expected: BlockState::InTransit,
            found: BlockState::Free,
            ..
        }) => assert_eq!(id, sent),
        other => panic!("double put gave {other:?}"),
    }
    // Out of range, just past the end and far past it.
    for id in [BlockId(4), BlockId(5), BlockId(u32::MAX)] {
        match pool.put(id) {
            Err(PoolError::OutOfRange {
                op: "put",
                id: got,
                blocks,
                ..
            }) => {
                assert_eq!((got, blocks), (id, 4))
            }
            other => panic!("put({id:?}) gave {other:?}"),
        }
        assert!(matches!(
            pool.from_id(id),
            Err(PoolError::OutOfRange {
                op: "from_id",
                blocks: 4,
                ..
            })
        ));
    }
    // from_id of a free block, and of the guarded one.
    match pool.from_id(sent) {
        Err(PoolError::WrongState {
            expected: BlockState::InTransit,
            found: BlockState::Free,
            ..
        }) => {}
        other => panic!("from_id of a free block gave {other:?}"),
    }
    assert!(matches!(
        pool.from_id(guarded.id()),
        Err(PoolError::WrongState {
            found: BlockState::Held,
            ..
        })
    ));
    assert_eq!(pool.stats(), after_put, "a refused call changed the pool");
    assert_eq!(pool.check().unwrap(), list + 1);
    assert_ne!(before, after_put);

    // Messages name the operation and the numbers.
    let msg = pool.put(BlockId(9)).unwrap_err().to_string();
    assert!(
        msg.contains("put") && msg.contains("block id 9") && msg.contains("4 blocks"),
        "{msg}"
    );
    let msg = pool.put(sent).unwrap_err().to_string();
    assert!(
        msg.contains("put block 0") && msg.contains("free") && msg.contains("in transit"),
        "{msg}"
    );
    let err: std::io::Error = pool.put(sent).unwrap_err().into();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    drop(guarded);
    assert_eq!(pool.check().unwrap(), 4);
}

#[test]
fn exhausted_pools_are_typed_errors_and_queued_blocks_are_queued() {
    let region = HeapRegion::new(Channel::required_size(2, 64));
    let ch = Channel::create_with(&region, 2, 64, ChannelOptions::new()).unwrap();
    ch.send_bytes(b"one").unwrap();
    let held = ch.get().unwrap();
    let err = ch.get().unwrap_err();
    assert!(
        matches!(err, PoolError::Exhausted { blocks: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("get "), "{err}");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::OutOfMemory
    );
    assert!(matches!(
        ch.send_bytes(b"two"),
        Err(PoolError::Exhausted { blocks: 2, .. })
    ));
    // Block 0 is queued, owned by nobody; reclaim_dead leaves it.
    let stats = ch.pool().stats();
    assert_eq!(
        (stats.free, stats.held, stats.in_transit, stats.queued),
        (0, 1, 0, 1)
    );
    assert!(ch.pool().reclaim_dead().unwrap().is_empty());
    drop(held);
    let got = ch.recv().unwrap();
    assert_eq!((got.id(), got.used()), (BlockId(0), 3));
}

/// A queued block is not in transit: nobody claims it by id (`from_id` and
/// `put` are refused and change nothing), only a receiver gets it. (It used
/// to be in transit, so a `from_id` of a queued id took it and the receiver
/// that popped the id got an error instead of the message.)
#[test]
fn a_queued_block_cannot_be_claimed_by_id() {
    let region = HeapRegion::new(Channel::required_size(2, 64));
    let ch = Channel::create_with(&region, 2, 64, ChannelOptions::new()).unwrap();
    ch.send_bytes(b"mine").unwrap();
    for err in [
        ch.pool().from_id(BlockId(0)).map(drop).unwrap_err(),
        ch.pool().put(BlockId(0)).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                PoolError::WrongState {
                    expected: BlockState::InTransit,
                    found: BlockState::Queued,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let got = ch.recv().unwrap();
    assert_eq!((got.id(), got.used()), (BlockId(0), 4));
    drop(got);
    assert_eq!(ch.pool().check().unwrap(), 2);
}

/// A block of one channel sent through another: the other channel's pool
/// has a block with the same id, which belongs to someone else. The send
/// must refuse (the block is not this channel's) and change nothing.
#[test]
fn send_refuses_a_block_of_another_channel() {
    let r1 = HeapRegion::new(Channel::required_size(2, 64));
    let r2 = HeapRegion::new(Channel::required_size(2, 64));
    let ch1 = Channel::create_with(&r1, 2, 64, ChannelOptions::new()).unwrap();
    let ch2 = Channel::create_with(&r2, 2, 64, ChannelOptions::new()).unwrap();
    let foreign = ch1.get().unwrap();
    let mine = ch2.get().unwrap(); // block 0 of ch2, held here
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
    assert_eq!((s2.held, s2.in_transit), (1, 0));
    drop(result);
    assert_eq!(ch1.pool().stats().free, 2);
}
