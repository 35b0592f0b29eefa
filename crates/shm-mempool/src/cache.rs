//! [`BlockCache`]: a handle's private stock of free blocks, taken from and
//! given back to without one locked instruction (DPDK's per-lcore mempool
//! cache, made explicit).
//!
//! **Why an object of its own.** A [`MemPool`] handle is shared by the
//! threads of a process (it is `Sync`), so a cache inside it would need a
//! lock or a CAS per operation: the very cost it is meant to save. A
//! `BlockCache` belongs to one thread (it is not `Sync`) and borrows the
//! pool; its blocks are given back when it drops.
//!
//! **What it changes, and for whom.** A block dropped into a cache is
//! handed out again by that cache's [`get`](BlockCache::get), most recent
//! first, before any block of the shared free list: the pool's order
//! ([`FreeOrder::Fifo`](crate::FreeOrder::Fifo) by default) holds for the
//! blocks on the free list, not for those in caches. That is why a cache is
//! opt-in: a plain [`MemPool::get`] and the default pool never use one.
//!
//! **Shared records stay true.** A cached block's word says so: *held* by
//! the handle's owner slot with the [`CACHED`] bit in its place.
//! [`MemPool::stats`] counts such blocks in [`PoolStats::cached`](crate::PoolStats::cached)
//! (neither free nor held), [`MemPool::check`] knows they are on no list,
//! and [`MemPool::reclaim_dead`] gives them back when their process is gone
//! (killed with a full cache, say), as it does the blocks the process held.
//!
//! **One owner, no RMW.** Only the owner of a held word changes it (every
//! other operation starts from a free, in-transit or queued word, or from a
//! dead owner's slot), so moving a block between *held* and *cached* is a
//! load (the word is still the one this cache wrote) and a store, each
//! with a new generation. Taking blocks from the free list when the cache
//! is empty, and giving the older half back when it is full, are the
//! pool's own operations, one block at a time.
//!
//! **Across `fork`.** A child's copy of a cache is inert: its `get` is the
//! pool's `get` (the child takes blocks of its own), and dropping it gives
//! nothing back (the cached blocks are the parent's).

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use shm_segment::{ForkEpoch, Region};

use crate::error::PoolError;
use crate::pool::{next_word, Block, MemPool, CACHED, HELD};
use crate::BlockId;

/// The part of a [`BlockCache`] its blocks point back to (not generic, so
/// a [`Block`] can name it).
pub(crate) struct CacheCore {
    /// Block index and the exact cached word it lies under, the most
    /// recently given back last: `entries[..len]` (`capacity` long).
    entries: Box<[Cell<(u32, u64)>]>,
    len: Cell<usize>,
    capacity: usize,
    /// The handle's owner slot in this process.
    slot: u32,
}

impl CacheCore {
    /// Takes the most recently cached block and marks it held (a store:
    /// see the module docs). `None` when the cache is empty.
    #[inline]
    fn take<R: Region>(&self, pool: &MemPool<R>) -> Option<(u32, u64)> {
        while let Some(n) = self.len.get().checked_sub(1) {
            self.len.set(n);
            let (i, cached) = self.entries[n].get();
            let word = &pool.meta(i).word;
            // SYNC POINT: Relaxed is enough: only this thread wrote the
            // word since it cached the block (the cache is not `Sync`).
            if word.load(Ordering::Relaxed) != cached {
                // Not this cache's any more (no correct peer does that):
                // forget it.
                continue;
            }
            let held = next_word(cached, HELD, self.slot);
            pool.crash_point();
            // SYNC POINT: Release, so that a peer reading the word (stats,
            // or reclaim_dead once this process is gone) sees the block's
            // bytes as of now; nobody else writes a held word.
            word.store(held, Ordering::Release);
            return Some((i, held));
        }
        None
    }

    /// Puts block `i`, held under exactly `held`, into the cache (the
    /// older half goes back to the pool first when the cache is full).
    /// Nothing changes if the word is no longer `held`.
    #[inline]
    pub(crate) fn give_back<R: Region>(&self, pool: &MemPool<R>, i: u32, held: u64) {
        let word = &pool.meta(i).word;
        // SYNC POINT: Relaxed, as in `take`: this handle wrote `held`.
        if word.load(Ordering::Relaxed) != held {
            return;
        }
        let mut n = self.len.get();
        if n >= self.capacity {
            n = self.spill(pool);
        }
        let cached = next_word(held, HELD, self.slot | CACHED);
        pool.crash_point();
        // SYNC POINT: Release, as in `take`.
        word.store(cached, Ordering::Release);
        self.entries[n].set((i, cached));
        self.len.set(n + 1);
    }

