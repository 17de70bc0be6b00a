//! ESP seal/open throughput per suite at 64, 1400 and 8192 inner bytes.
//!
//! Seal re-seals one buffer in place with a fresh sequence number each time (a sender does the
//! same work per packet). Open needs a packet the replay window has not seen, so each timed
//! `open` gets a packet freshly sealed in the untimed setup; it passes the replay check and
//! does the full ICV verification and decryption. Inner sizes count as the throughput bytes.
//!
//! Run: `cargo bench --bench esp` (add `-- --quick` for a short run).

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use vxswitch::ipsec::{sealed_len, InboundSa, OutboundSa, Suite, ESP_HEADROOM, ESP_TAILROOM, NEXT_HEADER_ETHERNET};

const SIZES: [usize; 3] = [64, 1400, 8192];
const SUITES: [(Suite, &str); 3] =
    [(Suite::Aes128Gcm, "aes128gcm"), (Suite::Aes256Gcm, "aes256gcm"), (Suite::ChaCha20Poly1305, "chacha20poly1305")];

fn key_material(suite: Suite) -> Vec<u8> {
    (0..suite.key_material_len() as u8).map(|i| i.wrapping_mul(29) ^ 0xa5).collect()
}

fn bench_seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("esp_seal");
    for (suite, name) in SUITES {
        for size in SIZES {
            let mut out = OutboundSa::new(0x1000, suite, &key_material(suite), true).unwrap();
            let mut buf = vec![0x42u8; ESP_HEADROOM + size + ESP_TAILROOM];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(format!("{name}/{size}"), |b| {
                b.iter(|| black_box(out.seal(black_box(&mut buf), size, NEXT_HEADER_ETHERNET).unwrap()))
            });
        }
    }
    group.finish();
}

fn bench_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("esp_open");
    for (suite, name) in SUITES {
        for size in SIZES {
            let km = key_material(suite);
            let mut out = OutboundSa::new(0x1000, suite, &km, true).unwrap();
            let mut inb = InboundSa::new(0x1000, suite, &km, true, 4096).unwrap();
            let mut plain = vec![0x42u8; ESP_HEADROOM + size + ESP_TAILROOM];
            let len = sealed_len(size);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(format!("{name}/{size}"), |b| {
                // Each batch input is a freshly sealed packet (setup, not timed), so every
                // timed open passes the replay check and does the full ICV + decrypt.
                b.iter_batched_ref(
                    || {
                        out.seal(&mut plain, size, NEXT_HEADER_ETHERNET).unwrap();
                        plain[..len].to_vec()
                    },
                    |pkt| black_box(inb.open(pkt).unwrap()),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

/// Baseline: the bare AEAD on the same bytes, to show what the ESP framing adds.
fn bench_raw_aead(c: &mut Criterion) {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let mut group = c.benchmark_group("raw_aead_seal");
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    for size in SIZES {
        let mut buf = vec![0x42u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("aes256gcm/{size}"), |b| {
            b.iter(|| {
                let nonce = Nonce::assume_unique_for_key([1u8; 12]);
                black_box(key.seal_in_place_separate_tag(nonce, Aad::from([0u8; 8]), &mut buf).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_seal, bench_open, bench_raw_aead);
criterion_main!(benches);
