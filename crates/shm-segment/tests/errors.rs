//! Bad input and hostile surroundings: each gives its typed error, names the
//! segment in its message, and changes nothing it should not.
//!
//! Some tests need a second process: one that sets the process-wide umask,
//! one that runs under another uid, one inside a user and mount namespace
//! with a tiny tmpfs on `/dev/shm`. Those run the test binary again with a
//! role (see `common`), and skip, saying why, when the machine refuses.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{FileGuard, Running, CHILD_TIMEOUT};
use shm_segment::{
    Access, AnonShared, Error, Header, HeaderInfo, Kind, Memfd, PermChange, PosixOptions, PosixShm,
    Region, Seals, SysvKey, SysvOptions, SysvSegment, Target,
};

/// Asserts that `err`'s message names `what` (a key, an id, a name).
#[track_caller]
fn names(err: &Error, what: &str) {
    let msg = err.to_string();
    assert!(msg.contains(what), "{msg:?} does not name {what:?}");
}

// ---------------------------------------------------------------------------
// Missing, too small, already there
// ---------------------------------------------------------------------------

#[test]
fn missing_segments_are_enoent_and_bad_ids_einval() {
    let key = SysvKey::random();
    let err = SysvSegment::open(key).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    names(&err, &key.to_string());
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::NotFound
    );

    let name = common::posix_name("missing");
    let err = PosixShm::open(&name).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    names(&err, &name);
    let err = PosixOptions::new()
        .access(Access::ReadOnly)
        .open(&name)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    let err = PosixShm::unlink_name(&name).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    names(&err, &name);

    // IPC_PRIVATE names no segment: refused before asking the kernel.
    let err = SysvSegment::open(SysvKey::PRIVATE).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    names(&err, "IPC_PRIVATE");

    // A removed segment's id, and ids that never were.
    let gone = SysvSegment::create(SysvKey::PRIVATE, 64).unwrap();
    let gone_id = gone.id();
    gone.remove().unwrap();
    for id in [-1, i32::MAX, gone_id] {
        let err = SysvSegment::open_id(id).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "id {id}: {err}");
        names(&err, &format!("shmid {id}"));
    }
}

#[test]
fn sysv_open_bigger_than_existing_is_too_small() {
    let key = SysvKey::random();
    let seg = SysvOptions::new()
        .remove_on_drop(true)
        .create(key, 4096)
        .unwrap();
    let err = SysvOptions::new()
        .exclusive(false)
        .create(key, 8192)
        .unwrap_err();
    match &err {
        Error::TooSmall {
            target,
            actual,
            needed,
        } => {
            assert_eq!(*target, Target::SysvKey(key.0));
            assert_eq!((*actual, *needed), (4096, 8192));
        }
        other => panic!("expected TooSmall, got {other:?}"),
    }
    names(&err, &key.to_string());
    // Asking for no more than there is opens the same segment.
    let again = SysvOptions::new()
        .exclusive(false)
        .create(key, 100)
        .unwrap();
    assert_eq!(again.id(), seg.id());
    assert_eq!(again.stat().unwrap().size, 4096);
}

#[test]
fn posix_min_size_larger_than_segment_is_too_small() {
    let name = common::posix_name("minsize");
    let _shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 100)
        .unwrap();
    let err = PosixOptions::new().min_size(4096).open(&name).unwrap_err();
    match &err {
        Error::TooSmall {
            target,
            actual,
            needed,
        } => {
            assert_eq!(*target, Target::Posix(name.clone()));
            assert_eq!((*actual, *needed), (100, 4096));
        }
        other => panic!("expected TooSmall, got {other:?}"),
    }
    names(&err, &name);
    assert!(PosixOptions::new().min_size(100).open(&name).is_ok());
}

