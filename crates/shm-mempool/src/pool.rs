//! The block pool.
//!
//! **Layout** (layout version 3). After the 64-byte header, at offset 128,
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
//! - *held*: by the owner slot in the place (see below);
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
//! - Blocks it held (through a `Block`, or taken by a get or receive whose
//!   decisive step happened): held through its dead slot.
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
use crate::free::{cell_word, Q};
use crate::sync::{AtomicU32, AtomicU64};
use crate::BlockId;

/// 3: the owner table, block words that name their owner slot or their
/// queue position, the LIFO head's pending mark, and the channel queue.
const LAYOUT_VERSION: u32 = 3;
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
const CONTROL_OFFSET: usize = 128;
const OWNERS_OFFSET: usize = CONTROL_OFFSET + std::mem::size_of::<Control>();
const META_OFFSET: usize = OWNERS_OFFSET + OWNER_SLOTS * 8;
/// At most this many blocks (the queues' capacity must fit a 32-bit stamp).
const MAX_BLOCKS: u32 = 1 << 31;

/// The free-order word's values (0 is never valid, so zeroed memory is not a pool).
const ORDER_FIFO: u32 = 1;
const ORDER_LIFO: u32 = 2;
/// [`Control::flags`]: senders wake receivers that sleep on a futex.
const FLAG_BLOCKING: u32 = 1;

/// Block states, in the low 2 bits of [`Meta::word`].
pub(crate) const FREE: u64 = 0;
pub(crate) const HELD: u64 = 1;
pub(crate) const IN_TRANSIT: u64 = 2;
pub(crate) const QUEUED: u64 = 3;
const STATE_MASK: u64 = 3;
/// The generation: 30 bits above the state, bumped (mod 2^30) by every change.
const GEN_SHIFT: u32 = 2;
const GEN_MASK: u64 = (1 << 30) - 1;
/// The high 32 bits: where the block is. Held: the owner's slot. Free in a
/// FIFO pool, or queued: the position (mod 2^32) of its queue cell. Else 0.
const PLACE_SHIFT: u32 = 32;

/// An owner word with this bit set names a reclaimer that took the slot
/// over from a dead process (the bit is not part of the `ProcessId` word:
/// start times would need 2^41 clock ticks, centuries, to reach it).
const RECLAIMING: u64 = 1 << 63;

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

/// A futex word and the count of processes sleeping on it, for receivers
/// that wait on the channel queue. Plain std atomics even under loom: the
/// futex needs a real address, and the models do not block.
#[repr(C)]
#[derive(Default)]
pub(crate) struct WaitWords {
    /// Bumped by a sender that saw sleepers; sleepers wait on its value.
    pub(crate) seq: std::sync::atomic::AtomicU32,
    /// How many are about to sleep or sleeping; senders skip the syscall at 0.
    pub(crate) waiters: std::sync::atomic::AtomicU32,
}

#[repr(C)]
pub(crate) struct Control {
    /// [`ORDER_FIFO`] or [`ORDER_LIFO`]; written before the header is
    /// published, read once by `attach`.
    order: CachePadded<AtomicU32>,
    /// LIFO: tag (bits 40-63), pending mark (32-39: 0 none, 1 pushed, 2 + s
    /// popped by slot `s`) and link of the top block (0-31: index + 1, 0 =
    /// empty). See `free.rs`.
    pub(crate) stack: CachePadded<AtomicU64>,
    /// FIFO free queue: the position to take from next. A hint: it lags the
    /// truth by at most the takers that did not move it on yet.
    pub(crate) head: CachePadded<AtomicU64>,
    /// FIFO free queue: the position to fill next; a hint in the same way.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// The channel queue's head and tail hints (the same algorithm).
    pub(crate) sent_head: CachePadded<AtomicU64>,
    pub(crate) sent_tail: CachePadded<AtomicU64>,
    /// Receivers sleeping on the channel queue.
    pub(crate) wait: CachePadded<WaitWords>,
    /// `FLAG_*` bits, written before the header is published, read once on attach.
    flags: CachePadded<AtomicU32>,
}

/// One per block.
#[repr(C)]
pub(crate) struct Meta {
    /// LIFO: link to the next free block (index + 1, 0 = end); meaningful
    /// while free.
    pub(crate) next: AtomicU32,
    /// Bytes of the block in use, as set by the writer (for channels).
    pub(crate) used: AtomicU32,
    /// State (bits 0-1), generation (2-31) and place (32-63).
    pub(crate) word: AtomicU64,
}

/// The word that follows `word` in state `state` at `place` (the owner's
/// slot when held, the queue position when free in a FIFO pool or queued).
#[inline]
pub(crate) fn next_word(word: u64, state: u64, place: u32) -> u64 {
    let generation = ((word >> GEN_SHIFT) + 1) & GEN_MASK;
    (u64::from(place) << PLACE_SHIFT) | (generation << GEN_SHIFT) | state
}

#[inline]
pub(crate) fn state_of(word: u64) -> u64 {
    word & STATE_MASK
}

#[inline]
pub(crate) fn place_of(word: u64) -> u32 {
    (word >> PLACE_SHIFT) as u32
}

/// The state recorded in a block word.
pub(crate) fn block_state(word: u64) -> BlockState {
    match word & STATE_MASK {
        FREE => BlockState::Free,
        HELD => BlockState::Held,
        IN_TRANSIT => BlockState::InTransit,
        _ => BlockState::Queued,
    }
}

/// What a block is doing: the state in its record, as
/// [`PoolError::WrongState`] names it.
///
/// # Examples
///
/// ```
/// use shm_mempool::{BlockState, MemPool, PoolError};
/// let pool = MemPool::new_heap(1, 64)?;
/// let id = pool.get()?.into_id()?;
/// pool.put(id)?;
/// match pool.put(id) {
///     Err(PoolError::WrongState { expected, found, .. }) => {
///         assert_eq!((expected, found), (BlockState::InTransit, BlockState::Free));
///         assert_eq!(found.to_string(), "free");
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockState {
    /// In the free list.
    Free,
    /// Held by a process, through a [`Block`] (or by one that died holding
    /// it, until [`MemPool::reclaim_dead`]).
    Held,
    /// Handed on as an id ([`Block::into_id`]), owned by nobody until
    /// [`MemPool::from_id`] claims it or [`MemPool::put`] gives it back.
    InTransit,
    /// Sent through the pool's [`Channel`](crate::Channel), not received yet.
    Queued,
}

impl BlockState {
    /// The state's name in messages: `"free"`, `"held"`, `"in transit"`,
    /// `"queued"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_mempool::BlockState::InTransit.name(), "in transit");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            BlockState::Free => "free",
            BlockState::Held => "held",
            BlockState::InTransit => "in transit",
            BlockState::Queued => "queued",
        }
    }
}

