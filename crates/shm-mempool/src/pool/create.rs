//! Laying a pool out ([`MemPool::create`] and the one-call constructors)
//! and attaching to one ([`MemPool::attach`]): the only places that read
//! the header and check the layout against the region.

use super::*;

impl MemPool {
    /// Bytes a pool of `blocks` blocks of `block_size` bytes needs (each
    /// block rounded up to a multiple of 64), header included. The same for
    /// both free orders, and for every region type.
    ///
    /// # Panics
    ///
    /// If that many bytes cannot be addressed.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = shm_mempool::MemPool::required_size(16, 100);
    /// assert!(n >= 16 * 128);
    /// ```
    pub fn required_size(blocks: usize, block_size: usize) -> usize {
        checked_size(blocks, block_size)
            .and_then(|n| usize::try_from(n).ok())
            .expect("pool too large")
    }

    /// Creates the POSIX segment `name` (exclusively, mode `0600`), just
    /// large enough for `blocks` blocks of `block_size` bytes, and lays out
    /// a pool in it with the default options. The pool owns the segment:
    /// the name is unlinked when the last handle drops (keep it with
    /// `pool.region().set_remove_on_drop(false)`). Other processes attach
    /// with [`open_posix`](MemPool::open_posix).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::MemPool;
    /// use shm_segment::Region;
    /// let name = format!("/shm-test-doc-pool-posix-{}", std::process::id());
    /// let pool = MemPool::create_posix(&name, 4, 256)?;
    /// let other = MemPool::open_posix(&name)?; // another process, usually
    /// let block = other.get()?;
    /// assert_eq!((pool.stats().held, block.len()), (1, 256));
    /// drop(block);
    /// drop((other, pool)); // the creator's drop unlinks the name
    /// assert!(MemPool::open_posix(&name).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_posix(name: &str, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_posix_with(name, blocks, block_size, PoolOptions::default())
    }

    /// [`create_posix`](MemPool::create_posix) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let name = format!("/shm-test-doc-pool-posix-with-{}", std::process::id());
    /// let pool = MemPool::create_posix_with(&name, 4, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(MemPool::open_posix(&name)?.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_posix_with(
        name: &str,
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::Posix(name.into()))?;
        Self::create_with(Segment::create_posix(name, size)?, blocks, block_size, opts)
    }

    /// Opens the POSIX segment `name` and attaches to the pool in it (see
    /// [`attach`](MemPool::attach)). Never unlinks it.
    ///
    /// # Examples
    ///
    /// See [`create_posix`](MemPool::create_posix).
    pub fn open_posix(name: &str) -> Result<Self, PoolError> {
        Self::attach(Segment::open_posix(name)?)
    }

    /// Creates a memfd just large enough for the pool and lays the pool out
    /// in it. Hand the fd to another process with
    /// [`send_fd`](shm_segment::send_fd) on `pool.region().memfd()`; or
    /// `fork` after creating it.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::create_memfd("doc-pool", 4, 64)?;
    /// assert!(pool.region().memfd().is_some());
    /// assert_eq!(pool.get()?.id(), shm_mempool::BlockId(0));
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_memfd(name: &str, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_memfd_with(name, blocks, block_size, PoolOptions::default())
    }

    /// [`create_memfd`](MemPool::create_memfd) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let pool = MemPool::create_memfd_with("doc", 2, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(pool.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_memfd_with(
        name: &str,
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::Memfd(name.into()))?;
        Self::create_with(Segment::create_memfd(name, size)?, blocks, block_size, opts)
    }

    /// Creates the System V segment `key` (exclusively, mode `0600`) just
    /// large enough for the pool and lays the pool out in it. The segment
    /// is marked for removal when the last handle drops (keep it with
    /// `pool.region().set_remove_on_drop(false)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::MemPool;
    /// use shm_segment::SysvKey;
    /// let key = SysvKey::random();
    /// let pool = MemPool::create_sysv(key, 4, 64)?;
    /// let other = MemPool::open_sysv(key)?;
    /// drop(other.get()?);
    /// assert_eq!(pool.stats().free, 4);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_sysv(key: SysvKey, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_sysv_with(key, blocks, block_size, PoolOptions::default())
    }

    /// [`create_sysv`](MemPool::create_sysv) with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let key = shm_segment::SysvKey::random();
    /// let pool = MemPool::create_sysv_with(key, 2, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(MemPool::open_sysv(key)?.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_sysv_with(
        key: SysvKey,
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::SysvKey(key.0))?;
        Self::create_with(Segment::create_sysv(key, size)?, blocks, block_size, opts)
    }

    /// Opens the System V segment `key` and attaches to the pool in it.
    /// Never removes it.
    ///
    /// # Examples
    ///
    /// See [`create_sysv`](MemPool::create_sysv).
    pub fn open_sysv(key: SysvKey) -> Result<Self, PoolError> {
        Self::attach(Segment::open_sysv(key)?)
    }
}

