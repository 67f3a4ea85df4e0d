use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use pyo3::prelude::*;
use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};

use super::convert::{batches_from_py, client_settings};
use super::wait::{deadline, detached, slice, Interrupts};
use crate::client::{self, Context};
use crate::config::Settings;
use crate::encode::{EncodeOptions, Encoder, Format, SCHEMA_HEADER};
use crate::error::{Error, Result};

/// Delivery counts of one `send`, updated from librdkafka's delivery callbacks.
#[derive(Default)]
pub struct Tally {
    pub(super) pending: AtomicU64,
    pub(super) rows: AtomicU64,
    pub(super) messages: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) failed_rows: AtomicU64,
    pub(super) failed_messages: AtomicU64,
    errors: Mutex<HashMap<String, u64>>,
}

impl Tally {
    pub(super) fn fail(&self, rows: u64, reason: String) {
        self.failed_rows.fetch_add(rows, Relaxed);
        self.failed_messages.fetch_add(1, Relaxed);
        *self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
    }
}

pub struct Ticket {
    tally: Arc<Tally>,
    rows: u64,
}

impl ProducerContext for Context {
    type DeliveryOpaque = Arc<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Arc<Ticket>) {
        let t = &ticket.tally;
        match result {
            Ok(m) => {
                t.rows.fetch_add(ticket.rows, Relaxed);
                t.messages.fetch_add(1, Relaxed);
                t.bytes.fetch_add(m.payload_len() as u64, Relaxed);
            }
            Err((e, _)) => t.fail(ticket.rows, e.to_string()),
        }
        t.pending.fetch_sub(1, Relaxed);
    }
}

/// What one `send` (or `flush`) delivered.
#[pyclass(frozen, module = "tskafka._tskafka", get_all, skip_from_py_object)]
#[derive(Clone)]
pub struct SendReport {
    /// Topic written to (empty for a flush across topics).
    topic: String,
    /// Rows delivered and acknowledged by the broker.
    rows: u64,
    messages: u64,
    /// Payload bytes delivered (before compression).
    bytes: u64,
    /// Rows still in flight (only with `wait=False`).
    rows_pending: u64,
    seconds: f64,
}

#[pymethods]
impl SendReport {
    fn __repr__(&self) -> String {
        format!(
            "SendReport(topic={:?}, rows={}, messages={}, bytes={}, rows_pending={}, seconds={:.3})",
            self.topic, self.rows, self.messages, self.bytes, self.rows_pending, self.seconds
        )
    }

    /// Rows per second over the call.
    #[getter]
    fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

pub(super) struct Outstanding {
    pub(super) topic: String,
    pub(super) tally: Arc<Tally>,
    pub(super) rows_sent: u64,
    pub(super) started: Instant,
}

struct Inner {
    producer: ThreadedProducer<Context>,
    partitions: Mutex<HashMap<String, usize>>,
    outstanding: Mutex<Vec<Outstanding>>,
}

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Producer {
    settings: Settings,
    inner: Mutex<Option<Arc<Inner>>>,
}

impl Inner {
    /// Messages and rows sent but not yet acknowledged or failed.
    fn pending(&self) -> (u64, u64) {
        let outstanding = self
            .outstanding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        outstanding.iter().fold((0, 0), |(m, r), o| {
            let t = &o.tally;
            let done = t.rows.load(Relaxed) + t.failed_rows.load(Relaxed);
            (
                m + t.pending.load(Relaxed),
                r + o.rows_sent.saturating_sub(done),
            )
        })
    }
}

impl Producer {
    fn inner(&self) -> Result<Arc<Inner>> {
        self.inner
            .lock()
            .unwrap()
            .clone()
            .ok_or(Error::Closed("this Producer"))
    }

