//! Model tests: random sequences of single and bulk operations on a ring,
//! checked after every step against a `VecDeque` that does the same thing.
//!
//! Capacities are tiny (1, 2, 4, 8, 16) and bulk sizes go up to twice the
//! capacity, so full, empty, over-sized requests and wrap-around (a bulk copy
//! or a chunk split in two) come up in almost every case. Positions start at
//! 0, near `2^63` or near `u64::MAX` (set directly in the control block before
//! the roles are taken), so the wrap of the 64-bit positions is covered too.
//! Element types of size 8, 3 (alignment 1) and 20 (alignment 4) check the
//! slot arithmetic beyond `u64`.
//!
//! Every value pushed is unique (a counter), so a lost, duplicated or
//! reordered element shows up as a mismatch with the model.

mod common;

use std::collections::VecDeque;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytemuck::Pod;
use proptest::prelude::*;
use shm_ring::{BulkError, MpmcRing, PopError, PushError, RingError, RingOptions, SpscRing};
use shm_segment::{HeapRegion, Region};

/// An element type for the model: unique, never all-zero values from a counter.
trait Elem: Pod + PartialEq + Debug {
    fn make(n: u64) -> Self;
}

impl Elem for u64 {
    fn make(n: u64) -> Self {
        // A bijection of n + 1 (odd multiplier): unique and non-zero.
        (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl Elem for [u8; 3] {
    fn make(n: u64) -> Self {
        let b = (n + 1).to_le_bytes();
        [b[0], b[1], b[2]]
    }
}

impl Elem for [u32; 5] {
    fn make(n: u64) -> Self {
        [
            n as u32,
            (n >> 32) as u32,
            !(n as u32),
            0xA5A5,
            (n as u32) ^ 0x5A5A_5A5A,
        ]
    }
}

/// Hands out the next unique value.
struct Values(u64);

impl Values {
    fn next<T: Elem>(&mut self) -> T {
        self.0 += 1;
        T::make(self.0 - 1)
    }

    fn many<T: Elem>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn ring_err(e: RingError) -> TestCaseError {
    TestCaseError::fail(format!("ring error: {e}"))
}

/// How a chunk is filled or read.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// `write(i, &v)` / `read(i)`.
    Whole,
    /// `write_bytes` / `read_bytes` in two halves, plus an out-of-range call.
    Bytes,
    /// `as_mut_slices` / `as_slices`.
    Slices,
}

#[derive(Debug, Clone)]
enum SpscOp {
    Push,
    PushBlocking,
    PushSlice(usize),
    PushExact(usize),
    WriteChunk {
        n: usize,
        commit: usize,
        access: Access,
    },
    Pop,
    PopBlocking,
    PopInto(usize),
    PopExact(usize),
    ReadChunk {
        n: usize,
        commit: usize,
        access: Access,
    },
    /// `slots()`, `is_empty()`, `capacity()` on both ends.
    Observe,
    /// Checks that both roles are taken, drops both ends, attaches a fresh
    /// handle to the same region and takes the roles again.
    Reattach,
}

#[derive(Debug, Clone)]
enum MpmcOp {
    Push(usize),
    PushBlocking(usize),
    PushSlice(usize, usize),
    PushExact(usize, usize),
    Pop(usize),
    PopBlocking(usize),
    PopInto(usize, usize),
    Observe(usize),
}

/// Handles used by the MPMC model: the creator, a clone, and a second attach.
const HANDLES: usize = 3;

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        Just(Access::Whole),
        Just(Access::Bytes),
        Just(Access::Slices)
    ]
}

fn spsc_op(cap: usize) -> impl Strategy<Value = SpscOp> {
    let n = move || 0..=2 * cap + 1;
    prop_oneof![
        4 => Just(SpscOp::Push),
        1 => Just(SpscOp::PushBlocking),
        3 => n().prop_map(SpscOp::PushSlice),
        2 => n().prop_map(SpscOp::PushExact),
        3 => (n(), n(), access()).prop_map(|(n, commit, access)| SpscOp::WriteChunk { n, commit, access }),
        4 => Just(SpscOp::Pop),
        1 => Just(SpscOp::PopBlocking),
        3 => n().prop_map(SpscOp::PopInto),
        2 => n().prop_map(SpscOp::PopExact),
        3 => (n(), n(), access()).prop_map(|(n, commit, access)| SpscOp::ReadChunk { n, commit, access }),
        2 => Just(SpscOp::Observe),
        1 => Just(SpscOp::Reattach),
    ]
}

fn mpmc_op(cap: usize) -> impl Strategy<Value = MpmcOp> {
    let n = move || 0..=2 * cap + 1;
    let h = || 0..HANDLES;
    prop_oneof![
        4 => h().prop_map(MpmcOp::Push),
        1 => h().prop_map(MpmcOp::PushBlocking),
        3 => (h(), n()).prop_map(|(h, n)| MpmcOp::PushSlice(h, n)),
        2 => (h(), n()).prop_map(|(h, n)| MpmcOp::PushExact(h, n)),
        4 => h().prop_map(MpmcOp::Pop),
        1 => h().prop_map(MpmcOp::PopBlocking),
        3 => (h(), n()).prop_map(|(h, n)| MpmcOp::PopInto(h, n)),
        1 => h().prop_map(MpmcOp::Observe),
    ]
}

fn capacity() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 2, 4, 8, 16])
}

