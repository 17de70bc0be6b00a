//! The CNI plugin invoked as a container runtime invokes it, shared by the netns tests that
//! attach containers through it (`cni_netns`, `lease_netns`).

#![allow(dead_code)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{json, Value};
use vxswitch::testnet::lab::{Container, Lab, VNI};
use vxswitch::testnet::netns::Netns;

/// The vxswitch binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// Where Debian's containernetworking-plugins puts its plugins (`dpkg -L containernetworking-plugins`).
pub const DEBIAN_CNI_PATH: &str = "/usr/lib/cni";

/// What one plugin run answered.
#[derive(Debug)]
pub struct Answer {
    /// Exit status 0.
    pub ok: bool,
    /// What it printed (JSON), `Null` for nothing.
    pub out: Value,
}

impl Answer {
    /// The CNI error code, for an error.
    pub fn code(&self) -> Option<u64> {
        self.out.get("code").and_then(Value::as_u64)
    }
}

/// Run plugin `program` (the vxswitch binary or a Debian plugin) in host `host`'s namespace as a
/// runtime does.
pub fn invoke(lab: &Lab, host: usize, program: &Path, command: &str, id: &str, netns: &str, conf: &Value) -> Answer {
    let mut child = lab.hosts[host]
        .ns
        .command(&program.to_string_lossy())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", DEBIAN_CNI_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("plugin runs");
    child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {text}"))
    };
    if !out.status.success() {
        eprintln!("{command} {id}: {value} {}", String::from_utf8_lossy(&out.stderr));
    }
    Answer { ok: out.status.success(), out: value }
}

/// Run the vxswitch plugin in host `host`'s namespace as a runtime does.
pub fn cni(lab: &Lab, host: usize, command: &str, id: &str, netns: &str, conf: &Value) -> Answer {
    invoke(lab, host, bin(), command, id, netns, conf)
}

/// The path a runtime passes as `CNI_NETNS`.
pub fn netns_path(ns: &Netns) -> String {
    format!("/run/netns/{}", ns.name())
}

/// The IPAM data directory of host `host`.
pub fn ipam_dir(lab: &Lab, host: usize) -> PathBuf {
    lab.dir.join(format!("h{host}-ipam"))
}

/// The network configuration of host `host` (one plugin of a conflist as the runtime passes it).
pub fn conf(lab: &Lab, host: usize, version: &str, extra_ipam: Value) -> Value {
    let mut ipam = json!({ "type": "vxswitch", "dataDir": ipam_dir(lab, host) });
    if let (Some(m), Some(extra)) = (ipam.as_object_mut(), extra_ipam.as_object()) {
        m.extend(extra.clone());
    }
    json!({ "cniVersion": version, "name": "vxnet", "type": "vxswitch", "vni": VNI, "controlSocket": lab.socket(host), "ipam": ipam })
}

/// Overlay IPAM range of host `i`: 192.0.2.(20i+10) - .(20i+29).
pub fn overlay_ipam(i: usize) -> Value {
    json!({ "subnet": "192.0.2.0/24", "rangeStart": format!("192.0.2.{}", 20 * i + 10), "rangeEnd": format!("192.0.2.{}", 20 * i + 29) })
}

/// A fresh container namespace `c<j>` of host `host` (not yet attached).
pub fn container_ns(lab: &Lab, host: usize, j: usize) -> Netns {
    Netns::create(&format!("{}-h{host}c{j}", lab.prefix())).unwrap()
}

/// The container's address in an ADD result.
pub fn result_ip(result: &Value) -> Ipv4Addr {
    let addr = result["ips"][0]["address"].as_str().unwrap_or_else(|| panic!("no address in {result}"));
    addr.split('/').next().unwrap().parse().unwrap()
}

/// Attach `n` containers to every host through the plugin; returns the ADD results.
pub fn add_containers(lab: &mut Lab, n: usize, conf_of: impl Fn(&Lab, usize) -> Value) -> Vec<Vec<Value>> {
    let mut results = Vec::new();
    for h in 0..lab.hosts.len() {
        let mut per_host = Vec::new();
        for j in 0..n {
            let ns = container_ns(lab, h, j);
            let answer = cni(lab, h, "ADD", &format!("h{h}c{j}"), &netns_path(&ns), &conf_of(lab, h));
            assert!(answer.ok, "ADD h{h}c{j}: {}", answer.out);
            let ip = result_ip(&answer.out);
            lab.hosts[h].containers.push(Container { ns, ip });
            per_host.push(answer.out);
        }
        results.push(per_host);
    }
    results
}

/// Host `i` of an overlay network whose hosts find each other by gossip.
pub fn overlay_gossip_config(lab: &Lab, i: usize) -> String {
    let gossip = lab.gossip_config(i, "routed", &[0]).unwrap();
    let section = gossip.split_once("\n[gossip]").unwrap().1;
    lab.vxswitch_config(i, "").replace(&format!("peers = [{}]", peers_list(lab, i)), "peers = []") + "\n[gossip]" + section
}

fn peers_list(lab: &Lab, i: usize) -> String {
    lab.peers_of(i).iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
}

/// The daemon's `cni bindings` answer on host `host`.
pub fn bindings(lab: &Lab, host: usize) -> Value {
    let text = vxswitch::sys::daemon::control_socket::query(&lab.socket(host), &format!("cni bindings {VNI}")).unwrap();
    serde_json::from_str(&text).unwrap()
}
