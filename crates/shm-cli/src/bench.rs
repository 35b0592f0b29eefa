//! `shm bench`: a short benchmark of this project's rings, pool and channel
//! against a pipe, on this machine, now.
//!
//! Every case runs for a fixed time (about 1.1 s, or 0.2 s with `--quick`)
//! and counts what got across; nothing is hard-coded. Each case moves
//! numbered items and the receiving side checks the numbering, so a broken
//! transport is an error, not a fast result.
//!
//! - `pipe-u64`: the baseline. One `write(2)` per `u64` into a pipe to a
//!   second process (`shm bench-peer`), which does one `read(2)` per message.
//! - `spsc-threads`, `spsc-batch32`: an [`SpscRing`] of `u64` between two
//!   threads, one item per call, or `push_slice`/`pop_into` 32 at a time.
//! - `spsc-processes`: an [`SpscRing`] in a POSIX segment, this process the
//!   producer, a second process (`shm bench-peer`) the consumer.
//! - `mpmc-2x2`: an [`MpmcRing`] with two producer and two consumer threads.
//! - `mempool`: [`MemPool::get`] and giving the block back, on one thread.
//! - `pipe-4k`: like `pipe-u64` with 4 KiB messages (one `write(2)` of
//!   `PIPE_BUF` bytes each): the baseline for the channel.
//! - `channel-4k`: a [`Channel`] in a POSIX segment between two threads: the
//!   sender copies 4 KiB into a block and sends its id, the receiver copies
//!   the 4 KiB out and gives the block back.
//!
//! The ratio column compares operations per second with the pipe that moves
//! the same message size (`pipe-4k` for the channel, `pipe-u64` for the rest).
//!
//! Cleanup: segments are named `/shm-bench-<pid>-<case>`, created with
//! unlink-on-drop, and unlinked as soon as every process that needs them has
//! mapped them, so not even a `kill -9` leaves one behind after that point.
//! The peer process sets `PR_SET_PDEATHSIG` so it dies with this one, and is
//! killed by a watchdog if it outlives its case by [`PEER_GRACE`].

use std::fmt::Display;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shm_mempool::{Channel, ChannelOptions, MemPool, PoolError, RecvError, SendError};

use crate::output::Render;
use shm_ring::{MpmcRing, PopError, RingOptions, SpscRing};
use shm_segment::{Mapping, PosixOptions, PosixShm, Region};

type Result<T> = std::result::Result<T, String>;

/// How long each case runs.
const CASE_TIME: Duration = Duration::from_millis(1100);
/// How long each case runs with `--quick`.
const QUICK_CASE_TIME: Duration = Duration::from_millis(200);
/// Ring capacity for the `u64` cases.
const RING_CAP: usize = 4096;
/// Items per bulk call in `spsc-batch32`.
const BATCH: usize = 32;
/// Blocks in the `channel-4k` pool (and the mempool case's pool).
const BLOCKS: usize = 64;
/// The message size of the 4 KiB cases (`PIPE_BUF`: one atomic pipe write).
const MSG: usize = 4096;
/// The value that ends a `u64` stream.
const SENTINEL: u64 = u64::MAX;
/// How often the hot loops look at the clock (in operations).
const CHECK_EVERY: u32 = 256;
/// A side that makes no progress for this long has lost its peer.
const STALL: Duration = Duration::from_secs(5);
/// How long a peer process may take to start and map the segment.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a peer may outlive its case before the watchdog kills it.
const PEER_GRACE: Duration = Duration::from_secs(10);

/// What the peer process does (`shm bench-peer --role …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PeerRole {
    /// Read `u64` messages from standard input, one `read(2)` each.
    Pipe,
    /// Read 4 KiB messages from standard input.
    Pipe4k,
    /// Consume the SPSC ring in the POSIX segment `--name`.
    Spsc,
}

impl PeerRole {
    fn arg(self) -> &'static str {
        match self {
            PeerRole::Pipe => "pipe",
            PeerRole::Pipe4k => "pipe4k",
            PeerRole::Spsc => "spsc",
        }
    }
}

