//! Messages -> frames: the builder every decoder feeds. It keeps each
//! message's metadata (topic, partition, offset, timestamp, key), the
//! positions to commit, the messages it could not decode, and unions the
//! columns of consecutive parts into one frame.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use arrow_array::builder::{make_view, BooleanBufferBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{
    new_null_array, ArrayRef, Int32Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    StringViewArray, TimestampMillisecondArray,
};
use arrow_array::{Array, StructArray};
use arrow_buffer::{Buffer, MutableBuffer, NullBuffer, ScalarBuffer};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_select::concat::concat_batches;

use super::avro::AvroRun;
use super::confluent::RegistryState;
use super::csv_lines::{CsvRun, CsvStream};
use super::json::{json_shape_error, JsonRun};
use super::pandas_json::JsonOrient;
use super::raw::{headers_type, HeaderSource, HeadersBuilder, RawRun, TextOptions};
use super::text::batch_with_string_views;
use super::FormatHint;
use crate::error::{Error, Result};

/// What a decoder needs of one Kafka message.
#[derive(Clone, Copy, Debug)]
pub struct MessageRef<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The value of the `tskafka.schema` header, if any.
    pub schema_header: Option<&'a [u8]>,
}

/// A message that could not be decoded, kept with its raw bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct BadMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub error: String,
    pub payload: Vec<u8>,
}

