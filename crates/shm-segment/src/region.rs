//! The [`Region`] trait: what every mapping in this crate is, and the safe,
//! copying access that it gives.

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bytemuck::Pod;

use crate::copy;
use crate::cursor::Cursor;
use crate::error::{Error, Result, Target};

/// Whether a mapping may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// Read and write (`PROT_READ|PROT_WRITE`; SysV: no flag).
    #[default]
    ReadWrite,
    /// Read only (`PROT_READ`; SysV: `SHM_RDONLY`). Writes return [`Error::ReadOnly`].
    ReadOnly,
}

/// A span of memory that other processes may read and write at any time.
///
/// Because another process may change the bytes while we look at them, a
/// `Region` never hands out a safe `&[u8]`. Safe access copies: [`read_at`],
/// [`write_at`], [`read_pod`], [`write_pod`] and the [`cursor`]. Every access is
/// bounds-checked, and a write to a read-only mapping is an error, never a
/// `SIGSEGV`. Slices and typed references over the live memory come only from
/// the `unsafe` methods ([`as_slice`], [`view`], …), whose callers promise
/// that nobody writes the bytes while the borrow lives.
///
/// The safe copies are race-free in Rust's memory model, also between threads
/// of one process: they read and write the shared bytes with relaxed atomic
/// accesses (word-wise, and `rep movsb` for large copies on x86-64), at
/// `memcpy` speed from about a kilobyte on. A copy that overlaps a concurrent
/// write can still see a mix of old and new bytes (it tears, byte-wise, but is
/// never undefined behaviour); synchronise through the atomics
/// ([`atomic_u32`], [`atomic_u64`]) as the rings and the pool do. The only
/// plain, non-atomic access is behind the `unsafe` slices and views, whose
/// contract excludes concurrent writers.
///
/// # Safety
///
/// An implementation promises, for as long as the value lives (and these are
/// the only promises the safe methods rely on; the checks they run are in
/// [`RegionChecks`], which no implementation can override):
/// - [`as_ptr`](Region::as_ptr) is non-null, does not change, and points to
///   [`len`](Region::len) bytes that are readable;
/// - if [`is_read_only`](Region::is_read_only) is false, those bytes are writable;
/// - the memory is not freed or unmapped while the value lives.
///
/// [`read_at`]: Region::read_at
/// [`write_at`]: Region::write_at
/// [`read_pod`]: Region::read_pod
/// [`write_pod`]: Region::write_pod
/// [`cursor`]: Region::cursor
/// [`as_slice`]: Region::as_slice
/// [`view`]: Region::view
/// [`atomic_u32`]: Region::atomic_u32
/// [`atomic_u64`]: Region::atomic_u64
///
/// # Examples
///
/// ```
/// use shm_segment::{HeapRegion, Region};
///
/// let region = HeapRegion::new(64);
/// region.write_at(8, b"abc")?;
/// region.write_pod(16, &0xdead_beef_u32)?;
/// assert_eq!(region.read_pod::<u32>(16)?, 0xdead_beef);
/// assert!(region.write_at(62, b"abc").is_err()); // would pass the end: nothing written
/// # Ok::<(), shm_segment::Error>(())
/// ```
pub unsafe trait Region {
    /// The first byte of the mapping.
    fn as_ptr(&self) -> *mut u8;

    /// The mapping's length in bytes.
    fn len(&self) -> usize;

    /// Whether writes are refused.
    fn is_read_only(&self) -> bool;

    /// The segment's name, for error messages.
    fn target(&self) -> Target;

