//! `fork(2)` itself. The test harness runs tests on several threads, and a
//! threaded process must not fork, so this target has `harness = false`
//! (see Cargo.toml): `main` runs each case in turn on its one thread, and
//! each case forks a child that runs a closure and `_exit`s (0 when the
//! closure returned, 101 when it panicked; the panic message goes to
//! stderr). The pools live in anonymous shared memory
//! (`MAP_SHARED|MAP_ANONYMOUS`), as pyshm's `ShareMem` does, so there is no
//! segment name to clean up: the kernel frees the memory with the last
//! process that maps it.
//!
//! 1. Seed 001, pyshm's README, as written: a pool of 4 blocks of 4 bytes
//!    made before the fork; the child does get, write `i`, put, four times;
//!    the parent then gets four blocks and reads 0, 1, 2, 3. With the
//!    default (FIFO) order that is what it reads; with `FreeOrder::Lifo`,
//!    as documented, the child reuses block 0 four times and the parent
//!    reads [3, 0, 0, 0].
//! 2. A `Block` taken before the fork is inert in the child: what can fail
//!    fails with a `ForkedHandle`/"fork" error, what cannot panics, and its
//!    drop gives nothing back; the parent's block stays held and intact.
//!    The `MemPool` handle works in the child, which takes its own blocks.
//! 3. A `Channel` made before the fork: the child sends, the parent
//!    receives, in order.
//! 4. A child takes an owner slot of its own (its copy of the handle's
//!    cached slot is the parent's, and must not be used): killed with
//!    blocks in hand, `stats` counts them as the dead's, and the parent's
//!    `reclaim_dead` gives back exactly those, never the parent's.
//! 5. A `BlockCache` made before the fork is inert in the child: its `get`
//!    is the pool's (the child's own slot, a block from the free list, not
//!    one of the parent's cached blocks), and dropping it gives nothing
//!    back; the parent's cache still hands out its blocks afterwards.
//!
//! `cargo test -p shm-mempool --test fork [-- FILTER]`.

use std::cell::RefCell;
use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use shm_mempool::ChannelOptions;
use shm_mempool::{BlockState, Channel, FreeOrder, MemPool, PoolError, PoolOptions};
use shm_segment::{AnonShared, ProcessId, Region};

/// The longest a child may take.
const HANG: Duration = Duration::from_secs(30);

/// Forks; the child runs `child` and `_exit`s with 0, or 101 if it panicked.
/// Returns the child's exit status (killing it after [`HANG`]).
fn in_child(child: impl FnOnce()) -> i32 {
    // Anything still buffered would be written twice, once by each process.
    io::stdout().flush().unwrap();
    io::stderr().flush().unwrap();
    // SAFETY: this process is single-threaded (no harness, no threads
    // started), so the child is a complete copy: no lock is left held by a
    // thread that does not exist in the child.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = match catch_unwind(AssertUnwindSafe(child)) {
            Ok(()) => 0,
            Err(_) => 101,
        };
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        // SAFETY: `_exit` ends the child at once, as a forked child must:
        // returning would run the rest of the parent's program in it.
        unsafe { libc::_exit(code) };
    }
    let deadline = Instant::now() + HANG;
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our own child, not yet reaped; `status` is a
        // valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        assert!(
            r == 0 || io::Error::last_os_error().kind() == io::ErrorKind::Interrupted,
            "waitpid({pid}): {}",
            io::Error::last_os_error()
        );
        if Instant::now() > deadline {
            // SAFETY: kill(2) and waitpid(2) on our own child, not reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("child {pid} did not exit within {HANG:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        libc::WIFEXITED(status),
        "child {pid} did not exit normally (wait status {status:#x})"
    );
    libc::WEXITSTATUS(status)
}

/// The seed's program, for a pool of `order`; returns what the parent read.
fn seed_001(order: FreeOrder) -> Vec<i32> {
    // test_shm = ShareMem(...); mp = mempool.Mempool(count, 4, shm=test_shm)
    let count = 4;
    let test_shm = AnonShared::new(MemPool::required_size(count, 4)).unwrap();
    let mp = MemPool::create_with(&test_shm, count, 4, PoolOptions::new().order(order)).unwrap();

    // pid = os.fork(); if pid == 0:
    let status = in_child(|| {
        for i in 0..count as i32 {
            let buf = mp.get().unwrap(); // buf = mp.get()
            buf.write_pod(0, &i).unwrap(); // struct.pack_into("=i", buf, 0, i)
            drop(buf); // mp.put(buf)
        }
    });
    // cid, status = os.wait()
    assert_eq!(status, 0, "the child failed (its panic is above)");
    let mut bufs = Vec::new();
    let mut values = Vec::new();
    for _ in 0..count {
        let buf = mp.get().unwrap(); // buf = mp.get()
        values.push(buf.read_pod::<i32>(0).unwrap()); // v, = struct.unpack_from("=i", buf)
        bufs.push(buf);
    }
    // mp.cleanup(): everything back, the pool whole.
    drop(bufs);
    assert_eq!(mp.check().unwrap(), count);
    values
}

