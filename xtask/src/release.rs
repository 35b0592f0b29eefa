//! `cargo xtask release [--dry-run] [--no-verify] VERSION`: prepares a release
//! and checks it, but never publishes.
//!
//! 1. VERSION must be `x.y.z` and greater than the current version.
//! 2. The root `Cargo.toml` gets the new `[workspace.package] version` and the
//!    new `version = "..."` of every internal crate in `[workspace.dependencies]`
//!    (shm-testkit is path-only and never published: left alone).
//! 3. `CHANGELOG.md`: what is under `## [Unreleased]` moves under
//!    `## [VERSION] - YYYY-MM-DD` (UTC), leaving Unreleased empty.
//! 4. The man page and completions (`cargo xtask man`).
//! 5. `cargo package` of the published crates together (cargo packages
//!    interdependent workspace crates through a temporary local registry), in
//!    dependency order, verifying that each builds from its `.crate` unless
//!    `--no-verify`.
//!
//! With `--dry-run`, steps 2 and 3 only print the plan and the diff; nothing in
//! the tree is written (step 4 writes only under `target/`, step 5 packages the
//! current version). Without it the files are written. In neither case is
//! anything published: the `cargo publish` commands are printed, in order, for
//! a human to run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::{root, Result};

/// The published crates, in dependency order (each depends only on earlier ones).
const CRATES: [(&str, &str); 6] = [
    ("shm-sys", "crates/shm-sys"),
    ("shm-segment", "crates/shm-segment"),
    ("shm-ring", "crates/shm-ring"),
    ("shm-mempool", "crates/shm-mempool"),
    ("shm-cli", "crates/shm-cli"),
    ("shm", "."),
];

/// The internal crates whose `version = "..."` in `[workspace.dependencies]` follows the release.
const INTERNAL_DEPS: [&str; 4] = ["shm-sys", "shm-segment", "shm-ring", "shm-mempool"];

