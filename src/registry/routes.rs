//! The REST API: a request's method, path, query and body to a status and
//! a JSON body, as Confluent's registry answers them.

use serde_json::{json, Map, Value};

use super::compat::Level;
use super::store::{Mode, Registered, Registry, Schema, SchemaType, VersionSpec};
use super::ApiError;

/// What to send back: a status and a body (JSON text).
pub struct Reply {
    pub status: u16,
    pub body: String,
}

fn ok(value: Value) -> Result<Reply, ApiError> {
    Ok(Reply {
        status: 200,
        body: value.to_string(),
    })
}

/// The query's pairs, decoded.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(text: &str) -> Self {
        Query(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k, true), decode(v, true))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: `true` in any case (Python clients send `True`).
    fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Percent-decoding (and `+` as a space in queries).
pub fn decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn not_found() -> ApiError {
    ApiError::new(404, 404, "HTTP 404 Not Found".into())
}

fn method_not_allowed() -> ApiError {
    ApiError::new(405, 405, "HTTP 405 Method Not Allowed".into())
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            400,
            400,
            "the request needs a JSON body".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, 400, format!("the request body is not JSON: {e}")))
}

fn registered(r: &Registered) -> Value {
    let mut out = Map::new();
    out.insert("subject".into(), r.subject.clone().into());
    out.insert("version".into(), r.version.into());
    out.insert("id".into(), r.id.into());
    r.schema.fields(&mut out);
    Value::Object(out)
}

fn schema_only(schema: &Schema) -> Value {
    let mut out = Map::new();
    schema.fields(&mut out);
    Value::Object(out)
}

/// The schema's own text as the body (`.../schema` endpoints).
fn raw(schema: &Schema) -> Result<Reply, ApiError> {
    let body = match schema.schema_type {
        // Avro and JSON schemas are JSON already; Protobuf is sent as a JSON string.
        SchemaType::Protobuf => Value::String(schema.text.clone()).to_string(),
        _ => schema.text.clone(),
    };
    Ok(Reply { status: 200, body })
}

fn id(text: &str) -> Result<i32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(404, 40403, format!("Schema {text} not found")))
}