impl std::fmt::Display for BlockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The queues' capacity for `blocks` blocks: a power of two, at least 2.
fn queue_cap(blocks: u64) -> u64 {
    blocks.next_power_of_two().max(2)
}

/// Where the cells and the blocks start, and the total size, for `blocks`
/// blocks of `block_size` bytes (a multiple of 64).
struct Offsets {
    cells: u64,
    sent: u64,
    data: u64,
    total: u64,
}

fn offsets(blocks: u64, block_size: u64) -> Option<Offsets> {
    let metas = blocks.checked_mul(std::mem::size_of::<Meta>() as u64)?;
    let cells = (META_OFFSET as u64)
        .checked_add(metas)?
        .checked_next_multiple_of(std::mem::align_of::<AtomicU64>() as u64)?;
    let cell_bytes = queue_cap(blocks).checked_mul(std::mem::size_of::<AtomicU64>() as u64)?;
    let sent = cells.checked_add(cell_bytes)?;
    let data = sent
        .checked_add(cell_bytes)?
        .checked_next_multiple_of(BLOCK_ALIGN as u64)?;
    let total = data.checked_add(blocks.checked_mul(block_size)?)?;
    Some(Offsets {
        cells,
        sent,
        data,
        total,
    })
}

/// [`MemPool::required_size`] without the panic: `None` when it overflows.
pub(crate) fn checked_size(blocks: usize, block_size: usize) -> Option<u64> {
    let size = (block_size.max(1) as u64).checked_next_multiple_of(BLOCK_ALIGN as u64)?;
    offsets(blocks as u64, size).map(|o| o.total)
}

/// The process-local cache of a handle's owner slot: a hash of the
/// `ProcessId` word it was claimed for (high 56 bits) and the slot + 1 (low
/// 8 bits), 0 when none. A `fork`ed child's `ProcessId` differs, so its
/// copy of the cache misses and the child claims a slot of its own.
fn slot_key(owner: u64) -> u64 {
    (owner ^ (owner >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) & !0xFF
}

/// What the loom models need to stand in for a second process: an owner
/// word of its own, which the liveness check calls dead, and a countdown
/// of shared-memory writes after which the handle "is killed" (panics with
/// [`LoomKilled`]).
#[cfg(loom)]
#[derive(Default)]
struct LoomHooks {
    /// The owner word to claim a slot with instead of this process's; 0 =
    /// this process's.
    fake_owner: std::sync::atomic::AtomicU64,
    /// Writes left before the kill; 0 = never.
    kill_after: std::sync::atomic::AtomicU32,
    /// Set when the countdown fired: the handle's drop (a destructor a
    /// killed process never runs) then writes nothing.
    killed: std::sync::atomic::AtomicBool,
}

/// The owner word of the loom models' "other process" (never alive).
#[cfg(loom)]
const LOOM_DEAD_OWNER: u64 = 0x00AB_CDEF_0000_0007;

/// The panic payload of a handle killed by the loom models' countdown.
#[cfg(loom)]
#[doc(hidden)]
#[derive(Debug)]
pub struct LoomKilled;

pub(crate) struct Inner<R> {
    region: R,
    control: *const Control,
    owners: *const AtomicU64,
    metas: *const Meta,
    cells: *const AtomicU64,
    sent: *const AtomicU64,
    pub(crate) data: *mut u8,
    pub(crate) blocks: u32,
    pub(crate) block_size: usize,
    /// The queues' capacity minus one (capacity: a power of two ≥ 2 and ≥
    /// `blocks`); positions are masked with it, so always in range.
    pub(crate) mask: u64,
    pub(crate) order: FreeOrder,
    /// Whether the channel queue's senders wake sleeping receivers.
    pub(crate) blocking: bool,
    /// This handle's owner slot in this process (see [`slot_key`]).
    slot_cache: std::sync::atomic::AtomicU64,
    #[cfg(loom)]
    hooks: LoomHooks,
}

// SAFETY: the pointers point into `region`, owned here; shared state is
// reached only through atomics, and block bytes only by the block's holder.
unsafe impl<R: Send> Send for Inner<R> {}
// SAFETY: as above.
unsafe impl<R: Sync> Sync for Inner<R> {}

impl<R> Inner<R> {
    fn owner_word(&self) -> u64 {
        #[cfg(loom)]
        {
            let fake = self.hooks.fake_owner.load(Ordering::Relaxed);
            if fake != 0 {
                return fake;
            }
        }
        ProcessId::current().to_word()
    }
}

impl<R> Drop for Inner<R> {
    /// Gives this process's owner slot back, unless a block is still
    /// recorded as held through it (a `Block` leaked with `mem::forget`):
    /// then the slot stays until the process is gone and `reclaim_dead`
    /// frees both. A `fork`ed child that never used the handle gives back
    /// nothing (the slot in its copy of the cache is the parent's).
    fn drop(&mut self) {
        #[cfg(loom)]
        if self.hooks.killed.load(Ordering::Relaxed) {
            return;
        }
        let cache = *self.slot_cache.get_mut();
        let me = self.owner_word();
        if cache == 0 || cache & !0xFF != slot_key(me) {
            return;
        }
        let slot = (cache & 0xFF) as u32 - 1;
        for i in 0..self.blocks as usize {
            // SAFETY: `i < blocks`, and `wire` checked that `blocks` records
            // fit; atomics only.
            let w = unsafe { &*self.metas.add(i) }.word.load(Ordering::Acquire);
            if state_of(w) == HELD && place_of(w) == slot {
                return;
            }
        }
        // SAFETY: `slot < OWNER_SLOTS` (it came from `claim_slot`), and
        // `wire` checked that the table fits; atomics only.
        let owner = unsafe { &*self.owners.add(slot as usize) };
        let _ = owner.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
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

impl MemPool {
    /// Bytes a pool of `blocks` blocks of `block_size` bytes needs (each
    /// block rounded up to a multiple of 64), header included. The same for
    /// both free orders, and for every region type.
    ///
    /// # Panics
    ///
    /// If that many bytes cannot be addressed.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = shm_mempool::MemPool::required_size(16, 100);
    /// assert!(n >= 16 * 128);
    /// ```
    pub fn required_size(blocks: usize, block_size: usize) -> usize {
        checked_size(blocks, block_size)
            .and_then(|n| usize::try_from(n).ok())
            .expect("pool too large")
    }

    /// Creates the POSIX segment `name` (exclusively, mode `0600`), just
    /// large enough for `blocks` blocks of `block_size` bytes, and lays out
    /// a pool in it with the default options. The pool owns the segment:
    /// the name is unlinked when the last handle drops (keep it with
    /// `pool.region().set_remove_on_drop(false)`). Other processes attach
    /// with [`open_posix`](MemPool::open_posix).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::MemPool;
    /// use shm_segment::Region;
    /// let name = format!("/shm-test-doc-pool-posix-{}", std::process::id());
    /// let pool = MemPool::create_posix(&name, 4, 256)?;
    /// let other = MemPool::open_posix(&name)?; // another process, usually
    /// let block = other.get()?;
    /// assert_eq!((pool.stats().held, block.len()), (1, 256));
    /// drop(block);
    /// drop((other, pool)); // the creator's drop unlinks the name
    /// assert!(MemPool::open_posix(&name).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_posix(name: &str, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_posix_with(name, blocks, block_size, PoolOptions::default())
    }

    /// [`create_posix`](MemPool::create_posix) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let name = format!("/shm-test-doc-pool-posix-with-{}", std::process::id());
    /// let pool = MemPool::create_posix_with(&name, 4, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(MemPool::open_posix(&name)?.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_posix_with(
        name: &str,
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::Posix(name.into()))?;
        Self::create_with(Segment::create_posix(name, size)?, blocks, block_size, opts)
    }

    /// Opens the POSIX segment `name` and attaches to the pool in it (see
    /// [`attach`](MemPool::attach)). Never unlinks it.
    ///
    /// # Examples
    ///
    /// See [`create_posix`](MemPool::create_posix).
    pub fn open_posix(name: &str) -> Result<Self, PoolError> {
        Self::attach(Segment::open_posix(name)?)
    }

    /// Creates a memfd just large enough for the pool and lays the pool out
    /// in it. Hand the fd to another process with
    /// [`send_fd`](shm_segment::send_fd) on `pool.region().memfd()`; or
    /// `fork` after creating it.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::create_memfd("doc-pool", 4, 64)?;
    /// assert!(pool.region().memfd().is_some());
    /// assert_eq!(pool.get()?.id(), shm_mempool::BlockId(0));
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_memfd(name: &str, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_memfd_with(name, blocks, block_size, PoolOptions::default())
    }

    /// [`create_memfd`](MemPool::create_memfd) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let pool = MemPool::create_memfd_with("doc", 2, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(pool.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_memfd_with(
        name: &str,
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::Memfd(name.into()))?;
        Self::create_with(Segment::create_memfd(name, size)?, blocks, block_size, opts)
    }

    /// Creates the System V segment `key` (exclusively, mode `0600`) just
    /// large enough for the pool and lays the pool out in it. The segment
    /// is marked for removal when the last handle drops (keep it with
    /// `pool.region().set_remove_on_drop(false)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::MemPool;
    /// use shm_segment::SysvKey;
    /// let key = SysvKey::random();
    /// let pool = MemPool::create_sysv(key, 4, 64)?;
    /// let other = MemPool::open_sysv(key)?;
    /// drop(other.get()?);
    /// assert_eq!(pool.stats().free, 4);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_sysv(key: SysvKey, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_sysv_with(key, blocks, block_size, PoolOptions::default())
    }

    /// [`create_sysv`](MemPool::create_sysv) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let key = shm_segment::SysvKey::random();
    /// let pool = MemPool::create_sysv_with(key, 2, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(MemPool::open_sysv(key)?.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_sysv_with(
        key: SysvKey,
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::SysvKey(key.0))?;
        Self::create_with(Segment::create_sysv(key, size)?, blocks, block_size, opts)
    }

    /// Opens the System V segment `key` and attaches to the pool in it.
    /// Never removes it.
    ///
    /// # Examples
    ///
    /// See [`create_sysv`](MemPool::create_sysv).
    pub fn open_sysv(key: SysvKey) -> Result<Self, PoolError> {
        Self::attach(Segment::open_sysv(key)?)
    }
}

