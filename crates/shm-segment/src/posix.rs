//! POSIX named shared memory: `shm_open(3)`, `shm_unlink(3)`, in `/dev/shm`.
//!
//! The handles ([`PosixShm`], [`PosixOptions`], [`ShmName`], [`PosixStat`])
//! are also at the crate root; [`list`] lists every segment on the host.
//!
//! # Examples
//!
//! ```
//! use shm_segment::posix;
//! let name = format!("/shm-test-doc-posix-mod-{}", std::process::id());
//! let shm = posix::PosixOptions::new().unlink_on_drop(true).create(&name, 64)?;
//! let listed = posix::list()?.into_iter().find(|s| s.name == name).unwrap();
//! assert_eq!((listed.size, listed.inode), (64, shm.stat()?.inode));
//! # Ok::<(), shm_segment::Error>(())
//! ```

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result, Target};
use crate::fd;
use crate::mapping::{MapCount, Mapping};
use crate::perms::{check_mode, PermChange};
use crate::process::ForkEpoch;
use crate::region::Access;

/// Where Linux keeps POSIX shared memory objects.
pub const SHM_DIR: &str = "/dev/shm";

/// The longest name, without the leading `/` (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// A validated POSIX shared memory name: one leading `/` followed by 1 to 255
/// bytes with no `/` and no NUL, and not `.` or `..`. A name given without
/// the leading `/` gets one, as Python's `SharedMemory(name=...)` does.
///
/// # Examples
///
/// ```
/// use shm_segment::ShmName;
/// assert_eq!(ShmName::new("psm_21467_46075")?.as_str(), "/psm_21467_46075");
/// assert_eq!(ShmName::new("/x")?.as_str(), "/x");
/// assert!(ShmName::new("/a/b").is_err());
/// assert!(ShmName::new("/").is_err());
/// assert!(ShmName::new("/..").is_err());
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShmName(String);

impl ShmName {
    /// Validates `name`, adding a leading `/` when it has none.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_segment::ShmName::new("bad\0name").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self> {
        let bare = name.strip_prefix('/').unwrap_or(name);
        let reason = if bare.is_empty() {
            Some("the name is empty")
        } else if bare.len() > NAME_MAX {
            Some("longer than NAME_MAX (255 bytes)")
        } else if bare.contains('/') {
            Some("only one leading '/' is allowed")
        } else if bare.contains('\0') {
            Some("contains a NUL byte")
        } else if bare == "." || bare == ".." {
            Some("'.' and '..' are not segment names")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(Error::InvalidName {
                name: name.to_owned(),
                reason,
            }),
            None => Ok(ShmName(format!("/{bare}"))),
        }
    }

    /// The name with its leading `/`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::ShmName::new("a")?.as_str(), "/a");
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path of the object in `/dev/shm`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::ShmName::new("a")?.path(), std::path::Path::new("/dev/shm/a"));
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn path(&self) -> std::path::PathBuf {
        std::path::Path::new(SHM_DIR).join(&self.0[1..])
    }

    fn target(&self) -> Target {
        Target::Posix(self.0.clone())
    }

    fn c_name(&self) -> CString {
        CString::new(self.0.as_bytes()).expect("validated: no NUL")
    }
}

impl fmt::Display for ShmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to create or open a POSIX segment, like `std::fs::OpenOptions`.
///
/// Defaults follow the project's security rules: create is exclusive
/// (`O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`), the mode is set to exactly `0600`
/// with `fchmod` so the umask does not decide it, the memory is reserved with
/// `posix_fallocate` so a full `/dev/shm` is `ENOSPC` at create time rather than
/// a `SIGBUS` later, and the name is not unlinked on drop (as with Python's
/// `SharedMemory`, unlinking is the user's explicit choice).
///
/// # Examples
///
/// ```
/// use shm_segment::PosixOptions;
/// let name = format!("/shm-test-doc-opts-{}", std::process::id());
/// let shm = PosixOptions::new().mode(0o640).unlink_on_drop(true).create(&name, 4096)?;
/// assert_eq!(shm.stat()?.mode, 0o640);
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PosixOptions {
    mode: u32,
    access: Access,
    unlink_on_drop: bool,
    reserve: bool,
    min_size: usize,
}

