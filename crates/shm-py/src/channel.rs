//! `shm.Channel`: `shm_mempool::Channel` (a block pool and its queue of
//! sent blocks in one POSIX segment) for Python, with blocks handed out as
//! writable buffers over the shared memory (no copy), and
//! `shm.ChannelBlock`, a held block.

use std::os::raw::c_int;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use shm_mempool::{Block, Channel as RustChannel, ChannelOptions, RecvError, SendError};
use shm_segment::copy::{copy_from_shared_raw, copy_shared_to_shared};
use shm_segment::{ForkEpoch, Kind, Region, Segment, SubRegion};

use crate::common::{closed, fill_view, new_bytes, non_negative, wait_loop, Borrowed, Exports};
use crate::errors::{self, PoolEmpty, ShmError};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Channel>()?;
    m.add_class::<ChannelBlock>()?;
    Ok(())
}

type Part = SubRegion<Arc<Segment>>;
/// A block whose borrow of the pool is extended to `'static`: sound because
/// every `HeldBlock` sits next to the `Arc` of the channel that owns the
/// pool (see `ChannelBlock`), which outlives it.
type StaticBlock = Block<'static, Part>;

/// A held block as a Python object holds it.
struct HeldBlock(StaticBlock);

// SAFETY: `Block` is `!Send` only to say "held by this process": its owner
// is recorded per process (owner slot), not per thread, and a block from
// `Channel::get`/`recv` has no `BlockCache` (the one part that is
// thread-bound). Its pool is `Sync`. Every access goes through the
// `Mutex` in `ChannelBlock`, so no two threads use it at once.
unsafe impl Send for HeldBlock {}
// SAFETY: as above; shared access is serialised by the `Mutex`.
unsafe impl Sync for HeldBlock {}

/// A zero-copy channel between processes: a pool of fixed-size blocks and
/// a queue of sent blocks, in the POSIX segment `name`, the same channel as
/// Rust's `shm_mempool::Channel::create_posix` / `open_posix`.
///
/// A sender takes a free block (`get()`), writes into it in place through
/// its buffer, and sends it; a receiver takes the next sent block
/// (`recv()`), reads it in place, and gives it back to the pool by
/// releasing it (`release()`, a `with` block, or letting it be collected).
/// Blocks a killed process held go back with `reclaim_dead()`.
///
/// `close()` (or leaving a `with` block) drops the handle; the block
/// objects it handed out hold the channel (its mapping) themselves for
/// their whole life and stay usable (written, read, released; a closed
/// handle sends nothing). The creator's handle removes the name once it is
/// closed and those block objects are collected; `unlink()` removes it at
/// once.
///
/// >>> import shm
/// >>> tx = shm.Channel.create("/shm-test-doc-chan", 8, 4096)
/// >>> rx = shm.Channel.attach("/shm-test-doc-chan")
/// >>> blk = tx.get()
/// >>> with memoryview(blk) as view:
/// ...     view[:5] = b"hello"
/// >>> tx.send(blk, 5)
/// >>> with rx.recv() as got:
/// ...     bytes(got.data)
/// b'hello'
#[pyclass(module = "shm")]
pub(crate) struct Channel {
    /// `None` once closed.
    chan: Option<Arc<RustChannel>>,
    /// Shared with the blocks (no allocation per block).
    name: Arc<str>,
    /// The message of `shm.PoolEmpty`, made once: a sender that retries on
    /// an empty pool pays for no formatting.
    empty_msg: Py<PyString>,
}

impl Channel {
    fn new(py: Python<'_>, chan: RustChannel, name: &str) -> Self {
        let msg = format!(
            "get on channel {name}: all {} blocks are in use (wait with get_blocking, or have \
             the receivers release theirs)",
            chan.pool().blocks()
        );
        Channel {
            chan: Some(Arc::new(chan)),
            name: Arc::from(name),
            empty_msg: PyString::new(py, &msg).unbind(),
        }
    }

