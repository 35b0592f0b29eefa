//! `shm gc`: find and remove orphaned segments.

use std::io::{self, Write};

use serde::Serialize;
use shm_segment::{Access, Header, PosixShm, ProcessId, ShmName, SysvSegment, HEADER_SIZE};

use crate::ops;
use crate::output::Render;
use crate::procmaps::{self, Mapped};
use crate::spec::Spec;

/// One orphan found.
#[derive(Debug, Serialize)]
pub(crate) struct Orphan {
    pub(crate) target: String,
    pub(crate) size: usize,
    pub(crate) why: String,
    /// Whether it was removed (false on a dry run or when removal failed).
    pub(crate) removed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

fn pid_alive(pid: i32) -> bool {
    pid > 0 && ProcessId::of(pid as u32).is_some_and(|p| p.is_alive())
}

/// Finds orphans not changed for `min_age` seconds and, unless `dry_run`, removes them.
pub(crate) fn run(dry_run: bool, min_age: u64) -> Result<Report, shm_segment::Error> {
    let attached = procmaps::attached();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // Changed too recently to judge: its creator may hand it over any moment.
    let young = |ctime: i64| now.saturating_sub(ctime) < min_age as i64;
    let mut found = Vec::new();
    for st in shm_segment::sysv::list()? {
        if st.nattch != 0
            || st.is_marked_for_removal()
            || young(st.ctime)
            || pid_alive(st.cpid)
            || pid_alive(st.lpid)
        {
            continue;
        }
        let why = format!(
            "no process attaches it; its creator (pid {}) and last user (pid {}) are gone",
            st.cpid, st.lpid
        );
        let result = if dry_run {
            None
        } else {
            Some(SysvSegment::open_id(st.id).and_then(|s| s.remove()))
        };
        found.push(orphan(
            format!("id:{} (key {})", st.id, st.key),
            st.size,
            why,
            result,
        ));
    }
    for st in shm_segment::posix::list()? {
        if young(st.ctime)
            || attached
                .by_segment
                .contains_key(&Mapped::Posix(st.name.clone()))
        {
            continue;
        }
        // Only segments that carry this project's header: others are not ours to judge.
        // Never mapped: another user may shrink it under us (see `ops::Opened`).
        let Ok(name) = ShmName::new(&st.name) else {
            continue;
        };
        let Ok(opened) = ops::open(&Spec::Posix(name), Access::ReadOnly, "gc") else {
            continue;
        };
        let Ok(header) = opened.region(Some(HEADER_SIZE)) else {
            continue;
        };
        let Ok(info) = Header::read(&&*header) else {
            continue;
        };
        if info.creator.is_alive() {
            continue;
        }
        let why = format!(
            "a {} of this project whose creator (pid {}) is gone and that no process maps",
            info.kind, info.creator.pid
        );
        let result = if dry_run {
            None
        } else {
            Some(PosixShm::unlink_name(&st.name))
        };
        found.push(orphan(st.name.clone(), st.size, why, result));
    }
    if !dry_run {
        // The liveness files of killed processes (see shm_segment::liveness):
        // not segments, so not listed; a failure to sweep them is harmless.
        let _ = shm_segment::liveness::sweep();
    }
    Ok(Report { found, dry_run })
}

fn orphan(
    target: String,
    size: usize,
    why: String,
    result: Option<Result<(), shm_segment::Error>>,
) -> Orphan {
    Orphan {
        target,
        size,
        why,
        removed: matches!(result, Some(Ok(()))),
        error: result.and_then(|r| r.err()).map(|e| e.to_string()),
    }
}

/// What `gc` found, and whether it only looked; JSON is the list alone.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) found: Vec<Orphan>,
    pub(crate) dry_run: bool,
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.found.serialize(s)
    }
}

impl Render for Report {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.found.is_empty() {
            return writeln!(out, "no orphaned segments");
        }
        for o in &self.found {
            let verb = match (&o.error, self.dry_run) {
                (Some(e), _) => format!("could not remove ({e})"),
                (None, true) => "would remove".into(),
                (None, false) => "removed".into(),
            };
            writeln!(out, "{verb} {} ({} bytes): {}", o.target, o.size, o.why)?;
        }
        Ok(())
    }
}
