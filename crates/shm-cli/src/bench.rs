//! `shm bench`: how fast shared memory is on this host, now, in a few
//! seconds: what an administrator asks before blaming (or choosing) it.
//!
//! Every case works on a POSIX segment in `/dev/shm`, the memory that
//! processes share here, and runs for a fixed time (about 1 s, or 0.2 s with
//! `--quick`), counting what it got done; nothing is hard-coded. Each case
//! that moves data checks what arrived, so a broken transport is an error,
//! not a fast result.
//!
//! - `create-1m`: create, map, unmap and remove a 1 MiB segment (what the
//!   kernel's tmpfs and `posix_fallocate` cost here).
//! - `copy-1m`: `write_at` then `read_at` of 1 MiB in a mapped segment.
//! - `spsc-u64`: an SPSC ring of `u64` in a segment, between two threads.
//! - `channel-4k`: 4 KiB messages through a channel in a segment, between
//!   two threads (the sender writes a block and sends its id, the receiver
//!   reads it and gives it back).
//!
//! Comparisons with other transports (pipes, sockets, iceoryx2, rtrb,
//! crossbeam) and between processes are the benches' job: `cargo xtask
//! bench`, results in `docs/benchmarks.md`.
//!
//! Segments are named `/shm-bench-<pid>-<case>`, created with
//! unlink-on-drop and unlinked as soon as they are mapped, so an error or a
//! kill leaves nothing behind after that point.

use std::io::{IsTerminal, Write};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use shm_mempool::{Channel, RecvError, SendError};
use shm_ring::{RingOptions, SpscRing};
use shm_segment::{Mapping, PosixOptions, Region};

use crate::output::Render;

type Result<T> = std::result::Result<T, String>;

/// How long each case runs.
const CASE_TIME: Duration = Duration::from_millis(1000);
/// How long each case runs with `--quick`.
const QUICK_CASE_TIME: Duration = Duration::from_millis(200);
const MIB: usize = 1 << 20;
/// Ring capacity of `spsc-u64`.
const RING_CAP: usize = 4096;
/// Blocks in the `channel-4k` channel, and the message size.
const BLOCKS: usize = 64;
const MSG: usize = 4096;
/// The value that ends a stream.
const SENTINEL: u64 = u64::MAX;
/// How often the hot loops look at the clock (in operations).
const CHECK_EVERY: u32 = 256;
/// A side that makes no progress for this long has lost its peer.
const STALL: Duration = Duration::from_secs(5);

/// One case: what it measures, the payload bytes per operation (0: none,
/// so no MB/s), and how it runs for a given time.
struct Case {
    id: &'static str,
    what: &'static str,
    bytes_per_op: u64,
    run: fn(Duration) -> Result<Measured>,
}

const CASES: &[Case] = &[
    Case {
        id: "create-1m",
        what: "create + map + unmap + remove, 1 MiB",
        bytes_per_op: 0,
        run: create_1m,
    },
    Case {
        id: "copy-1m",
        what: "write_at + read_at, 1 MiB",
        bytes_per_op: 2 * MIB as u64,
        run: copy_1m,
    },
    Case {
        id: "spsc-u64",
        what: "SPSC ring, u64, 2 threads",
        bytes_per_op: 8,
        run: spsc_u64,
    },
    Case {
        id: "channel-4k",
        what: "channel, 4 KiB messages, 2 threads",
        bytes_per_op: MSG as u64,
        run: channel_4k,
    },
];

/// What one case got done, and in how long.
#[derive(Debug, Clone, Copy)]
struct Measured {
    ops: u64,
    elapsed: Duration,
}

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