/// [`MemPool::required_size`] as an error instead of a panic.
/// Checks the block count and size first (as
/// [`create_with`](MemPool::create_with) does), so that nothing is
/// allocated or created for a pool that cannot be.
pub(crate) fn sized(
    blocks: usize,
    block_size: usize,
    target: impl FnOnce() -> Target,
) -> Result<usize, PoolError> {
    let checked = check_counts(blocks, block_size).and_then(|_| {
        checked_size(blocks, block_size)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("{blocks} blocks of {block_size} bytes cannot be addressed"))
    });
    checked.map_err(|reason| PoolError::InvalidLayout {
        target: target(),
        reason,
    })
}

/// The block count as the layout stores it, and the block size rounded up
/// to [`BLOCK_ALIGN`]; or why a pool cannot have them.
fn check_counts(blocks: usize, block_size: usize) -> Result<(u32, u64), String> {
    let blocks = match u32::try_from(blocks) {
        Ok(n) if (1..=MAX_BLOCKS).contains(&n) => n,
        _ => {
            return Err(format!(
                "block count {blocks} must be between 1 and {MAX_BLOCKS}"
            ))
        }
    };
    match (block_size as u64).checked_next_multiple_of(BLOCK_ALIGN as u64) {
        Some(size) if block_size != 0 && size <= u64::from(u32::MAX) => Ok((blocks, size)),
        _ => Err(format!(
            "block size {block_size} must be between 1 and 4 GiB"
        )),
    }
}

