//! Kafka framing for the embedded broker's connections: a request in, its
//! answer out, one at a time as Tansu's own framing does. A fetch answer's
//! records are written from the stored batches as they are; Tansu's encoder
//! copied each answer several times into fresh memory, a third of the
//! broker's time on a large read.

use bytes::{BufMut, Bytes, BytesMut};
use rama::{Context, Service};
use tansu_sans_io::fetch_response::{FetchResponse, FetchableTopicResponse, PartitionData};
use tansu_sans_io::{ApiKey as _, Body, FetchRequest, Frame, Header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::security::ConnectionError;

/// The largest request a client may send (Kafka's socket.request.max.bytes).
const MAX_REQUEST_BYTES: usize = 100 << 20;

/// Fetch versions written here; others go through Tansu's encoder.
const FETCH_VERSIONS: std::ops::RangeInclusive<i16> = 4..=16;

/// Serves requests on `stream` until the client hangs up or sends garbage
/// (neither is for the broker to report).
pub async fn run<T, S>(stream: T, service: S)
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
    S: Service<(), Frame, Response = Frame>,
    S::Error: ConnectionError,
{
    let _ = answer_requests(stream, service).await;
}

async fn answer_requests<T, S>(mut stream: T, service: S) -> Result<(), S::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
    S: Service<(), Frame, Response = Frame>,
    S::Error: ConnectionError,
{
    loop {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).await?;
        let len = usize::try_from(i32::from_be_bytes(size))
            .ok()
            .filter(|&n| n <= MAX_REQUEST_BYTES)
            .ok_or_else(|| std::io::Error::other("request size out of range"))?;
        let mut request = vec![0u8; 4 + len];
        request[..4].copy_from_slice(&size);
        stream.read_exact(&mut request[4..]).await?;
        let request =
            tokio::task::spawn_blocking(move || Frame::request_from_bytes(Bytes::from(request)))
                .await??;
        let api_key = request.api_key()?;
        let api_version = request.api_version()?;
        let correlation_id = request.correlation_id()?;
        let Frame { body, .. } = service.serve(Context::default(), request).await?;
        let fetch = match &body {
            Body::FetchResponse(fetch) if api_key == FetchRequest::KEY => {
                encode_fetch(correlation_id, api_version, fetch)
            }
            _ => None,
        };
        let chunks = match fetch {
            Some(chunks) => chunks,
            None => {
                vec![encode_other::<S::Error>(correlation_id, body, api_key, api_version).await?]
            }
        };
        for chunk in &chunks {
            stream.write_all(chunk).await?;
        }
        stream.flush().await?;
    }
}

async fn encode_other<E: ConnectionError>(
    correlation_id: i32,
    body: Body,
    api_key: i16,
    api_version: i16,
) -> Result<Bytes, E> {
    let header = Header::Response { correlation_id };
    Ok(
        tokio::task::spawn_blocking(move || Frame::response(header, body, api_key, api_version))
            .await??,
    )
}

/// A fetch answer as its size-prefixed frame in pieces: the encoded fields,
/// and each stored batch's records shared, not copied. None for a version
/// or a field this does not write (Tansu's encoder takes those).
pub fn encode_fetch(correlation_id: i32, version: i16, r: &FetchResponse) -> Option<Vec<Bytes>> {
    if !FETCH_VERSIONS.contains(&version) || !writable(r, version) {
        return None;
    }
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
    w.buf.put_i32(r.throttle_time_ms.unwrap_or(0));
    if version >= 7 {
        w.buf.put_i16(r.error_code.unwrap_or(0));
        w.buf.put_i32(r.session_id.unwrap_or(0));
    }
    w.array_len(r.responses.as_ref().map(Vec::len));
    for topic in r.responses.iter().flatten() {
        if version <= 12 {
            w.string(topic.topic.as_deref().unwrap_or_default());
        } else {
            w.buf.put_slice(&topic.topic_id.unwrap_or_default());
        }
        w.array_len(topic.partitions.as_ref().map(Vec::len));
        for p in topic.partitions.iter().flatten() {
            w.partition(p, version);
        }
        w.tags();
    }
    if flexible && r.node_endpoints.is_some() {
        // Tansu writes the (empty) list as tagged field 0 in every flexible
        // version: one tag, 0, a one-byte value, the empty compact array.
        w.buf.put_slice(&[1, 0, 1, 1]);
    } else {
        w.tags();
    }
    Some(w.finish())
}

