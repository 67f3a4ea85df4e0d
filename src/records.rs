//! Kafka record batches (magic 2), read in place: the 61-byte header, the
//! records of a batch (decompressed once, no record copied or allocated),
//! and the batches of a fetch answer, whose last one may be cut short.
//!
//! The broker reads its stored batches here; the scan reads fetched ones.

use bytes::{Buf, Bytes};
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};

/// Base offset through record count.
pub const HEADER: usize = 61;

pub const MAGIC: usize = 16;
pub const CRC: usize = 17;
pub const ATTRIBUTES: usize = 21;
pub const TRANSACTIONAL: i16 = 1 << 4;
pub const CONTROL: i16 = 1 << 5;
const LOG_APPEND_TIME: i16 = 1 << 3;
const COMPRESSION: i16 = 0b111;

/// A batch's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub base_offset: i64,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl Header {
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL != 0
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

pub fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header of a whole batch (at least [`HEADER`] bytes).
pub fn header(b: &[u8]) -> Header {
    Header {
        base_offset: i64_at(b, 0),
        attributes: i16_at(b, ATTRIBUTES),
        last_offset_delta: i32_at(b, 23),
        base_timestamp: i64_at(b, 27),
        max_timestamp: i64_at(b, 35),
        producer_id: i64_at(b, 43),
        producer_epoch: i16_at(b, 51),
        base_sequence: i32_at(b, 53),
        record_count: i32_at(b, 57),
    }
}

/// The whole batches at the front of `records`, as a fetch answer holds
/// them: a batch cut short at the end (the answer's size limit) is left
/// out, to be fetched again. Legacy message sets (magic 0 and 1) share the
/// framing (offset, size, and the magic at byte 16), so they are split too;
/// their magic tells them apart.
pub fn whole_batches(records: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    while records.len() - at >= 17 {
        let length = i32_at(records, at + 8);
        let Some(size) = usize::try_from(length).ok().and_then(|n| n.checked_add(12)) else {
            break;
        };
        if size > records.len() - at || size <= MAGIC || (records[at + MAGIC] >= 2 && size < HEADER)
        {
            break;
        }
        out.push(records.slice(at..at + size));
        at += size;
    }
    out
}

/// The offset after `batch` (either format: a legacy message, or the
/// wrapper of compressed ones, carries its last offset in front).
pub fn next_offset(batch: &[u8]) -> i64 {
    if batch[MAGIC] < 2 {
        i64_at(batch, 0).saturating_add(1)
    } else {
        header(batch).last_offset().saturating_add(1)
    }
}

/// One record of a batch, borrowed from it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub offset: i64,
    /// -1 when the producer gave none.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Headers<'a>,
}

/// A record's headers, read when asked.
#[derive(Clone, Copy, Debug)]
pub struct Headers<'a> {
    count: usize,
    bytes: &'a [u8],
}

impl<'a> Headers<'a> {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each header's key and value (None: a null value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let bytes = self.bytes;
        let mut at = 0;
        (0..self.count).map_while(move |_| {
            let key = bytes_field(bytes, &mut at)??;
            let value = bytes_field(bytes, &mut at)?;
            Some((key, value))
        })
    }
}

/// A batch that cannot be read: the reason, for an error naming its offset.
#[derive(Debug, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// A batch's records section, decompressed.
pub fn body(batch: &Bytes) -> Result<Bytes, Unreadable> {
    if batch.len() < HEADER {
        return Err(Unreadable(format!(
            "a record batch of {} bytes is shorter than its header",
            batch.len()
        )));
    }
    let mut section = batch.slice(HEADER..);
    let whole = |b: &mut Bytes| Ok(b.copy_to_bytes(b.remaining()));
    let codec = header(batch).attributes & COMPRESSION;
    let out = match codec {
        0 => return Ok(section),
        1 => Gzip::decompress(&mut section, whole),
        2 => Snappy::decompress(&mut section, whole),
        3 => Lz4::decompress(&mut section, whole),
        4 => Zstd::decompress(&mut section, whole),
        other => {
            return Err(Unreadable(format!(
                "a record batch names compression codec {other}, which Kafka does not define"
            )))
        }
    };
    out.map_err(|e| Unreadable(format!("a record batch does not decompress: {e}")))
}

