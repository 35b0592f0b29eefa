//! The block pool.
//!
//! **Layout** (layout version 4). After the 64-byte header, at offset 128,
//! the control block: the free order, the LIFO stack's head, the FIFO free
//! queue's head and tail, the channel queue's head and tail, the channel's
//! futex words and flags, each on its own cache lines. Then the owner
//! table: [`OWNER_SLOTS`] words. Then one 16-byte record per block; then
//! the cells of the FIFO free queue and of the channel queue, `C` 8-byte
//! words each (`C` is the block count rounded up to a power of two, at
//! least 2); then the blocks, each a multiple of 64 bytes and 64-byte
//! aligned. Both orders have the same layout. The order is written once by
//! [`MemPool::create_with`] and copied into each handle by
//! [`MemPool::attach`]; capacity and offsets come from the header, checked
//! against the region's real size, and are never read from shared memory
//! again. Every index read from shared memory (a block in a cell or a link,
//! an owner slot in a word or a mark) is checked before use.
//!
//! **Free order.** [`FreeOrder::Fifo`], the default, hands blocks out in
//! the order they were given back, as pyshm's and DPDK's ring-based pools
//! do: a fresh pool hands out 0, 1, 2, …, and a block given back queues
//! behind every block given back before it. [`FreeOrder::Lifo`] hands out
//! the block given back last (still warm in the cache), and a fresh pool
//! hands out 0, 1, 2, … too.
//!
//! **One owner per block, one word per block.** Each block's record holds
//! one word: its state, a 30-bit generation bumped by every change, and a
//! place. The states and places:
//!
//! - *free*: in the free list; in a FIFO pool, the place is the position
//!   of its queue cell (mod 2^32);
//! - *held*: by the owner slot in the place (see below); with the
//!   `CACHED` bit in the place (layout version 4), the block lies in one of
//!   that owner's [`BlockCache`](crate::BlockCache)s rather than out with a
//!   [`Block`]: only its owner moves it between the two (a load and a
//!   store, see `cache.rs`), and `reclaim_dead` gives it back like any
//!   held block when the owner is gone;
//! - *in transit*: handed on as an id ([`Block::into_id`]), owned by nobody;
//! - *queued*: sent through the pool's [`Channel`](crate::Channel), at the
//!   channel queue's position in the place.
//!
//! Every change of ownership is one CAS from the exact word the caller saw:
//! [`get`](MemPool::get) (free → held by me), dropping the [`Block`]
//! (from its exact word → free), [`Block::into_id`] (→ in transit),
//! [`from_id`](MemPool::from_id) (in transit → held by me), [`put`](MemPool::put)
//! (in transit → free), a channel's send (held → queued) and receive
//! (queued → held by me). Of two callers with the same id exactly one wins;
//! the others get [`PoolError::WrongState`]. A `Block` whose word changed
//! under it (the block was taken from it) gives nothing back when dropped.
//!
//! **The owner table.** A process that takes a block first claims a slot
//! of the table: a CAS of its full `ProcessId` word (pid and start time)
//! into a free slot, once per process and handle (the slot is cached in the
//! handle; a `fork`ed child's `ProcessId` differs, so it claims its own).
//! A held block's word names the slot, so the liveness of its owner is the
//! kernel's answer for the full `ProcessId` ([`ProcessId::is_alive`]),
//! asked only by [`reclaim_dead`](MemPool::reclaim_dead) and
//! [`stats`](MemPool::stats), never on the fast path. A handle gives its
//! slot back when dropped (unless a leaked `Block` still holds a block
//! through it). A full table is [`PoolError::TooManyProcesses`], after
//! the slots of processes that are gone were taken back.
//!
//! **The queues** (the FIFO free queue and the channel queue): cells that
//! change by one CAS each, and a block word that decides. Cell `p mod C`
//! holds a 32-bit stamp and a block index: empty for position `p` when the
//! stamp is `p`, full when it is `p + 1`, emptied for the next lap (`p +
//! C`) by a taker. A taker reads the cell at the head; if its block's word
//! says it is queued exactly there, one CAS makes the word *held by me*
//! (the decisive step), then it empties the cell and moves the head hint.
//! A cell whose block's word moved on was taken already: whoever finds it
//! empties it. A giver finds the empty cell at the tail, CASes the block's
//! word to *free (queued) there* (the decisive step), then fills the cell;
//! if another block filled that position first, the word moves on to a
//! later one (one CAS from the word seen, so a block is never listed
//! twice). The head and tail are hints, moved on by whoever finds them
//! behind (the cells say where the truth is). `C` is at least the block
//! count, so a queue is never full, and a dead process never wedges one.
//!
//! **LIFO: a Treiber stack whose head carries a pending mark.** The head
//! word packs a 24-bit tag (bumped by every change, so a pop whose view
//! went stale fails its CAS: the ABA case), a mark and the top block's
//! link. A get CASes the head to *popped by my slot* (decisive), then the
//! block's word to held; a give-back links the block and CASes the head to
//! *pushed* (decisive), then the word to free. Whoever reads a marked head
//! settles it first (the same CAS on the word its owner makes), so a mark
//! left by a killed process is finished by the next operation.
//!
//! An id is a capability: once it was claimed or given back, a copy of it
//! kept elsewhere is refused while the block is held, free or queued, but
//! claims the block if it is back in transit under the same id (ids carry
//! no generation). Hand an id on once, and forget it.
//!
//! A `Block` inherited by a child made with `fork(2)` is inert there (see
//! [`Block`]): it belongs to the parent. The [`MemPool`] handle itself works
//! in the child, which claims its own owner slot and takes blocks of its
//! own (pyshm's pattern: the pool is made before the fork).
//!
//! **What a killed process leaves.** Nothing is lost, whichever instruction
//! the kill lands on, and nothing waits for the world to stop: every
//! operation has one decisive CAS on a block word, before which nothing
//! happened and after which every remaining step is one that anyone may
//! do for it (each is a CAS with the values the owner would use).
//!
//! - Blocks it held (through a `Block`, in a `BlockCache`, or taken by a
//!   get or receive whose decisive step happened): held through its dead
//!   slot.
//!   [`MemPool::reclaim_dead`] takes the slot over (a CAS, so two
//!   reclaimers never share one), gives those blocks back, and frees the
//!   slot. Safe at any time, from any process, while others keep working.
//! - A FIFO get or receive killed before its decisive step changed
//!   nothing; killed after it, before emptying the cell: the next taker
//!   empties it. A LIFO get killed after marking the head: the next
//!   operation (or `reclaim_dead`) marks the block held by the dead slot.
//! - A give-back or send killed after its decisive step, before filling the
//!   cell: the block is free (or queued) with its place named, and
//!   `reclaim_dead` fills the cell for it (the message is delivered). A
//!   LIFO give-back killed after linking: the next operation (or
//!   `reclaim_dead`) marks it free.
//! - A head or tail hint it did not move on: the next caller moves it.
//! - Blocks it had turned into ids with `into_id`: in transit, owned by
//!   nobody. Neither the pool nor any operation of it knows who holds an
//!   id, so `reclaim_dead` leaves them alone (whoever holds the id may
//!   still claim it). [`MemPool::recover_orphans`], given the ids still
//!   meant to be claimed, frees the others, while nobody else hands ids
//!   on. That is all it is still needed for: no kill in the middle of an
//!   operation leaves anything for it.
//!
//! After a kill and `reclaim_dead`, [`MemPool::check`] finds every free
//! block on the free list and every queued block in the channel queue;
//! `tests/kill.rs` kills processes at random points of get, give-back,
//! send and receive while another works, and checks exactly that.

