//! Serving control-socket and metrics clients without ever blocking the data path.
//!
//! Both listeners are served by the one event loop that forwards frames, so a client must never
//! be able to make that loop wait: a connected peer that sends nothing, sends half a line, or
//! asks for `stats` and then never reads would otherwise freeze forwarding for as long as its
//! read or write blocks (and the cluster then declares this host dead).
//!
//! Why state machines in the loop rather than a thread of their own: every answer is computed
//! from the node (switch counters, FDB, gossip membership), which the loop owns without locks. A
//! serving thread would need either a lock on the node (the data path then waits for the thread)
//! or snapshots copied out of the loop on every change or request (the copy of a large FDB is the
//! very cost being avoided). So each connection is a small non-blocking state machine whose fd
//! sits in the poll set:
//!
//! 1. **Reading**: bytes are read as they arrive until the request is complete (a line for the
//!    control socket; the header block for HTTP), within [`READ_DEADLINE`] of the accept.
//! 2. **Pending**: the request is complete and waits for its answer. The loop computes at most
//!    [`ANSWERS_PER_WAKEUP`] answers per wakeup, once per connection (answers are bounded too:
//!    `stats` pages the FDB).
//! 3. **Writing**: the answer is written as the socket accepts it (`POLLOUT`), within
//!    [`WRITE_DEADLINE`]; then the connection is closed.
//!
//! A connection past its deadline is dropped and counted. At most [`MAX_CLIENTS`] connections are
//! open per listener; a further one is accepted and closed at once (so the backlog drains and the
//! listener does not stay readable), and counted as refused. Accepts are bounded per wakeup too.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Most connections open at once per listener.
pub const MAX_CLIENTS: usize = 16;
/// Time a client has, from its accept, to send a complete request.
pub const READ_DEADLINE: Duration = Duration::from_secs(1);
/// Time a client has, once its answer is ready, to read all of it.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// Most connections accepted per listener and wakeup.
pub const ACCEPTS_PER_WAKEUP: usize = 8;
/// Most answers computed per listener and wakeup.
pub const ANSWERS_PER_WAKEUP: usize = 4;

/// How a request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One command line, at most 256 bytes (the control socket).
    Line,
    /// An HTTP request head ending in an empty line, at most 4 KiB (metrics).
    Http,
}

impl Framing {
    fn limit(self) -> usize {
        match self {
            Framing::Line => 256,
            Framing::Http => 4096,
        }
    }

    /// The request in `buf`, once it is complete.
    fn complete(self, buf: &[u8]) -> Option<String> {
        let end = match self {
            Framing::Line => buf.iter().position(|&b| b == b'\n')?,
            Framing::Http => buf.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| buf.windows(2).position(|w| w == b"\n\n"))?,
        };
        Some(String::from_utf8_lossy(&buf[..end]).trim().to_string())
    }
}

/// A listening socket whose connections are served by [`Clients`].
pub trait Listen: AsRawFd {
    /// A connection.
    type Stream: Read + Write + AsRawFd;
    /// Accept one pending connection, non-blocking.
    fn accept_nonblocking(&self) -> io::Result<Self::Stream>;
}

impl Listen for UnixListener {
    type Stream = UnixStream;
    fn accept_nonblocking(&self) -> io::Result<UnixStream> {
        let (s, _) = self.accept()?;
        s.set_nonblocking(true)?;
        Ok(s)
    }
}

impl Listen for std::net::TcpListener {
    type Stream = std::net::TcpStream;
    fn accept_nonblocking(&self) -> io::Result<std::net::TcpStream> {
        let (s, _) = self.accept()?;
        s.set_nonblocking(true)?;
        Ok(s)
    }
}

#[derive(Debug)]
enum State {
    Reading(Vec<u8>),
    Pending(String),
    Writing { reply: Vec<u8>, sent: usize },
}

#[derive(Debug)]
struct Conn<S> {
    stream: S,
    state: State,
    deadline: Instant,
}

