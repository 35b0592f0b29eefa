//! Raw FFI for shared memory on Linux: what [`libc`] lacks, plus errno helpers.
//!
//! Everything libc already has is reached through the re-export [`libc`]. This
//! crate adds the System V `shmctl` commands and structs that libc does not
//! define, a `futex` wait/wake pair on [`AtomicU32`] words (the blocking
//! primitive of the rings), and the helpers that turn a libc return value
//! into an [`io::Result`]: [`cvt`], [`cvt_errno`], and [`cvt_fd`] for calls
//! that return a new descriptor.
//!
//! # Examples
//!
//! ```
//! // How many System V segments exist on this host, and the limits.
//! let (_max_index, info) = shm_sys::shm_info()?;
//! let limits = shm_sys::shm_limits()?;
//! assert!(limits.shmmni >= info.used_ids as u64);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

pub use libc;

/// `shmctl` command: stat the segment at a kernel *index* (not an id); returns its id.
pub const SHM_STAT: libc::c_int = 13;
/// `shmctl` command: fill a [`struct shm_info`](struct@shm_info) and return the highest used index.
pub const SHM_INFO: libc::c_int = 14;
/// `shmctl` command: like [`SHM_STAT`] but without a read-permission check (Linux 4.17+).
pub const SHM_STAT_ANY: libc::c_int = 15;
/// `shm_perm.mode` flag: the segment is marked for destruction (`IPC_RMID` was called).
pub const SHM_DEST: u32 = 0o1000;
/// `shm_perm.mode` flag: the segment is locked in memory (`SHM_LOCK`).
pub const SHM_LOCKED: u32 = 0o2000;

/// `futex(2)` operation: wait while the word holds the expected value.
pub const FUTEX_WAIT: libc::c_int = 0;
/// `futex(2)` operation: wake up to N waiters.
pub const FUTEX_WAKE: libc::c_int = 1;

/// `struct shm_info` from `<sys/shm.h>`, filled by `shmctl(_, SHM_INFO, _)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct shm_info {
    /// Number of segments that currently exist.
    pub used_ids: libc::c_int,
    /// Total shared memory in pages.
    pub shm_tot: libc::c_ulong,
    /// Resident shared memory in pages.
    pub shm_rss: libc::c_ulong,
    /// Swapped shared memory in pages.
    pub shm_swp: libc::c_ulong,
    /// Unused since Linux 2.4.
    pub swap_attempts: libc::c_ulong,
    /// Unused since Linux 2.4.
    pub swap_successes: libc::c_ulong,
}

/// `struct shminfo` from `<sys/shm.h>`, filled by `shmctl(_, IPC_INFO, _)`: the host's limits.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct shminfo {
    /// Largest segment size in bytes (`kernel.shmmax`).
    pub shmmax: libc::c_ulong,
    /// Smallest segment size in bytes (always 1).
    pub shmmin: libc::c_ulong,
    /// Most segments on the host (`kernel.shmmni`).
    pub shmmni: libc::c_ulong,
    /// Most segments one process may attach (unused by Linux).
    pub shmseg: libc::c_ulong,
    /// Most shared memory in pages on the host (`kernel.shmall`).
    pub shmall: libc::c_ulong,
    __unused: [libc::c_ulong; 4],
}

/// A libc return value that signals failure with `-1`.
pub trait IsMinusOne: Copy {
    /// Whether this value is the error sentinel.
    fn is_minus_one(self) -> bool;
}

macro_rules! impl_is_minus_one {
    ($($t:ty)*) => {$(
        impl IsMinusOne for $t {
            fn is_minus_one(self) -> bool { self == -1 }
        }
    )*};
}
impl_is_minus_one! { i32 i64 isize }

