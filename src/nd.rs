//! The ND proxy: answer IPv6 Neighbor Solicitations for remote containers locally, on the TAP.
//!
//! The IPv6 twin of [`crate::arp`]. Bindings IPv6 -> MAC come from gossip (other hosts' records)
//! and from snooping this host's TAP. With a binding known, a Neighbor Solicitation (RFC 4861)
//! from a local container is answered with a Neighbor Advertisement built here and never crosses
//! the overlay. Solicitations for addresses without a binding follow the network's
//! [`crate::arp::UnknownArp`] policy, as ARP does.
//!
//! Duplicate Address Detection (RFC 4862 section 5.4): a probe is a solicitation from the
//! unspecified address `::`, without a source link-layer option, for the address the prober
//! wants to use.
//! - The address is bound to *another* MAC: the proxy defends it for its owner as the owner
//!   itself would (RFC 4862 5.4.3, RFC 4861 7.2.4): an advertisement to all-nodes `ff02::1`,
//!   Solicited clear, Override set. The prober sees the duplicate and does not use the address.
//! - The address is bound to the prober's own MAC (its Ethernet source): it is the owner probing
//!   again (interface restart). Nobody else may answer, so nothing is sent anywhere; the probe
//!   is consumed and counted. Answering would make the owner give up its own address.
//! - No binding: the probe follows the unknown policy (flooded by default), so a real duplicate
//!   on a host vxswitch has not heard about can still defend itself. A probe never creates a
//!   binding: the prober does not own the address yet.
//!
//! Spoofing: an advertisement whose target is bound to another MAC, or a solicitation whose
//! source address is bound to another MAC, is dropped and counted, from containers and from the
//! underlay alike. Only messages that pass RFC 4861 validation (hop limit 255, ICMPv6 checksum,
//! code 0, options well formed) are judged; anything else is forwarded as opaque traffic.

use crate::proxy_table::Bindings;
use crate::wire::vxlan::Vni;
use std::net::Ipv6Addr;

use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use crate::wire::icmpv6::{Icmpv6Packet, NdiscRepr, NeighborFlags};
use crate::wire::ipv4::protocol;
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr, HEADER_LEN};

/// The all-nodes link-local multicast address, destination of a DAD defence.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A validated Neighbor Solicitation or Advertisement with the headers that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdMessage {
    /// Ethernet source of the frame.
    pub eth_src: EthernetAddress,
    /// IPv6 source (`::` for a DAD probe).
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// The solicitation or advertisement.
    pub repr: NdiscRepr,
}

impl NdMessage {
    /// True for a DAD probe: a solicitation from `::`.
    pub fn is_dad(&self) -> bool {
        matches!(self.repr, NdiscRepr::NeighborSolicit { .. }) && self.src.is_unspecified()
    }

    /// The binding this message shows, as a switch may learn it: the sender of a solicitation
    /// (source address and link-layer option), or the target of an advertisement. `None` for
    /// DAD probes and for addresses that are not unicast.
    pub fn claim(&self) -> Option<(Ipv6Addr, EthernetAddress)> {
        let (ip, mac) = match self.repr {
            NdiscRepr::NeighborSolicit { lladdr, .. } => (self.src, lladdr?),
            NdiscRepr::NeighborAdvert { target_addr, lladdr, .. } => (target_addr, lladdr.unwrap_or(self.eth_src)),
        };
        (!ip.is_unspecified() && !ip.is_multicast() && !ip.is_loopback() && mac.is_unicast()).then_some((ip, mac))
    }
}

/// The solicited-node multicast address of `target` and its Ethernet group (RFC 4291 2.7.1,
/// RFC 2464 7).
pub fn solicited_node(target: Ipv6Addr) -> (Ipv6Addr, EthernetAddress) {
    let o = target.octets();
    let ip = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]));
    (ip, EthernetAddress([0x33, 0x33, 0xff, o[13], o[14], o[15]]))
}

/// Parses the IPv6 payload of an Ethernet frame from `eth_src` as an NS or NA. `None` for
/// anything else, and for ND that fails RFC 4861 validation (not hop limit 255, extension
/// headers, bad checksum or options): the switch forwards such frames as opaque payload.
// hot path
pub fn parse(eth_src: EthernetAddress, payload: &[u8]) -> Option<NdMessage> {
    let ip = Ipv6Packet::new_checked(payload).ok()?;
    if ip.next_header() != protocol::ICMPV6 || ip.hop_limit() != 255 {
        return None;
    }
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let repr = NdiscRepr::parse(&icmp, &src, &dst).ok()?;
    Some(NdMessage { eth_src, src, dst, repr })
}

/// The verdict on one NS or NA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdVerdict {
    /// Answer locally with this frame; send nothing to peers.
    Reply(Vec<u8>),
    /// Defend the address against a DAD probe with this frame (to all-nodes); send nothing on.
    Defend(Vec<u8>),
    /// A DAD probe of the address's own owner: send nothing anywhere.
    OwnProbe,
    /// The message claims an address bound to another MAC: drop.
    Spoofed,
    /// A solicitation for an address without a binding (apply the unknown policy).
    Unknown,
    /// Not a solicitation we answer (an advertisement that agrees with the bindings): forward.
    Forward,
}

