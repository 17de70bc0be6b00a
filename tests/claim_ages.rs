//! Claim ages across restarts, on the simulator with hosts built from configuration files: the
//! host that claimed a subnet first keeps it when it restarts, even though a squatter claimed the
//! same subnet while it was up, and a latecomer cannot back-date its claim to win.

use std::net::Ipv4Addr;
use std::time::Duration;

use vxswitch::config::Config;
use vxswitch::control::ClusterKey;
use vxswitch::sim::Sim;
use vxswitch::wire::vxlan::Vni;

const VNI: Vni = Vni::new_const(1042);

fn ul(i: usize) -> std::net::IpAddr {
    Ipv4Addr::new(198, 18, 0, i as u8 + 1).into()
}

/// Host `i` on a routed network owning `subnet`, joining through host 0 (host 0 through host 1).
fn config(i: usize, subnet: &str) -> Config {
    let seeds = format!("\"{}\"", ul(usize::from(i == 0)));
    Config::parse(&format!(
        "[underlay]\naddress = \"{}\"\n\n[[network]]\nvni = {VNI}\nmode = \"routed\"\ntap = \"vxs{i}\"\nsubnet = \"{subnet}\"\n\n\
         [gossip]\ncluster = \"sim\"\nname = \"n{i}\"\nkey_file = \"/nonexistent\"\nseeds = [{seeds}]\n",
        ul(i)
    ))
    .unwrap()
}

fn route(sim: &Sim, host: usize, subnet: &str) -> Option<std::net::IpAddr> {
    sim.hosts[host].view.routes.get(&(VNI, subnet.parse::<ipnet::IpNet>().unwrap())).copied()
}

#[test]
fn gossip_claim_ages_survive_restarts_and_cannot_be_back_dated() {
    let key = || ClusterKey::from_bytes([7; 32]);
    let mut sim = Sim::empty(11);
    sim.latency = Duration::from_millis(1);
    sim.add_configured(&config(0, "10.9.0.0/24"), key(), None, 1000);
    sim.add_configured(&config(1, "10.9.1.0/24"), key(), None, 1001);
    sim.run_for(Duration::from_secs(120));
    assert_eq!(route(&sim, 1, "10.9.0.0/24"), Some(ul(0)));

    // Two minutes later a squatter claims host 0's subnet: the older claim keeps it.
    let squatter = config(2, "10.9.0.0/24");
    sim.add_configured(&squatter, key(), None, 2000);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(route(&sim, 1, "10.9.0.0/24"), Some(ul(0)));

    // Host 0 restarts. Its claim keeps the age it had (saved with its state), so the squatter,
    // which started claiming while host 0 was up, does not take the subnet over.
    sim.restart_configured(0, &config(0, "10.9.0.0/24"), key(), 3000);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(route(&sim, 1, "10.9.0.0/24"), Some(ul(0)), "the squatter took the subnet after the owner restarted");

    // The squatter back-dates its claim to the dawn of time: its claims count from when host 1
    // first trusted it, which is later than host 0's claim.
    let mut rec = sim.hosts[2].membership().local().clone();
    rec.networks[0].subnets[0].since = 0;
    sim.set_record(2, rec);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(route(&sim, 1, "10.9.0.0/24"), Some(ul(0)), "a back-dated claim won");
    let conflicts = sim.hosts[1].membership().conflicts();
    assert!(conflicts.iter().any(|c| c.winner == "n0" && c.loser == "n2"), "{conflicts:?}");
}
