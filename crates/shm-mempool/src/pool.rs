//! The block pool.
//!
//! **Layout** (layout version 2). After the 64-byte header, at offset 128,
//! the control block: the free order, the LIFO stack's head, the FIFO
//! queue's head and tail, each on its own cache lines. Then one 16-byte
//! record per block; then the FIFO queue's cells, one 8-byte word each, `C`
//! of them (`C` is the block count rounded up to a power of two, at least
//! 2); then the blocks, each a multiple of 64 bytes and 64-byte aligned.
//! Both orders have the same layout. The order is written once by
//! [`MemPool::create_with`] and copied into each handle by
//! [`MemPool::attach`]; capacity and offsets come from the header, checked
//! against the region's real size, and are never read from shared memory
//! again.
//!
//! **Free order.** [`FreeOrder::Fifo`], the default, hands blocks out in
//! the order they were given back, as pyshm's and DPDK's ring-based pools
//! do: a fresh pool hands out 0, 1, 2, …, and a block given back queues
//! behind every block given back before it. [`FreeOrder::Lifo`] hands out
//! the block given back last (still warm in the cache), and a fresh pool
//! hands out 0, 1, 2, … too.
//!
//! **FIFO: a bounded queue of block ids whose cells change by one CAS
//! each.** Cell `p mod C` holds a 32-bit stamp and a block index. It is
//! empty for position `p` when its stamp is `p`, full when the stamp is
//! `p + 1`, and a taker empties it for the next lap (stamp `p + C`):
//! Vyukov's sequence numbers, except that claiming a cell and releasing it
//! is one CAS on the cell, not a CAS on the head followed by a store. The
//! head and tail are hints: whoever finds the hinted cell already emptied
//! (or filled) moves the hint on. So a process stopped or killed at any
//! instruction leaves each cell full or empty, never claimed and
//! unreleased, and the queue never stalls (the weakness of a ring of free
//! ids with a claim and a release step, which the MPMC ring has). `C` is at
//! least the block count, so the queue is never full.
//!
//! **LIFO: a Treiber stack with a tagged head.** The head word packs a
//! 32-bit tag (bumped by every change) with the top block's link, so a pop
//! whose view went stale (the block was taken and given back meanwhile, the
//! ABA case) fails its compare-and-swap. Every change is one CAS, so a
//! process killed at any instant leaves the list consistent.
//!
//! **One owner per block.** Each block's record holds one word: its state
//! (free, held, in transit), a generation bumped by every change, and, when
//! held, the owner (pid and 30 bits of its start time, so a reused pid is
//! not mistaken for the owner). Every change is one CAS from the word the
//! caller saw:
//!
//! - [`get`](MemPool::get): free → held by this process. The [`Block`]
//!   remembers the exact word it wrote.
//! - dropping the `Block`: from that exact word → free. If the word is
//!   another (the block was taken from this handle, say by the
//!   `reclaim_dead` of a peer that wrongly thought this process dead, and
//!   has been taken again since), the drop gives nothing back.
//! - [`Block::into_id`]: from its exact word → in transit, owned by nobody.
//!   The id is now the only claim on the block.
//! - [`from_id`](MemPool::from_id): in transit → held by the caller. Of
//!   two callers with the same id exactly one wins; the other, and any
//!   later `from_id` while the block is held, gets
//!   [`PoolError::WrongState`].
//! - [`put`](MemPool::put): in transit → free.
//! - A [`Channel`](crate::Channel) sends with `into_id` and a push of the id
//!   into its ring, and receives with a pop and `from_id`.
//!
//! An id is a capability: once it was claimed or given back, a copy of it
//! kept elsewhere is refused while the block is held or free, but claims
//! the block if it is back in transit under the same id (ids carry no
//! generation: a `BlockId` is 4 bytes, as in a channel's ring). Hand an id
//! on once, and forget it.
//!
//! A `Block` inherited by a child made with `fork(2)` is inert there (see
//! [`Block`]): it belongs to the parent. The [`MemPool`] handle itself works
//! in the child, which takes blocks of its own (pyshm's pattern: the pool
//! is made before the fork).
//!
//! **What a killed process leaves.**
//!
//! - Blocks it held through a `Block`: held by a dead owner.
//!   [`MemPool::reclaim_dead`] gives them back (safe at any time, from any
//!   process).
//! - Blocks it had turned into ids (`into_id`), sent into a channel, or
//!   popped from a channel's ring without claiming them yet: in transit,
//!   owned by nobody. `reclaim_dead` leaves every block in transit alone:
//!   it cannot tell an id queued in a channel's ring (which a receiver will
//!   claim) from one that only the dead process knew. Those that nothing
//!   refers to any more stay in transit until [`MemPool::recover_orphans`]
//!   (given the ids still referenced, while nobody else uses the pool)
//!   frees them.
//! - Killed in the few instructions between taking a block off the free
//!   list and marking it held, or between marking it free and putting it on
//!   the list: a free block on no list, which `recover_orphans` finds.
//! - The free lists: every change is one CAS, so they stay consistent; a
//!   FIFO head or tail that a killed process did not move on is moved by the
//!   next caller.
//!
//! **Toward no loss at any instruction** (not done yet). The remaining
//! windows can be closed without changing the free lists: give each
//! attached process a record in the pool (its pid and start time, claimed
//! with a CAS) and, before the CAS that moves a block, write there which
//! operation it is in, on which block and at which queue position. The
//! block word's owner field would name that record; an emptied FIFO cell's
//! index bits (unused today) would name the taker's record, so a survivor
//! can tell whose CAS emptied a cell. `reclaim_dead` of a dead process then
//! finishes or undoes its one operation in flight: a block it had popped
//! but not marked is marked as its and freed, a block it had marked free
//! but not pushed is pushed, an id it had popped from a ring is freed. This
//! works because each queue cell changes by a single CAS that either
//! happened or did not, which a design with a separate claim and release
//! step (a Vyukov ring) could not tell apart after a kill.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use shm_segment::{
    ForkEpoch, Header, HeaderError, HeaderInfo, HeapRegion, Kind, ProcessId, Region, RegionChecks,
    Target, HEADER_SIZE,
};

