//! The goals of "Ahead of every peer, measured in one run": every row of the
//! goal table, ours and its peer timed back to back in one process, in
//! interleaved rounds (results in `docs/benchmarks.md`, section "Goals").
//!
//! ```text
//! cargo bench -p shm-benches --bench goals                         # 5 rounds
//! cargo bench -p shm-benches --bench goals -- --quick              # smoke: 2 short rounds
//! cargo bench -p shm-benches --bench goals -- --rounds 9 --out target/goals.json
//! cargo bench -p shm-benches --bench goals -- --only rt_           # rows whose id starts so
//! ```
//!
//! The same settings from the environment: `SHM_GOALS_ROUNDS`,
//! `SHM_GOALS_QUICK=1`, `SHM_GOALS_OUT`, `SHM_GOALS_ONLY`; and, for
//! profiling one case, `SHM_GOALS_CASES=channel_4k,...` (only those cases;
//! rows missing one of theirs report nothing). `cargo xtask
//! bench` runs this once and turns the JSON it writes into the "Goals"
//! section of `docs/benchmarks.md` and `docs/benchmarks.svg`.
//!
//! How it measures: criterion measures one case after the other, so on a
//! busy 2-core machine a change of load between two cases becomes a
//! difference between them. Here (as in `segment.rs --interleaved`) every
//! round runs every case once, in an order rotated each round, and each
//! row's ratio is taken within a round (ours and its peer a few hundred
//! milliseconds apart), then summarized over the rounds: median, min, max.
//! One case in a round: start it (threads, child processes, segments:
//! untimed), a short warm-up step, one timed step of `n` items, stop it. `n`
//! is calibrated once per case so that a step takes about
//! [`STEP_TARGET`] (or [`QUICK_STEP_TARGET`]). A time is per item: per
//! message, per round trip, per get + drop.
//!
//! Ratios: for a throughput goal ("≥ x") the ratio is peer time / our time
//! (above 1, ours is faster); for a time goal ("≤ x", the round trips
//! against the floor, the blocking round trip, the pool) it is our time /
//! peer time (below 1, ours is faster). Rows without a goal are reported
//! for reference.
//!
//! Safety nets as in the other benches: children are this binary run again
//! (with a role in the environment), die with their parent
//! (`PR_SET_PDEATHSIG`), and `alarm(2)` ends a step that hangs. Segments
//! are named `/shm-bench-…` and unlinked once the child has attached (or on
//! drop); iceoryx2 runs in a private domain removed at the end.
//!
//! Placement: with two or more CPUs this thread runs on the first CPU the
//! process may use and the peer (thread or child) on the second; MPMC
//! threads alternate between them; the blocking round trip puts both
//! processes on the first CPU (every wait has to sleep). The 4x4 MPMC row
//! runs 8 threads on however many CPUs there are.

use std::hint::black_box;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use shm::mempool::MemPool;
use shm::ring::{RingOptions, SpscRing};
use shm::segment::{Mapping, PosixOptions, PosixShm, Region};

mod common;
use common::msg_peers as mp;
use common::ring_peers as rp;
use common::{cpu_for, cpus, die_with_parent, env, install_watchdog, pin, watchdog, PinGuard};

/// One timed step takes about this long (calibrated per case).
const STEP_TARGET: Duration = Duration::from_millis(150);
/// ... and this long with `--quick`.
const QUICK_STEP_TARGET: Duration = Duration::from_millis(15);
/// Rounds by default, and with `--quick`.
const ROUNDS: usize = 5;
const QUICK_ROUNDS: usize = 2;
/// How long one step may run before the watchdog ends the run.
const STEP_LIMIT_S: u32 = 120;
/// Blocks in the pool of the get + drop row.
const POOL_BLOCKS: usize = 64;

/// This binary's own children (the floor's echo); the ring and channel
/// children have their own variables, see `ring_peers` and `msg_peers`.
const ROLE_ENV: &str = "SHM_GOALS_ROLE";
const NAMES_ENV: &str = "SHM_GOALS_NAMES";
const PARENT_ENV: &str = "SHM_GOALS_PARENT";
const CPU_ENV: &str = "SHM_GOALS_CPU";

// ---------------------------------------------------------------------------
// Cases: something started, stepped `n` items at a time, stopped
// ---------------------------------------------------------------------------

/// A case while it runs.
trait Running {
    /// Moves `n` items (messages, round trips, get + drop pairs); the time.
    fn step(&mut self, n: u64) -> Duration;
    /// Stops threads and children, cleans up.
    fn stop(self: Box<Self>);
}

/// A step with nothing to start or stop (threads spawned per step).
struct Steps<F>(F);

impl<F: FnMut(u64) -> Duration> Running for Steps<F> {
    fn step(&mut self, n: u64) -> Duration {
        (self.0)(n)
    }
    fn stop(self: Box<Self>) {}
}

/// A ring-bench link (child or thread peer) and the step run over it.
struct OverLink<L: rp::Link> {
    link: L,
    step: fn(&mut L::Tx, &mut L::Rx, u64) -> Duration,
}

impl<L: rp::Link> Running for OverLink<L> {
    fn step(&mut self, n: u64) -> Duration {
        let (tx, rx) = self.link.ends();
        (self.step)(tx, rx, n)
    }
    fn stop(self: Box<Self>) {
        self.link.stop();
    }
}

