//! Kafka messages -> one Arrow record batch (Arrow IPC or JSON payloads).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::builder::make_view;
use arrow_array::cast::AsArray;
use arrow_array::{
    new_null_array, Array, ArrayRef, BinaryViewArray, GenericBinaryArray, GenericStringArray,
    Int32Array, Int64Array, OffsetSizeTrait, RecordBatch, RecordBatchOptions, StringArray,
    StringViewArray, TimestampMillisecondArray,
};
use arrow_buffer::{Buffer, MutableBuffer, ScalarBuffer};
use arrow_cast::{cast, cast_with_options, CastOptions};
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{read_dictionary, RecordBatchDecoder};
use arrow_ipc::{root_as_message, MessageHeader};
use arrow_json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use arrow_schema::ArrowError;
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow_select::concat::concat_batches;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatHint {
    Auto,
    Arrow,
    Json,
}

impl FromStr for FormatHint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(FormatHint::Auto),
            "arrow" | "ipc" | "arrow-ipc" => Ok(FormatHint::Arrow),
            "json" => Ok(FormatHint::Json),
            other => Err(Error::Config(format!(
                "unknown format {other:?}: use 'auto' (detect per message), 'arrow' or 'json'"
            ))),
        }
    }
}

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
struct Meta {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    key: Option<String>,
    rows: usize,
}

/// Consecutive JSON messages that share a schema header.
struct JsonRun {
    header: Option<Vec<u8>>,
    lines: Vec<u8>,
    /// (start, end) of each message's bytes in `lines`, with its metadata.
    spans: Vec<(usize, usize, Meta)>,
}

pub const METADATA_COLUMNS: [&str; 5] = [
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "kafka_key",
];

/// The rows of one or more messages.
struct Part {
    /// With text as string views if they were wanted when it came.
    batch: RecordBatch,
    metas: Vec<Meta>,
    /// The batch as decoded, if `batch` holds string views made from it.
    plain: Option<RecordBatch>,
}

