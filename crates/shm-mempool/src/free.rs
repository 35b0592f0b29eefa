//! The two free lists a pool can have, over the shared words `pool.rs` lays
//! out: a FIFO queue of block ids ([`FreeOrder::Fifo`], the default) and a
//! LIFO stack ([`FreeOrder::Lifo`]). See the [`pool`](crate::pool) module
//! docs for the design; this file holds the algorithms and their walks.
//!
//! Both only move block *indexes*; the block records (free, held, in
//! transit) are changed by `pool.rs`, before a push and after a pop.

use std::sync::atomic::Ordering;

use shm_segment::Region;

use crate::error::PoolError;
use crate::pool::{FreeOrder, MemPool};

/// A FIFO cell word: the stamp (high 32 bits) and a block index (low 32).
///
/// The cell at `p mod C` is *empty for position `p`* when its stamp is `p`,
/// *full for position `p`* when it is `p + 1` (the index is then the
/// block's), and becomes empty for `p + C` when a taker empties it (stamps
/// are positions truncated to 32 bits).
pub(crate) fn cell_word(stamp: u64, index: u32) -> u64 {
    ((stamp as u32 as u64) << 32) | u64::from(index)
}

fn stamp_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// What a walk of the free list found (while nobody changes the pool).
pub(crate) struct Walk {
    /// The listed blocks, in the order `get` would hand them out.
    pub(crate) listed: Vec<u32>,
}

impl<R: Region> MemPool<R> {
    /// Takes a block index off the free list: `Ok(None)` when it is empty.
    #[inline]
    pub(crate) fn pop_free(&self) -> Result<Option<u32>, PoolError> {
        match self.inner.order {
            FreeOrder::Fifo => self.fifo_pop(),
            FreeOrder::Lifo => self.lifo_pop(),
        }
    }

    /// Puts a block index on the free list. The caller has just made its
    /// record free. FIFO fails only on a corrupted queue (the block is then
    /// free but on no list: [`MemPool::recover_orphans`] finds it).
    #[inline]
    pub(crate) fn push_free(&self, i: u32) -> Result<(), PoolError> {
        match self.inner.order {
            FreeOrder::Fifo => self.fifo_push(i),
            FreeOrder::Lifo => {
                self.lifo_push(i);
                Ok(())
            }
        }
    }

    /// Lists the free blocks (at most `blocks` steps), or says how the list
    /// is corrupted. Meaningful while no other process changes the pool.
    pub(crate) fn walk_free(&self) -> Result<Walk, PoolError> {
        let listed = match self.inner.order {
            FreeOrder::Fifo => self.fifo_walk()?,
            FreeOrder::Lifo => self.lifo_walk()?,
        };
        Ok(Walk { listed })
    }

    // -----------------------------------------------------------------------
    // FIFO: a bounded queue whose cells each change by one CAS.