    /// A free block of `chan`, or `shm.PoolEmpty` with the message made
    /// once per handle (`try_get` builds no error for an empty pool).
    fn free_block<'c>(
        &self,
        py: Python<'_>,
        chan: &'c RustChannel<Segment>,
    ) -> PyResult<Block<'c, Part>> {
        match chan.try_get() {
            Ok(Some(block)) => Ok(block),
            Ok(None) => Err(PoolEmpty::new_err(self.empty_msg.clone_ref(py))),
            Err(e) => Err(errors::pool(e)),
        }
    }

    fn chan(&self) -> PyResult<&Arc<RustChannel>> {
        self.chan
            .as_ref()
            .ok_or_else(|| closed("Channel", &self.name))
    }

    /// `block`, of `chan` (this handle's channel), as a Python object.
    fn wrap(&self, chan: &Arc<RustChannel>, block: Block<'_, Part>) -> ChannelBlock {
        self.wrap_held(chan, extend(block))
    }

    fn wrap_held(&self, chan: &Arc<RustChannel>, held: HeldBlock) -> ChannelBlock {
        ChannelBlock {
            block: Mutex::new(Some(held)),
            chan: Arc::clone(chan),
            exports: Exports::default(),
            epoch: ForkEpoch::now(),
            name: Arc::clone(&self.name),
        }
    }

    /// The block out of a `ChannelBlock` of this channel, ready to send.
    fn take(&self, blk: &ChannelBlock, nbytes: Option<usize>) -> PyResult<StaticBlock> {
        if !Arc::ptr_eq(&blk.chan, self.chan()?) {
            return Err(PyValueError::new_err(format!(
                "send on {}: the block belongs to another channel (or another handle of it: send \
                 through the handle that gave the block)",
                self.name
            )));
        }
        blk.exports.refuse("Channel.send")?;
        let mut guard = blk.lock();
        let held = guard.as_ref().ok_or_else(|| gone(&self.name))?;
        blk.check_fork()?;
        if let Some(n) = nbytes {
            let size = held.0.len();
            if n > size {
                return Err(PyValueError::new_err(format!(
                    "send on {}: {n} bytes do not fit a block of {size}",
                    self.name
                )));
            }
            held.0.set_used(n);
        }
        Ok(guard.take().expect("checked above").0)
    }

    fn send_one<'c>(&'c self, chan: &'c RustChannel, block: Block<'c, Part>) -> PyResult<()> {
        chan.send(block).map_err(|e| match e {
            SendError::ForeignBlock(_) => PyValueError::new_err(format!(
                "send on {}: the block belongs to another pool",
                self.name
            )),
            SendError::Pool(e) => errors::pool(e),
        })
    }
}

