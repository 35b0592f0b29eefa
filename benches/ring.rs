//! Rings against their peers, in one run (results in `docs/benchmarks.md`).
//!
//! Every group puts our ring and its peers side by side, so the ratios are
//! direct. One iteration moves one `u64` (throughput groups report
//! `Throughput::Elements`) or makes one round trip (round-trip groups).
//!
//! - `spsc_threads`: SPSC throughput between two threads pinned to two
//!   cores: single `push`/`pop` against rtrb's, and batches of 32
//!   (`push_slice`/`pop_into`) against rtrb's `write_chunk_uninit`/`read_chunk`.
//! - `spsc_processes`: SPSC throughput, one message at a time, to a child
//!   process through a POSIX segment, against the same ring between two
//!   threads, a pipe and a Unix stream socket (one 8-byte `write(2)` and
//!   `read(2)` per message); and the same with our batches of 32.
//! - `round_trip`: busy-polling ping-pong with a child process over two of
//!   our rings, against rtrb's round trip between two threads (and ours
//!   between threads, for reference), iceoryx2 publish-subscribe with a child
//!   process, a pipe pair and a Unix stream socket.
//! - `mpmc`: MPMC throughput with P producer and C consumer threads (1x1 and
//!   2x2; 4x4 and 8x8 too on machines with at least 16 cores), single and
//!   batches of 32, against crossbeam's `ArrayQueue` (single only: it has no
//!   bulk operations) and `std::sync::mpsc::sync_channel` (P producers, one
//!   consumer, for reference).
//! - `blocking_round_trip`: ping-pong with a child process over rings created
//!   with `RingOptions::blocking(true)` using `push_blocking`/`pop_blocking`,
//!   against a pipe pair (blocking `read`/`write`), with the two processes on
//!   two cores and on one core (where every wait must sleep).
//!
//! ```text
//! cargo bench -p shm-benches --bench ring                 # defaults: 1 s warm-up, 3 s, 20 samples
//! cargo bench -p shm-benches --bench ring -- round_trip   # one group
//! ```
//!
//! Placement: with two or more CPUs, this side runs on the first CPU this
//! process may use and the peer (thread or child) on the second; MPMC
//! producer `i` goes to CPU `2i` and consumer `i` to CPU `2i + 1` (modulo the
//! CPU count, so on two cores the producers share one and the consumers the
//! other). Every busy-polling loop, ours and the peers', backs off the same
//! way ([`Backoff`]: 64 spins, then `sched_yield`, then 50 µs sleeps), and
//! the message-at-a-time wrappers are forced inline for every peer alike.
//!
//! A child is this bench binary run again with `SHM_RING_BENCH_ROLE` set,
//! spawned when its benchmark starts and stopped after its last sample (not
//! per iteration or per sample). It dies with its parent
//! (`PR_SET_PDEATHSIG`), and the parent arms `alarm(2)` around every step, so
//! a hung peer ends the run with a message instead of hanging it. Segment
//! names are unlinked as soon as the child has attached, so nothing is left
//! in `/dev/shm` even when a run is killed. iceoryx2 runs in a private domain
//! (its own file prefix and root directory) that is removed at the end; what
//! a killed run's domain left behind is removed by the next run.

use std::thread;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use shm::ring::{RingOptions, SpscRing};

mod common;
use common::ring_peers::*;
use common::{cpu_for, cpus, install_watchdog, PinGuard};

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// One benchmark over a [`Link`] that is started when (and only if) the
/// benchmark runs, once, and stopped after its last sample.
fn bench_link<L: Link>(
    g: &mut Group<'_>,
    id: BenchmarkId,
    start: impl FnOnce() -> L,
    step: fn(&mut L::Tx, &mut L::Rx, u64) -> Duration,
) {
    let mut start = Some(start);
    let mut link: Option<L> = None;
    g.bench_function(id, |b| {
        let l = link.get_or_insert_with(|| (start.take().expect("started once"))());
        let (tx, rx) = l.ends();
        b.iter_custom(|n| step(tx, rx, n));
    });
    if let Some(l) = link {
        l.stop();
    }
}

