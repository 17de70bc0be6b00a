//! Counters of the switch core: traffic per direction and one counter per drop reason, so that
//! every packet the switch does not forward is accounted for. Declared with the crate's
//! [`counters!`](crate::counters) macros, so every counter here reaches `stats` and `/metrics`.

use crate::counters::{counters, reasons};

reasons! {
    /// Why a packet was not forwarded.
    pub enum DropReason;
    /// One counter per [`DropReason`].
    pub struct DropCounts;
    /// A TAP frame shorter than an Ethernet header.
    TapMalformed => "tap_malformed",
    /// A TAP frame of a VXLAN network that would not fit the underlay MTU after encapsulation.
    TapOversizeVxlan => "tap_oversize_vxlan",
    /// A TAP frame of an ESP network that would not fit the underlay MTU once sealed.
    TapOversizeEsp => "tap_oversize_esp",
    /// A TAP frame with a multicast source MAC.
    TapBadSourceMac => "tap_bad_source_mac",
    /// A TAP frame for a MAC that lives behind the same TAP.
    TapLocalDestination => "tap_local_destination",
    /// A TAP frame on a network that has no peers to send it to.
    NoPeers => "no_peers",
    /// A frame to be flooded (broadcast, multicast, unknown unicast) above its source's rate.
    FloodRateLimited => "flood_rate_limited",
    /// An underlay datagram too short for a VXLAN header.
    VxlanTruncated => "vxlan_truncated",
    /// An underlay datagram without the VXLAN I flag.
    VxlanBadFlags => "vxlan_bad_flags",
    /// A VXLAN datagram for a VNI this host does not run.
    UnknownVni => "unknown_vni",
    /// A datagram from an address that is not a peer of the network.
    UnknownPeer => "unknown_peer",
    /// A VXLAN datagram whose inner frame is not a valid Ethernet frame.
    InnerMalformed => "inner_malformed",
    /// A VXLAN datagram whose inner source MAC is multicast.
    InnerBadSourceMac => "inner_bad_source_mac",
    /// ARP contradicting a known IP -> MAC binding (spoofing defence).
    ArpSpoofed => "arp_spoofed",
    /// A frame from a peer whose inner source MAC (or IPv4 source) the control plane places
    /// behind another host (spoofing defence).
    InnerSourceSpoofed => "inner_source_spoofed",
    /// Routed mode: a packet from a peer whose IPv4 source lies in a subnet owned by another host
    /// or by this one (spoofing defence).
    RoutedSourceSpoofed => "routed_source_spoofed",
    /// An ARP request for an IP without a binding, on a network whose policy is to drop those.
    ArpUnknownDropped => "arp_unknown_dropped",
    /// A Neighbor Solicitation or Advertisement claiming an IPv6 address bound to another MAC
    /// (spoofing defence).
    NdSpoofed => "nd_spoofed",
    /// A Neighbor Solicitation for an IPv6 address without a binding, on a network whose policy
    /// is to drop those (`unknown_arp = "drop"`).
    NdUnknownDropped => "nd_unknown_dropped",
    /// Routed mode: a frame from a container that is not addressed to the gateway MAC.
    RoutedNotForGateway => "routed_not_for_gateway",
    /// Routed mode: an IPv4 packet with a bad header.
    RoutedMalformed => "routed_malformed",
    /// Routed mode: a packet for the gateway address that the gateway does not answer.
    RoutedForGateway => "routed_for_gateway",
    /// Routed mode: a routed frame from a peer for an address outside this host's subnet.
    RoutedMisdelivered => "routed_misdelivered",
    /// Routed mode, IPv6: a packet with a link-local or multicast destination, or a link-local,
    /// unspecified or multicast source, for the gateway MAC (such packets are never routed).
    Routed6Scope => "routed6_scope",
    /// Routed mode: TTL (IPv6: hop limit) expired (an ICMP time exceeded was sent).
    TtlExpired => "ttl_expired",
    /// Routed mode: no route to the destination (an ICMP net unreachable was sent).
    NoRoute => "no_route",
    /// Routed mode: too many packets waiting for ARP resolution.
    NeighbourQueueFull => "neighbour_queue_full",
    /// Routed mode: packets that waited for ARP resolution in vain.
    NeighbourUnresolved => "neighbour_unresolved",
    /// Cleartext VXLAN for a network configured as encrypted (fail closed).
    CleartextOnEncrypted => "cleartext_on_encrypted",
    /// ESP for or from a peer without keys (not yet known, or not a configured peer).
    EspNoSession => "esp_no_session",
    /// ESP rejected by the ESP layer (replay, window, ICV, padding, SPI: see `esp_drops`).
    EspRejected => "esp_rejected",
    /// A UDP/4500 datagram too short for ESP.
    EspMalformed => "esp_malformed",
    /// A UDP/4500 datagram with the non-ESP marker (IKE): vxswitch does not speak IKE.
    EspIke => "esp_ike",
    /// ESP arriving while no network is encrypted.
    EspNotConfigured => "esp_not_configured",
    /// Decrypted ESP whose next header does not fit the network (e.g. Ethernet on a routed network, IP on a switched one).
    EspInnerUnsupported => "esp_inner_unsupported",
    /// Sealing failed (buffer too small, key derivation failed).
    EspSealFailed => "esp_seal_failed",
    /// A manual SA used its last sequence number: new keys must be configured (never wraps).
    EspSeqExhausted => "esp_seq_exhausted",
    /// The next sequence number of a manual SA was not yet persisted (state file slow or failing).
    EspSeqUnreserved => "esp_seq_unreserved",
}