/// A block of a channel, its borrow extended to `'static`.
fn extend(block: Block<'_, Part>) -> HeldBlock {
    // SAFETY: the block borrows the pool inside a `Channel` that lives in
    // an `Arc` (`Channel::chan`); `wrap_held` puts the block in a
    // `ChannelBlock` next to a clone of that `Arc`, declared after the
    // block so that the block drops first: the pool outlives the block.
    HeldBlock(unsafe { std::mem::transmute::<Block<'_, Part>, StaticBlock>(block) })
}

fn gone(name: &str) -> PyErr {
    PyValueError::new_err(format!(
        "a block of {name} that was already sent or released"
    ))
}

#[pymethods]
impl Channel {
    /// Creates the POSIX segment `name` (exclusively, mode 0600) holding a
    /// channel of `blocks` blocks of `block_size` bytes (rounded up to a
    /// multiple of 64). With `blocking=True` senders wake receivers asleep
    /// in `recv_blocking` (no syscall while nobody sleeps).
    ///
    /// >>> ch = shm.Channel.create("/shm-test-doc-chan-create", 4, 100)
    /// >>> ch.blocks, ch.block_size
    /// (4, 128)
    #[staticmethod]
    #[pyo3(signature = (name, blocks, block_size, *, blocking = true))]
    fn create(
        py: Python<'_>,
        name: &str,
        blocks: i64,
        block_size: i64,
        blocking: bool,
    ) -> PyResult<Self> {
        let target = || format!("create channel {name}");
        let blocks = non_negative(blocks, "'blocks'", &target)?;
        let block_size = non_negative(block_size, "'block_size'", &target)?;
        let opts = ChannelOptions::new().blocking(blocking);
        let chan =
            RustChannel::create_posix_with(name, blocks, block_size, opts).map_err(errors::pool)?;
        Ok(Channel::new(py, chan, name))
    }

    /// Attaches to the channel `name` (FileNotFoundError if there is none,
    /// ValueError if the segment holds something else).
    ///
    /// >>> shm.Channel.attach("/shm-test-doc-chan-create").block_size
    /// 128
    #[staticmethod]
    fn attach(py: Python<'_>, name: &str) -> PyResult<Self> {
        let (seg, _) = crate::rings::open_kind(name, Kind::CHANNEL, "channel")?;
        let chan = RustChannel::attach(seg).map_err(errors::pool)?;
        Ok(Channel::new(py, chan, name))
    }

    /// Takes a free block to fill (a `ChannelBlock`, writable, `block_size`
    /// bytes); raises `shm.RingEmpty` when every block is in use.
    ///
    /// >>> blk = ch.get()
    /// >>> len(blk)
    /// 128
    fn get(&self, py: Python<'_>) -> PyResult<ChannelBlock> {
        let chan = self.chan()?;
        let block = self.free_block(py, chan)?;
        Ok(self.wrap(chan, block))
    }

    /// Takes a free block, waiting up to `timeout` seconds (None: for ever)
    /// for a receiver to give one back, with the GIL released; Ctrl-C
    /// interrupts it; TimeoutError at the deadline. The pool has no wake-up
    /// for free blocks: it polls, yielding the CPU, then sleeping from 20 µs
    /// up to 1 ms between tries.
    ///
    /// >>> ch.get_blocking(timeout=1.0).release()
    #[pyo3(signature = (timeout = None))]
    fn get_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<ChannelBlock> {
        let arc = self.chan()?;
        match arc.try_get() {
            Ok(Some(b)) => return Ok(self.wrap(arc, b)),
            Ok(None) => {}
            Err(e) => return Err(errors::pool(e)),
        }
        let chan = &**arc;
        let what = format!("get_blocking on {}", self.name);
        let mut round = 0u32;
        let held = wait_loop(py, timeout, &what, |py, slice: Duration| {
            let got = py.detach(|| {
                let end = std::time::Instant::now() + slice;
                loop {
                    match chan.try_get() {
                        Ok(Some(b)) => return Ok(Some(extend(b))),
                        Ok(None) => {}
                        Err(e) => return Err(e),
                    }
                    let now = std::time::Instant::now();
                    if now >= end {
                        return Ok(None);
                    }
                    round = round.saturating_add(1);
                    if round <= 16 {
                        std::thread::yield_now();
                    } else {
                        let nap = Duration::from_micros(20 << (round - 17).min(6));
                        std::thread::sleep(nap.min(end - now));
                    }
                }
            });
            got.map_err(errors::pool)
        })?;
        Ok(self.wrap_held(arc, held))
    }

    /// Queues `block` (from this handle's `get()` or `recv()`) for a
    /// receiver; `nbytes` sets how many bytes it holds (default: what
    /// `block.used` says). The block object is spent afterwards. Raises
    /// BufferError while memoryviews of the block are exported.
    ///
    /// >>> blk.used = 3
    /// >>> ch.send(blk)
    #[pyo3(signature = (block, nbytes = None))]
    fn send(&self, block: &Bound<'_, ChannelBlock>, nbytes: Option<usize>) -> PyResult<()> {
        let b = self.take(block.get(), nbytes)?;
        self.send_one(self.chan()?, b)
    }

    /// Copies `data` (any bytes-like object) into a fresh block and sends
    /// it. Raises `shm.RingEmpty` when no block is free, ValueError when it
    /// does not fit a block.
    ///
    /// >>> ch.send_bytes(b"hi")
    fn send_bytes(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let chan = self.chan()?;
        let src = Borrowed::bytes(data, false)?;
        let block = self.free_block(data.py(), chan)?;
        let n = src.len();
        if n > block.len() {
            return Err(PyValueError::new_err(format!(
                "send_bytes on {}: {n} bytes do not fit a block of {}",
                self.name,
                block.len()
            )));
        }
        // SAFETY: `n` bytes fit the block (checked), which this process
        // holds; the source is the exported Python buffer, valid while `src`
        // lives. Both sides may be shared memory that others write
        // (atomically): the buffer may be another segment, another block,
        // even a NumPy array left over this very block (NumPy keeps only a
        // released block object as an array's base), so a shared-to-shared
        // copy, atomic on both sides, that allows overlap.
        unsafe { copy_shared_to_shared(src.ptr(), block.as_ptr(), n) };
        block.set_used(n);
        self.send_one(chan, block)
    }

    /// Sends the blocks of an iterable in order, waking receivers once;
    /// returns how many. Stops at the first that fails (raising its error).
    ///
    /// >>> ch.send_many([ch.get(), ch.get()])
    /// 2
    fn send_many(&self, blocks: &Bound<'_, PyAny>) -> PyResult<usize> {
        let chan = self.chan()?;
        let mut taken = Vec::new();
        for item in blocks.try_iter()? {
            let item = item?;
            let blk = item
                .cast::<ChannelBlock>()
                .map_err(|_| PyTypeError::new_err("send_many takes ChannelBlock objects"))?;
            taken.push(self.take(blk.get(), None)?);
        }
        let n = taken.len();
        chan.send_many(taken).map_err(|e| match e {
            SendError::ForeignBlock(_) => {
                PyValueError::new_err(format!("send_many on {}: a foreign block", self.name))
            }
            SendError::Pool(e) => errors::pool(e),
        })?;
        Ok(n)
    }

    /// Takes the next sent block (a `ChannelBlock`: `data` is a memoryview
    /// of its `used` bytes, no copy), or returns None when none is queued.
    ///
    /// >>> got = ch.recv()
    /// >>> got.tobytes()
    /// b'\x00\x00\x00'
    fn recv(&self) -> PyResult<Option<ChannelBlock>> {
        let chan = self.chan()?;
        match chan.recv() {
            Ok(b) => Ok(Some(self.wrap(chan, b))),
            Err(RecvError::Empty) => Ok(None),
            Err(RecvError::Pool(e)) => Err(errors::pool(e)),
        }
    }

    /// Waits up to `timeout` seconds (None: for ever) for a block, with the
    /// GIL released; Ctrl-C interrupts it; TimeoutError at the deadline.
    ///
    /// >>> ch.recv_blocking(timeout=1.0).tobytes()
    /// b'hi'
    #[pyo3(signature = (timeout = None))]
    fn recv_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<ChannelBlock> {
        if let Some(b) = self.recv()? {
            return Ok(b);
        }
        let arc = self.chan()?;
        let chan = &**arc;
        let what = format!("recv_blocking on {}", self.name);
        let held = wait_loop(py, timeout, &what, |py, slice: Duration| {
            let got = py.detach(|| match chan.recv_blocking(slice) {
                Ok(b) => Ok(Some(extend(b))),
                Err(RecvError::Empty) => Ok(None),
                Err(RecvError::Pool(e)) => Err(e),
            });
            got.map_err(errors::pool)
        })?;
        Ok(self.wrap_held(arc, held))
    }

    /// Takes up to `max` queued blocks, in order; returns a list (empty
    /// when none is queued).
    ///
    /// >>> [b.tobytes() for b in ch.recv_many(8)]
    /// [b'', b'']
    fn recv_many<'py>(&self, py: Python<'py>, max: i64) -> PyResult<Bound<'py, PyList>> {
        let max = non_negative(max, "'max'", &|| format!("recv_many on {}", self.name))?;
        let chan = self.chan()?;
        let mut out = Vec::new();
        chan.recv_many(&mut out, max).map_err(errors::pool)?;
        let list = PyList::empty(py);
        for b in out {
            list.append(Bound::new(py, self.wrap(chan, b))?)?;
        }
        Ok(list)
    }

    /// Receives one block, copies its `used` bytes out, and gives it back
    /// to the pool; None when nothing is queued.
    ///
    /// >>> ch.send_bytes(b"x"); ch.recv_bytes()
    /// b'x'
    fn recv_bytes<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let block = match self.chan()?.recv() {
            Ok(b) => b,
            Err(RecvError::Empty) => return Ok(None),
            Err(RecvError::Pool(e)) => return Err(errors::pool(e)),
        };
        let n = block.used();
        Ok(Some(new_bytes(py, n, |out| {
            // SAFETY: `n <= block size`; the block is this process's until
            // it drops, and others may only touch it atomically; `out` is a
            // fresh Python bytes object of `n` bytes, private.
            unsafe { copy_from_shared_raw(block.as_ptr(), out, n) };
            Ok(())
        })?))
    }

    /// Gives back the blocks that dead processes held (returns their ids).
    ///
    /// >>> ch.reclaim_dead()
    /// []
    fn reclaim_dead(&self) -> PyResult<Vec<u32>> {
        let ids = self.chan()?.pool().reclaim_dead().map_err(errors::pool)?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    /// Blocks queued now (a snapshot).
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.chan()?.len())
    }

    /// Blocks in the pool.
    #[getter]
    fn blocks(&self) -> PyResult<usize> {
        Ok(self.chan()?.pool().blocks())
    }

    /// Bytes per block.
    #[getter]
    fn block_size(&self) -> PyResult<usize> {
        Ok(self.chan()?.pool().block_size())
    }

    /// Free blocks now (a snapshot).
    #[getter]
    fn free(&self) -> PyResult<usize> {
        Ok(self.chan()?.pool().stats().free)
    }

    /// The channel's POSIX name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether the name is removed when this handle and the block objects
    /// it handed out are gone (true for the creator's handle).
    ///
    /// >>> ch.remove_on_drop
    /// True
    #[getter]
    fn get_remove_on_drop(&self) -> PyResult<bool> {
        Ok(self.chan()?.region().created())
    }

    #[setter]
    fn set_remove_on_drop(&self, remove: bool) -> PyResult<()> {
        self.chan()?.region().set_remove_on_drop(remove);
        Ok(())
    }

    /// Removes the name now; no unlink at drop afterwards.
    ///
    /// >>> ch.unlink()
    fn unlink(&self) -> PyResult<()> {
        crate::rings::unlink(self.chan()?.region())
    }

    /// Drops this handle; later calls on it raise ValueError, and a second
    /// close does nothing. The block objects it handed out hold the channel
    /// themselves and stay usable. The creator's handle removes the name
    /// when it is closed and those objects are collected: at `close()` if
    /// none is left.
    ///
    /// >>> with shm.Channel.create("/shm-test-doc-chan-close", 2, 64) as c:
    /// ...     c.send_bytes(b"x")
    /// >>> c.closed
    /// True
    fn close(&mut self) {
        self.chan = None;
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.chan.is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Leaves a `with` block: `close()`.
    fn __exit__(
        &mut self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match &self.chan {
            Some(chan) => format!(
                "Channel({:?}, blocks={}, block_size={}, queued={})",
                self.name,
                chan.pool().blocks(),
                chan.pool().block_size(),
                chan.len()
            ),
            None => format!("Channel({:?}, closed)", self.name),
        }
    }
}