impl Default for PosixOptions {
    fn default() -> Self {
        PosixOptions {
            mode: 0o600,
            access: Access::ReadWrite,
            unlink_on_drop: false,
            reserve: true,
            min_size: 1,
        }
    }
}

impl PosixOptions {
    /// The defaults: mode `0600`, read-write, reserved, not unlinked on drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{PosixOptions, PosixShm, Region};
    /// let name = format!("/shm-test-doc-opts-new-{}", std::process::id());
    /// let shm = PosixOptions::new().create(&name, 64)?;
    /// assert_eq!(shm.stat()?.mode, 0o600); // whatever the umask
    /// assert!(!shm.map()?.is_read_only());
    /// drop(shm);
    /// // Not unlinked on drop: the name is still there.
    /// assert_eq!(PosixOptions::new().open(&name)?.size()?, 64);
    /// PosixShm::unlink_name(&name)?;
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits for a new segment, set exactly (the umask does not apply).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::PosixOptions;
    /// let name = format!("/shm-test-doc-opts-mode-{}", std::process::id());
    /// let shm = PosixOptions::new().mode(0o644).unlink_on_drop(true).create(&name, 1)?;
    /// assert_eq!(shm.stat()?.mode, 0o644);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Open read-only (`O_RDONLY`); [`PosixShm::map`] then maps `PROT_READ`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Access, Error, PosixOptions, Region};
    /// let name = format!("/shm-test-doc-opts-access-{}", std::process::id());
    /// let _made = PosixOptions::new().unlink_on_drop(true).create(&name, 64)?;
    /// let ro = PosixOptions::new().access(Access::ReadOnly).open(&name)?;
    /// assert!(ro.map()?.is_read_only());
    /// assert!(matches!(ro.write_at(0, b"x"), Err(Error::ReadOnly { .. })));
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Unlink the name when the handle drops (the owner's choice). Only in the
    /// process that made the handle: a copy inherited by a `fork`ed child never
    /// unlinks on drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{PosixOptions, PosixShm};
    /// let name = format!("/shm-test-doc-opts-unlink-{}", std::process::id());
    /// drop(PosixOptions::new().unlink_on_drop(true).create(&name, 1)?);
    /// assert!(PosixShm::open(&name).unwrap_err().is_not_found());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn unlink_on_drop(mut self, unlink: bool) -> Self {
        self.unlink_on_drop = unlink;
        self
    }

