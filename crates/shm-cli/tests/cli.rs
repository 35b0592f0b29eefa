//! The real `shm` binary, driven as a user would: every command, its error
//! paths, and interop with tools nobody here wrote (`ipcs`/`ipcrm`, Python's
//! `multiprocessing.shared_memory`).
//!
//! Rules kept here: System V keys are random, POSIX names are
//! `/shm-test-<what>-<pid>-<n>`, every segment has a guard that removes it on
//! drop (also on panic), and every wait for a process has a timeout. Helper
//! processes are this test binary re-executed with a role (the
//! `child_role` test), never `fork` in the threaded harness.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use shm_segment::{PosixOptions, PosixShm, SysvKey, SysvOptions, SysvSegment};

/// How long one `shm` command may take (a debug build of `bench --quick`
/// takes about 2 s).
const TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable that makes this binary a helper process.
const ROLE_ENV: &str = "SHM_CLI_TEST_ROLE";

// ---------------------------------------------------------------------------
// Running the binary.

/// What a finished `shm` run left.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The pid it ran as (it is dead now).
    pid: u32,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The one line of stderr a failure prints.
    #[track_caller]
    fn one_error_line(&self) -> &str {
        assert!(!self.ok(), "expected a failure, got {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:?}");
        lines[0]
    }

    /// The JSON object a `--json` failure prints on stderr.
    #[track_caller]
    fn json_error(&self) -> Value {
        let line = self.one_error_line();
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["error"].is_string(), "{v}");
        assert!(v["status"].is_u64(), "{v}");
        v
    }

    #[track_caller]
    fn json(&self) -> Value {
        assert!(self.ok(), "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs `shm args…` with `input` on stdin, killing it after `TIMEOUT`.
fn run_in(args: &[&str], input: Option<&[u8]>) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shm");
    let pid = child.id();
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let (code, stdout, stderr) = wait_output(&mut child, TIMEOUT, &format!("shm {args:?}"));
    Out {
        code,
        stdout,
        stderr,
        pid,
    }
}

fn run(args: &[&str]) -> Out {
    run_in(args, None)
}

/// Runs and asserts success; stdout.
#[track_caller]
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.ok(), "shm {args:?}: {out:?}");
    out.stdout
}

