//! [`Memfd`]: anonymous, sealable shared memory named by a file descriptor.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use bitflags::bitflags;

use crate::error::{Error, Result, Target};
use crate::fd;
use crate::mapping::Mapping;
use crate::perms::PermChange;
use crate::region::Access;

bitflags! {
    /// File seals (`fcntl(F_ADD_SEALS)`), which freeze properties of a memfd
    /// for everyone who holds it, so a receiver can trust what it maps.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Seals;
    /// let s = Seals::SHRINK | Seals::GROW;
    /// assert!(s.contains(Seals::GROW) && !s.contains(Seals::WRITE));
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Seals: u32 {
        /// No more seals may be added.
        const SEAL = libc::F_SEAL_SEAL as u32;
        /// The size may not shrink (so no mapping can `SIGBUS`).
        const SHRINK = libc::F_SEAL_SHRINK as u32;
        /// The size may not grow.
        const GROW = libc::F_SEAL_GROW as u32;
        /// The contents may not change (needs no writable mapping to exist).
        const WRITE = libc::F_SEAL_WRITE as u32;
        /// New writable mappings are refused; existing ones may still write.
        const FUTURE_WRITE = libc::F_SEAL_FUTURE_WRITE as u32;
    }
}

/// A memfd (`memfd_create(2)`): shared memory with no name in any file
/// system, passed to other processes as a file descriptor (inherited across
/// `fork`/`exec`, or sent with [`send_fd`](crate::send_fd)), and sealable.
///
/// # Shrinking and `SIGBUS`
///
/// Every `Memfd` is sealed against shrinking ([`Seals::SHRINK`]): [`create`]
/// seals it, and [`from_fd`] adopts only a memfd that carries the seal or
/// that it can seal. A seal binds every process that holds the descriptor,
/// and is never lifted, so no one can truncate the memfd under a
/// [`Mapping`], in this process or any other, and no access to one raises
/// `SIGBUS` that way. [`resize`] may grow it (unless sealed with
/// [`Seals::GROW`]) and refuses to shrink it ([`Error::ShrinkRefused`]).
///
/// [`create`]: Memfd::create
/// [`from_fd`]: Memfd::from_fd
/// [`resize`]: Memfd::resize
///
/// # Examples
///
/// ```
/// use shm_segment::{Memfd, Region, Seals};
/// use std::os::fd::OwnedFd;
///
/// let fd = Memfd::create("frame", 4096)?;
/// fd.map()?.write_at(0, b"pixels")?;
/// fd.add_seals(Seals::GROW)?;
/// assert!(fd.resize(8192).is_err()); // sealed against growing
/// assert!(fd.resize(1024).is_err()); // and, as every Memfd, against shrinking
///
/// // Hand the descriptor to another process, which rebuilds the handle:
/// let owned: OwnedFd = fd.into();
/// let again = Memfd::from_fd(owned)?;
/// let mut buf = [0u8; 6];
/// again.map()?.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"pixels");
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct Memfd {
    fd: OwnedFd,
    name: String,
}

