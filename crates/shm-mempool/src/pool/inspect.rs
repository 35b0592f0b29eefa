//! Counting blocks by state: [`MemPool::stats`] on a handle, [`inspect`]
//! on a region without attaching.

use super::*;

/// Counts from [`MemPool::stats`] and [`inspect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Blocks in the pool.
    pub blocks: usize,
    /// Bytes per block.
    pub block_size: usize,
    /// Free blocks.
    pub free: usize,
    /// Blocks held by a process through a [`Block`].
    pub held: usize,
    /// Blocks held by a process in a [`BlockCache`](crate::BlockCache):
    /// free for that cache's `get`, but for nobody else until the cache
    /// gives them back (when it overflows, on
    /// [`flush`](crate::BlockCache::flush), or when it drops). Counted
    /// neither in `free` nor in `held` nor in `by_owner`.
    pub cached: usize,
    /// Blocks in transit, owned by nobody: handed on as an id
    /// ([`Block::into_id`]) and not claimed yet.
    pub in_transit: usize,
    /// Blocks queued in the pool's channel queue (sent, not yet received).
    pub queued: usize,
    /// Held and cached blocks whose owner is gone: what
    /// [`reclaim_dead`](MemPool::reclaim_dead) would give back now.
    pub dead: usize,
    /// Blocks whose record is garbage (corruption): held by an owner slot
    /// out of range or by a slot nobody owns.
    pub unknown: usize,
    /// Held blocks per owner pid, sorted by pid.
    pub by_owner: Vec<(u32, usize)>,
}

impl PoolStats {
    pub(super) fn with_sizes(mut self, blocks: u32, block_size: usize) -> Self {
        self.blocks = blocks as usize;
        self.block_size = block_size;
        self
    }
}

/// Counts the record words: `word(i)` reads block `i`'s word, `owner(s)`
/// slot `s`'s owner word (`None` for a slot out of range), `alive(w)` asks
/// whether owner word `w` names a live process.
///
/// Each owner is read after the word that names it: a slot is claimed
/// before its owner takes a block through it, so a held word names a slot
/// that was claimed when the word was read. A slot is given back only after
/// every block held through it; so an owner read as 0 means the word has
/// changed since: it is read again.
pub(crate) fn count(
    blocks: u32,
    mut word: impl FnMut(u32) -> Result<u64, PoolError>,
    mut owner: impl FnMut(u32) -> Result<Option<u64>, PoolError>,
    mut alive: impl FnMut(u64) -> bool,
) -> Result<PoolStats, PoolError> {
    let mut stats = PoolStats::default();
    let mut by_pid: HashMap<u32, usize> = HashMap::new();
    let mut liveness: HashMap<u64, bool> = HashMap::new();
    for i in 0..blocks {
        let mut w = word(i)?;
        let mut tries = 0;
        let held_by = loop {
            if state_of(w) != HELD {
                break 0;
            }
            match owner(slot_of(w))? {
                Some(0) if tries < 8 => {
                    tries += 1;
                    let again = word(i)?;
                    if again == w {
                        break 0;
                    }
                    w = again;
                }
                Some(o) => break o,
                None => break 0,
            }
        };
        match state_of(w) {
            FREE => stats.free += 1,
            HELD if held_by == 0 => stats.unknown += 1,
            HELD if is_cached(w) => {
                stats.cached += 1;
                if !*liveness.entry(held_by).or_insert_with(|| alive(held_by)) {
                    stats.dead += 1;
                }
            }
            HELD => {
                stats.held += 1;
                let id = ProcessId::from_word(held_by);
                *by_pid.entry(id.pid).or_default() += 1;
                if !*liveness.entry(held_by).or_insert_with(|| alive(held_by)) {
                    stats.dead += 1;
                }
            }
            IN_TRANSIT => stats.in_transit += 1,
            _ => stats.queued += 1,
        }
    }
    stats.by_owner = by_pid.into_iter().collect();
    stats.by_owner.sort_unstable();
    Ok(stats)
}

/// Counts a pool's blocks by state without attaching, with atomic loads
/// only, so a read-only mapping will do (what `shm inspect` uses). The
/// header is validated as [`MemPool::attach`] does.
///
/// # Examples
///
/// ```
/// use shm_mempool::{pool::inspect, MemPool};
/// let region = shm_segment::HeapRegion::new(MemPool::required_size(4, 64));
/// let pool = MemPool::create(&region, 4, 64)?;
/// let _held = pool.get()?;
/// let stats = inspect(&region)?;
/// assert_eq!((stats.free, stats.held), (3, 1));
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
pub fn inspect<R: Region>(region: &R) -> Result<PoolStats, PoolError> {
    let info = validate(region)?;
    let blocks = info.capacity as u32;
    let word_at = |i: u32| {
        let offset = META_OFFSET
            + i as usize * std::mem::size_of::<Meta>()
            + std::mem::offset_of!(Meta, word);
        // Bounds-checked by the load: a lying header gives an error, not a fault.
        Ok(region.load_u64(offset, Ordering::Acquire)?)
    };
    let owner_at = |s: u32| -> Result<Option<u64>, PoolError> {
        if s >= SLOTS {
            return Ok(None);
        }
        let at = OWNERS_OFFSET + s as usize * 8;
        Ok(Some(region.load_u64(at, Ordering::Acquire)?))
    };
    let alive = |w: u64| ProcessId::from_word(w).is_alive();
    Ok(count(blocks, word_at, owner_at, alive)?.with_sizes(blocks, info.elem_size as usize))
}

/// The channel queue's head and tail hints and blocking flag, read with
/// atomic loads only (for [`inspect_channel`](crate::inspect_channel)).
pub(crate) fn inspect_queue<R: Region>(region: &R) -> Result<(u64, u64, bool), PoolError> {
    validate(region)?;
    let at = |field: usize| CONTROL_OFFSET + field;
    let head = region.load_u64(
        at(std::mem::offset_of!(Control, sent_head)),
        Ordering::Acquire,
    )?;
    let tail = region.load_u64(
        at(std::mem::offset_of!(Control, sent_tail)),
        Ordering::Acquire,
    )?;
    let flags = region.load_u32(at(std::mem::offset_of!(Control, flags)), Ordering::Acquire)?;
    Ok((head, tail, flags & FLAG_BLOCKING != 0))
}
