//! Secret files (the cluster key, the ESP host key): one loader and one permission rule; and the
//! one way state files (trust store, claims, ESP state, host state) are replaced durably.
//!
//! A secret file must be readable by its owner only: any permission bit for group or others
//! (`mode & 0o077`) is refused with the `chmod 600` that fixes it, so a key copied with a loose
//! umask is never used silently. The mode is read from the open file (`fstat`), not from the
//! path, so the file checked is the file read. New secrets are created with `O_EXCL` and mode
//! 0600 from the first byte, and synced before they are used.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The permission bits a secret file must not have.
pub const FORBIDDEN_MODE_BITS: u32 = 0o077;
/// Longest secret file read (keys are well under this).
const MAX_LEN: u64 = 4096;

/// Why a secret file could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Opening, reading or writing the file failed.
    #[error("key file {path}: {source}", path = path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Group or others have permissions on the file.
    #[error("key file {path} has mode {mode:04o}; it must be accessible by its owner only (chmod 600 {path})", path = path.display())]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not a key of the expected form.
    #[error("key file {path} does not hold {expected}", path = path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
    },
}

impl KeyFileError {
    /// Whether the file does not exist (so a caller may create it).
    pub fn is_not_found(&self) -> bool {
        matches!(self, KeyFileError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether the file already existed when it was to be created.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, KeyFileError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists)
    }
}

/// Read a secret file, refusing one that group or others may access.
pub fn read(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let io_err = |source| KeyFileError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(io_err)?;
    let mode = file.metadata().map_err(io_err)?.permissions().mode();
    if mode & FORBIDDEN_MODE_BITS != 0 {
        return Err(KeyFileError::TooOpen { path: path.to_owned(), mode: mode & 0o7777 });
    }
    let mut content = Vec::with_capacity(80);
    Read::by_ref(&mut file).take(MAX_LEN).read_to_end(&mut content).map_err(io_err)?;
    Ok(content)
}

/// Create a new secret file holding `content`, mode 0600, synced; fails if `path` exists. A
/// missing directory is created (mode 0700), so the default paths work on a fresh host.
pub fn create(path: &Path, content: &[u8]) -> Result<(), KeyFileError> {
    let io_err = |source| KeyFileError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err)?;
    }
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_err)?;
    file.write_all(content).and_then(|()| file.sync_all()).map_err(io_err)
}

/// Replace `path` with `content` so that a crash leaves the old or the new content, never a mix:
/// write a temporary file next to it (mode 0600), sync it, rename it over `path`, sync the
/// directory. A missing directory is created.
pub fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(content).and_then(|()| file.sync_all())?;
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// The error for content that is not of the `expected` form.
pub fn malformed(path: &Path, expected: &'static str) -> KeyFileError {
    KeyFileError::Malformed { path: path.to_owned(), expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_files_are_owner_only_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("vxs-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("new").join("k");
        create(&path, b"secret\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read(&path).unwrap(), b"secret\n");
        assert!(create(&path, b"other").unwrap_err().is_already_exists());
        for mode in [0o640, 0o604, 0o620, 0o602, 0o610, 0o644] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::TooOpen { mode: m, .. } if m == mode), "{mode:o}: {err}");
            assert!(err.to_string().contains("chmod 600"));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read(&path).is_ok());
        assert_eq!(std::fs::metadata(dir.join("new")).unwrap().permissions().mode() & 0o777, 0o700, "missing directory created");
        assert!(read(&dir.join("missing")).unwrap_err().is_not_found());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
