//! Real-kernel tests of the netlink driver, each in its own network namespace
//! `vxs-<purpose>-<pid>`. Results are read back both through netlink and through iproute2.
//! Needs root; without it each test prints SKIP (or fails with VXSWITCH_REQUIRE_ROOT=1).

#[path = "common/netns.rs"]
mod netns_common;

use std::net::Ipv4Addr;

use netns_common::{have_root, NetnsGuard};
use vxswitch::control::ControlUpdate;
use vxswitch::sys::kernel::host_routes::{HostSubnetError, HostSubnetRoutes, VXSWITCH_RT_PROTO};
use vxswitch::sys::kernel::netlink::{Ipv4Route, Netlink, NetlinkError, VxlanSpec};
use vxswitch::testnet::setns;
use vxswitch::wire::vxlan::Vni;

/// Opens a netlink socket inside the namespace.
fn netlink_in(ns: &NetnsGuard) -> Netlink {
    setns::run_in(&ns.name, Netlink::new).expect("enter netns").expect("open netlink")
}

/// An underlay: veth `ul0` (198.18.0.1/24) with its peer `ul0p`, both up.
fn underlay(nl: &Netlink) -> u32 {
    let ul0 = nl.create_veth("ul0", "ul0p").unwrap();
    nl.add_address(ul0, "198.18.0.1/24".parse().unwrap()).unwrap();
    nl.set_up(ul0).unwrap();
    nl.set_up(nl.link_index("ul0p").unwrap()).unwrap();
    ul0
}

#[test]
fn bridge_veth_address_mtu_round_trip() {
    if !have_root("bridge_veth_address_mtu_round_trip") {
        return;
    }
    let ns = NetnsGuard::new("nl-link");
    let nl = netlink_in(&ns);

    let br = nl.create_bridge("br0").unwrap();
    let ve = nl.create_veth("ve0", "ve1").unwrap();
    nl.set_master(ve, br).unwrap();
    nl.set_mtu(ve, 1450).unwrap();
    nl.add_address(br, "198.18.0.1/24".parse().unwrap()).unwrap();
    nl.add_address(br, "192.0.2.1/28".parse().unwrap()).unwrap();
    nl.set_up(br).unwrap();
    nl.set_up(ve).unwrap();

    let info = nl.link(ve).unwrap();
    assert_eq!((info.name.as_str(), info.mtu, info.up, info.master), ("ve0", 1450, true, Some(br)));
    assert_eq!(nl.link_index("br0").unwrap(), br);
    let mut addrs = nl.addresses(br).unwrap();
    addrs.sort();
    assert_eq!(addrs, vec!["192.0.2.1/28".parse().unwrap(), "198.18.0.1/24".parse().unwrap()]);

    // The same facts as iproute2 sees them.
    let shown = ns.ip(&["-o", "link", "show", "ve0"]);
    assert!(shown.contains("mtu 1450") && shown.contains("master br0"), "{shown}");
    assert!(shown.contains(",UP"), "{shown}");
    let shown = ns.ip(&["-o", "-4", "addr", "show", "dev", "br0"]);
    assert!(shown.contains("inet 198.18.0.1/24") && shown.contains("inet 192.0.2.1/28"), "{shown}");
    let shown = ns.ip(&["-d", "link", "show", "br0"]);
    assert!(shown.contains("bridge "), "{shown}");

    nl.set_down(ve).unwrap();
    assert!(!nl.link(ve).unwrap().up);
    nl.flush_addresses(br).unwrap();
    assert_eq!(nl.addresses(br).unwrap(), vec![]);
    assert_eq!(ns.ip(&["-o", "-4", "addr", "show", "dev", "br0"]), "");

    nl.delete_link(ve).unwrap();
    assert_eq!(nl.find_link("ve0").unwrap(), None);
    assert_eq!(nl.find_link("ve1").unwrap(), None, "deleting a veth deletes its peer");
    assert!(matches!(nl.link_index("ve0"), Err(NetlinkError::NoSuchLink(n)) if n == "ve0"));
    let err = nl.delete_link(ve).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains(&format!("link del {ve}")), "{err}");
}

