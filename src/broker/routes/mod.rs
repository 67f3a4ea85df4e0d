//! One handler per Kafka API, over the broker's storage and group
//! coordinator. `handle` answers a decoded request; the ApiVersions table
//! here says which APIs and versions this broker serves (anything else is
//! not advertised, and a client asking for it anyway is disconnected, as
//! Kafka does).

mod access;
mod cluster;
mod configs;
pub mod fetch;
mod groups;
mod produce;
mod replicas;
mod topics;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::groups::Coordinator;
use super::storage::Storage;
pub use fetch::FetchAnswer;

/// The broker's id: this is a cluster of one.
pub const NODE_ID: i32 = 1;
pub const CLUSTER_ID: &str = "tskafka";

/// Everything a request may touch.
pub struct Broker {
    pub storage: Storage,
    pub groups: Coordinator,
    /// Where clients reach this broker.
    pub host: String,
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: &'static str,
    /// Kafka's `auto.create.topics.enable`.
    pub auto_create_topics: bool,
}

impl Broker {
    pub fn listener(&self) -> String {
        format!("{}://{}:{}", self.security_protocol, self.host, self.port)
    }
}

/// Who asked, and with which version.
pub struct Context<'a> {
    pub version: i16,
    pub client_id: &'a str,
    /// The client's address as Kafka describes group members (`/127.0.0.1`).
    pub client_host: &'a str,
}

/// What goes back on the connection.
pub enum Answer {
    Message(Box<ResponseKind>),
    /// A fetch, written with its records shared rather than copied.
    Fetch(FetchAnswer),
    /// Nothing: a produce with acks=0.
    Nothing,
}

/// The APIs served and their versions (min, max), as ApiVersions answers.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
];

/// The versions of `key` served, if any.
pub fn versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// The ApiVersions answer (also for a client asking in a version too new).
pub fn versions_answer() -> kafka_protocol::messages::ApiVersionsResponse {
    cluster::api_versions()
}

