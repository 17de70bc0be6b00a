//! Inner source checks, on the simulator with hosts built from configuration files: a peer that
//! sends frames or packets claiming a container the cluster's gossip places behind another host
//! is dropped and counted, on overlay and routed networks alike.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch::arp::arp_frame;
use vxswitch::config::Config;
use vxswitch::control::ClusterKey;
use vxswitch::dataplane::{default_gateway_mac, DropReason};
use vxswitch::sim::{ethernet_frame, Sim};
use vxswitch::wire::arp::{ArpOperation, ArpRepr};
use vxswitch::wire::ethernet::EthernetAddress;
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}

fn config(i: usize, network: &str) -> Config {
    let seeds = format!("\"{}\"", ul(usize::from(i == 0)));
    Config::parse(&format!(
        "[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = {VNI}\ntap = \"vxs{i}\"\n{network}\n\n\
         [gossip]\ncluster = \"sim\"\nname = \"n{i}\"\nkey_file = \"/nonexistent\"\nseeds = [{seeds}]\n",
        ul(i)
    ))
    .unwrap()
}

fn cluster(network: impl Fn(usize) -> String) -> Sim {
    let mut sim = Sim::empty(5);
    sim.latency = Duration::from_millis(1);
    for i in 0..3 {
        sim.add_configured(&config(i, &network(i)), ClusterKey::from_bytes([3; 32]), None, 1000 + i as u64);
    }
    sim.run_for(Duration::from_secs(3));
    sim
}

/// VXLAN header (I flag) + `inner`.
fn vxlan(inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend_from_slice(&(VNI.get() << 8).to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// A minimal IPv4/UDP packet from `src` to `dst`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = p.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&[0, 9, 0, 9, 0, 8, 0, 0]);
    p
}

fn spoof_drops(sim: &Sim, host: usize, reason: DropReason) -> u64 {
    sim.hosts[host].switch().counters().drops(reason)
}

#[test]
fn overlay_frames_claiming_another_hosts_container_are_dropped() {
    let mut sim = cluster(|_| String::new());
    let (mac0, ip0) = (EthernetAddress([2, 0, 0, 0, 1, 10]), Ipv4Addr::new(192, 0, 2, 10));
    let garp = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac0,
        source_protocol_addr: ip0,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ip0,
    };
    sim.tap_send(0, 0, &arp_frame(&garp, EthernetAddress::BROADCAST, None));
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.hosts[1].switch().proxy_arp().lookup(VNI, ip0), Some(mac0), "gossip placed the container on host 0");
    sim.take_tap(1, 0);
    // Host 2 sends as host 0's container: by its MAC, then by its IP with another MAC.
    let by_mac = ethernet_frame([0xff; 6], mac0.0, 0x0800, &ipv4(Ipv4Addr::new(192, 0, 2, 99), ip0));
    sim.inject_underlay(ul(2), 1, &vxlan(&by_mac));
    let by_ip = ethernet_frame([0xff; 6], [2, 0, 0, 0, 3, 99], 0x0800, &ipv4(ip0, Ipv4Addr::new(192, 0, 2, 11)));
    sim.inject_underlay(ul(2), 1, &vxlan(&by_ip));
    assert!(sim.take_tap(1, 0).is_empty(), "a spoofed frame reached host 1's TAP");
    assert_eq!(spoof_drops(&sim, 1, DropReason::InnerSourceSpoofed), 2);
    // The same frame from host 0 itself is delivered.
    sim.inject_underlay(ul(0), 1, &vxlan(&by_mac));
    assert_eq!(sim.take_tap(1, 0), vec![by_mac]);
}

#[test]
fn routed_packets_from_another_hosts_subnet_are_dropped() {
    let mut sim = cluster(|i| format!("mode = \"routed\"\nsubnet = \"10.9.{i}.0/24\""));
    assert_eq!(sim.hosts[1].view.routes.get(&(VNI, "10.9.0.0/24".parse().unwrap())), Some(&ul(0)));
    let gw = default_gateway_mac(VNI).0;
    let to_host1 = |src: Ipv4Addr| ethernet_frame(gw, [2, 0, 0, 0, 9, 9], 0x0800, &ipv4(src, Ipv4Addr::new(10, 9, 1, 5)));
    // From host 2, claiming an address of host 0's subnet, then one of host 1's own.
    sim.inject_underlay(ul(2), 1, &vxlan(&to_host1(Ipv4Addr::new(10, 9, 0, 5))));
    sim.inject_underlay(ul(2), 1, &vxlan(&to_host1(Ipv4Addr::new(10, 9, 1, 7))));
    assert_eq!(spoof_drops(&sim, 1, DropReason::RoutedSourceSpoofed), 2);
    // Host 2's own containers, and host 0's sent by host 0, pass the check.
    sim.inject_underlay(ul(2), 1, &vxlan(&to_host1(Ipv4Addr::new(10, 9, 2, 5))));
    sim.inject_underlay(ul(0), 1, &vxlan(&to_host1(Ipv4Addr::new(10, 9, 0, 5))));
    assert_eq!(spoof_drops(&sim, 1, DropReason::RoutedSourceSpoofed), 2);
}
