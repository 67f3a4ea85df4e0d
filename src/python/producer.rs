//! `Producer` and `SendReport`.

use std::collections::HashMap;
use std::time::Duration;

use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;

use super::convert::{batches_from_py, client_settings, key_columns};
use super::wait::{detached, interruptible};
use crate::client::producer::{self, SendOptions};
use crate::error::Result;

/// What one `send` (or `flush`) delivered.
#[pyclass(frozen, module = "tskafka._tskafka", get_all, skip_from_py_object)]
#[derive(Clone)]
pub struct SendReport {
    /// Topic written to (empty for a flush across topics).
    topic: String,
    /// Rows delivered and acknowledged by the broker.
    rows: u64,
    messages: u64,
    /// Payload bytes delivered (before compression).
    bytes: u64,
    /// Rows still in flight (only with `wait=False`).
    rows_pending: u64,
    seconds: f64,
}

impl From<producer::SendReport> for SendReport {
    fn from(r: producer::SendReport) -> Self {
        Self {
            topic: r.topic,
            rows: r.rows,
            messages: r.messages,
            bytes: r.bytes,
            rows_pending: r.rows_pending,
            seconds: r.seconds,
        }
    }
}

#[pymethods]
impl SendReport {
    fn __repr__(&self) -> String {
        format!(
            "SendReport(topic={:?}, rows={}, messages={}, bytes={}, rows_pending={}, seconds={:.3})",
            self.topic, self.rows, self.messages, self.bytes, self.rows_pending, self.seconds
        )
    }

    /// Rows per second over the call.
    #[getter]
    fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Producer {
    core: producer::Producer,
}

#[pymethods]
impl Producer {
    #[new]
    #[pyo3(signature = (bootstrap_servers=None, config=None))]
    fn new(
        py: Python<'_>,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let settings = client_settings(bootstrap_servers, config)?;
        let core = detached(py, || producer::Producer::new(settings))?;
        Ok(Self { core })
    }

    /// Sends every row of `data` to `topic`; see the Python docstring.
    #[pyo3(signature = (topic, data, *, key=None, timestamp=None, partition=None, headers=None,
                        format="arrow", rows_per_message=None, schema_header=false, wait=true,
                        timeout=None, value=None, subject=None, schema=None, json_orient=None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        topic: String,
        data: &Bound<'_, PyAny>,
        key: Option<&Bound<'_, PyAny>>,
        timestamp: Option<String>,
        partition: Option<i32>,
        headers: Option<HashMap<String, Vec<u8>>>,
        format: &str,
        rows_per_message: Option<usize>,
        schema_header: bool,
        wait: bool,
        timeout: Option<f64>,
        value: Option<String>,
        subject: Option<String>,
        schema: Option<String>,
        json_orient: Option<&str>,
    ) -> PyResult<SendReport> {
        let options = SendOptions {
            key: key_columns(key)?,
            timestamp,
            partition,
            headers,
            format: format.parse()?,
            rows_per_message,
            schema_header,
            value,
            json_orient: json_orient.unwrap_or("records").parse()?,
            wait,
            timeout,
            subject,
            schema,
        };
        let (schema, batches) = batches_from_py(data)?;
        let report = interruptible(py, |check| {
            self.core.send(&topic, schema, &batches, &options, check)
        });
        // Shown even when the send failed: the schema was registered.
        for warning in self.core.take_warnings() {
            let message = std::ffi::CString::new(warning).unwrap_or_default();
            // stacklevel 2: the line that called Producer.send.
            PyErr::warn(py, &py.get_type::<PyUserWarning>(), &message, 2)?;
        }
        Ok(report?.into())
    }

    /// Waits for every message sent with `wait=False` (or left by an interrupted send).
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<SendReport> {
        let report = interruptible(py, |check| self.core.flush(timeout, check))?;
        Ok(report.into())
    }

    /// Messages queued or in flight.
    #[getter]
    fn in_flight(&self) -> Result<u64> {
        self.core.in_flight()
    }

    /// Waits up to `timeout` seconds for messages in flight, then closes;
    /// rows still undelivered then raise ProduceError. Later calls raise ClosedError.
    #[pyo3(signature = (timeout=30.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let timeout = Duration::from_secs_f64(timeout.max(0.0));
        interruptible(py, |check| self.core.close(timeout, check))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.closed()
    }

    fn __repr__(&self) -> String {
        format!(
            "Producer({}{})",
            self.core.settings().redacted(),
            if self.closed() { ", closed" } else { "" }
        )
    }
}