pub use crate::block::Block;
use crate::error::PoolError;
use crate::sync::{AtomicU32, AtomicU64};
use crate::BlockId;

const LAYOUT_VERSION: u32 = 2;
/// Blocks are multiples of this many bytes, aligned to it (a cache line).
pub const BLOCK_ALIGN: usize = 64;
const CONTROL_OFFSET: usize = 128;
const META_OFFSET: usize = CONTROL_OFFSET + std::mem::size_of::<Control>();
/// At most this many blocks (the FIFO queue's capacity must fit a 32-bit stamp).
const MAX_BLOCKS: u32 = 1 << 31;

/// The free-order word's values (0 is never valid, so zeroed memory is not a pool).
const ORDER_FIFO: u32 = 1;
const ORDER_LIFO: u32 = 2;

/// Block states, in the low 2 bits of [`Meta::word`].
pub(crate) const FREE: u64 = 0;
pub(crate) const HELD: u64 = 1;
pub(crate) const IN_TRANSIT: u64 = 2;
const STATE_MASK: u64 = 3;
/// The generation: 10 bits above the state, bumped (mod 1024) by every change.
const GEN_SHIFT: u32 = 2;
const GEN_MASK: u64 = (1 << 10) - 1;
/// The owner, when held: pid (22 bits) and start time (low 30 bits).
const PID_SHIFT: u32 = 12;
const PID_MASK: u64 = (1 << 22) - 1;
const START_SHIFT: u32 = 34;
const START_MASK: u64 = (1 << 30) - 1;

/// In which order a pool hands out its free blocks.
///
/// # Examples
///
/// ```
/// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
/// let region = shm_segment::HeapRegion::new(MemPool::<()>::required_size(4, 64));
/// let pool = MemPool::create_with(&region, 4, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
/// let a = pool.get()?.id();           // taken and given back at once
/// assert_eq!(pool.get()?.id(), a);    // LIFO: the same block again
/// assert_eq!(MemPool::new_heap(4, 64)?.order(), FreeOrder::Fifo);
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FreeOrder {
    /// First in, first out (the default): the block given back longest ago
    /// comes out first, as in pyshm and DPDK's ring-based pools. A fresh
    /// pool hands out blocks 0, 1, 2, …
    #[default]
    Fifo,
    /// Last in, first out: the block given back last comes out first (warm
    /// in the cache; a little faster when one thread takes and gives back).
    /// A fresh pool hands out blocks 0, 1, 2, …
    Lifo,
}

/// How [`MemPool::create_with`] lays out a pool.
///
/// # Examples
///
/// ```
/// use shm_mempool::{FreeOrder, PoolOptions};
/// let opts = PoolOptions::new().order(FreeOrder::Lifo);
/// assert_eq!(PoolOptions::default().order_of(), FreeOrder::Fifo);
/// assert_eq!(opts.order_of(), FreeOrder::Lifo);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolOptions {
    order: FreeOrder,
}

impl PoolOptions {
    /// The defaults: [`FreeOrder::Fifo`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_mempool::PoolOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The order in which free blocks are handed out.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, PoolOptions};
    /// let _ = PoolOptions::new().order(FreeOrder::Lifo);
    /// ```
    pub fn order(mut self, order: FreeOrder) -> Self {
        self.order = order;
        self
    }

    /// The order set (the builder's [`order`](PoolOptions::order) sets it).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, PoolOptions};
    /// assert_eq!(PoolOptions::new().order_of(), FreeOrder::Fifo);
    /// ```
    pub fn order_of(&self) -> FreeOrder {
        self.order
    }
}

#[repr(C)]
pub(crate) struct Control {
    /// [`ORDER_FIFO`] or [`ORDER_LIFO`]; written before the header is
    /// published, read once by `attach`.
    order: CachePadded<AtomicU32>,
    /// LIFO: tag (high 32 bits) and link of the top free block (low 32:
    /// index + 1, 0 = empty).
    pub(crate) stack: CachePadded<AtomicU64>,
    /// FIFO: the position to take from next. A hint: it lags the truth by
    /// at most the takers that emptied a cell and did not move it on yet.
    pub(crate) head: CachePadded<AtomicU64>,
    /// FIFO: the position to fill next; a hint in the same way.
    pub(crate) tail: CachePadded<AtomicU64>,
}

/// One per block.
#[repr(C)]
pub(crate) struct Meta {
    /// LIFO: link to the next free block (index + 1, 0 = end); meaningful
    /// while free.
    pub(crate) next: AtomicU32,
    /// Bytes of the block in use, as set by the writer (for channels).
    pub(crate) used: AtomicU32,
    /// State (low 2 bits), generation (10 bits) and, when held, the owner.
    pub(crate) word: AtomicU64,
}

/// The owner field of a held word for process `me`.
pub(crate) fn owner_bits(me: ProcessId) -> u64 {
    ((me.start_time & START_MASK) << START_SHIFT) | ((u64::from(me.pid) & PID_MASK) << PID_SHIFT)
}

/// The word that follows `word` in state `state` (owner bits for `HELD`).
pub(crate) fn next_word(word: u64, state: u64, owner: u64) -> u64 {
    let generation = ((word >> GEN_SHIFT) + 1) & GEN_MASK;
    owner | (generation << GEN_SHIFT) | state
}

pub(crate) fn state_of(word: u64) -> u64 {
    word & STATE_MASK
}

fn owner_of(word: u64) -> ProcessId {
    ProcessId {
        pid: ((word >> PID_SHIFT) & PID_MASK) as u32,
        start_time: word >> START_SHIFT,
    }
}

fn owner_alive(word: u64) -> bool {
    let owner = owner_of(word);
    // The record keeps 30 bits of the start time: compare those, then check
    // that the process found is not a zombie.
    ProcessId::of(owner.pid)
        .is_some_and(|now| now.start_time & START_MASK == owner.start_time && now.is_alive())
}

pub(crate) fn state_name(word: u64) -> &'static str {
    match word & STATE_MASK {
        FREE => "free",
        HELD => "held",
        IN_TRANSIT => "in transit",
        _ => "in an unknown state",
    }
}

/// The FIFO queue's capacity for `blocks` blocks: a power of two, at least 2.
fn queue_cap(blocks: u64) -> u64 {
    blocks.next_power_of_two().max(2)
}