#[test]
fn exclusive_create_of_existing_is_eexist_and_harmless() {
    let key = SysvKey::random();
    let seg = SysvOptions::new()
        .remove_on_drop(true)
        .create(key, 64)
        .unwrap();
    seg.attach(Access::ReadWrite)
        .unwrap()
        .write_at(0, b"first")
        .unwrap();
    let err = SysvOptions::new()
        .remove_on_drop(true)
        .create(key, 64)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    names(&err, &key.to_string());
    assert_eq!(
        seg.attach(Access::ReadOnly)
            .unwrap()
            .read_pod::<[u8; 5]>(0)
            .unwrap(),
        *b"first"
    );

    let name = common::posix_name("eexist");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 64)
        .unwrap();
    shm.map().unwrap().write_at(0, b"first").unwrap();
    // Even a failed create that was asked to unlink on drop must not unlink
    // the segment that was already there.
    let err = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 64)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    names(&err, &name);
    assert!(common::shm_path(&name).exists());
    let map = PosixShm::open(&name).unwrap().map().unwrap();
    assert_eq!(map.read_pod::<[u8; 5]>(0).unwrap(), *b"first");
    assert_eq!(map.len(), 64);
}

// ---------------------------------------------------------------------------
// Things planted in /dev/shm
// ---------------------------------------------------------------------------

#[test]
fn planted_regular_file_is_eexist_and_untouched() {
    let name = common::posix_name("planted");
    let path = common::shm_path(&name);
    let _guard = FileGuard(path.clone());
    fs::write(&path, b"planted by someone else").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let before = fs::metadata(&path).unwrap();

    for unlink_on_drop in [false, true] {
        let err = PosixOptions::new()
            .unlink_on_drop(unlink_on_drop)
            .create(&name, 4096)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
        names(&err, &name);
    }
    let after = fs::metadata(&path).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"planted by someone else");
    assert_eq!(
        (after.ino(), after.len(), after.mode(), after.uid()),
        (before.ino(), before.len(), before.mode(), before.uid())
    );
}

#[test]
fn planted_symlink_is_never_followed() {
    let target_name = common::posix_name("symlink-target");
    let target = common::shm_path(&target_name);
    let _target_guard = FileGuard(target.clone());
    fs::write(&target, b"the file the link points at").unwrap();
    let before = fs::metadata(&target).unwrap();

    let link_name = common::posix_name("symlink");
    let link = common::shm_path(&link_name);
    let _link_guard = FileGuard(link.clone());
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let err = PosixShm::create(&link_name, 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    names(&err, &link_name);
    for access in [Access::ReadWrite, Access::ReadOnly] {
        let err = PosixOptions::new()
            .access(access)
            .open(&link_name)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{access:?}: {err}");
        names(&err, &link_name);
    }
    let err = PosixShm::open_or_create(&link_name, 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");

    // Neither the link nor its target changed.
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&target).unwrap(), b"the file the link points at");
    let after = fs::metadata(&target).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.mode()),
        (before.ino(), before.len(), before.mode())
    );

    // A dangling link: create must not make its target through it.
    let nowhere = common::shm_path(&common::posix_name("symlink-nowhere"));
    let _nowhere_guard = FileGuard(nowhere.clone());
    let dangling_name = common::posix_name("symlink-dangling");
    let dangling = common::shm_path(&dangling_name);
    let _dangling_guard = FileGuard(dangling.clone());
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    let err = PosixShm::create(&dangling_name, 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    assert!(!nowhere.exists(), "create followed a dangling symlink");
}

// ---------------------------------------------------------------------------
// Modes, owners, permissions
// ---------------------------------------------------------------------------

#[test]
fn mode_is_exact_whatever_the_umask() {
    const TEST: &str = "mode_is_exact_whatever_the_umask";
    if common::is_child(TEST) {
        for umask in [0, 0o077, 0o022, 0o777] {
            // SAFETY: umask cannot fail; it is process-wide, and this child
            // process runs this one test only.
            unsafe { libc::umask(umask) };
            for (asked, want) in [(None, 0o600), (Some(0o644), 0o644), (Some(0o666), 0o666)] {
                let name = common::posix_name("umask");
                let mut opts = PosixOptions::new().unlink_on_drop(true);
                if let Some(mode) = asked {
                    opts = opts.mode(mode);
                }
                let shm = opts.create(&name, 64).unwrap();
                assert_eq!(shm.stat().unwrap().mode, want, "umask {umask:#o}");
                let meta = fs::metadata(common::shm_path(&name)).unwrap();
                assert_eq!(meta.mode() & 0o7777, want, "umask {umask:#o}, stat(2)");

                let mut sysv = SysvOptions::new().remove_on_drop(true);
                if let Some(mode) = asked {
                    sysv = sysv.mode(mode);
                }
                let seg = sysv.create(SysvKey::PRIVATE, 64).unwrap();
                assert_eq!(seg.stat().unwrap().perms(), want, "umask {umask:#o}, SysV");
            }
        }
        common::child_done(TEST);
        return;
    }
    common::run_child(TEST, "");
}

