//! The container's link: a veth pair from the network's bridge into the container namespace.
//!
//! ```text
//!   container netns: IFNAME (addresses, default routes via the gateways, the network's MTU)
//!        │ veth
//!   host: vx<hash> ── enslaved to the network's bridge (with vxswitch's TAP or the host-subnet gateway)
//! ```
//!
//! The pair is created on the host (`vx<hash>` / `vp<hash>`), the `vp` end moved into the
//! container's namespace and renamed there to `CNI_IFNAME`; if any step fails, the host end is
//! deleted (taking the other end with it), so a failed `ADD` leaves nothing behind. A netlink
//! socket belongs to the namespace it was opened in, so the container side is programmed
//! through a socket opened by a short-lived thread that entered the namespace (`setns(2)`
//! affects only the calling thread; the plugin's main thread never moves).
//!
//! An IPv6 address is added without duplicate address detection (`nodad`): the IPAM never
//! hands one address out twice, and a tentative address would leave the container without IPv6
//! for the second or so DAD takes after the runtime was told it is ready (Kubernetes' bridge
//! plugins and Calico do the same).

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use ipnet::IpNet;
use nix::sched::{setns, CloneFlags};

use crate::cni::spec::{CniError, ErrorCode, Route};
use crate::sys::kernel::netlink::{Ipv4Route, Ipv6Route, Netlink, NetlinkError, RT_TABLE_MAIN};
use crate::wire::ethernet::EthernetAddress;

/// Routing protocol of the routes the plugin installs in containers (`proto boot`, as `ip route
/// add` uses).
const RTPROT_BOOT: u8 = 3;

/// What `ADD` builds.
#[derive(Debug, Clone)]
pub struct Attach<'a> {
    /// The container's namespace path (`CNI_NETNS`).
    pub netns: &'a Path,
    /// The interface name in the container (`CNI_IFNAME`).
    pub ifname: &'a str,
    /// The host end's name.
    pub host_veth: &'a str,
    /// The temporary name of the container end.
    pub temp_peer: &'a str,
    /// The bridge the host end joins.
    pub bridge: &'a str,
    /// MTU of both ends.
    pub mtu: u32,
    /// The container's addresses (one per family).
    pub addresses: &'a [IpNet],
    /// Routes to install in the container.
    pub routes: &'a [Route],
}

/// The MACs of what `ADD` built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// The host end.
    pub host_mac: EthernetAddress,
    /// The container's interface.
    pub container_mac: EthernetAddress,
}

/// What `CHECK` finds in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The interface's MAC.
    pub mac: EthernetAddress,
    /// Its MTU.
    pub mtu: u32,
    /// Its addresses, both families.
    pub addresses: Vec<IpNet>,
    /// The container's routes (main table, both families): destination and next hop.
    pub routes: Vec<(IpNet, Option<IpAddr>)>,
}

fn io_err(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::new(ErrorCode::Io, what, e)
}

fn nl_err(what: &str) -> impl Fn(NetlinkError) -> CniError + '_ {
    move |e| io_err(what, e)
}

/// A netlink socket inside the namespace at `path`.
fn netlink_in(path: &Path) -> Result<Netlink, CniError> {
    let ns = File::open(path).map_err(|e| {
        CniError::new(ErrorCode::UnknownContainer, "cannot open the container's network namespace", format!("{}: {e}", path.display()))
    })?;
    std::thread::spawn(move || -> Result<Netlink, CniError> {
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| io_err("setns into the container's network namespace", e))?;
        Netlink::new().map_err(nl_err("netlink in the container"))
    })
    .join()
    .map_err(|_| io_err("netlink in the container", "thread panicked"))?
}

fn mac_of(nl: &Netlink, index: u32) -> Result<EthernetAddress, CniError> {
    nl.link_mac(index).map_err(nl_err("read MAC"))?.map(EthernetAddress).ok_or_else(|| io_err("read MAC", "link has no Ethernet address"))
}

/// Error 101 if the container already has an interface `ifname` (`ADD` must not take it over).
pub fn ensure_absent(netns: &Path, ifname: &str) -> Result<(), CniError> {
    if netlink_in(netns)?.find_link(ifname).map_err(nl_err("look up the interface"))?.is_some() {
        return Err(CniError::new(
            ErrorCode::InterfaceExists,
            format!("interface {ifname} already exists in the container"),
            netns.display(),
        ));
    }
    Ok(())
}

/// Build the container's link (see the module doc).
pub fn attach(a: &Attach<'_>) -> Result<Attached, CniError> {
    let host = Netlink::new().map_err(nl_err("netlink on the host"))?;
    let container = netlink_in(a.netns)?;
    let bridge = host.find_link(a.bridge).map_err(nl_err("look up the bridge"))?.ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidConfig,
            format!("bridge {} does not exist on this host", a.bridge),
            "the network's bridge must exist",
        )
    })?;
    // A host end left by a crashed earlier attempt for the same container and interface.
    for stale in [a.host_veth, a.temp_peer] {
        if let Some(l) = host.find_link(stale).map_err(nl_err("look up a stale veth"))? {
            host.delete_link(l.index).map_err(nl_err("delete a stale veth"))?;
        }
    }
    let host_index = host.create_veth(a.host_veth, a.temp_peer).map_err(nl_err("create the veth pair"))?;
    let built = plumb(a, &host, &container, host_index, bridge.index);
    if built.is_err() {
        let _ = host.delete_link(host_index);
    }
    built
}

