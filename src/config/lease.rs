//! `cluster_cidr` and `host_prefix` of a `[[network]]`: the host leases its subnet from a
//! cluster range through gossip instead of configuring one (see [`crate::node::lease`]).
//!
//! Checked here, next to but apart from the configured-subnet keys: a leased network has no
//! `subnet`, `gateway` or `range_*` (the gateway is the first address of whatever subnet the
//! host holds), it needs `[gossip]` (the lease is agreed there), and it is a routed or
//! host-subnet network (the networks that own a subnet per host).

use ipnet::Ipv4Net;
use toml::Spanned;

use super::{ranges, raw, ConfigError, Mode};

/// Most subnets a cluster range may be cut into (a lease probes them linearly).
pub const MAX_LEASE_SUBNETS: u32 = 1 << 16;

/// A range that hosts lease their subnets from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRange {
    /// The cluster range, e.g. 10.42.0.0/16.
    pub cluster_cidr: Ipv4Net,
    /// The prefix length of each host's subnet, e.g. 24.
    pub host_prefix: u8,
}

impl LeaseRange {
    /// How many host subnets the range holds.
    pub fn count(&self) -> u32 {
        1u32 << (self.host_prefix - self.cluster_cidr.prefix_len())
    }

    /// The `index`th host subnet (`index < count()`).
    pub fn subnet(&self, index: u32) -> Ipv4Net {
        let size = 1u32 << (32 - self.host_prefix);
        let base = u32::from(self.cluster_cidr.network());
        Ipv4Net::new(std::net::Ipv4Addr::from(base + index * size), self.host_prefix).expect("prefix checked")
    }

    /// Whether `net` is one of the range's host subnets.
    pub fn holds(&self, net: Ipv4Net) -> bool {
        net.prefix_len() == self.host_prefix && self.cluster_cidr.contains(&net) && net == net.trunc()
    }
}

