//! The per-wakeup data path of the daemon: TAP frames to the underlay, underlay datagrams to the
//! TAPs, with the offloads of PERFORMANCE.md where they are on, for VXLAN and ESP alike.
//!
//! TAP -> underlay. A TAP without offload gives one frame per `read`, straight into a buffer
//! slot at [`HEADROOM`]. An offload TAP gives a virtio header and possibly a TCP super-frame: the
//! frame is read into the next slot with a 64 KB spill buffer behind it, small frames stay in the
//! slot (partial checksums finished there), super-frames are split ([`super::gso`]) into one slot
//! per segment. That costs one userspace copy of the payload, and in exchange every segment is an
//! ordinary frame with headroom and tailroom: the switch core handles it exactly like a frame
//! from a TAP without offload (learning, flooding, counters, routing) and, on an encrypted
//! network, seals it in place with its own sequence number, so batching changes nothing about
//! ESP's nonce rules (a number is taken by the seal, and a datagram is sealed once and handed to
//! the kernel at most once). Sends are then grouped: consecutive datagrams of one tunnel to the
//! same peer from the same source socket with the same size (the last may be shorter; equal
//! segments seal to equal ESP datagrams) leave in one `sendmsg` with `UDP_SEGMENT`, at most 64
//! datagrams and 65507 bytes per send, a run split into balanced sends (47 segments go as 24 + 23,
//! not 44 + 3). If the kernel refuses GSO (`EIO`/`EINVAL`, nothing sent) it is turned off for that
//! tunnel's sockets with a log line and the datagrams go by `sendmmsg`, which also carries
//! everything else (flooding, single frames). With `[underlay] workers = 2` (the default) these
//! sends run on a send thread ([`super::send_worker`]): a full batch of encapsulated (and sealed)
//! datagrams is handed over whole, in order, and the daemon thread reads and switches the next
//! one into a second set of slots; `workers = 1` sends on the daemon thread as before.
//! Datagrams the switch originates for the underlay (the copies of a frame flooded on an
//! encrypted network, sealed once per peer in buffers of their own, and hellos) join the batch
//! being filled right after the frame that made them, and those made outside a TAP read go
//! through the same batches ([`TxPath::send_originated`]): every ESP datagram reaches the kernel
//! in the order of its sequence number. Sent apart, after the wakeup's batches, a flood copy
//! arrived behind every datagram sealed after it in that wakeup (up to 64 super-frames' worth),
//! and once those were more than the peer's replay window (1024) it was refused as too old.
//!
//! Underlay -> TAP. With `UDP_GRO` (on the VXLAN socket and on the ESP-in-UDP socket) a receive
//! buffer may hold many datagrams of one stride ([`udp::gro_datagrams`]); each is handed to the
//! switch core on its own (ESP: opened on its own, replay window and all). Frames the core
//! delivers to an offload TAP go through the coalescer ([`super::gro`]), which writes runs of TCP
//! segments as one super-frame; the rest is written one by one. Everything pending is written
//! before the buffers are reused. A kernel vxlan on the same kernel hands over UDP-tunnel GSO
//! super-datagrams (one VXLAN header around a whole TSO frame); those are cut into wire-sized
//! VXLAN datagrams first ([`super::tunnel_gso`]).
//!
//! Measured (2 vCPUs, 2-host lab, one TCP stream, release build): 1.6 Gbit/s per frame, 6.4-7.2
//! with these offloads, kernel vxlan 22-24 on the same lab. The payload copy into the slots costs
//! about 5% of the sending daemon's CPU (memmove in `perf`), the inner TCP checksums about 15%;
//! the rest is the kernel's own copies (TAP read, UDP send/receive, TAP write). A zero-copy split
//! would need the switch core to take a frame in pieces, which it does not.

use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::ops::Range;
use std::time::Instant;

use super::gro::{Coalescer, Integrity};
use super::gso::{self, TapFrame};
use super::send_worker::Worker;
use super::tap::{is_gone, Tap};
use super::tunnel_gso;
use super::udp::{self, Received, UnderlaySockets};
use super::{DriverCounters, HEADROOM, TAILROOM};
use crate::dataplane::{Forward, PortId, Switch, Transmit, Tunnel};
use crate::wire::vxlan::HEADER_LEN as VXLAN_HEADER;

