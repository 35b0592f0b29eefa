//! Segments for Python: [`SharedMemory`](shared_memory) (POSIX, a drop-in for
//! `multiprocessing.shared_memory.SharedMemory`), [`SysV`](sysv) (System V,
//! file-like and `sysv_ipc`-like) and [`Memfd`](memfd) with descriptor passing.
//!
//! Every class keeps its mapping in a [`Core`]. Every buffer over a mapping
//! is exported by one [`Mapped`] object that owns a reference to it, and
//! `Core::take` refuses to unmap while anyone else references that object
//! (memoryviews, their slices, NumPy arrays whose base it is):
//! `close()`/`detach()` raise `BufferError` instead of leaving a dangling view.
//!
//! Locking: the classes are `Sync` (Python threads may share them), so their
//! state sits behind `std::sync::Mutex`es. Every critical section is plain
//! Rust and never runs Python code (no allocation, no release of the GIL),
//! so a thread that holds one of these locks also holds the GIL, and no
//! thread ever waits for one while another waits for the GIL.

use std::ffi::c_int;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PyString, PyWeakrefMethods, PyWeakrefReference};
use shm_segment::copy::{copy_from_shared_raw, copy_shared_to_shared};
use shm_segment::{Error, Region, RegionChecks};

use crate::common::{fill_view, new_bytes};
use crate::errors;

mod memfd;
mod shared_memory;
mod subscript;
mod sysv;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    shared_memory::register(m)?;
    sysv::register(m)?;
    memfd::register(m)?;
    Ok(())
}

/// Copies at least this long run with the GIL released.
const DETACH_COPY: usize = 256 * 1024;

/// Bytes to write, from `str` (as UTF-8) or any bytes-like object.
pub(crate) enum Data<'py> {
    /// Immutable bytes owned by Python (`bytes`, or a `str`'s UTF-8): a
    /// plain slice is sound.
    Bytes(Bound<'py, PyBytes>),
    /// Any other buffer: it may itself be shared memory, so it is copied
    /// with raw pointers only.
    Buffer(pyo3::buffer::PyUntypedBuffer),
}

impl<'py> Data<'py> {
    pub(crate) fn extract(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Data::Bytes(b.clone()));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            let utf8 = s.encode_utf8()?;
            return Ok(Data::Bytes(utf8));
        }
        let buf = pyo3::buffer::PyUntypedBuffer::get(obj).map_err(|_| {
            PyTypeError::new_err(format!(
                "write: a str or a bytes-like object is required, not '{}'",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        if buf.is_c_contiguous() {
            return Ok(Data::Buffer(buf));
        }
        // Non-contiguous (a strided view): `bytes()` gathers it.
        let bytes = obj
            .py()
            .get_type::<PyBytes>()
            .call1((PyMemoryView::from(obj)?,))?;
        Ok(Data::Bytes(bytes.cast_into::<PyBytes>()?))
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Data::Bytes(b) => b.as_bytes().len(),
            Data::Buffer(b) => b.len_bytes(),
        }
    }

    /// The data as a private copy (a buffer may itself be shared memory
    /// that someone writes: copied atomically, no slice over it).
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        match self {
            Data::Bytes(b) => b.as_bytes().to_vec(),
            Data::Buffer(b) => {
                let len = b.len_bytes();
                let mut out = Vec::with_capacity(len);
                // SAFETY: the source is a C-contiguous buffer of `len` bytes
                // that stays valid while `b` holds it, and whoever else may
                // write it (shared memory) does so atomically (the package's
                // contract); `out` is private, has room for `len` bytes and
                // overlaps nothing. The copy initialises all `len` bytes.
                unsafe {
                    copy_from_shared_raw(b.buf_ptr().cast::<u8>(), out.as_mut_ptr(), len);
                    out.set_len(len);
                }
                out
            }
        }
    }

    /// Copies the data into `region` at `offset`, checked.
    pub(crate) fn write_to<R: Region>(&self, region: &R, offset: usize) -> Result<(), Error> {
        match self {
            Data::Bytes(b) => region.write_at(offset, b.as_bytes()),
            Data::Buffer(b) => {
                let len = b.len_bytes();
                region.check_writable("write")?;
                region.check_range("write", offset, len)?;
                // SAFETY: the destination range is inside the writable
                // region (checked above); the source is a C-contiguous buffer
                // of `len` bytes that stays valid while `b` holds it. Either
                // side may be shared memory that others write (atomically),
                // even the same mapping overlapping: a shared-to-shared copy,
                // atomic on both sides, with `memmove`'s result.
                unsafe {
                    copy_shared_to_shared(
                        b.buf_ptr().cast::<u8>(),
                        region.as_ptr().add(offset),
                        len,
                    )
                };
                Ok(())
            }
        }
    }
}

