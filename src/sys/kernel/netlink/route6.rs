//! IPv6 routes: add, replace, delete, list by protocol number or all of the main table.
//!
//! The IPv6 twin of [`super::route`]: the CNI plugin's default route `::/0 via GATEWAY6` in a
//! container, and host-subnet routes `PEER_SUBNET6 via PEER_IP6 proto 86`. A separate type
//! rather than a generic one because the kernel's IPv6 table differs in what it lists (cached
//! and local routes live in other tables, link-local `fe80::/64` and multicast `ff00::/8` show
//! up in main) and callers never mix the families.

use std::net::Ipv6Addr;

use futures::TryStreamExt;
use ipnet::Ipv6Net;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::{Netlink, NetlinkError, Result, RT_TABLE_MAIN};

/// One IPv6 unicast route, as installed or listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Route {
    /// Destination prefix (host bits are cleared before sending).
    pub dst: Ipv6Net,
    /// Next hop (`via GW`), or `None` for a directly connected route.
    pub gateway: Option<Ipv6Addr>,
    /// Output interface index (`dev DEV`), if pinned.
    pub oif: Option<u32>,
    /// Routing protocol number (`proto N`).
    pub proto: u8,
    /// The gateway is reachable on `oif` without a connected subnet (`onlink`).
    pub onlink: bool,
    /// Routing table id.
    pub table: u32,
}

impl Ipv6Route {
    /// `dst via gateway proto proto` in the main table.
    pub fn via(dst: Ipv6Net, gateway: Ipv6Addr, proto: u8) -> Self {
        Ipv6Route { dst: dst.trunc(), gateway: Some(gateway), oif: None, proto, onlink: false, table: RT_TABLE_MAIN }
    }

    /// Pins the output interface (`dev DEV`).
    pub fn dev(mut self, oif: u32) -> Self {
        self.oif = Some(oif);
        self
    }

    /// The route in iproute2 words, for errors and logs.
    pub fn describe(&self) -> String {
        let mut s = self.dst.trunc().to_string();
        if let Some(gw) = self.gateway {
            s += &format!(" via {gw}");
        }
        if let Some(oif) = self.oif {
            s += &format!(" dev {oif}");
        }
        if self.onlink {
            s += " onlink";
        }
        s + &format!(" proto {}", self.proto)
    }

    fn to_message(&self) -> RouteMessage {
        let dst = self.dst.trunc();
        let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .protocol(RouteProtocol::from(self.proto))
            .table_id(self.table);
        if let Some(gw) = self.gateway {
            b = b.gateway(gw);
        }
        if let Some(oif) = self.oif {
            b = b.output_interface(oif);
        }
        if self.onlink {
            b = b.onlink();
        }
        b.build()
    }

    /// Reads an IPv6 unicast route message; `None` for anything else.
    pub(crate) fn from_message(msg: &RouteMessage) -> Option<Self> {
        if msg.header.address_family != AddressFamily::Inet6 || msg.header.kind != RouteType::Unicast {
            return None;
        }
        let mut dst_ip = Ipv6Addr::UNSPECIFIED;
        let mut route = Ipv6Route {
            dst: Ipv6Net::default(),
            gateway: None,
            oif: None,
            proto: u8::from(msg.header.protocol),
            onlink: msg.header.flags.contains(RouteFlags::Onlink),
            table: u32::from(msg.header.table),
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet6(ip)) => dst_ip = *ip,
                RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => route.gateway = Some(*ip),
                RouteAttribute::Oif(i) => route.oif = Some(*i),
                RouteAttribute::Table(t) => route.table = *t,
                _ => {}
            }
        }
        route.dst = Ipv6Net::new(dst_ip, msg.header.destination_prefix_length).ok()?;
        Some(route)
    }
}

impl Netlink {
    /// Installs or overwrites the IPv6 route for `route.dst` in its table.
    // = ip -6 route replace SUBNET via GW [dev DEV] proto N
    pub fn route6_replace(&self, route: &Ipv6Route) -> Result<()> {
        let req = self.handle.route().add(route.to_message()).replace();
        self.run(req.execute()).map_err(|e| NetlinkError::request(format!("route replace {}", route.describe()), e))
    }

    /// Installs the IPv6 route only if none for `route.dst` exists yet (EEXIST otherwise).
    // = ip -6 route add SUBNET via GW [dev DEV] proto N
    pub fn route6_add(&self, route: &Ipv6Route) -> Result<()> {
        let req = self.handle.route().add(route.to_message());
        self.run(req.execute()).map_err(|e| NetlinkError::request(format!("route add {}", route.describe()), e))
    }

    /// Deletes the IPv6 route; the kernel matches destination, table, protocol and gateway.
    // = ip -6 route del SUBNET via GW proto N
    pub fn route6_delete(&self, route: &Ipv6Route) -> Result<()> {
        let mut msg = route.to_message();
        msg.header.scope = RouteScope::NoWhere;
        self.run(self.handle.route().del(msg).execute()).map_err(|e| NetlinkError::request(format!("route del {}", route.describe()), e))
    }

    /// Every IPv6 unicast route of the main table, whatever its protocol.
    // = ip -6 route show table main
    pub fn routes6_main(&self) -> Result<Vec<Ipv6Route>> {
        let req = self.handle.route().get(RouteMessageBuilder::<Ipv6Addr>::new().build());
        let msgs = self.run(req.execute().try_collect::<Vec<_>>()).map_err(|e| NetlinkError::request("route -6 show", e))?;
        Ok(msgs.iter().filter_map(Ipv6Route::from_message).filter(|r| r.table == RT_TABLE_MAIN).collect())
    }

    /// IPv6 unicast routes of the main table installed with protocol number `proto`.
    // = ip -6 route show table main proto N
    pub fn routes6_by_proto(&self, proto: u8) -> Result<Vec<Ipv6Route>> {
        Ok(self.routes6_main()?.into_iter().filter(|r| r.proto == proto).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trip_keeps_every_field_and_clears_host_bits() {
        let r = Ipv6Route::via("fd00:19:1::7/64".parse().unwrap(), "fd00:18::2".parse().unwrap(), 86).dev(4);
        assert_eq!(r.describe(), "fd00:19:1::/64 via fd00:18::2 dev 4 proto 86");
        assert_eq!(Ipv6Route::from_message(&r.to_message()), Some(r.clone()));
        let mut msg = r.to_message();
        msg.header.address_family = AddressFamily::Inet;
        assert_eq!(Ipv6Route::from_message(&msg), None, "IPv4 messages are not read as IPv6");
    }
}
