//! Zero-copy packet views (smoltcp style): `Packet<T: AsRef<[u8]>>` with `new_checked`, plus a
//! `Repr` with `parse` / `emit` / `buffer_len`. Nothing here imports anything above `wire`.

// Local stub until the wire module lands (dropped at merge).
#[allow(missing_docs)]
pub mod ethernet {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct EthernetAddress(pub [u8; 6]);
}
