//! `shm.mempool.Mempool` and its blocks (`MempoolBlock`).

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::sync::{Arc, Mutex, Weak};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PySlice};
use shm_mempool::{Block, BlockId, MemPool, PoolError, PoolOptions};
use shm_segment::copy::copy_from_shared_raw;
use shm_segment::{ForkEpoch, Region};

use super::sharemem::ShareMem;
use super::{Extent, Mem};
use crate::common::{fill_view, new_bytes, positive, random_u32, Exports};
use crate::errors::{self, PoolEmpty, ShmError};

/// At most this many blocks per pool (the crate's limit).
const MAX_COUNT: u64 = 1 << 31;
/// At most this many bytes of blocks per pool (so that its size is addressable).
const MAX_BYTES: u128 = 1 << 46;

/// A pool in this process: the crate's handle, the size its blocks show,
/// its tag in ring entries, and the space it occupies (freed after the
/// handle, when the creating process's last reference drops).
pub(crate) struct PoolCore {
    pub(crate) pool: MemPool<Mem>,
    /// Bytes a block shows (what was asked for; the crate rounds up to 64).
    pub(crate) size: usize,
    /// The pool's name in ring entries (random, nonzero; the same in every
    /// process that inherited the pool through `fork`).
    pub(crate) tag: u32,
    _extent: Extent,
}

/// This process's pools by tag. Locked only with the GIL held, so a `fork`
/// (which Python makes with the GIL held) never copies it locked.
static POOLS: Mutex<BTreeMap<u32, Weak<PoolCore>>> = Mutex::new(BTreeMap::new());

fn pools() -> std::sync::MutexGuard<'static, BTreeMap<u32, Weak<PoolCore>>> {
    POOLS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pool of this process with tag `tag`, if it is still alive here.
pub(crate) fn pool_by_tag(tag: u32) -> Option<Arc<PoolCore>> {
    pools().get(&tag).and_then(Weak::upgrade)
}

impl Drop for PoolCore {
    fn drop(&mut self) {
        let mut pools = pools();
        if pools.get(&self.tag).is_some_and(|w| w.strong_count() == 0) {
            pools.remove(&self.tag);
        }
    }
}

impl PoolCore {
    fn create(count: usize, size: usize, extent: Extent) -> PyResult<Arc<Self>> {
        let region = extent.region()?;
        let pool =
            MemPool::create_with(region, count, size, PoolOptions::new()).map_err(errors::pool)?;
        let mut registry = pools();
        let tag = loop {
            let tag = random_u32();
            if tag != 0 && registry.get(&tag).is_none_or(|w| w.strong_count() == 0) {
                break tag;
            }
        };
        let core = Arc::new(PoolCore {
            pool,
            size,
            tag,
            _extent: extent,
        });
        registry.insert(tag, Arc::downgrade(&core));
        Ok(core)
    }
}

/// A block held by this process: the crate's guard, and the pool it
/// borrows from, kept alive for as long as the guard.
pub(crate) struct HeldBlock {
    /// `'static` stands for "as long as `core`": the guard borrows
    /// `core.pool`, which lives in the `Arc`'s allocation (it never moves)
    /// and is dropped only after this field (see `Drop`).
    block: Option<Block<'static, Mem>>,
    core: Arc<PoolCore>,
    /// Where the block's bytes are (fixed for the block's life).
    ptr: usize,
    epoch: ForkEpoch,
}

// SAFETY: `Block` is `!Send` because the pool records it as held by this
// *process*; every thread of the process is that owner. Its operations are
// atomics on shared words (drop: one CAS) and reads of its own fields, and
// the Python object that holds it serializes access (PyO3's borrow flag).
unsafe impl Send for HeldBlock {}
// SAFETY: as above; `&HeldBlock` gives only reads of plain fields.
unsafe impl Sync for HeldBlock {}

impl Drop for HeldBlock {
    fn drop(&mut self) {
        // The guard first (it gives the block back to `core.pool`), while
        // `core` still keeps the pool alive.
        drop(self.block.take());
    }
}