/// Where positions start: fresh, around the sign bit, just before the wrap
/// of `u64`, or anywhere.
fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(0u64),
        1 => Just((1u64 << 63) - 5),
        2 => (1u64..40).prop_map(|d| u64::MAX - d),
        1 => any::<u64>(),
    ]
}

fn spsc_case() -> impl Strategy<Value = (usize, u64, bool, Vec<SpscOp>)> {
    (capacity(), start(), any::<bool>()).prop_flat_map(|(cap, start, blocking)| {
        (
            Just(cap),
            Just(start),
            Just(blocking),
            prop::collection::vec(spsc_op(cap), 1..160),
        )
    })
}

fn mpmc_case() -> impl Strategy<Value = (usize, u64, bool, Vec<MpmcOp>)> {
    (capacity(), start(), any::<bool>()).prop_flat_map(|(cap, start, blocking)| {
        (
            Just(cap),
            Just(start),
            Just(blocking),
            prop::collection::vec(mpmc_op(cap), 1..160),
        )
    })
}

/// The expected `(first, second)` lengths of a chunk of `n` slots at `pos`.
fn split(pos: u64, n: usize, cap: usize) -> (usize, usize) {
    let start = (pos % cap as u64) as usize;
    let first = n.min(cap - start);
    (first, n - first)
}

