//! Element types of the Python rings: a numpy-compatible dtype (a numpy
//! `dtype`, or anything `numpy.dtype()` accepts, such as `'u8'` or a struct
//! dtype), resolved once into its item size, alignment, and the two
//! functions that turn one Python value into the element's bytes and back.
//!
//! Scalars (`u1`..`u8`, `i1`..`i8`, `f4`, `f8`, `?`, native byte order)
//! convert in Rust, without numpy; every other dtype (structs, `V`/`S`
//! records, complex, `f2`, datetimes, other byte orders) takes bytes-like
//! objects of the item size or anything `numpy.asarray(value, dtype)`
//! accepts, and gives numpy scalars back (`numpy.void` for structs).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// Writes one value's bytes (exactly `Elem::size`) into the buffer.
type Encode = fn(&Elem, &Bound<'_, PyAny>, &mut [u8]) -> PyResult<()>;
/// Makes the Python value of one element's bytes.
type Decode = fn(&Elem, Python<'_>, &[u8]) -> PyResult<Py<PyAny>>;

/// A resolved element type.
pub(crate) struct Elem {
    pub(crate) size: usize,
    pub(crate) align: usize,
    /// The numpy dtype (or, without numpy, the dtype string given).
    pub(crate) dtype: Py<PyAny>,
    /// `str(dtype)`, for messages.
    pub(crate) name: String,
    pub(crate) encode: Encode,
    pub(crate) decode: Decode,
}

macro_rules! int_codec {
    ($enc:ident, $dec:ident, $t:ty) => {
        fn $enc(_: &Elem, v: &Bound<'_, PyAny>, out: &mut [u8]) -> PyResult<()> {
            let x: $t = v.extract()?;
            out.copy_from_slice(&x.to_le_bytes());
            Ok(())
        }
        fn $dec(_: &Elem, py: Python<'_>, b: &[u8]) -> PyResult<Py<PyAny>> {
            let x = <$t>::from_le_bytes(b.try_into().expect("element size"));
            Ok(x.into_pyobject(py)?.into_any().unbind())
        }
    };
}

int_codec!(enc_u8, dec_u8, u8);
int_codec!(enc_u16, dec_u16, u16);
int_codec!(enc_u32, dec_u32, u32);
int_codec!(enc_u64, dec_u64, u64);
int_codec!(enc_i8, dec_i8, i8);
int_codec!(enc_i16, dec_i16, i16);
int_codec!(enc_i32, dec_i32, i32);
int_codec!(enc_i64, dec_i64, i64);

fn enc_f32(_: &Elem, v: &Bound<'_, PyAny>, out: &mut [u8]) -> PyResult<()> {
    let x: f64 = v.extract()?;
    out.copy_from_slice(&(x as f32).to_le_bytes());
    Ok(())
}
fn dec_f32(_: &Elem, py: Python<'_>, b: &[u8]) -> PyResult<Py<PyAny>> {
    let x = f32::from_le_bytes(b.try_into().expect("element size"));
    Ok(f64::from(x).into_pyobject(py)?.into_any().unbind())
}
fn enc_f64(_: &Elem, v: &Bound<'_, PyAny>, out: &mut [u8]) -> PyResult<()> {
    let x: f64 = v.extract()?;
    out.copy_from_slice(&x.to_le_bytes());
    Ok(())
}
fn dec_f64(_: &Elem, py: Python<'_>, b: &[u8]) -> PyResult<Py<PyAny>> {
    let x = f64::from_le_bytes(b.try_into().expect("element size"));
    Ok(x.into_pyobject(py)?.into_any().unbind())
}
fn enc_bool(_: &Elem, v: &Bound<'_, PyAny>, out: &mut [u8]) -> PyResult<()> {
    out[0] = u8::from(v.is_truthy()?);
    Ok(())
}
fn dec_bool(_: &Elem, py: Python<'_>, b: &[u8]) -> PyResult<Py<PyAny>> {
    Ok(pyo3::types::PyBool::new(py, b[0] != 0)
        .to_owned()
        .into_any()
        .unbind())
}

/// Any other dtype: bytes-like values of the item size are copied as they
/// are; anything else goes through `numpy.asarray(value, dtype).tobytes()`.
fn enc_numpy(e: &Elem, v: &Bound<'_, PyAny>, out: &mut [u8]) -> PyResult<()> {
    let py = v.py();
    if let Ok(b) = v.cast::<PyBytes>() {
        return copy_exact(e, b.as_bytes(), out);
    }
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (v, e.dtype.bind(py)))?;
    let bytes = arr.call_method0("tobytes")?;
    let bytes = bytes.cast::<PyBytes>()?;
    copy_exact(e, bytes.as_bytes(), out)
}

fn copy_exact(e: &Elem, b: &[u8], out: &mut [u8]) -> PyResult<()> {
    if b.len() != out.len() {
        return Err(PyValueError::new_err(format!(
            "a value of dtype {} has {} bytes, got {}",
            e.name,
            out.len(),
            b.len()
        )));
    }
    out.copy_from_slice(b);
    Ok(())
}

/// A numpy scalar of the dtype (`numpy.void` for structs).
fn dec_numpy(e: &Elem, py: Python<'_>, b: &[u8]) -> PyResult<Py<PyAny>> {
    let np = py.import("numpy")?;
    let arr = np.call_method1("frombuffer", (PyBytes::new(py, b), e.dtype.bind(py)))?;
    // A copy that owns its bytes, not a view of the temporary `bytes`.
    Ok(arr.get_item(0)?.call_method0("copy")?.unbind())
}

/// Element bytes without numpy: what a dtype without numpy may be.
fn dec_bytes(_: &Elem, py: Python<'_>, b: &[u8]) -> PyResult<Py<PyAny>> {
    Ok(PyBytes::new(py, b).into_any().unbind())
}

fn enc_bytes(e: &Elem, v: &Bound<'_, PyAny>, out: &mut [u8]) -> PyResult<()> {
    let b = v.cast::<PyBytes>().map_err(|_| {
        PyTypeError::new_err(format!("dtype {}: push bytes of {} bytes", e.name, e.size))
    })?;
    copy_exact(e, b.as_bytes(), out)
}

/// The scalar codecs by (numpy kind, item size), native byte order only.
fn scalar(kind: char, size: usize) -> Option<(Encode, Decode)> {
    Some(match (kind, size) {
        ('u', 1) => (enc_u8, dec_u8),
        ('u', 2) => (enc_u16, dec_u16),
        ('u', 4) => (enc_u32, dec_u32),
        ('u', 8) => (enc_u64, dec_u64),
        ('i', 1) => (enc_i8, dec_i8),
        ('i', 2) => (enc_i16, dec_i16),
        ('i', 4) => (enc_i32, dec_i32),
        ('i', 8) => (enc_i64, dec_i64),
        ('f', 4) => (enc_f32, dec_f32),
        ('f', 8) => (enc_f64, dec_f64),
        ('b', 1) => (enc_bool, dec_bool),
        _ => return None,
    })
}

/// Without numpy: the scalar type strings numpy would accept for the fast
/// path (`'u8'`, `'<u8'`, `'=u8'`, `'uint64'`, `'f8'`, `'float64'`, ...),
/// and `'V<n>'` raw records (bytes).
fn parse_plain(s: &str) -> Option<(char, usize)> {
    let named = [
        ("uint8", ('u', 1)),
        ("uint16", ('u', 2)),
        ("uint32", ('u', 4)),
        ("uint64", ('u', 8)),
        ("int8", ('i', 1)),
        ("int16", ('i', 2)),
        ("int32", ('i', 4)),
        ("int64", ('i', 8)),
        ("float32", ('f', 4)),
        ("float64", ('f', 8)),
        ("bool", ('b', 1)),
        ("?", ('b', 1)),
        ("B", ('u', 1)),
        ("b", ('i', 1)),
    ];
    if let Some((_, v)) = named.iter().find(|(n, _)| *n == s) {
        return Some(*v);
    }
    let s = s.trim_start_matches(['<', '=', '|']);
    let mut chars = s.chars();
    let kind = chars.next()?;
    let size: usize = chars.as_str().parse().ok()?;
    matches!(kind, 'u' | 'i' | 'f' | 'b' | 'V').then_some((kind, size))
}

impl Elem {
    /// Resolves a dtype argument.
    pub(crate) fn resolve(dtype: &Bound<'_, PyAny>) -> PyResult<Elem> {
        let py = dtype.py();
        match py.import("numpy") {
            Ok(np) => Self::from_numpy(&np.getattr("dtype")?.call1((dtype,))?),
            Err(_) => Self::without_numpy(dtype),
        }
    }

    fn from_numpy(dt: &Bound<'_, PyAny>) -> PyResult<Elem> {
        let name: String = dt.str()?.extract()?;
        if dt.getattr("hasobject")?.is_truthy()? {
            return Err(PyValueError::new_err(format!(
                "dtype {name} holds Python objects, which cannot cross processes"
            )));
        }
        let size: usize = dt.getattr("itemsize")?.extract()?;
        let align: usize = dt.getattr("alignment")?.extract()?;
        if size == 0 {
            return Err(PyValueError::new_err(format!(
                "dtype {name} has no size (itemsize 0)"
            )));
        }
        let kind: String = dt.getattr("kind")?.extract()?;
        let native: bool = dt.getattr("isnative")?.extract()?;
        let is_struct = !dt.getattr("names")?.is_none() || dt.getattr("subdtype")?.is_truthy()?;
        let kind = kind.chars().next().unwrap_or('V');
        let (encode, decode) = match scalar(kind, size) {
            Some(codec) if native && !is_struct && cfg!(target_endian = "little") => codec,
            _ => (enc_numpy as Encode, dec_numpy as Decode),
        };
        Ok(Elem {
            size,
            align,
            dtype: dt.clone().unbind(),
            name,
            encode,
            decode,
        })
    }

    fn without_numpy(dtype: &Bound<'_, PyAny>) -> PyResult<Elem> {
        let py = dtype.py();
        let s: String = dtype
            .cast::<PyString>()
            .map_err(|_| {
                PyTypeError::new_err(
                    "without numpy, dtype must be a string such as 'u8', 'f8' or 'V16'",
                )
            })?
            .to_str()?
            .to_owned();
        let unsupported = || {
            PyValueError::new_err(format!(
                "dtype {s:?} needs numpy (without it: 'u1'..'u8', 'i1'..'i8', 'f4', 'f8', '?' \
                 and 'V<n>' records)"
            ))
        };
        let (kind, size) = parse_plain(&s).ok_or_else(unsupported)?;
        let (encode, decode, align) = match scalar(kind, size) {
            Some((e, d)) => (e, d, size),
            None if kind == 'V' && size > 0 => (enc_bytes as Encode, dec_bytes as Decode, 1),
            None => return Err(unsupported()),
        };
        Ok(Elem {
            size,
            align,
            dtype: PyString::new(py, &s).into_any().unbind(),
            name: s,
            encode,
            decode,
        })
    }

    /// `"8 bytes aligned to 8"`.
    pub(crate) fn layout(&self) -> String {
        format!("{} bytes aligned to {}", self.size, self.align)
    }
}
