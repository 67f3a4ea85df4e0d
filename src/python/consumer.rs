use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow::datatypes::Schema;
use arrow::pyarrow::FromPyArrow;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::convert::{client_settings, frame_to_py, with_string_views};
use super::wait::{deadline, detached, slice, Interrupts};
use crate::client::{self, Context};
use crate::config::Settings;
use crate::decode::{BadMessage, FormatHint, Frame, FrameBuilder, MessageRef};
use crate::encode::SCHEMA_HEADER;
use crate::error::{Error, Result};

pub(super) type Positions = BTreeMap<(String, i32), i64>;

/// With rows in hand, `poll_frame` returns after this long without a new message.
const QUIET: Duration = Duration::from_millis(50);

/// How many skipped messages `bad_messages` keeps (the oldest go first).
const KEEP_BAD: usize = 10_000;

struct Inner {
    consumer: BaseConsumer<Context>,
    builder: FrameBuilder,
    /// A frame decoded before a DecodeError was raised; returned next.
    pending_frame: Option<(Frame, Positions)>,
    pending_errors: VecDeque<BadMessage>,
    /// Positions past messages raised as DecodeError: consumed (and so
    /// committed) only once reading goes on after the error.
    after_error: Positions,
    /// Next offset per partition of every row handed to Python.
    handed_out: Positions,
}

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Consumer {
    settings: Settings,
    auto_commit: bool,
    skip_bad: bool,
    start: Offset,
    timeout: Duration,
    inner: Mutex<Option<Inner>>,
    bad: Mutex<VecDeque<BadMessage>>,
    /// Set by `close()`: a poll running on another thread ends at its next wake-up.
    closing: AtomicBool,
}

/// How long `close()` waits for librdkafka to leave the group and shut down.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Drops the librdkafka consumer on its own thread; the receiver hears when it is done.
fn close_in_background(inner: Inner) -> std::sync::mpsc::Receiver<()> {
    let (done, closed) = std::sync::mpsc::channel();
    // If no thread can be started, spawn drops the closure: the consumer closes right here.
    let _ = std::thread::Builder::new()
        .name("tskafka-consumer-close".into())
        .spawn(move || {
            // Dropping an open consumer closes it while polling 100 ms at a
            // time; closing it first with short polls ends as soon as it is done.
            if inner.consumer.close_queue().is_ok() {
                while !inner.consumer.closed() {
                    let _ = inner.consumer.poll(Duration::from_millis(1));
                }
            }
            drop(inner);
            let _ = done.send(());
        });
    closed
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Never block the thread (holding the GIL) that drops an unclosed consumer.
        if let Some(inner) = self
            .inner
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            close_in_background(inner);
        }
    }
}

/// 4 MiB, or `message.max.bytes` when that is larger (librdkafka requires it).
fn fetch_max_bytes(settings: &Settings) -> String {
    let message_max = settings
        .get("message.max.bytes")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (4u64 << 20).max(message_max).to_string()
}

fn parse_offset(offset: &str) -> Result<Offset> {
    match offset {
        "earliest" | "beginning" | "smallest" => Ok(Offset::Beginning),
        "latest" | "end" | "largest" => Ok(Offset::End),
        other => Err(Error::Config(format!(
            "offset must be 'earliest' or 'latest', got {other:?} (use seek() for a number or a time)"
        ))),
    }
}

fn message_ref<'a>(m: &'a BorrowedMessage<'_>) -> MessageRef<'a> {
    MessageRef {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key(),
        payload: m.payload(),
        schema_header: m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == SCHEMA_HEADER)
                .and_then(|h| h.value)
        }),
    }
}

fn tpl_of(positions: &Positions) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in positions {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    tpl
}

