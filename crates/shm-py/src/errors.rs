//! The package's own exceptions, and the mapping of the Rust crates' errors
//! onto Python's: OS errors become the matching `OSError` subclass
//! (`FileExistsError`, `FileNotFoundError`, `PermissionError`, ...) with the
//! crate's full message, which names the segment and the operation.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    shm,
    ShmError,
    PyException,
    "Base class of the errors that `shm` raises itself."
);
create_exception!(
    shm,
    RingEmpty,
    ShmError,
    "The ring (or pool) has nothing to take."
);
create_exception!(
    shm,
    PoolEmpty,
    RingEmpty,
    "The pool has no free block (every block is taken or in a ring)."
);
create_exception!(
    shm,
    RingFull,
    ShmError,
    "The ring has no room for what was pushed."
);

/// Any of the crates' errors as a Python exception. Errors that carry an OS
/// error become that `OSError` subclass; the rest become `ValueError` or
/// `ShmError` through their `io::ErrorKind`. The message is the crate's.
pub(crate) fn to_py<E>(err: E) -> PyErr
where
    E: Into<std::io::Error>,
{
    PyErr::from(err.into())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ShmError", py.get_type::<ShmError>())?;
    m.add("RingEmpty", py.get_type::<RingEmpty>())?;
    m.add("RingFull", py.get_type::<RingFull>())?;
    m.add("PoolEmpty", py.get_type::<PoolEmpty>())?;
    Ok(())
}
