//! Interface addresses: IPv4, and IPv6 as the CNI plugin gives them to containers.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv6Net};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::AddressFamily;

use super::{Netlink, NetlinkError, Result};

/// The IPv4 address and prefix of an address message (IFA_LOCAL, else IFA_ADDRESS).
fn ipv4_of(msg: &AddressMessage) -> Option<Ipv4Net> {
    if msg.header.family != AddressFamily::Inet {
        return None;
    }
    let pick = |want_local: bool| {
        msg.attributes.iter().find_map(|a| match (a, want_local) {
            (AddressAttribute::Local(IpAddr::V4(ip)), true) => Some(*ip),
            (AddressAttribute::Address(IpAddr::V4(ip)), false) => Some(*ip),
            _ => None,
        })
    };
    let ip: Ipv4Addr = pick(true).or_else(|| pick(false))?;
    Ipv4Net::new(ip, msg.header.prefix_len).ok()
}

impl Netlink {
    /// Adds an IPv4 address with its prefix length.
    // = ip addr add ADDR/LEN dev DEV
    pub fn add_address(&self, index: u32, addr: Ipv4Net) -> Result<()> {
        let req = self.handle.address().add(index, IpAddr::V4(addr.addr()), addr.prefix_len());
        self.run(req.execute()).map_err(|e| NetlinkError::request(format!("addr add {addr} dev {index}"), e))
    }

    /// Adds an IPv6 address without duplicate address detection (`nodad`): usable at once,
    /// never left tentative. For addresses handed out by an allocator that gives each one once.
    // = ip -6 addr add ADDR/LEN dev DEV nodad
    pub fn add_address6_nodad(&self, index: u32, addr: Ipv6Net) -> Result<()> {
        let mut req = self.handle.address().add(index, IpAddr::V6(addr.addr()), addr.prefix_len());
        let msg = req.message_mut();
        msg.header.flags |= AddressHeaderFlags::Nodad;
        msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        self.run(req.execute()).map_err(|e| NetlinkError::request(format!("addr add {addr} dev {index} nodad"), e))
    }

    /// Every address of the link, IPv4 and IPv6 (link-local included).
    // = ip addr show dev DEV
    pub fn addresses_all(&self, index: u32) -> Result<Vec<IpNet>> {
        Ok(self
            .address_messages(index)?
            .iter()
            .filter_map(|m| match m.header.family {
                AddressFamily::Inet => ipv4_of(m).map(IpNet::V4),
                AddressFamily::Inet6 => m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V6(ip)) => Ipv6Net::new(*ip, m.header.prefix_len).ok().map(IpNet::V6),
                    _ => None,
                }),
                _ => None,
            })
            .collect())
    }

    /// Removes the IPv6 address `addr` from the link; `Ok(false)` when it was not there.
    // = ip -6 addr del ADDR/LEN dev DEV
    pub fn delete_address6(&self, index: u32, addr: Ipv6Net) -> Result<bool> {
        for msg in self.address_messages(index)? {
            let is = msg.header.family == AddressFamily::Inet6
                && msg.header.prefix_len == addr.prefix_len()
                && msg.attributes.iter().any(|a| matches!(a, AddressAttribute::Address(IpAddr::V6(ip)) if *ip == addr.addr()));
            if is {
                self.run(self.handle.address().del(msg).execute())
                    .map_err(|e| NetlinkError::request(format!("addr del {addr} dev {index}"), e))?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn address_messages(&self, index: u32) -> Result<Vec<AddressMessage>> {
        let req = self.handle.address().get().set_link_index_filter(index).execute();
        self.run(req.try_collect::<Vec<_>>()).map_err(|e| NetlinkError::request(format!("addr show dev {index}"), e))
    }

    /// The IPv4 addresses of the link.
    // = ip -4 addr show dev DEV
    pub fn addresses(&self, index: u32) -> Result<Vec<Ipv4Net>> {
        Ok(self.address_messages(index)?.iter().filter_map(ipv4_of).collect())
    }

    /// Index of the link that holds the IPv4 address `ip`, if any.
    // = ip -4 addr show to IP
    pub fn address_owner(&self, ip: IpAddr) -> Result<Option<u32>> {
        let req = self.handle.address().get().execute();
        let all = self.run(req.try_collect::<Vec<_>>()).map_err(|e| NetlinkError::request(format!("addr show to {ip}"), e))?;
        let holds = |m: &AddressMessage| match ip {
            IpAddr::V4(ip) => ipv4_of(m).is_some_and(|n| n.addr() == ip),
            // IPv6 addresses carry IFA_ADDRESS only (IFA_LOCAL is for point-to-point IPv4).
            IpAddr::V6(_) => {
                m.attributes.iter().any(|a| matches!(a, AddressAttribute::Address(a) | AddressAttribute::Local(a) if *a == ip))
            }
        };
        Ok(all.iter().find(|m| holds(m)).map(|m| m.header.index))
    }

    /// Removes the IPv4 address `addr` from the link; `Ok(false)` when it was not there.
    // = ip addr del ADDR/LEN dev DEV
    pub fn delete_address(&self, index: u32, addr: Ipv4Net) -> Result<bool> {
        for msg in self.address_messages(index)? {
            if ipv4_of(&msg) == Some(addr) {
                self.run(self.handle.address().del(msg).execute())
                    .map_err(|e| NetlinkError::request(format!("addr del {addr} dev {index}"), e))?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes every IPv4 address from the link.
    // = ip -4 addr flush dev DEV
    pub fn flush_addresses(&self, index: u32) -> Result<()> {
        for msg in self.address_messages(index)? {
            let Some(net) = ipv4_of(&msg) else { continue };
            self.run(self.handle.address().del(msg).execute())
                .map_err(|e| NetlinkError::request(format!("addr del {net} dev {index}"), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_local_over_peer_address() {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = 24;
        msg.attributes.push(AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9))));
        msg.attributes.push(AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
        assert_eq!(ipv4_of(&msg), Some("192.0.2.1/24".parse().unwrap()));
    }

    #[test]
    fn ignores_ipv6() {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.attributes.push(AddressAttribute::Address("2001:db8::1".parse().unwrap()));
        assert_eq!(ipv4_of(&msg), None);
    }
}
