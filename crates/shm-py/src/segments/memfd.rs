//! `shm.Memfd`: a sealable memfd, mapped, and `send_fd`/`recv_fd` to pass
//! descriptors (a memfd, a POSIX segment's, any) over a Unix socket.

use std::ffi::c_int;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::{PyEOFError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyMemoryView, PyString, PyTuple};
use shm_segment::{Mapping, Region, Seals};

use super::Core;
use crate::common::{non_negative, wait_loop};
use crate::errors;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Memfd>()?;
    m.add("F_SEAL_SEAL", Seals::SEAL.bits())?;
    m.add("F_SEAL_SHRINK", Seals::SHRINK.bits())?;
    m.add("F_SEAL_GROW", Seals::GROW.bits())?;
    m.add("F_SEAL_WRITE", Seals::WRITE.bits())?;
    m.add("F_SEAL_FUTURE_WRITE", Seals::FUTURE_WRITE.bits())?;
    m.add_function(wrap_pyfunction!(send_fd, m)?)?;
    m.add_function(wrap_pyfunction!(recv_fd, m)?)?;
    Ok(())
}

/// Seals from Python: an int of ``F_SEAL_*`` bits, a name (``"write"``,
/// ``"F_SEAL_WRITE"``, any case), or an iterable of either.
fn to_seals(obj: &Bound<'_, PyAny>) -> PyResult<Seals> {
    if let Ok(bits) = obj.extract::<u32>() {
        return match Seals::from_bits(bits) {
            Some(s) => Ok(s),
            None => Err(PyValueError::new_err(format!(
                "seals: {bits:#x} has bits that are no F_SEAL_* flag"
            ))),
        };
    }
    if let Ok(name) = obj.cast::<PyString>() {
        let name = name.to_str()?.to_ascii_lowercase();
        let bare = name.strip_prefix("f_seal_").unwrap_or(&name);
        return match bare {
            "seal" => Ok(Seals::SEAL),
            "shrink" => Ok(Seals::SHRINK),
            "grow" => Ok(Seals::GROW),
            "write" => Ok(Seals::WRITE),
            "future_write" => Ok(Seals::FUTURE_WRITE),
            _ => Err(PyValueError::new_err(format!(
                "seals: unknown seal {name:?} (seal, shrink, grow, write, future_write)"
            ))),
        };
    }
    let Ok(items) = obj.try_iter() else {
        return Err(PyTypeError::new_err(
            "seals: an int of F_SEAL_* bits, a seal name or an iterable of them is required",
        ));
    };
    let mut seals = Seals::empty();
    for item in items {
        seals |= to_seals(&item?)?;
    }
    Ok(seals)
}

/// A memfd (``memfd_create``): anonymous shared memory named by a file
/// descriptor, passed to other processes with ``send_fd`` (or inherited),
/// and sealable. It is always sealed against shrinking, so no mapping of
/// it, here or in a peer, can ever fault.
///
/// - `name`: shown in ``/proc/PID/fd`` (``/memfd:NAME``); need not be unique.
/// - `size`: bytes.
/// - `seals`: seals to add at once (see ``add_seals``).
///
/// >>> m = shm.Memfd("frames", 4096)
/// >>> m.buf[:5] = b"hello"
/// >>> m.add_seals("grow")
/// >>> shm.send_fd(sock, m)           # the peer: shm.Memfd.from_fd(shm.recv_fd(sock))
#[pyclass(module = "shm", frozen, name = "Memfd")]
#[derive(Debug)]
pub(crate) struct Memfd {
    name: String,
    fd: Mutex<Option<shm_segment::Memfd>>,
    core: Core<Mapping>,
}

impl Memfd {
    fn what(&self) -> String {
        format!("memfd {:?}", self.name)
    }

    fn fd(&self) -> MutexGuard<'_, Option<shm_segment::Memfd>> {
        self.fd.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the descriptor, or `ValueError` when closed.
    fn with_fd<T>(
        &self,
        op: &str,
        f: impl FnOnce(&shm_segment::Memfd) -> Result<T, shm_segment::Error>,
    ) -> PyResult<T> {
        let guard = self.fd();
        let Some(fd) = guard.as_ref() else {
            return Err(PyValueError::new_err(format!(
                "{op} {}: closed",
                self.what()
            )));
        };
        f(fd).map_err(errors::segment)
    }