    /// Whether to reserve the memory at create and resize time (default yes).
    /// Without it the segment is sparse, and touching a page when `/dev/shm`
    /// is full raises `SIGBUS`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::PosixOptions;
    /// use std::os::unix::fs::MetadataExt;
    /// let name = format!("/shm-test-doc-opts-reserve-{}", std::process::id());
    /// let sparse = PosixOptions::new().reserve(false).unlink_on_drop(true).create(&name, 1 << 20)?;
    /// // No page is allocated yet (tmpfs counts 512-byte blocks).
    /// assert_eq!(std::fs::metadata(sparse.name().path())?.blocks(), 0);
    /// drop(sparse);
    /// let reserved = PosixOptions::new().unlink_on_drop(true).create(&name, 1 << 20)?;
    /// assert!(std::fs::metadata(reserved.name().path())?.blocks() >= 2048);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reserve(mut self, reserve: bool) -> Self {
        self.reserve = reserve;
        self
    }

    /// The smallest size `open` accepts (default 1); smaller gives [`Error::TooSmall`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Error, PosixOptions};
    /// let name = format!("/shm-test-doc-opts-min-{}", std::process::id());
    /// let _made = PosixOptions::new().unlink_on_drop(true).create(&name, 32)?;
    /// let err = PosixOptions::new().min_size(64).open(&name).unwrap_err();
    /// assert!(matches!(err, Error::TooSmall { actual: 32, needed: 64, .. }));
    /// assert_eq!(PosixOptions::new().min_size(32).open(&name)?.size()?, 32);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// Creates a new segment of `size` bytes; fails with `EEXIST` if the name
    /// exists (also when a file or symlink was planted there). On any failure
    /// after the object was made, it is unlinked again: nothing half-made stays.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::PosixOptions;
    /// let name = format!("/shm-test-doc-create-{}", std::process::id());
    /// let shm = PosixOptions::new().unlink_on_drop(true).create(&name, 100)?;
    /// let err = PosixOptions::new().create(&name, 100).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn create(&self, name: &str, size: usize) -> Result<PosixShm> {
        let name = ShmName::new(name)?;
        let target = name.target();
        check_mode("create", &target, self.mode)?;
        let len = fd::to_off(&target, "create", size)?;
        let flags =
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid C string; the mode is a plain integer (0: fchmod sets
        // it below); shm_open returns -1 or a fresh descriptor that we own.
        let fd = unsafe { shm_sys::cvt_fd(libc::shm_open(name.c_name().as_ptr(), flags, 0)) }
            .map_err(|e| Error::os("create", target, e))?;
        let shm = PosixShm {
            fd,
            name,
            access: Access::ReadWrite,
            unlink_on_drop: AtomicBool::new(true), // until fully made: a failure below unlinks
            created: true,
            maps: MapCount::default(),
            epoch: ForkEpoch::now(),
        };
        shm.set_perms(PermChange::new().mode(self.mode))?;
        shm.set_len(len, 0, self.reserve, "create")?;
        let mut shm = shm;
        *shm.unlink_on_drop.get_mut() = self.unlink_on_drop;
        Ok(shm)
    }

    /// Opens an existing segment, checking that it is a regular file (never
    /// following a symlink: `ELOOP`) of at least [`min_size`](Self::min_size) bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::PosixOptions;
    /// let name = format!("/shm-test-doc-open-{}", std::process::id());
    /// let _made = PosixOptions::new().unlink_on_drop(true).create(&name, 100)?;
    /// let err = PosixOptions::new().min_size(4096).open(&name).unwrap_err();
    /// assert!(err.to_string().contains("at least 4096"));
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn open(&self, name: &str) -> Result<PosixShm> {
        let name = ShmName::new(name)?;
        let target = name.target();
        let rw = match self.access {
            Access::ReadWrite => libc::O_RDWR,
            Access::ReadOnly => libc::O_RDONLY,
        };
        let flags = rw | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid C string; no O_CREAT, so the mode is unused; shm_open
        // returns -1 or a fresh descriptor that we own.
        let fd = unsafe { shm_sys::cvt_fd(libc::shm_open(name.c_name().as_ptr(), flags, 0)) }
            .map_err(|e| Error::os("open", target.clone(), e))?;
        let shm = PosixShm {
            fd,
            name,
            access: self.access,
            unlink_on_drop: AtomicBool::new(false),
            created: false,
            maps: MapCount::default(),
            epoch: ForkEpoch::now(),
        };
        let st = fd::fstat(shm.fd.as_fd()).map_err(|e| Error::os("open", target.clone(), e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::NotRegularFile { target });
        }
        let size = fd::st_size(&st);
        if size < self.min_size {
            return Err(Error::TooSmall {
                target,
                actual: size,
                needed: self.min_size,
            });
        }
        let mut shm = shm;
        *shm.unlink_on_drop.get_mut() = self.unlink_on_drop;
        Ok(shm)
    }

    /// Opens the segment if it exists, else creates it with `size` bytes;
    /// [`PosixShm::created`] tells which happened. Safe against a racing
    /// creator or unlinker.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::PosixOptions;
    /// let name = format!("/shm-test-doc-ooc-{}", std::process::id());
    /// let a = PosixOptions::new().unlink_on_drop(true).open_or_create(&name, 64)?;
    /// let b = PosixOptions::new().open_or_create(&name, 64)?;
    /// assert!(a.created() && !b.created());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn open_or_create(&self, name: &str, size: usize) -> Result<PosixShm> {
        let mut last = None;
        for _ in 0..16 {
            match self.create(name, size) {
                Err(e) if e.is_exists() => {}
                other => return other,
            }
            match self.open(name) {
                // Unlinked between our create and open: try again.
                Err(e) if e.is_not_found() => last = Some(e),
                other => return other,
            }
        }
        Err(last.expect("the loop ran"))
    }
}

