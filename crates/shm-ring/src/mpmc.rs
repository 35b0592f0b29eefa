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
//! **Linearizable.** [`MpmcRing::pop`] says `Empty` only when the ring is
//! empty (head and tail met at one instant), [`MpmcRing::push`] says `Full`
//! only when it is full (the tail a whole lap ahead of the head). When the
//! slot an operation needs is not ready although the positions say it
//! should be (a producer claimed position `p` and has not published it yet,
//! or a consumer claimed the slot's previous lap and has not released it),
//! the operation waits for that peer, as `ArrayQueue` does: a bounded spin
//! (`crossbeam_utils::Backoff`), then it asks who holds the position (the
//! claim records below). If the holder is dead, the position is repaired
//! and the operation goes on; if it is alive, the operation keeps waiting
//! (yielding, then sleeping 100 µs at a time) for at most one second, after
//! which `pop` reports [`PopError::Stalled`] and `push` reports `Full`
//! (`push_slice` 0, `push_exact` `TooFew`) instead of hanging on a peer
//! that is stopped (`SIGSTOP`, a debugger). Batches (`push_slice`,
//! `pop_into`) move what is ready up to the first such position, or wait
//! there when nothing before it is.
//!
//! **Catching up.** When such a wait ends because the peer just finished
//! the slot, the operation is on its peers' heels: each slot line it touches
//! next is the one they are writing, and lines would cross between cores
//! once per item. If the peers are streaming (they already claimed past that
//! slot), it first lets them get up to an eighth of the ring ahead, looking
//! at their position at most 8 times and only while they make progress
//! ("temporal slipping", as in FastForward; the SPSC ring does the same). A
//! lone item (a ping-pong) is never delayed. On a 2-vCPU VM this made single
//! pushes and pops 3–4× faster under contention.
//!
//! **Claim records.** The ring's shared block (after the control block,
//! before the slots) holds 64 *lanes*, each on its own cache line: an owner
//! word (`ProcessId::to_word` of a process, 0 when free, taken by a CAS) and
//! the claim its thread makes or made last (first position, count, and
//! whether a producer or a consumer made it). A thread announces each claim
//! in its lane with two Release stores *before* the CAS of the tail (head)
//! that makes it, and overwrites the announcement only when it starts its
//! next claim, that is after it published (released) every position this one
//! covered; a thread whose claim's CAS failed clears its announcement before
//! it waits or gives up (full, empty). The first 48 lanes are bound to a
//! thread for as long as the thread lives and its process keeps a handle of
//! the ring (a thread-local cache finds it: a TLS read and two compares per
//! operation); a thread that finds none free takes one of the other 16 for
//! one operation at a time (a CAS to take it, a store to give it back).
//! A process takes lanes lazily, on its threads' first operations, and gives
//! them back when its last handle of the ring drops; a lane whose owner is
//! dead is taken over once its last claim is settled (its positions are
//! behind the head, or its slots were reused a lap later), so that no record
//! a recovery still needs is overwritten.
//!
//! **Why a dead claimer is proven, not guessed.** A consumer at head `p`
//! finds slot `p` unpublished while its Acquire load of the tail is past `p`.
//! That load synchronizes with the CAS that claimed `p` (Release; every
//! later change of the tail is also a read-modify-write, which continues its
//! release sequence), so the claimer's announcement, stored before that CAS,
//! is visible to the consumer, or a newer one, which the claimer stores only
//! after publishing `p`. Hence, if the claimer is alive and has not
//! published `p`, some lane announces a producer's claim covering `p` and has
//! a live owner (the owner is read after the announcement, so it is the one
//! that made it, never an older one). The consumer therefore skips `p` only
//! when every lane whose announcement covers `p` belongs to a dead process
//! and at least one does (a position no lane covers is a corrupted ring, not
//! a hole: reported as `Stalled`, never skipped). A lane may announce a claim
//! whose CAS failed (the position went to another producer), so a dead
//! lane alone proves nothing; what proves it is that no live lane covers
//! `p`: whoever claimed `p` announced it and is not alive. The skip itself
//! is a CAS of the slot's sequence from "free for `p`" to "free for
//! `p + capacity`", which fails if the producer published after all; then
//! the head moves past `p` (a consumer that finds a skipped slot at the head
//! helps). The mirror image repairs a consumer's claim: a producer at tail
//! `t` whose slot still holds position `q = t - capacity` while the head is
//! past `q` looks for lanes announcing a consumer's claim covering `q`; when
//! only dead ones do, it frees the slot with a CAS from "holds `q`" to "free
//! for `t`". Liveness ([`ProcessId::is_alive`](shm_segment::ProcessId::is_alive),
//! which asks the kernel) costs a syscall or more, so it is asked only when
//! stuck, after the bounded spin, at most once a millisecond for a live
//! peer, and never on the fast path (which pays the lane lookup, the two
//! stores of the announcement and a Release claim CAS, free on x86).
//!
//! **What a killed process leaves.**
//!
//! - A producer killed between claim and publish: the positions of its
//!   claim (one `push`, or one batch) never receive a value. Consumers that
//!   reach them find it dead and skip them
//!   ([`recovered`](MpmcRing::recovered)`().skipped` counts them); every
//!   item published before or after them is delivered, in order, to live
//!   consumers: nothing published is lost and the ring is never recreated.
//!   Only the dead producer's unpublished items of that claim are gone (its
//!   caller never saw that push return).
//! - A consumer killed between claim and release: the items of its claim
//!   are gone with it (it may have read and acted on them: delivery is at
//!   most once, never twice). Producers that wrap around to those slots find
//!   it dead and free them (`recovered().reclaimed`), so they do not see
//!   `Full` for ever.
//! - A process killed anywhere else leaves nothing to repair (its lanes stay
//!   taken until another thread needs one and takes it over).
//! - Not repaired: a peer that is alive but does not run (stopped, traced)
//!   keeps the positions it claimed; after one second operations report
//!   `Stalled` or `Full` (`pop_blocking` and `push_blocking` at their
//!   deadline), and everything flows again once it runs. Whether a process
//!   counts as dead is what `ProcessId::is_alive` says.
//! - Lanes are finite: 48 threads (all processes together) keep one while
//!   they live, and 16 more operations can be in flight on the shared rest;
//!   a thread beyond that waits in its push or pop for a lane to come free.
//!   A killed process's lanes are taken over once its claims are repaired.
//!
//! **Across `fork`.** An MPMC ring has no roles to own: every handle may push
//! and pop, in any number of processes. So an [`MpmcRing`] that a `fork(2)`ed
//! child inherits is a legitimate handle in the child, unlike the SPSC
//! ring's [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer),
//! which are inert there. Creating the ring before the fork and using it on
//! both sides (what pyshm users do) works, and the child's drop of its copy
//! only unmaps its own view. The child takes lanes of its own (owned by its
//! own `ProcessId`, which is new in the child): it never announces in, nor
//! gives back, the lanes of its parent.
//!
//! **Blocking calls.** [`MpmcRing::push_blocking`] and
//! [`MpmcRing::pop_blocking`] wait as the SPSC ones do: the handle's
//! [`WaitStrategy`], sleeps of at most 10 ms at a time (a wake-up lost to a
//! process killed between publishing and waking costs one slice at most),
//! and a sleeper count that heals itself when a sleeper is killed. An MPMC
//! ring has no roles, so no side can be "gone": there is no `PeerGone`
//! here, and a wait ends with what it waited for or at its deadline.
//!
//! # Examples
//!
//! ```
//! use shm_ring::MpmcRing;
//!
//! let name = format!("/shm-test-doc-mpmc-mod-{}", std::process::id());
//! let ring = MpmcRing::<u32>::create_posix(&name, 64)?;
//! // Any number of processes open it by name; every handle pushes and pops.
//! let other = MpmcRing::<u32>::open_posix(&name)?;
//! ring.push_slice(&[1, 2, 3]);
//! assert_eq!(other.pop(), Ok(1));
//! assert_eq!(ring.len(), 2);
//! # Ok::<(), shm_ring::RingError>(())
//! ```

