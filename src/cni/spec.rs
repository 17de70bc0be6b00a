//! The CNI 1.1.0 wire format: network configuration in, result or error out.
//!
//! A runtime runs the plugin once per operation with `CNI_COMMAND`, `CNI_CONTAINERID`,
//! `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH` in the environment and the network configuration
//! as JSON on stdin; the plugin answers on stdout with a result (`ADD`), nothing (`DEL`,
//! `CHECK`, `STATUS`, `GC` on success), the supported versions (`VERSION`), or an error object
//! `{"cniVersion","code","msg","details"}` and a non-zero exit status. Codes 1-99 are the
//! spec's; 100 and up are this plugin's own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The spec version this plugin implements.
pub const SPEC_VERSION: &str = "1.1.0";
/// Configuration versions accepted (the result format is the same for all of them).
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];

/// The spec's error codes, plus this plugin's own (100 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// 1: the configuration's `cniVersion` is not supported.
    IncompatibleVersion = 1,
    /// 3: the container is unknown or does not exist (e.g. its namespace is gone).
    UnknownContainer = 3,
    /// 4: a required environment variable is missing or invalid.
    InvalidEnvironment = 4,
    /// 5: an I/O failure (netlink, files).
    Io = 5,
    /// 6: stdin could not be decoded.
    Decode = 6,
    /// 7: the network configuration is invalid.
    InvalidConfig = 7,
    /// 11: try again later (a transient condition).
    TryAgainLater = 11,
    /// 50: the plugin is not ready (the daemon is not running).
    NotAvailable = 50,
    /// 100: `CHECK` found the container's network not as the previous result says.
    CheckFailed = 100,
    /// 101: `ADD` found the interface already in the container.
    InterfaceExists = 101,
    /// 102: the address range is exhausted.
    RangeFull = 102,
    /// 103: the daemon refused the request.
    DaemonRefused = 103,
    /// 104: a delegated IPAM plugin failed.
    Delegate = 104,
}

/// A CNI error result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    /// The error code.
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer details.
    pub details: String,
}

impl CniError {
    /// An error with `code`, message and details.
    pub fn new(code: ErrorCode, msg: impl Into<String>, details: impl std::fmt::Display) -> Self {
        CniError { code: code as u32, msg: msg.into(), details: details.to_string() }
    }

