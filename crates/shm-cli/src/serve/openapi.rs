//! `GET /openapi.json`: this API as an OpenAPI 3.0 document.
//!
//! Written out here rather than derived (with `utoipa`, say): the answers
//! are built with `json!` in the shapes the seed service fixed, not from
//! Rust types a derive could read, and a proc-macro stack is a lot to
//! compile on two cores for one document. Drift is caught by tests
//! instead: every route of the router is in the document (the unit test
//! below), and the real server is checked against the document by
//! schemathesis (`tests/openapi.rs`).

use axum::Json;
use serde_json::{json, Map, Value};

/// A `$ref` to a schema in `components`.
fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON body of this schema.
fn content(of: Value) -> Value {
    json!({ "application/json": { "schema": of } })
}

/// An operation: its summary, parameters, request body and 200 answer;
/// every other status is the error object (`default`).
fn op(summary: &str, params: &[&str], body: Option<&str>, ok: Value) -> Value {
    let mut o = Map::new();
    o.insert("summary".into(), json!(summary));
    if !params.is_empty() {
        let list: Vec<Value> = params.iter().map(|p| path_param(p)).collect();
        o.insert("parameters".into(), Value::Array(list));
    }
    if let Some(body) = body {
        o.insert(
            "requestBody".into(),
            json!({ "required": true, "content": content(schema(body)) }),
        );
    }
    o.insert(
        "responses".into(),
        json!({
            "200": { "description": "done", "content": content(ok) },
            "default": {
                "description": "an error: 400 malformed, 401 token, 403 not allowed \
                    (permission, Origin, preflight, Unix-socket caller), 404 no such segment \
                    or route, 405 method, 409 exists or wrong state, 413 too large, 415 \
                    not JSON, 421 wrong Host, 507 no space, 500 otherwise",
                "content": content(schema("Error")),
            },
        }),
    );
    Value::Object(o)
}

fn path_param(name: &str) -> Value {
    let (description, pattern) = match name {
        "key" => (
            "the SysV key: decimal or 0x hex (32 bits), 0 for IPC_PRIVATE",
            "^(-?[0-9]{1,10}|0[xX][0-9a-fA-F]{1,8})$",
        ),
        "shmid" => ("the shmid (its key must be <key>)", "^[0-9]{1,10}$"),
        _ => (
            "the POSIX name without its leading slash",
            "^[^/\\u0000]{1,255}$",
        ),
    };
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "type": "string", "pattern": pattern },
    })
}

fn int(description: &str) -> Value {
    json!({ "type": "integer", "description": description })
}

fn uint(description: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "description": description })
}

/// A mode in a request: octal digits as a number, at most 777.
fn mode_in() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": 777, "description": MODE })
}

fn text(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// A date, or null for never.
fn date(description: &str) -> Value {
    json!({ "type": "string", "nullable": true, "description": description })
}

/// An object with these properties, all required unless listed as optional.
fn object(props: &[(&str, Value)], optional: &[&str], closed: bool) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, s) in props {
        properties.insert((*name).into(), s.clone());
        if !optional.contains(name) {
            required.push(json!(name));
        }
    }
    let mut o = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        o["required"] = Value::Array(required);
    }
    if closed {
        o["additionalProperties"] = json!(false);
    }
    o
}

const MODE: &str = "permission bits as octal digits written as a number: 640 is 0o640";

