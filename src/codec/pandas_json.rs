//! JSON as pandas writes it: the orients of `DataFrame.to_dict()` /
//! `to_json()` and a Series' `{label: value}`, read into rows (one JSON
//! object per line, which the JSON decoder then types as any other rows),
//! and written from rows on send.
//!
//! Row labels: a default index (integers counting up by one, as
//! `read_csv(chunksize=)` continues it from chunk to chunk) is dropped, as
//! `pd.read_csv` gives no such column; any other index becomes a first column
//! named `index` (`level_0` if a column is named `index`), as `reset_index()`
//! names it, integer labels as integers, datetime labels read as datetimes.
//! A Series' values go in a column named `value` (or the Series' name).
//!
//! Python's `json.dumps` writes `NaN`, `Infinity` and `-Infinity` for float
//! values JSON has no token for; they are read as null, as pandas' own
//! `to_json` writes all three and as pandas means NaN: a missing value.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde_json::{Map, Value};

use super::time::looks_like_datetime;
use crate::error::{Error, Result};

/// How JSON messages are laid out: pandas' names, as in
/// `pandas.read_json(orient=...)` and `DataFrame.to_json(orient=...)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonOrient {
    /// Records, unless a message is unmistakably another shape: the default
    /// `to_dict()` shape or `to_json(orient="table")`.
    #[default]
    Auto,
    /// `{column: value}` per row, or `[{column: value}, ...]`.
    Records,
    /// `{column: {label: value}}`: `to_dict()`'s default (`dict`), `to_json()`'s.
    Columns,
    /// `{label: {column: value}}`, or a Series' `{label: value}`.
    Index,
    /// `{"columns": [...], "index": [...], "data": [[...], ...]}` (also a
    /// Series' `{"name": .., "index": [...], "data": [...]}`, and `tight`).
    Split,
    /// `[[value, ...], ...]`: columns named "0", "1", ...
    Values,
    /// `{"schema": {"fields": [...], "primaryKey": [...]}, "data": [{...}]}`.
    Table,
}

impl FromStr for JsonOrient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => JsonOrient::Auto,
            "records" => JsonOrient::Records,
            "columns" | "dict" => JsonOrient::Columns,
            "index" => JsonOrient::Index,
            "split" | "tight" => JsonOrient::Split,
            "values" => JsonOrient::Values,
            "table" => JsonOrient::Table,
            other => {
                return Err(Error::Config(format!(
                    "unknown json_orient {other:?}: use pandas' names 'records', 'columns' \
                     (to_dict()'s default), 'index', 'split', 'values' or 'table', or None \
                     to detect"
                )))
            }
        })
    }
}

impl JsonOrient {
    pub fn name(self) -> &'static str {
        match self {
            JsonOrient::Auto => "auto",
            JsonOrient::Records => "records",
            JsonOrient::Columns => "columns",
            JsonOrient::Index => "index",
            JsonOrient::Split => "split",
            JsonOrient::Values => "values",
            JsonOrient::Table => "table",
        }
    }
}

static NAN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"NaN"));
static INFINITY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"Infinity"));

/// Whether `bytes` hold `NaN` or `Infinity` anywhere (in strings too).
pub(super) fn may_hold_python_constants(bytes: &[u8]) -> bool {
    NAN.find(bytes).is_some() || INFINITY.find(bytes).is_some()
}

