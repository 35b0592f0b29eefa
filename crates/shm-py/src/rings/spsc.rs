//! `shm.SpscRing`, its roles `shm.SpscProducer` / `shm.SpscConsumer`, and
//! their zero-copy chunks `shm.RingWriteChunk` / `shm.RingReadChunk`.

use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyBrokenPipeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use shm_segment::Kind;

use super::carrier::{ConsumerCore, Open, PopFail, ProducerCore, PushFail, SpscCore};
use super::{create_how, makers_for, open_checked, Scratch};
use crate::common::{closed, fill_view, non_negative, wait_loop, Borrowed, Exports};
use crate::dtype::Elem;
use crate::errors::{self, RingFull, ShmError};

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SpscRing>()?;
    m.add_class::<SpscProducer>()?;
    m.add_class::<SpscConsumer>()?;
    m.add_class::<RingWriteChunk>()?;
    m.add_class::<RingReadChunk>()?;
    Ok(())
}

const FORKED_PRODUCER: &str = "this SpscProducer was inherited across fork(2) and is inert in \
    this process (the producer role belongs to the process that took it); take the role here \
    with ring.producer() once that process has given it back or died";
const FORKED_CONSUMER: &str = "this SpscConsumer was inherited across fork(2) and is inert in \
    this process (the consumer role belongs to the process that took it); take the role here \
    with ring.consumer() once that process has given it back or died";

fn bulk_err(e: shm_ring::BulkError, forked: &str) -> PyErr {
    match e {
        shm_ring::BulkError::ForkedHandle => ShmError::new_err(forked.to_owned()),
        e => ShmError::new_err(e.to_string()),
    }
}

/// A single-producer single-consumer ring in POSIX shared memory, the
/// same ring as Rust's `shm_ring::SpscRing<T>` (`create_posix` /
/// `open_posix`) for any `T` of the dtype's size and alignment.
///
/// Create it in one process, attach by name in others, then take the
/// producer role (`producer()`) in one process and the consumer role
/// (`consumer()`) in one process. A role is held by one live process at a
/// time: a second claim raises `shm.ShmError` naming the holder, and a
/// role whose holder died (even by SIGKILL) is taken over, from where it
/// stopped.
///
/// `close()` (or leaving a `with` block) drops the handle; the roles and
/// chunks made from it hold the ring themselves and keep working. The
/// creator's handle removes the name once it and everything made from it
/// are gone (roles closed or collected, chunk objects collected: a chunk
/// keeps the mapping for its whole life, for arrays made over it);
/// `unlink()` removes it at once.
///
/// >>> import shm
/// >>> ring = shm.SpscRing.create("/shm-test-doc-spsc", 1024, dtype="u8")
/// >>> tx = ring.producer()
/// >>> rx = shm.SpscRing.attach("/shm-test-doc-spsc", dtype="u8").consumer()
/// >>> tx.push(42)
/// >>> rx.pop()
/// 42
/// >>> rx.pop() is None
/// True
#[pyclass(module = "shm")]
pub(crate) struct SpscRing {
    /// `None` once closed.
    core: Option<Arc<dyn SpscCore>>,
    elem: Arc<Elem>,
    name: String,
}

#[pymethods]
impl SpscRing {
    /// Creates the POSIX segment `name` (exclusively, mode 0600) holding a
    /// new ring of `capacity` elements (a power of two) of `dtype`.
    /// `blocking=True` makes pushes and pops wake sleeping blocking calls
    /// (a futex in the ring; no syscall while nobody sleeps).
    ///
    /// Raises FileExistsError if `name` exists, ValueError for a bad
    /// capacity or an unsupported dtype.
    ///
    /// >>> ring = shm.SpscRing.create("/shm-test-doc-create", 8, dtype="f8")
    /// >>> ring.capacity, ring.itemsize
    /// (8, 8)
    #[staticmethod]
    #[pyo3(signature = (name, capacity, dtype = None, *, blocking = true))]
    fn create(
        py: Python<'_>,
        name: &str,
        capacity: i64,
        dtype: Option<&Bound<'_, PyAny>>,
        blocking: bool,
    ) -> PyResult<Self> {
        let capacity = non_negative(capacity, "'capacity'", &|| {
            format!("create SPSC ring {name}")
        })?;
        let elem = resolve(py, dtype)?;
        let makers = makers_for(&elem)?;
        let core = (makers.spsc)(create_how(name, capacity, blocking)).map_err(errors::ring)?;
        Ok(SpscRing {
            core: Some(Arc::from(core)),
            elem: Arc::new(elem),
            name: name.to_owned(),
        })
    }

