//! Arrow record batches -> Kafka messages (Arrow IPC streams or JSON rows).

use std::collections::HashMap;
use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, RecordBatch,
    RecordBatchOptions, StringArray, StringViewArray, UInt32Array, UInt64Array,
};
use arrow_cast::cast;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_select::take::take_record_batch;

use crate::error::{Error, Result};

/// Header that carries the column types of a JSON message, so tskafka
/// consumers get back exactly the dtypes that were sent.
pub const SCHEMA_HEADER: &str = "tskafka.schema";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Arrow,
    Json,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "arrow" | "ipc" | "arrow-ipc" => Ok(Format::Arrow),
            "json" => Ok(Format::Json),
            other => Err(Error::Config(format!(
                "unknown format {other:?}: use 'arrow' (Arrow IPC, the default) or 'json'"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct EncodeOptions {
    pub format: Format,
    pub rows_per_message: usize,
    pub key_columns: Vec<String>,
    pub timestamp_column: Option<String>,
    /// Payloads larger than this are split (Arrow) or refused (a single row).
    pub max_message_bytes: usize,
    /// JSON: every message carries the column types in a [`SCHEMA_HEADER`].
    pub schema_header: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            format: Format::Arrow,
            rows_per_message: 10_000,
            key_columns: Vec::new(),
            timestamp_column: None,
            max_message_bytes: 1_000_000,
            schema_header: false,
        }
    }
}

/// One Kafka message ready to produce (borrowed: the sink copies what it keeps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Message<'a> {
    pub payload: &'a [u8],
    pub key: Option<&'a [u8]>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    pub rows: usize,
}

pub const JSON_TYPES: &str = "bool, int8-64, uint8-64, float16/32/64, string (utf8, large, view), \
     date32/64, timestamp (any unit, with or without zone), dictionary/categorical of strings, null";

pub type Sink<'s> = dyn FnMut(Message<'_>) -> Result<()> + 's;

pub struct Encoder {
    options: EncodeOptions,
    schema: SchemaRef,
    key_indices: Vec<usize>,
    timestamp_index: Option<usize>,
    json_schema: Option<Vec<u8>>,
}

fn column_index(schema: &Schema, name: &str, role: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::Schema(format!(
            "{role} column {name:?} is not in the frame; its columns are {names:?}"
        ))
    })
}

fn json_type_supported(dt: &DataType) -> bool {
    use DataType::*;
    match dt {
        Null
        | Boolean
        | Int8
        | Int16
        | Int32
        | Int64
        | UInt8
        | UInt16
        | UInt32
        | UInt64
        | Float16
        | Float32
        | Float64
        | Utf8
        | LargeUtf8
        | Utf8View
        | Date32
        | Date64
        | Timestamp(_, _) => true,
        Dictionary(_, v) => matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View),
        _ => false,
    }
}

/// The column types of a schema as the JSON text of [`SCHEMA_HEADER`].
pub fn schema_header(schema: &Schema) -> Vec<u8> {
    let pairs: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| {
            (
                f.name().clone(),
                json_output_type(f.data_type()).to_string(),
            )
        })
        .collect();
    serde_json::to_vec(&pairs).expect("strings serialize")
}

/// The type a JSON column decodes back into (dictionaries come back as strings).
fn json_output_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Dictionary(_, v) => v.as_ref().clone(),
        other => other.clone(),
    }
}

impl Encoder {
    pub fn new(schema: SchemaRef, options: EncodeOptions) -> Result<Self> {
        if options.rows_per_message == 0 {
            return Err(Error::Config("rows_per_message must be at least 1".into()));
        }
        let key_indices = options
            .key_columns
            .iter()
            .map(|k| column_index(&schema, k, "key"))
            .collect::<Result<Vec<_>>>()?;
        let timestamp_index = match &options.timestamp_column {
            Some(name) => {
                let i = column_index(&schema, name, "timestamp")?;
                let dt = schema.field(i).data_type();
                if !matches!(
                    dt,
                    DataType::Timestamp(_, _)
                        | DataType::Date32
                        | DataType::Date64
                        | DataType::Int64
                ) {
                    return Err(Error::Schema(format!(
                        "timestamp column {name:?} has type {dt}; it must be a datetime, \
                         a date, or int64 milliseconds since the epoch"
                    )));
                }
                Some(i)
            }
            None => None,
        };
        let json_schema = if options.format == Format::Json {
            for f in schema.fields() {
                if !json_type_supported(f.data_type()) {
                    return Err(Error::Schema(format!(
                        "column {:?} has type {}, which the json format cannot carry; \
                         supported: {JSON_TYPES}. Use format='arrow' or cast the column",
                        f.name(),
                        f.data_type()
                    )));
                }
            }
            options.schema_header.then(|| schema_header(&schema))
        } else {
            None
        };
        Ok(Self {
            options,
            schema,
            key_indices,
            timestamp_index,
            json_schema,
        })
    }