mod create;
pub(crate) mod free;
mod inspect;
mod layout;
mod ops;
mod state;
#[cfg(all(test, not(loom)))]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use shm_segment::{
    Expect, ForkEpoch, Header, HeaderInfo, HeapRegion, Kind, ProcessId, Region, RegionChecks,
    Segment, SysvKey, Target, HEADER_SIZE,
};

pub use crate::block::Block;
use crate::error::PoolError;
use crate::sync::{AtomicU32, AtomicU64};
use crate::BlockId;
use free::{cell_word, Q};

pub(crate) use create::*;
pub(crate) use inspect::*;
pub use inspect::{inspect, PoolStats};
pub(crate) use layout::*;
#[cfg(loom)]
pub use ops::LoomKilled;
pub(crate) use ops::*;
pub use state::BlockState;
pub(crate) use state::*;

/// 3: the owner table, block words that name their owner slot or their
/// queue position, the LIFO head's pending mark, and the channel queue.
/// 4: a held word's place may carry [`CACHED`] (the block lies in a
/// [`BlockCache`](crate::BlockCache)); a version 3 peer would read such a
/// word as held by a slot out of range.
pub(crate) const LAYOUT_VERSION: u32 = 4;
/// Blocks are multiples of this many bytes, aligned to it (a cache line).
pub const BLOCK_ALIGN: usize = 64;
/// Slots in a pool's owner table: at most this many processes (or
/// separately attached handles) take blocks from one pool at a time. A
/// process claims a slot on its first operation and gives it back when its
/// handle drops; [`MemPool::reclaim_dead`] frees the slots of processes
/// that are gone.
///
/// # Examples
///
/// ```
/// use shm_mempool::{MemPool, PoolError, OWNER_SLOTS};
/// let region = shm_segment::HeapRegion::new(MemPool::required_size(1, 64));
/// MemPool::create(&region, 1, 64)?;
/// // Each attach is a handle of its own: its first get claims a slot.
/// let mut handles = Vec::new();
/// for _ in 0..OWNER_SLOTS {
///     let pool = MemPool::attach(&region)?;
///     drop(pool.get()?);
///     handles.push(pool);
/// }
/// let one_more = MemPool::attach(&region)?;
/// assert!(matches!(one_more.get(), Err(PoolError::TooManyProcesses { slots: 128, .. })));
/// drop(handles); // each gives its slot back
/// assert!(one_more.get().is_ok());
/// # Ok::<(), PoolError>(())
/// ```
pub const OWNER_SLOTS: usize = SLOTS as usize;
/// [`OWNER_SLOTS`] as the slot indexes' type.
pub(crate) const SLOTS: u32 = 128;
pub(crate) const CONTROL_OFFSET: usize = 128;
pub(crate) const OWNERS_OFFSET: usize = CONTROL_OFFSET + std::mem::size_of::<Control>();
pub(crate) const META_OFFSET: usize = OWNERS_OFFSET + OWNER_SLOTS * 8;
/// At most this many blocks (the queues' capacity must fit a 32-bit stamp).
pub(crate) const MAX_BLOCKS: u32 = 1 << 31;

