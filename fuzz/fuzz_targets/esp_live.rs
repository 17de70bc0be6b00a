//! `handle_esp` on a switch with a live manual-key session: the peer seals an arbitrary inner
//! frame with the matching outbound SA, then the fuzz input may flip one byte of the packet.
//! Intact packets are accepted or dropped and counted; a tampered packet is never delivered;
//! nothing panics.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vxswitch::arp::UnknownArp;
use vxswitch::dataplane::{EspTunnels, Forward, NetworkSpec, Switch, SwitchConfig, Tunnel};
use vxswitch::ipsec::{InboundSa, OutboundSa, SessionConfig, Suite, ESP_HEADROOM, ESP_TAILROOM, NEXT_HEADER_ETHERNET};
use vxswitch::wire::vxlan::Vni;

const KEY_IN: [u8; 36] = [7; 36];
const KEY_OUT: [u8; 36] = [9; 36];

fuzz_target!(|data: &[u8]| {
    let Some((&[flip_at_hi, flip_at_lo, flip], inner)) = data.split_first_chunk::<3>() else { return };
    let peer: std::net::IpAddr = Ipv4Addr::new(198, 18, 0, 2).into();
    let now = Instant::now();
    let network = NetworkSpec {
        vni: Vni::new(1042).unwrap(),
        max_frame_len: 1464,
        peers: vec![peer],
        unknown_arp: UnknownArp::Flood,
        routed: None,
        tunnel: Tunnel::Esp,
        path: Default::default(),
    };
    let mut switch =
        Switch::new(SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 64, networks: vec![network] }, now);
    switch.set_esp(EspTunnels::new(None, 1, Suite::Aes256Gcm, SessionConfig::default()));
    let esp = switch.esp_mut().unwrap();
    esp.add_manual(
        now,
        Vni::new_const(1042),
        peer,
        OutboundSa::new(0x2001, Suite::Aes256Gcm, &KEY_OUT, false).unwrap(),
        InboundSa::new(0x1001, Suite::Aes256Gcm, &KEY_IN, false, 1024).unwrap(),
    );
    // The peer's side of the inbound SA.
    let mut sender = OutboundSa::new(0x1001, Suite::Aes256Gcm, &KEY_IN, false).unwrap();
    let inner = &inner[..inner.len().min(1500)];
    let mut buf = vec![0u8; 64 + ESP_HEADROOM + inner.len() + ESP_TAILROOM];
    buf[64 + ESP_HEADROOM..64 + ESP_HEADROOM + inner.len()].copy_from_slice(inner);
    let Ok(len) = sender.seal(&mut buf[64..], inner.len(), NEXT_HEADER_ETHERNET) else { return };
    let at = usize::from(u16::from_be_bytes([flip_at_hi, flip_at_lo])) % len;
    buf[64 + at] ^= flip;
    let forward = switch.handle_esp(now, peer, &mut buf, 64..64 + len);
    if flip != 0 {
        assert!(!matches!(forward, Forward::Tap { .. }), "a tampered packet was delivered");
    }
    while switch.poll_transmit().is_some() {}
    switch.handle_timeout(now + Duration::from_secs(400));
});