/// A POSIX named shared memory object (an open `shm_open` descriptor).
///
/// Map it with [`map`](PosixShm::map), or read and write it through the
/// descriptor with [`read_at`](PosixShm::read_at) and
/// [`write_at`](PosixShm::write_at). The name lives in `/dev/shm` until
/// someone unlinks it ([`unlink`](PosixShm::unlink), [`PosixShm::unlink_name`],
/// or [`PosixOptions::unlink_on_drop`]); mappings stay valid after that.
///
/// # Shrinking and `SIGBUS`
///
/// A POSIX segment is a file: anyone who may write it (its owner, and every
/// user its mode lets write) can `ftruncate` it at any time, and nothing
/// like a memfd seal forbids that. A [`Mapping`] keeps the length it was
/// made with, so after such a shrink, touching the mapping past the new end
/// raises `SIGBUS` and kills the process, from safe code
/// ([`Region::read_at`](crate::Region::read_at) and every other accessor).
///
/// What this handle does about it:
///
/// - it never shrinks the segment under its own mappings:
///   [`resize`](PosixShm::resize) to a smaller size is
///   [`Error::ShrinkRefused`] while a [`Mapping`] made from this handle lives
///   (whichever thread holds it);
/// - [`read_at`](PosixShm::read_at) and [`write_at`](PosixShm::write_at)
///   use `pread`/`pwrite` on the descriptor, never a mapping, and check
///   bounds against the size the file has now: a shrink is an error
///   ([`Error::OutOfBounds`] or [`Error::Shrunk`]), never a signal.
///
/// What it cannot see: a shrink by another handle of the same segment (in
/// this process or another) or by another process. So map a segment only
/// when everyone who may write it is trusted not to shrink it under you;
/// for segments that other users may write (an admin tool, a server that
/// reads whatever it is pointed at), use `read_at`/`write_at`. The `shm`
/// command and its HTTP server do.
///
/// # Examples
///
/// What the seed's `process_1.py`/`process_2.py` do with Python's `SharedMemory`:
///
/// ```
/// use shm_segment::{PosixShm, PosixOptions, Region};
/// let name = format!("/shm-test-doc-psm-{}", std::process::id());
/// // process 1
/// let shm = PosixOptions::new().unlink_on_drop(true).create(&name, 1024)?;
/// let buf = shm.map()?;
/// buf.write_at(0, &[1])?;
/// // process 2
/// let other = PosixShm::open(&name)?.map()?;
/// other.write_at(1, &[2, 3, 4])?;
/// // both see all four bytes
/// let mut seen = [0u8; 4];
/// buf.read_at(0, &mut seen)?;
/// assert_eq!(seen, [1, 2, 3, 4]);
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct PosixShm {
    fd: OwnedFd,
    name: ShmName,
    access: Access,
    /// Cleared by a successful `unlink`, so drop never unlinks a newer
    /// segment that took the name.
    unlink_on_drop: AtomicBool,
    created: bool,
    /// The mappings made from this handle that are still alive; a shrinking
    /// `resize` needs it at 0.
    maps: MapCount,
    /// The process that made the handle: a `fork`ed child's copy never
    /// unlinks on drop (the name belongs to the parent's handle).
    epoch: ForkEpoch,
}

impl PosixShm {
    /// Creates a new segment with the defaults of [`PosixOptions`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::PosixShm;
    /// let name = format!("/shm-test-doc-new-{}", std::process::id());
    /// let shm = PosixShm::create(&name, 4096)?;
    /// assert_eq!(shm.size()?, 4096);
    /// shm.unlink()?;
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn create(name: &str, size: usize) -> Result<Self> {
        PosixOptions::new().create(name, size)
    }