impl<R> MemPool<R> {
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
    pub fn new_heap(blocks: usize, block_size: usize) -> Result<Self, PoolError> {
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
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::Heap)?;
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
    /// let region = shm_segment::HeapRegion::new(MemPool::required_size(2, 64));
    /// let pool = MemPool::create(region, 2, 64)?;
    /// assert_eq!(pool.blocks(), 2);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create(region: R, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_with(region, blocks, block_size, PoolOptions::default())
    }

    /// [`create`](MemPool::create) with options: the free order.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let region = shm_segment::HeapRegion::new(MemPool::required_size(2, 64));
    /// let pool = MemPool::create_with(&region, 2, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(MemPool::attach(&region)?.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_with(
        region: R,
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let invalid = |reason: String| PoolError::InvalidLayout {
            target: region.target(),
            reason,
        };
        let (blocks, size) = check_counts(blocks, block_size).map_err(invalid)?;
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
        Header::check_vacant(&region)?;
        region.fill(HEADER_SIZE, needed as usize - HEADER_SIZE, 0)?;
        let pool = Self::wire(
            region,
            blocks,
            size as usize,
            Some((opts.order, opts.blocking)),
        )?;
        let cap = pool.inner.mask + 1;
        let (order, fifo_tail, lifo_top) = match opts.order {
            // FIFO: blocks 0..n in cells 0..n, head 0, tail n.
            FreeOrder::Fifo => (ORDER_FIFO, u64::from(blocks), 0),
            // LIFO: block 0 on top, each linked to the next.
            FreeOrder::Lifo => (ORDER_LIFO, 0, 1),
        };
        // SAFETY: `wire` checked that the control block, the owner table,
        // the `blocks` records and the `cap` cells of both queues are in
        // bounds and aligned; nobody else uses them before the header is
        // published below. Writing whole values constructs the atomics in
        // place (what loom's need; for std's it equals storing the values).
        unsafe {
            pool.inner.control.cast_mut().write(Control {
                order: CachePadded::new(AtomicU32::new(order)),
                stack: CachePadded::new(AtomicU64::new(lifo_top)),
                head: CachePadded::new(AtomicU64::new(0)),
                tail: CachePadded::new(AtomicU64::new(fifo_tail)),
                sent_head: CachePadded::new(AtomicU64::new(0)),
                sent_tail: CachePadded::new(AtomicU64::new(0)),
                wait: CachePadded::new(WaitWords::default()),
                flags: CachePadded::new(AtomicU32::new(if opts.blocking {
                    FLAG_BLOCKING
                } else {
                    0
                })),
            });
            for s in 0..OWNER_SLOTS {
                pool.inner.owners.cast_mut().add(s).write(AtomicU64::new(0));
            }
            for i in 0..blocks {
                let (next, word) = match opts.order {
                    // Free, at position i of the queue.
                    FreeOrder::Fifo => (0, u64::from(i) << PLACE_SHIFT),
                    FreeOrder::Lifo if i + 1 < blocks => (i + 2, FREE),
                    FreeOrder::Lifo => (0, FREE),
                };
                pool.inner.metas.cast_mut().add(i as usize).write(Meta {
                    next: AtomicU32::new(next),
                    used: AtomicU32::new(0),
                    word: AtomicU64::new(word),
                });
            }
            for p in 0..cap {
                let cell = match opts.order {
                    FreeOrder::Fifo if p < u64::from(blocks) => cell_word(p as u32 + 1, p as u32),
                    _ => cell_word(p as u32, 0),
                };
                pool.inner
                    .cells
                    .cast_mut()
                    .add(p as usize)
                    .write(AtomicU64::new(cell));
                pool.inner
                    .sent
                    .cast_mut()
                    .add(p as usize)
                    .write(AtomicU64::new(cell_word(p as u32, 0)));
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
    /// let region = shm_segment::HeapRegion::new(MemPool::required_size(2, 64));
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

    /// For the loom models only: this handle (call it before its first
    /// operation) acts as another process, one that the liveness check
    /// calls dead (loom cannot start processes). Combine with
    /// [`loom_kill_after`](MemPool::loom_kill_after).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_as_other_process(&self) {
        self.inner
            .hooks
            .fake_owner
            .store(LOOM_DEAD_OWNER, Ordering::Relaxed);
    }

    /// Checks bounds and alignment once; later indexes are checked against
    /// `blocks`, slots against [`OWNER_SLOTS`], and queue positions masked.
    /// `opts`: the order and blocking flag being laid out, or `None` to read
    /// (and check) the pool's.
    fn wire(
        region: R,
        blocks: u32,
        block_size: usize,
        opts: Option<(FreeOrder, bool)>,
    ) -> Result<Self, PoolError> {
        let too_big = || PoolError::InvalidLayout {
            target: region.target(),
            reason: format!("{blocks} blocks of {block_size} bytes cannot be addressed"),
        };
        let offs = offsets(u64::from(blocks), block_size as u64).ok_or_else(too_big)?;
        let cap = queue_cap(u64::from(blocks));
        let cap_usize = usize::try_from(cap).map_err(|_| too_big())?;
        let control = region.typed_ptr::<Control>("attach pool", CONTROL_OFFSET, 1)?;
        let owners = region.typed_ptr::<AtomicU64>("attach pool", OWNERS_OFFSET, OWNER_SLOTS)?;
        let metas = region.typed_ptr::<Meta>("attach pool", META_OFFSET, blocks as usize)?;
        let cells = region.typed_ptr::<AtomicU64>(
            "attach pool",
            usize::try_from(offs.cells).map_err(|_| too_big())?,
            cap_usize,
        )?;
        let sent = region.typed_ptr::<AtomicU64>(
            "attach pool",
            usize::try_from(offs.sent).map_err(|_| too_big())?,
            cap_usize,
        )?;
        let data_off = usize::try_from(offs.data).map_err(|_| too_big())?;
        let data_len = (blocks as usize)
            .checked_mul(block_size)
            .ok_or_else(too_big)?;
        region.check_range("attach pool", data_off, data_len)?;
        // SAFETY: in range (checked just above).
        let data = unsafe { region.as_ptr().add(data_off) };
        let (order, blocking) = match opts {
            Some(opts) => opts,
            None => {
                // SAFETY: in bounds and aligned (checked above); atomic loads.
                let (order, flags) = unsafe {
                    (
                        (*control).order.load(Ordering::Acquire),
                        (*control).flags.load(Ordering::Acquire),
                    )
                };
                let order = match order {
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
                };
                (order, flags & FLAG_BLOCKING != 0)
            }
        };
        Ok(MemPool {
            inner: Arc::new(Inner {
                region,
                control,
                owners,
                metas,
                cells,
                sent,
                data,
                blocks,
                block_size,
                mask: cap - 1,
                order,
                blocking,
                slot_cache: std::sync::atomic::AtomicU64::new(0),
                #[cfg(loom)]
                hooks: LoomHooks::default(),
            }),
        })
    }
}

/// Reads a pool's header and checks it against the region: kind, version,
/// alignment, block count, block size and total size.
pub(crate) fn validate<R: Region>(region: &R) -> Result<HeaderInfo, PoolError> {
    let expect = Expect::sized_by_header(Kind::MEMPOOL, LAYOUT_VERSION, BLOCK_ALIGN as u32)
        .max_capacity(u64::from(MAX_BLOCKS));
    validate_header(region, &expect, |info| {
        offsets(info.capacity, u64::from(info.elem_size)).map(|o| o.total)
    })
}

