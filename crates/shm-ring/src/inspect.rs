//! [`inspect`]: a ring's header and positions read without attaching, for
//! either flavour. It sits above both (it knows their layout versions and
//! slot shapes), so that the shared core below them knows neither.

use std::sync::atomic::Ordering;

use crossbeam_utils::CachePadded;
use shm_segment::{Expect, Header, HeaderError, Kind, ProcessId, Region};

use crate::error::RingError;
use crate::shared::{size_for, validate_header, Control, Side, CONTROL_OFFSET, FLAG_BLOCKING};
use crate::wait::RELEASED;

/// The bytes a ring of `kind` needs for `capacity` elements of `elem_size`
/// bytes aligned to `elem_align`, computed from the header's fields alone
/// (what [`inspect`] has instead of a type): the same numbers as
/// `Layout::<S>::size` for the slot type `S` of that kind.
fn size_from_header(kind: Kind, elem_size: u32, elem_align: u32, capacity: u64) -> Option<u64> {
    let (size, align) = (u64::from(elem_size), u64::from(elem_align));
    if !align.is_power_of_two() {
        return None;
    }
    let (slot_size, slot_align, extra) = match kind {
        // `ValueCell<T>`: `repr(transparent)` over the element; no extra block.
        Kind::SPSC_RING => (size, align, 0),
        // `mpmc::Slot<T>`: `repr(C)` { seq: u64, value: T }, after the
        // claim records (`mpmc::Records`).
        Kind::MPMC_RING => {
            let slot_align = align.max(8);
            let value_at = 8u64.next_multiple_of(align);
            let slot_size = value_at
                .checked_add(size)?
                .checked_next_multiple_of(slot_align)?;
            (slot_size, slot_align, crate::mpmc::RECORDS_SIZE as u64)
        }
        _ => return None,
    };
    size_for(slot_size, slot_align, extra, capacity)
}

/// What [`inspect`] reads of a ring: its header and live positions.
///
/// # Examples
///
/// See [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingInfo {
    /// SPSC or MPMC.
    pub kind: Kind,
    /// Slots.
    pub capacity: u64,
    /// Bytes per element.
    pub elem_size: u32,
    /// Next position to read.
    pub head: u64,
    /// Next position to write.
    pub tail: u64,
    /// Whether blocking calls sleep on a futex.
    pub blocking: bool,
    /// SPSC: who holds the producer role (perhaps a dead process); `None`
    /// when it was never taken or was given back.
    pub producer: Option<ProcessId>,
    /// SPSC: who holds the consumer role, as for `producer`.
    pub consumer: Option<ProcessId>,
    /// Who created the ring.
    pub creator: ProcessId,
}

impl RingInfo {
    /// Items between head and tail, clamped to the capacity: 0 when the
    /// tail is behind the head (a corrupted position). Never panics, whatever
    /// the fields hold.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_ring::RingInfo;
    /// use shm_segment::{Kind, ProcessId};
    /// let info = RingInfo {
    ///     kind: Kind::SPSC_RING,
    ///     capacity: 8,
    ///     elem_size: 8,
    ///     head: 10,
    ///     tail: 13,
    ///     blocking: false,
    ///     producer: None,
    ///     consumer: None,
    ///     creator: ProcessId::current(),
    /// };
    /// assert_eq!(info.len(), 3);
    /// assert_eq!(RingInfo { tail: 9, ..info.clone() }.len(), 0); // tail behind head
    /// assert_eq!(RingInfo { tail: 99, ..info }.len(), 8); // more than a lap ahead
    /// ```
    pub fn len(&self) -> u64 {
        let ahead = self.tail.wrapping_sub(self.head);
        // A tail behind the head wraps to a huge distance: read it as empty.
        if ahead > i64::MAX as u64 {
            0
        } else {
            ahead.min(self.capacity)
        }
    }

