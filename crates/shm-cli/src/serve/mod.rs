//! `shm serve`: the HTTP API.
//!
//! The System V endpoints are the seed service's (a Flask app over a small C
//! library), with its request bodies and response shapes, so its clients
//! keep working; the rest is added. Every operation goes through
//! [`crate::ops`], the layer the command line uses too.
//!
//! | Method and path                  | Body                                 | Answer                                   |
//! |----------------------------------|--------------------------------------|------------------------------------------|
//! | `POST /create`                   | `{"shm_key", "shm_segsz", "mode"?}`  | `{"shm_key": "5679", "shm_shmid": "3"}`  |
//! | `GET /stat/<key>/<shmid>`        |                                      | the seed's `shmid_ds` fields (below)     |
//! | `POST /write/<key>/<shmid>`      | `{"data"}`                           | `{"op": "done"}`                         |
//! | `GET /read/<key>/<shmid>`        |                                      | `{"data": "..."}`                        |
//! | `PUT /set/<key>/<shmid>`         | `{"uid"?, "gid"?, "mode"?}`          | `{"op": "done"}`                         |
//! | `DELETE /remove/<key>/<shmid>`   |                                      | `{"op": "done"}`                         |
//! | `GET /list`                      |                                      | what `shm list --json` prints            |
//! | `POST /posix/create`             | `{"name", "size", "mode"?}`          | `{"name": "/x", "size": 4096, "mode": 600}` |
//! | `GET /posix/stat/<name>`         |                                      | name, size, mode, uid, gid, times, inode, attached |
//! | `POST /posix/write/<name>`       | `{"data", "offset"?}`                | `{"op": "done"}`                         |
//! | `GET /posix/read/<name>`         |                                      | `{"data": "..."}`                        |
//! | `PUT /posix/set/<name>`          | `{"uid"?, "gid"?, "mode"?}`          | `{"op": "done"}`                         |
//! | `DELETE /posix/remove/<name>`    |                                      | `{"op": "done"}`                         |
//!
//! Conventions:
//!
//! - `mode` is octal digits written as a JSON number, as in the seed: `666`
//!   means `0o666`, in requests and in answers. At most `777`: no setuid,
//!   setgid or sticky bits. `create` uses the mode asked for as is and
//!   `600` when none is given; nothing here ever widens a mode.
//! - `<key>` is decimal (or `0x` hex), `0` for `IPC_PRIVATE`. The operation
//!   uses `<shmid>`, after checking that the segment's key is `<key>`
//!   (`0` matches a private segment); a mismatch is a 404 and nothing is done.
//! - `create` is exclusive (`IPC_CREAT|IPC_EXCL`, `O_EXCL`): an existing key
//!   or name is a 409. (The seed's create, without `IPC_EXCL`, returned the
//!   existing segment.)
//! - `/stat` answers exactly the seed's fields: `cgid`, `cuid`, `gid`,
//!   `mode` (the permission bits as octal digits), `shm_atime`, `shm_cpid`,
//!   `shm_ctime`, `shm_dtime`, `shm_key`, `shm_lpid`, `shm_nattch`,
//!   `shm_segsz`, `shm_shmid`, `uid`.
//! - SysV `write` and `read` are the seed's C strings: `write` copies the
//!   data and a terminating NUL when there is room for one (the seed used
//!   `create_string_buffer` and `strcpy`), `read` answers the bytes before
//!   the first NUL. So writing `"abc"` over `"testdata2"` reads back `"abc"`,
//!   as with the seed.
//! - POSIX `write` copies exactly the data's bytes at `offset` (default 0);
//!   POSIX `read` answers the whole segment with trailing NULs dropped. Both
//!   go through the descriptor (`pread`/`pwrite`), never a mapping: another
//!   user may truncate a POSIX segment at any time, and a mapping would turn
//!   that into a `SIGBUS` that ends the server. A segment that shrinks under
//!   a request is a 409 for that request, and the server goes on serving.
//! - Bytes that are not UTF-8 are read back lossily (U+FFFD).
//! - A write is all or nothing: one that would pass the end is a 413 and
//!   writes nothing. A read whose text would be over 16 MiB is a 413 too
//!   (use `shm read` for big segments), and so is a body over 16 MiB.
//! - `set` changes only the fields given; at least one is needed.
//! - Request bodies are parsed as JSON whatever their `Content-Type`;
//!   unknown fields, wrong types and missing fields are a 400.
//!
//! Errors are JSON, `{"error": "...", "status": N, "target": "..."}`: the
//! message names the operation, the segment and the cause. 400 malformed
//! request, 401 missing or wrong token, 403 permission, 404 no such segment
//! (or route), 409 exists (or too small, or shrank under the request), 413
//! too large, 421 wrong `Host`, 507 no space,
//! 500 anything else.
//!
//! Security (DESIGN.md, "Security defaults"):
//!
//! - It listens on `127.0.0.1:50000` by default, and refuses to start on an
//!   address that is not loopback unless `--token` is given.
//! - The `Host` header must name the listening address (IP and, when given,
//!   port) or `localhost`, so a web page cannot reach the API through DNS
//!   rebinding: another name is a 421, no `Host` a 400. On an unspecified
//!   address (`0.0.0.0`, `::`) any IP literal is accepted, since those
//!   cannot be rebound; host names other than `localhost` still are not.
//! - With `--token T`, every request needs `Authorization: Bearer T` (401
//!   otherwise; compared in constant time). The token is visible to other
//!   local users in the process list, like any argument.
//! - Operations run on tokio's blocking pool: a panic in one is caught and
//!   answered with a 500; each connection is its own task, so nothing in a
//!   handler can take the server down.
//! - SIGINT and SIGTERM stop it gracefully: no new connections, requests in
//!   flight finish, at most 5 s more.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use shm_segment::{Access, PermChange, ShmName, SysvKey, SysvSegment};

