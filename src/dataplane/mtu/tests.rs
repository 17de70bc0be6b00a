//! The MTU plan: exact numbers per tunnel, payload and suite, and a cross-check against the bytes
//! the real ESP and VXLAN code writes for the largest frame and for one byte more.

use super::*;
use crate::ipsec::{OutboundSa, ESP_HEADROOM, ESP_TAILROOM, NEXT_HEADER_ETHERNET, NEXT_HEADER_IPV4};
use crate::vxlan;

const SUITES: [Suite; 3] = [Suite::Aes128Gcm, Suite::Aes256Gcm, Suite::ChaCha20Poly1305];
const UNDERLAYS: [u32; 10] = [576, 1280, 1400, 1499, 1500, 1501, 1502, 1503, 1504, 9000];

fn esp(suite: Suite, payload: Payload) -> Encap {
    Encap::Esp { suite, payload }
}

fn every_encap() -> Vec<Encap> {
    let mut v = vec![Encap::None, Encap::Vxlan];
    for s in SUITES {
        v.push(esp(s, Payload::Ethernet));
        v.push(esp(s, Payload::Ipv4));
    }
    v
}

#[test]
fn vxlan_costs_50_bytes_in_both_modes() {
    let p = plan(1500, Encap::Vxlan);
    assert_eq!((p.mtu, p.max_frame_len, p.overhead()), (1450, 1464, 50));
    assert_eq!(p.max_frame_len as usize, 1500 - (vxlan::IPV4_OVERHEAD - 14), "the old max_frame_len");
    assert_eq!(plan(9000, Encap::Vxlan).mtu, 8950);
    assert_eq!(plan(576, Encap::Vxlan).mtu, 526);
}

#[test]
fn esp_overlay_and_routed_numbers_for_every_suite() {
    // (underlay, overlay MTU, routed MTU): 20 + 8 + 8 + 8 + 16 = 60 fixed, then 2 trailer bytes
    // and the 4-byte alignment; the overlay also carries the 14-byte inner Ethernet header.
    let expected = [(1500, 1424, 1438), (1501, 1424, 1438), (1503, 1424, 1438), (1504, 1428, 1442), (9000, 8924, 8938)];
    for suite in SUITES {
        for (underlay, overlay, routed) in expected {
            let o = plan(underlay, esp(suite, Payload::Ethernet));
            let r = plan(underlay, esp(suite, Payload::Ipv4));
            assert_eq!((o.mtu, r.mtu), (overlay, routed), "{suite:?} at {underlay}");
            assert_eq!((o.max_frame_len, r.max_frame_len), (overlay + 14, routed + 14));
            assert_eq!(o.align_slack, (underlay - 60) % 4);
        }
    }
    let p = plan(1500, esp(Suite::Aes256Gcm, Payload::Ethernet));
    assert_eq!(
        (p.outer_ipv4, p.udp, p.vxlan, p.esp_header, p.iv, p.inner_ethernet, p.esp_trailer, p.icv, p.align_slack),
        (20, 8, 0, 8, 8, 14, 2, 16, 0)
    );
}

#[test]
fn no_encapsulation_keeps_the_underlay_mtu() {
    assert_eq!(plan(1500, Encap::None).mtu, 1500);
}

#[test]
fn the_parts_add_up_to_the_underlay_mtu() {
    for underlay in (576..=1600).chain([9000, 65535]) {
        for (encap, outer) in every_encap().into_iter().flat_map(|e| [(e, OuterIp::V4), (e, OuterIp::V6)]) {
            let p = plan_over(outer, underlay, encap);
            let sum = p.outer_ipv4
                + p.outer_ipv6
                + p.udp
                + p.vxlan
                + p.esp_header
                + p.iv
                + p.inner_ethernet
                + p.esp_trailer
                + p.icv
                + p.align_slack
                + p.mtu;
            assert_eq!(sum, underlay, "{encap:?} over {outer:?} at {underlay}: {p:?}");
            assert!(p.align_slack < 4);
        }
    }
}

#[test]
fn suite_sizes_match_the_sealing_code() {
    for suite in SUITES {
        let s = suite_sizes(suite);
        assert_eq!((ESP_HEADER + s.iv) as usize, ESP_HEADROOM);
        assert_eq!((s.align - 1 + ESP_TRAILER + s.icv) as usize, ESP_TAILROOM);
        assert_eq!(s.icv as usize, crate::ipsec::ESP_ICV_LEN);
    }
}

