//! SIGINT/SIGTERM (shut down) and SIGHUP (reload the configuration) as an fd, so the poll loop
//! sees them like any other event.
#![allow(unsafe_code)] // raw syscalls the safe crates do not wrap; each block has a SAFETY note

use std::io;

use crate::sys::SysError;

/// SIGINT, SIGTERM and SIGHUP delivered through a signalfd, so the poll loop sees them as an fd.
pub struct SignalFd {
    /// The signalfd.
    pub fd: libc::c_int,
}

impl SignalFd {
    /// Block SIGINT, SIGTERM and SIGHUP for this thread and deliver them through a signalfd.
    pub fn block_term_signals() -> Result<Self, SysError> {
        // SAFETY: plain libc calls on a locally owned, initialised sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(SysError::Os { op: "pthread_sigmask", source: io::Error::last_os_error() });
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(SysError::Os { op: "signalfd", source: io::Error::last_os_error() });
            }
            Ok(SignalFd { fd })
        }
    }

    /// Consume one pending signal and return its number (0 when none was pending).
    pub fn read(&self) -> u32 {
        // SAFETY: reading one signalfd_siginfo into properly sized storage.
        unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            libc::read(self.fd, (&mut info as *mut libc::signalfd_siginfo).cast(), std::mem::size_of::<libc::signalfd_siginfo>());
            info.ssi_signo
        }
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: closing an fd we own.
        unsafe { libc::close(self.fd) };
    }
}
