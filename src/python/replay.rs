//! `Replay`: a timestamped source sent to a topic on its own native thread,
//! at the pace of its event times (or a fixed interval, or flat out).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ffi_stream::RecordBatchStreamReader;
use arrow::pyarrow::FromPyArrow;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{Producer as _, ThreadedProducer};

use super::convert::client_settings;
use super::csv_file::csv_options;
use super::producer::{max_message_bytes, message_headers, report, send_batch, Outstanding, Tally};
use super::wait::{deadline, detached, slice, Interrupts, WAKE_EVERY};
use crate::client::{self, Context};
use crate::csv_reader::{BadRow, CsvReader};
use crate::encode::{EncodeOptions, Encoder, Format};
use crate::error::{Error, Result};
use crate::replay::{event_micros, groups, Clock, Pace};

/// How long a replay waits for the topic's retention before assuming none.
const RETENTION_WAIT: Duration = Duration::from_secs(3);

const STOPPED: &str = "replay stopped";

enum Source {
    Csv(Box<CsvReader>),
    Stream(RecordBatchStreamReader),
}

impl Source {
    fn schema(&self) -> SchemaRef {
        match self {
            Source::Csv(r) => r.schema(),
            Source::Stream(r) => r.schema(),
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Source::Csv(r) => r.next_batch(),
            Source::Stream(r) => r
                .next()
                .transpose()
                .map_err(|e| Error::Schema(format!("cannot read the replay source: {e}"))),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Running,
    Done,
    Stopped,
    Failed,
}

struct Shared {
    stop: AtomicBool,
    stop_deadline: Mutex<Option<Instant>>,
    paused: Mutex<bool>,
    wake: Condvar,
    paused_us: AtomicU64,
    phase: Mutex<Phase>,
    finished: Condvar,
    outcome: Mutex<Option<Error>>,
    tally: Arc<Tally>,
    rows_sent: AtomicU64,
    event_time_us: AtomicI64,
    lag_us: AtomicI64,
    max_lag_us: AtomicI64,
    rows_skipped: AtomicU64,
    bad_rows: Mutex<Vec<BadRow>>,
    started: Instant,
    ended: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn new() -> Self {
        Self {
            stop: AtomicBool::new(false),
            stop_deadline: Mutex::new(None),
            paused: Mutex::new(false),
            wake: Condvar::new(),
            paused_us: AtomicU64::new(0),
            phase: Mutex::new(Phase::Running),
            finished: Condvar::new(),
            outcome: Mutex::new(None),
            tally: Arc::new(Tally::default()),
            rows_sent: AtomicU64::new(0),
            event_time_us: AtomicI64::new(i64::MIN),
            lag_us: AtomicI64::new(0),
            max_lag_us: AtomicI64::new(0),
            rows_skipped: AtomicU64::new(0),
            bad_rows: Mutex::new(Vec::new()),
            started: Instant::now(),
            ended: Mutex::new(None),
        }
    }

    /// Blocks while paused; fails with [`STOPPED`] once stop is asked.
    fn hold(&self) -> Result<()> {
        let mut paused = lock(&self.paused);
        if *paused {
            let since = Instant::now();
            while *paused && !self.stop.load(Relaxed) {
                paused = self
                    .wake
                    .wait_timeout(paused, Duration::from_millis(100))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            self.paused_us
                .fetch_add(since.elapsed().as_micros() as u64, Relaxed);
        }
        if self.stop.load(Relaxed) {
            return Err(Error::Closed(STOPPED));
        }
        Ok(())
    }

    /// Sleeps until `due` (shifted by the time spent paused), in short slices.
    fn wait_until(&self, clock: &mut Clock, offset: Duration) -> Result<()> {
        loop {
            self.hold()?;
            clock.set_paused(Duration::from_micros(self.paused_us.load(Relaxed)));
            let due = clock.at(offset);
            let now = Instant::now();
            if now >= due {
                let lag = (now - due).as_micros() as i64;
                self.lag_us.store(lag, Relaxed);
                self.max_lag_us.fetch_max(lag, Relaxed);
                return Ok(());
            }
            std::thread::sleep((due - now).min(Duration::from_millis(20)));
        }
    }
}

struct Job {
    producer: ThreadedProducer<Context>,
    topic: String,
    source: Source,
    first: Option<RecordBatch>,
    encoder: Encoder,
    pace: Pace,
    time: Option<(usize, String)>,
    headers: Option<OwnedHeaders>,
}

impl Job {
    fn send(&self, shared: &Shared, batch: &RecordBatch) -> Result<()> {
        let mut rows = 0;
        let result = send_batch(
            &self.producer,
            &self.encoder,
            batch,
            &self.topic,
            None,
            self.headers.as_ref(),
            &shared.tally,
            &mut rows,
            &mut || shared.hold(),
        );
        shared.rows_sent.fetch_add(rows, Relaxed);
        result
    }

    fn times(&self, batch: &RecordBatch) -> Result<Option<Vec<Option<i64>>>> {
        match &self.time {
            Some((i, name)) => Ok(Some(event_micros(batch.column(*i).as_ref(), name)?)),
            None => Ok(None),
        }
    }

    /// Copies a CSV source's skipped-row counts where `progress` reads them, when they changed.
    fn share_skipped(&self, shared: &Shared) {
        if let Source::Csv(r) = &self.source {
            if shared.rows_skipped.swap(r.rows_skipped, Relaxed) != r.rows_skipped {
                *lock(&shared.bad_rows) = r.bad_rows.clone();
            }
        }
    }

    fn run(&mut self, shared: &Shared) -> Result<()> {
        let mut clock = Clock::new(match self.pace {
            Pace::EventTime { speed, .. } => speed,
            _ => 1.0,
        });
        let mut n = 0u64;
        while let Some(batch) = match self.first.take() {
            Some(b) => Some(b),
            None => self.source.next_batch()?,
        } {
            self.share_skipped(shared);
            let times = self.times(&batch)?;
            let reached = |end: usize| {
                if let Some(t) = times.as_ref().and_then(|t| t[..end].iter().flatten().max()) {
                    shared.event_time_us.fetch_max(*t, Relaxed);
                }
            };
            match self.pace {
                Pace::Fast => {
                    shared.hold()?;
                    self.send(shared, &batch)?;
                    reached(batch.num_rows());
                }
                Pace::Every { every, rows } => {
                    let mut start = 0;
                    while start < batch.num_rows() {
                        let len = rows.min(batch.num_rows() - start);
                        shared.wait_until(&mut clock, Clock::nth_offset(n, every))?;
                        self.send(shared, &batch.slice(start, len))?;
                        n += 1;
                        start += len;
                        reached(start);
                    }
                }
                Pace::EventTime { window_us, .. } => {
                    let (_, name) = self
                        .time
                        .as_ref()
                        .expect("event-time pace has a time column");
                    let times = times.as_deref().unwrap_or_default();
                    for (start, end, t) in groups(times, window_us, name)? {
                        let offset = clock.event_offset(t);
                        shared.wait_until(&mut clock, offset)?;
                        self.send(shared, &batch.slice(start, end - start))?;
                        shared.event_time_us.fetch_max(t, Relaxed);
                    }
                }
            }
        }
        self.share_skipped(shared);
        Ok(())
    }
}

/// The replay thread: send, then wait for the acks of everything sent.
fn run(mut job: Job, shared: Arc<Shared>) {
    let sent = job.run(&shared);
    // Acks arrive on librdkafka's threads; after a stop, wait only until its deadline.
    while shared.tally.pending.load(Relaxed) > 0 {
        let give_up = lock(&shared.stop_deadline).is_some_and(|d| Instant::now() >= d);
        if give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Dropping the producer fails whatever is still queued, so it is counted.
    let Job {
        producer, topic, ..
    } = job;
    drop(producer);
    let outstanding = Outstanding {
        topic,
        tally: shared.tally.clone(),
        rows_sent: shared.rows_sent.load(Relaxed),
        started: shared.started,
    };
    let delivered = report(&outstanding, 0.0).map(|_| ());
    let (phase, outcome) = match sent {
        Err(Error::Closed(STOPPED)) => match delivered {
            Ok(()) => (Phase::Stopped, None),
            Err(e) => (Phase::Failed, Some(e)),
        },
        Err(e) => (Phase::Failed, Some(e)),
        Ok(()) => match delivered {
            Ok(()) => (Phase::Done, None),
            Err(e) => (Phase::Failed, Some(e)),
        },
    };
    *lock(&shared.outcome) = outcome;
    *lock(&shared.ended) = Some(Instant::now());
    *lock(&shared.phase) = phase;
    shared.finished.notify_all();
}

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Replay {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    error: Mutex<Option<PyErr>>,
    /// "event" or "send": what the messages' Kafka timestamps are.
    #[pyo3(get)]
    kafka_timestamps: &'static str,
    /// Time zone of the event-time column (None: naive), for showing progress.
    #[pyo3(get)]
    time_zone: Option<String>,
    #[pyo3(get)]
    warnings: Vec<String>,
    #[pyo3(get)]
    topic: String,
}

#[pymethods]
impl Replay {
    #[new]
    #[pyo3(signature = (topic, source, bootstrap_servers=None, config=None, *, time_column=None,
                        speed=Some(1.0), every=None, window=0.0, rows_per_message=None, key=None,
                        timestamp="auto", format="arrow", schema_header=false, headers=None,
                        encoding="auto",
                        time_format=None, dtypes=None, on_bad_rows="error", chunk_rows=65_536,
                        delimiter=None, timeout=30.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        topic: String,
        source: &Bound<'_, PyAny>,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
        time_column: Option<String>,
        speed: Option<f64>,
        every: Option<f64>,
        window: f64,
        rows_per_message: Option<usize>,
        key: Option<&Bound<'_, PyAny>>,
        timestamp: &str,
        format: &str,
        schema_header: bool,
        headers: Option<HashMap<String, Vec<u8>>>,
        encoding: &str,
        time_format: Option<String>,
        dtypes: Option<HashMap<String, String>>,
        on_bad_rows: &str,
        chunk_rows: usize,
        delimiter: Option<&str>,
        timeout: f64,
    ) -> PyResult<Self> {
        let mut settings = client_settings(bootstrap_servers, config)?;
        settings
            .default("enable.idempotence", "true")
            .default("linger.ms", "5")
            .default("client.id", "tskafka-replay")
            // A bounded local queue keeps memory flat when the source outruns the broker.
            .default("queue.buffering.max.kbytes", "65536");
        let format = format.parse::<Format>()?;
        let pace = match (every, speed) {
            (Some(s), _) if !(s.is_finite() && s > 0.0) => {
                return Err(Error::Config(format!("every must be > 0 seconds, got {s}")).into())
            }
            (Some(s), _) => Pace::Every {
                every: Duration::from_secs_f64(s),
                rows: rows_per_message.unwrap_or(1),
            },
            (None, None) => Pace::Fast,
            (None, Some(s)) if s.is_finite() && s > 0.0 => {
                if !(window.is_finite() && window >= 0.0) {
                    return Err(Error::Config(format!(
                        "window must be >= 0 seconds, got {window}"
                    ))
                    .into());
                }
                Pace::EventTime {
                    speed: s,
                    window_us: (window * 1e6) as i64,
                }
            }
            (None, Some(s)) => {
                return Err(Error::Config(format!(
                    "speed must be > 0 (10 = ten times faster than recorded), or None for as fast \
                     as possible; got {s}"
                ))
                .into())
            }
        };
        if matches!(pace, Pace::EventTime { .. }) && time_column.is_none() {
            return Err(Error::Config(
                "replaying at a speed needs time_column (the event-time column); pass speed=None \
                 to send as fast as possible, or every=seconds for a fixed interval"
                    .into(),
            )
            .into());
        }
        let key_columns: Vec<String> = match key {
            None => Vec::new(),
            Some(k) if k.is_instance_of::<PyString>() => vec![k.extract()?],
            Some(k) => k.extract()?,
        };
        let want_event = match timestamp {
            "auto" => None,
            "event" => Some(true),
            "send" => Some(false),
            other => {
                return Err(Error::Config(format!(
                    "timestamp must be 'auto', 'event' (the time column) or 'send' (when sent), \
                     got {other:?}"
                ))
                .into())
            }
        };
        let source = if let Ok(path) = source.extract::<String>() {
            let options = csv_options(
                time_column.clone(),
                time_format,
                encoding,
                dtypes,
                on_bad_rows,
                chunk_rows,
                delimiter,
            )?;
            detached(py, || {
                Ok(Source::Csv(Box::new(CsvReader::open(&path, options)?)))
            })?
        } else if source.hasattr("__arrow_c_stream__")? {
            Source::Stream(RecordBatchStreamReader::from_pyarrow_bound(source)?)
        } else {
            return Err(PyTypeError::new_err(format!(
                "cannot replay a {}: pass a CSV path, or a frame / Arrow stream",
                source.get_type().name()?
            )));
        };
        let max_message_bytes = max_message_bytes(&settings);
        let metadata_timeout = Duration::from_secs_f64(timeout.clamp(0.1, 300.0));
        let topic_name = topic.clone();
        let prepared = detached(py, move || {
            let mut source = source;
            let schema = source.schema();
            let time = match &time_column {
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
            let first = source.next_batch()?;
            let first_event = match (&time, &first) {
                (Some((i, name)), Some(b)) => event_micros(b.column(*i).as_ref(), name)?
                    .into_iter()
                    .flatten()
                    .min(),
                _ => None,
            };
            let producer: ThreadedProducer<Context> =
                client::create(&settings, Context::default())?;
            let mut interrupts = Interrupts::new();
            client::partition_counts(
                producer.client(),
                &settings,
                &[&topic],
                metadata_timeout,
                &mut || interrupts.check(),
            )?;
            let mut warnings = Vec::new();
            let event = match (time.is_some(), want_event) {
                (false, Some(true)) => {
                    return Err(Error::Config("timestamp='event' needs time_column".into()))
                }
                (false, _) => false,
                (true, Some(false)) => false,
                (true, want) => {
                    // Advisory: a cluster that does not answer gets a few seconds.
                    let mut interrupts = Interrupts::new();
                    let retention = client::retention_ms(
                        &settings,
                        &topic,
                        metadata_timeout.min(RETENTION_WAIT),
                        WAKE_EVERY,
                        &mut || interrupts.check(),
                    )?;
                    let now_us = chrono::Utc::now().timestamp_micros();
                    let expired = match (retention, first_event) {
                        (Some(ms), Some(t)) => t < now_us - ms.saturating_mul(1_000),
                        _ => false,
                    };
                    if expired {
                        let days = retention.unwrap_or(0) as f64 / 86_400_000.0;
                        if want == Some(true) {
                            warnings.push(format!(
                                "event times in {:?} start before topic {topic:?}'s retention \
                                 ({days:.1} days): the broker may delete these messages at \
                                 once; pass timestamp='send' (or raise retention.ms)",
                                time.as_ref().unwrap().1
                            ));
                            true
                        } else {
                            warnings.push(format!(
                                "event times in {:?} start before topic {topic:?}'s retention \
                                 ({days:.1} days), so messages are stamped with the time they are \
                                 sent instead (the event time stays in the column); pass \
                                 timestamp='event' to keep event times as Kafka timestamps",
                                time.as_ref().unwrap().1
                            ));
                            false
                        }
                    } else {
                        true
                    }
                }
            };
            let options = EncodeOptions {
                format,
                rows_per_message: match pace {
                    Pace::Every { rows, .. } => rows,
                    Pace::EventTime { .. } => rows_per_message.unwrap_or(10_000),
                    Pace::Fast => rows_per_message.unwrap_or(match format {
                        Format::Arrow => 10_000,
                        Format::Json => 1,
                    }),
                },
                key_columns,
                timestamp_column: if event {
                    time.as_ref().map(|(_, n)| n.clone())
                } else {
                    None
                },
                max_message_bytes,
                schema_header,
            };
            let encoder = Encoder::new(schema, options)?;
            let headers = message_headers(headers.as_ref(), &encoder);
            Ok((
                Job {
                    producer,
                    topic,
                    source,
                    first,
                    encoder,
                    pace,
                    time,
                    headers,
                },
                event,
                time_zone,
                warnings,
            ))
        })?;
        let (job, event, time_zone, warnings) = prepared;
        let shared = Arc::new(Shared::new());
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tskafka-replay".into())
            .spawn(move || run(job, thread_shared))
            .map_err(|e| Error::Config(format!("cannot start the replay thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
            error: Mutex::new(None),
            kafka_timestamps: if event { "event" } else { "send" },
            time_zone,
            warnings,
            topic: topic_name,
        })
    }

    /// Holds sending until `resume()`; the schedule resumes where it left off.
    fn pause(&self) {
        *lock(&self.shared.paused) = true;
    }

    fn resume(&self) {
        *lock(&self.shared.paused) = false;
        self.shared.wake.notify_all();
    }

    /// Asks the replay to stop sending; acks of rows already sent are awaited
    /// for up to `timeout` seconds (rows left then count as failed).
    #[pyo3(signature = (timeout=10.0))]
    fn request_stop(&self, timeout: f64) {
        *lock(&self.shared.stop_deadline) =
            Some(Instant::now() + Duration::from_secs_f64(timeout.clamp(0.0, 3600.0)));
        self.shared.stop.store(true, Relaxed);
        self.shared.wake.notify_all();
    }

    /// Waits (GIL released, Ctrl+C honoured) until the replay ends or `timeout`
    /// passes; True when it has ended.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline(timeout)?;
        let done = detached(py, || {
            let mut interrupts = Interrupts::new();
            let mut phase = lock(&self.shared.phase);
            while *phase == Phase::Running {
                let Some(wait) = slice(deadline) else {
                    return Ok(false);
                };
                phase = self
                    .shared
                    .finished
                    .wait_timeout(phase, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                if *phase == Phase::Running {
                    drop(phase);
                    interrupts.check()?;
                    phase = lock(&self.shared.phase);
                }
            }
            Ok(true)
        })?;
        if done {
            if let Some(t) = lock(&self.thread).take() {
                let _ = t.join();
            }
        }
        Ok(done)
    }

    /// Raises the replay's error, if it failed (once ended).
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        let mut error = lock(&self.error);
        if let Some(e) = lock(&self.shared.outcome).take() {
            *error = Some(PyErr::from(e));
        }
        match error.as_ref() {
            Some(e) => Err(e.clone_ref(py)),
            None => Ok(()),
        }
    }

    /// Counters at this moment, as a dict.
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.shared;
        let t = &s.tally;
        let d = PyDict::new(py);
        let phase = *lock(&s.phase);
        let state = match phase {
            Phase::Running if s.stop.load(Relaxed) => "stopping",
            Phase::Running if *lock(&s.paused) => "paused",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        };
        d.set_item("state", state)?;
        d.set_item("rows_sent", s.rows_sent.load(Relaxed))?;
        d.set_item("rows_delivered", t.rows.load(Relaxed))?;
        d.set_item("rows_failed", t.failed_rows.load(Relaxed))?;
        d.set_item("messages", t.messages.load(Relaxed))?;
        d.set_item("bytes", t.bytes.load(Relaxed))?;
        let e = s.event_time_us.load(Relaxed);
        d.set_item("event_time_us", (e != i64::MIN).then_some(e))?;
        d.set_item("lag", s.lag_us.load(Relaxed) as f64 / 1e6)?;
        d.set_item("max_lag", s.max_lag_us.load(Relaxed) as f64 / 1e6)?;
        let end = lock(&s.ended).unwrap_or_else(Instant::now);
        d.set_item("elapsed", (end - s.started).as_secs_f64())?;
        d.set_item("rows_skipped", s.rows_skipped.load(Relaxed))?;
        Ok(d)
    }

    /// Rows of a CSV source skipped with `on_bad_rows='skip'`: (line, reason), the first 100.
    #[getter]
    fn bad_rows(&self) -> Vec<(u64, String)> {
        lock(&self.shared.bad_rows)
            .iter()
            .map(|b| (b.line, b.reason.clone()))
            .collect()
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Relaxed);
        self.shared.wake.notify_all();
    }
}
