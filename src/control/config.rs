//! Gossip timers and limits, with defaults sized for the targets in the module doc of
//! [`crate::control`].

use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Gossip settings. Every host of a cluster should use the same values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GossipConfig {
    /// Cluster name: authenticated as associated data of every datagram.
    pub cluster: String,
    /// UDP address other hosts reach this host's gossip at.
    pub listen: SocketAddr,
    /// Seed hosts announced to at start (and again while alone).
    pub seeds: Vec<SocketAddr>,
    /// Probe period: how often one random member is pinged (SWIM protocol period).
    #[serde(with = "millis")]
    pub interval: Duration,
    /// How long to wait for a direct ack before asking others to probe indirectly.
    #[serde(with = "millis")]
    pub probe_rtt: Duration,
    /// How many members are asked to probe indirectly (also the gossip fan-out).
    pub indirect_probes: usize,
    /// Suspicion timeout: how long a suspected member has to refute before it is declared dead.
    /// This takes the place of a phi-accrual threshold (see the module doc).
    #[serde(with = "millis")]
    pub suspect_timeout: Duration,
    /// How long a dead member's identity and record are remembered (for status and to reject
    /// stale rumours) before being forgotten.
    #[serde(with = "millis")]
    pub dead_grace: Duration,
    /// How often membership updates are pushed to random members besides probes.
    #[serde(with = "millis")]
    pub gossip_every: Duration,
    /// How often this host re-offers its own record (repairs records lost to datagram loss).
    #[serde(with = "millis")]
    pub refresh_every: Duration,
    /// How often dead members are contacted (heals partitions).
    #[serde(with = "millis")]
    pub announce_dead_every: Duration,
    /// Upper bound of every gossip datagram, sealing included (bytes of UDP payload).
    pub mtu: usize,
    /// Replay window, in counters per sender epoch.
    pub window: u32,
    /// How many times one update or record chunk is piggybacked before it is dropped from the
    /// backlog.
    pub max_transmissions: u8,
    /// Every subnet a member claims must lie inside this prefix (see [`super::policy`]).
    pub cluster_cidr: Option<ipnet::Ipv4Net>,
    /// Every IPv6 subnet a member claims must lie inside this prefix.
    pub cluster_cidr6: Option<ipnet::Ipv6Net>,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            cluster: "vxswitch".to_string(),
            listen: SocketAddr::from(([0, 0, 0, 0], 4790)),
            seeds: Vec::new(),
            interval: Duration::from_millis(500),
            probe_rtt: Duration::from_millis(200),
            indirect_probes: 5,
            suspect_timeout: Duration::from_millis(4000),
            dead_grace: Duration::from_secs(600),
            gossip_every: Duration::from_millis(200),
            refresh_every: Duration::from_secs(10),
            announce_dead_every: Duration::from_secs(3),
            mtu: 1400,
            window: 1024,
            max_transmissions: 12,
            cluster_cidr: None,
            cluster_cidr6: None,
        }
    }
}

impl GossipConfig {
    /// The SWIM configuration derived from these settings; `swim_mtu` is the room left for a SWIM
    /// message once sealing and framing are accounted for.
    pub(crate) fn foca(&self, swim_mtu: usize) -> foca::Config {
        let mut c = foca::Config::simple();
        c.probe_period = self.interval.max(Duration::from_millis(2));
        c.probe_rtt = self.probe_rtt.clamp(Duration::from_millis(1), c.probe_period / 2);
        c.num_indirect_probes = NonZeroUsize::new(self.indirect_probes.max(1)).unwrap_or(NonZeroUsize::MIN);
        c.max_transmissions = NonZeroU8::new(self.max_transmissions.max(1)).unwrap_or(NonZeroU8::MIN);
        c.suspect_to_down_after = self.suspect_timeout.max(Duration::from_millis(1));
        c.remove_down_after = Some(self.dead_grace.max(Duration::from_millis(1)));
        c.max_packet_size = NonZeroUsize::new(swim_mtu.max(64)).unwrap_or(NonZeroUsize::MIN);
        c.notify_down_members = true;
        c.periodic_announce =
            Some(foca::PeriodicParams { frequency: self.refresh_every.max(Duration::from_millis(1)), num_members: NonZeroUsize::MIN });
        c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: self.announce_dead_every.max(Duration::from_millis(1)),
            num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
        });
        c.periodic_gossip =
            Some(foca::PeriodicParams { frequency: self.gossip_every.max(Duration::from_millis(1)), num_members: c.num_indirect_probes });
        c
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
