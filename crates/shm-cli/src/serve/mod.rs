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
//! | `GET /openapi.json`              |                                      | this API as an OpenAPI 3.0 document      |
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
//! - Request bodies must be sent as `Content-Type: application/json` (a
//!   415 otherwise); unknown fields, wrong types and missing fields are a 400.
//!
//! Errors are JSON, `{"error": "...", "status": N, "target": "..."}`: the
//! message names the operation, the segment and the cause. 400 malformed
//! request, 401 missing or wrong token, 403 permission (or a foreign
//! `Origin`, a CORS preflight, a Unix-socket caller of another uid), 404 no
//! such segment (or route), 409 exists (or too small, or shrank under the
//! request), 413 too large, 415 a body that is not JSON, 421 wrong `Host`,
//! 507 no space, 500 anything else.
//!
//! Security: see [`THREAT_MODEL`] (printed by `shm serve --help`) for what
//! it protects against; the checks themselves are in [`guard`].
//!
//! - Operations run on tokio's blocking pool: a panic in one is caught and
//!   answered with a 500; each connection is its own task, so nothing in a
//!   handler can take the server down.
//! - SIGINT and SIGTERM stop it gracefully: no new connections, requests in
//!   flight finish, at most 5 s more. A Unix socket's file is removed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::routing::{delete, get, post, put};
use axum::Router;

mod api;
mod guard;
mod openapi;
mod posix;
mod sysv;

pub(crate) use api::http_status;
use api::ApiError;

/// What `shm serve` protects against, and what it does not: the end of
/// `shm serve --help`, and the shm-cli README.
pub(crate) const THREAT_MODEL: &str = "\
Threat model:
  Whoever can call this API has the server user's rights over shared memory:
  read, write, chmod and remove every segment that user may touch.
  - Web pages in the user's browser: refused. Bodies must be
    application/json (a page cannot send that without a CORS preflight),
    every preflight (OPTIONS) is refused, a request whose Origin is not this
    server's own is refused, and the Host header must name this server
    (DNS rebinding).
  - Other local users: a TCP port on loopback does not say who is calling,
    so any local user can reach it. Listen on a Unix socket instead
    (--listen unix:/path): the socket file is mode 600 by default
    (--socket-mode), and each connection's caller is checked with
    SO_PEERCRED: only the server's own uid is served, unless others are
    allowed with --allow-uid. Or require a token with --token-file (a file
    only its owner may read); --token puts it in the process list.
  - The network: only loopback or a Unix socket unless a token is given.
    The token travels in clear text over plain HTTP: use a tunnel.
  - Peers that share a segment: a POSIX segment shrunk under a request is an
    error for that request, never a crash (it is read with pread/pwrite,
    never mapped).
  Not covered: a caller who is allowed in (the right uid, or the token) can
  do everything the server user can; root can do everything anyway.";

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

/// Where to listen: an IP address and port, or a Unix socket's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `--listen`: an IP address and port (`127.0.0.1:50000`, `[::1]:8080`);
/// `localhost:PORT` means `127.0.0.1:PORT`; port 0 picks a free port;
/// `unix:/path` is a Unix socket.
pub(crate) fn parse_listen(s: &str) -> Result<Listen, String> {
    let t = s.trim();
    if let Some(path) = t.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!(
                "{s:?}: unix: needs a path, like unix:/run/user/1000/shm.sock"
            ));
        }
        return Ok(Listen::Unix(PathBuf::from(path)));
    }
    if let Some(port) = t.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
        }
    }
    t.parse().map(Listen::Tcp).map_err(|_| {
        format!(
            "{s:?}: listen on IP:PORT, like 127.0.0.1:50000 or [::1]:50000 (port 0 picks one), \
             or on unix:/path"
        )
    })
}

/// A line on standard error; never a panic, even when stderr is closed.
fn log(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{args}");
}

