//! Fault injection for tests (cargo feature `fault-injection`, off by
//! default; this crate's own tests turn it on through a dev-dependency on
//! itself). Not part of the API: hidden, unstable, and absent without the
//! feature.
//!
//! A thread arms one [`Point`] with an [`Action`]; its next MPMC push or pop
//! that gets there (right after the CAS that claimed its positions, before
//! it writes or reads them) runs the action once. `Call(f)` runs `f` there,
//! for example to tell a parent process "claimed" and then sleep until it is
//! killed. `Die` simulates the death of the thread's process there: its lane
//! passes to a process that does not exist, and the operation returns
//! without publishing (push reports success, pop and `pop_into` report
//! nothing taken), as if the process had been killed at that instant.

use std::cell::Cell;

/// Where an armed thread stops.
///
/// # Examples
///
/// See [`arm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// An MPMC push (`push`, `push_slice`, `push_exact`) that has claimed its
    /// positions and not yet written or published them.
    PushClaimed,
    /// An MPMC pop (`pop`, `pop_into`) that has claimed its positions and not
    /// yet read or released them.
    PopClaimed,
}

/// What happens there.
///
/// # Examples
///
/// ```
/// use shm_ring::fault::{arm, Action, Point};
/// fn claimed() {
///     eprintln!("claimed, not yet published");
/// }
/// let ring = shm_ring::MpmcRing::<u64>::new_heap(4)?;
/// arm(Point::PushClaimed, Action::Call(claimed));
/// ring.push(1).unwrap(); // prints, then publishes as usual
/// assert_eq!(ring.pop(), Ok(1));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Call this function (it may never return).
    Call(fn()),
    /// Simulate the death of this process at that instant (see the module docs).
    Die,
}

#[cfg(not(loom))]
std::thread_local! {
    static ARMED: Cell<Option<(Point, Action)>> = const { Cell::new(None) };
}
#[cfg(loom)]
loom::thread_local! {
    static ARMED: Cell<Option<(Point, Action)>> = Cell::new(None);
}

/// Arms `point` with `action` for this thread's next operation that gets there.
///
/// # Examples
///
/// ```
/// use shm_ring::fault::{arm, Action, Point};
/// let ring = shm_ring::MpmcRing::<u64>::new_heap(4)?;
/// arm(Point::PushClaimed, Action::Die);
/// ring.push(1).unwrap(); // claimed position 0, then "died" before publishing it
/// ring.push(2).unwrap(); // position 1
/// // The hole at 0 was left by a dead process: it is skipped.
/// assert_eq!(ring.pop(), Ok(2));
/// assert_eq!(ring.recovered().skipped, 1);
/// # Ok::<(), shm_ring::RingError>(())
/// ```
pub fn arm(point: Point, action: Action) {
    ARMED.with(|a| a.set(Some((point, action))));
}

/// Disarms this thread.
///
/// # Examples
///
/// ```
/// shm_ring::fault::arm(shm_ring::fault::Point::PopClaimed, shm_ring::fault::Action::Die);
/// shm_ring::fault::disarm();
/// ```
pub fn disarm() {
    ARMED.with(|a| a.set(None));
}

/// At `point`: whether this thread dies here (after running a `Call`).
#[inline]
pub(crate) fn hit(point: Point) -> bool {
    let armed = ARMED.with(|a| match a.get() {
        Some((p, action)) if p == point => {
            a.set(None);
            Some(action)
        }
        _ => None,
    });
    match armed {
        None => false,
        Some(Action::Call(f)) => {
            f();
            false
        }
        Some(Action::Die) => true,
    }
}

/// The owner word of a lane whose process "died" by [`Action::Die`]: pid 0,
/// which no user process has.
pub(crate) const SIMULATED_DEAD: u64 = 1 << 22;

/// Whether `word` names a process that died by [`Action::Die`].
pub(crate) fn is_simulated_dead(word: u64) -> bool {
    word != 0 && word & ((1 << 22) - 1) == 0
}
