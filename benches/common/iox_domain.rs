//! A private iceoryx2 domain for one benchmark run, shared by the benches
//! that use iceoryx2 as a peer (`common::iox_domain`).

use iceoryx2::prelude::{Config, FileName, Path as IoxPath, SemanticString};

/// Its own file prefix in `/dev/shm` and its own root directory, both
/// removed afterwards. (iceoryx2 keeps a global management segment per
/// domain on purpose; this run's domain is nobody else's, so removing it is
/// safe.) A child process rebuilds it from `prefix` and `root`.
pub(crate) struct IoxDomain {
    pub(crate) prefix: String,
    pub(crate) root: String,
}

impl IoxDomain {
    /// A fresh domain for this process, named after the bench (`tag`).
    pub(crate) fn new(tag: &str) -> Self {
        let pid = std::process::id();
        IoxDomain {
            prefix: format!("iox2shm{tag}{pid}_"),
            root: format!("/tmp/shm-bench-{tag}-{pid}-iox2/"),
        }
    }

    pub(crate) fn config(&self) -> Config {
        let mut config = Config::default();
        config.global.prefix = FileName::new(self.prefix.as_bytes()).expect("iceoryx2 prefix");
        config
            .global
            .set_root_path(&IoxPath::new(self.root.as_bytes()).expect("iceoryx2 root"));
        config
    }

    /// Removes what runs of bench `tag` that were killed (no chance to
    /// clean up) left.
    pub(crate) fn remove_stale(tag: &str) {
        let dead = |pid: &str| {
            pid.parse::<u32>()
                .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        };
        let stale = |dir: &str, prefix: &str, sep: char| -> Vec<std::path::PathBuf> {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return Vec::new();
            };
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix(prefix)
                        .and_then(|rest| rest.split(sep).next())
                        .is_some_and(dead)
                })
                .map(|e| e.path())
                .collect()
        };
        for path in stale("/dev/shm", &format!("iox2shm{tag}"), '_') {
            let _ = std::fs::remove_file(path);
        }
        for path in stale("/tmp", &format!("shm-bench-{tag}-"), '-') {
            let _ = std::fs::remove_dir_all(path);
        }
    }

    /// After every node of the domain is gone.
    pub(crate) fn remove(&self) {
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&self.prefix)
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
