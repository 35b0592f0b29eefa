//! The single-producer single-consumer ring.
//!
//! Positions are monotonic `u64`s (the slot is `pos & mask`), so full and
//! empty need no spare slot. The producer owns the tail, the consumer the
//! head, each on its own cache line; each side caches the other's position
//! and re-reads it only when the cached value says full or empty, so the
//! fast path touches no line it does not own.
//!
//! **Crash safety.** The producer writes a slot, then publishes the new tail
//! with Release. Killed at any instant, it leaves the tail either before or
//! after a complete element: the consumer sees exactly the committed prefix,
//! never a torn element. A new producer can then attach (the dead holder's
//! claim is taken over: roles record pid *and* start time) and continue from
//! the tail. The same holds for a killed consumer.
//!
//! **What a killed process leaves to the blocking calls.** Blocking calls
//! sleep in slices of at most 10 ms and, between slices, check whether the
//! other role is still held by a live process (a syscall, never on the fast
//! path). So a consumer waiting in [`Consumer::pop_blocking`], even with
//! `Duration::MAX`, whose producer is killed (while it waits, or between
//! publishing and waking it) first takes everything that was published,
//! then returns [`PopError::PeerGone`] within about one slice; a producer
//! waiting in [`Producer::push_blocking`] on a full ring whose consumer is
//! killed returns [`PushError::PeerGone`]. The same happens when the other
//! handle is dropped (the role is given back). A role never taken since the
//! ring was created is not gone: the waiter keeps waiting for a process to
//! take it. [`Producer::is_abandoned`] and [`Consumer::is_abandoned`] tell
//! without waiting. A waiter killed inside its futex sleep leaves itself
//! counted as a sleeper; the next push or pop that wakes nobody resets the
//! count, and later ones make no syscall again.
//!
//! **Across `fork`.** A role belongs to the process that took it. A
//! [`Producer`] or [`Consumer`] that a `fork(2)`ed child inherits is inert in
//! the child: it remembers the [`ForkEpoch`] it was made in, and each
//! operation first checks that epoch (one relaxed load, once per call, also
//! for bulk operations). In the child, operations that return a `Result`
//! fail with `ForkedHandle` ([`PushError::ForkedHandle`] gives the value
//! back, [`PopError::ForkedHandle`], [`BulkError::ForkedHandle`]);
//! operations that return a count ([`Producer::push_slice`],
//! [`Consumer::pop_into`], `slots`) move nothing and return 0, as on a full
//! or empty ring, and [`Producer::is_inert`] / [`Consumer::is_inert`] tell
//! the two apart. Dropping the inherited handle releases nothing: the parent
//! keeps its role, and a third process asking for it still gets
//! [`RingError::RoleTaken`] while the parent lives. The [`SpscRing`] itself
//! is not a role and works in the child: the pattern of pyshm (create the
//! ring, `fork`, then each process takes its own role) is the way to share
//! one ring between a parent and its child.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;
use shm_segment::{ForkEpoch, HeapRegion, Kind, Region};

use crate::error::{BulkError, PopError, PushError, RingError};
use crate::shared::{
    claim_role, heap_region, release_role, role_abandoned, Layout, Mapped, RingOptions,
};
use crate::sync::{AtomicU64, ValueCell};
use crate::wait::{Peer, Wait, WaitStrategy, Waited};

/// 2: the sleeper count is a 64-bit word with a generation, and a role given
/// back reads `RELEASED` instead of 0.
pub(crate) const LAYOUT_VERSION: u32 = 2;

fn layout<T>() -> Layout<ValueCell<T>> {
    Layout::new(Kind::SPSC_RING, LAYOUT_VERSION)
}

/// A single-producer single-consumer ring of `T` in a [`Region`], shared by
/// any number of processes of which one produces and one consumes.
///
/// Create it in one process ([`create`](SpscRing::create)), attach in
/// others ([`attach`](SpscRing::attach)), then take the
/// [`producer`](SpscRing::producer) or [`consumer`](SpscRing::consumer)
/// role; each role is held by one process at a time (a second claim gets
/// [`RingError::RoleTaken`] while the holder lives, and succeeds once it died).
///
/// # Examples
///
/// ```
/// use shm_ring::{RingOptions, SpscRing};
/// use shm_segment::PosixOptions;
///
/// let name = format!("/shm-test-doc-spsc-{}", std::process::id());
/// let size = SpscRing::<u64, ()>::required_size(1024);
/// let shm = PosixOptions::new().unlink_on_drop(true).create(&name, size)?;
/// let ring = SpscRing::<u64, _>::create(shm.map()?, 1024, RingOptions::new())?;
/// let mut tx = ring.producer()?;
///
/// // Another process: attach by name and consume.
/// let other = SpscRing::<u64, _>::attach(shm_segment::PosixShm::open(&name)?.map()?)?;
/// let mut rx = other.consumer()?;
///
/// tx.push(42).unwrap();
/// tx.push_slice(&[1, 2, 3]);
/// assert_eq!(rx.pop(), Ok(42));
/// let mut buf = [0; 8];
/// assert_eq!(rx.pop_into(&mut buf), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SpscRing<T, R> {
    shared: Arc<Mapped<R>>,
    /// Given to the roles taken from this handle.
    wait: WaitStrategy,
    _t: PhantomData<fn() -> T>,
}