fn over<L: rp::Link + 'static>(
    link: L,
    step: fn(&mut L::Tx, &mut L::Rx, u64) -> Duration,
) -> Box<dyn Running> {
    Box::new(OverLink { link, step })
}

/// A message link to a child (ours, a pipe, iceoryx2) and its step.
struct Messages<L: mp::Link> {
    link: L,
    msg: Vec<u8>,
    id: u64,
    step: fn(&mut L, &mut [u8], u64, u64) -> Duration,
}

impl<L: mp::Link> Running for Messages<L> {
    fn step(&mut self, n: u64) -> Duration {
        self.id += 1;
        (self.step)(&mut self.link, &mut self.msg, self.id, n)
    }
    fn stop(self: Box<Self>) {
        self.link.stop();
    }
}

fn messages<L: mp::Link + 'static>(
    link: L,
    size: usize,
    step: fn(&mut L, &mut [u8], u64, u64) -> Duration,
) -> Box<dyn Running> {
    Box::new(Messages {
        link,
        msg: vec![0xA5; size],
        id: 0,
        step,
    })
}

/// How our channel rows send: in bursts of `mp::BURST` blocks with one
/// `Channel::send_many` each, received with `recv_many` (the child does the
/// same for every channel case). `channel_4k_single` sends one at a time.
const CHANNEL_STEP: fn(&mut mp::ChannelLink, &mut [u8], u64, u64) -> Duration =
    mp::channel_batch_many;

struct Case {
    id: &'static str,
    what: &'static str,
    start: Box<dyn Fn() -> Box<dyn Running>>,
}

fn case(
    id: &'static str,
    what: &'static str,
    start: impl Fn() -> Box<dyn Running> + 'static,
) -> Case {
    Case {
        id,
        what,
        start: Box::new(start),
    }
}

fn steps(f: impl FnMut(u64) -> Duration + 'static) -> Box<dyn Running> {
    Box::new(Steps(f))
}

