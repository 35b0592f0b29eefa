//! Conservation with real processes.
//!
//! 1. A channel in a POSIX segment, attached by name by three children (this
//!    test binary run again): two senders fill blocks in place with
//!    `(pid, seq, checksum)` at both ends of the block and send them; one
//!    child (at most half of them) and the parent receive, check and drop
//!    them. The parent samples
//!    the pool all along: free + held + queued is always N, nothing is in
//!    transit (a send queues the block directly), no record is in an
//!    unknown state, every held block belongs to one of the processes, and
//!    `reclaim_dead` finds nothing (everyone is alive). At the end every
//!    message arrived exactly once with a valid checksum, and the pool is
//!    whole (N free, `check()` walks N, nothing to recover). The queue has a
//!    cell for every block, so a send never finds it full.
//! 2. A bare pool in a POSIX segment: three children take and give back
//!    blocks at random (guards, `into_id` + `put`, `into_id` + `from_id`),
//!    stamping each block they take and checking the stamp is still theirs
//!    before they give it back (two holders of one block would clobber each
//!    other's stamp). The parent samples as above.
//!
//! Seeds: `SHM_PROCESSES_SEED`.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{check_stamp, stamp, Patience, Rng, Running, Stamp, HANG};
use shm_mempool::{Block, Channel, ChannelOptions, MemPool, PoolError, RecvError};
use shm_segment::{PosixOptions, PosixShm, ProcessId, Region};

const BLOCKS: usize = 32;
const BLOCK_SIZE: usize = 256;
/// Messages per sender.
const MESSAGES: u64 = 10_000;
const SENDERS: usize = 2;

/// Where the test's own counter lives: past the channel, in the same segment.
fn counter_offset() -> usize {
    Channel::required_size(BLOCKS, BLOCK_SIZE).next_multiple_of(64)
}

/// Checks a received block: the same valid stamp at both ends; returns it.
fn read_message<R: Region>(block: &Block<'_, R>) -> (u32, u64) {
    assert_eq!(
        block.used(),
        BLOCK_SIZE,
        "used() is not what the sender set"
    );
    let head: Stamp = block.read_pod(0).unwrap();
    let tail: Stamp = block.read_pod(BLOCK_SIZE - 24).unwrap();
    assert_eq!(head, tail, "block {} is torn", block.id().0);
    check_stamp(&head)
}

/// One stats sample: the counts add up and every owner is one of `pids`.
/// Returns how many blocks were in flight (held or in transit).
fn sample<R: Region>(pool: &MemPool<R>, pids: &[u32]) -> usize {
    let s = pool.stats();
    assert_eq!(
        s.free + s.held + s.queued,
        BLOCKS,
        "counts do not add up: {s:?}"
    );
    assert_eq!(
        (s.unknown, s.in_transit, s.dead),
        (0, 0, 0),
        "a record in no known state, in transit or held by the dead: {s:?}"
    );
    let by_owner: usize = s.by_owner.iter().map(|&(_, n)| n).sum();
    assert_eq!(by_owner, s.held, "{s:?}");
    for (pid, _) in &s.by_owner {
        assert!(
            pids.contains(pid),
            "a block held by pid {pid}, no process of this test: {s:?}"
        );
    }
    s.held + s.queued
}

const CHANNEL_TEST: &str = "channel_messages_arrive_exactly_once_across_processes";

fn sender(name: &str) {
    let shm = PosixShm::open(name).unwrap();
    let map = shm.map().unwrap();
    let ch = Channel::attach(&map).unwrap();
    let pid = std::process::id();
    let mut patience = Patience::new("sender: a free block", HANG);
    for seq in 0..MESSAGES {
        let block = loop {
            match ch.get() {
                Ok(block) => break block,
                Err(PoolError::Exhausted { .. }) => patience.wait(),
                Err(e) => panic!("alloc: {e}"),
            }
        };
        patience.reset();
        let s = stamp(pid, seq);
        block.write_pod(0, &s).unwrap();
        block.write_pod(BLOCK_SIZE - 24, &s).unwrap();
        block.set_used(BLOCK_SIZE);
        // The queue has a cell for every block: a send never finds it full.
        if let Err(e) = ch.send(block) {
            panic!("send: {e}");
        }
    }
    println!("sent {MESSAGES}");
}

