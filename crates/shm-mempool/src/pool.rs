//! The block pool.
//!
//! **Layout** (after the 64-byte header): the free-list head on its own
//! cache lines at offset 128, then one 16-byte record per block, then the
//! blocks, each a multiple of 64 bytes and 64-byte aligned.
//!
//! **Free list: a Treiber stack with a tagged head.** The head word packs a
//! 32-bit tag (bumped by every change) with the top block's link, so a pop
//! whose view went stale (the block was taken and given back meanwhile, the
//! ABA case) fails its compare-and-swap. Every change is one CAS, so a
//! process killed at any instant leaves the list consistent. (A ring of free
//! ids, as DPDK uses, was the alternative; with per-slot sequence numbers, a
//! process killed between claiming a slot and releasing it would block
//! that slot for good, and the pool would stall one lap later.)
//!
//! **Owners.** Each block's record holds one word: its state (free, held,
//! queued in a channel) and, when held, its owner (pid and start time, so a
//! reused pid is not mistaken for the owner). Every state change is one CAS
//! on that word, so [`MemPool::reclaim_dead`] frees exactly the blocks whose
//! owner is gone, and never one that a live process just took.
//!
//! **What a kill can leak.** A process killed in the few instructions
//! between popping a block off the free list and stamping it as held,
//! between marking a block queued and pushing its id into a channel's ring,
//! or between popping an id from the ring and taking the block over, leaves
//! that block in no list. [`MemPool::recover_orphans`] returns such
//! blocks; it must run while no other process uses the pool.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use shm_segment::{
    Header, HeaderError, HeaderInfo, HeapRegion, Kind, ProcessId, Region, RegionChecks, Target,
    HEADER_SIZE,
};

use crate::error::PoolError;
use crate::sync::{AtomicU32, AtomicU64};
use crate::BlockId;

const LAYOUT_VERSION: u32 = 1;
/// Blocks are multiples of this many bytes, aligned to it (a cache line).
pub const BLOCK_ALIGN: usize = 64;
const CONTROL_OFFSET: usize = 128;
const META_OFFSET: usize = CONTROL_OFFSET + std::mem::size_of::<Control>();

/// Block states, in the low 2 bits of [`Meta::word`].
const FREE: u64 = 0;
const HELD: u64 = 1;
const QUEUED: u64 = 2;
const STATE_BITS: u32 = 2;
const PID_BITS: u32 = 22;
const START_BITS: u32 = 40;

#[repr(C)]
struct Control {
    /// Tag (high 32 bits) and link of the top free block (low 32: index + 1, 0 = empty).
    head: CachePadded<AtomicU64>,
}

/// One per block.
#[repr(C)]
struct Meta {
    /// Link to the next free block (index + 1, 0 = end); meaningful while free.
    next: AtomicU32,
    /// Bytes of the block in use, as set by the writer (for channels).
    used: AtomicU32,
    /// State (low 2 bits) and, when held, the owner's pid and start time.
    word: AtomicU64,
}

fn held_by(me: ProcessId) -> u64 {
    let start = me.start_time & ((1 << START_BITS) - 1);
    (start << (STATE_BITS + PID_BITS))
        | (u64::from(me.pid & ((1 << PID_BITS) - 1)) << STATE_BITS)
        | HELD
}

fn owner_of(word: u64) -> ProcessId {
    ProcessId {
        pid: ((word >> STATE_BITS) & ((1 << PID_BITS) - 1)) as u32,
        start_time: word >> (STATE_BITS + PID_BITS),
    }
}

fn owner_alive(word: u64) -> bool {
    let owner = owner_of(word);
    // The record keeps 40 bits of the start time: compare those, then check
    // that the process found is not a zombie.
    ProcessId::of(owner.pid).is_some_and(|now| {
        now.start_time & ((1 << START_BITS) - 1) == owner.start_time && now.is_alive()
    })
}

