//! Unique names and guards that remove what a test created, also on panic.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use shm_segment::PosixShm;

/// A fresh POSIX name, `/shm-test-<what>-<pid>-<counter>`, unique in this
/// process and (through the pid) on the host.
pub fn posix_name(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("/shm-test-{what}-{}-{n}", std::process::id())
}

/// The path in `/dev/shm` of a POSIX name.
pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(shm_segment::SHM_DIR).join(name.trim_start_matches('/'))
}

/// Unlinks a POSIX name on drop, also when the test panics; a name already
/// gone is fine. For segments that someone else (Python, a child) created.
#[derive(Debug)]
pub struct UnlinkGuard(pub String);

impl Drop for UnlinkGuard {
    fn drop(&mut self) {
        let _ = PosixShm::unlink_name(&self.0);
    }
}

/// Removes a plain file (a planted file or symlink) on drop, also on panic.
#[derive(Debug)]
pub struct FileGuard(pub PathBuf);

impl Drop for FileGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
