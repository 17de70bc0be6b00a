//! Helpers for the crate's unit tests.

use std::path::PathBuf;

/// A unique temporary directory (`vxs-<tag>-<pid>`), removed on drop, also when a test fails.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory for `tag` (unique within the crate's tests).
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("vxs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