    /// Attaches to the ring `name` another process created. Raises
    /// FileNotFoundError if there is no such segment, and ValueError if it
    /// holds something else or elements of another size or alignment than
    /// `dtype`'s (the message names the ring and both layouts).
    ///
    /// >>> other = shm.SpscRing.attach("/shm-test-doc-create", dtype="f8")
    /// >>> other.capacity
    /// 8
    #[staticmethod]
    #[pyo3(signature = (name, dtype = None))]
    fn attach(py: Python<'_>, name: &str, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let elem = resolve(py, dtype)?;
        let makers = makers_for(&elem)?;
        let seg = open_checked(name, Kind::SPSC_RING, "SPSC ring", &elem)?;
        let core = (makers.spsc)(Open::Attach(seg)).map_err(errors::ring)?;
        Ok(SpscRing {
            core: Some(Arc::from(core)),
            elem: Arc::new(elem),
            name: name.to_owned(),
        })
    }

    /// Takes the producer role. Raises `shm.ShmError` while a live process
    /// holds it; takes it over from a dead one.
    ///
    /// >>> tx = ring.producer()
    fn producer(&self) -> PyResult<SpscProducer> {
        let ring = self.ring()?;
        let core = ring.producer().map_err(errors::ring)?;
        Ok(SpscProducer {
            core: Some(core),
            ring: Some(Arc::clone(ring)),
            elem: Arc::clone(&self.elem),
            name: self.name.clone(),
            chunk_open: Arc::default(),
        })
    }

    /// Takes the consumer role, as `producer()` does the producer's.
    ///
    /// >>> rx = ring.consumer()
    fn consumer(&self) -> PyResult<SpscConsumer> {
        let ring = self.ring()?;
        let core = ring.consumer().map_err(errors::ring)?;
        Ok(SpscConsumer {
            core: Some(core),
            ring: Some(Arc::clone(ring)),
            elem: Arc::clone(&self.elem),
            name: self.name.clone(),
            chunk_open: Arc::default(),
        })
    }

    /// The ring's POSIX name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Slots in the ring.
    #[getter]
    fn capacity(&self) -> PyResult<usize> {
        Ok(self.ring()?.capacity())
    }

    /// The element dtype (a numpy dtype when numpy is installed).
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyAny> {
        self.elem.dtype.clone_ref(py)
    }

    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        self.elem.size
    }

    /// Items in the ring now (a snapshot).
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.ring()?.len())
    }

    /// Whether the name is removed when this handle and everything made
    /// from it (roles, chunks) are gone: true for the creator's handle.
    ///
    /// >>> ring.remove_on_drop
    /// True
    #[getter]
    fn get_remove_on_drop(&self) -> PyResult<bool> {
        Ok(self.ring()?.segment().created())
    }

    #[setter]
    fn set_remove_on_drop(&self, remove: bool) -> PyResult<()> {
        self.ring()?.segment().set_remove_on_drop(remove);
        Ok(())
    }

    /// Removes the name now (the ring lives on for those who have it
    /// mapped); no unlink happens at drop afterwards.
    ///
    /// >>> ring.unlink()
    fn unlink(&self) -> PyResult<()> {
        super::unlink(self.ring()?.segment())
    }

    /// Drops this handle; later calls on it raise ValueError, and a second
    /// close does nothing. The roles and chunks made from it hold the ring
    /// (its mapping) themselves and keep working. The creator's handle
    /// removes the name when it and everything made from it are gone, as
    /// when it is collected: at `close()` if nothing else of it is left.
    ///
    /// >>> with shm.SpscRing.create("/shm-test-doc-close", 4) as r:
    /// ...     r.closed
    /// False
    /// >>> r.closed
    /// True
    fn close(&mut self) {
        self.core = None;
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.core.is_none()
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
        match &self.core {
            Some(core) => format!(
                "SpscRing({:?}, capacity={}, dtype={}, len={})",
                self.name,
                core.capacity(),
                self.elem.name,
                core.len()
            ),
            None => format!(
                "SpscRing({:?}, dtype={}, closed)",
                self.name, self.elem.name
            ),
        }
    }
}