/// A fresh POSIX name for this run.
fn segment_name(tag: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    format!(
        "/shm-bench-goals-{}-{tag}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn mpmc(peer: rp::MpmcPeer, p: usize, c: usize) -> Box<dyn Running> {
    steps(move |n| rp::mpmc_step(peer, n, p, c))
}

/// Every case of every row, in the order of the table.
fn cases() -> Vec<Case> {
    use rp::MpmcPeer::{Crossbeam, OursBatch, OursSingle};
    let peer = cpu_for(1);
    vec![
        // SPSC between threads: single, POSIX, batches, chunks.
        case("spsc_heap", "SpscRing::new_heap, push/pop", || {
            steps(|n| {
                let ends = SpscRing::<u64>::new_heap(rp::CAPACITY).expect("ring");
                rp::two_threads(n, ends, rp::send_all, rp::recv_all)
            })
        }),
        case("spsc_posix", "SpscRing::create_posix, push/pop", || {
            steps(|n| {
                let ring = SpscRing::<u64>::create_posix(&segment_name("spsc"), rp::CAPACITY)
                    .expect("ring");
                let ends = (
                    ring.producer().expect("producer"),
                    ring.consumer().expect("consumer"),
                );
                drop(ring); // the ends keep the segment; the last one unlinks it
                rp::two_threads(n, ends, rp::send_all, rp::recv_all)
            })
        }),
        case("rtrb_single", "rtrb push/pop", || {
            steps(|n| {
                let ends = rtrb::RingBuffer::<u64>::new(rp::CAPACITY);
                rp::two_threads(n, ends, rp::send_all, rp::recv_all)
            })
        }),
        case("spsc_batch32", "push_slice/pop_into, 32", || {
            steps(|n| {
                let ends = SpscRing::<u64>::new_heap(rp::CAPACITY).expect("ring");
                rp::two_threads(
                    n,
                    ends,
                    |tx, n| rp::push_batches(n, |v| tx.push_slice(v)),
                    |mut rx, n| rp::pop_batches(n, |out| rx.pop_into(out)),
                )
            })
        }),
        case("spsc_chunk32", "write_chunk/read_chunk, 32", || {
            steps(|n| {
                let ends = SpscRing::<u64>::new_heap(rp::CAPACITY).expect("ring");
                rp::two_threads(
                    n,
                    ends,
                    |tx, n| rp::push_batches(n, |v| rp::ours_push_chunk(tx, v)),
                    |mut rx, n| rp::pop_batches(n, |out| rp::ours_pop_chunk(&mut rx, out)),
                )
            })
        }),
        case(
            "rtrb_chunk32",
            "rtrb write_chunk_uninit/read_chunk, 32",
            || {
                steps(|n| {
                    let ends = rtrb::RingBuffer::<u64>::new(rp::CAPACITY);
                    rp::two_threads(
                        n,
                        ends,
                        |p, n| rp::push_batches(n, |v| rp::rtrb_push_chunk(p, v)),
                        |mut c, n| rp::pop_batches(n, |out| rp::rtrb_pop_chunk(&mut c, out)),
                    )
                })
            },
        ),
        case(
            "floor_batch32",
            "the least ring: memcpy of 32 + one index store, slipping",
            || {
                steps(|n| {
                    rp::two_threads(
                        n,
                        rp::floor_ring(),
                        |tx, n| rp::push_batches(n, |v| tx.push(v)),
                        |mut rx, n| rp::pop_batches(n, |out| rx.pop(out)),
                    )
                })
            },
        ),
        // SPSC to a child process, and the same ring between threads.
        case(
            "spsc_process",
            "POSIX ring to a child, push/pop",
            move || {
                over(
                    rp::RingProcess::start("ring-sink", RingOptions::new(), peer),
                    rp::send_batch,
                )
            },
        ),
        case("spsc_process_threads", "the same ring to a thread", || {
            over(rp::sink_thread_link(), rp::send_batch)
        }),
        // MPMC.
        case("mpmc_1x1", "MpmcRing push/pop, 1x1", || {
            mpmc(OursSingle, 1, 1)
        }),
        case("crossbeam_1x1", "ArrayQueue, 1x1", || mpmc(Crossbeam, 1, 1)),
        case("mpmc_2x2", "MpmcRing push/pop, 2x2", || {
            mpmc(OursSingle, 2, 2)
        }),
        case("crossbeam_2x2", "ArrayQueue, 2x2", || mpmc(Crossbeam, 2, 2)),
        case("mpmc_4x4", "MpmcRing push/pop, 4x4", || {
            mpmc(OursSingle, 4, 4)
        }),
        case("crossbeam_4x4", "ArrayQueue, 4x4", || mpmc(Crossbeam, 4, 4)),
        case(
            "mpmc_2x2_batch32",
            "MpmcRing push_slice/pop_into 32, 2x2",
            || mpmc(OursBatch, 2, 2),
        ),
        // Busy-polling round trips.
        case("rt_threads", "two heap rings, echo thread", || {
            over(rp::ours_echo_thread_link(), rp::round_trips)
        }),
        case("rt_threads_rtrb", "two rtrb rings, echo thread", || {
            over(rp::rtrb_echo_thread_link(), rp::round_trips)
        }),
        case(
            "rt_burst8",
            "two heap rings, echo thread, bursts of 8",
            || over(rp::ours_echo_thread_link(), rp::burst_round_trips),
        ),
        case(
            "rt_burst8_rtrb",
            "two rtrb rings, echo thread, bursts of 8",
            || over(rp::rtrb_echo_thread_link(), rp::burst_round_trips),
        ),
        case("floor_threads", "one cache line, two threads", || {
            Box::new(FloorThreads::start(false))
        }),
        case(
            "floor_threads_2",
            "two cache lines (one per direction), two threads",
            || Box::new(FloorThreads::start(true)),
        ),
        case("rt_process", "two POSIX rings, echo child", move || {
            over(
                rp::RingProcess::start("ring-echo", RingOptions::new(), peer),
                rp::round_trips,
            )
        }),
        case(
            "floor_process",
            "one cache line, two processes",
            move || Box::new(FloorProcess::start(peer, Floor::Line)),
        ),
        case(
            "floor_process_2",
            "two cache lines (one per direction), two processes",
            move || Box::new(FloorProcess::start(peer, Floor::TwoLines)),
        ),
        case("rt_iceoryx2", "iceoryx2 pub-sub, echo child", move || {
            over(rp::IoxProcess::start(peer), rp::round_trips)
        }),
        // Blocking round trip, both processes on one CPU.
        case(
            "blocking_1cpu",
            "blocking rings, echo child, one CPU",
            || {
                over(
                    rp::RingProcess::start(
                        "ring-echo-blocking",
                        RingOptions::new().blocking(true),
                        cpu_for(0),
                    ),
                    round_trips_blocking,
                )
            },
        ),
        case(
            "floor_1cpu",
            "one cache line, two processes, sched_yield, one CPU",
            || Box::new(FloorProcess::start(cpu_for(0), Floor::Yielding)),
        ),
        case("pipe_1cpu", "pipe pair, echo child, one CPU", || {
            over(
                rp::PipeProcess::start("fd-echo", cpu_for(0)),
                rp::round_trips,
            )
        }),
        // Pool.
        case(
            "pool_get_drop",
            "MemPool::new_heap(64, 64): get + drop",
            || {
                let pool = MemPool::new_heap(POOL_BLOCKS, 64).expect("pool");
                steps(move |n| {
                    let start = Instant::now();
                    for _ in 0..n {
                        let block = pool.get().expect("a free block");
                        black_box(&block);
                    }
                    start.elapsed()
                })
            },
        ),
        case("box_64", "Box::new([0u8; 64]) + drop", || {
            steps(|n| {
                let start = Instant::now();
                for _ in 0..n {
                    let boxed = Box::new([0u8; 64]);
                    black_box(&boxed);
                }
                start.elapsed()
            })
        }),
        // Messages to a child.
        case("channel_4k", "Channel, 4 KiB messages to a child", || {
            messages(mp::ChannelLink::start(4096), 4096, CHANNEL_STEP)
        }),
        case(
            "channel_4k_single",
            "Channel, 4 KiB messages to a child, one send each",
            || messages(mp::ChannelLink::start(4096), 4096, mp::batch),
        ),
        case("pipe_4k", "pipe, 4 KiB messages to a child", || {
            messages(mp::PipeLink::start(4096), 4096, mp::batch)
        }),
        case("iceoryx2_4k", "iceoryx2, 4 KiB messages to a child", || {
            messages(mp::IoxLink::<4096>::start(), 4096, mp::batch)
        }),
        case("floor_4k", "4 KiB copies + one store to a child", || {
            messages(mp::FloorLink::start(4096), 4096, mp::batch)
        }),
        case("channel_64k", "Channel, 64 KiB messages to a child", || {
            messages(mp::ChannelLink::start(65536), 65536, CHANNEL_STEP)
        }),
        case("pipe_64k", "pipe, 64 KiB messages to a child", || {
            messages(mp::PipeLink::start(65536), 65536, mp::batch)
        }),
        case("floor_64k", "64 KiB copies + one store to a child", || {
            messages(mp::FloorLink::start(65536), 65536, mp::batch)
        }),
        case(
            "iceoryx2_64k",
            "iceoryx2, 64 KiB messages to a child",
            || messages(mp::IoxLink::<65536>::start(), 65536, mp::batch),
        ),
    ]
}

fn round_trips_blocking<R>(
    tx: &mut shm::ring::Producer<u64, R>,
    rx: &mut shm::ring::Consumer<u64, R>,
    n: u64,
) -> Duration {
    rp::round_trips(&mut rp::BlockingTx(tx), &mut rp::BlockingRx(rx), n)
}

// ---------------------------------------------------------------------------
// Rows: the goal table
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Goal {
    /// Throughput: peer time / our time at least this.
    AtLeast(f64),
    /// Time: our time / peer time at most this.
    AtMost(f64),
    /// Reported, no goal: throughput ratio (peer / ours).
    ReportSpeed,
    /// Reported, no goal: time ratio (ours / peer).
    ReportTime,
}

impl Goal {
    /// Whether the ratio is ours / peer (else peer / ours).
    fn is_time(self) -> bool {
        matches!(self, Goal::AtMost(_) | Goal::ReportTime)
    }
}

struct Row {
    id: &'static str,
    scenario: &'static str,
    ours: &'static str,
    peer: &'static str,
    peer_name: &'static str,
    goal: Goal,
    /// How the goal reads in the issue.
    goal_text: &'static str,
    /// The case that does the least any implementation must do for this
    /// row (the floor), measured in the same run: where it misses the goal
    /// against the same peer, so must every implementation.
    floor: Option<&'static str>,
}

const fn row(
    id: &'static str,
    scenario: &'static str,
    ours: &'static str,
    peer: &'static str,
    peer_name: &'static str,
    goal: Goal,
    goal_text: &'static str,
) -> Row {
    Row {
        id,
        scenario,
        ours,
        peer,
        peer_name,
        goal,
        goal_text,
        floor: None,
    }
}

impl Row {
    /// This row with `case` as its floor (see [`Row::floor`]).
    const fn floor(mut self, case: &'static str) -> Row {
        self.floor = Some(case);
        self
    }
}

/// The goal table of the issue. "keep" goals are met when ours stays ahead
/// of the peer (≥ 1.0×), except the MPMC batches, met at the low end of the
/// earlier 5–8×.
const ROWS: &[Row] = &[
    row(
        "spsc_heap",
        "SPSC threads, `SpscRing::new_heap`",
        "spsc_heap",
        "rtrb_single",
        "rtrb",
        Goal::AtLeast(1.0),
        "≥ 1.0× rtrb",
    ),
    row(
        "spsc_posix",
        "SPSC threads, same ring over a POSIX segment",
        "spsc_posix",
        "rtrb_single",
        "rtrb",
        Goal::AtLeast(1.0),
        "keep ≥ 1.0× (was 1.9×)",
    ),
    row(
        "spsc_batch32",
        "batches of 32, `push_slice`/`pop_into`",
        "spsc_batch32",
        "rtrb_chunk32",
        "rtrb chunks of 32",
        Goal::AtLeast(1.5),
        "≥ 1.5×",
    )
    .floor("floor_batch32"),
    row(
        "spsc_chunk32",
        "chunks of 32, `write_chunk`/`read_chunk`",
        "spsc_chunk32",
        "rtrb_chunk32",
        "rtrb chunks of 32",
        Goal::AtLeast(1.5),
        "≥ 1.5×",
    )
    .floor("floor_batch32"),
    row(
        "spsc_batch32_floor",
        "batches of 32, `push_slice`/`pop_into`",
        "spsc_batch32",
        "floor_batch32",
        "floor (memcpy of 32 + one index store, slipping)",
        Goal::ReportTime,
        "report",
    ),
    row(
        "rtrb_chunk32_floor",
        "rtrb chunks of 32 (the peer of the two rows above)",
        "rtrb_chunk32",
        "floor_batch32",
        "floor (memcpy of 32 + one index store, slipping)",
        Goal::ReportTime,
        "report",
    ),
    row(
        "spsc_process",
        "SPSC across 2 processes",
        "spsc_process",
        "spsc_process_threads",
        "same ring between threads",
        Goal::AtLeast(0.9),
        "≥ 0.9×",
    ),
    row(
        "mpmc_2x2",
        "MPMC 2x2, single ops",
        "mpmc_2x2",
        "crossbeam_2x2",
        "crossbeam ArrayQueue",
        Goal::AtLeast(1.0),
        "≥ 1.0×",
    ),
    row(
        "mpmc_1x1",
        "MPMC 1x1, single ops",
        "mpmc_1x1",
        "crossbeam_1x1",
        "crossbeam ArrayQueue",
        Goal::AtLeast(1.0),
        "keep ≥ 1",
    ),
    row(
        "mpmc_4x4",
        "MPMC 4x4, single ops",
        "mpmc_4x4",
        "crossbeam_4x4",
        "crossbeam ArrayQueue",
        Goal::AtLeast(1.0),
        "keep ≥ 1",
    ),
    row(
        "mpmc_batch32",
        "MPMC 2x2, batches of 32",
        "mpmc_2x2_batch32",
        "crossbeam_2x2",
        "crossbeam single ops",
        Goal::AtLeast(5.0),
        "keep ≥ 5× (was 5–8×)",
    ),
    row(
        "rt_threads",
        "round trip, threads",
        "rt_threads",
        "floor_threads",
        "floor (one cache line, 2 threads)",
        Goal::AtMost(1.3),
        "≤ 1.3× floor",
    )
    .floor("floor_threads_2"),
    row(
        "rt_threads_2",
        "round trip, threads: the floor of two rings",
        "rt_threads",
        "floor_threads_2",
        "two lines, one per direction",
        Goal::ReportTime,
        "report",
    ),
    row(
        "floor_threads_2",
        "round trip, threads: two lines (the floor of two rings) against one",
        "floor_threads_2",
        "floor_threads",
        "floor (one cache line, 2 threads)",
        Goal::ReportTime,
        "report",
    ),
    row(
        "rt_threads_rtrb",
        "round trip, threads",
        "rt_threads",
        "rt_threads_rtrb",
        "rtrb",
        Goal::ReportTime,
        "report",
    ),
    row(
        "rt_burst8",
        "round trip of a burst of 8 items, one push and pop each, threads",
        "rt_burst8",
        "rt_burst8_rtrb",
        "rtrb",
        Goal::ReportTime,
        "report",
    ),
    row(
        "rt_process",
        "round trip, processes, busy-poll",
        "rt_process",
        "floor_process",
        "floor (one cache line, 2 processes)",
        Goal::AtMost(1.3),
        "≤ 1.3× floor",
    )
    .floor("floor_process_2"),
    row(
        "rt_process_2",
        "round trip, processes: the floor of two rings",
        "rt_process",
        "floor_process_2",
        "two lines, one per direction",
        Goal::ReportTime,
        "report",
    ),
    row(
        "floor_process_2",
        "round trip, processes: two lines (the floor of two rings) against one",
        "floor_process_2",
        "floor_process",
        "floor (one cache line, 2 processes)",
        Goal::ReportTime,
        "report",
    ),
    row(
        "rt_process_iceoryx2",
        "round trip, processes, busy-poll",
        "rt_process",
        "rt_iceoryx2",
        "iceoryx2",
        Goal::ReportTime,
        "report",
    ),
    row(
        "blocking_1cpu",
        "blocking round trip, one CPU",
        "blocking_1cpu",
        "pipe_1cpu",
        "pipe",
        Goal::AtMost(0.5),
        "≤ 0.5× pipe time",
    )
    .floor("floor_1cpu"),
    row(
        "blocking_1cpu_floor",
        "blocking round trip, one CPU: the floor (`sched_yield` ping-pong)",
        "floor_1cpu",
        "pipe_1cpu",
        "pipe",
        Goal::ReportTime,
        "report",
    ),
    row(
        "pool_get_drop",
        "pool get + drop, one thread (64-block pool)",
        "pool_get_drop",
        "box_64",
        "`Box<[u8; 64]>` new + drop",
        Goal::AtMost(1.0),
        "≤ 1.0× Box time",
    ),
    row(
        "channel_4k",
        "channel, 4 KiB messages parent → child",
        "channel_4k",
        "pipe_4k",
        "pipe",
        Goal::AtLeast(10.0),
        "≥ 10× pipe",
    )
    .floor("floor_4k"),
    row(
        "channel_4k_iceoryx2",
        "channel, 4 KiB messages parent → child",
        "channel_4k",
        "iceoryx2_4k",
        "iceoryx2",
        Goal::ReportSpeed,
        "report",
    ),
    row(
        "channel_4k_single",
        "channel, 4 KiB messages parent → child, one `send` each",
        "channel_4k_single",
        "pipe_4k",
        "pipe",
        Goal::ReportSpeed,
        "report",
    ),
    row(
        "channel_4k_floor",
        "channel, 4 KiB messages parent → child",
        "channel_4k",
        "floor_4k",
        "floor (a copy into shared memory + one store)",
        Goal::ReportTime,
        "report",
    ),
    row(
        "channel_64k",
        "channel, 64 KiB messages parent → child",
        "channel_64k",
        "iceoryx2_64k",
        "iceoryx2",
        Goal::AtLeast(1.5),
        "≥ 1.5× iceoryx2",
    )
    .floor("floor_64k"),
    row(
        "channel_64k_pipe",
        "channel, 64 KiB messages parent → child",
        "channel_64k",
        "pipe_64k",
        "pipe",
        Goal::ReportSpeed,
        "report",
    ),
    row(
        "channel_64k_floor",
        "channel, 64 KiB messages parent → child",
        "channel_64k",
        "floor_64k",
        "floor (a copy into shared memory + one store)",
        Goal::ReportTime,
        "report",
    ),
];

// ---------------------------------------------------------------------------
// The floors: one cache line bounced between two threads or processes, and
// two lines, one per direction (the least a pair of one-way rings can do)
// ---------------------------------------------------------------------------

/// Tells the floor's echo to exit (odd, but checked first).
const FLOOR_STOP: u64 = u64::MAX;
/// The child's word once it has attached (even: not a ping).
const FLOOR_ATTACHED: u64 = u64::MAX - 1;
/// Where the pong line starts in the two-line floors: a line pair of its
/// own (as `CachePadded` keeps the rings' indices apart).
const PONG_OFFSET: usize = 128;

/// Which floor a [`FloorProcess`] runs.
#[derive(Clone, Copy, PartialEq)]
enum Floor {
    /// One line, both directions.
    Line,
    /// One line, both sides `sched_yield` between polls (see [`snooze`]).
    Yielding,
    /// Two lines: pings in one, pongs in the other. Each line is written
    /// by one side and read by the other, as a ring's index is, so every
    /// hop waits for the writer to take the line back from the reader and
    /// then for the reader to fetch it: two line latencies per hop, where
    /// the one-line floor moves the line once per hop.
    TwoLines,
}

impl Floor {
    fn role(self) -> &'static str {
        match self {
            Floor::Line => "floor-echo",
            Floor::Yielding => "floor-echo-yield",
            Floor::TwoLines => "floor-echo-2",
        }
    }
}