/// What happened to clients, for the driver counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientEvents {
    /// Connections refused because [`MAX_CLIENTS`] were open.
    pub refused: u64,
    /// Connections dropped at their deadline (silent, or not reading their answer).
    pub timed_out: u64,
}

/// The open connections of one listener, in fixed slots (a slot is the poll source's id).
#[derive(Debug)]
pub struct Clients<L: Listen> {
    listener: L,
    framing: Framing,
    slots: Vec<Option<Conn<L::Stream>>>,
    /// Counted events since start.
    pub events: ClientEvents,
}

impl<L: Listen> Clients<L> {
    /// Serve the connections of `listener` (already non-blocking) with `framing`.
    pub fn new(listener: L, framing: Framing) -> Self {
        Clients { listener, framing, slots: (0..MAX_CLIENTS).map(|_| None).collect(), events: ClientEvents::default() }
    }

    /// The listener's fd.
    pub fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// The listener.
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// Each open connection: its slot, fd and whether it waits to write (else to read). Pending
    /// connections are left out: they wait for the loop, not for their socket.
    pub fn interest(&self) -> impl Iterator<Item = (usize, RawFd, bool)> + '_ {
        self.slots.iter().enumerate().filter_map(|(slot, c)| {
            let c = c.as_ref()?;
            match c.state {
                State::Reading(_) => Some((slot, c.stream.as_raw_fd(), false)),
                State::Writing { .. } => Some((slot, c.stream.as_raw_fd(), true)),
                State::Pending(_) => None,
            }
        })
    }

    /// The earliest deadline of an open connection (the loop wakes up for it).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|c| c.deadline).min()
    }

    /// Whether a complete request waits for an answer (the loop should not sleep).
    pub fn has_pending(&self) -> bool {
        self.slots.iter().flatten().any(|c| matches!(c.state, State::Pending(_)))
    }

    /// Accept up to [`ACCEPTS_PER_WAKEUP`] connections; refuse those beyond [`MAX_CLIENTS`].
    pub fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_WAKEUP {
            let Ok(stream) = self.listener.accept_nonblocking() else { return };
            match self.slots.iter_mut().find(|s| s.is_none()) {
                Some(free) => *free = Some(Conn { stream, state: State::Reading(Vec::new()), deadline: now + READ_DEADLINE }),
                None => self.events.refused += 1,
            }
        }
    }

    /// Move the connection in `slot` along after its socket became ready.
    pub fn ready(&mut self, slot: usize) {
        let framing = self.framing;
        let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut) else { return };
        let keep = match &mut conn.state {
            State::Reading(buf) => read_request(&mut conn.stream, buf, framing).map(|done| {
                if let Some(request) = done {
                    conn.state = State::Pending(request);
                }
            }),
            State::Writing { reply, sent } => {
                write_some(&mut conn.stream, reply, sent).and_then(|done| if done { Err(()) } else { Ok(()) })
            }
            State::Pending(_) => Ok(()),
        };
        if keep.is_err() {
            self.slots[slot] = None;
        }
    }

    /// Complete requests waiting for an answer, at most [`ANSWERS_PER_WAKEUP`]: (slot, request).
    pub fn take_pending(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (slot, c) in self.slots.iter_mut().enumerate() {
            if out.len() == ANSWERS_PER_WAKEUP {
                break;
            }
            if let Some(c) = c.as_mut() {
                if let State::Pending(request) = &mut c.state {
                    out.push((slot, std::mem::take(request)));
                }
            }
        }
        out
    }

    /// Start writing `reply` to the client in `slot`, as much as its socket takes now.
    pub fn respond(&mut self, slot: usize, reply: Vec<u8>, now: Instant) {
        let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut) else { return };
        conn.state = State::Writing { reply, sent: 0 };
        conn.deadline = now + WRITE_DEADLINE;
        self.ready(slot);
    }

    /// Drop the connections whose deadline has passed.
    pub fn expire(&mut self, now: Instant) {
        for s in &mut self.slots {
            if s.as_ref().is_some_and(|c| c.deadline <= now) {
                *s = None;
                self.events.timed_out += 1;
            }
        }
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Read what is there; `Ok(Some)` once the request is complete, `Err` to close.
fn read_request(stream: &mut impl Read, buf: &mut Vec<u8>, framing: Framing) -> Result<Option<String>, ()> {
    let mut chunk = [0u8; 512];
    loop {
        match stream.read(&mut chunk) {
            // EOF: a line without its newline still counts; anything else is given up.
            Ok(0) if framing == Framing::Line && !buf.is_empty() => return Ok(Some(String::from_utf8_lossy(buf).trim().to_string())),
            Ok(0) => return Err(()),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(request) = framing.complete(buf) {
                    return Ok(Some(request));
                }
                if buf.len() > framing.limit() {
                    return Err(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
}

/// Write what the socket takes; `Ok(true)` once all is written, `Err` to close.
fn write_some(stream: &mut impl Write, reply: &[u8], sent: &mut usize) -> Result<bool, ()> {
    while *sent < reply.len() {
        match stream.write(&reply[*sent..]) {
            Ok(0) => return Err(()),
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Clients<UnixListener>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vxs-clients-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        l.set_nonblocking(true).unwrap();
        (Clients::new(l, Framing::Line), path)
    }

    #[test]
    fn silent_clients_never_block_and_are_dropped_at_their_deadline() {
        let (mut c, path) = pair();
        let now = Instant::now();
        let _silent: Vec<UnixStream> = (0..MAX_CLIENTS + 3).map(|_| UnixStream::connect(&path).unwrap()).collect();
        c.accept(now);
        c.accept(now);
        c.accept(now);
        assert_eq!(c.len(), MAX_CLIENTS);
        assert_eq!(c.events.refused, 3);
        for slot in 0..MAX_CLIENTS {
            c.ready(slot); // nothing to read: returns at once
        }
        assert!(c.take_pending().is_empty());
        c.expire(now + READ_DEADLINE);
        assert_eq!((c.len(), c.events.timed_out), (0, MAX_CLIENTS as u64));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_client_that_does_not_read_its_answer_is_written_as_it_accepts_then_dropped() {
        let (mut c, path) = pair();
        let now = Instant::now();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"sta").unwrap();
        c.accept(now);
        c.ready(0);
        assert!(c.take_pending().is_empty(), "half a line is not a request");
        client.write_all(b"ts\n").unwrap();
        c.ready(0);
        assert_eq!(c.take_pending(), [(0, "stats".to_string())]);
        let started = Instant::now();
        c.respond(0, vec![b'x'; 8 << 20], now);
        assert!(started.elapsed() < Duration::from_millis(100), "an unread 8 MiB answer must not block");
        assert_eq!(c.interest().collect::<Vec<_>>(), [(0, c.slots[0].as_ref().unwrap().stream.as_raw_fd(), true)]);
        c.expire(now + WRITE_DEADLINE);
        assert_eq!((c.len(), c.events.timed_out), (0, 1));
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_reading_client_gets_its_whole_answer_and_the_connection_closes() {
        let (mut c, path) = pair();
        let now = Instant::now();
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"stats\n").unwrap();
        c.accept(now);
        c.ready(0);
        let [(slot, _)] = c.take_pending()[..] else { panic!() };
        let answer = vec![b'y'; 1 << 20];
        c.respond(slot, answer.clone(), now);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        while !c.is_empty() {
            c.ready(slot);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(reader.join().unwrap(), answer);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn http_requests_end_at_the_empty_line() {
        assert_eq!(Framing::Http.complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            Framing::Http.complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").as_deref(),
            Some("GET /metrics HTTP/1.1\r\nHost: x")
        );
        assert_eq!(Framing::Line.complete(b"peers\n").as_deref(), Some("peers"));
    }
}