    fn fifo_pop(&self) -> Result<Option<u32>, PoolError> {
        let head = &self.control().head;
        let cap = self.inner.mask + 1;
        // SYNC POINT: Acquire pairs with the Release (or AcqRel) CASes that
        // move the head on, below: a head at `h` means the cells before `h`
        // were emptied, and this load sees those cells as emptied.
        let mut h = head.load(Ordering::Acquire);
        loop {
            let cell = self.cell(h);
            // SYNC POINT: Acquire pairs with the Release of the CAS that
            // filled the cell in `fifo_push`: the block's record (free) and
            // the bytes its last holder wrote are visible.
            let w = cell.load(Ordering::Acquire);
            let d = stamp_of(w).wrapping_sub((h as u32).wrapping_add(1));
            if d == 0 {
                // Full for position `h`: take it.
                let i = w as u32;
                if i >= self.inner.blocks {
                    return Err(self.corrupted(format!(
                        "free-queue cell {} (position {h}) names block {i}",
                        h & self.inner.mask
                    )));
                }
                // SYNC POINT: AcqRel: Acquire as for the load above;
                // Release hands the emptied cell to the putter one lap on.
                if cell
                    .compare_exchange(
                        w,
                        cell_word(h.wrapping_add(cap), 0),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    // A hint: if this fails, someone moved it on already.
                    let _ = head.compare_exchange(
                        h,
                        h.wrapping_add(1),
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                    return Ok(Some(i));
                }
                h = head.load(Ordering::Acquire);
            } else if d == u32::MAX {
                // Empty for position `h`: nothing was given back there yet.
                return Ok(None);
            } else if u64::from(d) == cap - 1 || u64::from(d) == cap {
                // Emptied for `h` already (and maybe filled again one lap
                // on): a taker stopped before moving the head. Move it on.
                let _ = head.compare_exchange(
                    h,
                    h.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                h = head.load(Ordering::Acquire);
            } else {
                // No correct peer leaves this stamp under an unchanged head
                // (a stalled reader sees the head moved on).
                let now = head.load(Ordering::Acquire);
                if now == h {
                    return Err(self.corrupted(format!(
                        "free-queue cell {} has stamp {} at the head (position {h})",
                        h & self.inner.mask,
                        stamp_of(w)
                    )));
                }
                h = now;
            }
        }
    }

    fn fifo_push(&self, i: u32) -> Result<(), PoolError> {
        let tail = &self.control().tail;
        let cap = self.inner.mask + 1;
        // SYNC POINT: Acquire pairs with the Release CASes that move the
        // tail on, below.
        let mut t = tail.load(Ordering::Acquire);
        loop {
            let cell = self.cell(t);
            // SYNC POINT: Acquire pairs with the AcqRel CAS that emptied the
            // cell in `fifo_pop`.
            let w = cell.load(Ordering::Acquire);
            let d = stamp_of(w).wrapping_sub(t as u32);
            if d == 0 {
                // Empty for position `t`: fill it.
                // SYNC POINT: Release pairs with the Acquire load in
                // `fifo_pop`: the record made free before this call, and
                // the bytes written before that, go with the index.
                if cell
                    .compare_exchange(
                        w,
                        cell_word(t.wrapping_add(1), i),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    let _ = tail.compare_exchange(
                        t,
                        t.wrapping_add(1),
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                    return Ok(());
                }
                t = tail.load(Ordering::Acquire);
            } else if d == 1 || u64::from(d) == cap {
                // Filled for `t` already (and maybe emptied since): a putter
                // stopped before moving the tail. Move it on.
                let _ = tail.compare_exchange(
                    t,
                    t.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
                t = tail.load(Ordering::Acquire);
            } else {
                // A cell still full from the lap before: the queue would hold
                // more ids than there are blocks, which no correct peer does.
                let now = tail.load(Ordering::Acquire);
                if now == t {
                    return Err(self.corrupted(format!(
                        "free-queue cell {} has stamp {} at the tail (position {t}), \
                         so block {i} could not be given back",
                        t & self.inner.mask,
                        stamp_of(w)
                    )));
                }
                t = now;
            }
        }
    }

    /// The queue from the head: cells a stopped taker emptied, then the full
    /// cells, then one empty cell; the tail must not be past the end.
    fn fifo_walk(&self) -> Result<Vec<u32>, PoolError> {
        let cap = self.inner.mask + 1;
        let blocks = u64::from(self.inner.blocks);
        let mut p = self.control().head.load(Ordering::Acquire);
        let start = p;
        // Cells emptied for `p` (stamp p + C, or p + C + 1 when filled again).
        loop {
            let d = stamp_of(self.cell(p).load(Ordering::Acquire)).wrapping_sub(p as u32);
            if (u64::from(d) != cap && u64::from(d) != cap + 1) || p.wrapping_sub(start) > cap {
                break;
            }
            p = p.wrapping_add(1);
        }
        let first = p;
        let mut listed = Vec::new();
        loop {
            let w = self.cell(p).load(Ordering::Acquire);
            let d = stamp_of(w).wrapping_sub(p as u32);
            if listed.len() as u64 == blocks {
                // Every block listed: the next cell is empty for `p`, or
                // (when C = blocks) the first listed one, full one lap back.
                if d == 1 {
                    return Err(
                        self.corrupted(format!("the free queue holds more than {blocks} entries"))
                    );
                }
                break;
            }
            if d == 0 {
                break;
            }
            if d != 1 {
                return Err(self.corrupted(format!(
                    "free-queue cell {} has stamp {} at position {p}, neither full nor empty",
                    p & self.inner.mask,
                    stamp_of(w)
                )));
            }
            let i = w as u32;
            if i >= self.inner.blocks {
                return Err(self.corrupted(format!(
                    "free-queue cell {} (position {p}) names block {i}",
                    p & self.inner.mask
                )));
            }
            listed.push(i);
            p = p.wrapping_add(1);
        }
        // The tail is at the end, or behind it: a giver killed between its
        // fill and moving the tail leaves it one behind, even behind the
        // head once that cell is taken. Never ahead of the end.
        let tail = self.control().tail.load(Ordering::Acquire);
        if p.wrapping_sub(tail) > p.wrapping_sub(first) + cap {
            return Err(self.corrupted(format!(
                "the free queue's tail {tail} lies outside its cells {first}..{p}"
            )));
        }
        Ok(listed)
    }

    // -----------------------------------------------------------------------
    // LIFO: a Treiber stack with a tagged head.

    fn lifo_pop(&self) -> Result<Option<u32>, PoolError> {
        let head = &self.control().stack;
        // SYNC POINT: Acquire pairs with the Release CAS in `lifo_push`: the
        // block's link and record, and the bytes its last holder wrote, are
        // visible.
        let mut current = head.load(Ordering::Acquire);
        loop {
            let link = current as u32;
            if link == 0 {
                return Ok(None);
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
                Ok(_) => return Ok(Some(link - 1)),
                Err(now) => current = now,
            }
        }
    }

    fn lifo_push(&self, i: u32) {
        let head = &self.control().stack;
        let mut current = head.load(Ordering::Relaxed);
        loop {
            self.meta(i).next.store(current as u32, Ordering::Relaxed);
            let tag = (current >> 32).wrapping_add(1);
            // SYNC POINT: Release pairs with the Acquire in `lifo_pop`.
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

    fn lifo_walk(&self) -> Result<Vec<u32>, PoolError> {
        let mut seen = vec![false; self.inner.blocks as usize];
        let mut listed = Vec::new();
        let mut link = self.control().stack.load(Ordering::Acquire) as u32;
        while link != 0 {
            if link > self.inner.blocks {
                return Err(self.corrupted(format!("the free list points at block {}", link - 1)));
            }
            let i = link - 1;
            if std::mem::replace(&mut seen[i as usize], true) {
                return Err(self.corrupted(format!("the free list has a cycle through block {i}")));
            }
            listed.push(i);
            link = self.meta(i).next.load(Ordering::Relaxed);
        }
        Ok(listed)
    }
}