impl SpscRing {
    fn ring(&self) -> PyResult<&Arc<dyn SpscCore>> {
        self.core
            .as_ref()
            .ok_or_else(|| crate::common::closed("SpscRing", &self.name))
    }
}

/// The dtype argument (`None`: `'u8'`).
pub(super) fn resolve(py: Python<'_>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Elem> {
    match dtype {
        Some(d) => Elem::resolve(d),
        None => Elem::resolve(pyo3::types::PyString::new(py, "u8").as_any()),
    }
}

/// The producer role of an `SpscRing` (from `ring.producer()`). Gives the
/// role back on `close()`, on leaving a `with` block, or when collected.
///
/// Inherited across `fork(2)` it is inert in the child: every operation
/// raises `shm.ShmError` saying so, and the parent keeps the role; take the
/// role in the child with `ring.producer()` instead.
///
/// >>> ring = shm.SpscRing.create("/shm-test-doc-prod", 4, dtype="u4")
/// >>> with ring.producer() as tx:
/// ...     tx.push(1)
/// ...     tx.push_many(bytes(8))  # two zero elements
/// 2
#[pyclass(module = "shm")]
pub(crate) struct SpscProducer {
    core: Option<Box<dyn ProducerCore>>,
    /// The ring (and so its mapping), for the chunks to keep; `None` once
    /// closed, so that a closed role no longer keeps the ring.
    ring: Option<Arc<dyn SpscCore>>,
    elem: Arc<Elem>,
    name: String,
    /// A `RingWriteChunk` reserved slots and did not commit or release them.
    chunk_open: Arc<ChunkSlot>,
}

impl SpscProducer {
    fn core(&mut self) -> PyResult<&mut Box<dyn ProducerCore>> {
        if self.chunk_open.is_open() {
            return Err(ShmError::new_err(format!(
                "{}: a write chunk is open; commit() or release() it first",
                self.name
            )));
        }
        self.core
            .as_mut()
            .ok_or_else(|| closed("SpscProducer of", &self.name))
    }

    fn fail(&self, f: PushFail) -> PyErr {
        match f {
            PushFail::Full => RingFull::new_err(format!("{}: the ring is full", self.name)),
            PushFail::Forked => ShmError::new_err(FORKED_PRODUCER),
            PushFail::PeerGone => PyBrokenPipeError::new_err(format!(
                "{}: the ring is full and its consumer is gone (given back or dead)",
                self.name
            )),
        }
    }
}

#[pymethods]
impl SpscProducer {
    /// Pushes one value; raises `shm.RingFull` when the ring is full.
    /// Scalar dtypes take int/float (bool for '?'); others take bytes of
    /// the item size, or what `numpy.asarray(value, dtype)` takes (a tuple
    /// or `numpy.void` for a struct dtype).
    ///
    /// >>> tx.push(7)
    fn push(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut buf = Scratch::new(self.elem.size);
        (self.elem.encode)(&self.elem, value, buf.bytes())?;
        let r = self.core()?.push(buf.bytes());
        r.map_err(|f| self.fail(f))
    }

    /// Pushes one value, waiting up to `timeout` seconds (None: for ever)
    /// for room, with the GIL released; Ctrl-C interrupts it. Raises
    /// TimeoutError at the deadline, BrokenPipeError when the ring is full
    /// and its consumer is gone.
    ///
    /// >>> tx.push_blocking(8, timeout=1.0)
    #[pyo3(signature = (value, timeout = None))]
    fn push_blocking(
        &mut self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let mut buf = Scratch::new(self.elem.size);
        (self.elem.encode)(&self.elem, value, buf.bytes())?;
        let bytes = buf.bytes();
        // The fast path: room now, no wait set up (nor its message), the
        // GIL kept.
        match self.core()?.push(bytes) {
            Err(PushFail::Full) => {}
            r => return r.map_err(|f| self.fail(f)),
        }
        let what = format!("push_blocking on {}", self.name);
        let core = self.core()?;
        let r = wait_loop(py, timeout, &what, |py, slice| {
            match py.detach(|| core.push_blocking(bytes, slice)) {
                Ok(()) => Ok(Some(Ok(()))),
                Err(PushFail::Full) => Ok(None),
                Err(f) => Ok(Some(Err(f))),
            }
        })?;
        r.map_err(|f| self.fail(f))
    }