/// Spill buffer behind a slot: room for a 64 KB super-frame.
const SPILL: usize = 65536 + 1024;

/// Preallocated frame buffers, each with [`HEADROOM`] and [`TAILROOM`].
#[derive(Debug)]
pub struct Buffers {
    /// The buffers.
    pub bufs: Vec<Vec<u8>>,
}

impl Buffers {
    /// `count` buffers for frames or datagrams of up to `payload` bytes.
    pub fn new(count: usize, payload: usize) -> Self {
        Buffers { bufs: vec![vec![0u8; HEADROOM + payload + TAILROOM]; count] }
    }
}

/// Where the bytes of a datagram waiting to be sent are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// In a frame slot, encapsulated in place.
    Slot(usize),
    /// In a buffer of its own the switch built (an ESP copy of a flood, a hello).
    Owned(usize),
}

/// One datagram encapsulated and waiting to be sent.
#[derive(Debug)]
struct PendingSend {
    held: Held,
    payload: Range<usize>,
    dests: Range<usize>,
    flow: u32,
    tunnel: Tunnel,
}

/// One batch of the TAP -> underlay direction: frame slots, the datagrams encapsulated in them
/// (and those the switch originated meanwhile, in their own buffers) waiting to be sent in the
/// order they were sealed, and the counters of sending them (merged into the daemon's when the
/// batch comes back from the send thread).
#[derive(Debug)]
pub struct TxBatch {
    slots: Buffers,
    owned: Vec<Vec<u8>>,
    pending: Vec<PendingSend>,
    dests: Vec<IpAddr>,
    counters: DriverCounters,
}

impl TxBatch {
    fn new(payload: usize) -> Self {
        TxBatch {
            slots: Buffers::new(udp::BATCH, payload),
            owned: Vec::new(),
            pending: Vec::with_capacity(udp::BATCH),
            dests: Vec::new(),
            counters: DriverCounters::default(),
        }
    }

    /// Send what is queued (counted in the batch's own counters) and free the slots.
    fn send(&mut self, udp: &UnderlaySockets, esp: Option<&UnderlaySockets>) {
        flush_sends(udp, esp, (&self.slots, &self.owned), &self.pending, &self.dests, &mut self.counters);
        self.pending.clear();
        self.owned.clear();
        self.dests.clear();
    }

    /// Queue, behind what is already queued, every datagram the switch originated for the
    /// underlay (ESP copies of a flood, hellos): they leave in the order they were sealed.
    // hot path
    fn take_originated(&mut self, switch: &mut Switch) {
        while let Some(t) = switch.poll_underlay_transmit() {
            let Transmit::Underlay { dst, tunnel, payload } = t else { continue };
            let start = self.dests.len();
            self.dests.push(dst);
            self.pending.push(PendingSend {
                held: Held::Owned(self.owned.len()),
                payload: 0..payload.len(),
                dests: start..start + 1,
                flow: 0,
                tunnel,
            });
            self.owned.push(payload);
        }
    }

    /// Move the send counters into `driver`.
    fn merge_counters(&mut self, driver: &mut DriverCounters) {
        let c = std::mem::take(&mut self.counters);
        driver.underlay_send_errors += c.underlay_send_errors;
        driver.underlay_send_too_big += c.underlay_send_too_big;
        driver.gso_sends += c.gso_sends;
        driver.gso_segments += c.gso_segments;
        driver.gso_fallbacks += c.gso_fallbacks;
    }
}

/// Batches that exist with a send thread: one being filled, the others with the thread.
const BATCHES_WITH_WORKER: usize = 3;

/// Batches of fewer datagrams than this are sent on the daemon thread when the send thread has
/// nothing in flight: a request/reply exchange would otherwise pay a thread wake-up per frame
/// (ping averages in the two-host lab with this rule were no worse than with `workers = 1`),
/// and a batch this small gains nothing from the second core.
const INLINE_BELOW: usize = 8;