impl HeldBlock {
    pub(crate) fn new(core: Arc<PoolCore>, block: Block<'_, Mem>) -> Self {
        let epoch = ForkEpoch::now();
        let ptr = block.as_ptr() as usize;
        // SAFETY: only the lifetime changes. The guard borrows `core.pool`,
        // which lives inside the `Arc` allocation that `core` (stored next to
        // it) keeps alive and in place; `Drop` drops the guard before `core`,
        // and `into_id` consumes the guard while `self.core` is alive.
        let block = unsafe { std::mem::transmute::<Block<'_, Mem>, Block<'static, Mem>>(block) };
        HeldBlock {
            block: Some(block),
            core,
            ptr,
            epoch,
        }
    }

    pub(crate) fn core(&self) -> &Arc<PoolCore> {
        &self.core
    }

    /// Hands the block on as an id (in transit, owned by nobody).
    pub(crate) fn into_id(mut self) -> Result<BlockId, PoolError> {
        let block = self.block.take().expect("a held block has its guard");
        block.into_id()
    }
}

/// A fixed-size pool of blocks in shared memory, as pyshm's ``Mempool``:
/// ``Mempool(count, size, flags=0, shm=None)`` makes ``count`` blocks of
/// ``size`` bytes in the ``ShareMem`` ``shm`` (or in an anonymous mapping of
/// its own when ``shm`` is not given). Make it before ``os.fork()``: both
/// processes then take (``get``) and give back (``put``) blocks of the same
/// pool. Free blocks come back first in, first out.
///
/// Each block taken is recorded as held by the taking process: a process
/// killed while holding blocks loses none (``reclaim()`` gives them back).
/// A ``MempoolBlock`` dropped without ``put`` goes back to the pool too.
/// ``flags`` is accepted for pyshm's signature and ignored: every operation
/// is safe with many producers and consumers.
///
/// Example (pyshm's, with ``from shm import ...``)::
///
///     >>> import os, struct
///     >>> from shm import ShareMem, mempool
///     >>> mem = ShareMem(64 * 1024 * 1024)
///     >>> count = 4
///     >>> mp = mempool.Mempool(count, 4, shm=mem)
///     >>> pid = os.fork()
///     >>> if pid == 0:
///     ...     for i in range(count):
///     ...         buf = mp.get()
///     ...         struct.pack_into("=i", buf, 0, i)
///     ...         mp.put(buf)
///     ...     os._exit(0)
///     >>> cid, status = os.wait()
///     >>> [struct.unpack_from("=i", mp.get())[0] for _ in range(count)]
///     [0, 1, 2, 3]
///     >>> mp.cleanup()
#[pyclass(module = "shm.mempool", name = "Mempool")]
pub(crate) struct Mempool {
    core: Option<Arc<PoolCore>>,
}

impl Mempool {
    fn core(&self) -> PyResult<&Arc<PoolCore>> {
        self.core
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("Mempool: operation on a cleaned-up pool"))
    }
}

/// As [`errors::pool`], but an empty pool raises with a static message
/// (`get` takes blocks with `try_get`, which builds no error for it).
fn pool_err(e: PoolError) -> PyErr {
    match e {
        PoolError::Exhausted { .. } => empty(),
        other => errors::pool(other),
    }
}

/// `shm.PoolEmpty`, with a static message: callers that spin on an empty
/// pool pay no formatting.
fn empty() -> PyErr {
    PoolEmpty::new_err(
        "Mempool.get: every block of the pool is taken (give some back with put, or make the \
         pool larger)",
    )
}

