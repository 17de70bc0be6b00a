//! IPv4 routes: replace, delete, list by protocol number; and `ip route get` for both families.
//!
//! Routes that vxswitch installs carry their own routing protocol number (`proto N`), so a
//! restart can list exactly its own routes and never touches anyone else's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::{Netlink, NetlinkError, Result};

/// The kernel's main routing table (`table main`).
pub const RT_TABLE_MAIN: u32 = 254;

/// One IPv4 unicast route, as installed or listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Route {
    /// Destination prefix (host bits are cleared before sending).
    pub dst: Ipv4Net,
    /// Next hop (`via GW`), or `None` for a directly connected route.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index (`dev DEV`), if pinned.
    pub oif: Option<u32>,
    /// Routing protocol number (`proto N`).
    pub proto: u8,
    /// The gateway is reachable on `oif` without a connected subnet (`onlink`).
    pub onlink: bool,
    /// Routing table id.
    pub table: u32,
}

impl Ipv4Route {
    /// `dst via gateway proto proto` in the main table.
    pub fn via(dst: Ipv4Net, gateway: Ipv4Addr, proto: u8) -> Self {
        Ipv4Route { dst: dst.trunc(), gateway: Some(gateway), oif: None, proto, onlink: false, table: RT_TABLE_MAIN }
    }

    /// Pins the output interface (`dev DEV`).
    pub fn dev(mut self, oif: u32) -> Self {
        self.oif = Some(oif);
        self
    }

    /// Marks the gateway as on-link (`onlink`; needs `dev`).
    pub fn onlink(mut self) -> Self {
        self.onlink = true;
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
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
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

    /// Reads an IPv4 unicast route message; `None` for anything else.
    pub(crate) fn from_message(msg: &RouteMessage) -> Option<Self> {
        if msg.header.address_family != AddressFamily::Inet || msg.header.kind != RouteType::Unicast {
            return None;
        }
        let mut dst_ip = Ipv4Addr::UNSPECIFIED;
        let mut route = Ipv4Route {
            dst: Ipv4Net::default(),
            gateway: None,
            oif: None,
            proto: u8::from(msg.header.protocol),
            onlink: msg.header.flags.contains(RouteFlags::Onlink),
            table: u32::from(msg.header.table),
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst_ip = *ip,
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => route.gateway = Some(*ip),
                RouteAttribute::Oif(i) => route.oif = Some(*i),
                RouteAttribute::Table(t) => route.table = *t,
                _ => {}
            }
        }
        route.dst = Ipv4Net::new(dst_ip, msg.header.destination_prefix_length).ok()?;
        Some(route)
    }
}

/// The kernel's answer to `ip route get DST` (either family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLookup {
    /// Next hop, if the destination is reached through a router.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// The destination is one of this host's own addresses (RTN_LOCAL).
    pub local: bool,
}

impl Netlink {
    /// Installs or overwrites the route for `route.dst` in its table.
    // = ip route replace SUBNET via GW [dev DEV] [onlink] proto N
    pub fn route_replace(&self, route: &Ipv4Route) -> Result<()> {
        let req = self.handle.route().add(route.to_message()).replace();
        self.run(req.execute()).map_err(|e| NetlinkError::request(format!("route replace {}", route.describe()), e))
    }

    /// Installs the route only if no route for `route.dst` exists yet (EEXIST otherwise), so
    /// a route owned by someone else is never overwritten.
    // = ip route add SUBNET via GW [dev DEV] [onlink] proto N
    pub fn route_add(&self, route: &Ipv4Route) -> Result<()> {
        let req = self.handle.route().add(route.to_message());
        self.run(req.execute()).map_err(|e| NetlinkError::request(format!("route add {}", route.describe()), e))
    }

    /// Deletes the route; the kernel matches destination, table, protocol and gateway.
    // = ip route del SUBNET via GW proto N
    pub fn route_delete(&self, route: &Ipv4Route) -> Result<()> {
        let mut msg = route.to_message();
        // Like iproute2: scope "nowhere" on delete matches a route of any scope.
        msg.header.scope = RouteScope::NoWhere;
        self.run(self.handle.route().del(msg).execute()).map_err(|e| NetlinkError::request(format!("route del {}", route.describe()), e))
    }

    /// IPv4 unicast routes of the main table installed with protocol number `proto`.
    // = ip route show table main proto N
    pub fn routes_by_proto(&self, proto: u8) -> Result<Vec<Ipv4Route>> {
        let req = self.handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build());
        let msgs =
            self.run(req.execute().try_collect::<Vec<_>>()).map_err(|e| NetlinkError::request(format!("route show proto {proto}"), e))?;
        Ok(msgs.iter().filter_map(Ipv4Route::from_message).filter(|r| r.proto == proto && r.table == RT_TABLE_MAIN).collect())
    }

    /// Asks the kernel how it would reach `dst` (IPv4 or IPv6) right now.
    // = ip route get DST
    pub fn route_get(&self, dst: impl Into<IpAddr>) -> Result<RouteLookup> {
        let dst: IpAddr = dst.into();
        let op = format!("route get {dst}");
        let msg = match dst {
            IpAddr::V4(v4) => RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(v4, 32).build(),
            IpAddr::V6(v6) => RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(v6, 128).build(),
        };
        let answer = self
            .run(self.handle.route().get(msg).execute().try_next())
            .map_err(|e| NetlinkError::request(op.clone(), e))?
            .ok_or_else(|| NetlinkError::Unexpected { op, detail: "no route message".into() })?;
        let mut lookup = RouteLookup { gateway: None, oif: None, local: answer.header.kind == RouteType::Local };
        for attr in &answer.attributes {
            match attr {
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => lookup.gateway = Some(IpAddr::V4(*ip)),
                RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => lookup.gateway = Some(IpAddr::V6(*ip)),
                RouteAttribute::Oif(i) => lookup.oif = Some(*i),
                _ => {}
            }
        }
        Ok(lookup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn message_round_trip_keeps_every_field() {
        let r = Ipv4Route::via(net("198.19.1.0/24"), Ipv4Addr::new(198, 18, 0, 2), 86).dev(4).onlink();
        let back = Ipv4Route::from_message(&r.to_message()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn host_bits_are_cleared() {
        let r = Ipv4Route::via(net("198.19.1.7/24"), Ipv4Addr::new(198, 18, 0, 2), 86);
        assert_eq!(r.dst, net("198.19.1.0/24"));
        assert_eq!(r.describe(), "198.19.1.0/24 via 198.18.0.2 proto 86");
    }

    #[test]
    fn non_unicast_routes_are_skipped() {
        let mut msg = Ipv4Route::via(net("198.19.1.0/24"), Ipv4Addr::new(198, 18, 0, 2), 86).to_message();
        msg.header.kind = RouteType::Local;
        assert_eq!(Ipv4Route::from_message(&msg), None);
    }
}
