//! The consumer: a topic's messages as frames.
//!
//! - It reads a group's partitions (`subscribe`) or chosen ones (`assign`);
//!   a group's partitions without a committed offset start at `offset`
//!   directly (see [`crate::client::context`]).
//! - [`read`]: messages decoded into frames; the *positions* of the rows
//!   handed out are what auto-commit stores and `commit()` commits.
//! - `seek` moves assigned partitions to an offset or a time, putting back
//!   what was read ahead.
//! - `close` leaves the group on a thread of its own: librdkafka's close can
//!   wait long for brokers that are gone, and its caller waits only so long.
//! - [`background`]: reading on a native thread, into a buffer and/or a callback.

pub mod background;
pub mod read;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use read::{pump, push_message, tpl_of, Inner};
pub use read::{with_string_views, Positions};

use crate::client::{self, Context, Settings};
use crate::codec::{BadMessage, FormatHint, FrameBuilder, JsonOrient, TextOptions};
use crate::error::{Error, Result};
use crate::wait::{self, Check};

/// How a consumer reads; librdkafka's own properties come in its settings.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// None: a group of its own (`tskafka-<uuid>`), unless the settings name one.
    pub group_id: Option<String>,
    /// 'earliest' or 'latest': where partitions without a committed offset start.
    pub offset: Option<String>,
    pub auto_commit: Option<bool>,
    pub format: FormatHint,
    /// Add the messages' topic, partition, offset, timestamp and key as columns.
    pub metadata: bool,
    pub on_error: OnError,
    /// The schema JSON messages are read into (None: inferred).
    pub json_schema: Option<SchemaRef>,
    /// How the text and csv formats read their messages.
    pub text: TextOptions,
    /// Seconds to wait for metadata when subscribing or assigning.
    pub timeout: f64,
    /// Keys in the Schema Registry's Avro framing, shown as text.
    pub avro_keys: bool,
    /// How JSON messages are laid out (pandas' orients; Auto: detected).
    pub json_orient: JsonOrient,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            group_id: None,
            offset: None,
            auto_commit: None,
            format: FormatHint::Auto,
            metadata: false,
            on_error: OnError::Raise,
            json_schema: None,
            text: TextOptions::default(),
            timeout: 10.0,
            avro_keys: false,
            json_orient: JsonOrient::Auto,
        }
    }
}

/// What a message that cannot be decoded does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Raise a DecodeError for it (once), then read on.
    Raise,
    /// Keep it in `bad_messages` and read on.
    Skip,
}

impl std::str::FromStr for OnError {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "raise" => Ok(OnError::Raise),
            "skip" => Ok(OnError::Skip),
            other => Err(Error::Config(format!(
                "on_error must be 'raise' or 'skip', got {other:?}"
            ))),
        }
    }
}

/// Where a seek goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeekTo {
    Offset(Offset),
    /// The first message at or after this time (ms since the epoch).
    Time(i64),
}

impl SeekTo {
    /// From `seek`'s arguments: an offset (a number, or a name such as
    /// 'earliest') or a timestamp, exactly one of them.
    pub fn from_args(
        offset_number: Option<i64>,
        offset_name: Option<&str>,
        timestamp_ms: Option<i64>,
    ) -> Result<Self> {
        match (offset_number, offset_name, timestamp_ms) {
            (Some(n), None, None) => Ok(SeekTo::Offset(Offset::Offset(n))),
            (None, Some(name), None) => Ok(SeekTo::Offset(parse_offset(name)?)),
            (None, None, Some(t)) => Ok(SeekTo::Time(t)),
            _ => Err(Error::Config(
                "seek takes exactly one of offset= or timestamp=".into(),
            )),
        }
    }
}

