//! Tansu's in-memory storage, with two answers corrected so that clients
//! resume and seek without losing rows:
//!
//! - a fetch from an offset inside a record batch must return that batch
//!   (Tansu returned the next one, skipping the rest of the batch);
//! - ListOffsets must answer from the high watermark (latest) and from the
//!   records' timestamps (Tansu used the last batch's base offset and the
//!   time the batch was stored).
//!
//! Everything else is delegated unchanged. Fetches waiting for records
//! are woken by `produced` when a produce or a transaction's end stores some.
//! In memory, batches once read are kept (`Batches`): a stored batch never
//! changes, and Tansu lists, reads and CRC-checks every batch it returns on
//! every fetch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tansu_sans_io::{
    create_topics_request::CreatableTopic,
    delete_groups_response::DeletableGroupResult,
    delete_records_request::DeleteRecordsTopic,
    delete_records_response::DeleteRecordsTopicResult,
    describe_cluster_response::DescribeClusterBroker,
    describe_configs_response::DescribeConfigsResult,
    describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic,
    incremental_alter_configs_request::AlterConfigsResource,
    incremental_alter_configs_response::AlterConfigsResourceResponse,
    list_groups_response::ListedGroup,
    record::{deflated, inflated},
    to_timestamp,
    txn_offset_commit_response::TxnOffsetCommitResponseTopic,
    ConfigResource, ErrorCode, IsolationLevel, ListOffset, ScramMechanism,
};
use tansu_storage::{
    BrokerRegistrationRequest, GroupDetail, ListOffsetResponse, MetadataResponse, NamedGroupDetail,
    OffsetCommitRequest, OffsetStage, ProducerIdResponse, Result, ScramCredential, Storage,
    StorageContainer, TopicId, Topition, TxnAddPartitionsRequest, TxnAddPartitionsResponse,
    TxnOffsetCommitRequest, UpdateError, Version,
};
use tokio::sync::Notify;
use url::Url;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct Corrected {
    storage: StorageContainer,
    produced: Arc<Notify>,
    /// None when stored elsewhere than in memory: kept batches would then
    /// be a second copy.
    batches: Option<Arc<Mutex<Batches>>>,
}

/// Record batches Tansu returned, by partition and base offset, valid
/// until records can go (a topic or records deleted, retention): then all
/// are dropped and `generation` moves on, so that a fetch under way when
/// that happened does not keep what it read.
#[derive(Debug, Default)]
struct Batches {
    generation: u64,
    kept: HashMap<Topition, BTreeMap<i64, deflated::Batch>>,
}

impl Batches {
    /// The kept batches from the one holding `offset` on, while each
    /// follows the last and starts before `end`; up to and including the
    /// first that takes the total past `max_bytes` (as Tansu counts).
    /// With the offset after them and whether the limit was reached.
    fn run(
        &self,
        tp: &Topition,
        offset: i64,
        end: i64,
        max_bytes: u32,
    ) -> (Vec<deflated::Batch>, i64, bool) {
        let mut out = Vec::new();
        let mut next = offset;
        let Some(kept) = self.kept.get(tp) else {
            return (out, next, false);
        };
        let Some((&first, _)) = kept.range(..=offset).next_back() else {
            return (out, next, false);
        };
        let mut left = u64::from(max_bytes);
        for (&base, batch) in kept.range(first..) {
            let last = base + i64::from(batch.last_offset_delta);
            if base >= end || (base != first && base != next) || last < offset {
                break;
            }
            out.push(batch.clone());
            next = last + 1;
            let size = stored_size(batch);
            if size > left {
                return (out, next, true);
            }
            left -= size;
        }
        (out, next, false)
    }
}

/// A batch's size as Tansu stores it and counts it against a fetch's limit.
fn stored_size(batch: &deflated::Batch) -> u64 {
    12 + batch.batch_length.max(0) as u64
}

impl Corrected {
    pub fn new(storage: StorageContainer, in_memory: bool) -> Self {
        Self {
            storage,
            produced: Arc::default(),
            batches: in_memory.then(Arc::default),
        }
    }

    /// Notified when records are stored or a transaction ends.
    pub fn produced(&self) -> &Notify {
        &self.produced
    }