#[test]
fn routes_with_proto_replace_list_get_delete() {
    if !have_root("routes_with_proto_replace_list_get_delete") {
        return;
    }
    let ns = NetnsGuard::new("nl-route");
    let nl = netlink_in(&ns);
    let ul0 = underlay(&nl);
    const PROTO: u8 = 86;

    let a = Ipv4Route::via("198.19.1.0/24".parse().unwrap(), Ipv4Addr::new(198, 18, 0, 2), PROTO);
    let b = Ipv4Route::via("198.19.2.0/24".parse().unwrap(), Ipv4Addr::new(192, 0, 2, 1), PROTO).dev(ul0).onlink();
    nl.route_replace(&a).unwrap();
    nl.route_replace(&b).unwrap();
    // A route with another protocol must not be listed.
    ns.ip(&["route", "add", "198.19.3.0/24", "via", "198.18.0.3", "proto", "static"]);

    let mut listed = nl.routes_by_proto(PROTO).unwrap();
    listed.sort();
    let a_listed = Ipv4Route { oif: Some(ul0), ..a.clone() };
    assert_eq!(listed, vec![a_listed, b.clone()]);
    let shown = ns.ip(&["route", "show", "proto", "86"]);
    assert!(shown.contains("198.19.1.0/24 via 198.18.0.2 dev ul0"), "{shown}");
    assert!(shown.contains("198.19.2.0/24 via 192.0.2.1 dev ul0 onlink"), "{shown}");
    assert!(!shown.contains("198.19.3.0"), "{shown}");

    // Replace moves the gateway instead of adding a second route.
    let a2 = Ipv4Route::via(a.dst, Ipv4Addr::new(198, 18, 0, 4), PROTO);
    nl.route_replace(&a2).unwrap();
    let shown = ns.ip(&["route", "show", "198.19.1.0/24"]);
    assert_eq!(shown.trim(), "198.19.1.0/24 via 198.18.0.4 dev ul0 proto 86", "{shown}");

    // ip route get: on-link peer has no gateway, a routed destination has one.
    let peer = nl.route_get(Ipv4Addr::new(198, 18, 0, 2)).unwrap();
    assert_eq!((peer.gateway, peer.oif, peer.local), (None, Some(ul0), false));
    let routed = nl.route_get(Ipv4Addr::new(198, 19, 1, 9)).unwrap();
    assert_eq!(routed.gateway, Some(Ipv4Addr::new(198, 18, 0, 4).into()));
    assert!(nl.route_get(Ipv4Addr::new(198, 18, 0, 1)).unwrap().local);
    let err = nl.route_get(Ipv4Addr::new(203, 0, 113, 1)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err}");

    nl.route_delete(&a2).unwrap();
    nl.route_delete(&b).unwrap();
    assert_eq!(nl.routes_by_proto(PROTO).unwrap(), vec![]);
    assert!(ns.ip(&["route", "show", "198.19.3.0/24"]).contains("proto static"));
    assert!(nl.route_delete(&a2).unwrap_err().is_not_found());
}

