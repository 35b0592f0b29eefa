//! A block pool shared across `fork(2)`: what pyshm's README does with
//! `Mempool(count, size)` and a ring of block ids.
//!
//! The parent maps one anonymous shared region (`MAP_SHARED|MAP_ANONYMOUS`)
//! and lays out two things in it before forking: a [`MemPool`] of `count`
//! blocks of 4 bytes (rounded up to 64) and an [`MpmcRing`] of [`BlockId`]s.
//! The child inherits the mapping, takes `count` blocks, writes `i` into
//! block number `i` with `write_pod`, and hands each one over: `into_id`
//! keeps the block held and turns it into a 4-byte id, which goes through
//! the ring. The child exits; the parent `waitpid`s, pops the ids, takes
//! each block over with `from_id`, checks the value, and drops it (back to
//! the pool).
//!
//! ```text
//! cargo run --example mempool_fork            # 8 blocks
//! cargo run --example mempool_fork -- 100     # 100 blocks
//! ```
//!
//! Only the ids cross from child to parent; the values never move. A block
//! handed over with `into_id` is recorded as held by the child until the
//! parent's `from_id`, so a `reclaim_dead()` run in between would give it
//! back to the pool (the child is dead by then). A `Channel` (pool plus ring
//! in one segment, see the `channel_processes` example) has no such gap:
//! a sent block belongs to the channel until it is received.
//!
//! Nothing needs cleaning up: the kernel frees anonymous memory when the
//! last process that maps it exits.

use std::error::Error;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shm::mempool::{BlockId, MemPool};
use shm::ring::{MpmcRing, RingOptions};
use shm::segment::{AnonShared, Region, SubRegion};

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    let count = match std::env::args().nth(1).map(|s| s.parse::<u32>()) {
        None => 8,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: mempool_fork [COUNT > 0]");
            return ExitCode::FAILURE;
        }
    };
    match run(count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mempool_fork: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(count: u32) -> Res {
    // One mapping: the pool, then (page-aligned) the ring of ids.
    let pool_len = MemPool::<()>::required_size(count, 4).next_multiple_of(4096);
    let ring_cap = count.next_power_of_two() as usize;
    let ring_len = MpmcRing::<BlockId, ()>::required_size(ring_cap);
    let shared = AnonShared::new(pool_len + ring_len)?;
    let pool = MemPool::create(SubRegion::new(&shared, 0, pool_len)?, count, 4)?;
    let ring = MpmcRing::<BlockId, _>::create(
        SubRegion::new(&shared, pool_len, ring_len)?,
        ring_cap as u64,
        RingOptions::new(),
    )?;
    println!(
        "[parent] pool of {count} blocks of {} bytes and a ring of {ring_cap} ids in {} bytes \
         of anonymous shared memory",
        pool.block_size(),
        shared.len()
    );

    // Anything still buffered would be printed twice, once by each process.
    io::stdout().flush()?;
    // SAFETY: this process is single-threaded (the example starts no
    // threads), so the child is a complete copy of it: no lock or allocator
    // state is left held by a thread that does not exist in the child.
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        return Err(format!("fork: {}", io::Error::last_os_error()).into());
    }
    if pid == 0 {
        let code = match child(&pool, &ring, count) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("[child]  {e}");
                1
            }
        };
        let _ = io::stdout().flush();
        // SAFETY: `_exit` ends the child at once, as a forked child must:
        // returning from `main` would run the parent's cleanup a second time.
        unsafe { libc::_exit(code) };
    }

    wait_for(pid)?;
    println!(
        "[parent] child {pid} exited; {} ids in the ring",
        ring.len()
    );
    let mut values = Vec::with_capacity(count as usize);
    for i in 0..count {
        let id = ring.pop().map_err(|e| format!("id {i} of {count}: {e}"))?;
        let block = pool.from_id(id)?; // take the child's block over
        let value: i32 = block.read_pod(0)?;
        if value != i as i32 {
            return Err(format!("block {} holds {value}, expected {i}", id.0).into());
        }
        values.push(value);
        // Dropping `block` gives it back to the pool.
    }
    let stats = pool.stats();
    let shown: Vec<i32> = values.iter().copied().take(16).collect();
    println!(
        "[parent] read {shown:?}{} from the child's blocks; pool: {} free, {} held",
        if values.len() > shown.len() {
            " ..."
        } else {
            ""
        },
        stats.free,
        stats.held
    );
    if stats.free != count || pool.check()? != count {
        return Err(format!("the pool is not whole again: {stats:?}").into());
    }
    Ok(())
}

/// In the child: take `count` blocks, write `i` into block `i`, pass the ids.
fn child<R: Region, Q: Region>(pool: &MemPool<R>, ring: &MpmcRing<BlockId, Q>, count: u32) -> Res {
    let mut ids = Vec::with_capacity(count as usize);
    for i in 0..count {
        let block = pool.get()?;
        block.write_pod(0, &(i as i32))?;
        ids.push(block.into_id());
    }
    ring.push_exact(&ids)?;
    println!(
        "[child]  pid {} took {count} blocks, wrote 0..{count} into them and passed their ids",
        std::process::id()
    );
    Ok(())
}

/// `waitpid` until the child has exited (at most 30 s: then it is killed);
/// an error unless it exited with 0.
fn wait_for(pid: libc::pid_t) -> Res {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our own child, and `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if r == -1 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(format!("waitpid({pid}): {err}").into());
            }
        } else if Instant::now() > deadline {
            // SAFETY: kill(2) and waitpid(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(format!("child {pid} did not exit within 30 s: killed").into());
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!("child {pid} failed (wait status {status:#x})").into())
    }
}
