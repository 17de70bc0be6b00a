//! What vxswitch changed on the host, recorded so that any later start can undo it.
//!
//! TAPs vanish with the process, but some changes outlive it: the gateway addresses put on a
//! host-subnet bridge (IPv4 and, dual stack, IPv6), `net.ipv4.ip_forward` and
//! `net.ipv6.conf.all.forwarding` switched on, the kernel vxlan devices of kernel mode
//! and the `proto 86` routes. A clean shutdown undoes them; a crash does not, and a restart with a
//! *different* configuration would then never look at them again (its reconcile only covers what
//! the new configuration still mentions). So every such change is written to a small state file
//! *before* it is made (write to a temporary file, fsync, rename: the file is always either the
//! old or the new record), and the next start first undoes every recorded change that the new
//! configuration does not want. The file lives next to the control socket (under /run by
//! default), which is right: kernel state and /run both end at reboot.
//!
//! Undoing is planned ([`plan_cleanup`], pure) and then executed ([`HostState::cleanup`]), like
//! the route and device programmers.

use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::host_routes::HostSubnetRoutes;
use super::netlink::Netlink;
use crate::config::{Config, Mode};
use crate::sys::SysError;

/// Where `net.ipv4.ip_forward` lives.
pub const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// Where `net.ipv6.conf.all.forwarding` lives.
pub const IP6_FORWARD: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// Changes to the host that outlive the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChanges {
    /// vxswitch switched `net.ipv4.ip_forward` from 0 to 1.
    pub enabled_ip_forward: bool,
    /// Addresses vxswitch added to links that outlive it (host-subnet bridges): (link, address).
    pub addresses: Vec<(String, Ipv4Net)>,
    /// vxswitch switched `net.ipv6.conf.all.forwarding` from 0 to 1 (dual-stack host-subnet).
    #[serde(default)]
    pub enabled_ip6_forward: bool,
    /// IPv6 addresses vxswitch added to links that outlive it: (link, address).
    #[serde(default)]
    pub addresses6: Vec<(String, Ipv6Net)>,
    /// Kernel vxlan devices vxswitch created: (name, VNI).
    pub devices: Vec<(String, u32)>,
    /// vxswitch may have installed `proto 86` routes.
    pub routes: bool,
}

/// One step of undoing a previous run's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// `sysctl -w net.ipv4.ip_forward=0`.
    DisableIpForward,
    /// `sysctl -w net.ipv6.conf.all.forwarding=0`.
    DisableIp6Forward,
    /// `ip addr del ADDRESS dev LINK`.
    DeleteAddress(String, Ipv4Net),
    /// `ip -6 addr del ADDRESS dev LINK`.
    DeleteAddress6(String, Ipv6Net),
    /// `ip link del NAME`, only if it is a vxlan device with this VNI.
    DeleteDevice(String, u32),
    /// Remove every `proto 86` route.
    FlushRoutes,
}

/// What `config` will change on the host (recorded before the changes are made); `forwarding_was_on`
/// is (IPv4, IPv6) forwarding as the host had it.
pub fn intended(config: &Config, forwarding_was_on: (bool, bool)) -> HostChanges {
    let host_subnet: Vec<_> = config.networks.iter().filter(|n| n.mode == Mode::HostSubnet).collect();
    let addresses6: Vec<(String, Ipv6Net)> = host_subnet.iter().filter_map(|n| Some((n.bridge.clone()?, gateway6_of(n)?))).collect();
    HostChanges {
        enabled_ip_forward: !host_subnet.is_empty() && !forwarding_was_on.0,
        enabled_ip6_forward: !addresses6.is_empty() && !forwarding_was_on.1,
        addresses6,
        addresses: host_subnet
            .iter()
            .filter_map(|n| {
                let hs = n.host_subnet.as_ref()?;
                Some((n.bridge.clone()?, Ipv4Net::new(hs.gateway, hs.subnet.prefix_len()).ok()?))
            })
            .collect(),
        devices: config.networks.iter().filter(|n| n.mode == Mode::Kernel).map(|n| (n.device.clone(), n.vni.get())).collect(),
        routes: !host_subnet.is_empty(),
    }
}

/// The IPv6 gateway address a dual-stack host-subnet network puts on its bridge.
pub fn gateway6_of(n: &crate::config::Network) -> Option<Ipv6Net> {
    let hs = n.host_subnet6.as_ref()?;
    Ipv6Net::new(hs.gateway, hs.subnet.prefix_len()).ok()
}

