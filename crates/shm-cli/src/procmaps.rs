//! Who maps which segment, from `/proc/PID/maps` (what `ipcs -p` cannot show
//! for POSIX segments).

use std::collections::HashMap;
use std::fs;

/// A mapped segment as `/proc/PID/maps` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Mapped {
    /// `/SYSV<key>` with the shmid as its inode.
    Sysv(i32),
    /// `/dev/shm/<name>`, as `/<name>`.
    Posix(String),
}

/// Who maps what, as far as this process may see.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    /// Every process that maps each segment, sorted, each pid once.
    pub(crate) by_segment: HashMap<Mapped, Vec<u32>>,
    /// Processes whose maps we may not read (other users', without
    /// privilege, or hidden by `hidepid`): they may map segments too.
    pub(crate) unreadable: usize,
}

impl Attached {
    /// The pids that map `seg` (empty when none do, as far as we see).
    pub(crate) fn pids(&self, seg: &Mapped) -> Vec<u32> {
        self.by_segment.get(seg).cloned().unwrap_or_default()
    }
}

/// Reads `/proc/PID/maps` of every process.
pub(crate) fn attached() -> Attached {
    let mut out = Attached::default();
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in proc_dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let maps = match fs::read_to_string(format!("/proc/{pid}/maps")) {
            Ok(maps) => maps,
            // Gone since the directory was read: nothing missed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
            Err(_) => {
                out.unreadable += 1;
                continue;
            }
        };
        for line in maps.lines() {
            if let Some(seg) = parse_line(line) {
                let pids = out.by_segment.entry(seg).or_default();
                if pids.last() != Some(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    for pids in out.by_segment.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    out
}

/// `address perms offset dev inode path`; the path may hold spaces.
fn parse_line(line: &str) -> Option<Mapped> {
    let mut fields = line.splitn(6, ' ');
    let inode = fields.nth(4)?;
    let path = fields.next()?.trim_start();
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    if path.starts_with("/SYSV") {
        return inode.parse().ok().map(Mapped::Sysv);
    }
    path.strip_prefix("/dev/shm/")
        .map(|name| Mapped::Posix(format!("/{name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysv_and_posix_lines() {
        let sysv =
            "7f00-7f01 rw-s 00000000 00:01 42                         /SYSV0001e240 (deleted)";
        assert_eq!(parse_line(sysv), Some(Mapped::Sysv(42)));
        let posix = "7f00-7f01 rw-s 00000000 00:19 3                          /dev/shm/a b";
        assert_eq!(parse_line(posix), Some(Mapped::Posix("/a b".into())));
        assert_eq!(
            parse_line("7f00-7f01 r-xp 00000000 08:01 9 /usr/bin/true"),
            None
        );
        assert_eq!(parse_line("garbage"), None);
    }

    #[test]
    fn sees_our_own_mapping() {
        let name = format!("/shm-test-cli-maps-{}", std::process::id());
        let shm = shm_segment::PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, 4096)
            .unwrap();
        let _map = shm.map().unwrap();
        assert_eq!(
            attached().pids(&Mapped::Posix(name)),
            vec![std::process::id()]
        );
    }
}
