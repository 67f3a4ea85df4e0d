//! Avro in Confluent's framing, read into Arrow and written from it.
//!
//! - Types: a schema parsed (and checked) by the one Avro schema parser,
//!   `registry::avro`, becomes an [`AvroType`]: its tree with named types
//!   inlined and logical types applied.
//! - Reading: a [`Decoder`] per schema id appends each record straight into
//!   column builders of its own; a record that fails (truncated, a bad union
//!   branch, invalid UTF-8, bytes left over) is rolled back, so one poison
//!   message never spoils the rows around it. Consecutive messages of one id
//!   are gathered and decoded in runs, full runs on a worker thread while
//!   the next messages arrive; each run becomes one part of the frame.
//! - Writing: an Avro schema derived from the frame's Arrow schema
//!   ([`avro_schema_for`]), or one given, and a [`RowWriter`] that writes
//!   one record per row.
//!
//! Why not arrow-avro: its streaming decoder keeps partial rows when a
//! record fails (no per-message rollback for `on_error='skip'`), and it adds
//! serde derive, strum and rand to the build; the decoder here is the
//! registry's parser plus a few hundred lines.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::builder::BooleanBufferBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, DictionaryArray,
    FixedSizeBinaryArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray, MapArray,
    NullArray, PrimitiveArray, RecordBatch, RecordBatchOptions, StringArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_cast::cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_json::{json, Map, Value};

use super::confluent::{frame_header, unframe, RegisteredSchema, SchemaType, HEADER_LEN};
use super::frame::{emptied, guarded, BadMessage, FrameBuilder, MessageRef, Meta, Settle};
use super::text::batch_with_string_views;
use crate::error::{Error, Result};
use crate::registry::avro::{self as avro_schema, Kind, Logical, Named, Schema as Node};

/// The field attribute that keeps a column's name when Avro forbids it.
pub const ARROW_NAME: &str = "arrow.name";

// ---------------------------------------------------------------- types

/// An Avro type as it maps to Arrow.
#[derive(Clone, Debug, PartialEq)]
pub enum AvroType {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Date,
    TimeMillis,
    TimeMicros,
    /// `utc`: timestamp-* (an instant, read as UTC); else local-timestamp-*.
    TimestampMillis {
        utc: bool,
    },
    TimestampMicros {
        utc: bool,
    },
    TimestampNanos {
        utc: bool,
    },
    Decimal {
        precision: u8,
        scale: i8,
        fixed: Option<usize>,
    },
    Fixed(usize),
    Enum(Arc<[String]>),
    Array(Box<AvroType>),
    Map(Box<AvroType>),
    Record(Vec<AvroField>),
    Union(Vec<AvroType>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct AvroField {
    /// The Avro name.
    pub name: String,
    /// The column's name (the Avro name unless the schema says otherwise).
    pub column: String,
    pub ty: AvroType,
    pub default: Option<Value>,
}

impl AvroType {
    /// Parses a schema (and the schemas it references).
    pub fn parse(text: &str, references: &[String]) -> std::result::Result<Self, String> {
        let parsed = avro_schema::parse(text, references)?;
        from_schema(&parsed.root, &parsed.names, &mut HashSet::new())
    }

    /// `["null", T]` (either order): T and where null is.
    fn nullable(&self) -> Option<(u8, &AvroType)> {
        match self {
            AvroType::Union(b) if b.len() == 2 => match (&b[0], &b[1]) {
                (AvroType::Null, t) if *t != AvroType::Null => Some((0, t)),
                (t, AvroType::Null) if *t != AvroType::Null => Some((1, t)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The Arrow type of its values.
    pub fn arrow_type(&self) -> std::result::Result<DataType, String> {
        let utc = |u: bool| u.then(|| Arc::from("UTC"));
        Ok(match self {
            AvroType::Null => DataType::Null,
            AvroType::Boolean => DataType::Boolean,
            AvroType::Int => DataType::Int32,
            AvroType::Long => DataType::Int64,
            AvroType::Float => DataType::Float32,
            AvroType::Double => DataType::Float64,
            AvroType::Bytes => DataType::Binary,
            AvroType::String => DataType::Utf8,
            AvroType::Date => DataType::Date32,
            AvroType::TimeMillis => DataType::Time32(TimeUnit::Millisecond),
            AvroType::TimeMicros => DataType::Time64(TimeUnit::Microsecond),
            AvroType::TimestampMillis { utc: u } => {
                DataType::Timestamp(TimeUnit::Millisecond, utc(*u))
            }
            AvroType::TimestampMicros { utc: u } => {
                DataType::Timestamp(TimeUnit::Microsecond, utc(*u))
            }
            AvroType::TimestampNanos { utc: u } => {
                DataType::Timestamp(TimeUnit::Nanosecond, utc(*u))
            }
            AvroType::Decimal {
                precision, scale, ..
            } => DataType::Decimal128(*precision, *scale),
            AvroType::Fixed(0) => {
                return Err("a fixed type of size 0 has no Arrow column type".into())
            }
            AvroType::Fixed(n) => DataType::FixedSizeBinary(*n as i32),
            AvroType::Enum(_) => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            AvroType::Array(items) => DataType::List(Arc::new(items.arrow_field("item")?)),
            AvroType::Map(values) => DataType::Map(
                Arc::new(Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", DataType::Utf8, false),
                        values.arrow_field("value")?,
                    ])),
                    false,
                )),
                false,
            ),
            AvroType::Record(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|f| f.ty.arrow_field(&f.column))
                    .collect::<std::result::Result<Vec<_>, _>>()?
                    .into(),
            ),
            AvroType::Union(_) => match self.nullable() {
                Some((_, t)) => t.arrow_type()?,
                None => {
                    return Err(format!(
                        "a union of several types ({}) has no Arrow column type tskafka reads; \
                         only [\"null\", T] is read",
                        describe(self)
                    ))
                }
            },
        })
    }

    fn arrow_field(&self, name: &str) -> std::result::Result<Field, String> {
        let nullable = matches!(self, AvroType::Null) || self.nullable().is_some();
        Ok(Field::new(name, self.arrow_type()?, nullable))
    }

    /// The columns of records of this type: a record's fields, else one
    /// column `value`.
    pub fn arrow_schema(&self) -> std::result::Result<SchemaRef, String> {
        let fields = match self {
            AvroType::Record(fields) => fields
                .iter()
                .map(|f| f.ty.arrow_field(&f.column))
                .collect::<std::result::Result<Vec<_>, _>>()?,
            other => vec![other.arrow_field("value")?],
        };
        Ok(Arc::new(Schema::new(fields)))
    }
}

fn describe(t: &AvroType) -> String {
    match t {
        AvroType::Union(b) => b.iter().map(describe).collect::<Vec<_>>().join(", "),
        AvroType::Record(_) => "record".into(),
        AvroType::Enum(_) => "enum".into(),
        AvroType::Array(_) => "array".into(),
        AvroType::Map(_) => "map".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A parsed schema as an [`AvroType`]: named types inlined (a record that
/// holds itself has no columns), logical types applied.
fn from_schema(
    schema: &Node,
    names: &HashMap<String, Named>,
    open: &mut HashSet<String>,
) -> std::result::Result<AvroType, String> {
    Ok(match schema {
        Node::Null => AvroType::Null,
        Node::Boolean => AvroType::Boolean,
        Node::Int => AvroType::Int,
        Node::Long => AvroType::Long,
        Node::Float => AvroType::Float,
        Node::Double => AvroType::Double,
        Node::Bytes => AvroType::Bytes,
        Node::String => AvroType::String,
        Node::Array(items) => AvroType::Array(Box::new(from_schema(items, names, open)?)),
        Node::Map(values) => AvroType::Map(Box::new(from_schema(values, names, open)?)),
        Node::Union(branches) => AvroType::Union(
            branches
                .iter()
                .map(|b| from_schema(b, names, open))
                .collect::<std::result::Result<_, _>>()?,
        ),
        Node::Logical(base, logical) => with_logical(from_schema(base, names, open)?, logical),
        Node::Named(name) => {
            if open.contains(name) {
                return Err(format!(
                    "the recursive type {name:?} cannot be read into columns"
                ));
            }
            let named = names
                .get(name)
                .ok_or_else(|| format!("unknown type {name:?}"))?;
            match &named.kind {
                Kind::Record(fields) => {
                    open.insert(name.clone());
                    let mut columns = Vec::with_capacity(fields.len());
                    for f in fields {
                        let column = f.attributes.get(ARROW_NAME).and_then(Value::as_str);
                        columns.push(AvroField {
                            name: f.name.clone(),
                            column: column.unwrap_or(&f.name).to_owned(),
                            ty: from_schema(&f.schema, names, open)?,
                            default: f.default.clone(),
                        });
                    }
                    open.remove(name);
                    AvroType::Record(columns)
                }
                Kind::Enum { symbols, .. } => AvroType::Enum(symbols.as_slice().into()),
                Kind::Fixed { size, logical } => {
                    let size = *size as usize;
                    let decimal = logical
                        .as_ref()
                        .filter(|l| l.name == "decimal")
                        .and_then(|l| decimal(l, Some(size)));
                    decimal.unwrap_or(AvroType::Fixed(size))
                }
            }
        }
    })
}

/// `base` read as its logical type says; one unknown or misplaced is
/// ignored, as the spec says.
fn with_logical(base: AvroType, logical: &Logical) -> AvroType {
    match (logical.name.as_str(), &base) {
        ("date", AvroType::Int) => AvroType::Date,
        ("time-millis", AvroType::Int) => AvroType::TimeMillis,
        ("time-micros", AvroType::Long) => AvroType::TimeMicros,
        ("timestamp-millis", AvroType::Long) => AvroType::TimestampMillis { utc: true },
        ("timestamp-micros", AvroType::Long) => AvroType::TimestampMicros { utc: true },
        ("timestamp-nanos", AvroType::Long) => AvroType::TimestampNanos { utc: true },
        ("local-timestamp-millis", AvroType::Long) => AvroType::TimestampMillis { utc: false },
        ("local-timestamp-micros", AvroType::Long) => AvroType::TimestampMicros { utc: false },
        ("local-timestamp-nanos", AvroType::Long) => AvroType::TimestampNanos { utc: false },
        ("decimal", AvroType::Bytes) => decimal(logical, None).unwrap_or(base),
        _ => base,
    }
}

fn decimal(logical: &Logical, fixed: Option<usize>) -> Option<AvroType> {
    let precision = logical.precision?;
    let scale = logical.scale.unwrap_or(0);
    // Decimal128 holds up to 38 digits; wider ones are read as bytes.
    (1..=38)
        .contains(&precision)
        .then_some(())
        .filter(|_| scale <= precision && fixed.is_none_or(|n| n <= 16))
        .map(|_| AvroType::Decimal {
            precision: precision as u8,
            scale: scale as i8,
            fixed,
        })
}

// ---------------------------------------------------------------- binary reading

type Fail = String;

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn long(&mut self) -> std::result::Result<i64, Fail> {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| "the record ends inside a number".to_owned())?;
            self.at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err("a number longer than 10 bytes".into());
            }
        }
        Ok((value >> 1) as i64 ^ -((value & 1) as i64))
    }