/// Reads `len` bytes at `offset` of `region` into a new `bytes`, releasing
/// the GIL for long copies.
pub(crate) fn read_bytes<'py, R>(
    py: Python<'py>,
    region: &Arc<R>,
    offset: usize,
    len: usize,
) -> PyResult<Bound<'py, PyBytes>>
where
    R: Region + Send + Sync,
{
    // Checked before allocating: a bad length is a ValueError, not a
    // MemoryError.
    region
        .check_range("read", offset, len)
        .map_err(errors::segment)?;
    new_bytes(py, len, |out| {
        if len >= DETACH_COPY {
            // Addresses, to cross into the GIL-free closure: `out` is a fresh
            // bytes object that nobody else can see yet, and `region` is
            // borrowed for the whole call.
            let out = out as usize;
            py.detach(|| {
                // SAFETY: `out` has room for `len` bytes and is private.
                unsafe { read_raw(&**region, offset, out as *mut u8, len) }
            })
        } else {
            // SAFETY: `out` is a fresh bytes object's `len` bytes, private.
            unsafe { read_raw(&**region, offset, out, len) }
        }
        .map_err(errors::segment)
    })
}

/// Copies `len` bytes at `offset` of `region` to `out`, checked.
///
/// # Safety
///
/// `out` is valid for writes of `len` bytes (it may be uninitialised) and
/// private: nobody else accesses it during the call, and it is not inside
/// `region`.
unsafe fn read_raw<R: Region + ?Sized>(
    region: &R,
    offset: usize,
    out: *mut u8,
    len: usize,
) -> Result<(), Error> {
    region.check_range("read", offset, len)?;
    // SAFETY: the range is inside the region (checked above), which is
    // readable for its whole length and only accessed atomically by anyone
    // who may write it; `out` is the caller's private memory.
    unsafe { copy_from_shared_raw(region.as_ptr().add(offset), out, len) };
    Ok(())
}

/// The one Python object that every buffer over a mapping points to: each
/// memoryview that `buf` returns (and each slice of it) holds it as its
/// `obj`, and NumPy, which releases a buffer at once and keeps only the
/// exporter as an array's `base`, holds it too. It owns a reference to the
/// mapping, so the mapping outlives every such view; and while anyone
/// besides its `Core` references it, `Core::take` (close, detach) refuses.
#[pyclass(module = "shm", frozen, name = "_Mapped")]
pub(crate) struct Mapped {
    region: Arc<dyn Region + Send + Sync>,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped")
            .field("target", &self.region.target())
            .field("len", &self.region.len())
            .finish()
    }
}

#[pymethods]
impl Mapped {
    /// The buffer protocol over the whole mapping (read-only if mapped so).
    ///
    /// # Safety
    ///
    /// Called by CPython with a valid `Py_buffer`.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let region = &slf.get().region;
        let read_only = region.is_read_only();
        if read_only && flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err(format!(
                "buffer of {}: the mapping is read-only, and a writable buffer was asked for",
                region.target()
            )));
        }
        // SAFETY: CPython's view; `len` mapped bytes that stay mapped
        // while this object lives (it owns a reference to the mapping).
        unsafe {
            fill_view(
                view,
                flags,
                region.as_ptr(),
                region.len(),
                read_only,
                slf.as_any(),
            )
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<mapping of {}, {} bytes>",
            self.region.target(),
            self.region.len()
        )
    }
}

/// A mapping as a class holds it: typed, for its own copies, and through
/// its `Mapped`, for buffers.
struct Held<M> {
    region: Arc<M>,
    mapped: Py<Mapped>,
}

/// One mapping as a Python object holds it: the mapping (absent when closed
/// or detached) with its `Mapped`, and the memoryview that `buf` last
/// returned (a weak reference, so no cycle), which `buf` returns again while
/// it lives.
pub(crate) struct Core<M> {
    map: Mutex<Option<Held<M>>>,
    view: Mutex<Option<Py<PyWeakrefReference>>>,
    /// What an access finds when nothing is mapped ("closed", "not attached").
    unmapped: &'static str,
}

impl<M> std::fmt::Debug for Core<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field(
                "mapped",
                &self.map.lock().map(|m| m.is_some()).unwrap_or(false),
            )
            .field("unmapped", &self.unmapped)
            .finish()
    }
}