pub(crate) mod lanes;

use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;
use crossbeam_utils::Backoff;
use shm_segment::{HeapRegion, Kind, Region, Segment};

use crate::constructors::segment_constructors;
use crate::error::{BulkError, PopError, PushError, RingError};
use crate::shared::{heap_region, Layout, RingOptions, RingSlot, Shared};
use crate::sync::{AtomicU64, ValueCell};
use crate::wait::{Wait, WaitStrategy, Waited};
pub(crate) use lanes::RECORDS_SIZE;
use lanes::{fence, Holder, Home, LaneRef, Records, Stuck, POP};

/// 3: the claim records (lanes and recovery counts) between the control
/// block and the slots (2: the sleeper count became a 64-bit word with a
/// generation).
pub(crate) const LAYOUT_VERSION: u32 = 3;

/// A slot: its sequence number, then the value.
#[repr(C)]
pub(crate) struct Slot<T> {
    seq: AtomicU64,
    value: ValueCell<T>,
}

impl<T> RingSlot for Slot<T> {
    type Extra = Records;

    unsafe fn init_extra(extra: *mut Records) {
        // SAFETY: forwarded contract.
        unsafe { Records::init(extra) }
    }
}

/// The sequence of a slot that is free for position `pos`.
#[inline]
fn free_for(pos: u64) -> u64 {
    pos.wrapping_mul(2)
}

fn layout<T>() -> Layout<Slot<T>> {
    Layout::new(Kind::MPMC_RING, LAYOUT_VERSION)
}

/// What recovery from killed processes has done to a ring so far, in all
/// processes together (see the [module docs](crate::mpmc)).
///
/// # Examples
///
/// ```
/// let ring = shm_ring::MpmcRing::<u8>::new_heap(4)?;
/// assert_eq!(ring.recovered(), shm_ring::mpmc::Recovered::default());
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Positions skipped because the producer that claimed them died before
    /// publishing them.
    pub skipped: u64,
    /// Slots freed because the consumer that claimed them died before
    /// releasing them (their items went with it).
    pub reclaimed: u64,
}

/// What every MPMC handle of one mapping holds: the ring's [`Shared`] state and this
/// process's lanes in it (given back when the last handle drops).
struct Inner<R> {
    shared: Shared<R>,
    home: Arc<Home>,
}

impl<R> std::ops::Deref for Inner<R> {
    type Target = Shared<R>;

    fn deref(&self) -> &Shared<R> {
        &self.shared
    }
}

impl<R> Drop for Inner<R> {
    fn drop(&mut self) {
        // Before the mapping goes (fields drop after this).
        self.home.release_all();
    }
}
/// A multi-producer multi-consumer ring of `T` in a [`Region`]. Every
/// handle (clone it freely, attach from any process) may push and pop.
///
/// # Examples
///
/// ```
/// use shm_ring::MpmcRing;
///
/// let name = format!("/shm-test-doc-mpmc-{}", std::process::id());
/// let ring = MpmcRing::<u64>::create_posix(&name, 256)?;
/// // Other processes: `MpmcRing::<u64>::open_posix(&name)?`.
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
pub struct MpmcRing<T, R = Segment> {
    inner: Arc<Inner<R>>,
    /// How this handle's blocking calls wait (process-local).
    wait: WaitStrategy,
    _t: PhantomData<fn(T) -> T>,
}

