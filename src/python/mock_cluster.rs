//! `MockCluster`: librdkafka's in-process mock cluster, for fault-injection tests.

use std::time::Duration;

use pyo3::prelude::*;

use crate::client::mock_cluster;
use crate::error::Result;

/// librdkafka's mock cluster, in this process: brokers that can be taken
/// down, slowed, or told to answer requests with errors. It keeps only the
/// last 5 MiB of each partition, so keep test data small.
#[pyclass(unsendable, module = "tskafka._tskafka")]
pub struct MockCluster {
    core: mock_cluster::MockCluster,
}

#[pymethods]
impl MockCluster {
    #[new]
    #[pyo3(signature = (brokers=3))]
    fn new(brokers: i32) -> Result<Self> {
        Ok(Self {
            core: mock_cluster::MockCluster::new(brokers)?,
        })
    }

    #[getter]
    fn bootstrap_servers(&self) -> Result<String> {
        self.core.bootstrap_servers()
    }

    #[pyo3(signature = (name, partitions=1, replication_factor=1))]
    fn create_topic(&self, name: &str, partitions: i32, replication_factor: i32) -> Result<()> {
        self.core.create_topic(name, partitions, replication_factor)
    }

    /// Takes broker `id` (1-based) down: its connections close and it refuses new ones.
    fn broker_down(&self, id: i32) -> Result<()> {
        self.core.broker_down(id)
    }

    fn broker_up(&self, id: i32) -> Result<()> {
        self.core.broker_up(id)
    }

    /// Delays every answer of broker `id` by `seconds`.
    fn round_trip_time(&self, id: i32, seconds: f64) -> Result<()> {
        self.core
            .round_trip_time(id, Duration::from_secs_f64(seconds.max(0.0)))
    }

    /// The next requests of type `request` (e.g. "Produce") are answered with
    /// `errors` in turn (e.g. ["NotLeaderForPartition", "RequestTimedOut"]).
    fn request_errors(&self, request: &str, errors: Vec<String>) -> Result<()> {
        self.core.request_errors(request, &errors)
    }

    fn clear_request_errors(&self, request: &str) -> Result<()> {
        self.core.clear_request_errors(request)
    }

    /// Moves the leadership of `topic`[`partition`] to broker `id`.
    fn partition_leader(&self, topic: &str, partition: i32, id: i32) -> Result<()> {
        self.core.partition_leader(topic, partition, id)
    }

    fn close(&mut self) {
        self.core.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.closed()
    }
}
