//! `shm doctor`: what on this host limits or endangers shared memory, and
//! how to fix it.

use std::fs;
use std::io::{self, Write};

use serde::Serialize;

use crate::output::Render;

/// One finding.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    /// `ok`, `warn` or `info`.
    pub(crate) level: &'static str,
    pub(crate) detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
}

fn check(name: &'static str, level: &'static str, detail: String, fix: Option<String>) -> Check {
    Check {
        name,
        level,
        detail,
        fix,
    }
}

fn read_trim(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Runs every check.
pub(crate) fn run() -> Vec<Check> {
    let mut out = Vec::new();
    sysv_limits(&mut out);
    dev_shm(&mut out);
    huge_pages(&mut out);
    remove_ipc(&mut out);
    container(&mut out);
    out
}

fn sysv_limits(out: &mut Vec<Check>) {
    let page = 4096u64;
    match (shm_sys::shm_limits(), shm_sys::shm_info()) {
        (Ok(limits), Ok((_, usage))) => {
            out.push(check(
                "kernel.shmmax",
                if limits.shmmax < 64 << 20 {
                    "warn"
                } else {
                    "ok"
                },
                format!("largest System V segment: {}", human(limits.shmmax)),
                (limits.shmmax < 64 << 20)
                    .then(|| "sysctl -w kernel.shmmax=<bytes> (and in /etc/sysctl.d/)".into()),
            ));
            let ids_left = limits.shmmni.saturating_sub(usage.used_ids as u64);
            out.push(check(
                "kernel.shmmni",
                if ids_left < 16 { "warn" } else { "ok" },
                format!(
                    "{} of {} System V segments in use",
                    usage.used_ids, limits.shmmni
                ),
                (ids_left < 16)
                    .then(|| "remove orphans with `shm gc`, or raise kernel.shmmni".into()),
            ));
            let pages_left = limits.shmall.saturating_sub(usage.shm_tot);
            out.push(check(
                "kernel.shmall",
                if pages_left.saturating_mul(page) < 64 << 20 {
                    "warn"
                } else {
                    "ok"
                },
                format!(
                    "{} of {} in System V segments",
                    human(usage.shm_tot.saturating_mul(page)),
                    human(limits.shmall.saturating_mul(page))
                ),
                (pages_left.saturating_mul(page) < 64 << 20)
                    .then(|| "raise kernel.shmall (in pages)".into()),
            ));
        }
        (Err(e), _) | (_, Err(e)) => out.push(check(
            "sysv",
            "warn",
            format!("cannot read the System V limits: {e}"),
            None,
        )),
    }
}

fn dev_shm(out: &mut Vec<Check>) {
    let mut vfs = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: a valid C string and a buffer of the right type.
    let rc = unsafe { libc::statvfs(c"/dev/shm".as_ptr(), vfs.as_mut_ptr()) };
    if rc != 0 {
        out.push(check(
            "/dev/shm",
            "warn",
            format!("cannot stat /dev/shm: {}", std::io::Error::last_os_error()),
            Some("mount a tmpfs there: mount -t tmpfs -o mode=1777 tmpfs /dev/shm".into()),
        ));
        return;
    }
    // SAFETY: statvfs succeeded and filled the struct.
    let vfs = unsafe { vfs.assume_init() };
    let size = vfs.f_blocks * vfs.f_frsize;
    let free = vfs.f_bavail * vfs.f_frsize;
    let small = size < 256 << 20;
    out.push(check(
        "/dev/shm size",
        if small { "warn" } else { "ok" },
        format!("{} free of {}", human(free), human(size)),
        small.then(|| "mount -o remount,size=1G /dev/shm (Docker: --shm-size=1g)".into()),
    ));
    match fs::metadata("/dev/shm") {
        Ok(meta) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            let sticky = mode & 0o1000 != 0;
            out.push(check(
                "/dev/shm sticky bit",
                if sticky { "ok" } else { "warn" },
                format!("mode {mode:o}"),
                (!sticky).then(|| {
                    "chmod 1777 /dev/shm, so users cannot remove each other's segments".into()
                }),
            ));
        }
        Err(e) => out.push(check("/dev/shm sticky bit", "warn", e.to_string(), None)),
    }
}

