//! What both ring flavours share: the control block in shared memory, the
//! layout, validation on attach, and role claims. How blocking calls wait is
//! in `wait.rs`.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use crossbeam_utils::CachePadded;
use shm_segment::{
    Expect, Header, HeaderInfo, HeapRegion, Kind, ProcessId, Region, RegionChecks, HEADER_SIZE,
};

use crate::error::RingError;
use crate::spsc::latest::Latest;
use crate::sync::{AtomicU64, ValueCell};
use crate::wait::{owner_gone, WaitStrategy, WaitWords, RELEASED};

/// Flag in [`Control::flags`]: producers and consumers wake futex waiters.
pub(crate) const FLAG_BLOCKING: u64 = 1;

/// Where the control block starts: after the 64-byte header, on a fresh
/// pair of cache lines (`CachePadded` aligns to 128 bytes on x86-64).
pub(crate) const CONTROL_OFFSET: usize = 128;
const _: () = assert!(CONTROL_OFFSET >= HEADER_SIZE);

/// One side of the ring: the position it has published, and who holds it.
#[repr(C)]
pub(crate) struct Side {
    /// Producers: the tail (next position to write). Consumers: the head
    /// (next position to read). Monotonic; the slot index is `pos & mask`.
    pub(crate) pos: AtomicU64,
    /// SPSC only: `ProcessId::to_word` of the holder of this role; 0 if it
    /// was never taken, `RELEASED` (all ones) once its holder gave it back.
    pub(crate) owner: AtomicU64,
    /// SPSC tail only: a copy of the last item pushed alone, in this same
    /// cache line (`spsc::latest`). Unused (zero) at the head and in MPMC
    /// rings.
    pub(crate) latest: Latest,
}

// The copy is only worth it in the line the consumer polls anyway.
const _: () = assert!(std::mem::size_of::<Side>() <= 64);

/// The ring's shared state, right after the header. Only fixed-width atomics,
/// each group on its own cache line.
#[repr(C)]
pub(crate) struct Control {
    pub(crate) tail: CachePadded<Side>,
    pub(crate) head: CachePadded<Side>,
    /// Consumers wait here for items.
    pub(crate) items: CachePadded<WaitWords>,
    /// Producers wait here for room.
    pub(crate) room: CachePadded<WaitWords>,
    /// `FLAG_*` bits, written before the header is published, read once on attach.
    pub(crate) flags: CachePadded<AtomicU64>,
}

impl Control {
    #[cfg(loom)]
    fn new(flags: u64) -> Self {
        let side = || {
            CachePadded::new(Side {
                pos: AtomicU64::new(0),
                owner: AtomicU64::new(0),
                latest: Latest::new(),
            })
        };
        Control {
            tail: side(),
            head: side(),
            items: CachePadded::default(),
            room: CachePadded::default(),
            flags: CachePadded::new(AtomicU64::new(flags)),
        }
    }
}

/// Options for creating a ring.
///
/// # Examples
///
/// ```
/// use shm_ring::{inspect, MpmcRing, RingOptions, WaitStrategy};
/// let opts = RingOptions::new().blocking(true).wait_strategy(WaitStrategy::SpinThenYield);
/// let ring = MpmcRing::<u64>::new_heap_with(8, opts)?;
/// assert!(inspect(ring.region())?.blocking); // stored in the ring
/// assert_eq!(ring.wait_strategy(), WaitStrategy::SpinThenYield); // this handle's
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RingOptions {
    blocking: bool,
    round_up: bool,
    wait: WaitStrategy,
}