fn state_name(word: u64) -> &'static str {
    match word & 3 {
        FREE => "free",
        HELD => "held",
        QUEUED => "queued in a channel",
        _ => "in an unknown state",
    }
}

/// Bytes a pool of `blocks` blocks of `block_size` bytes (rounded up) needs.
fn layout(blocks: u64, block_size: u64) -> Option<u64> {
    let metas = blocks.checked_mul(std::mem::size_of::<Meta>() as u64)?;
    let data = (META_OFFSET as u64)
        .checked_add(metas)?
        .checked_next_multiple_of(BLOCK_ALIGN as u64)?;
    data.checked_add(blocks.checked_mul(block_size)?)
}

/// [`MemPool::required_size`] without the panic: `None` when it overflows.
pub(crate) fn checked_size(blocks: u32, block_size: usize) -> Option<u64> {
    let size = (block_size.max(1) as u64).checked_next_multiple_of(BLOCK_ALIGN as u64)?;
    layout(u64::from(blocks), size)
}

fn data_offset(blocks: u64) -> u64 {
    (META_OFFSET as u64 + blocks * std::mem::size_of::<Meta>() as u64)
        .next_multiple_of(BLOCK_ALIGN as u64)
}

struct Inner<R> {
    region: R,
    control: *const Control,
    metas: *const Meta,
    data: *mut u8,
    blocks: u32,
    block_size: usize,
}

// SAFETY: the pointers point into `region`, owned here; shared state is
// reached only through atomics, and block bytes only by the block's holder.
unsafe impl<R: Send> Send for Inner<R> {}
// SAFETY: as above.
unsafe impl<R: Sync> Sync for Inner<R> {}

/// Fixed-size blocks in a [`Region`] that any attached process can take
/// ([`get`](MemPool::get)) and give back (drop the [`Block`], or
/// [`put`](MemPool::put) its id). Blocks are named by [`BlockId`], an
/// index, so an id means the same block in every process.
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
/// let id = block.into_id(); // hand the id to another process…
/// let again = pool.from_id(id)?; // …which takes the block over
/// assert_eq!(again.read_pod::<i32>(0)?, 42);
/// drop(again); // back to the pool
/// assert_eq!(pool.stats().free, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemPool<R> {
    inner: Arc<Inner<R>>,
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
            .finish_non_exhaustive()
    }
}

impl<R> MemPool<R> {
    /// Bytes a pool of `blocks` blocks of `block_size` bytes needs (each
    /// block rounded up to a multiple of 64), header included.
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
    /// A pool on the heap, for use between threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(8, 256)?;
    /// assert_eq!(pool.block_size(), 256);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn new_heap(blocks: u32, block_size: usize) -> Result<Self, PoolError> {
        Self::create(
            HeapRegion::new(Self::required_size(blocks, block_size)),
            blocks,
            block_size,
        )
    }
}