    fn partition_count(&self, inner: &Inner, topic: &str, timeout: Duration) -> Result<usize> {
        if let Some(&n) = inner
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
        {
            return Ok(n);
        }
        let mut interrupts = Interrupts::new();
        let n = client::partition_counts(
            inner.producer.client(),
            &self.settings,
            &[topic],
            timeout,
            &mut || interrupts.check(),
        )?[0];
        inner
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), n);
        Ok(n)
    }

    /// Rows that timed out may have gone to a topic deleted meanwhile: say so
    /// (and forget its partitions, so the next send names the missing topic).
    /// The check asks the cluster for up to 2 s, never past `deadline`.
    fn explain(
        &self,
        inner: &Inner,
        topic: &str,
        sent: Result<SendReport>,
        deadline: Option<Instant>,
    ) -> Result<SendReport> {
        let Err(Error::Produce {
            message,
            rows_failed,
            rows_delivered,
        }) = sent
        else {
            return sent;
        };
        if topic.is_empty()
            || !(message.contains("MessageTimedOut") || message.contains("UnknownTopic"))
        {
            return Err(Error::Produce {
                message,
                rows_failed,
                rows_delivered,
            });
        }
        let limit = Duration::from_secs(2).min(
            deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now())),
        );
        let check = if limit.is_zero() {
            Ok(vec![])
        } else {
            client::partition_counts(
                inner.producer.client(),
                &self.settings,
                &[topic],
                limit,
                &mut || Ok(()),
            )
        };
        let message = match check {
            Err(Error::Kafka { code, .. }) if code == "UnknownTopicOrPartition" => {
                inner
                    .partitions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(topic);
                format!(
                    "{message}; topic {topic:?} no longer exists on {}: it was deleted while \
                     these rows were on their way",
                    self.settings.bootstrap_servers().unwrap_or("?")
                )
            }
            _ => message,
        };
        Err(Error::Produce {
            message,
            rows_failed,
            rows_delivered,
        })
    }
}

/// The largest payload to encode under the client's `message.max.bytes`.
pub(super) fn max_message_bytes(settings: &Settings) -> usize {
    let limit = settings
        .get("message.max.bytes")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1_000_000);
    // Room for the record's key, headers and framing.
    limit.saturating_sub(limit / 50).max(1024)
}

/// The user's headers plus, for JSON, the column types; None when there are none.
pub(super) fn message_headers(
    headers: Option<&HashMap<String, Vec<u8>>>,
    encoder: &Encoder,
) -> Option<OwnedHeaders> {
    let mut all = OwnedHeaders::new();
    for (k, v) in headers.into_iter().flatten() {
        all = all.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    if let Some(schema) = encoder.json_schema_header() {
        all = all.insert(Header {
            key: SCHEMA_HEADER,
            value: Some(schema),
        });
    }
    (all.count() > 0).then_some(all)
}

pub(super) fn report(o: &Outstanding, seconds: f64) -> Result<SendReport> {
    let t = &o.tally;
    let failed = t.failed_rows.load(Relaxed);
    let rows = t.rows.load(Relaxed);
    if failed > 0 {
        let errors = t.errors.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reasons: Vec<_> = errors.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1));
        let why = reasons
            .iter()
            .take(3)
            .map(|(r, n)| format!("{r} ({n} messages)"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Produce {
            message: format!(
                "{failed} of {} rows to topic {:?} were not delivered ({} messages failed): {why}",
                o.rows_sent,
                o.topic,
                t.failed_messages.load(Relaxed)
            ),
            rows_failed: failed,
            rows_delivered: rows,
        });
    }
    Ok(SendReport {
        topic: o.topic.clone(),
        rows,
        messages: t.messages.load(Relaxed),
        bytes: t.bytes.load(Relaxed),
        rows_pending: o.rows_sent - rows - failed,
        seconds,
    })
}

/// Waits until `tally` has no messages in flight.
fn wait_delivered(tally: &Tally, deadline: Option<Instant>) -> Result<bool> {
    let mut interrupts = Interrupts::new();
    while tally.pending.load(Relaxed) > 0 {
        if slice(deadline).is_none() {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(1));
        interrupts.check()?;
    }
    Ok(true)
}

#[pymethods]
impl Producer {
    #[new]
    #[pyo3(signature = (bootstrap_servers=None, config=None))]
    fn new(
        py: Python<'_>,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut settings = client_settings(bootstrap_servers, config)?;
        settings
            .default("enable.idempotence", "true")
            .default("linger.ms", "5")
            .default("client.id", "tskafka");
        let producer: ThreadedProducer<Context> =
            detached(py, || client::create(&settings, Context::default()))?;
        Ok(Self {
            settings,
            inner: Mutex::new(Some(Arc::new(Inner {
                producer,
                partitions: Mutex::new(HashMap::new()),
                outstanding: Mutex::new(Vec::new()),
            }))),
        })
    }

