//! A block pool shared across `fork(2)`: pyshm's README example, as written,
//! then pyshm's ring of block ids.
//!
//! The parent maps one anonymous shared region (`MAP_SHARED|MAP_ANONYMOUS`)
//! and lays out two things in it before forking: a [`MemPool`] of `count`
//! blocks of 4 bytes (rounded up to 64) and an [`MpmcRing`] of [`BlockId`]s.
//!
//! 1. pyshm's example: the child takes a block, writes `i` into it and gives
//!    it back, `count` times; then the parent takes `count` blocks and reads
//!    0, 1, 2, … back in order. That works because the pool's default order
//!    is FIFO ([`FreeOrder::Fifo`]): a block given back queues behind the
//!    others, so the child's four get/put rounds use four different blocks.
//!    (With `FreeOrder::Lifo` the child would reuse one block every time,
//!    and the parent would read `[3, 0, 0, 0]`.)
//! 2. A hand-off: the child takes `count` blocks, writes `i` into block
//!    number `i`, and hands each one on: `into_id` makes the block *in
//!    transit*, owned by nobody, and its 4-byte id goes through the ring.
//!    The child exits; the parent pops the ids and claims each block with
//!    `from_id` (exactly once), checks the value, and drops it (back to the
//!    pool). Since blocks in transit are nobody's, a `reclaim_dead()` after
//!    the child's exit leaves them alone.
//! 3. A child killed with blocks in hand: it takes blocks (through an owner
//!    slot of its own: its `ProcessId` is not the parent's) and dies of
//!    `SIGKILL` holding them. The parent's `stats()` counts them as held by
//!    a process that is gone, and `reclaim_dead()` gives exactly those back
//!    (a kill at any instruction of a get or give-back loses nothing).
//!
//! ```text
//! cargo run --example mempool_fork            # 4 blocks, as in pyshm
//! cargo run --example mempool_fork -- 100     # 100 blocks
//! ```
//!
//! Only the ids cross from child to parent; the values never move. Nothing
//! needs cleaning up: the kernel frees anonymous memory when the last
//! process that maps it exits.

use std::error::Error;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shm::mempool::{BlockId, FreeOrder, MemPool};
use shm::ring::{MpmcRing, RingOptions};
use shm::segment::{AnonShared, Region, SubRegion};

type Res<T = ()> = Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    let count = match std::env::args().nth(1).map(|s| s.parse::<usize>()) {
        None => 4,
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

fn run(count: usize) -> Res {
    // One mapping: the pool, then (page-aligned) the ring of ids.
    let pool_len = MemPool::required_size(count, 4).next_multiple_of(4096);
    let ring_cap = count.next_power_of_two();
    let ring_len = MpmcRing::<BlockId>::required_size(ring_cap);
    let shared = AnonShared::new(pool_len + ring_len)?;
    // mp = mempool.Mempool(count, 4, shm=test_shm)
    let mp = MemPool::create(SubRegion::new(&shared, 0, pool_len)?, count, 4)?;
    assert_eq!(mp.order(), FreeOrder::Fifo);
    let ring = MpmcRing::<BlockId, _>::create(
        SubRegion::new(&shared, pool_len, ring_len)?,
        ring_cap,
        RingOptions::new(),
    )?;
    println!(
        "[parent] pool of {count} blocks of {} bytes ({:?} order) and a ring of {ring_cap} ids \
         in {} bytes of anonymous shared memory",
        mp.block_size(),
        mp.order(),
        shared.len()
    );

    // 1. pyshm's example, as written.
    let pid = fork(|| {
        for i in 0..count as i32 {
            let buf = mp.get()?; // buf = mp.get()
            buf.write_pod(0, &i)?; // struct.pack_into("=i", buf, 0, i)
            drop(buf); // mp.put(buf)
        }
        println!("[child]  get, write i, put: {count} times");
        Ok(())
    })?;
    wait_for(pid)?;
    let mut bufs = Vec::with_capacity(count);
    for i in 0..count as i32 {
        let buf = mp.get()?; // buf = mp.get()
        let v: i32 = buf.read_pod(0)?; // v, = struct.unpack_from("=i", buf)
        if v != i {
            return Err(format!("block {} holds {v}, expected {i}", buf.id().0).into());
        }
        bufs.push(buf);
    }
    println!(
        "[parent] got {count} blocks holding {}",
        shown(0..count as i32)
    );
    drop(bufs); // mp.cleanup()

    // 2. Handing blocks on by id, through the ring.
    let pid = fork(|| {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count as i32 {
            let block = mp.get()?;
            block.write_pod(0, &i)?;
            ids.push(block.into_id()?); // in transit: nobody's until claimed
        }
        ring.push_exact(&ids)?;
        println!(
            "[child]  pid {} took {count} blocks, wrote 0..{count} into them and passed their ids",
            std::process::id()
        );
        Ok(())
    })?;
    wait_for(pid)?;
    println!(
        "[parent] child {pid} exited; {} ids in the ring; reclaim_dead frees {:?} (blocks in \
         transit are nobody's)",
        ring.len(),
        mp.reclaim_dead()?
    );
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        let id = ring.pop().map_err(|e| format!("id {i} of {count}: {e}"))?;
        let block = mp.from_id(id)?; // claim the child's block, exactly once
        let value: i32 = block.read_pod(0)?;
        if value != i as i32 {
            return Err(format!("block {} holds {value}, expected {i}", id.0).into());
        }
        values.push(value);
        // Dropping `block` gives it back to the pool.
    }
    let stats = mp.stats();
    println!(
        "[parent] claimed {} from the child's blocks; pool: {} free, {} held, {} in transit",
        shown(values.iter().copied()),
        stats.free,
        stats.held,
        stats.in_transit
    );
    if stats.free != count || mp.check()? != count {
        return Err(format!("the pool is not whole again: {stats:?}").into());
    }

    // 3. A child that dies holding blocks.
    let held = count.min(2);
    let pid = fork(|| {
        let blocks: Vec<_> = (0..held).map(|_| mp.get()).collect::<Result<_, _>>()?;
        std::mem::forget(blocks);
        // SAFETY: kill(2) of this very process: it dies here, holding them.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        Ok(())
    })?;
    if wait_for(pid).is_ok() {
        return Err(format!("child {pid} was to die of SIGKILL").into());
    }
    let dead = mp.stats().dead;
    let back = mp.reclaim_dead()?;
    println!(
        "[parent] child {pid} was killed holding {dead} blocks; reclaim_dead gave back {back:?}"
    );
    if back.len() != held || mp.check()? != count {
        return Err(format!("the pool is not whole again: {:?}", mp.stats()).into());
    }
    Ok(())
}

/// The first 16 values, and "..." if there are more.
fn shown(values: impl Iterator<Item = i32>) -> String {
    let all: Vec<i32> = values.collect();
    let first: Vec<i32> = all.iter().copied().take(16).collect();
    let more = if all.len() > first.len() { " ..." } else { "" };
    format!("{first:?}{more}")
}

/// Forks; the child runs `child` and exits (0 on success); returns the
/// child's pid in the parent.
fn fork(child: impl FnOnce() -> Res) -> Res<libc::pid_t> {
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
        let code = match child() {
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
    Ok(pid)
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
