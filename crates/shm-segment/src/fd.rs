//! What [`PosixShm`](crate::PosixShm) and [`Memfd`](crate::Memfd) do alike
//! through their descriptor: `fstat`, size, `ftruncate` + reservation,
//! `fchown`/`fchmod`.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::error::{Error, Result, Target};
use crate::perms::{check_mode, PermChange};

/// `fstat(2)`.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> std::io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat fills the buffer, which is a `struct stat`.
    shm_sys::cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: zeroed is a valid stat (plain integers) and fstat filled it.
    Ok(unsafe { st.assume_init() })
}

/// The size of a file from its `stat`: `st_size` is an `off_t`, never
/// negative for a file, and fits a `usize` on the 64-bit targets we build for.
pub(crate) fn st_size(st: &libc::stat) -> usize {
    usize::try_from(st.st_size).unwrap_or(0)
}

/// The size of the file behind `fd` now, with errors naming `op` and `target`.
pub(crate) fn size(fd: BorrowedFd<'_>, op: &'static str, target: &Target) -> Result<usize> {
    let st = fstat(fd).map_err(|e| Error::os(op, target.clone(), e))?;
    Ok(st_size(&st))
}

/// A size for `ftruncate`: at least 1 byte and at most `off_t::MAX`.
pub(crate) fn to_off(target: &Target, op: &'static str, size: usize) -> Result<libc::off_t> {
    let reason = match libc::off_t::try_from(size) {
        Ok(0) => "size must be at least 1 byte".to_owned(),
        Ok(len) => return Ok(len),
        Err(_) => format!(
            "size {size} is more than off_t holds ({})",
            libc::off_t::MAX
        ),
    };
    Err(Error::InvalidArgument {
        op,
        target: target.clone(),
        reason,
    })
}

/// `ftruncate` to `len`, then reserve (`posix_fallocate`) `from .. len` if
/// asked, so that a full file system is an `ENOSPC` here and not a `SIGBUS`
/// at the first touch of a page.
pub(crate) fn set_len(
    fd: BorrowedFd<'_>,
    target: &Target,
    len: libc::off_t,
    from: libc::off_t,
    reserve: bool,
    op: &'static str,
) -> Result<()> {
    let raw = fd.as_raw_fd();
    if reserve && len > from {
        check_reservable(target, op, (len - from) as u64)?;
    }
    // SAFETY: plain syscall on a live descriptor.
    if unsafe { libc::ftruncate(raw, len) } == -1 {
        return Err(Error::last_os(op, target.clone()));
    }
    if reserve && len > from {
        // SAFETY: plain call on a live descriptor.
        shm_sys::cvt_errno(unsafe { libc::posix_fallocate(raw, from, len - from) })
            .map_err(|e| Error::os(op, target.clone(), e))?;
    }
    Ok(())
}

/// Refuses to reserve more than the host's RAM and swap together: such a
/// reservation can never succeed, and on a memfd (whose file system has no
/// size limit, unlike `/dev/shm`) `posix_fallocate` would not fail with
/// `ENOSPC` but wake the OOM killer, which kills some process instead.
fn check_reservable(target: &Target, op: &'static str, bytes: u64) -> Result<()> {
    // SAFETY: sysinfo fills the zeroed struct we pass; nothing else.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a sysinfo struct.
    if unsafe { libc::sysinfo(&mut info) } == -1 {
        return Ok(()); // unknown: let the kernel decide
    }
    let unit = u64::from(info.mem_unit.max(1));
    let host = (info.totalram as u64)
        .saturating_add(info.totalswap as u64)
        .saturating_mul(unit);
    if bytes > host {
        return Err(Error::InvalidArgument {
            op,
            target: target.clone(),
            reason: format!(
                "reserving {bytes} bytes is more than this host's memory (RAM and swap: \
                 {host} bytes) can ever hold"
            ),
        });
    }
    Ok(())
}

/// `fchown` then `fchmod`, as `change` asks.
pub(crate) fn set_perms(fd: BorrowedFd<'_>, target: &Target, change: PermChange) -> Result<()> {
    let raw = fd.as_raw_fd();
    if change.uid.is_some() || change.gid.is_some() {
        // u32::MAX is (uid_t)-1: "leave unchanged".
        let (uid, gid) = (
            change.uid.unwrap_or(u32::MAX),
            change.gid.unwrap_or(u32::MAX),
        );
        // SAFETY: plain syscall on a live descriptor.
        if unsafe { libc::fchown(raw, uid, gid) } == -1 {
            return Err(Error::last_os("chown", target.clone()));
        }
    }
    if let Some(mode) = change.mode {
        check_mode("chmod", target, mode)?;
        // SAFETY: plain syscall on a live descriptor.
        if unsafe { libc::fchmod(raw, mode) } == -1 {
            return Err(Error::last_os("chmod", target.clone()));
        }
    }
    Ok(())
}
