//! [`ProcessId`]: a process named so that a reused pid is not mistaken for it.

use std::fs;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Once;

use crate::liveness;

/// `ProcessId::current()` packed with `to_word`, or 0 before the first call
/// and in a freshly forked child (reset by a `pthread_atfork` handler).
static CURRENT: AtomicU64 = AtomicU64::new(0);
/// How many `fork`s lie between the first process and this one: 0 in the
/// process that started, +1 in each child (bumped by the `pthread_atfork`
/// handler). A handle remembers the value it was made under; see [`ForkEpoch`].
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: atomic stores and close(2) only. The child is
    // single-threaded here.
    CURRENT.store(0, Ordering::Relaxed);
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    liveness::forget_in_child();
}

#[inline]
fn register_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only touches atomics, which is
        // async-signal-safe as a post-fork child handler must be.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// Which process a handle was made in, told apart from its `fork`ed children.
///
/// A role (a ring's producer or consumer) or a held pool block belongs to the
/// process that took it. A child made by `fork(2)` inherits a byte copy of the
/// handle, which must not act as a second owner nor release the parent's role
/// on drop. Handles store a `ForkEpoch` when made and check
/// [`is_current`](ForkEpoch::is_current) before acting: one relaxed atomic
/// load.
///
/// The epoch moves on in the child through a `pthread_atfork` handler, so it
/// sees every `fork` made through libc (`fork`, `std::process::Command` after
/// its own `fork`), but not a raw `clone(2)` syscall without `CLONE_VM`, which
/// skips the handlers.
///
/// # Examples
///
/// ```
/// use shm_segment::ForkEpoch;
/// let epoch = ForkEpoch::now();
/// assert!(epoch.is_current()); // same process: nothing forked since
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkEpoch(u32);

impl ForkEpoch {
    /// The calling process's epoch. Registers the `pthread_atfork` handler on
    /// first use, so any `fork` after a handle exists is seen.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = shm_segment::ForkEpoch::now();
    /// assert_eq!(a, shm_segment::ForkEpoch::now());
    /// ```
    #[inline]
    pub fn now() -> Self {
        register_atfork();
        ForkEpoch(FORK_GENERATION.load(Ordering::Relaxed))
    }

    /// Whether the calling process is the one this epoch was taken in (false
    /// in a `fork`ed child and its descendants). One relaxed load.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_segment::ForkEpoch::now().is_current());
    /// ```
    #[inline]
    pub fn is_current(self) -> bool {
        FORK_GENERATION.load(Ordering::Relaxed) == self.0
    }
}

/// A pid plus the process's start time (clock ticks after boot, field 22 of
/// `/proc/PID/stat`). Pids are reused; the pair is not, so it can record who
/// owns a block or created a segment, and [`is_alive`](ProcessId::is_alive)
/// tells whether that very process still runs. No heartbeats needed.
///
/// # Examples
///
/// ```
/// use shm_segment::ProcessId;
/// let me = ProcessId::current();
/// assert_eq!(me.pid, std::process::id());
/// assert!(me.is_alive());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProcessId {
    /// The process id.
    pub pid: u32,
    /// Start time in clock ticks after boot (a random stand-in below 2^42 for
    /// the current process when `/proc` is not there); 0 when unknown.
    pub start_time: u64,
}

impl ProcessId {
    /// The calling process. Cached after the first call (it costs one
    /// atomic load), and recomputed in a child made by `fork(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_segment::ProcessId::current().start_time > 0);
    /// ```
    #[inline]
    pub fn current() -> Self {
        let cached = CURRENT.load(Ordering::Relaxed);
        if cached != 0 {
            return Self::from_word(cached);
        }
        Self::first_current()
    }

    /// [`current`](ProcessId::current)'s first call in a process (and the
    /// first after a `fork`): reads the start time and caches the answer.
    #[cold]
    #[inline(never)]
    fn first_current() -> Self {
        register_atfork();
        let pid = std::process::id();
        let me = ProcessId {
            pid,
            // Without /proc, a random stand-in keeps the id unique (two
            // containers both have a pid 1).
            start_time: start_time(pid).unwrap_or_else(random_start),
        };
        liveness::register(me.pid, me.start_time);
        CURRENT.store(me.to_word(), Ordering::Relaxed);
        me
    }

