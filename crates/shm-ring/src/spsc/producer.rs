//! [`Producer`]: the producing end of an [`SpscRing`](super::SpscRing).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;
use shm_segment::{ForkEpoch, Region, Segment};

use super::{forked_bulk, forked_count, forked_push, latest, wait_of, WriteChunk};
use crate::error::{BulkError, PushError};
use crate::shared::{release_role, role_abandoned, Shared};
use crate::slip::Streak;
use crate::sync::{AtomicU64, ValueCell};
use crate::wait::{hand_off, Peer, WaitStrategy, Waited};

/// The producing end of an [`SpscRing`](crate::SpscRing). Gives the role back on drop.
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
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u16>::new_heap(4)?;
/// tx.push(3).unwrap();
/// assert_eq!(rx.pop(), Ok(3));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
pub struct Producer<T, R = Segment> {
    /// Next position to write; only this handle writes the shared tail.
    pub(super) tail: u64,
    /// Last head seen; the true head is never behind it.
    pub(super) cached_head: u64,
    /// Our claim in the tail's owner word (`ProcessId::to_word`).
    pub(super) me: u64,
    /// The process the role was taken in; anywhere else the handle is inert.
    pub(super) epoch: ForkEpoch,
    /// How blocking calls wait (process-local).
    pub(super) wait: WaitStrategy,
    /// The consumer's owner word when it was last found dead (0: never).
    pub(super) dead_peer: u64,
    /// Whether the consumer looks like a stream (see `crate::slip`).
    pub(super) streak: Streak,
    pub(super) shared: Arc<Shared<R>>,
    pub(super) _t: PhantomData<fn(T)>,
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
    pub(super) fn free(&mut self, want: u64) -> u64 {
        let free = self.free_by(self.cached_head);
        if free >= want {
            return free;
        }
        let free = self.refresh_head();
        self.streak = self.streak.after(free);
        if self.streak.first_wait().is_none() {
            return free;
        }
        let (cap, streak) = (self.shared.capacity, self.streak);
        let (free, streak) = crate::slip::slip(cap, free, streak, || self.refresh_head());
        self.streak = streak;
        free
    }

    /// Free slots when the consumer's head is `head`. A corrupted head
    /// (ahead of the tail) reads as full: data may stall, memory stays safe.
    #[inline]
    fn free_by(&self, head: u64) -> u64 {
        self.shared
            .capacity
            .saturating_sub(self.tail.wrapping_sub(head))
    }

    /// Re-reads the head; returns how many slots are free.
    #[inline]
    fn refresh_head(&mut self) -> u64 {
        // SYNC POINT: Acquire pairs with the consumer's Release store of the
        // head: the slots it freed are no longer being read.
        self.cached_head = self.shared.control().head.pos.load(Ordering::Acquire);
        self.free_by(self.cached_head)
    }

    #[inline]
    pub(super) fn publish(&mut self, n: u64) {
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
    pub(super) fn cell(&self, pos: u64) -> *mut ValueCell<T> {
        self.shared.slot_ptr::<ValueCell<T>>(pos)
    }

    /// Pushes one value, or gives it back when the ring is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u64>::new_heap(2)?;
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
        if latest::fits::<T>() {
            // A consumer that has caught up takes it from the tail's line.
            self.shared.control().tail.latest.offer(self.tail, value);
        }
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
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
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
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
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
        self.copy_to_free(0, values);
        self.publish(values.len() as u64);
    }

    /// Copies `values` into the free slots from `skip` slots past the tail,
    /// without publishing them. Callers check that `skip + values.len()`
    /// slots are free.
    pub(super) fn copy_to_free(&mut self, skip: usize, values: &[T]) {
        if values.is_empty() {
            return;
        }
        let cap = self.shared.capacity as usize;
        let start = (self.tail.wrapping_add(skip as u64) & self.shared.mask) as usize;
        let first = values.len().min(cap - start);
        // SAFETY: `start + first <= capacity` and the rest starts at slot 0,
        // so both copies stay inside the slot array; these free slots belong
        // to the producer alone; `values` is local memory, no overlap.
        unsafe {
            let base = self.cell(0);
            if first == values.len() {
                ValueCell::write_run(base.add(start), values);
            } else {
                // Only a batch that wraps around the end has a second half.
                ValueCell::write_run_split(base.add(start), base, values, first);
            }
        }
    }