fn run_spsc<T: Elem>(
    cap: usize,
    start: u64,
    blocking: bool,
    ops: &[SpscOp],
) -> Result<(), TestCaseError> {
    let region = HeapRegion::new(SpscRing::<T>::required_size(cap));
    let opts = RingOptions::new().blocking(blocking);
    let mut ring = SpscRing::<T, _>::create(&region, cap, opts).map_err(ring_err)?;
    // Before the roles are taken: both ends read their position then.
    region
        .atomic_u64(common::TAIL_POS)
        .unwrap()
        .store(start, Ordering::Relaxed);
    region
        .atomic_u64(common::HEAD_POS)
        .unwrap()
        .store(start, Ordering::Relaxed);
    let mut tx = ring.producer().map_err(ring_err)?;
    let mut rx = ring.consumer().map_err(ring_err)?;
    let mut model: VecDeque<T> = VecDeque::new();
    let mut values = Values(0);
    // Positions as the model sees them, for the expected chunk splits.
    let (mut head, mut tail) = (start, start);
    let size = std::mem::size_of::<T>();

    for op in ops {
        let free = cap - model.len();
        match *op {
            SpscOp::Push => {
                let v: T = values.next();
                let got = tx.push(v);
                if free == 0 {
                    prop_assert_eq!(got, Err(PushError::Full(v)));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    model.push_back(v);
                }
            }
            SpscOp::PushBlocking => {
                let v: T = values.next();
                let got = tx.push_blocking(v, Duration::ZERO);
                if free == 0 {
                    prop_assert_eq!(got, Err(PushError::Full(v)));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    model.push_back(v);
                }
            }
            SpscOp::PushSlice(n) => {
                let vals: Vec<T> = values.many(n);
                let got = tx.push_slice(&vals);
                prop_assert_eq!(got, n.min(free));
                model.extend(&vals[..got]);
            }
            SpscOp::PushExact(n) => {
                let vals: Vec<T> = values.many(n);
                let got = tx.push_exact(&vals);
                if n <= free {
                    prop_assert_eq!(got, Ok(()));
                    model.extend(&vals);
                } else {
                    prop_assert_eq!(
                        got,
                        Err(BulkError::TooFew {
                            requested: n,
                            available: free
                        })
                    );
                }
            }
            SpscOp::WriteChunk { n, commit, access } => match tx.write_chunk(n) {
                Ok(mut chunk) => {
                    prop_assert!(n <= free, "write_chunk({}) with {} free", n, free);
                    prop_assert_eq!(chunk.len(), n);
                    prop_assert_eq!(chunk.is_empty(), n == 0);
                    let vals: Vec<T> = values.many(n);
                    match access {
                        Access::Whole => {
                            for (i, v) in vals.iter().enumerate() {
                                chunk.write(i, v);
                            }
                        }
                        Access::Bytes => {
                            for (i, v) in vals.iter().enumerate() {
                                let bytes = bytemuck::bytes_of(v);
                                let half = bytes.len() / 2;
                                prop_assert!(chunk.write_bytes(i, 0, &bytes[..half]).is_ok());
                                prop_assert!(chunk.write_bytes(i, half, &bytes[half..]).is_ok());
                                let over = chunk.write_bytes(i, half, &vec![0; size + 1 - half]);
                                prop_assert_eq!(
                                    over,
                                    Err(BulkError::TooFew {
                                        requested: size + 1,
                                        available: size
                                    })
                                );
                                let wrapped = chunk.write_bytes(i, usize::MAX, &[0]);
                                prop_assert_eq!(
                                    wrapped,
                                    Err(BulkError::TooFew {
                                        requested: usize::MAX,
                                        available: size
                                    })
                                );
                            }
                        }
                        Access::Slices => {
                            // SAFETY: the ring lives on this test's heap and
                            // no other thread or process touches it.
                            let (a, b) = unsafe { chunk.as_mut_slices() };
                            prop_assert_eq!((a.len(), b.len()), split(tail, n, cap));
                            a.copy_from_slice(&vals[..a.len()]);
                            let rest = a.len();
                            b.copy_from_slice(&vals[rest..]);
                        }
                    }
                    if commit > n {
                        // Past the chunk: a panic, and nothing published.
                        let r = catch_unwind(AssertUnwindSafe(move || chunk.commit(commit)));
                        prop_assert!(
                            r.is_err(),
                            "write commit({}) of {} did not panic",
                            commit,
                            n
                        );
                    } else {
                        prop_assert_eq!(chunk.written(), n);
                        chunk.commit(commit);
                        model.extend(&vals[..commit]);
                    }
                }
                Err(e) => {
                    prop_assert!(n > free, "write_chunk({}) refused with {} free", n, free);
                    prop_assert_eq!(
                        e,
                        BulkError::TooFew {
                            requested: n,
                            available: free
                        }
                    );
                }
            },
            SpscOp::Pop => match model.pop_front() {
                Some(v) => prop_assert_eq!(rx.pop(), Ok(v)),
                None => prop_assert_eq!(rx.pop(), Err(PopError::Empty)),
            },
            SpscOp::PopBlocking => {
                let got = rx.pop_blocking(Duration::ZERO);
                prop_assert_eq!(got, model.pop_front().ok_or(PopError::Empty));
            }
            SpscOp::PopInto(k) => {
                let mut out = vec![T::zeroed(); k];
                let got = rx.pop_into(&mut out);
                prop_assert_eq!(got, k.min(model.len()));
                let want: Vec<T> = model.drain(..got).collect();
                prop_assert_eq!(&out[..got], &want[..]);
                prop_assert!(
                    out[got..].iter().all(|v| *v == T::zeroed()),
                    "pop_into wrote past what it returned"
                );
            }
            SpscOp::PopExact(k) => {
                let mut out = vec![T::zeroed(); k];
                let len = model.len();
                match rx.pop_exact(&mut out) {
                    Ok(()) => {
                        prop_assert!(k <= len);
                        let want: Vec<T> = model.drain(..k).collect();
                        prop_assert_eq!(out, want);
                    }
                    Err(e) => {
                        prop_assert!(k > len);
                        prop_assert_eq!(
                            e,
                            BulkError::TooFew {
                                requested: k,
                                available: len
                            }
                        );
                        prop_assert!(
                            out.iter().all(|v| *v == T::zeroed()),
                            "a failed pop_exact wrote"
                        );
                    }
                }
            }
            SpscOp::ReadChunk { n, commit, access } => {
                let len = model.len();
                match rx.read_chunk(n) {
                    Ok(chunk) => {
                        prop_assert!(n <= len);
                        prop_assert_eq!(chunk.len(), n);
                        prop_assert_eq!(chunk.is_empty(), n == 0);
                        let want: Vec<T> = model.iter().take(n).copied().collect();
                        match access {
                            Access::Whole => {
                                for (i, w) in want.iter().enumerate() {
                                    prop_assert_eq!(chunk.read(i), *w);
                                }
                            }
                            Access::Bytes => {
                                for (i, w) in want.iter().enumerate() {
                                    let mut bytes = vec![0u8; size];
                                    let half = size / 2;
                                    prop_assert!(chunk
                                        .read_bytes(i, 0, &mut bytes[..half])
                                        .is_ok());
                                    prop_assert!(chunk
                                        .read_bytes(i, half, &mut bytes[half..])
                                        .is_ok());
                                    prop_assert_eq!(&bytes[..], bytemuck::bytes_of(w));
                                    let mut over = vec![0u8; size + 1];
                                    let err = chunk.read_bytes(i, 0, &mut over);
                                    prop_assert_eq!(
                                        err,
                                        Err(BulkError::TooFew {
                                            requested: size + 1,
                                            available: size
                                        })
                                    );
                                }
                            }
                            Access::Slices => {
                                // SAFETY: the ring lives on this test's heap
                                // and no other thread or process touches it.
                                let (a, b) = unsafe { chunk.as_slices() };
                                prop_assert_eq!((a.len(), b.len()), split(head, n, cap));
                                prop_assert_eq!([a, b].concat(), want);
                            }
                        }
                        if commit > n {
                            // Past the chunk: a panic, and nothing released.
                            let r = catch_unwind(AssertUnwindSafe(move || chunk.commit(commit)));
                            prop_assert!(
                                r.is_err(),
                                "read commit({}) of {} did not panic",
                                commit,
                                n
                            );
                        } else {
                            chunk.commit(commit);
                            model.drain(..commit);
                        }
                    }
                    Err(e) => {
                        prop_assert!(n > len);
                        prop_assert_eq!(
                            e,
                            BulkError::TooFew {
                                requested: n,
                                available: len
                            }
                        );
                    }
                }
            }
            SpscOp::Observe => {
                prop_assert_eq!(tx.slots(), free);
                prop_assert_eq!(rx.slots(), model.len());
                prop_assert_eq!(rx.is_empty(), model.is_empty());
                prop_assert_eq!(tx.capacity(), cap);
                prop_assert_eq!(ring.capacity(), cap);
            }
            SpscOp::Reattach => {
                let me = std::process::id();
                let taken = matches!(ring.producer(), Err(RingError::RoleTaken { role: "producer", holder, .. }) if holder.pid == me);
                prop_assert!(taken, "the producer role was not reported taken");
                let taken = matches!(ring.consumer(), Err(RingError::RoleTaken { role: "consumer", holder, .. }) if holder.pid == me);
                prop_assert!(taken, "the consumer role was not reported taken");
                drop(tx);
                drop(rx);
                ring = SpscRing::<T, _>::attach(&region).map_err(ring_err)?;
                prop_assert_eq!(ring.capacity(), cap);
                tx = ring.producer().map_err(ring_err)?;
                rx = ring.consumer().map_err(ring_err)?;
            }
        }
        // Each step only adds or only takes: move the model's positions.
        let before = cap - free;
        if model.len() >= before {
            tail = tail.wrapping_add((model.len() - before) as u64);
        } else {
            head = head.wrapping_add((before - model.len()) as u64);
        }
        prop_assert_eq!(ring.len(), model.len());
        prop_assert_eq!(ring.is_empty(), model.is_empty());
    }
    Ok(())
}

