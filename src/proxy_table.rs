//! The binding table behind the proxy responders: (VNI, address) -> MAC, one per address family.
//! [`crate::arp::ProxyArp`] (IPv4) and [`crate::nd::ProxyNd`] (IPv6) are this table plus the
//! judgement of their own protocol.

use std::collections::HashMap;
use std::hash::Hash;

use crate::wire::ethernet::EthernetAddress;
use crate::wire::vxlan::Vni;

/// Address -> MAC bindings per VNI.
#[derive(Debug)]
pub struct Bindings<A> {
    bindings: HashMap<(Vni, A), EthernetAddress>,
}

impl<A> Default for Bindings<A> {
    fn default() -> Self {
        Bindings { bindings: HashMap::new() }
    }
}

impl<A: Copy + Eq + Hash> Bindings<A> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bind `ip` to `mac` on `vni`.
    pub fn bind(&mut self, vni: Vni, ip: A, mac: EthernetAddress) {
        self.bindings.insert((vni, ip), mac);
    }

    /// Forget the binding of `ip` on `vni`.
    pub fn unbind(&mut self, vni: Vni, ip: A) {
        self.bindings.remove(&(vni, ip));
    }

    /// The MAC bound to `ip` on `vni`.
    pub fn lookup(&self, vni: Vni, ip: A) -> Option<EthernetAddress> {
        self.bindings.get(&(vni, ip)).copied()
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