/// The lease range of raw network `n`, if it has one. `err` builds an error naming the key.
pub(super) fn validate(
    n: &raw::RawNetwork,
    mode: Mode,
    gossip: bool,
    text: &str,
    err: &impl Fn(std::ops::Range<usize>, &str, String) -> ConfigError,
) -> Result<Option<LeaseRange>, ConfigError> {
    let (cidr, prefix) = match (&n.cluster_cidr, &n.host_prefix) {
        (None, None) => return Ok(None),
        (Some(c), Some(p)) => (c, p),
        (Some(c), None) => return Err(err(c.span(), "host_prefix", "cluster_cidr needs host_prefix (e.g. host_prefix = 24)".into())),
        (None, Some(p)) => return Err(err(p.span(), "cluster_cidr", "host_prefix needs cluster_cidr (e.g. \"10.42.0.0/16\")".into())),
    };
    if !matches!(mode, Mode::Routed | Mode::HostSubnet) {
        return Err(err(
            cidr.span(),
            "cluster_cidr",
            format!("subnet leases are for routed and host-subnet networks; a {mode} network owns no subnet"),
        ));
    }
    if !gossip {
        return Err(err(cidr.span(), "cluster_cidr", "subnet leases are agreed through gossip: configure [gossip]".into()));
    }
    let others: [(&str, Option<std::ops::Range<usize>>); 4] = [
        ("subnet", n.subnet.as_ref().map(Spanned::span)),
        ("gateway", n.gateway.as_ref().map(Spanned::span)),
        ("range_start", n.range_start.as_ref().map(Spanned::span)),
        ("range_end", n.range_end.as_ref().map(Spanned::span)),
    ];
    if let Some((key, Some(span))) = others.into_iter().find(|(_, s)| s.is_some()) {
        return Err(err(span, key, format!("a network that leases its subnet from cluster_cidr has no `{key}`")));
    }
    let net = *cidr.get_ref();
    if net != net.trunc() {
        return Err(err(cidr.span(), "cluster_cidr", format!("{net} has host bits set (did you mean {}?)", net.trunc())));
    }
    let p = ranges::checked(text, &Some(prefix.clone()), ranges::NETWORK_HOST_PREFIX)?.expect("given") as u8;
    if p < net.prefix_len() {
        return Err(err(prefix.span(), "host_prefix", format!("/{p} is larger than the cluster range {net}")));
    }
    if u32::from(p - net.prefix_len()) > MAX_LEASE_SUBNETS.trailing_zeros() {
        return Err(err(
            prefix.span(),
            "host_prefix",
            format!(
                "{net} cut into /{p} gives more than {MAX_LEASE_SUBNETS} subnets; use a longer cluster prefix or a shorter host_prefix"
            ),
        ));
    }
    Ok(Some(LeaseRange { cluster_cidr: net, host_prefix: p }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const NET: &str = "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 5\nmode = \"routed\"\ntap = \"vxs5\"\n";
    const GOSSIP: &str = "\n[gossip]\ncluster = \"c\"\nkey_file = \"/k\"\n";

    fn parse(keys: &str, gossip: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{NET}{keys}{gossip}"))
    }

    #[test]
    fn a_routed_network_leases_from_a_cluster_range_and_peers_need_no_subnet() {
        let c = parse("cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 24\npeers = [\"198.18.0.2\"]\n", GOSSIP).unwrap();
        let n = &c.networks[0];
        let r = n.lease.unwrap();
        assert_eq!((r.cluster_cidr.to_string(), r.host_prefix, r.count()), ("10.42.0.0/16".into(), 24, 256));
        assert_eq!(n.host_subnet, None);
        // Inside a gossip cluster_cidr that holds it.
        let inside = parse("cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 24\n", &format!("{GOSSIP}cluster_cidr = \"10.0.0.0/8\"\n"));
        assert!(inside.is_ok());
    }

    #[test]
    fn bad_lease_keys_are_rejected_with_line_key_and_reason() {
        let cases: [(&str, &str, &str, usize, &str); 9] = [
            ("cluster_cidr = \"10.42.0.0/16\"\n", GOSSIP, "network[0].host_prefix", 8, "needs host_prefix"),
            ("host_prefix = 24\n", GOSSIP, "network[0].cluster_cidr", 8, "needs cluster_cidr"),
            ("cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 24\n", "", "network[0].cluster_cidr", 8, "configure [gossip]"),
            (
                "cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 24\nsubnet = \"10.42.1.0/24\"\n",
                GOSSIP,
                "network[0].subnet",
                10,
                "has no `subnet`",
            ),
            (
                "cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 24\ngateway = \"10.42.1.1\"\n",
                GOSSIP,
                "network[0].gateway",
                10,
                "has no `gateway`",
            ),
            ("cluster_cidr = \"10.42.1.0/16\"\nhost_prefix = 24\n", GOSSIP, "network[0].cluster_cidr", 8, "host bits"),
            ("cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 31\n", GOSSIP, "network[].host_prefix", 9, "out of range"),
            ("cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 12\n", GOSSIP, "network[0].host_prefix", 9, "larger than the cluster range"),
            ("cluster_cidr = \"10.0.0.0/8\"\nhost_prefix = 30\n", GOSSIP, "network[0].host_prefix", 9, "more than 65536"),
        ];
        for (keys, gossip, key, line, reason) in cases {
            let e = parse(keys, gossip).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), (key, Some(line)), "{keys}: {e}");
            assert!(e.reason.contains(reason), "{keys}: {e}");
        }
        // Overlay networks own no subnet; host-subnet networks may lease theirs.
        let overlay = "[underlay]\naddress = \"198.18.0.1\"\n\n[[network]]\nvni = 5\ntap = \"vxs5\"\nbridge = \"br0\"\n\
                       cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 24\n";
        let e = Config::parse(&format!("{overlay}{GOSSIP}")).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("network[0].cluster_cidr", Some(8)), "{e}");
        assert!(e.reason.contains("owns no subnet"), "{e}");
        let hs = overlay.replace("tap = \"vxs5\"", "mode = \"host-subnet\"");
        assert!(Config::parse(&format!("{hs}{GOSSIP}")).unwrap().networks[0].lease.is_some());
        // Outside the gossip cluster CIDR, every other host would refuse the leases.
        let e =
            parse("cluster_cidr = \"10.42.0.0/16\"\nhost_prefix = 24\n", &format!("{GOSSIP}cluster_cidr = \"10.9.0.0/16\"\n")).unwrap_err();
        assert_eq!(e.key, "gossip.cluster_cidr", "{e}");
        assert!(e.reason.contains("lies outside"), "{e}");
        assert_eq!(e.line, Some(14), "the [gossip] key's line, not the network's cluster_cidr on line 8: {e}");
    }
}
