//! What the codecs' tests share: sample frames, encoding them, messages to read.

use std::sync::Arc;

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::{EncodeOptions, Encoder, Format, MessageRef};

/// Rows of the common types, with nulls and a NaN; "code" repeats (a key).
pub fn sample() -> RecordBatch {
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
pub struct Owned {
    pub payload: Vec<u8>,
    pub key: Option<Vec<u8>>,
    pub timestamp_ms: Option<i64>,
    pub rows: usize,
}

pub fn collect(batch: &RecordBatch, options: EncodeOptions) -> Vec<Owned> {
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

/// Rows that read back exactly as sent, in either format.
pub fn round_trip_sample() -> RecordBatch {
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

pub fn encode(batch: &RecordBatch, format: Format) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
    encode_with(batch, format, true)
}

pub fn encode_with(
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

pub fn msg<'a>(payload: &'a [u8], offset: i64, header: Option<&'a [u8]>) -> MessageRef<'a> {
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
