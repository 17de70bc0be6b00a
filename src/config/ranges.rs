//! The range of every numeric configuration key, in one table.
//!
//! Every number in the file is read as a 64-bit integer and checked here before it is converted
//! to its run-time type, so a value that passes `vxswitch check` can never overflow later (an
//! `Instant + Duration` with a huge ageing time, a truncating cast of a port). The README's
//! configuration reference lists the same table.

use std::ops::RangeInclusive;

use toml::Spanned;

use super::{line_of, ConfigError};

/// A numeric key and the values it accepts.
#[derive(Debug, Clone, Copy)]
pub struct NumericKey {
    /// The key as the error messages name it (`fdb.ageing_secs`; `network[].mtu` for networks).
    pub key: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
}

impl NumericKey {
    const fn new(key: &'static str, min: u64, max: u64) -> Self {
        NumericKey { key, min, max }
    }

    /// The accepted values.
    pub fn range(&self) -> RangeInclusive<u64> {
        self.min..=self.max
    }

    /// Checks `value`, returning the reason when it is outside the range.
    pub fn check(&self, value: u64) -> Result<u64, String> {
        if self.range().contains(&value) {
            Ok(value)
        } else {
            Err(format!("{value} is out of range ({}..={})", self.min, self.max))
        }
    }
}

/// `underlay.port`.
pub const UNDERLAY_PORT: NumericKey = NumericKey::new("underlay.port", 1, 65535);
/// `underlay.mtu`.
pub const UNDERLAY_MTU: NumericKey = NumericKey::new("underlay.mtu", 576, 65535);
/// `underlay.busy_poll_us`: 0 (off) to 10 ms.
pub const UNDERLAY_BUSY_POLL_US: NumericKey = NumericKey::new("underlay.busy_poll_us", 0, 10_000);
/// `underlay.priority_boost`: how far below nice 0 the daemon runs, 0 (as started) to 20 (nice -20).
pub const UNDERLAY_PRIORITY_BOOST: NumericKey = NumericKey::new("underlay.priority_boost", 0, 20);
/// `underlay.workers`: the daemon thread alone, or with one send thread.
pub const UNDERLAY_WORKERS: NumericKey = NumericKey::new("underlay.workers", 1, 2);
/// `fdb.ageing_secs`: up to a week.
pub const FDB_AGEING_SECS: NumericKey = NumericKey::new("fdb.ageing_secs", 1, 604_800);
/// `fdb.max_entries`.
pub const FDB_MAX_ENTRIES: NumericKey = NumericKey::new("fdb.max_entries", 1, 10_000_000);
/// `flood.rate`: flooded frames per second per source.
pub const FLOOD_RATE: NumericKey = NumericKey::new("flood.rate", 1, 10_000_000);
/// `flood.burst`: frames above the rate a source may send at once.
pub const FLOOD_BURST: NumericKey = NumericKey::new("flood.burst", 1, 1_000_000);
/// `flood.max_sources`: sources with their own bucket.
pub const FLOOD_MAX_SOURCES: NumericKey = NumericKey::new("flood.max_sources", 16, 1_000_000);
/// `network[].vni` (24 bits).
pub const NETWORK_VNI: NumericKey = NumericKey::new("network[].vni", 0, 0x00ff_ffff);
/// `network[].mtu`; the upper bound also depends on the underlay MTU and the encapsulation.
pub const NETWORK_MTU: NumericKey = NumericKey::new("network[].mtu", 68, 65535);
/// `network[].tap_mtu`: the TAP device's MTU (at least the network's).
pub const NETWORK_TAP_MTU: NumericKey = NumericKey::new("network[].tap_mtu", 68, 65535);
/// `network[].mss_clamp` as a number: Linux's smallest MSS (88) to the largest over IPv4.
pub const NETWORK_MSS_CLAMP: NumericKey = NumericKey::new("network[].mss_clamp", 88, 65495);
/// `network[].host_prefix`: the prefix length of each leased host subnet.
pub const NETWORK_HOST_PREFIX: NumericKey = NumericKey::new("network[].host_prefix", 1, 30);
/// `esp.port`.
pub const ESP_PORT: NumericKey = NumericKey::new("esp.port", 1, 65535);
/// `esp.replay_window` (packets).
pub const ESP_REPLAY_WINDOW: NumericKey = NumericKey::new("esp.replay_window", 64, crate::replay::MAX_WINDOW as u64);
/// `esp.rekey_secs`: 10 s to a day.
pub const ESP_REKEY_SECS: NumericKey = NumericKey::new("esp.rekey_secs", 10, 86_400);
/// `gossip.interval_ms`.
pub const GOSSIP_INTERVAL_MS: NumericKey = NumericKey::new("gossip.interval_ms", 10, 60_000);
/// `gossip.suspect_timeout_ms`: up to 10 minutes.
pub const GOSSIP_SUSPECT_TIMEOUT_MS: NumericKey = NumericKey::new("gossip.suspect_timeout_ms", 100, 600_000);
/// `gossip.dead_grace_secs`: up to a day.
pub const GOSSIP_DEAD_GRACE_SECS: NumericKey = NumericKey::new("gossip.dead_grace_secs", 0, 86_400);
/// `gossip.mtu`.
pub const GOSSIP_MTU: NumericKey = NumericKey::new("gossip.mtu", 512, 65000);

/// Every numeric key.
pub const ALL: [NumericKey; 22] = [
    UNDERLAY_PORT,
    UNDERLAY_MTU,
    UNDERLAY_BUSY_POLL_US,
    UNDERLAY_PRIORITY_BOOST,
    UNDERLAY_WORKERS,
    FDB_AGEING_SECS,
    FDB_MAX_ENTRIES,
    FLOOD_RATE,
    FLOOD_BURST,
    FLOOD_MAX_SOURCES,
    NETWORK_VNI,
    NETWORK_MTU,
    NETWORK_TAP_MTU,
    NETWORK_MSS_CLAMP,
    NETWORK_HOST_PREFIX,
    ESP_PORT,
    ESP_REPLAY_WINDOW,
    ESP_REKEY_SECS,
    GOSSIP_INTERVAL_MS,
    GOSSIP_SUSPECT_TIMEOUT_MS,
    GOSSIP_DEAD_GRACE_SECS,
    GOSSIP_MTU,
];

/// Checks an optional value of key `k`, naming the line it is on when it is out of range.
pub(super) fn checked(text: &str, v: &Option<Spanned<u64>>, k: NumericKey) -> Result<Option<u64>, ConfigError> {
    v.as_ref()
        .map(|v| {
            k.check(*v.get_ref()).map_err(|reason| ConfigError {
                file: None,
                line: Some(line_of(text, v.span().start)),
                key: k.key.into(),
                reason,
            })
        })
        .transpose()
}
