//! The built-in IPAM's bookkeeping, pure: an address pool and the table of allocations.
//!
//! The table is what the store keeps on disk ([`crate::sys::cni::store`]), read and rewritten
//! whole under a file lock for every change, so concurrent `ADD`s never hand out one address
//! twice and a crash leaves the old table or the new one. Addresses are handed out round-robin
//! after the last one given (as host-local does), so an address just released is not reused at
//! once while stale neighbour entries for it may still live elsewhere in the cluster.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::spec::Attachment;

/// The addresses one network may hand out on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The subnet the addresses belong to (their prefix length).
    pub subnet: Ipv4Net,
    /// First address handed out.
    pub start: Ipv4Addr,
    /// Last address handed out.
    pub end: Ipv4Addr,
    /// The gateway, never handed out.
    pub gateway: Option<Ipv4Addr>,
}

impl Pool {
    /// A pool over `subnet` (default range: its host addresses), checked.
    pub fn new(subnet: Ipv4Net, start: Option<Ipv4Addr>, end: Option<Ipv4Addr>, gateway: Option<Ipv4Addr>) -> Result<Pool, String> {
        let subnet = subnet.trunc();
        let (first, last) = host_range(subnet);
        let start = start.unwrap_or(first);
        let end = end.unwrap_or(last);
        if !subnet.contains(&start) || !subnet.contains(&end) || start > end {
            return Err(format!("range {start}-{end} is not inside {subnet}"));
        }
        Ok(Pool { subnet, start, end, gateway })
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        let (first, last) = host_range(self.subnet);
        Some(ip) != self.gateway && ip >= first && ip <= last && ip >= self.start && ip <= self.end
    }

    /// The next usable address after `last` (wrapping around), not in `used`.
    pub fn next_free(&self, used: &BTreeSet<Ipv4Addr>, last: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let (start, end) = (u32::from(self.start), u32::from(self.end));
        let size = end - start + 1;
        let from = last.map(u32::from).filter(|l| (start..=end).contains(l)).map_or(0, |l| l - start + 1);
        (0..size).map(|i| Ipv4Addr::from(start + (from + i) % size)).find(|ip| self.usable(*ip) && !used.contains(ip))
    }
}

/// The first and last host address of `subnet` (the whole subnet for /31 and /32).
fn host_range(subnet: Ipv4Net) -> (Ipv4Addr, Ipv4Addr) {
    if subnet.prefix_len() >= 31 {
        return (subnet.network(), subnet.broadcast());
    }
    (Ipv4Addr::from(u32::from(subnet.network()) + 1), Ipv4Addr::from(u32::from(subnet.broadcast()) - 1))
}

/// One address handed to one container interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The address.
    pub ip: Ipv4Addr,
    /// The container id.
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

/// Every allocation of one network on this host, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// The last address handed out (round-robin position).
    pub last: Option<Ipv4Addr>,
    /// The allocations.
    pub allocations: Vec<Allocation>,
}

impl Table {
    /// The address of `container_id`/`ifname`, if it has one.
    pub fn find(&self, container_id: &str, ifname: &str) -> Option<Ipv4Addr> {
        self.allocations.iter().find(|a| a.container_id == container_id && a.ifname == ifname).map(|a| a.ip)
    }

    /// Give `container_id`/`ifname` an address from `pool` (its existing one, if any).
    pub fn allocate(&mut self, pool: &Pool, container_id: &str, ifname: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.find(container_id, ifname) {
            return Some(ip);
        }
        let used: BTreeSet<Ipv4Addr> = self.allocations.iter().map(|a| a.ip).collect();
        let ip = pool.next_free(&used, self.last)?;
        self.allocations.push(Allocation { ip, container_id: container_id.into(), ifname: ifname.into() });
        self.last = Some(ip);
        Some(ip)
    }

    /// Release what `container_id`/`ifname` holds; the addresses released.
    pub fn release(&mut self, container_id: &str, ifname: &str) -> Vec<Ipv4Addr> {
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

    fn pool(start: u8, end: u8) -> Pool {
        let ip = |d| Ipv4Addr::new(10, 1, 0, d);
        Pool::new("10.1.0.0/24".parse().unwrap(), Some(ip(start)), Some(ip(end)), Some(ip(1))).unwrap()
    }

    #[test]
    fn addresses_are_distinct_round_robin_and_skip_the_gateway() {
        let p = pool(1, 4);
        let mut t = Table::default();
        let got: Vec<_> = ["a", "b", "c"].iter().map(|c| t.allocate(&p, c, "eth0").unwrap()).collect();
        assert_eq!(got, [Ipv4Addr::new(10, 1, 0, 2), Ipv4Addr::new(10, 1, 0, 3), Ipv4Addr::new(10, 1, 0, 4)]);
        assert_eq!(t.allocate(&p, "d", "eth0"), None, "range full");
        assert_eq!(t.allocate(&p, "b", "eth0"), Some(Ipv4Addr::new(10, 1, 0, 3)), "same attachment, same address");
        assert_eq!(t.release("a", "eth0"), [Ipv4Addr::new(10, 1, 0, 2)]);
        assert_eq!(t.allocate(&p, "d", "eth0"), Some(Ipv4Addr::new(10, 1, 0, 2)));
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
        let released: Vec<Ipv4Addr> = t.retain_valid(&valid).into_iter().map(|a| a.ip).collect();
        assert_eq!(released, [Ipv4Addr::new(10, 1, 0, 10), Ipv4Addr::new(10, 1, 0, 12)]);
        assert_eq!(t.allocations.iter().map(|a| a.container_id.as_str()).collect::<Vec<_>>(), ["b", "d"]);
    }

    #[test]
    fn ranges_outside_the_subnet_are_refused_and_network_and_broadcast_never_given() {
        assert!(Pool::new("10.1.0.0/24".parse().unwrap(), Some(Ipv4Addr::new(10, 2, 0, 1)), None, None).is_err());
        let p = Pool::new("10.1.0.0/30".parse().unwrap(), None, None, None).unwrap();
        let mut t = Table::default();
        assert_eq!(t.allocate(&p, "a", "eth0"), Some(Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(t.allocate(&p, "b", "eth0"), Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(t.allocate(&p, "c", "eth0"), None);
    }
}
