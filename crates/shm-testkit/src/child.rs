//! Child processes that are this very test binary run again with a role.
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
//! parent ([`Running::line`]), so a parent can wait for "ready" or for what
//! a child reports while the child keeps running.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::wait::{wait_until, HANG};

/// Names the test whose child side the process runs.
pub const ROLE_VAR: &str = "SHM_TEST_ROLE";
/// One string argument for the child (a key, an id, a name, a list of names).
pub const ARG_VAR: &str = "SHM_TEST_ARG";

/// Whether this process runs the child side of `test`. Panics when it was
/// started for another test's child side, which `--exact` makes impossible.
pub fn is_child(test: &str) -> bool {
    match std::env::var(ROLE_VAR) {
        Ok(role) if role == test => true,
        Ok(role) => panic!("started as the child of {role:?}, but running {test:?}"),
        Err(_) => false,
    }
}

/// The child's argument ([`ARG_VAR`]).
pub fn child_arg() -> String {
    std::env::var(ARG_VAR).unwrap_or_else(|_| panic!("{ARG_VAR} is not set in the child"))
}

/// The marker a child prints when its side finished with every assertion held.
pub fn done_marker(test: &str) -> String {
    format!("SHM-TEST-CHILD-DONE {test}")
}

/// Prints the marker; the last line of every child side that ends by itself.
pub fn child_done(test: &str) {
    println!("{}", done_marker(test));
}

/// The harness arguments that run exactly `test`, on one thread, uncaptured.
pub fn harness_args(test: &str) -> [String; 4] {
    [
        "--exact".into(),
        test.into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ]
}

/// The test binary itself.
pub fn test_exe() -> PathBuf {
    std::env::current_exe().expect("current_exe")
}

/// A command that runs the child side of `test` with `arg`: the test binary
/// with [`harness_args`] and [`child_env`].
pub fn child_command(test: &str, arg: &str) -> Command {
    let mut cmd = Command::new(test_exe());
    cmd.args(harness_args(test));
    child_env(&mut cmd, test, arg);
    cmd
}

/// Sets the role and argument variables on any command (for wrappers such
/// as `unshare ... <test binary> --exact ...`).
pub fn child_env(cmd: &mut Command, test: &str, arg: &str) {
    cmd.env(ROLE_VAR, test).env(ARG_VAR, arg);
}

/// What a finished process left.
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// All it printed on stdout.
    pub stdout: String,
    /// All it printed on stderr.
    pub stderr: String,
}