#[pymethods]
impl Mempool {
    /// ``Mempool(count, size, flags=0, shm=None)``: ``count`` blocks of
    /// ``size`` bytes (both at least 1). ``ValueError`` for a bad count or
    /// size; ``ShmError`` when ``shm`` has no room left.
    ///
    /// >>> from shm import mempool
    /// >>> mp = mempool.Mempool(8, 100)
    /// >>> mp.count, mp.size, mp.free_count
    /// (8, 100, 8)
    #[new]
    #[pyo3(signature = (count, size, flags = 0, shm = None))]
    fn new(count: i64, size: i64, flags: i64, shm: Option<PyRef<'_, ShareMem>>) -> PyResult<Self> {
        let _ = flags;
        let count = positive("Mempool count", count, MAX_COUNT)?;
        let size = positive("Mempool block size", size, u64::from(u32::MAX))?;
        let total = (count as u128) * (size.next_multiple_of(shm_mempool::BLOCK_ALIGN) as u128);
        if total > MAX_BYTES {
            return Err(PyValueError::new_err(format!(
                "Mempool: {count} blocks of {size} bytes make {total} bytes, more than the \
                 {MAX_BYTES} a pool may have"
            )));
        }
        let need = MemPool::required_size(count, size);
        let extent = match &shm {
            Some(mem) => Extent::carve(mem.map()?, need)?,
            None => Extent::own(need)?,
        };
        Ok(Mempool {
            core: Some(PoolCore::create(count, size, extent)?),
        })
    }

    /// Takes a free block: a writable buffer of ``size`` bytes (use it with
    /// ``struct.pack_into``/``unpack_from``, ``memoryview``, numpy; no
    /// copy). Raises ``shm.PoolEmpty`` (a ``shm.RingEmpty``) when every
    /// block is taken.
    ///
    /// >>> import struct
    /// >>> from shm import mempool
    /// >>> mp = mempool.Mempool(1, 4)
    /// >>> buf = mp.get()
    /// >>> struct.pack_into("=i", buf, 0, 42)
    /// >>> struct.unpack_from("=i", buf)
    /// (42,)
    #[pyo3(signature = (flags = None))]
    fn get(&self, py: Python<'_>, flags: Option<i64>) -> PyResult<Py<MempoolBlock>> {
        let _ = flags;
        let core = self.core()?;
        let block = core.pool.try_get().map_err(pool_err)?.ok_or_else(empty)?;
        let held = HeldBlock::new(Arc::clone(core), block);
        let len = core.size;
        Py::new(py, MempoolBlock::new(held, len))
    }

