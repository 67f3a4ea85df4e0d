//! JSON: one object per message or an array of objects, read by arrow's
//! JSON decoder (types from the `tskafka.schema` header, the consumer's
//! `json_schema`, or inferred); written as rows by [`JsonRows`].

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, RecordBatch,
    RecordBatchOptions, StringArray, StringViewArray, UInt64Array,
};
use arrow_cast::cast;
use arrow_json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::frame::{guarded, BadMessage, Decoded, FrameBuilder, MessageRef, Meta};
use super::pandas_json::{
    may_hold_python_constants, pandas_rows, python_constants_as_null, write_orient, JsonOrient,
    Shape,
};
use super::text::batch_with_string_views;
use super::time::{detect_datetimes, with_zone, write_date, write_timestamp};
use crate::error::{Error, Result};

/// Header that carries the column types of a JSON message, so tskafka
/// consumers get back exactly the dtypes that were sent.
pub const SCHEMA_HEADER: &str = "tskafka.schema";

/// Consecutive JSON messages that share a schema header.
pub(super) struct JsonRun {
    header: Option<Vec<u8>>,
    lines: Vec<u8>,
    /// (start, end) of each message's bytes in `lines`, with its metadata.
    spans: Vec<(usize, usize, Meta)>,
}

impl FrameBuilder {
    pub(super) fn push_json(&mut self, m: &MessageRef<'_>, payload: &[u8], first: Option<u8>) {
        // Compared in place: a run copies its header once, not per message.
        let header = m.schema_header;
        if self
            .json
            .as_ref()
            .is_some_and(|r| r.header.as_deref() != header)
        {
            self.flush_json();
        }
        // Python's NaN and Infinity tokens are read as null: in the run, on
        // the decoding thread (pandas' shapes see them replaced already).
        // A schema header means tskafka wrote records.
        let orient = match header {
            Some(_) => JsonOrient::Records,
            None => self.json_orient,
        };
        let pandas = match orient {
            JsonOrient::Auto | JsonOrient::Records if !matches!(first, Some(b'{') | Some(b'[')) => {
                let error =
                    json_shape_error(&python_constants_as_null(payload)).unwrap_or_else(|| {
                        "not a JSON object: tskafka reads one JSON object per message, \
                     or an array of objects (pandas' shapes with json_orient=...)"
                            .to_owned()
                    });
                self.reject(m, error);
                return;
            }
            JsonOrient::Records => Shape::Records,
            orient => match guarded(|| pandas_rows(orient, payload)) {
                Ok(shape) => shape,
                Err(e) => {
                    self.reject(m, e);
                    return;
                }
            },
        };
        let run = self.json.get_or_insert_with(|| JsonRun {
            header: header.map(<[u8]>::to_vec),
            lines: Vec::with_capacity(RUN_BYTES),
            spans: Vec::new(),
        });
        let start = run.lines.len();
        let rows = match pandas {
            Shape::Rows(lines, rows) => {
                run.lines.extend_from_slice(&lines);
                rows
            }
            Shape::Records if first == Some(b'[') => {
                // A JSON array of records: one row each.
                match array_to_lines(payload, &mut run.lines) {
                    Ok(rows) => rows,
                    Err(e) => {
                        run.lines.truncate(start);
                        self.reject(m, e);
                        return;
                    }
                }
            }
            Shape::Records => {
                run.lines.extend_from_slice(payload);
                run.lines.push(b'\n');
                1
            }
        };
        if rows == 0 {
            return; // an empty array: no rows
        }
        let end = run.lines.len();
        let meta = self.meta(m, rows);
        let run = self.json.as_mut().expect("made above");
        run.spans.push((start, end, meta));
        self.rows += rows;
        if run.lines.len() >= RUN_BYTES {
            // Decoded in pieces, on a worker thread while the next messages arrive.
            let run = self.json.take().expect("held above");
            let cx = self.json_context();
            self.decode_aside(move || {
                let decoded = decode_run(run, &cx);
                Box::new(move |b: &mut FrameBuilder| b.add_decoded(decoded))
            });
        }
    }

    pub(super) fn flush_json(&mut self) {
        let Some(run) = self.json.take() else { return };
        let decoded = decode_run(run, &self.json_context());
        self.add_decoded(decoded);
    }