impl<M: Region + Send + Sync + 'static> Core<M> {
    pub(crate) fn new(py: Python<'_>, map: Option<M>, unmapped: &'static str) -> PyResult<Self> {
        let core = Core {
            map: Mutex::new(None),
            view: Mutex::new(None),
            unmapped,
        };
        if let Some(map) = map {
            core.install(py, map)?;
        }
        Ok(core)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Held<M>>> {
        // No panic happens inside these short sections; if one did, the
        // data (an Option) would still be consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mapping, or `ValueError` saying that `what` is not mapped.
    pub(crate) fn get(&self, op: &str, what: &dyn Fn() -> String) -> PyResult<Arc<M>> {
        match self.lock().as_ref() {
            Some(held) => Ok(Arc::clone(&held.region)),
            None => Err(PyValueError::new_err(format!(
                "{op} {}: {}",
                what(),
                self.unmapped
            ))),
        }
    }

    /// Runs `f` on the mapping with the lock held, without taking a
    /// reference to it: the cheapest access, for short copies. `f` must be
    /// plain Rust (it runs under the lock: no Python, no GIL release).
    pub(crate) fn with<T>(
        &self,
        op: &str,
        what: &dyn Fn() -> String,
        f: impl FnOnce(&M) -> T,
    ) -> PyResult<T> {
        match self.lock().as_ref() {
            Some(held) => Ok(f(&held.region)),
            None => Err(PyValueError::new_err(format!(
                "{op} {}: {}",
                what(),
                self.unmapped
            ))),
        }
    }

    /// `len` bytes at `offset` as a new `bytes`, checked: short copies
    /// under the lock, long ones (`DETACH_COPY` and up) from a reference
    /// to the mapping with the GIL released.
    pub(crate) fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        op: &str,
        what: &dyn Fn() -> String,
        offset: usize,
        len: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if len >= DETACH_COPY {
            return read_bytes(py, &self.get(op, what)?, offset, len);
        }
        new_bytes(py, len, |out| {
            // SAFETY: `out` is a fresh bytes object's `len` bytes, private.
            self.with(op, what, |m| unsafe { read_raw(m, offset, out, len) })?
                .map_err(errors::segment)
        })
    }

    /// Copies `data` in at `offset`, checked, under the lock.
    pub(crate) fn write_data(
        &self,
        op: &str,
        what: &dyn Fn() -> String,
        data: &Data<'_>,
        offset: usize,
    ) -> PyResult<()> {
        self.with(op, what, |m| data.write_to(m, offset))?
            .map_err(errors::segment)
    }

    pub(crate) fn is_mapped(&self) -> bool {
        self.lock().is_some()
    }

    /// Installs a new mapping; the caller has taken the old one (if any).
    pub(crate) fn install(&self, py: Python<'_>, map: M) -> PyResult<()> {
        let region = Arc::new(map);
        let shared: Arc<dyn Region + Send + Sync> = region.clone();
        let mapped = Py::new(py, Mapped { region: shared })?;
        *self.lock() = Some(Held { region, mapped });
        Ok(())
    }

    /// Takes the mapping out, to unmap it; refuses with `BufferError` while
    /// anything besides this object references it (a memoryview from `buf`
    /// or a slice of it, a NumPy array over one). `Ok(None)` when not mapped.
    ///
    /// Unlike the standard library's `close`, it never releases the
    /// memoryview that `buf` returned: one that is alive is referenced by
    /// someone (a variable, an array's base), who would be left over
    /// unmapped memory.
    pub(crate) fn take(
        &self,
        py: Python<'_>,
        op: &str,
        what: &dyn Fn() -> String,
    ) -> PyResult<Option<Arc<M>>> {
        let held = {
            let mut guard = self.lock();
            let others = guard.as_ref().map_or(0, |h| {
                // SAFETY: a live object (we hold a reference to it), and
                // we are attached to the interpreter (`py`).
                let count = unsafe { ffi::Py_REFCNT(h.mapped.bind(py).as_ptr()) };
                count.saturating_sub(1)
            });
            if others > 0 {
                drop(guard);
                return Err(PyBufferError::new_err(format!(
                    "cannot {op} {}: {others} object{} (the memoryview that buf returned, \
                     slices of it, NumPy arrays over it) still reference{} the mapping; \
                     release them first (del them, or call memoryview.release())",
                    what(),
                    if others == 1 { "" } else { "s" },
                    if others == 1 { "s" } else { "" },
                )));
            }
            guard.take()
        };
        // Dropped outside the lock: the Mapped object goes (nobody else has
        // it), and with it the last reference to the mapping but ours.
        Ok(held.map(|h| h.region))
    }

    /// `buf`: the cached memoryview if it is still alive and not released,
    /// else a new one over the whole mapping.
    pub(crate) fn buf<'py>(
        &self,
        py: Python<'py>,
        what: &dyn Fn() -> String,
    ) -> PyResult<Bound<'py, PyMemoryView>> {
        let cached = self
            .view
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|w| w.clone_ref(py));
        let mapped = match self.lock().as_ref() {
            Some(h) => h.mapped.clone_ref(py),
            None => {
                return Err(PyValueError::new_err(format!(
                    "buf of {}: {}",
                    what(),
                    self.unmapped
                )))
            }
        };
        if let Some(view) = cached.and_then(|w| w.bind(py).upgrade()) {
            // A released memoryview raises ValueError on any attribute; one
            // of an older mapping (before a re-attach) has another obj.
            if let Ok(obj) = view.getattr(pyo3::intern!(py, "obj")) {
                if obj.is(&mapped) {
                    return Ok(view.cast_into::<PyMemoryView>()?);
                }
            }
        }
        let view = PyMemoryView::from(mapped.bind(py).as_any())?;
        let weak = PyWeakrefReference::new(&view)?.unbind();
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = Some(weak);
        Ok(view)
    }
}
