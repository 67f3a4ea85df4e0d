//! Python values <-> the core's types.

use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow_pyarrow::FromPyArrow;
use arrow_schema::SchemaRef;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict, PyString};

use crate::client::Settings;
use crate::codec::Frame;
use crate::error::{Error, Result};

/// A dict of librdkafka properties with string values: `tskafka.Config`
/// (which every public path goes through) turns other values into strings.
fn settings_from_py(config: Option<&Bound<'_, PyAny>>) -> Result<Settings> {
    let mut settings = Settings::new();
    let Some(config) = config else {
        return Ok(settings);
    };
    let dict = config.cast::<PyDict>().map_err(|_| {
        Error::Config(format!(
            "config must be a dict of librdkafka properties, got {}",
            type_name(config)
        ))
    })?;
    for (k, v) in dict.iter() {
        let key: String = k
            .extract()
            .map_err(|_| Error::Config(format!("config keys must be strings, got {k}")))?;
        let Ok(value) = v.cast::<PyString>() else {
            return Err(Error::Config(format!(
                "config property {key:?} must be a string, got {}: pass the config through \
                 tskafka.Config, which turns numbers, booleans and lists into librdkafka's strings",
                type_name(&v)
            )));
        };
        settings.set(key, value.to_str()?);
    }
    Ok(settings)
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Key columns: one name or a list of names.
pub fn key_columns(key: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    match key {
        None => Ok(Vec::new()),
        Some(k) if k.is_instance_of::<PyString>() => Ok(vec![k.extract()?]),
        Some(k) => k.extract(),
    }
}

/// Settings from `config`, with `bootstrap_servers` (when given) winning.
pub fn client_settings(
    bootstrap_servers: Option<String>,
    config: Option<&Bound<'_, PyAny>>,
) -> Result<Settings> {
    let mut settings = settings_from_py(config)?;
    if let Some(b) = bootstrap_servers {
        settings.set("bootstrap.servers", b);
    }
    Ok(settings)
}

/// Every batch of anything that speaks the Arrow PyCapsule stream interface.
pub fn batches_from_py(data: &Bound<'_, PyAny>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    if !data.hasattr("__arrow_c_stream__")? {
        let ty = type_name(data);
        return Err(PyTypeError::new_err(format!(
            "cannot send a {ty}: pass a polars or pandas DataFrame, a pyarrow Table or \
             RecordBatch, or any object with __arrow_c_stream__"
        ))
        .into());
    }
    let reader = RecordBatchStreamReader::from_pyarrow_bound(data)?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Schema(format!("cannot read the frame's Arrow data: {e}")))?;
    Ok((schema, batches))
}

/// Frames handed to Python over the Arrow PyCapsule stream interface:
/// Polars, pyarrow and DuckDB import the batches as they are, without a
/// pyarrow Table in between (which costs Polars a Python call per column of
/// every batch). Read as often as asked.
#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct ArrowStream {
    frame: Frame,
}

impl ArrowStream {
    pub fn new(frame: Frame) -> Self {
        Self { frame }
    }
}

#[pymethods]
impl ArrowStream {
    /// The batches as an `arrow_array_stream` capsule. `requested_schema`
    /// is not honoured (the interface allows that): the frame's own types
    /// come, as from `to_arrow()`.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let Frame { schema, batches } = self.frame.clone();
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.frame.num_rows()
    }

    fn __repr__(&self) -> String {
        format!(
            "ArrowStream({} rows in {} batches, {} columns)",
            self.frame.num_rows(),
            self.frame.batches.len(),
            self.frame.schema.fields().len()
        )
    }
}

/// The frame as an [`ArrowStream`] (its batches, not copied), or None.
pub fn frame_to_py(py: Python<'_>, frame: Option<Frame>) -> PyResult<Py<PyAny>> {
    match frame {
        Some(frame) => Ok(Py::new(py, ArrowStream::new(frame))?.into_any()),
        None => Ok(py.None()),
    }
}
