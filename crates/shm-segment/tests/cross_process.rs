//! A second, real process attaches to a segment the test made (by SysV key,
//! by SysV shmid, by POSIX name, by an inherited memfd descriptor, and by a
//! memfd sent over a Unix socket), reads what the parent wrote and writes a
//! reply that the parent then checks.
//!
//! The child is this test binary run again (see `common`): each test
//! function runs its parent side, or its child side when `SHM_TEST_ROLE`
//! names it.

mod common;

use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;

use common::{Running, CHILD_TIMEOUT, HANDSHAKE_TIMEOUT};
use shm_segment::{
    recv_fd, send_fd, Access, Memfd, PosixOptions, PosixShm, Region, Seals, SysvKey, SysvOptions,
    SysvSegment,
};

/// Handshake word: 0 at start, 1 once the child replied, 2 once the parent saw it.
const FLAG: usize = 0;
/// Where the parent's message goes (a `u32` length, then the bytes).
const REQUEST: usize = 64;
/// Where the child's reply goes (a `u32` length, then the bytes).
const REPLY: usize = 1024;

const PING: &[u8] = b"ping from the parent";

fn put_msg(region: &impl Region, offset: usize, msg: &[u8]) {
    region.write_pod(offset, &(msg.len() as u32)).unwrap();
    region.write_at(offset + 4, msg).unwrap();
}

/// Reads a message; the length comes from shared memory, so `read_at`'s
/// bounds check is what keeps a bad length from reading out of bounds.
fn get_msg(region: &impl Region, offset: usize) -> Vec<u8> {
    let len = region.read_pod::<u32>(offset).unwrap() as usize;
    let mut buf = vec![0; len];
    region.read_at(offset + 4, &mut buf).unwrap();
    buf
}

fn pong(pid: u32) -> Vec<u8> {
    format!("pong from child {pid}").into_bytes()
}

/// The child side shared by the tests: checks the request, writes the reply.
fn answer(region: &impl Region) {
    assert_eq!(get_msg(region, REQUEST), PING);
    put_msg(region, REPLY, &pong(std::process::id()));
}

#[test]
fn sysv_by_key() {
    const TEST: &str = "sysv_by_key";
    if common::is_child(TEST) {
        let key = SysvKey(common::child_arg().parse().unwrap());
        let seg = SysvSegment::open(key).unwrap();
        assert_eq!(seg.key(), key);
        let map = seg.attach(Access::ReadWrite).unwrap();
        answer(&map);
        let flag = map.atomic_u32(FLAG).unwrap();
        // SYNC POINT: pairs with the parent's Acquire load of the flag.
        flag.store(1, Ordering::Release);
        // Stay attached until the parent has looked, so that it sees two attaches.
        assert!(
            common::wait_until(HANDSHAKE_TIMEOUT, || flag.load(Ordering::Acquire) == 2),
            "the parent never acknowledged the reply"
        );
        drop(map);
        common::child_done(TEST);
        return;
    }

    let key = SysvKey::random();
    let seg = SysvOptions::new()
        .remove_on_drop(true)
        .create(key, 4096)
        .unwrap();
    let map = seg.attach(Access::ReadWrite).unwrap();
    put_msg(&map, REQUEST, PING);
    let mut child = Running::spawn(&mut common::child_command(TEST, &key.0.to_string())).unwrap();
    let child_pid = child.id();
    let flag = map.atomic_u32(FLAG).unwrap();
    // SYNC POINT: pairs with the child's Release store of the flag.
    let replied = common::wait_until(HANDSHAKE_TIMEOUT, || {
        flag.load(Ordering::Acquire) == 1 || child.has_exited()
    });
    if flag.load(Ordering::Acquire) != 1 {
        let out = child.wait(CHILD_TIMEOUT);
        panic!("the child did not reply (waited: {replied}): {out:#?}");
    }
    // Both processes are attached now.
    let st = seg.stat().unwrap();
    assert_eq!(st.nattch, 2, "{st:?}");
    assert_eq!(st.key, key);
    assert_eq!(get_msg(&map, REPLY), pong(child_pid));
    flag.store(2, Ordering::Release);

    child.wait(CHILD_TIMEOUT).assert_child_passed(TEST);
    let st = seg.stat().unwrap();
    assert_eq!(st.nattch, 1, "the child detached: {st:?}");
    assert_eq!(
        st.lpid, child_pid as i32,
        "the last shmat/shmdt was the child's"
    );
}

#[test]
fn sysv_by_id() {
    const TEST: &str = "sysv_by_id";
    if common::is_child(TEST) {
        let id: i32 = common::child_arg().parse().unwrap();
        let seg = SysvSegment::open_id(id).unwrap();
        assert!(seg.key().is_private(), "{:?}", seg.key());
        assert_eq!(seg.id(), id);
        answer(&seg.attach(Access::ReadWrite).unwrap());
        common::child_done(TEST);
        return;
    }

    let seg = SysvOptions::new()
        .remove_on_drop(true)
        .create(SysvKey::PRIVATE, 4096)
        .unwrap();
    let map = seg.attach(Access::ReadWrite).unwrap();
    put_msg(&map, REQUEST, PING);
    let mut cmd = common::child_command(TEST, &seg.id().to_string());
    let child = Running::spawn(&mut cmd).unwrap();
    let child_pid = child.id();
    child.wait(CHILD_TIMEOUT).assert_child_passed(TEST);

    assert_eq!(get_msg(&map, REPLY), pong(child_pid));
    let st = seg.stat().unwrap();
    assert_eq!((st.nattch, st.lpid), (1, child_pid as i32), "{st:?}");
    assert_eq!(st.cpid, std::process::id() as i32);
}

