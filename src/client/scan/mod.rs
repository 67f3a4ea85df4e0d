//! A topic read as a table: a snapshot of what is in it when the scan starts.
//!
//! - [`Scan::plan`] fixes the offsets to read: each partition from its low
//!   watermark (or a start offset) up to its high watermark as it is now (or
//!   an end offset); a time range becomes offsets through ListOffsets by
//!   timestamp ([`range::resolve`] does the arithmetic). No consumer group,
//!   nothing committed.
//! - [`Scan::run`] reads those ranges: partitions in parallel, one native
//!   thread per partition up to the cores, so decoding, the costly part,
//!   runs on every core; frames reach the caller through a bounded channel,
//!   so memory stays bounded however large the topic. A row limit stops
//!   every thread's fetching once reached. A run collected whole cuts
//!   partitions that cannot share the cores evenly (3 on 2, or 1) into
//!   runs of offsets ([`range::pieces`]), put back in order at the end.
//! - Both fetch with Kafka's requests sent directly ([`fetch`]) on a
//!   PLAINTEXT cluster, records read in place from the fetched batches;
//!   with TLS or SASL, through librdkafka (a client for the plan, an
//!   assigned consumer per thread).
//! - [`Stats`] counts what each partition fetched (messages, bytes, rows):
//!   what proves a filter was pushed down.
//!
//! Every message goes through the [`FrameBuilder`], so every format the
//! Consumer reads is read here too.

pub mod range;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

pub use range::Filter;

use crate::client::consumer::read::push_message;
use crate::client::fetch::{self, Direct, Link};
use crate::client::{self, Context, Settings};
use crate::codec::{
    FormatHint, Frame, FrameBuilder, HeaderSource, JsonOrient, MessageRef, SchemaSource,
    TextOptions, HEADERS_COLUMN, METADATA_COLUMNS, SCHEMA_HEADER,
};
use crate::error::{Error, Result};
use crate::records::{self, Aborted};
use crate::wait::{self, Check, SLICE};

/// What to scan and how to read it.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub topic: String,
    /// None: every partition.
    pub partitions: Option<Vec<i32>>,
    pub filter: Filter,
    pub format: FormatHint,
    /// The schema JSON messages are read into (None: inferred).
    pub json_schema: Option<SchemaRef>,
    /// Skip messages that cannot be decoded (counted in the stats) rather than fail.
    pub skip_bad: bool,
    /// A `kafka_headers` column: each message's headers.
    pub headers: bool,
    /// Seconds to reach the cluster, and the longest a partition may go
    /// without a message before its range is read.
    pub timeout: f64,
    /// How the text and csv formats read their messages.
    pub text: TextOptions,
    /// How JSON messages are laid out (pandas' orients; Auto: detected).
    pub json_orient: JsonOrient,
    /// Keys in the Schema Registry's Avro framing, shown as text.
    pub avro_keys: bool,
}

impl ScanOptions {
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            partitions: None,
            filter: Filter::default(),
            format: FormatHint::Auto,
            json_schema: None,
            skip_bad: false,
            headers: false,
            timeout: 10.0,
            text: TextOptions::default(),
            json_orient: JsonOrient::Auto,
            avro_keys: false,
        }
    }
}

/// The offsets of one partition: its watermarks and the range read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionRange {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    pub start: i64,
    pub end: i64,
}

/// How one run reads the planned ranges.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Stop fetching once this many rows were read.
    pub limit: Option<usize>,
    /// The columns handed out (None: all); only these are decoded, where
    /// the format allows (see `FrameBuilder::projection`).
    pub columns: Option<Vec<String>>,
    /// Rows per frame handed out (about: a message is never split).
    pub batch_rows: usize,
    /// Text as string views (what Polars holds).
    pub string_views: bool,
    /// Only these of the planned partitions (None: all).
    pub partitions: Option<Vec<i32>>,
    /// The run is read whole ([`Run::collect`]): without a limit, and unless
    /// it reads CSV lines, a partition may be read in pieces on several
    /// threads, its frames then arriving out of offset order until collect
    /// puts them back.
    pub whole: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            limit: None,
            columns: None,
            batch_rows: 100_000,
            string_views: false,
            partitions: None,
            whole: false,
        }
    }
}

/// The offsets a scan reads, fixed when it is planned.
pub struct Scan {
    settings: Settings,
    /// Set when the cluster is read with Kafka's requests sent directly.
    direct: Option<Direct>,
    /// Where framed messages' schemas come from (`schema.registry.url`).
    registry: Option<Arc<dyn SchemaSource>>,
    options: ScanOptions,
    ranges: Vec<PartitionRange>,
}

/// The client settings of a scan's consumers: assigned partitions only, no
/// group joined, nothing committed; the end of a partition reported.
fn scan_settings(mut settings: Settings) -> Settings {
    let message_max = settings
        .get("message.max.bytes")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    settings
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .default("fetch.wait.max.ms", "5")
        .default("max.partition.fetch.bytes", "16777216")
        .default(
            "fetch.max.bytes",
            &(4u64 << 20).max(message_max).to_string(),
        )
        .default("fetch.queue.backoff.ms", "10")
        .default("client.id", "tskafka-scan")
        // librdkafka refuses an assignment without a group.id; an assigned
        // consumer never joins it, and commits nothing here.
        .default("group.id", "tskafka-scan");
    settings
}

