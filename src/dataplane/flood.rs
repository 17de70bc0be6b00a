//! A per-source rate limit on flooded (broadcast, unknown-unicast, multicast) frames.
//!
//! Why: head-end replication turns one frame from a TAP into one copy per peer, so one container
//! sending broadcasts (or frames to MACs nobody knows) multiplies its traffic by the size of the
//! cluster, on every host. Each source — the TAP port and the source MAC — gets a token bucket of
//! `rate` frames per second with a `burst`; frames above it are dropped and counted
//! (`flood_rate_limited`). Known unicast and ARP that proxy ARP answers locally never reach it.
//!
//! The bucket is kept as a GCRA "theoretical arrival time" (one `Instant` per source, no floats):
//! a frame is admitted when that time is at most `burst - 1` intervals ahead of `now`, and each
//! admitted frame moves it one interval (`1 s / rate`) on. A bucket whose time is not after
//! `now` is full again, so forgetting it changes nothing: that is what "idle" means below.
//!
//! The table of buckets is bounded (`max_sources`). When it is full, idle buckets are swept (at
//! most once per [`SWEEP_INTERVAL`], so the work per frame stays bounded under a flood of new
//! source MACs) and counted (`flood_sources_evicted`). Sources that still find no room share one
//! overflow bucket per port (counted `flood_overflow_frames`): a container cycling through random
//! source MACs to escape its own bucket is limited all the same.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::counters::Counters;
use super::switch::PortId;
use crate::wire::ethernet::EthernetAddress;

/// Default rate of flooded frames per source (frames per second).
pub const DEFAULT_RATE: u32 = 2000;
/// Default burst of flooded frames per source.
pub const DEFAULT_BURST: u32 = 500;
/// Default number of sources with their own bucket.
pub const DEFAULT_MAX_SOURCES: usize = 4096;
/// How often, at most, a full table is swept for idle buckets.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The flood rate limit: the `[flood]` section of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimit {
    /// Flooded frames per second per source.
    pub rate: u32,
    /// Frames a source may send at once above the rate.
    pub burst: u32,
    /// Sources with their own bucket; the rest share one per port.
    pub max_sources: usize,
}

impl Default for FloodLimit {
    fn default() -> Self {
        FloodLimit { rate: DEFAULT_RATE, burst: DEFAULT_BURST, max_sources: DEFAULT_MAX_SOURCES }
    }
}

/// The buckets of the flooding sources.
#[derive(Debug)]
pub struct FloodLimiter {
    limit: FloodLimit,
    /// Time between two frames at the rate.
    interval: Duration,
    /// How far ahead of `now` a bucket's arrival time may be (the burst).
    tolerance: Duration,
    /// Theoretical arrival time of each source's next frame.
    buckets: HashMap<(PortId, EthernetAddress), Instant>,
    /// The shared buckets of sources that found the table full, per port.
    overflow: HashMap<PortId, Instant>,
    last_sweep: Option<Instant>,
}

impl FloodLimiter {
    /// A limiter with no sources yet.
    pub fn new(limit: FloodLimit) -> Self {
        let rate = limit.rate.max(1);
        let interval = Duration::from_secs(1) / rate;
        let tolerance = interval * limit.burst.max(1).saturating_sub(1);
        FloodLimiter { limit, interval, tolerance, buckets: HashMap::new(), overflow: HashMap::new(), last_sweep: None }
    }

    /// The limit in force.
    pub fn limit(&self) -> FloodLimit {
        self.limit
    }

    /// Sources with their own bucket now.
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }

    /// Whether a frame that `src` on `port` wants flooded at `now` is within its rate; counts what
    /// the table does. // hot path
    pub fn admit(&mut self, now: Instant, port: PortId, src: EthernetAddress, counters: &mut Counters) -> bool {
        let (interval, tolerance) = (self.interval, self.tolerance);
        if let Some(tat) = self.buckets.get_mut(&(port, src)) {
            return conform(tat, now, interval, tolerance);
        }
        if self.buckets.len() >= self.limit.max_sources {
            self.sweep(now, counters);
        }
        if self.buckets.len() < self.limit.max_sources {
            self.buckets.insert((port, src), now + interval);
            return true;
        }
        counters.flood_overflow_frames += 1;
        conform(self.overflow.entry(port).or_insert(now), now, interval, tolerance)
    }

    /// Forget idle buckets, if the last sweep is old enough.
    fn sweep(&mut self, now: Instant, counters: &mut Counters) {
        if self.last_sweep.is_some_and(|t| now.saturating_duration_since(t) < SWEEP_INTERVAL) {
            return;
        }
        self.last_sweep = Some(now);
        let before = self.buckets.len();
        self.buckets.retain(|_, tat| *tat > now);
        self.overflow.retain(|_, tat| *tat > now);
        counters.flood_sources_evicted += (before - self.buckets.len()) as u64;
    }

    /// Forget the buckets of a port (its network was removed).
    pub fn forget_port(&mut self, port: PortId) {
        self.buckets.retain(|&(p, _), _| p != port);
        self.overflow.remove(&port);
    }
}

/// GCRA: admit a frame at `now` if the arrival time `tat` is within `tolerance`, and move it on.
// hot path
#[inline]
fn conform(tat: &mut Instant, now: Instant, interval: Duration, tolerance: Duration) -> bool {
    let t = (*tat).max(now);
    if t - now > tolerance {
        return false;
    }
    *tat = t + interval;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([0x02, 0, 0, 0, 0, n])
    }

    /// Frames admitted when `src` offers one every `gap` for `frames` frames.
    fn offer(l: &mut FloodLimiter, c: &mut Counters, t0: Instant, src: EthernetAddress, gap: Duration, frames: u32) -> u32 {
        (0..frames).filter(|&i| l.admit(t0 + gap * i, 0, src, c)).count() as u32
    }

    #[test]
    fn limits_a_source_to_rate_plus_burst() {
        let mut c = Counters::default();
        let t0 = Instant::now();
        let mut l = FloodLimiter::new(FloodLimit { rate: 100, burst: 10, max_sources: 16 });
        // 10 s at 1000 frames/s: the burst, then 100 per second.
        let admitted = offer(&mut l, &mut c, t0, mac(1), Duration::from_millis(1), 10_000);
        assert!((1000..=1011).contains(&admitted), "admitted {admitted}");
        // A quiet source beside it is unaffected.
        assert_eq!(offer(&mut l, &mut c, t0, mac(2), Duration::from_millis(20), 500), 500);
    }

    #[test]
    fn full_table_sweeps_idle_sources_then_shares_an_overflow_bucket() {
        let mut c = Counters::default();
        let t0 = Instant::now();
        let mut l = FloodLimiter::new(FloodLimit { rate: 10, burst: 5, max_sources: 4 });
        for n in 0..4 {
            assert!(l.admit(t0, 0, mac(n), &mut c));
        }
        // Full of busy sources: newcomers share one bucket of 5 frames.
        let admitted = (10..30).filter(|&n| l.admit(t0, 0, mac(n), &mut c)).count();
        assert_eq!(admitted, 5);
        assert_eq!(c.flood_overflow_frames, 20);
        assert_eq!(l.sources(), 4);
        // A second later all four are idle again: swept, and the newcomer gets its own bucket.
        assert!(l.admit(t0 + Duration::from_secs(1), 0, mac(40), &mut c));
        assert_eq!(c.flood_sources_evicted, 4);
        assert_eq!(l.sources(), 1);
    }
}
