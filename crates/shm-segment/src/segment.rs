//! [`Segment`]: a mapped segment that owns its name, the region the one-call
//! constructors of the rings and pools live in.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Result;
use crate::map_core::{forward_region, MapCore};
use crate::mapping::MapTicket;
use crate::memfd::Memfd;
use crate::posix::{PosixOptions, PosixShm};
use crate::process::ForkEpoch;
use crate::region::Access;
use crate::sysv::{SysvKey, SysvOptions, SysvSegment};

/// A shared-memory segment and its read-write mapping in one value: a POSIX
/// name, a System V key or a memfd. It is a [`Region`](crate::Region), and the handle that
/// keeps the segment alive.
///
/// A segment this value *created* is removed when it is dropped (the POSIX
/// name unlinked, the System V id marked for removal), as Python's
/// `SharedMemory` does with `unlink()` in the creator; one it *opened* never
/// is. [`set_remove_on_drop`](Self::set_remove_on_drop) changes that either
/// way. A `Segment` inherited across `fork` never removes anything from the
/// child (see [`ForkEpoch`]).
///
/// Rings and pools take one as their default region: `SpscRing::<u64>::create_posix`
/// makes the segment, maps it and lays the ring out in one call.
///
/// # Examples
///
/// ```
/// use shm_segment::{Region, Segment};
/// let name = format!("/shm-test-doc-segment-{}", std::process::id());
/// let seg = Segment::create_posix(&name, 4096)?;
/// seg.write_at(0, b"hello")?;
///
/// let other = Segment::open_posix(&name)?; // the true size, from fstat
/// let mut buf = [0; 5];
/// other.read_at(0, &mut buf)?;
/// assert_eq!((&buf, other.len()), (b"hello", 4096));
/// drop((other, seg)); // the creator's drop unlinks the name
/// assert!(Segment::open_posix(&name).unwrap_err().is_not_found());
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct Segment {
    // Declared first: unmapped before the ticket is released (a `PosixShm`
    // may shrink only with no mapping of its) and before the name is removed.
    map: MapCore,
    /// Counts `map` among the POSIX handle's live mappings.
    _ticket: Option<MapTicket>,
    owner: Owner,
    remove_on_drop: AtomicBool,
    epoch: ForkEpoch,
}

#[derive(Debug)]
enum Owner {
    Posix(PosixShm),
    Sysv(SysvSegment),
    Memfd(Memfd),
}

impl Segment {
    fn new(map: MapCore, ticket: Option<MapTicket>, owner: Owner, remove_on_drop: bool) -> Self {
        Segment {
            map,
            _ticket: ticket,
            owner,
            remove_on_drop: AtomicBool::new(remove_on_drop),
            epoch: ForkEpoch::now(),
        }
    }

