//! Corrupted headers and corrupted shared state.
//!
//! 1. Attaching to memory that is not a valid ring (random bytes, a valid
//!    header with one field changed, a region too small) returns a typed
//!    `RingError` naming what is wrong, never panics.
//! 2. On a valid, attached ring, random values scribbled into the control
//!    block (positions, role words, futex words), the MPMC slot sequences
//!    and the header, between random operations, may make the data wrong or
//!    the ring look full or empty, but never make an operation panic, hang,
//!    or touch memory outside the ring: the rings here live in a mapping
//!    with `PROT_NONE` guard pages on both sides, so an access out of bounds
//!    would fault.
//!
//! 3. `inspect` (what `shm inspect` runs on any segment) validates a
//!    ring's header exactly as `attach` does and refuses what `attach`
//!    refuses with the same error, and `RingInfo::len` never panics.
//!
//! Random inputs come from a seed printed at the start of each test; set
//! `SHM_CORRUPT_SEED` to replay one.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{
    within, Guarded, Rng, MPMC_VERSION, OFF_CAPACITY, OFF_ELEM_ALIGN, OFF_ELEM_SIZE, OFF_KIND,
    OFF_MAGIC, OFF_STATE, OFF_TOTAL, OFF_VERSION, SPSC_VERSION,
};
use shm_ring::{inspect, MpmcRing, RingError, RingInfo, RingOptions, SpscRing};
use shm_segment::{
    Access, Error, HeaderError, HeapRegion, Kind, PosixOptions, ProcessId, Region, HEADER_SIZE,
};