    /// The error object printed on stdout.
    pub fn to_json(&self, version: &str) -> serde_json::Value {
        serde_json::json!({ "cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details })
    }
}

/// One `{containerID, ifname}` attachment (in `GC`'s `cni.dev/valid-attachments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

/// The network configuration on stdin (one plugin of a conflist, as the runtime hands it down).
#[derive(Debug, Clone, Deserialize)]
pub struct NetConf {
    /// The configuration's spec version.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The network name (keys the IPAM store).
    pub name: String,
    /// The plugin type (`vxswitch`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The vxswitch network (VNI) to attach to.
    #[serde(default)]
    pub vni: Option<u32>,
    /// The daemon's control socket (default `/run/vxswitch/vxswitch.sock`).
    #[serde(rename = "controlSocket", default)]
    pub control_socket: Option<PathBuf>,
    /// The IPAM section, raw: handed unchanged to a delegated IPAM plugin.
    #[serde(default)]
    pub ipam: Option<serde_json::Value>,
    /// The previous plugin's result (`CHECK`, and `DEL` in a chain).
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<serde_json::Value>,
    /// `GC`: the attachments still in use; everything else is released.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The built-in IPAM's section (`"ipam": {"type": "vxswitch", ...}`); every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamConf {
    /// `vxswitch` for the built-in allocator; anything else is a plugin in `CNI_PATH`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where allocations are kept (default `/var/lib/cni/vxswitch`).
    #[serde(rename = "dataDir", default)]
    pub data_dir: Option<PathBuf>,
    /// The subnet to allocate from (default: the daemon's subnet for the network).
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    /// First address handed out (default: the subnet's first host address).
    #[serde(rename = "rangeStart", default)]
    pub range_start: Option<Ipv4Addr>,
    /// Last address handed out (default: the subnet's last host address).
    #[serde(rename = "rangeEnd", default)]
    pub range_end: Option<Ipv4Addr>,
    /// The containers' gateway (default: the daemon's gateway for the network).
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 subnet to allocate from as well (default: the daemon's IPv6 subnet for the
    /// network, if it has one): with it every container gets one address of each family.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    /// First IPv6 address handed out (default: the subnet's `::1`).
    #[serde(rename = "rangeStart6", default)]
    pub range_start6: Option<Ipv6Addr>,
    /// Last IPv6 address handed out (default: the subnet's last address but one).
    #[serde(rename = "rangeEnd6", default)]
    pub range_end6: Option<Ipv6Addr>,
    /// The containers' IPv6 gateway (default: the daemon's IPv6 gateway for the network).
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
}

/// An interface in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address.
    #[serde(default)]
    pub mac: String,
    /// Its MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The container's namespace path; absent for the host side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address in a result (either family).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length.
    pub address: IpNet,
    /// The gateway for this subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result (either family).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop (default: the gateway of the result's address of the same family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

impl Route {
    /// The default route of `gw`'s family (`0.0.0.0/0` or `::/0`) via `gw`.
    pub fn default_via(gw: IpAddr) -> Route {
        let dst = match gw {
            IpAddr::V4(_) => IpNet::V4(Ipv4Net::default()),
            IpAddr::V6(_) => IpNet::V6(Ipv6Net::default()),
        };
        Route { dst, gw: Some(gw) }
    }
}

/// The result of `ADD` (and an IPAM plugin's result, which has no interfaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// The result's spec version (the configuration's).
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Interfaces created: host side first, then the container's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes installed in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings (none from this plugin).
    #[serde(default)]
    pub dns: serde_json::Value,
}

/// The `CNI_*` environment of one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` (a path).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_PATH`: where other plugins are looked up.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Read the environment through `get` (`std::env::var` in the plugin).
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Env {
        let var = |k: &str| get(k).unwrap_or_default();
        Env {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            path: var("CNI_PATH").split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect(),
        }
    }

    /// Check that the variables `names` are set (and the interface name is a valid one).
    pub fn require(&self, names: &[&str]) -> Result<(), CniError> {
        for &n in names {
            let v = match n {
                "CNI_CONTAINERID" => &self.container_id,
                "CNI_NETNS" => &self.netns,
                "CNI_IFNAME" => &self.ifname,
                _ => continue,
            };
            if v.is_empty() {
                return Err(CniError::new(ErrorCode::InvalidEnvironment, format!("{n} is not set"), "required for this command"));
            }
        }
        if names.contains(&"CNI_IFNAME") && (self.ifname.len() > 15 || self.ifname.contains(['/', ' ']) || self.ifname == ".") {
            return Err(CniError::new(ErrorCode::InvalidEnvironment, "CNI_IFNAME is not a valid interface name", &self.ifname));
        }
        Ok(())
    }
}

/// Parse stdin as a network configuration of a supported version.
pub fn parse_conf(stdin: &[u8]) -> Result<NetConf, CniError> {
    let conf: NetConf =
        serde_json::from_slice(stdin).map_err(|e| CniError::new(ErrorCode::Decode, "cannot decode the network configuration", e))?;
    if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("cniVersion {} is not supported", conf.cni_version),
            format!("supported: {}", SUPPORTED_VERSIONS.join(", ")),
        ));
    }
    Ok(conf)
}

/// The answer to `VERSION`.
pub fn version_answer() -> serde_json::Value {
    serde_json::json!({ "cniVersion": SPEC_VERSION, "supportedVersions": SUPPORTED_VERSIONS })
}

/// The host-side veth name of a container's interface: `vx` and 12 hex digits of a hash of the
/// container id and interface name (stable, so `DEL` and `CHECK` find it again; 14 characters,
/// within the kernel's 15).
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    format!("vx{:012x}", fnv1a(container_id, ifname) & 0xffff_ffff_ffff)
}

/// The temporary name of the container end before it is moved and renamed.
pub fn temp_peer_name(container_id: &str, ifname: &str) -> String {
    format!("vp{:012x}", fnv1a(container_id, ifname) & 0xffff_ffff_ffff)
}

