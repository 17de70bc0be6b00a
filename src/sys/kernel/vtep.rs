//! Kernel offload mode (`mode = "kernel"`): a Linux kernel VXLAN device carries the overlay and
//! vxswitch only programs it from the control plane.
//!
//! # The device
//! One device per kernel-mode network, created over netlink exactly as
//! `ip link add vtep1042 type vxlan id 1042 dstport 4789 local UNDERLAY_IP dev UNDERLAY_DEV nolearning proxy`
//! would: `dev` is the link that holds the underlay address, the MTU is the network's `mtu`
//! (underlay MTU − 50 by default), it is enslaved to `bridge` when one is configured and brought
//! up. The kernel then encapsulates and decapsulates every frame; no packet crosses userspace.
//!
//! # Programming it from the same `ControlUpdate` stream
//! The device learns nothing by itself (`nolearning`): everything comes from the control plane,
//! static peers through [`Network::static_updates`] and gossip through the daemon's callback.
//!
//! | update | kernel state |
//! |---|---|
//! | `PeerUp` | `bridge fdb append 00:00:00:00:00:00 dev vtep dst PEER` (flood list) |
//! | `PeerDown` | delete that flood entry and every unicast entry pointing at PEER |
//! | `StaticFdb` | `bridge fdb replace MAC dev vtep dst PEER` |
//! | `StaticFdbRemove` | `bridge fdb del MAC dev vtep` |
//! | `ArpBinding` | `ip neigh replace IP lladdr MAC dev vtep nud permanent` |
//! | `ArpUnbind` | `ip neigh del IP dev vtep` |
//!
//! Routes and ESP keys do not apply to a kernel L2 device and are ignored. The decision "which
//! netlink requests does this update need, given what is programmed" is the pure function
//! [`Programmed::plan`], tested without root; [`VtepDriver`] carries the actions out and
//! records each one that the kernel accepted, so its view never claims a failed entry.
//!
//! # Proxy ARP
//! With `proxy` the kernel answers ARP requests from the device's neighbour table (the entries
//! `ArpBinding` installs) and *consumes every ARP frame* it would otherwise tunnel, answered or
//! not: ARP never crosses the overlay. That is the kernel's equivalent of `unknown_arp = "drop"`,
//! which is therefore the default of kernel mode: every remote container must be bound (gossip
//! or `arp = [...]`), and the peers must know this host's containers as well. With
//! `unknown_arp = "flood"` the device is created without `proxy` and ARP is flooded to the peers
//! like any broadcast (the neighbour entries are still installed; they are then unused).
//!
//! # Crash safety
//! A daemon killed with SIGKILL leaves its device behind, with entries nobody withdraws. On start
//! an existing link with the device's name is therefore deleted and created afresh, so the kernel
//! holds exactly what this run programs (the recorded [`Programmed`] view always mirrors the
//! device). On clean shutdown (SIGTERM/SIGINT), and whenever the driver is dropped (start-up
//! failing half way, an error leaving the event loop), the device is deleted, which removes its
//! FDB and neighbour entries with it.
//!
//! [`Network::static_updates`]: crate::config::Network::static_updates

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::netlink::{Netlink, NetlinkError, VxlanSpec};
use crate::arp::UnknownArp;
use crate::config::{Config, Mode, Network};
use crate::control::ControlUpdate;
use crate::sys::SysError;
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// One netlink request decided by [`Programmed::plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// `bridge fdb append 00:00:00:00:00:00 dev DEV dst PEER`.
    FloodAdd(IpAddr),
    /// `bridge fdb del 00:00:00:00:00:00 dev DEV dst PEER`.
    FloodDel(IpAddr),
    /// `bridge fdb replace MAC dev DEV dst PEER`.
    FdbReplace {
        /// The container MAC.
        mac: EthernetAddress,
        /// The host it lives behind.
        peer: IpAddr,
    },
    /// `bridge fdb del MAC dev DEV`.
    FdbDel(EthernetAddress),
    /// `ip neigh replace IP lladdr MAC dev DEV nud permanent`.
    NeighReplace {
        /// The container address.
        ip: Ipv4Addr,
        /// Its MAC.
        mac: EthernetAddress,
    },
    /// `ip neigh del IP dev DEV`.
    NeighDel(Ipv4Addr),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::FloodAdd(p) => write!(f, "fdb append 00:00:00:00:00:00 dst {p}"),
            Action::FloodDel(p) => write!(f, "fdb del 00:00:00:00:00:00 dst {p}"),
            Action::FdbReplace { mac, peer } => write!(f, "fdb replace {mac} dst {peer}"),
            Action::FdbDel(mac) => write!(f, "fdb del {mac}"),
            Action::NeighReplace { ip, mac } => write!(f, "neigh replace {ip} lladdr {mac} nud permanent"),
            Action::NeighDel(ip) => write!(f, "neigh del {ip}"),
        }
    }
}

