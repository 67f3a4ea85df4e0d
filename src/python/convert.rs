//! Python values <-> the core's types.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, RecordBatch, RecordBatchIterator, RecordBatchOptions, RecordBatchReader,
};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ffi_stream::RecordBatchStreamReader;
use arrow::pyarrow::{FromPyArrow, IntoPyArrow};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use crate::config::Settings;
use crate::decode::Frame;
use crate::error::{Error, Result};

/// A dict of librdkafka properties; values may be str, int, float or bool.
fn settings_from_py(config: Option<&Bound<'_, PyAny>>) -> Result<Settings> {
    let mut settings = Settings::new();
    let Some(config) = config else {
        return Ok(settings);
    };
    let dict = config.cast::<PyDict>().map_err(|_| {
        Error::Config(format!(
            "config must be a dict of librdkafka properties, got {}",
            config
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    for (k, v) in dict.iter() {
        let key: String = k
            .extract()
            .map_err(|_| Error::Config(format!("config keys must be strings, got {k}")))?;
        let value = if v.is_instance_of::<PyBool>() {
            if v.extract::<bool>()? {
                "true"
            } else {
                "false"
            }
            .to_owned()
        } else {
            v.str()?.to_string()
        };
        settings.set(key, value);
    }
    Ok(settings)
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
        let ty = data
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
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

/// A pyarrow.Table (in the frame's chunks, not copied), or None.
pub fn frame_to_py(py: Python<'_>, frame: Option<Frame>) -> PyResult<Py<PyAny>> {
    let Some(frame) = frame else {
        return Ok(py.None());
    };
    let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(
        frame.batches.into_iter().map(Ok),
        frame.schema,
    ));
    Ok(reader.into_pyarrow(py)?.call_method0("read_all")?.unbind())
}

/// The frame with its top-level Utf8/LargeUtf8 columns as string views,
/// which Polars takes as they are (it converts plain strings itself, at
/// about ten times the cost). The views point into the same data buffers:
/// no string is copied. Columns over 4 GiB of text stay as they are.
pub fn with_string_views(frame: Frame) -> Result<Frame> {
    let viewable = |dt: &DataType| matches!(dt, DataType::Utf8 | DataType::LargeUtf8);
    if !frame
        .schema
        .fields()
        .iter()
        .any(|f| viewable(f.data_type()))
    {
        return Ok(frame);
    }
    let fits = |c: &ArrayRef| match c.data_type() {
        DataType::Utf8 => true,
        DataType::LargeUtf8 => c.as_string::<i64>().values().len() < u32::MAX as usize,
        _ => false,
    };
    // A column becomes views only if it fits in every batch, so all batches keep one schema.
    let convert: Vec<bool> = (0..frame.schema.fields().len())
        .map(|i| {
            viewable(frame.schema.field(i).data_type())
                && frame.batches.iter().all(|b| fits(b.column(i)))
        })
        .collect();
    let fields: Vec<_> = frame
        .schema
        .fields()
        .iter()
        .zip(&convert)
        .map(|(f, &c)| match c {
            true => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View)),
            false => f.clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        frame.schema.metadata().clone(),
    ));
    let batches = frame
        .batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(&convert)
                .map(|(col, &c)| -> ArrayRef {
                    match (c, col.data_type()) {
                        (true, DataType::Utf8) => {
                            Arc::new(crate::decode::string_views(col.as_string::<i32>()))
                        }
                        (true, DataType::LargeUtf8) => {
                            Arc::new(crate::decode::string_views(col.as_string::<i64>()))
                        }
                        _ => col.clone(),
                    }
                })
                .collect();
            let options = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
            RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Frame { schema, batches })
}
