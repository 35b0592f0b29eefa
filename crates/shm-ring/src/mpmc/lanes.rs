//! Claim records ("lanes"): which thread of which process may still publish
//! or release a position of an MPMC ring. See the `mpmc` module docs for the
//! protocol and why it proves who claimed a position.
//!
//! A lane is three words in the ring's shared block: the owner (a process,
//! `ProcessId::to_word`; 0 when free) and the claim its thread makes or made
//! last (first position and length, with [`POP`] set for a consumer's
//! claim). A thread announces a claim in its lane with Release stores right
//! before the compare-and-swap on the tail or head that makes it, and
//! overwrites it only when it starts its next claim, after it published or
//! released everything the previous one covered.
//!
//! Lanes `0 .. BOUND_LANES` are bound to one thread for as long as it lives
//! and its process keeps the ring (a thread-local cache makes finding it a
//! few instructions); a thread that finds none free takes one of the rest
//! for the length of one operation (a compare-and-swap each time).

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use shm_segment::{ForkEpoch, ProcessId};

pub(crate) use crate::sync::fence;
use crate::sync::AtomicU64;

// std or loom, for what only the MPMC recovery uses (the rest: `crate::sync`).
#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::Mutex;

/// Lanes in a ring: `BOUND_LANES` threads (all processes together) keep
/// one while they live, and the rest serve one operation at a time; a
/// thread that finds none waits for one.
#[cfg(not(loom))]
pub(crate) const LANES: usize = 64;
/// Under loom: two bound lanes and one per operation, so that the models'
/// third thread takes the per-operation path.
#[cfg(loom)]
pub(crate) const LANES: usize = 3;
/// Lanes `0 .. BOUND_LANES` are bound to a thread; the rest are taken per operation.
pub(crate) const BOUND_LANES: usize = LANES * 3 / 4;

/// How long an operation waits for a per-operation lane before it gives up
/// (lanes are held for one push or pop each, microseconds).
#[cfg(not(loom))]
const PER_OP_PATIENCE: Duration = Duration::from_millis(100);

/// In [`Lane::len`]: the claim is a consumer's (of the head), not a producer's.
pub(crate) const POP: u64 = 1 << 63;

/// How long a push or pop waits for a live peer that claimed the position
/// it needs (a producer between claim and publish, a consumer between
/// claim and release) before it reports `Stalled` or `Full`.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(1);

/// One claim record, on its own cache line.
#[repr(C, align(64))]
pub(crate) struct Lane {
    /// `ProcessId::to_word` of the process whose thread holds the lane, 0
    /// when free. Taken by a CAS from 0 or from a dead process's word.
    owner: AtomicU64,
    /// The first position of the holder's current (or last) claim.
    pos: AtomicU64,
    /// Its length, `| POP` for a consumer's claim; 0: none.
    len: AtomicU64,
}

/// How many positions recovery skipped or freed (for tests and tools).
#[repr(C)]
pub(crate) struct Counts {
    /// Positions claimed by a producer that died before publishing them.
    pub(crate) skipped: AtomicU64,
    /// Slots claimed by a consumer that died before releasing them.
    pub(crate) reclaimed: AtomicU64,
}

/// The MPMC ring's block between the control block and the slots.
#[repr(C)]
pub(crate) struct Records {
    pub(crate) counts: CachePadded<Counts>,
    lanes: [Lane; LANES],
}

/// Bytes of [`Records`] (what `inspect` adds to the layout of an MPMC ring).
pub(crate) const RECORDS_SIZE: usize = std::mem::size_of::<Records>();

/// Where the lanes are in [`Records`] (for `layout`).
#[cfg(not(loom))]
pub(crate) const LANES_AT: usize = std::mem::offset_of!(Records, lanes);

