//! The multi-producer multi-consumer ring.
//!
//! **Algorithm: per-slot sequence numbers** (Dmitry Vyukov's bounded queue,
//! as in crossbeam's `ArrayQueue`), extended with bulk claims. Each slot
//! holds a `u64` sequence next to its value: `2p` means "free for position
//! `p`", `2p + 1` means "holds the value of position `p`" (the doubling keeps
//! the two states apart even at capacity 1). A producer at position `p` may
//! fill slot `p & mask` when its sequence is `2p`; it claims `p` (or `p..p+k`
//! for a batch) with one compare-and-swap on the tail, writes, and publishes
//! each slot by storing `2p + 1`. A consumer takes position `p` when the
//! sequence is `2p + 1` and frees the slot by storing `2(p + capacity)`.
//!
//! Why not DPDK's head/tail reservation: there, producers publish in claim
//! order, so each waits for the one before it. Across processes, one
//! producer that is preempted or killed between claim and publish stalls
//! *every* producer. Here it stalls only its own slot: other producers keep
//! going until the ring wraps around to it. Batches still cost one CAS.
//!
//! **What a killed process leaves.** A consumer killed between claim and
//! release keeps its slot from being reused: producers see the ring as
//! full one lap later. A producer killed between claim and publish leaves
//! its position unpublished: consumers stop there, and
//! [`MpmcRing::pop_blocking`] returns [`PopError::Stalled`] at its deadline
//! instead of hanging. Items before the stuck position are all delivered.
//! Neither case is repaired automatically, because a slow process is
//! indistinguishable from a dead one at this level; recreate the ring (for
//! example after the creator sees its peers die).
//!
//! **Across `fork`.** An MPMC ring has no roles to own: every handle may push
//! and pop, in any number of processes. So an [`MpmcRing`] that a `fork(2)`ed
//! child inherits is a legitimate handle in the child, unlike the SPSC
//! ring's [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer),
//! which are inert there. Creating the ring before the fork and using it on
//! both sides (what pyshm users do) works, and the child's drop of its copy
//! only unmaps its own view.
//!
//! **Blocking calls.** [`MpmcRing::push_blocking`] and
//! [`MpmcRing::pop_blocking`] wait as the SPSC ones do: the handle's
//! [`WaitStrategy`], sleeps of at most 10 ms at a time (a wake-up lost to a
//! process killed between publishing and waking costs one slice at most),
//! and a sleeper count that heals itself when a sleeper is killed. An MPMC
//! ring has no roles, so no side can be "gone": there is no `PeerGone`
//! here, and a wait ends with what it waited for or at its deadline.

use std::marker::PhantomData;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;
use shm_segment::{HeapRegion, Kind, Region};

use crate::error::{BulkError, PopError, PushError, RingError};
use crate::shared::{heap_region, Layout, Mapped, RingOptions};
use crate::sync::{AtomicU64, ValueCell};
use crate::wait::{Wait, WaitStrategy, Waited};

/// 2: the sleeper count is a 64-bit word with a generation.
pub(crate) const LAYOUT_VERSION: u32 = 2;

/// A slot: its sequence number, then the value.
#[repr(C)]
pub(crate) struct Slot<T> {
    seq: AtomicU64,
    value: ValueCell<T>,
}

/// The sequence of a slot that is free for position `pos`.
#[inline]
fn free_for(pos: u64) -> u64 {
    pos.wrapping_mul(2)
}

fn layout<T>() -> Layout<Slot<T>> {
    Layout::new(Kind::MPMC_RING, LAYOUT_VERSION)
}

/// A multi-producer multi-consumer ring of `T` in a [`Region`]. Every
/// handle (clone it freely, attach from any process) may push and pop.
///
/// # Examples
///
/// ```
/// use shm_ring::{MpmcRing, RingOptions};
/// use shm_segment::AnonShared;
///
/// let region = AnonShared::new(MpmcRing::<u64, ()>::required_size(256))?;
/// let ring = MpmcRing::<u64, _>::create(region, 256, RingOptions::new())?;
/// let producers: Vec<_> = (0..2)
///     .map(|p| {
///         let ring = ring.clone();
///         std::thread::spawn(move || {
///             for i in 0..100 {
///                 while ring.push(p * 1000 + i).is_err() {
///                     std::thread::yield_now();
///                 }
///             }
///         })
///     })
///     .collect();
/// producers.into_iter().for_each(|t| t.join().unwrap());
/// let mut out = vec![0; 256];
/// assert_eq!(ring.pop_into(&mut out), 200);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MpmcRing<T, R> {
    shared: Arc<Mapped<R>>,
    /// How this handle's blocking calls wait (process-local).
    wait: WaitStrategy,
    _t: PhantomData<fn(T) -> T>,
}

