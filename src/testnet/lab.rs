//! A lab: N hosts with containers, in network namespaces on this machine.
//!
//! ```text
//!   container ─veth─ [br0 + vxs1042 TAP | vtep1042] host-i ─veth─┐
//!                                                                 ├─ bridge "ul" in the underlay namespace
//!   container ─veth─ [br0 + ...]                     host-j ─veth─┘
//! ```
//! Host i has underlay addresses 198.18.0.(i+1)/24 (RFC 2544 benchmarking range) and
//! 2001:db8:18::(i+1)/64 (documentation range, added without DAD so it is usable at once);
//! vxswitch and kernel vxlan use the IPv6 one in labs built with [`Lab::build_ipv6`]. Containers
//! share the overlay subnet 192.0.2.0/24 (documentation range). Everything is named after a unique
//! prefix and removed when the lab is dropped, also when set-up fails half way or a test panics.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::netns::Netns;
use crate::sys::daemon::control_socket;

/// Underlay MTU of the lab.
pub const UNDERLAY_MTU: u32 = 1500;
/// Container MTU at build: the VXLAN overlay MTU (underlay MTU minus 50 bytes of VXLAN
/// overhead); tests of other encapsulations or MTUs set it with [`Lab::set_container_mtu`].
pub const CONTAINER_MTU: u32 = 1450;
/// Container MTU at build in a lab over an IPv6 underlay: 20 bytes less (VXLAN over IPv6 costs
/// 70 bytes).
pub const CONTAINER_MTU_IPV6: u32 = 1430;
/// The VNI of the lab overlay.
pub const VNI: u32 = 1042;

/// How a host joins the overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A vxswitch daemon with its TAP on the host bridge.
    Vxswitch,
    /// A Linux kernel vxlan device `vtep1042` on the host bridge (configured as Rancher did).
    KernelVxlan,
    /// No overlay device at all (the caller sets the host up, e.g. host-subnet routing).
    Bare,
}

/// A container: a namespace with one veth into its host's bridge.
#[derive(Debug)]
pub struct Container {
    /// The namespace.
    pub ns: Netns,
    /// Its address.
    pub ip: Ipv4Addr,
}

/// A host namespace.
#[derive(Debug)]
pub struct Host {
    /// The namespace.
    pub ns: Netns,
    /// Underlay address (on `eth0`).
    pub underlay_ip: Ipv4Addr,
    /// How it joins the overlay.
    pub kind: HostKind,
    /// Its containers.
    pub containers: Vec<Container>,
}

/// A running lab. Dropping it stops the daemons and deletes every namespace.
#[derive(Debug)]
pub struct Lab {
    daemons: Vec<Option<Child>>,
    /// Hosts (dropped before the underlay).
    pub hosts: Vec<Host>,
    /// The underlay namespace holding bridge `ul`.
    pub underlay: Netns,
    /// Extra router namespaces in the underlay path ([`Lab::route_underlay`]).
    pub routers: Vec<Netns>,
    /// Scratch directory for configs, logs and control sockets.
    pub dir: PathBuf,
    bin: PathBuf,
    prefix: String,
    /// vxswitch and kernel vxlan run over the hosts' IPv6 underlay addresses.
    ipv6: bool,
}

/// How containers are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// One overlay subnet across hosts: 192.0.2.0/24 (L2 overlay).
    Shared,
    /// One subnet per host: host i owns 198.19.(i+1).0/24, gateway .1, containers from .10 on
    /// (routed overlay and host-subnet modes).
    PerHost,
}

/// Host `i`'s container subnet under [`Addressing::PerHost`].
pub fn host_subnet(i: usize) -> ipnet::Ipv4Net {
    ipnet::Ipv4Net::new(Ipv4Addr::new(198, 19, (i + 1) as u8, 0), 24).expect("valid")
}

/// Host `i`'s gateway address under [`Addressing::PerHost`].
pub fn host_gateway(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, (i + 1) as u8, 1)
}

