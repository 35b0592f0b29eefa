//! System V shared memory: `shmget(2)`, `shmat(2)`, `shmdt(2)`, `shmctl(2)`.
//!
//! The handles ([`SysvSegment`], [`SysvOptions`], [`SysvMapping`],
//! [`SysvKey`], [`SysvStat`]) are also at the crate root; [`list`] lists
//! every segment on the host, as `ipcs -m` does.
//!
//! # Examples
//!
//! ```
//! use shm_segment::sysv;
//! let seg = sysv::SysvOptions::new().remove_on_drop(true).create(sysv::SysvKey::random(), 64)?;
//! let listed = sysv::list()?.into_iter().find(|s| s.id == seg.id()).unwrap();
//! assert_eq!((listed.key, listed.size), (seg.key(), 64));
//! # Ok::<(), shm_segment::Error>(())
//! ```

use std::ffi::CString;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use shm_sys::{SHM_DEST, SHM_LOCKED};

use crate::error::{Error, Result, Target};
use crate::map_core::{forward_region, MapCore};
use crate::perms::{check_mode, PermChange};
use crate::process::ForkEpoch;
use crate::region::Access;

/// A System V IPC key (`key_t`). Displays as `0x%08x`, as `ipcs` shows it.
///
/// # Examples
///
/// ```
/// use shm_segment::SysvKey;
/// assert_eq!(SysvKey(123456).to_string(), "0x0001e240");
/// assert!(SysvKey::PRIVATE.is_private());
/// assert_ne!(SysvKey::random(), SysvKey::PRIVATE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SysvKey(pub i32);

impl SysvKey {
    /// `IPC_PRIVATE`: every create makes a new segment that only its id reaches.
    pub const PRIVATE: SysvKey = SysvKey(libc::IPC_PRIVATE);

    /// A random key other than `IPC_PRIVATE`, for tests and throwaway segments.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_ne!(shm_segment::SysvKey::random(), shm_segment::SysvKey::random());
    /// ```
    pub fn random() -> Self {
        loop {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            let key = h.finish() as i32;
            if key != libc::IPC_PRIVATE && key != -1 {
                return SysvKey(key);
            }
        }
    }

    /// `ftok(3)`: a key from an existing file and a project id (its low 8 bits).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = shm_segment::SysvKey::from_path("/", 1)?;
    /// assert_eq!(a, shm_segment::SysvKey::from_path("/", 1)?);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>, proj_id: u8) -> Result<Self> {
        let path = path.as_ref();
        let target = Target::Posix(path.display().to_string());
        let c =
            CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Error::InvalidName {
                name: path.display().to_string(),
                reason: "contains a NUL byte",
            })?;
        // SAFETY: `c` is a valid NUL-terminated path.
        let key = unsafe { libc::ftok(c.as_ptr(), libc::c_int::from(proj_id)) };
        if key == -1 {
            return Err(Error::last_os("ftok", target));
        }
        Ok(SysvKey(key))
    }

    /// Whether this is `IPC_PRIVATE`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!shm_segment::SysvKey(7).is_private());
    /// ```
    pub fn is_private(self) -> bool {
        self.0 == libc::IPC_PRIVATE
    }
}

impl fmt::Display for SysvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0 as u32)
    }
}

/// How to create or open a System V segment, like `std::fs::OpenOptions`.
///
/// Defaults: mode `0600`, exclusive create (`IPC_CREAT|IPC_EXCL`), and no
/// removal on drop (the segment outlives the process, as System V segments do).
///
/// # Examples
///
/// ```
/// use shm_segment::{SysvKey, SysvOptions};
/// let seg = SysvOptions::new().mode(0o640).remove_on_drop(true).create(SysvKey::PRIVATE, 4096)?;
/// assert_eq!(seg.stat()?.perms(), 0o640);
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SysvOptions {
    mode: u32,
    exclusive: bool,
    remove_on_drop: bool,
    huge_pages: bool,
}

impl Default for SysvOptions {
    fn default() -> Self {
        SysvOptions {
            mode: 0o600,
            exclusive: true,
            remove_on_drop: false,
            huge_pages: false,
        }
    }
}