    /// A mapping of the memfd: read-write, unless its seals (or a
    /// read-only descriptor) allow only reading.
    fn map(fd: &shm_segment::Memfd) -> Result<Mapping, shm_segment::Error> {
        let seals = fd.seals()?;
        if seals.intersects(Seals::WRITE | Seals::FUTURE_WRITE) {
            return fd.map_read_only();
        }
        match fd.map() {
            Err(e) if e.is_permission_denied() => fd.map_read_only(),
            other => other,
        }
    }

    fn from_memfd(py: Python<'_>, fd: shm_segment::Memfd) -> PyResult<Self> {
        let map = Self::map(&fd).map_err(errors::segment)?;
        Ok(Memfd {
            name: fd.name().to_owned(),
            fd: Mutex::new(Some(fd)),
            core: Core::new(py, Some(map), "closed")?,
        })
    }

    /// Unmaps (refusing while buffers are exported), runs `f` on the
    /// descriptor, and maps again, whether `f` succeeded or not.
    fn remapped<T>(
        &self,
        py: Python<'_>,
        op: &str,
        f: impl FnOnce(&shm_segment::Memfd) -> Result<T, shm_segment::Error>,
    ) -> PyResult<T> {
        let old = self.core.take(py, op, &|| self.what())?;
        let Some(old) = old else {
            return Err(PyValueError::new_err(format!(
                "{op} {}: closed",
                self.what()
            )));
        };
        drop(old);
        let guard = self.fd();
        let fd = guard.as_ref().expect("mapped, so open");
        let res = f(fd);
        let map = Self::map(fd);
        drop(guard);
        match map {
            Ok(map) => self.core.install(py, map)?,
            Err(e) => return Err(errors::segment(e)),
        }
        res.map_err(errors::segment)
    }
}

#[pymethods]
impl Memfd {
    #[new]
    #[pyo3(signature = (name, size, *, seals=None))]
    fn new(
        py: Python<'_>,
        name: &str,
        size: i64,
        seals: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let size = non_negative(size, "'size'", &|| format!("memfd {name:?}"))?;
        let fd = shm_segment::Memfd::create(name, size).map_err(errors::segment)?;
        let this = Self::from_memfd(py, fd)?;
        if let Some(seals) = seals {
            this.add_seals(py, seals)?;
        }
        Ok(this)
    }