/// Runs every case and returns the report, which the caller prints (as
/// text or JSON) through `output::emit`. On a terminal, stderr says which
/// case runs.
pub(crate) fn run(quick: bool) -> Result<Report> {
    let per_case = if quick { QUICK_CASE_TIME } else { CASE_TIME };
    let progress = std::io::stderr().is_terminal();
    let mut rows = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        if progress {
            eprint!("\r\x1b[K[{}/{}] {}", i + 1, CASES.len(), case.what);
            let _ = std::io::stderr().flush();
        }
        let result = (case.run)(per_case);
        if progress {
            eprint!("\r\x1b[K");
        }
        let m = result.map_err(|e| format!("{e} (in case {})", case.id))?;
        if m.ops == 0 || m.elapsed.is_zero() {
            return Err(format!("bench: case {} did nothing", case.id));
        }
        let rate = m.ops as f64 / m.elapsed.as_secs_f64();
        rows.push(Row {
            id: case.id,
            what: case.what,
            ops: m.ops,
            seconds: m.elapsed.as_secs_f64(),
            ops_per_sec: rate,
            mb_per_sec: (case.bytes_per_op > 0).then(|| rate * case.bytes_per_op as f64 / 1e6),
            ns_per_op: m.elapsed.as_nanos() as f64 / m.ops as f64,
        });
    }
    Ok(Report {
        machine: machine(),
        quick,
        seconds_per_case: per_case.as_secs_f64(),
        cases: rows,
    })
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
        let m = &self.machine;
        writeln!(
            out,
            "shm bench: {} ({} CPUs), Linux {}, {} build, {:.1} s per case",
            m.cpu, m.cpus, m.kernel, m.build, self.seconds_per_case
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
            "{:<40} {:>9} {:>12} {:>12} {:>10}",
            "CASE", "OPS", "OPS/S", "MB/S", "NS/OP"
        )?;
        for row in &self.cases {
            let mb = row
                .mb_per_sec
                .map_or_else(|| "-".to_owned(), |mb| format!("{mb:.0}"));
            writeln!(
                out,
                "{:<40} {:>9} {:>12} {:>12} {:>10.1}",
                row.what,
                si(row.ops as f64),
                si(row.ops_per_sec),
                mb,
                row.ns_per_op
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "Against pipes, sockets and other libraries, between processes: `cargo xtask bench` \
             (docs/benchmarks.md)."
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Helpers.

/// Turns any error into this module's `String` error, with what was being done.
trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| format!("bench: {what}: {e}"))
    }
}

/// A mapped POSIX segment `/shm-bench-<pid>-<what>` whose name is already
/// removed: nothing is left behind, whatever happens next.
fn segment(what: &str, size: usize) -> Result<Mapping> {
    let name = format!("/shm-bench-{}-{what}", std::process::id());
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, size)
        .ctx("create segment")?;
    shm.map().ctx("map segment")
    // `shm` drops here and unlinks the name; the mapping stays valid.
}

/// Runs `op` again and again until `dur` has passed (for operations of
/// microseconds or more: the clock is read after each).
fn for_a_while(dur: Duration, mut op: impl FnMut() -> Result<()>) -> Result<Measured> {
    let start = Instant::now();
    let mut ops = 0u64;
    while ops == 0 || start.elapsed() < dur {
        op()?;
        ops += 1;
    }
    Ok(Measured {
        ops,
        elapsed: start.elapsed(),
    })
}