impl SysvOptions {
    /// The defaults: mode `0600`, exclusive, kept after drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions, SysvSegment};
    /// let seg = SysvOptions::new().create(SysvKey::PRIVATE, 64)?;
    /// assert_eq!(seg.stat()?.perms(), 0o600);
    /// let id = seg.id();
    /// drop(seg);
    /// // Kept after drop, as System V segments are: remove it by hand.
    /// let again = SysvSegment::open_id(id)?;
    /// again.remove()?;
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits for a new segment (`0o000 ..= 0o777`); System V ignores the umask.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().mode(0o604).remove_on_drop(true).create(SysvKey::PRIVATE, 1)?;
    /// assert_eq!(seg.stat()?.perms(), 0o604);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// With `false`, `create` opens an existing segment of the key instead of failing.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let key = SysvKey::random();
    /// let made = SysvOptions::new().remove_on_drop(true).create(key, 64)?;
    /// let same = SysvOptions::new().exclusive(false).create(key, 64)?;
    /// assert_eq!(same.id(), made.id());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }

    /// Mark the segment for removal (`IPC_RMID`) when the handle drops. Only in
    /// the process that made the handle: a copy inherited by a `fork`ed child
    /// never removes on drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions, SysvSegment};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 1)?;
    /// let id = seg.id();
    /// drop(seg);
    /// assert!(SysvSegment::open_id(id).unwrap_err().is_not_found());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn remove_on_drop(mut self, remove: bool) -> Self {
        self.remove_on_drop = remove;
        self
    }

    /// Back the segment with huge pages (`SHM_HUGETLB`); needs reserved huge pages.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let opts = SysvOptions::new().huge_pages(true).remove_on_drop(true);
    /// match opts.create(SysvKey::PRIVATE, 2 << 20) {
    ///     Ok(seg) => assert_eq!(seg.stat()?.size, 2 << 20),
    ///     // No huge pages reserved (ENOMEM), or not allowed to use them (EPERM).
    ///     Err(e) => assert!(e.is_no_space() || e.is_permission_denied(), "{e}"),
    /// }
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn huge_pages(mut self, huge: bool) -> Self {
        self.huge_pages = huge;
        self
    }

    /// `shmget(key, size, IPC_CREAT[|IPC_EXCL]|mode)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let key = SysvKey::random();
    /// let a = SysvOptions::new().remove_on_drop(true).create(key, 100)?;
    /// // Exclusive by default: a second create of the same key fails with EEXIST.
    /// let err = SysvOptions::new().create(key, 100).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    /// // Not exclusive: opens the existing one.
    /// let b = SysvOptions::new().exclusive(false).create(key, 100)?;
    /// assert_eq!(a.id(), b.id());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn create(&self, key: SysvKey, size: usize) -> Result<SysvSegment> {
        let target = Target::SysvKey(key.0);
        check_mode("create", &target, self.mode)?;
        if size == 0 {
            return Err(Error::InvalidArgument {
                op: "create",
                target,
                reason: "size must be at least 1 byte".into(),
            });
        }
        let mut flags = libc::IPC_CREAT | self.mode as libc::c_int;
        if self.exclusive {
            flags |= libc::IPC_EXCL;
        }
        if self.huge_pages {
            flags |= libc::SHM_HUGETLB;
        }
        // SAFETY: plain syscall with integer arguments.
        let id = unsafe { libc::shmget(key.0, size, flags) };
        if id == -1 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) && !self.exclusive {
                // The key exists with a smaller size: say so rather than "Invalid argument".
                if let Ok(existing) = SysvOptions::new().open(key) {
                    let actual = existing.stat()?.size;
                    return Err(Error::TooSmall {
                        target,
                        actual,
                        needed: size,
                    });
                }
            }
            if err.raw_os_error() == Some(libc::EINVAL) {
                let max = shm_sys::shm_limits().map(|l| l.shmmax).unwrap_or(0);
                return Err(Error::InvalidArgument {
                    op: "create",
                    target,
                    reason: format!(
                        "size {size} is outside the host's limits (kernel.shmmax = {max})"
                    ),
                });
            }
            return Err(Error::os("create", target, err));
        }
        Ok(SysvSegment {
            key,
            id,
            remove_on_drop: AtomicBool::new(self.remove_on_drop),
            epoch: ForkEpoch::now(),
        })
    }

    /// `shmget(key, 0, 0)`: the existing segment with this key.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let err = SysvOptions::new().open(SysvKey::random()).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    /// ```
    pub fn open(&self, key: SysvKey) -> Result<SysvSegment> {
        let target = Target::SysvKey(key.0);
        if key.is_private() {
            return Err(Error::InvalidArgument {
                op: "open",
                target,
                reason: "IPC_PRIVATE names no existing segment; open it by id".into(),
            });
        }
        // SAFETY: plain syscall with integer arguments.
        let id = unsafe { libc::shmget(key.0, 0, 0) };
        if id == -1 {
            return Err(Error::last_os("open", target));
        }
        Ok(SysvSegment {
            key,
            id,
            remove_on_drop: AtomicBool::new(self.remove_on_drop),
            epoch: ForkEpoch::now(),
        })
    }

    /// The existing segment with this shmid (checked with `IPC_STAT`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let a = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 64)?;
    /// let b = SysvOptions::new().open_id(a.id())?;
    /// assert_eq!(b.key(), SysvKey::PRIVATE);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn open_id(&self, id: i32) -> Result<SysvSegment> {
        let ds = shm_sys::shm_stat(id).map_err(|e| Error::os("open", Target::SysvId(id), e))?;
        Ok(SysvSegment {
            key: SysvKey(ds.shm_perm.__key),
            id,
            remove_on_drop: AtomicBool::new(self.remove_on_drop),
            epoch: ForkEpoch::now(),
        })
    }
}