/// AES-256-GCM key material (32-byte key + 4-byte salt, hex as `ip xfrm` takes it) of the lab's
/// manual SA from host `from` to host `to`. Test keys only.
pub fn lab_esp_key(from: usize, to: usize) -> String {
    format!("0x{}", (0..36).map(|i| format!("{:02x}", (i * 7 + from * 31 + to * 13) as u8)).collect::<String>())
}

/// SPI of the lab's manual SA from host `from` to host `to`.
pub fn lab_esp_spi(from: usize, to: usize) -> u32 {
    0x1000 + (from as u32) * 16 + to as u32
}

/// Underlay address of host `i` (0-based).
pub fn underlay_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, (i + 1) as u8)
}

/// IPv6 underlay address of host `i` (0-based).
pub fn underlay_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, (i + 1) as u16)
}

/// Overlay address of container `j` of host `i`.
pub fn container_ip(i: usize, j: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, (10 * (i + 1) + j + 1) as u8)
}

/// IPv6 overlay address of container `j` of host `i` (`fd00:42::` + the IPv4 host part).
pub fn container_ip6(i: usize, j: usize) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::new(0xfd00, 0x42, 0, 0, 0, 0, 0, (10 * (i + 1) + j + 1) as u16)
}

/// The underlay link `dev` of a host speaks IPv6 too: enabled, no DAD (the address is usable at
/// once; the lab assigns unique ones), no router solicitations.
fn enable_underlay_ipv6(ns: &Netns, dev: &str) -> io::Result<()> {
    ns.sysctl(&format!("net.ipv6.conf.{dev}.accept_dad"), "0")?;
    ns.sysctl(&format!("net.ipv6.conf.{dev}.router_solicitations"), "0")?;
    ns.sysctl(&format!("net.ipv6.conf.{dev}.disable_ipv6"), "0")
}

/// The IPv6 half of [`Lab::route_underlay`]: routers `a` (the underlay namespace, on bridge
/// `ul`) and `b` (on `h1`) joined by `mid` of `mtu` bytes, each routing the far host's /128 over
/// it and answering the near host's solicitations for the far one (proxy NDP).
fn route_underlay6(a: &Netns, b: &Netns, mtu: &str) -> io::Result<()> {
    for (ns, mid, lan, lan_ip, far, via) in [
        (a, "2001:db8:51::1/64", "ul", "2001:db8:18::fe/64", underlay_ip6(1), "2001:db8:51::2"),
        (b, "2001:db8:51::2/64", "h1", "2001:db8:18::fd/64", underlay_ip6(0), "2001:db8:51::1"),
    ] {
        ns.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        for dev in ["mid", lan] {
            enable_underlay_ipv6(ns, dev)?;
        }
        ns.ip(&["-6", "addr", "add", mid, "dev", "mid", "nodad"])?;
        ns.ip(&["link", "set", "mid", "mtu", mtu, "up"])?;
        ns.ip(&["-6", "addr", "add", lan_ip, "dev", lan, "nodad"])?;
        ns.ip(&["link", "set", lan, "up"])?;
        ns.ip(&["-6", "route", "add", &format!("{far}/128"), "via", via, "dev", "mid"])?;
        ns.sysctl(&format!("net.ipv6.conf.{lan}.proxy_ndp"), "1")?;
        ns.ip(&["-6", "neigh", "add", "proxy", &far.to_string(), "dev", lan])?;
    }
    Ok(())
}

impl Container {
    /// The MAC address of the container's `eth0`.
    pub fn mac(&self) -> io::Result<String> {
        let out = self.ns.output("cat", &["/sys/class/net/eth0/address"])?;
        Ok(out.trim().to_string())
    }
}

impl Lab {
    /// Build hosts of the given kinds with `containers` containers each. `tag` goes into every
    /// name (keep it short), together with the process id so parallel runs never collide.
    /// `bin` is the vxswitch executable to run on [`HostKind::Vxswitch`] hosts.
    pub fn build(tag: &str, kinds: &[HostKind], containers: usize, bin: &Path) -> io::Result<Lab> {
        Lab::build_with(tag, kinds, containers, bin, Addressing::Shared)
    }