/// The uid and gid of `nobody` on Debian-like systems; any uid but ours works.
const OTHER_ID: u32 = 65534;

#[test]
fn ipc_set_by_non_owner_is_eperm() {
    const TEST: &str = "ipc_set_by_non_owner_is_eperm";
    if common::is_child(TEST) {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, OTHER_ID);
        let id: i32 = common::child_arg().parse().unwrap();
        // Mode 0644: others may stat and read, not write, not change.
        let seg = SysvSegment::open_id(id).unwrap();
        let ro = seg.attach(Access::ReadOnly).unwrap();
        assert_eq!(ro.read_pod::<[u8; 4]>(0).unwrap(), *b"root");
        let err = seg.attach(Access::ReadWrite).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");

        let err = seg.set_perms(PermChange::new().mode(0o666)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        names(&err, &format!("shmid {id}"));
        let err = seg.set_perms(PermChange::new().uid(OTHER_ID)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        let err = seg.remove().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        common::child_done(TEST);
        return;
    }

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip(
            TEST,
            "not running as root, so no child can be started under a second uid",
        );
        return;
    }
    let seg = SysvOptions::new()
        .mode(0o644)
        .remove_on_drop(true)
        .create(SysvKey::PRIVATE, 4096)
        .unwrap();
    seg.attach(Access::ReadWrite)
        .unwrap()
        .write_at(0, b"root")
        .unwrap();
    let mut cmd = common::child_command(TEST, &seg.id().to_string());
    cmd.uid(OTHER_ID).gid(OTHER_ID);
    let child = match Running::spawn(&mut cmd) {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            common::skip(
                TEST,
                &format!(
                    "cannot run the test binary {} as uid {OTHER_ID}: {e}",
                    common::test_exe().display()
                ),
            );
            return;
        }
        Err(e) => panic!("spawn as uid {OTHER_ID}: {e}"),
    };
    child.wait(CHILD_TIMEOUT).assert_child_passed(TEST);
    // Nothing changed.
    let st = seg.stat().unwrap();
    assert_eq!((st.perms(), st.uid, st.gid), (0o644, 0, 0), "{st:?}");
    assert!(!st.is_marked_for_removal());
}

// ---------------------------------------------------------------------------
// A full /dev/shm
// ---------------------------------------------------------------------------

/// Mounts a 64 KiB tmpfs on /dev/shm in a new user and mount namespace,
/// then runs the rest of the command line.
const TINY_SHM: &str = "mount -t tmpfs -o size=64k none /dev/shm && exec \"$0\" \"$@\"";