    /// A full cache gives its older half back to the pool (oldest first)
    /// and keeps the rest at the front. Returns the new length.
    #[cold]
    #[inline(never)]
    fn spill<R: Region>(&self, pool: &MemPool<R>) -> usize {
        let n = self.len.get();
        let older = (self.capacity / 2).max(1).min(n);
        for e in &self.entries[..older] {
            let (j, cached) = e.get();
            let _ = pool.push_free(j, cached);
        }
        for k in older..n {
            self.entries[k - older].set(self.entries[k].get());
        }
        self.len.set(n - older);
        n - older
    }

    /// Gives every cached block back to the pool, oldest first.
    fn flush<R: Region>(&self, pool: &MemPool<R>) {
        let n = self.len.replace(0);
        for e in &self.entries[..n] {
            let (i, cached) = e.get();
            let _ = pool.push_free(i, cached);
        }
    }
}

/// A private stock of free blocks for one thread: [`get`](BlockCache::get)
/// takes the block given back to it last, and dropping a [`Block`] it
/// handed out gives the block back to it, each without a locked
/// instruction. When it is empty it takes half its capacity from the pool;
/// when it is full, a drop gives the older half back to the pool; dropping
/// the cache (or [`flush`](BlockCache::flush)) gives everything back.
///
/// Opt-in, because it changes the order for the blocks it keeps: a cached
/// block comes out of this cache again, last in first out, while blocks on
/// the pool's free list keep the pool's order ([`FreeOrder`](crate::FreeOrder),
/// FIFO by default), and a block in one cache is not free for anyone else
/// ([`PoolStats::cached`](crate::PoolStats::cached) counts them). A process
/// killed with a full cache loses nothing: [`MemPool::reclaim_dead`] gives
/// its cached blocks back. See the `cache` module docs in the source for
/// the design.
///
/// # Examples
///
/// ```
/// let pool = shm_mempool::MemPool::new_heap(8, 64)?;
/// let cache = pool.cache(4)?;
/// let a = cache.get()?.id(); // taken from the pool (with one more), given back to the cache
/// assert_eq!(cache.get()?.id(), a); // the same block, from the cache
/// let stats = pool.stats();
/// assert_eq!((stats.free, stats.cached), (6, 2));
/// drop(cache); // everything back to the pool
/// assert_eq!(pool.check()?, 8);
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
pub struct BlockCache<'p, R: Region> {
    pool: &'p MemPool<R>,
    core: CacheCore,
    /// The process the cache was made in (a `fork`ed child's copy is inert).
    epoch: ForkEpoch,
    /// The blocks it caches are recorded as held by this process.
    _not_send: PhantomData<*const ()>,
}

impl<R: Region> std::fmt::Debug for BlockCache<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("capacity", &self.core.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl<R: Region> MemPool<R> {
    /// A cache of up to `capacity` free blocks (at least 1, at most the
    /// pool's block count) for the calling thread: see [`BlockCache`].
    ///
    /// # Errors
    ///
    /// [`PoolError::TooManyProcesses`] when this handle has no owner slot
    /// yet and the table is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(64, 64)?;
    /// let cache = pool.cache(32)?;
    /// for _ in 0..1000 {
    ///     let block = cache.get()?; // no locked instruction once warm
    ///     assert!(block.id().0 < 64);
    /// }
    /// assert_eq!(cache.len(), 16); // half its capacity, taken on the first miss
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn cache(&self, capacity: usize) -> Result<BlockCache<'_, R>, PoolError> {
        let slot = self.slot()?;
        let capacity = capacity.clamp(1, self.blocks());
        Ok(BlockCache {
            pool: self,
            core: CacheCore {
                entries: (0..capacity).map(|_| Cell::new((0, 0))).collect(),
                len: Cell::new(0),
                capacity,
                slot,
            },
            epoch: ForkEpoch::now(),
            _not_send: PhantomData,
        })
    }
}

