//! Floating IPs on the simulator: configure them on hosts, make a container appear behind a
//! host (its ARP on the TAP), and read who holds an address.

use std::net::Ipv4Addr;

use super::Sim;
use crate::arp::arp_frame;
use crate::control::FloatingSpec;
use crate::wire::arp::{ArpOperation, ArpRepr};
use crate::wire::ethernet::EthernetAddress;

impl Sim {
    /// Give every running host the floating IPs `specs`.
    pub fn set_floating_everywhere(&mut self, specs: &[FloatingSpec]) {
        let now = self.now;
        for h in self.hosts.iter_mut().filter_map(|h| h.node.as_mut()) {
            h.set_floating(now, specs.to_vec());
        }
        self.run_until(now);
    }

    /// Container `ip` with `mac` sends an ARP request (for an address nobody has) from the TAP
    /// of host `host`, port 0: the host now sees it behind its TAP.
    pub fn container_speaks(&mut self, host: usize, ip: Ipv4Addr, mac: EthernetAddress) {
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(198, 51, 100, 254),
        };
        let frame = arp_frame(&repr, EthernetAddress::BROADCAST, None);
        self.tap_send(host, 0, &frame);
    }

    /// The running hosts that have floating IP `ip` programmed.
    pub fn floating_holders(&self, ip: Ipv4Addr) -> Vec<usize> {
        let held = |n: &crate::node::Node| n.floating_owners().iter().any(|o| o.spec.ip == ip && o.held_here);
        self.hosts.iter().enumerate().filter(|(_, h)| h.node.as_ref().is_some_and(held)).map(|(i, _)| i).collect()
    }
}
