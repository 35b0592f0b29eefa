//! [`Block`]: a held block, the one owner's handle.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use shm_segment::{ForkEpoch, Region, RegionChecks, Target};

use crate::cache::CacheCore;
use crate::error::PoolError;
use crate::pool::{next_word, MemPool, IN_TRANSIT};
use crate::BlockId;

/// A held block: given back when dropped (unless handed on with
/// [`into_id`](Block::into_id)). It is a [`Region`] over the block's bytes:
/// `read_at`, `write_at`, `read_pod`, `write_pod`, the cursor, and the
/// `unsafe` zero-copy views all work on it, bounds-checked to the block.
///
/// The handle remembers the exact record word it wrote when it took the
/// block (owner and generation), and gives the block back only with a CAS
/// from that word: if the block is no longer this handle's, dropping it
/// gives nothing back (see the [`pool`](crate::pool) module).
///
/// # Inherited across `fork`
///
/// A `Block` that a `fork(2)`ed child inherits is the parent's block, and
/// the child's copy is inert:
///
/// - what can fail fails: [`into_id`](Block::into_id) and a channel's
///   `send` return [`PoolError::ForkedHandle`]; the [`Region`] methods that
///   return a `Result` (`read_at`, `write_at`, `fill`, `read_pod`,
///   `write_pod`, their slice forms, `atomic_u32`/`atomic_u64`,
///   `load_u32`/`load_u64`, `view`, `view_slice`, `view_mut`) return
///   [`shm_segment::Error::InvalidArgument`] saying so;
/// - what cannot fail panics with a message saying so: [`used`](Block::used),
///   [`set_used`](Block::set_used), `as_ptr` and what is built on it alone
///   (`to_vec`, `as_slice`, `as_mut_slice`). So does any access through a
///   wrapper region such as `&Block` (what [`cursor`](Region::cursor)
///   reads and writes through), whose provided methods reach the bytes
///   through `as_ptr`;
/// - [`id`](Block::id), [`pool`](Block::pool), `len`, `target` and
///   `is_read_only` only read the handle and keep working;
/// - dropping it gives nothing back: the block stays the parent's.
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
    /// The record word this handle wrote when it took the block: held by
    /// this process, with the block's generation at that moment.
    word: u64,
    /// The process the handle was made in (a `fork`ed child's copy is inert).
    epoch: ForkEpoch,
    /// The [`BlockCache`](crate::BlockCache) it came from, which takes it
    /// back when it drops; `None`: the pool's free list does.
    cache: Option<&'p CacheCore>,
    /// `!Send`: the block is recorded as held by this process.
    _not_send: PhantomData<*const ()>,
}

impl<R: Region> std::fmt::Debug for Block<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("id", &self.id)
            .field("inherited", &!self.epoch.is_current())
            .finish()
    }
}

impl<'p, R: Region> Block<'p, R> {
    pub(crate) fn new(pool: &'p MemPool<R>, id: BlockId, word: u64, epoch: ForkEpoch) -> Self {
        Block {
            pool,
            id,
            word,
            epoch,
            cache: None,
            _not_send: PhantomData,
        }
    }

    /// A block taken from `cache`, given back to it when dropped.
    pub(crate) fn cached(
        pool: &'p MemPool<R>,
        id: BlockId,
        word: u64,
        epoch: ForkEpoch,
        cache: &'p CacheCore,
    ) -> Self {
        // Not `..Block::new(..)`: that temporary would drop, giving the
        // block back.
        Block {
            pool,
            id,
            word,
            epoch,
            cache: Some(cache),
            _not_send: PhantomData,
        }
    }

    /// `Err(ForkedHandle)` in a `fork`ed child. The check is one load and
    /// a compare inlined into every access; the error is built out of line.
    #[inline(always)]
    fn live(&self, op: &'static str) -> Result<(), PoolError> {
        if self.epoch.is_current() {
            Ok(())
        } else {
            Err(self.forked(op))
        }
    }

    #[cold]
    #[inline(never)]
    fn forked(&self, op: &'static str) -> PoolError {
        PoolError::ForkedHandle {
            op,
            target: self.pool.target(),
            id: self.id,
        }
    }

    /// The same check for the [`Region`] methods, with the segment layer's error.
    #[inline(always)]
    fn live_region(&self, op: &'static str) -> shm_segment::Result<()> {
        if self.epoch.is_current() {
            Ok(())
        } else {
            Err(self.forked_region(op))
        }
    }