use crate::ops;
use crate::target::{parse_int, parse_mode, Target};

/// Where `shm serve` listens unless told otherwise (the seed's port).
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:50000";

/// The largest request body taken.
const BODY_LIMIT: usize = 16 << 20;
/// The most bytes a read answers.
const READ_LIMIT: usize = 16 << 20;
/// Reads scan the segment in pieces this big.
const CHUNK: usize = 64 << 10;
/// How long requests in flight may take after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `--listen`: an IP address and port (`127.0.0.1:50000`, `[::1]:8080`);
/// `localhost:PORT` means `127.0.0.1:PORT`; port 0 picks a free port.
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    if let Some(port) = t.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    t.parse().map_err(|_| {
        format!("{s:?}: listen on IP:PORT, like 127.0.0.1:50000 or [::1]:50000 (port 0 picks one)")
    })
}

/// A line on standard error; never a panic, even when stderr is closed.
fn log(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{args}");
}

/// What every request is checked against.
#[derive(Debug)]
struct Config {
    /// The bound address (with the real port when 0 was asked for).
    addr: SocketAddr,
    /// The bearer token every request must carry, when set.
    token: Option<String>,
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) fn run(listen: SocketAddr, token: Option<String>) -> Result<(), String> {
    if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err("serve: --token must not be empty".into());
    }
    if !listen.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "serve: refusing to listen on {listen} without --token: it is not a loopback \
             address, so anyone who can reach it could read, write and remove this user's \
             shared memory. Listen on 127.0.0.1 (the default) or give --token"
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("serve: cannot start the runtime: {e}"))?;
    let result = runtime.block_on(serve(listen, token));
    // Operations still on the blocking pool are short; do not wait forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// A future that resolves on the first SIGINT or SIGTERM after its creation.
fn stop_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("serve: SIGINT handler: {e}"))?;
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("serve: SIGTERM handler: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    })
}

async fn serve(listen: SocketAddr, token: Option<String>) -> Result<(), String> {
    // Handlers first, so a signal that comes right after the address is
    // printed already stops the server gracefully.
    let graceful = stop_signal()?;
    let deadline = stop_signal()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("serve: cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("serve: the listening address: {e}"))?;
    let config = Arc::new(Config { addr, token });
    let app = router(config);

    let mut out = std::io::stdout().lock();
    // Tests and scripts read this line for the port; a closed stdout is no
    // reason not to serve.
    let _ = writeln!(out, "listening on http://{addr}");
    let _ = out.flush();
    drop(out);

    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let which = graceful.await;
        log(format_args!(
            "shm serve: {which}: finishing requests in flight, then stopping"
        ));
    });
    tokio::select! {
        result = server => result.map_err(|e| format!("serve: {e}")),
        () = async {
            deadline.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            log(format_args!(
                "shm serve: connections still open {} s after the signal; closing them",
                SHUTDOWN_GRACE.as_secs()
            ));
            Ok(())
        }
    }
}

