//! Interleaved throughput comparison of the SPSC ring over different regions
//! (the heap, a POSIX segment) and of rtrb, in one process, so that a noisy shared
//! machine hits every variant alike: each round runs every variant once, in
//! turn, and the medians over rounds are printed.
//!
//! Shaped like `benches/ring.rs`'s `spsc_threads` group: the calling thread
//! is pinned to the first CPU it may use and produces, a fresh consumer
//! thread pinned to the second consumes, on a fresh ring of 4096 `u64`s per
//! sample; both sides busy-poll with the same spin-then-yield back-off.
//!
//! ```text
//! cargo run --release -p shm-ring --example ringperf -- [items] [rounds] [nopin]
//! cargo run --release -p shm-ring --example ringperf -- rt1|rt2 [round trips] [rounds]
//! valgrind --tool=callgrind target/release/examples/ringperf cg batch32 320000
//! ```

use std::hint::spin_loop;
use std::thread;
use std::time::{Duration, Instant};

use shm_ring::{Consumer, Producer, PushError, SpscRing};

const CAPACITY: usize = 4096;
const BATCH: usize = 32;

fn snooze(round: &mut u32) {
    if *round < 64 {
        spin_loop();
    } else {
        thread::yield_now();
    }
    *round = round.saturating_add(1);
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

/// One end that pushes, for ours and rtrb alike.
trait Tx: Send + 'static {
    fn try_push(&mut self, v: u64) -> Result<(), u64>;
    fn push_some(&mut self, v: &[u64]) -> usize;
}
/// One end that pops, for ours and rtrb alike.
trait Rx: Send + 'static {
    fn try_pop(&mut self) -> Option<u64>;
    fn pop_some(&mut self, out: &mut [u64]) -> usize;
}

impl<R: Send + Sync + 'static> Tx for Producer<u64, R> {
    #[inline(always)]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.push(v).map_err(|e| match e {
            PushError::Full(v) => v,
            _ => unreachable!(),
        })
    }
    #[inline(always)]
    fn push_some(&mut self, v: &[u64]) -> usize {
        self.push_slice(v)
    }
}
impl<R: Send + Sync + 'static> Rx for Consumer<u64, R> {
    #[inline(always)]
    fn try_pop(&mut self) -> Option<u64> {
        self.pop().ok()
    }
    #[inline(always)]
    fn pop_some(&mut self, out: &mut [u64]) -> usize {
        self.pop_into(out)
    }
}
impl Tx for rtrb::Producer<u64> {
    #[inline(always)]
    fn try_push(&mut self, v: u64) -> Result<(), u64> {
        self.push(v).map_err(|rtrb::PushError::Full(v)| v)
    }
    #[inline(always)]
    fn push_some(&mut self, values: &[u64]) -> usize {
        let n = match self.write_chunk_uninit(values.len()) {
            Ok(chunk) => return chunk.fill_from_iter(values.iter().copied()),
            Err(rtrb::chunks::ChunkError::TooFewSlots(free)) => free,
        };
        if n == 0 {
            return 0;
        }
        let chunk = self.write_chunk_uninit(n).expect("slots reported free");
        chunk.fill_from_iter(values[..n].iter().copied())
    }
}
impl Rx for rtrb::Consumer<u64> {
    #[inline(always)]
    fn try_pop(&mut self) -> Option<u64> {
        self.pop().ok()
    }
    #[inline(always)]
    fn pop_some(&mut self, out: &mut [u64]) -> usize {
        let chunk = match self.read_chunk(out.len()) {
            Ok(chunk) => chunk,
            Err(rtrb::chunks::ChunkError::TooFewSlots(0)) => return 0,
            Err(rtrb::chunks::ChunkError::TooFewSlots(ready)) => {
                self.read_chunk(ready).expect("items reported ready")
            }
        };
        let (a, b) = chunk.as_slices();
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        let n = chunk.len();
        chunk.commit_all();
        n
    }
}

