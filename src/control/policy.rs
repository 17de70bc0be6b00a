//! What a member may claim about itself: checks applied to every record before it is believed.
//!
//! A signed record ([`super::signing`]) proves who wrote it, not that its claims are sane. A
//! member holding the cluster key could still announce `0.0.0.0/1` (host-subnet mode would
//! install it as a kernel route and pull the host's traffic into the overlay), a subnet over the
//! underlay, or an epoch so far in the future that no honest restart can ever beat it. So:
//!
//! - Subnets must lie inside `[gossip] cluster_cidr` when it is configured. Without it, prefixes
//!   shorter than /[`MIN_PREFIX_LEN`] (default-route-like) are refused. IPv6 subnets likewise
//!   inside `cluster_cidr6`, else no shorter than /[`MIN_PREFIX_LEN6`]. Either way a subnet that
//!   contains a member's underlay address (or IPv6 `address6`) is refused: routing it would cut
//!   the underlay.
//! - An epoch (record or SWIM identity) more than [`MAX_EPOCH_AHEAD`] ahead of this host's clock
//!   is refused. Epochs are wall-clock milliseconds shifted left by 20 bits plus random low bits
//!   (see [`crate::ipsec::start_epoch`]), so the bound is computed on the millisecond part.
//! - Claim ages (`since`) count from no earlier than when this host first trusted the claimant
//!   (see [`super::trust`]), so a newcomer cannot win every conflict by claiming `since = 0`.
//!
//! Refused claims and records are counted by [`RefuseReason`].

use std::net::IpAddr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::counters::reasons;

/// Shortest prefix accepted when no cluster CIDR is configured.
pub const MIN_PREFIX_LEN: u8 = 8;
/// Shortest IPv6 prefix accepted when no IPv6 cluster CIDR is configured (a /16 is already far
/// more than any cluster needs; anything shorter looks like a default route).
pub const MIN_PREFIX_LEN6: u8 = 16;
/// How far ahead of this host's clock an epoch may be (clock skew between hosts).
pub const MAX_EPOCH_AHEAD: Duration = Duration::from_secs(3600);
/// Low bits of an epoch that are random rather than time.
const EPOCH_RANDOM_BITS: u32 = 20;

reasons! {
    /// Why a record, a claim in it, or a request was refused.
    pub enum RefuseReason;
    /// One counter per [`RefuseReason`].
    pub struct RefusedCounts;
    /// A record whose signature does not verify under the key it names (or names none).
    BadSignature => "bad_signature",
    /// A record signed by another key than the one first trusted for its name.
    KeyChanged => "key_changed",
    /// A record whose underlay differs from the one first trusted for its name.
    UnderlayChanged => "underlay_changed",
    /// A record or SWIM identity with an epoch too far in the future.
    FutureEpoch => "future_epoch",
    /// A subnet outside the configured cluster CIDR (`cluster_cidr6` for IPv6 subnets).
    SubnetOutsideCluster => "subnet_outside_cluster",
    /// A subnet with a prefix shorter than /8 (IPv6: /16) while no cluster CIDR is configured.
    SubnetTooBroad => "subnet_too_broad",
    /// A subnet containing a member's underlay address.
    SubnetOverUnderlay => "subnet_over_underlay",
    /// A record request from an address that is not a live member.
    PullFromStranger => "pull_from_stranger",
    /// A record request answered already within the probe period.
    PullRateLimited => "pull_rate_limited",
    /// A reply to a record request cut to the per-request bound.
    PullReplyCut => "pull_reply_cut",
}

/// The subnet rules of one cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// Every IPv4 subnet must lie inside this prefix, when set.
    pub cluster_cidr: Option<Ipv4Net>,
    /// Every IPv6 subnet must lie inside this prefix, when set.
    pub cluster_cidr6: Option<Ipv6Net>,
}

impl ClaimPolicy {
    /// Checks one subnet claim against the cluster CIDR of its family (or the floor) and the
    /// `underlays` (every member's underlay address and `address6`).
    pub fn check_subnet(&self, net: &IpNet, underlays: &[IpAddr]) -> Result<(), RefuseReason> {
        let (inside, floor) = match net {
            IpNet::V4(n) => (self.cluster_cidr.map(|c| c.contains(n)), MIN_PREFIX_LEN),
            IpNet::V6(n) => (self.cluster_cidr6.map(|c| c.contains(n)), MIN_PREFIX_LEN6),
        };
        match inside {
            Some(false) => return Err(RefuseReason::SubnetOutsideCluster),
            None if net.prefix_len() < floor => return Err(RefuseReason::SubnetTooBroad),
            _ => {}
        }
        if underlays.iter().any(|u| net.contains(u)) {
            return Err(RefuseReason::SubnetOverUnderlay);
        }
        Ok(())
    }
}

