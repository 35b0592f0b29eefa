//! Helpers shared by the integration tests of `shm-ring`: unique segment
//! names, bounded waits that back off, a small deterministic PRNG, the ring's
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
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

/// Names the test whose child side the process runs.
pub(crate) const ROLE_VAR: &str = "SHM_RING_TEST_ROLE";
/// One string argument for the child (a segment name, an id, a start sequence).
pub(crate) const ARG_VAR: &str = "SHM_RING_TEST_ARG";
/// How long anything in these tests may take before it counts as a hang;
/// generous, for a loaded 2-core CI machine running debug builds.
pub(crate) const HANG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The shared layout, read from the source (crates/shm-ring/src/shared.rs and
// mpmc.rs). Only tests that simulate a dead or hostile peer use these.

/// `shared::CONTROL_OFFSET`: the control block starts here.
pub(crate) const CONTROL_OFFSET: usize = 128;
/// `Control::tail.pos`: the first word of the control block.
pub(crate) const TAIL_POS: usize = CONTROL_OFFSET;
/// `Control::tail.owner`: the SPSC producer's claim.
pub(crate) const TAIL_OWNER: usize = CONTROL_OFFSET + 8;
/// `Control::head.pos`: after the cache-padded tail side.
pub(crate) const HEAD_POS: usize = CONTROL_OFFSET + std::mem::size_of::<CachePadded<[u64; 2]>>();
/// `Control::head.owner`: the SPSC consumer's claim.
pub(crate) const HEAD_OWNER: usize = HEAD_POS + 8;
/// Words of the control block after the two sides: futex words and counts
/// (items, room) and the flags word, one cache line each.
pub(crate) const CONTROL_LINES: usize = 5;
/// The control block's size.
pub(crate) const CONTROL_SIZE: usize = CONTROL_LINES * std::mem::size_of::<CachePadded<u64>>();

/// Offset of the first slot in a region laid out for `capacity` slots of
/// `slot_size` bytes, when the region is exactly `required_size` bytes long
/// (the slots are the last thing in the layout).
pub(crate) fn slots_offset(required_size: usize, capacity: usize, slot_size: usize) -> usize {
    required_size - capacity * slot_size
}

/// Size of an MPMC slot holding a `T`: `#[repr(C)] { seq: AtomicU64, value: T }`.
pub(crate) fn mpmc_slot_size<T>() -> usize {
    let align = std::mem::align_of::<T>().max(8);
    (8 + std::mem::size_of::<T>()).next_multiple_of(align)
}

// ---------------------------------------------------------------------------
// Names and cleanup.

/// A fresh POSIX name, `/shm-test-<what>-<pid>-<counter>`, unique in this
/// process and (through the pid) on the host.
pub(crate) fn posix_name(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/shm-test-{what}-{}-{n}", std::process::id())
}

// ---------------------------------------------------------------------------
// Waiting.

/// Backs off in a retry loop: spins a little, then yields, then sleeps for a
/// few microseconds, so that a spinning test never starves the thread or
/// process it waits for on a 2-core machine; and panics with `what` once the
/// deadline passed or another thread raised `abort`, so a bug is a clear
/// failure, never a hung CI.
#[derive(Debug)]
pub(crate) struct Patience<'a> {
    what: &'a str,
    deadline: Instant,
    abort: Option<&'a AtomicBool>,
    round: u32,
}

impl<'a> Patience<'a> {
    /// Waits at most `timeout` in all (not per wait).
    pub(crate) fn new(what: &'a str, timeout: Duration) -> Self {
        Patience {
            what,
            deadline: Instant::now() + timeout,
            abort: None,
            round: 0,
        }
    }

    /// Also gives up (panics) when `abort` is set by another thread.
    pub(crate) fn with_abort(mut self, abort: &'a AtomicBool) -> Self {
        self.abort = Some(abort);
        self
    }

    /// Progress was made: the next wait starts with spinning again.
    pub(crate) fn reset(&mut self) {
        self.round = 0;
    }

    /// One back-off step; panics past the deadline or on abort.
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
            if let Some(abort) = self.abort {
                assert!(
                    !abort.load(Ordering::Relaxed),
                    "{}: gave up because another thread failed",
                    self.what
                );
            }
            assert!(
                Instant::now() < self.deadline,
                "{}: no progress before the deadline (hung?)",
                self.what
            );
        }
    }
}

/// Sets the flag when dropped during a panic: put one in each thread of a
/// test so that the others stop waiting for it.
#[derive(Debug)]
pub(crate) struct AbortOnPanic<'a>(pub(crate) &'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
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
    format!("SHM-RING-TEST-CHILD-DONE {test}")
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

/// A running process whose output is collected on two threads (so a chatty
/// child never blocks on a full pipe), killed on drop if still running: a
/// failing test leaves no process behind.
#[derive(Debug)]
pub(crate) struct Running {
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

fn collect(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

impl Running {
    /// Spawns `cmd` with stdout and stderr piped (stdin closed).
    pub(crate) fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the test binary");
        let stdout = collect(child.stdout.take());
        let stderr = collect(child.stderr.take());
        Running {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Spawns the child side of `test` with `arg`.
    pub(crate) fn child(test: &str, arg: &str) -> Self {
        Self::spawn(&mut child_command(test, arg))
    }

    /// The child's pid.
    pub(crate) fn id(&self) -> u32 {
        self.child.as_ref().expect("not yet waited").id()
    }

    /// Whether the child has exited (reaping it if so; the output stays).
    pub(crate) fn has_exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("not yet waited");
        matches!(child.try_wait(), Ok(Some(_)))
    }

    /// Sends `SIGKILL` (`kill(2)`) unless the child already exited, then
    /// reaps it, so that its pid is gone (a role it held now belongs to a
    /// dead process).
    pub(crate) fn kill9(mut self) -> Finished {
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
    pub(crate) fn wait(mut self, timeout: Duration) -> Finished {
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