    /// Gives a block back. ``ValueError`` if it was given back already (or
    /// enqueued) or belongs to another pool, ``shm.ShmError`` if it was
    /// taken by the parent before ``fork``, ``BufferError`` while a
    /// memoryview of it is alive.
    ///
    /// >>> from shm import mempool
    /// >>> mp = mempool.Mempool(2, 8)
    /// >>> buf = mp.get()
    /// >>> mp.put(buf)
    /// >>> mp.free_count
    /// 2
    #[pyo3(signature = (buf, flags = None))]
    fn put(&self, buf: &Bound<'_, PyAny>, flags: Option<i64>) -> PyResult<()> {
        let _ = flags;
        let core = self.core()?;
        let mut block = buf
            .cast::<MempoolBlock>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "Mempool.put: expected a block from Mempool.get or Ring.dequeue, got {}",
                    type_name(buf)
                ))
            })?
            .try_borrow_mut()?;
        let held = block.take("Mempool.put")?;
        if !Arc::ptr_eq(held.core(), core) {
            let id = block.id;
            block.inner = Some(held);
            return Err(PyValueError::new_err(format!(
                "Mempool.put: block {id} belongs to another pool"
            )));
        }
        drop(held); // gives it back
        Ok(())
    }

    /// Blocks in the pool.
    ///
    /// >>> from shm import mempool
    /// >>> mempool.Mempool(3, 8).count
    /// 3
    #[getter]
    fn count(&self) -> PyResult<usize> {
        Ok(self.core()?.pool.blocks())
    }

    /// Bytes a block shows (``len(block)``).
    ///
    /// >>> from shm import mempool
    /// >>> mempool.Mempool(3, 8).size
    /// 8
    #[getter]
    fn size(&self) -> PyResult<usize> {
        Ok(self.core()?.size)
    }

    /// Bytes a block really has (``size`` rounded up to 64).
    ///
    /// >>> from shm import mempool
    /// >>> mempool.Mempool(3, 8).block_size
    /// 64
    #[getter]
    fn block_size(&self) -> PyResult<usize> {
        Ok(self.core()?.pool.block_size())
    }

    /// Free blocks (a snapshot: other processes take and give back too).
    ///
    /// >>> from shm import mempool
    /// >>> mp = mempool.Mempool(3, 8)
    /// >>> buf = mp.get()
    /// >>> mp.free_count, mp.used_count
    /// (2, 1)
    #[getter]
    fn free_count(&self) -> PyResult<usize> {
        Ok(self.core()?.pool.stats().free)
    }

    /// Blocks not free: held by a process, or in a ring.
    ///
    /// Example: see ``free_count``.
    #[getter]
    fn used_count(&self) -> PyResult<usize> {
        let stats = self.core()?.pool.stats();
        Ok(stats.blocks - stats.free)
    }

    /// Gives back every block held by a process that no longer exists
    /// (killed, or exited without giving its blocks back); returns their
    /// indexes. Safe at any time, while others work. Blocks that were in a
    /// ring are not held by anyone: they stay in the ring.
    ///
    /// >>> import os, signal
    /// >>> from shm import mempool
    /// >>> mp = mempool.Mempool(2, 8)
    /// >>> pid = os.fork()
    /// >>> if pid == 0:
    /// ...     held = [mp.get(), mp.get()]
    /// ...     os.kill(os.getpid(), signal.SIGKILL)
    /// >>> _ = os.waitpid(pid, 0)
    /// >>> sorted(mp.reclaim()), mp.free_count
    /// ([0, 1], 2)
    fn reclaim(&self) -> PyResult<Vec<u32>> {
        let ids = self.core()?.pool.reclaim_dead().map_err(pool_err)?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    /// Checks the pool's shared lists against its block records (meaningful
    /// while no other process changes it); returns the number of free
    /// blocks, or raises ``ShmError`` saying what is wrong.
    ///
    /// >>> from shm import mempool
    /// >>> mempool.Mempool(3, 8).check()
    /// 3
    fn check(&self) -> PyResult<usize> {
        self.core()?.pool.check().map_err(pool_err)
    }

    /// Drops this handle (pyshm's ``cleanup``). Blocks still alive keep the
    /// pool's memory; in the process that made the pool, its space in the
    /// ``ShareMem`` is freed once they are gone. Call it when no other
    /// process uses the pool any more.
    ///
    /// >>> from shm import mempool
    /// >>> mp = mempool.Mempool(3, 8)
    /// >>> mp.cleanup()
    /// >>> mp.closed
    /// True
    fn cleanup(&mut self) {
        self.core = None;
    }

    /// Whether ``cleanup()`` ran.
    ///
    /// >>> from shm import mempool
    /// >>> mempool.Mempool(3, 8).closed
    /// False
    #[getter]
    fn closed(&self) -> bool {
        self.core.is_none()
    }

    /// ``with Mempool(...) as mp:`` cleans up on exit.
    ///
    /// >>> from shm import mempool
    /// >>> with mempool.Mempool(3, 8) as mp:
    /// ...     len(mp.get())
    /// 8
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
            Some(c) => format!("Mempool(count={}, size={})", c.pool.blocks(), c.size),
            None => "Mempool(closed)".into(),
        }
    }
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

