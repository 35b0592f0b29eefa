//! [`Channel`]: a pool and its queue of sent blocks in one segment, so
//! messages cross processes without being copied.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_segment::{Expect, Header, HeaderError, HeaderInfo, Kind, Region, SubRegion};

use crate::error::PoolError;
use crate::pool::free::Q;
use crate::pool::{Block, FreeOrder, MemPool, PoolOptions, PoolStats, BLOCK_ALIGN};
use shm_segment::{Segment, SysvKey, Target};

/// 3: no ring any more; blocks are queued in the pool's own channel queue
/// (pool layout version 3), and a queued block is in the state *queued*.
const LAYOUT_VERSION: u32 = 3;
/// The pool starts on the second page, after the channel's header.
pub(crate) const POOL_OFFSET: usize = 4096;
/// At most this many blocks (the pool's limit).
const MAX_BLOCKS: u64 = 1 << 31;

type Part<R> = SubRegion<Arc<R>>;

/// The pool's length (page-rounded) and the channel's total size for
/// `blocks` blocks of `block_size` bytes; `None` when the sizes overflow (a
/// crafted header must give an error, not a panic).
fn parts(blocks: usize, block_size: usize) -> Option<(usize, usize)> {
    let pool_len = usize::try_from(crate::pool::checked_size(blocks, block_size)?)
        .ok()?
        .checked_next_multiple_of(4096)?;
    Some((pool_len, POOL_OFFSET.checked_add(pool_len)?))
}

/// Reads a channel's header and checks it against the region: kind,
/// version, block alignment, a block count from 1 to 2^31, and a total size
/// that the block count and size imply.
/// Returns the header and the pool's length.
fn validate<R: Region>(region: &R) -> Result<(HeaderInfo, usize), PoolError> {
    let expect = Expect::sized_by_header(Kind::CHANNEL, LAYOUT_VERSION, BLOCK_ALIGN as u32)
        .max_capacity(MAX_BLOCKS);
    let mut pool_len = 0;
    let info = crate::pool::validate_header(region, &expect, |info| {
        let blocks = usize::try_from(info.capacity).ok()?;
        let (len, total) = parts(blocks, info.elem_size as usize)?;
        pool_len = len;
        Some(total as u64)
    })?;
    Ok((info, pool_len))
}

/// How [`Channel::create`] lays out a channel.
///
/// # Examples
///
/// ```
/// use shm_mempool::ChannelOptions;
/// let opts = ChannelOptions::new().blocking(true);
/// assert!(opts.is_blocking());
/// assert!(!ChannelOptions::default().is_blocking());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelOptions {
    blocking: bool,
    order: FreeOrder,
}

impl ChannelOptions {
    /// The defaults: receivers that wait poll with a growing back-off (no
    /// futex wake-ups, the fastest send).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_mempool::ChannelOptions::new(), Default::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Make [`Channel::recv_blocking`] sleep on a futex and be woken by
    /// senders. Each send then pays one fence and one load to check for
    /// sleepers (no syscall unless someone sleeps).
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = shm_mempool::ChannelOptions::new().blocking(true);
    /// assert!(opts.is_blocking());
    /// assert!(!opts.blocking(false).is_blocking());
    /// ```
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// Whether receivers sleep on a futex.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_mempool::ChannelOptions::new().blocking(true).is_blocking());
    /// ```
    pub fn is_blocking(&self) -> bool {
        self.blocking
    }

    /// The order in which the channel's pool hands out free blocks
    /// ([`FreeOrder::Fifo`] by default; [`FreeOrder::Lifo`] hands out the
    /// block given back last, still warm in the cache). Messages are
    /// received in the order sent either way.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{Channel, ChannelOptions, FreeOrder};
    /// let region = shm_segment::HeapRegion::new(Channel::required_size(4, 64));
    /// let opts = ChannelOptions::new().order(FreeOrder::Lifo);
    /// let ch = Channel::create_with(region, 4, 64, opts)?;
    /// assert_eq!(ch.pool().order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn order(mut self, order: FreeOrder) -> Self {
        self.order = order;
        self
    }
}