/// Seals an inner packet of `len` bytes with the real outbound SA and returns the outer IPv4
/// packet length (ESP + UDP 8 + IPv4 20).
fn sealed_outer_len(suite: Suite, len: usize, next_header: u8) -> usize {
    let key = vec![7u8; suite.key_material_len()];
    let mut sa = OutboundSa::new(0x1000, suite, &key, false).unwrap();
    let mut buf = vec![0xabu8; ESP_HEADROOM + len + ESP_TAILROOM];
    let esp_len = sa.seal(&mut buf, len, next_header).unwrap();
    esp_len + (UDP + OUTER_IPV4) as usize
}

#[test]
fn the_largest_esp_frame_fits_exactly_and_one_byte_more_does_not() {
    for suite in SUITES {
        for underlay in UNDERLAYS {
            for (payload, nh, strip) in [(Payload::Ethernet, NEXT_HEADER_ETHERNET, 0), (Payload::Ipv4, NEXT_HEADER_IPV4, 14)] {
                let p = plan(underlay, esp(suite, payload));
                // What the switch seals of the largest TAP frame: the frame, or its IP packet.
                let inner = p.max_frame_len as usize - strip;
                let outer = sealed_outer_len(suite, inner, nh);
                assert!(outer <= underlay as usize, "{suite:?} {payload:?} at {underlay}: {outer} bytes");
                assert_eq!(outer, underlay as usize - p.align_slack as usize, "no byte unaccounted for");
                let more = sealed_outer_len(suite, inner + 1, nh);
                assert!(more > underlay as usize, "{suite:?} {payload:?} at {underlay}: one byte more still fits");
                for shorter in inner.saturating_sub(8)..inner {
                    assert!(sealed_outer_len(suite, shorter, nh) <= underlay as usize, "padding never makes a shorter one too big");
                }
            }
        }
    }
}

#[test]
fn the_largest_vxlan_frame_fits_exactly_and_one_byte_more_does_not() {
    let vni = crate::wire::vxlan::Vni::new(42).unwrap();
    for underlay in UNDERLAYS {
        let p = plan(underlay, Encap::Vxlan);
        for (len, fits) in [(p.max_frame_len as usize, true), (p.max_frame_len as usize + 1, false)] {
            let mut buf = vec![0u8; vxlan::ENCAP_HEADROOM + len];
            let payload = vxlan::encap(&mut buf, vxlan::ENCAP_HEADROOM..vxlan::ENCAP_HEADROOM + len, vni);
            let outer = payload.len() + (UDP + OUTER_IPV4) as usize;
            assert_eq!(outer <= underlay as usize, fits, "VXLAN at {underlay}, frame {len}: outer {outer}");
        }
    }
}

#[test]
fn describe_names_every_part() {
    let line = plan(1500, esp(Suite::Aes256Gcm, Payload::Ethernet)).describe();
    assert_eq!(
        line,
        "mtu 1424 = underlay 1500 - 20 ipv4 - 8 udp - 8 esp - 8 iv - 14 inner ethernet - 2 esp trailer - 16 icv (esp aes-256-gcm)"
    );
    let line = plan(1500, Encap::Vxlan).describe();
    assert_eq!(line, "mtu 1450 = underlay 1500 - 20 ipv4 - 8 udp - 8 vxlan - 14 inner ethernet (vxlan)");
}

#[test]
fn an_ipv6_underlay_costs_twenty_bytes_more() {
    let v = plan_over(OuterIp::V6, 1500, Encap::Vxlan);
    assert_eq!((v.mtu, v.overhead(), v.outer_ipv6, v.outer_ipv4), (1430, 70, 40, 0), "VXLAN over IPv6: 70 bytes, as Linux vxlan");
    assert!(v.describe().contains("- 40 ipv6 - 8 udp - 8 vxlan - 14 inner ethernet"), "{}", v.describe());
    for encap in every_encap().into_iter().filter(|e| *e != Encap::None) {
        for underlay in [1280, 1500, 9000] {
            let (four, six) = (plan(underlay, encap), plan_over(OuterIp::V6, underlay, encap));
            assert_eq!(four.mtu - six.mtu, 20, "{encap:?} at {underlay}");
            assert_eq!(six, plan_over(OuterIp::V6, underlay, encap));
            assert_eq!(
                plan_over(OuterIp::V4, underlay - 20, encap).mtu,
                six.mtu,
                "{encap:?}: an IPv6 underlay carries what an IPv4 one 20 bytes smaller does"
            );
        }
    }
    assert_eq!(plan_over(OuterIp::V6, 1500, Encap::None).mtu, 1500);
}