/// The steps that undo what `previous` recorded and `next` does not want again.
pub fn plan_cleanup(previous: &HostChanges, next: &HostChanges) -> Vec<Cleanup> {
    let mut plan = Vec::new();
    if previous.enabled_ip_forward && next.addresses.is_empty() && !next.routes {
        plan.push(Cleanup::DisableIpForward);
    }
    if previous.enabled_ip6_forward && next.addresses6.is_empty() {
        plan.push(Cleanup::DisableIp6Forward);
    }
    for (link, addr) in &previous.addresses6 {
        if !next.addresses6.contains(&(link.clone(), *addr)) {
            plan.push(Cleanup::DeleteAddress6(link.clone(), *addr));
        }
    }
    for (link, addr) in &previous.addresses {
        if !next.addresses.contains(&(link.clone(), *addr)) {
            plan.push(Cleanup::DeleteAddress(link.clone(), *addr));
        }
    }
    for (name, vni) in &previous.devices {
        // A device wanted again under the same name is replaced by the kernel-mode driver itself.
        if !next.devices.iter().any(|(n, _)| n == name) {
            plan.push(Cleanup::DeleteDevice(name.clone(), *vni));
        }
    }
    if previous.routes && !next.routes {
        plan.push(Cleanup::FlushRoutes);
    }
    plan
}

/// Merge `b` into `a` (what is recorded while both may exist on the host).
fn union(a: &HostChanges, b: &HostChanges) -> HostChanges {
    let mut u = a.clone();
    u.enabled_ip_forward |= b.enabled_ip_forward;
    u.enabled_ip6_forward |= b.enabled_ip6_forward;
    u.routes |= b.routes;
    for x in &b.addresses6 {
        if !u.addresses6.contains(x) {
            u.addresses6.push(x.clone());
        }
    }
    for x in &b.addresses {
        if !u.addresses.contains(x) {
            u.addresses.push(x.clone());
        }
    }
    for x in &b.devices {
        if !u.devices.contains(x) {
            u.devices.push(x.clone());
        }
    }
    u
}

/// The state file of a running daemon.
#[derive(Debug)]
pub struct HostState {
    path: PathBuf,
    recorded: HostChanges,
}

fn os(op: &'static str) -> impl FnOnce(std::io::Error) -> SysError {
    move |source| SysError::Os { op, source }
}

impl HostState {
    /// The state file that belongs to `control_socket`.
    pub fn path_for(control_socket: &Path) -> PathBuf {
        let mut name = control_socket.as_os_str().to_owned();
        name.push(".state.json");
        PathBuf::from(name)
    }

