//! ESP on the offload path, without a kernel: a TSO super-frame is split into segments, each is
//! sealed on its own (one sequence number each, in order), the run is concatenated the way one
//! `UDP_SEGMENT` send carries it and cut again at the stride the way a `UDP_GRO` receive hands it
//! over, each datagram is opened, and the coalescer rebuilds one super-frame. Every byte must come
//! back, every datagram must have its own nonce, and a datagram that arrives twice is refused as
//! a replay without breaking the stream. Proptests run the same path over random sizes.

use std::io::IoSlice;

use etherparse::PacketBuilder;
use proptest::prelude::*;
use vxswitch::ipsec::{sealed_len, EspError, InboundSa, OutboundSa, Suite, ESP_HEADROOM, ESP_TAILROOM, NEXT_HEADER_ETHERNET};
use vxswitch::sys::fastpath::gro::{Coalescer, Integrity};
use vxswitch::sys::fastpath::gso::TcpSplit;
use vxswitch::sys::fastpath::udp::gro_datagrams;
use vxswitch::sys::fastpath::virtio::{VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4, VNET_HDR_LEN};

const KEY: [u8; 36] = [7; 36];
const SPI: u32 = 0x1000_0001;

/// A super-frame as an offload TAP hands it over: ACK|PSH, pseudo-header sum only.
fn super_frame(payload: usize, mss: usize) -> (Vec<u8>, VirtioNetHdr, Vec<u8>) {
    let data: Vec<u8> = (0..payload).map(|i| (i * 31 + i / 253) as u8).collect();
    let tcp = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 5201, 1000, 502)
        .ack(77)
        .psh();
    let mut frame = Vec::new();
    tcp.write(&mut frame, &data).unwrap();
    let hdr = VirtioNetHdr { flags: F_NEEDS_CSUM, gso_type: GSO_TCPV4, hdr_len: 54, gso_size: mss as u16, csum_start: 34, csum_offset: 16 };
    (frame, hdr, data)
}

/// Split, seal each segment in a slot with ESP headroom and tailroom; the sealed datagrams.
fn seal_run(frame: &[u8], hdr: &VirtioNetHdr, sa: &mut OutboundSa) -> Vec<Vec<u8>> {
    let split = TcpSplit::new(frame, hdr).unwrap();
    (0..split.count())
        .map(|i| {
            let mut slot = vec![0u8; ESP_HEADROOM + split.max_segment_len() + ESP_TAILROOM];
            let len = split.write_segment(frame, i, &mut slot[ESP_HEADROOM..]);
            let sealed = sa.seal(&mut slot, len, NEXT_HEADER_ETHERNET).unwrap();
            assert_eq!(sealed, sealed_len(len));
            slot.truncate(sealed);
            slot
        })
        .collect()
}

/// Receive `wire` (the concatenated datagrams of one GSO send) as one GRO buffer: cut at the
/// stride, open each, coalesce. Returns the TAP writes and how many datagrams were refused as
/// replays (any other refusal fails the test).
fn receive(wire: Vec<u8>, stride: usize, sa: &mut InboundSa) -> (Vec<Vec<u8>>, usize) {
    let mut bufs = vec![wire];
    let whole = 0..bufs[0].len();
    let mut writes = Vec::new();
    let mut refused = 0;
    let mut c = Coalescer::new();
    let mut w = |_port, iov: &[IoSlice<'_>]| writes.push(iov.iter().flat_map(|s| s.to_vec()).collect::<Vec<u8>>());
    for range in gro_datagrams(whole, stride) {
        match sa.open(&mut bufs[0][range.clone()]) {
            Ok(o) => {
                assert_eq!(o.next_header, NEXT_HEADER_ETHERNET);
                let frame = range.start + o.inner.start..range.start + o.inner.end;
                c.offer(&mut bufs, 0, (0, frame), Integrity::Authenticated, &mut w);
            }
            Err(e) => {
                assert_eq!(e, EspError::Replay, "only ever refused as a replay");
                refused += 1;
            }
        }
    }
    c.flush(&mut bufs, &mut w);
    (writes, refused)
}

/// The TCP payload the TAP writes carry, in order.
fn payload_of(writes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in writes {
        let hdr = VirtioNetHdr::parse(w[..VNET_HDR_LEN].try_into().unwrap());
        let frame = &w[VNET_HDR_LEN..];
        let hlen = 34 + usize::from(frame[34 + 12] >> 4) * 4;
        if hdr.gso_type != 0 {
            assert_eq!(hdr.gso_type, GSO_TCPV4);
        }
        out.extend_from_slice(&frame[hlen..]);
    }
    out
}

fn sas() -> (OutboundSa, InboundSa) {
    (OutboundSa::new(SPI, Suite::Aes256Gcm, &KEY, false).unwrap(), InboundSa::new(SPI, Suite::Aes256Gcm, &KEY, false, 64).unwrap())
}

fn round_trip(payload: usize, mss: usize) {
    let (frame, hdr, data) = super_frame(payload, mss);
    let (mut out, mut inb) = sas();
    let sealed = seal_run(&frame, &hdr, &mut out);
    // One run: every datagram as long as the first, the last possibly shorter.
    let stride = sealed[0].len();
    assert!(sealed.iter().all(|d| d.len() <= stride));
    assert!(sealed[..sealed.len() - 1].iter().all(|d| d.len() == stride), "equal segments seal to equal datagrams");
    // One nonce per datagram: sequence numbers 1, 2, 3... in the order sent.
    let seqs: Vec<u32> = sealed.iter().map(|d| u32::from_be_bytes(d[4..8].try_into().unwrap())).collect();
    assert_eq!(seqs, (1..=sealed.len() as u32).collect::<Vec<_>>());
    let (writes, refused) = receive(sealed.concat(), stride, &mut inb);
    assert_eq!(refused, 0);
    assert_eq!(payload_of(&writes), data, "every byte back, in order");
    assert!(writes.len() <= sealed.len().div_ceil(64).max(1), "one TAP write per group: {} writes", writes.len());
}

#[test]
fn sealed_run_opens_and_coalesces_back_byte_for_byte() {
    round_trip(64 * 1024 - 54, 1370);
    round_trip(10 * 1370 + 5, 1370);
    round_trip(1370, 1370);
    round_trip(1, 1370);
}

#[test]
fn a_datagram_received_twice_is_refused_once_and_the_rest_still_arrives() {
    let (frame, hdr, data) = super_frame(8 * 1000, 1000);
    let (mut out, mut inb) = sas();
    let sealed = seal_run(&frame, &hdr, &mut out);
    let stride = sealed[0].len();
    let (writes, refused) = receive(sealed.concat(), stride, &mut inb);
    assert_eq!((refused, payload_of(&writes)), (0, data));
    // The same run again (a datagram sent twice): every copy is a replay, nothing is delivered.
    let (writes, refused) = receive(sealed.concat(), stride, &mut inb);
    assert_eq!((refused, writes.len()), (sealed.len(), 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_run_round_trips(payload in 1usize..(64 * 1024 - 54), mss in 500usize..1448) {
        round_trip(payload, mss);
    }
}
