//! Dual-stack routed networks over gossip, on the simulator (virtual time, no root): hosts built
//! from configuration files learn each other's IPv4 and IPv6 subnets from gossip, and ping6
//! crosses the anycast gateway with the hop limit decremented once, the destination container
//! resolved with a Neighbor Solicitation; time exceeded and unreachable come back from `gateway6`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use etherparse::{icmpv6, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use vxswitch::config::Config;
use vxswitch::control::ClusterKey;
use vxswitch::dataplane::{default_gateway_mac, DropReason};
use vxswitch::nd::{ndisc_frame, parse as parse_nd};
use vxswitch::sim::Sim;
use vxswitch::wire::ethernet::{EthernetAddress, EthernetFrame};
use vxswitch::wire::icmpv6::{NdiscRepr, NeighborFlags};
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);
const HOSTS: usize = 3;

fn ul(i: usize) -> IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}
fn subnet6(i: usize) -> String {
    format!("fd00:9:0:{i}::/64")
}
fn ctr6(i: usize) -> Ipv6Addr {
    format!("fd00:9:0:{i}::10").parse().unwrap()
}
fn gw6(i: usize) -> Ipv6Addr {
    format!("fd00:9:0:{i}::1").parse().unwrap()
}
fn ctr_mac(i: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, i as u8 + 1, 10])
}
fn gw_mac() -> EthernetAddress {
    default_gateway_mac(VNI)
}

/// Host `i`: a dual-stack routed network (10.9.i.0/24 and fd00:9:0:i::/64), joining through host 0.
fn config(i: usize) -> Config {
    let seeds = format!("\"{}\"", ul(usize::from(i == 0)));
    Config::parse(&format!(
        "[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = {VNI}\nmode = \"routed\"\ntap = \"vxs{i}\"\nsubnet = \"10.9.{i}.0/24\"\nsubnet6 = \"{}\"\n\n\
         [gossip]\ncluster = \"sim\"\nname = \"n{i}\"\nkey_file = \"/nonexistent\"\nseeds = [{seeds}]\ncluster_cidr6 = \"fd00:9::/48\"\n",
        ul(i),
        subnet6(i),
    ))
    .unwrap()
}

fn cluster() -> Sim {
    let mut sim = Sim::empty(61);
    sim.latency = Duration::from_millis(1);
    for i in 0..HOSTS {
        sim.add_configured(&config(i), ClusterKey::from_bytes([6; 32]), None, 1000 + i as u64);
    }
    sim.run_for(Duration::from_secs(60));
    sim
}

fn echo(src_mac: EthernetAddress, src: Ipv6Addr, dst: Ipv6Addr, hops: u8, reply: bool) -> Vec<u8> {
    let mut f = Vec::new();
    let b = PacketBuilder::ethernet2(src_mac.0, gw_mac().0).ipv6(src.octets(), dst.octets(), hops);
    let b = if reply { b.icmpv6_echo_reply(9, 1) } else { b.icmpv6_echo_request(9, 1) };
    b.write(&mut f, b"ping6 over vxswitch").unwrap();
    f
}

/// (source, destination, hop limit, ICMPv6 type) of an IPv6 frame; `None` for anything else.
fn icmp6(frame: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, u8, Icmpv6Type)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv6(ip)) = &p.net else { return None };
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { return None };
    let h = ip.header();
    Some((h.source_addr(), h.destination_addr(), h.hop_limit(), icmp.icmp_type()))
}

/// Run until host `i`'s TAP got something, then take it all.
fn tap(sim: &mut Sim, i: usize) -> Vec<Vec<u8>> {
    sim.run_for(Duration::from_millis(20));
    sim.take_tap(i, 0)
}

#[test]
fn dual_stack_routes_are_learned_from_gossip() {
    let sim = cluster();
    for i in 0..HOSTS {
        let router = sim.hosts[i].switch().router(0).expect("routed");
        for k in (0..HOSTS).filter(|&k| k != i) {
            let v6: ipnet::IpNet = subnet6(k).parse().unwrap();
            let v4: ipnet::IpNet = format!("10.9.{k}.0/24").parse().unwrap();
            assert_eq!(sim.hosts[i].view.routes.get(&(VNI, v6)), Some(&ul(k)), "host {i} learned {v6}");
            assert_eq!(sim.hosts[i].view.routes.get(&(VNI, v4)), Some(&ul(k)), "host {i} learned {v4}");
            assert_eq!(router.routes().lookup6(ctr6(k)), Some(ul(k)), "host {i}'s router routes {v6}");
            assert_eq!(router.routes().lookup(Ipv4Addr::new(10, 9, k as u8, 10)), Some(ul(k)));
        }
        assert_eq!(router.routes().lookup6(ctr6(i)), None, "no route to its own subnet");
    }
}

