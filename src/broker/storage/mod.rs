//! What the broker keeps: topics and their partition logs, topic configs,
//! committed offsets, producer ids and ACL bindings; in memory, and with a journal file
//! when the broker has a storage path (replayed when it starts again).
//!
//! Every operation here is synchronous and short; locks are never held
//! across an await. Lock order: a partition log, then the journal.

pub mod acls;
mod batch;
pub mod configs;
mod journal;
mod log;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::Notify;
use uuid::Uuid;

use acls::{Acl, AclFilter};
pub use batch::Refused;
use journal::{Entry, Journal, Reader};
use log::{Data, Offered, PartitionLog};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn refused(error: ResponseError, message: impl Into<String>) -> Refused {
    Refused {
        error,
        message: message.into(),
    }
}

/// Producer ids are reserved in the journal in blocks, so that a restarted
/// broker never hands out one a live producer still holds.
const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct Topic {
    pub name: String,
    pub id: Uuid,
    partitions: RwLock<Vec<Arc<Mutex<Partition>>>>,
    configs: Mutex<BTreeMap<String, String>>,
}

/// A partition's log, and whether its topic was deleted under a writer
/// that found the topic just before.
#[derive(Default)]
struct Partition {
    log: PartitionLog,
    deleted: bool,
}

impl Topic {
    fn new(name: String, id: Uuid, partitions: i32, configs: BTreeMap<String, String>) -> Self {
        Self {
            name,
            id,
            partitions: RwLock::new(
                (0..partitions.max(0))
                    .map(|_| Arc::new(Mutex::new(Partition::default())))
                    .collect(),
            ),
            configs: Mutex::new(configs),
        }
    }

    pub fn partition_count(&self) -> i32 {
        self.partitions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len() as i32
    }

    fn partition(&self, index: i32) -> Option<Arc<Mutex<Partition>>> {
        let partitions = self
            .partitions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        usize::try_from(index)
            .ok()
            .and_then(|i| partitions.get(i).cloned())
    }

    /// The configs set on this topic (defaults left out).
    pub fn configs(&self) -> BTreeMap<String, String> {
        lock(&self.configs).clone()
    }

    /// A config's value: set on the topic, else its default.
    pub fn config(&self, key: &str) -> Option<String> {
        lock(&self.configs)
            .get(key)
            .cloned()
            .or_else(|| configs::topic_default(key).map(str::to_owned))
    }

    fn config_i64(&self, key: &str) -> Option<i64> {
        self.config(key).and_then(|v| v.parse().ok())
    }
}

/// A group's committed offset of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// What a fetch of one partition found.
pub struct Fetched {
    pub high_watermark: i64,
    pub log_start: i64,
    pub batches: Vec<Bytes>,
}

/// One group's committed offsets, by topic and partition.
type GroupCommits = BTreeMap<(String, i32), Committed>;

#[derive(Default)]
struct Topics {
    by_name: BTreeMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, Arc<Topic>>,
}

struct ProducerIds {
    next: i64,
    reserved: i64,
}

pub struct Storage {
    topics: RwLock<Topics>,
    commits: Mutex<BTreeMap<String, GroupCommits>>,
    producer_ids: Mutex<ProducerIds>,
    acls: Mutex<BTreeSet<Acl>>,
    location: String,
    journal: Option<Mutex<Journal>>,
    reader: Option<Reader>,
    appended: Notify,
}

/// What opening a storage file found.
pub struct Opened {
    pub storage: Storage,
    /// Bytes of a torn tail (a crash mid-write) cut off the journal.
    pub cut: u64,
}

impl Storage {
    pub fn in_memory() -> Self {
        Self {
            topics: RwLock::default(),
            commits: Mutex::default(),
            producer_ids: Mutex::new(ProducerIds {
                next: 1,
                reserved: i64::MAX,
            }),
            acls: Mutex::default(),
            location: "memory".into(),
            journal: None,
            reader: None,
            appended: Notify::new(),
        }
    }