impl<T, R> Clone for SpscRing<T, R> {
    fn clone(&self) -> Self {
        SpscRing {
            shared: Arc::clone(&self.shared),
            wait: self.wait,
            _t: PhantomData,
        }
    }
}

impl<T, R> std::fmt::Debug for SpscRing<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpscRing")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

impl<T: Pod, R> SpscRing<T, R> {
    /// Bytes a ring of `capacity` elements needs (header included): size the
    /// segment with this.
    ///
    /// # Panics
    ///
    /// If the size does not fit in a `u64` (a capacity near 2^61 or more).
    ///
    /// # Examples
    ///
    /// ```
    /// let n = shm_ring::SpscRing::<u64, ()>::required_size(1024);
    /// assert!(n >= 1024 * 8);
    /// ```
    pub fn required_size(capacity: usize) -> usize {
        Layout::<ValueCell<T>>::size(capacity as u64).expect("capacity too large") as usize
    }
}

impl<T: Pod> SpscRing<T, HeapRegion> {
    /// A ring on the heap for use between threads, as `rtrb::RingBuffer::new`:
    /// returns both ends.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u32, _>::new_heap(8)?;
    /// std::thread::spawn(move || tx.push(5).unwrap()).join().unwrap();
    /// assert_eq!(rx.pop(), Ok(5));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn new_heap(
        capacity: usize,
    ) -> Result<(Producer<T, HeapRegion>, Consumer<T, HeapRegion>), RingError> {
        let region = heap_region::<ValueCell<T>>(capacity)?;
        let ring = Self::create(region, capacity as u64, RingOptions::new())?;
        Ok((ring.producer()?, ring.consumer()?))
    }
}

impl<T: Pod, R: Region> SpscRing<T, R> {
    /// Lays out a new, empty ring of `capacity` (a power of two) in `region`
    /// and publishes its header. Fails if a structure is already there.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{RingOptions, SpscRing};
    /// let region = shm_segment::AnonShared::new(SpscRing::<u32, ()>::required_size(64))?;
    /// let ring = SpscRing::<u32, _>::create(region, 64, RingOptions::new().blocking(true))?;
    /// assert_eq!(ring.capacity(), 64);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(region: R, capacity: u64, opts: RingOptions) -> Result<Self, RingError> {
        let shared = Mapped::create::<T, ValueCell<T>>(
            region,
            &layout::<T>(),
            capacity,
            opts,
            |cell, _| {
                // SAFETY: a slot inside the region, not shared before the header is published.
                unsafe { ValueCell::init(cell, T::zeroed()) }
            },
        )?;
        Ok(Self::wrap(shared, opts.wait()))
    }

    /// Attaches to a ring another process created, validating its header
    /// (magic, kind, version, element size and alignment, capacity, size).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// let err = SpscRing::<u64, _>::attach(shm_segment::HeapRegion::new(4096)).unwrap_err();
    /// assert!(err.to_string().contains("never initialised"));
    /// ```
    pub fn attach(region: R) -> Result<Self, RingError> {
        Ok(Self::wrap(
            Mapped::attach::<T, ValueCell<T>>(region, &layout::<T>())?,
            WaitStrategy::DEFAULT,
        ))
    }

    fn wrap(shared: Mapped<R>, wait: WaitStrategy) -> Self {
        SpscRing {
            shared: Arc::new(shared),
            wait,
            _t: PhantomData,
        }
    }

    /// This handle with another [`WaitStrategy`] for the roles taken from it
    /// from now on (process-local: other processes choose their own).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{SpscRing, WaitStrategy};
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8, ()>::required_size(4));
    /// let ring = SpscRing::<u8, _>::create(region, 4, Default::default())?
    ///     .with_wait_strategy(WaitStrategy::SpinThenYield);
    /// assert_eq!(ring.producer()?.wait_strategy(), WaitStrategy::SpinThenYield);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.wait = strategy;
        self
    }

    /// Takes the producer role.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{RingError, SpscRing};
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8, ()>::required_size(16));
    /// let ring = SpscRing::<u8, _>::create(region, 16, Default::default())?;
    /// let tx = ring.producer()?;
    /// assert!(matches!(ring.producer(), Err(RingError::RoleTaken { role: "producer", .. })));
    /// drop(tx);
    /// assert!(ring.producer().is_ok()); // given back on drop
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn producer(&self) -> Result<Producer<T, R>, RingError> {
        let ctl = self.shared.control();
        let me = claim_role(&ctl.tail.owner, "producer", || {
            self.shared.region().target()
        })?;
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        Ok(Producer {
            tail,
            cached_head: ctl.head.pos.load(Ordering::Acquire),
            me,
            epoch: ForkEpoch::now(),
            wait: self.wait,
            dead_peer: 0,
            shared: Arc::clone(&self.shared),
            _t: PhantomData,
        })
    }

    /// Takes the consumer role.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8, ()>::required_size(16));
    /// let ring = SpscRing::<u8, _>::create(region, 16, Default::default())?;
    /// let _rx = ring.consumer()?;
    /// assert!(ring.consumer().is_err());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn consumer(&self) -> Result<Consumer<T, R>, RingError> {
        let ctl = self.shared.control();
        let me = claim_role(&ctl.head.owner, "consumer", || {
            self.shared.region().target()
        })?;
        let head = ctl.head.pos.load(Ordering::Acquire);
        Ok(Consumer {
            head,
            cached_tail: ctl.tail.pos.load(Ordering::Acquire),
            me,
            epoch: ForkEpoch::now(),
            wait: self.wait,
            dead_peer: 0,
            shared: Arc::clone(&self.shared),
            _t: PhantomData,
        })
    }

    /// The number of slots.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(32)?;
    /// assert_eq!(tx.capacity(), 32);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// Items in the ring now (a snapshot; clamped to the capacity).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8, ()>::required_size(4));
    /// let ring = SpscRing::<u8, _>::create(region, 4, Default::default())?;
    /// ring.producer()?.push(1).unwrap();
    /// assert_eq!(ring.len(), 1);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn len(&self) -> usize {
        len_of(&self.shared)
    }

    /// Whether the ring is empty now.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8, ()>::required_size(4));
    /// assert!(SpscRing::<u8, _>::create(region, 4, Default::default())?.is_empty());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The region the ring lives in.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let (tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// let _ = tx;
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn region(&self) -> &R {
        self.shared.region()
    }
}