impl<T, R> Clone for MpmcRing<T, R> {
    fn clone(&self) -> Self {
        MpmcRing {
            shared: Arc::clone(&self.shared),
            wait: self.wait,
            _t: PhantomData,
        }
    }
}

impl<T, R> std::fmt::Debug for MpmcRing<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcRing")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

impl<T: Pod, R> MpmcRing<T, R> {
    /// Bytes a ring of `capacity` elements needs (header included).
    ///
    /// # Panics
    ///
    /// If the size does not fit in a `u64` (a capacity near 2^60 or more).
    ///
    /// # Examples
    ///
    /// ```
    /// let n = shm_ring::MpmcRing::<u64, ()>::required_size(1024);
    /// assert!(n >= 1024 * 16); // each slot: sequence + value
    /// ```
    pub fn required_size(capacity: usize) -> usize {
        Layout::<Slot<T>>::size(capacity as u64).expect("capacity too large") as usize
    }
}

impl<T: Pod> MpmcRing<T, HeapRegion> {
    /// A ring on the heap, for use between threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u32, _>::new_heap(8)?;
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.pop(), Ok(1));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn new_heap(capacity: usize) -> Result<Self, RingError> {
        Self::create(
            heap_region::<Slot<T>>(capacity)?,
            capacity as u64,
            RingOptions::new(),
        )
    }
}

impl<T: Pod, R: Region> MpmcRing<T, R> {
    /// Lays out a new, empty ring of `capacity` (a power of two) in `region`
    /// and publishes its header. Fails if a structure is already there.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{MpmcRing, RingOptions};
    /// let region = shm_segment::HeapRegion::new(MpmcRing::<u8, ()>::required_size(4));
    /// let ring = MpmcRing::<u8, _>::create(region, 4, RingOptions::new().blocking(true))?;
    /// assert_eq!(ring.capacity(), 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn create(region: R, capacity: u64, opts: RingOptions) -> Result<Self, RingError> {
        let shared =
            Mapped::create::<T, Slot<T>>(region, &layout::<T>(), capacity, opts, |slot, i| {
                // SAFETY: `slot` points at a slot inside the region (masked index
                // of a checked array), not yet shared: the header is unpublished.
                unsafe {
                    addr_of_mut!((*slot).seq).write(AtomicU64::new(free_for(i)));
                    ValueCell::init(addr_of_mut!((*slot).value), T::zeroed());
                }
            })?;
        Ok(Self::wrap(shared, opts.wait()))
    }

    /// Attaches to a ring another process created, validating its header.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{MpmcRing, SpscRing};
    /// let region = shm_segment::HeapRegion::new(MpmcRing::<u64, ()>::required_size(8));
    /// let _spsc = SpscRing::<u64, _>::create(&region, 8, Default::default())?;
    /// let err = MpmcRing::<u64, _>::attach(&region).unwrap_err();
    /// assert!(err.to_string().contains("this is a spsc-ring, not a mpmc-ring"));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn attach(region: R) -> Result<Self, RingError> {
        Ok(Self::wrap(
            Mapped::attach::<T, Slot<T>>(region, &layout::<T>())?,
            WaitStrategy::DEFAULT,
        ))
    }

    fn wrap(shared: Mapped<R>, wait: WaitStrategy) -> Self {
        MpmcRing {
            shared: Arc::new(shared),
            wait,
            _t: PhantomData,
        }
    }

    /// The region the ring lives in.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::Region;
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(4)?;
    /// assert!(ring.region().len() >= 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn region(&self) -> &R {
        self.shared.region()
    }
}

impl<T: Pod, R> MpmcRing<T, R> {
    #[inline]
    fn seq(&self, pos: u64) -> &AtomicU64 {
        let slot = self.shared.slot_ptr::<Slot<T>>(pos);
        // SAFETY: the slot pointer is masked into the checked slot array, and
        // the sequence is an atomic: any bits are valid, sharing is its purpose.
        unsafe { &*addr_of!((*slot).seq) }
    }

    #[inline]
    fn write_value(&self, pos: u64, value: T) {
        let slot = self.shared.slot_ptr::<Slot<T>>(pos);
        // SAFETY: in bounds (masked); the caller claimed position `pos`, so
        // no one else reads or writes this value until it is published.
        unsafe { ValueCell::write(addr_of_mut!((*slot).value), value) }
    }

    #[inline]
    fn read_value(&self, pos: u64) -> T {
        let slot = self.shared.slot_ptr::<Slot<T>>(pos);
        // SAFETY: in bounds (masked); the caller claimed position `pos`, whose
        // value was published; T is Pod, so any bytes are a valid T.
        unsafe { ValueCell::read(addr_of!((*slot).value)) }
    }