impl<'p, R: Region> BlockCache<'p, R> {
    /// Takes a block: the one given back to this cache last, or, when the
    /// cache is empty, one from the pool (with up to half the capacity
    /// more, kept in the cache). Dropping the block gives it back to this
    /// cache; [`Block::into_id`] and a channel's `send` hand it on as
    /// usual. In a `fork`ed child, [`MemPool::get`].
    ///
    /// # Errors
    ///
    /// As [`MemPool::get`]: [`PoolError::Exhausted`] when neither the cache
    /// nor the pool's free list has a block (blocks in other caches are not
    /// free for this one).
    ///
    /// # Examples
    ///
    /// See [`BlockCache`].
    #[inline(always)]
    pub fn get(&self) -> Result<Block<'_, R>, PoolError> {
        if !self.epoch.is_current() {
            return self.in_child()?.ok_or_else(|| self.pool.exhausted());
        }
        match self.take()? {
            Some((i, held)) => Ok(self.hand_out(i, held)),
            None => Err(self.pool.exhausted()),
        }
    }

    /// As [`get`](BlockCache::get), but no block in the cache or the pool
    /// is `Ok(None)`, not an error (see [`MemPool::try_get`]).
    ///
    /// # Errors
    ///
    /// As [`get`](BlockCache::get), but never [`PoolError::Exhausted`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(1, 64)?;
    /// let cache = pool.cache(2)?;
    /// let block = cache.try_get()?.expect("a free block");
    /// assert!(cache.try_get()?.is_none());
    /// drop(block);
    /// assert!(cache.try_get()?.is_some());
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    #[inline(always)]
    pub fn try_get(&self) -> Result<Option<Block<'_, R>>, PoolError> {
        if !self.epoch.is_current() {
            return self.in_child();
        }
        Ok(self.take()?.map(|(i, held)| self.hand_out(i, held)))
    }

    /// What `get` and `try_get` share: a block from the cache, or from the
    /// pool when the cache is empty, as its index and the word written.
    /// Only the callers build a `Block` (see `MemPool::take_free` for why),
    /// and the cold refill returns no `Block` either.
    #[inline(always)]
    fn take(&self) -> Result<Option<(u32, u64)>, PoolError> {
        match self.core.take(self.pool) {
            Some(taken) => Ok(Some(taken)),
            None => self.refill(),
        }
    }

    #[inline(always)]
    fn hand_out(&self, i: u32, held: u64) -> Block<'_, R> {
        self.pool.reset_used(i);
        Block::cached(self.pool, BlockId(i), held, self.epoch, &self.core)
    }

    /// `try_get` in a `fork`ed child: the pool's own (out of line, so that
    /// the cached path stays short where it is inlined).
    #[cold]
    #[inline(never)]
    fn in_child(&self) -> Result<Option<Block<'_, R>>, PoolError> {
        self.pool.try_get()
    }

    /// `try_get` with an empty cache: takes up to half the capacity from the
    /// pool, returns the first and caches the rest.
    #[cold]
    #[inline(never)]
    fn refill(&self) -> Result<Option<(u32, u64)>, PoolError> {
        let want = self.core.capacity.div_ceil(2);
        let Some(first) = self.pool.pop_free(self.core.slot)? else {
            return Ok(None);
        };
        for _ in 1..want {
            match self.pool.pop_free(self.core.slot) {
                Ok(Some((i, w))) => self.core.give_back(self.pool, i, w),
                _ => break,
            }
        }
        Ok(Some(first))
    }

    /// Gives every cached block back to the pool (in the order they were
    /// cached), so that other handles can take them.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(4, 64)?;
    /// let cache = pool.cache(4)?;
    /// drop(cache.get()?);
    /// assert_eq!(pool.stats().cached, 2);
    /// cache.flush();
    /// assert_eq!((pool.stats().cached, pool.check()?), (0, 4));
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn flush(&self) {
        if self.epoch.is_current() {
            self.core.flush(self.pool);
        }
    }

    /// How many blocks the cache holds now.
    pub fn len(&self) -> usize {
        self.core.len.get()
    }

    /// Whether the cache holds no block.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most blocks it keeps.
    pub fn capacity(&self) -> usize {
        self.core.capacity
    }

    /// The pool it caches blocks of.
    pub fn pool(&self) -> &'p MemPool<R> {
        self.pool
    }
}

impl<R: Region> Drop for BlockCache<'_, R> {
    /// Gives the cached blocks back; in a `fork`ed child (the blocks are
    /// the parent's) and in a loom-killed handle, nothing.
    fn drop(&mut self) {
        if self.epoch.is_current() && !self.pool.loom_killed() {
            self.core.flush(self.pool);
        }
    }
}
