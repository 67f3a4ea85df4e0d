//! `format="raw"` and `format="text"`: one row per message, its key and
//! value as bytes (raw) or UTF-8 text (text), beside its topic, partition,
//! offset, timestamp and headers. Each payload is copied once, straight
//! into the frame's value buffer; text is checked in place and handed out
//! over the same buffer. On the send side a binary or text column is the
//! value of each message.

use std::str::FromStr;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, Int32Builder, Int64Builder, StringBuilder,
};
use arrow_array::{
    ArrayRef, BinaryArray, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use super::csv_lines::CsvLineOptions;
use super::frame::{FrameBuilder, MessageRef};
use crate::error::{Error, Result};

/// What a byte that is not UTF-8 does in a text value (as Python's
/// `bytes.decode(errors=...)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextErrors {
    /// The message is a DecodeError.
    #[default]
    Strict,
    /// Each bad sequence becomes U+FFFD.
    Replace,
}

impl FromStr for TextErrors {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "strict" => Ok(TextErrors::Strict),
            "replace" => Ok(TextErrors::Replace),
            other => Err(Error::Config(format!(
                "errors must be 'strict' (a value that is not UTF-8 is a DecodeError) or \
                 'replace' (bad bytes become U+FFFD), got {other:?}"
            ))),
        }
    }
}

/// How the line formats (text, csv) read their messages.
#[derive(Clone, Debug, Default)]
pub struct TextOptions {
    pub errors: TextErrors,
    pub csv: CsvLineOptions,
}

/// A message's headers, however the client holds them.
pub trait HeaderSource {
    fn each(&self, f: &mut dyn FnMut(&str, Option<&[u8]>));
}

/// The columns of a raw or text frame, in order.
pub const RAW_COLUMNS: [&str; 7] = [
    "key",
    "value",
    "topic",
    "partition",
    "offset",
    "timestamp",
    "headers",
];

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// The type of a headers column: per row a list of `{key, value}`.
pub(super) fn headers_type() -> DataType {
    DataType::List(Arc::new(Field::new_struct("item", header_fields(), false)))
}

/// A headers column being built, one row at a time: the raw frame's
/// `headers` and the metadata column `kafka_headers`.
pub(super) struct HeadersBuilder {
    offsets: Vec<i32>,
    keys: StringBuilder,
    values: BinaryBuilder,
}

impl HeadersBuilder {
    pub(super) fn new() -> Self {
        Self {
            offsets: vec![0],
            keys: StringBuilder::new(),
            values: BinaryBuilder::new(),
        }
    }

    pub(super) fn append(&mut self, key: &str, value: Option<&[u8]>) {
        self.keys.append_value(key);
        match value {
            Some(v) => self.values.append_value(v),
            None => self.values.append_null(),
        }
    }

    /// Ends a row: the headers appended since the last row are its own.
    pub(super) fn end_row(&mut self) {
        self.offsets.push(self.keys.len() as i32);
    }

    pub(super) fn finish(mut self) -> Result<ListArray> {
        let pairs = StructArray::try_new(
            header_fields(),
            vec![Arc::new(self.keys.finish()), Arc::new(self.values.finish())],
            None,
        )?;
        Ok(ListArray::try_new(
            Arc::new(Field::new_struct("item", header_fields(), false)),
            OffsetBuffer::new(self.offsets.into()),
            Arc::new(pairs),
            None,
        )?)
    }
}

fn raw_schema(text: bool) -> SchemaRef {
    let bytes = if text {
        DataType::Utf8
    } else {
        DataType::Binary
    };
    Arc::new(Schema::new(vec![
        Field::new(RAW_COLUMNS[0], bytes.clone(), true),
        Field::new(RAW_COLUMNS[1], bytes, true),
        Field::new(RAW_COLUMNS[2], DataType::Utf8, false),
        Field::new(RAW_COLUMNS[3], DataType::Int32, false),
        Field::new(RAW_COLUMNS[4], DataType::Int64, false),
        Field::new(
            RAW_COLUMNS[5],
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new(RAW_COLUMNS[6], headers_type(), false),
    ]))
}

/// Messages read raw or as text, gathered column by column as they come.
pub(super) struct RawRun {
    key: BinaryBuilder,
    value: BinaryBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: Vec<Option<i64>>,
    headers: HeadersBuilder,
}

impl RawRun {
    fn new() -> Self {
        Self {
            key: BinaryBuilder::new(),
            value: BinaryBuilder::with_capacity(1024, 1 << 16),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: Vec::new(),
            headers: HeadersBuilder::new(),
        }
    }

    fn finish(mut self, text: bool) -> Result<RecordBatch> {
        let key = self.key.finish();
        let value = self.value.finish();
        let (key, value): (ArrayRef, ArrayRef) = if text {
            (Arc::new(checked_text(key)), Arc::new(checked_text(value)))
        } else {
            (Arc::new(key), Arc::new(value))
        };
        let headers = self.headers.finish()?;
        Ok(RecordBatch::try_new(
            raw_schema(text),
            vec![
                key,
                value,
                Arc::new(self.topic.finish()),
                Arc::new(self.partition.finish()),
                Arc::new(self.offset.finish()),
                Arc::new(TimestampMillisecondArray::from(self.timestamp).with_timezone("UTC")),
                Arc::new(headers),
            ],
        )?)
    }
}

/// Binary whose every value was checked (or made) UTF-8 when appended, as
/// text over the same buffers.
fn checked_text(binary: BinaryArray) -> StringArray {
    let (offsets, values, nulls) = binary.into_parts();
    // SAFETY: `push_raw` appends only valid UTF-8 to a text run, value by value.
    unsafe { StringArray::new_unchecked(offsets, values, nulls) }
}

/// Where the first byte that is not UTF-8 is, for a DecodeError.
fn utf8_error(what: &str, bytes: &[u8], e: std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    let bad: String = bytes[at..]
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "the {what} is not UTF-8 text (byte {at} of {} is 0x{bad}): read it with \
         format='raw' (bytes), pass errors='replace' (bad bytes become U+FFFD), or skip it \
         with on_error='skip'",
        bytes.len()
    )
}

