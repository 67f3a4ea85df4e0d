//! Subjects, versions, schema ids and configs, kept as Confluent's registry
//! keeps them: every change is one record in the `_schemas` log (keys and
//! values shaped like Confluent's), applied to the state in memory only
//! after the log took it; on start the log is read back through the same
//! `apply`. One lock orders all changes, so ids and versions never race.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{json, Value};

use super::avro;
use super::compat::{self, Level};
use super::{ApiError, SchemaLog};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaType {
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub const ALL: [SchemaType; 3] = [SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];

    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(text))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema as registered: its type, text and references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    pub schema_type: SchemaType,
    pub text: String,
    pub references: Vec<Reference>,
}

impl Schema {
    /// The fields Confluent's API shows for a schema (type and references
    /// only when they are not the defaults).
    pub fn fields(&self, out: &mut serde_json::Map<String, Value>) {
        if self.schema_type != SchemaType::Avro {
            out.insert("schemaType".into(), self.schema_type.name().into());
        }
        if !self.references.is_empty() {
            out.insert("references".into(), references_json(&self.references));
        }
        out.insert("schema".into(), self.text.clone().into());
    }

    /// The schema from a request or a stored record.
    pub fn from_json(body: &Value) -> Result<Self, ApiError> {
        let text = match body.get("schema") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ApiError::invalid_schema("Empty schema".into()))
            }
            Some(other) => {
                return Err(ApiError::invalid_schema(format!(
                    "\"schema\" must be the schema as a string, got {other}"
                )))
            }
        };
        let schema_type = match body.get("schemaType") {
            None | Some(Value::Null) => SchemaType::Avro,
            Some(Value::String(t)) => SchemaType::parse(t).ok_or_else(|| {
                ApiError::invalid_schema(format!(
                    "Invalid schema type {t:?}: expected AVRO, JSON or PROTOBUF"
                ))
            })?,
            Some(other) => {
                return Err(ApiError::invalid_schema(format!(
                    "\"schemaType\" must be a string, got {other}"
                )))
            }
        };
        let mut references = Vec::new();
        if let Some(Value::Array(items)) = body.get("references") {
            for item in items {
                let name = item.get("name").and_then(Value::as_str);
                let subject = item.get("subject").and_then(Value::as_str);
                let version = item.get("version").and_then(Value::as_i64);
                let (Some(name), Some(subject), Some(version)) = (name, subject, version) else {
                    return Err(ApiError::invalid_schema(format!(
                        "a reference needs \"name\", \"subject\" and \"version\", got {item}"
                    )));
                };
                references.push(Reference {
                    name: name.into(),
                    subject: subject.into(),
                    version: version as i32,
                });
            }
        }
        Ok(Self {
            schema_type,
            text,
            references,
        })
    }
}

fn references_json(references: &[Reference]) -> Value {
    Value::Array(
        references
            .iter()
            .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
            .collect(),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    ReadWrite,
    ReadOnly,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text.to_ascii_uppercase().as_str() {
            "READWRITE" => Ok(Mode::ReadWrite),
            "READONLY" => Ok(Mode::ReadOnly),
            _ => Err(ApiError::new(
                422,
                42204,
                format!("Invalid mode {text:?}: this registry supports READWRITE and READONLY"),
            )),
        }
    }
}

/// Which version a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "latest" | "-1" => Ok(VersionSpec::Latest),
            n => match n.parse::<i32>() {
                Ok(v) if v >= 1 => Ok(VersionSpec::Number(v)),
                _ => Err(ApiError::new(
                    422,
                    42202,
                    format!(
                        "The specified version '{text}' is not a valid version id. Allowed \
                         values are between [1, 2^31-1] and the string \"latest\""
                    ),
                )),
            },
        }
    }
}

#[derive(Clone, Copy)]
struct Version {
    id: i32,
    deleted: bool,
}

#[derive(Default)]
struct Subject {
    versions: BTreeMap<i32, Version>,
    compatibility: Option<Level>,
    mode: Option<Mode>,
}

