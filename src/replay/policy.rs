//! What a replay's messages look like: whether their Kafka timestamps are
//! the event times or the times they are sent, and how many rows each holds.

use crate::client::producer::default_rows_per_message;
use crate::codec::Format;
use crate::error::{Error, Result};
use crate::replay::schedule::Pace;

/// What the messages' Kafka timestamps are asked to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamps {
    /// Event times, unless they are older than the topic keeps messages.
    Auto,
    /// The time column's values.
    Event,
    /// The time each message is sent.
    Send,
}

impl std::str::FromStr for Timestamps {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Timestamps::Auto),
            "event" => Ok(Timestamps::Event),
            "send" => Ok(Timestamps::Send),
            other => Err(Error::Config(format!(
                "timestamp must be 'auto', 'event' (the time column) or 'send' (when sent), \
                 got {other:?}"
            ))),
        }
    }
}

/// The choice made for a replay: event times or not, and what to warn about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamping {
    pub event_times: bool,
    pub warnings: Vec<String>,
}

/// Whether messages carry event times. Event times older than the topic's
/// retention would be deleted by the broker at once: with `Auto` the
/// messages are then stamped when sent (with a warning), with `Event` they
/// keep their times (with a warning). `retention_ms` asks the cluster (only
/// when the answer matters); `first_event_us` is the source's first event
/// time, `now_us` the time now, both in microseconds since the epoch.
pub fn stamping(
    asked: Timestamps,
    time_column: Option<&str>,
    topic: &str,
    retention_ms: impl FnOnce() -> Result<Option<i64>>,
    first_event_us: Option<i64>,
    now_us: i64,
) -> Result<Stamping> {
    let plain = |event_times| Stamping {
        event_times,
        warnings: Vec::new(),
    };
    let column = match (time_column, asked) {
        (None, Timestamps::Event) => {
            return Err(Error::Config("timestamp='event' needs time_column".into()))
        }
        (None, _) | (Some(_), Timestamps::Send) => return Ok(plain(false)),
        (Some(column), _) => column,
    };
    let retention = retention_ms()?;
    let expired = match (retention, first_event_us) {
        (Some(ms), Some(t)) => t < now_us - ms.saturating_mul(1_000),
        _ => false,
    };
    if !expired {
        return Ok(plain(true));
    }
    let days = retention.unwrap_or(0) as f64 / 86_400_000.0;
    Ok(match asked {
        Timestamps::Event => Stamping {
            event_times: true,
            warnings: vec![format!(
                "event times in {column:?} start before topic {topic:?}'s retention \
                 ({days:.1} days): the broker may delete these messages at \
                 once; pass timestamp='send' (or raise retention.ms)"
            )],
        },
        _ => Stamping {
            event_times: false,
            warnings: vec![format!(
                "event times in {column:?} start before topic {topic:?}'s retention \
                 ({days:.1} days), so messages are stamped with the time they are \
                 sent instead (the event time stays in the column); pass \
                 timestamp='event' to keep event times as Kafka timestamps"
            )],
        },
    })
}

/// Rows per message: what `every` sends at a time; else as asked, or many
/// (one per JSON message when sent flat out, as `send` does).
pub fn rows_per_message(pace: &Pace, format: Format, asked: Option<usize>) -> usize {
    match pace {
        Pace::Every { rows, .. } => *rows,
        Pace::EventTime { .. } => asked.unwrap_or(10_000),
        Pace::Fast => asked.unwrap_or(default_rows_per_message(format)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const DAY_US: i64 = 86_400_000_000;
    const NOW: i64 = 20_000 * DAY_US;

    fn never_asked() -> Result<Option<i64>> {
        panic!("retention asked for although it cannot matter")
    }

    #[test]
    fn send_times_or_no_time_column_need_no_retention() {
        let s = stamping(Timestamps::Send, Some("t"), "x", never_asked, Some(0), NOW).unwrap();
        assert!(!s.event_times && s.warnings.is_empty());
        let s = stamping(Timestamps::Auto, None, "x", never_asked, None, NOW).unwrap();
        assert!(!s.event_times);
        let err = stamping(Timestamps::Event, None, "x", never_asked, None, NOW).unwrap_err();
        assert_eq!(err.to_string(), "timestamp='event' needs time_column");
    }

    #[test]
    fn event_times_within_retention_or_without_one_are_kept() {
        let week_ms = Some(7 * 86_400_000);
        let recent = Some(NOW - DAY_US);
        let s = stamping(
            Timestamps::Auto,
            Some("t"),
            "x",
            || Ok(week_ms),
            recent,
            NOW,
        )
        .unwrap();
        assert_eq!(
            s,
            Stamping {
                event_times: true,
                warnings: vec![]
            }
        );
        let old = Some(NOW - 30 * DAY_US);
        let s = stamping(Timestamps::Auto, Some("t"), "x", || Ok(None), old, NOW).unwrap();
        assert!(s.event_times && s.warnings.is_empty());
    }

    #[test]
    fn event_times_older_than_retention_warn() {
        let week_ms = Some(7 * 86_400_000);
        let old = Some(NOW - 30 * DAY_US);
        let s = stamping(Timestamps::Auto, Some("t"), "x", || Ok(week_ms), old, NOW).unwrap();
        assert!(!s.event_times);
        assert!(
            s.warnings[0].contains("(7.0 days), so messages are stamped"),
            "{s:?}"
        );
        let s = stamping(Timestamps::Event, Some("t"), "x", || Ok(week_ms), old, NOW).unwrap();
        assert!(s.event_times);
        assert!(
            s.warnings[0].contains("the broker may delete these messages"),
            "{s:?}"
        );
        // A failed lookup (Ctrl+C) ends the start.
        let err = stamping(
            Timestamps::Auto,
            Some("t"),
            "x",
            || Err(Error::Stopped),
            old,
            NOW,
        );
        assert!(matches!(err, Err(Error::Stopped)));
    }

    #[test]
    fn timestamps_are_named() {
        assert_eq!("event".parse::<Timestamps>().unwrap(), Timestamps::Event);
        let err = "kafka".parse::<Timestamps>().unwrap_err().to_string();
        assert!(
            err.starts_with("timestamp must be 'auto', 'event'"),
            "{err}"
        );
    }

    #[test]
    fn rows_per_message_defaults() {
        let every = Pace::Every {
            every: Duration::from_secs(1),
            rows: 3,
        };
        let event = Pace::EventTime {
            speed: 1.0,
            window_us: 0,
        };
        assert_eq!(rows_per_message(&every, Format::Json, Some(9)), 3);
        assert_eq!(rows_per_message(&event, Format::Json, None), 10_000);
        assert_eq!(rows_per_message(&Pace::Fast, Format::Json, None), 1);
        assert_eq!(rows_per_message(&Pace::Fast, Format::Arrow, None), 10_000);
        assert_eq!(rows_per_message(&Pace::Fast, Format::Json, Some(50)), 50);
    }
}
