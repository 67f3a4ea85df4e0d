//! Kafka framing on one connection: a size-prefixed request in, decoded;
//! its answer out, one request at a time and in order, as Kafka serves a
//! connection. A fetch answer's records are written from the stored
//! batches as they are, never copied into the answer.
//!
//! A request this broker does not serve, a malformed one, or a handler
//! that fails closes this connection only; the broker goes on serving
//! every other.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::routes::{self, Answer, Broker, Context, FetchAnswer};
use super::sasl::{Gate, Users};

/// The largest request a client may send (Kafka's socket.request.max.bytes).
const MAX_REQUEST_BYTES: usize = 100 << 20;

/// Serves requests on `stream` until the client hangs up, sends something
/// this broker does not serve, or a request fails.
pub async fn serve<T>(mut stream: T, broker: Arc<Broker>, users: Option<Arc<Users>>, peer: String)
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut gate = Gate::new(users);
    let client_host = format!("/{peer}");
    loop {
        let Ok(Some(mut request)) = read_request(&mut stream).await else {
            return;
        };
        let api_key = i16::from_be_bytes([request[0], request[1]]);
        let version = i16::from_be_bytes([request[2], request[3]]);
        let correlation_id = i32::from_be_bytes([request[4], request[5], request[6], request[7]]);
        let Ok(key) = ApiKey::try_from(api_key) else {
            return;
        };
        let Some((min, max)) = routes::versions(key) else {
            return;
        };
        if !(min..=max).contains(&version) {
            if key != ApiKey::ApiVersions {
                return;
            }
            // Kafka answers an ApiVersions it cannot parse in version 0, so
            // that the client can pick a version both know.
            let mut answer = super::routes::versions_answer();
            answer.error_code = ResponseError::UnsupportedVersion.code();
            let Ok(frame) = encode(ResponseKind::ApiVersions(answer), key, 0, correlation_id)
            else {
                return;
            };
            if write(&mut stream, &[frame]).await.is_err() {
                return;
            }
            continue;
        }
        let Ok(header) = decode_request_header_from_buffer(&mut request) else {
            return;
        };
        let Ok(body) = RequestKind::decode(key, &mut request, version) else {
            return;
        };
        if let Some(answer) = gate.answer(&body, version) {
            let Ok(frame) = encode(answer, key, version, correlation_id) else {
                return;
            };
            if write(&mut stream, &[frame]).await.is_err() {
                return;
            }
            continue;
        }
        if !gate.admits(key) {
            return;
        }
        let Some(answer) = answer(&broker, key, header, body, &client_host).await else {
            return;
        };
        let frames = match answer {
            Answer::Nothing => continue,
            Answer::Fetch(fetch) => encode_fetch(correlation_id, version, &fetch),
            Answer::Message(message) => match encode(*message, key, version, correlation_id) {
                Ok(frame) => vec![frame],
                Err(e) => {
                    eprintln!(
                        "tskafka broker: cannot encode the answer to {key:?} v{version}: {e}"
                    );
                    return;
                }
            },
        };
        if write(&mut stream, &frames).await.is_err() {
            return;
        }
    }
}

/// Runs the handler on a task of its own, so that a panic in it ends this
/// connection only.
async fn answer(
    broker: &Arc<Broker>,
    key: ApiKey,
    header: RequestHeader,
    body: RequestKind,
    client_host: &str,
) -> Option<Answer> {
    let broker = broker.clone();
    let client_host = client_host.to_owned();
    let task = tokio::spawn(async move {
        let client_id = header.client_id.as_deref().unwrap_or_default().to_owned();
        let cx = Context {
            version: header.request_api_version,
            client_id: &client_id,
            client_host: &client_host,
        };
        routes::handle(&broker, &cx, body).await
    });
    match task.await {
        Ok(answer) => Some(answer),
        Err(e) => {
            if e.is_panic() {
                eprintln!(
                    "tskafka broker: a {key:?} request failed inside the broker; its \
                     connection is closed, other clients are served"
                );
            }
            None
        }
    }
}

async fn read_request<T: AsyncRead + Unpin>(stream: &mut T) -> std::io::Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    if stream.read_exact(&mut size).await.is_err() {
        return Ok(None);
    }
    let len = i32::from_be_bytes(size);
    let Some(len) = usize::try_from(len)
        .ok()
        .filter(|&n| (8..=MAX_REQUEST_BYTES).contains(&n))
    else {
        return Ok(None);
    };
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(Some(Bytes::from(buf)))
}

async fn write<T: AsyncWrite + Unpin>(stream: &mut T, frames: &[Bytes]) -> std::io::Result<()> {
    for f in frames {
        stream.write_all(f).await?;
    }
    stream.flush().await
}

/// A whole response frame: size, header, body.
pub fn encode(
    answer: ResponseKind,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, key.response_header_version(version))?;
    answer.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// A fetch answer as its frame in pieces: the encoded fields, and each