    fn int(&mut self) -> std::result::Result<i32, Fail> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("int {v} out of range"))
    }

    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], Fail> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("the record ends inside a {n}-byte value"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn len(&mut self) -> std::result::Result<usize, Fail> {
        let n = self.long()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.at)
            .ok_or_else(|| {
                format!(
                    "a length of {n} with {} bytes left",
                    self.bytes.len() - self.at
                )
            })
    }

    /// The item count of the next block (0: the end), its byte size skipped.
    fn block(&mut self) -> std::result::Result<usize, Fail> {
        let n = self.long()?;
        let n = if n < 0 {
            self.long()?;
            n.checked_neg().ok_or("a bad block count")?
        } else {
            n
        };
        // Every item takes at least... nothing (null items), so bound by the
        // bytes left times a generous factor to stop absurd counts early.
        let n = usize::try_from(n).map_err(|_| "a bad block count".to_owned())?;
        if n > (self.bytes.len() - self.at + 1) * 64 {
            return Err(format!(
                "a block of {n} items in {} bytes",
                self.bytes.len() - self.at
            ));
        }
        Ok(n)
    }
}

/// A column being built; `truncate` rolls back a failed record.
enum Col {
    Null(usize),
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// Bytes or UTF-8 (checked per value).
    Bin {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    Fixed {
        size: usize,
        data: Vec<u8>,
        len: usize,
    },
    Decimal(Vec<i128>),
    Enum(Vec<i32>),
    List {
        offsets: Vec<i32>,
        item: Box<Column>,
    },
    Map {
        offsets: Vec<i32>,
        keys: Box<Col>,
        values: Box<Column>,
    },
    Struct {
        fields: Vec<Column>,
        len: usize,
    },
}

struct Column {
    ty: AvroType,
    /// How the value is read: the type itself, or T of `["null", T]`.
    null_branch: Option<u8>,
    validity: Option<BooleanBufferBuilder>,
    col: Col,
}

impl Column {
    fn new(ty: &AvroType) -> std::result::Result<Self, String> {
        ty.arrow_type()?; // refuse what cannot be a column, once
        let (null_branch, inner) = match ty.nullable() {
            Some((i, t)) => (Some(i), t.clone()),
            None => (None, ty.clone()),
        };
        let col = match &inner {
            AvroType::Null => Col::Null(0),
            AvroType::Boolean => Col::Bool(Vec::new()),
            AvroType::Int | AvroType::Date | AvroType::TimeMillis => Col::I32(Vec::new()),
            AvroType::Long
            | AvroType::TimeMicros
            | AvroType::TimestampMillis { .. }
            | AvroType::TimestampMicros { .. }
            | AvroType::TimestampNanos { .. } => Col::I64(Vec::new()),
            AvroType::Float => Col::F32(Vec::new()),
            AvroType::Double => Col::F64(Vec::new()),
            AvroType::Bytes | AvroType::String => Col::Bin {
                offsets: vec![0],
                data: Vec::new(),
            },
            AvroType::Fixed(size) => Col::Fixed {
                size: *size,
                data: Vec::new(),
                len: 0,
            },
            AvroType::Decimal { .. } => Col::Decimal(Vec::new()),
            AvroType::Enum(_) => Col::Enum(Vec::new()),
            AvroType::Array(items) => Col::List {
                offsets: vec![0],
                item: Box::new(Column::new(items)?),
            },
            AvroType::Map(values) => Col::Map {
                offsets: vec![0],
                keys: Box::new(Col::Bin {
                    offsets: vec![0],
                    data: Vec::new(),
                }),
                values: Box::new(Column::new(values)?),
            },
            AvroType::Record(fields) => Col::Struct {
                fields: fields
                    .iter()
                    .map(|f| Column::new(&f.ty))
                    .collect::<std::result::Result<_, _>>()?,
                len: 0,
            },
            AvroType::Union(_) => unreachable!("refused by arrow_type"),
        };
        Ok(Self {
            ty: inner,
            null_branch,
            validity: null_branch.map(|_| BooleanBufferBuilder::new(0)),
            col,
        })
    }

    fn truncate(&mut self, n: usize) {
        if let Some(v) = &mut self.validity {
            v.truncate(n);
        }
        self.col.truncate(n);
    }

    fn read(&mut self, c: &mut Cursor<'_>) -> std::result::Result<(), Fail> {
        if let Some(null_branch) = self.null_branch {
            let branch = c.long()?;
            let validity = self
                .validity
                .as_mut()
                .expect("nullable columns have validity");
            if branch == i64::from(null_branch) {
                validity.append(false);
                self.col.push_default();
                return Ok(());
            }
            if branch != i64::from(1 - null_branch) {
                return Err(format!("union branch {branch} of a 2-branch union"));
            }
            validity.append(true);
        }
        self.col.read(&self.ty, c)
    }

    fn finish(self) -> ArrayRef {
        let nulls = self.validity.map(|mut v| NullBuffer::new(v.finish()));
        self.col.finish(&self.ty, nulls)
    }
}

impl Col {
    fn truncate(&mut self, n: usize) {
        match self {
            Col::Null(len) => *len = n,
            Col::Bool(v) => v.truncate(n),
            Col::I32(v) | Col::Enum(v) => v.truncate(n),
            Col::I64(v) => v.truncate(n),
            Col::F32(v) => v.truncate(n),
            Col::F64(v) => v.truncate(n),
            Col::Decimal(v) => v.truncate(n),
            Col::Bin { offsets, data } => {
                offsets.truncate(n + 1);
                data.truncate(offsets[n] as usize);
            }
            Col::Fixed { size, data, len } => {
                *len = n;
                data.truncate(n * *size);
            }
            Col::List { offsets, item } => {
                offsets.truncate(n + 1);
                item.truncate(offsets[n] as usize);
            }
            Col::Map {
                offsets,
                keys,
                values,
            } => {
                offsets.truncate(n + 1);
                keys.truncate(offsets[n] as usize);
                values.truncate(offsets[n] as usize);
            }
            Col::Struct { fields, len } => {
                *len = n;
                for f in fields {
                    f.truncate(n);
                }
            }
        }
    }

    /// A null's place: any value, marked invalid by the caller.
    fn push_default(&mut self) {
        match self {
            Col::Null(len) => *len += 1,
            Col::Bool(v) => v.push(false),
            Col::I32(v) | Col::Enum(v) => v.push(0),
            Col::I64(v) => v.push(0),
            Col::F32(v) => v.push(0.0),
            Col::F64(v) => v.push(0.0),
            Col::Decimal(v) => v.push(0),
            Col::Bin { offsets, .. } | Col::List { offsets, .. } | Col::Map { offsets, .. } => {
                offsets.push(*offsets.last().expect("offsets start with 0"))
            }
            Col::Fixed { size, data, len } => {
                data.resize(data.len() + *size, 0);
                *len += 1;
            }
            Col::Struct { fields, len } => {
                *len += 1;
                for f in fields {
                    if let Some(v) = &mut f.validity {
                        v.append(false);
                    }
                    f.col.push_default();
                }
            }
        }
    }

