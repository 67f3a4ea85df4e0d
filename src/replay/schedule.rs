//! The replay schedule: when each row of a timestamped series is due.
//!
//! Times are planned against the start of the schedule, never against the
//! previous send, so waiting and sending costs do not add up into drift.

use std::time::{Duration, Instant};

use arrow_array::Array;
use arrow_schema::{DataType, TimeUnit};

use crate::codec::time;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Gaps between event times divided by `speed`; rows within `window_us`
    /// of a group's first row go out with it.
    EventTime { speed: f64, window_us: i64 },
    /// One message of `rows` rows every `every`.
    Every { every: Duration, rows: usize },
    /// No waiting at all.
    Fast,
}

/// Event times of a datetime or date column in microseconds since the epoch.
pub fn event_micros(col: &dyn Array, name: &str) -> Result<Vec<Option<i64>>> {
    match col.data_type() {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
            time::epoch(col, name, TimeUnit::Microsecond)
        }
        other => Err(Error::Schema(format!(
            "time column {name:?} is {other}, not a datetime or date: convert it first \
             (polars: pl.col({name:?}).str.to_datetime()), or replay the CSV file, whose \
             datetimes tskafka parses"
        ))),
    }
}

/// Consecutive rows `[start, end)` that go out at one moment, and that moment's event time.
pub fn groups(
    times: &[Option<i64>],
    window_us: i64,
    name: &str,
) -> Result<Vec<(usize, usize, i64)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < times.len() {
        let Some(t0) = times[i] else {
            return Err(null_time(name, i));
        };
        let mut j = i + 1;
        while j < times.len() {
            match times[j] {
                Some(t) if t >= t0 && t - t0 <= window_us => j += 1,
                Some(_) => break,
                None => return Err(null_time(name, j)),
            }
        }
        out.push((i, j, t0));
        i = j;
    }
    Ok(out)
}

fn null_time(name: &str, row: usize) -> Error {
    Error::Schema(format!(
        "time column {name:?} is empty in row {row} of a chunk: every replayed row needs an \
         event time (drop or fill such rows first)"
    ))
}

/// Wall-clock plan of a replay; time spent paused shifts the rest of it.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    /// The replay's time paused when the plan started (not a shift of it).
    paused_before: Duration,
    paused: Duration,
    first_event: Option<i64>,
    speed: f64,
}

impl Clock {
    /// A plan starting now; `paused_so_far` is the replay's time paused until now.
    pub fn start(speed: f64, paused_so_far: Duration) -> Self {
        Self {
            start: Instant::now(),
            paused_before: paused_so_far,
            paused: Duration::ZERO,
            first_event: None,
            speed,
        }
    }

    /// How long after the start a row with event time `t` is due (the first
    /// row asked about is due at the start; rows earlier than it at once).
    pub fn event_offset(&mut self, t: i64) -> Duration {
        let t0 = *self.first_event.get_or_insert(t);
        let seconds = (t - t0).max(0) as f64 / self.speed / 1e6;
        Duration::from_secs_f64(seconds.min(1e9))
    }

    /// How long after the start message number `n` (from 0) of a fixed-interval replay is due.
    pub fn nth_offset(n: u64, every: Duration) -> Duration {
        every.mul_f64(n as f64)
    }

    pub fn at(&self, offset: Duration) -> Instant {
        self.start + self.paused + offset
    }

    /// The replay's total time paused: what came after the start shifts the plan.
    pub fn set_paused(&mut self, total: Duration) {
        self.paused = total.saturating_sub(self.paused_before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_a_tick_or_a_window() {
        let t = [Some(0), Some(0), Some(5), Some(9), Some(30), Some(20)];
        assert_eq!(
            groups(&t, 0, "t").unwrap(),
            vec![(0, 2, 0), (2, 3, 5), (3, 4, 9), (4, 5, 30), (5, 6, 20)]
        );
        assert_eq!(
            groups(&t, 10, "t").unwrap(),
            vec![(0, 4, 0), (4, 5, 30), (5, 6, 20)]
        );
        let err = groups(&[Some(1), None], 0, "when").unwrap_err().to_string();
        assert!(err.contains("\"when\"") && err.contains("row 1"), "{err}");
    }

    #[test]
    fn schedule_is_relative_to_the_start() {
        // Paused for 3 s before the start: that does not shift the plan.
        let mut c = Clock::start(10.0, Duration::from_secs(3));
        let start = c.at(Duration::ZERO);
        assert_eq!(c.event_offset(5_000_000), Duration::ZERO);
        assert_eq!(c.event_offset(15_000_000), Duration::from_secs(1));
        // Out of order: earlier than the first row, due at once.
        assert_eq!(c.event_offset(1_000_000), Duration::ZERO);
        c.set_paused(Duration::from_millis(3_500));
        let offset = c.event_offset(25_000_000);
        assert_eq!(c.at(offset), start + Duration::from_millis(2_500));
        assert_eq!(
            Clock::nth_offset(4, Duration::from_millis(250)),
            Duration::from_secs(1)
        );
    }
}
