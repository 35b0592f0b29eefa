//! Copy stdin into a shared memory segment, and out of it to stdout in a
//! second process: what the seed's Go `shmtool` does with
//! `io.Copy(segment, os.Stdin)` and `io.Copy(os.Stdout, segment)`.
//!
//! ```text
//! echo hello | cargo run --example stdin_to_segment
//! cargo run --example stdin_to_segment -- --size 1M < some-file
//! cargo run --example stdin_to_segment -- --size 16 < Cargo.toml   # refused: too large
//! ```
//!
//! The writer creates a System V segment like shmtool does, with
//! `IPC_PRIVATE` (another process reaches it by its shmid), mode 0600, of an
//! 8-byte header plus `--size` bytes of data (default 64K; suffixes K, M, G
//! are powers of 1024). It copies stdin into the data area with `io::copy`
//! through a cursor, then stores how many bytes it used in the header. Input
//! larger than `--size` is refused with an error that names the segment.
//!
//! The reader attaches read-only by shmid, checks the header against the
//! segment's real size, and copies exactly the used bytes to stdout. Only the
//! data goes to stdout; progress goes to stderr. The writer removes the
//! segment at the end.
//!
//! One side per terminal:
//!
//! ```text
//! echo hello | cargo run --example stdin_to_segment write [--size N]   # prints the shmid
//! cargo run --example stdin_to_segment read SHMID
//! ```
//!
//! The writer waits (up to two minutes) until a reader has attached and
//! detached, then removes the segment. If it is killed first, `ipcrm -m
//! SHMID` removes the segment.

use std::error::Error;
use std::io::{self, IsTerminal, Read};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use shm::segment::{Access, Region, SysvKey, SysvOptions, SysvSegment};

/// Bytes before the data: the number of data bytes used, a `u64`.
const HEADER: usize = 8;
const DEFAULT_SIZE: usize = 64 << 10;
/// How long a writer in two-terminal mode waits for its reader.
const READER_TIMEOUT: Duration = Duration::from_secs(120);

type Res<T = ()> = Result<T, Box<dyn Error>>;

/// Who runs the reader side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// This example re-executes itself as the reader.
    Spawn,
    /// The user runs the reader in another terminal.
    Terminal,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stdin_to_segment: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Res {
    let mut size = DEFAULT_SIZE;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--size" {
            size = parse_size(&args.next().ok_or("--size needs a value")?)?;
        } else if let Some(value) = arg.strip_prefix("--size=") {
            size = parse_size(value)?;
        } else {
            positional.push(arg);
        }
    }
    let positional: Vec<&str> = positional.iter().map(String::as_str).collect();
    match positional.as_slice() {
        [] => writer(size, Peer::Spawn),
        ["write"] => writer(size, Peer::Terminal),
        ["read", id] => reader(id.parse().map_err(|_| format!("{id:?} is not a shmid"))?),
        _ => Err("usage: stdin_to_segment [--size N] | write [--size N] | read SHMID".into()),
    }
}

/// Creates the segment, copies stdin into it, lets the reader run, removes it.
fn writer(size: usize, peer: Peer) -> Res {
    let total = size
        .checked_add(HEADER)
        .ok_or_else(|| format!("--size {size} is too large"))?;
    // remove_on_drop: on every way out of this function, the segment goes.
    let mut seg = SysvOptions::new()
        .remove_on_drop(true)
        .create(SysvKey::PRIVATE, total)?;
    let id = seg.id();
    {
        let map = seg.attach(Access::ReadWrite)?;
        let mut cur = map.cursor();
        cur.set_position(HEADER as u64);
        if io::stdin().is_terminal() {
            eprintln!("[writer] reading stdin until end of file (Ctrl-D)");
        }
        match io::copy(&mut io::stdin().lock(), &mut cur) {
            Ok(_) => {}
            // The cursor writes nothing past the end of the segment: a full
            // segment makes `write_all` fail with WriteZero.
            Err(e) if e.kind() == io::ErrorKind::WriteZero => {
                return Err(format!(
                    "stdin is larger than the {size}-byte data area of {} (--size {size}); \
                     refusing it (the segment is removed; try a larger --size)",
                    map.target()
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        let used = cur.position() - HEADER as u64;
        map.write_pod(0, &used)?;
        eprintln!("[writer] copied {used} bytes of stdin into SysV shmid {id} ({total} bytes)");
    } // detach

    match peer {
        Peer::Spawn => {
            let status = Command::new(std::env::current_exe()?)
                .args(["read", &id.to_string()])
                .status()?;
            if !status.success() {
                return Err(format!("the reader process failed ({status})").into());
            }
        }
        Peer::Terminal => {
            eprintln!("[writer] in another terminal, run:");
            eprintln!("           cargo run --example stdin_to_segment read {id}");
            wait_for_reader(&seg)?;
        }
    }
    seg.remove()?;
    seg.set_remove_on_drop(false); // done by hand just above
    eprintln!("[writer] removed SysV shmid {id}");
    Ok(())
}

/// Waits until another process has attached and detached again: the kernel
/// records the pid of the last `shmat`/`shmdt` in `shm_lpid`.
fn wait_for_reader(seg: &SysvSegment) -> Res {
    let me = std::process::id() as i32;
    let start = Instant::now();
    loop {
        let st = seg.stat()?;
        if st.lpid != me && st.nattch == 0 {
            eprintln!("[writer] process {} has read the segment", st.lpid);
            return Ok(());
        }
        if start.elapsed() > READER_TIMEOUT {
            return Err(format!(
                "no reader came for SysV shmid {} within {} s; removed it",
                seg.id(),
                READER_TIMEOUT.as_secs()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Attaches by shmid and copies the used bytes to stdout.
fn reader(id: i32) -> Res {
    let seg = SysvSegment::open_id(id)?;
    let map = seg.attach(Access::ReadOnly)?;
    let capacity = map.len().saturating_sub(HEADER) as u64;
    let used: u64 = map.read_pod(0)?;
    // The header comes from another process: check it before trusting it.
    if used > capacity {
        return Err(format!(
            "{} says it holds {used} bytes, but it has room for only {capacity}",
            map.target()
        )
        .into());
    }
    let mut cur = map.cursor();
    cur.set_position(HEADER as u64);
    let copied = io::copy(&mut cur.take(used), &mut io::stdout().lock())?;
    eprintln!("[reader] copied {copied} bytes from SysV shmid {id} to stdout");
    Ok(())
}

/// Bytes, with an optional K, M or G suffix (powers of 1024).
fn parse_size(s: &str) -> Res<usize> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("--size {s:?} is not a size (bytes, or with K, M, G)"))?;
    match n.checked_mul(1 << shift) {
        Some(0) => Err("--size must be at least 1 byte".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("--size {s} is too large").into()),
    }
}