fn plumb(a: &Attach<'_>, host: &Netlink, container: &Netlink, host_index: u32, bridge: u32) -> Result<Attached, CniError> {
    let peer = host.link_index(a.temp_peer).map_err(nl_err("find the container end"))?;
    let ns = File::open(a.netns).map_err(|e| io_err("open the container's network namespace", e))?;
    host.set_netns_fd(peer, ns.as_raw_fd()).map_err(nl_err("move the veth into the container"))?;
    let index = container.link_index(a.temp_peer).map_err(nl_err("find the moved veth"))?;
    container.rename(index, a.ifname).map_err(nl_err("rename the container's interface"))?;
    container.set_mtu(index, a.mtu).map_err(nl_err("set the container's MTU"))?;
    // The host end first: routes via a gateway go onto a link with carrier.
    host.set_mtu(host_index, a.mtu).map_err(nl_err("set the host end's MTU"))?;
    host.set_master(host_index, bridge).map_err(nl_err("enslave the host end to the bridge"))?;
    host.set_up(host_index).map_err(nl_err("bring the host end up"))?;
    container.set_up(index).map_err(nl_err("bring the container's interface up"))?;
    if let Some(lo) = container.find_link("lo").map_err(nl_err("look up lo"))? {
        container.set_up(lo.index).map_err(nl_err("bring lo up"))?;
    }
    for &address in a.addresses {
        match address {
            IpNet::V4(v4) => container.add_address(index, v4).map_err(nl_err("add the container's address"))?,
            IpNet::V6(v6) => container.add_address6_nodad(index, v6).map_err(nl_err("add the container's IPv6 address"))?,
        }
    }
    for r in a.routes {
        let gw = r.gw.ok_or_else(|| CniError::new(ErrorCode::InvalidConfig, "route without a gateway", r.dst))?;
        match (r.dst, gw) {
            (IpNet::V4(dst), IpAddr::V4(gw)) => {
                let route = Ipv4Route { dst, gateway: Some(gw), oif: Some(index), proto: RTPROT_BOOT, onlink: false, table: RT_TABLE_MAIN };
                container.route_add(&route).map_err(nl_err("add a route in the container"))?;
            }
            (IpNet::V6(dst), IpAddr::V6(gw)) => {
                let route = Ipv6Route::via(dst, gw, RTPROT_BOOT).dev(index);
                container.route_add(&route).map_err(nl_err("add an IPv6 route in the container"))?;
            }
            _ => {
                return Err(CniError::new(
                    ErrorCode::InvalidConfig,
                    "route and gateway of different families",
                    format!("{} via {gw}", r.dst),
                ))
            }
        }
    }
    Ok(Attached { host_mac: mac_of(host, host_index)?, container_mac: mac_of(container, index)? })
}

/// Remove the container's link; nothing there (namespace or link already gone) is success.
pub fn detach(netns: Option<&Path>, ifname: &str, host_veth: &str) -> Result<(), CniError> {
    if let Some(path) = netns.filter(|p| p.exists()) {
        if let Ok(container) = netlink_in(path) {
            if let Some(l) = container.find_link(ifname).map_err(nl_err("look up the interface"))? {
                match container.delete_link(l.index) {
                    Err(e) if !e.is_not_found() => return Err(io_err("delete the container's interface", e)),
                    _ => {}
                }
            }
        }
    }
    let host = Netlink::new().map_err(nl_err("netlink on the host"))?;
    if let Some(l) = host.find_link(host_veth).map_err(nl_err("look up the host end"))? {
        match host.delete_link(l.index) {
            Err(e) if !e.is_not_found() => return Err(io_err("delete the host end", e)),
            _ => {}
        }
    }
    Ok(())
}

/// The container's interface `ifname` as it is now; `None` if it does not exist.
pub fn inspect(netns: &Path, ifname: &str) -> Result<Option<Seen>, CniError> {
    let container = netlink_in(netns)?;
    let Some(link) = container.find_link(ifname).map_err(nl_err("look up the interface"))? else { return Ok(None) };
    Ok(Some(Seen {
        mac: mac_of(&container, link.index)?,
        mtu: link.mtu,
        addresses: container.addresses_all(link.index).map_err(nl_err("list addresses"))?,
        routes: {
            let v4 = container.routes_main::<std::net::Ipv4Addr>().map_err(nl_err("list routes"))?;
            let v6 = container.routes_main::<std::net::Ipv6Addr>().map_err(nl_err("list IPv6 routes"))?;
            let v4 = v4.into_iter().map(|r| (IpNet::V4(r.dst), r.gateway.map(IpAddr::V4)));
            v4.chain(v6.into_iter().map(|r| (IpNet::V6(r.dst), r.gateway.map(IpAddr::V6)))).collect()
        },
    }))
}

/// Whether the host end exists and is enslaved to `bridge`.
pub fn host_end_on_bridge(host_veth: &str, bridge: &str) -> Result<bool, CniError> {
    let host = Netlink::new().map_err(nl_err("netlink on the host"))?;
    let (Some(veth), Some(br)) =
        (host.find_link(host_veth).map_err(nl_err("look up the host end"))?, host.find_link(bridge).map_err(nl_err("look up the bridge"))?)
    else {
        return Ok(false);
    };
    Ok(veth.master == Some(br.index) && veth.up)
}