impl<R: Region> MemPool<R> {
    /// Lays out a pool of `blocks` blocks of `block_size` bytes (rounded up
    /// to a multiple of 64) in `region`, all free, and publishes its header.
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
        let target = region.target();
        let invalid = |reason: String| PoolError::InvalidLayout {
            target: region.target(),
            reason,
        };
        if blocks == 0 || blocks == u32::MAX {
            return Err(invalid(format!(
                "block count {blocks} must be between 1 and {}",
                u32::MAX - 1
            )));
        }
        let size = (block_size.max(1) as u64).next_multiple_of(BLOCK_ALIGN as u64);
        if block_size == 0 || size > u64::from(u32::MAX) {
            return Err(invalid(format!(
                "block size {block_size} must be between 1 and 4 GiB"
            )));
        }
        let needed = layout(u64::from(blocks), size)
            .ok_or_else(|| invalid("the pool would not fit in memory".into()))?;
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
        let pool = Self::wire(region, blocks, size as usize)?;
        // SAFETY: `wire` checked the control block and the `blocks` records
        // are in bounds and aligned; nobody else uses them before the header
        // is published below. Writing whole values constructs the atomics in
        // place (what loom's need; for std's it equals storing the values).
        unsafe {
            pool.inner.control.cast_mut().write(Control {
                head: CachePadded::new(AtomicU64::new(1)),
            });
            for i in 0..blocks {
                // Link each block to the next; the last one ends the list.
                let next = if i + 1 < blocks { i + 2 } else { 0 };
                pool.inner.metas.cast_mut().add(i as usize).write(Meta {
                    next: AtomicU32::new(next),
                    used: AtomicU32::new(0),
                    word: AtomicU64::new(FREE),
                });
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
        // SYNC POINT: the header's Release publish covers the list built above.
        Header::init(&pool.inner.region, &info)?;
        Ok(pool)
    }

    /// Attaches to a pool another process created, validating its header
    /// (kind, version, alignment, block count and size against the region).
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
        let info = Header::read(&region)?;
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
        if info.capacity == 0 || info.capacity >= u64::from(u32::MAX) {
            return Err(fail(HeaderError::Capacity {
                capacity: info.capacity,
                reason: "a pool has 1 to 2^32 - 2 blocks",
            }));
        }
        if info.elem_size == 0 || info.elem_size as usize % BLOCK_ALIGN != 0 {
            return Err(fail(HeaderError::ElemSize {
                expected: (info.elem_size.max(1) as usize).next_multiple_of(BLOCK_ALIGN) as u32,
                found: info.elem_size,
            }));
        }
        match layout(info.capacity, u64::from(info.elem_size)) {
            Some(expected) if expected == info.total_size => {}
            Some(expected) => {
                return Err(fail(HeaderError::Layout {
                    expected,
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
        Self::wire(region, info.capacity as u32, info.elem_size as usize)
    }

    /// Checks bounds and alignment once; later indexes are checked against `blocks`.
    fn wire(region: R, blocks: u32, block_size: usize) -> Result<Self, PoolError> {
        let control = region.typed_ptr::<Control>("attach pool", CONTROL_OFFSET, 1)?;
        let metas = region.typed_ptr::<Meta>("attach pool", META_OFFSET, blocks as usize)?;
        let data_off = data_offset(u64::from(blocks)) as usize;
        region.check_range("attach pool", data_off, blocks as usize * block_size)?;
        // SAFETY: in range (checked just above).
        let data = unsafe { region.as_ptr().add(data_off) };
        Ok(MemPool {
            inner: Arc::new(Inner {
                region,
                control,
                metas,
                data,
                blocks,
                block_size,
            }),
        })
    }
}

impl<R> MemPool<R> {
    fn control(&self) -> &Control {
        // SAFETY: in bounds and aligned (checked in `wire`); atomics only.
        unsafe { &*self.inner.control }
    }

    /// The record of block `i`; callers pass `i < blocks`.
    fn meta(&self, i: u32) -> &Meta {
        assert!(i < self.inner.blocks);
        // SAFETY: `i < blocks` (asserted), and `wire` checked that `blocks`
        // records fit; atomics only.
        unsafe { &*self.inner.metas.add(i as usize) }
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
    fn corrupted(&self, what: String) -> PoolError {
        PoolError::Corrupted {
            target: self.inner.region.target(),
            what,
        }
    }

    fn index(&self, id: BlockId) -> Result<u32, PoolError> {
        if id.0 < self.inner.blocks {
            Ok(id.0)
        } else {
            Err(PoolError::OutOfRange {
                target: self.inner.region.target(),
                id,
                blocks: self.inner.blocks,
            })
        }
    }

    /// Takes a free block, or fails with [`PoolError::Exhausted`].
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
        let id = self.take()?;
        Ok(Block {
            pool: self,
            id,
            _not_send: PhantomData,
        })
    }

    fn take(&self) -> Result<BlockId, PoolError> {
        let head = &self.control().head;
        // SYNC POINT: Acquire pairs with the Release CAS in `push`: the block's
        // link, and the bytes its last holder wrote, are visible.
        let mut current = head.load(Ordering::Acquire);
        let i = loop {
            let link = current as u32;
            if link == 0 {
                return Err(PoolError::Exhausted {
                    target: self.inner.region.target(),
                    blocks: self.inner.blocks,
                });
            }
            if link > self.inner.blocks {
                return Err(self.corrupted(format!("the free list points at block {}", link - 1)));
            }
            let next = self.meta(link - 1).next.load(Ordering::Relaxed);
            if next > self.inner.blocks {
                return Err(self.corrupted(format!(
                    "block {} links to block {}",
                    link - 1,
                    next.wrapping_sub(1)
                )));
            }
            let tag = (current >> 32).wrapping_add(1);
            match head.compare_exchange_weak(
                current,
                (tag << 32) | u64::from(next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break link - 1,
                Err(now) => current = now,
            }
        };
        let me = held_by(ProcessId::current());
        if let Err(word) =
            self.meta(i)
                .word
                .compare_exchange(FREE, me, Ordering::AcqRel, Ordering::Relaxed)
        {
            return Err(self.corrupted(format!(
                "block {i} was on the free list but is {}",
                state_name(word)
            )));
        }
        self.meta(i).used.store(0, Ordering::Relaxed);
        Ok(BlockId(i))
    }

    fn push(&self, i: u32) {
        let head = &self.control().head;
        let mut current = head.load(Ordering::Relaxed);
        loop {
            self.meta(i).next.store(current as u32, Ordering::Relaxed);
            let tag = (current >> 32).wrapping_add(1);
            // SYNC POINT: Release pairs with the Acquire in `take`.
            match head.compare_exchange_weak(
                current,
                (tag << 32) | u64::from(i + 1),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => current = now,
            }
        }
    }

    /// Moves block `i` from a state `from` accepts to `to`, with one CAS.
    fn transition(
        &self,
        id: BlockId,
        expected: &'static str,
        from: impl Fn(u64) -> bool,
        to: u64,
    ) -> Result<u64, PoolError> {
        let i = self.index(id)?;
        let word = &self.meta(i).word;
        let mut current = word.load(Ordering::Acquire);
        loop {
            if !from(current) {
                return Err(PoolError::WrongState {
                    target: self.inner.region.target(),
                    id,
                    expected,
                    found: state_name(current),
                });
            }
            match word.compare_exchange_weak(current, to, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(current),
                Err(now) => current = now,
            }
        }
    }

    /// Gives a held block back by id (what dropping its [`Block`] does).
    /// A block that is not held (a double `put`, an id never handed out)
    /// is an error and changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{MemPool, PoolError};
    /// let pool = MemPool::new_heap(2, 64)?;
    /// let id = pool.get()?.into_id();
    /// pool.put(id)?;
    /// assert!(matches!(pool.put(id), Err(PoolError::WrongState { .. })));
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn put(&self, id: BlockId) -> Result<(), PoolError> {
        self.transition(id, "held", |w| w & 3 == HELD, FREE)?;
        self.push(id.0);
        Ok(())
    }

    /// Takes over a held block by id, e.g. one another process passed with
    /// [`Block::into_id`]. The block is recorded as this process's.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(2, 64)?;
    /// let id = pool.get()?.into_id();
    /// let block = pool.from_id(id)?;
    /// assert_eq!(block.id(), id);
    /// assert!(pool.from_id(shm_mempool::BlockId(1)).is_err()); // free, not held
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn from_id(&self, id: BlockId) -> Result<Block<'_, R>, PoolError> {
        let me = held_by(ProcessId::current());
        self.transition(id, "held", |w| w & 3 == HELD, me)?;
        Ok(Block {
            pool: self,
            id,
            _not_send: PhantomData,
        })
    }

    /// Marks a held block as queued in a channel (owned by no process).
    pub(crate) fn enqueue(&self, id: BlockId) -> Result<u64, PoolError> {
        self.transition(id, "held", |w| w & 3 == HELD, QUEUED)
    }

    /// Undoes [`enqueue`](Self::enqueue) when the ring was full.
    pub(crate) fn unqueue(&self, id: BlockId, word: u64) -> Result<(), PoolError> {
        self.transition(id, "queued", |w| w == QUEUED, word)
            .map(drop)
    }

    /// Takes a block out of a channel for this process.
    pub(crate) fn dequeue(&self, id: BlockId) -> Result<Block<'_, R>, PoolError> {
        let me = held_by(ProcessId::current());
        self.transition(id, "queued", |w| w == QUEUED, me)?;
        Ok(Block {
            pool: self,
            id,
            _not_send: PhantomData,
        })
    }

    /// Gives back every block held by a process that no longer exists, and
    /// returns their ids. Queued blocks belong to their channel and are left
    /// alone. Safe to run at any time, from any process.
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
        for i in 0..self.inner.blocks {
            let word = &self.meta(i).word;
            let w = word.load(Ordering::Acquire);
            if w & 3 != HELD || *alive.entry(w).or_insert_with(|| owner_alive(w)) {
                continue;
            }
            // One CAS from exactly this dead owner's word: if anything
            // changed meanwhile, the block is not the dead process's any more.
            if word
                .compare_exchange(w, FREE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.push(i);
                reclaimed.push(BlockId(i));
            }
        }
        Ok(reclaimed)
    }

    /// Counts blocks by state and held blocks by owner, from the per-block
    /// records (a snapshot when others are active).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(4, 64)?;
    /// let _a = pool.get()?;
    /// let stats = pool.stats();
    /// assert_eq!((stats.free, stats.held, stats.queued), (3, 1, 0));
    /// assert_eq!(stats.by_owner, vec![(shm_segment::ProcessId::current().pid, 1)]);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        let mut stats = PoolStats {
            blocks: self.inner.blocks,
            block_size: self.inner.block_size,
            ..PoolStats::default()
        };
        let mut owners: HashMap<u32, u32> = HashMap::new();
        for i in 0..self.inner.blocks {
            let w = self.meta(i).word.load(Ordering::Acquire);
            match w & 3 {
                FREE => stats.free += 1,
                HELD => {
                    stats.held += 1;
                    *owners.entry(owner_of(w).pid).or_default() += 1;
                }
                QUEUED => stats.queued += 1,
                _ => stats.unknown += 1,
            }
        }
        stats.by_owner = owners.into_iter().collect();
        stats.by_owner.sort_unstable();
        stats
    }

    /// Walks the free list (at most `blocks` steps) and checks it against
    /// the block records: every listed block is free, none twice, and no
    /// cycle. Meaningful while no other process changes the pool.
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
        let mut seen = vec![false; self.inner.blocks as usize];
        let mut link = self.control().head.load(Ordering::Acquire) as u32;
        let mut len = 0;
        while link != 0 {
            if link > self.inner.blocks {
                return Err(self.corrupted(format!("the free list points at block {}", link - 1)));
            }
            let i = link - 1;
            if std::mem::replace(&mut seen[i as usize], true) {
                return Err(self.corrupted(format!("the free list has a cycle through block {i}")));
            }
            let w = self.meta(i).word.load(Ordering::Acquire);
            if w != FREE {
                return Err(self.corrupted(format!(
                    "block {i} is on the free list but is {}",
                    state_name(w)
                )));
            }
            len += 1;
            link = self.meta(i).next.load(Ordering::Relaxed);
        }
        Ok(len)
    }

