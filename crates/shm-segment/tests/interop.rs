//! Interoperability with clients we did not write: Python's
//! `multiprocessing.shared_memory` on our POSIX segments (both directions),
//! and util-linux `ipcs -m` / `ipcrm -m` on our System V segments.
//!
//! A test skips, saying why, only when the tool is truly absent.

mod common;

use std::process::Command;

use common::UnlinkGuard;
use shm_segment::{Access, PosixOptions, PosixShm, Region, SysvKey, SysvOptions, SysvSegment};

/// Whether `python3` with `multiprocessing.shared_memory` is installed; when
/// not, prints the reason.
fn have_python(test: &str) -> bool {
    match common::probe(
        "python3",
        &[
            "-c",
            "import multiprocessing.shared_memory, sys; print(sys.version)",
        ],
    ) {
        None => {
            common::skip(test, "python3 is not installed (not on PATH)");
            false
        }
        Some(out) if !out.status.success() => {
            common::skip(
                test,
                &format!(
                    "python3 has no multiprocessing.shared_memory (Python >= 3.8 needed): {}",
                    out.stderr.trim()
                ),
            );
            false
        }
        Some(_) => true,
    }
}

/// Runs a Python script with arguments; asserts it succeeded; returns stdout.
fn python(script: &str, args: &[&str]) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    let out = common::run(&mut cmd).expect("start python3");
    assert!(
        out.status.success(),
        "python failed: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    // Python 3.11's resource tracker warns about "leaked" segments; there must be none.
    assert!(
        !out.stderr.contains("leaked"),
        "resource tracker complained: {}",
        out.stderr
    );
    out.stdout
}

/// Attaches to an existing segment by name, prints its size and the hex of
/// its first `n` bytes, then writes `reply` (hex) at `offset`. Python 3.11
/// registers even a segment it only attached to with the resource tracker,
/// which would unlink it when Python exits: unregister it.
const PY_ATTACH: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
name, n, offset, reply = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bytes.fromhex(sys.argv[4])
shm = shared_memory.SharedMemory(name=name)
resource_tracker.unregister(shm._name, "shared_memory")
print(shm.size)
print(bytes(shm.buf[:n]).hex())
shm.buf[offset:offset + len(reply)] = reply
shm.close()
"#;

#[test]
fn python_attaches_to_our_posix_segment() {
    const TEST: &str = "python_attaches_to_our_posix_segment";
    if !have_python(TEST) {
        return;
    }
    let name = common::posix_name("py-attach");
    let shm = PosixOptions::new()
        .unlink_on_drop(true)
        .create(&name, 4096)
        .unwrap();
    let map = shm.map().unwrap();
    let ours: Vec<u8> = (0..=255u8).rev().collect();
    map.write_at(0, &ours).unwrap();

    let reply = b"written by CPython";
    // Python adds the leading '/' itself, as our ShmName does.
    let bare = name.trim_start_matches('/');
    let out = python(PY_ATTACH, &[bare, "256", "1000", &hex(reply)]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("4096"), "python's size: {out}");
    assert_eq!(
        lines.next(),
        Some(hex(&ours).as_str()),
        "python read: {out}"
    );

    let mut got = vec![0; reply.len()];
    map.read_at(1000, &mut got).unwrap();
    assert_eq!(got, reply);
    // Python detached without unlinking: the name is still there.
    assert!(common::shm_path(&name).exists());
    assert!(PosixShm::open(&name).is_ok());
}

/// Creates a segment, fills it with a known pattern and unregisters it, so
/// that it outlives Python.
const PY_CREATE: &str = r#"
import sys
from multiprocessing import shared_memory, resource_tracker
name, size = sys.argv[1], int(sys.argv[2])
shm = shared_memory.SharedMemory(name=name, create=True, size=size)
shm.buf[:size] = bytes((i * 7 + 3) % 256 for i in range(size))
resource_tracker.unregister(shm._name, "shared_memory")
shm.close()
print("created", shm._name)
"#;

/// Reads what we wrote at an offset, then unlinks the segment.
const PY_READ_AND_UNLINK: &str = r#"
import sys
from multiprocessing import shared_memory
name, offset, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
shm = shared_memory.SharedMemory(name=name)
print(bytes(shm.buf[offset:offset + n]).hex())
shm.close()
shm.unlink()
"#;

