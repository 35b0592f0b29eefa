//! [`Consumer`]: the consuming end of an [`SpscRing`](super::SpscRing).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;
use shm_segment::{ForkEpoch, Region, Segment};

use super::{forked_bulk, forked_count, forked_pop, latest, wait_of, ReadChunk};
use crate::error::{BulkError, PopError};
use crate::shared::{release_role, role_abandoned, Shared};
use crate::slip::Streak;
use crate::sync::ValueCell;
use crate::wait::{hand_off, Peer, WaitStrategy, Waited};

/// The consuming end of an [`SpscRing`](crate::SpscRing). Gives the role back on drop.
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
/// let (mut tx, mut rx) = shm_ring::SpscRing::<u16>::new_heap(4)?;
/// tx.push_slice(&[1, 2]);
/// assert_eq!((rx.pop(), rx.pop()), (Ok(1), Ok(2)));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
pub struct Consumer<T, R = Segment> {
    /// Next position to read; only this handle writes the shared head.
    pub(super) head: u64,
    /// Last tail seen; the true tail is never behind it.
    pub(super) cached_tail: u64,
    /// Our claim in the head's owner word (`ProcessId::to_word`).
    pub(super) me: u64,
    /// The process the role was taken in; anywhere else the handle is inert.
    pub(super) epoch: ForkEpoch,
    /// How blocking calls wait (process-local).
    pub(super) wait: WaitStrategy,
    /// The producer's owner word when it was last found dead (0: never).
    pub(super) dead_peer: u64,
    /// Whether the producer looks like a stream (see `crate::slip`).
    pub(super) streak: Streak,
    pub(super) shared: Arc<Shared<R>>,
    pub(super) _t: PhantomData<fn() -> T>,
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
    pub(super) fn cell(&self, pos: u64) -> *mut ValueCell<T> {
        self.shared.slot_ptr::<ValueCell<T>>(pos)
    }

    /// Items ready, refreshing the cached tail when fewer than `want` seem ready.
    #[inline]
    pub(super) fn ready(&mut self, want: u64) -> u64 {
        let cap = self.shared.capacity;
        let mut avail = self.cached_tail.wrapping_sub(self.head);
        if avail < want {
            avail = self.refresh_tail();
            self.streak = self.streak.after(avail);
            if self.streak.first_wait().is_some() {
                let streak = self.streak;
                (avail, self.streak) =
                    crate::slip::slip(cap, avail, streak, || self.refresh_tail());
            }
        }
        // A corrupted tail (more than a lap ahead, or behind) reads as empty.
        if avail > cap {
            0
        } else {
            avail
        }
    }

    /// Re-reads the tail; returns how many items are ready (unchecked).
    #[inline]
    fn refresh_tail(&mut self) -> u64 {
        // SYNC POINT: Acquire pairs with the producer's Release store of
        // the tail: the elements before it are fully written.
        self.cached_tail = self.shared.control().tail.pos.load(Ordering::Acquire);
        self.cached_tail.wrapping_sub(self.head)
    }

    #[inline]
    pub(super) fn release(&mut self, n: u64) {
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
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u64>::new_heap(2)?;
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
        let ready = self.ready(1);
        if ready == 0 {
            return Err(PopError::Empty);
        }
        let copy = if ready == 1 && latest::fits::<T>() {
            // Caught up: the item may be in the tail's line, just read.
            let latest = &self.shared.control().tail.latest;
            latest.take::<T>(self.cached_tail)
        } else {
            None
        };
        let value = match copy {
            Some(value) => value,
            // SAFETY: the slot is masked into the region; slots between head
            // and tail are complete and not written by the producer until we
            // release them; T is Pod, so any bytes are a valid T.
            None => unsafe { ValueCell::read(self.cell(self.head)) },
        };
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
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(8)?;
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
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(8)?;
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
        self.copy_from_ready(0, out);
        self.release(out.len() as u64);
    }

    /// Copies the ready elements from `skip` past the head into `out`,
    /// without releasing them. Callers check that `skip + out.len()`
    /// elements are ready.
    pub(super) fn copy_from_ready(&self, skip: usize, out: &mut [T]) {
        if out.is_empty() {
            return;
        }
        let cap = self.shared.capacity as usize;
        let start = (self.head.wrapping_add(skip as u64) & self.shared.mask) as usize;
        let first = out.len().min(cap - start);
        // SAFETY: both ranges lie in the slot array and hold complete
        // elements the producer will not touch until we release them; `out`
        // is local memory; T is Pod.
        unsafe {
            let base = self.cell(0);
            if first == out.len() {
                ValueCell::read_run(base.add(start), out);
            } else {
                // Only a batch that wraps around the end has a second half.
                ValueCell::read_run_split(base.add(start), base, out, first);
            }
        }
    }

