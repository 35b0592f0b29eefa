//! Write and read chunks publish and release only what they should: a
//! reserved slot that was never written is never published (no stale data
//! from an earlier lap), and committing more than the chunk holds panics
//! instead of clamping.

use std::panic::{catch_unwind, AssertUnwindSafe};

use shm_ring::SpscRing;

/// Fills every slot once with a marker, so that the next lap's slots hold
/// stale data if a chunk publishes them unwritten.
fn lapped_ring() -> (
    shm_ring::Producer<u64, shm_segment::HeapRegion>,
    shm_ring::Consumer<u64, shm_segment::HeapRegion>,
) {
    let (mut tx, mut rx) = SpscRing::<u64>::new_heap(4).unwrap();
    assert_eq!(tx.push_slice(&[0xDEAD; 4]), 4);
    let mut out = [0; 4];
    assert_eq!(rx.pop_into(&mut out), 4);
    (tx, rx)
}

#[test]
fn commit_all_publishes_only_the_written_prefix() {
    let (mut tx, mut rx) = lapped_ring();
    let mut chunk = tx.write_chunk(3).unwrap();
    chunk.write(0, &1);
    chunk.write(1, &2);
    // Slot 2 is reserved but never written: it still holds 0xDEAD.
    assert_eq!(chunk.commit_all(), 2);
    let mut out = [0; 4];
    assert_eq!(rx.pop_into(&mut out), 2, "an unwritten slot was published");
    assert_eq!(&out[..2], &[1, 2]);
    assert!(
        !out.contains(&0xDEAD),
        "stale data from the last lap: {out:?}"
    );
}

#[test]
fn an_unwritten_chunk_publishes_nothing() {
    let (mut tx, mut rx) = lapped_ring();
    let chunk = tx.write_chunk(4).unwrap();
    assert_eq!(chunk.commit_all(), 0);
    assert_eq!(rx.pop(), Err(shm_ring::PopError::Empty));
}

#[test]
fn write_bytes_zeroes_the_rest_of_a_new_element() {
    let (mut tx, mut rx) = SpscRing::<[u8; 8]>::new_heap(2).unwrap();
    tx.push_slice(&[[0xEE; 8]; 2]);
    let mut out = [[0; 8]; 2];
    assert_eq!(rx.pop_into(&mut out), 2);
    let mut chunk = tx.write_chunk(1).unwrap();
    chunk.write_bytes(0, 2, b"hi").unwrap();
    assert_eq!(chunk.commit_all(), 1);
    assert_eq!(rx.pop().unwrap(), [0, 0, b'h', b'i', 0, 0, 0, 0]);
}

#[test]
fn writes_out_of_order_panic() {
    let (mut tx, _rx) = lapped_ring();
    let mut chunk = tx.write_chunk(3).unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| chunk.write(1, &5))).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("in order"), "{msg}");
    // Rewriting an element already written is fine.
    chunk.write(0, &1);
    chunk.write(0, &2);
    chunk.write(1, &3);
    assert_eq!(chunk.written(), 2);
}

