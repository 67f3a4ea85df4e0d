//! `Admin`.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::client_settings;
use super::wait::{detached, interruptible};
use crate::client::admin;

#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Admin {
    core: admin::Admin,
}

#[pymethods]
impl Admin {
    #[new]
    #[pyo3(signature = (bootstrap_servers=None, config=None))]
    fn new(
        py: Python<'_>,
        bootstrap_servers: Option<String>,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let settings = client_settings(bootstrap_servers, config)?;
        let core = detached(py, || admin::Admin::new(settings))?;
        Ok(Self { core })
    }

    /// Creates a topic; with `exist_ok`, an existing topic is not an error.
    #[pyo3(signature = (name, partitions=1, replication_factor=1, config=None, *, exist_ok=false, timeout=30.0))]
    #[allow(clippy::too_many_arguments)]
    fn create_topic(
        &self,
        py: Python<'_>,
        name: String,
        partitions: i32,
        replication_factor: i32,
        config: Option<HashMap<String, String>>,
        exist_ok: bool,
        timeout: f64,
    ) -> PyResult<()> {
        let config = config.unwrap_or_default();
        interruptible(py, |check| {
            self.core.create_topic(
                &name,
                partitions,
                replication_factor,
                &config,
                exist_ok,
                timeout,
                check,
            )
        })
    }

    /// Deletes a topic; with `missing_ok`, a missing topic is not an error.
    #[pyo3(signature = (name, *, missing_ok=false, timeout=30.0))]
    fn delete_topic(
        &self,
        py: Python<'_>,
        name: String,
        missing_ok: bool,
        timeout: f64,
    ) -> PyResult<()> {
        interruptible(py, |check| {
            self.core.delete_topic(&name, missing_ok, timeout, check)
        })
    }

    /// Topic names on the cluster (internal topics left out), sorted.
    #[pyo3(signature = (timeout=10.0))]
    fn list_topics(&self, py: Python<'_>, timeout: f64) -> PyResult<Vec<String>> {
        interruptible(py, |check| self.core.list_topics(timeout, check))
    }

    /// One dict per partition: partition, leader, replicas, low and high watermarks.
    #[pyo3(signature = (name, timeout=10.0))]
    fn describe_topic<'py>(
        &self,
        py: Python<'py>,
        name: String,
        timeout: f64,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let partitions =
            interruptible(py, |check| self.core.describe_topic(&name, timeout, check))?;
        partitions
            .into_iter()
            .map(|p| {
                let d = PyDict::new(py);
                d.set_item("partition", p.partition)?;
                d.set_item("leader", p.leader)?;
                d.set_item("replicas", p.replicas)?;
                d.set_item("low", p.low)?;
                d.set_item("high", p.high)?;
                Ok(d)
            })
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("Admin({})", self.core.settings().redacted())
    }
}
