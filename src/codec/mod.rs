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
pub mod csv;
mod encoder;
mod frame;
mod json;
mod pandas_json;
mod text;
pub mod time;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod test_support;

use std::str::FromStr;

use crate::error::{Error, Result};

pub use arrow_ipc::{ipc_stream, KNOWN_ARROW_PANIC};
pub use encoder::{EncodeOptions, Encoder, Message, Sink};
pub use frame::{BadMessage, Frame, FrameBuilder, MessageRef, DECODER_PANICKED, METADATA_COLUMNS};
pub use json::{json_schema, schema_header, JSON_TYPES, SCHEMA_HEADER};
pub use pandas_json::JsonOrient;
pub use text::{batch_with_string_views, string_views};

/// The format of the messages read: detected per message, or stated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatHint {
    Auto,
    Arrow,
    Json,
}

impl FromStr for FormatHint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(FormatHint::Auto),
            "arrow" | "ipc" | "arrow-ipc" => Ok(FormatHint::Arrow),
            "json" => Ok(FormatHint::Json),
            other => Err(Error::Config(format!(
                "unknown format {other:?}: use 'auto' (detect per message), 'arrow' or 'json'"
            ))),
        }
    }
}

/// The format of the messages sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Arrow,
    Json,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "arrow" | "ipc" | "arrow-ipc" => Ok(Format::Arrow),
            "json" => Ok(Format::Json),
            other => Err(Error::Config(format!(
                "unknown format {other:?}: use 'arrow' (Arrow IPC, the default) or 'json'"
            ))),
        }
    }
}
