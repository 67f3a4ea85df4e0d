//! Topic and broker configs: described with Kafka's defaults and sources,
//! topic configs altered (AlterConfigs replaces a topic's set,
//! IncrementalAlterConfigs changes single keys). Broker configs are fixed.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{text, Broker, Context, NODE_ID};
use crate::broker::groups::{
    INITIAL_REBALANCE_DELAY, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS,
};
use crate::broker::storage::configs::{change_list, topic_default, LISTS, TOPIC_DEFAULTS};
use crate::broker::storage::{Refused, Topic};

/// Kafka's resource types.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Where a config's value comes from (Kafka's ConfigSource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    TopicConfig = 1,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

pub struct Entry {
    pub name: String,
    pub value: String,
    pub source: Source,
}

/// A topic's configs: every known key (or those in `keys`), set or default.
pub fn topic_entries(topic: &Topic, keys: Option<&[StrBytes]>) -> Vec<Entry> {
    let set = topic.configs();
    TOPIC_DEFAULTS
        .iter()
        .filter(|(k, _)| keys.is_none_or(|keys| keys.iter().any(|w| w.as_str() == *k)))
        .map(|(k, default)| match set.get(*k) {
            Some(v) => Entry {
                name: (*k).to_owned(),
                value: v.clone(),
                source: Source::TopicConfig,
            },
            // Kafka 4.1+ writes a cluster-wide min.insync.replicas when it
            // starts (KIP-966), and reports topics as inheriting it.
            None if *k == "min.insync.replicas" => Entry {
                name: (*k).to_owned(),
                value: (*default).to_owned(),
                source: Source::DynamicDefaultBroker,
            },
            None => Entry {
                name: (*k).to_owned(),
                value: (*default).to_owned(),
                source: Source::Default,
            },
        })
        .collect()
}

/// Kafka's config types, for version 3 on.
fn config_type(name: &str, value: &str) -> i8 {
    const BOOLEAN: i8 = 1;
    const STRING: i8 = 2;
    const LONG: i8 = 5;
    const DOUBLE: i8 = 6;
    const LIST: i8 = 7;
    if value == "true" || value == "false" {
        BOOLEAN
    } else if LISTS.contains(&name) || name.ends_with("listeners") {
        LIST
    } else if value.parse::<i64>().is_ok() {
        LONG
    } else if value.parse::<f64>().is_ok() {
        DOUBLE
    } else {
        STRING
    }
}

