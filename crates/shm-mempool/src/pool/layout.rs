//! The shared layout: the control block, the per-block records, and the
//! offsets of every part for a block count and size.

use super::*;

/// A futex word and the count of processes sleeping on it, for receivers
/// that wait on the channel queue. Plain std atomics even under loom: the
/// futex needs a real address, and the models do not block.
#[repr(C)]
#[derive(Default)]
pub(crate) struct WaitWords {
    /// Bumped by a sender that saw sleepers; sleepers wait on its value.
    pub(crate) seq: std::sync::atomic::AtomicU32,
    /// How many are about to sleep or sleeping; senders skip the syscall at 0.
    pub(crate) waiters: std::sync::atomic::AtomicU32,
}

#[repr(C)]
pub(crate) struct Control {
    /// [`ORDER_FIFO`] or [`ORDER_LIFO`]; written before the header is
    /// published, read once by `attach`.
    pub(crate) order: CachePadded<AtomicU32>,
    /// LIFO: tag (bits 40-63), pending mark (32-39: 0 none, 1 pushed, 2 + s
    /// popped by slot `s`) and link of the top block (0-31: index + 1, 0 =
    /// empty). See `free.rs`.
    pub(crate) stack: CachePadded<AtomicU64>,
    /// FIFO free queue: the position to take from next. A hint: it lags the
    /// truth by at most the takers that did not move it on yet.
    pub(crate) head: CachePadded<AtomicU64>,
    /// FIFO free queue: the position to fill next; a hint in the same way.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// The channel queue's head and tail hints (the same algorithm).
    pub(crate) sent_head: CachePadded<AtomicU64>,
    pub(crate) sent_tail: CachePadded<AtomicU64>,
    /// Receivers sleeping on the channel queue.
    pub(crate) wait: CachePadded<WaitWords>,
    /// `FLAG_*` bits, written before the header is published, read once on attach.
    pub(crate) flags: CachePadded<AtomicU32>,
}

/// One per block.
#[repr(C)]
pub(crate) struct Meta {
    /// LIFO: link to the next free block (index + 1, 0 = end); meaningful
    /// while free.
    pub(crate) next: AtomicU32,
    /// Bytes of the block in use, as set by the writer (for channels).
    pub(crate) used: AtomicU32,
    /// State (bits 0-1), generation (2-31) and place (32-63).
    pub(crate) word: AtomicU64,
}

/// The queues' capacity for `blocks` blocks: a power of two, at least 2.
pub(crate) fn queue_cap(blocks: u64) -> u64 {
    blocks.next_power_of_two().max(2)
}

/// Where the cells and the blocks start, and the total size, for `blocks`
/// blocks of `block_size` bytes (a multiple of 64).
pub(crate) struct Offsets {
    pub(crate) cells: u64,
    pub(crate) sent: u64,
    pub(crate) data: u64,
    pub(crate) total: u64,
}

pub(crate) fn offsets(blocks: u64, block_size: u64) -> Option<Offsets> {
    let metas = blocks.checked_mul(std::mem::size_of::<Meta>() as u64)?;
    let cells = (META_OFFSET as u64)
        .checked_add(metas)?
        .checked_next_multiple_of(std::mem::align_of::<AtomicU64>() as u64)?;
    let cell_bytes = queue_cap(blocks).checked_mul(std::mem::size_of::<AtomicU64>() as u64)?;
    let sent = cells.checked_add(cell_bytes)?;
    let data = sent
        .checked_add(cell_bytes)?
        .checked_next_multiple_of(BLOCK_ALIGN as u64)?;
    let total = data.checked_add(blocks.checked_mul(block_size)?)?;
    Some(Offsets {
        cells,
        sent,
        data,
        total,
    })
}

/// [`MemPool::required_size`] without the panic: `None` when it overflows.
pub(crate) fn checked_size(blocks: usize, block_size: usize) -> Option<u64> {
    let size = (block_size.max(1) as u64).checked_next_multiple_of(BLOCK_ALIGN as u64)?;
    offsets(blocks as u64, size).map(|o| o.total)
}
