//! The gossip receive path past authentication: the fuzz input is sealed with the cluster key (as
//! a key holder would), so the codec, the chunk reassembly and the record decoder see arbitrary
//! plaintext; the raw input is also offered unsealed, and to the record and chunk decoders
//! directly. Never a panic; the membership keeps answering its timers.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vxswitch::control::record::{ChunkKey, MemberRecord};
use vxswitch::control::seal::Sealer;
use vxswitch::control::{ClusterKey, Credentials, GossipConfig, Membership};

fuzz_target!(|data: &[u8]| {
    let _ = MemberRecord::decode(data);
    let _ = ChunkKey::parse(data);
    let key = ClusterKey::from_bytes([7; 32]);
    let cfg = GossipConfig { cluster: "fuzz".into(), ..GossipConfig::default() };
    let local = vxswitch::control::fixtures::host_record(0, 1);
    let now = Instant::now();
    let credentials = Credentials::for_tests(1, 1_800_000_000);
    let Ok(mut m) = Membership::with_seed(cfg, local, &key, credentials, now, 1) else { return };
    let from: SocketAddr = "198.18.0.2:4790".parse().unwrap();
    m.handle_datagram(now, from, data);
    let mut sealer = Sealer::new(&key, "fuzz", 99);
    m.handle_datagram(now, from, &sealer.seal(data));
    m.handle_timeout(now + Duration::from_secs(1));
    while m.poll_transmit().is_some() {}
    while m.poll_update().is_some() {}
});
