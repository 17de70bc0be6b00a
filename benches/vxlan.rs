//! VXLAN per-packet work at 64, 1400 and 8192-byte inner frames: header parse (VXLAN + inner
//! Ethernet, as the receive path reads them), encapsulation in place, decapsulation, and the flow
//! hash that picks the outer source port. `Throughput::Bytes` is the inner frame length, so the
//! figures read as the data rate one core could sustain for that step alone.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vxswitch::vxlan::{decap, encap, flow_hash, ENCAP_HEADROOM};
use vxswitch::wire::ethernet::EthernetFrame;
use vxswitch::wire::vxlan::{Vni, VxlanPacket, VxlanRepr};

const SIZES: [usize; 3] = [64, 1400, 8192];

/// An IPv4/UDP inner frame of `len` bytes, after `ENCAP_HEADROOM` bytes of headroom.
fn buffer(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; ENCAP_HEADROOM + len];
    let f = &mut buf[ENCAP_HEADROOM..];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 1, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 2, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 17;
    f[26..30].copy_from_slice(&[192, 0, 2, 11]);
    f[30..34].copy_from_slice(&[192, 0, 2, 21]);
    f[34..38].copy_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    buf
}

fn bench(c: &mut Criterion) {
    let vni = Vni::new(1042).expect("valid VNI");
    let mut group = c.benchmark_group("vxlan");
    for len in SIZES {
        group.throughput(Throughput::Bytes(len as u64));
        let mut buf = buffer(len);
        let frame = ENCAP_HEADROOM..ENCAP_HEADROOM + len;
        group.bench_with_input(BenchmarkId::new("encap", len), &len, |b, _| {
            b.iter(|| black_box(encap(black_box(&mut buf), frame.clone(), vni)))
        });
        let payload = encap(&mut buf, frame.clone(), vni);
        group.bench_with_input(BenchmarkId::new("decap", len), &len, |b, _| b.iter(|| black_box(decap(black_box(&buf), payload.clone()))));
        group.bench_with_input(BenchmarkId::new("parse", len), &len, |b, _| {
            b.iter(|| {
                let packet = VxlanPacket::new_checked(black_box(&buf[payload.clone()])).expect("valid VXLAN");
                let repr = VxlanRepr::parse(&packet).expect("valid VXLAN");
                let inner = EthernetFrame::new_checked(packet.payload()).expect("valid Ethernet");
                black_box((repr, inner.dst_addr(), inner.src_addr(), inner.ethertype()))
            })
        });
        group.bench_with_input(BenchmarkId::new("flow_hash", len), &len, |b, _| {
            b.iter(|| black_box(flow_hash(&EthernetFrame::new_unchecked(black_box(&buf[frame.clone()])))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
