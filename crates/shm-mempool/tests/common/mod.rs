//! Helpers shared by the integration tests of `shm-mempool`: unique segment
//! names, bounded waits that back off, a small deterministic PRNG, the pool's
//! shared layout as far as tests poke at it, and child processes that are
//! this very test binary run again with a role.
//!
//! # Child processes
//!
//! The test harness runs tests on several threads, and `fork` in a threaded
//! process is a trap. So a test that needs a second process re-executes the
//! test binary (`std::env::current_exe()`) with
//! `--exact <test> --nocapture --test-threads=1` and the environment variable
//! [`ROLE_VAR`] set to the test's name. The same test function sees the
//! variable ([`is_child`]) and runs its child side instead. A child that
//! finishes prints [`child_done`]'s marker, which the parent looks for: a
//! typo in the test name would otherwise run no test at all and exit 0.
//!
//! A child's stdout is read line by line on a thread and forwarded to the
//! parent ([`Running::line`]), so a parent can wait for "ready" or for the
//! ids a child reports while the child keeps running.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shm_segment::Region;

/// Names the test whose child side the process runs.
pub(crate) const ROLE_VAR: &str = "SHM_MEMPOOL_TEST_ROLE";
/// One string argument for the child (a segment name, a count).
pub(crate) const ARG_VAR: &str = "SHM_MEMPOOL_TEST_ARG";
/// How long anything in these tests may take before it counts as a hang;
/// generous, for a loaded 2-core CI machine running debug builds.
pub(crate) const HANG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The pool's shared layout, read from crates/shm-mempool/src/pool.rs. Only
// tests that simulate a dead or hostile peer use these.

/// `CONTROL_OFFSET`: the free-list head (`u64`: tag << 32 | index + 1).
pub(crate) const HEAD: usize = 128;
/// `META_OFFSET`: the first block record.
pub(crate) const RECORDS: usize = 256;
/// Bytes per record: `next: u32, used: u32, word: u64`.
pub(crate) const RECORD: usize = 16;
/// The `word` values of the states with no owner.
pub(crate) const FREE: u64 = 0;
pub(crate) const QUEUED: u64 = 2;
/// Where a channel's pool starts in the channel's region.
pub(crate) const CHANNEL_POOL: usize = 4096;

/// Offset of block `i`'s `next` link (index + 1, 0 = end).
pub(crate) fn next_off(i: u32) -> usize {
    RECORDS + i as usize * RECORD
}

/// Offset of block `i`'s state/owner word.
pub(crate) fn word_off(i: u32) -> usize {
    RECORDS + i as usize * RECORD + 8
}

/// The word a block held by `pid` with start time `start` carries: state in
/// bits 0-1 (1 = held), pid in bits 2-23, start time (40 bits) above.
pub(crate) fn held_word(pid: u32, start: u64) -> u64 {
    ((start & ((1 << 40) - 1)) << 24) | (u64::from(pid & ((1 << 22) - 1)) << 2) | 1
}

/// Reads block `i`'s word straight from the pool's region.
pub(crate) fn raw_word(region: &impl Region, i: u32) -> u64 {
    region.load_u64(word_off(i), Ordering::Acquire).unwrap()
}

/// Writes block `i`'s word straight into the pool's region.
pub(crate) fn set_raw_word(region: &impl Region, i: u32, word: u64) {
    region
        .atomic_u64(word_off(i))
        .unwrap()
        .store(word, Ordering::Release);
}

// ---------------------------------------------------------------------------
// Names.

/// A fresh POSIX name, `/shm-test-<what>-<pid>-<counter>`, unique in this
/// process and (through the pid) on the host.
pub(crate) fn posix_name(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/shm-test-{what}-{}-{n}", std::process::id())
}

// ---------------------------------------------------------------------------
// Waiting.

/// Backs off in a retry loop: spins a little, then yields, then sleeps for
/// 50 µs, so a spinning process never starves the one it waits for on a
/// 2-core machine; panics with `what` once the deadline has passed.
#[derive(Debug)]
pub(crate) struct Patience<'a> {
    what: &'a str,
    deadline: Instant,
    round: u32,
}