/// How a handle with `strategy` waits on `shared`.
fn wait_of<R>(shared: &Mapped<R>, strategy: WaitStrategy) -> Wait {
    Wait {
        strategy,
        futex: shared.blocking,
    }
}

fn len_of<R>(shared: &Mapped<R>) -> usize {
    let ctl = shared.control();
    let head = ctl.head.pos.load(Ordering::Acquire);
    let tail = ctl.tail.pos.load(Ordering::Acquire);
    tail.wrapping_sub(head).min(shared.capacity) as usize
}

// The error paths of a handle inherited across `fork`: cold and out of line,
// so that the hot path keeps only the relaxed load of `ForkEpoch::is_current`.

#[cold]
#[inline(never)]
fn forked_push<T>(value: T) -> PushError<T> {
    PushError::ForkedHandle(value)
}

#[cold]
#[inline(never)]
fn forked_pop() -> PopError {
    PopError::ForkedHandle
}

#[cold]
#[inline(never)]
fn forked_bulk() -> BulkError {
    BulkError::ForkedHandle
}

/// What an inherited handle's count-returning operations return: nothing moved.
#[cold]
#[inline(never)]
fn forked_count() -> usize {
    0
}

/// The producing end of an [`SpscRing`]. Gives the role back on drop.
///
/// Inherited by a `fork`ed child, it is inert there: pushes fail with
/// [`PushError::ForkedHandle`] or [`BulkError::ForkedHandle`],
/// [`push_slice`](Producer::push_slice) and [`slots`](Producer::slots)
/// return 0, [`is_inert`](Producer::is_inert) is true, and its drop keeps
/// the parent's role (see the [module docs](crate::spsc)).
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u16, _>::new_heap(4)?;
/// tx.push(3).unwrap();
/// assert_eq!(rx.pop(), Ok(3));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
pub struct Producer<T, R> {
    /// Next position to write; only this handle writes the shared tail.
    tail: u64,
    /// Last head seen; the true head is never behind it.
    cached_head: u64,
    /// Our claim in the tail's owner word (`ProcessId::to_word`).
    me: u64,
    /// The process the role was taken in; anywhere else the handle is inert.
    epoch: ForkEpoch,
    /// How blocking calls wait (process-local).
    wait: WaitStrategy,
    /// The consumer's owner word when it was last found dead (0: never).
    dead_peer: u64,
    shared: Arc<Mapped<R>>,
    _t: PhantomData<fn(T)>,
}

impl<T, R> std::fmt::Debug for Producer<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.tail)
            .finish_non_exhaustive()
    }
}

impl<T, R> Drop for Producer<T, R> {
    fn drop(&mut self) {
        // In a forked child the role is the parent's: leave it alone.
        if self.epoch.is_current() {
            release_role(&self.shared.control().tail.owner, self.me);
        }
    }
}

impl<T: Pod, R> Producer<T, R> {
    fn tail_word(&self) -> &AtomicU64 {
        &self.shared.control().tail.pos
    }

    /// Free slots, refreshing the cached head when fewer than `want` seem free.
    #[inline]
    fn free(&mut self, want: u64) -> u64 {
        let cap = self.shared.capacity;
        let mut used = self.tail.wrapping_sub(self.cached_head);
        if cap.saturating_sub(used) < want {
            // SYNC POINT: Acquire pairs with the consumer's Release store of
            // the head: the slots it freed are no longer being read.
            self.cached_head = self.shared.control().head.pos.load(Ordering::Acquire);
            used = self.tail.wrapping_sub(self.cached_head);
        }
        // A corrupted head (ahead of the tail) reads as full: data may stall, memory stays safe.
        cap.saturating_sub(used)
    }

    #[inline]
    fn publish(&mut self, n: u64) {
        self.tail = self.tail.wrapping_add(n);
        // SYNC POINT: Release pairs with the consumer's Acquire load of the
        // tail: the elements written above are visible before the new tail.
        self.tail_word().store(self.tail, Ordering::Release);
        if self.shared.blocking {
            self.shared.control().items.notify();
        }
    }

    #[inline]
    fn write_slot(&self, pos: u64, value: T) {
        // SAFETY: the slot pointer is masked into the region; slots between
        // head and head + capacity beyond the tail belong to the producer
        // alone under the ring protocol; T is Pod, so a plain write is fine.
        unsafe { ValueCell::write(self.cell(pos), value) }
    }

    #[inline]
    fn cell(&self, pos: u64) -> *mut ValueCell<T> {
        self.shared.slot_ptr::<ValueCell<T>>(pos)
    }

