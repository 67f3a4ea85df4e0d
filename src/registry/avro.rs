//! Avro schemas parsed and checked (names, types, defaults): the one
//! parser of Avro schema JSON, for the registry (compatibility checks, and
//! schemas written back two ways) and for the Avro codec (the tree with its
//! logical types and field attributes becomes the decoder's `AvroType`).
//! The spec's Parsing Canonical Form drops docs, defaults and logical
//! types; the normalized form keeps them (they change what a reader does)
//! and only fixes names, key order and whitespace: it decides whether two
//! registrations are the same schema.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// A parsed schema: a tree whose named types point into `names`.
#[derive(Clone, Debug, PartialEq)]
pub enum Schema {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(Box<Schema>),
    Map(Box<Schema>),
    Union(Vec<Schema>),
    /// A record, enum or fixed, by full name.
    Named(String),
    /// A primitive with a `logicalType`: what a reader makes of its values.
    /// Schema resolution and the canonical form look through it.
    Logical(Box<Schema>, Logical),
}

/// A `logicalType` and the attributes that qualify it, as written: a
/// reader ignores one it does not know or that does not fit its type.
#[derive(Clone, Debug, PartialEq)]
pub struct Logical {
    pub name: String,
    pub precision: Option<u64>,
    pub scale: Option<u64>,
}

impl Logical {
    fn of(map: &Map<String, Value>) -> Option<Self> {
        Some(Self {
            name: map.get("logicalType")?.as_str()?.to_owned(),
            precision: map.get("precision").and_then(Value::as_u64),
            scale: map.get("scale").and_then(Value::as_u64),
        })
    }
}

impl Schema {
    /// The type without its logical type.
    pub fn plain(&self) -> &Schema {
        match self {
            Schema::Logical(base, _) => base,
            other => other,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub aliases: Vec<String>,
    pub schema: Schema,
    pub default: Option<Value>,
    /// Its attributes other than the spec's own (as `arrow.name`).
    pub attributes: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Record(Vec<Field>),
    Enum {
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        size: u64,
        logical: Option<Logical>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    pub name: String,
    /// Full names.
    pub aliases: Vec<String>,
    pub kind: Kind,
}

impl Named {
    /// The name without its namespace.
    pub fn simple_name(&self) -> &str {
        self.name.rsplit('.').next().unwrap_or(&self.name)
    }
}

/// A schema and the named types it (and the schemas it references) defines.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub root: Schema,
    pub names: HashMap<String, Named>,
    normalized: Value,
    /// Full names defined by referenced schemas (written by name, never inline).
    referenced: HashSet<String>,
}

fn primitive(name: &str) -> Option<Schema> {
    Some(match name {
        "null" => Schema::Null,
        "boolean" => Schema::Boolean,
        "int" => Schema::Int,
        "long" => Schema::Long,
        "float" => Schema::Float,
        "double" => Schema::Double,
        "bytes" => Schema::Bytes,
        "string" => Schema::String,
        _ => return None,
    })
}

/// Parses `text`, after the schemas it references (their texts, in order:
/// each may use the named types of those before it).
pub fn parse(text: &str, references: &[String]) -> Result<Parsed, String> {
    let mut parser = Parser::default();
    for (i, reference) in references.iter().enumerate() {
        let value: Value = serde_json::from_str(reference)
            .map_err(|e| format!("referenced schema {} is not JSON: {e}", i + 1))?;
        parser
            .schema(&value, None)
            .map_err(|e| format!("referenced schema {}: {e}", i + 1))?;
    }
    let referenced: HashSet<String> = parser.names.keys().cloned().collect();
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
    let (root, normalized) = parser.schema(&value, None)?;
    Ok(Parsed {
        root,
        names: parser.names,
        normalized,
        referenced,
    })
}

#[derive(Default)]
struct Parser {
    names: HashMap<String, Named>,
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    let ok = name.split('.').all(|part| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {name:?} is not a valid Avro name ([A-Za-z_][A-Za-z0-9_]*, dotted for a \
             namespace)"
        ))
    }
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

fn namespace_of(full: &str) -> Option<&str> {
    full.rsplit_once('.').map(|(ns, _)| ns)
}

fn string_list(value: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{what} must be a list of strings, got {v}"))
            })
            .collect(),
        Some(other) => Err(format!("{what} must be a list of strings, got {other}")),
    }
}