/// What vxswitch has programmed on one kernel VXLAN device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Programmed {
    /// Flood list: remotes under the all-zero MAC.
    pub flood: BTreeSet<IpAddr>,
    /// Unicast FDB: container MAC -> remote.
    pub fdb: BTreeMap<EthernetAddress, IpAddr>,
    /// Neighbour (ARP) entries: container IP -> MAC.
    pub neigh: BTreeMap<Ipv4Addr, EthernetAddress>,
}

impl Programmed {
    /// The requests that bring the device from this state to the one `update` asks for.
    /// Only updates of the device's own network may be passed; anything already in place
    /// needs nothing, and withdrawals of unknown entries need nothing either (the device was
    /// created empty, so this view is complete).
    pub fn plan(&self, update: &ControlUpdate) -> Vec<Action> {
        match *update {
            ControlUpdate::PeerUp { ref peer, .. } if !self.flood.contains(&peer.underlay) => {
                vec![Action::FloodAdd(peer.underlay)]
            }
            ControlUpdate::PeerDown { underlay, .. } => {
                let mut out: Vec<Action> = self.fdb.iter().filter(|(_, p)| **p == underlay).map(|(mac, _)| Action::FdbDel(*mac)).collect();
                if self.flood.contains(&underlay) {
                    out.push(Action::FloodDel(underlay));
                }
                out
            }
            // The all-zero MAC is the flood list and a group MAC is no container: neither is
            // a unicast FDB entry.
            ControlUpdate::StaticFdb { mac, underlay, .. }
                if mac.is_unicast() && mac != EthernetAddress::default() && self.fdb.get(&mac) != Some(&underlay) =>
            {
                vec![Action::FdbReplace { mac, peer: underlay }]
            }
            ControlUpdate::StaticFdbRemove { mac, .. } if self.fdb.contains_key(&mac) => vec![Action::FdbDel(mac)],
            // IPv4 only: the kernel device's ARP suppression; IPv6 bindings are not programmed.
            ControlUpdate::ArpBinding { ip: IpAddr::V4(ip), mac, .. } if self.neigh.get(&ip) != Some(&mac) => {
                vec![Action::NeighReplace { ip, mac }]
            }
            ControlUpdate::ArpUnbind { ip: IpAddr::V4(ip), .. } if self.neigh.contains_key(&ip) => vec![Action::NeighDel(ip)],
            _ => Vec::new(),
        }
    }

    /// Record that the kernel accepted `action`.
    pub fn record(&mut self, action: &Action) {
        match *action {
            Action::FloodAdd(p) => {
                self.flood.insert(p);
            }
            Action::FloodDel(p) => {
                self.flood.remove(&p);
            }
            Action::FdbReplace { mac, peer } => {
                self.fdb.insert(mac, peer);
            }
            Action::FdbDel(mac) => {
                self.fdb.remove(&mac);
            }
            Action::NeighReplace { ip, mac } => {
                self.neigh.insert(ip, mac);
            }
            Action::NeighDel(ip) => {
                self.neigh.remove(&ip);
            }
        }
    }
}

/// The device a kernel-mode network asks for, given the underlay device's index.
pub fn device_spec(config: &Config, net: &Network, underlay_dev: Option<u32>) -> VxlanSpec {
    let mut spec = VxlanSpec::new(net.vni.get(), config.underlay.address, underlay_dev);
    spec.name = net.device.clone();
    spec.dstport = config.underlay.port;
    spec.proxy = net.unknown_arp == UnknownArp::Drop;
    spec
}