    /// Whether the region has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`; all or nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(16);
    /// r.write_at(0, b"hi")?;
    /// let mut buf = [0u8; 2];
    /// r.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check_range("read", offset, buf.len())?;
        // SAFETY: the range is inside the region (checked above), which is
        // readable for its whole length (trait contract); all access to it
        // from safe code is atomic, as `copy_from_shared` requires.
        unsafe { copy::copy_from_shared(self.as_ptr().add(offset), buf) };
        Ok(())
    }

    /// Copies `data` into the region at `offset`; all or nothing: a write that
    /// would pass the end, or any write to a read-only mapping, writes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(4);
    /// assert!(r.write_at(2, b"abc").is_err());
    /// assert_eq!(r.to_vec(), [0, 0, 0, 0]);
    /// ```
    fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable("write")?;
        self.check_range("write", offset, data.len())?;
        // SAFETY: in range and writable (checked above; trait contract); all
        // access to it from safe code is atomic. `data` cannot alias the
        // mapping: safe code never holds a slice of it.
        unsafe { copy::copy_to_shared(data, self.as_ptr().add(offset)) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(4);
    /// r.fill(1, 2, 0xff)?;
    /// assert_eq!(r.to_vec(), [0, 0xff, 0xff, 0]);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<()> {
        self.check_writable("fill")?;
        self.check_range("fill", offset, len)?;
        // SAFETY: in range and writable (checked above); all access to it
        // from safe code is atomic.
        unsafe { copy::fill_shared(self.as_ptr().add(offset), byte, len) };
        Ok(())
    }

    /// A copy of the whole region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// assert_eq!(HeapRegion::new(3).to_vec(), vec![0, 0, 0]);
    /// ```
    fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.len()];
        self.read_at(0, &mut out)
            .expect("the whole region is in range");
        out
    }

    /// Reads a whole `T` at `offset` (any alignment) by copy.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(16);
    /// r.write_pod(3, &[1u16, 2, 3])?;
    /// assert_eq!(r.read_pod::<[u16; 3]>(3)?, [1, 2, 3]);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn read_pod<T: Pod>(&self, offset: usize) -> Result<T>
    where
        Self: Sized,
    {
        let mut value = T::zeroed();
        self.read_at(offset, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Writes a whole `T` at `offset` (any alignment) by copy.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(8);
    /// r.write_pod(0, &1.5f64)?;
    /// assert_eq!(r.read_pod::<f64>(0)?, 1.5);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn write_pod<T: Pod>(&self, offset: usize, value: &T) -> Result<()>
    where
        Self: Sized,
    {
        self.write_at(offset, bytemuck::bytes_of(value))
    }

    /// Copies `out.len()` values of `T` starting at `offset` into `out`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(64);
    /// r.write_pod_slice(8, &[10u32, 20, 30])?;
    /// let mut out = [0u32; 3];
    /// r.read_pod_slice(8, &mut out)?;
    /// assert_eq!(out, [10, 20, 30]);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn read_pod_slice<T: Pod>(&self, offset: usize, out: &mut [T]) -> Result<()>
    where
        Self: Sized,
    {
        self.read_at(offset, bytemuck::cast_slice_mut(out))
    }

    /// Copies `values` into the region starting at `offset`; all or nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(8);
    /// assert!(r.write_pod_slice(0, &[1u64, 2]).is_err()); // 16 bytes do not fit
    /// ```
    fn write_pod_slice<T: Pod>(&self, offset: usize, values: &[T]) -> Result<()>
    where
        Self: Sized,
    {
        self.write_at(offset, bytemuck::cast_slice(values))
    }

    /// A shared reference to the atomic word at `offset`: the safe way to
    /// share state with other processes. Refused on read-only mappings (a
    /// store would fault); use [`load_u32`](Region::load_u32) there.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// use std::sync::atomic::Ordering;
    /// let r = HeapRegion::new(64);
    /// let word = r.atomic_u32(4)?;
    /// word.fetch_add(3, Ordering::AcqRel);
    /// assert_eq!(r.read_pod::<u32>(4)?, 3);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32>
    where
        Self: Sized,
    {
        self.check_writable("atomic_u32")?;
        let ptr = self.typed_ptr::<AtomicU32>("atomic_u32", offset, 1)?;
        // SAFETY: in range, aligned, writable and valid for the borrow of
        // `self` (checks above; trait contract). Every bit pattern is a valid
        // u32, and atomics are made for concurrent access from other threads
        // and processes.
        Ok(unsafe { &*ptr })
    }

    /// A shared reference to the 64-bit atomic word at `offset`; see
    /// [`atomic_u32`](Region::atomic_u32).
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// use std::sync::atomic::Ordering;
    /// let r = HeapRegion::new(64);
    /// r.atomic_u64(8)?.store(u64::MAX, Ordering::Release);
    /// assert_eq!(r.load_u64(8, Ordering::Acquire)?, u64::MAX);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64>
    where
        Self: Sized,
    {
        self.check_writable("atomic_u64")?;
        let ptr = self.typed_ptr::<AtomicU64>("atomic_u64", offset, 1)?;
        // SAFETY: as in `atomic_u32`.
        Ok(unsafe { &*ptr })
    }

    /// An atomic load of the word at `offset`; works on read-only mappings.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// use std::sync::atomic::Ordering;
    /// let r = HeapRegion::new(8);
    /// r.write_pod(4, &9u32)?;
    /// assert_eq!(r.load_u32(4, Ordering::Acquire)?, 9);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32>
    where
        Self: Sized,
    {
        let ptr = self.typed_ptr::<AtomicU32>("load_u32", offset, 1)?;
        // SAFETY: in range and aligned (checked); a load never writes, so a
        // read-only mapping is fine.
        Ok(unsafe { (*ptr).load(order) })
    }

    /// An atomic load of the 64-bit word at `offset`; works on read-only mappings.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// use std::sync::atomic::Ordering;
    /// assert_eq!(HeapRegion::new(8).load_u64(0, Ordering::Relaxed)?, 0);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64>
    where
        Self: Sized,
    {
        let ptr = self.typed_ptr::<AtomicU64>("load_u64", offset, 1)?;
        // SAFETY: in range and aligned (checked); a load never writes.
        Ok(unsafe { (*ptr).load(order) })
    }

    /// A cursor over the region that implements `Read`, `Write`, `Seek` and `BufRead`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// use std::io::{BufRead, Write};
    /// let r = HeapRegion::new(32);
    /// r.cursor().write_all(b"one\ntwo\n")?;
    /// let mut line = String::new();
    /// r.cursor().read_line(&mut line)?;
    /// assert_eq!(line, "one\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    fn cursor(&self) -> Cursor<&Self>
    where
        Self: Sized,
    {
        Cursor::new(self)
    }

    /// The whole region as a byte slice, with no copy.
    ///
    /// # Safety
    ///
    /// While the slice lives, no one (no thread, no other process) may write
    /// the region; a write would break the immutability `&[u8]` promises.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(4);
    /// // SAFETY: nobody else can see this heap region.
    /// let bytes = unsafe { r.as_slice() };
    /// assert_eq!(bytes, &[0, 0, 0, 0]);
    /// ```
    unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: valid for `len` bytes (trait contract); no writer while the
        // borrow lives (caller's promise).
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The whole region as a mutable byte slice, with no copy. Panics on a
    /// read-only mapping.
    ///
    /// # Safety
    ///
    /// While the slice lives, no one else (no thread, no other process, no
    /// other borrow from this region) may read or write the region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(4);
    /// // SAFETY: nobody else can see this heap region.
    /// unsafe { r.as_mut_slice() }.copy_from_slice(b"abcd");
    /// assert_eq!(r.to_vec(), b"abcd");
    /// ```
    #[allow(clippy::mut_from_ref)]
    unsafe fn as_mut_slice(&self) -> &mut [u8] {
        assert!(
            !self.is_read_only(),
            "{}: as_mut_slice on a read-only mapping",
            self.target()
        );
        // SAFETY: valid and writable for `len` bytes (trait contract, checked
        // above); exclusive while the borrow lives (caller's promise).
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len()) }
    }

    /// A typed reference to the `T` at `offset`, with no copy; bounds and
    /// alignment are checked.
    ///
    /// # Safety
    ///
    /// While the reference lives, no one may write the `T`'s bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(64);
    /// r.write_pod(8, &[7u32; 4])?;
    /// // SAFETY: nobody else can see this heap region.
    /// let v: &[u32; 4] = unsafe { r.view(8)? };
    /// assert_eq!(v, &[7; 4]);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    unsafe fn view<T: Pod>(&self, offset: usize) -> Result<&T>
    where
        Self: Sized,
    {
        let ptr = self.typed_ptr::<T>("view", offset, 1)?;
        // SAFETY: in range and aligned (checked); any bytes are a valid `T`
        // (Pod); no writer while it lives (caller's promise).
        Ok(unsafe { &*ptr })
    }

    /// A typed slice of `count` values of `T` at `offset`, with no copy.
    ///
    /// # Safety
    ///
    /// While the slice lives, no one may write its bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(64);
    /// r.write_pod_slice(0, &[1u16, 2, 3])?;
    /// // SAFETY: nobody else can see this heap region.
    /// assert_eq!(unsafe { r.view_slice::<u16>(0, 3)? }, &[1, 2, 3]);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    unsafe fn view_slice<T: Pod>(&self, offset: usize, count: usize) -> Result<&[T]>
    where
        Self: Sized,
    {
        let ptr = self.typed_ptr::<T>("view_slice", offset, count)?;
        // SAFETY: in range and aligned for `count` values (checked); Pod;
        // no writer while it lives (caller's promise).
        Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
    }

    /// A mutable typed reference to the `T` at `offset`, with no copy.
    ///
    /// # Safety
    ///
    /// While the reference lives, no one else may read or write the `T`'s bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// let r = HeapRegion::new(64);
    /// // SAFETY: nobody else can see this heap region.
    /// unsafe { *r.view_mut::<u64>(16)? = 42 };
    /// assert_eq!(r.read_pod::<u64>(16)?, 42);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    #[allow(clippy::mut_from_ref)]
    unsafe fn view_mut<T: Pod>(&self, offset: usize) -> Result<&mut T>
    where
        Self: Sized,
    {
        self.check_writable("view_mut")?;
        let ptr = self.typed_ptr::<T>("view_mut", offset, 1)?;
        // SAFETY: in range, aligned and writable (checked); Pod; exclusive
        // while it lives (caller's promise).
        Ok(unsafe { &mut *ptr })
    }
}

