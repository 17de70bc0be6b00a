//! Bounded adaptive busy-polling: after data-path work the loop polls without sleeping for a
//! short window before it blocks, so the next frame of a conversation (the reply to a request
//! just forwarded, the next ACK) is picked up without a scheduler wake-up. Each of the four
//! wake-ups of a round trip through two daemons costs on the order of 25 us on a small VM; a
//! frame that arrives inside the window costs none.
//!
//! The window adapts, in the spirit of KVM's halt-polling (`halt_poll_ns` grow/shrink), but
//! judged by what spinning achieved rather than by how long the loop then slept (a request/reply
//! conversation always sleeps long between requests, yet catches every reply by spinning):
//! - a spin that runs out without work is wasted; after [`WASTED_BEFORE_SHRINK`] wasted spins in a
//!   row the window halves, and below [`MIN_WINDOW`] it is off (one-way, sparse traffic);
//! - a spin that finds work resets that count;
//! - when the loop had to block and work came back within the maximum (a longer spin would have
//!   caught it), the window doubles, from [`MIN_WINDOW`] up to the maximum.
//!
//! Spinning only ever follows data-path work, so an idle daemon never spins: its CPU stays at what
//! its timers cost. The maximum is `[underlay] busy_poll_us` (0 turns all of this off).
//!
//! A spin round that finds nothing yields the core (`sched_yield`) before polling again: on a
//! small machine the frame being waited for is produced by a process that needs this very core
//! (the peer daemon, the container's TCP stack), and a spinner that does not yield only delays
//! it. Measured on the 2-vCPU lab (release build, machine shared with other builds, ping every
//! 5 ms between containers on two daemons): RTT p50 75-81 us with busy-polling off, 30-34 us with
//! a 50 us window (about 90 % of the pings' replies caught while spinning); without the
//! yield the spinning made it worse (p50 75-167 us, almost nothing caught). Idle: 0 CPU ticks in
//! 10 s either way. TCP throughput unchanged within the noise.
//!
//! What the window cannot catch: the first frame of an exchange. Timed per hop with captures on
//! both hosts' container ports and underlay links (2-vCPU lab, 1 ms pings, load 4-6), the reply
//! legs were short with the window on (second daemon, TAP to underlay: 8-10 us; first daemon,
//! underlay to TAP: 10-12 us, against 36 us with busy_poll_us = 0), while the first daemon's
//! pickup of the request from its TAP took 26-78 us: it has slept since the previous exchange,
//! and when the pinging process runs on the other vCPU the wake-up crosses vCPUs (pinned there:
//! 62-71 us; pinned to the daemon's vCPU: 28-33 us, RTT p99 4-5 ms against 0.2 ms). With the
//! pinger's own wake-up that is most of a round trip; kernel vxlan has neither wake-up.
//!
//! A maximum long enough to span the gap between the frames of a conversation does catch the
//! first frame too: with `busy_poll_us = 2000` and 1 ms echoes the window grows to cover the gap,
//! the first daemon is already polling when the next request comes, and `vxswitch bench`
//! measured RTT p50 56 us against 140 us at the default (kernel vxlan 12 us; full run in
//! `docs/bench.md`) and p99 200 against 363 us. The price is the spinning itself: 95 % of a core
//! per daemon while the 1 kpps of echoes flowed, against 5.8 % (a 1000 us maximum, at the edge
//! of the 1 ms gap, gave p50 58 us for 42 % of a core in a loaded run), and under heavy CPU
//! contention a longer p99 (a yielding spinner waits behind other runnable work where a sleeper
//! woken by the packet would preempt it).
//! Hence a short default, and the long window as an operator's choice (README, "Latency").
//!
//! Pure state over `now` arguments, so the rules are tested on made-up instants, not sleeps.

use std::time::{Duration, Instant};

/// Smallest useful window; a window that shrinks below it is off.
pub const MIN_WINDOW: Duration = Duration::from_micros(10);
/// Wasted spins in a row (no work found) before the window halves.
pub const WASTED_BEFORE_SHRINK: u32 = 16;

/// The busy-poll state of the loop.
#[derive(Debug, Clone)]
pub struct BusyPoll {
    max: Duration,
    window: Duration,
    /// When the loop last did data-path work.
    last_work: Option<Instant>,
    /// The loop has spun since the last work (and found nothing yet).
    spinning: bool,
    /// Spins in a row that ran out without work.
    wasted: u32,
    /// When the loop last started a blocking wait (after its window ran out).
    blocked_at: Option<Instant>,
}

impl BusyPoll {
    /// Busy-polling for at most `max` after data-path work (`Duration::ZERO`: never).
    pub fn new(max: Duration) -> Self {
        BusyPoll { max, window: max, last_work: None, spinning: false, wasted: 0, blocked_at: None }
    }

    /// The current window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long the next wait may block at `now`, given that the loop would otherwise sleep for
    /// `sleep`: zero while inside the window after the last data-path work.
    pub fn timeout(&mut self, now: Instant, sleep: Duration) -> Duration {
        if self.last_work.is_some_and(|t| now.saturating_duration_since(t) < self.window) {
            self.spinning = true;
            return Duration::ZERO;
        }
        if std::mem::take(&mut self.spinning) {
            self.wasted += 1;
            if self.wasted >= WASTED_BEFORE_SHRINK {
                self.wasted = 0;
                self.window /= 2;
                if self.window < MIN_WINDOW {
                    self.window = Duration::ZERO;
                }
            }
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
        if std::mem::take(&mut self.spinning) {
            self.wasted = 0;
        }
        let blocked = self.blocked_at.take().map(|b| now.saturating_duration_since(b));
        if self.max >= MIN_WINDOW && blocked.is_some_and(|b| b <= self.max) {
            // Spinning a little longer would have caught this one.
            self.window = (self.window * 2).clamp(MIN_WINDOW, self.max);
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
    fn request_reply_keeps_the_window_and_sparse_one_way_traffic_turns_it_off() {
        let mut t = Instant::now();
        let mut b = BusyPoll::new(80 * US);
        let sleep = Duration::from_millis(500);
        // A ping every 5 ms: the reply comes 30 us after the request (caught by spinning), then
        // the spin after the reply runs out. Half the spins find work: the window stays.
        for _ in 0..100 {
            b.woke(t, true); // request
            t += 30 * US;
            assert_eq!(b.timeout(t - US, sleep), Duration::ZERO);
            b.woke(t, true); // reply, caught while spinning
            assert_eq!(b.timeout(t + US, sleep), Duration::ZERO, "spins after the reply too");
            t += b.window() + US;
            assert_eq!(b.timeout(t, sleep), sleep, "window over: blocks");
            t += Duration::from_millis(5);
        }
        assert_eq!(b.window(), 80 * US);
        // One-way frames 10 ms apart: every spin is wasted, the window halves every 16 of them.
        let mut windows = Vec::new();
        for _ in 0..(5 * WASTED_BEFORE_SHRINK) {
            b.woke(t, true);
            assert!(b.window().is_zero() || b.timeout(t, sleep).is_zero());
            t += b.window() + US;
            assert_eq!(b.timeout(t, sleep), sleep);
            windows.push(b.window().as_micros());
            t += Duration::from_millis(10);
        }
        windows.dedup();
        assert_eq!(windows, [80, 40, 20, 10, 0]);
        // Off: no spinning at all, even right after work...
        b.woke(t, true);
        assert_eq!(b.timeout(t, sleep), sleep);
        // ...until work comes back within the maximum after blocking: the window grows again.
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