impl RingOptions {
    /// The defaults: no futex wake-ups (the fastest push and pop).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{inspect, RingOptions, SpscRing, WaitStrategy};
    /// let (tx, _rx) = SpscRing::<u64>::new_heap_with(8, RingOptions::new())?;
    /// assert!(!inspect(tx.region())?.blocking);
    /// assert_eq!(tx.wait_strategy(), WaitStrategy::DEFAULT);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Make blocking calls sleep on a futex and be woken by the other side.
    /// Each push and pop then pays one fence and one load to check for
    /// sleepers (no syscall unless someone sleeps). Without it, blocking
    /// calls still work but, once their [`WaitStrategy`] says park, poll
    /// with a growing back-off (up to about 1 ms). Stored in the ring's
    /// memory: every process that attaches gets the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{inspect, MpmcRing, RingOptions};
    /// let ring = MpmcRing::<u64>::new_heap_with(8, RingOptions::new().blocking(true))?;
    /// let other = MpmcRing::<u64, _>::attach(ring.region())?; // as another process would
    /// assert!(inspect(other.region())?.blocking);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// How the blocking calls of the handle that `create` returns (and of
    /// the roles taken from it) wait; [`WaitStrategy::DEFAULT`] unless set.
    /// Process-local: not stored in the ring, so a process that attaches
    /// chooses its own (see [`WaitStrategy`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{MpmcRing, RingOptions, WaitStrategy};
    /// let region = shm_segment::HeapRegion::new(MpmcRing::<u8>::required_size(4));
    /// let opts = RingOptions::new().wait_strategy(WaitStrategy::Spin);
    /// let ring = MpmcRing::<u8, _>::create(region, 4, opts)?;
    /// assert_eq!(ring.wait_strategy(), WaitStrategy::Spin);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn wait_strategy(mut self, strategy: WaitStrategy) -> Self {
        self.wait = strategy;
        self
    }

    /// Round a capacity that is not a power of two up to the next one
    /// instead of refusing it: `create` (and every constructor taking
    /// options) then makes a ring of at least the capacity asked for, and
    /// [`capacity`](crate::SpscRing::capacity) tells how many slots it has.
    /// Off by default: a capacity that is not a power of two is then a
    /// [`RingError::Capacity`], as 0 is either way. The slot index is
    /// `pos & (capacity - 1)`, hence the powers of two.
    /// `required_size` always counts the rounded capacity, so a region
    /// sized with it fits.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::{RingError, RingOptions, SpscRing};
    /// let region = shm_segment::HeapRegion::new(SpscRing::<u32>::required_size(1000));
    /// let exact = SpscRing::<u32, _>::create(&region, 1000, RingOptions::new());
    /// assert!(matches!(exact, Err(RingError::Capacity { capacity: 1000, .. })));
    /// let ring = SpscRing::<u32, _>::create(&region, 1000, RingOptions::new().round_up(true))?;
    /// assert_eq!(ring.capacity(), 1024);
    /// # Ok::<(), shm_ring::RingError>(())
    /// ```
    pub fn round_up(mut self, round_up: bool) -> Self {
        self.round_up = round_up;
        self
    }

    /// The wait strategy these options set.
    pub(crate) fn wait(&self) -> WaitStrategy {
        self.wait
    }

    /// The capacity a ring created with these options gets when `capacity`
    /// is asked for, and the bytes it needs; the capacity error `create`
    /// gives otherwise (checked before anything is allocated or touched).
    pub(crate) fn sized<S: RingSlot>(
        &self,
        capacity: usize,
        target: impl Fn() -> shm_segment::Target,
    ) -> Result<(u64, u64), RingError> {
        let bad = |reason| RingError::Capacity {
            target: target(),
            capacity: capacity as u64,
            reason,
        };
        if capacity == 0 {
            return Err(bad("it must be at least 1"));
        }
        let capacity = if self.round_up {
            capacity
                .checked_next_power_of_two()
                .ok_or_else(|| bad("it has no power of two above it"))?
        } else {
            capacity
        };
        if !capacity.is_power_of_two() {
            return Err(bad(
                "it must be a power of two (or see RingOptions::round_up)",
            ));
        }
        let capacity = capacity as u64;
        let size = Layout::<S>::size(capacity)
            .filter(|&size| size <= isize::MAX as u64)
            .ok_or_else(|| bad("the ring would not fit in memory"))?;
        Ok((capacity, size))
    }
}

/// The process-local view of a ring (its `Shared` state: every handle of one
/// mapping holds it, as the field `shared`): the region, and everything read from
/// the header once at create or attach time (never re-read).
pub(crate) struct Shared<R> {
    region: R,
    control: *const Control,
    /// First slot; slot `i` is at `slots + i * stride`.
    pub(crate) slots: *mut u8,
    /// The flavour's own block between the control block and the slots
    /// ([`RingSlot::Extra`]; the MPMC ring's claim records), checked in
    /// bounds and aligned in `wire`; null when the flavour has none.
    extra: *const u8,
    pub(crate) capacity: u64,
    pub(crate) mask: u64,
    pub(crate) blocking: bool,
}

