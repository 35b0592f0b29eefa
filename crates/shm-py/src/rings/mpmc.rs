//! `shm.MpmcRing`: any number of producers and consumers, in any processes.

use std::sync::Arc;

use pyo3::prelude::*;
use shm_segment::Kind;

use super::carrier::{MpmcCore, Open, PopFail, PushFail};
use super::spsc::resolve;
use super::{create_how, makers_for, open_checked, Scratch};
use crate::common::{closed, non_negative, wait_loop, Borrowed};
use crate::dtype::Elem;
use crate::errors::{self, RingFull, ShmError};

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MpmcRing>()
}

/// A multi-producer multi-consumer ring in POSIX shared memory, the same
/// ring as Rust's `shm_ring::MpmcRing<T>` for any `T` of the dtype's size
/// and alignment. Every handle pushes and pops, in any number of
/// processes and threads; there are no roles. A process killed between
/// claiming a slot and publishing (or releasing) it leaves a hole that the
/// others prove dead and repair (`recovered`), and the ring keeps working.
/// Handles inherited across fork(2) keep working in the child.
///
/// `close()` (or leaving a `with` block) drops the handle. The creator's
/// handle removes the name when it is closed or collected; `unlink()`
/// removes it at once.
///
/// >>> import shm
/// >>> ring = shm.MpmcRing.create("/shm-test-doc-mpmc", 16, dtype="i8")
/// >>> other = shm.MpmcRing.attach("/shm-test-doc-mpmc", dtype="i8")
/// >>> ring.push(-1)
/// >>> other.pop(), other.pop()
/// (-1, None)
#[pyclass(module = "shm")]
pub(crate) struct MpmcRing {
    /// `None` once closed.
    core: Option<Box<dyn MpmcCore>>,
    elem: Arc<Elem>,
    name: String,
}

impl MpmcRing {
    fn core(&self) -> PyResult<&dyn MpmcCore> {
        self.core
            .as_deref()
            .ok_or_else(|| closed("MpmcRing", &self.name))
    }

    fn push_fail(&self, f: PushFail) -> PyErr {
        match f {
            PushFail::Full => RingFull::new_err(format!("{}: the ring is full", self.name)),
            other => ShmError::new_err(format!("{}: push failed: {other:?}", self.name)),
        }
    }

    fn pop_fail(&self, f: PopFail) -> PyErr {
        match f {
            PopFail::Stalled(position) => ShmError::new_err(format!(
                "{}: position {position} was claimed by a producer that has not published it \
                 for a second (alive but stopped or starved)",
                self.name
            )),
            other => ShmError::new_err(format!("{}: pop failed: {other:?}", self.name)),
        }
    }
}