    /// Waits up to `timeout` for a value: [`PopError::Empty`] if there is
    /// still none at the deadline, [`PopError::PeerGone`] as soon as the ring
    /// is empty and the producer is gone (the role was given back or its
    /// holder died; checked between sleep slices of at most 10 ms), after
    /// everything it published was taken. How it waits is the handle's
    /// [`WaitStrategy`]; it parks on a futex on a ring created with
    /// [`RingOptions::blocking`](crate::RingOptions::blocking), with a polling back-off otherwise.
    /// `Duration::MAX` waits as long as it takes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm_ring::PopError;
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(2)?;
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
        // A value already there: no wait to set up (`wait_for` clones the
        // ring's `Arc`, two atomic read-modify-writes).
        if let Ok(v) = self.pop() {
            return Ok(v);
        }
        match self.wait_for(timeout, |c| c.pop().ok()) {
            Waited::Ready(v) => Ok(v),
            Waited::TimedOut => Err(PopError::Empty),
            Waited::PeerGone => Err(PopError::PeerGone),
        }
    }

    /// Retries `attempt` for up to `timeout` until it succeeds (`Ready`),
    /// or fails with the producer gone (`PeerGone`, after one last try), as
    /// `pop_blocking` does.
    pub(super) fn wait_for<V>(
        &mut self,
        timeout: Duration,
        mut attempt: impl FnMut(&mut Self) -> Option<V>,
    ) -> Waited<V> {
        let owner = &self.shared.control().tail.owner;
        let handed = hand_off(self.wait, timeout, owner, self.dead_peer);
        if handed {
            if let Some(v) = attempt(self) {
                return Waited::Ready(v);
            }
        }
        let shared = Arc::clone(&self.shared);
        let ctl = shared.control();
        let mut dead = self.dead_peer;
        let peer = Peer {
            owner: &ctl.tail.owner,
            dead: &mut dead,
        };
        let waited = wait_of(&shared, self.wait).until_from(
            u32::from(handed),
            &ctl.items,
            timeout,
            Some(peer),
            || attempt(self),
        );
        self.dead_peer = dead;
        waited
    }

    /// Borrows up to `n` ready elements in place; nothing is released until
    /// [`ReadChunk::commit`]. Fails when fewer than `n` are ready.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<[u8; 16]>::new_heap(4)?;
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

    /// Items ready now (a snapshot: the producer may publish more at any
    /// moment); 0 from a handle inherited across `fork` (see
    /// [`is_inert`](Consumer::is_inert)). One atomic load of the tail.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// tx.push(1).unwrap();
    /// assert_eq!(rx.slots(), 1);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn slots(&self) -> usize {
        if !self.epoch.is_current() {
            return forked_count();
        }
        // SYNC POINT: Acquire pairs with the producer's Release store of the tail.
        let tail = self.shared.control().tail.pos.load(Ordering::Acquire);
        let avail = tail.wrapping_sub(self.head);
        // A corrupted tail (more than a lap ahead, or behind) reads as empty, as in `ready`.
        if avail > self.shared.capacity {
            0
        } else {
            avail as usize
        }
    }

    /// Whether every slot holds an item now (a snapshot; false for a handle
    /// inherited across `fork`).
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, rx) = shm_ring::SpscRing::<u8>::new_heap(2)?;
    /// tx.push(1).unwrap();
    /// assert!(!rx.is_full());
    /// tx.push(2).unwrap();
    /// assert!(rx.is_full());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.slots() == self.capacity()
    }

    /// The head position: how many elements were ever taken from this ring
    /// (by this consumer and the ones before it; it starts at 0 when the
    /// ring is created). `producer.position() - consumer.position()` is the
    /// number of items in the ring.
    ///
    /// # Examples
    ///
    /// ```
    /// let (mut tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// tx.push_slice(&[1, 2, 3]);
    /// rx.pop().unwrap();
    /// assert_eq!(rx.position(), 1);
    /// assert_eq!(tx.position() - rx.position(), 2);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.head
    }

    /// The ring's capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = shm_ring::SpscRing::<u8>::new_heap(8)?;
    /// assert_eq!(rx.capacity(), 8);
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
    /// let name = format!("/shm-test-doc-consumer-region-{}", std::process::id());
    /// let rx = SpscRing::<u8>::create_posix(&name, 4)?.consumer()?;
    /// assert!(rx.region().created()); // the ring handle is gone, the segment is not
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn region(&self) -> &R
    where
        R: Region,
    {
        self.shared.region()
    }

    /// Whether this handle was inherited across `fork(2)` and is therefore
    /// inert in this process: every pop fails or takes nothing, and its drop
    /// keeps the role of the process that took it. Take the role here with
    /// [`SpscRing::consumer`](crate::SpscRing::consumer) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_tx, rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
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
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u8>::required_size(4));
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
    /// let (_tx, rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
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
    /// let (_tx, mut rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
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
    /// let (mut tx, rx) = shm_ring::SpscRing::<u8>::new_heap(4)?;
    /// assert!(rx.is_empty());
    /// tx.push(1).unwrap();
    /// assert!(!rx.is_empty());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slots() == 0
    }
}