#[test]
fn enospc_on_a_full_dev_shm_leaves_nothing_behind() {
    const TEST: &str = "enospc_on_a_full_dev_shm_leaves_nothing_behind";
    if common::is_child(TEST) {
        let total = dev_shm_bytes();
        assert!(
            total <= 64 * 1024,
            "/dev/shm is {total} bytes: not our tmpfs"
        );
        assert_eq!(dev_shm_entries(), Vec::<String>::new());

        let name = common::posix_name("enospc");
        let err = PosixShm::create(&name, 1 << 20).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        names(&err, &name);
        // The object was made, then could not be reserved: it must be gone.
        assert_eq!(dev_shm_entries(), Vec::<String>::new());

        // A segment that fits works, so the error was about the size.
        let small = PosixShm::create(&name, 4096).unwrap();
        assert_eq!(dev_shm_entries(), vec![name.trim_start_matches('/')]);
        small.map().unwrap().write_at(0, b"fits").unwrap();
        small.unlink().unwrap();
        assert_eq!(dev_shm_entries(), Vec::<String>::new());
        common::child_done(TEST);
        return;
    }

    // Can this machine give us a user namespace and a tmpfs in it?
    let mut probe = Command::new("unshare");
    probe.args([
        "-Urm",
        "sh",
        "-c",
        "mount -t tmpfs -o size=64k none /dev/shm",
    ]);
    match Running::spawn(&mut probe) {
        Err(e) => {
            common::skip(TEST, &format!("cannot run unshare(1): {e}"));
            return;
        }
        Ok(running) => {
            let out = running.wait(CHILD_TIMEOUT);
            if !out.status.success() {
                common::skip(
                    TEST,
                    &format!(
                        "user/mount namespace or tmpfs mount refused: {}",
                        out.stderr.trim()
                    ),
                );
                return;
            }
        }
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-Urm", "sh", "-c", TINY_SHM])
        .arg(common::test_exe())
        .args(common::harness_args(TEST));
    common::child_env(&mut cmd, TEST, "");
    common::run(&mut cmd).unwrap().assert_child_passed(TEST);
}

fn dev_shm_entries() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn dev_shm_bytes() -> u64 {
    let mut vfs = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: a valid NUL-terminated path and a buffer that is a `statvfs`.
    let ret = unsafe { libc::statvfs(c"/dev/shm".as_ptr(), vfs.as_mut_ptr()) };
    assert_eq!(ret, 0, "statvfs: {}", std::io::Error::last_os_error());
    // SAFETY: zeroed is a valid statvfs (plain integers) and statvfs filled it.
    let vfs = unsafe { vfs.assume_init() };
    vfs.f_blocks * vfs.f_frsize
}

// ---------------------------------------------------------------------------
// Bounds and read-only mappings
// ---------------------------------------------------------------------------

/// Fills a 100-byte region with 0xAA, then tries writes that pass the end:
/// each is `OutOfBounds` and writes nothing.
fn refuses_out_of_bounds(region: &impl Region, what: &str) {
    assert_eq!(region.len(), 100);
    region.fill(0, 100, 0xAA).unwrap();
    let attempts: [(usize, usize); 5] = [
        (98, 4),
        (100, 1),
        (0, 101),
        (usize::MAX, 1),
        (usize::MAX - 2, 8),
    ];
    for (offset, len) in attempts {
        let err = region.write_at(offset, &vec![0x55; len]).unwrap_err();
        match &err {
            Error::OutOfBounds {
                offset: o,
                len: l,
                size,
                ..
            } => assert_eq!((*o, *l, *size), (offset, len, 100)),
            other => panic!("expected OutOfBounds, got {other:?}"),
        }
        names(&err, what);
        names(&err, "100-byte region");
    }
    assert!(matches!(
        region.write_pod(97, &u64::MAX),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        region.fill(90, 11, 0),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        region.read_at(99, &mut [0; 2]),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        region.atomic_u32(100),
        Err(Error::OutOfBounds { .. })
    ));
    assert_eq!(region.to_vec(), vec![0xAA; 100], "a refused write wrote");
    // Right up to the end is fine.
    region.write_at(96, &[1, 2, 3, 4]).unwrap();
    assert_eq!(region.read_pod::<[u8; 4]>(96).unwrap(), [1, 2, 3, 4]);
}

#[test]
fn writes_past_the_end_are_refused_and_write_nothing() {
    let seg = SysvOptions::new()
        .remove_on_drop(true)
        .create(SysvKey::PRIVATE, 100)
        .unwrap();
    refuses_out_of_bounds(
        &seg.attach(Access::ReadWrite).unwrap(),
        &format!("shmid {}", seg.id()),
    );

    let name = common::posix_name("bounds");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 100)
        .unwrap();
    refuses_out_of_bounds(&shm.map().unwrap(), &name);

    refuses_out_of_bounds(
        &Memfd::create("shm-test-bounds", 100)
            .unwrap()
            .map()
            .unwrap(),
        "shm-test-bounds",
    );
}