/// A block of a ``Mempool``: a writable buffer of the pool's ``size``
/// bytes in shared memory (``get`` and ``Ring.dequeue`` return one). Use it
/// wherever a buffer goes (``struct.pack_into``, ``memoryview``, numpy);
/// ``block[i]`` and ``block[a:b]`` read bytes, and assign them. Give it back
/// with ``Mempool.put`` or hand it to another process with
/// ``Ring.enqueue``; if dropped, it goes back to the pool. After ``put`` or
/// ``enqueue`` it is empty: using it raises ``ValueError``; one inherited
/// across ``fork`` is the parent's: using it raises ``shm.ShmError``. While
/// a memoryview of it is alive, ``put`` and ``enqueue`` raise
/// ``BufferError``.
///
/// >>> from shm import mempool
/// >>> mp = mempool.Mempool(2, 8)
/// >>> buf = mp.get()
/// >>> buf[0:5] = b"hello"
/// >>> bytes(buf[0:5]), len(buf), buf.index
/// (b'hello', 8, 0)
#[pyclass(module = "shm.mempool", name = "MempoolBlock")]
pub(crate) struct MempoolBlock {
    inner: Option<HeldBlock>,
    /// The block's pool, kept for the object's whole life (not only while
    /// the block is held): NumPy's ``ndarray(shape, buffer=block)`` releases
    /// the buffer at once and keeps only this object, so `exports` cannot
    /// see such an array, and the pool's memory must stay mapped (and its
    /// space in a ``ShareMem`` unused by others) while the object lives.
    pool: Arc<PoolCore>,
    /// Bytes the buffer shows.
    len: usize,
    id: u32,
    exports: Exports,
}

impl MempoolBlock {
    pub(crate) fn new(held: HeldBlock, len: usize) -> Self {
        let id = held.block.as_ref().map_or(0, |b| b.id().0);
        MempoolBlock {
            pool: Arc::clone(held.core()),
            inner: Some(held),
            len,
            id,
            exports: Exports::default(),
        }
    }

    /// The held block, checked usable here: not given back (`ValueError`),
    /// taken in this process, not inherited across `fork` (`shm.ShmError`).
    fn live(&self, op: &str) -> PyResult<&HeldBlock> {
        let held = self.inner.as_ref().ok_or_else(|| {
            PyValueError::new_err(format!(
                "{op}: block {} was given back (put) or enqueued already",
                self.id
            ))
        })?;
        if !held.epoch.is_current() {
            return Err(ShmError::new_err(format!(
                "{op}: block {} was taken by the parent before fork(); it is the parent's, \
                 take blocks of this process with Mempool.get",
                self.id
            )));
        }
        Ok(held)
    }

    /// Takes the held block out (for `put` and `enqueue`), after the checks.
    pub(crate) fn take(&mut self, op: &str) -> PyResult<HeldBlock> {
        self.live(op)?;
        self.exports.refuse(&format!("{op} of block {}", self.id))?;
        Ok(self.inner.take().expect("checked by live"))
    }

    /// The block's pool.
    pub(crate) fn pool(&self) -> &Arc<PoolCore> {
        &self.pool
    }

    /// Puts a held block back (an `enqueue` that did not happen).
    pub(crate) fn restore(&mut self, held: HeldBlock) {
        self.inner = Some(held);
    }

    /// A memoryview of the block, for indexing (released by the caller).
    fn view<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        PyMemoryView::from(slf.as_any())
    }
}

/// Releases a memoryview (and so its export) now, not at garbage collection.
fn release(view: &Bound<'_, PyAny>) {
    let _ = view.call_method0("release");
}

#[pymethods]
impl MempoolBlock {
    /// The block's index in its pool.
    ///
    /// >>> from shm import mempool
    /// >>> mempool.Mempool(2, 8).get().index
    /// 0
    #[getter]
    fn index(&self) -> u32 {
        self.id
    }

    /// Whether the block is still this object's (not given back or
    /// enqueued).
    ///
    /// >>> from shm import mempool
    /// >>> mp = mempool.Mempool(2, 8)
    /// >>> buf = mp.get()
    /// >>> mp.put(buf)
    /// >>> buf.held
    /// False
    #[getter]
    fn held(&self) -> bool {
        self.inner.is_some()
    }

