//! Errors of the pool and the channel.

use shm_segment::Target;

use crate::BlockId;

/// What went wrong with a pool or a channel.
///
/// # Examples
///
/// ```
/// use shm_mempool::{MemPool, PoolError};
/// let pool = MemPool::new_heap(1, 64)?;
/// let _only = pool.get()?;
/// assert!(matches!(pool.get(), Err(PoolError::Exhausted { .. })));
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The segment layer failed: a bad or foreign header, a read-only region…
    #[error(transparent)]
    Segment(#[from] shm_segment::Error),
    /// The ring of a channel failed to lay out or attach.
    #[error(transparent)]
    Ring(#[from] shm_ring::RingError),
    /// Every block is in use.
    #[error("{target}: all {blocks} blocks are in use")]
    Exhausted {
        /// The pool's region.
        target: Target,
        /// How many blocks the pool has.
        blocks: u32,
    },
    /// A channel's ring has no free slot. Rare: the ring has a slot per
    /// block, but a receiver stalled (or killed) between taking a position
    /// and releasing it keeps that slot busy until it goes on.
    #[error("{target}: the channel's ring is full")]
    ChannelFull {
        /// The channel's region.
        target: Target,
    },
    /// A block count or block size the pool cannot have.
    #[error("{target}: {reason}")]
    InvalidLayout {
        /// The pool's region.
        target: Target,
        /// What is wrong.
        reason: String,
    },
    /// An id that names no block of this pool.
    #[error("{target}: block id {} is out of range (the pool has {blocks} blocks)", id.0)]
    OutOfRange {
        /// The pool's region.
        target: Target,
        /// The id given.
        id: BlockId,
        /// How many blocks the pool has.
        blocks: u32,
    },
    /// Giving back or taking over a block that is not in the state the
    /// operation needs: a double `put`, or an id that was never handed out.
    #[error("{target}: block {} is {found}, not {expected}", id.0)]
    WrongState {
        /// The pool's region.
        target: Target,
        /// The block.
        id: BlockId,
        /// The state the operation needs.
        expected: &'static str,
        /// The state it is in.
        found: &'static str,
    },
    /// Shared state that no correct peer could have written (an index out of
    /// range in the free list, a cycle). Nothing out of bounds was touched.
    #[error("{target}: the pool is corrupted: {what}")]
    Corrupted {
        /// The pool's region.
        target: Target,
        /// What was found.
        what: String,
    },
}

impl From<PoolError> for std::io::Error {
    fn from(err: PoolError) -> Self {
        let kind = match &err {
            PoolError::Segment(e) => e.kind(),
            PoolError::Exhausted { .. } => std::io::ErrorKind::OutOfMemory,
            PoolError::ChannelFull { .. } => std::io::ErrorKind::WouldBlock,
            PoolError::Corrupted { .. } => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, err)
    }
}
