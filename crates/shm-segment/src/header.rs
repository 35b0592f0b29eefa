//! The versioned header that the rings and the pool put in front of their data.
//!
//! Layout (64 bytes, one cache line, at offset 0 of the region; every field a
//! fixed-width little-endian atomic):
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | `magic: u64` | [`MAGIC`] |
//! | 8 | `version: u32` | layout version of the structure that follows |
//! | 12 | `kind: u32` | [`Kind`] |
//! | 16 | `elem_size: u32` | bytes per element or block |
//! | 20 | `elem_align: u32` | alignment of an element |
//! | 24 | `capacity: u64` | elements or blocks |
//! | 32 | `total_size: u64` | bytes the structure uses, header included |
//! | 40 | `creator_pid: u32` | |
//! | 44 | `state: u32` | [`READY`] once published, written last with Release |
//! | 48 | `creator_start: u64` | creator's start time (see [`ProcessId`]) |
//! | 56 | reserved | |

use std::fmt;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::process::ProcessId;
use crate::region::{Region, RegionChecks};

/// `b"SHMRSHDR"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMRSHDR");
/// The header's size; structures place their own data after it.
pub const HEADER_SIZE: usize = 64;
/// The value of `state` once a header is published.
pub const READY: u32 = 0x5245_4459; // "READ" + "Y", unlikely by accident

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_KIND: usize = 12;
const OFF_ELEM_SIZE: usize = 16;
const OFF_ELEM_ALIGN: usize = 20;
const OFF_CAPACITY: usize = 24;
const OFF_TOTAL: usize = 32;
const OFF_PID: usize = 40;
const OFF_STATE: usize = 44;
const OFF_START: usize = 48;

/// What structure follows a header.
///
/// # Examples
///
/// ```
/// use shm_segment::Kind;
/// assert_eq!(Kind::SPSC_RING.to_string(), "spsc-ring");
/// assert_eq!(Kind(99).to_string(), "unknown(99)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Kind(pub u32);

impl Kind {
    /// A single-producer single-consumer ring (`shm-ring`).
    pub const SPSC_RING: Kind = Kind(1);
    /// A multi-producer multi-consumer ring (`shm-ring`).
    pub const MPMC_RING: Kind = Kind(2);
    /// A block pool (`shm-mempool`).
    pub const MEMPOOL: Kind = Kind(3);
    /// A pool plus a queue of the block ids sent through it (`shm-mempool`).
    pub const CHANNEL: Kind = Kind(4);
    /// Free for users' own structures: kinds from here up are never ours.
    pub const USER_BASE: Kind = Kind(0x1000);

    /// A short lowercase name, or `None` for kinds this crate does not know.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shm_segment::Kind::MEMPOOL.name(), Some("mempool"));
    /// ```
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Kind::SPSC_RING => "spsc-ring",
            Kind::MPMC_RING => "mpmc-ring",
            Kind::MEMPOOL => "mempool",
            Kind::CHANNEL => "channel",
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown({})", self.0),
        }
    }
}

/// What is wrong with a header, found by [`Header::validate`] or [`Header::read`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The region cannot even hold a header.
    #[error("the region is {actual} bytes, too small for a {needed}-byte header")]
    RegionTooSmall {
        /// Bytes needed.
        needed: u64,
        /// Bytes the region has.
        actual: u64,
    },
    /// All zero: nobody created a structure here, or its creator died first.
    #[error(
        "no header: the segment was never initialised (or its creator died while initialising it)"
    )]
    NotInitialised,
    /// The magic number is wrong: not one of our structures, or overwritten.
    #[error("bad magic {found:#018x}: not a structure of this crate, or a corrupted header")]
    BadMagic {
        /// What was there.
        found: u64,
    },
    /// The magic is right but the header was never published.
    #[error("the header is not published yet (state {state:#x}): still initialising, or the creator died")]
    NotReady {
        /// The state word.
        state: u32,
    },
    /// [`Header::init`] on memory that already holds a published header.
    #[error("a {kind} is already initialised here")]
    AlreadyInitialised {
        /// What is there.
        kind: Kind,
    },
    /// Another kind of structure lives here.
    #[error("this is a {found}, not a {expected}")]
    WrongKind {
        /// What the caller wanted.
        expected: Kind,
        /// What is there.
        found: Kind,
    },
    /// A layout version this code does not understand.
    #[error("layout version {found} is not supported (this code speaks version {expected})")]
    Version {
        /// The version this code speaks.
        expected: u32,
        /// The version found.
        found: u32,
    },
    /// Elements of another size.
    #[error("element size is {found} bytes, the caller's type has {expected}")]
    ElemSize {
        /// The caller's element size.
        expected: u32,
        /// The header's.
        found: u32,
    },
    /// Elements of another alignment.
    #[error("element alignment is {found}, the caller's type needs {expected}")]
    ElemAlign {
        /// The caller's alignment.
        expected: u32,
        /// The header's.
        found: u32,
    },
    /// A capacity the structure cannot have.
    #[error("capacity {capacity} is invalid: {reason}")]
    Capacity {
        /// The capacity found.
        capacity: u64,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The header claims more bytes than the region has.
    #[error("the header says the structure needs {needed} bytes, the region has only {actual}")]
    Truncated {
        /// What the header claims.
        needed: u64,
        /// What the region has.
        actual: u64,
    },
    /// `total_size` disagrees with what the capacity and element size imply.
    #[error(
        "the header's total size {found} does not match the {expected} bytes its capacity implies"
    )]
    Layout {
        /// Bytes implied by the layout.
        expected: u64,
        /// Bytes the header claims.
        found: u64,
    },
}