#[test]
fn posix_by_name() {
    const TEST: &str = "posix_by_name";
    if common::is_child(TEST) {
        let name = common::child_arg();
        let shm = PosixOptions::new().min_size(4096).open(&name).unwrap();
        let st = shm.stat().unwrap();
        assert_eq!((st.size, st.mode, st.name.as_str()), (4096, 0o600, &*name));
        // SAFETY: geteuid has no preconditions.
        assert_eq!(st.uid, unsafe { libc::geteuid() });
        let map = shm.map().unwrap();
        // The parent wrote a line through a cursor; read it back as a line.
        let mut line = String::new();
        map.cursor().read_line(&mut line).unwrap();
        assert_eq!(line, "hello from the parent\n");
        answer(&map);
        common::child_done(TEST);
        return; // the child's handle does not unlink (it did not ask to)
    }

    let name = common::posix_name("xproc-posix");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 4096)
        .unwrap();
    let map = shm.map().unwrap();
    writeln!(map.cursor(), "hello from the parent").unwrap();
    put_msg(&map, REQUEST, PING);
    let child = Running::spawn(&mut common::child_command(TEST, &name)).unwrap();
    let child_pid = child.id();
    child.wait(CHILD_TIMEOUT).assert_child_passed(TEST);

    assert_eq!(get_msg(&map, REPLY), pong(child_pid));
    assert!(
        common::shm_path(&name).exists(),
        "the child's drop must not unlink a segment it only opened"
    );
    // A fresh open sees the reply too: it is in the object, not in our mapping.
    assert_eq!(
        get_msg(&PosixShm::open(&name).unwrap().map().unwrap(), REPLY),
        pong(child_pid)
    );
}

#[test]
fn memfd_by_inherited_fd() {
    const TEST: &str = "memfd_by_inherited_fd";
    const LABEL: &str = "shm-test-inherited";
    if common::is_child(TEST) {
        assert_eq!(common::child_arg(), "3");
        let link = std::fs::read_link("/proc/self/fd/3").unwrap();
        assert!(
            link.to_string_lossy()
                .starts_with(&format!("/memfd:{LABEL}")),
            "fd 3 is {}",
            link.display()
        );
        let memfd = Memfd::from_fd(common::take_inherited_fd3()).unwrap();
        assert_eq!(memfd.name(), LABEL);
        assert_eq!(memfd.size().unwrap(), 8192);
        answer(&memfd.map().unwrap());
        common::child_done(TEST);
        return;
    }

    let memfd = Memfd::create(LABEL, 8192).unwrap();
    let map = memfd.map().unwrap();
    put_msg(&map, REQUEST, PING);
    let mut cmd = common::child_command(TEST, "3");
    common::inherit_as_fd3(&mut cmd, memfd.as_fd());
    let child = Running::spawn(&mut cmd).unwrap();
    let child_pid = child.id();
    child.wait(CHILD_TIMEOUT).assert_child_passed(TEST);

    assert_eq!(get_msg(&map, REPLY), pong(child_pid));
}

#[test]
fn memfd_over_unix_socket() {
    const TEST: &str = "memfd_over_unix_socket";
    const FROM_CHILD: &[u8] = b"sealed bytes made by the child";
    if common::is_child(TEST) {
        let sock = UnixStream::from(common::take_inherited_fd3());
        sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).unwrap();
        // The parent's memfd, made after this process started: it can only
        // have arrived over the socket.
        let memfd = Memfd::from_fd(recv_fd(&sock).unwrap()).unwrap();
        assert_eq!(memfd.name(), "shm-test-sent");
        answer(&memfd.map().unwrap());

        // And the other way: a memfd made here, sealed, sent to the parent.
        let mine = Memfd::create("shm-test-from-child", 4096).unwrap();
        mine.map().unwrap().write_at(0, FROM_CHILD).unwrap(); // mapping dropped here
        mine.add_seals(Seals::SHRINK | Seals::GROW | Seals::WRITE | Seals::SEAL)
            .unwrap();
        send_fd(&sock, mine.as_fd()).unwrap();
        common::child_done(TEST);
        return;
    }

    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).unwrap();
    let mut cmd = common::child_command(TEST, "3");
    common::inherit_as_fd3(&mut cmd, theirs.as_fd());
    let child = Running::spawn(&mut cmd).unwrap();
    let child_pid = child.id();
    // Only the child holds the other end now: if it dies, our recv sees EOF.
    drop(theirs);

    let memfd = Memfd::create("shm-test-sent", 4096).unwrap();
    let map = memfd.map().unwrap();
    put_msg(&map, REQUEST, PING);
    send_fd(&ours, memfd.as_fd()).unwrap();
    let received = recv_fd(&ours);
    let out = child.wait(CHILD_TIMEOUT);
    out.assert_child_passed(TEST);

    assert_eq!(get_msg(&map, REPLY), pong(child_pid));
    let theirs = Memfd::from_fd(received.unwrap()).unwrap();
    assert_eq!(theirs.name(), "shm-test-from-child");
    assert_eq!(
        theirs.seals().unwrap(),
        Seals::SHRINK | Seals::GROW | Seals::WRITE | Seals::SEAL
    );
    // The seals hold here too: no writable mapping, no resize.
    assert_eq!(theirs.map().unwrap_err().raw_os_error(), Some(libc::EPERM));
    assert_eq!(
        theirs.resize(8192).unwrap_err().raw_os_error(),
        Some(libc::EPERM)
    );
    let ro = theirs.map_read_only().unwrap();
    let mut buf = vec![0; FROM_CHILD.len()];
    ro.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, FROM_CHILD);
}
