//! The file as written, before validation. Spanned fields keep their position for errors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub underlay: RawUnderlay,
    pub control_socket: Option<String>,
    pub control_socket_group: Option<Spanned<String>>,
    pub metrics_listen: Option<Spanned<String>>,
    pub fdb: Option<RawFdb>,
    pub flood: Option<RawFlood>,
    pub gossip: Option<Spanned<RawGossip>>,
    pub esp: Option<Spanned<RawEsp>>,
    #[serde(default)]
    pub network: Vec<RawNetwork>,
    #[serde(default)]
    pub floating_ip: Vec<super::floating::RawFloating>,
    #[serde(default)]
    pub service: Vec<super::services::RawService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEsp {
    pub key_file: Option<String>,
    pub state_file: Option<String>,
    pub suite: Option<String>,
    pub port: Option<Spanned<u64>>,
    pub replay_window: Option<Spanned<u64>>,
    pub rekey_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManualKeys {
    pub aead: Option<String>,
    pub spi_out: String,
    pub key_out: String,
    pub spi_in: String,
    pub key_in: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGossip {
    pub cluster: String,
    pub key_file: String,
    pub name: Option<String>,
    pub listen: Option<String>,
    #[serde(default)]
    pub seeds: Vec<String>,
    pub interval_ms: Option<Spanned<u64>>,
    pub suspect_timeout_ms: Option<Spanned<u64>>,
    pub dead_grace_secs: Option<Spanned<u64>>,
    pub mtu: Option<Spanned<u64>>,
    pub cluster_cidr: Option<Spanned<String>>,
    pub cluster_cidr6: Option<Spanned<String>>,
    pub state_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUnderlay {
    pub address: Spanned<IpAddr>,
    pub address6: Option<Spanned<Ipv6Addr>>,
    pub port: Option<Spanned<u64>>,
    pub mtu: Option<Spanned<u64>>,
    pub offload: Option<bool>,
    pub udp_gso: Option<bool>,
    pub udp_gro: Option<bool>,
    pub busy_poll_us: Option<Spanned<u64>>,
    pub workers: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFdb {
    pub ageing_secs: Option<Spanned<u64>>,
    pub max_entries: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlood {
    pub rate: Option<Spanned<u64>>,
    pub burst: Option<Spanned<u64>>,
    pub max_sources: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub vni: Spanned<u64>,
    pub mode: Option<Spanned<String>>,
    pub tap: Option<Spanned<String>>,
    pub device: Option<Spanned<String>>,
    pub mtu: Option<Spanned<u64>>,
    pub tap_mtu: Option<Spanned<u64>>,
    pub mss_clamp: Option<Spanned<RawMssClamp>>,
    pub bridge: Option<Spanned<String>>,
    pub address: Option<Spanned<Ipv4Net>>,
    pub subnet: Option<Spanned<Ipv4Net>>,
    pub gateway: Option<Spanned<Ipv4Addr>>,
    pub subnet6: Option<Spanned<Ipv6Net>>,
    pub gateway6: Option<Spanned<Ipv6Addr>>,
    pub range_start: Option<Spanned<Ipv4Addr>>,
    pub range_end: Option<Spanned<Ipv4Addr>>,
    pub cluster_cidr: Option<Spanned<Ipv4Net>>,
    pub host_prefix: Option<Spanned<u64>>,
    pub gateway_mac: Option<Spanned<String>>,
    pub unknown_arp: Option<Spanned<String>>,
    pub encryption: Option<Spanned<String>>,
    pub peers: Option<Vec<Spanned<RawPeer>>>,
    #[serde(default)]
    pub arp: Vec<Spanned<RawBinding>>,
}

/// `mss_clamp`: `"auto"`, `"off"` or a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawMssClamp {
    Word(String),
    Number(u64),
}

/// A peer: just its underlay address, or a table with the subnet it owns.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawPeer {
    Address(IpAddr),
    Full(RawPeerTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeerTable {
    pub address: IpAddr,
    pub address6: Option<Ipv6Addr>,
    pub subnet: Option<Ipv4Net>,
    pub subnet6: Option<Ipv6Net>,
    pub public_key: Option<String>,
    pub esp: Option<RawManualKeys>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBinding {
    pub ip: std::net::IpAddr,
    pub mac: String,
}