    /// As [`Lab::build`], with a choice of container addressing.
    pub fn build_with(tag: &str, kinds: &[HostKind], containers: usize, bin: &Path, addressing: Addressing) -> io::Result<Lab> {
        Lab::build_inner(tag, kinds, containers, bin, addressing, false)
    }

    /// As [`Lab::build`], with vxswitch and kernel vxlan on the hosts' IPv6 underlay addresses
    /// ([`underlay_ip6`]) and containers at [`CONTAINER_MTU_IPV6`].
    pub fn build_ipv6(tag: &str, kinds: &[HostKind], containers: usize, bin: &Path) -> io::Result<Lab> {
        Lab::build_inner(tag, kinds, containers, bin, Addressing::Shared, true)
    }

    /// As [`Lab::build_ipv6`], with a choice of container addressing.
    pub fn build_ipv6_with(tag: &str, kinds: &[HostKind], containers: usize, bin: &Path, addressing: Addressing) -> io::Result<Lab> {
        Lab::build_inner(tag, kinds, containers, bin, addressing, true)
    }

    fn build_inner(tag: &str, kinds: &[HostKind], containers: usize, bin: &Path, addressing: Addressing, ipv6: bool) -> io::Result<Lab> {
        let prefix = format!("vxs-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        fs::create_dir_all(&dir)?;
        let underlay = Netns::create(&format!("{prefix}-ul"))?;
        underlay.ip(&["link", "add", "ul", "type", "bridge"])?;
        underlay.ip(&["link", "set", "ul", "up"])?;
        let mut lab =
            Lab { daemons: Vec::new(), hosts: Vec::new(), underlay, routers: Vec::new(), dir, bin: bin.to_path_buf(), prefix, ipv6 };
        for (i, kind) in kinds.iter().enumerate() {
            let host = lab.build_host(i, *kind, containers, addressing)?;
            lab.hosts.push(host);
            lab.daemons.push(None);
        }
        for (i, kind) in kinds.iter().enumerate() {
            match kind {
                HostKind::Vxswitch => lab.start_vxswitch(i, "")?,
                HostKind::KernelVxlan => lab.add_kernel_vxlan(i)?,
                HostKind::Bare => {}
            }
        }
        Ok(lab)
    }

    fn build_host(&self, i: usize, kind: HostKind, containers: usize, addressing: Addressing) -> io::Result<Host> {
        let ns = Netns::create(&format!("{}-h{i}", self.prefix))?;
        let ul_port = format!("h{i}");
        self.underlay.ip(&["link", "add", &ul_port, "type", "veth", "peer", "name", "eth0", "netns", ns.name()])?;
        self.underlay.ip(&["link", "set", &ul_port, "master", "ul", "up"])?;
        let ip = underlay_ip(i);
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        enable_underlay_ipv6(&ns, "eth0")?;
        ns.ip(&["-6", "addr", "add", &format!("{}/64", underlay_ip6(i)), "dev", "eth0", "nodad"])?;
        ns.ip(&["link", "set", "eth0", "mtu", &UNDERLAY_MTU.to_string(), "up"])?;
        ns.ip(&["link", "add", "br0", "type", "bridge"])?;
        ns.ip(&["link", "set", "br0", "up"])?;
        let mut host = Host { ns, underlay_ip: ip, kind, containers: Vec::new() };
        for j in 0..containers {
            let c = Netns::create(&format!("{}-h{i}c{j}", self.prefix))?;
            let port = format!("c{j}");
            host.ns.ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", c.name()])?;
            host.ns.ip(&["link", "set", &port, "master", "br0", "up"])?;
            let cip = match addressing {
                Addressing::Shared => container_ip(i, j),
                Addressing::PerHost => Ipv4Addr::new(198, 19, (i + 1) as u8, (10 + j) as u8),
            };
            c.ip(&["addr", "add", &format!("{cip}/24"), "dev", "eth0"])?;
            c.ip(&["link", "set", "eth0", "mtu", &self.container_mtu().to_string(), "up"])?;
            if addressing == Addressing::PerHost {
                c.ip(&["route", "add", "default", "via", &host_gateway(i).to_string()])?;
            }
            host.containers.push(Container { ns: c, ip: cip });
        }
        Ok(host)
    }

    /// Underlay addresses of every host but `i`.
    pub fn peers_of(&self, i: usize) -> Vec<IpAddr> {
        (0..self.hosts.len()).filter(|&k| k != i).map(|k| self.underlay_addr(k)).collect()
    }

    /// The underlay address vxswitch and kernel vxlan use on host `i`: [`underlay_ip`], or
    /// [`underlay_ip6`] in a lab built with [`Lab::build_ipv6`].
    pub fn underlay_addr(&self, i: usize) -> IpAddr {
        if self.ipv6 {
            underlay_ip6(i).into()
        } else {
            underlay_ip(i).into()
        }
    }

    /// The containers' MTU at build: the VXLAN overlay MTU over this lab's underlay.
    pub fn container_mtu(&self) -> u32 {
        if self.ipv6 {
            CONTAINER_MTU_IPV6
        } else {
            CONTAINER_MTU
        }
    }

    /// Control socket path of host `i`'s daemon.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.dir.join(format!("h{i}.sock"))
    }

