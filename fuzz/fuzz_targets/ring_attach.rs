//! Fuzz bytes as the contents of a region that another (buggy or hostile)
//! process prepared: attaching either kind of ring must give an error or a
//! ring on which operations may return anything but never panic, hang, or
//! touch memory outside the region (ASan watches the heap region). Before
//! any of that, `shm_ring::inspect` (what `shm inspect` runs on any
//! segment) reads the same bytes: an error or a report whose `len` answers
//! without panicking, and for a `u64` header an error exactly when both
//! attaches refuse.
//!
//! Byte 0 picks the mode. Even: the rest of the input is the region, as is.
//! Odd: the region is built around a plausible header (the magic and ready
//! state, then kind, version, element size and alignment, capacity and
//! total size each either right or taken from the input), so that the
//! fuzzer reaches the operations behind a successful attach quickly; the
//! rest of the input fills the control block and the slots. The last bytes
//! also drive a few operations.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shm_ring::{inspect, MpmcRing, RingOptions, SpscRing};
use shm_segment::{HeapRegion, Kind, Region, HEADER_SIZE, MAGIC, READY};

const OFF_VERSION: usize = 8;
const OFF_KIND: usize = 12;
const OFF_ELEM_SIZE: usize = 16;
const OFF_ELEM_ALIGN: usize = 20;
const OFF_CAPACITY: usize = 24;
const OFF_TOTAL: usize = 32;
const OFF_STATE: usize = 44;

/// Bytes a valid `u64` ring of `cap` slots needs, for either kind.
fn size(mpmc: bool, cap: u64) -> Option<u64> {
    let (fixed, per) = if mpmc {
        (MpmcRing::<u64>::required_size(1) as u64 - 16, 16)
    } else {
        (SpscRing::<u64>::required_size(1) as u64 - 8, 8)
    };
    cap.checked_mul(per)?.checked_add(fixed)
}

fn take<const N: usize>(rest: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(rest.len());
    out[..n].copy_from_slice(&rest[..n]);
    *rest = &rest[n..];
    out
}

/// A region image (at most 64 KiB and a bit) around a plausible header.
fn plausible(mode: u8, mut rest: &[u8]) -> Vec<u8> {
    let [sel, v, k, s, a, c, t, pad] = take::<8>(&mut rest);
    let mpmc = mode & 2 != 0;
    let kind = if mpmc {
        Kind::MPMC_RING
    } else {
        Kind::SPSC_RING
    };
    let cap: u64 = if c & 0x80 == 0 {
        1 << (c & 7)
    } else {
        u64::from_le_bytes(take::<8>(&mut rest))
    };
    let exact = size(mpmc, cap).unwrap_or(u64::MAX);
    let total = match t % 4 {
        0 => u64::from_le_bytes(take::<8>(&mut rest)),
        _ => exact,
    };
    // The region: as large as the header says (bounded), give or take.
    let len = match pad % 4 {
        0 => usize::from(u16::from_le_bytes(take::<2>(&mut rest))),
        1 => (total.min(1 << 16) as usize).saturating_sub(usize::from(pad >> 2)),
        _ => total.min(1 << 16) as usize + usize::from(pad >> 2),
    };
    let mut img = vec![0u8; len.max(HEADER_SIZE)];
    let mut put = |off: usize, v: &[u8]| img[off..off + v.len()].copy_from_slice(v);
    put(0, &MAGIC.to_le_bytes());
    put(OFF_STATE, &READY.to_le_bytes());
    let pick = |bit: u8, right: u32, raw: u8| {
        if sel & bit == 0 {
            right
        } else {
            u32::from(raw)
        }
    };
    put(OFF_KIND, &pick(1, kind.0, k).to_le_bytes());
    put(OFF_VERSION, &pick(2, 1, v).to_le_bytes());
    put(OFF_ELEM_SIZE, &pick(4, 8, s).to_le_bytes());
    put(OFF_ELEM_ALIGN, &pick(8, 8, a).to_le_bytes());
    put(OFF_CAPACITY, &cap.to_le_bytes());
    put(OFF_TOTAL, &total.to_le_bytes());
    // The control block and slots from the input, repeated.
    if !rest.is_empty() {
        for (i, b) in img[HEADER_SIZE..].iter_mut().enumerate() {
            *b = rest[i % rest.len()];
        }
    }
    img
}

