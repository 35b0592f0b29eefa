//! [`Channel`]: a pool plus a ring of block ids in one segment, so messages
//! cross processes without being copied.

use std::sync::Arc;
use std::time::Duration;

use shm_ring::{MpmcRing, PopError, PushError, RingOptions};
use shm_segment::{Header, HeaderError, HeaderInfo, Kind, Region, SubRegion};

use crate::error::PoolError;
use crate::pool::{Block, MemPool, BLOCK_ALIGN};
use crate::BlockId;

/// 2: the pool inside is of layout version 2 (FIFO cells), and a queued
/// block is in transit (the same state as after `into_id`).
const LAYOUT_VERSION: u32 = 2;
/// The pool starts on the second page, after the channel's header.
const POOL_OFFSET: usize = 4096;

type Part<R> = SubRegion<Arc<R>>;

/// Where the pool and the ring sit.
struct Parts {
    pool_len: usize,
    ring_offset: usize,
    ring_len: usize,
    ring_cap: u64,
    total: usize,
}

/// The parts for `blocks` blocks of `block_size` bytes; `None` when the
/// sizes overflow (a crafted header must give an error, not a panic).
fn parts(blocks: u32, block_size: usize) -> Option<Parts> {
    let pool_len = usize::try_from(crate::pool::checked_size(blocks, block_size)?)
        .ok()?
        .checked_next_multiple_of(4096)?;
    let ring_offset = POOL_OFFSET.checked_add(pool_len)?;
    let ring_cap = u64::from(blocks).next_power_of_two();
    let ring_len = MpmcRing::<BlockId, ()>::required_size(usize::try_from(ring_cap).ok()?);
    let total = ring_offset.checked_add(ring_len)?;
    Some(Parts {
        pool_len,
        ring_offset,
        ring_len,
        ring_cap,
        total,
    })
}

/// A channel of blocks: a sender takes a block from the pool, fills it in
/// place and [`send`](Channel::send)s it; a receiver gets the same memory
/// back ([`recv`](Channel::recv)) and the block returns to the pool when its
/// guard drops. Only the 4-byte id travels through the ring.
///
/// Any number of processes may send and receive (the ring is MPMC). A send
/// is [`Block::into_id`] and a push of the id; a receive is a pop and
/// [`MemPool::from_id`], so a queued block is *in transit*, owned by nobody:
/// `reclaim_dead` leaves it alone even if its sender died, and exactly one
/// receiver claims it. (Anyone who knows a queued id could claim it with
/// `from_id` too; the receiver that pops it then gets
/// [`PoolError::WrongState`] instead of a second owner.)
///
/// A `Channel` made before `fork(2)` works in both processes; a [`Block`]
/// taken before the fork is inert in the child (see [`Block`]).
///
/// # Examples
///
/// ```
/// use shm_mempool::Channel;
/// use shm_segment::{PosixOptions, PosixShm, Region};
///
/// let name = format!("/shm-test-doc-chan-{}", std::process::id());
/// let size = Channel::<()>::required_size(8, 4096);
/// let shm = PosixOptions::new().unlink_on_drop(true).create(&name, size as u64)?;
/// let tx = Channel::create(shm.map()?, 8, 4096, Default::default())?;
///
/// // Another process attaches by name.
/// let rx = Channel::attach(PosixShm::open(&name)?.map()?)?;
///
/// let block = tx.alloc()?;
/// block.write_at(0, b"no copy through the kernel")?;
/// block.set_used(26);
/// tx.send(block).unwrap();
///
/// let got = rx.recv()?;
/// let mut text = vec![0; got.used()];
/// got.read_at(0, &mut text)?;
/// assert_eq!(text, b"no copy through the kernel");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Channel<R> {
    pool: MemPool<Part<R>>,
    ring: MpmcRing<BlockId, Part<R>>,
}

