//! The decoders against malformed input: every file of `tests/fuzz_corpus`
//! (seeds and the crashers the fuzz targets in `fuzz/` found), then a fixed
//! series of mutations of valid messages. Nothing may panic, hang or
//! allocate without bound; a bad message is only ever a `BadMessage`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int64Array, ListArray, RecordBatch,
    StringArray, StringViewArray, TimestampMicrosecondArray,
};
use arrow_schema::DataType;

use super::csv::{CsvOptions, CsvReader, Encoding};
use super::{
    csv_line_options, EncodeOptions, Encoder, Format, FormatHint, FrameBuilder, JsonOrient,
    MessageRef, TextErrors, TextOptions, DECODER_PANICKED, KNOWN_ARROW_PANIC,
};

/// pandas' orients, as the `pandas_json` fuzz target picks them.
const ORIENTS: [JsonOrient; 7] = [
    JsonOrient::Auto,
    JsonOrient::Records,
    JsonOrient::Columns,
    JsonOrient::Index,
    JsonOrient::Split,
    JsonOrient::Values,
    JsonOrient::Table,
];

/// Panics the decoder's guard caught (the known arrow one only).
static CAUGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One input may take this long; a hang or a blow-up takes far longer.
const SLOW: Duration = Duration::from_secs(10);

/// Feeds messages through one builder as a consumer does; returns the
/// errors of the messages it refused.
fn decode(hint: FormatHint, metadata: bool, messages: &[(&[u8], Option<&[u8]>)]) -> Vec<String> {
    decode_with(
        hint,
        metadata,
        TextOptions::default(),
        JsonOrient::Auto,
        messages,
    )
}

/// [`decode`] with JSON read as laid out in pandas' `orient`.
fn decode_with_orient(
    hint: FormatHint,
    metadata: bool,
    orient: JsonOrient,
    messages: &[(&[u8], Option<&[u8]>)],
) -> Vec<String> {
    decode_with(hint, metadata, TextOptions::default(), orient, messages)
}

