//! Helpers for the integration tests of `shm-ring`: the shared ones from
//! `shm-testkit` (unique names, bounded waits that back off, a small
//! deterministic PRNG, child processes that are this test binary run again
//! with a role; see `shm_testkit::child`), plus the ring's shared layout as
//! far as tests poke at it.
#![allow(dead_code, unused_imports)]

use crossbeam_utils::CachePadded;

pub(crate) use shm_testkit::*;

// ---------------------------------------------------------------------------
// The shared layout, read from the source (crates/shm-ring/src/shared.rs and
// mpmc.rs). Only tests that simulate a dead or hostile peer use these.

/// `shared::CONTROL_OFFSET`: the control block starts here.
pub(crate) const CONTROL_OFFSET: usize = 128;
/// `Control::tail.pos`: the first word of the control block.
pub(crate) const TAIL_POS: usize = CONTROL_OFFSET;
/// `Control::tail.owner`: the SPSC producer's claim.
pub(crate) const TAIL_OWNER: usize = CONTROL_OFFSET + 8;
/// `Control::head.pos`: after the cache-padded tail side.
pub(crate) const HEAD_POS: usize = CONTROL_OFFSET + std::mem::size_of::<CachePadded<[u64; 2]>>();
/// `Control::head.owner`: the SPSC consumer's claim.
pub(crate) const HEAD_OWNER: usize = HEAD_POS + 8;
/// The SPSC ring's layout version (`spsc::LAYOUT_VERSION`).
pub(crate) const SPSC_VERSION: u32 = 2;
/// The MPMC ring's layout version (`mpmc::LAYOUT_VERSION`).
pub(crate) const MPMC_VERSION: u32 = 3;
/// `Control::items`: the consumers' futex word (`u32`, then 4 reserved
/// bytes), then its sleeper count, a `u64` whose low 24 bits count sleepers.
pub(crate) const ITEMS_SEQ: usize = HEAD_POS + (HEAD_POS - TAIL_POS);
/// `Control::items.waiters`.
pub(crate) const ITEMS_WAITERS: usize = ITEMS_SEQ + 8;
/// `Control::room`: the producers' futex word.
pub(crate) const ROOM_SEQ: usize = ITEMS_SEQ + (HEAD_POS - TAIL_POS);
/// `Control::room.waiters`.
pub(crate) const ROOM_WAITERS: usize = ROOM_SEQ + 8;
/// The sleeper count in a `*_WAITERS` word.
pub(crate) const WAITERS_COUNT_MASK: u64 = (1 << 24) - 1;
/// Words of the control block after the two sides: futex words and counts
/// (items, room) and the flags word, one cache line each.
pub(crate) const CONTROL_LINES: usize = 5;
/// The control block's size.
pub(crate) const CONTROL_SIZE: usize = CONTROL_LINES * std::mem::size_of::<CachePadded<u64>>();

/// `shared::extra_offset()`: the MPMC ring's claim records (`mpmc::Records`)
/// start here, on the first 128-byte line after the control block.
pub(crate) const RECORDS_OFFSET: usize = (CONTROL_OFFSET + CONTROL_SIZE).next_multiple_of(128);
/// `Records::counts`: positions skipped, then slots reclaimed.
pub(crate) const COUNTS_OFFSET: usize = RECORDS_OFFSET;
/// `Records::lanes`: after the cache-padded counts.
pub(crate) const LANES_OFFSET: usize = RECORDS_OFFSET + std::mem::size_of::<CachePadded<u64>>();
/// Bytes per lane: `#[repr(C, align(64))] { owner, pos, len }`.
pub(crate) const LANE_SIZE: usize = 64;
/// Lanes per MPMC ring.
pub(crate) const LANES: usize = 64;

/// Offset of the first slot in a region laid out for `capacity` slots of
/// `slot_size` bytes, when the region is exactly `required_size` bytes long
/// (the slots are the last thing in the layout).
pub(crate) fn slots_offset(required_size: usize, capacity: usize, slot_size: usize) -> usize {
    required_size - capacity * slot_size
}

/// Size of an MPMC slot holding a `T`: `#[repr(C)] { seq: AtomicU64, value: T }`.
pub(crate) fn mpmc_slot_size<T>() -> usize {
    let align = std::mem::align_of::<T>().max(8);
    (8 + std::mem::size_of::<T>()).next_multiple_of(align)
}