impl Records {
    /// Constructs the records in place in zeroed memory: all lanes free.
    ///
    /// # Safety
    ///
    /// `records` is valid for writes, aligned, and not yet shared.
    #[cfg_attr(not(loom), allow(unused_variables))]
    pub(crate) unsafe fn init(records: *mut Records) {
        // std's atomics are valid as the zeroes the region was filled with;
        // loom's must be constructed.
        #[cfg(loom)]
        // SAFETY: valid for writes and unshared (caller's promise); every
        // pointer below stays inside `*records`.
        unsafe {
            use std::ptr::addr_of_mut;
            addr_of_mut!((*records).counts).write(CachePadded::new(Counts {
                skipped: AtomicU64::new(0),
                reclaimed: AtomicU64::new(0),
            }));
            let lanes = addr_of_mut!((*records).lanes).cast::<Lane>();
            for i in 0..LANES {
                lanes.add(i).write(Lane {
                    owner: AtomicU64::new(0),
                    pos: AtomicU64::new(0),
                    len: AtomicU64::new(0),
                });
            }
        }
    }
}

/// Who can still finish the claim of a position, by the lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A live process announced a claim that covers it: wait.
    Live,
    /// Only dead processes did: nobody will ever finish it.
    Dead,
    /// No lane covers it: a state no peer explains (a corrupted ring).
    Nobody,
}

/// Whether the process with `word` still exists. Our own process is alive
/// without a syscall; a test's simulated death says dead.
pub(crate) fn alive(word: u64) -> bool {
    if word == ProcessId::current().to_word() {
        return true;
    }
    #[cfg(feature = "fault-injection")]
    if crate::fault::is_simulated_dead(word) {
        return false;
    }
    ProcessId::from_word(word).is_alive()
}

/// The slow path's state while a push or pop is stuck on a position a peer
/// claimed: a bounded spin first, then liveness checks (at most one syscall
/// per millisecond for a peer found alive), then [`STALL_LIMIT`].
pub(crate) struct Stuck {
    #[cfg(not(loom))]
    backoff: crossbeam_utils::Backoff,
    #[cfg(loom)]
    spins: u32,
    /// When a live holder was first seen.
    live_since: Option<Instant>,
    /// The last word found alive, and when.
    seen_alive: Option<(u64, Instant)>,
    /// The last word found dead (a dead process stays dead).
    seen_dead: Option<u64>,
    /// The position (and side) last found held by a live process, and
    /// when: for a millisecond it is not looked up again.
    live_at: Option<(u64, bool, Instant)>,
}

impl Stuck {
    pub(crate) fn new() -> Self {
        Stuck {
            #[cfg(not(loom))]
            backoff: crossbeam_utils::Backoff::new(),
            #[cfg(loom)]
            spins: 0,
            live_since: None,
            seen_alive: None,
            seen_dead: None,
            live_at: None,
        }
    }

    /// One step of the bounded spin; true once it is over (then it stays over).
    pub(crate) fn spun(&mut self) -> bool {
        #[cfg(not(loom))]
        {
            if self.backoff.is_completed() {
                return true;
            }
            self.backoff.snooze();
            false
        }
        #[cfg(loom)]
        {
            if self.spins >= 1 {
                return true;
            }
            self.spins += 1;
            loom::thread::yield_now();
            false
        }
    }

    /// [`alive`], trusting a live verdict for a millisecond and a dead one
    /// for ever.
    pub(crate) fn alive(&mut self, word: u64) -> bool {
        if self.seen_dead == Some(word) {
            return false;
        }
        if let Some((w, at)) = self.seen_alive {
            if w == word && at.elapsed() < Duration::from_millis(1) {
                return true;
            }
        }
        let live = alive(word);
        if live {
            self.seen_alive = Some((word, Instant::now()));
        } else {
            self.seen_dead = Some(word);
        }
        live
    }