/// The networks of `config` in kernel mode.
pub fn kernel_networks(config: &Config) -> impl Iterator<Item = &Network> {
    config.networks.iter().filter(|n| n.mode == Mode::Kernel)
}

/// One device as `vxswitch stats` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    /// The network.
    pub vni: Vni,
    /// Device name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Whether the kernel answers ARP from the neighbour table.
    pub proxy: bool,
    /// The entries programmed on it.
    pub programmed: Programmed,
    /// Netlink requests the kernel refused since start.
    pub errors: u64,
}

struct Device {
    vni: Vni,
    name: String,
    index: u32,
    proxy: bool,
    programmed: Programmed,
    errors: u64,
}

/// The kernel VXLAN devices of a running daemon and the entries programmed on them.
pub struct VtepDriver {
    nl: Netlink,
    devices: Vec<Device>,
}

fn link_err<'a>(op: &'static str, name: &'a str) -> impl FnOnce(NetlinkError) -> SysError + 'a {
    move |e| SysError::Link { op, name: name.to_string(), source: Box::new(e) }
}

impl VtepDriver {
    /// Create (or re-create) the device of every kernel-mode network of `config` and program the
    /// static configuration into it; `None` when no network is in kernel mode.
    pub fn start(config: &Config) -> Result<Option<Self>, SysError> {
        if kernel_networks(config).next().is_none() {
            return Ok(None);
        }
        let nl = Netlink::new().map_err(link_err("open netlink", "kernel offload"))?;
        let local = config.underlay.address.to_string();
        let dev = nl.address_owner(config.underlay.address).map_err(link_err("find underlay device", &local))?;
        let Some(dev) = dev else {
            return Err(SysError::Link {
                op: "find underlay device",
                name: local.clone(),
                source: format!("no link holds the underlay address {local}").into(),
            });
        };
        // From here on, dropping the driver deletes what it created.
        let mut driver = VtepDriver { nl, devices: Vec::new() };
        for net in kernel_networks(config) {
            driver.create(config, net, dev)?;
        }
        Ok(Some(driver))
    }

    fn create(&mut self, config: &Config, net: &Network, dev: u32) -> Result<(), SysError> {
        let spec = device_spec(config, net, Some(dev));
        let name = spec.name.as_str();
        // = ip link del vtep1042 (a leftover of a run that did not shut down cleanly)
        // Only a VXLAN device with this network's VNI can be ours; anything else with that name
        // (a NIC named in `device`, another tool's tunnel) is left alone and start fails.
        if let Some(old) = self.nl.find_link(name).map_err(link_err("look up", name))? {
            if old.vxlan_id != Some(net.vni.get()) {
                let what = old.vxlan_id.map_or("not a VXLAN device".to_string(), |id| format!("a VXLAN device with VNI {id}"));
                return Err(SysError::Link {
                    op: "create kernel VXLAN device",
                    name: name.to_string(),
                    source: format!("a link named {name} exists and is {what}, not vxswitch's VNI {}; refusing to delete it", net.vni)
                        .into(),
                });
            }
            self.nl.delete_link(old.index).map_err(link_err("delete leftover", name))?;
            tracing::warn!(device = name, "deleted a leftover device of an earlier run");
        }
        let index = self.nl.create_vxlan(&spec).map_err(link_err("create kernel VXLAN device", name))?;
        self.devices.push(Device {
            vni: net.vni,
            name: name.to_string(),
            index,
            proxy: spec.proxy,
            programmed: Programmed::default(),
            errors: 0,
        });
        // = ip link set vtep1042 mtu MTU
        self.nl.set_mtu(index, net.mtu).map_err(link_err("set MTU", name))?;
        // = ip link set vtep1042 master BRIDGE; ip addr add ADDRESS dev vtep1042; ip link set vtep1042 up
        super::links::configure_link(name, net.bridge.as_deref(), net.address)?;
        tracing::info!(device = name, vni = %net.vni, mtu = net.mtu, proxy = spec.proxy, underlay_dev = dev, "kernel VXLAN device up");
        for update in net.static_updates() {
            self.apply(&update);
        }
        Ok(())
    }

