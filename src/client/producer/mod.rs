//! The producer: frames to a topic.
//!
//! - A *send* encodes a frame into messages ([`crate::codec`]) and queues
//!   them with librdkafka ([`batch`]), which delivers them on its own threads.
//! - Every message carries a *ticket* naming its send's [`Tally`]; the
//!   delivery report (in [`context`]) counts its rows delivered or failed there.
//! - A send that waits returns once its tally has nothing in flight; one that
//!   does not (`wait=False`), or that was interrupted, stays *outstanding*
//!   until `flush()` reports it. `close()` waits for whatever is in flight.

pub mod batch;
pub mod context;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use rdkafka::producer::{Producer as _, ThreadedProducer};

pub use context::{Outstanding, SendReport, Tally};

use crate::client::registry::{self, RegistryClient};
use crate::client::{self, Context, Settings};
use crate::codec::{EncodeOptions, Encoder, Format, JsonOrient};
use crate::error::{Error, Result};
use crate::wait::{self, Check};

/// How a `send` encodes and queues a frame.
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// Columns whose values make the message key.
    pub key: Vec<String>,
    /// A datetime column whose values become the messages' Kafka timestamps.
    pub timestamp: Option<String>,
    /// Every message to this partition (None: librdkafka's partitioner).
    pub partition: Option<i32>,
    pub headers: Option<HashMap<String, Vec<u8>>>,
    pub format: Format,
    /// None: 10,000 for Arrow, 1 (a plain JSON object) for JSON.
    pub rows_per_message: Option<usize>,
    /// JSON: add the column types as a header to every message.
    pub schema_header: bool,
    /// raw, text: the column sent as each message's value.
    pub value: Option<String>,
    /// JSON: pandas' layout of each message (`to_json(orient=...)`).
    pub json_orient: JsonOrient,
    /// Wait for the broker's acknowledgements (else `flush()` reports them).
    pub wait: bool,
    /// Seconds for the whole send (None: no limit; metadata then waits 30 s).
    pub timeout: Option<f64>,
    /// Avro / JSON Schema: the subject to register under (None: `<topic>-value`).
    pub subject: Option<String>,
    /// Avro / JSON Schema: the schema's text (None: derived from the frame).
    pub schema: Option<String>,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            key: Vec::new(),
            timestamp: None,
            partition: None,
            headers: None,
            format: Format::Arrow,
            rows_per_message: None,
            schema_header: false,
            value: None,
            json_orient: JsonOrient::Records,
            wait: true,
            timeout: None,
            subject: None,
            schema: None,
        }
    }
}

/// Rows per message when the caller leaves it open: a JSON message is one
/// row (a plain object), an Arrow message many.
pub fn default_rows_per_message(format: Format) -> usize {
    match format {
        Format::Arrow => 10_000,
        // One row (an object, a line, a value, a record) per message, as others write them.
        Format::Json
        | Format::Csv
        | Format::Text
        | Format::Raw
        | Format::Avro
        | Format::JsonSchema => 1,
    }
}

struct Inner {
    producer: ThreadedProducer<Context>,
    partitions: Mutex<HashMap<String, usize>>,
    outstanding: Mutex<Vec<Outstanding>>,
}

impl Inner {
    /// Messages and rows sent but not yet acknowledged or failed.
    fn pending(&self) -> (u64, u64) {
        let outstanding = lock(&self.outstanding);
        outstanding.iter().fold((0, 0), |(m, r), o| {
            let t = &o.tally;
            (
                m + t.pending.load(Relaxed),
                r + o.rows_sent.saturating_sub(t.settled_rows()),
            )
        })
    }

