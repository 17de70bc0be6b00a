//! Zero-copy packet views (smoltcp style): `Packet<T: AsRef<[u8]>>` with `new_checked`, plus a
//! `Repr` with `parse` / `emit` / `buffer_len`. Nothing here imports anything above `wire`.

/// Temporary stand-in until the wire layer lands (dropped at merge).
pub mod ethernet {
    /// A MAC address.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct EthernetAddress(pub [u8; 6]);
}
