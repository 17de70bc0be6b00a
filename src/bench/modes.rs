//! The data paths the benchmark compares, as data: one [`ModeSpec`] per mode, in report order.
//!
//! Every mode runs on the same lab shape (two host namespaces joined by bridge `ul` in an
//! underlay namespace, one container per host behind the host bridge `br0`) and is measured
//! between the two endpoints [`Prepared::client`] and [`Prepared::server`]:
//! - **veth baseline**: host to host over the underlay, no containers. The ceiling.
//! - **host-subnet**: per-host container subnets routed over the underlay, no encapsulation
//!   (flannel host-gw). vxswitch's host-subnet driver sets it up (gateway on `br0`, forwarding,
//!   one route per peer subnet) and then stays off the data path.
//! - **kernel vxlan**: Linux `vtep1042` on `br0`.
//! - **vxswitch VXLAN**: the vxswitch daemon with its TAP on `br0`.
//! - **vxswitch VXLAN, IPv6 underlay**: the same over the hosts' IPv6 underlay addresses (70
//!   bytes of overhead instead of 50, so the containers get a 20-byte smaller MTU).
//! - **vxswitch routed**: the vxswitch daemon in routed overlay mode (per-host subnets, anycast
//!   gateway), the overlay counterpart of host-subnet.
//! - **vxswitch ESP**: the same L2 overlay, Ethernet frames in ESP-in-UDP (AES-256-GCM, manual
//!   keys).
//!
//! In every vxswitch mode the containers get the MTU vxswitch gave its TAP by default (read back
//! from `stats`), so the benchmark measures what an operator gets without tuning.
//! - **kernel xfrm ESP**: host-subnet plus kernel IPsec tunnel mode, if the kernel supports it.
//!
//! Adding a mode is one entry in [`MODES`].

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use super::knobs::{self, Knob};
use super::xfrm;
use crate::dataplane::mtu::{Encap, Payload};
use crate::ipsec::Suite;
use crate::testnet::lab::{Addressing, HostKind, Lab, UNDERLAY_MTU};

/// Container MTU of the vxswitch ESP mode: the TAP's default for an AES-256-GCM L2 overlay on the
/// lab's underlay (what the daemon picks; reported in the method text).
pub fn esp_container_mtu() -> u32 {
    let esp = Encap::Esp { suite: Suite::Aes256Gcm, payload: Payload::Ethernet };
    crate::dataplane::mtu::plan(UNDERLAY_MTU, esp).mtu
}

/// A vxswitch daemon configuration for host `i` of a lab.
pub type ConfigFn = fn(&Lab, usize) -> String;

fn vxlan_config(lab: &Lab, i: usize) -> String {
    lab.vxswitch_config(i, "")
}

fn esp_overlay_config(lab: &Lab, i: usize) -> String {
    lab.esp_manual_config(i, false)
}

fn routed_config(lab: &Lab, i: usize) -> String {
    let all: Vec<usize> = (0..lab.hosts.len()).collect();
    lab.subnet_config(i, "routed", &all)
}

fn host_subnet_config(lab: &Lab, i: usize) -> String {
    let all: Vec<usize> = (0..lab.hosts.len()).collect();
    lab.subnet_config(i, "host-subnet", &all)
}

/// How a mode's lab is built.
#[derive(Debug, Clone, Copy)]
pub enum Topology {
    /// Host to host over the underlay veths and bridge, no containers.
    Veth,
    /// Routed per-host container subnets, no encapsulation (vxswitch's host-subnet driver).
    HostSubnet,
    /// Linux kernel vxlan devices on the host bridges.
    KernelVxlan,
    /// vxswitch daemons on a shared-subnet (L2 overlay) lab.
    Vxswitch {
        /// Each host's configuration.
        config: ConfigFn,
        /// One shared overlay subnet, or one subnet per host (routed mode).
        addressing: Addressing,
        /// Over the hosts' IPv6 underlay addresses ([`Lab::build_ipv6_with`]).
        ipv6: bool,
    },
    /// Host-subnet routing plus kernel xfrm ESP tunnel mode (probed first).
    KernelXfrm,
    /// A data path this build does not contain; reported with `why`, never measured.
    NotInThisBuild {
        /// What to tell the reader.
        why: &'static str,
    },
}

/// One benchmarked data path.
#[derive(Debug, Clone, Copy)]
pub struct ModeSpec {
    /// Stable id (JSON, CSV, `--modes`).
    pub id: &'static str,
    /// Human-readable name.
    pub name: &'static str,
    /// How to build it.
    pub topology: Topology,
}

/// Id of the no-encapsulation reference mode.
pub const HOST_SUBNET: &str = "host-subnet";
/// Id of the ceiling mode.
pub const VETH: &str = "veth";
/// Id of the kernel-vxlan mode, the yardstick of vxswitch's own VXLAN.
pub const KERNEL_VXLAN: &str = "kernel-vxlan";

