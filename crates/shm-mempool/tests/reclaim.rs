//! `kill -9` of processes that hold blocks, and what `reclaim_dead` and
//! `recover_orphans` give back.
//!
//! 1. Rounds of: a child (this test binary run again) attaches a channel by
//!    name, takes K blocks and keeps them, sends S more into the channel,
//!    turns I more into ids it keeps (`into_id`: in transit), reports all
//!    their ids on stdout, and waits to be killed. While it lives,
//!    `reclaim_dead` gives back nothing and `stats` counts nothing dead. The
//!    parent kills it with `SIGKILL`; then `stats` counts K blocks held by
//!    the dead, and `reclaim_dead` returns exactly the K ids (as a set;
//!    every other round before the child is reaped, as a zombie), never the
//!    parent's own blocks and never a block in transit or queued; the S sent
//!    blocks stay queued and the parent receives them, in order, with the
//!    child's stamps; the I ids stay in transit (only the dead child knew
//!    them) until `recover_orphans` frees exactly them; then all N blocks
//!    can be taken again, and the child's owner slot is free.
//! 2. A child that holds blocks and lives: `reclaim_dead` leaves them alone
//!    until it gives them back itself.
//! 3. Children killed at random moments while they churn through a bare
//!    pool: `reclaim_dead` alone makes every block free, held or in transit
//!    again, with every free block on the free list (a kill in the middle
//!    of a `get` or a give-back leaves nothing for `recover_orphans`); then
//!    `recover_orphans` frees exactly the ids the dead held.
//! 4. A pid that was reused: a slot recorded with our pid but another start
//!    time belongs to a dead process.
//! 5. A receiver killed after taking a block, before emptying its queue
//!    cell: the next receiver empties the cell and gets the next message,
//!    and sends go on (no ring slot stays busy).
//!
//! Rounds: `SHM_RECLAIM_ROUNDS` (default 6; test 3 runs 4x as many).
//! Seed: `SHM_RECLAIM_SEED`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{check_stamp, stamp, Rng, Running, Stamp, HANG};
use shm_mempool::{BlockId, Channel, ChannelOptions, MemPool, PoolError};
use shm_segment::{HeapRegion, PosixOptions, PosixShm, ProcessId, Region};

const BLOCKS: usize = 16;
const SIZE: usize = 128;

fn rounds() -> u32 {
    std::env::var("SHM_RECLAIM_ROUNDS")
        .ok()
        .map(|s| s.parse().expect("SHM_RECLAIM_ROUNDS must be a number"))
        .unwrap_or(6)
}

/// Parses "word id id id" lines into ids.
fn ids(lines: &[String], word: &str) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(word))
        .map(|id| id.trim().parse().unwrap())
        .collect()
}

/// The state letter of `/proc/PID/stat` (after the command in parentheses).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// A child side that never ends by itself: waits to be killed, but gives
/// up after `HANG` so an orphan never lingers.
fn wait_to_be_killed() -> ! {
    std::thread::sleep(HANG);
    std::process::exit(3);
}

const HOLD_TEST: &str = "killed_holder_blocks_are_reclaimed_sent_blocks_delivered";