/// The free-order word's values (0 is never valid, so zeroed memory is not a pool).
pub(crate) const ORDER_FIFO: u32 = 1;
pub(crate) const ORDER_LIFO: u32 = 2;
/// [`Control::flags`]: senders wake receivers that sleep on a futex.
pub(crate) const FLAG_BLOCKING: u32 = 1;

/// In which order a pool hands out its free blocks.
///
/// # Examples
///
/// ```
/// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
/// let region = shm_segment::HeapRegion::new(MemPool::required_size(4, 64));
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
    /// Whether senders on the pool's channel queue wake sleeping receivers
    /// (set by [`Channel`](crate::Channel)'s options).
    blocking: bool,
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
    /// let opts = PoolOptions::new().order(FreeOrder::Lifo);
    /// assert_eq!(opts.order_of(), FreeOrder::Lifo);
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

    /// Receivers on the pool's channel queue may sleep on a futex.
    pub(crate) fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }
}

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
/// use shm_segment::Region;
///
/// // pyshm's `Mempool(count, size, shm=...)`: created before fork, shared
/// // after (`MemPool::create(region, ..)` lays one out in any region).
/// let pool = MemPool::create_memfd("doc-pool", 4, 4)?;
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
pub struct MemPool<R = Segment> {
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
    /// Whether both handles use the very same pool object (clones share it).
    pub(crate) fn same_pool(&self, other: &MemPool<R>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<R> MemPool<R> {
    pub(crate) fn control(&self) -> &Control {
        // SAFETY: in bounds and aligned (checked in `wire`); atomics only.
        unsafe { &*self.inner.control }
    }

    /// The record of block `i`; callers pass `i < blocks`.
    #[inline]
    pub(crate) fn meta(&self, i: u32) -> &Meta {
        assert!(i < self.inner.blocks);
        // SAFETY: `i < blocks` (asserted), and `wire` checked that `blocks`
        // records fit; atomics only.
        unsafe { &*self.inner.metas.add(i as usize) }
    }

    /// The cell of queue `q` for position `pos` (masked: always in range).
    #[inline]
    pub(crate) fn q_cell(&self, q: Q, pos: u64) -> &AtomicU64 {
        let base = match q {
            Q::Free => self.inner.cells,
            Q::Sent => self.inner.sent,
        };
        // SAFETY: `pos & mask < cap`, and `wire` checked that `cap` cells
        // of each queue fit; atomics only.
        unsafe { &*base.add((pos & self.inner.mask) as usize) }
    }

    /// Owner slot `s`'s word: the `ProcessId` word of the process that
    /// claimed it, 0 when free. Callers pass `s < OWNER_SLOTS`.
    pub(crate) fn owner(&self, s: u32) -> &AtomicU64 {
        assert!(s < SLOTS);
        // SAFETY: `s < OWNER_SLOTS` (asserted), and `wire` checked that the
        // table fits; atomics only.
        unsafe { &*self.inner.owners.add(s as usize) }
    }

    /// How many blocks the pool has.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_mempool::MemPool::new_heap(3, 8)?.blocks(), 3);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn blocks(&self) -> usize {
        self.inner.blocks as usize
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
