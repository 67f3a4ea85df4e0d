//! Replay: a timestamped source sent to a topic on its own native thread, at
//! the pace of its event times (or a fixed interval, or flat out).
//!
//! - [`source`]: the rows, from a CSV file or any Arrow stream.
//! - [`schedule`]: when each message is due. Rows sharing an event time (or
//!   a window) go out together; times are planned against the schedule's
//!   start, and time spent paused shifts what is left.
//! - [`policy`]: whether messages carry event times as their Kafka
//!   timestamps (not when the topic's retention would delete them at once),
//!   and how many rows each message holds.
//! - [`job`]: the thread. A paced replay sends its first message at once and
//!   starts the schedule when that message is acknowledged, so a consumer
//!   sees every message on time.
//!
//! [`Replay::start`] checks everything it can before the thread starts: the
//! options, the source's time column, that the topic exists.

pub mod job;
pub mod policy;
pub mod schedule;
pub mod source;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_schema::DataType;
use rdkafka::producer::{Producer as _, ThreadedProducer};

use job::{lock, Job, Phase, Shared};
pub use policy::Timestamps;
pub use schedule::Pace;
pub use source::Source;

use crate::client::producer::batch::{max_message_bytes, message_headers};
use crate::client::{self, Context, Settings};
use crate::codec::csv::BadRow;
use crate::codec::{EncodeOptions, Encoder, Format};
use crate::error::{Error, Result};
use crate::wait::{self, Check};

/// How long a replay waits for the topic's retention before assuming none.
const RETENTION_WAIT: Duration = Duration::from_secs(3);

/// How a replay paces and encodes its messages.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// The event-time column (a datetime or date).
    pub time_column: Option<String>,
    /// Event-time gaps divided by this (None: as fast as possible).
    pub speed: Option<f64>,
    /// Seconds between messages instead of event times.
    pub every: Option<f64>,
    /// Rows within this many seconds of a message's first row go with it.
    pub window: f64,
    pub rows_per_message: Option<usize>,
    pub key: Vec<String>,
    pub timestamps: Timestamps,
    pub format: Format,
    pub schema_header: bool,
    pub headers: Option<HashMap<String, Vec<u8>>>,
    /// Seconds to reach the cluster and find the topic.
    pub timeout: f64,
    /// Avro / JSON Schema: the subject (None: `<topic>-value`) and schema text.
    pub subject: Option<String>,
    pub schema: Option<String>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            time_column: None,
            speed: Some(1.0),
            every: None,
            window: 0.0,
            rows_per_message: None,
            key: Vec::new(),
            timestamps: Timestamps::Auto,
            format: Format::Arrow,
            schema_header: false,
            headers: None,
            timeout: 30.0,
            subject: None,
            schema: None,
        }
    }
}

impl ReplayOptions {
    /// The pace asked for, or a ConfigError naming the argument at fault.
    pub fn pace(&self) -> Result<Pace> {
        let pace = match (self.every, self.speed) {
            (Some(s), _) if !(s.is_finite() && s > 0.0) => {
                return Err(Error::Config(format!("every must be > 0 seconds, got {s}")))
            }
            (Some(s), _) => Pace::Every {
                every: Duration::from_secs_f64(s),
                rows: self.rows_per_message.unwrap_or(1),
            },
            (None, None) => Pace::Fast,
            (None, Some(s)) if s.is_finite() && s > 0.0 => {
                if !(self.window.is_finite() && self.window >= 0.0) {
                    return Err(Error::Config(format!(
                        "window must be >= 0 seconds, got {}",
                        self.window
                    )));
                }
                Pace::EventTime {
                    speed: s,
                    window_us: (self.window * 1e6) as i64,
                }
            }
            (None, Some(s)) => {
                return Err(Error::Config(format!(
                    "speed must be > 0 (10 = ten times faster than recorded), or None for as fast \
                     as possible; got {s}"
                )))
            }
        };
        if matches!(pace, Pace::EventTime { .. }) && self.time_column.is_none() {
            return Err(Error::Config(
                "replaying at a speed needs time_column (the event-time column); pass speed=None \
                 to send as fast as possible, or every=seconds for a fixed interval"
                    .into(),
            ));
        }
        if self.timestamps == Timestamps::Event && self.time_column.is_none() {
            return Err(Error::Config("timestamp='event' needs time_column".into()));
        }
        Ok(pace)
    }
}