fn seed_001_pyshm_mempool_example_as_written() {
    assert_eq!(
        seed_001(FreeOrder::default()),
        [0, 1, 2, 3],
        "pyshm's example: the parent reads back 0, 1, 2, 3 in order"
    );
    // The documented LIFO order: the child reuses block 0 four times.
    assert_eq!(seed_001(FreeOrder::Lifo), [3, 0, 0, 0]);
}

fn a_block_inherited_across_fork_is_inert_in_the_child() {
    let shm = AnonShared::new(MemPool::required_size(4, 64)).unwrap();
    let pool = MemPool::create(&shm, 4, 64).unwrap();
    let parent = ProcessId::current().pid;
    // Two blocks the parent holds across the fork. The child takes its
    // copies out of the cell (the parent's stay): one it tries every
    // operation on and hands on, one it just drops.
    let inherited = RefCell::new(vec![pool.get().unwrap(), pool.get().unwrap()]);
    let ids: Vec<_> = inherited.borrow().iter().map(|b| b.id()).collect();
    for b in inherited.borrow().iter() {
        b.write_pod(0, &(0xAA00 + u64::from(b.id().0))).unwrap();
        b.set_used(8);
    }

    let status = in_child(|| {
        let dropped = inherited.borrow_mut().pop().unwrap();
        let block = inherited.borrow_mut().pop().unwrap();
        let id = block.id();
        // What can fail fails and says why; nothing is read or written.
        let err = block.read_pod::<u64>(0).unwrap_err();
        assert!(err.to_string().contains("fork"), "{err}");
        assert!(block.write_pod(0, &1u64).is_err());
        assert!(block.fill(0, 8, 0xFF).is_err());
        assert!(block.atomic_u64(0).is_err());
        // What cannot fail panics; so does access through `&Block` (what
        // the cursor uses), whose provided methods go through `as_ptr`.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let mut text = String::new();
        assert!(catch_unwind(AssertUnwindSafe(|| {
            io::Read::read_to_string(&mut block.cursor(), &mut text)
        }))
        .is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| block.used())).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| block.set_used(1))).is_err());
        assert!(catch_unwind(AssertUnwindSafe(|| block.to_vec())).is_err());
        std::panic::set_hook(hook);
        // What only reads the handle works.
        assert_eq!((block.id(), block.len()), (ids[0], 64));
        // The blocks are the parent's: not in transit, so neither put nor
        // from_id takes them.
        for err in [
            pool.put(id).unwrap_err(),
            pool.from_id(id).map(drop).unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    PoolError::WrongState {
                        found: BlockState::Held,
                        ..
                    }
                ),
                "{err}"
            );
        }
        // The pool handle works in the child: blocks of its own.
        let mine: Vec<_> = (0..2).map(|_| pool.get().unwrap()).collect();
        assert!(
            mine.iter().all(|b| !ids.contains(&b.id())),
            "handed out a block the parent holds"
        );
        let me = ProcessId::current().pid;
        let mut owners = vec![(parent, 2), (me, 2)];
        owners.sort_unstable();
        assert_eq!(pool.stats().by_owner, owners);
        let sent = mine.into_iter().next().unwrap().into_id().unwrap();
        pool.put(sent).unwrap();
        // Handing the inherited block on fails (the handle ends, giving
        // nothing back); so does dropping the other.
        match block.into_id() {
            Err(PoolError::ForkedHandle {
                op: "into_id",
                id: got,
                ..
            }) => assert_eq!(got, id),
            other => panic!("into_id of an inherited block gave {other:?}"),
        }
        drop(dropped);
        let s = pool.stats();
        assert_eq!((s.held, s.free), (2, 2), "{s:?}");
    });
    assert_eq!(status, 0, "the child failed (its panic is above)");

    let s = pool.stats();
    assert_eq!(
        (s.held, s.free, s.by_owner.clone()),
        (2, 2, vec![(parent, 2)]),
        "the child gave back blocks the parent holds: {s:?}"
    );
    for block in inherited.borrow_mut().drain(..) {
        let want = 0xAA00 + u64::from(block.id().0);
        assert_eq!(
            block.read_pod::<u64>(0).unwrap(),
            want,
            "the child wrote into it"
        );
        assert_eq!(block.used(), 8);
    }
    assert_eq!(pool.check().unwrap(), 4);
}

