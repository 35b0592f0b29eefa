//! A byte ring as a pipe between two processes: stdin goes into an SPSC ring
//! of `u8` in a POSIX segment, and a second process copies it out to stdout.
//! What the seed's Go `shmtool` does with `io.Copy(segment, os.Stdin)`, but
//! streaming: the input may be larger than the ring, and the reader starts
//! while the writer still writes.
//!
//! ```text
//! echo hello | cargo run --example ring_pipe
//! cargo run --release --example ring_pipe < some-big-file | sha256sum
//! ```
//!
//! The writer creates the ring in one call (`SpscRing::<u8>::create_posix`,
//! blocking, 64 KiB), starts this example again as the reader, and copies
//! stdin into its producer with `io::copy`. The reader opens the ring by name
//! and copies its consumer to stdout with `io::copy`: `read` waits for bytes
//! and gives end of file once the writer has dropped its producer and the
//! ring is drained. Progress goes to stderr. The creator's ring unlinks the
//! name when it drops, however the example ends.

use std::error::Error;
use std::io;
use std::process::{Command, ExitCode, Stdio};

use shm::ring::{RingOptions, SpscRing};

const CAPACITY: usize = 64 << 10;
const ROLE: &str = "SHM_RING_PIPE_READ";

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    let result = match std::env::var(ROLE) {
        Ok(name) => reader(&name),
        Err(_) => writer(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ring_pipe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn writer() -> Res {
    let name = format!("/shm-example-ring-pipe-{}", std::process::id());
    let opts = RingOptions::new().blocking(true);
    let ring = SpscRing::<u8>::create_posix_with(&name, CAPACITY, opts)?;
    let mut tx = ring.producer()?;
    let mut child = Command::new(std::env::current_exe()?)
        .env(ROLE, &name)
        .stdin(Stdio::null())
        .spawn()?;
    // Copy even if the reader fails, then report whichever failed first.
    let copied = io::copy(&mut io::stdin().lock(), &mut tx);
    drop(tx); // end of file for the reader, once it has read everything
    let status = child.wait()?;
    let copied = copied?;
    if !status.success() {
        return Err(format!("the reader failed: {status}").into());
    }
    eprintln!("[writer] {copied} bytes through {name} ({CAPACITY}-byte ring)");
    Ok(())
}

fn reader(name: &str) -> Res {
    let ring = SpscRing::<u8>::open_posix(name)?;
    let mut rx = ring.consumer()?;
    let copied = io::copy(&mut rx, &mut io::stdout().lock())?;
    eprintln!("[reader] {copied} bytes out of {name}");
    Ok(())
}