    /// Waits up to `timeout` for a free slot, then pushes; gives the value
    /// back if the ring is still full at the deadline
    /// ([`PushError::Full`]), or as soon as it is full and the consumer is
    /// gone ([`PushError::PeerGone`]: the role was given back or its holder
    /// died; checked between sleep slices of at most 10 ms). How it waits is
    /// the handle's [`WaitStrategy`]; it parks on a futex on a ring created
    /// with [`RingOptions::blocking`](crate::RingOptions::blocking), with a polling back-off otherwise.
    /// `Duration::MAX` waits as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm_ring::PushError;
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(1)?;
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
        // Room already there: no wait to set up (`wait_for_room` clones the
        // ring's `Arc`, two atomic read-modify-writes).
        let value = match self.push(value) {
            Err(PushError::Full(value)) => value,
            done => return done,
        };
        match self.wait_for_room(timeout) {
            Waited::Ready(()) => self.push(value),
            Waited::TimedOut => Err(PushError::Full(value)),
            Waited::PeerGone => Err(PushError::PeerGone(value)),
        }
    }

    /// Waits up to `timeout` until a slot is free (`Ready`), or the ring is
    /// full and the consumer gone (`PeerGone`), as `push_blocking` does.
    pub(super) fn wait_for_room(&mut self, timeout: Duration) -> Waited<()> {
        let owner = &self.shared.control().head.owner;
        let handed = hand_off(self.wait, timeout, owner, self.dead_peer);
        if handed && self.free(1) > 0 {
            return Waited::Ready(());
        }
        let shared = Arc::clone(&self.shared);
        let ctl = shared.control();
        let mut dead = self.dead_peer;
        let peer = Peer {
            owner: &ctl.head.owner,
            dead: &mut dead,
        };
        let waited = wait_of(&shared, self.wait).until_from(
            u32::from(handed),
            &ctl.room,
            timeout,
            Some(peer),
            || (self.free(1) > 0).then_some(()),
        );
        self.dead_peer = dead;
        waited
    }

    /// Reserves up to `n` free slots to fill in place; nothing is published
    /// until [`WriteChunk::commit`]. Fails when fewer than `n` are free.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<[u8; 64]>::new_heap(4)?;
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
            written: 0,
        })
    }

    /// Free slots now (a snapshot: the consumer may free more at any
    /// moment); 0 from a handle inherited across `fork` (see
    /// [`is_inert`](Producer::is_inert)). One atomic load of the head.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// tx.push(0).unwrap();
    /// assert_eq!(tx.slots(), 3);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn slots(&self) -> usize {
        if !self.epoch.is_current() {
            return forked_count();
        }
        // SYNC POINT: Acquire pairs with the consumer's Release store of the head.
        let head = self.shared.control().head.pos.load(Ordering::Acquire);
        // A corrupted head (ahead of the tail) reads as full, as in `free`.
        self.shared
            .capacity
            .saturating_sub(self.tail.wrapping_sub(head)) as usize
    }

    /// Whether no slot is free now, so a [`push`](Producer::push) would
    /// fail with `Full` (a snapshot; also true for a handle inherited across
    /// `fork`, which pushes nothing).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(2)?;
    /// tx.push_slice(&[1, 2]);
    /// assert!(tx.is_full());
    /// rx.pop().unwrap();
    /// assert!(!tx.is_full());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.slots() == 0
    }

    /// The tail position: how many elements were ever published into this
    /// ring (by this producer and the ones before it; it starts at 0 when
    /// the ring is created and never wraps in practice). The slot it writes
    /// next is `position() % capacity()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(2)?;
    /// for i in 0..5 {
    ///     tx.push(i).unwrap();
    ///     rx.pop().unwrap();
    /// }
    /// assert_eq!((tx.position(), rx.position()), (5, 5));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.tail
    }

    /// Whether this handle was inherited across `fork(2)` and is therefore
    /// inert in this process: every push fails or moves nothing, and its
    /// drop keeps the role of the process that took it. Take the role here
    /// with [`SpscRing::producer`](crate::SpscRing::producer) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
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
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(4));
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
    /// let (tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
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
    /// let (mut tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
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
    /// let (tx, _rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// assert_eq!(tx.capacity(), 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// The region the ring lives in: with a ring made by a one-call
    /// constructor, the [`Segment`] this handle keeps alive (so
    /// `region().set_remove_on_drop(false)` works from any handle).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::SpscRing;
    /// let name = format!("/shm-test-doc-producer-region-{}", std::process::id());
    /// let tx = SpscRing::<u8>::create_posix(&name, 4)?.producer()?;
    /// assert!(tx.region().created()); // the ring handle is gone, the segment is not
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn region(&self) -> &R
    where
        R: Region,
    {
        self.shared.region()
    }
}
