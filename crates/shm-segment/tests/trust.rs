//! What this crate trusts of memory and descriptors that other processes
//! hand it, and what it refuses:
//!
//! - a descriptor adopted with `Memfd::from_fd` must be a memfd sealed against
//!   shrinking (or one this process can seal), so no mapping of it can SIGBUS;
//! - a handle does not shrink its own segment under its own live mappings;
//! - `PosixShm::read_at`/`write_at` go through the descriptor (`pread`/`pwrite`),
//!   so a segment that someone truncated is an error, never a SIGBUS;
//! - `recv_fd` closes every descriptor it does not return and refuses a
//!   truncated control message.
//!
//! Segments are named `/shm-test-…` and removed on drop, also on panic.

mod common;

use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;

use shm_segment::{recv_fd, Access, Error, Memfd, PosixOptions, PosixShm, Region, Seals, Target};

// ---------------------------------------------------------------------------
// Helpers

/// `memfd_create(name, flags)` sized to `size`, as another program would make it.
fn raw_memfd(name: &str, flags: libc::c_uint, size: i64) -> OwnedFd {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: a valid C string and plain flags; memfd_create returns -1 or a
    // fresh descriptor that nothing else owns.
    let fd = unsafe { shm_sys::cvt_fd(libc::memfd_create(c.as_ptr(), flags | libc::MFD_CLOEXEC)) }
        .expect("memfd_create");
    set_len(fd.as_fd(), size).unwrap();
    fd
}

/// `ftruncate(2)`, as a peer that holds the descriptor would call it.
fn set_len(fd: BorrowedFd<'_>, len: i64) -> std::io::Result<()> {
    // SAFETY: plain syscall on a live descriptor.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn get_seals(fd: BorrowedFd<'_>) -> i32 {
    // SAFETY: plain fcntl on a live descriptor.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) }
}

fn add_seals(fd: BorrowedFd<'_>, seals: i32) {
    // SAFETY: plain fcntl on a live descriptor.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    assert_eq!(ret, 0, "F_ADD_SEALS: {}", std::io::Error::last_os_error());
}

