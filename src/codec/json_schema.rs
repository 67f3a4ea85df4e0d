//! JSON Schema in Confluent's framing: each message a zero byte, the schema
//! id and one JSON object. Read by the JSON codec, with the column types
//! taken from the registered schema; written as JSON rows under a schema
//! derived from the frame ([`json_schema_for`]).

use std::sync::Arc;

use arrow_schema::{DataType, Schema, TimeUnit};
use serde_json::{json, Map, Value};

use super::confluent::{unframe, SchemaType};
use super::frame::{FrameBuilder, MessageRef};
use super::json::json_type_supported;
use super::JSON_TYPES;
use crate::error::{Error, Result};

/// The keyword that keeps a column's exact Arrow type in the schema (JSON
/// Schema validators ignore keywords they do not know).
pub const ARROW_TYPE: &str = "arrow.type";

/// The JSON Schema of a frame's rows: an object with one property per
/// column; nullable columns also take null.
pub fn json_schema_for(schema: &Schema, title: &str) -> Result<String> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in schema.fields() {
        let dt = f.data_type();
        if !json_type_supported(dt) {
            return Err(Error::Schema(format!(
                "column {:?} has type {dt}, which the json_schema format cannot carry; \
                 supported: {JSON_TYPES}. Cast the column or use format='arrow'",
                f.name()
            )));
        }
        let (ty, format) = match dt {
            DataType::Null => ("null", None),
            DataType::Boolean => ("boolean", None),
            d if d.is_integer() => ("integer", None),
            d if d.is_floating() => ("number", None),
            DataType::Date32 | DataType::Date64 => ("string", Some("date")),
            DataType::Timestamp(_, _) => ("string", Some("date-time")),
            _ => ("string", None),
        };
        let mut p = Map::new();
        p.insert(
            "type".into(),
            if f.is_nullable() && ty != "null" {
                json!([ty, "null"])
            } else {
                json!(ty)
            },
        );
        if let Some(format) = format {
            p.insert("format".into(), json!(format));
        }
        p.insert(ARROW_TYPE.into(), json!(json_read_type(dt).to_string()));
        properties.insert(f.name().clone(), Value::Object(p));
        if !f.is_nullable() {
            required.push(f.name().clone());
        }
    }
    Ok(json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
    })
    .to_string())
}

/// The type a column is read back as (what the JSON codec writes it from).
fn json_read_type(dt: &DataType) -> DataType {
    match dt {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Dictionary(_, _) => DataType::Utf8,
        DataType::Date64 => DataType::Date32,
        other => other.clone(),
    }
}

/// The column types of a JSON Schema's rows, as a `tskafka.schema` header;
/// None when a property's type does not tell one column type (the rows'
/// types are then inferred).
pub fn header_from_json_schema(text: &str) -> Option<Vec<u8>> {
    let schema: Value = serde_json::from_str(text).ok()?;
    let properties = schema.get("properties")?.as_object()?;
    let mut pairs = Vec::new();
    for (name, p) in properties {
        let dt = match p.get(ARROW_TYPE).and_then(Value::as_str) {
            Some(t) => t.parse::<DataType>().ok()?,
            None => {
                let types: Vec<&str> = match p.get("type")? {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => return None,
                };
                let mut non_null = types.into_iter().filter(|t| *t != "null");
                let ty = non_null.next().unwrap_or("null");
                if non_null.next().is_some() {
                    return None;
                }
                match (ty, p.get("format").and_then(Value::as_str)) {
                    ("null", _) => DataType::Null,
                    ("boolean", _) => DataType::Boolean,
                    ("integer", _) => DataType::Int64,
                    ("number", _) => DataType::Float64,
                    ("string", Some("date-time")) => {
                        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
                    }
                    ("string", Some("date")) => DataType::Date32,
                    ("string", _) => DataType::Utf8,
                    _ => return None,
                }
            }
        };
        pairs.push((name.clone(), dt.to_string()));
    }
    serde_json::to_vec(&pairs).ok()
}

impl FrameBuilder {
    /// A Confluent-framed JSON message.
    pub(super) fn push_json_schema(&mut self, m: &MessageRef<'_>, payload: &[u8]) {
        let Some((id, body)) = unframe(payload) else {
            self.reject(
                m,
                "not in the Schema Registry framing (a zero byte, then a 4-byte schema id): \
                 read it with another format= or skip it with on_error='skip'"
                    .into(),
            );
            return;
        };
        let header = match self.registry.json_headers.get(&id) {
            Some(h) => h.clone(),
            None => {
                let Some(schema) = self.registered_schema(m, id) else {
                    return;
                };
                if schema.schema_type != SchemaType::Json {
                    self.reject(
                        m,
                        format!(
                            "schema id {id} is a {} schema, not JSON: read with format='avro'",
                            schema.schema_type.registry_name()
                        ),
                    );
                    return;
                }
                let h = header_from_json_schema(&schema.text);
                self.registry.json_headers.insert(id, h.clone());
                h
            }
        };
        let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
        let inner = MessageRef {
            payload: Some(body),
            schema_header: header.as_deref(),
            ..*m
        };
        self.push_json(&inner, body, first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;

    #[test]
    fn a_frames_schema_keeps_its_types_and_confluent_style_schemas_are_read() {
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int32, false),
            Field::new("x", DataType::Float64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("s", DataType::Utf8View, true),
        ]);
        let text = json_schema_for(&schema, "t-value").unwrap();
        let header: Vec<(String, String)> =
            serde_json::from_slice(&header_from_json_schema(&text).unwrap()).unwrap();
        assert_eq!(header[0], ("n".into(), "Int32".into()));
        assert_eq!(header[3], ("s".into(), "Utf8".into()));
        let confluent = r#"{"type":"object","properties":{
            "name":{"type":"string"},"qty":{"type":["integer","null"]},
            "price":{"type":"number"},"when":{"type":"string","format":"date-time"}}}"#;
        let header: Vec<(String, String)> =
            serde_json::from_slice(&header_from_json_schema(confluent).unwrap()).unwrap();
        assert_eq!(header[1], ("qty".into(), "Int64".into()));
        assert!(header[3].1.starts_with("Timestamp"), "{header:?}");
        let nested = r#"{"type":"object","properties":{"o":{"type":"object"}}}"#;
        assert_eq!(header_from_json_schema(nested), None);
        let bad = Schema::new(vec![Field::new(
            "d",
            DataType::Duration(TimeUnit::Second),
            true,
        )]);
        assert!(json_schema_for(&bad, "t")
            .unwrap_err()
            .to_string()
            .contains("\"d\""));
    }
}
