//! The primitives the ring algorithms use, swapped for loom's under
//! `cfg(loom)` so that the models check the real code.
//!
//! In normal builds `AtomicU64` is std's and a [`ValueCell`] is plain memory
//! (`repr(transparent)` over `UnsafeCell<T>`, so bulk copies are `memcpy`).
//! Under loom both are tracked, and `create` constructs them in place.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::fence;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::fence;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::AtomicU64;

/// A slot's value. Who may touch it is decided by the ring protocol (the
/// position's owner), not by Rust borrows, hence the raw-pointer API.
#[repr(transparent)]
pub(crate) struct ValueCell<T>(
    #[cfg(not(loom))] std::cell::UnsafeCell<T>,
    #[cfg(loom)] loom::cell::UnsafeCell<T>,
);

impl<T: Copy> ValueCell<T> {
    /// Prepares a cell in freshly zeroed shared memory.
    ///
    /// # Safety
    ///
    /// `cell` is valid for writes and not yet shared.
    #[cfg_attr(not(loom), allow(unused_variables))]
    pub(crate) unsafe fn init(cell: *mut Self, zero: T) {
        #[cfg(loom)]
        // SAFETY: valid for writes and unshared (caller's promise).
        unsafe {
            cell.write(ValueCell(loom::cell::UnsafeCell::new(zero)))
        };
    }

    /// Runs `f` with a pointer to the value, for writing.
    ///
    /// # Safety
    ///
    /// `cell` is valid, and the caller owns its position under the ring
    /// protocol, so nobody else accesses the value meanwhile.
    #[inline]
    pub(crate) unsafe fn with_mut<R>(cell: *mut Self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(loom))]
        return f(cell.cast());
        #[cfg(loom)]
        // SAFETY: a valid, initialised cell (caller's promise).
        return unsafe { (*cell).0.with_mut(f) };
    }

    /// Runs `f` with a pointer to the value, for reading.
    ///
    /// # Safety
    ///
    /// As for [`with_mut`](Self::with_mut).
    #[inline]
    pub(crate) unsafe fn with<R>(cell: *const Self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(not(loom))]
        return f(cell.cast());
        #[cfg(loom)]
        // SAFETY: a valid, initialised cell (caller's promise).
        return unsafe { (*cell).0.with(f) };
    }

    /// Writes `value`.
    ///
    /// # Safety
    ///
    /// As for [`with_mut`](Self::with_mut).
    #[inline]
    pub(crate) unsafe fn write(cell: *mut Self, value: T) {
        // SAFETY: forwarded contract; the pointer is valid and T is Copy.
        unsafe { Self::with_mut(cell, |p| p.write(value)) }
    }

    /// Reads the value.
    ///
    /// # Safety
    ///
    /// As for [`with_mut`](Self::with_mut); every bit pattern is a valid `T`.
    #[inline]
    pub(crate) unsafe fn read(cell: *const Self) -> T {
        // SAFETY: forwarded contract.
        unsafe { Self::with(cell, |p| p.read()) }
    }

    /// Copies `values` into `values.len()` consecutive cells from `first`.
    ///
    /// # Safety
    ///
    /// All those cells are valid and owned by the caller (see `with_mut`).
    #[inline]
    pub(crate) unsafe fn write_run(first: *mut Self, values: &[T]) {
        #[cfg(not(loom))]
        // SAFETY: transparent layout, so the cells are a `[T]` run of
        // `values.len()` elements; `values` is local memory, so they do not
        // overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(values.as_ptr(), first.cast::<T>(), values.len())
        };
        #[cfg(loom)]
        for (i, v) in values.iter().enumerate() {
            // SAFETY: forwarded contract, cell by cell.
            unsafe { Self::write(first.add(i), *v) };
        }
    }

    /// A run that wraps around the end of the slot array: the first `split`
    /// values to the cells from `first`, the rest to those from `second`.
    /// Out of line: most batches do not wrap, and keeping this copy out of
    /// the callers keeps them small enough to inline.
    ///
    /// # Safety
    ///
    /// As for [`write_run`](Self::write_run), for both runs; `split <= values.len()`.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn write_run_split(
        first: *mut Self,
        second: *mut Self,
        values: &[T],
        split: usize,
    ) {
        let (a, b) = values.split_at(split);
        // SAFETY: forwarded contract, run by run.
        unsafe {
            Self::write_run(first, a);
            Self::write_run(second, b);
        }
    }

    /// [`read_run`](Self::read_run) for a run that wraps around (see
    /// [`write_run_split`](Self::write_run_split)).
    ///
    /// # Safety
    ///
    /// As for [`read_run`](Self::read_run), for both runs; `split <= out.len()`.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn read_run_split(
        first: *const Self,
        second: *const Self,
        out: &mut [T],
        split: usize,
    ) {
        let (a, b) = out.split_at_mut(split);
        // SAFETY: forwarded contract, run by run.
        unsafe {
            Self::read_run(first, a);
            Self::read_run(second, b);
        }
    }

    /// Copies `out.len()` consecutive cells from `first` into `out`.
    ///
    /// # Safety
    ///
    /// As for [`write_run`](Self::write_run).
    #[inline]
    pub(crate) unsafe fn read_run(first: *const Self, out: &mut [T]) {
        #[cfg(not(loom))]
        // SAFETY: as in `write_run`, the other way round.
        unsafe {
            std::ptr::copy_nonoverlapping(first.cast::<T>(), out.as_mut_ptr(), out.len())
        };
        #[cfg(loom)]
        for (i, slot) in out.iter_mut().enumerate() {
            // SAFETY: forwarded contract, cell by cell.
            *slot = unsafe { Self::read(first.add(i)) };
        }
    }
}
