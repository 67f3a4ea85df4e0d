//! `Consumer`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow_pyarrow::FromPyArrow;
use arrow_schema::Schema;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::convert::{client_settings, frame_to_py};
use super::wait::{detached, interruptible};
use crate::client::consumer::{self, ConsumerOptions, SeekTo};
use crate::codec::{CsvLineOptions, TextOptions};

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Consumer {
    core: Arc<consumer::Consumer>,
}

impl Consumer {
    /// The core consumer, shared with a background reader.
    pub(super) fn core(&self) -> Arc<consumer::Consumer> {
        self.core.clone()
    }
}

#[pymethods]
impl Consumer {
    #[new]
    #[pyo3(signature = (bootstrap_servers=None, config=None, *, group_id=None, offset=None,
                        auto_commit=None, format="auto", metadata=false, on_error="raise",
                        json_schema=None, timeout=10.0, errors="strict", columns=None,
                        header=false, schema=None, delimiter=",", encoding="utf-8",
                        key_format=None, json_orient=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
        group_id: Option<String>,
        offset: Option<String>,
        auto_commit: Option<bool>,
        format: &str,
        metadata: bool,
        on_error: &str,
        json_schema: Option<&Bound<'_, PyAny>>,
        timeout: f64,
        errors: &str,
        columns: Option<Vec<String>>,
        header: bool,
        schema: Option<HashMap<String, String>>,
        delimiter: &str,
        encoding: &str,
        key_format: Option<&str>,
        json_orient: Option<&str>,
    ) -> PyResult<Self> {
        let settings = client_settings(bootstrap_servers, config)?;
        let text = TextOptions {
            errors: errors.parse()?,
            csv: CsvLineOptions::from_args(columns, header, schema, delimiter, encoding)?,
        };
        let options = ConsumerOptions {
            group_id,
            offset,
            auto_commit,
            format: format.parse()?,
            metadata,
            on_error: on_error.parse()?,
            json_schema: json_schema
                .map(|s| Schema::from_pyarrow_bound(s).map(Arc::new))
                .transpose()?,
            text,
            timeout,
            avro_keys: avro_keys(key_format)?,
            json_orient: json_orient.unwrap_or("auto").parse()?,
        };
        let core = detached(py, || consumer::Consumer::new(settings, options))?;
        Ok(Self {
            core: Arc::new(core),
        })
    }

    /// Joins the consumer group and reads `topics` (which must exist).
    fn subscribe(&self, py: Python<'_>, topics: Vec<String>) -> PyResult<()> {
        interruptible(py, |check| self.core.subscribe(&topics, check))
    }

    /// Reads the given partitions without a group: `(topic, partition)` or
    /// `(topic, partition, offset)`; without an offset, `offset=` applies.
    fn assign(&self, py: Python<'_>, partitions: Vec<(String, i32, Option<i64>)>) -> PyResult<()> {
        interruptible(py, |check| self.core.assign(&partitions, check))
    }

    /// Up to `max_rows` rows from many messages as one Arrow stream,
    /// or None if nothing arrived within `timeout` seconds. With
    /// `string_views`, text columns come as string views (what Polars holds).
    #[pyo3(signature = (max_rows=100_000, timeout=1.0, string_views=false))]
    fn poll_frame(
        &self,
        py: Python<'_>,
        max_rows: usize,
        timeout: Option<f64>,
        string_views: bool,
    ) -> PyResult<Py<PyAny>> {
        let frame = interruptible(py, |check| {
            self.core.poll_frame(max_rows, timeout, string_views, check)
        })?;
        frame_to_py(py, frame)
    }

    /// Commits the offsets of every row returned so far.
    #[pyo3(signature = (asynchronous=false))]
    fn commit(&self, py: Python<'_>, asynchronous: bool) -> PyResult<()> {
        detached(py, || self.core.commit(asynchronous))
    }

    /// The group's committed offsets: {(topic, partition): offset}.
    #[pyo3(signature = (timeout=10.0))]
    fn committed(&self, py: Python<'_>, timeout: f64) -> PyResult<BTreeMap<(String, i32), i64>> {
        let timeout = Duration::from_secs_f64(timeout);
        detached(py, || self.core.committed(timeout))
    }

    /// Partitions currently assigned: [(topic, partition)].
    fn assignment(&self, py: Python<'_>) -> PyResult<Vec<(String, i32)>> {
        detached(py, || self.core.assignment())
    }

    /// Moves assigned partitions to an offset (int, 'earliest' or 'latest')
    /// or to the first message at or after `timestamp_ms`. Waits up to
    /// `timeout` for a group assignment. Rows read but not yet returned are put back.
    #[pyo3(signature = (*, offset=None, timestamp_ms=None, topic=None, partition=None, timeout=10.0))]
    fn seek(
        &self,
        py: Python<'_>,
        offset: Option<&Bound<'_, PyAny>>,
        timestamp_ms: Option<i64>,
        topic: Option<String>,
        partition: Option<i32>,
        timeout: f64,
    ) -> PyResult<Vec<(String, i32, i64)>> {
        let number = offset.and_then(|o| o.extract::<i64>().ok());
        let name = match (offset, number) {
            (Some(o), None) => Some(o.extract::<String>()?),
            _ => None,
        };
        let to = SeekTo::from_args(number, name.as_deref(), timestamp_ms)?;
        interruptible(py, |check| {
            self.core
                .seek(to, topic.as_deref(), partition, timeout, check)
        })
    }

    /// Messages skipped with `on_error='skip'`: (topic, partition, offset, error, payload).
    #[getter]
    fn bad_messages<'py>(
        &self,
        py: Python<'py>,
    ) -> Vec<(String, i32, i64, String, Bound<'py, PyBytes>)> {
        self.core
            .bad_messages()
            .into_iter()
            .map(|b| {
                let payload = PyBytes::new(py, &b.payload);
                (b.topic, b.partition, b.offset, b.error, payload)
            })
            .collect()
    }

    /// Leaves the group (committing returned rows when auto-commit is on) and closes.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        interruptible(py, |check| self.core.close(check))
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        // A read on another thread holds the consumer until its next wake-up,
        // checking for signals meanwhile: it needs the GIL for that.
        detached(py, || Ok(self.core.closed()))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Consumer({}{})",
            self.core.settings().redacted(),
            if self.closed(py)? { ", closed" } else { "" }
        ))
    }
}

/// Whether keys are read in the Schema Registry's Avro framing (`key_format`).
pub(super) fn avro_keys(key_format: Option<&str>) -> crate::error::Result<bool> {
    match key_format {
        None | Some("text") => Ok(false),
        Some("avro") => Ok(true),
        Some(other) => Err(crate::error::Error::Config(format!(
            "key_format must be 'avro' or 'text', got {other:?}"
        ))),
    }
}