/// Whether a batch of `pending` datagrams is sent on the daemon thread: only when it is small
/// and nothing is in flight with the send thread, so it cannot overtake an earlier batch.
fn send_inline(pending: usize, in_flight: usize) -> bool {
    in_flight == 0 && pending < INLINE_BELOW
}

/// State of the TAP -> underlay direction.
#[derive(Debug)]
pub struct TxPath {
    batch: TxBatch,
    slot_cap: usize,
    spill: Vec<u8>,
    /// With `workers = 2`: the send thread and the batches that are back from it.
    worker: Option<(Worker<TxBatch>, Vec<TxBatch>)>,
}

impl TxPath {
    /// Buffers for frames of up to `payload` bytes (and a spill buffer for super-frames); sends
    /// on the daemon thread.
    pub fn new(payload: usize) -> Self {
        TxPath { batch: TxBatch::new(payload), slot_cap: payload, spill: vec![0u8; SPILL], worker: None }
    }

    /// Like [`TxPath::new`], with the sends on a thread of their own that owns `udp` and `esp`
    /// (copies of the daemon's sockets, see [`super::send_worker`]).
    pub fn with_send_thread(payload: usize, udp: UnderlaySockets, esp: Option<UnderlaySockets>) -> io::Result<Self> {
        let worker = Worker::spawn("vxswitch-send", move |b: &mut TxBatch| b.send(&udp, esp.as_ref()))?;
        let spare = (1..BATCHES_WITH_WORKER).map(|_| TxBatch::new(payload)).collect();
        Ok(TxPath { worker: Some((worker, spare)), ..TxPath::new(payload) })
    }

    /// Whether sends go through a send thread.
    pub fn threaded(&self) -> bool {
        self.worker.is_some()
    }

    /// Hand the frame in slot `slot` to the switch and queue what it sends.
    // hot path
    fn handle(&mut self, switch: &mut Switch, now: Instant, port: PortId, slot: usize, len: usize) {
        let b = &mut self.batch;
        let buf = &mut b.slots.bufs[slot];
        if let Forward::Underlay { payload, dests, flow_hash, tunnel } = switch.handle_tap_frame(now, port, buf, HEADROOM..HEADROOM + len) {
            let start = b.dests.len();
            b.dests.extend_from_slice(dests);
            b.pending.push(PendingSend { held: Held::Slot(slot), payload, dests: start..b.dests.len(), flow: flow_hash, tunnel });
        }
        // A flooded frame on an encrypted network was sealed once per peer into copies the
        // switch queued: they go with this batch, before anything sealed after them.
        b.take_originated(switch);
    }

    /// Send what the switch originated for the underlay outside a TAP read (hellos, ESP copies
    /// of a flood from a timer or the underlay side) through the same batches, behind those
    /// still with the send thread, so no sealed datagram overtakes an earlier one.
    pub fn send_originated(
        &mut self,
        switch: &mut Switch,
        udp: &UnderlaySockets,
        esp: Option<&UnderlaySockets>,
        driver: &mut DriverCounters,
    ) {
        self.batch.take_originated(switch);
        if !self.batch.pending.is_empty() {
            self.flush(udp, esp, driver);
        }
    }

    /// Send what is queued (or hand it to the send thread) and start on free slots.
    fn flush(&mut self, udp: &UnderlaySockets, esp: Option<&UnderlaySockets>, driver: &mut DriverCounters) {
        let Some((worker, spare)) = self.worker.as_mut() else {
            self.batch.send(udp, esp);
            self.batch.merge_counters(driver);
            return;
        };
        if self.batch.pending.is_empty() {
            self.batch.dests.clear();
            return;
        }
        while let Some(mut b) = worker.take(false) {
            b.merge_counters(driver);
            spare.push(b);
        }
        if send_inline(self.batch.pending.len(), worker.in_flight()) {
            self.batch.send(udp, esp);
            self.batch.merge_counters(driver);
            driver.sent_inline += 1;
            return;
        }
        let next = spare.pop().or_else(|| {
            driver.send_thread_waits += 1;
            worker.take(true)
        });
        let next = match next {
            Some(b) => b,
            None => {
                // The send thread is gone (it can only panic): send here from now on.
                tracing::error!("the send thread ended; sending on the daemon thread");
                self.worker = None;
                return self.flush(udp, esp, driver);
            }
        };
        let mut full = std::mem::replace(&mut self.batch, next);
        self.batch.merge_counters(driver);
        full.counters = DriverCounters::default();
        worker.submit(full);
        driver.send_thread_batches += 1;
    }

