//! Longest-prefix-match table of per-host subnets: which peer VTEP owns a destination IP.
//!
//! One hash map per prefix length, probed from the longest length present downwards. A cluster
//! has a handful of distinct prefix lengths (usually one: every host owns a /24 of a /16), so a
//! lookup is one or two hash probes however many hosts there are, and updates are O(1). A trie
//! would win only with many distinct lengths, which per-host subnetting does not produce.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

/// Per-host subnet routes: prefix -> owning VTEP (underlay address).
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    /// Keyed by prefix length, longest first when iterated in reverse.
    by_len: BTreeMap<u8, HashMap<u32, IpAddr>>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace the route for `subnet`.
    pub fn insert(&mut self, subnet: Ipv4Net, via: IpAddr) {
        let subnet = subnet.trunc();
        self.by_len.entry(subnet.prefix_len()).or_default().insert(u32::from(subnet.network()), via);
    }

    /// Remove the route for `subnet`; returns the VTEP it pointed at.
    pub fn remove(&mut self, subnet: Ipv4Net) -> Option<IpAddr> {
        let subnet = subnet.trunc();
        let map = self.by_len.get_mut(&subnet.prefix_len())?;
        let old = map.remove(&u32::from(subnet.network()));
        if map.is_empty() {
            self.by_len.remove(&subnet.prefix_len());
        }
        old
    }

    /// Remove every route via `vtep`.
    pub fn remove_via(&mut self, vtep: IpAddr) {
        for map in self.by_len.values_mut() {
            map.retain(|_, v| *v != vtep);
        }
        self.by_len.retain(|_, m| !m.is_empty());
    }

    /// The VTEP owning the longest prefix that contains `dst`.
    // hot path
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<IpAddr> {
        let dst = u32::from(dst);
        self.by_len.iter().rev().find_map(|(&len, map)| {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            map.get(&(dst & mask)).copied()
        })
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.by_len.values().map(HashMap::len).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }

    /// All routes, for status output.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Net, IpAddr)> + '_ {
        self.by_len.iter().flat_map(|(&len, map)| {
            map.iter().map(move |(&net, &via)| (Ipv4Net::new(Ipv4Addr::from(net), len).expect("valid length"), via))
        })
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
}