/// A System V shared memory segment, by key and id; not yet attached.
///
/// Attach it with [`attach`](SysvSegment::attach) to read and write it. The
/// segment exists until it is removed: [`remove`](SysvSegment::remove) marks
/// it (`IPC_RMID`) and the kernel destroys it after the last process detaches;
/// until then `ipcs -m` shows it with status `dest`. With
/// [`SysvOptions::remove_on_drop`] the handle does that when dropped.
///
/// # Examples
///
/// Process 1 creates and writes, as the seed's `shm_manager(123456, 100)`:
///
/// ```
/// use shm_segment::{Access, Region, SysvKey, SysvSegment};
/// let key = SysvKey::random();
/// let seg = SysvSegment::create(key, 100)?;
/// seg.attach(Access::ReadWrite)?.write_at(0, b"Hello world!")?;
///
/// // Process 2 opens by key and reads.
/// let other = SysvSegment::open(key)?;
/// let map = other.attach(Access::ReadOnly)?;
/// let mut buf = [0u8; 12];
/// map.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"Hello world!");
/// assert!(map.write_at(0, b"no").is_err()); // read-only: an error, not a SIGSEGV
///
/// seg.remove()?;
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct SysvSegment {
    key: SysvKey,
    id: i32,
    /// Cleared by a successful `remove`.
    remove_on_drop: AtomicBool,
    /// The process that made the handle: a `fork`ed child's copy never
    /// removes on drop.
    epoch: ForkEpoch,
}

impl SysvSegment {
    /// Creates a new segment: exclusive, mode `0600`. See [`SysvOptions`] for more.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvSegment};
    /// let seg = SysvSegment::create(SysvKey::PRIVATE, 4096)?;
    /// assert_eq!(seg.stat()?.size, 4096);
    /// seg.remove()?;
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn create(key: SysvKey, size: usize) -> Result<Self> {
        SysvOptions::new().create(key, size)
    }

    /// Opens the existing segment with this key.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvSegment};
    /// assert!(SysvSegment::open(SysvKey::random()).is_err());
    /// ```
    pub fn open(key: SysvKey) -> Result<Self> {
        SysvOptions::new().open(key)
    }

    /// Opens the existing segment with this shmid.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_segment::SysvSegment::open_id(-1).is_err());
    /// ```
    pub fn open_id(id: i32) -> Result<Self> {
        SysvOptions::new().open_id(id)
    }

