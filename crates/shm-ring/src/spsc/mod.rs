//! The single-producer single-consumer ring.
//!
//! Positions are monotonic `u64`s (the slot is `pos & mask`), so full and
//! empty need no spare slot. The producer owns the tail, the consumer the
//! head, each on its own cache line; each side caches the other's position
//! and re-reads it only when the cached value says full or empty, so the
//! fast path touches no line it does not own.
//!
//! **Hand-offs cost one cache-line transfer.** A consumer that has caught
//! up polls the tail's line; `push` of an item of at most 40 bytes also
//! copies it into that line (checked by a sequence lock), and `pop` takes
//! it from there when it is the only item ready. So a busy-polling round
//! trip moves one line each way instead of two (tail, then slot), close to
//! the cost of bouncing a bare cache line. Bulk calls and chunks write no
//! copy; their items are read from the slots.
//!
//! **Catching up.** A side that re-reads the other's position and finds
//! only a few items (or free slots), more than one, while the other keeps
//! adding to them, waits a moment for an eighth of the ring before it goes
//! on. Otherwise the two would work on the same slot lines, which would then
//! cross between the cores once per item or two. It waits only behind a
//! stream: after two re-reads in a row that found 2 or more, first one
//! spin-loop hint, then longer as the streak goes on (at most 8 looks, up to
//! 16 hints apart). A single item, a burst after an idle peer, or a peer
//! that stopped between two looks is taken at once, and a look that finds
//! no progress ends the streak.
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
//!
//! **As a pipe.** A ring of bytes is a pipe between processes:
//! `Producer<u8, _>` implements [`std::io::Write`] (it waits for room, and
//! fails with `BrokenPipe` once the ring is full and the consumer gone) and
//! `Consumer<u8, _>` implements [`std::io::Read`] (it waits for bytes, and
//! reads end of file once the ring is empty and the producer gone), so
//! `std::io::copy` works at both ends.
//!
//! # Examples
//!
//! ```
//! use std::io::{Read, Write};
//! use shm_ring::SpscRing;
//!
//! let name = format!("/shm-test-doc-spsc-pipe-{}", std::process::id());
//! let ring = SpscRing::<u8>::create_posix(&name, 4096)?;
//! let mut tx = ring.producer()?;
//! // Another process: open by name and read.
//! let mut rx = SpscRing::<u8>::open_posix(&name)?.consumer()?;
//!
//! tx.write_all(b"over shared memory")?;
//! drop(tx); // the reader gets end of file after the data
//! let mut text = String::new();
//! rx.read_to_string(&mut text)?;
//! assert_eq!(text, "over shared memory");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytemuck::Pod;
use shm_segment::{ForkEpoch, HeapRegion, Kind, Region, Segment};

use crate::constructors::segment_constructors;
use crate::error::{BulkError, PopError, PushError, RingError};
use crate::shared::{claim_role, heap_region, Layout, RingOptions, Shared};
use crate::sync::ValueCell;
use crate::wait::{Wait, WaitStrategy};

mod chunks;
mod consumer;
mod io;
pub(crate) mod latest;
mod producer;

pub use chunks::{ReadChunk, WriteChunk};
pub use consumer::Consumer;
pub use producer::Producer;

/// 2: the sleeper count is a 64-bit word with a generation, and a role given
/// back reads `RELEASED` instead of 0.
pub(crate) const LAYOUT_VERSION: u32 = 2;

fn layout<T>() -> Layout<ValueCell<T>> {
    Layout::new(Kind::SPSC_RING, LAYOUT_VERSION)
}

/// A single-producer single-consumer ring of `T` in a [`Region`], shared by
/// any number of processes of which one produces and one consumes.
///
/// Create it in one process, open it in others, then take the
/// [`producer`](SpscRing::producer) or [`consumer`](SpscRing::consumer)
/// role; each role is held by one process at a time (a second claim gets
/// [`RingError::RoleTaken`] while the holder lives, and succeeds once it died).
/// [`create_posix`](SpscRing::create_posix) and
/// [`open_posix`](SpscRing::open_posix) (and the memfd and System V forms)
/// make or open the segment too; [`create`](SpscRing::create) and
/// [`attach`](SpscRing::attach) take a region you mapped yourself.
///
/// # Examples
///
/// ```
/// use shm_ring::SpscRing;
///
/// let name = format!("/shm-test-doc-spsc-{}", std::process::id());
/// let ring = SpscRing::<u64>::create_posix(&name, 1024)?;
/// let mut tx = ring.producer()?;
///
/// // Another process: open by name and consume.
/// let other = SpscRing::<u64>::open_posix(&name)?;
/// let mut rx = other.consumer()?;
///
/// tx.push(42).unwrap();
/// tx.push_slice(&[1, 2, 3]);
/// assert_eq!(rx.pop(), Ok(42));
/// let mut buf = [0; 8];
/// assert_eq!(rx.pop_into(&mut buf), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// In a region mapped by hand:
///
/// ```
/// use shm_ring::{RingOptions, SpscRing};
/// let region = shm_segment::AnonShared::new(SpscRing::<u64>::required_size(64))?;
/// let ring = SpscRing::<u64, _>::create(region, 64, RingOptions::new())?;
/// assert_eq!(ring.capacity(), 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SpscRing<T, R = Segment> {
    shared: Arc<Shared<R>>,
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

segment_constructors!(SpscRing, ValueCell<T>);

