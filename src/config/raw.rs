//! The file as written, before validation. Spanned fields keep their position for errors.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub underlay: RawUnderlay,
    pub control_socket: Option<String>,
    pub fdb: Option<RawFdb>,
    #[serde(default)]
    pub network: Vec<RawNetwork>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUnderlay {
    pub address: Spanned<Ipv4Addr>,
    pub port: Option<Spanned<u16>>,
    pub mtu: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFdb {
    pub ageing_secs: Option<Spanned<u64>>,
    pub max_entries: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub vni: Spanned<u32>,
    pub tap: Spanned<String>,
    pub mtu: Option<Spanned<u32>>,
    pub bridge: Option<Spanned<String>>,
    pub address: Option<Spanned<Ipv4Net>>,
    pub peers: Option<Vec<Spanned<Ipv4Addr>>>,
}