// SAFETY: the pointers point into `region`, which the Shared owns; all shared
// access through them is by atomics or by the ring protocol's exclusive
// ownership of a slot, which is what makes the ring usable across threads.
unsafe impl<R: Send> Send for Shared<R> {}
// SAFETY: as above.
unsafe impl<R: Sync> Sync for Shared<R> {}

/// What a flavour's slot type says about the layout: the block it keeps
/// between the control block and the slots (`()` for none).
pub(crate) trait RingSlot {
    /// Lives at [`extra_offset`], aligned to its own alignment (at most 128).
    type Extra;

    /// Prepares the extra block in freshly zeroed shared memory (loom's
    /// atomics must be constructed; std's are valid as zeroes).
    ///
    /// # Safety
    ///
    /// `extra` is valid for writes, aligned, and not yet shared.
    unsafe fn init_extra(extra: *mut Self::Extra);
}

impl<T> RingSlot for ValueCell<T> {
    type Extra = ();

    unsafe fn init_extra(_: *mut ()) {}
}

/// Where a flavour's extra block starts: after the control block, on a
/// fresh pair of cache lines.
pub(crate) const fn extra_offset() -> usize {
    (CONTROL_OFFSET + std::mem::size_of::<Control>()).next_multiple_of(128)
}

/// Per-flavour constants: kind, layout version, and bytes per slot.
pub(crate) struct Layout<S> {
    pub(crate) kind: Kind,
    pub(crate) version: u32,
    _slot: PhantomData<S>,
}

impl<S: RingSlot> Layout<S> {
    pub(crate) const fn new(kind: Kind, version: u32) -> Self {
        Layout {
            kind,
            version,
            _slot: PhantomData,
        }
    }

    pub(crate) fn slots_offset() -> usize {
        slots_offset_for(
            std::mem::align_of::<S>() as u64,
            std::mem::size_of::<S::Extra>() as u64,
        )
        .expect("a type's alignment") as usize
    }

    /// Total bytes for `capacity` slots; `None` on overflow.
    pub(crate) fn size(capacity: u64) -> Option<u64> {
        size_for(
            std::mem::size_of::<S>() as u64,
            std::mem::align_of::<S>() as u64,
            std::mem::size_of::<S::Extra>() as u64,
            capacity,
        )
    }
}

/// Where the slots start when each is aligned to `slot_align` (a power of
/// two, else `None`): after the control block and `extra` bytes of the
/// flavour's own block, on a fresh pair of cache lines.
fn slots_offset_for(slot_align: u64, extra: u64) -> Option<u64> {
    if !slot_align.is_power_of_two() {
        return None;
    }
    let base = (extra_offset() as u64).checked_add(extra)?;
    base.checked_next_multiple_of(slot_align.max(128))
}

/// Total bytes for `capacity` slots of `slot_size` bytes aligned to
/// `slot_align` after an extra block of `extra` bytes; `None` on overflow or
/// an alignment that is not a power of two.
pub(crate) fn size_for(slot_size: u64, slot_align: u64, extra: u64, capacity: u64) -> Option<u64> {
    capacity
        .checked_mul(slot_size)?
        .checked_add(slots_offset_for(slot_align, extra)?)
}

/// The checks of a ring's header that `attach` and [`inspect`](crate::inspect) share:
/// [`Header::validate`] against `expect` with the ring's `layout` (kind,
/// version, element size and alignment, a non-zero capacity whose layout
/// neither overflows nor disagrees with the total size, which fits the
/// region), then a power-of-two capacity. Everything after relies on it: the
/// slot mask is `capacity - 1`.
pub(crate) fn validate_header<R: Region>(
    region: &R,
    expect: &Expect,
    layout: impl FnOnce(&HeaderInfo) -> Option<u64>,
) -> Result<HeaderInfo, RingError> {
    let info = Header::validate(region, expect, layout)?;
    if !info.capacity.is_power_of_two() {
        return Err(RingError::Capacity {
            target: region.target(),
            capacity: info.capacity,
            reason: "the header's capacity is not a power of two",
        });
    }
    Ok(info)
}

