//! Errors of the rings.

use std::fmt;

use shm_segment::{ProcessId, Target};

/// A push that did not happen; the value comes back.
///
/// # Examples
///
/// ```
/// use shm_ring::{PushError, SpscRing};
/// let (mut tx, _rx) = SpscRing::<u32>::new_heap(1)?;
/// tx.push(1).unwrap();
/// assert_eq!(tx.push(2), Err(PushError::Full(2)));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError<T> {
    /// No free slot (or still none at the deadline); here is the value back.
    Full(T),
    /// SPSC only: this [`Producer`](crate::Producer) was inherited across
    /// `fork(2)` and is inert in the child: the producer role belongs to the
    /// process that took it. Here is the value back. Take the role in this
    /// process with [`SpscRing::producer`](crate::SpscRing::producer) instead
    /// (it succeeds once the holder has given it back or died).
    ForkedHandle(T),
    /// SPSC [`Producer::push_blocking`](crate::Producer::push_blocking)
    /// only: the ring is full and nobody will make room, because the
    /// consumer role was given back or its holder died (see
    /// [`Producer::is_abandoned`](crate::Producer::is_abandoned)). Here is
    /// the value back. A new consumer may take the role and drain the ring;
    /// pushing again then succeeds.
    PeerGone(T),
}

impl<T> PushError<T> {
    /// The value that was not pushed.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::PushError;
    /// assert_eq!(PushError::Full(7).into_inner(), 7);
    /// assert_eq!(PushError::ForkedHandle(8).into_inner(), 8);
    /// assert_eq!(PushError::PeerGone(9).into_inner(), 9);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(v) | PushError::ForkedHandle(v) | PushError::PeerGone(v) => v,
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full(_) => f.write_str("the ring is full"),
            PushError::ForkedHandle(_) => f.write_str(FORKED_PRODUCER),
            PushError::PeerGone(_) => f.write_str(CONSUMER_GONE),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for PushError<T> {}

const CONSUMER_GONE: &str = "push_blocking: the ring is full and its consumer is gone: the \
     consumer role was given back or its holder died, so no one will make room";

const FORKED_PRODUCER: &str = "push: this ring producer was inherited across fork(2) and is \
     inert in the child process; take the producer role in this process instead";

/// A pop that took nothing.
///
/// # Examples
///
/// ```
/// use shm_ring::{PopError, SpscRing};
/// let (_tx, mut rx) = SpscRing::<u32>::new_heap(4)?;
/// assert_eq!(rx.pop(), Err(PopError::Empty));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// The ring is empty (or still empty at the deadline).
    #[error("the ring is empty")]
    Empty,
    /// MPMC only: position `position` was claimed by a producer that is
    /// alive but has not published it for the ring's stall limit (one
    /// second: it is stopped or starved), and every later item waits behind
    /// it; they flow again once it publishes. A dead producer's position is
    /// skipped instead, never reported. Also what a corrupted ring shows: a
    /// position claimed with no claim record at all. See the `mpmc` module
    /// docs.
    #[error(
        "position {position} was claimed by a producer that has not published it (alive but \
         stopped or starved, or no record of who claimed it)"
    )]
    Stalled {
        /// The stuck position.
        position: u64,
    },
    /// SPSC only: this [`Consumer`](crate::Consumer) was inherited across
    /// `fork(2)` and is inert in the child: the consumer role belongs to the
    /// process that took it. Take the role in this process with
    /// [`SpscRing::consumer`](crate::SpscRing::consumer) instead.
    #[error(
        "pop: this ring consumer was inherited across fork(2) and is inert in the child process; \
         take the consumer role in this process instead"
    )]
    ForkedHandle,
    /// SPSC [`Consumer::pop_blocking`](crate::Consumer::pop_blocking) only:
    /// the ring is empty and nothing more will come, because the producer
    /// role was given back or its holder died (see
    /// [`Consumer::is_abandoned`](crate::Consumer::is_abandoned)). Everything
    /// it published before was delivered first. A new producer may take the
    /// role and go on.
    #[error(
        "pop_blocking: the ring is empty and its producer is gone: the producer role was given \
         back or its holder died, so nothing more will come"
    )]
    PeerGone,
}

/// A bulk or chunk operation that transferred nothing.
///
/// # Examples
///
/// ```
/// use shm_ring::{BulkError, SpscRing};
/// let (mut tx, _rx) = SpscRing::<u8>::new_heap(4)?;
/// let err = tx.push_exact(&[1, 2, 3, 4, 5]).unwrap_err();
/// assert_eq!(err, BulkError::TooFew { requested: 5, available: 4 });
/// # Ok::<(), shm_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    /// It wanted more room or more items than there were (or, for
    /// `write_bytes`/`read_bytes`, a byte range past the element's end).
    #[error("asked for {requested} slots or items, only {available} were available")]
    TooFew {
        /// How many were asked for.
        requested: usize,
        /// How many there were.
        available: usize,
    },
    /// SPSC only: the [`Producer`](crate::Producer) or
    /// [`Consumer`](crate::Consumer) was inherited across `fork(2)` and is
    /// inert in the child (see [`PushError::ForkedHandle`]).
    #[error(
        "ring bulk or chunk operation: this handle was inherited across fork(2) and is inert \
         in the child process; take the role in this process instead"
    )]
    ForkedHandle,
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
    /// [`inspect`](crate::inspect) found a header whose element alignment
    /// no type has (not a power of two), so the ring's layout cannot be
    /// computed.
    #[error(
        "{target}: inspect ring: the header's element alignment {align} is not a power of two"
    )]
    ElemAlign {
        /// The region.
        target: Target,
        /// The alignment found.
        align: u32,
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