impl FrameBuilder {
    /// One row: the message's key and value (text checked or replaced),
    /// topic, partition, offset, timestamp and headers. A tombstone is a
    /// row with a null value.
    pub(super) fn push_raw(&mut self, m: &MessageRef<'_>, headers: Option<&dyn HeaderSource>) {
        let text = self.hint == super::FormatHint::Text;
        if text && self.text.errors == TextErrors::Strict {
            for (what, bytes) in [("key", m.key), ("value", m.payload)] {
                if let Some(Err(e)) = bytes.map(std::str::from_utf8) {
                    let error = utf8_error(what, bytes.unwrap_or_default(), e);
                    self.reject(m, error);
                    return;
                }
            }
        }
        let run = self.raw.get_or_insert_with(RawRun::new);
        for (builder, bytes) in [(&mut run.key, m.key), (&mut run.value, m.payload)] {
            match bytes {
                None => builder.append_null(),
                Some(b) if text => match String::from_utf8_lossy(b) {
                    std::borrow::Cow::Borrowed(s) => builder.append_value(s),
                    std::borrow::Cow::Owned(s) => builder.append_value(s),
                },
                Some(b) => builder.append_value(b),
            }
        }
        run.topic.append_value(m.topic);
        run.partition.append_value(m.partition);
        run.offset.append_value(m.offset);
        run.timestamp.push(m.timestamp_ms);
        if let Some(h) = headers {
            h.each(&mut |k, v| run.headers.append(k, v));
        }
        run.headers.end_row();
        self.rows += 1;
    }

    pub(super) fn flush_raw(&mut self) {
        let Some(run) = self.raw.take() else {
            return;
        };
        let text = self.hint == super::FormatHint::Text;
        match run.finish(text) {
            Ok(batch) => self.add_part(batch, Vec::new()),
            // Only a bug could get here: every value was appended by its own rule.
            Err(e) => panic!("a raw frame could not be assembled: {e}"),
        }
    }
}

