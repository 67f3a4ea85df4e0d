//! Kafka's protocol spoken directly, for a scan: Metadata, ListOffsets and
//! Fetch over plain TCP, one connection per broker per thread. A fetch can
//! be sent before the previous answer is decoded, so the broker prepares
//! the next while this side decodes.
//!
//! Why not librdkafka here: its consumer hands each message over as a
//! queue operation (allocated, locked, freed), about 1 µs a message, which
//! caps a read of one-row messages near 1M messages/s on a core. Fetched
//! directly, an answer's batches are read in place. A scan needs no group,
//! no commit and no rebalance: all that this leaves out.
//!
//! Only for clusters reached in PLAINTEXT ([`Direct::for_settings`]); with
//! TLS or SASL the scan reads through librdkafka.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    ApiKey, ApiVersionsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::ResponseError;

use super::Settings;
use crate::error::{Error, Result};

/// The versions spoken, lowest to highest: the lowest Kafka 4 still
/// serves, the highest that name topics rather than topic ids.
const METADATA: (i16, i16) = (4, 12);
const LIST_OFFSETS: (i16, i16) = (1, 7);
const FETCH: (i16, i16) = (4, 12);

/// The largest answer accepted.
const MAX_ANSWER_BYTES: usize = 1 << 30;

/// ListOffsets' special timestamps.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// How a scan reaches the cluster directly, when it can.
#[derive(Clone, Debug)]
pub struct Direct {
    /// As given, for messages.
    bootstrap: String,
    servers: Vec<String>,
    client_id: String,
    timeout: Duration,
    max_bytes: i32,
    partition_max_bytes: i32,
    max_wait_ms: i32,
}