#[test]
fn killed_holder_blocks_are_reclaimed_sent_blocks_delivered() {
    if common::is_child(HOLD_TEST) {
        let arg = common::child_arg();
        let parts: Vec<&str> = arg.split(':').collect();
        let (hold, send, keep): (usize, usize, usize) = (
            parts[1].parse().unwrap(),
            parts[2].parse().unwrap(),
            parts[3].parse().unwrap(),
        );
        let shm = PosixShm::open(parts[0]).unwrap();
        let map = shm.map().unwrap();
        let ch = Channel::attach(&map).unwrap();
        let pid = std::process::id();
        let mut kept = Vec::new();
        for seq in 0..(hold + send + keep) as u64 {
            let block = ch.get().expect("the parent left enough free blocks");
            block.write_pod(0, &stamp(pid, seq)).unwrap();
            block.set_used(24);
            if kept.len() < hold {
                println!("held {}", block.id().0);
                kept.push(block);
            } else if seq < (hold + send) as u64 {
                println!("sent {}", block.id().0);
                ch.send(block).expect("send");
            } else {
                println!("id {}", block.into_id().unwrap().0);
            }
        }
        println!("ready");
        wait_to_be_killed();
    }

    let t0 = Instant::now();
    let mut rng = Rng::from_env("SHM_RECLAIM_SEED");
    let name = common::posix_name("reclaim");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, Channel::required_size(BLOCKS, SIZE))
        .unwrap();
    let map = shm.map().unwrap();
    let ch = Channel::create_with(&map, BLOCKS, SIZE, ChannelOptions::new()).unwrap();
    let pool = ch.pool();
    let me = ProcessId::current().pid;
    let (mut total_reclaimed, mut zombies) = (0, 0);

    for round in 0..rounds() {
        // The parent keeps a few blocks of its own through the whole round.
        let mine: Vec<_> = (0..rng.below(3)).map(|_| ch.get().unwrap()).collect();
        let mine_ids: BTreeSet<u32> = mine.iter().map(|b| b.id().0).collect();
        let left = BLOCKS as u64 - mine.len() as u64;
        let hold = rng.below(left + 1);
        let send = rng.below(left - hold + 1);
        let keep = rng.below(left - hold - send + 1);
        let mut child = Running::child(HOLD_TEST, &format!("{name}:{hold}:{send}:{keep}"));
        let pid = child.id();
        let (lines, _) = child.until("ready", HANG);
        let held: BTreeSet<u32> = ids(&lines, "held ").into_iter().collect();
        let sent = ids(&lines, "sent ");
        let kept: BTreeSet<u32> = ids(&lines, "id ").into_iter().collect();
        assert_eq!(
            (held.len() as u64, sent.len() as u64, kept.len() as u64),
            (hold, send, keep)
        );

        // Alive: nothing to reclaim; the stats name the child.
        assert!(pool.reclaim_dead().unwrap().is_empty(), "round {round}");
        let s = pool.stats();
        let mut owners = vec![(me, mine.len()), (pid, hold as usize)];
        owners.retain(|&(_, n)| n > 0);
        owners.sort_unstable();
        assert_eq!(s.by_owner, owners, "round {round}");
        assert_eq!((s.in_transit, s.queued), (keep as usize, send as usize));
        assert_eq!(s.dead, 0, "round {round}: {s:?}");

        // kill -9; every other round, reclaim while it is still a zombie.
        let zombie = round % 2 == 1;
        let status = if zombie {
            // SAFETY: kill(2) on our own child, not reaped yet (`child`
            // reaps it below), so the pid is still the child's.
            let ret = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            assert_eq!(ret, 0);
            assert!(
                common::wait_until(HANG, || proc_state(pid) == Some('Z')),
                "round {round}: the child did not become a zombie"
            );
            zombies += 1;
            None
        } else {
            Some(child.kill9().status)
        };

        // Dead once the kernel has closed its files, which for a killed
        // multi-threaded process can come a moment after its main thread
        // shows `Z`.
        assert!(
            common::wait_until(HANG, || pool.stats().dead == hold as usize),
            "round {round}: {:?}",
            pool.stats()
        );
        let reclaimed: Vec<u32> = pool.reclaim_dead().unwrap().iter().map(|b| b.0).collect();
        let reclaimed_set: BTreeSet<u32> = reclaimed.iter().copied().collect();
        assert_eq!(
            reclaimed.len(),
            reclaimed_set.len(),
            "an id twice: {reclaimed:?}"
        );
        assert_eq!(
            reclaimed_set, held,
            "round {round}: reclaimed not what the child held"
        );
        assert!(pool.reclaim_dead().unwrap().is_empty(), "reclaimed twice");
        total_reclaimed += reclaimed.len();
        let status = status.unwrap_or_else(|| child.wait(HANG).status);
        assert_eq!(status.signal(), Some(libc::SIGKILL), "round {round}");

        // The sent blocks are the channel's: still queued, delivered in
        // order. The kept ids are in transit, and stay so.
        let s = pool.stats();
        assert_eq!(
            (s.held, s.in_transit, s.queued, s.free, s.dead),
            (
                mine.len(),
                keep as usize,
                send as usize,
                BLOCKS - mine.len() - (send + keep) as usize,
                0
            ),
            "round {round}: {s:?}"
        );
        assert_eq!(pool.check().unwrap(), s.free, "round {round}");
        // Nothing refers to the kept ids any more: recover_orphans frees
        // exactly them (queued blocks are not in transit: never touched).
        let recovered: BTreeSet<u32> = pool
            .recover_orphans(&[])
            .unwrap()
            .iter()
            .map(|b| b.0)
            .collect();
        assert_eq!(recovered, kept, "round {round}: recovered not the kept ids");
        let owners = if mine.is_empty() {
            vec![]
        } else {
            vec![(me, mine.len())]
        };
        assert_eq!(
            s.by_owner, owners,
            "round {round}: the parent's blocks were touched"
        );
        for (i, &id) in sent.iter().enumerate() {
            let block = ch.recv().expect("a sent block");
            assert_eq!(block.id().0, id, "round {round}: not in send order");
            assert_eq!(block.used(), 24);
            let (from, seq) = check_stamp(&block.read_pod::<Stamp>(0).unwrap());
            assert_eq!((from, seq), (pid, hold + i as u64));
        }
        assert!(ch.is_empty());
        for b in &mine {
            assert!(mine_ids.contains(&b.id().0));
        }
        drop(mine);

        // The pool goes on: every block can be taken again, then given back.
        let all: Vec<_> = (0..BLOCKS).map(|_| pool.get().unwrap()).collect();
        let distinct: BTreeSet<u32> = all.iter().map(|b| b.id().0).collect();
        assert_eq!(distinct.len(), BLOCKS);
        assert!(matches!(pool.get(), Err(PoolError::Exhausted { .. })));
        drop(all);
        assert_eq!(pool.check().unwrap(), BLOCKS);
    }
    eprintln!(
        "{} rounds in {:?}: {total_reclaimed} blocks reclaimed, {zombies} rounds from a zombie",
        rounds(),
        t0.elapsed()
    );
}

