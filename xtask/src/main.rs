//! Project automation: `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! - `ci`: what CI checks: fmt, clippy `-D warnings`, the tests, rustdoc
//!   `-D warnings`, the loom models, and that the suite left no segment behind.
//! - `loom`: the loom models of the rings alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("loom") => loom(),
        _ => {
            eprintln!("usage: cargo xtask ci | loom");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}

/// Runs a command in the project root, echoing it, and fails on a non-zero exit.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result {
    println!("\n==> {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn ci() -> Result {
    let before = segments();
    run("cargo", &["fmt", "--all", "--check"], &[])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    run("cargo", &["test", "--workspace"], &[])?;
    run(
        "cargo",
        &["doc", "--workspace", "--no-deps"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    check_leaks(&before)?;
    loom()
}

/// The rings' loom models, in their own target dir so the `--cfg loom`
/// build does not invalidate the normal one.
fn loom() -> Result {
    run(
        "cargo",
        &[
            "test",
            "-p",
            "shm-ring",
            "--test",
            "loom",
            "--release",
            "--target-dir",
            "target/loom",
        ],
        &[("RUSTFLAGS", "--cfg loom")],
    )
}

/// Our objects in `/dev/shm` and the host's System V shmids.
fn segments() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        out.extend(
            dir.flatten()
                .map(|e| format!("/dev/shm/{}", e.file_name().to_string_lossy())),
        );
    }
    if let Ok(table) = std::fs::read_to_string("/proc/sysvipc/shm") {
        // Columns: key shmid perms size cpid lpid nattch ...
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 6 {
                out.insert(format!(
                    "SysV key {} shmid {} (nattch {})",
                    cols[0], cols[1], cols[6]
                ));
            }
        }
    }
    out
}

fn check_leaks(before: &BTreeSet<String>) -> Result {
    println!("\n==> leak check: /dev/shm and System V segments");
    let leaked: Vec<String> = segments()
        .difference(before)
        .filter(|s| s.starts_with("SysV") || s.contains("shm-"))
        .cloned()
        .collect();
    let left_tests: Vec<String> = segments()
        .into_iter()
        .filter(|s| s.contains("/shm-test-"))
        .collect();
    if leaked.is_empty() && left_tests.is_empty() {
        println!("nothing left behind");
        return Ok(());
    }
    Err(format!(
        "the suite left segments behind:\n  {}",
        leaked
            .iter()
            .chain(&left_tests)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    ))
}
