//! `shm demo`: two processes share a System V and a POSIX segment.

use std::error::Error;
use std::io::{BufRead, Write};
use std::process::Command;

use shm_segment::{Access, PosixOptions, PosixShm, Region, SysvKey, SysvOptions, SysvSegment};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// `println!` whose failure (a reader that went away: `shm demo | head`) is
/// an error that ends the demo quietly, after its segments are removed,
/// instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

const SIZE: usize = 4096;
/// Where the peer writes its answer; the first half is the parent's message.
const REPLY_AT: usize = SIZE / 2;

pub(crate) fn run() -> Result<()> {
    let pid = std::process::id();
    say!("shm demo: process {pid} shares two segments with a second process\n");

    // Both are removed when these handles drop, also on an early error.
    let sysv = SysvOptions::new()
        .remove_on_drop(true)
        .create(SysvKey::random(), SIZE)?;
    let sysv_map = sysv.attach(Access::ReadWrite)?;
    writeln!(sysv_map.cursor(), "hello over System V from process {pid}")?;
    say!(
        "created  SysV  key {} shmid {} ({SIZE} bytes, mode 600)",
        sysv.key(),
        sysv.id()
    );

    let name = format!("/shm-demo-{pid}");
    let posix = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, SIZE)?;
    let posix_map = posix.map()?;
    writeln!(posix_map.cursor(), "hello over POSIX from process {pid}")?;
    say!("created  POSIX {name} ({SIZE} bytes, mode 600)\n");

    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .arg("demo-peer")
        .arg(format!("--key={}", sysv.key().0))
        .arg(format!("--name={name}"))
        .output()?;
    write!(
        std::io::stdout(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    )?;
    if !out.status.success() {
        return Err(format!(
            "the peer process failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }

    say!("\nprocess {pid} reads the answers:");
    for (what, region) in [("SysV ", &sysv_map as &dyn Region), ("POSIX", &posix_map)] {
        say!("  {what} <- {}", read_line_at(region, REPLY_AT)?);
    }

    let st = sysv.stat()?;
    say!("\nstat SysV key {} shmid {}:", st.key, st.id);
    say!(
        "  size {}  mode {:o}  uid {} gid {}  cuid {} cgid {}  nattch {}  cpid {} lpid {}",
        st.size,
        st.perms(),
        st.uid,
        st.gid,
        st.cuid,
        st.cgid,
        st.nattch,
        st.cpid,
        st.lpid
    );
    say!(
        "  atime {}  dtime {}  ctime {}",
        st.atime,
        st.dtime,
        st.ctime
    );
    let ps = posix.stat()?;
    say!("stat POSIX {}:", ps.name);
    say!(
        "  size {}  mode {:o}  uid {} gid {}  inode {}  mtime {}",
        ps.size,
        ps.mode,
        ps.uid,
        ps.gid,
        ps.inode,
        ps.mtime
    );

    let (key, id) = (sysv.key(), sysv.id());
    drop((sysv_map, sysv, posix_map, posix));
    let sysv_gone = SysvSegment::open_id(id).is_err();
    let posix_gone = PosixShm::open(&name).is_err();
    say!("\nremoved  SysV key {key} shmid {id}: {}", gone(sysv_gone));
    say!("removed  POSIX {name}: {}", gone(posix_gone));
    if !(sysv_gone && posix_gone) {
        return Err("a demo segment is still there after cleanup".into());
    }
    Ok(())
}

fn gone(yes: bool) -> &'static str {
    if yes {
        "gone"
    } else {
        "STILL THERE"
    }
}

/// The peer: attach by key and by name, read the greeting, answer.
pub(crate) fn peer(key: i32, name: &str) -> Result<()> {
    let pid = std::process::id();
    let sysv = SysvSegment::open(SysvKey(key))?.attach(Access::ReadWrite)?;
    let posix = PosixShm::open(name)?.map()?;
    say!(
        "process {pid} attached by key {} and by name {name}:",
        SysvKey(key)
    );
    for (what, region) in [("SysV ", &sysv as &dyn Region), ("POSIX", &posix)] {
        let greeting = read_line_at(region, 0)?;
        say!("  {what} -> {greeting}");
        let reply = format!(
            "process {pid} read {} bytes and says hi back\n",
            greeting.len()
        );
        region.write_at(REPLY_AT, reply.as_bytes())?;
    }
    Ok(())
}

/// One line from `offset`, without its newline.
fn read_line_at(region: &dyn Region, offset: usize) -> Result<String> {
    let mut cur = shm_segment::Cursor::new(region);
    cur.set_position(offset as u64);
    let mut line = String::new();
    cur.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\0']).to_owned())
}