const LIVE_TEST: &str = "reclaim_leaves_blocks_of_live_processes_alone";

#[test]
fn reclaim_leaves_blocks_of_live_processes_alone() {
    // The segment: the pool, then one word the parent sets to say "give back".
    let offset = MemPool::required_size(BLOCKS, SIZE).next_multiple_of(64);
    if common::is_child(LIVE_TEST) {
        let shm = PosixShm::open(&common::child_arg()).unwrap();
        let map = shm.map().unwrap();
        let pool = MemPool::attach(&map).unwrap();
        let held: Vec<_> = (0..5).map(|_| pool.get().unwrap()).collect();
        let as_id = pool.get().unwrap().into_id().unwrap();
        println!("id {}", as_id.0);
        println!("ready");
        let go = map.atomic_u64(offset).unwrap();
        assert!(
            common::wait_until(HANG, || go.load(Ordering::Acquire) == 1),
            "never told to give back"
        );
        drop(held);
        pool.put(as_id).unwrap();
        common::child_done(LIVE_TEST);
        return;
    }

    let name = common::posix_name("reclaim-live");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, offset + 64)
        .unwrap();
    let map = shm.map().unwrap();
    let pool = MemPool::create(&map, BLOCKS, SIZE).unwrap();
    let mut child = Running::child(LIVE_TEST, &name);
    let (lines, _) = child.until("ready", HANG);
    // The child's id in transit: still meant to be claimed, so listed.
    let in_transit: Vec<BlockId> = ids(&lines, "id ").into_iter().map(BlockId).collect();
    assert_eq!(in_transit.len(), 1);
    for _ in 0..10 {
        assert!(pool.reclaim_dead().unwrap().is_empty());
        assert!(pool.recover_orphans(&in_transit).unwrap().is_empty());
        // Five guards; the sixth block is in transit, owned by nobody.
        assert_eq!(pool.stats().by_owner, vec![(child.id(), 5)]);
        assert_eq!(pool.stats().in_transit, 1);
        std::thread::sleep(Duration::from_millis(2));
    }
    map.atomic_u64(offset).unwrap().store(1, Ordering::Release);
    child.wait(HANG).assert_child_passed(LIVE_TEST);
    let s = pool.stats();
    assert_eq!((s.free, s.held), (BLOCKS, 0), "{s:?}");
    assert!(pool.reclaim_dead().unwrap().is_empty());
    assert_eq!(pool.check().unwrap(), BLOCKS);
}