    /// Pushes one value, or gives it back when the ring is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u64, _>::new_heap(2)?;
    /// tx.push(1).unwrap();
    /// tx.push(2).unwrap();
    /// assert!(tx.push(3).is_err());
    /// assert_eq!(rx.pop(), Ok(1));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        if !self.epoch.is_current() {
            return Err(forked_push(value));
        }
        if self.free(1) == 0 {
            return Err(PushError::Full(value));
        }
        self.write_slot(self.tail, value);
        self.publish(1);
        Ok(())
    }

    /// Pushes as many of `values` as fit, in order, publishing once; returns
    /// how many. 0 from a handle inherited across `fork` (see
    /// [`is_inert`](Producer::is_inert)).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert_eq!(tx.push_slice(&[1, 2, 3, 4, 5, 6]), 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn push_slice(&mut self, values: &[T]) -> usize {
        if !self.epoch.is_current() {
            return forked_count();
        }
        let n = (values.len() as u64).min(self.free(values.len() as u64)) as usize;
        self.copy_in(&values[..n]);
        n
    }

    /// Pushes all of `values` or none of them.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// tx.push_exact(&[1, 2, 3])?;
    /// assert!(tx.push_exact(&[4, 5]).is_err());
    /// assert_eq!(tx.slots(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_exact(&mut self, values: &[T]) -> Result<(), BulkError> {
        if !self.epoch.is_current() {
            return Err(forked_bulk());
        }
        let free = self.free(values.len() as u64);
        if (values.len() as u64) > free {
            return Err(BulkError::TooFew {
                requested: values.len(),
                available: free as usize,
            });
        }
        self.copy_in(values);
        Ok(())
    }

    fn copy_in(&mut self, values: &[T]) {
        if values.is_empty() {
            return;
        }
        let cap = self.shared.capacity as usize;
        let start = (self.tail & self.shared.mask) as usize;
        let first = values.len().min(cap - start);
        // SAFETY: `start + first <= capacity` and the rest starts at slot 0,
        // so both copies stay inside the slot array; these free slots belong
        // to the producer alone; `values` is local memory, no overlap.
        unsafe {
            let base = self.cell(0);
            ValueCell::write_run(base.add(start), &values[..first]);
            ValueCell::write_run(base, &values[first..]);
        }
        self.publish(values.len() as u64);
    }

    /// Waits up to `timeout` for a free slot, then pushes; gives the value
    /// back if the ring is still full at the deadline
    /// ([`PushError::Full`]), or as soon as it is full and the consumer is
    /// gone ([`PushError::PeerGone`]: the role was given back or its holder
    /// died; checked between sleep slices of at most 10 ms). How it waits is
    /// the handle's [`WaitStrategy`]; it parks on a futex on a ring created
    /// with [`RingOptions::blocking`], with a polling back-off otherwise.
    /// `Duration::MAX` waits as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm_ring::PushError;
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(1)?;
    /// tx.push(1).unwrap();
    /// assert_eq!(tx.push_blocking(2, Duration::from_millis(5)), Err(PushError::Full(2)));
    /// rx.pop().unwrap();
    /// tx.push_blocking(2, Duration::from_secs(1)).unwrap();
    /// drop(rx); // the consumer is gone and the ring is full
    /// assert_eq!(tx.push_blocking(3, Duration::MAX), Err(PushError::PeerGone(3)));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn push_blocking(&mut self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        if !self.epoch.is_current() {
            return Err(forked_push(value));
        }
        let shared = Arc::clone(&self.shared);
        let ctl = shared.control();
        let mut dead = self.dead_peer;
        let peer = Peer {
            owner: &ctl.head.owner,
            dead: &mut dead,
        };
        let waited = wait_of(&shared, self.wait).until(&ctl.room, timeout, Some(peer), || {
            (self.free(1) > 0).then_some(())
        });
        self.dead_peer = dead;
        match waited {
            Waited::Ready(()) => self.push(value),
            Waited::TimedOut => Err(PushError::Full(value)),
            Waited::PeerGone => Err(PushError::PeerGone(value)),
        }
    }

    /// Reserves up to `n` free slots to fill in place; nothing is published
    /// until [`WriteChunk::commit`]. Fails when fewer than `n` are free.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<[u8; 64], _>::new_heap(4)?;
    /// let mut chunk = tx.write_chunk(2)?;
    /// chunk.write_bytes(0, 0, b"in place")?;
    /// chunk.write(1, &[7; 64]);
    /// chunk.commit_all();
    /// assert_eq!(&rx.pop()?[..8], b"in place");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_chunk(&mut self, n: usize) -> Result<WriteChunk<'_, T, R>, BulkError> {
        if !self.epoch.is_current() {
            return Err(forked_bulk());
        }
        let free = self.free(n as u64);
        if n as u64 > free {
            return Err(BulkError::TooFew {
                requested: n,
                available: free as usize,
            });
        }
        Ok(WriteChunk {
            producer: self,
            len: n,
        })
    }

    /// Free slots now; 0 from a handle inherited across `fork` (see
    /// [`is_inert`](Producer::is_inert)).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// tx.push(0).unwrap();
    /// assert_eq!(tx.slots(), 3);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn slots(&mut self) -> usize {
        if !self.epoch.is_current() {
            return forked_count();
        }
        self.free(u64::MAX) as usize
    }

    /// Whether this handle was inherited across `fork(2)` and is therefore
    /// inert in this process: every push fails or moves nothing, and its
    /// drop keeps the role of the process that took it. Take the role here
    /// with [`SpscRing::producer`] instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert!(!tx.is_inert()); // made in this process
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_inert(&self) -> bool {
        !self.epoch.is_current()
    }

    /// Whether the consumer role was taken and is no longer held by a live
    /// process, as rtrb's `is_abandoned`: true once the consumer handle was
    /// dropped (the role given back) or its holder died, false while a live
    /// process holds it and also while it was never taken since the ring was
    /// created (a consumer may still come). Once a new process takes the
    /// role, false again. Asks the kernel whether the holder lives (a
    /// syscall) when one is recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8, ()>::required_size(4));
    /// let ring = SpscRing::<u8, _>::create(region, 4, Default::default())?;
    /// let tx = ring.producer()?;
    /// assert!(!tx.is_abandoned()); // never taken: not abandoned
    /// let other = ring.consumer()?;
    /// assert!(!tx.is_abandoned()); // held by this live process
    /// drop(other);
    /// assert!(tx.is_abandoned()); // given back
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_abandoned(&self) -> bool {
        role_abandoned(&self.shared.control().head.owner)
    }

    /// How this handle's blocking calls wait.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert_eq!(tx.wait_strategy(), shm_ring::WaitStrategy::DEFAULT);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Changes how this handle's blocking calls wait (process-local: the
    /// other role's process chooses its own).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::WaitStrategy;
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// tx.set_wait_strategy(WaitStrategy::Spin);
    /// assert_eq!(tx.wait_strategy(), WaitStrategy::Spin);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// The ring's capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert_eq!(tx.capacity(), 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }
}