    fn keep_outstanding(&self, sends: impl IntoIterator<Item = Outstanding>) {
        lock(&self.outstanding).extend(sends);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct Producer {
    settings: Settings,
    registry: Option<Arc<RegistryClient>>,
    inner: Mutex<Option<Arc<Inner>>>,
    /// What sends had to tell the user, until the caller takes it.
    warnings: Mutex<Vec<String>>,
}

impl Producer {
    /// A producer with tskafka's defaults under `settings` (idempotence on,
    /// linger 5 ms).
    pub fn new(mut settings: Settings) -> Result<Self> {
        let registry = registry::take_from(&mut settings)?;
        settings
            .default("enable.idempotence", "true")
            .default("linger.ms", "5")
            .default("client.id", "tskafka");
        let producer: ThreadedProducer<Context> = client::create(&settings, Context::default())?;
        Ok(Self {
            settings,
            registry,
            inner: Mutex::new(Some(Arc::new(Inner {
                producer,
                partitions: Mutex::new(HashMap::new()),
                outstanding: Mutex::new(Vec::new()),
            }))),
            warnings: Mutex::new(Vec::new()),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The warnings of sends since the last call (e.g. columns renamed for
    /// Avro, once per schema), for the caller to show.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.warnings))
    }

    fn inner(&self) -> Result<Arc<Inner>> {
        lock(&self.inner)
            .clone()
            .ok_or(Error::Closed("this Producer"))
    }

    fn partition_count(
        &self,
        inner: &Inner,
        topic: &str,
        timeout: Duration,
        check: Check<'_>,
    ) -> Result<usize> {
        if let Some(&n) = lock(&inner.partitions).get(topic) {
            return Ok(n);
        }
        let n = client::partition_counts(
            inner.producer.client(),
            &self.settings,
            &[topic],
            timeout,
            check,
        )?[0];
        lock(&inner.partitions).insert(topic.to_owned(), n);
        Ok(n)
    }

    /// Sends every row of `batches` to `topic`.
    pub fn send(
        &self,
        topic: &str,
        schema: SchemaRef,
        batches: &[RecordBatch],
        options: &SendOptions,
        check: Check<'_>,
    ) -> Result<SendReport> {
        let registered = registry::register_for_send(
            self.registry.as_deref(),
            options.format,
            topic,
            &schema,
            options.subject.as_deref(),
            options.schema.as_deref(),
        )?
        .map(|r| {
            lock(&self.warnings).extend(r.warning);
            (r.id, r.text)
        });
        let encode = EncodeOptions {
            format: options.format,
            rows_per_message: options
                .rows_per_message
                .unwrap_or(default_rows_per_message(options.format)),
            key_columns: options.key.clone(),
            timestamp_column: options.timestamp.clone(),
            max_message_bytes: batch::max_message_bytes(&self.settings),
            schema_header: options.schema_header,
            value_column: options.value.clone(),
            registered,
            json_orient: options.json_orient,
        };
        let inner = self.inner()?;
        let timeout = options.timeout;
        let metadata_timeout = Duration::from_secs_f64(timeout.unwrap_or(30.0).clamp(0.1, 300.0));
        let deadline = wait::deadline(timeout)?;
        let encoder = Encoder::new(schema, encode)?;
        let partitions = self.partition_count(&inner, topic, metadata_timeout, check)?;
        let partition = options.partition;
        if let Some(p) = partition {
            if p < 0 || p as usize >= partitions {
                return Err(Error::Config(format!(
                    "partition {p} does not exist: topic {topic:?} has partitions 0..{}",
                    partitions - 1
                )));
            }
        }
        let base_headers = batch::message_headers(options.headers.as_ref(), &encoder);
        let started = Instant::now();
        let tally = Arc::new(Tally::default());
        let mut rows_sent = 0u64;
        let result = (|| -> Result<()> {
            for b in batches {
                batch::send_batch(
                    &inner.producer,
                    &encoder,
                    b,
                    topic,
                    partition,
                    base_headers.as_ref(),
                    &tally,
                    &mut rows_sent,
                    &mut || {
                        check()?;
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
            topic: topic.to_owned(),
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
            inner.keep_outstanding([outstanding]);
            return Err(e);
        }
        if !options.wait {
            let report = outstanding.report(started.elapsed().as_secs_f64());
            inner.keep_outstanding([outstanding]);
            return report;
        }
        let delivered = wait::poll_until(deadline, Duration::from_millis(1), check, || {
            tally.pending.load(Relaxed) == 0
        });
        if !matches!(delivered, Ok(true)) {
            inner.keep_outstanding([outstanding]);
            delivered?;
            return Err(Error::Timeout(format!(
                "{} of {rows_sent} rows to {topic:?} were not acknowledged within {:.1}s; \
                 they are still in flight: call flush() to wait for them",
                rows_sent - tally.settled_rows(),
                timeout.unwrap_or_default()
            )));
        }
        let report = outstanding.report(started.elapsed().as_secs_f64());
        self.explain(&inner, topic, report, deadline, check)
    }

    /// Waits for every message sent with `wait=False` (or left by an
    /// interrupted send) and reports them as one send.
    pub fn flush(&self, timeout: Option<f64>, check: Check<'_>) -> Result<SendReport> {
        let inner = self.inner()?;
        let deadline = wait::deadline(timeout)?;
        let pending: Vec<Outstanding> = std::mem::take(&mut *lock(&inner.outstanding));
        let started = pending
            .iter()
            .map(|o| o.started)
            .min()
            .unwrap_or_else(Instant::now);
        let waited = wait::poll_until(deadline, Duration::from_millis(1), check, || {
            pending.iter().all(|o| o.tally.pending.load(Relaxed) == 0)
        });
        if !matches!(waited, Ok(true)) {
            // Timed out or interrupted: the messages stay outstanding for the next flush().
            let left: u64 = pending.iter().map(|o| o.tally.pending.load(Relaxed)).sum();
            inner.keep_outstanding(pending);
            waited?;
            return Err(Error::Timeout(format!(
                "{left} messages still in flight after {:.1}s; call flush() again",
                timeout.unwrap_or_default()
            )));
        }
        let mut topics: Vec<&str> = pending.iter().map(|o| o.topic.as_str()).collect();
        topics.dedup();
        let total = Outstanding {
            topic: match topics[..] {
                [only] => only.to_owned(),
                _ => String::new(),
            },
            tally: Arc::new(Tally::default()),
            rows_sent: pending.iter().map(|o| o.rows_sent).sum(),
            started,
        };
        for o in &pending {
            total.tally.add(&o.tally);
        }
        let report = total.report(started.elapsed().as_secs_f64());
        self.explain(&inner, &total.topic, report, deadline, check)
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
        check: Check<'_>,
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
        let limit = Duration::from_secs(2).min(deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        }));
        let asked = if limit.is_zero() {
            Ok(vec![])
        } else {
            client::partition_counts(
                inner.producer.client(),
                &self.settings,
                &[topic],
                limit,
                check,
            )
        };
        let message = match asked {
            Err(Error::Kafka { code, .. }) if code == "UnknownTopicOrPartition" => {
                lock(&inner.partitions).remove(topic);
                format!(
                    "{message}; topic {topic:?} no longer exists on {}: it was deleted while \
                     these rows were on their way",
                    self.settings.bootstrap_servers().unwrap_or("?")
                )
            }
            Err(e @ Error::Caller(_)) => return Err(e),
            _ => message,
        };
        Err(Error::Produce {
            message,
            rows_failed,
            rows_delivered,
        })
    }

    /// Messages queued or in flight (0 once closed).
    pub fn in_flight(&self) -> Result<u64> {
        Ok(self.inner()?.pending().0)
    }

    /// Waits up to `timeout` for messages in flight, then closes; rows still
    /// undelivered then fail with a ProduceError. Closing twice does nothing.
    pub fn close(&self, timeout: Duration, check: Check<'_>) -> Result<()> {
        let Some(inner) = lock(&self.inner).take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        wait::poll_until(Some(deadline), Duration::from_millis(5), check, || {
            inner.pending().0 == 0
        })?;
        let (messages, rows) = inner.pending();
        drop(inner);
        if messages > 0 {
            return Err(Error::Produce {
                message: format!(
                    "closed after {}s with {rows} rows ({messages} messages) not delivered",
                    timeout.as_secs_f64()
                ),
                rows_failed: rows,
                rows_delivered: 0,
            });
        }
        Ok(())
    }

    pub fn closed(&self) -> bool {
        lock(&self.inner).is_none()
    }
}