impl Memfd {
    /// `memfd_create(name, MFD_CLOEXEC|MFD_ALLOW_SEALING)`, sized to `size`
    /// bytes, reserved (`posix_fallocate`) and sealed against shrinking
    /// ([`Seals::SHRINK`]; see "Shrinking and `SIGBUS`" at [`Memfd`]). The
    /// name is only a label (it shows in `/proc/PID/fd` as `memfd:NAME`); it
    /// may repeat.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Seals;
    /// let fd = shm_segment::Memfd::create("doc", 100)?;
    /// assert_eq!(fd.size()?, 100);
    /// assert_eq!(fd.name(), "doc");
    /// assert_eq!(fd.seals()?, Seals::SHRINK);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn create(name: &str, size: usize) -> Result<Self> {
        let target = Target::Memfd(name.to_owned());
        // The kernel limit is 249 bytes for the name ("memfd:" + name < NAME_MAX).
        if name.len() > 249 || name.contains('\0') {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                reason: "a memfd name has at most 249 bytes and no NUL",
            });
        }
        let len = fd::to_off(&target, "create", size)?;
        let c = CString::new(name).expect("checked: no NUL");
        let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        // SAFETY: valid C string and flags; memfd_create returns -1 or a
        // fresh descriptor that we own.
        let fd = unsafe { shm_sys::cvt_fd(libc::memfd_create(c.as_ptr(), flags)) }
            .map_err(|e| Error::os("create", target, e))?;
        let memfd = Memfd {
            fd,
            name: name.to_owned(),
        };
        memfd.set_len(len, 0, "create")?;
        memfd.add_seals(Seals::SHRINK)?;
        Ok(memfd)
    }

    /// Rebuilds a handle from a descriptor received from another process
    /// (or inherited), and makes sure that mapping it is safe: it must be a
    /// non-empty memfd sealed against shrinking. A sealable memfd without the
    /// seal gets it here ([`Seals::SHRINK`], which then binds the sender
    /// too). Refused, with the descriptor closed: what is no regular file
    /// ([`Error::NotRegularFile`]), an empty file ([`Error::TooSmall`]), and,
    /// as [`Error::UntrustedFd`] naming the descriptor and why, a file that
    /// is not a memfd (a disk file, a POSIX segment), a memfd made without
    /// `MFD_ALLOW_SEALING` or whose seals were sealed without the shrink
    /// seal, or a read-only descriptor of an unsealed memfd (adding a seal
    /// needs write access). The name is read back from `/proc/self/fd`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Error, Memfd, Seals};
    /// use std::os::fd::OwnedFd;
    /// let fd: OwnedFd = Memfd::create("x", 10)?.into();
    /// let memfd = Memfd::from_fd(fd)?;
    /// assert_eq!(memfd.name(), "x");
    /// assert!(memfd.seals()?.contains(Seals::SHRINK));
    ///
    /// // A plain file is no memfd: its size could shrink under a mapping.
    /// let file = std::fs::File::open("/proc/self/exe")?;
    /// let err = Memfd::from_fd(file.into()).unwrap_err();
    /// assert!(matches!(err, Error::UntrustedFd { .. }), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let raw = fd.as_raw_fd();
        let link = std::fs::read_link(format!("/proc/self/fd/{raw}"))
            .map(|p| p.to_string_lossy().into_owned())
            .ok();
        let file = link
            .clone()
            .unwrap_or_else(|| "unknown file: /proc/self/fd cannot be read".into());
        let untrusted = |reason: String| Error::UntrustedFd {
            fd: raw,
            file: file.clone(),
            reason,
        };
        let name = match link.as_deref().and_then(|l| l.strip_prefix("/memfd:")) {
            Some(n) => n.strip_suffix(" (deleted)").unwrap_or(n).to_owned(),
            None => link.clone().unwrap_or_else(|| format!("fd {raw}")),
        };
        let memfd = Memfd { fd, name };
        let target = memfd.target();
        let st = fd::fstat(memfd.fd.as_fd()).map_err(|e| Error::os("open", target.clone(), e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::NotRegularFile { target });
        }
        if st.st_size == 0 {
            return Err(Error::TooSmall {
                target,
                actual: 0,
                needed: 1,
            });
        }

        // Which files to trust is decided by the seals alone, not by the name.
        // F_GET_SEALS succeeds only on shared-memory files (shmem and
        // hugetlbfs); every such file starts with F_SEAL_SEAL (no seal can be
        // added, ever) except a memfd made with MFD_ALLOW_SEALING. So "has
        // F_SEAL_SHRINK, or F_ADD_SEALS can add it" holds exactly for memfds
        // that nobody can shrink from now on, which is the property a mapping
        // needs. The /proc/self/fd link (`/memfd:NAME`) only names the file
        // in messages: /proc may be missing (a chroot, a sandbox), and a
        // name proves nothing about the size.
        let is_memfd = link.as_deref().map(|l| l.starts_with("/memfd:"));
        let not_a_memfd = match is_memfd {
            Some(false) => "not a memfd, ",
            _ => "",
        };
        // SAFETY: plain fcntl on a descriptor we own.
        let bits = unsafe { libc::fcntl(raw, libc::F_GET_SEALS) };
        if bits == -1 {
            let err = std::io::Error::last_os_error();
            return Err(untrusted(format!(
                "not a memfd: F_GET_SEALS fails ({err}), so it is no shared-memory file and \
                 nothing keeps its size from shrinking under a mapping (SIGBUS)"
            )));
        }
        let seals = Seals::from_bits_retain(bits as u32);
        if seals.contains(Seals::SHRINK) {
            return Ok(memfd);
        }
        // SAFETY: plain fcntl on a descriptor we own.
        if unsafe { libc::fcntl(raw, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) } == 0 {
            return Ok(memfd);
        }
        let err = std::io::Error::last_os_error();
        let why = if seals.contains(Seals::SEAL) {
            if is_memfd == Some(true) {
                "F_SEAL_SEAL forbids adding it (a memfd made without MFD_ALLOW_SEALING, or \
                 whose seals were sealed without it)"
                    .to_owned()
            } else {
                "F_SEAL_SEAL forbids adding it (a shared-memory file that is no sealable \
                 memfd, such as a POSIX segment)"
                    .to_owned()
            }
        } else if err.raw_os_error() == Some(libc::EPERM) {
            "the descriptor is read-only, and adding a seal needs write access".to_owned()
        } else {
            format!("F_ADD_SEALS fails ({err})")
        };
        Err(untrusted(format!(
            "{not_a_memfd}not sealed against shrinking (F_SEAL_SHRINK), so a peer could \
             truncate it under a mapping (SIGBUS), and {why}"
        )))
    }

    /// The label given at creation.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::Memfd::create("label", 1)?.name(), "label");
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> Target {
        Target::Memfd(self.name.clone())
    }

    /// The current size in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::Memfd::create("s", 7)?.size()?, 7);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn size(&self) -> Result<usize> {
        fd::size(self.fd.as_fd(), "stat", &self.target())
    }

    /// Grows the memfd to `size` bytes, reserving the new memory; refused
    /// (`EPERM`) when sealed with [`Seals::GROW`]. Shrinking is always
    /// [`Error::ShrinkRefused`]: every `Memfd` is sealed against it (see
    /// "Shrinking and `SIGBUS`" at [`Memfd`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Error;
    /// let fd = shm_segment::Memfd::create("r", 1)?;
    /// fd.resize(4096)?;
    /// assert_eq!(fd.size()?, 4096);
    /// assert!(matches!(fd.resize(10), Err(Error::ShrinkRefused { .. })));
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn resize(&self, size: usize) -> Result<()> {
        let len = fd::to_off(&self.target(), "resize", size)?;
        let old = self.size()?;
        if size < old {
            return Err(Error::ShrinkRefused {
                target: self.target(),
                size: old,
                new_size: size,
                reason: "the memfd is sealed against shrinking (F_SEAL_SHRINK), so that no \
                         mapping of it, in any process, can raise SIGBUS"
                    .into(),
            });
        }
        self.set_len(len, old as libc::off_t, "resize")
    }

    fn set_len(&self, len: libc::off_t, from: libc::off_t, op: &'static str) -> Result<()> {
        fd::set_len(self.fd.as_fd(), &self.target(), len, from, true, op)
    }

    /// Maps the whole memfd read-write (refused once sealed with [`Seals::WRITE`]
    /// or [`Seals::FUTURE_WRITE`]; map it read-only then).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// assert_eq!(shm_segment::Memfd::create("m", 64)?.map()?.len(), 64);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn map(&self) -> Result<Mapping> {
        self.map_with(Access::ReadWrite)
    }

    /// Maps the whole memfd read-only.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Region, Seals};
    /// let fd = shm_segment::Memfd::create("ro", 64)?;
    /// fd.add_seals(Seals::WRITE)?;
    /// assert!(fd.map().is_err());
    /// assert!(fd.map_read_only()?.is_read_only());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn map_read_only(&self) -> Result<Mapping> {
        self.map_with(Access::ReadOnly)
    }

    fn map_with(&self, access: Access) -> Result<Mapping> {
        let len = self.size()?;
        // No count of live mappings: the memfd cannot shrink (sealed).
        Mapping::of_fd(self.fd.as_fd(), len, access, self.target(), None)
    }

    /// Adds seals (`F_ADD_SEALS`). Sealing against writes fails with `EBUSY`
    /// while a writable mapping exists.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Memfd, Seals};
    /// let fd = Memfd::create("s", 64)?;
    /// fd.add_seals(Seals::GROW | Seals::SEAL)?;
    /// assert_eq!(fd.seals()?, Seals::SHRINK | Seals::GROW | Seals::SEAL);
    /// assert!(fd.add_seals(Seals::WRITE).is_err()); // SEAL forbids more seals
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn add_seals(&self, seals: Seals) -> Result<()> {
        // SAFETY: plain fcntl on our own descriptor.
        if unsafe {
            libc::fcntl(
                self.fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                seals.bits() as libc::c_int,
            )
        } == -1
        {
            return Err(Error::last_os("seal", self.target()));
        }
        Ok(())
    }

    /// The seals in force (`F_GET_SEALS`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Seals;
    /// assert_eq!(shm_segment::Memfd::create("s", 1)?.seals()?, Seals::SHRINK);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn seals(&self) -> Result<Seals> {
        // SAFETY: plain fcntl on our own descriptor.
        let bits = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_GET_SEALS) };
        if bits == -1 {
            return Err(Error::last_os("seals", self.target()));
        }
        Ok(Seals::from_bits_retain(bits as u32))
    }

    /// `fchown`/`fchmod` on the memfd.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Memfd, PermChange};
    /// Memfd::create("p", 1)?.set_perms(PermChange::new().mode(0o600))?;
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn set_perms(&self, change: PermChange) -> Result<()> {
        fd::set_perms(self.fd.as_fd(), &self.target(), change)
    }
}

impl AsFd for Memfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<Memfd> for OwnedFd {
    fn from(memfd: Memfd) -> OwnedFd {
        memfd.fd
    }
}
