//! The daemon's poll set, built from data: one `(fd, what it is, what to wait for)` entry per open
//! descriptor, so a descriptor that is not configured (no gossip, no ESP, no metrics) is simply
//! absent instead of holding a fixed slot, and the loop dispatches on what became ready rather
//! than on slot numbers. Entries are polled and reported in the order given, which is the order
//! the loop serves them in. The set is refilled before every wait (client connections come and
//! go, a lost TAP leaves it), reusing its vectors, so a wakeup allocates nothing.
#![allow(unsafe_code)] // poll(2) itself; the SAFETY note is at the call

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::dataplane::PortId;
use crate::sys::SysError;

/// What a polled descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The signalfd for SIGINT/SIGTERM.
    Signals,
    /// The TAP of a switched network.
    Tap(PortId),
    /// The VXLAN socket.
    Vxlan,
    /// The ESP-in-UDP socket.
    Esp,
    /// The gossip socket.
    Gossip,
    /// The metrics HTTP listener.
    Metrics,
    /// The control socket.
    Control,
    /// A connected control-socket client, by its slot.
    ControlClient(usize),
    /// A connected metrics (HTTP) client, by its slot.
    MetricsClient(usize),
}

/// Wait until the descriptor is readable.
pub const READABLE: i16 = libc::POLLIN;
/// Wait until the descriptor is writable.
pub const WRITABLE: i16 = libc::POLLOUT;
/// The descriptor is broken: an error, a hang-up or no longer open (a TAP deleted from outside).
pub const BROKEN: i16 = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;

/// The broken-descriptor events in `revents`, by name, for a log line.
pub fn describe(revents: i16) -> String {
    let names = [(libc::POLLERR, "POLLERR"), (libc::POLLHUP, "POLLHUP"), (libc::POLLNVAL, "POLLNVAL")];
    names.iter().filter(|(bit, _)| revents & bit != 0).map(|(_, n)| *n).collect::<Vec<_>>().join("|")
}

/// The descriptors the loop waits on.
pub struct PollSet {
    fds: Vec<libc::pollfd>,
    sources: Vec<Source>,
}

impl PollSet {
    /// A poll set of `entries`, each waiting to be readable, served in the order given.
    pub fn new(entries: impl IntoIterator<Item = (RawFd, Source)>) -> Self {
        let mut set = PollSet { fds: Vec::new(), sources: Vec::new() };
        for (fd, source) in entries {
            set.push(fd, source, READABLE);
        }
        set
    }

    /// Forget every entry (keeping the storage), before refilling the set.
    pub fn clear(&mut self) {
        self.fds.clear();
        self.sources.clear();
    }

    /// Wait on `fd` for `events` ([`READABLE`], [`WRITABLE`]); errors are always reported.
    pub fn push(&mut self, fd: RawFd, source: Source, events: i16) {
        self.fds.push(libc::pollfd { fd, events, revents: 0 });
        self.sources.push(source);
    }

    /// Wait up to `timeout` for any descriptor to be readable; `false` when a signal interrupted.
    ///
    /// `ppoll` rather than `poll`: its timeout has nanosecond resolution. `poll` takes whole
    /// milliseconds, so a timer due in under 1 ms became a zero timeout, and the loop spun
    /// without sleeping (or yielding) until the timer was due, taking the core from the very
    /// processes whose frames it was waiting for.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, SysError> {
        let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as libc::c_long };
        // SAFETY: fds is a valid array of pollfd and ts a valid timespec for the duration of the
        // call; a null signal mask leaves the thread's mask as it is (as poll does).
        let rc = unsafe { libc::ppoll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(SysError::Os { op: "poll", source: e });
        }
        Ok(true)
    }

    /// What became ready in the last [`PollSet::wait`], in the order given.
    pub fn ready(&self) -> impl Iterator<Item = Source> + '_ {
        self.ready_events().map(|(s, _)| s)
    }

    /// As [`PollSet::ready`], with the events that were reported (`revents`).
    pub fn ready_events(&self) -> impl Iterator<Item = (Source, i16)> + '_ {
        self.fds.iter().zip(&self.sources).filter(|(fd, _)| fd.revents != 0).map(|(fd, s)| (*s, fd.revents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_ready_entries_by_what_they_are_in_order() {
        let mut pipes = [[0; 2]; 2];
        for p in &mut pipes {
            // SAFETY: p is a valid array of two ints.
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        }
        let mut set = PollSet::new([(pipes[0][0], Source::Tap(3)), (pipes[1][0], Source::Control)]);
        assert!(set.wait(Duration::ZERO).unwrap());
        assert_eq!(set.ready().count(), 0);
        for p in pipes.iter().rev() {
            // SAFETY: writing one byte from a valid buffer to the pipe's write end.
            assert_eq!(unsafe { libc::write(p[1], b"x".as_ptr().cast(), 1) }, 1);
        }
        assert!(set.wait(Duration::from_millis(100)).unwrap());
        assert_eq!(set.ready().collect::<Vec<_>>(), [Source::Tap(3), Source::Control]);
        // A sub-millisecond timeout sleeps for about that long instead of returning at once.
        set.clear();
        set.push(pipes[0][0], Source::Tap(3), READABLE);
        let mut byte = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer from the pipe's read end.
        assert_eq!(unsafe { libc::read(pipes[0][0], byte.as_mut_ptr().cast(), 1) }, 1);
        let started = std::time::Instant::now();
        assert!(set.wait(Duration::from_micros(500)).unwrap());
        assert_eq!(set.ready().count(), 0);
        assert!(started.elapsed() >= Duration::from_micros(500), "returned after {:?}", started.elapsed());
        for fd in pipes.iter().flatten() {
            // SAFETY: closing descriptors this test opened.
            unsafe { libc::close(*fd) };
        }
    }
}
