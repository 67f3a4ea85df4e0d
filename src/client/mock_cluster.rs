//! librdkafka's mock cluster, in this process: brokers that can be taken
//! down, slowed, or told to answer requests with errors. It keeps only the
//! last 5 MiB of each partition, so keep test data small.

use std::time::Duration;

use rdkafka::mocking::MockCluster as RdMockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::error::{Error, Result};

/// A request type by its Kafka name (`Produce`, `Fetch`, ...).
pub fn api_key(name: &str) -> Result<RDKafkaApiKey> {
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

/// A Kafka error by librdkafka's name for it (`NotLeaderForPartition`, ...).
pub fn resp_err(name: &str) -> Result<RDKafkaRespErr> {
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

/// The mock cluster, until closed.
pub struct MockCluster {
    cluster: Option<RdMockCluster<'static, DefaultProducerContext>>,
}

impl MockCluster {
    pub fn new(brokers: i32) -> Result<Self> {
        if brokers < 1 {
            return Err(Error::Config(format!(
                "brokers must be >= 1, got {brokers}"
            )));
        }
        let cluster = mock("starting the mock cluster", RdMockCluster::new(brokers))?;
        Ok(Self {
            cluster: Some(cluster),
        })
    }

    fn get(&self) -> Result<&RdMockCluster<'static, DefaultProducerContext>> {
        self.cluster
            .as_ref()
            .ok_or(Error::Closed("this MockCluster"))
    }

    pub fn bootstrap_servers(&self) -> Result<String> {
        Ok(self.get()?.bootstrap_servers())
    }

    pub fn create_topic(&self, name: &str, partitions: i32, replication_factor: i32) -> Result<()> {
        mock(
            "creating a mock topic",
            self.get()?
                .create_topic(name, partitions, replication_factor),
        )
    }

    /// Takes broker `id` (1-based) down: its connections close and it refuses new ones.
    pub fn broker_down(&self, id: i32) -> Result<()> {
        mock("broker_down", self.get()?.broker_down(id))
    }

    pub fn broker_up(&self, id: i32) -> Result<()> {
        mock("broker_up", self.get()?.broker_up(id))
    }

    /// Delays every answer of broker `id` by `delay`.
    pub fn round_trip_time(&self, id: i32, delay: Duration) -> Result<()> {
        mock(
            "round_trip_time",
            self.get()?.broker_round_trip_time(id, delay),
        )
    }

    /// The next requests of type `request` (e.g. "Produce") are answered with
    /// `errors` in turn (e.g. ["NotLeaderForPartition", "RequestTimedOut"]).
    pub fn request_errors(&self, request: &str, errors: &[String]) -> Result<()> {
        let codes = errors
            .iter()
            .map(|e| resp_err(e))
            .collect::<Result<Vec<_>>>()?;
        self.get()?.request_errors(api_key(request)?, &codes);
        Ok(())
    }

    pub fn clear_request_errors(&self, request: &str) -> Result<()> {
        self.get()?.clear_request_errors(api_key(request)?);
        Ok(())
    }

    /// Moves the leadership of `topic`[`partition`] to broker `id`.
    pub fn partition_leader(&self, topic: &str, partition: i32, id: i32) -> Result<()> {
        mock(
            "partition_leader",
            self.get()?.partition_leader(topic, partition, Some(id)),
        )
    }

    pub fn close(&mut self) {
        self.cluster = None;
    }

    pub fn closed(&self) -> bool {
        self.cluster.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(api_key("Produce").is_ok());
        let err = api_key("Produce2").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown request type \"Produce2\": use Produce,"),
            "{err}"
        );
        assert!(resp_err("RequestTimedOut").is_ok());
        let err = resp_err("Oops").unwrap_err().to_string();
        assert!(err.starts_with("unknown error name \"Oops\""), "{err}");
    }
}