    /// The [`SCHEMA_HEADER`] value of every message, if asked for (JSON only).
    pub fn json_schema_header(&self) -> Option<&[u8]> {
        self.json_schema.as_deref()
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Encodes `batch`, handing each message to `sink` in order.
    pub fn encode(&self, batch: &RecordBatch, sink: &mut Sink<'_>) -> Result<()> {
        self.encode_from(batch, 0, sink)
    }

    /// As [`Self::encode`], for a batch whose first row is row `first_row`
    /// of the data sent (errors name rows by that count).
    pub fn encode_from(
        &self,
        batch: &RecordBatch,
        first_row: usize,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        if batch.schema().fields() != self.schema.fields() {
            return Err(Error::Schema(format!(
                "batch schema {:?} differs from the first batch's {:?}",
                batch.schema(),
                self.schema
            )));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = self.keys(batch)?;
        let timestamps = self.timestamps_ms(batch)?;
        if self.options.format == Format::Json && self.options.rows_per_message == 1 {
            return self.encode_json_rows(
                batch,
                first_row,
                keys.as_ref(),
                timestamps.as_deref(),
                sink,
            );
        }
        let plain;
        let batch = match self.options.format {
            Format::Arrow => {
                plain = without_views(batch);
                &plain
            }
            Format::Json => batch,
        };
        match keys {
            None => self.encode_chunks(
                batch,
                RowNumbers::From(first_row),
                None,
                timestamps.as_deref(),
                sink,
            ),
            Some(keys) => {
                for (key, rows) in group_rows(&keys) {
                    let indices = UInt32Array::from(rows.clone());
                    let part = take_record_batch(batch, &indices)?;
                    let ts = timestamps.as_ref().map(|t| {
                        indices
                            .values()
                            .iter()
                            .map(|&i| t[i as usize])
                            .collect::<Vec<_>>()
                    });
                    let numbers = RowNumbers::Taken(first_row, &rows);
                    self.encode_chunks(&part, numbers, key, ts.as_deref(), sink)?;
                }
                Ok(())
            }
        }
    }

    /// The key of every row as a string column (several key columns joined by '|').
    fn keys(&self, batch: &RecordBatch) -> Result<Option<StringArray>> {
        let cols = self
            .key_indices
            .iter()
            .map(|&i| key_strings(batch.column(i), batch.schema().field(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(match cols.len() {
            0 => None,
            1 => cols.into_iter().next(),
            _ => Some(
                (0..batch.num_rows())
                    .map(|r| {
                        if cols.iter().all(|c| c.is_null(r)) {
                            return None;
                        }
                        let parts: Vec<&str> = cols
                            .iter()
                            .map(|c| if c.is_null(r) { "" } else { c.value(r) })
                            .collect();
                        Some(parts.join("|"))
                    })
                    .collect(),
            ),
        })
    }

    fn timestamps_ms(&self, batch: &RecordBatch) -> Result<Option<Vec<Option<i64>>>> {
        let Some(i) = self.timestamp_index else {
            return Ok(None);
        };
        Ok(Some(epoch_millis(batch.column(i).as_ref())))
    }

    /// Messages of up to `rows_per_message` rows of `batch`, all with `key`.
    fn encode_chunks(
        &self,
        batch: &RecordBatch,
        numbers: RowNumbers<'_>,
        key: Option<&str>,
        timestamps: Option<&[Option<i64>]>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let json = match self.options.format {
            Format::Json => Some(JsonRows::new(batch)?),
            Format::Arrow => None,
        };
        let chunk = Chunk {
            batch,
            numbers,
            json: json.as_ref(),
            key: key.map(str::as_bytes),
            timestamps,
        };
        let n = batch.num_rows();
        let mut start = 0;
        while start < n {
            let len = self.options.rows_per_message.min(n - start);
            self.encode_slice(&chunk, start, len, sink)?;
            start += len;
        }
        Ok(())
    }

    /// One message of rows `start..start + len`, split in two while too large.
    fn encode_slice(
        &self,
        chunk: &Chunk<'_>,
        start: usize,
        len: usize,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let payload = match chunk.json {
            Some(rows) => rows.array(start, len),
            None => ipc_stream(&compact_views(&chunk.batch.slice(start, len))?)?,
        };
        if payload.len() > self.options.max_message_bytes {
            if len == 1 {
                return Err(too_large(
                    chunk.numbers.get(start),
                    payload.len(),
                    self.options.max_message_bytes,
                ));
            }
            let half = len / 2;
            self.encode_slice(chunk, start, half, sink)?;
            return self.encode_slice(chunk, start + half, len - half, sink);
        }
        sink(Message {
            payload: &payload,
            key: chunk.key,
            timestamp_ms: chunk
                .timestamps
                .and_then(|t| t[start..start + len].iter().flatten().max().copied()),
            rows: len,
        })
    }

    /// One JSON object per message.
    fn encode_json_rows(
        &self,
        batch: &RecordBatch,
        first_row: usize,
        keys: Option<&StringArray>,
        timestamps: Option<&[Option<i64>]>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let rows = JsonRows::new(batch)?;
        let mut buf = Vec::with_capacity(256);
        for row in 0..batch.num_rows() {
            buf.clear();
            rows.write_object(row, &mut buf);
            if buf.len() > self.options.max_message_bytes {
                return Err(too_large(
                    first_row + row,
                    buf.len(),
                    self.options.max_message_bytes,
                ));
            }
            sink(Message {
                payload: &buf,
                key: keys
                    .filter(|k| k.is_valid(row))
                    .map(|k| k.value(row).as_bytes()),
                timestamp_ms: timestamps.and_then(|t| t[row]),
                rows: 1,
            })?;
        }
        Ok(())
    }
}

/// Which row of the data sent each row of a chunk is.
#[derive(Clone, Copy)]
enum RowNumbers<'a> {
    /// Consecutive rows from this one.
    From(usize),
    /// The rows of one key: the batch's first row, and the rows taken from it.
    Taken(usize, &'a [u32]),
}

impl RowNumbers<'_> {
    fn get(self, i: usize) -> usize {
        match self {
            RowNumbers::From(first) => first + i,
            RowNumbers::Taken(first, rows) => first + rows[i] as usize,
        }
    }
}

/// What one message is cut from.
struct Chunk<'a> {
    batch: &'a RecordBatch,
    numbers: RowNumbers<'a>,
    json: Option<&'a JsonRows>,
    key: Option<&'a [u8]>,
    timestamps: Option<&'a [Option<i64>]>,
}

fn too_large(row: usize, bytes: usize, limit: usize) -> Error {
    Error::Schema(format!(
        "row {row} alone encodes to {bytes} bytes, over the {limit} bytes a message may hold \
         (message.max.bytes less room for the key and headers): raise 'message.max.bytes' \
         (on the producer, and max.message.bytes on the topic) or drop wide columns"
    ))
}

/// Writes rows of a batch as JSON objects.
struct JsonRows(Vec<JsonColumn>);

impl JsonRows {
    fn new(batch: &RecordBatch) -> Result<Self> {
        batch
            .columns()
            .iter()
            .zip(batch.schema().fields())
            .map(|(col, field)| JsonColumn::new(field, col))
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    fn write_object(&self, row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            w.write(row, out);
        }
        out.push(b'}');
    }

    /// `[{...},{...}]`: what `json.loads` turns into a list of records.
    fn array(&self, start: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len * 128);
        out.push(b'[');
        for row in start..start + len {
            if row > start {
                out.push(b',');
            }
            self.write_object(row, &mut out);
        }
        out.push(b']');
        out
    }
}

/// Rows grouped by key in order of first appearance; null keys form one group.
fn group_rows(keys: &StringArray) -> Vec<(Option<&str>, Vec<u32>)> {
    let mut index: HashMap<Option<&str>, usize> = HashMap::new();
    let mut groups: Vec<(Option<&str>, Vec<u32>)> = Vec::new();
    for row in 0..keys.len() {
        let key = keys.is_valid(row).then(|| keys.value(row));
        let g = *index.entry(key).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(row as u32);
    }
    groups
}

fn key_strings(col: &ArrayRef, field: &Field) -> Result<StringArray> {
    let as_text = cast(col, &DataType::Utf8).map_err(|e| {
        Error::Schema(format!(
            "key column {:?} of type {} cannot be turned into a key: {e}",
            field.name(),
            field.data_type()
        ))
    })?;
    Ok(as_text.as_string::<i32>().clone())
}

/// Milliseconds since the epoch of a datetime, date or int64 column (UTC for naive datetimes).
pub fn epoch_millis(col: &dyn Array) -> Vec<Option<i64>> {
    fn map<T: arrow_array::types::ArrowPrimitiveType<Native = N>, N: Copy>(
        col: &dyn Array,
        f: impl Fn(N) -> i64,
    ) -> Vec<Option<i64>> {
        col.as_primitive::<T>().iter().map(|v| v.map(&f)).collect()
    }
    match col.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            map::<TimestampSecondType, _>(col, |v| v * 1000)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            map::<TimestampMillisecondType, _>(col, |v| v)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            map::<TimestampMicrosecondType, _>(col, |v| v.div_euclid(1000))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            map::<TimestampNanosecondType, _>(col, |v| v.div_euclid(1_000_000))
        }
        DataType::Date32 => map::<Date32Type, _>(col, |d| d as i64 * 86_400_000),
        DataType::Date64 => map::<Date64Type, _>(col, |v| v),
        DataType::Int64 => map::<Int64Type, _>(col, |v| v),
        _ => vec![None; col.len()],
    }
}