    /// Whether head and tail meet.
    ///
    /// # Examples
    ///
    /// See [`inspect`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a ring's header and positions without attaching, with atomic
/// loads only, so a read-only mapping will do (what `shm inspect` uses).
///
/// The header is validated as [`SpscRing::attach`](crate::SpscRing::attach)
/// and [`MpmcRing::attach`](crate::MpmcRing::attach) validate it, with the
/// element size and alignment taken from the header itself: the kind and
/// layout version, a capacity that is a non-zero power of two whose layout
/// matches the total size and fits the region. A header that fails returns
/// the same typed error `attach` would. The positions and role words are
/// returned as found (they change all the time); [`RingInfo::len`] clamps them.
///
/// # Examples
///
/// ```
/// use shm_ring::{inspect, SpscRing};
/// let region = shm_segment::HeapRegion::new(SpscRing::<u64>::required_size(8));
/// let ring = SpscRing::<u64, _>::create(&region, 8, Default::default())?;
/// let mut tx = ring.producer()?;
/// tx.push_slice(&[1, 2, 3]);
/// let info = inspect(&region)?;
/// assert_eq!((info.capacity, info.len(), info.producer.map(|p| p.pid)), (8, 3, Some(std::process::id())));
/// # Ok::<(), shm_ring::RingError>(())
/// ```
pub fn inspect<R: Region>(region: &R) -> Result<RingInfo, RingError> {
    let found = Header::read(region)?;
    let (spsc, version) = match found.kind {
        Kind::SPSC_RING => (true, crate::spsc::LAYOUT_VERSION),
        Kind::MPMC_RING => (false, crate::mpmc::LAYOUT_VERSION),
        found => {
            let source = HeaderError::WrongKind {
                expected: Kind::SPSC_RING,
                found,
            };
            return Err(shm_segment::Error::header(region.target(), source).into());
        }
    };
    if !found.elem_align.is_power_of_two() {
        return Err(RingError::ElemAlign {
            target: region.target(),
            align: found.elem_align,
        });
    }
    let expect = Expect {
        elem_size: Some(found.elem_size),
        ..Expect::sized_by_header(found.kind, version, found.elem_align)
    };
    let info = validate_header(region, &expect, |info| {
        size_from_header(info.kind, info.elem_size, info.elem_align, info.capacity)
    })?;
    let side = std::mem::size_of::<CachePadded<Side>>();
    let (tail_at, head_at) = (CONTROL_OFFSET, CONTROL_OFFSET + side);
    let flags_at = CONTROL_OFFSET + std::mem::offset_of!(Control, flags);
    let load = |offset| region.load_u64(offset, Ordering::Acquire);
    let owner = |offset| -> Result<Option<ProcessId>, RingError> {
        let word = load(offset)?;
        Ok((spsc && word != 0 && word != RELEASED).then(|| ProcessId::from_word(word)))
    };
    Ok(RingInfo {
        kind: info.kind,
        capacity: info.capacity,
        elem_size: info.elem_size,
        head: load(head_at)?,
        tail: load(tail_at)?,
        blocking: load(flags_at)? & FLAG_BLOCKING != 0,
        producer: owner(tail_at + std::mem::offset_of!(Side, owner))?,
        consumer: owner(head_at + std::mem::offset_of!(Side, owner))?,
        creator: info.creator,
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::mpmc::Slot;
    use crate::shared::Layout;
    use crate::sync::ValueCell;

    /// `inspect`'s layout from header fields is the one the typed code uses.
    fn same_layout<T>() {
        let (size, align) = (
            std::mem::size_of::<T>() as u32,
            std::mem::align_of::<T>() as u32,
        );
        for capacity in [1, 2, 64, 1 << 20] {
            assert_eq!(
                size_from_header(Kind::SPSC_RING, size, align, capacity),
                Layout::<ValueCell<T>>::size(capacity),
                "spsc, {}",
                std::any::type_name::<T>()
            );
            assert_eq!(
                size_from_header(Kind::MPMC_RING, size, align, capacity),
                Layout::<Slot<T>>::size(capacity),
                "mpmc, {}",
                std::any::type_name::<T>()
            );
        }
    }

    #[repr(C, align(64))]
    struct Line([u8; 64]);

    #[repr(C, align(256))]
    struct Big([u8; 512]);

    #[test]
    fn layout_from_header_fields_matches_the_types() {
        same_layout::<u8>();
        same_layout::<u16>();
        same_layout::<[u8; 3]>();
        same_layout::<u32>();
        same_layout::<[u32; 5]>();
        same_layout::<u64>();
        same_layout::<u128>();
        same_layout::<Line>();
        same_layout::<Big>();
    }

    #[test]
    fn layout_from_header_fields_refuses_what_no_type_has() {
        assert_eq!(size_from_header(Kind::SPSC_RING, 8, 3, 8), None);
        assert_eq!(size_from_header(Kind::MPMC_RING, 8, 0, 8), None);
        assert_eq!(size_from_header(Kind::MEMPOOL, 8, 8, 8), None);
        assert_eq!(size_from_header(Kind::SPSC_RING, 8, 8, 1 << 63), None);
        assert_eq!(size_from_header(Kind::MPMC_RING, 8, 8, 1 << 60), None);
    }
}
