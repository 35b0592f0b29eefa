//! Helpers for the integration tests of `shm-mempool`: the shared ones from
//! `shm-testkit` (unique names, bounded waits that back off, a small
//! deterministic PRNG, child processes that are this test binary run again
//! with a role and whose stdout lines the parent can wait for; see
//! `shm_testkit::child`), plus the pool's shared layout as far as tests
//! poke at it and the stamps the processes write into blocks.
#![allow(dead_code, unused_imports)]

use std::sync::atomic::{AtomicU64, Ordering};

use shm_segment::Region;

pub(crate) use shm_testkit::*;

// ---------------------------------------------------------------------------
// The pool's shared layout (version 2), read from
// crates/shm-mempool/src/pool.rs. Only tests that simulate a dead or hostile
// peer use these.

/// The control block: the free-order word (`u32`: 1 FIFO, 2 LIFO).
pub(crate) const ORDER: usize = 128;
/// The LIFO stack's head (`u64`: tag << 32 | index + 1, 0 = empty).
pub(crate) const HEAD: usize = 256;
/// The FIFO queue's head and tail positions (`u64` each).
pub(crate) const FIFO_HEAD: usize = 384;
pub(crate) const FIFO_TAIL: usize = 512;
/// The first block record.
pub(crate) const RECORDS: usize = 640;
/// Bytes per record: `next: u32, used: u32, word: u64`.
pub(crate) const RECORD: usize = 16;
/// The `word` states (low 2 bits); the generation is the next 10 bits.
pub(crate) const FREE: u64 = 0;
pub(crate) const HELD: u64 = 1;
pub(crate) const IN_TRANSIT: u64 = 2;
/// Where a channel's pool starts in the channel's region.
pub(crate) const CHANNEL_POOL: usize = 4096;

/// Offset of block `i`'s `next` link (index + 1, 0 = end).
pub(crate) fn next_off(i: u32) -> usize {
    RECORDS + i as usize * RECORD
}

/// Offset of block `i`'s state/owner word.
pub(crate) fn word_off(i: u32) -> usize {
    RECORDS + i as usize * RECORD + 8
}

/// Offset of FIFO cell `c` (`u64`: stamp << 32 | block index) in a pool of
/// `blocks` blocks: the cells follow the records.
pub(crate) fn cell_off(blocks: u32, c: u64) -> usize {
    RECORDS + blocks as usize * RECORD + c as usize * 8
}

/// The word a block held by `pid` with start time `start` carries, at
/// generation `gen`: state in bits 0-1 (1 = held), the generation in bits
/// 2-11, pid in bits 12-33, start time (30 bits) above.
pub(crate) fn held_word(pid: u32, start: u64, gen: u64) -> u64 {
    ((start & ((1 << 30) - 1)) << 34)
        | (u64::from(pid & ((1 << 22) - 1)) << 12)
        | ((gen & 1023) << 2)
        | HELD
}

/// The state bits of a word.
pub(crate) fn state(word: u64) -> u64 {
    word & 3
}

/// The generation bits of a word.
pub(crate) fn generation(word: u64) -> u64 {
    (word >> 2) & 1023
}

/// Reads block `i`'s word straight from the pool's region.
pub(crate) fn raw_word(region: &impl Region, i: u32) -> u64 {
    region.load_u64(word_off(i), Ordering::Acquire).unwrap()
}

/// Writes block `i`'s word straight into the pool's region.
pub(crate) fn set_raw_word(region: &impl Region, i: u32, word: u64) {
    region
        .atomic_u64(word_off(i))
        .unwrap()
        .store(word, Ordering::Release);
}

// ---------------------------------------------------------------------------
// What the processes write into blocks.

/// A stamp written into a block: who wrote it, which of their messages it
/// is, and a checksum of both, so a torn, stale or foreign block shows.
pub(crate) type Stamp = [u64; 3];

pub(crate) fn checksum(pid: u64, seq: u64) -> u64 {
    (pid.rotate_left(29) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xFF51_AFD7_ED55_8CCD)
        ^ 0xC0FF_EE00_D15E_A5E5
}

pub(crate) fn stamp(pid: u32, seq: u64) -> Stamp {
    [u64::from(pid), seq, checksum(u64::from(pid), seq)]
}

/// The `(pid, seq)` of a valid stamp; panics on a bad checksum.
pub(crate) fn check_stamp(s: &Stamp) -> (u32, u64) {
    assert_eq!(s[2], checksum(s[0], s[1]), "bad checksum in block: {s:x?}");
    (s[0] as u32, s[1])
}

/// A counter in shared memory that several processes bump.
pub(crate) fn shared_counter(region: &impl Region, offset: usize) -> &AtomicU64 {
    region.atomic_u64(offset).unwrap()
}