fn router(config: Arc<Config>) -> Router {
    Router::new()
        .route("/create", post(sysv_create))
        .route("/stat/{key}/{shmid}", get(sysv_stat))
        .route("/write/{key}/{shmid}", post(sysv_write))
        .route("/read/{key}/{shmid}", get(sysv_read))
        .route("/set/{key}/{shmid}", put(sysv_set))
        .route("/remove/{key}/{shmid}", delete(sysv_remove))
        .route("/list", get(list))
        .route("/posix/create", post(posix_create))
        .route("/posix/stat/{name}", get(posix_stat))
        .route("/posix/write/{name}", post(posix_write))
        .route("/posix/read/{name}", get(posix_read))
        .route("/posix/set/{name}", put(posix_set))
        .route("/posix/remove/{name}", delete(posix_remove))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(config, guard))
}

// ---------------------------------------------------------------------------
// Errors

/// An error answer: `{"error", "status", "target"}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    /// What the request was about, as the API names it.
    target: Option<String>,
    /// The operation, the segment and the cause.
    message: String,
}

type ApiResult = Result<Json<Value>, ApiError>;

impl ApiError {
    fn new(status: StatusCode, target: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            target: target.map(str::to_owned),
            message: message.into(),
        }
    }

    fn bad_request(target: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, target, message)
    }

    /// A segment error, with the status `ops::http_status` gives it.
    fn segment(err: shm_segment::Error, target: &str) -> Self {
        let status = StatusCode::from_u16(ops::http_status(&err))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &err {
            // IPC_STAT says EINVAL for a shmid that does not exist.
            shm_segment::Error::Os { op, target, source }
                if status == StatusCode::NOT_FOUND
                    && source.raw_os_error() == Some(libc::EINVAL) =>
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
async fn blocking<T, F>(target: &str, f: F) -> Result<T, ApiError>
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

fn done() -> ApiResult {
    Ok(Json(json!({ "op": "done" })))
}

// ---------------------------------------------------------------------------
// Host and token checks

async fn guard(State(config): State<Arc<Config>>, req: Request, next: Next) -> Response {
    if let Err(e) = check_host(&config, req.headers()) {
        return e.into_response();
    }
    if let Err(e) = check_token(&config, req.headers()) {
        return e.into_response();
    }
    if let Err(e) = check_length(req.headers()) {
        return e.into_response();
    }
    next.run(req).await
}

/// A `Content-Length` over the limit is refused before the body is read
/// (a body without one is cut off at the limit as it is read).
fn check_length(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(());
    };
    match value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(len) if len <= BODY_LIMIT as u64 => Ok(()),
        Some(len) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!(
                "the body is {len} bytes; the limit is {} MiB",
                BODY_LIMIT >> 20
            ),
        )),
        None => Err(ApiError::bad_request(None, "bad Content-Length header")),
    }
}

/// The `Host` header names the listening address or `localhost`.
fn check_host(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::HOST) else {
        return Err(ApiError::bad_request(
            None,
            "missing Host header: send Host: localhost or the listening address",
        ));
    };
    let raw = String::from_utf8_lossy(value.as_bytes());
    if host_allowed(config.addr, &raw) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        None,
        format!(
            "Host {raw:?} is neither this server's address ({}) nor localhost; refused \
             (a protection against DNS rebinding)",
            config.addr
        ),
    ))
}

/// Whether `host` (a `Host` header value) names `addr` or `localhost`, with
/// `addr`'s port when it has one.
fn host_allowed(addr: SocketAddr, host: &str) -> bool {
    let host = host.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => (ip, port),
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if port.parse::<u16>().ok() != Some(addr.port()) {
            return false;
        }
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => ip == addr.ip() || addr.ip().is_unspecified(),
        Err(_) => false,
    }
}

