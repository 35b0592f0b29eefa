//! `kill -9` of an SPSC producer at random moments.
//!
//! A child process (this test binary run again) attaches to an SPSC ring in
//! a POSIX segment, takes the producer role, and pushes records
//! `[seq, seq * K, !seq, checksum]` with every push operation, including
//! chunks filled a few bytes at a time, while the parent consumes. The
//! parent kills it with `SIGKILL` at a random moment, reaps it, and drains
//! the ring. What a killed producer leaves must be exactly a prefix of what
//! it meant to push: sequences consecutive from where the previous round
//! ended (no gap, no duplicate) and every record's checksum valid (no torn
//! element). Then a new child attaches and claims the producer role that the
//! dead one still holds (which must succeed because the holder is dead),
//! and continues from the tail.
//!
//! While a child is alive and producing, a producer claim in the parent must
//! fail with `RingError::RoleTaken` naming the child.
//!
//! Rounds: `SHM_KILL_ROUNDS` (default 200). Seed: `SHM_KILL_SEED`.
//!
//! The MPMC tests (below) kill producers at random moments, and producers
//! and consumers exactly between claim and publish/release (stopped there by
//! the `fault-injection` hook): the ring is never recreated, every published
//! item arrives, and a dead peer's positions are skipped or freed. Rounds:
//! `SHM_KILL_ROUNDS` (default 300).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Rng, Running, HANG};
use shm_ring::fault::{arm, Action, Point};
use shm_ring::{Consumer, MpmcRing, RingError, RingOptions, SpscRing};
use shm_segment::{PosixOptions, PosixShm, ProcessId, Region};

type Record = [u64; 4];

const K: u64 = 0x9E37_79B9_7F4A_7C15;
const CAP: usize = 64;
const TEST: &str = "killed_producer_leaves_a_clean_prefix";

fn checksum(a: u64, b: u64, c: u64) -> u64 {
    (a ^ b.rotate_left(17) ^ c.rotate_left(41)).wrapping_mul(0xFF51_AFD7_ED55_8CCD) ^ 0xC0FF_EE00
}

fn record(seq: u64) -> Record {
    let (a, b, c) = (seq, seq.wrapping_mul(K), !seq);
    [a, b, c, checksum(a, b, c)]
}

/// Checks one record against the sequence the parent expects next.
fn check(r: &Record, expect: u64) {
    assert_eq!(
        r[3],
        checksum(r[0], r[1], r[2]),
        "torn or corrupt record {r:x?} where {expect} was due"
    );
    assert_eq!(r[1], r[0].wrapping_mul(K), "corrupt record {r:x?}");
    assert_eq!(r[2], !r[0], "corrupt record {r:x?}");
    assert_eq!(
        r[0], expect,
        "gap or duplicate: got {} where {expect} was due",
        r[0]
    );
}

/// Takes what is ready (at most one batch), checking each record; returns how many.
fn take<R: Region>(rx: &mut Consumer<Record, R>, next: &mut u64, buf: &mut [Record]) -> usize {
    let n = rx.pop_into(buf);
    for r in &buf[..n] {
        check(r, *next);
        *next += 1;
    }
    n
}

/// The child: produce from `start` on until killed (or, orphaned, until a deadline).
fn produce(name: &str, start: u64) {
    let map = PosixShm::open(name).unwrap().map().unwrap();
    let ring = SpscRing::<Record, _>::attach(&map).unwrap();
    let mut tx = ring
        .producer()
        .expect("the previous producer is dead: taking its role must succeed");
    let tail = map.load_u64(common::TAIL_POS, Ordering::Acquire).unwrap();
    assert_eq!(
        tail, start,
        "the ring's tail is not where the parent's count says"
    );
    let mut rng = Rng::new(u64::from(std::process::id()) ^ start.wrapping_mul(K));
    let deadline = Instant::now() + HANG;
    let mut seq = start;
    let mut batch: Vec<Record> = Vec::new();
    for round in 0u64.. {
        if round % 1024 == 0 && Instant::now() > deadline {
            return; // the parent is gone: do not linger
        }
        let k = 1 + rng.below(CAP as u64 / 2);
        batch.clear();
        batch.extend((seq..seq + k).map(record));
        let moved = match rng.below(5) {
            0 => tx.push(record(seq)).map_or(0, |()| 1),
            1 => tx.push_slice(&batch) as u64,
            2 => tx.push_exact(&batch).map_or(0, |()| k),
            _ => {
                // Fill a chunk 8 bytes at a time, so that a kill often lands
                // with a record half written (in a slot not yet published).
                let n = (k as usize).min(tx.slots());
                let mut chunk = tx.write_chunk(n).expect("write_chunk of free slots");
                for (i, r) in batch[..n].iter().enumerate() {
                    for (w, word) in r.iter().enumerate() {
                        chunk.write_bytes(i, w * 8, &word.to_ne_bytes()).unwrap();
                    }
                }
                chunk.commit_all();
                n as u64
            }
        };
        if moved == 0 {
            std::thread::yield_now();
        }
        seq += moved;
    }
}

