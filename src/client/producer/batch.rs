//! Frames into librdkafka's queue: each batch is encoded into messages and
//! queued, in calls of up to a thousand messages (`rd_kafka_produce_batch`)
//! where messages have no timestamp or headers, one by one otherwise.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};

use super::context::{Tally, Ticket};
use crate::client::{Context, Settings};
use crate::codec::{Encoder, SCHEMA_HEADER};
use crate::error::Result;
use crate::wait::Check;

/// The largest payload to encode under the client's `message.max.bytes`.
pub fn max_message_bytes(settings: &Settings) -> usize {
    let limit = settings
        .get("message.max.bytes")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1_000_000);
    // Room for the record's key, headers and framing.
    limit.saturating_sub(limit / 50).max(1024)
}

/// The user's headers plus, for JSON, the column types; None when there are none.
pub fn message_headers(
    headers: Option<&HashMap<String, Vec<u8>>>,
    encoder: &Encoder,
) -> Option<OwnedHeaders> {
    let mut all = OwnedHeaders::new();
    for (k, v) in headers.into_iter().flatten() {
        all = all.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    if let Some(schema) = encoder.json_schema_header() {
        all = all.insert(Header {
            key: SCHEMA_HEADER,
            value: Some(schema),
        });
    }
    (all.count() > 0).then_some(all)
}

/// Queues every message of `batch`, retrying while the local queue is full;
/// `check` runs between messages and stops the send when it fails.
#[allow(clippy::too_many_arguments)]
pub fn send_batch(
    producer: &ThreadedProducer<Context>,
    encoder: &Encoder,
    batch: &RecordBatch,
    topic: &str,
    partition: Option<i32>,
    headers: Option<&OwnedHeaders>,
    tally: &Arc<Tally>,
    rows_sent: &mut u64,
    check: Check<'_>,
) -> Result<()> {
    // `check` reads the clock: once per one-row message it was ~2% of the send.
    let mut rows_unchecked = 0u64;
    // Rows queued before this batch: errors number rows across the whole send.
    let first_row = *rows_sent as usize;
    // Messages of one row count share a ticket: an allocation per message,
    // freed on librdkafka's delivery thread, took ~15% of the CPU of a
    // one-row-per-message send.
    let mut last: Option<Arc<Ticket>> = None;
    // Messages without a timestamp or headers go in batches.
    let mut gathered = match headers {
        None => Gathered::new(producer, topic, partition),
        Some(_) => None,
    };
    let mut queue = |m: crate::codec::Message<'_>| -> Result<()> {
        let rows = m.rows as u64;
        let ticket = match &last {
            Some(t) if t.rows == rows => t.clone(),
            _ => {
                let t = Arc::new(Ticket {
                    tally: tally.clone(),
                    rows,
                });
                last = Some(t.clone());
                t
            }
        };
        tally.pending.fetch_add(1, Relaxed);
        *rows_sent += rows;
        if let Some(g) = gathered.as_mut() {
            if m.timestamp_ms.is_none() {
                g.add(&m, ticket);
                if g.messages.len() < GATHER_MESSAGES && g.bytes.len() < GATHER_BYTES {
                    return Ok(());
                }
                g.produce(producer, tally, rows_sent, check)?;
                return check();
            }
            // Queued in order: what was gathered goes first.
            g.produce(producer, tally, rows_sent, check)
                .inspect_err(|_| unsend(tally, rows_sent, rows))?;
        }
        let mut record: BaseRecord<'_, [u8], [u8], Arc<Ticket>> =
            BaseRecord::with_opaque_to(topic, ticket).payload(m.payload);
        if let Some(k) = m.key {
            record = record.key(k);
        }
        if let Some(ts) = m.timestamp_ms {
            record = record.timestamp(ts);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(h) = headers {
            record = record.headers(h.clone());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The local queue is full: let librdkafka drain it, then retry.
                    record = r;
                    producer.poll(Duration::from_millis(1));
                    check().inspect_err(|_| unsend(tally, rows_sent, rows))?;
                }
                Err((e, _)) => {
                    tally.pending.fetch_sub(1, Relaxed);
                    tally.fail(rows, e.to_string());
                    break;
                }
            }
        }
        rows_unchecked += rows;
        if rows_unchecked < 64 {
            return Ok(());
        }
        rows_unchecked = 0;
        check()
    };
    // An error of the encoder (a row too large) comes after the rows before
    // it were accepted: those are queued, as they would have been one by one.
    // An error of the queueing (Ctrl+C, the timeout) stops the send there.
    let mut stopped = false;
    let encoded = encoder.encode_from(batch, first_row, &mut |m| {
        queue(m).inspect_err(|_| stopped = true)
    });
    match gathered.as_mut() {
        Some(g) if stopped => {
            g.abandon(tally, rows_sent);
            encoded
        }
        Some(g) => g.produce(producer, tally, rows_sent, check).and(encoded),
        None => encoded,
    }
}

/// A message counted as queued that was not.
fn unsend(tally: &Tally, rows_sent: &mut u64, rows: u64) {
    tally.pending.fetch_sub(1, Relaxed);
    *rows_sent -= rows;
}

