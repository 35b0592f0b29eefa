//! `shm.SysV`: a System V segment, attached on construction, with a file
//! position (`read`, `readline`, `write`, `seek`, `tell`) and the
//! `sysv_ipc`-style calls (`attach`, `detach`, `remove`, `stat`, `IPC_SET`
//! through `uid`/`gid`/`mode`), and `ShmidDs`, the whole `shmid_ds`.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMemoryView, PyTuple};
use shm_segment::{Access, PermChange, Region, SysvKey, SysvMapping, SysvOptions, SysvSegment};

use super::{read_bytes, subscript, Core, Data};
use crate::common::non_negative;
use crate::errors;

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SysV>()?;
    m.add_class::<ShmidDs>()?;
    m.add("IPC_PRIVATE", libc::IPC_PRIVATE)?;
    Ok(())
}

/// A key from Python: any int that fits 32 bits, signed or not (`ipcs`
/// shows keys as unsigned hex; the kernel's `key_t` is signed).
fn to_key(key: i64) -> PyResult<SysvKey> {
    if let Ok(k) = i32::try_from(key) {
        return Ok(SysvKey(k));
    }
    if let Ok(k) = u32::try_from(key) {
        return Ok(SysvKey(k as i32));
    }
    Err(PyValueError::new_err(format!(
        "SysV key {key}: a key is a 32-bit integer (-2**31 to 2**32 - 1)"
    )))
}

/// A System V error on `id` as the Python exception: the `EINVAL`/`EIDRM`
/// that `shmctl` answers for an id that names no segment any more is
/// `FileNotFoundError`.
fn id_err(op: &str, id: i32, err: std::io::Error) -> PyErr {
    let errno = match err.raw_os_error() {
        Some(libc::EINVAL | libc::EIDRM) => libc::ENOENT,
        Some(e) => e,
        None => libc::EIO,
    };
    let why = if errno == libc::ENOENT {
        "no such segment (removed?)".to_owned()
    } else {
        err.to_string()
    };
    errors::os_error(errno, format!("{op} SysV shmid {id}: {why}"))
}

/// A System V shared memory segment, attached when made.
///
/// - `key`: the segment's key (an int; ``shm.IPC_PRIVATE``, 0, always makes
///   a new private segment; ``None`` picks a random unused key and creates).
/// - `size`: bytes; needed to create. When attaching, a `size` bigger than
///   the segment is a ``ValueError``.
/// - `mode`: permission bits for a new segment (default ``0o600``).
/// - `create`: ``None`` (default) attaches the segment if `key` exists and
///   creates it (with `size` bytes) if not, so that every process can run
///   ``SysV(key, size)``; with ``size=0`` it only attaches. ``True`` creates
///   exclusively (``FileExistsError`` if the key is taken); ``False`` only
///   attaches (``FileNotFoundError`` if missing).
/// - `readonly`: attach read-only; ``write`` then raises ``PermissionError``.
///
/// The object reads and writes like a file, from a position that starts at
/// 0. The segment is never removed implicitly: call ``remove()``.
///
/// >>> seg = shm.SysV(123456, 100)        # process 1: creates
/// >>> seg.write("Hello world!")
/// >>> other = shm.SysV(123456, 100)      # process 2: attaches
/// >>> assert other.read() == b"Hello world!" + bytes(88)
/// >>> seg.remove()
#[pyclass(module = "shm", frozen, name = "SysV")]
#[derive(Debug)]
pub(crate) struct SysV {
    seg: SysvSegment,
    size: usize,
    created: bool,
    pos: AtomicU64,
    core: Core<SysvMapping>,
}

impl SysV {
    fn what(&self) -> String {
        format!("SysV key {} (shmid {})", self.seg.key(), self.seg.id())
    }

    fn attached_map(&self, op: &str) -> PyResult<std::sync::Arc<SysvMapping>> {
        self.core.get(op, &|| self.what())
    }