/// As [`decode`], with the options of the text and csv formats, and JSON
/// read as laid out in pandas' `orient`.
fn decode_with(
    hint: FormatHint,
    metadata: bool,
    text: TextOptions,
    orient: JsonOrient,
    messages: &[(&[u8], Option<&[u8]>)],
) -> Vec<String> {
    let mut b = FrameBuilder::new(hint, metadata, None).with_text_options(text);
    b.json_orient = orient;
    // Half the inputs as a Polars consumer reads them (text as string views).
    b.string_views = metadata;
    for (i, (payload, header)) in messages.iter().enumerate() {
        b.push(MessageRef {
            topic: "fuzz",
            partition: (i % 2) as i32,
            offset: i as i64,
            timestamp_ms: Some(i as i64),
            key: Some(b"k"),
            payload: Some(payload),
            schema_header: *header,
        });
    }
    while let Some(frame) = b.take_frame().unwrap_or_else(|e| {
        // Only a data column named as a metadata column may stop a frame.
        assert!(e.to_string().contains("metadata=False"), "{e}");
        b.reset();
        None
    }) {
        frame.concat().expect("a frame's batches share its schema");
        b.take_positions();
    }
    let errors: Vec<String> = b.take_bad().into_iter().map(|m| m.error).collect();
    for e in &errors {
        if e.contains(DECODER_PANICKED) {
            CAUGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // A panic caught by the decoder's guard is still a bug to fix, but
        // for one known in arrow that tskafka cannot check for beforehand.
        assert!(
            !e.contains(DECODER_PANICKED) || e.contains(KNOWN_ARROW_PANIC),
            "{e}"
        );
    }
    errors
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let sep = b"\n--\n";
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

/// One corpus file, read as its fuzz target reads it.
fn run_target(target: &str, data: &[u8]) {
    match target {
        "arrow_ipc" | "auto" => {
            let messages: Vec<_> = split(data).into_iter().map(|m| (m, None)).collect();
            let hint = if target == "auto" {
                FormatHint::Auto
            } else {
                FormatHint::Arrow
            };
            decode(hint, true, &messages);
        }
        "json" => {
            let mut parts = split(data);
            let header = (parts.len() > 1 && parts[0].starts_with(b"[[")).then(|| parts.remove(0));
            let messages: Vec<_> = parts.into_iter().map(|m| (m, header)).collect();
            decode(FormatHint::Json, false, &messages);
        }
        "csv" => read_csv(data),
        "text" | "csv_lines" => {
            let Some((&flags, rest)) = data.split_first() else {
                return;
            };
            let messages: Vec<_> = split(rest).into_iter().map(|m| (m, None)).collect();
            let (hint, metadata, text) = if target == "text" {
                let hint = if flags & 1 == 0 {
                    FormatHint::Text
                } else {
                    FormatHint::Raw
                };
                let errors = if flags & 2 == 0 {
                    TextErrors::Strict
                } else {
                    TextErrors::Replace
                };
                let text = TextOptions {
                    errors,
                    ..Default::default()
                };
                (hint, flags & 4 != 0, text)
            } else {
                let text = TextOptions {
                    csv: csv_line_options(flags),
                    ..Default::default()
                };
                (FormatHint::Csv, flags & 0x80 != 0, text)
            };
            decode_with(hint, metadata, text, JsonOrient::Auto, &messages);
        }
        "avro" => {
            let mut parts = split(data);
            if parts.len() > 1 {
                let schema = String::from_utf8_lossy(parts.remove(0)).into_owned();
                decode_avro(&schema, &parts);
            }
        }
        "pandas_json" => {
            let Some((&pick, rest)) = data.split_first() else {
                return;
            };
            let orient = ORIENTS[pick as usize % ORIENTS.len()];
            let messages: Vec<_> = split(rest).into_iter().map(|m| (m, None)).collect();
            decode_with_orient(FormatHint::Json, pick & 0x80 != 0, orient, &messages);
        }
        "records" => {
            crate::records::read_every_record(&bytes::Bytes::copy_from_slice(data));
        }
        other => panic!("no fuzz target {other}"),
    }
}

fn read_csv(data: &[u8]) {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let options = CsvOptions {
        encoding: [Encoding::Auto, Encoding::Utf8, Encoding::Latin1][(flags % 3) as usize],
        time_column: (flags & 4 != 0).then(|| "t".to_owned()),
        chunk_rows: 1 + (flags >> 4) as usize,
        skip_bad_rows: flags & 8 != 0,
        ..Default::default()
    };
    let input = Box::new(std::io::Cursor::new(text.to_vec()));
    let Ok(mut reader) = CsvReader::new("fuzz.csv".into(), input, options) else {
        return;
    };
    for _ in 0..10_000 {
        if !matches!(reader.next_batch(), Ok(Some(_))) {
            break;
        }
    }
}

fn corpus() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    let mut files = Vec::new();
    for target in std::fs::read_dir(&root).expect("tests/fuzz_corpus") {
        let target = target.unwrap().path();
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        for f in std::fs::read_dir(&target).unwrap() {
            files.push((name.clone(), f.unwrap().path()));
        }
    }
    files.sort();
    files
}

#[test]
fn every_corpus_file_decodes_or_is_refused() {
    let files = corpus();
    assert!(files.len() >= 20, "{} corpus files", files.len());
    for (target, path) in files {
        let data = std::fs::read(&path).unwrap();
        let started = Instant::now();
        run_target(&target, &data);
        assert!(
            started.elapsed() < SLOW,
            "{path:?} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_batch_cannot_claim_more_rows_than_its_body_could_hold() {
    use arrow_array::RecordBatchOptions;
    use arrow_schema::Schema;
    let options = RecordBatchOptions::new().with_row_count(Some(1 << 40));
    let empty = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &options);
    let stream = super::ipc_stream(&empty.unwrap()).unwrap();
    let errors = decode(FormatHint::Auto, true, &[(&stream, None)]);
    assert!(
        errors[0].contains("claims 1099511627776 rows"),
        "{errors:?}"
    );
}

#[test]
fn a_multibyte_character_where_a_zone_would_be_is_text() {
    let errors = decode(
        FormatHint::Auto,
        false,
        &[("{\"at\": \"2020-01-01T00:00:0\u{e9}\"}".as_bytes(), None)],
    );
    assert!(errors.is_empty(), "{errors:?}");
}

/// Valid messages as tskafka writes them: Arrow IPC of several types, JSON
/// rows and arrays with their schema header.
fn valid_messages() -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let long = "PARTY BUNTING — “Fête” ünïcødé ✓";
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "code",
            Arc::new(StringArray::from(vec![Some("85123A"), None, Some(long)])),
        ),
        (
            "view",
            Arc::new(StringViewArray::from(vec![Some(long), Some("x"), None])),
        ),
        (
            "qty",
            Arc::new(Int64Array::from(vec![Some(-3), None, Some(7)])),
        ),
        (
            "price",
            Arc::new(Float64Array::from(vec![Some(2.55), None, Some(0.1)])),
        ),
        (
            "ok",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        ),
        (
            "at",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_259_653_500_000_000), None, Some(0)])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "dict",
            Arc::new(
                vec![Some("x"), None, Some("x")]
                    .into_iter()
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let list = RecordBatch::try_from_iter([(
        "l",
        Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            Some(vec![]),
        ])) as ArrayRef,
    )])
    .unwrap();
    let mut out = Vec::new();
    let mut encode =
        |batch: &RecordBatch, format: Format, rows_per_message: usize, schema_header: bool| {
            let json_ok = !matches!(batch.schema().field(0).data_type(), DataType::List(_));
            if format == Format::Json && !json_ok {
                return;
            }
            let enc = Encoder::new(
                batch.schema(),
                EncodeOptions {
                    format,
                    rows_per_message,
                    schema_header,
                    ..Default::default()
                },
            )
            .unwrap();
            let header = enc.json_schema_header().map(<[u8]>::to_vec);
            enc.encode(batch, &mut |m| {
                out.push((m.payload.to_vec(), header.clone()));
                Ok(())
            })
            .unwrap();
        };
    for b in [&batch, &list] {
        encode(b, Format::Arrow, 2, false);
        encode(b, Format::Json, 1, false);
        encode(b, Format::Json, 1, true);
        encode(b, Format::Json, 3, true);
    }
    out.push((
        br#"{"x": 1, "at": "2020-01-01T00:00:00+01:00", "n": {"a": [1]}}"#.to_vec(),
        None,
    ));
    out.push((br#"[{"x": 2.5, "s": "a"}, {"x": null}]"#.to_vec(), None));
    out
}

/// A fixed pseudo-random sequence (xorshift64*): the same inputs every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(8) {
        // flip a bit
        0 if len > 0 => {
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        // an interesting byte
        1 if len > 0 => {
            let at = rng.below(len);
            data[at] = [0, 0xff, 0x7f, 0x80, b'{', b'"', b'[', b'\\'][rng.below(8)];
        }
        // cut the message short
        2 => data.truncate(rng.below(len + 1)),
        // a length or offset field: a little-endian i32 set to an edge value
        3 if len >= 4 => {
            let at = rng.below(len - 3) & !3;
            let old = i32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            let new = [
                0,
                -1,
                1,
                i32::MAX,
                i32::MIN,
                old.wrapping_add(8),
                old.wrapping_sub(8),
                old.wrapping_mul(2),
            ][rng.below(8)];
            data[at..at + 4].copy_from_slice(&new.to_le_bytes());
        }
        // the same for an i64 (body lengths, buffer offsets, row counts)
        4 if len >= 8 => {
            let at = rng.below(len - 7) & !7;
            let new = [0, -1, i64::MAX, 1 << 40, 1 << 20][rng.below(5)];
            data[at..at + 8].copy_from_slice(&new.to_le_bytes());
        }
        // splice in part of another message
        5 if !other.is_empty() => {
            let from = rng.below(other.len());
            let to = from + rng.below(other.len() - from + 1);
            let at = rng.below(len + 1);
            data.splice(at..at, other[from..to].iter().copied());
        }
        // repeat a range
        6 if len > 0 => {
            let from = rng.below(len);
            let to = (from + rng.below(64)).min(len);
            let piece = data[from..to].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, piece);
        }
        // drop a range
        _ if len > 0 => {
            let from = rng.below(len);
            let to = (from + rng.below(32)).min(len);
            data.drain(from..to);
        }
        _ => data.push(rng.next() as u8),
    }
}