    /// The storage kept in the file at `path` (created if missing).
    pub fn open(path: &Path) -> io::Result<Opened> {
        let (journal, entries, cut) = Journal::open(path)?;
        let reader = journal.reader();
        let mut storage = Self::in_memory();
        storage.location = path.display().to_string();
        storage.producer_ids = Mutex::new(ProducerIds {
            next: 1,
            reserved: 1,
        });
        storage.restore(entries, &reader)?;
        storage.journal = Some(Mutex::new(journal));
        storage.reader = Some(reader);
        Ok(Opened { storage, cut })
    }

    fn restore(&mut self, entries: Vec<Entry>, reader: &Reader) -> io::Result<()> {
        let topics = self
            .topics
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let commits = self
            .commits
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let ids = self
            .producer_ids
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let acls = self.acls.get_mut().unwrap_or_else(PoisonError::into_inner);
        for entry in entries {
            match entry {
                Entry::TopicCreated {
                    id,
                    name,
                    partitions,
                    configs,
                } => {
                    let topic = Arc::new(Topic::new(
                        name.clone(),
                        id,
                        partitions,
                        configs.into_iter().collect(),
                    ));
                    if let Some(old) = topics.by_name.insert(name, topic.clone()) {
                        topics.by_id.remove(&old.id);
                    }
                    topics.by_id.insert(id, topic);
                }
                Entry::TopicDeleted { id } => {
                    if let Some(t) = topics.by_id.remove(&id) {
                        topics.by_name.remove(&t.name);
                    }
                }
                Entry::Batch {
                    topic,
                    partition,
                    at,
                    len,
                } => {
                    let Some(p) = topics
                        .by_id
                        .get(&topic)
                        .and_then(|t| t.partition(partition))
                    else {
                        continue;
                    };
                    let head = reader.read(at, (batch::HEADER as u32).min(len))?;
                    if head.len() < batch::HEADER {
                        continue;
                    }
                    let h = batch::header(&head);
                    if h.producer_id >= ids.next {
                        ids.next = h.producer_id + 1;
                    }
                    lock(&p).log.restore(&h, Data::File { at, len });
                }
                Entry::Committed {
                    group,
                    topic,
                    partition,
                    offset,
                    leader_epoch,
                    metadata,
                } => {
                    commits.entry(group).or_default().insert(
                        (topic, partition),
                        Committed {
                            offset,
                            leader_epoch,
                            metadata,
                        },
                    );
                }
                Entry::RecordsDeleted {
                    topic,
                    partition,
                    log_start,
                } => {
                    if let Some(p) = topics
                        .by_id
                        .get(&topic)
                        .and_then(|t| t.partition(partition))
                    {
                        let _ = lock(&p).log.delete_before(log_start);
                    }
                }
                Entry::ConfigsAltered { topic, configs } => {
                    if let Some(t) = topics.by_id.get(&topic) {
                        let mut set = lock(&t.configs);
                        for (k, v) in configs {
                            match v {
                                Some(v) => set.insert(k, v),
                                None => set.remove(&k),
                            };
                        }
                    }
                }
                Entry::PartitionsAdded { topic, count } => {
                    if let Some(t) = topics.by_id.get(&topic) {
                        let mut partitions =
                            t.partitions.write().unwrap_or_else(PoisonError::into_inner);
                        while (partitions.len() as i32) < count {
                            partitions.push(Arc::default());
                        }
                    }
                }
                Entry::ProducerIds { next } => ids.reserved = ids.reserved.max(next),
                Entry::GroupDeleted { group } => {
                    commits.remove(&group);
                }
                Entry::AclsCreated { acls: made } => acls.extend(made),
                Entry::AclsDeleted { acls: gone } => {
                    for a in &gone {
                        acls.remove(a);
                    }
                }
            }
        }
        ids.next = ids.next.max(ids.reserved);
        ids.reserved = ids.next;
        Ok(())
    }