impl<R: Region> Shared<R> {
    /// Lays out a new ring in `region` and publishes its header last.
    /// `init_slot` prepares slot `i` (MPMC writes sequence numbers).
    pub(crate) fn create<T, S: RingSlot>(
        region: R,
        layout: &Layout<S>,
        capacity: usize,
        opts: RingOptions,
        init_slot: impl Fn(*mut S, u64),
    ) -> Result<Self, RingError> {
        let target = region.target();
        if std::mem::size_of::<T>() == 0 {
            return Err(RingError::ZeroSized { target });
        }
        let (capacity, needed) = opts.sized::<S>(capacity, || region.target())?;
        if needed > region.len() as u64 {
            return Err(RingError::RegionTooSmall {
                target,
                needed,
                actual: region.len() as u64,
            });
        }
        region.check_writable("create ring")?;
        // Refuse to overwrite a live structure before touching any byte.
        Header::check_vacant(&region)?;
        region.fill(HEADER_SIZE, needed as usize - HEADER_SIZE, 0)?;
        let shared = Self::wire::<S>(region, capacity)?;
        let flags = if opts.blocking { FLAG_BLOCKING } else { 0 };
        // The region was just zero-filled, and std's atomics are valid as
        // zeroes: storing the flags is all that is left. Writing a whole
        // `Control` value would also copy its padding (the gaps `CachePadded`
        // leaves) from this stack frame into memory other processes read.
        #[cfg(not(loom))]
        shared.control().flags.store(flags, Ordering::Relaxed);
        // loom's atomics must be constructed.
        #[cfg(loom)]
        // SAFETY: `wire` checked the control block is in bounds and aligned;
        // nobody else uses it before the header is published below.
        unsafe {
            shared.control.cast_mut().write(Control::new(flags))
        };
        if !shared.extra.is_null() {
            // SAFETY: `wire` checked the extra block is in bounds and aligned;
            // nobody else uses it before the header is published below.
            unsafe { S::init_extra(shared.extra.cast_mut().cast()) };
        }
        for i in 0..capacity {
            init_slot(shared.slot_ptr::<S>(i), i);
        }
        let info = HeaderInfo::new(
            layout.kind,
            layout.version,
            std::mem::size_of::<T>() as u32,
            std::mem::align_of::<T>() as u32,
            capacity,
            needed,
        );
        // SYNC POINT: the header's Release publish covers the slots and flags above.
        Header::init(&shared.region, &info)?;
        Ok(Shared {
            blocking: opts.blocking,
            ..shared
        })
    }

    /// Validates the header against `T` and the layout, then wires up.
    pub(crate) fn attach<T, S: RingSlot>(region: R, layout: &Layout<S>) -> Result<Self, RingError> {
        // Every ring operation writes shared words: a read-only mapping would fault.
        region.check_writable("attach ring")?;
        if std::mem::size_of::<T>() == 0 {
            return Err(RingError::ZeroSized {
                target: region.target(),
            });
        }
        let expect = Expect::of::<T>(layout.kind, layout.version);
        let info = validate_header(&region, &expect, |info| Layout::<S>::size(info.capacity))?;
        let shared = Self::wire::<S>(region, info.capacity)?;
        let blocking = shared.control().flags.load(Ordering::Relaxed) & FLAG_BLOCKING != 0;
        Ok(Shared { blocking, ..shared })
    }

    /// Checks bounds and alignment of the control block and the slots once;
    /// afterwards every slot index is masked, so it stays in bounds.
    fn wire<S: RingSlot>(region: R, capacity: u64) -> Result<Self, RingError> {
        let control = region.typed_ptr::<Control>("attach ring", CONTROL_OFFSET, 1)?;
        let extra = if std::mem::size_of::<S::Extra>() == 0 {
            std::ptr::null()
        } else {
            region
                .typed_ptr::<S::Extra>("attach ring", extra_offset(), 1)?
                .cast_const()
                .cast::<u8>()
        };
        let slots = region.typed_ptr::<S>(
            "attach ring",
            Layout::<S>::slots_offset(),
            capacity as usize,
        )?;
        Ok(Shared {
            region,
            control,
            extra,
            slots: slots.cast(),
            capacity,
            mask: capacity - 1,
            blocking: false,
        })
    }

    pub(crate) fn region(&self) -> &R {
        &self.region
    }
}

