//! The daemon's Unix control socket: `vxswitch stats`, `peers`, `metrics`, `reload` connect, send
//! one command line and read one answer back. One request per connection; connections are
//! non-blocking state machines served by the event loop ([`super::clients`]), so a client that
//! never sends or never reads cannot stall forwarding.

use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::clients::{Clients, Framing};
use crate::sys::SysError;

/// The listening control socket and its clients; removes its path on drop.
#[derive(Debug)]
pub struct ControlSocket {
    /// The connected clients.
    pub clients: Clients<UnixListener>,
    path: PathBuf,
}

impl ControlSocket {
    /// Bind at `path`, replacing a stale socket file left by a crashed run. The socket is created
    /// with mode 0660 (whatever the umask), owned by root and by `group` when given, so only root
    /// and that group's members can query the daemon.
    pub fn bind(path: &Path, group: Option<u32>) -> Result<Self, SysError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| SysError::Os { op: "create control socket directory", source })?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(SysError::Os {
                    op: "bind control socket",
                    source: io::Error::new(io::ErrorKind::AddrInUse, format!("{} is in use by a running vxswitch", path.display())),
                });
            }
            let _ = std::fs::remove_file(path);
        }
        // The umask applies to bind(2): 0o117 makes the socket 0660 from its first instant.
        let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old_umask);
        let listener = bound.map_err(|source| SysError::Os { op: "bind control socket", source })?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))
            .map_err(|source| SysError::Os { op: "chmod control socket", source })?;
        if let Some(gid) = group {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|e| SysError::Os { op: "chgrp control socket", source: e.into() })?;
        }
        listener.set_nonblocking(true).map_err(|source| SysError::Os { op: "control socket nonblocking", source })?;
        Ok(ControlSocket { clients: Clients::new(listener, Framing::Line), path: path.to_path_buf() })
    }

    /// The listener's fd, for polling.
    pub fn fd(&self) -> RawFd {
        self.clients.fd()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Send `command` to the daemon at `path` and return its answer.
pub fn query(path: &Path, command: &str) -> io::Result<String> {
    query_with_timeout(path, command, Duration::from_secs(5))
}

/// As [`query`], waiting at most `timeout` for each read.
pub fn query_with_timeout(path: &Path, command: &str, timeout: Duration) -> io::Result<String> {
    let mut stream =
        UnixStream::connect(path).map_err(|e| io::Error::new(e.kind(), format!("cannot reach vxswitch at {}: {e}", path.display())))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    #[test]
    fn socket_is_0660_whatever_the_umask_and_takes_the_configured_group() {
        let dir = std::env::temp_dir().join(format!("vxs-ctl-perm-{}", std::process::id()));
        let path = dir.join("vxswitch.sock");
        let loose = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let socket = ControlSocket::bind(&path, Some(0));
        nix::sys::stat::umask(loose);
        let socket = socket.unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), 0);
        drop(socket);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