    /// Returns to the free list every block that is free but not on it
    /// (leaked by a process killed mid-`get`) or queued in no channel's ring
    /// (killed mid-send; pass the ids still in rings as `queued_in_rings`).
    /// Only while no other process uses the pool. Returns the ids.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(4, 64)?;
    /// assert!(pool.recover_orphans(&[])?.is_empty());
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn recover_orphans(&self, queued_in_rings: &[BlockId]) -> Result<Vec<BlockId>, PoolError> {
        let mut listed = vec![false; self.inner.blocks as usize];
        let mut link = self.control().head.load(Ordering::Acquire) as u32;
        let mut steps = 0;
        while link != 0 && link <= self.inner.blocks && steps < self.inner.blocks {
            listed[(link - 1) as usize] = true;
            link = self.meta(link - 1).next.load(Ordering::Relaxed);
            steps += 1;
        }
        if link != 0 {
            return Err(self.corrupted("the free list is cyclic or points out of range".into()));
        }
        let mut in_ring = vec![false; self.inner.blocks as usize];
        for id in queued_in_rings {
            in_ring[self.index(*id)? as usize] = true;
        }
        let mut recovered = Vec::new();
        for i in 0..self.inner.blocks {
            let w = self.meta(i).word.load(Ordering::Acquire);
            let orphan =
                (w == FREE && !listed[i as usize]) || (w == QUEUED && !in_ring[i as usize]);
            if orphan {
                self.meta(i).word.store(FREE, Ordering::Release);
                self.push(i);
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

/// Counts from [`MemPool::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Blocks in the pool.
    pub blocks: u32,
    /// Bytes per block.
    pub block_size: usize,
    /// Free blocks.
    pub free: u32,
    /// Blocks held by a process.
    pub held: u32,
    /// Blocks queued in a channel's ring.
    pub queued: u32,
    /// Blocks whose record is garbage (corruption).
    pub unknown: u32,
    /// Held blocks per owner pid, sorted by pid.
    pub by_owner: Vec<(u32, u32)>,
}

/// A held block: given back when dropped (unless turned into an id with
/// [`into_id`](Block::into_id)). It is a [`Region`] over the block's bytes:
/// `read_at`, `write_at`, `read_pod`, `write_pod`, the cursor, and the
/// `unsafe` zero-copy views all work on it, bounds-checked to the block.
///
/// # Examples
///
/// ```
/// use shm_segment::Region;
/// use std::io::Write;
/// let pool = shm_mempool::MemPool::new_heap(1, 128)?;
/// let block = pool.get()?;
/// write!(block.cursor(), "hello {}", 42)?;
/// assert_eq!(block.len(), 128);
/// assert!(block.write_at(120, &[0; 16]).is_err()); // past the block's end
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Block<'p, R: Region> {
    pool: &'p MemPool<R>,
    id: BlockId,
    /// `!Send`: the block is recorded as held by this process.
    _not_send: PhantomData<*const ()>,
}

impl<R: Region> std::fmt::Debug for Block<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").field("id", &self.id).finish()
    }
}