fn bench_spsc_threads(c: &mut Criterion) {
    let _pin = PinGuard::slot(0);
    let mut g = c.benchmark_group("spsc_threads");
    g.throughput(Throughput::Elements(1));

    g.bench_function("ours_single", |b| {
        b.iter_custom(|n| {
            let ends = SpscRing::<u64, _>::new_heap(CAPACITY).expect("ring");
            two_threads(n, ends, send_all, recv_all)
        })
    });
    g.bench_function("rtrb_single", |b| {
        b.iter_custom(|n| {
            let ends = rtrb::RingBuffer::<u64>::new(CAPACITY);
            two_threads(n, ends, send_all, recv_all)
        })
    });
    g.bench_function("ours_batch32", |b| {
        b.iter_custom(|n| {
            let ends = SpscRing::<u64, _>::new_heap(CAPACITY).expect("ring");
            two_threads(
                n,
                ends,
                |tx, n| push_batches(n, |v| tx.push_slice(v)),
                |mut rx, n| pop_batches(n, |out| rx.pop_into(out)),
            )
        })
    });
    g.bench_function("rtrb_batch32", |b| {
        b.iter_custom(|n| {
            let ends = rtrb::RingBuffer::<u64>::new(CAPACITY);
            two_threads(
                n,
                ends,
                |p, n| push_batches(n, |v| rtrb_push_chunk(p, v)),
                |mut c, n| pop_batches(n, |out| rtrb_pop_chunk(&mut c, out)),
            )
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------
// b. SPSC across processes
// ---------------------------------------------------------------------------

fn bench_spsc_processes(c: &mut Criterion) {
    let _pin = PinGuard::slot(0);
    let mut g = c.benchmark_group("spsc_processes");
    g.throughput(Throughput::Elements(1));
    let peer = cpu_for(1);
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("ours_process"),
        || RingProcess::start("ring-sink", RingOptions::new(), peer),
        send_batch,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("ours_threads"),
        sink_thread_link,
        send_batch,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("ours_process_batch32"),
        || RingProcess::start("ring-sink-bulk", RingOptions::new(), peer),
        send_batch_bulk,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("ours_threads_batch32"),
        bulk_sink_thread_link,
        send_batch_bulk,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("pipe_process"),
        || PipeProcess::start("fd-sink", peer),
        send_batch,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("unix_stream_process"),
        || SocketProcess::start("fd-sink", peer),
        send_batch,
    );
    g.finish();
}

// ---------------------------------------------------------------------------
// c. Busy-polling round trips
// ---------------------------------------------------------------------------

fn bench_round_trip(c: &mut Criterion) {
    let _pin = PinGuard::slot(0);
    let mut g = c.benchmark_group("round_trip");
    let peer = cpu_for(1);
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("ours_process"),
        || RingProcess::start("ring-echo", RingOptions::new(), peer),
        round_trips,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("ours_threads"),
        ours_echo_thread_link,
        round_trips,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("rtrb_threads"),
        rtrb_echo_thread_link,
        round_trips,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("iceoryx2_process"),
        || IoxProcess::start(peer),
        round_trips,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("pipe_process"),
        || PipeProcess::start("fd-echo", peer),
        round_trips,
    );
    bench_link(
        &mut g,
        BenchmarkId::from_parameter("unix_stream_process"),
        || SocketProcess::start("fd-echo", peer),
        round_trips,
    );
    g.finish();
}

fn bench_mpmc(c: &mut Criterion) {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let mut shapes = vec![(1, 1), (2, 2)];
    if cores >= 16 {
        shapes.extend([(4, 4), (8, 8)]);
    }
    let mut g = c.benchmark_group("mpmc");
    g.throughput(Throughput::Elements(1));
    for (p, k) in shapes {
        let shape = format!("{p}x{k}");
        for (name, peer) in [
            ("ours_single", MpmcPeer::OursSingle),
            ("ours_batch32", MpmcPeer::OursBatch),
            ("crossbeam_single", MpmcPeer::Crossbeam),
        ] {
            g.bench_function(BenchmarkId::new(name, &shape), |b| {
                b.iter_custom(|n| mpmc_step(peer, n, p, k))
            });
        }
        // One consumer only: std's channel is MPSC.
        g.bench_function(
            BenchmarkId::new("std_sync_channel", format!("{p}x1")),
            |b| b.iter_custom(|n| mpmc_step(MpmcPeer::StdSyncChannel, n, p, 1)),
        );
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// e. Blocking round trips
// ---------------------------------------------------------------------------

fn bench_blocking_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("blocking_round_trip");
    // Two cores: the peer's wait may end in its short spin; one core: every
    // wait has to sleep and be woken.
    for (placement, peer_slot) in [("two_cores", 1), ("one_core", 0)] {
        let _pin = PinGuard::slot(0);
        let peer = cpu_for(peer_slot);
        bench_link(
            &mut g,
            BenchmarkId::new("ours_process", placement),
            || {
                let opts = RingOptions::new().blocking(true);
                RingProcess::start("ring-echo-blocking", opts, peer)
            },
            |tx, rx, n| round_trips(&mut BlockingTx(tx), &mut BlockingRx(rx), n),
        );
        bench_link(
            &mut g,
            BenchmarkId::new("pipe_process", placement),
            || PipeProcess::start("fd-echo", peer),
            round_trips,
        );
    }
    g.finish();
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child_main(&role);
        return;
    }
    cpus(); // read the CPU list before anything is pinned
    install_watchdog();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    bench_spsc_threads(&mut c);
    bench_spsc_processes(&mut c);
    bench_round_trip(&mut c);
    bench_mpmc(&mut c);
    bench_blocking_round_trip(&mut c);
    c.final_summary();
}
