//! Delivery reports: librdkafka calls the producer's context once per
//! message, on its own thread, with the message's ticket; the ticket's
//! [`Tally`] counts what one send (or a replay) delivered or lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rdkafka::producer::{DeliveryResult, ProducerContext};

use crate::client::Context;
use crate::error::{Error, Result};

/// Delivery counts of one `send`, updated from librdkafka's delivery callbacks.
#[derive(Default)]
pub struct Tally {
    /// Messages queued and not yet acknowledged or failed.
    pub pending: AtomicU64,
    pub rows: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub failed_rows: AtomicU64,
    pub failed_messages: AtomicU64,
    errors: Mutex<HashMap<String, u64>>,
}

impl Tally {
    pub fn delivered(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Relaxed);
        self.messages.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    pub fn fail(&self, rows: u64, reason: String) {
        self.failed_rows.fetch_add(rows, Relaxed);
        self.failed_messages.fetch_add(1, Relaxed);
        *self
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
    }

    /// Adds `other`'s counts (a flush reports several sends as one).
    pub fn add(&self, other: &Tally) {
        self.rows.fetch_add(other.rows.load(Relaxed), Relaxed);
        self.messages
            .fetch_add(other.messages.load(Relaxed), Relaxed);
        self.bytes.fetch_add(other.bytes.load(Relaxed), Relaxed);
        self.failed_rows
            .fetch_add(other.failed_rows.load(Relaxed), Relaxed);
        self.failed_messages
            .fetch_add(other.failed_messages.load(Relaxed), Relaxed);
        let theirs = other.errors.lock().unwrap_or_else(PoisonError::into_inner);
        let mut mine = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        for (reason, n) in theirs.iter() {
            *mine.entry(reason.clone()).or_default() += n;
        }
    }

    /// Rows delivered or failed: no longer in flight.
    pub fn settled_rows(&self) -> u64 {
        self.rows.load(Relaxed) + self.failed_rows.load(Relaxed)
    }
}

/// What a message's delivery report adds to: its send's tally and its rows.
/// Messages of one row count share a ticket.
pub struct Ticket {
    pub tally: Arc<Tally>,
    pub rows: u64,
}

impl ProducerContext for Context {
    type DeliveryOpaque = Arc<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Arc<Ticket>) {
        let t = &ticket.tally;
        match result {
            Ok(m) => t.delivered(ticket.rows, m.payload_len() as u64),
            Err((e, _)) => t.fail(ticket.rows, e.to_string()),
        }
        t.pending.fetch_sub(1, Relaxed);
    }
}

/// What one `send` (or `flush`) delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct SendReport {
    /// Topic written to (empty for a flush across topics).
    pub topic: String,
    /// Rows delivered and acknowledged by the broker.
    pub rows: u64,
    pub messages: u64,
    /// Payload bytes delivered (before compression).
    pub bytes: u64,
    /// Rows still in flight (only with `wait=False`).
    pub rows_pending: u64,
    pub seconds: f64,
}

/// Rows queued by one send, and the tally their deliveries add to.
pub struct Outstanding {
    pub topic: String,
    pub tally: Arc<Tally>,
    pub rows_sent: u64,
    pub started: Instant,
}

impl Outstanding {
    /// The send's report, or a ProduceError naming the most common reasons
    /// (up to three) when any row was not delivered.
    pub fn report(&self, seconds: f64) -> Result<SendReport> {
        let t = &self.tally;
        let failed = t.failed_rows.load(Relaxed);
        let rows = t.rows.load(Relaxed);
        if failed > 0 {
            let errors = t.errors.lock().unwrap_or_else(PoisonError::into_inner);
            let mut reasons: Vec<_> = errors.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
            let why = reasons
                .iter()
                .take(3)
                .map(|(r, n)| format!("{r} ({n} messages)"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::Produce {
                message: format!(
                    "{failed} of {} rows to topic {:?} were not delivered ({} messages failed): {why}",
                    self.rows_sent,
                    self.topic,
                    t.failed_messages.load(Relaxed)
                ),
                rows_failed: failed,
                rows_delivered: rows,
            });
        }
        Ok(SendReport {
            topic: self.topic.clone(),
            rows,
            messages: t.messages.load(Relaxed),
            bytes: t.bytes.load(Relaxed),
            rows_pending: self.rows_sent.saturating_sub(rows + failed),
            seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outstanding(tally: Tally, rows_sent: u64) -> Outstanding {
        Outstanding {
            topic: "t".into(),
            tally: Arc::new(tally),
            rows_sent,
            started: Instant::now(),
        }
    }

    #[test]
    fn delivered_rows_are_reported_and_the_rest_pending() {
        let tally = Tally::default();
        tally.delivered(10, 100);
        tally.delivered(5, 50);
        let report = outstanding(tally, 20).report(2.0).unwrap();
        assert_eq!(
            report,
            SendReport {
                topic: "t".into(),
                rows: 15,
                messages: 2,
                bytes: 150,
                rows_pending: 5,
                seconds: 2.0,
            }
        );
    }

    #[test]
    fn failures_raise_a_produce_error_with_the_commonest_reasons() {
        let tally = Tally::default();
        tally.delivered(4, 40);
        for (reason, times) in [
            ("timed out", 3),
            ("too large", 1),
            ("no leader", 2),
            ("odd", 1),
        ] {
            for _ in 0..times {
                tally.fail(2, reason.into());
            }
        }
        let Err(Error::Produce {
            message,
            rows_failed,
            rows_delivered,
        }) = outstanding(tally, 18).report(1.0)
        else {
            panic!("failures must fail the report");
        };
        assert_eq!((rows_failed, rows_delivered), (14, 4));
        assert_eq!(
            message,
            "14 of 18 rows to topic \"t\" were not delivered (7 messages failed): timed out \
             (3 messages); no leader (2 messages); odd (1 messages)"
        );
    }

    #[test]
    fn tallies_add_up_for_a_flush() {
        let (a, b) = (Tally::default(), Tally::default());
        a.delivered(3, 30);
        a.fail(1, "x".into());
        b.delivered(2, 20);
        b.fail(4, "x".into());
        b.fail(1, "y".into());
        let total = Tally::default();
        total.add(&a);
        total.add(&b);
        assert_eq!(total.settled_rows(), 11);
        assert_eq!(total.messages.load(Relaxed), 2);
        assert_eq!(total.failed_messages.load(Relaxed), 3);
        let Err(Error::Produce { message, .. }) = outstanding(total, 11).report(0.0) else {
            panic!("failures must fail the report");
        };
        assert!(
            message.ends_with(": x (2 messages); y (1 messages)"),
            "{message}"
        );
    }
}