    /// Sends every row of `data` to `topic`; see the Python docstring.
    #[pyo3(signature = (topic, data, *, key=None, timestamp=None, partition=None, headers=None,
                        format="arrow", rows_per_message=None, schema_header=false, wait=true,
                        timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        topic: String,
        data: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        timestamp: Option<String>,
        partition: Option<i32>,
        headers: Option<HashMap<String, Vec<u8>>>,
        format: &str,
        rows_per_message: Option<usize>,
        schema_header: bool,
        wait: bool,
        timeout: Option<f64>,
    ) -> PyResult<SendReport> {
        let key_columns: Vec<String> = match key {
            None => Vec::new(),
            Some(k) if k.is_instance_of::<pyo3::types::PyString>() => vec![k.extract()?],
            Some(k) => k.extract()?,
        };
        let format = format.parse::<Format>()?;
        let options = EncodeOptions {
            format,
            // A JSON message is one row unless asked otherwise (then an array of rows).
            rows_per_message: rows_per_message.unwrap_or(match format {
                Format::Arrow => 10_000,
                Format::Json => 1,
            }),
            key_columns,
            timestamp_column: timestamp,
            max_message_bytes: max_message_bytes(&self.settings),
            schema_header,
        };
        let (schema, batches) = batches_from_py(data)?;
        let inner = self.inner()?;
        let metadata_timeout = Duration::from_secs_f64(timeout.unwrap_or(30.0).clamp(0.1, 300.0));
        let deadline = deadline(timeout)?;
        detached(py, || {
            let encoder = Encoder::new(schema, options)?;
            let partitions = self.partition_count(&inner, &topic, metadata_timeout)?;
            if let Some(p) = partition {
                if p < 0 || p as usize >= partitions {
                    return Err(Error::Config(format!(
                        "partition {p} does not exist: topic {topic:?} has partitions 0..{}",
                        partitions - 1
                    )));
                }
            }
            let base_headers = message_headers(headers.as_ref(), &encoder);
            let started = Instant::now();
            let tally = Arc::new(Tally::default());
            let mut rows_sent = 0u64;
            let mut interrupts = Interrupts::new();
            let result = (|| -> Result<()> {
                for batch in &batches {
                    send_batch(
                        &inner.producer,
                        &encoder,
                        batch,
                        &topic,
                        partition,
                        base_headers.as_ref(),
                        &tally,
                        &mut rows_sent,
                        &mut || {
                            interrupts.check()?;
                            match deadline {
                                // Queueing outlasted the timeout (most often a
                                // full local queue to a slow or unreachable cluster).
                                Some(d) if Instant::now() > d => Err(Error::Timeout(String::new())),
                                _ => Ok(()),
                            }
                        },
                    )?;
                }
                Ok(())
            })();
            let outstanding = Outstanding {
                topic: topic.clone(),
                tally: tally.clone(),
                rows_sent,
                started,
            };
            if let Err(e) = result {
                let e = match e {
                    Error::Schema(m) if rows_sent > 0 => Error::Schema(format!(
                        "{m} ({rows_sent} rows before it were queued: flush() reports them)"
                    )),
                    Error::Timeout(_) => Error::Timeout(format!(
                        "sending to {topic:?} did not finish queueing within its {:.1}s \
                         timeout (a slow or unreachable cluster, or a large frame: pass a \
                         longer timeout): {rows_sent} rows were queued (flush() reports \
                         them), the other {} were not sent",
                        timeout.unwrap_or_default(),
                        batches.iter().map(|b| b.num_rows() as u64).sum::<u64>() - rows_sent,
                    )),
                    e => e,
                };
                // Whatever was queued is still tracked: flush() reports it.
                inner
                    .outstanding
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(outstanding);
                return Err(e);
            }
            if wait {
                let done = wait_delivered(&tally, deadline);
                if !matches!(done, Ok(true)) {
                    inner
                        .outstanding
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(outstanding);
                    done?;
                    return Err(Error::Timeout(format!(
                        "{} of {rows_sent} rows to {topic:?} were not acknowledged within {:.1}s; \
                         they are still in flight: call flush() to wait for them",
                        rows_sent - tally.rows.load(Relaxed) - tally.failed_rows.load(Relaxed),
                        timeout.unwrap_or_default()
                    )));
                }
                self.explain(
                    &inner,
                    &topic,
                    report(&outstanding, started.elapsed().as_secs_f64()),
                    deadline,
                )
            } else {
                let r = report(&outstanding, started.elapsed().as_secs_f64());
                inner
                    .outstanding
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(outstanding);
                r
            }
        })
    }

    /// Waits for every message sent with `wait=False` (or left by an interrupted send).
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<SendReport> {
        let inner = self.inner()?;
        let deadline = deadline(timeout)?;
        detached(py, || {
            let pending: Vec<Outstanding> = std::mem::take(
                &mut *inner
                    .outstanding
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            let started = pending
                .iter()
                .map(|o| o.started)
                .min()
                .unwrap_or_else(Instant::now);
            let mut waited = Ok(true);
            for o in &pending {
                waited = wait_delivered(&o.tally, deadline);
                if !matches!(waited, Ok(true)) {
                    break;
                }
            }
            if !matches!(waited, Ok(true)) {
                // Timed out or interrupted: the messages stay outstanding for the next flush().
                let left: u64 = pending.iter().map(|o| o.tally.pending.load(Relaxed)).sum();
                inner
                    .outstanding
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(pending);
                waited?;
                return Err(Error::Timeout(format!(
                    "{left} messages still in flight after {:.1}s; call flush() again",
                    timeout.unwrap_or_default()
                )));
            }
            let total = Outstanding {
                topic: {
                    let mut topics: Vec<&str> = pending.iter().map(|o| o.topic.as_str()).collect();
                    topics.dedup();
                    if topics.len() == 1 {
                        topics[0].to_owned()
                    } else {
                        String::new()
                    }
                },
                tally: Arc::new(Tally::default()),
                rows_sent: pending.iter().map(|o| o.rows_sent).sum(),
                started,
            };
            for o in &pending {
                let (a, b) = (&total.tally, &o.tally);
                a.rows.fetch_add(b.rows.load(Relaxed), Relaxed);
                a.messages.fetch_add(b.messages.load(Relaxed), Relaxed);
                a.bytes.fetch_add(b.bytes.load(Relaxed), Relaxed);
                a.failed_rows
                    .fetch_add(b.failed_rows.load(Relaxed), Relaxed);
                a.failed_messages
                    .fetch_add(b.failed_messages.load(Relaxed), Relaxed);
                for (k, v) in b
                    .errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                {
                    *a.errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(k.clone())
                        .or_default() += v;
                }
            }
            self.explain(
                &inner,
                &total.topic,
                report(&total, started.elapsed().as_secs_f64()),
                deadline,
            )
        })
    }

    /// Messages queued or in flight.
    #[getter]
    fn in_flight(&self) -> PyResult<u64> {
        Ok(self.inner()?.pending().0)
    }

    /// Waits up to `timeout` seconds for messages in flight, then closes;
    /// rows still undelivered then raise ProduceError. Later calls raise ClosedError.
    #[pyo3(signature = (timeout=30.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let Some(inner) = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        detached(py, move || {
            let deadline = Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
            let mut interrupts = Interrupts::new();
            while inner.pending().0 > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
                interrupts.check()?;
            }
            let (messages, rows) = inner.pending();
            drop(inner);
            if messages > 0 {
                return Err(Error::Produce {
                    message: format!(
                        "closed after {timeout}s with {rows} rows ({messages} messages) not delivered"
                    ),
                    rows_failed: rows,
                    rows_delivered: 0,
                });
            }
            Ok(())
        })
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
            "Producer({}{})",
            self.settings.redacted(),
            if self.closed() { ", closed" } else { "" }
        )
    }
}

