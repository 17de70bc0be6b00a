//! TCP MSS clamping for SYNs crossing the overlay (the `iptables -j TCPMSS --clamp-mss-to-pmtu`
//! habit): a container whose interface MTU is larger than the overlay's announces an MSS the
//! tunnel cannot carry; lowering the MSS option of its SYN (and of the SYN-ACK it gets) makes
//! both ends send segments that fit from the first one, without waiting for path MTU discovery,
//! and also for stacks that ignore ICMP.
//!
//! Only the MSS option of a segment with SYN is touched, only downwards, and the TCP checksum is
//! updated incrementally (RFC 1624), so the rest of the segment is never read. The switch calls
//! this on every frame it encapsulates and on every frame it delivers from a peer; anything that
//! is not an unfragmented TCP SYN is left alone after a few header reads.

use crate::wire::checksum;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ipv4::{protocol, Ipv4Packet};
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::tcp::{flags, TcpPacket};

/// The `mss_clamp` setting of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MssClamp {
    /// Clamp to what the path to the peer carries: MTU − 40 (IPv4) or − 60 (IPv6).
    #[default]
    Auto,
    /// Clamp to this MSS.
    Fixed(u16),
    /// Leave SYNs alone.
    Off,
}

impl MssClamp {
    /// The largest MSS allowed for an IPv4 (`v6` false) or IPv6 SYN over a path of `mtu` bytes.
    pub fn limit(self, mtu: usize, v6: bool) -> Option<u16> {
        let overhead = if v6 { 60 } else { 40 };
        match self {
            MssClamp::Auto => Some(mtu.saturating_sub(overhead).min(usize::from(u16::MAX)) as u16),
            MssClamp::Fixed(n) => Some(n),
            MssClamp::Off => None,
        }
    }
}

impl std::fmt::Display for MssClamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MssClamp::Auto => f.write_str("auto"),
            MssClamp::Fixed(n) => write!(f, "{n}"),
            MssClamp::Off => f.write_str("off"),
        }
    }
}

/// Lower the MSS option of the TCP SYN in `frame` (a whole Ethernet frame) to what `clamp`
/// allows when the tunnel carries frames of at most `max_frame_len` bytes. Returns the old MSS
/// when it was lowered.
// hot path
pub fn clamp_frame(frame: &mut [u8], clamp: MssClamp, max_frame_len: usize) -> Option<u16> {
    if clamp == MssClamp::Off {
        return None;
    }
    let eth = EthernetFrame::new_checked(&*frame).ok()?;
    let l3 = eth.header_len();
    let (l4, v6) = match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(&frame[l3..]).ok()?;
            if ip.protocol() != protocol::TCP || ip.frag_offset() != 0 || ip.more_frags() {
                return None;
            }
            let end = (l3 + usize::from(ip.total_len())).min(frame.len());
            (l3 + ip.header_len()..end, false)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(&frame[l3..]).ok()?;
            if ip.next_header() != protocol::TCP {
                return None;
            }
            let end = (l3 + 40 + usize::from(ip.payload_len())).min(frame.len());
            (l3 + 40..end, true)
        }
        _ => return None,
    };
    let limit = clamp.limit(max_frame_len.saturating_sub(l3), v6)?;
    let tcp = TcpPacket::new_checked(&frame[l4.clone()]).ok()?;
    if tcp.flags() & flags::SYN == 0 {
        return None;
    }
    let at = l4.start + 20 + mss_option_at(tcp.options())?;
    let old = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if old <= limit {
        return None;
    }
    // RFC 1624 eqn. 3 over the 16-bit-aligned words (relative to the segment) holding the value.
    let (lo, hi) = (l4.start + ((at - l4.start) & !1), l4.start + ((at + 2 - l4.start + 1) & !1));
    let before = checksum::data(&frame[lo..hi]);
    frame[at..at + 2].copy_from_slice(&limit.to_be_bytes());
    let after = checksum::data(&frame[lo..hi]);
    let csum_at = l4.start + crate::wire::tcp::CHECKSUM_OFFSET;
    let stored = u16::from_be_bytes([frame[csum_at], frame[csum_at + 1]]);
    let updated = !checksum::combine(&[!stored, !before, after]);
    frame[csum_at..csum_at + 2].copy_from_slice(&updated.to_be_bytes());
    Some(old)
}