impl Direct {
    /// None when the cluster is reached with TLS or SASL (librdkafka's part).
    pub fn for_settings(settings: &Settings, timeout: Duration) -> Result<Option<Self>> {
        let protocol = settings.get("security.protocol").unwrap_or("plaintext");
        if !protocol.eq_ignore_ascii_case("plaintext") {
            return Ok(None);
        }
        let bootstrap = settings.bootstrap_servers()?.to_owned();
        let servers = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(server_address)
            .collect();
        let number = |key: &str, default: i32| {
            settings
                .get(key)
                .and_then(|v| v.trim().parse::<i32>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Ok(Some(Self {
            bootstrap,
            servers,
            client_id: settings.get("client.id").unwrap_or("tskafka").to_owned(),
            timeout,
            max_bytes: number("fetch.max.bytes", 4 << 20),
            partition_max_bytes: number("max.partition.fetch.bytes", 16 << 20),
            max_wait_ms: number("fetch.wait.max.ms", 5),
        }))
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// `host:port` of one `bootstrap.servers` entry (librdkafka's forms: an
/// optional `plaintext://`, the port 9092 when none is given).
fn server_address(entry: &str) -> String {
    let entry = match entry.find("://") {
        Some(at) => &entry[at + 3..],
        None => entry,
    };
    let has_port = match entry.rfind(']') {
        Some(close) => entry[close..].contains(':'),
        None => entry.matches(':').count() == 1,
    };
    if has_port {
        entry.to_owned()
    } else {
        format!("{entry}:9092")
    }
}

fn broker_address(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A failure of the conversation itself (the socket, the framing): the
/// connection is dropped, and the call may be tried again.
fn transport(address: &str, what: impl std::fmt::Display) -> Error {
    Error::Kafka {
        message: format!("the broker at {address}: {what}"),
        code: "Transport".into(),
        retriable: true,
        fatal: false,
    }
}

/// A Kafka error code in an answer, for `context`.
pub fn answered(context: impl std::fmt::Display, code: i16) -> Error {
    let (name, retriable) = match ResponseError::try_from_code(code) {
        Some(e) => (format!("{e:?}"), e.is_retriable()),
        None => (format!("error code {code}"), false),
    };
    Error::Kafka {
        message: format!("{context}: the broker answered {name}"),
        code: name,
        retriable,
        fatal: false,
    }
}

/// Answers that a newer view of the cluster (its leaders) can fix.
pub fn leader_moved(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::NotLeaderOrFollower
                | ResponseError::LeaderNotAvailable
                | ResponseError::UnknownTopicOrPartition
                | ResponseError::FencedLeaderEpoch
                | ResponseError::UnknownLeaderEpoch
                | ResponseError::OffsetNotAvailable
                | ResponseError::NotCoordinator
        )
    )
}

pub fn is_retriable(e: &Error) -> bool {
    matches!(
        e,
        Error::Kafka {
            retriable: true,
            ..
        }
    )
}

#[derive(Clone, Copy, Debug)]
struct Versions {
    metadata: i16,
    list_offsets: i16,
    fetch: i16,
}

/// One connection to one broker.
struct Connection {
    stream: TcpStream,
    address: String,
    client_id: StrBytes,
    next_correlation: i32,
    versions: Versions,
}

impl Connection {
    fn open(address: &str, client_id: &str, timeout: Duration) -> Result<Self> {
        let targets = address
            .to_socket_addrs()
            .map_err(|e| transport(address, format_args!("cannot resolve it ({e})")))?;
        let mut failure = transport(address, "it resolves to no address");
        for target in targets {
            match TcpStream::connect_timeout(&target, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    stream
                        .set_read_timeout(Some(timeout))
                        .and_then(|()| stream.set_write_timeout(Some(timeout)))
                        .map_err(|e| transport(address, e))?;
                    let mut c = Self {
                        stream,
                        address: address.to_owned(),
                        client_id: StrBytes::from_string(client_id.to_owned()),
                        next_correlation: 1,
                        versions: Versions {
                            metadata: METADATA.1,
                            list_offsets: LIST_OFFSETS.1,
                            fetch: FETCH.1,
                        },
                    };
                    c.versions = c.negotiate()?;
                    return Ok(c);
                }
                Err(e) => failure = transport(address, format_args!("cannot connect ({e})")),
            }
        }
        Err(failure)
    }

    /// The highest version of each request that both sides speak.
    fn negotiate(&mut self) -> Result<Versions> {
        let answer = self.call(&ApiVersionsRequest::default(), 0)?;
        if answer.error_code != 0 {
            return Err(answered(
                format_args!("the broker at {}", self.address),
                answer.error_code,
            ));
        }
        let pick = |key: ApiKey, (low, high): (i16, i16)| -> Result<i16> {
            answer
                .api_keys
                .iter()
                .find(|k| k.api_key == key as i16)
                .map(|k| k.max_version.min(high))
                .filter(|v| *v >= low)
                .ok_or_else(|| Error::Kafka {
                    message: format!(
                        "the broker at {} does not serve {key:?} in versions {low}..{high}",
                        self.address
                    ),
                    code: "UnsupportedVersion".into(),
                    retriable: false,
                    fatal: false,
                })
        };
        Ok(Versions {
            metadata: pick(ApiKey::Metadata, METADATA)?,
            list_offsets: pick(ApiKey::ListOffsets, LIST_OFFSETS)?,
            fetch: pick(ApiKey::Fetch, FETCH)?,
        })
    }

    fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let key = ApiKey::try_from(R::KEY).expect("a request's own key");
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        let encoded = header
            .encode(&mut buf, key.request_header_version(version))
            .and_then(|()| request.encode(&mut buf, version));
        if let Err(e) = encoded {
            return Err(Error::Kafka {
                message: format!("cannot encode a {key:?} request (version {version}): {e}"),
                code: "Fail".into(),
                retriable: false,
                fatal: false,
            });
        }
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&buf)
            .map_err(|e| transport(&self.address, format_args!("cannot send ({e})")))?;
        Ok(correlation)
    }

