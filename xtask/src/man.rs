//! `cargo xtask man`: the `shm` man page and shell completions, written by
//! the built binary itself (`shm manpage`, `shm completions SHELL`) into
//! `target/man/shm.1` and `target/completions/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run, Result};

/// The shells whose completions are written, with their conventional file names.
const COMPLETIONS: [(&str, &str); 3] =
    [("bash", "shm.bash"), ("zsh", "_shm"), ("fish", "shm.fish")];

/// The target directory: `CARGO_TARGET_DIR` if set, else `target/` in the root.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Builds `shm` and writes its man page and completions; returns the files written.
pub(crate) fn man() -> Result<Vec<PathBuf>> {
    run(
        "cargo",
        &["build", "--package", "shm-cli", "--bin", "shm"],
        &[],
    )?;
    let target = target_dir();
    let shm = target.join("debug").join("shm");
    let mut written = Vec::new();

    let page = output(&shm, &["manpage"])?;
    // clap_mangen starts with the `.ie`/`.el` apostrophe definitions, then the title.
    if !page.lines().any(|l| l.starts_with(".TH shm 1")) {
        return Err("`shm manpage` printed no `.TH shm 1` header".into());
    }
    written.push(write(&target.join("man").join("shm.1"), &page)?);

    for (shell, file) in COMPLETIONS {
        let script = output(&shm, &["completions", shell])?;
        if script.trim().is_empty() {
            return Err(format!("`shm completions {shell}` printed nothing"));
        }
        written.push(write(&target.join("completions").join(file), &script)?);
    }
    println!();
    for path in &written {
        println!(
            "wrote {}",
            path.strip_prefix(root()).unwrap_or(path).display()
        );
    }
    Ok(written)
}

/// Runs the built binary and returns its stdout; fails on a non-zero exit.
fn output(shm: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(shm)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", shm.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`shm {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("`shm {}`: {e}", args.join(" ")))
}

fn write(path: &Path, text: &str) -> Result<PathBuf> {
    let dir = path.parent().expect("a file under target/");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.to_path_buf())
}