impl<'p, R: Region> Block<'p, R> {
    /// Its position-independent id.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(1, 64)?;
    /// assert_eq!(pool.get()?.id(), shm_mempool::BlockId(0));
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// Keeps the block held and returns its id, to hand to another process
    /// (which calls [`MemPool::from_id`]) or to give back later with
    /// [`MemPool::put`].
    ///
    /// # Examples
    ///
    /// See [`MemPool`].
    pub fn into_id(self) -> BlockId {
        let id = self.id;
        std::mem::forget(self);
        id
    }

    /// The pool it belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(1, 64)?;
    /// assert_eq!(pool.get()?.pool().blocks(), 1);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn pool(&self) -> &'p MemPool<R> {
        self.pool
    }

    /// Records how many bytes of the block hold data (what a channel's
    /// receiver reads back with [`used`](Block::used)); at most the block size.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(1, 64)?;
    /// let block = pool.get()?;
    /// block.set_used(5);
    /// assert_eq!(block.used(), 5);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn set_used(&self, bytes: usize) {
        let bytes = bytes.min(self.pool.block_size());
        self.pool.set_used(self.id, bytes as u32);
    }

    /// Bytes in use, as the writer recorded (clamped to the block size).
    ///
    /// # Examples
    ///
    /// See [`set_used`](Block::set_used).
    pub fn used(&self) -> usize {
        (self.pool.used(self.id) as usize).min(self.pool.block_size())
    }
}

