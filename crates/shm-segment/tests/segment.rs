//! `Segment`: create and open POSIX, System V and memfd segments; who
//! removes what on drop; errors that name the segment.

mod common;

use std::os::fd::AsFd;

use common::{posix_name, UnlinkGuard};
use shm_segment::{
    Error, Memfd, PosixOptions, PosixShm, Region, Segment, SysvKey, SysvOptions, SysvSegment,
    Target,
};

/// Removes a System V segment by id on drop, also when the test panics; a
/// segment already gone is fine.
struct SysvGuard(i32);

impl Drop for SysvGuard {
    fn drop(&mut self) {
        if let Ok(seg) = SysvSegment::open_id(self.0) {
            let _ = seg.remove();
        }
    }
}

fn exists_posix(name: &str) -> bool {
    match PosixShm::open(name) {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("open {name}: {e}"),
    }
}

fn exists_sysv(key: SysvKey) -> bool {
    match SysvSegment::open(key) {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("open {key}: {e}"),
    }
}

#[test]
fn segment_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Segment>();
}

#[test]
fn posix_create_and_open_share_the_bytes_and_the_size() {
    let name = posix_name("seg-share");
    let _guard = UnlinkGuard(name.clone());
    let a = Segment::create_posix(&name, 4096).unwrap();
    assert!(a.created());
    assert_eq!(a.len(), 4096);
    assert_eq!(a.target(), Target::Posix(name.clone()));
    a.write_at(100, b"from a").unwrap();

    let b = Segment::open_posix(&name).unwrap();
    assert!(!b.created());
    assert_eq!(b.len(), 4096);
    let mut buf = [0u8; 6];
    b.read_at(100, &mut buf).unwrap();
    assert_eq!(&buf, b"from a");
    b.write_pod(0, &7u64).unwrap();
    assert_eq!(a.read_pod::<u64>(0).unwrap(), 7);
    assert_eq!(b.posix().unwrap().name().as_str(), name);
    assert!(b.sysv().is_none() && b.memfd().is_none());
}

#[test]
fn posix_the_creator_removes_the_name_on_drop_the_opener_never() {
    let name = posix_name("seg-posix-drop");
    let _guard = UnlinkGuard(name.clone());
    let creator = Segment::create_posix(&name, 64).unwrap();
    let opener = Segment::open_posix(&name).unwrap();
    drop(opener);
    assert!(exists_posix(&name), "the opener's drop unlinked the name");

    let reader = Segment::open_posix(&name).unwrap();
    drop(creator);
    assert!(!exists_posix(&name), "the creator's drop left the name");
    // The mapping of the other value stays valid after the unlink.
    reader.write_at(0, b"still mapped").unwrap();
}

#[test]
fn posix_set_remove_on_drop_changes_it_either_way() {
    let kept = posix_name("seg-posix-keep");
    let _guard = UnlinkGuard(kept.clone());
    let seg = Segment::create_posix(&kept, 64).unwrap();
    seg.set_remove_on_drop(false);
    assert!(!seg.created());
    drop(seg);
    assert!(
        exists_posix(&kept),
        "set_remove_on_drop(false) did not keep it"
    );

    // An opener that is told to remove it does.
    let seg = Segment::open_posix(&kept).unwrap();
    seg.set_remove_on_drop(true);
    drop(seg);
    assert!(!exists_posix(&kept));
}

#[test]
fn from_posix_decides_removal_whatever_the_handle_was_told() {
    let name = posix_name("seg-from-posix");
    let _guard = UnlinkGuard(name.clone());
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 64)
        .unwrap();
    let seg = Segment::from_posix(shm).unwrap();
    seg.set_remove_on_drop(false);
    drop(seg);
    assert!(
        exists_posix(&name),
        "the handle's own unlink_on_drop removed the name the Segment keeps"
    );
}

#[test]
fn posix_the_segment_handle_refuses_to_shrink_under_the_segment() {
    let name = posix_name("seg-shrink");
    let _guard = UnlinkGuard(name.clone());
    let seg = Segment::create_posix(&name, 8192).unwrap();
    let err = seg.posix().unwrap().resize(4096).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShrinkRefused {
                size: 8192,
                new_size: 4096,
                ..
            }
        ),
        "{err:?}"
    );
    seg.posix().unwrap().resize(16384).unwrap(); // growing is fine
    assert_eq!(seg.len(), 8192); // the mapping keeps its length
}