impl<T, R> Clone for MpmcRing<T, R> {
    fn clone(&self) -> Self {
        MpmcRing {
            inner: Arc::clone(&self.inner),
            wait: self.wait,
            _t: PhantomData,
        }
    }
}

impl<T, R> std::fmt::Debug for MpmcRing<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcRing")
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

segment_constructors!(MpmcRing, Slot<T>);

/// Heap rings, called as `MpmcRing::<T>::new_heap` like the other
/// constructors that choose their own region (the ring's region is then a
/// [`HeapRegion`], not the default [`Segment`]).
impl<T: Pod> MpmcRing<T> {
    /// A ring on the heap, for use between threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u32>::new_heap(8)?;
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.pop(), Ok(1));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn new_heap(capacity: usize) -> Result<MpmcRing<T, HeapRegion>, RingError> {
        MpmcRing::<T>::new_heap_with(capacity, RingOptions::new())
    }

    /// [`new_heap`](Self::new_heap) with options (round the capacity up, a
    /// wait strategy, futex wake-ups).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{MpmcRing, RingOptions};
    /// let ring = MpmcRing::<u32>::new_heap_with(3, RingOptions::new().round_up(true))?;
    /// assert_eq!(ring.capacity(), 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn new_heap_with(
        capacity: usize,
        opts: RingOptions,
    ) -> Result<MpmcRing<T, HeapRegion>, RingError> {
        let region = heap_region::<Slot<T>>(capacity, &opts)?;
        MpmcRing::<T, HeapRegion>::create(region, capacity, opts)
    }
}