    /// Records `entry` in the journal, if there is one.
    fn journal(&self, entry: &Entry, body: &[u8]) -> Result<Option<u64>, Refused> {
        let Some(journal) = &self.journal else {
            return Ok(None);
        };
        lock(journal).append(entry, body).map(Some).map_err(|e| {
            refused(
                ResponseError::KafkaStorageError,
                format!("the broker cannot write its storage file: {e}"),
            )
        })
    }

    /// Notified whenever records are appended (fetches waiting for data).
    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_name
            .get(name)
            .cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_id
            .get(id)
            .cloned()
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_name
            .values()
            .cloned()
            .collect()
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: Vec<(String, String)>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, Refused> {
        configs::check_topic_name(name)?;
        if partitions < 1 {
            return Err(refused(
                ResponseError::InvalidPartitions,
                format!("a topic needs at least 1 partition, got {partitions}"),
            ));
        }
        for (k, v) in &configs {
            configs::check_topic_config(k, Some(v))?;
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if topics.by_name.contains_key(name) {
            return Err(refused(
                ResponseError::TopicAlreadyExists,
                format!("topic {name:?} already exists"),
            ));
        }
        let topic = Arc::new(Topic::new(
            name.to_owned(),
            Uuid::new_v4(),
            partitions,
            configs.iter().cloned().collect(),
        ));
        if validate_only {
            return Ok(topic);
        }
        self.journal(
            &Entry::TopicCreated {
                id: topic.id,
                name: name.to_owned(),
                partitions,
                configs,
            },
            b"",
        )?;
        topics.by_name.insert(name.to_owned(), topic.clone());
        topics.by_id.insert(topic.id, topic.clone());
        Ok(topic)
    }

    pub fn delete_topic(&self, topic: &Topic) -> Result<(), Refused> {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        if !topics.by_id.contains_key(&topic.id) {
            return Err(refused(
                ResponseError::UnknownTopicOrPartition,
                format!("topic {:?} does not exist", topic.name),
            ));
        }
        self.journal(&Entry::TopicDeleted { id: topic.id }, b"")?;
        topics.by_id.remove(&topic.id);
        topics.by_name.remove(&topic.name);
        drop(topics);
        for p in topic
            .partitions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            lock(p).deleted = true;
        }
        self.appended.notify_waiters();
        Ok(())
    }