/// A channel of blocks: a sender takes a block from the pool, fills it in
/// place and [`send`](Channel::send)s it; a receiver gets the same memory
/// back ([`recv`](Channel::recv)) and the block returns to the pool when its
/// guard drops. Only the block's 4-byte index travels, through a queue in
/// the pool itself.
///
/// Any number of processes may send and receive. A queued block is in the
/// state *queued*, owned by nobody and named by its queue position, so
/// exactly one receiver claims it, and nothing a process killed at any
/// instruction leaves behind wedges the channel or loses a message it had
/// sent: the queue has a cell for every block (a send never finds it full),
/// and each step a killed sender or receiver left undone is done by the
/// next receiver or by [`MemPool::reclaim_dead`] (see the
/// [`pool`](crate::pool) module).
///
/// A `Channel` made before `fork(2)` works in both processes; a [`Block`]
/// taken before the fork is inert in the child (see [`Block`]).
///
/// # Examples
///
/// ```
/// use shm_mempool::Channel;
/// use shm_segment::Region;
///
/// let name = format!("/shm-test-doc-chan-{}", std::process::id());
/// let tx = Channel::create_posix(&name, 8, 4096)?; // unlinked when `tx` drops
///
/// // Another process attaches by name.
/// let rx = Channel::open_posix(&name)?;
///
/// let block = tx.get()?;
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
pub struct Channel<R = Segment> {
    pool: MemPool<Part<R>>,
}

impl<R> Clone for Channel<R> {
    fn clone(&self) -> Self {
        Channel {
            pool: self.pool.clone(),
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

/// A send that could not queue the block.
///
/// # Examples
///
/// ```
/// use shm_mempool::{Channel, SendError};
/// let a = Channel::create_memfd("doc-a", 1, 64)?;
/// let b = Channel::create_memfd("doc-b", 1, 64)?;
/// assert!(matches!(b.send(a.get()?), Err(SendError::ForeignBlock(_))));
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
#[derive(Debug, thiserror::Error)]
pub enum SendError<B> {
    /// The block belongs to another pool (another channel, or another
    /// handle of this one made by a separate `attach`); it comes back.
    #[error("the block belongs to another pool")]
    ForeignBlock(B),
    /// The block could not be queued: its handle was inherited across
    /// `fork` ([`PoolError::ForkedHandle`]), the block is no longer its own
    /// ([`PoolError::WrongState`]; nothing was queued), or the queue is
    /// corrupted.
    #[error(transparent)]
    Pool(PoolError),
}

/// A receive that got no block.
///
/// # Examples
///
/// ```
/// use shm_mempool::{Channel, RecvError};
/// let ch = Channel::create_memfd("doc", 1, 64)?;
/// assert!(matches!(ch.recv(), Err(RecvError::Empty)));
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// Nothing is queued (or still nothing at the deadline).
    #[error("the channel is empty")]
    Empty,
    /// The queue is corrupted, or this process found no owner slot.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl Channel {
    /// Bytes a channel of `blocks` blocks of `block_size` bytes needs, for
    /// every region type.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = shm_mempool::Channel::required_size(16, 4096);
    /// assert!(n > 16 * 4096);
    /// ```
    ///
    /// # Panics
    ///
    /// If that many bytes cannot be addressed.
    pub fn required_size(blocks: usize, block_size: usize) -> usize {
        parts(blocks, block_size).expect("channel too large").1
    }

    /// Creates the POSIX segment `name` (exclusively, mode `0600`), just
    /// large enough for a channel of `blocks` blocks of `block_size` bytes,
    /// and lays the channel out in it with the default options. The channel
    /// owns the segment: the name is unlinked when the last handle drops
    /// (keep it with `ch.region().set_remove_on_drop(false)`). Other
    /// processes attach with [`open_posix`](Channel::open_posix).
    ///
    /// # Examples
    ///
    /// See [`Channel`].
    pub fn create_posix(name: &str, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_posix_with(name, blocks, block_size, ChannelOptions::default())
    }

    /// [`create_posix`](Channel::create_posix) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{Channel, ChannelOptions};
    /// let name = format!("/shm-test-doc-chan-posix-with-{}", std::process::id());
    /// let ch = Channel::create_posix_with(&name, 2, 64, ChannelOptions::new().blocking(true))?;
    /// assert!(ch.region().created());
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_posix_with(
        name: &str,
        blocks: usize,
        block_size: usize,
        opts: ChannelOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::Posix(name.into()))?;
        Self::create_with(Segment::create_posix(name, size)?, blocks, block_size, opts)
    }

    /// Opens the POSIX segment `name` and attaches to the channel in it
    /// (see [`attach`](Channel::attach)). Never unlinks it.
    ///
    /// # Examples
    ///
    /// See [`Channel`].
    pub fn open_posix(name: &str) -> Result<Self, PoolError> {
        Self::attach(Segment::open_posix(name)?)
    }

    /// Creates a memfd just large enough for the channel and lays the
    /// channel out in it (share it by `fork`, or send `ch.region().memfd()`
    /// with [`send_fd`](shm_segment::send_fd)).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = shm_mempool::Channel::create_memfd("doc-chan", 2, 64)?;
    /// ch.send_bytes(b"hi")?;
    /// assert_eq!(ch.recv()?.used(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_memfd(name: &str, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_memfd_with(name, blocks, block_size, ChannelOptions::default())
    }