impl<R> Clone for Channel<R> {
    fn clone(&self) -> Self {
        Channel {
            pool: self.pool.clone(),
            ring: self.ring.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Channel<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// A send that could not queue the block; the block comes back.
#[derive(Debug, thiserror::Error)]
pub enum SendError<B> {
    /// The ring is full (or still full at the deadline). Rare: the ring has
    /// a slot per block, but a receiver stalled between taking a position
    /// and releasing it keeps that slot busy until it goes on.
    #[error("the channel is full")]
    Full(B),
    /// The block belongs to another pool (another channel, or another
    /// handle of this one made by a separate `attach`).
    #[error("the block belongs to another pool")]
    ForeignBlock(B),
    /// The block could not be handed on: its handle was inherited across
    /// `fork` ([`PoolError::ForkedHandle`]) or the block is no longer its
    /// own; nothing was queued. Or the ring was full and the block, back
    /// from the ring, could not be claimed again.
    #[error(transparent)]
    Pool(PoolError),
}

/// A receive that got no block.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// Nothing to receive, or a stalled sender (see [`PopError`]).
    #[error(transparent)]
    Ring(#[from] PopError),
    /// The ring held an id the pool does not know, or a block not queued.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl<R> Channel<R> {
    /// Bytes a channel of `blocks` blocks of `block_size` bytes needs.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = shm_mempool::Channel::<()>::required_size(16, 4096);
    /// assert!(n > 16 * 4096);
    /// ```
    ///
    /// # Panics
    ///
    /// If that many bytes cannot be addressed.
    pub fn required_size(blocks: u32, block_size: usize) -> usize {
        parts(blocks, block_size).expect("channel too large").total
    }
}

impl<R: Region> Channel<R> {
    /// Lays out a channel in `region`: a pool of `blocks` blocks of
    /// `block_size` bytes and a ring with a slot for every block. With
    /// `RingOptions::new().blocking(true)`, the blocking calls sleep on a futex.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::Channel;
    /// let region = shm_segment::HeapRegion::new(Channel::<()>::required_size(4, 64));
    /// let ch = Channel::create(region, 4, 64, Default::default())?;
    /// assert_eq!(ch.pool().blocks(), 4);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create(
        region: R,
        blocks: u32,
        block_size: usize,
        opts: RingOptions,
    ) -> Result<Self, PoolError> {
        let Some(parts) = parts(blocks, block_size) else {
            return Err(PoolError::InvalidLayout {
                target: region.target(),
                reason: format!("{blocks} blocks of {block_size} bytes cannot be addressed"),
            });
        };
        let total = parts.total;
        if region.len() < total {
            return Err(PoolError::InvalidLayout {
                target: region.target(),
                reason: format!("a channel of {blocks} blocks of {block_size} bytes needs {total} bytes, the region has {}", region.len()),
            });
        }
        if let Ok(existing) = Header::read(&region) {
            let source = HeaderError::AlreadyInitialised {
                kind: existing.kind,
            };
            return Err(shm_segment::Error::Header {
                target: region.target(),
                source,
            }
            .into());
        }
        let region = Arc::new(region);
        let pool = MemPool::create(
            SubRegion::new(Arc::clone(&region), POOL_OFFSET, parts.pool_len)?,
            blocks,
            block_size,
        )?;
        let ring = MpmcRing::create(
            SubRegion::new(Arc::clone(&region), parts.ring_offset, parts.ring_len)?,
            parts.ring_cap,
            opts,
        )?;
        let size = pool.block_size() as u32;
        let info = HeaderInfo::new(
            Kind::CHANNEL,
            LAYOUT_VERSION,
            size,
            BLOCK_ALIGN as u32,
            u64::from(blocks),
            total as u64,
        );
        // SYNC POINT: published last; the pool and ring headers are published already.
        Header::init(&*region, &info)?;
        Ok(Channel { pool, ring })
    }

    /// Attaches to a channel another process created, validating its header
    /// and those of its pool and ring.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::Channel;
    /// let region = shm_segment::HeapRegion::new(Channel::<()>::required_size(4, 64));
    /// Channel::create(&region, 4, 64, Default::default())?;
    /// let other = Channel::attach(&region)?;
    /// assert_eq!(other.pool().block_size(), 64);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn attach(region: R) -> Result<Self, PoolError> {
        let info = Header::read(&region)?;
        let target = region.target();
        let fail = |source| -> PoolError {
            shm_segment::Error::Header {
                target: target.clone(),
                source,
            }
            .into()
        };
        if info.kind != Kind::CHANNEL {
            return Err(fail(HeaderError::WrongKind {
                expected: Kind::CHANNEL,
                found: info.kind,
            }));
        }
        if info.version != LAYOUT_VERSION {
            return Err(fail(HeaderError::Version {
                expected: LAYOUT_VERSION,
                found: info.version,
            }));
        }
        if info.capacity == 0 || info.capacity > 1 << 31 || info.elem_size == 0 {
            return Err(fail(HeaderError::Capacity {
                capacity: info.capacity,
                reason: "a channel has 1 to 2^31 blocks of at least 1 byte",
            }));
        }
        let blocks = info.capacity as u32;
        let Some(parts) = parts(blocks, info.elem_size as usize) else {
            return Err(fail(HeaderError::Capacity {
                capacity: info.capacity,
                reason: "its layout overflows",
            }));
        };
        let total = parts.total as u64;
        if total != info.total_size {
            return Err(fail(HeaderError::Layout {
                expected: total,
                found: info.total_size,
            }));
        }
        let region = Arc::new(region);
        let pool = MemPool::attach(SubRegion::new(
            Arc::clone(&region),
            POOL_OFFSET,
            parts.pool_len,
        )?)?;
        let ring = MpmcRing::attach(SubRegion::new(
            Arc::clone(&region),
            parts.ring_offset,
            parts.ring_len,
        )?)?;
        if pool.blocks() != blocks || pool.block_size() != info.elem_size as usize {
            return Err(fail(HeaderError::Layout {
                expected: total,
                found: info.total_size,
            }));
        }
        Ok(Channel { pool, ring })
    }

    /// The channel's pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::<()>::required_size(4, 64));
    /// let ch = shm_mempool::Channel::create(region, 4, 64, Default::default())?;
    /// assert_eq!(ch.pool().stats().free, 4);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn pool(&self) -> &MemPool<Part<R>> {
        &self.pool
    }

