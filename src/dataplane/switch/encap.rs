//! Egress to the underlay: the one encapsulation entry point of the switch.
//!
//! Every frame the switch sends to peers, switched or routed, goes through [`Switch::encap`],
//! which picks the encapsulation by matching on the network's [`Tunnel`]. VXLAN carries the whole
//! Ethernet frame, its header written into the headroom in place. ESP carries the Ethernet frame
//! on a switched network and only the IP packet on a routed one (both ends know the anycast
//! gateway MAC, so the Ethernet header would be 14 bytes of nothing on every packet).

use std::net::IpAddr;
use std::ops::Range;
use std::time::Instant;

use super::{Forward, PortId, Switch};
use crate::dataplane::counters::DropReason;
use crate::dataplane::tunnel::Tunnel;
use crate::ipsec::{NEXT_HEADER_ETHERNET, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6};
use crate::vxlan;
use crate::wire::ethernet::{self, EthernetFrame};

impl Switch {
    /// Encapsulate the Ethernet frame `buf[frame]` of `port` in its network's tunnel, to
    /// `target`, or to every peer of the network when `None` (flooding).
    // hot path
    pub(super) fn encap(&mut self, now: Instant, port: PortId, buf: &mut [u8], frame: Range<usize>, target: Option<IpAddr>) -> Forward<'_> {
        // The one size check of the egress path: against the tunnel toward this peer (or the
        // smallest of the peers when flooding), after routing, so routed traffic between local
        // containers is never limited by the tunnel.
        let limit = self.frame_limit(port, target);
        if frame.len() > limit {
            self.too_big(now, port, &buf[frame], limit);
            return Forward::Nothing;
        }
        self.clamp_mss(port, target, &mut buf[frame.clone()]);
        match self.networks[port].tunnel {
            Tunnel::Vxlan => self.vxlan_out(port, buf, frame, target),
            Tunnel::Esp if self.networks[port].router.is_some() => {
                let v6 = EthernetFrame::new_unchecked(&buf[frame.clone()]).ethertype() == ethernet::EtherType::IPV6;
                let ip = frame.start + ethernet::HEADER_LEN..frame.end;
                self.esp_out(now, port, buf, ip, target, if v6 { NEXT_HEADER_IPV6 } else { NEXT_HEADER_IPV4 })
            }
            Tunnel::Esp => self.esp_out(now, port, buf, frame, target, NEXT_HEADER_ETHERNET),
        }
    }

    /// VXLAN: write the header into the headroom and name the destinations.
    // hot path
    fn vxlan_out(&mut self, port: PortId, buf: &mut [u8], frame: Range<usize>, target: Option<IpAddr>) -> Forward<'_> {
        // The frame was validated at TAP ingress (a router may since have rewritten its MACs):
        // the view only names the fields the hash reads.
        let flow_hash = vxlan::flow_hash(&EthernetFrame::new_unchecked(&buf[frame.clone()]));
        let net = &self.networks[port];
        let dests: &[IpAddr] = match target {
            Some(vtep) => {
                self.unicast_dest[0] = vtep;
                &self.unicast_dest
            }
            None => {
                if net.peers.is_empty() {
                    self.counters.drop(DropReason::NoPeers);
                    return Forward::Nothing;
                }
                self.counters.flooded_frames += 1;
                self.counters.flood_copies += net.peers.len() as u64;
                &net.peers
            }
        };
        self.counters.underlay_tx_packets += dests.len() as u64;
        let payload = vxlan::encap(buf, frame, net.vni);
        Forward::Underlay { payload, dests, flow_hash, tunnel: Tunnel::Vxlan }
    }
}
