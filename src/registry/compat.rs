//! Compatibility levels and the checks behind them.
//!
//! Avro: Avro's schema resolution (what Java's `SchemaCompatibility`
//! checks): can a reader with one schema read data written with another.
//! JSON Schema: a narrower check, "does every document the writer's schema
//! allows still pass the reader's", on what decides that in practice:
//! `type` (integer may widen to number), `enum` values, properties
//! (recursively), `required`, `additionalProperties: false` and array
//! `items`. Protobuf: stored and served, not checked.

use std::collections::HashSet;

use serde_json::Value;

use super::avro::{Field, Kind, Parsed, Schema};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::None,
        Level::Backward,
        Level::BackwardTransitive,
        Level::Forward,
        Level::ForwardTransitive,
        Level::Full,
        Level::FullTransitive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(text))
    }

    /// New schemas must read what old ones wrote.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    /// Old schemas must read what new ones write.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    /// Checked against every earlier version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }
}

/// Why a reader cannot read a writer's data; empty: it can.
pub fn avro_can_read(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    let mut check = Avro {
        reader,
        writer,
        assumed: HashSet::new(),
        problems: Vec::new(),
    };
    check.schema(&reader.root, &writer.root, "");
    check.problems
}

struct Avro<'a> {
    reader: &'a Parsed,
    writer: &'a Parsed,
    /// Record pairs being checked: a recursive type meeting itself again is
    /// assumed to match (its other fields decide).
    assumed: HashSet<(String, String)>,
    problems: Vec<String>,
}