/// The other side of a floor: answers every new odd value `v` on `ping`
/// with `v + 1` on `pong` (the same line in the one-line floors), backing
/// off like every other peer (or, `yielding`, with a `sched_yield` between
/// polls); exits on [`FLOOR_STOP`].
fn floor_echo(ping: &AtomicU64, pong: &AtomicU64, yielding: bool) {
    let mut answered = 0;
    loop {
        let mut backoff = rp::Backoff::new();
        let v = loop {
            let v = ping.load(Ordering::Acquire);
            if v == FLOOR_STOP || (v % 2 == 1 && v != answered) {
                break v;
            }
            snooze(&mut backoff, yielding);
        };
        if v == FLOOR_STOP {
            return;
        }
        pong.store(v + 1, Ordering::Release);
        answered = v;
    }
}

/// `n` pings, each waiting for its pong; `next` is the next odd value to
/// send.
fn floor_pings(
    ping: &AtomicU64,
    pong: &AtomicU64,
    next: &mut u64,
    n: u64,
    yielding: bool,
) -> Duration {
    watchdog(STEP_LIMIT_S);
    let start = Instant::now();
    for _ in 0..n {
        let v = *next;
        ping.store(v, Ordering::Release);
        let mut backoff = rp::Backoff::new();
        while pong.load(Ordering::Acquire) != v + 1 {
            snooze(&mut backoff, yielding);
        }
        *next += 2;
    }
    let elapsed = start.elapsed();
    watchdog(0);
    elapsed
}