/// The header error inside a ring error; panics on any other kind.
fn header_error(err: RingError) -> HeaderError {
    match err {
        RingError::Segment(Error::Header { source, .. }) => source,
        other => panic!("expected a header error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Attaching to what is not a valid ring.

const CAP: usize = 16;

fn spsc_bytes() -> Vec<u8> {
    let region = HeapRegion::new(SpscRing::<u64>::required_size(CAP));
    SpscRing::<u64, _>::create(&region, CAP, RingOptions::new()).unwrap();
    region.to_vec()
}

fn mpmc_bytes() -> Vec<u8> {
    let region = HeapRegion::new(MpmcRing::<u64>::required_size(CAP));
    MpmcRing::<u64, _>::create(&region, CAP, RingOptions::new()).unwrap();
    region.to_vec()
}

/// A valid ring's bytes with `edit` applied, attached as both kinds' own type.
fn attach_edited(edit: impl Fn(&Guarded)) -> (RingError, RingError) {
    let spsc = Guarded::with_bytes(&spsc_bytes());
    edit(&spsc);
    let mpmc = Guarded::with_bytes(&mpmc_bytes());
    edit(&mpmc);
    let e1 = SpscRing::<u64, _>::attach(&spsc).expect_err("SPSC attach succeeded");
    let e2 = MpmcRing::<u64, _>::attach(&mpmc).expect_err("MPMC attach succeeded");
    (e1, e2)
}

/// Both kinds refuse the edit with a header error that `check` accepts.
fn refused_by_header(edit: impl Fn(&Guarded), check: impl Fn(&HeaderError) -> bool) {
    let (e1, e2) = attach_edited(edit);
    for e in [e1, e2] {
        let msg = e.to_string();
        let source = header_error(e);
        assert!(check(&source), "unexpected error {source:?} ({msg})");
    }
}

#[test]
fn valid_rings_attach() {
    let spsc = Guarded::with_bytes(&spsc_bytes());
    let ring = SpscRing::<u64, _>::attach(&spsc).unwrap();
    assert_eq!(ring.capacity(), CAP);
    let mpmc = Guarded::with_bytes(&mpmc_bytes());
    let ring = MpmcRing::<u64, _>::attach(&mpmc).unwrap();
    assert_eq!(ring.capacity(), CAP);
}

#[test]
fn bad_magic_state_and_zeroes() {
    refused_by_header(
        |r| r.write_pod(OFF_MAGIC, &0x1234_5678u64).unwrap(),
        |e| *e == HeaderError::BadMagic { found: 0x1234_5678 },
    );
    refused_by_header(
        |r| r.write_pod(OFF_STATE, &0u32).unwrap(),
        |e| *e == HeaderError::NotReady { state: 0 },
    );
    refused_by_header(
        |r| r.fill(0, HEADER_SIZE, 0).unwrap(),
        |e| *e == HeaderError::NotInitialised,
    );
}

#[test]
fn wrong_kind_and_version() {
    let (e1, e2) = attach_edited(|r| r.write_pod(OFF_KIND, &Kind::MEMPOOL.0).unwrap());
    assert_eq!(
        header_error(e1),
        HeaderError::WrongKind {
            expected: Kind::SPSC_RING,
            found: Kind::MEMPOOL
        }
    );
    assert_eq!(
        header_error(e2),
        HeaderError::WrongKind {
            expected: Kind::MPMC_RING,
            found: Kind::MEMPOOL
        }
    );
    refused_by_header(
        |r| r.write_pod(OFF_KIND, &0xdead_u32).unwrap(),
        |e| {
            matches!(
                e,
                HeaderError::WrongKind {
                    found: Kind(0xdead),
                    ..
                }
            )
        },
    );
    // SPSC rings are at layout version 2 (the sleeper word), MPMC rings at 3
    // (and the claim records).
    for found in [SPSC_VERSION + 2, 1] {
        let (e1, e2) = attach_edited(|r| r.write_pod(OFF_VERSION, &found).unwrap());
        assert_eq!(
            header_error(e1),
            HeaderError::Version {
                expected: SPSC_VERSION,
                found
            }
        );
        assert_eq!(
            header_error(e2),
            HeaderError::Version {
                expected: MPMC_VERSION,
                found
            }
        );
    }
    refused_by_header(
        |r| r.write_pod(OFF_VERSION, &0u32).unwrap(),
        |e| {
            matches!(
                e,
                HeaderError::Version {
                    expected: SPSC_VERSION | MPMC_VERSION,
                    found: 0
                }
            )
        },
    );
    // An MPMC ring of layout 1 (no claim records) is refused, not misread.
    let mpmc = Guarded::with_bytes(&mpmc_bytes());
    mpmc.write_pod(OFF_VERSION, &1u32).unwrap();
    assert_eq!(
        header_error(MpmcRing::<u64, _>::attach(&mpmc).unwrap_err()),
        HeaderError::Version {
            expected: MPMC_VERSION,
            found: 1
        }
    );
    assert_eq!(
        header_error(inspect(&mpmc).unwrap_err()),
        HeaderError::Version {
            expected: MPMC_VERSION,
            found: 1
        }
    );

    // One kind of ring attached as the other.
    let spsc = Guarded::with_bytes(&spsc_bytes());
    let err = MpmcRing::<u64, _>::attach(&spsc).unwrap_err();
    assert_eq!(
        header_error(err),
        HeaderError::WrongKind {
            expected: Kind::MPMC_RING,
            found: Kind::SPSC_RING
        }
    );
    let mpmc = Guarded::with_bytes(&mpmc_bytes());
    let err = SpscRing::<u64, _>::attach(&mpmc).unwrap_err();
    assert_eq!(
        header_error(err),
        HeaderError::WrongKind {
            expected: Kind::SPSC_RING,
            found: Kind::MPMC_RING
        }
    );
}

#[test]
fn wrong_element_size_or_alignment() {
    refused_by_header(
        |r| r.write_pod(OFF_ELEM_SIZE, &4u32).unwrap(),
        |e| {
            *e == HeaderError::ElemSize {
                expected: 8,
                found: 4,
            }
        },
    );
    refused_by_header(
        |r| r.write_pod(OFF_ELEM_ALIGN, &4u32).unwrap(),
        |e| {
            *e == HeaderError::ElemAlign {
                expected: 8,
                found: 4,
            }
        },
    );
    refused_by_header(
        |r| r.write_pod(OFF_ELEM_ALIGN, &0u32).unwrap(),
        |e| {
            *e == HeaderError::ElemAlign {
                expected: 8,
                found: 0,
            }
        },
    );

    // The caller's type disagrees with the header.
    let spsc = Guarded::with_bytes(&spsc_bytes());
    let mpmc = Guarded::with_bytes(&mpmc_bytes());
    let size = |e: RingError| header_error(e);
    assert_eq!(
        size(SpscRing::<u32, _>::attach(&spsc).unwrap_err()),
        HeaderError::ElemSize {
            expected: 4,
            found: 8
        }
    );
    assert_eq!(
        size(MpmcRing::<[u64; 2], _>::attach(&mpmc).unwrap_err()),
        HeaderError::ElemSize {
            expected: 16,
            found: 8
        }
    );
    assert_eq!(
        size(SpscRing::<[u8; 8], _>::attach(&spsc).unwrap_err()),
        HeaderError::ElemAlign {
            expected: 1,
            found: 8
        }
    );
    assert_eq!(
        size(MpmcRing::<[u32; 2], _>::attach(&mpmc).unwrap_err()),
        HeaderError::ElemAlign {
            expected: 4,
            found: 8
        }
    );
}

/// Bytes a ring of `cap` u64 slots needs, from the ring's own arithmetic.
fn spsc_size(cap: usize) -> u64 {
    common::spsc_size::<u64>(cap as u64).unwrap()
}
fn mpmc_size(cap: usize) -> u64 {
    common::mpmc_size::<u64>(cap as u64).unwrap()
}

#[test]
fn bad_capacities() {
    // Not a power of two, with a total size that matches it: the ring's own
    // check names the capacity.
    let spsc = Guarded::with_bytes(&spsc_bytes());
    spsc.write_pod(OFF_CAPACITY, &12u64).unwrap();
    spsc.write_pod(OFF_TOTAL, &spsc_size(12)).unwrap();
    let err = SpscRing::<u64, _>::attach(&spsc).unwrap_err();
    assert!(
        matches!(err, RingError::Capacity { capacity: 12, .. }),
        "{err:?}"
    );
    let mpmc = Guarded::with_bytes(&mpmc_bytes());
    mpmc.write_pod(OFF_CAPACITY, &12u64).unwrap();
    mpmc.write_pod(OFF_TOTAL, &mpmc_size(12)).unwrap();
    let err = MpmcRing::<u64, _>::attach(&mpmc).unwrap_err();
    assert!(
        matches!(err, RingError::Capacity { capacity: 12, .. }),
        "{err:?}"
    );

    // Not a power of two, total size left alone: the layout disagrees.
    let (e1, e2) = attach_edited(|r| r.write_pod(OFF_CAPACITY, &12u64).unwrap());
    assert_eq!(
        header_error(e1),
        HeaderError::Layout {
            expected: spsc_size(12),
            found: spsc_size(CAP)
        }
    );
    assert_eq!(
        header_error(e2),
        HeaderError::Layout {
            expected: mpmc_size(12),
            found: mpmc_size(CAP)
        }
    );

    // Zero, and so large that the layout overflows.
    refused_by_header(
        |r| r.write_pod(OFF_CAPACITY, &0u64).unwrap(),
        |e| matches!(e, HeaderError::Capacity { capacity: 0, .. }),
    );
    for huge in [u64::MAX, 1 << 63, 1 << 62] {
        refused_by_header(
            |r| r.write_pod(OFF_CAPACITY, &huge).unwrap(),
            |e| matches!(e, HeaderError::Capacity { capacity, .. } if *capacity == huge),
        );
    }
    // Large but representable: the layout no longer matches the total size.
    refused_by_header(
        |r| r.write_pod(OFF_CAPACITY, &(1u64 << 40)).unwrap(),
        |e| matches!(e, HeaderError::Layout { .. }),
    );
    // Larger, with a matching total size: more than the region has.
    let spsc = Guarded::with_bytes(&spsc_bytes());
    spsc.write_pod(OFF_CAPACITY, &(1u64 << 40)).unwrap();
    spsc.write_pod(OFF_TOTAL, &spsc_size(1 << 40)).unwrap();
    let err = header_error(SpscRing::<u64, _>::attach(&spsc).unwrap_err());
    assert_eq!(
        err,
        HeaderError::Truncated {
            needed: spsc_size(1 << 40),
            actual: spsc_size(CAP)
        }
    );
}

#[test]
fn bad_total_size_and_small_regions() {
    // More than the region has.
    refused_by_header(
        |r| r.write_pod(OFF_TOTAL, &(r.len() as u64 + 1)).unwrap(),
        |e| matches!(e, HeaderError::Truncated { needed, actual } if *needed == *actual + 1),
    );
    refused_by_header(
        |r| r.write_pod(OFF_TOTAL, &u64::MAX).unwrap(),
        |e| {
            matches!(
                e,
                HeaderError::Truncated {
                    needed: u64::MAX,
                    ..
                }
            )
        },
    );
    // Less than the capacity implies.
    refused_by_header(
        |r| r.write_pod(OFF_TOTAL, &(r.len() as u64 - 8)).unwrap(),
        |e| matches!(e, HeaderError::Layout { .. }),
    );
    refused_by_header(
        |r| r.write_pod(OFF_TOTAL, &0u64).unwrap(),
        |e| matches!(e, HeaderError::Layout { found: 0, .. }),
    );

    // A valid ring's bytes cut short: the header claims more than there is.
    for bytes in [spsc_bytes(), mpmc_bytes()] {
        for len in [bytes.len() - 1, bytes.len() / 2, 200, HEADER_SIZE] {
            let cut = Guarded::with_bytes(&bytes[..len]);
            let e1 = header_error(SpscRing::<u64, _>::attach(&cut).unwrap_err());
            let e2 = header_error(MpmcRing::<u64, _>::attach(&cut).unwrap_err());
            for e in [e1, e2] {
                assert_eq!(
                    e,
                    HeaderError::Truncated {
                        needed: bytes.len() as u64,
                        actual: len as u64
                    }
                );
            }
        }
    }

    // Smaller than a header, down to nothing.
    for len in [0, 1, 8, HEADER_SIZE - 1] {
        let tiny = Guarded::new(len);
        let expected = HeaderError::RegionTooSmall {
            needed: HEADER_SIZE as u64,
            actual: len as u64,
        };
        assert_eq!(
            header_error(SpscRing::<u64, _>::attach(&tiny).unwrap_err()),
            expected
        );
        assert_eq!(
            header_error(MpmcRing::<u64, _>::attach(&tiny).unwrap_err()),
            expected
        );
    }
    assert!(SpscRing::<u64, _>::attach(HeapRegion::new(0)).is_err());
}

#[test]
fn create_refuses_bad_arguments() {
    let region = HeapRegion::new(SpscRing::<u64>::required_size(CAP));
    for cap in [0, 3, 12, 1 << 63] {
        let err = SpscRing::<u64, _>::create(&region, cap, RingOptions::new()).unwrap_err();
        assert!(
            matches!(err, RingError::Capacity { capacity, .. } if capacity == cap as u64),
            "{err:?}"
        );
        let err = MpmcRing::<u64, _>::create(&region, cap, RingOptions::new()).unwrap_err();
        assert!(
            matches!(err, RingError::Capacity { capacity, .. } if capacity == cap as u64),
            "{err:?}"
        );
    }
    let err = SpscRing::<u64, _>::create(&region, 2 * CAP, RingOptions::new()).unwrap_err();
    assert!(
        matches!(err, RingError::RegionTooSmall { needed, actual, .. }
            if needed == spsc_size(2 * CAP) && actual == spsc_size(CAP)),
        "{err:?}"
    );
    let err = MpmcRing::<u64, _>::create(&region, CAP, RingOptions::new()).unwrap_err();
    assert!(matches!(err, RingError::RegionTooSmall { .. }), "{err:?}");
    let err = SpscRing::<(), _>::create(&region, CAP, RingOptions::new()).unwrap_err();
    assert!(matches!(err, RingError::ZeroSized { .. }), "{err:?}");
    let err = MpmcRing::<(), _>::create(&region, CAP, RingOptions::new()).unwrap_err();
    assert!(matches!(err, RingError::ZeroSized { .. }), "{err:?}");

    // Nothing was written by the refusals; a real create works once. (An
    // MPMC ring, with its claim records, needs more room than this SPSC
    // ring: it is refused on a region big enough for both.)
    assert!(region.to_vec().iter().all(|&b| b == 0));
    SpscRing::<u64, _>::create(&region, CAP, RingOptions::new()).unwrap();
    let big = HeapRegion::new(MpmcRing::<u8>::required_size(4).max(spsc_size(CAP) as usize));
    SpscRing::<u64, _>::create(&big, CAP, RingOptions::new()).unwrap();
    for err in [
        SpscRing::<u64, _>::create(&region, CAP, RingOptions::new()).unwrap_err(),
        MpmcRing::<u8, _>::create(&big, 4, RingOptions::new()).unwrap_err(),
    ] {
        assert_eq!(
            header_error(err),
            HeaderError::AlreadyInitialised {
                kind: Kind::SPSC_RING
            }
        );
    }
}

/// A read-only mapping of a ring: creating there is refused, and so must be
/// attaching, because every use of a ring writes shared words (the role
/// claims, the positions, the MPMC sequences); a store to a read-only page
/// is a SIGSEGV, not an error. The child side shows what happens today when
/// the attach is let through: the first role claim faults.
#[test]
fn read_only_mapping_is_refused() {
    const TEST: &str = "read_only_mapping_is_refused";
    if common::is_child(TEST) {
        let shm = PosixOptions::new()
            .access(Access::ReadOnly)
            .open(&common::child_arg())
            .unwrap();
        let map = shm.map().unwrap();
        assert!(map.is_read_only());
        if let Ok(ring) = SpscRing::<u64, _>::attach(&map) {
            eprintln!("child: attached read-only; claiming the consumer role");
            let claimed = ring.consumer();
            eprintln!("child: survived the claim: {:?}", claimed.map(|_| ()));
        }
        common::child_done(TEST);
        return;
    }

    // Creating on a read-only mapping is refused.
    let name = common::posix_name("ring-ro");
    let size = MpmcRing::<u64>::required_size(CAP);
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, size)
        .unwrap();
    let ro = shm.map_read_only().unwrap();
    let err = MpmcRing::<u64, _>::create(&ro, CAP, RingOptions::new()).unwrap_err();
    assert!(
        matches!(err, RingError::Segment(Error::ReadOnly { .. })),
        "{err:?}"
    );
    let err = SpscRing::<u64, _>::create(&ro, CAP, RingOptions::new()).unwrap_err();
    assert!(
        matches!(err, RingError::Segment(Error::ReadOnly { .. })),
        "{err:?}"
    );

    // Attaching: an MPMC ring here, an SPSC ring in a second segment that a
    // child process maps read-only too.
    MpmcRing::<u64, _>::create(shm.map().unwrap(), CAP, RingOptions::new()).unwrap();
    let mpmc = MpmcRing::<u64, _>::attach(&ro).map(|_| ());
    let spsc_name = common::posix_name("ring-ro");
    let spsc_shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&spsc_name, SpscRing::<u64>::required_size(CAP))
        .unwrap();
    SpscRing::<u64, _>::create(spsc_shm.map().unwrap(), CAP, RingOptions::new()).unwrap();
    let spsc = SpscRing::<u64, _>::attach(spsc_shm.map_read_only().unwrap()).map(|_| ());
    let child = common::Running::child(TEST, &spsc_name).wait(common::HANG);
    assert!(
        matches!(spsc, Err(RingError::Segment(Error::ReadOnly { .. }))),
        "attaching an SPSC ring to a read-only mapping gave {spsc:?}, not Error::ReadOnly; \
         a child process that then claimed a role ended with {} (stderr: {})",
        child.status,
        child.stderr.trim()
    );
    assert!(
        matches!(mpmc, Err(RingError::Segment(Error::ReadOnly { .. }))),
        "attaching an MPMC ring to a read-only mapping gave {mpmc:?}, not Error::ReadOnly"
    );
    child.assert_child_passed(TEST);
}

// ---------------------------------------------------------------------------
// `inspect` on what is not a valid ring.

/// A header whose capacity is 2^63: `RingInfo::len` used to panic on it
/// (`clamp` with its minimum above its maximum), and `shm inspect` calls it.
/// `inspect` must refuse it as `attach` does, without panicking.
#[test]
fn inspect_refuses_a_capacity_of_2_pow_63() {
    for bytes in [spsc_bytes(), mpmc_bytes()] {
        let region = Guarded::with_bytes(&bytes);
        region.write_pod(OFF_CAPACITY, &(1u64 << 63)).unwrap();
        let outcome = std::panic::catch_unwind(|| inspect(&region).map(|info| info.len()));
        let err = match outcome {
            Err(_) => panic!("inspect (or RingInfo::len) panicked on capacity 2^63"),
            Ok(Ok(len)) => panic!("inspect accepted capacity 2^63 (len {len})"),
            Ok(Err(err)) => err,
        };
        let msg = err.to_string();
        assert!(
            matches!(header_error(err), HeaderError::Capacity { capacity, .. } if capacity == 1 << 63),
            "{msg}"
        );
    }
}

/// `RingInfo` has public fields: whatever they hold, `len` answers.
#[test]
fn ring_info_len_never_panics() {
    let info = RingInfo {
        kind: Kind::SPSC_RING,
        capacity: 1 << 63,
        elem_size: 8,
        head: 0,
        tail: 5,
        blocking: false,
        producer: None,
        consumer: None,
        creator: ProcessId::default(),
    };
    assert_eq!(info.len(), 5);
    for capacity in [0, 1, 8, 1 << 62, 1 << 63, u64::MAX] {
        for (head, tail) in [
            (0, 0),
            (0, u64::MAX),
            (u64::MAX, 0),
            (3, 1 << 63),
            (1 << 63, 3),
        ] {
            let info = RingInfo {
                capacity,
                head,
                tail,
                ..info.clone()
            };
            let len = info.len();
            assert!(len <= capacity, "len {len} > capacity {capacity}");
            assert_eq!(info.is_empty(), len == 0);
        }
    }
    // A tail behind the head reads as empty, one far ahead as full.
    let behind = RingInfo {
        head: 10,
        tail: 9,
        capacity: 8,
        ..info.clone()
    };
    assert_eq!(behind.len(), 0);
    let ahead = RingInfo {
        head: 0,
        tail: 100,
        capacity: 8,
        ..info
    };
    assert_eq!(ahead.len(), 8);
}

/// `inspect` applies `attach`'s checks: every edit of a valid `u64` ring's
/// header that `attach` refuses, `inspect` refuses with the same error.
#[test]
fn inspect_refuses_what_attach_refuses() {
    type Edit = Box<dyn Fn(&Guarded)>;
    let cap =
        |c: u64| -> Edit { Box::new(move |r: &Guarded| r.write_pod(OFF_CAPACITY, &c).unwrap()) };
    let mut edits: Vec<(&str, Edit)> = vec![
        ("capacity 0", cap(0)),
        ("capacity 12", cap(12)),
        ("capacity 2^40", cap(1 << 40)),
        ("capacity 2^62", cap(1 << 62)),
        ("capacity 2^63", cap(1 << 63)),
        ("capacity u64::MAX", cap(u64::MAX)),
        (
            "the next version",
            Box::new(|r: &Guarded| {
                r.write_pod(OFF_VERSION, &(common::MPMC_VERSION + 1))
                    .unwrap()
            }),
        ),
        (
            "version 1 (before the 64-bit sleeper count)",
            Box::new(|r: &Guarded| r.write_pod(OFF_VERSION, &1u32).unwrap()),
        ),
        (
            "total + 8",
            Box::new(|r: &Guarded| {
                let total: u64 = r.read_pod(OFF_TOTAL).unwrap();
                r.write_pod(OFF_TOTAL, &(total + 8)).unwrap();
            }),
        ),
        (
            "total > region",
            Box::new(|r: &Guarded| r.write_pod(OFF_TOTAL, &(r.len() as u64 + 1)).unwrap()),
        ),
    ];
    // Not a power of two with a total size that matches it: only the ring's own check sees it.
    for mpmc in [false, true] {
        edits.push((
            if mpmc {
                "mpmc capacity 12, total matching"
            } else {
                "spsc capacity 12, total matching"
            },
            Box::new(move |r: &Guarded| {
                let is_mpmc = r.read_pod::<u32>(OFF_KIND).unwrap() == Kind::MPMC_RING.0;
                if is_mpmc == mpmc {
                    r.write_pod(OFF_CAPACITY, &12u64).unwrap();
                    let total = if mpmc { mpmc_size(12) } else { spsc_size(12) };
                    r.write_pod(OFF_TOTAL, &total).unwrap();
                }
            }),
        ));
    }
    for (what, edit) in &edits {
        for (bytes, mpmc) in [(spsc_bytes(), false), (mpmc_bytes(), true)] {
            let region = Guarded::with_bytes(&bytes);
            edit(&region);
            let attached = if mpmc {
                MpmcRing::<u64, _>::attach(&region).map(|_| ())
            } else {
                SpscRing::<u64, _>::attach(&region).map(|_| ())
            };
            let inspected = inspect(&region);
            match (attached, inspected) {
                (Err(a), Err(i)) => assert_eq!(a.to_string(), i.to_string(), "{what}, mpmc {mpmc}"),
                (Ok(()), Ok(info)) => assert!(info.len() <= info.capacity, "{what}"),
                (a, i) => panic!("{what}, mpmc {mpmc}: attach gave {a:?}, inspect {i:?}"),
            }
        }
    }
    // The typed checks of `attach` that `inspect`, which has no type, leaves out
    // are the element size and alignment; an alignment that no type has is refused.
    let region = Guarded::with_bytes(&spsc_bytes());
    region.write_pod(OFF_ELEM_ALIGN, &3u32).unwrap();
    let err = inspect(&region).unwrap_err();
    assert!(
        matches!(err, RingError::ElemAlign { align: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("alignment 3 is not a power of two"),
        "{err}"
    );
}

/// Random bytes, then random bytes behind a plausible header, attached as
/// both kinds: an error or, where the random header happens to be valid, a
/// ring that survives a few operations.
#[test]
fn random_bytes_never_panic() {
    within(Duration::from_secs(120), "random_bytes_never_panic", || {
        let mut rng = Rng::from_env("SHM_CORRUPT_SEED");
        let sizes = [
            0,
            1,
            63,
            64,
            65,
            200,
            767,
            768,
            spsc_size(1) as usize,
            spsc_size(CAP) as usize,
            mpmc_size(CAP) as usize,
            4096,
        ];
        let mut accepted = 0;
        for round in 0..3000 {
            let len = sizes[round % sizes.len()];
            let mut bytes = vec![0u8; len];
            rng.fill(&mut bytes);
            if round % 2 == 1 && len >= HEADER_SIZE {
                plausible_header(&mut rng, &mut bytes);
            }
            let region = Guarded::with_bytes(&bytes);
            // `inspect` first (the operations below change the bytes): it
            // never panics, and on a header for `u64` elements it accepts
            // exactly what one of the attaches accepts.
            let inspected = inspect(&region);
            if let Ok(info) = &inspected {
                assert!(info.capacity.is_power_of_two(), "{info:?}");
                assert!(info.len() <= info.capacity, "{info:?}");
            }
            let u64_elems = len >= HEADER_SIZE
                && region.read_pod::<u32>(OFF_ELEM_SIZE).unwrap() == 8
                && region.read_pod::<u32>(OFF_ELEM_ALIGN).unwrap() == 8;
            let attachable = SpscRing::<u64, _>::attach(&region).is_ok()
                || MpmcRing::<u64, _>::attach(&region).is_ok();
            if u64_elems {
                assert_eq!(inspected.is_ok(), attachable, "{inspected:?}");
            }
            if let Ok(ring) = SpscRing::<u64, _>::attach(&region) {
                accepted += 1;
                spsc_ops(&ring, &mut rng, &region, 50, false);
            }
            if let Ok(ring) = MpmcRing::<u64, _>::attach(&region) {
                accepted += 1;
                mpmc_ops(&ring, &mut rng, &region, 50, false);
            }
            let _ = SpscRing::<[u8; 3], _>::attach(&region);
            let _ = MpmcRing::<[u32; 5], _>::attach(&region);
        }
        eprintln!("random headers that attached: {accepted}");
        assert!(
            accepted > 0,
            "no random header was valid: the ops path went untested"
        );
    });
}

/// A header with the magic and ready state, and each other field either
/// right for a `u64` ring or random.
fn plausible_header(rng: &mut Rng, bytes: &mut [u8]) {
    let mut put = |off: usize, v: &[u8]| bytes[off..off + v.len()].copy_from_slice(v);
    put(OFF_MAGIC, &shm_segment::MAGIC.to_le_bytes());
    put(OFF_STATE, &shm_segment::READY.to_le_bytes());
    let mpmc = rng.below(2) == 0;
    let kind = if mpmc {
        Kind::MPMC_RING
    } else {
        Kind::SPSC_RING
    };
    if rng.below(8) != 0 {
        put(OFF_KIND, &kind.0.to_le_bytes());
    }
    if rng.below(8) != 0 {
        let version = if mpmc {
            common::MPMC_VERSION
        } else {
            common::SPSC_VERSION
        };
        put(OFF_VERSION, &version.to_le_bytes());
    }
    if rng.below(8) != 0 {
        put(OFF_ELEM_SIZE, &8u32.to_le_bytes());
    }
    if rng.below(8) != 0 {
        put(OFF_ELEM_ALIGN, &8u32.to_le_bytes());
    }
    let cap = match rng.below(4) {
        0 => rng.next_u64(),
        1 => 1 << rng.below(64),
        _ => 1 << rng.below(5),
    };
    put(OFF_CAPACITY, &cap.to_le_bytes());
    let size = |cap: u64| {
        let (off, per) = if mpmc {
            (mpmc_size(1) - 16, 16)
        } else {
            (spsc_size(1) - 8, 8)
        };
        cap.checked_mul(per).and_then(|b| b.checked_add(off))
    };
    let total = match rng.below(4) {
        0 => rng.next_u64(),
        _ => size(cap).unwrap_or(0),
    };
    put(OFF_TOTAL, &total.to_le_bytes());
}

// ---------------------------------------------------------------------------
// Scribbling over a live ring.

/// Where the words worth scribbling over are, for a ring of `cap` slots.
fn targets(mpmc: bool, cap: usize) -> Vec<usize> {
    let mut words = vec![
        common::TAIL_POS,
        common::TAIL_OWNER,
        common::HEAD_POS,
        common::HEAD_OWNER,
    ];
    // The futex words and sleeper counts (items, room) and the flags.
    words.extend([common::ITEMS_SEQ, common::ROOM_SEQ, common::FLAGS]);
    words.extend([common::ITEMS_WAITERS, common::ROOM_WAITERS]);
    // Header fields: read once at attach, so live handles must not care.
    words.extend([OFF_CAPACITY, OFF_TOTAL, OFF_VERSION]);
    if mpmc {
        let slot = common::mpmc_slot_size::<u64>();
        let slots = common::mpmc_slots_offset::<u64>();
        words.extend((0..cap).map(|i| slots + i * slot));
        // The recovery counts and the claim records (owner, first
        // position, length) of the first lanes, which this thread binds.
        words.extend([common::COUNTS_OFFSET, common::COUNTS_OFFSET + 8]);
        for lane in 0..4 {
            let at = common::LANES_OFFSET + lane * common::LANE_SIZE;
            words.extend([at, at + 8, at + 16]);
        }
        assert_eq!(
            common::LANES_OFFSET + common::LANES * common::LANE_SIZE,
            slots,
            "the claim records are not where the tests think"
        );
    }
    words
}

/// A value likely to hit an edge: near the current positions, a multiple of
/// the capacity, a sequence-like value, an extreme, or anything.
fn nasty(rng: &mut Rng, region: &impl Region, cap: u64) -> u64 {
    let head = region
        .load_u64(common::HEAD_POS, Ordering::Relaxed)
        .unwrap();
    let tail = region
        .load_u64(common::TAIL_POS, Ordering::Relaxed)
        .unwrap();
    let d = rng.below(4 * cap + 3).wrapping_sub(2 * cap + 1);
    match rng.below(9) {
        0 => head.wrapping_add(d),
        1 => tail.wrapping_add(d),
        2 => head.wrapping_add(d).wrapping_mul(2),
        3 => tail.wrapping_add(d).wrapping_mul(2).wrapping_add(1),
        4 => [0, 1, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1][rng.below(6) as usize],
        5 => cap.wrapping_mul(rng.below(5)),
        6 => u64::from(rng.next_u64() as u32),
        _ => rng.next_u64(),
    }
}

fn scribble(rng: &mut Rng, region: &impl Region, words: &[usize], cap: u64) {
    for _ in 0..=rng.below(3) {
        let at = words[rng.below(words.len() as u64) as usize];
        let v = nasty(rng, region, cap);
        region.atomic_u64(at).unwrap().store(v, Ordering::Relaxed);
    }
}

/// Random SPSC operations with weak, always-true checks; scribbles between
/// them when `scribbling`.
fn spsc_ops<R: Region>(
    ring: &SpscRing<u64, &R>,
    rng: &mut Rng,
    region: &R,
    ops: usize,
    scribbling: bool,
) {
    let cap = ring.capacity();
    let words = targets(false, cap);
    let (Ok(mut tx), Ok(mut rx)) = (ring.producer(), ring.consumer()) else {
        return; // a random owner word named a live process: nothing to run
    };
    let mut buf = vec![0u64; 2 * cap + 2];
    for _ in 0..ops {
        if scribbling && rng.below(3) == 0 {
            scribble(rng, region, &words, cap as u64);
        }
        let n = rng.below(2 * cap as u64 + 2) as usize;
        match rng.below(14) {
            0 => drop(tx.push(rng.next_u64())),
            1 => drop(tx.push_blocking(1, Duration::from_micros(rng.below(200)))),
            2 => assert!(tx.push_slice(&buf[..n]) <= n.min(cap)),
            3 => drop(tx.push_exact(&buf[..n])),
            4 => {
                if let Ok(mut chunk) = tx.write_chunk(n) {
                    assert!(chunk.len() <= cap);
                    for i in 0..chunk.len() {
                        chunk.write(i, &7);
                        let _ = chunk.write_bytes(i, 4, &[1, 2, 3, 4]);
                    }
                    // SAFETY: this thread is the only user of the ring.
                    let (a, b) = unsafe { chunk.as_mut_slices() };
                    assert_eq!(a.len() + b.len(), n);
                    a.fill(3);
                    b.fill(4);
                    chunk.commit(rng.below(n as u64 + 1) as usize);
                }
            }
            5 => drop(rx.pop()),
            6 => drop(rx.pop_blocking(Duration::from_micros(rng.below(200)))),
            7 => assert!(rx.pop_into(&mut buf[..n]) <= n.min(cap)),
            8 => drop(rx.pop_exact(&mut buf[..n])),
            9 => {
                if let Ok(chunk) = rx.read_chunk(n) {
                    assert!(chunk.len() <= cap);
                    for i in 0..chunk.len() {
                        let _ = chunk.read(i);
                        let _ = chunk.read_bytes(i, 2, &mut [0; 6]);
                    }
                    // SAFETY: this thread is the only user of the ring.
                    let (a, b) = unsafe { chunk.as_slices() };
                    assert_eq!(a.len() + b.len(), n);
                    chunk.commit(rng.below(n as u64 + 1) as usize);
                }
            }
            10 => {
                assert!(ring.len() <= cap);
                assert!(tx.slots() <= cap);
                assert!(rx.slots() <= cap);
                let _ = (ring.is_empty(), rx.is_empty());
            }
            11 => {
                // Take the roles again: the new ends read the (scribbled)
                // positions from shared memory.
                drop(tx);
                drop(rx);
                let (Ok(t), Ok(r)) = (ring.producer(), ring.consumer()) else {
                    return;
                };
                (tx, rx) = (t, r);
            }
            12 => {
                let again = SpscRing::<u64, _>::attach(region);
                if let Ok(again) = again {
                    assert_eq!(again.capacity(), cap);
                    assert!(again.len() <= cap);
                }
            }
            _ => assert_eq!(tx.capacity(), cap),
        }
    }
}

/// Random MPMC operations with weak, always-true checks; scribbles between
/// them when `scribbling`.
fn mpmc_ops<R: Region>(
    ring: &MpmcRing<u64, &R>,
    rng: &mut Rng,
    region: &R,
    ops: usize,
    scribbling: bool,
) {
    let cap = ring.capacity();
    let words = targets(true, cap);
    let other = ring.clone();
    let mut buf = vec![0u64; 2 * cap + 2];
    for _ in 0..ops {
        if scribbling && rng.below(3) == 0 {
            scribble(rng, region, &words, cap as u64);
        }
        let h = if rng.below(2) == 0 { ring } else { &other };
        let n = rng.below(2 * cap as u64 + 2) as usize;
        match rng.below(9) {
            0 => drop(h.push(rng.next_u64())),
            1 => drop(h.push_blocking(1, Duration::from_micros(rng.below(200)))),
            2 => assert!(h.push_slice(&buf[..n]) <= n.min(cap)),
            3 => drop(h.push_exact(&buf[..n])),
            4 => drop(h.pop()),
            5 => drop(h.pop_blocking(Duration::from_micros(rng.below(200)))),
            6 => assert!(h.pop_into(&mut buf[..n]) <= n.min(cap)),
            7 => {
                assert!(h.len() <= cap);
                let _ = h.is_empty();
            }
            _ => {
                if let Ok(again) = MpmcRing::<u64, _>::attach(region) {
                    assert_eq!(again.capacity(), cap);
                    assert!(again.len() <= cap);
                }
            }
        }
    }
}

#[test]
fn scribbled_spsc_never_panics_or_hangs() {
    within(Duration::from_secs(120), "scribbled SPSC", || {
        let mut rng = Rng::from_env("SHM_CORRUPT_SEED");
        let deadline = Instant::now() + Duration::from_secs(20);
        for round in 0..400 {
            if Instant::now() > deadline {
                eprintln!("stopped after {round} rounds (time limit)");
                break;
            }
            let cap = [1, 2, 4, 16, 64][round % 5];
            let blocking = round % 3 == 0;
            let region = Guarded::new(SpscRing::<u64>::required_size(cap));
            let ring =
                SpscRing::<u64, _>::create(&region, cap, RingOptions::new().blocking(blocking))
                    .unwrap();
            spsc_ops(&ring, &mut rng, &region, 300, true);
        }
    });
}

#[test]
fn scribbled_mpmc_never_panics_or_hangs() {
    within(Duration::from_secs(120), "scribbled MPMC", || {
        let mut rng = Rng::from_env("SHM_CORRUPT_SEED");
        let deadline = Instant::now() + Duration::from_secs(20);
        for round in 0..400 {
            if Instant::now() > deadline {
                eprintln!("stopped after {round} rounds (time limit)");
                break;
            }
            let cap = [1, 2, 4, 16, 64][round % 5];
            let blocking = round % 3 == 0;
            let region = Guarded::new(MpmcRing::<u64>::required_size(cap));
            let ring =
                MpmcRing::<u64, _>::create(&region, cap, RingOptions::new().blocking(blocking))
                    .unwrap();
            mpmc_ops(&ring, &mut rng, &region, 300, true);
        }
    });
}

/// Every claim lane held by a live process that never lets go (a stuck or
/// hostile peer, or a corrupted header): an MPMC push or pop must give up
/// (`Full`, `Stalled`, nothing moved) instead of waiting for a lane forever.
#[test]
fn mpmc_operations_give_up_when_every_lane_is_held() {
    let mut peer = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let holder = shm_segment::ProcessId::of(peer.id()).expect("the peer's id");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ring = MpmcRing::<u64>::new_heap(CAP).unwrap();
        for lane in 0..common::LANES {
            let at = common::LANES_OFFSET + lane * common::LANE_SIZE;
            ring.region().write_pod(at, &holder.to_word()).unwrap();
        }
        let push = ring.push(7);
        let pushed = ring.push_slice(&[1, 2]);
        let pop = ring.pop();
        let popped = ring.pop_into(&mut [0; 2]);
        let _ = done_tx.send((push, pushed, pop, popped, ring.len()));
    });
    let outcome = done_rx.recv_timeout(Duration::from_secs(20));
    let _ = peer.kill();
    let _ = peer.wait();
    let (push, pushed, pop, popped, len) =
        outcome.expect("push/pop still waiting for a lane after 20 s");
    assert_eq!(push, Err(shm_ring::PushError::Full(7)));
    assert_eq!(pushed, 0);
    assert!(
        matches!(pop, Err(shm_ring::PopError::Stalled { .. })),
        "{pop:?}"
    );
    assert_eq!((popped, len), (0, 0));
}

/// Fills a stretch of this thread's stack with a marker, so that whatever a
/// following call leaves uninitialised on the stack reads as the marker.
#[inline(never)]
fn dirty_the_stack() {
    let junk = std::hint::black_box([0xA5_u8; 16 * 1024]);
    std::hint::black_box(&junk);
}

/// Creating a ring writes no byte of this process's stack into shared
/// memory: the control block's padding (the gaps `CachePadded` leaves) stays
/// zero, so a reader of the segment learns nothing about the creator's
/// addresses. The old code wrote whole `CachePadded` values, padding
/// included, from the stack.
#[test]
fn creating_a_ring_leaks_no_stack_bytes_into_the_control_block() {
    use shm_ring::layout;
    for blocking in [false, true] {
        let opts = RingOptions::new().blocking(blocking);
        dirty_the_stack();
        // No role taken: the owner words stay zero too.
        let region = HeapRegion::new(SpscRing::<u64>::required_size(8));
        let spsc = SpscRing::<u64, _>::create(region, 8, opts).unwrap();
        dirty_the_stack();
        let mpmc = MpmcRing::<u64>::new_heap_with(8, opts).unwrap();
        for (what, bytes) in [
            ("spsc", spsc.region().to_vec()),
            ("mpmc", mpmc.region().to_vec()),
        ] {
            let control = &bytes[layout::CONTROL_OFFSET..][..layout::CONTROL_SIZE];
            for (i, &b) in control.iter().enumerate() {
                let at = layout::CONTROL_OFFSET + i;
                if (layout::FLAGS..layout::FLAGS + 8).contains(&at) {
                    continue;
                }
                assert_eq!(b, 0, "{what}: byte {at} of the control block is {b:#x}");
            }
        }
    }
}