/// The bounds, alignment and writability checks that every safe access runs
/// before it dereferences [`Region::as_ptr`].
///
/// They live apart from [`Region`] and are implemented once for every region
/// by a blanket impl, so no implementation can override them: the `unsafe`
/// contract of [`Region`] is only about `as_ptr`, `len` and `is_read_only`,
/// and the checks that the provided methods and the upper layers trust are
/// always this code.
pub trait RegionChecks: Region {
    /// Checks that `offset .. offset + len` lies inside the region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, RegionChecks};
    /// let r = HeapRegion::new(16);
    /// assert!(r.check_range("read", 8, 8).is_ok());
    /// assert!(r.check_range("read", 8, 9).is_err());
    /// assert!(r.check_range("read", usize::MAX, 2).is_err());
    /// ```
    fn check_range(&self, op: &'static str, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::OutOfBounds {
                op,
                target: self.target(),
                offset,
                len,
                size: self.len(),
            }),
        }
    }

    /// Checks that the region may be written.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, RegionChecks};
    /// assert!(HeapRegion::new(16).check_writable("write").is_ok());
    /// ```
    fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.is_read_only() {
            Err(Error::ReadOnly {
                op,
                target: self.target(),
            })
        } else {
            Ok(())
        }
    }

    /// Checks bounds and alignment for a `T` (or `count` of them) at `offset`
    /// and returns a pointer to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, RegionChecks};
    /// let r = HeapRegion::new(64);
    /// assert!(r.typed_ptr::<u64>("view", 8, 1).is_ok());
    /// assert!(r.typed_ptr::<u64>("view", 4, 1).is_err()); // misaligned
    /// assert!(r.typed_ptr::<u64>("view", 8, 8).is_err()); // past the end
    /// ```
    fn typed_ptr<T>(&self, op: &'static str, offset: usize, count: usize) -> Result<*mut T> {
        let bytes = std::mem::size_of::<T>()
            .checked_mul(count)
            .ok_or(Error::OutOfBounds {
                op,
                target: self.target(),
                offset,
                len: usize::MAX,
                size: self.len(),
            })?;
        self.check_range(op, offset, bytes)?;
        // SAFETY: offset is in range (checked above), so the pointer stays
        // inside the mapping.
        let ptr = unsafe { self.as_ptr().add(offset) };
        if (ptr as usize) % std::mem::align_of::<T>() != 0 {
            return Err(Error::Misaligned {
                op,
                target: self.target(),
                offset,
                align: std::mem::align_of::<T>(),
            });
        }
        Ok(ptr.cast())
    }
}