/// Between two polls of the floor: the peers' back-off, or (`yielding`, the
/// floor of a blocking round trip on one CPU) one `sched_yield`, the least a
/// waiter must do to let a peer on its CPU run.
#[inline(always)]
fn snooze(backoff: &mut rp::Backoff, yielding: bool) {
    if yielding {
        thread::yield_now();
    } else {
        backoff.snooze();
    }
}

/// A cache line of its own.
#[repr(align(128))]
struct Line(AtomicU64);

struct FloorThreads {
    /// Ping and pong (the same line unless `two_lines`).
    lines: Arc<[Line; 2]>,
    two_lines: bool,
    next: u64,
    peer: Option<thread::JoinHandle<()>>,
}

impl FloorThreads {
    fn start(two_lines: bool) -> Self {
        let lines = Arc::new([Line(AtomicU64::new(0)), Line(AtomicU64::new(0))]);
        let theirs = Arc::clone(&lines);
        let peer = thread::spawn(move || {
            common::pin_slot(1);
            floor_echo(&theirs[0].0, &theirs[usize::from(two_lines)].0, false);
        });
        FloorThreads {
            lines,
            two_lines,
            next: 1,
            peer: Some(peer),
        }
    }
}

impl Running for FloorThreads {
    fn step(&mut self, n: u64) -> Duration {
        let pong = &self.lines[usize::from(self.two_lines)].0;
        floor_pings(&self.lines[0].0, pong, &mut self.next, n, false)
    }
    fn stop(mut self: Box<Self>) {
        self.lines[0].0.store(FLOOR_STOP, Ordering::Release);
        watchdog(STEP_LIMIT_S);
        self.peer
            .take()
            .expect("once")
            .join()
            .expect("floor thread");
        watchdog(0);
    }
}

