//! The one-call constructors: a ring that owns its segment (created by
//! name, key or memfd), removes it when the last handle drops if it created
//! it, and attaches by name or key with the header validated.

mod common;

use shm_ring::{MpmcRing, RingError, RingOptions, SpscRing};
use shm_segment::{Segment, SysvKey};

fn gone(name: &str) -> bool {
    Segment::open_posix(name).is_err_and(|e| e.is_not_found())
}

#[test]
fn spsc_create_open_and_unlink_when_the_last_handle_drops() {
    let name = common::posix_name("ring-seg-spsc");
    let _guard = common::UnlinkGuard(name.clone());
    let ring = SpscRing::<u64>::create_posix(&name, 8).unwrap();
    assert!(ring.region().created());
    let other = SpscRing::<u64>::open_posix(&name).unwrap();
    assert!(!other.region().created());
    let mut tx = ring.producer().unwrap();
    let mut rx = other.consumer().unwrap();
    tx.push(42).unwrap();
    assert_eq!(rx.pop(), Ok(42));
    // The roles keep the mapping (and the creator's name) alive.
    drop((ring, other, rx));
    assert!(!gone(&name), "unlinked while the producer still lives");
    tx.push(1).unwrap();
    drop(tx);
    assert!(gone(&name), "the creator's last handle did not unlink");
}

#[test]
fn mpmc_create_open_and_unlink() {
    let name = common::posix_name("ring-seg-mpmc");
    let _guard = common::UnlinkGuard(name.clone());
    let ring = MpmcRing::<u32>::create_posix(&name, 16).unwrap();
    let other = MpmcRing::<u32>::open_posix(&name).unwrap();
    ring.push(5).unwrap();
    assert_eq!(other.pop(), Ok(5));
    drop(other); // opened, not created: removes nothing
    assert!(!gone(&name));
    drop(ring);
    assert!(gone(&name));
}

#[test]
fn remove_on_drop_can_be_turned_off() {
    let name = common::posix_name("ring-seg-keep");
    let _guard = common::UnlinkGuard(name.clone());
    let ring = SpscRing::<u8>::create_posix(&name, 4).unwrap();
    ring.region().set_remove_on_drop(false);
    ring.producer().unwrap().push(9).unwrap();
    drop(ring);
    let again = SpscRing::<u8>::open_posix(&name).unwrap();
    assert_eq!(again.consumer().unwrap().pop(), Ok(9));
}

#[test]
fn open_validates_the_header() {
    let name = common::posix_name("ring-seg-validate");
    let _guard = common::UnlinkGuard(name.clone());
    let _ring = SpscRing::<u64>::create_posix(&name, 8).unwrap();
    assert!(matches!(
        SpscRing::<u32>::open_posix(&name),
        Err(RingError::Segment(_))
    ));
    assert!(matches!(
        MpmcRing::<u64>::open_posix(&name),
        Err(RingError::Segment(_))
    ));
    let missing = common::posix_name("ring-seg-missing");
    match SpscRing::<u64>::open_posix(&missing) {
        Err(RingError::Segment(e)) => assert!(e.is_not_found(), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn create_refuses_an_existing_name_and_leaves_it_alone() {
    let name = common::posix_name("ring-seg-exists");
    let _guard = common::UnlinkGuard(name.clone());
    let ring = SpscRing::<u64>::create_posix(&name, 8).unwrap();
    ring.producer().unwrap().push(3).unwrap();
    assert!(SpscRing::<u64>::create_posix(&name, 8).is_err());
    let other = SpscRing::<u64>::open_posix(&name).unwrap();
    assert_eq!(other.consumer().unwrap().pop(), Ok(3));
}

#[test]
fn a_bad_capacity_creates_no_segment() {
    let name = common::posix_name("ring-seg-badcap");
    let _guard = common::UnlinkGuard(name.clone());
    let err = SpscRing::<u64>::create_posix(&name, 1000).unwrap_err();
    assert!(
        matches!(err, RingError::Capacity { capacity: 1000, .. }),
        "{err:?}"
    );
    assert!(gone(&name));
    let err = MpmcRing::<u64>::create_posix(&name, 0).unwrap_err();
    assert!(
        matches!(err, RingError::Capacity { capacity: 0, .. }),
        "{err:?}"
    );
    assert!(gone(&name));
}

#[test]
fn round_up_makes_the_next_power_of_two() {
    let name = common::posix_name("ring-seg-round");
    let _guard = common::UnlinkGuard(name.clone());
    let opts = RingOptions::new().round_up(true);
    let ring = SpscRing::<u64>::create_posix_with(&name, 1000, opts).unwrap();
    assert_eq!(ring.capacity(), 1024);
    let mut tx = ring.producer().unwrap();
    assert_eq!(tx.push_slice(&[1; 2000]), 1024);
    assert!(tx.is_full());
    assert_eq!(SpscRing::<u64>::open_posix(&name).unwrap().capacity(), 1024);
    // Exact powers of two stay as they are; 0 is still refused.
    let (tx, _rx) = SpscRing::<u8>::new_heap_with(64, opts).unwrap();
    assert_eq!(tx.capacity(), 64);
    assert!(matches!(
        MpmcRing::<u8>::new_heap_with(0, opts),
        Err(RingError::Capacity { capacity: 0, .. })
    ));
    // `required_size` counts the rounded capacity.
    assert_eq!(
        SpscRing::<u64>::required_size(1000),
        SpscRing::<u64>::required_size(1024)
    );
    assert_eq!(
        MpmcRing::<u64>::required_size(3),
        MpmcRing::<u64>::required_size(4)
    );
}

#[test]
fn sysv_create_and_open() {
    let key = SysvKey::random();
    let ring = MpmcRing::<u64>::create_sysv(key, 4).unwrap();
    let other = MpmcRing::<u64>::open_sysv(key).unwrap();
    ring.push(8).unwrap();
    assert_eq!(other.pop(), Ok(8));
    drop(other);
    drop(ring);
    assert!(
        SpscRing::<u64>::open_sysv(key).is_err(),
        "the creator's drop did not remove the segment"
    );
    let key = SysvKey::random();
    let opts = RingOptions::new().blocking(true);
    let ring = SpscRing::<u16>::create_sysv_with(key, 4, opts).unwrap();
    assert!(shm_ring::inspect(ring.region()).unwrap().blocking);
}

#[test]
fn memfd_create() {
    let ring = SpscRing::<u64>::create_memfd("shm-test-ring-memfd", 32).unwrap();
    assert!(ring.region().memfd().is_some());
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.push(6).unwrap();
    assert_eq!(rx.pop(), Ok(6));
    let opts = RingOptions::new().round_up(true);
    let mpmc = MpmcRing::<u64>::create_memfd_with("shm-test-ring-memfd", 5, opts).unwrap();
    assert_eq!(mpmc.capacity(), 8);
}
