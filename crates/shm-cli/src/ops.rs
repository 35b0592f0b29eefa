//! The operations behind both the command line and the HTTP API, so the
//! two cannot drift apart.
//!
//! A segment argument is resolved once, into a [`Segment`]: a System V
//! segment or an open POSIX descriptor. Everything after that (stat, read,
//! write, set, remove) goes through that one handle, so a request never
//! checks one object and acts on another.

use std::io;

use serde::Serialize;
use shm_segment::{
    Access, Error, HeapRegion, PermChange, PosixOptions, PosixShm, PosixStat, Region, SysvMapping,
    SysvOptions, SysvSegment, SysvStat,
};

use crate::procmaps::{self, Attached, Mapped};
use crate::spec::Spec;

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
    pub(crate) size: usize,
    pub(crate) mode: u32,
}

/// Everything known about one segment.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Stat {
    Sysv {
        #[serde(flatten)]
        stat: SysvStat,
        /// The times as ISO 8601 dates (UTC), `null` for never.
        #[serde(flatten)]
        dates: SysvDates,
        /// Pids that map it (from /proc).
        attached: Vec<u32>,
        /// False when some processes could not be looked at (other users'),
        /// so `attached` may miss some.
        attached_complete: bool,
    },
    Posix {
        #[serde(flatten)]
        stat: PosixStat,
        #[serde(flatten)]
        dates: PosixDates,
        attached: Vec<u32>,
        attached_complete: bool,
    },
}

/// A System V segment's times as dates.
#[derive(Debug, Serialize)]
pub(crate) struct SysvDates {
    pub(crate) atime_iso: Option<String>,
    pub(crate) dtime_iso: Option<String>,
    pub(crate) ctime_iso: Option<String>,
}

/// A POSIX segment's times as dates.
#[derive(Debug, Serialize)]
pub(crate) struct PosixDates {
    pub(crate) atime_iso: Option<String>,
    pub(crate) mtime_iso: Option<String>,
    pub(crate) ctime_iso: Option<String>,
}

impl Stat {
    fn sysv(stat: SysvStat, seen: &Attached) -> Stat {
        let attached = seen.pids(&Mapped::Sysv(stat.id));
        // Every attach accounted for: nothing was missed, whoever we could not see.
        let attached_complete = seen.unreadable == 0 || attached.len() as u64 >= stat.nattch;
        Stat::Sysv {
            dates: SysvDates {
                atime_iso: iso_date(stat.atime),
                dtime_iso: iso_date(stat.dtime),
                ctime_iso: iso_date(stat.ctime),
            },
            stat,
            attached,
            attached_complete,
        }
    }

    fn posix(stat: PosixStat, seen: &Attached) -> Stat {
        Stat::Posix {
            dates: PosixDates {
                atime_iso: iso_date(stat.atime),
                mtime_iso: iso_date(stat.mtime),
                ctime_iso: iso_date(stat.ctime),
            },
            attached: seen.pids(&Mapped::Posix(stat.name.clone())),
            attached_complete: seen.unreadable == 0,
            stat,
        }
    }
}

/// Seconds since the epoch as `2025-01-02T03:04:05Z`; `None` for 0 (never).
pub(crate) fn iso_date(secs: i64) -> Option<String> {
    if secs == 0 {
        return None;
    }
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    ))
}

fn private_only_creates(op: &'static str) -> Error {
    Error::InvalidArgument {
        op,
        target: shm_segment::Target::SysvKey(0),
        reason: "key:private only names a segment to create; use id:N for an existing one".into(),
    }
}

/// One existing segment, resolved once from its name.
#[derive(Debug)]
pub(crate) enum Segment {
    /// A System V segment (not attached).
    Sysv(SysvSegment),
    /// An open POSIX descriptor, read-only or read-write as asked.
    Posix(PosixShm),
}