    /// [`Home::holder`] of position `p` (`pop`: a consumer's claim), other
    /// than lane `mine`. A live verdict stands for a millisecond (the lanes
    /// are not scanned again meanwhile; under loom always).
    pub(crate) fn holder(&mut self, home: &Home, p: u64, pop: bool, mine: usize) -> Holder {
        #[cfg(not(loom))]
        if let Some((at, side, when)) = self.live_at {
            if at == p && side == pop && when.elapsed() < Duration::from_millis(1) {
                return Holder::Live;
            }
        }
        let holder = home.holder(p, pop, mine, &mut |w| self.alive(w));
        if holder == Holder::Live {
            if self
                .live_at
                .is_some_and(|(at, side, _)| at != p || side != pop)
            {
                self.live_since = None; // another position: its own stall limit
            }
            self.live_at = Some((p, pop, Instant::now()));
        }
        holder
    }

    /// A live holder: waits a little and says true, or false once it has
    /// held the position for [`STALL_LIMIT`].
    pub(crate) fn wait_live(&mut self) -> bool {
        let since = *self.live_since.get_or_insert_with(Instant::now);
        let waited = since.elapsed();
        if waited >= STALL_LIMIT {
            return false;
        }
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        if waited < Duration::from_millis(10) {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
        true
    }

    /// A position was repaired: a live holder of the next one gets the
    /// whole stall limit again. (The spin stays over: the next position of a
    /// dead claim needs no new spin before it is looked up.)
    pub(crate) fn progressed(&mut self) {
        self.live_since = None;
    }
}

impl Lane {
    /// Announces the claim of `len` positions from `pos` (`len | POP` for a
    /// consumer), before the CAS that makes it.
    #[inline]
    pub(crate) fn announce(&self, pos: u64, len: u64) {
        // SYNC POINT: these Release stores are sequenced before the claim's
        // CAS of the tail or head (itself Release), so a peer whose Acquire
        // load of that word sees the claim sees them too (`Home::holder`).
        // And a peer that reads a newer announcement with Acquire sees that
        // everything this thread's previous claim covered was published or
        // released before it.
        self.pos.store(pos, Ordering::Release);
        self.len.store(len, Ordering::Release);
    }

    /// No claim: what a thread that announced one and then made none leaves.
    #[inline]
    pub(crate) fn clear(&self) {
        // SYNC POINT: Release, as in `announce`.
        self.len.store(0, Ordering::Release);
    }
}

/// The lane a thread uses for one operation; a per-operation lane goes back
/// on drop.
pub(crate) struct LaneRef<'a> {
    pub(crate) lane: &'a Lane,
    /// Its index, so that the thread's own lane is left out of [`Home::holder`].
    pub(crate) index: usize,
    /// Taken for this operation only (owner set back to 0 on drop).
    per_op: bool,
}

impl Drop for LaneRef<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.per_op {
            // SYNC POINT: Release pairs with the Acquire owner load in
            // `Home::holder`: whoever sees the lane free sees what this
            // operation published or released.
            self.lane.owner.store(0, Ordering::Release);
        }
    }
}

/// A unique number per [`Home`], for the thread-local caches.
static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// This process's side of one mapped MPMC ring's lanes: which it holds and
/// which of them no thread uses now. Shared by the ring's handles (through
/// the ring) and, weakly, by the threads bound to one of its lanes.
pub(crate) struct Home {
    uid: u64,
    /// The ring's records, head and tail: inside the mapping, which lives as
    /// long as the ring's `Inner` (the only strong owner of this `Home`
    /// besides a thread-exit give-back, which touches `state` only).
    records: *const Records,
    head: *const AtomicU64,
    tail: *const AtomicU64,
    capacity: u64,
    state: Mutex<State>,
}

// SAFETY: the pointers point into the ring's mapping, only read through
// atomics, and only while the ring lives (see the fields); the rest is a Mutex.
unsafe impl Send for Home {}
// SAFETY: as above.
unsafe impl Sync for Home {}

struct State {
    /// The process this state belongs to; a forked child starts afresh.
    epoch: ForkEpoch,
    /// This process's word, the owner of `owned`.
    me: u64,
    /// Bound lanes this process took for this ring (given back when the ring drops).
    owned: Vec<usize>,
    /// Those of them no live thread is bound to.
    idle: Vec<usize>,
}

