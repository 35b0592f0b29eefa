//! `shm.SpscRing` and `shm.MpmcRing`: the Rust rings of `shm-ring`, in
//! POSIX shared memory by name, with the layout Rust processes use.
//!
//! A ring's element type is a numpy-compatible dtype ([`crate::dtype`]); the
//! Rust element type behind it is a byte-array carrier of the same size and
//! alignment ([`carrier`]), so a Rust `SpscRing<u64>` and a Python
//! `SpscRing(dtype='u8')` are the same ring.

pub(crate) mod carrier;
mod mpmc;
mod spsc;

use std::os::raw::c_int;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyBufferError, PyTimeoutError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use shm_ring::RingOptions;
use shm_segment::{Header, Kind, Segment};

use crate::dtype::Elem;
use crate::errors;
use carrier::{makers, Makers, Open, LAYOUTS};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    spsc::register(m)?;
    mpmc::register(m)?;
    Ok(())
}

/// Longest sleep of a blocking call between two checks for Ctrl-C.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// The carrier for `elem`, or a `ValueError` naming what is supported.
pub(crate) fn makers_for(elem: &Elem) -> PyResult<Makers> {
    makers(elem.size, elem.align).ok_or_else(|| {
        let list: Vec<String> = LAYOUTS.iter().map(|(s, a)| format!("{s}/{a}")).collect();
        PyValueError::new_err(format!(
            "dtype {} ({}) is not supported by the rings; supported itemsize/alignment pairs: {}",
            elem.name,
            elem.layout(),
            list.join(", ")
        ))
    })
}

/// Options of a ring made from Python.
pub(crate) fn options(blocking: bool) -> RingOptions {
    RingOptions::new().blocking(blocking)
}

/// Opens `name` and checks that it holds a ring of `kind` whose elements
/// have `elem`'s size and alignment, so the message of a mismatch names the
/// ring and both layouts (attaching validates everything again).
pub(crate) fn open_checked(name: &str, kind: Kind, what: &str, elem: &Elem) -> PyResult<Segment> {
    let seg = Segment::open_posix(name).map_err(errors::segment)?;
    let info = Header::read(&seg).map_err(errors::segment)?;
    if info.kind != kind {
        return Err(PyValueError::new_err(format!(
            "{name} holds a {}, not a {what}",
            info.kind.name().map_or_else(
                || format!("structure of kind {:#x}", info.kind.0),
                str::to_owned
            )
        )));
    }
    if info.elem_size as usize != elem.size || info.elem_align as usize != elem.align {
        return Err(PyValueError::new_err(format!(
            "{what} {name} holds elements of {} bytes aligned to {}; dtype {} has {}",
            info.elem_size,
            info.elem_align,
            elem.name,
            elem.layout()
        )));
    }
    Ok(seg)
}

/// `Open::Create` for `create(name, capacity, ...)`.
pub(crate) fn create_how(name: &str, capacity: usize, blocking: bool) -> Open<'_> {
    Open::Create {
        name,
        capacity,
        opts: options(blocking),
    }
}

/// A timeout argument: `None` waits for ever; negative is a `ValueError`.
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
pub(crate) fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.checked_duration_since(Instant::now())?;
            Some(left.min(SLICE))
        }
    }
}

/// Runs `attempt` (which waits at most the slice it is given, with the GIL
/// released) until it returns `Some`, the deadline passes (`TimeoutError`
/// naming `what`), or a signal handler raises (Ctrl-C: `KeyboardInterrupt`).
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

/// Fills a `Py_buffer` for `len` bytes at `ptr`, unsigned bytes (`'B'`),
/// owned by `owner` (which the view keeps alive, and with it the mapping).
///
/// # Safety
///
/// `view` is the pointer CPython passed to `__getbuffer__`; `ptr` is valid
/// for `len` bytes (writes too unless `readonly`) as long as `owner` lives.
pub(crate) unsafe fn fill_view(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    ptr: *mut u8,
    len: usize,
    readonly: bool,
    owner: Bound<'_, PyAny>,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("the buffer view is null"));
    }
    // SAFETY: CPython's buffer API: a non-null view, a pointer valid for
    // `len` bytes while `owner` (whose reference the view takes) lives.
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast(),
            len as ffi::Py_ssize_t,
            c_int::from(readonly),
            flags,
        )
    };
    if rc == -1 {
        return Err(PyErr::fetch(owner.py()));
    }
    Ok(())
}

/// A contiguous buffer of another Python object, held for the duration of
/// one call (released on drop).
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
        let len = b.view.len as usize;
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
        // callers hold the GIL while a `Borrowed` lives.
        unsafe { ffi::PyBuffer_Release(&mut self.view) }
    }
}

/// A `BufferError` for an operation refused while memoryviews are exported.
pub(crate) fn exported_err(what: &str, n: usize) -> PyErr {
    PyBufferError::new_err(format!(
        "{what}: {n} memoryview(s) of it are still exported; release them first \
         (`del view`, `view.release()`, or `with memoryview(x) as view:`)"
    ))
}

/// Element bytes on the stack for small elements, on the heap beyond.
pub(crate) enum Scratch {
    Stack([u8; 64], usize),
    Heap(Vec<u8>),
}

impl Scratch {
    pub(crate) fn new(size: usize) -> Self {
        if size <= 64 {
            Scratch::Stack([0; 64], size)
        } else {
            Scratch::Heap(vec![0; size])
        }
    }

    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        match self {
            Scratch::Stack(b, n) => &mut b[..*n],
            Scratch::Heap(v) => v,
        }
    }
}