    /// Take back the batches the send thread has finished, and their counters, without waiting.
    pub fn reap(&mut self, driver: &mut DriverCounters) {
        if let Some((worker, spare)) = self.worker.as_mut() {
            while let Some(mut b) = worker.take(false) {
                b.merge_counters(driver);
                spare.push(b);
            }
        }
    }
}

/// Read up to [`udp::BATCH`] frames from `tap` (port `port`), switch them and send the result.
/// Returns the read error that says the TAP is gone (deleted from outside), if one occurred.
// hot path
#[allow(clippy::too_many_arguments)]
pub fn tap_to_underlay(
    tap: &Tap,
    port: PortId,
    now: Instant,
    switch: &mut Switch,
    udp: &UnderlaySockets,
    esp: Option<&UnderlaySockets>,
    tx: &mut TxPath,
    driver: &mut DriverCounters,
) -> Option<io::Error> {
    let mut slot = 0;
    let mut gone = None;
    for _ in 0..udp::BATCH {
        if slot == tx.batch.slots.bufs.len() {
            tx.flush(udp, esp, driver);
            slot = 0;
        }
        if !tap.offload() {
            match tap.read(&mut tx.batch.slots.bufs[slot][HEADROOM..]) {
                Ok(Some(len)) => {
                    tx.handle(switch, now, port, slot, len);
                    slot += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    driver.tap_read_errors += 1;
                    tracing::debug!(tap = tap.name(), "read: {e}");
                    gone = is_gone(&e).then_some(e);
                    break;
                }
            }
            continue;
        }
        let cap = tx.slot_cap;
        let read = tap.read_offload(&mut tx.batch.slots.bufs[slot][HEADROOM..HEADROOM + cap], &mut tx.spill[cap..]);
        let (len, hdr) = match read {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                driver.tap_read_errors += 1;
                tracing::debug!(tap = tap.name(), "read: {e}");
                gone = is_gone(&e).then_some(e);
                break;
            }
        };
        if hdr.gso_type == super::virtio::GSO_NONE && len <= cap {
            match gso::classify(&mut tx.batch.slots.bufs[slot][HEADROOM..HEADROOM + len], &hdr) {
                Ok(_) => {
                    tx.handle(switch, now, port, slot, len);
                    slot += 1;
                }
                Err(_) => driver.tap_offload_errors += 1,
            }
            continue;
        }
        // A super-frame (or an oversized frame): gather it in the spill buffer, then split.
        let head = len.min(cap);
        tx.spill[..head].copy_from_slice(&tx.batch.slots.bufs[slot][HEADROOM..HEADROOM + head]);
        let split = match gso::classify(&mut tx.spill[..len], &hdr) {
            Ok(TapFrame::Split(s)) if s.max_segment_len() <= cap => s,
            Ok(_) => {
                // Larger than any frame the underlay can carry, and not splittable.
                driver.tap_segment_oversize += 1;
                continue;
            }
            Err(e) => {
                driver.tap_offload_errors += 1;
                tracing::debug!(tap = tap.name(), "unusable offload frame: {e:?}");
                continue;
            }
        };
        driver.tap_super_frames += 1;
        driver.tap_segments += split.count() as u64;
        if slot > 0 && slot + split.count() > tx.batch.slots.bufs.len() {
            // Send what is queued first, so this frame's segments form one run (balanced sends).
            tx.flush(udp, esp, driver);
            slot = 0;
        }
        for i in 0..split.count() {
            if slot == tx.batch.slots.bufs.len() {
                tx.flush(udp, esp, driver);
                slot = 0;
            }
            let seg_len = split.write_segment(&tx.spill[..len], i, &mut tx.batch.slots.bufs[slot][HEADROOM..]);
            tx.handle(switch, now, port, slot, seg_len);
            slot += 1;
        }
    }
    tx.flush(udp, esp, driver);
    gone
}