/// The replay's producer settings: tskafka's defaults under the user's.
fn replay_settings(mut settings: Settings, pace: &Pace) -> Settings {
    settings
        .default("enable.idempotence", "true")
        // A paced message goes out when it is due; lingering only delays it.
        .default(
            "linger.ms",
            if matches!(pace, Pace::Fast) { "5" } else { "0" },
        )
        .default("client.id", "tskafka-replay")
        // A bounded local queue keeps memory flat when the source outruns the broker.
        .default("queue.buffering.max.kbytes", "65536");
    settings
}

/// Where a replay stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// 'running', 'paused', 'stopping', 'done', 'stopped' or 'failed'.
    pub state: &'static str,
    pub rows_sent: u64,
    pub rows_delivered: u64,
    pub rows_failed: u64,
    pub messages: u64,
    pub bytes: u64,
    /// The latest event time sent (microseconds since the epoch).
    pub event_time_us: Option<i64>,
    /// Seconds the last message went out behind its schedule.
    pub lag: f64,
    pub max_lag: f64,
    pub elapsed: f64,
    pub rows_skipped: u64,
}

/// A running (or finished) replay.
pub struct Replay {
    shared: Arc<Shared>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    topic: String,
    event_times: bool,
    time_zone: Option<String>,
    warnings: Vec<String>,
}

