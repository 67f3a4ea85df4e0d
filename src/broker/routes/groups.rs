//! Consumer groups: finding the coordinator (this broker), membership (the
//! coordinator in `groups`), and committed offsets (the storage).

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as Found;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::cluster::OPERATIONS_NOT_ASKED;
use super::{text, Broker, Context, NODE_ID};
use crate::broker::groups::{group_id, Client, State};
use crate::broker::storage::Committed;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;
/// Operations on a group (Kafka's ACL operation codes as bits): read, delete, describe.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn code(outcome: Result<(), ResponseError>) -> i16 {
    outcome.err().map_or(0, |e| e.code())
}

pub fn find_coordinator(
    broker: &Broker,
    cx: &Context<'_>,
    r: &FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let host = text(broker.host.clone());
    let port = i32::from(broker.port);
    if cx.version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(
            r.coordinator_keys
                .iter()
                .map(|key| {
                    Found::default()
                        .with_key(key.clone())
                        .with_node_id(BrokerId(NODE_ID))
                        .with_host(host.clone())
                        .with_port(port)
                })
                .collect(),
        );
    }
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(host)
        .with_port(port)
}

pub async fn join_group(
    broker: &Broker,
    cx: &Context<'_>,
    r: &JoinGroupRequest,
) -> JoinGroupResponse {
    let client = Client {
        client_id: cx.client_id,
        host: cx.client_host,
    };
    broker.groups.join(r, cx.version, client).await
}

pub fn heartbeat(broker: &Broker, r: &HeartbeatRequest) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(code(broker.groups.heartbeat(r)))
}

pub fn leave_group(broker: &Broker, cx: &Context<'_>, r: &LeaveGroupRequest) -> LeaveGroupResponse {
    let (error, members) = broker.groups.leave(r, cx.version);
    LeaveGroupResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_members(if cx.version >= 3 { members } else { Vec::new() })
}

pub fn offset_commit(
    broker: &Broker,
    cx: &Context<'_>,
    r: &OffsetCommitRequest,
) -> OffsetCommitResponse {
    let allowed =
        broker
            .groups
            .check_commit(&r.group_id, r.generation_id_or_member_epoch, &r.member_id);
    let mut store = Vec::new();
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let topic = broker.storage.topic(&t.name);
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let error = if let Err(e) = allowed {
                    Err(e)
                } else if topic.as_ref().is_none_or(|t| {
                    p.partition_index < 0 || p.partition_index >= t.partition_count()
                }) {
                    Err(ResponseError::UnknownTopicOrPartition)
                } else if p
                    .committed_metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
                {
                    Err(ResponseError::OffsetMetadataTooLarge)
                } else {
                    store.push((
                        t.name.to_string(),
                        p.partition_index,
                        Committed {
                            offset: p.committed_offset,
                            leader_epoch: if cx.version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        },
                    ));
                    Ok(())
                };
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code(error))
            })
            .collect();
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    if let Err(refused) = broker.storage.commit(&r.group_id, store) {
        for t in &mut topics {
            for p in &mut t.partitions {
                if p.error_code == 0 {
                    p.error_code = refused.error.code();
                }
            }
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// Per topic, each partition asked for and its committed offset (-1: none).
type CommittedByTopic = Vec<(String, Vec<(i32, Committed)>)>;

/// What OffsetFetch answers for a partition without a committed offset.
fn not_committed() -> Committed {
    Committed {
        offset: -1,
        leader_epoch: -1,
        metadata: Some(String::new()),
    }
}

/// A group's committed offsets of the partitions asked for (None: all it has).
fn fetch_committed(
    broker: &Broker,
    group: &str,
    asked: Option<Vec<(String, Vec<i32>)>>,
) -> CommittedByTopic {
    let committed = broker.storage.committed(group);
    match asked {
        Some(asked) => asked
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| {
                        let c = committed.get(&(topic.clone(), p)).cloned();
                        (p, c.unwrap_or_else(not_committed))
                    })
                    .collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, Committed)>> = BTreeMap::new();
            for ((topic, p), c) in committed {
                by_topic.entry(topic).or_default().push((p, c));
            }
            by_topic.into_iter().collect()
        }
    }
}