/// The fields of a published header, copied out of shared memory once.
///
/// # Examples
///
/// ```
/// use shm_segment::{Header, HeaderInfo, HeapRegion, Kind};
/// let r = HeapRegion::new(4096);
/// let info = HeaderInfo::new(Kind::USER_BASE, 1, 8, 8, 16, 64 + 16 * 8);
/// Header::init(&r, &info)?;
/// assert_eq!(Header::read(&r)?.capacity, 16);
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HeaderInfo {
    /// What structure follows.
    pub kind: Kind,
    /// Its layout version.
    pub version: u32,
    /// Bytes per element or block.
    pub elem_size: u32,
    /// Alignment of an element.
    pub elem_align: u32,
    /// Elements or blocks.
    pub capacity: u64,
    /// Bytes the structure uses, header included.
    pub total_size: u64,
    /// Who created it (filled in by [`Header::init`]).
    pub creator: ProcessId,
}

impl HeaderInfo {
    /// A header description; the creator is filled in by [`Header::init`].
    ///
    /// # Examples
    ///
    /// ```
    /// let info = shm_segment::HeaderInfo::new(shm_segment::Kind::MPMC_RING, 1, 8, 8, 1024, 64 + 8192);
    /// assert_eq!(info.elem_size, 8);
    /// ```
    pub fn new(
        kind: Kind,
        version: u32,
        elem_size: u32,
        elem_align: u32,
        capacity: u64,
        total_size: u64,
    ) -> Self {
        HeaderInfo {
            kind,
            version,
            elem_size,
            elem_align,
            capacity,
            total_size,
            creator: ProcessId::default(),
        }
    }
}

/// What a caller expects to find when it attaches.
///
/// # Examples
///
/// ```
/// use shm_segment::{Expect, Kind};
/// let e = Expect::of::<u64>(Kind::SPSC_RING, 1);
/// assert_eq!((e.elem_size, e.elem_align), (Some(8), 8));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The structure.
    pub kind: Kind,
    /// The layout version this code speaks.
    pub version: u32,
    /// Bytes per element; `None` takes it from the header (a pool's block
    /// size), which must then be a non-zero multiple of `elem_align`.
    pub elem_size: Option<u32>,
    /// Alignment of an element.
    pub elem_align: u32,
    /// The largest capacity the caller's code supports.
    pub max_capacity: u64,
}

impl Expect {
    /// Expects elements of type `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = shm_segment::Expect::of::<[u8; 3]>(shm_segment::Kind::MPMC_RING, 2);
    /// assert_eq!((e.elem_size, e.elem_align, e.version), (Some(3), 1, 2));
    /// ```
    pub fn of<T>(kind: Kind, version: u32) -> Self {
        Expect {
            kind,
            version,
            elem_size: Some(std::mem::size_of::<T>() as u32),
            elem_align: std::mem::align_of::<T>() as u32,
            max_capacity: u64::MAX,
        }
    }