/// librdkafka's RD_KAFKA_PARTITION_UA: its partitioner picks the partition.
const PARTITION_UNASSIGNED: i32 = -1;

/// Up to this many messages (or bytes) go to librdkafka in one call.
const GATHER_MESSAGES: usize = 1024;
const GATHER_BYTES: usize = 1 << 20;

/// Messages gathered for one `rd_kafka_produce_batch`: librdkafka then
/// reads the clock, finds the topic and takes its lock once per call, where
/// one call per message spent ~15% of a one-row-per-message send on that.
/// Messages are partitioned as one by one (librdkafka's partitioner).
struct Gathered {
    topic: *mut rd::rd_kafka_topic_t,
    partition: i32,
    bytes: Vec<u8>,
    messages: Vec<GatheredMessage>,
}

struct GatheredMessage {
    payload: std::ops::Range<usize>,
    key: Option<std::ops::Range<usize>>,
    ticket: Arc<Ticket>,
}

impl Gathered {
    /// None if librdkafka has no handle for `topic` (an invalid name):
    /// messages then go one by one, and fail one by one.
    fn new(
        producer: &ThreadedProducer<Context>,
        topic: &str,
        partition: Option<i32>,
    ) -> Option<Self> {
        let name = std::ffi::CString::new(topic).ok()?;
        let client = producer.client().native_ptr();
        // SAFETY: a live client and a NUL-terminated name; the handle is
        // released in Drop.
        let handle = unsafe { rd::rd_kafka_topic_new(client, name.as_ptr(), std::ptr::null_mut()) };
        (!handle.is_null()).then(|| Self {
            topic: handle,
            partition: partition.unwrap_or(PARTITION_UNASSIGNED),
            bytes: Vec::with_capacity(GATHER_BYTES + (64 << 10)),
            messages: Vec::with_capacity(GATHER_MESSAGES),
        })
    }

    fn add(&mut self, m: &crate::codec::Message<'_>, ticket: Arc<Ticket>) {
        let mut copy = |data: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(data);
            start..self.bytes.len()
        };
        let payload = copy(m.payload);
        let key = m.key.map(copy);
        self.messages.push(GatheredMessage {
            payload,
            key,
            ticket,
        });
    }

    /// Queues what is gathered, retrying while the local queue is full.
    fn produce(
        &mut self,
        producer: &ThreadedProducer<Context>,
        tally: &Tally,
        rows_sent: &mut u64,
        check: Check<'_>,
    ) -> Result<()> {
        let mut from = 0;
        while from < self.messages.len() {
            let mut natives: Vec<rd::rd_kafka_message_t> = self.messages[from..]
                .iter()
                .map(|g| {
                    // SAFETY: an all-zero rd_kafka_message_t is valid (null pointers).
                    let mut m: rd::rd_kafka_message_t = unsafe { std::mem::zeroed() };
                    m.payload = self.bytes[g.payload.clone()].as_ptr() as *mut _;
                    m.len = g.payload.len();
                    if let Some(k) = &g.key {
                        m.key = self.bytes[k.clone()].as_ptr() as *mut _;
                        m.key_len = k.len();
                    }
                    m._private = Arc::into_raw(g.ticket.clone()) as *mut _;
                    m
                })
                .collect();
            // SAFETY: a live topic handle; librdkafka copies each payload and
            // key (F_COPY) and keeps `_private` as the delivery opaque.
            unsafe {
                rd::rd_kafka_produce_batch(
                    self.topic,
                    self.partition,
                    rd::RD_KAFKA_MSG_F_COPY,
                    natives.as_mut_ptr(),
                    natives.len() as i32,
                );
            }
            let mut full_from = None;
            for (i, m) in natives.iter().enumerate() {
                if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    continue;
                }
                // Not queued, so no delivery report will return the ticket.
                // SAFETY: made by Arc::into_raw above and not taken by librdkafka.
                drop(unsafe { Arc::from_raw(m._private as *const Ticket) });
                if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    // librdkafka stops at the first full queue: the rest are this too.
                    full_from.get_or_insert(from + i);
                    continue;
                }
                tally.pending.fetch_sub(1, Relaxed);
                let rows = self.messages[from + i].ticket.rows;
                tally.fail(
                    rows,
                    KafkaError::MessageProduction(m.err.into()).to_string(),
                );
            }
            let Some(next) = full_from else { break };
            from = next;
            // The local queue is full: let librdkafka drain it, then retry.
            producer.poll(Duration::from_millis(1));
            if let Err(e) = check() {
                self.messages.drain(..from);
                self.abandon(tally, rows_sent);
                return Err(e);
            }
        }
        self.messages.clear();
        self.bytes.clear();
        Ok(())
    }

    /// Uncounts the messages gathered and not queued (a send that stops).
    fn abandon(&mut self, tally: &Tally, rows_sent: &mut u64) {
        for g in self.messages.drain(..) {
            unsend(tally, rows_sent, g.ticket.rows);
        }
        self.bytes.clear();
    }
}

impl Drop for Gathered {
    fn drop(&mut self) {
        // SAFETY: the handle from rd_kafka_topic_new, released once.
        unsafe { rd::rd_kafka_topic_destroy(self.topic) };
    }
}
