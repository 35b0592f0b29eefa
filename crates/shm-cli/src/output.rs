//! Human-readable output: the `ipcs`-like table, stat, and hex dumps,
//! and [`emit`], which prints any result as text or as JSON.
//!
//! Everything goes through a writer, never `println!`: a reader that goes
//! away (`shm list | head -1`) is a `BrokenPipe` error that ends the
//! command quietly, not a panic.

use std::ffi::CStr;
use std::io::{self, Write};

use serde::Serialize;

use crate::ops::Stat;

/// A command's result: JSON with `--json`, text for people otherwise.
pub(crate) trait Render: Serialize {
    /// The text form.
    fn render(&self, out: &mut dyn Write) -> io::Result<()>;
}

/// Prints `value` on standard output, as pretty JSON or as text.
pub(crate) fn emit(json: bool, value: &impl Render) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
    } else {
        value.render(&mut out)?;
    }
    out.flush()
}

/// Raw bytes on standard output (`read`, completions, the man page).
pub(crate) fn emit_bytes(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// The user name of `uid`, or the number when it has none.
pub(crate) fn user(uid: u32) -> String {
    let mut pwd = std::mem::MaybeUninit::<libc::passwd>::zeroed();
    let mut buf = vec![0 as libc::c_char; 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live buffer of the stated size; getpwuid_r
    // fills `pwd` and points `result` at it, or leaves `result` null.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            pwd.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return uid.to_string();
    }
    // SAFETY: on success `pw_name` is a NUL-terminated string inside `buf`.
    unsafe { CStr::from_ptr((*result).pw_name) }
        .to_string_lossy()
        .into_owned()
}

/// What `list` and `stat` say about the processes that map a segment.
fn pids(list: &[u32], complete: bool, unreadable: usize) -> String {
    let mut text = if list.is_empty() {
        "-".to_owned()
    } else {
        list.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if !complete {
        // Other users' processes, without privilege; or hidden by hidepid.
        text.push_str(&format!(
            " (could not see into {unreadable} other processes)"
        ));
    }
    text
}

/// A time as `ipcs -t` shows it, in local time: `2025-01-02 03:04:05 +0100`.
pub(crate) fn date(t: i64) -> String {
    if t == 0 {
        return "never".into();
    }
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    let secs: libc::time_t = t;
    // SAFETY: both pointers are to live values of the right types;
    // localtime_r(3) fills `tm` and returns it, or null on failure.
    let ok = !unsafe { libc::localtime_r(&secs, tm.as_mut_ptr()) }.is_null();
    if !ok {
        return t.to_string();
    }
    // SAFETY: localtime_r succeeded, so `tm` is initialised (and it was zeroed anyway).
    let tm = unsafe { tm.assume_init() };
    let off = tm.tm_gmtoff / 60;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}{:02}{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if off < 0 { '-' } else { '+' },
        off.abs() / 60,
        off.abs() % 60
    )
}

/// How many processes `shm` could not look at, for the notes below.
fn unreadable() -> usize {
    crate::procmaps::attached().unreadable
}

/// The `list` table: both kinds, one line each.
impl Render for Vec<Stat> {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        let hidden = if self.iter().any(|s| !s.attached_complete()) {
            unreadable()
        } else {
            0
        };
        writeln!(
            out,
            "{:<5} {:<24} {:>8} {:<10} {:>5} {:>12} {:>6} {:<6} {:>7} {:>7}  ATTACHED",
            "KIND",
            "KEY/NAME",
            "SHMID",
            "OWNER",
            "PERMS",
            "BYTES",
            "NATTCH",
            "STATUS",
            "CPID",
            "LPID"
        )?;
        for entry in self {
            match entry {
                Stat::Sysv {
                    stat,
                    attached,
                    attached_complete,
                    ..
                } => {
                    let status = match (stat.is_marked_for_removal(), stat.is_locked()) {
                        (true, _) => "dest",
                        (_, true) => "locked",
                        _ => "",
                    };
                    writeln!(
                        out,
                        "{:<5} {:<24} {:>8} {:<10} {:>5o} {:>12} {:>6} {:<6} {:>7} {:>7}  {}",
                        "sysv",
                        stat.key.to_string(),
                        stat.id,
                        user(stat.uid),
                        stat.perms(),
                        stat.size,
                        stat.nattch,
                        status,
                        stat.cpid,
                        stat.lpid,
                        pids(attached, *attached_complete, hidden)
                    )?;
                }
                Stat::Posix {
                    stat,
                    attached,
                    attached_complete,
                    ..
                } => writeln!(
                    out,
                    "{:<5} {:<24} {:>8} {:<10} {:>5o} {:>12} {:>6} {:<6} {:>7} {:>7}  {}",
                    "posix",
                    stat.name,
                    "-",
                    user(stat.uid),
                    stat.mode & 0o777,
                    stat.size,
                    attached.len(),
                    "",
                    "-",
                    "-",
                    pids(attached, *attached_complete, hidden)
                )?,
            }
        }
        Ok(())
    }
}

