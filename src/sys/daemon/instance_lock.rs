//! One vxswitch per control socket: an exclusive `flock` on `<control_socket>.lock`, taken
//! before any kernel state is touched.
//!
//! Without it a second `vxswitch run` with the same configuration would reconcile "leftovers"
//! (delete the running instance's kernel device and routes) before finding the control socket
//! taken. The kernel drops the lock when the process exits, however it exits, so a crash never
//! leaves a stale lock behind; the file itself stays and is reused.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::sys::SysError;

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct InstanceLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl InstanceLock {
    /// Take the lock that belongs to `control_socket`, or fail naming the file when another
    /// process holds it.
    pub fn acquire(control_socket: &Path) -> Result<Self, SysError> {
        let mut name = control_socket.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| SysError::Os { op: "create control socket directory", source })?;
        }
        let lock = lock_file(&path, false).map_err(|source| SysError::Os {
            op: "take instance lock",
            source: if source.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is held: another vxswitch runs with this control socket; nothing was changed", path.display()),
                )
            } else {
                source
            },
        })?;
        Ok(InstanceLock { _lock: lock, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Open `path` (created with mode 0600 if missing) and take an exclusive `flock` on it; with
/// `wait` false a lock held elsewhere is an error of kind `WouldBlock` instead of a wait.
pub fn lock_file(path: &Path, wait: bool) -> io::Result<Flock<File>> {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    let arg = if wait { FlockArg::LockExclusive } else { FlockArg::LockExclusiveNonblock };
    Flock::lock(file, arg).map_err(|(_, errno)| io::Error::from(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_is_refused_until_the_first_releases() {
        let dir = std::env::temp_dir().join(format!("vxs-lock-{}", std::process::id()));
        let socket = dir.join("vxswitch.sock");
        let first = InstanceLock::acquire(&socket).unwrap();
        assert_eq!(first.path(), dir.join("vxswitch.sock.lock"));
        let err = InstanceLock::acquire(&socket).unwrap_err();
        assert!(err.to_string().contains("another vxswitch"), "{err}");
        drop(first);
        let again = InstanceLock::acquire(&socket).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
