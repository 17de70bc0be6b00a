//! The ND proxy on real kernels: two vxswitch hosts that know each other only by gossip, two
//! containers each with IPv6 on the L2 overlay. Once the containers' IPv6 bindings are known,
//! no Neighbor Solicitation crosses the underlay (checked on a capture), a forged Neighbor
//! Advertisement is dropped and counted, and a container that tries to take another host's
//! container address fails DAD because vxswitch defends it. Needs root; without it the test
//! prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;
#[path = "common/traffic.rs"]
mod traffic;

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use netns_common::have_root;
use traffic::{vxlan_inner, Capture};
use vxswitch::nd::{ndisc_frame, ALL_NODES};
use vxswitch::sys::daemon::control_socket::query;
use vxswitch::testnet::lab::{container_ip6, Addressing, HostKind, Lab, VNI};
use vxswitch::testnet::setns;
use vxswitch::wire::ethernet::EthernetAddress;
use vxswitch::wire::icmpv6::{NdiscRepr, NeighborFlags};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vxswitch"))
}

/// Host `i` on the lab's L2 overlay network with no static peers, in a gossip cluster seeded by
/// host 0.
fn overlay_gossip_config(lab: &Lab, i: usize) -> String {
    let gossip = lab.gossip_config(i, "routed", &[0]).unwrap();
    let gossip = &gossip[gossip.find("\n[gossip]").unwrap()..];
    let base = lab.vxswitch_config(i, "");
    let base: Vec<&str> = base.lines().filter(|l| !l.starts_with("peers =")).collect();
    format!("{}\n{gossip}", base.join("\n"))
}

/// (sent, received) of `count` ICMPv6 echo requests (see [`traffic::ping6`]).
fn ping6(lab: &Lab, host: usize, container: usize, dst: Ipv6Addr, count: u32) -> (u32, u32) {
    traffic::ping6(lab, host, container, &dst.to_string(), count)
}

fn all_containers(lab: &Lab) -> Vec<(usize, usize)> {
    (0..lab.hosts.len()).flat_map(|h| (0..lab.hosts[h].containers.len()).map(move |c| (h, c))).collect()
}

/// Every container pings every other container's IPv6 address; returns the lost pairs.
fn all_pairs_ping6(lab: &Lab, count: u32) -> Vec<String> {
    let all = all_containers(lab);
    let mut failures = Vec::new();
    for &(h, c) in &all {
        for &(dh, dc) in all.iter().filter(|&&d| d != (h, c)) {
            let dst = container_ip6(dh, dc);
            let (sent, got) = ping6(lab, h, c, dst, count);
            if sent != count || got != count {
                failures.push(format!("{} -> {dst}: {got}/{sent}", container_ip6(h, c)));
            }
        }
    }
    failures
}

