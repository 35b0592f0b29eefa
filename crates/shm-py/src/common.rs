//! What every class of the package does the same way: argument checks,
//! random names, blocking waits that release the GIL and honour Ctrl-C,
//! and the buffer protocol (exporting shared memory, counting the exports,
//! and borrowing other objects' buffers without a Rust slice).

use std::os::raw::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyBufferError, PyTimeoutError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

// ---------------------------------------------------------------- arguments

/// A non-negative size, count or offset from Python, or `ValueError`
/// naming `what` (and `target`, called only for the message).
pub(crate) fn non_negative(value: i64, what: &str, target: &dyn Fn() -> String) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{}: {what} must be a non-negative integer, got {value}",
            target()
        ))
    })
}

/// A count or size that must be at least 1 and at most `max`, or
/// `ValueError` naming `what`.
pub(crate) fn positive(what: &str, value: i64, max: u64) -> PyResult<usize> {
    match u64::try_from(value) {
        Ok(v) if v >= 1 && v <= max => Ok(v as usize),
        _ => Err(PyValueError::new_err(format!(
            "{what} must be between 1 and {max}, not {value}"
        ))),
    }
}

/// `ValueError` for an object used after it was closed: Python's convention
/// for a closed file ("I/O operation on closed file"). `what` names the
/// object's class (and how it relates to `name`).
pub(crate) fn closed(what: &str, name: &str) -> PyErr {
    PyValueError::new_err(format!("{what} {name} is closed"))
}

// ------------------------------------------------------------------- random

/// Fills `buf` from the kernel's random source (`getrandom(2)`).
pub(crate) fn random_bytes(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: writes at most `rest.len()` bytes into `rest`.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got > 0 {
            filled += got as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // No getrandom(2) (ENOSYS): the clock and the pid.
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                ^ u128::from(std::process::id()).rotate_left(64);
            for (b, k) in rest.iter_mut().zip(seed.to_le_bytes().iter().cycle()) {
                *b ^= k;
            }
            return;
        }
    }
}

/// `n` random bytes as hex (`2 n` characters), for generated names.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    random_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random `u32`.
pub(crate) fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    random_bytes(&mut bytes);
    u32::from_ne_bytes(bytes)
}

// -------------------------------------------------------------------- waits

/// Longest wait with the GIL released between two checks for Ctrl-C.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// A timeout argument as a deadline: `None` (and a timeout too large to
/// add to the clock, `inf` included) waits for ever; negative or NaN is a
/// `ValueError`.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(format!(
            "timeout must be None or a number of seconds >= 0, got {t}"
        ))),
        Some(t) => Ok(Instant::now().checked_add(Duration::from_secs_f64(t.min(1e9)))),
    }
}

/// The next slice to wait: at most [`SLICE`], at most what is left;
/// `None` once the deadline passed.
fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => Some(d.checked_duration_since(Instant::now())?.min(SLICE)),
    }
}

/// Runs `attempt` (which waits at most the slice it is given, with the GIL
/// released) until it returns `Some`, the deadline passes (`TimeoutError`
/// naming `what`), or a signal handler raises (Ctrl-C: `KeyboardInterrupt`).
/// A zero timeout tries once.
pub(crate) fn wait_loop<T>(
    py: Python<'_>,
    timeout: Option<f64>,
    what: &str,
    mut attempt: impl FnMut(Python<'_>, Duration) -> PyResult<Option<T>>,
) -> PyResult<T> {
    let deadline = deadline(timeout)?;
    let mut first = true;
    loop {
        let slice = match next_slice(deadline) {
            Some(s) => s,
            // One last try at a zero timeout, so timeout=0 polls once.
            None if first => Duration::ZERO,
            None => {
                return Err(PyTimeoutError::new_err(format!(
                    "{what}: timed out after {} s",
                    timeout.unwrap_or(0.0)
                )))
            }
        };
        first = false;
        if let Some(v) = attempt(py, slice)? {
            return Ok(v);
        }
        py.check_signals()?;
    }
}

// ------------------------------------------------------------ buffer export

/// Fills a `Py_buffer` for `len` bytes at `ptr`, unsigned bytes (`'B'`),
/// owned by `owner` (which the view keeps alive).
///
/// # Safety
///
/// `view` is the pointer CPython passed to `__getbuffer__`; `ptr` is valid
/// for `len` bytes (writes too unless `readonly`) for as long as `owner`
/// lives: NumPy's `ndarray(shape, buffer=owner)` releases the buffer at once
/// and keeps only `owner`, so no export count can stand in for that.
pub(crate) unsafe fn fill_view(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    ptr: *mut u8,
    len: usize,
    readonly: bool,
    owner: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("the buffer view is null"));
    }
    let len = ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyBufferError::new_err(format!("a buffer of {len} bytes is too large")))?;
    // SAFETY: CPython's buffer API: a non-null view, and a pointer valid
    // for `len` bytes while `owner` (whose reference the view takes) lives.
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast(),
            len,
            c_int::from(readonly),
            flags,
        )
    };
    if rc == -1 {
        return Err(PyErr::fetch(owner.py()));
    }
    Ok(())
}

