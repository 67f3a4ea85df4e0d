//! What a client asks first: the APIs served, the cluster (one broker),
//! and topics' partitions.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::{text, Broker, Context, CLUSTER_ID, NODE_ID, SUPPORTED};
use crate::broker::storage::Topic;

/// Operations on a topic (Kafka's ACL operation codes as bits): every one
/// a topic has, as no ACLs are kept here.
const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
/// What a request that did not ask for authorized operations gets.
pub const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

pub fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(
        SUPPORTED
            .iter()
            .map(|(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(*key as i16)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect(),
    )
}

fn partitions(topic: &Topic) -> Vec<MetadataResponsePartition> {
    (0..topic.partition_count())
        .map(|i| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
        })
        .collect()
}

fn described(topic: &Topic, operations: bool) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(text(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_partitions(partitions(topic))
        .with_topic_authorized_operations(if operations {
            TOPIC_OPERATIONS
        } else {
            OPERATIONS_NOT_ASKED
        })
}

pub fn metadata(broker: &Broker, cx: &Context<'_>, r: &MetadataRequest) -> MetadataResponse {
    let operations = cx.version >= 8 && r.include_topic_authorized_operations;
    // Version 0 asks for every topic with an empty list; later versions with null.
    let asked = match &r.topics {
        Some(t) if cx.version == 0 && t.is_empty() => None,
        other => other.as_ref(),
    };
    let topics = match asked {
        None => broker
            .storage
            .topics()
            .iter()
            .map(|t| described(t, operations))
            .collect(),
        Some(asked) => asked
            .iter()
            .map(|a| {
                let found = match &a.name {
                    Some(name) => broker.storage.topic(name).or_else(|| {
                        let create = broker.auto_create_topics
                            && (cx.version < 4 || r.allow_auto_topic_creation);
                        create
                            .then(|| broker.storage.create_topic(name, 1, Vec::new(), false).ok())
                            .flatten()
                    }),
                    None => broker.storage.topic_by_id(&a.topic_id),
                };
                match found {
                    Some(t) => described(&t, operations),
                    None => {
                        let error = if a.name.is_none() {
                            ResponseError::UnknownTopicId
                        } else if a.name.as_ref().is_some_and(|n| {
                            crate::broker::storage::configs::check_topic_name(n).is_err()
                        }) {
                            ResponseError::InvalidTopicException
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        MetadataResponseTopic::default()
                            .with_error_code(error.code())
                            .with_name(a.name.clone())
                            .with_topic_id(a.topic_id)
                            .with_topic_authorized_operations(if operations {
                                0
                            } else {
                                OPERATIONS_NOT_ASKED
                            })
                    }
                }
            })
            .collect(),
    };
    let mut response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_host(text(broker.host.clone()))
            .with_port(i32::from(broker.port))])
        .with_cluster_id(Some(text(CLUSTER_ID)))
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(topics);
    if (8..=10).contains(&cx.version) && r.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS;
    }
    response
}

pub fn describe_cluster(broker: &Broker, r: &DescribeClusterRequest) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(text(CLUSTER_ID))
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(NODE_ID))
            .with_host(text(broker.host.clone()))
            .with_port(i32::from(broker.port))])
        .with_cluster_authorized_operations(if r.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_ASKED
        })
}
