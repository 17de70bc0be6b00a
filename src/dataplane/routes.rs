//! Longest-prefix-match table of per-host subnets: which peer VTEP owns a destination IP.
//!
//! One hash map per prefix length, probed from the longest length present downwards. A cluster
//! has a handful of distinct prefix lengths (usually one: every host owns a /24 of a /16), so a
//! lookup is one or two hash probes however many hosts there are, and updates are O(1). A trie
//! would win only with many distinct lengths, which per-host subnetting does not produce.
//!
//! IPv4 and IPv6 prefixes live in two such tables (the same code over `u32` and `u128` keys): a
//! dual-stack host owns one subnet of each family, and a lookup only ever probes its own family.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{BitAnd, Shl};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// One family's prefixes: keyed by prefix length, longest first when iterated in reverse.
#[derive(Debug, Clone)]
struct Lpm<K> {
    by_len: BTreeMap<u8, HashMap<K, IpAddr>>,
}

impl<K> Default for Lpm<K> {
    fn default() -> Self {
        Lpm { by_len: BTreeMap::new() }
    }
}

/// An address as an integer key: `u32` for IPv4, `u128` for IPv6.
trait Key: Copy + Eq + Hash + BitAnd<Output = Self> + Shl<u32, Output = Self> {
    const BITS: u32;
    const ZERO: Self;
    const ONES: Self;
}

impl Key for u32 {
    const BITS: u32 = 32;
    const ZERO: Self = 0;
    const ONES: Self = u32::MAX;
}

impl Key for u128 {
    const BITS: u32 = 128;
    const ZERO: Self = 0;
    const ONES: Self = u128::MAX;
}

impl<K: Key> Lpm<K> {
    fn insert(&mut self, len: u8, net: K, via: IpAddr) {
        self.by_len.entry(len).or_default().insert(net, via);
    }

    fn remove(&mut self, len: u8, net: K) -> Option<IpAddr> {
        let map = self.by_len.get_mut(&len)?;
        let old = map.remove(&net);
        if map.is_empty() {
            self.by_len.remove(&len);
        }
        old
    }

    fn remove_via(&mut self, vtep: IpAddr) {
        for map in self.by_len.values_mut() {
            map.retain(|_, v| *v != vtep);
        }
        self.by_len.retain(|_, m| !m.is_empty());
    }

    // hot path
    #[inline]
    fn lookup(&self, dst: K) -> Option<IpAddr> {
        self.by_len.iter().rev().find_map(|(&len, map)| {
            let mask = if len == 0 { K::ZERO } else { K::ONES << (K::BITS - u32::from(len)) };
            map.get(&(dst & mask)).copied()
        })
    }

    fn len(&self) -> usize {
        self.by_len.values().map(HashMap::len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (u8, K, IpAddr)> + '_ {
        self.by_len.iter().flat_map(|(&len, map)| map.iter().map(move |(&net, &via)| (len, net, via)))
    }
}

/// Per-host subnet routes: prefix (IPv4 or IPv6) -> owning VTEP (underlay address).
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    v4: Lpm<u32>,
    v6: Lpm<u128>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace the route for `subnet` (an [`Ipv4Net`], [`Ipv6Net`] or [`IpNet`]).
    pub fn insert(&mut self, subnet: impl Into<IpNet>, via: IpAddr) {
        match subnet.into().trunc() {
            IpNet::V4(n) => self.v4.insert(n.prefix_len(), u32::from(n.network()), via),
            IpNet::V6(n) => self.v6.insert(n.prefix_len(), u128::from(n.network()), via),
        }
    }

    /// Remove the route for `subnet`; returns the VTEP it pointed at.
    pub fn remove(&mut self, subnet: impl Into<IpNet>) -> Option<IpAddr> {
        match subnet.into().trunc() {
            IpNet::V4(n) => self.v4.remove(n.prefix_len(), u32::from(n.network())),
            IpNet::V6(n) => self.v6.remove(n.prefix_len(), u128::from(n.network())),
        }
    }

    /// Remove every route via `vtep`.
    pub fn remove_via(&mut self, vtep: IpAddr) {
        self.v4.remove_via(vtep);
        self.v6.remove_via(vtep);
    }