counters! {
    /// Traffic and drop counters of the switch core: the `counters` section of `vxswitch stats`
    /// (a `drops` map keyed by [`DropReason::label`]) and the unprefixed `vxswitch_*` metrics.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Counters {
        /// Frames read from TAPs.
        pub tap_rx_frames: u64 = counter,
        /// Bytes read from TAPs.
        pub tap_rx_bytes: u64 = counter,
        /// Frames handed to TAPs.
        pub tap_tx_frames: u64 = counter,
        /// Datagrams received from the underlay.
        pub underlay_rx_packets: u64 = counter,
        /// Bytes received from the underlay (UDP payload).
        pub underlay_rx_bytes: u64 = counter,
        /// Datagrams sent to the underlay (one per destination).
        pub underlay_tx_packets: u64 = counter,
        /// Frames flooded by head-end replication.
        pub flooded_frames: u64 = counter,
        /// Copies sent by head-end replication.
        pub flood_copies: u64 = counter,
        /// Idle per-source flood buckets forgotten because the table of sources was full.
        pub flood_sources_evicted: u64 = counter,
        /// Frames to be flooded from sources that found the table of sources full (they share one
        /// bucket per port).
        pub flood_overflow_frames: u64 = counter,
        /// VXLAN datagrams accepted with reserved bits set (RFC 7348: ignored on receipt).
        pub vxlan_reserved_bits: u64 = counter,
        /// ARP requests answered locally (proxy ARP and the routed gateway).
        pub arp_replies: u64 = counter,
        /// ARP kept on the host in routed mode (between local containers).
        pub arp_kept_local: u64 = counter,
        /// ARP requests sent by the routed gateway to resolve local containers.
        pub arp_requests_sent: u64 = counter,
        /// Neighbor Solicitations answered locally by the ND proxy.
        pub nd_replies: u64 = counter,
        /// DAD probes for an address bound to another MAC, answered with an advertisement to
        /// all-nodes so that the prober does not use the address.
        pub nd_dad_defended: u64 = counter,
        /// DAD probes of an address's own owner (bound to the prober's MAC): sent nowhere.
        pub nd_dad_own: u64 = counter,
        /// Neighbor Solicitations from a local TAP for a container behind the same TAP (the
        /// bridge already delivered them; they never cross the overlay).
        pub nd_local_target: u64 = counter,
        /// Packets routed (TTL decremented) in routed mode.
        pub routed_packets: u64 = counter,
        /// ICMP echo requests to the gateway address answered (IPv4 and IPv6).
        pub gateway_echo_replies: u64 = counter,
        /// Neighbor Solicitations for the routed gateway's IPv6 addresses answered.
        pub gateway_nd_replies: u64 = counter,
        /// Neighbor Solicitations and Advertisements kept on the host in routed mode (between
        /// local containers, or answers to the gateway).
        pub nd_kept_local: u64 = counter,
        /// Neighbor Solicitations sent by the routed gateway to resolve local containers.
        pub nd_solicits_sent: u64 = counter,
        /// ICMPv6 errors (time exceeded, destination unreachable) sent by the routed gateway.
        pub icmp6_errors_sent: u64 = counter,
        /// ICMPv6 errors not sent: rate limited, or in answer to an ICMPv6 error.
        pub icmp6_errors_suppressed: u64 = counter,
        /// ESP-in-UDP NAT keepalives received (RFC 3948).
        pub esp_keepalives: u64 = counter,
        /// Snooped local container bindings forgotten because their MAC left the local TAP.
        pub local_bindings_expired: u64 = counter,
        /// ARP requests from a local TAP for a container announced on this host (the bridge
        /// already delivered them; they never cross the overlay).
        pub arp_local_target: u64 = counter,
        /// Container bindings announced by the CNI plugin (`cni add`).
        pub cni_bindings_added: u64 = counter,
        /// Container bindings withdrawn by the CNI plugin (`cni del`).
        pub cni_bindings_removed: u64 = counter,
        /// ICMP "fragmentation needed" sent on a TAP for an IPv4 frame too big for its tunnel.
        pub pmtu_icmp_sent: u64 = counter,
        /// ICMPv6 "packet too big" sent on a TAP for an IPv6 frame too big for its tunnel.
        pub pmtu_icmp6_sent: u64 = counter,
        /// Too-big answers not sent because the network's ICMP budget (100 per second) was spent.
        pub pmtu_icmp_rate_limited: u64 = counter,
        /// Too-big frames not answered by rule: ICMP errors, non-first fragments, broadcast or
        /// multicast addresses, non-IP, a routed sender with no known MAC.
        pub pmtu_icmp_suppressed: u64 = counter,
        /// Too-big IPv4 frames without DF (dropped, never answered: RFC 1191).
        pub pmtu_no_df: u64 = counter,
        /// TCP SYNs whose MSS option was lowered (`mss_clamp`).
        pub mss_clamped: u64 = counter,
        /// Peers whose underlay path MTU went down (reported by the kernel).
        pub peer_mtu_lowered: u64 = counter,
        /// Peers whose underlay path MTU went back up (reported by the kernel).
        pub peer_mtu_raised: u64 = counter,
        /// Learned peer path MTUs forgotten after 10 minutes.
        pub peer_mtu_expired: u64 = counter,
        /// Path MTU reports ignored because the per-peer table was full.
        pub peer_mtu_table_full: u64 = counter,
        /// Packets dropped, by reason.
        drops: DropCounts = nested,
    }
}

impl Counters {
    /// Count one dropped packet.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.drops.add(reason);
    }

    /// Drops for one reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason)
    }

    /// Drops for all reasons together.
    pub fn total_drops(&self) -> u64 {
        self.drops.total()
    }

    /// Drops by reason label, for display.
    pub fn drops_by_label(&self) -> std::collections::BTreeMap<&'static str, u64> {
        DropReason::ALL.iter().map(|r| (r.label(), self.drops(*r))).collect()
    }
}
