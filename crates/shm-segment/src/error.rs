//! The one error type of this crate.

use std::fmt;
use std::io;

use crate::header::HeaderError;

/// What a segment is called, so that every error names the thing it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A System V segment by key (`key:N` on the command line).
    SysvKey(i32),
    /// A System V segment by shmid (`id:N`).
    SysvId(i32),
    /// A POSIX named segment (`/name`).
    Posix(String),
    /// A memfd, by the name it was created with.
    Memfd(String),
    /// An anonymous shared mapping.
    Anonymous,
    /// Process-local heap memory (tests and models).
    Heap,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::SysvKey(0) => f.write_str("SysV key IPC_PRIVATE"),
            Target::SysvKey(k) => write!(f, "SysV key {:#010x}", *k as u32),
            Target::SysvId(id) => write!(f, "SysV shmid {id}"),
            Target::Posix(name) => write!(f, "POSIX segment {name}"),
            Target::Memfd(name) => write!(f, "memfd {name:?}"),
            Target::Anonymous => f.write_str("anonymous mapping"),
            Target::Heap => f.write_str("heap region"),
        }
    }
}

/// Everything that can go wrong in this crate. Each variant names the
/// operation and the segment, so its `Display` is a complete one-line message.
///
/// # Examples
///
/// ```
/// use shm_segment::{Error, PosixShm};
///
/// let err = PosixShm::open("/shm-test-doc-no-such-segment").unwrap_err();
/// assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
/// assert!(err.to_string().contains("/shm-test-doc-no-such-segment"));
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    #[error("{op} {target}: {source}")]
    Os {
        /// The operation, e.g. `"create"` or `"attach"`.
        op: &'static str,
        /// The segment it was about.
        target: Target,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A POSIX segment or memfd name that the OS would refuse or misread.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A size, mode or other argument out of range.
    #[error("{op} {target}: {reason}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// The segment.
        target: Target,
        /// What is wrong with the argument.
        reason: String,
    },
    /// An access that would pass the end of the region; nothing was read or written.
    #[error(
        "{op} {target}: {len} bytes at offset {offset} pass the end of the {size}-byte region"
    )]
    OutOfBounds {
        /// The operation.
        op: &'static str,
        /// The segment.
        target: Target,
        /// Where the access starts.
        offset: usize,
        /// How many bytes it covers.
        len: usize,
        /// The region's size.
        size: usize,
    },
    /// A typed access at an offset that is not aligned for the type.
    #[error("{op} {target}: offset {offset} is not aligned to {align} bytes")]
    Misaligned {
        /// The operation.
        op: &'static str,
        /// The segment.
        target: Target,
        /// The offset asked for.
        offset: usize,
        /// The alignment the type needs.
        align: usize,
    },
    /// A write through a read-only mapping; nothing was written.
    #[error("{op} {target}: the mapping is read-only")]
    ReadOnly {
        /// The operation.
        op: &'static str,
        /// The segment.
        target: Target,
    },
    /// An existing segment that is not a regular file (a directory, a device…).
    #[error("open {target}: not a regular file")]
    NotRegularFile {
        /// The segment.
        target: Target,
    },
    /// An existing segment smaller than the caller needs.
    #[error("open {target}: the segment is {actual} bytes, at least {needed} are needed")]
    TooSmall {
        /// The segment.
        target: Target,
        /// Its real size.
        actual: usize,
        /// The size asked for.
        needed: usize,
    },
    /// A descriptor that [`Memfd::from_fd`](crate::Memfd::from_fd) refuses to
    /// adopt: it is not a memfd, or it is a memfd whose size may still shrink
    /// (no `F_SEAL_SHRINK`, and this process cannot add it), so a mapping of
    /// it could raise `SIGBUS`.
    #[error("open fd {fd} ({file}) as a memfd: {reason}")]
    UntrustedFd {
        /// The descriptor number in this process.
        fd: i32,
        /// What `/proc/self/fd` says it is (`/memfd:NAME (deleted)`, a path),
        /// or why that is unknown.
        file: String,
        /// Why it is refused.
        reason: String,
    },
    /// A resize that would shrink a segment under mappings that would then
    /// raise `SIGBUS`; nothing was changed. See [`PosixShm`](crate::PosixShm)
    /// and [`Memfd`](crate::Memfd), "Shrinking and `SIGBUS`".
    #[error("resize {target}: shrinking from {size} to {new_size} bytes is refused: {reason}")]
    ShrinkRefused {
        /// The segment.
        target: Target,
        /// Its size now.
        size: usize,
        /// The size asked for.
        new_size: usize,
        /// Why it is refused.
        reason: String,
    },
    /// The segment became smaller than an access needed while the access ran:
    /// another handle or process truncated it. Nothing past the new end was
    /// touched.
    #[error(
        "{op} {target}: the segment shrank to {size} bytes under the access ({len} bytes at \
         offset {offset}): another handle or process truncated it"
    )]
    Shrunk {
        /// The operation.
        op: &'static str,
        /// The segment.
        target: Target,
        /// Where the access starts.
        offset: usize,
        /// How many bytes it covers.
        len: usize,
        /// The segment's size afterwards.
        size: usize,
    },
    /// A shared header that is missing, corrupted or of another kind.
    #[error("{target}: {source}")]
    Header {
        /// The segment.
        target: Target,
        /// What is wrong with the header.
        #[source]
        source: HeaderError,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A header error on `target`: what the layers above report when a
    /// structure's header is missing, corrupted or of another kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Error, HeaderError, Target};
    /// let err = Error::header(Target::Heap, HeaderError::NotInitialised);
    /// assert!(err.to_string().starts_with("heap region: "));
    /// ```
    pub fn header(target: Target, source: HeaderError) -> Self {
        Error::Header { target, source }
    }

    pub(crate) fn os(op: &'static str, target: Target, source: io::Error) -> Self {
        Error::Os { op, target, source }
    }

    /// Builds [`Error::Os`] from the current `errno`.
    pub(crate) fn last_os(op: &'static str, target: Target) -> Self {
        Self::os(op, target, io::Error::last_os_error())
    }

    /// The OS error number, when a system call failed.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = shm_segment::SysvSegment::open_id(i32::MAX).unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether the segment does not exist: `ENOENT`, `EIDRM` (removed while
    /// in use), or the `EINVAL` that `IPC_STAT` answers for a System V shmid
    /// that names no segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{PosixShm, SysvSegment};
    /// assert!(PosixShm::open("/shm-test-doc-not-found").unwrap_err().is_not_found());
    /// assert!(SysvSegment::open_id(i32::MAX).unwrap_err().is_not_found());
    /// ```
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Os { op, target, source } => match source.raw_os_error() {
                Some(libc::ENOENT | libc::EIDRM) => true,
                Some(libc::EINVAL) => {
                    matches!(target, Target::SysvId(_)) && matches!(*op, "open" | "stat" | "attach")
                }
                _ => source.kind() == io::ErrorKind::NotFound,
            },
            _ => false,
        }
    }

    /// Whether the caller lacks the right: `EACCES` or `EPERM` from the
    /// kernel (an OS error of kind `PermissionDenied`), or a write through a
    /// read-only mapping.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Access, Region, SysvKey, SysvOptions};
    /// let seg = SysvOptions::new().remove_on_drop(true).create(SysvKey::PRIVATE, 8)?;
    /// let err = seg.attach(Access::ReadOnly)?.write_at(0, b"x").unwrap_err();
    /// assert!(err.is_permission_denied());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn is_permission_denied(&self) -> bool {
        match self {
            Error::Os { source, .. } => source.kind() == io::ErrorKind::PermissionDenied,
            Error::ReadOnly { .. } => true,
            _ => false,
        }
    }

    /// Whether an exclusive create found the key or name taken (`EEXIST`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{SysvKey, SysvOptions};
    /// let key = SysvKey::random();
    /// let _seg = SysvOptions::new().remove_on_drop(true).create(key, 8)?;
    /// assert!(SysvOptions::new().create(key, 8).unwrap_err().is_exists());
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn is_exists(&self) -> bool {
        self.raw_os_error() == Some(libc::EEXIST)
    }

    /// Whether the system ran out of room for it: `ENOSPC` (a limit such as
    /// `kernel.shmmni`/`shmall`, or a full `/dev/shm`) or `ENOMEM`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Error, Target};
    /// let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
    /// let err = Error::Os { op: "create", target: Target::Posix("/x".into()), source: full };
    /// assert!(err.is_no_space() && !err.is_exists());
    /// ```
    pub fn is_no_space(&self) -> bool {
        matches!(self.raw_os_error(), Some(libc::ENOSPC | libc::ENOMEM))
    }

    /// The closest [`io::ErrorKind`], as used by `From<Error> for io::Error`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let err = HeapRegion::new(8).write_at(4, b"too long").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Os { source, .. } => source.kind(),
            Error::InvalidName { .. }
            | Error::InvalidArgument { .. }
            | Error::OutOfBounds { .. }
            | Error::Misaligned { .. } => io::ErrorKind::InvalidInput,
            Error::ReadOnly { .. } | Error::ShrinkRefused { .. } => io::ErrorKind::PermissionDenied,
            Error::NotRegularFile { .. }
            | Error::TooSmall { .. }
            | Error::Header { .. }
            | Error::UntrustedFd { .. } => io::ErrorKind::InvalidData,
            Error::Shrunk { .. } => io::ErrorKind::UnexpectedEof,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(err.kind(), err)
    }
}