/// Turns a libc return value into an [`io::Result`]: `-1` becomes the current `errno`.
///
/// # Examples
///
/// ```
/// let fd = shm_sys::cvt(unsafe { libc::dup(-1) });
/// assert_eq!(fd.unwrap_err().raw_os_error(), Some(libc::EBADF));
/// ```
pub fn cvt<T: IsMinusOne>(ret: T) -> io::Result<T> {
    if ret.is_minus_one() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns the return value of a call that makes a new descriptor
/// (`shm_open`, `memfd_create`, `socket`, `open`, …) into an owned one:
/// `-1` becomes the current `errno`, anything else an [`OwnedFd`] that
/// closes the descriptor on drop. Call it right after the call, before
/// anything else can change `errno`.
///
/// # Safety
///
/// `ret` is `-1` or a descriptor that the call just opened in this process
/// and that nothing else owns or will close: the returned [`OwnedFd`] takes
/// it over. Passing any other number (a borrowed descriptor, one already
/// owned elsewhere) lets two owners close it, which may close an unrelated
/// file opened meanwhile.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsRawFd;
///
/// // SAFETY: memfd_create returns -1 or a fresh descriptor that we own.
/// let fd = unsafe { shm_sys::cvt_fd(libc::memfd_create(c"doc".as_ptr(), libc::MFD_CLOEXEC)) }?;
/// assert!(fd.as_raw_fd() >= 0);
///
/// // SAFETY: -1 is never taken over.
/// let err = unsafe { shm_sys::cvt_fd(libc::dup(-1)) }.unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::EBADF));
/// # Ok::<(), std::io::Error>(())
/// ```
pub unsafe fn cvt_fd(ret: RawFd) -> io::Result<OwnedFd> {
    let fd = cvt(ret)?;
    // SAFETY: not -1, so by the caller's promise a fresh descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Turns a function that returns an error *number* (0 on success), like
/// `posix_fallocate(3)`, into an [`io::Result`].
///
/// # Examples
///
/// ```
/// assert!(shm_sys::cvt_errno(0).is_ok());
/// assert_eq!(shm_sys::cvt_errno(libc::ENOSPC).unwrap_err().raw_os_error(), Some(libc::ENOSPC));
/// ```
pub fn cvt_errno(ret: libc::c_int) -> io::Result<()> {
    match ret {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `shmctl(0, SHM_INFO, _)`: the highest used kernel index and the host's usage.
///
/// # Examples
///
/// ```
/// let (max_index, info) = shm_sys::shm_info()?;
/// assert!(max_index >= -1 && info.used_ids >= 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn shm_info() -> io::Result<(libc::c_int, shm_info)> {
    let mut info = shm_info::default();
    // SAFETY: SHM_INFO writes a `struct shm_info` through the pointer, which is
    // what `info` is; the kernel ABI passes it through the shmid_ds argument.
    let max = cvt(unsafe { libc::shmctl(0, SHM_INFO, (&raw mut info).cast()) })?;
    Ok((max, info))
}

/// `shmctl(0, IPC_INFO, _)`: the host's System V shared-memory limits.
///
/// # Examples
///
/// ```
/// let limits = shm_sys::shm_limits()?;
/// assert!(limits.shmmax > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn shm_limits() -> io::Result<shminfo> {
    let mut info = shminfo::default();
    // SAFETY: IPC_INFO writes a `struct shminfo` through the pointer, which is
    // what `info` is.
    cvt(unsafe { libc::shmctl(0, libc::IPC_INFO, (&raw mut info).cast()) })?;
    Ok(info)
}

/// `shmctl(id, IPC_STAT, _)`: the whole `shmid_ds` of one segment.
///
/// # Examples
///
/// ```
/// let err = shm_sys::shm_stat(-1).unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
/// ```
pub fn shm_stat(id: libc::c_int) -> io::Result<libc::shmid_ds> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: IPC_STAT writes a `shmid_ds` into the buffer, which is one.
    cvt(unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: zeroed is a valid shmid_ds (plain integers) and the kernel filled it.
    Ok(unsafe { ds.assume_init() })
}

/// `shmctl(index, SHM_STAT_ANY, _)`, falling back to `SHM_STAT` on kernels
/// before 4.17: the segment at a kernel index, as `(shmid, shmid_ds)`.
///
/// Indexes run from 0 to the first value of [`shm_info()`](fn@shm_info); unused ones give `EINVAL`.
///
/// # Examples
///
/// ```
/// let (max, _) = shm_sys::shm_info()?;
/// for index in 0..=max {
///     if let Ok((id, ds)) = shm_sys::shm_stat_index(index) {
///         assert!(id >= 0 && ds.shm_segsz > 0);
///     }
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn shm_stat_index(index: libc::c_int) -> io::Result<(libc::c_int, libc::shmid_ds)> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: SHM_STAT_ANY writes a `shmid_ds` into the buffer, which is one.
    let mut ret = unsafe { libc::shmctl(index, SHM_STAT_ANY, ds.as_mut_ptr()) };
    if ret == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Either an unused index or an old kernel without SHM_STAT_ANY.
        // SAFETY: as above, with SHM_STAT.
        ret = unsafe { libc::shmctl(index, SHM_STAT, ds.as_mut_ptr()) };
    }
    let id = cvt(ret)?;
    // SAFETY: zeroed is a valid shmid_ds (plain integers) and the kernel filled it.
    Ok((id, unsafe { ds.assume_init() }))
}

/// `futex(FUTEX_WAIT)` on a word that other processes may map: sleeps while
/// `*word == expected`, until woken, interrupted, or `timeout` has passed.
///
/// The futex is *shared* (no `FUTEX_PRIVATE_FLAG`), so a waker in another
/// process that maps the same page wakes it. Returns `Ok(())` when woken,
/// `EAGAIN` when the word did not hold `expected`, `ETIMEDOUT` on timeout and
/// `EINTR` on a signal; callers re-check their condition in every case.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// use std::time::Duration;
///
/// let word = AtomicU32::new(1);
/// // The word is not 0, so this returns at once with EAGAIN.
/// let err = shm_sys::futex_wait(&word, 0, Some(Duration::from_millis(10))).unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
/// let err = shm_sys::futex_wait(&word, 1, Some(Duration::from_millis(1))).unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
/// ```
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<()> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call and
    // `ts_ptr` is null or points to a live timespec (a relative timeout).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    cvt(ret).map(drop)
}

/// `futex(FUTEX_WAKE)`: wakes up to `count` waiters on `word`, in any process;
/// returns how many were woken.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::AtomicU32;
/// let word = AtomicU32::new(0);
/// assert_eq!(shm_sys::futex_wake(&word, u32::MAX)?, 0); // nobody waits
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn futex_wake(word: &AtomicU32, count: u32) -> io::Result<usize> {
    let count = count.min(i32::MAX as u32);
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE ignores the rest.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    cvt(ret).map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn futex_wakes_a_waiter_in_another_thread() {
        let word = Arc::new(AtomicU32::new(0));
        let waiter = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while word.load(Ordering::Acquire) == 0 {
                    assert!(std::time::Instant::now() < deadline, "never woken");
                    let _ = futex_wait(&word, 0, Some(Duration::from_millis(100)));
                }
                word.load(Ordering::Acquire)
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        word.store(7, Ordering::Release);
        futex_wake(&word, 1).unwrap();
        assert_eq!(waiter.join().unwrap(), 7);
    }

    #[test]
    fn struct_sizes_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<shminfo>(), 9 * 8);
        assert_eq!(std::mem::size_of::<shm_info>(), 6 * 8);
    }

    #[test]
    fn stat_of_a_missing_id_is_einval() {
        assert_eq!(
            shm_stat(i32::MAX).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
