//! The node's side of subnet leases (see [`super::lease`]): on every publish tick each leased
//! network's lease is checked against the gossip records; a change goes into this host's record
//! (the claim), into a routed network's router (the subnet and gateway it serves), and onto a
//! queue the driver drains to persist the lease (and, on a host-subnet network, to move the
//! bridge's gateway address, see `sys::kernel::host_lease`).

use std::time::Instant;

use ipnet::IpNet;

use super::lease::{Lease, LeaseEvent, LeaseSetup, LeaseStats};
use super::{unix_secs, Node};
use crate::control::SubnetClaim;
use crate::dataplane::UNLEASED;
use crate::wire::vxlan::Vni;

impl Node {
    /// Start the leases of `setups`: a kept one is held (router and record) at once.
    pub(super) fn start_leases(&mut self, now: Instant, setups: Vec<LeaseSetup>) {
        self.leases = setups.into_iter().map(|s| Lease::new(s, now)).collect();
        let held: Vec<(Vni, Option<SubnetClaim>)> = self.leases.iter().map(|l| (l.vni(), l.current())).collect();
        for (vni, claim) in held {
            self.hold_lease(now, vni, claim);
        }
    }

    /// The leases of the leased networks.
    pub fn leases(&self) -> &[Lease] {
        &self.leases
    }

    /// The lease of network `vni`, if it leases its subnet.
    pub fn lease(&self, vni: Vni) -> Option<&Lease> {
        self.leases.iter().find(|l| l.vni() == vni)
    }

    /// What the leases of every leased network did, summed.
    pub fn lease_stats(&self) -> LeaseStats {
        self.leases.iter().map(Lease::stats).fold(LeaseStats::default(), |a, b| LeaseStats {
            acquired: a.acquired + b.acquired,
            kept: a.kept + b.kept,
            moved: a.moved + b.moved,
            exhausted: a.exhausted + b.exhausted,
        })
    }

    /// The next lease change, for the driver to persist. Drain it after every `handle_*` call.
    pub fn poll_lease_event(&mut self) -> Option<LeaseEvent> {
        self.lease_events.pop_front()
    }

    /// Check every lease against the records gossip holds now.
    pub(super) fn check_leases(&mut self, now: Instant) {
        let wall = unix_secs(self.wall_clock(now));
        let Some(g) = self.gossip.as_ref() else { return };
        let name = g.membership.local().name.clone();
        let mut events = Vec::new();
        for lease in &mut self.leases {
            events.extend(lease.check(now, wall, &name, g.membership.live_records(), g.membership.held_records()));
        }
        for event in events {
            self.hold_lease(now, event.vni, event.claim);
            self.lease_events.push_back(event);
        }
    }

    /// Serve `claim` on network `vni`: the router's subnet and gateway, and the record's claim.
    fn hold_lease(&mut self, now: Instant, vni: Vni, claim: Option<SubnetClaim>) {
        let (subnet, gateway) = match claim.map(|c| c.net) {
            Some(IpNet::V4(net)) => (net, std::net::Ipv4Addr::from(u32::from(net.network()) + 1)),
            _ => (UNLEASED, UNLEASED.network()),
        };
        self.switch.set_routed_subnet(vni, subnet, gateway);
        let Some(g) = self.gossip.as_mut() else { return };
        let mut record = g.membership.local().clone();
        let Some(net) = record.networks.iter_mut().find(|n| n.vni == vni) else { return };
        // The lease is the IPv4 claim; a configured subnet6 stays claimed next to it.
        let v6 = net.subnets.iter().filter(|s| matches!(s.net, IpNet::V6(_))).copied();
        let subnets: Vec<SubnetClaim> = claim.into_iter().chain(v6).collect();
        if net.subnets != subnets {
            net.subnets = subnets;
            if let Err(e) = g.membership.set_local(now, record) {
                tracing::warn!("gossip record too large, lease not published: {e}");
            }
        }
    }
}