/// Offset of the MSS value (kind 2, length 4) inside the TCP options, if present.
fn mss_option_at(options: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*options.get(i + 1)?);
                if len < 2 || i + len > options.len() {
                    return None;
                }
                if kind == 2 && len == 4 {
                    return Some(i + 2);
                }
                i += len;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, TcpOptionElement};

    fn syn(mss: u16, nops: usize, v6: bool, syn: bool) -> Vec<u8> {
        let mut opts = vec![TcpOptionElement::Noop; nops];
        opts.push(TcpOptionElement::MaximumSegmentSize(mss));
        opts.push(TcpOptionElement::WindowScale(7));
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 10], [2, 0, 0, 0, 2, 10]);
        let mut f = Vec::new();
        if v6 {
            let mut t = b
                .ipv6(
                    [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                    64,
                )
                .tcp(40000, 5201, 1, 64240);
            if syn {
                t = t.syn();
            }
            t.options(&opts).unwrap().write(&mut f, &[]).unwrap();
        } else {
            let mut t = b.ipv4([192, 0, 2, 11], [192, 0, 2, 21], 64).tcp(40000, 5201, 1, 64240);
            if syn {
                t = t.syn();
            }
            t.options(&opts).unwrap().write(&mut f, &[]).unwrap();
        }
        f
    }

    fn checksum_ok(f: &[u8]) -> bool {
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        match (p.net.unwrap(), p.transport.unwrap()) {
            (etherparse::NetSlice::Ipv4(ip), etherparse::TransportSlice::Tcp(t)) => {
                t.to_header().calc_checksum_ipv4(&ip.header().to_header(), t.payload()).unwrap() == t.checksum()
            }
            (etherparse::NetSlice::Ipv6(ip), etherparse::TransportSlice::Tcp(t)) => {
                t.to_header().calc_checksum_ipv6(&ip.header().to_header(), t.payload()).unwrap() == t.checksum()
            }
            _ => false,
        }
    }

    fn mss_of(f: &[u8]) -> u16 {
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else { panic!() };
        t.options_iterator()
            .find_map(|o| match o {
                Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn auto_clamps_ipv4_and_ipv6_syns_with_a_valid_checksum_at_any_alignment() {
        for v6 in [false, true] {
            for nops in 0..4 {
                let mut f = syn(1460, nops, v6, true);
                assert_eq!(clamp_frame(&mut f, MssClamp::Auto, 1464), Some(1460), "v6 {v6} nops {nops}");
                assert_eq!(mss_of(&f), if v6 { 1390 } else { 1410 });
                assert!(checksum_ok(&f), "v6 {v6} nops {nops}: incremental checksum");
            }
        }
    }

    #[test]
    fn only_syns_above_the_limit_change() {
        let mut f = syn(1360, 0, false, true);
        let orig = f.clone();
        assert_eq!(clamp_frame(&mut f, MssClamp::Auto, 1464), None, "already small enough");
        let mut g = syn(1460, 0, false, false);
        assert_eq!(clamp_frame(&mut g, MssClamp::Auto, 1464), None, "not a SYN");
        assert_eq!(clamp_frame(&mut f, MssClamp::Off, 1000), None);
        assert_eq!(f, orig);
        assert_eq!(clamp_frame(&mut f, MssClamp::Fixed(1200), 1464), Some(1360));
        assert_eq!(mss_of(&f), 1200);
        assert!(checksum_ok(&f));
        let mut short = f[..40].to_vec();
        assert_eq!(clamp_frame(&mut short, MssClamp::Auto, 500), None, "truncated: left alone");
    }
}
