//! How blocking calls wait: the [`WaitStrategy`] (spin, then yield, then
//! park), the futex words in the ring's memory with a count of sleepers that
//! heals itself when a sleeper is killed, and the watch on the other SPSC
//! role between sleep slices.
//!
//! **Bounded slices.** A sleep never lasts longer than [`SLICE`]: a wake-up
//! lost because the waker was killed between publishing and waking costs at
//! most one slice, and between slices the waiter asks the kernel whether the
//! other role's holder still lives (a syscall, never on the fast path).
//!
//! **What a killed process leaves.** A waiter killed inside the futex wait
//! leaves its registration in the sleeper count. The next waker that sees
//! sleepers and wakes nobody (`FUTEX_WAKE` returns 0) resets the count (see
//! the SYNC POINT at [`WaitWords::notify`]), so from then on pushes and pops
//! make no syscall again. A waker killed between publishing and waking leaves
//! the sleeper asleep until the end of its slice, at most [`SLICE`].

use std::cell::Cell;
use std::sync::atomic::{fence, AtomicU32, AtomicU64 as StdAtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_segment::ProcessId;

use crate::sync::AtomicU64;

/// The longest single sleep of a blocking call; the other role's liveness is
/// checked (a syscall) at most once per slice.
pub(crate) const SLICE: Duration = Duration::from_millis(10);

/// What a role's owner word holds after its holder gave the role back (its
/// handle was dropped): told apart from 0, "never taken since creation".
/// No process's `ProcessId::to_word` is all ones (that would be pid
/// 4194303 started 2^42 clock ticks after boot).
pub(crate) const RELEASED: u64 = u64::MAX;

/// How a blocking call (`push_blocking`, `pop_blocking`) waits for the other
/// side: first it spins (busy polls with a CPU pause hint), then it yields
/// its CPU (`sched_yield(2)`) between polls, then it parks: on a ring created
/// with [`RingOptions::blocking`](crate::RingOptions::blocking) it sleeps on
/// the futex in the ring's memory until woken, otherwise it sleeps with a
/// growing back-off (10 µs to about 1 ms) between polls.
///
/// Whatever the strategy, every wait ends at its timeout, and an SPSC wait
/// checks between slices of at most 10 ms whether the other role is still
/// held by a live process (see
/// [`PopError::PeerGone`](crate::PopError::PeerGone)).
///
/// An SPSC blocking call whose strategy starts by yielding (the default
/// does) makes that first yield before it sets up the wait, before it even
/// reads the clock: on a CPU shared with the other side, the answer is
/// usually there when the yield returns, and a blocking round trip then
/// costs one `sched_yield` on each side and little else. That yield counts
/// among the strategy's `yields`, and the timeout counts from after it: such
/// a call may give up one yield later than its timeout, never earlier.
///
/// The strategy belongs to the handle, in this process only (it is not
/// stored in shared memory): each process, and each handle, chooses its own.
/// Set it with [`RingOptions::wait_strategy`](crate::RingOptions::wait_strategy)
/// when creating the ring, or on a handle with
/// [`SpscRing::with_wait_strategy`](crate::SpscRing::with_wait_strategy),
/// [`Producer::set_wait_strategy`](crate::Producer::set_wait_strategy),
/// [`Consumer::set_wait_strategy`](crate::Consumer::set_wait_strategy) and
/// [`MpmcRing::with_wait_strategy`](crate::MpmcRing::with_wait_strategy).
///
/// Which to choose:
///
/// - The default, [`DEFAULT`](WaitStrategy::DEFAULT) =
///   `SpinYieldThenPark { spins: 0, yields: 64 }`: poll with a
///   `sched_yield` between polls for some tens of microseconds, then sleep.
///   A yield hands the CPU to the other side when it waits for the same
///   CPU, and costs a fraction of a microsecond when it runs elsewhere, so
///   a quick answer is caught either way; a slow one costs no CPU. It does
///   not spin: spinning pays only when the other side runs on another core
///   at that very moment, and on a shared or busy core (a 2-core CI
///   machine, a process pinned next to its peer) every spin delays the
///   side it waits for. On a 2-vCPU machine the blocking round trip
///   between two processes was fastest this way, on one core and on two.
/// - `SpinYieldThenPark { spins: 64, .. }` or more: for two sides on cores
///   of their own, where a microsecond of spinning answers sooner than a
///   syscall.
/// - [`Spin`](WaitStrategy::Spin): the lowest latency, for two sides pinned
///   to cores of their own. It burns its CPU for the whole wait, and when
///   the other side needs the same CPU it delays it by a whole time slice.
/// - [`SpinThenYield`](WaitStrategy::SpinThenYield): never sleeps, but lets
///   other threads run; for latency-sensitive sides that may share cores.
///
/// # Examples
///
/// ```
/// use shm_ring::{RingOptions, SpscRing, WaitStrategy};
/// let opts = RingOptions::new()
///     .blocking(true)
///     .wait_strategy(WaitStrategy::SpinYieldThenPark { spins: 0, yields: 4 });
/// let region = shm_segment::HeapRegion::new(SpscRing::<u64>::required_size(8));
/// let ring = SpscRing::<u64, _>::create(region, 8, opts)?;
/// let rx = ring.consumer()?;
/// assert_eq!(rx.wait_strategy(), WaitStrategy::SpinYieldThenPark { spins: 0, yields: 4 });
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Busy-poll for the whole wait, with a pause hint between polls; never
    /// yields the CPU, never sleeps.
    Spin,
    /// Spin for 64 polls, then yield the CPU between polls; never sleeps.
    SpinThenYield,
    /// Spin for `spins` polls, yield for `yields` more, then park (sleep
    /// until woken, in slices).
    SpinYieldThenPark {
        /// Polls with a pause hint before yielding.
        spins: u32,
        /// Polls with a `sched_yield(2)` before parking.
        yields: u32,
    },
}