impl<R: Region + ?Sized> RegionChecks for R {}

// SAFETY: forwards to `R`, which upholds the contract for at least as long as
// the borrow.
unsafe impl<R: Region + ?Sized> Region for &R {
    fn as_ptr(&self) -> *mut u8 {
        (**self).as_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
    fn is_read_only(&self) -> bool {
        (**self).is_read_only()
    }
    fn target(&self) -> Target {
        (**self).target()
    }
}

// SAFETY: forwards to `R`, which the Arc keeps alive.
unsafe impl<R: Region + ?Sized> Region for std::sync::Arc<R> {
    fn as_ptr(&self) -> *mut u8 {
        (**self).as_ptr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
    fn is_read_only(&self) -> bool {
        (**self).is_read_only()
    }
    fn target(&self) -> Target {
        (**self).target()
    }
}

/// Zeroed, page-aligned heap memory that behaves like a mapping: for tests,
/// models (loom) and single-process use of the upper layers.
///
/// # Examples
///
/// ```
/// use shm_segment::{HeapRegion, Region};
/// let r = HeapRegion::new(4096);
/// assert_eq!(r.as_ptr() as usize % 4096, 0);
/// assert_eq!(r.len(), 4096);
/// ```
#[derive(Debug)]
pub struct HeapRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region owns its allocation; all access through `&self` is by
// raw pointer copies or atomics, as with a shared mapping.
unsafe impl Send for HeapRegion {}
// SAFETY: as above.
unsafe impl Sync for HeapRegion {}

impl HeapRegion {
    const ALIGN: usize = 4096;

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), Self::ALIGN).expect("region size overflows isize")
    }

    /// Allocates `len` zeroed bytes, aligned to a page.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region};
    /// assert!(HeapRegion::new(0).is_empty());
    /// ```
    pub fn new(len: usize) -> Self {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        HeapRegion { ptr, len }
    }

    /// Like [`new`](Self::new), but a size the allocator refuses is an error
    /// instead of an abort.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::HeapRegion;
    /// assert!(HeapRegion::try_new(64).is_ok());
    /// assert!(HeapRegion::try_new(usize::MAX / 2).is_err());
    /// ```
    pub fn try_new(len: usize) -> Result<Self> {
        let refused = || Error::InvalidArgument {
            op: "allocate",
            target: Target::Heap,
            reason: format!("cannot allocate {len} bytes"),
        };
        let layout = Layout::from_size_align(len.max(1), Self::ALIGN).map_err(|_| refused())?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(refused)?;
        Ok(HeapRegion { ptr, len })
    }
}