/// [`MemPool::required_size`] as an error instead of a panic.
/// Checks the block count and size first (as
/// [`create_with`](MemPool::create_with) does), so that nothing is
/// allocated or created for a pool that cannot be.
pub(crate) fn sized(
    blocks: usize,
    block_size: usize,
    target: impl FnOnce() -> Target,
) -> Result<usize, PoolError> {
    let checked = check_counts(blocks, block_size).and_then(|_| {
        checked_size(blocks, block_size)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("{blocks} blocks of {block_size} bytes cannot be addressed"))
    });
    checked.map_err(|reason| PoolError::InvalidLayout {
        target: target(),
        reason,
    })
}

/// The block count as the layout stores it, and the block size rounded up
/// to [`BLOCK_ALIGN`]; or why a pool cannot have them.
pub(crate) fn check_counts(blocks: usize, block_size: usize) -> Result<(u32, u64), String> {
    let blocks = match u32::try_from(blocks) {
        Ok(n) if (1..=MAX_BLOCKS).contains(&n) => n,
        _ => {
            return Err(format!(
                "block count {blocks} must be between 1 and {MAX_BLOCKS}"
            ))
        }
    };
    match (block_size as u64).checked_next_multiple_of(BLOCK_ALIGN as u64) {
        Some(size) if block_size != 0 && size <= u64::from(u32::MAX) => Ok((blocks, size)),
        _ => Err(format!(
            "block size {block_size} must be between 1 and 4 GiB"
        )),
    }
}

impl MemPool<HeapRegion> {
    /// A pool on the heap, for use between threads, with the default
    /// options ([`FreeOrder::Fifo`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = shm_mempool::MemPool::new_heap(8, 256)?;
    /// assert_eq!(pool.block_size(), 256);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn new_heap(blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::new_heap_with(blocks, block_size, PoolOptions::default())
    }

    /// A pool on the heap with `opts`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let pool = MemPool::new_heap_with(8, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(pool.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn new_heap_with(
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let size = sized(blocks, block_size, || Target::Heap)?;
        Self::create_with(HeapRegion::new(size), blocks, block_size, opts)
    }
}