/// Turns any error into this module's `String` error, with what was being done.
trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| format!("bench: {what}: {e}"))
    }
}

/// Spins, then yields, while the other side catches up; an error after
/// [`STALL`] without progress.
struct Backoff {
    spins: u32,
    since: Option<Instant>,
    what: &'static str,
}

impl Backoff {
    fn new(what: &'static str) -> Self {
        Backoff {
            spins: 0,
            since: None,
            what,
        }
    }

    #[inline]
    fn reset(&mut self) {
        if self.spins != 0 {
            self.spins = 0;
            self.since = None;
        }
    }

    #[inline]
    fn snooze(&mut self) -> Result<()> {
        self.spins = self.spins.wrapping_add(1);
        if self.spins < 64 {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
        if self.spins % 1024 == 0 {
            let now = Instant::now();
            let since = *self.since.get_or_insert(now);
            if now - since > STALL {
                return Err(format!(
                    "bench: {}: no progress for {} s (the other side stopped)",
                    self.what,
                    STALL.as_secs()
                ));
            }
        }
        Ok(())
    }
}

/// What one case measured.
#[derive(Debug, Clone, Copy)]
struct Measured {
    ops: u64,
    elapsed: Duration,
}

/// One case of the benchmark.
struct Case {
    id: &'static str,
    what: &'static str,
    /// Payload bytes per operation (0: none, so no MB/s).
    bytes_per_op: u64,
    /// The pipe case this one is compared with.
    baseline: &'static str,
    run: fn(Duration) -> Result<Measured>,
}

const CASES: &[Case] = &[
    Case {
        id: "pipe-u64",
        what: "pipe, u64, one write(2) each, 2 processes",
        bytes_per_op: 8,
        baseline: "pipe-u64",
        run: pipe_u64,
    },
    Case {
        id: "spsc-threads",
        what: "SPSC ring, u64, 2 threads",
        bytes_per_op: 8,
        baseline: "pipe-u64",
        run: spsc_threads,
    },
    Case {
        id: "spsc-batch32",
        what: "SPSC ring, u64 in batches of 32, 2 threads",
        bytes_per_op: 8,
        baseline: "pipe-u64",
        run: spsc_batch,
    },
    Case {
        id: "spsc-processes",
        what: "SPSC ring, u64, 2 processes (POSIX segment)",
        bytes_per_op: 8,
        baseline: "pipe-u64",
        run: spsc_processes,
    },
    Case {
        id: "mpmc-2x2",
        what: "MPMC ring, u64, 2 producers + 2 consumers",
        bytes_per_op: 8,
        baseline: "pipe-u64",
        run: mpmc_2x2,
    },
    Case {
        id: "mempool",
        what: "mempool get + put, 1 thread",
        bytes_per_op: 0,
        baseline: "pipe-u64",
        run: mempool,
    },
    Case {
        id: "pipe-4k",
        what: "pipe, 4 KiB, one write(2) each, 2 processes",
        bytes_per_op: MSG as u64,
        baseline: "pipe-4k",
        run: pipe_4k,
    },
    Case {
        id: "channel-4k",
        what: "channel, 4 KiB messages, 2 threads",
        bytes_per_op: MSG as u64,
        baseline: "pipe-4k",
        run: channel_4k,
    },
];

/// One line of the result.
#[derive(Debug, Serialize)]
struct Row {
    id: &'static str,
    what: &'static str,
    ops: u64,
    seconds: f64,
    ops_per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    mb_per_sec: Option<f64>,
    ns_per_op: f64,
    baseline: &'static str,
    vs_baseline: f64,
}

/// Where the numbers came from.
#[derive(Debug, Serialize)]
struct Machine {
    cpu: String,
    cpus: usize,
    kernel: String,
    build: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    machine: Machine,
    quick: bool,
    seconds_per_case: f64,
    cases: Vec<Row>,
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    Machine {
        cpu,
        cpus: thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    }
}

/// `shm bench`: runs every case and prints the table (or JSON) on stdout.
/// Runs every case and returns the report, which the caller prints (as text
/// or JSON) through `output::emit`.
pub(crate) fn run(quick: bool) -> Result<Report> {
    let per_case = if quick { QUICK_CASE_TIME } else { CASE_TIME };
    let bar = if !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(CASES.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_bar} {elapsed:>3} {msg}")
            .ctx("progress bar")?,
    );
    bar.enable_steady_tick(Duration::from_millis(100));

