//! loom models of the pool's free list (a Treiber stack with a tagged head).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-mempool --test loom --release`
//! (`cargo xtask loom` runs these with the rings' models).
#![cfg(loom)]

use loom::thread;
use shm_mempool::{BlockId, MemPool};
use shm_segment::Region;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

#[test]
fn two_takers_never_get_the_same_block() {
    model(|| {
        let pool = MemPool::new_heap(2, 64).unwrap();
        let other = pool.clone();
        let t = thread::spawn(move || other.get().map(|b| b.into_id()).ok());
        let mine = pool.get().map(|b| b.into_id()).ok();
        let theirs = t.join().unwrap();
        assert!(
            mine.is_some() && theirs.is_some(),
            "two blocks for two takers"
        );
        assert_ne!(mine, theirs);
    });
}

#[test]
fn take_and_give_back_race_keeps_the_list_whole() {
    // The ABA shape: one thread pops A while another pops A, pops B and
    // pushes A back; the tag makes the stale pop fail.
    model(|| {
        let pool = MemPool::new_heap(2, 64).unwrap();
        let other = pool.clone();
        let t = thread::spawn(move || {
            let a = other.get().unwrap();
            let b = other.get().ok();
            drop(a);
            b.map(|b| b.into_id())
        });
        let mine = pool.get().ok().map(|b| b.into_id());
        let theirs = t.join().unwrap();
        if let (Some(m), Some(t)) = (mine, theirs) {
            assert_ne!(m, t, "a block handed out twice");
        }
        for id in [mine, theirs].into_iter().flatten() {
            pool.put(id).unwrap();
        }
        assert_eq!(
            pool.check().unwrap(),
            2,
            "both blocks back on the list, no cycle"
        );
    });
}

#[test]
fn data_written_before_put_is_seen_by_the_next_taker() {
    model(|| {
        let pool = MemPool::new_heap(1, 64).unwrap();
        let block = pool.get().unwrap();
        let id: BlockId = block.into_id();
        let other = pool.clone();
        let t = thread::spawn(move || {
            let b = other.from_id(id).unwrap();
            b.write_pod(0, &7u64).unwrap();
        });
        t.join().unwrap();
        let again = pool.get().unwrap();
        assert_eq!(again.read_pod::<u64>(0).unwrap(), 7);
    });
}
