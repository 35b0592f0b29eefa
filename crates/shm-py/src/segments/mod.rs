//! Segments for Python: [`SharedMemory`](shared_memory) (POSIX, a drop-in for
//! `multiprocessing.shared_memory.SharedMemory`), [`SysV`](sysv) (System V,
//! file-like and `sysv_ipc`-like) and [`Memfd`](memfd) with descriptor passing.
//!
//! Every class keeps its mapping in a [`Core`], which counts the buffers
//! (memoryviews) exported over it and refuses to unmap while any is alive:
//! `close()`/`detach()` raise `BufferError` instead of leaving a dangling view.
//!
//! Locking: the classes are `Sync` (Python threads may share them), so their
//! state sits behind `std::sync::Mutex`es. Every critical section is plain
//! Rust and never calls into Python (no allocation, no release of the GIL),
//! so a thread that holds one of these locks also holds the GIL, and no
//! thread ever waits for one while another waits for the GIL.

use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyBufferError, PyPermissionError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PyString, PyWeakrefMethods, PyWeakrefReference};
use shm_segment::{Error, Region, RegionChecks};

use crate::errors::ShmError;

mod memfd;
mod shared_memory;
mod sysv;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    shared_memory::register(m)?;
    sysv::register(m)?;
    memfd::register(m)?;
    Ok(())
}

/// Copies at least this long run with the GIL released.
const DETACH_COPY: usize = 256 * 1024;

/// The crate's error as the matching Python exception, with the crate's
/// message (which names the operation and the segment):
///
/// - an OS error becomes `OSError(errno, message)`, which Python turns into
///   the matching subclass (`FileNotFoundError`, `FileExistsError`,
///   `PermissionError`, ...) with `errno` set;
/// - a bad name, size, offset or argument becomes `ValueError`;
/// - a write through a read-only mapping, or a refused shrink, `PermissionError`;
/// - the rest (a segment that is not what it claims to be) `shm.ShmError`.
pub(crate) fn seg_err(err: Error) -> PyErr {
    let msg = err.to_string();
    match &err {
        Error::Os { source, .. } => match source.raw_os_error() {
            Some(errno) => os_error(errno, msg),
            None => PyErr::from(std::io::Error::new(source.kind(), msg)),
        },
        Error::InvalidName { .. }
        | Error::InvalidArgument { .. }
        | Error::OutOfBounds { .. }
        | Error::Misaligned { .. }
        | Error::TooSmall { .. } => PyValueError::new_err(msg),
        Error::ReadOnly { .. } | Error::ShrinkRefused { .. } => PyPermissionError::new_err(msg),
        _ => ShmError::new_err(msg),
    }
}

/// `OSError(errno, message)`: Python picks the subclass from the errno.
pub(crate) fn os_error(errno: i32, msg: String) -> PyErr {
    pyo3::exceptions::PyOSError::new_err((errno, msg))
}

/// `n` random bytes from the kernel, as hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: writes at most `n - filled` bytes into the rest of `bytes`.
        let got = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if got > 0 {
            filled += got as usize;
        }
        // EINTR: try again. getrandom(2) cannot otherwise fail here (a small
        // request, a valid buffer, no flags).
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A non-negative size or count from Python, or `ValueError` naming `what`.
pub(crate) fn to_size(value: i64, what: &str, target: &str) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{target}: {what} must be a non-negative integer, got {value}"
        ))
    })
}

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
                // of `len` bytes that stays valid while `b` holds it. Raw
                // pointers only, no slice: either side may be shared memory
                // (even the same mapping, hence `copy`, which allows overlap).
                unsafe {
                    std::ptr::copy(b.buf_ptr().cast::<u8>(), region.as_ptr().add(offset), len)
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
    region.check_range("read", offset, len).map_err(seg_err)?;
    PyBytes::new_with(py, len, |out| {
        let res = if len >= DETACH_COPY {
            // `out` is a fresh bytes object that nobody else can see yet.
            py.detach(|| region.read_at(offset, out))
        } else {
            region.read_at(offset, out)
        };
        res.map_err(seg_err)
    })
}

/// One mapping as a Python object holds it: the mapping (absent when closed
/// or detached), the count of buffers exported over it, and the memoryview
/// that `buf` last returned (a weak reference, so no cycle), which `close`
/// releases first, as the standard library's `SharedMemory.close` does.
pub(crate) struct Core<M> {
    map: Mutex<Option<Arc<M>>>,
    exports: AtomicUsize,
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
            .field("exports", &self.exports.load(Ordering::Relaxed))
            .finish()
    }
}