impl Subject {
    fn live(&self) -> impl DoubleEndedIterator<Item = (i32, Version)> + '_ {
        self.versions
            .iter()
            .filter(|(_, v)| !v.deleted)
            .map(|(n, v)| (*n, *v))
    }

    fn find(&self, spec: VersionSpec, deleted: bool) -> Option<(i32, Version)> {
        match spec {
            VersionSpec::Latest if deleted => {
                self.versions.iter().next_back().map(|(n, v)| (*n, *v))
            }
            VersionSpec::Latest => self.live().next_back(),
            VersionSpec::Number(n) => self
                .versions
                .get(&n)
                .filter(|v| deleted || !v.deleted)
                .map(|v| (n, *v)),
        }
    }
}

#[derive(Default)]
struct State {
    subjects: BTreeMap<String, Subject>,
    schemas: BTreeMap<i32, Schema>,
    /// A schema's identity to its id: the same schema always gets the same id.
    ids: HashMap<String, i32>,
    compatibility: Option<Level>,
    mode: Option<Mode>,
}

/// A parsed schema, for the compatibility check.
enum Parsed {
    Avro(avro::Parsed),
    Json(Value),
    Protobuf,
}

/// A JSON value written with its object keys sorted, so that key order
/// does not make two schemas different.
fn sorted_json(value: &Value) -> String {
    fn sort(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sort(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(value).to_string()
}

impl State {
    fn subject(&self, name: &str) -> Result<&Subject, ApiError> {
        self.subjects
            .get(name)
            .filter(|s| !s.versions.is_empty())
            .ok_or_else(|| ApiError::subject_not_found(name))
    }

    /// The texts of the schemas `schema` references, deepest first.
    fn referenced_texts(
        &self,
        references: &[Reference],
        out: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 32 {
            return Err("references nest deeper than 32 levels (a cycle?)".into());
        }
        for r in references {
            let found = self
                .subjects
                .get(&r.subject)
                .and_then(|s| s.versions.get(&r.version))
                .and_then(|v| self.schemas.get(&v.id));
            let Some(stored) = found else {
                return Err(format!(
                    "the reference {:?} names subject {:?} version {}, which is not registered",
                    r.name, r.subject, r.version
                ));
            };
            self.referenced_texts(&stored.references, out, depth + 1)?;
            if !out.contains(&stored.text) {
                out.push(stored.text.clone());
            }
        }
        Ok(())
    }

    /// Parses `schema`; its identity (what decides that two registrations
    /// are the same schema) and its normalized text.
    fn parse(&self, schema: &Schema) -> Result<(Parsed, String, String), String> {
        let mut referenced = Vec::new();
        self.referenced_texts(&schema.references, &mut referenced, 0)?;
        let (parsed, normalized) = match schema.schema_type {
            SchemaType::Avro => {
                let parsed = avro::parse(&schema.text, &referenced)?;
                let normalized = parsed.normalized();
                (Parsed::Avro(parsed), normalized)
            }
            SchemaType::Json => {
                let value: Value = serde_json::from_str(&schema.text)
                    .map_err(|e| format!("the JSON schema is not JSON: {e}"))?;
                if !value.is_object() && !value.is_boolean() {
                    return Err(format!(
                        "a JSON schema must be an object or a boolean, got {value}"
                    ));
                }
                let normalized = sorted_json(&value);
                (Parsed::Json(value), normalized)
            }
            SchemaType::Protobuf => (Parsed::Protobuf, schema.text.trim().to_owned()),
        };
        let identity = format!(
            "{}\n{}\n{}",
            schema.schema_type.name(),
            normalized,
            references_json(&schema.references)
        );
        Ok((parsed, identity, normalized))
    }

    fn level(&self, subject: &str) -> Level {
        self.subjects
            .get(subject)
            .and_then(|s| s.compatibility)
            .or(self.compatibility)
            .unwrap_or(Level::Backward)
    }

    fn mode(&self, subject: &str) -> Mode {
        self.subjects
            .get(subject)
            .and_then(|s| s.mode)
            .or(self.mode)
            .unwrap_or(Mode::ReadWrite)
    }

    fn writable(&self, subject: &str) -> Result<(), ApiError> {
        match self.mode(subject) {
            Mode::ReadWrite => Ok(()),
            Mode::ReadOnly => Err(ApiError::new(
                422,
                42205,
                format!("Subject {subject} is in read-only mode"),
            )),
        }
    }

    /// Why `candidate` may not follow the subject's versions `against` under `level`.
    fn incompatibilities(
        &self,
        candidate: &(Schema, Parsed),
        against: &[i32],
        level: Level,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for id in against {
            let Some(stored) = self.schemas.get(id) else {
                continue;
            };
            if stored.schema_type != candidate.0.schema_type {
                problems.push(format!(
                    "SCHEMA_TYPE_CHANGED: version with id {id} is {}, the new schema {}",
                    stored.schema_type.name(),
                    candidate.0.schema_type.name()
                ));
                continue;
            }
            let Ok((old, _, _)) = self.parse(stored) else {
                continue;
            };
            let mut check = |reader: &Parsed, writer: &Parsed, who: &str| {
                let found = match (reader, writer) {
                    (Parsed::Avro(r), Parsed::Avro(w)) => compat::avro_can_read(r, w),
                    (Parsed::Json(r), Parsed::Json(w)) => compat::json_can_read(r, w),
                    _ => Vec::new(),
                };
                problems.extend(
                    found
                        .into_iter()
                        .map(|p| format!("{who} schema id {id}: {p}")),
                );
            };
            if level.backward() {
                check(
                    &candidate.1,
                    &old,
                    "the new schema cannot read data written with",
                );
            }
            if level.forward() {
                check(
                    &old,
                    &candidate.1,
                    "data written with the new schema cannot be read by",
                );
            }
        }
        problems
    }

    /// The ids a new version is checked against: the latest, or all.
    fn compared_ids(&self, subject: &str, level: Level) -> Vec<i32> {
        let Some(s) = self.subjects.get(subject) else {
            return Vec::new();
        };
        let live: Vec<i32> = s.live().map(|(_, v)| v.id).collect();
        if level.transitive() {
            live
        } else {
            live.last().copied().into_iter().collect()
        }
    }

    fn apply(&mut self, key: &Value, value: Option<&Value>) {
        let subject = key.get("subject").and_then(Value::as_str);
        match key.get("keytype").and_then(Value::as_str) {
            Some("SCHEMA") => {
                let (Some(subject), Some(version)) =
                    (subject, key.get("version").and_then(Value::as_i64))
                else {
                    return;
                };
                let version = version as i32;
                let Some(value) = value else {
                    // A tombstone: the version is gone for good.
                    if let Some(s) = self.subjects.get_mut(subject) {
                        s.versions.remove(&version);
                    }
                    return;
                };
                let (Some(id), Ok(schema)) = (
                    value.get("id").and_then(Value::as_i64),
                    Schema::from_json(value),
                ) else {
                    return;
                };
                let id = id as i32;
                let identity = match self.parse(&schema) {
                    Ok((_, identity, _)) => identity,
                    Err(_) => format!("{}\n{}", schema.schema_type.name(), schema.text),
                };
                self.ids.entry(identity).or_insert(id);
                self.schemas.entry(id).or_insert(schema);
                let deleted = value
                    .get("deleted")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                self.subjects
                    .entry(subject.to_owned())
                    .or_default()
                    .versions
                    .insert(version, Version { id, deleted });
            }
            Some("CONFIG") => {
                let level = value
                    .and_then(|v| v.get("compatibilityLevel"))
                    .and_then(Value::as_str)
                    .and_then(Level::parse);
                match subject {
                    None => self.compatibility = level,
                    Some(s) => self.subjects.entry(s.to_owned()).or_default().compatibility = level,
                }
            }
            Some("MODE") => {
                let mode = value
                    .and_then(|v| v.get("mode"))
                    .and_then(Value::as_str)
                    .and_then(|m| Mode::parse(m).ok());
                match subject {
                    None => self.mode = mode,
                    Some(s) => self.subjects.entry(s.to_owned()).or_default().mode = mode,
                }
            }
            _ => {}
        }
    }
}

fn schema_key(subject: &str, version: i32) -> Value {
    json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})
}

