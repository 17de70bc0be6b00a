//! Service VIPs: a virtual `IP:PORT/PROTO` that spreads new connections over backend containers
//! on any host, reachable from every container and host (kube-proxy's job in the systems
//! vxswitch grew from).
//!
//! A service is defined on any host (configuration or `vxswitch service add`) and spread in that
//! host's gossip record; every host programs the union of the services it knows. A backend is
//! *live* while some live member (or this host) announces a container binding for its address:
//! when failure detection declares a backend's host dead, its record and with it the binding go,
//! and every host drops the backend (and flushes its conntrack entries, so no UDP flow keeps
//! going to a container that is gone). A backend whose location was never seen is not used.
//!
//! Sans-IO: [`resolve`] is a pure function of the local services, the records and the local
//! bindings; the node calls it when the view changes and hands the result to the kernel driver.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::record::MemberRecord;

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A service address: `VIP:PORT/PROTO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The virtual IP.
    pub vip: Ipv4Addr,
    /// The port.
    pub port: u16,
    /// The protocol.
    pub proto: Proto,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.vip, self.port, self.proto)
    }
}

impl FromStr for ServiceKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not VIP:PORT/PROTO (e.g. 10.96.0.10:80/tcp)");
        let (addr, proto) = s.split_once('/').ok_or_else(bad)?;
        let (vip, port) = addr.split_once(':').ok_or_else(bad)?;
        let vip: Ipv4Addr = vip.parse().map_err(|_| bad())?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(format!("{s:?}: protocol must be tcp or udp")),
        };
        if port == 0 || vip.is_unspecified() || vip.is_multicast() || vip.is_broadcast() || vip.is_loopback() {
            return Err(format!("{s:?}: needs a unicast VIP and a port above 0"));
        }
        Ok(ServiceKey { vip, port, proto })
    }
}

/// A service as defined: its address and its backends (container addresses, same port).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceSpec {
    /// `VIP:PORT/PROTO`.
    pub key: ServiceKey,
    /// Backend container addresses.
    pub backends: Vec<Ipv4Addr>,
}

/// A service as this host programs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// `VIP:PORT/PROTO`.
    pub key: ServiceKey,
    /// Every backend defined for it (by any host).
    pub backends: Vec<Ipv4Addr>,
    /// The live ones, in the order new connections are spread over.
    pub live: Vec<Ipv4Addr>,
}

/// At most this many services and backends per service are programmed (the record stays small).
pub const MAX_SERVICES: usize = 64;
/// See [`MAX_SERVICES`].
pub const MAX_BACKENDS: usize = 64;

/// The services to program: the union of `local` and the services in `records` (this host's and
/// the live members'), each backend live when some record binds its address or `bound_here`
/// says it is behind this host.
pub fn resolve(local: &[ServiceSpec], records: &[&MemberRecord], bound_here: impl Fn(Ipv4Addr) -> bool) -> Vec<ServiceView> {
    let mut all: BTreeMap<ServiceKey, Vec<Ipv4Addr>> = BTreeMap::new();
    for spec in local.iter().chain(records.iter().flat_map(|r| r.services.iter())) {
        if all.len() >= MAX_SERVICES && !all.contains_key(&spec.key) {
            continue;
        }
        let entry = all.entry(spec.key).or_default();
        for b in &spec.backends {
            if !entry.contains(b) && entry.len() < MAX_BACKENDS {
                entry.push(*b);
            }
        }
    }
    let bound = |ip: Ipv4Addr| bound_here(ip) || records.iter().any(|r| r.networks.iter().any(|n| n.bindings.iter().any(|b| b.ip == ip)));
    all.into_iter()
        .map(|(key, mut backends)| {
            backends.sort();
            let live = backends.iter().copied().filter(|&b| bound(b)).collect();
            ServiceView { key, backends, live }
        })
        .collect()
}

/// Backends of `old` that are no longer live in `new`, per service (their conntrack entries
/// must go).
pub fn withdrawn(old: &[ServiceView], new: &[ServiceView]) -> Vec<(ServiceKey, Ipv4Addr)> {
    let mut out = Vec::new();
    for o in old {
        let now_live = new.iter().find(|n| n.key == o.key).map_or(&[][..], |n| &n.live[..]);
        out.extend(o.live.iter().filter(|b| !now_live.contains(b)).map(|b| (o.key, *b)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::fixtures::host_record;

    fn key() -> ServiceKey {
        "10.96.0.10:80/tcp".parse().unwrap()
    }

    #[test]
    fn keys_parse_and_print() {
        assert_eq!(key().to_string(), "10.96.0.10:80/tcp");
        assert_eq!("10.96.0.10:53/udp".parse::<ServiceKey>().unwrap().proto, Proto::Udp);
        for bad in ["10.96.0.10:80", "10.96.0.10/tcp", "10.96.0.10:0/tcp", "10.96.0.10:80/sctp", "x:80/tcp", "0.0.0.0:80/tcp"] {
            assert!(bad.parse::<ServiceKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn services_merge_and_backends_follow_the_live_bindings() {
        // Host i's record binds 198.19.i.10 (see the fixtures).
        let b = |i: u8| Ipv4Addr::new(198, 19, i, 10);
        let mut r1 = host_record(1, 1);
        r1.services = vec![ServiceSpec { key: key(), backends: vec![b(2), b(1)] }];
        let r2 = host_record(2, 1);
        let local = [ServiceSpec { key: key(), backends: vec![b(0), b(1), b(9)] }];
        let me = host_record(0, 1);
        let v = resolve(&local, &[&me, &r1, &r2], |_| false);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].backends, [b(0), b(1), b(2), b(9)], "union, sorted");
        assert_eq!(v[0].live, [b(0), b(1), b(2)], "b(9) is bound nowhere");
        // Host 2 dies: its record is no longer among the live ones.
        let after = resolve(&local, &[&me, &r1], |_| false);
        assert_eq!(after[0].live, [b(0), b(1)]);
        assert_eq!(withdrawn(&v, &after), [(key(), b(2))]);
        // Host 1's definition is kept while host 1 lives; bound here counts too.
        let here = resolve(&local, &[&me, &r1], |ip| ip == b(9));
        assert_eq!(here[0].live, [b(0), b(1), b(9)]);
        assert!(withdrawn(&after, &here).is_empty());
    }
}
