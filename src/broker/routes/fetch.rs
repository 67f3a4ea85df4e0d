//! Records out: Fetch, answered at once when the records asked for are
//! there, else as soon as a produce brings some or `max_wait_ms` passes, as
//! a Kafka broker does; and the offsets around them (ListOffsets,
//! OffsetForLeaderEpoch, DeleteRecords).

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest, ListOffsetsRequest,
    ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Broker, Context};

/// The most one answer carries, whatever the client asks (Kafka's broker
/// `fetch.max.bytes` default).
const MAX_ANSWER_BYTES: u64 = 55 << 20;

/// A fetch answer, its records kept as the stored batches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FetchAnswer {
    pub read_committed: bool,
    pub topics: Vec<TopicAnswer>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicAnswer {
    pub name: TopicName,
    pub id: Uuid,
    pub partitions: Vec<PartitionAnswer>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionAnswer {
    pub index: i32,
    pub error: i16,
    pub high_watermark: i64,
    pub log_start: i64,
    pub batches: Vec<Bytes>,
}

impl FetchAnswer {
    fn bytes(&self) -> u64 {
        self.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .flat_map(|p| &p.batches)
            .map(|b| b.len() as u64)
            .sum()
    }
}

pub async fn fetch(broker: &Broker, cx: &Context<'_>, r: &FetchRequest) -> FetchAnswer {
    let max_bytes = u64::try_from(r.max_bytes)
        .unwrap_or(0)
        .min(MAX_ANSWER_BYTES);
    let min_bytes = u64::try_from(r.min_bytes).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_millis(r.max_wait_ms.max(0) as u64);
    loop {
        // Registered before reading, so a produce in between still wakes us.
        let mut appended = pin!(broker.storage.appended().notified());
        appended.as_mut().enable();
        let answer = read(broker, cx, r, max_bytes);
        let errors = answer
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error != 0);
        if errors || answer.bytes() >= min_bytes || Instant::now() >= deadline {
            return answer;
        }
        tokio::select! {
            _ = appended => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn read(broker: &Broker, cx: &Context<'_>, r: &FetchRequest, max_bytes: u64) -> FetchAnswer {
    let mut left = max_bytes;
    let by_id = cx.version >= 13;
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let topic = if by_id {
                broker.storage.topic_by_id(&t.topic_id)
            } else {
                broker.storage.topic(&t.topic)
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut answer = PartitionAnswer {
                        index: p.partition,
                        high_watermark: -1,
                        log_start: -1,
                        ..Default::default()
                    };
                    let Some(topic) = &topic else {
                        answer.error = if by_id {
                            ResponseError::UnknownTopicId.code()
                        } else {
                            ResponseError::UnknownTopicOrPartition.code()
                        };
                        return answer;
                    };
                    let limit = u64::try_from(p.partition_max_bytes).unwrap_or(0).min(left);
                    // The answer's first batch comes even over the limits (KIP-74).
                    let min_one = left == max_bytes;
                    match broker
                        .storage
                        .read(topic, p.partition, p.fetch_offset, limit, min_one)
                    {
                        Ok(f) => {
                            let size: u64 = f.batches.iter().map(|b| b.len() as u64).sum();
                            left = left.saturating_sub(size);
                            answer.high_watermark = f.high_watermark;
                            answer.log_start = f.log_start;
                            answer.batches = f.batches;
                        }
                        Err((e, hw, start)) => {
                            answer.error = e.code();
                            answer.high_watermark = hw;
                            answer.log_start = start;
                        }
                    }
                    answer
                })
                .collect();
            TopicAnswer {
                name: t.topic.clone(),
                id: t.topic_id,
                partitions,
            }
        })
        .collect();
    FetchAnswer {
        read_committed: r.isolation_level == 1,
        topics,
    }
}

pub fn list_offsets(
    broker: &Broker,
    cx: &Context<'_>,
    r: &ListOffsetsRequest,
) -> ListOffsetsResponse {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let topic = broker.storage.topic(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let found = topic
                        .as_ref()
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|t| {
                            broker
                                .storage
                                .list_offset(t, p.partition_index, p.timestamp)
                        });
                    match found {
                        Ok((offset, timestamp)) => {
                            let answer = answer.with_offset(offset).with_timestamp(timestamp);
                            // Leader epochs are in the answer from version 4.
                            if cx.version >= 4 {
                                answer.with_leader_epoch(0)
                            } else {
                                answer
                            }
                        }
                        Err(e) => answer
                            .with_error_code(e.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Every record here is of leader epoch 0: a partition's end is its high watermark.
pub fn offset_for_leader_epoch(
    broker: &Broker,
    r: &OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let topic = broker.storage.topic(&t.topic);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let end = topic
                        .as_ref()
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|t| broker.storage.list_offset(t, p.partition, -1));
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    match end {
                        Ok((offset, _)) if p.leader_epoch >= 0 => {
                            answer.with_leader_epoch(0).with_end_offset(offset)
                        }
                        Ok(_) => answer.with_leader_epoch(-1).with_end_offset(-1),
                        Err(e) => answer
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub fn delete_records(broker: &Broker, r: &DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let topic = broker.storage.topic(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let answer = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    let deleted = match &topic {
                        None => Err(ResponseError::UnknownTopicOrPartition),
                        Some(t) => broker
                            .storage
                            .delete_records(t, p.partition_index, p.offset)
                            .map_err(|r| r.error),
                    };
                    match deleted {
                        Ok(low) => answer.with_low_watermark(low),
                        Err(e) => answer.with_error_code(e.code()).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
