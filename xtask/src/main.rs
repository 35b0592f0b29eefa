//! Project automation: `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! - `ci`: what CI checks: fmt, clippy `-D warnings`, the tests, rustdoc
//!   `-D warnings`, the loom models, that the suite left no segment behind,
//!   and a 10-second smoke of each fuzz target when the nightly toolchain is there.
//! - `loom`: the loom models of the rings and the pool alone.
//! - `miri`: the Miri tests (nightly with the miri component), or why they
//!   were skipped.
//! - `fuzz [--time S]`: every cargo-fuzz target for S seconds (default 60)
//!   on the nightly toolchain, installing cargo-fuzz if it is missing.
//! - `python`: builds the Python package (`crates/shm-py`) into a virtual
//!   environment under `target/` and runs its pytest suite, or says why it
//!   skipped (maturin, pytest, numpy or sysv_ipc missing).
//! - `kill [--rounds N]`: the kill -9 tests of the rings (SPSC and MPMC) and the
//!   pool with N rounds each (default 2000; CI runs 300).
//! - `bench [--quick] [--rounds N] [--no-run]`: the goals harness
//!   (`benches/goals.rs`: ours and every peer of the goal table, interleaved
//!   in one process), then the Goals section of docs/benchmarks.md and
//!   docs/benchmarks.svg.
//! - `bench --criterion [--quick] [--no-run]`: the criterion benches against
//!   their peers, then their generated section of docs/benchmarks.md and
//!   docs/benchmarks-criterion.svg.
//!
//! Its tests include the tidy checks (`tidy.rs`): rules about the source
//! tree that `cargo test --workspace` enforces.

