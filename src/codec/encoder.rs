//! Frames -> messages: which rows go into one message (`rows_per_message`,
//! one key per message, split while over `max_message_bytes`), their keys
//! and timestamps. Each format writes the payload of its rows.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow_cast::cast;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_select::take::take_record_batch;

use super::arrow_ipc::{compact_views, ipc_stream, without_views};
use super::avro::RowWriter;
use super::confluent::frame_header;
use super::csv_lines::CsvRows;
use super::json::{json_type_supported, schema_header, JsonRows, JSON_TYPES};
use super::pandas_json::JsonOrient;
use super::raw::value_index;
use super::time::epoch;
use super::Format;
use crate::error::{Error, Result};

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
    /// raw, text: the column sent as each message's value (None: the only column).
    pub value_column: Option<String>,
    /// Avro and JSON Schema: the registered schema's id and text.
    pub registered: Option<(u32, String)>,
    /// JSON: the layout of each message, as pandas' `to_json(orient=...)`.
    pub json_orient: JsonOrient,
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
            value_column: None,
            registered: None,
            json_orient: JsonOrient::Records,
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

pub type Sink<'s> = dyn FnMut(Message<'_>) -> Result<()> + 's;

pub struct Encoder {
    options: EncodeOptions,
    schema: SchemaRef,
    key_indices: Vec<usize>,
    timestamp_index: Option<usize>,
    json_schema: Option<Vec<u8>>,
    /// raw, text: the value column.
    value_index: Option<usize>,
}

