//! Interleaved throughput comparison of the MPMC ring and crossbeam's
//! `ArrayQueue`, exactly as the goals harness's `mpmc_*` rows measure them
//! (`benches/common/ring_peers.rs`, `mpmc_step`, which this calls): `P`
//! producers and `C` consumers on their own threads, pinned alternately to
//! the CPUs the process may use, a fresh queue of 4096 `u64`s per sample.
//! Each round runs every variant once, in turn; the medians over rounds and
//! the per-round ratios are printed. `KINDS=ours,aq,batch` picks variants.
//! With `cg`, single-threaded loops for `valgrind --tool=callgrind`, which
//! counts instructions per push+pop pair reproducibly.
//!
//! ```text
//! cargo bench -p shm-benches --bench mpmcperf -- [PxC,...] [items] [rounds]
//! valgrind --tool=callgrind target/release/deps/mpmcperf-* cg mpmc|aq|batch32 [items]
//! ```

mod common;

use common::ring_peers::{self as rp, MpmcPeer};
use crossbeam_queue::ArrayQueue;
use shm::ring::MpmcRing;

const CAPACITY: usize = rp::CAPACITY;
const BATCH: usize = rp::BATCH;

/// The variants, in the order of the printed columns.
const KINDS: [(&str, MpmcPeer); 3] = [
    ("ours", MpmcPeer::OursSingle),
    ("aq", MpmcPeer::Crossbeam),
    ("batch", MpmcPeer::OursBatch),
];

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Single-threaded loops for `valgrind --tool=callgrind`.
fn callgrind(mode: &str, n: u64) {
    let mut sum = 0u64;
    match mode {
        "mpmc" => {
            let ring = MpmcRing::<u64>::new_heap(CAPACITY).unwrap();
            for i in 0..n {
                ring.push(std::hint::black_box(i)).unwrap();
                sum = sum.wrapping_add(ring.pop().unwrap());
            }
        }
        "aq" => {
            let queue = ArrayQueue::<u64>::new(CAPACITY);
            for i in 0..n {
                queue.push(std::hint::black_box(i)).unwrap();
                sum = sum.wrapping_add(queue.pop().unwrap());
            }
        }
        "batch32" => {
            let ring = MpmcRing::<u64>::new_heap(CAPACITY).unwrap();
            let mut buf = [0u64; BATCH];
            let mut out = [0u64; BATCH];
            for i in 0..n / BATCH as u64 {
                buf[0] = i;
                assert_eq!(ring.push_slice(std::hint::black_box(&buf)), BATCH);
                assert_eq!(ring.pop_into(std::hint::black_box(&mut out)), BATCH);
                sum = sum.wrapping_add(out[0]);
            }
        }
        other => panic!("unknown mode {other}"),
    }
    println!("{mode}: {n} items, checksum {sum}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("cg") {
        let mode = args.get(1).map_or("mpmc", String::as_str);
        let n = args.get(2).map_or(100_000, |s| s.parse().expect("items"));
        return callgrind(mode, n);
    }
    common::install_watchdog();
    let configs: Vec<(usize, usize)> = args
        .first()
        .map_or("1x1,2x2,4x4", String::as_str)
        .split(',')
        .map(|pc| {
            let (p, c) = pc.split_once('x').expect("PxC");
            (p.parse().expect("P"), c.parse().expect("C"))
        })
        .collect();
    let n: u64 = args.get(1).map_or(2_000_000, |s| s.parse().expect("items"));
    let rounds: usize = args.get(2).map_or(9, |s| s.parse().expect("rounds"));
    let only = std::env::var("KINDS").unwrap_or_default();
    let skip = |name: &str| !only.is_empty() && !only.contains(name);
    for &(p, c) in &configs {
        let mut ns = vec![Vec::new(); KINDS.len()];
        let mut ratios = Vec::new();
        let mut bratios = Vec::new();
        for r in 0..rounds {
            let mut t = [f64::NAN; KINDS.len()];
            for k in 0..KINDS.len() {
                let k = (k + r) % KINDS.len();
                let (name, peer) = KINDS[k];
                if skip(name) {
                    continue;
                }
                t[k] = rp::mpmc_step(peer, n, p, c).as_nanos() as f64 / n as f64;
                ns[k].push(t[k]);
            }
            ratios.push(t[1] / t[0]);
            bratios.push(t[1] / t[2]);
        }
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{p}x{c}: ours {:.1} ns, aq {:.1} ns, batch32 {:.1} ns/item; aq/ours median {:.2} ({:.2}-{:.2}), aq/batch32 median {:.2}",
            median(&mut ns[0]),
            median(&mut ns[1]),
            median(&mut ns[2]),
            median(&mut ratios),
            sorted[0],
            sorted[sorted.len() - 1],
            median(&mut bratios),
        );
    }
}
