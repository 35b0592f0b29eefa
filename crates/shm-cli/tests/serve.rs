//! `shm serve` as a real process, driven over real HTTP/1.1 (a small client
//! over `TcpStream`), checked against `ipcs -m`, `/dev/shm` and the library.
//!
//! Request bodies are the seed service's; SysV keys are random and POSIX
//! names start with `/shm-test-`; guards remove every segment and kill every
//! server, also when a test panics. Every wait has a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shm_segment::{Access, PosixShm, Region, SysvKey, SysvSegment};

const TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The server process

/// A running `shm serve`; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

/// Starts `shm serve ARGS`; the process, the first line it printed and its
/// standard error as it comes.
fn spawn_serve(args: &[&str]) -> (Child, String, Arc<Mutex<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shm"))
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shm serve");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&err_text);
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        sink.lock().unwrap().push_str(&text);
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(line) => (child, line, err_text),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            // Give the stderr thread a moment to collect the reason.
            std::thread::sleep(Duration::from_millis(200));
            panic!(
                "shm serve {args:?} printed no address within {TIMEOUT:?}; stderr: {}",
                err_text.lock().unwrap()
            )
        }
    }
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (child, line, stderr) = spawn_serve(&args);
        let mut server = Server {
            child,
            // Replaced below; the guard kills the child if parsing fails.
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        server.addr = line
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert_ne!(server.addr.port(), 0, "the real port is printed");
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `Host` a seed client sends (`localhost:50000` there).
    fn host(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let host = self.host();
        self.raw(method, path, &[("Host", &host)], body.map(str::as_bytes))
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }

    /// A request with exactly these headers (plus Connection and Content-Length).
    fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        http(self.addr, &bytes)
    }

    /// A request with exactly these headers, plus `Connection: close` and,
    /// with a body, its `Content-Length`: no `Content-Type` unless given, as
    /// a browser's form post or `fetch` sends it.
    fn exact(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        http(self.addr, &request(method, path, headers, body))
    }

    /// Waits for the process to end by itself.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        wait_timeout(&mut self.child).expect("shm serve did not stop within the timeout")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_timeout(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// A small HTTP/1.1 client

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", self.status, self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and returns the JSON body.
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{self:?}"
        );
        self.json()
    }

    /// Asserts an error answer with this status, naming `needles`.
    fn expect_error(&self, status: u16, needles: &[&str]) -> String {
        let v = self.expect(status);
        assert_eq!(v["status"], json!(status), "{v}");
        let msg = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
        for needle in needles {
            assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
        }
        msg.to_owned()
    }
}

/// The bytes of a request with exactly these headers (see [`Server::exact`]).
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

fn http(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    // `Connection: close`: the answer ends where the stream does.
    stream.read_to_end(&mut raw).expect("read the answer");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().unwrap();
        assert_eq!(body.len(), len, "the body has the announced length");
    }
    Reply {
        status,
        headers,
        body: String::from_utf8(body).expect("a UTF-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------
// Segment guards and cross-checks

/// Removes the SysV segment with this key on drop, if it is still there.
struct SysvGuard(SysvKey);

impl Drop for SysvGuard {
    fn drop(&mut self) {
        if let Ok(seg) = SysvSegment::open(self.0) {
            let _ = seg.remove();
        }
    }
}

/// Removes the SysV segment with this shmid on drop (private segments).
struct SysvIdGuard(i32);

impl Drop for SysvIdGuard {
    fn drop(&mut self) {
        if let Ok(seg) = SysvSegment::open_id(self.0) {
            let _ = seg.remove();
        }
    }
}

/// Unlinks the POSIX segment on drop, if it is still there.
struct PosixGuard(String);

impl Drop for PosixGuard {
    fn drop(&mut self) {
        let _ = PosixShm::unlink_name(&self.0);
    }
}

/// A random key (never `IPC_PRIVATE`), positive so that it reads the same
/// signed and unsigned, with its cleanup guard.
fn random_key() -> (i32, SysvGuard) {
    loop {
        let key = SysvKey::random().0 & 0x7fff_ffff;
        if key != 0 && SysvSegment::open(SysvKey(key)).is_err() {
            return (key, SysvGuard(SysvKey(key)));
        }
    }
}

/// `/shm-test-serve-PID-N` (with the slash) and its guard.
fn test_name() -> (String, PosixGuard) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "/shm-test-serve-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    (name.clone(), PosixGuard(name))
}

/// The `ipcs -m` line for this key: `[key, shmid, owner, perms, bytes, nattch, ...]`,
/// or `Err(reason)` when `ipcs` cannot be run.
fn ipcs_line(key: i32) -> Result<Option<Vec<String>>, String> {
    let out = match Command::new("ipcs").arg("-m").output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => return Err(format!("ipcs -m failed: {}", out.status)),
        Err(e) => return Err(format!("ipcs is not available: {e}")),
    };
    let hex = format!("{:#010x}", key as u32);
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&hex)))
}

/// Checks `ipcs -m` shows the key with these perms and size (skips, saying
/// why, when there is no `ipcs`).
fn check_ipcs(key: i32, shmid: i32, perms: &str, bytes: u64) {
    match ipcs_line(key) {
        Err(reason) => eprintln!("skipping the ipcs -m cross-check: {reason}"),
        Ok(None) => panic!("ipcs -m does not show key {key:#010x}"),
        Ok(Some(cols)) => {
            assert_eq!(cols[1], shmid.to_string(), "{cols:?}");
            assert_eq!(cols[3], perms, "{cols:?}");
            assert_eq!(cols[4], bytes.to_string(), "{cols:?}");
        }
    }
}