/// `Authorization: Bearer T` when a token is set.
fn check_token(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &config.token else {
        return Ok(());
    };
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, None, m);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "missing bearer token: this server was started with --token; send Authorization: Bearer <token>",
        ));
    };
    let value = value.as_bytes();
    let given = match value.iter().position(|&b| b == b' ') {
        Some(i) if value[..i].eq_ignore_ascii_case(b"bearer") => value[i + 1..].trim_ascii(),
        _ => return Err(unauthorized(
            "the Authorization header is not a bearer token: send Authorization: Bearer <token>",
        )),
    };
    if same_bytes(given, expected.as_bytes()) {
        Ok(())
    } else {
        Err(unauthorized("wrong bearer token"))
    }
}

/// Equality that takes as long for every pair of equal-length inputs.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------
// Request parsing

/// The body as JSON of type `T`; any problem is a 400 (413 when too big).
fn parse_body<T: DeserializeOwned>(
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
fn mode_from_digits(target: &str, digits: u32) -> Result<u32, ApiError> {
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
fn mode_to_digits(mode: u32) -> u32 {
    let m = mode & 0o777;
    (m >> 6) * 100 + ((m >> 3) & 7) * 10 + (m & 7)
}

/// A SysV key as the API takes it: a 32-bit number, signed or not.
fn key_from_i64(n: i64) -> Option<i32> {
    i32::try_from(n)
        .ok()
        .or_else(|| u32::try_from(n).ok().map(|k| k as i32))
}

/// `key 5679 (0x0000162f)`, `key 0 (IPC_PRIVATE)`.
fn key_text(key: i32) -> String {
    if key == 0 {
        "key 0 (IPC_PRIVATE)".into()
    } else {
        format!("key {key} ({:#010x})", key as u32)
    }
}

/// `SysV key 5679 (0x0000162f)`.
fn key_label(key: i32) -> String {
    format!("SysV {}", key_text(key))
}

/// `<key>/<shmid>` from the path.
fn sysv_path(
    op: &str,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(i32, i32, String), ApiError> {
    let Path((key_text, id_text)) = path.map_err(|rej| {
        ApiError::bad_request(None, format!("{op}: bad path: {}", rej.body_text()))
    })?;
    let what = format!("{op}/{key_text}/{id_text}");
    let key = parse_int(&key_text).and_then(key_from_i64).ok_or_else(|| {
        ApiError::bad_request(
            Some(&what),
            format!("{what}: key {key_text:?} is not a 32-bit number (decimal, or 0x hex)"),
        )
    })?;
    let shmid = parse_int(&id_text)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                Some(&what),
                format!("{what}: shmid {id_text:?} is not a non-negative number"),
            )
        })?;
    Ok((key, shmid, format!("{}, shmid {shmid}", key_label(key))))
}

/// The segment `shmid`, after checking that its key is `key`.
fn open_checked(key: i32, shmid: i32, label: &str) -> Result<SysvSegment, ApiError> {
    let seg = SysvSegment::open_id(shmid).map_err(|e| ApiError::segment(e, label))?;
    let actual = seg.key().0;
    if actual != key {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some(label),
            format!(
                "SysV shmid {shmid} has {}, not {} as the path says; nothing was done",
                key_text(actual),
                key_text(key)
            ),
        ));
    }
    Ok(seg)
}

/// `/name` from a path segment given without its slash.
fn posix_path(op: &str, path: Result<Path<String>, PathRejection>) -> Result<ShmName, ApiError> {
    let Path(name) = path.map_err(|rej| {
        ApiError::bad_request(None, format!("{op}: bad path: {}", rej.body_text()))
    })?;
    posix_name(op, &name)
}

