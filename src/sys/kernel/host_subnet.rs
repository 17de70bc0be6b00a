//! Host-subnet networks in the daemon: gateway address on the bridge (and the IPv6 gateway of a
//! dual-stack network, without DAD: it is this host's by configuration), forwarding on (IPv6
//! too when a network has `subnet6`), and the peers' routes of both families reconciled at
//! start and withdrawn at clean shutdown (see [`super::host_routes`]).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use super::host_routes::{self, HostSubnetRoutes};
use super::netlink::Netlink;
use crate::config::{Config, Mode};
use crate::control::ControlUpdate;
use crate::sys::SysError;
use crate::wire::vxlan::Vni;

/// The host-subnet route programmer of a running daemon.
pub struct HostSubnetDriver {
    routes: HostSubnetRoutes,
}

fn err<'a, E: std::error::Error + Send + Sync + 'static>(op: &'static str, name: &'a str) -> impl FnOnce(E) -> SysError + 'a {
    move |e| SysError::Link { op, name: name.to_string(), source: Box::new(e) }
}

impl HostSubnetDriver {
    /// Set up every host-subnet network of `config`; `None` when there is none.
    pub fn start(config: &Config) -> Result<Option<Self>, SysError> {
        let nets: Vec<_> = config.networks.iter().filter(|n| n.mode == Mode::HostSubnet).collect();
        if nets.is_empty() {
            return Ok(None);
        }
        enable_forwarding(super::host_state::IP_FORWARD, "net.ipv4.ip_forward")?;
        if nets.iter().any(|n| n.host_subnet6.is_some()) {
            enable_forwarding(super::host_state::IP6_FORWARD, "net.ipv6.conf.all.forwarding")?;
        }
        let nl = Netlink::new().map_err(err("open netlink", "host-subnet"))?;
        let mut desired: Vec<(IpNet, IpAddr)> = Vec::new();
        for net in &nets {
            // A leased subnet's gateway goes on the bridge once leased (see `host_lease`).
            if let (Some(hs), Some(bridge)) = (net.host_subnet.as_ref(), &net.bridge) {
                // = ip addr add GATEWAY/PREFIX dev BRIDGE; ip link set BRIDGE up
                let gw = Ipv4Net::new(hs.gateway, hs.subnet.prefix_len()).expect("valid prefix");
                super::links::configure_link(bridge, None, Some(gw))?;
            }
            if let (Some(gw6), Some(bridge)) = (super::host_state::gateway6_of(net), &net.bridge) {
                // = ip -6 addr add GATEWAY6/PREFIX dev BRIDGE nodad
                let index = nl.link_index(bridge).map_err(err("find", bridge))?;
                if !nl.addresses_all(index).map_err(err("list addresses", bridge))?.contains(&IpNet::V6(gw6)) {
                    nl.add_address6_nodad(index, gw6).map_err(err("add IPv6 gateway", bridge))?;
                }
            }
            for update in net.static_updates() {
                if let ControlUpdate::RouteAdd { subnet, via, next_hop, .. } = update {
                    desired.extend(host_routes::gateway_for(&subnet, via, next_hop).map(|gw| (subnet, gw)));
                }
            }
        }
        let mut routes = HostSubnetRoutes::new(nl);
        let report = routes.reconcile(&desired).map_err(err("reconcile routes", "host-subnet"))?;
        tracing::info!(?report, "host-subnet routes reconciled");
        Ok(Some(HostSubnetDriver { routes }))
    }

    /// Apply a control-plane update (route add/remove, peer down).
    pub fn apply(&mut self, update: &ControlUpdate) {
        if let Err(e) = self.routes.apply(update) {
            tracing::warn!("host-subnet: {e}");
        }
    }

    /// Remove every route this daemon installed (clean shutdown).
    pub fn withdraw_all(mut self) {
        let subnets: Vec<IpNet> = self.routes.routes().keys().copied().collect();
        for subnet in subnets {
            self.apply(&ControlUpdate::RouteRemove { vni: Vni::new_const(0), subnet });
        }
    }
}

/// `sysctl -w net.ipv4.ip_forward=1` (or its IPv6 twin at `path`): host-subnet hosts route
/// between their bridge and the underlay.
fn enable_forwarding(path: &str, name: &'static str) -> Result<(), SysError> {
    let on = std::fs::read_to_string(path).map(|v| v.trim() == "1").unwrap_or(false);
    if !on {
        std::fs::write(path, "1").map_err(|source| SysError::Os { op: name, source })?;
        tracing::info!("enabled {name} for host-subnet routing");
    }
    Ok(())
}