fn level_from(body: &Value) -> Result<Level, ApiError> {
    let text = body
        .get("compatibility")
        .or_else(|| body.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Level::parse(text).ok_or_else(|| {
        ApiError::new(
            422,
            42203,
            format!(
                "Invalid compatibility level {text:?}. Valid values are none, backward, \
                 forward, full, backward_transitive, forward_transitive, and full_transitive"
            ),
        )
    })
}

/// Answers one request; `path` is still percent-encoded.
pub fn route(
    registry: &Registry,
    method: &str,
    path: &str,
    query: &Query,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| decode(s, false))
        .collect();
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let deleted = query.flag("deleted");
    match (method, parts.as_slice()) {
        ("GET", []) => ok(json!({})),
        ("GET", ["schemas", "types"]) => ok(json!(SchemaType::ALL
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>())),
        ("GET", ["schemas", "ids", n]) => ok(schema_only(&registry.schema(id(n)?)?)),
        ("GET", ["schemas", "ids", n, "schema"]) => raw(&registry.schema(id(n)?)?),
        ("GET", ["schemas", "ids", n, "versions"]) => {
            let pairs = registry.versions_of(id(n)?, deleted)?;
            ok(Value::Array(
                pairs
                    .into_iter()
                    .map(|(subject, version)| json!({"subject": subject, "version": version}))
                    .collect(),
            ))
        }
        ("GET", ["schemas", "ids", n, "subjects"]) => {
            let mut subjects: Vec<String> = registry
                .versions_of(id(n)?, deleted)?
                .into_iter()
                .map(|(s, _)| s)
                .collect();
            subjects.dedup();
            ok(json!(subjects))
        }
        ("GET", ["subjects"]) => ok(json!(registry.subjects(
            query.get("subjectPrefix").unwrap_or(""),
            deleted,
            query.flag("deleted_only"),
        ))),
        ("GET", ["subjects", s, "versions"]) => ok(json!(registry.versions(
            s,
            deleted,
            query.flag("deleted_only")
        )?)),
        ("POST", ["subjects", s, "versions"]) => {
            let schema = Schema::from_json(&json_body(body)?)?;
            let r = registry.register(s, schema, query.flag("normalize"))?;
            ok(registered(&r))
        }
        ("GET", ["subjects", s, "versions", v]) => ok(registered(&registry.version(
            s,
            VersionSpec::parse(v)?,
            deleted,
        )?)),
        ("GET", ["subjects", s, "versions", v, "schema"]) => {
            raw(&registry.version(s, VersionSpec::parse(v)?, deleted)?.schema)
        }
        ("GET", ["subjects", s, "versions", v, "referencedby"]) => {
            ok(json!(registry.referenced_by(s, VersionSpec::parse(v)?)?))
        }
        ("DELETE", ["subjects", s, "versions", v]) => ok(json!(registry.delete_version(
            s,
            VersionSpec::parse(v)?,
            query.flag("permanent")
        )?)),
        ("POST", ["subjects", s]) => {
            let schema = Schema::from_json(&json_body(body)?)?;
            ok(registered(&registry.lookup(s, &schema, deleted)?))
        }
        ("DELETE", ["subjects", s]) => {
            ok(json!(registry.delete_subject(s, query.flag("permanent"))?))
        }
        ("GET", ["config"]) => {
            ok(json!({"compatibilityLevel": registry.compatibility(None, true)?.name()}))
        }
        ("GET", ["config", s]) => ok(json!({
            "compatibilityLevel": registry.compatibility(Some(s), query.flag("defaultToGlobal"))?.name()
        })),
        ("PUT", ["config"]) => {
            let level = level_from(&json_body(body)?)?;
            registry.set_compatibility(None, level)?;
            ok(json!({"compatibility": level.name()}))
        }
        ("PUT", ["config", s]) => {
            let level = level_from(&json_body(body)?)?;
            registry.set_compatibility(Some(s), level)?;
            ok(json!({"compatibility": level.name()}))
        }
        ("DELETE", ["config"]) => {
            ok(json!({"compatibilityLevel": registry.delete_compatibility(None)?.name()}))
        }
        ("DELETE", ["config", s]) => {
            ok(json!({"compatibilityLevel": registry.delete_compatibility(Some(s))?.name()}))
        }
        ("GET", ["mode"]) => ok(json!({"mode": registry.mode(None, true)?.name()})),
        ("GET", ["mode", s]) => ok(json!({
            "mode": registry.mode(Some(s), query.flag("defaultToGlobal"))?.name()
        })),
        ("PUT", ["mode"]) | ("PUT", ["mode", _]) => {
            let body = json_body(body)?;
            let mode = Mode::parse(body.get("mode").and_then(Value::as_str).unwrap_or(""))?;
            registry.set_mode(parts.get(1).copied(), mode)?;
            ok(json!({"mode": mode.name()}))
        }
        ("DELETE", ["mode", s]) => ok(json!({"mode": registry.delete_mode(Some(s))?.name()})),
        ("POST", ["compatibility", "subjects", s, "versions", rest @ ..]) if rest.len() <= 1 => {
            let schema = Schema::from_json(&json_body(body)?)?;
            let version = rest.first().map(|v| VersionSpec::parse(v)).transpose()?;
            let problems = registry.test_compatibility(s, &schema, version)?;
            let mut out = json!({"is_compatible": problems.is_empty()});
            if query.flag("verbose") {
                out["messages"] = json!(problems);
            }
            ok(out)
        }
        ("GET", ["contexts"]) => ok(json!(["."])),
        (
            _,
            []
            | ["schemas", ..]
            | ["subjects", ..]
            | ["config", ..]
            | ["mode", ..]
            | ["compatibility", ..]
            | ["contexts"],
        ) if known_path(&parts) => Err(method_not_allowed()),
        _ => Err(not_found()),
    }
}