pub fn parse_offset(offset: &str) -> Result<Offset> {
    match offset {
        "earliest" | "beginning" | "smallest" => Ok(Offset::Beginning),
        "latest" | "end" | "largest" => Ok(Offset::End),
        other => Err(Error::Config(format!(
            "offset must be 'earliest' or 'latest', got {other:?} (use seek() for a number or a time)"
        ))),
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

/// The consumer's settings: explicit options win over the user's settings,
/// which win over tskafka's defaults.
fn consumer_settings(mut settings: Settings, options: &ConsumerOptions) -> Result<Settings> {
    if let Some(g) = &options.group_id {
        settings.set("group.id", g.clone());
    }
    if let Some(offset) = &options.offset {
        let reset = match parse_offset(offset)? {
            Offset::Beginning => "earliest",
            _ => "latest",
        };
        settings.set("auto.offset.reset", reset);
    }
    if let Some(auto_commit) = options.auto_commit {
        settings.set(
            "enable.auto.commit",
            if auto_commit { "true" } else { "false" },
        );
    }
    let fetch_max = fetch_max_bytes(&settings);
    settings
        .default("group.id", &format!("tskafka-{}", uuid::Uuid::new_v4()))
        .default("auto.offset.reset", "latest")
        .default("enable.auto.commit", "true")
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
    Ok(settings)
}

pub struct Consumer {
    settings: Settings,
    auto_commit: bool,
    skip_bad: bool,
    start: Offset,
    timeout: Duration,
    inner: Mutex<Option<Inner>>,
    bad: Mutex<VecDeque<BadMessage>>,
    /// Set by `close()`: a read running on another thread ends at its next wake-up.
    closing: AtomicBool,
    /// Calls waiting for the consumer. A background reader lets them go
    /// first: the lock is not fair, and a reader that locks again at once
    /// after each read could keep a drain or a commit waiting for minutes.
    waiting: AtomicUsize,
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
        // Never block the thread that drops an unclosed consumer.
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

impl Consumer {
    pub fn new(mut settings: Settings, options: ConsumerOptions) -> Result<Self> {
        let registry = crate::client::registry::take_from(&mut settings)?;
        let settings = consumer_settings(settings, &options)?;
        let start = parse_offset(settings.get("auto.offset.reset").unwrap_or("latest"))
            .unwrap_or(Offset::End);
        let context = Context {
            offset_reset: parse_offset(settings.get("auto.offset.reset").unwrap_or("latest")).ok(),
            ..Context::default()
        };
        let consumer: BaseConsumer<Context> = client::create(&settings, context)?;
        let mut builder = FrameBuilder::new(options.format, options.metadata, options.json_schema);
        builder.set_avro_keys(options.avro_keys);
        builder.set_schema_source(registry.map(|r| r as Arc<dyn crate::codec::SchemaSource>));
        Ok(Self {
            auto_commit: settings.get("enable.auto.commit") == Some("true"),
            settings,
            skip_bad: options.on_error == OnError::Skip,
            start,
            timeout: Duration::from_secs_f64(options.timeout.max(0.1)),
            inner: Mutex::new(Some(Inner {
                consumer,
                builder: {
                    let mut b = builder.with_text_options(options.text);
                    b.json_orient = options.json_orient;
                    b
                },
                pending_frame: None,
                pending_errors: VecDeque::new(),
                after_error: Positions::new(),
                handed_out: Positions::new(),
            })),
            bad: Mutex::new(VecDeque::new()),
            closing: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn lock_inner(&self) -> MutexGuard<'_, Option<Inner>> {
        self.waiting.fetch_add(1, SeqCst);
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.waiting.fetch_sub(1, SeqCst);
        guard
    }

    /// Waits (a little) while other calls wait for the consumer.
    fn let_others_go_first(&self) {
        let until = Instant::now() + Duration::from_millis(100);
        while self.waiting.load(SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Runs `work` on the open consumer (waiting for a read on another
    /// thread to reach its next wake-up).
    fn with_inner<T>(&self, work: impl FnOnce(&mut Inner) -> Result<T>) -> Result<T> {
        let mut guard = self.lock_inner();
        let inner = guard.as_mut().ok_or(Error::Closed("this Consumer"))?;
        work(inner)
    }

    /// Joins the consumer group and reads `topics` (which must exist).
    pub fn subscribe(&self, topics: &[String], check: Check<'_>) -> Result<()> {
        self.with_inner(|inner| {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            client::partition_counts(
                inner.consumer.client(),
                &self.settings,
                &names,
                self.timeout,
                &mut pump(&inner.consumer, &mut inner.builder, check),
            )?;
            inner
                .consumer
                .subscribe(&names)
                .map_err(|e| Error::kafka(format!("cannot subscribe to {names:?}"), &e))
        })
    }

    /// Reads the given partitions without a group: `(topic, partition,
    /// offset)`; without an offset, the consumer's `offset` applies.
    pub fn assign(
        &self,
        partitions: &[(String, i32, Option<i64>)],
        check: Check<'_>,
    ) -> Result<()> {
        self.with_inner(|inner| {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, offset) in partitions {
                let n = client::partition_counts(
                    inner.consumer.client(),
                    &self.settings,
                    &[topic],
                    self.timeout,
                    &mut pump(&inner.consumer, &mut inner.builder, &mut *check),
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

    /// Commits the offsets of every row handed out so far.
    pub fn commit(&self, asynchronous: bool) -> Result<()> {
        self.with_inner(|inner| {
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

    /// The group's committed offsets.
    pub fn committed(&self, timeout: Duration) -> Result<Positions> {
        self.with_inner(|inner| {
            let tpl = inner
                .consumer
                .committed(timeout)
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

    /// Partitions currently assigned: `(topic, partition)`.
    pub fn assignment(&self) -> Result<Vec<(String, i32)>> {
        self.with_inner(|inner| {
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

    /// Moves assigned partitions (those of `topic` / `partition` when
    /// given) to `to`. Waits up to `timeout` seconds for a group assignment.
    /// Rows read but not yet handed out are put back. Returns where each
    /// partition went: `(topic, partition, offset)`, -1 for the end.
    pub fn seek(
        &self,
        to: SeekTo,
        topic: Option<&str>,
        partition: Option<i32>,
        timeout: f64,
        check: Check<'_>,
    ) -> Result<Vec<(String, i32, i64)>> {
        let wait = Duration::from_secs_f64(timeout.max(0.1));
        let deadline = wait::deadline(Some(timeout))?;
        self.with_inner(|inner| {
            let assignment = wait_for_assignment(inner, deadline, check)?;
            unread(inner, wait)?;
            let mut chosen = TopicPartitionList::new();
            for e in assignment.elements() {
                if topic.is_some_and(|t| t != e.topic())
                    || partition.is_some_and(|p| p != e.partition())
                {
                    continue;
                }
                let at = match to {
                    SeekTo::Offset(o) => o,
                    SeekTo::Time(t) => Offset::Offset(t),
                };
                let _ = chosen.add_partition_offset(e.topic(), e.partition(), at);
            }
            if chosen.count() == 0 {
                return Err(Error::Config(format!(
                    "no assigned partition matches topic={topic:?} partition={partition:?}"
                )));
            }
            if let SeekTo::Time(_) = to {
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

    /// Messages skipped with `on_error='skip'`, the latest [`read::KEEP_BAD`].
    pub fn bad_messages(&self) -> Vec<BadMessage> {
        self.bad
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Leaves the group (committing handed-out rows when auto-commit is on)
    /// and closes. A read on another thread ends at its next wake-up; after
    /// a few seconds librdkafka finishes closing on a thread of its own.
    pub fn close(&self, check: Check<'_>) -> Result<()> {
        self.closing.store(true, Relaxed);
        let Some(inner) = self.lock_inner().take() else {
            return Ok(());
        };
        let closed = close_in_background(inner);
        wait::until(
            Some(Instant::now() + CLOSE_WAIT),
            check,
            |slice| match closed.recv_timeout(slice) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Ok(None),
                _ => Ok(Some(())),
            },
        )?;
        Ok(())
    }

    pub fn closed(&self) -> bool {
        self.lock_inner().is_none()
    }
}

/// Puts back everything read but not yet handed out, so a seek starts clean.
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
    check: Check<'_>,
) -> Result<TopicPartitionList> {
    let assigned = wait::until(deadline, check, |slice| {
        let assignment = inner
            .consumer
            .assignment()
            .map_err(|e| Error::kafka("cannot read the assignment", &e))?;
        if assignment.count() > 0 {
            return Ok(Some(assignment));
        }
        if let Some(Ok(m)) = inner.consumer.poll(slice) {
            push_message(&mut inner.builder, &m);
        }
        Ok(None)
    })?;
    assigned.ok_or_else(|| {
        Error::Timeout(
            "no partitions were assigned to this consumer in time: \
             is it subscribed, and does the group have free partitions?"
                .into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert_eq!("skip".parse::<OnError>().unwrap(), OnError::Skip);
        let err = "ignore".parse::<OnError>().unwrap_err().to_string();
        assert_eq!(err, "on_error must be 'raise' or 'skip', got \"ignore\"");
        assert_eq!(parse_offset("beginning").unwrap(), Offset::Beginning);
        let err = parse_offset("5").unwrap_err().to_string();
        assert!(err.contains("use seek() for a number"), "{err}");
        assert_eq!(
            SeekTo::from_args(Some(5), None, None).unwrap(),
            SeekTo::Offset(Offset::Offset(5))
        );
        assert_eq!(
            SeekTo::from_args(None, Some("latest"), None).unwrap(),
            SeekTo::Offset(Offset::End)
        );
        assert_eq!(
            SeekTo::from_args(None, None, Some(9)).unwrap(),
            SeekTo::Time(9)
        );
        for (n, name, t) in [(None, None, None), (Some(1), None, Some(2))] {
            let err = SeekTo::from_args(n, name, t).unwrap_err().to_string();
            assert_eq!(err, "seek takes exactly one of offset= or timestamp=");
        }
    }

    #[test]
    fn explicit_options_win_over_settings_over_defaults() {
        let mut given = Settings::new();
        given
            .set("bootstrap.servers", "b:9092")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .set("message.max.bytes", "10000000");
        let options = ConsumerOptions {
            offset: Some("latest".into()),
            group_id: Some("g".into()),
            ..ConsumerOptions::default()
        };
        let s = consumer_settings(given.clone(), &options).unwrap();
        assert_eq!(s.get("auto.offset.reset"), Some("latest"));
        assert_eq!(s.get("group.id"), Some("g"));
        assert_eq!(s.get("enable.auto.commit"), Some("false"));
        assert_eq!(s.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(s.get("fetch.max.bytes"), Some("10000000"));
        assert_eq!(s.get("enable.auto.offset.store"), Some("false"));
        let s = consumer_settings(given, &ConsumerOptions::default()).unwrap();
        assert_eq!(s.get("auto.offset.reset"), Some("earliest"));
        assert!(s.get("group.id").unwrap().starts_with("tskafka-"));
        let bad = ConsumerOptions {
            offset: Some("first".into()),
            ..ConsumerOptions::default()
        };
        assert!(consumer_settings(Settings::new(), &bad).is_err());
    }
}