    /// Pushes as many elements of `buffer` as there is room for, in order,
    /// publishing once; returns how many. `buffer` is any C-contiguous
    /// buffer of items of the ring's item size (a numpy array of its dtype)
    /// or raw bytes of a multiple of it; any alignment.
    ///
    /// >>> import numpy as np
    /// >>> tx.push_many(np.arange(2, dtype="u4"))
    /// 0
    fn push_many(&mut self, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let size = self.elem.size;
        let b = Borrowed::get(buffer, false, size, "push_many")?;
        let core = self.core()?;
        // SAFETY: the buffer holds `len / size` elements and stays exported
        // (so valid and unmoved) while `b` lives; we hold the GIL.
        let r = unsafe { core.push_raw(b.ptr(), b.len() / size) };
        r.map_err(|e| bulk_err(e, FORKED_PRODUCER))
    }

    /// Reserves up to `n` free slots that follow each other in memory (fewer
    /// when the ring has less room, or wraps around before `n`) and returns
    /// them as a `RingWriteChunk`, zeroed, to fill in place through its
    /// buffer (`memoryview(chunk)`, `numpy.frombuffer(chunk, dtype)`);
    /// `chunk.commit(k)` publishes the first `k`. Raises `shm.RingFull` when
    /// no slot is free. No other push is possible while a chunk is open.
    ///
    /// >>> chunk = tx.write_chunk(1)
    /// >>> with memoryview(chunk) as view:
    /// ...     view[:4] = b"\x01\x00\x00\x00"
    /// >>> chunk.commit()
    fn write_chunk(slf: &Bound<'_, Self>, n: i64) -> PyResult<RingWriteChunk> {
        let mut me = slf.try_borrow_mut()?;
        let n = non_negative(n, "n", &|| format!("write_chunk on {}", me.name))?;
        let size = me.elem.size;
        // There while the role is open.
        let ring = me
            .ring
            .clone()
            .ok_or_else(|| closed("SpscProducer of", &me.name))?;
        let (ptr, k) = me
            .core()?
            .chunk_begin(n)
            .map_err(|e| bulk_err(e, FORKED_PRODUCER))?;
        if k == 0 && n > 0 {
            return Err(RingFull::new_err(format!("{}: the ring is full", me.name)));
        }
        Ok(RingWriteChunk {
            producer: slf.clone().unbind(),
            slots: Slots::new(ptr as usize, k, size, &me.chunk_open, ring),
        })
    }

    /// Free slots now (a snapshot).
    #[getter]
    fn free(&self) -> PyResult<usize> {
        Ok(self.live()?.slots())
    }

    /// Elements ever published into the ring (the tail position).
    #[getter]
    fn position(&self) -> PyResult<u64> {
        Ok(self.live()?.position())
    }

    /// Whether this handle was inherited across fork(2) (and so is inert).
    #[getter]
    fn is_inert(&self) -> PyResult<bool> {
        Ok(self.live()?.is_inert())
    }

    /// Whether the consumer role was taken and is no longer held by a live
    /// process (given back, or its holder died).
    #[getter]
    fn is_abandoned(&self) -> PyResult<bool> {
        Ok(self.live()?.is_abandoned())
    }

    /// The element dtype.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyAny> {
        self.elem.dtype.clone_ref(py)
    }

    /// Gives the role back (nothing in the ring is lost); later calls raise
    /// ValueError. Raises `shm.ShmError` while a write chunk is open.
    ///
    /// >>> tx.close()
    fn close(&mut self) -> PyResult<()> {
        if self.chunk_open.is_open() {
            return Err(ShmError::new_err(format!(
                "{}: a write chunk is open; commit() or release() it first",
                self.name
            )));
        }
        self.core = None;
        self.ring = None;
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &mut self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.core.is_some() {
            "open"
        } else {
            "closed"
        };
        format!("SpscProducer({:?}, {state})", self.name)
    }
}

impl SpscProducer {
    fn live(&self) -> PyResult<&dyn ProducerCore> {
        self.core
            .as_deref()
            .ok_or_else(|| closed("SpscProducer of", &self.name))
    }
}