/// Slots reserved by [`Producer::write_chunk`], filled in place.
///
/// A chunk that lives across a `fork` is inert in the child, like its
/// producer: [`write`](WriteChunk::write) and [`commit`](WriteChunk::commit)
/// do nothing there, [`write_bytes`](WriteChunk::write_bytes) fails with
/// [`BulkError::ForkedHandle`], and
/// [`as_mut_slices`](WriteChunk::as_mut_slices) gives empty slices.
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
/// let mut chunk = tx.write_chunk(1)?;
/// chunk.write(0, &1);
/// chunk.commit_all();
/// assert_eq!(rx.pop(), Ok(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WriteChunk<'a, T, R> {
    producer: &'a mut Producer<T, R>,
    len: usize,
}

impl<T: Pod, R> WriteChunk<'_, T, R> {
    /// Reserved slots.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert_eq!(tx.write_chunk(3)?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot is reserved.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert!(tx.write_chunk(0)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, i: usize) -> *mut ValueCell<T> {
        assert!(
            i < self.len,
            "slot {i} is outside the {}-slot chunk",
            self.len
        );
        self.producer
            .cell(self.producer.tail.wrapping_add(i as u64))
    }

    /// Writes the whole element `i` of the chunk. Panics if `i >= len()`.
    ///
    /// # Examples
    ///
    /// See [`Producer::write_chunk`].
    pub fn write(&mut self, i: usize, value: &T) {
        if !self.producer.epoch.is_current() {
            return; // the parent's reserved slot: not ours to write
        }
        // SAFETY: a reserved slot (bounds asserted, pointer masked) that only
        // the producer touches until commit; T is Pod.
        unsafe { ValueCell::write(self.slot(i), *value) }
    }

    /// Writes `bytes` into element `i` at byte `offset`, straight into the
    /// slot (no intermediate `T`): how large elements are filled without an
    /// extra copy.
    ///
    /// # Examples
    ///
    /// See [`Producer::write_chunk`].
    pub fn write_bytes(&mut self, i: usize, offset: usize, bytes: &[u8]) -> Result<(), BulkError> {
        if !self.producer.epoch.is_current() {
            return Err(forked_bulk());
        }
        let size = std::mem::size_of::<T>();
        if offset.checked_add(bytes.len()).is_none_or(|end| end > size) {
            return Err(BulkError::TooFew {
                requested: offset.saturating_add(bytes.len()),
                available: size,
            });
        }
        // SAFETY: as in `write`, and `offset + len <= size_of::<T>()`.
        unsafe {
            ValueCell::with_mut(self.slot(i), |p| {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    p.cast::<u8>().add(offset),
                    bytes.len(),
                )
            })
        };
        Ok(())
    }

    /// The reserved slots as two mutable slices (the second is non-empty
    /// when the chunk wraps around), for filling in place.
    ///
    /// # Safety
    ///
    /// No other process may read or write these slots while the slices
    /// live. Under the ring protocol nobody does; a peer that breaks the
    /// protocol (or writes the memory directly) would make this a data race.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u32, _>::new_heap(4)?;
    /// let mut chunk = tx.write_chunk(4)?;
    /// // SAFETY: only this process uses the ring.
    /// let (a, b) = unsafe { chunk.as_mut_slices() };
    /// a.iter_mut().chain(b).enumerate().for_each(|(i, x)| *x = i as u32);
    /// chunk.commit_all();
    /// assert_eq!(rx.pop(), Ok(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub unsafe fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        if !self.producer.epoch.is_current() {
            return (&mut [], &mut []);
        }
        let cap = self.producer.shared.capacity as usize;
        let start = (self.producer.tail & self.producer.shared.mask) as usize;
        let first = self.len.min(cap - start);
        let base = self.producer.cell(0).cast::<T>();
        // SAFETY: both ranges lie in the slot array and are reserved for the
        // producer; exclusivity against other processes is the caller's
        // promise; T is Pod so any bytes are valid.
        unsafe {
            (
                std::slice::from_raw_parts_mut(base.add(start), first),
                std::slice::from_raw_parts_mut(base, self.len - first),
            )
        }
    }

    /// Publishes the first `n` reserved elements (at most `len()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// let mut c = tx.write_chunk(3)?;
    /// c.write(0, &9);
    /// c.commit(1);
    /// assert_eq!(rx.slots(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(self, n: usize) {
        if !self.producer.epoch.is_current() {
            return;
        }
        let n = n.min(self.len);
        self.producer.publish(n as u64);
    }

    /// Publishes every reserved element.
    ///
    /// # Examples
    ///
    /// See [`Producer::write_chunk`].
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n);
    }
}

