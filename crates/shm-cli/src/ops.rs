//! The operations behind both the command line and the HTTP API, so the
//! two cannot drift apart.

use serde::Serialize;
use shm_segment::{
    Access, Error, HeapRegion, PermChange, PosixOptions, PosixShm, PosixStat, Region, SysvMapping,
    SysvOptions, SysvSegment, SysvStat,
};

use crate::procmaps::{self, Mapped};
use crate::target::Target;

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// What `create` made.
#[derive(Debug, Serialize)]
pub(crate) struct Created {
    /// How to name it from now on (`id:N` for private SysV segments).
    pub(crate) target: String,
    /// SysV: the key (0 for private).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<i32>,
    /// SysV: the shmid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shmid: Option<i32>,
    /// POSIX: the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    pub(crate) size: u64,
    pub(crate) mode: u32,
}

/// Everything known about one segment.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Stat {
    Sysv {
        #[serde(flatten)]
        stat: SysvStat,
        /// Pids that map it (from /proc).
        attached: Vec<u32>,
    },
    Posix {
        #[serde(flatten)]
        stat: PosixStat,
        attached: Vec<u32>,
    },
}

fn private_only_creates(op: &'static str) -> Error {
    Error::InvalidArgument {
        op,
        target: shm_segment::Target::SysvKey(0),
        reason: "key:private only names a segment to create; use id:N for an existing one".into(),
    }
}

fn sysv(target: &Target, op: &'static str) -> Result<Option<SysvSegment>> {
    match target {
        Target::Key(key) => SysvSegment::open(*key).map(Some),
        Target::Id(id) => SysvSegment::open_id(*id).map(Some),
        Target::Private => Err(private_only_creates(op)),
        Target::Posix(_) => Ok(None),
    }
}

/// Creates a segment, exclusively.
pub(crate) fn create(target: &Target, size: u64, mode: u32) -> Result<Created> {
    match target {
        Target::Key(_) | Target::Private => {
            let key = match target {
                Target::Key(k) => *k,
                _ => shm_segment::SysvKey::PRIVATE,
            };
            let len = usize::try_from(size).unwrap_or(usize::MAX);
            let seg = SysvOptions::new().mode(mode).create(key, len)?;
            Ok(Created {
                target: if key.is_private() {
                    format!("id:{}", seg.id())
                } else {
                    format!("key:{key}")
                },
                key: Some(key.0),
                shmid: Some(seg.id()),
                name: None,
                size,
                mode,
            })
        }
        Target::Id(id) => Err(Error::InvalidArgument {
            op: "create",
            target: shm_segment::Target::SysvId(*id),
            reason: "the kernel picks shmids; create with key:N or key:private".into(),
        }),
        Target::Posix(name) => {
            let shm = PosixOptions::new().mode(mode).create(name.as_str(), size)?;
            Ok(Created {
                target: name.to_string(),
                key: None,
                shmid: None,
                name: Some(shm.name().to_string()),
                size,
                mode,
            })
        }
    }
}

/// Stat, with the pids that map it.
pub(crate) fn stat(target: &Target) -> Result<Stat> {
    let attached = procmaps::attached();
    match sysv(target, "stat")? {
        Some(seg) => {
            let stat = seg.stat()?;
            let pids = attached
                .get(&Mapped::Sysv(stat.id))
                .cloned()
                .unwrap_or_default();
            Ok(Stat::Sysv {
                stat,
                attached: pids,
            })
        }
        None => {
            let Target::Posix(name) = target else {
                unreachable!("sysv() handles the rest")
            };
            let stat = PosixOptions::new()
                .access(Access::ReadOnly)
                .open(name.as_str())?
                .stat()?;
            let pids = attached
                .get(&Mapped::Posix(stat.name.clone()))
                .cloned()
                .unwrap_or_default();
            Ok(Stat::Posix {
                stat,
                attached: pids,
            })
        }
    }
}

/// Every segment of the kinds asked for.
pub(crate) fn list(sysv_too: bool, posix_too: bool) -> Result<Vec<Stat>> {
    let attached = procmaps::attached();
    let mut out = Vec::new();
    if sysv_too {
        for stat in shm_segment::sysv_list()? {
            let pids = attached
                .get(&Mapped::Sysv(stat.id))
                .cloned()
                .unwrap_or_default();
            out.push(Stat::Sysv {
                stat,
                attached: pids,
            });
        }
    }
    if posix_too {
        for stat in shm_segment::posix_list()? {
            let pids = attached
                .get(&Mapped::Posix(stat.name.clone()))
                .cloned()
                .unwrap_or_default();
            out.push(Stat::Posix {
                stat,
                attached: pids,
            });
        }
    }
    Ok(out)
}

