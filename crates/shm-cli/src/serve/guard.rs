//! The checks every request passes before any route sees it: who is
//! calling (Unix socket), where from (`Host`, `Origin`, preflights), with
//! what (token, body size and type). See `super::THREAT_MODEL`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;

use super::api::ApiError;
use super::{Config, Transport, BODY_LIMIT};

/// Who is at the other end of a Unix-socket connection, from the kernel
/// (`SO_PEERCRED`, taken when the connection is accepted).
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer {
    /// `None` when the kernel would not say.
    uid: Option<u32>,
    pid: Option<i32>,
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        // tokio's peer_cred is getsockopt(SO_PEERCRED) on Linux.
        let cred = stream.io().peer_cred().ok();
        Peer {
            uid: cred.map(|c| c.uid()),
            pid: cred.and_then(|c| c.pid()),
        }
    }
}

pub(super) async fn guard(State(config): State<Arc<Config>>, req: Request, next: Next) -> Response {
    match check(&config, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Every check, the cheapest and most telling first.
fn check(config: &Config, req: &Request) -> Result<(), ApiError> {
    let headers = req.headers();
    check_peer(config, req)?;
    check_host(config, headers)?;
    check_origin(config, headers)?;
    if req.method() == Method::OPTIONS {
        return Err(forbidden(
            "OPTIONS (a CORS preflight) is refused: this API answers no cross-origin requests",
        ));
    }
    check_token(config, headers)?;
    check_length(headers)?;
    check_content_type(req.method(), headers)
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, None, message)
}

/// On a Unix socket, the caller's uid must be one of those served.
fn check_peer(config: &Config, req: &Request) -> Result<(), ApiError> {
    let Transport::Unix { uids } = &config.transport else {
        return Ok(());
    };
    let peer = req.extensions().get::<ConnectInfo<Peer>>().map(|c| c.0);
    match peer.and_then(|p| p.uid.map(|uid| (uid, p.pid))) {
        Some((uid, _)) if uids.contains(&uid) => Ok(()),
        Some((uid, pid)) => Err(forbidden(format!(
            "the caller (uid {uid}{}) is not served: this server serves uid {} on its socket; \
             start it with --allow-uid {uid} to let this user in",
            pid.map_or(String::new(), |p| format!(", pid {p}")),
            uids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => Err(forbidden(
            "the caller's uid is unknown (SO_PEERCRED failed); refused",
        )),
    }
}

/// A body must be JSON, said so: a web page can send `text/plain`, form
/// and multipart bodies anywhere without a preflight, but not this.
fn check_content_type(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body && !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        return Ok(());
    }
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = given.as_deref().is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    });
    if is_json {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        None,
        match given {
            Some(t) => format!("Content-Type {t:?} refused: send the body as application/json"),
            None => "no Content-Type: send the body as application/json".into(),
        },
    ))
}

/// No `Origin`, or this server's own: `http://` and a host that
/// [`host_allowed`] takes, with the port (80 when none is written).
fn check_origin(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let raw = String::from_utf8_lossy(value.as_bytes());
    let own = match &config.transport {
        Transport::Tcp(addr) => origin_allowed(*addr, &raw),
        // No web page is served from a Unix socket.
        Transport::Unix { .. } => false,
    };
    if own {
        return Ok(());
    }
    Err(forbidden(format!(
        "Origin {raw:?} is not this server's own: cross-origin requests are refused, so that \
         web pages cannot use this API"
    )))
}

/// Whether `origin` is `http://HOST[:PORT]` naming this server.
fn origin_allowed(addr: SocketAddr, origin: &str) -> bool {
    let Some(host) = origin.strip_prefix("http://") else {
        return false;
    };
    let has_port = match host.rfind(']') {
        Some(end) => host[end..].contains(':'),
        None => host.contains(':'),
    };
    let with_port = if has_port {
        host.to_owned()
    } else {
        format!("{host}:80")
    };
    if !host_allowed(addr, &with_port) {
        return false;
    }
    // On 0.0.0.0 any IP literal is a Host; as an Origin, only this machine's loopback.
    if addr.ip().is_unspecified() {
        let name = with_port.rsplit_once(':').map_or("", |(n, _)| n);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        return name.eq_ignore_ascii_case("localhost")
            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    }
    true
}

/// The `Host` header names the listening address or `localhost` (TCP;
/// a Unix socket cannot be reached by DNS rebinding).
fn check_host(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let Transport::Tcp(addr) = &config.transport else {
        return Ok(());
    };
    let Some(value) = headers.get(header::HOST) else {
        return Err(ApiError::bad_request(
            None,
            "missing Host header: send Host: localhost or the listening address",
        ));
    };
    let raw = String::from_utf8_lossy(value.as_bytes());
    if host_allowed(*addr, &raw) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        None,
        format!(
            "Host {raw:?} is neither this server's address ({addr}) nor localhost; refused \
             (a protection against DNS rebinding)"
        ),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn origins_must_be_this_server() {
        let a = addr("127.0.0.1:50000");
        for ok in ["http://127.0.0.1:50000", "http://localhost:50000"] {
            assert!(origin_allowed(a, ok), "{ok}");
        }
        for bad in [
            "null",
            "https://localhost:50000",
            "http://localhost",
            "http://localhost:50001",
            "http://evil.example:50000",
            "http://127.0.0.1:50000/x",
            "",
        ] {
            assert!(!origin_allowed(a, bad), "{bad}");
        }
        assert!(origin_allowed(addr("127.0.0.1:80"), "http://localhost"));
        let any = addr("0.0.0.0:80");
        assert!(
            origin_allowed(any, "http://127.0.0.1") && !origin_allowed(any, "http://192.0.2.7")
        );
        let v6 = addr("[::1]:8080");
        assert!(origin_allowed(v6, "http://[::1]:8080") && !origin_allowed(v6, "http://[::1]"));
    }

    #[test]
    fn bodies_must_say_json() {
        let mut h = HeaderMap::new();
        assert!(check_content_type(&Method::GET, &h).is_ok());
        assert!(check_content_type(&Method::POST, &h).is_err());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(check_content_type(&Method::GET, &h).is_ok(), "no body");
        h.insert(header::CONTENT_LENGTH, "3".parse().unwrap());
        assert!(check_content_type(&Method::GET, &h).is_err());
        h.insert(
            header::CONTENT_TYPE,
            "Application/JSON ; charset=utf-8".parse().unwrap(),
        );
        assert!(check_content_type(&Method::DELETE, &h).is_ok());
        h.insert(
            header::CONTENT_TYPE,
            "application/json-seq".parse().unwrap(),
        );
        assert!(check_content_type(&Method::PUT, &h).is_err());
    }
}