fn huge_pages(out: &mut Vec<Check>) {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo.lines().find_map(|l| {
            l.strip_prefix(name)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
    };
    match (
        field("HugePages_Total:"),
        field("HugePages_Free:"),
        field("Hugepagesize:"),
    ) {
        (Some(total), Some(free), Some(kib)) => out.push(check(
            "huge pages",
            "info",
            format!("{free} of {total} huge pages of {} free", human(kib * 1024)),
            (total == 0).then(|| "for SHM_HUGETLB segments: sysctl -w vm.nr_hugepages=<n>".into()),
        )),
        _ => out.push(check(
            "huge pages",
            "info",
            "not reported by /proc/meminfo".into(),
            None,
        )),
    }
}

fn remove_ipc(out: &mut Vec<Check>) {
    let systemd = std::path::Path::new("/run/systemd/system").exists();
    let mut setting = None;
    let mut files = vec!["/etc/systemd/logind.conf".to_owned()];
    if let Ok(dir) = fs::read_dir("/etc/systemd/logind.conf.d") {
        let mut extra: Vec<String> = dir
            .flatten()
            .map(|e| e.path().display().to_string())
            .collect();
        extra.sort();
        files.extend(extra);
    }
    for file in &files {
        for line in fs::read_to_string(file).unwrap_or_default().lines() {
            if let Some(v) = line.trim().strip_prefix("RemoveIPC=") {
                setting = Some(v.trim().to_ascii_lowercase());
            }
        }
    }
    let removes = match setting.as_deref() {
        Some("no" | "false" | "0" | "off") => false,
        Some(_) => true,
        None => systemd,
    };
    let detail = match (&setting, systemd) {
        (Some(v), _) => format!("logind RemoveIPC={v}"),
        (None, true) => "systemd is running and RemoveIPC is not set: it defaults to yes".into(),
        (None, false) => "systemd-logind is not running here".into(),
    };
    out.push(check(
        "systemd RemoveIPC",
        if removes { "warn" } else { "ok" },
        detail,
        removes.then(|| {
            "logind removes a user's System V and POSIX segments when their last session ends; \
             set RemoveIPC=no in /etc/systemd/logind.conf, or run services as system users"
                .into()
        }),
    ));
}

fn container(out: &mut Vec<Check>) {
    let cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let in_container = std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
        || ["docker", "kubepods", "containerd", "libpod"]
            .iter()
            .any(|k| cgroup.contains(k));
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    let limit = read_trim(&format!("/sys/fs/cgroup{path}/memory.max"))
        .or_else(|| read_trim("/sys/fs/cgroup/memory.max"));
    let detail = match &limit {
        Some(l) if l != "max" => format!(
            "memory cgroup limit {}: pages in /dev/shm count against it",
            l.parse::<u64>().map(human).unwrap_or_else(|_| l.clone())
        ),
        _ => "no memory cgroup limit".into(),
    };
    out.push(check(
        "container",
        "info",
        format!(
            "{}; {detail}",
            if in_container {
                "inside a container"
            } else {
                "not in a container"
            }
        ),
        in_container.then(|| {
            "containers need --ipc=host or a shared --ipc to see each other's segments".into()
        }),
    ));
}

impl Render for Vec<Check> {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        for c in self {
            writeln!(out, "[{:<4}] {:<20} {}", c.level, c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "       {:<20} fix: {fix}", "")?;
            }
        }
        let warnings = self.iter().filter(|c| c.level == "warn").count();
        writeln!(out, "\n{warnings} warning(s)")
    }
}