/// The normalized form's key order: the canonical form's keys first, then
/// the rest alphabetically.
fn ordered(map: Map<String, Value>) -> Value {
    const FIRST: [&str; 7] = [
        "name", "type", "fields", "symbols", "items", "values", "size",
    ];
    let mut map = map;
    let mut out = Map::new();
    for key in FIRST {
        if let Some(v) = map.remove(key) {
            out.insert(key.to_owned(), v);
        }
    }
    let mut rest: Vec<(String, Value)> = map.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(rest);
    Value::Object(out)
}

impl Parser {
    fn lookup(&self, name: &str, namespace: Option<&str>) -> Option<String> {
        let qualified = full_name(name, namespace);
        if self.names.contains_key(&qualified) {
            return Some(qualified);
        }
        self.names.contains_key(name).then(|| name.to_owned())
    }

    /// The schema and its normalized JSON.
    fn schema(
        &mut self,
        value: &Value,
        namespace: Option<&str>,
    ) -> Result<(Schema, Value), String> {
        match value {
            Value::String(name) => {
                if let Some(p) = primitive(name) {
                    return Ok((p, Value::String(name.clone())));
                }
                let full = self.lookup(name, namespace).ok_or_else(|| {
                    format!("unknown type {name:?}: not a primitive, nor a type defined before")
                })?;
                Ok((Schema::Named(full.clone()), Value::String(full)))
            }
            Value::Array(branches) => self.union(branches, namespace),
            Value::Object(map) => self.complex(map, namespace),
            other => Err(format!(
                "a schema must be a type name, an object or a union (list), got {other}"
            )),
        }
    }

    fn union(
        &mut self,
        branches: &[Value],
        namespace: Option<&str>,
    ) -> Result<(Schema, Value), String> {
        let mut schemas = Vec::with_capacity(branches.len());
        let mut normalized = Vec::with_capacity(branches.len());
        let mut seen = HashSet::new();
        for branch in branches {
            let (schema, norm) = self.schema(branch, namespace)?;
            let key = match schema.plain() {
                Schema::Union(_) => return Err("a union cannot hold another union".into()),
                Schema::Named(name) => name.clone(),
                Schema::Array(_) => "array".into(),
                Schema::Map(_) => "map".into(),
                other => format!("{other:?}"),
            };
            if !seen.insert(key.clone()) {
                return Err(format!("a union holds {key} twice"));
            }
            schemas.push(schema);
            normalized.push(norm);
        }
        Ok((Schema::Union(schemas), Value::Array(normalized)))
    }