    /// Apply one control-plane update to the device of its network (others are ignored).
    pub fn apply(&mut self, update: &ControlUpdate) {
        let Some(vni) = update.vni() else { return };
        let Some(device) = self.devices.iter_mut().find(|d| d.vni == vni) else { return };
        for action in device.programmed.plan(update) {
            match execute(&self.nl, device.index, &action) {
                Ok(()) => device.programmed.record(&action),
                Err(e) => {
                    device.errors += 1;
                    tracing::warn!(device = %device.name, "{action}: {e}");
                }
            }
        }
    }

    /// The devices and their entries, for `vxswitch stats`.
    pub fn status(&self) -> Vec<DeviceStatus> {
        self.devices
            .iter()
            .map(|d| DeviceStatus {
                vni: d.vni,
                name: d.name.clone(),
                index: d.index,
                proxy: d.proxy,
                programmed: d.programmed.clone(),
                errors: d.errors,
            })
            .collect()
    }

    /// Delete every device (clean shutdown); its FDB and neighbour entries go with it.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for VtepDriver {
    fn drop(&mut self) {
        for d in self.devices.drain(..) {
            // = ip link del vtep1042
            match self.nl.delete_link(d.index) {
                Ok(()) => tracing::info!(device = %d.name, "kernel VXLAN device deleted"),
                Err(e) => tracing::warn!(device = %d.name, "could not delete: {e}"),
            }
        }
    }
}

