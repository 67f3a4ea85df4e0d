//! The codecs: Kafka message payloads <-> Arrow record batches, one file per
//! wire format, no pyo3.
//!
//! - Reading: a consumer pushes each message ([`MessageRef`]) into a
//!   [`FrameBuilder`] (`frame.rs`), which picks the format ([`FormatHint`],
//!   or per message from its first bytes), hands the payload to that
//!   format's decoder, and keeps the message's metadata, the positions to
//!   commit and the messages it could not decode ([`BadMessage`]).
//!   [`FrameBuilder::take_frame`] unions the parts into one [`Frame`].
//! - Sending: an [`Encoder`] (`encoder.rs`) cuts a batch into the rows of
//!   each message (key groups, `rows_per_message`, the size limit), takes
//!   the message timestamps from a column, and has the format write each
//!   payload ([`Format`]).
//! - Shared: `text.rs` (UTF-8 checks, string views), `time.rs` (epoch
//!   conversion with one overflow rule; datetimes written and detected).
//!
//! A format plugs in as a file of its own:
//! - decoding: a [`FormatHint`] variant and its spelling in `from_str`; a
//!   branch in [`FrameBuilder::push`] calling the format's
//!   `impl FrameBuilder` block in its file. A decoder that turns one payload
//!   into rows calls `self.meta(m, rows)` and `self.push_part(batch, ..)` (as
//!   `arrow_ipc.rs` `push_arrow`), or `self.reject(m, why)` for a message it
//!   cannot read; one that decodes many messages at once (as `json.rs`: one
//!   call of arrow's decoder per run of messages) holds them in a field of
//!   the builder and decodes them in `FrameBuilder::flush_pending`, called
//!   before a frame is taken. Decoders run inside `frame::guarded`, so a
//!   panic in a library is that message's error. A fuzz target in `fuzz/`
//!   and a case in `fuzz_tests.rs` per decoder.
//! - encoding: a [`Format`] variant and its spelling; a `Payloads` variant in
//!   `encoder.rs` that writes the payload of rows `start..start + len`.
//! - options that belong to the format (a delimiter, an orient) live in its
//!   own file, beside its reader and writer.

mod arrow_ipc;
pub mod avro;
pub mod confluent;
pub mod csv;
mod csv_lines;
mod encoder;
mod frame;
mod json;
pub mod json_schema;
mod pandas_json;
mod raw;
mod text;
pub mod time;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod test_support;

use std::str::FromStr;

use crate::error::{Error, Result};

pub use arrow_ipc::{ipc_stream, KNOWN_ARROW_PANIC};
pub use confluent::{FetchError, RegisteredSchema, SchemaSource, SchemaType};
pub use csv_lines::{csv_line_options, CsvLineOptions};
pub use encoder::{EncodeOptions, Encoder, Message, Sink};
pub use frame::{
    BadMessage, Frame, FrameBuilder, MessageRef, DECODER_PANICKED, HEADERS_COLUMN, METADATA_COLUMNS,
};
pub use json::{json_schema, schema_header, JSON_TYPES, SCHEMA_HEADER};
pub use pandas_json::JsonOrient;
pub use raw::{HeaderSource, TextErrors, TextOptions, RAW_COLUMNS};
pub use text::{batch_with_string_views, string_views};

/// The format of the messages read: detected per message, or stated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatHint {
    Auto,
    Arrow,
    Json,
    /// Key and value as bytes, with topic, partition, offset, timestamp, headers.
    Raw,
    /// As raw, key and value as UTF-8 text.
    Text,
    /// CSV lines, one or more per message.
    Csv,
    /// Avro in the Schema Registry framing.
    Avro,
    /// JSON in the Schema Registry framing.
    JsonSchema,
}

impl FromStr for FormatHint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(FormatHint::Auto),
            "arrow" | "ipc" | "arrow-ipc" => Ok(FormatHint::Arrow),
            "json" => Ok(FormatHint::Json),
            "raw" => Ok(FormatHint::Raw),
            "text" => Ok(FormatHint::Text),
            "csv" => Ok(FormatHint::Csv),
            "avro" => Ok(FormatHint::Avro),
            "json_schema" | "json-schema" => Ok(FormatHint::JsonSchema),
            other => Err(Error::Config(format!(
                "unknown format {other:?}: use 'auto' (detect per message), 'arrow', 'json', \
                 'csv' (CSV lines), 'text' (values as text), 'raw' (values as bytes), \
                 'avro' or 'json_schema' (Schema Registry framing)"
            ))),
        }
    }
}

/// The format of the messages sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Arrow,
    Json,
    /// Rows as CSV lines, no header.
    Csv,
    /// One column's values as UTF-8 text.
    Text,
    /// One binary or text column's values as they are.
    Raw,
    /// Avro in the Schema Registry framing, one record per message.
    Avro,
    /// JSON in the Schema Registry framing, one object per message.
    JsonSchema,
}

impl Format {
    /// Whether its messages carry a registered schema's id.
    pub fn uses_registry(self) -> bool {
        matches!(self, Format::Avro | Format::JsonSchema)
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "arrow" | "ipc" | "arrow-ipc" => Ok(Format::Arrow),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "text" => Ok(Format::Text),
            "raw" => Ok(Format::Raw),
            "avro" => Ok(Format::Avro),
            "json_schema" | "json-schema" => Ok(Format::JsonSchema),
            other => Err(Error::Config(format!(
                "unknown format {other:?}: use 'arrow' (Arrow IPC, the default), 'json', \
                 'csv' (rows as CSV lines), 'text' or 'raw' (one column as the value), \
                 'avro' or 'json_schema' (Schema Registry framing)"
            ))),
        }
    }
}