impl Consumer {
    fn with_inner<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut Inner) -> Result<T> + Send,
    ) -> PyResult<T> {
        detached(py, || {
            let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let inner = guard.as_mut().ok_or(Error::Closed("this Consumer"))?;
            work(inner)
        })
    }

    fn hand_out(&self, inner: &mut Inner, positions: Positions) {
        if positions.is_empty() {
            return;
        }
        if self.auto_commit {
            // Only rows given to Python count as consumed; librdkafka commits these.
            let _ = inner.consumer.store_offsets(&tpl_of(&positions));
        }
        inner.handed_out.extend(positions);
    }

    fn next_frame(
        &self,
        inner: &mut Inner,
        max_rows: usize,
        timeout: Option<f64>,
    ) -> Result<Option<Frame>> {
        let read = self.read(inner, max_rows, timeout, &mut Interrupts::new())?;
        Ok(read.map(|(frame, positions)| {
            self.hand_out(inner, positions);
            frame
        }))
    }

    /// One frame and the positions it reaches, not yet counted as consumed.
    fn read(
        &self,
        inner: &mut Inner,
        max_rows: usize,
        timeout: Option<f64>,
        interrupts: &mut Interrupts,
    ) -> Result<Option<(Frame, Positions)>> {
        if let Some(bad) = inner.pending_errors.pop_front() {
            return Err(bad.into_error());
        }
        // Reading on after a DecodeError: the messages it named are consumed now.
        let past_errors = std::mem::take(&mut inner.after_error);
        self.hand_out(inner, past_errors);
        if let Some(pending) = inner.pending_frame.take() {
            return Ok(Some(pending));
        }
        let deadline = deadline(timeout)?;
        let started = Instant::now();
        let mut poll_error = None;
        while inner.builder.rows() < max_rows.max(1) {
            let Some(mut wait) = slice(deadline) else {
                break;
            };
            let have_rows = inner.builder.rows() > 0;
            if have_rows {
                // Return once the stream goes quiet rather than sit out the timeout.
                wait = wait.min(QUIET);
            }
            match inner.consumer.poll(wait) {
                None if have_rows => break,
                None => {}
                Some(Ok(m)) => inner.builder.push(message_ref(&m)),
                Some(Err(e)) => {
                    let errors = &inner.consumer.context().errors;
                    poll_error = Some(
                        errors
                            .security_error(started, &self.settings)
                            .unwrap_or_else(|| Error::kafka("consume failed", &e)),
                    );
                    break;
                }
            }
            if !self.skip_bad && inner.builder.has_bad() {
                break;
            }
            if self.closing.load(Relaxed) {
                return Err(Error::Closed("this Consumer"));
            }
            interrupts.check()?;
        }
        let frame = inner.builder.take_frame()?;
        let positions = inner.builder.take_positions();
        let mut bad = inner.builder.take_bad();
        if self.skip_bad {
            let mut kept = self.bad.lock().unwrap_or_else(PoisonError::into_inner);
            kept.extend(bad);
            while kept.len() > KEEP_BAD {
                kept.pop_front();
            }
        } else if !bad.is_empty() {
            let first = bad.remove(0);
            inner.pending_errors.extend(bad);
            match frame {
                Some(f) => inner.pending_frame = Some((f, positions)),
                None => inner.after_error.extend(positions),
            }
            return Err(first.into_error());
        }
        let Some(frame) = frame else {
            // Only skipped messages: nothing to hand over, so they are consumed now.
            self.hand_out(inner, positions);
            if let Some(e) = poll_error {
                return Err(e);
            }
            if let Some(e) = inner
                .consumer
                .context()
                .errors
                .security_error(started, &self.settings)
            {
                return Err(e);
            }
            if let Some((code, reason)) = inner.consumer.context().errors.since(started) {
                if matches!(
                    code,
                    RDKafkaErrorCode::AllBrokersDown
                        | RDKafkaErrorCode::Authentication
                        | RDKafkaErrorCode::SSL
                ) {
                    return Err(Error::kafka_code(
                        format!(
                            "no data from {}: {}",
                            self.settings.bootstrap_servers().unwrap_or("?"),
                            self.settings.scrub(&reason)
                        ),
                        code,
                    ));
                }
            }
            return Ok(None);
        };
        Ok(Some((frame, positions)))
    }

    /// For a background reader: one frame read without the GIL and without
    /// signal checks (it runs off the main thread), not yet consumed.
    pub(super) fn read_unattached(
        &self,
        max_rows: usize,
        timeout: f64,
    ) -> Result<Option<(Frame, Positions)>> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = guard.as_mut().ok_or(Error::Closed("this Consumer"))?;
        inner.builder.string_views = false;
        self.read(inner, max_rows, Some(timeout), &mut Interrupts::off())
    }

    /// Returns a frame nobody took: the next read hands it out again.
    pub(super) fn put_back(&self, frame: Frame, positions: Positions) {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(inner) = guard.as_mut() {
            if inner.pending_frame.is_none() {
                inner.pending_frame = Some((frame, positions));
            }
        }
    }

    /// Counts rows read by [`Self::read_unattached`] as consumed.
    pub(super) fn consume(&self, positions: Positions) -> Result<()> {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = guard.as_mut().ok_or(Error::Closed("this Consumer"))?;
        self.hand_out(inner, positions);
        Ok(())
    }

    /// Puts back everything read but not yet returned, so a seek starts clean.
    fn unread(inner: &mut Inner, timeout: Duration) -> Result<()> {
        inner.pending_frame = None;
        inner.pending_errors.clear();
        inner.after_error.clear();
        for ((topic, partition), offset) in inner.builder.reset() {
            inner
                .consumer
                .seek(&topic, partition, Offset::Offset(offset), timeout)
                .map_err(|e| Error::kafka(format!("cannot rewind {topic}[{partition}]"), &e))?;
        }
        Ok(())
    }

    fn wait_for_assignment(
        inner: &mut Inner,
        deadline: Option<Instant>,
    ) -> Result<TopicPartitionList> {
        let mut interrupts = Interrupts::new();
        loop {
            let assignment = inner
                .consumer
                .assignment()
                .map_err(|e| Error::kafka("cannot read the assignment", &e))?;
            if assignment.count() > 0 {
                return Ok(assignment);
            }
            let Some(wait) = slice(deadline) else {
                return Err(Error::Timeout(
                    "no partitions were assigned to this consumer in time: \
                     is it subscribed, and does the group have free partitions?"
                        .into(),
                ));
            };
            if let Some(Ok(m)) = inner.consumer.poll(wait) {
                inner.builder.push(message_ref(&m));
            }
            interrupts.check()?;
        }
    }
}