/// Heap rings, called as `SpscRing::<T>::new_heap` like the other
/// constructors that choose their own region (the ring's region is then a
/// [`HeapRegion`], not the default [`Segment`]).
impl<T: Pod> SpscRing<T> {
    /// A ring on the heap for use between threads, as `rtrb::RingBuffer::new`:
    /// returns both ends.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u32>::new_heap(8)?;
    /// std::thread::spawn(move || tx.push(5).unwrap()).join().unwrap();
    /// assert_eq!(rx.pop(), Ok(5));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn new_heap(
        capacity: usize,
    ) -> Result<(Producer<T, HeapRegion>, Consumer<T, HeapRegion>), RingError> {
        SpscRing::<T>::new_heap_with(capacity, RingOptions::new())
    }

    /// [`new_heap`](Self::new_heap) with options (round the capacity up, a
    /// wait strategy, futex wake-ups).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{RingOptions, SpscRing};
    /// let (tx, rx) = SpscRing::<u32>::new_heap_with(100, RingOptions::new().round_up(true))?;
    /// assert_eq!((tx.capacity(), rx.capacity()), (128, 128));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn new_heap_with(
        capacity: usize,
        opts: RingOptions,
    ) -> Result<(Producer<T, HeapRegion>, Consumer<T, HeapRegion>), RingError> {
        let region = heap_region::<ValueCell<T>>(capacity, &opts)?;
        let ring = SpscRing::<T, HeapRegion>::create(region, capacity, opts)?;
        Ok((ring.producer()?, ring.consumer()?))
    }
}

impl<T: Pod, R: Region> SpscRing<T, R> {
    /// Lays out a new, empty ring of `capacity` in `region` and publishes
    /// its header. Fails if a structure is already there. The capacity is a
    /// power of two: any other is a [`RingError::Capacity`], unless `opts`
    /// has [`RingOptions::round_up`], which makes it the next power of two
    /// (size the region with `required_size`, which counts that one).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{RingOptions, SpscRing};
    /// let region = shm_segment::AnonShared::new(SpscRing::<u32>::required_size(64))?;
    /// let ring = SpscRing::<u32, _>::create(region, 64, RingOptions::new().blocking(true))?;
    /// assert_eq!(ring.capacity(), 64);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(region: R, capacity: usize, opts: RingOptions) -> Result<Self, RingError> {
        let shared = Shared::create::<T, ValueCell<T>>(
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
            Shared::attach::<T, ValueCell<T>>(region, &layout::<T>())?,
            WaitStrategy::DEFAULT,
        ))
    }

    fn wrap(shared: Shared<R>, wait: WaitStrategy) -> Self {
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
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(4));
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
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(16));
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
            streak: Default::default(),
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
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(16));
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
            streak: Default::default(),
            shared: Arc::clone(&self.shared),
            _t: PhantomData,
        })
    }

    /// The number of slots.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(32)?;
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
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(4));
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
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(4));
    /// assert!(SpscRing::<u8, _>::create(region, 4, Default::default())?.is_empty());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot holds an item now (a snapshot).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(2));
    /// let ring = SpscRing::<u8, _>::create(region, 2, Default::default())?;
    /// ring.producer()?.push_slice(&[1, 2]);
    /// assert!(ring.is_full());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// The region the ring lives in.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// use shm_segment::Region;
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(4));
    /// let ring = SpscRing::<u8, _>::create(region, 4, Default::default())?;
    /// assert_eq!(ring.region().len(), SpscRing::<u8>::required_size(4));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn region(&self) -> &R {
        self.shared.region()
    }
}

/// How a handle with `strategy` waits on `shared`.
fn wait_of<R>(shared: &Shared<R>, strategy: WaitStrategy) -> Wait {
    Wait {
        strategy,
        futex: shared.blocking,
    }
}

fn len_of<R>(shared: &Shared<R>) -> usize {
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::slip::Streak;

    /// The streak after refreshes that found each of `found`.
    fn streak(found: &[u64]) -> Streak {
        found.iter().fold(Streak::default(), |s, &f| s.after(f))
    }

    #[test]
    fn the_consumer_keeps_a_streak_of_refreshes_that_found_two_or_more() {
        let (mut tx, mut rx) = SpscRing::<u64>::new_heap(64).unwrap();
        assert!(rx.pop().is_err()); // an idle producer: a refresh finds 0
        assert_eq!(rx.streak, streak(&[0]));
        tx.push_slice(&[1, 2, 3]);
        assert_eq!(rx.pop(), Ok(1)); // a burst: one refresh finds 3, no wait
        assert_eq!(rx.streak, streak(&[3]));
        assert_eq!((rx.pop(), rx.pop()), (Ok(2), Ok(3))); // from the cached tail
        assert_eq!(rx.streak, streak(&[3]));
        // The second refresh in a row that finds 2 or more: one look, which
        // finds no progress (nobody pushes meanwhile) and ends the streak.
        tx.push_slice(&[4, 5]);
        assert_eq!(rx.pop(), Ok(4));
        assert_eq!(rx.streak, Streak::default());
    }

    #[test]
    fn the_producer_keeps_a_streak_of_refreshes_that_found_two_or_more() {
        let (mut tx, mut rx) = SpscRing::<u64>::new_heap(64).unwrap();
        let mut out = [0u64; 64];
        assert_eq!(tx.push_slice(&[7; 64]), 64); // no refresh: the cache says 64 free
        assert_eq!(tx.streak, Streak::default());
        assert_eq!(rx.pop_into(&mut out[..3]), 3);
        assert!(tx.push(8).is_ok()); // a refresh finds 3 free
        assert_eq!(tx.streak, streak(&[3]));
        assert_eq!(tx.push_slice(&[8, 8]), 2);
        assert_eq!(rx.pop_into(&mut out[..2]), 2);
        assert!(tx.push(9).is_ok()); // finds 2 free: one look, no progress
        assert_eq!(tx.streak, Streak::default());
        assert!(tx.push(9).is_ok()); // finds 1 free
        assert!(tx.push(9).is_err()); // finds 0: full
        assert_eq!(tx.streak, Streak::default());
    }
}