    /// Expects elements whose size the header gives (a multiple of `align`),
    /// as a pool of blocks of any size.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = shm_segment::Expect::sized_by_header(shm_segment::Kind::MEMPOOL, 3, 64);
    /// assert_eq!((e.elem_size, e.elem_align), (None, 64));
    /// ```
    pub fn sized_by_header(kind: Kind, version: u32, align: u32) -> Self {
        Expect {
            kind,
            version,
            elem_size: None,
            elem_align: align,
            max_capacity: u64::MAX,
        }
    }

    /// Refuses capacities above `max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Expect, Kind};
    /// let e = Expect::of::<u64>(Kind::SPSC_RING, 1).max_capacity(1 << 20);
    /// assert_eq!(e.max_capacity, 1 << 20);
    /// ```
    pub fn max_capacity(mut self, max: u64) -> Self {
        self.max_capacity = max;
        self
    }
}

/// Writes, reads and validates the header at offset 0 of a [`Region`].
///
/// # Examples
///
/// ```
/// use shm_segment::{Expect, Header, HeaderError, HeaderInfo, HeapRegion, Kind, Region, Error};
///
/// let region = HeapRegion::new(4096);
/// let layout = |info: &HeaderInfo| Some(64 + info.capacity.checked_mul(8)?);
/// let info = HeaderInfo::new(Kind::SPSC_RING, 1, 8, 8, 32, 64 + 32 * 8);
/// Header::check_vacant(&region)?;
/// Header::init(&region, &info)?;
/// assert!(Header::check_vacant(&region).is_err()); // a live structure is there
///
/// // Attaching checks everything against the caller's type and the region.
/// let info = Header::validate(&region, &Expect::of::<u64>(Kind::SPSC_RING, 1), layout)?;
/// assert_eq!(info.capacity, 32);
/// let err = Header::validate(&region, &Expect::of::<u32>(Kind::SPSC_RING, 1), layout).unwrap_err();
/// assert!(matches!(err, Error::Header { source: HeaderError::ElemSize { expected: 4, found: 8 }, .. }));
/// # Ok::<(), shm_segment::Error>(())
/// ```
#[derive(Debug)]
pub struct Header;

impl Header {
    /// Publishes a header: every field, then `state = READY` with Release, so
    /// a process that reads `READY` with Acquire sees the whole header (and
    /// whatever the creator initialised before calling this).
    ///
    /// Fails if the region is too small or read-only, if `total_size` is
    /// larger than the region, or if a published header is already there.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Header, HeaderInfo, HeapRegion, Kind};
    /// let r = HeapRegion::new(128);
    /// let info = HeaderInfo::new(Kind::USER_BASE, 1, 1, 1, 64, 128);
    /// Header::init(&r, &info)?;
    /// assert!(Header::init(&r, &info).is_err()); // already initialised
    /// # Ok::<(), shm_segment::Error>(())
    /// ```
    pub fn init<R: Region>(region: &R, info: &HeaderInfo) -> Result<()> {
        region.check_writable("init header")?;
        check_region(region, HEADER_SIZE as u64)?;
        if info.total_size > region.len() as u64 || info.total_size < HEADER_SIZE as u64 {
            return Err(header_err(
                region,
                HeaderError::Truncated {
                    needed: info.total_size.max(HEADER_SIZE as u64),
                    actual: region.len() as u64,
                },
            ));
        }
        let state = region.atomic_u32(OFF_STATE)?;
        if state.load(Ordering::Acquire) == READY
            && region.load_u64(OFF_MAGIC, Ordering::Relaxed)? == MAGIC
        {
            let kind = Kind(region.load_u32(OFF_KIND, Ordering::Relaxed)?);
            return Err(header_err(region, HeaderError::AlreadyInitialised { kind }));
        }
        let me = ProcessId::current();
        state.store(0, Ordering::Relaxed);
        region
            .atomic_u64(OFF_MAGIC)?
            .store(MAGIC, Ordering::Relaxed);
        region
            .atomic_u32(OFF_VERSION)?
            .store(info.version, Ordering::Relaxed);
        region
            .atomic_u32(OFF_KIND)?
            .store(info.kind.0, Ordering::Relaxed);
        region
            .atomic_u32(OFF_ELEM_SIZE)?
            .store(info.elem_size, Ordering::Relaxed);
        region
            .atomic_u32(OFF_ELEM_ALIGN)?
            .store(info.elem_align, Ordering::Relaxed);
        region
            .atomic_u64(OFF_CAPACITY)?
            .store(info.capacity, Ordering::Relaxed);
        region
            .atomic_u64(OFF_TOTAL)?
            .store(info.total_size, Ordering::Relaxed);
        region.atomic_u32(OFF_PID)?.store(me.pid, Ordering::Relaxed);
        region
            .atomic_u64(OFF_START)?
            .store(me.start_time, Ordering::Relaxed);
        // SYNC POINT: pairs with the Acquire load of `state` in `read`.
        state.store(READY, Ordering::Release);
        Ok(())
    }