    /// Maps the memfd behind descriptor `fd` (an int, or an object with
    /// ``fileno()``), for example one from ``recv_fd``. The descriptor is
    /// duplicated: the one you pass stays yours to close. Refused
    /// (``shm.ShmError``) unless it is a memfd sealed against shrinking, or
    /// one this process can seal so. Mapped read-only when its seals (or the
    /// descriptor) allow only reading.
    ///
    /// >>> fd = shm.recv_fd(sock)
    /// >>> m = shm.Memfd.from_fd(fd)
    /// >>> os.close(fd)
    #[staticmethod]
    fn from_fd(py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<Self> {
        let raw = to_fd(fd, "from_fd")?;
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor number; returns -1 or a new
        // descriptor that we own.
        let dup = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 0) };
        if dup == -1 {
            let e = std::io::Error::last_os_error();
            return Err(errors::os_error(
                e.raw_os_error().unwrap_or(libc::EBADF),
                format!("from_fd: cannot duplicate descriptor {raw}: {e}"),
            ));
        }
        // SAFETY: `dup` is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(dup) };
        let fd = shm_segment::Memfd::from_fd(owned).map_err(errors::segment)?;
        Self::from_memfd(py, fd)
    }

    /// The name it was created with.
    ///
    /// >>> assert shm.Memfd("x", 1).name == "x"
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes now (``fstat``).
    ///
    /// >>> m.resize(8192)
    /// >>> assert m.size == 8192
    #[getter]
    fn size(&self) -> PyResult<usize> {
        self.with_fd("size", |fd| fd.size())
    }

    /// The descriptor, for ``send_fd``, ``os.fstat``, ``mmap``. It stays
    /// owned by this object (closed by ``close()``).
    ///
    /// >>> os.fstat(m.fileno()).st_size
    fn fileno(&self) -> PyResult<RawFd> {
        self.with_fd("fileno", |fd| Ok(fd.as_fd().as_raw_fd()))
    }

    /// A memoryview over the mapping (read-only once sealed against
    /// writing). While it lives, ``close``, ``resize`` and sealing against
    /// writing raise ``BufferError``.
    ///
    /// >>> m.buf[0] = 7
    #[getter]
    fn buf<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        let this = slf.get();
        this.core.buf(slf.py(), &|| this.what())
    }

    /// The seals in place, as ``F_SEAL_*`` bits.
    ///
    /// >>> assert m.seals & shm.F_SEAL_SHRINK
    #[getter]
    fn seals(&self) -> PyResult<u32> {
        self.with_fd("seals", |fd| fd.seals().map(|s| s.bits()))
    }

    /// Adds seals (``F_ADD_SEALS``); they can never be removed, and bind
    /// every process that holds the memfd. `seals` is an int of
    /// ``shm.F_SEAL_*`` bits, a name (``"seal"``, ``"shrink"``, ``"grow"``,
    /// ``"write"``, ``"future_write"``) or a list of them. Sealing against
    /// writing remaps this object's mapping read-only (``BufferError`` while
    /// views of it are alive); it fails with ``OSError`` (EBUSY) while
    /// another writable mapping exists. ``PermissionError`` once
    /// ``F_SEAL_SEAL`` is set.
    ///
    /// >>> m.add_seals(["grow", "write"])
    /// >>> assert m.buf.readonly
    fn add_seals(&self, py: Python<'_>, seals: &Bound<'_, PyAny>) -> PyResult<()> {
        let seals = to_seals(seals)?;
        let writable = self
            .core
            .get("add_seals", &|| self.what())
            .map(|m| !m.is_read_only())
            .unwrap_or(false);
        let res = if seals.contains(Seals::WRITE) && writable {
            // F_SEAL_WRITE is refused (EBUSY) while a writable shared mapping
            // exists, ours included: remap.
            self.remapped(py, "seal against writing", |fd| fd.add_seals(seals))
        } else {
            self.with_fd("add_seals", |fd| fd.add_seals(seals))
        };
        res.map_err(|e| {
            let busy = e
                .value(py)
                .getattr("errno")
                .and_then(|n| n.extract::<i32>())
                .is_ok_and(|n| n == libc::EBUSY);
            if busy {
                errors::os_error(
                    libc::EBUSY,
                    format!(
                        "{}; another writable mapping of it exists (a Memfd.from_fd in this \
                         or another process, an mmap): close it first",
                        e.value(py)
                    ),
                )
            } else {
                e
            }
        })
    }

    /// Changes the size. Growing needs no ``F_SEAL_GROW``; shrinking is
    /// always refused (``PermissionError``: the memfd is sealed against it).
    /// The mapping is made again, so ``buf`` views must be released first
    /// (``BufferError``).
    ///
    /// >>> m.resize(2 * m.size)
    fn resize(&self, py: Python<'_>, size: i64) -> PyResult<()> {
        let size = non_negative(size, "'size'", &|| self.what())?;
        self.remapped(py, "resize", |fd| fd.resize(size))
    }

    /// Whether ``close()`` was called.
    ///
    /// >>> m.close()
    /// >>> assert m.closed
    #[getter]
    fn closed(&self) -> bool {
        self.fd().is_none()
    }

    /// Unmaps and closes the descriptor (the memory goes when no process
    /// holds it any more). Raises ``BufferError`` while views are alive.
    /// Closing twice is fine.
    ///
    /// >>> m.close()
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        drop(self.core.take(py, "close", &|| self.what())?);
        self.fd().take();
        Ok(())
    }

    /// >>> with shm.Memfd("x", 64) as m:
    /// ...     m.buf[0] = 1
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Closes.
    ///
    /// >>> with shm.Memfd("x", 64) as m:
    /// ...     pass
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let name = PyString::new(py, &self.name).repr()?;
        let guard = self.fd();
        Ok(match guard.as_ref() {
            None => format!("Memfd({name}, closed)"),
            Some(fd) => format!(
                "Memfd({name}, size={}, fd={}, seals={:#x})",
                fd.size().unwrap_or(0),
                fd.as_fd().as_raw_fd(),
                fd.seals().map(|s| s.bits()).unwrap_or(0)
            ),
        })
    }
}

/// A descriptor number from an int or an object with ``fileno()``.
fn to_fd(obj: &Bound<'_, PyAny>, op: &str) -> PyResult<RawFd> {
    let fd = match obj.extract::<RawFd>() {
        Ok(fd) => fd,
        Err(_) => obj
            .call_method0(pyo3::intern!(obj.py(), "fileno"))
            .and_then(|f| f.extract::<RawFd>())
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "{op}: a file descriptor (an int, or an object with fileno()) is required"
                ))
            })?,
    };
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "{op}: {fd} is no file descriptor (closed?)"
        )));
    }
    Ok(fd)
}