/// Send every pending datagram: runs of equal-size datagrams to one peer through one source
/// socket as `UDP_SEGMENT` sends (VXLAN and ESP alike: ESP datagrams sealed from equal segments
/// are equal too), everything else with one `sendmmsg` per run of datagrams that leave through
/// the same socket. Every datagram is handed to the kernel at most once: a failed send is
/// counted, never repeated (an ESP datagram sent twice would arrive as a replay), except after a
/// `UDP_SEGMENT` send the kernel refused as a whole (`EIO`/`EINVAL`, nothing was sent).
fn flush_sends(
    udp: &UnderlaySockets,
    esp: Option<&UnderlaySockets>,
    (slots, owned): (&Buffers, &[Vec<u8>]),
    pending: &[PendingSend],
    dests: &[IpAddr],
    driver: &mut DriverCounters,
) {
    let payload = |p: &PendingSend| match p.held {
        Held::Slot(i) => &slots.bufs[i][p.payload.clone()],
        Held::Owned(i) => &owned[i][p.payload.clone()],
    };
    let sockets_of = |tunnel: Tunnel| match tunnel {
        Tunnel::Vxlan => Some(udp),
        Tunnel::Esp => esp,
    };
    let socket_of = |p: &PendingSend| (p.tunnel, p.flow as usize % udp::SOURCE_PORTS);
    let mut batch: Vec<(IpAddr, &[u8])> = Vec::with_capacity(udp::BATCH);
    let mut current: Option<(Tunnel, u32)> = None;
    let send_batch = |key: Option<(Tunnel, u32)>, batch: &mut Vec<(IpAddr, &[u8])>, driver: &mut DriverCounters| {
        if let Some((tunnel, flow)) = key {
            match sockets_of(tunnel) {
                Some(s) => {
                    s.send_batch(flow, batch, |e| driver.send_failed(&e, 1));
                }
                None => driver.underlay_send_errors += batch.len() as u64,
            }
        }
        batch.clear();
    };
    let mut i = 0;
    while i < pending.len() {
        let p = &pending[i];
        let sockets = sockets_of(p.tunnel);
        let run = match sockets {
            Some(s) if s.gso_enabled() => gso_run(pending, dests, i, &payload),
            _ => 1,
        };
        if let (true, Some(s)) = (run >= 2, sockets) {
            send_batch(current.take(), &mut batch, driver);
            send_gso_run(s, p.flow, dests[p.dests.start], &pending[i..i + run], &payload, driver);
            i += run;
            continue;
        }
        if current.is_some_and(|c| (c.0, c.1 as usize % udp::SOURCE_PORTS) != socket_of(p)) {
            send_batch(current, &mut batch, driver);
        }
        current = Some((p.tunnel, p.flow));
        batch.extend(dests[p.dests.clone()].iter().map(|d| (*d, payload(p))));
        i += 1;
    }
    send_batch(current, &mut batch, driver);
}

/// Length of the run of datagrams starting at `pending[i]` that can share `UDP_SEGMENT` sends:
/// one tunnel, one destination, one source socket, equal sizes except a shorter last one.
fn gso_run<'a>(pending: &[PendingSend], dests: &[IpAddr], i: usize, payload: &impl Fn(&PendingSend) -> &'a [u8]) -> usize {
    let p = &pending[i];
    if p.dests.len() != 1 {
        return 1;
    }
    let (dest, size, sock) = (dests[p.dests.start], payload(p).len(), p.flow as usize % udp::SOURCE_PORTS);
    let mut j = i + 1;
    while let Some(q) = pending.get(j) {
        let len = payload(q).len();
        if q.tunnel != p.tunnel
            || q.dests.len() != 1
            || dests[q.dests.start] != dest
            || q.flow as usize % udp::SOURCE_PORTS != sock
            || len > size
        {
            break;
        }
        j += 1;
        if len < size {
            break;
        }
    }
    j - i
}

