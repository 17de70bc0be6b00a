//! `vxswitch cni`: a CNI 1.1.0 plugin that attaches containers to a vxswitch network.
//!
//! Installed as `/opt/cni/bin/vxswitch` (a copy of, or link to, the `vxswitch` binary; invoked
//! under that name it acts as the plugin). Per operation:
//!
//! - `ADD`: ask the daemon for the network (bridge, MTU from the encapsulation, subnets,
//!   gateways), take an address of each family the network has from the IPAM (built-in, or a
//!   delegated IPAM plugin), build the veth into the bridge with the addresses and default routes
//!   ([`plumb`]), and tell the daemon the container's IPs and MAC so proxy ARP, the ND proxy and
//!   gossip know them at once. Any failure undoes what was done. An interface that already exists
//!   in the container is an error.
//! - `DEL`: remove the veth, release the addresses, withdraw the bindings. Everything already
//!   gone is success, and a stopped daemon does not make `DEL` fail.
//! - `CHECK`: compare the container's interface, addresses and routes, the host end and the
//!   IPAM allocations with `prevResult`.
//! - `STATUS`: ready only while the daemon answers (else error 50).
//! - `GC`: release every allocation not in `cni.dev/valid-attachments`, with its veth and
//!   binding.
//! - `VERSION`: the supported versions.

pub mod daemon;
pub mod delegate;
pub mod plumb;
pub mod store;

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::cni::ipam;
use crate::cni::spec::{self, CniError, CniResult, Env, ErrorCode, Interface, IpConfig, IpamConf, NetConf, Route};
use crate::config::DEFAULT_CONTROL_SOCKET;
use store::{Store, DEFAULT_DATA_DIR};

/// Run the plugin: environment and stdin in, answer on stdout; the process exit status.
pub fn main() -> i32 {
    let env = Env::read(|k| std::env::var(k).ok());
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        return fail(&CniError::new(ErrorCode::Io, "cannot read stdin", e), spec::SPEC_VERSION);
    }
    let version = serde_json::from_slice::<serde_json::Value>(&stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(|v| v.as_str()).map(str::to_string))
        .unwrap_or_else(|| spec::SPEC_VERSION.to_string());
    match run(&env, &stdin) {
        Ok(Some(out)) => {
            println!("{out}");
            0
        }
        Ok(None) => 0,
        Err(e) => fail(&e, &version),
    }
}

fn fail(e: &CniError, version: &str) -> i32 {
    println!("{}", e.to_json(version));
    eprintln!("vxswitch cni: {e}");
    1
}

/// One operation; `Some(json)` to print.
pub fn run(env: &Env, stdin: &[u8]) -> Result<Option<String>, CniError> {
    if env.command == "VERSION" {
        return Ok(Some(spec::version_answer().to_string()));
    }
    let conf = spec::parse_conf(stdin)?;
    let ctx = Ctx::new(env, &conf, stdin)?;
    match env.command.as_str() {
        "ADD" => ctx.add().map(|r| Some(serde_json::to_string(&r).expect("result serialises"))),
        "DEL" => ctx.del().map(|()| None),
        "CHECK" => ctx.check().map(|()| None),
        "STATUS" => ctx.status().map(|()| None),
        "GC" => ctx.gc().map(|()| None),
        other => Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            format!("unknown CNI_COMMAND {other:?}"),
            "ADD, DEL, CHECK, STATUS, GC or VERSION",
        )),
    }
}

/// Which IPAM a configuration asks for.
enum Ipam {
    /// The built-in allocator with its store.
    Builtin(IpamConf, Store),
    /// Another plugin, by type.
    Delegate(String),
}

/// The built-in IPAM's pools for a network: IPv4 from `ipam.subnet` or the daemon's subnet,
/// IPv6 from `ipam.subnet6` or the daemon's IPv6 subnet; at least one of them.
fn builtin_pools(conf: &IpamConf, net: &daemon::NetworkInfo) -> Result<Vec<ipam::Pool>, CniError> {
    let range_err = |e| invalid("invalid address range", e);
    let mut pools = Vec::new();
    if let Some(subnet) = conf.subnet.or(net.subnet) {
        // The daemon's range belongs to the daemon's subnet only.
        let configured = conf.subnet.is_none();
        let start = conf.range_start.or(net.range_start.filter(|_| configured));
        let end = conf.range_end.or(net.range_end.filter(|_| configured));
        let gateway = conf.gateway.or(net.gateway.filter(|g| subnet.contains(g)));
        let v4 = |a: Option<std::net::Ipv4Addr>| a.map(IpAddr::V4);
        pools.push(ipam::Pool::new(IpNet::V4(subnet), v4(start), v4(end), v4(gateway)).map_err(range_err)?);
    }
    if let Some(subnet6) = conf.subnet6.or(net.subnet6) {
        let gateway6 = conf.gateway6.or(net.gateway6.filter(|g| subnet6.contains(g)));
        let v6 = |a: Option<std::net::Ipv6Addr>| a.map(IpAddr::V6);
        pools.push(ipam::Pool::new(IpNet::V6(subnet6), v6(conf.range_start6), v6(conf.range_end6), v6(gateway6)).map_err(range_err)?);
    }
    if pools.is_empty() {
        return Err(invalid(
            format!("no subnet for network {}", net.vni),
            "give the network a subnet or address, or ipam.subnet (and ipam.subnet6 for IPv6)",
        ));
    }
    Ok(pools)
}