#[test]
fn killed_producer_leaves_a_clean_prefix() {
    if common::is_child(TEST) {
        let arg = common::child_arg();
        let (name, start) = arg.rsplit_once(':').unwrap();
        produce(name, start.parse().unwrap());
        common::child_done(TEST);
        return;
    }

    let t0 = Instant::now();
    let rounds: u32 = std::env::var("SHM_KILL_ROUNDS")
        .ok()
        .map(|s| s.parse().expect("SHM_KILL_ROUNDS must be a number"))
        .unwrap_or(200);
    let mut rng = Rng::from_env("SHM_KILL_SEED");
    let name = common::posix_name("ring-kill");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, SpscRing::<Record>::required_size(CAP))
        .unwrap();
    let map = shm.map().unwrap();
    let ring = SpscRing::<Record, _>::create(&map, CAP, RingOptions::new()).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut buf = [[0u64; 4]; CAP];
    let mut next = 0u64;
    let mut role_checks = 0;
    let mut killed_with_items = 0;

    for round in 0..rounds {
        let start = next;
        let mut child = Running::child(TEST, &format!("{name}:{start}"));
        let pid = child.id();
        // One round in five: kill at a random time after the spawn, maybe
        // before the child even attached. Otherwise wait until it produces.
        let early = rng.below(5) == 0;
        if !early {
            let deadline = Instant::now() + HANG;
            while next == start {
                if take(&mut rx, &mut next, &mut buf) == 0 {
                    assert!(
                        !child.has_exited(),
                        "round {round}: the child exited before producing: {:?}",
                        child.wait(HANG)
                    );
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: the child produced nothing"
                    );
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            // The role is held by a live process: the parent cannot take it.
            match ring.producer() {
                Err(RingError::RoleTaken {
                    role: "producer",
                    holder,
                    ..
                }) => assert_eq!(holder.pid, pid, "RoleTaken names the wrong holder"),
                Err(e) => panic!("round {round}: claim while the child lives gave {e}"),
                Ok(_) => panic!("round {round}: took the producer role from a live child"),
            }
            role_checks += 1;
        }
        // Consume for a random while, the child pushing all along, then kill.
        let until =
            Instant::now() + Duration::from_micros(rng.below(if early { 20_000 } else { 3_000 }));
        while Instant::now() < until {
            if take(&mut rx, &mut next, &mut buf) == 0 {
                std::thread::yield_now();
            }
        }
        let out = child.kill9();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "round {round}: the child was not killed but ended by itself: {out:?}"
        );
        // Drain what the dead producer published: the prefix, checked.
        while take(&mut rx, &mut next, &mut buf) > 0 {}
        assert!(rx.is_empty() && ring.is_empty());
        assert_eq!(
            map.load_u64(common::TAIL_POS, Ordering::Acquire).unwrap(),
            next
        );
        if next > start {
            killed_with_items += 1;
            // The dead child still holds the role; the next one takes it over.
            let owner =
                ProcessId::from_word(map.load_u64(common::TAIL_OWNER, Ordering::Acquire).unwrap());
            assert_eq!(
                owner.pid, pid,
                "round {round}: the role is not held by the dead child"
            );
            assert!(!owner.is_alive());
        }
    }

    // After the last kill the parent too can take the role from the dead holder.
    let mut tx = ring
        .producer()
        .expect("the producer role of a dead process");
    tx.push(record(next)).unwrap();
    assert_eq!(take(&mut rx, &mut next, &mut buf), 1);
    eprintln!(
        "{rounds} kills in {:?}: {next} records, {killed_with_items} rounds killed mid-stream, \
         {role_checks} RoleTaken checks",
        t0.elapsed()
    );
    assert!(
        killed_with_items >= rounds / 2,
        "only {killed_with_items} of {rounds} rounds produced anything"
    );
}