/// Spins of [`WaitStrategy::SpinThenYield`].
const SPINS: u32 = 64;

impl WaitStrategy {
    /// The default: `SpinYieldThenPark { spins: 0, yields: 64 }` (see
    /// [which to choose](WaitStrategy)).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::WaitStrategy;
    /// assert_eq!(WaitStrategy::default(), WaitStrategy::DEFAULT);
    /// ```
    pub const DEFAULT: WaitStrategy = WaitStrategy::SpinYieldThenPark {
        spins: 0,
        yields: 64,
    };

    /// Whether a blocking call that may wait `timeout` hands its CPU over
    /// first, before it sets up the wait (see [`hand_off`]): the strategy
    /// starts by yielding (the default does) and the timeout is not zero.
    #[inline]
    pub(crate) fn yields_first(self, timeout: Duration) -> bool {
        !timeout.is_zero() && self.step(0) == Step::Yield
    }

    /// What poll number `round` (from 0) does before the next poll.
    #[inline]
    fn step(self, round: u32) -> Step {
        let (spins, yields) = match self {
            WaitStrategy::Spin => return Step::Spin,
            WaitStrategy::SpinThenYield => (SPINS, u32::MAX),
            WaitStrategy::SpinYieldThenPark { spins, yields } => (spins, yields),
        };
        if round < spins {
            Step::Spin
        } else if round - spins < yields {
            Step::Yield
        } else {
            Step::Park
        }
    }
}

impl Default for WaitStrategy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Spin,
    Yield,
    Park,
}

// The sleeper count, packed in one 64-bit word so that one CAS changes all:
// bits 0..24 the count of registered sleepers, bits 24..44 a ticket bumped by
// every registration, bits 44..64 the generation, bumped by every reset.
const COUNT_BITS: u32 = 24;
const TICKET_BITS: u32 = 20;
pub(crate) const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TICKET_SHIFT: u32 = COUNT_BITS;
const TICKET_MASK: u64 = ((1 << TICKET_BITS) - 1) << TICKET_SHIFT;
const GEN_SHIFT: u32 = COUNT_BITS + TICKET_BITS;

/// The word after one more registration (count and ticket up by one, each
/// wrapping inside its field); `None` when the count is full.
fn registered(w: u64) -> Option<u64> {
    if w & COUNT_MASK == COUNT_MASK {
        return None;
    }
    let ticket = (w.wrapping_add(1 << TICKET_SHIFT)) & TICKET_MASK;
    Some(((w & !TICKET_MASK) + 1) | ticket)
}