fn column_index(schema: &Schema, name: &str, role: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::Schema(format!(
            "{role} column {name:?} is not in the frame; its columns are {names:?}"
        ))
    })
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
        if options.format.uses_registry() {
            if options.registered.is_none() {
                return Err(Error::Config(format!(
                    "format {:?} needs a schema registered first (schema.registry.url in the \
                     config)",
                    options.format
                )));
            }
            if options.rows_per_message != 1 {
                return Err(Error::Config(
                    "a Schema Registry message holds one row: leave rows_per_message out".into(),
                ));
            }
        }
        if options.format != Format::Json
            && !matches!(options.json_orient, JsonOrient::Records | JsonOrient::Auto)
        {
            return Err(Error::Config(format!(
                "json_orient={:?} lays out JSON messages: use it with format='json'",
                options.json_orient.name()
            )));
        }
        let json_schema = if matches!(options.format, Format::Json | Format::JsonSchema) {
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
            (options.schema_header && options.format == Format::Json)
                .then(|| schema_header(&schema))
        } else {
            None
        };
        let value_index = match options.format {
            Format::Raw | Format::Text => Some(value_index(
                &schema,
                options.value_column.as_deref(),
                options.format,
            )?),
            _ if options.value_column.is_some() => {
                return Err(Error::Config(
                    "value= names the column sent as the value with format='raw' or 'text'; \
                     the other formats send every column"
                        .into(),
                ))
            }
            _ => None,
        };
        if options.format == Format::Raw && options.rows_per_message > 1 {
            return Err(Error::Config(format!(
                "format='raw' sends one value per message, not rows_per_message={}: use \
                 format='text' or 'csv' for several lines per message",
                options.rows_per_message
            )));
        }
        Ok(Self {
            options,
            schema,
            key_indices,
            timestamp_index,
            json_schema,
            value_index,
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
        let timestamps = self.timestamps_ms(batch)?;
        if let (Format::Raw, Some(value)) = (self.options.format, self.value_index) {
            return self.encode_raw_rows(batch, value, timestamps.as_deref(), sink);
        }
        let keys = self.keys(batch)?;
        if self.options.format == Format::Json
            && self.options.rows_per_message == 1
            && matches!(
                self.options.json_orient,
                JsonOrient::Records | JsonOrient::Auto
            )
        {
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
            Format::Json
            | Format::Csv
            | Format::Text
            | Format::Raw
            | Format::Avro
            | Format::JsonSchema => batch,
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
        let name = self.schema.field(i).name();
        epoch(batch.column(i).as_ref(), name, TimeUnit::Millisecond).map(Some)
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
        let payloads = Payloads::new(&self.options, batch, self.value_index)?;
        let chunk = Chunk {
            batch,
            numbers,
            payloads: &payloads,
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
        let payload = chunk
            .payloads
            .write(chunk.batch, start, len, |r| chunk.numbers.get(start + r))?;
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

    /// One message per row: the value column's bytes, keyed by the key
    /// column's bytes when there is one binary or text key column.
    fn encode_raw_rows(
        &self,
        batch: &RecordBatch,
        value: usize,
        timestamps: Option<&[Option<i64>]>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let values = cast(batch.column(value), &DataType::Binary)?;
        let values = values.as_binary::<i32>();
        let byte_keys = match self.key_indices.as_slice() {
            [k] => cast(batch.column(*k), &DataType::Binary).ok(),
            _ => None,
        };
        let text_keys = match byte_keys {
            Some(_) => None,
            None => self.keys(batch)?,
        };
        for row in 0..batch.num_rows() {
            if values.is_null(row) {
                return Err(Error::Schema(format!(
                    "row {row} of value column {:?} is null: format='raw' sends bytes, and a \
                     null (a tombstone) cannot be sent: drop or fill such rows",
                    self.schema.field(value).name()
                )));
            }
            let payload = values.value(row);
            if payload.len() > self.options.max_message_bytes {
                return Err(too_large(
                    row,
                    payload.len(),
                    self.options.max_message_bytes,
                ));
            }
            let key = match (&byte_keys, &text_keys) {
                (Some(k), _) => {
                    let k = k.as_binary::<i32>();
                    k.is_valid(row).then(|| k.value(row))
                }
                (None, Some(k)) => k.is_valid(row).then(|| k.value(row).as_bytes()),
                (None, None) => None,
            };
            sink(Message {
                payload,
                key,
                timestamp_ms: timestamps.and_then(|t| t[row]),
                rows: 1,
            })?;
        }
        Ok(())
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
    payloads: &'a Payloads<'a>,
    key: Option<&'a [u8]>,
    timestamps: Option<&'a [Option<i64>]>,
}

/// How a format writes the payload of a message from rows of a batch.
enum Payloads<'a> {
    /// One IPC stream of the rows.
    Arrow,
    /// A JSON array of row objects.
    Json(JsonRows),
    /// CSV lines, one per row.
    Csv(CsvRows<'a>),
    /// The value column as text, one line per row (a null is an empty line).
    Text(StringArray),
    /// One framed Avro record.
    Avro(Box<RowWriter>),
    /// One framed JSON object.
    JsonSchema(u32, JsonRows),
    /// One of pandas' layouts of rows.
    Pandas(JsonRows, JsonOrient),
}

impl<'a> Payloads<'a> {
    fn new(options: &EncodeOptions, batch: &'a RecordBatch, value: Option<usize>) -> Result<Self> {
        let registered = || {
            options
                .registered
                .as_ref()
                .expect("checked by Encoder::new")
        };
        Ok(match (options.format, value) {
            (Format::Arrow, _) => Payloads::Arrow,
            (Format::Json, _)
                if matches!(options.json_orient, JsonOrient::Records | JsonOrient::Auto) =>
            {
                Payloads::Json(JsonRows::new(batch)?)
            }
            (Format::Json, _) => Payloads::Pandas(JsonRows::new(batch)?, options.json_orient),
            (Format::Csv, _) => Payloads::Csv(CsvRows::new(batch, b',')?),
            (Format::Text | Format::Raw, Some(v)) => {
                let f = batch.schema_ref().field(v).clone();
                let text = cast(batch.column(v), &DataType::Utf8).map_err(|e| {
                    Error::Schema(format!(
                        "value column {:?} of type {} cannot be written as text ({e}): cast \
                         it, or send it with format='raw'",
                        f.name(),
                        f.data_type()
                    ))
                })?;
                Payloads::Text(text.as_string::<i32>().clone())
            }
            (Format::Text | Format::Raw, None) => {
                return Err(Error::Config("a text message needs a value column".into()))
            }
            (Format::Avro, _) => {
                let (id, text) = registered();
                Payloads::Avro(Box::new(RowWriter::new(*id, text, batch)?))
            }
            (Format::JsonSchema, _) => Payloads::JsonSchema(registered().0, JsonRows::new(batch)?),
        })
    }

    /// The payload of rows `start..start + len` of `batch`; `label` numbers
    /// row `start + r` in the data sent.
    fn write(
        &self,
        batch: &RecordBatch,
        start: usize,
        len: usize,
        label: impl Fn(usize) -> usize,
    ) -> Result<Vec<u8>> {
        match self {
            Payloads::Arrow => ipc_stream(&compact_views(&batch.slice(start, len))?),
            Payloads::Json(rows) => Ok(rows.array(start, len)),
            Payloads::Csv(rows) => Ok(rows.lines(start, len)),
            Payloads::Text(values) => {
                let mut out = Vec::new();
                for row in start..start + len {
                    if row > start {
                        out.push(b'\n');
                    }
                    if values.is_valid(row) {
                        out.extend_from_slice(values.value(row).as_bytes());
                    }
                }
                Ok(out)
            }
            Payloads::Avro(writer) => {
                let mut out = Vec::with_capacity(64);
                for row in start..start + len {
                    writer.write(row, &mut out)?;
                }
                Ok(out)
            }
            Payloads::JsonSchema(id, rows) => {
                let mut out = Vec::with_capacity(128);
                frame_header(*id, &mut out);
                for row in start..start + len {
                    rows.write_object(row, &mut out);
                }
                Ok(out)
            }
            Payloads::Pandas(rows, orient) => Ok(rows.pandas(*orient, start, len, label)),
        }
    }
}

fn too_large(row: usize, bytes: usize, limit: usize) -> Error {
    Error::Schema(format!(
        "row {row} alone encodes to {bytes} bytes, over the {limit} bytes a message may hold \
         (message.max.bytes less room for the key and headers): raise 'message.max.bytes' \
         (on the producer, and max.message.bytes on the topic) or drop wide columns"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{collect, sample};

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
}