/// Whether an address and a route destination are of one family.
fn same_family(a: &IpNet, b: &IpNet) -> bool {
    matches!((a, b), (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)))
}

/// One invocation's inputs, parsed.
struct Ctx<'a> {
    env: &'a Env,
    conf: &'a NetConf,
    stdin: &'a [u8],
    socket: PathBuf,
    ipam: Ipam,
}

fn invalid(msg: impl Into<String>, details: impl std::fmt::Display) -> CniError {
    CniError::new(ErrorCode::InvalidConfig, msg, details)
}

impl<'a> Ctx<'a> {
    fn new(env: &'a Env, conf: &'a NetConf, stdin: &'a [u8]) -> Result<Self, CniError> {
        let raw = conf.ipam.clone().unwrap_or_else(|| serde_json::json!({ "type": "vxswitch" }));
        let ipam_conf: IpamConf = serde_json::from_value(raw).map_err(|e| invalid("invalid ipam section", e))?;
        let ipam = if ipam_conf.kind == "vxswitch" {
            let dir = ipam_conf.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
            let store = Store::new(&dir, &conf.name).map_err(|e| invalid("invalid network name", e))?;
            Ipam::Builtin(ipam_conf, store)
        } else {
            Ipam::Delegate(ipam_conf.kind)
        };
        let socket = conf.control_socket.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
        Ok(Ctx { env, conf, stdin, socket, ipam })
    }

    fn vni(&self) -> Result<u32, CniError> {
        self.conf.vni.ok_or_else(|| invalid("the network configuration has no vni", "set \"vni\" to the vxswitch network's VNI"))
    }

    fn host_veth(&self) -> String {
        spec::host_veth_name(&self.env.container_id, &self.env.ifname)
    }

    fn add(&self) -> Result<CniResult, CniError> {
        self.env.require(&["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?;
        let vni = self.vni()?;
        let net = daemon::network(&self.socket, vni)?;
        let bridge = net
            .bridge
            .clone()
            .ok_or_else(|| invalid(format!("network {vni} has no bridge on this host"), "set `bridge` in its [[network]]"))?;
        // Before any address is taken: an existing interface is the caller's, never touched.
        plumb::ensure_absent(Path::new(&self.env.netns), &self.env.ifname)?;
        let (ips, mut routes) = self.ipam_add(&net)?;
        if routes.is_empty() {
            routes.extend(ips.iter().filter_map(|ip| ip.gateway).map(Route::default_via));
        }
        let addresses: Vec<IpNet> = ips.iter().map(|ip| ip.address).collect();
        let host_veth = self.host_veth();
        let temp = spec::temp_peer_name(&self.env.container_id, &self.env.ifname);
        let attach = plumb::Attach {
            netns: Path::new(&self.env.netns),
            ifname: &self.env.ifname,
            host_veth: &host_veth,
            temp_peer: &temp,
            bridge: &bridge,
            mtu: net.mtu,
            addresses: &addresses,
            routes: &routes,
        };
        // A failed attach removed what it built; a refused announcement undoes the attach.
        let attached = match plumb::attach(&attach) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.ipam_del();
                return Err(e);
            }
        };
        for (n, address) in addresses.iter().enumerate() {
            if let Err(e) = daemon::announce(&self.socket, vni, address.addr(), attached.container_mac, &host_veth) {
                for done in &addresses[..n] {
                    let _ = daemon::withdraw(&self.socket, vni, done.addr());
                }
                let _ = plumb::detach(Some(Path::new(&self.env.netns)), &self.env.ifname, &host_veth);
                let _ = self.ipam_del();
                return Err(e);
            }
        }
        // Interface MTUs are a 1.1.0 field.
        let mtu = (self.conf.cni_version == "1.1.0").then_some(net.mtu);
        Ok(CniResult {
            cni_version: self.conf.cni_version.clone(),
            interfaces: vec![
                Interface { name: host_veth, mac: attached.host_mac.to_string(), mtu, sandbox: None },
                Interface {
                    name: self.env.ifname.clone(),
                    mac: attached.container_mac.to_string(),
                    mtu,
                    sandbox: Some(self.env.netns.clone()),
                },
            ],
            ips: ips.into_iter().map(|ip| IpConfig { interface: Some(1), ..ip }).collect(),
            routes,
            dns: serde_json::json!({}),
        })
    }