impl<T: Pod, R: Region> MpmcRing<T, R> {
    /// Lays out a new, empty ring of `capacity` in `region` and publishes
    /// its header. Fails if a structure is already there. The capacity is a
    /// power of two: any other is a [`RingError::Capacity`], unless `opts`
    /// has [`RingOptions::round_up`], which makes it the next power of two
    /// (size the region with `required_size`, which counts that one).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{MpmcRing, RingOptions};
    /// let region = shm_segment::HeapRegion::new(MpmcRing::<u8>::required_size(4));
    /// let ring = MpmcRing::<u8, _>::create(region, 4, RingOptions::new().blocking(true))?;
    /// assert_eq!(ring.capacity(), 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn create(region: R, capacity: usize, opts: RingOptions) -> Result<Self, RingError> {
        let shared =
            Shared::create::<T, Slot<T>>(region, &layout::<T>(), capacity, opts, |slot, i| {
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
    /// let region = shm_segment::HeapRegion::new(MpmcRing::<u64>::required_size(8));
    /// let _spsc = SpscRing::<u64, _>::create(&region, 8, Default::default())?;
    /// let err = MpmcRing::<u64, _>::attach(&region).unwrap_err();
    /// assert!(err.to_string().contains("this is a spsc-ring, not a mpmc-ring"));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn attach(region: R) -> Result<Self, RingError> {
        Ok(Self::wrap(
            Shared::attach::<T, Slot<T>>(region, &layout::<T>())?,
            WaitStrategy::DEFAULT,
        ))
    }

    fn wrap(shared: Shared<R>, wait: WaitStrategy) -> Self {
        // SAFETY: wired for `Slot<T>`, whose extra block is `Records`.
        let records = unsafe { shared.extra::<Records>() };
        let ctl = shared.control();
        let home = Home::new(records, &ctl.head.pos, &ctl.tail.pos, shared.capacity);
        MpmcRing {
            inner: Arc::new(Inner { shared, home }),
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
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(4)?;
    /// assert!(ring.region().len() >= 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn region(&self) -> &R {
        self.inner.region()
    }
}

/// The slot array's address and mask, copied into locals once per
/// operation: the ring's fields sit behind a pointer, so after each atomic
/// access the compiler would load them again for every slot.
#[derive(Clone, Copy)]
struct Slots<T> {
    base: *mut Slot<T>,
    mask: u64,
}

impl<T: Copy> Slots<T> {
    /// Slot of position `pos`: masked, so always inside the checked array.
    #[inline]
    fn at(self, pos: u64) -> *mut Slot<T> {
        // SAFETY: `pos & mask < capacity`, and `wire` checked that
        // `capacity` slots fit in the region (as `Shared::slot_ptr`).
        unsafe { self.base.add((pos & self.mask) as usize) }
    }

    /// How many of the `n` positions from `pos` lie before the end of the
    /// array: the slots from `at(pos)` on are consecutive for that many.
    /// Bulk loops walk such runs with a pointer instead of masking each
    /// position.
    #[inline]
    fn run(self, pos: u64, n: u64) -> u64 {
        (self.mask - (pos & self.mask) + 1).min(n)
    }

    /// Splits the `n` positions from `pos` into runs of consecutive slots
    /// and calls `f(first slot, first position, indices into the n)` for
    /// each, in order: `f` may touch the slots from the first one on for
    /// the length of the range.
    #[inline]
    fn each_run(self, pos: u64, n: usize, mut f: impl FnMut(*mut Slot<T>, u64, Range<usize>)) {
        let mut done = 0;
        while done < n {
            let at = pos.wrapping_add(done as u64);
            let run = self.run(at, (n - done) as u64) as usize;
            f(self.at(at), at, done..done + run);
            done += run;
        }
    }
}

impl<T: Pod, R> MpmcRing<T, R> {
    #[inline]
    fn slots(&self) -> Slots<T> {
        Slots {
            base: self.inner.slot_ptr::<Slot<T>>(0),
            mask: self.inner.mask,
        }
    }

    /// The sequence of position `pos`'s slot (of this ring's `slots`).
    #[inline]
    fn seq_in(&self, slots: Slots<T>, pos: u64) -> &AtomicU64 {
        // SAFETY: masked into the checked slot array.
        unsafe { self.seq_at(slots.at(pos)) }
    }

    #[inline]
    fn seq(&self, pos: u64) -> &AtomicU64 {
        self.seq_in(self.slots(), pos)
    }

    /// The sequence of the slot at `slot`.
    ///
    /// # Safety
    ///
    /// `slot` points into this ring's slot array (`Slots::at`, or inside a
    /// run from it).
    #[inline]
    unsafe fn seq_at(&self, slot: *mut Slot<T>) -> &AtomicU64 {
        // SAFETY: a slot of the checked array (caller's promise); the
        // sequence is an atomic: any bits are valid, sharing is its purpose.
        unsafe { &*addr_of!((*slot).seq) }
    }

    /// How many consecutive positions from `pos` (at most `max`) have a slot
    /// whose sequence is `free_for(position) + state` (0: free for it,
    /// 1: holding its value).
    #[inline]
    fn count(&self, slots: Slots<T>, pos: u64, max: u64, state: u64) -> u64 {
        // SYNC POINT (both loads): Acquire pairs with the Release store of
        // the sequence by whoever last owned the slot (`put_at`, `take_at`).
        if max == 1 {
            // Single operations: no run to walk (and nothing left for the
            // optimizer to unroll when `max` is the constant 1).
            let seq = self.seq_in(slots, pos).load(Ordering::Acquire);
            return u64::from(seq == free_for(pos).wrapping_add(state));
        }
        let mut k = 0;
        while k < max {
            let first = pos.wrapping_add(k);
            let run = slots.run(first, max - k);
            let slot = slots.at(first);
            let mut want = free_for(first).wrapping_add(state);
            let mut j = 0;
            while j < run {
                // SAFETY: `j < run`, so inside the array (see `Slots::run`).
                let seq = unsafe { self.seq_at(slot.add(j as usize)) };
                if seq.load(Ordering::Acquire) != want {
                    return k + j;
                }
                want = want.wrapping_add(2);
                j += 1;
            }
            k += run;
        }
        k
    }

    /// Writes `value` into position `pos`'s slot, at `slot`, and publishes it.
    ///
    /// # Safety
    ///
    /// `slot` is position `pos`'s slot in this ring's array, and the caller
    /// claimed `pos`, so no one else reads or writes its value until it is
    /// published.
    #[inline]
    unsafe fn put_at(&self, slot: *mut Slot<T>, pos: u64, value: T) {
        // SAFETY: forwarded contract.
        unsafe {
            ValueCell::write(addr_of_mut!((*slot).value), value);
            // SYNC POINT: Release pairs with the consumers' Acquire load in
            // `claim_pop`.
            self.seq_at(slot)
                .store(free_for(pos) + 1, Ordering::Release);
        }
    }

    /// Reads the value of position `pos`'s slot, at `slot`, and frees the
    /// slot for the next lap (`capacity` ahead).
    ///
    /// # Safety
    ///
    /// `slot` is position `pos`'s slot in this ring's array, and the caller
    /// claimed `pos`, whose value was published.
    #[inline]
    unsafe fn take_at(&self, slot: *mut Slot<T>, pos: u64, capacity: u64) -> T {
        // SAFETY: forwarded contract; T is Pod, so any bytes are a valid T.
        unsafe {
            let value = ValueCell::read(addr_of!((*slot).value));
            // SYNC POINT: Release pairs with the producers' Acquire load in
            // `claim_push`.
            self.seq_at(slot)
                .store(free_for(pos.wrapping_add(capacity)), Ordering::Release);
            value
        }
    }

    /// [`put_at`](Self::put_at) of `values` at the positions from `first`,
    /// which the caller claimed, walking runs of consecutive slots.
    #[inline]
    fn put_all(&self, slots: Slots<T>, first: u64, values: &[T]) {
        slots.each_run(first, values.len(), |slot, pos, range| {
            for (j, v) in values[range].iter().enumerate() {
                // SAFETY: `j` is inside the run (see `Slots::each_run`), so
                // this is position `pos + j`'s slot, which the caller claimed.
                unsafe { self.put_at(slot.add(j), pos.wrapping_add(j as u64), *v) };
            }
        });
    }

    /// [`take_at`](Self::take_at) of the positions from `first`, which the
    /// caller claimed, into `out`, walking runs of consecutive slots.
    #[inline]
    fn take_all(&self, slots: Slots<T>, first: u64, out: &mut [T]) {
        let capacity = self.inner.capacity;
        slots.each_run(first, out.len(), |slot, pos, range| {
            for (j, v) in out[range].iter_mut().enumerate() {
                // SAFETY: as in `put_all`; these positions were published.
                *v = unsafe { self.take_at(slot.add(j), pos.wrapping_add(j as u64), capacity) };
            }
        });
    }

    /// Claims at least `min` and up to `max` consecutive positions from the
    /// tail whose slots are free; returns the first position and the count.
    /// Announces the claim in `lane` first. On failure, how many slots were
    /// free: the ring is full at the next one, or a live consumer held it
    /// past the stall limit (with `min > max`, only that count comes back).
    #[inline]
    fn claim_push(&self, lane: &LaneRef<'_>, max: u64, min: u64) -> Result<(u64, u64), u64> {
        let tail = &self.inner.control().tail.pos;
        let slots = self.slots();
        let mut pos = tail.load(Ordering::Relaxed);
        let mut announced = false;
        let mut stuck = None;
        // A lost CAS means another producer is on the same word: back off
        // (exponentially, as `ArrayQueue` does) instead of making the line
        // bounce again at once.
        let contended = Backoff::new();
        loop {
            let k = self.count(slots, pos, max, 0);
            if k >= min {
                lane.lane.announce(pos, k);
                announced = true;
                // SYNC POINT: Release makes the announcement visible to a
                // consumer whose Acquire load of the tail sees this claim
                // (`pop_stuck`).
                match tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(k),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok((pos, k)),
                    Err(now) => {
                        pos = now;
                        contended.spin();
                        continue;
                    }
                }
            }
            if announced {
                // The claim announced last failed: do not let it cover
                // positions others claimed while this thread waits.
                lane.lane.clear();
                announced = false;
            }
            match self.push_stuck(pos, k, lane.index, &mut stuck) {
                Some(now) => pos = now,
                None => return Err(k),
            }
        }
    }

    /// The slot of position `pos + k` is not free for it. Returns where to
    /// claim next, or `None` when the ring is full there (or a live consumer
    /// held it too long, or the slot is in a state no peer explains).
    #[cold]
    #[inline(never)]
    fn push_stuck(&self, pos: u64, k: u64, mine: usize, stuck: &mut Option<Stuck>) -> Option<u64> {
        let ctl = self.inner.control();
        let i = pos.wrapping_add(k);
        let s = self.seq(i).load(Ordering::Acquire);
        if s == free_for(i) {
            self.let_peers_ahead(i, 0);
            return Some(pos); // freed meanwhile
        }
        if s.wrapping_sub(free_for(i)) as i64 > 0 {
            // Another producer took `i`: move on. If the tail did not move,
            // the slot is corrupted: report full, never spin.
            let now = ctl.tail.pos.load(Ordering::Relaxed);
            return (now != pos).then_some(now);
        }
        // The slot still holds position `q`, a lap back.
        let q = i.wrapping_sub(self.inner.capacity);
        // SYNC POINT: as in `ArrayQueue`, this fence orders the load of the
        // sequence before the load of the head: "full" is decided on values
        // that held together. The head's Acquire pairs with the consumers'
        // claim CAS (Release), for their announcements (`Home::holder`).
        fence(Ordering::SeqCst);
        let head = ctl.head.pos.load(Ordering::Acquire);
        if head.wrapping_sub(q) as i64 <= 0 {
            return None; // nobody took `q`: full
        }
        let now = ctl.tail.pos.load(Ordering::Relaxed);
        if now != pos {
            return Some(now);
        }
        // A consumer took `q` and has not released its slot yet: wait, and
        // when that takes long, ask who it is. Only the slot is polled
        // meanwhile: reading the head and tail again would pull their lines
        // away from the peers about to move them.
        let st = stuck.get_or_insert_with(Stuck::new);
        while !st.spun() {
            if self.seq(i).load(Ordering::Acquire) != s {
                self.let_peers_ahead(i, 0);
                return Some(pos);
            }
        }
        if s != free_for(q) + 1 {
            return None; // a state no peer explains: corrupted
        }
        match st.holder(&self.inner.home, q, true, mine) {
            Holder::Live => st.wait_live().then_some(pos),
            Holder::Dead => {
                self.reclaim(q);
                st.progressed();
                Some(pos)
            }
            Holder::Nobody => (self.seq(i).load(Ordering::Acquire) != s).then_some(pos),
        }
    }

    /// A producer (`state` 0) or consumer (`state` 1) caught up with its
    /// peers: the slot of position `i` became ready for it just now. When
    /// they are streaming (they already claimed past `i`), let them get
    /// ahead first ([`crate::slip`]); the room is what their position
    /// leaves this side from `i` on. Returns that room (for tests).
    #[cold]
    #[inline(never)]
    fn let_peers_ahead(&self, i: u64, state: u64) -> u64 {
        let ctl = self.inner.control();
        let capacity = self.inner.capacity;
        // The consumers' head, a lap behind a producer's positions; the
        // producers' tail, for a consumer.
        let (peers, lap) = if state == 0 {
            (&ctl.head.pos, capacity)
        } else {
            (&ctl.tail.pos, 0)
        };
        let room = || {
            // Relaxed: a hint only; the claim that follows checks the slot.
            let ahead = peers
                .load(Ordering::Relaxed)
                .wrapping_add(lap)
                .wrapping_sub(i);
            // Behind `i` (a corrupted or recovering ring): no room.
            if (ahead as i64) < 0 {
                0
            } else {
                ahead
            }
        };
        let now = room();
        if now < 2 {
            return now;
        }
        crate::slip::slip(capacity, now, crate::slip::Streak::STREAMING, room).0
    }

    /// What a pop says when it found no lane to announce its claim in:
    /// stalled at the head (every lane held by a stuck peer, or a corrupted
    /// header).
    #[cold]
    fn no_lane(&self) -> PopError {
        PopError::Stalled {
            position: self.inner.control().head.pos.load(Ordering::Relaxed),
        }
    }

    /// Claims up to `max` (at least 1) consecutive published positions from
    /// the head; returns the first position and the count. Announces the
    /// claim in `lane` first.
    #[inline(always)]
    fn claim_pop(&self, lane: &LaneRef<'_>, max: u64) -> Result<(u64, u64), PopError> {
        let head = &self.inner.control().head.pos;
        let slots = self.slots();
        let mut pos = head.load(Ordering::Relaxed);
        let mut announced = false;
        let mut stuck = None;
        let contended = Backoff::new(); // as in `claim_push`
        loop {
            let k = self.count(slots, pos, max, 1);
            if k > 0 {
                lane.lane.announce(pos, k | POP);
                announced = true;
                // SYNC POINT: Release makes the announcement visible to a
                // producer whose Acquire load of the head sees this claim
                // (`push_stuck`).
                match head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(k),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok((pos, k)),
                    Err(now) => {
                        pos = now;
                        contended.spin();
                        continue;
                    }
                }
            }
            if announced {
                // As in `claim_push`.
                lane.lane.clear();
                announced = false;
            }
            pos = self.pop_stuck(pos, lane.index, &mut stuck)?;
        }
    }

