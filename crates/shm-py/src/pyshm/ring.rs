//! `shm.ring.Ring`: a lock-free FIFO of `Mempool` blocks.

use std::sync::{Arc, Weak};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use shm_ring::{MpmcRing, PopError, RingOptions};

use super::mempool::{claim, claim_in, type_name, HeldBlock, MempoolBlock, PoolCore};
use super::sharemem::ShareMem;
use super::{Extent, Mem};
use crate::common::positive;
use crate::errors::{self, RingEmpty, RingFull, ShmError};

/// At most this many entries (rounded up to a power of two).
const MAX_COUNT: u64 = 1 << 30;

struct RingCore {
    /// Dropped before `_extent` (it gives its lanes back in the mapping).
    ring: MpmcRing<u64, Mem>,
    _extent: Extent,
}

/// A lock-free FIFO in shared memory that passes ``Mempool`` blocks
/// between processes, as pyshm's ``Ring``: ``Ring(count, flags=0,
/// shm=None)`` holds ``count`` blocks (rounded up to a power of two; see
/// ``count``), in the ``ShareMem`` ``shm`` or in a mapping of its own. Make
/// it (and the pools whose blocks it carries) before ``os.fork()``. Any
/// process may ``enqueue`` and ``dequeue``; ``flags`` is accepted for
/// pyshm's signature and ignored.
///
/// An entry names the block's pool and index; ``dequeue`` checks both, so a
/// wrong entry is an error, never a wild access. A block in a ring belongs
/// to nobody until dequeued: the process that dequeues it holds it. So a
/// process killed while blocks wait in a ring loses none of them; one
/// killed inside ``enqueue`` (after handing the block on, before the push)
/// or inside ``dequeue`` (after the pop, before claiming the block) leaves
/// that one block owned by nobody, and the pool is one block short.
///
/// >>> import os, struct
/// >>> from shm import ShareMem, mempool, ring
/// >>> mem = ShareMem(1 << 20)
/// >>> mp = mempool.Mempool(8, 8, shm=mem)
/// >>> r = ring.Ring(8, shm=mem)
/// >>> pid = os.fork()
/// >>> if pid == 0:
/// ...     for i in range(3):
/// ...         buf = mp.get()
/// ...         struct.pack_into("=q", buf, 0, i)
/// ...         r.enqueue(buf)
/// ...     os._exit(0)
/// >>> _ = os.waitpid(pid, 0)
/// >>> got = [r.dequeue() for _ in range(3)]
/// >>> [struct.unpack_from("=q", b)[0] for b in got]
/// [0, 1, 2]
#[pyclass(module = "shm.ring", name = "Ring")]
pub(crate) struct Ring {
    core: Option<RingCore>,
    /// The pool of the last entry dequeued (most rings carry one pool's
    /// blocks): its tag, and the pool while it lives.
    last: Option<(u32, Weak<PoolCore>)>,
}

impl Ring {
    fn ring(&self) -> PyResult<&MpmcRing<u64, Mem>> {
        self.core
            .as_ref()
            .map(|c| &c.ring)
            .ok_or_else(|| PyValueError::new_err("Ring: operation on a cleaned-up ring"))
    }
}

#[pymethods]
impl Ring {
    /// ``Ring(count, flags=0, shm=None)``: room for ``count`` blocks (at
    /// least 1; rounded up to a power of two). ``ValueError`` for a bad
    /// count, ``ShmError`` when ``shm`` has no room left.
    ///
    /// >>> from shm import ring
    /// >>> ring.Ring(5).count
    /// 8
    #[new]
    #[pyo3(signature = (count, flags = 0, shm = None))]
    fn new(count: i64, flags: i64, shm: Option<PyRef<'_, ShareMem>>) -> PyResult<Self> {
        let _ = flags;
        let count = positive("Ring count", count, MAX_COUNT)?;
        let need = MpmcRing::<u64>::required_size(count);
        let extent = match &shm {
            Some(mem) => Extent::carve(mem.map()?, need)?,
            None => Extent::own(need)?,
        };
        let ring = MpmcRing::<u64, Mem>::create(
            extent.region()?,
            count,
            RingOptions::new().round_up(true),
        )
        .map_err(errors::ring)?;
        Ok(Ring {
            core: Some(RingCore {
                ring,
                _extent: extent,
            }),
            last: None,
        })
    }

    /// Hands ``buf`` (a block of a ``Mempool``) to whoever dequeues it; the
    /// block object is empty afterwards. Raises ``shm.RingFull`` when the
    /// ring is full (the block stays yours), ``BufferError`` while a
    /// memoryview of the block is alive, ``ValueError`` for a block given
    /// back already.
    ///
    /// >>> from shm import mempool, ring
    /// >>> mp, r = mempool.Mempool(2, 8), ring.Ring(1)
    /// >>> r.enqueue(mp.get())
    /// >>> try:
    /// ...     r.enqueue(mp.get())
    /// ... except ring.FullError as e:
    /// ...     print(type(e).__name__)
    /// RingFull
    #[pyo3(signature = (buf, flags = None))]
    fn enqueue(&self, buf: &Bound<'_, PyAny>, flags: Option<i64>) -> PyResult<()> {
        let _ = flags;
        let ring = self.ring()?;
        let cell = buf.cast::<MempoolBlock>().map_err(|_| {
            PyTypeError::new_err(format!(
                "Ring.enqueue: expected a block from Mempool.get or Ring.dequeue, got {}",
                type_name(buf)
            ))
        })?;
        let mut block = cell.try_borrow_mut()?;
        if ring.is_full() {
            return Err(full());
        }
        let held = block.take("Ring.enqueue")?;
        let core = Arc::clone(held.core());
        let id = held.into_id().map_err(|e| {
            ShmError::new_err(format!("Ring.enqueue: the block cannot be handed on: {e}"))
        })?;
        let entry = (u64::from(core.tag) << 32) | u64::from(id.0);
        if ring.push(entry).is_ok() {
            return Ok(());
        }
        // Filled up meanwhile: the block is in transit under an id nobody
        // else has; claim it back.
        let again = core.pool.from_id(id).map_err(|e| {
            ShmError::new_err(format!(
                "Ring.enqueue: the ring is full and the block cannot be taken back: {e}"
            ))
        })?;
        block.restore(HeldBlock::new(Arc::clone(&core), again));
        Err(full())
    }

