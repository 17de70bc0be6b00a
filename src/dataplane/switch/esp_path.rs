//! The ESP paths of the switch: sealing toward peers, opening what they send, hellos.
//!
//! Every encrypted network seals with its own SAs (chosen by the port's VNI); on receive the SPI
//! picks the SA and with it the network ([`EspTunnels::open`] returns its VNI), so a packet is
//! delivered only to the network whose keys opened it, never to "the" encrypted network.

use std::net::IpAddr;
use std::ops::Range;
use std::time::Instant;

use super::{Forward, PortId, Switch, Transmit};
use crate::dataplane::counters::DropReason;
use crate::dataplane::esp::{EspTunnels, TunnelError};
use crate::dataplane::tunnel::Tunnel;
use crate::ipsec::{EspError, ESP_HEADROOM, ESP_TAILROOM, NEXT_HEADER_ETHERNET, NEXT_HEADER_IPV4, NEXT_HEADER_IPV6};
use crate::wire::esp::{classify_udp_4500, Udp4500Payload};
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::vxlan::Vni;

impl Switch {
    /// Send `buf[inner]` in ESP to `target`, or to every peer when `None` (flooding).
    ///
    /// Unicast is sealed in place (the headroom takes the ESP header, the tailroom the trailer);
    /// each flood copy is sealed separately, since every peer has its own SA.
    // hot path
    pub(super) fn esp_out(
        &mut self,
        now: Instant,
        port: PortId,
        buf: &mut [u8],
        inner: Range<usize>,
        target: Option<IpAddr>,
        next_header: u8,
    ) -> Forward<'_> {
        let vni = self.networks[port].vni;
        let Some(esp) = self.esp.as_mut() else {
            self.counters.drop(DropReason::EspNoSession);
            return Forward::Nothing;
        };
        match target {
            Some(peer) if inner.start >= ESP_HEADROOM && inner.end + ESP_TAILROOM <= buf.len() => {
                let start = inner.start - ESP_HEADROOM;
                match esp.seal(now, vni, peer, &mut buf[start..inner.end + ESP_TAILROOM], inner.len(), next_header) {
                    Ok(len) => {
                        self.unicast_dest[0] = peer;
                        self.counters.underlay_tx_packets += 1;
                        Forward::Underlay { payload: start..start + len, dests: &self.unicast_dest, flow_hash: 0, tunnel: Tunnel::Esp }
                    }
                    Err(e) => {
                        self.counters.drop(seal_drop(e));
                        Forward::Nothing
                    }
                }
            }
            _ => {
                let peers: Vec<IpAddr> = match target {
                    Some(peer) => vec![peer],
                    None => self.networks[port].peers.clone(),
                };
                if peers.is_empty() {
                    self.counters.drop(DropReason::NoPeers);
                    return Forward::Nothing;
                }
                if target.is_none() {
                    self.counters.flooded_frames += 1;
                    self.counters.flood_copies += peers.len() as u64;
                }
                for peer in peers {
                    let mut copy = vec![0u8; ESP_HEADROOM + inner.len() + ESP_TAILROOM];
                    copy[ESP_HEADROOM..ESP_HEADROOM + inner.len()].copy_from_slice(&buf[inner.clone()]);
                    match esp.seal(now, vni, peer, &mut copy, inner.len(), next_header) {
                        Ok(len) => {
                            copy.truncate(len);
                            self.counters.underlay_tx_packets += 1;
                            self.transmits.push_back(Transmit::Underlay { dst: peer, tunnel: Tunnel::Esp, payload: copy });
                        }
                        Err(e) => self.counters.drop(seal_drop(e)),
                    }
                }
                Forward::Nothing
            }
        }
    }

    /// Handle a UDP datagram received on the ESP-in-UDP port from `from`, at `buf[payload]`.
    // hot path
    pub fn handle_esp(&mut self, now: Instant, from: IpAddr, buf: &mut [u8], payload: Range<usize>) -> Forward<'_> {
        self.counters.underlay_rx_packets += 1;
        self.counters.underlay_rx_bytes += payload.len() as u64;
        match classify_udp_4500(&buf[payload.clone()]) {
            Ok(Udp4500Payload::Esp) => {}
            Ok(Udp4500Payload::NatKeepalive) => {
                self.counters.esp_keepalives += 1;
                return Forward::Nothing;
            }
            Ok(Udp4500Payload::Ike) => {
                match self.esp.as_mut() {
                    Some(esp) if crate::ipsec::hello::is_hello(&buf[payload.clone()]) => {
                        esp.handle_hello(now, from, &buf[payload]);
                        self.flush_hellos();
                    }
                    _ => self.counters.drop(DropReason::EspIke),
                }
                return Forward::Nothing;
            }
            Err(_) => {
                self.counters.drop(DropReason::EspMalformed);
                return Forward::Nothing;
            }
        }
        let Some(esp) = self.esp.as_mut() else {
            self.counters.drop(DropReason::EspNotConfigured);
            return Forward::Nothing;
        };
        // Cheap refusal before any crypto: a sender no encrypted network lists.
        let by_vni = &self.by_vni;
        let networks = &self.networks;
        let listed =
            esp.networks().iter().any(|v| by_vni.get(v).is_some_and(|&p| networks[p].tunnel == Tunnel::Esp && networks[p].has_peer(from)));
        if !listed {
            self.counters.drop(DropReason::UnknownPeer);
            return Forward::Nothing;
        }
        // The SPI tells the network: deliver only to the network whose SA opened the packet.
        let (port, opened) = match esp.open(now, from, &mut buf[payload.clone()]) {
            Ok((vni, o)) => match by_vni.get(&vni) {
                Some(&port) if networks[port].tunnel == Tunnel::Esp && networks[port].has_peer(from) => (port, o),
                _ => {
                    self.counters.drop(DropReason::UnknownPeer);
                    return Forward::Nothing;
                }
            },
            Err(TunnelError::NoSession) => {
                self.counters.drop(DropReason::EspNoSession);
                return Forward::Nothing;
            }
            Err(TunnelError::Esp(_)) => {
                self.counters.drop(DropReason::EspRejected);
                return Forward::Nothing;
            }
        };
        let inner = payload.start + opened.inner.start..payload.start + opened.inner.end;
        let routed = self.networks[port].router.is_some();
        match (opened.next_header, routed) {
            (NEXT_HEADER_ETHERNET, false) => self.deliver_switched(now, port, from, buf, inner),
            (nh @ (NEXT_HEADER_IPV4 | NEXT_HEADER_IPV6), true) => {
                // Give the IP packet an Ethernet header addressed to the gateway, in the room the
                // ESP header left, and let the router resolve the container.
                let start = inner.start - 14;
                let gw = self.networks[port].router.as_ref().expect("routed").spec().gateway_mac;
                let frame = start..inner.end;
                {
                    let mut eth = EthernetFrame::new_unchecked(&mut buf[frame.clone()]);
                    eth.set_dst_addr(gw);
                    eth.set_src_addr(gw);
                    eth.set_ethertype(if nh == NEXT_HEADER_IPV6 { EtherType::IPV6 } else { EtherType::IPV4 });
                }
                // The same source check as for routed VXLAN: a peer may only send from its own subnet.
                if self.routed_source_spoofed(port, from, &buf[frame.clone()]) {
                    self.counters.drop(DropReason::RoutedSourceSpoofed);
                    return Forward::Nothing;
                }
                self.clamp_mss(port, Some(from), &mut buf[frame.clone()]);
                self.deliver_routed(now, port, buf, frame)
            }
            _ => {
                self.counters.drop(DropReason::EspInnerUnsupported);
                Forward::Nothing
            }
        }
    }

    pub(super) fn flush_hellos(&mut self) {
        if let Some(esp) = self.esp.as_mut() {
            while let Some((dst, payload)) = esp.poll_hello() {
                self.transmits.push_back(Transmit::Underlay { dst, tunnel: Tunnel::Esp, payload });
            }
        }
    }

    /// Install the ESP sessions of the encrypted networks (every network whose tunnel is ESP).
    pub fn set_esp(&mut self, mut tunnels: EspTunnels) {
        let vnis: Vec<Vni> = self.networks.iter().filter(|n| n.tunnel == Tunnel::Esp && !n.retired).map(|n| n.vni).collect();
        if !vnis.is_empty() {
            tunnels.set_networks(&vnis);
            self.esp = Some(tunnels);
        }
    }

    /// The ESP sessions, if a network is encrypted.
    pub fn esp(&self) -> Option<&EspTunnels> {
        self.esp.as_ref()
    }

    /// Mutable ESP sessions (manual keys at start-up).
    pub fn esp_mut(&mut self) -> Option<&mut EspTunnels> {
        self.esp.as_mut()
    }
}

fn seal_drop(e: TunnelError) -> DropReason {
    match e {
        TunnelError::NoSession => DropReason::EspNoSession,
        TunnelError::Esp(EspError::SequenceExhausted) => DropReason::EspSeqExhausted,
        TunnelError::Esp(EspError::NotReserved) => DropReason::EspSeqUnreserved,
        TunnelError::Esp(_) => DropReason::EspSealFailed,
    }
}