impl Segment {
    /// Resolves `target`: by key or shmid for System V, `shm_open` with
    /// `access` for POSIX. `key:private` names nothing that exists.
    pub(crate) fn open(target: &Spec, access: Access, op: &'static str) -> Result<Segment> {
        let opened = match target {
            Spec::Key(key) => SysvSegment::open(*key).map(Segment::Sysv),
            Spec::Id(id) => SysvSegment::open_id(*id).map(Segment::Sysv),
            Spec::Private => Err(private_only_creates(op)),
            Spec::Posix(name) => PosixOptions::new()
                .access(access)
                .open(name.as_str())
                .map(Segment::Posix),
        };
        opened.map_err(|e| owner_hint(e, &Owner::of_target(target)))
    }

    /// The key of a System V segment; `None` for a POSIX one.
    pub(crate) fn sysv_key(&self) -> Option<shm_segment::SysvKey> {
        match self {
            Segment::Sysv(seg) => Some(seg.key()),
            Segment::Posix(_) => None,
        }
    }

    fn owner(&self) -> Owner {
        match self {
            Segment::Sysv(seg) => Owner::SysvId(seg.id()),
            Segment::Posix(shm) => Owner::Posix(shm.name().to_string()),
        }
    }

    /// Says whose segment it is when the answer is "permission denied".
    fn hint(&self, err: Error) -> Error {
        owner_hint(err, &self.owner())
    }

    /// The kernel's view (`IPC_STAT` or `fstat`), with the pids in `seen` that map it.
    pub(crate) fn stat(&self, seen: &Attached) -> Result<Stat> {
        match self {
            Segment::Sysv(seg) => Ok(Stat::sysv(seg.stat().map_err(|e| self.hint(e))?, seen)),
            Segment::Posix(shm) => Ok(Stat::posix(shm.stat().map_err(|e| self.hint(e))?, seen)),
        }
    }

    /// Ready to read and write: System V attached with `access`, POSIX
    /// through its descriptor (see [`Opened`]).
    pub(crate) fn map(self, access: Access) -> Result<Opened> {
        match self {
            Segment::Sysv(ref seg) => seg
                .attach(access)
                .map(Opened::Sysv)
                .map_err(|e| self.hint(e)),
            Segment::Posix(shm) => {
                let len = shm.size()?;
                Ok(Opened::Posix { shm, len })
            }
        }
    }

    /// Changes owner and mode (`IPC_SET`, `fchown`/`fchmod`).
    pub(crate) fn set_perms(&self, change: PermChange) -> Result<()> {
        match self {
            Segment::Sysv(seg) => seg.set_perms(change),
            Segment::Posix(shm) => shm.set_perms(change),
        }
        .map_err(|e| self.hint(e))
    }

    /// `IPC_RMID` or `shm_unlink`.
    pub(crate) fn remove(&self) -> Result<()> {
        match self {
            Segment::Sysv(seg) => seg.remove(),
            Segment::Posix(shm) => shm.unlink(),
        }
        .map_err(|e| self.hint(e))
    }
}

/// Where to look up who owns a segment.
enum Owner {
    SysvKey(shm_segment::SysvKey),
    SysvId(i32),
    Posix(String),
    Unknown,
}

impl Owner {
    fn of_target(target: &Spec) -> Owner {
        match target {
            Spec::Key(key) => Owner::SysvKey(*key),
            Spec::Id(id) => Owner::SysvId(*id),
            Spec::Posix(name) => Owner::Posix(name.to_string()),
            Spec::Private => Owner::Unknown,
        }
    }

    /// The owner uid and permission bits, read without needing any
    /// permission on the segment (`SHM_STAT_ANY`, `stat` of `/dev/shm/NAME`).
    fn look_up(&self) -> Option<(u32, u32)> {
        match self {
            Owner::SysvKey(_) | Owner::SysvId(_) => shm_segment::sysv::list()
                .ok()?
                .into_iter()
                .find(|st| match self {
                    Owner::SysvKey(key) => st.key == *key,
                    _ => matches!(self, Owner::SysvId(id) if st.id == *id),
                })
                .map(|st| (st.uid, st.perms())),
            Owner::Posix(name) => {
                use std::os::unix::fs::MetadataExt;
                let meta =
                    std::fs::symlink_metadata(format!("{}{name}", shm_segment::SHM_DIR)).ok()?;
                Some((meta.uid(), meta.mode() & 0o777))
            }
            Owner::Unknown => None,
        }
    }
}