#[test]
fn vxlan_device_fdb_flood_list_and_neighbours() {
    if !have_root("vxlan_device_fdb_flood_list_and_neighbours") {
        return;
    }
    let ns = NetnsGuard::new("nl-vxlan");
    let nl = netlink_in(&ns);
    let ul0 = underlay(&nl);

    // = ip link add vtep1042 type vxlan id 1042 dstport 4789 local 198.18.0.1 dev ul0 nolearning
    let spec = VxlanSpec::new(1042, Ipv4Addr::new(198, 18, 0, 1).into(), Some(ul0));
    let vtep = nl.create_vxlan(&spec).unwrap();
    nl.set_up(vtep).unwrap();
    let shown = ns.ip(&["-d", "link", "show", "vtep1042"]);
    for want in ["vxlan id 1042 ", "local 198.18.0.1 ", "dev ul0 ", "dstport 4789 ", "nolearning "] {
        assert!(shown.contains(want), "missing {want:?} in:\n{shown}");
    }

    // Two peers in the flood list: append keeps both.
    nl.fdb_append_flood(vtep, Ipv4Addr::new(198, 18, 0, 2).into()).unwrap();
    nl.fdb_append_flood(vtep, Ipv4Addr::new(198, 18, 0, 3).into()).unwrap();
    let fdb = ns.bridge(&["fdb", "show", "dev", "vtep1042"]);
    for peer in ["198.18.0.2", "198.18.0.3"] {
        let line = format!("00:00:00:00:00:00 dst {peer} self permanent");
        assert!(fdb.contains(&line), "missing {line:?} in:\n{fdb}");
    }
    // Withdrawing one peer leaves the other.
    nl.fdb_delete(vtep, [0; 6], Some(Ipv4Addr::new(198, 18, 0, 2).into())).unwrap();
    let fdb = ns.bridge(&["fdb", "show", "dev", "vtep1042"]);
    assert!(!fdb.contains("dst 198.18.0.2"), "{fdb}");
    assert!(fdb.contains("00:00:00:00:00:00 dst 198.18.0.3"), "{fdb}");

    // A unicast MAC moves between peers with replace, then goes away.
    let mac = [0x02, 0x42, 0xc6, 0x13, 0x01, 0x05];
    nl.fdb_replace(vtep, mac, Ipv4Addr::new(198, 18, 0, 2).into()).unwrap();
    nl.fdb_replace(vtep, mac, Ipv4Addr::new(198, 18, 0, 3).into()).unwrap();
    let fdb = ns.bridge(&["fdb", "show", "dev", "vtep1042"]);
    assert!(fdb.contains("02:42:c6:13:01:05 dst 198.18.0.3 self permanent"), "{fdb}");
    assert_eq!(fdb.matches("02:42:c6:13:01:05").count(), 1, "{fdb}");
    nl.fdb_delete(vtep, mac, None).unwrap();
    assert!(!ns.bridge(&["fdb", "show", "dev", "vtep1042"]).contains("02:42:c6:13:01:05"));

    // = ip neigh replace 198.19.1.5 lladdr 02:42:c6:13:01:05 dev vtep1042 nud permanent
    nl.neigh_replace(vtep, Ipv4Addr::new(198, 19, 1, 5), mac).unwrap();
    nl.neigh_replace(vtep, Ipv4Addr::new(198, 19, 1, 5), mac).unwrap();
    let neigh = ns.ip(&["neigh", "show", "dev", "vtep1042"]);
    assert_eq!(neigh.trim(), "198.19.1.5 lladdr 02:42:c6:13:01:05 PERMANENT", "{neigh}");
    nl.neigh_delete(vtep, Ipv4Addr::new(198, 19, 1, 5)).unwrap();
    assert_eq!(ns.ip(&["neigh", "show", "dev", "vtep1042"]).trim(), "");
    assert!(nl.neigh_delete(vtep, Ipv4Addr::new(198, 19, 1, 5)).unwrap_err().is_not_found());
}