/// The consuming end of an [`SpscRing`]. Gives the role back on drop.
///
/// Inherited by a `fork`ed child, it is inert there: pops fail with
/// [`PopError::ForkedHandle`] or [`BulkError::ForkedHandle`],
/// [`pop_into`](Consumer::pop_into) and [`slots`](Consumer::slots) return
/// 0, [`is_empty`](Consumer::is_empty) is true,
/// [`is_inert`](Consumer::is_inert) is true, and its drop keeps the
/// parent's role (see the [module docs](crate::spsc)).
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u16, _>::new_heap(4)?;
/// tx.push_slice(&[1, 2]);
/// assert_eq!((rx.pop(), rx.pop()), (Ok(1), Ok(2)));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
pub struct Consumer<T, R> {
    /// Next position to read; only this handle writes the shared head.
    head: u64,
    /// Last tail seen; the true tail is never behind it.
    cached_tail: u64,
    /// Our claim in the head's owner word (`ProcessId::to_word`).
    me: u64,
    /// The process the role was taken in; anywhere else the handle is inert.
    epoch: ForkEpoch,
    /// How blocking calls wait (process-local).
    wait: WaitStrategy,
    /// The producer's owner word when it was last found dead (0: never).
    dead_peer: u64,
    shared: Arc<Mapped<R>>,
    _t: PhantomData<fn() -> T>,
}

impl<T, R> std::fmt::Debug for Consumer<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl<T, R> Drop for Consumer<T, R> {
    fn drop(&mut self) {
        // In a forked child the role is the parent's: leave it alone.
        if self.epoch.is_current() {
            release_role(&self.shared.control().head.owner, self.me);
        }
    }
}

impl<T: Pod, R> Consumer<T, R> {
    #[inline]
    fn cell(&self, pos: u64) -> *mut ValueCell<T> {
        self.shared.slot_ptr::<ValueCell<T>>(pos)
    }

    /// Items ready, refreshing the cached tail when fewer than `want` seem ready.
    #[inline]
    fn ready(&mut self, want: u64) -> u64 {
        let cap = self.shared.capacity;
        let mut avail = self.cached_tail.wrapping_sub(self.head);
        if avail < want {
            // SYNC POINT: Acquire pairs with the producer's Release store of
            // the tail: the elements before it are fully written.
            self.cached_tail = self.shared.control().tail.pos.load(Ordering::Acquire);
            avail = self.cached_tail.wrapping_sub(self.head);
        }
        // A corrupted tail (more than a lap ahead, or behind) reads as empty.
        if avail > cap {
            0
        } else {
            avail
        }
    }

    #[inline]
    fn release(&mut self, n: u64) {
        self.head = self.head.wrapping_add(n);
        // SYNC POINT: Release pairs with the producer's Acquire load of the
        // head: we are done reading the freed slots.
        self.shared
            .control()
            .head
            .pos
            .store(self.head, Ordering::Release);
        if self.shared.blocking {
            self.shared.control().room.notify();
        }
    }

    /// Takes one value.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u64, _>::new_heap(2)?;
    /// tx.push(9).unwrap();
    /// assert_eq!(rx.pop(), Ok(9));
    /// assert!(rx.pop().is_err());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    #[inline]
    pub fn pop(&mut self) -> Result<T, PopError> {
        if !self.epoch.is_current() {
            return Err(forked_pop());
        }
        if self.ready(1) == 0 {
            return Err(PopError::Empty);
        }
        // SAFETY: the slot is masked into the region; slots between head and
        // tail are complete and not written by the producer until we release
        // them; T is Pod, so any bytes are a valid T.
        let value = unsafe { ValueCell::read(self.cell(self.head)) };
        self.release(1);
        Ok(value)
    }