/// The consumer role of an `SpscRing` (from `ring.consumer()`), as
/// `SpscProducer` is the producer's.
///
/// >>> ring = shm.SpscRing.create("/shm-test-doc-cons", 4, dtype="i2")
/// >>> tx, rx = ring.producer(), ring.consumer()
/// >>> tx.push(-5)
/// >>> rx.pop(), rx.pop()
/// (-5, None)
#[pyclass(module = "shm")]
pub(crate) struct SpscConsumer {
    core: Option<Box<dyn ConsumerCore>>,
    /// The ring (and so its mapping), for the chunks to keep; `None` once
    /// closed, so that a closed role no longer keeps the ring.
    ring: Option<Arc<dyn SpscCore>>,
    elem: Arc<Elem>,
    name: String,
    chunk_open: Arc<ChunkSlot>,
}

impl SpscConsumer {
    fn core(&mut self) -> PyResult<&mut Box<dyn ConsumerCore>> {
        if self.chunk_open.is_open() {
            return Err(ShmError::new_err(format!(
                "{}: a read chunk is open; commit() or release() it first",
                self.name
            )));
        }
        self.core
            .as_mut()
            .ok_or_else(|| closed("SpscConsumer of", &self.name))
    }

    fn live(&self) -> PyResult<&dyn ConsumerCore> {
        self.core
            .as_deref()
            .ok_or_else(|| closed("SpscConsumer of", &self.name))
    }

    fn fail(&self, f: PopFail) -> PyErr {
        match f {
            PopFail::Forked => ShmError::new_err(FORKED_CONSUMER),
            other => ShmError::new_err(format!("{}: pop failed: {other:?}", self.name)),
        }
    }
}

#[pymethods]
impl SpscConsumer {
    /// Takes one value, or returns None when the ring is empty.
    ///
    /// >>> rx.pop() is None
    /// True
    fn pop(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut buf = Scratch::new(self.elem.size);
        let r = self.core()?.pop(buf.bytes());
        match r {
            Ok(()) => Ok(Some((self.elem.decode)(&self.elem, py, buf.bytes())?)),
            Err(PopFail::Empty) => Ok(None),
            Err(f) => Err(self.fail(f)),
        }
    }

    /// Takes one value, waiting up to `timeout` seconds (None: for ever)
    /// with the GIL released; Ctrl-C interrupts it. Returns None once the
    /// ring is empty and its producer is gone (given back or dead: the end
    /// of the stream, after everything it published); raises TimeoutError
    /// at the deadline.
    ///
    /// >>> tx.push(3); rx.pop_blocking(timeout=1.0)
    /// 3
    #[pyo3(signature = (timeout = None))]
    fn pop_blocking(
        &mut self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let mut buf = Scratch::new(self.elem.size);
        let bytes = buf.bytes();
        // The fast path: an element now, no wait set up (nor its message).
        let first = self.core()?.pop(bytes);
        let r = match first {
            Err(PopFail::Empty) => {
                let what = format!("pop_blocking on {}", self.name);
                let core = self.core()?;
                wait_loop(py, timeout, &what, |py, slice| {
                    match py.detach(|| core.pop_blocking(bytes, slice)) {
                        Err(PopFail::Empty) => Ok(None),
                        r => Ok(Some(r)),
                    }
                })?
            }
            r => r,
        };
        match r {
            Ok(()) => Ok(Some((self.elem.decode)(&self.elem, py, bytes)?)),
            Err(PopFail::PeerGone) => Ok(None),
            Err(f) => Err(self.fail(f)),
        }
    }

    /// Takes as many elements as fit in `buffer` (a writable C-contiguous
    /// buffer of the ring's item size, such as a numpy array of its dtype,
    /// or a bytearray; any alignment), in order, releasing the slots once;
    /// returns how many.
    ///
    /// >>> import numpy as np
    /// >>> out = np.zeros(4, dtype="i2")
    /// >>> rx.pop_into(out)
    /// 0
    fn pop_into(&mut self, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let size = self.elem.size;
        let b = Borrowed::get(buffer, true, size, "pop_into")?;
        let core = self.core()?;
        // SAFETY: a writable buffer of `len / size` elements, exported (so
        // valid and unmoved) while `b` lives; we hold the GIL.
        let r = unsafe { core.pop_raw(b.ptr(), b.len() / size) };
        r.map_err(|e| bulk_err(e, FORKED_CONSUMER))
    }