impl Replay {
    /// Checks the options, opens `source`, finds the topic, and starts
    /// sending on a thread of its own.
    pub fn start(
        topic: &str,
        source: Source,
        settings: Settings,
        options: ReplayOptions,
        check: Check<'_>,
    ) -> Result<Self> {
        let pace = options.pace()?;
        let mut settings = replay_settings(settings, &pace);
        let registry = crate::client::registry::take_from(&mut settings)?;
        let mut reader = source.open()?;
        let schema = reader.schema();
        let time = match &options.time_column {
            Some(name) => {
                let i = schema.index_of(name).map_err(|_| {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    Error::Schema(format!(
                        "time column {name:?} is not in the source; its columns are {names:?}"
                    ))
                })?;
                Some((i, name.clone()))
            }
            None => None,
        };
        let time_zone = time
            .as_ref()
            .and_then(|(i, _)| match schema.field(*i).data_type() {
                DataType::Timestamp(_, tz) => tz.as_ref().map(|t| t.to_string()),
                _ => None,
            });
        let first = reader.next_batch()?;
        let first_event = match (&time, &first) {
            (Some((i, name)), Some(b)) => schedule::event_micros(b.column(*i).as_ref(), name)?
                .into_iter()
                .flatten()
                .min(),
            _ => None,
        };
        let metadata_timeout = Duration::from_secs_f64(options.timeout.clamp(0.1, 300.0));
        let producer: ThreadedProducer<Context> = client::create(&settings, Context::default())?;
        client::partition_counts(
            producer.client(),
            &settings,
            &[topic],
            metadata_timeout,
            &mut *check,
        )?;
        let stamping = policy::stamping(
            options.timestamps,
            time.as_ref().map(|(_, name)| name.as_str()),
            topic,
            // Advisory: a cluster that does not answer gets a few seconds.
            || {
                client::retention_ms(
                    &settings,
                    topic,
                    metadata_timeout.min(RETENTION_WAIT),
                    &mut *check,
                )
            },
            first_event,
            chrono::Utc::now().timestamp_micros(),
        )?;
        let mut warnings = stamping.warnings;
        let registered = crate::client::registry::register_for_send(
            registry.as_deref(),
            options.format,
            topic,
            &schema,
            options.subject.as_deref(),
            options.schema.as_deref(),
        )?
        .map(|r| {
            warnings.extend(r.warning);
            (r.id, r.text)
        });
        let encode = EncodeOptions {
            format: options.format,
            // A Schema Registry message holds one row.
            rows_per_message: match registered {
                Some(_) => options.rows_per_message.unwrap_or(1),
                None => policy::rows_per_message(&pace, options.format, options.rows_per_message),
            },
            key_columns: options.key,
            timestamp_column: match stamping.event_times {
                true => time.as_ref().map(|(_, n)| n.clone()),
                false => None,
            },
            max_message_bytes: max_message_bytes(&settings),
            schema_header: options.schema_header,
            registered,
            ..EncodeOptions::default()
        };
        let encoder = Encoder::new(schema, encode)?;
        let headers = message_headers(options.headers.as_ref(), &encoder);
        let job = Job {
            producer,
            topic: topic.to_owned(),
            source: reader,
            first,
            encoder,
            pace,
            time,
            headers,
            warm_up: metadata_timeout,
        };
        let shared = Arc::new(Shared::new());
        track(&shared);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tskafka-replay".into())
            .spawn(move || job::run(job, thread_shared))
            .map_err(|e| Error::thread("the replay", &e))?;
        Ok(Self {
            shared,
            thread: std::sync::Mutex::new(Some(thread)),
            topic: topic.to_owned(),
            event_times: stamping.event_times,
            time_zone,
            warnings,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether the messages' Kafka timestamps are the event times (else the send times).
    pub fn event_times(&self) -> bool {
        self.event_times
    }

    /// Time zone of the event-time column (None: naive).
    pub fn time_zone(&self) -> Option<&str> {
        self.time_zone.as_deref()
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Holds sending until `resume()`; the schedule resumes where it left off.
    pub fn pause(&self) {
        *lock(&self.shared.paused) = true;
        self.shared.wake.notify_all();
    }

    pub fn resume(&self) {
        *lock(&self.shared.paused) = false;
        self.shared.wake.notify_all();
    }

    /// Asks the replay to stop sending; acks of rows already sent are awaited
    /// for up to `ack_timeout` (rows left then count as failed).
    pub fn request_stop(&self, ack_timeout: Duration) {
        self.shared.request_stop(ack_timeout);
    }

    /// Waits until the replay has ended (true) or the deadline passes (false).
    pub fn wait(&self, deadline: Option<Instant>, check: Check<'_>) -> Result<bool> {
        let ended = wait::condvar_until(
            &self.shared.phase,
            &self.shared.finished,
            deadline,
            check,
            |phase| *phase != Phase::Running,
        )?;
        if ended {
            if let Some(t) = lock(&self.thread).take() {
                let _ = t.join();
            }
        }
        Ok(ended)
    }

    /// The error the replay failed with, handed out once (after it ended).
    pub fn take_error(&self) -> Option<Error> {
        lock(&self.shared.outcome).take()
    }

    /// Counters at this moment.
    pub fn progress(&self) -> Progress {
        let s = &self.shared;
        let t = &s.tally;
        let state = match *lock(&s.phase) {
            Phase::Running if s.stopping() => "stopping",
            Phase::Running if *lock(&s.paused) => "paused",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        };
        let event_time = s.event_time_us.load(Relaxed);
        let end = lock(&s.ended).unwrap_or_else(Instant::now);
        Progress {
            state,
            rows_sent: s.rows_sent.load(Relaxed),
            rows_delivered: t.rows.load(Relaxed),
            rows_failed: t.failed_rows.load(Relaxed),
            messages: t.messages.load(Relaxed),
            bytes: t.bytes.load(Relaxed),
            event_time_us: (event_time != i64::MIN).then_some(event_time),
            lag: s.lag_us.load(Relaxed) as f64 / 1e6,
            max_lag: s.max_lag_us.load(Relaxed) as f64 / 1e6,
            elapsed: (end - s.started).as_secs_f64(),
            rows_skipped: s.rows_skipped.load(Relaxed),
        }
    }

    /// Rows of a CSV source skipped as bad, the first 100.
    pub fn bad_rows(&self) -> Vec<BadRow> {
        lock(&self.shared.bad_rows).clone()
    }
}

/// Replays of this process still running, held or not: a replay whose
/// handle is dropped goes on to its end, and these are what stopping them
/// all (at interpreter exit) reaches.
static RUNNING: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn track(shared: &Arc<Shared>) {
    let mut running = lock(&RUNNING);
    running.retain(|r| r.upgrade().is_some_and(|r| !r.ended()));
    running.push(Arc::downgrade(shared));
}

/// Stops every replay of this process still running: each waits up to
/// `ack_timeout` for the acks of rows already sent; returns once all have
/// ended or `wait` has passed. How many were running.
pub fn stop_running(ack_timeout: Duration, wait: Duration) -> usize {
    let running: Vec<Arc<Shared>> = lock(&RUNNING)
        .drain(..)
        .filter_map(|r| r.upgrade())
        .filter(|r| !r.ended())
        .collect();
    for shared in &running {
        shared.request_stop(ack_timeout);
    }
    let deadline = Instant::now() + wait;
    for shared in &running {
        let _ = wait::condvar_until(
            &shared.phase,
            &shared.finished,
            Some(deadline),
            &mut wait::unchecked,
            |phase| *phase != Phase::Running,
        );
    }
    running.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(speed: Option<f64>, every: Option<f64>) -> ReplayOptions {
        ReplayOptions {
            time_column: Some("t".into()),
            speed,
            every,
            ..ReplayOptions::default()
        }
    }

    #[test]
    fn the_pace_is_checked() {
        let pace = options(Some(10.0), None).pace().unwrap();
        assert_eq!(
            pace,
            Pace::EventTime {
                speed: 10.0,
                window_us: 0
            }
        );
        let every = ReplayOptions {
            rows_per_message: Some(5),
            ..options(Some(10.0), Some(0.25))
        };
        assert_eq!(
            every.pace().unwrap(),
            Pace::Every {
                every: Duration::from_millis(250),
                rows: 5
            }
        );
        assert_eq!(options(None, None).pace().unwrap(), Pace::Fast);
        for (speed, every, wanted) in [
            (Some(0.0), None, "speed must be > 0"),
            (Some(f64::NAN), None, "speed must be > 0"),
            (Some(1.0), Some(0.0), "every must be > 0 seconds, got 0"),
            (Some(1.0), Some(f64::INFINITY), "every must be > 0 seconds"),
        ] {
            let err = options(speed, every).pace().unwrap_err().to_string();
            assert!(err.starts_with(wanted), "{err}");
        }
        let windowed = ReplayOptions {
            window: -1.0,
            ..options(Some(1.0), None)
        };
        assert_eq!(
            windowed.pace().unwrap_err().to_string(),
            "window must be >= 0 seconds, got -1"
        );
        let untimed = ReplayOptions {
            time_column: None,
            ..options(Some(2.0), None)
        };
        let err = untimed.pace().unwrap_err().to_string();
        assert!(
            err.starts_with("replaying at a speed needs time_column"),
            "{err}"
        );
        let event = ReplayOptions {
            timestamps: Timestamps::Event,
            ..untimed.clone()
        };
        assert!(event.pace().is_err());
        let flat_out = ReplayOptions {
            speed: None,
            ..event
        };
        assert_eq!(
            flat_out.pace().unwrap_err().to_string(),
            "timestamp='event' needs time_column"
        );
    }

    #[test]
    fn paced_replays_do_not_linger() {
        let mut given = Settings::new();
        given.set("bootstrap.servers", "b:1");
        let paced = replay_settings(
            given.clone(),
            &Pace::Every {
                every: Duration::from_secs(1),
                rows: 1,
            },
        );
        assert_eq!(paced.get("linger.ms"), Some("0"));
        assert_eq!(
            replay_settings(given.clone(), &Pace::Fast).get("linger.ms"),
            Some("5")
        );
        given.set("linger.ms", "20");
        let event = Pace::EventTime {
            speed: 1.0,
            window_us: 0,
        };
        assert_eq!(replay_settings(given, &event).get("linger.ms"), Some("20"));
    }
}