// ---------------------------------------------------------------------------
// MPMC: producers and consumers killed between claim and publish/release.
//
// Records are `[id, seq, checksum]`: the parent's own producer thread (the
// survivor, id 0) and each round's child (id = round + 1) number their
// items from 0. The parent's consumer thread checks every record and that
// each id's items come in order with no gap (a consumer sees positions in
// order, and a producer's items sit at increasing positions), except the
// gap a killed consumer leaves in the survivor's items. After each kill the
// parent waits until every item the survivor had pushed is delivered: an
// item published behind a dead producer's hole that never comes is lost.
// The ring is created once and never recreated.

type Rec = [u64; 3];
const MPMC_CAP: usize = 64;
const RANDOM_TEST: &str = "killed_mpmc_producer_at_random_wedges_nothing";
const CLAIM_TEST: &str = "mpmc_peer_killed_between_claim_and_finish_wedges_nothing";

fn rec(id: u64, seq: u64) -> Rec {
    [id, seq, checksum(id, seq, !seq)]
}

fn mpmc_rounds() -> u32 {
    std::env::var("SHM_KILL_ROUNDS")
        .ok()
        .map(|s| s.parse().expect("SHM_KILL_ROUNDS must be a number"))
        .unwrap_or(300)
}

/// What the parent's consumer thread has seen.
#[derive(Default)]
struct Tally {
    /// The next seq due, per id.
    next: std::collections::HashMap<u64, u64>,
    /// Survivor items never seen (taken by a killed consumer), in all.
    survivor_missing: u64,
}

/// The parent's side: a survivor producer thread, a consumer thread, and a
/// ring in a POSIX segment that children attach to.
struct Parent {
    name: String,
    ring: MpmcRing<Rec, shm_segment::Mapping>,
    tally: std::sync::Mutex<Tally>,
    /// Survivor items pushed so far.
    pushed: std::sync::atomic::AtomicU64,
    /// Set by the test at the end.
    stop: std::sync::atomic::AtomicBool,
    /// Set by a failing thread.
    failed: std::sync::atomic::AtomicBool,
    /// The survivor's pause after each push (none: as fast as it can).
    pace: Option<Duration>,
    _shm: shm_segment::PosixShm,
}

