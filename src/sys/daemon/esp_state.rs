//! The ESP state file on disk ([`crate::ipsec::state`]): read once at start, rewritten whenever a
//! manual SA reserves its next block of sequence numbers.
//!
//! A write is crash-safe: the new text goes to `<file>.tmp`, which is fsynced and renamed over the
//! file, and then the directory is fsynced, so after a crash at any moment the file holds either
//! the old or the new text, never a mixture. Only after that does the SA use the numbers. Writers
//! take an exclusive `flock` on `<file>.lock` and merge what is on disk (values only grow), so two
//! daemons pointed at the same file cannot move each other's marks back.
//!
//! A file that exists but cannot be read or parsed is an error naming the file: starting with
//! sequence number 1 again under the same manual key would reuse AES-GCM nonces.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;

use crate::ipsec::EspState;
use crate::sys::SysError;

/// The state file and the state last written to it.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// The state as this process knows it (merged with the disk on every write).
    pub state: EspState,
}

fn os(op: &'static str, path: &Path, e: impl std::fmt::Display) -> SysError {
    SysError::Os { op, source: io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())) }
}

impl StateFile {
    /// Reads `path` (a missing file is an empty state; an unreadable or corrupt one an error).
    pub fn open(path: &Path) -> Result<Self, SysError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| os("create ESP state directory", dir, e))?;
        }
        let state = read(path)?;
        Ok(StateFile { path: path.to_path_buf(), state })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the state durably (merged with what is on disk); when this returns `Ok` the values
    /// survive any crash.
    pub fn persist(&mut self) -> Result<(), SysError> {
        let _lock = self.lock()?;
        let on_disk = read(&self.path)?;
        self.state.merge(&on_disk);
        crate::keyfile::write_atomically(&self.path, self.state.emit().as_bytes()).map_err(|e| os("write ESP state", &self.path, e))
    }

    fn lock(&self) -> Result<Flock<File>, SysError> {
        let path = with_suffix(&self.path, ".lock");
        super::instance_lock::lock_file(&path, true).map_err(|e| os("lock ESP state", &path, e))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn read(path: &Path) -> Result<EspState, SysError> {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| {
                os(
                    "read ESP state",
                    path,
                    "not text; refusing to start rather than reuse sequence numbers (restore or remove it only with new manual keys)",
                )
            })?;
            EspState::parse(&text).map_err(|e| {
                os("read ESP state", path, format!("corrupt ({e}); refusing to start rather than reuse sequence numbers (restore the file, or remove it only together with new manual keys)"))
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(EspState::default()),
        Err(e) => Err(os("read ESP state", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::TempDir;

    #[test]
    fn missing_file_is_empty_and_writes_survive_a_reopen() {
        let dir = TempDir::new("state-rw");
        let path = dir.0.join("sub/host.esp-state");
        let mut f = StateFile::open(&path).unwrap();
        assert_eq!(f.state, EspState::default());
        f.state.reserve(0x1000, 7, 1 << 20);
        f.state.next_epoch(99);
        f.persist().unwrap();
        let again = StateFile::open(&path).unwrap();
        assert_eq!((again.state.mark(0x1000, 7), again.state.epoch), (1 << 20, 99));
        assert!(!with_suffix(&path, ".tmp").exists(), "the temporary file was renamed over the state");
    }

    #[test]
    fn two_writers_never_move_a_mark_back() {
        let dir = TempDir::new("state-merge");
        let path = dir.0.join("s");
        let mut a = StateFile::open(&path).unwrap();
        let mut b = StateFile::open(&path).unwrap();
        a.state.reserve(1, 1, 500);
        a.persist().unwrap();
        b.state.reserve(2, 2, 9);
        b.persist().unwrap();
        let s = StateFile::open(&path).unwrap().state;
        assert_eq!((s.mark(1, 1), s.mark(2, 2)), (500, 9));
    }

    #[test]
    fn corrupt_or_unreadable_file_refuses_naming_the_file() {
        let dir = TempDir::new("state-corrupt");
        let path = dir.0.join("host.esp-state");
        fs::write(&path, "vxswitch-esp-state 1\nsa 0x1000 0x7 12").unwrap();
        let err = StateFile::open(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("corrupt"), "{err}");
        fs::write(&path, [0xff, 0xfe, 0]).unwrap();
        assert!(StateFile::open(&path).unwrap_err().to_string().contains("not text"));
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(StateFile::open(&path).unwrap_err().to_string().contains(&path.display().to_string()));
    }
}
