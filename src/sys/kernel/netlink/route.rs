//! Routes of either family: add, replace, delete, list by protocol number or all of the main
//! table; and `ip route get`.
//!
//! One [`Route`] type over [`RouteFamily`] serves IPv4 and IPv6 (host-subnet routes
//! `PEER_SUBNET[6] via PEER_IP[6] proto 86`, the CNI plugin's default routes in a container):
//! callers never mix the families, and the kernel speaks the same messages for both.
//!
//! Routes that vxswitch installs carry their own routing protocol number (`proto N`), so a
//! restart can list exactly its own routes and never touches anyone else's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::{Ipv4Net, Ipv6Net};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::{Netlink, NetlinkError, Result};

/// The kernel's main routing table (`table main`).
pub const RT_TABLE_MAIN: u32 = 254;

/// An address family routes are kept for: the address type, its prefix type, and how each is
/// read from and written to a route message. Implemented for [`Ipv4Addr`] and [`Ipv6Addr`].
pub trait RouteFamily: Copy + Eq + Ord + std::hash::Hash + std::fmt::Debug + std::fmt::Display + 'static {
    /// The prefix type (`Ipv4Net`, `Ipv6Net`).
    type Net: Copy + Eq + Ord + std::hash::Hash + std::fmt::Debug + std::fmt::Display + Default;
    /// The netlink address family.
    const FAMILY: AddressFamily;
    /// `net` with its host bits cleared.
    fn trunc(net: Self::Net) -> Self::Net;
    /// The prefix `addr/len`, if `len` fits the family.
    fn net(addr: Self, len: u8) -> Option<Self::Net>;
    /// The unspecified address (`0.0.0.0`, `::`).
    fn unspecified() -> Self;
    /// A builder for a route to `dst`, via `gateway` if given.
    fn builder(dst: Self::Net, gateway: Option<Self>) -> RouteMessageBuilder<Self>;
    /// An empty builder, for dumps of this family.
    fn dump() -> RouteMessageBuilder<Self>;
    /// The address in `a`, if it is of this family.
    fn from_attr(a: &RouteAddress) -> Option<Self>;
}

impl RouteFamily for Ipv4Addr {
    type Net = Ipv4Net;
    const FAMILY: AddressFamily = AddressFamily::Inet;
    fn trunc(net: Ipv4Net) -> Ipv4Net {
        net.trunc()
    }
    fn net(addr: Self, len: u8) -> Option<Ipv4Net> {
        Ipv4Net::new(addr, len).ok()
    }
    fn unspecified() -> Self {
        Ipv4Addr::UNSPECIFIED
    }
    fn builder(dst: Ipv4Net, gateway: Option<Self>) -> RouteMessageBuilder<Self> {
        let b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dst.addr(), dst.prefix_len());
        match gateway {
            Some(gw) => b.gateway(gw),
            None => b,
        }
    }
    fn dump() -> RouteMessageBuilder<Self> {
        RouteMessageBuilder::<Ipv4Addr>::new()
    }
    fn from_attr(a: &RouteAddress) -> Option<Self> {
        match a {
            RouteAddress::Inet(ip) => Some(*ip),
            _ => None,
        }
    }
}

impl RouteFamily for Ipv6Addr {
    type Net = Ipv6Net;
    const FAMILY: AddressFamily = AddressFamily::Inet6;
    fn trunc(net: Ipv6Net) -> Ipv6Net {
        net.trunc()
    }
    fn net(addr: Self, len: u8) -> Option<Ipv6Net> {
        Ipv6Net::new(addr, len).ok()
    }
    fn unspecified() -> Self {
        Ipv6Addr::UNSPECIFIED
    }
    fn builder(dst: Ipv6Net, gateway: Option<Self>) -> RouteMessageBuilder<Self> {
        let b = RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(dst.addr(), dst.prefix_len());
        match gateway {
            Some(gw) => b.gateway(gw),
            None => b,
        }
    }
    fn dump() -> RouteMessageBuilder<Self> {
        RouteMessageBuilder::<Ipv6Addr>::new()
    }
    fn from_attr(a: &RouteAddress) -> Option<Self> {
        match a {
            RouteAddress::Inet6(ip) => Some(*ip),
            _ => None,
        }
    }
}

/// One unicast route of family `A`, as installed or listed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route<A: RouteFamily> {
    /// Destination prefix (host bits are cleared before sending).
    pub dst: A::Net,
    /// Next hop (`via GW`), or `None` for a directly connected route.
    pub gateway: Option<A>,
    /// Output interface index (`dev DEV`), if pinned.
    pub oif: Option<u32>,
    /// Routing protocol number (`proto N`).
    pub proto: u8,
    /// The gateway is reachable on `oif` without a connected subnet (`onlink`).
    pub onlink: bool,
    /// Routing table id.
    pub table: u32,
}

/// An IPv4 route.
pub type Ipv4Route = Route<Ipv4Addr>;
/// An IPv6 route.
pub type Ipv6Route = Route<Ipv6Addr>;

