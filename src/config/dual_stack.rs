//! The IPv6 half of a dual-stack routed or host-subnet network: `subnet6`/`gateway6` per network,
//! `address6`/`subnet6` per static peer, and `[underlay] address6`.
//!
//! A dual-stack network is an IPv4 network with an IPv6 subnet next to it, not two networks: the
//! IPv4 `subnet` (or lease) stays required. IPv6-only routed networks are refused because the
//! rest of a routed network is IPv4-shaped on purpose: leases, the CNI answer's gateway and
//! range, the ESP routed payload and the claim-age state all key on the IPv4 subnet, and an
//! IPv6-only container still needs an IPv4 address for the IPv4 services of the cluster
//! (floating IPs, service VIPs). There are no IPv6 leases: `subnet6` is configured per host.
//!
//! Sizes: an IPv6 host subnet is /48 to /126. Anything shorter than /48 for one host is a typo
//! for the cluster range (gossip refuses prefixes shorter than /16 anyway); /127 and /128 leave
//! no room for the gateway next to a container. The gateway defaults to the subnet's first
//! address (`::1`), never the Subnet-Router anycast address (the subnet's `::`, RFC 4291 2.6.1).
//!
//! Next hops: host-subnet mode routes `PEER_SUBNET6 via PEER_IP6`, so over an IPv4 underlay every
//! host with an IPv6 subnet needs an IPv6 address on the underlay link (`address6`; announced in
//! its gossip record, or given per static peer). Link-local next hops are refused: a kernel route
//! via `fe80::` needs a device, and one address per host is all the record carries.

use std::net::{IpAddr, Ipv6Addr};
use std::ops::Range;

use ipnet::Ipv6Net;

use super::{raw, ConfigError, Mode};

/// Shortest IPv6 host subnet (see the module doc).
pub const MIN_SUBNET6_PREFIX: u8 = 48;
/// Longest IPv6 host subnet.
pub const MAX_SUBNET6_PREFIX: u8 = 126;

/// This host's IPv6 subnet on a routed or host-subnet network, next to the IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSubnet6 {
    /// The IPv6 subnet this host owns.
    pub subnet: Ipv6Net,
    /// The containers' IPv6 gateway (default: the subnet's first address, `::1`).
    pub gateway: Ipv6Addr,
}

/// Whether `a` is link-local (fe80::/10).
fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Why `a` cannot be a host's IPv6 address on the underlay link, if it cannot.
pub(super) fn bad_address6(a: &Ipv6Addr) -> Option<String> {
    if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
        return Some(format!("{a} is not a unicast IPv6 address"));
    }
    if is_link_local(a) {
        return Some(format!("{a} is link-local: a route via it would need a device; give a global or unique-local address"));
    }
    None
}

/// Why `net` cannot be a host's IPv6 subnet, if it cannot.
fn bad_subnet6(net: &Ipv6Net) -> Option<String> {
    let first = net.network();
    if !(MIN_SUBNET6_PREFIX..=MAX_SUBNET6_PREFIX).contains(&net.prefix_len()) {
        return Some(format!("{net}: an IPv6 host subnet is /{MIN_SUBNET6_PREFIX} to /{MAX_SUBNET6_PREFIX}"));
    }
    if first.is_unspecified() || first.is_multicast() || first.is_loopback() || is_link_local(&first) {
        return Some(format!("{net} is not a routable unicast prefix (multicast, link-local and :: are refused)"));
    }
    None
}