/// `payload` with Python's `NaN`, `Infinity` and `-Infinity` tokens (outside
/// strings) written as `null`; borrowed when it has none.
pub(super) fn python_constants_as_null(payload: &[u8]) -> Cow<'_, [u8]> {
    if !may_hold_python_constants(payload) {
        return Cow::Borrowed(payload);
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < payload.len() {
        let b = payload[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else {
            let rest = &payload[i..];
            let token = [&b"NaN"[..], b"Infinity", b"-Infinity"]
                .into_iter()
                .find(|t| rest.starts_with(t));
            if let Some(t) = token {
                out.extend_from_slice(b"null");
                i += t.len();
                continue;
            }
            in_string = b == b'"';
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

/// What [`pandas_rows`] made of a message.
#[derive(Debug, PartialEq)]
pub(super) enum Shape {
    /// A record (or records): the plain JSON path reads it.
    Records,
    /// Rows as JSON lines, and how many.
    Rows(Vec<u8>, usize),
}

/// The rows of a message laid out as `orient` says (Auto: only the shapes
/// that cannot be records); an error says what was expected and what to try.
pub(super) fn pandas_rows(
    orient: JsonOrient,
    payload: &[u8],
) -> std::result::Result<Shape, String> {
    if orient == JsonOrient::Records {
        return Ok(Shape::Records);
    }
    if orient == JsonOrient::Auto {
        match first_entry(payload) {
            Some((_, b'{')) => {}
            Some((key, _)) if looks_like_datetime_bytes(key) => {}
            _ => return Ok(Shape::Records),
        }
    }
    let payload = python_constants_as_null(payload);
    let value: Value =
        serde_json::from_slice(&payload).map_err(|e| format!("invalid JSON: {e}"))?;
    let table = match orient {
        JsonOrient::Auto => match auto_shape(&value)? {
            Some(orient) => read_orient(orient, value)?,
            None => return Ok(Shape::Records),
        },
        orient => read_orient(orient, value)?,
    };
    let mut out = Vec::new();
    let rows = table.write_lines(&mut out);
    Ok(Shape::Rows(out, rows))
}

/// The first key of a JSON object and the first byte of its value (a cheap
/// look, no parse; None if `payload` does not start so).
fn first_entry(payload: &[u8]) -> Option<(&[u8], u8)> {
    let skip = |i: usize| {
        payload
            .get(i..)?
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|n| i + n)
    };
    let i = skip(0)?;
    if payload[i] != b'{' {
        return None;
    }
    let i = skip(i + 1)?;
    if payload[i] != b'"' {
        return None;
    }
    let start = i + 1;
    let mut j = start;
    while j < payload.len() && payload[j] != b'"' {
        j += if payload[j] == b'\\' { 2 } else { 1 };
    }
    let key = payload.get(start..j)?;
    let k = skip(j + 1)?;
    if payload[k] != b':' {
        return None;
    }
    let v = skip(k + 1)?;
    Some((key, payload[v]))
}

fn looks_like_datetime_bytes(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(looks_like_datetime)
}

fn is_int_label(s: &str) -> bool {
    s.parse::<i64>().is_ok_and(|i| i.to_string() == s)
}

/// Which pandas shape an object is, where no record could look the same:
/// every value an object keyed by the same integer or datetime labels
/// (`to_dict()`), or `to_json(orient="table")`. A map of datetimes to
/// scalars (a Series' `to_dict()`) is an error: as a record, each message
/// would bring columns of its own.
fn auto_shape(value: &Value) -> std::result::Result<Option<JsonOrient>, String> {
    let Value::Object(map) = value else {
        return Ok(None);
    };
    if is_table(map) {
        return Ok(Some(JsonOrient::Table));
    }
    if !map.is_empty() && map.keys().all(|k| looks_like_datetime(k)) {
        if map.values().all(|v| !v.is_object() && !v.is_array()) {
            let (label, v) = map.iter().next().expect("not empty");
            return Err(format!(
                "the message maps datetimes to values ({{{}: {v}, ...}}), as a pandas \
                 Series' to_dict() writes: read as a record, every message would bring \
                 columns of its own. Read it with json_orient=\"index\" for (index, value) \
                 rows, or json_orient=\"records\" to take each key as a column",
                Value::from(label.as_str())
            ));
        }
        return Ok(None);
    }
    let mut labels: Option<Vec<&String>> = None;
    for v in map.values() {
        let Value::Object(inner) = v else {
            return Ok(None);
        };
        let keys: Vec<&String> = inner.keys().collect();
        match &labels {
            None => labels = Some(keys),
            Some(l) if *l == keys => {}
            Some(_) => return Ok(None),
        }
    }
    let labels = labels.unwrap_or_default();
    let pandas_labels = !labels.is_empty()
        && (labels.iter().all(|l| is_int_label(l))
            || labels.iter().all(|l| looks_like_datetime(l)));
    Ok(pandas_labels.then_some(JsonOrient::Columns))
}

fn is_table(map: &Map<String, Value>) -> bool {
    map.len() == 2
        && map.get("data").is_some_and(Value::is_array)
        && map
            .get("schema")
            .and_then(|s| s.get("fields"))
            .is_some_and(Value::is_array)
}

/// Rows read from a pandas shape, before their labels are settled.
#[derive(Default)]
struct Table {
    /// One per row, if the shape has labels.
    labels: Option<Vec<Value>>,
    rows: Vec<Vec<(String, Value)>>,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(orient: JsonOrient, shape: &str, got: &str) -> String {
    format!(
        "json_orient=\"{}\" expects {shape}, but {got}: state the orient the producer \
         wrote (pandas' names: records, columns, index, split, values, table)",
        orient.name()
    )
}

fn read_orient(orient: JsonOrient, value: Value) -> std::result::Result<Table, String> {
    const COLUMNS: &str = "{column: {label: value}}";
    const INDEX: &str = "{label: {column: value}} or a Series' {label: value}";
    const SPLIT: &str = "{\"columns\": [...], \"index\": [...], \"data\": [[...], ...]}";
    const VALUES: &str = "[[value, ...], ...]";
    const TABLE: &str = "{\"schema\": {\"fields\": [...]}, \"data\": [{...}, ...]}";
    let object = |shape: &str, v: Value| match v {
        Value::Object(map) => Ok(map),
        other => Err(expected(
            orient,
            shape,
            &format!("the message is {}", kind(&other)),
        )),
    };
    let mut table = Table::default();
    match orient {
        JsonOrient::Auto | JsonOrient::Records => {
            unreachable!("records are read by the JSON decoder")
        }
        JsonOrient::Columns => {
            let mut labels: Vec<Value> = Vec::new();
            let mut at: HashMap<String, usize> = HashMap::new();
            for (column, values) in object(COLUMNS, value)? {
                let Value::Object(values) = values else {
                    return Err(expected(
                        orient,
                        COLUMNS,
                        &format!("column {column:?} holds {}", kind(&values)),
                    ));
                };
                for (label, v) in values {
                    let row = *at.entry(label.clone()).or_insert_with(|| {
                        labels.push(Value::String(label));
                        table.rows.push(Vec::new());
                        labels.len() - 1
                    });
                    table.rows[row].push((column.clone(), v));
                }
            }
            table.labels = Some(labels);
        }
        JsonOrient::Index => {
            let map = object(INDEX, value)?;
            let series = map.values().all(|v| !v.is_object());
            let mut labels = Vec::with_capacity(map.len());
            for (label, row) in map {
                labels.push(Value::String(label.clone()));
                table.rows.push(match row {
                    Value::Object(row) => row.into_iter().collect(),
                    Value::Array(_) => {
                        return Err(expected(
                            orient,
                            INDEX,
                            &format!("label {label:?} holds an array"),
                        ))
                    }
                    v if series => vec![("value".to_owned(), v)],
                    v => {
                        return Err(expected(
                            orient,
                            INDEX,
                            &format!("label {label:?} holds {} among objects", kind(&v)),
                        ))
                    }
                });
            }
            table.labels = Some(labels);
        }
        JsonOrient::Split => {
            let mut map = object(SPLIT, value)?;
            let data = match map.remove("data") {
                Some(Value::Array(data)) => data,
                _ => return Err(expected(orient, SPLIT, "it has no \"data\" array")),
            };
            let columns: Option<Vec<String>> = match map.remove("columns") {
                Some(Value::Array(c)) => Some(c.into_iter().map(label_text).collect()),
                None => None,
                Some(_) => return Err(expected(orient, SPLIT, "\"columns\" is not an array")),
            };
            match map.remove("index") {
                Some(Value::Array(index)) if index.len() == data.len() => {
                    table.labels = Some(index)
                }
                Some(_) => {
                    return Err(expected(
                        orient,
                        SPLIT,
                        "\"index\" is not an array as long as \"data\"",
                    ))
                }
                None => {}
            }
            // A Series: "name", "index" and a flat "data".
            let series_name = match map.remove("name") {
                Some(Value::Null) | None => "value".to_owned(),
                Some(name) => label_text(name),
            };
            for (i, row) in data.into_iter().enumerate() {
                table.rows.push(match (row, &columns) {
                    (Value::Array(values), Some(columns)) => {
                        if values.len() != columns.len() {
                            return Err(expected(
                                orient,
                                SPLIT,
                                &format!(
                                    "row {i} has {} values for {} columns",
                                    values.len(),
                                    columns.len()
                                ),
                            ));
                        }
                        columns.iter().cloned().zip(values).collect()
                    }
                    (Value::Array(_), None) => {
                        return Err(expected(orient, SPLIT, "it has no \"columns\" array"))
                    }
                    (v, _) => vec![(series_name.clone(), v)],
                });
            }
        }
        JsonOrient::Values => {
            let Value::Array(rows) = value else {
                return Err(expected(
                    orient,
                    VALUES,
                    &format!("the message is {}", kind(&value)),
                ));
            };
            for row in rows {
                table.rows.push(match row {
                    Value::Array(values) => values
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (i.to_string(), v))
                        .collect(),
                    v => vec![("0".to_owned(), v)],
                });
            }
        }
        JsonOrient::Table => {
            let mut map = object(TABLE, value)?;
            let keys: Vec<String> = map
                .get("schema")
                .and_then(|s| s.get("primaryKey"))
                .and_then(Value::as_array)
                .map(|k| k.iter().cloned().map(label_text).collect())
                .unwrap_or_default();
            let Some(Value::Array(data)) = map.remove("data") else {
                return Err(expected(orient, TABLE, "it has no \"data\" array"));
            };
            let mut labels = Vec::with_capacity(data.len());
            for row in data {
                let Value::Object(row) = row else {
                    return Err(expected(orient, TABLE, &format!("a row is {}", kind(&row))));
                };
                let mut row: Vec<(String, Value)> = row.into_iter().collect();
                // pandas' default index, named "index", is the row label.
                if let [key] = keys.as_slice() {
                    if key == "index" {
                        if let Some(at) = row.iter().position(|(c, _)| c == "index") {
                            labels.push(row.remove(at).1);
                        }
                    }
                }
                table.rows.push(row);
            }
            if labels.len() == table.rows.len() && !labels.is_empty() {
                table.labels = Some(labels);
            }
        }
    }
    Ok(table)
}

/// A label or column name as text (pandas writes int names as JSON numbers).
fn label_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// An integer label: a JSON integer or a string of one.
fn int_label(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if is_int_label(s) => s.parse().ok(),
        _ => None,
    }
}

impl Table {
    /// Writes the rows as JSON lines; returns how many.
    fn write_lines(self, out: &mut Vec<u8>) -> usize {
        let labels = self.labels.filter(|labels| {
            let ints: Option<Vec<i64>> = labels.iter().map(int_label).collect();
            // A default index (0, 1, 2, ... from any start) is dropped.
            !ints.is_some_and(|ints| ints.windows(2).all(|w| w[1] == w[0] + 1))
        });
        let label_column = if self.rows.iter().flatten().any(|(c, _)| c == "index") {
            "level_0"
        } else {
            "index"
        };
        for (i, row) in self.rows.iter().enumerate() {
            out.push(b'{');
            let mut first = true;
            if let Some(labels) = &labels {
                write_key(out, label_column);
                match int_label(&labels[i]) {
                    Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                    None => serde_json::to_writer(&mut *out, &labels[i]).expect("vec write"),
                }
                first = false;
            }
            for (column, v) in row {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_key(out, column);
                serde_json::to_writer(&mut *out, v).expect("vec write");
            }
            out.extend_from_slice(b"}\n");
        }
        self.rows.len()
    }
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    serde_json::to_writer(&mut *out, key).expect("vec write");
    out.push(b':');
}

/// Rows `start..start + len` laid out as pandas' `orient` writes them, row
/// labels from `label` (the row's number in the data sent).
pub(super) fn write_orient(
    orient: JsonOrient,
    names: &[Vec<u8>],
    table_types: &[&str],
    len: usize,
    label: impl Fn(usize) -> usize,
    value: impl Fn(usize, usize, &mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(len * 32 * names.len().max(1));
    let labels: Vec<String> = (0..len).map(|r| label(r).to_string()).collect();
    match orient {
        JsonOrient::Columns => {
            out.push(b'{');
            for (c, name) in names.iter().enumerate() {
                if c > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(name);
                out.push(b'{');
                for (r, l) in labels.iter().enumerate() {
                    if r > 0 {
                        out.push(b',');
                    }
                    write_key(&mut out, l);
                    value(r, c, &mut out);
                }
                out.push(b'}');
            }
            out.push(b'}');
        }
        JsonOrient::Index => {
            out.push(b'{');
            for (r, l) in labels.iter().enumerate() {
                if r > 0 {
                    out.push(b',');
                }
                write_key(&mut out, l);
                write_object(&mut out, names, r, &value);
            }
            out.push(b'}');
        }
        JsonOrient::Split => {
            out.extend_from_slice(b"{\"columns\":[");
            for (c, name) in names.iter().enumerate() {
                if c > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&name[..name.len() - 1]);
            }
            out.extend_from_slice(b"],\"index\":[");
            out.extend_from_slice(labels.join(",").as_bytes());
            out.extend_from_slice(b"],\"data\":[");
            for r in 0..len {
                if r > 0 {
                    out.push(b',');
                }
                write_values(&mut out, names.len(), r, &value);
            }
            out.extend_from_slice(b"]}");
        }
        JsonOrient::Values => {
            out.push(b'[');
            for r in 0..len {
                if r > 0 {
                    out.push(b',');
                }
                write_values(&mut out, names.len(), r, &value);
            }
            out.push(b']');
        }
        JsonOrient::Table => {
            out.extend_from_slice(
                b"{\"schema\":{\"fields\":[{\"name\":\"index\",\"type\":\"integer\"}",
            );
            for (name, ty) in names.iter().zip(table_types) {
                out.extend_from_slice(b",{\"name\":");
                out.extend_from_slice(&name[..name.len() - 1]);
                out.extend_from_slice(b",\"type\":");
                out.extend_from_slice(ty.as_bytes());
                out.push(b'}');
            }
            out.extend_from_slice(b"],\"primaryKey\":[\"index\"]},\"data\":[");
            for (r, l) in labels.iter().enumerate() {
                if r > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"index\":");
                out.extend_from_slice(l.as_bytes());
                for (c, name) in names.iter().enumerate() {
                    out.push(b',');
                    out.extend_from_slice(name);
                    value(r, c, &mut out);
                }
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
        }
        JsonOrient::Auto | JsonOrient::Records => {
            out.push(b'[');
            for r in 0..len {
                if r > 0 {
                    out.push(b',');
                }
                write_object(&mut out, names, r, &value);
            }
            out.push(b']');
        }
    }
    out
}

/// `{"name":value,...}` of row `r`; `names` hold `"name":`.
fn write_object(
    out: &mut Vec<u8>,
    names: &[Vec<u8>],
    r: usize,
    value: &impl Fn(usize, usize, &mut Vec<u8>),
) {
    out.push(b'{');
    for (c, name) in names.iter().enumerate() {
        if c > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name);
        value(r, c, out);
    }
    out.push(b'}');
}

fn write_values(
    out: &mut Vec<u8>,
    columns: usize,
    r: usize,
    value: &impl Fn(usize, usize, &mut Vec<u8>),
) {
    out.push(b'[');
    for c in 0..columns {
        if c > 0 {
            out.push(b',');
        }
        value(r, c, out);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_array::{Array, RecordBatch};
    use arrow_schema::{DataType, TimeUnit};

    use super::*;
    use crate::codec::test_support::{collect, msg, round_trip_sample};
    use crate::codec::time::with_zone;
    use crate::codec::{EncodeOptions, Format, FormatHint, FrameBuilder};

    /// Reads `messages` with `orient`; the frame and the refused messages' errors.
    fn read(orient: JsonOrient, messages: &[&[u8]]) -> (Option<RecordBatch>, Vec<String>) {
        let mut b = FrameBuilder::new(FormatHint::Auto, false, None);
        b.json_orient = orient;
        for (i, m) in messages.iter().enumerate() {
            b.push(msg(m, i as i64, None));
        }
        let frame = b.take_frame().unwrap().map(|f| f.concat().unwrap());
        (frame, b.take_bad().into_iter().map(|m| m.error).collect())
    }

    fn names(batch: &RecordBatch) -> Vec<String> {
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[test]
    fn python_constants_read_as_null_outside_strings() {
        let text = br#"{"a": NaN, "b": [Infinity, -Infinity], "s": "NaN \" Infinity"}"#;
        assert_eq!(
            python_constants_as_null(text).as_ref(),
            br#"{"a": null, "b": [null, null], "s": "NaN \" Infinity"}"#
        );
        assert!(matches!(
            python_constants_as_null(br#"{"a": 1}"#),
            Cow::Borrowed(_)
        ));
        let (out, bad) = read(
            JsonOrient::Auto,
            &[br#"{"x": NaN, "y": 1.5}"#, br#"{"x": 2.0, "y": -Infinity}"#],
        );
        assert!(bad.is_empty(), "{bad:?}");
        let out = out.unwrap();
        assert_eq!(out.column(0).null_count(), 1);
        assert_eq!(out.column(1).as_primitive::<Float64Type>().value(0), 1.5);
        assert!(out.column(1).is_null(1));
    }

    #[test]
    fn to_dict_chunks_are_detected_and_the_default_index_dropped() {
        // json.dumps(chunk.to_dict(), default=str) of read_csv(chunksize=2).
        let chunks: [&[u8]; 2] = [
            br#"{"Invoice": {"0": "489434", "1": "C489434"}, "Qty": {"0": 6, "1": -2},
                "Customer ID": {"0": NaN, "1": 13085.0},
                "InvoiceDate": {"0": "2009-12-01 07:45:00", "1": "2009-12-01 07:46:00"}}"#,
            br#"{"Invoice": {"2": "489435", "3": "489435"}, "Qty": {"2": 1, "3": 12},
                "Customer ID": {"2": 13085.0, "3": NaN},
                "InvoiceDate": {"2": "2009-12-01 07:47:00", "3": "2009-12-01 07:48:00"}}"#,
        ];
        let (out, bad) = read(JsonOrient::Auto, &chunks);
        assert!(bad.is_empty(), "{bad:?}");
        let out = out.unwrap();
        assert_eq!(
            names(&out),
            ["Invoice", "Qty", "Customer ID", "InvoiceDate"]
        );
        assert_eq!(out.num_rows(), 4);
        assert_eq!(
            out.column(1).as_primitive::<Int64Type>().values(),
            &[6, -2, 1, 12]
        );
        assert_eq!(out.column(2).null_count(), 2);
        assert_eq!(
            out.schema().field(3).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        // Stated, the same.
        let (stated, _) = read(JsonOrient::Columns, &chunks);
        assert_eq!(stated.unwrap(), out);
    }

    #[test]
    fn nested_records_are_not_mistaken_for_columns() {
        // Objects keyed alike, but by names rather than row labels.
        let (out, bad) = read(
            JsonOrient::Auto,
            &[br#"{"before": {"id": 1, "x": 2}, "after": {"id": 1, "x": 3}}"#],
        );
        assert!(bad.is_empty());
        let out = out.unwrap();
        assert_eq!(out.num_rows(), 1);
        assert!(matches!(
            out.schema().field(0).data_type(),
            DataType::Struct(_)
        ));
    }

    #[test]
    fn other_row_labels_become_an_index_column() {
        let (out, _) = read(
            JsonOrient::Columns,
            &[br#"{"v": {"5": 1.5, "9": 2.5}, "index": {"5": "a", "9": "b"}}"#],
        );
        let out = out.unwrap();
        assert_eq!(names(&out), ["level_0", "v", "index"]);
        assert_eq!(out.column(0).as_primitive::<Int64Type>().values(), &[5, 9]);
        let (out, _) = read(
            JsonOrient::Index,
            &[br#"{"2021-01-01 00:00:04": {"t": 1}, "2021-01-01 00:00:05": {"t": 2}}"#],
        );
        let out = out.unwrap();
        assert_eq!(names(&out), ["index", "t"]);
        assert_eq!(
            out.column(0)
                .as_primitive::<TimestampMicrosecondType>()
                .value(1),
            1_609_459_205_000_000
        );
    }

    #[test]
    fn a_series_map_per_message_is_refused_unless_stated() {
        let messages: Vec<String> = (0..9)
            .map(|i| format!(r#"{{"2021-01-01 00:00:0{i}": {}.5}}"#, 60 + i))
            .collect();
        let messages: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
        let (out, bad) = read(JsonOrient::Auto, &messages);
        assert!(out.is_none());
        assert_eq!(bad.len(), 9);
        assert!(bad[0].contains(r#"json_orient="index""#), "{}", bad[0]);
        let (out, bad) = read(JsonOrient::Index, &messages);
        assert!(bad.is_empty());
        let out = out.unwrap();
        assert_eq!(names(&out), ["index", "value"]);
        assert_eq!(out.num_rows(), 9);
        assert!(matches!(
            out.schema().field(0).data_type(),
            DataType::Timestamp(_, None)
        ));
        assert_eq!(out.column(1).as_primitive::<Float64Type>().value(8), 68.5);
        // Stated records: a column per key, as asked.
        let (out, bad) = read(JsonOrient::Records, &messages);
        assert!(bad.is_empty());
        assert_eq!(out.unwrap().num_columns(), 9);
    }

    #[test]
    fn maps_with_new_keys_in_every_message_are_refused() {
        let messages: Vec<String> = (0..10)
            .map(|i| format!(r#"{{"sensor{i}": {i}}}"#))
            .collect();
        let messages: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
        let (out, bad) = read(JsonOrient::Auto, &messages);
        assert!(out.is_none());
        assert_eq!(bad.len(), 10);
        assert!(bad[0].contains("column per message"), "{}", bad[0]);
        // Sparse records that settle are not such a stream.
        let mut sparse = messages[..3].to_vec();
        sparse.extend(std::iter::repeat_n(&br#"{"sensor0": 1}"#[..], 10));
        let (out, bad) = read(JsonOrient::Auto, &sparse);
        assert!(bad.is_empty());
        assert_eq!(out.unwrap().num_rows(), 13);
    }

    #[test]
    fn split_values_and_table_read_into_rows() {
        let (out, bad) = read(
            JsonOrient::Split,
            &[
                br#"{"columns": ["a", "b"], "index": [0, 1], "data": [[1, "x"], [2, null]]}"#,
                br#"{"name": "temp", "index": ["2021-01-01 00:00:04"], "data": [60.0]}"#,
            ],
        );
        assert!(bad.is_empty(), "{bad:?}");
        let out = out.unwrap();
        assert_eq!(names(&out), ["a", "b", "index", "temp"]);
        assert_eq!(out.num_rows(), 3);
        let (out, _) = read(JsonOrient::Values, &[br#"[[1, "x"], [2, "y"]]"#]);
        assert_eq!(names(&out.unwrap()), ["0", "1"]);
        let table = br#"{"schema": {"fields": [{"name": "index", "type": "integer"},
            {"name": "a", "type": "integer"}], "primaryKey": ["index"], "pandas_version": "1.4.0"},
            "data": [{"index": 0, "a": 1}, {"index": 1, "a": 2}]}"#;
        let (auto, _) = read(JsonOrient::Auto, &[table]);
        let (stated, _) = read(JsonOrient::Table, &[table]);
        assert_eq!(auto.clone().unwrap(), stated.unwrap());
        assert_eq!(names(&auto.unwrap()), ["a"]);
    }

    #[test]
    fn a_message_of_another_shape_names_the_orient_expected() {
        let (_, bad) = read(
            JsonOrient::Split,
            &[br#"{"columns": ["a"], "data": [[1, 2]]}"#, br#"[1]"#],
        );
        assert_eq!(bad.len(), 2);
        assert!(bad[0].contains(r#"json_orient="split""#), "{}", bad[0]);
        assert!(
            bad[0].contains("row 0 has 2 values for 1 columns"),
            "{}",
            bad[0]
        );
        assert!(bad[1].contains("the message is an array"), "{}", bad[1]);
        let (_, bad) = read(JsonOrient::Columns, &[br#"{"a": 1}"#]);
        assert!(
            bad[0].contains(r#"column "a" holds a number"#),
            "{}",
            bad[0]
        );
    }

    #[test]
    fn every_orient_round_trips_through_the_encoder() {
        let batch = round_trip_sample();
        for orient in [
            JsonOrient::Records,
            JsonOrient::Columns,
            JsonOrient::Index,
            JsonOrient::Split,
            JsonOrient::Values,
            JsonOrient::Table,
        ] {
            let msgs = collect(
                &batch,
                EncodeOptions {
                    format: Format::Json,
                    rows_per_message: 2,
                    json_orient: orient,
                    ..Default::default()
                },
            );
            assert_eq!(msgs.len(), 2);
            let payloads: Vec<&[u8]> = msgs.iter().map(|m| m.payload.as_slice()).collect();
            let (out, bad) = read(orient, &payloads);
            assert!(bad.is_empty(), "{orient:?}: {bad:?}");
            let out = out.unwrap();
            assert_eq!(out.num_rows(), 3, "{orient:?}");
            for (i, (a, e)) in out.columns().iter().zip(batch.columns()).enumerate() {
                let e = if i == 3 {
                    with_zone(e, "UTC")
                } else {
                    e.clone()
                };
                assert_eq!(a.as_ref(), e.as_ref(), "{orient:?} column {i}");
            }
            if orient != JsonOrient::Values {
                assert_eq!(names(&out), ["code", "qty", "price", "at"], "{orient:?}");
            }
        }
    }

    #[test]
    fn orient_names_are_pandas_names() {
        for (name, orient) in [
            ("records", JsonOrient::Records),
            ("dict", JsonOrient::Columns),
            ("columns", JsonOrient::Columns),
            ("index", JsonOrient::Index),
            ("split", JsonOrient::Split),
            ("values", JsonOrient::Values),
            ("table", JsonOrient::Table),
        ] {
            assert_eq!(name.parse::<JsonOrient>().unwrap(), orient);
        }
        let err = "series".parse::<JsonOrient>().unwrap_err().to_string();
        assert!(err.contains("'records', 'columns'"), "{err}");
    }
}