/// The word after a reset: the next generation, no sleepers.
fn reset(w: u64) -> u64 {
    ((w >> GEN_SHIFT).wrapping_add(1) << GEN_SHIFT) | (w & TICKET_MASK)
}

/// A futex word and the count of those sleeping on it. Plain std atomics
/// even under loom: the futex needs a real address, and the models do not
/// block.
#[repr(C)]
#[derive(Default)]
pub(crate) struct WaitWords {
    /// Bumped by a notifier that saw sleepers; sleepers wait on its value.
    seq: AtomicU32,
    /// Unused; keeps `waiters` 8-aligned with no implicit padding.
    _reserved: AtomicU32,
    /// The sleepers: count, ticket and generation (see `registered`, `reset`).
    /// Notifiers skip the syscall when the count is 0.
    waiters: StdAtomicU64,
}

/// Where the futex word is in [`WaitWords`] (for `layout`).
#[cfg(not(loom))]
pub(crate) const SEQ_AT: usize = std::mem::offset_of!(WaitWords, seq);
/// Where the sleeper count is in [`WaitWords`] (for `layout`).
#[cfg(not(loom))]
pub(crate) const WAITERS_AT: usize = std::mem::offset_of!(WaitWords, waiters);

/// What the blocking machinery did on the calling thread, for tests of it
/// (see [`thread_counts`]). Not part of the stable API.
///
/// # Examples
///
/// ```
/// let before = shm_ring::thread_counts();
/// let ring = shm_ring::MpmcRing::<u8>::new_heap(1)?;
/// ring.push(1).unwrap(); // nobody sleeps: no syscall
/// assert_eq!(shm_ring::thread_counts().futex_wakes, before.futex_wakes);
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitCounts {
    /// `FUTEX_WAKE` syscalls made by pushes and pops on this thread.
    pub futex_wakes: u64,
    /// Parks of blocking calls on this thread: futex sleeps, or back-off
    /// sleeps on a ring without futexes.
    pub parks: u64,
    /// `sched_yield` calls of blocking calls on this thread.
    pub yields: u64,
}

thread_local! {
    static COUNTS: Cell<WaitCounts> = const {
        Cell::new(WaitCounts { futex_wakes: 0, parks: 0, yields: 0 })
    };
}

/// The calling thread's [`WaitCounts`] so far (thread-local, so that tests
/// running side by side do not see each other's). Not part of the stable API.
///
/// # Examples
///
/// See [`WaitCounts`].
#[doc(hidden)]
pub fn thread_counts() -> WaitCounts {
    COUNTS.with(Cell::get)
}

fn counted(f: impl FnOnce(&mut WaitCounts)) {
    COUNTS.with(|c| {
        let mut counts = c.get();
        f(&mut counts);
        c.set(counts);
    });
}