/// Queues every message of `batch`, retrying while the local queue is full;
/// `check` runs between messages and stops the send when it fails.
#[allow(clippy::too_many_arguments)]
pub(super) fn send_batch(
    producer: &ThreadedProducer<Context>,
    encoder: &Encoder,
    batch: &RecordBatch,
    topic: &str,
    partition: Option<i32>,
    headers: Option<&OwnedHeaders>,
    tally: &Arc<Tally>,
    rows_sent: &mut u64,
    check: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    // `check` reads the clock: once per one-row message it was ~2% of the send.
    let mut rows_unchecked = 0u64;
    // Rows queued before this batch: errors number rows across the whole send.
    let first_row = *rows_sent as usize;
    // Messages of one row count share a ticket: an allocation per message,
    // freed on librdkafka's delivery thread, took ~15% of the CPU of a
    // one-row-per-message send.
    let mut last: Option<Arc<Ticket>> = None;
    // Messages without a timestamp or headers go in batches.
    let mut gathered = match headers {
        None => Gathered::new(producer, topic, partition),
        Some(_) => None,
    };
    let mut queue = |m: crate::encode::Message<'_>| -> Result<()> {
        let rows = m.rows as u64;
        let ticket = match &last {
            Some(t) if t.rows == rows => t.clone(),
            _ => {
                let t = Arc::new(Ticket {
                    tally: tally.clone(),
                    rows,
                });
                last = Some(t.clone());
                t
            }
        };
        tally.pending.fetch_add(1, Relaxed);
        *rows_sent += rows;
        if let Some(g) = gathered.as_mut() {
            if m.timestamp_ms.is_none() {
                g.add(&m, ticket);
                if g.messages.len() < GATHER_MESSAGES && g.bytes.len() < GATHER_BYTES {
                    return Ok(());
                }
                g.produce(producer, tally, rows_sent, check)?;
                return check();
            }
            // Queued in order: what was gathered goes first.
            g.produce(producer, tally, rows_sent, check)
                .inspect_err(|_| unsend(tally, rows_sent, rows))?;
        }
        let mut record: BaseRecord<'_, [u8], [u8], Arc<Ticket>> =
            BaseRecord::with_opaque_to(topic, ticket).payload(m.payload);
        if let Some(k) = m.key {
            record = record.key(k);
        }
        if let Some(ts) = m.timestamp_ms {
            record = record.timestamp(ts);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(h) = headers {
            record = record.headers(h.clone());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The local queue is full: let librdkafka drain it, then retry.
                    record = r;
                    producer.poll(Duration::from_millis(1));
                    check().inspect_err(|_| unsend(tally, rows_sent, rows))?;
                }
                Err((e, _)) => {
                    tally.pending.fetch_sub(1, Relaxed);
                    tally.fail(rows, e.to_string());
                    break;
                }
            }
        }
        rows_unchecked += rows;
        if rows_unchecked < 64 {
            return Ok(());
        }
        rows_unchecked = 0;
        check()
    };
    // An error of the encoder (a row too large) comes after the rows before
    // it were accepted: those are queued, as they would have been one by one.
    // An error of the queueing (Ctrl+C, the timeout) stops the send there.
    let mut stopped = false;
    let encoded = encoder.encode_from(batch, first_row, &mut |m| {
        queue(m).inspect_err(|_| stopped = true)
    });
    match gathered.as_mut() {
        Some(g) if stopped => {
            g.abandon(tally, rows_sent);
            encoded
        }
        Some(g) => g.produce(producer, tally, rows_sent, check).and(encoded),
        None => encoded,
    }
}