    /// The key it was created or opened with (`IPC_PRIVATE` for private ones).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 1)?;
    /// assert!(seg.key().is_private());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn key(&self) -> SysvKey {
        self.key
    }

    /// The shmid.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 1)?;
    /// assert!(seg.id() >= 0);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn id(&self) -> i32 {
        self.id
    }

    fn target(&self) -> Target {
        Target::SysvId(self.id)
    }

    /// Sets whether dropping the handle marks the segment for removal.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvSegment};
    /// let mut seg = SysvSegment::create(SysvKey::PRIVATE, 1)?;
    /// seg.set_remove_on_drop(true); // gone when `seg` drops
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn set_remove_on_drop(&mut self, remove: bool) {
        *self.remove_on_drop.get_mut() = remove;
    }

    /// `shmat(2)`: maps the segment, read-write or read-only (`SHM_RDONLY`).
    /// The mapping detaches (`shmdt`) when dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Access, Region, SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 10)?;
    /// let map = seg.attach(Access::ReadWrite)?;
    /// assert_eq!(map.len(), 10);
    /// assert_eq!(seg.stat()?.nattch, 1);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn attach(&self, access: Access) -> Result<SysvMapping> {
        let size = self.stat()?.size;
        Ok(SysvMapping {
            core: MapCore::shmat(self.id, size, access)?,
            id: self.id,
        })
    }

    /// `IPC_STAT`: everything the kernel keeps about the segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 100)?;
    /// let st = seg.stat()?;
    /// assert_eq!((st.size, st.perms(), st.cpid), (100, 0o600, std::process::id() as i32));
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn stat(&self) -> Result<SysvStat> {
        shm_sys::shm_stat(self.id)
            .map(|ds| SysvStat::from_raw(self.id, &ds))
            .map_err(|e| Error::os("stat", self.target(), e))
    }

    /// `IPC_SET`: changes owner uid/gid and permission bits. Only the owner,
    /// the creator or a privileged process may; others get `EPERM`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{PermChange, SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 100)?;
    /// seg.set_perms(PermChange::new().mode(0o644))?;
    /// assert_eq!(seg.stat()?.perms(), 0o644);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn set_perms(&self, change: PermChange) -> Result<()> {
        let target = self.target();
        if let Some(mode) = change.mode {
            check_mode("set", &target, mode)?;
        }
        let mut ds = shm_sys::shm_stat(self.id).map_err(|e| Error::os("set", target.clone(), e))?;
        if let Some(uid) = change.uid {
            ds.shm_perm.uid = uid;
        }
        if let Some(gid) = change.gid {
            ds.shm_perm.gid = gid;
        }
        if let Some(mode) = change.mode {
            ds.shm_perm.mode = (u32::from(ds.shm_perm.mode) & !0o777 | mode) as libc::c_ushort;
        }
        // SAFETY: IPC_SET reads the shmid_ds we pass, a valid one from IPC_STAT.
        if unsafe { libc::shmctl(self.id, libc::IPC_SET, &mut ds) } == -1 {
            return Err(Error::last_os("set", target));
        }
        Ok(())
    }

    /// `IPC_RMID`: marks the segment for destruction. The key is free at once;
    /// the memory goes when the last process detaches.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvSegment};
    /// let seg = SysvSegment::create(SysvKey::PRIVATE, 1)?;
    /// let id = seg.id();
    /// seg.remove()?;
    /// assert!(SysvSegment::open_id(id).is_err());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn remove(&self) -> Result<()> {
        remove_id(self.id)?;
        self.remove_on_drop.store(false, Ordering::Relaxed);
        Ok(())
    }
}

fn remove_id(id: i32) -> Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } == -1 {
        return Err(Error::last_os("remove", Target::SysvId(id)));
    }
    Ok(())
}

impl Drop for SysvSegment {
    fn drop(&mut self) {
        if *self.remove_on_drop.get_mut() && self.epoch.is_current() {
            let _ = remove_id(self.id);
        }
    }
}

/// An attached System V segment (`shmat`); detaches on drop.
///
/// # Examples
///
/// ```
/// use shm_segment::{Access, Region, SysvKey, SysvOptions};
/// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 64)?;
/// let map = seg.attach(Access::ReadWrite)?;
/// map.write_pod(0, &1234u32)?;
/// assert_eq!(seg.attach(Access::ReadOnly)?.read_pod::<u32>(0)?, 1234);
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct SysvMapping {
    core: MapCore,
    id: i32,
}

impl SysvMapping {
    /// The shmid of the attached segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Access, SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 1)?;
    /// assert_eq!(seg.attach(Access::ReadOnly)?.id(), seg.id());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The attached memory, for a [`Segment`](crate::Segment).
    pub(crate) fn into_core(self) -> MapCore {
        self.core
    }
}

forward_region!(SysvMapping, core);