pub fn describe_configs(
    broker: &Broker,
    cx: &Context<'_>,
    r: &DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = r
        .resources
        .iter()
        .map(|res| {
            let answer = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let keys = res.configuration_keys.as_deref();
            let entries: Result<Vec<(Entry, bool)>, Refused> = match res.resource_type {
                TOPIC => match broker.storage.topic(&res.resource_name) {
                    Some(t) => Ok(topic_entries(&t, keys)
                        .into_iter()
                        .map(|e| (e, false))
                        .collect()),
                    None => Err(Refused {
                        error: ResponseError::UnknownTopicOrPartition,
                        message: format!("topic {:?} does not exist", res.resource_name.as_str()),
                    }),
                },
                BROKER => {
                    let name = res.resource_name.as_str();
                    if !name.is_empty() && name != NODE_ID.to_string() {
                        Err(Refused {
                            error: ResponseError::InvalidRequest,
                            message: format!("no broker {name:?}: this cluster's broker is 1"),
                        })
                    } else {
                        Ok(
                            broker_configs(&broker.listener(), broker.auto_create_topics)
                                .into_iter()
                                .filter(|(k, _)| {
                                    keys.is_none_or(|keys| keys.iter().any(|w| w.as_str() == *k))
                                })
                                .map(|(k, v)| {
                                    (
                                        Entry {
                                            name: k.to_owned(),
                                            value: v,
                                            source: Source::StaticBroker,
                                        },
                                        true,
                                    )
                                })
                                .collect(),
                        )
                    }
                }
                other => Err(Refused {
                    error: ResponseError::InvalidRequest,
                    message: format!(
                        "configs of resource type {other} are not kept here (topics: 2, broker: 4)"
                    ),
                }),
            };
            match entries {
                Ok(entries) => answer.with_configs(
                    entries
                        .into_iter()
                        .map(|(e, read_only)| {
                            let mut c = DescribeConfigsResourceResult::default()
                                .with_name(text(e.name.clone()))
                                .with_value(Some(text(e.value.clone())))
                                .with_read_only(read_only)
                                .with_config_source(e.source as i8);
                            if cx.version >= 3 {
                                c = c.with_config_type(config_type(&e.name, &e.value));
                            }
                            c
                        })
                        .collect(),
                ),
                Err(refused) => answer
                    .with_error_code(refused.error.code())
                    .with_error_message(Some(text(refused.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Applies `changes` to the topic named `name`, or says why not.
fn alter_topic(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: Result<Vec<(String, Option<String>)>, Refused>,
    replace: bool,
    validate_only: bool,
) -> Result<(), Refused> {
    match resource_type {
        TOPIC => {}
        BROKER => {
            return Err(Refused {
                error: ResponseError::InvalidRequest,
                message: "this broker's configs are fixed when it starts".into(),
            })
        }
        other => {
            return Err(Refused {
                error: ResponseError::InvalidRequest,
                message: format!("configs of resource type {other} are not kept here"),
            })
        }
    }
    let topic = broker.storage.topic(name).ok_or_else(|| Refused {
        error: ResponseError::UnknownTopicOrPartition,
        message: format!("topic {name:?} does not exist"),
    })?;
    broker
        .storage
        .alter_configs(&topic, changes?, replace, validate_only)
}

pub fn alter_configs(broker: &Broker, r: &AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = r
        .resources
        .iter()
        .map(|res| {
            let changes = Ok(res
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect());
            let done = alter_topic(
                broker,
                res.resource_type,
                &res.resource_name,
                changes,
                true,
                r.validate_only,
            );
            let answer = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match done {
                Ok(()) => answer,
                Err(refused) => answer
                    .with_error_code(refused.error.code())
                    .with_error_message(Some(text(refused.message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub fn incremental_alter_configs(
    broker: &Broker,
    r: &IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const APPEND: i8 = 2;
    const SUBTRACT: i8 = 3;
    let responses = r
        .resources
        .iter()
        .map(|res| {
            let current = |key: &str| {
                broker
                    .storage
                    .topic(&res.resource_name)
                    .and_then(|t| t.config(key))
                    .unwrap_or_default()
            };
            let changes = res
                .configs
                .iter()
                .map(|c| {
                    let name = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    match c.config_operation {
                        SET => Ok((name, value)),
                        DELETE => Ok((name, None)),
                        op @ (APPEND | SUBTRACT) if LISTS.contains(&name.as_str()) => {
                            let changed = change_list(
                                &current(&name),
                                value.as_deref().unwrap_or_default(),
                                op == APPEND,
                            );
                            Ok((name, Some(changed)))
                        }
                        APPEND | SUBTRACT if topic_default(&name).is_some() => Err(Refused {
                            error: ResponseError::InvalidConfig,
                            message: format!(
                                "{name} is not a list: only SET and DELETE apply to it"
                            ),
                        }),
                        APPEND | SUBTRACT => Err(Refused {
                            error: ResponseError::InvalidConfig,
                            message: format!("unknown topic config {name:?}"),
                        }),
                        other => Err(Refused {
                            error: ResponseError::InvalidRequest,
                            message: format!(
                                "unknown config operation {other} (SET 0, DELETE 1, APPEND 2, \
                                 SUBTRACT 3)"
                            ),
                        }),
                    }
                })
                .collect();
            let done = alter_topic(
                broker,
                res.resource_type,
                &res.resource_name,
                changes,
                false,
                r.validate_only,
            );
            let answer =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
            match done {
                Ok(()) => answer,
                Err(refused) => answer
                    .with_error_code(refused.error.code())
                    .with_error_message(Some(text(refused.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The broker's configs as clients read them (DescribeConfigs on the broker).
fn broker_configs(listener: &str, auto_create_topics: bool) -> Vec<(&'static str, String)> {
    vec![
        ("advertised.listeners", listener.to_owned()),
        ("listeners", listener.to_owned()),
        ("broker.id", "1".into()),
        ("node.id", "1".into()),
        ("auto.create.topics.enable", auto_create_topics.to_string()),
        ("num.partitions", "1".into()),
        ("default.replication.factor", "1".into()),
        ("min.insync.replicas", "1".into()),
        ("offsets.topic.replication.factor", "1".into()),
        ("log.retention.ms", "-1".into()),
        ("log.retention.bytes", "-1".into()),
        ("log.cleanup.policy", "delete".into()),
        ("message.max.bytes", "1048588".into()),
        ("delete.topic.enable", "true".into()),
        (
            "group.min.session.timeout.ms",
            MIN_SESSION_TIMEOUT_MS.to_string(),
        ),
        (
            "group.max.session.timeout.ms",
            MAX_SESSION_TIMEOUT_MS.to_string(),
        ),
        (
            "group.initial.rebalance.delay.ms",
            INITIAL_REBALANCE_DELAY.as_millis().to_string(),
        ),
    ]
}
