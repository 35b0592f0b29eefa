//! The channel against its floor, between a parent and a forked child on
//! two CPUs: `N` messages of `SIZE` bytes, parent (CPU 0) to child (CPU 1);
//! prints ns per message (from the first send to the child's last receive).
//!
//! ```text
//! cargo run --release -p shm-mempool --example channel_floor -- MODE SIZE N
//! valgrind --tool=callgrind target/release/examples/channel_floor cg 64 100000
//! ```
//!
//! MODE:
//! - `chan`: a [`Channel`] of 16 blocks made with `blocking(true)` (as the
//!   goals harness makes it): `get`, `write_at` the whole message, `set_used`,
//!   `send`; the child `recv`s, reads the first and the last word in place,
//!   drops the block;
//! - `chanpoll`: the same channel without futex wake-ups;
//! - `floor`: what moving a message costs at least: a copy into one of 16
//!   buffers in shared memory and one store of the tail; the child reads the
//!   same two words and stores its head (an SPSC ring of buffers: no
//!   ownership records, no free list, no crash safety);
//! - `cg`: one thread sends and receives in turn, for callgrind's
//!   instruction counts (cross-process times are noisy on a shared VM).
//!
//! `LIFO=1` makes the channel's pool hand out the block given back last;
//! `FLOOR_BUFS=k` makes the floor cycle through `k` buffers instead of 16.
//! `RT=1` (root only) runs both processes under `SCHED_FIFO` once pinned, so
//! that other work on a shared machine does not preempt the pair.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use shm_mempool::{Channel, ChannelOptions, FreeOrder};
use shm_segment::{AnonShared, Region};

const BLOCKS: usize = 16;
/// Offsets in the control region: the child's "ready" and "done" words,
/// the floor's tail and head (each on its own line), then the floor's buffers.
const READY: usize = 0;
const DONE: usize = 128;
const TAIL: usize = 256;
const HEAD: usize = 384;
const BUFS: usize = 4096;

fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain data (all zeroes: the empty set); pid 0 is
    // the calling thread and `set` a valid set of its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    if std::env::var_os("RT").is_some() {
        let param = libc::sched_param { sched_priority: 10 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid struct.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    }
}

type Ch = Channel<AnonShared>;

fn make(size: usize, blocking: bool) -> Ch {
    let region = AnonShared::new(Channel::required_size(BLOCKS, size)).unwrap();
    let order = if std::env::var_os("LIFO").is_some() {
        FreeOrder::Lifo
    } else {
        FreeOrder::Fifo
    };
    let opts = ChannelOptions::new().blocking(blocking).order(order);
    Channel::create_with(region, BLOCKS, size, opts).unwrap()
}

#[inline(never)]
fn send(ch: &Ch, msg: &[u8]) {
    let block = loop {
        if let Ok(b) = ch.get() {
            break b;
        }
        std::hint::spin_loop();
    };
    block.write_at(0, msg).unwrap();
    block.set_used(msg.len());
    ch.send(block).unwrap();
}

#[inline(never)]
fn recv(ch: &Ch, size: usize) -> Option<(u64, u64)> {
    let block = ch.recv().ok()?;
    let first: u64 = block.read_pod(0).unwrap();
    let last: u64 = block.read_pod(size - 8).unwrap();
    Some((first, last))
}

fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_ne_bytes());
    msg[n - 8..].copy_from_slice(&seq.to_ne_bytes());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, size, n) = match &args[1..] {
        [mode, size, n] => (mode.as_str(), size.parse().unwrap(), n.parse().unwrap()),
        _ => panic!("usage: channel_floor chan|chanpoll|floor|cg SIZE N"),
    };
    assert!(size >= 16, "messages of 16 bytes or more");
    let mut msg = vec![0xA5u8; size];
    if mode == "cg" {
        let ch = make(size, true);
        for seq in 0..n {
            stamp(&mut msg, seq);
            send(&ch, &msg);
            assert_eq!(recv(&ch, size), Some((seq, seq)));
        }
        return;
    }
    let ctl = AnonShared::new(BUFS + BLOCKS * size).unwrap();
    let word = |at: usize| ctl.atomic_u64(at).unwrap();
    // FLOOR_BUFS=k: the floor cycles k buffers (at most 16) instead of 16.
    let nbufs: u64 = std::env::var("FLOOR_BUFS").map_or(BLOCKS as u64, |k| k.parse().unwrap());
    assert!(
        (1..=BLOCKS as u64).contains(&nbufs),
        "FLOOR_BUFS from 1 to 16"
    );
    let buf = |seq: u64| BUFS + (seq % nbufs) as usize * size;
    let ch = match mode {
        "chan" => Some(make(size, true)),
        "chanpoll" => Some(make(size, false)),
        "floor" => None,
        other => panic!("unknown mode {other}"),
    };
    // SAFETY: this process has one thread; the child only runs the loop
    // below and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        pin(1);
        word(READY).store(1, Ordering::Release);
        let (mut got, mut x) = (0u64, 0u64);
        while got < n {
            let message = match &ch {
                Some(ch) => recv(ch, size),
                // SYNC POINT: Acquire pairs with the parent's Release store
                // of the tail: the buffer's bytes are visible.
                None if word(TAIL).load(Ordering::Acquire) > got => {
                    let first: u64 = ctl.read_pod(buf(got)).unwrap();
                    let last: u64 = ctl.read_pod(buf(got) + size - 8).unwrap();
                    // SYNC POINT: Release: done with the buffer.
                    word(HEAD).store(got + 1, Ordering::Release);
                    Some((first, last))
                }
                None => None,
            };
            match message {
                Some((first, last)) => {
                    assert_eq!(first, got);
                    x ^= last;
                    got += 1;
                }
                None => std::hint::spin_loop(),
            }
        }
        std::hint::black_box(x);
        word(DONE).store(n, Ordering::Release);
        // SAFETY: leaves the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    pin(0);
    while word(READY).load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    let start = Instant::now();
    let (tail, head): (&AtomicU64, &AtomicU64) = (word(TAIL), word(HEAD));
    let mut freed = 0;
    for seq in 0..n {
        stamp(&mut msg, seq);
        match &ch {
            Some(ch) => send(ch, &msg),
            None => {
                while seq - freed >= nbufs {
                    // SYNC POINT: Acquire pairs with the child's Release
                    // store of its head: it is done with the buffers before.
                    freed = head.load(Ordering::Acquire);
                }
                ctl.write_at(buf(seq), &msg).unwrap();
                // SYNC POINT: Release publishes the buffer to the child.
                tail.store(seq + 1, Ordering::Release);
            }
        }
    }
    while word(DONE).load(Ordering::Acquire) != n {
        std::hint::spin_loop();
    }
    let elapsed = start.elapsed();
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    println!("{:.1}", elapsed.as_nanos() as f64 / n as f64);
}
