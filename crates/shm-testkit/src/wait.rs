//! Waits that back off and end: CI machines have 2 cores, so a spinning test
//! must not starve the thread or process it waits for, and a bug must be a
//! clear failure, never a hung CI.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anything in these tests may take before it counts as a hang;
/// generous, for a loaded 2-core CI machine running debug builds.
pub const HANG: Duration = Duration::from_secs(60);

/// Backs off in a retry loop: spins a little, then yields, then sleeps for
/// 50 µs; panics with `what` once the deadline passed or another thread
/// raised `abort` ([`with_abort`](Patience::with_abort)).
#[derive(Debug)]
pub struct Patience<'a> {
    what: &'a str,
    deadline: Instant,
    abort: Option<&'a AtomicBool>,
    round: u32,
}

impl<'a> Patience<'a> {
    /// Waits at most `timeout` in all (not per wait).
    pub fn new(what: &'a str, timeout: Duration) -> Self {
        Patience {
            what,
            deadline: Instant::now() + timeout,
            abort: None,
            round: 0,
        }
    }

    /// Also gives up (panics) when `abort` is set by another thread.
    pub fn with_abort(mut self, abort: &'a AtomicBool) -> Self {
        self.abort = Some(abort);
        self
    }

    /// Progress was made: the next wait starts with spinning again.
    pub fn reset(&mut self) {
        self.round = 0;
    }

    /// One back-off step; panics past the deadline or on abort.
    pub fn wait(&mut self) {
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
pub struct AbortOnPanic<'a>(pub &'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
/// Yields at first, then sleeps 200 µs between tries.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
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
/// a hang becomes an assertion, not a stuck CI. Returns what `body` returns;
/// a panic in `body` is re-raised here.
pub fn within<T: Send + 'static>(
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