impl Drop for HeapRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) };
    }
}

// SAFETY: the allocation is `len` bytes, readable and writable, freed only on drop.
unsafe impl Region for HeapRegion {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    fn len(&self) -> usize {
        self.len
    }
    fn is_read_only(&self) -> bool {
        false
    }
    fn target(&self) -> Target {
        Target::Heap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_and_overflowing_offsets_write_nothing() {
        let r = HeapRegion::new(16);
        r.write_at(0, &[1; 16]).unwrap();
        for (offset, len) in [(15, 2), (16, 1), (usize::MAX, 1), (usize::MAX - 3, 8)] {
            let err = r.write_at(offset, &vec![9; len]).unwrap_err();
            assert!(matches!(err, Error::OutOfBounds { .. }), "{err}");
        }
        assert_eq!(r.to_vec(), vec![1; 16]);
        // An empty write at the very end is fine, as with slices.
        r.write_at(16, &[]).unwrap();
    }

    #[test]
    fn typed_access_checks_alignment_and_count_overflow() {
        let r = HeapRegion::new(64);
        assert!(matches!(
            r.atomic_u64(4),
            Err(Error::Misaligned { align: 8, .. })
        ));
        assert!(matches!(
            r.typed_ptr::<u64>("t", 0, usize::MAX),
            Err(Error::OutOfBounds { .. })
        ));
        // Pod reads and writes work at any alignment.
        r.write_pod(3, &0x0102_0304_0506_0708_u64).unwrap();
        assert_eq!(r.read_pod::<u64>(3).unwrap(), 0x0102_0304_0506_0708);
    }

    #[test]
    fn error_messages_name_the_target_and_the_numbers() {
        let err = HeapRegion::new(10).write_at(8, b"xyz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "write heap region: 3 bytes at offset 8 pass the end of the 10-byte region"
        );
    }
}