#[test]
fn mutated_messages_never_panic() {
    let seeds = valid_messages();
    assert!(seeds.len() >= 10, "{}", seeds.len());
    // The unmutated messages all decode.
    for (payload, header) in &seeds {
        let errors = decode(FormatHint::Auto, true, &[(payload, header.as_deref())]);
        assert!(errors.is_empty(), "{errors:?}");
    }
    let mut rng = Rng(0x7c5a_f00d_1234_5678);
    let (mut refused, mut slowest) = (0usize, Duration::ZERO);
    const INPUTS: usize = 50_000;
    for i in 0..INPUTS {
        let mut messages = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let (payload, header) = &seeds[rng.below(seeds.len())];
            let mut data = payload.clone();
            let other = &seeds[rng.below(seeds.len())].0;
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut data, other);
            }
            // Now and then the schema header is damaged too.
            let header = header.clone().map(|mut h| {
                if rng.below(8) == 0 {
                    mutate(&mut rng, &mut h, b"[[\"x\",\"Int64\"]]");
                }
                h
            });
            messages.push((data, header));
        }
        let refs: Vec<_> = messages
            .iter()
            .map(|(p, h)| (p.as_slice(), h.as_deref()))
            .collect();
        let hint = [FormatHint::Auto, FormatHint::Arrow, FormatHint::Json][i % 3];
        if let Some(dir) = std::env::var_os("TSKAFKA_FUZZ_DUMP") {
            // Keep this input, as its fuzz target reads it, to minimise a failure.
            let target = ["auto", "arrow_ipc", "json"][i % 3];
            let joined = refs
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>()
                .join(&b"\n--\n"[..]);
            let path = Path::new(&dir).join(format!("{target}-{i}"));
            std::fs::write(path, joined).unwrap();
        }
        let started = Instant::now();
        refused += decode(hint, i % 2 == 0, &refs).len();
        slowest = slowest.max(started.elapsed());
        assert!(slowest < SLOW, "input {i} took {slowest:?}");
    }
    // The mutations do reach the error paths.
    assert!(refused > INPUTS / 4, "{refused}");
    eprintln!(
        "{INPUTS} mutated inputs, {refused} messages refused, slowest {slowest:?}, \
         {} known arrow panics caught",
        CAUGHT.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Avro record bodies of `schema` framed with id 1 through one builder;
/// returns the errors of the records refused.
fn decode_avro(schema: &str, bodies: &[&[u8]]) -> Vec<String> {
    let mut b = FrameBuilder::new(FormatHint::Avro, true, None);
    b.set_schema_source(Some(Arc::new(super::confluent::OneSchema(
        schema.to_owned(),
    ))));
    for (i, body) in bodies.iter().enumerate() {
        let payload = [&[0u8, 0, 0, 0, 1][..], body].concat();
        b.push(MessageRef {
            topic: "fuzz",
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            key: None,
            payload: Some(&payload),
            schema_header: None,
        });
    }
    while let Some(frame) = b.take_frame().unwrap() {
        frame.concat().expect("a frame's batches share its schema");
        b.take_positions();
    }
    let errors: Vec<String> = b.take_bad().into_iter().map(|m| m.error).collect();
    for e in &errors {
        assert!(!e.contains(DECODER_PANICKED), "{e}");
    }
    errors
}

/// The Avro seed: a schema of every kind of type, and records of it.
fn avro_seed() -> (String, Vec<Vec<u8>>) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/avro/every_type");
    let data = std::fs::read(corpus).expect("the Avro seed");
    let mut parts = split(&data);
    let schema = String::from_utf8(parts.remove(0).to_vec()).unwrap();
    (schema, parts.into_iter().map(<[u8]>::to_vec).collect())
}