/// Every mode, in report order.
pub const MODES: &[ModeSpec] = &[
    ModeSpec { id: VETH, name: "veth baseline", topology: Topology::Veth },
    ModeSpec { id: HOST_SUBNET, name: "host-subnet", topology: Topology::HostSubnet },
    ModeSpec { id: KERNEL_VXLAN, name: "kernel vxlan", topology: Topology::KernelVxlan },
    ModeSpec {
        id: "vxswitch-vxlan",
        name: "vxswitch VXLAN",
        topology: Topology::Vxswitch { config: vxlan_config, addressing: Addressing::Shared, ipv6: false },
    },
    ModeSpec {
        id: "vxswitch-vxlan6",
        name: "vxswitch VXLAN (IPv6 underlay)",
        topology: Topology::Vxswitch { config: vxlan_config, addressing: Addressing::Shared, ipv6: true },
    },
    ModeSpec {
        id: "vxswitch-routed",
        name: "vxswitch routed",
        topology: Topology::Vxswitch { config: routed_config, addressing: Addressing::PerHost, ipv6: false },
    },
    ModeSpec {
        id: "vxswitch-esp",
        name: "vxswitch ESP",
        topology: Topology::Vxswitch { config: esp_overlay_config, addressing: Addressing::Shared, ipv6: false },
    },
    ModeSpec { id: "kernel-xfrm", name: "kernel xfrm ESP", topology: Topology::KernelXfrm },
];

/// Whether a mode can be measured here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Go ahead.
    Available,
    /// The kernel lacks something the mode needs (with the kernel's answer).
    Unsupported(String),
    /// This build lacks the data path.
    NotAvailable(String),
}

/// Check a mode once, before any repeat.
pub fn availability(spec: &ModeSpec) -> Availability {
    match spec.topology {
        Topology::NotInThisBuild { why } => Availability::NotAvailable(why.to_string()),
        Topology::KernelXfrm => match xfrm::probe() {
            Ok(()) => Availability::Available,
            Err(e) => Availability::Unsupported(format!("unsupported by this kernel: ip xfrm {}: {e}", xfrm::ALGO)),
        },
        _ => Availability::Available,
    }
}

/// One end of the measured path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Namespace the traffic tool runs in.
    pub ns: String,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// A built mode: the lab (deleted on drop) and the two ends of the path.
#[derive(Debug)]
pub struct Prepared {
    /// The lab.
    pub lab: Lab,
    /// Sends the traffic.
    pub client: Endpoint,
    /// Receives it.
    pub server: Endpoint,
    /// vxswitch daemons to charge CPU to (empty for kernel-only modes).
    pub daemon_pids: Vec<u32>,
}

/// Build the lab of `spec` (which must be available), its vxswitch daemons (if any) with `knobs`
/// set in `[underlay]`. `tag` goes into the namespace names.
pub fn prepare(spec: &ModeSpec, knobs: &[Knob], tag: &str, bin: &Path) -> io::Result<Prepared> {
    let bare = [HostKind::Bare, HostKind::Bare];
    let per_host = |mtu: u32| -> io::Result<Lab> {
        let mut lab = Lab::build_with(tag, &bare, 1, bin, Addressing::PerHost)?;
        for i in 0..lab.hosts.len() {
            let config = host_subnet_config(&lab, i);
            lab.start_vxswitch_with(i, &config)?;
        }
        lab.set_container_mtu(mtu)?;
        Ok(lab)
    };
    let lab = match spec.topology {
        Topology::Veth => Lab::build(tag, &bare, 0, bin)?,
        Topology::HostSubnet => per_host(UNDERLAY_MTU)?,
        Topology::KernelVxlan => Lab::build(tag, &[HostKind::KernelVxlan, HostKind::KernelVxlan], 1, bin)?,
        Topology::Vxswitch { config, addressing, ipv6 } => {
            let mut lab =
                if ipv6 { Lab::build_ipv6_with(tag, &bare, 1, bin, addressing)? } else { Lab::build_with(tag, &bare, 1, bin, addressing)? };
            for i in 0..lab.hosts.len() {
                let text = knobs::apply(&config(&lab, i), knobs).map_err(io::Error::other)?;
                lab.start_vxswitch_with(i, &text)?;
            }
            let tap_mtu = lab.stats(0)?["networks"][0]["mtu"].as_u64().ok_or_else(|| io::Error::other("no TAP MTU in stats"))?;
            lab.set_container_mtu(tap_mtu as u32)?;
            lab
        }
        Topology::KernelXfrm => {
            let lab = per_host(xfrm::MTU)?;
            xfrm::setup(&lab)?;
            lab
        }
        Topology::NotInThisBuild { why } => return Err(io::Error::other(why)),
    };
    let ends: Vec<Endpoint> = lab
        .hosts
        .iter()
        .map(|h| match h.containers.first() {
            Some(c) => Endpoint { ns: c.ns.name().to_string(), ip: c.ip },
            None => Endpoint { ns: h.ns.name().to_string(), ip: h.underlay_ip },
        })
        .collect();
    let daemon_pids = (0..lab.hosts.len()).filter_map(|i| lab.daemon_pid(i)).collect();
    Ok(Prepared { client: ends[0].clone(), server: ends[1].clone(), daemon_pids, lab })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_ids_are_unique_and_include_both_references() {
        let ids: std::collections::HashSet<&str> = MODES.iter().map(|m| m.id).collect();
        assert_eq!(ids.len(), MODES.len());
        assert!(ids.contains(VETH) && ids.contains(HOST_SUBNET));
    }

    #[test]
    fn a_data_path_missing_from_the_build_is_reported_not_measured() {
        let spec = ModeSpec { id: "x", name: "x", topology: Topology::NotInThisBuild { why: "not available in this build" } };
        assert_eq!(availability(&spec), Availability::NotAvailable("not available in this build".into()));
        assert!(prepare(&spec, &[], "x", Path::new("/nonexistent")).is_err());
    }
}