fn single((mut tx, mut rx): (impl Tx, impl Rx), n: u64, cpu: Option<usize>) -> Duration {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let consumer = thread::spawn(move || {
        pin(cpu);
        ready_tx.send(()).unwrap();
        let mut sum = 0u64;
        for _ in 0..n {
            let mut round = 0;
            loop {
                if let Some(v) = rx.try_pop() {
                    sum = sum.wrapping_add(v);
                    break;
                }
                snooze(&mut round);
            }
        }
        sum
    });
    ready_rx.recv().unwrap();
    let start = Instant::now();
    for i in 0..n {
        let mut v = i;
        let mut round = 0;
        while let Err(back) = tx.try_push(v) {
            v = back;
            snooze(&mut round);
        }
    }
    let sum = consumer.join().unwrap();
    let t = start.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    t
}

fn batch((mut tx, mut rx): (impl Tx, impl Rx), n: u64, cpu: Option<usize>) -> Duration {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let consumer = thread::spawn(move || {
        pin(cpu);
        ready_tx.send(()).unwrap();
        let mut buf = [0u64; BATCH];
        let mut left = n;
        let mut sum = 0u64;
        let mut round = 0;
        while left > 0 {
            let want = left.min(BATCH as u64) as usize;
            let got = rx.pop_some(&mut buf[..want]);
            if got == 0 {
                snooze(&mut round);
                continue;
            }
            round = 0;
            for v in &buf[..got] {
                sum = sum.wrapping_add(*v);
            }
            left -= got as u64;
        }
        sum
    });
    ready_rx.recv().unwrap();
    let start = Instant::now();
    let mut buf = [0u64; BATCH];
    let mut next = 0u64;
    let mut round = 0;
    while next < n {
        let k = (n - next).min(BATCH as u64) as usize;
        for (j, slot) in buf[..k].iter_mut().enumerate() {
            *slot = next + j as u64;
        }
        let mut off = 0;
        while off < k {
            let pushed = tx.push_some(&buf[off..k]);
            if pushed == 0 {
                snooze(&mut round);
            } else {
                round = 0;
            }
            off += pushed;
        }
        next += k as u64;
    }
    let sum = consumer.join().unwrap();
    let t = start.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    t
}

