//! Arbitrary datagrams into the switch core on both tunnel ports, plus arbitrary TAP frames:
//! nothing may panic, and every datagram is delivered or counted.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vxswitch::arp::UnknownArp;
use vxswitch::dataplane::{default_gateway_mac, Forward, NetworkSpec, RoutedSpec, Switch, SwitchConfig};
use vxswitch::wire::vxlan::Vni;

fuzz_target!(|data: &[u8]| {
    let peer: std::net::IpAddr = Ipv4Addr::new(198, 18, 0, 2).into();
    let now = Instant::now();
    let network = |vni: u32, routed: bool| NetworkSpec {
        vni: Vni::new(vni).unwrap(),
        max_frame_len: 1464,
        peers: vec![peer],
        unknown_arp: UnknownArp::Flood,
        routed: routed.then(|| RoutedSpec {
            subnet: "198.19.1.0/24".parse().unwrap(),
            gateway_ip: Ipv4Addr::new(198, 19, 1, 1),
            gateway_mac: default_gateway_mac(Vni::new(vni).unwrap()),
            v6: None,
        }),
        tunnel: vxswitch::dataplane::Tunnel::Vxlan,
        path: Default::default(),
    };
    let mut switch = Switch::new(
        SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 64, networks: vec![network(1042, false), network(7, true)] },
        now,
    );
    let mut buf = vec![0u8; data.len() + 256];
    buf[64..64 + data.len()].copy_from_slice(data);
    let before = switch.counters().total_drops();
    let delivered = matches!(switch.handle_underlay(now, peer, &mut buf, 64..64 + data.len()), Forward::Tap { .. });
    let dropped = switch.counters().total_drops() - before;
    assert!(delivered as u64 + dropped <= 1);
    let _ = switch.handle_esp(now, peer, &mut buf, 64..64 + data.len());
    for port in 0..2 {
        buf[64..64 + data.len()].copy_from_slice(data);
        let _ = switch.handle_tap_frame(now, port, &mut buf, 64..64 + data.len());
        while switch.poll_transmit().is_some() {}
    }
    switch.handle_timeout(now + Duration::from_secs(400));
});