impl Stat {
    fn attached_complete(&self) -> bool {
        match self {
            Stat::Sysv {
                attached_complete, ..
            }
            | Stat::Posix {
                attached_complete, ..
            } => *attached_complete,
        }
    }
}

/// `stat`: one field per line, times as dates.
impl Render for Stat {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        let hidden = if self.attached_complete() {
            0
        } else {
            unreadable()
        };
        match self {
            Stat::Sysv {
                stat: s,
                attached,
                attached_complete,
                ..
            } => {
                writeln!(out, "kind      sysv")?;
                writeln!(out, "key       {}", s.key)?;
                writeln!(out, "shmid     {}", s.id)?;
                writeln!(out, "size      {}", s.size)?;
                writeln!(
                    out,
                    "mode      {:o}{}",
                    s.perms(),
                    if s.is_marked_for_removal() {
                        " (dest)"
                    } else {
                        ""
                    }
                )?;
                writeln!(out, "uid       {} ({})", s.uid, user(s.uid))?;
                writeln!(out, "gid       {}", s.gid)?;
                writeln!(out, "cuid      {} ({})", s.cuid, user(s.cuid))?;
                writeln!(out, "cgid      {}", s.cgid)?;
                writeln!(out, "nattch    {}", s.nattch)?;
                writeln!(out, "cpid      {}", s.cpid)?;
                writeln!(out, "lpid      {}", s.lpid)?;
                writeln!(out, "atime     {}", date(s.atime))?;
                writeln!(out, "dtime     {}", date(s.dtime))?;
                writeln!(out, "ctime     {}", date(s.ctime))?;
                writeln!(
                    out,
                    "attached  {}",
                    pids(attached, *attached_complete, hidden)
                )
            }
            Stat::Posix {
                stat: s,
                attached,
                attached_complete,
                ..
            } => {
                writeln!(out, "kind      posix")?;
                writeln!(out, "name      {}", s.name)?;
                writeln!(out, "size      {}", s.size)?;
                writeln!(out, "mode      {:o}", s.mode & 0o777)?;
                writeln!(out, "uid       {} ({})", s.uid, user(s.uid))?;
                writeln!(out, "gid       {}", s.gid)?;
                writeln!(out, "atime     {}", date(s.atime))?;
                writeln!(out, "mtime     {}", date(s.mtime))?;
                writeln!(out, "ctime     {}", date(s.ctime))?;
                writeln!(out, "inode     {}", s.inode)?;
                writeln!(
                    out,
                    "attached  {}",
                    pids(attached, *attached_complete, hidden)
                )
            }
        }
    }
}

/// `hexdump -C` style: offset, 16 bytes in hex, the printable ones.
pub(crate) fn hexdump(out: &mut dyn Write, base: usize, bytes: &[u8]) -> io::Result<()> {
    for (i, chunk) in bytes.chunks(16).enumerate() {
        // Two groups of eight, as `hexdump -C` prints them.
        let hex: Vec<String> = chunk
            .chunks(8)
            .map(|half| {
                half.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(
            out,
            "{:08x}  {:<48}  |{text}|",
            base + i * 16,
            hex.join("  ")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_lines_look_like_hexdump_c() {
        let mut out = Vec::new();
        hexdump(&mut out, 16, b"Hello world!\0\x01").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "00000010  48 65 6c 6c 6f 20 77 6f  72 6c 64 21 00 01        |Hello world!..|\n"
        );
    }

    #[test]
    fn root_has_a_name() {
        assert_eq!(user(0), "root");
    }
}
