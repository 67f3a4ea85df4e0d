//! A file-backed broker's journal: one append-only file of entries (topics
//! made and deleted, record batches, committed offsets, ...), replayed on
//! start. A batch's bytes are read back from the file when fetched, not
//! kept in memory. Every entry carries its length and a CRC, so a tail
//! torn by a crash is found and cut off on the next start.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::acls::Acl;

const MAGIC: &[u8; 8] = b"TSKAFKA1";
/// Length, CRC, kind.
const ENTRY_HEADER: u64 = 9;
/// An entry's payload is at most this large (a batch is at most ~100 MiB).
const MAX_ENTRY: u32 = 1 << 30;

/// What happened, in the order it happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    TopicCreated {
        id: Uuid,
        name: String,
        partitions: i32,
        configs: Vec<(String, String)>,
    },
    TopicDeleted {
        id: Uuid,
    },
    /// A record batch, its bytes at `at..at + len` in the file.
    Batch {
        topic: Uuid,
        partition: i32,
        at: u64,
        len: u32,
    },
    Committed {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<String>,
    },
    RecordsDeleted {
        topic: Uuid,
        partition: i32,
        log_start: i64,
    },
    ConfigsAltered {
        topic: Uuid,
        /// None removes the key (back to its default).
        configs: Vec<(String, Option<String>)>,
    },
    PartitionsAdded {
        topic: Uuid,
        count: i32,
    },
    /// Producer ids below `next` may have been handed out.
    ProducerIds {
        next: i64,
    },
    GroupDeleted {
        group: String,
    },
    AclsCreated {
        acls: Vec<Acl>,
    },
    AclsDeleted {
        acls: Vec<Acl>,
    },
}

const TOPIC_CREATED: u8 = 1;
const TOPIC_DELETED: u8 = 2;
const BATCH: u8 = 3;
const COMMITTED: u8 = 4;
const RECORDS_DELETED: u8 = 5;
const CONFIGS_ALTERED: u8 = 6;
const PARTITIONS_ADDED: u8 = 7;
const PRODUCER_IDS: u8 = 8;
const GROUP_DELETED: u8 = 9;
const ACLS_CREATED: u8 = 10;
const ACLS_DELETED: u8 = 11;

pub struct Journal {
    file: Arc<File>,
    len: u64,
}

/// Reads batch bytes back; shared with fetches, which need no lock to read.
#[derive(Clone)]
pub struct Reader(Arc<File>);