/// Send a run from [`gso_run`] in balanced `UDP_SEGMENT` sends through `sockets` (those of the
/// run's tunnel).
// hot path
fn send_gso_run<'a>(
    sockets: &UnderlaySockets,
    flow: u32,
    dest: IpAddr,
    run: &[PendingSend],
    payload: &impl Fn(&PendingSend) -> &'a [u8],
    driver: &mut DriverCounters,
) {
    let size = payload(&run[0]).len().max(1);
    let per_send = balanced_send_len(run.len(), size);
    let mut segs: Vec<&[u8]> = Vec::with_capacity(per_send);
    for chunk in run.chunks(per_send) {
        segs.clear();
        segs.extend(chunk.iter().map(payload));
        if !sockets.gso_enabled() {
            let batch: Vec<(IpAddr, &[u8])> = segs.iter().map(|s| (dest, *s)).collect();
            sockets.send_batch(flow, &batch, |e| driver.send_failed(&e, 1));
            continue;
        }
        match sockets.send_gso(flow, dest, &segs) {
            Ok(()) => {
                driver.gso_sends += 1;
                driver.gso_segments += segs.len() as u64;
            }
            Err(e) if udp::gso_refused(&e) => {
                // Refused as a whole before anything was queued: nothing of it left, so sending
                // the datagrams one by one repeats none of them.
                sockets.disable_gso();
                driver.gso_fallbacks += 1;
                tracing::warn!("UDP GSO refused by the kernel ({e}); sending datagrams one by one from now on");
                let batch: Vec<(IpAddr, &[u8])> = segs.iter().map(|s| (dest, *s)).collect();
                sockets.send_batch(flow, &batch, |e| driver.send_failed(&e, 1));
            }
            Err(e) => {
                tracing::debug!("sendmsg (UDP_SEGMENT): {e}");
                driver.send_failed(&e, segs.len() as u64);
            }
        }
    }
}

/// Datagrams per `UDP_SEGMENT` send for a run of `run` datagrams of `size` bytes: within
/// [`udp::GSO_MAX_BYTES`] and [`udp::GSO_MAX_SEGMENTS`], balanced (47 go as 24 + 23, not 44 + 3).
fn balanced_send_len(run: usize, size: usize) -> usize {
    let cap = (udp::GSO_MAX_BYTES / size.max(1)).clamp(1, udp::GSO_MAX_SEGMENTS);
    let sends = run.div_ceil(cap).max(1);
    run.div_ceil(sends).max(1)
}

/// State of the underlay -> TAP direction.
#[derive(Debug)]
pub struct RxPath {
    /// [`udp::BATCH`] receive buffers, then one buffer for the pieces of a tunnel super-datagram.
    bufs: Buffers,
    meta: Vec<Received>,
    gro: Coalescer,
    /// Longest UDP payload the underlay carries: longer VXLAN datagrams may be tunnel GSO.
    max_datagram: usize,
}

/// Index of the buffer that takes the pieces of a tunnel super-datagram.
const PIECES: usize = udp::BATCH;
/// Size of that buffer: a 64 KB super-frame cut at any MSS of 500 bytes or more.
const PIECES_LEN: usize = 160 * 1024;

impl RxPath {
    /// Receive buffers for datagrams of up to `payload` bytes ([`udp::GRO_BUFFER`] with GRO), on
    /// an underlay whose datagrams carry at most `max_datagram` bytes of UDP payload (the MTU
    /// minus the outer IPv4 or IPv6 header and UDP).
    pub fn new(payload: usize, max_datagram: usize) -> Self {
        let mut bufs = Buffers::new(udp::BATCH, payload);
        bufs.bufs.push(vec![0u8; PIECES_LEN]);
        RxPath { bufs, meta: Vec::with_capacity(udp::BATCH), gro: Coalescer::new(), max_datagram }
    }
}