impl WaitWords {
    /// After publishing: wake sleepers, with no syscall when there are none.
    /// Out of line on purpose: only blocking rings call it, and keeping it
    /// out of `push`/`pop` lets those inline into their callers.
    #[inline(never)]
    pub(crate) fn notify(&self) {
        // SYNC POINT: this fence and the one in `park` order "publish
        // position, then read waiters" against "count myself, then re-read the
        // position": at least one side sees the other, so no wake-up is lost.
        fence(Ordering::SeqCst);
        let seen = self.waiters.load(Ordering::Relaxed);
        if seen & COUNT_MASK == 0 {
            return;
        }
        // SYNC POINT: Release pairs with the Acquire load of `seq` in `park`:
        // a sleeper whose registration we saw (in `seen`) read `seq` before
        // this bump, so its futex_wait returns at once (EAGAIN) unless it is
        // already queued, in which case the wake below counts it.
        self.seq.fetch_add(1, Ordering::Release);
        counted(|c| c.futex_wakes += 1);
        if let Ok(0) = shm_sys::futex_wake(&self.seq, u32::MAX) {
            // SYNC POINT (healing): we saw sleepers and woke nobody. Every
            // registration in `seen` belongs to a process that is dead, or
            // awake (woken by another notifier, or timed out) and about to
            // unregister, or about to call futex_wait with a stale value of
            // `seq` (EAGAIN, above): none is asleep. So the count may go back
            // to 0 in a new generation: a live one unregisters nothing (its
            // generation is gone) and registers again if it still has to
            // wait. The CAS fails if anyone registered or unregistered since
            // `seen` (every registration bumps the ticket, so a leave-and-
            // come-back does not look unchanged); then the next waker retries.
            let _ = self.waiters.compare_exchange(
                seen,
                reset(seen),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Counts the caller as a sleeper; returns the generation to unregister
    /// from, or `None` when the count is full (a corrupted word).
    fn register(&self) -> Option<u64> {
        let mut w = self.waiters.load(Ordering::Relaxed);
        loop {
            let next = registered(w)?;
            match self
                .waiters
                .compare_exchange_weak(w, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return Some(w >> GEN_SHIFT),
                Err(now) => w = now,
            }
        }
    }

    /// Takes back a registration of generation `gen`, unless a waker reset
    /// the count since (then it is no longer counted).
    fn unregister(&self, gen: u64) {
        let mut w = self.waiters.load(Ordering::Relaxed);
        while w >> GEN_SHIFT == gen && w & COUNT_MASK != 0 {
            match self
                .waiters
                .compare_exchange_weak(w, w - 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }

    /// One futex sleep of at most `slice`, registered as a sleeper; `attempt`
    /// is re-run after registering, so a publish that missed our count is
    /// seen. Returns what `attempt` got.
    fn park<T>(&self, slice: Duration, attempt: &mut impl FnMut() -> Option<T>) -> Option<T> {
        let seq = self.seq.load(Ordering::Acquire);
        let Some(gen) = self.register() else {
            // A corrupted count: do not sleep on a futex nobody will wake.
            std::thread::sleep(slice.min(Duration::from_millis(1)));
            return attempt();
        };
        fence(Ordering::SeqCst);
        let got = attempt();
        if got.is_none() {
            let _ = shm_sys::futex_wait(&self.seq, seq, Some(slice));
        }
        self.unregister(gen);
        got
    }

    /// The sleeper count (tests).
    #[cfg(test)]
    fn count(&self) -> u64 {
        self.waiters.load(Ordering::Relaxed) & COUNT_MASK
    }
}

/// Whether an owner word says "released" or names a process that is gone.
/// 0 (never taken) is not gone. A syscall for a live-looking word.
pub(crate) fn owner_gone(word: u64) -> bool {
    match word {
        0 => false,
        RELEASED => true,
        w => !ProcessId::from_word(w).is_alive(),
    }
}

/// The other SPSC role, watched between sleep slices.
pub(crate) struct Peer<'a> {
    /// Its owner word in the control block.
    pub(crate) owner: &'a AtomicU64,
    /// The handle's memo of the last owner word found dead (0: none): a
    /// dead process never comes back, so that word needs no second syscall.
    pub(crate) dead: &'a mut u64,
}

/// Whether the other role is gone by what its owner word alone says
/// (released, or a holder already found dead: `dead` is the handle's memo,
/// see [`Peer::dead`]); no syscall.
#[inline]
pub(crate) fn gone_cheap(owner: &AtomicU64, dead: u64) -> bool {
    let w = owner.load(Ordering::Acquire);
    w == RELEASED || (w != 0 && w == dead)
}

/// The first step of an SPSC blocking call whose strategy
/// [yields first](WaitStrategy::yields_first), before any of the wait is set
/// up: one `sched_yield(2)`, for the caller to retry at once.
///
/// On one CPU shared with the other side (both pinned to it, or a busy
/// machine) this yield is what lets the other side run and answer, and the
/// answer is usually there when it returns: a blocking round trip is then
/// one yield on each side, and nothing else costs as much. Setting up the
/// wait first (reading the clock, the handle's reference count, the
/// watched peer) cost about 5% of such a round trip (two processes on one
/// CPU of a 2-vCPU KVM machine), so it comes after this yield, and the
/// caller continues with [`Wait::until_from`] at round 1 if the retry fails:
/// the strategy's count of yields includes this one, and the timeout counts
/// from after it (a wait may last one yield longer than its timeout, never
/// shorter). Like the wait's first round, it is skipped when the peer is
/// already gone by its owner word, which it reads first.
#[inline]
pub(crate) fn hand_off(
    strategy: WaitStrategy,
    timeout: Duration,
    owner: &AtomicU64,
    dead: u64,
) -> bool {
    let handed = strategy.yields_first(timeout) && !gone_cheap(owner, dead);
    if handed {
        counted(|c| c.yields += 1);
        std::thread::yield_now();
    }
    handed
}

impl Peer<'_> {
    /// Gone by what the word alone says (released, or a holder already found dead).
    fn gone_cheap(&self) -> bool {
        gone_cheap(self.owner, *self.dead)
    }

    /// Gone, asking the kernel about the holder (a syscall).
    fn gone(&mut self) -> bool {
        let w = self.owner.load(Ordering::Acquire);
        if w == *self.dead && w != 0 {
            return true;
        }
        let gone = owner_gone(w);
        if gone && w != RELEASED {
            *self.dead = w;
        }
        gone
    }
}

/// How a wait ended.
pub(crate) enum Waited<T> {
    /// `attempt` succeeded.
    Ready(T),
    /// The timeout passed.
    TimedOut,
    /// The other role is released or its holder dead, and `attempt` still fails.
    PeerGone,
}

/// Everything a wait needs besides the words and the attempt.
pub(crate) struct Wait {
    /// The handle's strategy.
    pub(crate) strategy: WaitStrategy,
    /// Whether the ring was created with futex wake-ups.
    pub(crate) futex: bool,
}

impl Wait {
    /// Retries `attempt` until it succeeds, `timeout` has passed (a timeout
    /// too long for the clock, like `Duration::MAX`, waits as long as it
    /// takes), or `peer` is gone, waiting between tries as the strategy says
    /// on `words`. The peer is checked by its owner word before every sleep
    /// and by a syscall once per [`SLICE`]; when it is gone, `attempt` gets
    /// one last try, so what it published before going is still taken.
    pub(crate) fn until<T>(
        &self,
        words: &WaitWords,
        timeout: Duration,
        peer: Option<Peer<'_>>,
        attempt: impl FnMut() -> Option<T>,
    ) -> Waited<T> {
        self.until_from(0, words, timeout, peer, attempt)
    }

    /// [`until`](Self::until), going on from round `first` of the strategy:
    /// 1 after a [`hand_off`] (which did round 0, the peer check before it
    /// included), 0 otherwise.
    pub(crate) fn until_from<T>(
        &self,
        first: u32,
        words: &WaitWords,
        timeout: Duration,
        mut peer: Option<Peer<'_>>,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Waited<T> {
        if let Some(v) = attempt() {
            return Waited::Ready(v);
        }
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let mut next_check = start + SLICE;
        let mut now = start;
        let mut round = first;
        let mut spun = 0u32;
        let mut backoff = 0u32;
        let last_try = |attempt: &mut dyn FnMut() -> Option<T>| match attempt() {
            Some(v) => Waited::Ready(v),
            None => Waited::PeerGone,
        };
        // Here `attempt` just failed, and `now` is recent: read before the
        // attempt, or at most 64 spins (about a microsecond) before it.
        loop {
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(now) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Waited::TimedOut,
                },
                None => None,
            };
            if let Some(peer) = peer.as_mut() {
                let due = now >= next_check;
                if due {
                    next_check = now + SLICE;
                }
                if (round == 0 && peer.gone_cheap()) || (due && peer.gone()) {
                    return last_try(&mut attempt);
                }
            }
            let step = self.strategy.step(round);
            round = round.saturating_add(1);
            match step {
                Step::Spin => std::hint::spin_loop(),
                Step::Yield => {
                    counted(|c| c.yields += 1);
                    std::thread::yield_now();
                }
                Step::Park => {
                    if peer.as_ref().is_some_and(|p| p.gone_cheap()) {
                        return last_try(&mut attempt);
                    }
                    // Never past the deadline, and never past the next
                    // liveness check when there is a peer to watch.
                    let mut slice = remaining.map_or(SLICE, |left| left.min(SLICE));
                    if peer.is_some() {
                        slice = slice.min(next_check.saturating_duration_since(now));
                    }
                    counted(|c| c.parks += 1);
                    if self.futex {
                        if let Some(v) = words.park(slice, &mut attempt) {
                            return Waited::Ready(v);
                        }
                    } else {
                        let nap = Duration::from_micros(10 << backoff);
                        backoff = (backoff + 1).min(7);
                        std::thread::sleep(nap.min(slice));
                    }
                }
            }
            if let Some(v) = attempt() {
                return Waited::Ready(v);
            }
            // Reading the clock costs as much as a spin: spins read it
            // only every 64 rounds.
            spun = spun.wrapping_add(u32::from(step == Step::Spin));
            if step != Step::Spin || spun % 64 == 0 {
                now = Instant::now();
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Where the words are, as the tests that play a dead process poke at
    /// them (`tests/common`): the futex word first, the count at byte 8.
    #[test]
    fn words_are_where_the_tests_look() {
        assert_eq!(std::mem::offset_of!(WaitWords, seq), 0);
        assert_eq!(std::mem::offset_of!(WaitWords, waiters), 8);
        assert_eq!(std::mem::size_of::<WaitWords>(), 16);
    }

    #[test]
    fn packing_keeps_the_fields_apart() {
        let w = registered(0).unwrap();
        assert_eq!((w & COUNT_MASK, (w & TICKET_MASK) >> TICKET_SHIFT), (1, 1));
        let full = COUNT_MASK | TICKET_MASK;
        assert_eq!(registered(full), None);
        // The ticket wraps inside its field; the generation is untouched.
        let w = registered((5 << GEN_SHIFT) | TICKET_MASK).unwrap();
        assert_eq!((w >> GEN_SHIFT, w & TICKET_MASK, w & COUNT_MASK), (5, 0, 1));
        let r = reset((5 << GEN_SHIFT) | (3 << TICKET_SHIFT) | 7);
        assert_eq!(
            (
                r >> GEN_SHIFT,
                (r & TICKET_MASK) >> TICKET_SHIFT,
                r & COUNT_MASK
            ),
            (6, 3, 0)
        );
        assert_eq!(reset(u64::MAX) >> GEN_SHIFT, 0, "the generation wraps");
    }

    #[test]
    fn a_reset_voids_older_registrations_only() {
        let words = WaitWords::default();
        let wakes = || thread_counts().futex_wakes;
        let before = wakes();
        let old = words.register().unwrap();
        // A waker that wakes nobody (nobody sleeps on the futex) resets.
        words.notify();
        assert_eq!(words.count(), 0);
        assert_eq!(wakes(), before + 1);
        let new = words.register().unwrap();
        words.unregister(old); // voided: must not take the new one away
        assert_eq!(words.count(), 1);
        words.unregister(new);
        assert_eq!(words.count(), 0);
        words.notify();
        assert_eq!(wakes(), before + 1, "no sleepers, no syscall");
    }

    #[test]
    fn strategies_step_as_documented() {
        let s = WaitStrategy::SpinYieldThenPark {
            spins: 2,
            yields: 1,
        };
        let steps: Vec<_> = (0..5).map(|r| s.step(r)).collect();
        assert!(steps == [Step::Spin, Step::Spin, Step::Yield, Step::Park, Step::Park]);
        assert!(WaitStrategy::Spin.step(u32::MAX) == Step::Spin);
        assert!(WaitStrategy::SpinThenYield.step(SPINS - 1) == Step::Spin);
        assert!(WaitStrategy::SpinThenYield.step(u32::MAX) == Step::Yield);
        let park = WaitStrategy::SpinYieldThenPark {
            spins: 0,
            yields: 0,
        };
        assert!(park.step(0) == Step::Park);
        let huge = WaitStrategy::SpinYieldThenPark {
            spins: u32::MAX,
            yields: u32::MAX,
        };
        assert!(huge.step(u32::MAX) == Step::Yield);
    }
}
