//! The plugin's side of the control socket (see [`crate::sys::daemon::cni`] for the daemon's):
//! ask for a network's settings, announce and withdraw containers. A daemon that does not answer
//! is CNI error 50, "plugin not available".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;

use crate::cni::spec::{CniError, ErrorCode};
use crate::sys::daemon::control_socket::query_with_timeout;
use crate::wire::ethernet::EthernetAddress;

/// How long the plugin waits for the daemon's answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the daemon says about one network (`cni network VNI`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkInfo {
    /// The VNI.
    pub vni: u32,
    /// `overlay`, `routed`, `host-subnet` or `kernel`.
    pub mode: String,
    /// The bridge containers join.
    pub bridge: Option<String>,
    /// The network's MTU (from its encapsulation).
    pub mtu: u32,
    /// The host's subnet for it.
    pub subnet: Option<Ipv4Net>,
    /// The containers' gateway.
    pub gateway: Option<Ipv4Addr>,
    /// First address of the configured container range.
    pub range_start: Option<Ipv4Addr>,
    /// Last address of the configured container range.
    pub range_end: Option<Ipv4Addr>,
    /// The host's IPv6 subnet for it (dual-stack routed and host-subnet networks); absent in
    /// the answers of daemons that know only IPv4.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    /// The containers' IPv6 gateway.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
}

fn ask(socket: &Path, command: &str) -> Result<serde_json::Value, CniError> {
    let answer = query_with_timeout(socket, command, TIMEOUT)
        .map_err(|e| CniError::new(ErrorCode::NotAvailable, "the vxswitch daemon is not running", e))?;
    let value: serde_json::Value = serde_json::from_str(&answer).map_err(|e| {
        CniError::new(ErrorCode::NotAvailable, "the vxswitch daemon does not speak the cni commands", format!("{e}: {answer}"))
    })?;
    if let Some(e) = value.get("error").and_then(|e| e.as_str()) {
        // Not ready yet (a network still leasing its subnet): the runtime should try again later.
        let code = if value["not_ready"] == true { ErrorCode::NotAvailable } else { ErrorCode::DaemonRefused };
        return Err(CniError::new(code, format!("vxswitch refused `{command}`"), e));
    }
    Ok(value)
}

/// The settings of network `vni`.
pub fn network(socket: &Path, vni: u32) -> Result<NetworkInfo, CniError> {
    let v = ask(socket, &format!("cni network {vni}"))?;
    serde_json::from_value(v).map_err(|e| CniError::new(ErrorCode::DaemonRefused, "unexpected answer from vxswitch", e))
}

/// Tell the daemon that container `ip` (either family) with `mac` joined network `vni` on this
/// host, behind the host-side veth `veth`.
pub fn announce(socket: &Path, vni: u32, ip: IpAddr, mac: EthernetAddress, veth: &str) -> Result<(), CniError> {
    ask(socket, &format!("cni add {vni} {ip} {mac} {veth}")).map(|_| ())
}

/// Tell the daemon that container `ip` left network `vni`.
pub fn withdraw(socket: &Path, vni: u32, ip: IpAddr) -> Result<(), CniError> {
    ask(socket, &format!("cni del {vni} {ip}")).map(|_| ())
}