/// A desired host-subnet route: subnet via gateway.
fn want(subnet: &str, via: &str) -> (ipnet::IpNet, std::net::IpAddr) {
    (subnet.parse().unwrap(), via.parse().unwrap())
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `ip route show proto 86` as sorted trimmed lines.
fn our_routes(ns: &NetnsGuard) -> Vec<String> {
    let mut lines: Vec<String> = ns.ip(&["route", "show", "proto", "86"]).lines().map(|l| l.trim().to_string()).collect();
    lines.sort();
    lines
}

#[test]
fn host_subnet_reconcile_and_updates_touch_only_our_routes() {
    if !have_root("host_subnet_reconcile_and_updates_touch_only_our_routes") {
        return;
    }
    assert_eq!(VXSWITCH_RT_PROTO, 86);
    let ns = NetnsGuard::new("nl-hostsub");
    let nl = netlink_in(&ns);
    underlay(&nl);
    // Left over from a previous run: one stale route, one with an outdated gateway.
    ns.ip(&["route", "add", "198.19.9.0/24", "via", "198.18.0.9", "proto", "86"]);
    ns.ip(&["route", "add", "198.19.1.0/24", "via", "198.18.0.7", "proto", "86"]);
    // Someone else's route.
    ns.ip(&["route", "add", "198.19.3.0/24", "via", "198.18.0.3", "proto", "static"]);
    let unrelated = ns.ip(&["route", "show", "198.19.3.0/24"]);

    let mut hs = HostSubnetRoutes::new(nl);
    let desired = [want("198.19.1.0/24", "198.18.0.2"), want("198.19.2.0/24", "198.18.0.3")];
    let report = hs.reconcile(&desired).unwrap();
    assert_eq!(report.removed, vec!["198.19.9.0/24".parse().unwrap()]);
    assert_eq!(report.installed, desired.to_vec());
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(our_routes(&ns), vec!["198.19.1.0/24 via 198.18.0.2 dev ul0", "198.19.2.0/24 via 198.18.0.3 dev ul0"]);
    assert_eq!(ns.ip(&["route", "show", "198.19.3.0/24"]), unrelated);

    // A second reconcile with the same wish changes nothing.
    let again = hs.reconcile(&desired).unwrap();
    assert!(again.removed.is_empty() && again.installed.is_empty(), "{again:?}");

    // Updates: a subnet moves, a peer leaves, a subnet is withdrawn.
    let net2: ipnet::Ipv4Net = "198.19.2.0/24".parse().unwrap();
    hs.apply(&ControlUpdate::RouteAdd {
        vni: Vni::new_const(1042),
        subnet: net2.into(),
        via: ip4("198.18.0.4").into(),
        next_hop: Some(ip4("198.18.0.4").into()),
    })
    .unwrap();
    assert!(our_routes(&ns).contains(&"198.19.2.0/24 via 198.18.0.4 dev ul0".to_string()));
    hs.apply(&ControlUpdate::PeerDown { vni: Vni::new_const(1042), underlay: ip4("198.18.0.2").into() }).unwrap();
    assert_eq!(our_routes(&ns), vec!["198.19.2.0/24 via 198.18.0.4 dev ul0"]);
    hs.apply(&ControlUpdate::RouteRemove { vni: Vni::new_const(1042), subnet: net2.into() }).unwrap();
    assert_eq!(our_routes(&ns), Vec::<String>::new());
    assert!(hs.routes().is_empty());
    assert_eq!(ns.ip(&["route", "show", "198.19.3.0/24"]), unrelated);
}

#[test]
fn host_subnet_refuses_peers_not_on_link() {
    if !have_root("host_subnet_refuses_peers_not_on_link") {
        return;
    }
    let ns = NetnsGuard::new("nl-offlink");
    let nl = netlink_in(&ns);
    underlay(&nl);
    ns.ip(&["route", "add", "203.0.113.0/24", "via", "198.18.0.254"]);
    ns.ip(&["route", "add", "198.19.3.0/24", "via", "198.18.0.3", "proto", "static"]);
    let mut hs = HostSubnetRoutes::new(nl);
    let net7: ipnet::Ipv4Net = "198.19.7.0/24".parse().unwrap();

    // A peer behind a router.
    let err = hs
        .apply(&ControlUpdate::RouteAdd {
            vni: Vni::new_const(1042),
            subnet: net7.into(),
            via: ip4("203.0.113.7").into(),
            next_hop: Some(ip4("203.0.113.7").into()),
        })
        .unwrap_err();
    match &err {
        HostSubnetError::PeerNotOnLink { peer, gateway, .. } => {
            assert_eq!((*peer, *gateway), (ip4("203.0.113.7").into(), ip4("198.18.0.254").into()))
        }
        other => panic!("expected PeerNotOnLink, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("peer 203.0.113.7") && msg.contains("not directly reachable"), "{msg}");
    assert_eq!(ns.ip(&["route", "show", "198.19.7.0/24"]), "");

    // A peer with no route at all.
    let err = hs
        .apply(&ControlUpdate::RouteAdd {
            vni: Vni::new_const(1042),
            subnet: net7.into(),
            via: ip4("192.0.2.77").into(),
            next_hop: Some(ip4("192.0.2.77").into()),
        })
        .unwrap_err();
    assert!(matches!(err, HostSubnetError::PeerUnreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("peer 192.0.2.77"), "{err}");

    // A subnet someone else routes is not taken over.
    let net3: ipnet::Ipv4Net = "198.19.3.0/24".parse().unwrap();
    let err = hs
        .apply(&ControlUpdate::RouteAdd {
            vni: Vni::new_const(1042),
            subnet: net3.into(),
            via: ip4("198.18.0.2").into(),
            next_hop: Some(ip4("198.18.0.2").into()),
        })
        .unwrap_err();
    assert!(matches!(err, HostSubnetError::SubnetTaken { .. }), "{err:?}");
    assert!(ns.ip(&["route", "show", "198.19.3.0/24"]).contains("via 198.18.0.3 dev ul0 proto static"));

    // Reconcile installs the reachable peer and reports the other.
    let desired = [(ipnet::IpNet::from(net7), ip4("203.0.113.7").into()), want("198.19.1.0/24", "198.18.0.2")];
    let report = hs.reconcile(&desired).unwrap();
    assert_eq!(report.installed, vec![want("198.19.1.0/24", "198.18.0.2")]);
    assert_eq!(report.refused.len(), 1);
    assert!(report.refused[0].to_string().contains("peer 203.0.113.7"), "{}", report.refused[0]);
    assert_eq!(our_routes(&ns), vec!["198.19.1.0/24 via 198.18.0.2 dev ul0"]);

    // A subnet moving to an unreachable peer loses its old route too.
    let net1: ipnet::Ipv4Net = "198.19.1.0/24".parse().unwrap();
    assert!(hs
        .apply(&ControlUpdate::RouteAdd {
            vni: Vni::new_const(1042),
            subnet: net1.into(),
            via: ip4("203.0.113.7").into(),
            next_hop: Some(ip4("203.0.113.7").into())
        })
        .is_err());
    assert_eq!(our_routes(&ns), Vec::<String>::new());
}

#[test]
fn kernel_mode_deletes_only_a_leftover_vxlan_device_with_its_own_vni() {
    if !have_root("kernel_mode_deletes_only_a_leftover_vxlan_device_with_its_own_vni") {
        return;
    }
    let ns = NetnsGuard::new("nl-vtep-owner");
    let nl = netlink_in(&ns);
    let ul0 = underlay(&nl);
    let config = vxswitch::config::Config::parse(
        "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 1042\nmode = \"kernel\"\npeers = [\"198.18.0.2\"]\n",
    )
    .unwrap();
    let start = |config: vxswitch::config::Config| {
        setns::run_in(&ns.name, move || vxswitch::sys::kernel::vtep::VtepDriver::start(&config).map(|d| d.is_some())).expect("enter netns")
    };

    // Something else named vtep1042 (a NIC, another tool's link): refused, and left alone.
    let other = nl.create_veth("vtep1042", "vtep1042p").unwrap();
    let err = start(config.clone()).unwrap_err().to_string();
    assert!(err.contains("not a VXLAN device") && err.contains("refusing"), "{err}");
    assert_eq!(nl.link_index("vtep1042").unwrap(), other);
    nl.delete_link(other).unwrap();

    // A VXLAN device with another VNI under that name: also not ours.
    let foreign = nl.create_vxlan(&VxlanSpec::new(7, Ipv4Addr::new(198, 18, 0, 1).into(), Some(ul0))).unwrap();
    assert_eq!(nl.link(foreign).unwrap().vxlan_id, Some(7));
    nl.delete_link(foreign).unwrap();
    let mut spec = VxlanSpec::new(7, Ipv4Addr::new(198, 18, 0, 1).into(), Some(ul0));
    spec.name = "vtep1042".into();
    let foreign = nl.create_vxlan(&spec).unwrap();
    let err = start(config.clone()).unwrap_err().to_string();
    assert!(err.contains("VNI 7"), "{err}");
    assert_eq!(nl.link(foreign).unwrap().vxlan_id, Some(7), "the foreign device is untouched");
    nl.delete_link(foreign).unwrap();

    // Our own leftover (VNI 1042) is replaced by a fresh device.
    let leftover = nl.create_vxlan(&VxlanSpec::new(1042, Ipv4Addr::new(198, 18, 0, 1).into(), Some(ul0))).unwrap();
    assert!(start(config).unwrap());
    let replaced = nl.find_link("vtep1042").unwrap();
    assert!(replaced.is_none_or(|l| l.index != leftover), "the leftover was deleted");
}
