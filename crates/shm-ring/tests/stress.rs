//! Conservation under concurrency: a million items go through a ring and
//! every one comes out exactly once.
//!
//! Each item is `producer << 40 | sequence`. SPSC: the consumer sees
//! 0, 1, 2, … with no gap, duplicate or reordering. MPMC: every
//! `(producer, sequence)` is seen exactly once over all consumers (a shared
//! bitmap catches duplicates at once, a count catches losses), and each
//! consumer sees each producer's items in increasing order.
//!
//! Threads on a heap ring (SPSC 1x1, MPMC 2x2 and 4x4), and real processes
//! on a POSIX segment: a child (this test binary run again) attaches by name
//! and produces through an SPSC ring created with `blocking(true)` (futex
//! sleeps and wake-ups across processes), and two children produce through
//! an MPMC ring that the parent drains with two threads. Every side mixes
//! single, bulk and chunk operations with the blocking calls, with sizes
//! from a seed printed at the start (`SHM_STRESS_SEED` replays one).
//!
//! Rings are small (64 to 256 slots) so that full and empty, and the
//! wrap-around, happen all the time. Every wait has a deadline and backs off.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{AbortOnPanic, Patience, Rng, Running, HANG};
use shm_ring::{Consumer, MpmcRing, Producer, RingOptions, SpscRing};
use shm_segment::{PosixOptions, PosixShm, Region};

const ITEMS: u64 = 1_000_000;
const SEQ_BITS: u32 = 40;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// Short timeouts for the blocking calls mixed into the loops.
const SHORT: Duration = Duration::from_millis(2);

fn tag(producer: u64, seq: u64) -> u64 {
    (producer << SEQ_BITS) | seq
}

// ---------------------------------------------------------------------------
// SPSC sides, shared by the thread and the process tests.

/// Pushes `start..end` in order with a random mix of every push operation.
fn spsc_produce<R: Region>(
    tx: &mut Producer<u64, R>,
    start: u64,
    end: u64,
    rng: &mut Rng,
    mut patience: Patience<'_>,
) {
    let cap = tx.capacity() as u64;
    let mut seq = start;
    let mut batch = Vec::new();
    while seq < end {
        let k = (1 + rng.below(2 * cap)).min(end - seq) as usize;
        batch.clear();
        batch.extend(seq..seq + k as u64);
        let moved = match rng.below(6) {
            0 => tx.push(seq).map_or(0, |()| 1),
            1 => tx.push_slice(&batch),
            2 => tx.push_exact(&batch).map_or(0, |()| k),
            3 => {
                let n = k.min(tx.slots());
                match tx.write_chunk(n) {
                    Ok(mut chunk) => {
                        for (i, v) in batch[..n].iter().enumerate() {
                            chunk.write(i, v);
                        }
                        let m = rng.below(n as u64 + 1) as usize;
                        chunk.commit(m);
                        m
                    }
                    Err(e) => panic!("write_chunk({n}) after slots() said {n} were free: {e}"),
                }
            }
            4 => {
                let n = k.min(tx.slots());
                let mut chunk = tx.write_chunk(n).expect("write_chunk of free slots");
                // SAFETY: the slots are reserved for this producer; the
                // consumer does not read them before the commit below.
                let (a, b) = unsafe { chunk.as_mut_slices() };
                a.copy_from_slice(&batch[..a.len()]);
                let first = a.len();
                b.copy_from_slice(&batch[first..n]);
                chunk.commit_all();
                n
            }
            _ => tx.push_blocking(seq, SHORT).map_or(0, |()| 1),
        };
        if moved == 0 {
            patience.wait();
        } else {
            patience.reset();
            seq += moved as u64;
        }
    }
}