    /// Read the previous run's record (empty when there is none), undo what `config` does not
    /// want, and record what `config` is about to change. Call before any other kernel change,
    /// with the instance lock held.
    pub fn start(control_socket: &Path, config: &Config) -> Result<Self, SysError> {
        let path = Self::path_for(control_socket);
        let previous = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), "unreadable host state ({e}); assuming every vxswitch change may be present");
                HostChanges { routes: true, ..HostChanges::default() }
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HostChanges::default(),
            Err(e) => return Err(os("read host state")(e)),
        };
        let on = |path: &str| std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1");
        // Forwarding that an earlier run turned on does not count as the host's own setting.
        let was_on = (on(IP_FORWARD) && !previous.enabled_ip_forward, on(IP6_FORWARD) && !previous.enabled_ip6_forward);
        let next = intended(config, was_on);
        let mut state = HostState { path, recorded: HostChanges::default() };
        // Until the leftovers are gone, both the old and the new changes may be on the host.
        state.record(union(&previous, &next))?;
        for step in plan_cleanup(&previous, &next) {
            match cleanup(&step) {
                Ok(()) => tracing::info!(?step, "undid a change of an earlier run"),
                Err(e) => tracing::warn!(?step, "could not undo a change of an earlier run: {e}"),
            }
        }
        state.record(next)?;
        Ok(state)
    }

    /// What is recorded now.
    pub fn recorded(&self) -> &HostChanges {
        &self.recorded
    }

    /// Replace the record (temporary file, fsync, rename).
    pub fn record(&mut self, changes: HostChanges) -> Result<(), SysError> {
        let bytes = serde_json::to_vec_pretty(&changes).expect("plain data serializes");
        crate::keyfile::write_atomically(&self.path, &bytes).map_err(os("write host state"))?;
        self.recorded = changes;
        Ok(())
    }

    /// Clean shutdown, after the routes and devices were withdrawn: undo the rest and forget.
    pub fn finish(self) {
        for step in plan_cleanup(&self.recorded, &HostChanges::default()) {
            // Routes and devices were withdrawn by their programmers already; this catches the rest.
            if let Err(e) = cleanup(&step) {
                tracing::warn!(?step, "could not undo at shutdown: {e}");
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Carry out one cleanup step.
fn cleanup(step: &Cleanup) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match step {
        // = sysctl -w net.ipv4.ip_forward=0
        Cleanup::DisableIpForward => std::fs::write(IP_FORWARD, "0")?,
        // = sysctl -w net.ipv6.conf.all.forwarding=0
        Cleanup::DisableIp6Forward => std::fs::write(IP6_FORWARD, "0")?,
        // = ip -6 addr del ADDRESS dev LINK
        Cleanup::DeleteAddress6(link, addr) => {
            let nl = Netlink::new()?;
            if let Some(l) = nl.find_link(link)? {
                nl.delete_address6(l.index, *addr)?;
            }
        }
        // = ip addr del ADDRESS dev LINK
        Cleanup::DeleteAddress(link, addr) => {
            let nl = Netlink::new()?;
            if let Some(l) = nl.find_link(link)? {
                nl.delete_address(l.index, *addr)?;
            }
        }
        // = ip link del NAME (only our own vxlan device)
        Cleanup::DeleteDevice(name, vni) => {
            let nl = Netlink::new()?;
            if let Some(l) = nl.find_link(name)? {
                if l.vxlan_id == Some(*vni) {
                    nl.delete_link(l.index)?;
                }
            }
        }
        // = ip route flush proto 86
        Cleanup::FlushRoutes => {
            HostSubnetRoutes::new(Netlink::new()?).reconcile(&[])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(&format!("[underlay]\naddress = \"198.18.0.1\"\n{text}")).unwrap()
    }

    const HOST_SUBNET: &str =
        "[[network]]\nvni = 5\nmode = \"host-subnet\"\nbridge = \"br0\"\nsubnet = \"198.19.1.0/24\"\npeers = [{ address = \"198.18.0.2\", subnet = \"198.19.2.0/24\" }]\n";
    const KERNEL: &str = "[[network]]\nvni = 1042\nmode = \"kernel\"\npeers = [\"198.18.0.2\"]\n";
    const OVERLAY: &str = "[[network]]\nvni = 7\ntap = \"vxs7\"\n";

    #[test]
    fn intended_changes_follow_the_modes() {
        let c = intended(&config(HOST_SUBNET), (false, false));
        assert!(c.enabled_ip_forward && c.routes);
        assert_eq!(c.addresses, vec![("br0".to_string(), "198.19.1.1/24".parse().unwrap())]);
        assert!(!intended(&config(HOST_SUBNET), (true, false)).enabled_ip_forward, "forwarding already on is the host's");
        assert_eq!(intended(&config(KERNEL), (false, false)).devices, vec![("vtep1042".to_string(), 1042)]);
        assert_eq!(intended(&config(OVERLAY), (false, false)), HostChanges::default(), "TAPs vanish with the process");
    }

    #[test]
    fn a_crash_then_a_new_config_undoes_what_is_no_longer_wanted() {
        let crashed = intended(&config(&format!("{HOST_SUBNET}{KERNEL}")), (false, false));
        let next = intended(&config(OVERLAY), (false, false));
        let plan = plan_cleanup(&crashed, &next);
        assert_eq!(
            plan,
            vec![
                Cleanup::DisableIpForward,
                Cleanup::DeleteAddress("br0".into(), "198.19.1.1/24".parse().unwrap()),
                Cleanup::DeleteDevice("vtep1042".into(), 1042),
                Cleanup::FlushRoutes,
            ]
        );
        // The same config again: nothing to undo (its own start reconciles routes and devices).
        assert!(plan_cleanup(&crashed, &crashed).is_empty());
        // A clean shutdown undoes everything.
        assert_eq!(plan_cleanup(&crashed, &HostChanges::default()).len(), 4);
    }

    #[test]
    fn a_dual_stack_network_records_its_ipv6_gateway_and_forwarding_and_a_later_ipv4_config_undoes_them() {
        let dual = Config::parse(&format!(
            "[underlay]\naddress = \"198.18.0.1\"\naddress6 = \"2001:db8:18::1\"\n{}",
            HOST_SUBNET.replace("subnet = \"198.19.1.0/24\"\n", "subnet = \"198.19.1.0/24\"\nsubnet6 = \"fd00:19:1::/64\"\n")
        ))
        .unwrap();
        let c = intended(&dual, (false, false));
        assert_eq!(c.addresses6, vec![("br0".to_string(), "fd00:19:1::1/64".parse().unwrap())]);
        assert!(c.enabled_ip6_forward);
        assert!(!intended(&dual, (false, true)).enabled_ip6_forward, "IPv6 forwarding already on is the host's");
        let ipv4_only = intended(&config(HOST_SUBNET), (false, false));
        assert!(!ipv4_only.enabled_ip6_forward && ipv4_only.addresses6.is_empty());
        assert_eq!(
            plan_cleanup(&c, &ipv4_only),
            vec![Cleanup::DisableIp6Forward, Cleanup::DeleteAddress6("br0".into(), "fd00:19:1::1/64".parse().unwrap())]
        );
        // A record written before IPv6 existed reads without the new fields.
        let old: HostChanges =
            serde_json::from_str(r#"{"enabled_ip_forward":true,"addresses":[["br0","198.19.1.1/24"]],"devices":[],"routes":true}"#)
                .unwrap();
        assert!(old.addresses6.is_empty() && !old.enabled_ip6_forward);
    }

    #[test]
    fn the_record_is_replaced_atomically_and_read_back() {
        let dir = std::env::temp_dir().join(format!("vxs-hoststate-{}", std::process::id()));
        let path = HostState::path_for(&dir.join("vxswitch.sock"));
        let mut state = HostState { path: path.clone(), recorded: HostChanges::default() };
        let changes = intended(&config(HOST_SUBNET), (false, false));
        state.record(changes.clone()).unwrap();
        let back: HostChanges = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, changes);
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