/// A read-only mapping refuses every kind of write with `ReadOnly` (never a
/// SIGSEGV) and still reads; the bytes stay what the writable side wrote.
fn refuses_writes(ro: &impl Region, rw: &impl Region, what: &str) {
    rw.write_at(0, b"original").unwrap();
    assert!(ro.is_read_only());
    let err = ro.write_at(0, b"changed!").unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    names(&err, what);
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(matches!(
        ro.write_pod(0, &0u64),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(ro.fill(0, 8, 0), Err(Error::ReadOnly { .. })));
    assert!(matches!(ro.atomic_u32(0), Err(Error::ReadOnly { .. })));
    assert!(matches!(ro.atomic_u64(0), Err(Error::ReadOnly { .. })));
    let info = HeaderInfo::new(Kind::USER_BASE, 1, 1, 1, 1, 65);
    assert!(matches!(
        Header::init(ro, &info),
        Err(Error::ReadOnly { .. })
    ));
    let io_err = ro.cursor().write_all(b"changed!").unwrap_err();
    assert_eq!(io_err.kind(), std::io::ErrorKind::PermissionDenied);
    // Reads and atomic loads work.
    assert_eq!(ro.read_pod::<[u8; 8]>(0).unwrap(), *b"original");
    assert_eq!(
        ro.load_u64(0, std::sync::atomic::Ordering::Acquire)
            .unwrap(),
        u64::from_ne_bytes(*b"original")
    );
    assert_eq!(rw.read_pod::<[u8; 8]>(0).unwrap(), *b"original");
}

#[test]
fn writes_through_read_only_mappings_are_refused() {
    let seg = SysvOptions::new()
        .remove_on_drop(true)
        .create(SysvKey::PRIVATE, 4096)
        .unwrap();
    let rw = seg.attach(Access::ReadWrite).unwrap();
    let ro = seg.attach(Access::ReadOnly).unwrap();
    refuses_writes(&ro, &rw, &format!("shmid {}", seg.id()));

    let name = common::posix_name("readonly");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 4096)
        .unwrap();
    let rw = shm.map().unwrap();
    // Opened O_RDONLY: `map` maps PROT_READ.
    let opened_ro = PosixOptions::new()
        .access(Access::ReadOnly)
        .open(&name)
        .unwrap();
    refuses_writes(&opened_ro.map().unwrap(), &rw, &name);
    // Opened read-write, mapped read-only.
    refuses_writes(&shm.map_read_only().unwrap(), &rw, &name);
    // A read-only descriptor cannot be resized either.
    let err = opened_ro.resize(8192).unwrap_err();
    assert!(err.raw_os_error().is_some(), "{err}");
    assert_eq!(shm.size().unwrap(), 4096);
}

// ---------------------------------------------------------------------------
// Invalid arguments
// ---------------------------------------------------------------------------

#[test]
fn invalid_names_are_refused() {
    let long = "x".repeat(300);
    for bad in [
        "",
        "/",
        "/a/b",
        "a/b",
        "//x",
        long.as_str(),
        "/..",
        "/.",
        "a\0b",
    ] {
        let check = |err: Error| {
            match &err {
                Error::InvalidName { name, .. } => assert_eq!(name, bad),
                other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
            }
            names(&err, &format!("{bad:?}"));
        };
        check(PosixShm::create(bad, 64).unwrap_err());
        check(PosixShm::open(bad).unwrap_err());
        check(PosixShm::open_or_create(bad, 64).unwrap_err());
        check(PosixShm::unlink_name(bad).unwrap_err());
    }

    // NAME_MAX is the limit: 255 bytes after the '/' work, 256 do not.
    let mut name = common::posix_name("long");
    while name.len() < 256 {
        name.push('x');
    }
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 64)
        .unwrap();
    assert!(common::shm_path(&name).exists());
    name.push('x');
    assert!(matches!(
        PosixShm::create(&name, 64),
        Err(Error::InvalidName { .. })
    ));
    drop(shm);

    for bad in ["x".repeat(250), "nul\0".to_owned()] {
        let err = Memfd::create(&bad, 64).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err:?}");
    }
}