impl<M: Region + Send + Sync> Core<M> {
    pub(crate) fn new(map: Option<M>, unmapped: &'static str) -> Self {
        Core {
            map: Mutex::new(map.map(Arc::new)),
            exports: AtomicUsize::new(0),
            view: Mutex::new(None),
            unmapped,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<M>>> {
        // A panic never happens inside these short sections; if one did,
        // the data (an Option) is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The mapping, or `ValueError` saying that `what` is closed.
    pub(crate) fn get(&self, op: &str, what: &dyn Fn() -> String) -> PyResult<Arc<M>> {
        self.lock().clone().ok_or_else(|| {
            PyValueError::new_err(format!("{op} {}: {}", what(), self.closed_word()))
        })
    }

    fn closed_word(&self) -> &'static str {
        self.unmapped
    }

    pub(crate) fn is_mapped(&self) -> bool {
        self.lock().is_some()
    }

    /// Installs a new mapping; the caller has taken the old one (if any).
    pub(crate) fn install(&self, map: M) {
        *self.lock() = Some(Arc::new(map));
    }

    /// How many buffers are exported now.
    pub(crate) fn exports(&self) -> usize {
        self.exports.load(Ordering::Acquire)
    }

    /// Takes the mapping out, to unmap it: first releases the memoryview
    /// that `buf` returned (if still alive), then refuses with `BufferError`
    /// while any buffer is still exported. `Ok(None)` when not mapped.
    pub(crate) fn take(
        &self,
        py: Python<'_>,
        op: &str,
        what: &dyn Fn() -> String,
    ) -> PyResult<Option<Arc<M>>> {
        let cached = self.view.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(weak) = cached {
            if let Some(view) = weak.bind(py).upgrade() {
                if let Err(e) = view.call_method0("release") {
                    if e.is_instance_of::<PyBufferError>(py) {
                        return Err(self.busy(op, what, Some(&e.value(py).to_string())));
                    }
                    return Err(e);
                }
            }
        }
        let mut guard = self.lock();
        if guard.is_some() && self.exports() > 0 {
            drop(guard);
            return Err(self.busy(op, what, None));
        }
        Ok(guard.take())
    }

    fn busy(&self, op: &str, what: &dyn Fn() -> String, detail: Option<&str>) -> PyErr {
        let n = self.exports();
        let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
        PyBufferError::new_err(format!(
            "cannot {op} {}: {n} exported buffer{} (memoryviews of its buf, slices of them, or \
             arrays made from them) still point into the mapping{detail}; release them first \
             (del them, or call memoryview.release())",
            what(),
            if n == 1 { "" } else { "s" },
        ))
    }

    /// `buf`: the cached memoryview if it is still alive and not released,
    /// else a new one over the whole mapping.
    pub(crate) fn buf<'py>(&self, slf: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyMemoryView>> {
        let py = slf.py();
        let cached = self
            .view
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|w| w.clone_ref(py));
        if let Some(view) = cached.and_then(|w| w.bind(py).upgrade()) {
            // A released memoryview raises ValueError on any attribute.
            if view.getattr(pyo3::intern!(py, "readonly")).is_ok() {
                return Ok(view.cast_into::<PyMemoryView>()?);
            }
        }
        let view = PyMemoryView::from(slf)?;
        let weak = PyWeakrefReference::new(&view)?.unbind();
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = Some(weak);
        Ok(view)
    }

    /// `__getbuffer__`: fills `view` over the whole mapping and counts it.
    ///
    /// # Safety
    ///
    /// `view` is the `Py_buffer` that CPython passes to `bf_getbuffer`.
    pub(crate) unsafe fn getbuffer(
        &self,
        slf: &Bound<'_, PyAny>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
        what: &dyn Fn() -> String,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("getbuffer: the view is NULL"));
        }
        let (ptr, len, read_only) = {
            let guard = self.lock();
            let Some(map) = guard.as_ref() else {
                return Err(PyBufferError::new_err(format!(
                    "buffer of {}: {}",
                    what(),
                    self.closed_word()
                )));
            };
            // Counted under the lock: `take` sees it before it could unmap.
            self.exports.fetch_add(1, Ordering::AcqRel);
            (map.as_ptr(), map.len(), map.is_read_only())
        };
        if read_only && flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            self.exports.fetch_sub(1, Ordering::AcqRel);
            return Err(PyBufferError::new_err(format!(
                "buffer of {}: the mapping is read-only, and a writable buffer was asked for",
                what()
            )));
        }
        // SAFETY: `view` is valid (CPython's contract, checked non-null);
        // `ptr` is `len` bytes of mapped memory that stays mapped while this
        // export is counted (`take` refuses to unmap until
        // `__releasebuffer__` uncounts it), and `slf` is the object whose
        // `__releasebuffer__` will be called; FillInfo takes a reference to it.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                ptr.cast(),
                len as ffi::Py_ssize_t,
                c_int::from(read_only),
                flags,
            )
        };
        if rc == -1 {
            self.exports.fetch_sub(1, Ordering::AcqRel);
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    /// `__releasebuffer__`: uncounts one export.
    pub(crate) fn releasebuffer(&self) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }
}