/// A block of a `Channel` that this process holds (from `get()`, `recv()`,
/// `recv_blocking()` or `recv_many()`). Its buffer is the whole block,
/// writable, in place in the shared memory: `memoryview(block)`,
/// `numpy.frombuffer(block, dtype)`. `used` is how many bytes hold data
/// (what the sender set); `data` is a memoryview of those.
///
/// The block goes back to the pool on `release()`, when a `with` block
/// ends, or when the object is collected; `Channel.send` hands it on
/// instead. Both refuse with BufferError while memoryviews of it are
/// exported, and memoryviews keep the block (and the mapping) alive.
///
/// Inherited across fork(2), a block is inert in the child: its buffer,
/// `used` and `send` raise `shm.ShmError`, and the parent keeps it.
///
/// >>> ch = shm.Channel.create("/shm-test-doc-block", 2, 64)
/// >>> with ch.get() as blk:
/// ...     blk.used = 2
/// ...     blk.data.tobytes()
/// b'\x00\x00'
#[pyclass(module = "shm", frozen)]
pub(crate) struct ChannelBlock {
    // Field order: the block drops before the channel that owns its pool.
    block: Mutex<Option<HeldBlock>>,
    chan: Arc<RustChannel>,
    exports: Exports,
    epoch: ForkEpoch,
    name: Arc<str>,
}

