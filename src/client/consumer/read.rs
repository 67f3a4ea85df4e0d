//! Reading frames: messages polled from librdkafka go into a
//! [`FrameBuilder`] until a frame is full or the stream goes quiet.
//!
//! A frame's rows count as consumed (their offsets stored for auto-commit,
//! and kept for `commit()`) only once they are handed out: returned to the
//! caller, taken by a background reader's callback or drained from its
//! buffer. A message that cannot be decoded is raised once as a DecodeError,
//! with the rows before it kept for the next read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Schema};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::Consumer;
use crate::client::Context;
use crate::codec::{BadMessage, Frame, FrameBuilder, HeaderSource, MessageRef, SCHEMA_HEADER};
use crate::error::{Error, Result};
use crate::wait::{self, Check};

/// The next offset of each partition a frame reaches: `(topic, partition) -> offset`.
pub type Positions = BTreeMap<(String, i32), i64>;

/// With rows in hand, a read returns after this long without a new message.
const QUIET: Duration = Duration::from_millis(50);

/// Messages taken from librdkafka's queue between two checks of the clock.
const BURST: usize = 4096;

/// How many skipped messages `bad_messages` keeps (the oldest go first).
pub(super) const KEEP_BAD: usize = 10_000;

pub(super) struct Inner {
    pub(super) consumer: BaseConsumer<Context>,
    pub(super) builder: FrameBuilder,
    /// A frame decoded before a DecodeError was raised; returned next.
    pub(super) pending_frame: Option<(Frame, Positions)>,
    pub(super) pending_errors: VecDeque<BadMessage>,
    /// Positions past messages raised as DecodeError: consumed (and so
    /// committed) only once reading goes on after the error.
    pub(super) after_error: Positions,
    /// Next offset per partition of every row handed out.
    pub(super) handed_out: Positions,
}

/// Pushes one message into `builder`, its headers looked up once.
pub(crate) fn push_message(builder: &mut FrameBuilder, m: &BorrowedMessage<'_>) {
    let headers = m.headers();
    builder.push_with_headers(
        message_ref(m, headers),
        headers.map(|h| h as &dyn HeaderSource),
    );
}

/// What the decoders need of `m`.
fn message_ref<'a>(
    m: &'a BorrowedMessage<'_>,
    headers: Option<&'a rdkafka::message::BorrowedHeaders>,
) -> MessageRef<'a> {
    MessageRef {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        timestamp_ms: m.timestamp().to_millis(),
        key: m.key(),
        payload: m.payload(),
        schema_header: headers.and_then(|h| {
            h.iter()
                .find(|h| h.key == SCHEMA_HEADER)
                .and_then(|h| h.value)
        }),
    }
}

/// librdkafka's headers of a message, as the raw and text formats read them.
impl HeaderSource for rdkafka::message::BorrowedHeaders {
    fn each(&self, f: &mut dyn FnMut(&str, Option<&[u8]>)) {
        for h in self.iter() {
            f(h.key, h.value);
        }
    }
}

pub(super) fn tpl_of(positions: &Positions) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in positions {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    tpl
}

impl Consumer {
    pub(super) fn hand_out(&self, inner: &mut Inner, positions: Positions) {
        if positions.is_empty() {
            return;
        }
        if self.auto_commit {
            // Only rows handed out count as consumed; librdkafka commits these.
            let _ = inner.consumer.store_offsets(&tpl_of(&positions));
        }
        inner.handed_out.extend(positions);
    }

    /// Up to `max_rows` rows from many messages as one frame, or None if
    /// nothing arrived within `timeout` seconds (None: no limit). With
    /// `string_views`, text columns come as string views (what Polars holds).
    pub fn poll_frame(
        &self,
        max_rows: usize,
        timeout: Option<f64>,
        string_views: bool,
        check: Check<'_>,
    ) -> Result<Option<Frame>> {
        self.with_inner(|inner| {
            inner.builder.string_views = string_views;
            let read = self.read(inner, max_rows, timeout, check)?;
            let frame = read.map(|(frame, positions)| {
                self.hand_out(inner, positions);
                frame
            });
            match frame {
                Some(f) if string_views => with_string_views(f).map(Some),
                other => Ok(other),
            }
        })
    }