    fn complex(
        &mut self,
        map: &Map<String, Value>,
        namespace: Option<&str>,
    ) -> Result<(Schema, Value), String> {
        let Some(type_value) = map.get("type") else {
            return Err(format!(
                "a schema object needs a \"type\": {}",
                Value::Object(map.clone())
            ));
        };
        let type_name = match type_value {
            Value::String(t) => t.as_str(),
            // {"type": {...}} or {"type": [...]}: the inner schema, attributes dropped.
            nested => return self.schema(nested, namespace),
        };
        let mut out = map.clone();
        let schema = match type_name {
            "record" | "error" | "enum" | "fixed" => {
                return self.named(type_name, map, namespace);
            }
            "array" => {
                let items = map.get("items").ok_or("an array needs \"items\"")?;
                let (schema, norm) = self.schema(items, namespace)?;
                out.insert("items".into(), norm);
                Schema::Array(Box::new(schema))
            }
            "map" => {
                let values = map.get("values").ok_or("a map needs \"values\"")?;
                let (schema, norm) = self.schema(values, namespace)?;
                out.insert("values".into(), norm);
                Schema::Map(Box::new(schema))
            }
            name => {
                if let Some(p) = primitive(name) {
                    if map.len() == 1 {
                        return Ok((p, Value::String(name.to_owned())));
                    }
                    match Logical::of(map) {
                        Some(logical) => Schema::Logical(Box::new(p), logical),
                        None => p,
                    }
                } else {
                    let full = self.lookup(name, namespace).ok_or_else(|| {
                        format!("unknown type {name:?}: not a primitive, nor a type defined before")
                    })?;
                    out.insert("type".into(), Value::String(full.clone()));
                    Schema::Named(full)
                }
            }
        };
        Ok((schema, ordered(out)))
    }

