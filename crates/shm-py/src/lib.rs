//! `shm._shm`, the native half of the Python package `shm`.
//!
//! Each module below adds its classes to the one extension module; the
//! pure-Python package (`python/shm/`) re-exports them and adds pyshm's
//! submodules `shm.mempool` and `shm.ring`.

use pyo3::prelude::*;

mod channel;
mod common;
mod dtype;
mod errors;
mod pyshm;
mod rings;
mod segments;

/// The extension module `shm._shm`.
#[pymodule]
fn _shm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    segments::register(m)?;
    rings::register(m)?;
    channel::register(m)?;
    pyshm::register(m)?;
    Ok(())
}
