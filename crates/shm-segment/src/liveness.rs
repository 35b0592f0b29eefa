//! Liveness that the kernel vouches for: each process that records its
//! [`ProcessId`](crate::ProcessId) in shared memory holds an open-file-description
//! lock (`F_OFD_SETLK`) on a small file named after that id, and the kernel
//! drops the lock the moment the process dies, however it dies.
//!
//! Why not `/proc/PID/stat`: it lies in exactly the places where shared
//! memory is shared. A holder in another pid namespace (a container started
//! with `--ipc=host`) has a pid that means another process here, or none;
//! `/proc` mounted with `hidepid` hides other users' processes; and a process
//! whose main thread has exited shows state `Z` while its other threads
//! still run. A lock held through a file in a shared directory has none of
//! these problems: whoever can see the file can ask the kernel whether its
//! lock is held (`F_OFD_GETLK`).
//!
//! **The directory.** `$SHM_LIVENESS_DIR` if set, else `/dev/shm/.shm-live`,
//! which peers sharing `/dev/shm` (the usual way to share memory between
//! containers) all see. It is made with mode `1777` (sticky, like `/tmp`)
//! and used only if it is a real directory with the sticky bit, owned by
//! root or by this user. Each file is `PID-STARTTIME`, made with `O_EXCL`,
//! mode `0644`, and write-locked on byte 0 for the life of the process.
//!
//! **A check** ([`is_alive`](crate::ProcessId::is_alive)) opens the file
//! read-only and asks for a read lock with `F_OFD_GETLK`: a conflict means
//! the holder lives. An unlocked file means it died: the checker removes
//! the file. No file (a peer that could not make one, or in a mount
//! namespace with another `/dev/shm`) falls back to `/proc`, with its lies.
//!
//! **Fork.** A child inherits the descriptor, and with it the lock, which
//! would keep a dead parent alive for as long as the child lives. So the
//! `pthread_atfork` child handler closes the child's copy (the lock stays
//! with the parent's descriptor), and the child makes its own file when it
//! first records its id. A child made by a raw `clone` syscall skips the
//! handler and does keep the parent's lock until it exits or execs
//! (`O_CLOEXEC`).
//!
//! **Cleanup.** A process that exits normally removes its file (`atexit`);
//! one that is killed leaves it unlocked, and the next checker or
//! [`sweep`] removes it.
//!
//! Not promised: a local user who can write the directory can make a file
//! for a process id that is not theirs and hold its lock, so that a dead
//! holder looks alive (its role is then never taken over); they cannot make
//! a live process look dead, as the sticky bit keeps them from removing its
//! file.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

/// The descriptor that holds this process's lock, or -1.
static LOCK_FD: AtomicI32 = AtomicI32::new(-1);
/// The pid that made the file at [`LOCK_PATH`]: the `atexit` handler of a
/// forked child must not remove its parent's file.
static LOCK_PID: AtomicI32 = AtomicI32::new(0);
/// The path of this process's file, for the `atexit` handler.
static LOCK_PATH: OnceLock<CString> = OnceLock::new();

/// The environment variable that moves the directory.
pub const DIR_VAR: &str = "SHM_LIVENESS_DIR";