/// Runs `work` on a thread of its own and waits for it in slices, so that
/// `check` (Ctrl+C) is heard while librdkafka waits for a broker; past
/// `timeout` the thread is left to end by itself.
fn off_thread<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
    timeout: Duration,
    check: Check<'_>,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("tskafka-scan-plan".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| Error::thread("a topic scan", &e))?;
    // librdkafka's own timeouts end the work; a second more for its answer.
    let deadline = Instant::now() + timeout + Duration::from_secs(1);
    let answer = wait::until(Some(deadline), check, |slice| {
        match rx.recv_timeout(slice) {
            Ok(answer) => Ok(Some(answer)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Kafka {
                message: format!("{what} ended without an answer"),
                code: "Fail".into(),
                retriable: true,
                fatal: false,
            }),
        }
    })?;
    answer.unwrap_or_else(|| {
        Err(Error::Timeout(format!(
            "{what}: no answer within {:.1}s",
            timeout.as_secs_f64()
        )))
    })
}

/// The offset of each partition answering a ListOffsets-by-time lookup.
fn offsets_for_time(
    consumer: &BaseConsumer<Context>,
    topic: &str,
    partitions: &[i32],
    at_ms: i64,
    timeout: Duration,
) -> Result<Vec<range::Lookup>> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(at_ms))
            .map_err(|e| Error::kafka("bad partition list", &e))?;
    }
    let found = consumer.offsets_for_times(tpl, timeout).map_err(|e| {
        Error::kafka(
            format!("cannot look up the offsets of {topic} at {at_ms} ms"),
            &e,
        )
    })?;
    partitions
        .iter()
        .map(|&p| {
            let e = found.find_partition(topic, p).ok_or_else(|| {
                Error::kafka_code(
                    format!("no offset for {topic}[{p}] at {at_ms} ms"),
                    rdkafka::error::RDKafkaErrorCode::UnknownPartition,
                )
            })?;
            e.error().map_err(|err| {
                Error::kafka(format!("cannot look up {topic}[{p}] at {at_ms} ms"), &err)
            })?;
            // Kafka answers -1 (librdkafka: the end) when no record is that late.
            Ok(match e.offset() {
                Offset::Offset(n) if n >= 0 => Some(n),
                _ => None,
            })
        })
        .collect()
}

/// The partitions of a topic of `count` that a scan reads: all, or those
/// asked (which must exist).
fn chosen_partitions(topic: &str, count: usize, asked: Option<&[i32]>) -> Result<Vec<i32>> {
    match asked {
        None => Ok((0..count as i32).collect()),
        Some(asked) => {
            let asked: BTreeSet<i32> = asked.iter().copied().collect();
            if let Some(p) = asked.iter().find(|p| **p < 0 || **p as usize >= count) {
                return Err(Error::Config(format!(
                    "partition {p} does not exist: topic {topic:?} has partitions 0..{}",
                    count - 1
                )));
            }
            Ok(asked.into_iter().collect())
        }
    }
}

/// Each partition's range from its watermarks and the filter's time lookups.
fn ranges_of(
    partitions: &[i32],
    watermarks: &[(i64, i64)],
    starts: &[Option<range::Lookup>],
    ends: &[Option<range::Lookup>],
    filter: &Filter,
) -> Vec<PartitionRange> {
    partitions
        .iter()
        .enumerate()
        .map(|(i, &partition)| {
            let (low, high) = watermarks[i];
            let (start, end) = range::resolve(low, high, filter, starts[i], ends[i]);
            PartitionRange {
                partition,
                low,
                high,
                start,
                end,
            }
        })
        .collect()
}

/// The plan, asked with Kafka's requests sent directly.
fn plan_direct(
    direct: Direct,
    options: &ScanOptions,
    check: Check<'_>,
) -> Result<Vec<PartitionRange>> {
    let topic = options.topic.clone();
    let asked = options.partitions.clone();
    let filter = options.filter;
    let timeout = direct.timeout();
    off_thread(
        "reading the topic's offsets",
        move || {
            let mut link = Link::new(direct);
            let count = link.partitions(&topic)?;
            let partitions = chosen_partitions(&topic, count, asked.as_deref())?;
            let lows = link.list_offsets(&topic, &partitions, fetch::EARLIEST)?;
            let highs = link.list_offsets(&topic, &partitions, fetch::LATEST)?;
            let watermarks: Vec<(i64, i64)> = lows.into_iter().zip(highs).collect();
            let mut lookup = |at: Option<i64>| -> Result<Vec<Option<range::Lookup>>> {
                match at {
                    None => Ok(vec![None; partitions.len()]),
                    // -1: no record is that late.
                    Some(t) => Ok(link
                        .list_offsets(&topic, &partitions, t)?
                        .into_iter()
                        .map(|o| Some((o >= 0).then_some(o)))
                        .collect()),
                }
            };
            let starts = lookup(filter.start_ms)?;
            let ends = lookup(filter.end_ms)?;
            Ok(ranges_of(&partitions, &watermarks, &starts, &ends, &filter))
        },
        timeout,
        check,
    )
}