    /// Takes a free block to fill ([`MemPool::get`]).
    ///
    /// # Examples
    ///
    /// See [`Channel`].
    pub fn alloc(&self) -> Result<Block<'_, Part<R>>, PoolError> {
        self.pool.get()
    }

    /// Queues a block for a receiver; the block comes back if the ring is full.
    ///
    /// # Examples
    ///
    /// See [`Channel`].
    #[allow(clippy::result_large_err)]
    pub fn send<'c>(
        &'c self,
        block: Block<'c, Part<R>>,
    ) -> Result<(), SendError<Block<'c, Part<R>>>> {
        self.queue(block, |id| self.ring.push(id))
    }

    /// Copies `data` into a fresh block and sends it: the one-call form for
    /// small messages. Fails if no block is free, the data does not fit a
    /// block, or the ring is full (the block then goes back to the pool).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::<()>::required_size(4, 64));
    /// let ch = shm_mempool::Channel::create(region, 4, 64, Default::default())?;
    /// ch.send_bytes(b"hi")?;
    /// assert_eq!(ch.recv()?.used(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_bytes(&self, data: &[u8]) -> Result<(), PoolError> {
        let block = self.alloc()?;
        block.write_at(0, data)?;
        block.set_used(data.len());
        match self.send(block) {
            Ok(()) => Ok(()),
            Err(SendError::Pool(e)) => Err(e),
            Err(SendError::Full(_) | SendError::ForeignBlock(_)) => Err(PoolError::ChannelFull {
                target: self.pool.region().target(),
            }),
        }
    }

    /// Takes the next block, if any.
    ///
    /// # Examples
    ///
    /// See [`Channel`].
    pub fn recv(&self) -> Result<Block<'_, Part<R>>, RecvError> {
        let id = self.ring.pop()?;
        Ok(self.pool.claim_as("recv", id)?)
    }

    /// Waits up to `timeout` for a free slot in the ring, then queues.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::<()>::required_size(1, 64));
    /// let ch = shm_mempool::Channel::create(region, 1, 64, Default::default())?;
    /// let block = ch.alloc()?;
    /// ch.send_blocking(block, Duration::from_millis(10)).unwrap();
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn send_blocking<'c>(
        &'c self,
        block: Block<'c, Part<R>>,
        timeout: Duration,
    ) -> Result<(), SendError<Block<'c, Part<R>>>> {
        self.queue(block, |id| self.ring.push_blocking(id, timeout))
    }

    /// Hands the block on (in transit) and pushes its id; on a full ring,
    /// claims it back and returns it.
    #[allow(clippy::result_large_err)]
    fn queue<'c>(
        &'c self,
        block: Block<'c, Part<R>>,
        push: impl FnOnce(BlockId) -> Result<(), PushError<BlockId>>,
    ) -> Result<(), SendError<Block<'c, Part<R>>>> {
        if !block.pool().same_pool(&self.pool) {
            return Err(SendError::ForeignBlock(block));
        }
        let id = block.into_id().map_err(SendError::Pool)?;
        match push(id) {
            Ok(()) => Ok(()),
            Err(PushError::Full(_) | PushError::ForkedHandle(_) | PushError::PeerGone(_)) => {
                match self.pool.claim_as("send", id) {
                    Ok(block) => Err(SendError::Full(block)),
                    Err(e) => Err(SendError::Pool(e)),
                }
            }
        }
    }

    /// Waits up to `timeout` for a block.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::<()>::required_size(1, 64));
    /// let ch = shm_mempool::Channel::create(region, 1, 64, Default::default())?;
    /// assert!(ch.recv_blocking(Duration::from_millis(5)).is_err());
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn recv_blocking(&self, timeout: Duration) -> Result<Block<'_, Part<R>>, RecvError> {
        let id = self.ring.pop_blocking(timeout)?;
        Ok(self.pool.claim_as("recv", id)?)
    }

    /// Blocks queued now (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::<()>::required_size(2, 64));
    /// let ch = shm_mempool::Channel::create(region, 2, 64, Default::default())?;
    /// ch.send_bytes(b"x")?;
    /// assert_eq!(ch.len(), 1);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is queued now.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::<()>::required_size(2, 64));
    /// assert!(shm_mempool::Channel::create(region, 2, 64, Default::default())?.is_empty());
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// Reads a channel's pool counts and ring positions without attaching, with
/// atomic loads only, so a read-only mapping will do (what `shm inspect` uses).
///
/// # Examples
///
/// ```
/// use shm_mempool::{inspect_channel, Channel};
/// let region = shm_segment::HeapRegion::new(Channel::<()>::required_size(4, 64));
/// let ch = Channel::create(&region, 4, 64, Default::default())?;
/// ch.send_bytes(b"queued")?;
/// let (pool, ring) = inspect_channel(&region)?;
/// assert_eq!((pool.in_transit, ring.len()), (1, 1));
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
pub fn inspect_channel<R: Region>(
    region: &R,
) -> Result<(crate::PoolStats, shm_ring::RingInfo), PoolError> {
    let info = Header::read(region)?;
    if info.kind != Kind::CHANNEL || info.capacity == 0 || info.capacity > 1 << 31 {
        let source = HeaderError::WrongKind {
            expected: Kind::CHANNEL,
            found: info.kind,
        };
        return Err(shm_segment::Error::Header {
            target: region.target(),
            source,
        }
        .into());
    }
    let Some(parts) = parts(info.capacity as u32, info.elem_size as usize) else {
        let source = HeaderError::Capacity {
            capacity: info.capacity,
            reason: "its layout overflows",
        };
        return Err(shm_segment::Error::Header {
            target: region.target(),
            source,
        }
        .into());
    };
    let pool = crate::pool::inspect(&SubRegion::new(region, POOL_OFFSET, parts.pool_len)?)?;
    let ring = shm_ring::inspect(&SubRegion::new(region, parts.ring_offset, parts.ring_len)?)?;
    Ok((pool, ring))
}