fn receiver(name: &str, total: u64) {
    let shm = PosixShm::open(name).unwrap();
    let map = shm.map().unwrap();
    let ch = Channel::attach(&map).unwrap();
    let received = map.atomic_u64(counter_offset()).unwrap();
    let deadline = Instant::now() + HANG;
    let mut mine = 0u64;
    // At most half: the parent receives the rest, so its samples overlap the
    // traffic whatever the scheduler does.
    while received.load(Ordering::Acquire) < total && mine < total / 2 {
        assert!(Instant::now() < deadline, "receiver: no end after {HANG:?}");
        match ch.recv_blocking(Duration::from_millis(20)) {
            Ok(block) => {
                let (pid, seq) = read_message(&block);
                println!("got {pid} {seq}");
                drop(block);
                received.fetch_add(1, Ordering::AcqRel);
                mine += 1;
            }
            Err(RecvError::Empty) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    println!("received {mine}");
}

#[test]
fn channel_messages_arrive_exactly_once_across_processes() {
    if common::is_child(CHANNEL_TEST) {
        let arg = common::child_arg();
        let mut parts = arg.split(':');
        let (name, role) = (parts.next().unwrap(), parts.next().unwrap());
        match role {
            "send" => sender(name),
            "recv" => receiver(name, parts.next().unwrap().parse().unwrap()),
            other => panic!("unknown role {other}"),
        }
        common::child_done(CHANNEL_TEST);
        return;
    }

    let t0 = Instant::now();
    let total = MESSAGES * SENDERS as u64;
    let name = common::posix_name("chan");
    let size = counter_offset() + 64;
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, size)
        .unwrap();
    let map = shm.map().unwrap();
    let opts = ChannelOptions::new().blocking(true);
    let ch = Channel::create_with(&map, BLOCKS, BLOCK_SIZE, opts).unwrap();
    let received = map.atomic_u64(counter_offset()).unwrap();

    let mut children: Vec<Running> = (0..SENDERS)
        .map(|_| Running::child(CHANNEL_TEST, &format!("{name}:send")))
        .collect();
    children.push(Running::child(
        CHANNEL_TEST,
        &format!("{name}:recv:{total}"),
    ));
    let mut pids: Vec<u32> = children.iter().map(Running::id).collect();
    pids.push(std::process::id());

    let mut got: Vec<(u32, u64)> = Vec::new();
    let mut samples = 0u64;
    let mut in_flight = 0u64;
    let mut last_progress = Instant::now();
    while received.load(Ordering::Acquire) < total {
        // Sample, receive one, sample again: the parent's own block shows
        // in the second sample.
        if sample(ch.pool(), &pids) > 0 {
            in_flight += 1;
        }
        match ch.recv() {
            Ok(block) => {
                got.push(read_message(&block));
                sample(ch.pool(), &pids);
                let mine = ch.pool().stats().by_owner;
                assert!(
                    mine.iter()
                        .any(|&(pid, n)| pid == std::process::id() && n >= 1),
                    "the parent holds a block, stats do not say so: {mine:?}"
                );
                drop(block);
                received.fetch_add(1, Ordering::AcqRel);
                last_progress = Instant::now();
            }
            Err(RecvError::Empty) => {
                if last_progress.elapsed() > HANG {
                    let state = format!(
                        "received {} of {total}, the queue holds {}, pool {:?}, check {:?}",
                        received.load(Ordering::Acquire),
                        ch.len(),
                        ch.pool().stats(),
                        ch.pool().check()
                    );
                    let outs: Vec<_> = children.iter_mut().map(Running::kill9).collect();
                    panic!("no message for {HANG:?}: {state}\n{outs:#?}");
                }
                std::thread::yield_now();
            }
            Err(e) => panic!("recv: {e}"),
        }
        assert!(ch.len() <= BLOCKS);
        if samples % 64 == 0 {
            let dead = ch.pool().reclaim_dead().unwrap();
            assert!(
                dead.is_empty(),
                "reclaimed blocks of live processes: {dead:?}"
            );
        }
        samples += 1;
    }

    let mut per_receiver = vec![got.len()];
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait(HANG);
        out.assert_child_passed(CHANNEL_TEST);
        if i == SENDERS {
            let mut n = 0;
            for line in common::child_lines(&out.stdout) {
                if let Some(rest) = line.strip_prefix("got ") {
                    let (pid, seq) = rest.split_once(' ').unwrap();
                    got.push((pid.parse().unwrap(), seq.parse().unwrap()));
                    n += 1;
                }
            }
            per_receiver.push(n);
        }
    }

    // Exactly once: every sender's 0..MESSAGES, no duplicate, nothing else.
    assert_eq!(
        got.len() as u64,
        total,
        "{} messages for {total} sent",
        got.len()
    );
    let mut by_sender: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (pid, seq) in got {
        by_sender.entry(pid).or_default().push(seq);
    }
    assert_eq!(by_sender.len(), SENDERS, "senders: {:?}", by_sender.keys());
    for (pid, mut seqs) in by_sender {
        assert!(pids[..SENDERS].contains(&pid), "a message from pid {pid}");
        seqs.sort_unstable();
        let expect: Vec<u64> = (0..MESSAGES).collect();
        assert!(seqs == expect, "sender {pid}: lost or duplicated messages");
    }

    // The pool is whole.
    let s = ch.pool().stats();
    assert_eq!(
        (s.free, s.held, s.in_transit, s.queued, s.unknown),
        (BLOCKS, 0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(ch.pool().check().unwrap(), BLOCKS);
    assert!(ch.is_empty());
    assert!(ch.pool().reclaim_dead().unwrap().is_empty());
    assert!(ch.pool().recover_orphans(&[]).unwrap().is_empty());
    eprintln!(
        "{total} messages in {:?}; parent and child received {per_receiver:?}; \
         {samples} samples, {in_flight} with blocks in flight",
        t0.elapsed()
    );
    assert!(
        per_receiver[0] as u64 >= total / 2,
        "the parent received {per_receiver:?}"
    );
}

const POOL_TEST: &str = "pool_counts_add_up_while_processes_churn";
const POOL_BLOCKS: usize = 16;
const CHURN_OPS: u64 = 20_000;
/// Blocks one child holds at most.
const HOLD: usize = 7;

/// A block this child holds: as a guard or as a bare id.
enum Held<'p, R: Region> {
    Guard(Block<'p, R>),
    Id(shm_mempool::BlockId, Stamp),
}

fn churn(name: &str, seed: u64) {
    let shm = PosixShm::open(name).unwrap();
    let map = shm.map().unwrap();
    let pool = MemPool::attach(&map).unwrap();
    let pid = std::process::id();
    let mut rng = Rng::new(seed ^ u64::from(pid));
    let mut held: Vec<Held<'_, _>> = Vec::new();
    let (mut taken, mut exhausted, mut seq) = (0u64, 0u64, 0u64);
    let verify = |block: &Block<'_, _>, s: &Stamp| {
        let head: Stamp = block.read_pod(0).unwrap();
        let tail: Stamp = block.read_pod(block.len() - 24).unwrap();
        assert_eq!(
            (&head, &tail),
            (s, s),
            "block {} was written by someone else while this process held it",
            block.id().0
        );
    };
    for _ in 0..CHURN_OPS {
        match rng.below(8) {
            0..=3 if held.len() < HOLD => match pool.get() {
                Ok(block) => {
                    let s = stamp(pid, seq);
                    seq += 1;
                    block.write_pod(0, &s).unwrap();
                    block.write_pod(block.len() - 24, &s).unwrap();
                    taken += 1;
                    if rng.below(3) == 0 {
                        held.push(Held::Id(block.into_id().unwrap(), s));
                    } else {
                        held.push(Held::Guard(block));
                    }
                }
                Err(PoolError::Exhausted { .. }) => {
                    exhausted += 1;
                    std::thread::yield_now();
                }
                Err(e) => panic!("get: {e}"),
            },
            0..=5 if !held.is_empty() => {
                let i = rng.below(held.len() as u64) as usize;
                match held.swap_remove(i) {
                    Held::Guard(block) => {
                        let s: Stamp = block.read_pod(0).unwrap();
                        assert_eq!(check_stamp(&s).0, pid);
                        verify(&block, &s);
                    }
                    Held::Id(id, s) => {
                        // Take it back over (a hand-off to oneself), check, give back by id.
                        let block = pool.from_id(id).unwrap();
                        verify(&block, &s);
                        pool.put(block.into_id().unwrap()).unwrap();
                    }
                }
            }
            _ => std::thread::yield_now(),
        }
    }
    for h in held {
        if let Held::Id(id, _) = h {
            pool.put(id).unwrap();
        }
    }
    println!("took {taken} blocks, found the pool exhausted {exhausted} times");
}

#[test]
fn pool_counts_add_up_while_processes_churn() {
    if common::is_child(POOL_TEST) {
        let arg = common::child_arg();
        let (name, seed) = arg.rsplit_once(':').unwrap();
        churn(name, seed.parse().unwrap());
        common::child_done(POOL_TEST);
        return;
    }

    let t0 = Instant::now();
    let mut rng = Rng::from_env("SHM_PROCESSES_SEED");
    let name = common::posix_name("pool-churn");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, MemPool::required_size(POOL_BLOCKS, 128))
        .unwrap();
    let map = shm.map().unwrap();
    let pool = MemPool::create(&map, POOL_BLOCKS, 128).unwrap();
    let mut children: Vec<Running> = (0..3)
        .map(|_| Running::child(POOL_TEST, &format!("{name}:{}", rng.next_u64())))
        .collect();
    let pids: Vec<u32> = children.iter().map(Running::id).collect();
    let me = ProcessId::current().pid;

    let deadline = Instant::now() + HANG;
    let (mut samples, mut max_held) = (0u64, 0usize);
    while !children.iter_mut().all(Running::has_exited) {
        assert!(
            Instant::now() < deadline,
            "children still running after {HANG:?}"
        );
        let s = pool.stats();
        assert_eq!(
            s.free + s.held + s.in_transit + s.queued + s.unknown,
            POOL_BLOCKS,
            "{s:?}"
        );
        assert_eq!(s.unknown, 0, "{s:?}");
        assert!(
            s.by_owner
                .iter()
                .all(|(pid, _)| pids.contains(pid) && *pid != me),
            "a block held by no child: {s:?}"
        );
        max_held = max_held.max(s.held);
        if samples % 32 == 0 {
            assert!(
                pool.reclaim_dead().unwrap().is_empty(),
                "reclaimed a live child's block"
            );
        }
        samples += 1;
        std::thread::yield_now();
    }
    for child in children {
        let out = child.wait(HANG);
        out.assert_child_passed(POOL_TEST);
        let summary = common::child_lines(&out.stdout).find(|l| l.starts_with("took"));
        eprintln!("child: {}", summary.unwrap_or("(no summary)"));
    }
    let s = pool.stats();
    assert_eq!((s.free, s.held), (POOL_BLOCKS, 0), "{s:?}");
    assert_eq!(pool.check().unwrap(), POOL_BLOCKS);
    assert!(pool.recover_orphans(&[]).unwrap().is_empty());
    eprintln!(
        "3 children x {CHURN_OPS} ops in {:?}: {samples} samples, at most {max_held} held",
        t0.elapsed()
    );
    assert!(max_held > 0, "no sample saw a held block");
}
