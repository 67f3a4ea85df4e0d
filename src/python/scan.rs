//! `TopicScan` (a planned snapshot of a topic) and `ScanRun` (one read of it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arrow_pyarrow::FromPyArrow;
use arrow_schema::Schema;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::consumer::avro_keys;
use super::convert::{client_settings, ArrowStream};
use super::wait::interruptible;
use crate::client::scan::{self, Filter, RunOptions, ScanOptions};
use crate::codec::{CsvLineOptions, TextOptions};
use crate::error::Error;

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct TopicScan {
    scan: Arc<scan::Scan>,
}

#[pymethods]
impl TopicScan {
    /// Plans a snapshot read of `topic`: its partitions' offsets now, the
    /// time range (`start_ms` inclusive, `end_ms` exclusive) looked up as
    /// offsets. `row_times`: the timestamps are the latest of each message's
    /// rows, so the message reaching `end_ms` is read too. `headers`: a
    /// `kafka_headers` column.
    #[new]
    #[pyo3(signature = (topic, bootstrap_servers=None, config=None, *, format="auto",
                        partitions=None, start_offset=None, end_offset=None, start_ms=None,
                        end_ms=None, row_times=false, json_schema=None, on_error="raise",
                        headers=false, timeout=10.0, csv_columns=None, header=false,
                        csv_schema=None, delimiter=",", encoding="utf-8", errors="strict",
                        json_orient=None, key_format=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        topic: String,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
        format: &str,
        partitions: Option<Vec<i32>>,
        start_offset: Option<i64>,
        end_offset: Option<i64>,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
        row_times: bool,
        json_schema: Option<&Bound<'_, PyAny>>,
        on_error: &str,
        headers: bool,
        timeout: f64,
        csv_columns: Option<Vec<String>>,
        header: bool,
        csv_schema: Option<HashMap<String, String>>,
        delimiter: &str,
        encoding: &str,
        errors: &str,
        json_orient: Option<&str>,
        key_format: Option<&str>,
    ) -> PyResult<Self> {
        let settings = client_settings(bootstrap_servers, config)?;
        let skip_bad = match on_error {
            "raise" => false,
            "skip" => true,
            other => {
                return Err(Error::Config(format!(
                    "on_error must be 'raise' or 'skip', got {other:?}"
                ))
                .into())
            }
        };
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(Error::Config(format!(
                "timeout must be a number of seconds > 0, got {timeout}"
            ))
            .into());
        }
        let options = ScanOptions {
            topic,
            partitions,
            filter: Filter {
                start_offset,
                end_offset,
                start_ms,
                end_ms,
                row_times,
            },
            format: format.parse()?,
            json_schema: json_schema
                .map(|s| Schema::from_pyarrow_bound(s).map(Arc::new))
                .transpose()?,
            skip_bad,
            headers,
            timeout,
            text: TextOptions {
                errors: errors.parse()?,
                csv: CsvLineOptions::from_args(
                    csv_columns,
                    header,
                    csv_schema,
                    delimiter,
                    encoding,
                )?,
            },
            json_orient: json_orient.unwrap_or("auto").parse()?,
            avro_keys: avro_keys(key_format)?,
        };
        let scan = interruptible(py, |check| scan::Scan::plan(settings, options, check))?;
        Ok(Self {
            scan: Arc::new(scan),
        })
    }

    /// `[(partition, low, high, start, end)]`: each partition's watermarks
    /// when planned and the offsets `start..end` read.
    #[getter]
    fn ranges(&self) -> Vec<(i32, i64, i64, i64, i64)> {
        self.scan
            .ranges()
            .iter()
            .map(|r| (r.partition, r.low, r.high, r.start, r.end))
            .collect()
    }

    #[getter]
    fn topic(&self) -> String {
        self.scan.options().topic.clone()
    }

    /// Starts reading (partitions in parallel on native threads); with
    /// `columns`, only those are decoded where the format allows. `whole`:
    /// the run is read with `read_all` (partitions may then be read in
    /// pieces, `next_frame` giving a partition's frames out of order).
    #[pyo3(signature = (*, limit=None, columns=None, batch_rows=100_000, string_views=false,
                        partitions=None, whole=false))]
    fn run(
        &self,
        limit: Option<usize>,
        columns: Option<Vec<String>>,
        batch_rows: usize,
        string_views: bool,
        partitions: Option<Vec<i32>>,
        whole: bool,
    ) -> PyResult<ScanRun> {
        let run = self.scan.run(RunOptions {
            limit,
            columns,
            batch_rows,
            string_views,
            partitions,
            whole,
        })?;
        Ok(ScanRun {
            stats: run.stats(),
            run: Mutex::new(Some(run)),
        })
    }

    fn __repr__(&self) -> String {
        let rows: i64 = self.scan.ranges().iter().map(|r| r.end - r.start).sum();
        format!(
            "TopicScan({:?}, {} partitions, {rows} offsets)",
            self.scan.options().topic,
            self.scan.ranges().len()
        )
    }
}

