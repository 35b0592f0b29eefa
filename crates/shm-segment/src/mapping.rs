//! [`Mapping`]: an `mmap(2)` of a file descriptor or of anonymous shared memory.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Result, Target};
use crate::map_core::{forward_region, MapCore};
use crate::region::Access;

/// A shared memory mapping (`MAP_SHARED`), unmapped on drop. Returned by
/// [`PosixShm::map`](crate::PosixShm::map) and [`Memfd::map`](crate::Memfd::map);
/// [`AnonShared`](crate::AnonShared) wraps one.
///
/// The mapping stays valid after the descriptor it came from is closed, as
/// with `mmap(2)`. It is a [`Region`](crate::Region): safe access copies; see there.
///
/// # Shrinking and `SIGBUS`
///
/// A mapping keeps the length it was made with. If the file behind it is
/// later truncated below that length, touching a page past the new end
/// raises `SIGBUS`, which kills the process: the bounds checks of the safe
/// accessors ([`Region::read_at`](crate::Region::read_at), …) are against the mapping's length and
/// cannot see it. What stands between a mapping and that signal:
///
/// - of a [`Memfd`](crate::Memfd): nothing is needed, every `Memfd` is sealed
///   against shrinking (`F_SEAL_SHRINK`), for every process that holds it;
/// - of a [`PosixShm`](crate::PosixShm): the handle refuses to shrink the
///   segment while mappings made from it live, but another handle, or any
///   process that may write the segment, can still `ftruncate` it. Map only
///   segments whose writers you trust; read and write the others with
///   [`PosixShm::read_at`](crate::PosixShm::read_at) and
///   [`write_at`](crate::PosixShm::write_at), which go through the descriptor
///   and turn a shrink into an error;
/// - anonymous memory ([`AnonShared`](crate::AnonShared)) has no file to truncate.
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
    /// Declared first, so dropped first: the memory is unmapped before the
    /// ticket below lets the handle shrink the file.
    core: MapCore,
    /// Counts this mapping among its handle's live ones, when the handle keeps
    /// count (a `PosixShm`); released on drop.
    _live: Option<MapTicket>,
}

/// The flag in a [`MapCount`] that a shrinking `resize` holds.
const SHRINKING: usize = 1 << (usize::BITS - 1);

/// How many mappings made from one handle are alive, shared between the
/// handle and its mappings, so that the handle can refuse to shrink the file
/// under them. Invariant: the low bits count the live [`MapTicket`]s; the
/// [`SHRINKING`] bit is set only while a [`ShrinkLock`] lives, and then the
/// count is 0.
#[derive(Debug, Default)]
pub(crate) struct MapCount(Arc<AtomicUsize>);

impl MapCount {
    /// Registers a mapping about to be made, before its size is read: waits
    /// (yielding) while a shrink of this handle is in progress, so that no
    /// mapping is ever made from a size that is about to shrink.
    pub(crate) fn ticket(&self) -> MapTicket {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            if cur & SHRINKING != 0 {
                std::thread::yield_now();
                cur = self.0.load(Ordering::Relaxed);
                continue;
            }
            // SYNC POINT: this Acquire pairs with the Release that drops a
            // ShrinkLock, so the fstat that follows sees the shrunk size.
            match self
                .0
                .compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return MapTicket(Arc::clone(&self.0)),
                Err(now) => cur = now,
            }
        }
    }

    /// Takes the right to shrink: only when no mapping of this handle lives
    /// (waiting, yielding, while another thread of it shrinks). `Err` carries
    /// how many mappings live.
    pub(crate) fn shrink_lock(&self) -> Result<ShrinkLock<'_>, usize> {
        loop {
            match self
                .0
                .compare_exchange(0, SHRINKING, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(ShrinkLock(&self.0)),
                Err(SHRINKING) => std::thread::yield_now(),
                Err(live) => return Err(live),
            }
        }
    }
}

/// One live mapping in a [`MapCount`]; uncounts itself on drop.
#[derive(Debug)]
pub(crate) struct MapTicket(Arc<AtomicUsize>);

impl Drop for MapTicket {
    fn drop(&mut self) {
        // SYNC POINT: this Release pairs with the Acquire of
        // `MapCount::shrink_lock`: the munmap before it comes before a shrink.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Held across a resize by a handle with no live mapping (so it may shrink):
/// new mappings of the handle wait for it.
#[derive(Debug)]
pub(crate) struct ShrinkLock<'a>(&'a AtomicUsize);

impl Drop for ShrinkLock<'_> {
    fn drop(&mut self) {
        // SYNC POINT: pairs with the Acquire in `MapCount::ticket`.
        self.0.store(0, Ordering::Release);
    }
}

impl Mapping {
    /// Maps the first `len` bytes of `fd` shared, counted in `live`'s
    /// [`MapCount`] for as long as the mapping lives.
    pub(crate) fn of_fd(
        fd: BorrowedFd<'_>,
        len: usize,
        access: Access,
        target: Target,
        live: Option<MapTicket>,
    ) -> Result<Self> {
        Ok(Mapping {
            core: MapCore::mmap(Some(fd), len, access, target)?,
            _live: live,
        })
    }

    /// A fresh anonymous shared mapping of `len` zeroed bytes.
    pub(crate) fn anonymous(len: usize) -> Result<Self> {
        Ok(Mapping {
            core: MapCore::mmap(None, len, Access::ReadWrite, Target::Anonymous)?,
            _live: None,
        })
    }

    /// The mapped memory and the ticket that counts it, for a
    /// [`Segment`](crate::Segment), which keeps both.
    pub(crate) fn into_parts(self) -> (MapCore, Option<MapTicket>) {
        (self.core, self._live)
    }
}

forward_region!(Mapping, core);