    #[cold]
    #[inline(never)]
    fn forked_region(&self, op: &'static str) -> shm_segment::Error {
        shm_segment::Error::InvalidArgument {
            op,
            target: self.pool.target(),
            reason: self.forked(op).to_string(),
        }
    }

    /// Panics in a `fork`ed child (for the accessors that cannot fail).
    #[inline(always)]
    #[track_caller]
    fn assert_live(&self, op: &'static str) {
        if !self.epoch.is_current() {
            self.forked_panic(op);
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn forked_panic(&self, op: &'static str) -> ! {
        panic!("{}", self.forked(op));
    }

    /// The block's first byte, for the accessors that checked the fork
    /// epoch already (`as_ptr` checks it again).
    #[inline(always)]
    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: block `id < blocks` lies at `data + id * block_size`
        // inside the pool's region (checked in `wire`).
        unsafe {
            self.pool
                .inner
                .data
                .add(self.id.0 as usize * self.pool.inner.block_size)
        }
    }

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

    /// Hands the block on: it becomes *in transit*, owned by nobody, and the
    /// returned id is the only claim on it. Whoever gets the id claims the
    /// block with [`MemPool::from_id`] (exactly once), or gives it back with
    /// [`MemPool::put`]. `reclaim_dead` never frees a block in transit, so
    /// an id in another process's hands survives this process.
    ///
    /// # Errors
    ///
    /// [`PoolError::ForkedHandle`] in a `fork`ed child (the block is the
    /// parent's); [`PoolError::WrongState`] if the block is no longer this
    /// handle's. Either way nothing changes, and nothing is given back.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(2, 64)?;
    /// let id = pool.get()?.into_id()?;
    /// assert_eq!(pool.stats().in_transit, 1);
    /// let block = pool.from_id(id)?;
    /// assert_eq!(pool.stats().held, 1);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn into_id(self) -> Result<BlockId, PoolError> {
        let pool = self.pool;
        let (id, word) = self.hand_over("into_id")?;
        pool.exchange(
            "into_id",
            id,
            crate::BlockState::Held,
            word,
            next_word(word, IN_TRANSIT, 0),
        )?;
        Ok(id)
    }

    /// Ends the handle without giving the block back, for an operation that
    /// hands the block on (`into_id`, a channel's `send`): its id and the
    /// exact word it holds the block under. `Err(ForkedHandle)` in a
    /// `fork`ed child (the handle ends there too, giving nothing back).
    pub(crate) fn hand_over(self, op: &'static str) -> Result<(BlockId, u64), PoolError> {
        // The handle ends here whatever happens: the caller moves the block
        // on from `word`, or it was not this handle's to move.
        let this = ManuallyDrop::new(self);
        this.live(op)?;
        Ok((this.id, this.word))
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
    /// # Panics
    ///
    /// In a `fork`ed child, where the handle is inert (see [`Block`]).
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
        self.assert_live("set_used");
        let bytes = bytes.min(self.pool.block_size());
        self.pool.set_used(self.id, bytes as u32);
    }

    /// Bytes in use, as the writer recorded (clamped to the block size).
    ///
    /// # Panics
    ///
    /// In a `fork`ed child, where the handle is inert (see [`Block`]).
    ///
    /// # Examples
    ///
    /// See [`set_used`](Block::set_used).
    pub fn used(&self) -> usize {
        self.assert_live("used");
        (self.pool.used(self.id) as usize).min(self.pool.block_size())
    }
}

impl<R: Region> Drop for Block<'_, R> {
    #[inline]
    fn drop(&mut self) {
        // In a forked child the block is the parent's: give nothing back.
        // Otherwise one CAS from the exact word this handle wrote (or, for
        // a block of a `BlockCache`, a check of that word and a store): if
        // the block is no longer its own, nothing changes.
        if self.epoch.is_current() {
            match self.cache {
                Some(cache) => cache.give_back(self.pool, self.id.0, self.word),
                None => {
                    let _ = self.pool.release("drop", self.id, self.word);
                }
            }
        }
    }
}