/// Where the cells and the blocks start, and the total size, for `blocks`
/// blocks of `block_size` bytes (a multiple of 64).
struct Offsets {
    cells: u64,
    data: u64,
    total: u64,
}

fn offsets(blocks: u64, block_size: u64) -> Option<Offsets> {
    let metas = blocks.checked_mul(std::mem::size_of::<Meta>() as u64)?;
    let cells = (META_OFFSET as u64)
        .checked_add(metas)?
        .checked_next_multiple_of(std::mem::align_of::<AtomicU64>() as u64)?;
    let cell_bytes = queue_cap(blocks).checked_mul(std::mem::size_of::<AtomicU64>() as u64)?;
    let data = cells
        .checked_add(cell_bytes)?
        .checked_next_multiple_of(BLOCK_ALIGN as u64)?;
    let total = data.checked_add(blocks.checked_mul(block_size)?)?;
    Some(Offsets { cells, data, total })
}

/// [`MemPool::required_size`] without the panic: `None` when it overflows.
pub(crate) fn checked_size(blocks: u32, block_size: usize) -> Option<u64> {
    let size = (block_size.max(1) as u64).checked_next_multiple_of(BLOCK_ALIGN as u64)?;
    offsets(u64::from(blocks), size).map(|o| o.total)
}

pub(crate) struct Inner<R> {
    region: R,
    control: *const Control,
    metas: *const Meta,
    cells: *const AtomicU64,
    pub(crate) data: *mut u8,
    pub(crate) blocks: u32,
    pub(crate) block_size: usize,
    /// The FIFO queue's capacity minus one (capacity: a power of two ≥ 2
    /// and ≥ `blocks`); positions are masked with it, so always in range.
    pub(crate) mask: u64,
    pub(crate) order: FreeOrder,
}

// SAFETY: the pointers point into `region`, owned here; shared state is
// reached only through atomics, and block bytes only by the block's holder.
unsafe impl<R: Send> Send for Inner<R> {}
// SAFETY: as above.
unsafe impl<R: Sync> Sync for Inner<R> {}

/// Fixed-size blocks in a [`Region`] that any attached process can take
/// ([`get`](MemPool::get)) and give back (drop the [`Block`]). Blocks are
/// named by [`BlockId`], an index, so an id means the same block in every
/// process; [`Block::into_id`] and [`from_id`](MemPool::from_id) hand a
/// block from one owner to the next. Free blocks come out first in, first
/// out by default ([`FreeOrder`]).
///
/// A `MemPool` made before `fork(2)` works in both processes, and each takes
/// its own blocks. See the [module docs](crate::pool) for the design and
/// what a killed process leaves.
///
/// # Examples
///
/// ```
/// use shm_mempool::MemPool;
/// use shm_segment::{AnonShared, Region};
///
/// // pyshm's `Mempool(count, size, shm=...)`: created before fork, shared after.
/// let region = AnonShared::new(MemPool::<()>::required_size(4, 4))?;
/// let pool = MemPool::create(region, 4, 4)?;
/// let block = pool.get()?;
/// block.write_pod(0, &42i32)?;
/// let id = block.into_id()?; // hand the id to another process…
/// let again = pool.from_id(id)?; // …which claims the block
/// assert!(pool.from_id(id).is_err()); // exactly once
/// assert_eq!(again.read_pod::<i32>(0)?, 42);
/// drop(again); // back to the pool
/// assert_eq!(pool.stats().free, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemPool<R> {
    pub(crate) inner: Arc<Inner<R>>,
}

impl<R> Clone for MemPool<R> {
    fn clone(&self) -> Self {
        MemPool {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R> std::fmt::Debug for MemPool<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemPool")
            .field("blocks", &self.inner.blocks)
            .field("block_size", &self.inner.block_size)
            .field("order", &self.inner.order)
            .finish_non_exhaustive()
    }
}

impl<R> MemPool<R> {
    /// Bytes a pool of `blocks` blocks of `block_size` bytes needs (each
    /// block rounded up to a multiple of 64), header included. The same for
    /// both free orders.
    ///
    /// # Panics
    ///
    /// If that many bytes cannot be addressed.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = shm_mempool::MemPool::<()>::required_size(16, 100);
    /// assert!(n >= 16 * 128);
    /// ```
    pub fn required_size(blocks: u32, block_size: usize) -> usize {
        checked_size(blocks, block_size)
            .and_then(|n| usize::try_from(n).ok())
            .expect("pool too large")
    }

    /// Whether both handles use the very same pool object (clones share it).
    pub(crate) fn same_pool(&self, other: &MemPool<R>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl MemPool<HeapRegion> {
    /// A pool on the heap, for use between threads, with the default
    /// options ([`FreeOrder::Fifo`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(8, 256)?;
    /// assert_eq!(pool.block_size(), 256);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn new_heap(blocks: u32, block_size: usize) -> Result<Self, PoolError> {
        Self::new_heap_with(blocks, block_size, PoolOptions::default())
    }

    /// A pool on the heap with `opts`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let pool = MemPool::new_heap_with(8, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(pool.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn new_heap_with(
        blocks: u32,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = checked_size(blocks, block_size)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| PoolError::InvalidLayout {
                target: Target::Heap,
                reason: format!("{blocks} blocks of {block_size} bytes cannot be addressed"),
            })?;
        Self::create_with(HeapRegion::new(size), blocks, block_size, opts)
    }
}