    /// Drops every kept batch; after records may have gone.
    fn forget_batches(&self) {
        if let Some(batches) = &self.batches {
            let mut b = batches.lock().unwrap_or_else(|e| e.into_inner());
            b.generation += 1;
            b.kept.clear();
        }
    }

    /// Tansu's fetch, corrected to start at the batch holding `offset`.
    pub(crate) async fn fetch_stored(
        &self,
        topition: &Topition,
        offset: i64,
        min_bytes: u32,
        max_bytes: u32,
        isolation: IsolationLevel,
    ) -> Result<Vec<deflated::Batch>> {
        let batches = self
            .storage
            .fetch(topition, offset, min_bytes, max_bytes, isolation)
            .await?;
        if batches.first().is_some_and(|b| b.base_offset == offset) {
            return Ok(batches);
        }
        let start = self
            .batch_start(topition, offset, isolation, batches.first())
            .await?;
        if start == offset {
            return Ok(batches);
        }
        self.storage
            .fetch(topition, start, min_bytes, max_bytes, isolation)
            .await
    }

    /// The first batch at or after `offset` (Tansu's own fetch order).
    async fn first_from(
        &self,
        tp: &Topition,
        offset: i64,
        iso: IsolationLevel,
    ) -> Result<Option<deflated::Batch>> {
        Ok(self
            .storage
            .fetch(tp, offset, 0, 1, iso)
            .await?
            .into_iter()
            .next())
    }