pub(crate) fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The answer to `request`.
pub async fn handle(broker: &Broker, cx: &Context<'_>, request: RequestKind) -> Answer {
    use RequestKind as R;
    use ResponseKind as A;
    let answer = match request {
        R::ApiVersions(_) => A::ApiVersions(cluster::api_versions()),
        R::Metadata(r) => A::Metadata(cluster::metadata(broker, cx, &r)),
        R::DescribeCluster(r) => A::DescribeCluster(cluster::describe_cluster(broker, &r)),
        R::Produce(r) => return produce::produce(broker, cx, &r),
        R::InitProducerId(r) => A::InitProducerId(produce::init_producer_id(broker, &r)),
        R::Fetch(r) => return Answer::Fetch(fetch::fetch(broker, cx, &r).await),
        R::ListOffsets(r) => A::ListOffsets(fetch::list_offsets(broker, cx, &r)),
        R::OffsetForLeaderEpoch(r) => {
            A::OffsetForLeaderEpoch(fetch::offset_for_leader_epoch(broker, &r))
        }
        R::DeleteRecords(r) => A::DeleteRecords(fetch::delete_records(broker, &r)),
        R::CreateTopics(r) => A::CreateTopics(topics::create_topics(broker, cx, &r)),
        R::DeleteTopics(r) => A::DeleteTopics(topics::delete_topics(broker, cx, &r)),
        R::CreatePartitions(r) => A::CreatePartitions(topics::create_partitions(broker, &r)),
        R::DescribeConfigs(r) => A::DescribeConfigs(configs::describe_configs(broker, cx, &r)),
        R::AlterConfigs(r) => A::AlterConfigs(configs::alter_configs(broker, &r)),
        R::IncrementalAlterConfigs(r) => {
            A::IncrementalAlterConfigs(configs::incremental_alter_configs(broker, &r))
        }
        R::CreateAcls(r) => A::CreateAcls(access::create_acls(broker, &r)),
        R::DescribeAcls(r) => A::DescribeAcls(access::describe_acls(broker, &r)),
        R::DeleteAcls(r) => A::DeleteAcls(access::delete_acls(broker, &r)),
        R::DescribeUserScramCredentials(r) => {
            A::DescribeUserScramCredentials(access::describe_user_scram_credentials(&r))
        }
        R::AlterUserScramCredentials(r) => {
            A::AlterUserScramCredentials(access::alter_user_scram_credentials(&r))
        }
        R::ElectLeaders(r) => A::ElectLeaders(replicas::elect_leaders(broker, &r)),
        R::DescribeLogDirs(r) => A::DescribeLogDirs(replicas::describe_log_dirs(broker, cx, &r)),
        R::AlterPartitionReassignments(r) => {
            A::AlterPartitionReassignments(replicas::alter_partition_reassignments(broker, &r))
        }
        R::ListPartitionReassignments(_) => {
            A::ListPartitionReassignments(replicas::list_partition_reassignments())
        }
        R::FindCoordinator(r) => A::FindCoordinator(groups::find_coordinator(broker, cx, &r)),
        R::JoinGroup(r) => A::JoinGroup(groups::join_group(broker, cx, &r).await),
        R::SyncGroup(r) => A::SyncGroup(broker.groups.sync(&r).await),
        R::Heartbeat(r) => A::Heartbeat(groups::heartbeat(broker, &r)),
        R::LeaveGroup(r) => A::LeaveGroup(groups::leave_group(broker, cx, &r)),
        R::OffsetCommit(r) => A::OffsetCommit(groups::offset_commit(broker, cx, &r)),
        R::OffsetFetch(r) => A::OffsetFetch(groups::offset_fetch(broker, cx, &r)),
        R::ListGroups(r) => A::ListGroups(groups::list_groups(broker, cx, &r)),
        R::DescribeGroups(r) => A::DescribeGroups(groups::describe_groups(broker, cx, &r)),
        R::DeleteGroups(r) => A::DeleteGroups(groups::delete_groups(broker, &r)),
        // SASL is answered by the connection's gate; anything else is not advertised.
        _ => return Answer::Nothing,
    };
    Answer::Message(Box::new(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::storage::configs::TOPIC_DEFAULTS;
    use bytes::Bytes;
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;
    use kafka_protocol::records::Compression;

    fn broker() -> Broker {
        Broker {
            storage: Storage::in_memory(),
            groups: Coordinator::default(),
            host: "127.0.0.1".into(),
            port: 9092,
            security_protocol: "PLAINTEXT",
            auto_create_topics: false,
        }
    }

    fn name(s: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(s))
    }

    /// Requests of every served API, with something in them.
    fn requests(topic_id: uuid::Uuid) -> Vec<RequestKind> {
        let records: Bytes = crate::broker::storage::test_batch(&[1, 2], Compression::None);
        vec![
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("t"))),
                MetadataRequestTopic::default().with_name(Some(name("missing"))),
            ]))),
            RequestKind::Metadata(MetadataRequest::default()),
            RequestKind::DescribeCluster(DescribeClusterRequest::default()),
            RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
                vec![TopicProduceData::default()
                        .with_name(name("t"))
                        .with_topic_id(topic_id)
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(records.clone())),
                            PartitionProduceData::default()
                                .with_index(9)
                                .with_records(Some(records)),
                        ])],
            )),
            RequestKind::InitProducerId(InitProducerIdRequest::default()),
            RequestKind::Fetch(FetchRequest::default().with_max_bytes(1 << 20).with_topics(
                vec![FetchTopic::default()
                        .with_topic(name("t"))
                        .with_topic_id(topic_id)
                        .with_partitions(vec![
                            FetchPartition::default().with_partition_max_bytes(1 << 20),
                            FetchPartition::default()
                                .with_partition(1)
                                .with_fetch_offset(99),
                        ])],
            )),
            RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default().with_timestamp(-1),
                        ListOffsetsPartition::default().with_timestamp(0),
                        ListOffsetsPartition::default().with_timestamp(-3),
                    ]),
            ])),
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default()),
            RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(name("made"))
                    .with_num_partitions(2)
                    .with_replication_factor(1)
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("1000")))]),
                CreatableTopic::default()
                    .with_name(name("t"))
                    .with_num_partitions(1)
                    .with_replication_factor(3),
            ])),
            RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
            RequestKind::CreatePartitions(CreatePartitionsRequest::default()),
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t")),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("1")),
            ])),
            RequestKind::AlterConfigs(AlterConfigsRequest::default()),
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default()),
            RequestKind::FindCoordinator(
                FindCoordinatorRequest::default()
                    .with_key(StrBytes::from_static_str("g"))
                    .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
            ),
            RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(crate::broker::groups::group_id("g"))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))]),
            ),
            RequestKind::SyncGroup(SyncGroupRequest::default()),
            RequestKind::Heartbeat(HeartbeatRequest::default()),
            RequestKind::LeaveGroup(LeaveGroupRequest::default()),
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(crate::broker::groups::group_id("simple"))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![OffsetCommitRequestPartition::default()
                            .with_committed_offset(1)
                            .with_committed_metadata(Some(StrBytes::from_static_str(
                                "hello world",
                            )))])]),
            ),
            RequestKind::OffsetFetch(OffsetFetchRequest::default()),
            RequestKind::ListGroups(ListGroupsRequest::default()),
            RequestKind::DescribeGroups(
                DescribeGroupsRequest::default()
                    .with_groups(vec![crate::broker::groups::group_id("simple")]),
            ),
            RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
                AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(StrBytes::from_static_str("User:alice"))
                    .with_host(StrBytes::from_static_str("*"))
                    .with_operation(3)
                    .with_permission_type(3),
                AclCreation::default(),
            ])),
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
                DeleteAclsFilter::default()
                    .with_resource_type_filter(2)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
                DeleteAclsFilter::default(),
            ])),
            RequestKind::ElectLeaders(ElectLeadersRequest::default().with_topic_partitions(Some(
                vec![TopicPartitions::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![0, 5])],
            ))),
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
            RequestKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsRequest::default().with_topics(vec![
                    ReassignableTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            ReassignablePartition::default().with_replicas(Some(vec![BrokerId(2)])),
                            ReassignablePartition::default(),
                        ]),
                ]),
            ),
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default()),
            RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                    describe_user_scram_credentials_request::UserName::default()
                        .with_name(StrBytes::from_static_str("alice")),
                ])),
            ),
            RequestKind::AlterUserScramCredentials(
                AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                    alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_static_str("alice")),
                ]),
            ),
        ]
    }

    fn key_of(r: &RequestKind) -> ApiKey {
        match r {
            RequestKind::ApiVersions(_) => ApiKey::ApiVersions,
            RequestKind::Metadata(_) => ApiKey::Metadata,
            RequestKind::DescribeCluster(_) => ApiKey::DescribeCluster,
            RequestKind::Produce(_) => ApiKey::Produce,
            RequestKind::InitProducerId(_) => ApiKey::InitProducerId,
            RequestKind::Fetch(_) => ApiKey::Fetch,
            RequestKind::ListOffsets(_) => ApiKey::ListOffsets,
            RequestKind::OffsetForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
            RequestKind::DeleteRecords(_) => ApiKey::DeleteRecords,
            RequestKind::CreateTopics(_) => ApiKey::CreateTopics,
            RequestKind::DeleteTopics(_) => ApiKey::DeleteTopics,
            RequestKind::CreatePartitions(_) => ApiKey::CreatePartitions,
            RequestKind::DescribeConfigs(_) => ApiKey::DescribeConfigs,
            RequestKind::AlterConfigs(_) => ApiKey::AlterConfigs,
            RequestKind::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
            RequestKind::FindCoordinator(_) => ApiKey::FindCoordinator,
            RequestKind::JoinGroup(_) => ApiKey::JoinGroup,
            RequestKind::SyncGroup(_) => ApiKey::SyncGroup,
            RequestKind::Heartbeat(_) => ApiKey::Heartbeat,
            RequestKind::LeaveGroup(_) => ApiKey::LeaveGroup,
            RequestKind::OffsetCommit(_) => ApiKey::OffsetCommit,
            RequestKind::OffsetFetch(_) => ApiKey::OffsetFetch,
            RequestKind::ListGroups(_) => ApiKey::ListGroups,
            RequestKind::DescribeGroups(_) => ApiKey::DescribeGroups,
            RequestKind::DeleteGroups(_) => ApiKey::DeleteGroups,
            RequestKind::CreateAcls(_) => ApiKey::CreateAcls,
            RequestKind::DescribeAcls(_) => ApiKey::DescribeAcls,
            RequestKind::DeleteAcls(_) => ApiKey::DeleteAcls,
            RequestKind::ElectLeaders(_) => ApiKey::ElectLeaders,
            RequestKind::DescribeLogDirs(_) => ApiKey::DescribeLogDirs,
            RequestKind::AlterPartitionReassignments(_) => ApiKey::AlterPartitionReassignments,
            RequestKind::ListPartitionReassignments(_) => ApiKey::ListPartitionReassignments,
            RequestKind::DescribeUserScramCredentials(_) => ApiKey::DescribeUserScramCredentials,
            RequestKind::AlterUserScramCredentials(_) => ApiKey::AlterUserScramCredentials,
            _ => unreachable!(),
        }
    }

    /// Every served API, at every version served, answers with a message
    /// that encodes and decodes back (as a client reads it).
    #[tokio::test]
    async fn every_api_answers_well_formed_at_every_version() {
        let b = broker();
        let t = b.storage.create_topic("t", 1, Vec::new(), false).unwrap();
        let mut covered = std::collections::BTreeSet::new();
        let mut failures = Vec::new();
        for request in requests(t.id) {
            let key = key_of(&request);
            let (min, max) = versions(key).expect("served");
            for version in min..=max {
                let cx = Context {
                    version,
                    client_id: "test",
                    client_host: "/127.0.0.1",
                };
                let mut request = request.clone();
                if let RequestKind::JoinGroup(j) = &mut request {
                    // A group of its own: a second member would wait for the first to rejoin.
                    j.group_id = crate::broker::groups::group_id(&format!("g{version}"));
                }
                let frames = match handle(&b, &cx, request).await {
                    Answer::Message(m) => match crate::broker::wire::encode(*m, key, version, 7) {
                        Ok(frame) => vec![frame],
                        Err(e) => {
                            failures.push(format!("{key:?} v{version}: {e}"));
                            continue;
                        }
                    },
                    Answer::Fetch(f) => crate::broker::wire::encode_fetch(7, version, &f),
                    Answer::Nothing => {
                        failures.push(format!("{key:?} v{version}: no answer"));
                        continue;
                    }
                };
                let frame: Vec<u8> = frames.concat();
                let mut body = Bytes::from(frame).slice(4..);
                let header_version = key.response_header_version(version);
                ResponseHeader::decode(&mut body, header_version).unwrap();
                match ResponseKind::decode(key, &mut body, version) {
                    Err(e) => failures.push(format!("{key:?} v{version} does not decode: {e}")),
                    Ok(_) if !body.is_empty() => {
                        failures.push(format!("{key:?} v{version}: {} bytes left", body.len()))
                    }
                    Ok(_) => {}
                }
            }
            covered.insert(key as i16);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        let served: std::collections::BTreeSet<i16> = SUPPORTED
            .iter()
            .filter(|(k, _, _)| !matches!(k, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate))
            .map(|(k, _, _)| *k as i16)
            .collect();
        assert_eq!(covered, served);
        assert!(TOPIC_DEFAULTS.iter().any(|(k, _)| *k == "retention.ms"));
    }
}

#[cfg(test)]
mod auto_create_tests {
    use super::*;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, TopicName};

    /// Metadata creates a missing topic only when the client allows it
    /// (version 4 on; always before), as Kafka does.
    #[tokio::test]
    async fn metadata_honours_allow_auto_topic_creation() {
        let b = Broker {
            storage: Storage::in_memory(),
            groups: Coordinator::default(),
            host: "127.0.0.1".into(),
            port: 9092,
            security_protocol: "PLAINTEXT",
            auto_create_topics: true,
        };
        let ask = |name: &'static str, allow: bool| {
            RequestKind::Metadata(
                MetadataRequest::default()
                    .with_allow_auto_topic_creation(allow)
                    .with_topics(Some(vec![MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str(name))))])),
            )
        };
        for (name, allow, version, made) in [
            ("refused", false, 12, false),
            ("allowed", true, 12, true),
            ("old-client", false, 3, true),
        ] {
            let cx = Context {
                version,
                client_id: "test",
                client_host: "/127.0.0.1",
            };
            handle(&b, &cx, ask(name, allow)).await;
            assert_eq!(b.storage.topic(name).is_some(), made, "{name}");
        }
    }
}