    /// What decoding a run needs of the builder.
    fn json_context(&self) -> JsonContext {
        JsonContext {
            json_schema: self.json_schema.clone(),
            projection: self.projection.clone(),
            orient: self.json_orient,
            string_views: self.string_views,
        }
    }
}

/// What decoding a JSON run needs of the builder: its run can then be
/// decoded on another thread.
struct JsonContext {
    json_schema: Option<SchemaRef>,
    /// The data columns wanted (None: all).
    projection: Option<HashSet<String>>,
    orient: JsonOrient,
    string_views: bool,
}

/// The run with Python's `NaN` and `Infinity` tokens as null, message by message.
fn python_constants_in_run_as_null(run: JsonRun) -> JsonRun {
    let mut lines = Vec::with_capacity(run.lines.len() + 64);
    let spans = run
        .spans
        .into_iter()
        .map(|(start, end, meta)| {
            let from = lines.len();
            lines.extend_from_slice(&python_constants_as_null(&run.lines[start..end]));
            (from, lines.len(), meta)
        })
        .collect();
    JsonRun {
        header: run.header,
        lines,
        spans,
    }
}

/// `schema` without the columns the projection leaves out.
fn projected(schema: &SchemaRef, projection: Option<&HashSet<String>>) -> SchemaRef {
    match projection {
        Some(p) if schema.fields().iter().any(|f| !p.contains(f.name())) => {
            let fields = schema.fields().iter().filter(|f| p.contains(f.name()));
            Arc::new(Schema::new(fields.cloned().collect::<Vec<_>>()))
        }
        _ => schema.clone(),
    }
}