impl ChannelBlock {
    fn lock(&self) -> MutexGuard<'_, Option<HeldBlock>> {
        self.block.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_fork(&self) -> PyResult<()> {
        if self.epoch.is_current() {
            Ok(())
        } else {
            Err(ShmError::new_err(format!(
                "a block of {} inherited across fork(2) is inert in this process: it belongs to \
                 the parent",
                self.name
            )))
        }
    }

    /// Runs `f` on the held block.
    fn with<T>(&self, f: impl FnOnce(&StaticBlock) -> T) -> PyResult<T> {
        self.check_fork()?;
        let guard = self.lock();
        let held = guard.as_ref().ok_or_else(|| gone(&self.name))?;
        Ok(f(&held.0))
    }
}

#[pymethods]
impl ChannelBlock {
    /// Bytes that hold data (set by the writer; at most the block size).
    ///
    /// >>> blk = ch.get(); blk.used = 5; blk.used
    /// 5
    #[getter]
    fn get_used(&self) -> PyResult<usize> {
        self.with(|b| b.used())
    }

    #[setter]
    fn set_used(&self, n: usize) -> PyResult<()> {
        self.with(|b| {
            if n > b.len() {
                Err(PyValueError::new_err(format!(
                    "used = {n}: the block has {} bytes",
                    b.len()
                )))
            } else {
                b.set_used(n);
                Ok(())
            }
        })?
    }

