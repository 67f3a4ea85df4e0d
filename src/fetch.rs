//! Fetch requests answered by the embedded broker itself, from its storage:
//! at once when the records asked for are there, else as soon as a produce
//! brings them or `max_wait_ms` passes, as a Kafka broker does. Tansu's
//! fetch slept on a timer after every answer it built (at least a tick of
//! tokio's 1 ms clock), and waited out the whole `max_wait_ms` for an empty
//! one.

use std::pin::pin;
use std::time::Duration;

use tansu_sans_io::fetch_request::{FetchPartition, FetchTopic};
use tansu_sans_io::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData, SnapshotId,
};
use tansu_sans_io::record::deflated::{Batch, Frame};
use tansu_sans_io::{ErrorCode, FetchRequest, FetchResponse, IsolationLevel};
use tansu_storage::{Result, Storage, TopicId, Topition};
use tokio::time::Instant;

use crate::storage::Corrected;

/// The most an answer carries, whatever the client asks for (Tansu's limit).
const MAX_ANSWER_BYTES: u32 = 5 << 20;

/// The answer to `request`.
pub async fn answer(storage: &Corrected, request: &FetchRequest) -> Result<FetchResponse> {
    let isolation = match request.isolation_level {
        Some(level) => IsolationLevel::try_from(level)?,
        None => IsolationLevel::ReadUncommitted,
    };
    let max_bytes = request.max_bytes.map_or(MAX_ANSWER_BYTES, |n| {
        (n.max(0) as u32).min(MAX_ANSWER_BYTES)
    });
    let min_bytes = request.min_bytes.max(0) as u64;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let topics = request.topics.as_deref().unwrap_or_default();
    loop {
        // Registered before reading, so a produce in between still wakes us.
        let mut produced = pin!(storage.produced().notified());
        produced.as_mut().enable();
        let (responses, bytes) = read_topics(storage, topics, max_bytes, isolation).await?;
        if bytes >= min_bytes || Instant::now() >= deadline {
            return Ok(FetchResponse::default()
                .throttle_time_ms(Some(0))
                .error_code(Some(ErrorCode::None.into()))
                .session_id(Some(0))
                .node_endpoints(Some([].into()))
                .responses(Some(responses)));
        }
        tokio::select! {
            _ = produced => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Every asked-for partition's records from its fetch offset, within
/// `max_bytes` in all, and how many bytes of records that is.
async fn read_topics(
    storage: &Corrected,
    topics: &[FetchTopic],
    max_bytes: u32,
    isolation: IsolationLevel,
) -> Result<(Vec<FetchableTopicResponse>, u64)> {
    let mut budget = Budget {
        left: u64::from(max_bytes),
        used: 0,
    };
    let mut responses = Vec::with_capacity(topics.len());
    for topic in topics {
        let name_and_id = if topic.topic.is_some() || topic.topic_id.is_some() {
            let metadata = storage.metadata(Some(&[TopicId::from(topic)])).await?;
            metadata
                .topics()
                .first()
                .and_then(|t| Some((t.name.clone()?, t.topic_id)))
        } else {
            None
        };
        let Some((name, topic_id)) = name_and_id else {
            responses.push(unknown_topic(topic));
            continue;
        };
        let mut partitions = Vec::new();
        for p in topic.partitions.as_deref().unwrap_or_default() {
            partitions.push(read_partition(storage, &name, p, &mut budget, isolation).await?);
        }
        responses.push(
            FetchableTopicResponse::default()
                .topic(topic.topic.clone())
                .topic_id(topic_id)
                .partitions(Some(partitions)),
        );
    }
    Ok((responses, budget.used))
}

struct Budget {
    left: u64,
    used: u64,
}

/// A partition's batches from its fetch offset, within its own limit and
/// what is left of the answer's; the answer's first batch comes whole even
/// when it is larger (so a client always gets on).
async fn read_partition(
    storage: &Corrected,
    topic: &str,
    p: &FetchPartition,
    budget: &mut Budget,
    isolation: IsolationLevel,
) -> Result<PartitionData> {
    let tp = Topition::new(topic, p.partition);
    let mut left = budget.left.min(p.partition_max_bytes.max(0) as u64);
    let mut batches: Vec<Batch> = Vec::new();
    let mut offset = p.fetch_offset;
    'fetching: while left > 0 {
        let fetched = storage
            .fetch(
                &tp,
                offset,
                0,
                left.min(u64::from(u32::MAX)) as u32,
                isolation,
            )
            .await?;
        let Some(last) = fetched.last() else { break };
        if fetched[0].record_count == 0 {
            break;
        }
        offset = last.base_offset + i64::from(last.last_offset_delta) + 1;
        for batch in fetched {
            let size = batch.record_data.len() as u64;
            if size > left && budget.used > 0 {
                break 'fetching;
            }
            left = left.saturating_sub(size);
            budget.left = budget.left.saturating_sub(size);
            budget.used += size;
            batches.push(batch);
        }
    }
    let stage = storage.offset_stage(&tp).await?;
    Ok(PartitionData::default()
        .partition_index(p.partition)
        .error_code(ErrorCode::None.into())
        .high_watermark(stage.high_watermark())
        .last_stable_offset(Some(stage.last_stable()))
        .log_start_offset(Some(stage.log_start()))
        .diverging_epoch(None)
        .current_leader(None)
        .snapshot_id(None)
        .aborted_transactions(Some([].into()))
        .preferred_read_replica(Some(-1))
        .records((!batches.is_empty()).then_some(Frame { batches })))
}

/// Tansu's answer for a topic it does not have.
fn unknown_topic(topic: &FetchTopic) -> FetchableTopicResponse {
    let partitions = topic.partitions.as_deref().unwrap_or_default();
    FetchableTopicResponse::default()
        .topic(topic.topic.clone())
        .topic_id(Some([0; 16]))
        .partitions(Some(
            partitions
                .iter()
                .map(|p| {
                    PartitionData::default()
                        .partition_index(p.partition)
                        .error_code(ErrorCode::UnknownTopicOrPartition.into())
                        .high_watermark(0)
                        .last_stable_offset(Some(0))
                        .log_start_offset(Some(-1))
                        .diverging_epoch(Some(EpochEndOffset::default().epoch(-1).end_offset(-1)))
                        .current_leader(Some(
                            LeaderIdAndEpoch::default().leader_id(0).leader_epoch(0),
                        ))
                        .snapshot_id(Some(SnapshotId::default().end_offset(-1).epoch(-1)))
                        .aborted_transactions(Some([].into()))
                        .preferred_read_replica(Some(-1))
                })
                .collect(),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tansu_sans_io::create_topics_request::CreatableTopic;
    use tansu_sans_io::record::{inflated, Record};

    /// Topic "t", two partitions.
    fn topic() -> CreatableTopic {
        CreatableTopic::default()
            .name("t".into())
            .num_partitions(2)
            .replication_factor(1)
            .assignments(Some([].into()))
            .configs(Some([].into()))
    }

    async fn storage() -> Corrected {
        let url = crate::broker::storage_url(None).unwrap();
        let storage = crate::broker::open_storage(0, url).await.unwrap();
        storage.create_topic(topic(), false).await.unwrap();
        storage
    }

    /// A batch of one record of `len` bytes; returns its size in an answer.
    async fn produce(storage: &Corrected, partition: i32, len: usize) -> u64 {
        produce_records(storage, partition, 1, len, b'x').await
    }

    /// A batch of `records` records of `len` bytes of `byte`.
    async fn produce_records(
        storage: &Corrected,
        partition: i32,
        records: i32,
        len: usize,
        byte: u8,
    ) -> u64 {
        let mut builder = inflated::Batch::builder().last_offset_delta(records - 1);
        for i in 0..records {
            let value = Bytes::from(vec![byte; len]);
            builder = builder.record(Record::builder().offset_delta(i).value(Some(value)));
        }
        let batch: Batch = builder.build().and_then(TryInto::try_into).unwrap();
        let size = batch.record_data.len() as u64;
        storage
            .produce(None, &Topition::new("t", partition), batch)
            .await
            .unwrap();
        size
    }

    fn request(
        max_bytes: i32,
        partition_max: i32,
        max_wait_ms: i32,
        min_bytes: i32,
    ) -> FetchRequest {
        let partitions = (0..2)
            .map(|p| {
                FetchPartition::default()
                    .partition(p)
                    .fetch_offset(0)
                    .partition_max_bytes(partition_max)
            })
            .collect();
        FetchRequest::default()
            .max_wait_ms(max_wait_ms)
            .min_bytes(min_bytes)
            .max_bytes(Some(max_bytes))
            .topics(Some(vec![FetchTopic::default()
                .topic(Some("t".into()))
                .partitions(Some(partitions))]))
    }

    /// (records per partition, high watermark per partition) of an answer.
    fn shape(r: &FetchResponse) -> Vec<(usize, i64)> {
        r.responses.as_ref().unwrap()[0]
            .partitions
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| {
                let n = p.records.as_ref().map_or(0, |f| f.batches.len());
                (n, p.high_watermark)
            })
            .collect()
    }

    async fn answer_soon(storage: &Corrected, r: &FetchRequest) -> FetchResponse {
        tokio::time::timeout(Duration::from_secs(5), answer(storage, r))
            .await
            .expect("answered")
            .unwrap()
    }

    #[tokio::test]
    async fn records_at_hand_are_answered_at_once_within_the_limits() {
        let storage = storage().await;
        let mut size = 0;
        for _ in 0..3 {
            size = produce(&storage, 0, 1000).await;
        }
        for _ in 0..2 {
            produce(&storage, 1, 1000).await;
        }
        let wait = 60_000; // answered long before: records are there
                           // The answer's limit: two whole batches of the first partition.
        let r = answer_soon(&storage, &request((2 * size + 10) as i32, 1 << 20, wait, 1)).await;
        assert_eq!(shape(&r), [(2, 3), (0, 2)]);
        // A first batch larger than every limit still comes, alone.
        let r = answer_soon(&storage, &request(10, 10, wait, 1)).await;
        assert_eq!(shape(&r), [(1, 3), (0, 2)]);
        // Each partition's own limit.
        let r = answer_soon(&storage, &request(1 << 20, (size + 10) as i32, wait, 1)).await;
        assert_eq!(shape(&r), [(1, 3), (1, 2)]);
        let r = answer_soon(&storage, &request(1 << 20, 1 << 20, wait, 1)).await;
        assert_eq!(shape(&r), [(3, 3), (2, 2)]);
    }

    #[tokio::test]
    async fn an_empty_fetch_is_answered_when_records_come_or_at_max_wait() {
        let storage = storage().await;
        let started = Instant::now();
        let r = answer_soon(&storage, &request(1 << 20, 1 << 20, 50, 1)).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(shape(&r), [(0, 0), (0, 0)]);

        let waiting = {
            let storage = storage.clone();
            tokio::spawn(async move {
                let r = request(1 << 20, 1 << 20, 60_000, 1);
                tokio::time::timeout(Duration::from_secs(5), answer(&storage, &r)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        produce(&storage, 1, 10).await;
        let r = waiting
            .await
            .unwrap()
            .expect("woken by the produce")
            .unwrap();
        assert_eq!(shape(&r), [(0, 0), (1, 1)]);
    }

    /// Tansu's own answer (corrected), without the kept batches.
    async fn stored(storage: &Corrected, offset: i64, max_bytes: u32) -> Vec<Batch> {
        let tp = Topition::new("t", 0);
        let iso = IsolationLevel::ReadUncommitted;
        storage
            .fetch_stored(&tp, offset, 0, max_bytes, iso)
            .await
            .unwrap()
    }

    async fn kept(storage: &Corrected, offset: i64, max_bytes: u32) -> Vec<Batch> {
        let tp = Topition::new("t", 0);
        let iso = IsolationLevel::ReadUncommitted;
        storage.fetch(&tp, offset, 0, max_bytes, iso).await.unwrap()
    }

    #[tokio::test]
    async fn kept_batches_answer_as_the_stored_ones() {
        let storage = storage().await;
        let mut size = 0;
        for records in [1, 3, 2, 1, 4] {
            size = produce_records(&storage, 0, records, 100, b'a').await;
        }
        let check = |offsets: std::ops::Range<i64>| {
            let storage = storage.clone();
            async move {
                for offset in offsets {
                    for max in [0, 1, size as u32, 3 * size as u32, 1 << 20] {
                        let want = stored(&storage, offset, max).await;
                        // Read twice: the first keeps what it reads, the second uses it.
                        assert_eq!(kept(&storage, offset, max).await, want, "{offset} {max}");
                        assert_eq!(kept(&storage, offset, max).await, want, "{offset} {max}");
                    }
                }
            }
        };
        check(0..12).await;
        // Batches stored after some were kept.
        produce_records(&storage, 0, 2, 100, b'b').await;
        check(0..14).await;
    }

    #[tokio::test]
    async fn a_topic_made_again_is_not_answered_from_kept_batches() {
        let storage = storage().await;
        produce_records(&storage, 0, 2, 10, b'a').await;
        assert_eq!(kept(&storage, 0, 1 << 20).await.len(), 1);
        storage
            .delete_topic(&TopicId::Name("t".into()))
            .await
            .unwrap();
        storage.create_topic(topic(), false).await.unwrap();
        produce_records(&storage, 0, 2, 10, b'b').await;
        let batches = kept(&storage, 0, 1 << 20).await;
        assert_eq!(batches, stored(&storage, 0, 1 << 20).await);
        let inflated = inflated::Batch::try_from(batches[0].clone()).unwrap();
        assert_eq!(inflated.records[0].value.as_deref(), Some(&[b'b'; 10][..]));
    }

    #[tokio::test]
    async fn min_bytes_waits_for_more_until_max_wait() {
        let storage = storage().await;
        let size = produce(&storage, 0, 100).await;
        let started = Instant::now();
        let r = answer_soon(&storage, &request(1 << 20, 1 << 20, 100, (size + 1) as i32)).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(shape(&r), [(1, 1), (0, 0)]);
        // Enough bytes: at once.
        let r = answer_soon(&storage, &request(1 << 20, 1 << 20, 60_000, size as i32)).await;
        assert_eq!(shape(&r), [(1, 1), (0, 0)]);
    }
}