/// One read of a planned scan.
#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct ScanRun {
    run: Mutex<Option<scan::Run>>,
    stats: Arc<scan::Stats>,
}

#[pymethods]
impl ScanRun {
    /// The next frame decoded, as an Arrow stream; None at the end.
    fn next_frame(&self, py: Python<'_>) -> PyResult<Option<ArrowStream>> {
        let next = interruptible(py, |check| {
            let mut run = self.run.lock().unwrap_or_else(PoisonError::into_inner);
            match run.as_mut() {
                None => Ok(None),
                Some(r) => r.next(check),
            }
        })?;
        Ok(next.map(|(_, frame)| ArrowStream::new(frame)))
    }

    /// Every frame, partition by partition, as Arrow streams: one for each
    /// run of frames of the same columns and types (one, unless JSON
    /// messages differ).
    fn read_all(&self, py: Python<'_>) -> PyResult<Vec<ArrowStream>> {
        let frames = interruptible(py, |check| {
            let mut run = self.run.lock().unwrap_or_else(PoisonError::into_inner);
            match run.as_mut() {
                None => Ok(Vec::new()),
                Some(r) => r.collect(check),
            }
        })?;
        Ok(scan::alike(frames)
            .into_iter()
            .map(ArrowStream::new)
            .collect())
    }

    /// Stops reading (the threads end at their next wake-up).
    fn close(&self) {
        self.run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// What was fetched: messages, bytes (payload and key), rows handed
    /// out and undecodable messages, in total and per partition (with the
    /// offsets planned and the pieces read).
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        use std::sync::atomic::Ordering::Relaxed;
        let total = PyDict::new(py);
        let per = PyDict::new(py);
        let (mut messages, mut bytes, mut rows, mut bad) = (0u64, 0u64, 0u64, 0u64);
        for p in &self.stats.partitions {
            let d = PyDict::new(py);
            let (m, b, r, x) = (
                p.messages.load(Relaxed),
                p.bytes.load(Relaxed),
                p.rows.load(Relaxed),
                p.bad.load(Relaxed),
            );
            messages += m;
            bytes += b;
            rows += r;
            bad += x;
            d.set_item("start", p.range.start)?;
            d.set_item("end", p.range.end)?;
            d.set_item("low", p.range.low)?;
            d.set_item("high", p.range.high)?;
            d.set_item("messages", m)?;
            d.set_item("bytes", b)?;
            d.set_item("rows", r)?;
            d.set_item("bad_messages", x)?;
            d.set_item("out_of_order", p.out_of_order.load(Relaxed))?;
            d.set_item("done", p.done.load(Relaxed))?;
            d.set_item("pieces", p.pieces())?;
            per.set_item(p.range.partition, d)?;
        }
        total.set_item("messages", messages)?;
        total.set_item("bytes", bytes)?;
        total.set_item("rows", rows)?;
        total.set_item("bad_messages", bad)?;
        total.set_item("partitions", per)?;
        Ok(total)
    }
}