/// An opened segment, kept with what keeps it alive.
///
/// System V segments cannot shrink, so they are mapped. POSIX segments are
/// never mapped here: anyone who may write one can `ftruncate` it at any
/// time, and touching a mapping past the new end would kill this process
/// with `SIGBUS` (see `shm_segment::PosixShm`, "Shrinking and `SIGBUS`").
/// They are read and written with `pread`/`pwrite` on the descriptor
/// instead, so a shrink is an error for that one command or request.
pub(crate) enum Opened {
    Sysv(SysvMapping),
    Posix {
        shm: PosixShm,
        /// The size when it was opened: what "the whole segment" means.
        len: usize,
    },
}

impl Opened {
    /// The size in bytes when it was opened.
    pub(crate) fn len(&self) -> usize {
        match self {
            Opened::Sysv(m) => m.len(),
            Opened::Posix { len, .. } => *len,
        }
    }

    /// The segment, as errors name it.
    pub(crate) fn target(&self) -> shm_segment::Target {
        match self {
            Opened::Sysv(m) => m.target(),
            Opened::Posix { shm, .. } => shm_segment::Target::Posix(shm.name().to_string()),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; all or nothing.
    pub(crate) fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        match self {
            Opened::Sysv(m) => m.read_at(offset, buf),
            Opened::Posix { shm, len } => shm
                .read_at(offset, buf)
                .map_err(|e| shrunk_since_open(e, *len)),
        }
    }

    /// Copies `data` in at `offset`; all or nothing.
    pub(crate) fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        match self {
            Opened::Sysv(m) => m.write_at(offset, data),
            Opened::Posix { shm, len } => shm
                .write_at(offset, data)
                .map_err(|e| shrunk_since_open(e, *len)),
        }
    }

    /// A region to decode this project's structures in: the mapping itself
    /// for System V, a private copy of the first `prefix` bytes (all when
    /// `None`) for POSIX, the rest reading as zeros.
    pub(crate) fn region(&self, prefix: Option<usize>) -> Result<Box<dyn Region + '_>> {
        match self {
            Opened::Sysv(m) => Ok(Box::new(m)),
            Opened::Posix { shm, len } => Ok(Box::new(Snapshot::take(shm, *len, prefix, |e| {
                shrunk_since_open(e, *len)
            })?)),
        }
    }
}

/// A bounds error on a range that fitted when the segment was opened: it
/// shrank since, which is what the message should say.
fn shrunk_since_open(err: Error, opened_len: usize) -> Error {
    match err {
        Error::OutOfBounds {
            op,
            target,
            offset,
            len,
            size,
        } if offset.checked_add(len).is_some_and(|end| end <= opened_len) => Error::Shrunk {
            op,
            target,
            offset,
            len,
            size: size as u64,
        },
        other => other,
    }
}

/// A private copy of a POSIX segment, read with `pread`, that the decoders
/// (`Header::read`, `shm_ring::inspect`, …) can take as a region: no peer
/// can shrink it under them.
#[derive(Debug)]
struct Snapshot {
    copy: HeapRegion,
    target: shm_segment::Target,
}

impl Snapshot {
    /// Copies the first `prefix` bytes of `len` (all when `None`) in pieces.
    fn take(
        shm: &PosixShm,
        len: usize,
        prefix: Option<usize>,
        on_err: impl Fn(Error) -> Error,
    ) -> Result<Self> {
        let target = shm_segment::Target::Posix(shm.name().to_string());
        let copy = HeapRegion::try_new(len).map_err(|_| Error::InvalidArgument {
            op: "read",
            target: target.clone(),
            reason: format!("cannot allocate {len} bytes for a copy of it"),
        })?;
        let want = prefix.map_or(len, |p| p.min(len));
        let mut piece = vec![0u8; want.min(1 << 20)];
        let mut offset = 0;
        while offset < want {
            let n = piece.len().min(want - offset);
            shm.read_at(offset, &mut piece[..n]).map_err(&on_err)?;
            copy.write_at(offset, &piece[..n])?;
            offset += n;
        }
        Ok(Snapshot { copy, target })
    }
}