    /// A memoryview of the first `used` bytes (no copy).
    ///
    /// >>> bytes(blk.data)
    /// b'\x00\x00\x00\x00\x00'
    #[getter]
    fn data<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let used = slf.get().get_used()?;
        let py = slf.py();
        let view = pyo3::types::PyMemoryView::from(slf.as_any())?;
        view.get_item(pyo3::types::PySlice::new(py, 0, used as isize, 1))
    }

    /// A copy of the first `used` bytes.
    ///
    /// >>> blk.tobytes()
    /// b'\x00\x00\x00\x00\x00'
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with(|b| {
            let n = b.used();
            new_bytes(py, n, |out| {
                // SAFETY: `n <= block size`; the block is held by this
                // process, and others may only touch it atomically; `out` is
                // a fresh Python bytes object of `n` bytes, private.
                unsafe { copy_from_shared_raw(b.as_ptr(), out, n) };
                Ok(())
            })
        })?
    }

    /// The block's id in the pool.
    #[getter]
    fn id(&self) -> PyResult<u32> {
        let guard = self.lock();
        let held = guard.as_ref().ok_or_else(|| gone(&self.name))?;
        Ok(held.0.id().0)
    }

    /// Whether the block is still held here (not sent nor released).
    #[getter]
    fn is_held(&self) -> bool {
        self.lock().is_some()
    }

    /// Gives the block back to the pool now (nothing if already sent or
    /// released). Raises BufferError while memoryviews of it are exported.
    ///
    /// >>> blk.release()
    fn release(&self) -> PyResult<()> {
        self.exports.refuse("ChannelBlock.release")?;
        let held = self.lock().take();
        drop(held);
        Ok(())
    }

    /// The block size.
    fn __len__(&self) -> usize {
        self.chan.pool().block_size()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Leaves a `with` block: releases the block unless it was sent.
    fn __exit__(
        &self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.release()?;
        Ok(false)
    }

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let me = slf.get();
        me.check_fork()?;
        let (ptr, len) = {
            let guard = me.lock();
            let held = guard.as_ref().ok_or_else(|| {
                PyValueError::new_err(format!(
                    "a block of {} that was already sent or released has no buffer",
                    me.name
                ))
            })?;
            (held.0.as_ptr(), held.0.len())
        };
        // SAFETY: the block's bytes inside the mapping, which the channel
        // (kept alive by this object, kept alive by the view) keeps mapped;
        // the block stays this process's until send or release, which
        // refuse while this export is counted.
        unsafe { fill_view(view, flags, ptr, len, false, slf.as_any())? };
        me.exports.add();
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.sub();
    }

    fn __repr__(&self) -> String {
        let guard = self.lock();
        match guard.as_ref() {
            Some(h) if self.epoch.is_current() => {
                format!(
                    "ChannelBlock({:?}, id={}, used={})",
                    self.name,
                    h.0.id().0,
                    h.0.used()
                )
            }
            Some(h) => format!(
                "ChannelBlock({:?}, id={}, inherited)",
                self.name,
                h.0.id().0
            ),
            None => format!("ChannelBlock({:?}, spent)", self.name),
        }
    }
}