impl Finished {
    /// Asserts that the child side of `test` ran and passed.
    pub fn assert_child_passed(&self, test: &str) {
        assert!(
            self.status.success() && self.stdout.contains(&done_marker(test)),
            "child side of {test} failed: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// Strips the harness's `test NAME ... ` prefix (printed with no newline
/// before the test runs) from the child's first line.
fn strip_harness(line: &str) -> &str {
    match line.split_once(" ... ") {
        Some((harness, rest)) if harness.starts_with("test ") => rest,
        _ => line,
    }
}

/// The lines a child printed, without the harness's `test NAME ... ` prefix
/// on the first one.
pub fn child_lines(stdout: &str) -> impl Iterator<Item = &str> {
    stdout.lines().map(strip_harness)
}

/// A running process whose stdout is read line by line on a thread (each
/// line forwarded to [`line`](Running::line) and kept for the end) and whose
/// stderr is collected on another, so a chatty child never blocks on a full
/// pipe. Killed and reaped on drop if still running: a failing test leaves
/// no process behind.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    /// Spawns `cmd` with stdout and stderr piped (stdin closed).
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            let mut reader = BufReader::new(out);
            let mut bytes = Vec::new();
            loop {
                bytes.clear();
                match reader.read_until(b'\n', &mut bytes) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&bytes);
                all.push_str(&text);
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let _ = tx.send(strip_harness(line).to_owned());
            }
            all
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = err.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        });
        Ok(Running {
            child: Some(child),
            lines,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    /// Spawns the child side of `test` with `arg`; panics if it cannot.
    pub fn child(test: &str, arg: &str) -> Self {
        Self::spawn(&mut child_command(test, arg)).expect("spawn the test binary")
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("not yet waited").id()
    }

    /// The next line the child prints, waiting at most `timeout`; panics
    /// (after killing the child, with everything it printed) if none came.
    pub fn line(&mut self, timeout: Duration) -> String {
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
    pub fn until(&mut self, prefix: &str, timeout: Duration) -> (Vec<String>, String) {
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
    pub fn has_exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("not yet waited");
        matches!(child.try_wait(), Ok(Some(_)))
    }

    /// Sends `SIGKILL` (`kill(2)`) unless the child already exited, then
    /// reaps it, so that its pid is gone (what it held now belongs to a dead
    /// process).
    pub fn kill9(&mut self) -> Finished {
        let child = self.child.as_mut().expect("not yet waited");
        if child.try_wait().expect("try_wait").is_none() {
            let pid = child.id() as libc::pid_t;
            // SAFETY: kill(2) on our own child, which has not been reaped
            // (try_wait just said so, and only this handle reaps it), so the
            // pid cannot have been reused by another process.
            let ret = unsafe { libc::kill(pid, libc::SIGKILL) };
            assert_eq!(ret, 0, "kill -9 {pid}: {}", std::io::Error::last_os_error());
        }
        self.finish(HANG)
    }

    /// Waits at most `timeout` for the process to exit; on timeout kills it
    /// and panics with whatever it printed.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        self.finish(timeout)
    }

    /// [`wait`](Running::wait) through a borrow, for [`kill9`](Running::kill9).
    fn finish(&mut self, timeout: Duration) -> Finished {
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

/// Runs `cmd` to the end (at most [`HANG`]).
pub fn run(cmd: &mut Command) -> std::io::Result<Finished> {
    Ok(Running::spawn(cmd)?.wait(HANG))
}

/// Runs the child side of `test` with `arg` and asserts that it passed.
pub fn run_child(test: &str, arg: &str) -> Finished {
    let out = run(&mut child_command(test, arg)).expect("spawn the test binary");
    out.assert_child_passed(test);
    out
}

/// Runs `program` with `args` (at most [`HANG`]); `None` when it cannot be
/// started at all (not installed, not executable).
pub fn probe(program: &str, args: &[&str]) -> Option<Finished> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    Running::spawn(&mut cmd).ok().map(|r| r.wait(HANG))
}

/// Whether `unshare ARGS true` works on this machine; when it does not,
/// prints a skip notice for `case` that says why, and returns false.
pub fn unshare_or_skip(case: &str, args: &[&str]) -> bool {
    let mut all: Vec<&str> = args.to_vec();
    all.push("true");
    match probe("unshare", &all) {
        Some(out) if out.status.success() => true,
        Some(out) => {
            skip(
                case,
                &format!("`unshare {}` refused: {}", all.join(" "), out.stderr.trim()),
            );
            false
        }
        None => {
            skip(case, "`unshare` is not installed");
            false
        }
    }
}

/// Prints a skip notice that stands out in `--nocapture` and in CI logs.
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
}

/// Makes the child started by `cmd` find `fd` as its descriptor 3, without
/// close-on-exec (`dup2` in the forked child, before `exec`). The caller keeps
/// `fd` open until the child is spawned.
pub fn inherit_as_fd3(cmd: &mut Command, fd: std::os::fd::BorrowedFd<'_>) {
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
pub fn take_inherited_fd3() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let link =
        std::fs::read_link("/proc/self/fd/3").expect("descriptor 3 is not open in the child");
    eprintln!("child: fd 3 is {}", link.display());
    // SAFETY: descriptor 3 is open (checked above); it was put there by the
    // parent for this child, and nothing else in this process owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(3) }
}
