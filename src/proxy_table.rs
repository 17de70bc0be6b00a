//! The binding table behind the proxy responders: (VNI, address) -> MAC, one per address family.
//! [`crate::arp::ProxyArp`] (IPv4) and [`crate::nd::ProxyNd`] (IPv6) are this table plus the
//! judgement of their own protocol.
//!
//! A reverse index (VNI, MAC) -> addresses answers "which addresses does this MAC hold", which the
//! switch asks when a MAC the control plane places behind another host shows up on a local TAP
//! (the container moved here; see `dataplane/switch/mobility.rs`).

use std::collections::HashMap;
use std::hash::Hash;

use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// Address -> MAC bindings per VNI.
#[derive(Debug)]
pub struct Bindings<A> {
    bindings: HashMap<(Vni, A), EthernetAddress>,
    /// The addresses bound to each MAC (the reverse of `bindings`).
    by_mac: HashMap<(Vni, EthernetAddress), Vec<A>>,
}

impl<A> Default for Bindings<A> {
    fn default() -> Self {
        Bindings { bindings: HashMap::new(), by_mac: HashMap::new() }
    }
}

impl<A: Copy + Eq + Hash> Bindings<A> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bind `ip` to `mac` on `vni`.
    pub fn bind(&mut self, vni: Vni, ip: A, mac: EthernetAddress) {
        match self.bindings.insert((vni, ip), mac) {
            Some(old) if old == mac => return,
            Some(old) => self.unindex(vni, ip, old),
            None => {}
        }
        self.by_mac.entry((vni, mac)).or_default().push(ip);
    }

    /// Forget the binding of `ip` on `vni`.
    pub fn unbind(&mut self, vni: Vni, ip: A) {
        if let Some(old) = self.bindings.remove(&(vni, ip)) {
            self.unindex(vni, ip, old);
        }
    }

    fn unindex(&mut self, vni: Vni, ip: A, mac: EthernetAddress) {
        if let Some(ips) = self.by_mac.get_mut(&(vni, mac)) {
            ips.retain(|&i| i != ip);
            if ips.is_empty() {
                self.by_mac.remove(&(vni, mac));
            }
        }
    }

    /// The MAC bound to `ip` on `vni`.
    pub fn lookup(&self, vni: Vni, ip: A) -> Option<EthernetAddress> {
        self.bindings.get(&(vni, ip)).copied()
    }

    /// The addresses bound to `mac` on `vni`.
    pub fn addresses_of(&self, vni: Vni, mac: EthernetAddress) -> &[A] {
        self.by_mac.get(&(vni, mac)).map_or(&[], Vec::as_slice)
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether there are no bindings.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_index_follows_rebinding_and_unbinding() {
        let vni = Vni::new_const(7);
        let (m1, m2) = (EthernetAddress([2, 0, 0, 0, 0, 1]), EthernetAddress([2, 0, 0, 0, 0, 2]));
        let mut t: Bindings<u8> = Bindings::new();
        t.bind(vni, 10, m1);
        t.bind(vni, 11, m1);
        t.bind(vni, 10, m1);
        assert_eq!(t.addresses_of(vni, m1), [10, 11], "binding twice indexes once");
        t.bind(vni, 10, m2);
        assert_eq!((t.addresses_of(vni, m1), t.addresses_of(vni, m2)), (&[11][..], &[10][..]));
        t.unbind(vni, 11);
        t.unbind(vni, 11);
        assert!(t.addresses_of(vni, m1).is_empty());
        assert!(t.addresses_of(Vni::new_const(8), m2).is_empty(), "per VNI");
        assert_eq!(t.len(), 1);
    }
}