/// A floor between processes: the lines are in a POSIX segment the child
/// maps too, the ping at offset 0 and (two lines) the pong at
/// [`PONG_OFFSET`].
struct FloorProcess {
    map: Mapping,
    next: u64,
    child: Option<std::process::Child>,
    floor: Floor,
}

impl FloorProcess {
    fn start(cpu: Option<usize>, floor: Floor) -> Self {
        let name = segment_name("floor");
        let shm = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, 4096)
            .expect("create the floor's segment");
        let map = shm.map().expect("map");
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("current_exe"));
        cmd.env(ROLE_ENV, floor.role())
            .env(NAMES_ENV, &name)
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        if let Some(cpu) = cpu {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        let child = cmd.spawn().expect("spawn the floor's child");
        let mut this = FloorProcess {
            map,
            next: 1,
            child: Some(child),
            floor,
        };
        let line = this.map.atomic_u64(0).expect("the line");
        let deadline = Instant::now() + Duration::from_secs(10);
        while line.load(Ordering::Acquire) != FLOOR_ATTACHED {
            assert!(
                Instant::now() < deadline,
                "the floor's child did not attach"
            );
            thread::sleep(Duration::from_micros(200));
        }
        line.store(0, Ordering::Release);
        drop(shm); // unlinks the name: the child has mapped it
        this.next = 1;
        this
    }
}

