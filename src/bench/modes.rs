//! The data paths the benchmark compares, as data: one [`ModeSpec`] per mode, in report order.
//!
//! Every mode runs on the same lab shape (two host namespaces joined by bridge `ul` in an
//! underlay namespace, one container per host behind the host bridge `br0`) and is measured
//! between the two endpoints [`Prepared::client`] and [`Prepared::server`]:
//! - **veth baseline**: host to host over the underlay, no containers. The ceiling.
//! - **host-subnet**: per-host container subnets routed over the underlay, no encapsulation
//!   (flannel host-gw). The routes are programmed with `ip route replace` by
//!   [`Lab::use_host_subnet`] so the figure measures the kernel's routed path alone, independent
//!   of which agent programs the routes; vxswitch's own host-subnet driver installs the same
//!   routes through netlink.
//! - **kernel vxlan**: Linux `vtep1042` on `br0`.
//! - **vxswitch VXLAN**: the vxswitch daemon with its TAP on `br0`.
//! - **vxswitch ESP**: the vxswitch daemon with ESP-in-UDP; a [`Topology::Vxswitch`] entry with
//!   the ESP settings once this build's configuration accepts them.
//! - **kernel xfrm ESP**: host-subnet plus kernel IPsec tunnel mode, if the kernel supports it.
//!
//! Adding a mode is one entry in [`MODES`].

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use super::xfrm;
use crate::testnet::lab::{HostKind, Lab, UNDERLAY_MTU};

/// How a mode's lab is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Host to host over the underlay veths and bridge, no containers.
    Veth,
    /// Routed per-host container subnets, no encapsulation.
    HostSubnet,
    /// Linux kernel vxlan devices on the host bridges.
    KernelVxlan,
    /// vxswitch daemons; `extra_config` is appended to each host's `[[network]]` table.
    Vxswitch {
        /// Extra `[[network]]` settings (empty for plain VXLAN).
        extra_config: &'static str,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Every mode, in report order.
pub const MODES: &[ModeSpec] = &[
    ModeSpec { id: VETH, name: "veth baseline", topology: Topology::Veth },
    ModeSpec { id: HOST_SUBNET, name: "host-subnet", topology: Topology::HostSubnet },
    ModeSpec { id: "kernel-vxlan", name: "kernel vxlan", topology: Topology::KernelVxlan },
    ModeSpec { id: "vxswitch-vxlan", name: "vxswitch VXLAN", topology: Topology::Vxswitch { extra_config: "" } },
    ModeSpec {
        id: "vxswitch-esp",
        name: "vxswitch ESP",
        topology: Topology::NotInThisBuild { why: "not available in this build (no ESP dataplane compiled in)" },
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

/// Build the lab of `spec` (which must be available). `tag` goes into the namespace names.
pub fn prepare(spec: &ModeSpec, tag: &str, bin: &Path) -> io::Result<Prepared> {
    let bare = [HostKind::Bare, HostKind::Bare];
    let mut lab = match spec.topology {
        Topology::Veth => Lab::build(tag, &bare, 0, bin)?,
        Topology::HostSubnet => {
            let mut lab = Lab::build(tag, &bare, 1, bin)?;
            lab.use_host_subnet(UNDERLAY_MTU)?;
            lab
        }
        Topology::KernelVxlan => Lab::build(tag, &[HostKind::KernelVxlan, HostKind::KernelVxlan], 1, bin)?,
        Topology::Vxswitch { .. } => Lab::build(tag, &bare, 1, bin)?,
        Topology::KernelXfrm => {
            let mut lab = Lab::build(tag, &bare, 1, bin)?;
            lab.use_host_subnet(xfrm::MTU)?;
            xfrm::setup(&lab)?;
            lab
        }
        Topology::NotInThisBuild { why } => return Err(io::Error::other(why)),
    };
    if let Topology::Vxswitch { extra_config } = spec.topology {
        for i in 0..lab.hosts.len() {
            lab.start_vxswitch(i, extra_config)?;
        }
    }
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
        assert!(prepare(&spec, "x", Path::new("/nonexistent")).is_err());
    }
}