    fn receive<R: Request>(&mut self, correlation: i32, version: i16) -> Result<R::Response> {
        let address = self.address.clone();
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                transport(&address, "no answer in time")
            }
            std::io::ErrorKind::UnexpectedEof => transport(&address, "it closed the connection"),
            _ => transport(&address, e),
        };
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .ok()
            .filter(|n| *n <= MAX_ANSWER_BYTES)
            .ok_or_else(|| transport(&self.address, "an answer of an impossible size"))?;
        // Read into spare capacity: no zeroing of an answer of megabytes.
        let mut body = Vec::with_capacity(size);
        let read = (&mut self.stream)
            .take(size as u64)
            .read_to_end(&mut body)
            .map_err(io)?;
        if read < size {
            return Err(transport(&self.address, "it closed the connection"));
        }
        let mut body = Bytes::from(body);
        let key = ApiKey::try_from(R::KEY).expect("a request's own key");
        let malformed = |e: anyhow::Error| {
            transport(
                &self.address,
                format_args!("a malformed {key:?} answer ({e})"),
            )
        };
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(malformed)?;
        if header.correlation_id != correlation {
            return Err(transport(&self.address, "an answer to another request"));
        }
        R::Response::decode(&mut body, version).map_err(malformed)
    }

    fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let correlation = self.send(request, version)?;
        self.receive::<R>(correlation, version)
    }
}

/// A fetch sent and not yet answered.
#[derive(Debug)]
pub struct Pending {
    node: i32,
    correlation: i32,
    version: i16,
}

impl Pending {
    /// The broker it was sent to.
    pub fn node(&self) -> i32 {
        self.node
    }
}

/// What a fetch answered for its partition.
pub struct Fetched {
    pub error: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// (producer id, first offset) of transactions aborted in the range.
    pub aborted: Vec<(i64, i64)>,
    pub records: Bytes,
}

/// One thread's view of the cluster and its connections.
pub struct Link {
    direct: Direct,
    brokers: HashMap<i32, String>,
    /// (topic, partition) -> leader node
    leaders: HashMap<(String, i32), i32>,
    connections: HashMap<i32, Connection>,
    /// A connection to a bootstrap server, for metadata.
    bootstrap: Option<Connection>,
}

impl Link {
    pub fn new(direct: Direct) -> Self {
        Self {
            direct,
            brokers: HashMap::new(),
            leaders: HashMap::new(),
            connections: HashMap::new(),
            bootstrap: None,
        }
    }

    /// A connection for metadata: any open one, else a bootstrap server's.
    fn any_connection(&mut self) -> Result<&mut Connection> {
        if let Some(node) = self.connections.keys().next().copied() {
            return Ok(self.connections.get_mut(&node).expect("present"));
        }
        if self.bootstrap.is_none() {
            let mut failures = Vec::new();
            for server in &self.direct.servers {
                match Connection::open(server, &self.direct.client_id, self.direct.timeout) {
                    Ok(c) => {
                        self.bootstrap = Some(c);
                        break;
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            if self.bootstrap.is_none() {
                return Err(Error::Kafka {
                    message: format!(
                        "could not reach the Kafka cluster at {} within {:.1}s ({}): check \
                         bootstrap_servers, that the broker is running, and the security settings",
                        self.direct.bootstrap,
                        self.direct.timeout.as_secs_f64(),
                        failures.join("; ")
                    ),
                    code: "Transport".into(),
                    retriable: true,
                    fatal: false,
                });
            }
        }
        Ok(self.bootstrap.as_mut().expect("just opened"))
    }

    /// Forgets a broker's connection after it failed, and who leads what.
    pub fn forget(&mut self, node: i32) {
        self.connections.remove(&node);
        self.bootstrap = None;
        self.leaders.clear();
    }

    /// Learns the topic's partitions and their leaders; returns how many
    /// partitions it has. Retries while the cluster is electing leaders.
    pub fn partitions(&mut self, topic: &str) -> Result<usize> {
        let deadline = Instant::now() + self.direct.timeout;
        loop {
            match self.metadata(topic) {
                Ok(n) => return Ok(n),
                Err(e) if is_retriable(&e) && Instant::now() < deadline => {
                    self.bootstrap = None;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn metadata(&mut self, topic: &str) -> Result<usize> {
        let c = self.any_connection()?;
        let version = c.versions.metadata;
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(topic.to_owned())),
            ))]))
            .with_allow_auto_topic_creation(false);
        let answer = match c.call(&request, version) {
            Ok(a) => a,
            Err(e) => {
                self.bootstrap = None;
                self.connections.clear();
                return Err(e);
            }
        };
        for b in &answer.brokers {
            self.brokers
                .insert(b.node_id.0, broker_address(&b.host, b.port));
        }
        let t = answer
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| super::unknown_topic(topic, &self.direct.bootstrap))?;
        if t.error_code == ResponseError::UnknownTopicOrPartition.code()
            || (t.error_code == 0 && t.partitions.is_empty())
        {
            return Err(super::unknown_topic(topic, &self.direct.bootstrap));
        }
        if t.error_code != 0 {
            return Err(answered(format_args!("topic {topic:?}"), t.error_code));
        }
        for p in &t.partitions {
            if p.error_code != 0 && p.leader_id.0 < 0 {
                return Err(answered(
                    format_args!("{topic}[{}]", p.partition_index),
                    p.error_code,
                ));
            }
            self.leaders
                .insert((topic.to_owned(), p.partition_index), p.leader_id.0);
        }
        Ok(t.partitions.len())
    }