/// The first `n` bytes of a SysV segment, read through the library.
fn sysv_bytes(shmid: i32, n: usize) -> Vec<u8> {
    let map = SysvSegment::open_id(shmid)
        .unwrap()
        .attach(Access::ReadOnly)
        .unwrap();
    let mut buf = vec![0; n];
    map.read_at(0, &mut buf).unwrap();
    buf
}

/// Creates a SysV segment through the API; its shmid.
fn create_sysv(server: &Server, key: i32, size: u64, mode: u32) -> i32 {
    let body = format!(r#"{{"shm_key": {key}, "shm_segsz": {size}, "mode":{mode}}}"#);
    let v = server.call("POST", "/create", Some(&body)).expect(200);
    assert_eq!(v["shm_key"], json!(key.to_string()), "{v}");
    v["shm_shmid"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("shm_shmid is a numeric string: {v}"))
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn seed_lifecycle_create_stat_write_read_set_remove() {
    let server = Server::start(&[]);
    let (key, _guard) = random_key();

    // The seed's create, with a random key: ids come back as strings.
    let body = format!(r#"{{"shm_key": {key}, "shm_segsz": 1024, "mode":666}}"#);
    let v = server.call("POST", "/create", Some(&body)).expect(200);
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{v}");
    assert_eq!(v["shm_key"], json!(key.to_string()));
    let shmid: i32 = v["shm_shmid"].as_str().unwrap().parse().unwrap();

    // The kernel and the library agree.
    check_ipcs(key, shmid, "666", 1024);
    let seg = SysvSegment::open(SysvKey(key)).unwrap();
    assert_eq!(seg.id(), shmid);
    let lib = seg.stat().unwrap();
    assert_eq!((lib.perms(), lib.size), (0o666, 1024));
    assert_eq!(lib.cpid as u32, server.pid(), "the server created it");

    // The seed's stat fields, exactly.
    let st = server.get(&format!("/stat/{key}/{shmid}")).expect(200);
    let mut fields: Vec<&str> = st.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "cgid",
            "cuid",
            "gid",
            "mode",
            "shm_atime",
            "shm_cpid",
            "shm_ctime",
            "shm_dtime",
            "shm_key",
            "shm_lpid",
            "shm_nattch",
            "shm_segsz",
            "shm_shmid",
            "uid"
        ]
    );
    assert_eq!(st["mode"], json!(666));
    assert_eq!(st["shm_key"], json!(key));
    assert_eq!(st["shm_shmid"], json!(shmid));
    assert_eq!(st["shm_segsz"], json!(1024));
    assert_eq!(st["shm_nattch"], json!(0));
    assert_eq!(st["shm_cpid"], json!(server.pid()));
    assert_eq!(st["uid"], json!(lib.uid));
    assert_eq!(st["gid"], json!(lib.gid));
    assert_eq!(st["cuid"], json!(lib.cuid));
    assert_eq!(st["shm_ctime"], json!(lib.ctime));

    // The seed's write and read: a C string.
    let v = server
        .call(
            "POST",
            &format!("/write/{key}/{shmid}"),
            Some(r#"{"data": "testdata2"}"#),
        )
        .expect(200);
    assert_eq!(v, json!({ "op": "done" }));
    assert_eq!(sysv_bytes(shmid, 11), b"testdata2\0\0");
    let v = server.get(&format!("/read/{key}/{shmid}")).expect(200);
    assert_eq!(v, json!({ "data": "testdata2" }));
    // A shorter string after it reads back alone, as with the seed.
    server
        .call(
            "POST",
            &format!("/write/{key}/{shmid}"),
            Some(r#"{"data": "héllo"}"#),
        )
        .expect(200);
    assert_eq!(sysv_bytes(shmid, 10), b"h\xc3\xa9llo\0a2\0");
    let v = server.get(&format!("/read/{key}/{shmid}")).expect(200);
    assert_eq!(v, json!({ "data": "héllo" }));
    // Attaches happened in the server: it is the last user.
    let st = server.get(&format!("/stat/{key}/{shmid}")).expect(200);
    assert_eq!(st["shm_lpid"], json!(server.pid()));
    assert!(st["shm_atime"].as_i64().unwrap() > 0 && st["shm_dtime"].as_i64().unwrap() > 0);

    // The seed's set body (with our own uid and gid, which we may keep).
    let body = format!(r#"{{"uid": {}, "gid": {}, "mode": 600}}"#, lib.uid, lib.gid);
    let v = server
        .call("PUT", &format!("/set/{key}/{shmid}"), Some(&body))
        .expect(200);
    assert_eq!(v, json!({ "op": "done" }));
    assert_eq!(seg.stat().unwrap().perms(), 0o600);
    check_ipcs(key, shmid, "600", 1024);
    // Only the fields given change.
    server
        .call(
            "PUT",
            &format!("/set/{key}/{shmid}"),
            Some(r#"{"mode": 640}"#),
        )
        .expect(200);
    let st = server.get(&format!("/stat/{key}/{shmid}")).expect(200);
    assert_eq!(
        (st["mode"].clone(), st["uid"].clone()),
        (json!(640), json!(lib.uid))
    );

    // A key that is not the segment's: 404, and nothing done.
    let other = if key == 1 { 2 } else { key - 1 };
    server
        .call("DELETE", &format!("/remove/{other}/{shmid}"), None)
        .expect_error(
            404,
            &[&shmid.to_string(), &key.to_string(), &other.to_string()],
        );
    assert!(SysvSegment::open_id(shmid).is_ok());

    let v = server
        .call("DELETE", &format!("/remove/{key}/{shmid}"), None)
        .expect(200);
    assert_eq!(v, json!({ "op": "done" }));
    let err = SysvSegment::open(SysvKey(key)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    if let Ok(line) = ipcs_line(key) {
        assert!(line.is_none(), "ipcs -m still shows it: {line:?}");
    }
    server
        .get(&format!("/stat/{key}/{shmid}"))
        .expect_error(404, &[&format!("shmid {shmid}"), "no such segment"]);
}

#[test]
fn private_segments_are_key_zero() {
    let server = Server::start(&[]);
    let v = server
        .call(
            "POST",
            "/create",
            Some(r#"{"shm_key": 0, "shm_segsz": 64}"#),
        )
        .expect(200);
    assert_eq!(v["shm_key"], json!("0"));
    let shmid: i32 = v["shm_shmid"].as_str().unwrap().parse().unwrap();
    let _guard = SysvIdGuard(shmid);
    let lib = SysvSegment::open_id(shmid).unwrap().stat().unwrap();
    assert!(lib.key.is_private());
    assert_eq!(lib.perms(), 0o600, "no mode given: 600");
    let st = server.get(&format!("/stat/0/{shmid}")).expect(200);
    assert_eq!(
        (st["shm_key"].clone(), st["mode"].clone()),
        (json!(0), json!(600))
    );
    server
        .get(&format!("/stat/12345/{shmid}"))
        .expect_error(404, &["IPC_PRIVATE", "12345"]);
    server
        .call("DELETE", &format!("/remove/0/{shmid}"), None)
        .expect(200);
    assert!(SysvSegment::open_id(shmid).is_err());
}

#[test]
fn posix_lifecycle_and_list() {
    let server = Server::start(&[]);
    let (name, _guard) = test_name();
    let bare = &name[1..];
    let file = format!("/dev/shm/{bare}");

    let body = format!(r#"{{"name": "{name}", "size": 4096, "mode": 640}}"#);
    let v = server
        .call("POST", "/posix/create", Some(&body))
        .expect(200);
    assert_eq!(v, json!({ "name": name, "size": 4096, "mode": 640 }));
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (meta.len(), meta.permissions().mode() & 0o7777),
        (4096, 0o640)
    );

    let st = server.get(&format!("/posix/stat/{bare}")).expect(200);
    assert_eq!(st["name"], json!(name));
    assert_eq!(st["size"], json!(4096));
    assert_eq!(st["mode"], json!(640));
    let lib = PosixShm::open(&name).unwrap().stat().unwrap();
    assert_eq!(st["inode"], json!(lib.inode));
    assert_eq!(st["uid"], json!(lib.uid));
    assert_eq!(st["attached"], json!([]));

    // Exactly the bytes, at the offset.
    let v = server
        .call(
            "POST",
            &format!("/posix/write/{bare}"),
            Some(r#"{"data": "hello", "offset": 10}"#),
        )
        .expect(200);
    assert_eq!(v, json!({ "op": "done" }));
    server
        .call(
            "POST",
            &format!("/posix/write/{bare}"),
            Some(r#"{"data": "0123"}"#),
        )
        .expect(200);
    let map = PosixShm::open(&name).unwrap().map().unwrap();
    let mut buf = [0u8; 16];
    map.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"0123\0\0\0\0\0\0hello\0");
    let v = server.get(&format!("/posix/read/{bare}")).expect(200);
    assert_eq!(v, json!({ "data": "0123\0\0\0\0\0\0hello" }));

    // Past the end: 413, nothing written.
    server
        .call(
            "POST",
            &format!("/posix/write/{bare}"),
            Some(r#"{"data": "xyz", "offset": 4094}"#),
        )
        .expect_error(413, &[&name, "4094", "4096"]);
    let mut tail = [0u8; 2];
    map.read_at(4094, &mut tail).unwrap();
    assert_eq!(tail, [0, 0]);

    // It shows in /list, shaped as `shm list --json` prints it.
    let all = server.get("/list").expect(200);
    let entry = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == json!(name))
        .unwrap_or_else(|| panic!("{name} not in /list"));
    assert_eq!(entry["kind"], json!("posix"));
    assert_eq!(entry["size"], json!(4096));
    let cli = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(["list", "--posix", "--json"])
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let cli_entry = cli
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == json!(name))
        .unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(entry), keys(cli_entry));

    let v = server
        .call(
            "PUT",
            &format!("/posix/set/{bare}"),
            Some(r#"{"mode": 600}"#),
        )
        .expect(200);
    assert_eq!(v, json!({ "op": "done" }));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
        0o600
    );

    drop(map);
    server
        .call("DELETE", &format!("/posix/remove/{bare}"), None)
        .expect(200);
    assert!(!std::path::Path::new(&file).exists());
    server
        .get(&format!("/posix/stat/{bare}"))
        .expect_error(404, &[&name]);
    server
        .get(&format!("/posix/read/{bare}"))
        .expect_error(404, &[&name]);
    server
        .call(
            "POST",
            "/posix/create",
            Some(r#"{"name": "/a/b", "size": 1}"#),
        )
        .expect_error(400, &["/a/b"]);
}

#[test]
fn bad_requests_are_400_with_the_cause() {
    let server = Server::start(&[]);
    let (key, _guard) = random_key();
    let cases: &[(&str, &[&str])] = &[
        (r#"{"shm_key": 5679, "shm_segsz": "#, &["EOF"]),
        ("not json", &["expected"]),
        ("", &["empty"]),
        (
            r#"{"shm_key": "5679", "shm_segsz": 1024}"#,
            &["shm_key: invalid type"],
        ),
        (
            r#"{"shm_key": 5679, "shm_segsz": "big"}"#,
            &["shm_segsz: invalid type", "big"],
        ),
        (
            r#"{"shm_key": 5679, "shm_segsz": -1}"#,
            &["shm_segsz: invalid value"],
        ),
        (r#"{"shm_key": 5679, "shm_segsz": 1.5}"#, &["invalid type"]),
        (r#"{"shm_segsz": 1024}"#, &["missing field", "shm_key"]),
        (
            r#"{"shm_key": 5679, "shm_segsz": 1024, "size": 9}"#,
            &["unknown field", "size"],
        ),
        (r#"[5679, 1024, 666]"#, &["an array", "JSON object"]),
        (
            r#"{"shm_key": 5679, "shm_segsz": 64} x"#,
            &["trailing characters"],
        ),
    ];
    for (body, needles) in cases {
        // The random key in place of the seed's 5679: nothing here may
        // create a segment, but if it did, the guard removes it.
        let body = body.replace("5679", &key.to_string());
        let msg = server
            .call("POST", "/create", Some(&body))
            .expect_error(400, needles);
        assert!(msg.starts_with("POST /create"), "{msg}");
    }
    assert!(SysvSegment::open(SysvKey(key)).is_err(), "nothing created");
    // Not an octal mode, a key out of range: refused before creating anything.
    for body in [
        format!(r#"{{"shm_key": {key}, "shm_segsz": 64, "mode": 888}}"#),
        format!(r#"{{"shm_key": {key}, "shm_segsz": 64, "mode": 1777}}"#),
    ] {
        server
            .call("POST", "/create", Some(&body))
            .expect_error(400, &["mode", &key.to_string()]);
    }
    assert!(SysvSegment::open(SysvKey(key)).is_err(), "nothing created");
    server
        .call(
            "POST",
            "/create",
            Some(r#"{"shm_key": 4294967296, "shm_segsz": 64}"#),
        )
        .expect_error(400, &["32 bits"]);

    let shmid = create_sysv(&server, key, 64, 600);
    let write = format!("/write/{key}/{shmid}");
    server
        .call("POST", &write, Some(r#"{"data": 5}"#))
        .expect_error(400, &["invalid type", &shmid.to_string()]);
    server
        .call("POST", &write, Some(r#"{"dat": "x"}"#))
        .expect_error(400, &["unknown field"]);
    server
        .call("PUT", &format!("/set/{key}/{shmid}"), Some("{}"))
        .expect_error(400, &["at least one of uid, gid, mode"]);
    server
        .call(
            "PUT",
            &format!("/set/{key}/{shmid}"),
            Some(r#"{"mode": "600"}"#),
        )
        .expect_error(400, &["invalid type"]);
    server
        .call(
            "PUT",
            &format!("/set/{key}/{shmid}"),
            Some(r#"{"mode": 999}"#),
        )
        .expect_error(400, &["mode 999"]);
    assert_eq!(
        SysvSegment::open_id(shmid).unwrap().stat().unwrap().perms(),
        0o600,
        "refused sets change nothing"
    );
    server
        .get("/stat/abc/1")
        .expect_error(400, &["key \"abc\""]);
    server
        .get(&format!("/stat/{key}/-1"))
        .expect_error(400, &["shmid \"-1\""]);

    // No such route, wrong method: JSON too.
    server.get("/nope").expect_error(404, &["GET /nope"]);
    server
        .call("DELETE", &format!("/stat/{key}/{shmid}"), None)
        .expect_error(405, &["DELETE"]);
}

#[test]
fn missing_existing_and_too_large() {
    let server = Server::start(&[]);
    let (key, _guard) = random_key();

    // Missing: every SysV verb, and POSIX.
    let gone = i32::MAX;
    for (method, path, body) in [
        ("GET", format!("/stat/{key}/{gone}"), None),
        ("GET", format!("/read/{key}/{gone}"), None),
        (
            "POST",
            format!("/write/{key}/{gone}"),
            Some(r#"{"data": "x"}"#),
        ),
        (
            "PUT",
            format!("/set/{key}/{gone}"),
            Some(r#"{"mode": 600}"#),
        ),
        ("DELETE", format!("/remove/{key}/{gone}"), None),
    ] {
        let msg = server
            .call(method, &path, body)
            .expect_error(404, &[&format!("shmid {gone}"), "no such segment"]);
        let v = server.call(method, &path, body).json();
        assert_eq!(
            v["target"],
            json!(format!(
                "SysV key {key} ({:#010x}), shmid {gone}",
                key as u32
            )),
            "{msg}"
        );
    }
    let missing = format!("shm-test-serve-missing-{}", std::process::id());
    for (method, path, body) in [
        ("GET", format!("/posix/stat/{missing}"), None),
        (
            "POST",
            format!("/posix/write/{missing}"),
            Some(r#"{"data": "x"}"#),
        ),
        (
            "PUT",
            format!("/posix/set/{missing}"),
            Some(r#"{"mode": 600}"#),
        ),
        ("DELETE", format!("/posix/remove/{missing}"), None),
    ] {
        server
            .call(method, &path, body)
            .expect_error(404, &[&missing, "No such file"]);
    }

    // Exists: 409 naming the key; the first one is untouched.
    let shmid = create_sysv(&server, key, 16, 600);
    server
        .call(
            "POST",
            "/create",
            Some(&format!(
                r#"{{"shm_key": {key}, "shm_segsz": 32, "mode": 666}}"#
            )),
        )
        .expect_error(409, &[&format!("{:#010x}", key as u32), "exists"]);
    let lib = SysvSegment::open(SysvKey(key)).unwrap().stat().unwrap();
    assert_eq!((lib.id, lib.size, lib.perms()), (shmid, 16, 0o600));
    let (name, _pguard) = test_name();
    let body = format!(r#"{{"name": "{name}", "size": 8}}"#);
    server
        .call("POST", "/posix/create", Some(&body))
        .expect(200);
    server
        .call("POST", "/posix/create", Some(&body))
        .expect_error(409, &[&name]);

    // Too large: 413 and nothing written.
    let write = format!("/write/{key}/{shmid}");
    server
        .call("POST", &write, Some(r#"{"data": "hello"}"#))
        .expect(200);
    server
        .call("POST", &write, Some(r#"{"data": "0123456789abcdefX"}"#))
        .expect_error(413, &[&format!("shmid {shmid}"), "17 bytes", "16-byte"]);
    assert_eq!(sysv_bytes(shmid, 16), b"hello\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(
        server.get(&format!("/read/{key}/{shmid}")).expect(200),
        json!({ "data": "hello" })
    );
    // Exactly the size fits (no room for the NUL, none written).
    server
        .call("POST", &write, Some(r#"{"data": "0123456789abcdef"}"#))
        .expect(200);
    assert_eq!(
        server.get(&format!("/read/{key}/{shmid}")).expect(200),
        json!({ "data": "0123456789abcdef" })
    );

    // A body over the limit is refused from its Content-Length alone.
    let host = server.host();
    let head = format!(
        "POST {write} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"data\": \"",
        17 << 20
    );
    let reply = http(server.addr, head.as_bytes());
    reply.expect_error(413, &[&(17 << 20).to_string(), "16 MiB"]);
    assert_eq!(
        server.get(&format!("/read/{key}/{shmid}")).expect(200),
        json!({ "data": "0123456789abcdef" })
    );
}

#[test]
fn host_header_must_name_this_server() {
    let server = Server::start(&[]);
    let port = server.addr.port();
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".into(),
    ] {
        server
            .raw("GET", "/list", &[("Host", &host)], None)
            .expect(200);
    }
    for host in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        format!("localhost:{}", port.wrapping_add(1)),
        format!("127.0.0.2:{port}"),
    ] {
        server
            .raw("GET", "/list", &[("Host", &host)], None)
            .expect_error(421, &[&host, "DNS rebinding"]);
    }
    server
        .raw("GET", "/list", &[], None)
        .expect_error(400, &["missing Host"]);
    // Refused before anything is done.
    let (key, _guard) = random_key();
    let body = format!(r#"{{"shm_key": {key}, "shm_segsz": 64}}"#);
    server
        .raw(
            "POST",
            "/create",
            &[("Host", "evil.example")],
            Some(body.as_bytes()),
        )
        .expect(421);
    assert!(SysvSegment::open(SysvKey(key)).is_err());
}

#[test]
fn a_token_is_required_when_set() {
    let token = format!("t0k-{}", std::process::id());
    let server = Server::start(&["--token", &token]);
    let host = server.host();
    let reply = server.raw("GET", "/list", &[("Host", &host)], None);
    reply.expect_error(401, &["missing bearer token"]);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    for auth in [
        "Bearer wrong".to_owned(),
        format!("Bearer {token}x"),
        format!("Basic {token}"),
        token.clone(),
    ] {
        let reply = server.raw(
            "GET",
            "/list",
            &[("Host", &host), ("Authorization", &auth)],
            None,
        );
        assert_eq!(reply.status, 401, "{auth}: {}", reply.body);
        assert!(!reply.body.contains(&token), "the token is never echoed");
    }
    let good = format!("Bearer {token}");
    server
        .raw(
            "GET",
            "/list",
            &[("Host", &host), ("Authorization", &good)],
            None,
        )
        .expect(200);
    server
        .raw(
            "GET",
            "/list",
            &[
                ("Host", &host),
                ("authorization", &format!("bearer {token}")),
            ],
            None,
        )
        .expect(200);
    // The token does not excuse a wrong Host.
    server
        .raw(
            "GET",
            "/list",
            &[("Host", "evil.example"), ("Authorization", &good)],
            None,
        )
        .expect(421);
    // Nor is a refused request carried out.
    let (key, _guard) = random_key();
    let body = format!(r#"{{"shm_key": {key}, "shm_segsz": 64}}"#);
    server
        .raw("POST", "/create", &[("Host", &host)], Some(body.as_bytes()))
        .expect(401);
    assert!(SysvSegment::open(SysvKey(key)).is_err());
}

#[test]
fn refuses_non_loopback_without_a_token() {
    for args in [
        &["serve", "--listen", "0.0.0.0:0"][..],
        &["serve", "--listen", "[::]:0"][..],
        &["serve", "--listen", "127.0.0.1:0", "--token", ""][..],
        &["serve", "--listen", "example.org:80"][..],
        &["serve", "--listen", "127.0.0.1:0", "--allow-uid", "1"][..],
        &["serve", "--listen", "127.0.0.1:0", "--socket-mode", "666"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shm"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = match wait_timeout(&mut child) {
            Some(s) => s,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} did not exit");
            }
        };
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!status.success(), "{args:?} started: {stdout}");
        assert!(!stdout.contains("listening"), "{args:?}: {stdout}");
        let needle = if args.contains(&"--allow-uid") || args.contains(&"--socket-mode") {
            "for a Unix socket"
        } else if args.contains(&"--token") {
            "--token must not be empty"
        } else if args.contains(&"example.org:80") {
            "IP:PORT"
        } else {
            "refusing to listen"
        };
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn sigterm_and_sigint_stop_it_gracefully() {
    for signal in ["TERM", "INT"] {
        let mut server = Server::start(&[]);
        server.get("/list").expect(200);
        let kill = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", server.pid())])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = server.wait_exit();
        assert!(status.success(), "SIG{signal}: {status}");
        // The stderr thread has the whole text once the pipe closes.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = server.stderr.lock().unwrap().clone();
            if text.contains(&format!("SIG{signal}")) {
                break;
            }
            assert!(Instant::now() < deadline, "no shutdown message: {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_stuck_connection_delays_shutdown_by_seconds_at_most() {
    let mut server = Server::start(&[]);
    // Half a request, never finished: graceful shutdown would wait for it.
    let mut stuck = TcpStream::connect_timeout(&server.addr, TIMEOUT).unwrap();
    stuck
        .write_all(b"GET /list HTTP/1.1\r\nHost: local")
        .unwrap();
    server.get("/list").expect(200);
    let start = Instant::now();
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", server.pid())])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = server.wait_exit();
    assert!(status.success(), "{status}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    drop(stuck);
}

// ---------------------------------------------------------------------------
// A segment that shrinks under the server

/// `ftruncate(2)` on a descriptor of the segment, as a peer would.
fn truncate_fd(shm: &PosixShm, len: i64) {
    use std::os::fd::{AsFd, AsRawFd};
    // SAFETY: ftruncate(2) on the descriptor `shm` owns.
    let ret = unsafe { libc::ftruncate(shm.as_fd().as_raw_fd(), len) };
    assert_eq!(ret, 0, "ftruncate: {}", std::io::Error::last_os_error());
}

/// A peer that truncates a POSIX segment to 0 bytes and back to `size`, over
/// and over, until dropped (also when the test panics).
struct Shrinker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shrinker {
    fn start(shm: PosixShm, size: i64) -> Shrinker {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for len in [0, size] {
                    truncate_fd(&shm, len);
                    std::thread::sleep(Duration::from_micros(150));
                }
            }
        });
        Shrinker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Shrinker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_posix_segment_shrunk_under_the_server_is_an_error_answer_and_it_keeps_serving() {
    let mut server = Server::start(&[]);
    let (name, _guard) = test_name();
    let bare = name[1..].to_owned();
    let shm = shm_segment::PosixOptions::new()
        .create(&name, 4096)
        .unwrap();
    shm.map().unwrap().write_at(0, b"before").unwrap();
    let path = format!("/posix/read/{bare}");
    server.get(&path).expect(200);

    // Shrunk to nothing by another handle: an error answer naming it.
    truncate_fd(&shm, 0);
    server.get(&path).expect_error(409, &[&name]);
    server
        .call(
            "POST",
            &format!("/posix/write/{bare}"),
            Some(r#"{"data": "x"}"#),
        )
        .expect_error(409, &[&name]);

    // Shrunk while a read copies it: every request is answered (the data,
    // or an error naming the segment), and the server never dies.
    const SIZE: i64 = 8 << 20;
    truncate_fd(&shm, SIZE);
    let shrinker = Shrinker::start(PosixShm::open(&name).unwrap(), SIZE);
    let host = server.host();
    for _ in 0..20 {
        let request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\nHost: {host}\r\n\r\n");
        let answered = (|| {
            let mut stream = TcpStream::connect_timeout(&server.addr, TIMEOUT).ok()?;
            stream.set_read_timeout(Some(TIMEOUT)).ok()?;
            stream.write_all(request.as_bytes()).ok()?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).ok()?;
            (!raw.is_empty()).then_some(raw)
        })();
        let Some(raw) = answered else {
            let status = wait_timeout(&mut server.child);
            panic!(
                "no answer while the segment shrank; the server ended with {status:?} \
                 (a signal: SIGBUS?); stderr: {}",
                server.stderr.lock().unwrap()
            );
        };
        let reply = parse_reply(&raw);
        if reply.status != 200 {
            reply.expect_error(reply.status, &[&name]);
            assert!(reply.status < 500, "{reply:?}");
        }
    }
    drop(shrinker);

    // Still serving, this segment and others.
    truncate_fd(&shm, 4096);
    shm.map().unwrap().write_at(0, b"after").unwrap();
    let v = server.get(&path).expect(200);
    assert_eq!(v, json!({ "data": "after" }));
    server.get("/list").expect(200);
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
}

// ---------------------------------------------------------------------------
// Web pages: the requests a browser really sends

/// A page on another site can send these without asking first (no CORS
/// preflight): `text/plain`, form posts and multipart bodies, with its
/// `Origin`. None may do anything; a preflight is refused too.
#[test]
fn cross_site_requests_a_browser_sends_are_refused_and_do_nothing() {
    let server = Server::start(&[]);
    let host = server.host();
    let (key, _guard) = random_key();
    let (name, _pguard) = test_name();
    let bare = name[1..].to_owned();
    let create = format!(r#"{{"shm_key": {key}, "shm_segsz": 64, "mode": 666}}"#);
    let evil = "http://evil.example";

    // fetch(url, {method: "POST", mode: "no-cors", body: "..."}): text/plain.
    for ct in ["text/plain;charset=UTF-8", "text/plain"] {
        server
            .exact(
                "POST",
                "/create",
                &[("Host", &host), ("Origin", evil), ("Content-Type", ct)],
                Some(create.as_bytes()),
            )
            .expect_error(403, &["Origin", evil]);
        // Without an Origin (curl, an old browser): still not JSON.
        server
            .exact(
                "POST",
                "/create",
                &[("Host", &host), ("Content-Type", ct)],
                Some(create.as_bytes()),
            )
            .expect_error(415, &["Content-Type", "application/json"]);
    }
    // <form method=post enctype=...> with a JSON-looking field name.
    let form = br#"{"data": "x", "offset": 0, "pad": "=y"}"#;
    for ct in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=----x",
    ] {
        let path = "/posix/create";
        let body = format!(r#"{{"name": "{name}", "size": 64, "mode": 666}}"#);
        server
            .exact(
                "POST",
                path,
                &[("Host", &host), ("Origin", "null"), ("Content-Type", ct)],
                Some(body.as_bytes()),
            )
            .expect_error(403, &["Origin"]);
        server
            .exact(
                "POST",
                path,
                &[("Host", &host), ("Content-Type", ct)],
                Some(body.as_bytes()),
            )
            .expect_error(415, &["Content-Type"]);
        server
            .exact(
                "POST",
                &format!("/posix/write/{bare}"),
                &[("Host", &host), ("Content-Type", ct)],
                Some(form),
            )
            .expect_error(415, &["Content-Type"]);
    }
    // No Content-Type at all, and a body.
    server
        .exact(
            "POST",
            "/create",
            &[("Host", &host)],
            Some(create.as_bytes()),
        )
        .expect_error(415, &["Content-Type"]);
    // JSON from another origin (a browser would preflight it first).
    server
        .exact(
            "POST",
            "/create",
            &[
                ("Host", &host),
                ("Origin", evil),
                ("Content-Type", "application/json"),
            ],
            Some(create.as_bytes()),
        )
        .expect_error(403, &["Origin"]);
    // Reads from another origin too.
    server
        .exact("GET", "/list", &[("Host", &host), ("Origin", evil)], None)
        .expect_error(403, &["Origin"]);
    // Nothing of that made anything.
    assert!(SysvSegment::open(SysvKey(key)).is_err(), "no SysV segment");
    assert!(
        !std::path::Path::new(&format!("/dev/shm/{bare}")).exists(),
        "no POSIX segment"
    );

    // The preflight a browser sends before a cross-origin JSON POST: refused,
    // and nothing in the answer allows the request that would follow.
    for origin in [evil, "null"] {
        let reply = server.exact(
            "OPTIONS",
            "/create",
            &[
                ("Host", &host),
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            None,
        );
        reply.expect_error(403, &["cross-origin"]);
        assert!(
            !reply
                .headers
                .iter()
                .any(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-allow")),
            "{reply:?}"
        );
    }

    // The server's own origin, JSON: served (charset parameter and all).
    for origin in [
        format!("http://localhost:{}", server.addr.port()),
        format!("http://{}", server.addr),
    ] {
        server
            .exact(
                "GET",
                "/list",
                &[("Host", &host), ("Origin", &origin)],
                None,
            )
            .expect(200);
    }
    let own = format!("http://localhost:{}", server.addr.port());
    let v = server
        .exact(
            "POST",
            "/create",
            &[
                ("Host", &host),
                ("Origin", &own),
                ("Content-Type", "application/json; charset=utf-8"),
            ],
            Some(create.as_bytes()),
        )
        .expect(200);
    assert_eq!(v["shm_key"], json!(key.to_string()));
    // It kept the mode asked for; a cross-site page never got to ask.
    let st = SysvSegment::open(SysvKey(key)).unwrap().stat().unwrap();
    assert_eq!(st.perms(), 0o666);
}

// ---------------------------------------------------------------------------
// Other local users: a Unix socket that knows its caller, a token in a file

/// The environment variable that makes this binary a helper process.
const ROLE_ENV: &str = "SHM_SERVE_TEST_ROLE";

/// Not a test: the body of a helper process when `SHM_SERVE_TEST_ROLE` is
/// `get:SOCKET:PATH`: one GET over the Unix socket, its status and body
/// printed as `ROLE <status> <body>` (`ROLE connect-error <why>` when the
/// socket refuses us).
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let (socket, path) = role
        .strip_prefix("get:")
        .and_then(|r| r.rsplit_once(':'))
        .expect("get:SOCKET:PATH");
    let line = match unix_request(
        Path::new(socket),
        &request("GET", path, &[("Host", "localhost")], None),
    ) {
        Ok(reply) => format!("{} {}", reply.status, reply.body),
        Err(e) => format!("connect-error {e}"),
    };
    println!("\nROLE {line}");
    std::process::exit(0);
}

use std::path::{Path, PathBuf};

/// One request over a Unix socket.
fn unix_request(socket: &Path, request: &[u8]) -> std::io::Result<Reply> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(parse_reply(&raw))
}

/// A `shm serve --listen unix:PATH`; killed on drop, its socket file removed.
struct UnixServer {
    child: Child,
    path: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl UnixServer {
    fn start(extra: &[&str]) -> UnixServer {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "shm-test-serve-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listen = format!("unix:{}", path.display());
        let mut args = vec!["--listen", &listen];
        args.extend_from_slice(extra);
        let (child, line, stderr) = spawn_serve(&args);
        let server = UnixServer {
            child,
            path,
            stderr,
        };
        assert_eq!(line, format!("listening on {listen}"));
        server
    }

    fn get(&self, path: &str) -> Reply {
        unix_request(
            &self.path,
            &request("GET", path, &[("Host", "localhost")], None),
        )
        .expect("connect to the socket")
    }

    /// A GET by the user `uid` (a helper process under `setpriv`):
    /// `"<status> <body>"`, or `"connect-error …"`.
    fn get_as(&self, uid: u32, path: &str) -> String {
        let out = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
            ])
            .arg(std::env::current_exe().unwrap())
            .args(["child_role", "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, format!("get:{}:{path}", self.path.display()))
            .stdin(Stdio::null())
            .output()
            .expect("run setpriv");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("ROLE "))
            .unwrap_or_else(|| {
                panic!(
                    "the helper as uid {uid} said nothing: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_owned()
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why another uid cannot be tried here, if it cannot.
fn no_second_uid() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: cannot run a helper as another uid".into());
    }
    match Command::new("setpriv").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("setpriv (util-linux) is not installed".into()),
    }
}

const OTHER_UID: u32 = 65534;

#[test]
fn a_unix_socket_serves_its_owner_only_unless_told_otherwise() {
    let server = UnixServer::start(&[]);
    let mode = std::fs::metadata(&server.path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let v = server.get("/list").expect(200);
    assert!(v.is_array(), "{v}");
    // A browser cannot reach a Unix socket, but an Origin is refused there too.
    let reply = unix_request(
        &server.path,
        &request(
            "GET",
            "/list",
            &[("Host", "localhost"), ("Origin", "http://evil.example")],
            None,
        ),
    )
    .unwrap();
    reply.expect_error(403, &["Origin"]);

    match no_second_uid() {
        Some(why) => println!("SKIPPED the other-user part: {why}"),
        None => {
            // Mode 0600: another user cannot even connect.
            let answer = server.get_as(OTHER_UID, "/list");
            assert!(answer.starts_with("connect-error"), "{answer}");

            // A socket anyone may connect to: SO_PEERCRED still says who it is.
            let open = UnixServer::start(&["--socket-mode", "666"]);
            let mode = std::fs::metadata(&open.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o666);
            let answer = open.get_as(OTHER_UID, "/list");
            assert!(answer.starts_with("403 "), "{answer}");
            assert!(answer.contains(&format!("uid {OTHER_UID}")), "{answer}");
            open.get("/list").expect(200);

            // Allowed by name.
            let allowed = UnixServer::start(&[
                "--socket-mode",
                "666",
                "--allow-uid",
                &OTHER_UID.to_string(),
            ]);
            let answer = allowed.get_as(OTHER_UID, "/list");
            assert!(answer.starts_with("200 "), "{answer}");
        }
    }

    // SIGTERM removes the socket file.
    let mut server = server;
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", server.child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_timeout(&mut server.child).expect("stopped");
    assert!(
        status.success(),
        "{status}: {}",
        server.stderr.lock().unwrap()
    );
    assert!(!server.path.exists(), "the socket file is removed on exit");
}

#[test]
fn a_unix_socket_path_that_is_taken_is_refused_and_a_stale_one_replaced() {
    let first = UnixServer::start(&[]);
    // In use by a live server: refused, the first one keeps serving.
    let listen = format!("unix:{}", first.path.display());
    let out = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(["serve", "--listen", &listen])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&first.path.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
    first.get("/list").expect(200);
    // A regular file there is not ours to remove.
    let file = first.path.with_extension("file");
    std::fs::write(&file, b"keep me").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(["serve", "--listen", &format!("unix:{}", file.display())])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let kept = std::fs::read(&file);
    let _ = std::fs::remove_file(&file);
    assert!(!out.status.success());
    assert_eq!(kept.unwrap(), b"keep me");
    // A socket left by a killed server is replaced.
    let stale = first.path.with_extension("stale");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let listen = format!("unix:{}", stale.display());
    let (mut child, line, _err) = spawn_serve(&["--listen", &listen]);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&stale);
    assert_eq!(line, format!("listening on {listen}"));
}

#[test]
fn a_token_file_keeps_the_token_out_of_the_process_list() {
    let dir = std::env::temp_dir();
    let file = dir.join(format!("shm-test-serve-token-{}", std::process::id()));
    let token = format!("file-t0k-{}", std::process::id());
    std::fs::write(&file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = file.display().to_string();
    let server = Server::start(&["--token-file", &path]);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains(&token),
        "the token is not in /proc/PID/cmdline"
    );
    let host = server.host();
    server
        .raw("GET", "/list", &[("Host", &host)], None)
        .expect_error(401, &["bearer token"]);
    let auth = format!("Bearer {token}");
    server
        .raw(
            "GET",
            "/list",
            &[("Host", &host), ("Authorization", &auth)],
            None,
        )
        .expect(200);
    drop(server);

    // A token file others may read is refused, as is an empty one, and
    // --token with --token-file.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = |args: &[&str], needle: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_shm"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    refused(&["--token-file", &path], "644");
    std::fs::write(&file, "\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(&["--token-file", &path], "empty");
    refused(
        &["--token-file", &path, "--token", "x"],
        "cannot be used with",
    );
    refused(
        &["--token-file", "/nonexistent/shm-token"],
        "/nonexistent/shm-token",
    );
    let _ = std::fs::remove_file(&file);
}

#[test]
fn the_help_states_the_threat_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Threat model",
        "Web pages",
        "Other local users",
        "unix:",
        "--token-file",
        "SO_PEERCRED",
    ] {
        assert!(help.contains(needle), "{needle:?} not in:\n{help}");
    }
}

#[test]
fn sysv_routes_check_the_key_of_the_segment_they_act_on() {
    let server = Server::start(&[]);
    let (key, _guard) = random_key();
    let shmid = create_sysv(&server, key, 64, 600);
    let other = if key == 1 { 2 } else { key - 1 };
    server
        .call(
            "POST",
            &format!("/write/{other}/{shmid}"),
            Some(r#"{"data": "no"}"#),
        )
        .expect_error(404, &[&shmid.to_string(), &other.to_string()]);
    assert_eq!(sysv_bytes(shmid, 4), [0; 4], "nothing written");
    server
        .get(&format!("/read/{other}/{shmid}"))
        .expect_error(404, &[&shmid.to_string()]);
    server
        .call(
            "PUT",
            &format!("/set/{other}/{shmid}"),
            Some(r#"{"mode": 666}"#),
        )
        .expect_error(404, &[&shmid.to_string()]);
    assert_eq!(
        SysvSegment::open_id(shmid).unwrap().stat().unwrap().perms(),
        0o600
    );
    server
        .call(
            "POST",
            &format!("/write/{key}/{shmid}"),
            Some(r#"{"data": "yes"}"#),
        )
        .expect(200);
    assert_eq!(sysv_bytes(shmid, 4), b"yes\0");
}

#[test]
fn the_openapi_description_is_served() {
    let server = Server::start(&[]);
    let doc = server.get("/openapi.json").expect(200);
    assert_eq!(doc["openapi"], json!("3.0.3"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/create",
        "/stat/{key}/{shmid}",
        "/list",
        "/posix/write/{name}",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["Error"].is_object());
}
