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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

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
        let tmp = with_suffix(&self.path, ".tmp");
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(self.state.emit().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| os("write ESP state", &self.path, e))
    }

    fn lock(&self) -> Result<Flock<File>, SysError> {
        let path = with_suffix(&self.path, ".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| os("open ESP state lock", &path, e))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| os("lock ESP state", &path, errno))
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

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("vxs-state-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn missing_file_is_empty_and_writes_survive_a_reopen() {
        let dir = TempDir::new("rw");
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
        let dir = TempDir::new("merge");
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
        let dir = TempDir::new("corrupt");
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