    /// The connection to the leader of `topic[partition]`, and its node id.
    fn leader(&mut self, topic: &str, partition: i32) -> Result<(i32, &mut Connection)> {
        let key = (topic.to_owned(), partition);
        if !self.leaders.contains_key(&key) {
            self.partitions(topic)?;
        }
        let node = *self.leaders.get(&key).ok_or_else(|| {
            answered(
                format_args!("{topic}[{partition}]"),
                ResponseError::UnknownTopicOrPartition.code(),
            )
        })?;
        if !self.connections.contains_key(&node) {
            let address = self.brokers.get(&node).cloned().ok_or_else(|| {
                transport(
                    &self.direct.bootstrap,
                    format_args!("the leader of {topic}[{partition}], node {node}, is not listed"),
                )
            })?;
            let c = Connection::open(&address, &self.direct.client_id, self.direct.timeout)?;
            self.connections.insert(node, c);
        }
        Ok((node, self.connections.get_mut(&node).expect("present")))
    }

    /// Each partition's offset for `timestamp` (or [`EARLIEST`] /
    /// [`LATEST`]); -1 when no record is that late. Retries while leaders move.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<Vec<i64>> {
        let deadline = Instant::now() + self.direct.timeout;
        loop {
            match self.list_offsets_once(topic, partitions, timestamp) {
                Ok(offsets) => return Ok(offsets),
                Err((node, e)) if is_retriable(&e) && Instant::now() < deadline => {
                    self.forget(node);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((_, e)) => return Err(e),
            }
        }
    }