    /// Claims up to `max` consecutive positions whose slots hold sequence
    /// `2 * pos + offset` (offset 0: free, for producers; 1: full, for
    /// consumers); returns the first position and the count. `side` is the
    /// tail (producers) or the head (consumers).
    #[inline]
    fn claim(&self, side: &AtomicU64, max: u64, offset: u64) -> Option<(u64, u64)> {
        let mut pos = side.load(Ordering::Relaxed);
        loop {
            let mut k = 0;
            while k < max {
                let want = free_for(pos.wrapping_add(k)).wrapping_add(offset);
                // SYNC POINT: Acquire pairs with the Release store of the
                // sequence by whoever last owned this slot.
                if self.seq(pos.wrapping_add(k)).load(Ordering::Acquire) != want {
                    break;
                }
                k += 1;
            }
            if k == 0 {
                let seq = self.seq(pos).load(Ordering::Acquire);
                let diff = seq.wrapping_sub(free_for(pos).wrapping_add(offset)) as i64;
                if diff < 0 {
                    return None; // full (producers) or empty (consumers)
                }
                // Another handle took `pos`: move on. If the side did not
                // move, the slot is corrupted: report full/empty, never spin.
                let now = side.load(Ordering::Relaxed);
                if now == pos {
                    return None;
                }
                pos = now;
                continue;
            }
            match side.compare_exchange_weak(
                pos,
                pos.wrapping_add(k),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((pos, k)),
                Err(now) => pos = now,
            }
        }
    }

    #[inline]
    fn published(&self, first: u64, k: u64) {
        for i in 0..k {
            let pos = first.wrapping_add(i);
            // SYNC POINT: Release pairs with the consumers' Acquire load in `claim`.
            self.seq(pos).store(free_for(pos) + 1, Ordering::Release);
        }
        if self.shared.blocking {
            self.shared.control().items.notify();
        }
    }

    #[inline]
    fn freed(&self, first: u64, k: u64) {
        for i in 0..k {
            let pos = first.wrapping_add(i);
            // SYNC POINT: Release pairs with the producers' Acquire load in `claim`.
            self.seq(pos).store(
                free_for(pos.wrapping_add(self.shared.capacity)),
                Ordering::Release,
            );
        }
        if self.shared.blocking {
            self.shared.control().room.notify();
        }
    }