// SAFETY: forwards pointer and length to the `HeapRegion` it owns, which
// upholds the contract for as long as the snapshot lives; it claims to be
// read-only, which asks less of the memory, not more.
unsafe impl Region for Snapshot {
    fn as_ptr(&self) -> *mut u8 {
        self.copy.as_ptr()
    }
    fn len(&self) -> usize {
        self.copy.len()
    }
    fn is_read_only(&self) -> bool {
        true
    }
    fn target(&self) -> shm_segment::Target {
        self.target.clone()
    }
}

/// Opens the target: System V mapped, POSIX by descriptor (see [`Opened`]).
pub(crate) fn open(target: &Target, access: Access, op: &'static str) -> Result<Opened> {
    match sysv(target, op)? {
        Some(seg) => Ok(Opened::Sysv(seg.attach(access)?)),
        None => {
            let Target::Posix(name) = target else {
                unreachable!("sysv() handles the rest")
            };
            let shm = PosixOptions::new().access(access).open(name.as_str())?;
            let size = shm.size()?;
            let len = usize::try_from(size).map_err(|_| Error::InvalidArgument {
                op,
                target: shm_segment::Target::Posix(name.to_string()),
                reason: format!("size {size} does not fit in the address space"),
            })?;
            Ok(Opened::Posix { shm, len })
        }
    }
}

/// `len` bytes from `offset` (to the end when `None`).
pub(crate) fn read(target: &Target, offset: usize, len: Option<usize>) -> Result<Vec<u8>> {
    let opened = open(target, Access::ReadOnly, "read")?;
    let size = opened.len();
    let out_of_bounds = |len| Error::OutOfBounds {
        op: "read",
        target: opened.target(),
        offset,
        len,
        size,
    };
    let len = match len {
        Some(n) => n,
        None => size.checked_sub(offset).ok_or_else(|| out_of_bounds(0))?,
    };
    // Checked before the buffer is allocated: a huge --len is an error, not an abort.
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(out_of_bounds(len));
    }
    let mut buf = vec![0; len];
    opened.read_at(offset, &mut buf)?;
    Ok(buf)
}

/// Writes `data` at `offset`: all of it, or nothing when it would pass the end.
pub(crate) fn write(target: &Target, offset: usize, data: &[u8]) -> Result<()> {
    let opened = open(target, Access::ReadWrite, "write")?;
    opened.write_at(offset, data)
}

/// Changes owner and mode.
pub(crate) fn set(target: &Target, change: PermChange) -> Result<()> {
    match sysv(target, "set")? {
        Some(seg) => seg.set_perms(change),
        None => {
            let Target::Posix(name) = target else {
                unreachable!("sysv() handles the rest")
            };
            // Opened read-only: fchown/fchmod need ownership, not write access.
            PosixOptions::new()
                .access(Access::ReadOnly)
                .open(name.as_str())?
                .set_perms(change)
        }
    }
}

/// `IPC_RMID` or `shm_unlink`.
pub(crate) fn remove(target: &Target) -> Result<()> {
    match sysv(target, "remove")? {
        Some(seg) => seg.remove(),
        None => {
            let Target::Posix(name) = target else {
                unreachable!("sysv() handles the rest")
            };
            PosixShm::unlink_name(name.as_str())
        }
    }
}

/// The HTTP status that fits an error (the CLI prints it in `--json` errors too).
pub(crate) fn http_status(err: &Error) -> u16 {
    match err {
        Error::Os { op, target, source } => match source.raw_os_error() {
            Some(libc::ENOENT | libc::EIDRM) => 404,
            // A shmid that does not exist is EINVAL from IPC_STAT.
            Some(libc::EINVAL)
                if matches!(target, shm_segment::Target::SysvId(_)) && *op == "open" =>
            {
                404
            }
            Some(libc::EACCES | libc::EPERM) => 403,
            Some(libc::EEXIST) => 409,
            Some(libc::ENOSPC | libc::ENOMEM) => 507,
            Some(libc::EINVAL) => 400,
            _ => 500,
        },
        Error::OutOfBounds { .. } => 413,
        Error::ReadOnly { .. } => 403,
        Error::InvalidName { .. } | Error::InvalidArgument { .. } | Error::Misaligned { .. } => 400,
        Error::TooSmall { .. }
        | Error::NotRegularFile { .. }
        | Error::Header { .. }
        | Error::Shrunk { .. }
        | Error::ShrinkRefused { .. } => 409,
        _ => 500,
    }
}
