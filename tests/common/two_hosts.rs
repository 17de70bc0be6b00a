//! Two simulated hosts built from their configurations: static updates applied and, for ESP,
//! host keys exchanged as gossip would. The shape the path-MTU and IPv6-underlay scenarios share.

use std::net::IpAddr;

use vxswitch::config::Config;
use vxswitch::control::ControlUpdate;
use vxswitch::dataplane::EspTunnels;
use vxswitch::ipsec::{HostKey, SessionConfig, Suite};
use vxswitch::node::switch_config;
use vxswitch::sim::Sim;

/// Hosts 0 and 1 at underlay addresses `ul(0)`, `ul(1)`, configured by `configs`.
pub fn sim(configs: &[Config], ul: impl Fn(usize) -> IpAddr, esp: bool) -> Sim {
    let mut sim = Sim::new(configs.iter().enumerate().map(|(i, c)| (ul(i), switch_config(c))).collect());
    for (i, c) in configs.iter().enumerate() {
        for u in c.networks[0].static_updates() {
            let now = sim.now;
            sim.hosts[i].node_mut().apply(now, u);
        }
    }
    if esp {
        let keys: Vec<HostKey> = (0..2).map(|_| HostKey::generate().unwrap()).collect();
        let public: Vec<[u8; 32]> = keys.iter().map(HostKey::public_key).collect();
        for (i, key) in keys.into_iter().enumerate() {
            sim.hosts[i].switch_mut().set_esp(EspTunnels::new(Some(key), 100 + i as u64, Suite::Aes256Gcm, SessionConfig::default()));
        }
        for i in 0..2 {
            let (k, now) = (1 - i, sim.now);
            sim.hosts[i].node_mut().apply(now, ControlUpdate::EspKey { underlay: ul(k), public_key: public[k], epoch: 100 + k as u64 });
        }
    }
    sim
}