    /// One ListOffsets to each leader, for all its partitions asked.
    fn list_offsets_once(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> std::result::Result<Vec<i64>, (i32, Error)> {
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for &p in partitions {
            let (node, _) = self.leader(topic, p).map_err(|e| (-1, e))?;
            by_leader.entry(node).or_default().push(p);
        }
        let mut offsets = HashMap::with_capacity(partitions.len());
        for (node, asked) in by_leader {
            let c = self
                .connections
                .get_mut(&node)
                .expect("opened when its leadership was looked up");
            let version = c.versions.list_offsets;
            let mut request = ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(
                        (asked.iter())
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            if version >= 2 {
                // As librdkafka's consumer: up to the last stable offset.
                request = request.with_isolation_level(1);
            }
            let answer = c.call(&request, version).map_err(|e| (node, e))?;
            for partition in asked {
                let found = answer
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == partition)
                    .ok_or_else(|| {
                        (
                            node,
                            transport(
                                &c.address,
                                format_args!("no offset for {topic}[{partition}]"),
                            ),
                        )
                    })?;
                if found.error_code != 0 {
                    let mut e = answered(
                        format_args!("cannot look up the offsets of {topic}[{partition}]"),
                        found.error_code,
                    );
                    if let Error::Kafka { retriable, .. } = &mut e {
                        // Asked again once the cluster says who leads now.
                        *retriable |= leader_moved(found.error_code);
                    }
                    return Err((node, e));
                }
                offsets.insert(partition, found.offset);
            }
        }
        Ok(partitions.iter().map(|p| offsets[p]).collect())
    }

    /// Sends a fetch of `topic[partition]` from `offset`, of at most
    /// `max_bytes` when given (else as configured): Kafka answers at least
    /// one record batch, whatever the size asked.
    pub fn send_fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: Option<usize>,
    ) -> std::result::Result<Pending, (i32, Error)> {
        let cap = |configured: i32| match max_bytes {
            Some(n) => configured.min(i32::try_from(n).unwrap_or(i32::MAX)).max(1),
            None => configured,
        };
        let (max_bytes, partition_max_bytes, max_wait_ms) = (
            cap(self.direct.max_bytes),
            cap(self.direct.partition_max_bytes),
            self.direct.max_wait_ms,
        );
        let (node, c) = self.leader(topic, partition).map_err(|e| (-1, e))?;
        let version = c.versions.fetch;
        let request = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(partition_max_bytes)])]);
        let correlation = c.send(&request, version).map_err(|e| (node, e))?;
        Ok(Pending {
            node,
            correlation,
            version,
        })
    }

    /// The answer to `pending`, for `partition`.
    pub fn receive_fetch(
        &mut self,
        pending: Pending,
        partition: i32,
    ) -> std::result::Result<Fetched, (i32, Error)> {
        let node = pending.node;
        let c = self.connections.get_mut(&node).ok_or_else(|| {
            (
                node,
                transport("the cluster", "the connection of a fetch was closed"),
            )
        })?;
        let answer = c
            .receive::<FetchRequest>(pending.correlation, pending.version)
            .map_err(|e| (node, e))?;
        if answer.error_code != 0 {
            return Err((node, answered("a fetch", answer.error_code)));
        }
        let p = answer
            .responses
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                (
                    node,
                    transport(&c.address, "a fetch answer without the partition"),
                )
            })?;
        Ok(Fetched {
            error: p.error_code,
            high_watermark: p.high_watermark,
            last_stable_offset: p.last_stable_offset,
            aborted: p
                .aborted_transactions
                .unwrap_or_default()
                .iter()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect(),
            records: p.records.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_entries_become_addresses() {
        assert_eq!(server_address("localhost:9092"), "localhost:9092");
        assert_eq!(server_address("broker"), "broker:9092");
        assert_eq!(server_address("PLAINTEXT://b:1234"), "b:1234");
        assert_eq!(server_address("[::1]:9093"), "[::1]:9093");
        assert_eq!(server_address("[::1]"), "[::1]:9092");
        assert_eq!(broker_address("::1", 9092), "[::1]:9092");
    }

    #[test]
    fn only_plaintext_is_read_directly() {
        let mut s = Settings::new();
        s.set("bootstrap.servers", "a:1,b:2");
        let d = Direct::for_settings(&s, Duration::from_secs(1))
            .unwrap()
            .unwrap();
        assert_eq!(d.servers, ["a:1", "b:2"]);
        s.set("security.protocol", "SASL_SSL");
        assert!(Direct::for_settings(&s, Duration::from_secs(1))
            .unwrap()
            .is_none());
        s.set("security.protocol", "PLAINTEXT");
        assert!(Direct::for_settings(&s, Duration::from_secs(1))
            .unwrap()
            .is_some());
    }

    #[test]
    fn an_unreachable_cluster_is_named() {
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut s = Settings::new();
        s.set("bootstrap.servers", &address);
        let d = Direct::for_settings(&s, Duration::from_millis(200))
            .unwrap()
            .unwrap();
        let e = Link::new(d).partitions("t").unwrap_err().to_string();
        assert!(
            e.contains("could not reach the Kafka cluster at") && e.contains(&address),
            "{e}"
        );
    }
}
