//! Fuzz bytes as a sequence of ring operations, on an SPSC or an MPMC ring
//! in a `HeapRegion`, checked step by step against a `VecDeque`.
//!
//! Byte 0 picks the set-up: bits 0-2 the capacity (1 to 128), bit 3 a
//! futex (blocking) ring, bits 4-5 where the 64-bit positions start (0,
//! near 2^63, near u64::MAX, or at a value from the input), bit 6 SPSC or
//! MPMC. Then each operation takes an opcode byte and a size byte (and a
//! commit byte for chunks). Any mismatch with the model panics; ASan (on by
//! default in `cargo fuzz`) catches any access outside the region.
#![no_main]

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shm_ring::{BulkError, MpmcRing, PopError, PushError, RingOptions, SpscRing};
use shm_segment::{HeapRegion, Region};

// The shared layout (crates/shm-ring/src/shared.rs, mpmc.rs): the control
// block starts at 128 with the tail position, the head position follows on
// the next 128-byte line; MPMC slots are `{ seq: u64, value: T }` at the end.
const TAIL_POS: usize = 128;
const HEAD_POS: usize = 256;
const MPMC_SLOT: usize = 16;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u64(&mut self) -> u64 {
        let mut v = 0u64;
        for _ in 0..8 {
            v = v << 8 | u64::from(self.byte().unwrap_or(0));
        }
        v
    }
}

/// Unique, non-zero values.
struct Values(u64);

