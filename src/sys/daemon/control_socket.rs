//! The daemon's Unix control socket: `vxswitch stats` and `vxswitch peers` connect, send one
//! command line and read one JSON document back. Kept deliberately tiny: one request per
//! connection, handled inline by the event loop (the answer is a snapshot, so it never blocks the
//! dataplane for long).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::SysError;

/// The listening control socket; removes its path on drop.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Bind at `path`, replacing a stale socket file left by a crashed run.
    pub fn bind(path: &Path) -> Result<Self, SysError> {
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
        let listener = UnixListener::bind(path).map_err(|source| SysError::Os { op: "bind control socket", source })?;
        listener.set_nonblocking(true).map_err(|source| SysError::Os { op: "control socket nonblocking", source })?;
        Ok(ControlSocket { listener, path: path.to_path_buf() })
    }

    /// The fd, for polling.
    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accept pending connections and answer each with `answer(command)`.
    pub fn serve(&self, mut answer: impl FnMut(&str) -> String) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
            let mut line = String::new();
            if BufReader::new(&stream).take(256).read_line(&mut line).is_err() {
                continue;
            }
            let reply = answer(line.trim());
            let _ = (&stream).write_all(reply.as_bytes());
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Send `command` to the daemon at `path` and return its answer.
pub fn query(path: &Path, command: &str) -> io::Result<String> {
    let mut stream =
        UnixStream::connect(path).map_err(|e| io::Error::new(e.kind(), format!("cannot reach vxswitch at {}: {e}", path.display())))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}