/// Whether some method answers this path (so a wrong method is a 405).
fn known_path(parts: &[&str]) -> bool {
    matches!(
        parts,
        [] | ["schemas", "types"]
            | ["schemas", "ids", _]
            | ["schemas", "ids", _, "schema" | "versions" | "subjects"]
            | ["subjects"]
            | ["subjects", _]
            | ["subjects", _, "versions"]
            | ["subjects", _, "versions", _]
            | ["subjects", _, "versions", _, "schema" | "referencedby"]
            | ["config"]
            | ["config", _]
            | ["mode"]
            | ["mode", _]
            | ["compatibility", "subjects", _, "versions"]
            | ["compatibility", "subjects", _, "versions", _]
            | ["contexts"]
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::MemoryLog;
    use super::*;

    fn call(r: &Registry, method: &str, target: &str, body: &str) -> (u16, Value) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let reply =
            route(r, method, path, &Query::parse(query), body.as_bytes()).unwrap_or_else(|e| {
                Reply {
                    status: e.status,
                    body: e.body(),
                }
            });
        (reply.status, serde_json::from_str(&reply.body).unwrap())
    }

    #[test]
    fn the_api_answers_as_confluents_does() {
        let r = Registry::open(Arc::new(MemoryLog::default())).unwrap();
        let schema = json!({"schema": r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#});
        let (status, body) = call(
            &r,
            "POST",
            "/subjects/a%2Fb-value/versions?normalize=False",
            &schema.to_string(),
        );
        assert_eq!(
            (status, &body["id"], &body["version"]),
            (200, &json!(1), &json!(1))
        );
        assert_eq!(call(&r, "GET", "/subjects", "").1, json!(["a/b-value"]));
        let (_, by_id) = call(&r, "GET", "/schemas/ids/1", "");
        assert!(by_id["schema"].as_str().unwrap().contains("\"R\""));
        assert!(by_id.get("schemaType").is_none());
        assert_eq!(
            call(&r, "GET", "/schemas/ids/1/versions", "").1,
            json!([{"subject": "a/b-value", "version": 1}])
        );
        let (_, raw) = call(
            &r,
            "GET",
            "/subjects/a%2Fb-value/versions/latest/schema",
            "",
        );
        assert_eq!(raw["name"], "R");
        let (status, body) = call(&r, "GET", "/subjects/nope/versions", "");
        assert_eq!((status, body["error_code"].clone()), (404, json!(40401)));
        assert_eq!(
            call(&r, "GET", "/subjects/a%2Fb-value/versions/7", "").1["error_code"],
            40402
        );
        assert_eq!(
            call(&r, "GET", "/subjects/a%2Fb-value/versions/x", "").1["error_code"],
            42202
        );
        assert_eq!(
            call(&r, "GET", "/schemas/ids/99", "").1["error_code"],
            40403
        );
        assert_eq!(
            call(&r, "POST", "/subjects/s/versions", r#"{"schema": "{"}"#).1["error_code"],
            42201
        );
        assert_eq!(
            call(&r, "GET", "/config", "").1,
            json!({"compatibilityLevel": "BACKWARD"})
        );
        assert_eq!(
            call(&r, "PUT", "/config", r#"{"compatibility": "full"}"#).1,
            json!({"compatibility": "FULL"})
        );
        assert_eq!(
            call(&r, "PUT", "/config", r#"{"compatibility": "most"}"#).1["error_code"],
            42203
        );
        assert_eq!(
            call(&r, "GET", "/config/a%2Fb-value", "").1["error_code"],
            40408
        );
        assert_eq!(
            call(&r, "GET", "/config/a%2Fb-value?defaultToGlobal=true", "").1,
            json!({"compatibilityLevel": "FULL"})
        );
        let incompatible = json!({"schema": r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#});
        let (status, body) = call(
            &r,
            "POST",
            "/subjects/a%2Fb-value/versions",
            &incompatible.to_string(),
        );
        assert_eq!((status, body["error_code"].clone()), (409, json!(409)));
        let (_, test) = call(
            &r,
            "POST",
            "/compatibility/subjects/a%2Fb-value/versions/latest?verbose=true",
            &incompatible.to_string(),
        );
        assert_eq!(test["is_compatible"], false);
        assert!(test["messages"][0]
            .as_str()
            .unwrap()
            .contains("TYPE_MISMATCH"));
        let json_schema = json!({"schemaType": "JSON", "schema": r#"{"type": "object"}"#});
        let (_, body) = call(&r, "POST", "/subjects/j/versions", &json_schema.to_string());
        assert_eq!(
            call(&r, "GET", &format!("/schemas/ids/{}", body["id"]), "").1["schemaType"],
            "JSON"
        );
        assert_eq!(call(&r, "GET", "/mode", "").1, json!({"mode": "READWRITE"}));
        assert_eq!(call(&r, "PATCH", "/subjects", "").0, 405);
        assert_eq!(call(&r, "GET", "/nothing/here", "").0, 404);
        assert_eq!(
            call(&r, "GET", "/schemas/types", "").1,
            json!(["JSON", "PROTOBUF", "AVRO"])
        );
    }
}