impl<R: Region> Drop for Block<'_, R> {
    fn drop(&mut self) {
        let _ = self.pool.put(self.id);
    }
}

// SAFETY: block `id < blocks` lies at `data + id * block_size` for
// `block_size` bytes inside the pool's region (checked in `wire`), which the
// borrowed pool keeps alive; writable iff the region is.
unsafe impl<R: Region> Region for Block<'_, R> {
    fn as_ptr(&self) -> *mut u8 {
        // SAFETY: in bounds, as above.
        unsafe {
            self.pool
                .inner
                .data
                .add(self.id.0 as usize * self.pool.inner.block_size)
        }
    }
    fn len(&self) -> usize {
        self.pool.inner.block_size
    }
    fn is_read_only(&self) -> bool {
        self.pool.inner.region.is_read_only()
    }
    fn target(&self) -> Target {
        self.pool.inner.region.target()
    }
}

/// Counts a pool's blocks by state without attaching, with atomic loads
/// only, so a read-only mapping will do (what `shm inspect` uses).
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
    let info = Header::read(region)?;
    if info.kind != Kind::MEMPOOL {
        let source = HeaderError::WrongKind {
            expected: Kind::MEMPOOL,
            found: info.kind,
        };
        return Err(shm_segment::Error::Header {
            target: region.target(),
            source,
        }
        .into());
    }
    let blocks = u32::try_from(info.capacity).unwrap_or(u32::MAX);
    let mut stats = PoolStats {
        blocks,
        block_size: info.elem_size as usize,
        ..PoolStats::default()
    };
    let mut owners: HashMap<u32, u32> = HashMap::new();
    for i in 0..blocks as usize {
        let offset =
            META_OFFSET + i * std::mem::size_of::<Meta>() + std::mem::offset_of!(Meta, word);
        // Bounds-checked by the load: a lying header gives an error, not a fault.
        let w = region.load_u64(offset, Ordering::Acquire)?;
        match w & 3 {
            FREE => stats.free += 1,
            HELD => {
                stats.held += 1;
                *owners.entry(owner_of(w).pid).or_default() += 1;
            }
            QUEUED => stats.queued += 1,
            _ => stats.unknown += 1,
        }
    }
    stats.by_owner = owners.into_iter().collect();
    stats.by_owner.sort_unstable();
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_word_round_trips_and_reports_liveness() {
        let me = ProcessId::current();
        let w = held_by(me);
        assert_eq!(w & 3, HELD);
        assert_eq!(owner_of(w).pid, me.pid);
        assert!(owner_alive(w));
        assert!(!owner_alive(held_by(ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1
        })));
    }

    #[test]
    fn every_block_once_then_exhausted_then_all_back() {
        let pool = MemPool::new_heap(5, 64).unwrap();
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

    #[test]
    fn corrupted_links_are_errors_not_out_of_bounds() {
        let pool = MemPool::new_heap(4, 64).unwrap();
        pool.control().head.store(99, Ordering::Relaxed);
        assert!(matches!(pool.get(), Err(PoolError::Corrupted { .. })));
        assert!(matches!(pool.check(), Err(PoolError::Corrupted { .. })));
        // A cycle: 1 -> 2 -> 1.
        pool.control().head.store(1, Ordering::Relaxed);
        pool.meta(0).next.store(2, Ordering::Relaxed);
        pool.meta(1).next.store(1, Ordering::Relaxed);
        let err = pool.check().unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
        assert!(pool.recover_orphans(&[]).is_err());
    }

    #[test]
    fn threads_share_blocks_without_loss() {
        let pool = MemPool::new_heap(64, 64).unwrap();
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
        assert_eq!(pool.check().unwrap(), 64);
        assert_eq!(pool.stats().free, 64);
    }
}
