//! `CsvFile`: the native CSV reader as a Python iterator of pyarrow batches.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use arrow_pyarrow::ToPyArrow;
use pyo3::prelude::*;

use super::wait::detached;
use crate::codec::csv::{CsvOptions, CsvReader};

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct CsvFile {
    reader: Mutex<CsvReader>,
}

#[pymethods]
impl CsvFile {
    #[new]
    #[pyo3(signature = (path, *, time_column=None, time_format=None, encoding="auto", dtypes=None,
                        on_bad_rows="error", chunk_rows=65_536, delimiter=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: String,
        time_column: Option<String>,
        time_format: Option<String>,
        encoding: &str,
        dtypes: Option<HashMap<String, String>>,
        on_bad_rows: &str,
        chunk_rows: usize,
        delimiter: Option<&str>,
    ) -> PyResult<Self> {
        let options = CsvOptions::from_args(
            time_column,
            time_format,
            encoding,
            dtypes,
            on_bad_rows,
            chunk_rows,
            delimiter,
        )?;
        let reader = detached(py, || CsvReader::open(&path, options))?;
        Ok(Self {
            reader: Mutex::new(reader),
        })
    }

    /// The pyarrow schema every batch has.
    #[getter]
    fn schema(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let schema = self.lock().schema_ref();
        Ok(schema.as_ref().to_pyarrow(py)?.unbind())
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let batch = detached(py, || self.lock().next_batch())?;
        batch.map(|b| Ok(b.to_pyarrow(py)?.unbind())).transpose()
    }

    /// Rows skipped with `on_bad_rows='skip'`: (line, reason), the first 100.
    #[getter]
    fn bad_rows(&self) -> Vec<(u64, String)> {
        self.lock()
            .bad_rows
            .iter()
            .map(|b| (b.line, b.reason.clone()))
            .collect()
    }

    #[getter]
    fn rows_skipped(&self) -> u64 {
        self.lock().rows_skipped
    }

    #[getter]
    fn rows_read(&self) -> u64 {
        self.lock().rows_read
    }
}

impl CsvFile {
    fn lock(&self) -> std::sync::MutexGuard<'_, CsvReader> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