impl BadMessage {
    pub fn into_error(self) -> Error {
        Error::Decode {
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
            reason: self.error,
            payload: self.payload,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Meta {
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    pub(super) offset: i64,
    timestamp_ms: Option<i64>,
    key: Option<String>,
    /// The message's headers, when the frame shows them.
    headers: Option<Arc<[Header]>>,
    /// Rows the message holds.
    pub(super) rows: usize,
}

/// A header's key and value.
type Header = (Box<str>, Option<Box<[u8]>>);

pub const METADATA_COLUMNS: [&str; 5] = [
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "kafka_key",
];

/// The metadata column of the messages' headers, when asked for
/// ([`FrameBuilder::headers`]): typed as a raw frame's `headers`.
pub const HEADERS_COLUMN: &str = "kafka_headers";

/// The rows of one or more messages.
struct Part {
    /// With text as string views if they were wanted when it came.
    batch: RecordBatch,
    metas: Vec<Meta>,
    /// The batch as decoded, if `batch` holds string views made from it.
    plain: Option<RecordBatch>,
}

/// What decoding a run of messages gave, added to the frame in order.
pub(super) enum Decoded {
    Part {
        batch: RecordBatch,
        /// The same with string views, if frames want them.
        viewed: Option<RecordBatch>,
        metas: Vec<Meta>,
    },
    /// A message refused, and the rows it had been counted for.
    Bad { bad: BadMessage, rows: usize },
}

/// What a run decoded on a worker thread adds to the builder (its part,
/// its bad messages), applied on the builder's own thread.
pub(super) type Settle = Box<dyn FnOnce(&mut FrameBuilder) + Send>;

/// Collects messages and turns them into one record batch.
pub struct FrameBuilder {
    pub(super) hint: FormatHint,
    metadata: bool,
    pub(super) json_schema: Option<SchemaRef>,
    /// How JSON messages are laid out (pandas' orients).
    pub json_orient: JsonOrient,
    /// Whether frames should hold text as string views (what Polars holds):
    /// made message by message as they come, while the next ones arrive.
    pub string_views: bool,
    /// The data columns wanted (None: all). Decoders that can leave a
    /// column out do (Arrow IPC skips its buffers, JSON, Avro and CSV lines
    /// decode past its values), so a frame may hold fewer columns than its
    /// messages.
    pub projection: Option<HashSet<String>>,
    /// Which of [`METADATA_COLUMNS`] metadata frames have (all unless told).
    pub metadata_shown: [bool; 5],
    /// Whether metadata frames have a `kafka_headers` column.
    pub headers: bool,
    /// The headers of the message being pushed, when `headers` is on.
    message_headers: Option<Arc<[Header]>>,
    parts: Vec<Part>,
    /// JSON messages held to be decoded together.
    pub(super) json: Option<JsonRun>,
    /// The options of the line formats (text, csv).
    pub(super) text: TextOptions,
    /// Messages read raw or as text, not yet a part.
    pub(super) raw: Option<RawRun>,
    /// CSV messages not yet decoded or typed, and the stream's columns and types.
    pub(super) csv_run: Option<CsvRun>,
    pub(super) csv: CsvStream,
    /// Avro messages of one schema id, gathered to be decoded in runs.
    pub(super) avro: Option<AvroRun>,
    pub(super) registry: RegistryState,
    /// A run being decoded on a worker thread while the next messages
    /// arrive; settled before any other part is added, so parts keep the
    /// order of their messages.
    decoding: Option<JoinHandle<Settle>>,
    pub(super) bad: Vec<BadMessage>,
    pub(super) rows: usize,
    /// Next offset to consume, per (topic, partition), of everything pushed.
    positions: BTreeMap<(String, i32), i64>,
    /// First offset pushed per (topic, partition) since the last take.
    firsts: BTreeMap<(String, i32), i64>,
    /// Positions of rows held back for the next frame.
    deferred: BTreeMap<(String, i32), i64>,
    deferred_from: BTreeMap<(String, i32), i64>,
    topic_names: BTreeMap<String, Arc<str>>,
}

impl FrameBuilder {
    pub fn new(hint: FormatHint, metadata: bool, json_schema: Option<SchemaRef>) -> Self {
        Self {
            hint,
            // A raw or text frame holds its messages' metadata in columns of its own.
            metadata: metadata && !matches!(hint, FormatHint::Raw | FormatHint::Text),
            json_schema,
            json_orient: JsonOrient::Auto,
            string_views: false,
            projection: None,
            metadata_shown: [true; 5],
            headers: false,
            message_headers: None,
            parts: Vec::new(),
            json: None,
            text: TextOptions::default(),
            raw: None,
            csv_run: None,
            csv: CsvStream::default(),
            avro: None,
            registry: RegistryState::default(),
            decoding: None,
            bad: Vec::new(),
            rows: 0,
            positions: BTreeMap::new(),
            firsts: BTreeMap::new(),
            deferred: BTreeMap::new(),
            deferred_from: BTreeMap::new(),
            topic_names: BTreeMap::new(),
        }
    }

    /// The options of the text and csv formats.
    pub fn with_text_options(mut self, text: TextOptions) -> Self {
        self.text = text;
        self
    }

    /// Rows collected so far (JSON messages count one row each until decoded).
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
            && self.json.is_none()
            && self.raw.is_none()
            && self.csv_run.is_none()
            && self.avro.is_none()
            && self.decoding.is_none()
            && self.bad.is_empty()
    }

    #[cfg(test)]
    pub(super) fn is_decoding_aside(&self) -> bool {
        self.decoding.is_some()
    }

    /// Adds what a run's decoding gave, after the run decoding aside.
    pub(super) fn add_decoded(&mut self, decoded: Vec<Decoded>) {
        self.settle();
        for d in decoded {
            match d {
                Decoded::Part {
                    batch,
                    viewed,
                    metas,
                } => self.push_part(batch, viewed, metas),
                Decoded::Bad { bad, rows } => {
                    self.rows -= rows;
                    self.bad.push(bad);
                }
            }
        }
    }

    pub fn has_bad(&self) -> bool {
        !self.bad.is_empty()
    }

    pub fn take_bad(&mut self) -> Vec<BadMessage> {
        std::mem::take(&mut self.bad)
    }

    /// Next offsets per partition of everything returned since the last call.
    pub fn take_positions(&mut self) -> BTreeMap<(String, i32), i64> {
        self.firsts.clear();
        let deferred = std::mem::take(&mut self.deferred);
        std::mem::replace(&mut self.positions, deferred)
    }

    /// Parts from `from` on stay for the next frame: the positions handed
    /// out now stop at their first message, the rest wait for them.
    fn hold_back(&mut self, from: usize) {
        for part in &self.parts[from..] {
            for m in &part.metas {
                let tp = (m.topic.to_string(), m.partition);
                if let Some(next) = self.positions.remove(&tp) {
                    self.deferred.insert(tp.clone(), next);
                }
                let held = self.deferred_from.entry(tp).or_insert(m.offset);
                *held = (*held).min(m.offset);
            }
        }
        for (tp, first) in std::mem::take(&mut self.deferred_from) {
            self.positions.insert(tp, first);
        }
    }

    /// Drops everything collected; returns the first offset pushed per
    /// partition, where reading must resume for nothing to be lost.
    pub fn reset(&mut self) -> BTreeMap<(String, i32), i64> {
        self.parts.clear();
        self.json = None;
        self.raw = None;
        self.csv_run = None;
        self.avro = None;
        if let Some(worker) = self.decoding.take() {
            let _ = worker.join(); // its rows are read again
        }
        self.registry.unavailable = None;
        self.bad.clear();
        self.rows = 0;
        self.positions.clear();
        self.deferred.clear();
        std::mem::take(&mut self.firsts)
    }

    pub(super) fn meta(&mut self, m: &MessageRef<'_>, rows: usize) -> Meta {
        let shown = self.metadata && self.metadata_shown[4];
        let key = m.key.filter(|_| shown).map(|k| self.key_text(k));
        // No allocation per message: topic names are kept once.
        let topic = match self.topic_names.get(m.topic) {
            Some(t) => t.clone(),
            None => self
                .topic_names
                .entry(m.topic.to_owned())
                .or_insert_with(|| Arc::from(m.topic))
                .clone(),
        };
        Meta {
            topic,
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
            // Only the metadata columns show keys.
            key,
            headers: self.message_headers.clone(),
            rows,
        }
    }

    pub(super) fn reject(&mut self, m: &MessageRef<'_>, error: String) {
        self.bad.push(BadMessage {
            topic: m.topic.to_owned(),
            partition: m.partition,
            offset: m.offset,
            error,
            payload: m.payload.unwrap_or_default().to_vec(),
        });
    }

    /// Adds one message; a message that cannot be decoded is kept in `bad`.
    pub fn push(&mut self, m: MessageRef<'_>) {
        self.push_with_headers(m, None)
    }

    /// As [`Self::push`], with the message's headers (which the raw and
    /// text formats keep).
    pub fn push_with_headers(&mut self, m: MessageRef<'_>, headers: Option<&dyn HeaderSource>) {
        // The partitions read are few: found without allocating a key.
        let is_this = |t: &String, p: i32| t == m.topic && p == m.partition;
        let seen = self.firsts.keys().take(8).any(|(t, p)| is_this(t, *p));
        let next = self
            .positions
            .iter_mut()
            .take(8)
            .find(|((t, p), _)| is_this(t, *p));
        match next {
            Some((_, next)) if seen => *next = m.offset + 1,
            _ => {
                let tp = (m.topic.to_owned(), m.partition);
                self.firsts.entry(tp.clone()).or_insert(m.offset);
                self.positions.insert(tp, m.offset + 1);
            }
        }
        if matches!(self.hint, FormatHint::Raw | FormatHint::Text) {
            return self.push_raw(&m, headers);
        }
        if self.headers && self.metadata {
            let mut all = Vec::new();
            if let Some(h) = headers {
                h.each(&mut |k, v| all.push((k.into(), v.map(Into::into))));
            }
            self.message_headers = Some(all.into());
        }
        let Some(payload) = m.payload else {
            return; // a tombstone carries no rows
        };
        let first = payload.iter().copied().find(|b| !b.is_ascii_whitespace());
        let is_arrow = payload.starts_with(&[0xff, 0xff, 0xff, 0xff]);
        let framed = payload.len() >= 5 && payload[0] == 0 && self.has_schema_source();
        let format = match self.hint {
            FormatHint::Auto if is_arrow => FormatHint::Arrow,
            FormatHint::Auto if framed => return self.push_framed(&m, payload),
            FormatHint::Auto if matches!(first, Some(b'{') | Some(b'[')) => FormatHint::Json,
            FormatHint::Auto => {
                if let Some(error) = json_shape_error(payload) {
                    self.reject(&m, error);
                    return;
                }
                let head: String = payload
                    .iter()
                    .take(16)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                self.reject(
                    &m,
                    format!(
                        "neither Arrow IPC nor JSON ({} bytes starting 0x{head}); \
                         read it with format=... or skip it with on_error='skip'",
                        payload.len()
                    ),
                );
                return;
            }
            other => other,
        };
        match format {
            FormatHint::Arrow => self.push_arrow(&m, payload),
            FormatHint::Csv => self.push_csv(&m, payload),
            // Read above.
            FormatHint::Raw | FormatHint::Text => {}
            FormatHint::Avro => self.push_avro(&m, payload),
            FormatHint::JsonSchema => self.push_json_schema(&m, payload),
            // Auto is settled above.
            FormatHint::Json | FormatHint::Auto => self.push_json(&m, payload, first),
        }
    }

    /// A part of the frame, with string views made now if frames want them.
    pub(super) fn add_part(&mut self, batch: RecordBatch, metas: Vec<Meta>) {
        let viewed = self
            .string_views
            .then(|| batch_with_string_views(&batch))
            .flatten();
        self.push_part(batch, viewed, metas);
    }

    /// A part of the frame: `batch`, and the same with string views if made.
    pub(super) fn push_part(
        &mut self,
        batch: RecordBatch,
        viewed: Option<RecordBatch>,
        metas: Vec<Meta>,
    ) {
        // Parts stay in the order their messages came.
        self.settle();
        let part = match viewed {
            Some(viewed) => Part {
                batch: viewed,
                metas,
                plain: Some(batch),
            },
            None => Part {
                batch,
                metas,
                plain: None,
            },
        };
        self.parts.push(part);
    }

    /// Decodes a full run on a worker thread while this one polls the next
    /// messages. One run at a time: the one before is settled first.
    pub(super) fn decode_aside(&mut self, decode: impl FnOnce() -> Settle + Send + 'static) {
        self.settle();
        // If no thread can be made, the run is decoded here.
        let work = Arc::new(Mutex::new(Some(decode)));
        let taken = work.clone();
        let spawned = std::thread::Builder::new()
            .name("tskafka-decode".into())
            .spawn(move || {
                let decode = taken.lock().unwrap_or_else(PoisonError::into_inner).take();
                decode.expect("taken once")()
            });
        match spawned {
            Ok(worker) => self.decoding = Some(worker),
            Err(_) => {
                let decode = work.lock().unwrap_or_else(PoisonError::into_inner).take();
                decode.expect("not taken by a thread that never ran")()(self);
            }
        }
    }

    /// Adds what the run on the worker thread decoded, once it is done.
    pub(super) fn settle(&mut self) {
        if let Some(worker) = self.decoding.take() {
            match worker.join() {
                Ok(settle) => settle(self),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }

    /// Decodes what formats hold back to decode together (a JSON run).
    pub(super) fn flush_pending(&mut self) {
        self.settle();
        self.flush_json();
        self.flush_raw();
        self.flush_csv();
        self.flush_avro();
    }

    /// The rows collected so far (None if there are none), as batches that
    /// share one schema: one frame, left in chunks so no row is copied again.
    /// Messages with different columns are unioned: a column missing from
    /// some messages is null there; one column with two types is an error.
    pub fn take_frame(&mut self) -> Result<Option<Frame>> {
        self.flush_pending();
        if self.parts.is_empty() {
            self.rows = 0;
            return Ok(None);
        }
        let views = self.string_views;
        let batch = |p: &Part| match &p.plain {
            Some(plain) if !views => plain.clone(),
            _ => p.batch.clone(),
        };
        // Union the columns of consecutive parts; a part whose columns clash
        // (one name, two types) starts the next frame.
        let mut merged = Schema::new(batch(&self.parts[0]).schema().fields().clone());
        let mut take = 1;
        for b in self.parts[1..].iter().map(batch) {
            match Schema::try_merge([merged.clone(), Schema::new(b.schema().fields().clone())]) {
                Ok(m) => merged = m,
                Err(_) => break,
            }
            take += 1;
        }
        if let Some(clash) = merged.fields().iter().find(|f| {
            let name = f.name().as_str();
            self.metadata
                && (METADATA_COLUMNS.contains(&name) || self.headers && name == HEADERS_COLUMN)
        }) {
            return Err(Error::Schema(format!(
                "the messages have a column named {:?}, as metadata=True names one of its \
                 columns: read them with metadata=False",
                clash.name()
            )));
        }
        if take < self.parts.len() {
            self.hold_back(take);
        }
        let mut fields: Vec<_> = merged
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
            .collect();
        let data_schema = Arc::new(Schema::new(fields.clone()));
        let headers = self.metadata && self.headers;
        let shown = self.metadata_shown;
        if self.metadata {
            let all = metadata_fields(views).into_iter().zip(shown);
            fields.extend(all.filter(|(_, s)| *s).map(|(f, _)| Arc::new(f)));
        }
        if headers {
            fields.push(Arc::new(Field::new(HEADERS_COLUMN, headers_type(), false)));
        }
        let schema = Arc::new(Schema::new(fields));
        let rest = self.parts.split_off(take);
        let parts = std::mem::replace(&mut self.parts, rest);
        self.rows = self.parts.iter().map(|p| p.batch.num_rows()).sum();
        let batches = parts
            .iter()
            .map(|p| {
                let b = batch(p);
                let mut columns = align(&b, &data_schema).map_err(|e| {
                    let m = &p.metas[0];
                    Error::Schema(format!(
                        "the messages from {}[{}]@{} on do not fit the columns of those \
                         before them ({e}): read them in frames of their own (a smaller \
                         max_rows), or pin the types with json_schema=",
                        m.topic, m.partition, m.offset
                    ))
                })?;
                if self.metadata {
                    columns.extend(metadata_columns(&p.metas, shown, views));
                }
                if headers {
                    columns.push(headers_column(&p.metas)?);
                }
                let options = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
                Ok(RecordBatch::try_new_with_options(
                    schema.clone(),
                    columns,
                    &options,
                )?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Frame { schema, batches }))
    }
}

/// Rows from many messages: batches that share `schema`.
#[derive(Debug, Clone)]
pub struct Frame {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Frame {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The frame as one contiguous batch.
    pub fn concat(&self) -> Result<RecordBatch> {
        Ok(concat_batches(&self.schema, &self.batches)?)
    }
}

fn align(batch: &RecordBatch, schema: &SchemaRef) -> Result<Vec<ArrayRef>> {
    // Same columns in the same order (names may repeat): nothing to match up.
    let own = batch.schema();
    if own.fields().len() == schema.fields().len()
        && own
            .fields()
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type())
    {
        return Ok(batch.columns().to_vec());
    }
    schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => align_column(c, f.data_type()).map_err(|e| {
                Error::Schema(format!(
                    "column {:?} is {} here, {} before: {e}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                ))
            }),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect()
}

/// A column as type `to`, which the union of the parts' columns accepted:
/// an all-null column (inferred from JSON as Null) typed by the others,
/// structs whose fields differ (missing fields null), lists whose item
/// fields differ.
fn align_column(c: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    match (c.data_type(), to) {
        (from, to) if from == to => Ok(c.clone()),
        (DataType::Null, _) => Ok(new_null_array(to, c.len())),
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = c.as_struct();
            let children = fields
                .iter()
                .map(|f| match s.column_by_name(f.name()) {
                    Some(child) => align_column(child, f.data_type()),
                    None => Ok(new_null_array(f.data_type(), s.len())),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                s.nulls().cloned(),
            )?))
        }
        _ => Ok(cast(c, to)?),
    }
}

/// The metadata columns' fields; `views`: text as string views.
fn metadata_fields(views: bool) -> [Field; 5] {
    let text = if views {
        DataType::Utf8View
    } else {
        DataType::Utf8
    };
    [
        Field::new(METADATA_COLUMNS[0], text.clone(), false),
        Field::new(METADATA_COLUMNS[1], DataType::Int32, false),
        Field::new(METADATA_COLUMNS[2], DataType::Int64, false),
        Field::new(
            METADATA_COLUMNS[3],
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new(METADATA_COLUMNS[4], text, true),
    ]
}

/// topic, partition, offset, timestamp and key of each row's message:
/// those `shown`. A message's rows share its values, so each is repeated
/// rather than pushed row by row (a message of Arrow rows holds thousands).
fn metadata_columns(metas: &[Meta], shown: [bool; 5], views: bool) -> Vec<ArrayRef> {
    let rows: usize = metas.iter().map(|m| m.rows).sum();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(5);
    let text = |value: fn(&Meta) -> Option<&str>| -> ArrayRef {
        if views {
            Arc::new(repeated_views(metas, rows, value))
        } else {
            Arc::new(repeated_text(metas, rows, value))
        }
    };
    if shown[0] {
        columns.push(text(|m| Some(m.topic.as_ref())));
    }
    if shown[1] {
        let partition = each_row(metas, rows, |m| m.partition);
        columns.push(Arc::new(Int32Array::from(partition)));
    }
    if shown[2] {
        columns.push(Arc::new(Int64Array::from(each_row(metas, rows, |m| {
            m.offset
        }))));
    }
    if shown[3] {
        let ts = each_row(metas, rows, |m| m.timestamp_ms.unwrap_or_default());
        let valid = metas.iter().any(|m| m.timestamp_ms.is_none()).then(|| {
            let mut valid = BooleanBufferBuilder::new(rows);
            for m in metas {
                valid.append_n(m.rows, m.timestamp_ms.is_some());
            }
            NullBuffer::new(valid.finish())
        });
        let ts = TimestampMillisecondArray::new(ts.into(), valid).with_timezone("UTC");
        columns.push(Arc::new(ts));
    }
    if shown[4] {
        columns.push(text(|m| m.key.as_deref()));
    }
    columns
}

/// As [`repeated_text`], as string views: each message's value is stored
/// once, and its view repeated over its rows.
fn repeated_views(
    metas: &[Meta],
    rows: usize,
    value: impl Fn(&Meta) -> Option<&str>,
) -> StringViewArray {
    if metas.iter().all(|m| value(m).is_none()) {
        return null_views(rows);
    }
    let mut data = Vec::new();
    let mut views: Vec<u128> = Vec::with_capacity(rows);
    let mut valid = BooleanBufferBuilder::new(rows);
    for m in metas {
        let view = match value(m) {
            Some(v) if v.len() <= 12 => make_view(v.as_bytes(), 0, 0),
            Some(v) => {
                let at = u32::try_from(data.len()).expect("keys under 4 GiB");
                data.extend_from_slice(v.as_bytes());
                make_view(v.as_bytes(), 0, at)
            }
            None => 0,
        };
        views.extend(std::iter::repeat_n(view, m.rows));
        valid.append_n(m.rows, value(m).is_some());
    }
    let nulls = Some(NullBuffer::new(valid.finish())).filter(|n| n.null_count() > 0);
    StringViewArray::new(
        ScalarBuffer::from(views),
        vec![Buffer::from_vec(data)],
        nulls,
    )
}

/// `rows` null string views over one zeroed buffer shared by every such
/// column: keys no message has cost no memory per row (16 bytes a row
/// each, else: 16 MB for a million-row read).
fn null_views(rows: usize) -> StringViewArray {
    static ZEROS: Mutex<Option<Buffer>> = Mutex::new(None);
    let bytes = rows * std::mem::size_of::<u128>();
    let zeros = {
        let mut zeros = ZEROS.lock().unwrap_or_else(PoisonError::into_inner);
        match zeros.as_ref() {
            Some(z) if z.len() >= bytes => z.clone(),
            _ => {
                let z = Buffer::from(MutableBuffer::from_len_zeroed(bytes.max(1 << 20)));
                *zeros = Some(z.clone());
                z
            }
        }
    };
    // SAFETY: a zero view is the empty string, inline: valid UTF-8 in no
    // buffer (and every row is null besides).
    unsafe {
        StringViewArray::new_unchecked(
            ScalarBuffer::new(zeros, 0, rows),
            Arc::from([]),
            Some(NullBuffer::new_null(rows)),
        )
    }
}

/// A value of each message, once per row it holds.
fn each_row<T: Clone>(metas: &[Meta], rows: usize, value: impl Fn(&Meta) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(rows);
    for m in metas {
        out.extend(std::iter::repeat_n(value(m), m.rows));
    }
    out
}

/// The headers of each row's message.
fn headers_column(metas: &[Meta]) -> Result<ArrayRef> {
    let mut column = HeadersBuilder::new();
    for m in metas {
        for _ in 0..m.rows {
            for (k, v) in m.headers.iter().flat_map(|h| h.iter()) {
                column.append(k, v.as_deref());
            }
            column.end_row();
        }
    }
    Ok(Arc::new(column.finish()?))
}

/// A text column holding each message's `value` once per row of it.
fn repeated_text(
    metas: &[Meta],
    rows: usize,
    value: impl Fn(&Meta) -> Option<&str>,
) -> StringArray {
    if metas.iter().all(|m| value(m).is_none()) {
        return StringArray::new_null(rows);
    }
    let bytes: usize = metas
        .iter()
        .map(|m| value(m).map_or(0, str::len) * m.rows)
        .sum();
    let mut builder = StringBuilder::with_capacity(rows, bytes);
    for m in metas {
        match value(m) {
            Some(v) => (0..m.rows).for_each(|_| builder.append_value(v)),
            None => builder.append_nulls(m.rows),
        }
    }
    builder.finish()
}

/// What `v` held, leaving it empty with room for as many again (a run of
/// messages handed to a worker while the next run gathers).
pub(super) fn emptied<T>(v: &mut Vec<T>) -> Vec<T> {
    let capacity = v.len();
    std::mem::replace(v, Vec::with_capacity(capacity))
}

/// What a message refused by [`guarded`] says.
pub const DECODER_PANICKED: &str = "the decoder failed on this message";

/// Runs a decoder; a panic inside it (a malformed message reaching a bug in
/// a decoding library) becomes this message's error rather than unwinding
/// through the consumer or ending a background reader.
pub(super) fn guarded<T>(
    decode: impl FnOnce() -> std::result::Result<T, String>,
) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        Err(format!("{DECODER_PANICKED} ({what})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{encode, encode_with, msg, round_trip_sample};
    use crate::codec::Format;

    #[test]
    fn metadata_repeats_each_messages_values_over_its_rows() {
        let meta = |partition, offset, ts: Option<i64>, key: Option<&str>, rows| Meta {
            topic: Arc::from(if partition == 0 { "t" } else { "other" }),
            partition,
            offset,
            timestamp_ms: ts,
            key: key.map(str::to_owned),
            headers: None,
            rows,
        };
        let metas = [
            meta(0, 7, Some(5), Some("k"), 2),
            meta(1, 8, None, None, 0),
            meta(1, 9, None, None, 1),
            meta(0, 10, Some(6), Some("é"), 3),
        ];
        let columns = metadata_columns(&metas, [true; 5], false);
        let topic: Vec<_> = columns[0].as_string::<i32>().iter().collect();
        assert_eq!(
            topic,
            [
                Some("t"),
                Some("t"),
                Some("other"),
                Some("t"),
                Some("t"),
                Some("t")
            ]
        );
        let partition = columns[1].as_primitive::<arrow_array::types::Int32Type>();
        assert_eq!(partition.values().to_vec(), [0, 0, 1, 0, 0, 0]);
        let offset = columns[2].as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(offset.values().to_vec(), [7, 7, 9, 10, 10, 10]);
        let ts = columns[3].as_primitive::<arrow_array::types::TimestampMillisecondType>();
        let ts: Vec<_> = ts.iter().collect();
        assert_eq!(ts, [Some(5), Some(5), None, Some(6), Some(6), Some(6)]);
        let key: Vec<_> = columns[4].as_string::<i32>().iter().collect();
        assert_eq!(
            key,
            [Some("k"), Some("k"), None, Some("é"), Some("é"), Some("é")]
        );
        let no_keys = metadata_columns(&metas[1..3], [true; 5], false);
        assert_eq!(no_keys[4].null_count(), 1);
        assert_eq!(no_keys[3].null_count(), 1);
        // As string views: the same values, a long key stored once per message.
        let mut long = metas.to_vec();
        long[3].key = Some("a key longer than twelve bytes".into());
        let views = metadata_columns(&long, [true; 5], true);
        let plain = metadata_columns(&long, [true; 5], false);
        for i in [0, 4] {
            let v: Vec<_> = views[i].as_string_view().iter().collect();
            let p: Vec<_> = plain[i].as_string::<i32>().iter().collect();
            assert_eq!(v, p);
        }
        assert_eq!(views[4].as_string_view().data_buffers()[0].len(), 30);
        let no_keys = metadata_columns(&metas[1..3], [true; 5], true);
        assert_eq!(no_keys[4].null_count(), 1);
        // Columns of keys no message has share one zeroed buffer.
        let (a, b) = (null_views(3), null_views(5));
        assert_eq!(
            (a.len(), a.null_count(), b.len(), b.null_count()),
            (3, 3, 5, 5)
        );
        assert_eq!(a.views().inner().as_ptr(), b.views().inner().as_ptr());
        assert!(b.iter().all(|v| v.is_none()));
        let large = null_views((1 << 20) / 16 + 1);
        assert_eq!(large.null_count(), large.len());
        large.to_data().validate_full().unwrap();
    }

    #[test]
    fn string_views_are_made_as_messages_come_and_dropped_if_unwanted() {
        let batch = round_trip_sample();
        let (payloads, _) = encode_with(&batch, Format::Arrow, false);
        let read = |views_when_pushed: bool, views_when_taken: bool| {
            let mut b = FrameBuilder::new(FormatHint::Auto, false, None);
            b.string_views = views_when_pushed;
            for (i, p) in payloads.iter().enumerate() {
                b.push(msg(p, i as i64, None));
            }
            b.string_views = views_when_taken;
            b.take_frame().unwrap().unwrap().concat().unwrap()
        };
        let viewed = read(true, true);
        assert_eq!(viewed.schema().field(0).data_type(), &DataType::Utf8View);
        let as_strings = cast(viewed.column(0), &DataType::Utf8).unwrap();
        assert_eq!(as_strings.as_ref(), batch.column(0).as_ref());
        assert_eq!(viewed.columns()[1..], batch.columns()[1..]);
        // Views made for a frame that is then read as plain strings are dropped.
        assert_eq!(read(true, false), batch);
        assert_eq!(read(false, false), batch);
    }

    /// Headers as a client holds them.
    struct Pairs(Vec<(&'static str, Option<&'static [u8]>)>);

    impl HeaderSource for Pairs {
        fn each(&self, f: &mut dyn FnMut(&str, Option<&[u8]>)) {
            for (k, v) in &self.0 {
                f(k, *v);
            }
        }
    }

    #[test]
    fn a_projection_leaves_columns_out_with_the_same_values() {
        let batch = round_trip_sample();
        let read = |format: Format, header: bool, projection: Option<&[&str]>, views: bool| {
            let (payloads, schema) = encode_with(&batch, format, header);
            let mut b = FrameBuilder::new(FormatHint::Auto, true, None);
            b.string_views = views;
            b.projection = projection.map(|p| p.iter().map(|c| c.to_string()).collect());
            for (i, p) in payloads.iter().enumerate() {
                b.push(msg(p, i as i64, schema.as_deref()));
            }
            assert!(!b.has_bad());
            b.take_frame().unwrap().unwrap().concat().unwrap()
        };
        for (format, header) in [
            (Format::Arrow, false),
            (Format::Json, true),
            (Format::Json, false),
        ] {
            for views in [false, true] {
                let all = read(format, header, None, views);
                for wanted in [&["qty"][..], &["at", "code"], &[], &["nope"]] {
                    let got = read(format, header, Some(wanted), views);
                    let keep: Vec<usize> = (0..all.num_columns())
                        .filter(|&i| {
                            let name = all.schema().field(i).name().clone();
                            wanted.contains(&name.as_str()) || name.starts_with("kafka_")
                        })
                        .collect();
                    let what = format!("{format:?} {header} {views} {wanted:?}");
                    assert_eq!(got, all.project(&keep).unwrap(), "{what}");
                }
            }
        }
    }

    #[test]
    fn headers_are_a_metadata_column_when_asked() {
        let batch = round_trip_sample();
        let (payloads, _) = encode_with(&batch, Format::Arrow, false);
        let mut b = FrameBuilder::new(FormatHint::Auto, true, None);
        b.headers = true;
        let first = Pairs(vec![("trace", Some(b"t-1")), ("empty", None)]);
        b.push_with_headers(msg(&payloads[0], 0, None), Some(&first));
        b.push_with_headers(msg(&payloads[1], 1, None), None);
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        let column = out.column_by_name(HEADERS_COLUMN).unwrap();
        assert_eq!(column.data_type(), &headers_type());
        let lists = column.as_list::<i32>();
        // Two rows of the first message, then one of the second.
        let lengths: Vec<usize> = (0..lists.len()).map(|i| lists.value(i).len()).collect();
        assert_eq!(lengths, vec![2, 2, 0]);
        let pairs = lists.value(1);
        let pairs = pairs.as_struct();
        assert_eq!(pairs.column(0).as_string::<i32>().value(0), "trace");
        assert_eq!(pairs.column(1).as_binary::<i32>().value(0), b"t-1");
        assert!(pairs.column(1).is_null(1));
        // Without asking, no column.
        let mut b = FrameBuilder::new(FormatHint::Auto, true, None);
        b.push_with_headers(msg(&payloads[0], 0, None), Some(&first));
        let out = b.take_frame().unwrap().unwrap();
        assert!(out.schema.column_with_name(HEADERS_COLUMN).is_none());
    }

    #[test]
    fn round_trip_both_formats() {
        let batch = round_trip_sample();
        for format in [Format::Arrow, Format::Json] {
            let (payloads, header) = encode(&batch, format);
            let mut b = FrameBuilder::new(FormatHint::Auto, false, None);
            for (i, p) in payloads.iter().enumerate() {
                b.push(msg(p, i as i64, header.as_deref()));
            }
            let out = b.take_frame().unwrap().unwrap().concat().unwrap();
            assert!(!b.has_bad());
            assert_eq!(out.num_rows(), 3);
            for (a, e) in out.columns().iter().zip(batch.columns()) {
                assert_eq!(a.as_ref(), e.as_ref(), "{format:?}");
            }
            assert_eq!(
                b.take_positions().get(&("t".to_owned(), 0)),
                Some(&(payloads.len() as i64))
            );
        }
    }

    #[test]
    fn bad_messages_are_named_and_good_rows_kept() {
        let batch = round_trip_sample();
        let (payloads, _) = encode(&batch, Format::Arrow);
        let mut b = FrameBuilder::new(FormatHint::Auto, false, None);
        b.push(msg(&payloads[0], 0, None));
        b.push(msg(b"\x00\x01garbage", 1, None));
        b.push(msg(&payloads[0][..payloads[0].len() / 2], 2, None));
        b.push(msg(
            br#"{"qty": "not a number"}"#,
            3,
            Some(br#"[["qty","Int64"]]"#),
        ));
        b.push(msg(br#"{"qty": 4}"#, 4, Some(br#"[["qty","Int64"]]"#)));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert_eq!(out.num_rows(), 3);
        let bad = b.take_bad();
        assert_eq!(
            bad.iter().map(|m| m.offset).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(
            bad[0].error.contains("neither Arrow IPC nor JSON"),
            "{}",
            bad[0].error
        );
        assert_eq!(bad[0].payload, b"\x00\x01garbage");
        let err = bad[0].clone().into_error().to_string();
        assert!(err.contains("t[0]@1"), "{err}");
    }

    #[test]
    fn a_type_change_starts_a_new_frame_and_columns_union() {
        let mut b = FrameBuilder::new(FormatHint::Json, false, None);
        b.push(msg(br#"{"a": 1}"#, 0, Some(br#"[["a","Int64"]]"#)));
        b.push(msg(br#"{"a": "x"}"#, 1, Some(br#"[["a","Utf8"]]"#)));
        b.push(msg(br#"{"a": "y"}"#, 2, Some(br#"[["a","Utf8"]]"#)));
        let tp = ("t".to_owned(), 0);
        let first = b.take_frame().unwrap().unwrap();
        assert_eq!(first.schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(first.num_rows(), 1);
        assert_eq!(b.take_positions().get(&tp), Some(&1));
        let second = b.take_frame().unwrap().unwrap();
        assert_eq!(second.schema.field(0).data_type(), &DataType::Utf8);
        assert_eq!(second.num_rows(), 2);
        assert_eq!(b.take_positions().get(&tp), Some(&3));
        assert!(b.take_frame().unwrap().is_none());
        let mut b = FrameBuilder::new(FormatHint::Json, false, None);
        b.push(msg(br#"{"a": 1}"#, 0, Some(br#"[["a","Int64"]]"#)));
        b.push(msg(br#"{"b": "x"}"#, 1, Some(br#"[["b","Utf8"]]"#)));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert_eq!(out.num_columns(), 2);
        assert_eq!(out.column(1).null_count(), 1);
    }

    #[test]
    fn structs_with_different_fields_union() {
        let mut b = FrameBuilder::new(FormatHint::Json, false, None);
        b.push(msg(br#"{"a": {"x": 1}}"#, 0, None));
        b.push(msg(br#"[{"a": {"y": "s"}}, {"a": null}]"#, 1, None));
        b.push(msg(br#"{"a": {"x": 2, "y": "t"}}"#, 2, None));
        b.flush_json();
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        let a = out.column(0).as_struct();
        assert_eq!(a.num_columns(), 2);
        assert_eq!(a.column_by_name("x").unwrap().null_count(), 2);
        assert_eq!(a.column_by_name("y").unwrap().null_count(), 2);
        assert_eq!(a.null_count(), 1);
    }
}