impl<R: Region> MemPool<R> {
    /// Lays out a pool of `blocks` blocks of `block_size` bytes (rounded up
    /// to a multiple of 64) in `region`, all free, with the default options
    /// ([`FreeOrder::Fifo`]), and publishes its header.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::MemPool;
    /// let region = shm_segment::HeapRegion::new(MemPool::<()>::required_size(2, 64));
    /// let pool = MemPool::create(region, 2, 64)?;
    /// assert_eq!(pool.blocks(), 2);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create(region: R, blocks: u32, block_size: usize) -> Result<Self, PoolError> {
        Self::create_with(region, blocks, block_size, PoolOptions::default())
    }

    /// [`create`](MemPool::create) with options: the free order.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let region = shm_segment::HeapRegion::new(MemPool::<()>::required_size(2, 64));
    /// let pool = MemPool::create_with(&region, 2, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(MemPool::attach(&region)?.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_with(
        region: R,
        blocks: u32,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let target = region.target();
        let invalid = |reason: String| PoolError::InvalidLayout {
            target: region.target(),
            reason,
        };
        if blocks == 0 || blocks > MAX_BLOCKS {
            return Err(invalid(format!(
                "block count {blocks} must be between 1 and {MAX_BLOCKS}"
            )));
        }
        let size = (block_size.max(1) as u64).next_multiple_of(BLOCK_ALIGN as u64);
        if block_size == 0 || size > u64::from(u32::MAX) {
            return Err(invalid(format!(
                "block size {block_size} must be between 1 and 4 GiB"
            )));
        }
        let needed = offsets(u64::from(blocks), size)
            .ok_or_else(|| invalid("the pool would not fit in memory".into()))?
            .total;
        if needed > region.len() as u64 {
            return Err(invalid(format!(
                "{blocks} blocks of {size} bytes need {needed} bytes, the region has {}",
                region.len()
            )));
        }
        region.check_writable("create pool")?;
        if let Ok(existing) = Header::read(&region) {
            let source = HeaderError::AlreadyInitialised {
                kind: existing.kind,
            };
            return Err(shm_segment::Error::Header { target, source }.into());
        }
        region.fill(HEADER_SIZE, needed as usize - HEADER_SIZE, 0)?;
        let pool = Self::wire(region, blocks, size as usize, Some(opts.order))?;
        let cap = pool.inner.mask + 1;
        let (order, fifo_tail, lifo_top) = match opts.order {
            // FIFO: blocks 0..n in cells 0..n, head 0, tail n.
            FreeOrder::Fifo => (ORDER_FIFO, u64::from(blocks), 0),
            // LIFO: block 0 on top, each linked to the next.
            FreeOrder::Lifo => (ORDER_LIFO, 0, 1),
        };
        // SAFETY: `wire` checked that the control block, the `blocks`
        // records and the `cap` cells are in bounds and aligned; nobody else
        // uses them before the header is published below. Writing whole
        // values constructs the atomics in place (what loom's need; for
        // std's it equals storing the values).
        unsafe {
            pool.inner.control.cast_mut().write(Control {
                order: CachePadded::new(AtomicU32::new(order)),
                stack: CachePadded::new(AtomicU64::new(lifo_top)),
                head: CachePadded::new(AtomicU64::new(0)),
                tail: CachePadded::new(AtomicU64::new(fifo_tail)),
            });
            for i in 0..blocks {
                let next = match opts.order {
                    FreeOrder::Lifo if i + 1 < blocks => i + 2,
                    _ => 0,
                };
                pool.inner.metas.cast_mut().add(i as usize).write(Meta {
                    next: AtomicU32::new(next),
                    used: AtomicU32::new(0),
                    word: AtomicU64::new(FREE),
                });
            }
            for p in 0..cap {
                let cell = match opts.order {
                    FreeOrder::Fifo if p < u64::from(blocks) => {
                        crate::free::cell_word(p + 1, p as u32)
                    }
                    _ => crate::free::cell_word(p, 0),
                };
                pool.inner
                    .cells
                    .cast_mut()
                    .add(p as usize)
                    .write(AtomicU64::new(cell));
            }
        }
        let info = HeaderInfo::new(
            Kind::MEMPOOL,
            LAYOUT_VERSION,
            size as u32,
            BLOCK_ALIGN as u32,
            u64::from(blocks),
            needed,
        );
        // SYNC POINT: the header's Release publish covers the lists built above.
        Header::init(&pool.inner.region, &info)?;
        Ok(pool)
    }

    /// Attaches to a pool another process created, validating its header
    /// (kind, version, alignment, block count and size against the region)
    /// and its free order.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::MemPool;
    /// let region = shm_segment::HeapRegion::new(MemPool::<()>::required_size(2, 64));
    /// MemPool::create(&region, 2, 64)?;
    /// let other = MemPool::attach(&region)?;
    /// assert_eq!((other.blocks(), other.block_size()), (2, 64));
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn attach(region: R) -> Result<Self, PoolError> {
        // Taking and giving back write shared words: a read-only mapping
        // would fault. Read-only observers use [`inspect`].
        region.check_writable("attach pool")?;
        let info = validate(&region)?;
        Self::wire(region, info.capacity as u32, info.elem_size as usize, None)
    }

    /// Checks bounds and alignment once; later indexes are checked against
    /// `blocks`, and queue positions masked. `order`: the one being laid
    /// out, or `None` to read (and check) the pool's.
    fn wire(
        region: R,
        blocks: u32,
        block_size: usize,
        order: Option<FreeOrder>,
    ) -> Result<Self, PoolError> {
        let too_big = || PoolError::InvalidLayout {
            target: region.target(),
            reason: format!("{blocks} blocks of {block_size} bytes cannot be addressed"),
        };
        let offs = offsets(u64::from(blocks), block_size as u64).ok_or_else(too_big)?;
        let cap = queue_cap(u64::from(blocks));
        let control = region.typed_ptr::<Control>("attach pool", CONTROL_OFFSET, 1)?;
        let metas = region.typed_ptr::<Meta>("attach pool", META_OFFSET, blocks as usize)?;
        let cells = region.typed_ptr::<AtomicU64>(
            "attach pool",
            usize::try_from(offs.cells).map_err(|_| too_big())?,
            usize::try_from(cap).map_err(|_| too_big())?,
        )?;
        let data_off = usize::try_from(offs.data).map_err(|_| too_big())?;
        let data_len = (blocks as usize)
            .checked_mul(block_size)
            .ok_or_else(too_big)?;
        region.check_range("attach pool", data_off, data_len)?;
        // SAFETY: in range (checked just above).
        let data = unsafe { region.as_ptr().add(data_off) };
        let order = match order {
            Some(order) => order,
            // SAFETY: in bounds and aligned (checked above); an atomic load.
            None => match unsafe { (*control).order.load(Ordering::Acquire) } {
                ORDER_FIFO => FreeOrder::Fifo,
                ORDER_LIFO => FreeOrder::Lifo,
                other => {
                    return Err(PoolError::Corrupted {
                        target: region.target(),
                        what: format!(
                            "the free-order word is {other}, not {ORDER_FIFO} (FIFO) or \
                             {ORDER_LIFO} (LIFO)"
                        ),
                    })
                }
            },
        };
        Ok(MemPool {
            inner: Arc::new(Inner {
                region,
                control,
                metas,
                cells,
                data,
                blocks,
                block_size,
                mask: cap - 1,
                order,
            }),
        })
    }
}

