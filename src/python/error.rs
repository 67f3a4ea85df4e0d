//! The core's errors as the Python exception tree of `tskafka.exceptions`,
//! whose classes are imported once and kept.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyType};
use pyo3::PyTypeInfo;

use crate::error::Error;

mod exceptions {
    pyo3::import_exception!(tskafka.exceptions, TsKafkaError);
    pyo3::import_exception!(tskafka.exceptions, ConfigError);
    pyo3::import_exception!(tskafka.exceptions, SchemaError);
    pyo3::import_exception!(tskafka.exceptions, KafkaError);
    pyo3::import_exception!(tskafka.exceptions, ProduceError);
    pyo3::import_exception!(tskafka.exceptions, DecodeError);
    pyo3::import_exception!(tskafka.exceptions, ClosedError);
    pyo3::import_exception!(tskafka.exceptions, TimeoutError);
    pyo3::import_exception!(tskafka.exceptions, BrokerError);
}

use exceptions::*;

/// An instance of `class` with `message` and keyword attributes.
fn raise(
    class: Bound<'_, PyType>,
    message: String,
    attrs: impl FnOnce(&Bound<'_, PyDict>) -> PyResult<()>,
) -> PyErr {
    let py = class.py();
    let build = || -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        attrs(&kwargs)?;
        Ok(PyErr::from_value(class.call((message,), Some(&kwargs))?))
    };
    build().unwrap_or_else(|e| e)
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let message = err.to_string();
        match err {
            // The caller's own exception (KeyboardInterrupt, a callback's): the same object.
            Error::Caller(inner) => match inner.downcast::<PyErr>() {
                Ok(e) => *e,
                Err(other) => TsKafkaError::new_err(other.to_string()),
            },
            Error::Config(_) => ConfigError::new_err(message),
            Error::Schema(_) => SchemaError::new_err(message),
            Error::Closed(_) => ClosedError::new_err(message),
            Error::Timeout(_) => TimeoutError::new_err(message),
            Error::Broker(_) => BrokerError::new_err(message),
            Error::Thread { .. } | Error::Stopped => TsKafkaError::new_err(message),
            Error::Kafka {
                code,
                retriable,
                fatal,
                ..
            } => Python::attach(|py| {
                raise(KafkaError::type_object(py), message, |kw| {
                    kw.set_item("code", code)?;
                    kw.set_item("retriable", retriable)?;
                    kw.set_item("fatal", fatal)
                })
            }),
            Error::Produce {
                rows_failed,
                rows_delivered,
                ..
            } => Python::attach(|py| {
                raise(ProduceError::type_object(py), message, |kw| {
                    kw.set_item("rows_failed", rows_failed)?;
                    kw.set_item("rows_delivered", rows_delivered)
                })
            }),
            Error::Decode {
                topic,
                partition,
                offset,
                payload,
                ..
            } => Python::attach(|py| {
                raise(DecodeError::type_object(py), message, |kw| {
                    kw.set_item("topic", topic)?;
                    kw.set_item("partition", partition)?;
                    kw.set_item("offset", offset)?;
                    kw.set_item("payload", PyBytes::new(py, &payload))
                })
            }),
        }
    }
}

impl From<PyErr> for Error {
    fn from(err: PyErr) -> Self {
        Error::caller(err)
    }
}
