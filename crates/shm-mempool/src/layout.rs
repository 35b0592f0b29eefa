//! The pool's and the channel's shared layout as numbers: the offsets and
//! word encodings that tests simulating a dead or hostile peer write into
//! a region. Computed from the very structures the code uses, so a test
//! cannot drift from the layout. Not a stable API.

use std::mem::{offset_of, size_of};

use crate::pool::{Control, Meta, CONTROL_OFFSET, META_OFFSET, OWNERS_OFFSET};

/// The layout version these numbers describe.
pub const VERSION: u32 = crate::pool::LAYOUT_VERSION;

/// The free-order word (`u32`: 1 FIFO, 2 LIFO).
pub const ORDER: usize = CONTROL_OFFSET + offset_of!(Control, order);
/// The LIFO stack's head (`u64`: tag << 40 | mark << 32 | index + 1, 0 =
/// empty; mark 0 none, 1 pushed, 2 + s popped by slot s).
pub const HEAD: usize = CONTROL_OFFSET + offset_of!(Control, stack);
/// The FIFO free queue's head position (`u64`).
pub const FIFO_HEAD: usize = CONTROL_OFFSET + offset_of!(Control, head);
/// The FIFO free queue's tail position (`u64`).
pub const FIFO_TAIL: usize = CONTROL_OFFSET + offset_of!(Control, tail);
/// The channel queue's head position (`u64`).
pub const SENT_HEAD: usize = CONTROL_OFFSET + offset_of!(Control, sent_head);
/// The channel queue's tail position (`u64`).
pub const SENT_TAIL: usize = CONTROL_OFFSET + offset_of!(Control, sent_tail);
/// The flags word (`u32`; bit 0: receivers sleep on a futex).
pub const FLAGS: usize = CONTROL_OFFSET + offset_of!(Control, flags);

/// The owner table: [`SLOTS`] words, each a `ProcessId` word (0 = free).
pub const OWNERS: usize = OWNERS_OFFSET;
/// Slots in the owner table.
pub const SLOTS: u32 = crate::pool::SLOTS;
/// An owner word with this bit set: a reclaimer took the slot over.
pub const RECLAIMING: u64 = crate::pool::RECLAIMING;

/// The first block record.
pub const RECORDS: usize = META_OFFSET;
/// Bytes per record.
pub const RECORD: usize = size_of::<Meta>();
/// Offset in a record of the LIFO link (`u32`: index + 1, 0 = end).
pub const RECORD_NEXT: usize = offset_of!(Meta, next);
/// Offset in a record of the bytes used (`u32`).
pub const RECORD_USED: usize = offset_of!(Meta, used);
/// Offset in a record of the state word (`u64`).
pub const RECORD_WORD: usize = offset_of!(Meta, word);

/// The state word's states (bits 0-1).
pub const FREE: u64 = crate::pool::FREE;
/// Held by the owner slot in the place bits.
pub const HELD: u64 = crate::pool::HELD;
/// Handed on as an id.
pub const IN_TRANSIT: u64 = crate::pool::IN_TRANSIT;
/// In the channel queue, at the position in the place bits.
pub const QUEUED: u64 = crate::pool::QUEUED;
/// The generation: `GEN_MASK` bits from `GEN_SHIFT`.
pub const GEN_SHIFT: u32 = crate::pool::GEN_SHIFT;
/// See [`GEN_SHIFT`].
pub const GEN_MASK: u64 = crate::pool::GEN_MASK;
/// The place (owner slot, or queue position): the bits from here.
pub const PLACE_SHIFT: u32 = crate::pool::PLACE_SHIFT;
/// In a held word's place: the block lies in its owner's `BlockCache`.
pub const CACHED: u32 = crate::pool::CACHED;

/// Where a channel's pool starts in the channel's region.
pub const CHANNEL_POOL: usize = crate::channel::POOL_OFFSET;

/// A state word: `state` at `place`, generation `generation` (mod 2^30).
///
/// # Examples
///
/// ```
/// use shm_mempool::layout::{word, HELD};
/// assert_eq!(word(HELD, 1, 5), 5 << 32 | 1 << 2 | HELD);
/// ```
pub fn word(state: u64, generation: u64, place: u32) -> u64 {
    (u64::from(place) << PLACE_SHIFT) | ((generation & GEN_MASK) << GEN_SHIFT) | state
}

/// The queues' capacity for `blocks` blocks (a power of two, at least 2).
pub fn queue_cap(blocks: u32) -> u64 {
    crate::pool::queue_cap(u64::from(blocks))
}

/// Offset of free-queue cell `c` (`u64`: stamp << 32 | block index) in a
/// pool of `blocks` blocks.
///
/// # Panics
///
/// For a block count whose layout overflows.
pub fn cell_off(blocks: u32, c: u64) -> usize {
    let offs = crate::pool::offsets(u64::from(blocks), 64).expect("a pool that fits");
    (offs.cells + c * 8) as usize
}

/// Offset of channel-queue cell `c` in a pool of `blocks` blocks.
///
/// # Panics
///
/// For a block count whose layout overflows.
pub fn sent_cell_off(blocks: u32, c: u64) -> usize {
    let offs = crate::pool::offsets(u64::from(blocks), 64).expect("a pool that fits");
    (offs.sent + c * 8) as usize
}