fn schema_value(subject: &str, version: i32, id: i32, schema: &Schema, deleted: bool) -> Value {
    let mut value = serde_json::Map::new();
    value.insert("subject".into(), subject.into());
    value.insert("version".into(), version.into());
    value.insert("id".into(), id.into());
    value.insert("schemaType".into(), schema.schema_type.name().into());
    value.insert("references".into(), references_json(&schema.references));
    value.insert("schema".into(), schema.text.clone().into());
    value.insert("deleted".into(), deleted.into());
    Value::Object(value)
}

/// What a registration or a look-up found.
pub struct Registered {
    pub subject: String,
    pub id: i32,
    pub version: i32,
    pub schema: Schema,
}

pub struct Registry {
    state: Mutex<State>,
    log: Arc<dyn SchemaLog>,
}

impl Registry {
    /// The registry kept in `log`, as its records leave it.
    pub fn open(log: Arc<dyn SchemaLog>) -> Result<Self, String> {
        let mut state = State::default();
        for (key, value) in log.read_all()? {
            let Ok(key) = serde_json::from_slice::<Value>(&key) else {
                continue;
            };
            let value = value.and_then(|v| serde_json::from_slice::<Value>(&v).ok());
            state.apply(&key, value.as_ref());
        }
        Ok(Self {
            state: Mutex::new(state),
            log,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a record to the log, then to the state.
    fn write(&self, state: &mut State, key: Value, value: Option<Value>) -> Result<(), ApiError> {
        let value_bytes = value.as_ref().map(|v| v.to_string().into_bytes());
        self.log
            .append(key.to_string().as_bytes(), value_bytes.as_deref())
            .map_err(|e| {
                ApiError::new(500, 50001, format!("Error in the backend data store: {e}"))
            })?;
        state.apply(&key, value.as_ref());
        Ok(())
    }

    pub fn register(
        &self,
        subject: &str,
        schema: Schema,
        normalize: bool,
    ) -> Result<Registered, ApiError> {
        let mut state = self.state();
        state.writable(subject)?;
        let (parsed, identity, normalized) =
            state.parse(&schema).map_err(ApiError::invalid_schema)?;
        let existing = state.ids.get(&identity).copied();
        if let (Some(id), Some(s)) = (existing, state.subjects.get(subject)) {
            if let Some((version, _)) = s.live().find(|(_, v)| v.id == id) {
                let schema = state.schemas[&id].clone();
                return Ok(Registered {
                    subject: subject.to_owned(),
                    id,
                    version,
                    schema,
                });
            }
        }
        let schema = if normalize && schema.schema_type != SchemaType::Protobuf {
            Schema {
                text: normalized,
                ..schema
            }
        } else {
            schema
        };
        let level = state.level(subject);
        let against = state.compared_ids(subject, level);
        let candidate = (schema, parsed);
        let problems = state.incompatibilities(&candidate, &against, level);
        if !problems.is_empty() {
            return Err(ApiError::new(
                409,
                409,
                format!(
                    "Schema being registered is incompatible with an earlier schema for \
                     subject \"{subject}\" (compatibility {}), details: {}",
                    level.name(),
                    problems.join("; ")
                ),
            ));
        }
        let schema = candidate.0;
        let id = match existing {
            Some(id) => id,
            None => state.schemas.keys().next_back().map_or(1, |last| last + 1),
        };
        let version = state
            .subjects
            .get(subject)
            .and_then(|s| s.versions.keys().next_back())
            .map_or(1, |last| last + 1);
        self.write(
            &mut state,
            schema_key(subject, version),
            Some(schema_value(subject, version, id, &schema, false)),
        )?;
        Ok(Registered {
            subject: subject.to_owned(),
            id,
            version,
            schema: state.schemas[&id].clone(),
        })
    }

    pub fn lookup(
        &self,
        subject: &str,
        schema: &Schema,
        deleted: bool,
    ) -> Result<Registered, ApiError> {
        let state = self.state();
        let s = state.subject(subject)?;
        let (_, identity, _) = state.parse(schema).map_err(ApiError::invalid_schema)?;
        let found = state.ids.get(&identity).and_then(|id| {
            s.versions
                .iter()
                .rev()
                .find(|(_, v)| v.id == *id && (deleted || !v.deleted))
        });
        let Some((version, v)) = found else {
            return Err(ApiError::new(404, 40403, "Schema not found".into()));
        };
        Ok(Registered {
            subject: subject.to_owned(),
            id: v.id,
            version: *version,
            schema: state.schemas[&v.id].clone(),
        })
    }

    /// The schema with `id`, while some subject (even soft-deleted) holds it.
    pub fn schema(&self, id: i32) -> Result<Schema, ApiError> {
        let state = self.state();
        let held = state
            .subjects
            .values()
            .any(|s| s.versions.values().any(|v| v.id == id));
        match state.schemas.get(&id) {
            Some(schema) if held => Ok(schema.clone()),
            _ => Err(ApiError::new(404, 40403, format!("Schema {id} not found"))),
        }
    }

    /// The (subject, version) pairs holding schema `id`.
    pub fn versions_of(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>, ApiError> {
        self.schema(id)?;
        let state = self.state();
        Ok(state
            .subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions
                    .iter()
                    .filter(|(_, v)| v.id == id && (deleted || !v.deleted))
                    .map(|(n, _)| (name.clone(), *n))
            })
            .collect())
    }

    pub fn subjects(&self, prefix: &str, deleted: bool, deleted_only: bool) -> Vec<String> {
        let state = self.state();
        state
            .subjects
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .filter(|(_, s)| {
                let live = s.live().next().is_some();
                let gone = s.versions.values().any(|v| v.deleted);
                if deleted_only {
                    gone && !live
                } else {
                    live || (deleted && gone)
                }
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn versions(
        &self,
        subject: &str,
        deleted: bool,
        deleted_only: bool,
    ) -> Result<Vec<i32>, ApiError> {
        let state = self.state();
        let s = state.subject(subject)?;
        let versions: Vec<i32> = s
            .versions
            .iter()
            .filter(|(_, v)| {
                if deleted_only {
                    v.deleted
                } else {
                    deleted || !v.deleted
                }
            })
            .map(|(n, _)| *n)
            .collect();
        if versions.is_empty() && !deleted_only {
            return Err(ApiError::subject_not_found(subject));
        }
        Ok(versions)
    }

    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<Registered, ApiError> {
        let state = self.state();
        let s = state.subject(subject)?;
        if !deleted && s.live().next().is_none() {
            return Err(ApiError::subject_not_found(subject));
        }
        let (version, v) = s
            .find(spec, deleted)
            .ok_or_else(|| ApiError::version_not_found(spec))?;
        Ok(Registered {
            subject: subject.to_owned(),
            id: v.id,
            version,
            schema: state.schemas[&v.id].clone(),
        })
    }

    /// Ids of the live schemas that reference `subject` at `version`.
    pub fn referenced_by(&self, subject: &str, spec: VersionSpec) -> Result<Vec<i32>, ApiError> {
        let state = self.state();
        let (version, _) = state
            .subject(subject)?
            .find(spec, false)
            .ok_or_else(|| ApiError::version_not_found(spec))?;
        Ok(Self::referrers(&state, subject, version))
    }

    fn referrers(state: &State, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = state
            .subjects
            .values()
            .flat_map(|s| s.live().map(|(_, v)| v.id))
            .filter(|id| {
                state.schemas[id]
                    .references
                    .iter()
                    .any(|r| r.subject == subject && r.version == version)
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>, ApiError> {
        let mut state = self.state();
        state.writable(subject)?;
        let s = state.subject(subject)?;
        let live: Vec<(i32, Version)> = s.live().collect();
        let all: Vec<(i32, Version)> = s.versions.iter().map(|(n, v)| (*n, *v)).collect();
        for (version, _) in &live {
            if !Self::referrers(&state, subject, *version).is_empty() {
                return Err(ApiError::reference_exists(subject, *version));
            }
        }
        if permanent {
            if !live.is_empty() {
                return Err(ApiError::new(
                    404,
                    40405,
                    format!(
                        "Subject '{subject}' was not deleted first before being permanently \
                         deleted"
                    ),
                ));
            }
            for (version, _) in &all {
                self.write(&mut state, schema_key(subject, *version), None)?;
            }
            if state
                .subjects
                .get(subject)
                .is_some_and(|s| s.compatibility.is_some())
            {
                self.write(&mut state, config_key(Some(subject)), None)?;
            }
            if state
                .subjects
                .get(subject)
                .is_some_and(|s| s.mode.is_some())
            {
                self.write(&mut state, mode_key(Some(subject)), None)?;
            }
            state.subjects.remove(subject);
            return Ok(all.into_iter().map(|(n, _)| n).collect());
        }
        if live.is_empty() {
            return Err(ApiError::new(
                404,
                40404,
                format!(
                    "Subject '{subject}' was soft deleted. Set permanent=true to delete \
                     permanently"
                ),
            ));
        }
        for (version, v) in &live {
            let schema = state.schemas[&v.id].clone();
            self.write(
                &mut state,
                schema_key(subject, *version),
                Some(schema_value(subject, *version, v.id, &schema, true)),
            )?;
        }
        Ok(live.into_iter().map(|(n, _)| n).collect())
    }

    pub fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, ApiError> {
        let mut state = self.state();
        state.writable(subject)?;
        let s = state.subject(subject)?;
        let (version, v) = s
            .find(spec, permanent)
            .ok_or_else(|| ApiError::version_not_found(spec))?;
        if !Self::referrers(&state, subject, version).is_empty() {
            return Err(ApiError::reference_exists(subject, version));
        }
        if permanent {
            if !v.deleted {
                return Err(ApiError::new(
                    404,
                    40407,
                    format!(
                        "Subject '{subject}' Version {version} was not deleted first before \
                         being permanently deleted"
                    ),
                ));
            }
            self.write(&mut state, schema_key(subject, version), None)?;
            return Ok(version);
        }
        if v.deleted {
            return Err(ApiError::new(
                404,
                40406,
                format!(
                    "Subject '{subject}' Version {version} was soft deleted. Set permanent=true \
                     to delete permanently"
                ),
            ));
        }
        let schema = state.schemas[&v.id].clone();
        self.write(
            &mut state,
            schema_key(subject, version),
            Some(schema_value(subject, version, v.id, &schema, true)),
        )?;
        Ok(version)
    }

    /// The subject's level (or the global one: `subject` None, or the
    /// subject has none and `default_to_global`).
    pub fn compatibility(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Level, ApiError> {
        let state = self.state();
        let global = state.compatibility.unwrap_or(Level::Backward);
        let Some(subject) = subject else {
            return Ok(global);
        };
        match state.subjects.get(subject).and_then(|s| s.compatibility) {
            Some(level) => Ok(level),
            None if default_to_global => Ok(global),
            None => Err(ApiError::new(
                404,
                40408,
                format!("Subject '{subject}' does not have subject-level compatibility configured"),
            )),
        }
    }

    pub fn set_compatibility(&self, subject: Option<&str>, level: Level) -> Result<(), ApiError> {
        let mut state = self.state();
        self.write(
            &mut state,
            config_key(subject),
            Some(json!({"compatibilityLevel": level.name()})),
        )
    }

    /// Removes a subject's level (the global one goes back to BACKWARD); the level it had.
    pub fn delete_compatibility(&self, subject: Option<&str>) -> Result<Level, ApiError> {
        let old = self.compatibility(subject, false)?;
        let mut state = self.state();
        self.write(&mut state, config_key(subject), None)?;
        Ok(old)
    }

    pub fn mode(&self, subject: Option<&str>, default_to_global: bool) -> Result<Mode, ApiError> {
        let state = self.state();
        let global = state.mode.unwrap_or(Mode::ReadWrite);
        let Some(subject) = subject else {
            return Ok(global);
        };
        match state.subjects.get(subject).and_then(|s| s.mode) {
            Some(mode) => Ok(mode),
            None if default_to_global => Ok(global),
            None => Err(ApiError::new(
                404,
                40409,
                format!("Subject '{subject}' does not have subject-level mode configured"),
            )),
        }
    }

    pub fn set_mode(&self, subject: Option<&str>, mode: Mode) -> Result<(), ApiError> {
        let mut state = self.state();
        self.write(
            &mut state,
            mode_key(subject),
            Some(json!({"mode": mode.name()})),
        )
    }

    pub fn delete_mode(&self, subject: Option<&str>) -> Result<Mode, ApiError> {
        let old = self.mode(subject, false)?;
        let mut state = self.state();
        self.write(&mut state, mode_key(subject), None)?;
        Ok(old)
    }

    /// Why `schema` could not be registered under `subject` (checked
    /// against `version`, or as a registration would be); empty: it could.
    pub fn test_compatibility(
        &self,
        subject: &str,
        schema: &Schema,
        version: Option<VersionSpec>,
    ) -> Result<Vec<String>, ApiError> {
        let state = self.state();
        let (parsed, _, _) = state.parse(schema).map_err(ApiError::invalid_schema)?;
        let level = state.level(subject);
        let against = match version {
            None => state.compared_ids(subject, level),
            Some(spec) => {
                let (_, v) = state
                    .subject(subject)?
                    .find(spec, false)
                    .ok_or_else(|| ApiError::version_not_found(spec))?;
                vec![v.id]
            }
        };
        Ok(state.incompatibilities(&(schema.clone(), parsed), &against, level))
    }
}

fn config_key(subject: Option<&str>) -> Value {
    json!({"keytype": "CONFIG", "subject": subject, "magic": 0})
}

fn mode_key(subject: Option<&str>) -> Value {
    json!({"keytype": "MODE", "subject": subject, "magic": 0})
}

#[cfg(test)]
mod tests {
    use super::super::MemoryLog;
    use super::*;

    fn avro(text: &str) -> Schema {
        Schema {
            schema_type: SchemaType::Avro,
            text: text.into(),
            references: Vec::new(),
        }
    }

    const V1: &str = r#"{"type":"record","name":"Sale","fields":[{"name":"id","type":"long"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Sale","fields":[{"name":"id","type":"long"},{"name":"qty","type":"int","default":1}]}"#;
    const BAD: &str = r#"{"type":"record","name":"Sale","fields":[{"name":"id","type":"long"},{"name":"shop","type":"string"}]}"#;

    #[test]
    fn ids_versions_and_compatibility_survive_a_reopen() {
        let log = Arc::new(MemoryLog::default());
        let registry = Registry::open(log.clone()).unwrap();
        let first = registry.register("sales-value", avro(V1), false).unwrap();
        assert_eq!((first.id, first.version), (1, 1));
        // The same schema, laid out differently: same id, no new version.
        let spaced = V1.replace(',', " , ");
        let again = registry
            .register("sales-value", avro(&spaced), false)
            .unwrap();
        assert_eq!((again.id, again.version), (1, 1));
        // Another subject gets the same id for the same schema.
        assert_eq!(registry.register("other", avro(V1), false).unwrap().id, 1);
        let second = registry.register("sales-value", avro(V2), false).unwrap();
        assert_eq!((second.id, second.version), (2, 2));
        let refused = registry
            .register("sales-value", avro(BAD), false)
            .err()
            .unwrap();
        assert_eq!((refused.status, refused.code), (409, 409));
        assert!(refused.message.contains("\"shop\""), "{}", refused.message);
        registry
            .set_compatibility(Some("sales-value"), Level::None)
            .unwrap();
        assert_eq!(
            registry
                .register("sales-value", avro(BAD), false)
                .unwrap()
                .version,
            3
        );
        assert_eq!(
            registry
                .delete_version("sales-value", VersionSpec::Number(1), false)
                .unwrap(),
            1
        );

        let reopened = Registry::open(log).unwrap();
        assert_eq!(
            reopened.versions("sales-value", false, false).unwrap(),
            vec![2, 3]
        );
        assert_eq!(
            reopened.versions("sales-value", true, false).unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(
            reopened.compatibility(Some("sales-value"), false).unwrap(),
            Level::None
        );
        assert_eq!(reopened.schema(1).unwrap().text, V1);
        assert_eq!(reopened.register("new", avro(V2), false).unwrap().id, 2);
        assert_eq!(
            reopened
                .lookup("sales-value", &avro(V2), false)
                .unwrap()
                .version,
            2
        );
    }

    #[test]
    fn deletes_go_soft_then_permanent() {
        let registry = Registry::open(Arc::new(MemoryLog::default())).unwrap();
        registry.register("s", avro(V1), false).unwrap();
        let err = registry.delete_subject("s", true).err().unwrap();
        assert_eq!(err.code, 40405);
        assert_eq!(registry.delete_subject("s", false).unwrap(), vec![1]);
        assert_eq!(
            registry.delete_subject("s", false).err().unwrap().code,
            40404
        );
        assert_eq!(
            registry.versions("s", false, false).err().unwrap().code,
            40401
        );
        assert!(registry.subjects("", false, false).is_empty());
        assert_eq!(registry.subjects("", true, false), vec!["s".to_owned()]);
        // A soft-deleted schema still resolves by id (for old messages).
        assert_eq!(registry.schema(1).unwrap().text, V1);
        assert_eq!(registry.delete_subject("s", true).unwrap(), vec![1]);
        assert_eq!(registry.schema(1).err().unwrap().code, 40403);
        assert_eq!(
            registry
                .version("s", VersionSpec::Latest, false)
                .err()
                .unwrap()
                .code,
            40401
        );
    }

    #[test]
    fn references_must_exist_and_block_deletes() {
        let registry = Registry::open(Arc::new(MemoryLog::default())).unwrap();
        let address =
            r#"{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}"#;
        registry.register("address", avro(address), false).unwrap();
        let order = Schema {
            references: vec![Reference {
                name: "Address".into(),
                subject: "address".into(),
                version: 1,
            }],
            ..avro(r#"{"type":"record","name":"Order","fields":[{"name":"to","type":"Address"}]}"#)
        };
        let missing = Schema {
            references: vec![Reference {
                name: "Address".into(),
                subject: "address".into(),
                version: 9,
            }],
            ..order.clone()
        };
        assert_eq!(
            registry
                .register("order", missing, false)
                .err()
                .unwrap()
                .code,
            42201
        );
        registry.register("order", order, false).unwrap();
        assert_eq!(
            registry
                .referenced_by("address", VersionSpec::Latest)
                .unwrap(),
            vec![2]
        );
        assert_eq!(
            registry
                .delete_subject("address", false)
                .err()
                .unwrap()
                .code,
            42206
        );
    }

    #[test]
    fn read_only_mode_refuses_changes() {
        let registry = Registry::open(Arc::new(MemoryLog::default())).unwrap();
        registry.set_mode(None, Mode::ReadOnly).unwrap();
        assert_eq!(
            registry.register("s", avro(V1), false).err().unwrap().code,
            42205
        );
        registry.set_mode(None, Mode::ReadWrite).unwrap();
        assert!(registry.register("s", avro(V1), false).is_ok());
    }
}