/// Whether every field of `r` is one `encode_fetch` writes as Tansu would.
fn writable(r: &FetchResponse, version: i16) -> bool {
    let no_tagged = |p: &PartitionData| {
        p.diverging_epoch.is_none() && p.current_leader.is_none() && p.snapshot_id.is_none()
    };
    let topic_ok =
        |t: &FetchableTopicResponse| {
            (if version <= 12 {
                t.topic.is_some()
            } else {
                t.topic_id.is_some()
            }) && t.partitions.iter().flatten().all(|p| {
                no_tagged(p) && p.last_stable_offset.is_some() && p.log_start_offset.is_some()
            })
        };
    r.throttle_time_ms.is_some()
        && (version < 7 || (r.error_code.is_some() && r.session_id.is_some()))
        && r.node_endpoints.as_ref().is_none_or(Vec::is_empty)
        && r.responses.iter().flatten().all(topic_ok)
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

    fn array_len(&mut self, len: Option<usize>) {
        match (len, self.flexible) {
            (None, true) => self.varint(0),
            (None, false) => self.buf.put_i32(-1),
            (Some(n), true) => self.varint(n as u32 + 1),
            (Some(n), false) => self.buf.put_i32(n as i32),
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

    fn partition(&mut self, p: &PartitionData, version: i16) {
        self.buf.put_i32(p.partition_index);
        self.buf.put_i16(p.error_code);
        self.buf.put_i64(p.high_watermark);
        self.buf.put_i64(p.last_stable_offset.unwrap_or(-1));
        if version >= 5 {
            self.buf.put_i64(p.log_start_offset.unwrap_or(-1));
        }
        self.array_len(p.aborted_transactions.as_ref().map(Vec::len));
        for t in p.aborted_transactions.iter().flatten() {
            self.buf.put_i64(t.producer_id);
            self.buf.put_i64(t.first_offset);
            self.tags();
        }
        if version >= 11 {
            self.buf.put_i32(p.preferred_read_replica.unwrap_or(-1));
        }
        // Records, as Tansu writes them: none are an empty set, not null.
        let batches = p.records.as_ref().map_or(&[][..], |f| &f.batches[..]);
        let size: usize = batches
            .iter()
            .map(|b| BATCH_HEADER + b.record_data.len())
            .sum();
        if self.flexible {
            self.varint(size as u32 + 1);
        } else {
            self.buf.put_i32(size as i32);
        }
        for b in batches {
            self.buf.put_i64(b.base_offset);
            self.buf.put_i32(b.batch_length);
            self.buf.put_i32(b.partition_leader_epoch);
            self.buf.put_i8(b.magic);
            self.buf.put_u32(b.crc);
            self.buf.put_i16(b.attributes);
            self.buf.put_i32(b.last_offset_delta);
            self.buf.put_i64(b.base_timestamp);
            self.buf.put_i64(b.max_timestamp);
            self.buf.put_i64(b.producer_id);
            self.buf.put_i16(b.producer_epoch);
            self.buf.put_i32(b.base_sequence);
            self.buf.put_u32(b.record_count);
            self.shared(b.record_data.clone());
        }
        self.tags();
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

/// A record batch's fields before its records: base offset to record count.
const BATCH_HEADER: usize = 61;

#[cfg(test)]
mod tests {
    use super::*;
    use tansu_sans_io::fetch_response::AbortedTransaction;
    use tansu_sans_io::record::deflated::{Batch, Frame as Records};

    fn batch(base_offset: i64, records: &[u8]) -> Batch {
        Batch {
            base_offset,
            batch_length: 49 + records.len() as i32,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0xdead_beef,
            attributes: 4,
            last_offset_delta: 2,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_500,
            producer_id: 7,
            producer_epoch: 1,
            base_sequence: 0,
            record_count: 3,
            record_data: Bytes::copy_from_slice(records),
        }
    }

    /// An answer shaped as Tansu's fetch service builds it.
    fn answer(records: Vec<Option<Vec<Batch>>>, aborted: bool) -> FetchResponse {
        let partitions = records
            .into_iter()
            .enumerate()
            .map(|(i, batches)| {
                PartitionData::default()
                    .partition_index(i as i32)
                    .error_code(0)
                    .high_watermark(100 + i as i64)
                    .last_stable_offset(Some(99))
                    .log_start_offset(Some(0))
                    .aborted_transactions(Some(if aborted {
                        vec![AbortedTransaction::default()
                            .producer_id(9)
                            .first_offset(12)]
                    } else {
                        vec![]
                    }))
                    .preferred_read_replica(Some(-1))
                    .records(batches.map(|batches| Records { batches }))
            })
            .collect();
        let topic = FetchableTopicResponse::default()
            .topic(Some("retail".into()))
            .topic_id(Some([3; 16]))
            .partitions(Some(partitions));
        FetchResponse::default()
            .throttle_time_ms(Some(0))
            .error_code(Some(0))
            .session_id(Some(0))
            .node_endpoints(Some(vec![]))
            .responses(Some(vec![
                topic.clone(),
                topic.topic(Some("ünïcode".into())),
            ]))
    }

    fn tansu(r: &FetchResponse, version: i16) -> Bytes {
        Frame::response(
            Header::Response { correlation_id: 42 },
            Body::FetchResponse(r.clone()),
            FetchRequest::KEY,
            version,
        )
        .unwrap()
    }

    #[test]
    fn fetch_answers_match_tansus_encoding_byte_for_byte() {
        let big = vec![7u8; 300];
        let shapes = [
            answer(
                vec![Some(vec![batch(0, b"abc"), batch(3, &big)]), None],
                false,
            ),
            answer(vec![None, None, None], false),
            answer(vec![Some(vec![batch(5, b"")])], true),
            answer(vec![], false),
        ];
        let without_endpoints = shapes.iter().cloned().map(|r| r.node_endpoints(None));
        let shapes: Vec<_> = shapes.iter().cloned().chain(without_endpoints).collect();
        for version in FETCH_VERSIONS {
            for r in &shapes {
                let ours = encode_fetch(42, version, r).expect("writable");
                let ours: Vec<u8> = ours.iter().flat_map(|c| c.iter().copied()).collect();
                assert_eq!(ours, tansu(r, version).to_vec(), "fetch v{version}");
            }
        }
    }

    #[test]
    fn records_are_shared_not_copied() {
        let r = answer(vec![Some(vec![batch(0, &[1; 1000])])], false);
        let chunks = encode_fetch(1, 16, &r).unwrap();
        let stored = &r.responses.as_ref().unwrap()[0]
            .partitions
            .as_ref()
            .unwrap()[0]
            .records
            .as_ref()
            .unwrap()
            .batches[0]
            .record_data;
        assert!(chunks.iter().any(|c| c.as_ptr() == stored.as_ptr()));
    }

    #[test]
    fn other_shapes_are_left_to_tansu() {
        let r = answer(vec![Some(vec![batch(0, b"x")])], false);
        assert!(encode_fetch(1, 3, &r).is_none(), "old versions");
        let mut tagged = r.clone();
        tagged.responses.as_mut().unwrap()[0]
            .partitions
            .as_mut()
            .unwrap()[0]
            .current_leader = Some(Default::default());
        assert!(encode_fetch(1, 16, &tagged).is_none(), "tagged fields");
    }
}