    /// The slot of position `pos` holds no value for it. Returns where to
    /// claim next, or why nothing can be taken.
    #[cold]
    #[inline(never)]
    fn pop_stuck(&self, pos: u64, mine: usize, stuck: &mut Option<Stuck>) -> Result<u64, PopError> {
        let ctl = self.inner.control();
        let head = &ctl.head.pos;
        let s = self.seq(pos).load(Ordering::Acquire);
        if s == free_for(pos) + 1 {
            self.let_peers_ahead(pos, 1);
            return Ok(pos); // published meanwhile
        }
        if s.wrapping_sub(free_for(pos) + 1) as i64 > 0 {
            let now = head.load(Ordering::Relaxed);
            if now != pos {
                return Ok(now); // another consumer took it: move on
            }
            if self.is_skipped(pos, s) {
                // A consumer skipped this hole and has not moved the head
                // past it yet: help.
                let _ = head.compare_exchange(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Release,
                    Ordering::Relaxed,
                );
                return Ok(head.load(Ordering::Relaxed));
            }
            return Err(PopError::Empty); // corrupted: report empty, never spin
        }
        // SYNC POINT: as in `ArrayQueue`, this fence orders the load of the
        // sequence before the load of the tail. The tail's Acquire pairs with
        // the producers' claim CAS (Release), for their announcements.
        fence(Ordering::SeqCst);
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        if tail.wrapping_sub(pos) as i64 <= 0 {
            return Err(PopError::Empty);
        }
        let now = head.load(Ordering::Relaxed);
        if now != pos {
            return Ok(now);
        }
        // A producer claimed `pos` and has not published it: wait, and when
        // that takes long, ask who it is (polling only the slot, as in
        // `push_stuck`).
        let st = stuck.get_or_insert_with(Stuck::new);
        while !st.spun() {
            if self.seq(pos).load(Ordering::Acquire) != s {
                self.let_peers_ahead(pos, 1);
                return Ok(pos);
            }
        }
        if s != free_for(pos) {
            return Err(PopError::Empty); // a state no peer explains: corrupted
        }
        match st.holder(&self.inner.home, pos, false, mine) {
            Holder::Live if st.wait_live() => Ok(pos),
            Holder::Dead => {
                self.skip(pos);
                st.progressed();
                Ok(head.load(Ordering::Relaxed))
            }
            Holder::Nobody if self.seq(pos).load(Ordering::Acquire) != s => Ok(pos),
            Holder::Live | Holder::Nobody => Err(PopError::Stalled { position: pos }),
        }
    }