/// `dt` with string and binary views (at any depth) as plain strings and binaries.
fn plain_type(dt: &DataType) -> DataType {
    use DataType::*;
    let field =
        |f: &Arc<Field>| Arc::new(f.as_ref().clone().with_data_type(plain_type(f.data_type())));
    match dt {
        Utf8View => Utf8,
        BinaryView => Binary,
        List(f) => List(field(f)),
        LargeList(f) => LargeList(field(f)),
        FixedSizeList(f, n) => FixedSizeList(field(f), *n),
        Struct(fields) => Struct(fields.iter().map(field).collect()),
        Dictionary(k, v) => Dictionary(k.clone(), Box::new(plain_type(v))),
        other => other.clone(),
    }
}

/// The batch as Arrow messages carry it: string and binary views become
/// plain Utf8/Binary, which every Arrow reader reads (views need Arrow 15+)
/// and which is smaller for short strings (4-byte offsets, not 16-byte
/// views). A column the cast kernel cannot convert keeps its views.
fn without_views(batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    if schema
        .fields()
        .iter()
        .all(|f| &plain_type(f.data_type()) == f.data_type())
    {
        return batch.clone();
    }
    let (fields, columns): (Vec<_>, Vec<_>) = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            let to = plain_type(f.data_type());
            match (&to != f.data_type()).then(|| cast(c, &to)) {
                Some(Ok(plain)) => (Arc::new(f.as_ref().clone().with_data_type(to)), plain),
                _ => (f.clone(), c.clone()),
            }
        })
        .unzip();
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new_with_options(Arc::new(schema), columns, &options)
        .unwrap_or_else(|_| batch.clone())
}

