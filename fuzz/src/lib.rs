//! tskafka's codecs (`src/codec/`) compiled on their own for fuzzing, with a
//! stand-in for the crate's error type.

#[path = "../../src/codec/mod.rs"]
pub mod codec;

/// Kafka record batches as a scan reads fetched ones.
#[path = "../../src/records.rs"]
pub mod records;

/// The registry's Avro parser, which the Avro codec parses schemas with
/// (an outer module: a path inside an inline module would be resolved
/// through a `src/registry/` directory this crate does not have). What
/// only the registry uses (its written forms) goes unused here.
#[path = "../../src/registry/avro.rs"]
#[allow(dead_code)]
mod registry_avro;

pub mod registry {
    pub(crate) use super::registry_avro as avro;
}

pub mod error {
    pub type Result<T, E = Error> = std::result::Result<T, E>;

    #[derive(Debug, thiserror::Error)]
    pub enum Error {
        #[error("{0}")]
        Config(String),
        #[error("cannot decode message at {topic}[{partition}]@{offset}: {reason}")]
        Decode {
            topic: String,
            partition: i32,
            offset: i64,
            reason: String,
            payload: Vec<u8>,
        },
        #[error("{0}")]
        Schema(String),
        #[error("{0}")]
        Timeout(String),
        #[error("{message}")]
        Kafka {
            message: String,
            code: String,
            retriable: bool,
            fatal: bool,
        },
    }

    impl Error {
        /// As the crate's own (src/error.rs).
        pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
            match self {
                Error::Config(m) => Error::Config(f(m)),
                Error::Timeout(m) => Error::Timeout(f(m)),
                Error::Schema(m) => Error::Schema(f(m)),
                Error::Kafka { message, code, retriable, fatal } => {
                    Error::Kafka { message: f(message), code, retriable, fatal }
                }
                other => other,
            }
        }
    }

    impl From<arrow_schema::ArrowError> for Error {
        fn from(err: arrow_schema::ArrowError) -> Self {
            Error::Schema(err.to_string())
        }
    }
}

use codec::{FormatHint, FrameBuilder, MessageRef, TextOptions};

/// Feeds `payloads` (with an optional schema header each) through one
/// FrameBuilder as consecutive messages and takes every frame out, as the
/// consumer does. Panics only if the decoder does.
pub fn decode_messages(hint: FormatHint, metadata: bool, payloads: &[(&[u8], Option<&[u8]>)]) {
    decode_messages_with(
        hint,
        metadata,
        TextOptions::default(),
        codec::JsonOrient::Auto,
        payloads,
    )
}

/// [`decode_messages`] with JSON read as laid out in pandas' `orient`.
pub fn decode_with_orient(
    hint: FormatHint,
    metadata: bool,
    orient: codec::JsonOrient,
    payloads: &[(&[u8], Option<&[u8]>)],
) {
    decode_messages_with(hint, metadata, TextOptions::default(), orient, payloads)
}

/// As [`decode_messages`], with the options of the text and csv formats,
/// and JSON read as laid out in pandas' `orient`.
pub fn decode_messages_with(
    hint: FormatHint,
    metadata: bool,
    text: TextOptions,
    orient: codec::JsonOrient,
    payloads: &[(&[u8], Option<&[u8]>)],
) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        // libfuzzer-sys aborts in its panic hook, before the decoder's guard
        // could catch anything: panics unwind again, and a panic that gets
        // out of the guard (or is not the known one) still ends the run.
        let _ = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| {
            if !info.to_string().contains(codec::KNOWN_ARROW_PANIC) {
                eprintln!("{info}");
            }
        }));
    });
    let mut b = FrameBuilder::new(hint, metadata, None).with_text_options(text);
    b.json_orient = orient;
    // Half the inputs as a Polars consumer reads them (text as string views).
    b.string_views = metadata;
    for (i, (payload, header)) in payloads.iter().enumerate() {
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
    while let Ok(Some(frame)) = b.take_frame() {
        let _ = frame.concat();
        let _ = b.take_positions();
    }
    for bad in b.take_bad() {
        // The decoder's guard caught a panic: a bug, unless it is the one
        // known in arrow that cannot be checked for beforehand.
        if bad.error.contains(codec::DECODER_PANICKED)
            && !bad.error.contains(codec::KNOWN_ARROW_PANIC)
        {
            panic!("{}", bad.error);
        }
    }
}

/// Avro records: the first part is the schema (JSON), the others are
/// record bodies, each sent framed with schema id 1.
pub fn decode_avro(data: &[u8]) {
    let mut parts = split_messages(data);
    if parts.len() < 2 {
        return;
    }
    let schema = String::from_utf8_lossy(parts.remove(0)).into_owned();
    let framed: Vec<Vec<u8>> = parts
        .iter()
        .map(|body| [&[0u8, 0, 0, 0, 1][..], body].concat())
        .collect();
    let mut b = FrameBuilder::new(FormatHint::Avro, true, None);
    b.set_schema_source(Some(std::sync::Arc::new(codec::confluent::OneSchema(schema))));
    for (i, payload) in framed.iter().enumerate() {
        b.push(MessageRef {
            topic: "fuzz",
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            key: None,
            payload: Some(payload),
            schema_header: None,
        });
    }
    while let Ok(Some(frame)) = b.take_frame() {
        let _ = frame.concat();
        let _ = b.take_positions();
    }
    for bad in b.take_bad() {
        assert!(!bad.error.contains(codec::DECODER_PANICKED), "{}", bad.error);
    }
}

/// pandas' orients, picked by a fuzz input's first byte.
pub const ORIENTS: [codec::JsonOrient; 7] = [
    codec::JsonOrient::Auto,
    codec::JsonOrient::Records,
    codec::JsonOrient::Columns,
    codec::JsonOrient::Index,
    codec::JsonOrient::Split,
    codec::JsonOrient::Values,
    codec::JsonOrient::Table,
];

/// Splits fuzz input into messages at `\n--\n`.
pub fn split_messages(data: &[u8]) -> Vec<&[u8]> {
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