/// A message counted as queued that was not.
fn unsend(tally: &Tally, rows_sent: &mut u64, rows: u64) {
    tally.pending.fetch_sub(1, Relaxed);
    *rows_sent -= rows;
}

/// librdkafka's RD_KAFKA_PARTITION_UA: its partitioner picks the partition.
const PARTITION_UNASSIGNED: i32 = -1;

/// Up to this many messages (or bytes) go to librdkafka in one call.
const GATHER_MESSAGES: usize = 1024;
const GATHER_BYTES: usize = 1 << 20;

/// Messages gathered for one `rd_kafka_produce_batch`: librdkafka then
/// reads the clock, finds the topic and takes its lock once per call, where
/// one call per message spent ~15% of a one-row-per-message send on that.
/// Messages are partitioned as one by one (librdkafka's partitioner).
struct Gathered {
    topic: *mut rd::rd_kafka_topic_t,
    partition: i32,
    bytes: Vec<u8>,
    messages: Vec<GatheredMessage>,
}

struct GatheredMessage {
    payload: std::ops::Range<usize>,
    key: Option<std::ops::Range<usize>>,
    ticket: Arc<Ticket>,
}

impl Gathered {
    /// None if librdkafka has no handle for `topic` (an invalid name):
    /// messages then go one by one, and fail one by one.
    fn new(
        producer: &ThreadedProducer<Context>,
        topic: &str,
        partition: Option<i32>,
    ) -> Option<Self> {
        let name = std::ffi::CString::new(topic).ok()?;
        let client = producer.client().native_ptr();
        // SAFETY: a live client and a NUL-terminated name; the handle is
        // released in Drop.
        let handle = unsafe { rd::rd_kafka_topic_new(client, name.as_ptr(), std::ptr::null_mut()) };
        (!handle.is_null()).then(|| Self {
            topic: handle,
            partition: partition.unwrap_or(PARTITION_UNASSIGNED),
            bytes: Vec::with_capacity(GATHER_BYTES + (64 << 10)),
            messages: Vec::with_capacity(GATHER_MESSAGES),
        })
    }