const CHURN_TEST: &str = "killed_at_random_moments_the_pool_comes_back_whole";

#[test]
fn killed_at_random_moments_the_pool_comes_back_whole() {
    if common::is_child(CHURN_TEST) {
        let shm = PosixShm::open(&common::child_arg()).unwrap();
        let map = shm.map().unwrap();
        let pool = MemPool::attach(&map).unwrap();
        let mut rng = Rng::new(u64::from(std::process::id()));
        let mut guards = Vec::new();
        let mut ids = Vec::new();
        println!("ready");
        let deadline = Instant::now() + HANG;
        while Instant::now() < deadline {
            match rng.below(6) {
                0 | 1 if guards.len() + ids.len() < 8 => {
                    if let Ok(b) = pool.get() {
                        guards.push(b);
                    }
                }
                2 if !guards.is_empty() => {
                    let b = guards.swap_remove(0);
                    ids.push(b.into_id().unwrap());
                }
                3 if !ids.is_empty() => {
                    let id = ids.swap_remove(0);
                    guards.push(pool.from_id(id).unwrap());
                }
                4 if !ids.is_empty() => pool.put(ids.swap_remove(0)).unwrap(),
                _ if !guards.is_empty() => drop(guards.swap_remove(0)),
                _ => {}
            }
        }
        wait_to_be_killed();
    }

    let mut rng = Rng::from_env("SHM_RECLAIM_SEED");
    let name = common::posix_name("reclaim-churn");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, MemPool::required_size(BLOCKS, SIZE))
        .unwrap();
    let map = shm.map().unwrap();
    let pool = MemPool::create(&map, BLOCKS, SIZE).unwrap();
    let (mut reclaimed, mut orphans) = (0, 0);
    let t0 = Instant::now();
    let rounds = rounds() * 4;
    for round in 0..rounds {
        // Two children at once, killed one after the other.
        let mut children: Vec<Running> =
            (0..2).map(|_| Running::child(CHURN_TEST, &name)).collect();
        for c in &mut children {
            c.until("ready", HANG);
        }
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        for mut c in children {
            let status = c.kill9().status;
            assert_eq!(status.signal(), Some(libc::SIGKILL), "round {round}");
        }
        let back = pool.reclaim_dead().unwrap();
        // No orphan of a kill mid-operation is left: every block is free
        // (and listed) or a bare id only the dead knew.
        let s = pool.stats();
        assert_eq!(
            (s.free + s.in_transit, s.held, s.queued, s.unknown),
            (BLOCKS, 0, 0, 0),
            "round {round}: {s:?}"
        );
        assert_eq!(pool.check().unwrap(), s.free, "round {round}: {s:?}");
        let found = pool.recover_orphans(&[]).unwrap();
        assert_eq!(found.len(), s.in_transit, "round {round}");
        let a: BTreeSet<BlockId> = back.iter().copied().collect();
        let b: BTreeSet<BlockId> = found.iter().copied().collect();
        assert!(
            a.is_disjoint(&b),
            "round {round}: reclaimed and recovered {back:?} {found:?}"
        );
        assert_eq!((a.len(), b.len()), (back.len(), found.len()), "an id twice");
        reclaimed += back.len();
        orphans += found.len();
        let s = pool.stats();
        assert_eq!(
            (s.free, s.held, s.in_transit, s.unknown),
            (BLOCKS, 0, 0, 0),
            "round {round}: {s:?}"
        );
        assert_eq!(pool.check().unwrap(), BLOCKS, "round {round}");
    }
    eprintln!(
        "{rounds} rounds of 2 kills in {:?}: {reclaimed} blocks reclaimed, {orphans} ids the \
         dead held recovered",
        t0.elapsed()
    );
}