#[test]
fn posix_errors_name_the_segment() {
    let missing = posix_name("seg-missing");
    let err = Segment::open_posix(&missing).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");

    let name = posix_name("seg-twice");
    let _guard = UnlinkGuard(name.clone());
    let _seg = Segment::create_posix(&name, 64).unwrap();
    let err = Segment::create_posix(&name, 64).unwrap_err();
    assert!(err.is_exists(), "{err:?}");
    assert!(err.to_string().contains(&name), "{err}");

    let err = Segment::create_posix(&posix_name("seg-empty"), 0).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
}

#[test]
fn sysv_create_and_open_share_the_bytes_and_the_size() {
    let key = SysvKey::random();
    let a = Segment::create_sysv(key, 4096).unwrap();
    let _guard = SysvGuard(a.sysv().unwrap().id());
    assert!(a.created());
    assert_eq!(a.len(), 4096);
    let id = a.sysv().unwrap().id();
    assert_eq!(a.target(), Target::SysvId(id));

    let b = Segment::open_sysv(key).unwrap();
    assert!(!b.created());
    assert_eq!((b.len(), b.sysv().unwrap().id()), (4096, id));
    a.write_at(10, b"sysv").unwrap();
    let mut buf = [0u8; 4];
    b.read_at(10, &mut buf).unwrap();
    assert_eq!(&buf, b"sysv");
    assert_eq!(a.sysv().unwrap().stat().unwrap().nattch, 2);
}

#[test]
fn sysv_the_creator_removes_the_key_on_drop_the_opener_never() {
    let key = SysvKey::random();
    let creator = Segment::create_sysv(key, 64).unwrap();
    let _guard = SysvGuard(creator.sysv().unwrap().id());
    drop(Segment::open_sysv(key).unwrap());
    assert!(exists_sysv(key), "the opener's drop removed the segment");

    let reader = Segment::open_sysv(key).unwrap();
    drop(creator);
    // IPC_RMID frees the key at once; the memory stays while attached.
    assert!(!exists_sysv(key), "the creator's drop left the key");
    assert!(reader
        .sysv()
        .unwrap()
        .stat()
        .unwrap()
        .is_marked_for_removal());
    reader.write_at(0, b"still attached").unwrap();
}

#[test]
fn sysv_set_remove_on_drop_false_keeps_it() {
    let key = SysvKey::random();
    let seg = Segment::create_sysv(key, 64).unwrap();
    let _guard = SysvGuard(seg.sysv().unwrap().id());
    seg.set_remove_on_drop(false);
    drop(seg);
    assert!(
        exists_sysv(key),
        "set_remove_on_drop(false) did not keep it"
    );
}

#[test]
fn from_sysv_decides_removal_whatever_the_handle_was_told() {
    let key = SysvKey::random();
    let handle = SysvOptions::new()
        .remove_on_drop(true)
        .create(key, 64)
        .unwrap();
    let _guard = SysvGuard(handle.id());
    let seg = Segment::from_sysv(handle, false).unwrap();
    drop(seg);
    assert!(
        exists_sysv(key),
        "the handle's own remove_on_drop removed what the Segment keeps"
    );
}

#[test]
fn sysv_errors_name_the_segment() {
    let key = SysvKey::random();
    let err = Segment::open_sysv(key).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains(&key.to_string()), "{err}");

    let seg = Segment::create_sysv(key, 64).unwrap();
    let _guard = SysvGuard(seg.sysv().unwrap().id());
    let err = Segment::create_sysv(key, 64).unwrap_err();
    assert!(err.is_exists(), "{err:?}");
    assert!(err.to_string().contains(&key.to_string()), "{err}");
}

#[test]
fn memfd_segments_share_the_memory_through_the_descriptor() {
    let a = Segment::create_memfd("seg-test", 4096).unwrap();
    assert!(!a.created()); // nothing to remove: no name
    assert_eq!(a.len(), 4096);
    assert_eq!(a.target(), Target::Memfd("seg-test".into()));
    a.write_at(1, b"fd").unwrap();

    // A duplicate of the descriptor, as another process would receive it.
    let fd = a.memfd().unwrap().as_fd().try_clone_to_owned().unwrap();
    let b = Segment::from_memfd(Memfd::from_fd(fd).unwrap()).unwrap();
    let mut buf = [0u8; 2];
    b.read_at(1, &mut buf).unwrap();
    assert_eq!(&buf, b"fd");
    assert!(b.posix().is_none() && b.sysv().is_none());
}
