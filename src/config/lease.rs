//! `cluster_cidr` and `host_prefix` of a `[[network]]`: the host leases its subnet from a
//! cluster range through gossip instead of configuring one (see [`crate::node::lease`]).
//!
//! Checked here, next to but apart from the configured-subnet keys: a leased network has no
//! `subnet`, `gateway` or `range_*` (the gateway is the first address of whatever subnet the
//! host holds), it needs `[gossip]` (the lease is agreed there), and it is a routed network
//! (host-subnet leases would need the kernel route and bridge address to follow the lease).

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
    if mode != Mode::Routed {
        return Err(err(cidr.span(), "cluster_cidr", format!("subnet leases are for routed networks; a {mode} network needs `subnet`")));
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
