//! Attaching to headers that another process wrote, corrupted, or keeps
//! scribbling over: [`Header::validate`] gives the typed [`HeaderError`],
//! never a panic and never an access out of bounds.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Running, UnlinkGuard, CHILD_TIMEOUT};
use shm_segment::{
    Error, Expect, Header, HeaderError, HeaderInfo, Kind, PosixOptions, PosixShm, ProcessId,
    Region, HEADER_SIZE, MAGIC, READY,
};

// The header's documented layout (see `shm_segment::Header`).
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_ELEM_SIZE: usize = 16;
const OFF_ELEM_ALIGN: usize = 20;
const OFF_CAPACITY: usize = 24;
const OFF_TOTAL: usize = 32;
const OFF_STATE: usize = 44;

const SEGMENT: usize = 4096;
const CAPACITY: u64 = 16;

/// Bytes a ring of `u64`s with this capacity needs, header included.
fn size_for(capacity: u64) -> Option<u64> {
    capacity.checked_mul(8)?.checked_add(HEADER_SIZE as u64)
}

fn layout(info: &HeaderInfo) -> Option<u64> {
    size_for(info.capacity)
}

fn expect() -> Expect {
    Expect::of::<u64>(Kind::SPSC_RING, 1)
}

fn valid_info() -> HeaderInfo {
    HeaderInfo::new(
        Kind::SPSC_RING,
        1,
        8,
        8,
        CAPACITY,
        size_for(CAPACITY).unwrap(),
    )
}

/// What the child does to segment `i`; `CASES[i].1` checks what the parent then finds.
type Check = fn(Result<HeaderInfo, HeaderError>, u32);

fn corrupt(case: &str, r: &impl Region) {
    let init = |info: &HeaderInfo| Header::init(r, info).unwrap();
    match case {
        "zeroed" | "tiny" => {}
        "valid" => init(&valid_info()),
        "bad_magic" => {
            init(&valid_info());
            r.write_pod(OFF_MAGIC, &0x1234_u64).unwrap();
        }
        "died_while_initialising" => {
            init(&valid_info());
            r.write_pod(OFF_STATE, &0u32).unwrap();
        }
        "wrong_kind" => init(&HeaderInfo {
            kind: Kind::MEMPOOL,
            ..valid_info()
        }),
        "version" => {
            init(&valid_info());
            r.write_pod(OFF_VERSION, &7u32).unwrap();
        }
        "elem_size" => {
            init(&valid_info());
            r.write_pod(OFF_ELEM_SIZE, &16u32).unwrap();
        }
        "elem_align" => {
            init(&valid_info());
            r.write_pod(OFF_ELEM_ALIGN, &4u32).unwrap();
        }
        "capacity_zero" => {
            init(&valid_info());
            r.write_pod(OFF_CAPACITY, &0u64).unwrap();
        }
        "capacity_overflow" => {
            init(&valid_info());
            r.write_pod(OFF_CAPACITY, &u64::MAX).unwrap();
        }
        "capacity_vs_total" => {
            init(&valid_info());
            r.write_pod(OFF_CAPACITY, &(CAPACITY + 1)).unwrap();
        }
        "total_past_the_end" => {
            init(&valid_info());
            r.write_pod(OFF_TOTAL, &(1u64 << 40)).unwrap();
        }
        "garbage" => {
            let mut x = u64::from(std::process::id()) | 1;
            for off in (0..HEADER_SIZE).step_by(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                r.write_pod(off, &x).unwrap();
            }
        }
        other => panic!("unknown case {other}"),
    }
}