#[test]
fn size_zero_is_invalid_argument() {
    let name = common::posix_name("size0");
    let err = PosixShm::create(&name, 0).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    names(&err, &name);
    assert!(
        !common::shm_path(&name).exists(),
        "a refused create left {name}"
    );

    let key = SysvKey::random();
    let err = SysvSegment::create(key, 0).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    names(&err, &key.to_string());
    assert_eq!(
        SysvSegment::open(key).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );

    let err = Memfd::create("shm-test-size0", 0).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    names(&err, "shm-test-size0");
    assert!(matches!(
        AnonShared::new(0),
        Err(Error::InvalidArgument { .. })
    ));

    // Resizing to zero too, and the size stays.
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 64)
        .unwrap();
    let err = shm.resize(0).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    names(&err, &name);
    assert_eq!(shm.size().unwrap(), 64);
    let memfd = Memfd::create("shm-test-size0", 64).unwrap();
    assert!(matches!(
        memfd.resize(0),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(memfd.size().unwrap(), 64);
}

#[test]
fn modes_beyond_0o777_are_invalid_argument() {
    let key = SysvKey::random();
    let err = SysvOptions::new()
        .mode(0o1777)
        .remove_on_drop(true)
        .create(key, 64)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    names(&err, &key.to_string());
    names(&err, "0o1777");
    assert_eq!(
        SysvSegment::open(key).unwrap_err().raw_os_error(),
        Some(libc::ENOENT),
        "nothing was created"
    );

    let name = common::posix_name("mode");
    let err = PosixOptions::new()
        .mode(0o1777)
        .unlink_on_drop(true)
        .create(&name, 64)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    names(&err, &name);
    names(&err, "0o1777");
    assert!(!common::shm_path(&name).exists(), "nothing was created");

    // Changing the mode of an existing segment to one: refused, unchanged.
    let seg = SysvOptions::new()
        .remove_on_drop(true)
        .create(SysvKey::PRIVATE, 64)
        .unwrap();
    let err = seg.set_perms(PermChange::new().mode(0o4755)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    names(&err, &format!("shmid {}", seg.id()));
    assert_eq!(seg.stat().unwrap().perms(), 0o600);
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 64)
        .unwrap();
    let err = shm.set_perms(PermChange::new().mode(0o2600)).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    names(&err, &name);
    assert_eq!(shm.stat().unwrap().mode, 0o600);
}

// ---------------------------------------------------------------------------
// Memfd seals
// ---------------------------------------------------------------------------

#[test]
fn sealed_memfd_refuses_writable_maps_and_resizes() {
    let fd = Memfd::create("shm-test-sealed", 4096).unwrap();
    let map = fd.map().unwrap();
    map.write_at(0, b"frozen").unwrap();
    // A write seal needs every writable mapping gone first.
    let err = fd.add_seals(Seals::WRITE).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBUSY), "{err}");
    names(&err, "shm-test-sealed");
    drop(map);
    fd.add_seals(Seals::WRITE).unwrap();
    let err = fd.map().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    names(&err, "shm-test-sealed");
    let ro = fd.map_read_only().unwrap();
    assert_eq!(ro.read_pod::<[u8; 6]>(0).unwrap(), *b"frozen");
    assert!(matches!(ro.write_at(0, b"x"), Err(Error::ReadOnly { .. })));

    let fd = Memfd::create("shm-test-sized", 4096).unwrap();
    fd.add_seals(Seals::SHRINK | Seals::GROW).unwrap();
    let err = fd.resize(8192).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "resize 8192: {err}");
    names(&err, "shm-test-sized");
    // Every Memfd refuses to shrink (sealed since create), before any syscall.
    let err = fd.resize(1024).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShrinkRefused {
                size: 4096,
                new_size: 1024,
                ..
            }
        ),
        "resize 1024: {err:?}"
    );
    names(&err, "shm-test-sized");
    assert_eq!(fd.size().unwrap(), 4096);
    // Writing is still allowed: only the size is frozen.
    fd.map().unwrap().write_at(4090, b"end ok").unwrap();
}

// ---------------------------------------------------------------------------
// Reservations beyond the host's memory
// ---------------------------------------------------------------------------

/// A memfd's file system has no size limit, so reserving an absurd size did
/// not fail with ENOSPC: posix_fallocate ran until the OOM killer killed a
/// process. Such sizes are refused before anything is allocated.
#[test]
fn reserving_more_than_the_host_memory_is_refused_not_oom_killed() {
    const HUGE: usize = 1 << 62;
    let err = Memfd::create("shm-test-huge", HUGE).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(
        err.to_string().contains("more than this host's memory"),
        "{err}"
    );

    let fd = Memfd::create("shm-test-huge", 64).unwrap();
    let err = fd.resize(HUGE).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert_eq!(fd.size().unwrap(), 64, "a refused resize changes nothing");

    let name = common::posix_name("huge");
    let err = PosixShm::create(&name, HUGE).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    assert!(PosixShm::open(&name).unwrap_err().is_not_found());
}