pub fn offset_fetch(
    broker: &Broker,
    cx: &Context<'_>,
    r: &OffsetFetchRequest,
) -> OffsetFetchResponse {
    if cx.version >= 8 {
        let groups = r
            .groups
            .iter()
            .map(|g| {
                let asked = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let topics = fetch_committed(broker, &g.group_id, asked)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(text(topic)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, c)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(c.offset)
                                            .with_committed_leader_epoch(c.leader_epoch)
                                            .with_metadata(Some(text(
                                                c.metadata.unwrap_or_default(),
                                            )))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let asked = r.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let topics = fetch_committed(broker, &r.group_id, asked)
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(text(topic)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, c)| {
                            let mut answer = OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(c.offset)
                                .with_metadata(Some(text(c.metadata.unwrap_or_default())));
                            if cx.version >= 5 {
                                answer = answer.with_committed_leader_epoch(c.leader_epoch);
                            }
                            answer
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub fn list_groups(broker: &Broker, cx: &Context<'_>, r: &ListGroupsRequest) -> ListGroupsResponse {
    let mut all: BTreeMap<String, (String, State)> = broker
        .storage
        .groups_with_commits()
        .into_iter()
        .map(|g| (g, (String::new(), State::Empty)))
        .collect();
    for (id, protocol_type, state) in broker.groups.list() {
        all.insert(id, (protocol_type, state));
    }
    let states: Vec<String> = r
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let groups = all
        .into_iter()
        .filter(|(_, (_, state))| {
            cx.version < 4
                || states.is_empty()
                || states.contains(&state.name().to_ascii_lowercase())
        })
        .filter(|_| {
            cx.version < 5
                || r.types_filter.is_empty()
                || r.types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case("classic"))
        })
        .map(|(id, (protocol_type, state))| {
            let mut g = ListedGroup::default()
                .with_group_id(group_id(&id))
                .with_protocol_type(text(protocol_type));
            if cx.version >= 4 {
                g = g.with_group_state(text(state.name()));
            }
            if cx.version >= 5 {
                g = g.with_group_type(text("classic"));
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(
    broker: &Broker,
    cx: &Context<'_>,
    r: &DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = r
        .groups
        .iter()
        .map(|id: &GroupId| {
            let answer = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(
                    if cx.version >= 3 && r.include_authorized_operations {
                        GROUP_OPERATIONS
                    } else {
                        OPERATIONS_NOT_ASKED
                    },
                );
            match broker.groups.describe(id) {
                Some(g) => answer
                    .with_group_state(text(g.state.name()))
                    .with_protocol_type(text(g.protocol_type))
                    .with_protocol_data(text(g.protocol))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(text(m.member_id))
                                    .with_group_instance_id(
                                        (cx.version >= 4)
                                            .then_some(m.group_instance_id)
                                            .flatten()
                                            .map(text),
                                    )
                                    .with_client_id(text(m.client_id))
                                    .with_client_host(text(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                None if broker
                    .storage
                    .groups_with_commits()
                    .iter()
                    .any(|g| g == id.as_str()) =>
                {
                    answer.with_group_state(text(State::Empty.name()))
                }
                None => answer.with_group_state(text("Dead")),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(broker: &Broker, r: &DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = r
        .groups_names
        .iter()
        .map(|id| {
            let known = broker.groups.describe(id).is_some()
                || broker
                    .storage
                    .groups_with_commits()
                    .iter()
                    .any(|g| g == id.as_str());
            let error = if !known {
                ResponseError::GroupIdNotFound.code()
            } else if broker.groups.has_members(id) {
                ResponseError::NonEmptyGroup.code()
            } else {
                match broker.storage.forget_group(id) {
                    Ok(()) => 0,
                    Err(refused) => refused.error.code(),
                }
            };
            DeletableGroupResult::default()
                .with_group_id(id.clone())
                .with_error_code(error)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