/// The plan, asked through a librdkafka client (TLS, SASL).
fn plan_with_librdkafka(
    settings: &Settings,
    options: &ScanOptions,
    timeout: Duration,
    check: Check<'_>,
) -> Result<Vec<PartitionRange>> {
    let consumer: Arc<BaseConsumer<Context>> =
        Arc::new(client::create(settings, Context::default())?);
    let topic = options.topic.clone();
    let count = {
        let consumer = consumer.clone();
        let mut serve = || {
            // Serves the client's events so that a failure to connect is recorded.
            let _ = consumer.poll(Duration::ZERO);
            check()
        };
        client::partition_counts(consumer.client(), settings, &[&topic], timeout, &mut serve)?[0]
    };
    let partitions = chosen_partitions(&topic, count, options.partitions.as_deref())?;
    let filter = options.filter;
    let planner = consumer.clone();
    let ranges = off_thread(
        "reading the topic's offsets",
        move || {
            let watermarks = partitions
                .iter()
                .map(|&p| {
                    consumer.fetch_watermarks(&topic, p, timeout).map_err(|e| {
                        Error::kafka(format!("cannot read the offsets of {topic}[{p}]"), &e)
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let lookup = |at: Option<i64>| -> Result<Vec<Option<range::Lookup>>> {
                match at {
                    None => Ok(vec![None; partitions.len()]),
                    Some(t) => Ok(
                        offsets_for_time(&consumer, &topic, &partitions, t, timeout)?
                            .into_iter()
                            .map(Some)
                            .collect(),
                    ),
                }
            };
            let starts = lookup(filter.start_ms)?;
            let ends = lookup(filter.end_ms)?;
            Ok(ranges_of(&partitions, &watermarks, &starts, &ends, &filter))
        },
        timeout,
        check,
    );
    // Its close waits for the group coordinator: not the caller's wait.
    let _ = std::thread::Builder::new()
        .name("tskafka-scan-close".into())
        .spawn(move || drop(planner));
    ranges
}

impl Scan {
    /// Fixes the offsets to read: the topic's partitions (or those asked),
    /// their watermarks now, and the time range's offsets.
    pub fn plan(mut settings: Settings, options: ScanOptions, check: Check<'_>) -> Result<Self> {
        let registry =
            crate::client::registry::take_from(&mut settings)?.map(|r| r as Arc<dyn SchemaSource>);
        let settings = scan_settings(settings);
        let timeout = Duration::from_secs_f64(options.timeout.max(0.1));
        let direct = Direct::for_settings(&settings, timeout)?;
        let ranges = match &direct {
            Some(direct) => plan_direct(direct.clone(), &options, check)?,
            None => plan_with_librdkafka(&settings, &options, timeout, check)?,
        };
        Ok(Self {
            settings,
            direct,
            registry,
            options,
            ranges,
        })
    }

    pub fn ranges(&self) -> &[PartitionRange] {
        &self.ranges
    }

    pub fn options(&self) -> &ScanOptions {
        &self.options
    }

    /// Starts reading the planned ranges; frames come from [`Run::next`].
    pub fn run(&self, options: RunOptions) -> Result<Run> {
        let chosen: Vec<PartitionRange> = self
            .ranges
            .iter()
            .filter(|r| {
                options
                    .partitions
                    .as_ref()
                    .is_none_or(|ps| ps.contains(&r.partition))
            })
            .copied()
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let spans: Vec<(i64, i64)> = chosen.iter().map(|r| (r.start, r.end)).collect();
        // CSV lines pin their types (and take a header) from the stream's
        // first frame: each partition must be read from its start.
        let csv = matches!(self.options.format, FormatHint::Csv);
        let whole = options.whole && options.limit.is_none() && !csv;
        let work: VecDeque<(usize, range::Piece)> = range::pieces(&spans, cores, whole)
            .into_iter()
            .enumerate()
            .collect();
        let stats = Arc::new(Stats {
            partitions: (chosen.iter().enumerate())
                .map(|(i, r)| {
                    let pieces = work.iter().filter(|(_, p)| p.index == i).count();
                    PartitionStats::new(r, pieces)
                })
                .collect(),
        });
        let threads = range::workers(work.len(), cores);
        let (tx, rx) = mpsc::sync_channel(threads.max(1) * 2);
        let job = Arc::new(Job {
            settings: self.settings.clone(),
            direct: self.direct.clone(),
            registry: self.registry.clone(),
            headers: self.options.headers,
            topic: self.options.topic.clone(),
            format: self.options.format,
            json_schema: self.options.json_schema.clone(),
            text: self.options.text.clone(),
            json_orient: self.options.json_orient,
            avro_keys: self.options.avro_keys,
            skip_bad: self.options.skip_bad,
            timeout: Duration::from_secs_f64(self.options.timeout.max(0.1)),
            ranges: chosen,
            work: Mutex::new(work),
            stop: AtomicBool::new(false),
            rows_read: AtomicUsize::new(0),
            options: options.clone(),
            stats: stats.clone(),
        });
        if options.limit != Some(0) {
            for _ in 0..threads {
                let (shared, tx) = (job.clone(), tx.clone());
                std::thread::Builder::new()
                    .name("tskafka-scan".into())
                    .spawn(move || read_partitions(&shared, tx))
                    .map_err(|e| {
                        job_stop(&job);
                        Error::thread("a topic scan", &e)
                    })?;
            }
        }
        Ok(Run {
            receiver: rx,
            job,
            stats,
            handed_out: 0,
            limit: options.limit,
        })
    }
}

fn job_stop(job: &Job) {
    job.stop.store(true, Relaxed);
}

/// What the threads of one run share.
struct Job {
    settings: Settings,
    direct: Option<Direct>,
    registry: Option<Arc<dyn SchemaSource>>,
    headers: bool,
    topic: String,
    format: FormatHint,
    json_schema: Option<SchemaRef>,
    text: TextOptions,
    json_orient: JsonOrient,
    avro_keys: bool,
    skip_bad: bool,
    timeout: Duration,
    ranges: Vec<PartitionRange>,
    /// The pieces of `ranges` not yet taken by a thread, with their place
    /// in the order frames are collected in.
    work: Mutex<VecDeque<(usize, range::Piece)>>,
    stop: AtomicBool,
    rows_read: AtomicUsize,
    options: RunOptions,
    stats: Arc<Stats>,
}

impl Job {
    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
            || range::limit_reached(self.rows_read.load(Relaxed), self.options.limit)
    }
}

/// A frame of a piece: the piece's place in order, the partition, the rows.
type Sent = Result<(usize, i32, Frame)>;

/// What one thread reads with: Kafka's requests sent directly when the
/// cluster allows, else (or for a legacy batch) a librdkafka consumer,
/// made when first needed.
struct Fetchers {
    link: Option<Link>,
    consumer: Option<BaseConsumer<Context>>,
}

impl Fetchers {
    fn consumer(&mut self, job: &Job) -> Result<&BaseConsumer<Context>> {
        if self.consumer.is_none() {
            self.consumer = Some(client::create(&job.settings, Context::default())?);
        }
        Ok(self.consumer.as_ref().expect("just made"))
    }
}

/// One thread: takes pieces until none is left. The channel closes
/// before a librdkafka consumer does: its close waits for its group
/// coordinator, which the reader need not wait for.
fn read_partitions(job: &Job, tx: SyncSender<Sent>) {
    let mut fetchers = Fetchers {
        link: job.direct.clone().map(Link::new),
        consumer: None,
    };
    read_each(job, &mut fetchers, &tx);
    drop(tx);
    drop(fetchers);
}

fn read_each(job: &Job, fetchers: &mut Fetchers, tx: &SyncSender<Sent>) {
    loop {
        if job.stopped() {
            return;
        }
        let next = job
            .work
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let Some((seq, piece)) = next else { return };
        match read_piece(job, fetchers, seq, piece, tx) {
            Ok(()) => {}
            Err(Error::Stopped) => return,
            Err(e) => {
                job_stop(job);
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

fn read_piece(
    job: &Job,
    fetchers: &mut Fetchers,
    seq: usize,
    piece: range::Piece,
    tx: &SyncSender<Sent>,
) -> Result<()> {
    let r = PartitionRange {
        start: piece.start,
        end: piece.end,
        ..job.ranges[piece.index]
    };
    let mut reader = PartitionReader::new(job, piece.index, seq, tx);
    let from = match &mut fetchers.link {
        None => r.start,
        Some(link) => match read_directly(job, link, &mut reader, r)? {
            Ended::Read(done) => return reader.finish(done),
            Ended::Legacy(from) => from,
        },
    };
    let consumer = fetchers.consumer(job)?;
    let done = read_with_librdkafka(job, consumer, &mut reader, r, from)?;
    reader.finish(done)
}

/// The rows of one piece of a partition as its messages come: the stats,
/// the frame being built, handed over whenever it holds a frame's worth.
struct PartitionReader<'a> {
    job: &'a Job,
    i: usize,
    seq: usize,
    tx: &'a SyncSender<Sent>,
    builder: FrameBuilder,
    /// Rows already counted in the job's `rows_read`.
    counted: usize,
    /// The piece's earliest and latest timestamps so far.
    times: Option<(i64, i64)>,
}

impl<'a> PartitionReader<'a> {
    fn new(job: &'a Job, i: usize, seq: usize, tx: &'a SyncSender<Sent>) -> Self {
        let mut builder = FrameBuilder::new(job.format, true, job.json_schema.clone())
            .with_text_options(job.text.clone());
        builder.json_orient = job.json_orient;
        builder.set_avro_keys(job.avro_keys);
        builder.string_views = job.options.string_views;
        builder.set_schema_source(job.registry.clone());
        let columns = job.options.columns.as_ref();
        builder.headers =
            job.headers && columns.is_none_or(|cs| cs.iter().any(|c| c == HEADERS_COLUMN));
        builder.projection = columns.map(|cs| {
            let data = cs.iter().filter(|c| !is_metadata(c));
            data.cloned().collect::<HashSet<_>>()
        });
        // One topic: the same in every row, never handed out.
        builder.metadata_shown = METADATA_COLUMNS
            .map(|c| c != "kafka_topic" && columns.is_none_or(|cs| cs.iter().any(|w| w == c)));
        Self {
            job,
            i,
            seq,
            tx,
            builder,
            counted: 0,
            times: None,
        }
    }

    /// Adds one message (`push` hands it to the builder): its timestamp,
    /// its payload and key size.
    fn take(
        &mut self,
        timestamp_ms: Option<i64>,
        size: usize,
        push: impl FnOnce(&mut FrameBuilder),
    ) -> Result<()> {
        let job = self.job;
        let stats = &job.stats.partitions[self.i];
        stats.messages.fetch_add(1, Relaxed);
        stats.bytes.fetch_add(size as u64, Relaxed);
        if let Some(ts) = timestamp_ms {
            let (earliest, latest) = self.times.get_or_insert((ts, ts));
            if ts < *latest {
                stats.out_of_order.fetch_add(1, Relaxed);
            }
            *earliest = (*earliest).min(ts);
            *latest = (*latest).max(ts);
        }
        push(&mut self.builder);
        if let Some(e) = self.builder.take_unavailable() {
            return Err(e);
        }
        let rows = self.builder.rows();
        job.rows_read
            .fetch_add(rows.saturating_sub(self.counted), Relaxed);
        self.counted = rows;
        if rows >= job.options.batch_rows.max(1) || (!job.skip_bad && self.builder.has_bad()) {
            hand_over(job, &mut self.builder, self.i, self.seq, self.tx)?;
            self.counted = self.builder.rows();
        }
        Ok(())
    }

    /// Hands over the rest; `done`: the range was read to its end.
    fn finish(mut self, done: bool) -> Result<()> {
        hand_over(self.job, &mut self.builder, self.i, self.seq, self.tx)?;
        self.job.stats.partitions[self.i].piece_read(self.seq, done, self.times);
        Ok(())
    }
}

/// How a direct read of a partition ended.
enum Ended {
    /// Read to the range's end (true) or stopped (false).
    Read(bool),
    /// A batch in a legacy format (magic 0 or 1) at this offset: the rest
    /// is read through librdkafka.
    Legacy(i64),
}

/// A record's headers, as the raw and text formats read them.
impl HeaderSource for records::Headers<'_> {
    fn each(&self, f: &mut dyn FnMut(&str, Option<&[u8]>)) {
        for (key, value) in self.iter() {
            if let Ok(key) = std::str::from_utf8(key) {
                f(key, value);
            }
        }
    }
}

/// Reads the range of one partition with fetches sent directly: the next
/// fetch is sent as soon as an answer is in, before its batches are read.
fn read_directly(
    job: &Job,
    link: &mut Link,
    reader: &mut PartitionReader<'_>,
    r: PartitionRange,
) -> Result<Ended> {
    let topic = job.topic.as_str();
    let partition = r.partition;
    let mut next = r.start;
    let mut aborted = Aborted::default();
    let mut pending: Option<fetch::Pending> = None;
    let mut progress = Instant::now();
    let gave_up = |e: Error| e.map_message(|m| format!("cannot read {topic}[{partition}]: {m}"));
    let ended = |link: &mut Link, pending: Option<fetch::Pending>, how: Ended| {
        // An answer still on its way would be read as the next request's.
        if let Some(p) = pending {
            link.forget(p.node());
        }
        Ok(how)
    };
    loop {
        if job.stopped() {
            return ended(link, pending, Ended::Read(false));
        }
        let sent = match pending.take() {
            Some(p) => Ok(p),
            // The first fetch of a range asks for one batch, the next ones
            // for what the rest should take at that size per offset: a
            // short range (a time window, a first look) fetches little
            // more than it reads.
            None => link.send_fetch(topic, partition, next, (next == r.start).then_some(1)),
        };
        let fetched = match sent.and_then(|p| link.receive_fetch(p, partition)) {
            Ok(f) => f,
            Err((node, e)) if fetch::is_retriable(&e) && progress.elapsed() < job.timeout => {
                link.forget(node);
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err((_, e)) => return Err(gave_up(e)),
        };
        match fetched.error {
            0 => {}
            code if code == kafka_protocol::ResponseError::OffsetOutOfRange.code() => {
                // Deleted since the plan (retention): what is left of the range.
                let earliest = link
                    .list_offsets(topic, &[partition], fetch::EARLIEST)
                    .map_err(gave_up)?[0];
                if earliest > next && earliest < r.end {
                    next = earliest;
                    continue;
                }
                return Ok(Ended::Read(true));
            }
            code if fetch::leader_moved(code) && progress.elapsed() < job.timeout => {
                link.forget(-1);
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            code => {
                return Err(fetch::answered(
                    format_args!("cannot read {topic}[{partition}] at offset {next}"),
                    code,
                ))
            }
        }
        aborted.add(fetched.aborted);
        let batches = records::whole_batches(&fetched.records);
        let Some(last) = batches.last() else {
            if !fetched.records.is_empty() {
                return Err(Error::Kafka {
                    message: format!(
                        "cannot read {topic}[{partition}] at offset {next}: the broker sent \
                         {} bytes holding no whole record batch (a batch larger than \
                         max.partition.fetch.bytes? raise it in the config)",
                        fetched.records.len()
                    ),
                    code: "MsgSizeTooLarge".into(),
                    retriable: false,
                    fatal: false,
                });
            }
            // The partition ends before the planned end: compacted or
            // transaction-marker offsets carry no record.
            let stable = if fetched.last_stable_offset >= 0 {
                fetched.last_stable_offset
            } else {
                fetched.high_watermark
            };
            if fetched.high_watermark <= next || stable <= next {
                return Ok(Ended::Read(true));
            }
            if progress.elapsed() > job.timeout {
                return Err(Error::Timeout(format!(
                    "no record from {topic}[{partition}] for {:.1}s while reading offsets \
                     {}..{} (next: {next}): is the broker still up? (timeout= sets the wait)",
                    job.timeout.as_secs_f64(),
                    r.start,
                    r.end
                )));
            }
            continue;
        };
        progress = Instant::now();
        let after = records::next_offset(last).max(next);
        if after < r.end {
            let held = batches.iter().map(|b| b.len()).sum();
            let first = records::header(&batches[0]).base_offset;
            let size = range::fetch_bytes(held, after - first, r.end - after);
            match link.send_fetch(topic, partition, after, size) {
                Ok(p) => pending = Some(p),
                // Sent again, and its failure handled, on the next turn.
                Err((node, _)) => link.forget(node),
            }
        }
        for batch in &batches {
            if batch[records::MAGIC] < 2 {
                return ended(link, pending, Ended::Legacy(next));
            }
            let h = records::header(batch);
            if aborted.skips(&h) || h.last_offset() < next {
                next = next.max(h.last_offset() + 1);
                continue;
            }
            let corrupt = |reason: records::Unreadable| Error::Kafka {
                message: format!(
                    "cannot read {topic}[{partition}]: the record batch at offset {}: {}",
                    h.base_offset, reason.0
                ),
                code: "CorruptMessage".into(),
                retriable: false,
                fatal: false,
            };
            let section = records::body(batch).map_err(corrupt)?;
            for record in records::records(&h, &section) {
                let record = record.map_err(corrupt)?;
                if record.offset < next {
                    continue;
                }
                if record.offset >= r.end {
                    return ended(link, pending, Ended::Read(true));
                }
                if job.stopped() {
                    return ended(link, pending, Ended::Read(false));
                }
                let headers = record.headers;
                let m = MessageRef {
                    topic,
                    partition,
                    offset: record.offset,
                    timestamp_ms: (record.timestamp >= 0).then_some(record.timestamp),
                    key: record.key,
                    payload: record.value,
                    schema_header: headers
                        .iter()
                        .find(|(k, _)| *k == SCHEMA_HEADER.as_bytes())
                        .and_then(|(_, v)| v),
                };
                let size = record.value.map_or(0, <[u8]>::len) + record.key.map_or(0, <[u8]>::len);
                reader.take(m.timestamp_ms, size, |b| {
                    let shown = (!headers.is_empty()).then_some(&headers as &dyn HeaderSource);
                    b.push_with_headers(m, shown)
                })?;
                next = record.offset + 1;
            }
            next = next.max(h.last_offset() + 1);
            if next >= r.end {
                return ended(link, pending, Ended::Read(true));
            }
        }
        next = next.max(after);
    }
}

/// Reads partition `r` from `from` through the thread's librdkafka
/// consumer; true when read to the range's end.
fn read_with_librdkafka(
    job: &Job,
    consumer: &BaseConsumer<Context>,
    reader: &mut PartitionReader<'_>,
    r: PartitionRange,
    from: i64,
) -> Result<bool> {
    let topic = job.topic.as_str();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, r.partition, Offset::Offset(from))
        .map_err(|e| Error::kafka("bad assignment", &e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| Error::kafka(format!("cannot read {topic}[{}]", r.partition), &e))?;
    // Since when the partition has been quiet (no clock read per message).
    let mut quiet_since: Option<Instant> = None;
    let mut next = from;
    loop {
        if job.stopped() {
            return Ok(false);
        }
        match consumer.poll(SLICE) {
            None => {
                if quiet_since.get_or_insert_with(Instant::now).elapsed() > job.timeout {
                    return Err(Error::Timeout(format!(
                        "no message from {topic}[{}] for {:.1}s while reading offsets {}..{} \
                         (next: {next}): is the broker still up? (timeout= sets the wait)",
                        r.partition,
                        job.timeout.as_secs_f64(),
                        r.start,
                        r.end
                    )));
                }
            }
            Some(Ok(m)) => {
                if m.partition() != r.partition || m.topic() != topic {
                    continue; // fetched for a partition read before
                }
                quiet_since = None;
                if m.offset() >= r.end {
                    return Ok(true);
                }
                next = m.offset() + 1;
                let size = m.payload_len() + m.key().map_or(0, <[u8]>::len);
                reader.take(m.timestamp().to_millis(), size, |b| push_message(b, &m))?;
                if next >= r.end {
                    return Ok(true);
                }
            }
            // The partition's end now (at or past the planned end): compacted
            // or transaction-marker offsets carry no message.
            Some(Err(KafkaError::PartitionEOF(p))) if p == r.partition => return Ok(true),
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => {
                return Err(Error::kafka(
                    format!("cannot read {topic}[{}]", r.partition),
                    &e,
                ))
            }
        }
    }
}

fn is_metadata(column: &str) -> bool {
    METADATA_COLUMNS.contains(&column) || column == HEADERS_COLUMN
}

/// Sends the rows decoded so far, each frame as one message of the channel.
fn hand_over(
    job: &Job,
    builder: &mut FrameBuilder,
    i: usize,
    seq: usize,
    tx: &SyncSender<Sent>,
) -> Result<()> {
    let stats = &job.stats.partitions[i];
    loop {
        let frame = builder.take_frame()?;
        let bad = builder.take_bad();
        stats.bad.fetch_add(bad.len() as u64, Relaxed);
        if !job.skip_bad {
            if let Some(first) = bad.into_iter().next() {
                return Err(first.into_error());
            }
        }
        let Some(frame) = frame else { break };
        let frame = select(frame, job.options.columns.as_deref())?;
        stats.rows.fetch_add(frame.num_rows() as u64, Relaxed);
        if tx.send(Ok((seq, job.ranges[i].partition, frame))).is_err() {
            // Nobody reads any more.
            job_stop(job);
            return Err(Error::Stopped);
        }
    }
    builder.take_positions();
    Ok(())
}

/// The frame without `kafka_topic` (one topic: the same in every row), and
/// only `columns` when given (those the frame has, in its order).
fn select(frame: Frame, columns: Option<&[String]>) -> Result<Frame> {
    let keep: Vec<usize> = frame
        .schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != "kafka_topic")
        .filter(|(_, f)| columns.is_none_or(|cs| cs.iter().any(|c| c == f.name())))
        .map(|(i, _)| i)
        .collect();
    if keep.len() == frame.schema.fields().len() {
        return Ok(frame);
    }
    let schema = Arc::new(frame.schema.project(&keep)?);
    let batches = frame
        .batches
        .iter()
        .map(|b| b.project(&keep))
        .collect::<std::result::Result<Vec<RecordBatch>, _>>()?;
    Ok(Frame { schema, batches })
}

/// What each partition of a run fetched.
pub struct Stats {
    pub partitions: Vec<PartitionStats>,
}

pub struct PartitionStats {
    pub range: PartitionRange,
    pub messages: AtomicU64,
    /// Payload and key bytes of the messages fetched.
    pub bytes: AtomicU64,
    /// Rows handed out.
    pub rows: AtomicU64,
    /// Messages that could not be decoded.
    pub bad: AtomicU64,
    /// Messages whose timestamp is before an earlier message's: a lookup by
    /// time assumes there are none. Read in pieces, where a piece starts
    /// below the latest time before it, that counts one.
    pub out_of_order: AtomicU64,
    /// Read to the end of its range.
    pub done: AtomicBool,
    /// The pieces read so far; the last completes `done` and `out_of_order`.
    pieces: Mutex<Vec<PieceRead>>,
    pieces_planned: usize,
}

/// How a piece of a partition ended.
struct PieceRead {
    /// Its place in the partition's order.
    seq: usize,
    /// Read to its end.
    done: bool,
    /// Its earliest and latest timestamps.
    times: Option<(i64, i64)>,
}

impl PartitionStats {
    fn new(range: &PartitionRange, pieces: usize) -> Self {
        Self {
            range: *range,
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            done: AtomicBool::new(pieces == 0),
            pieces: Mutex::new(Vec::with_capacity(pieces)),
            pieces_planned: pieces,
        }
    }

    /// The pieces its range is read in.
    pub fn pieces(&self) -> usize {
        self.pieces_planned
    }

    fn piece_read(&self, seq: usize, done: bool, times: Option<(i64, i64)>) {
        let mut pieces = self.pieces.lock().unwrap_or_else(PoisonError::into_inner);
        pieces.push(PieceRead { seq, done, times });
        if pieces.len() < self.pieces_planned {
            return;
        }
        pieces.sort_unstable_by_key(|p| p.seq);
        let mut latest = i64::MIN;
        for piece in pieces.iter() {
            if let Some((earliest, last)) = piece.times {
                if earliest < latest {
                    self.out_of_order.fetch_add(1, Relaxed);
                }
                latest = latest.max(last);
            }
        }
        self.done.store(pieces.iter().all(|p| p.done), Relaxed);
    }
}

/// A run of a scan: its frames, as the threads decode them.
pub struct Run {
    receiver: Receiver<Sent>,
    job: Arc<Job>,
    stats: Arc<Stats>,
    handed_out: usize,
    limit: Option<usize>,
}

impl Drop for Run {
    fn drop(&mut self) {
        // Threads blocked on a full channel wake when the receiver goes.
        job_stop(&self.job);
    }
}

impl Run {
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    fn receive(&mut self, check: Check<'_>) -> Result<Option<(usize, i32, Frame)>> {
        if range::limit_reached(self.handed_out, self.limit) {
            job_stop(&self.job);
            return Ok(None);
        }
        let receiver = &self.receiver;
        let got = wait::until(None, check, |slice| match receiver.recv_timeout(slice) {
            Ok(sent) => Ok(Some(Some(sent))),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Ok(Some(None)),
        })?;
        let Some(Some(sent)) = got else {
            return Ok(None);
        };
        let (seq, partition, frame) = sent?;
        let frame = match self.limit {
            Some(limit) => truncate(frame, limit - self.handed_out),
            None => frame,
        };
        self.handed_out += frame.num_rows();
        Ok(Some((seq, partition, frame)))
    }

    /// The next frame (None once every range is read or the limit reached);
    /// `check` runs between slices of the wait. In a run read `whole`, a
    /// partition's frames may come out of offset order.
    pub fn next(&mut self, check: Check<'_>) -> Result<Option<(i32, Frame)>> {
        Ok(self.receive(check)?.map(|(_, p, f)| (p, f)))
    }

    /// Every frame, partition by partition (each in offset order).
    pub fn collect(&mut self, check: Check<'_>) -> Result<Vec<Frame>> {
        let mut frames = Vec::new();
        while let Some(f) = self.receive(check)? {
            frames.push(f);
        }
        // Stable: a piece's frames came in order.
        frames.sort_by_key(|(seq, _, _)| *seq);
        Ok(frames.into_iter().map(|(_, _, f)| f).collect())
    }
}

/// `frames` with each run of frames of the same schema joined into one.
pub fn alike(frames: Vec<Frame>) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    for f in frames {
        match out.last_mut() {
            Some(last) if last.schema == f.schema => last.batches.extend(f.batches),
            _ => out.push(f),
        }
    }
    out
}

/// The first `rows` rows of `frame`.
fn truncate(frame: Frame, rows: usize) -> Frame {
    if frame.num_rows() <= rows {
        return frame;
    }
    let mut left = rows;
    let mut batches = Vec::new();
    for b in frame.batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        batches.push(b.slice(0, n));
        left -= n;
    }
    Frame {
        schema: frame.schema,
        batches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    fn frame(rows: &[usize]) -> Frame {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("kafka_topic", DataType::Utf8, false),
        ]));
        let mut n = 0;
        let batches = rows
            .iter()
            .map(|&r| {
                let a = Int64Array::from_iter_values(n..n + r as i64);
                n += r as i64;
                let t = StringArray::from(vec!["t"; r]);
                RecordBatch::try_new(schema.clone(), vec![Arc::new(a), Arc::new(t)]).unwrap()
            })
            .collect();
        Frame { schema, batches }
    }

    #[test]
    fn pieces_complete_their_partitions_stats_in_order() {
        let range = PartitionRange {
            partition: 0,
            low: 0,
            high: 20,
            start: 0,
            end: 20,
        };
        let stats = PartitionStats::new(&range, 3);
        // The last piece ends first; the middle one starts before the
        // first one's latest time.
        stats.piece_read(2, true, Some((30, 40)));
        stats.piece_read(1, true, Some((5, 12)));
        assert!(!stats.done.load(Relaxed));
        stats.piece_read(0, true, Some((1, 10)));
        assert!(stats.done.load(Relaxed));
        assert_eq!(stats.out_of_order.load(Relaxed), 1);
        let stopped = PartitionStats::new(&range, 2);
        stopped.piece_read(0, true, None);
        stopped.piece_read(1, false, None);
        assert!(!stopped.done.load(Relaxed));
        assert!(PartitionStats::new(&range, 0).done.load(Relaxed));
    }

    #[test]
    fn frames_of_one_schema_are_joined_in_order() {
        let other = Frame {
            schema: Arc::new(Schema::new(vec![Field::new("b", DataType::Int64, true)])),
            batches: Vec::new(),
        };
        let joined = alike(vec![frame(&[1, 2]), frame(&[3]), other, frame(&[4])]);
        let rows: Vec<usize> = joined.iter().map(Frame::num_rows).collect();
        assert_eq!(rows, [6, 0, 4]);
        assert_eq!(joined[0].batches.len(), 3);
        let firsts: Vec<i64> = joined[0]
            .batches
            .iter()
            .map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0)
            })
            .collect();
        assert_eq!(firsts, [0, 1, 0]);
    }

    #[test]
    fn a_limit_cuts_the_last_frame() {
        let f = truncate(frame(&[3, 4, 5]), 5);
        assert_eq!(f.num_rows(), 5);
        assert_eq!(f.batches.len(), 2);
        assert_eq!(truncate(frame(&[3]), 10).num_rows(), 3);
        assert_eq!(truncate(frame(&[3, 4]), 0).num_rows(), 0);
    }

    #[test]
    fn selection_drops_the_topic_and_keeps_asked_columns() {
        let f = select(frame(&[2]), None).unwrap();
        assert_eq!(f.schema.fields().len(), 1);
        assert_eq!(f.batches[0].num_columns(), 1);
        let none = select(frame(&[2]), Some(&["b".to_owned()])).unwrap();
        assert_eq!(none.schema.fields().len(), 0);
        assert_eq!(none.batches[0].num_rows(), 2);
    }

    #[test]
    fn settings_read_without_a_group_or_commits() {
        let mut given = Settings::new();
        given
            .set("bootstrap.servers", "b:9092")
            .set("enable.auto.commit", "true");
        let s = scan_settings(given);
        assert_eq!(s.get("enable.auto.commit"), Some("false"));
        assert_eq!(s.get("enable.partition.eof"), Some("true"));
        assert_eq!(s.get("group.id"), Some("tskafka-scan"));
    }
}