    /// Opens an existing segment read-write.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_segment::PosixShm::open("/shm-test-doc-missing").is_err());
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        PosixOptions::new().open(name)
    }

    /// Opens the segment, or creates it with `size` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("/shm-test-doc-ooc2-{}", std::process::id());
    /// let shm = shm_segment::PosixShm::open_or_create(&name, 10)?;
    /// assert!(shm.created());
    /// shm.unlink()?;
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn open_or_create(name: &str, size: usize) -> Result<Self> {
        PosixOptions::new().open_or_create(name, size)
    }

    /// `shm_unlink(3)` by name, without opening it.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = shm_segment::PosixShm::unlink_name("/shm-test-doc-nothing").unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    /// ```
    pub fn unlink_name(name: &str) -> Result<()> {
        let name = ShmName::new(name)?;
        // SAFETY: valid C string.
        if unsafe { libc::shm_unlink(name.c_name().as_ptr()) } == -1 {
            return Err(Error::last_os("unlink", name.target()));
        }
        Ok(())
    }

    /// The name, with its leading `/`.
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("/shm-test-doc-name-{}", std::process::id());
    /// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 1)?;
    /// assert_eq!(shm.name().as_str(), name);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn name(&self) -> &ShmName {
        &self.name
    }

    /// Whether this handle created the segment (see [`PosixOptions::open_or_create`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("/shm-test-doc-created-{}", std::process::id());
    /// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 1)?;
    /// assert!(shm.created());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn created(&self) -> bool {
        self.created
    }

    /// Sets whether dropping the handle unlinks the name.
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("/shm-test-doc-owner-{}", std::process::id());
    /// let mut shm = shm_segment::PosixShm::create(&name, 1)?;
    /// shm.set_unlink_on_drop(true);
    /// drop(shm);
    /// assert!(shm_segment::PosixShm::open(&name).is_err());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn set_unlink_on_drop(&mut self, unlink: bool) {
        *self.unlink_on_drop.get_mut() = unlink;
    }

    /// The current size in bytes (`fstat`).
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("/shm-test-doc-size-{}", std::process::id());
    /// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 100)?;
    /// assert_eq!(shm.size()?, 100);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn size(&self) -> Result<usize> {
        fd::size(self.fd.as_fd(), "stat", &self.name.target())
    }

    /// Maps the whole segment, read-write (or read-only when opened so), at
    /// the size it has now. While the mapping lives, this handle refuses to
    /// shrink the segment; others may not: see "Shrinking and `SIGBUS`" at
    /// [`PosixShm`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let name = format!("/shm-test-doc-map-{}", std::process::id());
    /// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 100)?;
    /// assert_eq!(shm.map()?.len(), 100);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn map(&self) -> Result<Mapping> {
        self.map_with(self.access)
    }

    /// Maps the whole segment read-only, whatever it was opened for. See
    /// "Shrinking and `SIGBUS`" at [`PosixShm`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let name = format!("/shm-test-doc-mapro-{}", std::process::id());
    /// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 100)?;
    /// assert!(shm.map_read_only()?.write_at(0, b"x").is_err());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn map_read_only(&self) -> Result<Mapping> {
        self.map_with(Access::ReadOnly)
    }

    fn map_with(&self, access: Access) -> Result<Mapping> {
        // Counted before the size is read, so that no shrink of this handle
        // can come between the size and the mapping.
        let live = self.maps.ticket();
        let len = self.size()?;
        Mapping::of_fd(self.fd.as_fd(), len, access, self.name.target(), Some(live))
    }

    /// Changes the size (`ftruncate`), reserving new memory (it is reserved
    /// here even when [`PosixOptions::reserve`] said not to at create time).
    ///
    /// Growing is always fine: existing mappings keep their length. Shrinking
    /// is refused with [`Error::ShrinkRefused`] while a mapping made from this
    /// handle lives, since touching its pages past the new end would raise
    /// `SIGBUS`; drop them first. Mappings made from other handles, here or
    /// in other processes, are not seen: see "Shrinking and `SIGBUS`" at
    /// [`PosixShm`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Error, Region};
    /// let name = format!("/shm-test-doc-resize-{}", std::process::id());
    /// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 100)?;
    /// let map = shm.map()?;
    /// shm.resize(8192)?;
    /// assert_eq!(shm.size()?, 8192);
    /// assert!(matches!(shm.resize(10), Err(Error::ShrinkRefused { .. })));
    /// drop(map);
    /// shm.resize(10)?;
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn resize(&self, size: usize) -> Result<()> {
        let target = self.name.target();
        let len = fd::to_off(&target, "resize", size)?;
        match self.maps.shrink_lock() {
            // No mapping of this handle lives, and none can be made until the
            // lock drops: any size is fine.
            Ok(_lock) => {
                let old = self.size()? as libc::off_t;
                self.set_len(len, old.min(len), true, "resize")
            }
            Err(live) => {
                let old = self.size()?;
                if size < old {
                    return Err(Error::ShrinkRefused {
                        target,
                        size: old,
                        new_size: size,
                        reason: format!(
                            "{live} mapping{} of this handle {} live, and touching {} past \
                             the new end would raise SIGBUS; drop {} first",
                            if live == 1 { "" } else { "s" },
                            if live == 1 { "is" } else { "are" },
                            if live == 1 { "it" } else { "them" },
                            if live == 1 { "it" } else { "them" },
                        ),
                    });
                }
                self.set_len(len, old as libc::off_t, true, "resize")
            }
        }
    }

    /// The descriptor as a `File`, for `pread`/`pwrite`; never closed.
    fn file(&self) -> ManuallyDrop<fs::File> {
        // SAFETY: the descriptor is open for as long as `self` lives, and the
        // `ManuallyDrop` never closes it; callers use the `File` only while
        // they borrow `self`.
        ManuallyDrop::new(unsafe { fs::File::from_raw_fd(self.fd.as_raw_fd()) })
    }

    /// Checks `offset .. offset + len` against the size the file has now.
    fn check_now(&self, op: &'static str, offset: usize, len: usize) -> Result<()> {
        let size = fd::size(self.fd.as_fd(), op, &self.name.target())?;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(Error::OutOfBounds {
                op,
                target: self.name.target(),
                offset,
                len,
                size,
            }),
        }
    }

    /// What a short `pread`/`pwrite` means: the file shrank under it.
    fn shrunk(&self, op: &'static str, offset: usize, len: usize) -> Error {
        Error::Shrunk {
            op,
            target: self.name.target(),
            offset,
            len,
            size: self.size().unwrap_or(0),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` with `pread(2)` on the
    /// descriptor, never through a mapping: the way to read a segment that
    /// someone else may shrink (see "Shrinking and `SIGBUS`" at [`PosixShm`]).
    /// The range is checked against the size the segment has now
    /// ([`Error::OutOfBounds`]); a shrink while it reads is [`Error::Shrunk`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Error, PosixOptions};
    /// let name = format!("/shm-test-doc-pread-{}", std::process::id());
    /// let shm = PosixOptions::new().unlink_on_drop(true).create(&name, 4096)?;
    /// shm.write_at(10, b"by descriptor")?;
    /// let mut buf = [0u8; 13];
    /// shm.read_at(10, &mut buf)?;
    /// assert_eq!(&buf, b"by descriptor");
    /// let mut big = vec![0u8; 4097];
    /// assert!(matches!(shm.read_at(0, &mut big), Err(Error::OutOfBounds { .. })));
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_now("read", offset, buf.len())?;
        match self.file().read_exact_at(buf, offset as u64) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.shrunk("read", offset, buf.len()))
            }
            Err(e) => Err(Error::os("read", self.name.target(), e)),
        }
    }

    /// Copies `data` into the segment at `offset` with `pwrite(2)` on the
    /// descriptor, never through a mapping (see "Shrinking and `SIGBUS`" at
    /// [`PosixShm`]). A write that would pass the end the segment has now is
    /// [`Error::OutOfBounds`] and writes nothing; on a handle opened
    /// read-only it is [`Error::ReadOnly`].
    ///
    /// If another process shrinks the segment while the bytes are copied,
    /// `pwrite` grows it back to the end of this write, as it does for any
    /// file: the bytes land, and the segment may end up bigger than the
    /// shrink left it (never past the end this write was checked against).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Error, PosixOptions};
    /// let name = format!("/shm-test-doc-pwrite-{}", std::process::id());
    /// let shm = PosixOptions::new().unlink_on_drop(true).create(&name, 16)?;
    /// shm.write_at(12, b"end!")?;
    /// assert!(matches!(shm.write_at(13, b"end!"), Err(Error::OutOfBounds { .. })));
    /// assert_eq!(shm.size()?, 16);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(Error::ReadOnly {
                op: "write",
                target: self.name.target(),
            });
        }
        self.check_now("write", offset, data.len())?;
        self.file()
            .write_all_at(data, offset as u64)
            .map_err(|e| Error::os("write", self.name.target(), e))
    }

    fn set_len(
        &self,
        len: libc::off_t,
        from: libc::off_t,
        reserve: bool,
        op: &'static str,
    ) -> Result<()> {
        fd::set_len(self.fd.as_fd(), &self.name.target(), len, from, reserve, op)
    }

    /// `fchown`/`fchmod`: changes owner and permission bits.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::PermChange;
    /// let name = format!("/shm-test-doc-chmod-{}", std::process::id());
    /// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 1)?;
    /// shm.set_perms(PermChange::new().mode(0o604))?;
    /// assert_eq!(shm.stat()?.mode, 0o604);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn set_perms(&self, change: PermChange) -> Result<()> {
        fd::set_perms(self.fd.as_fd(), &self.name.target(), change)
    }

    /// `fstat`: size, mode, owner and times.
    ///
    /// # Examples
    ///
    /// ```
    /// let name = format!("/shm-test-doc-stat-{}", std::process::id());
    /// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 10)?;
    /// let st = shm.stat()?;
    /// assert_eq!((st.size, st.mode, st.uid), (10, 0o600, unsafe { libc::geteuid() }));
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn stat(&self) -> Result<PosixStat> {
        let st =
            fd::fstat(self.fd.as_fd()).map_err(|e| Error::os("stat", self.name.target(), e))?;
        Ok(PosixStat {
            name: self.name.to_string(),
            size: fd::st_size(&st),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            atime: st.st_atime,
            mtime: st.st_mtime,
            ctime: st.st_ctime,
            inode: st.st_ino,
        })
    }

    /// `shm_unlink(3)`: removes the name; existing mappings and handles stay
    /// valid. Dropping this handle afterwards unlinks nothing more.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let name = format!("/shm-test-doc-unlink-{}", std::process::id());
    /// let shm = shm_segment::PosixShm::create(&name, 16)?;
    /// let map = shm.map()?;
    /// shm.unlink()?;
    /// map.write_at(0, b"still mapped")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        Self::unlink_name(self.name.as_str())?;
        self.unlink_on_drop.store(false, Ordering::Relaxed);
        Ok(())
    }
}