    /// Borrows up to `n` ready elements that follow each other in memory
    /// (fewer when fewer are ready or the ring wraps around first) as a
    /// read-only `RingReadChunk`, without copying; `chunk.commit(k)`
    /// releases the first `k`. Returns None when the ring is empty.
    ///
    /// >>> tx.push(9)
    /// >>> chunk = rx.read_chunk(8)
    /// >>> bytes(chunk)
    /// b'\t\x00'
    /// >>> chunk.commit()
    fn read_chunk(slf: &Bound<'_, Self>, n: i64) -> PyResult<Option<RingReadChunk>> {
        let mut me = slf.try_borrow_mut()?;
        let n = non_negative(n, "n", &|| format!("read_chunk on {}", me.name))?;
        let size = me.elem.size;
        // There while the role is open.
        let ring = me
            .ring
            .clone()
            .ok_or_else(|| closed("SpscConsumer of", &me.name))?;
        let (ptr, k) = me
            .core()?
            .chunk_begin(n)
            .map_err(|e| bulk_err(e, FORKED_CONSUMER))?;
        if k == 0 && n > 0 {
            return Ok(None);
        }
        Ok(Some(RingReadChunk {
            consumer: slf.clone().unbind(),
            slots: Slots::new(ptr as usize, k, size, &me.chunk_open, ring),
        }))
    }

    /// Elements ready now (a snapshot).
    #[getter]
    fn available(&self) -> PyResult<usize> {
        Ok(self.live()?.slots())
    }

    /// Elements ever taken from the ring (the head position).
    #[getter]
    fn position(&self) -> PyResult<u64> {
        Ok(self.live()?.position())
    }

    /// Whether this handle was inherited across fork(2) (and so is inert).
    #[getter]
    fn is_inert(&self) -> PyResult<bool> {
        Ok(self.live()?.is_inert())
    }

    /// Whether the producer role was taken and is no longer held by a live
    /// process (given back, or its holder died).
    #[getter]
    fn is_abandoned(&self) -> PyResult<bool> {
        Ok(self.live()?.is_abandoned())
    }

    /// The element dtype.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyAny> {
        self.elem.dtype.clone_ref(py)
    }

    /// Gives the role back; later calls raise ValueError.
    ///
    /// >>> rx.close()
    fn close(&mut self) -> PyResult<()> {
        if self.chunk_open.is_open() {
            return Err(ShmError::new_err(format!(
                "{}: a read chunk is open; commit() or release() it first",
                self.name
            )));
        }
        self.core = None;
        self.ring = None;
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &mut self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.core.is_some() {
            "open"
        } else {
            "closed"
        };
        format!("SpscConsumer({:?}, {state})", self.name)
    }
}

/// Free slots of an `SpscRing` reserved by `producer.write_chunk(n)`, to
/// fill in place through the buffer protocol (`memoryview(chunk)` is
/// writable, `len(chunk)` elements of `chunk.itemsize` bytes, zeroed).
/// `commit(k)` publishes the first `k` elements (all by default);
/// `release()` (or leaving a `with` block without commit) publishes none.
/// Both refuse with BufferError while memoryviews of the chunk are still
/// exported: release them first.
///
/// >>> ring = shm.SpscRing.create("/shm-test-doc-wchunk", 8, dtype="u8")
/// >>> tx, rx = ring.producer(), ring.consumer()
/// >>> import numpy as np
/// >>> chunk = tx.write_chunk(3)
/// >>> a = np.frombuffer(chunk, dtype="u8"); a[:] = [1, 2, 3]; del a
/// >>> chunk.commit(2)
/// >>> rx.pop(), rx.pop(), rx.pop()
/// (1, 2, None)
#[pyclass(module = "shm", frozen)]
pub(crate) struct RingWriteChunk {
    producer: Py<SpscProducer>,
    slots: Slots,
}

#[pymethods]
impl RingWriteChunk {
    /// Publishes the first `n` elements (default: all of them).
    ///
    /// >>> tx.write_chunk(1).commit()
    #[pyo3(signature = (n = None))]
    fn commit(&self, py: Python<'_>, n: Option<usize>) -> PyResult<()> {
        self.end(py, n.unwrap_or(self.slots.len), "RingWriteChunk.commit")
    }

