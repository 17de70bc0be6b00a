//! The TAP MTU of a network, computed from the bytes its tunnel really adds.
//!
//! Why one function: the TAP MTU is what containers on the bridge use, so it decides whether
//! their TCP segments fit the underlay once encapsulated. If it is even one byte too large, the
//! kernel refuses the outer datagram (`EMSGSIZE`, the sockets set don't-fragment) and full-size
//! TCP segments vanish while pings still work. Every default and every check of an explicit
//! `mtu` therefore goes through [`plan`], and the unit tests below seal real frames with the real
//! code path to prove that the largest payload fits and one byte more does not.
//!
//! What each tunnel costs on an IPv4 underlay (every tunnel pays outer IPv4 20 + UDP 8; on an
//! IPv6 underlay the outer header is IPv6 40, so every MTU below is 20 bytes smaller: VXLAN over
//! IPv6 costs 70 bytes, as Linux's vxlan computes it; the kernel builds the outer header, so
//! only its size matters here):
//! - **VXLAN** (RFC 7348): VXLAN header 8 + the inner Ethernet header 14, overlay and routed alike
//!   (VXLAN always carries the whole frame): MTU = underlay − 50.
//! - **ESP in UDP** (RFC 4303, RFC 3948): SPI + sequence 8, the suite's explicit IV (8 for
//!   AES-GCM, RFC 4106, and ChaCha20-Poly1305, RFC 7634), the payload, padding, pad length +
//!   next header 2, the suite's ICV (16). The payload is the inner Ethernet frame on an overlay
//!   network (next header 143) and the bare IPv4 packet on a routed one (next header 4). Padding
//!   rounds payload + 2 up to the suite's alignment (4 bytes for all three suites, whose cipher
//!   block size for ESP is 1). Because padding only grows with the payload, the MTU is the largest
//!   payload whose padded size fits; every shorter packet fits too. At that size no padding is
//!   needed; the bytes the alignment leaves unused show up as `align_slack`.
//! - **none** (host-subnet mode): nothing is added.
//!
//! The plan's MTU is the *overlay* MTU: what crosses in one piece, what containers should use,
//! and what the switch announces in ICMP "too big" answers ([`super::pmtu`]). The TAP device
//! itself gets a larger MTU (`tap_mtu`, by default the larger of 1500 and the underlay MTU): a
//! Linux bridge drops frames above its port's MTU without telling anyone, so only a TAP at least
//! as large as the containers' MTU lets their full-size frames reach the switch to be answered.

use serde::Serialize;

use crate::ipsec::Suite;

/// Outer IPv4 header without options.
pub const OUTER_IPV4: u32 = 20;
/// Outer IPv6 header (no extension headers).
pub const OUTER_IPV6: u32 = 40;
/// Outer UDP header.
pub const UDP: u32 = 8;

/// The family of the underlay, which decides the size of the outer IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OuterIp {
    /// IPv4 (20-byte header).
    #[default]
    V4,
    /// IPv6 (40-byte header).
    V6,
}

impl OuterIp {
    /// The family of an underlay address.
    pub const fn of(addr: std::net::IpAddr) -> Self {
        match addr {
            std::net::IpAddr::V4(_) => OuterIp::V4,
            std::net::IpAddr::V6(_) => OuterIp::V6,
        }
    }

    /// Bytes of the outer IP header.
    pub const fn header_len(self) -> u32 {
        match self {
            OuterIp::V4 => OUTER_IPV4,
            OuterIp::V6 => OUTER_IPV6,
        }
    }
}
/// VXLAN header.
pub const VXLAN: u32 = 8;
/// Ethernet header of the frame on the TAP (no VLAN tag).
pub const ETHERNET: u32 = 14;
/// ESP header: SPI 4 + sequence number 4.
pub const ESP_HEADER: u32 = 8;
/// ESP trailer: pad length 1 + next header 1.
pub const ESP_TRAILER: u32 = 2;

/// What an ESP packet carries of a TAP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// The whole Ethernet frame (overlay networks, next header 143).
    Ethernet,
    /// The IPv4 packet without its Ethernet header (routed networks, next header 4).
    Ipv4,
}

/// How a network's frames cross the underlay, as far as their size is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// No encapsulation (host-subnet mode).
    None,
    /// Cleartext VXLAN: the whole Ethernet frame, overlay or routed.
    Vxlan,
    /// ESP in UDP with `suite`, carrying `payload`.
    Esp {
        /// The AEAD suite (decides IV, ICV and alignment).
        suite: Suite,
        /// What of the TAP frame is encrypted.
        payload: Payload,
    },
}

/// Per-suite sizes of an ESP packet (RFC 4106 section 3 and 6, RFC 7634 section 2 and 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteSizes {
    /// Explicit IV in front of the ciphertext.
    pub iv: u32,
    /// Integrity check value behind it.
    pub icv: u32,
    /// Payload + padding + trailer is a multiple of this.
    pub align: u32,
}

/// The sizes `suite` adds to each packet.
pub const fn suite_sizes(suite: Suite) -> SuiteSizes {
    match suite {
        // GCM is a counter mode: block size 1, so ESP's 4-byte alignment applies (RFC 4106 3.2).
        Suite::Aes128Gcm | Suite::Aes256Gcm => SuiteSizes { iv: 8, icv: 16, align: 4 },
        // ChaCha20 is a stream cipher: no padding beyond 4-byte alignment (RFC 7634 3).
        Suite::ChaCha20Poly1305 => SuiteSizes { iv: 8, icv: 16, align: 4 },
    }
}

/// A suite's name as the configuration spells it.
pub const fn suite_name(suite: Suite) -> &'static str {
    match suite {
        Suite::Aes128Gcm => "aes-128-gcm",
        Suite::Aes256Gcm => "aes-256-gcm",
        Suite::ChaCha20Poly1305 => "chacha20-poly1305",
    }
}