/// Spins, then yields, while the other thread catches up; an error after
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

    fn reset(&mut self) {
        self.spins = 0;
        self.since = None;
    }

    fn snooze(&mut self) -> Result<()> {
        self.spins = self.spins.wrapping_add(1);
        if self.spins < 64 {
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
        if self.spins % 1024 == 0 {
            let now = Instant::now();
            if now - *self.since.get_or_insert(now) > STALL {
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

/// Sends `0, 1, 2, …` and then [`SENTINEL`] with `send` on a second thread
/// until `dur` has passed, while this thread receives with `recv` (`None`:
/// nothing yet) and checks the numbering.
fn stream(
    dur: Duration,
    what: &'static str,
    mut send: impl FnMut(u64) -> Result<bool> + Send,
    mut recv: impl FnMut() -> Result<Option<u64>>,
) -> Result<Measured> {
    let start = Instant::now();
    thread::scope(|s| {
        let sender = s.spawn(move || -> Result<u64> {
            let mut backoff = Backoff::new(what);
            let mut put = |v: u64| -> Result<()> {
                while !send(v)? {
                    backoff.snooze()?;
                }
                backoff.reset();
                Ok(())
            };
            let mut next = 0u64;
            while start.elapsed() < dur {
                for _ in 0..CHECK_EVERY {
                    put(next)?;
                    next += 1;
                }
            }
            put(SENTINEL)?;
            Ok(next)
        });
        let mut backoff = Backoff::new(what);
        let mut expected = 0u64;
        loop {
            match recv()? {
                Some(SENTINEL) => break,
                Some(v) if v == expected => {
                    expected += 1;
                    backoff.reset();
                }
                Some(v) => return Err(format!("bench: {what}: got {v}, expected {expected}")),
                None => backoff.snooze()?,
            }
        }
        let elapsed = start.elapsed();
        let sent = sender
            .join()
            .map_err(|_| format!("bench: the {what} sender panicked"))??;
        if sent != expected {
            return Err(format!(
                "bench: {what}: sent {sent} items but {expected} arrived"
            ));
        }
        Ok(Measured {
            ops: expected,
            elapsed,
        })
    })
}

// ---------------------------------------------------------------------------
// The cases.

fn create_1m(dur: Duration) -> Result<Measured> {
    let name = format!("/shm-bench-{}-create", std::process::id());
    for_a_while(dur, || {
        let shm = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, MIB)
            .ctx("create segment")?;
        let map = shm.map().ctx("map segment")?;
        std::hint::black_box(map.len());
        Ok(())
    })
}

fn copy_1m(dur: Duration) -> Result<Measured> {
    let map = segment("copy", MIB)?;
    let data = vec![0x5a_u8; MIB];
    let mut back = vec![0_u8; MIB];
    let m = for_a_while(dur, || {
        map.write_at(0, &data).ctx("write_at")?;
        map.read_at(0, &mut back).ctx("read_at")?;
        std::hint::black_box(&mut back);
        Ok(())
    })?;
    if back != data {
        return Err("bench: copy: read back something else".into());
    }
    Ok(m)
}

fn spsc_u64(dur: Duration) -> Result<Measured> {
    let map = segment("spsc", SpscRing::<u64>::required_size(RING_CAP))?;
    let ring = SpscRing::<u64, _>::create(map, RING_CAP, RingOptions::new()).ctx("create ring")?;
    let mut tx = ring.producer().ctx("producer")?;
    let mut rx = ring.consumer().ctx("consumer")?;
    stream(
        dur,
        "spsc",
        move |v| Ok(tx.push(v).is_ok()),
        move || Ok(rx.pop().ok()),
    )
}

fn channel_4k(dur: Duration) -> Result<Measured> {
    let map = segment("chan", Channel::required_size(BLOCKS, MSG))?;
    let ch = Channel::create(map, BLOCKS, MSG).ctx("create channel")?;
    let tx = ch.clone();
    let mut msg = vec![0x5a_u8; MSG];
    let mut buf = vec![0_u8; MSG];
    let m = stream(
        dur,
        "channel",
        move |seq| {
            let block = match tx.try_get() {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(false),
                Err(e) => return Err(format!("bench: channel alloc: {e}")),
            };
            msg[..8].copy_from_slice(&seq.to_ne_bytes());
            block.write_at(0, &msg).ctx("channel write")?;
            block.set_used(MSG);
            // The channel's queue has a cell for every block: never full.
            match tx.send(block) {
                Ok(()) => Ok(true),
                Err(SendError::Pool(e)) => Err(format!("bench: channel send: {e}")),
                Err(SendError::ForeignBlock(_)) => {
                    Err("bench: channel send: a block of another pool".into())
                }
            }
        },
        || match ch.recv() {
            Ok(block) => {
                block.read_at(0, &mut buf).ctx("channel read")?;
                if block.used() != MSG || buf[MSG - 1] != 0x5a {
                    return Err("bench: channel: a message arrived damaged".into());
                }
                Ok(Some(u64::from_ne_bytes(
                    buf[..8].try_into().expect("8 bytes"),
                )))
            }
            Err(RecvError::Empty) => Ok(None),
            Err(e) => Err(format!("bench: channel recv: {e}")),
        },
    )?;
    if ch.pool().stats().free != BLOCKS {
        return Err("bench: channel: blocks went missing".into());
    }
    Ok(m)
}