/// Everything the kernel keeps about a System V segment (`struct shmid_ds`).
/// Times are seconds since the epoch, 0 for never.
///
/// # Examples
///
/// ```
/// use shm_segment::{Access, SysvKey, SysvOptions};
/// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 8)?;
/// let _map = seg.attach(Access::ReadWrite)?;
/// let st = seg.stat()?;
/// assert_eq!(st.nattch, 1);
/// assert!(st.atime > 0 && st.dtime == 0);
/// assert!(!st.is_marked_for_removal());
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SysvStat {
    /// The key (`IPC_PRIVATE` is 0).
    pub key: SysvKey,
    /// The shmid.
    pub id: i32,
    /// Size in bytes (`shm_segsz`).
    pub size: usize,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Creator uid.
    pub cuid: u32,
    /// Creator gid.
    pub cgid: u32,
    /// `shm_perm.mode`: permission bits plus `SHM_DEST`/`SHM_LOCKED`.
    pub mode: u32,
    /// Number of current attaches.
    pub nattch: u64,
    /// Pid of the creator.
    pub cpid: i32,
    /// Pid of the last `shmat`/`shmdt`.
    pub lpid: i32,
    /// Last attach time.
    pub atime: i64,
    /// Last detach time.
    pub dtime: i64,
    /// Last change time (create or `IPC_SET`).
    pub ctime: i64,
}

impl SysvStat {
    fn from_raw(id: i32, ds: &libc::shmid_ds) -> Self {
        SysvStat {
            key: SysvKey(ds.shm_perm.__key),
            id,
            size: ds.shm_segsz,
            uid: ds.shm_perm.uid,
            gid: ds.shm_perm.gid,
            cuid: ds.shm_perm.cuid,
            cgid: ds.shm_perm.cgid,
            mode: u32::from(ds.shm_perm.mode),
            nattch: ds.shm_nattch,
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
        }
    }

    /// The permission bits, `mode & 0o777`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().mode(0o604).remove_on_drop(true).create(SysvKey::PRIVATE, 8)?;
    /// assert_eq!(seg.stat()?.perms(), 0o604);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn perms(&self) -> u32 {
        self.mode & 0o777
    }

    /// Whether `IPC_RMID` was called and the segment waits for its last detach
    /// (`ipcs` status `dest`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Access, SysvKey, SysvSegment};
    /// let seg = SysvSegment::create(SysvKey::PRIVATE, 8)?;
    /// let map = seg.attach(Access::ReadWrite)?;
    /// let id = seg.id();
    /// seg.remove()?;
    /// let st = shm_segment::sysv::list()?.into_iter().find(|s| s.id == id).unwrap();
    /// assert!(st.is_marked_for_removal());
    /// drop(map); // last detach: now it is gone
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn is_marked_for_removal(&self) -> bool {
        self.mode & SHM_DEST != 0
    }

    /// Whether the segment is locked in memory (`ipcs` status `locked`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 8)?;
    /// assert!(!seg.stat()?.is_locked());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn is_locked(&self) -> bool {
        self.mode & SHM_LOCKED != 0
    }
}

/// Every System V segment on the host that `SHM_STAT_ANY` (or, on kernels
/// before 4.17, `SHM_STAT`) shows, as `ipcs -m` lists them.
///
/// # Examples
///
/// ```
/// use shm_segment::{SysvKey, SysvOptions};
/// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::random(), 8)?;
/// let all = shm_segment::sysv::list()?;
/// assert!(all.iter().any(|s| s.id == seg.id() && s.key == seg.key()));
/// # Ok::<(), shm_segment::Error>(())
/// ```
pub fn list() -> Result<Vec<SysvStat>> {
    let (max, _) = shm_sys::shm_info().map_err(|e| Error::os("list", Target::SysvId(-1), e))?;
    let mut out = Vec::new();
    for index in 0..=max {
        // Unused indexes (EINVAL) and segments we may not read (EACCES) are skipped.
        if let Ok((id, ds)) = shm_sys::shm_stat_index(index) {
            out.push(SysvStat::from_raw(id, &ds));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_then_drop_removes_nothing_more() {
        let key = SysvKey::random();
        let old = SysvOptions::new()
            .remove_on_drop(true)
            .create(key, 64)
            .unwrap();
        old.remove().unwrap();
        let newer = SysvOptions::new()
            .remove_on_drop(true)
            .create(key, 64)
            .unwrap();
        drop(old);
        assert_eq!(SysvSegment::open(key).unwrap().id(), newer.id());
    }
}
