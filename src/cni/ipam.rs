//! The built-in IPAM's bookkeeping, pure: an address pool and the table of allocations.
//!
//! The table is what the store keeps on disk ([`crate::sys::cni::store`]), read and rewritten
//! whole under a file lock for every change, so concurrent `ADD`s never hand out one address
//! twice and a crash leaves the old table or the new one. Addresses are handed out round-robin
//! after the last one given (as host-local does), so an address just released is not reused at
//! once while stale neighbour entries for it may still live elsewhere in the cluster.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::spec::Attachment;

/// The addresses one network may hand out on this host, of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The subnet the addresses belong to (their prefix length).
    pub subnet: IpNet,
    /// First address handed out.
    pub start: IpAddr,
    /// Last address handed out.
    pub end: IpAddr,
    /// The gateway, never handed out.
    pub gateway: Option<IpAddr>,
}

impl Pool {
    /// A pool over `subnet` (default range: its host addresses), checked: the range and the
    /// gateway must be of the subnet's family, the range inside it.
    pub fn new(subnet: IpNet, start: Option<IpAddr>, end: Option<IpAddr>, gateway: Option<IpAddr>) -> Result<Pool, String> {
        let subnet = subnet.trunc();
        let (first, last) = host_range(subnet);
        let start = start.unwrap_or(first);
        let end = end.unwrap_or(last);
        if !subnet.contains(&start) || !subnet.contains(&end) || number(start) > number(end) {
            return Err(format!("range {start}-{end} is not inside {subnet}"));
        }
        if let Some(g) = gateway.filter(|g| g.is_ipv4() != subnet.addr().is_ipv4()) {
            return Err(format!("gateway {g} is not of the family of {subnet}"));
        }
        Ok(Pool { subnet, start, end, gateway })
    }

    fn usable(&self, ip: IpAddr) -> bool {
        let (first, last) = host_range(self.subnet);
        let n = number(ip);
        Some(ip) != self.gateway && (number(first)..=number(last)).contains(&n) && (number(self.start)..=number(self.end)).contains(&n)
    }

    /// The next usable address after `last` (wrapping around), not in `used`.
    pub fn next_free(&self, used: &BTreeSet<IpAddr>, last: Option<IpAddr>) -> Option<IpAddr> {
        let (start, end) = (number(self.start), number(self.end));
        let size = end - start + 1;
        let from = last.filter(|l| l.is_ipv4() == self.start.is_ipv4()).map(number).filter(|l| (start..=end).contains(l));
        let from = from.map_or(0, |l| l - start + 1);
        // An IPv6 range may hold 2^64 addresses and more: only as many are looked at as it takes.
        let mut i: u128 = 0;
        while i < size {
            let ip = address(self.start, start + (from + i) % size);
            if self.usable(ip) && !used.contains(&ip) {
                return Some(ip);
            }
            i += 1;
        }
        None
    }
}

/// An address as a number (IPv4 in the low 32 bits).
fn number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(ip) => u128::from(u32::from(ip)),
        IpAddr::V6(ip) => u128::from(ip),
    }
}