/// Collects messages and turns them into one record batch.
pub struct FrameBuilder {
    hint: FormatHint,
    metadata: bool,
    json_schema: Option<SchemaRef>,
    /// Whether frames should hold text as string views (what Polars holds):
    /// made message by message as they come, while the next ones arrive.
    pub string_views: bool,
    parts: Vec<Part>,
    json: Option<JsonRun>,
    bad: Vec<BadMessage>,
    rows: usize,
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
            metadata,
            json_schema,
            string_views: false,
            parts: Vec::new(),
            json: None,
            bad: Vec::new(),
            rows: 0,
            positions: BTreeMap::new(),
            firsts: BTreeMap::new(),
            deferred: BTreeMap::new(),
            deferred_from: BTreeMap::new(),
            topic_names: BTreeMap::new(),
        }
    }

    /// Rows collected so far (JSON messages count one row each until decoded).
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.json.is_none() && self.bad.is_empty()
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
        self.bad.clear();
        self.rows = 0;
        self.positions.clear();
        self.deferred.clear();
        std::mem::take(&mut self.firsts)
    }

    fn meta(&mut self, m: &MessageRef<'_>, rows: usize) -> Meta {
        let topic = self
            .topic_names
            .entry(m.topic.to_owned())
            .or_insert_with(|| Arc::from(m.topic))
            .clone();
        Meta {
            topic,
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp_ms,
            key: m.key.map(|k| String::from_utf8_lossy(k).into_owned()),
            rows,
        }
    }

    fn reject(&mut self, m: &MessageRef<'_>, error: String) {
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
        let tp = (m.topic.to_owned(), m.partition);
        self.firsts.entry(tp.clone()).or_insert(m.offset);
        self.positions.insert(tp, m.offset + 1);
        let Some(payload) = m.payload else {
            return; // a tombstone carries no rows
        };
        let first = payload.iter().copied().find(|b| !b.is_ascii_whitespace());
        let is_arrow = payload.starts_with(&[0xff, 0xff, 0xff, 0xff]);
        let format = match self.hint {
            FormatHint::Auto if is_arrow => FormatHint::Arrow,
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
            _ => self.push_json(&m, payload, first),
        }
    }

    fn push_arrow(&mut self, m: &MessageRef<'_>, payload: &[u8]) {
        let views = self.string_views;
        match guarded(|| read_ipc_stream(payload, views).map_err(|e| e.to_string())) {
            Ok(batches) => {
                for (b, viewed) in batches {
                    let meta = self.meta(m, b.num_rows());
                    self.rows += b.num_rows();
                    self.push_part(b, viewed, vec![meta]);
                }
            }
            Err(e) => self.reject(m, format!("invalid Arrow IPC stream: {e}")),
        }
    }

    fn push_json(&mut self, m: &MessageRef<'_>, payload: &[u8], first: Option<u8>) {
        let header = m.schema_header.map(<[u8]>::to_vec);
        if self.json.as_ref().is_some_and(|r| r.header != header) {
            self.flush_json();
        }
        if !matches!(first, Some(b'{') | Some(b'[')) {
            let error = json_shape_error(payload).unwrap_or_else(|| {
                "not a JSON object: tskafka reads one JSON object per message, \
                 or an array of objects"
                    .to_owned()
            });
            self.reject(m, error);
            return;
        }
        let mut lines = Vec::new();
        let rows = if first == Some(b'[') {
            // A JSON array of records: one row each.
            match array_to_lines(payload, &mut lines) {
                Ok(rows) => rows,
                Err(e) => {
                    self.reject(m, e);
                    return;
                }
            }
        } else {
            lines.extend_from_slice(payload);
            lines.push(b'\n');
            1
        };
        if rows == 0 {
            return; // an empty array: no rows
        }
        let meta = self.meta(m, rows);
        let run = self.json.get_or_insert_with(|| JsonRun {
            header,
            lines: Vec::new(),
            spans: Vec::new(),
        });
        let start = run.lines.len();
        run.lines.extend_from_slice(&lines);
        run.spans.push((start, run.lines.len(), meta));
        self.rows += rows;
    }

    /// The schema of a run's rows: from its header, else the consumer's
    /// `json_schema`, else inferred from the first `sample` rows (all if None).
    /// The flag tells how: `Some(complete)` if inferred, None if given.
    fn run_schema(
        &self,
        run: &JsonRun,
        sample: Option<usize>,
    ) -> std::result::Result<(SchemaRef, Option<bool>), String> {
        if let Some(header) = &run.header {
            let pairs: Vec<(String, String)> = serde_json::from_slice(header)
                .map_err(|e| format!("bad tskafka.schema header: {e}"))?;
            let fields = pairs
                .into_iter()
                .map(|(name, ty)| {
                    DataType::from_str(&ty)
                        .map(|dt| Field::new(name, dt, true))
                        .map_err(|e| format!("bad type {ty:?} in tskafka.schema header: {e}"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            return Ok((Arc::new(Schema::new(fields)), None));
        }
        if let Some(schema) = &self.json_schema {
            return Ok((schema.clone(), None));
        }
        let rows = run.spans.iter().map(|(_, _, m)| m.rows).sum::<usize>();
        let take = sample.unwrap_or(rows);
        let values = serde_json::Deserializer::from_slice(&run.lines)
            .into_iter::<serde_json::Value>()
            .take(take)
            .map(|v| v.map_err(|e| arrow_schema::ArrowError::JsonError(e.to_string())));
        let schema = infer_json_schema_from_iterator(values).map_err(|e| e.to_string())?;
        Ok((Arc::new(schema), Some(take >= rows)))
    }

    fn add_part(&mut self, batch: RecordBatch, metas: Vec<Meta>) {
        let viewed = self
            .string_views
            .then(|| batch_with_string_views(&batch))
            .flatten();
        self.push_part(batch, viewed, metas);
    }

    /// A part of the frame: `batch`, and the same with string views if made.
    fn push_part(&mut self, batch: RecordBatch, viewed: Option<RecordBatch>, metas: Vec<Meta>) {
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

    fn flush_json(&mut self) {
        let Some(run) = self.json.take() else { return };
        let decoded = guarded(|| {
            let rows = run.spans.iter().map(|(_, _, m)| m.rows).sum::<usize>();
            // Types inferred from a sample of the rows are checked strictly
            // (a row with another type or another column fails), and on a
            // failure inferred again from every row.
            match self.run_schema(&run, Some(INFER_SAMPLE_ROWS))? {
                (schema, None) => decode_json(&schema, &run.lines, rows, false),
                (schema, Some(complete)) => {
                    let batch = match decode_json(&schema, &run.lines, rows, !complete) {
                        Err(_) if !complete => {
                            let (schema, _) = self.run_schema(&run, None)?;
                            decode_json(&schema, &run.lines, rows, false)?
                        }
                        other => other?,
                    };
                    Ok(detect_datetimes(batch))
                }
            }
        });
        match decoded {
            Ok(batch) => {
                let metas = run.spans.into_iter().map(|(_, _, m)| m).collect();
                self.add_part(batch, metas);
            }
            Err(_) if run.spans.len() > 1 => {
                // Find the bad messages one by one; the good ones go on.
                for (start, end, meta) in run.spans {
                    let one = JsonRun {
                        header: run.header.clone(),
                        lines: run.lines[start..end].to_vec(),
                        spans: vec![(0, end - start, meta)],
                    };
                    self.json = Some(one);
                    self.flush_json();
                }
            }
            Err(error) => {
                let (_, _, meta) = &run.spans[0];
                self.rows -= meta.rows;
                self.bad.push(BadMessage {
                    topic: meta.topic.to_string(),
                    partition: meta.partition,
                    offset: meta.offset,
                    error: format!("invalid JSON row: {error}"),
                    payload: run.lines.strip_suffix(b"\n").unwrap_or(&run.lines).to_vec(),
                });
            }
        }
    }

    /// The rows collected so far (None if there are none), as batches that
    /// share one schema: one frame, left in chunks so no row is copied again.
    /// Messages with different columns are unioned: a column missing from
    /// some messages is null there; one column with two types is an error.
    pub fn take_frame(&mut self) -> Result<Option<Frame>> {
        self.flush_json();
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
        if let Some(clash) = merged
            .fields()
            .iter()
            .find(|f| self.metadata && METADATA_COLUMNS.contains(&f.name().as_str()))
        {
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
        if self.metadata {
            fields.extend(metadata_fields().into_iter().map(Arc::new));
        }
        let schema = Arc::new(Schema::new(fields));
        let rest = self.parts.split_off(take);
        let parts = std::mem::replace(&mut self.parts, rest);
        self.rows = self.parts.iter().map(|p| p.batch.num_rows()).sum();
        let batches = parts
            .iter()
            .map(|p| {
                let b = batch(p);
                let mut columns = align(&b, &data_schema)?;
                if self.metadata {
                    columns.extend(metadata_columns(&p.metas));
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
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            // Types the union accepted: an all-null column (inferred from JSON
            // as Null) typed by the others, or lists whose item fields differ.
            Some(c) if c.data_type() == &DataType::Null => {
                Ok(new_null_array(f.data_type(), batch.num_rows()))
            }
            Some(c) => Ok(cast(c, f.data_type())?),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect()
}

fn metadata_fields() -> [Field; 5] {
    [
        Field::new(METADATA_COLUMNS[0], DataType::Utf8, false),
        Field::new(METADATA_COLUMNS[1], DataType::Int32, false),
        Field::new(METADATA_COLUMNS[2], DataType::Int64, false),
        Field::new(
            METADATA_COLUMNS[3],
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new(METADATA_COLUMNS[4], DataType::Utf8, true),
    ]
}

/// topic, partition, offset, timestamp and key of each row's message.
fn metadata_columns(metas: &[Meta]) -> Vec<ArrayRef> {
    let rows: usize = metas.iter().map(|m| m.rows).sum();
    let mut topic = Vec::with_capacity(rows);
    let mut partition = Vec::with_capacity(rows);
    let mut offset = Vec::with_capacity(rows);
    let mut ts = Vec::with_capacity(rows);
    let mut key = Vec::with_capacity(rows);
    for m in metas {
        for _ in 0..m.rows {
            topic.push(Some(m.topic.as_ref()));
            partition.push(m.partition);
            offset.push(m.offset);
            ts.push(m.timestamp_ms);
            key.push(m.key.as_deref());
        }
    }
    vec![
        Arc::new(StringArray::from(topic)),
        Arc::new(Int32Array::from(partition)),
        Arc::new(Int64Array::from(offset)),
        Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
        Arc::new(StringArray::from(key)),
    ]
}

/// Rows whose JSON types are inferred before the rest are checked against them.
const INFER_SAMPLE_ROWS: usize = 1_000;

fn decode_json(
    schema: &SchemaRef,
    lines: &[u8],
    rows: usize,
    strict: bool,
) -> std::result::Result<RecordBatch, String> {
    // Zoned datetimes are written in UTC: read them naive, then label the zone
    // (no time-zone database needed).
    let naive = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Timestamp(unit, Some(_)) => Arc::new(
                    f.as_ref()
                        .clone()
                        .with_data_type(DataType::Timestamp(*unit, None)),
                ),
                _ => f.clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let mut decoder = ReaderBuilder::new(naive)
        .with_batch_size(rows.max(1))
        .with_strict_mode(strict)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let mut rest = lines;
    while !rest.is_empty() {
        let used = decoder.decode(rest).map_err(|e| e.to_string())?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    let batch = decoder
        .flush()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no JSON rows".to_owned())?;
    if batch.num_rows() != rows || rest.iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(format!(
            "more or fewer JSON objects than expected ({rows}): a message holds one object, \
             or one array of objects"
        ));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(col, f)| match f.data_type() {
            DataType::Timestamp(_, Some(tz)) => with_zone(col, tz),
            _ => col.clone(),
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// The same instants labelled with time zone `tz`.
fn with_zone(col: &ArrayRef, tz: &str) -> ArrayRef {
    use arrow_array::types::{
        TimestampMicrosecondType as Us, TimestampMillisecondType as Ms,
        TimestampNanosecondType as Ns, TimestampSecondType as S,
    };
    match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            Arc::new(col.as_primitive::<S>().clone().with_timezone(tz))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Arc::new(col.as_primitive::<Ms>().clone().with_timezone(tz))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Arc::new(col.as_primitive::<Us>().clone().with_timezone(tz))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Arc::new(col.as_primitive::<Ns>().clone().with_timezone(tz))
        }
        _ => col.clone(),
    }
}

const NOT_OBJECTS: &str = "a JSON array element is not an object: tskafka reads one JSON \
     object per message, or an array of objects (one per row)";

/// Why a payload that is JSON but neither an object nor an array of
/// objects cannot be read (None if it is not such JSON).
fn json_shape_error(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let kind = match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        _ => return None,
    };
    Some(format!(
        "the message is JSON {kind}, not an object: tskafka reads one JSON object per \
         message, or an array of objects"
    ))
}

/// What a message refused by [`guarded`] says.
pub const DECODER_PANICKED: &str = "the decoder failed on this message";

/// The panic of arrow 60's IPC validation that no check before it rules
/// out: a buffer of 16- or 32-byte values (views, decimals, intervals) whose
/// length is not a multiple of that and cannot be padded inside the body.
/// Caught by [`guarded`].
pub const KNOWN_ARROW_PANIC: &str = "assertion failed: prefix.is_empty() && suffix.is_empty()";

/// Runs a decoder; a panic inside it (a malformed message reaching a bug in
/// a decoding library) becomes this message's error rather than unwinding
/// through the consumer or ending a background reader.
fn guarded<T>(
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

/// Every buffer a batch names lies inside its body, padded to 8 bytes as
/// writers pad them: arrow's reader slices the body without checking and
/// panics on one that does not.
fn check_buffers(
    batch: arrow_ipc::RecordBatch<'_>,
    body_len: usize,
) -> std::result::Result<(), ArrowError> {
    for b in batch.buffers().iter().flatten() {
        let end = u64::try_from(b.offset())
            .ok()
            .zip(u64::try_from(b.length()).ok())
            .and_then(|(offset, length)| offset.checked_add(length.checked_next_multiple_of(8)?));
        if end.is_none_or(|end| end > body_len as u64) || b.offset() % 8 != 0 {
            return Err(ArrowError::IpcError(format!(
                "a buffer at offset {} of {} bytes is not aligned to 8 bytes inside the message \
                 body of {body_len} bytes",
                b.offset(),
                b.length()
            )));
        }
    }
    Ok(())
}

/// Rounds the length of every buffer of every batch in `stream` up to a
/// multiple of 16 bytes (else 8, as writers pad buffers), where the body
/// holds it. arrow's validation views a buffer whole as values and panics on
/// a length that is not a multiple of the value width (16 for string views);
/// a longer buffer holds the same values. Malformed framing is left for the
/// reader to report.
fn pad_buffer_lengths(stream: &mut [u8]) {
    let mut fixes = Vec::new();
    let word = |at: usize| {
        stream
            .get(at..at + 4)
            .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let mut at = 0;
    while let Some(mut len) = word(at) {
        at += 4;
        if len == -1 {
            let Some(l) = word(at) else { break };
            len = l;
            at += 4;
        }
        let Ok(len) = usize::try_from(len) else { break };
        let Some(meta) = stream.get(at..at + len).filter(|_| len > 0) else {
            break;
        };
        let Ok(message) = root_as_message(meta) else {
            break;
        };
        let body = at + len;
        let Some(body_len) = usize::try_from(message.bodyLength())
            .ok()
            .filter(|&n| n <= stream.len() - body)
        else {
            break;
        };
        let batch = message
            .header_as_record_batch()
            .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
        if let Some(buffers) = batch.and_then(|b| b.buffers()) {
            let first = buffers.bytes().as_ptr() as usize - stream.as_ptr() as usize;
            for (i, b) in buffers.iter().enumerate() {
                let (Ok(offset), Ok(length)) =
                    (u64::try_from(b.offset()), u64::try_from(b.length()))
                else {
                    continue;
                };
                // 16: string views, the largest common value width.
                let fits = |n: u64| {
                    offset
                        .checked_add(n)
                        .is_some_and(|end| end <= body_len as u64)
                };
                let Some(padded) = [16, 8]
                    .into_iter()
                    .filter_map(|w| length.checked_next_multiple_of(w))
                    .find(|&n| fits(n))
                else {
                    continue;
                };
                if padded != length {
                    // Buffer is { offset: i64, length: i64 }.
                    fixes.push((first + i * 16 + 8, padded as i64));
                }
            }
        }
        at = body + body_len;
    }
    for (at, length) in fixes {
        stream[at..at + 8].copy_from_slice(&length.to_le_bytes());
    }
}

/// Rows an IPC batch may claim beyond what its body could hold (columns of
/// type null, run-end encoding); more would only allocate, for metadata
/// columns and nulls, memory a message of that size never carried.
const ROWS_WITHOUT_DATA: usize = 1 << 20;

fn check_row_count(rows: usize, body_len: usize) -> std::result::Result<(), ArrowError> {
    if rows > body_len.saturating_mul(8).saturating_add(ROWS_WITHOUT_DATA) {
        return Err(ArrowError::IpcError(format!(
            "a record batch claims {rows} rows in a body of {body_len} bytes"
        )));
    }
    Ok(())
}

/// `[{..},{..}]` -> one object per line (what the JSON decoder reads), and how many.
fn array_to_lines(payload: &[u8], out: &mut Vec<u8>) -> std::result::Result<usize, String> {
    let (mut depth, mut in_string, mut escaped, mut rows, mut closed) =
        (0usize, false, false, 0usize, false);
    let start = payload.iter().position(|&b| b == b'[').unwrap_or(0) + 1;
    for &b in &payload[start..] {
        if closed {
            if !b.is_ascii_whitespace() {
                return Err("invalid JSON: data after the closing ']'".into());
            }
            continue;
        }
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                if depth == 0 {
                    return Err(NOT_OBJECTS.into());
                }
                in_string = true;
                out.push(b);
            }
            b'{' | b'[' => {
                if depth == 0 && b == b'[' {
                    return Err(NOT_OBJECTS.into());
                }
                depth += 1;
                out.push(b);
            }
            b'}' | b']' if depth > 0 => {
                depth -= 1;
                out.push(b);
                if depth == 0 {
                    out.push(b'\n');
                    rows += 1;
                }
            }
            b']' => closed = true,
            b',' if depth == 0 => {}
            c if c.is_ascii_whitespace() && depth == 0 => {}
            _ if depth == 0 => return Err(NOT_OBJECTS.into()),
            _ => out.push(b),
        }
    }
    if !closed || depth != 0 || in_string {
        return Err("invalid JSON: the array is not closed".into());
    }
    Ok(rows)
}

/// The record batches of one Arrow IPC stream, each with the same batch
/// with string views for its text columns when `views` asks for them. As
/// arrow's StreamReader, but the payload is copied once (the arrays slice
/// that copy) and text is read as binary, its UTF-8 checked here: string
/// views buffer by buffer (arrow checks each view on its own, a fifth of
/// the consumer's decode time), plain strings in the pass making views.
fn read_ipc_stream(
    payload: &[u8],
    views: bool,
) -> std::result::Result<Vec<(RecordBatch, Option<RecordBatch>)>, ArrowError> {
    let truncated = || ArrowError::IpcError("the stream is truncated".into());
    let mut copy = MutableBuffer::with_capacity(payload.len());
    copy.extend_from_slice(payload);
    pad_buffer_lengths(copy.as_slice_mut());
    let data: Buffer = copy.into();
    let word = |at: usize| {
        data.get(at..at + 4)
            .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    // (the stream's schema, the schema read with string views as binary views)
    let mut schemas: Option<(SchemaRef, SchemaRef)> = None;
    let mut dictionaries = HashMap::new();
    let mut batches = Vec::new();
    let mut at = 0;
    // The end of the data without an end-of-stream marker ends the stream too.
    while let Some(mut len) = word(at) {
        at += 4;
        if len == -1 {
            len = word(at).ok_or_else(truncated)?;
            at += 4;
        }
        if len == 0 {
            break;
        }
        let len = usize::try_from(len)
            .map_err(|_| ArrowError::ParseError(format!("invalid metadata length {len}")))?;
        let meta = data.get(at..at + len).ok_or_else(truncated)?;
        at += len;
        let message = root_as_message(meta)
            .map_err(|e| ArrowError::ParseError(format!("invalid IPC message: {e}")))?;
        let body_len = usize::try_from(message.bodyLength())
            .ok()
            .filter(|&n| n <= data.len() - at)
            .ok_or_else(truncated)?;
        let body = data.slice_with_length(at, body_len);
        at += body_len;
        let version = message.version();
        match (message.header_type(), &schemas) {
            (MessageHeader::Schema, None) => {
                let fb = message.header_as_schema().ok_or_else(truncated)?;
                let schema = Arc::new(try_fb_to_schema(fb)?);
                let fields: Vec<_> = schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let read_as = match f.data_type() {
                            DataType::Utf8View => DataType::BinaryView,
                            // checked for UTF-8 as the string views are made
                            DataType::Utf8 if views => DataType::Binary,
                            DataType::LargeUtf8 if views => DataType::LargeBinary,
                            _ => return f.clone(),
                        };
                        Arc::new(f.as_ref().clone().with_data_type(read_as))
                    })
                    .collect();
                let read_as = Schema::new_with_metadata(fields, schema.metadata().clone());
                schemas = Some((schema, Arc::new(read_as)));
            }
            (MessageHeader::Schema, Some(_)) => {
                return Err(ArrowError::IpcError("a second schema in one stream".into()))
            }
            (MessageHeader::RecordBatch, Some((schema, read_as))) => {
                let fb = message.header_as_record_batch().ok_or_else(truncated)?;
                check_buffers(fb, body_len)?;
                let batch = RecordBatchDecoder::try_new(
                    &body,
                    fb,
                    read_as.clone(),
                    &dictionaries,
                    &version,
                )?
                .with_require_alignment(false)
                .read_record_batch()?;
                check_row_count(batch.num_rows(), body_len)?;
                batches.push(text_checked(batch, schema)?);
            }
            (MessageHeader::DictionaryBatch, Some((_, read_as))) => {
                let fb = message.header_as_dictionary_batch().ok_or_else(truncated)?;
                if let Some(data) = fb.data() {
                    check_buffers(data, body_len)?;
                }
                read_dictionary(&body, fb, read_as, &mut dictionaries, &version)?;
            }
            (MessageHeader::NONE, _) => {}
            (MessageHeader::RecordBatch | MessageHeader::DictionaryBatch, None) => {
                return Err(ArrowError::IpcError(
                    "the stream does not start with a schema".into(),
                ))
            }
            (other, _) => {
                return Err(ArrowError::IpcError(format!(
                    "unsupported IPC message {other:?}"
                )))
            }
        }
    }
    if schemas.is_none() {
        return Err(ArrowError::IpcError("no schema message".into()));
    }
    Ok(batches)
}

/// `batch`, its text read as binary, with `schema`'s types back once the
/// text is checked to be UTF-8: plain, and with string views when plain
/// text was read as binary (views made in the same pass as the check).
/// Arrow has checked the offsets.
fn text_checked(
    batch: RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<(RecordBatch, Option<RecordBatch>), ArrowError> {
    let not_utf8 = |f: &Field| {
        ArrowError::InvalidArgumentError(format!(
            "column {:?} holds bytes that are not UTF-8",
            f.name()
        ))
    };
    let mut plain = Vec::with_capacity(batch.num_columns());
    let mut viewed = Vec::with_capacity(batch.num_columns());
    for (col, f) in batch.columns().iter().zip(schema.fields()) {
        let (text, views): (ArrayRef, Option<StringViewArray>) = match col.data_type() {
            DataType::Binary if f.data_type() == &DataType::Utf8 => {
                let (text, views) =
                    utf8_of_binary(col.as_binary::<i32>()).ok_or_else(|| not_utf8(f))?;
                (Arc::new(text), views)
            }
            DataType::LargeBinary if f.data_type() == &DataType::LargeUtf8 => {
                let (text, views) =
                    utf8_of_binary(col.as_binary::<i64>()).ok_or_else(|| not_utf8(f))?;
                (Arc::new(text), views)
            }
            DataType::BinaryView if f.data_type() == &DataType::Utf8View => {
                let binary = col.as_binary_view();
                if !views_are_utf8(binary) {
                    return Err(not_utf8(f));
                }
                // SAFETY: every value was just checked to be UTF-8.
                (
                    Arc::new(unsafe { binary.clone().to_string_view_unchecked() }),
                    None,
                )
            }
            _ => (col.clone(), None),
        };
        viewed.push(views.map(|v| Arc::new(v) as ArrayRef));
        plain.push(text);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let plain = RecordBatch::try_new_with_options(schema.clone(), plain, &options)?;
    let viewed = with_views(&plain, viewed);
    Ok((plain, viewed))
}

/// `binary` (offsets checked by arrow) as text, with its string views (as
/// `string_views` makes them) when under 4 GiB; None unless its bytes are
/// UTF-8 from the first offset to the last and every offset is on a
/// character boundary (arrow's own check, here in the pass making views).
fn utf8_of_binary<O: OffsetSizeTrait>(
    binary: &GenericBinaryArray<O>,
) -> Option<(GenericStringArray<O>, Option<StringViewArray>)> {
    let values = binary.values();
    let bytes = values.as_slice();
    let offsets = binary.value_offsets();
    let (first, last) = (offsets[0].as_usize(), offsets[offsets.len() - 1].as_usize());
    std::str::from_utf8(&bytes[first..last]).ok()?;
    // `at` <= `last` <= bytes.len(): arrow checked the offsets.
    let boundary = |at: usize| at == last || (bytes[at] as i8) >= -0x40;
    let views = if bytes.len() < u32::MAX as usize {
        let mut ok = boundary(first);
        let views: Vec<u128> = offsets
            .windows(2)
            .map(|w| {
                let end = w[1].as_usize();
                ok &= boundary(end);
                view_of(bytes, w[0].as_usize(), end)
            })
            .collect();
        if !ok {
            return None;
        }
        // SAFETY: each view describes a range of `values` (buffer 0) from
        // one character boundary to another of UTF-8; nulls are kept.
        Some(unsafe {
            StringViewArray::new_unchecked(
                ScalarBuffer::from(views),
                Arc::from([values.clone()]),
                binary.nulls().cloned(),
            )
        })
    } else {
        if !offsets.iter().all(|o| boundary(o.as_usize())) {
            return None;
        }
        None
    };
    // SAFETY: as above, every value is UTF-8.
    let text = unsafe {
        GenericStringArray::new_unchecked(
            binary.offsets().clone(),
            values.clone(),
            binary.nulls().cloned(),
        )
    };
    Some((text, views))
}

/// Whether every view (null or not, as arrow's own check) is UTF-8. A data
/// buffer that is UTF-8 as a whole is checked once; a view into it is then
/// UTF-8 when it starts and ends on character boundaries. Views into other
/// buffers are checked one by one. `views` has passed arrow's binary view
/// validation (bounds, prefixes, zero padding).
fn views_are_utf8(views: &BinaryViewArray) -> bool {
    const ASCII: u128 = 0x8080_8080_8080_8080_8080_8080;
    let buffers = views.data_buffers();
    let whole: Vec<bool> = buffers
        .iter()
        .map(|b| std::str::from_utf8(b).is_ok())
        .collect();
    let boundary = |b: &[u8], i: usize| b.get(i).is_none_or(|&c| (c as i8) >= -0x40);
    views.views().iter().all(|&v| {
        let len = v as u32 as usize;
        if len <= 12 {
            (v >> 32) & ASCII == 0 || std::str::from_utf8(&v.to_le_bytes()[4..4 + len]).is_ok()
        } else {
            let index = (v >> 64) as u32 as usize;
            let start = (v >> 96) as u32 as usize;
            let b = buffers[index].as_slice();
            if whole[index] {
                boundary(b, start) && boundary(b, start + len)
            } else {
                std::str::from_utf8(&b[start..start + len]).is_ok()
            }
        }
    })
}

/// `batch` with its top-level Utf8/LargeUtf8 columns as string views over
/// the same data buffers (columns of 4 GiB of text or more stay as they
/// are); None if no column changes.
pub fn batch_with_string_views(batch: &RecordBatch) -> Option<RecordBatch> {
    let views = batch
        .columns()
        .iter()
        .map(|c| -> Option<ArrayRef> {
            match c.data_type() {
                DataType::Utf8 => Some(Arc::new(string_views(c.as_string::<i32>()))),
                DataType::LargeUtf8 if c.as_string::<i64>().values().len() < u32::MAX as usize => {
                    Some(Arc::new(string_views(c.as_string::<i64>())))
                }
                _ => None,
            }
        })
        .collect();
    with_views(batch, views)
}

/// `batch` with the columns that have a view array (one per column) replaced
/// by it; None if none has.
fn with_views(batch: &RecordBatch, views: Vec<Option<ArrayRef>>) -> Option<RecordBatch> {
    if views.iter().all(Option::is_none) {
        return None;
    }
    let schema = batch.schema();
    let (fields, columns): (Vec<FieldRef>, Vec<ArrayRef>) = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .zip(views)
        .map(|((f, c), v)| match v {
            Some(v) => (
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View)),
                v,
            ),
            None => (f.clone(), c.clone()),
        })
        .unzip();
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(schema), columns, &options).ok()
}

/// `strings` as string views over its own data buffer (under 4 GiB): what
/// `StringViewArray::from` gives, without a builder call per string (a
/// short string's view comes from one 16-byte load where the buffer allows).
pub fn string_views<O: OffsetSizeTrait>(strings: &GenericStringArray<O>) -> StringViewArray {
    let data = strings.values();
    let bytes = data.as_slice();
    debug_assert!(bytes.len() < u32::MAX as usize);
    let views: Vec<u128> = strings
        .value_offsets()
        .windows(2)
        .map(|w| view_of(bytes, w[0].as_usize(), w[1].as_usize()))
        .collect();
    // SAFETY: every view describes a range of `data` that holds valid UTF-8
    // (a string of a valid StringArray), in buffer 0; nulls are kept.
    unsafe {
        StringViewArray::new_unchecked(
            ScalarBuffer::from(views),
            Arc::from([data.clone()]),
            strings.nulls().cloned(),
        )
    }
}

/// The view of `bytes[start..end]` in buffer 0 (`start <= end <= bytes.len()`).
#[inline]
fn view_of(bytes: &[u8], start: usize, end: usize) -> u128 {
    let len = end - start;
    if len > 12 {
        let prefix = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap());
        // length | prefix | buffer 0 | offset
        (len as u128) | (prefix as u128) << 32 | (start as u128) << 96
    } else if let Some(window) = bytes.get(start..start + 16) {
        // length | the string inline, zero-padded
        let raw = u128::from_le_bytes(window.try_into().unwrap());
        let mask = (1u128 << (8 * len)) - 1;
        (len as u128) | (raw & mask) << 32
    } else {
        make_view(&bytes[start..end], 0, start as u32)
    }
}

fn looks_like_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
}

/// String columns of inferred JSON whose every value is an ISO 8601 datetime
/// become datetimes: with a zone -> UTC, without -> naive.
fn detect_datetimes(batch: RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        let mut out = (f.as_ref().clone(), col.clone());
        if f.data_type() == &DataType::Utf8 {
            let strings = col.as_string::<i32>();
            if let Some(first) = strings.iter().flatten().next() {
                if looks_like_datetime(first) {
                    let zoned = first.ends_with('Z')
                        || first.as_bytes()[19..]
                            .iter()
                            .any(|&c| c == b'+' || c == b'-');
                    let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
                    let strict = CastOptions {
                        safe: false,
                        ..Default::default()
                    };
                    if let Ok(cast) = cast_with_options(col, &naive, &strict) {
                        out = if zoned {
                            let utc = with_zone(&cast, "UTC");
                            (Field::new(f.name(), utc.data_type().clone(), true), utc)
                        } else {
                            (Field::new(f.name(), naive, true), cast)
                        };
                    }
                }
            }
        }
        fields.push(out.0);
        columns.push(out.1);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap_or(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{EncodeOptions, Encoder, Format};
    use arrow_array::{Float64Array, TimestampMicrosecondArray};

    fn sample() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("code", DataType::Utf8, true),
            Field::new("qty", DataType::Int64, true),
            Field::new("price", DataType::Float64, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("A\"é"), Some("B"), None])),
                Arc::new(Int64Array::from(vec![Some(-3), None, Some(7)])),
                Arc::new(Float64Array::from(vec![Some(1.0), None, Some(0.1)])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_259_653_500_000_000),
                    None,
                    Some(1_259_653_500_123_456),
                ])),
            ],
        )
        .unwrap()
    }

    fn encode(batch: &RecordBatch, format: Format) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        encode_with(batch, format, true)
    }

    fn encode_with(
        batch: &RecordBatch,
        format: Format,
        schema_header: bool,
    ) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        let enc = Encoder::new(
            batch.schema(),
            EncodeOptions {
                format,
                rows_per_message: 2,
                schema_header,
                ..Default::default()
            },
        )
        .unwrap();
        let mut out = Vec::new();
        enc.encode(batch, &mut |m| {
            out.push(m.payload.to_vec());
            Ok(())
        })
        .unwrap();
        (out, enc.json_schema_header().map(<[u8]>::to_vec))
    }

    fn msg<'a>(payload: &'a [u8], offset: i64, header: Option<&'a [u8]>) -> MessageRef<'a> {
        MessageRef {
            topic: "t",
            partition: 0,
            offset,
            timestamp_ms: Some(5),
            key: Some(b"k"),
            payload: Some(payload),
            schema_header: header,
        }
    }

    #[test]
    fn string_views_are_made_as_messages_come_and_dropped_if_unwanted() {
        let batch = sample();
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

    #[test]
    fn string_views_match_arrows_conversion() {
        let mut values: Vec<Option<String>> = (0..40)
            .map(|n| Some("é".repeat(n / 2) + "x".repeat(n % 2).as_str()))
            .collect();
        values.insert(3, None);
        values.push(Some("tail".into())); // short, at the very end of the buffer
        let strings = StringArray::from(values.clone());
        for array in [strings.clone(), strings.slice(5, 30)] {
            let ours = string_views(&array);
            assert_eq!(ours, StringViewArray::from(&array));
            ours.to_data().validate_full().unwrap();
        }
        let large = arrow_array::LargeStringArray::from(values);
        assert_eq!(string_views(&large), StringViewArray::from(&large));
    }

    #[test]
    fn plain_json_reads_back_inferred_types() {
        let batch = sample();
        let (payloads, header) = encode_with(&batch, Format::Json, false);
        assert!(header.is_none());
        let mut b = FrameBuilder::new(FormatHint::Auto, false, None);
        for (i, p) in payloads.iter().enumerate() {
            b.push(msg(p, i as i64, None));
        }
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert!(!b.has_bad());
        // Everything as sent, except that the naive datetimes, written in
        // UTC, come back labelled UTC.
        for (i, (a, e)) in out.columns().iter().zip(batch.columns()).enumerate() {
            if i == 3 {
                assert_eq!(a.as_ref(), with_zone(e, "UTC").as_ref());
            } else {
                assert_eq!(a.as_ref(), e.as_ref());
            }
        }
    }

    #[test]
    fn inferred_types_are_checked_past_the_sample() {
        // The first rows say int and leave out a column; later rows disagree.
        let mut lines = Vec::new();
        for i in 0..INFER_SAMPLE_ROWS {
            lines.push(format!(r#"{{"x": {i}}}"#));
        }
        lines.push(r#"{"x": 2.5, "late": "here"}"#.to_owned());
        let mut b = FrameBuilder::new(FormatHint::Auto, false, None);
        for (i, l) in lines.iter().enumerate() {
            b.push(msg(l.as_bytes(), i as i64, None));
        }
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert!(!b.has_bad());
        assert_eq!(out.num_rows(), INFER_SAMPLE_ROWS + 1);
        assert_eq!(out.schema().field(0).data_type(), &DataType::Float64);
        assert_eq!(out.schema().field(1).name(), "late");
        assert_eq!(out.column(1).null_count(), INFER_SAMPLE_ROWS);
    }

    #[test]
    fn round_trip_both_formats() {
        let batch = sample();
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
    fn foreign_json_is_inferred_with_datetimes() {
        let mut b = FrameBuilder::new(FormatHint::Auto, true, None);
        b.push(msg(
            br#"{"x": 1, "at": "2020-01-01T00:00:00Z", "s": "a"}"#,
            0,
            None,
        ));
        b.push(msg(
            br#"[{"x": 2, "at": "2020-01-01T00:00:01+01:00", "s": null, "y": 1.5}]"#,
            1,
            None,
        ));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        let s = out.schema();
        assert_eq!(
            s.field_with_name("x").unwrap().data_type(),
            &DataType::Int64
        );
        assert_eq!(
            s.field_with_name("at").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            s.field_with_name("y").unwrap().data_type(),
            &DataType::Float64
        );
        assert_eq!(
            out.column_by_name("kafka_offset")
                .unwrap()
                .as_primitive::<arrow_array::types::Int64Type>()
                .values(),
            &[0, 1]
        );
        let at = out
            .column_by_name("at")
            .unwrap()
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!(at.value(1) - at.value(0), -3_599_000_000);
    }

    #[test]
    fn bad_messages_are_named_and_good_rows_kept() {
        let batch = sample();
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
    fn concatenated_json_objects_are_refused_not_cut() {
        let mut b = FrameBuilder::new(FormatHint::Auto, true, None);
        b.push(msg(br#"{"i": 1}"#, 0, None));
        b.push(msg(br#"{"i": 2}{"i": 3}"#, 1, None));
        b.push(msg(b"[]", 2, None));
        b.push(msg(br#"{"i": 4}"#, 3, None));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert_eq!(
            out.column(0)
                .as_primitive::<arrow_array::types::Int64Type>()
                .values(),
            &[1, 4]
        );
        let bad = b.take_bad();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].offset, 1);
        assert!(bad[0].error.contains("one object"), "{}", bad[0].error);
        assert_eq!(b.take_positions().get(&("t".to_owned(), 0)), Some(&4));
    }

    #[test]
    fn json_arrays_become_lines() {
        let mut out = Vec::new();
        let rows =
            array_to_lines(br#" [{"a":"x,]}\"","b":[1,2]}, {"a":null}] "#, &mut out).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(out, b"{\"a\":\"x,]}\\\"\",\"b\":[1,2]}\n{\"a\":null}\n");
        for bad in [&b"[1, 2]"[..], b"[{\"a\":1}", b"[\"s\"]", b"[{}] x"] {
            assert!(
                array_to_lines(bad, &mut Vec::new()).is_err(),
                "{:?}",
                std::str::from_utf8(bad)
            );
        }
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

    fn ipc(batches: &[RecordBatch]) -> Vec<u8> {
        let mut w =
            arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batches[0].schema()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.into_inner().unwrap()
    }

    fn views(values: Vec<Option<&[u8]>>, buffer: &[u8]) -> arrow_array::StringViewArray {
        // Values laid out in `buffer` as given, unchecked: a stream from anywhere.
        let b = BinaryViewArray::from(values);
        let mut views = b.views().to_vec();
        let mut at = 0;
        for v in views.iter_mut() {
            let len = *v as u32;
            if len > 12 {
                let found = buffer[at..]
                    .windows(len as usize)
                    .position(|w| w[..4] == (((*v >> 32) as u32).to_le_bytes()))
                    .unwrap()
                    + at;
                *v = (*v & ((1u128 << 64) - 1)) | ((found as u128) << 96);
                at = found + len as usize;
            }
        }
        unsafe {
            arrow_array::StringViewArray::new_unchecked(
                views.into(),
                vec![Buffer::from_slice_ref(buffer)].into(),
                arrow_array::Array::nulls(&b).cloned(),
            )
        }
    }

    #[test]
    fn ipc_streams_read_as_arrow_reads_them() {
        use arrow_array::types::Int32Type;
        use arrow_array::{DictionaryArray, StringViewArray};
        let long = "PARTY BUNTING — “Fête” ünïcødé ✓";
        let schema = Arc::new(Schema::new(vec![
            Field::new("sv", DataType::Utf8View, true),
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "d",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = |k: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringViewArray::from(vec![
                        Some("ü"),
                        None,
                        Some(long),
                        Some("WHITE HANGING HEART"),
                        Some(""),
                    ])),
                    Arc::new(StringArray::from(vec![
                        Some("a"),
                        None,
                        Some(long),
                        None,
                        None,
                    ])),
                    Arc::new(
                        vec![Some("x"), Some(long), None, Some("x"), Some("y")]
                            .into_iter()
                            .collect::<DictionaryArray<Int32Type>>(),
                    ),
                    Arc::new(Int64Array::from_iter_values(k..k + 5)),
                ],
            )
            .unwrap()
        };
        let stream = ipc(&[batch(0), batch(5)]);
        let read = |stream: &[u8]| read_ipc_stream(stream, false).map(plain);
        let ours = read(&stream).unwrap();
        assert_eq!(read_ipc_stream(&stream, true).map(plain).unwrap(), ours);
        let theirs: Vec<_> =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&stream), None)
                .unwrap()
                .collect::<std::result::Result<_, _>>()
                .unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(ours, vec![batch(0), batch(5)]);
        // no end-of-stream marker
        assert_eq!(read(&stream[..stream.len() - 8]).unwrap(), ours);
        for cut in [0, 5, 100, stream.len() / 2] {
            assert!(read(&stream[..cut]).is_err(), "{cut}");
        }
    }

    fn plain(batches: Vec<(RecordBatch, Option<RecordBatch>)>) -> Vec<RecordBatch> {
        batches.into_iter().map(|(b, _)| b).collect()
    }

    /// Text a writer may send: checked alike whether string views are made
    /// as it is read (UTF-8 checked in the pass making them) or not (arrow).
    #[test]
    fn text_is_checked_alike_with_and_without_string_views() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let stream = |offsets: Vec<i32>, values: &[u8]| {
            let rows = offsets.len() - 1;
            // SAFETY: only written, never read: the IPC writer copies bytes.
            let strings = unsafe {
                StringArray::new_unchecked(
                    arrow_buffer::OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                    Buffer::from(values.to_vec()),
                    None,
                )
            };
            let n = Int64Array::from_iter_values(0..rows as i64);
            ipc(&[
                RecordBatch::try_new(schema.clone(), vec![Arc::new(strings), Arc::new(n)]).unwrap(),
            ])
        };
        let read = |s: &[u8], views: bool| read_ipc_stream(s, views);
        let long = "Ünïcode text well past twelve bytes";
        let good = [
            stream(vec![0, 1, 1, 3], "aéb".as_bytes()[..3].as_ref()),
            stream(
                vec![0, long.len() as i32, 2 * long.len() as i32],
                format!("{long}{long}").as_bytes(),
            ),
            stream(vec![0], b""),
        ];
        for s in &good {
            let plain = read(s, false).unwrap();
            let viewed = read(s, true).unwrap();
            assert_eq!(plain[0].0, viewed[0].0);
            let views = viewed[0].1.as_ref().unwrap();
            assert_eq!(views.column(0).data_type(), &DataType::Utf8View);
            assert_eq!(
                &cast(views.column(0), &DataType::Utf8).unwrap(),
                plain[0].0.column(0)
            );
        }
        let bad = [
            stream(vec![0, 2, 4], &[b'a', 0xff, b'c', b'd']), // not UTF-8
            stream(vec![0, 1, 3], "éa".as_bytes()),           // cuts a character
            stream(vec![0, 3, 2, 4], b"abcd"),                // decreasing
            stream(vec![0, 9, 4], b"abcd"),                   // past the text
            stream(vec![0, 20, 4], long.as_bytes()),          // past the text, long
        ];
        for (i, s) in bad.iter().enumerate() {
            assert!(read(s, false).is_err(), "{i} without views");
            let e = read(s, true).unwrap_err().to_string().to_lowercase();
            assert!(e.contains("utf") || e.contains("offset"), "{i}: {e}");
        }
    }

    #[test]
    fn string_views_must_be_utf8() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
        let read = |a: arrow_array::StringViewArray| {
            let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(a)]).unwrap();
            let stream = ipc(&[b]);
            let without = read_ipc_stream(&stream, false).map(plain);
            let with = read_ipc_stream(&stream, true).map(plain);
            assert_eq!(without.as_ref().ok(), with.as_ref().ok());
            assert_eq!(without.is_ok(), with.is_ok());
            without
        };
        let long = "a long enough value ü";
        // UTF-8 buffers, views on boundaries
        let buffer = format!("{long}{long}");
        let ok = read(views(
            vec![Some(long.as_bytes()), Some(long.as_bytes())],
            buffer.as_bytes(),
        ));
        assert_eq!(ok.unwrap()[0].column(0).as_string_view().value(1), long);
        // a non-UTF-8 byte outside every view
        let mut buffer = long.as_bytes().to_vec();
        buffer.push(0xff);
        assert!(read(views(vec![Some(long.as_bytes())], &buffer)).is_ok());
        // a view that cuts a character
        let cut = &long.as_bytes()[..long.len() - 1];
        assert!(read(views(vec![Some(cut)], long.as_bytes())).is_err());
        // non-UTF-8 inside a long and inside an inline view
        let bad = b"not utf-8 at all \xff".as_slice();
        assert!(read(views(vec![Some(bad)], bad)).is_err());
        assert!(read(views(vec![None, Some(b"\xc3(")], b"")).is_err());
    }
}