/// A network's TAP MTU and where the underlay MTU's bytes go: every field but `underlay`, `tunnel`,
/// `suite`, `payload` and `max_frame_len` adds up to `underlay` exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MtuPlan {
    /// The underlay MTU the plan is for.
    pub underlay: u32,
    /// `vxlan`, `esp` or `none`.
    pub tunnel: &'static str,
    /// The ESP suite, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suite: Option<&'static str>,
    /// What crosses the tunnel: `ethernet` (whole frame) or `ipv4` (routed ESP).
    pub payload: &'static str,
    /// Outer IPv4 header (0 on an IPv6 underlay).
    pub outer_ipv4: u32,
    /// Outer IPv6 header (0 on an IPv4 underlay).
    pub outer_ipv6: u32,
    /// Outer UDP header.
    pub udp: u32,
    /// VXLAN header.
    pub vxlan: u32,
    /// ESP header (SPI + sequence number).
    pub esp_header: u32,
    /// ESP explicit IV.
    pub iv: u32,
    /// Inner Ethernet header carried through the tunnel.
    pub inner_ethernet: u32,
    /// ESP trailer (pad length + next header).
    pub esp_trailer: u32,
    /// ESP integrity check value.
    pub icv: u32,
    /// Bytes left unused because the ESP ciphertext must be a multiple of the suite's alignment.
    pub align_slack: u32,
    /// The largest TAP MTU (IP packet) that fits.
    pub mtu: u32,
    /// The largest TAP frame (Ethernet header included) that fits: the switch's oversize limit.
    pub max_frame_len: u32,
}

impl MtuPlan {
    /// Bytes between the TAP MTU and the underlay MTU.
    pub const fn overhead(&self) -> u32 {
        self.underlay - self.mtu
    }

    /// One line for `vxswitch check`: `mtu 1424 = 1500 - 20 ipv4 - 8 udp - ...`.
    pub fn describe(&self) -> String {
        let mut s = format!("mtu {} = underlay {}", self.mtu, self.underlay);
        let parts = [
            (self.outer_ipv4, "ipv4"),
            (self.outer_ipv6, "ipv6"),
            (self.udp, "udp"),
            (self.vxlan, "vxlan"),
            (self.esp_header, "esp"),
            (self.iv, "iv"),
            (self.inner_ethernet, "inner ethernet"),
            (self.esp_trailer, "esp trailer"),
            (self.icv, "icv"),
            (self.align_slack, "alignment"),
        ];
        for (bytes, what) in parts.iter().filter(|(b, _)| *b > 0) {
            s += &format!(" - {bytes} {what}");
        }
        s + &format!(" ({}{})", self.tunnel, self.suite.map(|s| format!(" {s}")).unwrap_or_default())
    }
}

/// The TAP MTU of a network carried by `encap` over an IPv4 underlay of `underlay_mtu` bytes.
pub fn plan(underlay_mtu: u32, encap: Encap) -> MtuPlan {
    plan_over(OuterIp::V4, underlay_mtu, encap)
}

/// The TAP MTU of a network carried by `encap` over an `outer` underlay of `underlay_mtu` bytes.
///
/// An underlay too small for the headers gives MTU 0 (the configuration's ranges rule that out).
pub fn plan_over(outer: OuterIp, underlay_mtu: u32, encap: Encap) -> MtuPlan {
    let ip = outer.header_len();
    let mut p = MtuPlan {
        underlay: underlay_mtu,
        tunnel: "none",
        suite: None,
        payload: "ethernet",
        outer_ipv4: 0,
        outer_ipv6: 0,
        udp: 0,
        vxlan: 0,
        esp_header: 0,
        iv: 0,
        inner_ethernet: 0,
        esp_trailer: 0,
        icv: 0,
        align_slack: 0,
        mtu: 0,
        max_frame_len: 0,
    };
    match encap {
        Encap::None => p.mtu = underlay_mtu,
        Encap::Vxlan => {
            (p.tunnel, p.udp, p.vxlan, p.inner_ethernet) = ("vxlan", UDP, VXLAN, ETHERNET);
            p.mtu = underlay_mtu.saturating_sub(ip + UDP + VXLAN + ETHERNET);
        }
        Encap::Esp { suite, payload } => {
            let sizes = suite_sizes(suite);
            (p.tunnel, p.suite, p.udp, p.esp_header) = ("esp", Some(suite_name(suite)), UDP, ESP_HEADER);
            (p.iv, p.icv, p.esp_trailer) = (sizes.iv, sizes.icv, ESP_TRAILER);
            // The ciphertext (payload + padding + trailer) is a multiple of `align`.
            let room = underlay_mtu.saturating_sub(ip + UDP + ESP_HEADER + sizes.iv + sizes.icv);
            let ciphertext = room / sizes.align * sizes.align;
            p.align_slack = room - ciphertext;
            let inner = ciphertext.saturating_sub(ESP_TRAILER);
            p.inner_ethernet = match payload {
                Payload::Ethernet => ETHERNET,
                Payload::Ipv4 => 0,
            };
            p.payload = if payload == Payload::Ipv4 { "ipv4" } else { "ethernet" };
            p.mtu = inner.saturating_sub(p.inner_ethernet);
        }
    }
    if encap != Encap::None {
        match outer {
            OuterIp::V4 => p.outer_ipv4 = OUTER_IPV4,
            OuterIp::V6 => p.outer_ipv6 = OUTER_IPV6,
        }
    }
    p.max_frame_len = p.mtu + ETHERNET;
    p
}

#[cfg(test)]
mod tests;