impl State {
    fn new() -> Self {
        State {
            epoch: ForkEpoch::now(),
            me: ProcessId::current().to_word(),
            owned: Vec::new(),
            idle: Vec::new(),
        }
    }
}

/// A thread's binding to a lane of one ring.
struct Binding {
    uid: u64,
    epoch: ForkEpoch,
    index: usize,
    home: Weak<Home>,
}

/// The bindings of this thread; on thread exit its lanes go back to their
/// rings' idle lists (within the process: the lanes stay ours).
struct Bindings(Vec<Binding>);

impl Drop for Bindings {
    fn drop(&mut self) {
        for b in self.0.drain(..) {
            // A binding inherited across fork is the parent's business.
            if b.epoch.is_current() {
                if let Some(home) = b.home.upgrade() {
                    home.give_back(b.index, b.epoch);
                }
            }
        }
    }
}

/// The lane this thread used last, with its address: the fast path reads
/// one thread-local and compares two words, without going through the ring.
#[derive(Clone, Copy)]
struct Fast {
    uid: u64,
    epoch: ForkEpoch,
    index: usize,
    /// `&records.lanes[index]` of the `Home` numbered `uid`: valid while that
    /// `Home` lives, which a caller holding it (the only one that can match
    /// `uid`, never reused) guarantees.
    lane: *const Lane,
}

#[cfg(not(loom))]
std::thread_local! {
    /// The lane this thread used last. One TLS read; a miss goes to `BOUND`.
    static FAST: Cell<Option<Fast>> = const { Cell::new(None) };
    static BOUND: RefCell<Bindings> = const { RefCell::new(Bindings(Vec::new())) };
}
#[cfg(loom)]
loom::thread_local! {
    static FAST: Cell<Option<Fast>> = Cell::new(None);
    static BOUND: RefCell<Bindings> = RefCell::new(Bindings(Vec::new()));
}

fn lock(state: &Mutex<State>) -> impl std::ops::DerefMut<Target = State> + '_ {
    #[cfg(not(loom))]
    return state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    #[cfg(loom)]
    return state.lock().unwrap();
}

impl Home {
    /// `records`, `head` and `tail` point into a mapped ring of `capacity`
    /// slots that outlives every use of the `Home` but `give_back`.
    pub(crate) fn new(
        records: &Records,
        head: &AtomicU64,
        tail: &AtomicU64,
        capacity: u64,
    ) -> Arc<Home> {
        Arc::new(Home {
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            records,
            head,
            tail,
            capacity,
            state: Mutex::new(State::new()),
        })
    }

    pub(crate) fn records(&self) -> &Records {
        // SAFETY: into the mapping, which outlives the ring's uses of `self`
        // (see the field); Records holds only atomics.
        unsafe { &*self.records }
    }

    fn lane_at(&self, index: usize) -> &Lane {
        &self.records().lanes[index % LANES]
    }