#[test]
fn ping6_crosses_the_gateway_and_errors_come_from_gateway6() {
    let mut sim = cluster();
    // The gateway itself answers, at both hosts' gateway6.
    sim.tap_send(0, 0, &echo(ctr_mac(0), ctr6(0), gw6(0), 64, false));
    let out = tap(&mut sim, 0);
    assert!(matches!(icmp6(&out[0]), Some((s, d, _, Icmpv6Type::EchoReply(_))) if s == gw6(0) && d == ctr6(0)), "{out:?}");

    // Container 0 pings container 1: host 1 solicits container 1 from its gateway first.
    sim.tap_send(0, 0, &echo(ctr_mac(0), ctr6(0), ctr6(1), 64, false));
    let out = tap(&mut sim, 1);
    assert_eq!(out.len(), 1, "{out:?}");
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    let ns = parse_nd(eth.src_addr(), eth.payload()).expect("a neighbor solicitation");
    assert_eq!((ns.src, ns.repr), (gw6(1), NdiscRepr::NeighborSolicit { target_addr: ctr6(1), lladdr: Some(gw_mac()) }));
    let na = NdiscRepr::NeighborAdvert {
        flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
        target_addr: ctr6(1),
        lladdr: Some(ctr_mac(1)),
    };
    sim.tap_send(1, 0, &ndisc_frame(&na, ctr_mac(1), ctr6(1), gw_mac(), gw6(1), None));
    let out = tap(&mut sim, 1);
    assert_eq!(out.len(), 1, "the held request");
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    assert_eq!((eth.src_addr(), eth.dst_addr()), (gw_mac(), ctr_mac(1)));
    let (s, d, hops, ty) = icmp6(&out[0]).unwrap();
    assert_eq!((s, d, hops), (ctr6(0), ctr6(1), 63), "hop limit decremented once across the overlay");
    assert!(matches!(ty, Icmpv6Type::EchoRequest(_)));
    // The reply goes back at once: host 0 learned container 0 from its request.
    sim.tap_send(1, 0, &echo(ctr_mac(1), ctr6(1), ctr6(0), 64, true));
    let out = tap(&mut sim, 0);
    let (s, d, hops, ty) = icmp6(&out[0]).unwrap();
    assert_eq!((s, d, hops), (ctr6(1), ctr6(0), 63));
    assert!(matches!(ty, Icmpv6Type::EchoReply(_)));
    assert_eq!(EthernetFrame::new_checked(&out[0][..]).unwrap().dst_addr(), ctr_mac(0));

    // Hop limit 1: time exceeded from host 0's gateway6, nothing crosses.
    let routed = sim.hosts[0].switch().counters().routed_packets;
    sim.tap_send(0, 0, &echo(ctr_mac(0), ctr6(0), ctr6(2), 1, false));
    assert_eq!(sim.hosts[0].switch().counters().routed_packets, routed, "not routed");
    let out = tap(&mut sim, 0);
    let (s, d, _, ty) = icmp6(&out[0]).unwrap();
    assert_eq!((s, d), (gw6(0), ctr6(0)));
    assert_eq!(ty, Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded));
    // No route: destination unreachable.
    sim.tap_send(0, 0, &echo(ctr_mac(0), ctr6(0), "fd00:9:0:7::10".parse().unwrap(), 64, false));
    let out = tap(&mut sim, 0);
    let (s, _, _, ty) = icmp6(&out[0]).unwrap();
    assert_eq!(s, gw6(0));
    assert_eq!(ty, Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::NoRoute));
    let c = sim.hosts[0].switch().counters();
    assert_eq!((c.drops(DropReason::TtlExpired), c.drops(DropReason::NoRoute), c.icmp6_errors_sent), (1, 1, 2));
}

#[test]
fn a_host_leaving_takes_its_ipv6_route_with_it() {
    let mut sim = cluster();
    sim.kill(2);
    sim.run_for(Duration::from_secs(60));
    let router = sim.hosts[0].switch().router(0).unwrap();
    assert_eq!(router.routes().lookup6(ctr6(2)), None, "host 2's IPv6 subnet withdrawn");
    assert_eq!(router.routes().lookup6(ctr6(1)), Some(ul(1)));
}