const CASES: [(&str, Check); 14] = [
    ("zeroed", |r, _| {
        assert_eq!(r, Err(HeaderError::NotInitialised));
    }),
    ("valid", |r, child| {
        let info = r.unwrap();
        assert_eq!(info.capacity, CAPACITY);
        assert_eq!(info.creator.pid, child);
        // The creator has exited (and been reaped): a dead process.
        assert!(!info.creator.is_alive());
        assert_ne!(info.creator, ProcessId::current());
    }),
    ("bad_magic", |r, _| {
        assert_eq!(r, Err(HeaderError::BadMagic { found: 0x1234 }));
    }),
    ("died_while_initialising", |r, _| {
        assert_eq!(r, Err(HeaderError::NotReady { state: 0 }));
    }),
    ("wrong_kind", |r, _| {
        assert_eq!(
            r,
            Err(HeaderError::WrongKind {
                expected: Kind::SPSC_RING,
                found: Kind::MEMPOOL
            })
        );
    }),
    ("version", |r, _| {
        assert_eq!(
            r,
            Err(HeaderError::Version {
                expected: 1,
                found: 7
            })
        );
    }),
    ("elem_size", |r, _| {
        assert_eq!(
            r,
            Err(HeaderError::ElemSize {
                expected: 8,
                found: 16
            })
        );
    }),
    ("elem_align", |r, _| {
        assert_eq!(
            r,
            Err(HeaderError::ElemAlign {
                expected: 8,
                found: 4
            })
        );
    }),
    ("capacity_zero", |r, _| {
        assert!(
            matches!(r, Err(HeaderError::Capacity { capacity: 0, .. })),
            "{r:?}"
        );
    }),
    ("capacity_overflow", |r, _| {
        assert!(
            matches!(
                r,
                Err(HeaderError::Capacity {
                    capacity: u64::MAX,
                    ..
                })
            ),
            "{r:?}"
        );
    }),
    ("capacity_vs_total", |r, _| {
        assert_eq!(
            r,
            Err(HeaderError::Layout {
                expected: size_for(CAPACITY + 1).unwrap(),
                found: size_for(CAPACITY).unwrap()
            })
        );
    }),
    ("total_past_the_end", |r, _| {
        assert_eq!(
            r,
            Err(HeaderError::Truncated {
                needed: 1 << 40,
                actual: SEGMENT as u64
            })
        );
    }),
    ("garbage", |r, _| {
        assert!(matches!(r, Err(HeaderError::BadMagic { .. })), "{r:?}");
    }),
    ("tiny", |r, _| {
        assert_eq!(
            r,
            Err(HeaderError::RegionTooSmall {
                needed: HEADER_SIZE as u64,
                actual: 32
            })
        );
    }),
];

#[test]
fn corrupted_headers_from_another_process_give_typed_errors() {
    const TEST: &str = "corrupted_headers_from_another_process_give_typed_errors";
    if common::is_child(TEST) {
        let arg = common::child_arg();
        let names: Vec<&str> = arg.split(',').collect();
        assert_eq!(names.len(), CASES.len());
        for ((case, _), name) in CASES.iter().zip(names) {
            let map = PosixShm::open(name).unwrap().map().unwrap();
            corrupt(case, &map);
        }
        common::child_done(TEST);
        return;
    }

    let segments: Vec<(PosixShm, String)> = CASES
        .iter()
        .map(|(case, _)| {
            let name = common::posix_name(&format!("hdr-{}", case.replace('_', "-")));
            let size = if *case == "tiny" { 32 } else { SEGMENT };
            let shm = PosixOptions::new()
                .unlink_on_drop(true)
                .create(&name, size)
                .unwrap();
            (shm, name)
        })
        .collect();
    let names: Vec<&str> = segments.iter().map(|(_, n)| n.as_str()).collect();
    let child = Running::spawn(&mut common::child_command(TEST, &names.join(","))).unwrap();
    let child_pid = child.id();
    child.wait(CHILD_TIMEOUT).assert_child_passed(TEST);

    for ((case, check), (shm, name)) in CASES.iter().zip(&segments) {
        // Attach as a user would: open by name, map, validate.
        let map = PosixShm::open(name).unwrap().map().unwrap();
        let result = Header::validate(&map, &expect(), layout);
        let typed = match result {
            Ok(info) => Ok(info),
            Err(Error::Header { target, source }) => {
                assert_eq!(target, shm_segment::Target::Posix(name.clone()), "{case}");
                Err(source)
            }
            Err(other) => panic!("{case}: not a header error: {other:?}"),
        };
        check(typed, child_pid);
        // Read-only attach sees the same thing (validation never writes).
        let ro = shm.map_read_only().unwrap();
        let again = Header::validate(&ro, &expect(), layout);
        assert_eq!(
            again.is_ok(),
            *case == "valid",
            "{case}: read-only attach disagrees"
        );
        if let Err(e) = again {
            assert!(e.to_string().contains(name.as_str()), "{case}: {e}");
        }
    }
}