    /// The process that now has `pid`, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::ProcessId;
    /// assert_eq!(ProcessId::of(std::process::id()), Some(ProcessId::current()));
    /// assert_eq!(ProcessId::of(u32::MAX), None);
    /// ```
    pub fn of(pid: u32) -> Option<Self> {
        Some(ProcessId {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// Whether this very process (same pid *and* start time) still exists.
    ///
    /// The kernel answers: the process holds a lock on its liveness file
    /// (see [`liveness`](crate::liveness)), which the kernel drops the
    /// moment it dies, in whatever pid namespace it runs, under `hidepid`,
    /// and while its main thread has exited but others still run. A dying
    /// process counts as gone as soon as its descriptors are closed. A
    /// process that has no liveness file to ask (it could not make one, or
    /// its `/dev/shm` is not ours) is judged from `/proc/PID/stat`, which is
    /// wrong across pid namespaces: the documented fallback.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::ProcessId;
    /// let mut me = ProcessId::current();
    /// me.start_time += 1; // a different process that once had our pid
    /// assert!(!me.is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        if *self == Self::current() {
            return true;
        }
        match liveness::check(self.pid, self.start_time) {
            liveness::Verdict::Alive => true,
            liveness::Verdict::Dead => false,
            liveness::Verdict::Unknown => self.is_alive_in_proc(),
        }
    }

    /// The fallback of [`is_alive`](Self::is_alive): `/proc/PID/stat` shows
    /// this pid with this start time, not a zombie.
    fn is_alive_in_proc(&self) -> bool {
        match read_stat(self.pid) {
            Some((state, start)) => state != 'Z' && state != 'X' && start == self.start_time,
            None => false,
        }
    }
    /// The one bit of an owner word that [`to_word`](Self::to_word) never
    /// sets, free for a structure's own tag (the pool marks an owner slot
    /// that a reclaimer took over from a dead process with it), and that
    /// [`from_word`](Self::from_word) ignores. The layout of an owner word:
    /// pid in bits 0-21, start time in bits 22-62, this tag in bit 63.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::ProcessId;
    /// let me = ProcessId::current();
    /// assert_eq!(me.to_word() & ProcessId::WORD_TAG, 0);
    /// assert_eq!(ProcessId::from_word(me.to_word() | ProcessId::WORD_TAG), me);
    /// ```
    pub const WORD_TAG: u64 = 1 << 63;

    /// Packs the identity into one word (pid in the low 22 bits, as Linux
    /// pids are below `PID_MAX_LIMIT` = 2^22; start time in the next 41, which
    /// in clock ticks since boot lasts centuries; bit 63, [`WORD_TAG`](Self::WORD_TAG),
    /// is never set), so a single compare-and-swap can claim a role in
    /// shared memory. 0 means nobody.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::ProcessId;
    /// let me = ProcessId::current();
    /// assert_ne!(me.to_word(), 0);
    /// assert_eq!(ProcessId::from_word(me.to_word()), me);
    /// ```
    #[inline]
    pub fn to_word(self) -> u64 {
        ((self.start_time << PID_BITS) | u64::from(self.pid & PID_MASK)) & !Self::WORD_TAG
    }

    /// Unpacks [`to_word`](ProcessId::to_word), ignoring [`WORD_TAG`](Self::WORD_TAG).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::ProcessId;
    /// assert_eq!(ProcessId::from_word(0), ProcessId::default());
    /// ```
    #[inline]
    pub fn from_word(word: u64) -> Self {
        let word = word & !Self::WORD_TAG;
        ProcessId {
            pid: (word & u64::from(PID_MASK)) as u32,
            start_time: word >> PID_BITS,
        }
    }
}

const PID_BITS: u32 = 22;

/// A random start time below 2^41 (so that it survives [`ProcessId::to_word`]
/// and leaves [`ProcessId::WORD_TAG`] clear), never 0.
fn random_start() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let raw = if n == 8 {
        u64::from_ne_bytes(bytes)
    } else {
        // No getrandom: the clock is enough to tell two processes apart.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    };
    (raw >> (PID_BITS + 1)).max(1)
}
const PID_MASK: u32 = (1 << PID_BITS) - 1;

fn start_time(pid: u32) -> Option<u64> {
    read_stat(pid).map(|(_, start)| start)
}

/// `(state, starttime)` from `/proc/PID/stat`.
fn read_stat(pid: u32) -> Option<(char, u64)> {
    if pid == 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), starttime is field 22: 18 more to skip.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_words_leave_the_tag_bit_clear_and_round_trip() {
        for _ in 0..1000 {
            let id = ProcessId {
                pid: (1 << 22) - 1,
                start_time: random_start(),
            };
            let w = id.to_word();
            assert_eq!(w & ProcessId::WORD_TAG, 0, "{id:?}");
            assert_eq!(ProcessId::from_word(w), id);
            assert_eq!(ProcessId::from_word(w | ProcessId::WORD_TAG), id);
        }
    }

    #[test]
    fn parses_a_command_name_with_spaces_and_parens() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_dead_child_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id());
        child.wait().unwrap();
        if let Some(id) = id {
            assert!(!id.is_alive());
        }
    }
}