/// Waits for `child` with a deadline (killing it past that), collecting its output.
fn wait_output(child: &mut Child, timeout: Duration, what: &str) -> (Option<i32>, String, String) {
    let collect = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = collect(child.stdout.take().map(|s| Box::new(s) as _));
    let err = collect(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {timeout:?}; killed");
        }
        thread::sleep(Duration::from_millis(5));
    };
    (
        status.code(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

// ---------------------------------------------------------------------------
// Names, keys, guards.

static SEQ: AtomicU32 = AtomicU32::new(0);

/// `/shm-test-<what>-<pid>-<n>`.
fn posix_name(what: &str) -> String {
    format!(
        "/shm-test-{what}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn key_arg(key: SysvKey) -> String {
    format!("key:{:#010x}", key.0 as u32)
}

/// `gc` removes every segment whose creator is gone, and `shm create`'s
/// creator is the `shm` process, gone at once. So tests that keep segments
/// made by the binary hold this lock shared, and the `gc` test holds it alone:
/// a `RwLock` between this binary's threads (it makes new readers wait for a
/// waiting writer) and `flock(2)` on a file between processes (a second run
/// of this suite at the same time).
static GC_LOCK: RwLock<()> = RwLock::new(());

/// One of the two locks above, held until dropped.
#[allow(dead_code)] // the fields are held for their Drop
enum GcLock {
    Shared(RwLockReadGuard<'static, ()>, std::fs::File),
    Alone(RwLockWriteGuard<'static, ()>, std::fs::File),
}

/// `flock(2)` on the suite's lock file, polling for at most 120 s.
fn flock(how: libc::c_int) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("shm-cli-tests-gc.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // SAFETY: flock(2) on a descriptor `file` owns; no pointers.
        if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } == 0 {
            return file;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::EWOULDBLOCK), "flock: {err}");
        assert!(
            Instant::now() < deadline,
            "{} stayed locked for 120 s",
            path.display()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn shared() -> GcLock {
    let guard = GC_LOCK.read().unwrap_or_else(|e| e.into_inner());
    GcLock::Shared(guard, flock(libc::LOCK_SH))
}

fn exclusive() -> GcLock {
    let guard = GC_LOCK.write().unwrap_or_else(|e| e.into_inner());
    GcLock::Alone(guard, flock(libc::LOCK_EX))
}

/// A segment this test made; removed with the library on drop (also on
/// panic), whatever state the test left it in.
#[derive(Debug)]
enum Seg {
    Sysv { key: SysvKey, id: i32 },
    Posix(String),
}

impl Seg {
    /// How the command line names it.
    fn target(&self) -> String {
        match self {
            Seg::Sysv { key, id } if key.is_private() => format!("id:{id}"),
            Seg::Sysv { key, .. } => key_arg(*key),
            Seg::Posix(name) => name.clone(),
        }
    }

    fn id(&self) -> i32 {
        match self {
            Seg::Sysv { id, .. } => *id,
            Seg::Posix(_) => panic!("a POSIX segment has no shmid"),
        }
    }
}

impl Drop for Seg {
    fn drop(&mut self) {
        match self {
            Seg::Sysv { id, .. } => {
                if let Ok(seg) = SysvSegment::open_id(*id) {
                    let _ = seg.remove();
                }
            }
            Seg::Posix(name) => {
                let _ = PosixShm::unlink_name(name);
            }
        }
    }
}

/// `shm create key:<random> --size size [extra…]`; retries if the key is taken.
#[track_caller]
fn create_sysv(size: &str, extra: &[&str]) -> Seg {
    for _ in 0..16 {
        let key = SysvKey::random();
        let target = key_arg(key);
        let mut args = vec!["create", &target, "--size", size];
        args.extend_from_slice(extra);
        let out = run(&args);
        if out.ok() {
            let id = out
                .stdout
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{e}: {out:?}"));
            return Seg::Sysv { key, id };
        }
        assert!(out.stderr.contains("exists"), "{out:?}");
    }
    panic!("no free random key in 16 tries");
}

/// `shm create /shm-test-<what>-… --size size`.
#[track_caller]
fn create_posix(what: &str, size: &str) -> Seg {
    let name = posix_name(what);
    let out = ok(&["create", &name, "--size", size]);
    assert_eq!(out.trim(), name);
    Seg::Posix(name)
}

// ---------------------------------------------------------------------------
// Helper processes: this binary, re-executed with a role.

/// Not a test: the body of a helper process when `SHM_CLI_TEST_ROLE` is set.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    // Never outlive a test that forgot us.
    thread::spawn(|| {
        thread::sleep(Duration::from_secs(60));
        std::process::exit(3);
    });
    let (what, arg) = role.split_once(':').expect("role:arg");
    match what {
        // Map segments and hold them until stdin closes.
        "hold" => {
            let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
            for target in arg.split(',') {
                if let Some(id) = target.strip_prefix("id:") {
                    let seg = SysvSegment::open_id(id.parse().unwrap()).unwrap();
                    keep.push(Box::new(
                        seg.attach(shm_segment::Access::ReadWrite).unwrap(),
                    ));
                } else {
                    keep.push(Box::new(PosixShm::open(target).unwrap().map().unwrap()));
                }
            }
            // After a newline: the harness has printed "test child_role ... ".
            println!("\nROLE mapped");
            std::io::stdout().flush().unwrap();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            drop(keep);
        }
        // Create a POSIX SPSC ring with three items and exit without cleaning up.
        "posix-ring" => {
            let size = shm_ring::SpscRing::<u64>::required_size(16);
            let shm = PosixOptions::new().create(arg, size).unwrap();
            let ring = shm_ring::SpscRing::<u64, _>::create(
                shm.map().unwrap(),
                16,
                shm_ring::RingOptions::new(),
            )
            .unwrap();
            let mut tx = ring.producer().unwrap();
            assert_eq!(tx.push_slice(&[1, 2, 3]), 3);
            println!("\nROLE created");
            std::io::stdout().flush().unwrap();
        }
        _ => panic!("unknown role {role}"),
    }
    std::process::exit(0);
}

/// A helper process; killed and reaped on drop.
struct Helper {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    fn start(role: &str) -> Helper {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_role", "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start helper");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Helper { child, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most 30 s) for the helper to print `ROLE <word>`.
    #[track_caller]
    fn expect(&self, word: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let want = format!("ROLE {word}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.ends_with(&want) => return,
                Ok(_) => {}
                Err(e) => panic!("helper never said {want:?}: {e}"),
            }
        }
    }

    /// Closes its stdin and waits (at most 30 s) for a clean exit.
    #[track_caller]
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "helper: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "helper still running");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[track_caller]
fn stat_json(target: &str) -> Value {
    run(&["--json", "stat", target]).json()
}

// ---------------------------------------------------------------------------
// create

#[test]
fn create_sysv_with_a_random_key_prints_the_shmid_for_every_size() {
    let _l = shared();
    for (size, bytes) in [("4096", 4096), ("64K", 65536), ("1M", 1 << 20)] {
        let seg = create_sysv(size, &[]);
        let st = stat_json(&seg.target());
        assert_eq!(st["kind"], "sysv");
        assert_eq!(st["id"], seg.id());
        assert_eq!(st["size"], bytes);
        assert_eq!(st["mode"].as_u64().unwrap() & 0o777, 0o600, "default mode");
        let Seg::Sysv { key, .. } = seg else {
            unreachable!()
        };
        assert_eq!(st["key"], key.0);
    }
}

#[test]
fn create_private_prints_a_shmid_that_stat_finds() {
    let _l = shared();
    let out = run(&["create", "key:private", "--size", "4096", "--mode", "640"]);
    assert!(out.ok(), "{out:?}");
    let id: i32 = out.stdout.trim().parse().expect("a shmid");
    let seg = Seg::Sysv {
        key: SysvKey::PRIVATE,
        id,
    };
    let st = stat_json(&seg.target());
    assert_eq!(
        (st["key"].as_i64(), st["id"].as_i64()),
        (Some(0), Some(id.into()))
    );
    assert_eq!(st["mode"].as_u64().unwrap() & 0o777, 0o640);
    assert_eq!(st["cpid"], out.pid, "created by the shm process");

    // --json create says the same.
    let out = run(&["--json", "create", "key:private", "--size", "64K"]);
    let v = out.json();
    let seg2 = Seg::Sysv {
        key: SysvKey::PRIVATE,
        id: v["shmid"].as_i64().unwrap() as i32,
    };
    assert_eq!(v["target"], format!("id:{}", seg2.id()));
    assert_eq!(
        (v["key"].as_i64(), v["size"].as_u64()),
        (Some(0), Some(65536))
    );
}

#[test]
fn create_posix_makes_a_file_in_dev_shm_with_mode_600() {
    let _l = shared();
    for (size, bytes) in [("4096", 4096u64), ("64K", 65536), ("1M", 1 << 20)] {
        let seg = create_posix("create", size);
        let name = seg.target();
        let meta = std::fs::metadata(format!("/dev/shm{name}")).unwrap();
        assert_eq!(meta.len(), bytes);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let st = stat_json(&name);
        assert_eq!(
            (st["kind"].as_str(), st["size"].as_u64()),
            (Some("posix"), Some(bytes))
        );
    }
}

#[test]
fn creating_twice_fails_with_one_line_naming_the_target() {
    let _l = shared();
    let sysv = create_sysv("4096", &[]);
    let posix = create_posix("twice", "4096");
    let Seg::Sysv { key, .. } = &sysv else {
        unreachable!()
    };
    let hex = format!("{:#010x}", key.0 as u32);
    for (target, names) in [
        (sysv.target(), hex.as_str()),
        (posix.target(), posix_str(&posix)),
    ] {
        let out = run(&["create", &target, "--size", "4096"]);
        let line = out.one_error_line();
        assert_eq!(out.code, Some(1));
        assert!(line.starts_with("shm: ") && line.contains(names), "{line}");
        let out = run(&["--json", "create", &target, "--size", "4096"]);
        let v = out.json_error();
        assert_eq!(v["status"], 409, "{v}");
        assert!(v["error"].as_str().unwrap().contains(names), "{v}");
        assert!(out.stdout.is_empty());
    }
    // The first one is untouched.
    assert_eq!(stat_json(&sysv.target())["size"], 4096);
}

fn posix_str(seg: &Seg) -> &str {
    match seg {
        Seg::Posix(name) => name,
        Seg::Sysv { .. } => panic!("not POSIX"),
    }
}

#[test]
fn bad_size_mode_or_target_is_a_clap_error_with_exit_2() {
    let name = posix_name("bad-args");
    let cases: &[&[&str]] = &[
        &["create", &name, "--size", "12Q"],
        &["create", &name, "--size", "-5"],
        &["create", &name, "--size", "99999999999T"],
        &["create", &name, "--size", "4096", "--mode", "800"],
        &["create", &name, "--size", "4096", "--mode", "1777"],
        &["create", &name], // no size
        &["create", "nope", "--size", "4096"],
        &["create", "key:zz", "--size", "4096"],
        &["create", "/a/b", "--size", "4096"],
        &["stat", "id:-1"],
        &["read", &name, "--offset", "x"],
        &["list", "--sysv", "--posix"],
        &["frobnicate"],
    ];
    for args in cases {
        let out = run(args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("error: "), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty());
    }
    assert!(
        !std::path::Path::new(&format!("/dev/shm{name}")).exists(),
        "a refused create made nothing"
    );
    // The error names what was wrong.
    assert!(run(&["create", &name, "--size", "12Q"])
        .stderr
        .contains("12Q"));
    assert!(run(&["create", "/a/b", "--size", "1"])
        .stderr
        .contains("/a/b"));
}

// ---------------------------------------------------------------------------
// stat

#[test]
fn stat_shows_every_shmid_ds_field_in_text_and_json() {
    let _l = shared();
    let seg = create_sysv("64K", &["--mode", "640"]);
    let target = seg.target();
    let st = stat_json(&target);
    for field in [
        "kind", "key", "id", "size", "uid", "gid", "cuid", "cgid", "mode", "nattch", "cpid",
        "lpid", "atime", "dtime", "ctime", "attached",
    ] {
        assert!(st.get(field).is_some(), "{field} missing: {st}");
    }
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!(
        (st["uid"].as_u64(), st["cuid"].as_u64()),
        (Some(uid.into()), Some(uid.into()))
    );
    assert_eq!(
        (st["gid"].as_u64(), st["cgid"].as_u64()),
        (Some(gid.into()), Some(gid.into()))
    );
    assert_eq!(
        (st["nattch"].as_u64(), st["atime"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(st["ctime"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(st["attached"], Value::Array(vec![]));

    let text = ok(&["stat", &target]);
    for label in [
        "kind", "key", "shmid", "size", "mode", "uid", "gid", "cuid", "cgid", "nattch", "cpid",
        "lpid", "atime", "dtime", "ctime", "attached",
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(label)),
            "{label} missing:\n{text}"
        );
    }
    assert!(text.contains("65536") && text.contains("640"), "{text}");
    assert!(text.contains(&format!("shmid     {}", seg.id())), "{text}");

    let posix = create_posix("stat", "4096");
    let st = stat_json(&posix.target());
    for field in [
        "kind", "name", "size", "mode", "uid", "gid", "atime", "mtime", "ctime", "inode",
        "attached",
    ] {
        assert!(st.get(field).is_some(), "{field} missing: {st}");
    }
    assert_eq!(st["name"], posix.target());
    assert_eq!(st["mode"], 0o600);
    let text = ok(&["stat", &posix.target()]);
    assert!(text.contains("kind      posix") && text.contains(&posix.target()));
}

// ---------------------------------------------------------------------------
// write / read

#[test]
fn write_from_argument_and_from_stdin_then_read_back() {
    let _l = shared();
    let sysv = create_sysv("4096", &[]);
    let posix = create_posix("write", "4096");
    for seg in [&sysv, &posix] {
        let t = seg.target();
        let out = ok(&["write", &t, "hello, segment"]);
        assert!(out.contains("wrote 14 bytes at offset 0"), "{out}");
        assert_eq!(ok(&["read", &t, "--len", "14"]), "hello, segment");

        // `cat file | shm write key:...`, a real pipeline.
        let file = std::env::temp_dir().join(format!(
            "shm-test-stdin-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        std::fs::write(&file, &payload).unwrap();
        let mut sh = Command::new("sh")
            .arg("-c")
            .arg(r#"cat "$1" | "$2" write --offset 100 "$3""#)
            .arg("sh")
            .arg(&file)
            .arg(env!("CARGO_BIN_EXE_shm"))
            .arg(&t)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (code, stdout, stderr) = wait_output(&mut sh, TIMEOUT, "cat | shm write");
        let _ = std::fs::remove_file(&file);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains("wrote 1000 bytes at offset 100"),
            "{stdout}"
        );
        let back = run(&["read", &t, "--offset", "100", "--len", "1000"]);
        assert!(back.ok());
        // Read as raw bytes: the payload is not UTF-8.
        let raw = read_raw(&t, 100, 1000);
        assert_eq!(raw, payload);

        // Standard input through run_in too, with --json.
        let v = run_in(&["--json", "write", &t, "--offset", "2000"], Some(b"json!")).json();
        assert_eq!(
            (v["written"].as_u64(), v["offset"].as_u64()),
            (Some(5), Some(2000))
        );
        assert_eq!(ok(&["read", &t, "--offset", "2000", "--len", "5"]), "json!");
    }
}

/// `shm read` of `len` bytes at `offset`, as raw bytes.
fn read_raw(target: &str, offset: usize, len: usize) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args([
            "read",
            target,
            "--offset",
            &offset.to_string(),
            "--len",
            &len.to_string(),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn write_past_the_end_is_refused_and_writes_nothing() {
    let _l = shared();
    let sysv = create_sysv("4096", &[]);
    let posix = create_posix("past-end", "4096");
    for seg in [&sysv, &posix] {
        let t = seg.target();
        // 10 bytes at 4090 would end at 4100.
        let out = run(&["write", &t, "--offset", "4090", "0123456789"]);
        let line = out.one_error_line();
        assert_eq!(out.code, Some(1));
        assert!(line.contains("4096") && line.contains("4090"), "{line}");
        assert_eq!(read_raw(&t, 4080, 16), vec![0; 16], "nothing written");
        // From stdin too, and far past the end.
        let out = run_in(
            &["--json", "write", &t, "--offset", "4000"],
            Some(&[7u8; 200]),
        );
        assert_eq!(out.json_error()["status"], 413);
        let out = run(&["write", &t, "--offset", "99999", "x"]);
        assert_eq!(out.code, Some(1));
        assert_eq!(
            read_raw(&t, 0, 4096),
            vec![0; 4096],
            "still nothing written"
        );
        // Exactly up to the end is fine.
        ok(&["write", &t, "--offset", "4091", "01234"]);
        assert_eq!(read_raw(&t, 4091, 5), b"01234");
    }
}

#[test]
fn read_offset_len_trim_and_hex() {
    let _l = shared();
    let seg = create_posix("read", "4096");
    let t = seg.target();
    ok(&["write", &t, "--offset", "100", "abc"]);
    assert_eq!(ok(&["read", &t, "--offset", "100", "--len", "3"]), "abc");
    assert_eq!(ok(&["read", &t, "--offset", "101", "--len", "1"]), "b");
    // Whole segment by default; --trim drops trailing NULs only.
    assert_eq!(read_raw(&t, 0, 4096).len(), 4096);
    let out = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(["read", &t, "--trim"])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 103);
    assert!(out.stdout.ends_with(b"abc") && out.stdout[..100].iter().all(|&b| b == 0));
    let out = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(["read", &t, "--offset", "4000"])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 96, "to the end");
    // hexdump -C layout.
    let hex = ok(&["read", &t, "--offset", "96", "--len", "8", "--hex"]);
    let bytes = format!("{:<48}", "00 00 00 00 61 62 63 00");
    assert_eq!(hex, format!("00000060  {bytes}  |....abc.|\n"));
    // --json gives the text.
    let v = run(&["--json", "read", &t, "--offset", "100", "--len", "3"]).json();
    assert_eq!(
        (v["data"].as_str(), v["len"].as_u64()),
        (Some("abc"), Some(3))
    );
    // Out of range reads fail, naming the target.
    for args in [
        &["read", t.as_str(), "--offset", "5000"][..],
        &["read", t.as_str(), "--offset", "4000", "--len", "200"],
    ] {
        let out = run(args);
        assert!(out.one_error_line().contains(&t), "{out:?}");
        assert!(out.stdout.is_empty());
    }
}

// ---------------------------------------------------------------------------
// set

#[test]
fn set_mode_uid_gid_on_sysv_and_posix() {
    let _l = shared();
    // SAFETY: geteuid/getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    // Only root may give a segment away; others set their own ids.
    let (uid, gid) = if euid == 0 {
        (1234, 2345)
    } else {
        println!("not root: setting uid/gid to our own ({euid}/{egid}), not to others'");
        (euid, egid)
    };
    let sysv = create_sysv("4096", &[]);
    let posix = create_posix("set", "4096");
    for seg in [&sysv, &posix] {
        let t = seg.target();
        let (u, g) = (uid.to_string(), gid.to_string());
        let out = ok(&["set", &t, "--mode", "640", "--uid", &u, "--gid", &g]);
        assert!(out.contains(&format!("changed {t}")), "{out}");
        let st = stat_json(&t);
        assert_eq!(st["mode"].as_u64().unwrap() & 0o777, 0o640, "{st}");
        assert_eq!(
            (st["uid"].as_u64(), st["gid"].as_u64()),
            (Some(uid.into()), Some(gid.into()))
        );
        // Mode alone, with --json.
        let v = run(&["--json", "set", &t, "--mode", "604"]).json();
        assert_eq!(v["target"], t.as_str());
        assert_eq!(stat_json(&t)["mode"].as_u64().unwrap() & 0o777, 0o604);
        if let Seg::Sysv { .. } = seg {
            // IPC_SET keeps the creator.
            assert_eq!(stat_json(&t)["cuid"].as_u64(), Some(euid.into()));
        }
        // Nothing to change is an error (exit 1, one line).
        let out = run(&["set", &t]);
        assert_eq!(out.code, Some(1));
        // NOTE: this message does not name the target (reported as a finding).
        assert!(out.one_error_line().contains("--mode"), "{out:?}");
    }
}

// ---------------------------------------------------------------------------
// rm

#[test]
fn rm_then_stat_fails_with_404() {
    let _l = shared();
    let private = {
        let out = run(&["create", "key:private", "--size", "4096"]);
        Seg::Sysv {
            key: SysvKey::PRIVATE,
            id: out.stdout.trim().parse().unwrap(),
        }
    };
    let segs = [
        create_sysv("4096", &[]),
        private,
        create_posix("rm", "4096"),
    ];
    for seg in &segs {
        let t = seg.target();
        assert!(ok(&["rm", &t]).contains(&format!("removed {t}")));
        let out = run(&["stat", &t]);
        assert_eq!(out.code, Some(1));
        out.one_error_line();
        let v = run(&["--json", "stat", &t]).json_error();
        assert_eq!(v["status"], 404, "{v}");
        // Removing again fails the same way; `remove` is an alias.
        assert_eq!(run(&["--json", "remove", &t]).json_error()["status"], 404);
    }
    assert!(!std::path::Path::new(&format!("/dev/shm{}", segs[2].target())).exists());
    assert!(SysvSegment::open_id(segs[0].id()).is_err());
}

// ---------------------------------------------------------------------------
// list

#[test]
fn list_shows_our_segments_and_the_pids_that_map_them() {
    let _l = shared();
    let sysv = create_sysv("4096", &[]);
    let posix = create_posix("list", "8192");
    let holder = Helper::start(&format!("hold:id:{},{}", sysv.id(), posix.target()));
    holder.expect("mapped");
    let pid = u64::from(holder.pid());

    let all = run(&["--json", "list"]).json();
    let all = all.as_array().unwrap();
    let s = all
        .iter()
        .find(|e| e["kind"] == "sysv" && e["id"] == sysv.id())
        .expect("our SysV segment listed");
    assert_eq!(s["attached"], serde_json::json!([pid]));
    assert_eq!(
        (s["nattch"].as_u64(), s["size"].as_u64()),
        (Some(1), Some(4096))
    );
    let p = all
        .iter()
        .find(|e| e["kind"] == "posix" && e["name"] == posix.target())
        .expect("our POSIX segment listed");
    assert_eq!(p["attached"], serde_json::json!([pid]));
    assert_eq!(p["size"], 8192);

    let only_sysv = run(&["--json", "list", "--sysv"]).json();
    assert!(only_sysv
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] == "sysv"));
    assert!(only_sysv
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == sysv.id()));
    let only_posix = run(&["--json", "list", "--posix"]).json();
    assert!(only_posix
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] == "posix"));
    assert!(only_posix
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == posix.target()));

    // The table: a header and one line each, with the holder's pid.
    let text = ok(&["list"]);
    assert!(text.starts_with("KIND"), "{text}");
    let Seg::Sysv { key, .. } = &sysv else {
        unreachable!()
    };
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{:#010x}", key.0 as u32)))
        .expect("SysV line");
    // The ATTACHED column: the pids, then a note when some processes could
    // not be looked into (pid 1 of some sandboxes, even for root).
    let attached_is = |line: &str, pid: u64| {
        line.ends_with(&format!("  {pid}"))
            || line.contains(&format!("  {pid} (could not see into "))
    };
    assert!(line.starts_with("sysv") && attached_is(line, pid), "{line}");
    let line = text.lines().find(|l| l.contains(&posix.target())).unwrap();
    assert!(
        line.starts_with("posix") && attached_is(line, pid),
        "{line}"
    );
    assert!(!ok(&["list", "--posix"]).contains(&format!("{:#010x}", key.0 as u32)));

    // stat sees the attachment too.
    assert_eq!(
        stat_json(&sysv.target())["attached"],
        serde_json::json!([pid])
    );
    assert_eq!(
        stat_json(&posix.target())["attached"],
        serde_json::json!([pid])
    );
    holder.finish();
    let st = stat_json(&sysv.target());
    assert_eq!(
        (st["nattch"].as_u64(), st["lpid"].as_u64()),
        (Some(0), Some(pid))
    );
}

// ---------------------------------------------------------------------------
// gc

#[test]
fn gc_finds_real_orphans_and_spares_live_segments() {
    let _alone = exclusive();
    // A SysV orphan: made by a process (`shm create`) that exited without
    // removing it, attached by nobody.
    let orphan = create_sysv("4096", &[]);
    let orphan_id = orphan.id();
    // A POSIX ring whose creator (a helper process) died.
    let ring_name = posix_name("gc-ring");
    let ring = Seg::Posix(ring_name.clone());
    let maker = Helper::start(&format!("posix-ring:{ring_name}"));
    maker.expect("created");
    let maker_pid = maker.pid();
    maker.finish();
    // Segments of a live process (this one), and a dead creator's segment a
    // live process still maps: not orphans.
    let live = SysvOptions::new()
        .remove_on_drop(true)
        .create(SysvKey::random(), 4096)
        .unwrap();
    let live_ring_name = posix_name("gc-live-ring");
    let live_ring = PosixOptions::new()
        .unlink_on_drop(true)
        .create(
            &live_ring_name,
            shm_ring::SpscRing::<u64>::required_size(16),
        )
        .unwrap();
    shm_ring::SpscRing::<u64, _>::create(live_ring.map().unwrap(), 16, Default::default()).unwrap();
    let held = create_sysv("4096", &[]);
    let holder = Helper::start(&format!("hold:id:{}", held.id()));
    holder.expect("mapped");

    let report = run(&["--json", "gc", "--dry-run", "--min-age", "0"]).json();
    let report = report.as_array().unwrap();
    let entry = |needle: &str| {
        report
            .iter()
            .find(|o| {
                let t = o["target"].as_str().unwrap();
                t == needle || t.starts_with(&format!("{needle} "))
            })
            .cloned()
    };
    let sysv_entry = entry(&format!("id:{orphan_id}")).expect("SysV orphan listed");
    assert_eq!(sysv_entry["removed"], false);
    assert_eq!(sysv_entry["size"], 4096);
    let ring_entry = entry(&ring_name).expect("POSIX ring orphan listed");
    assert_eq!(ring_entry["removed"], false);
    let why = ring_entry["why"].as_str().unwrap();
    assert!(
        why.contains("spsc-ring") && why.contains(&maker_pid.to_string()),
        "{why}"
    );
    assert!(
        entry(&format!("id:{}", live.id())).is_none(),
        "live SysV not listed"
    );
    assert!(entry(&live_ring_name).is_none(), "live ring not listed");
    assert!(
        entry(&format!("id:{}", held.id())).is_none(),
        "attached SysV not listed"
    );
    let text = ok(&["gc", "--dry-run", "--min-age", "0"]);
    assert!(
        text.contains(&format!("would remove id:{orphan_id}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("would remove {ring_name}")),
        "{text}"
    );
    // A dry run removed nothing.
    assert!(stat_json(&orphan.target())["id"] == orphan_id);
    assert!(stat_json(&ring_name)["name"] == ring_name.as_str());

    // The real thing removes every orphan on the host: only when all of
    // them are ours (other people's tests may be running here).
    let ours = [format!("id:{orphan_id}"), ring_name.clone()];
    let foreign: Vec<&str> = report
        .iter()
        .map(|o| o["target"].as_str().unwrap())
        .filter(|t| {
            !ours
                .iter()
                .any(|o| t == o || t.starts_with(&format!("{o} ")))
        })
        .collect();
    if !foreign.is_empty() {
        println!("skipping the removing `shm gc`: it would also remove orphans that are not ours: {foreign:?}");
        return;
    }
    let removed = run(&["--json", "gc", "--min-age", "0"]).json();
    for needle in &ours {
        let o = removed
            .as_array()
            .unwrap()
            .iter()
            .find(|o| {
                let t = o["target"].as_str().unwrap();
                t == needle || t.starts_with(&format!("{needle} "))
            })
            .unwrap_or_else(|| panic!("{needle} not in {removed}"));
        assert_eq!(o["removed"], true, "{o}");
    }
    assert_eq!(
        run(&["--json", "stat", &orphan.target()]).json_error()["status"],
        404
    );
    assert_eq!(
        run(&["--json", "stat", &ring_name]).json_error()["status"],
        404
    );
    // Spared.
    assert_eq!(stat_json(&format!("id:{}", live.id()))["id"], live.id());
    assert_eq!(stat_json(&live_ring_name)["name"], live_ring_name.as_str());
    assert_eq!(stat_json(&held.target())["nattch"], 1);
    holder.finish();
    drop((ring, orphan));
}

// ---------------------------------------------------------------------------
// doctor

#[test]
fn doctor_prints_its_checks() {
    let text = ok(&["doctor"]);
    assert!(
        text.contains("kernel.shmmax") && text.contains("kernel.shmmni"),
        "{text}"
    );
    let v = run(&["--json", "doctor"]).json();
    let checks = v.as_array().unwrap();
    assert!(checks.len() >= 3, "{v}");
    for c in checks {
        assert!(c["name"].is_string() && c["detail"].is_string(), "{c}");
        assert!(
            ["ok", "warn", "info"].contains(&c["level"].as_str().unwrap()),
            "{c}"
        );
        // Every check shows up in the text.
        assert!(text.contains(c["name"].as_str().unwrap()), "{c}");
    }
}

// ---------------------------------------------------------------------------
// inspect

fn posix_region(what: &str, size: usize) -> (String, PosixShm) {
    let name = posix_name(what);
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, size)
        .unwrap();
    (name, shm)
}

#[test]
fn inspect_decodes_rings_pools_and_channels() {
    use shm_mempool::{Channel, MemPool};
    use shm_ring::{MpmcRing, RingOptions, SpscRing};
    let me = u64::from(std::process::id());

    // An SPSC ring with 5 items, this process the producer.
    let (spsc_name, spsc_shm) = posix_region("inspect-spsc", SpscRing::<u64>::required_size(64));
    let ring = SpscRing::<u64, _>::create(spsc_shm.map().unwrap(), 64, RingOptions::new()).unwrap();
    let mut tx = ring.producer().unwrap();
    assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5]), 5);
    let v = run(&["--json", "inspect", &spsc_name]).json();
    assert_eq!(v["target"], spsc_name.as_str());
    assert_eq!(v["kind"], "spsc-ring");
    assert_eq!(
        (v["capacity"].as_u64(), v["creator_pid"].as_u64()),
        (Some(64), Some(me))
    );
    assert_eq!(v["creator_alive"], true);
    let r = &v["ring"];
    assert_eq!(
        (r["kind"].as_str(), r["capacity"].as_u64()),
        (Some("spsc-ring"), Some(64))
    );
    assert_eq!((r["len"].as_u64(), r["tail"].as_u64()), (Some(5), Some(5)));
    assert_eq!(
        (r["producer_pid"].as_u64(), r["consumer_pid"].as_u64()),
        (Some(me), None)
    );
    assert!(v.get("pool").is_none());
    let text = ok(&["inspect", &spsc_name]);
    assert!(
        text.contains("spsc-ring") && text.contains("5 of 64 slots used"),
        "{text}"
    );
    assert!(
        text.contains(&format!("producer pid {me}, consumer none")),
        "{text}"
    );

    // An MPMC ring with 3 items.
    let (mpmc_name, mpmc_shm) = posix_region("inspect-mpmc", MpmcRing::<u32>::required_size(32));
    let mpmc = MpmcRing::<u32, _>::create(mpmc_shm.map().unwrap(), 32, RingOptions::new()).unwrap();
    assert_eq!(mpmc.push_slice(&[7, 8, 9]), 3);
    let v = run(&["--json", "inspect", &mpmc_name]).json();
    assert_eq!(v["kind"], "mpmc-ring");
    assert_eq!(
        (v["ring"]["len"].as_u64(), v["ring"]["capacity"].as_u64()),
        (Some(3), Some(32))
    );

    // A pool of 8 blocks, 3 of them held by this process.
    let (pool_name, pool_shm) = posix_region("inspect-pool", MemPool::required_size(8, 64));
    let pool = MemPool::create(pool_shm.map().unwrap(), 8, 64).unwrap();
    let held: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
    let v = run(&["--json", "inspect", &pool_name]).json();
    assert_eq!(v["kind"], "mempool");
    let p = &v["pool"];
    assert_eq!(
        (p["blocks"].as_u64(), p["block_size"].as_u64()),
        (Some(8), Some(64))
    );
    assert_eq!(
        (p["free"].as_u64(), p["held"].as_u64(), p["queued"].as_u64()),
        (Some(5), Some(3), Some(0))
    );
    assert_eq!(p["owners"], serde_json::json!([[me, 3]]));
    assert!(v.get("ring").is_none());
    let text = ok(&["inspect", &pool_name]);
    assert!(
        text.contains("8 blocks of 64 bytes: 5 free, 3 held"),
        "{text}"
    );
    assert!(text.contains(&format!("pid {me} holds 3")), "{text}");
    drop(held);
    assert_eq!(
        run(&["--json", "inspect", &pool_name]).json()["pool"]["free"],
        8
    );

    // A channel: 2 messages queued, 1 block held.
    let (chan_name, chan_shm) = posix_region("inspect-chan", Channel::required_size(4, 256));
    let opts = shm_mempool::ChannelOptions::new();
    let chan = Channel::create_with(chan_shm.map().unwrap(), 4, 256, opts).unwrap();
    chan.send_bytes(b"one").unwrap();
    chan.send_bytes(b"two").unwrap();
    let _block = chan.get().unwrap();
    let v = run(&["--json", "inspect", &chan_name]).json();
    assert_eq!(v["kind"], "channel");
    let p = &v["pool"];
    assert_eq!(
        (p["free"].as_u64(), p["held"].as_u64(), p["queued"].as_u64()),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(p["owners"], serde_json::json!([[me, 1]]));
    assert_eq!(v["ring"]["len"], 2);
    assert_eq!(v["ring"]["kind"], "channel queue");
    assert_eq!(
        (p["in_transit"].as_u64(), p["dead"].as_u64()),
        (Some(0), Some(0))
    );

    // A segment without a header: an error naming it.
    let _l = shared();
    let plain = create_posix("inspect-plain", "4096");
    let out = run(&["inspect", &plain.target()]);
    assert!(out.one_error_line().contains(&plain.target()), "{out:?}");
    assert!(
        run(&["--json", "inspect", &plain.target()]).json_error()["status"].as_u64() >= Some(400)
    );
}

// ---------------------------------------------------------------------------
// A segment that shrinks under the tool

/// A peer that truncates a POSIX segment to 0 bytes and back to `size`, over
/// and over, until dropped (also when the test panics).
struct Shrinker {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<u64>>,
}

impl Shrinker {
    fn start(shm: PosixShm, size: i64) -> Shrinker {
        use std::os::fd::{AsFd, AsRawFd};
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut rounds = 0;
            while !flag.load(Ordering::Relaxed) {
                for len in [0, size] {
                    // SAFETY: ftruncate(2) on the descriptor `shm` owns.
                    let ret = unsafe { libc::ftruncate(shm.as_fd().as_raw_fd(), len) };
                    assert_eq!(ret, 0, "ftruncate: {}", std::io::Error::last_os_error());
                    thread::sleep(Duration::from_micros(150));
                }
                rounds += 1;
            }
            rounds
        });
        Shrinker {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop; how many times it shrank the segment.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
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

/// `ftruncate(2)` through another handle, as a peer would.
fn truncate_posix(name: &str, len: i64) {
    use std::os::fd::{AsFd, AsRawFd};
    let peer = PosixOptions::new().min_size(0).open(name).unwrap();
    // SAFETY: ftruncate(2) on the descriptor `peer` owns.
    let ret = unsafe { libc::ftruncate(peer.as_fd().as_raw_fd(), len) };
    assert_eq!(ret, 0, "ftruncate: {}", std::io::Error::last_os_error());
}

/// A POSIX segment that another process may truncate at any time (its
/// owner, or any user it is writable for) must never kill `shm` with
/// SIGBUS: reading and writing it go through the descriptor, and a shrink
/// is an error naming the segment.
#[test]
fn a_posix_segment_shrunk_under_shm_is_an_error_never_a_signal() {
    let (name, _shm) = posix_region("shrunk", 4096);
    ok(&["write", &name, "before"]);
    // Shrunk to nothing after creation, by another handle.
    truncate_posix(&name, 0);
    for args in [
        &["read", name.as_str()][..],
        &["read", &name, "--len", "6"],
        &["write", &name, "x"],
        &["inspect", &name],
    ] {
        let out = run(args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        let line = out.one_error_line();
        assert!(line.starts_with("shm: ") && line.contains(&name), "{line}");
    }

    // Shrunk while `shm read` copies it: each run either reads it or fails
    // with one line naming it; none dies of a signal.
    const SIZE: i64 = 16 << 20;
    truncate_posix(&name, SIZE);
    let shrinker = Shrinker::start(PosixShm::open(&name).unwrap(), SIZE);
    let (mut read, mut failed) = (0, 0);
    for _ in 0..20 {
        let out = run(&["read", &name, "--trim"]);
        assert!(
            out.code.is_some(),
            "shm read was killed by a signal (SIGBUS?) while the segment shrank: {out:?}"
        );
        if out.ok() {
            read += 1;
        } else {
            failed += 1;
            let line = out.one_error_line();
            assert!(line.starts_with("shm: ") && line.contains(&name), "{line}");
        }
    }
    let rounds = shrinker.stop();
    eprintln!("{read} reads, {failed} clean failures, {rounds} shrinks");
    // And it still works once the peer is done.
    ok(&["write", &name, "after"]);
    assert_eq!(ok(&["read", &name, "--len", "5"]), "after");
}

// ---------------------------------------------------------------------------
// completions

#[test]
fn completions_for_bash_name_the_subcommands() {
    let bash = ok(&["completions", "bash"]);
    assert!(bash.len() > 1000, "{bash}");
    // The top level offers every subcommand.
    let top = bash
        .lines()
        .find(|l| l.trim_start().starts_with("opts=\"") && l.contains("--json"))
        .expect("the top-level opts line");
    let words: Vec<&str> = top
        .trim()
        .trim_start_matches("opts=\"")
        .trim_end_matches('"')
        .split(' ')
        .collect();
    for sub in [
        "list",
        "create",
        "stat",
        "write",
        "read",
        "set",
        "rm",
        "gc",
        "doctor",
        "inspect",
        "demo",
        "bench",
        "completions",
    ] {
        assert!(words.contains(&sub), "{sub} missing from {top}");
    }
    assert!(bash.contains("complete -F") && bash.contains("shm"));
    // (clap_complete offers hidden subcommands too: demo-peer appears in
    // the script, so its absence is not asserted.)
    assert!(ok(&["completions", "zsh"]).contains("#compdef shm"));
    assert_eq!(run(&["completions", "tcsh-nope"]).code, Some(2));
}

// ---------------------------------------------------------------------------
// errors

#[test]
fn every_error_is_one_line_naming_the_target_and_json_on_stderr() {
    let key = SysvKey::random();
    let absent_key = key_arg(key);
    let hex = format!("{:#010x}", key.0 as u32);
    let absent_name = posix_name("absent");
    let cases: Vec<(Vec<&str>, &str, u64)> = vec![
        (vec!["stat", &absent_key], &hex, 404),
        (vec!["stat", "id:2147483000"], "2147483000", 404),
        (vec!["stat", &absent_name], &absent_name, 404),
        (vec!["read", &absent_key], &hex, 404),
        (vec!["read", &absent_name, "--len", "1"], &absent_name, 404),
        (vec!["write", &absent_name, "x"], &absent_name, 404),
        (vec!["write", &absent_key, "x"], &hex, 404),
        (
            vec!["set", &absent_name, "--mode", "600"],
            &absent_name,
            404,
        ),
        (vec!["set", &absent_key, "--mode", "600"], &hex, 404),
        (vec!["rm", &absent_key], &hex, 404),
        (vec!["rm", &absent_name], &absent_name, 404),
        (vec!["inspect", &absent_name], &absent_name, 404),
        (vec!["create", "id:5", "--size", "4096"], "shmid 5", 400),
        (vec!["stat", "key:private"], "IPC_PRIVATE", 400),
    ];
    for (args, names, status) in &cases {
        let out = run(args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        let line = out.one_error_line();
        assert!(
            line.starts_with("shm: ") && line.contains(names),
            "{args:?}: {line}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        let mut json_args = vec!["--json"];
        json_args.extend_from_slice(args);
        let out = run(&json_args);
        assert_eq!(out.code, Some(1));
        let v = out.json_error();
        assert!(v["error"].as_str().unwrap().contains(names), "{v}");
        assert_eq!(v["status"], *status, "{args:?}: {v}");
        assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    }
    // Nothing got created by any of that.
    assert!(!std::path::Path::new(&format!("/dev/shm{absent_name}")).exists());
    assert!(SysvSegment::open(key).is_err());
}

// ---------------------------------------------------------------------------
// Interop with tools nobody here wrote.

fn have(tool: &str, probe: &[&str]) -> bool {
    match Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) => status.success(),
        Err(_) => false,
    }
}

#[test]
fn ipcs_sees_what_shm_creates_and_ipcrm_removes_it() {
    if !have("ipcs", &["-m"]) || !have("ipcrm", &["--version"]) {
        println!("SKIPPED: ipcs/ipcrm (util-linux) are not installed");
        return;
    }
    let _l = shared();
    let seg = create_sysv("64K", &["--mode", "640"]);
    let Seg::Sysv { key, id } = &seg else {
        unreachable!()
    };
    let out = Command::new("ipcs").arg("-m").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // key shmid owner perms bytes nattch status
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("shmid {id} not in ipcs -m:\n{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[0], format!("{:#010x}", key.0 as u32), "{line}");
    assert_eq!((cols[3], cols[4], cols[5]), ("640", "65536", "0"), "{line}");

    let status = Command::new("ipcrm")
        .args(["-m", &id.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = run(&["stat", &format!("id:{id}")]);
    assert!(out.one_error_line().contains(&id.to_string()), "{out:?}");
    assert_eq!(
        run(&["--json", "stat", &format!("id:{id}")]).json_error()["status"],
        404
    );
    assert_eq!(
        run(&["--json", "stat", &seg.target()]).json_error()["status"],
        404
    );
}

/// Runs a Python script with a timeout: exit code, stdout, stderr.
fn python(script: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    wait_output(&mut child, TIMEOUT, "python3")
}

#[test]
fn python_shared_memory_reads_and_writes_our_segments() {
    if !have("python3", &["-c", "import multiprocessing.shared_memory"]) {
        println!("SKIPPED: python3 with multiprocessing.shared_memory is not available");
        return;
    }
    let _l = shared();
    // shm writes, Python reads, Python writes, shm reads.
    let seg = create_posix("py", "4096");
    let name = seg.target();
    ok(&["write", &name, "written by shm"]);
    let script = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(shm._name, "shared_memory")
print(bytes(shm.buf[:14]).decode(), shm.size)
shm.buf[100:118] = b"written by python\n"
shm.close()
"#;
    let (code, stdout, stderr) = python(script, &[name.trim_start_matches('/')]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "written by shm 4096");
    assert_eq!(
        ok(&["read", &name, "--offset", "100", "--len", "18"]),
        "written by python\n"
    );
    // Python did not unlink it on exit.
    assert_eq!(stat_json(&name)["size"], 4096);

    // Python creates, shm reads and removes.
    let py_name = posix_name("py-made");
    let py_seg = Seg::Posix(py_name.clone());
    let script = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=8192)
resource_tracker.unregister(shm._name, "shared_memory")
shm.buf[:17] = b"made by python 3\0"
shm.close()
"#;
    let (code, _, stderr) = python(script, &[py_name.trim_start_matches('/')]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        ok(&["read", &py_name, "--len", "64", "--trim"]),
        "made by python 3"
    );
    assert_eq!(stat_json(&py_name)["size"], 8192);
    assert!(ok(&["rm", &py_name]).contains("removed"));
    drop(py_seg);
}

// ---------------------------------------------------------------------------
// bench

#[test]
fn bench_quick_json_reports_sane_positive_numbers() {
    let started = Instant::now();
    let out = run(&["--json", "bench", "--quick"]);
    let wall = started.elapsed();
    let v = out.json();
    assert!(
        out.stderr.is_empty(),
        "no progress line when not a terminal: {out:?}"
    );
    assert_eq!(v["quick"], true);
    assert!(v["machine"]["cpus"].as_u64() >= Some(1));
    let cases = v["cases"].as_array().unwrap();
    let ids: Vec<&str> = cases.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["create-1m", "copy-1m", "spsc-u64", "channel-4k"]);
    let per_case = v["seconds_per_case"].as_f64().unwrap();
    for c in cases {
        let f = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("{k} in {c}"));
        assert!(c["ops"].as_u64() > Some(0), "{c}");
        for k in ["seconds", "ops_per_sec", "ns_per_op"] {
            assert!(f(k).is_finite() && f(k) > 0.0, "{k} in {c}");
        }
        // Every case but segment creation moves bytes.
        assert_eq!(c.get("mb_per_sec").is_some(), c["id"] != "create-1m", "{c}");
        // Ran about as long as asked (and not absurdly longer).
        assert!(
            f("seconds") >= per_case * 0.9 && f("seconds") < per_case + 10.0,
            "{c}"
        );
        // The numbers agree with each other.
        let rate = c["ops"].as_u64().unwrap() as f64 / f("seconds");
        assert!((rate / f("ops_per_sec") - 1.0).abs() < 1e-6, "{c}");
        assert!(
            (f("ns_per_op") * f("ops_per_sec") / 1e9 - 1.0).abs() < 1e-6,
            "{c}"
        );
    }
    assert!(wall < Duration::from_secs(30), "--quick took {wall:?}");
    // It cleaned up after itself.
    let prefix = format!("shm-bench-{}-", out.pid);
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // The table form points to the benches for comparisons.
    let table = ok(&["bench", "--quick"]);
    assert!(
        table.contains("SPSC ring") && table.contains("NS/OP"),
        "{table}"
    );
    assert!(table.contains("cargo xtask bench"), "{table}");
}

// ---------------------------------------------------------------------------
// man page

#[test]
fn manpage_is_roff_naming_the_subcommands() {
    let man = ok(&["manpage"]);
    // clap_mangen puts two lines that define the apostrophe string (`.ie`,
    // `.el`) before the title; the first other line is the `.TH` header.
    let first = man
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap_or("");
    assert!(first.starts_with(".TH shm 1"), "{first:?}");
    assert!(man.contains("\n.SH NAME\nshm \\- "), "{man}");
    for sub in [
        "list",
        "create",
        "stat",
        "read",
        "write",
        "set",
        "rm",
        "gc",
        "doctor",
        "inspect",
        "demo",
        "bench",
        "serve",
        "completions",
    ] {
        assert!(
            man.contains(&format!("shm\\-{sub}(1)")),
            "{sub} missing from the man page"
        );
    }
    // Hidden helpers stay out of it, and out of --help.
    assert!(!man.contains("demo\\-peer"), "{man}");
    assert!(!man.contains("manpage"), "{man}");
    assert!(!ok(&["--help"]).contains("manpage"));
}

// ---------------------------------------------------------------------------
// Conventions: a closed stdout, dates, other users

/// Runs `shm args…` with its standard output closed before it writes (as
/// `shm list | head -1` leaves it once `head` has its line): exit code and
/// stderr.
fn run_with_stdout_closed(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shm");
    // The reader goes away at once: every write gets EPIPE.
    drop(child.stdout.take());
    let (code, _, stderr) = wait_output(&mut child, TIMEOUT, &format!("shm {args:?}"));
    (code, stderr)
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let _l = shared();
    let seg = create_posix("pipe", "4096");
    let t = seg.target();
    for args in [
        &["list"][..],
        &["--json", "list"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["manpage"],
        &["stat", &t],
        &["read", &t],
        &["read", &t, "--hex"],
        &["doctor"],
        &["demo"],
    ] {
        let (code, stderr) = run_with_stdout_closed(args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "shm {args:?}: {stderr}"
        );
        assert_eq!(code, Some(0), "shm {args:?}: {stderr}");
        assert!(stderr.is_empty(), "shm {args:?}: {stderr}");
    }
    // And through a real pipeline, as the issue reported it.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#""$1" completions bash | head -1 >/dev/null; "$1" list | head -1 >/dev/null"#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_shm"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn completions_and_the_man_page_offer_no_hidden_commands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok(&["completions", shell]);
        for hidden in ["demo-peer", "manpage"] {
            assert!(
                !script.contains(hidden),
                "{shell} completions offer {hidden}"
            );
        }
        assert!(script.contains("inspect"), "{shell}: {script}");
    }
    let man = ok(&["manpage"]);
    for hidden in ["demo\\-peer", "manpage"] {
        assert!(!man.contains(hidden), "the man page names {hidden}");
    }
    // They still run for `shm` itself.
    assert!(ok(&["manpage"]).contains(".TH shm 1"));
}

/// Runs `shm args…` with extra environment variables.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shm");
    let pid = child.id();
    let (code, stdout, stderr) = wait_output(&mut child, TIMEOUT, &format!("shm {args:?}"));
    Out {
        code,
        stdout,
        stderr,
        pid,
    }
}

#[test]
fn stat_shows_times_as_dates_and_json_adds_iso_strings() {
    let _l = shared();
    let seg = create_sysv("4096", &[]);
    // An attach and a detach: atime and dtime are set.
    drop(
        SysvSegment::open_id(seg.id())
            .unwrap()
            .attach(shm_segment::Access::ReadOnly)
            .unwrap(),
    );
    let posix = create_posix("dates", "4096");
    for (target, fields) in [
        (seg.target(), ["atime", "dtime", "ctime"]),
        (posix.target(), ["atime", "mtime", "ctime"]),
    ] {
        let v = run_env(&["--json", "stat", &target], &[("TZ", "UTC")]).json();
        let text = run_env(&["stat", &target], &[("TZ", "UTC")]);
        assert!(text.ok(), "{text:?}");
        for field in fields {
            let secs = v[field]
                .as_i64()
                .unwrap_or_else(|| panic!("{field} a number: {v}"));
            assert!(secs > 1_600_000_000, "{field}: {v}");
            let iso = v[format!("{field}_iso")]
                .as_str()
                .unwrap_or_else(|| panic!("{field}_iso: {v}"));
            // 2025-01-02T03:04:05Z
            assert!(iso.len() == 20 && iso.ends_with('Z'), "{iso}");
            let human = format!("{} +0000", iso.trim_end_matches('Z').replace('T', " "));
            let line = text
                .stdout
                .lines()
                .find(|l| l.split_whitespace().next() == Some(field))
                .unwrap_or_else(|| panic!("{field} missing:\n{}", text.stdout));
            assert_eq!(line, format!("{field:<9} {human}"), "{}", text.stdout);
        }
    }
    // Never attached: "never" and null.
    let fresh = create_sysv("4096", &[]);
    let v = stat_json(&fresh.target());
    assert_eq!(
        (v["atime"].as_i64(), v["atime_iso"].is_null()),
        (Some(0), true)
    );
    assert!(ok(&["stat", &fresh.target()]).contains("atime     never"));
}

/// Why another uid cannot be tried here, if it cannot.
fn no_second_uid() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: cannot run shm as another uid".into());
    }
    match Command::new("setpriv").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("setpriv (util-linux) is not installed".into()),
    }
}

/// `shm args…` as the user `nobody` (65534), through `setpriv`.
fn run_as_nobody(args: &[&str]) -> Out {
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_shm"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start setpriv");
    let pid = child.id();
    let (code, stdout, stderr) = wait_output(&mut child, TIMEOUT, &format!("nobody: shm {args:?}"));
    Out {
        code,
        stdout,
        stderr,
        pid,
    }
}

#[test]
fn another_users_segment_is_permission_denied_naming_the_owner() {
    if let Some(why) = no_second_uid() {
        println!("SKIPPED: {why}");
        return;
    }
    let _l = shared();
    let sysv = create_sysv("4096", &["--mode", "600"]);
    let posix = create_posix("theirs", "4096");
    for seg in [&sysv, &posix] {
        let t = seg.target();
        for args in [
            &["stat", t.as_str()][..],
            &["read", &t],
            &["write", &t, "x"],
            &["rm", &t],
            &["set", &t, "--mode", "666"],
            &["inspect", &t],
        ] {
            let out = run_as_nobody(args);
            let line = out.one_error_line();
            assert!(
                line.contains("permission denied") && line.contains("owned by uid 0 (root)"),
                "{args:?}: {line}"
            );
            assert!(line.contains("this is uid 65534"), "{args:?}: {line}");
            let mut json_args = vec!["--json"];
            json_args.extend_from_slice(args);
            assert_eq!(run_as_nobody(&json_args).json_error()["status"], 403);
        }
        // Untouched.
        assert_eq!(stat_json(&t)["mode"].as_u64().unwrap() & 0o777, 0o600);
    }
}

#[test]
fn list_says_when_it_could_not_see_other_users_processes() {
    let _l = shared();
    let posix = create_posix("unseen", "4096");
    let holder = Helper::start(&format!("hold:{}", posix.target()));
    holder.expect("mapped");
    // As ourselves: the field is there either way.
    let all = run(&["--json", "list", "--posix"]).json();
    let mine = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == posix.target())
        .cloned()
        .expect("listed");
    assert!(mine["attached_complete"].is_boolean(), "{mine}");
    match no_second_uid() {
        Some(why) => println!("SKIPPED the other-user part: {why}"),
        None => {
            // Readable by all, so that nobody may stat it.
            ok(&["set", &posix.target(), "--mode", "644"]);
            // nobody cannot read root's /proc/PID/maps: the holder is unseen.
            let out = run_as_nobody(&["--json", "list", "--posix"]);
            let all: Value = serde_json::from_str(&out.stdout).unwrap();
            let entry = all
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == posix.target())
                .cloned()
                .expect("listed for nobody");
            assert_eq!(entry["attached"], serde_json::json!([]), "{entry}");
            assert_eq!(entry["attached_complete"], false, "{entry}");
            let out = run_as_nobody(&["list", "--posix"]);
            let line = out
                .stdout
                .lines()
                .find(|l| l.contains(&posix.target()))
                .unwrap_or_else(|| panic!("{out:?}"));
            assert!(line.contains("- (could not see into "), "{line}");
            let out = run_as_nobody(&["stat", &posix.target()]);
            assert!(out.stdout.contains("could not see into"), "{out:?}");
        }
    }
    holder.finish();
}