    /// Pushes one value, or gives it back when the ring is full.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(1)?;
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.push(2), Err(shm_ring::PushError::Full(2)));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    #[inline]
    pub fn push(&self, value: T) -> Result<(), PushError<T>> {
        match self.claim(&self.shared.control().tail.pos, 1, 0) {
            Some((pos, _)) => {
                self.write_value(pos, value);
                self.published(pos, 1);
                Ok(())
            }
            None => Err(PushError::Full(value)),
        }
    }

    /// Takes one value.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(1)?;
    /// assert!(ring.pop().is_err());
    /// ring.push(5).unwrap();
    /// assert_eq!(ring.pop(), Ok(5));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    #[inline]
    pub fn pop(&self) -> Result<T, PopError> {
        match self.claim(&self.shared.control().head.pos, 1, 1) {
            Some((pos, _)) => {
                let value = self.read_value(pos);
                self.freed(pos, 1);
                Ok(value)
            }
            None => Err(PopError::Empty),
        }
    }

    /// Pushes as many of `values` as there are free slots, with one CAS;
    /// returns how many. They stay contiguous and in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(4)?;
    /// assert_eq!(ring.push_slice(&[1, 2, 3, 4, 5]), 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn push_slice(&self, values: &[T]) -> usize {
        let max = (values.len() as u64).min(self.shared.capacity);
        if max == 0 {
            return 0;
        }
        match self.claim(&self.shared.control().tail.pos, max, 0) {
            Some((first, k)) => {
                for (i, v) in values[..k as usize].iter().enumerate() {
                    self.write_value(first.wrapping_add(i as u64), *v);
                }
                self.published(first, k);
                k as usize
            }
            None => 0,
        }
    }

    /// Pushes all of `values` or none: fails unless that many slots are free now.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(4)?;
    /// ring.push_exact(&[1, 2, 3])?;
    /// assert!(ring.push_exact(&[4, 5]).is_err());
    /// assert_eq!(ring.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_exact(&self, values: &[T]) -> Result<(), BulkError> {
        let n = values.len() as u64;
        let tail = &self.shared.control().tail.pos;
        loop {
            let pos = tail.load(Ordering::Relaxed);
            let free = (0..n.min(self.shared.capacity))
                .take_while(|&i| {
                    self.seq(pos.wrapping_add(i)).load(Ordering::Acquire)
                        == free_for(pos.wrapping_add(i))
                })
                .count() as u64;
            if free < n {
                if tail.load(Ordering::Relaxed) != pos {
                    continue; // raced with another producer: look again
                }
                return Err(BulkError::TooFew {
                    requested: values.len(),
                    available: free as usize,
                });
            }
            if n == 0 {
                return Ok(());
            }
            if tail
                .compare_exchange_weak(
                    pos,
                    pos.wrapping_add(n),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                for (i, v) in values.iter().enumerate() {
                    self.write_value(pos.wrapping_add(i as u64), *v);
                }
                self.published(pos, n);
                return Ok(());
            }
        }
    }

    /// Takes as many values as are ready (up to `out.len()`), with one CAS;
    /// returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(4)?;
    /// ring.push_slice(&[1, 2]);
    /// let mut out = [0; 4];
    /// assert_eq!(ring.pop_into(&mut out), 2);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn pop_into(&self, out: &mut [T]) -> usize {
        let max = (out.len() as u64).min(self.shared.capacity);
        if max == 0 {
            return 0;
        }
        match self.claim(&self.shared.control().head.pos, max, 1) {
            Some((first, k)) => {
                for (i, slot) in out[..k as usize].iter_mut().enumerate() {
                    *slot = self.read_value(first.wrapping_add(i as u64));
                }
                self.freed(first, k);
                k as usize
            }
            None => 0,
        }
    }

    /// Waits up to `timeout` for a free slot. Gives the value back if the
    /// ring is still full at the deadline. How it waits is the handle's
    /// [`WaitStrategy`] (see the [module docs](crate::mpmc) on blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(1)?;
    /// ring.push(1).unwrap();
    /// assert!(ring.push_blocking(2, Duration::from_millis(5)).is_err());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn push_blocking(&self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        let words = &self.shared.control().room;
        match self
            .waiting()
            .until(words, timeout, None, || self.push(value).ok())
        {
            Waited::Ready(()) => Ok(()),
            Waited::TimedOut | Waited::PeerGone => Err(PushError::Full(value)),
        }
    }

    /// Waits up to `timeout` for a value. At the deadline it says
    /// [`PopError::Stalled`] when the next position was claimed by a
    /// producer that never published it, [`PopError::Empty`] otherwise. How
    /// it waits is the handle's [`WaitStrategy`] (see the
    /// [module docs](crate::mpmc) on blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(4)?;
    /// assert_eq!(ring.pop_blocking(Duration::from_millis(5)), Err(shm_ring::PopError::Empty));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn pop_blocking(&self, timeout: Duration) -> Result<T, PopError> {
        let words = &self.shared.control().items;
        match self
            .waiting()
            .until(words, timeout, None, || self.pop().ok())
        {
            Waited::Ready(v) => Ok(v),
            Waited::TimedOut | Waited::PeerGone => Err(self.why_empty()),
        }
    }

    /// How this handle's blocking calls wait on this ring.
    fn waiting(&self) -> Wait {
        Wait {
            strategy: self.wait,
            futex: self.shared.blocking,
        }
    }

    /// This handle with another [`WaitStrategy`] for its blocking calls (and
    /// those of its clones made afterwards); process-local.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{MpmcRing, WaitStrategy};
    /// let ring = MpmcRing::<u8, _>::new_heap(4)?.with_wait_strategy(WaitStrategy::SpinThenYield);
    /// assert_eq!(ring.clone().wait_strategy(), WaitStrategy::SpinThenYield);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn with_wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.wait = strategy;
        self
    }

    /// How this handle's blocking calls wait.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(4)?;
    /// assert_eq!(ring.wait_strategy(), shm_ring::WaitStrategy::DEFAULT);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Empty, or stalled behind a claimed but unpublished position?
    fn why_empty(&self) -> PopError {
        let ctl = self.shared.control();
        let head = ctl.head.pos.load(Ordering::Acquire);
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        let claimed_unpublished = self.seq(head).load(Ordering::Acquire) == free_for(head);
        if tail.wrapping_sub(head) as i64 > 0 && claimed_unpublished {
            PopError::Stalled { position: head }
        } else {
            PopError::Empty
        }
    }

    /// The number of slots.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_ring::MpmcRing::<u8, _>::new_heap(8)?.capacity(), 8);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.shared.capacity as usize
    }

    /// Claimed positions not yet taken (a snapshot; clamped to the capacity).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8, _>::new_heap(8)?;
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.len(), 1);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn len(&self) -> usize {
        let ctl = self.shared.control();
        let head = ctl.head.pos.load(Ordering::Acquire);
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        (tail.wrapping_sub(head) as i64).clamp(0, self.shared.capacity as i64) as usize
    }

    /// Whether the ring looks empty now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_ring::MpmcRing::<u8, _>::new_heap(8)?.is_empty());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