    /// Takes as many values as fit in `out`, in order, releasing the slots
    /// once; returns how many. 0 from a handle inherited across `fork` (see
    /// [`is_inert`](Consumer::is_inert)).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(8)?;
    /// tx.push_slice(&[1, 2, 3]);
    /// let mut out = [0; 8];
    /// assert_eq!(rx.pop_into(&mut out), 3);
    /// assert_eq!(&out[..3], &[1, 2, 3]);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn pop_into(&mut self, out: &mut [T]) -> usize {
        if !self.epoch.is_current() {
            return forked_count();
        }
        let n = (out.len() as u64).min(self.ready(out.len() as u64)) as usize;
        self.copy_out(&mut out[..n]);
        n
    }

    /// Fills all of `out` or takes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(8)?;
    /// tx.push_slice(&[1, 2]);
    /// assert!(rx.pop_exact(&mut [0; 3]).is_err());
    /// let mut two = [0; 2];
    /// rx.pop_exact(&mut two)?;
    /// assert_eq!(two, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_exact(&mut self, out: &mut [T]) -> Result<(), BulkError> {
        if !self.epoch.is_current() {
            return Err(forked_bulk());
        }
        let ready = self.ready(out.len() as u64);
        if (out.len() as u64) > ready {
            return Err(BulkError::TooFew {
                requested: out.len(),
                available: ready as usize,
            });
        }
        self.copy_out(out);
        Ok(())
    }

    fn copy_out(&mut self, out: &mut [T]) {
        if out.is_empty() {
            return;
        }
        let cap = self.shared.capacity as usize;
        let start = (self.head & self.shared.mask) as usize;
        let first = out.len().min(cap - start);
        // SAFETY: both ranges lie in the slot array and hold complete
        // elements the producer will not touch until we release them; `out`
        // is local memory; T is Pod.
        unsafe {
            let base = self.cell(0);
            let (a, b) = out.split_at_mut(first);
            ValueCell::read_run(base.add(start), a);
            ValueCell::read_run(base, b);
        }
        self.release(out.len() as u64);
    }

    /// Waits up to `timeout` for a value: [`PopError::Empty`] if there is
    /// still none at the deadline, [`PopError::PeerGone`] as soon as the ring
    /// is empty and the producer is gone (the role was given back or its
    /// holder died; checked between sleep slices of at most 10 ms), after
    /// everything it published was taken. How it waits is the handle's
    /// [`WaitStrategy`]; it parks on a futex on a ring created with
    /// [`RingOptions::blocking`], with a polling back-off otherwise.
    /// `Duration::MAX` waits as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm_ring::PopError;
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(2)?;
    /// assert_eq!(rx.pop_blocking(Duration::from_millis(5)), Err(PopError::Empty));
    /// let t = std::thread::spawn(move || tx.push(3).unwrap());
    /// assert_eq!(rx.pop_blocking(Duration::from_secs(10)), Ok(3));
    /// t.join().unwrap(); // the producer was dropped: given back
    /// assert_eq!(rx.pop_blocking(Duration::MAX), Err(PopError::PeerGone));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn pop_blocking(&mut self, timeout: Duration) -> Result<T, PopError> {
        if !self.epoch.is_current() {
            return Err(forked_pop());
        }
        let shared = Arc::clone(&self.shared);
        let ctl = shared.control();
        let mut dead = self.dead_peer;
        let peer = Peer {
            owner: &ctl.tail.owner,
            dead: &mut dead,
        };
        let waited =
            wait_of(&shared, self.wait).until(&ctl.items, timeout, Some(peer), || self.pop().ok());
        self.dead_peer = dead;
        match waited {
            Waited::Ready(v) => Ok(v),
            Waited::TimedOut => Err(PopError::Empty),
            Waited::PeerGone => Err(PopError::PeerGone),
        }
    }

    /// Borrows up to `n` ready elements in place; nothing is released until
    /// [`ReadChunk::commit`]. Fails when fewer than `n` are ready.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<[u8; 16], _>::new_heap(4)?;
    /// tx.push([5; 16]).unwrap();
    /// let chunk = rx.read_chunk(1)?;
    /// let mut head = [0u8; 4];
    /// chunk.read_bytes(0, 0, &mut head)?;
    /// assert_eq!(head, [5; 4]);
    /// chunk.commit_all();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_chunk(&mut self, n: usize) -> Result<ReadChunk<'_, T, R>, BulkError> {
        if !self.epoch.is_current() {
            return Err(forked_bulk());
        }
        let ready = self.ready(n as u64);
        if n as u64 > ready {
            return Err(BulkError::TooFew {
                requested: n,
                available: ready as usize,
            });
        }
        Ok(ReadChunk {
            consumer: self,
            len: n,
        })
    }

    /// Items ready now; 0 from a handle inherited across `fork` (see
    /// [`is_inert`](Consumer::is_inert)).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// tx.push(1).unwrap();
    /// assert_eq!(rx.slots(), 1);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn slots(&mut self) -> usize {
        if !self.epoch.is_current() {
            return forked_count();
        }
        self.ready(u64::MAX) as usize
    }

    /// Whether this handle was inherited across `fork(2)` and is therefore
    /// inert in this process: every pop fails or takes nothing, and its drop
    /// keeps the role of the process that took it. Take the role here with
    /// [`SpscRing::consumer`] instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert!(!rx.is_inert()); // made in this process
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_inert(&self) -> bool {
        !self.epoch.is_current()
    }

    /// Whether the producer role was taken and is no longer held by a live
    /// process, as rtrb's `is_abandoned`: true once the producer handle was
    /// dropped (the role given back) or its holder died, false while a live
    /// process holds it and also while it was never taken since the ring was
    /// created (a producer may still come). Once a new process takes the
    /// role, false again. Asks the kernel whether the holder lives (a
    /// syscall) when one is recorded.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8, ()>::required_size(4));
    /// let ring = SpscRing::<u8, _>::create(region, 4, Default::default())?;
    /// let rx = ring.consumer()?;
    /// assert!(!rx.is_abandoned()); // never taken: not abandoned
    /// let other = ring.producer()?;
    /// assert!(!rx.is_abandoned()); // held by this live process
    /// drop(other);
    /// assert!(rx.is_abandoned()); // given back
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_abandoned(&self) -> bool {
        role_abandoned(&self.shared.control().tail.owner)
    }

    /// How this handle's blocking calls wait.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert_eq!(rx.wait_strategy(), shm_ring::WaitStrategy::DEFAULT);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Changes how this handle's blocking calls wait (process-local: the
    /// other role's process chooses its own).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::WaitStrategy;
    /// let (_tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// rx.set_wait_strategy(WaitStrategy::Spin);
    /// assert_eq!(rx.wait_strategy(), WaitStrategy::Spin);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = strategy;
    }

    /// Whether nothing is ready now (always, for a handle inherited across
    /// `fork`).
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert!(rx.is_empty());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_empty(&mut self) -> bool {
        !self.epoch.is_current() || self.ready(1) == 0
    }
}

