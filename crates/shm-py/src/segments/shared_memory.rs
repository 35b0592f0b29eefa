//! `shm.SharedMemory`: a POSIX segment with the interface of the standard
//! library's `multiprocessing.shared_memory.SharedMemory`, and without its
//! traps: no resource tracker, the true size on attach, `close()` that
//! refuses with `BufferError` while views are alive.

use crate::errors;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PyTuple};
use shm_segment::{Mapping, PosixOptions, PosixShm, ShmName};

use super::{subscript, Core, Data};
use crate::common::{non_negative, random_hex};

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SharedMemory>()
}

/// The prefix of generated names, as the standard library's.
const NAME_PREFIX: &str = "psm_";

/// A POSIX shared memory segment (`/dev/shm/NAME`), a drop-in for
/// `multiprocessing.shared_memory.SharedMemory`.
///
/// - `name`: the segment's name, with or without the leading ``/``
///   (``name`` gives it back without, like the standard library). With
///   ``create=True`` and no name, a random ``psm_…`` name is chosen.
/// - `create`: make a new segment (exclusively: ``FileExistsError`` if the
///   name is taken) of `size` bytes, mode `mode` (default ``0o600``, whatever
///   the umask). Otherwise attach the existing one: its true size is used
///   (`size`, if given, is only checked to be no more than that).
///
/// Unlike the standard library, no resource tracker is involved: a process
/// that attaches and exits never unlinks the segment (CPython issue 82300);
/// the segment lives until someone calls ``unlink()``.
/// ``close()`` raises ``BufferError`` while memoryviews of ``buf`` (or arrays
/// over it) are alive, instead of leaving them pointing at unmapped memory.
///
/// >>> with shm.SharedMemory(create=True, size=100) as a:
/// ...     a.buf[:5] = b"hello"
/// ...     b = shm.SharedMemory(a.name)
/// ...     assert bytes(b.buf[:5]) == b"hello" and b.size == 100
/// ...     b.close()
/// ...     a.unlink()
#[pyclass(module = "shm", frozen)]
#[derive(Debug)]
pub(crate) struct SharedMemory {
    /// With its leading '/'.
    name: ShmName,
    size: usize,
    created: bool,
    /// The open descriptor; `None` once closed. Kept so that the handle
    /// (which refuses to shrink under its own mappings) outlives the mapping.
    shm: std::sync::Mutex<Option<PosixShm>>,
    core: Core<Mapping>,
}

impl SharedMemory {
    fn what(&self) -> String {
        format!("POSIX segment {}", self.name)
    }
}

#[pymethods]
impl SharedMemory {
    #[new]
    #[pyo3(signature = (name=None, create=false, size=0, *, mode=0o600, track=true))]
    fn new(
        py: Python<'_>,
        name: Option<&str>,
        create: bool,
        size: i64,
        mode: u32,
        track: bool,
    ) -> PyResult<Self> {
        // No resource tracker, whatever `track` says (it exists for code
        // written for Python 3.13's signature).
        let _ = track;
        let shown = name.unwrap_or("(a new random name)");
        let size = non_negative(size, "'size'", &|| format!("POSIX segment {shown}"))?;
        if create {
            if size == 0 {
                return Err(PyValueError::new_err(format!(
                    "create POSIX segment {shown}: 'size' must be a positive number \
                     different from zero"
                )));
            }
            let opts = PosixOptions::new().mode(mode);
            let shm = match name {
                Some(n) => opts.create(n, size).map_err(errors::segment)?,
                None => loop {
                    let n = format!("/{NAME_PREFIX}{}", random_hex(4));
                    match opts.create(&n, size) {
                        Err(e) if e.is_exists() => continue,
                        other => break other.map_err(errors::segment)?,
                    }
                },
            };
            // A segment we just made and cannot map is of no use: unlinked.
            let map = match shm.map() {
                Ok(map) => map,
                Err(e) => {
                    let _ = shm.unlink();
                    return Err(errors::segment(e));
                }
            };
            Self::from_parts(py, shm, map, size, true)
        } else {
            let Some(name) = name else {
                return Err(PyValueError::new_err(
                    "SharedMemory: 'name' can only be None if create=True",
                ));
            };
            let shm = PosixOptions::new().open(name).map_err(errors::segment)?;
            let map = shm.map().map_err(errors::segment)?;
            let actual = shm_segment::Region::len(&map);
            if size > actual {
                return Err(PyValueError::new_err(format!(
                    "attach POSIX segment {}: the segment is {actual} bytes, but size={size} \
                     was asked for",
                    shm.name()
                )));
            }
            Self::from_parts(py, shm, map, actual, false)
        }
    }

    /// The name, without the leading ``/`` (as the standard library gives it).
    ///
    /// >>> s = shm.SharedMemory("shm-test-name", create=True, size=1)
    /// >>> assert s.name == "shm-test-name"
    #[getter]
    fn name(&self) -> &str {
        &self.name.as_str()[1..]
    }

