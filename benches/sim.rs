//! One frame through the whole switch core, end to end on the simulator (two switch-only nodes,
//! no latency): TAP read on host 0 (learn, FDB lookup, encapsulation), the underlay hop, and
//! decapsulation, learning and delivery to the TAP on host 1. Both hosts have learned each other first, so this is the known-unicast
//! steady state. `Throughput::Bytes` is the frame length; includes the simulator's own copies
//! (one into its buffer per hop, one out per delivery), which the daemon does not make.

use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vxswitch::arp::UnknownArp;
use vxswitch::dataplane::{NetworkSpec, SwitchConfig};
use vxswitch::sim::{ethernet_frame, Sim};
use vxswitch::wire::vxlan::Vni;

const A: [u8; 6] = [0x02, 0, 0, 0, 1, 1];
const B: [u8; 6] = [0x02, 0, 0, 0, 2, 1];

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}

fn two_hosts() -> Sim {
    let hosts = (0..2)
        .map(|i| {
            let spec = NetworkSpec {
                vni: Vni::new(1042).expect("valid VNI"),
                max_frame_len: 1514,
                peers: vec![ul(1 - i)],
                unknown_arp: UnknownArp::Flood,
                routed: None,
                tunnel: vxswitch::dataplane::Tunnel::Vxlan,
                path: Default::default(),
            };
            (ul(i), SwitchConfig { fdb_ageing: Duration::from_secs(300), fdb_max_entries: 1024, networks: vec![spec] })
        })
        .collect();
    let mut sim = Sim::new(hosts);
    // Let each side learn the other (broadcast from A, reply from B).
    sim.tap_send(0, 0, &ethernet_frame([0xff; 6], A, 0x0806, &[0u8; 28]));
    sim.tap_send(1, 0, &ethernet_frame(A, B, 0x0806, &[0u8; 28]));
    sim.take_tap(0, 0);
    sim.take_tap(1, 0);
    sim.take_underlay();
    sim
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim_end_to_end");
    for len in [64usize, 1400] {
        let mut sim = two_hosts();
        let frame = ethernet_frame(B, A, 0x0800, &vec![0x45u8; len - 14]);
        assert_eq!(frame.len(), len);
        sim.tap_send(0, 0, &frame);
        assert_eq!(sim.take_tap(1, 0), vec![frame.clone()], "known unicast reaches host 1");
        assert_eq!(sim.take_underlay().len(), 1, "one datagram, no flooding");
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("unicast_frame", len), &len, |b, _| {
            b.iter(|| {
                sim.tap_send(0, 0, black_box(&frame));
                black_box(sim.take_tap(1, 0));
                sim.underlay_log.clear();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