impl<R> Shared<R> {
    pub(crate) fn control(&self) -> &Control {
        // SAFETY: checked in bounds and aligned in `wire`; the region lives as
        // long as `self`; Control holds only atomics, valid for any bits and
        // made for concurrent access.
        unsafe { &*self.control }
    }

    /// The flavour's extra block ([`RingSlot::Extra`]).
    ///
    /// # Safety
    ///
    /// `E` is the `Extra` type of the slot type this ring was wired with
    /// (so the pointer is non-null, in bounds and aligned for it), and `E`
    /// holds only atomics, valid for any bits and made for sharing.
    pub(crate) unsafe fn extra<E>(&self) -> &E {
        debug_assert!(!self.extra.is_null());
        // SAFETY: the caller's promise; the region lives as long as `self`.
        unsafe { &*self.extra.cast::<E>() }
    }

    /// Pointer to slot `index & mask`: always inside the region.
    #[inline]
    pub(crate) fn slot_ptr<S>(&self, index: u64) -> *mut S {
        // SAFETY: `index & mask < capacity`, and `wire` checked that
        // `capacity` slots fit in the region.
        unsafe { self.slots.cast::<S>().add((index & self.mask) as usize) }
    }
}

/// Claims an SPSC role: succeeds if nobody holds it (never taken, or given
/// back) or its holder is dead.
pub(crate) fn claim_role(
    word: &AtomicU64,
    role: &'static str,
    target: impl Fn() -> shm_segment::Target,
) -> Result<u64, RingError> {
    let me = ProcessId::current().to_word();
    let mut current = word.load(Ordering::Acquire);
    loop {
        if current != 0 && current != RELEASED {
            let holder = ProcessId::from_word(current);
            if holder.is_alive() {
                return Err(RingError::RoleTaken {
                    target: target(),
                    role,
                    holder,
                });
            }
        }
        // SYNC POINT: Acquire pairs with the Release of `release_role` (or a
        // dead holder's last position store), so we see its final position.
        match word.compare_exchange(current, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(me),
            Err(actual) => current = actual,
        }
    }
}

/// Gives a role back, if we still hold it: the word says `RELEASED`, so the
/// other role can tell "given back" (its blocking calls end with `PeerGone`)
/// from "never taken" (they keep waiting for someone to take it).
pub(crate) fn release_role(word: &AtomicU64, me: u64) {
    let _ = word.compare_exchange(me, RELEASED, Ordering::AcqRel, Ordering::Relaxed);
}

/// Whether the role whose owner word is `word` was taken and is no longer
/// held by a live process (given back, or its holder died). A syscall when
/// a holder is recorded.
pub(crate) fn role_abandoned(word: &AtomicU64) -> bool {
    owner_gone(word.load(Ordering::Acquire))
}

/// A zeroed heap region for a ring of `capacity` slots of `S` (rounded up
/// as `opts` says), or the capacity error `create` would give (checked
/// before allocating anything).
pub(crate) fn heap_region<S: RingSlot>(
    capacity: usize,
    opts: &RingOptions,
) -> Result<HeapRegion, RingError> {
    let (_, size) = opts.sized::<S>(capacity, || shm_segment::Target::Heap)?;
    Ok(HeapRegion::try_new(size as usize)?)
}

/// The bytes `required_size` gives: the layout of `capacity` slots rounded
/// up to a power of two.
///
/// # Panics
///
/// If the size does not fit in memory.
pub(crate) fn required_size<S: RingSlot>(capacity: usize) -> usize {
    capacity
        .checked_next_power_of_two()
        .and_then(|c| Layout::<S>::size(c.max(1) as u64))
        .filter(|&size| size <= isize::MAX as u64)
        .expect("capacity too large") as usize
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The control block as the tests that play a dead process poke at it
    /// (`tests/common`): one 128-byte line each for the tail, the head, the
    /// consumers' and the producers' wait words, and the flags.
    #[test]
    fn control_lines_are_where_the_tests_look() {
        let line = std::mem::size_of::<CachePadded<Side>>();
        assert_eq!(line, 128);
        assert_eq!(std::mem::offset_of!(Control, items), 2 * line);
        assert_eq!(std::mem::offset_of!(Control, room), 3 * line);
        assert_eq!(std::mem::size_of::<Control>(), 5 * line);
    }
}