fn run_mpmc<T: Elem>(
    cap: usize,
    start: u64,
    blocking: bool,
    ops: &[MpmcOp],
) -> Result<(), TestCaseError> {
    let size = MpmcRing::<T>::required_size(cap);
    let region = HeapRegion::new(size);
    let opts = RingOptions::new().blocking(blocking);
    let ring = MpmcRing::<T, _>::create(&region, cap, opts).map_err(ring_err)?;
    if start != 0 {
        // Move the whole ring to `start`: both positions, and every slot's
        // sequence to "free for position p" (2p) for the next lap.
        let slot = common::mpmc_slot_size::<T>();
        let slots = common::mpmc_slots_offset::<T>();
        for i in 0..cap as u64 {
            let p = start.wrapping_add(i);
            let at = slots + (p % cap as u64) as usize * slot;
            region
                .atomic_u64(at)
                .unwrap()
                .store(p.wrapping_mul(2), Ordering::Relaxed);
        }
        region
            .atomic_u64(common::TAIL_POS)
            .unwrap()
            .store(start, Ordering::Relaxed);
        region
            .atomic_u64(common::HEAD_POS)
            .unwrap()
            .store(start, Ordering::Relaxed);
    }
    let handles = [
        ring.clone(),
        ring.clone(),
        MpmcRing::<T, _>::attach(&region).map_err(ring_err)?,
    ];
    let mut model: VecDeque<T> = VecDeque::new();
    let mut values = Values(0);

    for op in ops {
        let free = cap - model.len();
        match *op {
            MpmcOp::Push(h) => {
                let v: T = values.next();
                let got = handles[h].push(v);
                if free == 0 {
                    prop_assert_eq!(got, Err(PushError::Full(v)));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    model.push_back(v);
                }
            }
            MpmcOp::PushBlocking(h) => {
                let v: T = values.next();
                let got = handles[h].push_blocking(v, Duration::ZERO);
                if free == 0 {
                    prop_assert_eq!(got, Err(PushError::Full(v)));
                } else {
                    prop_assert_eq!(got, Ok(()));
                    model.push_back(v);
                }
            }
            MpmcOp::PushSlice(h, n) => {
                let vals: Vec<T> = values.many(n);
                let got = handles[h].push_slice(&vals);
                prop_assert_eq!(got, n.min(free));
                model.extend(&vals[..got]);
            }
            MpmcOp::PushExact(h, n) => {
                let vals: Vec<T> = values.many(n);
                let got = handles[h].push_exact(&vals);
                if n <= free {
                    prop_assert_eq!(got, Ok(()));
                    model.extend(&vals);
                } else {
                    prop_assert_eq!(
                        got,
                        Err(BulkError::TooFew {
                            requested: n,
                            available: free
                        })
                    );
                }
            }
            MpmcOp::Pop(h) => {
                prop_assert_eq!(handles[h].pop(), model.pop_front().ok_or(PopError::Empty));
            }
            MpmcOp::PopBlocking(h) => {
                // Empty, never Stalled: nothing was claimed without being published.
                let got = handles[h].pop_blocking(Duration::ZERO);
                prop_assert_eq!(got, model.pop_front().ok_or(PopError::Empty));
            }
            MpmcOp::PopInto(h, k) => {
                let mut out = vec![T::zeroed(); k];
                let got = handles[h].pop_into(&mut out);
                prop_assert_eq!(got, k.min(model.len()));
                let want: Vec<T> = model.drain(..got).collect();
                prop_assert_eq!(&out[..got], &want[..]);
                prop_assert!(
                    out[got..].iter().all(|v| *v == T::zeroed()),
                    "pop_into wrote past what it returned"
                );
            }
            MpmcOp::Observe(h) => {
                prop_assert_eq!(handles[h].capacity(), cap);
            }
        }
        for ring in &handles {
            prop_assert_eq!(ring.len(), model.len());
            prop_assert_eq!(ring.is_empty(), model.is_empty());
        }
    }
    Ok(())
}

