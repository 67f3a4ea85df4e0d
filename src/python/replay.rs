//! `Replay`: a timestamped source sent to a topic on its own native thread.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use arrow_array::ffi_stream::RecordBatchStreamReader;
use arrow_pyarrow::FromPyArrow;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::{client_settings, key_columns};
use super::wait::interruptible;
use crate::codec::csv::CsvOptions;
use crate::replay::{self, ReplayOptions, Source};
use crate::wait;

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Replay {
    core: replay::Replay,
    /// The replay's error once raised, so that every `check()` raises the same one.
    error: Mutex<Option<PyErr>>,
    /// "event" or "send": what the messages' Kafka timestamps are.
    #[pyo3(get)]
    kafka_timestamps: &'static str,
    /// Time zone of the event-time column (None: naive), for showing progress.
    #[pyo3(get)]
    time_zone: Option<String>,
    #[pyo3(get)]
    warnings: Vec<String>,
    #[pyo3(get)]
    topic: String,
}

#[pymethods]
impl Replay {
    #[new]
    #[pyo3(signature = (topic, source, bootstrap_servers=None, config=None, *, time_column=None,
                        speed=Some(1.0), every=None, window=0.0, rows_per_message=None, key=None,
                        timestamp="auto", format="arrow", schema_header=false, headers=None,
                        encoding="auto",
                        time_format=None, dtypes=None, on_bad_rows="error", chunk_rows=65_536,
                        delimiter=None, timeout=30.0, subject=None, schema=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        topic: String,
        source: &Bound<'_, PyAny>,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
        time_column: Option<String>,
        speed: Option<f64>,
        every: Option<f64>,
        window: f64,
        rows_per_message: Option<usize>,
        key: Option<&Bound<'_, PyAny>>,
        timestamp: &str,
        format: &str,
        schema_header: bool,
        headers: Option<HashMap<String, Vec<u8>>>,
        encoding: &str,
        time_format: Option<String>,
        dtypes: Option<HashMap<String, String>>,
        on_bad_rows: &str,
        chunk_rows: usize,
        delimiter: Option<&str>,
        timeout: f64,
        subject: Option<String>,
        schema: Option<String>,
    ) -> PyResult<Self> {
        let settings = client_settings(bootstrap_servers, config)?;
        let options = ReplayOptions {
            time_column: time_column.clone(),
            speed,
            every,
            window,
            rows_per_message,
            key: key_columns(key)?,
            timestamps: timestamp.parse()?,
            format: format.parse()?,
            schema_header,
            headers,
            timeout,
            subject,
            schema,
        };
        let source = if let Ok(path) = source.extract::<String>() {
            let options = CsvOptions::from_args(
                time_column,
                time_format,
                encoding,
                dtypes,
                on_bad_rows,
                chunk_rows,
                delimiter,
            )?;
            Source::Csv { path, options }
        } else if source.hasattr("__arrow_c_stream__")? {
            Source::Stream(Box::new(RecordBatchStreamReader::from_pyarrow_bound(
                source,
            )?))
        } else {
            return Err(PyTypeError::new_err(format!(
                "cannot replay a {}: pass a CSV path, or a frame / Arrow stream",
                source.get_type().name()?
            )));
        };
        let core = interruptible(py, |check| {
            replay::Replay::start(&topic, source, settings, options, check)
        })?;
        Ok(Self {
            kafka_timestamps: if core.event_times() { "event" } else { "send" },
            time_zone: core.time_zone().map(str::to_owned),
            warnings: core.warnings().to_vec(),
            topic,
            core,
            error: Mutex::new(None),
        })
    }

    /// Holds sending until `resume()`; the schedule resumes where it left off.
    fn pause(&self) {
        self.core.pause();
    }

    fn resume(&self) {
        self.core.resume();
    }

    /// Asks the replay to stop sending; acks of rows already sent are awaited
    /// for up to `timeout` seconds (rows left then count as failed).
    #[pyo3(signature = (timeout=10.0))]
    fn request_stop(&self, timeout: f64) {
        self.core
            .request_stop(Duration::from_secs_f64(timeout.clamp(0.0, 3600.0)));
    }

    /// Waits (GIL released, Ctrl+C honoured) until the replay ends or `timeout`
    /// passes; True when it has ended.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = wait::deadline(timeout)?;
        interruptible(py, |check| self.core.wait(deadline, check))
    }

    /// Raises the replay's error, if it failed (once ended).
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        let kept = || self.error.lock().unwrap_or_else(PoisonError::into_inner);
        // Made (normalized) without the lock held: that runs Python code,
        // which may let another thread run and ask for the error.
        if let Some(e) = self.core.take_error() {
            let e = PyErr::from(e);
            e.value(py);
            kept().get_or_insert(e);
        }
        match kept().as_ref() {
            Some(e) => Err(e.clone_ref(py)),
            None => Ok(()),
        }
    }

    /// Counters at this moment, as a dict.
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self.core.progress();
        let d = PyDict::new(py);
        d.set_item("state", p.state)?;
        d.set_item("rows_sent", p.rows_sent)?;
        d.set_item("rows_delivered", p.rows_delivered)?;
        d.set_item("rows_failed", p.rows_failed)?;
        d.set_item("messages", p.messages)?;
        d.set_item("bytes", p.bytes)?;
        d.set_item("event_time_us", p.event_time_us)?;
        d.set_item("lag", p.lag)?;
        d.set_item("max_lag", p.max_lag)?;
        d.set_item("elapsed", p.elapsed)?;
        d.set_item("rows_skipped", p.rows_skipped)?;
        Ok(d)
    }

    /// Rows of a CSV source skipped with `on_bad_rows='skip'`: (line, reason), the first 100.
    #[getter]
    fn bad_rows(&self) -> Vec<(u64, String)> {
        self.core
            .bad_rows()
            .into_iter()
            .map(|b| (b.line, b.reason))
            .collect()
    }
}
