//! A System V segment by key, written and read line by line: what the seed's
//! Python `shm_manager` does (`shm_manager(123456, 100)`, `write`,
//! `readline`, `read`).
//!
//! The writer creates a segment by key (mode 0600, exclusive) and writes
//! lines of text into it through a cursor. The reader, a second process,
//! opens the same key, attaches read-only and reads the lines back with
//! `BufRead::read_line`. Then it reads the whole segment at once, as the
//! seed's `segment1.read()` does, which returns the text followed by NUL
//! padding up to the segment's size (trimmed here when printed). Finally the
//! writer removes the segment (`IPC_RMID`).
//!
//! Both sides in one command (the example re-executes itself as the reader):
//!
//! ```text
//! cargo run --example sysv_readline             # a random key
//! cargo run --example sysv_readline 0x0001e240  # key 123456, as in the seed
//! ```
//!
//! One side per terminal:
//!
//! ```text
//! cargo run --example sysv_readline writer [KEY]  # prints the key, waits for Enter
//! cargo run --example sysv_readline reader KEY
//! ```
//!
//! Keys are decimal or `0x` hex, as `ipcs -m` shows them. If the writer is
//! killed before it removes the segment, `ipcrm -M KEY` removes it.

use std::error::Error;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::process::{Command, ExitCode};

use shm::segment::{Access, Region, SysvKey, SysvOptions, SysvSegment};

/// The segment's size in bytes; the text uses less, the rest stays NUL.
const SIZE: usize = 256;

const LINES: [&str; 3] = [
    "Hello world!",
    "System V shared memory, found by its key.",
    "Read back with BufRead::read_line.",
];

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] => writer(SysvKey::random(), Peer::Spawn),
        ["writer"] => writer(SysvKey::random(), Peer::Terminal),
        ["writer", key] => parse_key(key).and_then(|k| writer(k, Peer::Terminal)),
        ["reader", key] => parse_key(key).and_then(reader),
        [key] if !key.starts_with('-') => parse_key(key).and_then(|k| writer(k, Peer::Spawn)),
        _ => Err("usage: sysv_readline [KEY] | writer [KEY] | reader KEY".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sysv_readline: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Creates the segment, writes the lines, lets the reader run, removes it.
fn writer(key: SysvKey, peer: Peer) -> Res {
    // remove_on_drop: if anything below fails, dropping `seg` still removes it.
    let mut seg = SysvOptions::new().remove_on_drop(true).create(key, SIZE)?;
    println!(
        "[writer] created a {SIZE}-byte segment, key {key}, shmid {}",
        seg.id()
    );
    {
        let map = seg.attach(Access::ReadWrite)?;
        let mut cur = map.cursor();
        for line in LINES {
            writeln!(cur, "{line}")?;
        }
        println!(
            "[writer] wrote {} lines ({} bytes); the other {} bytes stay NUL",
            LINES.len(),
            cur.position(),
            SIZE as u64 - cur.position()
        );
    } // the mapping detaches here (shmdt)

    match peer {
        Peer::Spawn => {
            let status = Command::new(std::env::current_exe()?)
                .args(["reader", &key.to_string()])
                .status()?;
            if !status.success() {
                return Err(format!("the reader process failed ({status})").into());
            }
        }
        Peer::Terminal => {
            println!("[writer] in another terminal, run:");
            println!("           cargo run --example sysv_readline reader {key}");
            println!("[writer] then press Enter here to remove the segment");
            io::stdin().lock().read_line(&mut String::new())?;
        }
    }

    seg.remove()?;
    seg.set_remove_on_drop(false); // done by hand just above
    println!("[writer] removed the segment (key {key})");
    Ok(())
}

/// Opens the segment by key, reads it line by line, then all at once.
fn reader(key: SysvKey) -> Res {
    let seg = SysvSegment::open(key)
        .map_err(|e| format!("{e} (is the writer running? start it first)"))?;
    let map = seg.attach(Access::ReadOnly)?;
    println!(
        "[reader] attached key {key} (shmid {}) read-only, {} bytes",
        seg.id(),
        map.len()
    );

    let mut cur = map.cursor();
    let mut line = String::new();
    loop {
        line.clear();
        // After the last line of text, read_line returns the NUL padding
        // (no newline, up to the end); after that, 0 bytes: the end.
        if cur.read_line(&mut line)? == 0 || line.starts_with('\0') {
            break;
        }
        println!("[reader] read_line: {:?}", line);
    }

    // The whole segment at once, as the seed's `segment1.read()`.
    let mut all = Vec::new();
    cur.seek(SeekFrom::Start(0))?;
    cur.read_to_end(&mut all)?;
    let text_len = all.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    println!(
        "[reader] read() of the whole segment: {} bytes = {} bytes of text + {} trailing NULs",
        all.len(),
        text_len,
        all.len() - text_len
    );
    println!(
        "[reader] trimmed of NULs: {:?}",
        String::from_utf8_lossy(&all[..text_len])
    );

    // Attached read-only: a write is an error, not a SIGSEGV.
    if let Err(e) = map.write_at(0, b"overwrite") {
        println!("[reader] a write is refused: {e}");
    }
    Ok(())
}

/// A key in decimal or `0x` hex; `IPC_PRIVATE` (0) is refused, since no
/// other process can open a segment by that key.
fn parse_key(s: &str) -> Res<SysvKey> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).map(|k| k as i32).ok(),
        None => s
            .parse::<i32>()
            .ok()
            .or_else(|| s.parse::<u32>().ok().map(|k| k as i32)),
    };
    match parsed {
        Some(0) => Err("key 0 is IPC_PRIVATE, which no other process can open by key".into()),
        Some(k) => Ok(SysvKey(k)),
        None => Err(format!("{s:?} is not a key (decimal or 0x hex, 32 bits)").into()),
    }
}
