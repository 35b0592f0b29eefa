//! The last single item, carried in the tail's cache line.
//!
//! A consumer that has caught up polls the tail; when the producer pushes,
//! reading the item from its slot costs a second cache-line transfer after
//! the tail's, and the producer's next write to that slot a third. So `push`
//! also copies a small item (at most [`WORDS`] words, alignment at most 8)
//! into the tail's line, and a `pop` that finds exactly that item ready
//! takes it from there: one transfer per hand-off, what a bare cache line
//! bounced between two threads costs. The slot still holds the item; the
//! copy is only a shortcut, checked before use.
//!
//! The check is a sequence lock whose closing store is the tail itself: the
//! producer stores `begun = p + 1` before it writes the copy of position
//! `p`, and the tail `p + 1` (Release) after. A consumer that read the tail
//! `t` (Acquire) reads the words, then `begun` after an Acquire fence: if a
//! word came from a later copy, `begun` is already past `t`. `begun == t`
//! therefore proves the words are position `t - 1`'s. Pushes that write no
//! copy (bulk calls, chunks) leave `begun` behind the tail, so it never
//! matches again until the next single push. Zeroed memory (a new ring, or
//! one a version without this copy made) never matches either: `begun == 0`
//! could only match a tail of 0, which a ring with an item reaches only by
//! wrapping around, and a tail of 0 never takes the copy.

use std::mem::{align_of, size_of};
use std::sync::atomic::Ordering;

use crate::sync::{fence, AtomicU64};

/// Words of item the tail's line has room for, after the position, the
/// owner and `begun`.
pub(crate) const WORDS: usize = 5;

/// The copy: in the padding of the tail's cache line (see the module docs).
#[repr(C)]
pub(crate) struct Latest {
    /// Position + 1 of the last copy begun; 0 before the first.
    begun: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// Whether items of type `T` travel in the tail's line.
#[inline]
pub(crate) const fn fits<T>() -> bool {
    size_of::<T>() > 0 && size_of::<T>() <= WORDS * 8 && align_of::<T>() <= 8
}

/// Words `T` takes, rounded up.
#[inline]
const fn words_of<T>() -> usize {
    size_of::<T>().div_ceil(8)
}

impl Latest {
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Latest {
            begun: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Producer, for a single item at position `pos`, before it publishes
    /// the tail `pos + 1` (Release). Only for types that [`fits`].
    #[inline]
    pub(crate) fn offer<T: bytemuck::Pod>(&self, pos: u64, value: T) {
        debug_assert!(fits::<T>());
        let mut buf = [0u64; WORDS];
        bytemuck::bytes_of_mut(&mut buf)[..size_of::<T>()]
            .copy_from_slice(bytemuck::bytes_of(&value));
        self.begun.store(pos.wrapping_add(1), Ordering::Relaxed);
        // SYNC POINT: orders the store of `begun` before the words: a
        // consumer that reads any of them, then fences, sees `begun` (`take`).
        fence(Ordering::Release);
        for (w, b) in self.words.iter().zip(buf).take(words_of::<T>()) {
            w.store(b, Ordering::Relaxed);
        }
    }

    /// Consumer: the item of position `tail - 1`, if the copy holds it
    /// intact. `tail` was read with Acquire. Only for types that [`fits`].
    #[inline]
    pub(crate) fn take<T: bytemuck::Pod>(&self, tail: u64) -> Option<T> {
        debug_assert!(fits::<T>());
        let mut buf = [0u64; WORDS];
        for (b, w) in buf.iter_mut().zip(&self.words).take(words_of::<T>()) {
            *b = w.load(Ordering::Relaxed);
        }
        // SYNC POINT: pairs with the fence in `offer`: if a word above came
        // from a later copy, the load below sees that copy's `begun`.
        fence(Ordering::Acquire);
        // `begun` 0 is also "no copy yet" (zeroed memory): a tail of 0 (only
        // ever reached by wrapping around) does not use the copy.
        if tail == 0 || self.begun.load(Ordering::Relaxed) != tail {
            return None;
        }
        Some(bytemuck::pod_read_unaligned(
            &bytemuck::bytes_of(&buf)[..size_of::<T>()],
        ))
    }
}