// SAFETY: block `id < blocks` lies at `data + id * block_size` for
// `block_size` bytes inside the pool's region (checked in `wire`), which the
// borrowed pool keeps alive; writable iff the region is. `as_ptr` panics
// rather than return a different pointer, so it never changes.
unsafe impl<R: Region> Region for Block<'_, R> {
    #[inline]
    fn as_ptr(&self) -> *mut u8 {
        self.assert_live("access");
        self.data_ptr()
    }
    #[inline]
    fn len(&self) -> usize {
        self.pool.inner.block_size
    }
    fn is_read_only(&self) -> bool {
        self.pool.region().is_read_only()
    }
    fn target(&self) -> Target {
        self.pool.target()
    }

    // The methods that return a `Result` check the fork epoch first, then do
    // what the provided methods do (they cannot be called from here).

    #[inline]
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> shm_segment::Result<()> {
        self.live_region("read")?;
        self.check_range("read", offset, buf.len())?;
        // SAFETY: in range (checked above) of memory readable for `len`
        // bytes (see the impl). The block is ours by the pool's protocol, but
        // another process can still write it (a bug, a hostile peer): the
        // copy is atomic on the shared side, so even then it is no data race.
        unsafe { shm_segment::copy::copy_from_shared(self.data_ptr().add(offset), buf) };
        Ok(())
    }

    #[inline]
    fn write_at(&self, offset: usize, data: &[u8]) -> shm_segment::Result<()> {
        self.live_region("write")?;
        self.check_writable("write")?;
        self.check_range("write", offset, data.len())?;
        // SAFETY: in range and writable (checked above); `data` is a Rust
        // slice, which safe code never makes over the mapping. Atomic on the
        // shared side, as in `read_at`.
        unsafe { shm_segment::copy::copy_to_shared(data, self.data_ptr().add(offset)) };
        Ok(())
    }

    fn fill(&self, offset: usize, len: usize, byte: u8) -> shm_segment::Result<()> {
        self.live_region("fill")?;
        self.check_writable("fill")?;
        self.check_range("fill", offset, len)?;
        // SAFETY: in range and writable (checked above); atomic, as in `read_at`.
        unsafe { shm_segment::copy::fill_shared(self.data_ptr().add(offset), byte, len) };
        Ok(())
    }

    fn atomic_u32(&self, offset: usize) -> shm_segment::Result<&AtomicU32> {
        self.live_region("atomic_u32")?;
        self.check_writable("atomic_u32")?;
        let ptr = self.typed_ptr::<AtomicU32>("atomic_u32", offset, 1)?;
        // SAFETY: in range, aligned and writable for the borrow of `self`
        // (checked above); any bits are a valid u32, and atomics are made
        // for concurrent access.
        Ok(unsafe { &*ptr })
    }

    fn atomic_u64(&self, offset: usize) -> shm_segment::Result<&AtomicU64> {
        self.live_region("atomic_u64")?;
        self.check_writable("atomic_u64")?;
        let ptr = self.typed_ptr::<AtomicU64>("atomic_u64", offset, 1)?;
        // SAFETY: as in `atomic_u32`.
        Ok(unsafe { &*ptr })
    }

    fn load_u32(&self, offset: usize, order: Ordering) -> shm_segment::Result<u32> {
        self.live_region("load_u32")?;
        let ptr = self.typed_ptr::<AtomicU32>("load_u32", offset, 1)?;
        // SAFETY: in range and aligned (checked); a load never writes.
        Ok(unsafe { (*ptr).load(order) })
    }

    fn load_u64(&self, offset: usize, order: Ordering) -> shm_segment::Result<u64> {
        self.live_region("load_u64")?;
        let ptr = self.typed_ptr::<AtomicU64>("load_u64", offset, 1)?;
        // SAFETY: in range and aligned (checked); a load never writes.
        Ok(unsafe { (*ptr).load(order) })
    }

    unsafe fn view<T: bytemuck::Pod>(&self, offset: usize) -> shm_segment::Result<&T> {
        self.live_region("view")?;
        let ptr = self.typed_ptr::<T>("view", offset, 1)?;
        // SAFETY: in range and aligned (checked); any bytes are a valid `T`;
        // no writer while it lives (the caller's promise, see `Region::view`).
        Ok(unsafe { &*ptr })
    }

    unsafe fn view_slice<T: bytemuck::Pod>(
        &self,
        offset: usize,
        count: usize,
    ) -> shm_segment::Result<&[T]> {
        self.live_region("view_slice")?;
        let ptr = self.typed_ptr::<T>("view_slice", offset, count)?;
        // SAFETY: in range and aligned for `count` values (checked); Pod; no
        // writer while it lives (the caller's promise).
        Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
    }

    #[allow(clippy::mut_from_ref)]
    unsafe fn view_mut<T: bytemuck::Pod>(&self, offset: usize) -> shm_segment::Result<&mut T> {
        self.live_region("view_mut")?;
        self.check_writable("view_mut")?;
        let ptr = self.typed_ptr::<T>("view_mut", offset, 1)?;
        // SAFETY: in range, aligned and writable (checked); Pod; exclusive
        // while it lives (the caller's promise).
        Ok(unsafe { &mut *ptr })
    }
}
