//! Bounded adaptive busy-polling: after data-path work the loop polls without sleeping for a
//! short window before it blocks, so the next frame of a conversation (the reply to a request
//! just forwarded, the next ACK) is picked up without a scheduler wake-up. Each of the four
//! wake-ups of a round trip through two daemons costs on the order of 25 us on a small VM; a
//! frame that arrives inside the window costs none.
//!
//! The window adapts the way KVM's halt-polling does (`halt_poll_ns` grow/shrink): it starts at
//! the configured maximum; when the loop had to block and work came back within the maximum
//! (spinning longer would have caught it), the window doubles (from [`MIN_WINDOW`], up to the
//! maximum); when a block lasted longer than the maximum (the traffic is sparse: spinning was
//! wasted), it halves, and below [`MIN_WINDOW`] it is off until work comes back quickly again.
//! Spinning only ever follows data-path work, so an idle daemon never spins: its CPU stays at what
//! its timers cost. The maximum is `[underlay] busy_poll_us` (0 turns all of this off).
//!
//! Pure state over `now` arguments, so the rules are tested on made-up instants, not sleeps.

use std::time::{Duration, Instant};

/// Smallest useful window; a window that shrinks below it is off.
pub const MIN_WINDOW: Duration = Duration::from_micros(10);

/// The busy-poll state of the loop.
#[derive(Debug, Clone)]
pub struct BusyPoll {
    max: Duration,
    window: Duration,
    /// When the loop last did data-path work.
    last_work: Option<Instant>,
    /// When the loop last started a blocking wait (after its window ran out).
    blocked_at: Option<Instant>,
}

impl BusyPoll {
    /// Busy-polling for at most `max` after data-path work (`Duration::ZERO`: never).
    pub fn new(max: Duration) -> Self {
        BusyPoll { max, window: max, last_work: None, blocked_at: None }
    }

    /// The current window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long the next wait may block at `now`, given that the loop would otherwise sleep for
    /// `sleep`: zero while inside the window after the last data-path work.
    pub fn timeout(&mut self, now: Instant, sleep: Duration) -> Duration {
        let spinning = self.last_work.is_some_and(|t| now.saturating_duration_since(t) < self.window);
        if spinning {
            return Duration::ZERO;
        }
        if sleep > Duration::ZERO && self.blocked_at.is_none() {
            self.blocked_at = Some(now);
        }
        sleep
    }

    /// A wait ended at `now`; `work` says whether a data-path descriptor was ready.
    pub fn woke(&mut self, now: Instant, work: bool) {
        if !work {
            return;
        }
        if let Some(blocked) = self.blocked_at.take() {
            if self.max < MIN_WINDOW {
                self.window = self.max;
            } else if now.saturating_duration_since(blocked) <= self.max {
                // Spinning a little longer would have caught this one.
                self.window = (self.window * 2).clamp(MIN_WINDOW, self.max);
            } else {
                self.window /= 2;
                if self.window < MIN_WINDOW {
                    self.window = Duration::ZERO;
                }
            }
        }
        self.last_work = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn spins_only_after_work_and_only_inside_the_window() {
        let t0 = Instant::now();
        let mut b = BusyPoll::new(50 * US);
        let sleep = Duration::from_millis(500);
        assert_eq!(b.timeout(t0, sleep), sleep, "idle: never spins");
        b.woke(t0 + 10 * US, false);
        assert_eq!(b.timeout(t0 + 11 * US, sleep), sleep, "a timer wake-up is not work");
        b.woke(t0 + Duration::from_secs(1), true);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.timeout(t1 + 20 * US, sleep), Duration::ZERO, "inside the window after work");
        assert_eq!(b.timeout(t1 + 60 * US, sleep), sleep, "past the window: blocks");
    }

    #[test]
    fn window_shrinks_on_sparse_traffic_and_grows_back_when_work_returns_quickly() {
        let mut t = Instant::now();
        let mut b = BusyPoll::new(80 * US);
        let sleep = Duration::from_millis(500);
        b.woke(t, true);
        // Sparse traffic: every wait after the window blocks for 10 ms.
        for expected in [40, 20, 10, 0] {
            t += b.window() + US;
            assert_eq!(b.timeout(t, sleep), sleep);
            t += Duration::from_millis(10);
            b.woke(t, true);
            assert_eq!(b.window(), expected * US);
        }
        // Off: no spinning at all, even right after work.
        assert_eq!(b.timeout(t, sleep), sleep);
        // Work comes back within the maximum after blocking: the window grows again.
        t += 30 * US;
        b.woke(t, true);
        assert_eq!(b.window(), MIN_WINDOW);
        for expected in [20, 40, 80, 80] {
            t += b.window() + US;
            assert_eq!(b.timeout(t, sleep), sleep);
            t += 30 * US;
            b.woke(t, true);
            assert_eq!(b.window(), expected * US);
        }
    }

    #[test]
    fn zero_turns_it_off() {
        let t = Instant::now();
        let mut b = BusyPoll::new(Duration::ZERO);
        b.woke(t, true);
        assert_eq!(b.timeout(t, Duration::from_millis(3)), Duration::from_millis(3));
        b.woke(t + US, true);
        assert_eq!(b.window(), Duration::ZERO);
    }
}