/// The address numbered `n`, of the family of `like`.
fn address(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The first and last host address of `subnet`: without the network address (for IPv6 the
/// subnet-router anycast address) and the last one (IPv4 broadcast; IPv6 skips it as host-local
/// does). A /31, /32, /127 or /128 is used whole.
fn host_range(subnet: IpNet) -> (IpAddr, IpAddr) {
    let (net, top) = (subnet.network(), subnet.broadcast());
    if subnet.max_prefix_len() - subnet.prefix_len() <= 1 {
        return (net, top);
    }
    (address(net, number(net) + 1), address(top, number(top) - 1))
}

/// One address handed to one container interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The address (one allocation per family and interface).
    pub ip: IpAddr,
    /// The container id.
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

/// Every allocation of one network on this host, as stored. Tables written before IPv6 was
/// allocated read unchanged (`last6` absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// The last IPv4 address handed out (round-robin position).
    pub last: Option<IpAddr>,
    /// The last IPv6 address handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last6: Option<IpAddr>,
    /// The allocations.
    pub allocations: Vec<Allocation>,
}

impl Table {
    /// The addresses `container_id`/`ifname` holds (at most one per family), IPv4 first.
    pub fn find(&self, container_id: &str, ifname: &str) -> Vec<IpAddr> {
        let mut held: Vec<IpAddr> =
            self.allocations.iter().filter(|a| a.container_id == container_id && a.ifname == ifname).map(|a| a.ip).collect();
        held.sort_by_key(|ip| ip.is_ipv6());
        held
    }

    /// Give `container_id`/`ifname` an address from `pool` (its existing one of that family, if
    /// any).
    pub fn allocate(&mut self, pool: &Pool, container_id: &str, ifname: &str) -> Option<IpAddr> {
        let v6 = pool.subnet.addr().is_ipv6();
        if let Some(ip) = self.find(container_id, ifname).into_iter().find(|ip| ip.is_ipv6() == v6) {
            return Some(ip);
        }
        let used: BTreeSet<IpAddr> = self.allocations.iter().map(|a| a.ip).collect();
        let last = if v6 { &mut self.last6 } else { &mut self.last };
        let ip = pool.next_free(&used, *last)?;
        *last = Some(ip);
        self.allocations.push(Allocation { ip, container_id: container_id.into(), ifname: ifname.into() });
        Some(ip)
    }

    /// Release what `container_id`/`ifname` holds; the addresses released.
    pub fn release(&mut self, container_id: &str, ifname: &str) -> Vec<IpAddr> {
        self.release_where(|a| a.container_id == container_id && a.ifname == ifname).into_iter().map(|a| a.ip).collect()
    }

    /// Release every allocation that is not one of `valid` (`GC`); the allocations released.
    pub fn retain_valid(&mut self, valid: &[Attachment]) -> Vec<Allocation> {
        self.release_where(|a| !valid.iter().any(|v| v.container_id == a.container_id && v.ifname == a.ifname))
    }

    fn release_where(&mut self, gone: impl Fn(&Allocation) -> bool) -> Vec<Allocation> {
        let released = self.allocations.iter().filter(|a| gone(a)).cloned().collect();
        self.allocations.retain(|a| !gone(a));
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(d: u8) -> IpAddr {
        Ipv4Addr::new(10, 1, 0, d).into()
    }

    fn ip6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pool(start: u8, end: u8) -> Pool {
        Pool::new("10.1.0.0/24".parse().unwrap(), Some(ip(start)), Some(ip(end)), Some(ip(1))).unwrap()
    }

    fn pool6() -> Pool {
        Pool::new("fd00:77::/64".parse().unwrap(), None, None, Some(ip6("fd00:77::1"))).unwrap()
    }

    #[test]
    fn addresses_are_distinct_round_robin_and_skip_the_gateway() {
        let p = pool(1, 4);
        let mut t = Table::default();
        let got: Vec<_> = ["a", "b", "c"].iter().map(|c| t.allocate(&p, c, "eth0").unwrap()).collect();
        assert_eq!(got, [ip(2), ip(3), ip(4)]);
        assert_eq!(t.allocate(&p, "d", "eth0"), None, "range full");
        assert_eq!(t.allocate(&p, "b", "eth0"), Some(ip(3)), "same attachment, same address");
        assert_eq!(t.release("a", "eth0"), [ip(2)]);
        assert_eq!(t.allocate(&p, "d", "eth0"), Some(ip(2)));
    }

    #[test]
    fn a_released_address_is_not_reused_while_others_are_free() {
        let p = pool(10, 20);
        let mut t = Table::default();
        let a = t.allocate(&p, "a", "eth0").unwrap();
        t.release("a", "eth0");
        assert_ne!(t.allocate(&p, "b", "eth0").unwrap(), a);
    }

    #[test]
    fn gc_keeps_exactly_the_valid_attachments() {
        let p = pool(10, 20);
        let mut t = Table::default();
        for c in ["a", "b", "c", "d"] {
            t.allocate(&p, c, "eth0").unwrap();
        }
        let valid = vec![
            Attachment { container_id: "b".into(), ifname: "eth0".into() },
            Attachment { container_id: "d".into(), ifname: "eth0".into() },
        ];
        let released: Vec<IpAddr> = t.retain_valid(&valid).into_iter().map(|a| a.ip).collect();
        assert_eq!(released, [ip(10), ip(12)]);
        assert_eq!(t.allocations.iter().map(|a| a.container_id.as_str()).collect::<Vec<_>>(), ["b", "d"]);
    }

    #[test]
    fn ranges_outside_the_subnet_are_refused_and_network_and_broadcast_never_given() {
        assert!(Pool::new("10.1.0.0/24".parse().unwrap(), Some(Ipv4Addr::new(10, 2, 0, 1).into()), None, None).is_err());
        let p = Pool::new("10.1.0.0/30".parse().unwrap(), None, None, None).unwrap();
        let mut t = Table::default();
        assert_eq!(t.allocate(&p, "a", "eth0"), Some(ip(1)));
        assert_eq!(t.allocate(&p, "b", "eth0"), Some(ip(2)));
        assert_eq!(t.allocate(&p, "c", "eth0"), None);
    }

    #[test]
    fn ipv6_pools_skip_the_anycast_address_and_the_gateway_and_check_families() {
        let p = pool6();
        assert_eq!((p.start, p.end), (ip6("fd00:77::1"), ip6("fd00:77::ffff:ffff:ffff:fffe")));
        let mut t = Table::default();
        assert_eq!(t.allocate(&p, "a", "eth0"), Some(ip6("fd00:77::2")), "::0 is the subnet-router anycast, ::1 the gateway");
        assert_eq!(t.allocate(&p, "b", "eth0"), Some(ip6("fd00:77::3")));
        // A range at the very top of a /64: no overflow, and the last address is kept back.
        let top = Pool::new("fd00:77::/64".parse().unwrap(), Some(ip6("fd00:77::ffff:ffff:ffff:fffd")), None, None).unwrap();
        let mut t = Table::default();
        assert_eq!(t.allocate(&top, "a", "eth0"), Some(ip6("fd00:77::ffff:ffff:ffff:fffd")));
        assert_eq!(t.allocate(&top, "b", "eth0"), Some(ip6("fd00:77::ffff:ffff:ffff:fffe")));
        assert_eq!(t.allocate(&top, "c", "eth0"), None, "the last address is never given");
        assert!(Pool::new("fd00:77::/64".parse().unwrap(), Some(ip6("fd00:78::1")), None, None).is_err(), "range outside");
        assert!(Pool::new("fd00:77::/64".parse().unwrap(), None, None, Some(ip(1))).is_err(), "IPv4 gateway");
        assert!(Pool::new("10.1.0.0/24".parse().unwrap(), Some(ip6("fd00:77::5")), None, None).is_err(), "IPv6 range in IPv4");
    }

    #[test]
    fn dual_stack_attachments_hold_one_address_per_family_and_release_both() {
        let (p4, p6) = (pool(10, 20), pool6());
        let mut t = Table::default();
        for c in ["a", "b"] {
            t.allocate(&p4, c, "eth0").unwrap();
            t.allocate(&p6, c, "eth0").unwrap();
        }
        assert_eq!(t.find("b", "eth0"), [ip(11), ip6("fd00:77::3")], "IPv4 first");
        assert_eq!(t.allocate(&p6, "b", "eth0"), Some(ip6("fd00:77::3")), "same attachment, same IPv6 address");
        assert_eq!((t.last, t.last6), (Some(ip(11)), Some(ip6("fd00:77::3"))), "one round-robin position per family");
        assert_eq!(t.release("a", "eth0"), [ip(10), ip6("fd00:77::2")]);
        let released = t.retain_valid(&[]);
        assert_eq!(released.len(), 2, "GC frees both families");
        assert!(t.allocations.is_empty());
        // A table stored before IPv6 was allocated reads as it was.
        let old: Table =
            serde_json::from_str(r#"{"last":"10.1.0.11","allocations":[{"ip":"10.1.0.11","container_id":"b","ifname":"eth0"}]}"#).unwrap();
        assert_eq!((old.last, old.last6, old.find("b", "eth0")), (Some(ip(11)), None, vec![ip(11)]));
    }
}