/// Takes `start..end` and checks that they come in order, with a random
/// mix of every pop operation. `on_empty` runs when nothing came.
fn spsc_consume<R: Region>(
    rx: &mut Consumer<u64, R>,
    cap: usize,
    start: u64,
    end: u64,
    rng: &mut Rng,
    mut on_empty: impl FnMut(),
) {
    let mut expect = start;
    let mut buf = vec![0u64; 2 * cap];
    while expect < end {
        let k = (1 + rng.below(2 * cap as u64)).min(end - expect) as usize;
        let got: &[u64] = match rng.below(6) {
            0 => match rx.pop() {
                Ok(v) => {
                    buf[0] = v;
                    &buf[..1]
                }
                Err(_) => &[],
            },
            1 => {
                let n = rx.pop_into(&mut buf[..k]);
                &buf[..n]
            }
            2 => match rx.pop_exact(&mut buf[..k]) {
                Ok(()) => &buf[..k],
                Err(_) => &[],
            },
            3 => {
                let n = k.min(rx.slots());
                let chunk = rx.read_chunk(n).expect("read_chunk of ready items");
                let m = rng.below(n as u64 + 1) as usize;
                for (i, slot) in buf[..n].iter_mut().enumerate() {
                    *slot = chunk.read(i);
                }
                chunk.commit(m);
                &buf[..m]
            }
            4 => {
                let n = k.min(rx.slots());
                let chunk = rx.read_chunk(n).expect("read_chunk of ready items");
                // SAFETY: the producer does not write these slots before we
                // commit them below.
                let (a, b) = unsafe { chunk.as_slices() };
                buf[..a.len()].copy_from_slice(a);
                buf[a.len()..n].copy_from_slice(b);
                chunk.commit_all();
                &buf[..n]
            }
            _ => match rx.pop_blocking(SHORT) {
                Ok(v) => {
                    buf[0] = v;
                    &buf[..1]
                }
                Err(_) => &[],
            },
        };
        if got.is_empty() {
            on_empty();
            continue;
        }
        for &v in got {
            assert_eq!(
                v, expect,
                "SPSC item out of order (lost, duplicated or torn)"
            );
            expect += 1;
        }
    }
}