/// The schema of a run's rows: from its header, else the consumer's
/// `json_schema`, else inferred from the first `sample` rows (all if None).
/// The flag tells how: `Some(complete)` if inferred, None if given.
fn run_schema(
    run: &JsonRun,
    json_schema: Option<&SchemaRef>,
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
    if let Some(schema) = json_schema {
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

/// A run's rows as one part, or, if some messages cannot be decoded, the
/// parts of the others and the refused ones.
fn decode_run(run: JsonRun, cx: &JsonContext) -> Vec<Decoded> {
    let mut out = Vec::new();
    decode_run_into(run, cx, &mut out);
    out
}

fn decode_run_into(mut run: JsonRun, cx: &JsonContext, out: &mut Vec<Decoded>) {
    if run.spans.is_empty() {
        return; // only empty arrays or refused messages
    }
    if may_hold_python_constants(&run.lines) {
        run = python_constants_in_run_as_null(run);
    }
    let refuse = |meta: Meta, error: String, payload: &[u8]| Decoded::Bad {
        rows: meta.rows,
        bad: BadMessage {
            topic: meta.topic.to_string(),
            partition: meta.partition,
            offset: meta.offset,
            error,
            payload: payload.to_vec(),
        },
    };
    if cx.orient == JsonOrient::Auto && run.header.is_none() && cx.json_schema.is_none() {
        if let Some(error) = columns_per_row(&run.lines) {
            for (start, end, meta) in run.spans {
                let payload = &run.lines[start..end.saturating_sub(1).max(start)];
                out.push(refuse(meta, error.clone(), payload));
            }
            return;
        }
    }
    let decoded = guarded(|| {
        let rows = run.spans.iter().map(|(_, _, m)| m.rows).sum::<usize>();
        // Types inferred from a sample of the rows are checked strictly
        // (a row with another type or another column fails), and on a
        // failure inferred again from every row.
        // With a projection the columns not wanted are skipped (so not
        // checked strictly); a wanted one the sample lacks is inferred again.
        let given = cx.json_schema.as_ref();
        let projected = |schema: &SchemaRef| projected(schema, cx.projection.as_ref());
        match run_schema(&run, given, Some(INFER_SAMPLE_ROWS))? {
            (schema, None) => decode_json(&projected(&schema), &run.lines, rows, false),
            (schema, Some(complete)) => {
                let strict = !complete && cx.projection.is_none();
                let decoded = match cx.projection.as_ref() {
                    Some(p) if !complete && p.iter().any(|c| schema.index_of(c).is_err()) => {
                        Err(String::new())
                    }
                    _ => decode_json(&projected(&schema), &run.lines, rows, strict),
                };
                let batch = match decoded {
                    Err(_) if !complete => {
                        let (schema, _) = run_schema(&run, given, None)?;
                        decode_json(&projected(&schema), &run.lines, rows, false)?
                    }
                    other => other?,
                };
                Ok(detect_datetimes(batch))
            }
        }
    });
    match decoded {
        Ok(batch) => {
            let viewed = cx
                .string_views
                .then(|| batch_with_string_views(&batch))
                .flatten();
            let metas = run.spans.into_iter().map(|(_, _, m)| m).collect();
            out.push(Decoded::Part {
                batch,
                viewed,
                metas,
            });
        }
        Err(_) if run.spans.len() > 1 => {
            // Find the bad messages one by one; the good ones go on.
            for (start, end, meta) in run.spans {
                let one = JsonRun {
                    header: run.header.clone(),
                    lines: run.lines[start..end].to_vec(),
                    spans: vec![(0, end - start, meta)],
                };
                decode_run_into(one, cx, out);
            }
        }
        Err(error) => {
            let (_, _, meta) = run.spans.into_iter().next().expect("one span");
            let payload = run.lines.strip_suffix(b"\n").unwrap_or(&run.lines);
            out.push(refuse(meta, format!("invalid JSON row: {error}"), payload));
        }
    }
}

/// Rows looked at for columns that change with every row.
const NEW_COLUMNS_SAMPLE: usize = 64;
/// Rows that each bringing new columns makes a stream of maps, not records.
const NEW_COLUMNS_ROWS: usize = 8;

/// An error if every row of `lines` (of the first few) brings column names
/// the rows before it lacked: maps such as a Series' `to_dict()`, which as
/// records would become a column per message.
fn columns_per_row(lines: &[u8]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let mut rows = 0;
    let mut first_new = Vec::new();
    for value in serde_json::Deserializer::from_slice(lines)
        .into_iter::<serde_json::Value>()
        .take(NEW_COLUMNS_SAMPLE)
    {
        let Ok(serde_json::Value::Object(map)) = value else {
            return None;
        };
        let mut new = None;
        for k in map.keys() {
            if seen.insert(k.clone()) && new.is_none() {
                new = Some(k.clone());
            }
        }
        match new {
            Some(k) => first_new.push(k),
            None if rows > 0 => return None,
            None => {}
        }
        rows += 1;
    }
    (rows >= NEW_COLUMNS_ROWS).then(|| {
        format!(
            "each of {rows} JSON messages brings column names the others lack ({:?}, {:?}, \
             {:?}, ...): read as records, they would make a column per message. A pandas \
             Series' to_dict() ({{label: value}}) per message reads as (index, value) rows \
             with json_orient=\"index\"; json_orient=\"records\" unions the columns anyway",
            first_new[0], first_new[1], first_new[2]
        )
    })
}

/// Bytes of JSON rows decoded at once.
const RUN_BYTES: usize = 4 << 20;

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
        // A column that is text in some rows and numbers in others (pandas'
        // chunks each typed on their own) is text: the numbers as written.
        .with_coerce_primitive(true)
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
    // Rows without columns when the projection leaves none.
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options).map_err(|e| e.to_string())
}

const NOT_OBJECTS: &str = "a JSON array element is not an object: tskafka reads one JSON \
     object per message, or an array of objects (one per row)";