fn posix_ends(tag: &str) -> (Producer<u64>, Consumer<u64>) {
    let name = format!("/shm-ringperf-{}-{tag}", std::process::id());
    let ring = SpscRing::<u64>::create_posix(&name, CAPACITY).expect("posix ring");
    (ring.producer().unwrap(), ring.consumer().unwrap())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Single-threaded operation loops for `valgrind --tool=callgrind`
/// (instruction counts are repeatable where wall-clock times are not):
/// `ringperf cg single|batchK|chunks32|slices32|rtrb32|mpmc [items]` moves `items`
/// values through a heap ring, one op, one batch of K or one chunk of 32 at
/// a time (`chunks32` element by element, `slices32` with `write_slice`/`read_slice`). The ring
/// starts one slot in, so some batches wrap around its end.
fn callgrind(mode: &str, n: u64) {
    let (mut tx, mut rx) = SpscRing::<u64>::new_heap(CAPACITY).unwrap();
    tx.push(0).unwrap();
    rx.pop().unwrap();
    let mut sum = 0u64;
    let start = Instant::now();
    match mode {
        "single" => {
            for i in 0..n {
                tx.push(std::hint::black_box(i)).unwrap();
                sum = sum.wrapping_add(rx.pop().unwrap());
            }
        }
        batch if batch.starts_with("batch") => {
            let k: usize = batch["batch".len()..].parse().expect("batchK");
            let mut buf = vec![0u64; k];
            let mut out = vec![0u64; k];
            for i in 0..n / k as u64 {
                buf[0] = i;
                assert_eq!(tx.push_slice(std::hint::black_box(&buf)), k);
                assert_eq!(rx.pop_into(std::hint::black_box(&mut out)), k);
                sum = sum.wrapping_add(out[0]);
            }
        }
        "chunks32" => {
            for i in 0..n / BATCH as u64 {
                let mut chunk = tx.write_chunk(BATCH).unwrap();
                for j in 0..BATCH {
                    chunk.write(j, &(i + j as u64));
                }
                chunk.commit_all();
                let chunk = rx.read_chunk(BATCH).unwrap();
                for j in 0..BATCH {
                    sum = sum.wrapping_add(chunk.read(j));
                }
                chunk.commit_all();
            }
        }
        "slices32" => {
            // The chunks of 32 again, filled and emptied with one copy each.
            let mut buf = [0u64; BATCH];
            let mut out = [0u64; BATCH];
            for i in 0..n / BATCH as u64 {
                buf[0] = i;
                let mut chunk = tx.write_chunk(BATCH).unwrap();
                chunk.write_slice(std::hint::black_box(&buf));
                chunk.commit_all();
                let chunk = rx.read_chunk(BATCH).unwrap();
                chunk.read_slice(std::hint::black_box(&mut out));
                chunk.commit_all();
                sum = sum.wrapping_add(out[0]);
            }
        }
        "rtrb32" => {
            // rtrb's chunks of 32, as the goals harness uses them
            // (`write_chunk_uninit` + `fill_from_iter`, `read_chunk` +
            // `as_slices` copied out + `commit_all`): the peer of `slices32`.
            let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(CAPACITY);
            p.push(0).unwrap();
            c.pop().unwrap();
            let mut buf = [0u64; BATCH];
            let mut out = [0u64; BATCH];
            for i in 0..n / BATCH as u64 {
                buf[0] = i;
                let chunk = p.write_chunk_uninit(BATCH).unwrap();
                chunk.fill_from_iter(std::hint::black_box(&buf).iter().copied());
                let chunk = c.read_chunk(BATCH).unwrap();
                let (a, b) = chunk.as_slices();
                let out = std::hint::black_box(&mut out);
                out[..a.len()].copy_from_slice(a);
                out[a.len()..a.len() + b.len()].copy_from_slice(b);
                chunk.commit_all();
                sum = sum.wrapping_add(out[0]);
            }
        }
        "mpmc" => {
            let ring = shm_ring::MpmcRing::<u64>::new_heap(CAPACITY).unwrap();
            for i in 0..n {
                ring.push(std::hint::black_box(i)).unwrap();
                sum = sum.wrapping_add(ring.pop().unwrap());
            }
        }
        other => panic!("unknown mode {other}"),
    }
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("{mode}: {n} items, {ns:.2} ns/item, checksum {sum}");
}

/// `n` round trips of one `u64` between this thread and an echo thread,
/// over two blocking rings (`push_blocking`/`pop_blocking` on rings made
/// with `RingOptions::blocking(true)`), or over two busy-polled rings, or
/// over two pipes; ns per round trip.
fn round_trip(kind: &str, n: u64, me: Option<usize>, peer: Option<usize>) -> f64 {
    use shm_ring::RingOptions;
    use std::io::{Read, Write};
    const FOREVER: Duration = Duration::from_secs(10);
    let blocking = kind == "blocking";
    let opts = RingOptions::new().blocking(blocking);
    let start;
    match kind {
        "pipe" => {
            // a: this thread to the echo thread; b: back.
            let (mut a_rx, mut a_tx) = pipe();
            let (mut b_rx, mut b_tx) = pipe();
            let echo = thread::spawn(move || {
                pin(peer);
                let mut buf = [0u8; 8];
                for _ in 0..n {
                    a_rx.read_exact(&mut buf).unwrap();
                    b_tx.write_all(&buf).unwrap();
                }
            });
            pin(me);
            start = Instant::now();
            let mut buf = [0u8; 8];
            for i in 0..n {
                a_tx.write_all(&i.to_ne_bytes()).unwrap();
                b_rx.read_exact(&mut buf).unwrap();
                assert_eq!(u64::from_ne_bytes(buf), i);
            }
            echo.join().unwrap();
        }
        _ => {
            let (mut tx, mut peer_rx) = SpscRing::<u64>::new_heap_with(CAPACITY, opts).unwrap();
            let (mut peer_tx, mut rx) = SpscRing::<u64>::new_heap_with(CAPACITY, opts).unwrap();
            let echo = thread::spawn(move || {
                pin(peer);
                for _ in 0..n {
                    let v = if blocking {
                        peer_rx.pop_blocking(FOREVER).unwrap()
                    } else {
                        let mut round = 0;
                        loop {
                            if let Ok(v) = peer_rx.pop() {
                                break v;
                            }
                            snooze(&mut round);
                        }
                    };
                    peer_tx.push_blocking(v, FOREVER).unwrap();
                }
            });
            pin(me);
            start = Instant::now();
            for i in 0..n {
                tx.push_blocking(i, FOREVER).unwrap();
                let v = if blocking {
                    rx.pop_blocking(FOREVER).unwrap()
                } else {
                    let mut round = 0;
                    loop {
                        if let Ok(v) = rx.pop() {
                            break v;
                        }
                        snooze(&mut round);
                    }
                };
                assert_eq!(v, i);
            }
            echo.join().unwrap();
        }
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// A pipe's read and write ends (`std::io::pipe` is newer than the MSRV).
fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe(2)");
    // SAFETY: two fresh descriptors that nothing else owns.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

fn round_trips(n: u64, rounds: usize, me: Option<usize>, peer: Option<usize>) {
    let kinds = ["blocking", "pipe", "busy"];
    let mut ns = vec![Vec::new(); kinds.len()];
    for _ in 0..rounds {
        for (k, kind) in kinds.iter().enumerate() {
            ns[k].push(round_trip(kind, n, me, peer));
        }
    }
    for (kind, v) in kinds.iter().zip(&mut ns) {
        println!("rt {kind:>9}: median {:8.0} ns  (all {v:.0?})", median(v));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(place @ ("rt1" | "rt2")) = args.get(1).map(String::as_str) {
        // rt1: both threads on the first CPU; rt2: one CPU each.
        let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20_000);
        let rounds = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
        let list = cpus();
        let me = list.first().copied();
        let peer = if place == "rt1" {
            me
        } else {
            list.get(1).copied()
        };
        println!("round trips {n}, rounds {rounds}, cpus {me:?}/{peer:?}");
        return round_trips(n, rounds, me, peer);
    }
    if args.get(1).map(String::as_str) == Some("cg") {
        let n = args
            .get(3)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        return callgrind(args.get(2).map_or("single", String::as_str), n);
    }
    let n: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
    let nopin = args.iter().any(|a| a == "nopin");
    let list = cpus();
    let (me, peer) = if nopin || list.len() < 2 {
        (None, None)
    } else {
        (Some(list[0]), Some(list[1]))
    };
    pin(me);
    println!("items {n}, rounds {rounds}, cpus {list:?}, pinned {me:?}/{peer:?}");
    type Case = (&'static str, Box<dyn Fn(u64) -> Duration>);
    let cases: Vec<Case> = vec![
        (
            "heap single",
            Box::new(move |n| single(SpscRing::<u64>::new_heap(CAPACITY).unwrap(), n, peer)),
        ),
        (
            "posix single",
            Box::new(move |n| single(posix_ends("s"), n, peer)),
        ),
        (
            "rtrb single",
            Box::new(move |n| single(rtrb::RingBuffer::<u64>::new(CAPACITY), n, peer)),
        ),
        (
            "heap batch32",
            Box::new(move |n| batch(SpscRing::<u64>::new_heap(CAPACITY).unwrap(), n, peer)),
        ),
        (
            "posix batch32",
            Box::new(move |n| batch(posix_ends("b"), n, peer)),
        ),
        (
            "rtrb batch32",
            Box::new(move |n| batch(rtrb::RingBuffer::<u64>::new(CAPACITY), n, peer)),
        ),
    ];
    let mut rates = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (_, run)) in cases.iter().enumerate() {
            let t = run(n);
            rates[i].push(n as f64 / t.as_secs_f64() / 1e6);
        }
    }
    for ((name, _), r) in cases.iter().zip(&mut rates) {
        let min = r.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.iter().copied().fold(0.0, f64::max);
        println!(
            "{name:>14}: median {:7.1} M/s  (min {min:.1}, max {max:.1})",
            median(r)
        );
    }
}