/// Ready elements borrowed by [`Consumer::read_chunk`].
///
/// A chunk that lives across a `fork` is inert in the child, like its
/// consumer: [`commit`](ReadChunk::commit) releases nothing there,
/// [`read_bytes`](ReadChunk::read_bytes) fails with
/// [`BulkError::ForkedHandle`], and [`as_slices`](ReadChunk::as_slices)
/// gives empty slices. ([`read`](ReadChunk::read), which cannot fail, still
/// copies the slot: reading changes nothing the parent relies on.)
///
/// # Examples
///
/// ```
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
/// tx.push(6).unwrap();
/// let chunk = rx.read_chunk(1)?;
/// assert_eq!(chunk.read(0), 6);
/// chunk.commit_all();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ReadChunk<'a, T, R> {
    consumer: &'a mut Consumer<T, R>,
    len: usize,
}

impl<T: Pod, R> ReadChunk<'_, T, R> {
    /// Elements in the chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// tx.push_slice(&[1, 2]);
    /// assert_eq!(rx.read_chunk(2)?.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// assert!(rx.read_chunk(0)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, i: usize) -> *const ValueCell<T> {
        assert!(
            i < self.len,
            "element {i} is outside the {}-element chunk",
            self.len
        );
        self.consumer
            .cell(self.consumer.head.wrapping_add(i as u64))
    }

    /// A copy of element `i`. Panics if `i >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// tx.push(4).unwrap();
    /// assert_eq!(rx.read_chunk(1)?.read(0), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(&self, i: usize) -> T {
        // SAFETY: a ready slot (bounds asserted, pointer masked) the producer
        // does not touch until we commit; T is Pod.
        unsafe { ValueCell::read(self.slot(i)) }
    }

    /// Copies bytes of element `i` from byte `offset` into `out`.
    ///
    /// # Examples
    ///
    /// See [`Consumer::read_chunk`].
    pub fn read_bytes(&self, i: usize, offset: usize, out: &mut [u8]) -> Result<(), BulkError> {
        if !self.consumer.epoch.is_current() {
            return Err(forked_bulk());
        }
        let size = std::mem::size_of::<T>();
        if offset.checked_add(out.len()).is_none_or(|end| end > size) {
            return Err(BulkError::TooFew {
                requested: offset.saturating_add(out.len()),
                available: size,
            });
        }
        // SAFETY: as in `read`, and `offset + len <= size_of::<T>()`.
        unsafe {
            ValueCell::with(self.slot(i), |p| {
                std::ptr::copy_nonoverlapping(
                    p.cast::<u8>().add(offset),
                    out.as_mut_ptr(),
                    out.len(),
                )
            })
        };
        Ok(())
    }

    /// The ready elements as two slices (the second non-empty when the chunk wraps).
    ///
    /// # Safety
    ///
    /// No other process may write these slots while the slices live. Under
    /// the ring protocol nobody does; a peer that breaks it would make this
    /// a data race.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// tx.push_slice(&[1, 2, 3]);
    /// let chunk = rx.read_chunk(3)?;
    /// // SAFETY: only this process uses the ring.
    /// let (a, b) = unsafe { chunk.as_slices() };
    /// assert_eq!([a, b].concat(), [1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(not(loom))]
    pub unsafe fn as_slices(&self) -> (&[T], &[T]) {
        if !self.consumer.epoch.is_current() {
            return (&[], &[]);
        }
        let cap = self.consumer.shared.capacity as usize;
        let start = (self.consumer.head & self.consumer.shared.mask) as usize;
        let first = self.len.min(cap - start);
        let base = self.consumer.cell(0).cast::<T>();
        // SAFETY: both ranges lie in the slot array and hold complete
        // elements; no writer while they live is the caller's promise.
        unsafe {
            (
                std::slice::from_raw_parts(base.add(start), first),
                std::slice::from_raw_parts(base, self.len - first),
            )
        }
    }

    /// Releases the first `n` elements (at most `len()`).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8, _>::new_heap(4)?;
    /// tx.push_slice(&[1, 2]);
    /// rx.read_chunk(2)?.commit(1);
    /// assert_eq!(rx.pop(), Ok(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(self, n: usize) {
        if !self.consumer.epoch.is_current() {
            return;
        }
        let n = n.min(self.len);
        self.consumer.release(n as u64);
    }

    /// Releases every element of the chunk.
    ///
    /// # Examples
    ///
    /// See [`Consumer::read_chunk`].
    pub fn commit_all(self) {
        let n = self.len;
        self.commit(n);
    }
}
