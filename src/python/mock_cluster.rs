//! `MockCluster`: librdkafka's in-process mock cluster, for fault-injection tests.

use std::time::Duration;

use pyo3::prelude::*;
use rdkafka::mocking::MockCluster as RdMockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::error::{Error, Result};

fn api_key(name: &str) -> Result<RDKafkaApiKey> {
    use RDKafkaApiKey::*;
    Ok(match name {
        "Produce" => Produce,
        "Fetch" => Fetch,
        "ListOffsets" => ListOffsets,
        "Metadata" => Metadata,
        "OffsetCommit" => OffsetCommit,
        "OffsetFetch" => OffsetFetch,
        "FindCoordinator" => FindCoordinator,
        "JoinGroup" => JoinGroup,
        "Heartbeat" => Heartbeat,
        "LeaveGroup" => LeaveGroup,
        "SyncGroup" => SyncGroup,
        "InitProducerId" => InitProducerId,
        other => {
            return Err(Error::Config(format!(
                "unknown request type {other:?}: use Produce, Fetch, ListOffsets, Metadata, \
                 OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, \
                 SyncGroup or InitProducerId"
            )))
        }
    })
}

fn resp_err(name: &str) -> Result<RDKafkaRespErr> {
    use RDKafkaRespErr::*;
    Ok(match name {
        "LeaderNotAvailable" => RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        "NotLeaderForPartition" => RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        "RequestTimedOut" => RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        "NetworkException" => RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        "NotEnoughReplicas" => RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        "NotEnoughReplicasAfterAppend" => RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        "MessageSizeTooLarge" => RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        "TopicAuthorizationFailed" => RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        "UnknownTopicOrPartition" => RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        "CoordinatorNotAvailable" => RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        "NotCoordinator" => RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        "InvalidRecord" => RD_KAFKA_RESP_ERR_INVALID_RECORD,
        other => {
            return Err(Error::Config(format!(
                "unknown error name {other:?}: use LeaderNotAvailable, NotLeaderForPartition, \
                 RequestTimedOut, NetworkException, NotEnoughReplicas, \
                 NotEnoughReplicasAfterAppend, MessageSizeTooLarge, TopicAuthorizationFailed, \
                 UnknownTopicOrPartition, CoordinatorNotAvailable, NotCoordinator or InvalidRecord"
            )))
        }
    })
}

fn mock<T>(what: &str, r: rdkafka::error::KafkaResult<T>) -> Result<T> {
    r.map_err(|e| Error::kafka(what, &e))
}

/// librdkafka's mock cluster, in this process: brokers that can be taken
/// down, slowed, or told to answer requests with errors. It keeps only the
/// last 5 MiB of each partition, so keep test data small.
#[pyclass(unsendable, module = "tskafka._tskafka")]
pub struct MockCluster {
    cluster: Option<RdMockCluster<'static, DefaultProducerContext>>,
}

impl MockCluster {
    fn get(&self) -> Result<&RdMockCluster<'static, DefaultProducerContext>> {
        self.cluster.as_ref().ok_or(Error::Closed("this MockCluster"))
    }
}

#[pymethods]
impl MockCluster {
    #[new]
    #[pyo3(signature = (brokers=3))]
    fn new(brokers: i32) -> PyResult<Self> {
        if brokers < 1 {
            return Err(Error::Config(format!("brokers must be >= 1, got {brokers}")).into());
        }
        let cluster = mock("starting the mock cluster", RdMockCluster::new(brokers))?;
        Ok(Self {
            cluster: Some(cluster),
        })
    }

    #[getter]
    fn bootstrap_servers(&self) -> PyResult<String> {
        Ok(self.get()?.bootstrap_servers())
    }

    #[pyo3(signature = (name, partitions=1, replication_factor=1))]
    fn create_topic(&self, name: &str, partitions: i32, replication_factor: i32) -> PyResult<()> {
        Ok(mock(
            "creating a mock topic",
            self.get()?
                .create_topic(name, partitions, replication_factor),
        )?)
    }

    /// Takes broker `id` (1-based) down: its connections close and it refuses new ones.
    fn broker_down(&self, id: i32) -> PyResult<()> {
        Ok(mock("broker_down", self.get()?.broker_down(id))?)
    }

    fn broker_up(&self, id: i32) -> PyResult<()> {
        Ok(mock("broker_up", self.get()?.broker_up(id))?)
    }

    /// Delays every answer of broker `id` by `seconds`.
    fn round_trip_time(&self, id: i32, seconds: f64) -> PyResult<()> {
        Ok(mock(
            "round_trip_time",
            self.get()?
                .broker_round_trip_time(id, Duration::from_secs_f64(seconds.max(0.0))),
        )?)
    }

    /// The next requests of type `request` (e.g. "Produce") are answered with
    /// `errors` in turn (e.g. ["NotLeaderForPartition", "RequestTimedOut"]).
    fn request_errors(&self, request: &str, errors: Vec<String>) -> PyResult<()> {
        let codes = errors
            .iter()
            .map(|e| resp_err(e))
            .collect::<Result<Vec<_>>>()?;
        self.get()?.request_errors(api_key(request)?, &codes);
        Ok(())
    }

    fn clear_request_errors(&self, request: &str) -> PyResult<()> {
        self.get()?.clear_request_errors(api_key(request)?);
        Ok(())
    }

    /// Moves the leadership of `topic`[`partition`] to broker `id`.
    fn partition_leader(&self, topic: &str, partition: i32, id: i32) -> PyResult<()> {
        Ok(mock(
            "partition_leader",
            self.get()?.partition_leader(topic, partition, Some(id)),
        )?)
    }

    fn close(&mut self) {
        self.cluster = None;
    }

    #[getter]
    fn closed(&self) -> bool {
        self.cluster.is_none()
    }
}