/// The ping and pong words of a floor's segment.
fn floor_lines(map: &Mapping, floor: Floor) -> (&AtomicU64, &AtomicU64) {
    let ping = map.atomic_u64(0).expect("the ping line");
    let pong = if floor == Floor::TwoLines {
        map.atomic_u64(PONG_OFFSET).expect("the pong line")
    } else {
        ping
    };
    (ping, pong)
}

impl Running for FloorProcess {
    fn step(&mut self, n: u64) -> Duration {
        let (ping, pong) = floor_lines(&self.map, self.floor);
        let yielding = self.floor == Floor::Yielding;
        floor_pings(ping, pong, &mut self.next, n, yielding)
    }
    fn stop(mut self: Box<Self>) {
        let line = self.map.atomic_u64(0).expect("the line");
        line.store(FLOOR_STOP, Ordering::Release);
        let mut child = self.child.take().expect("once");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait().expect("waitpid") {
                Some(status) => {
                    assert!(status.success(), "the floor's child failed: {status}");
                    return;
                }
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the floor's child did not exit");
                }
                None => thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

impl Drop for FloorProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn floor_child() {
    die_with_parent(PARENT_ENV);
    pin(std::env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()));
    let shm = PosixShm::open(&env(NAMES_ENV)).expect("open the floor's segment");
    let map = shm.map().expect("map");
    drop(shm);
    let role = env(ROLE_ENV);
    let floor = [Floor::Line, Floor::Yielding, Floor::TwoLines]
        .into_iter()
        .find(|f| f.role() == role)
        .expect("a floor role");
    let (ping, pong) = floor_lines(&map, floor);
    ping.store(FLOOR_ATTACHED, Ordering::Release);
    floor_echo(ping, pong, floor == Floor::Yielding);
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

struct Config {
    rounds: usize,
    quick: bool,
    out: Option<PathBuf>,
    only: Option<String>,
}

fn config() -> Config {
    let mut c = Config {
        rounds: 0,
        quick: std::env::var("SHM_GOALS_QUICK").is_ok_and(|v| v == "1"),
        out: std::env::var_os("SHM_GOALS_OUT").map(PathBuf::from),
        only: std::env::var("SHM_GOALS_ONLY").ok(),
    };
    let mut rounds = std::env::var("SHM_GOALS_ROUNDS").ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => c.quick = true,
            "--rounds" => rounds = args.next(),
            "--out" => c.out = args.next().map(PathBuf::from),
            "--only" => c.only = args.next(),
            // `cargo bench` passes `--bench`; criterion-style filters and
            // flags mean nothing here.
            _ => {}
        }
    }
    c.rounds = match rounds {
        Some(r) => r.parse().expect("--rounds / SHM_GOALS_ROUNDS: a number"),
        None if c.quick => QUICK_ROUNDS,
        None => ROUNDS,
    };
    assert!(c.rounds >= 1, "at least one round");
    c
}

/// Runs `case` once: start, warm up, one timed step of `n`, stop.
fn run_once(case: &Case, n: u64) -> Duration {
    let mut running = (case.start)();
    running.step((n / 10).max(1));
    let t = running.step(n);
    running.stop();
    t
}

/// The `n` that makes one step of `case` take about `target`.
fn calibrate(case: &Case, target: Duration) -> u64 {
    let mut running = (case.start)();
    // Cold caches, page faults, a child still settling: not the rate.
    running.step(64);
    let mut n = 64u64;
    let n = loop {
        let t = running.step(n);
        if t >= target / 4 || n >= 1 << 34 {
            let per = t.as_secs_f64() / n as f64;
            break ((target.as_secs_f64() / per.max(1e-12)) as u64).clamp(16, 1 << 36);
        }
        n *= 4;
    };
    running.stop();
    n
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    }
}