pub(crate) fn release(args: &[String]) -> Result {
    let mut dry_run = false;
    let mut verify = true;
    let mut version = None;
    for arg in args {
        match arg.as_str() {
            "--dry-run" => dry_run = true,
            "--no-verify" => verify = false,
            a if a.starts_with('-') => return Err(format!("release: unknown option {a}")),
            a if version.is_none() => version = Some(a),
            a => return Err(format!("release: one VERSION only (also got {a})")),
        }
    }
    let version = version.ok_or("usage: cargo xtask release [--dry-run] [--no-verify] VERSION")?;
    let new = Version::parse(version)?;

    let manifest_path = root().join("Cargo.toml");
    let changelog_path = root().join("CHANGELOG.md");
    let manifest = read(&manifest_path)?;
    let changelog = read(&changelog_path)?;
    let (old, new_manifest) = bump_manifest(&manifest, new)?;
    if new <= old {
        return Err(format!(
            "release: {new} is not greater than the current {old}"
        ));
    }
    check_order()?;
    let date = today();
    let new_changelog = move_unreleased(&changelog, new, &date)?;

    println!(
        "release {old} -> {new} ({date}){}",
        if dry_run {
            ", dry run: nothing is written"
        } else {
            ""
        }
    );
    println!("\nplan:");
    println!("  1. Cargo.toml: [workspace.package] version and the internal crates in");
    println!(
        "     [workspace.dependencies] ({}) to {new}",
        INTERNAL_DEPS.join(", ")
    );
    println!("     (shm-testkit: path-only, publish = false, left alone; Cargo.lock follows)");
    println!("  2. CHANGELOG.md: Unreleased moves under ## [{new}] - {date}");
    println!("  3. target/man/shm.1 and target/completions/ (cargo xtask man)");
    println!(
        "  4. cargo package{}, in dependency order: {}",
        if verify { "" } else { " --no-verify" },
        CRATES.map(|(name, _)| name).join(" -> ")
    );
    println!("  5. nothing is published: the cargo publish commands are printed for a human");

    println!("\n{}", diff("Cargo.toml", &manifest, &new_manifest));
    println!("{}", diff("CHANGELOG.md", &changelog, &new_changelog));

    if dry_run {
        println!("dry run: Cargo.toml and CHANGELOG.md left as they are");
    } else {
        write(&manifest_path, &new_manifest)?;
        write(&changelog_path, &new_changelog)?;
        println!("wrote Cargo.toml and CHANGELOG.md");
    }

    crate::man::man()?;
    let packaged = package(verify)?;

    println!("\n==> summary");
    if dry_run {
        println!("dry run: no file in the tree was changed; the packages checked are {old}");
    } else {
        println!("Cargo.toml and CHANGELOG.md now say {new}; review with `git diff`");
    }
    match packaged {
        Packaged::Ok => println!("cargo package: all {} crates packaged", CRATES.len()),
        Packaged::Offline(why) => println!(
            "cargo package: NOT CHECKED, the crates.io index could not be reached ({why}); \
             rerun online before publishing"
        ),
    }
    println!("\nNothing was published. `cargo publish` is left to a human, in this order:");
    if !dry_run {
        println!("  git commit -am \"Release {new}\" && git tag v{new}");
    }
    for (name, _) in CRATES {
        println!("  cargo publish -p {name}");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
}

impl Version {
    /// `x.y.z`: three decimal numbers without leading zeros.
    fn parse(s: &str) -> Result<Self> {
        let bad = || format!("release: {s:?} is not a semver version x.y.z (like 0.2.0)");
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 3 {
            return Err(bad());
        }
        let mut n = [0u64; 3];
        for (slot, part) in n.iter_mut().zip(&parts) {
            let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            if !digits || (part.len() > 1 && part.starts_with('0')) {
                return Err(bad());
            }
            *slot = part.parse().map_err(|_| bad())?;
        }
        Ok(Version {
            major: n[0],
            minor: n[1],
            patch: n[2],
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The section a `[header]` line opens, or `None` for any other line.
fn section(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

/// The value of `version = "..."` in `line` (a plain key or inside an inline table).
fn quoted_version(line: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = line[from..].find("version") {
        let at = from + i;
        let before_ok = at == 0 || matches!(line.as_bytes()[at - 1], b' ' | b'{' | b',' | b'\t');
        let rest = line[at + "version".len()..].trim_start();
        if before_ok {
            if let Some(rest) = rest.strip_prefix('=') {
                let rest = rest.trim_start();
                if let Some(value) = rest.strip_prefix('"') {
                    let start = line.len() - value.len();
                    let end = start + value.find('"')?;
                    return Some((start, end));
                }
            }
        }
        from = at + "version".len();
    }
    None
}

/// The root manifest with `new` in `[workspace.package]` and the internal
/// crates of `[workspace.dependencies]`; also the current version.
fn bump_manifest(text: &str, new: Version) -> Result<(Version, String)> {
    let mut current = None;
    let mut bumped_deps = Vec::new();
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_section = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(s) = section(line) {
            in_section = s.to_owned();
        }
        let key = line.split('=').next().unwrap_or("").trim();
        let target = match in_section.as_str() {
            "workspace.package" if key == "version" => Some("[workspace.package] version"),
            "workspace.dependencies" if INTERNAL_DEPS.contains(&key) => Some(key),
            _ => None,
        };
        let Some(what) = target else {
            out.push_str(line);
            continue;
        };
        let (start, end) =
            quoted_version(line).ok_or_else(|| format!("Cargo.toml: no version in {what}"))?;
        let old =
            Version::parse(&line[start..end]).map_err(|e| format!("Cargo.toml: {what}: {e}"))?;
        match current {
            None => current = Some(old),
            Some(v) if v != old => {
                return Err(format!(
                    "Cargo.toml: {what} is {old}, not the workspace's {v}: fix that by hand first"
                ))
            }
            Some(_) => {}
        }
        if what != "[workspace.package] version" {
            bumped_deps.push(what);
        }
        out.push_str(&line[..start]);
        out.push_str(&new.to_string());
        out.push_str(&line[end..]);
    }
    let current = current.ok_or("Cargo.toml: no [workspace.package] version")?;
    for dep in INTERNAL_DEPS {
        if !bumped_deps.contains(&dep) {
            return Err(format!(
                "Cargo.toml: {dep} in [workspace.dependencies] has no version"
            ));
        }
    }
    Ok((current, out))
}

/// The changelog with what is under `## [Unreleased]` moved under `## [new] - date`.
fn move_unreleased(text: &str, new: Version, date: &str) -> Result<String> {
    if text.lines().any(|l| l.starts_with(&format!("## [{new}]"))) {
        return Err(format!("CHANGELOG.md already has a section for {new}"));
    }
    let heading = text
        .split_inclusive('\n')
        .scan(0, |at, line| {
            let start = *at;
            *at += line.len();
            Some((start, line))
        })
        .find(|(_, line)| line.trim_end() == "## [Unreleased]")
        .map(|(start, line)| start + line.len())
        .ok_or("CHANGELOG.md has no `## [Unreleased]` section")?;
    let body_end = text[heading..]
        .find("\n## [")
        .map_or(text.len(), |i| heading + i + 1);
    if text[heading..body_end].trim().is_empty() {
        return Err("CHANGELOG.md: nothing under Unreleased to release".into());
    }
    let mut out = String::with_capacity(text.len() + 32);
    out.push_str(&text[..heading]);
    if !text[..heading].ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("\n## [{new}] - {date}\n"));
    out.push_str(&text[heading..]);
    Ok(out)
}

/// Checks that each published crate depends only on crates before it in [`CRATES`].
fn check_order() -> Result {
    for (i, (name, dir)) in CRATES.iter().enumerate() {
        let path = root().join(dir).join("Cargo.toml");
        let text = read(&path)?;
        let mut in_deps = false;
        for line in text.lines() {
            if let Some(s) = section(line) {
                in_deps = s == "dependencies" || s == "build-dependencies";
                continue;
            }
            let key = line.split(['=', '.']).next().unwrap_or("").trim();
            if !in_deps || !key.starts_with("shm") {
                continue;
            }
            match CRATES.iter().position(|(n, _)| *n == key) {
                Some(j) if j < i => {}
                _ => {
                    return Err(format!(
                        "{name} depends on {key}, which is not published before it"
                    ))
                }
            }
        }
    }
    Ok(())
}

/// What the packaging check found.
enum Packaged {
    Ok,
    /// The index was needed and could not be reached.
    Offline(String),
}

/// `cargo package` of every published crate together: cargo resolves the
/// internal dependencies through a temporary local registry and writes the
/// `.crate` files in dependency order.
fn package(verify: bool) -> Result<Packaged> {
    let mut args = vec!["package", "--allow-dirty"];
    if !verify {
        args.push("--no-verify");
    }
    for (name, _) in CRATES {
        args.extend(["--package", name]);
    }
    let (ok, log) = cargo_logged(&args)?;
    if ok {
        return Ok(Packaged::Ok);
    }
    if !needs_network(&log) {
        return Err("cargo package failed (see above)".into());
    }
    println!("\ncargo package could not reach the index; trying again with --offline");
    args.push("--offline");
    let (ok, log) = cargo_logged(&args)?;
    if ok {
        return Ok(Packaged::Ok);
    }
    if needs_network(&log) || log.contains("--offline") {
        let why = log
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or("offline")
            .trim()
            .to_owned();
        return Ok(Packaged::Offline(why));
    }
    Err("cargo package --offline failed (see above)".into())
}

fn needs_network(log: &str) -> bool {
    [
        "Unable to update registry",
        "failed to query replaced source",
        "failed to download",
        "failed to get",
        "Couldn't resolve host",
        "Could not resolve host",
        "network failure",
        "spurious network error",
        "failed to fetch",
    ]
    .iter()
    .any(|m| log.contains(m))
}

/// Runs cargo in the root, echoing its stderr as it comes and returning it.
fn cargo_logged(args: &[&str]) -> Result<(bool, String)> {
    println!("\n==> cargo {}", args.join(" "));
    let mut child = Command::new("cargo")
        .args(args)
        .current_dir(root())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut log = String::new();
    let stderr = child.stderr.take().expect("stderr is piped");
    for line in BufReader::new(stderr).lines() {
        let line = line.map_err(|e| format!("reading cargo's output: {e}"))?;
        eprintln!("{line}");
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().map_err(|e| format!("cargo: {e}"))?;
    Ok((status.success(), log))
}

/// Today in UTC as `YYYY-MM-DD`.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_date((secs / 86_400) as i64)
}

/// Days since 1970-01-01 to `YYYY-MM-DD` (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A unified diff of two texts (longest common subsequence of lines, three
/// lines of context).
fn diff(name: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // lcs[i][j]: the LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, old line index, new line index) for every line of either text.
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i, j));
            i += 1;
        } else {
            ops.push(('+', i, j));
            j += 1;
        }
    }
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut out = format!("--- a/{name}\n+++ b/{name}\n");
    if changed.is_empty() {
        out.push_str("(no change)\n");
        return out;
    }
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut last = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= last + 2 * CONTEXT + 1 {
            k += 1;
            last = changed[k];
        }
        let end = (last + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let old_len = hunk.iter().filter(|o| o.0 != '+').count();
        let new_len = hunk.iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!(
            "@@ -{},{old_len} +{},{new_len} @@\n",
            hunk[0].1 + 1,
            hunk[0].2 + 1
        ));
        for &(tag, i, j) in hunk {
            let line = if tag == '+' { b[j] } else { a[i] };
            out.push(tag);
            out.push_str(line);
            out.push('\n');
        }
        k += 1;
    }
    out
}