/// Waits, with the GIL released, until `fd` is ready for `events`, in
/// short slices with Ctrl-C honoured in between; `TimeoutError` after
/// `timeout` seconds (never when `None`).
fn wait_ready(
    py: Python<'_>,
    fd: RawFd,
    events: i16,
    timeout: Option<f64>,
    op: &str,
) -> PyResult<()> {
    let what = format!("{op}: descriptor {fd} not ready");
    wait_loop(py, timeout, &what, |py, slice| {
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let ms = c_int::try_from(slice.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX);
        let (rc, err) = py.detach(|| {
            // SAFETY: one valid pollfd, for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            (rc, std::io::Error::last_os_error())
        });
        match rc {
            n if n > 0 => Ok(Some(())),
            -1 if err.raw_os_error() != Some(libc::EINTR) => Err(errors::os_error(
                err.raw_os_error().unwrap_or(libc::EIO),
                format!("{op}: poll on descriptor {fd}: {err}"),
            )),
            _ => Ok(None),
        }
    })
}

/// The socket `fd` as a `UnixStream` that never closes it.
fn borrow_stream(fd: RawFd) -> ManuallyDrop<UnixStream> {
    // SAFETY: `fd` is open for the call (the caller holds the Python socket
    // object, or the int it gave us names an open descriptor); ManuallyDrop
    // never closes it, and the stream does not outlive the call.
    ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(fd) })
}

/// Sends descriptor `fd` (an int, or an object with ``fileno()``: a
/// ``Memfd``, a file, a socket) over the connected Unix socket `sock` (a
/// ``socket.socket`` or its descriptor), as ``SCM_RIGHTS`` with one byte of
/// data. The peer receives its own copy of the descriptor with ``recv_fd``.
/// Waits (GIL released, Ctrl-C honoured) at most `timeout` seconds for room.
///
/// >>> a, b = socket.socketpair()
/// >>> shm.send_fd(a, shm.Memfd("x", 4096))
/// >>> fd = shm.recv_fd(b)
#[pyfunction]
#[pyo3(signature = (sock, fd, *, timeout=None))]
fn send_fd(
    py: Python<'_>,
    sock: &Bound<'_, PyAny>,
    fd: &Bound<'_, PyAny>,
    timeout: Option<f64>,
) -> PyResult<()> {
    let s = to_fd(sock, "send_fd")?;
    let f = to_fd(fd, "send_fd")?;
    wait_ready(py, s, libc::POLLOUT, timeout, "send_fd")?;
    // SAFETY: `f` names an open descriptor for the call (as `s` above).
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(f) };
    shm_segment::send_fd(&borrow_stream(s), borrowed).map_err(|e| {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        errors::os_error(
            errno,
            format!("send_fd: descriptor {f} over socket {s}: {e}"),
        )
    })
}

/// Receives one descriptor sent with ``send_fd`` on the Unix socket `sock`
/// (a ``socket.socket`` or its descriptor) and returns it, an int that you
/// own (close it with ``os.close``, or hand it to ``Memfd.from_fd``, which
/// duplicates it). Waits (GIL released, Ctrl-C honoured) up to `timeout`
/// seconds (``None``: for ever), then ``TimeoutError``; ``EOFError`` when
/// the peer closed the socket.
///
/// >>> fd = shm.recv_fd(sock, timeout=5)
/// >>> with shm.Memfd.from_fd(fd) as m:
/// ...     os.close(fd)
/// ...     data = bytes(m.buf[:5])
#[pyfunction]
#[pyo3(signature = (sock, *, timeout=None))]
fn recv_fd(py: Python<'_>, sock: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<RawFd> {
    let s = to_fd(sock, "recv_fd")?;
    wait_ready(py, s, libc::POLLIN, timeout, "recv_fd")?;
    match shm_segment::recv_fd(&borrow_stream(s)) {
        Ok(fd) => Ok(fd.into_raw_fd()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            let msg = e.to_string();
            let msg = msg.strip_prefix("recv_fd: ").unwrap_or(&msg).to_owned();
            Err(PyEOFError::new_err(format!("recv_fd on socket {s}: {msg}")))
        }
        Err(e) if e.raw_os_error().is_some() => Err(errors::os_error(
            e.raw_os_error().unwrap_or(libc::EIO),
            format!("recv_fd on socket {s}: {e}"),
        )),
        Err(e) => Err(PyErr::from(e)),
    }
}
