//! [`MapCore`]: the one owner of mapped shared memory, whichever call mapped
//! it (`mmap` or `shmat`). [`Mapping`](crate::Mapping),
//! [`SysvMapping`](crate::SysvMapping), [`AnonShared`](crate::AnonShared)
//! and [`Segment`](crate::Segment) are shells around one, and forward their
//! [`Region`] to it (see [`forward_region!`]).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use crate::error::{Error, Result, Target};
use crate::region::{Access, Region};

/// How a [`MapCore`]'s memory goes back to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unmap {
    /// `munmap(ptr, len)`: made by `mmap`.
    Munmap,
    /// `shmdt(ptr)`: made by `shmat`.
    Shmdt,
}

/// `len` bytes of shared memory mapped at `ptr`, owned: unmapped on drop,
/// never before.
///
/// The pointer is private and never changes, and `read_only` is true
/// whenever the memory was mapped without write permission, which is what
/// makes the [`Region`] implementation below sound.
#[derive(Debug)]
pub(crate) struct MapCore {
    ptr: NonNull<u8>,
    len: usize,
    read_only: bool,
    unmap: Unmap,
    target: Target,
}

// SAFETY: the memory is owned by this value and unmapped only when it drops,
// on whichever thread; all access through `&self` (the `Region` methods) is
// by copies or atomics, exactly as another process would access it, so
// sharing and sending it between threads adds nothing another process could
// not do.
unsafe impl Send for MapCore {}
// SAFETY: as above.
unsafe impl Sync for MapCore {}

impl MapCore {
    /// `mmap(MAP_SHARED)` of the first `len` bytes of `fd`, or, with no
    /// descriptor, `len` zeroed bytes of anonymous shared memory.
    pub(crate) fn mmap(
        fd: Option<BorrowedFd<'_>>,
        len: usize,
        access: Access,
        target: Target,
    ) -> Result<Self> {
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
        Ok(MapCore {
            ptr: NonNull::new(ptr.cast()).expect("mmap never returns null on success"),
            len,
            read_only: access == Access::ReadOnly,
            unmap: Unmap::Munmap,
            target,
        })
    }

    /// `shmat` of the System V segment `id`, whose size is `len` bytes
    /// (`shm_segsz`, which the kernel maps in full).
    pub(crate) fn shmat(id: i32, len: usize, access: Access) -> Result<Self> {
        let flags = match access {
            Access::ReadWrite => 0,
            Access::ReadOnly => libc::SHM_RDONLY,
        };
        // SAFETY: the kernel picks the address (null), so the new mapping
        // aliases nothing in this process.
        let ptr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        if ptr as isize == -1 {
            return Err(Error::last_os("attach", Target::SysvId(id)));
        }
        Ok(MapCore {
            ptr: NonNull::new(ptr.cast()).expect("shmat never returns null on success"),
            len,
            read_only: access == Access::ReadOnly,
            unmap: Unmap::Shmdt,
            target: Target::SysvId(id),
        })
    }
}

impl Drop for MapCore {
    fn drop(&mut self) {
        let addr = self.ptr.as_ptr().cast();
        match self.unmap {
            // SAFETY: the pointer and length are the ones mmap returned and
            // took; nothing borrows the memory any more (every borrow of it
            // is tied to `&self`).
            Unmap::Munmap => unsafe { libc::munmap(addr, self.len) },
            // SAFETY: the address shmat returned; as above, no borrow of the
            // memory outlives `&self`.
            Unmap::Shmdt => unsafe { libc::shmdt(addr) },
        };
    }
}

// SAFETY: `len` bytes mapped at `ptr` (mmap and shmat map whole pages, at
// least `len` bytes), readable, and writable unless mapped without write
// permission (PROT_READ, SHM_RDONLY), when `read_only` is true; unmapped
// only on drop. The pointer never changes.
unsafe impl Region for MapCore {
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

/// Implements [`Region`] for a shell type by forwarding every method to the
/// [`MapCore`] (or other region) in one of its fields, which the shell owns
/// for as long as it lives.
macro_rules! forward_region {
    ($shell:ty, $field:ident) => {
        // SAFETY: forwards to the region in `self.$field`, which this value
        // owns and never replaces, so it keeps its promises for as long as
        // this value lives.
        unsafe impl $crate::region::Region for $shell {
            fn as_ptr(&self) -> *mut u8 {
                $crate::region::Region::as_ptr(&self.$field)
            }
            fn len(&self) -> usize {
                $crate::region::Region::len(&self.$field)
            }
            fn is_read_only(&self) -> bool {
                $crate::region::Region::is_read_only(&self.$field)
            }
            fn target(&self) -> $crate::error::Target {
                $crate::region::Region::target(&self.$field)
            }
        }
    };
}
pub(crate) use forward_region;