impl Reader {
    pub fn read(&self, at: u64, len: u32) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len as usize];
        self.0.read_exact_at(&mut buf, at)?;
        Ok(Bytes::from(buf))
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` and returns what it holds.
    /// A torn or corrupt tail (a crash mid-write) is cut off; `cut` says
    /// how many bytes were.
    pub fn open(path: &Path) -> io::Result<(Journal, Vec<Entry>, u64)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let size = file.metadata()?.len();
        if size == 0 {
            file.write_all(MAGIC)?;
        } else {
            let mut magic = [0u8; 8];
            file.seek(SeekFrom::Start(0))?;
            if size < 8 || {
                file.read_exact(&mut magic)?;
                &magic != MAGIC
            } {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a tskafka broker's storage file (it may be an older \
                         format or another program's file): give another path",
                        path.display()
                    ),
                ));
            }
        }
        let (entries, good) = replay(&file, size.max(8))?;
        let cut = size.max(8) - good;
        if cut > 0 {
            file.set_len(good)?;
        }
        Ok((
            Journal {
                file: Arc::new(file),
                len: good,
            },
            entries,
            cut,
        ))
    }

    pub fn reader(&self) -> Reader {
        Reader(self.file.clone())
    }

    /// Appends `entry`; for a batch, `body` is its bytes and the returned
    /// position is where they start.
    pub fn append(&mut self, entry: &Entry, body: &[u8]) -> io::Result<u64> {
        let mut payload = Vec::with_capacity(64);
        let kind = encode(entry, &mut payload);
        let total = 1 + payload.len() + body.len();
        let len = u32::try_from(total)
            .ok()
            .filter(|&n| n <= MAX_ENTRY)
            .ok_or_else(|| io::Error::other("journal entry too large"))?;
        let mut crc = crc32c::crc32c(&[kind]);
        crc = crc32c::crc32c_append(crc, &payload);
        crc = crc32c::crc32c_append(crc, body);
        let mut head = Vec::with_capacity(ENTRY_HEADER as usize + payload.len());
        head.extend_from_slice(&len.to_be_bytes());
        head.extend_from_slice(&crc.to_be_bytes());
        head.push(kind);
        head.extend_from_slice(&payload);
        let body_at = self.len + head.len() as u64;
        // One write when small; a failed write leaves a tail the next open cuts.
        if body.len() < 64 << 10 {
            head.extend_from_slice(body);
            (&*self.file).write_all(&head)?;
        } else {
            (&*self.file).write_all(&head)?;
            (&*self.file).write_all(body)?;
        }
        self.len += 4 + 4 + total as u64;
        Ok(body_at)
    }
}

fn replay(file: &File, size: u64) -> io::Result<(Vec<Entry>, u64)> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(8))?;
    let mut entries = Vec::new();
    let mut at = 8u64;
    let mut buf = Vec::new();
    loop {
        let mut head = [0u8; 8];
        if at + 8 > size || reader.read_exact(&mut head).is_err() {
            break;
        }
        let len = u32::from_be_bytes(head[..4].try_into().expect("4"));
        let crc = u32::from_be_bytes(head[4..].try_into().expect("4"));
        if len == 0 || len > MAX_ENTRY || at + 8 + len as u64 > size {
            break;
        }
        buf.resize(len as usize, 0);
        if reader.read_exact(&mut buf).is_err() || crc32c::crc32c(&buf) != crc {
            break;
        }
        let body_at = at + 8;
        match decode(&buf, body_at) {
            Some(entry) => entries.push(entry),
            None => break,
        }
        at += 8 + len as u64;
    }
    Ok((entries, at))
}

struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn str(&mut self, s: &str) {
        self.i32(s.len() as i32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.i32(-1),
        }
    }
    fn uuid(&mut self, id: &Uuid) {
        self.0.extend_from_slice(id.as_bytes());
    }
    fn acls(&mut self, acls: &[Acl]) {
        self.i32(acls.len() as i32);
        for a in acls {
            self.0
                .extend_from_slice(&[a.resource_type as u8, a.pattern_type as u8]);
            self.0
                .extend_from_slice(&[a.operation as u8, a.permission_type as u8]);
            self.str(&a.resource_name);
            self.str(&a.principal);
            self.str(&a.host);
        }
    }
}

fn encode(entry: &Entry, out: &mut Vec<u8>) -> u8 {
    let mut o = Out(out);
    match entry {
        Entry::TopicCreated {
            id,
            name,
            partitions,
            configs,
        } => {
            o.uuid(id);
            o.str(name);
            o.i32(*partitions);
            o.i32(configs.len() as i32);
            for (k, v) in configs {
                o.str(k);
                o.str(v);
            }
            TOPIC_CREATED
        }
        Entry::TopicDeleted { id } => {
            o.uuid(id);
            TOPIC_DELETED
        }
        Entry::Batch {
            topic, partition, ..
        } => {
            o.uuid(topic);
            o.i32(*partition);
            BATCH
        }
        Entry::Committed {
            group,
            topic,
            partition,
            offset,
            leader_epoch,
            metadata,
        } => {
            o.str(group);
            o.str(topic);
            o.i32(*partition);
            o.i64(*offset);
            o.i32(*leader_epoch);
            o.opt_str(metadata.as_deref());
            COMMITTED
        }
        Entry::RecordsDeleted {
            topic,
            partition,
            log_start,
        } => {
            o.uuid(topic);
            o.i32(*partition);
            o.i64(*log_start);
            RECORDS_DELETED
        }
        Entry::ConfigsAltered { topic, configs } => {
            o.uuid(topic);
            o.i32(configs.len() as i32);
            for (k, v) in configs {
                o.str(k);
                o.opt_str(v.as_deref());
            }
            CONFIGS_ALTERED
        }
        Entry::PartitionsAdded { topic, count } => {
            o.uuid(topic);
            o.i32(*count);
            PARTITIONS_ADDED
        }
        Entry::ProducerIds { next } => {
            o.i64(*next);
            PRODUCER_IDS
        }
        Entry::GroupDeleted { group } => {
            o.str(group);
            GROUP_DELETED
        }
        Entry::AclsCreated { acls } => {
            o.acls(acls);
            ACLS_CREATED
        }
        Entry::AclsDeleted { acls } => {
            o.acls(acls);
            ACLS_DELETED
        }
    }
}

struct In<'a> {
    buf: &'a [u8],
    at: usize,
}

impl In<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.buf.get(self.at..end)?;
        self.at = end;
        Some(out)
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = usize::try_from(self.i32()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        let at = self.at;
        if self.i32()? == -1 {
            return Some(None);
        }
        self.at = at;
        Some(Some(self.str()?))
    }
    fn uuid(&mut self) -> Option<Uuid> {
        Uuid::from_slice(self.take(16)?).ok()
    }
    fn acls(&mut self) -> Option<Vec<Acl>> {
        let n = usize::try_from(self.i32()?).ok()?;
        let mut acls = Vec::new();
        for _ in 0..n {
            let codes = self.take(4)?.to_vec();
            acls.push(Acl {
                resource_type: codes[0] as i8,
                pattern_type: codes[1] as i8,
                operation: codes[2] as i8,
                permission_type: codes[3] as i8,
                resource_name: self.str()?,
                principal: self.str()?,
                host: self.str()?,
            });
        }
        Some(acls)
    }
}

/// One entry from its kind and payload; `body_at` is where the payload
/// (after the kind byte's position) starts in the file.
fn decode(buf: &[u8], body_at: u64) -> Option<Entry> {
    let (&kind, rest) = buf.split_first()?;
    let mut i = In { buf: rest, at: 0 };
    let entry = match kind {
        TOPIC_CREATED => {
            let id = i.uuid()?;
            let name = i.str()?;
            let partitions = i.i32()?;
            let n = i.i32()?;
            let mut configs = Vec::new();
            for _ in 0..n {
                configs.push((i.str()?, i.str()?));
            }
            Entry::TopicCreated {
                id,
                name,
                partitions,
                configs,
            }
        }
        TOPIC_DELETED => Entry::TopicDeleted { id: i.uuid()? },
        BATCH => {
            let topic = i.uuid()?;
            let partition = i.i32()?;
            let len = u32::try_from(rest.len() - i.at).ok()?;
            Entry::Batch {
                topic,
                partition,
                at: body_at + 1 + i.at as u64,
                len,
            }
        }
        COMMITTED => Entry::Committed {
            group: i.str()?,
            topic: i.str()?,
            partition: i.i32()?,
            offset: i.i64()?,
            leader_epoch: i.i32()?,
            metadata: i.opt_str()?,
        },
        RECORDS_DELETED => Entry::RecordsDeleted {
            topic: i.uuid()?,
            partition: i.i32()?,
            log_start: i.i64()?,
        },
        CONFIGS_ALTERED => {
            let topic = i.uuid()?;
            let n = i.i32()?;
            let mut configs = Vec::new();
            for _ in 0..n {
                configs.push((i.str()?, i.opt_str()?));
            }
            Entry::ConfigsAltered { topic, configs }
        }
        PARTITIONS_ADDED => Entry::PartitionsAdded {
            topic: i.uuid()?,
            count: i.i32()?,
        },
        PRODUCER_IDS => Entry::ProducerIds { next: i.i64()? },
        GROUP_DELETED => Entry::GroupDeleted { group: i.str()? },
        ACLS_CREATED => Entry::AclsCreated { acls: i.acls()? },
        ACLS_DELETED => Entry::AclsDeleted { acls: i.acls()? },
        _ => return None,
    };
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tskafka-journal-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn entries_come_back_and_a_torn_tail_is_cut() {
        let path = temp("kafka.db");
        let id = Uuid::new_v4();
        let entries = vec![
            Entry::TopicCreated {
                id,
                name: "retail".into(),
                partitions: 3,
                configs: vec![("retention.ms".into(), "-1".into())],
            },
            Entry::Committed {
                group: "g".into(),
                topic: "retail".into(),
                partition: 2,
                offset: 42,
                leader_epoch: -1,
                metadata: Some("hello world".into()),
            },
            Entry::ConfigsAltered {
                topic: id,
                configs: vec![("a".into(), None), ("b".into(), Some("1".into()))],
            },
            Entry::RecordsDeleted {
                topic: id,
                partition: 0,
                log_start: 7,
            },
            Entry::PartitionsAdded {
                topic: id,
                count: 5,
            },
            Entry::ProducerIds { next: 1000 },
            Entry::GroupDeleted { group: "g".into() },
            Entry::AclsCreated {
                acls: vec![Acl {
                    resource_type: 2,
                    resource_name: "retail".into(),
                    pattern_type: 3,
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: 3,
                    permission_type: 3,
                }],
            },
            Entry::AclsDeleted { acls: vec![] },
            Entry::TopicDeleted { id },
        ];
        let big = vec![7u8; 100 << 10];
        {
            let (mut j, old, cut) = Journal::open(&path).unwrap();
            assert!(old.is_empty() && cut == 0);
            for e in &entries {
                j.append(e, b"").unwrap();
            }
            let at = j
                .append(
                    &Entry::Batch {
                        topic: id,
                        partition: 1,
                        at: 0,
                        len: 0,
                    },
                    &big,
                )
                .unwrap();
            assert_eq!(j.reader().read(at, big.len() as u32).unwrap(), &big[..]);
        }
        // A crash mid-write leaves half an entry behind.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 1, 0, 1, 2]).unwrap();
        drop(f);
        let (mut j, back, cut) = Journal::open(&path).unwrap();
        assert_eq!(cut, 6);
        assert_eq!(&back[..entries.len()], &entries[..]);
        let Entry::Batch { at, len, .. } = back[entries.len()] else {
            panic!("{:?}", back.last())
        };
        assert_eq!(j.reader().read(at, len).unwrap(), &big[..]);
        // Appends go on after the cut.
        j.append(&Entry::ProducerIds { next: 5 }, b"").unwrap();
        let (_, again, cut) = Journal::open(&path).unwrap();
        assert_eq!((again.len(), cut), (entries.len() + 2, 0));
    }

    #[test]
    fn another_file_is_refused() {
        let path = temp("other.db");
        std::fs::write(&path, b"SQLite format 3\0 and more").unwrap();
        let err = Journal::open(&path).err().unwrap().to_string();
        assert!(err.contains("not a tskafka broker's storage file"), "{err}");
    }
}