#[pymethods]
impl MpmcRing {
    /// Creates the POSIX segment `name` holding a new ring of `capacity`
    /// elements (a power of two) of `dtype`, as `SpscRing.create` does.
    ///
    /// >>> ring = shm.MpmcRing.create("/shm-test-doc-mpmc-create", 8, dtype="u2")
    /// >>> ring.capacity
    /// 8
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
            format!("create MPMC ring {name}")
        })?;
        let elem = resolve(py, dtype)?;
        let makers = makers_for(&elem)?;
        let core = (makers.mpmc)(create_how(name, capacity, blocking)).map_err(errors::ring)?;
        Ok(MpmcRing {
            core: Some(core),
            elem: Arc::new(elem),
            name: name.to_owned(),
        })
    }

    /// Attaches to the ring `name`, checking its layout against `dtype`
    /// (ValueError naming both layouts on a mismatch).
    ///
    /// >>> shm.MpmcRing.attach("/shm-test-doc-mpmc-create", dtype="u2").capacity
    /// 8
    #[staticmethod]
    #[pyo3(signature = (name, dtype = None))]
    fn attach(py: Python<'_>, name: &str, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let elem = resolve(py, dtype)?;
        let makers = makers_for(&elem)?;
        let seg = open_checked(name, Kind::MPMC_RING, "MPMC ring", &elem)?;
        let core = (makers.mpmc)(Open::Attach(seg)).map_err(errors::ring)?;
        Ok(MpmcRing {
            core: Some(core),
            elem: Arc::new(elem),
            name: name.to_owned(),
        })
    }

    /// Pushes one value; raises `shm.RingFull` when the ring is full.
    ///
    /// >>> ring.push(5)
    fn push(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut buf = Scratch::new(self.elem.size);
        (self.elem.encode)(&self.elem, value, buf.bytes())?;
        self.core()?
            .push(buf.bytes())
            .map_err(|f| self.push_fail(f))
    }

    /// Takes one value, or returns None when the ring is empty.
    ///
    /// >>> ring.pop()
    /// 5
    fn pop(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut buf = Scratch::new(self.elem.size);
        match self.core()?.pop(buf.bytes()) {
            Ok(()) => Ok(Some((self.elem.decode)(&self.elem, py, buf.bytes())?)),
            Err(PopFail::Empty) => Ok(None),
            Err(f) => Err(self.pop_fail(f)),
        }
    }

    /// Pushes one value, waiting up to `timeout` seconds (None: for ever)
    /// for room with the GIL released; Ctrl-C interrupts it; TimeoutError
    /// at the deadline.
    ///
    /// >>> ring.push_blocking(6, timeout=1.0)
    #[pyo3(signature = (value, timeout = None))]
    fn push_blocking(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let mut buf = Scratch::new(self.elem.size);
        (self.elem.encode)(&self.elem, value, buf.bytes())?;
        let bytes = buf.bytes();
        let core = self.core()?;
        match core.push(bytes) {
            Err(PushFail::Full) => {}
            r => return r.map_err(|f| self.push_fail(f)),
        }
        let what = format!("push_blocking on {}", self.name);
        let r = wait_loop(py, timeout, &what, |py, slice| {
            match py.detach(|| core.push_blocking(bytes, slice)) {
                Err(PushFail::Full) => Ok(None),
                r => Ok(Some(r)),
            }
        })?;
        r.map_err(|f| self.push_fail(f))
    }

    /// Takes one value, waiting up to `timeout` seconds (None: for ever)
    /// with the GIL released; Ctrl-C interrupts it; TimeoutError at the
    /// deadline.
    ///
    /// >>> ring.pop_blocking(timeout=1.0)
    /// 6
    #[pyo3(signature = (timeout = None))]
    fn pop_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let mut buf = Scratch::new(self.elem.size);
        let bytes = buf.bytes();
        let core = self.core()?;
        let r = match core.pop(bytes) {
            Err(PopFail::Empty) => {
                let what = format!("pop_blocking on {}", self.name);
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
            Ok(()) => (self.elem.decode)(&self.elem, py, bytes),
            Err(f) => Err(self.pop_fail(f)),
        }
    }

    /// Pushes as many elements of `buffer` (C-contiguous, items of the
    /// ring's item size or raw bytes; any alignment) as there is room for,
    /// in order; returns how many.
    ///
    /// >>> ring.push_many(bytes(4))
    /// 2
    fn push_many(&self, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let size = self.elem.size;
        let core = self.core()?;
        let b = Borrowed::get(buffer, false, size, "push_many")?;
        // SAFETY: the buffer holds `len / size` elements and stays exported
        // while `b` lives; we hold the GIL.
        Ok(unsafe { core.push_raw(b.ptr(), b.len() / size) })
    }

    /// Takes as many elements as fit in the writable `buffer`, in order;
    /// returns how many.
    ///
    /// >>> out = bytearray(8)
    /// >>> ring.pop_into(out)
    /// 2
    fn pop_into(&self, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let size = self.elem.size;
        let core = self.core()?;
        let b = Borrowed::get(buffer, true, size, "pop_into")?;
        // SAFETY: a writable buffer of `len / size` elements, exported while
        // `b` lives; we hold the GIL.
        Ok(unsafe { core.pop_raw(b.ptr(), b.len() / size) })
    }

    /// `(skipped, reclaimed)`: positions skipped because their producer
    /// died before publishing, and slots freed because their consumer died
    /// before releasing, in all processes together.
    ///
    /// >>> ring.recovered
    /// (0, 0)
    #[getter]
    fn recovered(&self) -> PyResult<(u64, u64)> {
        Ok(self.core()?.recovered())
    }

    /// The ring's POSIX name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Slots in the ring.
    #[getter]
    fn capacity(&self) -> PyResult<usize> {
        Ok(self.core()?.capacity())
    }

    /// The element dtype.
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
        Ok(self.core()?.len())
    }

    /// Whether this handle removes the name when it is closed or collected
    /// (true for the creator's).
    ///
    /// >>> ring.remove_on_drop
    /// True
    #[getter]
    fn get_remove_on_drop(&self) -> PyResult<bool> {
        Ok(self.core()?.segment().created())
    }

    #[setter]
    fn set_remove_on_drop(&self, remove: bool) -> PyResult<()> {
        self.core()?.segment().set_remove_on_drop(remove);
        Ok(())
    }

    /// Removes the name now; no unlink at drop afterwards.
    ///
    /// >>> ring.unlink()
    fn unlink(&self) -> PyResult<()> {
        super::unlink(self.core()?.segment())
    }

    /// Drops this handle (unmapping the ring; the creator's removes the
    /// name); later calls on it raise ValueError, and a second close does
    /// nothing.
    ///
    /// >>> with shm.MpmcRing.create("/shm-test-doc-mpmc-close", 4) as r:
    /// ...     r.push(1)
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
                "MpmcRing({:?}, capacity={}, dtype={}, len={})",
                self.name,
                core.capacity(),
                self.elem.name,
                core.len()
            ),
            None => format!(
                "MpmcRing({:?}, dtype={}, closed)",
                self.name, self.elem.name
            ),
        }
    }
}