    /// Raises `topic`'s partition count to `count`.
    pub fn add_partitions(
        &self,
        topic: &Topic,
        count: i32,
        validate_only: bool,
    ) -> Result<(), Refused> {
        let mut partitions = topic
            .partitions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let now = partitions.len() as i32;
        if count <= now {
            return Err(refused(
                ResponseError::InvalidPartitions,
                format!(
                    "topic {:?} has {now} partitions: a new count must be larger, got {count}",
                    topic.name
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        self.journal(
            &Entry::PartitionsAdded {
                topic: topic.id,
                count,
            },
            b"",
        )?;
        while (partitions.len() as i32) < count {
            partitions.push(Arc::default());
        }
        Ok(())
    }

    /// Sets (Some) or removes (None) topic configs; with `replace`, every
    /// config not named goes back to its default.
    pub fn alter_configs(
        &self,
        topic: &Topic,
        changes: Vec<(String, Option<String>)>,
        replace: bool,
        validate_only: bool,
    ) -> Result<(), Refused> {
        for (k, v) in &changes {
            configs::check_topic_config(k, v.as_deref())?;
        }
        let mut set = lock(&topic.configs);
        let mut changes = changes;
        if replace {
            for k in set.keys() {
                if !changes.iter().any(|(c, _)| c == k) {
                    changes.push((k.clone(), None));
                }
            }
        }
        if validate_only {
            return Ok(());
        }
        self.journal(
            &Entry::ConfigsAltered {
                topic: topic.id,
                configs: changes.clone(),
            },
            b"",
        )?;
        for (k, v) in changes {
            match v {
                Some(v) => set.insert(k, v),
                None => set.remove(&k),
            };
        }
        Ok(())
    }

    /// Appends a produce request's records for one partition; the base
    /// offset of its first batch (where it was stored before, for an
    /// idempotent producer's retry) and the log start.
    pub fn produce(
        &self,
        topic: &Topic,
        partition: i32,
        records: &[u8],
    ) -> Result<(i64, i64), Refused> {
        let p = topic
            .partition(partition)
            .ok_or_else(|| unknown_partition(topic, partition))?;
        let max_bytes = topic.config_i64("max.message.bytes").unwrap_or(i64::MAX);
        let batches = batch::split(records)?;
        if let Some(big) = batches.iter().find(|b| b.len() as i64 > max_bytes) {
            return Err(refused(
                ResponseError::MessageTooLarge,
                format!(
                    "a record batch of {} bytes is over topic {:?}'s max.message.bytes \
                     ({max_bytes})",
                    big.len(),
                    topic.name
                ),
            ));
        }
        let mut first = None;
        let mut p = lock(&p);
        if p.deleted {
            return Err(unknown_partition(topic, partition));
        }
        for mut b in batches {
            let h = batch::header(&b);
            let base = match p.log.offer(&h)? {
                Offered::Duplicate(base) => base,
                Offered::New(base) => {
                    batch::place(&mut b, base);
                    let b = b.freeze();
                    let at = self.journal(
                        &Entry::Batch {
                            topic: topic.id,
                            partition,
                            at: 0,
                            len: 0,
                        },
                        &b,
                    )?;
                    let data = match at {
                        Some(at) => Data::File {
                            at,
                            len: b.len() as u32,
                        },
                        None => Data::Memory(b),
                    };
                    p.log.append(&h, data);
                    base
                }
            };
            first.get_or_insert(base);
        }
        let log_start = p.log.log_start();
        drop(p);
        self.appended.notify_waiters();
        Ok((first.unwrap_or(-1), log_start))
    }

    /// Batches of `partition` from the one holding `offset`, within
    /// `max_bytes` (`min_one`: the first even if larger).
    pub fn read(
        &self,
        topic: &Topic,
        partition: i32,
        offset: i64,
        max_bytes: u64,
        min_one: bool,
    ) -> Result<Fetched, (ResponseError, i64, i64)> {
        let Some(p) = topic.partition(partition) else {
            return Err((ResponseError::UnknownTopicOrPartition, -1, -1));
        };
        let (data, high_watermark, log_start) = {
            let p = lock(&p);
            if p.deleted {
                return Err((ResponseError::UnknownTopicOrPartition, -1, -1));
            }
            let (hw, start) = (p.log.high_watermark(), p.log.log_start());
            match p.log.read(offset, max_bytes, min_one) {
                Ok(data) => (data, hw, start),
                Err(e) => return Err((e, hw, start)),
            }
        };
        let mut batches = Vec::with_capacity(data.len());
        for d in data {
            match d {
                Data::Memory(b) => batches.push(b),
                Data::File { at, len } => {
                    let read = self.reader.as_ref().map(|r| r.read(at, len));
                    match read {
                        Some(Ok(b)) => batches.push(b),
                        _ => {
                            return Err((
                                ResponseError::KafkaStorageError,
                                high_watermark,
                                log_start,
                            ))
                        }
                    }
                }
            }
        }
        Ok(Fetched {
            high_watermark,
            log_start,
            batches,
        })
    }

    fn batch_bytes(&self, data: &Data) -> Option<Bytes> {
        match data {
            Data::Memory(b) => Some(b.clone()),
            Data::File { at, len } => self.reader.as_ref()?.read(*at, *len).ok(),
        }
    }

    /// The (offset, timestamp) answering a ListOffsets query: -2 earliest,
    /// -1 latest, -3 the record with the largest timestamp, -4 earliest
    /// local, -5 latest tiered (none here); else the first record at or
    /// after that time, (-1, -1) if there is none.
    pub fn list_offset(
        &self,
        topic: &Topic,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i64, i64), ResponseError> {
        let p = topic
            .partition(partition)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let (found, log_start) = {
            let p = lock(&p);
            if p.deleted {
                return Err(ResponseError::UnknownTopicOrPartition);
            }
            let log = &p.log;
            let found = match timestamp {
                -2 | -4 => return Ok((log.log_start(), -1)),
                -1 => return Ok((log.high_watermark(), -1)),
                -5 => return Ok((-1, -1)),
                -3 => log.batch_with_latest_timestamp().cloned(),
                t if t >= 0 => log.batch_reaching(t).cloned(),
                _ => return Err(ResponseError::InvalidRequest),
            };
            (found, log.log_start())
        };
        let Some(stored) = found else {
            return Ok((-1, -1));
        };
        let Some(bytes) = self.batch_bytes(&stored.data) else {
            return Err(ResponseError::KafkaStorageError);
        };
        let hit = if timestamp == -3 {
            batch::latest_timestamp(&bytes)
        } else {
            batch::first_at_or_after(&bytes, timestamp)
        };
        Ok(match hit {
            Some((offset, ts)) if offset >= log_start => (offset, ts),
            // Inside a batch partly deleted: the first record kept.
            Some(_) => (log_start, stored.max_timestamp),
            None => (stored.base_offset.max(log_start), stored.max_timestamp),
        })
    }

    /// Bytes kept by `partition`'s log, None if there is no such partition.
    pub fn partition_size(&self, topic: &Topic, partition: i32) -> Option<u64> {
        let p = topic.partition(partition)?;
        let p = lock(&p);
        (!p.deleted).then(|| p.log.size())
    }

    /// Where records are kept: the storage file, or memory.
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// Deletes the records of `partition` before `offset` (-1: all); the new log start.
    pub fn delete_records(
        &self,
        topic: &Topic,
        partition: i32,
        offset: i64,
    ) -> Result<i64, Refused> {
        let p = topic
            .partition(partition)
            .ok_or_else(|| unknown_partition(topic, partition))?;
        let mut p = lock(&p);
        let before = p.log.log_start();
        let start = p.log.delete_before(offset).map_err(|e| {
            refused(
                e,
                format!(
                    "offset {offset} is outside {}[{partition}]'s log ({}..{})",
                    topic.name,
                    p.log.log_start(),
                    p.log.high_watermark()
                ),
            )
        })?;
        if start != before {
            self.journal(
                &Entry::RecordsDeleted {
                    topic: topic.id,
                    partition,
                    log_start: start,
                },
                b"",
            )?;
        }
        Ok(start)
    }

    /// Deletes what topics with a retention.ms keep too long.
    pub fn apply_retention(&self, now_ms: i64) {
        for topic in self.topics() {
            let Some(retention) = topic.config_i64("retention.ms").filter(|ms| *ms >= 0) else {
                continue;
            };
            for partition in 0..topic.partition_count() {
                let expired = topic.partition(partition).and_then(|p| {
                    lock(&p)
                        .log
                        .expired_before(now_ms.saturating_sub(retention))
                });
                if let Some(offset) = expired {
                    let _ = self.delete_records(&topic, partition, offset);
                }
            }
        }
    }

    pub fn commit(
        &self,
        group: &str,
        offsets: Vec<(String, i32, Committed)>,
    ) -> Result<(), Refused> {
        let mut commits = lock(&self.commits);
        for (topic, partition, c) in &offsets {
            self.journal(
                &Entry::Committed {
                    group: group.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata.clone(),
                },
                b"",
            )?;
        }
        let group = commits.entry(group.to_owned()).or_default();
        for (topic, partition, c) in offsets {
            group.insert((topic, partition), c);
        }
        Ok(())
    }

    /// A group's committed offsets: every partition, or those asked for.
    pub fn committed(&self, group: &str) -> GroupCommits {
        lock(&self.commits).get(group).cloned().unwrap_or_default()
    }

    /// Groups that have committed offsets.
    pub fn groups_with_commits(&self) -> Vec<String> {
        lock(&self.commits).keys().cloned().collect()
    }

    pub fn forget_group(&self, group: &str) -> Result<(), Refused> {
        let mut commits = lock(&self.commits);
        if commits.contains_key(group) {
            self.journal(
                &Entry::GroupDeleted {
                    group: group.to_owned(),
                },
                b"",
            )?;
            commits.remove(group);
        }
        Ok(())
    }

    /// Adds ACL bindings (one already there stays one).
    pub fn create_acls(&self, new: Vec<Acl>) -> Result<(), Refused> {
        let mut acls = lock(&self.acls);
        self.journal(&Entry::AclsCreated { acls: new.clone() }, b"")?;
        acls.extend(new);
        Ok(())
    }

    /// The ACL bindings `filter` matches.
    pub fn acls(&self, filter: &AclFilter) -> Vec<Acl> {
        lock(&self.acls)
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Deletes the ACL bindings `filter` matches; those deleted.
    pub fn delete_acls(&self, filter: &AclFilter) -> Result<Vec<Acl>, Refused> {
        let mut acls = lock(&self.acls);
        let gone: Vec<Acl> = acls.iter().filter(|a| filter.matches(a)).cloned().collect();
        if !gone.is_empty() {
            self.journal(&Entry::AclsDeleted { acls: gone.clone() }, b"")?;
            for a in &gone {
                acls.remove(a);
            }
        }
        Ok(gone)
    }

    pub fn new_producer_id(&self) -> Result<i64, Refused> {
        let mut ids = lock(&self.producer_ids);
        if ids.next >= ids.reserved {
            let reserved = ids.next + PRODUCER_ID_BLOCK;
            self.journal(&Entry::ProducerIds { next: reserved }, b"")?;
            ids.reserved = reserved;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }
}

fn unknown_partition(topic: &Topic, partition: i32) -> Refused {
    refused(
        ResponseError::UnknownTopicOrPartition,
        format!("topic {:?} has no partition {partition}", topic.name),
    )
}

/// A record batch as a producer writes it, for tests outside this module.
#[cfg(test)]
pub fn test_batch(timestamps: &[i64], compression: kafka_protocol::records::Compression) -> Bytes {
    batch::tests::batch(timestamps, (-1, -1, -1), compression).freeze()
}

#[cfg(test)]
mod tests {
    use super::batch::tests::batch;
    use super::*;
    use kafka_protocol::records::Compression;

    fn temp_file() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tskafka-storage-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("kafka.db")
    }

    #[test]
    fn a_file_backed_broker_comes_back_as_it_was() {
        let path = temp_file();
        let (topic_id, pid) = {
            let s = Storage::open(&path).unwrap().storage;
            let t = s
                .create_topic(
                    "retail",
                    2,
                    vec![("retention.ms".into(), "-1".into())],
                    false,
                )
                .unwrap();
            let pid = s.new_producer_id().unwrap();
            let b1 = batch(&[10, 20], (pid, 0, 0), Compression::Zstd);
            let b2 = batch(&[30], (pid, 0, 2), Compression::None);
            assert_eq!(s.produce(&t, 1, &b1).unwrap(), (0, 0));
            assert_eq!(s.produce(&t, 1, &b2).unwrap(), (2, 0));
            s.commit(
                "g",
                vec![(
                    "retail".into(),
                    1,
                    Committed {
                        offset: 2,
                        leader_epoch: 0,
                        metadata: Some("hello world".into()),
                    },
                )],
            )
            .unwrap();
            s.add_partitions(&t, 3, false).unwrap();
            s.alter_configs(
                &t,
                vec![("retention.ms".into(), Some("1000".into()))],
                false,
                false,
            )
            .unwrap();
            assert_eq!(s.delete_records(&t, 1, 1).unwrap(), 1);
            let acl = |name: &str| acls::Acl {
                resource_type: acls::code::TOPIC,
                resource_name: name.into(),
                pattern_type: acls::code::LITERAL,
                principal: "User:alice".into(),
                host: "*".into(),
                operation: 3,
                permission_type: acls::code::ALLOW,
            };
            s.create_acls(vec![acl("retail"), acl("gone")]).unwrap();
            let gone = AclFilter {
                resource_type: acls::code::ANY,
                resource_name: Some("gone".into()),
                pattern_type: acls::code::ANY,
                principal: None,
                host: None,
                operation: acls::code::ANY,
                permission_type: acls::code::ANY,
            };
            assert_eq!(s.delete_acls(&gone).unwrap(), vec![acl("gone")]);
            (t.id, pid)
        };
        let s = Storage::open(&path).unwrap().storage;
        let every_acl = AclFilter {
            resource_type: acls::code::ANY,
            resource_name: None,
            pattern_type: acls::code::ANY,
            principal: None,
            host: None,
            operation: acls::code::ANY,
            permission_type: acls::code::ANY,
        };
        let kept: Vec<String> = s
            .acls(&every_acl)
            .into_iter()
            .map(|a| a.resource_name)
            .collect();
        assert_eq!(kept, ["retail"]);
        let t = s.topic("retail").unwrap();
        assert_eq!((t.id, t.partition_count()), (topic_id, 3));
        assert_eq!(t.config("retention.ms").as_deref(), Some("1000"));
        let fetched = s.read(&t, 1, 1, 1 << 20, true).unwrap();
        assert_eq!((fetched.log_start, fetched.high_watermark), (1, 3));
        assert_eq!(fetched.batches.len(), 2);
        assert_eq!(s.list_offset(&t, 1, 15).unwrap(), (1, 20));
        assert_eq!(
            s.committed("g")[&("retail".into(), 1)].metadata.as_deref(),
            Some("hello world")
        );
        // The producer's retry after the restart is still spotted, and its
        // id is never handed out again.
        let retry = batch(&[30], (pid, 0, 2), Compression::None);
        assert_eq!(s.produce(&t, 1, &retry).unwrap(), (2, 1));
        assert!(s.new_producer_id().unwrap() > pid);
        s.delete_topic(&t).unwrap();
        let s = Storage::open(&path).unwrap().storage;
        assert!(s.topic("retail").is_none());
    }

    #[test]
    fn a_deleted_topic_takes_no_more_records() {
        let s = Storage::in_memory();
        let t = s.create_topic("t", 1, vec![], false).unwrap();
        assert_eq!(
            s.create_topic("t", 1, vec![], false).err().unwrap().error,
            ResponseError::TopicAlreadyExists
        );
        s.delete_topic(&t).unwrap();
        let b = batch(&[1], (-1, -1, -1), Compression::None);
        assert_eq!(
            s.produce(&t, 0, &b).unwrap_err().error,
            ResponseError::UnknownTopicOrPartition
        );
        assert!(s.create_topic("bad/name", 1, vec![], false).is_err());
        assert!(s.create_topic("t", 0, vec![], false).is_err());
    }

    #[test]
    fn offsets_by_time_and_retention() {
        let s = Storage::in_memory();
        let t = s.create_topic("t", 1, vec![], false).unwrap();
        for ts in [[100, 200], [150, 400], [300, 350]] {
            s.produce(&t, 0, &batch(&ts, (-1, -1, -1), Compression::Lz4))
                .unwrap();
        }
        assert_eq!(s.list_offset(&t, 0, 0).unwrap(), (0, 100));
        assert_eq!(s.list_offset(&t, 0, 160).unwrap(), (1, 200));
        assert_eq!(s.list_offset(&t, 0, 250).unwrap(), (3, 400));
        assert_eq!(s.list_offset(&t, 0, 401).unwrap(), (-1, -1));
        assert_eq!(s.list_offset(&t, 0, -3).unwrap(), (3, 400));
        assert_eq!(s.list_offset(&t, 0, -1).unwrap(), (6, -1));
        assert_eq!(s.list_offset(&t, 0, -2).unwrap(), (0, -1));
        s.alter_configs(
            &t,
            vec![("retention.ms".into(), Some("100".into()))],
            false,
            false,
        )
        .unwrap();
        s.apply_retention(350);
        assert_eq!(s.list_offset(&t, 0, -2).unwrap(), (2, -1));
        assert_eq!(s.list_offset(&t, 0, 0).unwrap(), (2, 150));
    }
}
