//! Helpers shared by the integration tests: unique names, cleanup guards,
//! bounded waits, and child processes that are this very test binary run
//! again with a role.
//!
//! # Child processes
//!
//! The test harness runs tests on several threads, and `fork` in a threaded
//! process is a trap. So a test that needs a second process re-executes the
//! test binary (`std::env::current_exe()`) with
//! `--exact <test> --nocapture --test-threads=1` and the environment variable
//! [`ROLE_VAR`] set to the test's name. The same test function sees the
//! variable ([`is_child`]) and runs its child side instead. The child ends by
//! printing [`child_done`]'s marker, which the parent looks for: a typo in
//! the test name would otherwise run no test at all and still exit 0.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shm_segment::PosixShm;

/// Names the test whose child side the process runs.
pub(crate) const ROLE_VAR: &str = "SHM_TEST_ROLE";
/// One string argument for the child (a key, an id, a name, a list of names).
pub(crate) const ARG_VAR: &str = "SHM_TEST_ARG";
/// How long a parent waits for a child; generous, for a loaded 2-core CI machine.
pub(crate) const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one side of a handshake waits for the other.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh POSIX name, `/shm-test-<what>-<pid>-<counter>`, unique in this
/// process and (through the pid) on the host.
pub(crate) fn posix_name(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/shm-test-{what}-{}-{n}", std::process::id())
}

/// The path in `/dev/shm` of a POSIX name.
pub(crate) fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(shm_segment::SHM_DIR).join(name.trim_start_matches('/'))
}

/// Unlinks a POSIX name on drop, also when the test panics; a name already
/// gone is fine. For segments that someone else (Python, a child) created.
#[derive(Debug)]
pub(crate) struct UnlinkGuard(pub(crate) String);

impl Drop for UnlinkGuard {
    fn drop(&mut self) {
        let _ = PosixShm::unlink_name(&self.0);
    }
}

/// Removes a plain file (a planted file or symlink) on drop, also on panic.
#[derive(Debug)]
pub(crate) struct FileGuard(pub(crate) PathBuf);

impl Drop for FileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
/// Spins a little, then yields, then sleeps, so that it never starves the
/// other process on a 2-core machine.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut spins = 0u32;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        spins += 1;
        if spins < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Whether this process runs the child side of `test`. Panics when it was
/// started for another test's child side, which `--exact` should make
/// impossible.
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
    format!("SHM-TEST-CHILD-DONE {test}")
}

/// Prints the marker; the last line of every child side.
pub(crate) fn child_done(test: &str) {
    println!("{}", done_marker(test));
}

/// The harness arguments that run exactly `test`, on one thread, uncaptured.
pub(crate) fn harness_args(test: &str) -> [String; 4] {
    [
        "--exact".into(),
        test.into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ]
}

/// The test binary itself.
pub(crate) fn test_exe() -> PathBuf {
    std::env::current_exe().expect("current_exe")
}

/// A command that runs the child side of `test` with `arg`.
pub(crate) fn child_command(test: &str, arg: &str) -> Command {
    let mut cmd = Command::new(test_exe());
    cmd.args(harness_args(test));
    child_env(&mut cmd, test, arg);
    cmd
}

/// Sets the role and argument variables on any command (for wrappers such
/// as `unshare ... <test binary> --exact ...`).
pub(crate) fn child_env(cmd: &mut Command, test: &str, arg: &str) {
    cmd.env(ROLE_VAR, test).env(ARG_VAR, arg);
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
    pub(crate) fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = collect(child.stdout.take());
        let stderr = collect(child.stderr.take());
        Ok(Running {
            child: Some(child),
            stdout,
            stderr,
        })
    }

    /// The child's pid.
    pub(crate) fn id(&self) -> u32 {
        self.child.as_ref().expect("not yet waited").id()
    }

    /// Whether the child has exited (without reaping the output).
    pub(crate) fn has_exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("not yet waited");
        matches!(child.try_wait(), Ok(Some(_)))
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

/// Runs `cmd` to the end (at most [`CHILD_TIMEOUT`]).
pub(crate) fn run(cmd: &mut Command) -> std::io::Result<Finished> {
    Ok(Running::spawn(cmd)?.wait(CHILD_TIMEOUT))
}

/// Runs the child side of `test` with `arg` and asserts that it passed.
pub(crate) fn run_child(test: &str, arg: &str) -> Finished {
    let out = run(&mut child_command(test, arg)).expect("spawn the test binary");
    out.assert_child_passed(test);
    out
}

/// Runs `program` with `args` (at most [`CHILD_TIMEOUT`]); `None` when it
/// cannot be started at all (not installed, not executable).
pub(crate) fn probe(program: &str, args: &[&str]) -> Option<Finished> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    Running::spawn(&mut cmd).ok().map(|r| r.wait(CHILD_TIMEOUT))
}

/// Prints a skip notice that stands out in `--nocapture` and in CI logs.
pub(crate) fn skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
}

/// Makes the child started by `cmd` find `fd` as its descriptor 3, without
/// close-on-exec (`dup2` in the forked child, before `exec`). The caller keeps
/// `fd` open until the child is spawned.
pub(crate) fn inherit_as_fd3(cmd: &mut Command, fd: std::os::fd::BorrowedFd<'_>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    const TARGET: libc::c_int = 3;
    let raw = fd.as_raw_fd();
    let hook = move || {
        let ret = if raw == TARGET {
            // dup2 onto itself would keep FD_CLOEXEC: clear the flag instead.
            // SAFETY: fcntl on a descriptor that is open in this process;
            // async-signal-safe, as required between fork and exec.
            unsafe { libc::fcntl(TARGET, libc::F_SETFD, 0) }
        } else {
            // SAFETY: dup2 of a descriptor that is open in this process onto
            // 3 (closing whatever was there); async-signal-safe. The new
            // descriptor does not have FD_CLOEXEC.
            unsafe { libc::dup2(raw, TARGET) }
        };
        if ret == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: the hook runs in the forked child before exec; it only calls
    // async-signal-safe functions (dup2, fcntl, reading errno), allocates
    // nothing and takes no locks.
    unsafe { cmd.pre_exec(hook) };
}

/// The descriptor a child inherited through [`inherit_as_fd3`], checked to be
/// open, taken over as an owned descriptor.
pub(crate) fn take_inherited_fd3() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let link =
        std::fs::read_link("/proc/self/fd/3").expect("descriptor 3 is not open in the child");
    eprintln!("child: fd 3 is {}", link.display());
    // SAFETY: descriptor 3 is open (checked above); it was put there by the
    // parent for this child, and nothing else in this process owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(3) }
}
