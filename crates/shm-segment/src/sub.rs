//! [`SubRegion`]: part of a region, as a region of its own.

use crate::error::{Result, Target};
use crate::region::{Region, RegionChecks};

/// The bytes `offset .. offset + len` of another region, usable wherever a
/// [`Region`] is: how one segment holds several structures (a pool and a
/// ring, say), each with its own header at its own offset 0.
///
/// # Examples
///
/// ```
/// use shm_segment::{HeapRegion, Region, SubRegion};
/// let whole = HeapRegion::new(8192);
/// let second = SubRegion::new(&whole, 4096, 4096)?;
/// second.write_at(0, b"x")?;
/// assert_eq!(whole.read_pod::<u8>(4096)?, b'x');
/// assert!(SubRegion::new(&whole, 4096, 4097).is_err());
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct SubRegion<R> {
    inner: R,
    offset: usize,
    len: usize,
}

impl<R: Region> SubRegion<R> {
    /// The `len` bytes at `offset` of `inner`; fails if they pass its end.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, SubRegion};
    /// assert!(SubRegion::new(HeapRegion::new(10), 8, 4).is_err());
    /// ```
    pub fn new(inner: R, offset: usize, len: usize) -> Result<Self> {
        inner.check_range("sub-region", offset, len)?;
        Ok(SubRegion { inner, offset, len })
    }

    /// Where it starts in the outer region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, SubRegion};
    /// assert_eq!(SubRegion::new(HeapRegion::new(10), 4, 4)?.offset(), 4);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The outer region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{HeapRegion, Region, SubRegion};
    /// assert_eq!(SubRegion::new(HeapRegion::new(10), 0, 4)?.inner().len(), 10);
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn inner(&self) -> &R {
        &self.inner
    }
}

// SAFETY: `offset + len <= inner.len()` (checked in `new`; the inner region's
// pointer and length never change), so the sub-range is valid whenever the
// inner one is, with the same read-only flag.
unsafe impl<R: Region> Region for SubRegion<R> {
    fn as_ptr(&self) -> *mut u8 {
        // SAFETY: `offset <= inner.len()`, so the pointer stays in (or one
        // past) the inner mapping.
        unsafe { self.inner.as_ptr().add(self.offset) }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn is_read_only(&self) -> bool {
        self.inner.is_read_only()
    }
    fn target(&self) -> Target {
        self.inner.target()
    }
}