impl Parent {
    fn new(what: &str, pace: Option<Duration>) -> Parent {
        let name = common::posix_name(what);
        let shm = PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, MpmcRing::<Rec>::required_size(MPMC_CAP))
            .unwrap();
        let ring =
            MpmcRing::<Rec, _>::create(shm.map().unwrap(), MPMC_CAP, RingOptions::new()).unwrap();
        Parent {
            name,
            ring,
            tally: Default::default(),
            pushed: Default::default(),
            stop: Default::default(),
            failed: Default::default(),
            pace,
            _shm: shm,
        }
    }

    /// The survivor: pushes its items until stopped.
    fn survive(&self) {
        let mut seq = 0;
        let mut wait = common::Patience::new("survivor push", HANG * 10).with_abort(&self.failed);
        while !self.stop.load(Ordering::Relaxed) && !self.failed.load(Ordering::Relaxed) {
            match self.ring.push(rec(0, seq)) {
                Ok(()) => {
                    seq += 1;
                    self.pushed.store(seq, Ordering::Release);
                    wait.reset();
                    if let Some(pace) = self.pace {
                        std::thread::sleep(pace);
                    }
                }
                Err(_) => wait.wait(),
            }
        }
    }

    /// The consumer: takes and checks items until stopped.
    fn consume(&self) {
        let mut buf = [[0u64; 3]; 8];
        let mut rng = Rng::new(7);
        let mut wait = common::Patience::new("consumer pop", HANG * 10).with_abort(&self.failed);
        while !self.stop.load(Ordering::Relaxed) && !self.failed.load(Ordering::Relaxed) {
            let n = if rng.below(2) == 0 {
                usize::from(self.ring.pop().map(|r| buf[0] = r).is_ok())
            } else {
                self.ring.pop_into(&mut buf[..1 + rng.below(8) as usize])
            };
            if n == 0 {
                wait.wait();
                continue;
            }
            wait.reset();
            let mut tally = self.tally.lock().unwrap();
            for r in &buf[..n] {
                let [id, seq, sum] = *r;
                if sum != checksum(id, seq, !seq) {
                    self.failed.store(true, Ordering::Relaxed);
                    panic!("torn or corrupt record {r:x?}");
                }
                let next = tally.next.entry(id).or_insert(0);
                if id == 0 && seq > *next {
                    let gap = seq - *next;
                    tally.survivor_missing += gap;
                } else if seq != *next {
                    self.failed.store(true, Ordering::Relaxed);
                    panic!("producer {id}: got item {seq} where {} was due", *next);
                }
                *tally.next.entry(id).or_insert(0) = seq + 1;
            }
        }
    }

    fn seen(&self, id: u64) -> u64 {
        self.tally
            .lock()
            .unwrap()
            .next
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    fn survivor_missing(&self) -> u64 {
        self.tally.lock().unwrap().survivor_missing
    }

    /// Waits until the consumer has seen (or skipped over) the survivor's
    /// first `n` items; returns how long that took.
    fn delivered(&self, n: u64, round: u32) -> Duration {
        let t0 = Instant::now();
        let mut wait =
            common::Patience::new("survivor items to be delivered", HANG).with_abort(&self.failed);
        while self.seen(0) < n {
            if t0.elapsed() > HANG / 2 {
                panic!(
                    "round {round}: {} of the survivor's first {n} items delivered; the ring \
                     holds {}: wedged",
                    self.seen(0),
                    self.ring.len()
                );
            }
            wait.wait();
        }
        t0.elapsed()
    }

    /// Runs `body` on a scoped thread that stops the test when it fails.
    fn spawn<'s>(&'s self, s: &'s std::thread::Scope<'s, '_>, body: fn(&Parent)) {
        s.spawn(move || {
            let _failed = OnUnwind(&self.failed);
            body(self);
        });
    }
}