/// Reads a pool's header and checks it against the region: kind, version,
/// alignment, block count, block size and total size.
fn validate<R: Region>(region: &R) -> Result<HeaderInfo, PoolError> {
    let info = Header::read(region)?;
    let fail = |source| -> PoolError {
        shm_segment::Error::Header {
            target: region.target(),
            source,
        }
        .into()
    };
    if info.kind != Kind::MEMPOOL {
        return Err(fail(HeaderError::WrongKind {
            expected: Kind::MEMPOOL,
            found: info.kind,
        }));
    }
    if info.version != LAYOUT_VERSION {
        return Err(fail(HeaderError::Version {
            expected: LAYOUT_VERSION,
            found: info.version,
        }));
    }
    if info.elem_align != BLOCK_ALIGN as u32 {
        return Err(fail(HeaderError::ElemAlign {
            expected: BLOCK_ALIGN as u32,
            found: info.elem_align,
        }));
    }
    if info.capacity == 0 || info.capacity > u64::from(MAX_BLOCKS) {
        return Err(fail(HeaderError::Capacity {
            capacity: info.capacity,
            reason: "a pool has 1 to 2^31 blocks",
        }));
    }
    if info.elem_size == 0 || info.elem_size as usize % BLOCK_ALIGN != 0 {
        return Err(fail(HeaderError::ElemSize {
            expected: (info.elem_size.max(1) as usize).next_multiple_of(BLOCK_ALIGN) as u32,
            found: info.elem_size,
        }));
    }
    match offsets(info.capacity, u64::from(info.elem_size)) {
        Some(o) if o.total == info.total_size => {}
        Some(o) => {
            return Err(fail(HeaderError::Layout {
                expected: o.total,
                found: info.total_size,
            }))
        }
        None => {
            return Err(fail(HeaderError::Capacity {
                capacity: info.capacity,
                reason: "its layout overflows",
            }))
        }
    }
    if info.total_size > region.len() as u64 {
        return Err(fail(HeaderError::Truncated {
            needed: info.total_size,
            actual: region.len() as u64,
        }));
    }
    Ok(info)
}

impl<R> MemPool<R> {
    pub(crate) fn control(&self) -> &Control {
        // SAFETY: in bounds and aligned (checked in `wire`); atomics only.
        unsafe { &*self.inner.control }
    }

    /// The record of block `i`; callers pass `i < blocks`.
    pub(crate) fn meta(&self, i: u32) -> &Meta {
        assert!(i < self.inner.blocks);
        // SAFETY: `i < blocks` (asserted), and `wire` checked that `blocks`
        // records fit; atomics only.
        unsafe { &*self.inner.metas.add(i as usize) }
    }

    /// The FIFO cell for queue position `pos` (masked: always in range).
    pub(crate) fn cell(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: `pos & mask < cap`, and `wire` checked that `cap` cells
        // fit; atomics only.
        unsafe { &*self.inner.cells.add((pos & self.inner.mask) as usize) }
    }

    /// How many blocks the pool has.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_mempool::MemPool::new_heap(3, 8)?.blocks(), 3);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn blocks(&self) -> u32 {
        self.inner.blocks
    }

    /// Bytes per block (a multiple of 64).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_mempool::MemPool::new_heap(3, 8)?.block_size(), 64);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn block_size(&self) -> usize {
        self.inner.block_size
    }

    /// The order in which the pool hands out free blocks (set at create).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool};
    /// assert_eq!(MemPool::new_heap(3, 8)?.order(), FreeOrder::Fifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn order(&self) -> FreeOrder {
        self.inner.order
    }

    /// The region the pool lives in.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let pool = shm_mempool::MemPool::new_heap(3, 8)?;
    /// assert!(pool.region().len() >= 3 * 64);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn region(&self) -> &R {
        &self.inner.region
    }
}

impl<R: Region> MemPool<R> {
    pub(crate) fn corrupted(&self, what: String) -> PoolError {
        PoolError::Corrupted {
            target: self.inner.region.target(),
            what,
        }
    }

    pub(crate) fn target(&self) -> Target {
        self.inner.region.target()
    }

    fn index(&self, op: &'static str, id: BlockId) -> Result<u32, PoolError> {
        if id.0 < self.inner.blocks {
            Ok(id.0)
        } else {
            Err(PoolError::OutOfRange {
                op,
                target: self.target(),
                id,
                blocks: self.inner.blocks,
            })
        }
    }

    fn wrong_state(
        &self,
        op: &'static str,
        id: BlockId,
        expected: &'static str,
        word: u64,
    ) -> PoolError {
        PoolError::WrongState {
            op,
            target: self.target(),
            id,
            expected,
            found: state_name(word),
        }
    }

