//! Kafka record batches (magic 2) as the broker stores them: the 61-byte
//! header read and patched in place, the CRC checked, and the records
//! read (in [`crate::records`]) only to find a timestamp inside a batch.

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;

pub use crate::records::{header, Header, HEADER};
use crate::records::{
    i32_at, offsets_and_timestamps, ATTRIBUTES, CONTROL, CRC, MAGIC, TRANSACTIONAL,
};

/// Why a produced batch is refused, and the message the client sees.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub error: ResponseError,
    pub message: String,
}

fn refused(error: ResponseError, message: impl Into<String>) -> Refused {
    Refused {
        error,
        message: message.into(),
    }
}

/// The batches of a produce request's records, each checked (framing,
/// magic, CRC, record count) and copied out of the request so that the
/// request's buffer can go.
pub fn split(records: &[u8]) -> Result<Vec<BytesMut>, Refused> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let rest = &records[at..];
        if rest.len() < HEADER {
            return Err(refused(
                ResponseError::CorruptMessage,
                format!("a record batch is cut short ({} bytes left)", rest.len()),
            ));
        }
        let length = i32_at(rest, 8);
        let size = usize::try_from(length)
            .ok()
            .and_then(|n| n.checked_add(12))
            .filter(|&n| n >= HEADER && n <= rest.len())
            .ok_or_else(|| {
                refused(
                    ResponseError::CorruptMessage,
                    format!("a record batch claims {length} bytes"),
                )
            })?;
        let batch = &rest[..size];
        if batch[MAGIC] != 2 {
            return Err(refused(
                ResponseError::UnsupportedForMessageFormat,
                format!(
                    "record batch format v{} (only v2, Kafka 0.11 on, is stored)",
                    batch[MAGIC]
                ),
            ));
        }
        let crc = u32::from_be_bytes(batch[CRC..CRC + 4].try_into().expect("4 bytes"));
        if crc32c::crc32c(&batch[ATTRIBUTES..]) != crc {
            return Err(refused(
                ResponseError::CorruptMessage,
                "a record batch fails its CRC check",
            ));
        }
        let h = header(batch);
        if h.record_count <= 0 || h.last_offset_delta < 0 {
            return Err(refused(
                ResponseError::InvalidRecord,
                format!(
                    "a record batch holds {} records (last offset delta {})",
                    h.record_count, h.last_offset_delta
                ),
            ));
        }
        if h.attributes & (TRANSACTIONAL | CONTROL) != 0 {
            return Err(refused(
                ResponseError::InvalidRecord,
                "transactional and control batches are not supported by this broker",
            ));
        }
        out.push(BytesMut::from(batch));
        at += size;
    }
    Ok(out)
}

/// Sets the offset of a batch's first record, and the leader epoch (0).
pub fn place(batch: &mut BytesMut, base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&0i32.to_be_bytes());
}

/// The offset and timestamp of the first record of `batch` whose
/// timestamp is at least `at_ms`.
pub fn first_at_or_after(batch: &Bytes, at_ms: i64) -> Option<(i64, i64)> {
    offsets_and_timestamps(batch)
        .into_iter()
        .find(|(_, ts)| *ts >= at_ms)
}

/// The offset and timestamp of the first record holding `batch`'s largest timestamp.
pub fn latest_timestamp(batch: &Bytes) -> Option<(i64, i64)> {
    offsets_and_timestamps(batch)
        .into_iter()
        .fold(None, |best: Option<(i64, i64)>, r| match best {
            Some(b) if b.1 >= r.1 => Some(b),
            _ => Some(r),
        })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    pub use crate::records::test_support::Compression;
    use crate::records::test_support::{encode, Spec, EVERY_COMPRESSION};

    /// A batch of `n` records with the given timestamps, as a producer writes it.
    pub fn batch(
        timestamps: &[i64],
        producer: (i64, i16, i32),
        compression: Compression,
    ) -> BytesMut {
        let texts: Vec<(String, String)> = (0..timestamps.len())
            .map(|i| (format!("k{i}"), format!("value {i}")))
            .collect();
        let records: Vec<Spec> = timestamps
            .iter()
            .zip(&texts)
            .enumerate()
            .map(|(i, (&ts, (key, value)))| Spec {
                offset: i as i64,
                timestamp: ts,
                key: Some(key),
                value: Some(value),
                headers: &[("h", Some("x"))],
                producer: (producer.0, producer.1, producer.2 + i as i32),
            })
            .collect();
        encode(&records, compression)
    }

    #[test]
    fn a_producers_batches_are_split_and_checked() {
        let mut two = batch(&[5, 9, 7], (3, 0, 0), Compression::None);
        two.extend_from_slice(&batch(&[10], (3, 0, 3), Compression::Zstd));
        let split = split(&two).unwrap();
        assert_eq!(split.len(), 2);
        let h = header(&split[0]);
        assert_eq!(
            (
                h.record_count,
                h.last_offset_delta,
                h.max_timestamp,
                h.base_sequence
            ),
            (3, 2, 9, 0)
        );
        assert_eq!(header(&split[1]).base_sequence, 3);

        let mut corrupt = batch(&[1], (-1, -1, -1), Compression::None);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert_eq!(split_error(&corrupt), ResponseError::CorruptMessage);
        let whole = batch(&[1], (-1, -1, -1), Compression::None);
        assert_eq!(split_error(&whole[..40]), ResponseError::CorruptMessage);
        let mut old = whole.clone();
        old[MAGIC] = 1;
        assert_eq!(
            split_error(&old),
            ResponseError::UnsupportedForMessageFormat
        );
        let mut huge = whole.clone();
        huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(split_error(&huge), ResponseError::CorruptMessage);
    }

    fn split_error(b: &[u8]) -> ResponseError {
        split(b).unwrap_err().error
    }

    #[test]
    fn placing_a_batch_keeps_its_crc_valid() {
        let mut b = batch(&[1, 2], (-1, -1, -1), Compression::Lz4);
        place(&mut b, 1234);
        assert_eq!(header(&b).base_offset, 1234);
        assert_eq!(split(&b).unwrap().len(), 1);
        let frozen = b.freeze();
        assert_eq!(first_at_or_after(&frozen, 2), Some((1235, 2)));
    }

    #[test]
    fn timestamps_inside_compressed_batches() {
        for compression in EVERY_COMPRESSION {
            let mut b = batch(&[100, 300, 200, 300], (-1, -1, -1), compression);
            place(&mut b, 10);
            let b = b.freeze();
            assert_eq!(
                first_at_or_after(&b, 150),
                Some((11, 300)),
                "{compression:?}"
            );
            assert_eq!(first_at_or_after(&b, 301), None);
            assert_eq!(latest_timestamp(&b), Some((11, 300)));
        }
    }
}