/// `shm serve`'s options, as given on the command line.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) listen: Listen,
    pub(crate) token: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
    /// The Unix socket's permission bits (600 when not given).
    pub(crate) socket_mode: Option<u32>,
    /// Uids served on the Unix socket besides the server's own.
    pub(crate) allow_uids: Vec<u32>,
}

/// How the server is reached.
#[derive(Debug)]
enum Transport {
    /// The bound address (with the real port when 0 was asked for).
    Tcp(SocketAddr),
    /// A Unix socket; callers are known by `SO_PEERCRED`.
    Unix {
        /// The uids served: the server's own and those allowed.
        uids: Vec<u32>,
    },
}

/// What every request is checked against.
#[derive(Debug)]
struct Config {
    transport: Transport,
    /// The bearer token every request must carry, when set.
    token: Option<String>,
}

/// The token in `path`: its first line, trimmed. The file must be a
/// regular file that only its owner may read.
fn read_token_file(path: &Path) -> Result<String, String> {
    let what = format!("serve: --token-file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what}: {e}"))?;
    let meta = std::fs::metadata(path).map_err(|e| format!("{what}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{what}: not a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what}: mode {mode:o} lets other users read the token; chmod 600 it"
        ));
    }
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(format!(
            "{what}: the file is empty; put the token on its first line"
        ));
    }
    Ok(token)
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) fn run(options: Options) -> Result<(), String> {
    let token = match (&options.token, &options.token_file) {
        (Some(t), _) if t.trim().is_empty() => {
            return Err("serve: --token must not be empty".into())
        }
        (Some(t), _) => Some(t.clone()),
        (None, Some(path)) => Some(read_token_file(path)?),
        (None, None) => None,
    };
    if let Listen::Tcp(addr) = &options.listen {
        if options.socket_mode.is_some() || !options.allow_uids.is_empty() {
            return Err(format!(
                "serve: --socket-mode and --allow-uid are for a Unix socket (--listen \
                 unix:/path); a TCP port on {addr} cannot tell who is calling"
            ));
        }
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(format!(
                "serve: refusing to listen on {addr} without a token: it is not a loopback \
                 address, so anyone who can reach it could read, write and remove this user's \
                 shared memory. Listen on 127.0.0.1 (the default) or a Unix socket, or give \
                 --token-file"
            ));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("serve: cannot start the runtime: {e}"))?;
    let result = runtime.block_on(serve(options, token));
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

/// Prints where it listens: tests and scripts read this line. A closed
/// stdout is no reason not to serve.
fn announce(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {what}");
    let _ = out.flush();
}

async fn serve(options: Options, token: Option<String>) -> Result<(), String> {
    // Handlers first, so a signal that comes right after the address is
    // printed already stops the server gracefully.
    let graceful = stop_signal()?;
    let deadline = stop_signal()?;
    let shutdown = async move {
        let which = graceful.await;
        log(format_args!(
            "shm serve: {which}: finishing requests in flight, then stopping"
        ));
    };
    let server = match &options.listen {
        Listen::Tcp(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| format!("serve: cannot listen on {listen}: {e}"))?;
            let addr = listener
                .local_addr()
                .map_err(|e| format!("serve: the listening address: {e}"))?;
            let config = Arc::new(Config {
                transport: Transport::Tcp(addr),
                token,
            });
            announce(&format!("http://{addr}"));
            let server = axum::serve(listener, router(config)).with_graceful_shutdown(shutdown);
            Box::pin(async move { server.await })
                as std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>>>>
        }
        Listen::Unix(path) => {
            let socket = UnixSocket::bind(path, options.socket_mode.unwrap_or(0o600))?;
            // SAFETY: geteuid(2) has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            let mut uids = vec![me];
            uids.extend(options.allow_uids.iter().copied().filter(|u| *u != me));
            let config = Arc::new(Config {
                transport: Transport::Unix { uids },
                token,
            });
            announce(&options.listen.to_string());
            let app = router(config).into_make_service_with_connect_info::<guard::Peer>();
            let listener = socket.listener;
            let file = socket.file;
            Box::pin(async move {
                let result = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await;
                drop(file);
                result
            })
        }
    };
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

/// A bound Unix socket and its file, removed when dropped.
struct UnixSocket {
    listener: tokio::net::UnixListener,
    file: SocketFile,
}

/// The socket's path, removed on drop if it is still the socket we made.
struct SocketFile {
    path: PathBuf,
    inode: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl UnixSocket {
    /// Binds `path` with permission bits `mode`. A socket nobody listens on
    /// (a server that was killed) is replaced; a live one, or anything
    /// that is not a socket, is left alone and refused.
    fn bind(path: &Path, mode: u32) -> Result<UnixSocket, String> {
        let shown = path.display();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => {
                        return Err(format!(
                            "serve: cannot listen on unix:{shown}: the socket is in use by a \
                             running server"
                        ))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        std::fs::remove_file(path).map_err(|e| {
                            format!("serve: cannot remove the stale socket {shown}: {e}")
                        })?;
                    }
                    Err(e) => {
                        return Err(format!(
                            "serve: cannot listen on unix:{shown}: a socket is there and \
                             connecting to it failed ({e}); remove it if no server uses it"
                        ))
                    }
                }
            }
            Ok(_) => {
                return Err(format!(
                    "serve: cannot listen on unix:{shown}: something that is not a socket is \
                     there; refusing to replace it"
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("serve: cannot listen on unix:{shown}: {e}")),
        }
        // Made with no access for anyone but the owner, whatever the umask,
        // so nobody can connect before the mode below is set.
        // SAFETY: umask(2) has no preconditions; it swaps the process's mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = std::os::unix::net::UnixListener::bind(path);
        // SAFETY: as above; puts the mask back.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(|e| format!("serve: cannot listen on unix:{shown}: {e}"))?;
        let inode = std::fs::symlink_metadata(path)
            .map_err(|e| format!("serve: the socket {shown}: {e}"))?
            .ino();
        let file = SocketFile {
            path: path.to_owned(),
            inode,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("serve: chmod {mode:o} {shown}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("serve: the socket {shown}: {e}"))?;
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(|e| format!("serve: the socket {shown}: {e}"))?;
        Ok(UnixSocket { listener, file })
    }
}

fn router(config: Arc<Config>) -> Router {
    Router::new()
        .route("/create", post(sysv::create))
        .route("/stat/{key}/{shmid}", get(sysv::stat))
        .route("/write/{key}/{shmid}", post(sysv::write))
        .route("/read/{key}/{shmid}", get(sysv::read))
        .route("/set/{key}/{shmid}", put(sysv::set))
        .route("/remove/{key}/{shmid}", delete(sysv::remove))
        .route("/list", get(posix::list))
        .route("/posix/create", post(posix::create))
        .route("/posix/stat/{name}", get(posix::stat))
        .route("/posix/write/{name}", post(posix::write))
        .route("/posix/read/{name}", get(posix::read))
        .route("/posix/set/{name}", put(posix::set))
        .route("/posix/remove/{name}", delete(posix::remove))
        .route("/openapi.json", get(openapi::serve))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(config, guard::guard))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        None,
        format!(
            "no endpoint {method} {}: see `shm serve --help`, /openapi.json and the shm-cli README",
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

    fn addr(s: &str) -> Listen {
        Listen::Tcp(s.parse().unwrap())
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("localhost:0"), Ok(addr("127.0.0.1:0")));
        assert_eq!(parse_listen("[::1]:1"), Ok(addr("[::1]:1")));
        assert!(parse_listen("example.org:80").is_err() && parse_listen("1.2.3.4").is_err());
        assert_eq!(
            parse_listen("unix:/run/x.sock"),
            Ok(Listen::Unix("/run/x.sock".into()))
        );
        assert!(parse_listen("unix:").is_err());
    }
}
