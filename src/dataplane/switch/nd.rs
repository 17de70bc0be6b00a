//! The switch side of the ND proxy (see [`crate::nd`]): judge Neighbor Solicitations and
//! Advertisements from local TAPs and from peers on switched networks, answer on the TAP, learn
//! local IPv6 bindings for the gossip record, and drop spoofed claims.

use std::net::{IpAddr, Ipv6Addr};

use super::{PortId, Switch, Transmit};
use crate::arp::UnknownArp;
use crate::dataplane::counters::DropReason;
use crate::nd::{NdMessage, NdVerdict, ProxyNd};
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::icmpv6::NdiscRepr;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::vxlan::Vni;

impl Switch {
    /// An NS or NA read from the TAP of switched network `port`: whether it was consumed
    /// (answered, defended or dropped) rather than forwarded like any other frame.
    // hot path
    pub(super) fn nd_from_tap(&mut self, port: PortId, vni: Vni, msg: &NdMessage, vlan_id: Option<u16>) -> bool {
        let verdict = self.proxy_nd.judge(vni, msg, vlan_id);
        if verdict != NdVerdict::Spoofed {
            // The sender's own address (a solicitation's source, an advertisement's target) is
            // learned even when the proxy answers: the other hosts need it for the way back.
            if let Some((ip, mac)) = msg.claim() {
                if self.proxy_nd.lookup(vni, ip).is_none() {
                    self.snoop_binding(vni, IpAddr::V6(ip), mac);
                }
            }
        }
        match verdict {
            NdVerdict::Reply(frame) => {
                self.counters.nd_replies += 1;
                self.counters.tap_tx_frames += 1;
                self.transmits.push_back(Transmit::Tap { port, frame });
                true
            }
            NdVerdict::Defend(frame) => {
                self.counters.nd_dad_defended += 1;
                self.counters.tap_tx_frames += 1;
                self.transmits.push_back(Transmit::Tap { port, frame });
                true
            }
            NdVerdict::OwnProbe => {
                self.counters.nd_dad_own += 1;
                true
            }
            NdVerdict::Spoofed => {
                self.counters.drop(DropReason::NdSpoofed);
                true
            }
            NdVerdict::Unknown if self.nd_for_local(vni, msg) => {
                self.counters.nd_local_target += 1;
                true
            }
            NdVerdict::Unknown if self.networks[port].unknown_arp == UnknownArp::Drop => {
                self.counters.drop(DropReason::NdUnknownDropped);
                true
            }
            NdVerdict::Unknown | NdVerdict::Forward => false,
        }
    }

    /// Whether a solicitation from a local TAP is for a container behind this same TAP (snooped
    /// or announced): the bridge has delivered it to that container already, so it goes no
    /// further.
    fn nd_for_local(&self, vni: Vni, msg: &NdMessage) -> bool {
        let NdiscRepr::NeighborSolicit { target_addr, .. } = msg.repr else { return false };
        let key = (vni, IpAddr::V6(target_addr));
        self.local_bindings.get(&key).or_else(|| self.announced.get(&key)).is_some_and(|&mac| mac != msg.eth_src)
    }

    /// Whether an NS or NA from a peer claims an address bound to another MAC.
    // hot path
    pub(super) fn nd_spoofed_from_peer(&self, vni: Vni, eth: &EthernetFrame<&[u8]>) -> bool {
        if self.proxy_nd.is_empty() || eth.ethertype() != EtherType::IPV6 {
            return false;
        }
        crate::nd::parse(eth.src_addr(), eth.payload())
            .is_some_and(|msg| matches!(self.proxy_nd.judge(vni, &msg, None), NdVerdict::Spoofed))
    }

    /// Whether an IPv6 frame from a peer has a source address bound to another MAC.
    // hot path
    pub(super) fn inner_source6_spoofed(&self, vni: Vni, eth: &EthernetFrame<&[u8]>) -> bool {
        if self.proxy_nd.is_empty() {
            return false;
        }
        let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else { return false };
        let src: Ipv6Addr = ip.src_addr();
        self.proxy_nd.lookup(vni, src).is_some_and(|mac| mac != eth.src_addr())
    }

    /// The ND proxy's bindings.
    pub fn proxy_nd(&self) -> &ProxyNd {
        &self.proxy_nd
    }
}