    /// Publishes nothing and ends the chunk.
    ///
    /// >>> tx.write_chunk(1).release()
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, 0, "RingWriteChunk.release")
    }

    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        self.slots.size
    }

    /// Whether the chunk is still open (neither committed nor released).
    #[getter]
    fn is_open(&self) -> bool {
        self.slots.is_open()
    }

    fn __len__(&self) -> usize {
        self.slots.len
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Leaves a `with` block: releases the chunk if it was not committed.
    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.slots.is_open() {
            self.end(py, 0, "RingWriteChunk.__exit__")?;
        }
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        // `try_borrow`: another thread may be inside a call of the role.
        let name = self
            .producer
            .bind(py)
            .try_borrow()
            .map_or_else(|_| "?".to_owned(), |r| r.name.clone());
        self.slots.repr("RingWriteChunk", &name)
    }

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        // SAFETY: CPython's view; the slots stay the producer's until commit
        // or release, which refuse while this export is counted.
        unsafe {
            slf.get().slots.export(
                view,
                flags,
                false,
                slf.as_any(),
                "the chunk was committed or released: its slots are no longer the producer's",
            )
        }
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.slots.exports.sub();
    }
}

impl RingWriteChunk {
    fn end(&self, py: Python<'_>, n: usize, what: &str) -> PyResult<()> {
        self.slots.may_end(n, what)?;
        let mut p = self.producer.bind(py).try_borrow_mut()?;
        self.slots.close();
        if n > 0 {
            p.core()?
                .chunk_commit(n)
                .map_err(|e| bulk_err(e, FORKED_PRODUCER))?;
        }
        Ok(())
    }
}

/// Ready elements of an `SpscRing` borrowed by `consumer.read_chunk(n)`,
/// read in place through the buffer protocol (`memoryview(chunk)` is
/// read-only). `commit(k)` releases the first `k` elements (all by
/// default); `release()` releases none. Both refuse with BufferError while
/// memoryviews of the chunk are still exported.
///
/// >>> ring = shm.SpscRing.create("/shm-test-doc-rchunk", 8, dtype="u1")
/// >>> tx, rx = ring.producer(), ring.consumer()
/// >>> tx.push_many(b"abc")
/// 3
/// >>> with rx.read_chunk(8) as chunk:
/// ...     print(bytes(chunk))
/// ...     chunk.commit(2)
/// b'abc'
/// >>> rx.pop()
/// 99
#[pyclass(module = "shm", frozen)]
pub(crate) struct RingReadChunk {
    consumer: Py<SpscConsumer>,
    slots: Slots,
}

#[pymethods]
impl RingReadChunk {
    /// Releases the first `n` elements (default: all of them).
    ///
    /// >>> tx.push(1); rx.read_chunk(1).commit()
    #[pyo3(signature = (n = None))]
    fn commit(&self, py: Python<'_>, n: Option<usize>) -> PyResult<()> {
        self.end(py, n.unwrap_or(self.slots.len), "RingReadChunk.commit")
    }

    /// Releases nothing and ends the chunk: the elements stay first in line.
    ///
    /// >>> tx.push(1); rx.read_chunk(1).release()
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, 0, "RingReadChunk.release")
    }

    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        self.slots.size
    }

    /// Whether the chunk is still open.
    #[getter]
    fn is_open(&self) -> bool {
        self.slots.is_open()
    }

    fn __len__(&self) -> usize {
        self.slots.len
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Leaves a `with` block: releases nothing more if not committed.
    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.slots.is_open() {
            self.end(py, 0, "RingReadChunk.__exit__")?;
        }
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        // `try_borrow`: another thread may be inside a call of the role.
        let name = self
            .consumer
            .bind(py)
            .try_borrow()
            .map_or_else(|_| "?".to_owned(), |r| r.name.clone());
        self.slots.repr("RingReadChunk", &name)
    }

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        // SAFETY: CPython's view; read-only; the producer does not write
        // these slots until commit, which refuses while this export is
        // counted.
        unsafe {
            slf.get().slots.export(
                view,
                flags,
                true,
                slf.as_any(),
                "the chunk was committed or released: its elements may be overwritten",
            )
        }
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.slots.exports.sub();
    }
}