    fn named(
        &mut self,
        type_name: &str,
        map: &Map<String, Value>,
        namespace: Option<&str>,
    ) -> Result<(Schema, Value), String> {
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a {type_name} needs a \"name\" (a string)"))?;
        let own_namespace = match map.get("namespace") {
            None | Some(Value::Null) => namespace,
            Some(Value::String(ns)) => Some(ns.as_str()),
            Some(other) => return Err(format!("a namespace must be a string, got {other}")),
        };
        let full = full_name(name, own_namespace);
        check_name(&full, &format!("{type_name} name"))?;
        if primitive(&full).is_some() {
            return Err(format!(
                "{full:?} is a primitive type and cannot be redefined"
            ));
        }
        if self.names.contains_key(&full) {
            return Err(format!("the type {full:?} is defined twice"));
        }
        let inner_namespace = namespace_of(&full).map(str::to_owned);
        let aliases = string_list(map.get("aliases"), "aliases")?
            .iter()
            .map(|a| full_name(a, inner_namespace.as_deref()))
            .collect();
        let mut out = map.clone();
        out.remove("namespace");
        out.insert("name".into(), Value::String(full.clone()));
        let kind = match type_name {
            "enum" => {
                let symbols = string_list(map.get("symbols"), "enum symbols")?;
                let mut seen = HashSet::new();
                for s in &symbols {
                    check_name(s, "enum symbol")?;
                    if !seen.insert(s) {
                        return Err(format!("enum {full:?} lists the symbol {s:?} twice"));
                    }
                }
                if !map.contains_key("symbols") {
                    return Err(format!("enum {full:?} needs \"symbols\""));
                }
                let default = match map.get("default") {
                    None => None,
                    Some(Value::String(d)) if symbols.contains(d) => Some(d.clone()),
                    Some(d) => {
                        return Err(format!(
                            "enum {full:?}'s default {d} is not one of its symbols"
                        ))
                    }
                };
                Kind::Enum { symbols, default }
            }
            "fixed" => {
                let size = map
                    .get("size")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("fixed {full:?} needs a \"size\" (a whole number)"))?;
                Kind::Fixed {
                    size,
                    logical: Logical::of(map),
                }
            }
            _ => {
                // Defined before its fields, so that they can refer to it.
                self.names.insert(
                    full.clone(),
                    Named {
                        name: full.clone(),
                        aliases: Vec::new(),
                        kind: Kind::Record(Vec::new()),
                    },
                );
                let Some(Value::Array(fields)) = map.get("fields") else {
                    return Err(format!("record {full:?} needs \"fields\" (a list)"));
                };
                let mut parsed = Vec::with_capacity(fields.len());
                let mut normalized = Vec::with_capacity(fields.len());
                let mut seen = HashSet::new();
                for field in fields {
                    let (f, norm) = self.field(field, &full, inner_namespace.as_deref())?;
                    if !seen.insert(f.name.clone()) {
                        return Err(format!("record {full:?} has two fields named {:?}", f.name));
                    }
                    parsed.push(f);
                    normalized.push(norm);
                }
                out.insert("fields".into(), Value::Array(normalized));
                Kind::Record(parsed)
            }
        };
        self.names.insert(
            full.clone(),
            Named {
                name: full.clone(),
                aliases,
                kind,
            },
        );
        Ok((Schema::Named(full), ordered(out)))
    }

    fn field(
        &mut self,
        value: &Value,
        record: &str,
        namespace: Option<&str>,
    ) -> Result<(Field, Value), String> {
        let Value::Object(map) = value else {
            return Err(format!(
                "a field of {record:?} must be an object, got {value}"
            ));
        };
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a field of {record:?} needs a \"name\" (a string)"))?;
        check_name(name, "field name")?;
        let type_value = map
            .get("type")
            .ok_or_else(|| format!("field {record}.{name} needs a \"type\""))?;
        let (schema, norm) = self
            .schema(type_value, namespace)
            .map_err(|e| format!("field {record}.{name}: {e}"))?;
        let default = map.get("default").cloned();
        if let Some(d) = &default {
            if !self.valid_default(&schema, d) {
                return Err(format!(
                    "field {record}.{name}'s default {d} does not match its type {}",
                    serde_json::to_string(&norm).unwrap_or_default()
                ));
            }
        }
        let aliases = string_list(map.get("aliases"), "field aliases")?;
        const SPEC: [&str; 6] = ["name", "type", "doc", "default", "order", "aliases"];
        let attributes = map
            .iter()
            .filter(|(k, _)| !SPEC.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = map.clone();
        out.insert("type".into(), norm);
        Ok((
            Field {
                name: name.to_owned(),
                aliases,
                schema,
                default,
                attributes,
            },
            ordered(out),
        ))
    }

    fn valid_default(&self, schema: &Schema, value: &Value) -> bool {
        match schema {
            Schema::Null => value.is_null(),
            Schema::Boolean => value.is_boolean(),
            Schema::Int => value.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
            Schema::Long => value.is_i64() || value.is_u64(),
            // Java's Avro also takes "NaN" and "Infinity" for floats.
            Schema::Float | Schema::Double => {
                value.is_number()
                    || matches!(value.as_str(), Some("NaN" | "Infinity" | "-Infinity"))
            }
            Schema::Bytes | Schema::String => value.is_string(),
            Schema::Array(items) => value
                .as_array()
                .is_some_and(|a| a.iter().all(|v| self.valid_default(items, v))),
            Schema::Map(values) => value
                .as_object()
                .is_some_and(|m| m.values().all(|v| self.valid_default(values, v))),
            // The spec asks for the first branch; Java's Avro takes any.
            Schema::Union(branches) => branches.iter().any(|b| self.valid_default(b, value)),
            Schema::Named(name) => match self.names.get(name).map(|n| &n.kind) {
                Some(Kind::Enum { symbols, .. }) => value
                    .as_str()
                    .is_some_and(|s| symbols.iter().any(|x| x == s)),
                Some(Kind::Fixed { .. }) => value.is_string(),
                Some(Kind::Record(fields)) => value.as_object().is_some_and(|m| {
                    fields.iter().all(|f| match m.get(&f.name) {
                        Some(v) => self.valid_default(&f.schema, v),
                        None => f.default.is_some(),
                    })
                }),
                // A record's default naming itself, while its fields are parsed.
                None => true,
            },
            Schema::Logical(base, _) => self.valid_default(base, value),
        }
    }
}

impl Parsed {
    /// The normalized form: full names, `{"type": "int"}` as `"int"`, keys
    /// in a fixed order, no whitespace; docs, defaults, aliases, logical
    /// types and other attributes kept.
    pub fn normalized(&self) -> String {
        self.normalized.to_string()
    }

