//! Two processes share a named POSIX segment: what the seed's Python
//! `process_1.py` and `process_2.py` do with
//! `multiprocessing.shared_memory.SharedMemory`.
//!
//! - Process 1 creates `/shm-example-processes-<pid>` (1024 bytes, mode 0600)
//!   and writes byte 0.
//! - Process 2 attaches by name and writes bytes 1, 2 and 3.
//! - Both print the first four bytes, then close their mapping.
//! - Process 1 unlinks the name, as Python's `unlink()` does.
//!
//! Both sides in one command (the example re-executes itself as process 2):
//!
//! ```text
//! cargo run --example posix_processes
//! ```
//!
//! One side per terminal:
//!
//! ```text
//! cargo run --example posix_processes process1 [NAME]  # prints the name, waits for Enter
//! cargo run --example posix_processes process2 NAME
//! ```
//!
//! As in the seed, process 2 fails with "No such file or directory" when
//! process 1 has not created the segment yet. If process 1 is killed before it
//! unlinks, `rm /dev/shm/NAME` (without the leading `/`) removes the segment.

use std::error::Error;
use std::io::{self, BufRead};
use std::process::{Command, ExitCode};

use shm::segment::{PosixOptions, Region};

const SIZE: usize = 1024;

type Res<T = ()> = Result<T, Box<dyn Error>>;

/// Who runs process 2.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// This example re-executes itself as process 2.
    Spawn,
    /// The user runs process 2 in another terminal.
    Terminal,
}

fn main() -> ExitCode {
    let default_name = format!("/shm-example-processes-{}", std::process::id());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] => process_1(&default_name, Peer::Spawn),
        ["process1"] => process_1(&default_name, Peer::Terminal),
        ["process1", name] => process_1(name, Peer::Terminal),
        ["process2", name] => process_2(name),
        _ => Err("usage: posix_processes | process1 [NAME] | process2 NAME".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("posix_processes: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Creates the segment, writes byte 0, lets process 2 run, prints, unlinks.
fn process_1(name: &str, peer: Peer) -> Res {
    // unlink_on_drop: if anything below fails, dropping `shm` still unlinks.
    let mut shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(name, SIZE)?;
    let buf = shm.map()?;
    buf.write_at(0, &[1])?;
    println!("[process 1] created {name} ({SIZE} bytes) and wrote byte 0");
    println!("[process 1] first four bytes: {:?}", first_four(&buf)?);

    match peer {
        Peer::Spawn => {
            let status = Command::new(std::env::current_exe()?)
                .args(["process2", name])
                .status()?;
            if !status.success() {
                return Err(format!("process 2 failed ({status})").into());
            }
        }
        Peer::Terminal => {
            println!("[process 1] in another terminal, run:");
            println!("              cargo run --example posix_processes process2 {name}");
            println!("[process 1] then press Enter here");
            io::stdin().lock().read_line(&mut String::new())?;
        }
    }

    println!("[process 1] first four bytes: {:?}", first_four(&buf)?);
    drop(buf); // close(), as `shared_mem.close()`
    shm.unlink()?; // as `shared_mem.unlink()`
    shm.set_unlink_on_drop(false); // done by hand just above
    println!("[process 1] closed and unlinked {name}");
    Ok(())
}

/// Attaches by name, writes bytes 1..=3, prints, closes.
fn process_2(name: &str) -> Res {
    // min_size(4): a segment too small for our four bytes is a clear error.
    let shm = PosixOptions::new()
        .min_size(4)
        .open(name)
        .map_err(|e| format!("{e} (start process 1 first)"))?;
    let buf = shm.map()?;
    buf.write_at(1, &[2, 3, 4])?;
    println!("[process 2] attached {name} and wrote bytes 1..=3");
    println!("[process 2] first four bytes: {:?}", first_four(&buf)?);
    Ok(()) // the mapping and the descriptor close here; the name stays
}

fn first_four(region: &impl Region) -> Res<[u8; 4]> {
    Ok(region.read_pod(0)?)
}