    fn read(&mut self, ty: &AvroType, c: &mut Cursor<'_>) -> std::result::Result<(), Fail> {
        match self {
            Col::Null(len) => *len += 1,
            Col::Bool(v) => match c.take(1)?[0] {
                0 => v.push(false),
                1 => v.push(true),
                b => return Err(format!("boolean byte {b}")),
            },
            Col::I32(v) => v.push(c.int()?),
            Col::I64(v) => v.push(c.long()?),
            Col::F32(v) => v.push(f32::from_le_bytes(c.take(4)?.try_into().expect("4 bytes"))),
            Col::F64(v) => v.push(f64::from_le_bytes(c.take(8)?.try_into().expect("8 bytes"))),
            Col::Bin { offsets, data } => {
                let n = c.len()?;
                let bytes = c.take(n)?;
                if matches!(ty, AvroType::String) && std::str::from_utf8(bytes).is_err() {
                    return Err("a string that is not UTF-8".into());
                }
                data.extend_from_slice(bytes);
                let end =
                    i32::try_from(data.len()).map_err(|_| "over 2 GiB of text in one frame")?;
                offsets.push(end);
            }
            Col::Fixed { size, data, len } => {
                data.extend_from_slice(c.take(*size)?);
                *len += 1;
            }
            Col::Decimal(v) => {
                let AvroType::Decimal { fixed, .. } = ty else {
                    unreachable!("decimal columns hold decimals")
                };
                let n = match fixed {
                    Some(n) => *n,
                    None => c.len()?,
                };
                let bytes = c.take(n)?;
                if n > 16 {
                    return Err(format!("a decimal of {n} bytes (Decimal128 holds 16)"));
                }
                let mut value: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                    -1
                } else {
                    0
                };
                for b in bytes {
                    value = (value << 8) | i128::from(*b);
                }
                v.push(value);
            }
            Col::Enum(v) => {
                let AvroType::Enum(symbols) = ty else {
                    unreachable!("enum columns hold enums")
                };
                let i = c.int()?;
                if i < 0 || i as usize >= symbols.len() {
                    return Err(format!("enum index {i} of {} symbols", symbols.len()));
                }
                v.push(i);
            }
            Col::List { offsets, item } => {
                let mut count = *offsets.last().expect("offsets start with 0") as usize;
                loop {
                    let n = c.block()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        item.read(c)?;
                    }
                    count += n;
                }
                offsets.push(i32::try_from(count).map_err(|_| "over 2^31 items in one frame")?);
            }
            Col::Map {
                offsets,
                keys,
                values,
            } => {
                let mut count = *offsets.last().expect("offsets start with 0") as usize;
                loop {
                    let n = c.block()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        keys.read(&AvroType::String, c)?;
                        values.read(c)?;
                    }
                    count += n;
                }
                offsets.push(i32::try_from(count).map_err(|_| "over 2^31 entries in one frame")?);
            }
            Col::Struct { fields, len } => {
                for f in fields.iter_mut() {
                    f.read(c)?;
                }
                *len += 1;
            }
        }
        Ok(())
    }

    fn finish(self, ty: &AvroType, nulls: Option<NullBuffer>) -> ArrayRef {
        let dt = ty.arrow_type().expect("checked when the column was made");
        match self {
            Col::Null(n) => Arc::new(NullArray::new(n)),
            Col::Bool(v) => Arc::new(BooleanArray::new(v.into(), nulls)),
            Col::I32(v) => retyped(Int32Array::new(v.into(), nulls), dt),
            Col::I64(v) => retyped(Int64Array::new(v.into(), nulls), dt),
            Col::F32(v) => Arc::new(Float32Array::new(v.into(), nulls)),
            Col::F64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
            Col::Decimal(v) => {
                let AvroType::Decimal {
                    precision, scale, ..
                } = ty
                else {
                    unreachable!()
                };
                Arc::new(
                    Decimal128Array::new(v.into(), nulls)
                        .with_precision_and_scale(*precision, *scale)
                        .expect("precision checked when parsed"),
                )
            }
            Col::Enum(v) => {
                let AvroType::Enum(symbols) = ty else {
                    unreachable!()
                };
                let keys = Int32Array::new(v.into(), nulls);
                let values = StringArray::from_iter_values(symbols.iter());
                Arc::new(
                    DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values))
                        .expect("indexes checked when read"),
                )
            }
            Col::Bin { offsets, data } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                if *ty == AvroType::String {
                    // SAFETY: every value was checked to be UTF-8 as it was read.
                    Arc::new(unsafe { StringArray::new_unchecked(offsets, data.into(), nulls) })
                } else {
                    Arc::new(BinaryArray::new(offsets, data.into(), nulls))
                }
            }
            Col::Fixed { size, data, .. } => {
                Arc::new(FixedSizeBinaryArray::new(size as i32, data.into(), nulls))
            }
            Col::List { offsets, item } => {
                let DataType::List(field) = dt else {
                    unreachable!()
                };
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(ListArray::new(field, offsets, item.finish(), nulls))
            }
            Col::Map {
                offsets,
                keys,
                values,
            } => {
                let DataType::Map(entries, _) = &dt else {
                    unreachable!()
                };
                let DataType::Struct(fields) = entries.data_type() else {
                    unreachable!()
                };
                let keys = keys.finish(&AvroType::String, None);
                let entries_array =
                    StructArray::new(fields.clone(), vec![keys, values.finish()], None);
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(MapArray::new(
                    entries.clone(),
                    offsets,
                    entries_array,
                    nulls,
                    false,
                ))
            }
            Col::Struct { fields, len } => {
                let DataType::Struct(arrow_fields) = dt else {
                    unreachable!()
                };
                let columns: Vec<ArrayRef> = fields.into_iter().map(Column::finish).collect();
                if columns.is_empty() {
                    return Arc::new(StructArray::new_empty_fields(len, nulls));
                }
                Arc::new(StructArray::new(arrow_fields, columns, nulls))
            }
        }
    }
}

/// Parses past a value of type `ty`, building nothing: a field the
/// projection leaves out. Blocks that state their byte size are jumped over.
fn skip(ty: &AvroType, c: &mut Cursor<'_>) -> std::result::Result<(), Fail> {
    match ty {
        AvroType::Null => {}
        AvroType::Boolean => {
            c.take(1)?;
        }
        AvroType::Int | AvroType::Date | AvroType::TimeMillis | AvroType::Enum(_) => {
            c.int()?;
        }
        AvroType::Long
        | AvroType::TimeMicros
        | AvroType::TimestampMillis { .. }
        | AvroType::TimestampMicros { .. }
        | AvroType::TimestampNanos { .. } => {
            c.long()?;
        }
        AvroType::Float => {
            c.take(4)?;
        }
        AvroType::Double => {
            c.take(8)?;
        }
        AvroType::Fixed(n) | AvroType::Decimal { fixed: Some(n), .. } => {
            c.take(*n)?;
        }
        AvroType::Bytes | AvroType::String | AvroType::Decimal { fixed: None, .. } => {
            let n = c.len()?;
            c.take(n)?;
        }
        AvroType::Array(_) | AvroType::Map(_) => loop {
            let n = c.long()?;
            if n == 0 {
                break;
            }
            if n < 0 {
                let size = c.len()?;
                c.take(size)?;
                continue;
            }
            let n = usize::try_from(n).map_err(|_| "a bad block count".to_owned())?;
            let left = c.bytes.len() - c.at;
            if n > (left + 1) * 64 {
                return Err(format!("a block of {n} items in {left} bytes"));
            }
            for _ in 0..n {
                match ty {
                    AvroType::Array(items) => skip(items, c)?,
                    AvroType::Map(values) => {
                        skip(&AvroType::String, c)?;
                        skip(values, c)?;
                    }
                    _ => unreachable!("arrays and maps"),
                }
            }
        },
        AvroType::Record(fields) => {
            for f in fields {
                skip(&f.ty, c)?;
            }
        }
        AvroType::Union(branches) => {
            let i = c.long()?;
            let branch = usize::try_from(i)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| format!("union branch {i} of a {}-branch union", branches.len()))?;
            skip(branch, c)?;
        }
    }
    Ok(())
}

/// `array`'s values as `dt` (same width: a date, time or timestamp).
fn retyped(array: impl Array, dt: DataType) -> ArrayRef {
    if array.data_type() == &dt {
        return arrow_array::make_array(array.into_data());
    }
    let data = array
        .into_data()
        .into_builder()
        .data_type(dt)
        .build()
        .expect("same width");
    arrow_array::make_array(data)
}

