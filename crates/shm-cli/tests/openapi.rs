//! `shm serve` against its own OpenAPI description (`GET /openapi.json`),
//! with schemathesis (a property-based API tester from PyPI): no request it
//! makes gets a server error, and every answer matches the document.
//!
//! This installs nothing: without a `schemathesis` command on `PATH` the
//! test says so and passes. CI installs it with
//! `python3 -m pip install 'schemathesis==4.32.5'`.
//!
//! schemathesis sends whatever the document allows, to every route: creates
//! with random keys and names, removes by random shmids. So the server runs
//! in its own IPC namespace with its own tmpfs on `/dev/shm` (`unshare
//! --user --map-root-user --ipc --mount`, or without `--user` as root): it
//! can only touch segments it made itself, and they vanish with it. Where
//! no such namespace can be made, the test says so and passes. The server
//! listens on 127.0.0.1 (the network namespace is shared), and the whole
//! run is bounded: a few examples per operation, and a deadline after which
//! everything is killed.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long schemathesis may take in all.
const DEADLINE: Duration = Duration::from_secs(240);
/// Examples per operation and phase.
const EXAMPLES: &str = "25";

/// A process killed (and reaped) on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `unshare` arguments that give a private IPC namespace and `/dev/shm`, if any do here.
fn sandbox() -> Result<Vec<&'static str>, String> {
    let probe = "mount -t tmpfs -o size=64m,mode=1777 none /dev/shm";
    let tries: [&[&str]; 2] = [
        &["--user", "--map-root-user", "--ipc", "--mount"],
        &["--ipc", "--mount"],
    ];
    for args in tries {
        let mut all = args.to_vec();
        all.extend(["sh", "-c", probe]);
        if works("unshare", &all) {
            return Ok(args.to_vec());
        }
    }
    Err("cannot make an IPC and mount namespace with its own /dev/shm (unshare refused)".into())
}

/// Waits for `child` at most until `deadline`; its exit code, or None when killed.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<i32> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_every_answer_matches_the_schema() {
    if !works("schemathesis", &["--version"]) {
        println!(
            "SKIPPED: schemathesis is not installed \
             (python3 -m pip install 'schemathesis==4.32.5')"
        );
        return;
    }
    let unshare = match sandbox() {
        Ok(args) => args,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };

    // The server, in its sandbox.
    let mut server = Command::new("unshare")
        .args(&unshare)
        .args([
            "sh",
            "-c",
            r#"mount -t tmpfs -o size=64m,mode=1777 none /dev/shm && exec "$0" serve --listen 127.0.0.1:0"#,
            env!("CARGO_BIN_EXE_shm"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shm serve under unshare");
    let stdout = server.stdout.take().unwrap();
    let mut stderr = server.stderr.take().unwrap();
    let server = Guard(server);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("shm serve printed its address");
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let report = std::env::temp_dir().join(format!("shm-test-schemathesis-{}", std::process::id()));
    let mut run = Command::new("schemathesis")
        .args(["run", &format!("{base}/openapi.json")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-examples",
            EXAMPLES,
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "10",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--no-color",
            "--report-dir",
        ])
        .arg(&report)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    let out = run.stdout.take().unwrap();
    let err = run.stderr.take().unwrap();
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read_all(Box::new(out)), read_all(Box::new(err)));
    let code = wait_until(&mut run, Instant::now() + DEADLINE);
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let _ = std::fs::remove_dir_all(&report);
    drop(server);
    let server_log = errors.join().unwrap_or_default();
    println!("{out}");
    assert_eq!(
        code,
        Some(0),
        "schemathesis found problems (or ran past {DEADLINE:?}):\n{out}\n{err}\nserver stderr:\n{server_log}"
    );
    assert!(
        !server_log.contains(" 500 "),
        "the server logged server errors:\n{server_log}"
    );
}
