//! `shm.ShareMem`: anonymous shared memory, inherited across `fork`.

use std::ffi::c_int;
use std::sync::{Arc, OnceLock};

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyMemoryView;
use shm_segment::{AnonShared, Region};

use super::arena::{Arena, ARENA_HEAD, MAX_LEN, UNIT};
use super::arena_err;
use crate::common::{fill_view, Exports};

/// Anonymous shared memory (``MAP_SHARED|MAP_ANONYMOUS``), as pyshm's
/// ``ShareMem``: create it *before* ``os.fork()``; parent and child then
/// share its pages. Pools (``shm.mempool.Mempool(..., shm=it)``) and rings
/// (``shm.ring.Ring(..., shm=it)``) are carved out of it by a small
/// allocator whose table lives in its first 4096 bytes, so objects made
/// before the fork sit at the same offsets in the child, and objects made
/// after it by either process never overlap.
///
/// ``buf`` is a writable memoryview of the whole mapping (the allocator's
/// table included); the object itself supports the buffer protocol too.
/// While a view is exported, ``cleanup()`` raises ``BufferError``.
///
/// >>> import os, struct
/// >>> from shm import ShareMem, mempool
/// >>> mem = ShareMem(1 << 20)
/// >>> mem.size
/// 1048576
/// >>> pool = mempool.Mempool(4, 64, shm=mem)
/// >>> mem.used > 0
/// True
#[pyclass(module = "shm", name = "ShareMem")]
pub(crate) struct ShareMem {
    map: Option<Arc<AnonShared>>,
    /// The mapping again, kept for the object's whole life once its buffer
    /// was exported: NumPy's ``ndarray(shape, buffer=mem)`` releases the
    /// buffer at once and keeps only this object (its base), so `exports`
    /// cannot see such an array, and `cleanup` must not unmap under it.
    pinned: OnceLock<Arc<AnonShared>>,
    size: usize,
    exports: Exports,
}

impl ShareMem {
    /// The mapping, or an error once ``cleanup()`` ran.
    pub(crate) fn map(&self) -> PyResult<&Arc<AnonShared>> {
        self.map
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("ShareMem: operation on a cleaned-up ShareMem"))
    }
}

#[pymethods]
impl ShareMem {
    /// ``ShareMem(size)``: maps ``size`` bytes of zeroed anonymous shared
    /// memory (at least 4096 + 128: the first 4096 hold the allocator's
    /// table).
    ///
    /// >>> from shm import ShareMem
    /// >>> ShareMem(64 * 1024 * 1024).size
    /// 67108864
    #[new]
    fn new(size: i64) -> PyResult<Self> {
        let min = (ARENA_HEAD + UNIT) as i64;
        if size < min || size as u64 > MAX_LEN as u64 {
            return Err(PyValueError::new_err(format!(
                "ShareMem size must be between {min} and {MAX_LEN} bytes, not {size}"
            )));
        }
        let size = size as usize;
        let map = AnonShared::new(size).map_err(crate::errors::segment)?;
        Arena::init(&map).map_err(arena_err)?;
        Ok(ShareMem {
            map: Some(Arc::new(map)),
            pinned: OnceLock::new(),
            size,
            exports: Exports::default(),
        })
    }

    /// Bytes in the mapping.
    ///
    /// >>> from shm import ShareMem
    /// >>> ShareMem(8192).size
    /// 8192
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// Bytes handed out to pools and rings (by every process that shares it).
    ///
    /// >>> from shm import ShareMem
    /// >>> ShareMem(8192).used
    /// 0
    #[getter]
    fn used(&self) -> PyResult<usize> {
        let arena = Arena::of(self.map()?).map_err(arena_err)?;
        Ok(arena.usage().map_err(arena_err)?.0)
    }

    /// Bytes still free for pools and rings.
    ///
    /// >>> from shm import ShareMem
    /// >>> ShareMem(8192).free
    /// 4096
    #[getter]
    fn free(&self) -> PyResult<usize> {
        let arena = Arena::of(self.map()?).map_err(arena_err)?;
        Ok(arena.usage().map_err(arena_err)?.1)
    }

    /// A writable memoryview of the whole mapping. It keeps the mapping
    /// alive: ``cleanup()`` raises ``BufferError`` until it is released.
    ///
    /// >>> from shm import ShareMem
    /// >>> mem = ShareMem(8192)
    /// >>> view = mem.buf
    /// >>> view[4096] = 7
    /// >>> len(view), view[4096]
    /// (8192, 7)
    /// >>> view.release()
    #[getter]
    fn buf<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        PyMemoryView::from(slf.as_any())
    }

    /// Drops this handle's mapping (pyshm's ``cleanup``). Pools and rings
    /// made in it keep the pages mapped until they are gone too, and so
    /// does this object itself once its buffer was exported (NumPy arrays
    /// made with ``buffer=mem`` reference only the object). Raises
    /// ``BufferError`` while a memoryview of it is alive.
    ///
    /// >>> from shm import ShareMem
    /// >>> mem = ShareMem(8192)
    /// >>> mem.cleanup()
    /// >>> mem.closed
    /// True
    fn cleanup(&mut self) -> PyResult<()> {
        self.exports.refuse("ShareMem.cleanup")?;
        self.map = None;
        Ok(())
    }

    /// Whether ``cleanup()`` ran.
    ///
    /// >>> from shm import ShareMem
    /// >>> ShareMem(8192).closed
    /// False
    #[getter]
    fn closed(&self) -> bool {
        self.map.is_none()
    }

    /// ``with ShareMem(size) as mem:`` cleans up on exit.
    ///
    /// >>> from shm import ShareMem
    /// >>> with ShareMem(8192) as mem:
    /// ...     mem.size
    /// 8192
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Cleans up (see ``cleanup``).
    fn __exit__(
        &mut self,
        _ty: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.cleanup()?;
        Ok(false)
    }

    fn __len__(&self) -> usize {
        self.size
    }

    fn __repr__(&self) -> String {
        match &self.map {
            Some(_) => format!("ShareMem(size={})", self.size),
            None => format!("ShareMem(size={}, closed)", self.size),
        }
    }

    /// The buffer protocol: the whole mapping, writable.
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
        let map = this.map()?;
        let (ptr, len) = (map.as_ptr(), map.len());
        this.pinned.get_or_init(|| Arc::clone(map));
        // SAFETY: `view` is CPython's to fill; `ptr..ptr + len` is the live
        // mapping, which stays mapped while this object lives (`pinned`),
        // and the view (or an array whose base this object is) holds a
        // reference to this object.
        unsafe { fill_view(view, flags, ptr, len, false, slf.as_any())? };
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
