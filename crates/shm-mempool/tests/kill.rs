//! `kill -9` of a process in the middle of `get`, giving back, `send` and
//! `recv`, at random moments, while another process keeps working.
//!
//! A channel lives in a POSIX segment, with a few words of the test's own
//! after it. A *steady* child (this test binary run again) works through
//! the whole test: it takes blocks, keeps up to two, gives them back, sends
//! stamped messages and receives them (its own and the victims'), checking
//! every stamp. Each round the parent starts a *victim* child that does the
//! same with up to three blocks, and kills it with `SIGKILL` after a random
//! delay. The victim writes which operation it is in into a shared word
//! before each call into the pool and clears it after, so the parent knows
//! whether the kill landed inside an operation.
//!
//! After each kill the parent calls `reclaim_dead` while the steady child
//! keeps working. Then it pauses the steady child (between two of its
//! operations) and checks that nothing was lost: every block is free, held
//! by the steady child (as many as it says it holds) or queued in the
//! channel (as many as the channel says it holds); no block is in transit
//! outside the channel, none is held by the dead victim, and every free
//! block is on the free list (`check()` lists them all: no orphan). Then
//! the steady child goes on, and must have made progress by the end (a dead
//! victim never wedges the pool or the channel).
//!
//! The test runs twice: with the channel's pool in FIFO order (the
//! default), and in LIFO order.
//!
//! Rounds: `SHM_KILL_ROUNDS` for each order (default 300; 1000 or more for
//! a longer run). Seed: `SHM_KILL_SEED`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{check_stamp, stamp, Rng, Running, Stamp, HANG};
use shm_mempool::{Block, Channel, ChannelOptions, FreeOrder, PoolError, RecvError};
use shm_segment::{PosixOptions, PosixShm, Region};

const BLOCKS: usize = 16;
const SIZE: usize = 128;
const TEST: &str = "killed_mid_operation_loses_nothing";
const TEST_LIFO: &str = "killed_mid_operation_loses_nothing_lifo";

/// The test's words, after the channel: one per cache line.
const PAUSE: usize = 0;
const PAUSED: usize = 64;
const STOP: usize = 128;
const STEADY_OPS: usize = 192;
const STEADY_HELD: usize = 256;
const VICTIM_OP: usize = 320;
const WORDS: usize = 384;

fn words_at() -> usize {
    Channel::required_size(BLOCKS, SIZE).next_multiple_of(64)
}

fn word(map: &impl Region, at: usize) -> &AtomicU64 {
    map.atomic_u64(words_at() + at).unwrap()
}

fn rounds() -> u32 {
    std::env::var("SHM_KILL_ROUNDS")
        .ok()
        .map(|s| s.parse().expect("SHM_KILL_ROUNDS must be a number"))
        .unwrap_or(300)
}

const OPS: [&str; 5] = ["-", "get", "give back", "send", "recv"];

/// One random operation; `in_op` is set around each call into the pool.
/// Returns whether the pool did something (a block taken, given back, sent
/// or received).
fn step<'c, R: Region>(
    ch: &'c Channel<R>,
    rng: &mut Rng,
    held: &mut Vec<Block<'c, shm_segment::SubRegion<std::sync::Arc<R>>>>,
    max_held: usize,
    seq: &mut u64,
    in_op: &AtomicU64,
) -> bool {
    let pid = std::process::id();
    let op = match rng.below(4) + 1 {
        1 if held.len() >= max_held => return false,
        2 if held.is_empty() => return false,
        op => op,
    };
    in_op.store(op, Ordering::SeqCst);
    let did = match op {
        1 => match ch.get() {
            Ok(b) => {
                b.write_pod(0, &stamp(pid, *seq)).unwrap();
                *seq += 1;
                held.push(b);
                true
            }
            Err(PoolError::Exhausted { .. }) => false,
            Err(e) => panic!("get: {e}"),
        },
        2 => {
            let b = held.swap_remove(rng.below(held.len() as u64) as usize);
            let s: Stamp = b.read_pod(0).unwrap();
            assert_eq!(
                check_stamp(&s).0,
                pid,
                "a block this process holds changed hands"
            );
            drop(b);
            true
        }
        3 => match ch.get() {
            Ok(b) => {
                b.write_pod(0, &stamp(pid, *seq)).unwrap();
                b.set_used(24);
                *seq += 1;
                match ch.send(b) {
                    Ok(()) => true,
                    Err(e) => panic!("send: {e}"),
                }
            }
            Err(PoolError::Exhausted { .. }) => false,
            Err(e) => panic!("alloc: {e}"),
        },
        4 => match ch.recv() {
            Ok(b) => {
                check_stamp(&b.read_pod::<Stamp>(0).unwrap());
                assert_eq!(b.used(), 24);
                drop(b);
                true
            }
            Err(RecvError::Empty) => false,
            Err(e) => panic!("recv: {e}"),
        },
        _ => false,
    };
    in_op.store(0, Ordering::SeqCst);
    did
}

