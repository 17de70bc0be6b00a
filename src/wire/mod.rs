//! Zero-copy packet views (smoltcp style): `Packet<T: AsRef<[u8]>>` with `new_checked`, plus a
//! `Repr` with `parse` / `emit` / `buffer_len`. Nothing here imports anything above `wire`.

pub mod esp;

/// Local stub until the Ethernet view lands (dropped at merge).
pub mod ethernet {
    /// A 48-bit MAC address.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct EthernetAddress(pub [u8; 6]);
}