#[test]
fn mutated_avro_records_never_panic_and_good_ones_around_them_stay() {
    let (schema, records) = avro_seed();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    assert!(decode_avro(&schema, &refs).is_empty());
    let mut rng = Rng(0x0a7e_0b1d_5eed_0001);
    let mut refused = 0;
    for _ in 0..20_000 {
        let mut data = records[rng.below(records.len())].clone();
        let other = &records[rng.below(records.len())];
        for _ in 0..1 + rng.below(3) {
            mutate(&mut rng, &mut data, other);
        }
        let good = &records[0];
        let errors = decode_avro(&schema, &[good, &data, good]);
        refused += errors.len();
    }
    assert!(refused > 1_000, "only {refused} mutated records refused");
}

/// pandas' shapes of a few rows, each with the orient it is read with.
fn pandas_messages() -> Vec<(JsonOrient, Vec<u8>)> {
    let mut out = Vec::new();
    for orient in &ORIENTS[1..] {
        let msgs = super::test_support::collect(
            &super::test_support::sample(),
            EncodeOptions {
                format: Format::Json,
                rows_per_message: 3,
                json_orient: *orient,
                ..Default::default()
            },
        );
        out.extend(msgs.into_iter().map(|m| (*orient, m.payload)));
    }
    out.push((
        JsonOrient::Auto,
        br#"{"a": {"0": NaN, "1": 1.5}, "t": {"0": "2021-01-01 00:00:04", "1": null}}"#.to_vec(),
    ));
    out.push((
        JsonOrient::Index,
        br#"{"2021-01-01 00:00:04": 60.0}"#.to_vec(),
    ));
    out.push((
        JsonOrient::Auto,
        br#"{"2021-01-01 00:00:04": -Infinity}"#.to_vec(),
    ));
    out
}