mod bench;
mod goals;
mod man;
mod release;
#[cfg(test)]
mod tidy;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("loom") => loom(),
        Some("miri") => miri(),
        Some("fuzz") => flag(&args, "--time", 60).and_then(fuzz),
        Some("python") => python(),
        Some("kill") => flag(&args, "--rounds", 2000).and_then(kill),
        Some("bench") if args.iter().any(|a| a == "--criterion") => bench::bench(&args),
        Some("bench") => goals::goals(&args),
        Some("man") => man::man().map(drop),
        Some("release") => release::release(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask ci | loom | miri | python | fuzz [--time S] | kill [--rounds N] | bench [--quick] [--rounds N] [--no-run] | bench --criterion [--quick] [--no-run] | man | release [--dry-run] [--no-verify] VERSION");
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

/// The number after `name`, or `default`.
fn flag(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
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
    python()?;
    check_leaks(&before)?;
    loom()?;
    miri()?;
    fuzz_smoke()
}

/// The Python package: built with maturin into `target/py-venv` (a virtual
/// environment that sees the system's site-packages, where `.ci/run` put
/// maturin, pytest, numpy and the peers), then its pytest suite. Skips, saying
/// why, when the build or test tools are missing.
fn python() -> Result {
    let has = |module: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = ["maturin", "pytest", "numpy", "sysv_ipc"]
        .into_iter()
        .filter(|m| !has(m))
        .collect();
    if !missing.is_empty() {
        println!(
            "\n==> python SKIPPED: python3 lacks {} (pip install maturin pytest numpy sysv_ipc)",
            missing.join(", ")
        );
        return Ok(());
    }
    let venv = root().join("target/py-venv");
    if !venv.join("bin/python").exists() {
        let venv = venv.to_str().ok_or("target/ is not a UTF-8 path")?;
        run(
            "python3",
            &["-m", "venv", "--system-site-packages", venv],
            &[],
        )?;
    }
    let pip = venv.join("bin/pip");
    let python = venv.join("bin/python");
    let (pip, python) = (
        pip.to_str().ok_or("target/ is not a UTF-8 path")?,
        python.to_str().ok_or("target/ is not a UTF-8 path")?,
    );
    run(
        pip,
        &[
            "install",
            "--quiet",
            "--no-build-isolation",
            "--no-deps",
            "--force-reinstall",
            "./crates/shm-py",
        ],
        &[],
    )?;
    run(python, &["-m", "pytest", "-q", "crates/shm-py/tests"], &[])
}

/// Whether `cargo +nightly <args>` runs.
fn nightly_has(args: &[&str]) -> bool {
    Command::new("cargo")
        .arg("+nightly")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The tests that Miri checks: safe copies of shared memory are race-free in
/// Rust's memory model. Needs the nightly toolchain with the miri and rust-src
/// components; tries to add them, and says clearly when it skips.
fn miri() -> Result {
    if !nightly_has(&["--version"]) {
        println!("\n==> miri SKIPPED: no nightly toolchain on this machine");
        return Ok(());
    }
    if !nightly_has(&["miri", "--version"]) {
        let added = Command::new("rustup")
            .args(["+nightly", "component", "add", "miri", "rust-src"])
            .status()
            .is_ok_and(|s| s.success());
        if !added || !nightly_has(&["miri", "--version"]) {
            println!(
                "\n==> miri SKIPPED: the nightly miri component is missing and could not be added"
            );
            return Ok(());
        }
    }
    run(
        "cargo",
        &[
            "+nightly",
            "miri",
            "test",
            "-p",
            "shm-segment",
            "--test",
            "miri",
        ],
        &[],
    )?;
    run(
        "cargo",
        &[
            "+nightly",
            "miri",
            "test",
            "-p",
            "shm-segment",
            "--lib",
            "copy::",
        ],
        &[],
    )
}

/// A few seconds of every fuzz target, where the nightly toolchain and
/// cargo-fuzz can be had; otherwise says why it is skipped.
fn fuzz_smoke() -> Result {
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        println!("\n==> fuzz smoke skipped: no nightly toolchain on this machine");
        return Ok(());
    }
    let has_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz && run("cargo", &["install", "--locked", "cargo-fuzz"], &[]).is_err() {
        println!("\n==> fuzz smoke skipped: cargo-fuzz is missing and could not be installed");
        return Ok(());
    }
    fuzz(10)
}

/// The loom models of the rings and the pool, in their own target dir so
/// the `--cfg loom` build does not invalidate the normal one.
fn loom() -> Result {
    for package in ["shm-ring", "shm-mempool"] {
        run(
            "cargo",
            &[
                "test",
                "-p",
                package,
                "--test",
                "loom",
                "--release",
                "--target-dir",
                "target/loom",
            ],
            &[("RUSTFLAGS", "--cfg loom")],
        )?;
    }
    Ok(())
}

/// Our objects in `/dev/shm` and the host's System V shmids.
fn segments() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        // `.shm-live` holds the processes' liveness files, not segments.
        out.extend(
            dir.flatten()
                .map(|e| format!("/dev/shm/{}", e.file_name().to_string_lossy()))
                .filter(|path| path != "/dev/shm/.shm-live"),
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

/// Runs every target in fuzz/fuzz_targets for `seconds` each.
fn fuzz(seconds: u64) -> Result {
    let has_nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        return Err("cargo-fuzz needs the nightly toolchain, which is not installed".into());
    }
    let has_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        run("cargo", &["install", "--locked", "cargo-fuzz"], &[])?;
    }
    let dir = root().join("fuzz/fuzz_targets");
    let mut targets: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(str::to_owned)
        })
        .collect();
    targets.sort();
    let time = format!("-max_total_time={seconds}");
    for target in &targets {
        let fuzz_dir = root().join("fuzz");
        println!("\n==> cargo +nightly fuzz run {target} -- {time}");
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", target, "--", &time])
            .current_dir(&fuzz_dir)
            .status()
            .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
        if !status.success() {
            return Err(format!(
                "fuzz target {target} failed ({status}); see fuzz/artifacts/{target}"
            ));
        }
    }
    println!("\nfuzzed {} targets for {seconds} s each", targets.len());
    Ok(())
}

/// The kill -9 tests of the rings and the pool with more rounds than CI runs.
fn kill(rounds: u64) -> Result {
    let rounds = rounds.to_string();
    for package in ["shm-ring", "shm-mempool"] {
        run(
            "cargo",
            &[
                "test",
                "-p",
                package,
                "--release",
                "--test",
                "kill",
                "--",
                "--nocapture",
            ],
            &[("SHM_KILL_ROUNDS", &rounds)],
        )?;
    }
    Ok(())
}