    let mut measured: Vec<(&Case, Measured)> = Vec::new();
    for case in CASES {
        bar.set_message(case.what);
        let m = match (case.run)(per_case) {
            Ok(m) => m,
            Err(e) => {
                bar.finish_and_clear();
                return Err(format!("{e} (in case {})", case.id));
            }
        };
        if m.ops == 0 || m.elapsed.is_zero() {
            bar.finish_and_clear();
            return Err(format!("bench: case {} moved nothing", case.id));
        }
        measured.push((case, m));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let rate = |m: &Measured| m.ops as f64 / m.elapsed.as_secs_f64();
    let rows: Vec<Row> = measured
        .iter()
        .map(|(case, m)| {
            let base = measured
                .iter()
                .find(|(c, _)| c.id == case.baseline)
                .map_or(f64::NAN, |(_, b)| rate(b));
            Row {
                id: case.id,
                what: case.what,
                ops: m.ops,
                seconds: m.elapsed.as_secs_f64(),
                ops_per_sec: rate(m),
                mb_per_sec: (case.bytes_per_op > 0)
                    .then(|| rate(m) * case.bytes_per_op as f64 / 1e6),
                ns_per_op: m.elapsed.as_nanos() as f64 / m.ops as f64,
                baseline: case.baseline,
                vs_baseline: rate(m) / base,
            }
        })
        .collect();
    let report = Report {
        machine: machine(),
        quick,
        seconds_per_case: per_case.as_secs_f64(),
        cases: rows,
    };
    Ok(report)
}

/// `12.3M`-style counts.
fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}K", x / 1e3),
        x => format!("{x:.0}"),
    }
}