/// A POSIX name, with or without its leading slash.
fn posix_name(op: &str, name: &str) -> Result<ShmName, ApiError> {
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

fn too_big_to_read(target: &str, what: &str) -> ApiError {
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
trait ReadAt {
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
fn read_c_string(region: &impl ReadAt, target: &str) -> Result<Vec<u8>, ApiError> {
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
fn read_trimmed(region: &impl ReadAt, target: &str) -> Result<Vec<u8>, ApiError> {
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
// Request bodies

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SysvCreate {
    shm_key: i64,
    shm_segsz: u64,
    mode: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SysvWrite {
    data: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PosixCreate {
    name: String,
    size: u64,
    mode: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PosixWrite {
    data: String,
    #[serde(default)]
    offset: usize,
}

impl SetBody {
    fn change(self, target: &str) -> Result<PermChange, ApiError> {
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

// ---------------------------------------------------------------------------
// System V handlers (the seed's)

async fn sysv_create(body: Result<Bytes, BytesRejection>) -> ApiResult {
    let req: SysvCreate = parse_body("POST /create", body)?;
    let key = key_from_i64(req.shm_key).ok_or_else(|| {
        ApiError::bad_request(
            Some("POST /create"),
            format!(
                "POST /create: shm_key {} does not fit in 32 bits",
                req.shm_key
            ),
        )
    })?;
    let label = key_label(key);
    let mode = mode_from_digits(&label, req.mode.unwrap_or(600))?;
    let target = if key == 0 {
        Target::Private
    } else {
        Target::Key(SysvKey(key))
    };
    let size = req.shm_segsz;
    let what = label.clone();
    let created = blocking(&label, move || {
        ops::create(&target, size, mode).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    let shmid = created.shmid.map_or_else(String::new, |id| id.to_string());
    Ok(Json(
        json!({ "shm_key": req.shm_key.to_string(), "shm_shmid": shmid }),
    ))
}

async fn sysv_stat(path: Result<Path<(String, String)>, PathRejection>) -> ApiResult {
    let (key, shmid, label) = sysv_path("/stat", path)?;
    let what = label.clone();
    let st = blocking(&label, move || {
        open_checked(key, shmid, &what)?
            .stat()
            .map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    Ok(Json(json!({
        "cgid": st.cgid,
        "cuid": st.cuid,
        "gid": st.gid,
        "mode": mode_to_digits(st.mode),
        "shm_atime": st.atime,
        "shm_cpid": st.cpid,
        "shm_ctime": st.ctime,
        "shm_dtime": st.dtime,
        "shm_key": st.key.0,
        "shm_lpid": st.lpid,
        "shm_nattch": st.nattch,
        "shm_segsz": st.size,
        "shm_shmid": st.id,
        "uid": st.uid,
    })))
}

async fn sysv_write(
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (key, shmid, label) = sysv_path("/write", path)?;
    let req: SysvWrite = parse_body(&label, body)?;
    let what = label.clone();
    blocking(&label, move || {
        open_checked(key, shmid, &what)?;
        let opened = ops::open(&Target::Id(shmid), Access::ReadWrite, "write")
            .map_err(|e| ApiError::segment(e, &what))?;
        let mut bytes = req.data.into_bytes();
        // A C string: the terminating NUL goes too when there is room.
        if bytes.len() < opened.len() {
            bytes.push(0);
        }
        opened
            .write_at(0, &bytes)
            .map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

async fn sysv_read(path: Result<Path<(String, String)>, PathRejection>) -> ApiResult {
    let (key, shmid, label) = sysv_path("/read", path)?;
    let what = label.clone();
    let bytes = blocking(&label, move || {
        open_checked(key, shmid, &what)?;
        let opened = ops::open(&Target::Id(shmid), Access::ReadOnly, "read")
            .map_err(|e| ApiError::segment(e, &what))?;
        read_c_string(&opened, &what)
    })
    .await?;
    Ok(Json(json!({ "data": String::from_utf8_lossy(&bytes) })))
}

async fn sysv_set(
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let (key, shmid, label) = sysv_path("/set", path)?;
    let change = parse_body::<SetBody>(&label, body)?.change(&label)?;
    let what = label.clone();
    blocking(&label, move || {
        open_checked(key, shmid, &what)?;
        ops::set(&Target::Id(shmid), change).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

async fn sysv_remove(path: Result<Path<(String, String)>, PathRejection>) -> ApiResult {
    let (key, shmid, label) = sysv_path("/remove", path)?;
    let what = label.clone();
    blocking(&label, move || {
        open_checked(key, shmid, &what)?;
        ops::remove(&Target::Id(shmid)).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

// ---------------------------------------------------------------------------
// Added: list and POSIX

async fn list() -> ApiResult {
    let all = blocking("list", || {
        ops::list(true, true).map_err(|e| ApiError::segment(e, "list"))
    })
    .await?;
    serde_json::to_value(&all).map(Json).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("list"),
            format!("list: cannot encode: {e}"),
        )
    })
}

async fn posix_create(body: Result<Bytes, BytesRejection>) -> ApiResult {
    let req: PosixCreate = parse_body("POST /posix/create", body)?;
    let name = posix_name("POST /posix/create", &req.name)?;
    let label = format!("POSIX segment {name}");
    let mode = mode_from_digits(&label, req.mode.unwrap_or(600))?;
    let size = req.size;
    let what = label.clone();
    let created = blocking(&label, move || {
        ops::create(&Target::Posix(name), size, mode).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    Ok(Json(json!({
        "name": created.name.unwrap_or(created.target),
        "size": created.size,
        "mode": mode_to_digits(created.mode),
    })))
}

async fn posix_stat(path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = posix_path("/posix/stat", path)?;
    let label = format!("POSIX segment {name}");
    let what = label.clone();
    let stat = blocking(&label, move || {
        ops::stat(&Target::Posix(name)).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    match stat {
        ops::Stat::Posix { stat, attached } => Ok(Json(json!({
            "name": stat.name,
            "size": stat.size,
            "mode": mode_to_digits(stat.mode),
            "uid": stat.uid,
            "gid": stat.gid,
            "atime": stat.atime,
            "mtime": stat.mtime,
            "ctime": stat.ctime,
            "inode": stat.inode,
            "attached": attached,
        }))),
        ops::Stat::Sysv { .. } => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&label),
            format!("stat {label}: answered for a System V segment"),
        )),
    }
}

async fn posix_write(
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = posix_path("/posix/write", path)?;
    let label = format!("POSIX segment {name}");
    let req: PosixWrite = parse_body(&label, body)?;
    let what = label.clone();
    blocking(&label, move || {
        ops::write(&Target::Posix(name), req.offset, req.data.as_bytes())
            .map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

async fn posix_read(path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = posix_path("/posix/read", path)?;
    let label = format!("POSIX segment {name}");
    let what = label.clone();
    let bytes = blocking(&label, move || {
        let opened = ops::open(&Target::Posix(name), Access::ReadOnly, "read")
            .map_err(|e| ApiError::segment(e, &what))?;
        read_trimmed(&opened, &what)
    })
    .await?;
    Ok(Json(json!({ "data": String::from_utf8_lossy(&bytes) })))
}

async fn posix_set(
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let name = posix_path("/posix/set", path)?;
    let label = format!("POSIX segment {name}");
    let change = parse_body::<SetBody>(&label, body)?.change(&label)?;
    let what = label.clone();
    blocking(&label, move || {
        ops::set(&Target::Posix(name), change).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

async fn posix_remove(path: Result<Path<String>, PathRejection>) -> ApiResult {
    let name = posix_path("/posix/remove", path)?;
    let label = format!("POSIX segment {name}");
    let what = label.clone();
    blocking(&label, move || {
        ops::remove(&Target::Posix(name)).map_err(|e| ApiError::segment(e, &what))
    })
    .await?;
    done()
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        None,
        format!(
            "no endpoint {method} {}: see `shm serve --help` and the shm-cli README",
            uri.path()
        ),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        format!("{} does not take {method}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_segment::Region;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_must_name_the_address_or_localhost() {
        let a = addr("127.0.0.1:50000");
        for ok in [
            "127.0.0.1:50000",
            "127.0.0.1",
            "localhost:50000",
            "LOCALHOST",
            "localhost.:50000",
        ] {
            assert!(host_allowed(a, ok), "{ok}");
        }
        for bad in [
            "evil.example:50000",
            "evil.example",
            "127.0.0.1:50001",
            "127.0.0.2:50000",
            "localhost:x",
            "[::1]:50000",
            "",
            "127.0.0.1:50000:1",
        ] {
            assert!(!host_allowed(a, bad), "{bad}");
        }
        let v6 = addr("[::1]:8080");
        assert!(host_allowed(v6, "[::1]:8080") && host_allowed(v6, "[::1]"));
        assert!(!host_allowed(v6, "[::1]x") && !host_allowed(v6, "[127.0.0.1]:8080"));
        let any = addr("0.0.0.0:80");
        assert!(host_allowed(any, "192.0.2.7") && host_allowed(any, "192.0.2.7:80"));
        assert!(!host_allowed(any, "rebound.example"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd") && !same_bytes(b"abc", b"abcd"));
    }

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
    fn listen_addresses() {
        assert_eq!(parse_listen("localhost:0"), Ok(addr("127.0.0.1:0")));
        assert_eq!(parse_listen("[::1]:1"), Ok(addr("[::1]:1")));
        assert!(parse_listen("example.org:80").is_err() && parse_listen("1.2.3.4").is_err());
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
