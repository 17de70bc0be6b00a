//! Gossip scenarios on the in-process simulator (virtual time, seeded loss, bounded steps).

use std::time::Duration;

use vxswitch::control::sim::SimNet;
use vxswitch::control::GossipConfig;

#[test]
fn gossip_converges_64_hosts() {
    let mut net = SimNet::new(64, GossipConfig::default(), 1);
    let deadline = net.start + Duration::from_secs(60);
    assert!(net.run_until_cond(deadline, SimNet::converged), "not converged after 60 s");
    println!("64 hosts converged in {:?} simulated", net.elapsed());
    assert!(net.max_datagram() <= 1400, "datagram of {} bytes", net.max_datagram());
}
