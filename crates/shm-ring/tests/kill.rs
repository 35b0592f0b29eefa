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

mod common;

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Rng, Running, HANG};
use shm_ring::{Consumer, RingError, RingOptions, SpscRing};
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
        .create(&name, SpscRing::<Record, ()>::required_size(CAP) as u64)
        .unwrap();
    let map = shm.map().unwrap();
    let ring = SpscRing::<Record, _>::create(&map, CAP as u64, RingOptions::new()).unwrap();
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