    /// Takes the oldest block: a ``MempoolBlock`` now held by this process
    /// (give it back with ``Mempool.put``). ``size`` (pyshm's argument)
    /// sets how many bytes the buffer shows; by default the pool's block
    /// size. Raises ``shm.RingEmpty`` when the ring is empty, ``ShmError``
    /// for an entry that names no block of a pool this process has.
    ///
    /// >>> from shm import mempool, ring
    /// >>> mp, r = mempool.Mempool(2, 8), ring.Ring(2)
    /// >>> r.enqueue(mp.get())
    /// >>> len(r.dequeue(4))
    /// 4
    /// >>> try:
    /// ...     r.dequeue()
    /// ... except ring.EmptyError as e:
    /// ...     print(type(e).__name__)
    /// RingEmpty
    #[pyo3(signature = (size = None, flags = None))]
    fn dequeue(
        &mut self,
        py: Python<'_>,
        size: Option<i64>,
        flags: Option<i64>,
    ) -> PyResult<Py<MempoolBlock>> {
        let _ = flags;
        let size = match size {
            Some(n) if n < 0 => {
                return Err(PyValueError::new_err(format!(
                    "Ring.dequeue: size must not be negative, not {n}"
                )))
            }
            Some(n) => Some(n as usize),
            None => None,
        };
        let entry = match self.ring()?.pop() {
            Ok(v) => v,
            Err(PopError::Empty) => {
                return Err(RingEmpty::new_err("Ring.dequeue: the ring is empty"))
            }
            Err(e) => return Err(ShmError::new_err(format!("Ring.dequeue: {e}"))),
        };
        let (tag, id) = ((entry >> 32) as u32, entry as u32);
        if let Some((last, pool)) = &self.last {
            if *last == tag {
                if let Some(core) = pool.upgrade() {
                    return claim_in(py, &core, id, size);
                }
            }
        }
        let block = claim(py, tag, id, size)?;
        self.last = Some((tag, Arc::downgrade(block.try_borrow(py)?.pool())));
        Ok(block)
    }

    /// Entries the ring can hold (``count`` rounded up to a power of two).
    ///
    /// >>> from shm import ring
    /// >>> ring.Ring(4).count
    /// 4
    #[getter]
    fn count(&self) -> PyResult<usize> {
        Ok(self.ring()?.capacity())
    }

    /// Entries in the ring now (a snapshot).
    ///
    /// >>> from shm import mempool, ring
    /// >>> mp, r = mempool.Mempool(2, 8), ring.Ring(4)
    /// >>> r.enqueue(mp.get())
    /// >>> r.used_count, r.free_count, len(r)
    /// (1, 3, 1)
    #[getter]
    fn used_count(&self) -> PyResult<usize> {
        Ok(self.ring()?.len())
    }

    /// Free entries now (a snapshot). Example: see ``used_count``.
    #[getter]
    fn free_count(&self) -> PyResult<usize> {
        let ring = self.ring()?;
        Ok(ring.capacity().saturating_sub(ring.len()))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.used_count()
    }

    /// Drops this handle (pyshm's ``cleanup``); in the process that made
    /// the ring, its space in the ``ShareMem`` is freed. Blocks still in
    /// it stay in transit (see ``Mempool``). Call it when no other process
    /// uses the ring any more.
    ///
    /// >>> from shm import ring
    /// >>> r = ring.Ring(4)
    /// >>> r.cleanup()
    /// >>> r.closed
    /// True
    fn cleanup(&mut self) {
        self.core = None;
        self.last = None;
    }

    /// Whether ``cleanup()`` ran.
    ///
    /// >>> from shm import ring
    /// >>> ring.Ring(4).closed
    /// False
    #[getter]
    fn closed(&self) -> bool {
        self.core.is_none()
    }

    /// ``with Ring(...) as r:`` cleans up on exit.
    ///
    /// >>> from shm import ring
    /// >>> with ring.Ring(4) as r:
    /// ...     r.count
    /// 4
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Cleans up (see ``cleanup``).
    fn __exit__(
        &mut self,
        _ty: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.cleanup();
        false
    }

    fn __repr__(&self) -> String {
        match &self.core {
            Some(c) => format!("Ring(count={}, used={})", c.ring.capacity(), c.ring.len()),
            None => "Ring(closed)".into(),
        }
    }
}

/// A static message: producers that spin on a full ring pay no formatting.
fn full() -> PyErr {
    RingFull::new_err("Ring.enqueue: the ring is full; the block stays yours")
}
