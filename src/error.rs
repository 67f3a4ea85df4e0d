//! One error type for the native core, and its single conversion into the
//! Python exception tree declared in `python/tskafka/exceptions.py`.

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("{message}")]
    Kafka {
        message: String,
        code: String,
        retriable: bool,
        fatal: bool,
    },
    #[error("{message}")]
    Produce {
        message: String,
        rows_failed: u64,
        rows_delivered: u64,
    },
    #[error("cannot decode message at {topic}[{partition}]@{offset}: {reason}")]
    Decode {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
        payload: Vec<u8>,
    },
    #[error("{0}")]
    Schema(String),
    #[error("{0} is closed")]
    Closed(&'static str),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Broker(String),
    /// A Python exception (KeyboardInterrupt) caught while waiting natively.
    #[cfg(feature = "python")]
    #[error("interrupted")]
    Python(pyo3::PyErr),
}

impl Error {
    pub fn kafka(context: impl std::fmt::Display, err: &RdError) -> Self {
        let code = err.rdkafka_error_code();
        let retriable = code.is_some_and(is_retriable);
        let fatal = matches!(code, Some(RDKafkaErrorCode::Fatal));
        Error::Kafka {
            message: format!("{context}: {err}"),
            code: code.map_or_else(|| "Unknown".to_owned(), |c| format!("{c:?}")),
            retriable,
            fatal,
        }
    }

    pub fn kafka_code(context: impl std::fmt::Display, code: RDKafkaErrorCode) -> Self {
        Error::Kafka {
            message: format!("{context}: {code}"),
            code: format!("{code:?}"),
            retriable: is_retriable(code),
            fatal: matches!(code, RDKafkaErrorCode::Fatal),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(err: arrow::error::ArrowError) -> Self {
        Error::Schema(err.to_string())
    }
}

fn is_retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        QueueFull
            | MessageTimedOut
            | RequestTimedOut
            | BrokerTransportFailure
            | AllBrokersDown
            | LeaderNotAvailable
            | NotLeaderForPartition
            | NetworkException
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | NotCoordinator
            | CoordinatorNotAvailable
            | CoordinatorLoadInProgress
            | OperationTimedOut
            | UnknownTopicOrPartition
    )
}

#[cfg(feature = "python")]
mod python {
    use super::Error;
    use pyo3::exceptions::PyRuntimeError;
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyDict};

    fn raise(py: Python<'_>, class: &str, message: String, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
        let build = || -> PyResult<PyErr> {
            let cls = py.import("tskafka.exceptions")?.getattr(class)?;
            let kwargs = PyDict::new(py);
            for (k, v) in attrs {
                kwargs.set_item(k, v)?;
            }
            let exc = cls.call((message.clone(),), Some(&kwargs))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|e| PyRuntimeError::new_err(format!("{message} ({e})")))
    }

    impl From<Error> for PyErr {
        fn from(err: Error) -> PyErr {
            Python::attach(|py| {
                let message = err.to_string();
                let o = |v: Bound<'_, PyAny>| v.unbind();
                match err {
                    Error::Python(e) => e,
                    Error::Config(_) => raise(py, "ConfigError", message, &[]),
                    Error::Kafka {
                        code,
                        retriable,
                        fatal,
                        ..
                    } => raise(
                        py,
                        "KafkaError",
                        message,
                        &[
                            ("code", o(code.into_pyobject(py).unwrap().into_any())),
                            (
                                "retriable",
                                o(retriable.into_pyobject(py).unwrap().to_owned().into_any()),
                            ),
                            (
                                "fatal",
                                o(fatal.into_pyobject(py).unwrap().to_owned().into_any()),
                            ),
                        ],
                    ),
                    Error::Produce {
                        rows_failed,
                        rows_delivered,
                        ..
                    } => raise(
                        py,
                        "ProduceError",
                        message,
                        &[
                            (
                                "rows_failed",
                                o(rows_failed.into_pyobject(py).unwrap().into_any()),
                            ),
                            (
                                "rows_delivered",
                                o(rows_delivered.into_pyobject(py).unwrap().into_any()),
                            ),
                        ],
                    ),
                    Error::Decode {
                        topic,
                        partition,
                        offset,
                        payload,
                        ..
                    } => raise(
                        py,
                        "DecodeError",
                        message,
                        &[
                            ("topic", o(topic.into_pyobject(py).unwrap().into_any())),
                            (
                                "partition",
                                o(partition.into_pyobject(py).unwrap().into_any()),
                            ),
                            ("offset", o(offset.into_pyobject(py).unwrap().into_any())),
                            ("payload", o(PyBytes::new(py, &payload).into_any())),
                        ],
                    ),
                    Error::Schema(_) => raise(py, "SchemaError", message, &[]),
                    Error::Closed(_) => raise(py, "ClosedError", message, &[]),
                    Error::Timeout(_) => raise(py, "TimeoutError", message, &[]),
                    Error::Broker(_) => raise(py, "BrokerError", message, &[]),
                }
            })
        }
    }

    impl From<PyErr> for Error {
        fn from(err: PyErr) -> Self {
            Error::Python(err)
        }
    }
}
