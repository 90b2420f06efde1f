//! The fixed schedule of the `periodic` source: ticks at `start + n × every` whatever the
//! polls take, and the count of the ticks skipped because a poll (with its retries) outlasted
//! them.

use std::time::Duration;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

/// Ticks every `every` from the first one (at once), never drifting: a
/// [`tokio::time::Interval`] with [`MissedTickBehavior::Skip`]. A tick that comes due while a
/// poll is still running fires as soon as the poll ends; the ticks after it that passed too
/// are skipped (counted, not made up for), and the next one is back on the grid.
#[derive(Debug)]
pub(super) struct Schedule {
    interval: Interval,
    every: Duration,
    ticks: u64,
}

/// One tick: its number (0 for the first) and the ticks skipped just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tick {
    pub(super) number: u64,
    pub(super) missed: u64,
}

impl Schedule {
    /// A schedule whose first tick is now. `every` must not be zero (checked by the source).
    pub(super) fn start(every: Duration) -> Schedule {
        let mut interval = interval_at(Instant::now(), every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Schedule { interval, every, ticks: 0 }
    }

    /// Wait for the next tick.
    pub(super) async fn tick(&mut self) -> Tick {
        let scheduled = self.interval.tick().await;
        let missed = missed(scheduled, Instant::now(), self.every);
        let number = self.ticks;
        // The skipped ticks have numbers too: tick numbers stay `elapsed / every`.
        self.ticks = self.ticks.saturating_add(1).saturating_add(missed);
        Tick { number, missed }
    }
}

/// The ticks of the grid `scheduled + n × every` (n ≥ 1) that passed by `now`: with
/// [`MissedTickBehavior::Skip`], a late tick fires once, at `now`, and the ones after it that
/// are already due never fire.
pub(super) fn missed(scheduled: Instant, now: Instant, every: Duration) -> u64 {
    let late = now.saturating_duration_since(scheduled);
    u64::try_from(late.as_nanos() / every.as_nanos().max(1)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_ticks_are_the_grid_points_passed() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(missed(t0, t0, s(10)), 0);
        assert_eq!(missed(t0, t0 + s(9), s(10)), 0);
        assert_eq!(missed(t0, t0 + s(10), s(10)), 1);
        assert_eq!(missed(t0, t0 + s(25), s(10)), 2);
        // A clock that went backwards is not late.
        assert_eq!(missed(t0 + s(5), t0, s(10)), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_tick_skips_the_ones_it_outlasted() {
        let start = Instant::now();
        let mut schedule = Schedule::start(Duration::from_secs(10));
        assert_eq!(schedule.tick().await, Tick { number: 0, missed: 0 });
        tokio::time::sleep(Duration::from_secs(25)).await;
        // Tick 1 (due at 10 s) fires late at 25 s; tick 2 (20 s) passed: skipped.
        assert_eq!(schedule.tick().await, Tick { number: 1, missed: 1 });
        assert_eq!(start.elapsed(), Duration::from_secs(25));
        // Back on the grid: 30 s.
        assert_eq!(schedule.tick().await, Tick { number: 3, missed: 0 });
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