/// The records of a batch whose header is `h` and whose (decompressed)
/// records section is `body`.
pub fn records<'a>(h: &Header, body: &'a [u8]) -> Records<'a> {
    Records {
        body,
        at: 0,
        left: h.record_count.max(0) as usize,
        base_offset: h.base_offset,
        base_timestamp: h.base_timestamp,
        log_append_time: (h.attributes & LOG_APPEND_TIME != 0).then_some(h.max_timestamp),
    }
}

pub struct Records<'a> {
    body: &'a [u8],
    at: usize,
    left: usize,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Unreadable>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let found = self.record();
        if found.is_none() {
            self.left = 0;
        }
        Some(found.ok_or_else(|| {
            Unreadable(format!(
                "a record of the batch at offset {} is malformed or cut short",
                self.base_offset
            ))
        }))
    }
}

impl<'a> Records<'a> {
    fn record(&mut self) -> Option<Record<'a>> {
        let b = self.body;
        let mut at = self.at;
        let length = usize::try_from(varint(b, &mut at)?).ok()?;
        let end = at.checked_add(length).filter(|&e| e <= b.len())?;
        let b = &b[..end];
        at += 1; // attributes: unused
        let timestamp_delta = varint(b, &mut at)?;
        let offset_delta = varint(b, &mut at)?;
        let key = bytes_field(b, &mut at)?;
        let value = bytes_field(b, &mut at)?;
        let count = usize::try_from(varint(b, &mut at)?).ok()?;
        let headers = Headers {
            count,
            bytes: b.get(at..)?,
        };
        self.at = end;
        Some(Record {
            offset: self.base_offset.saturating_add(offset_delta),
            timestamp: self
                .log_append_time
                .unwrap_or(self.base_timestamp.saturating_add(timestamp_delta)),
            key,
            value,
            headers,
        })
    }
}

/// A zigzag varint (Kafka's varint and varlong alike).
fn varint(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *b.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some((raw >> 1) as i64 ^ -((raw & 1) as i64))
}

/// A varint length then that many bytes; -1: null.
fn bytes_field<'a>(b: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let n = varint(b, at)?;
    if n < 0 {
        return Some(None);
    }
    let end = at.checked_add(usize::try_from(n).ok()?)?;
    let field = b.get(*at..end)?;
    *at = end;
    Some(Some(field))
}

/// Each record's offset and timestamp (empty if the batch cannot be read).
pub fn offsets_and_timestamps(batch: &Bytes) -> Vec<(i64, i64)> {
    let Ok(section) = body(batch) else {
        return Vec::new();
    };
    records(&header(batch), &section)
        .map_while(Result::ok)
        .map(|r| (r.offset, r.timestamp))
        .collect()
}

/// Reads every record of a fetch answer's `records` as a scan does, its
/// headers included; how many records and headers there were. The fuzz
/// target `records` and its corpus run this.
pub fn read_every_record(fetched: &Bytes) -> usize {
    let mut aborted = Aborted::default();
    let mut read = 0;
    for batch in whole_batches(fetched) {
        let _ = next_offset(&batch);
        if batch[MAGIC] < 2 {
            continue;
        }
        let h = header(&batch);
        if aborted.skips(&h) {
            continue;
        }
        let Ok(section) = body(&batch) else { continue };
        for r in records(&h, &section) {
            let Ok(r) = r else { break };
            read += 1 + r.headers.iter().count();
        }
    }
    read
}

/// Which fetched batches a read-committed reader skips: those of aborted
/// transactions (as the fetch answer lists them), and every control batch.
#[derive(Debug, Default)]
pub struct Aborted {
    /// (producer id, first offset), in offset order, not yet reached.
    pending: std::collections::VecDeque<(i64, i64)>,
    /// Producers whose transaction was aborted and whose marker is still ahead.
    open: std::collections::HashSet<i64>,
}

impl Aborted {
    /// Adds a fetch answer's aborted transactions.
    pub fn add(&mut self, aborted: impl IntoIterator<Item = (i64, i64)>) {
        self.pending.extend(aborted);
        self.pending
            .make_contiguous()
            .sort_by_key(|&(_, first)| first);
    }