fn schemas() -> Value {
    let set = object(
        &[
            ("uid", uint("new owner uid")),
            ("gid", uint("new owner gid")),
            ("mode", mode_in()),
        ],
        &["uid", "gid", "mode"],
        true,
    );
    let pids = json!({ "type": "array", "items": { "type": "integer", "minimum": 0 } });
    let list_entry = object(
        &[
            (
                "kind",
                json!({ "type": "string", "enum": ["sysv", "posix"] }),
            ),
            ("size", uint("bytes")),
            ("uid", uint("owner uid")),
            ("gid", uint("owner gid")),
            ("mode", uint("mode bits as a plain number (0o600 is 384)")),
            (
                "atime",
                int("last attach (SysV) or access, seconds since 1970"),
            ),
            ("ctime", int("last change, seconds since 1970")),
            ("atime_iso", date("atime as an ISO 8601 date (UTC)")),
            ("ctime_iso", date("ctime as an ISO 8601 date (UTC)")),
            ("attached", pids.clone()),
            (
                "attached_complete",
                json!({ "type": "boolean", "description": "false when some processes could not be looked into" }),
            ),
        ],
        &[],
        false,
    );
    json!({
        "Error": object(
            &[
                ("error", text("the operation, the segment and the cause")),
                ("status", json!({ "type": "integer", "minimum": 400, "maximum": 599 })),
                ("target", text("what the request was about")),
            ],
            &["target"],
            true,
        ),
        "Done": object(&[("op", json!({ "type": "string", "enum": ["done"] }))], &[], true),
        "Data": object(&[("data", text("the bytes as text (lossy UTF-8)"))], &[], true),
        "SysvCreate": object(
            &[
                ("shm_key", json!({ "type": "integer", "format": "int64", "description": "the key; 0 for IPC_PRIVATE" })),
                ("shm_segsz", uint("size in bytes")),
                ("mode", mode_in()),
            ],
            &["mode"],
            true,
        ),
        "SysvCreated": object(
            &[
                ("shm_key", text("the key, as a decimal string")),
                ("shm_shmid", text("the shmid, as a decimal string")),
            ],
            &[],
            true,
        ),
        "SysvStat": object(
            &[
                ("cgid", uint("creator gid")),
                ("cuid", uint("creator uid")),
                ("gid", uint("owner gid")),
                ("mode", uint(MODE)),
                ("shm_atime", int("last attach, seconds since 1970 (0: never)")),
                ("shm_cpid", int("creator pid")),
                ("shm_ctime", int("last change, seconds since 1970")),
                ("shm_dtime", int("last detach, seconds since 1970 (0: never)")),
                ("shm_key", int("the key")),
                ("shm_lpid", int("pid of the last attach or detach")),
                ("shm_nattch", uint("current attaches")),
                ("shm_segsz", uint("size in bytes")),
                ("shm_shmid", int("the shmid")),
                ("uid", uint("owner uid")),
            ],
            &[],
            true,
        ),
        "SysvWrite": object(&[("data", text("written as a C string"))], &[], true),
        "Set": set,
        "PosixCreate": object(
            &[
                ("name", text("/name (the leading slash may be left out)")),
                ("size", uint("size in bytes")),
                ("mode", mode_in()),
            ],
            &["mode"],
            true,
        ),
        "PosixCreated": object(
            &[("name", text("/name")), ("size", uint("bytes")), ("mode", uint(MODE))],
            &[],
            true,
        ),
        "PosixStat": object(
            &[
                ("name", text("/name")),
                ("size", uint("bytes")),
                ("mode", uint(MODE)),
                ("uid", uint("owner uid")),
                ("gid", uint("owner gid")),
                ("atime", int("last access, seconds since 1970")),
                ("mtime", int("last modification, seconds since 1970")),
                ("ctime", int("last status change, seconds since 1970")),
                ("inode", uint("inode in /dev/shm")),
                ("attached", pids),
            ],
            &[],
            true,
        ),
        "PosixWrite": object(
            &[("data", text("the bytes to write")), ("offset", uint("where (default 0)"))],
            &["offset"],
            true,
        ),
        "List": { "type": "array", "items": list_entry },
    })
}

/// The document.
pub(super) fn document() -> Value {
    let sysv = ["key", "shmid"];
    let posix = ["name"];
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "shm serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "System V and POSIX shared memory over HTTP: the seed service's SysV \
                endpoints plus /list and /posix. Bodies are application/json; requests from \
                another Origin and CORS preflights are refused.",
        },
        "paths": {
            "/create": { "post": op("create a SysV segment (exclusive)", &[], Some("SysvCreate"), schema("SysvCreated")) },
            "/stat/{key}/{shmid}": { "get": op("the seed's shmid_ds fields", &sysv, None, schema("SysvStat")) },
            "/write/{key}/{shmid}": { "post": op("write a C string at offset 0", &sysv, Some("SysvWrite"), schema("Done")) },
            "/read/{key}/{shmid}": { "get": op("the text before the first NUL", &sysv, None, schema("Data")) },
            "/set/{key}/{shmid}": { "put": op("change owner and mode (IPC_SET)", &sysv, Some("Set"), schema("Done")) },
            "/remove/{key}/{shmid}": { "delete": op("IPC_RMID", &sysv, None, schema("Done")) },
            "/list": { "get": op("every segment, as `shm list --json`", &[], None, schema("List")) },
            "/posix/create": { "post": op("create a POSIX segment (exclusive)", &[], Some("PosixCreate"), schema("PosixCreated")) },
            "/posix/stat/{name}": { "get": op("fstat, with the pids that map it", &posix, None, schema("PosixStat")) },
            "/posix/write/{name}": { "post": op("write exactly these bytes at offset", &posix, Some("PosixWrite"), schema("Done")) },
            "/posix/read/{name}": { "get": op("the whole segment without trailing NULs", &posix, None, schema("Data")) },
            "/posix/set/{name}": { "put": op("fchown/fchmod", &posix, Some("Set"), schema("Done")) },
            "/posix/remove/{name}": { "delete": op("shm_unlink", &posix, None, schema("Done")) },
            "/openapi.json": { "get": op("this document", &[], None, json!({ "type": "object" })) },
        },
        "components": { "schemas": schemas() },
    })
}

pub(super) async fn serve() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_and_every_ref_resolves() {
        let doc = document();
        // The router's routes (super::router), as OpenAPI writes them.
        let routes = [
            ("/create", "post"),
            ("/stat/{key}/{shmid}", "get"),
            ("/write/{key}/{shmid}", "post"),
            ("/read/{key}/{shmid}", "get"),
            ("/set/{key}/{shmid}", "put"),
            ("/remove/{key}/{shmid}", "delete"),
            ("/list", "get"),
            ("/posix/create", "post"),
            ("/posix/stat/{name}", "get"),
            ("/posix/write/{name}", "post"),
            ("/posix/read/{name}", "get"),
            ("/posix/set/{name}", "put"),
            ("/posix/remove/{name}", "delete"),
            ("/openapi.json", "get"),
        ];
        let source = include_str!("mod.rs");
        for (path, method) in routes {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
            assert!(
                source.contains(&format!(".route(\"{path}\", {method}(")),
                "{method} {path} is not routed"
            );
        }
        assert_eq!(
            source.matches(".route(\"").count(),
            routes.len(),
            "a route without a description"
        );
        let text = doc.to_string();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} missing"
            );
        }
    }
}