    /// Fails with [`HeaderError::AlreadyInitialised`] if a published header
    /// is there: what a constructor checks before it writes a single byte, so
    /// that creating over a live structure never destroys it.
    ///
    /// # Examples
    ///
    /// See [`Header`].
    pub fn check_vacant<R: Region>(region: &R) -> Result<()> {
        match Self::read(region) {
            Ok(existing) => Err(header_err(
                region,
                HeaderError::AlreadyInitialised {
                    kind: existing.kind,
                },
            )),
            Err(_) => Ok(()),
        }
    }

    /// Reads a published header without expectations (for inspection tools),
    /// checking the magic, the state, and that `total_size` fits the region.
    ///
    /// # Examples
    ///
    /// ```
    /// use shm_segment::{Error, Header, HeaderError, HeapRegion};
    /// let err = Header::read(&HeapRegion::new(64)).unwrap_err();
    /// assert!(matches!(err, Error::Header { source: HeaderError::NotInitialised, .. }));
    /// ```
    pub fn read<R: Region>(region: &R) -> Result<HeaderInfo> {
        check_region(region, HEADER_SIZE as u64)?;
        // SYNC POINT: pairs with the Release store of `state` in `init`.
        let state = region.load_u32(OFF_STATE, Ordering::Acquire)?;
        let magic = region.load_u64(OFF_MAGIC, Ordering::Relaxed)?;
        if magic != MAGIC {
            let err = if magic == 0 && state == 0 {
                HeaderError::NotInitialised
            } else {
                HeaderError::BadMagic { found: magic }
            };
            return Err(header_err(region, err));
        }
        if state != READY {
            return Err(header_err(region, HeaderError::NotReady { state }));
        }
        let load32 = |off| region.load_u32(off, Ordering::Relaxed);
        let load64 = |off| region.load_u64(off, Ordering::Relaxed);
        let info = HeaderInfo {
            kind: Kind(load32(OFF_KIND)?),
            version: load32(OFF_VERSION)?,
            elem_size: load32(OFF_ELEM_SIZE)?,
            elem_align: load32(OFF_ELEM_ALIGN)?,
            capacity: load64(OFF_CAPACITY)?,
            total_size: load64(OFF_TOTAL)?,
            creator: ProcessId {
                pid: load32(OFF_PID)?,
                start_time: load64(OFF_START)?,
            },
        };
        if info.total_size > region.len() as u64 {
            return Err(header_err(
                region,
                HeaderError::Truncated {
                    needed: info.total_size,
                    actual: region.len() as u64,
                },
            ));
        }
        Ok(info)
    }

    /// Reads the header and checks it against what the caller expects: kind,
    /// version, element size and alignment, a capacity from 1 to
    /// `expect.max_capacity`, and that `layout(&info)` (the bytes the
    /// caller's code needs for that capacity and element size; `None` on
    /// overflow) equals `total_size` and fits the region.
    /// Copy what you need from the result into the process-local handle and
    /// never read these fields from shared memory again.
    ///
    /// # Examples
    ///
    /// See [`Header`].
    pub fn validate<R: Region>(
        region: &R,
        expect: &Expect,
        layout: impl FnOnce(&HeaderInfo) -> Option<u64>,
    ) -> Result<HeaderInfo> {
        let info = Self::read(region)?;
        let err = if info.kind != expect.kind {
            Some(HeaderError::WrongKind {
                expected: expect.kind,
                found: info.kind,
            })
        } else if info.version != expect.version {
            Some(HeaderError::Version {
                expected: expect.version,
                found: info.version,
            })
        } else if let Some(expected) = expect.elem_size.filter(|&e| e != info.elem_size) {
            Some(HeaderError::ElemSize {
                expected,
                found: info.elem_size,
            })
        } else if expect.elem_size.is_none()
            && (info.elem_size == 0 || info.elem_size % expect.elem_align.max(1) != 0)
        {
            Some(HeaderError::ElemSize {
                // No multiple fits for a hostile size near u32::MAX: 0 then.
                expected: info
                    .elem_size
                    .max(1)
                    .checked_next_multiple_of(expect.elem_align.max(1))
                    .unwrap_or(0),
                found: info.elem_size,
            })
        } else if info.elem_align != expect.elem_align {
            Some(HeaderError::ElemAlign {
                expected: expect.elem_align,
                found: info.elem_align,
            })
        } else if info.capacity == 0 {
            Some(HeaderError::Capacity {
                capacity: 0,
                reason: "it is zero",
            })
        } else if info.capacity > expect.max_capacity {
            Some(HeaderError::Capacity {
                capacity: info.capacity,
                reason: "it is larger than this code supports",
            })
        } else {
            match layout(&info) {
                None => Some(HeaderError::Capacity {
                    capacity: info.capacity,
                    reason: "its layout overflows",
                }),
                Some(expected) if expected != info.total_size => Some(HeaderError::Layout {
                    expected,
                    found: info.total_size,
                }),
                Some(_) => None,
            }
        };
        match err {
            Some(e) => Err(header_err(region, e)),
            None => Ok(info),
        }
    }
}