/// `subnet6` and `gateway6` of network `n` in `mode`.
pub(super) fn validate_host_subnet6(
    n: &raw::RawNetwork,
    mode: Mode,
    err: &impl Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Option<HostSubnet6>, ConfigError> {
    let Some(subnet) = &n.subnet6 else {
        if let Some(g) = &n.gateway6 {
            return Err(err(g.span(), "gateway6", "gateway6 needs subnet6".into()));
        }
        return Ok(None);
    };
    if matches!(mode, Mode::Overlay | Mode::Kernel) {
        return Err(err(subnet.span(), "subnet6", "only routed and host-subnet networks own a subnet".into()));
    }
    let net = subnet.get_ref().trunc();
    if let Some(reason) = bad_subnet6(&net) {
        return Err(err(subnet.span(), "subnet6", reason));
    }
    let gateway = match &n.gateway6 {
        None => Ipv6Addr::from(u128::from(net.network()) + 1),
        Some(g) => {
            let a = *g.get_ref();
            if !net.contains(&a) || a == net.network() {
                return Err(err(
                    g.span(),
                    "gateway6",
                    format!(
                        "{a} is not a host address of {net} (the subnet's first address {} is the Subnet-Router anycast address)",
                        net.network()
                    ),
                ));
            }
            a
        }
    };
    Ok(Some(HostSubnet6 { subnet: net, gateway }))
}

/// A static peer's `address6` and `subnet6`, checked against the network's mode, the underlay
/// family, this host's own IPv6 subnet and the peers before it. Returns `(address6, subnet6)`.
pub(super) fn validate_peer6(
    t: &raw::RawPeerTable,
    mode: Mode,
    own: Option<&HostSubnet6>,
    before: &[super::Peer],
) -> Result<(Option<Ipv6Addr>, Option<Ipv6Net>), String> {
    let addr = t.address;
    if let Some(a6) = t.address6 {
        if addr.is_ipv6() {
            return Err(format!("peer {addr}: address6 is the IPv6 address of a host on an IPv4 underlay; {addr} is IPv6 already"));
        }
        if let Some(reason) = bad_address6(&a6) {
            return Err(format!("peer {addr}: address6: {reason}"));
        }
        if let Some(q) = before.iter().find(|q| q.address6 == Some(a6)) {
            return Err(format!("peer {addr}: address6 {a6} is also peer {}'s", q.address));
        }
    }
    let Some(net) = t.subnet6.map(|s| s.trunc()) else { return Ok((t.address6, None)) };
    if matches!(mode, Mode::Overlay | Mode::Kernel) {
        return Err(format!("peer {addr}: a subnet6 only applies to routed and host-subnet networks"));
    }
    if let Some(reason) = bad_subnet6(&net) {
        return Err(format!("peer {addr}: subnet6 {reason}"));
    }
    let clash =
        own.map(|h| h.subnet).into_iter().chain(before.iter().filter_map(|q| q.subnet6)).find(|o| o.contains(&net) || net.contains(o));
    if let Some(other) = clash {
        return Err(format!("peer {addr}: subnet6 {net} overlaps {other}"));
    }
    if mode == Mode::HostSubnet && t.address6.is_none() && !addr.is_ipv6() {
        return Err(format!(
            "peer {addr}: host-subnet routes to {net} go via the peer's IPv6 address on the underlay link: give it ({{ address = \"{addr}\", address6 = \"...\", subnet6 = \"{net}\" }})"
        ));
    }
    Ok((t.address6, Some(net)))
}

/// `[underlay] address6` next to `address`.
pub(super) fn validate_address6(text: &str, u: &raw::RawUnderlay) -> Result<Option<Ipv6Addr>, ConfigError> {
    let Some(a6) = &u.address6 else { return Ok(None) };
    let refuse = |reason: String| ConfigError {
        file: None,
        line: Some(super::line_of(text, a6.span().start)),
        key: "underlay.address6".into(),
        reason,
    };
    if let IpAddr::V6(a) = u.address.get_ref() {
        return Err(refuse(format!(
            "the underlay address {a} is IPv6 already; address6 is the IPv6 address of a host on an IPv4 underlay"
        )));
    }
    if let Some(reason) = bad_address6(a6.get_ref()) {
        return Err(refuse(reason));
    }
    Ok(Some(*a6.get_ref()))
}
