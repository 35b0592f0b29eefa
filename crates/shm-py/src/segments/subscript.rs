//! `seg[i]`, `seg[a:b]` and their assignments on a whole mapping, as
//! `mmap` has them: an int for an index, a new `bytes` for a slice (any
//! step), assignment of one byte or of a bytes-like object of the slice's
//! length. Every copy goes through the region's checked, race-free
//! `read_at`/`write_at`.
//!
//! These are the type's mapping slots (`mp_subscript`, `mp_ass_subscript`):
//! CPython calls them without a method lookup or argument parsing, which
//! makes `seg[a:b]` the cheapest way to copy in or out from Python.

use pyo3::exceptions::{PyIndexError, PyOverflowError, PyPermissionError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PySlice, PyString};
use shm_segment::Region;

use super::{Core, Data};
use crate::errors;

/// What a subscript selects, inside `0..len`.
enum Sub {
    /// One byte.
    Index(usize),
    /// `n` bytes from `start`, `step` apart (`start` is in range when
    /// `n > 0`; `step` is never 0).
    Slice { start: usize, step: isize, n: usize },
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Resolves `index` against a mapping of `len` bytes, as `bytes` does:
/// negative indices count from the end, slices are clipped, an index out
/// of range is an `IndexError`.
fn resolve(index: &Bound<'_, PyAny>, len: usize, what: &dyn Fn() -> String) -> PyResult<Sub> {
    // A mapping's length fits `isize` (no object is larger).
    let ilen = isize::try_from(len).unwrap_or(isize::MAX);
    if let Ok(slice) = index.cast::<PySlice>() {
        let ind = slice.indices(ilen)?;
        return Ok(Sub::Slice {
            // Negative only as -1 when the slice is empty (negative step).
            start: usize::try_from(ind.start).unwrap_or(0),
            step: ind.step,
            n: ind.slicelength,
        });
    }
    // SAFETY: a live object; `PyIndex_Check` only looks at its type.
    let is_index =
        index.is_instance_of::<PyInt>() || unsafe { ffi::PyIndex_Check(index.as_ptr()) } != 0;
    if !is_index {
        return Err(PyTypeError::new_err(format!(
            "{}: indices must be integers or slices, not '{}'",
            what(),
            type_name(index)
        )));
    }
    let out_of_range = || {
        PyIndexError::new_err(format!(
            "{}: index {index} out of range (size {len})",
            what()
        ))
    };
    let i: isize = match index.extract() {
        Ok(i) => i,
        Err(e) if e.is_instance_of::<PyOverflowError>(index.py()) => return Err(out_of_range()),
        Err(e) => return Err(e),
    };
    let i = if i < 0 { i.checked_add(ilen) } else { Some(i) };
    match i {
        Some(i) if i >= 0 && i < ilen => Ok(Sub::Index(i as usize)),
        _ => Err(out_of_range()),
    }
}

/// `seg[index]`: an int for an index, a new `bytes` for a slice.
///
/// `size` is the mapping's size (fixed for the object's life; every copy
/// is checked against the mapping itself all the same).
pub(crate) fn get_item<'py, R>(
    core: &Core<R>,
    size: usize,
    index: &Bound<'py, PyAny>,
    what: &dyn Fn() -> String,
) -> PyResult<Bound<'py, PyAny>>
where
    R: Region + Send + Sync + 'static,
{
    let py = index.py();
    let op = "read item of";
    match resolve(index, size, &|| format!("{op} {}", what()))? {
        Sub::Slice { start, step: 1, n } => Ok(core.read_bytes(py, op, what, start, n)?.into_any()),
        Sub::Slice { n: 0, .. } => Ok(PyBytes::new(py, b"").into_any()),
        Sub::Slice { start, step, n } => {
            let map = core.get(op, what)?;
            // The span from the lowest to the highest selected byte, copied
            // out once, then picked from (a private buffer).
            let gap = step.unsigned_abs();
            let width = (n - 1) * gap;
            let low = if step > 0 { start } else { start - width };
            let mut span = vec![0u8; width + 1];
            map.read_at(low, &mut span).map_err(errors::segment)?;
            let picked: Vec<u8> = (0..n)
                .map(|k| {
                    let at = if step > 0 { k * gap } else { width - k * gap };
                    span[at]
                })
                .collect();
            Ok(PyBytes::new(py, &picked).into_any())
        }
        Sub::Index(i) => {
            let mut byte = [0u8; 1];
            core.with(op, what, |m| m.read_at(i, &mut byte))?
                .map_err(errors::segment)?;
            Ok(byte[0].into_pyobject(py)?.into_any())
        }
    }
}

/// `seg[index] = value`: one byte (an int in `range(256)`) for an index, a
/// bytes-like object exactly as long as the slice for a slice.
pub(crate) fn set_item<R>(
    core: &Core<R>,
    size: usize,
    index: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    what: &dyn Fn() -> String,
) -> PyResult<()>
where
    R: Region + Send + Sync + 'static,
{
    let op = "assign item of";
    let read_only = || {
        PyPermissionError::new_err(format!(
            "{op} {}: attached read-only; item assignment needs a writable mapping",
            what()
        ))
    };
    let target = || format!("{op} {}", what());
    match resolve(index, size, &target)? {
        Sub::Index(i) => {
            let byte = match value.extract::<i64>() {
                Ok(v) => u8::try_from(v).map_err(|_| {
                    pyo3::exceptions::PyValueError::new_err(format!(
                        "{}: a byte must be in range(0, 256), not {v}",
                        target()
                    ))
                })?,
                Err(_) => {
                    return Err(PyTypeError::new_err(format!(
                        "{}: an item is an int in range(0, 256), not '{}'",
                        target(),
                        type_name(value)
                    )))
                }
            };
            match core.with(op, what, |m| {
                (!m.is_read_only()).then(|| m.write_at(i, &[byte]))
            })? {
                Some(res) => res.map_err(errors::segment),
                None => Err(read_only()),
            }
        }
        Sub::Slice { start, step, n } => {
            if value.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(format!(
                    "{}: slice assignment needs a bytes-like object, not 'str' (encode it)",
                    target()
                )));
            }
            let data = Data::extract(value)?;
            if data.len() != n {
                return Err(PyIndexError::new_err(format!(
                    "{}: slice assignment is the wrong size: the slice has {n} bytes, the \
                     value {}",
                    target(),
                    data.len()
                )));
            }
            if step == 1 || n == 0 {
                return match core.with(op, what, |m| {
                    (!m.is_read_only()).then(|| data.write_to(m, start))
                })? {
                    Some(res) => res.map_err(errors::segment),
                    None => Err(read_only()),
                };
            }
            let map = core.get(op, what)?;
            if map.is_read_only() {
                return Err(read_only());
            }
            // Strided: the value copied out once (it may be shared memory
            // itself), then written a byte at a time.
            let bytes = data.to_vec();
            for (k, byte) in bytes.iter().enumerate() {
                let at = start as isize + k as isize * step;
                map.write_at(at as usize, std::slice::from_ref(byte))
                    .map_err(errors::segment)?;
            }
            Ok(())
        }
    }
}
