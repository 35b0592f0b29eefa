//! Two unrelated processes exchange 4 KiB messages through a zero-copy
//! [`Channel`] (a block pool plus a queue of block ids) in a named POSIX
//! segment.
//!
//! - The sender creates `/shm-example-channel-<pid>` (mode 0600): a channel
//!   of 16 blocks of 4 KiB. For each message it takes a free block, fills it
//!   in place (a sequence number, a byte pattern, a checksum: no buffer is
//!   copied into it) and sends it: only the block's 4-byte id goes through
//!   the queue (which has a cell for every block: a send never waits).
//! - The receiver attaches by name, waits for each block (`recv_blocking`
//!   sleeps on a futex in the segment), checks it in place, and drops it:
//!   the block goes back to the pool for the sender to fill again.
//! - When every block is back in the pool, the sender unlinks the name.
//!
//! Both sides in one command (the example re-executes itself as the receiver):
//!
//! ```text
//! cargo run --example channel_processes              # 1000 messages
//! cargo run --example channel_processes -- 5000      # 5000 messages
//! ```
//!
//! One side per terminal (start the sender first; it prints the name and
//! waits up to a minute for a receiver to free its blocks):
//!
//! ```text
//! cargo run --example channel_processes sender [COUNT]
//! cargo run --example channel_processes receiver NAME [COUNT]
//! ```
//!
//! Every wait has a deadline, so a side whose peer never comes reports it
//! and exits non-zero instead of hanging. If the sender is killed before it
//! unlinks, `rm /dev/shm/NAME` (without the leading `/`) removes the segment.

use std::error::Error;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use shm::mempool::{Channel, ChannelOptions, PoolError, RecvError};
use shm::segment::Region;

const BLOCKS: usize = 16;
const SIZE: usize = 4096;
/// How long either side waits for the other before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let name = format!("/shm-example-channel-{}", std::process::id());
    let count = |s: Option<&&str>| -> Result<u64, Box<dyn Error>> {
        Ok(s.map(|s| s.parse()).transpose()?.unwrap_or(1000))
    };
    let result = match args.as_slice() {
        [] | [_] if args.first().is_none_or(|a| a.parse::<u64>().is_ok()) => {
            count(args.first()).and_then(|n| sender(&name, n, true))
        }
        ["sender", rest @ ..] if rest.len() <= 1 => {
            count(rest.first()).and_then(|n| sender(&name, n, false))
        }
        ["receiver", peer, rest @ ..] if rest.len() <= 1 => {
            count(rest.first()).and_then(|n| receiver(peer, n))
        }
        _ => {
            Err("usage: channel_processes [COUNT] | sender [COUNT] | receiver NAME [COUNT]".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("channel_processes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn checksum(seq: u64) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xC0FF_EE00
}

fn pattern(seq: u64) -> u8 {
    (seq % 251) as u8
}

/// Creates the channel, starts the receiver (or waits for one), sends.
fn sender(name: &str, count: u64, spawn: bool) -> Res {
    // The channel owns the segment it creates: however this function ends,
    // the name is unlinked when `ch` drops.
    let ch = Channel::create_posix_with(name, BLOCKS, SIZE, ChannelOptions::new().blocking(true))?;
    println!("[sender]   created {name}: {BLOCKS} blocks of {SIZE} bytes");

    let mut child = if spawn {
        let exe = std::env::current_exe()?;
        let child = Command::new(exe)
            .args(["receiver", name, &count.to_string()])
            .spawn()?;
        Some(ChildGuard(child))
    } else {
        println!("[sender]   now run: channel_processes receiver {name} {count}");
        None
    };

    let t0 = Instant::now();
    let mut waits = 0u64;
    for seq in 0..count {
        // A free block, or wait (bounded) for the receiver to give one back.
        let deadline = Instant::now() + PATIENCE;
        let block = loop {
            match ch.get() {
                Ok(block) => break block,
                Err(PoolError::Exhausted { .. }) if Instant::now() < deadline => {
                    waits += 1;
                    if let Some(c) = child.as_mut() {
                        c.check_running()?;
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(e) => return Err(format!("message {seq}: {e}").into()),
            }
        };
        // Fill in place: header, pattern, trailer.
        block.write_pod(0, &seq)?;
        block.fill(8, SIZE - 16, pattern(seq))?;
        block.write_pod(SIZE - 8, &checksum(seq))?;
        block.set_used(SIZE);
        if let Err(e) = ch.send(block) {
            return Err(format!("message {seq}: {e}").into());
        }
    }
    let sent_in = t0.elapsed();
    println!(
        "[sender]   sent {count} messages of {SIZE} bytes in {sent_in:.1?} \
         (waited for a free block {waits} times)"
    );

    // Done when the receiver has given every block back.
    let deadline = Instant::now() + PATIENCE;
    while ch.pool().stats().free != BLOCKS {
        if Instant::now() > deadline {
            return Err(format!(
                "the receiver did not give back every block: {:?}",
                ch.pool().stats()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if let Some(child) = child.take() {
        child.wait(PATIENCE)?;
    }
    println!("[sender]   every block is back in the pool; unlinking {name}");
    Ok(())
}

/// Attaches by name and checks `count` messages in order.
fn receiver(name: &str, count: u64) -> Res {
    let ch = Channel::open_posix(name)?;
    println!(
        "[receiver] attached {name}: {} blocks of {} bytes",
        ch.pool().blocks(),
        ch.pool().block_size()
    );
    let t0 = Instant::now();
    let mut page = vec![0u8; SIZE - 16];
    for expect in 0..count {
        let block = match ch.recv_blocking(PATIENCE) {
            Ok(block) => block,
            Err(e @ RecvError::Empty) => {
                return Err(format!("message {expect}: {e} after {PATIENCE:?}").into())
            }
            Err(e) => return Err(format!("message {expect}: {e}").into()),
        };
        let seq: u64 = block.read_pod(0)?;
        let sum: u64 = block.read_pod(SIZE - 8)?;
        block.read_at(8, &mut page)?;
        if seq != expect || sum != checksum(seq) || block.used() != SIZE {
            return Err(format!("message {expect}: got seq {seq}, checksum {sum:#x}").into());
        }
        if let Some(at) = page.iter().position(|&b| b != pattern(seq)) {
            return Err(format!("message {seq}: byte {} is wrong", at + 8).into());
        }
        // Dropping the block gives it back to the pool.
    }
    println!(
        "[receiver] received and checked {count} messages in {:.1?}",
        t0.elapsed()
    );
    Ok(())
}

/// The receiver started by this process: killed and reaped if still
/// running when dropped (on an error), so nothing is left behind.
struct ChildGuard(std::process::Child);

impl ChildGuard {
    /// An error if the receiver has already exited (it failed early).
    fn check_running(&mut self) -> Res {
        match self.0.try_wait()? {
            Some(status) => Err(format!("the receiver exited early: {status}").into()),
            None => Ok(()),
        }
    }

    /// Waits (bounded) for a successful exit.
    fn wait(mut self, timeout: Duration) -> Res {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("the receiver failed: {status}").into())
                };
            }
            if Instant::now() > deadline {
                return Err(format!("the receiver did not exit within {timeout:?}").into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