#[test]
fn a_block_of_a_reused_pid_is_reclaimed() {
    let region = HeapRegion::new(MemPool::required_size(4, 64));
    let pool = MemPool::create(&region, 4, 64).unwrap();
    let me = ProcessId::current();
    let stolen = pool.get().unwrap().into_id().unwrap();
    let mine = pool.get().unwrap();
    // Same pid, other start time: the process that had our pid before us,
    // holding the block through owner slot 9.
    common::steal_for_the_dead(&region, 9, stolen.0);
    assert_eq!(pool.stats().by_owner, vec![(me.pid, 2)]);
    assert_eq!(pool.stats().dead, 1);
    assert_eq!(pool.reclaim_dead().unwrap(), vec![stolen]);
    assert_eq!(
        common::owner(&region, 9),
        0,
        "the dead owner's slot is free again"
    );
    assert_eq!(pool.stats().held, 1);
    assert_eq!(pool.check().unwrap(), 3);
    drop(mine);
    assert_eq!(pool.check().unwrap(), 4);
}

/// A receiver killed after it took a block (the block's word says held by
/// it) but before it emptied the queue cell, or after it emptied the cell
/// but before moving the head on: the next receiver finishes that and gets
/// the next message; sends never find the queue full; `reclaim_dead` gives
/// the dead receiver's block back. (With the ring of ids the channel had
/// before, such a receiver kept its ring slot busy for good, and sends
/// failed one lap later.)
#[test]
fn a_receiver_killed_mid_recv_wedges_nothing() {
    const N: usize = 4;
    let region = HeapRegion::new(Channel::required_size(N, 64));
    let ch = Channel::create_with(&region, N, 64, ChannelOptions::new()).unwrap();
    let pool_region = shm_segment::SubRegion::new(
        &region,
        common::CHANNEL_POOL,
        Channel::required_size(N, 64) - common::CHANNEL_POOL,
    )
    .unwrap();
    for round in 0..3 * N {
        ch.send_bytes(&[round as u8; 8]).unwrap();
        ch.send_bytes(&[round as u8 + 100; 8]).unwrap();
        // A receiver in a dead process took the first block: its word says
        // held through the dead's slot, its cell still names it.
        let head = pool_region
            .load_u64(common::SENT_HEAD, Ordering::Acquire)
            .unwrap();
        let cell = pool_region
            .load_u64(common::sent_cell_off(N as u32, head % 4), Ordering::Acquire)
            .unwrap();
        let taken = cell as u32;
        assert_eq!(
            common::state(common::raw_word(&pool_region, taken)),
            common::QUEUED
        );
        common::steal_for_the_dead(&pool_region, 50, taken);
        let next = ch.recv().unwrap();
        assert_eq!(next.read_pod::<u8>(0).unwrap(), round as u8 + 100);
        assert_ne!(next.id().0, taken);
        drop(next);
        assert!(ch.is_empty());
        assert_eq!(ch.pool().reclaim_dead().unwrap(), vec![BlockId(taken)]);
        assert_eq!(ch.pool().check().unwrap(), N, "round {round}");
    }
    // Every block can be sent at once: the queue has a cell for each.
    for i in 0..N {
        ch.send_bytes(&[i as u8]).unwrap();
    }
    assert_eq!(ch.len(), N);
    assert!(matches!(
        ch.send_bytes(b"x"),
        Err(PoolError::Exhausted { .. })
    ));
}
