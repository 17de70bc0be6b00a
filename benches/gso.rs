//! The userspace TCP segmentation of the TAP -> underlay fast path: one 64 KB TSO super-frame
//! (as an offload TAP hands it over) split into wire-sized segments with their own IPv4/TCP
//! headers and full TCP checksums, written where the switch core would encapsulate them.
//!
//! This is the work a `TUN_F_UDP_TUNNEL_GSO` design (Linux 6.17+: hand the kernel one
//! VXLAN-encapsulated super-frame and let it segment) would take off the daemon, so the figure
//! bounds what such a design can gain. `Throughput::Bytes` is the TCP payload, so the result
//! reads as the data rate one core sustains for the split alone.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use vxswitch::sys::fastpath::gso::TcpSplit;
use vxswitch::sys::fastpath::virtio::{VirtioNetHdr, F_NEEDS_CSUM, GSO_TCPV4};

/// Payload of a full TSO super-frame, and the MSS of a 1450-byte overlay MTU with timestamps.
const PAYLOAD: usize = 65_160;
const MSS: u16 = 1398;

fn super_frame() -> (Vec<u8>, VirtioNetHdr) {
    let data: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7 + i / 251) as u8).collect();
    let tcp = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 11], [192, 0, 2, 21], 64)
        .tcp(40000, 5201, 1, 502)
        .ack(1)
        .options(&[etherparse::TcpOptionElement::Noop, etherparse::TcpOptionElement::Noop, etherparse::TcpOptionElement::Timestamp(1, 2)])
        .expect("options fit");
    let mut frame = Vec::new();
    tcp.write(&mut frame, &data).expect("frame builds");
    let hdr = VirtioNetHdr { flags: F_NEEDS_CSUM, gso_type: GSO_TCPV4, hdr_len: 66, gso_size: MSS, csum_start: 34, csum_offset: 16 };
    (frame, hdr)
}

fn bench(c: &mut Criterion) {
    let (frame, hdr) = super_frame();
    let split = TcpSplit::new(&frame, &hdr).expect("a valid super-frame");
    let mut out = vec![0u8; split.count() * (split.max_segment_len() + 64)];
    let mut group = c.benchmark_group("tso_split");
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    group.bench_function("ipv4_64k", |b| {
        b.iter(|| {
            let split = TcpSplit::new(black_box(&frame), &hdr).expect("valid");
            let stride = split.max_segment_len() + 64;
            for i in 0..split.count() {
                black_box(split.write_segment(&frame, i, &mut out[i * stride..(i + 1) * stride]));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