/// Asserts that `from_fd` refused `fd` with an error that names the
/// descriptor and contains `why`.
#[track_caller]
fn refused(fd: OwnedFd, why: &str) {
    let raw = fd.as_raw_fd();
    let err = Memfd::from_fd(fd).unwrap_err();
    match &err {
        Error::UntrustedFd { fd, .. } => assert_eq!(*fd, raw, "{err}"),
        other => panic!("expected UntrustedFd, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&format!("fd {raw}")), "{msg}");
    assert!(msg.contains(why), "{why:?} not in {msg:?}");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

/// What `/proc/self/fd` links to, one entry per open descriptor.
fn open_fds() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// Memfd::from_fd

#[test]
fn from_fd_refuses_files_that_are_not_memfds() {
    // A plain file on a disk file system (O_TMPFILE: no name, like a memfd).
    let dir = std::env::temp_dir();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir)
        .or_else(|_| {
            // Some file systems have no O_TMPFILE: a named file then.
            let path = dir.join(format!("shm-test-plain-{}", std::process::id()));
            let _guard = common::FileGuard(path.clone());
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
        })
        .unwrap();
    file.write_all(&[7; 4096]).unwrap();
    refused(file.into(), "not a memfd");

    // A POSIX segment: shared memory, but not a memfd, and not sealable.
    let name = common::posix_name("not-memfd");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 4096)
        .unwrap();
    let fd = shm.as_fd().try_clone_to_owned().unwrap();
    let err = Memfd::from_fd(fd).unwrap_err().to_string();
    assert!(
        err.contains("not a memfd") && err.contains("F_SEAL_SHRINK"),
        "{err}"
    );
    // Its size is untouched and it can still shrink: nothing was sealed.
    assert_eq!(shm.size().unwrap(), 4096);
}

#[test]
fn from_fd_refuses_a_memfd_that_cannot_be_sealed_against_shrinking() {
    // Made without MFD_ALLOW_SEALING: F_SEAL_SEAL from birth.
    let unsealable = raw_memfd("shm-test-unsealable", 0, 4096);
    refused(unsealable, "F_SEAL_SEAL");

    // Sealable, but someone sealed the seals without F_SEAL_SHRINK.
    let frozen = raw_memfd("shm-test-frozen", libc::MFD_ALLOW_SEALING, 4096);
    add_seals(frozen.as_fd(), libc::F_SEAL_GROW | libc::F_SEAL_SEAL);
    let keep = frozen.try_clone().unwrap();
    refused(frozen, "F_SEAL_SEAL");
    // It can still shrink: exactly why it was refused.
    set_len(keep.as_fd(), 0).unwrap();

    // Sealable, but only a read-only descriptor arrived: it cannot add the seal.
    let open = raw_memfd("shm-test-readonly", libc::MFD_ALLOW_SEALING, 4096);
    let read_only: OwnedFd = std::fs::File::open(format!("/proc/self/fd/{}", open.as_raw_fd()))
        .unwrap()
        .into();
    refused(read_only, "read-only");
    assert_eq!(get_seals(open.as_fd()), 0, "nothing was sealed");
}

#[test]
fn from_fd_seals_a_sealable_memfd_against_shrinking() {
    let fd = raw_memfd("shm-test-sealable", libc::MFD_ALLOW_SEALING, 4096);
    let peer = fd.try_clone().unwrap();
    let memfd = Memfd::from_fd(fd).unwrap();
    assert_eq!(memfd.name(), "shm-test-sealable");
    assert_eq!(memfd.seals().unwrap(), Seals::SHRINK);
    // The peer that sent it can no longer shrink it under our mappings.
    let map = memfd.map().unwrap();
    let err = set_len(peer.as_fd(), 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    map.write_at(4095, b"x").unwrap();
    // Already sealed: accepted as is.
    let again = Memfd::from_fd(peer).unwrap();
    assert_eq!(again.seals().unwrap(), Seals::SHRINK);
}

// ---------------------------------------------------------------------------
// Shrinking one's own segment

#[test]
fn memfds_made_here_are_sealed_against_shrinking() {
    let memfd = Memfd::create("shm-test-own-seal", 8192).unwrap();
    assert_eq!(memfd.seals().unwrap(), Seals::SHRINK);
    let map = memfd.map().unwrap();
    let err = memfd.resize(4096).unwrap_err();
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
    let msg = err.to_string();
    assert!(
        msg.contains("shm-test-own-seal") && msg.contains("F_SEAL_SHRINK"),
        "{msg}"
    );
    // Nor can anyone else holding the descriptor.
    let err = set_len(memfd.as_fd(), 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    // Growing is fine, and the old mapping stays good.
    memfd.resize(16384).unwrap();
    map.write_at(8191, b"x").unwrap();
    assert_eq!(memfd.size().unwrap(), 16384);
}

#[test]
fn posix_resize_refuses_to_shrink_under_its_own_live_mappings() {
    let name = common::posix_name("shrink-mapped");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 8192)
        .unwrap();
    let map = shm.map().unwrap();
    let ro = shm.map_read_only().unwrap();
    let err = shm.resize(4096).unwrap_err();
    assert!(
        matches!(&err, Error::ShrinkRefused { target: Target::Posix(n), size: 8192, new_size: 4096, .. } if *n == name),
        "{err:?}"
    );
    assert!(err.to_string().contains("2 mappings"), "{err}");
    assert_eq!(shm.size().unwrap(), 8192, "nothing was shrunk");
    map.write_at(8191, b"x").unwrap(); // no SIGBUS

    // Growing under live mappings is fine.
    shm.resize(12288).unwrap();
    drop(map);
    let err = shm.resize(4096).unwrap_err();
    assert!(err.to_string().contains("1 mapping"), "{err}");
    // Once every mapping is gone, shrinking works.
    drop(ro);
    shm.resize(4096).unwrap();
    assert_eq!(shm.size().unwrap(), 4096);
}

// ---------------------------------------------------------------------------
// PosixShm::read_at / write_at

#[test]
fn posix_read_at_and_write_at_survive_a_peer_that_shrinks_the_segment() {
    let name = common::posix_name("pread");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 4096)
        .unwrap();
    shm.write_at(4090, b"tail!!").unwrap();
    let mut buf = [0u8; 6];
    shm.read_at(4090, &mut buf).unwrap();
    assert_eq!(&buf, b"tail!!");
    // Past the end: refused, nothing written.
    let err = shm.write_at(4091, b"tail!!").unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfBounds {
                offset: 4091,
                len: 6,
                size: 4096,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(shm.read_at(usize::MAX, &mut buf).is_err());
    shm.read_at(4090, &mut buf).unwrap();
    assert_eq!(&buf, b"tail!!");

    // A peer truncates it: a read past the new end is an error, not a SIGBUS.
    let peer = PosixShm::open(&name).unwrap();
    set_len(peer.as_fd(), 100).unwrap();
    let mut all = vec![0u8; 4096];
    let err = shm.read_at(0, &mut all).unwrap_err();
    assert!(
        matches!(err, Error::OutOfBounds { size: 100, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name), "{err}");
    shm.read_at(0, &mut all[..100]).unwrap();
    set_len(peer.as_fd(), 0).unwrap();
    assert!(shm.read_at(0, &mut all[..1]).is_err());
    assert!(shm.write_at(0, b"x").is_err());
    assert_eq!(shm.size().unwrap(), 0, "a refused write does not grow it");

    // Opened read-only: writes are refused before any syscall.
    set_len(peer.as_fd(), 4096).unwrap();
    let ro = PosixOptions::new()
        .access(Access::ReadOnly)
        .open(&name)
        .unwrap();
    assert!(matches!(ro.write_at(0, b"x"), Err(Error::ReadOnly { .. })));
    ro.read_at(0, &mut buf).unwrap();
}

// ---------------------------------------------------------------------------
// recv_fd

/// Sends every descriptor in `fds` in one `SCM_RIGHTS` message, with one byte.
fn send_fds(socket: &UnixStream, fds: &[BorrowedFd<'_>]) {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: a zeroed msghdr is valid; the fields used are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: the control buffer holds `space` bytes, so the first header fits.
    let cmsg = unsafe { &mut *libc::CMSG_FIRSTHDR(&msg) };
    cmsg.cmsg_level = libc::SOL_SOCKET;
    cmsg.cmsg_type = libc::SCM_RIGHTS;
    // SAFETY: CMSG_LEN is pure arithmetic.
    cmsg.cmsg_len = unsafe { libc::CMSG_LEN(bytes) } as usize;
    // SAFETY: the header's data has room for `fds.len()` c_ints (CMSG_SPACE above).
    let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<libc::c_int>();
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: in the data area, as above.
        unsafe { data.add(i).write_unaligned(fd.as_raw_fd()) };
    }
    // SAFETY: msg points to live buffers set up above.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    assert_eq!(sent, 1, "sendmsg: {}", std::io::Error::last_os_error());
}

/// `n` memfds labelled `<what>-<pid>-<i>`, so that `/proc/self/fd` shows
/// which of them are still open.
fn labelled(what: &str, n: usize) -> (Vec<String>, Vec<Memfd>) {
    let labels: Vec<String> = (0..n)
        .map(|i| format!("shm-test-{what}-{}-{i}", std::process::id()))
        .collect();
    let fds = labels
        .iter()
        .map(|l| Memfd::create(l, 64).unwrap())
        .collect();
    (labels, fds)
}

fn still_open(label: &str) -> bool {
    let (bare, deleted) = (
        format!("/memfd:{label}"),
        format!("/memfd:{label} (deleted)"),
    );
    open_fds()
        .iter()
        .any(|link| *link == bare || *link == deleted)
}

/// In a child (this binary run again for this one test), so that no other
/// test opens or closes descriptors while the count is taken.
#[test]
fn recv_fd_keeps_the_first_of_several_and_closes_the_others() {
    const TEST: &str = "recv_fd_keeps_the_first_of_several_and_closes_the_others";
    if !common::is_child(TEST) {
        common::run_child(TEST, "");
        return;
    }
    let (labels, fds) = labelled("cmsg", 3);
    let (a, b) = UnixStream::pair().unwrap();
    let before = open_fds().len();
    send_fds(&a, &fds.iter().map(AsFd::as_fd).collect::<Vec<_>>());
    let got = recv_fd(&b).unwrap();
    // The first one, close-on-exec.
    let link = std::fs::read_link(format!("/proc/self/fd/{}", got.as_raw_fd())).unwrap();
    assert!(
        link.to_string_lossy()
            .starts_with(&format!("/memfd:{}", labels[0])),
        "{}",
        link.display()
    );
    // SAFETY: plain fcntl on a live descriptor.
    let flags = unsafe { libc::fcntl(got.as_raw_fd(), libc::F_GETFD) };
    assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    assert_eq!(open_fds().len(), before + 1, "{:#?}", open_fds());
    drop(got);
    assert_eq!(open_fds().len(), before, "{:#?}", open_fds());
    // Once the sender's copies are closed too, none of them is open anywhere here.
    drop(fds);
    for label in &labels {
        assert!(!still_open(label), "{label} leaked: {:#?}", open_fds());
    }
    common::child_done(TEST);
}

#[test]
fn recv_fd_refuses_a_truncated_control_message_and_leaks_nothing() {
    const TEST: &str = "recv_fd_refuses_a_truncated_control_message_and_leaks_nothing";
    if !common::is_child(TEST) {
        common::run_child(TEST, "");
        return;
    }
    // More descriptors than recv_fd's control buffer holds.
    let (labels, fds) = labelled("ctrunc", 40);
    let (a, b) = UnixStream::pair().unwrap();
    let before = open_fds().len();
    send_fds(&a, &fds.iter().map(AsFd::as_fd).collect::<Vec<_>>());
    let err = recv_fd(&b).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("MSG_CTRUNC"), "{err}");
    assert_eq!(open_fds().len(), before, "{:#?}", open_fds());
    drop(fds);
    for label in &labels {
        assert!(!still_open(label), "{label} leaked: {:#?}", open_fds());
    }
    // The socket still works for the next message.
    let one = Memfd::create("shm-test-after-ctrunc", 64).unwrap();
    send_fds(&a, &[one.as_fd()]);
    let got = Memfd::from_fd(recv_fd(&b).unwrap()).unwrap();
    assert_eq!(got.name(), "shm-test-after-ctrunc");
    common::child_done(TEST);
}
