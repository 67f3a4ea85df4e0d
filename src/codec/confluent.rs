//! Confluent's Schema Registry wire format: a zero byte, the schema id
//! (4 bytes, big-endian), then the body (Avro binary or JSON). What a
//! decoder needs of a registry is a [`SchemaSource`]: the schema of an id.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::frame::{FrameBuilder, MessageRef};
use crate::error::Error;

/// The first byte of every framed message.
pub const MAGIC: u8 = 0;
/// Magic byte and schema id.
pub const HEADER_LEN: usize = 5;

/// The schema id and body of a framed payload, if it is framed.
pub fn unframe(payload: &[u8]) -> Option<(u32, &[u8])> {
    if payload.len() < HEADER_LEN || payload[0] != MAGIC {
        return None;
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Some((id, &payload[HEADER_LEN..]))
}

/// Appends the frame header of schema `id` to `out`.
pub fn frame_header(id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
}

/// What a registered schema is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    /// From the registry's `schemaType` (absent: Avro).
    pub fn from_registry(name: Option<&str>) -> Self {
        match name.map(str::to_ascii_uppercase).as_deref() {
            Some("JSON") => SchemaType::Json,
            Some("PROTOBUF") => SchemaType::Protobuf,
            _ => SchemaType::Avro,
        }
    }

    pub fn registry_name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

/// A schema as the registry holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisteredSchema {
    pub id: u32,
    pub schema_type: SchemaType,
    pub text: String,
    /// The texts of the schemas it references, in order.
    pub references: Vec<String>,
}

/// Why the schema of an id could not be had.
#[derive(Debug)]
pub enum FetchError {
    /// The registry has no schema of this id: this message alone is unreadable.
    Unknown(String),
    /// The registry cannot be asked (down, refusing credentials, timing
    /// out): no framed message can be read until it can.
    Unavailable(Error),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Unknown(m) => f.write_str(m),
            FetchError::Unavailable(e) => e.fmt(f),
        }
    }
}

/// A source of one schema (id 1 and every other): tests and fuzz targets.
pub struct OneSchema(pub String);

impl SchemaSource for OneSchema {
    fn schema(&self, id: u32) -> Result<Arc<RegisteredSchema>, FetchError> {
        Ok(Arc::new(RegisteredSchema {
            id,
            schema_type: SchemaType::Avro,
            text: self.0.clone(),
            references: Vec::new(),
        }))
    }
}

/// What a frame builder keeps of the registry.
#[derive(Default)]
pub(super) struct RegistryState {
    pub(super) source: Option<Arc<dyn SchemaSource>>,
    /// The `tskafka.schema`-style column types of each JSON Schema id
    /// (None: inferred from the rows).
    pub(super) json_headers: HashMap<u32, Option<Vec<u8>>>,
    /// A registry that cannot be asked: the read ends with this error.
    pub(super) unavailable: Option<Error>,
    /// Keys are framed Avro, shown as text (`key_format='avro'`).
    pub(super) avro_keys: bool,
    /// The key decoder of each schema id (None: the id cannot be read).
    key_decoders: HashMap<u32, Option<super::avro::Decoder>>,
}

/// `e` with the message it stopped at added to what it says.
fn naming(e: Error, at: &str) -> Error {
    e.map_message(|m| format!("{m} (reading {at})"))
}

impl FrameBuilder {
    /// Framed messages' schemas come from `source` (a registry client).
    pub fn set_schema_source(&mut self, source: Option<Arc<dyn SchemaSource>>) {
        self.registry.source = source;
    }

    /// Keys in the Schema Registry framing are decoded (Avro) and shown as
    /// text: a string key as itself, others as JSON.
    pub fn set_avro_keys(&mut self, on: bool) {
        self.registry.avro_keys = on;
    }

    /// A message key as the `kafka_key` column shows it.
    pub(super) fn key_text(&mut self, key: &[u8]) -> String {
        let lossy = || String::from_utf8_lossy(key).into_owned();
        let (true, Some(source), Some((id, body))) = (
            self.registry.avro_keys,
            self.registry.source.clone(),
            unframe(key),
        ) else {
            return lossy();
        };
        let decoder = self.registry.key_decoders.entry(id).or_insert_with(|| {
            source
                .schema(id)
                .ok()
                .filter(|s| s.schema_type == SchemaType::Avro)
                .and_then(|s| super::avro::decoder_for(&s).ok())
        });
        match decoder {
            Some(d) => super::avro::key_text(d, body).unwrap_or_else(lossy),
            None => lossy(),
        }
    }

    pub fn has_schema_source(&self) -> bool {
        self.registry.source.is_some()
    }

    /// The error of a registry that could not be asked, once: the message
    /// it stopped at and those after it are read again later.
    pub fn take_unavailable(&mut self) -> Option<Error> {
        self.registry.unavailable.take()
    }

    /// The schema of `id` for message `m`; None if the message was refused
    /// (an unknown id) or the registry cannot be asked.
    pub(super) fn registered_schema(
        &mut self,
        m: &MessageRef<'_>,
        id: u32,
    ) -> Option<Arc<RegisteredSchema>> {
        let Some(source) = self.registry.source.clone() else {
            self.reject(
                m,
                format!(
                    "a Schema Registry message (schema id {id}) but no registry: add                      'schema.registry.url' to the config"
                ),
            );
            return None;
        };
        match source.schema(id) {
            Ok(s) => Some(s),
            Err(FetchError::Unknown(why)) => {
                self.reject(m, why);
                None
            }
            Err(FetchError::Unavailable(e)) => {
                if self.registry.unavailable.is_none() {
                    let at = format!("{}[{}]@{}, schema id {id}", m.topic, m.partition, m.offset);
                    self.registry.unavailable = Some(naming(e, &at));
                }
                None
            }
        }
    }

    /// A framed message whose format the registry tells (format='auto').
    pub(super) fn push_framed(&mut self, m: &MessageRef<'_>, payload: &[u8]) {
        let Some((id, _)) = unframe(payload) else {
            return;
        };
        let Some(schema) = self.registered_schema(m, id) else {
            return;
        };
        match schema.schema_type {
            SchemaType::Avro => self.push_avro(m, payload),
            SchemaType::Json => self.push_json_schema(m, payload),
            SchemaType::Protobuf => self.reject(
                m,
                format!("schema id {id} is a Protobuf schema, which tskafka does not read"),
            ),
        }
    }
}

/// Where decoders get the schema of an id (a registry client, cached).
pub trait SchemaSource: Send + Sync {
    fn schema(&self, id: u32) -> Result<Arc<RegisteredSchema>, FetchError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_short_or_unframed_payloads_are_not_framed() {
        let mut out = Vec::new();
        frame_header(0x0102_0304, &mut out);
        out.extend_from_slice(b"body");
        assert_eq!(unframe(&out), Some((0x0102_0304, &b"body"[..])));
        assert_eq!(unframe(&[0, 0, 0, 1]), None);
        assert_eq!(unframe(b"\x01\x00\x00\x00\x01x"), None);
        assert_eq!(unframe(&[0, 0, 0, 0, 7]), Some((7, &[][..])));
    }
}
