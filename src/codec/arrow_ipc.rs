//! Arrow IPC: a stream per message, read with the checks arrow's own reader
//! leaves out (a malformed message is an error, never a panic) and with
//! text checked for UTF-8 while string views are made; written as plain
//! strings (views need Arrow 15+ to read).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_buffer::{Buffer, MutableBuffer};
use arrow_cast::cast;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{read_dictionary, RecordBatchDecoder};
use arrow_ipc::writer::StreamWriter;
use arrow_ipc::{root_as_message, MessageHeader};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use super::frame::{guarded, FrameBuilder, MessageRef};
use super::text::text_checked;
use crate::error::Result;

impl FrameBuilder {
    pub(super) fn push_arrow(&mut self, m: &MessageRef<'_>, payload: &[u8]) {
        let (views, projection) = (self.string_views, self.projection.as_ref());
        let read = || read_ipc_stream(payload, views, projection).map_err(|e| e.to_string());
        match guarded(read) {
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
}

/// The panic of arrow 60's IPC validation that no check before it rules
/// out: a buffer of 16- or 32-byte values (views, decimals, intervals) whose
/// length is not a multiple of that and cannot be padded inside the body.
/// Caught by [`guarded`].
pub const KNOWN_ARROW_PANIC: &str = "assertion failed: prefix.is_empty() && suffix.is_empty()";

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

/// The record batches of one Arrow IPC stream, each with the same batch
/// with string views for its text columns when `views` asks for them. As
/// arrow's StreamReader, but the payload is copied once (the arrays slice
/// that copy) and text is read as binary, its UTF-8 checked here: string
/// views buffer by buffer (arrow checks each view on its own, a fifth of
/// the consumer's decode time), plain strings in the pass making views.
/// Only the columns named in `projection` (None: all) are read; the
/// buffers of the others are skipped.
fn read_ipc_stream(
    payload: &[u8],
    views: bool,
    projection: Option<&HashSet<String>>,
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
    // (the stream's schema of the columns read, the schema read with string
    // views as binary views, the indexes of the columns read if not all)
    let mut schemas: Option<(SchemaRef, SchemaRef, Option<Vec<usize>>)> = None;
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
                let keep = projection
                    .map(|wanted| {
                        let fields = schema.fields().iter().enumerate();
                        let keep = fields.filter(|(_, f)| wanted.contains(f.name()));
                        keep.map(|(i, _)| i).collect::<Vec<_>>()
                    })
                    .filter(|keep| keep.len() < schema.fields().len());
                let schema = match &keep {
                    Some(keep) => Arc::new(schema.project(keep)?),
                    None => schema,
                };
                schemas = Some((schema, Arc::new(read_as), keep));
            }
            (MessageHeader::Schema, Some(_)) => {
                return Err(ArrowError::IpcError("a second schema in one stream".into()))
            }
            (MessageHeader::RecordBatch, Some((schema, read_as, keep))) => {
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
                .with_projection(keep.as_deref())
                .read_record_batch()?;
                check_row_count(batch.num_rows(), body_len)?;
                batches.push(text_checked(batch, schema)?);
            }
            (MessageHeader::DictionaryBatch, Some((_, read_as, _))) => {
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

// Writing: a batch as one IPC stream, text as plain strings.

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
pub(super) fn without_views(batch: &RecordBatch) -> RecordBatch {
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
pub(super) fn compact_views(batch: &RecordBatch) -> Result<RecordBatch> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_support::collect;
    use crate::codec::EncodeOptions;
    use arrow_array::{BinaryViewArray, Int64Array, StringArray, StringViewArray};
    use arrow_buffer::ScalarBuffer;

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
        let read = |stream: &[u8]| read_ipc_stream(stream, false, None).map(plain);
        let ours = read(&stream).unwrap();
        assert_eq!(
            read_ipc_stream(&stream, true, None).map(plain).unwrap(),
            ours
        );
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
        let read = |s: &[u8], views: bool| read_ipc_stream(s, views, None);
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
            let without = read_ipc_stream(&stream, false, None).map(plain);
            let with = read_ipc_stream(&stream, true, None).map(plain);
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
}