impl Values {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }

    fn many(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn split(pos: u64, n: usize, cap: usize) -> (usize, usize) {
    let start = (pos % cap as u64) as usize;
    let first = n.min(cap - start);
    (first, n - first)
}

fn spsc(input: &mut Input<'_>, cap: usize, blocking: bool, start: u64) {
    let region = HeapRegion::new(SpscRing::<u64>::required_size(cap));
    let opts = RingOptions::new().blocking(blocking);
    let ring = SpscRing::<u64, _>::create(&region, cap, opts).unwrap();
    region
        .atomic_u64(TAIL_POS)
        .unwrap()
        .store(start, Ordering::Relaxed);
    region
        .atomic_u64(HEAD_POS)
        .unwrap()
        .store(start, Ordering::Relaxed);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut model = VecDeque::new();
    let mut values = Values(0);
    let (mut head, mut tail) = (start, start);

    while let Some(op) = input.byte() {
        let n = usize::from(input.byte().unwrap_or(0)) % (2 * cap + 2);
        let free = cap - model.len();
        let before = model.len();
        match op % 12 {
            0 => {
                let v = values.next();
                match tx.push(v) {
                    Ok(()) => model.push_back(v),
                    Err(e) => assert_eq!((e, free), (PushError::Full(v), 0)),
                }
                assert_eq!(model.len() - before, free.min(1));
            }
            1 => {
                let vals = values.many(n);
                let got = tx.push_slice(&vals);
                assert_eq!(got, n.min(free));
                model.extend(&vals[..got]);
            }
            2 => {
                let vals = values.many(n);
                match tx.push_exact(&vals) {
                    Ok(()) => {
                        assert!(n <= free);
                        model.extend(&vals);
                    }
                    Err(e) => assert_eq!(
                        e,
                        BulkError::TooFew {
                            requested: n,
                            available: free
                        }
                    ),
                }
            }
            3 => {
                let commit = usize::from(input.byte().unwrap_or(0));
                match tx.write_chunk(n) {
                    Ok(mut chunk) => {
                        assert!(n <= free);
                        let vals = values.many(n);
                        if commit & 1 == 0 {
                            for (i, v) in vals.iter().enumerate() {
                                chunk.write_bytes(i, 0, &v.to_ne_bytes()[..3]).unwrap();
                                chunk.write_bytes(i, 3, &v.to_ne_bytes()[3..]).unwrap();
                                assert!(chunk.write_bytes(i, 1, &[0; 8]).is_err());
                            }
                        } else {
                            // SAFETY: the ring is on this thread's heap; no
                            // one else touches it.
                            let (a, b) = unsafe { chunk.as_mut_slices() };
                            assert_eq!((a.len(), b.len()), split(tail, n, cap));
                            a.copy_from_slice(&vals[..a.len()]);
                            let first = a.len();
                            b.copy_from_slice(&vals[first..]);
                        }
                        chunk.commit(n.min(commit >> 1));
                        model.extend(&vals[..n.min(commit >> 1)]);
                    }
                    Err(e) => assert_eq!(
                        e,
                        BulkError::TooFew {
                            requested: n,
                            available: free
                        }
                    ),
                }
            }
            4 => assert_eq!(rx.pop(), model.pop_front().ok_or(PopError::Empty)),
            5 => {
                let mut out = vec![0u64; n];
                let got = rx.pop_into(&mut out);
                assert_eq!(got, n.min(model.len()));
                assert!(out[..got]
                    .iter()
                    .eq(model.drain(..got).collect::<Vec<_>>().iter()));
                assert!(out[got..].iter().all(|&v| v == 0));
            }
            6 => {
                let mut out = vec![0u64; n];
                match rx.pop_exact(&mut out) {
                    Ok(()) => assert!(out.iter().eq(model.drain(..n).collect::<Vec<_>>().iter())),
                    Err(e) => {
                        assert_eq!(
                            e,
                            BulkError::TooFew {
                                requested: n,
                                available: model.len()
                            }
                        );
                        assert!(out.iter().all(|&v| v == 0));
                    }
                }
            }
            7 => {
                let commit = usize::from(input.byte().unwrap_or(0));
                let len = model.len();
                match rx.read_chunk(n) {
                    Ok(chunk) => {
                        assert!(n <= len);
                        if commit & 1 == 0 {
                            for (i, want) in model.iter().take(n).enumerate() {
                                assert_eq!(chunk.read(i), *want);
                                let mut b = [0u8; 8];
                                chunk.read_bytes(i, 0, &mut b).unwrap();
                                assert_eq!(u64::from_ne_bytes(b), *want);
                                assert!(chunk.read_bytes(i, 8, &mut [0]).is_err());
                            }
                        } else {
                            // SAFETY: as above.
                            let (a, b) = unsafe { chunk.as_slices() };
                            assert_eq!((a.len(), b.len()), split(head, n, cap));
                            assert!(a.iter().chain(b).eq(model.iter().take(n)));
                        }
                        chunk.commit(n.min(commit >> 1));
                        model.drain(..n.min(commit >> 1));
                    }
                    Err(e) => assert_eq!(
                        e,
                        BulkError::TooFew {
                            requested: n,
                            available: len
                        }
                    ),
                }
            }
            8 => {
                let v = values.next();
                match tx.push_blocking(v, Duration::ZERO) {
                    Ok(()) => model.push_back(v),
                    Err(e) => assert_eq!((e, free), (PushError::Full(v), 0)),
                }
            }
            9 => assert_eq!(
                rx.pop_blocking(Duration::ZERO),
                model.pop_front().ok_or(PopError::Empty)
            ),
            10 => {
                assert_eq!(tx.slots(), free);
                assert_eq!(rx.slots(), model.len());
                assert_eq!(rx.is_empty(), model.is_empty());
            }
            _ => {
                // Give both roles back and take them again.
                drop(tx);
                drop(rx);
                tx = ring.producer().unwrap();
                rx = ring.consumer().unwrap();
            }
        }
        if model.len() >= before {
            tail = tail.wrapping_add((model.len() - before) as u64);
        } else {
            head = head.wrapping_add((before - model.len()) as u64);
        }
        assert_eq!(ring.len(), model.len());
        assert_eq!(ring.is_empty(), model.is_empty());
    }
}

fn mpmc(input: &mut Input<'_>, cap: usize, blocking: bool, start: u64) {
    let size = MpmcRing::<u64>::required_size(cap);
    let region = HeapRegion::new(size);
    let opts = RingOptions::new().blocking(blocking);
    let ring = MpmcRing::<u64, _>::create(&region, cap, opts).unwrap();
    let slots = size - cap * MPMC_SLOT;
    for i in 0..cap as u64 {
        let p = start.wrapping_add(i);
        let at = slots + (p % cap as u64) as usize * MPMC_SLOT;
        region
            .atomic_u64(at)
            .unwrap()
            .store(p.wrapping_mul(2), Ordering::Relaxed);
    }
    region
        .atomic_u64(TAIL_POS)
        .unwrap()
        .store(start, Ordering::Relaxed);
    region
        .atomic_u64(HEAD_POS)
        .unwrap()
        .store(start, Ordering::Relaxed);
    let handles = [
        ring.clone(),
        ring,
        MpmcRing::<u64, _>::attach(&region).unwrap(),
    ];
    let mut model = VecDeque::new();
    let mut values = Values(0);

    while let Some(op) = input.byte() {
        let h = &handles[usize::from(op >> 4) % handles.len()];
        let n = usize::from(input.byte().unwrap_or(0)) % (2 * cap + 2);
        let free = cap - model.len();
        match op % 8 {
            0 | 1 => {
                let v = values.next();
                let got = if op % 8 == 0 {
                    h.push(v)
                } else {
                    h.push_blocking(v, Duration::ZERO)
                };
                match got {
                    Ok(()) => {
                        assert!(free > 0);
                        model.push_back(v);
                    }
                    Err(e) => assert_eq!((e, free), (PushError::Full(v), 0)),
                }
            }
            2 => {
                let vals = values.many(n);
                let got = h.push_slice(&vals);
                assert_eq!(got, n.min(free));
                model.extend(&vals[..got]);
            }
            3 => {
                let vals = values.many(n);
                match h.push_exact(&vals) {
                    Ok(()) => {
                        assert!(n <= free);
                        model.extend(&vals);
                    }
                    Err(e) => assert_eq!(
                        e,
                        BulkError::TooFew {
                            requested: n,
                            available: free
                        }
                    ),
                }
            }
            4 => assert_eq!(h.pop(), model.pop_front().ok_or(PopError::Empty)),
            5 => assert_eq!(
                h.pop_blocking(Duration::ZERO),
                model.pop_front().ok_or(PopError::Empty)
            ),
            6 => {
                let mut out = vec![0u64; n];
                let got = h.pop_into(&mut out);
                assert_eq!(got, n.min(model.len()));
                assert!(out[..got]
                    .iter()
                    .eq(model.drain(..got).collect::<Vec<_>>().iter()));
                assert!(out[got..].iter().all(|&v| v == 0));
            }
            _ => assert_eq!(h.capacity(), cap),
        }
        for h in &handles {
            assert_eq!(h.len(), model.len());
            assert_eq!(h.is_empty(), model.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(setup) = input.byte() else { return };
    let cap = 1usize << (setup & 7);
    let blocking = setup & 8 != 0;
    let start = match (setup >> 4) & 3 {
        0 => 0,
        1 => (1 << 63) - 3,
        2 => u64::MAX - 5,
        _ => input.u64(),
    };
    if setup & 64 == 0 {
        spsc(&mut input, cap, blocking, start);
    } else {
        mpmc(&mut input, cap, blocking, start);
    }
});