fn read(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn write(path: &std::path::Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_are_three_plain_numbers() {
        assert_eq!(v("0.2.0").to_string(), "0.2.0");
        assert_eq!(v("10.0.12").to_string(), "10.0.12");
        assert!(v("0.10.0") > v("0.9.9"));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "1.2.x",
            "01.2.3",
            "1.2.3-rc.1",
            "1..3",
            " 1.2.3",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }

    const MANIFEST: &str = r#"[workspace]
members = ["crates/*"]

[workspace.package]
version = "0.1.0"
edition = "2021"

[workspace.dependencies]
shm-sys = { path = "crates/shm-sys", version = "0.1.0" }
shm-segment = { path = "crates/shm-segment", version = "0.1.0" }
shm-ring = { path = "crates/shm-ring", version = "0.1.0" }
shm-mempool = { path = "crates/shm-mempool", version = "0.1.0" }
shm-testkit = { path = "crates/shm-testkit" }
libc = "0.2.170"
bytemuck = { version = "1.16", features = ["derive"] }

[package]
name = "shm"
version.workspace = true
"#;

    #[test]
    fn the_manifest_bump_touches_only_our_versions() {
        let (old, new) = bump_manifest(MANIFEST, v("0.2.0")).unwrap();
        assert_eq!(old, v("0.1.0"));
        assert_eq!(new, MANIFEST.replace("\"0.1.0\"", "\"0.2.0\""));
        assert!(new.contains("shm-testkit = { path = \"crates/shm-testkit\" }\n"));
        assert!(new.contains("bytemuck = { version = \"1.16\""));
        // The real manifest parses too.
        let real = read(&root().join("Cargo.toml")).unwrap();
        let (_, bumped) = bump_manifest(&real, v("99.0.0")).unwrap();
        assert_eq!(bumped.matches("\"99.0.0\"").count(), 5);
    }

    #[test]
    fn the_manifest_bump_refuses_disagreeing_versions() {
        let skewed = MANIFEST.replace(
            "crates/shm-ring\", version = \"0.1.0\"",
            "crates/shm-ring\", version = \"0.0.9\"",
        );
        let e = bump_manifest(&skewed, v("0.2.0")).unwrap_err();
        assert!(e.contains("shm-ring"), "{e}");
        let missing = MANIFEST.replace(", version = \"0.1.0\" }\nshm-ring", " }\nshm-ring");
        assert!(bump_manifest(&missing, v("0.2.0")).is_err());
    }

    #[test]
    fn unreleased_moves_under_the_version() {
        let log = "# Changelog\n\n## [Unreleased]\n\n### Added\n\n- a thing\n\n## [0.1.0] - 2020-01-01\n\n- old\n";
        let new = move_unreleased(log, v("0.2.0"), "2026-05-01").unwrap();
        assert_eq!(
            new,
            "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-05-01\n\n### Added\n\n- a thing\n\n## [0.1.0] - 2020-01-01\n\n- old\n"
        );
        // Nothing new, a version already there, or no Unreleased: refused.
        assert!(move_unreleased(&new, v("0.3.0"), "2026-05-02").is_err());
        assert!(move_unreleased(log, v("0.1.0"), "2026-05-02").is_err());
        assert!(move_unreleased("# Changelog\n", v("0.2.0"), "2026-05-02").is_err());
        // The real changelog has something to release.
        let real = read(&root().join("CHANGELOG.md")).unwrap();
        move_unreleased(&real, v("99.0.0"), "2026-05-01").unwrap();
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(19_782), "2024-02-29");
        assert_eq!(civil_date(20_454), "2026-01-01");
    }

    #[test]
    fn the_diff_shows_changed_lines_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\n";
        let d = diff("x", old, new);
        assert_eq!(
            d,
            "--- a/x\n+++ b/x\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
        );
        assert!(diff("x", old, old).contains("(no change)"));
    }

    #[test]
    fn the_publish_order_follows_the_dependencies() {
        check_order().unwrap();
    }
}
