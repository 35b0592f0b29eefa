//! The block pool and the channel against their peers, in one run (results
//! in `docs/benchmarks.md`, section "Mempool and channel").
//!
//! - `alloc_free_64`: one thread takes a 64-byte block and gives it back
//!   (`MemPool::get` + drop) against `Box::new([0u8; 64])` + drop (the
//!   process allocator). One iteration is one pair. `mempool_get_put` is
//!   the default (FIFO) pool, `mempool_get_put_lifo` one made with
//!   `FreeOrder::Lifo`.
//! - `alloc_free_64_2_threads`: the same on two threads at once, sharing one
//!   pool (both hit the same free-list head) against two threads boxing and
//!   freeing (each through its own allocator cache). One iteration is one
//!   pair on each thread; the time is wall time.
//! - `message_4KiB_process`, `message_64KiB_process`: a stream of messages
//!   to a child process that checks each one (sequence number and checksum
//!   at both ends of the message) and drops it. Every sender starts from the
//!   same bytes in a local buffer and writes them once: ours into a block of
//!   a `Channel` in a POSIX segment (then sends the 4-byte id); a pipe with
//!   `write_all` (the child `read_exact`s into its buffer); iceoryx2 into a
//!   loaned sample of a publish-subscribe service of `[u8; N]` (the child
//!   reads the received sample in place). A batch ends with an
//!   acknowledgement from the child, inside the measured time. One iteration
//!   is one message (`Throughput::Bytes`).
//!
//! ```text
//! cargo bench -p shm-benches --bench mempool
//! cargo bench -p shm-benches --bench mempool -- message_4KiB   # one group
//! ```
//!
//! A child is this bench binary run again with `SHM_MEMPOOL_BENCH_ROLE`
//! set, spawned once per benchmark and stopped after its last sample. It
//! dies with its parent (`PR_SET_PDEATHSIG`), exits if it was re-parented
//! before that was armed, and gives up after a minute without a message;
//! the parent arms `alarm(2)` around every measured step and every wait has
//! a deadline, so a hung peer ends the run with a message instead of hanging
//! it. The segment's name is unlinked as soon as the child has attached, so
//! nothing is left in `/dev/shm` even when a run is killed. iceoryx2 runs in
//! a private domain (its own file prefix and root directory) removed at the
//! end; what a killed run left is removed by the next run.
//!
//! Placement: with two or more CPUs, this side runs on the first CPU this
//! process may use and the child (or the second thread) on the second.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use shm::mempool::{FreeOrder, MemPool, PoolOptions};
use shm::segment::AnonShared;

mod common;
use common::msg_peers::*;
use common::{cpu_for, cpus, install_watchdog, pin, watchdog};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

// ---------------------------------------------------------------------------
// a. Allocation, one thread and two
// ---------------------------------------------------------------------------

fn bench_alloc(c: &mut Criterion) {
    pin(cpu_for(0));
    let region = AnonShared::new(MemPool::required_size(1024, 64)).expect("anonymous region");
    let pool = MemPool::create(&region, 1024, 64).expect("pool");

    let mut g = c.benchmark_group("alloc_free_64");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mempool_get_put", |b| {
        b.iter(|| {
            let block = pool.get().expect("a free block");
            black_box(&block);
        })
    });
    let lifo_region = AnonShared::new(MemPool::required_size(1024, 64)).expect("anonymous region");
    let lifo = MemPool::create_with(
        &lifo_region,
        1024,
        64,
        PoolOptions::new().order(FreeOrder::Lifo),
    )
    .expect("pool");
    g.bench_function("mempool_get_put_lifo", |b| {
        b.iter(|| {
            let block = lifo.get().expect("a free block");
            black_box(&block);
        })
    });
    g.bench_function("box_64", |b| {
        b.iter(|| {
            let boxed = Box::new([0u8; 64]);
            black_box(&boxed);
        })
    });
    g.finish();
    assert_eq!(lifo.check().expect("check"), 1024, "the pool lost blocks");

    let mut g = c.benchmark_group("alloc_free_64_2_threads");
    g.throughput(Throughput::Elements(2));
    g.bench_function("mempool_get_put", |b| {
        b.iter_custom(|n| {
            two_threads(n, || {
                let block = pool.get().expect("a free block");
                black_box(&block);
            })
        })
    });
    g.bench_function("box_64", |b| {
        b.iter_custom(|n| {
            two_threads(n, || {
                let boxed = Box::new([0u8; 64]);
                black_box(&boxed);
            })
        })
    });
    g.finish();
    assert_eq!(pool.check().expect("check"), 1024, "the pool lost blocks");
}

/// Runs `op` `n` times on each of two threads (pinned to the two CPUs),
/// started together; returns the wall time until both are done.
fn two_threads(n: u64, op: impl Fn() + Sync) -> Duration {
    watchdog(STEP_LIMIT_S);
    let barrier = Barrier::new(3);
    let elapsed = thread::scope(|s| {
        for k in 0..2 {
            let (barrier, op) = (&barrier, &op);
            s.spawn(move || {
                pin(cpu_for(k));
                barrier.wait();
                for _ in 0..n {
                    op();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    watchdog(0);
    elapsed
}

fn bench_link<L: Link>(g: &mut Group<'_>, name: &str, size: usize, start: impl FnOnce() -> L) {
    let mut start = Some(start);
    let mut link: Option<L> = None;
    let mut msg = vec![0xA5u8; size];
    let mut id = 0;
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        let l = link.get_or_insert_with(|| (start.take().expect("started once"))());
        b.iter_custom(|n| {
            id += 1;
            batch(l, &mut msg, id, n)
        });
    });
    if let Some(l) = link {
        l.stop();
    }
}

// ---------------------------------------------------------------------------

fn bench_messages(c: &mut Criterion) {
    pin(cpu_for(0));
    for (label, size) in [
        ("message_4KiB_process", 4096),
        ("message_64KiB_process", 65536),
    ] {
        let mut g = c.benchmark_group(label);
        g.throughput(Throughput::Bytes(size as u64));
        bench_link(&mut g, "mempool_channel", size, || ChannelLink::start(size));
        bench_link(&mut g, "pipe", size, || PipeLink::start(size));
        if size == 4096 {
            bench_link(&mut g, "iceoryx2", size, IoxLink::<4096>::start);
        } else {
            bench_link(&mut g, "iceoryx2", size, IoxLink::<65536>::start);
        }
        g.finish();
    }
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
    bench_alloc(&mut c);
    bench_messages(&mut c);
    c.final_summary();
}
