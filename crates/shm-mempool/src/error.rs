//! Errors of the pool and the channel.

use shm_segment::Target;

use crate::{BlockId, BlockState};

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
    /// Every block is in use.
    #[error("get {target}: all {blocks} blocks are in use")]
    Exhausted {
        /// The pool's region.
        target: Target,
        /// How many blocks the pool has.
        blocks: usize,
    },
    /// Every slot of the pool's owner table belongs to a live process (or
    /// to a separately attached handle): a process needs a slot of its own
    /// to take blocks. Slots of processes that are gone are taken over
    /// first (as [`reclaim_dead`](crate::MemPool::reclaim_dead) does).
    #[error(
        "{target}: all {slots} owner slots of the pool belong to live processes; one more \
         process (or separately attached handle) cannot take blocks"
    )]
    TooManyProcesses {
        /// The pool's region.
        target: Target,
        /// The size of the owner table ([`OWNER_SLOTS`](crate::OWNER_SLOTS)).
        slots: usize,
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
    #[error("{op} {target}: block id {} is out of range (the pool has {blocks} blocks)", id.0)]
    OutOfRange {
        /// The operation: `"put"`, `"from_id"`, `"recover_orphans"`…
        op: &'static str,
        /// The pool's region.
        target: Target,
        /// The id given.
        id: BlockId,
        /// How many blocks the pool has.
        blocks: usize,
    },
    /// A block that is not in the state the operation needs: a second
    /// [`from_id`](crate::MemPool::from_id) of one id (the first claimed it),
    /// a double [`put`](crate::MemPool::put), an id of a block some guard
    /// holds, or a [`Block`](crate::Block) whose block is no longer its own
    /// (its record changed under it). Nothing was changed.
    #[error(
        "{op} block {} of {target}: the block is {found}, not {expected}{}",
        id.0,
        if *expected == BlockState::Held { " by this handle" } else { "" }
    )]
    WrongState {
        /// The operation: `"put"`, `"from_id"`, `"into_id"`, `"drop"`, `"recv"`…
        op: &'static str,
        /// The pool's region.
        target: Target,
        /// The block.
        id: BlockId,
        /// The state the operation needs: [`BlockState::InTransit`] for
        /// `put` and `from_id`; [`BlockState::Held`] (by the handle's
        /// [`Block`](crate::Block), under the very word it took the block
        /// with) for `into_id`, `send` and dropping a block.
        expected: BlockState,
        /// The state it is in.
        found: BlockState,
    },
    /// A [`Block`](crate::Block) used in a process made by `fork(2)` after
    /// the block was taken: the block is the parent's, so the child's copy
    /// of the handle is inert (it errors, and its drop gives nothing back).
    /// The pool handle itself works in the child: take blocks of its own.
    #[error(
        "{op} block {} of {target}: this handle was inherited across fork(2); the block \
         belongs to the process that took it, so the handle is inert here",
        id.0
    )]
    ForkedHandle {
        /// The operation.
        op: &'static str,
        /// The pool's region.
        target: Target,
        /// The block.
        id: BlockId,
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
            PoolError::TooManyProcesses { .. } => std::io::ErrorKind::Other,
            PoolError::Corrupted { .. } => std::io::ErrorKind::InvalidData,
            PoolError::ForkedHandle { .. } => std::io::ErrorKind::PermissionDenied,
            _ => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, err)
    }
}