/// Offset of the stop word, past the header: the parent sets it to 1.
const STOP: usize = 1024;
/// Offset of the started word: the child sets it to 1 once it has scribbled.
const STARTED: usize = 1028;

#[test]
fn header_scribbled_on_concurrently_never_panics() {
    const TEST: &str = "header_scribbled_on_concurrently_never_panics";
    if common::is_child(TEST) {
        let name = common::child_arg();
        let map = PosixShm::open(&name).unwrap().map().unwrap();
        let stop = map.atomic_u32(STOP).unwrap();
        let started = map.atomic_u32(STARTED).unwrap();
        let deadline = Instant::now() + common::HANDSHAKE_TIMEOUT;
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rounds = 0u64;
        // A hostile peer: random words, often with a valid magic and state
        // so that validation gets past the first checks.
        while stop.load(Ordering::Acquire) == 0 {
            assert!(Instant::now() < deadline, "the parent never said stop");
            for off in (0..HEADER_SIZE).step_by(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                map.write_pod(off, &x).unwrap();
            }
            if x % 4 != 0 {
                map.write_pod(OFF_MAGIC, &MAGIC).unwrap();
                map.write_pod(OFF_STATE, &READY).unwrap();
            }
            if x % 8 == 1 {
                // A plausible header with a random capacity, which a torn
                // read may mix with the random words around it.
                map.write_pod(OFF_VERSION, &[1u32, Kind::SPSC_RING.0, 8, 8])
                    .unwrap();
                map.write_pod(OFF_CAPACITY, &(x % 600)).unwrap();
                map.write_pod(OFF_TOTAL, &size_for(x % 600).unwrap())
                    .unwrap();
            }
            rounds += 1;
            started.store(1, Ordering::Release);
            if rounds % 64 == 0 {
                std::thread::yield_now();
            }
        }
        eprintln!("child: {rounds} rounds of scribbling");
        common::child_done(TEST);
        return;
    }

    let name = common::posix_name("hdr-scribble");
    let _guard = UnlinkGuard(name.clone());
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, SEGMENT)
        .unwrap();
    let map = shm.map().unwrap();
    Header::init(&map, &valid_info()).unwrap();
    let mut child = Running::spawn(&mut common::child_command(TEST, &name)).unwrap();
    let started = map.atomic_u32(STARTED).unwrap();
    let scribbling = common::wait_until(common::HANDSHAKE_TIMEOUT, || {
        started.load(Ordering::Acquire) == 1 || child.has_exited()
    });
    if !scribbling || started.load(Ordering::Acquire) != 1 {
        panic!("the child never started: {:#?}", child.wait(CHILD_TIMEOUT));
    }

    // Validate while the child scribbles.
    let (mut ok, mut errors) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end && !child.has_exited() {
        match Header::validate(&map, &expect(), layout) {
            Ok(info) => {
                // Whatever it says, it is self-consistent and inside the region.
                assert_eq!(size_for(info.capacity), Some(info.total_size), "{info:?}");
                assert!(info.total_size <= SEGMENT as u64, "{info:?}");
                assert!(info.capacity > 0);
                ok += 1;
            }
            Err(Error::Header { .. }) => errors += 1,
            Err(other) => panic!("not a header error: {other:?}"),
        }
    }
    map.atomic_u32(STOP).unwrap().store(1, Ordering::Release);
    child.wait(CHILD_TIMEOUT).assert_child_passed(TEST);
    assert!(ok + errors > 0, "no validation ran");
    eprintln!("{ok} validations passed, {errors} gave header errors");
    assert!(errors > 0, "the scribbling child was never seen");
}
