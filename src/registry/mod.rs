//! The embedded Schema Registry: Confluent's REST API (what its clients
//! call: register, look up, versions, ids, deletes, config, mode,
//! compatibility tests) over HTTP/1.1 on loopback, beside the embedded
//! broker. This file is its whole public surface.
//!
//! Layers, outside in: `http` (a small HTTP/1.1 server on tokio: request
//! line, headers, Content-Length bodies, keep-alive; TLS and Basic auth
//! when asked), `routes` (one function per endpoint, JSON in and out),
//! `store` (subjects, versions, ids and configs, each change a record in a
//! [`SchemaLog`]: the broker's `_schemas` topic), `avro` (parsing,
//! canonical and normalized forms; the Avro codec parses schemas with it
//! too) and `compat` (compatibility levels).

pub mod avro;
mod compat;
mod http;
mod routes;
mod store;

use std::sync::{Arc, Mutex};

pub use compat::Level;
pub use http::serve;
pub use store::Registry;

/// One record of the log: a key, and a value (None: a tombstone).
pub type LogRecord = (Vec<u8>, Option<Vec<u8>>);

/// Where the registry keeps its records, in order: Confluent's `_schemas`
/// topic, keys and values as JSON; a value of None is a tombstone.
pub trait SchemaLog: Send + Sync {
    fn append(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), String>;
    /// Every record appended so far, oldest first.
    fn read_all(&self) -> Result<Vec<LogRecord>, String>;
}

/// A log in memory, for tests.
#[derive(Default)]
pub struct MemoryLog(Mutex<Vec<LogRecord>>);

impl SchemaLog for MemoryLog {
    fn append(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((key.to_vec(), value.map(<[u8]>::to_vec)));
        Ok(())
    }

    fn read_all(&self) -> Result<Vec<LogRecord>, String> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }
}

/// Checks a user name and password (HTTP Basic); true: let them in.
pub type CheckCredentials = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// An error as Confluent's registry answers it: an HTTP status, and a body
/// `{"error_code": code, "message": message}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: i32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: i32, message: String) -> Self {
        Self {
            status,
            code,
            message,
        }
    }

    pub fn invalid_schema(reason: String) -> Self {
        Self::new(422, 42201, format!("Invalid schema: {reason}"))
    }

    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(404, 40401, format!("Subject '{subject}' not found."))
    }

    pub fn version_not_found(spec: store::VersionSpec) -> Self {
        let message = match spec {
            store::VersionSpec::Latest => "Version latest not found.".to_owned(),
            store::VersionSpec::Number(n) => format!("Version {n} not found."),
        };
        Self::new(404, 40402, message)
    }

    pub fn reference_exists(subject: &str, version: i32) -> Self {
        Self::new(
            422,
            42206,
            format!(
                "One or more references exist to the schema {{subject={subject},version={version}}}"
            ),
        )
    }

    pub fn body(&self) -> String {
        serde_json::json!({"error_code": self.code, "message": self.message}).to_string()
    }
}