    /// Takes a free block, or fails with [`PoolError::Exhausted`]. The block
    /// is recorded as held by this process; dropping it gives it back.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let pool = shm_mempool::MemPool::new_heap(2, 64)?;
    /// let block = pool.get()?;
    /// block.write_at(0, b"payload")?;
    /// assert_eq!(pool.stats().held, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn get(&self) -> Result<Block<'_, R>, PoolError> {
        let epoch = ForkEpoch::now();
        let owner = owner_bits(ProcessId::current());
        let (id, word) = self.take(owner)?;
        Ok(Block::new(self, id, word, epoch))
    }

    fn take(&self, owner: u64) -> Result<(BlockId, u64), PoolError> {
        let Some(i) = self.pop_free()? else {
            return Err(PoolError::Exhausted {
                target: self.target(),
                blocks: self.inner.blocks,
            });
        };
        let word = &self.meta(i).word;
        let w = word.load(Ordering::Acquire);
        if state_of(w) != FREE {
            return Err(self.corrupted(format!(
                "block {i} was on the free list but is {}",
                state_name(w)
            )));
        }
        let held = next_word(w, HELD, owner);
        // SYNC POINT: AcqRel; the bytes were published by the free list's
        // Release/Acquire pair already, this orders the record's change.
        if let Err(now) = word.compare_exchange(w, held, Ordering::AcqRel, Ordering::Relaxed) {
            return Err(self.corrupted(format!(
                "block {i} changed while free and on no list: it is {}",
                state_name(now)
            )));
        }
        self.meta(i).used.store(0, Ordering::Relaxed);
        Ok((BlockId(i), held))
    }

    /// Moves block `id` from the exact word `from` to `to` (one CAS); the
    /// error names the state found.
    pub(crate) fn exchange(
        &self,
        op: &'static str,
        id: BlockId,
        expected: &'static str,
        from: u64,
        to: u64,
    ) -> Result<(), PoolError> {
        let i = self.index(op, id)?;
        // SYNC POINT: AcqRel: Release publishes the bytes written under
        // `from` to whoever moves the block next (a `from_id`'s Acquire, or
        // the free list's), Acquire takes what the last mover published.
        self.meta(i)
            .word
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(|now| self.wrong_state(op, id, expected, now))
    }

    /// Gives back block `id`, held under exactly `held` (what dropping a
    /// [`Block`] does).
    pub(crate) fn release(
        &self,
        op: &'static str,
        id: BlockId,
        held: u64,
    ) -> Result<(), PoolError> {
        self.exchange(
            op,
            id,
            "held by this handle",
            held,
            next_word(held, FREE, 0),
        )?;
        self.push_free(id.0)
    }

    /// Moves an in-transit block to `state` (for `put`: free; for `from_id`:
    /// held by `owner`) with one CAS. Returns the word written.
    fn claim(
        &self,
        op: &'static str,
        id: BlockId,
        state: u64,
        owner: u64,
    ) -> Result<u64, PoolError> {
        let i = self.index(op, id)?;
        let word = &self.meta(i).word;
        let mut current = word.load(Ordering::Acquire);
        loop {
            if state_of(current) != IN_TRANSIT {
                return Err(self.wrong_state(op, id, "in transit", current));
            }
            let to = next_word(current, state, owner);
            // SYNC POINT: AcqRel: Acquire pairs with the Release of the CAS
            // that put the block in transit (`Block::into_id`): the bytes
            // written before it are visible to the claimer.
            match word.compare_exchange_weak(current, to, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(to),
                Err(now) => current = now,
            }
        }
    }

    /// Gives back a block in transit, by id: one turned into an id with
    /// [`Block::into_id`] and not claimed since. Only one `put` (or
    /// [`from_id`](MemPool::from_id)) of an id succeeds; a block that is free,
    /// or held by anyone (this process included), is refused with
    /// [`PoolError::WrongState`] and left as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{MemPool, PoolError};
    /// let pool = MemPool::new_heap(2, 64)?;
    /// let id = pool.get()?.into_id()?;
    /// pool.put(id)?;
    /// assert!(matches!(pool.put(id), Err(PoolError::WrongState { found: "free", .. })));
    /// let held = pool.get()?;
    /// assert!(pool.put(held.id()).is_err()); // a guard holds it: not ours to give back
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn put(&self, id: BlockId) -> Result<(), PoolError> {
        self.claim("put", id, FREE, 0)?;
        self.push_free(id.0)
    }

    /// Claims a block in transit, by id: one another process (or this one)
    /// handed on with [`Block::into_id`]. The block is then held by this
    /// process and given back when the guard drops. Exactly one claim of an
    /// id succeeds: a second `from_id` (the block is held), a `from_id` of a
    /// free block or of one a guard holds is refused with
    /// [`PoolError::WrongState`] and changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{BlockId, MemPool, PoolError};
    /// let pool = MemPool::new_heap(2, 64)?;
    /// let id = pool.get()?.into_id()?;
    /// let block = pool.from_id(id)?;
    /// assert_eq!(block.id(), id);
    /// assert!(matches!(pool.from_id(id), Err(PoolError::WrongState { found: "held", .. })));
    /// assert!(pool.from_id(BlockId(1)).is_err()); // free, not in transit
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn from_id(&self, id: BlockId) -> Result<Block<'_, R>, PoolError> {
        self.claim_as("from_id", id)
    }

    /// [`from_id`](MemPool::from_id) under another operation's name.
    pub(crate) fn claim_as(
        &self,
        op: &'static str,
        id: BlockId,
    ) -> Result<Block<'_, R>, PoolError> {
        let epoch = ForkEpoch::now();
        let owner = owner_bits(ProcessId::current());
        let word = self.claim(op, id, HELD, owner)?;
        Ok(Block::new(self, id, word, epoch))
    }

    /// Gives back every block held by a process that no longer exists, and
    /// returns their ids. Blocks in transit (ids handed on, or queued in a
    /// channel's ring) are owned by nobody and left alone, whoever sent them:
    /// a receiver may still claim them. Safe to run at any time, from any
    /// process.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(2, 64)?;
    /// let _mine = pool.get()?;
    /// assert!(pool.reclaim_dead()?.is_empty()); // we are alive
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn reclaim_dead(&self) -> Result<Vec<BlockId>, PoolError> {
        let mut alive: HashMap<u64, bool> = HashMap::new();
        let mut reclaimed = Vec::new();
        let owner_mask = !((GEN_MASK << GEN_SHIFT) | STATE_MASK);
        for i in 0..self.inner.blocks {
            let word = &self.meta(i).word;
            let w = word.load(Ordering::Acquire);
            if state_of(w) != HELD
                || *alive
                    .entry(w & owner_mask)
                    .or_insert_with(|| owner_alive(w))
            {
                continue;
            }
            // One CAS from exactly this dead owner's word: if anything
            // changed meanwhile, the block is not the dead process's any more.
            if word
                .compare_exchange(
                    w,
                    next_word(w, FREE, 0),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                self.push_free(i)?;
                reclaimed.push(BlockId(i));
            }
        }
        Ok(reclaimed)
    }

    /// For the loom models only: what [`reclaim_dead`](MemPool::reclaim_dead)
    /// does to a block whose owner died, applied to a live owner's block
    /// (loom cannot start processes), so a model can make a stale handle.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_free_as_if_owner_died(&self, id: BlockId) {
        let word = &self.meta(id.0).word;
        let w = word.load(Ordering::Acquire);
        assert_eq!(state_of(w), HELD, "only a held block");
        word.compare_exchange(
            w,
            next_word(w, FREE, 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .expect("nobody else changes it in the models");
        self.push_free(id.0).unwrap();
    }

    /// Counts blocks by state and held blocks by owner, from the per-block
    /// records (a snapshot when others are active).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(4, 64)?;
    /// let _a = pool.get()?;
    /// let id = pool.get()?.into_id()?;
    /// let stats = pool.stats();
    /// assert_eq!((stats.free, stats.held, stats.in_transit), (2, 1, 1));
    /// assert_eq!(stats.by_owner, vec![(shm_segment::ProcessId::current().pid, 1)]);
    /// # pool.put(id)?;
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        count((0..self.inner.blocks).map(|i| self.meta(i).word.load(Ordering::Acquire)))
            .with_sizes(self.inner.blocks, self.inner.block_size)
    }

    /// Walks the free list (at most `blocks` steps) and checks it against
    /// the block records: every listed block is free, none twice, no cycle,
    /// and (FIFO) the queue's cells and tail agree. Returns how many blocks
    /// are listed. Meaningful while no other process changes the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(4, 64)?;
    /// let _a = pool.get()?;
    /// assert_eq!(pool.check()?, 3);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn check(&self) -> Result<u32, PoolError> {
        let walk = self.walk_free()?;
        let mut seen = vec![false; self.inner.blocks as usize];
        for &i in &walk.listed {
            if std::mem::replace(&mut seen[i as usize], true) {
                return Err(self.corrupted(format!("block {i} is on the free list twice")));
            }
            let w = self.meta(i).word.load(Ordering::Acquire);
            if state_of(w) != FREE {
                return Err(self.corrupted(format!(
                    "block {i} is on the free list but is {}",
                    state_name(w)
                )));
            }
        }
        Ok(walk.listed.len() as u32)
    }

    /// Returns to the free list every block that is free but on no list
    /// (left by a process killed mid-`get` or mid-give-back) or in transit
    /// but not in `in_transit`: pass every id that is still meant to be
    /// claimed (those queued in channels' rings, and those that live
    /// processes hold as ids). Only while no other process uses the pool.
    /// Returns the ids.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(4, 64)?;
    /// let kept = pool.get()?.into_id()?;
    /// let lost = pool.get()?.into_id()?; // an id nobody will claim
    /// assert_eq!(pool.recover_orphans(&[kept])?, vec![lost]);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn recover_orphans(&self, in_transit: &[BlockId]) -> Result<Vec<BlockId>, PoolError> {
        let mut listed = vec![false; self.inner.blocks as usize];
        for i in self.walk_free()?.listed {
            listed[i as usize] = true;
        }
        let mut keep = vec![false; self.inner.blocks as usize];
        for id in in_transit {
            keep[self.index("recover_orphans", *id)? as usize] = true;
        }
        let mut recovered = Vec::new();
        for i in 0..self.inner.blocks {
            let word = &self.meta(i).word;
            let w = word.load(Ordering::Acquire);
            let orphan = match state_of(w) {
                FREE => !listed[i as usize],
                IN_TRANSIT if !keep[i as usize] => word
                    .compare_exchange(
                        w,
                        next_word(w, FREE, 0),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok(),
                _ => false,
            };
            if orphan {
                self.push_free(i)?;
                recovered.push(BlockId(i));
            }
        }
        Ok(recovered)
    }

    pub(crate) fn set_used(&self, id: BlockId, used: u32) {
        self.meta(id.0).used.store(used, Ordering::Release);
    }

    pub(crate) fn used(&self, id: BlockId) -> u32 {
        self.meta(id.0).used.load(Ordering::Acquire)
    }
}