impl RingReadChunk {
    fn end(&self, py: Python<'_>, n: usize, what: &str) -> PyResult<()> {
        self.slots.may_end(n, what)?;
        let mut c = self.consumer.bind(py).try_borrow_mut()?;
        self.slots.close();
        if n > 0 {
            c.core()?
                .chunk_commit(n)
                .map_err(|e| bulk_err(e, FORKED_CONSUMER))?;
        }
        Ok(())
    }
}

/// The slots of a write or read chunk: where they are, their exports, the
/// chunk's id in its role's [`ChunkSlot`], and the ring that keeps them
/// mapped. Collected while open, the chunk ends (publishing or releasing
/// nothing).
struct Slots {
    ptr: usize,
    /// Elements.
    len: usize,
    /// Bytes per element.
    size: usize,
    exports: Exports,
    id: u64,
    open: Arc<ChunkSlot>,
    /// Keeps the slots mapped for the chunk's whole life: NumPy's
    /// `ndarray(shape, buffer=chunk)` releases the buffer at once and keeps
    /// only the chunk, so `exports` cannot see such an array, and the role
    /// may be closed and the ring dropped while it lives.
    _ring: Arc<dyn SpscCore>,
}

impl Slots {
    fn new(
        ptr: usize,
        len: usize,
        size: usize,
        open: &Arc<ChunkSlot>,
        ring: Arc<dyn SpscCore>,
    ) -> Self {
        Slots {
            ptr,
            len,
            size,
            exports: Exports::default(),
            id: open.open(),
            open: Arc::clone(open),
            _ring: ring,
        }
    }

    fn is_open(&self) -> bool {
        self.open.is(self.id)
    }

    /// `Class("/name", len=3, itemsize=8, open)`.
    fn repr(&self, class: &str, name: &str) -> String {
        let state = if self.is_open() { "open" } else { "ended" };
        format!(
            "{class}({name:?}, len={}, itemsize={}, {state})",
            self.len, self.size
        )
    }

    fn close(&self) {
        self.open.close(self.id);
    }

    /// Whether the chunk may end with its first `n` elements committed.
    fn may_end(&self, n: usize, what: &str) -> PyResult<()> {
        if !self.is_open() {
            return Err(PyValueError::new_err(format!(
                "{what}: the chunk was already committed or released"
            )));
        }
        self.exports.refuse(what)?;
        if n > self.len {
            return Err(PyValueError::new_err(format!(
                "{what}({n}) on a chunk of {} elements",
                self.len
            )));
        }
        Ok(())
    }

    /// Exports the slots as `owner`'s buffer while the chunk is open
    /// (`ValueError` saying `ended` once it is not).
    ///
    /// # Safety
    ///
    /// `view` is the pointer CPython passed to `__getbuffer__`; the slots
    /// are not written by anyone else while the chunk is open (read-only
    /// exports: not written at all), as the ring protocol has it.
    unsafe fn export(
        &self,
        view: *mut ffi::Py_buffer,
        flags: c_int,
        readonly: bool,
        owner: &Bound<'_, PyAny>,
        ended: &'static str,
    ) -> PyResult<()> {
        if !self.is_open() {
            return Err(PyValueError::new_err(ended));
        }
        // SAFETY: `len * size` bytes of slots inside the ring's mapping,
        // which `_ring` keeps mapped for as long as `owner` (the chunk, which
        // owns these slots) lives; the rest is the caller's promise.
        unsafe {
            fill_view(
                view,
                flags,
                self.ptr as *mut u8,
                self.len * self.size,
                readonly,
                owner,
            )?
        };
        self.exports.add();
        Ok(())
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        self.close();
    }
}

/// Which chunk of a role is open (0: none). A chunk ends only if it is the
/// open one, so a stale chunk collected late does not end a newer one.
#[derive(Default)]
pub(crate) struct ChunkSlot {
    current: AtomicU64,
    next: AtomicU64,
}

impl ChunkSlot {
    fn is_open(&self) -> bool {
        self.current.load(Ordering::Relaxed) != 0
    }
    fn open(&self) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.current.store(id, Ordering::Relaxed);
        id
    }
    fn is(&self, id: u64) -> bool {
        self.current.load(Ordering::Relaxed) == id
    }
    fn close(&self, id: u64) {
        let _ = self
            .current
            .compare_exchange(id, 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}
