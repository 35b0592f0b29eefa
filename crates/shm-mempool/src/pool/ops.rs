//! Taking and giving back blocks, handing them on by id, owner slots, and
//! reclaiming what dead processes left: the operations of a [`MemPool`].

use super::*;

/// The process-local cache of a handle's owner slot: a hash of the
/// `ProcessId` word it was claimed for (high 56 bits) and the slot + 1 (low
/// 8 bits), 0 when none. A `fork`ed child's `ProcessId` differs, so its
/// copy of the cache misses and the child claims a slot of its own.
pub(crate) fn slot_key(owner: u64) -> u64 {
    (owner ^ (owner >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) & !0xFF
}

/// What the loom models need to stand in for a second process: an owner
/// word of its own, which the liveness check calls dead, and a countdown
/// of shared-memory writes after which the handle "is killed" (panics with
/// [`LoomKilled`]).
#[cfg(loom)]
#[derive(Default)]
pub(crate) struct LoomHooks {
    /// The owner word to claim a slot with instead of this process's; 0 =
    /// this process's.
    pub(crate) fake_owner: std::sync::atomic::AtomicU64,
    /// Writes left before the kill; 0 = never.
    pub(crate) kill_after: std::sync::atomic::AtomicU32,
    /// Set when the countdown fired: the handle's drop (a destructor a
    /// killed process never runs) then writes nothing.
    pub(crate) killed: std::sync::atomic::AtomicBool,
}

/// The owner word of the loom models' "other process" (never alive).
#[cfg(loom)]
pub(crate) const LOOM_DEAD_OWNER: u64 = 0x00AB_CDEF_0000_0007;

/// The panic payload of a handle killed by the loom models' countdown.
#[cfg(loom)]
#[doc(hidden)]
#[derive(Debug)]
pub struct LoomKilled;

pub(crate) struct Inner<R> {
    pub(crate) region: R,
    pub(crate) control: *const Control,
    pub(crate) owners: *const AtomicU64,
    pub(crate) metas: *const Meta,
    pub(crate) cells: *const AtomicU64,
    pub(crate) sent: *const AtomicU64,
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
    pub(crate) slot_cache: std::sync::atomic::AtomicU64,
    #[cfg(loom)]
    pub(crate) hooks: LoomHooks,
}

// SAFETY: the pointers point into `region`, owned here; shared state is
// reached only through atomics, and block bytes only by the block's holder.
unsafe impl<R: Send> Send for Inner<R> {}
// SAFETY: as above.
unsafe impl<R: Sync> Sync for Inner<R> {}

impl<R> Inner<R> {
    #[inline]
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
            if state_of(w) == HELD && slot_of(w) == slot {
                return;
            }
        }
        // SAFETY: `slot < OWNER_SLOTS` (it came from `claim_slot`), and
        // `wire` checked that the table fits; atomics only.
        let owner = unsafe { &*self.owners.add(slot as usize) };
        let _ = owner.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
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

    #[inline]
    fn index(&self, op: &'static str, id: BlockId) -> Result<u32, PoolError> {
        if id.0 < self.inner.blocks {
            Ok(id.0)
        } else {
            Err(self.out_of_range(op, id))
        }
    }

    #[cold]
    fn out_of_range(&self, op: &'static str, id: BlockId) -> PoolError {
        PoolError::OutOfRange {
            op,
            target: self.target(),
            id,
            blocks: self.inner.blocks as usize,
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

    /// Whether the loom models' countdown killed this handle (a killed
    /// process runs no destructor); always false outside them.
    #[inline(always)]
    pub(crate) fn loom_killed(&self) -> bool {
        #[cfg(loom)]
        {
            self.inner.hooks.killed.load(Ordering::Relaxed)
        }
        #[cfg(not(loom))]
        {
            false
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
    #[inline(always)]
    pub fn get(&self) -> Result<Block<'_, R>, PoolError> {
        match self.take_free()? {
            Some((i, word, epoch)) => Ok(Block::new(self, BlockId(i), word, epoch)),
            None => Err(self.exhausted()),
        }
    }

    /// As [`get`](MemPool::get), but no free block is `Ok(None)`, not an
    /// error: the call for a retry loop. It allocates nothing when it fails
    /// ([`PoolError::Exhausted`] names the pool's segment, which costs a
    /// `String` per failed `get`).
    ///
    /// # Errors
    ///
    /// As [`get`](MemPool::get), but never [`PoolError::Exhausted`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(1, 64)?;
    /// let block = pool.try_get()?.expect("a free block");
    /// assert!(pool.try_get()?.is_none());
    /// drop(block);
    /// assert!(pool.try_get()?.is_some());
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    #[inline(always)]
    pub fn try_get(&self) -> Result<Option<Block<'_, R>>, PoolError> {
        Ok(self
            .take_free()?
            .map(|(i, word, epoch)| Block::new(self, BlockId(i), word, epoch)))
    }

    /// What `get` and `try_get` share: a free block taken for this process,
    /// as its index, the word written and the epoch. Each builds its `Block`
    /// itself: one built here and unwrapped there would be copied through
    /// the stack in loads wider than the stores that wrote it, which the
    /// CPU cannot forward (a stall per call).
    #[inline(always)]
    fn take_free(&self) -> Result<Option<(u32, u64, ForkEpoch)>, PoolError> {
        let epoch = ForkEpoch::now();
        let slot = self.slot()?;
        let Some((i, word)) = self.pop_free(slot)? else {
            return Ok(None);
        };
        self.reset_used(i);
        Ok(Some((i, word, epoch)))
    }

    pub(crate) fn exhausted(&self) -> PoolError {
        PoolError::Exhausted {
            target: self.target(),
            blocks: self.inner.blocks as usize,
        }
    }

    /// A fresh block has `used()` 0. Most were given back with 0 (plain
    /// pool use never sets it): skip the store then.
    #[inline]
    pub(crate) fn reset_used(&self, i: u32) {
        let used = &self.meta(i).used;
        if used.load(Ordering::Relaxed) != 0 {
            used.store(0, Ordering::Relaxed);
        }
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
    #[inline]
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
        let mut taken = [false; OWNER_SLOTS];
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
                // Held through a `Block` or lying in a `BlockCache`: both
                // are the dead process's.
                let s = slot_of(w);
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
