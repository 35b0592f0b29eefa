//! Interleaved throughput comparison of the MPMC ring and crossbeam's
//! `ArrayQueue`, shaped like the goals harness's `mpmc_*` rows
//! (`benches/common/ring_peers.rs`, `mpmc_step`): `P` producers and `C`
//! consumers on their own threads, pinned alternately to the CPUs the
//! process may use, a fresh queue of 4096 `u64`s per sample, every failed
//! push or pop followed by `Backoff::snooze`. Each round runs every variant
//! once, in turn; the medians over rounds and the per-round ratios are
//! printed. `KINDS=ours,aq,batch` picks variants; `SNOOZES=1` prints
//! every sample with how often producers and consumers backed off (which
//! side waited: near-empty or near-full ring).
//!
//! ```text
//! cargo bench -p shm-benches --bench mpmcperf -- [PxC,...] [items] [rounds]
//! valgrind --tool=callgrind target/release/deps/mpmcperf-* cg mpmc|aq|batch32 [items]
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use shm::ring::{MpmcRing, PushError};

const CAPACITY: usize = 4096;
const BATCH: usize = 32;

/// The goals harness's back-off (`benches/common/ring_peers.rs`): spin, then
/// yield, then sleep.
static SNOOZES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PSNOOZES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
std::thread_local! { static PRODUCER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }

struct Backoff(std::cell::Cell<u32>);

impl Backoff {
    fn new() -> Self {
        Backoff(std::cell::Cell::new(0))
    }
    fn reset(&self) {
        self.0.set(0);
    }
    fn snooze(&self) {
        if PRODUCER.with(|p| p.get()) {
            PSNOOZES.fetch_add(1, Ordering::Relaxed);
        } else {
            SNOOZES.fetch_add(1, Ordering::Relaxed);
        }
        let r = self.0.get();
        if r < 64 {
            std::hint::spin_loop();
        } else if r < 10_000 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(50));
        }
        self.0.set(r.saturating_add(1));
    }
}

