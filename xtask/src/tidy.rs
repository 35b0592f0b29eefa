//! Tidy checks that `cargo test --workspace` runs: rules about the source
//! tree that neither rustc nor clippy checks. Each failure names its file and
//! line.
//!
//! - Every published crate's `src/lib.rs` (`crates/*/src/lib.rs` and the
//!   facade's `src/lib.rs`) has a module doc (`//!`) with an example (a
//!   fenced block).
//! - No doc example (in `///` or `//!` comments) is only `let _ = …;`: an
//!   example shows a use, not that an expression compiles.
//! - Nothing in the tree cites the old design file: `docs/architecture.md`
//!   is the one description of the design.
//! - A test that names a POSIX segment with a literal `"/shm-…"` uses the
//!   `/shm-test-` prefix, which the leak check of `cargo xtask ci` looks for.
//! - Every name that `docs/architecture.md` puts in backticks (an identifier
//!   or a path such as `MemPool::reclaim_dead`) still exists in the sources:
//!   the document names types and functions instead of files and lines, and
//!   this keeps the names from drifting.

use std::path::{Path, PathBuf};

use super::root;

/// The old design file's name, spelled so that this file does not cite it.
const OLD_DESIGN: &str = concat!("DESIGN", ".md");

/// A failed rule: where, and what.
#[derive(Debug)]
struct Failure {
    path: PathBuf,
    line: usize,
    what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.strip_prefix(root()).unwrap_or(&self.path);
        write!(f, "{}:{}: {}", path.display(), self.line, self.what)
    }
}

/// Every file under `dir` whose name ends with one of `exts`, skipping build
/// output and hidden folders.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if exts.iter().any(|e| name.ends_with(e)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Rust sources of the library crates and the facade.
fn crate_sources() -> Vec<PathBuf> {
    let mut out = files(&root().join("crates"), &[".rs"]);
    out.extend(files(&root().join("src"), &[".rs"]));
    out
}

/// Every crate's `src/lib.rs`, except the crates that are never published.
fn published_libs() -> Vec<PathBuf> {
    let mut out = vec![root().join("src/lib.rs")];
    for dir in std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
    {
        let lib = dir.path().join("src/lib.rs");
        let manifest = dir.path().join("Cargo.toml");
        let unpublished = std::fs::read_to_string(&manifest)
            .is_ok_and(|m| m.lines().any(|l| l.trim() == "publish = false"));
        if lib.is_file() && !unpublished {
            out.push(lib);
        }
    }
    out.sort();
    out
}

fn lib_has_module_example(path: &Path) -> Option<Failure> {
    let text = read(path);
    let module_doc: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .collect();
    let what = if module_doc.is_empty() {
        "no module doc (`//!`)"
    } else if !module_doc.iter().any(|l| l.trim_start().starts_with("```")) {
        "the module doc (`//!`) has no example (a ``` block)"
    } else {
        return None;
    };
    Some(Failure {
        path: path.to_path_buf(),
        line: 1,
        what: what.to_owned(),
    })
}

/// Doc-comment lines that are only `let _ = …`.
fn let_underscore_examples(path: &Path, text: &str) -> Vec<Failure> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let t = line.trim_start();
            let doc = t.strip_prefix("///").or_else(|| t.strip_prefix("//!"))?;
            doc.trim_start().starts_with("let _ = ").then(|| Failure {
                path: path.to_path_buf(),
                line: i + 1,
                what: format!(
                    "a doc example that is only `let _ = …` (show a use instead): {}",
                    line.trim()
                ),
            })
        })
        .collect()
}

/// Lines that cite the old design file.
fn old_design_citations(path: &Path, text: &str) -> Vec<Failure> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains(OLD_DESIGN))
        .map(|(i, _)| Failure {
            path: path.to_path_buf(),
            line: i + 1,
            what: format!("cites {OLD_DESIGN}, which is gone: cite docs/architecture.md"),
        })
        .collect()
}

/// Literal POSIX names `"/shm-…"` in test code without the `shm-test-`
/// prefix. Test code: a file under a `tests/` folder, or what follows the
/// first `#[cfg(test)]` of a source file.
fn untagged_test_names(path: &Path, text: &str) -> Vec<Failure> {
    let in_tests_dir = path.components().any(|c| c.as_os_str() == "tests");
    let start = if in_tests_dir {
        0
    } else {
        match text.lines().position(|l| l.trim() == "#[cfg(test)]") {
            Some(i) => i,
            None => return Vec::new(),
        }
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(start) {
        let mut rest = line;
        while let Some(at) = rest.find("\"/shm-") {
            let name = &rest[at + 1..];
            if !name.starts_with("/shm-test-") {
                out.push(Failure {
                    path: path.to_path_buf(),
                    line: i + 1,
                    what: format!(
                        "a test's POSIX name without the /shm-test- prefix: {}",
                        line.trim()
                    ),
                });
                break;
            }
            rest = &rest[at + 2..];
        }
    }
    out
}

/// Whether `s` is an identifier or a path of them (`a`, `A::b`).
fn is_ident_path(s: &str) -> bool {
    let ident = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    !s.is_empty() && s.split("::").all(ident)
}

/// The identifiers (and paths) in backticks in `text`, outside fenced
/// blocks, with their line numbers.
fn backticked_names(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (k, span) in line.split('`').enumerate() {
            if k % 2 == 1 && is_ident_path(span) {
                out.push((i + 1, span.to_owned()));
            }
        }
    }
    out
}

