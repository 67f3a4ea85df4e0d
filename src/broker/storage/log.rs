//! One partition's log: its record batches in offset order, the offsets
//! that bound it (log start, high watermark), and what each idempotent
//! producer wrote last, so that a retried batch is stored once.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::batch::{Header, Refused};

/// Where a stored batch's bytes are.
#[derive(Clone, Debug)]
pub enum Data {
    Memory(Bytes),
    /// In the journal file.
    File {
        at: u64,
        len: u32,
    },
}

impl Data {
    pub fn len(&self) -> u64 {
        match self {
            Data::Memory(b) => b.len() as u64,
            Data::File { len, .. } => u64::from(*len),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Stored {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// The largest timestamp of this batch and every batch before it: a
    /// sorted key for finding the first batch that reaches a time.
    running_max_timestamp: i64,
    pub data: Data,
}

/// How many recent batches of a producer are remembered to spot retries
/// (librdkafka and Kafka keep at most 5 requests in flight per partition).
const RECENT: usize = 5;

#[derive(Debug)]
struct Producer {
    epoch: i16,
    recent: VecDeque<Written>,
}

#[derive(Clone, Copy, Debug)]
struct Written {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
}

/// The answer to a batch offered to the log.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// Store it at this base offset.
    New(i64),
    /// A retry of a batch stored at this base offset: not stored again.
    Duplicate(i64),
}

#[derive(Debug, Default)]
pub struct PartitionLog {
    log_start: i64,
    next_offset: i64,
    batches: VecDeque<Stored>,
    bytes: u64,
    producers: HashMap<i64, Producer>,
}

/// Sequence numbers wrap to 0 after i32::MAX.
fn sequence_after(sequence: i32, delta: i32) -> i32 {
    let sum = i64::from(sequence) + i64::from(delta);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

impl PartitionLog {
    pub fn log_start(&self) -> i64 {
        self.log_start
    }

    pub fn high_watermark(&self) -> i64 {
        self.next_offset
    }

    /// Bytes of the batches kept.
    pub fn size(&self) -> u64 {
        self.bytes
    }

    /// Where `h` goes: a new base offset, or the offset it was stored at
    /// before (an idempotent producer's retry); or why it is refused.
    pub fn offer(&self, h: &Header) -> Result<Offered, Refused> {
        let new = Offered::New(self.next_offset);
        if h.producer_id < 0 {
            return Ok(new);
        }
        let last_sequence = sequence_after(h.base_sequence, h.last_offset_delta);
        let Some(p) = self.producers.get(&h.producer_id) else {
            return if h.base_sequence == 0 {
                Ok(new)
            } else {
                Err(Refused {
                    error: ResponseError::UnknownProducerId,
                    message: format!(
                        "producer {} is unknown here and starts at sequence {}",
                        h.producer_id, h.base_sequence
                    ),
                })
            };
        };
        if h.producer_epoch < p.epoch {
            return Err(Refused {
                error: ResponseError::InvalidProducerEpoch,
                message: format!(
                    "producer {} epoch {} is older than its epoch {}",
                    h.producer_id, h.producer_epoch, p.epoch
                ),
            });
        }
        if h.producer_epoch > p.epoch {
            return if h.base_sequence == 0 {
                Ok(new)
            } else {
                Err(out_of_order(h, 0))
            };
        }
        if let Some(w) = p
            .recent
            .iter()
            .find(|w| w.first_sequence == h.base_sequence && w.last_sequence == last_sequence)
        {
            return Ok(Offered::Duplicate(w.base_offset));
        }
        let expected = p
            .recent
            .back()
            .map_or(0, |w| sequence_after(w.last_sequence, 1));
        if h.base_sequence != expected {
            return Err(out_of_order(h, expected));
        }
        Ok(new)
    }

    /// Appends a batch placed at `self.high_watermark()` (after [`Self::offer`]).
    pub fn append(&mut self, h: &Header, data: Data) {
        let base_offset = self.next_offset;
        let last_offset = base_offset + i64::from(h.last_offset_delta);
        self.remember(h, base_offset);
        let running = self.batches.back().map_or(h.max_timestamp, |b| {
            b.running_max_timestamp.max(h.max_timestamp)
        });
        self.bytes += data.len();
        self.batches.push_back(Stored {
            base_offset,
            last_offset,
            max_timestamp: h.max_timestamp,
            running_max_timestamp: running,
            data,
        });
        self.next_offset = last_offset + 1;
    }

    /// A batch found in the journal at start-up, at the offset it was stored at.
    pub fn restore(&mut self, h: &Header, data: Data) {
        if h.base_offset < self.next_offset {
            return;
        }
        self.next_offset = h.base_offset;
        self.append(h, data);
    }

    fn remember(&mut self, h: &Header, base_offset: i64) {
        if h.producer_id < 0 {
            return;
        }
        let p = self.producers.entry(h.producer_id).or_insert(Producer {
            epoch: h.producer_epoch,
            recent: VecDeque::new(),
        });
        if h.producer_epoch != p.epoch {
            p.epoch = h.producer_epoch;
            p.recent.clear();
        }
        if p.recent.len() == RECENT {
            p.recent.pop_front();
        }
        p.recent.push_back(Written {
            first_sequence: h.base_sequence,
            last_sequence: sequence_after(h.base_sequence, h.last_offset_delta),
            base_offset,
        });
    }

    /// The batches from the one holding `offset` on, as many as fit in
    /// `max_bytes`; with `min_one`, the first comes even when it alone is
    /// larger (so that a client always gets on).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one: bool,
    ) -> Result<Vec<Data>, ResponseError> {
        if offset < self.log_start || offset > self.next_offset {
            return Err(ResponseError::OffsetOutOfRange);
        }
        let first = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = Vec::new();
        let mut used = 0u64;
        for b in self.batches.range(first..) {
            let size = b.data.len();
            if used + size > max_bytes && !(out.is_empty() && min_one) {
                break;
            }
            used += size;
            out.push(b.data.clone());
        }
        Ok(out)
    }

    /// The first batch holding a record at or after `at_ms` (and the log
    /// start, so that records before it are skipped).
    pub fn batch_reaching(&self, at_ms: i64) -> Option<&Stored> {
        let from = self
            .batches
            .partition_point(|b| b.running_max_timestamp < at_ms);
        self.batches
            .range(from..)
            .find(|b| b.max_timestamp >= at_ms && b.last_offset >= self.log_start)
    }

    /// The batch holding the largest timestamp (the first such).
    pub fn batch_with_latest_timestamp(&self) -> Option<&Stored> {
        self.batches
            .iter()
            .filter(|b| b.last_offset >= self.log_start)
            .fold(None, |best: Option<&Stored>, b| match best {
                Some(x) if x.max_timestamp >= b.max_timestamp => Some(x),
                _ => Some(b),
            })
    }

    /// Moves the log start to `offset` (records before it go); the new log start.
    pub fn delete_before(&mut self, offset: i64) -> Result<i64, ResponseError> {
        let offset = if offset == -1 {
            self.next_offset
        } else {
            offset
        };
        if offset < 0 || offset > self.next_offset {
            return Err(ResponseError::OffsetOutOfRange);
        }
        if offset > self.log_start {
            self.log_start = offset;
            while self
                .batches
                .front()
                .is_some_and(|b| b.last_offset < self.log_start)
            {
                let gone = self.batches.pop_front().expect("front");
                self.bytes -= gone.data.len();
            }
        }
        Ok(self.log_start)
    }

    /// The offset before which every batch's newest record is older than
    /// `cutoff_ms` (what retention may delete); None if none is.
    pub fn expired_before(&self, cutoff_ms: i64) -> Option<i64> {
        let kept = self
            .batches
            .iter()
            .position(|b| b.max_timestamp >= cutoff_ms)
            .unwrap_or(self.batches.len());
        let first = self
            .batches
            .iter()
            .position(|b| b.last_offset >= self.log_start)
            .unwrap_or(self.batches.len());
        if kept <= first {
            return None;
        }
        Some(
            self.batches
                .get(kept)
                .map_or(self.next_offset, |b| b.base_offset),
        )
    }
}

fn out_of_order(h: &Header, expected: i32) -> Refused {
    Refused {
        error: ResponseError::OutOfOrderSequenceNumber,
        message: format!(
            "producer {} epoch {} sent sequence {} where {} was expected",
            h.producer_id, h.producer_epoch, h.base_sequence, expected
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::storage::batch::{self, tests::batch};
    use kafka_protocol::records::Compression;

    fn offer_and_append(log: &mut PartitionLog, b: &[u8]) -> Result<Offered, ResponseError> {
        let h = batch::header(b);
        let offered = log.offer(&h).map_err(|r| r.error)?;
        if let Offered::New(at) = offered {
            assert_eq!(at, log.high_watermark());
            log.append(&h, Data::Memory(Bytes::copy_from_slice(b)));
        }
        Ok(offered)
    }

    #[test]
    fn an_idempotent_producers_retry_is_stored_once() {
        let mut log = PartitionLog::default();
        let first = batch(&[1, 2, 3], (7, 0, 0), Compression::None);
        let second = batch(&[4, 5], (7, 0, 3), Compression::None);
        assert_eq!(offer_and_append(&mut log, &first), Ok(Offered::New(0)));
        assert_eq!(offer_and_append(&mut log, &second), Ok(Offered::New(3)));
        // Both retried: stored where they were.
        assert_eq!(
            offer_and_append(&mut log, &first),
            Ok(Offered::Duplicate(0))
        );
        assert_eq!(
            offer_and_append(&mut log, &second),
            Ok(Offered::Duplicate(3))
        );
        assert_eq!(log.high_watermark(), 5);
        // A gap, an older epoch, a stranger starting mid-stream.
        let gap = batch(&[6], (7, 0, 9), Compression::None);
        assert_eq!(
            offer_and_append(&mut log, &gap),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        let fenced = batch(&[6], (7, -1, 5), Compression::None);
        assert!(offer_and_append(&mut log, &fenced).is_err());
        let stranger = batch(&[6], (8, 0, 4), Compression::None);
        assert_eq!(
            offer_and_append(&mut log, &stranger),
            Err(ResponseError::UnknownProducerId)
        );
        // A new epoch starts again at 0; batches without a producer always go in.
        let bumped = batch(&[6], (7, 1, 0), Compression::None);
        assert_eq!(offer_and_append(&mut log, &bumped), Ok(Offered::New(5)));
        let plain = batch(&[7], (-1, -1, -1), Compression::None);
        assert_eq!(offer_and_append(&mut log, &plain), Ok(Offered::New(6)));
        assert_eq!(offer_and_append(&mut log, &plain), Ok(Offered::New(7)));
        assert_eq!(sequence_after(i32::MAX, 1), 0);
    }

    #[test]
    fn reads_start_at_the_batch_holding_the_offset() {
        let mut log = PartitionLog::default();
        for i in 0..4 {
            let b = batch(&[i, i, i], (-1, -1, -1), Compression::None);
            offer_and_append(&mut log, &b).unwrap();
        }
        let size = log.batches[0].data.len();
        // Offset 4 is inside the second batch (3..=5): it comes whole.
        let got = log.read(4, size * 2, true).unwrap();
        assert_eq!(got.len(), 2);
        // The first batch comes even when it alone is over the limit, if asked.
        assert_eq!(log.read(0, 1, true).unwrap().len(), 1);
        assert!(log.read(0, 1, false).unwrap().is_empty());
        assert!(log.read(12, 1000, true).unwrap().is_empty());
        assert_eq!(
            log.read(13, 1000, true).unwrap_err(),
            ResponseError::OffsetOutOfRange
        );
        assert_eq!(log.delete_before(4), Ok(4));
        assert_eq!(
            log.read(3, 1000, true).unwrap_err(),
            ResponseError::OffsetOutOfRange
        );
        assert_eq!(log.read(4, 1, true).unwrap().len(), 1);
        assert_eq!(log.batches.len(), 3);
        assert_eq!(log.delete_before(99), Err(ResponseError::OffsetOutOfRange));
        assert_eq!(log.delete_before(-1), Ok(12));
        assert!(log.batches.is_empty() && log.bytes == 0);
    }

    #[test]
    fn times_are_found_in_offset_order() {
        let mut log = PartitionLog::default();
        for ts in [[10, 20], [50, 15], [30, 60], [5, 5]] {
            offer_and_append(&mut log, &batch(&ts, (-1, -1, -1), Compression::None)).unwrap();
        }
        assert_eq!(log.batch_reaching(12).unwrap().base_offset, 0);
        assert_eq!(log.batch_reaching(21).unwrap().base_offset, 2);
        assert_eq!(log.batch_reaching(55).unwrap().base_offset, 4);
        assert!(log.batch_reaching(61).is_none());
        assert_eq!(log.batch_with_latest_timestamp().unwrap().base_offset, 4);
        assert_eq!(log.expired_before(40), Some(2));
        assert_eq!(log.expired_before(5), None);
    }
}
