//! The proxy-ARP responder: answer ARP for remote containers locally, on the TAP.
//!
//! The control plane knows every container's IP -> MAC binding (from configuration now, from
//! gossip later, both as [`crate::control::ControlUpdate::ArpBinding`]). With that knowledge an
//! ARP request from a local container for a remote container never needs to cross the overlay:
//! vxswitch answers it itself with the right MAC, as Linux does with `neigh_suppress` on a
//! bridge port. So once a binding is known, zero ARP requests for it are sent to peers, even
//! while the owner host is down.
//!
//! Requests for IPs without a binding follow the network's [`UnknownArp`] policy (flood, as a
//! plain L2 switch would, or drop). ARP that contradicts a known binding (a sender claiming an
//! IP that is bound to another MAC: gratuitous or not) is dropped and counted, which defends
//! against ARP spoofing from containers and from the underlay alike.

use crate::proxy_table::Bindings;
use crate::wire::vxlan::Vni;
use std::net::Ipv4Addr;

use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};

/// What to do with an ARP request for an IP that has no binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownArp {
    /// Flood it to the peers like any broadcast (plain L2 behaviour).
    #[default]
    Flood,
    /// Drop it: only bound IPs are reachable.
    Drop,
}

/// The verdict on one ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArpVerdict {
    /// Answer locally with this frame; send nothing to peers.
    Reply(Vec<u8>),
    /// The sender claims an IP bound to another MAC: drop.
    Spoofed,
    /// A request for an IP without a binding (apply the [`UnknownArp`] policy).
    Unknown,
    /// Not a request we answer (reply, announcement that agrees with the bindings): forward.
    Forward,
}

/// IP -> MAC bindings per VNI. (the shared [`Bindings`] table) and the judgement of this protocol.
pub type ProxyArp = Bindings<Ipv4Addr>;

impl Bindings<Ipv4Addr> {
    /// Judge an ARP packet on `vni`, already parsed by the caller from a frame tagged `vlan_id`
    /// (see [`parse`]; the switch parses each frame once and hands the result down).
    pub fn judge(&self, vni: Vni, arp: &ArpRepr, vlan_id: Option<u16>) -> ArpVerdict {
        if !arp.is_probe() {
            if let Some(bound) = self.lookup(vni, arp.source_protocol_addr) {
                if bound != arp.source_hardware_addr {
                    return ArpVerdict::Spoofed;
                }
            }
        }
        if arp.operation != ArpOperation::Request || arp.is_gratuitous() {
            return ArpVerdict::Forward;
        }
        match self.lookup(vni, arp.target_protocol_addr) {
            Some(mac) => ArpVerdict::Reply(reply_frame(arp, mac, vlan_id)),
            None => ArpVerdict::Unknown,
        }
    }
}

/// Parses the ARP payload of an Ethernet frame. `None` for malformed ARP or ARP that is not
/// Ethernet/IPv4: the switch forwards such frames as opaque L2 payload.
// hot path
pub fn parse(payload: &[u8]) -> Option<ArpRepr> {
    ArpPacket::new_checked(payload).and_then(|p| ArpRepr::parse(&p)).ok()
}

/// The ARP reply to `request` saying that its target IP is at `mac`, addressed to the requester.
pub fn reply_frame(request: &ArpRepr, mac: EthernetAddress, vlan_id: Option<u16>) -> Vec<u8> {
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: request.target_protocol_addr,
        target_hardware_addr: request.source_hardware_addr,
        target_protocol_addr: request.source_protocol_addr,
    };
    arp_frame(&reply, request.source_hardware_addr, vlan_id)
}

/// An Ethernet frame carrying `arp` to `dst` (padded to the 60-byte minimum).
pub fn arp_frame(arp: &ArpRepr, dst: EthernetAddress, vlan_id: Option<u16>) -> Vec<u8> {
    let eth = EthernetRepr { src_addr: arp.source_hardware_addr, dst_addr: dst, vlan_id, ethertype: EtherType::ARP };
    let mut frame = vec![0u8; (eth.buffer_len() + arp.buffer_len()).max(60)];
    let mut view = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut view);
    arp.emit(&mut ArpPacket::new_unchecked(view.payload_mut()));
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);
    const EVIL: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xe]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
    const IP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);

    /// Parse an Ethernet frame once, as the switch does, and judge its ARP payload; what does
    /// not parse is forwarded.
    fn judge(t: &ProxyArp, vni: u32, frame: &[u8]) -> ArpVerdict {
        let vni = Vni::new_const(vni);
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return ArpVerdict::Forward };
        match parse(eth.payload()) {
            Some(arp) => t.judge(vni, &arp, eth.vlan_id()),
            None => ArpVerdict::Forward,
        }
    }

    fn request(sender: EthernetAddress, sip: Ipv4Addr, tip: Ipv4Addr) -> Vec<u8> {
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: sender,
            source_protocol_addr: sip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: tip,
        };
        arp_frame(&arp, EthernetAddress::BROADCAST, None)
    }

    #[test]
    fn answers_bound_ip_with_its_mac() {
        let mut t = ProxyArp::new();
        t.bind(Vni::new_const(7), IP_B, B);
        let ArpVerdict::Reply(frame) = judge(&t, 7, &request(A, IP_A, IP_B)) else { panic!("expected a reply") };
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr(), eth.ethertype()), (A, B, EtherType::ARP));
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!((arp.source_hardware_addr, arp.source_protocol_addr), (B, IP_B));
        assert_eq!((arp.target_hardware_addr, arp.target_protocol_addr), (A, IP_A));
        assert_eq!(judge(&t, 8, &request(A, IP_A, IP_B)), ArpVerdict::Unknown, "bindings are per VNI");
    }

    #[test]
    fn flags_spoofed_claims_and_passes_consistent_ones() {
        let mut t = ProxyArp::new();
        t.bind(Vni::new_const(7), IP_B, B);
        assert_eq!(judge(&t, 7, &request(EVIL, IP_B, IP_B)), ArpVerdict::Spoofed, "gratuitous ARP for B's IP");
        assert_eq!(judge(&t, 7, &request(EVIL, IP_B, IP_A)), ArpVerdict::Spoofed, "request claiming B's IP");
        assert_eq!(judge(&t, 7, &request(B, IP_B, IP_B)), ArpVerdict::Forward, "B announcing itself");
        assert_eq!(
            judge(&t, 7, &request(EVIL, Ipv4Addr::UNSPECIFIED, IP_B)),
            ArpVerdict::Reply(reply_frame(
                &ArpRepr::parse(&ArpPacket::new_checked(&request(EVIL, Ipv4Addr::UNSPECIFIED, IP_B)[14..42]).unwrap()).unwrap(),
                B,
                None
            )),
            "an RFC 5227 probe is answered, so the prober sees the conflict"
        );
        t.unbind(Vni::new_const(7), IP_B);
        assert_eq!(judge(&t, 7, &request(EVIL, IP_B, IP_B)), ArpVerdict::Forward);
    }

    #[test]
    fn malformed_arp_is_forwarded_untouched() {
        let t = ProxyArp::new();
        let mut f = request(A, IP_A, IP_B);
        f[14] = 9; // hardware type not Ethernet
        assert_eq!(judge(&t, 7, &f), ArpVerdict::Forward);
        assert_eq!(judge(&t, 7, &f[..20]), ArpVerdict::Forward);
    }
}