fn fnv1a(a: &str, b: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.bytes().chain([0]).chain(b.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflist_entry_parses_and_unknown_versions_are_refused() {
        let conf = parse_conf(
            br#"{"cniVersion":"1.1.0","name":"vxnet","type":"vxswitch","vni":1042,"ipam":{"type":"vxswitch","rangeStart":"10.1.0.10"}}"#,
        )
        .unwrap();
        assert_eq!((conf.name.as_str(), conf.vni), ("vxnet", Some(1042)));
        let ipam: IpamConf = serde_json::from_value(conf.ipam.unwrap()).unwrap();
        assert_eq!(ipam.range_start, Some(Ipv4Addr::new(10, 1, 0, 10)));
        assert_eq!(ipam.subnet6, None, "an IPv4-only configuration stays IPv4-only");
        let conf = parse_conf(
            br#"{"cniVersion":"1.1.0","name":"n","type":"vxswitch","vni":1,"ipam":{"type":"vxswitch","subnet":"10.1.0.0/24","subnet6":"fd00:1::/64","rangeStart6":"fd00:1::10"}}"#,
        )
        .unwrap();
        let ipam: IpamConf = serde_json::from_value(conf.ipam.unwrap()).unwrap();
        assert_eq!(ipam.subnet6, Some("fd00:1::/64".parse().unwrap()));
        assert_eq!(ipam.range_start6, Some("fd00:1::10".parse().unwrap()));
        let e = parse_conf(br#"{"cniVersion":"0.2.0","name":"n","type":"vxswitch"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::IncompatibleVersion as u32);
        assert_eq!(parse_conf(b"{not json").unwrap_err().code, ErrorCode::Decode as u32);
    }

    #[test]
    fn results_round_trip_in_spec_field_names() {
        let r = CniResult {
            cni_version: "1.1.0".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "02:00:00:00:00:01".into(),
                mtu: Some(1450),
                sandbox: Some("/run/netns/x".into()),
            }],
            ips: vec![
                IpConfig { address: "10.1.0.5/24".parse().unwrap(), gateway: Some(Ipv4Addr::new(10, 1, 0, 1).into()), interface: Some(0) },
                IpConfig { address: "fd00:1::5/64".parse().unwrap(), gateway: None, interface: Some(0) },
            ],
            routes: vec![Route::default_via(Ipv4Addr::new(10, 1, 0, 1).into()), Route::default_via("fd00:1::1".parse().unwrap())],
            dns: serde_json::json!({}),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["ips"][0]["address"], "10.1.0.5/24");
        assert_eq!(v["interfaces"][0]["sandbox"], "/run/netns/x");
        assert_eq!(v["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["ips"][1]["address"], "fd00:1::5/64");
        assert_eq!(v["routes"][1], serde_json::json!({ "dst": "::/0", "gw": "fd00:1::1" }));
        assert_eq!(serde_json::from_value::<CniResult>(v).unwrap(), r);
    }

    #[test]
    fn missing_or_bad_environment_is_error_4() {
        let env = Env::read(|k| (k == "CNI_COMMAND").then(|| "ADD".to_string()));
        assert_eq!(env.require(&["CNI_CONTAINERID"]).unwrap_err().code, 4);
        let env = Env::read(|k| Some(if k == "CNI_IFNAME" { "a-very-long-interface-name".into() } else { "x".into() }));
        assert_eq!(env.require(&["CNI_IFNAME"]).unwrap_err().code, 4);
    }

    #[test]
    fn host_veth_names_are_stable_short_and_distinct() {
        let a = host_veth_name("c1", "eth0");
        assert_eq!(a, host_veth_name("c1", "eth0"));
        assert!(a.len() <= 15);
        assert_ne!(a, host_veth_name("c2", "eth0"));
        assert_ne!(a, host_veth_name("c1", "eth1"));
        assert!(temp_peer_name("c1", "eth0").starts_with("vp") && temp_peer_name("c1", "eth0").len() <= 15);
    }
}
