//! Replicas on a cluster of one: each partition has one replica, on this
//! broker, already its preferred leader. Elections have nothing to do,
//! reassignments are refused, and the log dirs are this broker's storage.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    DescribeLogDirsRequest, DescribeLogDirsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::{text, Broker, Context, NODE_ID};

/// Kafka's answer for one partition: ELECTION_NOT_NEEDED where it exists.
fn elect(broker: &Broker, topic: &TopicName, partition: i32) -> PartitionResult {
    let answer = PartitionResult::default().with_partition_id(partition);
    let exists = broker
        .storage
        .topic(topic)
        .is_some_and(|t| (0..t.partition_count()).contains(&partition));
    if exists {
        answer
            .with_error_code(ResponseError::ElectionNotNeeded.code())
            .with_error_message(Some(text(
                "Leader election not needed for topic partition: the only replica leads it",
            )))
    } else {
        answer
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
            .with_error_message(Some(text(format!(
                "topic {:?} has no partition {partition}",
                topic.as_str()
            ))))
    }
}

pub fn elect_leaders(broker: &Broker, r: &ElectLeadersRequest) -> ElectLeadersResponse {
    // Asked for every partition, Kafka lists only those it elected: none here.
    let results = r
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(
                    t.partitions
                        .iter()
                        .map(|&p| elect(broker, &t.topic, p))
                        .collect(),
                )
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

pub fn describe_log_dirs(
    broker: &Broker,
    cx: &Context<'_>,
    r: &DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let asked: Vec<(TopicName, Option<Vec<i32>>)> = match &r.topics {
        None => broker
            .storage
            .topics()
            .iter()
            .map(|t| (TopicName(text(t.name.clone())), None))
            .collect(),
        Some(topics) => topics
            .iter()
            .map(|t| (t.topic.clone(), Some(t.partitions.clone())))
            .collect(),
    };
    // Only partitions this broker hosts are listed, as Kafka does.
    let topics = asked
        .into_iter()
        .filter_map(|(name, partitions)| {
            let topic = broker.storage.topic(&name)?;
            let partitions = partitions.unwrap_or_else(|| (0..topic.partition_count()).collect());
            let described: Vec<DescribeLogDirsPartition> = partitions
                .into_iter()
                .filter_map(|p| {
                    let size = broker.storage.partition_size(&topic, p)?;
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(p)
                            .with_partition_size(size as i64),
                    )
                })
                .collect();
            (!described.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(name)
                    .with_partitions(described)
            })
        })
        .collect();
    let mut dir = DescribeLogDirsResult::default()
        .with_log_dir(text(broker.storage.location()))
        .with_topics(topics);
    if cx.version >= 4 {
        // Unknown, as Kafka answers for a volume it cannot measure.
        dir = dir.with_total_bytes(-1).with_usable_bytes(-1);
    }
    DescribeLogDirsResponse::default().with_results(vec![dir])
}

pub fn alter_partition_reassignments(
    broker: &Broker,
    r: &AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let responses = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let exists = broker.storage.topic(&t.name).is_some_and(|topic| {
                        (0..topic.partition_count()).contains(&p.partition_index)
                    });
                    let (error, message) = match &p.replicas {
                        _ if !exists => (
                            ResponseError::UnknownTopicOrPartition,
                            format!(
                                "topic {:?} has no partition {}",
                                t.name.as_str(),
                                p.partition_index
                            ),
                        ),
                        // Cancelling: there is never a reassignment under way.
                        None => (
                            ResponseError::NoReassignmentInProgress,
                            "no reassignment is in progress for this partition".to_owned(),
                        ),
                        Some(replicas)
                            if replicas.iter().all(|b| b.0 == NODE_ID) && replicas.len() == 1 =>
                        {
                            return answer;
                        }
                        Some(_) => (
                            ResponseError::InvalidReplicaAssignment,
                            "this cluster has one broker (1): a partition's only replica is on it"
                                .to_owned(),
                        ),
                    };
                    answer
                        .with_error_code(error.code())
                        .with_error_message(Some(text(message)))
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(r.allow_replication_factor_change)
        .with_responses(responses)
}

/// None is ever under way.
pub fn list_partition_reassignments() -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
}