fn main() {
    if let Ok(role) = std::env::var(rp::ROLE_ENV) {
        rp::child_main(&role);
        return;
    }
    if let Ok(role) = std::env::var(mp::ROLE_ENV) {
        mp::child_main(&role);
        return;
    }
    if std::env::var(ROLE_ENV).is_ok() {
        floor_child();
        return;
    }
    let cfg = config();
    cpus(); // read the CPU list before anything is pinned
    install_watchdog();
    let _pin = PinGuard::slot(0);
    let target = if cfg.quick {
        QUICK_STEP_TARGET
    } else {
        STEP_TARGET
    };

    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|r| cfg.only.as_deref().is_none_or(|o| r.id.starts_with(o)))
        .collect();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| rows.iter().any(|r| r.ours == c.id || r.peer == c.id))
        .filter(|c| {
            // Profiling aid: only these cases (comma-separated ids); the
            // rows whose other case is left out report nothing.
            std::env::var("SHM_GOALS_CASES").map_or(true, |ids| ids.split(',').any(|id| id == c.id))
        })
        .collect();
    assert!(!cases.is_empty(), "no row matches --only");
    eprintln!(
        "goals: {} rows, {} cases, {} rounds, ~{:?} per step, CPUs {:?}",
        rows.len(),
        cases.len(),
        cfg.rounds,
        target,
        cpus()
    );

    let started = Instant::now();
    let ns: Vec<u64> = cases
        .iter()
        .map(|c| {
            let n = calibrate(c, target);
            eprintln!("  calibrated {:<22} n = {n}", c.id);
            n
        })
        .collect();
    // times[case][round]: ns per item.
    let mut times = vec![Vec::with_capacity(cfg.rounds); cases.len()];
    for round in 0..cfg.rounds {
        eprint!("  round {}/{}:", round + 1, cfg.rounds);
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let t = run_once(&cases[i], ns[i]);
            times[i].push(t.as_secs_f64() * 1e9 / ns[i] as f64);
            eprint!(".");
            let _ = std::io::stderr().flush();
        }
        eprintln!();
    }
    let index = |id: &str| cases.iter().position(|c| c.id == id);

    let mut json_cases = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut v = times[i].clone();
        json_cases.push(json!({
            "id": c.id,
            "what": c.what,
            "n": ns[i],
            "ns_per_item": times[i],
            "median_ns": median(&mut v),
        }));
    }
    let mut json_rows = Vec::new();
    println!();
    println!(
        "| scenario | ours | peer | ours/item | peer/item | ratio (median, min–max) | goal | |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (Some(o), Some(p)) = (index(r.ours), index(r.peer)) else {
            continue; // a case left out by SHM_GOALS_CASES
        };
        // Case `c` against the peer, round by round, in the goal's form.
        let ratios_of = |c: usize| -> Vec<f64> {
            times[c]
                .iter()
                .zip(&times[p])
                .map(|(&ours, &peer)| {
                    if r.goal.is_time() {
                        ours / peer
                    } else {
                        peer / ours
                    }
                })
                .collect()
        };
        let mut ratios = ratios_of(o);
        let (mut ov, mut pv) = (times[o].clone(), times[p].clone());
        let (ours_ns, peer_ns) = (median(&mut ov), median(&mut pv));
        let med = median(&mut ratios);
        let (min, max) = (ratios[0], ratios[ratios.len() - 1]);
        let meets = |ratio: f64| match r.goal {
            Goal::AtLeast(g) => Some(ratio >= g),
            Goal::AtMost(g) => Some(ratio <= g),
            Goal::ReportSpeed | Goal::ReportTime => None,
        };
        let kind = if r.goal.is_time() { "time" } else { "speed" };
        let goal_value = match r.goal {
            Goal::AtLeast(g) | Goal::AtMost(g) => Some(g),
            Goal::ReportSpeed | Goal::ReportTime => None,
        };
        let met = meets(med);
        // The floor in our place, against the same peer, in the same rounds.
        let floor = r.floor.and_then(index).map(|f| median(&mut ratios_of(f)));
        let verdict = match (met, floor) {
            (Some(true), _) => "met".to_string(),
            (Some(false), Some(f)) if meets(f) == Some(false) => {
                format!("missed, beyond the floor ({f:.2}×)")
            }
            (Some(false), _) => "missed".to_string(),
            (None, _) => "—".to_string(),
        };
        println!(
            "| {} | `{}` | {} | {:.1} ns | {:.1} ns | {med:.2}× ({min:.2}–{max:.2}) | {} | {verdict} |",
            r.scenario, r.ours, r.peer_name, ours_ns, peer_ns, r.goal_text
        );
        json_rows.push(json!({
            "id": r.id,
            "scenario": r.scenario,
            "ours": r.ours,
            "peer": r.peer,
            "peer_name": r.peer_name,
            "ours_ns": ours_ns,
            "peer_ns": peer_ns,
            "ratio_kind": kind,
            "ratio_median": med,
            "ratio_min": min,
            "ratio_max": max,
            "ratios": ratios,
            "goal": r.goal_text,
            "goal_value": goal_value,
            "met": met,
            "floor": r.floor,
            "floor_ratio_median": floor,
            "floor_met": floor.and_then(meets),
        }));
    }
    eprintln!("goals: done in {:.0?}", started.elapsed());

    if let Some(out) = cfg.out {
        let doc = json!({
            "version": 1,
            "harness": "benches/goals.rs",
            "quick": cfg.quick,
            "rounds": cfg.rounds,
            "step_target_ms": target.as_millis() as u64,
            "cpus": cpus(),
            "cases": json_cases,
            "rows": json_rows,
        });
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).expect("create the output's folder");
        }
        let text = serde_json::to_string_pretty(&doc).expect("JSON");
        std::fs::write(&out, text + "\n")
            .unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
        eprintln!("goals: wrote {}", out.display());
    }
}