#[test]
fn mutated_pandas_shapes_never_panic() {
    let seeds = pandas_messages();
    for (orient, payload) in &seeds {
        let errors = decode_with_orient(FormatHint::Json, false, *orient, &[(payload, None)]);
        let series_map = payload.starts_with(b"{\"2021") && *orient == JsonOrient::Auto;
        assert_eq!(errors.is_empty(), !series_map, "{orient:?} {errors:?}");
    }
    let mut rng = Rng(0x51ce_d00d_8765_4321);
    let mut refused = 0usize;
    const INPUTS: usize = 20_000;
    for i in 0..INPUTS {
        let (orient, payload) = &seeds[rng.below(seeds.len())];
        // Now and then read with another orient than the one written.
        let orient = match rng.below(4) {
            0 => ORIENTS[rng.below(ORIENTS.len())],
            _ => *orient,
        };
        let mut data = payload.clone();
        let other = &seeds[rng.below(seeds.len())].1;
        for _ in 0..1 + rng.below(4) {
            mutate(&mut rng, &mut data, other);
        }
        let started = Instant::now();
        refused += decode_with_orient(FormatHint::Json, i % 2 == 0, orient, &[(&data, None)]).len();
        assert!(started.elapsed() < SLOW, "input {i}");
    }
    assert!(refused > INPUTS / 4, "{refused}");
}