    fn open(
        key: SysvKey,
        size: usize,
        create: Option<bool>,
        mode: u32,
    ) -> PyResult<(SysvSegment, bool)> {
        let opts = SysvOptions::new().mode(mode);
        let target = format!("SysV key {key}");
        match create {
            Some(true) => {
                if size == 0 {
                    return Err(PyValueError::new_err(format!(
                        "create {target}: 'size' must be at least 1 byte"
                    )));
                }
                Ok((opts.create(key, size).map_err(errors::segment)?, true))
            }
            Some(false) => Ok((opts.open(key).map_err(errors::segment)?, false)),
            None if size == 0 => Ok((opts.open(key).map_err(errors::segment)?, false)),
            None => {
                let mut last = None;
                for _ in 0..16 {
                    match opts.create(key, size) {
                        Ok(seg) => return Ok((seg, true)),
                        Err(e) if e.is_exists() => {}
                        Err(e) => return Err(errors::segment(e)),
                    }
                    match opts.open(key) {
                        Ok(seg) => return Ok((seg, false)),
                        // Removed between our create and open: again.
                        Err(e) if e.is_not_found() => last = Some(e),
                        Err(e) => return Err(errors::segment(e)),
                    }
                }
                Err(errors::segment(last.expect("the loop ran")))
            }
        }
    }