/// Sets its flag when dropped while unwinding: a failing thread stops the others.
struct OnUnwind<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for OnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Stops the parent's threads when the scope's main body ends, also by a panic.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The child that produces: `{name}:{id}:{n}:{k}`. Pushes items 0..n (all
/// of them, or for ever when `n` is 0) with random operations; then, with
/// `n > 0`, arms the claim hook and makes one more push of `k` items (1:
/// `push`, more: `push_slice` or `push_exact`), which stops after its claim.
fn mpmc_child_produce(arg: &str) {
    let mut parts = arg.rsplitn(4, ':');
    let k: u64 = parts.next().unwrap().parse().unwrap();
    let n: u64 = parts.next().unwrap().parse().unwrap();
    let id: u64 = parts.next().unwrap().parse().unwrap();
    let name = parts.next().unwrap();
    let ring = MpmcRing::<Rec, _>::attach(PosixShm::open(name).unwrap().map().unwrap()).unwrap();
    let mut rng = Rng::new(u64::from(std::process::id()) ^ id.wrapping_mul(K));
    let deadline = Instant::now() + HANG;
    let mut seq = 0;
    let mut batch = Vec::new();
    while n == 0 || seq < n {
        if Instant::now() > deadline {
            return; // the parent is gone: do not linger
        }
        let want = 1 + rng.below(8);
        let want = if n == 0 { want } else { want.min(n - seq) };
        batch.clear();
        batch.extend((seq..seq + want).map(|s| rec(id, s)));
        let moved = match rng.below(3) {
            0 => ring.push(rec(id, seq)).map_or(0, |()| 1),
            1 => ring.push_slice(&batch) as u64,
            _ => ring.push_exact(&batch).map_or(0, |()| want),
        };
        if moved == 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
        seq += moved;
    }
    arm(Point::PushClaimed, Action::Call(park));
    batch.clear();
    batch.extend((seq..seq + k).map(|s| rec(id, s)));
    loop {
        // Retry until the claim happens (and parks there).
        let moved = match (k, rng.below(2)) {
            (1, _) => ring.push(batch[0]).map_or(0, |()| 1),
            (_, 0) => ring.push_slice(&batch),
            _ => ring.push_exact(&batch).map_or(0, |()| 1),
        };
        assert_eq!(moved, 0, "the push went through the armed claim hook");
        assert!(Instant::now() < deadline, "could not claim in time");
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The child that consumes: `{name}:{k}`. Arms the claim hook and takes `k`
/// items (1: `pop`, more: `pop_into`), which stops after its claim.
fn mpmc_child_consume(arg: &str) {
    let (name, k) = arg.rsplit_once(':').unwrap();
    let k: usize = k.parse().unwrap();
    let ring = MpmcRing::<Rec, _>::attach(PosixShm::open(name).unwrap().map().unwrap()).unwrap();
    arm(Point::PopClaimed, Action::Call(park));
    let deadline = Instant::now() + HANG;
    let mut buf = vec![[0u64; 3]; k];
    loop {
        let got = if k == 1 {
            usize::from(ring.pop().is_ok())
        } else {
            ring.pop_into(&mut buf)
        };
        assert_eq!(got, 0, "the pop went through the armed claim hook");
        assert!(Instant::now() < deadline, "nothing to take in time");
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The claim hook of a child: tell the parent, then wait to be killed.
fn park() {
    use std::io::Write;
    println!("PARKED");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(HANG);
    std::process::exit(3); // orphaned: do not linger
}

/// A child producer pushing with every kind of push, `kill -9`ed at a
/// random moment. Most kills land outside the claim-to-publish window; the
/// few that land in it leave a hole, which the consumer must skip.
#[test]
fn killed_mpmc_producer_at_random_wedges_nothing() {
    if common::is_child(RANDOM_TEST) {
        mpmc_child_produce(&common::child_arg());
        common::child_done(RANDOM_TEST);
        return;
    }
    let t0 = Instant::now();
    let rounds = mpmc_rounds();
    let mut rng = Rng::from_env("SHM_KILL_SEED");
    // A slow survivor: the ring is rarely full, so the child is mostly in a
    // push (not waiting for room) when it is killed.
    let parent = Parent::new("ring-kill-mpmc", Some(Duration::from_micros(200)));
    let (mut holes, mut hole_rounds, mut worst) = (0, 0, Duration::ZERO);
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&parent.stop);
        parent.spawn(s, Parent::survive);
        parent.spawn(s, Parent::consume);
        for round in 0..rounds {
            let id = u64::from(round) + 1;
            let mut child = Running::child(RANDOM_TEST, &format!("{}:{id}:0:0", parent.name));
            // Wait until it produces, then let it run a random while.
            let mut wait =
                common::Patience::new("the child to produce", HANG).with_abort(&parent.failed);
            while parent.seen(id) == 0 {
                assert!(
                    !child.has_exited(),
                    "round {round}: child exited: {:?}",
                    child.wait(HANG)
                );
                wait.wait();
            }
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
            let skipped = parent.ring.recovered().skipped;
            let out = child.kill9();
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGKILL),
                "round {round}: {out:?}"
            );
            let took = parent.delivered(parent.pushed.load(Ordering::Acquire), round);
            let new_holes = parent.ring.recovered().skipped - skipped;
            if new_holes > 0 {
                holes += new_holes;
                hole_rounds += 1;
                worst = worst.max(took);
            }
        }
        parent.stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(parent.survivor_missing(), 0, "survivor items were lost");
    // Nothing left in the ring but what the survivor pushed last.
    let mut rest = [[0u64; 3]; MPMC_CAP];
    while parent.ring.pop_into(&mut rest) > 0 {}
    assert!(parent.ring.is_empty());
    eprintln!(
        "{rounds} kills in {:?}: {} survivor items, {hole_rounds} rounds killed between claim \
         and publish ({holes} positions skipped, slowest recovery {worst:?}), 0 items lost",
        t0.elapsed(),
        parent.pushed.load(Ordering::Relaxed)
    );
}

/// Every round kills a peer exactly between its claim and its publish or
/// release (stopped there by the fault-injection hook): a producer (rounds
/// alternate single pushes and batches), then a consumer. Items published
/// behind a dead producer's hole all arrive; a dead consumer's slots are
/// freed, its items (and only those) are gone.
#[test]
fn mpmc_peer_killed_between_claim_and_finish_wedges_nothing() {
    if common::is_child(CLAIM_TEST) {
        let arg = common::child_arg();
        match arg.split_once('/') {
            Some(("produce", rest)) => mpmc_child_produce(rest),
            Some(("consume", rest)) => mpmc_child_consume(rest),
            _ => panic!("bad child argument {arg:?}"),
        }
        return;
    }
    let t0 = Instant::now();
    let rounds = mpmc_rounds();
    let mut rng = Rng::from_env("SHM_KILL_SEED");
    let parent = Parent::new("ring-kill-claim", None);
    let mut worst = [Duration::ZERO; 2];
    let mut counts = [0u32; 2];
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&parent.stop);
        parent.spawn(s, Parent::survive);
        parent.spawn(s, Parent::consume);
        for round in 0..rounds {
            let id = u64::from(round) + 1;
            let consumer = round % 2 == 1;
            let k = if rng.below(2) == 0 {
                1
            } else {
                2 + rng.below(7)
            };
            let n = 1 + rng.below(20);
            let arg = if consumer {
                format!("consume/{}:{k}", parent.name)
            } else {
                format!("produce/{}:{id}:{n}:{k}", parent.name)
            };
            let before = parent.ring.recovered();
            let missing = parent.survivor_missing();
            let mut child = Running::child(CLAIM_TEST, &arg);
            let (lines, _) = child.until("PARKED", HANG);
            assert!(lines.iter().all(|l| !l.contains("panicked")), "{lines:?}");
            let out = child.kill9();
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGKILL),
                "round {round}: {out:?}"
            );
            let killed_at = Instant::now();
            // Everything the survivor pushed so far, and two laps more, comes
            // (a lap more passes over a dead consumer's slots).
            let target = parent.pushed.load(Ordering::Acquire) + 2 * MPMC_CAP as u64;
            parent.delivered(target, round);
            let took = killed_at.elapsed();
            let after = parent.ring.recovered();
            if consumer {
                let lost = parent.survivor_missing() - missing;
                let freed = after.reclaimed - before.reclaimed;
                assert!(
                    (1..=k).contains(&lost) && freed == lost && after.skipped == before.skipped,
                    "round {round}: a consumer killed with a claim of at most {k}: \
                     {lost} survivor items missing, {freed} slots freed"
                );
            } else {
                assert_eq!(
                    parent.seen(id),
                    n,
                    "round {round}: the dead producer's items"
                );
                let skipped = after.skipped - before.skipped;
                assert!(
                    (1..=k).contains(&skipped) && after.reclaimed == before.reclaimed,
                    "round {round}: a producer killed with a claim of at most {k}: \
                     {skipped} positions skipped"
                );
                assert_eq!(
                    parent.survivor_missing(),
                    missing,
                    "round {round}: items lost"
                );
            }
            let side = usize::from(consumer);
            worst[side] = worst[side].max(took);
            counts[side] += 1;
        }
        parent.stop.store(true, Ordering::Relaxed);
    });
    let r = parent.ring.recovered();
    eprintln!(
        "{rounds} kills between claim and finish in {:?}: {} producers ({} positions skipped, \
         slowest recovery {:?}), {} consumers ({} slots reclaimed, slowest {:?}), \
         0 published items lost",
        t0.elapsed(),
        counts[0],
        r.skipped,
        worst[0],
        counts[1],
        r.reclaimed,
        worst[1]
    );
}