/// The directory of the liveness files: `$SHM_LIVENESS_DIR` or
/// `/dev/shm/.shm-live`.
///
/// # Examples
///
/// ```
/// let dir = shm_segment::liveness::dir();
/// assert!(dir.is_absolute() || std::env::var_os("SHM_LIVENESS_DIR").is_some());
/// ```
pub fn dir() -> PathBuf {
    std::env::var_os(DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm/.shm-live"))
}

/// The directory, made if missing, or `None` when it is not one to trust.
fn usable_dir() -> Option<PathBuf> {
    let dir = dir();
    if std::fs::DirBuilder::new().mode(0o1777).create(&dir).is_ok() {
        // The umask may have taken bits off: set the mode exactly.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    }
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let trusted_owner = meta.uid() == 0 || meta.uid() == me;
    let sticky = meta.mode() & 0o1000 != 0;
    (meta.is_dir() && trusted_owner && sticky).then_some(dir)
}

fn file_name(pid: u32, start_time: u64) -> String {
    format!("{pid}-{start_time}")
}

fn ofd_lock(fd: i32, cmd: libc::c_int, kind: libc::c_int) -> Option<libc::flock> {
    // SAFETY: all-zero is a valid `flock`; the fields that matter are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 1;
    // l_pid must be 0 for OFD locks.
    // SAFETY: fcntl with an OFD lock command and a pointer to a local flock.
    let rc = unsafe { libc::fcntl(fd, cmd, &mut fl) };
    (rc == 0).then_some(fl)
}

/// Makes and locks this process's file. Best effort: on any failure the
/// process has no file, and checks of it fall back to `/proc`.
pub(crate) fn register(pid: u32, start_time: u64) {
    let Some(dir) = usable_dir() else { return };
    let path = dir.join(file_name(pid, start_time));
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: open with a NUL-terminated path; the result is checked.
    let mut fd = unsafe { libc::open(cpath.as_ptr(), flags | libc::O_EXCL, 0o644) };
    if fd < 0 {
        // A leftover of a dead process with the same id (another pid
        // namespace, or a killed one nobody checked): take it over if its
        // lock is free.
        // SAFETY: as above.
        fd = unsafe { libc::open(cpath.as_ptr(), flags, 0o644) };
        if fd < 0 {
            return;
        }
    }
    // The mode is set exactly, whatever the umask.
    // SAFETY: fchmod on the descriptor just opened.
    unsafe { libc::fchmod(fd, 0o644) };
    if ofd_lock(fd, libc::F_OFD_SETLK, libc::F_WRLCK).is_none() {
        // Someone else holds it: two live processes with one id. Leave it.
        // SAFETY: closes the descriptor opened above, owned here.
        unsafe { libc::close(fd) };
        return;
    }
    let old = LOCK_FD.swap(fd, Ordering::Relaxed);
    if old >= 0 {
        // SAFETY: the previous lock descriptor was owned by this module.
        unsafe { libc::close(old) };
    }
    LOCK_PID.store(pid as i32, Ordering::Relaxed);
    if LOCK_PATH.set(cpath.clone()).is_ok() {
        // SAFETY: registers a plain extern "C" function once.
        unsafe { libc::atexit(remove_at_exit) };
    }
}

/// In a `fork`ed child (from the `pthread_atfork` handler): drop the
/// inherited copy of the parent's lock descriptor. Async-signal-safe.
pub(crate) fn forget_in_child() {
    let fd = LOCK_FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: close is async-signal-safe; the descriptor is the child's
        // copy, and the lock stays with the parent's.
        unsafe { libc::close(fd) };
    }
}

extern "C" fn remove_at_exit() {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if LOCK_FD.load(Ordering::Relaxed) < 0 || LOCK_PID.load(Ordering::Relaxed) != me {
        return; // a forked child, or nothing made: not ours to remove
    }
    if let Some(path) = LOCK_PATH.get() {
        // SAFETY: unlink of a NUL-terminated path.
        unsafe { libc::unlink(path.as_ptr()) };
    }
}

/// What the liveness file of `pid-start_time` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The file is locked: the process lives.
    Alive,
    /// The file is there and unlocked: the process died (the file is gone now).
    Dead,
    /// No file to ask: the caller falls back to `/proc`.
    Unknown,
}

/// Asks the kernel whether the process with this id holds its lock.
pub(crate) fn check(pid: u32, start_time: u64) -> Verdict {
    let path = dir().join(file_name(pid, start_time));
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return Verdict::Unknown;
    };
    // SAFETY: open with a NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Verdict::Unknown;
    }
    let verdict = match ofd_lock(fd, libc::F_OFD_GETLK, libc::F_RDLCK) {
        Some(fl) if fl.l_type == libc::F_UNLCK as libc::c_short => {
            // SAFETY: unlink of a NUL-terminated path; losing a race with
            // another remover is harmless.
            unsafe { libc::unlink(cpath.as_ptr()) };
            Verdict::Dead
        }
        Some(_) => Verdict::Alive,
        None => Verdict::Unknown,
    };
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    verdict
}

/// Removes the files of dead processes (unlocked files) from [`dir`] and
/// returns how many it removed; `shm gc` runs it.
///
/// # Examples
///
/// ```
/// let removed = shm_segment::liveness::sweep().unwrap_or(0);
/// assert!(removed < usize::MAX);
/// ```
pub fn sweep() -> std::io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir()) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = parse_name(&name) else {
            continue;
        };
        if check(pid, start) == Verdict::Dead {
            removed += 1;
        }
    }
    Ok(removed)
}

fn parse_name(name: &OsStr) -> Option<(u32, u64)> {
    let (pid, start) = name.to_str()?.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name = file_name(42, 987_654);
        assert_eq!(parse_name(OsStr::new(&name)), Some((42, 987_654)));
        assert_eq!(parse_name(OsStr::new("junk")), None);
    }
}
