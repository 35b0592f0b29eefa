//! [`AnonShared`] across `fork(2)`: memory mapped before the fork is shared
//! by parent and child, both ways.
//!
//! `fork` in a multi-threaded process is a trap (only the forking thread
//! survives, holding whatever locks the others held), so this target runs
//! without the test harness (`harness = false` in Cargo.toml): `main` is
//! single-threaded, runs each case, prints `N passed, M failed` and exits
//! non-zero on failure. A child never returns into `main`: it ends with
//! `_exit`, also when its body panics.
//!
//! Arguments: a bare word runs only the cases whose name contains it;
//! `--list` lists the cases; other flags (`--nocapture`…) are ignored.

mod common;

use std::sync::atomic::Ordering;

use common::{
    check, run_cases, Case, CaseResult, Forked, HANDSHAKE_TIMEOUT, MISMATCH, OK, TIMED_OUT,
};
use shm_segment::{AnonShared, Region};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The child writes, exits; the parent reaps it with `waitpid` and reads.
fn child_writes_parent_reads_after_waitpid() -> CaseResult {
    let region = AnonShared::new(64 * 1024).map_err(err)?;
    region
        .write_at(0, b"written before the fork")
        .map_err(err)?;
    let mut child = Forked::spawn(|| {
        let mut before = [0u8; 23];
        region.read_at(0, &mut before).unwrap();
        if &before != b"written before the fork" {
            return MISMATCH;
        }
        region.write_pod(64, &std::process::id()).unwrap();
        region.write_at(128, b"written by the child").unwrap();
        let end = region.len() - 8;
        region.write_pod(end, &0xC0FF_EE00_D15E_A5E5_u64).unwrap();
        OK
    })?;
    let code = child.wait(HANDSHAKE_TIMEOUT)?;
    check(code == OK, || format!("child exit code {code}"))?;

    let pid: u32 = region.read_pod(64).map_err(err)?;
    check(pid == child.pid() as u32, || {
        format!("pid {pid} in the region, child was {}", child.pid())
    })?;
    let mut msg = [0u8; 20];
    region.read_at(128, &mut msg).map_err(err)?;
    check(&msg == b"written by the child", || format!("read {msg:?}"))?;
    let last: u64 = region.read_pod(region.len() - 8).map_err(err)?;
    check(last == 0xC0FF_EE00_D15E_A5E5, || {
        format!("last word {last:#x}")
    })
}

/// The parent writes after the fork (so only shared memory can carry it),
/// then raises a flag; the child waits for the flag, reads, and answers.
fn parent_writes_child_reads_sequenced() -> CaseResult {
    const MSG: &[u8] = b"written by the parent after the fork";
    let region = AnonShared::new(4096).map_err(err)?;
    let mut child = Forked::spawn(|| {
        let flag = region.atomic_u32(0).unwrap();
        // SYNC POINT: pairs with the parent's Release store of 1.
        if !common::wait_until(HANDSHAKE_TIMEOUT, || flag.load(Ordering::Acquire) == 1) {
            return TIMED_OUT;
        }
        let mut buf = vec![0u8; MSG.len()];
        region.read_at(64, &mut buf).unwrap();
        let verdict = if buf == MSG { 1u32 } else { 0xBAD };
        region.write_pod(8, &verdict).unwrap();
        // SYNC POINT: pairs with the parent's Acquire load of 2.
        flag.store(2, Ordering::Release);
        if verdict == 1 {
            OK
        } else {
            MISMATCH
        }
    })?;
    region.write_at(64, MSG).map_err(err)?;
    let flag = region.atomic_u32(0).map_err(err)?;
    flag.store(1, Ordering::Release);
    let answered = common::wait_until(HANDSHAKE_TIMEOUT, || flag.load(Ordering::Acquire) == 2);
    let code = child.wait(HANDSHAKE_TIMEOUT)?;
    check(answered, || {
        format!("no answer from the child (exit code {code})")
    })?;
    check(code == OK, || format!("child exit code {code}"))?;
    let verdict: u32 = region.read_pod(8).map_err(err)?;
    check(verdict == 1, || format!("child's verdict {verdict:#x}"))
}

/// Strict turns through a shared word: 2 × 500 increments of a plain
/// (non-atomic) counter, each made visible to the other process by the
/// Release/Acquire pair on the turn word.
fn ping_pong_turns() -> CaseResult {
    const ROUNDS: u32 = 500;
    let region = AnonShared::new(4096).map_err(err)?;
    let play = |parity: u32| -> bool {
        let turn = region.atomic_u32(0).unwrap();
        for round in 0..ROUNDS {
            let mine = 2 * round + parity;
            if !common::wait_until(HANDSHAKE_TIMEOUT, || turn.load(Ordering::Acquire) == mine) {
                return false;
            }
            let n: u64 = region.read_pod(8).unwrap();
            region.write_pod(8, &(n + 1)).unwrap();
            turn.store(mine + 1, Ordering::Release);
        }
        true
    };
    let mut child = Forked::spawn(|| if play(1) { OK } else { TIMED_OUT })?;
    let finished = play(0);
    let code = child.wait(HANDSHAKE_TIMEOUT)?;
    check(finished && code == OK, || {
        format!("turns stalled (parent finished: {finished}, child exit code {code})")
    })?;
    let n: u64 = region.read_pod(8).map_err(err)?;
    check(n == u64::from(2 * ROUNDS), || format!("counter {n}"))
}

