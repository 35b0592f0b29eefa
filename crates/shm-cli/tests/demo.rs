//! The README's main job, `shm demo`, run as a real binary.

use std::process::Command;

#[test]
fn demo_round_trips_through_both_segments_and_cleans_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "-> hello over System V from process",
        "-> hello over POSIX from process",
        "<- process",
        "says hi back",
        "nattch 1",
        "mode 600",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert_eq!(stdout.matches(": gone").count(), 2, "{stdout}");
    let pid = stdout
        .split_whitespace()
        .nth(3)
        .and_then(|p| p.parse::<u32>().ok())
        .expect("the first line names the pid");
    assert!(!std::path::Path::new(&format!("/dev/shm/shm-demo-{pid}")).exists());
}

#[test]
fn a_missing_peer_argument_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm"))
        .args(["demo-peer", "--key=1", "--name=/shm-test-cli-nonexistent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("shm: open SysV key 0x00000001"),
        "{stderr}"
    );
}
