//! The per-packet fast path: TAP devices, underlay UDP sockets (batching, GSO/GRO), the virtio
//! header, TSO split and TCP coalescing, and the driver that moves frames between them and the
//! switch core. Nothing here knows about netlink or the control plane (that is `sys::kernel` and
//! `sys::daemon`); the daemon wires the pieces together.

pub mod datapath;
pub mod gro;
pub mod gso;
pub mod path_mtu;
pub mod send_worker;
pub mod tap;
pub mod tunnel_gso;
pub mod udp;
pub mod virtio;

use crate::counters::counters;

/// Headroom in front of every frame buffer: room for outer headers prepended in place.
pub const HEADROOM: usize = 64;
/// Spare bytes behind every frame (for trailers such as ESP's).
pub const TAILROOM: usize = 64;
/// Help text of the `vxswitch_io_errors` family.
const IO_ERRORS: &str = "I/O failures in the drivers, by kind";
/// Help text of the `vxswitch_clients_refused` family.
const CLIENTS_REFUSED: &str = "Client connections refused because too many were open, by listener";

counters! {
    /// Driver-level counters (I/O failures that the sans-IO core cannot see, offload work): the
    /// `driver` section of `stats`; the failures are exported as one `vxswitch_io_errors` family.
    #[derive(Debug, Default, Clone)]
    pub struct DriverCounters {
        /// `sendmmsg` failures (per datagram), except `EMSGSIZE`.
        pub underlay_send_errors: u64 = counter => io_errors(IO_ERRORS) reason = "underlay_send",
        /// Datagrams the kernel refused as larger than the route's MTU (`EMSGSIZE`): a TAP MTU
        /// set above what the underlay path carries.
        pub underlay_send_too_big: u64 = counter => io_errors(IO_ERRORS) reason = "underlay_send_too_big",
        /// Datagrams longer than the receive buffer.
        pub underlay_rx_truncated: u64 = counter => io_errors(IO_ERRORS) reason = "underlay_rx_truncated",
        /// Failed reads of a peer's underlay path MTU (`IP_MTU` on the probe socket).
        pub path_mtu_errors: u64 = counter => io_errors(IO_ERRORS) reason = "path_mtu",
        /// `recvmmsg` failures.
        pub underlay_recv_errors: u64 = counter => io_errors(IO_ERRORS) reason = "underlay_recv",
        /// TAP write failures (queue full, device down).
        pub tap_write_errors: u64 = counter => io_errors(IO_ERRORS) reason = "tap_write",
        /// TAP read failures.
        pub tap_read_errors: u64 = counter => io_errors(IO_ERRORS) reason = "tap_read",
        /// TCP super-frames (TSO) read from offload TAPs.
        pub tap_super_frames: u64 = counter,
        /// Segments those super-frames were split into.
        pub tap_segments: u64 = counter,
        /// Frames from offload TAPs dropped because their virtio header was unusable.
        pub tap_offload_errors: u64 = counter => io_errors(IO_ERRORS) reason = "tap_offload",
        /// Super-frames dropped because their segments exceed any frame the underlay carries.
        pub tap_segment_oversize: u64 = counter => io_errors(IO_ERRORS) reason = "tap_segment_oversize",
        /// `UDP_SEGMENT` sends.
        pub gso_sends: u64 = counter,
        /// Datagrams carried by those sends.
        pub gso_segments: u64 = counter,
        /// `UDP_SEGMENT` sends the kernel refused (GSO then turned off).
        pub gso_fallbacks: u64 = counter,
        /// Receive buffers that held several datagrams (`UDP_GRO`).
        pub gro_batches: u64 = counter,
        /// Datagrams in those buffers.
        pub gro_datagrams: u64 = counter,
        /// Kernel-vxlan super-datagrams received (one VXLAN header around a TCP super-frame, from
        /// a kernel vxlan on the same kernel) and cut into wire-sized datagrams.
        pub rx_super_datagrams: u64 = counter,
        /// Datagrams those were cut into.
        pub rx_super_pieces: u64 = counter,
        /// VXLAN datagrams longer than the underlay carries that were not such super-datagrams
        /// (handed to the switch as they were).
        pub rx_super_unusable: u64 = counter,
        /// TAP writes carrying two or more coalesced TCP segments.
        pub coalesced_writes: u64 = counter,
        /// Segments carried by those writes.
        pub coalesced_segments: u64 = counter,
        /// Received TCP/UDP frames with a wrong checksum (not coalesced; the kernel drops them).
        pub rx_csum_failures: u64 = counter => io_errors(IO_ERRORS) reason = "rx_checksum",
        /// Received frames whose checksum a same-host sender left partial (finished before the TAP).
        pub rx_csum_partial_finished: u64 = counter,
        /// Loop rounds that polled without sleeping (busy-polling after data-path work).
        pub busy_poll_rounds: u64 = counter,
        /// Busy-poll rounds that found data-path work (a wake-up saved).
        pub busy_poll_hits: u64 = counter,
        /// Batches of datagrams handed to the send thread (`[underlay] workers = 2`).
        pub send_thread_batches: u64 = counter,
        /// Times the daemon thread waited for the send thread to give a batch back (all were in
        /// flight: the kernel's sends, not the reading and switching, set the pace).
        pub send_thread_waits: u64 = counter,
        /// Small batches sent on the daemon thread while the send thread had nothing in flight
        /// (no thread wake-up for a lone frame).
        pub sent_inline: u64 = counter,
        /// Control-socket connections refused because too many were open.
        pub control_clients_refused: u64 = counter => clients_refused(CLIENTS_REFUSED) listener = "control",
        /// Metrics (HTTP) connections refused because too many were open.
        pub metrics_clients_refused: u64 = counter => clients_refused(CLIENTS_REFUSED) listener = "metrics",
        /// Client connections dropped at their deadline (silent, or not reading their answer).
        pub clients_timed_out: u64 = counter,
        /// TAPs found broken or deleted from outside (poll error, or reads failing with `EBADFD`).
        pub taps_lost: u64 = counter,
        /// Lost TAPs created again (bridge, address and MTU re-applied).
        pub taps_recreated: u64 = counter,
        /// Failed attempts to recreate a lost TAP (the network is down until one succeeds).
        pub tap_recreate_failures: u64 = counter => io_errors(IO_ERRORS) reason = "tap_recreate",
    }
}

impl DriverCounters {
    /// Count `n` datagrams lost to the failed send `e`: `EMSGSIZE` apart from other errors.
    pub fn send_failed(&mut self, e: &std::io::Error, n: u64) {
        if e.raw_os_error() == Some(libc::EMSGSIZE) {
            self.underlay_send_too_big += n;
        } else {
            self.underlay_send_errors += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emsgsize_is_counted_apart() {
        let mut c = DriverCounters::default();
        c.send_failed(&std::io::Error::from_raw_os_error(libc::EMSGSIZE), 3);
        c.send_failed(&std::io::Error::from_raw_os_error(libc::ENOBUFS), 1);
        assert_eq!((c.underlay_send_too_big, c.underlay_send_errors), (3, 1));
    }
}