    /// The base offset of the batch holding `offset`: the largest base <= offset.
    /// `first` is the first batch that Tansu fetched from `offset`.
    async fn batch_start(
        &self,
        tp: &Topition,
        offset: i64,
        iso: IsolationLevel,
        first: Option<&deflated::Batch>,
    ) -> Result<i64> {
        if first.is_some_and(|b| b.base_offset <= offset) {
            return Ok(offset);
        }
        let stage = self.storage.offset_stage(tp).await?;
        if offset >= stage.high_watermark() || offset < stage.log_start() {
            return Ok(offset);
        }
        let (mut lo, mut hi) = (stage.log_start(), offset);
        match self.first_from(tp, lo, iso).await? {
            Some(b) if b.base_offset <= offset => lo = b.base_offset,
            _ => return Ok(offset),
        }
        // Largest o with a batch base in [o, offset]; that base is o itself.
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            match self.first_from(tp, mid, iso).await? {
                Some(b) if b.base_offset <= offset => lo = mid,
                _ => hi = mid - 1,
            }
        }
        Ok(lo)
    }

    /// The first offset whose record timestamp is >= `at_ms`, and that timestamp.
    async fn offset_for_time(&self, tp: &Topition, at_ms: i64) -> Result<Option<(i64, i64)>> {
        let stage = self.storage.offset_stage(tp).await?;
        let mut next = stage.log_start();
        while next < stage.high_watermark() {
            let batches = self
                .storage
                .fetch(tp, next, 0, 4 << 20, IsolationLevel::ReadUncommitted)
                .await?;
            let Some(last) = batches.last() else { break };
            next = last.base_offset + last.last_offset_delta as i64 + 1;
            for b in batches {
                if b.max_timestamp < at_ms {
                    continue;
                }
                let base = b.base_offset;
                let inflated = inflated::Batch::try_from(b)?;
                for r in &inflated.records {
                    let ts = inflated.base_timestamp + r.timestamp_delta;
                    if ts >= at_ms {
                        return Ok(Some((base + r.offset_delta as i64, ts)));
                    }
                }
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Storage for Corrected {
    async fn fetch(
        &self,
        topition: &'_ Topition,
        offset: i64,
        min_bytes: u32,
        max_bytes: u32,
        isolation: IsolationLevel,
    ) -> Result<Vec<deflated::Batch>> {
        let Some(kept) = &self.batches else {
            return self
                .fetch_stored(topition, offset, min_bytes, max_bytes, isolation)
                .await;
        };
        let stage = self.storage.offset_stage(topition).await?;
        let end = if isolation == IsolationLevel::ReadCommitted {
            stage.last_stable()
        } else {
            stage.high_watermark()
        };
        let (generation, mut batches, next, full) = {
            let kept = kept.lock().unwrap_or_else(|e| e.into_inner());
            let (batches, next, full) = kept.run(topition, offset, end, max_bytes);
            (kept.generation, batches, next, full)
        };
        if full || next >= end {
            return Ok(batches);
        }
        let taken: u64 = batches.iter().map(stored_size).sum();
        let left = u64::from(max_bytes).saturating_sub(taken) as u32;
        let read = self
            .fetch_stored(topition, next, min_bytes, left, isolation)
            .await?;
        let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.generation == generation {
            let partition = kept.kept.entry(topition.clone()).or_default();
            for b in &read {
                partition.insert(b.base_offset, b.clone());
            }
        }
        batches.extend(read);
        Ok(batches)
    }

    async fn list_offsets(
        &self,
        isolation_level: IsolationLevel,
        offsets: &[(Topition, ListOffset)],
    ) -> Result<Vec<(Topition, ListOffsetResponse)>> {
        let mut out = Vec::with_capacity(offsets.len());
        for (tp, request) in offsets {
            let stage: OffsetStage = self.storage.offset_stage(tp).await?;
            let (offset, timestamp) = match request {
                ListOffset::Earliest => (stage.log_start(), None),
                ListOffset::Latest => (
                    if isolation_level == IsolationLevel::ReadCommitted {
                        stage.last_stable()
                    } else {
                        stage.high_watermark()
                    },
                    None,
                ),
                ListOffset::Timestamp(at) => {
                    match self.offset_for_time(tp, to_timestamp(at)?).await? {
                        Some((offset, ts)) => (offset, tansu_sans_io::to_system_time(ts).ok()),
                        None => (-1, None),
                    }
                }
            };
            out.push((
                tp.clone(),
                ListOffsetResponse {
                    error_code: ErrorCode::None,
                    timestamp,
                    offset: Some(offset),
                },
            ));
        }
        Ok(out)
    }

    async fn register_broker(&self, r: BrokerRegistrationRequest) -> Result<()> {
        self.storage.register_broker(r).await
    }
    async fn create_topic(&self, topic: CreatableTopic, validate_only: bool) -> Result<Uuid> {
        self.storage.create_topic(topic, validate_only).await
    }
    async fn incremental_alter_resource(
        &self,
        r: AlterConfigsResource,
    ) -> Result<AlterConfigsResourceResponse> {
        self.storage.incremental_alter_resource(r).await
    }
    async fn delete_records(
        &self,
        topics: &[DeleteRecordsTopic],
    ) -> Result<Vec<DeleteRecordsTopicResult>> {
        let deleted = self.storage.delete_records(topics).await;
        self.forget_batches();
        deleted
    }
    async fn delete_topic(&self, topic: &TopicId) -> Result<ErrorCode> {
        let deleted = self.storage.delete_topic(topic).await;
        self.forget_batches();
        deleted
    }
    async fn brokers(&self) -> Result<Vec<DescribeClusterBroker>> {
        self.storage.brokers().await
    }
    async fn produce(
        &self,
        txn: Option<&str>,
        tp: &Topition,
        batch: deflated::Batch,
    ) -> Result<i64> {
        // Tansu stores batches for a deleted topic and acknowledges them, so a
        // producer still holding its metadata would count lost rows delivered.
        let metadata = self.storage.metadata(Some(&[TopicId::from(tp)])).await?;
        let exists = metadata.topics().first().is_some_and(|t| {
            t.error_code == i16::from(ErrorCode::None)
                && t.partitions.as_ref().is_some_and(|p| !p.is_empty())
        });
        if !exists {
            return Err(tansu_storage::Error::Api(
                ErrorCode::UnknownTopicOrPartition,
            ));
        }
        let offset = self.storage.produce(txn, tp, batch).await?;
        self.produced.notify_waiters();
        Ok(offset)
    }
    async fn offset_stage(&self, tp: &Topition) -> Result<OffsetStage> {
        self.storage.offset_stage(tp).await
    }
    async fn offset_commit(
        &self,
        group_id: &str,
        retention: Option<Duration>,
        offsets: &[(Topition, OffsetCommitRequest)],
    ) -> Result<Vec<(Topition, ErrorCode)>> {
        self.storage
            .offset_commit(group_id, retention, offsets)
            .await
    }
    async fn offset_fetch(
        &self,
        group_id: Option<&str>,
        topics: &[Topition],
        require_stable: Option<bool>,
    ) -> Result<BTreeMap<Topition, i64>> {
        self.storage
            .offset_fetch(group_id, topics, require_stable)
            .await
    }
    async fn committed_offset_topitions(&self, group_id: &str) -> Result<BTreeMap<Topition, i64>> {
        self.storage.committed_offset_topitions(group_id).await
    }
    async fn metadata(&self, topics: Option<&[TopicId]>) -> Result<MetadataResponse> {
        self.storage.metadata(topics).await
    }
    async fn upsert_user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    ) -> Result<()> {
        self.storage
            .upsert_user_scram_credential(user, mechanism, credential)
            .await
    }
    async fn delete_user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<()> {
        self.storage
            .delete_user_scram_credential(user, mechanism)
            .await
    }
    async fn user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        self.storage.user_scram_credential(user, mechanism).await
    }
    async fn describe_config(
        &self,
        name: &str,
        resource: ConfigResource,
        keys: Option<&[String]>,
    ) -> Result<DescribeConfigsResult> {
        self.storage.describe_config(name, resource, keys).await
    }
    async fn list_groups(&self, states_filter: Option<&[String]>) -> Result<Vec<ListedGroup>> {
        self.storage.list_groups(states_filter).await
    }
    async fn delete_groups(
        &self,
        group_ids: Option<&[String]>,
    ) -> Result<Vec<DeletableGroupResult>> {
        self.storage.delete_groups(group_ids).await
    }
    async fn describe_groups(
        &self,
        group_ids: Option<&[String]>,
        include_authorized_operations: bool,
    ) -> Result<Vec<NamedGroupDetail>> {
        self.storage
            .describe_groups(group_ids, include_authorized_operations)
            .await
    }
    async fn describe_topic_partitions(
        &self,
        topics: Option<&[TopicId]>,
        partition_limit: i32,
        cursor: Option<Topition>,
    ) -> Result<Vec<DescribeTopicPartitionsResponseTopic>> {
        self.storage
            .describe_topic_partitions(topics, partition_limit, cursor)
            .await
    }
    async fn update_group(
        &self,
        group_id: &str,
        detail: GroupDetail,
        version: Option<Version>,
    ) -> Result<Version, UpdateError<GroupDetail>> {
        self.storage.update_group(group_id, detail, version).await
    }
    async fn init_producer(
        &self,
        transaction_id: Option<&str>,
        transaction_timeout_ms: i32,
        producer_id: Option<i64>,
        producer_epoch: Option<i16>,
    ) -> Result<ProducerIdResponse> {
        self.storage
            .init_producer(
                transaction_id,
                transaction_timeout_ms,
                producer_id,
                producer_epoch,
            )
            .await
    }
    async fn txn_add_offsets(
        &self,
        transaction_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
    ) -> Result<ErrorCode> {
        self.storage
            .txn_add_offsets(transaction_id, producer_id, producer_epoch, group_id)
            .await
    }
    async fn txn_add_partitions(
        &self,
        partitions: TxnAddPartitionsRequest,
    ) -> Result<TxnAddPartitionsResponse> {
        self.storage.txn_add_partitions(partitions).await
    }
    async fn txn_offset_commit(
        &self,
        offsets: TxnOffsetCommitRequest,
    ) -> Result<Vec<TxnOffsetCommitResponseTopic>> {
        self.storage.txn_offset_commit(offsets).await
    }
    async fn txn_end(
        &self,
        transaction_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        committed: bool,
    ) -> Result<ErrorCode> {
        let code = self
            .storage
            .txn_end(transaction_id, producer_id, producer_epoch, committed)
            .await?;
        self.produced.notify_waiters();
        Ok(code)
    }
    async fn maintain(&self, now: SystemTime) -> Result<()> {
        let maintained = self.storage.maintain(now).await;
        self.forget_batches();
        maintained
    }
    async fn cluster_id(&self) -> Result<String> {
        self.storage.cluster_id().await
    }
    async fn node(&self) -> Result<i32> {
        self.storage.node().await
    }
    async fn advertised_listener(&self) -> Result<Url> {
        self.storage.advertised_listener().await
    }
    async fn ping(&self) -> Result<()> {
        self.storage.ping().await
    }
}