    /// One frame and the positions it reaches, not yet counted as consumed.
    pub(super) fn read(
        &self,
        inner: &mut Inner,
        max_rows: usize,
        timeout: Option<f64>,
        check: Check<'_>,
    ) -> Result<Option<(Frame, Positions)>> {
        if let Some(bad) = inner.pending_errors.pop_front() {
            return Err(bad.into_error());
        }
        // Reading on after a DecodeError: the messages it named are consumed now.
        let past_errors = std::mem::take(&mut inner.after_error);
        self.hand_out(inner, past_errors);
        if let Some(pending) = inner.pending_frame.take() {
            return Ok(Some(pending));
        }
        let deadline = wait::deadline(timeout)?;
        let started = Instant::now();
        let mut poll_error = None;
        while inner.builder.rows() < max_rows.max(1) {
            let Some(mut slice) = wait::slice(deadline) else {
                break;
            };
            let have_rows = inner.builder.rows() > 0;
            if have_rows {
                // Return once the stream goes quiet rather than sit out the timeout.
                slice = slice.min(QUIET);
            }
            let mut next = inner.consumer.poll(slice);
            // Messages already fetched are taken in a burst, without the
            // clock reads and checks a wait needs: per message they cost as
            // much as the decoding.
            let mut burst = 0;
            while let Some(Ok(m)) = &next {
                push_message(&mut inner.builder, m);
                if let Some(e) = inner.builder.take_unavailable() {
                    // A registry that cannot be asked: read these messages again later.
                    drop(next.take());
                    super::unread(inner, Duration::from_secs(5))?;
                    return Err(e);
                }
                burst += 1;
                if burst == BURST
                    || inner.builder.rows() >= max_rows.max(1)
                    || (!self.skip_bad && inner.builder.has_bad())
                {
                    break;
                }
                next = inner.consumer.poll(Duration::ZERO);
            }
            match next {
                None if have_rows && burst == 0 => break,
                None | Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let errors = &inner.consumer.context().errors;
                    poll_error = Some(
                        errors
                            .security_error(started, &self.settings)
                            .unwrap_or_else(|| Error::kafka("consume failed", &e)),
                    );
                    break;
                }
            }
            if !self.skip_bad && inner.builder.has_bad() {
                break;
            }
            if self.closing.load(Relaxed) {
                return Err(Error::Closed("this Consumer"));
            }
            check()?;
        }
        let frame = inner.builder.take_frame()?;
        let positions = inner.builder.take_positions();
        let mut bad = inner.builder.take_bad();
        if self.skip_bad {
            let mut kept = self.bad.lock().unwrap_or_else(PoisonError::into_inner);
            kept.extend(bad);
            while kept.len() > KEEP_BAD {
                kept.pop_front();
            }
        } else if !bad.is_empty() {
            let first = bad.remove(0);
            inner.pending_errors.extend(bad);
            match frame {
                Some(f) => inner.pending_frame = Some((f, positions)),
                None => inner.after_error.extend(positions),
            }
            return Err(first.into_error());
        }
        let Some(frame) = frame else {
            // Only skipped messages: nothing to hand over, so they are consumed now.
            self.hand_out(inner, positions);
            if let Some(e) = poll_error {
                return Err(e);
            }
            let errors = &inner.consumer.context().errors;
            if let Some(e) = errors.security_error(started, &self.settings) {
                return Err(e);
            }
            if let Some((code, reason)) = errors.since(started) {
                if matches!(
                    code,
                    RDKafkaErrorCode::AllBrokersDown
                        | RDKafkaErrorCode::Authentication
                        | RDKafkaErrorCode::SSL
                ) {
                    return Err(Error::kafka_code(
                        format!(
                            "no data from {}: {}",
                            self.settings.bootstrap_servers().unwrap_or("?"),
                            self.settings.scrub(&reason)
                        ),
                        code,
                    ));
                }
            }
            return Ok(None);
        };
        Ok(Some((frame, positions)))
    }

    /// For a background reader: one frame (text as plain strings), not yet
    /// consumed. `check` is the reader's own (its stop flag).
    pub fn read_unconsumed(
        &self,
        max_rows: usize,
        timeout: f64,
        check: Check<'_>,
    ) -> Result<Option<(Frame, Positions)>> {
        self.let_others_go_first();
        self.with_inner(|inner| {
            inner.builder.string_views = false;
            self.read(inner, max_rows, Some(timeout), check)
        })
    }

    /// Returns a frame nobody took: the next read hands it out again.
    pub fn put_back(&self, frame: Frame, positions: Positions) {
        let mut guard = self.lock_inner();
        if let Some(inner) = guard.as_mut() {
            if inner.pending_frame.is_none() {
                inner.pending_frame = Some((frame, positions));
            }
        }
    }

    /// Counts rows read by [`Self::read_unconsumed`] as consumed.
    pub fn consume(&self, positions: Positions) -> Result<()> {
        self.with_inner(|inner| {
            self.hand_out(inner, positions);
            Ok(())
        })
    }
}