/// Counts from [`MemPool::stats`] and [`inspect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Blocks in the pool.
    pub blocks: u32,
    /// Bytes per block.
    pub block_size: usize,
    /// Free blocks.
    pub free: u32,
    /// Blocks held by a process (through a [`Block`]).
    pub held: u32,
    /// Blocks in transit, owned by nobody: handed on as an id
    /// ([`Block::into_id`]) or queued in a channel's ring.
    pub in_transit: u32,
    /// Blocks whose record is garbage (corruption).
    pub unknown: u32,
    /// Held blocks per owner pid, sorted by pid.
    pub by_owner: Vec<(u32, u32)>,
}

impl PoolStats {
    fn with_sizes(mut self, blocks: u32, block_size: usize) -> Self {
        self.blocks = blocks;
        self.block_size = block_size;
        self
    }
}

/// Counts the record words.
fn count(words: impl Iterator<Item = u64>) -> PoolStats {
    let mut stats = PoolStats::default();
    let mut owners: HashMap<u32, u32> = HashMap::new();
    for w in words {
        match state_of(w) {
            FREE => stats.free += 1,
            HELD => {
                stats.held += 1;
                *owners.entry(owner_of(w).pid).or_default() += 1;
            }
            IN_TRANSIT => stats.in_transit += 1,
            _ => stats.unknown += 1,
        }
    }
    stats.by_owner = owners.into_iter().collect();
    stats.by_owner.sort_unstable();
    stats
}