fn a_channel_made_before_fork_carries_messages_from_the_child() {
    let n = 4;
    let shm = AnonShared::new(Channel::required_size(n, 64)).unwrap();
    let ch = Channel::create_with(&shm, n, 64, ChannelOptions::new()).unwrap();
    let status = in_child(|| {
        for i in 0..n {
            let block = ch.get().unwrap();
            block.write_pod(0, &(i as u32)).unwrap();
            block.set_used(4);
            ch.send(block).unwrap();
        }
    });
    assert_eq!(status, 0, "the child failed (its panic is above)");
    for i in 0..n {
        let got = ch.recv().unwrap();
        assert_eq!((got.read_pod::<u32>(0).unwrap(), got.used()), (i as u32, 4));
    }
    assert!(ch.is_empty());
    assert_eq!(ch.pool().check().unwrap(), n);
}

fn a_killed_child_s_blocks_come_back_and_the_parent_s_stay() {
    let shm = AnonShared::new(MemPool::required_size(4, 64)).unwrap();
    let pool = MemPool::create(&shm, 4, 64).unwrap();
    let parent = ProcessId::current().pid;
    let mine = pool.get().unwrap(); // the parent's slot is claimed and cached
    io::stdout().flush().unwrap();
    io::stderr().flush().unwrap();
    // SAFETY: single-threaded process (see `in_child`).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let taken: Vec<_> = (0..2).map(|_| pool.get().unwrap()).collect();
        std::mem::forget(taken);
        // SAFETY: kill(2) of this very process: it dies here, holding them.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        // SAFETY: not reached; `_exit` if the signal were somehow ignored.
        unsafe { libc::_exit(7) };
    }
    let mut status = 0;
    // SAFETY: our own child, not yet reaped; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "the child was to die of SIGKILL (wait status {status:#x})"
    );
    let s = pool.stats();
    let mut owners = vec![(parent, 1), (pid as u32, 2)];
    owners.sort_unstable();
    assert_eq!(
        (s.held, s.dead, s.by_owner),
        (3, 2, owners),
        "the child used the parent's slot"
    );
    let back = pool.reclaim_dead().unwrap();
    assert_eq!(back.len(), 2);
    assert!(!back.contains(&mine.id()), "reclaimed the parent's block");
    assert_eq!(pool.stats().held, 1);
    assert_eq!(pool.check().unwrap(), 3);
    drop(mine);
    assert_eq!(pool.check().unwrap(), 4);
}

fn a_cache_inherited_across_fork_is_inert_in_the_child() {
    let region = AnonShared::new(MemPool::required_size(8, 64)).unwrap();
    let pool = MemPool::create(&region, 8, 64).unwrap();
    let cache = pool.cache(4).unwrap();
    let first = cache.get().unwrap().id(); // a miss: 0 out and back, 1 cached
    assert_eq!((first.0, cache.len()), (0, 2));
    let status = in_child(|| {
        let b = cache.get().unwrap(); // the pool's get: block 2
        assert_eq!(b.id().0, 2);
        assert_eq!(cache.len(), 2, "the parent's cached blocks stay");
        drop(b); // back to the free list
        cache.flush(); // nothing: the blocks are the parent's
        let s = pool.stats();
        assert_eq!((s.free, s.cached, s.held), (6, 2, 0), "{s:?}");
    });
    assert_eq!(status, 0, "the child failed (its panic is above)");
    let s = pool.stats();
    assert_eq!((s.free, s.cached), (6, 2), "{s:?}");
    assert_eq!(
        cache.get().unwrap().id(),
        first,
        "the parent's cache still works"
    );
    drop(cache);
    assert_eq!(pool.check().unwrap(), 8);
    // The free list kept its order: 3..8, then 2 (the child's), 0, 1.
    let order: Vec<u32> = (0..8)
        .map(|_| pool.get().unwrap().into_id().unwrap().0)
        .collect();
    assert_eq!(order, [3, 4, 5, 6, 7, 2, 1, 0]);
}

fn main() -> ExitCode {
    let cases: [(&str, fn()); 5] = [
        (
            "a_cache_inherited_across_fork_is_inert_in_the_child",
            a_cache_inherited_across_fork_is_inert_in_the_child,
        ),
        (
            "seed_001_pyshm_mempool_example_as_written",
            seed_001_pyshm_mempool_example_as_written,
        ),
        (
            "a_block_inherited_across_fork_is_inert_in_the_child",
            a_block_inherited_across_fork_is_inert_in_the_child,
        ),
        (
            "a_channel_made_before_fork_carries_messages_from_the_child",
            a_channel_made_before_fork_carries_messages_from_the_child,
        ),
        (
            "a_killed_child_s_blocks_come_back_and_the_parent_s_stay",
            a_killed_child_s_blocks_come_back_and_the_parent_s_stay,
        ),
    ];
    // Like the harness: the first argument that is not a flag filters.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        match catch_unwind(case) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