    /// Log file of host `i`'s daemon.
    pub fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("h{i}.log"))
    }

    /// The default vxswitch configuration of host `i` (plus `extra` appended).
    pub fn vxswitch_config(&self, i: usize, extra: &str) -> String {
        let peers: Vec<String> = self.peers_of(i).iter().map(|p| format!("\"{p}\"")).collect();
        format!(
            "control_socket = \"{sock}\"\n\n[underlay]\naddress = \"{ip}\"\n\n[[network]]\nvni = {VNI}\ntap = \"vxs{VNI}\"\nbridge = \"br0\"\npeers = [{peers}]\n{extra}",
            sock = self.socket(i).display(),
            ip = self.underlay_addr(i),
            peers = peers.join(", "),
        )
    }

    /// The configuration of host `i` for a per-host-subnet network in `mode` ("routed" or
    /// "host-subnet"), with every other host as a peer owning its subnet.
    pub fn subnet_config(&self, i: usize, mode: &str, peers: &[usize]) -> String {
        let peers: Vec<String> = peers
            .iter()
            .filter(|&&k| k != i)
            .map(|&k| format!("{{ address = \"{}\", subnet = \"{}\" }}", self.underlay_addr(k), host_subnet(k)))
            .collect();
        let tap = if mode == "host-subnet" { String::new() } else { format!("tap = \"vxs{VNI}\"\n") };
        format!(
            "control_socket = \"{sock}\"\n\n[underlay]\naddress = \"{ip}\"\n\n[[network]]\nvni = {VNI}\nmode = \"{mode}\"\n{tap}bridge = \"br0\"\nsubnet = \"{subnet}\"\npeers = [{peers}]\n",
            sock = self.socket(i).display(),
            ip = self.underlay_addr(i),
            subnet = host_subnet(i),
            peers = peers.join(", "),
        )
    }

    /// Host `i` in a gossip cluster: per-host subnet in `mode`, no static peers, joining through
    /// the hosts in `seeds` (see [`Lab::gossip_section`]).
    pub fn gossip_config(&self, i: usize, mode: &str, seeds: &[usize]) -> io::Result<String> {
        Ok(format!(
            "{}
{}",
            self.subnet_config(i, mode, &[]),
            self.gossip_section(i, seeds)?
        ))
    }

    /// Host `i` on an L2 overlay network (shared subnet) with no static peers, in a gossip
    /// cluster joining through the hosts in `seeds` (see [`Lab::gossip_section`]).
    pub fn overlay_gossip_config(&self, i: usize, seeds: &[usize]) -> io::Result<String> {
        Ok(format!(
            "control_socket = \"{sock}\"\n\n[underlay]\naddress = \"{ip}\"\n\n[[network]]\nvni = {VNI}\ntap = \"vxs{VNI}\"\nbridge = \"br0\"\n\n{gossip}",
            sock = self.socket(i).display(),
            ip = self.underlay_addr(i),
            gossip = self.gossip_section(i, seeds)?,
        ))
    }

    /// Host `i`'s `[gossip]` section, joining through the hosts in `seeds` (itself left out). The
    /// cluster key is created on first use in the lab directory, and each host keeps its gossip
    /// state (signing key, trust store) there too.
    pub fn gossip_section(&self, i: usize, seeds: &[usize]) -> io::Result<String> {
        let key = self.dir.join("cluster.key");
        if !key.exists() {
            super::netns::run_cmd(std::process::Command::new(&self.bin).arg("genkey").arg(&key))?;
        }
        let seeds: Vec<String> = seeds.iter().filter(|&&k| k != i).map(|&k| format!("\"{}\"", self.underlay_addr(k))).collect();
        Ok(format!(
            "[gossip]\ncluster = \"lab\"\nname = \"h{i}\"\nkey_file = \"{key}\"\nseeds = [{seeds}]\nstate_dir = \"{state}\"\n",
            key = key.display(),
            state = self.dir.join(format!("h{i}-state")).display(),
            seeds = seeds.join(", ")
        ))
    }

    /// Host `i` on an ESP-encrypted network with manual keys for every other host: routed (per-host
    /// subnets, IPv4 in ESP) or overlay (shared subnet, Ethernet in ESP). Keys are fixed test keys
    /// from [`lab_esp_key`], so a decoder can be given the same ones.
    pub fn esp_manual_config(&self, i: usize, routed: bool) -> String {
        let others: Vec<usize> = (0..self.hosts.len()).filter(|&k| k != i).collect();
        let peers: Vec<String> = others
            .iter()
            .map(|&k| {
                let subnet = if routed { format!(", subnet = \"{}\"", host_subnet(k)) } else { String::new() };
                format!(
                    "{{ address = \"{}\"{subnet}, esp = {{ spi_out = \"{:#x}\", key_out = \"{}\", spi_in = \"{:#x}\", key_in = \"{}\" }} }}",
                    self.underlay_addr(k),
                    lab_esp_spi(i, k),
                    lab_esp_key(i, k),
                    lab_esp_spi(k, i),
                    lab_esp_key(k, i)
                )
            })
            .collect();
        let base = if routed { self.subnet_config(i, "routed", &[]) } else { self.vxswitch_config(i, "") };
        let from = if routed {
            "peers = []".to_string()
        } else {
            format!("peers = [{}]", others.iter().map(|&k| format!("\"{}\"", self.underlay_addr(k))).collect::<Vec<_>>().join(", "))
        };
        // Each host keeps its sequence reservations in the lab directory, never in /var/lib.
        let state = format!("[esp]\nstate_file = \"{}\"\n\n[[network]]", self.esp_state_file(i).display());
        base.replace(&from, &format!("encryption = \"esp\"\npeers = [{}]", peers.join(", "))).replacen("[[network]]", &state, 1)
    }

    /// The ESP state file (sequence reservations, epoch) of host `i` in [`Lab::esp_manual_config`].
    pub fn esp_state_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("h{i}.esp-state"))
    }

    /// Write `config` for host `i` and start its daemon; waits until it answers on its socket.
    pub fn start_vxswitch_with(&mut self, i: usize, config: &str) -> io::Result<()> {
        let path = self.dir.join(format!("h{i}.toml"));
        fs::write(&path, config)?;
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log(i))?;
        let bin = self.bin.to_string_lossy().into_owned();
        let child = self.hosts[i].ns.spawn(&bin, &["run", "--config", &path.to_string_lossy()], Stdio::from(log))?;
        self.daemons[i] = Some(child);
        self.wait_ready(i, Duration::from_secs(10))
    }

    /// Start host `i`'s daemon with the default configuration plus `extra`.
    pub fn start_vxswitch(&mut self, i: usize, extra: &str) -> io::Result<()> {
        let config = self.vxswitch_config(i, extra);
        self.start_vxswitch_with(i, &config)
    }

    fn wait_ready(&mut self, i: usize, patience: Duration) -> io::Result<()> {
        let start = Instant::now();
        loop {
            if control_socket::query(&self.socket(i), "stats").is_ok() {
                return Ok(());
            }
            if let Some(child) = self.daemons[i].as_mut() {
                if let Some(status) = child.try_wait()? {
                    return Err(io::Error::other(format!(
                        "vxswitch on host {i} exited ({status}): {}",
                        fs::read_to_string(self.log(i)).unwrap_or_default()
                    )));
                }
            }
            if start.elapsed() > patience {
                return Err(io::Error::other(format!("vxswitch on host {i} did not come up")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop host `i`'s daemon with SIGTERM (SIGKILL after 5 s). Returns whether it exited cleanly.
    pub fn stop_vxswitch(&mut self, i: usize) -> io::Result<bool> {
        let Some(mut child) = self.daemons[i].take() else { return Ok(true) };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill()?;
        child.wait()?;
        Ok(false)
    }

    /// Kill host `i`'s daemon with SIGKILL (a crash).
    pub fn kill_vxswitch(&mut self, i: usize) -> io::Result<()> {
        if let Some(mut child) = self.daemons[i].take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Host `i`'s daemon status as JSON.
    pub fn stats(&self, i: usize) -> io::Result<serde_json::Value> {
        let text = control_socket::query(&self.socket(i), "stats")?;
        serde_json::from_str(&text).map_err(io::Error::other)
    }

    /// Add kernel vxlan device `vtep1042` on host `i`, flooding to every other host.
    /// // = ip link add vtep1042 type vxlan id 1042 dstport 4789 local IP dev eth0 nolearning
    /// //   bridge fdb append 00:00:00:00:00:00 dev vtep1042 dst PEER
    pub fn add_kernel_vxlan(&self, i: usize) -> io::Result<()> {
        let h = &self.hosts[i].ns;
        let local = self.underlay_addr(i).to_string();
        let vni = VNI.to_string();
        h.ip(&["link", "add", "vtep1042", "type", "vxlan", "id", &vni, "dstport", "4789", "local", &local, "dev", "eth0", "nolearning"])?;
        h.ip(&["link", "set", "vtep1042", "mtu", &self.container_mtu().to_string(), "master", "br0", "up"])?;
        for peer in self.peers_of(i) {
            super::netns::run_cmd(std::process::Command::new("bridge").args([
                "-n",
                h.name(),
                "fdb",
                "append",
                "00:00:00:00:00:00",
                "dev",
                "vtep1042",
                "dst",
                &peer.to_string(),
            ]))?;
        }
        Ok(())
    }

    /// Put two routers between host 0 and host 1 of a two-host lab, joined by a link of
    /// `middle_mtu` bytes, so that each direction leaves a router through a smaller link than it
    /// came in on (1500): that router drops DF packets above `middle_mtu` and answers with ICMP
    /// "fragmentation needed", as a real underlay would.
    ///
    /// ```text
    /// host0 eth0 ─ [ul bridge, 198.18.0.254]  router A (the underlay namespace)
    ///                  └ mid 198.51.100.1/30 ══ MTU middle_mtu ══ mid 198.51.100.2/30
    ///                                          router B [h1, 198.18.0.253] ─ eth0 host1
    /// ```
    /// The hosts keep their addresses (198.18.0.1-2/24): proxy ARP on the routers answers for the
    /// far host, so nothing in the hosts' configuration changes.
    ///
    /// In a lab built with [`Lab::build_ipv6`] the routers route IPv6 instead (forwarding on,
    /// the middle link 2001:db8:51::1-2/64, proxy NDP for the far host), so a packet too big
    /// for the middle link is answered with ICMPv6 "packet too big" by the router it enters.
    pub fn route_underlay(&mut self, middle_mtu: u32) -> io::Result<()> {
        assert_eq!(self.hosts.len(), 2, "a routed underlay joins two hosts");
        let b = Netns::create(&format!("{}-rb", self.prefix))?;
        self.routers.push(b);
        let (a, b, h1) = (&self.underlay, &self.routers[0], &self.hosts[1].ns);
        // Host 1 moves from the bridge to router B.
        a.ip(&["link", "del", "h1"])?;
        b.ip(&["link", "add", "h1", "type", "veth", "peer", "name", "eth0", "netns", h1.name()])?;
        h1.ip(&["addr", "add", &format!("{}/24", underlay_ip(1)), "dev", "eth0"])?;
        enable_underlay_ipv6(h1, "eth0")?;
        h1.ip(&["-6", "addr", "add", &format!("{}/64", underlay_ip6(1)), "dev", "eth0", "nodad"])?;
        h1.ip(&["link", "set", "eth0", "mtu", &UNDERLAY_MTU.to_string(), "up"])?;
        a.ip(&["link", "add", "mid", "type", "veth", "peer", "name", "mid", "netns", b.name()])?;
        let mtu = middle_mtu.to_string();
        if self.ipv6 {
            return route_underlay6(a, b, &mtu);
        }
        for (ns, mid, lan, lan_ip, far, via) in [
            (a, "198.51.100.1/30", "ul", "198.18.0.254/24", underlay_ip(1), "198.51.100.2"),
            (b, "198.51.100.2/30", "h1", "198.18.0.253/24", underlay_ip(0), "198.51.100.1"),
        ] {
            ns.ip(&["addr", "add", mid, "dev", "mid"])?;
            ns.ip(&["link", "set", "mid", "mtu", &mtu, "up"])?;
            ns.ip(&["addr", "add", lan_ip, "dev", lan])?;
            ns.ip(&["link", "set", lan, "up"])?;
            ns.ip(&["route", "add", &format!("{far}/32"), "via", via])?;
            ns.sysctl("net.ipv4.ip_forward", "1")?;
            ns.sysctl(&format!("net.ipv4.conf.{lan}.proxy_arp"), "1")?;
        }
        Ok(())
    }

    /// Give every container its [`container_ip6`] (`/64`, without DAD so that it is usable at
    /// once). IPv6 is on everywhere in a lab (link-local addresses, DAD, MLD and router
    /// solicitations included), as on a real host.
    pub fn add_container_ipv6(&self) -> io::Result<()> {
        for (i, h) in self.hosts.iter().enumerate() {
            for (j, c) in h.containers.iter().enumerate() {
                c.ns.ip(&["-6", "addr", "add", &format!("{}/64", container_ip6(i, j)), "dev", "eth0", "nodad"])?;
            }
        }
        Ok(())
    }

    /// Set the MTU of every container's `eth0` (e.g. to the TAP MTU vxswitch chose).
    pub fn set_container_mtu(&self, mtu: u32) -> io::Result<()> {
        for c in self.hosts.iter().flat_map(|h| &h.containers) {
            c.ns.ip(&["link", "set", "eth0", "mtu", &mtu.to_string()])?;
        }
        Ok(())
    }

    /// The vxswitch executable the lab runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Namespace names of this lab (for leak checks).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Process id of host `i`'s vxswitch daemon, if one is running (for CPU accounting from
    /// `/proc/PID/stat`; `ip netns exec` execs the daemon, so this is the daemon's own pid).
    pub fn daemon_pid(&self, i: usize) -> Option<u32> {
        self.daemons.get(i)?.as_ref().map(Child::id)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.daemons.len() {
            let _ = self.stop_vxswitch(i);
        }
        // A failing test names this directory in its message: keep the daemons' logs there.
        if std::thread::panicking() {
            eprintln!("lab: logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
