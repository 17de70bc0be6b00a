//! Tunnels: how a network's frames cross the underlay, as a type rather than a flag.
//!
//! Each overlay network is carried by exactly one tunnel kind, fixed by its configuration:
//! cleartext VXLAN (RFC 7348, to the VXLAN port) or ESP in UDP (RFC 3948, to the ESP port, with
//! per-peer sessions). The kind travels with every underlay decision ([`super::Forward::Underlay`],
//! [`super::Transmit::Underlay`], the driver's pending sends) and with every received datagram
//! ([`super::Switch::handle_datagram`]), so drivers choose sockets and the switch chooses
//! encapsulation by matching on it: adding a kind (Geneve, ESP without UDP) is a compile error
//! at each site that must learn it, instead of a boolean silently taking the wrong branch.
//!
//! The underlay address is kept next to the kind, not inside it, and is IPv4 today (`dests`,
//! `dst`, `from`). An IPv6 underlay changes that address to an `IpAddr` (or pairs kind and
//! address in an endpoint struct); the kinds themselves do not depend on the address family,
//! since both VXLAN and ESP-in-UDP run over IPv4 and IPv6 alike.

/// How a datagram crosses the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tunnel {
    /// Cleartext VXLAN over UDP (RFC 7348), to the VXLAN port.
    #[default]
    Vxlan,
    /// ESP in UDP (RFC 3948) with per-peer sessions, to the ESP port.
    Esp,
}

impl Tunnel {
    /// A short lowercase name, for logs and status.
    pub const fn name(self) -> &'static str {
        match self {
            Tunnel::Vxlan => "vxlan",
            Tunnel::Esp => "esp",
        }
    }

    /// True for a tunnel that encrypts (ESP).
    pub const fn is_encrypted(self) -> bool {
        matches!(self, Tunnel::Esp)
    }
}

impl core::fmt::Display for Tunnel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_default() {
        assert_eq!(Tunnel::default(), Tunnel::Vxlan);
        assert_eq!((Tunnel::Vxlan.to_string(), Tunnel::Esp.to_string()), ("vxlan".into(), "esp".into()));
        assert!(Tunnel::Esp.is_encrypted() && !Tunnel::Vxlan.is_encrypted());
    }
}
