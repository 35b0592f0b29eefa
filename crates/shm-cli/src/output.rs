//! Human-readable output: the `ipcs`-like table, stat, and hex dumps.

use std::ffi::CStr;
use std::io::{self, Write};

use crate::ops::Stat;

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

fn pids(list: &[u32]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn time(t: i64) -> String {
    if t == 0 {
        "never".into()
    } else {
        t.to_string()
    }
}

/// The `list` table: both kinds, one line each.
pub(crate) fn table(all: &[Stat]) {
    println!(
        "{:<5} {:<24} {:>8} {:<10} {:>5} {:>12} {:>6} {:<6} {:>7} {:>7}  ATTACHED",
        "KIND", "KEY/NAME", "SHMID", "OWNER", "PERMS", "BYTES", "NATTCH", "STATUS", "CPID", "LPID"
    );
    for entry in all {
        match entry {
            Stat::Sysv { stat, attached } => {
                let status = match (stat.is_marked_for_removal(), stat.is_locked()) {
                    (true, _) => "dest",
                    (_, true) => "locked",
                    _ => "",
                };
                println!(
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
                    pids(attached)
                );
            }
            Stat::Posix { stat, attached } => println!(
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
                pids(attached)
            ),
        }
    }
}

/// `stat`: one field per line.
pub(crate) fn stat(stat: &Stat) {
    match stat {
        Stat::Sysv { stat: s, attached } => {
            println!("kind      sysv");
            println!("key       {}", s.key);
            println!("shmid     {}", s.id);
            println!("size      {}", s.size);
            println!(
                "mode      {:o}{}",
                s.perms(),
                if s.is_marked_for_removal() {
                    " (dest)"
                } else {
                    ""
                }
            );
            println!("uid       {} ({})", s.uid, user(s.uid));
            println!("gid       {}", s.gid);
            println!("cuid      {} ({})", s.cuid, user(s.cuid));
            println!("cgid      {}", s.cgid);
            println!("nattch    {}", s.nattch);
            println!("cpid      {}", s.cpid);
            println!("lpid      {}", s.lpid);
            println!("atime     {}", time(s.atime));
            println!("dtime     {}", time(s.dtime));
            println!("ctime     {}", time(s.ctime));
            println!("attached  {}", pids(attached));
        }
        Stat::Posix { stat: s, attached } => {
            println!("kind      posix");
            println!("name      {}", s.name);
            println!("size      {}", s.size);
            println!("mode      {:o}", s.mode & 0o777);
            println!("uid       {} ({})", s.uid, user(s.uid));
            println!("gid       {}", s.gid);
            println!("atime     {}", time(s.atime));
            println!("mtime     {}", time(s.mtime));
            println!("ctime     {}", time(s.ctime));
            println!("inode     {}", s.inode);
            println!("attached  {}", pids(attached));
        }
    }
}

/// `hexdump -C` style: offset, 16 bytes in hex, the printable ones.
pub(crate) fn hexdump(out: &mut impl Write, base: usize, bytes: &[u8]) -> io::Result<()> {
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