fn check_region<R: Region>(region: &R, needed: u64) -> Result<()> {
    if (region.len() as u64) < needed {
        return Err(header_err(
            region,
            HeaderError::RegionTooSmall {
                needed,
                actual: region.len() as u64,
            },
        ));
    }
    Ok(())
}

fn header_err<R: Region>(region: &R, source: HeaderError) -> Error {
    Error::Header {
        target: region.target(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeapRegion;

    fn size_for(cap: u64) -> Option<u64> {
        cap.checked_mul(8)?.checked_add(HEADER_SIZE as u64)
    }

    fn layout(info: &HeaderInfo) -> Option<u64> {
        size_for(info.capacity)
    }

    fn published(cap: u64) -> HeapRegion {
        let r = HeapRegion::new(4096);
        Header::init(
            &r,
            &HeaderInfo::new(Kind::SPSC_RING, 1, 8, 8, cap, size_for(cap).unwrap()),
        )
        .unwrap();
        r
    }

    fn source(e: Error) -> HeaderError {
        match e {
            Error::Header { source, .. } => source,
            other => panic!("not a header error: {other}"),
        }
    }

    const EXPECT: Expect = Expect {
        kind: Kind::SPSC_RING,
        version: 1,
        elem_size: Some(8),
        max_capacity: u64::MAX,
        elem_align: 8,
    };

    #[test]
    fn each_field_mismatch_has_its_own_error() {
        let r = published(16);
        let v = |e: Expect| source(Header::validate(&r, &e, layout).unwrap_err());
        assert!(matches!(
            v(Expect {
                kind: Kind::MEMPOOL,
                ..EXPECT
            }),
            HeaderError::WrongKind { .. }
        ));
        assert!(matches!(
            v(Expect {
                version: 2,
                ..EXPECT
            }),
            HeaderError::Version { .. }
        ));
        assert!(matches!(
            v(Expect {
                elem_size: Some(4),
                ..EXPECT
            }),
            HeaderError::ElemSize { .. }
        ));
        assert!(matches!(
            v(Expect {
                elem_align: 4,
                ..EXPECT
            }),
            HeaderError::ElemAlign { .. }
        ));
        assert_eq!(
            Header::validate(&r, &EXPECT, layout).unwrap().creator,
            ProcessId::current()
        );
    }

    #[test]
    fn an_element_size_taken_from_the_header_must_be_a_multiple_of_the_alignment() {
        let r = HeapRegion::new(4096);
        let info = HeaderInfo::new(Kind::MEMPOOL, 3, 96, 64, 4, 64 + 4 * 96);
        Header::init(&r, &info).unwrap();
        let blocks = |info: &HeaderInfo| Some(64 + info.capacity * u64::from(info.elem_size));
        let by_header = Expect::sized_by_header(Kind::MEMPOOL, 3, 64);
        // 96 is not a multiple of 64: the error says what a valid size would be.
        assert_eq!(
            source(Header::validate(&r, &by_header, blocks).unwrap_err()),
            HeaderError::ElemSize {
                expected: 128,
                found: 96
            }
        );
        let by_32 = Expect::sized_by_header(Kind::MEMPOOL, 3, 32);
        assert!(matches!(
            source(Header::validate(&r, &by_32, blocks).unwrap_err()),
            HeaderError::ElemAlign { .. }
        ));
        r.write_pod(OFF_ELEM_ALIGN, &32u32).unwrap();
        assert_eq!(Header::validate(&r, &by_32, blocks).unwrap().elem_size, 96);
        r.write_pod(OFF_ELEM_SIZE, &0u32).unwrap();
        assert!(matches!(
            source(Header::validate(&r, &by_32, blocks).unwrap_err()),
            HeaderError::ElemSize { found: 0, .. }
        ));
        // No multiple of 32 fits in a u32 above u32::MAX - 31: an error, not
        // an overflow.
        r.write_pod(OFF_ELEM_SIZE, &u32::MAX).unwrap();
        assert!(matches!(
            source(Header::validate(&r, &by_32, blocks).unwrap_err()),
            HeaderError::ElemSize {
                found: u32::MAX,
                ..
            }
        ));
    }

    #[test]
    fn a_capacity_above_the_callers_maximum_is_refused() {
        let r = published(16);
        assert!(Header::validate(&r, &EXPECT.max_capacity(16), layout).is_ok());
        assert_eq!(
            source(Header::validate(&r, &EXPECT.max_capacity(15), layout).unwrap_err()),
            HeaderError::Capacity {
                capacity: 16,
                reason: "it is larger than this code supports"
            }
        );
    }

    #[test]
    fn check_vacant_refuses_a_published_header_and_accepts_anything_else() {
        let r = HeapRegion::new(4096);
        Header::check_vacant(&r).unwrap();
        r.write_pod(OFF_MAGIC, &7u64).unwrap(); // garbage is not a live structure
        Header::check_vacant(&r).unwrap();
        let r = published(16);
        assert_eq!(
            source(Header::check_vacant(&r).unwrap_err()),
            HeaderError::AlreadyInitialised {
                kind: Kind::SPSC_RING
            }
        );
    }

    #[test]
    fn corrupted_fields_are_caught() {
        let r = published(16);
        r.write_pod(OFF_CAPACITY, &1_000_000u64).unwrap();
        assert!(matches!(
            source(Header::validate(&r, &EXPECT, layout).unwrap_err()),
            HeaderError::Layout { .. }
        ));
        r.write_pod(OFF_CAPACITY, &u64::MAX).unwrap();
        assert!(matches!(
            source(Header::validate(&r, &EXPECT, layout).unwrap_err()),
            HeaderError::Capacity { .. }
        ));
        r.write_pod(OFF_CAPACITY, &0u64).unwrap();
        assert!(matches!(
            source(Header::validate(&r, &EXPECT, layout).unwrap_err()),
            HeaderError::Capacity { .. }
        ));
        r.write_pod(OFF_TOTAL, &u64::MAX).unwrap();
        assert!(matches!(
            source(Header::read(&r).unwrap_err()),
            HeaderError::Truncated { .. }
        ));
        r.write_pod(OFF_STATE, &1u32).unwrap();
        assert!(matches!(
            source(Header::read(&r).unwrap_err()),
            HeaderError::NotReady { state: 1 }
        ));
        r.write_pod(OFF_MAGIC, &7u64).unwrap();
        assert!(matches!(
            source(Header::read(&r).unwrap_err()),
            HeaderError::BadMagic { found: 7 }
        ));
    }

    #[test]
    fn small_regions_and_oversized_total_are_refused() {
        let tiny = HeapRegion::new(32);
        assert!(matches!(
            source(Header::read(&tiny).unwrap_err()),
            HeaderError::RegionTooSmall { .. }
        ));
        let r = HeapRegion::new(128);
        let err =
            Header::init(&r, &HeaderInfo::new(Kind::SPSC_RING, 1, 8, 8, 16, 4096)).unwrap_err();
        assert!(matches!(
            source(err),
            HeaderError::Truncated {
                needed: 4096,
                actual: 128
            }
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let r = HeapRegion::new(256);
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            for off in (0..HEADER_SIZE).step_by(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                r.write_pod(off, &x).unwrap();
            }
            if x % 3 == 0 {
                r.write_pod(OFF_MAGIC, &MAGIC).unwrap();
                r.write_pod(OFF_STATE, &READY).unwrap();
            }
            let _ = Header::validate(&r, &EXPECT, layout);
        }
    }
}