    /// The spec's Parsing Canonical Form (what Avro fingerprints hash).
    pub fn canonical_form(&self) -> String {
        let mut out = String::new();
        let mut written: HashSet<&str> = self.referenced.iter().map(String::as_str).collect();
        self.write_canonical(&self.root, &mut out, &mut written);
        out
    }

    fn write_canonical<'a>(
        &'a self,
        schema: &'a Schema,
        out: &mut String,
        written: &mut HashSet<&'a str>,
    ) {
        let quoted = |s: &str| Value::String(s.to_owned()).to_string();
        match schema {
            Schema::Null => out.push_str("\"null\""),
            Schema::Boolean => out.push_str("\"boolean\""),
            Schema::Int => out.push_str("\"int\""),
            Schema::Long => out.push_str("\"long\""),
            Schema::Float => out.push_str("\"float\""),
            Schema::Double => out.push_str("\"double\""),
            Schema::Bytes => out.push_str("\"bytes\""),
            Schema::String => out.push_str("\"string\""),
            Schema::Array(items) => {
                out.push_str("{\"type\":\"array\",\"items\":");
                self.write_canonical(items, out, written);
                out.push('}');
            }
            Schema::Map(values) => {
                out.push_str("{\"type\":\"map\",\"values\":");
                self.write_canonical(values, out, written);
                out.push('}');
            }
            Schema::Union(branches) => {
                out.push('[');
                for (i, b) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_canonical(b, out, written);
                }
                out.push(']');
            }
            Schema::Named(name) => {
                let Some(named) = self.names.get(name) else {
                    out.push_str(&quoted(name));
                    return;
                };
                if !written.insert(named.name.as_str()) {
                    out.push_str(&quoted(name));
                    return;
                }
                out.push_str("{\"name\":");
                out.push_str(&quoted(&named.name));
                match &named.kind {
                    Kind::Record(fields) => {
                        out.push_str(",\"type\":\"record\",\"fields\":[");
                        for (i, f) in fields.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            out.push_str("{\"name\":");
                            out.push_str(&quoted(&f.name));
                            out.push_str(",\"type\":");
                            self.write_canonical(&f.schema, out, written);
                            out.push('}');
                        }
                        out.push(']');
                    }
                    Kind::Enum { symbols, .. } => {
                        out.push_str(",\"type\":\"enum\",\"symbols\":");
                        out.push_str(&Value::from(symbols.clone()).to_string());
                    }
                    Kind::Fixed { size, .. } => {
                        out.push_str(&format!(",\"type\":\"fixed\",\"size\":{size}"));
                    }
                }
                out.push('}');
            }
            Schema::Logical(base, _) => self.write_canonical(base, out, written),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        parse(text, &[]).unwrap().canonical_form()
    }

    #[test]
    fn canonical_form_follows_the_spec() {
        assert_eq!(canonical(r#"{"type": "int"}"#), r#""int""#);
        assert_eq!(
            canonical(r#"{"type": "int", "logicalType": "date"}"#),
            r#""int""#
        );
        let text = r#"{
            "type": "record", "namespace": "shop", "name": "Sale", "doc": "one sale",
            "fields": [
                {"name": "id", "type": {"type": "long"}, "default": 0},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
                {"name": "again", "type": ["null", "Kind"], "default": null},
                {"name": "tags", "type": {"values": "string", "type": "map"}},
                {"name": "hash", "type": {"type": "fixed", "size": 16, "name": "other.Md5"}}
            ]
        }"#;
        assert_eq!(
            canonical(text),
            r#"{"name":"shop.Sale","type":"record","fields":[{"name":"id","type":"long"},{"name":"at","type":"long"},{"name":"kind","type":{"name":"shop.Kind","type":"enum","symbols":["A","B"]}},{"name":"again","type":["null","shop.Kind"]},{"name":"tags","type":{"type":"map","values":"string"}},{"name":"hash","type":{"name":"other.Md5","type":"fixed","size":16}}]}"#
        );
    }

    #[test]
    fn the_normalized_form_ignores_layout_but_keeps_defaults() {
        let a = r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"x","type":"int","default":1}]}"#;
        let b = r#"{ "fields": [ {"default": 1, "type": {"type": "int"}, "name": "x"} ],
                     "name": "n.R", "type": "record" }"#;
        let c = r#"{"type":"record","name":"R","namespace":"n","fields":[{"name":"x","type":"int","default":2}]}"#;
        let norm = |t| parse(t, &[]).unwrap().normalized();
        assert_eq!(norm(a), norm(b));
        assert_ne!(norm(a), norm(c));
        assert_eq!(
            norm(a),
            r#"{"name":"n.R","type":"record","fields":[{"name":"x","type":"int","default":1}]}"#
        );
    }

    #[test]
    fn invalid_schemas_are_refused_with_the_reason() {
        let err = |t: &str| parse(t, &[]).unwrap_err();
        assert!(err("{").contains("not JSON"));
        assert!(err(r#""Missing""#).contains("unknown type \"Missing\""));
        assert!(err(r#"{"type":"record","name":"R"}"#).contains("needs \"fields\""));
        assert!(err(r#"["int", "int"]"#).contains("twice"));
        assert!(err(
            r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int","default":"a"}]}"#
        )
        .contains("default"));
        assert!(err(r#"{"type":"enum","name":"E","symbols":["A","A"]}"#).contains("twice"));
        assert!(
            err(r#"{"type":"record","name":"1R","fields":[]}"#).contains("not a valid Avro name")
        );
        assert!(err(r#"{"type":"fixed","name":"F"}"#).contains("size"));
    }

    #[test]
    fn the_tree_keeps_logical_types_and_field_attributes() {
        let parsed = parse(
            r#"{"type":"record","name":"R","fields":[
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},
                 "doc":"when","arrow.name":"at time"},
                {"name":"m","type":{"type":"fixed","name":"M","size":8,
                 "logicalType":"decimal","precision":12,"scale":2}}]}"#,
            &[],
        )
        .unwrap();
        let Kind::Record(fields) = &parsed.names["R"].kind else {
            panic!("a record")
        };
        let logical = |name: &str, precision, scale| Logical {
            name: name.into(),
            precision,
            scale,
        };
        assert_eq!(
            fields[0].schema,
            Schema::Logical(
                Box::new(Schema::Long),
                logical("timestamp-millis", None, None)
            )
        );
        assert_eq!(fields[0].schema.plain(), &Schema::Long);
        assert_eq!(
            Value::Object(fields[0].attributes.clone()),
            serde_json::json!({"arrow.name": "at time"})
        );
        assert_eq!(
            parsed.names["M"].kind,
            Kind::Fixed {
                size: 8,
                logical: Some(logical("decimal", Some(12), Some(2)))
            }
        );
        // A logical type does not make another branch of a union.
        let twice = parse(
            r#"["long",{"type":"long","logicalType":"timestamp-millis"}]"#,
            &[],
        );
        assert!(twice.unwrap_err().contains("holds Long twice"));
    }

    #[test]
    fn references_define_names_the_schema_uses() {
        let address =
            r#"{"type":"record","name":"shop.Address","fields":[{"name":"city","type":"string"}]}"#;
        let order = r#"{"type":"record","name":"shop.Order","fields":[{"name":"to","type":"shop.Address"}]}"#;
        assert!(parse(order, &[]).is_err());
        let parsed = parse(order, &[address.to_owned()]).unwrap();
        assert_eq!(
            parsed.canonical_form(),
            r#"{"name":"shop.Order","type":"record","fields":[{"name":"to","type":"shop.Address"}]}"#
        );
        // Recursive types parse and write their name on the way back in.
        let list =
            r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#;
        assert_eq!(
            canonical(list),
            r#"{"name":"Node","type":"record","fields":[{"name":"next","type":["null","Node"]}]}"#
        );
    }
}