/// Carry out one planned action on device `index`.
fn execute(nl: &Netlink, index: u32, action: &Action) -> Result<(), NetlinkError> {
    match *action {
        Action::FloodAdd(peer) => nl.fdb_append_flood(index, peer),
        Action::FloodDel(peer) => nl.fdb_delete(index, [0; 6], Some(peer)),
        Action::FdbReplace { mac, peer } => nl.fdb_replace(index, mac.0, peer),
        Action::FdbDel(mac) => nl.fdb_delete(index, mac.0, None),
        Action::NeighReplace { ip, mac } => nl.neigh_replace(index, ip, mac.0),
        Action::NeighDel(ip) => nl.neigh_delete(index, ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::PeerInfo;

    const VNI: Vni = Vni::new_const(1042);

    fn ip(last: u8) -> IpAddr {
        Ipv4Addr::new(198, 18, 0, last).into()
    }

    fn mac(last: u8) -> EthernetAddress {
        EthernetAddress([0x02, 0, 0, 0, 0, last])
    }

    fn peer_up(last: u8) -> ControlUpdate {
        ControlUpdate::PeerUp { vni: VNI, peer: PeerInfo { underlay: ip(last), vtep_mac: None } }
    }

    /// Plans `update` against `state` and records every action as if the kernel accepted it.
    fn step(state: &mut Programmed, update: ControlUpdate) -> Vec<Action> {
        let actions = state.plan(&update);
        for a in &actions {
            state.record(a);
        }
        actions
    }

    #[test]
    fn peer_up_appends_a_flood_entry_once() {
        let mut s = Programmed::default();
        assert_eq!(step(&mut s, peer_up(2)), vec![Action::FloodAdd(ip(2))]);
        assert_eq!(step(&mut s, peer_up(2)), vec![], "already in the flood list");
        assert_eq!(step(&mut s, peer_up(3)), vec![Action::FloodAdd(ip(3))]);
        assert_eq!(s.flood.iter().copied().collect::<Vec<_>>(), vec![ip(2), ip(3)]);
    }

    #[test]
    fn peer_down_removes_its_flood_entry_and_every_unicast_entry_towards_it() {
        let mut s = Programmed::default();
        step(&mut s, peer_up(2));
        step(&mut s, peer_up(3));
        step(&mut s, ControlUpdate::StaticFdb { vni: VNI, mac: mac(1), underlay: ip(2) });
        step(&mut s, ControlUpdate::StaticFdb { vni: VNI, mac: mac(2), underlay: ip(3) });
        step(&mut s, ControlUpdate::StaticFdb { vni: VNI, mac: mac(3), underlay: ip(2) });
        let actions = step(&mut s, ControlUpdate::PeerDown { vni: VNI, underlay: ip(2) });
        assert_eq!(actions, vec![Action::FdbDel(mac(1)), Action::FdbDel(mac(3)), Action::FloodDel(ip(2))]);
        assert_eq!(s.flood.iter().copied().collect::<Vec<_>>(), vec![ip(3)]);
        assert_eq!(s.fdb.iter().map(|(m, p)| (*m, *p)).collect::<Vec<_>>(), vec![(mac(2), ip(3))]);
        assert_eq!(step(&mut s, ControlUpdate::PeerDown { vni: VNI, underlay: ip(2) }), vec![], "nothing left for it");
    }

    #[test]
    fn static_fdb_replaces_moves_and_removes() {
        let mut s = Programmed::default();
        let add = |m, p| ControlUpdate::StaticFdb { vni: VNI, mac: m, underlay: p };
        assert_eq!(step(&mut s, add(mac(1), ip(2))), vec![Action::FdbReplace { mac: mac(1), peer: ip(2) }]);
        assert_eq!(step(&mut s, add(mac(1), ip(2))), vec![], "unchanged");
        assert_eq!(step(&mut s, add(mac(1), ip(3))), vec![Action::FdbReplace { mac: mac(1), peer: ip(3) }], "moved");
        let remove = ControlUpdate::StaticFdbRemove { vni: VNI, mac: mac(1) };
        assert_eq!(step(&mut s, remove.clone()), vec![Action::FdbDel(mac(1))]);
        assert_eq!(step(&mut s, remove), vec![], "already gone");
        assert!(s.fdb.is_empty());
    }

    #[test]
    fn flood_and_group_macs_are_never_unicast_fdb_entries() {
        let s = Programmed::default();
        for m in [EthernetAddress::default(), EthernetAddress::BROADCAST, EthernetAddress([0x01, 0, 0x5e, 0, 0, 1])] {
            assert_eq!(s.plan(&ControlUpdate::StaticFdb { vni: VNI, mac: m, underlay: ip(2) }), vec![], "{m}");
        }
    }

    #[test]
    fn arp_bindings_become_permanent_neighbours() {
        let mut s = Programmed::default();
        let c = Ipv4Addr::new(192, 0, 2, 21);
        let bind = |m| ControlUpdate::ArpBinding { vni: VNI, ip: c.into(), mac: m };
        assert_eq!(step(&mut s, bind(mac(1))), vec![Action::NeighReplace { ip: c, mac: mac(1) }]);
        assert_eq!(step(&mut s, bind(mac(1))), vec![]);
        assert_eq!(step(&mut s, bind(mac(2))), vec![Action::NeighReplace { ip: c, mac: mac(2) }]);
        assert_eq!(step(&mut s, ControlUpdate::ArpUnbind { vni: VNI, ip: c.into() }), vec![Action::NeighDel(c)]);
        assert_eq!(step(&mut s, ControlUpdate::ArpUnbind { vni: VNI, ip: c.into() }), vec![]);
        assert!(s.neigh.is_empty());
    }

    #[test]
    fn routes_and_keys_do_not_touch_the_device() {
        let s = Programmed::default();
        let subnet = "198.19.1.0/24".parse().unwrap();
        assert_eq!(s.plan(&ControlUpdate::RouteAdd { vni: VNI, subnet, via: ip(2), next_hop: Some(ip(2)) }), vec![]);
        assert_eq!(s.plan(&ControlUpdate::RouteRemove { vni: VNI, subnet }), vec![]);
        let key = ControlUpdate::EspKey { underlay: ip(2), public_key: [7; 32], epoch: 1 };
        assert_eq!(s.plan(&key), vec![]);
        assert_eq!(key.vni(), None);
        assert_eq!(peer_up(2).vni(), Some(VNI));
    }

    #[test]
    fn actions_read_like_iproute2() {
        assert_eq!(Action::FloodAdd(ip(2)).to_string(), "fdb append 00:00:00:00:00:00 dst 198.18.0.2");
        assert_eq!(
            Action::NeighReplace { ip: Ipv4Addr::new(192, 0, 2, 21), mac: mac(9) }.to_string(),
            "neigh replace 192.0.2.21 lladdr 02:00:00:00:00:09 nud permanent"
        );
    }

    const KERNEL: &str = r#"
control_socket = "/run/vxswitch/k.sock"

[underlay]
address = "198.18.0.1"

[[network]]
vni = 1042
mode = "kernel"
bridge = "br0"
peers = ["198.18.0.2", "198.18.0.3"]
arp = [{ ip = "192.0.2.21", mac = "02:00:00:00:00:21" }]
"#;

    #[test]
    fn kernel_network_config_defaults_to_vtep_vni_proxy_and_mtu_minus_50() {
        let c = Config::parse(KERNEL).unwrap();
        let net = &c.networks[0];
        assert_eq!(net.mode, Mode::Kernel);
        assert_eq!(net.device, "vtep1042");
        assert_eq!(net.tap, "");
        assert_eq!(net.mtu, 1450);
        let spec = device_spec(&c, net, Some(3));
        assert_eq!(
            (spec.name.as_str(), spec.vni, spec.dstport, spec.local, spec.dev, spec.learning, spec.proxy),
            ("vtep1042", 1042, 4789, IpAddr::from(Ipv4Addr::new(198, 18, 0, 1)), Some(3), false, true)
        );
        // The static configuration is the same update stream gossip produces.
        let mut s = Programmed::default();
        let actions: Vec<Action> = net.static_updates().iter().flat_map(|u| step(&mut s, u.clone())).collect();
        assert_eq!(
            actions,
            vec![
                Action::FloodAdd(ip(2)),
                Action::FloodAdd(ip(3)),
                Action::NeighReplace { ip: Ipv4Addr::new(192, 0, 2, 21), mac: EthernetAddress([2, 0, 0, 0, 0, 0x21]) }
            ]
        );
    }

    #[test]
    fn kernel_network_device_name_port_and_arp_policy_are_configurable() {
        let text = KERNEL
            .replace("mode = \"kernel\"", "mode = \"kernel\"\ndevice = \"flannel.1\"\nunknown_arp = \"flood\"\nmtu = 1400")
            .replace("address = \"198.18.0.1\"", "address = \"198.18.0.1\"\nport = 8472");
        let c = Config::parse(&text).unwrap();
        let spec = device_spec(&c, &c.networks[0], None);
        assert_eq!((spec.name.as_str(), spec.dstport, spec.proxy), ("flannel.1", 8472, false));
        assert_eq!(c.networks[0].mtu, 1400);
    }

    #[test]
    fn kernel_network_config_rejections() {
        let cases = [
            ("mode = \"kernel\"", "mode = \"kernel\"\ntap = \"vxs1\"", "network[0].tap", "no TAP"),
            ("mode = \"kernel\"", "mode = \"kernel\"\ndevice = \"a-very-long-name0\"", "network[0].device", "not a valid interface name"),
            ("mode = \"kernel\"", "mode = \"kernel\"\nencryption = \"esp\"", "network[0].encryption", "cleartext"),
            ("mode = \"kernel\"", "mode = \"kernel\"\nsubnet = \"198.19.1.0/24\"", "network[0].subnet", "only routed"),
            ("mode = \"kernel\"", "mode = \"overlay\"\ntap = \"vxs1\"\ndevice = \"vtep9\"", "network[0].device", "only kernel-mode"),
        ];
        for (from, to, key, why) in cases {
            let e = Config::parse(&KERNEL.replace(from, to)).expect_err(to);
            assert_eq!(e.key, key, "{e}");
            assert!(e.reason.contains(why), "{e}");
        }
        // The kernel device and the userspace switch would both need the VXLAN port.
        let mixed = format!("{KERNEL}\n[[network]]\nvni = 7\ntap = \"vxs7\"\n");
        let e = Config::parse(&mixed).unwrap_err();
        assert!(e.reason.contains("owns UDP port 4789"), "{e}");
        // Two kernel networks cannot share a device name.
        let twice = format!("{KERNEL}\n[[network]]\nvni = 7\nmode = \"kernel\"\ndevice = \"vtep1042\"\n");
        assert!(Config::parse(&twice).unwrap_err().reason.contains("used twice"));
    }
}
