//! The configuration file (TOML) and its validation.
//!
//! Everything is checked before vxswitch touches the system: a bad file is rejected with the line,
//! the key and the reason (`vxswitch.toml:12: network[0].vni: 16777216 is out of range ...`).
//! Parsing goes through raw structs with `toml::Spanned` fields, so semantic errors (ranges,
//! duplicates, MTU arithmetic) can still point at the line they come from.

mod raw;

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::vxlan::IPV4_OVERHEAD;

/// Default VXLAN UDP port (IANA, RFC 7348).
pub const DEFAULT_PORT: u16 = 4789;
/// Default underlay MTU.
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;
/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/vxswitch/vxswitch.sock";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The local underlay.
    pub underlay: Underlay,
    /// Unix socket on which `vxswitch stats` / `peers` query the daemon.
    pub control_socket: PathBuf,
    /// FDB ageing time.
    pub fdb_ageing: Duration,
    /// FDB cap on dynamic entries.
    pub fdb_max_entries: usize,
    /// The overlay networks (one TAP each).
    pub networks: Vec<Network>,
}

/// The local underlay endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    /// Local underlay IPv4 address: the VXLAN socket binds to it.
    pub address: Ipv4Addr,
    /// VXLAN UDP port (local and peers').
    pub port: u16,
    /// Underlay MTU.
    pub mtu: u32,
}

/// One overlay network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// VXLAN network identifier (24 bit).
    pub vni: u32,
    /// TAP device name (created by vxswitch).
    pub tap: String,
    /// TAP MTU: by default the underlay MTU minus the encapsulation overhead.
    pub mtu: u32,
    /// Bridge to enslave the TAP to (must exist).
    pub bridge: Option<String>,
    /// Address to put on the TAP.
    pub address: Option<Ipv4Net>,
    /// Static peer VTEPs (underlay addresses).
    pub peers: Vec<Ipv4Addr>,
}

impl Network {
    /// Largest inner Ethernet frame that fits the underlay after encapsulation.
    pub fn max_frame_len(&self, underlay_mtu: u32) -> usize {
        (underlay_mtu as usize).saturating_sub(IPV4_OVERHEAD - 14)
    }
}

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when read from one.
    pub file: Option<PathBuf>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key, e.g. `network[0].vni`.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
        }
        if self.file.is_some() || self.line.is_some() {
            f.write_str(" ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text).map_err(|e| ConfigError { file: Some(path.to_path_buf()), ..e })
    }

    /// Parse and validate configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: None,
            line: e.span().map(|s| line_of(text, s.start)),
            key: String::new(),
            reason: e.message().to_string(),
        })?;
        validate(text, raw)
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn validate(text: &str, raw: raw::RawConfig) -> Result<Config, ConfigError> {
    let err = |span: std::ops::Range<usize>, key: String, reason: String| ConfigError {
        file: None,
        line: Some(line_of(text, span.start)),
        key,
        reason,
    };
    let u = raw.underlay;
    let address = *u.address.get_ref();
    if address.is_unspecified() || address.is_multicast() || address.is_broadcast() {
        return Err(err(u.address.span(), "underlay.address".into(), format!("{address} is not a unicast address")));
    }
    let port = u.port.as_ref().map_or(DEFAULT_PORT, |p| *p.get_ref());
    if let Some(p) = &u.port {
        if *p.get_ref() == 0 {
            return Err(err(p.span(), "underlay.port".into(), "port 0 is not allowed".into()));
        }
    }
    let underlay_mtu = u.mtu.as_ref().map_or(DEFAULT_UNDERLAY_MTU, |m| *m.get_ref());
    if let Some(m) = &u.mtu {
        if !(576..=65535).contains(m.get_ref()) {
            return Err(err(m.span(), "underlay.mtu".into(), format!("{} is out of range (576..=65535)", m.get_ref())));
        }
    }
    let fdb = raw.fdb.unwrap_or_default();
    let fdb_ageing = Duration::from_secs(fdb.ageing_secs.as_ref().map_or(300, |a| *a.get_ref()));
    if let Some(a) = &fdb.ageing_secs {
        if *a.get_ref() == 0 {
            return Err(err(a.span(), "fdb.ageing_secs".into(), "must be at least 1".into()));
        }
    }
    let fdb_max_entries = fdb.max_entries.as_ref().map_or(crate::dataplane::fdb::DEFAULT_MAX_ENTRIES, |m| *m.get_ref());
    if let Some(m) = &fdb.max_entries {
        if !(1..=10_000_000).contains(m.get_ref()) {
            return Err(err(m.span(), "fdb.max_entries".into(), "must be between 1 and 10000000".into()));
        }
    }
    if raw.network.is_empty() {
        return Err(ConfigError { file: None, line: None, key: "network".into(), reason: "at least one [[network]] is required".into() });
    }
    let mut vnis = HashSet::new();
    let mut taps = HashSet::new();
    let mut networks = Vec::new();
    let max_tap_mtu = underlay_mtu - IPV4_OVERHEAD as u32;
    for (i, n) in raw.network.into_iter().enumerate() {
        let key = |k: &str| format!("network[{i}].{k}");
        let vni = *n.vni.get_ref();
        if vni > 0x00ff_ffff {
            return Err(err(n.vni.span(), key("vni"), format!("{vni} is out of range (0..=16777215)")));
        }
        if !vnis.insert(vni) {
            return Err(err(n.vni.span(), key("vni"), format!("VNI {vni} is configured twice")));
        }
        let tap = n.tap.get_ref().clone();
        if tap.is_empty() || tap.len() > 15 || tap.contains(['/', ' ', ':']) || tap == "." || tap == ".." {
            return Err(err(n.tap.span(), key("tap"), format!("{tap:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces)")));
        }
        if !taps.insert(tap.clone()) {
            return Err(err(n.tap.span(), key("tap"), format!("TAP {tap:?} is used twice")));
        }
        let mtu = n.mtu.as_ref().map_or(max_tap_mtu, |m| *m.get_ref());
        if let Some(m) = &n.mtu {
            if !(68..=max_tap_mtu).contains(m.get_ref()) {
                return Err(err(
                    m.span(),
                    key("mtu"),
                    format!(
                        "{} does not fit: the underlay MTU {underlay_mtu} minus {IPV4_OVERHEAD} bytes of VXLAN overhead allows at most {max_tap_mtu} (and at least 68)",
                        m.get_ref()
                    ),
                ));
            }
        }
        let mut peers = Vec::new();
        for p in n.peers.unwrap_or_default() {
            let addr = *p.get_ref();
            if addr == address {
                return Err(err(p.span(), key("peers"), format!("{addr} is this host's own underlay address")));
            }
            if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
                return Err(err(p.span(), key("peers"), format!("{addr} is not a unicast address")));
            }
            if peers.contains(&addr) {
                return Err(err(p.span(), key("peers"), format!("{addr} is listed twice")));
            }
            peers.push(addr);
        }
        networks.push(Network {
            vni,
            tap,
            mtu,
            bridge: n.bridge.map(|b| b.into_inner()),
            address: n.address.map(|a| a.into_inner()),
            peers,
        });
    }
    Ok(Config {
        underlay: Underlay { address, port, mtu: underlay_mtu },
        control_socket: raw.control_socket.map_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET), PathBuf::from),
        fdb_ageing,
        fdb_max_entries,
        networks,
    })
}

#[cfg(test)]
mod tests;