    /// Take an address of each family the network has: the addresses with their gateways (no
    /// interface index yet), and the routes a delegate asked for.
    fn ipam_add(&self, net: &daemon::NetworkInfo) -> Result<(Vec<IpConfig>, Vec<Route>), CniError> {
        match &self.ipam {
            Ipam::Builtin(conf, store) => {
                let pools = builtin_pools(conf, net)?;
                let (id, ifname) = (&self.env.container_id, &self.env.ifname);
                // Both families or neither: a full IPv6 range gives back the IPv4 address taken.
                let taken = store
                    .update(|t| {
                        let before = t.clone();
                        let mut got = Vec::new();
                        for pool in &pools {
                            match t.allocate(pool, id, ifname) {
                                Some(ip) => got.push(ip),
                                None => {
                                    *t = before;
                                    return Err(pool.clone());
                                }
                            }
                        }
                        Ok(got)
                    })
                    .map_err(|e| CniError::new(ErrorCode::Io, "IPAM store", e))?
                    .map_err(|pool| {
                        CniError::new(ErrorCode::RangeFull, "no free address", format!("{}-{} is fully allocated", pool.start, pool.end))
                    })?;
                let ips = pools
                    .iter()
                    .zip(taken)
                    .map(|(pool, ip)| IpConfig {
                        address: IpNet::new(ip, pool.subnet.prefix_len()).expect("prefix from a subnet"),
                        gateway: pool.gateway,
                        interface: None,
                    })
                    .collect();
                Ok((ips, Vec::new()))
            }
            Ipam::Delegate(kind) => {
                let out = delegate::run(self.env, kind, "ADD", self.stdin)?;
                let r: CniResult = serde_json::from_slice(&out)
                    .map_err(|e| CniError::new(ErrorCode::Decode, format!("cannot decode the result of {kind}"), e))?;
                if r.ips.is_empty() {
                    return Err(CniError::new(ErrorCode::Delegate, format!("{kind} returned no address"), ""));
                }
                // A route without a next hop goes via the gateway of its family.
                let gateway_for = |dst: &IpNet| r.ips.iter().filter(|i| same_family(&i.address, dst)).find_map(|i| i.gateway);
                let routes = r.routes.iter().map(|rt| Route { dst: rt.dst, gw: rt.gw.or_else(|| gateway_for(&rt.dst)) }).collect();
                Ok((r.ips, routes))
            }
        }
    }

    /// Release this attachment's addresses; the addresses released (built-in IPAM only).
    fn ipam_del(&self) -> Result<Vec<IpAddr>, CniError> {
        match &self.ipam {
            Ipam::Builtin(_, store) => store
                .update(|t| t.release(&self.env.container_id, &self.env.ifname))
                .map_err(|e| CniError::new(ErrorCode::Io, "IPAM store", e)),
            Ipam::Delegate(kind) => delegate::run(self.env, kind, "DEL", self.stdin).map(|_| Vec::new()),
        }
    }

    fn del(&self) -> Result<(), CniError> {
        self.env.require(&["CNI_CONTAINERID", "CNI_IFNAME"])?;
        let netns = Some(Path::new(&self.env.netns)).filter(|p| !p.as_os_str().is_empty());
        plumb::detach(netns, &self.env.ifname, &self.host_veth())?;
        let mut released = self.ipam_del()?;
        if released.is_empty() {
            released = self.prev_ips();
        }
        if let Some(vni) = self.conf.vni {
            for ip in released {
                // A stopped daemon lost its announcements anyway; DEL still succeeds.
                if let Err(e) = daemon::withdraw(&self.socket, vni, ip) {
                    eprintln!("vxswitch cni: {ip} not withdrawn: {e}");
                }
            }
        }
        Ok(())
    }

    /// The container's addresses in `prevResult`, if there is one.
    fn prev_ips(&self) -> Vec<IpAddr> {
        self.prev_result().map(|r| r.ips.iter().map(|i| i.address.addr()).collect()).unwrap_or_default()
    }