/// Counts a pool's blocks by state without attaching, with atomic loads
/// only, so a read-only mapping will do (what `shm inspect` uses). The
/// header is validated as [`MemPool::attach`] does.
///
/// # Examples
///
/// ```
/// use shm_mempool::{pool::inspect, MemPool};
/// let region = shm_segment::HeapRegion::new(MemPool::<()>::required_size(4, 64));
/// let pool = MemPool::create(&region, 4, 64)?;
/// let _held = pool.get()?;
/// let stats = inspect(&region)?;
/// assert_eq!((stats.free, stats.held), (3, 1));
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
pub fn inspect<R: Region>(region: &R) -> Result<PoolStats, PoolError> {
    let info = validate(region)?;
    let blocks = info.capacity as u32;
    let mut words = Vec::with_capacity(blocks as usize);
    for i in 0..blocks as usize {
        let offset =
            META_OFFSET + i * std::mem::size_of::<Meta>() + std::mem::offset_of!(Meta, word);
        // Bounds-checked by the load: a lying header gives an error, not a fault.
        words.push(region.load_u64(offset, Ordering::Acquire)?);
    }
    Ok(count(words.into_iter()).with_sizes(blocks, info.elem_size as usize))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn owner_word_round_trips_and_reports_liveness() {
        let me = ProcessId::current();
        let w = next_word(FREE, HELD, owner_bits(me));
        assert_eq!(state_of(w), HELD);
        assert_eq!(owner_of(w).pid, me.pid);
        assert!(owner_alive(w));
        let other = ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(!owner_alive(next_word(FREE, HELD, owner_bits(other))));
    }

    #[test]
    fn every_change_bumps_the_generation_and_it_wraps() {
        let mut w = FREE;
        let mut seen = std::collections::HashSet::new();
        for k in 0..1024u64 {
            assert!(seen.insert(w), "word {w:#x} again after {k} changes");
            w = next_word(w, FREE, 0);
        }
        assert_eq!(w, FREE, "the generation wraps after 1024 changes");
        let me = owner_bits(ProcessId::current());
        assert_ne!(
            next_word(FREE, HELD, me),
            next_word(next_word(FREE, HELD, me), HELD, me)
        );
    }

    #[test]
    fn fifo_and_lifo_hand_out_in_their_order() {
        for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
            let pool = MemPool::new_heap_with(4, 64, PoolOptions::new().order(order)).unwrap();
            let fresh: Vec<u32> = (0..4)
                .map(|_| pool.get().unwrap().into_id().unwrap().0)
                .collect();
            assert_eq!(fresh, [0, 1, 2, 3], "{order:?}");
            for id in [2, 0, 3, 1] {
                pool.put(BlockId(id)).unwrap();
            }
            let again: Vec<u32> = (0..4)
                .map(|_| pool.get().unwrap().into_id().unwrap().0)
                .collect();
            let want = match order {
                FreeOrder::Fifo => [2, 0, 3, 1],
                FreeOrder::Lifo => [1, 3, 0, 2],
            };
            assert_eq!(again, want, "{order:?}");
        }
    }

    #[test]
    fn every_block_once_then_exhausted_then_all_back() {
        for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
            let pool = MemPool::new_heap_with(5, 64, PoolOptions::new().order(order)).unwrap();
            let blocks: Vec<_> = (0..5).map(|_| pool.get().unwrap()).collect();
            let mut ids: Vec<u32> = blocks.iter().map(|b| b.id().0).collect();
            ids.sort_unstable();
            assert_eq!(ids, [0, 1, 2, 3, 4]);
            assert!(matches!(
                pool.get(),
                Err(PoolError::Exhausted { blocks: 5, .. })
            ));
            drop(blocks);
            assert_eq!(pool.check().unwrap(), 5);
        }
    }

    #[test]
    fn a_fifo_queue_laps_many_times() {
        // Capacity 2 for one block: every put and get moves a lap on.
        let pool = MemPool::new_heap(1, 64).unwrap();
        for round in 0..10_000u64 {
            let b = pool.get().unwrap();
            b.write_pod(0, &round).unwrap();
        }
        assert_eq!(pool.check().unwrap(), 1);
        let pool = MemPool::new_heap(3, 64).unwrap();
        for _ in 0..10_000 {
            let a = pool.get().unwrap();
            let b = pool.get().unwrap();
            drop(a);
            let c = pool.get().unwrap();
            drop((b, c));
        }
        assert_eq!(pool.check().unwrap(), 3);
    }

    #[test]
    fn corrupted_links_are_errors_not_out_of_bounds() {
        let pool =
            MemPool::new_heap_with(4, 64, PoolOptions::new().order(FreeOrder::Lifo)).unwrap();
        pool.control().stack.store(99, Ordering::Relaxed);
        assert!(matches!(pool.get(), Err(PoolError::Corrupted { .. })));
        assert!(matches!(pool.check(), Err(PoolError::Corrupted { .. })));
        // A cycle: 1 -> 2 -> 1.
        pool.control().stack.store(1, Ordering::Relaxed);
        pool.meta(0).next.store(2, Ordering::Relaxed);
        pool.meta(1).next.store(1, Ordering::Relaxed);
        let err = pool.check().unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
        assert!(pool.recover_orphans(&[]).is_err());
    }

    #[test]
    fn threads_share_blocks_without_loss() {
        for order in [FreeOrder::Fifo, FreeOrder::Lifo] {
            let pool = MemPool::new_heap_with(64, 64, PoolOptions::new().order(order)).unwrap();
            std::thread::scope(|s| {
                for t in 0..4u64 {
                    let pool = &pool;
                    s.spawn(move || {
                        for i in 0..20_000u64 {
                            let block = pool.get().unwrap();
                            block.write_pod(0, &[t, i]).unwrap();
                            assert_eq!(block.read_pod::<[u64; 2]>(0).unwrap(), [t, i]);
                        }
                    });
                }
            });
            assert_eq!(pool.check().unwrap(), 64, "{order:?}");
            assert_eq!(pool.stats().free, 64);
        }
    }

    #[test]
    fn threads_on_a_tiny_fifo_never_share_a_block() {
        // Two blocks, four threads: the queue is empty most of the time and
        // laps constantly, the hardest case for the stamps and the hints.
        let pool = MemPool::new_heap(2, 64).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let pool = &pool;
                s.spawn(move || {
                    let mut got = 0;
                    while got < 20_000u64 {
                        match pool.get() {
                            Ok(block) => {
                                block.write_pod(0, &[t, got]).unwrap();
                                std::hint::spin_loop();
                                assert_eq!(block.read_pod::<[u64; 2]>(0).unwrap(), [t, got]);
                                got += 1;
                            }
                            Err(PoolError::Exhausted { .. }) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
        });
        assert_eq!(pool.check().unwrap(), 2);
    }
}