/// A slice of a string/binary view column still points at all of the
/// column's data buffers, which IPC would write out whole: copy out what it uses.
fn compact_views(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch
        .columns()
        .iter()
        .any(|c| matches!(c.data_type(), DataType::Utf8View | DataType::BinaryView))
    {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            match c.data_type() {
                DataType::Utf8View => Arc::new(c.as_string_view().gc()),
                DataType::BinaryView => Arc::new(c.as_binary_view().gc()),
                _ => c.clone(),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// One Arrow IPC stream (schema, batch, end marker) holding `batch`.
pub fn ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::with_capacity(1024), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// Writes one column's value of a row as `"name":value`.
struct JsonColumn {
    name: Vec<u8>,
    values: JsonValues,
}

/// A column cast once to the few types the writer knows, so a row is a
/// match and a read, with no downcast per value.
enum JsonValues {
    Null,
    Bool(BooleanArray),
    Int(Int64Array),
    UInt(UInt64Array),
    Float(Float64Array),
    Utf8(StringArray),
    LargeUtf8(LargeStringArray),
    View(StringViewArray),
    /// Days since the epoch.
    Date(Int64Array),
    /// Counts of `unit` since the epoch.
    Timestamp(Int64Array, TimeUnit),
}

impl JsonColumn {
    fn new(field: &Field, col: &ArrayRef) -> Result<Self> {
        use DataType::*;
        let to = |dt: DataType| cast(col, &dt);
        let values = match col.data_type() {
            Null => JsonValues::Null,
            Boolean => JsonValues::Bool(col.as_boolean().clone()),
            Int8 | Int16 | Int32 | Int64 => JsonValues::Int(to(Int64)?.as_primitive().clone()),
            UInt8 | UInt16 | UInt32 | UInt64 => {
                JsonValues::UInt(to(UInt64)?.as_primitive().clone())
            }
            Float16 | Float32 | Float64 => JsonValues::Float(to(Float64)?.as_primitive().clone()),
            Utf8 => JsonValues::Utf8(col.as_string().clone()),
            LargeUtf8 => JsonValues::LargeUtf8(col.as_string().clone()),
            Utf8View => JsonValues::View(col.as_string_view().clone()),
            Dictionary(_, _) => JsonValues::Utf8(to(Utf8)?.as_string().clone()),
            Date32 => JsonValues::Date(to(Int32)?.as_primitive::<Int32Type>().unary(i64::from)),
            Date64 => JsonValues::Date(
                to(Int64)?
                    .as_primitive::<Int64Type>()
                    .unary(|ms| ms.div_euclid(86_400_000)),
            ),
            Timestamp(unit, _) => JsonValues::Timestamp(to(Int64)?.as_primitive().clone(), *unit),
            other => {
                return Err(Error::Schema(format!(
                    "column {:?} has type {other}, which the json format cannot carry; supported: {JSON_TYPES}",
                    field.name()
                )))
            }
        };
        let mut name = serde_json::to_vec(field.name()).expect("strings serialize");
        name.push(b':');
        Ok(Self { name, values })
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.name);
        let null = |out: &mut Vec<u8>| out.extend_from_slice(b"null");
        match &self.values {
            JsonValues::Null => null(out),
            JsonValues::Bool(a) if a.is_valid(row) => {
                out.extend_from_slice(if a.value(row) { b"true" } else { b"false" })
            }
            JsonValues::Int(a) if a.is_valid(row) => {
                out.extend_from_slice(itoa::Buffer::new().format(a.value(row)).as_bytes())
            }
            JsonValues::UInt(a) if a.is_valid(row) => {
                out.extend_from_slice(itoa::Buffer::new().format(a.value(row)).as_bytes())
            }
            JsonValues::Float(a) if a.is_valid(row) && a.value(row).is_finite() => {
                write_f64(out, a.value(row))
            }
            JsonValues::Utf8(a) if a.is_valid(row) => write_str(out, a.value(row)),
            JsonValues::LargeUtf8(a) if a.is_valid(row) => write_str(out, a.value(row)),
            JsonValues::View(a) if a.is_valid(row) => write_str(out, a.value(row)),
            JsonValues::Date(a) if a.is_valid(row) => {
                write_datetime(out, a.value(row) * 86_400, 0, None)
            }
            JsonValues::Timestamp(a, unit) if a.is_valid(row) => {
                let v = a.value(row);
                let (secs, nanos, digits) = match unit {
                    TimeUnit::Second => (v, 0, 0),
                    TimeUnit::Millisecond => {
                        (v.div_euclid(1000), v.rem_euclid(1000) * 1_000_000, 3)
                    }
                    TimeUnit::Microsecond => {
                        (v.div_euclid(1_000_000), v.rem_euclid(1_000_000) * 1000, 6)
                    }
                    TimeUnit::Nanosecond => {
                        (v.div_euclid(1_000_000_000), v.rem_euclid(1_000_000_000), 9)
                    }
                };
                write_datetime(out, secs, nanos as u32, Some(digits));
            }
            _ => null(out),
        }
    }
}

/// The shortest text that reads back as finite `v`, as ryu writes it; values
/// with up to 4 decimals (prices, ids) are written from their integer digits.
fn write_f64(out: &mut Vec<u8>, v: f64) {
    // Below 2^33, ulp(v) < 1e-6: one decimal with <= 4 places at most reads as v.
    if v != 0.0 && v.abs() < 8e9 {
        let mut scale = 1.0;
        for places in 0..=4 {
            let m = (v * scale).round();
            if m / scale == v {
                if m < 0.0 {
                    out.push(b'-');
                }
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(m.abs() as u64).as_bytes();
                if places == 0 {
                    out.extend_from_slice(digits);
                    out.extend_from_slice(b".0");
                } else if digits.len() > places {
                    let (int, frac) = digits.split_at(digits.len() - places);
                    out.extend_from_slice(int);
                    out.push(b'.');
                    out.extend_from_slice(frac);
                } else {
                    out.extend_from_slice(b"0.");
                    out.extend(std::iter::repeat_n(b'0', places - digits.len()));
                    out.extend_from_slice(digits);
                }
                return;
            }
            scale *= 10.0;
        }
    }
    out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("vec write");
}

/// Writes `"YYYY-MM-DD"` (time `None`) or `"YYYY-MM-DDTHH:MM:SS[.fff]Z"`.
fn write_datetime(out: &mut Vec<u8>, secs: i64, nanos: u32, time_digits: Option<u32>) {
    let days = secs.div_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return write_datetime_chrono(out, secs, nanos, time_digits);
    }
    let mut b = [0u8; 32];
    b[0] = b'"';
    two(&mut b[1..], (year / 100) as u32);
    two(&mut b[3..], (year % 100) as u32);
    b[5] = b'-';
    two(&mut b[6..], month);
    b[8] = b'-';
    two(&mut b[9..], day);
    let Some(digits) = time_digits else {
        b[11] = b'"';
        out.extend_from_slice(&b[..12]);
        return;
    };
    let t = secs.rem_euclid(86_400) as u32;
    b[11] = b'T';
    two(&mut b[12..], t / 3600);
    b[14] = b':';
    two(&mut b[15..], t / 60 % 60);
    b[17] = b':';
    two(&mut b[18..], t % 60);
    let mut end = 20;
    if nanos > 0 {
        let digits = digits.max(1);
        let mut frac = nanos / 10u32.pow(9 - digits);
        b[end] = b'.';
        for i in (0..digits as usize).rev() {
            b[end + 1 + i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        end += 1 + digits as usize;
    }
    b[end..end + 2].copy_from_slice(b"Z\"");
    out.extend_from_slice(&b[..end + 2]);
}

fn two(b: &mut [u8], v: u32) {
    b[0] = b'0' + (v / 10) as u8;
    b[1] = b'0' + (v % 10) as u8;
}

/// (year, month, day) of a count of days since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// [`write_datetime`] for years outside 0..=9999.
fn write_datetime_chrono(out: &mut Vec<u8>, secs: i64, nanos: u32, time_digits: Option<u32>) {
    let Some(dt) = chrono::DateTime::from_timestamp(secs, nanos) else {
        out.extend_from_slice(b"null");
        return;
    };
    use chrono::{Datelike, Timelike};
    let _ = match time_digits {
        None => write!(
            out,
            "\"{:04}-{:02}-{:02}\"",
            dt.year(),
            dt.month(),
            dt.day()
        ),
        Some(digits) => {
            let _ = write!(
                out,
                "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            );
            if nanos > 0 {
                let frac = nanos / 10u32.pow(9 - digits.max(1));
                let _ = write!(out, ".{:0width$}", frac, width = digits.max(1) as usize);
            }
            out.extend_from_slice(b"Z\"");
            Ok(())
        }
    };
}

/// A schema whose dictionary columns are plain strings: what the JSON format gives back.
pub fn json_schema(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Arc::new(Field::new(f.name(), json_output_type(f.data_type()), true)))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array, StringViewArray, TimestampMicrosecondArray};

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
                Arc::new(StringArray::from(vec![
                    Some("A\"é"),
                    Some("B"),
                    Some("A\"é"),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![Some(-3), Some(1), None, Some(7)])),
                Arc::new(Float64Array::from(vec![1.0, f64::NAN, 2.5, 0.1])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_259_653_500_000_000),
                    Some(1_259_653_500_123_456),
                    None,
                    Some(0),
                ])),
            ],
        )
        .unwrap()
    }

    #[derive(Debug)]
    struct Owned {
        payload: Vec<u8>,
        key: Option<Vec<u8>>,
        timestamp_ms: Option<i64>,
        rows: usize,
    }

    fn collect(batch: &RecordBatch, options: EncodeOptions) -> Vec<Owned> {
        let enc = Encoder::new(batch.schema(), options).unwrap();
        let mut out = Vec::new();
        enc.encode(batch, &mut |m| {
            out.push(Owned {
                payload: m.payload.to_vec(),
                key: m.key.map(<[u8]>::to_vec),
                timestamp_ms: m.timestamp_ms,
                rows: m.rows,
            });
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn floats_are_written_as_ryu_writes_them() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            seed >> 11
        };
        let mut cases = vec![
            0.0,
            -0.0,
            0.1,
            0.2 + 0.1,
            1.0,
            -1.0,
            2.55,
            1e-4,
            1.5e-4,
            1e-5,
            0.0625,
            12346.0,
            7.999_999_999e9,
            8e9,
            1e15,
            1e16,
            123_456_789.123_4,
            f64::MIN_POSITIVE,
            f64::MAX,
        ];
        for _ in 0..200_000 {
            let r = next();
            let places = (r % 7) as i32;
            let int = (next() % 10u64.pow(1 + (r % 11) as u32)) as f64;
            let v = int / 10f64.powi(places);
            cases.push(if r & 8 == 0 { v } else { -v });
            cases.push(f64::from_bits((next() << 11) | (next() % 2048)));
        }
        for v in cases.into_iter().filter(|v| v.is_finite()) {
            let mut ours = Vec::new();
            write_f64(&mut ours, v);
            assert_eq!(
                std::str::from_utf8(&ours).unwrap(),
                ryu::Buffer::new().format_finite(v),
                "{v:e}"
            );
        }
    }

    #[test]
    fn datetimes_are_written_as_chrono_writes_them() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 11) as i64
        };
        let mut cases = vec![
            0,
            -1,
            86_399,
            86_400,
            951_782_400,
            -62_167_219_200,
            253_402_300_799,
        ];
        cases.extend((0..20_000).map(|_| next() % 253_402_300_800 - 62_167_219_200));
        for secs in cases {
            let nanos = (next() % 1_000_000_000) as u32;
            for (n, digits) in [
                (0, None),
                (0, Some(0)),
                (nanos / 1_000_000 * 1_000_000, Some(3)),
                (nanos / 1000 * 1000, Some(6)),
                (nanos, Some(9)),
            ] {
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                write_datetime(&mut fast, secs, n, digits);
                write_datetime_chrono(&mut slow, secs, n, digits);
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(slow).unwrap(),
                    "{secs} {n} {digits:?}"
                );
            }
        }
    }

    #[test]
    fn json_rows_keep_types() {
        let msgs = collect(
            &sample(),
            EncodeOptions {
                format: Format::Json,
                rows_per_message: 1,
                key_columns: vec!["code".into()],
                timestamp_column: Some("at".into()),
                ..Default::default()
            },
        );
        let text: Vec<String> = msgs
            .iter()
            .map(|m| String::from_utf8(m.payload.clone()).unwrap())
            .collect();
        assert_eq!(
            text[0],
            r#"{"code":"A\"é","qty":-3,"price":1.0,"at":"2009-12-01T07:45:00Z"}"#
        );
        assert_eq!(
            text[1],
            r#"{"code":"B","qty":1,"price":null,"at":"2009-12-01T07:45:00.123456Z"}"#
        );
        assert_eq!(
            text[2],
            r#"{"code":"A\"é","qty":null,"price":2.5,"at":null}"#
        );
        assert_eq!(msgs[0].key.as_deref(), Some("A\"é".as_bytes()));
        let arrays = collect(
            &sample(),
            EncodeOptions {
                format: Format::Json,
                rows_per_message: 10,
                key_columns: vec!["code".into()],
                ..Default::default()
            },
        );
        let first: serde_json::Value = serde_json::from_slice(&arrays[0].payload).unwrap();
        assert_eq!(first.as_array().unwrap().len(), 2);
        assert_eq!(
            arrays.iter().map(|m| m.rows).collect::<Vec<_>>(),
            vec![2, 1, 1]
        );
        assert_eq!(msgs[3].key, None);
        assert_eq!(msgs[0].timestamp_ms, Some(1_259_653_500_000));
        assert_eq!(msgs[2].timestamp_ms, None);
        for t in &text {
            serde_json::from_str::<serde_json::Value>(t).unwrap();
        }
    }

    #[test]
    fn arrow_messages_group_by_key_and_split() {
        let batch = sample();
        let msgs = collect(
            &batch,
            EncodeOptions {
                key_columns: vec!["code".into()],
                timestamp_column: Some("at".into()),
                ..Default::default()
            },
        );
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0].rows, 2);
        assert_eq!(msgs[0].timestamp_ms, Some(1_259_653_500_000));
        assert_eq!(msgs.iter().map(|m| m.rows).sum::<usize>(), 4);

        let msgs = collect(
            &batch,
            EncodeOptions {
                rows_per_message: 3,
                ..Default::default()
            },
        );
        assert_eq!(msgs.iter().map(|m| m.rows).collect::<Vec<_>>(), vec![3, 1]);
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&msgs[0].payload), None)
                .unwrap();
        let back: Vec<_> = reader.collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(back[0], batch.slice(0, 3));
    }

    #[test]
    fn oversized_messages_are_split() {
        let batch = sample();
        let one = (0..batch.num_rows())
            .map(|i| ipc_stream(&batch.slice(i, 1)).unwrap().len())
            .max()
            .unwrap();
        let msgs = collect(
            &batch,
            EncodeOptions {
                max_message_bytes: one + 8,
                ..Default::default()
            },
        );
        assert!(msgs.len() > 1);
        assert!(msgs.iter().all(|m| m.payload.len() <= one + 8));
        assert_eq!(msgs.iter().map(|m| m.rows).sum::<usize>(), 4);
        let too_small = Encoder::new(
            batch.schema(),
            EncodeOptions {
                max_message_bytes: 10,
                ..Default::default()
            },
        )
        .unwrap();
        let err = too_small.encode(&batch, &mut |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("message.max.bytes"), "{err}");
    }

    #[test]
    fn view_slices_carry_only_their_own_bytes() {
        let long: Vec<String> = (0..1000).map(|i| format!("{i:0>100}")).collect();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringViewArray::from_iter_values(long.iter()))],
        )
        .unwrap();
        let msgs = collect(
            &batch,
            EncodeOptions {
                rows_per_message: 10,
                ..Default::default()
            },
        );
        assert_eq!(msgs.len(), 100);
        assert!(msgs[0].payload.len() < 3_000, "{}", msgs[0].payload.len());
    }

    #[test]
    fn views_go_on_the_wire_as_plain_strings() {
        let item = Field::new("item", DataType::Utf8View, true);
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("b", DataType::BinaryView, true),
            Field::new("l", DataType::List(Arc::new(item.clone())), true),
        ]));
        let mut list =
            arrow_array::builder::ListBuilder::new(arrow_array::builder::StringViewBuilder::new())
                .with_field(Arc::new(item));
        list.append_value([Some("a long string of more than twelve bytes"), None]);
        list.append_null();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringViewArray::from(vec![Some("short"), None])),
                Arc::new(arrow_array::BinaryViewArray::from(vec![
                    Some(b"\xff\x00".as_slice()),
                    Some(b"x".as_slice()),
                ])),
                Arc::new(list.finish()),
            ],
        )
        .unwrap();
        let msgs = collect(&batch, EncodeOptions::default());
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&msgs[0].payload), None)
                .unwrap();
        let wire = reader.schema();
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8);
        assert_eq!(wire.field(1).data_type(), &DataType::Binary);
        assert_eq!(
            wire.field(2).data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
        let back: Vec<_> = reader.collect::<std::result::Result<_, _>>().unwrap();
        for (got, sent) in back[0].columns().iter().zip(batch.columns()) {
            assert_eq!(&cast(got, sent.data_type()).unwrap(), sent);
        }
    }

    #[test]
    fn bad_column_names_and_types_are_named() {
        let batch = sample();
        let err = Encoder::new(
            batch.schema(),
            EncodeOptions {
                key_columns: vec!["nope".into()],
                ..Default::default()
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("\"code\""),
            "{err}"
        );
        let err = Encoder::new(
            batch.schema(),
            EncodeOptions {
                timestamp_column: Some("code".into()),
                ..Default::default()
            },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("Utf8") || err.contains("utf8"), "{err}");
    }

    #[test]
    fn schema_header_types_parse_back() {
        let schema = sample().schema();
        let header: Vec<(String, String)> =
            serde_json::from_slice(&schema_header(&schema)).unwrap();
        for ((name, ty), field) in header.iter().zip(schema.fields()) {
            assert_eq!(name, field.name());
            assert_eq!(&DataType::from_str(ty).unwrap(), field.data_type());
        }
        let tz = DataType::Timestamp(TimeUnit::Nanosecond, Some("Europe/London".into()));
        assert_eq!(DataType::from_str(&tz.to_string()).unwrap(), tz);
    }
}