/// Every word (identifier) of `text`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

fn report(rule: &str, failures: &[Failure]) {
    if failures.is_empty() {
        return;
    }
    let list: Vec<String> = failures.iter().map(ToString::to_string).collect();
    panic!(
        "tidy: {rule}: {} place(s):\n  {}",
        failures.len(),
        list.join("\n  ")
    );
}

#[test]
fn every_lib_has_a_module_example() {
    let failures: Vec<Failure> = published_libs()
        .iter()
        .filter_map(|p| lib_has_module_example(p))
        .collect();
    report("a crate's src/lib.rs without an example", &failures);
}

#[test]
fn no_doc_example_is_only_let_underscore() {
    let failures: Vec<Failure> = crate_sources()
        .iter()
        .flat_map(|p| let_underscore_examples(p, &read(p)))
        .collect();
    report("doc examples that are only `let _ = …`", &failures);
}

#[test]
fn nothing_cites_the_old_design_file() {
    let mut paths = Vec::new();
    for dir in [
        "crates", "src", "benches", "examples", "docs", "xtask", "fuzz",
    ] {
        paths.extend(files(&root().join(dir), &[".rs", ".md", ".toml"]));
    }
    // The changelog may name it in history; the README may not.
    paths.push(root().join("README.md"));
    let failures: Vec<Failure> = paths
        .iter()
        .flat_map(|p| old_design_citations(p, &read(p)))
        .collect();
    report(&format!("citations of {OLD_DESIGN}"), &failures);
}

#[test]
fn test_segment_names_use_the_test_prefix() {
    let failures: Vec<Failure> = crate_sources()
        .iter()
        .flat_map(|p| untagged_test_names(p, &read(p)))
        .collect();
    report("test segment names without /shm-test-", &failures);
}

#[test]
fn the_architecture_doc_names_only_what_exists() {
    let mut known = std::collections::HashSet::new();
    let mut paths = Vec::new();
    for dir in ["crates", "src", "benches", "xtask", "fuzz"] {
        paths.extend(files(&root().join(dir), &[".rs", ".toml"]));
    }
    paths.push(root().join("Cargo.toml"));
    for path in &paths {
        known.extend(words(&read(path)).map(str::to_owned));
        // File names count too (fuzz targets, benches).
        if let Some(stem) = path.file_stem() {
            known.insert(stem.to_string_lossy().into_owned());
        }
    }
    let doc = root().join("docs/architecture.md");
    let failures: Vec<Failure> = backticked_names(&read(&doc))
        .into_iter()
        .filter(|(_, name)| !known.contains(name.rsplit("::").next().unwrap_or(name)))
        .map(|(line, name)| Failure {
            path: doc.clone(),
            line,
            what: format!("`{name}` is named nowhere in the sources: renamed or removed?"),
        })
        .collect();
    report("names in docs/architecture.md that do not exist", &failures);
}

#[test]
fn the_rules_catch_what_they_should() {
    let p = Path::new("x.rs");
    assert_eq!(
        let_underscore_examples(p, "/// ```\n/// let _ = f();\n/// ```\n").len(),
        1
    );
    assert!(let_underscore_examples(p, "/// let x = f();\nlet _ = g();\n").is_empty());
    assert_eq!(
        old_design_citations(p, &format!("// see {OLD_DESIGN}\n")).len(),
        1
    );
    let src = "fn f() { open(\"/shm-demo\"); }\n#[cfg(test)]\nmod tests {\n  \"/shm-x\"; \"/shm-test-y\";\n}\n";
    let found = untagged_test_names(p, src);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 4);
    assert!(untagged_test_names(Path::new("crates/a/tests/t.rs"), "\"/shm-test-a\"").is_empty());
    let names = backticked_names("`A::b` and `x y` and `c`\n```\n`d`\n```\n`e.f` `g`\n");
    let names: Vec<(usize, &str)> = names.iter().map(|(l, n)| (*l, n.as_str())).collect();
    assert_eq!(names, [(1, "A::b"), (1, "c"), (5, "g")]);
}