    /// The size in bytes: the segment's true size, also when attached (the
    /// standard library may report it rounded up to whole pages).
    ///
    /// >>> assert shm.SharedMemory(a.name).size == a.size
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// A memoryview over the whole mapping, without a copy (the same one
    /// while it lives). While it, a slice of it, or an array over it is
    /// alive, ``close()`` raises ``BufferError``: drop them first.
    ///
    /// >>> s.buf[0] = 1
    /// >>> assert s.buf[0] == 1
    #[getter]
    fn buf<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        let this = slf.get();
        this.core.buf(slf.py(), &|| this.what())
    }

    /// ``s[i]`` (an int) and ``s[i:j]`` (a new ``bytes``, any step), as
    /// ``mmap`` has them: negative indices count from the end, slices are
    /// clipped, an index out of range is an ``IndexError``. The fastest
    /// way to copy out of the segment. (``s.buf[i:j]`` is the view without
    /// a copy.)
    ///
    /// >>> s[0:5] = b"hello"
    /// >>> assert s[0:5] == b"hello" and s[0] == ord("h") and s[-1] == 0
    /// >>> assert s[4::-1] == b"olleh"
    fn __getitem__<'py>(&self, index: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        subscript::get_item(&self.core, self.size, index, &|| self.what())
    }

    /// ``s[i] = byte`` and ``s[i:j] = data``: `data` is any bytes-like
    /// object exactly as long as the slice (else ``IndexError``, as
    /// ``mmap``), copied in; any step.
    ///
    /// >>> s[0] = 1
    /// >>> s[1:3] = b"ab"
    /// >>> s[8:12] = bytearray(4)
    fn __setitem__(&self, index: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        subscript::set_item(&self.core, self.size, index, value, &|| self.what())
    }

    /// Reads `n` bytes at `offset` (default 0) into a new ``bytes``; ``n``
    /// ``None`` or negative reads to the end. Past the end is a
    /// ``ValueError``. (The same as ``SysV.read(n, offset)``.)
    ///
    /// >>> s.write(b"hello", 10)
    /// >>> assert s.read(5, 10) == b"hello"
    #[pyo3(signature = (n=None, offset=0))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        n: Option<i64>,
        offset: i64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let what = || self.what();
        let at = non_negative(offset, "offset", &|| format!("read {}", self.what()))?;
        let k = match n {
            Some(n) if n >= 0 => non_negative(n, "n", &|| format!("read {}", self.what()))?,
            _ => self.size.saturating_sub(at),
        };
        self.core.read_bytes(py, "read", &what, at, k)
    }

    /// Writes `data` (a ``str``, as UTF-8, or any bytes-like object) at
    /// `offset` (default 0); returns its length. All or nothing: past the
    /// end is a ``ValueError``.
    ///
    /// >>> assert s.write(b"hello", 10) == 5
    #[pyo3(signature = (data, offset=0))]
    fn write(&self, data: &Bound<'_, PyAny>, offset: i64) -> PyResult<usize> {
        let data = Data::extract(data)?;
        let at = non_negative(offset, "offset", &|| format!("write {}", self.what()))?;
        self.core.write_data("write", &|| self.what(), &data, at)?;
        Ok(data.len())
    }

    /// Whether this object created the segment.
    ///
    /// >>> assert shm.SharedMemory(create=True, size=1).created
    #[getter]
    fn created(&self) -> bool {
        self.created
    }

    /// Whether ``close()`` was called.
    ///
    /// >>> s.close()
    /// >>> assert s.closed
    #[getter]
    fn closed(&self) -> bool {
        !self.core.is_mapped()
    }

    /// Unmaps the segment and closes its descriptor; the segment itself
    /// stays (see ``unlink``). Raises ``BufferError`` while views into the
    /// mapping are alive (``buf`` kept in a variable, slices of it,
    /// NumPy arrays over it): unlike the standard
    /// library, which releases ``buf`` and unmaps under such arrays (a crash
    /// at their next access), it leaves the mapping in place. Closing twice
    /// is fine.
    ///
    /// >>> view = s.buf[0:4]
    /// >>> try:
    /// ...     s.close()          # BufferError: view is alive
    /// ... except BufferError:
    /// ...     view.release()
    /// >>> s.close()
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let map = self.core.take(py, "close", &|| self.what())?;
        drop(map);
        self.shm.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }

    /// Removes the segment's name (``shm_unlink``): no one can attach any
    /// more; mappings stay valid until closed. Call it once, in one process
    /// (usually the creator). ``FileNotFoundError`` if it is already gone.
    ///
    /// >>> s.close()
    /// >>> s.unlink()
    fn unlink(&self) -> PyResult<()> {
        PosixShm::unlink_name(self.name.as_str()).map_err(errors::segment)
    }

    /// >>> with shm.SharedMemory(create=True, size=10) as s:
    /// ...     ...
    /// >>> # closed here (not unlinked)
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes (never unlinks).
    ///
    /// >>> with shm.SharedMemory(name) as s:
    /// ...     data = bytes(s.buf[:10])
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let state = if self.core.is_mapped() {
            ""
        } else {
            ", closed"
        };
        let name = pyo3::types::PyString::new(py, self.name()).repr()?;
        Ok(format!("SharedMemory({name}, size={}{state})", self.size))
    }

    /// Pickles as a reference to the same segment (attached again when
    /// unpickled), as the standard library does: pass it to a
    /// ``multiprocessing`` child.
    ///
    /// >>> multiprocessing.Process(target=work, args=(s,)).start()
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, (String, bool, usize))> {
        let this = slf.get();
        Ok((
            slf.get_type().into_any(),
            (this.name().to_owned(), false, this.size),
        ))
    }
}

impl SharedMemory {
    fn from_parts(
        py: Python<'_>,
        shm: PosixShm,
        map: Mapping,
        size: usize,
        created: bool,
    ) -> PyResult<Self> {
        Ok(SharedMemory {
            name: shm.name().clone(),
            size,
            created,
            shm: std::sync::Mutex::new(Some(shm)),
            core: Core::new(py, Some(map), "closed")?,
        })
    }
}