impl<'a> Patience<'a> {
    /// Waits at most `timeout` in all (not per wait).
    pub(crate) fn new(what: &'a str, timeout: Duration) -> Self {
        Patience {
            what,
            deadline: Instant::now() + timeout,
            round: 0,
        }
    }

    /// Progress was made: the next wait starts with spinning again.
    pub(crate) fn reset(&mut self) {
        self.round = 0;
    }

    /// One back-off step; panics past the deadline.
    pub(crate) fn wait(&mut self) {
        self.round = self.round.saturating_add(1);
        if self.round < 8 {
            std::hint::spin_loop();
        } else if self.round < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
        if self.round % 8 == 0 {
            assert!(
                Instant::now() < self.deadline,
                "{}: no progress before the deadline (hung?)",
                self.what
            );
        }
    }
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut round = 0u32;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        round += 1;
        if round < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Runs `body` on its own thread and fails if it takes longer than `limit`:
/// a hang becomes an assertion, not a stuck CI. Returns what `body` returns.
pub(crate) fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            worker.join().unwrap();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker ended without sending"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {limit:?}"),
    }
}

// ---------------------------------------------------------------------------
// Randomness without a dependency: reproducible from a printed seed.

/// xorshift64*: small, fast, good enough to pick operations and sizes.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is mapped to a non-zero state).
    pub(crate) fn new(seed: u64) -> Self {
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A seed from the environment variable `var` if set, else from the
    /// clock; printed so that a failure can be replayed.
    pub(crate) fn from_env(var: &str) -> Self {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
            });
        eprintln!("random seed: {var}={seed}");
        Rng::new(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with random bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

// ---------------------------------------------------------------------------
// What the processes write into blocks.

/// A stamp written into a block: who wrote it, which of their messages it
/// is, and a checksum of both, so a torn, stale or foreign block shows.
pub(crate) type Stamp = [u64; 3];

pub(crate) fn checksum(pid: u64, seq: u64) -> u64 {
    (pid.rotate_left(29) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xFF51_AFD7_ED55_8CCD)
        ^ 0xC0FF_EE00_D15E_A5E5
}

pub(crate) fn stamp(pid: u32, seq: u64) -> Stamp {
    [u64::from(pid), seq, checksum(u64::from(pid), seq)]
}

/// The `(pid, seq)` of a valid stamp; panics on a bad checksum.
pub(crate) fn check_stamp(s: &Stamp) -> (u32, u64) {
    assert_eq!(s[2], checksum(s[0], s[1]), "bad checksum in block: {s:x?}");
    (s[0] as u32, s[1])
}

/// A counter in shared memory that several processes bump.
pub(crate) fn shared_counter(region: &impl Region, offset: usize) -> &AtomicU64 {
    region.atomic_u64(offset).unwrap()
}

// ---------------------------------------------------------------------------
// Child processes.

/// Whether this process runs the child side of `test`. Panics when it was
/// started for another test's child side, which `--exact` makes impossible.
pub(crate) fn is_child(test: &str) -> bool {
    match std::env::var(ROLE_VAR) {
        Ok(role) if role == test => true,
        Ok(role) => panic!("started as the child of {role:?}, but running {test:?}"),
        Err(_) => false,
    }
}

/// The child's argument ([`ARG_VAR`]).
pub(crate) fn child_arg() -> String {
    std::env::var(ARG_VAR).unwrap_or_else(|_| panic!("{ARG_VAR} is not set in the child"))
}

/// The marker a child prints when its side finished with every assertion held.
pub(crate) fn done_marker(test: &str) -> String {
    format!("SHM-MEMPOOL-TEST-CHILD-DONE {test}")
}

/// Prints the marker; the last line of every child side that ends by itself.
pub(crate) fn child_done(test: &str) {
    println!("{}", done_marker(test));
}

/// A command that runs the child side of `test` with `arg`: the test binary
/// with `--exact <test> --nocapture --test-threads=1`.
pub(crate) fn child_command(test: &str, arg: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, test)
        .env(ARG_VAR, arg);
    cmd
}