// The u64 models run proptest's default number of cases (256, or
// PROPTEST_CASES); the other element types, which only add the slot
// arithmetic of odd sizes, fewer.
proptest! {
    #[test]
    fn spsc_u64_matches_vecdeque((cap, start, blocking, ops) in spsc_case()) {
        run_spsc::<u64>(cap, start, blocking, &ops)?;
    }

    #[test]
    fn mpmc_u64_matches_vecdeque((cap, start, blocking, ops) in mpmc_case()) {
        run_mpmc::<u64>(cap, start, blocking, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn spsc_odd_size_matches_vecdeque((cap, start, blocking, ops) in spsc_case()) {
        run_spsc::<[u8; 3]>(cap, start, blocking, &ops)?;
    }

    #[test]
    fn spsc_wide_matches_vecdeque((cap, start, blocking, ops) in spsc_case()) {
        run_spsc::<[u32; 5]>(cap, start, blocking, &ops)?;
    }

    #[test]
    fn mpmc_odd_size_matches_vecdeque((cap, start, blocking, ops) in mpmc_case()) {
        run_mpmc::<[u8; 3]>(cap, start, blocking, &ops)?;
    }

    #[test]
    fn mpmc_wide_matches_vecdeque((cap, start, blocking, ops) in mpmc_case()) {
        run_mpmc::<[u32; 5]>(cap, start, blocking, &ops)?;
    }
}

/// The heap constructors give working ends, as the docs promise.
#[test]
fn new_heap_rings_work() {
    let (mut tx, mut rx) = SpscRing::<u64>::new_heap(4).unwrap();
    assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5]), 4);
    let mut out = [0; 8];
    assert_eq!(rx.pop_into(&mut out), 4);
    assert_eq!(out[..4], [1, 2, 3, 4]);

    let ring = MpmcRing::<u64>::new_heap(4).unwrap();
    assert_eq!(ring.push_slice(&[1, 2, 3, 4, 5]), 4);
    assert_eq!(ring.pop_into(&mut out), 4);
    assert_eq!(out[..4], [1, 2, 3, 4]);
}