impl<A: RouteFamily> Route<A> {
    /// `dst via gateway proto proto` in the main table.
    pub fn via(dst: A::Net, gateway: A, proto: u8) -> Self {
        Route { dst: A::trunc(dst), gateway: Some(gateway), oif: None, proto, onlink: false, table: RT_TABLE_MAIN }
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
        let mut s = A::trunc(self.dst).to_string();
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
        let mut b = A::builder(A::trunc(self.dst), self.gateway).protocol(RouteProtocol::from(self.proto)).table_id(self.table);
        if let Some(oif) = self.oif {
            b = b.output_interface(oif);
        }
        if self.onlink {
            b = b.onlink();
        }
        b.build()
    }

    /// Reads a unicast route message of this family; `None` for anything else.
    pub(crate) fn from_message(msg: &RouteMessage) -> Option<Self> {
        if msg.header.address_family != A::FAMILY || msg.header.kind != RouteType::Unicast {
            return None;
        }
        let mut dst_ip = A::unspecified();
        let mut route = Route {
            dst: A::Net::default(),
            gateway: None,
            oif: None,
            proto: u8::from(msg.header.protocol),
            onlink: msg.header.flags.contains(RouteFlags::Onlink),
            table: u32::from(msg.header.table),
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => dst_ip = A::from_attr(a).unwrap_or(dst_ip),
                RouteAttribute::Gateway(a) => route.gateway = A::from_attr(a).or(route.gateway),
                RouteAttribute::Oif(i) => route.oif = Some(*i),
                RouteAttribute::Table(t) => route.table = *t,
                _ => {}
            }
        }
        route.dst = A::net(dst_ip, msg.header.destination_prefix_length)?;
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
    // = ip [-6] route replace SUBNET via GW [dev DEV] [onlink] proto N
    pub fn route_replace<A: RouteFamily>(&self, route: &Route<A>) -> Result<()> {
        let req = self.handle.route().add(route.to_message()).replace();
        self.run(req.execute()).map_err(|e| NetlinkError::request(format!("route replace {}", route.describe()), e))
    }

    /// Installs the route only if no route for `route.dst` exists yet (EEXIST otherwise), so
    /// a route owned by someone else is never overwritten.
    // = ip [-6] route add SUBNET via GW [dev DEV] [onlink] proto N
    pub fn route_add<A: RouteFamily>(&self, route: &Route<A>) -> Result<()> {
        let req = self.handle.route().add(route.to_message());
        self.run(req.execute()).map_err(|e| NetlinkError::request(format!("route add {}", route.describe()), e))
    }

    /// Deletes the route; the kernel matches destination, table, protocol and gateway.
    // = ip [-6] route del SUBNET via GW proto N
    pub fn route_delete<A: RouteFamily>(&self, route: &Route<A>) -> Result<()> {
        let mut msg = route.to_message();
        // Like iproute2: scope "nowhere" on delete matches a route of any scope.
        msg.header.scope = RouteScope::NoWhere;
        self.run(self.handle.route().del(msg).execute()).map_err(|e| NetlinkError::request(format!("route del {}", route.describe()), e))
    }

    /// Every unicast route of family `A` in the main table, whatever its protocol.
    // = ip [-6] route show table main
    pub fn routes_main<A: RouteFamily>(&self) -> Result<Vec<Route<A>>> {
        let req = self.handle.route().get(A::dump().build());
        let msgs = self.run(req.execute().try_collect::<Vec<_>>()).map_err(|e| NetlinkError::request("route show", e))?;
        Ok(msgs.iter().filter_map(Route::<A>::from_message).filter(|r| r.table == RT_TABLE_MAIN).collect())
    }

    /// IPv4 unicast routes of the main table installed with protocol number `proto`.
    // = ip route show table main proto N
    pub fn routes_by_proto(&self, proto: u8) -> Result<Vec<Ipv4Route>> {
        Ok(self.routes_main::<Ipv4Addr>()?.into_iter().filter(|r| r.proto == proto).collect())
    }

    /// IPv6 unicast routes of the main table installed with protocol number `proto`.
    // = ip -6 route show table main proto N
    pub fn routes6_by_proto(&self, proto: u8) -> Result<Vec<Ipv6Route>> {
        Ok(self.routes_main::<Ipv6Addr>()?.into_iter().filter(|r| r.proto == proto).collect())
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

    #[test]
    fn ipv6_message_round_trip_keeps_every_field_and_clears_host_bits() {
        let r = Ipv6Route::via("fd00:19:1::7/64".parse().unwrap(), "fd00:18::2".parse().unwrap(), 86).dev(4);
        assert_eq!(r.describe(), "fd00:19:1::/64 via fd00:18::2 dev 4 proto 86");
        assert_eq!(Ipv6Route::from_message(&r.to_message()), Some(r.clone()));
        let mut msg = r.to_message();
        msg.header.address_family = AddressFamily::Inet;
        assert_eq!(Ipv6Route::from_message(&msg), None, "IPv4 messages are not read as IPv6");
    }
}
