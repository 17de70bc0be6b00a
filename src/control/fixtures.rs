//! Example members for tests and the simulator: host `i` has a fixed gossip address, underlay
//! address and record (one /24 and one container on [`SIM_VNI`]).
//!
//! They live here rather than in `sim/` because the control plane's own unit tests use them and
//! `control` must not import anything above itself.

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use super::record::{Binding, MemberRecord, NetworkClaim, SubnetClaim};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// The network all example hosts are on.
pub const SIM_VNI: Vni = Vni::new_const(100);

/// Gossip address of host `i`.
pub fn host_addr(i: usize) -> SocketAddr {
    SocketAddr::from((host_ip(i), 4790))
}

/// Underlay address of host `i`.
pub fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250) as u8 + 1)
}

/// The record example host `i` announces: one /24 and one container on [`SIM_VNI`].
pub fn host_record(i: usize, epoch: u64) -> MemberRecord {
    let ip = Ipv4Addr::new(198, 19, i as u8, 10);
    MemberRecord {
        name: format!("h{i:03}"),
        gossip: host_addr(i),
        underlay: host_ip(i).into(),
        address6: None,
        vtep_mac: Some(EthernetAddress([2, 0, 0, 0, (i >> 8) as u8, i as u8])),
        epoch,
        version: 0,
        modes: vec!["vxlan".into(), "esp".into()],
        esp_public_key: Some([i as u8; 32]),
        signing_key: None,
        networks: vec![NetworkClaim {
            vni: SIM_VNI,
            subnets: vec![SubnetClaim {
                net: Ipv4Net::new(Ipv4Addr::new(198, 19, i as u8, 0), 24).unwrap_or_default().into(),
                since: epoch,
            }],
            bindings: vec![Binding { ip: ip.into(), mac: EthernetAddress([2, 1, 0, 0, (i >> 8) as u8, i as u8]), since: epoch }],
        }],
        floating: Vec::new(),
        services: Vec::new(),
    }
}