impl AsFd for PosixShm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for PosixShm {
    fn drop(&mut self) {
        if *self.unlink_on_drop.get_mut() && self.epoch.is_current() {
            let _ = self.unlink();
        }
    }
}

/// What `fstat` says of a POSIX segment. Times are seconds since the epoch.
///
/// # Examples
///
/// ```
/// let name = format!("/shm-test-doc-pstat-{}", std::process::id());
/// let shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 10)?;
/// assert_eq!(shm.stat()?.name, name);
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PosixStat {
    /// The name, with its leading `/`.
    pub name: String,
    /// Size in bytes.
    pub size: usize,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Last access time.
    pub atime: i64,
    /// Last modification time.
    pub mtime: i64,
    /// Last status change time.
    pub ctime: i64,
    /// Inode number in `/dev/shm`, as `/proc/PID/maps` shows it.
    pub inode: u64,
}

/// Every POSIX shared memory object in `/dev/shm` (regular files only;
/// semaphores, named `sem.*`, are left out).
///
/// # Examples
///
/// ```
/// let name = format!("/shm-test-doc-list-{}", std::process::id());
/// let _shm = shm_segment::PosixOptions::new().unlink_on_drop(true).create(&name, 10)?;
/// assert!(shm_segment::posix::list()?.iter().any(|s| s.name == name && s.size == 10));
/// # Ok::<(), shm_segment::Error>(())
/// ```
pub fn list() -> Result<Vec<PosixStat>> {
    let dir_target = || Target::Posix(SHM_DIR.to_owned());
    let mut out = Vec::new();
    for entry in fs::read_dir(SHM_DIR).map_err(|e| Error::os("list", dir_target(), e))? {
        let entry = entry.map_err(|e| Error::os("list", dir_target(), e))?;
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if file.starts_with("sem.") {
            continue;
        }
        // Vanished since read_dir, or not a regular file: skip.
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.file_type().is_file() || meta.file_type().is_fifo() {
            continue;
        }
        out.push(PosixStat {
            name: format!("/{file}"),
            size: usize::try_from(meta.size()).unwrap_or(usize::MAX),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            atime: meta.atime(),
            mtime: meta.mtime(),
            ctime: meta.ctime(),
            inode: meta.ino(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_after_unlink_leaves_a_newer_segment_of_that_name_alone() {
        let name = format!("/shm-test-unit-relink-{}", std::process::id());
        let old = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, 64)
            .unwrap();
        old.unlink().unwrap();
        let newer = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, 128)
            .unwrap();
        drop(old);
        assert_eq!(PosixShm::open(&name).unwrap().size().unwrap(), 128);
        drop(newer);
        assert!(PosixShm::open(&name).is_err());
    }
}
