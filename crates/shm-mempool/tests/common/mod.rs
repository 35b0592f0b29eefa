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
// The pool's shared layout, from the crate itself (`shm_mempool::layout`,
// computed from the structures the code uses). Only tests that simulate a
// dead or hostile peer use these.

pub(crate) use shm_mempool::layout::{
    cell_off, queue_cap, sent_cell_off, CHANNEL_POOL, FIFO_HEAD, FIFO_TAIL, FREE, HEAD, HELD,
    IN_TRANSIT, ORDER, OWNERS, QUEUED, RECORD, RECORDS, SENT_HEAD, SENT_TAIL, SLOTS,
};
use shm_mempool::layout::{RECORD_NEXT, RECORD_WORD};

/// Offset of block `i`'s `next` link (index + 1, 0 = end).
pub(crate) fn next_off(i: u32) -> usize {
    RECORDS + i as usize * RECORD + RECORD_NEXT
}

/// Offset of block `i`'s state/owner word.
pub(crate) fn word_off(i: u32) -> usize {
    RECORDS + i as usize * RECORD + RECORD_WORD
}

/// Offset of owner slot `s`'s word.
pub(crate) fn owner_off(s: u32) -> usize {
    OWNERS + s as usize * 8
}

/// The word of a block held through owner slot `slot`, at generation `gen`.
pub(crate) fn held_word(slot: u32, gen: u64) -> u64 {
    shm_mempool::layout::word(HELD, gen, slot)
}

/// The state bits of a word.
pub(crate) fn state(word: u64) -> u64 {
    word & 3
}

/// The generation bits of a word.
pub(crate) fn generation(word: u64) -> u64 {
    (word >> shm_mempool::layout::GEN_SHIFT) & shm_mempool::layout::GEN_MASK
}

/// The place bits of a word (owner slot, or queue position).
pub(crate) fn place(word: u64) -> u32 {
    (word >> shm_mempool::layout::PLACE_SHIFT) as u32
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

/// Writes owner slot `s`'s word straight into the pool's region.
pub(crate) fn set_owner(region: &impl Region, s: u32, word: u64) {
    region
        .atomic_u64(owner_off(s))
        .unwrap()
        .store(word, Ordering::Release);
}

/// Reads owner slot `s`'s word.
pub(crate) fn owner(region: &impl Region, s: u32) -> u64 {
    region.load_u64(owner_off(s), Ordering::Acquire).unwrap()
}

/// A `ProcessId` word of a process that is gone: this process's pid with
/// another start time (the process that had our pid before us).
pub(crate) fn dead_owner() -> u64 {
    let mut id = shm_segment::ProcessId::current();
    id.start_time += 1;
    id.to_word()
}

/// Makes block `i` held through slot `slot` by a dead process (as if that
/// process took it after a peer wrongly freed it from under a guard here,
/// and then died), two generations on.
pub(crate) fn steal_for_the_dead(region: &impl Region, slot: u32, i: u32) {
    set_owner(region, slot, dead_owner());
    let w = raw_word(region, i);
    set_raw_word(region, i, held_word(slot, generation(w) + 2));
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