fn spsc_ops(ring: &SpscRing<u64, &HeapRegion>, ops: &[u8]) {
    let cap = ring.capacity();
    assert!(ring.len() <= cap);
    let (Ok(mut tx), Ok(mut rx)) = (ring.producer(), ring.consumer()) else {
        return; // a role word named a live process
    };
    let mut buf = vec![0u64; 2 * cap + 2];
    for pair in ops.chunks(2) {
        let n = usize::from(pair.get(1).copied().unwrap_or(0)) % buf.len();
        match pair[0] % 10 {
            0 => drop(tx.push(1)),
            1 => assert!(tx.push_slice(&buf[..n]) <= n),
            2 => drop(tx.push_exact(&buf[..n])),
            3 => {
                if let Ok(mut chunk) = tx.write_chunk(n) {
                    for i in 0..chunk.len() {
                        chunk.write(i, &7);
                    }
                    chunk.commit(n / 2);
                }
            }
            4 => drop(rx.pop()),
            5 => assert!(rx.pop_into(&mut buf[..n]) <= n),
            6 => drop(rx.pop_exact(&mut buf[..n])),
            7 => {
                if let Ok(chunk) = rx.read_chunk(n) {
                    for i in 0..chunk.len() {
                        let _ = chunk.read(i);
                    }
                    chunk.commit(n);
                }
            }
            8 => {
                let _ = tx.push_blocking(2, Duration::from_micros(10));
                let _ = rx.pop_blocking(Duration::from_micros(10));
            }
            _ => {
                assert!(tx.slots() <= cap);
                assert!(rx.slots() <= cap);
                assert!(ring.len() <= cap);
            }
        }
    }
}

fn mpmc_ops(ring: &MpmcRing<u64, &HeapRegion>, ops: &[u8]) {
    let cap = ring.capacity();
    let mut buf = vec![0u64; 2 * cap + 2];
    for pair in ops.chunks(2) {
        let n = usize::from(pair.get(1).copied().unwrap_or(0)) % buf.len();
        match pair[0] % 7 {
            0 => drop(ring.push(1)),
            1 => assert!(ring.push_slice(&buf[..n]) <= n),
            2 => drop(ring.push_exact(&buf[..n])),
            3 => drop(ring.pop()),
            4 => assert!(ring.pop_into(&mut buf[..n]) <= n),
            5 => {
                let _ = ring.push_blocking(2, Duration::from_micros(10));
                let _ = ring.pop_blocking(Duration::from_micros(10));
            }
            _ => assert!(ring.len() <= cap),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let img = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        plausible(mode, rest)
    };
    let region = HeapRegion::new(img.len());
    if !img.is_empty() {
        region.write_at(0, &img).unwrap();
    }
    // Inspect first: the operations below change the bytes.
    let inspected = inspect(&region);
    if let Ok(info) = &inspected {
        assert!(info.capacity.is_power_of_two());
        assert!(info.len() <= info.capacity);
        let _ = info.is_empty();
    }
    let u64_elems = img.len() >= HEADER_SIZE
        && region.read_pod::<u32>(OFF_ELEM_SIZE).unwrap() == 8
        && region.read_pod::<u32>(OFF_ELEM_ALIGN).unwrap() == 8;
    if u64_elems {
        let attachable = SpscRing::<u64, _>::attach(&region).is_ok()
            || MpmcRing::<u64, _>::attach(&region).is_ok();
        assert_eq!(inspected.is_ok(), attachable);
    }
    // The operations: driven by the input's last (up to) 32 bytes.
    let ops = &data[data.len().saturating_sub(32)..];
    if let Ok(ring) = SpscRing::<u64, _>::attach(&region) {
        spsc_ops(&ring, ops);
    }
    if let Ok(ring) = MpmcRing::<u64, _>::attach(&region) {
        mpmc_ops(&ring, ops);
    }
    let _ = SpscRing::<[u8; 3], _>::attach(&region);
    let _ = MpmcRing::<[u32; 5], _>::attach(&region);
    let _ = SpscRing::<(), _>::attach(&region);
    // Creating over whatever is there: refused if a ring is published,
    // otherwise a fresh, working ring.
    let fresh = HeapRegion::new(img.len());
    if !img.is_empty() {
        fresh.write_at(0, &img).unwrap();
    }
    // The `;` drops the `Result` (and the ring in it) before `fresh`.
    if let Ok(ring) = MpmcRing::<u64, _>::create(&fresh, 1, RingOptions::new()) {
        ring.push(5).unwrap();
        assert_eq!(ring.pop(), Ok(5));
    };
});