#[test]
fn we_attach_to_a_python_segment() {
    const TEST: &str = "we_attach_to_a_python_segment";
    if !have_python(TEST) {
        return;
    }
    const SIZE: usize = 5000;
    let name = common::posix_name("py-create");
    let _cleanup = UnlinkGuard(name.clone());
    let bare = name.trim_start_matches('/');
    let out = python(PY_CREATE, &[bare, &SIZE.to_string()]);
    assert_eq!(out.trim(), format!("created {name}"));

    let shm = PosixOptions::new().min_size(SIZE).open(&name).unwrap();
    let st = shm.stat().unwrap();
    assert_eq!(st.size, SIZE);
    assert_eq!(st.mode, 0o600, "Python creates with mode 0600");
    let map = shm.map().unwrap();
    let expected: Vec<u8> = (0..SIZE).map(|i| ((i * 7 + 3) % 256) as u8).collect();
    assert_eq!(map.to_vec(), expected);

    let answer = b"answer from Rust";
    map.write_at(4000, answer).unwrap();
    let out = python(
        PY_READ_AND_UNLINK,
        &[bare, "4000", &answer.len().to_string()],
    );
    assert_eq!(out.trim(), hex(answer));
    // Python unlinked it; our mapping is still valid, the name is gone.
    assert!(!common::shm_path(&name).exists());
    assert_eq!(
        PosixShm::open(&name).unwrap_err().raw_os_error(),
        Some(libc::ENOENT)
    );
    assert_eq!(map.read_pod::<[u8; 3]>(0).unwrap(), [3, 10, 17]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `ipcs` with arguments, or says why it cannot.
fn ipcs(test: &str, args: &[&str]) -> Option<String> {
    let Some(out) = common::probe("ipcs", args) else {
        common::skip(test, "ipcs (util-linux) is not installed");
        return None;
    };
    assert!(out.status.success(), "ipcs {args:?}: {out:?}");
    Some(out.stdout)
}

/// The `ipcs -m` row whose first column is `key`: `[key, shmid, owner, perms, bytes, nattch, status...]`.
fn ipcs_row(listing: &str, key: &str) -> Option<Vec<String>> {
    listing
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| cols.first().map(String::as_str) == Some(key))
}

#[test]
fn ipcs_shows_our_sysv_segment() {
    const TEST: &str = "ipcs_shows_our_sysv_segment";
    let key = SysvKey::random();
    let seg = SysvOptions::new()
        .mode(0o640)
        .remove_on_drop(true)
        .create(key, 12345)
        .unwrap();
    let _map = seg.attach(Access::ReadOnly).unwrap();
    let Some(listing) = ipcs(TEST, &["-m"]) else {
        return;
    };
    let key_text = format!("{:#010x}", key.0 as u32);
    assert_eq!(key_text, key.to_string(), "SysvKey displays as ipcs does");
    let row = ipcs_row(&listing, &key_text)
        .unwrap_or_else(|| panic!("ipcs -m does not list key {key_text}:\n{listing}"));
    assert!(row.len() >= 6, "{row:?}");
    assert_eq!(row[1], seg.id().to_string(), "shmid: {row:?}");
    assert_eq!(row[3], "640", "perms: {row:?}");
    assert_eq!(row[4], "12345", "bytes: {row:?}");
    assert_eq!(row[5], "1", "nattch: {row:?}");

    // ipcs and our stat agree on the same segment.
    let st = seg.stat().unwrap();
    assert_eq!((st.size, st.perms(), st.nattch), (12345, 0o640, 1));

    // After IPC_RMID with an attach left, ipcs shows it as `dest`, key 0.
    seg.remove().unwrap();
    let listing = ipcs(TEST, &["-m"]).unwrap();
    let row = listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.get(1) == Some(&seg.id().to_string().as_str()))
        .unwrap_or_else(|| panic!("ipcs -m lost shmid {}:\n{listing}", seg.id()));
    assert_eq!(row[0], "0x00000000", "{row:?}");
    assert!(row.contains(&"dest"), "{row:?}");
}

#[test]
fn ipcrm_removes_our_sysv_segment() {
    const TEST: &str = "ipcrm_removes_our_sysv_segment";
    let seg = SysvOptions::new()
        .remove_on_drop(true) // in case ipcrm fails; then a no-op
        .create(SysvKey::PRIVATE, 4096)
        .unwrap();
    let id = seg.id();
    let Some(out) = common::probe("ipcrm", &["-m", &id.to_string()]) else {
        common::skip(TEST, "ipcrm (util-linux) is not installed");
        return;
    };
    assert!(out.status.success(), "ipcrm -m {id}: {out:?}");
    // Nobody was attached, so it is gone at once.
    let err = SysvSegment::open_id(id).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert!(err.to_string().contains(&format!("shmid {id}")), "{err}");
    assert!(shm_segment::sysv::list()
        .unwrap()
        .iter()
        .all(|s| s.id != id));
    // Our handle's own operations now report the OS error, no panic.
    assert_eq!(seg.stat().unwrap_err().raw_os_error(), Some(libc::EINVAL));
    assert_eq!(
        seg.attach(Access::ReadWrite).unwrap_err().raw_os_error(),
        Some(libc::EINVAL)
    );
}
