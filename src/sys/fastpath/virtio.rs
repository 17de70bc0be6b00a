//! The virtio-net header that a TAP opened with `IFF_VNET_HDR` puts in front of every frame. (The
//! checksum arithmetic the offload paths need is `wire::checksum`, shared with every view.)
//!
//! With `TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)` the kernel hands a TAP reader TCP
//! super-frames of up to 64 KB (one header, many MSS-sized payloads) and frames whose transport
//! checksum is still "partial" (only the pseudo-header sum is in the field); a writer may hand the
//! kernel such frames back. The header says which (`struct virtio_net_hdr`, 10 bytes, fields in the
//! host's byte order for a legacy header on a little-endian machine, which is what TUN/TAP uses):
//!
//! ```text
//! flags(1) gso_type(1) hdr_len(2) gso_size(2) csum_start(2) csum_offset(2)
//! ```
//!
//! On a TAP, `csum_start` and `hdr_len` count from the first byte of the *Ethernet* header (TUN
//! counts from the IP header). `hdr_len` is only a hint from the kernel and is never trusted here:
//! the offload code recomputes it from `csum_start` and the TCP data offset.

/// Length of the legacy `struct virtio_net_hdr` (the TAP default `TUNSETVNETHDRSZ`).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start + csum_offset` is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified.
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN` (flag bit on `gso_type`).
pub const GSO_ECN: u8 = 0x80;
/// Offset of the TCP checksum field inside the TCP header (`csum_offset` for TCP).
pub const TCP_CSUM_OFFSET: u16 = crate::wire::tcp::CHECKSUM_OFFSET as u16;

/// A parsed `struct virtio_net_hdr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtioNetHdr {
    /// `F_NEEDS_CSUM` / `F_DATA_VALID`.
    pub flags: u8,
    /// `GSO_*`.
    pub gso_type: u8,
    /// Length of all headers (a hint on read).
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Where checksumming starts, from the first byte of the frame.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Parse the header from its 10 bytes.
    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> Self {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VirtioNetHdr { flags: b[0], gso_type: b[1], hdr_len: u16_at(2), gso_size: u16_at(4), csum_start: u16_at(6), csum_offset: u16_at(8) }
    }

    /// The header's 10 bytes.
    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_in_host_order() {
        let h = VirtioNetHdr { flags: F_NEEDS_CSUM, gso_type: GSO_TCPV4, hdr_len: 66, gso_size: 1398, csum_start: 34, csum_offset: 16 };
        let b = h.emit();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 1);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 1398);
        assert_eq!(VirtioNetHdr::parse(&b), h);
    }
}
