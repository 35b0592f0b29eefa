//! Errors of the rings.

use std::fmt;

use shm_segment::{ProcessId, Target};

/// A push that found the ring full (or still full at its deadline); the value comes back.
///
/// # Examples
///
/// ```
/// use shm_ring::{PushError, SpscRing};
/// let (mut tx, _rx) = SpscRing::<u32, _>::new_heap(1)?;
/// tx.push(1).unwrap();
/// assert_eq!(tx.push(2), Err(PushError::Full(2)));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    /// No free slot; here is the value back.
    Full(T),
}

impl<T> PushError<T> {
    /// The value that was not pushed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_ring::PushError::Full(7).into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(v) => v,
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the ring is full")
    }
}

impl<T: fmt::Debug> std::error::Error for PushError<T> {}

/// A pop that found nothing to take.
///
/// # Examples
///
/// ```
/// use shm_ring::{PopError, SpscRing};
/// let (_tx, mut rx) = SpscRing::<u32, _>::new_heap(4)?;
/// assert_eq!(rx.pop(), Err(PopError::Empty));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// The ring is empty (or still empty at the deadline).
    #[error("the ring is empty")]
    Empty,
    /// MPMC only: position `position` was claimed by a producer that has not
    /// published it by the deadline, and every later item waits behind it.
    /// The producer may be slow or dead; see the `mpmc` module docs.
    #[error(
        "position {position} was claimed by a producer that has not published it (slow or dead)"
    )]
    Stalled {
        /// The stuck position.
        position: u64,
    },
}

/// A bulk operation that wanted more room or more items than there were;
/// nothing was transferred.
///
/// # Examples
///
/// ```
/// use shm_ring::SpscRing;
/// let (mut tx, _rx) = SpscRing::<u8, _>::new_heap(4)?;
/// let err = tx.push_exact(&[1, 2, 3, 4, 5]).unwrap_err();
/// assert_eq!((err.requested, err.available), (5, 4));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("asked for {requested} slots or items, only {available} were available")]
pub struct BulkError {
    /// How many were asked for.
    pub requested: usize,
    /// How many there were.
    pub available: usize,
}

/// Creating, attaching to, or taking a role in a ring failed.
///
/// # Examples
///
/// ```
/// use shm_ring::{RingError, SpscRing};
/// let err = SpscRing::<u64, _>::create(shm_segment::HeapRegion::new(4096), 3, Default::default()).unwrap_err();
/// assert!(matches!(err, RingError::Capacity { capacity: 3, .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The segment layer failed: a bad or foreign header, a read-only or misaligned region…
    #[error(transparent)]
    Segment(#[from] shm_segment::Error),
    /// The capacity is zero, not a power of two, or too large.
    #[error("{target}: ring capacity {capacity} is invalid: {reason}")]
    Capacity {
        /// The region.
        target: Target,
        /// The capacity asked for.
        capacity: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The region is smaller than the ring needs.
    #[error("{target}: a ring of this capacity needs {needed} bytes, the region has {actual}")]
    RegionTooSmall {
        /// The region.
        target: Target,
        /// Bytes needed ([`SpscRing::required_size`](crate::SpscRing::required_size)).
        needed: u64,
        /// Bytes the region has.
        actual: u64,
    },
    /// The element type has size 0.
    #[error("{target}: zero-sized element types cannot be queued")]
    ZeroSized {
        /// The region.
        target: Target,
    },
    /// The SPSC producer or consumer role is held by a process that is alive.
    #[error("{target}: the {role} role is held by live process {} (started at tick {})", holder.pid, holder.start_time)]
    RoleTaken {
        /// The region.
        target: Target,
        /// `"producer"` or `"consumer"`.
        role: &'static str,
        /// Who holds it.
        holder: ProcessId,
    },
}

impl From<RingError> for std::io::Error {
    fn from(err: RingError) -> Self {
        let kind = match &err {
            RingError::Segment(e) => e.kind(),
            RingError::RoleTaken { .. } => std::io::ErrorKind::AddrInUse,
            _ => std::io::ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, err)
    }
}
