//! What every route shares: the error answer and its status, running an
//! operation off the event loop, parsing bodies and names, and reading text
//! out of a segment.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use shm_segment::{PermChange, ShmName};

use super::{log, CHUNK, READ_LIMIT};
use crate::ops;
use crate::spec::parse_mode;

/// The HTTP status that fits a segment error (the command line prints it in
/// `--json` errors too): 404 missing, 403 not allowed, 409 exists or in the
/// wrong state, 413 past the end, 507 no room, 400 a bad argument.
pub(crate) fn http_status(err: &shm_segment::Error) -> u16 {
    use shm_segment::Error;
    if err.is_not_found() {
        return 404;
    }
    if err.is_permission_denied() {
        return 403;
    }
    if err.is_exists() {
        return 409;
    }
    if err.is_no_space() {
        return 507;
    }
    match err {
        Error::Os { .. } if err.kind() == std::io::ErrorKind::InvalidInput => 400,
        Error::OutOfBounds { .. } => 413,
        Error::InvalidName { .. } | Error::InvalidArgument { .. } | Error::Misaligned { .. } => 400,
        Error::TooSmall { .. }
        | Error::NotRegularFile { .. }
        | Error::Header { .. }
        | Error::Shrunk { .. }
        | Error::ShrinkRefused { .. } => 409,
        _ => 500,
    }
}

/// An error answer: `{"error", "status", "target"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(super) status: StatusCode,
    /// What the request was about, as the API names it.
    target: Option<String>,
    /// The operation, the segment and the cause.
    pub(super) message: String,
}

pub(super) type ApiResult = Result<Json<Value>, ApiError>;

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        target: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            target: target.map(str::to_owned),
            message: message.into(),
        }
    }

    pub(super) fn bad_request(target: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, target, message)
    }

    /// A segment error, with the status [`http_status`] gives it.
    pub(super) fn segment(err: shm_segment::Error, target: &str) -> Self {
        let status =
            StatusCode::from_u16(http_status(&err)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &err {
            // IPC_STAT says EINVAL ("Invalid argument") for a shmid that does not exist.
            shm_segment::Error::Os { op, target, source }
                if status == StatusCode::NOT_FOUND
                    && source.kind() == std::io::ErrorKind::InvalidInput =>
            {
                format!("{op} {target}: no such segment ({source})")
            }
            _ => err.to_string(),
        };
        Self::new(status, Some(target), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            log(format_args!(
                "shm serve: {} {}",
                self.status.as_u16(),
                self.message
            ));
        }
        let mut body = json!({ "error": self.message, "status": self.status.as_u16() });
        if let Some(target) = self.target {
            body["target"] = Value::String(target);
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Runs a blocking operation on tokio's blocking pool; a panic in it is a 500.
pub(super) async fn blocking<T, F>(target: &str, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => {
            let why = if e.is_panic() {
                let payload = e.into_panic();
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                format!("the operation panicked: {text}")
            } else {
                "the operation was cancelled".into()
            };
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(target),
                format!("{target}: {why}"),
            ))
        }
    }
}

pub(super) fn done() -> ApiResult {
    Ok(Json(json!({ "op": "done" })))
}

/// The body as JSON of type `T`; any problem is a 400 (413 when too big).
pub(super) fn parse_body<T: DeserializeOwned>(
    target: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rej| {
        ApiError::new(
            rej.status(),
            Some(target),
            format!("{target}: could not read the body: {}", rej.body_text()),
        )
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            Some(target),
            format!("{target}: the body is empty; a JSON object is expected"),
        ));
    }
    // serde would take `[5679, 1024]` for a struct; the API takes objects only.
    if bytes.trim_ascii_start().first() == Some(&b'[') {
        return Err(ApiError::bad_request(
            Some(target),
            format!("{target}: bad JSON body: an array; a JSON object is expected"),
        ));
    }
    let bad = |why: String| {
        ApiError::bad_request(Some(target), format!("{target}: bad JSON body: {why}"))
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Name the field: `shm_segsz: invalid type: string "big", expected u64`.
        let path = e.path().to_string();
        let inner = e.into_inner();
        bad(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })?;
    de.end().map_err(|e| bad(e.to_string()))?;
    Ok(value)
}

/// A mode as the seed writes it: octal digits as a decimal number (`666`).
pub(super) fn mode_from_digits(target: &str, digits: u32) -> Result<u32, ApiError> {
    parse_mode(&digits.to_string()).map_err(|_| {
        ApiError::bad_request(
            Some(target),
            format!(
                "{target}: mode {digits} is not a permission mode: give up to three octal \
                 digits as a number, like 600 or 644"
            ),
        )
    })
}

/// Permission bits as octal digits read as a decimal number: `0o644` → `644`.
pub(super) fn mode_to_digits(mode: u32) -> u32 {
    let m = mode & 0o777;
    (m >> 6) * 100 + ((m >> 3) & 7) * 10 + (m & 7)
}

/// A SysV key as the API takes it: a 32-bit number, signed or not.
pub(super) fn key_from_i64(n: i64) -> Option<i32> {
    i32::try_from(n)
        .ok()
        .or_else(|| u32::try_from(n).ok().map(|k| k as i32))
}

/// `key 5679 (0x0000162f)`, `key 0 (IPC_PRIVATE)`.
pub(super) fn key_text(key: i32) -> String {
    if key == 0 {
        "key 0 (IPC_PRIVATE)".into()
    } else {
        format!("key {key} ({:#010x})", key as u32)
    }
}

/// `SysV key 5679 (0x0000162f)`.
pub(super) fn key_label(key: i32) -> String {
    format!("SysV {}", key_text(key))
}