impl<R: Region> MemPool<R> {
    /// Lays out a pool of `blocks` blocks of `block_size` bytes (rounded up
    /// to a multiple of 64) in `region`, all free, with the default options
    /// ([`FreeOrder::Fifo`]), and publishes its header.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::MemPool;
    /// let region = shm_segment::HeapRegion::new(MemPool::required_size(2, 64));
    /// let pool = MemPool::create(region, 2, 64)?;
    /// assert_eq!(pool.blocks(), 2);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create(region: R, blocks: usize, block_size: usize) -> Result<Self, PoolError> {
        Self::create_with(region, blocks, block_size, PoolOptions::default())
    }

    /// [`create`](MemPool::create) with options: the free order.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::{FreeOrder, MemPool, PoolOptions};
    /// let region = shm_segment::HeapRegion::new(MemPool::required_size(2, 64));
    /// let pool = MemPool::create_with(&region, 2, 64, PoolOptions::new().order(FreeOrder::Lifo))?;
    /// assert_eq!(MemPool::attach(&region)?.order(), FreeOrder::Lifo);
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn create_with(
        region: R,
        blocks: usize,
        block_size: usize,
        opts: PoolOptions,
    ) -> Result<Self, PoolError> {
        let invalid = |reason: String| PoolError::InvalidLayout {
            target: region.target(),
            reason,
        };
        let (blocks, size) = check_counts(blocks, block_size).map_err(invalid)?;
        let needed = offsets(u64::from(blocks), size)
            .ok_or_else(|| invalid("the pool would not fit in memory".into()))?
            .total;
        if needed > region.len() as u64 {
            return Err(invalid(format!(
                "{blocks} blocks of {size} bytes need {needed} bytes, the region has {}",
                region.len()
            )));
        }
        region.check_writable("create pool")?;
        Header::check_vacant(&region)?;
        region.fill(HEADER_SIZE, needed as usize - HEADER_SIZE, 0)?;
        let pool = Self::wire(
            region,
            blocks,
            size as usize,
            Some((opts.order, opts.blocking)),
        )?;
        let cap = pool.inner.mask + 1;
        let (order, fifo_tail, lifo_top) = match opts.order {
            // FIFO: blocks 0..n in cells 0..n, head 0, tail n.
            FreeOrder::Fifo => (ORDER_FIFO, u64::from(blocks), 0),
            // LIFO: block 0 on top, each linked to the next.
            FreeOrder::Lifo => (ORDER_LIFO, 0, 1),
        };
        let flags = if opts.blocking { FLAG_BLOCKING } else { 0 };
        // The region was just zero-filled, and std's atomics are valid as
        // zeroes: the control block needs only its non-zero words stored.
        // Writing a whole `Control` value would also copy its padding (the
        // gaps `CachePadded` leaves) from this stack frame into memory other
        // processes read.
        #[cfg(not(loom))]
        {
            let control = pool.control();
            control.order.store(order, Ordering::Relaxed);
            control.stack.store(lifo_top, Ordering::Relaxed);
            control.tail.store(fifo_tail, Ordering::Relaxed);
            control.flags.store(flags, Ordering::Relaxed);
        }
        // SAFETY: `wire` checked that the control block, the owner table,
        // the `blocks` records and the `cap` cells of both queues are in
        // bounds and aligned; nobody else uses them before the header is
        // published below. Writing whole values constructs the atomics in
        // place (what loom's need; for std's it equals storing the values);
        // none of these values but loom's `Control` has padding.
        unsafe {
            #[cfg(loom)]
            pool.inner.control.cast_mut().write(Control {
                order: CachePadded::new(AtomicU32::new(order)),
                stack: CachePadded::new(AtomicU64::new(lifo_top)),
                head: CachePadded::new(AtomicU64::new(0)),
                tail: CachePadded::new(AtomicU64::new(fifo_tail)),
                sent_head: CachePadded::new(AtomicU64::new(0)),
                sent_tail: CachePadded::new(AtomicU64::new(0)),
                wait: CachePadded::new(WaitWords::default()),
                flags: CachePadded::new(AtomicU32::new(flags)),
            });
            for s in 0..OWNER_SLOTS {
                pool.inner.owners.cast_mut().add(s).write(AtomicU64::new(0));
            }
            for i in 0..blocks {
                let (next, word) = match opts.order {
                    // Free, at position i of the queue.
                    FreeOrder::Fifo => (0, u64::from(i) << PLACE_SHIFT),
                    FreeOrder::Lifo if i + 1 < blocks => (i + 2, FREE),
                    FreeOrder::Lifo => (0, FREE),
                };
                pool.inner.metas.cast_mut().add(i as usize).write(Meta {
                    next: AtomicU32::new(next),
                    used: AtomicU32::new(0),
                    word: AtomicU64::new(word),
                });
            }
            for p in 0..cap {
                let cell = match opts.order {
                    FreeOrder::Fifo if p < u64::from(blocks) => cell_word(p as u32 + 1, p as u32),
                    _ => cell_word(p as u32, 0),
                };
                pool.inner
                    .cells
                    .cast_mut()
                    .add(p as usize)
                    .write(AtomicU64::new(cell));
                pool.inner
                    .sent
                    .cast_mut()
                    .add(p as usize)
                    .write(AtomicU64::new(cell_word(p as u32, 0)));
            }
        }
        let info = HeaderInfo::new(
            Kind::MEMPOOL,
            LAYOUT_VERSION,
            size as u32,
            BLOCK_ALIGN as u32,
            u64::from(blocks),
            needed,
        );
        // SYNC POINT: the header's Release publish covers the lists built above.
        Header::init(&pool.inner.region, &info)?;
        Ok(pool)
    }

    /// Attaches to a pool another process created, validating its header
    /// (kind, version, alignment, block count and size against the region)
    /// and its free order.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_mempool::MemPool;
    /// let region = shm_segment::HeapRegion::new(MemPool::required_size(2, 64));
    /// MemPool::create(&region, 2, 64)?;
    /// let other = MemPool::attach(&region)?;
    /// assert_eq!((other.blocks(), other.block_size()), (2, 64));
    /// # Ok::<(), shm_mempool::PoolError>(())
    /// ```
    pub fn attach(region: R) -> Result<Self, PoolError> {
        // Taking and giving back write shared words: a read-only mapping
        // would fault. Read-only observers use [`inspect`].
        region.check_writable("attach pool")?;
        let info = validate(&region)?;
        Self::wire(region, info.capacity as u32, info.elem_size as usize, None)
    }

    /// For the loom models only: this handle (call it before its first
    /// operation) acts as another process, one that the liveness check
    /// calls dead (loom cannot start processes). Combine with
    /// [`loom_kill_after`](MemPool::loom_kill_after).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_as_other_process(&self) {
        self.inner
            .hooks
            .fake_owner
            .store(LOOM_DEAD_OWNER, Ordering::Relaxed);
    }

    /// Checks bounds and alignment once; later indexes are checked against
    /// `blocks`, slots against [`OWNER_SLOTS`], and queue positions masked.
    /// `opts`: the order and blocking flag being laid out, or `None` to read
    /// (and check) the pool's.
    fn wire(
        region: R,
        blocks: u32,
        block_size: usize,
        opts: Option<(FreeOrder, bool)>,
    ) -> Result<Self, PoolError> {
        let too_big = || PoolError::InvalidLayout {
            target: region.target(),
            reason: format!("{blocks} blocks of {block_size} bytes cannot be addressed"),
        };
        let offs = offsets(u64::from(blocks), block_size as u64).ok_or_else(too_big)?;
        let cap = queue_cap(u64::from(blocks));
        let cap_usize = usize::try_from(cap).map_err(|_| too_big())?;
        let control = region.typed_ptr::<Control>("attach pool", CONTROL_OFFSET, 1)?;
        let owners = region.typed_ptr::<AtomicU64>("attach pool", OWNERS_OFFSET, OWNER_SLOTS)?;
        let metas = region.typed_ptr::<Meta>("attach pool", META_OFFSET, blocks as usize)?;
        let cells = region.typed_ptr::<AtomicU64>(
            "attach pool",
            usize::try_from(offs.cells).map_err(|_| too_big())?,
            cap_usize,
        )?;
        let sent = region.typed_ptr::<AtomicU64>(
            "attach pool",
            usize::try_from(offs.sent).map_err(|_| too_big())?,
            cap_usize,
        )?;
        let data_off = usize::try_from(offs.data).map_err(|_| too_big())?;
        let data_len = (blocks as usize)
            .checked_mul(block_size)
            .ok_or_else(too_big)?;
        region.check_range("attach pool", data_off, data_len)?;
        // SAFETY: in range (checked just above).
        let data = unsafe { region.as_ptr().add(data_off) };
        let (order, blocking) = match opts {
            Some(opts) => opts,
            None => {
                // SAFETY: in bounds and aligned (checked above); atomic loads.
                let (order, flags) = unsafe {
                    (
                        (*control).order.load(Ordering::Acquire),
                        (*control).flags.load(Ordering::Acquire),
                    )
                };
                let order = match order {
                    ORDER_FIFO => FreeOrder::Fifo,
                    ORDER_LIFO => FreeOrder::Lifo,
                    other => {
                        return Err(PoolError::Corrupted {
                            target: region.target(),
                            what: format!(
                                "the free-order word is {other}, not {ORDER_FIFO} (FIFO) or \
                                 {ORDER_LIFO} (LIFO)"
                            ),
                        })
                    }
                };
                (order, flags & FLAG_BLOCKING != 0)
            }
        };
        Ok(MemPool {
            inner: Arc::new(Inner {
                region,
                control,
                owners,
                metas,
                cells,
                sent,
                data,
                blocks,
                block_size,
                mask: cap - 1,
                order,
                blocking,
                slot_cache: std::sync::atomic::AtomicU64::new(0),
                #[cfg(loom)]
                hooks: LoomHooks::default(),
            }),
        })
    }
}

/// Reads a pool's header and checks it against the region: kind, version,
/// alignment, block count, block size and total size.
pub(crate) fn validate<R: Region>(region: &R) -> Result<HeaderInfo, PoolError> {
    let expect = Expect::sized_by_header(Kind::MEMPOOL, LAYOUT_VERSION, BLOCK_ALIGN as u32)
        .max_capacity(u64::from(MAX_BLOCKS));
    validate_header(region, &expect, |info| {
        offsets(info.capacity, u64::from(info.elem_size)).map(|o| o.total)
    })
}

/// [`Header::validate`] for a pool's or a channel's header (block size from
/// the header, a multiple of [`BLOCK_ALIGN`]).
pub(crate) fn validate_header<R: Region>(
    region: &R,
    expect: &Expect,
    layout: impl FnOnce(&HeaderInfo) -> Option<u64>,
) -> Result<HeaderInfo, PoolError> {
    Ok(Header::validate(region, expect, layout)?)
}