    /// The VTEP owning the longest IPv4 prefix that contains `dst`.
    // hot path
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<IpAddr> {
        self.v4.lookup(u32::from(dst))
    }

    /// The VTEP owning the longest IPv6 prefix that contains `dst`.
    // hot path
    #[inline]
    pub fn lookup6(&self, dst: Ipv6Addr) -> Option<IpAddr> {
        self.v6.lookup(u128::from(dst))
    }

    /// Number of routes (both families).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All IPv4 routes, for status output.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Net, IpAddr)> + '_ {
        self.v4.iter().map(|(len, net, via)| (Ipv4Net::new(Ipv4Addr::from(net), len).expect("valid length"), via))
    }

    /// All IPv6 routes, for status output.
    pub fn iter6(&self) -> impl Iterator<Item = (Ipv6Net, IpAddr)> + '_ {
        self.v6.iter().map(|(len, net, via)| (Ipv6Net::new(Ipv6Addr::from(net), len).expect("valid length"), via))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 3));

    #[test]
    fn longest_prefix_wins() {
        let mut t = RouteTable::new();
        t.insert(net("198.19.0.0/16"), A);
        t.insert(net("198.19.2.0/24"), B);
        t.insert(net("198.19.2.128/25"), C);
        assert_eq!(t.lookup("198.19.2.200".parse().unwrap()), Some(C));
        assert_eq!(t.lookup("198.19.2.10".parse().unwrap()), Some(B));
        assert_eq!(t.lookup("198.19.7.1".parse().unwrap()), Some(A));
        assert_eq!(t.lookup("203.0.113.1".parse().unwrap()), None);
        assert_eq!(t.remove(net("198.19.2.0/24")), Some(B));
        assert_eq!(t.lookup("198.19.2.10".parse().unwrap()), Some(A));
    }

    #[test]
    fn default_route_and_host_bits_are_normalised() {
        let mut t = RouteTable::new();
        t.insert(net("198.19.3.77/24"), C);
        assert_eq!(t.lookup("198.19.3.1".parse().unwrap()), Some(C));
        t.insert(net("0.0.0.0/0"), A);
        assert_eq!(t.lookup("203.0.113.1".parse().unwrap()), Some(A));
        t.remove_via(C);
        assert_eq!(t.len(), 1);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(net("0.0.0.0/0"), A)]);
    }

    #[test]
    fn ipv6_longest_prefix_wins_apart_from_ipv4() {
        let net6 = |s: &str| -> Ipv6Net { s.parse().unwrap() };
        let mut t = RouteTable::new();
        t.insert(net6("fd00:42::/48"), A);
        t.insert(net6("fd00:42:0:2::/64"), B);
        t.insert(net6("fd00:42:0:2::8000/113"), C);
        t.insert(net("198.19.2.0/24"), C);
        assert_eq!(t.lookup6("fd00:42:0:2::8001".parse().unwrap()), Some(C));
        assert_eq!(t.lookup6("fd00:42:0:2::10".parse().unwrap()), Some(B));
        assert_eq!(t.lookup6("fd00:42:0:7::1".parse().unwrap()), Some(A));
        assert_eq!(t.lookup6("fd00:43::1".parse().unwrap()), None);
        assert_eq!(t.lookup6("::ffff:198.19.2.10".parse().unwrap()), None, "no IPv4 route answers an IPv6 lookup");
        assert_eq!(t.len(), 4);
        assert_eq!(t.remove(IpNet::from(net6("fd00:42:0:2::77/64"))), Some(B), "host bits are ignored");
        assert_eq!(t.lookup6("fd00:42:0:2::10".parse().unwrap()), Some(A));
        t.insert(net6("::/0"), B);
        assert_eq!(t.lookup6("2001:db8::1".parse().unwrap()), Some(B));
        t.remove_via(C);
        assert_eq!(t.lookup("198.19.2.10".parse().unwrap()), None);
        let mut v6: Vec<_> = t.iter6().collect();
        v6.sort();
        assert_eq!(v6, vec![(net6("::/0"), B), (net6("fd00:42::/48"), A)]);
    }
}