/// The largest epoch believable `elapsed` after a start with `local_epoch`.
pub fn max_epoch(local_epoch: u64, elapsed: Duration) -> u64 {
    let ahead = elapsed.saturating_add(MAX_EPOCH_AHEAD).as_millis().min(u128::from(u64::MAX)) as u64;
    let millis = (local_epoch >> EPOCH_RANDOM_BITS).saturating_add(ahead);
    millis
        .checked_shl(EPOCH_RANDOM_BITS)
        .filter(|e| e >> EPOCH_RANDOM_BITS == millis)
        .map_or(u64::MAX, |e| e | ((1 << EPOCH_RANDOM_BITS) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_need_the_cluster_cidr_or_at_least_a_slash_8_and_never_cover_an_underlay() {
        let ul = [IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 1))];
        let open = ClaimPolicy::default();
        assert_eq!(open.check_subnet(&net("0.0.0.0/1"), &ul), Err(RefuseReason::SubnetTooBroad));
        assert_eq!(open.check_subnet(&net("0.0.0.0/0"), &ul), Err(RefuseReason::SubnetTooBroad));
        assert_eq!(open.check_subnet(&net("10.0.0.0/8"), &ul), Ok(()));
        assert_eq!(open.check_subnet(&net("198.18.0.0/24"), &ul), Err(RefuseReason::SubnetOverUnderlay));
        let closed = ClaimPolicy { cluster_cidr: Some("10.42.0.0/16".parse().unwrap()), cluster_cidr6: None };
        assert_eq!(closed.check_subnet(&net("10.42.3.0/24"), &ul), Ok(()));
        assert_eq!(closed.check_subnet(&net("10.43.3.0/24"), &ul), Err(RefuseReason::SubnetOutsideCluster));
        assert_eq!(closed.check_subnet(&net("10.0.0.0/8"), &ul), Err(RefuseReason::SubnetOutsideCluster));
    }

    #[test]
    fn ipv6_subnets_have_their_own_cluster_cidr_and_floor() {
        let ul = [IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 1)), "fd00:18::1".parse().unwrap()];
        let open = ClaimPolicy::default();
        assert_eq!(open.check_subnet(&net("::/0"), &ul), Err(RefuseReason::SubnetTooBroad));
        assert_eq!(open.check_subnet(&net("2000::/3"), &ul), Err(RefuseReason::SubnetTooBroad));
        assert_eq!(open.check_subnet(&net("fd00:42:1::/64"), &ul), Ok(()));
        assert_eq!(open.check_subnet(&net("fd00:18::/64"), &ul), Err(RefuseReason::SubnetOverUnderlay));
        let closed =
            ClaimPolicy { cluster_cidr: Some("10.42.0.0/16".parse().unwrap()), cluster_cidr6: Some("fd00:42::/48".parse().unwrap()) };
        assert_eq!(closed.check_subnet(&net("fd00:42:0:7::/64"), &ul), Ok(()));
        assert_eq!(closed.check_subnet(&net("fd00:43::/64"), &ul), Err(RefuseReason::SubnetOutsideCluster));
        // The IPv4 cluster CIDR says nothing about IPv6 subnets, and the reverse.
        let v4_only = ClaimPolicy { cluster_cidr: Some("10.42.0.0/16".parse().unwrap()), cluster_cidr6: None };
        assert_eq!(v4_only.check_subnet(&net("fd00:43::/64"), &ul), Ok(()));
    }

    #[test]
    fn epochs_are_bounded_by_the_local_clock_plus_skew() {
        let local = crate::ipsec::start_epoch(1_700_000_000_000);
        let bound = max_epoch(local, Duration::from_secs(60));
        let later = crate::ipsec::start_epoch(1_700_000_000_000 + 60_000 + 3_599_000);
        assert!(later <= bound);
        let too_late = crate::ipsec::start_epoch(1_700_000_000_000 + 60_000 + 3_601_000);
        assert!(too_late > bound);
        assert_eq!(max_epoch(u64::MAX, Duration::from_secs(1)), u64::MAX);
        assert!(max_epoch(1000, Duration::ZERO) < u64::MAX / 2);
    }
}