/// stored batch as it is (shared, not copied).
pub fn encode_fetch(correlation_id: i32, version: i16, answer: &FetchAnswer) -> Vec<Bytes> {
    let flexible = version >= 12;
    let mut w = Writer {
        chunks: Vec::new(),
        buf: BytesMut::with_capacity(512),
        flexible,
        len: 0,
    };
    w.buf.put_i32(0); // the frame size, set below
    w.buf.put_i32(correlation_id);
    w.tags();
    w.buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        w.buf.put_i16(0); // error_code
        w.buf.put_i32(0); // session_id: no fetch session
    }
    w.array_len(answer.topics.len());
    for topic in &answer.topics {
        if version < 13 {
            w.string(&topic.name);
        } else {
            w.buf.put_slice(topic.id.as_bytes());
        }
        w.array_len(topic.partitions.len());
        for p in &topic.partitions {
            w.buf.put_i32(p.index);
            w.buf.put_i16(p.error);
            w.buf.put_i64(p.high_watermark);
            w.buf.put_i64(p.high_watermark); // last_stable_offset: no transactions
            if version >= 5 {
                w.buf.put_i64(p.log_start);
            }
            // aborted_transactions: null unless read committed, then none.
            if answer.read_committed {
                w.array_len(0);
            } else if flexible {
                w.varint(0);
            } else {
                w.buf.put_i32(-1);
            }
            if version >= 11 {
                w.buf.put_i32(-1); // preferred_read_replica
            }
            let size: usize = p.batches.iter().map(Bytes::len).sum();
            if flexible {
                w.varint(size as u32 + 1);
            } else {
                w.buf.put_i32(size as i32);
            }
            for b in &p.batches {
                w.shared(b.clone());
            }
            w.tags();
        }
        w.tags();
    }
    w.tags();
    w.finish()
}

struct Writer {
    chunks: Vec<Bytes>,
    buf: BytesMut,
    flexible: bool,
    len: usize,
}

impl Writer {
    fn varint(&mut self, mut n: u32) {
        while n >= 0x80 {
            self.buf.put_u8((n as u8) | 0x80);
            n >>= 7;
        }
        self.buf.put_u8(n as u8);
    }

    /// An empty tagged-field section (flexible versions only).
    fn tags(&mut self) {
        if self.flexible {
            self.varint(0);
        }
    }

    fn array_len(&mut self, n: usize) {
        if self.flexible {
            self.varint(n as u32 + 1);
        } else {
            self.buf.put_i32(n as i32);
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible {
            self.varint(s.len() as u32 + 1);
        } else {
            self.buf.put_i16(s.len() as i16);
        }
        self.buf.put_slice(s.as_bytes());
    }

    /// Appends `bytes` as a chunk of its own, after what is buffered.
    fn shared(&mut self, bytes: Bytes) {
        if !self.buf.is_empty() {
            let buffered = self.buf.split().freeze();
            self.len += buffered.len();
            self.chunks.push(buffered);
        }
        self.len += bytes.len();
        self.chunks.push(bytes);
    }

    fn finish(mut self) -> Vec<Bytes> {
        self.shared(Bytes::new());
        self.chunks.pop(); // the empty chunk
        let size = (self.len - 4) as i32;
        let mut first = BytesMut::from(&self.chunks[0][..]);
        first[..4].copy_from_slice(&size.to_be_bytes());
        self.chunks[0] = first.freeze();
        self.chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::routes::fetch::{PartitionAnswer, TopicAnswer};
    use kafka_protocol::messages::fetch_response::{
        FetchResponse, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::{Decodable, Message, StrBytes};

    fn answer(read_committed: bool) -> FetchAnswer {
        let partition = |index: i32, batches: Vec<Bytes>| PartitionAnswer {
            index,
            error: 0,
            high_watermark: 100 + i64::from(index),
            log_start: 3,
            batches,
        };
        let topic = |name: &'static str, id: u8| TopicAnswer {
            name: TopicName(StrBytes::from_static_str(name)),
            id: uuid::Uuid::from_bytes([id; 16]),
            partitions: vec![
                partition(
                    0,
                    vec![Bytes::from_static(b"abc"), Bytes::from(vec![7u8; 300])],
                ),
                partition(1, vec![]),
                PartitionAnswer {
                    error: ResponseError::OffsetOutOfRange.code(),
                    ..partition(2, vec![])
                },
            ],
        };
        FetchAnswer {
            read_committed,
            topics: vec![topic("retail", 1), topic("ünïcode", 2)],
        }
    }

    /// The same answer as kafka-protocol's own message, its records joined.
    fn as_message(a: &FetchAnswer) -> FetchResponse {
        FetchResponse::default().with_responses(
            a.topics
                .iter()
                .map(|t| {
                    FetchableTopicResponse::default()
                        .with_topic(t.name.clone())
                        .with_topic_id(t.id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionData::default()
                                        .with_partition_index(p.index)
                                        .with_error_code(p.error)
                                        .with_high_watermark(p.high_watermark)
                                        .with_last_stable_offset(p.high_watermark)
                                        .with_log_start_offset(p.log_start)
                                        .with_aborted_transactions(a.read_committed.then(Vec::new))
                                        .with_preferred_read_replica(
                                            kafka_protocol::messages::BrokerId(-1),
                                        )
                                        .with_records(Some(p.batches.concat().into()))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    #[test]
    fn fetch_answers_match_the_protocols_encoding_byte_for_byte() {
        for version in FetchRequest::VERSIONS.min..=16 {
            for read_committed in [false, true] {
                let a = answer(read_committed);
                let ours: Vec<u8> = encode_fetch(42, version, &a).concat();
                let theirs = encode(
                    ResponseKind::Fetch(as_message(&a)),
                    ApiKey::Fetch,
                    version,
                    42,
                )
                .unwrap();
                assert_eq!(ours, theirs.to_vec(), "fetch v{version}");
                // And it decodes back.
                let mut body = Bytes::from(ours).slice(8 + usize::from(version >= 12)..);
                FetchResponse::decode(&mut body, version).unwrap();
            }
        }
    }

    #[test]
    fn records_are_shared_not_copied() {
        let a = answer(false);
        let chunks = encode_fetch(1, 16, &a);
        let stored = &a.topics[0].partitions[0].batches[1];
        assert!(chunks.iter().any(|c| c.as_ptr() == stored.as_ptr()));
    }
}