    /// This thread's lane for one operation: its bound lane (the fast path:
    /// a thread-local read and two compares), else a new binding, else a
    /// lane for this operation only; `None` when no lane came free within
    /// [`PER_OP_PATIENCE`] (every lane held by a stuck peer, or a corrupted
    /// header), which the operation reports as `Full` or `Stalled`.
    #[inline]
    pub(crate) fn lane(self: &Arc<Self>) -> Option<LaneRef<'_>> {
        if let Some(fast) = FAST.with(Cell::get) {
            if fast.uid == self.uid && fast.epoch.is_current() {
                return Some(LaneRef {
                    // SAFETY: `fast` was stored by this `Home` (uids are
                    // unique and never reused), which `self` keeps alive, so
                    // the lane it points to is inside its live mapping.
                    lane: unsafe { &*fast.lane },
                    index: fast.index,
                    per_op: false,
                });
            }
        }
        self.lane_slow()
    }

    #[cold]
    #[inline(never)]
    fn lane_slow(self: &Arc<Self>) -> Option<LaneRef<'_>> {
        let epoch = ForkEpoch::now();
        let bound = |index| {
            let lane = self.lane_at(index);
            FAST.with(|f| {
                f.set(Some(Fast {
                    uid: self.uid,
                    epoch,
                    index,
                    lane,
                }))
            });
            LaneRef {
                lane,
                index,
                per_op: false,
            }
        };
        // Bound before (the one-entry cache held another ring)?
        let known = BOUND
            .try_with(|b| {
                let b = b.borrow();
                b.0.iter()
                    .find(|x| x.uid == self.uid && x.epoch == epoch)
                    .map(|x| x.index)
            })
            .ok()
            .flatten();
        if let Some(index) = known {
            return Some(bound(index));
        }
        // While this thread's locals are torn down (a ring used from a
        // thread-local destructor), nothing can be bound to it.
        if BOUND.try_with(|_| ()).is_ok() {
            if let Some(index) = self.bind(epoch) {
                let binding = Binding {
                    uid: self.uid,
                    epoch,
                    index,
                    home: Arc::downgrade(self),
                };
                let _ = BOUND.try_with(|b| {
                    let mut b = b.borrow_mut();
                    // Forget rings that are gone.
                    b.0.retain(|x| x.home.strong_count() > 0);
                    b.0.push(binding);
                });
                return Some(bound(index));
            }
        }
        self.per_op_lane()
    }

    /// Takes a lane to bind this thread to: an idle one of ours, a free
    /// one, or one a dead process left whose claim is settled.
    fn bind(&self, epoch: ForkEpoch) -> Option<usize> {
        let mut st = lock(&self.state);
        if st.epoch != epoch {
            // A forked child: the lanes in `owned` are its parent's.
            *st = State::new();
        }
        if let Some(index) = st.idle.pop() {
            return Some(index);
        }
        let index = self.take(0..BOUND_LANES, st.me)?;
        st.owned.push(index);
        Some(index)
    }

    /// A lane for one operation, waiting until one is free (they are held
    /// for one push or pop each, or belong to a dead process), for at most
    /// [`PER_OP_PATIENCE`]: a hostile or corrupted header can fill every
    /// lane with owners that never let go, and must not hang the caller.
    fn per_op_lane(&self) -> Option<LaneRef<'_>> {
        let me = ProcessId::current().to_word();
        let mut round = 0u32;
        #[cfg(not(loom))]
        let start = std::time::Instant::now();
        loop {
            if let Some(index) = self.take(BOUND_LANES..LANES, me) {
                return Some(LaneRef {
                    lane: self.lane_at(index),
                    index,
                    per_op: true,
                });
            }
            #[cfg(not(loom))]
            if start.elapsed() > PER_OP_PATIENCE {
                return None;
            }
            round = round.saturating_add(1);
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            if round < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Takes a lane of `range` for `me`: a free one, else one whose owner is
    /// dead and whose last claim is settled (so that no record a recovery
    /// still needs is overwritten). Clears its claim.
    fn take(&self, range: std::ops::Range<usize>, me: u64) -> Option<usize> {
        let lanes = &self.records().lanes;
        let mut taken = None;
        for i in range.clone() {
            // SYNC POINT: Acquire pairs with the Release of the lane's last
            // owner (the give-back in `release_all` or `LaneRef::drop`).
            if lanes[i]
                .owner
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                taken = Some(i);
                break;
            }
        }
        if taken.is_none() {
            for i in range {
                let owner = lanes[i].owner.load(Ordering::Acquire);
                if owner == 0 || owner == me || !self.settled(&lanes[i]) || alive(owner) {
                    continue;
                }
                if lanes[i]
                    .owner
                    .compare_exchange(owner, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    taken = Some(i);
                    break;
                }
            }
        }
        let i = taken?;
        lanes[i].clear();
        Some(i)
    }

    /// Whether a (dead) lane's claim needs no recovery any more: a
    /// producer's positions are all behind the head (taken or skipped), a
    /// consumer's slots were all reused a lap later (freed or reclaimed).
    fn settled(&self, lane: &Lane) -> bool {
        let len = lane.len.load(Ordering::Acquire);
        let pos = lane.pos.load(Ordering::Acquire);
        let n = len & !POP;
        if n == 0 {
            return true;
        }
        let end = pos.wrapping_add(n);
        // SAFETY: into the mapping (see the fields); atomics.
        let (head, tail) = unsafe { (&*self.head, &*self.tail) };
        if len & POP == 0 {
            head.load(Ordering::Acquire).wrapping_sub(end) as i64 >= 0
        } else {
            let reused = end.wrapping_add(self.capacity);
            tail.load(Ordering::Acquire).wrapping_sub(reused) as i64 >= 0
        }
    }

    /// Who can still publish (`pop == false`) or release (`pop == true`)
    /// position `p`, by the lanes other than `mine`.
    ///
    /// The caller saw position `p` claimed: its Acquire load of the tail
    /// (head) found it past `p`. That load synchronizes with the claim's
    /// CAS (Release; every later change of that word is a read-modify-write,
    /// which continues its release sequence), so the claimer's announcement,
    /// stored before the CAS, is visible here, or a newer one, which it
    /// makes only after publishing (releasing) `p`. Hence: if the claimer is
    /// alive and has not finished, a lane covering `p` is found with a live
    /// owner. If every lane covering `p` is dead, the claimer is dead (or has
    /// finished, which the caller's CAS on the slot then finds out).
    pub(crate) fn holder(
        &self,
        p: u64,
        pop: bool,
        mine: usize,
        alive: &mut impl FnMut(u64) -> bool,
    ) -> Holder {
        let mut dead = false;
        for (i, lane) in self.records().lanes.iter().enumerate() {
            if i == mine {
                continue; // this thread is here, not in a claim
            }
            // SYNC POINT: Acquire pairs with the Release stores of `announce`.
            let len = lane.len.load(Ordering::Acquire);
            if (len & POP != 0) != pop {
                continue;
            }
            // A claim is never longer than the capacity: a longer one is a
            // corrupted record, which must not make whole laps look dead.
            let n = len & !POP;
            if n > self.capacity {
                continue;
            }
            let pos = lane.pos.load(Ordering::Acquire);
            if p.wrapping_sub(pos) >= n {
                continue;
            }
            // The owner after the claim: loaded after it, it is the one that
            // announced it or a later one (a per-operation lane given back: 0).
            let owner = lane.owner.load(Ordering::Acquire);
            if owner == 0 {
                continue;
            }
            if alive(owner) {
                return Holder::Live;
            }
            dead = true;
        }
        if dead {
            Holder::Dead
        } else {
            Holder::Nobody
        }
    }

    /// On thread exit: the lane stays ours, for another thread.
    fn give_back(&self, index: usize, epoch: ForkEpoch) {
        let mut st = lock(&self.state);
        if st.epoch == epoch && st.owned.contains(&index) && !st.idle.contains(&index) {
            st.idle.push(index);
        }
    }

    /// When this process's last handle of the ring drops: every lane it
    /// bound goes back to free (not the lanes of a parent across fork).
    pub(crate) fn release_all(&self) {
        let mut st = lock(&self.state);
        if !st.epoch.is_current() {
            return;
        }
        let me = st.me;
        for index in st.owned.drain(..) {
            // SYNC POINT: Release pairs with the Acquire of `take`.
            let _ = self.lane_at(index).owner.compare_exchange(
                me,
                0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        st.idle.clear();
    }

    /// The fault-injection hook's simulated death of this thread's process
    /// in the middle of a claim: the lane now belongs to a dead process, and
    /// this thread forgets it.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn die(&self, lane: LaneRef<'_>) {
        let index = lane.index;
        lane.lane
            .owner
            .store(crate::fault::SIMULATED_DEAD, Ordering::Release);
        std::mem::forget(lane);
        let mut st = lock(&self.state);
        st.owned.retain(|&i| i != index);
        st.idle.retain(|&i| i != index);
        drop(st);
        FAST.with(|f| f.set(None));
        let _ = BOUND.try_with(|b| b.borrow_mut().0.retain(|x| x.uid != self.uid));
    }
}
