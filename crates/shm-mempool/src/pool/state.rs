//! A block's record word: its state, generation and place, and
//! [`BlockState`], the state as the API names it.

/// Block states, in the low 2 bits of [`Meta::word`].
pub(crate) const FREE: u64 = 0;
pub(crate) const HELD: u64 = 1;
pub(crate) const IN_TRANSIT: u64 = 2;
pub(crate) const QUEUED: u64 = 3;
pub(crate) const STATE_MASK: u64 = 3;
/// The generation: 30 bits above the state, bumped (mod 2^30) by every change.
pub(crate) const GEN_SHIFT: u32 = 2;
pub(crate) const GEN_MASK: u64 = (1 << 30) - 1;
/// The high 32 bits: where the block is. Held: the owner's slot, with
/// [`CACHED`] set when the block lies in one of that owner's
/// [`BlockCache`](crate::BlockCache)s. Free in a FIFO pool, or queued: the
/// position (mod 2^32) of its queue cell. Else 0.
pub(crate) const PLACE_SHIFT: u32 = 32;
/// In the place of a held block: the block lies in a
/// [`BlockCache`](crate::BlockCache) of the owner slot in the other bits,
/// not out with a [`Block`](crate::Block). Layout version 4.
pub(crate) const CACHED: u32 = 1 << 31;

/// An owner word with this bit set names a reclaimer that took the slot
/// over from a dead process: the tag bit that `ProcessId::to_word` leaves
/// clear for us ([`ProcessId::WORD_TAG`](shm_segment::ProcessId::WORD_TAG),
/// bit 63; `from_word` ignores it). An owner word is `ProcessId::to_word`'s
/// packing (pid 22 bits, start time 41) plus this tag: one packing, shared
/// with the rings.
pub(crate) const RECLAIMING: u64 = shm_segment::ProcessId::WORD_TAG;

/// The word that follows `word` in state `state` at `place` (the owner's
/// slot when held, the queue position when free in a FIFO pool or queued).
#[inline]
pub(crate) fn next_word(word: u64, state: u64, place: u32) -> u64 {
    let generation = ((word >> GEN_SHIFT) + 1) & GEN_MASK;
    (u64::from(place) << PLACE_SHIFT) | (generation << GEN_SHIFT) | state
}

#[inline]
pub(crate) fn state_of(word: u64) -> u64 {
    word & STATE_MASK
}

#[inline]
pub(crate) fn place_of(word: u64) -> u32 {
    (word >> PLACE_SHIFT) as u32
}

/// The owner slot of a held word (its place without [`CACHED`]).
#[inline]
pub(crate) fn slot_of(word: u64) -> u32 {
    place_of(word) & !CACHED
}

/// Whether a held word says the block lies in its owner's cache.
#[inline]
pub(crate) fn is_cached(word: u64) -> bool {
    state_of(word) == HELD && place_of(word) & CACHED != 0
}

/// The state recorded in a block word.
pub(crate) fn block_state(word: u64) -> BlockState {
    match word & STATE_MASK {
        FREE => BlockState::Free,
        HELD => BlockState::Held,
        IN_TRANSIT => BlockState::InTransit,
        _ => BlockState::Queued,
    }
}

/// What a block is doing: the state in its record, as
/// [`PoolError::WrongState`](crate::PoolError::WrongState) names it.
///
/// # Examples
///
/// ```
/// use shm_mempool::{BlockState, MemPool, PoolError};
/// let pool = MemPool::new_heap(1, 64)?;
/// let id = pool.get()?.into_id()?;
/// pool.put(id)?;
/// match pool.put(id) {
///     Err(PoolError::WrongState { expected, found, .. }) => {
///         assert_eq!((expected, found), (BlockState::InTransit, BlockState::Free));
///         assert_eq!(found.to_string(), "free");
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), PoolError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlockState {
    /// In the free list.
    Free,
    /// Held by a process, through a [`Block`](crate::Block) or in one of
    /// its [`BlockCache`](crate::BlockCache)s (or by one that died holding
    /// it, until [`MemPool::reclaim_dead`](crate::MemPool::reclaim_dead)).
    Held,
    /// Handed on as an id ([`Block::into_id`](crate::Block::into_id)), owned by nobody until
    /// [`MemPool::from_id`](crate::MemPool::from_id) claims it or [`MemPool::put`](crate::MemPool::put) gives it back.
    InTransit,
    /// Sent through the pool's [`Channel`](crate::Channel), not received yet.
    Queued,
}

impl BlockState {
    /// The state's name in messages: `"free"`, `"held"`, `"in transit"`,
    /// `"queued"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_mempool::BlockState::InTransit.name(), "in transit");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            BlockState::Free => "free",
            BlockState::Held => "held",
            BlockState::InTransit => "in transit",
            BlockState::Queued => "queued",
        }
    }
}

impl std::fmt::Display for BlockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
