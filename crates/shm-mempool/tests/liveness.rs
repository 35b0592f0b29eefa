//! A process in another pid namespace (`unshare -p -f --mount-proc`, as
//! containers sharing `/dev/shm`) keeps the blocks it holds against
//! `reclaim_dead`: its pid means another process here, or none, so the old
//! `/proc` check judged it dead and freed blocks it was still writing. The
//! kernel's liveness lock says alive, and dead after `kill -9`.

mod common;

use std::process::Command;

use common::{Running, HANG};
use shm_mempool::MemPool;
use shm_segment::{PosixOptions, PosixShm};

const TEST: &str = "a_holder_in_another_pid_namespace_keeps_its_blocks";
const HELD: usize = 3;

#[test]
fn a_holder_in_another_pid_namespace_keeps_its_blocks() {
    if common::is_child(TEST) {
        let shm = PosixShm::open(&common::child_arg()).unwrap();
        let map = shm.map().unwrap();
        let pool = MemPool::attach(&map).unwrap();
        let blocks: Vec<_> = (0..HELD).map(|_| pool.get().unwrap()).collect();
        println!("pid {}", std::process::id());
        println!("ready");
        std::thread::sleep(HANG);
        drop(blocks);
        return;
    }
    let args = ["-p", "-f", "--kill-child", "--mount-proc"];
    if !common::unshare_or_skip(TEST, &args) {
        return;
    }
    let name = common::posix_name("pool-ns");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, MemPool::required_size(8, 64))
        .unwrap();
    let map = shm.map().unwrap();
    let pool = MemPool::create(&map, 8, 64).unwrap();

    let mut cmd = Command::new("unshare");
    cmd.args(args)
        .arg(common::test_exe())
        .args(common::harness_args(TEST));
    common::child_env(&mut cmd, TEST, &name);
    let mut holder = Running::spawn(&mut cmd).expect("spawn unshare");
    let (_, pid) = holder.until("pid ", HANG);
    holder.until("ready", HANG);
    assert_ne!(
        pid,
        holder.id().to_string(),
        "the holder's pid should be its own namespace's"
    );

    assert!(
        pool.reclaim_dead().unwrap().is_empty(),
        "reclaim_dead freed the blocks of a live holder in another pid namespace"
    );
    let stats = pool.stats();
    assert_eq!((stats.held, stats.dead), (HELD, 0), "{stats:?}");

    holder.kill9();
    assert!(
        common::wait_until(HANG, || pool.stats().dead == HELD),
        "{:?}",
        pool.stats()
    );
    assert_eq!(pool.reclaim_dead().unwrap().len(), HELD);
    assert_eq!(pool.stats().free, 8);
}