    /// [`create_memfd`](Channel::create_memfd) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{Channel, ChannelOptions, FreeOrder};
    /// let ch = Channel::create_memfd_with("doc", 2, 64, ChannelOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(ch.pool().order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_memfd_with(
        name: &str,
        blocks: usize,
        block_size: usize,
        opts: ChannelOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::Memfd(name.into()))?;
        Self::create_with(Segment::create_memfd(name, size)?, blocks, block_size, opts)
    }

    /// Creates the System V segment `key` (exclusively, mode `0600`) just
    /// large enough for the channel and lays the channel out in it. The
    /// segment is marked for removal when the last handle drops.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::Channel;
    /// let key = shm_segment::SysvKey::random();
    /// let tx = Channel::create_sysv(key, 2, 64)?;
    /// let rx = Channel::open_sysv(key)?;
    /// tx.send_bytes(b"sysv")?;
    /// assert_eq!(rx.recv()?.used(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_sysv(key: SysvKey, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_sysv_with(key, blocks, block_size, ChannelOptions::default())
    }

    /// [`create_sysv`](Channel::create_sysv) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{Channel, ChannelOptions};
    /// let key = shm_segment::SysvKey::random();
    /// let ch = Channel::create_sysv_with(key, 2, 64, ChannelOptions::new().blocking(true))?;
    /// assert_eq!(Channel::open_sysv(key)?.pool().blocks(), 2);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_sysv_with(
        key: SysvKey,
        blocks: usize,
        block_size: usize,
        opts: ChannelOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::SysvKey(key.0))?;
        Self::create_with(Segment::create_sysv(key, size)?, blocks, block_size, opts)
    }

    /// Opens the System V segment `key` and attaches to the channel in it.
    /// Never removes it.
    ///
    /// # Examples
    ///
    /// See [`create_sysv`](Channel::create_sysv).
    pub fn open_sysv(key: SysvKey) -> Result<Self, PoolError> {
        Self::attach(Segment::open_sysv(key)?)
    }
}

/// [`Channel::required_size`] as an error instead of a panic, after the
/// pool's checks of the block count and size.
fn sized(
    blocks: usize,
    block_size: usize,
    target: impl Fn() -> Target,
) -> Result<usize, PoolError> {
    crate::pool::sized(blocks, block_size, &target)?;
    parts(blocks, block_size)
        .map(|(_, total)| total)
        .ok_or_else(|| PoolError::InvalidLayout {
            target: target(),
            reason: format!(
                "a channel of {blocks} blocks of {block_size} bytes cannot be addressed"
            ),
        })
}

impl<R: Region> Channel<R> {
    /// The region the channel lives in: for a channel made by a one-call
    /// constructor, its [`Segment`] (`ch.region().set_remove_on_drop(false)`
    /// keeps a created segment after the channel drops).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let ch = shm_mempool::Channel::create_memfd("doc", 2, 64)?;
    /// assert_eq!(ch.region().len(), shm_mempool::Channel::required_size(2, 64));
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn region(&self) -> &R {
        self.pool.region().inner()
    }
}