/// Read a batch from `sockets` (those of `tunnel`) and write what the switch delivers to the TAPs.
// hot path
#[allow(clippy::too_many_arguments)]
pub fn underlay_to_tap(
    sockets: &UnderlaySockets,
    tunnel: Tunnel,
    now: Instant,
    switch: &mut Switch,
    taps: &[Option<Tap>],
    rx: &mut RxPath,
    driver: &mut DriverCounters,
) {
    if let Err(e) = sockets.recv_batch(&mut rx.bufs.bufs[..PIECES], HEADROOM, &mut rx.meta) {
        driver.underlay_recv_errors += 1;
        tracing::debug!("recvmmsg: {e}");
        return;
    }
    let mut write_errors = 0u64;
    let mut write = |port: PortId, iov: &[IoSlice<'_>]| {
        if taps.get(port).and_then(Option::as_ref).is_none_or(|t| t.writev(iov).is_err()) {
            write_errors += 1;
        }
    };
    for (i, m) in rx.meta.iter().enumerate() {
        if m.len == usize::MAX {
            driver.underlay_rx_truncated += 1;
            continue;
        }
        let whole = HEADROOM..HEADROOM + m.len;
        let datagrams = udp::gro_datagrams(whole.clone(), m.stride);
        if datagrams.len() > 1 {
            driver.gro_batches += 1;
            driver.gro_datagrams += datagrams.len() as u64;
        } else if tunnel == Tunnel::Vxlan && m.len > rx.max_datagram {
            // One datagram longer than the underlay carries: a kernel vxlan's super-datagram?
            let plan = tunnel_gso::plan(&rx.bufs.bufs[i][whole.clone()], rx.max_datagram - VXLAN_HEADER);
            if let Ok(plan) = plan {
                let count = plan.split.count();
                if count * plan.piece_len(0) <= PIECES_LEN {
                    // The pieces buffer may still back the pending group: write that first.
                    rx.gro.flush(&mut rx.bufs.bufs, &mut write);
                    let (received, rest) = rx.bufs.bufs.split_at_mut(PIECES);
                    let (src, out) = (&received[i][whole.clone()], &mut rest[0]);
                    let mut at = 0;
                    let mut pieces = Vec::with_capacity(count);
                    for k in 0..count {
                        let len = plan.write_piece(src, k, &mut out[at..]);
                        pieces.push(at..at + len);
                        at += len;
                    }
                    driver.rx_super_datagrams += 1;
                    driver.rx_super_pieces += count as u64;
                    for piece in pieces {
                        deliver(
                            switch,
                            tunnel,
                            now,
                            m.from.ip(),
                            taps,
                            (&mut rx.bufs.bufs, &mut rx.gro),
                            PIECES,
                            piece,
                            &mut write,
                            driver,
                        );
                    }
                    continue;
                }
            }
            driver.rx_super_unusable += 1;
        }
        for range in datagrams {
            deliver(switch, tunnel, now, m.from.ip(), taps, (&mut rx.bufs.bufs, &mut rx.gro), i, range, &mut write, driver);
        }
    }
    rx.gro.flush(&mut rx.bufs.bufs, &mut write);
    driver.tap_write_errors += write_errors;
    driver.coalesced_writes = rx.gro.stats.coalesced_writes;
    driver.coalesced_segments = rx.gro.stats.coalesced_segments;
    driver.rx_csum_failures = rx.gro.stats.csum_failures;
    driver.rx_csum_partial_finished = rx.gro.stats.csum_partial_finished;
}