/// [`Header::validate`] for a pool's or a channel's header (block size from
/// the header, a multiple of [`BLOCK_ALIGN`]).
///
/// A block size within 64 of `u32::MAX` is refused here first:
/// `Header::validate` rounds it up to name the size it expected, which
/// overflows (a panic in debug builds) for such sizes. Remove this guard
/// once shm-segment's `validate` rounds with a checked add.
pub(crate) fn validate_header<R: Region>(
    region: &R,
    expect: &Expect,
    layout: impl FnOnce(&HeaderInfo) -> Option<u64>,
) -> Result<HeaderInfo, PoolError> {
    let info = Header::read(region)?;
    let limit = u32::MAX - (BLOCK_ALIGN as u32 - 1);
    if info.kind == expect.kind && info.version == expect.version && info.elem_size > limit {
        let source = shm_segment::HeaderError::ElemSize {
            expected: limit & !(BLOCK_ALIGN as u32 - 1),
            found: info.elem_size,
        };
        return Err(shm_segment::Error::header(region.target(), source).into());
    }
    Ok(Header::validate(region, expect, layout)?)
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
                blocks: self.inner.blocks as usize,
            })
        }
    }

    pub(crate) fn wrong_state(
        &self,
        op: &'static str,
        id: BlockId,
        expected: BlockState,
        word: u64,
    ) -> PoolError {
        PoolError::WrongState {
            op,
            target: self.target(),
            id,
            expected,
            found: block_state(word),
        }
    }

    /// Before each write to shared memory: where the loom models kill a
    /// handle. Nothing outside them.
    #[inline(always)]
    pub(crate) fn crash_point(&self) {
        #[cfg(loom)]
        {
            let left = &self.inner.hooks.kill_after;
            let n = left.load(Ordering::Relaxed);
            if n != 0 {
                left.store(n - 1, Ordering::Relaxed);
                if n == 1 {
                    self.inner.hooks.killed.store(true, Ordering::Relaxed);
                    std::panic::panic_any(LoomKilled);
                }
            }
        }
    }

    /// For the loom models only: this handle "is killed" (panics with
    /// [`LoomKilled`]) just before its `writes`-th write to shared memory
    /// from now on; 0 never.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_kill_after(&self, writes: u32) {
        self.inner.hooks.kill_after.store(writes, Ordering::Relaxed);
    }

    /// Whether the process named by owner word `word` still runs: the
    /// kernel's answer for the full `ProcessId` word (a syscall or two, so
    /// only `reclaim_dead` and `stats` ask).
    fn owner_alive(&self, word: u64) -> bool {
        let word = word & !RECLAIMING;
        #[cfg(loom)]
        if word == LOOM_DEAD_OWNER {
            return false;
        }
        ProcessId::from_word(word).is_alive()
    }

    /// This handle's owner slot, claimed on first use in each process. The
    /// fast path is one load of `ProcessId::current()` and one of the cache.
    #[inline]
    pub(crate) fn slot(&self) -> Result<u32, PoolError> {
        let me = self.inner.owner_word();
        let cache = self.inner.slot_cache.load(Ordering::Acquire);
        if cache & !0xFF == slot_key(me) && cache & 0xFF != 0 {
            return Ok((cache & 0xFF) as u32 - 1);
        }
        self.claim_slot(me)
    }

    /// Claims a free slot (CAS 0 → `me`) and caches it. A full table is
    /// retried once after [`reclaim_dead`](MemPool::reclaim_dead) has freed
    /// the slots of processes that are gone.
    #[cold]
    fn claim_slot(&self, me: u64) -> Result<u32, PoolError> {
        let cache = &self.inner.slot_cache;
        let mut seen = cache.load(Ordering::Acquire);
        for attempt in 0..2 {
            for s in 0..SLOTS {
                let owner = self.owner(s);
                if owner.load(Ordering::Relaxed) != 0
                    || owner
                        .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                        .is_err()
                {
                    continue;
                }
                // Publish it; a thread of this process that claimed one
                // meanwhile wins, and this slot goes back.
                let mine = slot_key(me) | u64::from(s + 1);
                loop {
                    if seen & !0xFF == slot_key(me) && seen & 0xFF != 0 {
                        let _ = owner.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
                        return Ok((seen & 0xFF) as u32 - 1);
                    }
                    match cache.compare_exchange(seen, mine, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Ok(s),
                        Err(now) => seen = now,
                    }
                }
            }
            if attempt == 0 {
                self.reclaim_dead()?;
            }
        }
        Err(PoolError::TooManyProcesses {
            target: self.target(),
            slots: OWNER_SLOTS,
        })
    }

    /// Takes a free block, or fails with [`PoolError::Exhausted`]. The block
    /// is recorded as held by this process; dropping it gives it back.
    ///
    /// # Errors
    ///
    /// [`PoolError::Exhausted`] when no block is free;
    /// [`PoolError::TooManyProcesses`] on the first call in a process when
    /// every slot of the owner table belongs to a live process;
    /// [`PoolError::Corrupted`] for shared state no correct peer writes.
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
        let slot = self.slot()?;
        let Some((i, word)) = self.pop_free(slot)? else {
            return Err(PoolError::Exhausted {
                target: self.target(),
                blocks: self.inner.blocks as usize,
            });
        };
        // A fresh block has `used()` 0. Most were given back with 0 (plain
        // pool use never sets it): skip the store then.
        let used = &self.meta(i).used;
        if used.load(Ordering::Relaxed) != 0 {
            used.store(0, Ordering::Relaxed);
        }
        Ok(Block::new(self, BlockId(i), word, epoch))
    }

    /// Moves block `id` from the exact word `from` to `to` (one CAS); the
    /// error names the state found.
    pub(crate) fn exchange(
        &self,
        op: &'static str,
        id: BlockId,
        expected: BlockState,
        from: u64,
        to: u64,
    ) -> Result<(), PoolError> {
        let i = self.index(op, id)?;
        self.crash_point();
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
        let i = self.index(op, id)?;
        match self.push_free(i, held)? {
            Ok(()) => Ok(()),
            Err(now) => Err(self.wrong_state(op, id, BlockState::Held, now)),
        }
    }

    /// Moves an in-transit block to held by `slot` with one CAS. Returns
    /// the word written.
    fn claim(&self, op: &'static str, id: BlockId, slot: u32) -> Result<u64, PoolError> {
        let i = self.index(op, id)?;
        let word = &self.meta(i).word;
        let mut current = word.load(Ordering::Acquire);
        loop {
            if state_of(current) != IN_TRANSIT {
                return Err(self.wrong_state(op, id, BlockState::InTransit, current));
            }
            let to = next_word(current, HELD, slot);
            self.crash_point();
            // SYNC POINT: AcqRel: Acquire pairs with the Release of the CAS
            // that put the block in transit (`Block::into_id`): the bytes
            // written before it are visible to the claimer.
            match word.compare_exchange(current, to, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(to),
                Err(now) => current = now,
            }
        }
    }

    /// Gives back a block in transit, by id: one turned into an id with
    /// [`Block::into_id`] and not claimed since. Only one `put` (or
    /// [`from_id`](MemPool::from_id)) of an id succeeds; a block that is free,
    /// held by anyone (this process included) or queued in a channel is
    /// refused with [`PoolError::WrongState`] and left as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{MemPool, PoolError};
    /// let pool = MemPool::new_heap(2, 64)?;
    /// let id = pool.get()?.into_id()?;
    /// pool.put(id)?;
    /// assert!(matches!(pool.put(id), Err(PoolError::WrongState { found: shm_mempool::BlockState::Free, .. })));
    /// let held = pool.get()?;
    /// assert!(pool.put(held.id()).is_err()); // a guard holds it: not ours to give back
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn put(&self, id: BlockId) -> Result<(), PoolError> {
        let i = self.index("put", id)?;
        if self.inner.order == FreeOrder::Lifo {
            // The stack links a block before it marks it free: claim it
            // first, so that of two racing puts only one links it.
            let held = self.claim("put", id, self.slot()?)?;
            return self.release("put", id, held);
        }
        let mut current = self.meta(i).word.load(Ordering::Acquire);
        loop {
            if state_of(current) != IN_TRANSIT {
                return Err(self.wrong_state("put", id, BlockState::InTransit, current));
            }
            match self.push_free(i, current)? {
                Ok(()) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }

    /// Claims a block in transit, by id: one another process (or this one)
    /// handed on with [`Block::into_id`]. The block is then held by this
    /// process and given back when the guard drops. Exactly one claim of an
    /// id succeeds: a second `from_id` (the block is held), a `from_id` of a
    /// free block, of one a guard holds or of one queued in a channel is
    /// refused with [`PoolError::WrongState`] and changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{BlockId, MemPool, PoolError};
    /// let pool = MemPool::new_heap(2, 64)?;
    /// let id = pool.get()?.into_id()?;
    /// let block = pool.from_id(id)?;
    /// assert_eq!(block.id(), id);
    /// assert!(matches!(pool.from_id(id), Err(PoolError::WrongState { found: shm_mempool::BlockState::Held, .. })));
    /// assert!(pool.from_id(BlockId(1)).is_err()); // free, not in transit
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn from_id(&self, id: BlockId) -> Result<Block<'_, R>, PoolError> {
        let epoch = ForkEpoch::now();
        let slot = self.slot()?;
        let word = self.claim("from_id", id, slot)?;
        Ok(Block::new(self, id, word, epoch))
    }

    /// Gives back every block held by a process that no longer exists, and
    /// returns their ids; finishes every give-back and send that a killed
    /// process left half done. Safe to run at any time, from any process,
    /// while others keep working: it never touches what a live process
    /// holds, and every step it takes is one a live process could take too.
    ///
    /// In detail: it takes over the owner slot of each dead process (a CAS
    /// on the slot's word, so two reclaimers never share one), gives back
    /// the blocks the slot holds, and frees the slot. A block a killed
    /// process was giving back or sending (already marked free or queued,
    /// not yet in its queue cell) is put in its cell. A block it was taking
    /// is either still listed or already marked held by it; a LIFO head it
    /// left marked is settled first. Blocks in transit (ids handed on with
    /// [`Block::into_id`]) are owned by nobody and left alone: whoever holds
    /// the id may still claim it ([`recover_orphans`](MemPool::recover_orphans)
    /// frees those nobody will).
    ///
    /// Liveness is the kernel's answer for the owner's full `ProcessId`
    /// (pid and start time), so a reused pid is not mistaken for the owner.
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
        let me = self.inner.owner_word();
        let mine = me | RECLAIMING;
        if self.inner.order == FreeOrder::Lifo {
            self.lifo_settle_head()?;
        }
        let mut alive: HashMap<u64, bool> = HashMap::new();
        let mut taken = vec![false; OWNER_SLOTS];
        let mut any = false;
        for s in 0..SLOTS {
            let owner = self.owner(s);
            let w = owner.load(Ordering::Acquire);
            // `me`: this process's own slot (of this handle or another);
            // `mine`: one another thread of this process is reclaiming (or
            // one an error interrupted: it is freed once this process is
            // gone).
            if w == 0
                || w == me
                || w == mine
                || *alive
                    .entry(w & !RECLAIMING)
                    .or_insert_with(|| self.owner_alive(w))
            {
                continue;
            }
            self.crash_point();
            if owner
                .compare_exchange(w, mine, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                taken[s as usize] = true;
                any = true;
            }
        }
        let mut reclaimed = Vec::new();
        if any {
            for i in 0..self.inner.blocks {
                let w = self.meta(i).word.load(Ordering::Acquire);
                let s = place_of(w);
                if state_of(w) != HELD || s >= SLOTS || !taken[s as usize] {
                    continue;
                }
                // One CAS from exactly this word: if it changed meanwhile,
                // the block was not the dead process's to give back.
                if self.push_free(i, w)?.is_ok() {
                    reclaimed.push(BlockId(i));
                }
            }
        }
        self.finish_pending()?;
        for s in 0..SLOTS {
            if taken[s as usize] {
                self.crash_point();
                let _ =
                    self.owner(s)
                        .compare_exchange(mine, 0, Ordering::AcqRel, Ordering::Relaxed);
            }
        }
        Ok(reclaimed)
    }

    /// Puts every block marked free (FIFO) or queued, but not yet in its
    /// queue cell, into its cell: what the process giving it back or
    /// sending it does next, and what anyone may do for it.
    fn finish_pending(&self) -> Result<(), PoolError> {
        for i in 0..self.inner.blocks {
            let w = self.meta(i).word.load(Ordering::Acquire);
            let q = match state_of(w) {
                FREE if self.inner.order == FreeOrder::Fifo => Q::Free,
                QUEUED => Q::Sent,
                _ => continue,
            };
            let t = place_of(w);
            if self.q_cell(q, u64::from(t)).load(Ordering::Acquire)
                != cell_word(t.wrapping_add(1), i)
            {
                self.q_fill(q, i, w)?;
            }
        }
        Ok(())
    }

    /// For the loom models only: what [`reclaim_dead`](MemPool::reclaim_dead) does to a block whose owner died,
    /// applied to a live owner's block (loom cannot start processes), so a
    /// model can make a stale handle.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_free_as_if_owner_died(&self, id: BlockId) {
        let w = self.meta(id.0).word.load(Ordering::Acquire);
        assert_eq!(state_of(w), HELD, "only a held block");
        self.push_free(id.0, w)
            .unwrap()
            .expect("nobody else changes it in the models");
    }

    /// Counts blocks by state and held blocks by owner, from the per-block
    /// records and the owner table (a snapshot when others are active), and
    /// asks the kernel which owners are gone.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(4, 64)?;
    /// let _a = pool.get()?;
    /// let id = pool.get()?.into_id()?;
    /// let stats = pool.stats();
    /// assert_eq!((stats.free, stats.held, stats.in_transit, stats.dead), (2, 1, 1, 0));
    /// assert_eq!(stats.by_owner, vec![(shm_segment::ProcessId::current().pid, 1)]);
    /// # pool.put(id)?;
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        let counted = count(
            self.inner.blocks,
            |i| Ok(self.meta(i).word.load(Ordering::Acquire)),
            |s| Ok((s < SLOTS).then(|| self.owner(s).load(Ordering::Acquire))),
            |w| self.owner_alive(w),
        );
        counted
            .expect("loads of checked records do not fail")
            .with_sizes(self.inner.blocks, self.inner.block_size)
    }

    /// Walks the free list and the channel queue (at most a lap each) and
    /// checks them against the block records: every listed block is free
    /// (queued) and listed once, the cells and hints agree, and every block
    /// marked free is on the free list and every block marked queued in the
    /// queue, so none is lost. Returns how many blocks are on the free
    /// list. Meaningful while no other process changes the pool; after a
    /// process was killed, call [`reclaim_dead`](MemPool::reclaim_dead)
    /// first (until then a block it was giving back may be on no list).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(4, 64)?;
    /// let _a = pool.get()?;
    /// assert_eq!(pool.check()?, 3);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn check(&self) -> Result<usize, PoolError> {
        let walk = self.walk_free()?;
        let sent = self.q_walk(Q::Sent)?;
        let mut seen = vec![false; self.inner.blocks as usize];
        for (list, state, what) in [
            (&walk.listed, FREE, "the free list"),
            (&sent, QUEUED, "the channel queue"),
        ] {
            for &i in list {
                if std::mem::replace(&mut seen[i as usize], true) {
                    return Err(self.corrupted(format!("block {i} is listed twice ({what})")));
                }
                let w = self.meta(i).word.load(Ordering::Acquire);
                if state_of(w) != state {
                    return Err(
                        self.corrupted(format!("block {i} is in {what} but is {}", block_state(w)))
                    );
                }
            }
        }
        for i in 0..self.inner.blocks {
            let w = self.meta(i).word.load(Ordering::Acquire);
            if (state_of(w) == FREE || state_of(w) == QUEUED) && !seen[i as usize] {
                return Err(self.corrupted(format!(
                    "block {i} is {} but in no list (a process killed while giving it back \
                     or sending it left it so: reclaim_dead finishes that)",
                    block_state(w)
                )));
            }
        }
        Ok(walk.listed.len())
    }

    /// Returns to the free list every block in transit that is not in
    /// `in_transit`: pass every id that is still meant to be claimed (those
    /// that live processes hold as ids). A block handed on with
    /// [`Block::into_id`] is a capability that only its holder knows, so
    /// when the holder dies with it, nothing but this call gives it back.
    /// Only while no other process uses ids of the pool. Returns the ids.
    /// Blocks queued in a channel are not in transit: they are never
    /// touched.
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
        self.walk_free()?;
        let mut keep = vec![false; self.inner.blocks as usize];
        for id in in_transit {
            keep[self.index("recover_orphans", *id)? as usize] = true;
        }
        self.finish_pending()?;
        let mut recovered = Vec::new();
        for i in 0..self.inner.blocks {
            let w = self.meta(i).word.load(Ordering::Acquire);
            if state_of(w) != IN_TRANSIT || keep[i as usize] {
                continue;
            }
            let freed = match self.inner.order {
                FreeOrder::Fifo => self.push_free(i, w)?.is_ok(),
                FreeOrder::Lifo => match self.claim("recover_orphans", BlockId(i), self.slot()?) {
                    Ok(held) => self.push_free(i, held)?.is_ok(),
                    Err(_) => false,
                },
            };
            if freed {
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
    pub blocks: usize,
    /// Bytes per block.
    pub block_size: usize,
    /// Free blocks.
    pub free: usize,
    /// Blocks held by a process (through a [`Block`]).
    pub held: usize,
    /// Blocks in transit, owned by nobody: handed on as an id
    /// ([`Block::into_id`]) and not claimed yet.
    pub in_transit: usize,
    /// Blocks queued in the pool's channel queue (sent, not yet received).
    pub queued: usize,
    /// Held blocks whose owner is gone: what
    /// [`reclaim_dead`](MemPool::reclaim_dead) would give back now.
    pub dead: usize,
    /// Blocks whose record is garbage (corruption): held by an owner slot
    /// out of range or by a slot nobody owns.
    pub unknown: usize,
    /// Held blocks per owner pid, sorted by pid.
    pub by_owner: Vec<(u32, usize)>,
}

impl PoolStats {
    fn with_sizes(mut self, blocks: u32, block_size: usize) -> Self {
        self.blocks = blocks as usize;
        self.block_size = block_size;
        self
    }
}

/// Counts the record words: `word(i)` reads block `i`'s word, `owner(s)`
/// slot `s`'s owner word (`None` for a slot out of range), `alive(w)` asks
/// whether owner word `w` names a live process.
///
/// Each owner is read after the word that names it: a slot is claimed
/// before its owner takes a block through it, so a held word names a slot
/// that was claimed when the word was read. A slot is given back only after
/// every block held through it; so an owner read as 0 means the word has
/// changed since: it is read again.
fn count(
    blocks: u32,
    mut word: impl FnMut(u32) -> Result<u64, PoolError>,
    mut owner: impl FnMut(u32) -> Result<Option<u64>, PoolError>,
    mut alive: impl FnMut(u64) -> bool,
) -> Result<PoolStats, PoolError> {
    let mut stats = PoolStats::default();
    let mut by_pid: HashMap<u32, usize> = HashMap::new();
    let mut liveness: HashMap<u64, bool> = HashMap::new();
    for i in 0..blocks {
        let mut w = word(i)?;
        let mut tries = 0;
        let held_by = loop {
            if state_of(w) != HELD {
                break 0;
            }
            match owner(place_of(w))? {
                Some(0) if tries < 8 => {
                    tries += 1;
                    let again = word(i)?;
                    if again == w {
                        break 0;
                    }
                    w = again;
                }
                Some(o) => break o,
                None => break 0,
            }
        };
        match state_of(w) {
            FREE => stats.free += 1,
            HELD if held_by == 0 => stats.unknown += 1,
            HELD => {
                stats.held += 1;
                let id = ProcessId::from_word(held_by & !RECLAIMING);
                *by_pid.entry(id.pid).or_default() += 1;
                if !*liveness.entry(held_by).or_insert_with(|| alive(held_by)) {
                    stats.dead += 1;
                }
            }
            IN_TRANSIT => stats.in_transit += 1,
            _ => stats.queued += 1,
        }
    }
    stats.by_owner = by_pid.into_iter().collect();
    stats.by_owner.sort_unstable();
    Ok(stats)
}

/// Counts a pool's blocks by state without attaching, with atomic loads
/// only, so a read-only mapping will do (what `shm inspect` uses). The
/// header is validated as [`MemPool::attach`] does.
///
/// # Examples
///
/// ```
/// use shm_mempool::{pool::inspect, MemPool};
/// let region = shm_segment::HeapRegion::new(MemPool::required_size(4, 64));
/// let pool = MemPool::create(&region, 4, 64)?;
/// let _held = pool.get()?;
/// let stats = inspect(&region)?;
/// assert_eq!((stats.free, stats.held), (3, 1));
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
pub fn inspect<R: Region>(region: &R) -> Result<PoolStats, PoolError> {
    let info = validate(region)?;
    let blocks = info.capacity as u32;
    let word_at = |i: u32| {
        let offset = META_OFFSET
            + i as usize * std::mem::size_of::<Meta>()
            + std::mem::offset_of!(Meta, word);
        // Bounds-checked by the load: a lying header gives an error, not a fault.
        Ok(region.load_u64(offset, Ordering::Acquire)?)
    };
    let owner_at = |s: u32| -> Result<Option<u64>, PoolError> {
        if s >= SLOTS {
            return Ok(None);
        }
        let at = OWNERS_OFFSET + s as usize * 8;
        Ok(Some(region.load_u64(at, Ordering::Acquire)?))
    };
    let alive = |w: u64| ProcessId::from_word(w & !RECLAIMING).is_alive();
    Ok(count(blocks, word_at, owner_at, alive)?.with_sizes(blocks, info.elem_size as usize))
}

/// The channel queue's head and tail hints and blocking flag, read with
/// atomic loads only (for [`inspect_channel`](crate::inspect_channel)).
pub(crate) fn inspect_queue<R: Region>(region: &R) -> Result<(u64, u64, bool), PoolError> {
    validate(region)?;
    let at = |field: usize| CONTROL_OFFSET + field;
    let head = region.load_u64(
        at(std::mem::offset_of!(Control, sent_head)),
        Ordering::Acquire,
    )?;
    let tail = region.load_u64(
        at(std::mem::offset_of!(Control, sent_tail)),
        Ordering::Acquire,
    )?;
    let flags = region.load_u32(at(std::mem::offset_of!(Control, flags)), Ordering::Acquire)?;
    Ok((head, tail, flags & FLAG_BLOCKING != 0))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_word_names_its_state_place_and_generation() {
        let w = next_word(FREE, HELD, 5);
        assert_eq!((state_of(w), place_of(w)), (HELD, 5));
        let q = next_word(w, QUEUED, 0xFFFF_FFFF);
        assert_eq!(
            (state_of(q), place_of(q), block_state(q)),
            (QUEUED, u32::MAX, BlockState::Queued)
        );
        assert_ne!(next_word(w, HELD, 5), w, "a new generation");
    }

    #[test]
    fn every_change_bumps_the_generation_and_it_wraps() {
        let mut w = FREE;
        let mut seen = std::collections::HashSet::new();
        for k in 0..4096u64 {
            assert!(seen.insert(w), "word {w:#x} again after {k} changes");
            w = next_word(w, FREE, 0);
        }
        let last = (GEN_MASK << GEN_SHIFT) | FREE;
        assert_eq!(
            next_word(last, FREE, 0),
            FREE,
            "the generation wraps after 2^30 changes"
        );
    }

    #[test]
    fn a_process_claims_one_slot_and_gives_it_back_on_drop() {
        let region = HeapRegion::new(MemPool::required_size(4, 64));
        let pool = MemPool::create(&region, 4, 64).unwrap();
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        let me = ProcessId::current().to_word();
        let claimed: Vec<u32> = (0..SLOTS)
            .filter(|&s| pool.owner(s).load(Ordering::Relaxed) == me)
            .collect();
        assert_eq!(claimed, [0], "one slot per handle and process");
        // A second attach in the same process is another handle: its own slot.
        let other = MemPool::attach(&region).unwrap();
        let c = other.get().unwrap();
        assert_eq!(other.slot().unwrap(), 1);
        drop((a, b, c));
        drop(other);
        assert_eq!(
            pool.owner(1).load(Ordering::Relaxed),
            0,
            "given back on drop"
        );
        // A leaked block keeps its slot claimed.
        let leaked = MemPool::attach(&region).unwrap();
        std::mem::forget(leaked.get().unwrap());
        let s = leaked.slot().unwrap();
        drop(leaked);
        assert_eq!(pool.owner(s).load(Ordering::Relaxed), me);
    }

    #[test]
    fn a_full_owner_table_is_a_typed_error() {
        let region = HeapRegion::new(MemPool::required_size(2, 64));
        let pool = MemPool::create(&region, 2, 64).unwrap();
        // Every slot taken by a live process (this one, under other handles).
        let me = ProcessId::current().to_word();
        for s in 0..SLOTS {
            pool.owner(s).store(me, Ordering::Relaxed);
        }
        match pool.get() {
            Err(PoolError::TooManyProcesses { slots, .. }) => assert_eq!(slots, OWNER_SLOTS),
            other => panic!("get with a full owner table: {other:?}"),
        }
        let msg = pool.get().unwrap_err().to_string();
        assert!(msg.contains("all 128 owner slots"), "{msg}");
        // A slot of a dead process is taken over when the table is full.
        let mut dead = ProcessId::current();
        dead.start_time += 1;
        pool.owner(7).store(dead.to_word(), Ordering::Relaxed);
        let block = pool.get().unwrap();
        assert_eq!(pool.slot().unwrap(), 7);
        drop(block);
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

    /// Threads that take, give back, send and receive on a channel of
    /// either order lose nothing. (A LIFO give-back that read a head already
    /// moved on once called the list corrupted, and the dropped block stayed
    /// held by nobody.)
    #[test]
    fn threads_send_and_receive_through_both_orders_without_loss() {
        use crate::{Channel, ChannelOptions, RecvError};
        for order in [FreeOrder::Lifo, FreeOrder::Fifo] {
            let region = HeapRegion::new(Channel::required_size(8, 64));
            let ch =
                Channel::create_with(&region, 8, 64, ChannelOptions::new().order(order)).unwrap();
            std::thread::scope(|s| {
                for t in 0..3u64 {
                    let ch = &ch;
                    s.spawn(move || {
                        let mut x = t + 1;
                        let mut held = Vec::new();
                        for _ in 0..50_000 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            match x % 4 {
                                0 if held.len() < 2 => held.extend(ch.get().ok()),
                                1 if !held.is_empty() => drop(held.pop()),
                                2 => {
                                    if let Ok(b) = ch.get() {
                                        ch.send(b).unwrap();
                                    }
                                }
                                _ => match ch.recv() {
                                    Ok(b) => drop(b),
                                    Err(RecvError::Empty) => {}
                                    Err(e) => panic!("{e}"),
                                },
                            }
                        }
                    });
                }
            });
            while let Ok(b) = ch.recv() {
                drop(b);
            }
            let s = ch.pool().stats();
            assert_eq!((s.free, s.held, s.queued), (8, 0, 0), "{order:?}: {s:?}");
            assert_eq!(ch.pool().check().unwrap(), 8);
        }
    }
}