fn type_name(schema: &Schema) -> String {
    match schema {
        Schema::Named(n) => n.clone(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn promotes(reader: &Schema, writer: &Schema) -> bool {
    use Schema::*;
    matches!(
        (reader, writer),
        (Long, Int)
            | (Float, Int | Long)
            | (Double, Int | Long | Float)
            | (String, Bytes)
            | (Bytes, String)
    )
}

impl Avro<'_> {
    fn fail(&mut self, path: &str, message: String) {
        let at = if path.is_empty() { "/" } else { path };
        self.problems.push(format!("{message} (at {at})"));
    }

    /// Whether `reader` reads `writer` with no problem, without recording any.
    fn fits(&mut self, reader: &Schema, writer: &Schema, path: &str) -> bool {
        let before = self.problems.len();
        self.schema(reader, writer, path);
        let fits = self.problems.len() == before;
        self.problems.truncate(before);
        fits
    }

    fn schema(&mut self, reader: &Schema, writer: &Schema, path: &str) {
        // Logical types do not change what can be read.
        match (reader.plain(), writer.plain()) {
            // Every branch the writer may have used must be readable.
            (_, Schema::Union(branches)) => {
                for b in branches {
                    self.schema(reader, b, path);
                }
            }
            (Schema::Union(branches), w) => {
                if !branches.iter().any(|b| self.fits(b, w, path)) {
                    self.fail(
                        path,
                        format!(
                            "MISSING_UNION_BRANCH: the reader's union has no branch for the \
                             writer's {}",
                            type_name(w)
                        ),
                    );
                }
            }
            (Schema::Array(r), Schema::Array(w)) => self.schema(r, w, &format!("{path}/items")),
            (Schema::Map(r), Schema::Map(w)) => self.schema(r, w, &format!("{path}/values")),
            (Schema::Named(r), Schema::Named(w)) => self.named(r, w, path),
            (r, w) if r == w || promotes(r, w) => {}
            (r, w) => self.fail(
                path,
                format!(
                    "TYPE_MISMATCH: the reader's type {} cannot read the writer's {}",
                    type_name(r),
                    type_name(w)
                ),
            ),
        }
    }

    fn named(&mut self, reader: &str, writer: &str, path: &str) {
        let (Some(r), Some(w)) = (self.reader.names.get(reader), self.writer.names.get(writer))
        else {
            return;
        };
        if r.simple_name() != w.simple_name() && !r.aliases.iter().any(|a| a == &w.name) {
            self.fail(
                path,
                format!(
                    "NAME_MISMATCH: the reader's type is named {:?}, the writer's {:?}",
                    r.name, w.name
                ),
            );
            return;
        }
        match (&r.kind, &w.kind) {
            (Kind::Record(rf), Kind::Record(wf)) => {
                if !self.assumed.insert((r.name.clone(), w.name.clone())) {
                    return;
                }
                self.record(rf, wf, path);
            }
            (
                Kind::Enum {
                    symbols: rs,
                    default,
                },
                Kind::Enum { symbols: ws, .. },
            ) => {
                let missing: Vec<&String> = ws.iter().filter(|s| !rs.contains(s)).collect();
                if !missing.is_empty() && default.is_none() {
                    self.fail(
                        &format!("{path}/symbols"),
                        format!(
                            "MISSING_ENUM_SYMBOLS: the reader's enum {:?} lacks {missing:?} and \
                             has no default",
                            r.name
                        ),
                    );
                }
            }
            (Kind::Fixed { size: rs, .. }, Kind::Fixed { size: ws, .. }) => {
                if rs != ws {
                    self.fail(
                        &format!("{path}/size"),
                        format!(
                            "FIXED_SIZE_MISMATCH: the reader's fixed {:?} has {rs} bytes, the \
                             writer's {ws}",
                            r.name
                        ),
                    );
                }
            }
            _ => self.fail(
                path,
                format!(
                    "TYPE_MISMATCH: the reader's {} is not the same kind of type as the \
                     writer's {}",
                    r.name, w.name
                ),
            ),
        }
    }

    fn record(&mut self, reader: &[Field], writer: &[Field], path: &str) {
        for (i, field) in reader.iter().enumerate() {
            let at = format!("{path}/fields/{i}");
            let found = writer
                .iter()
                .find(|w| w.name == field.name || field.aliases.iter().any(|a| a == &w.name));
            match found {
                Some(w) => self.schema(&field.schema, &w.schema, &format!("{at}/type")),
                None if field.default.is_some() => {}
                None => self.fail(
                    &at,
                    format!(
                        "READER_FIELD_MISSING_DEFAULT_VALUE: the field {:?} has no default \
                         value and is missing from the writer's schema",
                        field.name
                    ),
                ),
            }
        }
    }
}

/// Why a reader's JSON Schema may refuse a document the writer's allowed;
/// empty: none found (see the module's note on what is compared).
pub fn json_can_read(reader: &Value, writer: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    json(reader, writer, "#", &mut problems);
    problems
}

fn json_types(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn json(reader: &Value, writer: &Value, path: &str, problems: &mut Vec<String>) {
    if reader == writer || reader == &Value::Bool(true) {
        return;
    }
    if let (Some(rt), Some(wt)) = (json_types(reader), json_types(writer)) {
        let missing: Vec<&str> = wt
            .iter()
            .filter(|t| !(rt.contains(t) || (**t == "integer" && rt.contains(&"number"))))
            .copied()
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "TYPE_CHANGED at {path}: the reader does not accept type {missing:?}"
            ));
            return;
        }
    } else if json_types(reader).is_some() && json_types(writer).is_none() {
        problems.push(format!(
            "TYPE_NARROWED at {path}: the reader requires a type the writer left open"
        ));
        return;
    }
    if let Some(Value::Array(rv)) = reader.get("enum") {
        match writer.get("enum") {
            Some(Value::Array(wv)) => {
                let missing: Vec<&Value> = wv.iter().filter(|v| !rv.contains(v)).collect();
                if !missing.is_empty() {
                    problems.push(format!(
                        "ENUM_ARRAY_NARROWED at {path}: the reader does not accept {}",
                        Value::from(missing.into_iter().cloned().collect::<Vec<_>>())
                    ));
                }
            }
            _ => problems.push(format!(
                "ENUM_ARRAY_NARROWED at {path}: the reader accepts only listed values"
            )),
        }
    }
    let required = |s: &Value| -> Vec<String> {
        s.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let writer_required = required(writer);
    for name in required(reader) {
        if !writer_required.contains(&name) {
            problems.push(format!(
                "REQUIRED_PROPERTY_ADDED at {path}: the reader requires {name:?}, which the \
                 writer did not"
            ));
        }
    }
    let empty = serde_json::Map::new();
    let reader_props = reader
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let writer_props = writer
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, w) in writer_props {
        match reader_props.get(name) {
            Some(r) => json(r, w, &format!("{path}/properties/{name}"), problems),
            None if reader.get("additionalProperties") == Some(&Value::Bool(false)) => problems
                .push(format!(
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at {path}: the reader allows \
                     no property {name:?}"
                )),
            None => {}
        }
    }
    if reader.get("additionalProperties") == Some(&Value::Bool(false))
        && writer.get("additionalProperties") != Some(&Value::Bool(false))
        && writer_props.is_empty()
    {
        problems.push(format!(
            "ADDITIONAL_PROPERTIES_NARROWED at {path}: the reader allows no other properties"
        ));
    }
    if let (Some(r), Some(w)) = (reader.get("items"), writer.get("items")) {
        json(r, w, &format!("{path}/items"), problems);
    }
}