fn steady(test: &str, name: &str) {
    let shm = PosixShm::open(name).unwrap();
    let map = shm.map().unwrap();
    let ch = Channel::attach(&map).unwrap();
    let mut rng = Rng::new(u64::from(std::process::id()));
    let mut held = Vec::new();
    let mut seq = 0;
    let scratch = AtomicU64::new(0);
    println!("ready");
    let deadline = Instant::now() + HANG * 4;
    while word(&map, STOP).load(Ordering::Acquire) == 0 {
        assert!(Instant::now() < deadline, "steady: never told to stop");
        if word(&map, PAUSE).load(Ordering::Acquire) == 1 {
            word(&map, STEADY_HELD).store(held.len() as u64, Ordering::Release);
            word(&map, PAUSED).store(1, Ordering::Release);
            while word(&map, PAUSE).load(Ordering::Acquire) == 1 {
                assert!(Instant::now() < deadline, "steady: paused for good");
                std::thread::sleep(Duration::from_micros(50));
            }
            word(&map, PAUSED).store(0, Ordering::Release);
            continue;
        }
        if step(&ch, &mut rng, &mut held, 2, &mut seq, &scratch) {
            word(&map, STEADY_OPS).fetch_add(1, Ordering::AcqRel);
        }
    }
    drop(held);
    common::child_done(test);
}

fn victim(name: &str) -> ! {
    let shm = PosixShm::open(name).unwrap();
    let map = shm.map().unwrap();
    let ch = Channel::attach(&map).unwrap();
    let mut rng = Rng::new(u64::from(std::process::id()) << 1);
    let mut held = Vec::new();
    let mut seq = 0;
    let in_op = word(&map, VICTIM_OP);
    println!("ready");
    let deadline = Instant::now() + HANG;
    while Instant::now() < deadline {
        step(&ch, &mut rng, &mut held, 3, &mut seq, in_op);
    }
    std::process::exit(3);
}

#[test]
fn killed_mid_operation_loses_nothing() {
    kill_rounds(TEST, FreeOrder::Fifo);
}

#[test]
fn killed_mid_operation_loses_nothing_lifo() {
    kill_rounds(TEST_LIFO, FreeOrder::Lifo);
}

fn kill_rounds(test: &str, order: FreeOrder) {
    if common::is_child(test) {
        let arg = common::child_arg();
        let (name, role) = arg.split_once(':').unwrap();
        match role {
            "steady" => steady(test, name),
            _ => victim(name),
        }
        return;
    }

    let t0 = Instant::now();
    let mut rng = Rng::from_env("SHM_KILL_SEED");
    let name = common::posix_name("kill");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, words_at() + WORDS)
        .unwrap();
    let map = shm.map().unwrap();
    let opts = ChannelOptions::new().order(order);
    let ch = Channel::create_with(&map, BLOCKS, SIZE, opts).unwrap();
    let pool = ch.pool();
    let mut steady_child = Running::child(test, &format!("{name}:steady"));
    steady_child.until("ready", HANG);

    let rounds = rounds();
    let mut inside = [0u32; 5];
    let (mut reclaimed, mut last_ops, mut stalls) = (0usize, 0u64, 0u32);
    for round in 0..rounds {
        let mut v = Running::child(test, &format!("{name}:victim"));
        v.until("ready", HANG);
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        v.kill9();
        let op = word(&map, VICTIM_OP).swap(0, Ordering::SeqCst);
        inside[op as usize] += 1;

        // The steady child keeps working while the dead victim's blocks come back.
        reclaimed += pool.reclaim_dead().unwrap().len();

        word(&map, PAUSE).store(1, Ordering::Release);
        assert!(
            common::wait_until(HANG, || word(&map, PAUSED).load(Ordering::Acquire) == 1),
            "round {round}: the steady child did not pause"
        );
        let steady_held = word(&map, STEADY_HELD).load(Ordering::Acquire) as usize;
        let s = pool.stats();
        let queued = ch.len();
        let listed = pool.check();
        let what = format!(
            "round {round}, killed in {:?}: {s:?}, {queued} queued, the steady child holds \
             {steady_held}, check {listed:?}",
            OPS[op as usize]
        );
        assert_eq!((s.unknown, s.dead), (0, 0), "{what}");
        assert_eq!(s.held, steady_held, "held by nobody alive: {what}");
        assert_eq!(s.in_transit, 0, "in transit, in no queue: {what}");
        assert_eq!(s.queued, queued, "{what}");
        assert_eq!(s.free + s.held + s.queued, BLOCKS, "{what}");
        assert_eq!(
            listed.as_ref().ok(),
            Some(&s.free),
            "free but on no list: {what}"
        );
        let ops = word(&map, STEADY_OPS).load(Ordering::Acquire);
        if ops == last_ops {
            stalls += 1;
        }
        last_ops = ops;
        word(&map, PAUSE).store(0, Ordering::Release);
        assert!(
            common::wait_until(HANG, || word(&map, PAUSED).load(Ordering::Acquire) == 0),
            "round {round}: the steady child did not resume"
        );
    }
    // The steady child made progress all along: never wedged.
    let before = word(&map, STEADY_OPS).load(Ordering::Acquire);
    assert!(
        common::wait_until(HANG, || word(&map, STEADY_OPS).load(Ordering::Acquire)
            > before + 100),
        "the steady child stopped making progress"
    );
    assert!(
        stalls < rounds / 2 + 1,
        "the steady child made no progress in {stalls} of {rounds} rounds"
    );
    word(&map, STOP).store(1, Ordering::Release);
    steady_child.wait(HANG).assert_child_passed(test);
    assert!(pool.reclaim_dead().unwrap().is_empty());
    let s = pool.stats();
    assert_eq!(s.held, 0, "{s:?}");
    assert_eq!(pool.check().unwrap(), s.free);
    let killed_inside: u32 = inside[1..].iter().sum();
    eprintln!(
        "{order:?}: {rounds} kills in {:?}: {killed_inside} inside an operation (get {}, give back {}, \
         send {}, recv {}), {reclaimed} blocks reclaimed, {} steady operations",
        t0.elapsed(),
        inside[1],
        inside[2],
        inside[3],
        inside[4],
        word(&map, STEADY_OPS).load(Ordering::Acquire)
    );
}