impl<R: Region> Channel<R> {
    /// Lays out a channel in `region` with the default options: a pool of
    /// `blocks` blocks of `block_size` bytes, whose queue has a cell for
    /// every block.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::Channel;
    /// let region = shm_segment::HeapRegion::new(Channel::required_size(4, 64));
    /// let ch = Channel::create(region, 4, 64)?;
    /// assert_eq!(ch.pool().blocks(), 4);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create(region: R, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_with(region, blocks, block_size, ChannelOptions::default())
    }

    /// [`create`](Channel::create) with options: with
    /// `ChannelOptions::new().blocking(true)`, waiting receivers sleep on a
    /// futex; [`ChannelOptions::order`] sets the pool's free order.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{Channel, ChannelOptions};
    /// let region = shm_segment::HeapRegion::new(Channel::required_size(4, 64));
    /// let ch = Channel::create_with(&region, 4, 64, ChannelOptions::new().blocking(true))?;
    /// assert_eq!(shm_mempool::inspect_channel(&region)?.queue.blocking, true);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_with(
        region: R,
        blocks: usize,
        block_size: usize,
        opts: ChannelOptions,
    ) -> Result<Self, PoolError> {
        let Some((pool_len, total)) = parts(blocks, block_size) else {
            return Err(PoolError::InvalidLayout {
                target: region.target(),
                reason: format!("{blocks} blocks of {block_size} bytes cannot be addressed"),
            });
        };
        if region.len() < total {
            return Err(PoolError::InvalidLayout {
                target: region.target(),
                reason: format!(
                    "a channel of {blocks} blocks of {block_size} bytes needs {total} bytes, \
                     the region has {}",
                    region.len()
                ),
            });
        }
        Header::check_vacant(&region)?;
        let region = Arc::new(region);
        let pool = MemPool::create_with(
            SubRegion::new(Arc::clone(&region), POOL_OFFSET, pool_len)?,
            blocks,
            block_size,
            PoolOptions::new().order(opts.order).blocking(opts.blocking),
        )?;
        let size = pool.block_size() as u32;
        let info = HeaderInfo::new(
            Kind::CHANNEL,
            LAYOUT_VERSION,
            size,
            BLOCK_ALIGN as u32,
            blocks as u64,
            total as u64,
        );
        // SYNC POINT: published last; the pool's header is published already.
        Header::init(&*region, &info)?;
        Ok(Channel { pool })
    }

    /// Attaches to a channel another process created, validating its header
    /// and its pool's.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::Channel;
    /// let region = shm_segment::HeapRegion::new(Channel::required_size(4, 64));
    /// Channel::create(&region, 4, 64)?;
    /// let other = Channel::attach(&region)?;
    /// assert_eq!(other.pool().block_size(), 64);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn attach(region: R) -> Result<Self, PoolError> {
        let (info, pool_len) = validate(&region)?;
        let target = region.target();
        let region = Arc::new(region);
        let pool = MemPool::attach(SubRegion::new(Arc::clone(&region), POOL_OFFSET, pool_len)?)?;
        // The pool's own header must agree with the channel's.
        let source = if pool.blocks() as u64 != info.capacity {
            Some(HeaderError::Capacity {
                capacity: pool.blocks() as u64,
                reason: "the channel's pool has another block count than the channel",
            })
        } else if pool.block_size() != info.elem_size as usize {
            Some(HeaderError::ElemSize {
                expected: info.elem_size,
                found: pool.block_size() as u32,
            })
        } else {
            None
        };
        if let Some(source) = source {
            return Err(shm_segment::Error::header(target, source).into());
        }
        Ok(Channel { pool })
    }

    /// The channel's pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::required_size(4, 64));
    /// let ch = shm_mempool::Channel::create(region, 4, 64)?;
    /// assert_eq!(ch.pool().stats().free, 4);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn pool(&self) -> &MemPool<Part<R>> {
        &self.pool
    }

    /// Takes a free block to fill: [`MemPool::get`] on the channel's pool
    /// (the same name as the pool's, as in pyshm).
    ///
    /// # Examples
    ///
    /// See [`Channel`].
    #[inline]
    pub fn get(&self) -> Result<Block<'_, Part<R>>, PoolError> {
        self.pool.get()
    }

    /// [`MemPool::try_get`] on the channel's pool: `Ok(None)` when no block
    /// is free, without building an error (for retry loops).
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = shm_mempool::Channel::create_memfd("doc", 1, 64)?;
    /// let block = ch.try_get()?.expect("a free block");
    /// assert!(ch.try_get()?.is_none());
    /// # drop(block);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    #[inline]
    pub fn try_get(&self) -> Result<Option<Block<'_, Part<R>>>, PoolError> {
        self.pool.try_get()
    }

    /// The old name of [`get`](Channel::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// let ch = shm_mempool::Channel::create_memfd("doc", 1, 64)?;
    /// assert_eq!(ch.alloc()?.id(), shm_mempool::BlockId(0));
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    #[deprecated(since = "0.2.0", note = "renamed to `get`, as `MemPool::get`")]
    pub fn alloc(&self) -> Result<Block<'_, Part<R>>, PoolError> {
        self.get()
    }

    /// Queues a block for a receiver. The queue has a cell for every block,
    /// so it is never full.
    ///
    /// # Errors
    ///
    /// [`SendError::ForeignBlock`] (the block comes back) for a block of
    /// another pool; [`SendError::Pool`] for a handle inherited across
    /// `fork`, a block that is no longer the handle's, or a corrupted queue.
    ///
    /// # Examples
    ///
    /// See [`Channel`].
    #[allow(clippy::result_large_err)]
    pub fn send<'c>(
        &'c self,
        block: Block<'c, Part<R>>,
    ) -> Result<(), SendError<Block<'c, Part<R>>>> {
        self.queue(block)?;
        if self.pool.inner.blocking {
            self.notify();
        }
        Ok(())
    }

    /// [`send`](Channel::send) without the wake-up.
    #[allow(clippy::result_large_err)]
    fn queue<'c>(&'c self, block: Block<'c, Part<R>>) -> Result<(), SendError<Block<'c, Part<R>>>> {
        if !block.pool().same_pool(&self.pool) {
            return Err(SendError::ForeignBlock(block));
        }
        let (id, word) = block.hand_over("send").map_err(SendError::Pool)?;
        match self.pool.q_push(Q::Sent, id.0, word) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(now)) => Err(SendError::Pool(self.pool.wrong_state(
                "send",
                id,
                crate::BlockState::Held,
                now,
            ))),
            Err(e) => Err(SendError::Pool(e)),
        }
    }

    /// Copies `data` into a fresh block and sends it: the one-call form for
    /// small messages. Fails if no block is free or the data does not fit a
    /// block.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::required_size(4, 64));
    /// let ch = shm_mempool::Channel::create(region, 4, 64)?;
    /// ch.send_bytes(b"hi")?;
    /// assert_eq!(ch.recv()?.used(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_bytes(&self, data: &[u8]) -> Result<(), PoolError> {
        let block = self.get()?;
        block.write_at(0, data)?;
        block.set_used(data.len());
        match self.send(block) {
            Ok(()) => Ok(()),
            Err(SendError::Pool(e)) => Err(e),
            Err(SendError::ForeignBlock(_)) => unreachable!("a block of this channel's pool"),
        }
    }

    /// Sends blocks in order, as [`send`](Channel::send) does each, and
    /// wakes sleeping receivers once at the end instead of once per block;
    /// returns how many it sent. It stops at the first block that cannot be
    /// sent and returns that block's error (the blocks before it are sent;
    /// the rest of the iterator is not taken: pass `&mut iter` to keep it).
    /// The queue has a cell for every block, so it is never full.
    ///
    /// Not one atomic publish: each block is queued with its own decisive
    /// step, so a receiver may take the first blocks before the last are
    /// queued, and a sender killed half-way leaves the blocks before the
    /// kill queued (delivered) and the rest held by it (given back by
    /// [`reclaim_dead`](MemPool::reclaim_dead)), as for single sends.
    ///
    /// # Errors
    ///
    /// As [`send`](Channel::send), for the block that failed.
    ///
    /// # Examples
    ///
    /// ```
    /// let ch = shm_mempool::Channel::create_memfd("doc-send-many", 8, 64)?;
    /// let blocks: Vec<_> = (0..3).map(|_| ch.get()).collect::<Result<_, _>>()?;
    /// let ids: Vec<_> = blocks.iter().map(|b| b.id()).collect();
    /// assert!(matches!(ch.send_many(blocks), Ok(3)));
    /// let mut got = Vec::new();
    /// assert_eq!(ch.recv_many(&mut got, 8)?, 3);
    /// assert_eq!(got.iter().map(|b| b.id()).collect::<Vec<_>>(), ids);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn send_many<'c>(
        &'c self,
        blocks: impl IntoIterator<Item = Block<'c, Part<R>>>,
    ) -> Result<usize, SendError<Block<'c, Part<R>>>> {
        let mut sent = 0;
        let mut result = Ok(());
        for block in blocks {
            if let Err(e) = self.queue(block) {
                result = Err(e);
                break;
            }
            sent += 1;
        }
        if sent > 0 && self.pool.inner.blocking {
            self.notify();
        }
        result.map(|()| sent)
    }

    /// Takes up to `max` queued blocks, in order, and appends them to
    /// `out`; returns how many (0 when the queue is empty), as a ring's
    /// `pop_into` does. Each block is taken with its own decisive step (see
    /// [`send_many`](Channel::send_many)); the owner slot and the fork
    /// epoch are looked up once for the batch.
    ///
    /// # Errors
    ///
    /// [`PoolError::TooManyProcesses`] when this process finds no owner
    /// slot; [`PoolError::Corrupted`] for a corrupted queue (the blocks
    /// taken before it stay in `out`).
    ///
    /// # Examples
    ///
    /// See [`send_many`](Channel::send_many).
    pub fn recv_many<'c>(
        &'c self,
        out: &mut Vec<Block<'c, Part<R>>>,
        max: usize,
    ) -> Result<usize, PoolError> {
        let epoch = shm_segment::ForkEpoch::now();
        let slot = self.pool.slot()?;
        for n in 0..max {
            match self.pool.q_pop(Q::Sent, slot)? {
                Some((i, word)) => out.push(Block::new(&self.pool, crate::BlockId(i), word, epoch)),
                None => return Ok(n),
            }
        }
        Ok(max)
    }

    /// Takes the next block, if any.
    ///
    /// # Examples
    ///
    /// See [`Channel`].
    #[inline]
    pub fn recv(&self) -> Result<Block<'_, Part<R>>, RecvError> {
        match self.take_sent()? {
            Some((i, word, epoch)) => Ok(Block::new(&self.pool, crate::BlockId(i), word, epoch)),
            None => Err(RecvError::Empty),
        }
    }

    fn try_recv(&self) -> Result<Option<Block<'_, Part<R>>>, PoolError> {
        Ok(self
            .take_sent()?
            .map(|(i, word, epoch)| Block::new(&self.pool, crate::BlockId(i), word, epoch)))
    }

    /// The next queued block taken for this process, as its index, the word
    /// written and the epoch; the callers build the `Block` (as
    /// `MemPool::get` does: one built here and unwrapped there would be
    /// copied through the stack, in loads that stall).
    #[inline(always)]
    fn take_sent(&self) -> Result<Option<(u32, u64, shm_segment::ForkEpoch)>, PoolError> {
        let epoch = shm_segment::ForkEpoch::now();
        let slot = self.pool.slot()?;
        Ok(self
            .pool
            .q_pop(Q::Sent, slot)?
            .map(|(i, word)| (i, word, epoch)))
    }

    /// Waits up to `timeout` for a block: first a short spin, then futex
    /// sleeps (a channel made with `ChannelOptions::new().blocking(true)`)
    /// or polls with a growing back-off (up to 1 ms). A timeout too long for
    /// the clock, like `Duration::MAX`, waits as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::required_size(1, 64));
    /// let ch = shm_mempool::Channel::create(region, 1, 64)?;
    /// assert!(ch.recv_blocking(Duration::from_millis(5)).is_err());
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn recv_blocking(&self, timeout: Duration) -> Result<Block<'_, Part<R>>, RecvError> {
        let wait = &self.pool.control().wait;
        let deadline = Instant::now().checked_add(timeout);
        let mut round = 0u32;
        loop {
            if let Some(block) = self.try_recv()? {
                return Ok(block);
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(RecvError::Empty),
                },
                None => None,
            };
            round = round.saturating_add(1);
            if round <= 16 {
                std::hint::spin_loop();
            } else if round <= 32 {
                std::thread::yield_now();
            } else if self.pool.inner.blocking {
                let seq = wait.seq.load(Ordering::Acquire);
                wait.waiters.fetch_add(1, Ordering::SeqCst);
                // SYNC POINT: this fence and the one in `notify` order
                // "count myself, then look again" against "queue, then read
                // the waiters": one side sees the other, no wake-up is lost.
                fence(Ordering::SeqCst);
                let got = self.try_recv();
                if matches!(got, Ok(None)) {
                    let _ = shm_sys::futex_wait(&wait.seq, seq, remaining);
                }
                wait.waiters.fetch_sub(1, Ordering::SeqCst);
                if let Some(block) = got? {
                    return Ok(block);
                }
            } else {
                let backoff = Duration::from_micros(10 << (round - 32).min(7));
                std::thread::sleep(remaining.map_or(backoff, |left| backoff.min(left)));
            }
        }
    }

    /// After a send: wake sleeping receivers, with no syscall when there are
    /// none. Out of line: only blocking channels call it.
    #[inline(never)]
    fn notify(&self) {
        let wait = &self.pool.control().wait;
        // SYNC POINT: pairs with the fence in `recv_blocking`.
        fence(Ordering::SeqCst);
        if wait.waiters.load(Ordering::Relaxed) != 0 {
            wait.seq.fetch_add(1, Ordering::Release);
            let _ = shm_sys::futex_wake(&wait.seq, u32::MAX);
        }
    }

    /// Blocks queued now (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::required_size(2, 64));
    /// let ch = shm_mempool::Channel::create(region, 2, 64)?;
    /// ch.send_bytes(b"x")?;
    /// assert_eq!(ch.len(), 1);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.pool.q_len(Q::Sent) as usize
    }

    /// Whether nothing is queued now.
    ///
    /// # Examples
    ///
    /// ```
    /// let region = shm_segment::HeapRegion::new(shm_mempool::Channel::required_size(2, 64));
    /// assert!(shm_mempool::Channel::create(region, 2, 64)?.is_empty());
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Positions between `head` and `tail`, clamped to `0..=blocks` (a tail
/// hint behind the head reads as empty).
fn queue_len(head: u64, tail: u64, blocks: usize) -> usize {
    let ahead = tail.wrapping_sub(head);
    if ahead > i64::MAX as u64 {
        0
    } else {
        usize::try_from(ahead).map_or(blocks, |n| n.min(blocks))
    }
}

/// What [`inspect_channel`] reads of a channel's queue.
///
/// # Examples
///
/// See [`inspect_channel`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// Cells in the queue (a power of two, at least the block count).
    pub capacity: usize,
    /// The head hint: the next position to receive from.
    pub head: u64,
    /// The tail hint: the next position to send to.
    pub tail: u64,
    /// Blocks queued (from the hints, clamped to the block count).
    pub len: usize,
    /// Whether waiting receivers sleep on a futex.
    pub blocking: bool,
}