#[cfg(test)]
mod tests {
    use super::super::avro::parse;
    use super::*;

    fn can_read(reader: &str, writer: &str) -> Vec<String> {
        avro_can_read(&parse(reader, &[]).unwrap(), &parse(writer, &[]).unwrap())
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"shop.Sale","fields":[{fields}]}}"#)
    }

    #[test]
    fn an_added_field_needs_a_default_to_read_old_data() {
        let v1 = record(r#"{"name":"id","type":"long"}"#);
        let with_default =
            record(r#"{"name":"id","type":"long"},{"name":"qty","type":"int","default":1}"#);
        let without = record(r#"{"name":"id","type":"long"},{"name":"qty","type":"int"}"#);
        assert!(can_read(&with_default, &v1).is_empty());
        let problems = can_read(&without, &v1);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("READER_FIELD_MISSING_DEFAULT_VALUE"),
            "{problems:?}"
        );
        assert!(problems[0].contains("\"qty\"") && problems[0].contains("/fields/1"));
        // Old readers skip a field they do not know.
        assert!(can_read(&v1, &without).is_empty());
    }

    #[test]
    fn promotions_go_one_way() {
        for (reader, writer) in [
            ("long", "int"),
            ("float", "int"),
            ("double", "long"),
            ("double", "float"),
            ("bytes", "string"),
            ("string", "bytes"),
        ] {
            let r = format!(r#""{reader}""#);
            let w = format!(r#""{writer}""#);
            assert!(can_read(&r, &w).is_empty(), "{reader} reads {writer}");
        }
        for (reader, writer) in [("int", "long"), ("float", "double"), ("int", "string")] {
            let problems = can_read(&format!(r#""{reader}""#), &format!(r#""{writer}""#));
            assert!(problems[0].starts_with("TYPE_MISMATCH"), "{problems:?}");
        }
    }

    #[test]
    fn unions_enums_names_and_containers() {
        // A writer's union: every branch must be readable.
        assert!(can_read(r#"["null","long"]"#, r#"["null","int"]"#).is_empty());
        assert!(!can_read(r#"["null","int"]"#, r#"["null","string"]"#).is_empty());
        // A reader's union reads a plain writer type through a branch.
        assert!(can_read(r#"["null","string"]"#, r#""string""#).is_empty());
        assert!(!can_read(r#""string""#, r#"["null","string"]"#).is_empty());
        let e = |symbols: &str, extra: &str| {
            format!(r#"{{"type":"enum","name":"K","symbols":{symbols}{extra}}}"#)
        };
        assert!(can_read(&e(r#"["A","B","C"]"#, ""), &e(r#"["A","B"]"#, "")).is_empty());
        assert!(can_read(&e(r#"["A"]"#, ""), &e(r#"["A","B"]"#, ""))[0]
            .starts_with("MISSING_ENUM_SYMBOLS"));
        assert!(can_read(&e(r#"["A"]"#, r#","default":"A""#), &e(r#"["A","B"]"#, "")).is_empty());
        let named = |name: &str| format!(r#"{{"type":"record","name":"{name}","fields":[]}}"#);
        assert!(can_read(&named("a.R"), &named("b.R")).is_empty());
        assert!(can_read(&named("R"), &named("S"))[0].starts_with("NAME_MISMATCH"));
        assert!(can_read(
            r#"{"type":"record","name":"R","aliases":["S"],"fields":[]}"#,
            &named("S")
        )
        .is_empty());
        assert!(can_read(
            r#"{"type":"array","items":"long"}"#,
            r#"{"type":"array","items":"int"}"#
        )
        .is_empty());
        assert!(!can_read(
            r#"{"type":"map","values":"int"}"#,
            r#"{"type":"map","values":"long"}"#
        )
        .is_empty());
        assert!(!can_read(
            r#"{"type":"fixed","name":"F","size":4}"#,
            r#"{"type":"fixed","name":"F","size":8}"#
        )
        .is_empty());
        // A renamed field is found through the reader's alias.
        let old = record(r#"{"name":"qty","type":"int"}"#);
        let renamed = record(r#"{"name":"quantity","aliases":["qty"],"type":"int"}"#);
        assert!(can_read(&renamed, &old).is_empty());
    }

    #[test]
    fn logical_types_do_not_change_what_reads_what() {
        let millis = r#"{"type":"long","logicalType":"timestamp-millis"}"#;
        assert!(can_read(millis, r#""long""#).is_empty());
        assert!(can_read(r#""long""#, millis).is_empty());
        assert!(can_read(r#"["null","double"]"#, millis).is_empty());
        assert!(can_read(r#""int""#, millis)[0].starts_with("TYPE_MISMATCH"));
    }

    #[test]
    fn recursive_records_are_checked_once() {
        let list = |t: &str| {
            format!(
                r#"{{"type":"record","name":"Node","fields":[{{"name":"v","type":"{t}"}},{{"name":"next","type":["null","Node"]}}]}}"#
            )
        };
        assert!(can_read(&list("long"), &list("int")).is_empty());
        assert!(!can_read(&list("int"), &list("long")).is_empty());
    }

    #[test]
    fn levels() {
        assert_eq!(Level::parse("full_transitive"), Some(Level::FullTransitive));
        assert_eq!(Level::parse("sideways"), None);
        assert!(Level::Full.backward() && Level::Full.forward() && !Level::Full.transitive());
        assert!(!Level::None.backward() && !Level::None.forward());
    }

    #[test]
    fn json_schema_checks() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let old =
            v(r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#);
        let widened = v(
            r#"{"type":"object","properties":{"id":{"type":"number"},"note":{"type":"string"}},"required":["id"]}"#,
        );
        assert!(json_can_read(&widened, &old).is_empty());
        let narrowed = v(r#"{"type":"object","properties":{"id":{"type":"string"}}}"#);
        assert!(json_can_read(&narrowed, &old)[0].starts_with("TYPE_CHANGED"));
        let more_required = v(
            r#"{"type":"object","properties":{"id":{"type":"integer"},"n":{"type":"integer"}},"required":["id","n"]}"#,
        );
        assert!(json_can_read(&more_required, &old)[0].starts_with("REQUIRED_PROPERTY_ADDED"));
        let closed = v(r#"{"type":"object","properties":{},"additionalProperties":false}"#);
        assert!(json_can_read(&closed, &old)[0].starts_with("PROPERTY_REMOVED"));
    }
}
