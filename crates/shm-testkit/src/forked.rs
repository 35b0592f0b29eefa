//! `fork(2)` in tests, for the targets that must fork a copy of themselves
//! (inherited handles, anonymous memory): a [`Forked`] child that runs a
//! closure and `_exit`s, and [`run_cases`], the `main` of such a target.
//!
//! `fork` in a multi-threaded process is a trap (only the forking thread
//! survives, holding whatever locks the others held), so these targets run
//! without the test harness (`harness = false`): `main` is single-threaded,
//! runs each case, prints `N passed, M failed` and exits non-zero on failure.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// What a case returns: `Err` says what went wrong.
pub type CaseResult = Result<(), String>;
/// A named case.
pub type Case = (&'static str, fn() -> CaseResult);

/// Exit code of a child's body that did what it should.
pub const OK: i32 = 0;
/// Exit code of a child's body that saw something wrong.
pub const MISMATCH: i32 = 2;
/// Exit code of a child's body that timed out waiting.
pub const TIMED_OUT: i32 = 3;
/// Exit code of a child whose body panicked.
pub const PANICKED: i32 = 101;

/// A forked child: killed and reaped on drop unless already reaped, so a
/// failing case leaves no process behind.
#[derive(Debug)]
pub struct Forked {
    pid: libc::pid_t,
    reaped: bool,
}

impl Forked {
    /// Forks; the child runs `body` and `_exit`s with its return value
    /// ([`PANICKED`] if it panicked). Only call from the single main thread
    /// of a `harness = false` target.
    pub fn spawn(body: impl FnOnce() -> i32) -> Result<Forked, String> {
        // Buffered output would be printed twice, once by each process.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // SAFETY: the caller runs single-threaded (no test harness), so the
        // child starts in a consistent state.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => {
                let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(PANICKED);
                let _ = std::io::stderr().flush();
                // SAFETY: ends the child at once, without running destructors,
                // the parent's atexit handlers, or `main`'s loop.
                unsafe { libc::_exit(code) }
            }
            pid => Ok(Forked { pid, reaped: false }),
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Waits at most `timeout` for the child's exit code (`waitpid` with
    /// `WNOHANG` in a sleeping loop); kills it on timeout.
    pub fn wait(&mut self, timeout: Duration) -> Result<i32, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child, writing into a local int.
            let ret = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if ret == self.pid {
                self.reaped = true;
                if libc::WIFEXITED(status) {
                    return Ok(libc::WEXITSTATUS(status));
                }
                return Err(format!("child {} died: wait status {status:#x}", self.pid));
            }
            if ret == -1 {
                return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "child {} still running after {timeout:?}",
                    self.pid
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits at most `timeout` and fails unless the child exited with [`OK`].
    pub fn passed(&mut self, what: &str, timeout: Duration) -> CaseResult {
        let code = self.wait(timeout)?;
        check(code == OK, || format!("{what}: child exit code {code}"))
    }

    /// Kills and reaps the child, unless it was reaped already.
    pub fn kill(&mut self) {
        if !self.reaped {
            // SAFETY: signals and reaps our own, not yet reaped child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
            self.reaped = true;
        }
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `Ok` if `cond`, else `Err(what())`.
pub fn check(cond: bool, what: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// The `main` of a `harness = false` target: runs the cases whose name
/// contains one of the bare-word arguments (all without one), lists them
/// with `--list`, ignores other flags (`--nocapture`…), prints
/// `N passed, M failed`, and exits with 1 if any failed.
pub fn run_cases(cases: &[Case]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in cases {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed) = (0, 0);
    for &(name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let result = catch_unwind(case).unwrap_or_else(|_| Err("panicked".into()));
        match result {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
