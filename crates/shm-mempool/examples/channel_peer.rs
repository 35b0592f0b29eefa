//! A Rust peer for the Python package's interop tests: sends messages into,
//! or receives them from, a channel another process created.
//!
//! ```text
//! channel_peer send /name N   # sends b"message {i}" for i in 0..N
//! channel_peer recv /name N   # receives N, checks them in order
//! ```
//!
//! Prints `ok N` and exits 0; any mismatch or error exits 1 with a message.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shm_mempool::Channel;
use shm_segment::Region;

const WAIT: Duration = Duration::from_secs(60);

fn send(name: &str, n: u64) -> Result<(), String> {
    let ch = Channel::open_posix(name).map_err(|e| e.to_string())?;
    for i in 0..n {
        let msg = format!("message {i}");
        let deadline = Instant::now() + WAIT;
        // Blocks come back as the receiver releases them: wait for one.
        loop {
            match ch.send_bytes(msg.as_bytes()) {
                Ok(()) => break,
                Err(shm_mempool::PoolError::Exhausted { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(100))
                }
                Err(e) => return Err(format!("send {i}: {e}")),
            }
        }
    }
    Ok(())
}

fn recv(name: &str, n: u64) -> Result<(), String> {
    let ch = Channel::open_posix(name).map_err(|e| e.to_string())?;
    for i in 0..n {
        let block = ch
            .recv_blocking(WAIT)
            .map_err(|e| format!("recv {i}: {e}"))?;
        let mut got = vec![0; block.used()];
        block.read_at(0, &mut got).map_err(|e| e.to_string())?;
        let want = format!("message {i}");
        if got != want.as_bytes() {
            return Err(format!(
                "message {i}: got {:?}, expected {want:?}",
                String::from_utf8_lossy(&got)
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, name, n] = args.as_slice() else {
        eprintln!("usage: channel_peer send|recv /name N");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("channel_peer: N must be a number, got {n:?}");
        return ExitCode::from(2);
    };
    let result = match mode.as_str() {
        "send" => send(name, n),
        "recv" => recv(name, n),
        other => Err(format!("unknown mode {other:?}")),
    };
    match result {
        Ok(()) => {
            println!("ok {n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("channel_peer {mode} {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