    /// A copy of the block's bytes.
    ///
    /// >>> from shm import mempool
    /// >>> mempool.Mempool(1, 4).get().tobytes()
    /// b'\x00\x00\x00\x00'
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let held = self.live("MempoolBlock.tobytes")?;
        let ptr = held.ptr as *const u8;
        let len = self.len;
        new_bytes(py, len, |out| {
            // SAFETY: `ptr..ptr + len` is this held block (len <= block
            // size), mapped while `held` keeps its pool alive, and others
            // may only touch it atomically; `out` is a fresh Python bytes
            // object of `len` bytes, private.
            unsafe { copy_from_shared_raw(ptr, out, len) };
            Ok(())
        })
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// ``block[i]`` (an int) or ``block[a:b]`` (bytes, a copy).
    fn __getitem__<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.try_borrow()?.live("MempoolBlock[...]")?;
        let view = Self::view(slf)?;
        let item = view.get_item(key);
        let out = match item {
            Ok(v) if key.is_instance_of::<PySlice>() => {
                let bytes = v.call_method0("tobytes");
                release(&v);
                bytes
            }
            other => other,
        };
        release(view.as_any());
        out
    }

    /// ``block[i] = byte`` or ``block[a:b] = bytes`` (of the same length).
    fn __setitem__(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        slf.try_borrow()?.live("MempoolBlock[...] =")?;
        let view = Self::view(slf)?;
        let out = view.set_item(key, value);
        release(view.as_any());
        out
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            Some(_) => format!("<MempoolBlock {} of {} bytes>", self.id, self.len),
            None => format!("<MempoolBlock {} (given back)>", self.id),
        }
    }

    /// The buffer protocol: the block's bytes, writable.
    ///
    /// # Safety
    ///
    /// `view` is a valid `Py_buffer` to fill (CPython's contract).
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.try_borrow()?;
        let held = this.live("MempoolBlock buffer")?;
        // SAFETY: CPython's view; `ptr..ptr + len` is this block's memory
        // (len <= block size), mapped while the pool lives, which this
        // object keeps alive (`pool`); the block stays this process's while
        // `exports` (bumped below) is not zero: `put`/`enqueue` refuse.
        unsafe {
            fill_view(
                view,
                flags,
                held.ptr as *mut u8,
                this.len,
                false,
                slf.as_any(),
            )?
        };
        this.exports.add();
        Ok(())
    }

    /// Counts the view's release.
    ///
    /// # Safety
    ///
    /// Called by CPython for a view `__getbuffer__` filled.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.sub();
    }
}

/// Claims block `id` of the pool tagged `tag` (an entry read from a ring),
/// showing `len` bytes (`None`: the pool's size).
pub(crate) fn claim(
    py: Python<'_>,
    tag: u32,
    id: u32,
    len: Option<usize>,
) -> PyResult<Py<MempoolBlock>> {
    let core = pool_by_tag(tag).ok_or_else(|| {
        ShmError::new_err(format!(
            "Ring.dequeue: the entry names pool tag {tag:#010x}, which this process does not \
             have (pools must be made before fork, and alive here); block {id} stays unclaimed"
        ))
    })?;
    claim_in(py, &core, id, len)
}

pub(crate) fn claim_in(
    py: Python<'_>,
    core: &Arc<PoolCore>,
    id: u32,
    len: Option<usize>,
) -> PyResult<Py<MempoolBlock>> {
    let block = core.pool.from_id(BlockId(id)).map_err(|e| {
        ShmError::new_err(format!(
            "Ring.dequeue: the entry's block cannot be claimed: {e}"
        ))
    })?;
    let held = HeldBlock::new(Arc::clone(core), block);
    let len = match len {
        None => core.size,
        Some(n) if n <= core.pool.block_size() => n,
        Some(n) => {
            drop(held); // back to the pool
            return Err(PyValueError::new_err(format!(
                "Ring.dequeue: size {n} is larger than the block ({} bytes); the block went \
                 back to its pool",
                core.pool.block_size()
            )));
        }
    };
    Py::new(py, MempoolBlock::new(held, len))
}