    fn prev_result(&self) -> Option<CniResult> {
        serde_json::from_value(self.conf.prev_result.clone()?).ok()
    }

    fn check(&self) -> Result<(), CniError> {
        self.env.require(&["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?;
        let prev =
            self.conf.prev_result.clone().ok_or_else(|| invalid("CHECK needs prevResult", "the runtime passes the cached ADD result"))?;
        let prev: CniResult = serde_json::from_value(prev).map_err(|e| CniError::new(ErrorCode::Decode, "cannot decode prevResult", e))?;
        let failed = |what: String| CniError::new(ErrorCode::CheckFailed, "CHECK failed", what);
        let ifname = &self.env.ifname;
        let index = prev
            .interfaces
            .iter()
            .position(|i| &i.name == ifname && i.sandbox.is_some())
            .ok_or_else(|| failed(format!("prevResult has no interface {ifname} in a sandbox")))?;
        let seen = plumb::inspect(Path::new(&self.env.netns), ifname)?.ok_or_else(|| failed(format!("interface {ifname} is missing")))?;
        if seen.mac.to_string() != prev.interfaces[index].mac.to_lowercase() {
            return Err(failed(format!("{ifname} has MAC {}, prevResult says {}", seen.mac, prev.interfaces[index].mac)));
        }
        for ip in prev.ips.iter().filter(|i| i.interface.is_none_or(|n| n == index)) {
            if !seen.addresses.contains(&ip.address) {
                return Err(failed(format!("address {} is missing on {ifname} (has {:?})", ip.address, seen.addresses)));
            }
        }
        for r in &prev.routes {
            let gw = r.gw.or_else(|| prev.ips.iter().filter(|i| same_family(&i.address, &r.dst)).find_map(|i| i.gateway));
            if !seen.routes.iter().any(|&(dst, via)| dst == r.dst && (gw.is_none() || via == gw)) {
                return Err(failed(format!("route {} via {gw:?} is missing", r.dst)));
            }
        }
        let net = daemon::network(&self.socket, self.vni()?)?;
        if seen.mtu != net.mtu {
            return Err(failed(format!("{ifname} has MTU {}, the network {}", seen.mtu, net.mtu)));
        }
        let host_veth = self.host_veth();
        let bridge = net.bridge.unwrap_or_default();
        if !plumb::host_end_on_bridge(&host_veth, &bridge)? {
            return Err(failed(format!("host end {host_veth} is missing, down or not on bridge {bridge}")));
        }
        match &self.ipam {
            Ipam::Builtin(_, store) => {
                let table = store.read().map_err(|e| CniError::new(ErrorCode::Io, "IPAM store", e))?;
                let held = table.find(&self.env.container_id, ifname);
                let mut listed: Vec<IpAddr> = prev.ips.iter().map(|i| i.address.addr()).collect();
                listed.sort_by_key(|ip| ip.is_ipv6());
                if held != listed {
                    return Err(failed(format!("the IPAM store holds {held:?} for this container, prevResult says {listed:?}")));
                }
            }
            Ipam::Delegate(kind) => {
                delegate::run(self.env, kind, "CHECK", self.stdin)?;
            }
        }
        Ok(())
    }

    fn status(&self) -> Result<(), CniError> {
        daemon::network(&self.socket, self.vni()?)?;
        if let Ipam::Delegate(kind) = &self.ipam {
            delegate::run(self.env, kind, "STATUS", self.stdin)?;
        }
        Ok(())
    }

    fn gc(&self) -> Result<(), CniError> {
        // Without the list every allocation would look leaked: refuse rather than release all.
        let valid = self
            .conf
            .valid_attachments
            .clone()
            .ok_or_else(|| invalid("GC needs cni.dev/valid-attachments", "the runtime passes the attachments still in use"))?;
        match &self.ipam {
            Ipam::Builtin(_, store) => {
                let released = store.update(|t| t.retain_valid(&valid)).map_err(|e| CniError::new(ErrorCode::Io, "IPAM store", e))?;
                for a in released {
                    let _ = plumb::detach(None, &a.ifname, &spec::host_veth_name(&a.container_id, &a.ifname));
                    if let Some(vni) = self.conf.vni {
                        if let Err(e) = daemon::withdraw(&self.socket, vni, a.ip) {
                            eprintln!("vxswitch cni: {} not withdrawn: {e}", a.ip);
                        }
                    }
                    eprintln!("vxswitch cni: GC released {} of {}/{}", a.ip, a.container_id, a.ifname);
                }
                Ok(())
            }
            Ipam::Delegate(kind) => delegate::run(self.env, kind, "GC", self.stdin).map(|_| ()),
        }
    }
}
