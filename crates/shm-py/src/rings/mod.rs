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

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use shm_ring::RingOptions;
use shm_segment::{Header, HeaderInfo, Kind, Segment};

use crate::dtype::Elem;
use crate::errors;
use carrier::{makers, Makers, Open, LAYOUTS};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    spsc::register(m)?;
    mpmc::register(m)?;
    Ok(())
}

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

/// Opens the POSIX segment `name` and checks that it holds a structure
/// of `kind` (`what` in messages): `ValueError` naming what it holds instead.
pub(crate) fn open_kind(name: &str, kind: Kind, what: &str) -> PyResult<(Segment, HeaderInfo)> {
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
    Ok((seg, info))
}

/// Opens `name` and checks that it holds a ring of `kind` whose elements
/// have `elem`'s size and alignment, so the message of a mismatch names the
/// ring and both layouts (attaching validates everything again).
pub(crate) fn open_checked(name: &str, kind: Kind, what: &str, elem: &Elem) -> PyResult<Segment> {
    let (seg, info) = open_kind(name, kind, what)?;
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

/// `unlink()` of a ring or channel: removes the segment's name now, and
/// so no unlink happens at drop.
pub(crate) fn unlink(seg: &Segment) -> PyResult<()> {
    seg.set_remove_on_drop(false);
    match seg.posix() {
        Some(p) => p.unlink().map_err(errors::segment),
        None => Ok(()),
    }
}

/// `Open::Create` for `create(name, capacity, ...)`.
pub(crate) fn create_how(name: &str, capacity: usize, blocking: bool) -> Open<'_> {
    Open::Create {
        name,
        capacity,
        opts: options(blocking),
    }
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