    /// Whether sequence `s` of the slot of position `pos` says that `pos`
    /// was skipped (free for the next lap, or filled for it already).
    fn is_skipped(&self, pos: u64, s: u64) -> bool {
        let next_lap = free_for(pos.wrapping_add(self.inner.capacity));
        s == next_lap || s == next_lap + 1
    }

    /// Skips position `pos` at the head, whose producer died before
    /// publishing it (`Home::holder` said so), then moves the head past it.
    #[cold]
    fn skip(&self, pos: u64) {
        let ctl = self.inner.control();
        let next_lap = free_for(pos.wrapping_add(self.inner.capacity));
        // SYNC POINT: AcqRel; fails if the producer published after all.
        match self.seq(pos).compare_exchange(
            free_for(pos),
            next_lap,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                self.inner
                    .home
                    .records()
                    .counts
                    .skipped
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(now) if self.is_skipped(pos, now) => {} // another consumer did
            Err(_) => return,                           // published: take it
        }
        let _ = ctl.head.pos.compare_exchange(
            pos,
            pos.wrapping_add(1),
            Ordering::Release,
            Ordering::Relaxed,
        );
        if self.inner.blocking {
            ctl.room.notify();
        }
    }

    /// Frees the slot of position `q`, which a consumer that died before
    /// releasing it claimed (`Home::holder` said so), for the next lap.
    #[cold]
    fn reclaim(&self, q: u64) {
        let next_lap = free_for(q.wrapping_add(self.inner.capacity));
        // SYNC POINT: AcqRel; fails if the consumer released it after all.
        if self
            .seq(q)
            .compare_exchange(
                free_for(q) + 1,
                next_lap,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.inner
                .home
                .records()
                .counts
                .reclaimed
                .fetch_add(1, Ordering::Relaxed);
            if self.inner.blocking {
                self.inner.control().room.notify();
            }
        }
    }

    /// After publishing: wakes sleeping consumers of a blocking ring.
    #[inline]
    fn published(&self) {
        if self.inner.blocking {
            self.inner.control().items.notify();
        }
    }

    /// After freeing slots: wakes sleeping producers of a blocking ring.
    #[inline]
    fn freed(&self) {
        if self.inner.blocking {
            self.inner.control().room.notify();
        }
    }

