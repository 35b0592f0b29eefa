//! The shared-memory layout of both rings, as byte offsets and constants
//! computed from the types the rings use (not restated by hand): for tests
//! and tools that read or corrupt a ring's memory on purpose, playing a
//! dead or hostile peer. Not a stable API.
//!
//! # Examples
//!
//! ```
//! use shm_ring::{layout, SpscRing};
//! let (mut tx, _rx) = SpscRing::<u64>::new_heap(8)?;
//! tx.push_slice(&[1, 2, 3]);
//! // The tail is the first word of the control block.
//! assert_eq!(layout::TAIL_POS, layout::CONTROL_OFFSET);
//! assert_eq!(layout::spsc_size::<u64>(8), Some(SpscRing::<u64>::required_size(8) as u64));
//! # Ok::<(), shm_ring::RingError>(())
//! ```

use std::mem::{offset_of, size_of};

use crossbeam_utils::CachePadded;

use crate::mpmc::lanes::{Lane, Records, LANES_AT};
use crate::mpmc::Slot;
use crate::shared::{Control, Layout, Side, FLAG_BLOCKING};
use crate::sync::ValueCell;
use crate::wait::{WaitWords, SEQ_AT, WAITERS_AT};

/// The control block starts here (after the 64-byte header).
pub const CONTROL_OFFSET: usize = crate::shared::CONTROL_OFFSET;
/// `Control::tail.pos`: the producers' position (the tail).
pub const TAIL_POS: usize = CONTROL_OFFSET + offset_of!(Control, tail) + offset_of!(Side, pos);
/// `Control::tail.owner`: the SPSC producer's claim.
pub const TAIL_OWNER: usize = CONTROL_OFFSET + offset_of!(Control, tail) + offset_of!(Side, owner);
/// `Control::head.pos`: the consumers' position (the head).
pub const HEAD_POS: usize = CONTROL_OFFSET + offset_of!(Control, head) + offset_of!(Side, pos);
/// `Control::head.owner`: the SPSC consumer's claim.
pub const HEAD_OWNER: usize = CONTROL_OFFSET + offset_of!(Control, head) + offset_of!(Side, owner);
/// `Control::items`: the consumers' futex word (`u32`).
pub const ITEMS_SEQ: usize = CONTROL_OFFSET + offset_of!(Control, items) + SEQ_AT;
/// `Control::items.waiters`: the consumers' sleeper count word.
pub const ITEMS_WAITERS: usize = CONTROL_OFFSET + offset_of!(Control, items) + WAITERS_AT;
/// `Control::room`: the producers' futex word (`u32`).
pub const ROOM_SEQ: usize = CONTROL_OFFSET + offset_of!(Control, room) + SEQ_AT;
/// `Control::room.waiters`: the producers' sleeper count word.
pub const ROOM_WAITERS: usize = CONTROL_OFFSET + offset_of!(Control, room) + WAITERS_AT;
/// The sleeper count in a `*_WAITERS` word (its low bits).
pub const WAITERS_COUNT_MASK: u64 = crate::wait::COUNT_MASK;
/// `Control::flags`: the `FLAG_*` bits.
pub const FLAGS: usize = CONTROL_OFFSET + offset_of!(Control, flags);
/// The flag bit of a ring created with `RingOptions::blocking(true)`.
pub const FLAG_BLOCKING_BIT: u64 = FLAG_BLOCKING;
/// Cache lines (`CachePadded`, 128 bytes) of the control block: tail,
/// head, items, room, flags.
pub const CONTROL_LINES: usize = size_of::<Control>() / size_of::<CachePadded<WaitWords>>();
/// The control block's size.
pub const CONTROL_SIZE: usize = size_of::<Control>();
/// The SPSC ring's layout version.
pub const SPSC_VERSION: u32 = crate::spsc::LAYOUT_VERSION;
/// The MPMC ring's layout version.
pub const MPMC_VERSION: u32 = crate::mpmc::LAYOUT_VERSION;
/// The MPMC ring's claim records start here, after the control block.
pub const RECORDS_OFFSET: usize = crate::shared::extra_offset();
/// `Records::counts`: positions skipped (`u64`), then slots reclaimed (`u64`).
pub const COUNTS_OFFSET: usize = RECORDS_OFFSET + offset_of!(Records, counts);
/// `Records::lanes`: the claim lanes.
pub const LANES_OFFSET: usize = RECORDS_OFFSET + LANES_AT;
/// Bytes per lane: `{ owner, pos, len }` on its own 64-byte line.
pub const LANE_SIZE: usize = size_of::<Lane>();
/// Lanes per MPMC ring.
pub const LANES: usize = crate::mpmc::lanes::LANES;

/// Where the first slot of an SPSC ring of `T` starts.
pub fn spsc_slots_offset<T>() -> usize {
    Layout::<ValueCell<T>>::slots_offset()
}

/// Where the first slot of an MPMC ring of `T` starts.
pub fn mpmc_slots_offset<T>() -> usize {
    Layout::<Slot<T>>::slots_offset()
}

/// Bytes per SPSC slot of `T` (the element alone).
pub fn spsc_slot_size<T>() -> usize {
    size_of::<ValueCell<T>>()
}

/// Bytes per MPMC slot of `T`: `#[repr(C)] { seq: u64, value: T }`.
pub fn mpmc_slot_size<T>() -> usize {
    size_of::<Slot<T>>()
}

/// The total size of an SPSC ring of exactly `capacity` slots of `T` (not
/// rounded up, unlike `required_size`), as its header records it; `None`
/// on overflow.
pub fn spsc_size<T>(capacity: u64) -> Option<u64> {
    Layout::<ValueCell<T>>::size(capacity)
}

/// The total size of an MPMC ring of exactly `capacity` slots of `T`, as
/// for [`spsc_size`].
pub fn mpmc_size<T>(capacity: u64) -> Option<u64> {
    Layout::<Slot<T>>::size(capacity)
}