#[test]
fn write_commit_past_the_written_prefix_panics() {
    let (mut tx, rx) = lapped_ring();
    let err = catch_unwind(AssertUnwindSafe(|| {
        let mut chunk = tx.write_chunk(2).unwrap();
        chunk.write(0, &1);
        chunk.commit(2);
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("commit(2)"), "{msg}");
    let err = catch_unwind(AssertUnwindSafe(|| tx.write_chunk(2).unwrap().commit(3))).unwrap_err();
    assert!(err.downcast_ref::<String>().unwrap().contains("commit(3)"));
    // Nothing was published by the panicking commits.
    assert_eq!(rx.slots(), 0);
}

#[test]
fn read_commit_past_the_chunk_panics() {
    let (mut tx, mut rx) = SpscRing::<u64>::new_heap(4).unwrap();
    tx.push_slice(&[1, 2, 3]);
    let err = catch_unwind(AssertUnwindSafe(|| rx.read_chunk(2).unwrap().commit(3))).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("commit(3)"), "{msg}");
    // Nothing was released: all three are still there.
    assert_eq!(rx.slots(), 3);
    let chunk = rx.read_chunk(2).unwrap();
    chunk.commit(2);
    assert_eq!(rx.pop(), Ok(3));
}

/// `write_slice` and `read_slice` copy runs that wrap around the end of the
/// ring, append after what `write` wrote, and never reach past the chunk.
#[test]
fn slice_copies_wrap_around_and_stay_inside_the_chunk() {
    let (mut tx, mut rx) = SpscRing::<u64>::new_heap(8).unwrap();
    let mut next = 0u64;
    let mut expected = 0u64;
    // Every start position, so that chunks wrap at every offset.
    for round in 0..24 {
        let want = 1 + round % 8;
        let mut chunk = tx.write_chunk(want).unwrap();
        chunk.write(0, &next);
        next += 1;
        let values: Vec<u64> = (next..next + 8).collect();
        let n = chunk.write_slice(&values);
        assert_eq!(n, want - 1, "write_slice fills only what is left");
        next += n as u64;
        assert_eq!(
            chunk.write_slice(&[u64::MAX]),
            0,
            "a full chunk takes no more"
        );
        assert_eq!(chunk.commit_all(), want);

        let chunk = rx.read_chunk(want).unwrap();
        let mut out = vec![0; want + 3];
        assert_eq!(chunk.read_slice(&mut out), want);
        chunk.commit_all();
        for v in &out[..want] {
            assert_eq!(*v, expected);
            expected += 1;
        }
        assert!(out[want..].iter().all(|&v| v == 0), "read past the chunk");
    }
    assert_eq!(rx.slots(), 0);
}

/// A copy into a chunk whose source aliases the chunk's own slots (a
/// foreign buffer left over them, as a NumPy array over an ended chunk can
/// be) goes through the raw runs, so no reference to the slots exists while
/// the other pointer is used; the result is `memmove`'s, and a read chunk's
/// runs give the ready elements, wrapped or not.
#[test]
fn raw_runs_allow_a_source_that_aliases_the_slots() {
    let (mut tx, mut rx) = SpscRing::<u64>::new_heap(8).unwrap();
    let mut chunk = tx.write_chunk(4).unwrap();
    let [(a, n), (_, m)] = chunk.as_mut_ptrs();
    assert_eq!((n, m), (4, 0));
    // SAFETY: the four reserved slots are this producer's; first fill them.
    unsafe {
        for i in 0..4 {
            a.add(i).write(10 + i as u64);
        }
    }
    // The "foreign" buffer: the slots themselves.
    let alias = a.cast_const();
    // SAFETY: both ranges lie in the reserved slots; overlapping copy.
    unsafe { std::ptr::copy(alias, a.add(1), 3) };
    chunk.mark_written(4);
    chunk.commit_all();
    let mut out = [0; 4];
    assert_eq!(rx.pop_into(&mut out), 4);
    assert_eq!(out, [10, 10, 11, 12]);

    // Reading: the runs of a read chunk, copied into a buffer that is the
    // slots themselves, also make no reference.
    tx.push_slice(&[1, 2, 3]);
    let chunk = rx.read_chunk(3).unwrap();
    let [(r, k), (r2, k2)] = chunk.as_ptrs();
    assert_eq!(k + k2, 3);
    // SAFETY: ready slots; the copy only reads them.
    let first = unsafe { r.read() };
    let last = if k2 > 0 {
        // SAFETY: as above, the wrapped run.
        unsafe { r2.add(k2 - 1).read() }
    } else {
        // SAFETY: as above.
        unsafe { r.add(k - 1).read() }
    };
    assert_eq!((first, last), (1, 3));
    chunk.commit_all();
}
