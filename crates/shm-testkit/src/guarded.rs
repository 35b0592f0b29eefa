//! Memory between guard pages, and the segment header's field offsets, for
//! tests that feed corrupted bytes to `attach`.

use shm_segment::{Region, Target};

// Header field offsets (crates/shm-segment/src/header.rs).
/// `magic`.
pub const OFF_MAGIC: usize = 0;
/// `version`.
pub const OFF_VERSION: usize = 8;
/// `kind`.
pub const OFF_KIND: usize = 12;
/// `elem_size`.
pub const OFF_ELEM_SIZE: usize = 16;
/// `elem_align`.
pub const OFF_ELEM_ALIGN: usize = 20;
/// `capacity`.
pub const OFF_CAPACITY: usize = 24;
/// `total`.
pub const OFF_TOTAL: usize = 32;
/// `state`.
pub const OFF_STATE: usize = 44;

/// The page size the guard pages assume.
pub const PAGE: usize = 4096;

/// Memory with an inaccessible (`PROT_NONE`) page right before and right
/// after it: an access out of bounds (by more than the < 128 bytes of
/// alignment slack at the end) faults instead of silently hitting the heap.
#[derive(Debug)]
pub struct Guarded {
    base: *mut u8,
    total: usize,
    start: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value and shared state in it is
// reached through atomics or copies only (the `Region` contract).
unsafe impl Send for Guarded {}
// SAFETY: as above.
unsafe impl Sync for Guarded {}

impl Guarded {
    /// `len` zeroed bytes, starting 128-byte aligned and as close to the
    /// trailing guard page as that alignment allows.
    pub fn new(len: usize) -> Self {
        let data_pages = (len + 127).div_ceil(PAGE).max(1);
        let total = (data_pages + 2) * PAGE;
        // SAFETY: a fresh private anonymous mapping; it aliases nothing.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            base,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        let base = base.cast::<u8>();
        // SAFETY: the data pages lie inside the mapping just made.
        let ret = unsafe {
            libc::mprotect(
                base.add(PAGE).cast(),
                data_pages * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!(ret, 0, "mprotect: {}", std::io::Error::last_os_error());
        let end = PAGE + data_pages * PAGE;
        // As close to the trailing guard page as 128-byte alignment allows.
        let start = (end - len) & !127;
        Guarded {
            base,
            total,
            // SAFETY: `start + len <= end <= total`: inside the mapping.
            start: unsafe { base.add(start) },
            len,
        }
    }

    /// A guarded copy of `bytes`.
    pub fn with_bytes(bytes: &[u8]) -> Self {
        let g = Guarded::new(bytes.len());
        g.write_at(0, bytes).unwrap();
        g
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; nothing borrows it any more
        // (every ring or pool over it borrowed `&self` or owned it).
        unsafe { libc::munmap(self.base.cast(), self.total) };
    }
}

// SAFETY: `len` readable and writable bytes at `start`, inside a mapping that
// lives until drop and does not move.
unsafe impl Region for Guarded {
    fn as_ptr(&self) -> *mut u8 {
        self.start
    }
    fn len(&self) -> usize {
        self.len
    }
    fn is_read_only(&self) -> bool {
        false
    }
    fn target(&self) -> Target {
        Target::Heap
    }
}