    /// With the `fault-injection` feature: whether this thread "dies" at
    /// `point` (then its lane passes to a dead process).
    #[cfg(feature = "fault-injection")]
    #[inline]
    fn dies_at<'a>(&self, point: crate::fault::Point, lane: LaneRef<'a>) -> Option<LaneRef<'a>> {
        if crate::fault::hit(point) {
            self.inner.home.die(lane);
            None
        } else {
            Some(lane)
        }
    }

    /// Pushes one value, or gives it back when the ring is full. Waits
    /// while a consumer is between taking the slot's previous item and
    /// releasing it (see the [module docs](crate::mpmc)).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(1)?;
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.push(2), Err(shm_ring::PushError::Full(2)));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    // Always inlined: out of line, the calls cost about 2 ns of an 11 ns
    // item in a two-thread benchmark (the fast path is short; the waits are
    // out of line in `push_stuck`).
    #[inline(always)]
    pub fn push(&self, value: T) -> Result<(), PushError<T>> {
        let Some(lane) = self.inner.home.lane() else {
            return Err(PushError::Full(value));
        };
        match self.claim_push(&lane, 1, 1) {
            Ok((pos, _)) => {
                #[cfg(feature = "fault-injection")]
                let Some(_lane) = self.dies_at(crate::fault::Point::PushClaimed, lane) else {
                    return Ok(());
                };
                // SAFETY: position `pos`'s slot (masked); this push claimed it.
                unsafe { self.put_at(self.slots().at(pos), pos, value) };
                self.published();
                Ok(())
            }
            Err(_) => Err(PushError::Full(value)),
        }
    }

    /// Takes one value. Says [`PopError::Empty`] only when the ring is
    /// empty: it waits while a producer is between claiming the next
    /// position and publishing it, skips the position when that producer
    /// died, and says [`PopError::Stalled`] when a live one held it for a
    /// second (see the [module docs](crate::mpmc)).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(1)?;
    /// assert!(ring.pop().is_err());
    /// ring.push(5).unwrap();
    /// assert_eq!(ring.pop(), Ok(5));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    // Always inlined, as `push`.
    #[inline(always)]
    pub fn pop(&self) -> Result<T, PopError> {
        let Some(lane) = self.inner.home.lane() else {
            return Err(self.no_lane());
        };
        let (pos, _) = self.claim_pop(&lane, 1)?;
        #[cfg(feature = "fault-injection")]
        let Some(_lane) = self.dies_at(crate::fault::Point::PopClaimed, lane) else {
            return Err(PopError::Empty);
        };
        // SAFETY: position `pos`'s slot (masked); this pop claimed it, and
        // the claim found it published.
        let value = unsafe { self.take_at(self.slots().at(pos), pos, self.inner.capacity) };
        self.freed();
        Ok(value)
    }

    /// Pushes as many of `values` as there are free slots, with one CAS;
    /// returns how many. They stay contiguous and in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(4)?;
    /// assert_eq!(ring.push_slice(&[1, 2, 3, 4, 5]), 4);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn push_slice(&self, values: &[T]) -> usize {
        let max = (values.len() as u64).min(self.inner.capacity);
        if max == 0 {
            return 0;
        }
        let Some(lane) = self.inner.home.lane() else {
            return 0;
        };
        let Ok((first, k)) = self.claim_push(&lane, max, 1) else {
            return 0;
        };
        #[cfg(feature = "fault-injection")]
        let Some(_lane) = self.dies_at(crate::fault::Point::PushClaimed, lane) else {
            return k as usize;
        };
        self.put_all(self.slots(), first, &values[..k as usize]);
        self.published();
        k as usize
    }

    /// Pushes all of `values` or none: fails unless that many slots are free now.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(4)?;
    /// ring.push_exact(&[1, 2, 3])?;
    /// assert!(ring.push_exact(&[4, 5]).is_err());
    /// assert_eq!(ring.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_exact(&self, values: &[T]) -> Result<(), BulkError> {
        let n = values.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let Some(lane) = self.inner.home.lane() else {
            return Err(BulkError::TooFew {
                requested: values.len(),
                available: 0,
            });
        };
        // More than the capacity never fits: the claim then only counts.
        let (first, _) = self
            .claim_push(&lane, n.min(self.inner.capacity), n)
            .map_err(|available| BulkError::TooFew {
                requested: values.len(),
                available: available as usize,
            })?;
        #[cfg(feature = "fault-injection")]
        let Some(_lane) = self.dies_at(crate::fault::Point::PushClaimed, lane) else {
            return Ok(());
        };
        self.put_all(self.slots(), first, values);
        self.published();
        Ok(())
    }

    /// Takes as many values as are ready (up to `out.len()`), with one CAS;
    /// returns how many. 0 only when the ring is empty, or when the next
    /// position is held by a live producer for a second (see
    /// [`pop`](MpmcRing::pop)).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(4)?;
    /// ring.push_slice(&[1, 2]);
    /// let mut out = [0; 4];
    /// assert_eq!(ring.pop_into(&mut out), 2);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn pop_into(&self, out: &mut [T]) -> usize {
        let max = (out.len() as u64).min(self.inner.capacity);
        if max == 0 {
            return 0;
        }
        let Some(lane) = self.inner.home.lane() else {
            return 0;
        };
        let Ok((first, k)) = self.claim_pop(&lane, max) else {
            return 0;
        };
        #[cfg(feature = "fault-injection")]
        let Some(_lane) = self.dies_at(crate::fault::Point::PopClaimed, lane) else {
            return 0;
        };
        self.take_all(self.slots(), first, &mut out[..k as usize]);
        self.freed();
        k as usize
    }

    /// Waits up to `timeout` for a free slot. Gives the value back if the
    /// ring is still full at the deadline. How it waits is the handle's
    /// [`WaitStrategy`] (see the [module docs](crate::mpmc) on blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(1)?;
    /// ring.push(1).unwrap();
    /// assert!(ring.push_blocking(2, Duration::from_millis(5)).is_err());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn push_blocking(&self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        let words = &self.inner.control().room;
        match self
            .waiting()
            .until(words, timeout, None, || self.push(value).ok())
        {
            Waited::Ready(()) => Ok(()),
            Waited::TimedOut | Waited::PeerGone => Err(PushError::Full(value)),
        }
    }

    /// Waits up to `timeout` for a value. At the deadline it says
    /// [`PopError::Stalled`] when the next position is still held by a live
    /// producer that has not published it (a dead producer's hole is skipped
    /// and never ends a wait), [`PopError::Empty`] otherwise. How
    /// it waits is the handle's [`WaitStrategy`] (see the
    /// [module docs](crate::mpmc) on blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(4)?;
    /// assert_eq!(ring.pop_blocking(Duration::from_millis(5)), Err(shm_ring::PopError::Empty));
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn pop_blocking(&self, timeout: Duration) -> Result<T, PopError> {
        let words = &self.inner.control().items;
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
            futex: self.inner.blocking,
        }
    }

    /// This handle with another [`WaitStrategy`] for its blocking calls (and
    /// those of its clones made afterwards); process-local.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{MpmcRing, WaitStrategy};
    /// let ring = MpmcRing::<u8>::new_heap(4)?.with_wait_strategy(WaitStrategy::SpinThenYield);
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
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(4)?;
    /// assert_eq!(ring.wait_strategy(), shm_ring::WaitStrategy::DEFAULT);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait
    }

    /// Empty, or stalled behind a claimed but unpublished position?
    fn why_empty(&self) -> PopError {
        let ctl = self.inner.control();
        let head = ctl.head.pos.load(Ordering::Acquire);
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        let claimed_unpublished = self.seq(head).load(Ordering::Acquire) == free_for(head);
        if tail.wrapping_sub(head) as i64 > 0 && claimed_unpublished {
            PopError::Stalled { position: head }
        } else {
            PopError::Empty
        }
    }

    /// What recovery from killed processes did to this ring so far, in all
    /// processes together: positions skipped because their producer died
    /// before publishing them, slots freed because their consumer died
    /// before releasing them.
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(4)?;
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.pop(), Ok(1));
    /// assert_eq!(ring.recovered().skipped + ring.recovered().reclaimed, 0);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn recovered(&self) -> Recovered {
        let counts = &self.inner.home.records().counts;
        Recovered {
            skipped: counts.skipped.load(Ordering::Relaxed),
            reclaimed: counts.reclaimed.load(Ordering::Relaxed),
        }
    }

    /// The number of slots.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_ring::MpmcRing::<u8>::new_heap(8)?.capacity(), 8);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.capacity as usize
    }

    /// Claimed positions not yet taken (a snapshot; clamped to the capacity).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(8)?;
    /// ring.push(1).unwrap();
    /// assert_eq!(ring.len(), 1);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn len(&self) -> usize {
        let ctl = self.inner.control();
        let head = ctl.head.pos.load(Ordering::Acquire);
        let tail = ctl.tail.pos.load(Ordering::Acquire);
        (tail.wrapping_sub(head) as i64).clamp(0, self.inner.capacity as i64) as usize
    }

    /// Whether the ring looks empty now.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shm_ring::MpmcRing::<u8>::new_heap(8)?.is_empty());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot holds an item now (a snapshot: other handles may
    /// change it at any moment).
    ///
    /// # Examples
    ///
    /// ```
    /// let ring = shm_ring::MpmcRing::<u8>::new_heap(2)?;
    /// ring.push_slice(&[1, 2]);
    /// assert!(ring.is_full());
    /// ring.pop().unwrap();
    /// assert!(!ring.is_full());
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A ring of 64 (so an eighth is 8 positions) after `pushes` pushes
    /// and `pops` pops.
    fn ring(pushes: u64, pops: u64) -> MpmcRing<u64, HeapRegion> {
        let ring = MpmcRing::<u64>::new_heap(64).unwrap();
        for v in 0..pushes {
            ring.push(v).unwrap();
        }
        for _ in 0..pops {
            ring.pop().unwrap();
        }
        ring
    }

    #[test]
    fn the_room_a_catching_up_producer_sees_is_what_the_consumers_claimed() {
        // Full, and one pop freed position 0's slot for position 64: the
        // consumers claimed nothing past it, so no wait.
        assert_eq!(ring(64, 1).let_peers_ahead(64, 0), 1);
        // Two pops: streaming, but they stopped (no progress): room 2.
        assert_eq!(ring(64, 2).let_peers_ahead(64, 0), 2);
        assert_eq!(ring(64, 9).let_peers_ahead(64, 0), 9);
    }

    #[test]
    fn the_room_a_catching_up_consumer_sees_is_what_the_producers_claimed() {
        assert_eq!(ring(1, 0).let_peers_ahead(0, 1), 1); // a ping-pong
        assert_eq!(ring(3, 0).let_peers_ahead(0, 1), 3);
        let ring = ring(64, 64);
        for v in 0..9 {
            ring.push(v).unwrap();
        }
        assert_eq!(ring.let_peers_ahead(64, 1), 9);
        // A position the peers are behind (never for a live ring): no room.
        assert_eq!(ring.let_peers_ahead(80, 1), 0);
    }
}