/// What [`inspect_channel`] reads of a channel: its pool's counts and its
/// queue's positions.
///
/// # Examples
///
/// See [`inspect_channel`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// The channel's pool, counted as [`pool::inspect`](crate::pool::inspect) does.
    pub pool: PoolStats,
    /// The queue of sent blocks.
    pub queue: QueueInfo,
}

/// Reads a channel's pool counts and queue positions without attaching,
/// with atomic loads only, so a read-only mapping will do (what `shm
/// inspect` uses). The header is validated as [`Channel::attach`] does.
///
/// # Examples
///
/// ```
/// use shm_mempool::{inspect_channel, Channel};
/// let region = shm_segment::HeapRegion::new(Channel::required_size(4, 64));
/// let ch = Channel::create(&region, 4, 64)?;
/// ch.send_bytes(b"queued")?;
/// let info = inspect_channel(&region)?;
/// assert_eq!((info.pool.queued, info.pool.free, info.queue.len), (1, 3, 1));
/// assert_eq!((info.queue.capacity, info.queue.blocking), (4, false));
/// # Ok::<(), shm_mempool::PoolError>(())
/// ```
pub fn inspect_channel<R: Region>(region: &R) -> Result<ChannelInfo, PoolError> {
    let (_, pool_len) = validate(region)?;
    let part = SubRegion::new(region, POOL_OFFSET, pool_len)?;
    let pool = crate::pool::inspect(&part)?;
    let (head, tail, blocking) = crate::pool::inspect_queue(&part)?;
    let queue = QueueInfo {
        capacity: pool.blocks.next_power_of_two().max(2),
        head,
        tail,
        len: queue_len(head, tail, pool.blocks),
        blocking,
    };
    Ok(ChannelInfo { pool, queue })
}
