//! Messages per second from this process to a child: a `Channel` one
//! message at a time, a `Channel` in batches (`BlockCache` + `send_many` +
//! `recv_many`), and a pipe. A rough check of the channel's goals on a busy
//! machine (the criterion benches in `benches/mempool.rs` are the real
//! measurement).
//!
//! ```text
//! cargo run -p shm-mempool --release --example channel_rate -- MODE SIZE N
//! ```
//!
//! MODE: `single`, `batch`, `pipe`. Every sender writes the whole message
//! once (a sequence number first); the child checks the sequence number and
//! reads the last 8 bytes of each message, and reports the rate from its
//! first message to its last.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use shm_mempool::Channel;
use shm_segment::Region;

const BLOCKS: usize = 64;
const BATCH: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args[0] == "child" {
        return child(
            &args[1],
            &args[2],
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        );
    }
    let mode = args[0].as_str();
    let size: usize = args[1].parse().unwrap();
    let n: u64 = args[2].parse().unwrap();
    let name = format!("/shm-channel-rate-{}", std::process::id());
    let mut msg = vec![7u8; size];
    let ch = (mode != "pipe").then(|| Channel::create_posix(&name, BLOCKS, size).unwrap());
    let mut kid = Command::new(std::env::current_exe().unwrap())
        .args(["child", mode, &name, &size.to_string(), &n.to_string()])
        .stdin(if mode == "pipe" {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    match (mode, &ch) {
        ("single", Some(ch)) => {
            for seq in 0..n {
                msg[..8].copy_from_slice(&seq.to_ne_bytes());
                let block = loop {
                    if let Ok(b) = ch.get() {
                        break b;
                    }
                    std::hint::spin_loop();
                };
                block.write_at(0, &msg).unwrap();
                block.set_used(size);
                ch.send(block).unwrap();
            }
        }
        ("batch", Some(ch)) => {
            let cache = ch.pool().cache(2 * BATCH).unwrap();
            let mut seq = 0;
            let mut batch = Vec::with_capacity(BATCH);
            while seq < n {
                while batch.len() < BATCH && seq < n {
                    let Ok(b) = cache.get() else { break };
                    msg[..8].copy_from_slice(&seq.to_ne_bytes());
                    b.write_at(0, &msg).unwrap();
                    b.set_used(size);
                    batch.push(b);
                    seq += 1;
                }
                if batch.is_empty() {
                    std::hint::spin_loop();
                    continue;
                }
                ch.send_many(batch.drain(..)).unwrap();
            }
        }
        ("pipe", None) => {
            let mut stdin = kid.stdin.take().unwrap();
            for seq in 0..n {
                msg[..8].copy_from_slice(&seq.to_ne_bytes());
                stdin.write_all(&msg).unwrap();
            }
        }
        _ => panic!("unknown mode {mode}"),
    }
    let sent = start.elapsed();
    let mut out = String::new();
    kid.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(kid.wait().unwrap().success());
    println!(
        "{mode} {size} B: child {} M msgs/s; sender {:.2} M msgs/s",
        out.trim(),
        n as f64 / sent.as_secs_f64() / 1e6
    );
}

fn child(mode: &str, name: &str, size: usize, n: u64) {
    let mut first = None;
    let mut tail = 0u64;
    let mut check = |seq: u64, head: &[u8], last: &[u8], first: &mut Option<Instant>| {
        first.get_or_insert_with(Instant::now);
        assert_eq!(u64::from_ne_bytes(head.try_into().unwrap()), seq);
        tail ^= u64::from_ne_bytes(last.try_into().unwrap());
    };
    if mode == "pipe" {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; size];
        for seq in 0..n {
            stdin.read_exact(&mut buf).unwrap();
            check(seq, &buf[..8], &buf[size - 8..], &mut first);
        }
    } else {
        let ch = Channel::open_posix(name).unwrap();
        let mut seq = 0;
        let mut out = Vec::with_capacity(BLOCKS);
        let (mut head, mut last) = ([0u8; 8], [0u8; 8]);
        while seq < n {
            if mode == "batch" {
                ch.recv_many(&mut out, BLOCKS).unwrap();
            } else if let Ok(b) = ch.recv() {
                out.push(b);
            }
            if out.is_empty() {
                std::hint::spin_loop();
                continue;
            }
            for b in out.drain(..) {
                b.read_at(0, &mut head).unwrap();
                b.read_at(size - 8, &mut last).unwrap();
                check(seq, &head, &last, &mut first);
                seq += 1;
            }
        }
    }
    let t = first.unwrap().elapsed();
    std::hint::black_box(tail);
    print!("{:.2}", (n - 1) as f64 / t.as_secs_f64() / 1e6);
}