/// The value column of a raw or text send: `value_column`, or the only
/// column; raw wants bytes or text, text takes anything castable to text.
pub(super) fn value_index(
    schema: &Schema,
    value_column: Option<&str>,
    format: super::Format,
) -> Result<usize> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let spelled = format!("{format:?}").to_ascii_lowercase();
    let index = match value_column {
        Some(name) => schema.index_of(name).map_err(|_| {
            Error::Schema(format!(
                "value column {name:?} is not in the frame; its columns are {names:?}"
            ))
        })?,
        None if names.len() == 1 => 0,
        None => {
            return Err(Error::Schema(format!(
                "format='{spelled}' sends one column as each message's value: name it with \
                 value=... (the columns are {names:?}), or send every column with format='csv'"
            )))
        }
    };
    let field = schema.field(index);
    let bytes_or_text = matches!(
        field.data_type(),
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
    );
    if format == super::Format::Raw && !bytes_or_text {
        return Err(Error::Schema(format!(
            "value column {:?} has type {}; format='raw' sends bytes or text as they are: \
             cast it, or use format='text' (its values written as text)",
            field.name(),
            field.data_type()
        )));
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::FormatHint;
    use arrow_array::cast::AsArray;

    struct Pairs(Vec<(&'static str, Option<&'static [u8]>)>);
    impl HeaderSource for Pairs {
        fn each(&self, f: &mut dyn FnMut(&str, Option<&[u8]>)) {
            for (k, v) in &self.0 {
                f(k, *v);
            }
        }
    }

    fn message(
        offset: i64,
        key: Option<&'static [u8]>,
        value: Option<&'static [u8]>,
    ) -> MessageRef<'static> {
        MessageRef {
            topic: "t",
            partition: 2,
            offset,
            timestamp_ms: Some(1_000 + offset),
            key,
            payload: value,
            schema_header: None,
        }
    }

    #[test]
    fn raw_keeps_bytes_tombstones_and_headers() {
        let mut b = FrameBuilder::new(FormatHint::Raw, true, None);
        let h = Pairs(vec![("a", Some(b"1")), ("b", None)]);
        b.push_with_headers(message(0, Some(b"k\xff"), Some(b"\x00\x01")), Some(&h));
        b.push_with_headers(message(1, None, None), None);
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        let names: Vec<_> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, RAW_COLUMNS);
        assert_eq!(out.column(0).as_binary::<i32>().value(0), b"k\xff");
        assert_eq!(out.column(1).as_binary::<i32>().value(0), b"\x00\x01");
        assert!(out.column(1).is_null(1));
        assert_eq!(
            out.column(3)
                .as_primitive::<arrow_array::types::Int32Type>()
                .value(1),
            2
        );
        let headers = out.column(6).as_list::<i32>();
        assert_eq!(headers.value_length(0), 2);
        assert_eq!(headers.value_length(1), 0);
        assert_eq!(b.take_positions().get(&("t".to_owned(), 2)), Some(&2));
    }

    #[test]
    fn text_refuses_or_replaces_bad_bytes() {
        let mut b = FrameBuilder::new(FormatHint::Text, false, None);
        b.push(message(0, Some(b"key"), Some("21.5,caf\u{e9}".as_bytes())));
        b.push(message(1, None, Some(b"bad \xff byte")));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert_eq!(out.num_rows(), 1);
        assert_eq!(out.column(1).as_string::<i32>().value(0), "21.5,caf\u{e9}");
        let bad = b.take_bad();
        assert_eq!(bad[0].offset, 1);
        assert!(
            bad[0].error.contains("byte 4") && bad[0].error.contains("errors='replace'"),
            "{}",
            bad[0].error
        );
        let mut b = FrameBuilder::new(FormatHint::Text, false, None);
        b.text.errors = TextErrors::Replace;
        b.push(message(1, Some(b"\xfek"), Some(b"bad \xff byte")));
        let out = b.take_frame().unwrap().unwrap().concat().unwrap();
        assert_eq!(out.column(0).as_string::<i32>().value(0), "\u{fffd}k");
        assert_eq!(
            out.column(1).as_string::<i32>().value(0),
            "bad \u{fffd} byte"
        );
    }

    #[test]
    fn raw_and_text_sends_take_one_column() {
        use crate::codec::test_support::collect;
        use crate::codec::{EncodeOptions, Encoder, Format};
        use arrow_array::{BinaryArray, Int64Array};
        let batch = RecordBatch::try_from_iter([
            (
                "k",
                Arc::new(BinaryArray::from(vec![Some(&b"\xff\x00"[..]), None])) as ArrayRef,
            ),
            (
                "v",
                Arc::new(BinaryArray::from(vec![Some(&b"\x01"[..]), Some(&b""[..])])),
            ),
            ("n", Arc::new(Int64Array::from(vec![1, 2]))),
        ])
        .unwrap();
        let raw = |value: Option<&str>| EncodeOptions {
            format: Format::Raw,
            rows_per_message: 1,
            key_columns: vec!["k".into()],
            value_column: value.map(Into::into),
            ..Default::default()
        };
        let msgs = collect(&batch, raw(Some("v")));
        assert_eq!(msgs[0].payload, b"\x01");
        assert_eq!(msgs[0].key.as_deref(), Some(&b"\xff\x00"[..]));
        assert_eq!(
            (msgs[1].payload.as_slice(), msgs[1].key.as_deref()),
            (&b""[..], None)
        );
        let err = |options| {
            Encoder::new(batch.schema(), options)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(err(raw(None)).contains("value="), "{}", err(raw(None)));
        assert!(err(raw(Some("n"))).contains("format='text'"));
        let text = EncodeOptions {
            format: Format::Text,
            rows_per_message: 2,
            value_column: Some("n".into()),
            ..Default::default()
        };
        assert_eq!(collect(&batch, text)[0].payload, b"1\n2");
    }

    #[test]
    fn errors_spellings() {
        assert_eq!(
            "replace".parse::<TextErrors>().unwrap(),
            TextErrors::Replace
        );
        let err = "ignore".parse::<TextErrors>().unwrap_err().to_string();
        assert!(
            err.contains("'strict'") && err.contains("\"ignore\""),
            "{err}"
        );
    }
}
