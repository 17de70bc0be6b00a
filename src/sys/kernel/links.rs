//! Link set-up around the TAPs: enslave to a bridge, put an address on, bring up — over netlink.

use ipnet::Ipv4Net;

use super::netlink::Netlink;
use crate::sys::SysError;

fn link_err<'a>(op: &'static str, name: &'a str) -> impl FnOnce(super::netlink::NetlinkError) -> SysError + 'a {
    move |e| SysError::Link { op, name: name.to_string(), source: Box::new(e) }
}

/// Configure the link `name` (a TAP, or the host-subnet bridge): enslave it to `bridge`, add
/// `address` if missing, then bring it up.
/// // = ip link set NAME master BRIDGE; ip addr add ADDRESS dev NAME; ip link set NAME up
pub fn configure_link(name: &str, bridge: Option<&str>, address: Option<Ipv4Net>) -> Result<(), SysError> {
    let nl = Netlink::new().map_err(link_err("open netlink", name))?;
    let index = nl.link_index(name).map_err(link_err("find", name))?;
    if let Some(bridge) = bridge {
        let master = nl.link_index(bridge).map_err(link_err("find bridge", bridge))?;
        nl.set_master(index, master).map_err(link_err("enslave to bridge", name))?;
    }
    if let Some(address) = address {
        if !nl.addresses(index).map_err(link_err("list addresses", name))?.contains(&address) {
            nl.add_address(index, address).map_err(link_err("add address", name))?;
        }
    }
    nl.set_up(index).map_err(link_err("set up", name))?;
    Ok(())
}