/// Both processes hammer one atomic word; no increment is lost.
fn concurrent_fetch_add() -> CaseResult {
    const EACH: u64 = 100_000;
    let region = AnonShared::new(4096).map_err(err)?;
    let bump = || {
        let word = region.atomic_u64(8).unwrap();
        for i in 0..EACH {
            word.fetch_add(1, Ordering::AcqRel);
            if i % 1024 == 0 {
                std::thread::yield_now();
            }
        }
    };
    let mut child = Forked::spawn(|| {
        bump();
        OK
    })?;
    bump();
    let code = child.wait(HANDSHAKE_TIMEOUT)?;
    check(code == OK, || format!("child exit code {code}"))?;
    let total = region.load_u64(8, Ordering::Acquire).map_err(err)?;
    check(total == 2 * EACH, || {
        format!("total {total}, want {}", 2 * EACH)
    })
}

/// The control: ordinary heap memory is copied on write by `fork`, so the
/// child's write must *not* show in the parent. Proves that what the other
/// cases see comes from the shared mapping.
fn private_memory_is_not_shared() -> CaseResult {
    let shared = AnonShared::new(4096).map_err(err)?;
    let private = shm_segment::HeapRegion::new(4096);
    let mut child = Forked::spawn(|| {
        shared.write_pod(0, &7u64).unwrap();
        private.write_pod(0, &7u64).unwrap();
        OK
    })?;
    let code = child.wait(HANDSHAKE_TIMEOUT)?;
    check(code == OK, || format!("child exit code {code}"))?;
    let (s, p): (u64, u64) = (
        shared.read_pod(0).map_err(err)?,
        private.read_pod(0).map_err(err)?,
    );
    check((s, p) == (7, 0), || format!("shared {s}, private {p}"))
}

/// A [`ForkEpoch`](shm_segment::ForkEpoch) taken before the fork is current in
/// the parent only; the child's own new epoch is current in the child, and a
/// grandchild sees neither.
fn fork_epoch_tells_the_child_apart() -> CaseResult {
    let before = shm_segment::ForkEpoch::now();
    let mut child = Forked::spawn(move || {
        if before.is_current() {
            return MISMATCH;
        }
        let mine = shm_segment::ForkEpoch::now();
        if !mine.is_current() {
            return MISMATCH;
        }
        let mut grandchild = match Forked::spawn(move || {
            if mine.is_current() || before.is_current() {
                MISMATCH
            } else {
                OK
            }
        }) {
            Ok(g) => g,
            Err(_) => return MISMATCH,
        };
        grandchild.wait(HANDSHAKE_TIMEOUT).unwrap_or(TIMED_OUT)
    })?;
    let code = child.wait(HANDSHAKE_TIMEOUT)?;
    check(code == OK, || format!("child exit code {code}"))?;
    check(before.is_current(), || "the parent's epoch moved".into())
}

/// A named segment made with `unlink_on_drop`/`remove_on_drop` belongs to the
/// parent's handle: the child drops its inherited copy without unlinking or
/// removing the segment.
fn inherited_segment_handles_do_not_remove_on_drop_in_the_child() -> CaseResult {
    let name = format!("/shm-test-fork-unlink-{}", std::process::id());
    let posix = std::cell::RefCell::new(Some(
        shm_segment::PosixOptions::new()
            .unlink_on_drop(true)
            .create(&name, 64)
            .map_err(err)?,
    ));
    let sysv = std::cell::RefCell::new(Some(
        shm_segment::SysvOptions::new()
            .remove_on_drop(true)
            .create(shm_segment::SysvKey::PRIVATE, 64)
            .map_err(err)?,
    ));
    let id = sysv.borrow().as_ref().map_or(-1, |s| s.id());
    // The child takes its copies out of the cells and drops them.
    let mut child = Forked::spawn(|| {
        drop(posix.borrow_mut().take());
        drop(sysv.borrow_mut().take());
        OK
    })?;
    let code = child.wait(HANDSHAKE_TIMEOUT)?;
    check(code == OK, || format!("child exit code {code}"))?;
    let posix_left = shm_segment::PosixShm::open(&name).is_ok();
    let sysv_left = shm_segment::SysvSegment::open_id(id).is_ok();
    // The parent's own handles clean up when the cells drop here.
    check(posix_left, || {
        format!("{name} was unlinked by the child's drop")
    })?;
    check(sysv_left, || {
        format!("shmid {id} was removed by the child's drop")
    })
}

fn main() {
    let cases: [Case; 7] = [
        (
            "child_writes_parent_reads_after_waitpid",
            child_writes_parent_reads_after_waitpid,
        ),
        (
            "parent_writes_child_reads_sequenced",
            parent_writes_child_reads_sequenced,
        ),
        ("ping_pong_turns", ping_pong_turns),
        ("concurrent_fetch_add", concurrent_fetch_add),
        ("private_memory_is_not_shared", private_memory_is_not_shared),
        (
            "fork_epoch_tells_the_child_apart",
            fork_epoch_tells_the_child_apart,
        ),
        (
            "inherited_segment_handles_do_not_remove_on_drop_in_the_child",
            inherited_segment_handles_do_not_remove_on_drop_in_the_child,
        ),
    ];
    run_cases(&cases);
}