/// Serves the consumer's events while it waits for metadata, so that
/// client-level errors are recorded; messages already fetched are kept.
fn pump<'a>(
    consumer: &'a BaseConsumer<Context>,
    builder: &'a mut FrameBuilder,
) -> impl FnMut() -> Result<()> + 'a {
    let mut interrupts = Interrupts::new();
    move || {
        // A log line served also reads as None: stop only after several in a row.
        let mut idle = 0;
        for _ in 0..10_000 {
            match consumer.poll(Duration::ZERO) {
                None if idle >= 50 => break,
                None => idle += 1,
                Some(Ok(m)) => builder.push(message_ref(&m)),
                Some(Err(_)) => {} // recorded by the context
            }
        }
        interrupts.check()
    }
}

#[pymethods]
impl Consumer {
    #[new]
    #[pyo3(signature = (bootstrap_servers=None, config=None, *, group_id=None, offset=None,
                        auto_commit=None, format="auto", metadata=false, on_error="raise",
                        json_schema=None, timeout=10.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
        group_id: Option<String>,
        offset: Option<&str>,
        auto_commit: Option<bool>,
        format: &str,
        metadata: bool,
        on_error: &str,
        json_schema: Option<&Bound<'_, PyAny>>,
        timeout: f64,
    ) -> PyResult<Self> {
        let mut settings = client_settings(bootstrap_servers, config)?;
        if let Some(g) = group_id {
            settings.set("group.id", g);
        }
        // Explicit arguments win over the config, which wins over the defaults.
        if let Some(offset) = offset {
            let reset = match parse_offset(offset)? {
                Offset::Beginning => "earliest",
                _ => "latest",
            };
            settings.set("auto.offset.reset", reset);
        }
        if let Some(auto_commit) = auto_commit {
            settings.set(
                "enable.auto.commit",
                if auto_commit { "true" } else { "false" },
            );
        }
        let fetch_max = fetch_max_bytes(&settings);
        settings
            .default("group.id", &format!("tskafka-{}", uuid::Uuid::new_v4()))
            .default("auto.offset.reset", "latest")
            .default("enable.auto.commit", "true");
        let start = parse_offset(settings.get("auto.offset.reset").unwrap_or("latest"))
            .unwrap_or(Offset::End);
        settings
            .set("enable.auto.offset.store", "false")
            // Short fetch waits: far faster from brokers that hold every fetch
            // for the full wait (Tansu 0.6 does).
            .default("fetch.wait.max.ms", "5")
            .default("max.partition.fetch.bytes", "16777216")
            // Fetch answers of a few MiB rather than librdkafka's 50 MiB: buffers
            // that large are fresh memory (page faults) on both ends of every
            // fetch; 4 MiB cut the CPU of reading the retail log by a third.
            .default("fetch.max.bytes", &fetch_max)
            // A full local queue pauses fetching for this long (librdkafka: 1 s).
            .default("fetch.queue.backoff.ms", "10")
            .default("enable.partition.eof", "false")
            .default("client.id", "tskafka");
        let skip_bad = match on_error {
            "raise" => false,
            "skip" => true,
            other => {
                return Err(Error::Config(format!(
                    "on_error must be 'raise' or 'skip', got {other:?}"
                ))
                .into())
            }
        };
        let hint: FormatHint = format.parse()?;
        let json_schema = json_schema
            .map(|s| Schema::from_pyarrow_bound(s).map(std::sync::Arc::new))
            .transpose()?;
        let consumer: BaseConsumer<Context> = detached(py, || {
            let context = Context {
                offset_reset: parse_offset(settings.get("auto.offset.reset").unwrap_or("latest"))
                    .ok(),
                ..Context::default()
            };
            client::create(&settings, context)
        })?;
        Ok(Self {
            auto_commit: settings.get("enable.auto.commit") == Some("true"),
            settings,
            skip_bad,
            start,
            timeout: Duration::from_secs_f64(timeout.max(0.1)),
            inner: Mutex::new(Some(Inner {
                consumer,
                builder: FrameBuilder::new(hint, metadata, json_schema),
                pending_frame: None,
                pending_errors: VecDeque::new(),
                after_error: Positions::new(),
                handed_out: Positions::new(),
            })),
            bad: Mutex::new(VecDeque::new()),
            closing: AtomicBool::new(false),
        })
    }

    /// Joins the consumer group and reads `topics` (which must exist).
    fn subscribe(&self, py: Python<'_>, topics: Vec<String>) -> PyResult<()> {
        self.with_inner(py, |inner| {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            client::partition_counts(
                inner.consumer.client(),
                &self.settings,
                &names,
                self.timeout,
                &mut pump(&inner.consumer, &mut inner.builder),
            )?;
            inner
                .consumer
                .subscribe(&names)
                .map_err(|e| Error::kafka(format!("cannot subscribe to {names:?}"), &e))
        })
    }

    /// Reads the given partitions without a group: `(topic, partition)` or
    /// `(topic, partition, offset)`; without an offset, `offset=` applies.
    fn assign(&self, py: Python<'_>, partitions: Vec<(String, i32, Option<i64>)>) -> PyResult<()> {
        self.with_inner(py, |inner| {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, offset) in &partitions {
                let n = client::partition_counts(
                    inner.consumer.client(),
                    &self.settings,
                    &[topic],
                    self.timeout,
                    &mut pump(&inner.consumer, &mut inner.builder),
                )?[0];
                if *partition < 0 || *partition as usize >= n {
                    return Err(Error::Config(format!(
                        "partition {partition} does not exist: topic {topic:?} has partitions 0..{}",
                        n - 1
                    )));
                }
                let at = offset.map_or(self.start, Offset::Offset);
                tpl.add_partition_offset(topic, *partition, at)
                    .map_err(|e| Error::kafka("bad assignment", &e))?;
            }
            inner
                .consumer
                .assign(&tpl)
                .map_err(|e| Error::kafka("cannot assign partitions", &e))
        })
    }

    /// Up to `max_rows` rows from many messages as one pyarrow.Table,
    /// or None if nothing arrived within `timeout` seconds. With
    /// `string_views`, text columns come as string views (what Polars holds).
    #[pyo3(signature = (max_rows=100_000, timeout=1.0, string_views=false))]
    fn poll_table(
        &self,
        py: Python<'_>,
        max_rows: usize,
        timeout: Option<f64>,
        string_views: bool,
    ) -> PyResult<Py<PyAny>> {
        let frame = self.with_inner(py, |inner| {
            inner.builder.string_views = string_views;
            let frame = self.next_frame(inner, max_rows, timeout)?;
            match frame {
                Some(f) if string_views => with_string_views(f).map(Some),
                other => Ok(other),
            }
        })?;
        frame_to_py(py, frame)
    }

    /// Commits the offsets of every row returned so far.
    #[pyo3(signature = (asynchronous=false))]
    fn commit(&self, py: Python<'_>, asynchronous: bool) -> PyResult<()> {
        self.with_inner(py, |inner| {
            if inner.handed_out.is_empty() {
                return Ok(());
            }
            let mode = if asynchronous {
                CommitMode::Async
            } else {
                CommitMode::Sync
            };
            inner
                .consumer
                .commit(&tpl_of(&inner.handed_out), mode)
                .map_err(|e| Error::kafka("commit failed", &e))
        })
    }

    /// The group's committed offsets: {(topic, partition): offset}.
    #[pyo3(signature = (timeout=10.0))]
    fn committed(&self, py: Python<'_>, timeout: f64) -> PyResult<BTreeMap<(String, i32), i64>> {
        self.with_inner(py, |inner| {
            let tpl = inner
                .consumer
                .committed(Duration::from_secs_f64(timeout))
                .map_err(|e| Error::kafka("cannot read committed offsets", &e))?;
            Ok(tpl
                .elements()
                .iter()
                .filter_map(|e| {
                    e.offset()
                        .to_raw()
                        .filter(|o| *o >= 0)
                        .map(|o| ((e.topic().to_owned(), e.partition()), o))
                })
                .collect())
        })
    }

    /// Partitions currently assigned: [(topic, partition)].
    fn assignment(&self, py: Python<'_>) -> PyResult<Vec<(String, i32)>> {
        self.with_inner(py, |inner| {
            let tpl = inner
                .consumer
                .assignment()
                .map_err(|e| Error::kafka("cannot read the assignment", &e))?;
            Ok(tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect())
        })
    }

    /// Moves assigned partitions to an offset (int, 'earliest' or 'latest')
    /// or to the first message at or after `timestamp_ms`. Waits up to
    /// `timeout` for a group assignment. Rows read but not yet returned are put back.
    #[pyo3(signature = (*, offset=None, timestamp_ms=None, topic=None, partition=None, timeout=10.0))]
    fn seek(
        &self,
        py: Python<'_>,
        offset: Option<&Bound<'_, PyAny>>,
        timestamp_ms: Option<i64>,
        topic: Option<String>,
        partition: Option<i32>,
        timeout: f64,
    ) -> PyResult<Vec<(String, i32, i64)>> {
        let target = match (offset, timestamp_ms) {
            (Some(o), None) => match o.extract::<i64>() {
                Ok(n) => Some(Offset::Offset(n)),
                Err(_) => Some(parse_offset(&o.extract::<String>()?)?),
            },
            (None, Some(_)) => None,
            _ => {
                return Err(
                    Error::Config("seek takes exactly one of offset= or timestamp=".into()).into(),
                )
            }
        };
        let wait = Duration::from_secs_f64(timeout.max(0.1));
        self.with_inner(py, |inner| {
            let assignment = Self::wait_for_assignment(inner, deadline(Some(timeout))?)?;
            Self::unread(inner, wait)?;
            let mut chosen = TopicPartitionList::new();
            for e in assignment.elements() {
                if topic.as_deref().is_some_and(|t| t != e.topic())
                    || partition.is_some_and(|p| p != e.partition())
                {
                    continue;
                }
                let at = target.unwrap_or(Offset::Offset(timestamp_ms.unwrap_or_default()));
                let _ = chosen.add_partition_offset(e.topic(), e.partition(), at);
            }
            if chosen.count() == 0 {
                return Err(Error::Config(format!(
                    "no assigned partition matches topic={topic:?} partition={partition:?}"
                )));
            }
            if target.is_none() {
                chosen = inner
                    .consumer
                    .offsets_for_times(chosen, wait)
                    .map_err(|e| Error::kafka("cannot look up offsets for the timestamp", &e))?;
            }
            let mut moved = Vec::new();
            for e in chosen.elements() {
                // No message at or after the time: wait at the end for new ones.
                let at = match e.offset() {
                    Offset::Offset(n) if n >= 0 => Offset::Offset(n),
                    Offset::Invalid => Offset::End,
                    other => other,
                };
                inner
                    .consumer
                    .seek(e.topic(), e.partition(), at, wait)
                    .map_err(|err| {
                        Error::kafka(
                            format!("cannot seek {}[{}]", e.topic(), e.partition()),
                            &err,
                        )
                    })?;
                moved.push((
                    e.topic().to_owned(),
                    e.partition(),
                    at.to_raw().unwrap_or(-1),
                ));
            }
            Ok(moved)
        })
    }

    /// Messages skipped with `on_error='skip'`: (topic, partition, offset, error, payload).
    #[getter]
    fn bad_messages<'py>(
        &self,
        py: Python<'py>,
    ) -> Vec<(String, i32, i64, String, Bound<'py, PyBytes>)> {
        self.bad
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b.topic.clone(),
                    b.partition,
                    b.offset,
                    b.error.clone(),
                    PyBytes::new(py, &b.payload),
                )
            })
            .collect()
    }

    /// Leaves the group (committing returned rows when auto-commit is on) and closes.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.closing.store(true, Relaxed);
        // A poll on another thread holds the lock until its next wake-up.
        let taken = py.detach(|| {
            self.inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        });
        if let Some(inner) = taken {
            let closed = close_in_background(inner);
            detached(py, move || {
                // librdkafka's close can wait a long time for brokers that are
                // gone; after CLOSE_WAIT it finishes on its own thread.
                let deadline = Instant::now() + CLOSE_WAIT;
                let mut interrupts = Interrupts::new();
                while Instant::now() < deadline {
                    match closed.recv_timeout(Duration::from_millis(20)) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => interrupts.check()?,
                        _ => break,
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    fn __repr__(&self) -> String {
        format!(
            "Consumer({}{})",
            self.settings.redacted(),
            if self.closed() { ", closed" } else { "" }
        )
    }
}
