//! FDB lookups at 10 and 100,000 entries.
//!
//! - *warm*: the same MAC again and again (its bucket stays in L1), the steady state of one busy
//!   flow;
//! - *cold*: a different MAC every time, in a scrambled order over the whole table, so at 100k
//!   entries (several MB) most lookups miss the caches, like many flows between many containers.
//!
//! Also the per-frame `learn` of a known source (a refresh), which the ingress path does for every
//! frame. `Throughput::Elements(1)`: one lookup (or learn) per iteration.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vxswitch::dataplane::fdb::{Fdb, Location};
use vxswitch::wire::ethernet::EthernetAddress;
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);

fn mac(i: u32) -> EthernetAddress {
    let b = i.to_be_bytes();
    EthernetAddress([0x02, 0x42, b[0], b[1], b[2], b[3]])
}

/// A table of `n` learned entries spread over 16 peers; returns it with its MACs in a
/// scrambled (but deterministic) order.
fn table(n: u32, now: Instant) -> (Fdb, Vec<EthernetAddress>) {
    let mut fdb = Fdb::new(Duration::from_secs(300), 2 * n as usize);
    for i in 0..n {
        fdb.learn(now, VNI, mac(i), Location::Remote(Ipv4Addr::new(198, 18, 0, (i % 16) as u8 + 1).into()));
    }
    // Multiplying by an odd constant modulo a power of two is a permutation; skip indices >= n.
    let span = n.next_power_of_two();
    let order = (0..span).map(|i| i.wrapping_mul(0x9E37_79B1) & (span - 1)).filter(|&i| i < n).map(mac).collect();
    (fdb, order)
}

fn bench(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("fdb");
    group.throughput(Throughput::Elements(1));
    for n in [10u32, 100_000] {
        let (mut fdb, order) = table(n, now);
        assert_eq!(fdb.len(), n as usize);
        let hot = order[0];
        group.bench_with_input(BenchmarkId::new("lookup_warm", n), &n, |b, _| b.iter(|| black_box(fdb.lookup(VNI, black_box(hot)))));
        let mut k = 0usize;
        group.bench_with_input(BenchmarkId::new("lookup_cold", n), &n, |b, _| {
            b.iter(|| {
                k = if k + 1 == order.len() { 0 } else { k + 1 };
                black_box(fdb.lookup(VNI, order[k]))
            })
        });
        let peer = Location::Remote(Ipv4Addr::new(198, 18, 0, 1).into());
        group.bench_with_input(BenchmarkId::new("learn_refresh", n), &n, |b, _| {
            b.iter(|| black_box(fdb.learn(now, VNI, black_box(order[0]), peer)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