/// IPv6 -> MAC bindings per VNI. (the shared [`Bindings`] table) and the judgement of this protocol.
pub type ProxyNd = Bindings<Ipv6Addr>;

impl Bindings<Ipv6Addr> {
    /// Judge an ND message on `vni` (from a frame tagged `vlan_id`).
    pub fn judge(&self, vni: Vni, msg: &NdMessage, vlan_id: Option<u16>) -> NdVerdict {
        if let Some((ip, mac)) = msg.claim() {
            if self.lookup(vni, ip).is_some_and(|bound| bound != mac) {
                return NdVerdict::Spoofed;
            }
        }
        let NdiscRepr::NeighborSolicit { target_addr, .. } = msg.repr else {
            return NdVerdict::Forward;
        };
        let Some(mac) = self.lookup(vni, target_addr) else {
            return NdVerdict::Unknown;
        };
        if msg.is_dad() {
            if mac == msg.eth_src {
                return NdVerdict::OwnProbe;
            }
            return NdVerdict::Defend(advert_frame(msg, target_addr, mac, vlan_id));
        }
        NdVerdict::Reply(advert_frame(msg, target_addr, mac, vlan_id))
    }
}

/// The advertisement answering solicitation `ns` that `target` is at `mac`: unicast to the
/// solicitor with Solicited and Override set, or, for a DAD probe, to all-nodes with only
/// Override (RFC 4861 7.2.4).
pub fn advert_frame(ns: &NdMessage, target: Ipv6Addr, mac: EthernetAddress, vlan_id: Option<u16>) -> Vec<u8> {
    let (dst_ip, dst_mac, flags) = if ns.src.is_unspecified() {
        (ALL_NODES, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), NeighborFlags::OVERRIDE)
    } else {
        let to = match ns.repr {
            NdiscRepr::NeighborSolicit { lladdr: Some(l), .. } => l,
            _ => ns.eth_src,
        };
        (ns.src, to, NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE)
    };
    let na = NdiscRepr::NeighborAdvert { flags, target_addr: target, lladdr: Some(mac) };
    ndisc_frame(&na, mac, target, dst_mac, dst_ip, vlan_id)
}