/// What a finished process left.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    /// Asserts that the child side of `test` ran and passed.
    pub(crate) fn assert_child_passed(&self, test: &str) {
        assert!(
            self.status.success() && self.stdout.contains(&done_marker(test)),
            "child side of {test} failed: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// The lines a child printed, without the harness's `test NAME ... ` prefix
/// on the first one.
pub(crate) fn child_lines(stdout: &str) -> impl Iterator<Item = &str> {
    stdout.lines().map(|line| match line.split_once(" ... ") {
        Some((harness, rest)) if harness.starts_with("test ") => rest,
        _ => line,
    })
}

/// A running child whose stdout is read line by line on a thread (each line
/// forwarded to [`line`](Running::line) and kept for the end) and whose
/// stderr is collected on another, so a chatty child never blocks on a full
/// pipe. Killed and reaped on drop if still running: a failing test leaves
/// no process behind.
#[derive(Debug)]
pub(crate) struct Running {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    /// Spawns the child side of `test` with `arg` (stdin closed).
    pub(crate) fn child(test: &str, arg: &str) -> Self {
        let mut child = child_command(test, arg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the test binary");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                all.push_str(&line);
                all.push('\n');
                // The harness prints "test NAME ... " with no newline before
                // the test runs: the child's first line follows it.
                let line = match line.split_once(" ... ") {
                    Some((harness, rest)) if harness.starts_with("test ") => rest.to_owned(),
                    _ => line,
                };
                let _ = tx.send(line);
            }
            all
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = err.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        });
        Running {
            child: Some(child),
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// The child's pid.
    pub(crate) fn id(&self) -> u32 {
        self.child.as_ref().expect("not yet waited").id()
    }

    /// The next line the child prints, waiting at most `timeout`; panics
    /// (after killing the child, with everything it printed) if none came.
    pub(crate) fn line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(e) => {
                let pid = self.id();
                let out = self.kill9();
                panic!("child {pid} printed no line within {timeout:?} ({e}): {out:#?}")
            }
        }
    }

    /// Lines until one that starts with `prefix`, which it returns (the
    /// rest of the line); the lines before it are returned too.
    pub(crate) fn until(&mut self, prefix: &str, timeout: Duration) -> (Vec<String>, String) {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.line(left);
            if let Some(rest) = line.strip_prefix(prefix) {
                return (before, rest.trim().to_owned());
            }
            before.push(line);
        }
    }

    /// Whether the child has exited (reaping it if so; the output stays).
    pub(crate) fn has_exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("not yet waited");
        matches!(child.try_wait(), Ok(Some(_)))
    }

    /// Sends `SIGKILL` (`kill(2)`) unless the child already exited, then
    /// reaps it, so its pid is gone: what it held belongs to a dead process.
    pub(crate) fn kill9(&mut self) -> Finished {
        let child = self.child.as_mut().expect("not yet waited");
        if child.try_wait().expect("try_wait").is_none() {
            let pid = child.id() as libc::pid_t;
            // SAFETY: kill(2) on our own child, which has not been reaped
            // (try_wait just said so, and only this handle reaps it), so the
            // pid cannot have been reused by another process.
            let ret = unsafe { libc::kill(pid, libc::SIGKILL) };
            assert_eq!(ret, 0, "kill -9 {pid}: {}", std::io::Error::last_os_error());
        }
        self.wait(HANG)
    }

    /// Waits at most `timeout` for the process to exit; on timeout kills it
    /// and panics with whatever it printed.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("waited once");
        let mut status = None;
        let exited = wait_until(timeout, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stdout = self.stdout.take().map(|h| h.join().unwrap_or_default());
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
        let (stdout, stderr) = (stdout.unwrap_or_default(), stderr.unwrap_or_default());
        assert!(
            exited,
            "child {} still running after {timeout:?}: killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            child.id()
        );
        Finished {
            status: status.expect("exited"),
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