/// Hand the datagram at `bufs[buf][range]` to the switch and what it delivers to the TAP:
/// through the coalescer on an offload TAP, alone otherwise.
// hot path
#[allow(clippy::too_many_arguments)]
fn deliver(
    switch: &mut Switch,
    tunnel: Tunnel,
    now: Instant,
    from: IpAddr,
    taps: &[Option<Tap>],
    (bufs, gro): (&mut [Vec<u8>], &mut Coalescer),
    buf: usize,
    range: Range<usize>,
    write: &mut dyn FnMut(PortId, &[IoSlice<'_>]),
    driver: &mut DriverCounters,
) {
    let forward = switch.handle_datagram(now, tunnel, from, &mut bufs[buf], range);
    let Forward::Tap { port, frame } = forward else { return };
    // A port whose TAP is being recreated has none for now: counted as a write error.
    match taps.get(port).and_then(Option::as_ref) {
        Some(tap) if tap.offload() => {
            // Only a datagram the AEAD opened reaches here from port 4500.
            let integrity = if tunnel == Tunnel::Esp { Integrity::Authenticated } else { Integrity::Unverified };
            gro.offer(bufs, port, (buf, frame), integrity, write)
        }
        Some(tap) if tap.write(&bufs[buf][frame]).is_ok() => {}
        _ => driver.tap_write_errors += 1,
    }
}

#[cfg(test)]
mod esp_order;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Pending datagrams of the given (tunnel, destination, length), one buffer each.
    fn pending(specs: &[(Tunnel, u8, usize)]) -> (Vec<Vec<u8>>, Vec<PendingSend>, Vec<IpAddr>) {
        let bufs = specs.iter().map(|s| vec![0u8; s.2]).collect();
        let dests = specs.iter().map(|s| IpAddr::V4(Ipv4Addr::new(10, 0, 0, s.1))).collect();
        let pending = specs
            .iter()
            .enumerate()
            .map(|(i, s)| PendingSend { held: Held::Slot(i), payload: 0..s.2, dests: i..i + 1, flow: 0, tunnel: s.0 })
            .collect();
        (bufs, pending, dests)
    }

    fn runs(specs: &[(Tunnel, u8, usize)]) -> Vec<usize> {
        let (bufs, pending, dests) = pending(specs);
        let payload = |p: &PendingSend| match p.held {
            Held::Slot(i) | Held::Owned(i) => &bufs[i][p.payload.clone()],
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < pending.len() {
            let n = gso_run(&pending, &dests, i, &payload);
            out.push(n);
            i += n;
        }
        out
    }

    #[test]
    fn esp_and_vxlan_runs_form_alike_and_never_mix() {
        let (esp, vx) = (Tunnel::Esp, Tunnel::Vxlan);
        // Sealed segments of one super-frame: equal sizes, a shorter last one ends the run.
        assert_eq!(runs(&[(esp, 2, 1446), (esp, 2, 1446), (esp, 2, 1446), (esp, 2, 610), (esp, 2, 1446)]), [4, 1]);
        // A change of tunnel, destination or a larger datagram starts a new run.
        assert_eq!(runs(&[(esp, 2, 1446), (esp, 2, 1446), (vx, 2, 1446), (vx, 2, 1446), (vx, 3, 1446)]), [2, 2, 1]);
        assert_eq!(runs(&[(esp, 2, 100), (esp, 2, 1446)]), [1, 1]);
    }

    #[test]
    fn only_small_batches_with_nothing_in_flight_are_sent_inline() {
        assert!(send_inline(1, 0), "a lone frame (a ping, an ACK) goes at once");
        assert!(send_inline(INLINE_BELOW - 1, 0));
        assert!(!send_inline(INLINE_BELOW, 0), "a batch worth a second core goes to the send thread");
        assert!(!send_inline(64, 0));
        for pending in [1, 7, 64] {
            assert!(!send_inline(pending, 1), "never ahead of a batch still with the send thread");
        }
    }

    #[test]
    fn runs_leave_in_balanced_sends_within_the_kernel_limits() {
        assert_eq!(balanced_send_len(47, 1446), 24, "47 go as 24 + 23");
        assert_eq!(balanced_send_len(44, 1446), 44);
        assert_eq!(balanced_send_len(200, 100), 50, "at most 64 per send, balanced");
        assert_eq!(balanced_send_len(1, 70000), 1);
        for (run, size) in [(47, 1446), (45, 1470), (130, 64), (3, 30000)] {
            let per = balanced_send_len(run, size);
            assert!(per * size <= udp::GSO_MAX_BYTES.max(size) && per <= udp::GSO_MAX_SEGMENTS, "{run} x {size}: {per}");
        }
    }
}
