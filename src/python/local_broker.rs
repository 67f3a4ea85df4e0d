use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;

use super::wait::detached;
use crate::broker::EmbeddedBroker;
use crate::error::Error;

/// A Kafka-compatible broker inside this process, on 127.0.0.1.
#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct LocalBroker {
    broker: Mutex<Option<EmbeddedBroker>>,
    bootstrap: String,
    port: u16,
}

#[pymethods]
impl LocalBroker {
    #[new]
    #[pyo3(signature = (port=None, storage=None, *, timeout=30.0))]
    fn new(
        py: Python<'_>,
        port: Option<u16>,
        storage: Option<String>,
        timeout: f64,
    ) -> PyResult<Self> {
        let broker = detached(py, || {
            EmbeddedBroker::start(
                port,
                storage.as_deref(),
                Duration::from_secs_f64(timeout.max(0.1)),
            )
        })?;
        Ok(Self {
            bootstrap: broker.bootstrap_servers(),
            port: broker.port(),
            broker: Mutex::new(Some(broker)),
        })
    }

    /// `host:port` for any Kafka client.
    #[getter]
    fn bootstrap_servers(&self) -> PyResult<String> {
        if self.closed() {
            return Err(Error::Closed("this LocalBroker").into());
        }
        Ok(self.bootstrap.clone())
    }

    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    #[getter]
    fn closed(&self) -> bool {
        self.broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Stops the broker; its data (in memory) is gone.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self
            .broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut b) = taken {
            detached(py, move || {
                b.shutdown();
                Ok(())
            })?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { "closed" } else { "running" };
        format!("LocalBroker({:?}, {state})", self.bootstrap)
    }
}