    /// Whether the batch with header `h` holds no record to hand out.
    pub fn skips(&mut self, h: &Header) -> bool {
        while let Some(&(producer, first)) = self.pending.front() {
            if first > h.last_offset() {
                break;
            }
            self.open.insert(producer);
            self.pending.pop_front();
        }
        if h.is_control() {
            // The transaction's marker: what follows from this producer is new.
            self.open.remove(&h.producer_id);
            return true;
        }
        h.is_transactional() && self.open.contains(&h.producer_id)
    }
}

/// Record batches as producers encode them, for tests here and the broker's.
#[cfg(test)]
pub mod test_support {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::StrBytes;
    pub use kafka_protocol::records::Compression;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    /// Every codec Kafka defines.
    pub const EVERY_COMPRESSION: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// One record to encode.
    pub struct Spec<'a> {
        pub offset: i64,
        pub timestamp: i64,
        pub key: Option<&'a str>,
        pub value: Option<&'a str>,
        pub headers: &'a [(&'a str, Option<&'a str>)],
        /// Producer id, epoch and the record's sequence number.
        pub producer: (i64, i16, i32),
    }

    /// `records` in one batch (consecutive offsets and sequences), or
    /// several where the encoder splits them.
    pub fn encode(records: &[Spec<'_>], compression: Compression) -> BytesMut {
        let text = |v: Option<&str>| v.map(|v| Bytes::from(v.to_owned()));
        let records: Vec<Record> = records
            .iter()
            .map(|r| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: r.producer.0,
                producer_epoch: r.producer.1,
                timestamp_type: TimestampType::Creation,
                offset: r.offset,
                sequence: r.producer.2,
                timestamp: r.timestamp,
                key: text(r.key),
                value: text(r.value),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string((*k).to_owned()), text(*v)))
                    .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encodable records");
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{encode, Compression, Spec, EVERY_COMPRESSION};
    use super::*;
    use bytes::BytesMut;

    const HEADERS: &[(&str, Option<&str>)] = &[("h", Some("v")), ("nil", None)];

    fn encoded(
        offset: i64,
        ts: i64,
        key: Option<&'static str>,
        value: Option<&'static str>,
    ) -> Spec<'static> {
        Spec {
            offset,
            timestamp: ts,
            key,
            value,
            headers: HEADERS,
            // Consecutive: the encoder puts them in one batch.
            producer: (-1, -1, offset as i32),
        }
    }

    fn batch_of(records: &[Spec<'_>], compression: Compression) -> Bytes {
        encode(records, compression).freeze()
    }

    #[test]
    fn records_read_in_place_whatever_the_compression() {
        for compression in EVERY_COMPRESSION {
            let b = batch_of(
                &[
                    encoded(7, 1_000, Some("k"), Some("one")),
                    encoded(8, 1_250, None, Some("")),
                    encoded(9, 900, Some("k2"), None),
                ],
                compression,
            );
            let h = header(&b);
            assert_eq!((h.base_offset, h.last_offset()), (7, 9));
            let section = body(&b).unwrap();
            let got: Vec<Record> = records(&h, &section).map(Result::unwrap).collect();
            assert_eq!(got.len(), 3, "{compression:?}");
            assert_eq!(
                got.iter()
                    .map(|r| (r.offset, r.timestamp))
                    .collect::<Vec<_>>(),
                [(7, 1_000), (8, 1_250), (9, 900)]
            );
            assert_eq!(got[0].key, Some(&b"k"[..]));
            assert_eq!(got[0].value, Some(&b"one"[..]));
            assert_eq!(got[1].key, None);
            assert_eq!(got[1].value, Some(&b""[..]));
            assert_eq!(got[2].value, None);
            let headers: Vec<_> = got[2].headers.iter().collect();
            assert_eq!(headers, [(&b"h"[..], Some(&b"v"[..])), (&b"nil"[..], None)]);
        }
    }

    #[test]
    fn a_batch_cut_short_is_left_for_the_next_fetch() {
        let one = batch_of(&[encoded(0, 1, None, Some("a"))], Compression::None);
        let two = batch_of(&[encoded(1, 2, None, Some("b"))], Compression::None);
        let mut joined = BytesMut::new();
        joined.extend_from_slice(&one);
        joined.extend_from_slice(&two[..two.len() - 3]);
        let whole = whole_batches(&joined.freeze());
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0], one);
        assert!(whole_batches(&Bytes::from_static(&[0; 10])).is_empty());
    }

    #[test]
    fn a_malformed_record_is_an_error_not_a_panic() {
        let b = batch_of(
            &[encoded(0, 1, Some("key"), Some("value"))],
            Compression::None,
        );
        let h = header(&b);
        for cut in 0..b.len() - HEADER {
            let section = &b[HEADER..HEADER + cut];
            let got: Vec<_> = records(&h, section).collect();
            assert_eq!(got.len(), 1);
            assert!(got[0].is_err(), "cut at {cut}");
        }
        let mut bad = BytesMut::from(&b[..]);
        bad[ATTRIBUTES + 1] |= 7; // codec 7
        assert!(body(&bad.freeze()).is_err());
    }

    #[test]
    fn mutated_batches_are_refused_not_a_panic() {
        let mut valid = BytesMut::new();
        for compression in [Compression::None, Compression::Zstd, Compression::Gzip] {
            valid.extend_from_slice(&batch_of(
                &[
                    encoded(0, 1, Some("k"), Some("value one")),
                    encoded(1, 2, None, Some("two")),
                ],
                compression,
            ));
        }
        let valid = valid.freeze();
        assert_eq!(read_every_record(&valid), 6 * 3);
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut m = BytesMut::from(&valid[..]);
            let at = (rng as usize) % m.len();
            match i % 3 {
                0 => m[at] ^= (rng >> 32) as u8 | 1,
                1 => m.truncate(at),
                _ => m[at] = [0x00, 0x7f, 0x80, 0xff][(rng >> 40) as usize % 4],
            }
            read_every_record(&m.freeze());
        }
    }

    #[test]
    fn the_seed_batches_read_as_kafka_python_wrote_them() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/records");
        for name in ["seed-none", "seed-gzip"] {
            let data = Bytes::from(std::fs::read(root.join(name)).unwrap());
            // The first batch's 3 records and 1 header; the second is cut short.
            assert_eq!(read_every_record(&data), 4, "{name}");
            let whole = whole_batches(&data);
            assert_eq!(next_offset(&whole[0]), 3);
        }
    }

    #[test]
    fn log_append_time_is_every_records_time() {
        let b = batch_of(&[encoded(0, 5, None, Some("a"))], Compression::None);
        let mut m = BytesMut::from(&b[..]);
        m[ATTRIBUTES + 1] |= LOG_APPEND_TIME as u8;
        m[35..43].copy_from_slice(&77i64.to_be_bytes());
        let m = m.freeze();
        let section = body(&m).unwrap();
        let r = records(&header(&m), &section).next().unwrap().unwrap();
        assert_eq!(r.timestamp, 77);
    }

    fn txn_header(base: i64, last_delta: i32, producer: i64, control: bool) -> Header {
        Header {
            base_offset: base,
            attributes: TRANSACTIONAL | if control { CONTROL } else { 0 },
            last_offset_delta: last_delta,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: producer,
            producer_epoch: 0,
            base_sequence: 0,
            record_count: last_delta + 1,
        }
    }

    #[test]
    fn aborted_transactions_and_markers_are_skipped() {
        let mut aborted = Aborted::default();
        aborted.add([(7, 10)]);
        // Producer 7's committed batch before its aborted transaction.
        assert!(!aborted.skips(&txn_header(0, 4, 7, false)));
        // Producer 8's transaction interleaved: kept.
        assert!(!aborted.skips(&txn_header(5, 4, 8, false)));
        // Producer 7's aborted batches, up to its marker.
        assert!(aborted.skips(&txn_header(10, 2, 7, false)));
        assert!(!aborted.skips(&txn_header(13, 0, 8, false)));
        assert!(aborted.skips(&txn_header(14, 0, 7, true)));
        // After the marker, producer 7 commits again.
        assert!(!aborted.skips(&txn_header(15, 1, 7, false)));
        assert!(aborted.skips(&txn_header(17, 0, 7, true)));
    }
}