fn cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is a valid buffer of its size.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: every index is below CPU_SETSIZE, the size of the set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` came from sched_getaffinity, below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid set of its size.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ours,
    Batch,
    Aq,
}

type Job = Box<dyn FnOnce() -> u64 + Send>;

fn run(kind: Kind, n: u64, p: usize, c: usize, cpus: &[usize]) -> f64 {
    let split = |k: usize| -> Vec<u64> {
        (0..k as u64)
            .map(|i| n / k as u64 + u64::from(i < n % k as u64))
            .collect()
    };
    let (pq, cq) = (split(p), split(c));
    let mut jobs: Vec<(usize, Job)> = Vec::new();
    let ring = MpmcRing::<u64>::new_heap(CAPACITY).unwrap();
    let queue = Arc::new(ArrayQueue::<u64>::new(CAPACITY));
    let mut start = 0;
    for (i, &q) in pq.iter().enumerate() {
        let (ring, queue) = (ring.clone(), Arc::clone(&queue));
        let s = start;
        start += q;
        let job: Job = match kind {
            Kind::Ours => Box::new(move || {
                for v in s..s + q {
                    let mut v = v;
                    let backoff = Backoff::new();
                    while let Err(PushError::Full(back)) = ring.push(v) {
                        v = back;
                        backoff.snooze();
                    }
                }
                0
            }),
            Kind::Aq => Box::new(move || {
                for v in s..s + q {
                    let mut v = v;
                    let backoff = Backoff::new();
                    while let Err(back) = queue.push(v) {
                        v = back;
                        backoff.snooze();
                    }
                }
                0
            }),
            Kind::Batch => Box::new(move || {
                let mut buf = [0u64; BATCH];
                let mut next = s;
                let backoff = Backoff::new();
                while next < s + q {
                    let k = (s + q - next).min(BATCH as u64) as usize;
                    for (j, x) in buf[..k].iter_mut().enumerate() {
                        *x = next + j as u64;
                    }
                    let mut off = 0;
                    while off < k {
                        let pushed = ring.push_slice(&buf[off..k]);
                        if pushed == 0 {
                            backoff.snooze();
                        } else {
                            backoff.reset();
                        }
                        off += pushed;
                    }
                    next += k as u64;
                }
                0
            }),
        };
        jobs.push((
            2 * i,
            Box::new(move || {
                PRODUCER.with(|p| p.set(true));
                job()
            }),
        ));
    }
    for (i, &q) in cq.iter().enumerate() {
        let (ring, queue) = (ring.clone(), Arc::clone(&queue));
        let job: Job = match kind {
            Kind::Ours => Box::new(move || {
                let mut sum = 0u64;
                for _ in 0..q {
                    let backoff = Backoff::new();
                    loop {
                        if let Ok(v) = ring.pop() {
                            sum = sum.wrapping_add(v);
                            break;
                        }
                        backoff.snooze();
                    }
                }
                sum
            }),
            Kind::Aq => Box::new(move || {
                let mut sum = 0u64;
                for _ in 0..q {
                    let backoff = Backoff::new();
                    loop {
                        if let Some(v) = queue.pop() {
                            sum = sum.wrapping_add(v);
                            break;
                        }
                        backoff.snooze();
                    }
                }
                sum
            }),
            Kind::Batch => Box::new(move || {
                let mut buf = [0u64; BATCH];
                let mut left = q;
                let mut sum = 0u64;
                let backoff = Backoff::new();
                while left > 0 {
                    let want = left.min(BATCH as u64) as usize;
                    let got = ring.pop_into(&mut buf[..want]);
                    if got == 0 {
                        backoff.snooze();
                        continue;
                    }
                    backoff.reset();
                    sum = buf[..got].iter().fold(sum, |a, &v| a.wrapping_add(v));
                    left -= got as u64;
                }
                sum
            }),
        };
        jobs.push((2 * i + 1, job));
    }
    drop((ring, queue));
    let total = jobs.len();
    let ready = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(slot, job)| {
            let (ready, go) = (Arc::clone(&ready), Arc::clone(&go));
            let cpu = (!cpus.is_empty()).then(|| cpus[slot % cpus.len()]);
            thread::spawn(move || {
                pin(cpu);
                ready.fetch_add(1, Ordering::AcqRel);
                while !go.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                job()
            })
        })
        .collect();
    while ready.load(Ordering::Acquire) < total {
        thread::sleep(Duration::from_micros(50));
    }
    let t0 = Instant::now();
    go.store(true, Ordering::Release);
    let sum = handles
        .into_iter()
        .fold(0u64, |a, h| a.wrapping_add(h.join().unwrap()));
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(sum, (0..n).fold(0u64, |a, v| a.wrapping_add(v)), "checksum");
    ns
}

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
    let cpus = cpus();
    for &(p, c) in &configs {
        let only = std::env::var("KINDS").unwrap_or_default();
        let kinds = [Kind::Ours, Kind::Aq, Kind::Batch];
        let skip = |k: Kind| !only.is_empty() && !only.contains(&format!("{k:?}").to_lowercase());
        let mut ns = vec![Vec::new(); kinds.len()];
        let mut ratios = Vec::new();
        let mut bratios = Vec::new();
        for r in 0..rounds {
            let mut t = [0.0; 3];
            for k in 0..kinds.len() {
                let k = (k + r) % kinds.len();
                if skip(kinds[k]) {
                    t[k] = f64::NAN;
                    continue;
                }
                SNOOZES.store(0, Ordering::Relaxed);
                PSNOOZES.store(0, Ordering::Relaxed);
                t[k] = run(kinds[k], n, p, c, &cpus);
                if std::env::var_os("SNOOZES").is_some() {
                    println!(
                        "{:?} {p}x{c}: {:.1} ns, snoozes: producers {}, consumers {}",
                        kinds[k],
                        t[k],
                        PSNOOZES.load(Ordering::Relaxed),
                        SNOOZES.load(Ordering::Relaxed)
                    );
                }
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