/// An Ethernet frame carrying `nd` from `src_mac`/`src_ip` to `dst_mac`/`dst_ip`, hop limit 255.
pub fn ndisc_frame(
    nd: &NdiscRepr,
    src_mac: EthernetAddress,
    src_ip: Ipv6Addr,
    dst_mac: EthernetAddress,
    dst_ip: Ipv6Addr,
    vlan_id: Option<u16>,
) -> Vec<u8> {
    let eth = EthernetRepr { src_addr: src_mac, dst_addr: dst_mac, vlan_id, ethertype: EtherType::IPV6 };
    let ip = Ipv6Repr { src_addr: src_ip, dst_addr: dst_ip, next_header: protocol::ICMPV6, payload_len: nd.buffer_len(), hop_limit: 255 };
    let mut frame = vec![0u8; eth.buffer_len() + HEADER_LEN + nd.buffer_len()];
    let mut view = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut view);
    let mut ipv = Ipv6Packet::new_unchecked(view.payload_mut());
    ip.emit(&mut ipv);
    nd.emit(&mut Icmpv6Packet::new_unchecked(&mut ipv.payload_mut()[..nd.buffer_len()]), &src_ip, &dst_ip);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
    const EVIL: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xe]);
    const VNI: Vni = Vni::new_const(7);

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ns(from: EthernetAddress, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
        let lladdr = (!src.is_unspecified()).then_some(from);
        let (dst, dmac) = solicited_node(target);
        ndisc_frame(&NdiscRepr::NeighborSolicit { target_addr: target, lladdr }, from, src, dmac, dst, None)
    }

    fn na(from: EthernetAddress, target: Ipv6Addr) -> Vec<u8> {
        let nd = NdiscRepr::NeighborAdvert { flags: NeighborFlags::OVERRIDE, target_addr: target, lladdr: Some(from) };
        ndisc_frame(&nd, from, target, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), ALL_NODES, None)
    }

    fn judge(t: &ProxyNd, frame: &[u8]) -> NdVerdict {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        match parse(eth.src_addr(), eth.payload()) {
            Some(m) => t.judge(VNI, &m, None),
            None => NdVerdict::Forward,
        }
    }

    fn parse_frame(frame: &[u8]) -> NdMessage {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        parse(eth.src_addr(), eth.payload()).expect("valid ND")
    }

    #[test]
    fn answers_a_bound_address_with_a_solicited_advertisement() {
        let mut t = ProxyNd::new();
        t.bind(VNI, ip("fd00::b"), B);
        let NdVerdict::Reply(frame) = judge(&t, &ns(A, ip("fd00::a"), ip("fd00::b"))) else { panic!("expected a reply") };
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr(), eth.ethertype()), (A, B, EtherType::IPV6));
        let m = parse_frame(&frame);
        assert_eq!((m.src, m.dst), (ip("fd00::b"), ip("fd00::a")));
        assert_eq!(
            m.repr,
            NdiscRepr::NeighborAdvert {
                flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                target_addr: ip("fd00::b"),
                lladdr: Some(B)
            }
        );
        let mut other = ProxyNd::new();
        other.bind(Vni::new_const(8), ip("fd00::b"), B);
        assert_eq!(judge(&other, &ns(A, ip("fd00::a"), ip("fd00::b"))), NdVerdict::Unknown, "bindings are per VNI");
    }

    #[test]
    fn dad_probes_are_defended_for_others_and_silent_for_the_owner() {
        let mut t = ProxyNd::new();
        t.bind(VNI, ip("fd00::b"), B);
        let probe = ns(EVIL, Ipv6Addr::UNSPECIFIED, ip("fd00::b"));
        assert!(parse_frame(&probe).is_dad());
        assert_eq!(parse_frame(&probe).claim(), None, "a probe claims nothing");
        let NdVerdict::Defend(frame) = judge(&t, &probe) else { panic!("expected a defence") };
        let m = parse_frame(&frame);
        assert_eq!((m.src, m.dst, m.eth_src), (ip("fd00::b"), ALL_NODES, B));
        assert_eq!(m.repr, NdiscRepr::NeighborAdvert { flags: NeighborFlags::OVERRIDE, target_addr: ip("fd00::b"), lladdr: Some(B) });
        assert_eq!(judge(&t, &ns(B, Ipv6Addr::UNSPECIFIED, ip("fd00::b"))), NdVerdict::OwnProbe);
        assert_eq!(judge(&t, &ns(A, Ipv6Addr::UNSPECIFIED, ip("fd00::a"))), NdVerdict::Unknown);
    }

    #[test]
    fn spoofed_claims_are_flagged_and_consistent_ones_pass() {
        let mut t = ProxyNd::new();
        t.bind(VNI, ip("fd00::b"), B);
        assert_eq!(judge(&t, &na(EVIL, ip("fd00::b"))), NdVerdict::Spoofed, "advertisement for B's address");
        assert_eq!(judge(&t, &ns(EVIL, ip("fd00::b"), ip("fd00::a"))), NdVerdict::Spoofed, "solicitation from B's address");
        assert_eq!(judge(&t, &na(B, ip("fd00::b"))), NdVerdict::Forward, "B announcing itself");
        assert_eq!(judge(&t, &na(A, ip("fd00::a"))), NdVerdict::Forward, "an unbound address");
        assert_eq!(parse_frame(&na(A, ip("fd00::a"))).claim(), Some((ip("fd00::a"), A)));
        t.unbind(VNI, ip("fd00::b"));
        assert_eq!(judge(&t, &na(EVIL, ip("fd00::b"))), NdVerdict::Forward);
    }

    proptest::proptest! {
        #![proptest_config(crate::wire::testutil::proptest_config())]
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
                                        fix in proptest::prelude::any::<bool>()) {
            let mut t = ProxyNd::new();
            t.bind(VNI, ip("fd00::b"), B);
            // Start from a valid solicitation and overwrite its tail, so that parsing gets deep.
            let mut frame = ns(A, ip("fd00::a"), ip("fd00::b"));
            let at = 14 + 40 + 8;
            let n = bytes.len().min(frame.len() - at);
            frame[at..at + n].copy_from_slice(&bytes[..n]);
            if fix {
                let (src, dst) = (ip("fd00::a"), solicited_node(ip("fd00::b")).0);
                Icmpv6Packet::new_unchecked(&mut frame[14 + 40..]).fill_checksum(&src, &dst);
            }
            let _ = judge(&t, &frame);
            if let Ok(eth) = EthernetFrame::new_checked(&bytes[..]) {
                let _ = parse(eth.src_addr(), eth.payload()).map(|m| t.judge(VNI, &m, None));
            }
        }
    }

    #[test]
    fn invalid_nd_is_not_judged() {
        let mut t = ProxyNd::new();
        t.bind(VNI, ip("fd00::b"), B);
        let good = ns(A, ip("fd00::a"), ip("fd00::b"));
        let mut hops = good.clone();
        hops[14 + 7] = 64; // RFC 4861: hop limit must be 255
        assert_eq!(judge(&t, &hops), NdVerdict::Forward);
        let mut sum = good.clone();
        sum[14 + 40 + 2] ^= 1;
        assert_eq!(judge(&t, &sum), NdVerdict::Forward);
        for len in 14..good.len() {
            assert_eq!(judge(&t, &good[..len]), NdVerdict::Forward, "{len}");
        }
    }
}