impl Render for Report {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let r = self;
        let m = &r.machine;
        writeln!(
            out,
            "shm bench: {} ({} CPUs), Linux {}, {} build, {:.1} s per case",
            m.cpu, m.cpus, m.kernel, m.build, r.seconds_per_case
        )?;
        if m.build == "debug" {
            writeln!(
                out,
                "(a debug build: numbers are far below a release build's)"
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "{:<46} {:>9} {:>17} {:>10} {:>9}",
            "CASE", "OPS", "THROUGHPUT", "NS/OP", "VS PIPE"
        )?;
        for row in &r.cases {
            let throughput = match row.mb_per_sec {
                Some(mb) if row.id.ends_with("4k") => format!("{mb:.0} MB/s"),
                Some(_) => format!("{} items/s", si(row.ops_per_sec)),
                None => format!("{} ops/s", si(row.ops_per_sec)),
            };
            let ratio = if row.id == row.baseline {
                "baseline".to_owned()
            } else {
                format!("{:.2}x", row.vs_baseline)
            };
            writeln!(
                out,
                "{:<46} {:>9} {:>17} {:>10.1} {:>9}",
                row.what,
                si(row.ops as f64),
                throughput,
                row.ns_per_op,
                ratio
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "VS PIPE: operations per second over the pipe's messages per second \
         (channel-4k against pipe-4k, the rest against pipe-u64)."
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Thread cases.

fn spsc_threads(dur: Duration) -> Result<Measured> {
    let (mut tx, mut rx) = SpscRing::<u64, _>::new_heap(RING_CAP).ctx("create ring")?;
    let start = Instant::now();
    let deadline = start + dur;
    thread::scope(|s| {
        let producer = s.spawn(move || -> Result<u64> {
            let mut backoff = Backoff::new("spsc producer");
            let mut next = 0u64;
            let mut push = |v: u64, backoff: &mut Backoff| -> Result<()> {
                while tx.push(v).is_err() {
                    backoff.snooze()?;
                }
                backoff.reset();
                Ok(())
            };
            loop {
                for _ in 0..CHECK_EVERY {
                    push(next, &mut backoff)?;
                    next += 1;
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
            push(SENTINEL, &mut backoff)?;
            Ok(next)
        });
        let mut backoff = Backoff::new("spsc consumer");
        let mut expected = 0u64;
        loop {
            match rx.pop() {
                Ok(SENTINEL) => break,
                Ok(v) if v == expected => {
                    expected += 1;
                    backoff.reset();
                }
                Ok(v) => return Err(format!("bench: spsc: got {v}, expected {expected}")),
                Err(_) => backoff.snooze()?,
            }
        }
        let elapsed = start.elapsed();
        let sent = join(producer, "spsc producer")?;
        same_count(sent, expected, "spsc")?;
        Ok(Measured {
            ops: expected,
            elapsed,
        })
    })
}

fn spsc_batch(dur: Duration) -> Result<Measured> {
    let (mut tx, mut rx) = SpscRing::<u64, _>::new_heap(RING_CAP).ctx("create ring")?;
    let start = Instant::now();
    let deadline = start + dur;
    thread::scope(|s| {
        let producer = s.spawn(move || -> Result<u64> {
            let mut backoff = Backoff::new("spsc batch producer");
            let mut next = 0u64;
            let mut batch = [0u64; BATCH];
            let mut calls = 0u32;
            loop {
                for (i, slot) in batch.iter_mut().enumerate() {
                    *slot = next + i as u64;
                }
                let n = tx.push_slice(&batch);
                if n == 0 {
                    backoff.snooze()?;
                    continue;
                }
                backoff.reset();
                next += n as u64;
                calls += 1;
                if calls % (CHECK_EVERY / 8) == 0 && Instant::now() >= deadline {
                    break;
                }
            }
            while tx.push(SENTINEL).is_err() {
                backoff.snooze()?;
            }
            Ok(next)
        });
        let mut backoff = Backoff::new("spsc batch consumer");
        let mut expected = 0u64;
        let mut out = [0u64; BATCH];
        'outer: loop {
            let n = rx.pop_into(&mut out);
            if n == 0 {
                backoff.snooze()?;
                continue;
            }
            backoff.reset();
            for &v in &out[..n] {
                if v == SENTINEL {
                    break 'outer;
                }
                if v != expected {
                    return Err(format!("bench: spsc batch: got {v}, expected {expected}"));
                }
                expected += 1;
            }
        }
        let elapsed = start.elapsed();
        let sent = join(producer, "spsc batch producer")?;
        same_count(sent, expected, "spsc batch")?;
        Ok(Measured {
            ops: expected,
            elapsed,
        })
    })
}

fn mpmc_2x2(dur: Duration) -> Result<Measured> {
    const SIDES: u64 = 2;
    let ring = MpmcRing::<u64, _>::new_heap(RING_CAP).ctx("create ring")?;
    let start = Instant::now();
    let deadline = start + dur;
    thread::scope(|s| {
        let producers: Vec<_> = (0..SIDES)
            .map(|p| {
                let ring = ring.clone();
                s.spawn(move || -> Result<u64> {
                    let mut backoff = Backoff::new("mpmc producer");
                    let mut seq = 0u64;
                    let push = |v: u64, backoff: &mut Backoff| -> Result<()> {
                        while ring.push(v).is_err() {
                            backoff.snooze()?;
                        }
                        backoff.reset();
                        Ok(())
                    };
                    loop {
                        for _ in 0..CHECK_EVERY {
                            push((p << 48) | seq, &mut backoff)?;
                            seq += 1;
                        }
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    // One sentinel per producer: each consumer stops at the
                    // first one it takes, so each takes exactly one and the
                    // later one is the ring's last item.
                    push(SENTINEL, &mut backoff)?;
                    Ok(seq)
                })
            })
            .collect();
        let consumers: Vec<_> = (0..SIDES)
            .map(|_| {
                let ring = ring.clone();
                s.spawn(move || -> Result<u64> {
                    let mut backoff = Backoff::new("mpmc consumer");
                    let mut last = [None::<u64>; SIDES as usize];
                    let mut count = 0u64;
                    loop {
                        match ring.pop() {
                            Ok(SENTINEL) => return Ok(count),
                            Ok(v) => {
                                let (p, seq) = ((v >> 48) as usize, v & ((1 << 48) - 1));
                                let Some(prev) = last.get_mut(p) else {
                                    return Err(format!("bench: mpmc: bad item {v:#x}"));
                                };
                                if prev.is_some_and(|prev| seq <= prev) {
                                    return Err(format!(
                                        "bench: mpmc: producer {p}'s item {seq} after {prev:?}"
                                    ));
                                }
                                *prev = Some(seq);
                                count += 1;
                                backoff.reset();
                            }
                            Err(PopError::Empty | PopError::Stalled { .. }) => backoff.snooze()?,
                            Err(e @ (PopError::ForkedHandle | PopError::PeerGone)) => {
                                return Err(format!("bench: mpmc consumer: {e}"))
                            }
                        }
                    }
                })
            })
            .collect();
        let mut received = 0;
        for c in consumers {
            received += join(c, "mpmc consumer")?;
        }
        let elapsed = start.elapsed();
        let mut sent = 0;
        for p in producers {
            sent += join(p, "mpmc producer")?;
        }
        same_count(sent, received, "mpmc")?;
        Ok(Measured {
            ops: received,
            elapsed,
        })
    })
}

fn mempool(dur: Duration) -> Result<Measured> {
    let seg = Segment::create("pool", MemPool::required_size(BLOCKS, 64))?;
    let pool = MemPool::create(seg.map()?, BLOCKS, 64).ctx("create pool")?;
    seg.unlink()?;
    let start = Instant::now();
    let deadline = start + dur;
    let mut ops = 0u64;
    loop {
        for _ in 0..CHECK_EVERY {
            let block = pool.get().ctx("mempool get")?;
            std::hint::black_box(block.id());
            drop(block);
        }
        ops += u64::from(CHECK_EVERY);
        if Instant::now() >= deadline {
            break;
        }
    }
    let elapsed = start.elapsed();
    if pool.stats().free != BLOCKS {
        return Err("bench: mempool: blocks went missing".into());
    }
    Ok(Measured { ops, elapsed })
}

fn channel_4k(dur: Duration) -> Result<Measured> {
    let seg = Segment::create("chan", Channel::required_size(BLOCKS, MSG))?;
    let ch = Channel::create_with(seg.map()?, BLOCKS, MSG, ChannelOptions::new())
        .ctx("create channel")?;
    seg.unlink()?;
    let start = Instant::now();
    let deadline = start + dur;
    thread::scope(|s| {
        let tx = ch.clone();
        let sender = s.spawn(move || -> Result<u64> {
            let mut backoff = Backoff::new("channel sender");
            let mut msg = vec![0x5a_u8; MSG];
            let mut send = |seq: u64, used: usize, backoff: &mut Backoff| -> Result<()> {
                let block = loop {
                    match tx.get() {
                        Ok(b) => break b,
                        Err(PoolError::Exhausted { .. }) => backoff.snooze()?,
                        Err(e) => return Err(format!("bench: channel alloc: {e}")),
                    }
                };
                msg[..8].copy_from_slice(&seq.to_ne_bytes());
                block.write_at(0, &msg[..used]).ctx("channel write")?;
                block.set_used(used);
                // The channel's queue has a cell for every block: never full.
                match tx.send(block) {
                    Ok(()) => {}
                    Err(SendError::Pool(e)) => return Err(format!("bench: channel send: {e}")),
                    Err(SendError::ForeignBlock(_)) => {
                        return Err("bench: channel send: a block of another pool".into())
                    }
                }
                backoff.reset();
                Ok(())
            };
            let mut seq = 0u64;
            loop {
                for _ in 0..CHECK_EVERY / 8 {
                    send(seq, MSG, &mut backoff)?;
                    seq += 1;
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
            send(SENTINEL, 8, &mut backoff)?;
            Ok(seq)
        });
        let mut backoff = Backoff::new("channel receiver");
        let mut buf = vec![0u8; MSG];
        let mut expected = 0u64;
        loop {
            match ch.recv() {
                Ok(block) => {
                    let used = block.used();
                    block.read_at(0, &mut buf[..used]).ctx("channel read")?;
                    let seq = u64::from_ne_bytes(buf[..8].try_into().expect("8 bytes"));
                    if seq == SENTINEL {
                        break;
                    }
                    if seq != expected || used != MSG || buf[MSG - 1] != 0x5a {
                        return Err(format!(
                            "bench: channel: got message {seq} of {used} bytes, expected {expected}"
                        ));
                    }
                    expected += 1;
                    backoff.reset();
                }
                Err(RecvError::Empty) => backoff.snooze()?,
                Err(e) => return Err(format!("bench: channel recv: {e}")),
            }
        }
        let elapsed = start.elapsed();
        let sent = join(sender, "channel sender")?;
        same_count(sent, expected, "channel")?;
        if ch.pool().stats().free != BLOCKS {
            return Err("bench: channel: blocks went missing".into());
        }
        Ok(Measured {
            ops: expected,
            elapsed,
        })
    })
}

fn join(handle: thread::ScopedJoinHandle<'_, Result<u64>>, what: &str) -> Result<u64> {
    handle
        .join()
        .map_err(|_| format!("bench: the {what} thread panicked"))?
}

fn same_count(sent: u64, received: u64, what: &str) -> Result<()> {
    if sent == received {
        Ok(())
    } else {
        Err(format!(
            "bench: {what}: sent {sent} items but {received} arrived"
        ))
    }
}

// ---------------------------------------------------------------------------
// Segments and the peer process.

/// A POSIX segment `/shm-bench-<pid>-<what>`, unlinked on drop (also on an
/// error or a panic) unless already unlinked.
struct Segment {
    shm: PosixShm,
}

impl Segment {
    fn create(what: &str, size: usize) -> Result<Segment> {
        let name = format!("/shm-bench-{}-{what}", std::process::id());
        let shm = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, size)
            .ctx("create segment")?;
        Ok(Segment { shm })
    }

    fn name(&self) -> &str {
        self.shm.name().as_str()
    }

    fn map(&self) -> Result<Mapping> {
        self.shm.map().ctx("map segment")
    }

    /// Removes the name now; the mappings stay valid.
    fn unlink(mut self) -> Result<()> {
        self.shm.set_unlink_on_drop(false);
        self.shm.unlink().ctx("unlink segment")
    }
}

/// `shm bench-peer`, started by this process: its output lines arrive on a
/// channel (so every wait for one has a timeout), and it is killed and
/// reaped on drop unless it already exited.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    watchdog: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    reaped: bool,
}

impl Peer {
    /// Starts the peer; the watchdog kills it `case + READY_TIMEOUT +
    /// PEER_GRACE` from now. Call from the thread that lives as long as the
    /// peer should (the main thread): `PR_SET_PDEATHSIG` fires when the
    /// spawning *thread* exits.
    fn spawn(role: PeerRole, name: Option<&str>, case: Duration) -> Result<Peer> {
        let exe = std::env::current_exe().ctx("find the shm binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("bench-peer")
            .arg(format!("--role={}", role.arg()))
            .arg(format!("--parent={}", std::process::id()));
        if let Some(name) = name {
            cmd.arg(format!("--name={name}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ctx("start the peer process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (line_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let pid = child.id() as libc::pid_t;
        let (cancel, cancelled) = mpsc::channel::<()>();
        let limit = case + READY_TIMEOUT + PEER_GRACE;
        let watchdog = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(limit) {
                // SAFETY: kill(2) takes plain integers. The pid is still our
                // unreaped child: `Peer` cancels and joins this thread before
                // it waits for the child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Ok(Peer {
            child,
            stdin,
            lines,
            stderr: Some(stderr),
            watchdog: Some((cancel, watchdog)),
            reaped: false,
        })
    }

    /// Waits for a line starting with `word`; the rest of it.
    fn expect(&mut self, word: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(word) {
                        return Ok(rest.trim().to_owned());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.failed(&format!("no {word:?} within {timeout:?}")))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.failed(&format!("exited before saying {word:?}")))
                }
            }
        }
    }

    /// Waits for a successful exit, at most `timeout`.
    fn finish(mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait().ctx("wait for the peer")? {
                Some(status) => {
                    self.reaped = true;
                    return if status.success() {
                        Ok(())
                    } else {
                        Err(self.failed(&format!("exited with {status}")))
                    };
                }
                None if Instant::now() >= deadline => {
                    return Err(self.failed(&format!("still running after {timeout:?}")))
                }
                None => thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    /// Kills and reaps the peer; what it printed on stderr, or how it ended.
    fn last_words(&mut self) -> String {
        let status = self.stop();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        match (stderr.trim(), status) {
            ("", Some(status)) => format!(" ({status})"),
            ("", None) => String::new(),
            (text, _) => format!(": {}", text.replace('\n', "; ")),
        }
    }

    /// The peer did something wrong (`what`): the error, with its last words.
    fn failed(&mut self, what: &str) -> String {
        format!("bench: the peer process {what}{}", self.last_words())
    }

    /// This side gave up with `err`: the error, with the peer's last words.
    fn gave_up(&mut self, err: &str) -> String {
        format!("{err}; the peer process{}", self.last_words())
    }

    /// Cancels the watchdog, then kills and reaps the peer if it still runs;
    /// how it ended, when this call reaped it.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.stdin = None;
        if let Some((cancel, handle)) = self.watchdog.take() {
            drop(cancel);
            let _ = handle.join();
        }
        if self.reaped {
            return None;
        }
        self.reaped = true;
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn pipe_u64(dur: Duration) -> Result<Measured> {
    pipe_case(dur, PeerRole::Pipe, 8)
}

fn pipe_4k(dur: Duration) -> Result<Measured> {
    pipe_case(dur, PeerRole::Pipe4k, MSG)
}

/// Messages of `size` bytes, numbered in their first 8, one `write(2)` each
/// (`ChildStdin` is unbuffered), until the time is up; then end of file.
fn pipe_case(dur: Duration, role: PeerRole, size: usize) -> Result<Measured> {
    let mut peer = Peer::spawn(role, None, dur)?;
    let mut stdin = peer.stdin.take().expect("piped");
    peer.expect("ready", READY_TIMEOUT)?;
    let mut msg = vec![0x5a_u8; size];
    let start = Instant::now();
    let deadline = start + dur;
    let mut sent = 0u64;
    let per_check = if size > 8 {
        CHECK_EVERY / 8
    } else {
        CHECK_EVERY
    };
    'outer: loop {
        for _ in 0..per_check {
            msg[..8].copy_from_slice(&sent.to_ne_bytes());
            if let Err(e) = stdin.write_all(&msg) {
                drop(stdin);
                return Err(peer.failed(&format!("stopped reading the pipe ({e})")));
            }
            sent += 1;
        }
        if Instant::now() >= deadline {
            break 'outer;
        }
    }
    drop(stdin);
    let done = peer.expect("done", STALL)?;
    let elapsed = start.elapsed();
    let received: u64 = done.parse().ctx("the peer's count")?;
    peer.finish(STALL)?;
    same_count(sent, received, "pipe")?;
    Ok(Measured {
        ops: received,
        elapsed,
    })
}

fn spsc_processes(dur: Duration) -> Result<Measured> {
    let seg = Segment::create("spsc", SpscRing::<u64>::required_size(RING_CAP))?;
    let ring =
        SpscRing::<u64, _>::create(seg.map()?, RING_CAP, RingOptions::new()).ctx("create ring")?;
    let mut tx = ring.producer().ctx("take the producer role")?;
    let mut peer = Peer::spawn(PeerRole::Spsc, Some(seg.name()), dur)?;
    peer.expect("ready", READY_TIMEOUT)?;
    // Both processes map it now: the name can go.
    seg.unlink()?;
    let start = Instant::now();
    let deadline = start + dur;
    let mut backoff = Backoff::new("spsc producer (2 processes)");
    let mut sent = 0u64;
    let mut push = |v: u64, backoff: &mut Backoff| -> Result<()> {
        while tx.push(v).is_err() {
            backoff.snooze()?;
        }
        backoff.reset();
        Ok(())
    };
    loop {
        for _ in 0..CHECK_EVERY {
            push(sent, &mut backoff).map_err(|e| peer.gave_up(&e))?;
            sent += 1;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    push(SENTINEL, &mut backoff).map_err(|e| peer.gave_up(&e))?;
    let done = peer.expect("done", STALL)?;
    let elapsed = start.elapsed();
    let received: u64 = done.parse().ctx("the peer's count")?;
    peer.finish(STALL)?;
    same_count(sent, received, "spsc (2 processes)")?;
    Ok(Measured {
        ops: received,
        elapsed,
    })
}

// ---------------------------------------------------------------------------
// The peer's side (`shm bench-peer`).

/// Dies with the parent (`PR_SET_PDEATHSIG`), and fails if the parent is
/// already gone.
fn die_with_parent(parent: u32) -> Result<()> {
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG takes a signal number by value;
    // no pointers are involved.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc != 0 {
        return Err(format!(
            "bench-peer: prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: getppid(2) has no preconditions and cannot fail.
    let ppid = unsafe { libc::getppid() };
    if ppid as u32 != parent {
        return Err(format!(
            "bench-peer: parent {parent} is gone (parent is now {ppid})"
        ));
    }
    Ok(())
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .ctx("bench-peer: write to the parent")
}

/// `shm bench-peer`: the second process of the two-process cases. Prints
/// `ready` once set up and `done <count>` at the end.
pub(crate) fn peer(role: PeerRole, name: Option<&str>, parent: u32) -> Result<()> {
    die_with_parent(parent)?;
    match role {
        PeerRole::Pipe => peer_pipe(8),
        PeerRole::Pipe4k => peer_pipe(MSG),
        PeerRole::Spsc => {
            let name = name.ok_or("bench-peer: --role spsc needs --name")?;
            peer_spsc(name)
        }
    }
}

/// Reads numbered messages of `size` bytes from standard input, one
/// `read(2)` per message (an unbuffered `File` over fd 0), until end of file.
fn peer_pipe(size: usize) -> Result<()> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ctx("bench-peer: stdin")?;
    let mut input = File::from(fd);
    let mut buf = vec![0u8; size];
    say("ready")?;
    let mut count = 0u64;
    loop {
        let n = input.read(&mut buf).ctx("bench-peer: read")?;
        if n == 0 {
            break;
        }
        input
            .read_exact(&mut buf[n..])
            .ctx("bench-peer: read a whole message")?;
        let seq = u64::from_ne_bytes(buf[..8].try_into().expect("8 bytes"));
        if seq != count {
            return Err(format!("bench-peer: got message {seq}, expected {count}"));
        }
        count += 1;
    }
    say(&format!("done {count}"))
}

fn peer_spsc(name: &str) -> Result<()> {
    let map = PosixShm::open(name)
        .and_then(|shm| shm.map())
        .ctx("bench-peer: open the segment")?;
    let ring = SpscRing::<u64, _>::attach(map).ctx("bench-peer: attach the ring")?;
    let mut rx = ring.consumer().ctx("bench-peer: take the consumer role")?;
    say("ready")?;
    let mut backoff = Backoff::new("bench-peer: spsc consumer");
    let mut expected = 0u64;
    loop {
        match rx.pop() {
            Ok(SENTINEL) => break,
            Ok(v) if v == expected => {
                expected += 1;
                backoff.reset();
            }
            Ok(v) => return Err(format!("bench-peer: got {v}, expected {expected}")),
            Err(_) => backoff.snooze()?,
        }
    }
    say(&format!("done {expected}"))
}