    fn add(&mut self, m: &crate::encode::Message<'_>, ticket: Arc<Ticket>) {
        let mut copy = |data: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(data);
            start..self.bytes.len()
        };
        let payload = copy(m.payload);
        let key = m.key.map(copy);
        self.messages.push(GatheredMessage {
            payload,
            key,
            ticket,
        });
    }

    /// Queues what is gathered, retrying while the local queue is full.
    fn produce(
        &mut self,
        producer: &ThreadedProducer<Context>,
        tally: &Tally,
        rows_sent: &mut u64,
        check: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let mut from = 0;
        while from < self.messages.len() {
            let mut natives: Vec<rd::rd_kafka_message_t> = self.messages[from..]
                .iter()
                .map(|g| {
                    // SAFETY: an all-zero rd_kafka_message_t is valid (null pointers).
                    let mut m: rd::rd_kafka_message_t = unsafe { std::mem::zeroed() };
                    m.payload = self.bytes[g.payload.clone()].as_ptr() as *mut _;
                    m.len = g.payload.len();
                    if let Some(k) = &g.key {
                        m.key = self.bytes[k.clone()].as_ptr() as *mut _;
                        m.key_len = k.len();
                    }
                    m._private = Arc::into_raw(g.ticket.clone()) as *mut _;
                    m
                })
                .collect();
            // SAFETY: a live topic handle; librdkafka copies each payload and
            // key (F_COPY) and keeps `_private` as the delivery opaque.
            unsafe {
                rd::rd_kafka_produce_batch(
                    self.topic,
                    self.partition,
                    rd::RD_KAFKA_MSG_F_COPY,
                    natives.as_mut_ptr(),
                    natives.len() as i32,
                );
            }
            let mut full_from = None;
            for (i, m) in natives.iter().enumerate() {
                if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    continue;
                }
                // Not queued, so no delivery report will return the ticket.
                // SAFETY: made by Arc::into_raw above and not taken by librdkafka.
                drop(unsafe { Arc::from_raw(m._private as *const Ticket) });
                if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // librdkafka stops at the first full queue: the rest are this too.
                    full_from.get_or_insert(from + i);
                    continue;
                }
                tally.pending.fetch_sub(1, Relaxed);
                let rows = self.messages[from + i].ticket.rows;
                tally.fail(
                    rows,
                    KafkaError::MessageProduction(m.err.into()).to_string(),
                );
            }
            let Some(next) = full_from else { break };
            from = next;
            // The local queue is full: let librdkafka drain it, then retry.
            producer.poll(Duration::from_millis(1));
            if let Err(e) = check() {
                self.messages.drain(..from);
                self.abandon(tally, rows_sent);
                return Err(e);
            }
        }
        self.messages.clear();
        self.bytes.clear();
        Ok(())
    }

    /// Uncounts the messages gathered and not queued (a send that stops).
    fn abandon(&mut self, tally: &Tally, rows_sent: &mut u64) {
        for g in self.messages.drain(..) {
            unsend(tally, rows_sent, g.ticket.rows);
        }
        self.bytes.clear();
    }
}

impl Drop for Gathered {
    fn drop(&mut self) {
        // SAFETY: the handle from rd_kafka_topic_new, released once.
        unsafe { rd::rd_kafka_topic_destroy(self.topic) };
    }
}