/// Serves the consumer's events while it waits for metadata, so that
/// client-level errors are recorded; messages already fetched are kept.
pub(super) fn pump<'a>(
    consumer: &'a BaseConsumer<Context>,
    builder: &'a mut FrameBuilder,
    check: Check<'a>,
) -> impl FnMut() -> Result<()> + 'a {
    move || {
        // A log line served also reads as None: stop only after several in a row.
        let mut idle = 0;
        for _ in 0..10_000 {
            match consumer.poll(Duration::ZERO) {
                None if idle >= 50 => break,
                None => idle += 1,
                Some(Ok(m)) => push_message(builder, &m),
                Some(Err(_)) => {} // recorded by the context
            }
        }
        check()
    }
}

/// The frame with its top-level Utf8/LargeUtf8 columns as string views,
/// which Polars takes as they are (it converts plain strings itself, at
/// about ten times the cost). The views point into the same data buffers:
/// no string is copied. Columns over 4 GiB of text stay as they are.
pub fn with_string_views(frame: Frame) -> Result<Frame> {
    let viewable = |dt: &DataType| matches!(dt, DataType::Utf8 | DataType::LargeUtf8);
    if !frame
        .schema
        .fields()
        .iter()
        .any(|f| viewable(f.data_type()))
    {
        return Ok(frame);
    }
    let fits = |c: &ArrayRef| match c.data_type() {
        DataType::Utf8 => true,
        DataType::LargeUtf8 => c.as_string::<i64>().values().len() < u32::MAX as usize,
        _ => false,
    };
    // A column becomes views only if it fits in every batch, so all batches keep one schema.
    let convert: Vec<bool> = (0..frame.schema.fields().len())
        .map(|i| {
            viewable(frame.schema.field(i).data_type())
                && frame.batches.iter().all(|b| fits(b.column(i)))
        })
        .collect();
    let fields: Vec<_> = frame
        .schema
        .fields()
        .iter()
        .zip(&convert)
        .map(|(f, &c)| match c {
            true => Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View)),
            false => f.clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        frame.schema.metadata().clone(),
    ));
    let batches = frame
        .batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(&convert)
                .map(|(col, &c)| -> ArrayRef {
                    match (c, col.data_type()) {
                        (true, DataType::Utf8) => {
                            Arc::new(crate::codec::string_views(col.as_string::<i32>()))
                        }
                        (true, DataType::LargeUtf8) => {
                            Arc::new(crate::codec::string_views(col.as_string::<i64>()))
                        }
                        _ => col.clone(),
                    }
                })
                .collect();
            let options = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
            RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Frame { schema, batches })
}
