//! The operations behind both the command line and the HTTP API, so the
//! two cannot drift apart.

use serde::Serialize;
use shm_segment::{
    Access, Error, Mapping, PermChange, PosixOptions, PosixShm, PosixStat, Region, RegionChecks,
    SysvMapping, SysvOptions, SysvSegment, SysvStat,
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

/// A mapping of the target, kept with what keeps it alive.
pub(crate) enum Opened {
    Sysv(SysvMapping),
    Posix(Mapping),
}

impl Opened {
    pub(crate) fn region(&self) -> &dyn Region {
        match self {
            Opened::Sysv(m) => m,
            Opened::Posix(m) => m,
        }
    }
}

/// Maps the target, read-only or read-write.
pub(crate) fn open(target: &Target, access: Access, op: &'static str) -> Result<Opened> {
    match sysv(target, op)? {
        Some(seg) => Ok(Opened::Sysv(seg.attach(access)?)),
        None => {
            let Target::Posix(name) = target else {
                unreachable!("sysv() handles the rest")
            };
            let shm = PosixOptions::new().access(access).open(name.as_str())?;
            Ok(Opened::Posix(shm.map()?))
        }
    }
}

/// `len` bytes from `offset` (to the end when `None`).
pub(crate) fn read(target: &Target, offset: usize, len: Option<usize>) -> Result<Vec<u8>> {
    let opened = open(target, Access::ReadOnly, "read")?;
    let region = opened.region();
    let len = match len {
        Some(n) => n,
        None => region
            .len()
            .checked_sub(offset)
            .ok_or_else(|| Error::OutOfBounds {
                op: "read",
                target: region.target(),
                offset,
                len: 0,
                size: region.len(),
            })?,
    };
    region.check_range("read", offset, len)?;
    let mut buf = vec![0; len];
    region.read_at(offset, &mut buf)?;
    Ok(buf)
}

/// Writes `data` at `offset`: all of it, or nothing when it would pass the end.
pub(crate) fn write(target: &Target, offset: usize, data: &[u8]) -> Result<()> {
    let opened = open(target, Access::ReadWrite, "write")?;
    opened.region().write_at(offset, data)
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
        Error::TooSmall { .. } | Error::NotRegularFile { .. } | Error::Header { .. } => 409,
        _ => 500,
    }
}
