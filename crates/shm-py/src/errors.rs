//! The package's own exceptions, and the one mapping of the Rust crates'
//! errors onto Python's that every class uses: OS errors become the matching
//! `OSError` subclass (`FileExistsError`, `FileNotFoundError`,
//! `PermissionError`, ...) with `errno` set and the crate's full message,
//! which names the segment and the operation.
//!
//! Three states every class reports the same way:
//!
//! - an object used after it ended (a closed segment, ring, channel, role
//!   or pool; a committed or released chunk; a sent or released channel
//!   block; a given-back pool block) raises `ValueError`, for its methods
//!   and its buffer alike, as Python does for a closed file ("I/O operation
//!   on closed file");
//! - an object inherited across `fork(2)` that belongs to the parent (a
//!   ring role, a channel or pool block) did not end: it raises
//!   `shm.ShmError` saying so, and the parent keeps it;
//! - an end refused while memoryviews of the object are exported raises
//!   `BufferError`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyPermissionError, PyValueError};
use pyo3::prelude::*;
use shm_mempool::PoolError;
use shm_ring::RingError;
use shm_segment::Error as SegError;

create_exception!(
    shm,
    ShmError,
    PyException,
    "Base class of the errors that `shm` raises itself.\n\n>>> issubclass(shm.RingFull, shm.ShmError)\nTrue"
);
create_exception!(
    shm,
    RingEmpty,
    ShmError,
    "The ring (or pool) has nothing to take.\n\n>>> from shm import ring\n>>> try:\n...     ring.Ring(2).dequeue()\n... except shm.RingEmpty:\n...     print(\"empty\")\nempty"
);
create_exception!(
    shm,
    PoolEmpty,
    RingEmpty,
    "The pool has no free block (every block is taken or in a ring).\n\n>>> from shm import mempool\n>>> mp = mempool.Mempool(1, 8); held = mp.get()\n>>> try:\n...     mp.get()\n... except shm.PoolEmpty:\n...     print(\"empty\")\nempty"
);
create_exception!(
    shm,
    RingFull,
    ShmError,
    "The ring has no room for what was pushed.\n\n>>> with shm.MpmcRing.create(\"/shm-test-doc-full\", 2, dtype=\"u1\") as r:\n...     r.push_many(b\"ab\")\n...     try:\n...         r.push(3)\n...     except shm.RingFull:\n...         print(\"full\")\n2\nfull"
);

/// A segment-layer error as the matching Python exception, with the crate's
/// message (which names the operation and the segment):
///
/// - an OS error becomes `OSError(errno, message)`, which Python turns into
///   the matching subclass (`FileNotFoundError`, `FileExistsError`,
///   `PermissionError`, ...) with `errno` set;
/// - a bad name, size, offset or argument, or a header that is not the
///   structure asked for, becomes `ValueError`;
/// - a write through a read-only mapping, or a refused shrink, `PermissionError`;
/// - the rest (a descriptor that is not what it claims to be) `shm.ShmError`.
pub(crate) fn segment(err: SegError) -> PyErr {
    let msg = err.to_string();
    match &err {
        // EIDRM, and the EINVAL that System V answers for an unused shmid,
        // mean "no such segment" too.
        SegError::Os { .. } if err.is_not_found() => os_error(libc::ENOENT, msg),
        SegError::Os { source, .. } => match source.raw_os_error() {
            Some(errno) => os_error(errno, msg),
            None => PyErr::from(std::io::Error::new(source.kind(), msg)),
        },
        SegError::InvalidName { .. }
        | SegError::InvalidArgument { .. }
        | SegError::OutOfBounds { .. }
        | SegError::Misaligned { .. }
        | SegError::TooSmall { .. }
        | SegError::Header { .. } => PyValueError::new_err(msg),
        SegError::ReadOnly { .. } | SegError::ShrinkRefused { .. } => {
            PyPermissionError::new_err(msg)
        }
        _ => ShmError::new_err(msg),
    }
}

/// A ring error: segment errors as [`segment`], a role held by a live
/// process as `shm.ShmError`, bad arguments and foreign or mismatched
/// headers as `ValueError`.
pub(crate) fn ring(err: RingError) -> PyErr {
    match err {
        RingError::Segment(e) => segment(e),
        e @ RingError::RoleTaken { .. } => ShmError::new_err(e.to_string()),
        e => PyValueError::new_err(e.to_string()),
    }
}

/// A pool or channel error: segment errors as [`segment`], an exhausted pool
/// as `shm.PoolEmpty` (a `shm.RingEmpty`), a foreign layout as `ValueError`,
/// the rest (a block in the wrong state or out of range, a corrupted pool,
/// a handle inherited across fork) as `shm.ShmError`.
pub(crate) fn pool(err: PoolError) -> PyErr {
    match err {
        PoolError::Segment(e) => segment(e),
        e @ PoolError::Exhausted { .. } => PoolEmpty::new_err(e.to_string()),
        e @ PoolError::InvalidLayout { .. } => PyValueError::new_err(e.to_string()),
        e => ShmError::new_err(e.to_string()),
    }
}

/// `OSError(errno, message)`: Python picks the subclass from the errno.
pub(crate) fn os_error(errno: i32, msg: String) -> PyErr {
    PyOSError::new_err((errno, msg))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ShmError", py.get_type::<ShmError>())?;
    m.add("RingEmpty", py.get_type::<RingEmpty>())?;
    m.add("RingFull", py.get_type::<RingFull>())?;
    m.add("PoolEmpty", py.get_type::<PoolEmpty>())?;
    Ok(())
}
