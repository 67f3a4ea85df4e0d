//! Topics made, deleted and grown.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::configs::topic_entries;
use super::{text, Broker, Context};
use crate::broker::storage::Refused;

fn refused(error: ResponseError, message: impl Into<String>) -> Refused {
    Refused {
        error,
        message: message.into(),
    }
}

pub fn create_topics(
    broker: &Broker,
    cx: &Context<'_>,
    r: &CreateTopicsRequest,
) -> CreateTopicsResponse {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let answer = CreatableTopicResult::default().with_name(t.name.clone());
            let partitions = match (t.num_partitions, t.assignments.len()) {
                (-1, 0) => Ok(1),
                (-1, n) => Ok(n as i32),
                (n, 0) => Ok(n),
                _ => Err(refused(
                    ResponseError::InvalidRequest,
                    "give either a partition count or replica assignments, not both",
                )),
            };
            let replicas_ok = t.replication_factor == -1 || t.replication_factor == 1;
            let broker_ids_ok = t
                .assignments
                .iter()
                .all(|a| a.broker_ids.iter().all(|b| b.0 == super::NODE_ID));
            let configs: Result<Vec<(String, String)>, Refused> = t
                .configs
                .iter()
                .map(|c| match &c.value {
                    Some(v) => Ok((c.name.to_string(), v.to_string())),
                    None => Err(refused(
                        ResponseError::InvalidConfig,
                        format!("topic config {} has no value", c.name.as_str()),
                    )),
                })
                .collect();
            let created = partitions.and_then(|n| {
                if !replicas_ok {
                    return Err(refused(
                        ResponseError::InvalidReplicationFactor,
                        format!(
                            "Replication factor: {} larger than available brokers: 1.",
                            t.replication_factor
                        ),
                    ));
                }
                if !broker_ids_ok {
                    return Err(refused(
                        ResponseError::InvalidReplicaAssignment,
                        "replica assignments may name broker 1 only: this cluster has one broker",
                    ));
                }
                broker
                    .storage
                    .create_topic(&t.name, n, configs?, r.validate_only)
            });
            match created {
                Ok(topic) => answer
                    .with_topic_id(topic.id)
                    .with_num_partitions(topic.partition_count())
                    .with_replication_factor(1)
                    .with_configs((cx.version >= 5).then(|| {
                        topic_entries(&topic, None)
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(text(e.name))
                                    .with_value(Some(text(e.value)))
                                    .with_config_source(e.source as i8)
                            })
                            .collect()
                    })),
                Err(refused) => answer
                    .with_error_code(refused.error.code())
                    .with_error_message(Some(text(refused.message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

pub fn delete_topics(
    broker: &Broker,
    cx: &Context<'_>,
    r: &DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let asked: Vec<(Option<TopicName>, uuid::Uuid)> = if cx.version >= 6 {
        r.topics
            .iter()
            .map(|t| (t.name.clone(), t.topic_id))
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| (Some(n.clone()), uuid::Uuid::nil()))
            .collect()
    };
    let responses = asked
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => broker.storage.topic(n),
                None => broker.storage.topic_by_id(&id),
            };
            let deleted = match &topic {
                Some(t) => broker.storage.delete_topic(t),
                None if name.is_none() => Err(refused(
                    ResponseError::UnknownTopicId,
                    format!("no topic has id {id}"),
                )),
                None => Err(refused(
                    ResponseError::UnknownTopicOrPartition,
                    "This server does not host this topic-partition.",
                )),
            };
            let answer = DeletableTopicResult::default()
                .with_name(name.or_else(|| topic.as_ref().map(|t| TopicName(text(t.name.clone())))))
                .with_topic_id(topic.as_ref().map_or(id, |t| t.id));
            match deleted {
                Ok(()) => answer,
                Err(refused) => answer
                    .with_error_code(refused.error.code())
                    .with_error_message((cx.version >= 5).then(|| text(refused.message))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub fn create_partitions(broker: &Broker, r: &CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = r
        .topics
        .iter()
        .map(|t| {
            let answer = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let grown = match broker.storage.topic(&t.name) {
                None => Err(refused(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {:?} does not exist", t.name.as_str()),
                )),
                Some(topic) => broker
                    .storage
                    .add_partitions(&topic, t.count, r.validate_only),
            };
            match grown {
                Ok(()) => answer,
                Err(refused) => answer
                    .with_error_code(refused.error.code())
                    .with_error_message(Some(text(refused.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
