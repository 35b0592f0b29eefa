//! [`Mapping`]: an `mmap(2)` of a file descriptor or of anonymous shared memory.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use crate::error::{Error, Result, Target};
use crate::region::{Access, Region};

/// A shared memory mapping (`MAP_SHARED`), unmapped on drop. Returned by
/// [`PosixShm::map`](crate::PosixShm::map) and [`Memfd::map`](crate::Memfd::map);
/// [`AnonShared`](crate::AnonShared) wraps one.
///
/// The mapping stays valid after the descriptor it came from is closed, as
/// with `mmap(2)`. It is a [`Region`]: safe access copies; see there.
///
/// # Examples
///
/// ```
/// use shm_segment::{Memfd, Region};
/// let fd = Memfd::create("doc", 4096)?;
/// let map = fd.map()?;
/// map.write_at(0, b"mapped")?;
/// assert_eq!(map.len(), 4096);
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    read_only: bool,
    target: Target,
}

// SAFETY: the mapping is owned; all access through `&self` is by copies or
// atomics, exactly as another process would access it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: Option<BorrowedFd<'_>>, len: usize, access: Access, target: Target) -> Result<Self> {
        if len == 0 {
            return Err(Error::InvalidArgument {
                op: "map",
                target,
                reason: "the segment is empty (0 bytes); nothing to map".into(),
            });
        }
        let prot = match access {
            Access::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Access::ReadOnly => libc::PROT_READ,
        };
        let (flags, raw_fd) = match fd {
            Some(fd) => (libc::MAP_SHARED, fd.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping chosen by the kernel (addr null); it aliases
        // nothing in this process. `raw_fd` is a live descriptor or -1.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, raw_fd, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(Error::last_os("map", target));
        }
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).expect("mmap never returns null on success"),
            len,
            read_only: access == Access::ReadOnly,
            target,
        })
    }

    /// Maps the first `len` bytes of `fd` shared.
    pub(crate) fn of_fd(
        fd: BorrowedFd<'_>,
        len: usize,
        access: Access,
        target: Target,
    ) -> Result<Self> {
        Self::new(Some(fd), len, access, target)
    }

    /// A fresh anonymous shared mapping of `len` zeroed bytes.
    pub(crate) fn anonymous(len: usize) -> Result<Self> {
        Self::new(None, len, Access::ReadWrite, Target::Anonymous)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the pointer and length are the ones mmap returned; nothing
        // borrows the mapping any more (every borrow is tied to `&self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

// SAFETY: `len` bytes mapped at `ptr`, readable, writable unless mapped
// PROT_READ (then `read_only` is true), unmapped only on drop.
unsafe impl Region for Mapping {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn len(&self) -> usize {
        self.len
    }
    fn is_read_only(&self) -> bool {
        self.read_only
    }
    fn target(&self) -> Target {
        self.target.clone()
    }
}