/// A "permission denied" from the kernel (`EACCES`, `EPERM`), reworded to
/// name the owner: `…: permission denied: owned by uid 0 (root), mode 600;
/// this is uid 1000 (me)`.
fn owner_hint(err: Error, owner: &Owner) -> Error {
    if !err.is_permission_denied() {
        return err;
    }
    let Error::Os { op, target, source } = err else {
        return err;
    };
    let Some((uid, mode)) = owner.look_up() else {
        return Error::Os { op, target, source };
    };
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let why = format!(
        "permission denied: owned by uid {uid} ({}), mode {mode:o}; this is uid {me} ({})",
        crate::output::user(uid),
        crate::output::user(me),
    );
    Error::Os {
        op,
        target,
        source: io::Error::new(io::ErrorKind::PermissionDenied, why),
    }
}

/// Creates a segment, exclusively.
pub(crate) fn create(target: &Spec, size: usize, mode: u32) -> Result<Created> {
    match target {
        Spec::Key(_) | Spec::Private => {
            let key = match target {
                Spec::Key(k) => *k,
                _ => shm_segment::SysvKey::PRIVATE,
            };
            let seg = SysvOptions::new().mode(mode).create(key, size)?;
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
        Spec::Id(id) => Err(Error::InvalidArgument {
            op: "create",
            target: shm_segment::Target::SysvId(*id),
            reason: "the kernel picks shmids; create with key:N or key:private".into(),
        }),
        Spec::Posix(name) => {
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
pub(crate) fn stat(target: &Spec) -> Result<Stat> {
    Segment::open(target, Access::ReadOnly, "stat")?.stat(&procmaps::attached())
}

/// Every segment of the kinds asked for.
pub(crate) fn list(sysv_too: bool, posix_too: bool) -> Result<Vec<Stat>> {
    let seen = procmaps::attached();
    let mut out = Vec::new();
    if sysv_too {
        for stat in shm_segment::sysv::list()? {
            out.push(Stat::sysv(stat, &seen));
        }
    }
    if posix_too {
        for stat in shm_segment::posix::list()? {
            out.push(Stat::posix(stat, &seen));
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
#[derive(Debug)]
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
            size,
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

/// Opens the target ready to read and write: System V mapped, POSIX by
/// descriptor (see [`Opened`]).
pub(crate) fn open(target: &Spec, access: Access, op: &'static str) -> Result<Opened> {
    Segment::open(target, access, op)?.map(access)
}

/// `len` bytes from `offset` (to the end when `None`).
pub(crate) fn read(target: &Spec, offset: usize, len: Option<usize>) -> Result<Vec<u8>> {
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
pub(crate) fn write(target: &Spec, offset: usize, data: &[u8]) -> Result<()> {
    open(target, Access::ReadWrite, "write")?.write_at(offset, data)
}

/// Changes owner and mode. POSIX segments are opened read-only:
/// `fchown`/`fchmod` need ownership, not write access.
pub(crate) fn set(target: &Spec, change: PermChange) -> Result<()> {
    Segment::open(target, Access::ReadOnly, "set")?.set_perms(change)
}

/// `IPC_RMID` or `shm_unlink`.
pub(crate) fn remove(target: &Spec) -> Result<()> {
    Segment::open(target, Access::ReadOnly, "remove")?.remove()
}

#[cfg(test)]
mod tests {
    use super::iso_date;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_date(0), None);
        assert_eq!(iso_date(1).as_deref(), Some("1970-01-01T00:00:01Z"));
        assert_eq!(
            iso_date(951_782_400).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(
            iso_date(1_735_787_045).as_deref(),
            Some("2025-01-02T03:04:05Z")
        );
        assert_eq!(iso_date(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
    }
}