/// `/name` from a path segment given without its slash.
pub(super) fn posix_path(
    op: &str,
    path: Result<Path<String>, PathRejection>,
) -> Result<ShmName, ApiError> {
    let Path(name) = path.map_err(|rej| {
        ApiError::bad_request(None, format!("{op}: bad path: {}", rej.body_text()))
    })?;
    posix_name(op, &name)
}

/// A POSIX name, with or without its leading slash.
pub(super) fn posix_name(op: &str, name: &str) -> Result<ShmName, ApiError> {
    let full = if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    };
    ShmName::new(&full).map_err(|e| {
        ApiError::bad_request(Some(&format!("POSIX segment {full}")), format!("{op}: {e}"))
    })
}

// ---------------------------------------------------------------------------
// Reading text out of a segment

pub(super) fn too_big_to_read(target: &str, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Some(target),
        format!(
            "read {target}: {what} is over the {} MiB an HTTP read answers; use `shm read`",
            READ_LIMIT >> 20
        ),
    )
}

/// What the readers below need: a length and a copying read. An opened
/// segment reads a POSIX one with `pread` (see `ops::Opened`), so a segment
/// that shrinks under a read is an error answer, never a `SIGBUS` that would
/// take the whole server down.
pub(super) trait ReadAt {
    fn len(&self) -> usize;
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), shm_segment::Error>;
}

impl ReadAt for ops::Opened {
    fn len(&self) -> usize {
        ops::Opened::len(self)
    }
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), shm_segment::Error> {
        ops::Opened::read_at(self, offset, buf)
    }
}

/// The bytes before the first NUL (the seed's C-string read).
pub(super) fn read_c_string(region: &impl ReadAt, target: &str) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; CHUNK.min(region.len())];
    let mut offset = 0;
    while offset < region.len() {
        let n = CHUNK.min(region.len() - offset);
        let piece = &mut chunk[..n];
        region
            .read_at(offset, piece)
            .map_err(|e| ApiError::segment(e, target))?;
        if let Some(nul) = piece.iter().position(|&b| b == 0) {
            out.extend_from_slice(&piece[..nul]);
            break;
        }
        out.extend_from_slice(piece);
        if out.len() > READ_LIMIT {
            return Err(too_big_to_read(target, "the text before the first NUL"));
        }
        offset += n;
    }
    Ok(out)
}

/// The whole region without its trailing NULs.
pub(super) fn read_trimmed(region: &impl ReadAt, target: &str) -> Result<Vec<u8>, ApiError> {
    let mut chunk = vec![0u8; CHUNK.min(region.len())];
    let mut end = region.len();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let piece = &mut chunk[..end - start];
        region
            .read_at(start, piece)
            .map_err(|e| ApiError::segment(e, target))?;
        match piece.iter().rposition(|&b| b != 0) {
            Some(i) => {
                end = start + i + 1;
                break;
            }
            None => end = start,
        }
    }
    if end > READ_LIMIT {
        return Err(too_big_to_read(target, "the data before the trailing NULs"));
    }
    let mut out = vec![0u8; end];
    region
        .read_at(0, &mut out)
        .map_err(|e| ApiError::segment(e, target))?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// The body of both `set` routes

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SetBody {
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
}

impl SetBody {
    pub(super) fn change(self, target: &str) -> Result<PermChange, ApiError> {
        if self.uid.is_none() && self.gid.is_none() && self.mode.is_none() {
            return Err(ApiError::bad_request(
                Some(target),
                format!("{target}: give at least one of uid, gid, mode"),
            ));
        }
        let mode = self.mode.map(|m| mode_from_digits(target, m)).transpose()?;
        Ok(PermChange {
            uid: self.uid,
            gid: self.gid,
            mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_segment::Region;

    #[test]
    fn modes_and_keys() {
        assert_eq!(mode_to_digits(0o1666), 666);
        assert_eq!(mode_to_digits(0o640), 640);
        assert_eq!(mode_from_digits("t", 666).unwrap(), 0o666);
        assert_eq!(mode_from_digits("t", 0).unwrap(), 0);
        assert!(mode_from_digits("t", 888).is_err() && mode_from_digits("t", 1777).is_err());
        assert_eq!(key_from_i64(5679), Some(5679));
        assert_eq!(key_from_i64(0xffff_ffff), Some(-1));
        assert_eq!(key_from_i64(-5), Some(-5));
        assert_eq!(key_from_i64(1 << 32), None);
    }

    #[test]
    fn a_panicking_operation_is_a_500() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(blocking("t", || -> Result<(), ApiError> { panic!("boom") }))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(err.message.contains("panicked: boom"), "{}", err.message);
    }

    impl ReadAt for shm_segment::HeapRegion {
        fn len(&self) -> usize {
            Region::len(self)
        }
        fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), shm_segment::Error> {
            Region::read_at(self, offset, buf)
        }
    }

    #[test]
    fn reads_stop_at_the_first_nul_or_drop_trailing_ones() {
        let region = shm_segment::HeapRegion::new(3 * CHUNK + 5);
        region.write_at(0, b"ab\0cd").unwrap();
        assert_eq!(read_c_string(&region, "t").unwrap(), b"ab");
        assert_eq!(read_trimmed(&region, "t").unwrap(), b"ab\0cd");
        region.write_at(2 * CHUNK + 1, b"z").unwrap();
        assert_eq!(read_trimmed(&region, "t").unwrap().len(), 2 * CHUNK + 2);
        let empty = shm_segment::HeapRegion::new(CHUNK);
        assert!(read_c_string(&empty, "t").unwrap().is_empty());
        assert!(read_trimmed(&empty, "t").unwrap().is_empty());
    }
}
