//! What every bench that runs peers needs, written once: the watchdog that
//! ends a run whose step hangs, the CPU list and pinning, a child's safety
//! nets, and iceoryx2's private domain. Each bench includes it with
//! `mod common;` and uses the part it needs.

// Each bench target compiles its own copy and uses a subset of it.
#![allow(dead_code)]

pub(crate) mod iox_domain;
pub(crate) mod msg_peers;
pub(crate) mod ring_peers;

use std::sync::OnceLock;

// ---------------------------------------------------------------------------
// Watchdog
// ---------------------------------------------------------------------------

extern "C" fn on_alarm(_signal: libc::c_int) {
    const MSG: &[u8] = b"\nbench: a step ran past its time limit (a hung peer?); exiting\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is a static buffer.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(3);
    }
}

/// Makes `SIGALRM` end the process with a message (see [`watchdog`]).
pub(crate) fn install_watchdog() {
    let handler: extern "C" fn(libc::c_int) = on_alarm;
    // SAFETY: installs a handler that only calls async-signal-safe functions.
    let previous = unsafe { libc::signal(libc::SIGALRM, handler as libc::sighandler_t) };
    assert_ne!(previous, libc::SIG_ERR, "signal(SIGALRM)");
}

/// Arms (`secs > 0`) or disarms (`0`) the watchdog for the next step.
pub(crate) fn watchdog(secs: u32) {
    // SAFETY: alarm(2) has no memory-safety preconditions.
    unsafe { libc::alarm(secs) };
}

// ---------------------------------------------------------------------------
// CPUs and pinning
// ---------------------------------------------------------------------------

/// The CPUs this process may run on, read once: call it before anything is
/// pinned.
pub(crate) fn cpus() -> &'static [usize] {
    static CPUS: OnceLock<Vec<usize>> = OnceLock::new();
    CPUS.get_or_init(|| current_affinity().unwrap_or_default())
}

/// The CPUs the calling thread may run on now.
pub(crate) fn current_affinity() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is a valid buffer of that size.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return None;
    }
    let max = libc::CPU_SETSIZE as usize;
    Some(
        (0..max)
            // SAFETY: every index is below CPU_SETSIZE, the size of the set.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect(),
    )
}

/// Pins the calling thread to the given CPUs; false if the kernel refused.
pub(crate) fn set_affinity(list: &[usize]) -> bool {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // CPU_SET checks nothing, so keep every index inside the set.
    for &cpu in list.iter().filter(|&&cpu| cpu < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE (filtered above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid set of that size.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) == 0 }
}

/// The CPU for "slot" `k` (0: this side, 1: the peer), or `None` when there
/// is only one CPU to run on (then nothing is pinned).
pub(crate) fn cpu_for(k: usize) -> Option<usize> {
    let list = cpus();
    (list.len() >= 2).then(|| list[k % list.len()])
}

/// Pins the calling thread to `cpu`, if any (best effort).
pub(crate) fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        set_affinity(&[cpu]);
    }
}

/// Pins the calling thread to slot `k`'s CPU (see [`cpu_for`]).
pub(crate) fn pin_slot(k: usize) {
    pin(cpu_for(k));
}

/// Pins the calling thread for its lifetime, then gives it back its CPUs.
pub(crate) struct PinGuard {
    old: Option<Vec<usize>>,
}

impl PinGuard {
    pub(crate) fn slot(k: usize) -> Self {
        let old = current_affinity();
        pin_slot(k);
        PinGuard { old }
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            set_affinity(old);
        }
    }
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

/// A child's safety nets, first thing in its main: it dies with its parent
/// (`PR_SET_PDEATHSIG`), and exits at once if the parent (whose pid is in
/// `parent_env`) died before that was armed.
pub(crate) fn die_with_parent(parent_env: &str) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a plain signal number. The parent
    // spawns children from its main thread, which lives as long as it does.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let parent: i32 = env(parent_env).parse().expect("parent pid");
    // SAFETY: getppid(2) has no preconditions.
    if unsafe { libc::getppid() } != parent {
        std::process::exit(1); // the parent died before the prctl
    }
}

/// An environment variable the parent set for its child.
pub(crate) fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is not set"))
}