fn proxy_nd_len(lab: &Lab, host: usize) -> u64 {
    let answer = query(&lab.socket(host), &format!("cni bindings {VNI}")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    v["proxy_nd"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

fn counter(lab: &Lab, host: usize, path: &[&str]) -> u64 {
    let stats = lab.stats(host).unwrap();
    let mut v = &stats["counters"];
    for p in path {
        v = &v[*p];
    }
    v.as_u64().unwrap_or_else(|| panic!("{path:?} in {stats}"))
}

/// Inner ICMPv6 messages of type `ty` in captured VXLAN frames.
fn inner_icmp6(frames: &[Vec<u8>], ty: u8) -> usize {
    frames
        .iter()
        .filter_map(|f| vxlan_inner(f))
        .filter(|inner| inner.len() > 14 + 40 && inner[12..14] == [0x86, 0xdd] && inner[14 + 6] == 58 && inner[14 + 40] == ty)
        .count()
}

/// Send one Ethernet frame out of `eth0` of the namespace `ns` (a raw packet socket).
fn send_raw(ns: &str, frame: Vec<u8>) {
    setns::run_in(ns, move || {
        // SAFETY: a raw packet socket written from a local buffer; closed at the end.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "AF_PACKET socket");
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            addr.sll_halen = 6;
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(sent, frame.len() as isize);
            libc::close(fd);
        }
    })
    .unwrap();
}

#[test]
fn netns_nd_proxy_no_solicitation_crosses_spoofed_na_dropped_dad_defended() {
    if !have_root("netns_nd_proxy_no_solicitation_crosses_spoofed_na_dropped_dad_defended") {
        return;
    }
    let mut lab = Lab::build_with("nd", &[HostKind::Bare, HostKind::Bare], 2, bin(), Addressing::Shared).unwrap();
    lab.add_container_ipv6().unwrap();
    for i in 0..2 {
        let config = overlay_gossip_config(&lab, i);
        lab.start_vxswitch_with(i, &config).unwrap();
    }
    // Warm up until every pair answers: the containers' solicitations and advertisements teach
    // each host its own containers, and gossip tells the other host.
    let start = Instant::now();
    loop {
        let lost = all_pairs_ping6(&lab, 1);
        if lost.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the IPv6 overlay does not work: {lost:?}; logs in {}", lab.dir.display());
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = Instant::now();
    while (0..2).any(|h| proxy_nd_len(&lab, h) < 2) {
        assert!(start.elapsed() < Duration::from_secs(10), "bindings not spread: {} {}", proxy_nd_len(&lab, 0), proxy_nd_len(&lab, 1));
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("nd: remote IPv6 bindings known everywhere {:?} after the warm-up", start.elapsed());

    // Cold neighbour caches, then all pairs again under capture: no NS crosses.
    for (h, c) in all_containers(&lab) {
        lab.hosts[h].containers[c].ns.ip(&["-6", "neigh", "flush", "dev", "eth0"]).unwrap();
    }
    let replies_before = counter(&lab, 0, &["nd_replies"]) + counter(&lab, 1, &["nd_replies"]);
    let pcap = lab.dir.join("nd.pcap");
    let capture = Capture::start(&lab, "ul", "udp port 4789", &pcap);
    let lost = all_pairs_ping6(&lab, 3);
    let frames = capture.stop();
    assert!(lost.is_empty(), "lost pings: {lost:?}");
    let (ns, echo) = (inner_icmp6(&frames, 135), inner_icmp6(&frames, 128));
    let replies = counter(&lab, 0, &["nd_replies"]) + counter(&lab, 1, &["nd_replies"]) - replies_before;
    let local = counter(&lab, 0, &["nd_local_target"]) + counter(&lab, 1, &["nd_local_target"]);
    eprintln!(
        "nd: {} VXLAN frames captured, {echo} echo requests, {ns} neighbour solicitations; {replies} answered by the proxy",
        frames.len()
    );
    assert_eq!(ns, 0, "solicitations crossed the underlay");
    assert_eq!(echo, 2 * 2 * 2 * 3, "every cross-host echo request was captured");
    assert!(replies >= 4, "the proxy answered the cold caches: {replies}");
    assert!(local > 0, "solicitations between containers of one host stayed there");

    // A container on host 1 forges an advertisement for host 0's container 0.
    let victim = container_ip6(0, 0);
    let evil = EthernetAddress([0x02, 0xee, 0, 0, 0, 1]);
    let forged = NdiscRepr::NeighborAdvert { flags: NeighborFlags::OVERRIDE, target_addr: victim, lladdr: Some(evil) };
    let frame = ndisc_frame(&forged, evil, victim, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), ALL_NODES, None);
    let spoofed_before = counter(&lab, 1, &["drops", "nd_spoofed"]);
    let capture = Capture::start(&lab, "ul", "udp port 4789", &lab.dir.join("spoof.pcap"));
    for _ in 0..3 {
        send_raw(lab.hosts[1].containers[1].ns.name(), frame.clone());
    }
    // The same container then tries to take the address the ordinary way: DAD fails, because
    // host 1 defends it on behalf of host 0's container.
    let c = &lab.hosts[1].containers[1].ns;
    c.ip(&["-6", "addr", "add", &format!("{victim}/64"), "dev", "eth0"]).unwrap();
    let start = Instant::now();
    let addr = loop {
        let out = c.output("ip", &["-6", "addr", "show", "dev", "eth0"]).unwrap();
        if out.contains("dadfailed") || start.elapsed() > Duration::from_secs(5) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let frames = capture.stop();
    assert!(addr.contains("dadfailed"), "the stolen address passed DAD: {addr}");
    assert_eq!(counter(&lab, 1, &["drops", "nd_spoofed"]) - spoofed_before, 3, "every forged advertisement dropped");
    assert!(counter(&lab, 1, &["nd_dad_defended"]) >= 1);
    assert_eq!(inner_icmp6(&frames, 136), 0, "neither the forgery nor a defence crossed");
    assert_eq!(inner_icmp6(&frames, 135), 0, "the DAD probe did not cross");
    // The victim is untouched: reachable from host 1 by its real MAC.
    assert_eq!(ping6(&lab, 1, 0, victim, 3), (3, 3));
    let neigh = lab.hosts[1].containers[0].ns.output("ip", &["-6", "neigh", "show", &victim.to_string()]).unwrap();
    let real = lab.hosts[0].containers[0].mac().unwrap();
    assert!(neigh.contains(&real), "host 1's container resolved the victim to its real MAC {real}: {neigh}");
}