/// Decodes the records of one schema into columns.
pub struct Decoder {
    schema: SchemaRef,
    /// A record's fields, or the one column of a schema that is not a record.
    columns: Vec<Column>,
    /// With a projection, each field in order: the type of a field parsed
    /// past unread, or None for the next of `columns`.
    skipped: Option<Vec<Option<AvroType>>>,
    rows: usize,
}

impl Decoder {
    pub fn new(ty: &AvroType) -> std::result::Result<Self, String> {
        Self::projected(ty, None)
    }

    /// A decoder of the columns named in `projection` only (None: all).
    pub fn projected(
        ty: &AvroType,
        projection: Option<&HashSet<String>>,
    ) -> std::result::Result<Self, String> {
        let schema = ty.arrow_schema()?;
        let types: Vec<&AvroType> = match ty {
            AvroType::Record(fields) => fields.iter().map(|f| &f.ty).collect(),
            other => vec![other],
        };
        let wanted = |i: usize| projection.is_none_or(|p| p.contains(schema.field(i).name()));
        let keep: Vec<usize> = (0..types.len()).filter(|&i| wanted(i)).collect();
        let skipped = (keep.len() < types.len()).then(|| {
            let each = types.iter().enumerate();
            each.map(|(i, t)| (!wanted(i)).then(|| (*t).clone()))
                .collect()
        });
        let columns = keep
            .iter()
            .map(|&i| Column::new(types[i]))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Self {
            schema: Arc::new(schema.project(&keep).map_err(|e| e.to_string())?),
            columns,
            skipped,
            rows: 0,
        })
    }

    /// The fields of a record read with a projection: columns, or skipped.
    fn read_projected(
        columns: &mut [Column],
        skipped: &[Option<AvroType>],
        c: &mut Cursor<'_>,
    ) -> std::result::Result<(), Fail> {
        let mut columns = columns.iter_mut();
        for field in skipped {
            match field {
                Some(ty) => skip(ty, c)?,
                None => columns.next().expect("a column per field read").read(c)?,
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends the record in `body` (its whole length); on an error the
    /// columns are as before.
    pub fn push(&mut self, body: &[u8]) -> std::result::Result<(), String> {
        let mut c = Cursor { bytes: body, at: 0 };
        let mut result = Ok(());
        if let Some(skipped) = &self.skipped {
            result = Self::read_projected(&mut self.columns, skipped, &mut c);
        } else {
            for col in &mut self.columns {
                result = col.read(&mut c);
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() && c.at != body.len() {
            result = Err(format!(
                "{} bytes left over after the record (the bytes do not match the schema)",
                body.len() - c.at
            ));
        }
        match result {
            Ok(()) => {
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                for col in &mut self.columns {
                    col.truncate(self.rows);
                }
                Err(e)
            }
        }
    }

    /// The rows so far as a batch; the decoder starts again empty.
    pub fn take(&mut self) -> RecordBatch {
        let fresh: Vec<Column> = self
            .columns
            .iter()
            .map(|c| {
                let ty = match c.null_branch {
                    Some(0) => AvroType::Union(vec![AvroType::Null, c.ty.clone()]),
                    Some(_) => AvroType::Union(vec![c.ty.clone(), AvroType::Null]),
                    None => c.ty.clone(),
                };
                Column::new(&ty).expect("made once already")
            })
            .collect();
        let columns = std::mem::replace(&mut self.columns, fresh);
        let rows = std::mem::take(&mut self.rows);
        let arrays: Vec<ArrayRef> = columns.into_iter().map(Column::finish).collect();
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .expect("columns match their schema")
    }
}

// ---------------------------------------------------------------- the frame builder

/// Consecutive Avro messages of one schema id. Their framed payloads are
/// gathered; a full run is decoded on a worker thread while the next
/// messages arrive, the rest when the frame is taken.
pub(super) struct AvroRun {
    id: u32,
    ty: Arc<AvroType>,
    /// The data columns wanted (None: all).
    projection: Option<Arc<HashSet<String>>>,
    /// The messages' framed payloads end to end, and where each ends.
    payloads: Vec<u8>,
    ends: Vec<usize>,
    metas: Vec<Meta>,
}

/// Messages, or bytes of them, an Avro run gathers before it is decoded:
/// tens of milliseconds of work, worth a thread of its own.
const RUN_MESSAGES: usize = 32_768;
const RUN_BYTES: usize = 4 << 20;

impl AvroRun {
    /// The messages gathered so far, as a run of their own; this one goes
    /// on empty for the next messages of the same id.
    fn take_full(&mut self) -> AvroRun {
        AvroRun {
            id: self.id,
            ty: self.ty.clone(),
            projection: self.projection.clone(),
            payloads: emptied(&mut self.payloads),
            ends: emptied(&mut self.ends),
            metas: emptied(&mut self.metas),
        }
    }

    /// Decodes the run (on any thread): what it adds to the builder, its
    /// rows as one part (with string views if wanted) and the messages that
    /// do not match their schema.
    fn decode(self, string_views: bool) -> Settle {
        let projection = self.projection.as_deref();
        let mut decoder = Decoder::projected(&self.ty, projection)
            .expect("made for this schema when the run began");
        let mut metas = Vec::with_capacity(self.metas.len());
        let mut bad = Vec::new();
        let mut start = 0;
        for (meta, end) in self.metas.into_iter().zip(self.ends) {
            let payload = &self.payloads[start..end];
            start = end;
            match guarded(|| decoder.push(&payload[HEADER_LEN..])) {
                Ok(()) => metas.push(meta),
                Err(e) => bad.push(BadMessage {
                    topic: meta.topic.to_string(),
                    partition: meta.partition,
                    offset: meta.offset,
                    error: format!("Avro record of schema id {}: {e}", self.id),
                    payload: payload.to_vec(),
                }),
            }
        }
        let batch = (decoder.rows() > 0).then(|| decoder.take());
        let viewed = batch
            .as_ref()
            .filter(|_| string_views)
            .and_then(batch_with_string_views);
        Box::new(move |b: &mut FrameBuilder| {
            b.rows = b.rows.saturating_sub(bad.len());
            b.bad.extend(bad);
            if let Some(batch) = batch {
                b.push_part(batch, viewed, metas);
            }
        })
    }
}

impl FrameBuilder {
    /// A Confluent-framed Avro message.
    pub(super) fn push_avro(&mut self, m: &MessageRef<'_>, payload: &[u8]) {
        let Some((id, _)) = unframe(payload) else {
            // Bad messages are kept in the order of their messages.
            self.flush_avro();
            self.reject(
                m,
                "not in the Schema Registry framing (a zero byte, then a 4-byte schema id): \
                 read it with another format= or skip it with on_error='skip'"
                    .into(),
            );
            return;
        };
        // Messages of another id make another part (and what refuses this
        // one comes after the rows before it).
        if self.avro.as_ref().is_some_and(|r| r.id != id) {
            self.flush_avro();
        }
        // A run's schema was looked up when it began (an id's schema never changes).
        if self.avro.is_none() {
            let Some(schema) = self.registered_schema(m, id) else {
                return;
            };
            if schema.schema_type != SchemaType::Avro {
                self.reject(
                    m,
                    format!(
                        "schema id {id} is a {} schema, not Avro: read with format='json_schema'",
                        schema.schema_type.registry_name()
                    ),
                );
                return;
            }
            let made = guarded(|| {
                let ty = AvroType::parse(&schema.text, &schema.references)?;
                // Made once here, so a schema it cannot read is this message's error.
                Decoder::projected(&ty, self.projection.as_ref())?;
                Ok(ty)
            });
            match made {
                Ok(ty) => {
                    self.avro = Some(AvroRun {
                        id,
                        ty: Arc::new(ty),
                        projection: self.projection.clone().map(Arc::new),
                        payloads: Vec::new(),
                        ends: Vec::new(),
                        metas: Vec::new(),
                    })
                }
                Err(e) => {
                    self.reject(m, format!("schema id {id}: {e}"));
                    return;
                }
            }
        }
        let meta = self.meta(m, 1);
        self.rows += 1;
        let run = self.avro.as_mut().expect("made above");
        run.payloads.extend_from_slice(payload);
        run.ends.push(run.payloads.len());
        run.metas.push(meta);
        if run.metas.len() >= RUN_MESSAGES || run.payloads.len() >= RUN_BYTES {
            let full = run.take_full();
            let string_views = self.string_views;
            self.decode_aside(move || full.decode(string_views));
        }
    }

    /// Decodes the Avro messages gathered, after the run on the worker.
    pub(super) fn flush_avro(&mut self) {
        self.settle();
        let Some(run) = self.avro.take() else {
            return;
        };
        if run.metas.is_empty() {
            return;
        }
        let settle = run.decode(self.string_views);
        settle(self);
    }
}

// ---------------------------------------------------------------- writing

/// A name Avro accepts for `name`: other characters become '_', a leading
/// digit gets a '_' before it.
pub fn avro_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// What to tell the user about columns renamed by [`avro_schema_for`]
/// (`(column, Avro name)` pairs); None when none was.
pub fn renamed_columns_warning(renamed: &[(String, String)]) -> Option<String> {
    if renamed.is_empty() {
        return None;
    }
    let pairs: Vec<String> = renamed
        .iter()
        .map(|(column, name)| format!("{column:?} -> {name:?}"))
        .collect();
    Some(format!(
        "Avro field names allow only letters, digits and '_' (not first a digit), so these \
         columns are written under other names: {}. tskafka restores the original names when \
         it reads the topic; other readers (confluent-kafka's AvroDeserializer, Spark, ...) see \
         the Avro names. Rename the columns, or give schema=, to avoid this",
        pairs.join(", ")
    ))
}

/// The Avro schema of a frame's rows: a record named after `record_name`,
/// one field per column (nullable ones as `["null", T]` with default null).
/// Also the columns whose names had to change: `(column, avro name)`.
/// Two columns that would get one name are an error.
pub fn avro_schema_for(
    schema: &Schema,
    record_name: &str,
) -> Result<(String, Vec<(String, String)>)> {
    let mut renamed = Vec::new();
    let mut counter = 0;
    let fields = record_fields(schema.fields(), &mut renamed, &mut counter, "")?;
    let record = json!({
        "type": "record",
        "name": avro_name(record_name),
        "namespace": "tskafka",
        "fields": fields,
    });
    Ok((record.to_string(), renamed))
}

fn record_fields(
    fields: &Fields,
    renamed: &mut Vec<(String, String)>,
    counter: &mut usize,
    path: &str,
) -> Result<Vec<Value>> {
    // Avro name -> the column that has it.
    let mut used: HashMap<String, &str> = HashMap::new();
    let mut out = Vec::new();
    for f in fields {
        let name = avro_name(f.name());
        if let Some(first) = used.insert(name.clone(), f.name()) {
            return Err(Error::Schema(format!(
                "columns {:?} and {:?} would both be written as the Avro field {name:?} \
                 (Avro field names allow only letters, digits and '_'): rename one of them, \
                 or give schema=",
                format!("{path}{first}"),
                format!("{path}{}", f.name()),
            )));
        }
        let column = format!("{path}{}", f.name());
        let ty = avro_type_of(f.data_type(), &column, renamed, counter)?;
        let mut field = json!({"name": name});
        if f.is_nullable() && *f.data_type() != DataType::Null {
            field["type"] = json!(["null", ty]);
            field["default"] = Value::Null;
        } else {
            field["type"] = ty;
        }
        if name != *f.name() {
            field[ARROW_NAME] = json!(f.name());
            renamed.push((column, name));
        }
        out.push(field);
    }
    Ok(out)
}

/// Arrow types Avro carries, for messages.
pub const AVRO_TYPES: &str = "bool, int8-64, uint8-32 (uint64 within the int64 range), \
     float16/32/64, string (utf8, large, view, categorical), binary, fixed-size binary, \
     date32/64, time32(ms)/time64(us), timestamp (any unit, with or without zone), \
     decimal128, lists, structs, maps with string keys, null";

fn avro_type_of(
    dt: &DataType,
    column: &str,
    renamed: &mut Vec<(String, String)>,
    counter: &mut usize,
) -> Result<Value> {
    use DataType::*;
    let logical = |base: &str, lt: &str| json!({"type": base, "logicalType": lt});
    Ok(match dt {
        Null => json!("null"),
        Boolean => json!("boolean"),
        Int8 | Int16 | Int32 | UInt8 | UInt16 => json!("int"),
        Int64 | UInt32 | UInt64 => json!("long"),
        Float16 | Float32 => json!("float"),
        Float64 => json!("double"),
        Utf8 | LargeUtf8 | Utf8View => json!("string"),
        Dictionary(_, v) if matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View) => json!("string"),
        Binary | LargeBinary | BinaryView => json!("bytes"),
        FixedSizeBinary(n) => {
            *counter += 1;
            json!({"type": "fixed", "name": format!("fixed{}", *counter), "size": n})
        }
        Date32 | Date64 => logical("int", "date"),
        Time32(TimeUnit::Millisecond) | Time32(TimeUnit::Second) => logical("int", "time-millis"),
        Time64(_) => logical("long", "time-micros"),
        // Zoned datetimes are instants (timestamp-*, read back in UTC); naive
        // ones are wall-clock times (local-timestamp-*). Nanoseconds are
        // written as microseconds (what Avro readers commonly know).
        Timestamp(unit, zone) => {
            let fine = matches!(unit, TimeUnit::Microsecond | TimeUnit::Nanosecond);
            let lt = match (fine, zone.is_some()) {
                (true, true) => "timestamp-micros",
                (false, true) => "timestamp-millis",
                (true, false) => "local-timestamp-micros",
                (false, false) => "local-timestamp-millis",
            };
            logical("long", lt)
        }
        Decimal128(p, s) if *s >= 0 => {
            json!({"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s})
        }
        List(f) | LargeList(f) | ListView(f) | FixedSizeList(f, _) => {
            let item = avro_type_of(f.data_type(), &format!("{column}[]"), renamed, counter)?;
            let item = if f.is_nullable() && *f.data_type() != Null {
                json!(["null", item])
            } else {
                item
            };
            json!({"type": "array", "items": item})
        }
        Map(entries, _) => {
            let Struct(kv) = entries.data_type() else {
                return Err(unsupported(column, dt));
            };
            if !matches!(kv[0].data_type(), Utf8 | LargeUtf8 | Utf8View) {
                return Err(Error::Schema(format!(
                    "column {column:?} is a map with {} keys: Avro maps have string keys; \
                     cast the keys to strings",
                    kv[0].data_type()
                )));
            }
            let v = avro_type_of(
                kv[1].data_type(),
                &format!("{column}{{}}"),
                renamed,
                counter,
            )?;
            let v = if kv[1].is_nullable() && *kv[1].data_type() != Null {
                json!(["null", v])
            } else {
                v
            };
            json!({"type": "map", "values": v})
        }
        Struct(fields) => {
            *counter += 1;
            let name = format!(
                "{}_{}",
                avro_name(column.rsplit('.').next().unwrap_or(column)),
                counter
            );
            json!({
                "type": "record",
                "name": name,
                "fields": record_fields(fields, renamed, counter, &format!("{column}."))?,
            })
        }
        other => return Err(unsupported(column, other)),
    })
}

fn unsupported(column: &str, dt: &DataType) -> Error {
    Error::Schema(format!(
        "column {column:?} has type {dt}, which Avro cannot carry; supported: {AVRO_TYPES}. \
         Cast the column or use format='arrow'"
    ))
}

/// Writes rows of a batch as Avro records of one schema.
pub struct RowWriter {
    id: u32,
    root: W,
}

enum W {
    Null,
    Bool(BooleanArray),
    Int(Int32Array),
    Long(Int64Array),
    Float(Float32Array),
    Double(Float64Array),
    Str(StringArray),
    Bytes(BinaryArray),
    Fixed(FixedSizeBinaryArray),
    Decimal {
        values: Decimal128Array,
        fixed: Option<usize>,
    },
    Enum {
        values: StringArray,
        index: HashMap<String, i64>,
        column: String,
    },
    Array {
        list: ListArray,
        item: Box<W>,
    },
    Map {
        map: MapArray,
        keys: StringArray,
        values: Box<W>,
    },
    Record(Vec<W>),
    /// A column that may be null, as branch `value` of a union (null is branch `null`).
    Union {
        null: Option<i64>,
        value: i64,
        nulls: Option<NullBuffer>,
        inner: Box<W>,
        column: String,
    },
    /// A field with no column: its default, written once.
    Constant(Vec<u8>),
}

impl RowWriter {
    /// A writer of `batch`-shaped rows as records of `schema` (its text,
    /// registered as `id`).
    pub fn new(id: u32, text: &str, batch: &RecordBatch) -> Result<Self> {
        let ty = AvroType::parse(text, &[])
            .map_err(|e| Error::Schema(format!("the Avro schema is not valid: {e}")))?;
        let root = match &ty {
            AvroType::Record(fields) => W::Record(
                fields
                    .iter()
                    .map(|f| {
                        let column = batch
                            .schema()
                            .index_of(&f.column)
                            .or_else(|_| batch.schema().index_of(&f.name))
                            .ok()
                            .map(|i| batch.column(i).clone());
                        field_writer(&f.ty, column.as_ref(), &f.column, f.default.as_ref())
                    })
                    .collect::<Result<_>>()?,
            ),
            other => {
                if batch.num_columns() != 1 {
                    return Err(Error::Schema(format!(
                        "the Avro schema is a {}, not a record: it writes a frame of one column, \
                         not {}",
                        describe(other),
                        batch.num_columns()
                    )));
                }
                writer(other, batch.column(0), batch.schema().field(0).name())?
            }
        };
        Ok(Self { id, root })
    }

    /// Appends row `row` (framed: magic byte, id, record) to `out`.
    pub fn write(&self, row: usize, out: &mut Vec<u8>) -> Result<()> {
        frame_header(self.id, out);
        self.root.write(row, out)
    }
}

fn field_writer(
    ty: &AvroType,
    column: Option<&ArrayRef>,
    name: &str,
    default: Option<&Value>,
) -> Result<W> {
    match column {
        Some(c) => writer(ty, c, name),
        None => match default {
            Some(d) => Ok(W::Constant(encode_default(ty, d).ok_or_else(|| {
                Error::Schema(format!(
                    "the default of Avro field {name:?} cannot be written"
                ))
            })?)),
            None => Err(Error::Schema(format!(
                "the Avro schema has a field {name:?} without a default, and the frame has no \
                 such column"
            ))),
        },
    }
}

/// The binary of a field's default (the JSON default of the union's first branch).
fn encode_default(ty: &AvroType, d: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match (ty, d) {
        (AvroType::Null, Value::Null) => {}
        (AvroType::Union(b), _) => {
            out.push(0);
            out.extend(encode_default(&b[0], d)?);
        }
        (AvroType::Boolean, Value::Bool(v)) => out.push(u8::from(*v)),
        (
            AvroType::Int
            | AvroType::Long
            | AvroType::Date
            | AvroType::TimeMillis
            | AvroType::TimeMicros
            | AvroType::TimestampMillis { .. }
            | AvroType::TimestampMicros { .. }
            | AvroType::TimestampNanos { .. },
            Value::Number(n),
        ) => write_long(n.as_i64()?, &mut out),
        (AvroType::Float, Value::Number(n)) => out.extend((n.as_f64()? as f32).to_le_bytes()),
        (AvroType::Double, Value::Number(n)) => out.extend(n.as_f64()?.to_le_bytes()),
        (AvroType::String, Value::String(s)) => write_bytes(s.as_bytes(), &mut out),
        (AvroType::Enum(symbols), Value::String(s)) => {
            write_long(symbols.iter().position(|x| x == s)? as i64, &mut out)
        }
        (AvroType::Array(_) | AvroType::Map(_), v)
            if v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(Map::is_empty) =>
        {
            out.push(0)
        }
        _ => return None,
    }
    Some(out)
}

fn no_cast(name: &str, dt: &DataType, ty: &AvroType, e: impl std::fmt::Display) -> Error {
    Error::Schema(format!(
        "column {name:?} of type {dt} cannot be written as Avro {}: {e}",
        describe(ty)
    ))
}

fn writer(ty: &AvroType, column: &ArrayRef, name: &str) -> Result<W> {
    let dt = column.data_type();
    Ok(match ty {
        AvroType::Union(branches) => {
            let null = branches.iter().position(|b| *b == AvroType::Null);
            // The first other branch that takes the column.
            let mut last_err = None;
            for (i, b) in branches.iter().enumerate() {
                if *b == AvroType::Null {
                    continue;
                }
                match value_writer(b, column, name) {
                    Ok(inner) => {
                        return Ok(W::Union {
                            null: null.map(|n| n as i64),
                            value: i as i64,
                            nulls: column.logical_nulls(),
                            inner: Box::new(inner),
                            column: name.to_owned(),
                        })
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            return Err(last_err.unwrap_or_else(|| no_cast(name, dt, ty, "no branch fits")));
        }
        _ if column.null_count() > 0 && *ty != AvroType::Null => {
            return Err(Error::Schema(format!(
                "column {name:?} has nulls, but its Avro type {} is not nullable: use \
                 [\"null\", ...] in the schema or fill the nulls",
                describe(ty)
            )))
        }
        _ => value_writer(ty, column, name)?,
    })
}

/// A writer of the values of `column` (its nulls handled by the caller).
fn value_writer(ty: &AvroType, column: &ArrayRef, name: &str) -> Result<W> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let to = |dt: DataType| -> Result<ArrayRef> {
        cast_with_options(column, &dt, &strict)
            .map_err(|e| no_cast(name, column.data_type(), ty, e))
    };
    let dt = column.data_type();
    Ok(match ty {
        AvroType::Union(_) => writer(ty, column, name)?,
        AvroType::Null => W::Null,
        AvroType::Boolean => W::Bool(to(DataType::Boolean)?.as_boolean().clone()),
        AvroType::Int => {
            if !dt.is_integer() {
                return Err(no_cast(name, dt, ty, "not an integer column"));
            }
            W::Int(to(DataType::Int32)?.as_primitive::<Int32Type>().clone())
        }
        AvroType::Long => {
            if !dt.is_integer() {
                return Err(no_cast(name, dt, ty, "not an integer column"));
            }
            W::Long(to(DataType::Int64)?.as_primitive::<Int64Type>().clone())
        }
        AvroType::Float => W::Float(to(DataType::Float32)?.as_primitive::<Float32Type>().clone()),
        AvroType::Double => W::Double(to(DataType::Float64)?.as_primitive::<Float64Type>().clone()),
        AvroType::String => {
            if !matches!(
                dt,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _)
            ) {
                return Err(no_cast(name, dt, ty, "not a text column"));
            }
            W::Str(to(DataType::Utf8)?.as_string::<i32>().clone())
        }
        AvroType::Bytes => W::Bytes(to(DataType::Binary)?.as_binary::<i32>().clone()),
        AvroType::Fixed(n) => {
            let a = column
                .as_fixed_size_binary_opt()
                .filter(|a| a.value_length() as usize == *n)
                .ok_or_else(|| no_cast(name, dt, ty, format!("not fixed_size_binary({n})")))?;
            W::Fixed(a.clone())
        }
        AvroType::Date => {
            if !matches!(dt, DataType::Date32 | DataType::Date64) {
                return Err(no_cast(name, dt, ty, "not a date column"));
            }
            W::Int(reinterpret_i32(&to(DataType::Date32)?))
        }
        AvroType::TimeMillis => W::Int(reinterpret_i32(&to(DataType::Time32(
            TimeUnit::Millisecond,
        ))?)),
        AvroType::TimeMicros => W::Long(reinterpret_i64(&to(DataType::Time64(
            TimeUnit::Microsecond,
        ))?)),
        AvroType::TimestampMillis { .. }
        | AvroType::TimestampMicros { .. }
        | AvroType::TimestampNanos { .. } => {
            let unit = match ty {
                AvroType::TimestampMillis { .. } => TimeUnit::Millisecond,
                AvroType::TimestampMicros { .. } => TimeUnit::Microsecond,
                _ => TimeUnit::Nanosecond,
            };
            let DataType::Timestamp(_, zone) = dt else {
                return Err(no_cast(name, dt, ty, "not a datetime column"));
            };
            W::Long(reinterpret_i64(&to(DataType::Timestamp(
                unit,
                zone.clone(),
            ))?))
        }
        AvroType::Decimal {
            precision,
            scale,
            fixed,
        } => {
            if !matches!(
                dt,
                DataType::Decimal128(..)
                    | DataType::Decimal256(..)
                    | DataType::Decimal32(..)
                    | DataType::Decimal64(..)
            ) && !dt.is_integer()
            {
                return Err(no_cast(name, dt, ty, "not a decimal column"));
            }
            W::Decimal {
                values: to(DataType::Decimal128(*precision, *scale))?
                    .as_primitive::<Decimal128Type>()
                    .clone(),
                fixed: *fixed,
            }
        }
        AvroType::Enum(symbols) => {
            if !matches!(
                dt,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _)
            ) {
                return Err(no_cast(name, dt, ty, "not a text column"));
            }
            W::Enum {
                values: to(DataType::Utf8)?.as_string::<i32>().clone(),
                index: symbols
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.clone(), i as i64))
                    .collect(),
                column: name.to_owned(),
            }
        }
        AvroType::Array(items) => {
            let (DataType::List(f)
            | DataType::LargeList(f)
            | DataType::FixedSizeList(f, _)
            | DataType::ListView(f)) = dt
            else {
                return Err(no_cast(name, dt, ty, "not a list column"));
            };
            let list = to(DataType::List(f.clone()))?.as_list::<i32>().clone();
            let item = writer(items, list.values(), &format!("{name}[]"))?;
            W::Array {
                list,
                item: Box::new(item),
            }
        }
        AvroType::Map(values) => {
            let map = column
                .as_map_opt()
                .ok_or_else(|| no_cast(name, dt, ty, "not a map column"))?
                .clone();
            let keys = cast_with_options(map.keys(), &DataType::Utf8, &strict)
                .map_err(|e| no_cast(name, dt, ty, e))?
                .as_string::<i32>()
                .clone();
            let values = writer(values, map.values(), &format!("{name}{{}}"))?;
            W::Map {
                map,
                keys,
                values: Box::new(values),
            }
        }
        AvroType::Record(fields) => {
            let s = column
                .as_struct_opt()
                .ok_or_else(|| no_cast(name, dt, ty, "not a struct column"))?;
            W::Record(
                fields
                    .iter()
                    .map(|f| {
                        let c = s
                            .column_by_name(&f.column)
                            .or_else(|| s.column_by_name(&f.name))
                            .map(|c| valid_where_parent_is_null(c, s.nulls()));
                        field_writer(
                            &f.ty,
                            c.as_ref(),
                            &format!("{name}.{}", f.column),
                            f.default.as_ref(),
                        )
                    })
                    .collect::<Result<_>>()?,
            )
        }
    })
}

/// A struct's child as it is written: its values under a null parent are
/// never written, so they count as valid (not as nulls the type refuses).
fn valid_where_parent_is_null(child: &ArrayRef, parent: Option<&NullBuffer>) -> ArrayRef {
    let (Some(parent), Some(own)) = (parent, child.nulls()) else {
        return child.clone();
    };
    let valid = own.inner() | &!parent.inner();
    let data = child
        .to_data()
        .into_builder()
        .nulls(Some(NullBuffer::new(valid)))
        .build()
        .expect("the same array with fewer nulls");
    arrow_array::make_array(data)
}

fn reinterpret_i32(a: &ArrayRef) -> Int32Array {
    let d = a.to_data();
    let values: ScalarBuffer<i32> = ScalarBuffer::new(d.buffers()[0].clone(), d.offset(), d.len());
    PrimitiveArray::<Int32Type>::new(values, d.nulls().cloned())
}

fn reinterpret_i64(a: &ArrayRef) -> Int64Array {
    let d = a.to_data();
    let values: ScalarBuffer<i64> = ScalarBuffer::new(d.buffers()[0].clone(), d.offset(), d.len());
    PrimitiveArray::<Int64Type>::new(values, d.nulls().cloned())
}

#[inline]
fn write_long(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[inline]
fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

impl W {
    fn write(&self, row: usize, out: &mut Vec<u8>) -> Result<()> {
        match self {
            W::Null => {}
            W::Constant(bytes) => out.extend_from_slice(bytes),
            W::Bool(a) => out.push(u8::from(a.value(row))),
            W::Int(a) => write_long(i64::from(a.value(row)), out),
            W::Long(a) => write_long(a.value(row), out),
            W::Float(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            W::Double(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            W::Str(a) => write_bytes(a.value(row).as_bytes(), out),
            W::Bytes(a) => write_bytes(a.value(row), out),
            W::Fixed(a) => out.extend_from_slice(a.value(row)),
            W::Decimal { values, fixed } => {
                let be = values.value(row).to_be_bytes();
                match fixed {
                    Some(n) => out.extend_from_slice(&be[16 - n..]),
                    None => {
                        // The fewest bytes that keep the sign.
                        let mut start = 0;
                        while start < 15
                            && ((be[start] == 0 && be[start + 1] & 0x80 == 0)
                                || (be[start] == 0xff && be[start + 1] & 0x80 != 0))
                        {
                            start += 1;
                        }
                        write_bytes(&be[start..], out);
                    }
                }
            }
            W::Enum {
                values,
                index,
                column,
            } => {
                let s = values.value(row);
                let i = index.get(s).ok_or_else(|| {
                    Error::Schema(format!(
                        "column {column:?} row {row} holds {s:?}, which is not a symbol of its \
                         Avro enum"
                    ))
                })?;
                write_long(*i, out);
            }
            W::Array { list, item } => {
                let offsets = list.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                if end > start {
                    write_long((end - start) as i64, out);
                    for i in start..end {
                        item.write(i, out)?;
                    }
                }
                out.push(0);
            }
            W::Map { map, keys, values } => {
                let offsets = map.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                if end > start {
                    write_long((end - start) as i64, out);
                    for i in start..end {
                        write_bytes(keys.value(i).as_bytes(), out);
                        values.write(i, out)?;
                    }
                }
                out.push(0);
            }
            W::Record(fields) => {
                for f in fields {
                    f.write(row, out)?;
                }
            }
            W::Union {
                null,
                value,
                nulls,
                inner,
                column,
            } => {
                if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                    let Some(null) = null else {
                        return Err(Error::Schema(format!(
                            "column {column:?} row {row} is null, but its Avro type is not \
                             nullable"
                        )));
                    };
                    write_long(*null, out);
                } else {
                    write_long(*value, out);
                    inner.write(row, out)?;
                }
            }
        }
        Ok(())
    }
}

/// One Avro key as text: a string as itself, anything else as JSON; None
/// if the bytes do not match the schema.
pub(super) fn key_text(decoder: &mut Decoder, body: &[u8]) -> Option<String> {
    guarded(|| decoder.push(body)).ok()?;
    let batch = decoder.take();
    let column = batch.column(0);
    if batch.num_columns() == 1 && batch.schema().field(0).name() == "value" {
        if let Some(s) = column.as_string_opt::<i32>() {
            return Some(s.value(0).to_owned());
        }
    }
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    writer.write(&batch).ok()?;
    writer.finish().ok()?;
    let line = String::from_utf8(writer.into_inner()).ok()?;
    let line = line.trim_end();
    match &decoder.columns[..] {
        [_] if batch.schema().field(0).name() == "value" => {
            let v: Value = serde_json::from_str(line).ok()?;
            Some(v["value"].to_string())
        }
        _ => Some(line.to_owned()),
    }
}

/// A registered schema's decoder, for the fuzz target and tests.
pub fn decoder_for(schema: &RegisteredSchema) -> std::result::Result<Decoder, String> {
    Decoder::new(&AvroType::parse(&schema.text, &schema.references)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::TimestampMicrosecondArray;

    fn sample() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Invoice No", DataType::Utf8, false),
            Field::new("qty", DataType::Int64, true),
            Field::new("price", DataType::Float64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("day", DataType::Date32, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "ü"])),
                Arc::new(Int64Array::from(vec![Some(1), None, Some(-3)])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(2.0), None])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(1_700_000_000_123_456),
                        None,
                        Some(0),
                    ])
                    .with_timezone("UTC"),
                ),
                Arc::new(arrow_array::Date32Array::from(vec![
                    Some(19000),
                    Some(0),
                    None,
                ])),
            ],
        )
        .unwrap()
    }

    fn round_trip(batch: &RecordBatch) -> RecordBatch {
        let (text, _) = avro_schema_for(&batch.schema(), "t-value").unwrap();
        let w = RowWriter::new(7, &text, batch).unwrap();
        let mut d = Decoder::new(&AvroType::parse(&text, &[]).unwrap()).unwrap();
        for row in 0..batch.num_rows() {
            let mut out = Vec::new();
            w.write(row, &mut out).unwrap();
            let (id, body) = unframe(&out).unwrap();
            assert_eq!(id, 7);
            d.push(body).unwrap();
        }
        d.take()
    }

    #[test]
    fn frames_round_trip_with_names_kept_and_types_mapped() {
        let batch = sample();
        let (text, renamed) = avro_schema_for(&batch.schema(), "t-value").unwrap();
        assert_eq!(
            renamed,
            vec![("Invoice No".to_owned(), "Invoice_No".to_owned())]
        );
        assert!(text.contains("\"timestamp-micros\""), "{text}");
        let back = round_trip(&batch);
        assert_eq!(back.schema().field(0).name(), "Invoice No");
        for (a, b) in back.columns().iter().zip(batch.columns()) {
            assert_eq!(a.as_ref(), b.as_ref());
        }
    }

    #[test]
    fn renamed_columns_are_reported_and_colliding_names_refused() {
        let schema = Schema::new(vec![
            Field::new("Unit Price", DataType::Float64, true),
            Field::new("1st", DataType::Int64, true),
            Field::new(
                "s",
                DataType::Struct(vec![Field::new("a-b", DataType::Utf8, true)].into()),
                true,
            ),
        ]);
        let (_, renamed) = avro_schema_for(&schema, "t-value").unwrap();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            renamed,
            pairs(&[
                ("Unit Price", "Unit_Price"),
                ("1st", "_1st"),
                ("s.a-b", "a_b")
            ])
        );
        let text = renamed_columns_warning(&renamed).unwrap();
        assert!(
            text.contains(r#""Unit Price" -> "Unit_Price", "1st" -> "_1st""#),
            "{text}"
        );
        assert!(
            text.contains("tskafka restores") && text.contains("schema="),
            "{text}"
        );
        assert_eq!(renamed_columns_warning(&[]), None);
        for (a, b) in [("a b", "a_b"), ("a-b", "a b")] {
            let schema = Schema::new(vec![
                Field::new(a, DataType::Int64, true),
                Field::new(b, DataType::Int64, true),
            ]);
            let err = avro_schema_for(&schema, "t").unwrap_err().to_string();
            assert!(
                err.contains(&format!("{a:?} and {b:?}")) && err.contains("\"a_b\""),
                "{err}"
            );
        }
    }

    #[test]
    fn nested_enum_decimal_and_map_types_decode() {
        let text = r#"{"type":"record","name":"R","fields":[
            {"name":"k","type":{"type":"enum","name":"K","symbols":["A","B"]}},
            {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"m","type":{"type":"map","values":["null","long"]}},
            {"name":"inner","type":["null",{"type":"record","name":"I","fields":[{"name":"x","type":"int"}]}]},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}
        ]}"#;
        let ty = AvroType::parse(text, &[]).unwrap();
        let mut d = Decoder::new(&ty).unwrap();
        let mut rec = Vec::new();
        write_long(1, &mut rec); // enum B
        write_bytes(&[0xfe, 0x0c], &mut rec); // -500 -> -5.00
        write_long(2, &mut rec);
        write_bytes(b"x", &mut rec);
        write_bytes(b"y", &mut rec);
        rec.push(0);
        write_long(1, &mut rec);
        write_bytes(b"k", &mut rec);
        write_long(1, &mut rec);
        write_long(42, &mut rec);
        rec.push(0);
        write_long(1, &mut rec); // inner present
        write_long(-7, &mut rec);
        write_long(1_000, &mut rec);
        d.push(&rec).unwrap();
        // A truncated record rolls back.
        assert!(d.push(&rec[..rec.len() - 3]).is_err());
        let mut null_inner = rec.clone();
        null_inner.truncate(rec.len() - 4);
        write_long(0, &mut null_inner);
        write_long(2_000, &mut null_inner);
        d.push(&null_inner).unwrap();
        let b = d.take();
        assert_eq!(b.num_rows(), 2);
        let dec = b.column(1).as_primitive::<Decimal128Type>();
        assert_eq!(dec.value(0), -500);
        assert_eq!(dec.scale(), 2);
        assert_eq!(b.column(2).as_list::<i32>().value(0).len(), 2);
        assert_eq!(b.column(4).null_count(), 1);
        assert_eq!(
            b.schema().field(5).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert!(matches!(
            b.column(0).data_type(),
            DataType::Dictionary(_, _)
        ));
        // Round trip through the writer with the same schema.
        let w = RowWriter::new(1, text, &b).unwrap();
        let mut out = Vec::new();
        w.write(0, &mut out).unwrap();
        assert_eq!(&out[5..], &rec[..]);
    }

    #[test]
    fn a_projection_parses_past_the_fields_left_out() {
        let text = r#"{"type":"record","name":"R","fields":[
            {"name":"k","type":{"type":"enum","name":"K","symbols":["A","B"]}},
            {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"m","type":{"type":"map","values":["null","long"]}},
            {"name":"inner","type":["null",{"type":"record","name":"I","fields":[{"name":"x","type":"int"}]}]},
            {"name":"f","type":{"type":"fixed","name":"F","size":3}},
            {"name":"ok","type":"boolean"},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}
        ]}"#;
        let record = |sized_blocks: bool, inner: bool| {
            let mut rec = Vec::new();
            write_long(1, &mut rec);
            write_bytes(&[0xfe, 0x0c], &mut rec);
            // Blocks may state their byte size (a negative count): jumped over.
            let mut tags = Vec::new();
            write_bytes(b"x", &mut tags);
            write_bytes(b"yz", &mut tags);
            if sized_blocks {
                write_long(-2, &mut rec);
                write_long(tags.len() as i64, &mut rec);
            } else {
                write_long(2, &mut rec);
            }
            rec.extend_from_slice(&tags);
            rec.push(0);
            write_long(2, &mut rec);
            write_bytes(b"k", &mut rec);
            write_long(1, &mut rec);
            write_long(42, &mut rec);
            write_bytes(b"n", &mut rec);
            write_long(0, &mut rec);
            rec.push(0);
            write_long(i64::from(inner), &mut rec);
            if inner {
                write_long(-7, &mut rec);
            }
            rec.extend_from_slice(b"abc");
            rec.push(1);
            write_long(1_000, &mut rec);
            rec
        };
        let records: Vec<Vec<u8>> = [(false, true), (true, false), (true, true)]
            .into_iter()
            .map(|(sized, inner)| record(sized, inner))
            .collect();
        let ty = AvroType::parse(text, &[]).unwrap();
        let decode = |projection: Option<&HashSet<String>>| {
            let mut d = Decoder::projected(&ty, projection).unwrap();
            for r in &records {
                d.push(r).unwrap();
            }
            // A truncated record is refused and rolls back, projected or not.
            assert!(d.push(&records[0][..records[0].len() - 1]).is_err());
            d.take()
        };
        let all = decode(None);
        assert_eq!(all.num_rows(), 3);
        let names = ["k", "d", "tags", "m", "inner", "f", "ok", "ts"];
        let mut subsets: Vec<Vec<&str>> = names.iter().map(|n| vec![*n]).collect();
        subsets.extend([
            vec![],
            vec!["tags", "ts"],
            vec!["k", "inner", "ok"],
            vec!["nope"],
        ]);
        for subset in subsets {
            let wanted: HashSet<String> = subset.iter().map(|s| s.to_string()).collect();
            let got = decode(Some(&wanted));
            let keep: Vec<usize> = (0..names.len())
                .filter(|&i| wanted.contains(names[i]))
                .collect();
            assert_eq!(got, all.project(&keep).unwrap(), "{subset:?}");
            assert_eq!(got.num_rows(), 3);
        }
    }

    #[test]
    fn bad_records_are_named_and_leave_the_columns_as_they_were() {
        let batch = sample();
        let (text, _) = avro_schema_for(&batch.schema(), "t").unwrap();
        let mut d = Decoder::new(&AvroType::parse(&text, &[]).unwrap()).unwrap();
        let w = RowWriter::new(1, &text, &batch).unwrap();
        let mut good = Vec::new();
        w.write(0, &mut good).unwrap();
        let body = &good[5..];
        d.push(body).unwrap();
        let mut extra = body.to_vec();
        extra.push(0);
        assert!(d.push(&extra).unwrap_err().contains("left over"));
        let mut bad_union = body.to_vec();
        bad_union[body[0] as usize / 2 + 1] = 0x09; // qty's union branch -> 5
        assert!(d.push(&bad_union).is_err());
        let mut not_utf8 = Vec::new();
        write_bytes(&[0xff], &mut not_utf8);
        assert!(d.push(&not_utf8).unwrap_err().contains("UTF-8"));
        d.push(body).unwrap();
        assert_eq!(d.take().num_rows(), 2);
    }

    #[test]
    fn runs_decoded_aside_keep_their_rows_and_bad_messages_in_order() {
        use crate::codec::confluent::OneSchema;
        use crate::codec::test_support::msg;
        use crate::codec::FormatHint;
        let n = 2 * RUN_MESSAGES + 100;
        let batch = RecordBatch::try_from_iter([
            (
                "n",
                Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
            ),
            (
                "s",
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("s{i}")),
                )),
            ),
        ])
        .unwrap();
        let (text, _) = avro_schema_for(&batch.schema(), "t-value").unwrap();
        let w = RowWriter::new(3, &text, &batch).unwrap();
        let mut b = FrameBuilder::new(FormatHint::Avro, false, None);
        b.set_schema_source(Some(Arc::new(OneSchema(text))));
        b.string_views = true;
        for row in 0..n {
            let mut out = Vec::new();
            w.write(row, &mut out).unwrap();
            match row {
                40_000 => *out.last_mut().unwrap() = 0xff, // not UTF-8
                50_000 => out[0] = 1,                      // not framed
                _ => {}
            }
            b.push(msg(&out, row as i64, None));
        }
        let frame = b.take_frame().unwrap().unwrap();
        assert!(frame.batches.len() >= 3, "a part per run");
        assert_eq!(frame.schema.field(1).data_type(), &DataType::Utf8View);
        let out = frame.concat().unwrap();
        assert_eq!(out.num_rows(), n - 2);
        let numbers = out.column(0).as_primitive::<Int64Type>();
        assert_eq!(
            numbers.values().iter().sum::<i64>(),
            (0..n as i64).sum::<i64>() - 90_000
        );
        assert_eq!(
            out.column(1).as_string_view().value(n - 3),
            format!("s{}", n - 1)
        );
        let bad = b.take_bad();
        assert_eq!(
            bad.iter().map(|m| m.offset).collect::<Vec<_>>(),
            [40_000, 50_000]
        );
        assert!(bad[0].error.contains("UTF-8"), "{}", bad[0].error);
        assert_eq!(b.rows(), 0);
    }

    #[test]
    fn columns_avro_cannot_carry_and_unions_are_refused_by_name() {
        let schema = Schema::new(vec![Field::new(
            "span",
            DataType::Duration(TimeUnit::Second),
            true,
        )]);
        let err = avro_schema_for(&schema, "t").unwrap_err().to_string();
        assert!(
            err.contains("\"span\"") && err.contains("Avro cannot carry"),
            "{err}"
        );
        let err = AvroType::parse(r#"["int","string"]"#, &[])
            .unwrap()
            .arrow_type()
            .unwrap_err();
        assert!(err.contains("union"), "{err}");
        assert!(AvroType::parse(
            r#"{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}"#,
            &[]
        )
        .unwrap_err()
        .contains("recursive"));
    }
}