    fn build(
        py: Python<'_>,
        seg: SysvSegment,
        size: usize,
        created: bool,
        readonly: bool,
    ) -> PyResult<Self> {
        let fail = |seg: &SysvSegment, e: PyErr| {
            if created {
                let _ = seg.remove();
            }
            e
        };
        let actual = match seg.stat() {
            Ok(st) => st.size,
            Err(e) => return Err(fail(&seg, errors::segment(e))),
        };
        if size > actual {
            return Err(PyValueError::new_err(format!(
                "attach SysV key {} (shmid {}): the segment is {actual} bytes, but size={size} \
                 was asked for",
                seg.key(),
                seg.id()
            )));
        }
        let access = if readonly {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let map = match seg.attach(access) {
            Ok(map) => map,
            Err(e) => return Err(fail(&seg, errors::segment(e))),
        };
        Ok(SysV {
            seg,
            size: actual,
            created,
            pos: AtomicU64::new(0),
            core: Core::new(py, Some(map), "not attached; call attach() first")?,
        })
    }

    /// Reserves `len` bytes from the position: returns where they start.
    fn advance(&self, from: u64, len: usize) -> bool {
        self.pos
            .compare_exchange(from, from + len as u64, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[pymethods]
impl SysV {
    #[new]
    #[pyo3(signature = (key=None, size=0, mode=0o600, create=None, *, readonly=false))]
    fn new(
        py: Python<'_>,
        key: Option<i64>,
        size: i64,
        mode: u32,
        create: Option<bool>,
        readonly: bool,
    ) -> PyResult<Self> {
        let shown = key.map_or_else(|| "(a new random key)".to_owned(), |k| k.to_string());
        let size = non_negative(size, "'size'", &|| format!("SysV key {shown}"))?;
        let (seg, created) = match key {
            Some(k) => Self::open(to_key(k)?, size, create, mode)?,
            None if create == Some(false) => {
                return Err(PyValueError::new_err(
                    "SysV: key=None makes a new segment; it needs create=True or None",
                ))
            }
            None => loop {
                let key = SysvKey::random();
                match Self::open(key, size, Some(true), mode) {
                    // A random key that happens to be taken: another one.
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyFileExistsError>(py) => {}
                    other => break other?,
                }
            },
        };
        Self::build(py, seg, size, created, readonly)
    }

    /// Attaches the existing segment `id` (a shmid, as ``ipcs -m`` shows).
    ///
    /// >>> other = shm.SysV.from_id(seg.id)
    #[staticmethod]
    #[pyo3(signature = (id, *, readonly=false))]
    fn from_id(py: Python<'_>, id: i32, readonly: bool) -> PyResult<Self> {
        let seg = SysvOptions::new().open_id(id).map_err(errors::segment)?;
        Self::build(py, seg, 0, false, readonly)
    }

    /// Every System V segment on the host that we may see, as ``ipcs -m``
    /// lists them: a list of ``ShmidDs``.
    ///
    /// >>> assert any(ds.id == seg.id for ds in shm.SysV.list())
    #[staticmethod]
    fn list() -> PyResult<Vec<ShmidDs>> {
        let (max, _) = shm_sys::shm_info().map_err(|e| {
            errors::os_error(
                e.raw_os_error().unwrap_or(libc::EIO),
                format!("list SysV segments (SHM_INFO): {e}"),
            )
        })?;
        let mut out = Vec::new();
        for index in 0..=max {
            // Unused slots (EINVAL) and segments we may not read (EACCES).
            if let Ok((id, ds)) = shm_sys::shm_stat_index(index) {
                out.push(ShmidDs::from_raw(id, &ds));
            }
        }
        Ok(out)
    }

    /// The key (``shm.IPC_PRIVATE`` for a private segment).
    ///
    /// >>> assert shm.SysV(key, 10).key == key
    #[getter]
    fn key(&self) -> i32 {
        self.seg.key().0
    }

    /// The shmid.
    ///
    /// >>> print(seg.id)
    #[getter]
    fn id(&self) -> i32 {
        self.seg.id()
    }

    /// The size in bytes (``shm_segsz``).
    ///
    /// >>> assert shm.SysV(key, 100).size == 100
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// Whether this object created the segment.
    ///
    /// >>> assert shm.SysV(None, 10).created
    #[getter]
    fn created(&self) -> bool {
        self.created
    }

    /// Whether the segment is attached now.
    ///
    /// >>> seg.detach()
    /// >>> assert not seg.attached
    #[getter]
    fn attached(&self) -> bool {
        self.core.is_mapped()
    }

    /// Whether the current attachment is read-only (``False`` when detached).
    ///
    /// >>> seg.attach(readonly=True)
    /// >>> assert seg.readonly
    #[getter]
    fn readonly(&self) -> bool {
        self.core
            .get("readonly", &|| self.what())
            .map(|m| m.is_read_only())
            .unwrap_or(false)
    }

    /// The owner's uid; setting it changes it (``IPC_SET``).
    ///
    /// >>> seg.uid = os.geteuid()
    #[getter]
    fn uid(&self) -> PyResult<u32> {
        Ok(self.stat()?.uid)
    }

    #[setter]
    fn set_uid(&self, uid: u32) -> PyResult<()> {
        self.seg
            .set_perms(PermChange::new().uid(uid))
            .map_err(errors::segment)
    }

    /// The owner's gid; setting it changes it (``IPC_SET``).
    ///
    /// >>> seg.gid = os.getegid()
    #[getter]
    fn gid(&self) -> PyResult<u32> {
        Ok(self.stat()?.gid)
    }

    #[setter]
    fn set_gid(&self, gid: u32) -> PyResult<()> {
        self.seg
            .set_perms(PermChange::new().gid(gid))
            .map_err(errors::segment)
    }

    /// The permission bits (``mode & 0o777``); setting them changes them
    /// (``IPC_SET``). ``stat().mode`` has the status bits too.
    ///
    /// >>> seg.mode = 0o640
    /// >>> assert seg.mode == 0o640
    #[getter]
    fn mode(&self) -> PyResult<u32> {
        Ok(self.stat()?.mode & 0o777)
    }

    #[setter]
    fn set_mode(&self, mode: u32) -> PyResult<()> {
        self.seg
            .set_perms(PermChange::new().mode(mode))
            .map_err(errors::segment)
    }

    /// The segment's whole ``shmid_ds`` (``IPC_STAT``), as a ``ShmidDs``.
    ///
    /// >>> ds = seg.stat()
    /// >>> assert ds.segsz == seg.size and ds.nattch >= 1
    fn stat(&self) -> PyResult<ShmidDs> {
        let id = self.seg.id();
        shm_sys::shm_stat(id)
            .map(|ds| ShmidDs::from_raw(id, &ds))
            .map_err(|e| id_err("stat", id, e))
    }

    /// Reads `n` bytes (all the rest when ``None`` or negative) from the
    /// position, which moves past them. The bytes come as they are, NUL
    /// padding included; ``b""`` at the end. With `offset`, reads there
    /// instead and leaves the position alone (as ``sysv_ipc``'s
    /// ``read(byte_count, offset)``; then `n` must fit: ``ValueError``).
    ///
    /// >>> seg.seek(0)
    /// >>> head = seg.read(5)
    /// >>> same = seg.read(5, offset=0)
    #[pyo3(signature = (n=None, offset=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        n: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if let Some(offset) = offset {
            // The fast path: no reference to the mapping taken, no position.
            let at = non_negative(offset, "offset", &|| self.what())?;
            let k = match n {
                Some(n) if n >= 0 => non_negative(n, "n", &|| self.what())?,
                _ => self.size.saturating_sub(at),
            };
            return self.core.read_bytes(py, "read", &|| self.what(), at, k);
        }
        let map = self.attached_map("read")?;
        let len = map.len() as u64;
        loop {
            let pos = self.pos.load(Ordering::Acquire);
            let avail = len.saturating_sub(pos) as usize;
            let k = match n {
                Some(n) if n >= 0 => avail.min(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => avail,
            };
            if k == 0 {
                return Ok(PyBytes::new(py, b""));
            }
            if self.advance(pos, k) {
                return read_bytes(py, &map, pos as usize, k);
            }
        }
    }

    /// Reads one line: up to and including the next ``b"\n"``, or to the
    /// end of the segment (NUL padding and all), or `limit` bytes when
    /// `limit` is not negative. ``b""`` at the end.
    ///
    /// >>> seg.write(b"one\ntwo\n")
    /// >>> seg.seek(0)
    /// >>> assert seg.readline() == b"one\n"
    #[pyo3(signature = (limit=-1))]
    fn readline<'py>(&self, py: Python<'py>, limit: i64) -> PyResult<Bound<'py, PyBytes>> {
        let map = self.attached_map("readline")?;
        let len = map.len();
        let max = usize::try_from(limit).unwrap_or(usize::MAX);
        loop {
            let pos = self.pos.load(Ordering::Acquire);
            let start = usize::try_from(pos).unwrap_or(usize::MAX).min(len);
            let end_max = start.saturating_add(max).min(len);
            let mut line = Vec::new();
            let mut at = start;
            let mut chunk = 256;
            while at < end_max {
                let take = chunk.min(end_max - at);
                let old = line.len();
                line.resize(old + take, 0);
                map.read_at(at, &mut line[old..]).map_err(errors::segment)?;
                if let Some(i) = line[old..].iter().position(|&b| b == b'\n') {
                    line.truncate(old + i + 1);
                    break;
                }
                at += take;
                chunk = (chunk * 2).min(64 * 1024);
            }
            if line.is_empty() || self.advance(pos, line.len()) {
                return Ok(PyBytes::new(py, &line));
            }
        }
    }

    /// Writes `data` (a ``str``, as UTF-8, or any bytes-like object) at the
    /// position, which moves past it; returns the number of bytes. All of
    /// it or nothing: past the end is a ``ValueError``; on a read-only
    /// attachment a ``PermissionError``. With `offset`, writes there instead
    /// and leaves the position alone (as ``sysv_ipc``'s ``write(s, offset)``).
    ///
    /// >>> assert seg.write("Hello world!") == 12
    /// >>> seg.write(b"J", offset=0)
    #[pyo3(signature = (data, offset=None))]
    fn write(&self, data: &Bound<'_, PyAny>, offset: Option<i64>) -> PyResult<usize> {
        let data = Data::extract(data)?;
        let read_only = || {
            pyo3::exceptions::PyPermissionError::new_err(format!(
                "write {}: attached read-only (readonly=True); attach(readonly=False) to write",
                self.what()
            ))
        };
        if let Some(offset) = offset {
            // The fast path: the copy under the lock, no position.
            let at = non_negative(offset, "offset", &|| self.what())?;
            let written = self.core.with("write", &|| self.what(), |m| {
                (!m.is_read_only()).then(|| data.write_to(m, at))
            })?;
            return match written {
                Some(res) => res.map(|()| data.len()).map_err(errors::segment),
                None => Err(read_only()),
            };
        }
        let map = self.attached_map("write")?;
        if map.is_read_only() {
            return Err(read_only());
        }
        let n = data.len();
        let pos = loop {
            let pos = self.pos.load(Ordering::Acquire);
            if self.advance(pos, n) {
                break pos;
            }
        };
        let res = usize::try_from(pos)
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "write {}: position {pos} is past the end",
                    self.what()
                ))
            })
            .and_then(|at| data.write_to(&*map, at).map_err(errors::segment));
        if let Err(e) = res {
            // Nothing was written: the position goes back (unless moved since).
            let _ =
                self.pos
                    .compare_exchange(pos + n as u64, pos, Ordering::AcqRel, Ordering::Acquire);
            return Err(e);
        }
        Ok(n)
    }

    /// Moves the position: to `offset` from the start (`whence` 0), from the
    /// position (1) or from the end (2), as files do. Returns the new
    /// position. A position past the end reads ``b""``.
    ///
    /// >>> seg.seek(0)
    /// >>> seg.seek(-10, 2)     # the last 10 bytes
    #[pyo3(signature = (offset, whence=0))]
    fn seek(&self, offset: i64, whence: i32) -> PyResult<u64> {
        let base = match whence {
            0 => 0,
            1 => self.pos.load(Ordering::Acquire),
            2 => self.size as u64,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "seek {}: whence must be 0, 1 or 2, not {whence}",
                    self.what()
                )))
            }
        };
        let Some(pos) = base.checked_add_signed(offset) else {
            return Err(PyValueError::new_err(format!(
                "seek {}: negative position {base} + {offset}",
                self.what()
            )));
        };
        self.pos.store(pos, Ordering::Release);
        Ok(pos)
    }

    /// The position.
    ///
    /// >>> seg.write(b"abc")
    /// >>> assert seg.tell() == 3
    fn tell(&self) -> u64 {
        self.pos.load(Ordering::Acquire)
    }

    /// Attaches the segment (again), read-only if asked. If it is attached
    /// already, that attachment is detached first (``BufferError`` while
    /// views of it are alive). The position is kept.
    ///
    /// >>> seg.detach()
    /// >>> seg.attach(readonly=True)
    #[pyo3(signature = (readonly=false))]
    fn attach(&self, py: Python<'_>, readonly: bool) -> PyResult<()> {
        drop(self.core.take(py, "re-attach", &|| self.what())?);
        let access = if readonly {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        let map = self.seg.attach(access).map_err(errors::segment)?;
        self.core.install(py, map)?;
        Ok(())
    }

    /// Detaches the segment (``shmdt``); it stays in the system. Raises
    /// ``BufferError`` while memoryviews of ``buf`` are alive. Detaching a
    /// detached segment does nothing.
    ///
    /// >>> seg.detach()
    fn detach(&self, py: Python<'_>) -> PyResult<()> {
        drop(self.core.take(py, "detach", &|| self.what())?);
        Ok(())
    }

    /// Marks the segment for removal (``IPC_RMID``): it goes when the last
    /// process detaches, and its key is free at once. ``FileNotFoundError``
    /// if it no longer exists.
    ///
    /// >>> seg.remove()
    fn remove(&self) -> PyResult<()> {
        let id = self.seg.id();
        // SAFETY: IPC_RMID ignores the buffer argument.
        if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } == -1 {
            return Err(id_err("remove", id, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// A memoryview over the attached segment, without a copy. While it (or
    /// a slice of it) lives, ``detach()`` raises ``BufferError``.
    ///
    /// >>> seg.buf[0:5] = b"hello"
    #[getter]
    fn buf<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyMemoryView>> {
        let this = slf.get();
        this.core.buf(slf.py(), &|| this.what())
    }

    /// ``seg[i]`` (an int) and ``seg[i:j]`` (a new ``bytes``, any step), as
    /// ``mmap`` has them: negative indices count from the end, slices are
    /// clipped, an index out of range is an ``IndexError``. The position is
    /// left alone. The fastest way to copy out of the segment.
    ///
    /// >>> seg[0:5] = b"hello"
    /// >>> assert seg[0:5] == b"hello" and seg[0] == ord("h")
    /// >>> assert seg[-3:] == bytes(3)
    fn __getitem__<'py>(&self, index: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        subscript::get_item(&self.core, self.size, index, &|| self.what())
    }

    /// ``seg[i] = byte`` and ``seg[i:j] = data``: `data` is any bytes-like
    /// object exactly as long as the slice (else ``IndexError``, as
    /// ``mmap``), copied in; any step. ``PermissionError`` when attached
    /// read-only. The position is left alone.
    ///
    /// >>> seg[0] = 1
    /// >>> seg[1:3] = b"ab"
    fn __setitem__(&self, index: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        subscript::set_item(&self.core, self.size, index, value, &|| self.what())
    }

    /// >>> with shm.SysV(key, 100) as seg:
    /// ...     seg.write(b"x")
    /// >>> # detached here (not removed)
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Detaches (never removes).
    ///
    /// >>> with shm.SysV(key) as seg:
    /// ...     data = seg.read()
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.detach(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = match self.core.get("repr", &|| self.what()) {
            Ok(m) if m.is_read_only() => "attached read-only",
            Ok(_) => "attached",
            Err(_) => "detached",
        };
        format!(
            "SysV(key={}, id={}, size={}, {state})",
            self.seg.key(),
            self.seg.id(),
            self.size
        )
    }
}

/// The names of `ShmidDs`'s fields, in order.
const FIELDS: [&str; 15] = [
    "key", "id", "segsz", "uid", "gid", "cuid", "cgid", "mode", "seq", "atime", "dtime", "ctime",
    "cpid", "lpid", "nattch",
];

/// A System V segment's ``shmid_ds`` (what ``IPC_STAT`` returns), flat:
/// the ``shm_perm`` fields (``key``, ``uid``, ``gid``, ``cuid``, ``cgid``,
/// ``mode`` with its status bits, ``seq``), then ``segsz``, ``atime``,
/// ``dtime``, ``ctime`` (seconds since the epoch), ``cpid``, ``lpid`` and
/// ``nattch``, plus the shmid as ``id``. Read them as attributes or as a
/// mapping (``ds["segsz"]``, also ``ds["shm_segsz"]``; ``dict(ds)``).
///
/// >>> ds = seg.stat()
/// >>> print(ds.segsz, ds.nattch, oct(ds.mode & 0o777))
/// >>> assert dict(ds)["cpid"] == os.getpid()
#[pyclass(module = "shm", frozen, get_all, eq, name = "ShmidDs")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShmidDs {
    /// The key (``shm_perm.__key``); ``shm.IPC_PRIVATE`` for a private one.
    key: i32,
    /// The shmid.
    id: i32,
    /// The size in bytes (``shm_segsz``).
    segsz: usize,
    /// The owner's user id (``shm_perm.uid``).
    uid: u32,
    /// The owner's group id (``shm_perm.gid``).
    gid: u32,
    /// The creator's user id (``shm_perm.cuid``).
    cuid: u32,
    /// The creator's group id (``shm_perm.cgid``).
    cgid: u32,
    /// Permission bits and status bits (``SHM_DEST``, ``SHM_LOCKED``).
    mode: u32,
    /// The slot usage sequence number (``shm_perm.__seq``).
    seq: u32,
    /// Last attach, seconds since the epoch (0: never).
    atime: i64,
    /// Last detach, seconds since the epoch (0: never).
    dtime: i64,
    /// Last change (create, ``IPC_SET``), seconds since the epoch.
    ctime: i64,
    /// The creator's pid.
    cpid: i32,
    /// The pid of the last attach or detach.
    lpid: i32,
    /// Attachments now, in all processes.
    nattch: u64,
}

impl ShmidDs {
    fn from_raw(id: i32, ds: &libc::shmid_ds) -> Self {
        ShmidDs {
            key: ds.shm_perm.__key,
            id,
            segsz: ds.shm_segsz,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            mode: u32::from(ds.shm_perm.mode),
            seq: u32::from(ds.shm_perm.__seq),
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            nattch: ds.shm_nattch,
        }
    }

    fn field<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyAny>> {
        let name = name.strip_prefix("shm_").unwrap_or(name);
        let v = match name {
            "key" => self.key.into_pyobject(py).ok()?.into_any(),
            "id" => self.id.into_pyobject(py).ok()?.into_any(),
            "segsz" => self.segsz.into_pyobject(py).ok()?.into_any(),
            "uid" => self.uid.into_pyobject(py).ok()?.into_any(),
            "gid" => self.gid.into_pyobject(py).ok()?.into_any(),
            "cuid" => self.cuid.into_pyobject(py).ok()?.into_any(),
            "cgid" => self.cgid.into_pyobject(py).ok()?.into_any(),
            "mode" => self.mode.into_pyobject(py).ok()?.into_any(),
            "seq" => self.seq.into_pyobject(py).ok()?.into_any(),
            "atime" => self.atime.into_pyobject(py).ok()?.into_any(),
            "dtime" => self.dtime.into_pyobject(py).ok()?.into_any(),
            "ctime" => self.ctime.into_pyobject(py).ok()?.into_any(),
            "cpid" => self.cpid.into_pyobject(py).ok()?.into_any(),
            "lpid" => self.lpid.into_pyobject(py).ok()?.into_any(),
            "nattch" => self.nattch.into_pyobject(py).ok()?.into_any(),
            _ => return None,
        };
        Some(v)
    }
}

#[pymethods]
impl ShmidDs {
    /// The permission bits, ``mode & 0o777``.
    ///
    /// >>> assert seg.stat().perms == 0o600
    #[getter]
    fn perms(&self) -> u32 {
        self.mode & 0o777
    }

    /// Whether the segment is marked for removal (``SHM_DEST``, ``ipcs``'
    /// "dest"): it goes when the last process detaches.
    ///
    /// >>> seg.remove()
    /// >>> assert seg.stat().removed
    #[getter]
    fn removed(&self) -> bool {
        self.mode & shm_sys::SHM_DEST != 0
    }

    /// The field names, in order.
    ///
    /// >>> assert "nattch" in ds.keys()
    fn keys(&self) -> Vec<&'static str> {
        FIELDS.to_vec()
    }

    /// The fields as a ``dict``.
    ///
    /// >>> json.dumps(ds._asdict())
    fn _asdict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for name in FIELDS {
            d.set_item(name, self.field(py, name))?;
        }
        Ok(d)
    }

    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, name)
            .ok_or_else(|| PyKeyError::new_err(name.to_owned()))
    }

    fn __contains__(&self, name: &str) -> bool {
        FIELDS.contains(&name.strip_prefix("shm_").unwrap_or(name))
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyo3::types::PyList::new(py, FIELDS)?
            .try_iter()
            .map(|i| i.into_any())
    }

    fn __len__(&self) -> usize {
        FIELDS.len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let parts: Vec<String> = FIELDS
            .iter()
            .map(|&f| {
                let v = self.field(py, f).expect("a field");
                if f == "mode" {
                    format!("mode={:#o}", self.mode)
                } else if f == "key" {
                    format!("key={:#010x}", self.key as u32)
                } else {
                    format!("{f}={v}")
                }
            })
            .collect();
        format!("ShmidDs({})", parts.join(", "))
    }
}
