//! Host-subnet networks that lease their subnet from a cluster range (see
//! [`crate::node::lease`]): the gateway address on the bridge follows the lease.
//!
//! Without a lease the bridge has no gateway address. When the node reports a lease (kept from an
//! earlier run at start, or newly leased, or moved after a lost conflict) the new gateway
//! (`first address/prefix`) is added and the old one deleted. Like every change that outlives
//! the daemon, the address is recorded in the host state file before it is made and removed from
//! the record after it is gone, so a crash leaves nothing the next start does not clean up (the
//! next start removes it, and the kept lease puts it back). Routes to the other hosts' leases need
//! nothing here: they are subnet claims in gossip like configured ones, and the host-subnet route
//! programmer installs them.

use ipnet::Ipv4Net;

use super::host_state::HostState;
use super::links::configure_link;
use super::netlink::Netlink;
use crate::config::{Config, Mode};
use crate::sys::SysError;
use crate::wire::vxlan::Vni;

/// The gateway address of `subnet` as the bridge carries it: the first address, with the prefix.
pub fn gateway_of(subnet: Ipv4Net) -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::from(u32::from(subnet.network()) + 1), subnet.prefix_len()).expect("prefix of a subnet")
}

/// Move the gateway of host-subnet network `vni` (when it has a bridge) from `previous` to
/// `current`; nothing for other networks.
pub fn follow(
    config: &Config,
    state: &mut HostState,
    vni: Vni,
    previous: Option<Ipv4Net>,
    current: Option<Ipv4Net>,
) -> Result<(), SysError> {
    let Some(net) = config.networks.iter().find(|n| n.vni == vni && n.mode == Mode::HostSubnet && n.lease.is_some()) else {
        return Ok(());
    };
    let Some(bridge) = net.bridge.clone() else { return Ok(()) };
    let old = previous.map(gateway_of).filter(|o| Some(*o) != current.map(gateway_of));
    let mut changes = state.recorded().clone();
    if let Some(new) = current.map(gateway_of) {
        if !changes.addresses.contains(&(bridge.clone(), new)) {
            changes.addresses.push((bridge.clone(), new));
            state.record(changes.clone())?;
        }
        // = ip addr add GATEWAY/PREFIX dev BRIDGE; ip link set BRIDGE up
        configure_link(&bridge, None, Some(new))?;
        tracing::info!(%vni, %bridge, gateway = %new, "host-subnet gateway follows the lease");
    }
    if let Some(old) = old {
        // = ip addr del OLD dev BRIDGE
        let nl = Netlink::new().map_err(|e| SysError::Link { op: "open netlink", name: bridge.clone(), source: Box::new(e) })?;
        if let Some(link) = nl.find_link(&bridge).map_err(|e| SysError::Link { op: "find", name: bridge.clone(), source: Box::new(e) })? {
            nl.delete_address(link.index, old).map_err(|e| SysError::Link {
                op: "delete address",
                name: bridge.clone(),
                source: Box::new(e),
            })?;
        }
        changes.addresses.retain(|a| *a != (bridge.clone(), old));
        state.record(changes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_the_first_address_with_the_prefix() {
        assert_eq!(gateway_of("10.42.7.0/24".parse().unwrap()).to_string(), "10.42.7.1/24");
        assert_eq!(gateway_of("10.42.7.64/26".parse().unwrap()).to_string(), "10.42.7.65/26");
    }
}