/// How many buffers an object has exported and not yet released (bumped
/// in `__getbuffer__`, dropped in `__releasebuffer__`): what `release`,
/// `put`, `send`, `commit` and `cleanup` check before the memory stops
/// being the object's.
#[derive(Debug, Default)]
pub(crate) struct Exports(AtomicUsize);

impl Exports {
    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn sub(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }

    /// `BufferError` naming `what` while any export is alive.
    pub(crate) fn refuse(&self, what: &str) -> PyResult<()> {
        match self.0.load(Ordering::Acquire) {
            0 => Ok(()),
            n => Err(PyBufferError::new_err(format!(
                "{what}: {n} memoryview(s) of it are still exported; release them first \
                 (`del view`, `view.release()`, or `with memoryview(x) as view:`)"
            ))),
        }
    }
}

// ------------------------------------------------------------ buffer import

/// A contiguous buffer of another Python object, held for the duration of
/// one call (released on drop). Read and written through its pointer only:
/// it may itself be shared memory that another process writes.
pub(crate) struct Borrowed {
    view: ffi::Py_buffer,
}

impl Borrowed {
    /// Gets `obj`'s buffer, C-contiguous, writable if asked. Its item size
    /// must be `size` or 1 (raw bytes, then a multiple of `size`).
    pub(crate) fn get(
        obj: &Bound<'_, PyAny>,
        writable: bool,
        size: usize,
        what: &str,
    ) -> PyResult<Self> {
        let b = Self::bytes(obj, writable)?;
        let itemsize = b.view.itemsize as usize;
        let len = b.len();
        if (itemsize != size && itemsize != 1) || len % size != 0 {
            return Err(PyValueError::new_err(format!(
                "{what}: the buffer has items of {itemsize} bytes ({len} bytes in all); the \
                 ring's elements have {size} bytes (pass an array of the ring's dtype, or raw \
                 bytes of a multiple of {size})"
            )));
        }
        Ok(b)
    }

    /// Gets `obj`'s buffer, C-contiguous, writable if asked, as bytes
    /// (any item size).
    pub(crate) fn bytes(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<Self> {
        let mut flags = ffi::PyBUF_C_CONTIGUOUS | ffi::PyBUF_FORMAT;
        if writable {
            flags |= ffi::PyBUF_WRITABLE;
        }
        // SAFETY: an all-zero Py_buffer is the state CPython expects to fill.
        let mut view: ffi::Py_buffer = unsafe { std::mem::zeroed() };
        // SAFETY: `obj` is a live object; `view` is ours to fill.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut view, flags) };
        if rc == -1 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Borrowed { view })
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.view.buf.cast()
    }

    pub(crate) fn len(&self) -> usize {
        self.view.len as usize
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        // SAFETY: a view `PyObject_GetBuffer` filled, released once; the
        // callers hold the GIL while a `Borrowed` lives (it is not `Send`).
        unsafe { ffi::PyBuffer_Release(&mut self.view) }
    }
}

// ------------------------------------------------------------- bytes out

/// A new `bytes` of `len` bytes that `fill` writes through a raw pointer,
/// without zeroing it first (`PyBytes::new_with` zeroes, a measurable cost
/// for reads of a few KiB). `fill` must write all `len` bytes or fail; on
/// failure the object is freed unseen.
pub(crate) fn new_bytes<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(*mut u8) -> PyResult<()>,
) -> PyResult<Bound<'py, PyBytes>> {
    let size = ffi::Py_ssize_t::try_from(len).map_err(|_| {
        pyo3::exceptions::PyOverflowError::new_err(format!("cannot make bytes of {len} bytes"))
    })?;
    // SAFETY: a NULL source with a size asks CPython for a new bytes object
    // with uninitialised contents; we hold the GIL.
    let raw = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
    // SAFETY: `raw` is a new (owned) reference, or NULL with an exception set.
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, raw)? };
    // SAFETY: `obj` is a live bytes object (made just above).
    let buf = unsafe { ffi::PyBytes_AsString(obj.as_ptr()) };
    if buf.is_null() {
        return Err(PyErr::fetch(py));
    }
    fill(buf.cast::<u8>())?;
    // SAFETY: made by `PyBytes_FromStringAndSize`: a bytes object.
    Ok(unsafe { obj.cast_into_unchecked::<PyBytes>() })
}