#[test]
fn spsc_threads_conserve_items() {
    let t0 = Instant::now();
    let (mut tx, mut rx) = SpscRing::<u64>::new_heap(64).unwrap();
    let mut rng = Rng::from_env("SHM_STRESS_SEED");
    let (mut prng, mut crng) = (Rng::new(rng.next_u64()), Rng::new(rng.next_u64()));
    let abort = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let _guard = AbortOnPanic(&abort);
            let patience = Patience::new("SPSC producer", HANG).with_abort(&abort);
            spsc_produce(&mut tx, 0, ITEMS, &mut prng, patience);
        });
        s.spawn(|| {
            let _guard = AbortOnPanic(&abort);
            let mut patience = Patience::new("SPSC consumer", HANG).with_abort(&abort);
            spsc_consume(&mut rx, 64, 0, ITEMS, &mut crng, || patience.wait());
            assert!(rx.is_empty());
            assert_eq!(rx.pop(), Err(shm_ring::PopError::Empty));
        });
    });
    eprintln!("SPSC 1x1 threads: {ITEMS} items in {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// MPMC sides.

/// Pushes `tag(id, 0..count)` in order with a random mix of push operations.
fn mpmc_produce<R: Region>(
    ring: &MpmcRing<u64, R>,
    id: u64,
    count: u64,
    rng: &mut Rng,
    mut patience: Patience<'_>,
) {
    let cap = ring.capacity() as u64;
    let mut seq = 0;
    let mut batch = Vec::new();
    while seq < count {
        let k = (1 + rng.below(cap / 2)).min(count - seq);
        batch.clear();
        batch.extend((seq..seq + k).map(|s| tag(id, s)));
        let moved = match rng.below(4) {
            0 => ring.push(tag(id, seq)).map_or(0, |()| 1),
            1 => ring.push_slice(&batch) as u64,
            2 => ring.push_exact(&batch).map_or(0, |()| k),
            _ => ring.push_blocking(tag(id, seq), SHORT).map_or(0, |()| 1),
        };
        if moved == 0 {
            patience.wait();
        } else {
            patience.reset();
            seq += moved;
        }
    }
}

/// What the consumers of an MPMC test share.
struct Tally {
    producers: u64,
    per_producer: u64,
    /// One flag per item: set by the consumer that took it.
    seen: Vec<AtomicBool>,
    /// Items taken so far, over all consumers.
    taken: AtomicU64,
}

impl Tally {
    fn new(producers: u64, per_producer: u64) -> Self {
        Tally {
            producers,
            per_producer,
            seen: (0..producers * per_producer)
                .map(|_| AtomicBool::new(false))
                .collect(),
            taken: AtomicU64::new(0),
        }
    }

    fn total(&self) -> u64 {
        self.producers * self.per_producer
    }

    /// Checks one item taken by a consumer whose view so far is `last`.
    fn check(&self, v: u64, last: &mut [Option<u64>]) {
        let (p, seq) = (v >> SEQ_BITS, v & SEQ_MASK);
        assert!(
            p < self.producers && seq < self.per_producer,
            "garbage item {v:#x}"
        );
        if let Some(prev) = last[p as usize] {
            assert!(
                seq > prev,
                "producer {p}: item {seq} came after {prev} to the same consumer"
            );
        }
        last[p as usize] = Some(seq);
        let first =
            !self.seen[(p * self.per_producer + seq) as usize].swap(true, Ordering::Relaxed);
        assert!(first, "producer {p}: item {seq} taken twice");
    }

    /// After the run: every item exactly once.
    fn assert_complete(&self) {
        assert_eq!(self.taken.load(Ordering::Relaxed), self.total());
        let missing = self
            .seen
            .iter()
            .filter(|f| !f.load(Ordering::Relaxed))
            .count();
        assert_eq!(missing, 0, "items never seen");
    }
}

/// Takes items until the tally is complete, with a random mix of pop operations.
fn mpmc_consume<R: Region>(
    ring: &MpmcRing<u64, R>,
    tally: &Tally,
    rng: &mut Rng,
    mut patience: Patience<'_>,
) -> u64 {
    let cap = ring.capacity();
    let mut last = vec![None; tally.producers as usize];
    let mut buf = vec![0u64; cap];
    let mut mine = 0;
    loop {
        let k = 1 + rng.below(cap as u64 / 2) as usize;
        let n = match rng.below(3) {
            0 => ring.pop().map(|v| buf[0] = v).map_or(0, |()| 1),
            1 => ring.pop_into(&mut buf[..k]),
            _ => ring
                .pop_blocking(SHORT)
                .map(|v| buf[0] = v)
                .map_or(0, |()| 1),
        };
        if n == 0 {
            if tally.taken.load(Ordering::Acquire) >= tally.total() {
                return mine;
            }
            patience.wait();
            continue;
        }
        patience.reset();
        for &v in &buf[..n] {
            tally.check(v, &mut last);
        }
        mine += n as u64;
        tally.taken.fetch_add(n as u64, Ordering::AcqRel);
    }
}

fn mpmc_threads(producers: u64, consumers: u64) {
    let t0 = Instant::now();
    let ring = MpmcRing::<u64>::new_heap(64).unwrap();
    let per = ITEMS / producers;
    let tally = Tally::new(producers, per);
    let mut rng = Rng::from_env("SHM_STRESS_SEED");
    let abort = AtomicBool::new(false);
    let taken: Vec<u64> = std::thread::scope(|s| {
        for id in 0..producers {
            let (ring, abort, mut rng) = (&ring, &abort, Rng::new(rng.next_u64()));
            s.spawn(move || {
                let _guard = AbortOnPanic(abort);
                let patience = Patience::new("MPMC producer", HANG).with_abort(abort);
                mpmc_produce(ring, id, per, &mut rng, patience);
            });
        }
        let handles: Vec<_> = (0..consumers)
            .map(|_| {
                let (ring, abort, tally, mut rng) =
                    (&ring, &abort, &tally, Rng::new(rng.next_u64()));
                s.spawn(move || {
                    let _guard = AbortOnPanic(abort);
                    let patience = Patience::new("MPMC consumer", HANG).with_abort(abort);
                    mpmc_consume(ring, tally, &mut rng, patience)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    tally.assert_complete();
    assert!(ring.is_empty());
    eprintln!(
        "MPMC {producers}x{consumers} threads: {} items in {:?}, per consumer {taken:?}",
        tally.total(),
        t0.elapsed()
    );
}

#[test]
fn mpmc_2x2_threads_conserve_items() {
    mpmc_threads(2, 2);
}

#[test]
fn mpmc_4x4_threads_conserve_items() {
    mpmc_threads(4, 4);
}

// ---------------------------------------------------------------------------
// Real processes.

/// The child produces `0..ITEMS` into a blocking SPSC ring in a POSIX
/// segment it attaches by name; the parent consumes with `pop_blocking`
/// (futex sleeps) and the other pops, and checks the order.
#[test]
fn spsc_process_conserves_items() {
    const TEST: &str = "spsc_process_conserves_items";
    if common::is_child(TEST) {
        let name = common::child_arg();
        let map = PosixShm::open(&name).unwrap().map().unwrap();
        let ring = SpscRing::<u64, _>::attach(&map).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rng = Rng::from_env("SHM_STRESS_SEED");
        spsc_produce(
            &mut tx,
            0,
            ITEMS,
            &mut rng,
            Patience::new("SPSC child producer", HANG),
        );
        common::child_done(TEST);
        return;
    }

    let t0 = Instant::now();
    let name = common::posix_name("ring-spsc-proc");
    let cap = 64;
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, SpscRing::<u64>::required_size(cap))
        .unwrap();
    let ring =
        SpscRing::<u64, _>::create(shm.map().unwrap(), cap, RingOptions::new().blocking(true))
            .unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut child = Running::child(TEST, &name);
    let mut rng = Rng::from_env("SHM_STRESS_SEED");
    let mut patience = Patience::new("SPSC parent consumer", HANG);
    spsc_consume(&mut rx, cap, 0, ITEMS, &mut rng, || {
        assert!(
            !child.has_exited() || !ring.is_empty(),
            "the child exited, and the ring is empty before all items came"
        );
        patience.wait();
    });
    let out = child.wait(HANG);
    out.assert_child_passed(TEST);
    assert!(ring.is_empty());
    eprintln!("SPSC across processes: {ITEMS} items in {:?}", t0.elapsed());
}

/// Two children produce `ITEMS / 2` each into an MPMC ring in a POSIX
/// segment; the parent takes them with two consumer threads.
#[test]
fn mpmc_processes_conserve_items() {
    const TEST: &str = "mpmc_processes_conserve_items";
    const PRODUCERS: u64 = 2;
    const CONSUMERS: usize = 2;
    if common::is_child(TEST) {
        let arg = common::child_arg();
        let (name, id) = arg.rsplit_once(':').unwrap();
        let id: u64 = id.parse().unwrap();
        let map = PosixShm::open(name).unwrap().map().unwrap();
        let ring = MpmcRing::<u64, _>::attach(&map).unwrap();
        let mut rng = Rng::new(Rng::from_env("SHM_STRESS_SEED").next_u64() ^ id);
        mpmc_produce(
            &ring,
            id,
            ITEMS / PRODUCERS,
            &mut rng,
            Patience::new("MPMC child producer", HANG),
        );
        common::child_done(TEST);
        return;
    }

    let t0 = Instant::now();
    let name = common::posix_name("ring-mpmc-proc");
    let cap = 128;
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, MpmcRing::<u64>::required_size(cap))
        .unwrap();
    let ring = MpmcRing::<u64, _>::create(shm.map().unwrap(), cap, RingOptions::new()).unwrap();
    let children: Vec<Running> = (0..PRODUCERS)
        .map(|id| Running::child(TEST, &format!("{name}:{id}")))
        .collect();
    let tally = Tally::new(PRODUCERS, ITEMS / PRODUCERS);
    let mut rng = Rng::from_env("SHM_STRESS_SEED");
    let abort = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..CONSUMERS {
            let (ring, abort, tally, mut rng) = (&ring, &abort, &tally, Rng::new(rng.next_u64()));
            s.spawn(move || {
                let _guard = AbortOnPanic(abort);
                let patience = Patience::new("MPMC parent consumer", HANG).with_abort(abort);
                mpmc_consume(ring, tally, &mut rng, patience);
            });
        }
    });
    for child in children {
        child.wait(HANG).assert_child_passed(TEST);
    }
    tally.assert_complete();
    assert!(ring.is_empty());
    eprintln!(
        "MPMC across processes: {} items in {:?}",
        tally.total(),
        t0.elapsed()
    );
}
