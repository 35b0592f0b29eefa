//! pyshm's API: `ShareMem` (anonymous shared memory inherited across
//! `fork`), `shm.mempool.Mempool` (fixed-size blocks in it) and
//! `shm.ring.Ring` (a lock-free FIFO that passes those blocks between
//! processes), on the workspace's crates: `shm_segment::AnonShared`,
//! `shm_mempool::MemPool` (FIFO free order, as pyshm's) and
//! `shm_ring::MpmcRing<u64>`.
//!
//! Ownership across processes: a block taken with `get()` is held by the
//! taking process in the pool's owner table, so a process killed while it
//! holds blocks loses none (`Mempool.reclaim()` gives them back). `enqueue`
//! hands the block on as an id (`Block::into_id`, in transit, owned by
//! nobody) and pushes `pool tag << 32 | block id`; `dequeue` pops it, finds
//! the pool by its tag in this process's registry of pools (pools made
//! before `fork` are in both processes' registries), and claims the block
//! with `MemPool::from_id`, which checks the id's range and state. A value
//! that a buggy or hostile peer pushed is refused with an error; it never
//! reaches memory outside the pool.

use std::sync::Arc;

use pyo3::prelude::*;
use shm_segment::{AnonShared, ForkEpoch, Region, SubRegion};

use crate::errors::ShmError;

mod arena;
mod mempool;
mod ring;
mod sharemem;

use arena::{Arena, ArenaError};

/// Where pools and rings live: a range of an anonymous mapping.
pub(crate) type Mem = SubRegion<Arc<AnonShared>>;

/// The bytes a pool or ring occupies. Made in a `ShareMem`, the space goes
/// back to its allocator when the last handle in the creating process
/// drops (a `fork`ed child's copy frees nothing: the creator owns it).
pub(crate) struct Extent {
    map: Arc<AnonShared>,
    offset: usize,
    len: usize,
    /// Carved out of a `ShareMem`'s allocator (false: a mapping of its own).
    carved: bool,
    epoch: ForkEpoch,
}

impl Extent {
    /// A mapping of its own, of `len` bytes (no `shm=` given).
    pub(crate) fn own(len: usize) -> PyResult<Self> {
        let map = AnonShared::new(len).map_err(crate::errors::segment)?;
        Ok(Extent {
            map: Arc::new(map),
            offset: 0,
            len,
            carved: false,
            epoch: ForkEpoch::now(),
        })
    }

    /// `len` bytes carved out of the `ShareMem` mapping `map`.
    pub(crate) fn carve(map: &Arc<AnonShared>, len: usize) -> PyResult<Self> {
        let (offset, len) = Arena::of(map)
            .and_then(|a| a.alloc(len))
            .map_err(arena_err)?;
        Ok(Extent {
            map: Arc::clone(map),
            offset,
            len,
            carved: true,
            epoch: ForkEpoch::now(),
        })
    }

    /// The extent as a region of its own.
    pub(crate) fn region(&self) -> PyResult<Mem> {
        SubRegion::new(Arc::clone(&self.map), self.offset, self.len).map_err(crate::errors::segment)
    }
}

impl Drop for Extent {
    fn drop(&mut self) {
        if self.carved && self.epoch.is_current() {
            // Unpublish the structure's header first, so that a pool or ring
            // made here later may be laid out (creating never overwrites a
            // published header).
            let _ = self.map.fill(self.offset, shm_segment::HEADER_SIZE, 0);
            if let Ok(arena) = Arena::of(&self.map) {
                let _ = arena.free(self.offset);
            }
        }
    }
}

pub(crate) fn arena_err(e: ArenaError) -> PyErr {
    match e {
        ArenaError::Segment(e) => crate::errors::segment(e),
        other => ShmError::new_err(other.to_string()),
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<sharemem::ShareMem>()?;
    m.add_class::<mempool::Mempool>()?;
    m.add_class::<mempool::MempoolBlock>()?;
    m.add_class::<ring::Ring>()?;
    Ok(())
}