/// Why a payload that is JSON but neither an object nor an array of
/// objects cannot be read (None if it is not such JSON).
pub(super) fn json_shape_error(payload: &[u8]) -> Option<String> {
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

// Writing: rows of a batch as JSON objects.

pub const JSON_TYPES: &str = "bool, int8-64, uint8-64, float16/32/64, string (utf8, large, view), \
     date32/64, timestamp (any unit, with or without zone), dictionary/categorical of strings, null";

pub(super) fn json_type_supported(dt: &DataType) -> bool {
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

/// Writes rows of a batch as JSON objects.
pub(super) struct JsonRows(Vec<JsonColumn>);

impl JsonRows {
    pub(super) fn new(batch: &RecordBatch) -> Result<Self> {
        batch
            .columns()
            .iter()
            .zip(batch.schema().fields())
            .map(|(col, field)| JsonColumn::new(field, col))
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    pub(super) fn write_object(&self, row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            w.write(row, out);
        }
        out.push(b'}');
    }

    /// Rows `start..start + len` as pandas' `orient` lays them out, labelled
    /// by `label` (the row's number in the data sent).
    pub(super) fn pandas(
        &self,
        orient: JsonOrient,
        start: usize,
        len: usize,
        label: impl Fn(usize) -> usize,
    ) -> Vec<u8> {
        let names: Vec<Vec<u8>> = self.0.iter().map(|c| c.name.clone()).collect();
        let types: Vec<&str> = self.0.iter().map(JsonColumn::table_type).collect();
        write_orient(orient, &names, &types, len, label, |r, c, out| {
            self.0[c].write_value(start + r, out)
        })
    }

    /// `[{...},{...}]`: what `json.loads` turns into a list of records.
    pub(super) fn array(&self, start: usize, len: usize) -> Vec<u8> {
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
        self.write_value(row, out);
    }

    /// The type of pandas' table schema (`to_json(orient="table")`), as JSON.
    fn table_type(&self) -> &'static str {
        match &self.values {
            JsonValues::Null => "\"string\"",
            JsonValues::Bool(_) => "\"boolean\"",
            JsonValues::Int(_) | JsonValues::UInt(_) => "\"integer\"",
            JsonValues::Float(_) => "\"number\"",
            JsonValues::Utf8(_) | JsonValues::LargeUtf8(_) | JsonValues::View(_) => "\"string\"",
            JsonValues::Date(_) => "\"datetime\"",
            // Written in UTC, with a Z.
            JsonValues::Timestamp(..) => "\"datetime\",\"tz\":\"UTC\"",
        }
    }

    fn write_value(&self, row: usize, out: &mut Vec<u8>) {
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
            JsonValues::Date(a) if a.is_valid(row) => write_date(out, a.value(row)),
            JsonValues::Timestamp(a, unit) if a.is_valid(row) => {
                write_timestamp(out, a.value(row), *unit)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::{collect, encode_with, msg, round_trip_sample, sample};
    use crate::codec::{EncodeOptions, Format, FormatHint};

    #[test]
    fn plain_json_reads_back_inferred_types() {
        let batch = round_trip_sample();
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
    fn runs_decoded_behind_keep_their_order_and_their_bad_messages() {
        // Enough rows for several full runs, each decoded on a worker thread.
        let n = 3 * RUN_BYTES / 60;
        let bad_at = n / 2;
        let payloads: Vec<Vec<u8>> = (0..n)
            .map(|i| match i {
                _ if i == bad_at => b"{\"i\": 1, oops}".to_vec(),
                _ if i == bad_at + 1 => format!("{{\"i\": {i}, \"x\": NaN}}").into_bytes(),
                _ => format!("{{\"i\": {i}, \"x\": 0.5, \"pad\": \"................\"}}")
                    .into_bytes(),
            })
            .collect();
        let mut b = FrameBuilder::new(FormatHint::Auto, true, None);
        b.string_views = true;
        let mut decoded_behind = 0;
        for (i, p) in payloads.iter().enumerate() {
            b.push(msg(p, i as i64, None));
            decoded_behind += usize::from(b.is_decoding_aside());
        }
        assert!(decoded_behind > 0);
        let frame = b.take_frame().unwrap().unwrap().concat().unwrap();
        let bad = b.take_bad();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].offset, bad_at as i64);
        assert_eq!(frame.num_rows(), n - 1);
        let offsets = frame.column_by_name("kafka_offset").unwrap();
        let offsets = offsets.as_primitive::<Int64Type>();
        let expected: Vec<i64> = (0..n as i64).filter(|&i| i != bad_at as i64).collect();
        assert_eq!(offsets.values().to_vec(), expected);
        let i = frame
            .column_by_name("i")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(i.values().to_vec(), expected);
        let x = frame.column_by_name("x").unwrap();
        assert!(x.is_null(bad_at)); // the NaN of the message after the bad one
        assert_eq!(
            frame.column_by_name("pad").unwrap().data_type(),
            &DataType::Utf8View
        );
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