    /// Creates the POSIX segment `name` of `size` bytes (exclusively, mode
    /// `0600`, reserved) and maps it. The name is unlinked on drop.
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("/shm-test-doc-seg-create-{}", std::process::id());
    /// let seg = shm_segment::Segment::create_posix(&name, 100)?;
    /// assert!(seg.created() && seg.posix().is_some());
    /// assert!(shm_segment::Segment::create_posix(&name, 100).unwrap_err().is_exists());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn create_posix(name: &str, size: usize) -> Result<Self> {
        // Unlinked on drop until the segment is mapped: a failed map leaves
        // no name behind.
        Self::from_posix(
            PosixOptions::new()
                .unlink_on_drop(true)
                .create(name, size)?,
        )
    }

    /// Opens the existing POSIX segment `name` read-write and maps all of it.
    /// Never unlinks it.
    ///
    /// Map only segments whose writers you trust not to shrink them: see
    /// "Shrinking and `SIGBUS`" at [`Mapping`](crate::Mapping).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = shm_segment::Segment::open_posix("/shm-test-doc-no-such-segment").unwrap_err();
    /// assert!(err.is_not_found());
    /// ```
    pub fn open_posix(name: &str) -> Result<Self> {
        Self::from_posix(PosixShm::open(name)?)
    }

    /// Maps a POSIX segment opened with options of your choosing (mode,
    /// access, reservation). Removes the name on drop if `shm` created it.
    ///
    /// From then on the `Segment` decides whether the name is removed
    /// ([`set_remove_on_drop`](Self::set_remove_on_drop)): the handle's own
    /// [`unlink_on_drop`](PosixOptions::unlink_on_drop) is turned off. If
    /// mapping fails, `shm` is dropped as it was (and unlinks the name if it
    /// was told to).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{PosixOptions, Segment};
    /// let name = format!("/shm-test-doc-seg-from-{}", std::process::id());
    /// let seg = Segment::from_posix(PosixOptions::new().mode(0o640).create(&name, 64)?)?;
    /// assert_eq!(seg.posix().unwrap().stat()?.mode & 0o777, 0o640);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn from_posix(mut shm: PosixShm) -> Result<Self> {
        let (map, ticket) = shm.map()?.into_parts();
        shm.set_unlink_on_drop(false);
        let created = shm.created();
        Ok(Self::new(map, ticket, Owner::Posix(shm), created))
    }

    /// Creates a memfd of `size` bytes (sealed against shrinking) and maps it.
    /// Pass it to another process with [`send_fd`](crate::send_fd) on
    /// [`memfd`](Self::memfd).
    ///
    /// # Examples
    ///
    /// ```
    /// let seg = shm_segment::Segment::create_memfd("doc", 4096)?;
    /// assert!(seg.memfd().is_some());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn create_memfd(name: &str, size: usize) -> Result<Self> {
        Self::from_memfd(Memfd::create(name, size)?)
    }

    /// Maps a memfd, for example one received with [`recv_fd`](crate::recv_fd)
    /// and checked by [`Memfd::from_fd`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Memfd, Region, Segment};
    /// let seg = Segment::from_memfd(Memfd::create("doc", 64)?)?;
    /// assert_eq!(seg.len(), 64);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn from_memfd(fd: Memfd) -> Result<Self> {
        let (map, ticket) = fd.map()?.into_parts();
        Ok(Self::new(map, ticket, Owner::Memfd(fd), false))
    }

    /// Creates the System V segment `key` of `size` bytes (exclusively, mode
    /// `0600`) and attaches it read-write. It is removed on drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Segment, SysvKey};
    /// let seg = Segment::create_sysv(SysvKey::PRIVATE, 4096)?;
    /// assert!(seg.sysv().unwrap().stat()?.nattch >= 1);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn create_sysv(key: SysvKey, size: usize) -> Result<Self> {
        // Removed on drop until attached: a failed attach leaves nothing behind.
        let seg = SysvOptions::new().remove_on_drop(true).create(key, size)?;
        Self::from_sysv(seg, true)
    }

    /// Attaches the existing System V segment `key` read-write. Never
    /// removes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Region, Segment, SysvKey};
    /// let key = SysvKey::random();
    /// let a = Segment::create_sysv(key, 64)?;
    /// let b = Segment::open_sysv(key)?;
    /// a.write_at(0, b"k")?;
    /// assert_eq!(b.to_vec()[0], b'k');
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn open_sysv(key: SysvKey) -> Result<Self> {
        Self::from_sysv(SysvSegment::open(key)?, false)
    }

    /// Attaches a System V segment opened with options of your choosing;
    /// `remove_on_drop` says whether this value removes it (the handle's own
    /// [`remove_on_drop`](SysvOptions::remove_on_drop) is turned off once
    /// attached; if attaching fails, `seg` is dropped as it was).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Segment, SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().mode(0o640).create(SysvKey::PRIVATE, 64)?;
    /// let seg = Segment::from_sysv(seg, true)?;
    /// assert_eq!(seg.sysv().unwrap().stat()?.perms(), 0o640);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn from_sysv(seg: SysvSegment, remove_on_drop: bool) -> Result<Self> {
        let map = seg.attach(Access::ReadWrite)?.into_core();
        let mut seg = seg;
        seg.set_remove_on_drop(false);
        Ok(Self::new(map, None, Owner::Sysv(seg), remove_on_drop))
    }

    /// Whether this value removes the segment when dropped.
    ///
    /// # Examples
    ///
    /// See [`set_remove_on_drop`](Self::set_remove_on_drop).
    pub fn created(&self) -> bool {
        self.remove_on_drop.load(Ordering::Relaxed)
    }

    /// Whether dropping this value removes the segment (unlinks the POSIX
    /// name, marks the System V id for removal). On by default for a segment
    /// this value created; turn it off to leave the segment to others. A
    /// memfd has no name: it goes when the last descriptor and mapping do.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{PosixShm, Segment};
    /// let name = format!("/shm-test-doc-seg-keep-{}", std::process::id());
    /// let seg = Segment::create_posix(&name, 64)?;
    /// seg.set_remove_on_drop(false);
    /// drop(seg);
    /// assert!(Segment::open_posix(&name).is_ok()); // still there
    /// PosixShm::unlink_name(&name)?;
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn set_remove_on_drop(&self, remove: bool) {
        self.remove_on_drop.store(remove, Ordering::Relaxed);
    }

    /// The POSIX handle, for `stat`, `set_perms`, `read_at` through the
    /// descriptor, …
    ///
    /// # Examples
    ///
    /// See [`create_posix`](Self::create_posix).
    pub fn posix(&self) -> Option<&PosixShm> {
        match &self.owner {
            Owner::Posix(shm) => Some(shm),
            _ => None,
        }
    }

    /// The System V handle, for `stat`, `set_perms`, …
    ///
    /// # Examples
    ///
    /// See [`create_sysv`](Self::create_sysv).
    pub fn sysv(&self) -> Option<&SysvSegment> {
        match &self.owner {
            Owner::Sysv(seg) => Some(seg),
            _ => None,
        }
    }

    /// The memfd, to pass its descriptor to another process.
    ///
    /// # Examples
    ///
    /// See [`create_memfd`](Self::create_memfd).
    pub fn memfd(&self) -> Option<&Memfd> {
        match &self.owner {
            Owner::Memfd(fd) => Some(fd),
            _ => None,
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if !*self.remove_on_drop.get_mut() || !self.epoch.is_current() {
            return;
        }
        // Best effort, as `PosixShm`'s own drop: someone may have removed it.
        let _ = match &self.owner {
            Owner::Posix(shm) => shm.unlink(),
            Owner::Sysv(seg) => seg.remove(),
            Owner::Memfd(_) => Ok(()),
        };
    }
}

forward_region!(Segment, map);
