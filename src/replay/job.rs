//! The replay thread: reads the source, waits for each message's moment,
//! queues it, and at the end waits for the acknowledgements of everything sent.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{Producer as _, ThreadedProducer};

use super::schedule::{event_micros, groups, Clock, Pace};
use super::source::Reader;
use crate::client::producer::{batch::send_batch, Outstanding, Tally};
use crate::client::Context;
use crate::codec::csv::BadRow;
use crate::codec::Encoder;
use crate::error::{Error, Result};
use crate::wait;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    Running,
    Done,
    Stopped,
    Failed,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the replay thread and its handle share.
pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) stop_deadline: Mutex<Option<Instant>>,
    /// Guards `paused`; `wake` is notified on pause, resume and stop.
    pub(super) paused: Mutex<bool>,
    pub(super) wake: Condvar,
    pub(super) paused_us: AtomicU64,
    pub(super) phase: Mutex<Phase>,
    pub(super) finished: Condvar,
    pub(super) outcome: Mutex<Option<Error>>,
    pub(super) tally: Arc<Tally>,
    pub(super) rows_sent: AtomicU64,
    pub(super) event_time_us: AtomicI64,
    pub(super) lag_us: AtomicI64,
    pub(super) max_lag_us: AtomicI64,
    pub(super) rows_skipped: AtomicU64,
    pub(super) bad_rows: Mutex<Vec<BadRow>>,
    pub(super) started: Instant,
    pub(super) ended: Mutex<Option<Instant>>,
}

impl Shared {
    /// Stops sending; acks of rows already sent are awaited until `ack_timeout`.
    pub(super) fn request_stop(&self, ack_timeout: Duration) {
        *lock(&self.stop_deadline) = Some(Instant::now() + ack_timeout);
        // Under the lock a waiting thread checks the flag with: no lost wake-up.
        let _paused = lock(&self.paused);
        self.stop.store(true, Relaxed);
        self.wake.notify_all();
    }

    pub(super) fn ended(&self) -> bool {
        *lock(&self.phase) != Phase::Running
    }

    pub(super) fn new() -> Self {
        Self {
            stop: AtomicBool::new(false),
            stop_deadline: Mutex::new(None),
            paused: Mutex::new(false),
            wake: Condvar::new(),
            paused_us: AtomicU64::new(0),
            phase: Mutex::new(Phase::Running),
            finished: Condvar::new(),
            outcome: Mutex::new(None),
            tally: Arc::new(Tally::default()),
            rows_sent: AtomicU64::new(0),
            event_time_us: AtomicI64::new(i64::MIN),
            lag_us: AtomicI64::new(0),
            max_lag_us: AtomicI64::new(0),
            rows_skipped: AtomicU64::new(0),
            bad_rows: Mutex::new(Vec::new()),
            started: Instant::now(),
            ended: Mutex::new(None),
        }
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
    }

    fn paused_total(&self) -> Duration {
        Duration::from_micros(self.paused_us.load(Relaxed))
    }

    /// Blocks while paused; fails with [`Error::Stopped`] once stop is asked.
    fn hold(&self) -> Result<()> {
        let since = Instant::now();
        let mut held = false;
        wait::condvar_until(
            &self.paused,
            &self.wake,
            None,
            &mut wait::unchecked,
            |paused| {
                held |= *paused;
                !*paused || self.stopping()
            },
        )?;
        if held {
            self.paused_us
                .fetch_add(since.elapsed().as_micros() as u64, Relaxed);
        }
        match self.stopping() {
            true => Err(Error::Stopped),
            false => Ok(()),
        }
    }

    /// Waits until `offset` on the clock (shifted by time spent paused);
    /// pausing or stopping wakes it at once.
    fn wait_until(&self, clock: &mut Clock, offset: Duration) -> Result<()> {
        self.hold()?;
        wait::until(None, &mut || self.hold(), |slice| {
            clock.set_paused(self.paused_total());
            let due = clock.at(offset);
            let now = Instant::now();
            if now >= due {
                self.record_lag(now - due);
                return Ok(Some(()));
            }
            let paused = lock(&self.paused);
            if !*paused && !self.stopping() {
                let _ = self.wake.wait_timeout(paused, (due - now).min(slice));
            }
            Ok(None)
        })?;
        Ok(())
    }

    fn record_lag(&self, lag: Duration) {
        let lag = lag.as_micros() as i64;
        self.lag_us.store(lag, Relaxed);
        self.max_lag_us.fetch_max(lag, Relaxed);
    }
}

pub(super) struct Job {
    pub(super) producer: ThreadedProducer<Context>,
    pub(super) topic: String,
    pub(super) source: Reader,
    pub(super) first: Option<RecordBatch>,
    pub(super) encoder: Encoder,
    pub(super) pace: Pace,
    pub(super) time: Option<(usize, String)>,
    pub(super) headers: Option<OwnedHeaders>,
    /// How long the first message may take to be acknowledged.
    pub(super) warm_up: Duration,
}

impl Job {
    fn send(&self, shared: &Shared, batch: &RecordBatch) -> Result<()> {
        let mut rows = 0;
        let result = send_batch(
            &self.producer,
            &self.encoder,
            batch,
            &self.topic,
            None,
            self.headers.as_ref(),
            &shared.tally,
            &mut rows,
            &mut || shared.hold(),
        );
        shared.rows_sent.fetch_add(rows, Relaxed);
        result
    }

    fn times(&self, batch: &RecordBatch) -> Result<Option<Vec<Option<i64>>>> {
        match &self.time {
            Some((i, name)) => Ok(Some(event_micros(batch.column(*i).as_ref(), name)?)),
            None => Ok(None),
        }
    }

    /// Copies a CSV source's skipped-row counts where `progress` reads them, when they changed.
    fn share_skipped(&self, shared: &Shared) {
        if let Some((skipped, bad_rows)) = self.source.skipped() {
            if shared.rows_skipped.swap(skipped, Relaxed) != skipped {
                *lock(&shared.bad_rows) = bad_rows.to_vec();
            }
        }
    }

    /// The schedule of a paced replay starts once its first message is
    /// acknowledged: the producer is then connected, has its producer id and
    /// the topic's metadata, and a message reaches consumers as soon as it
    /// is sent. Started earlier, those first round trips would make the
    /// first messages late, and the ones after them catch up in a burst.
    fn start_clock(&self, shared: &Shared, speed: f64) -> Result<Clock> {
        let settled = || shared.tally.pending.load(Relaxed) == 0;
        if !settled() {
            // An idempotent producer asks for its id when a metadata answer
            // arrives, else on a 500 ms timer; the answers it had came before
            // it was connected to the broker it would ask. The request stays
            // on its way if this wait for it ends first.
            let _ = self
                .producer
                .client()
                .fetch_metadata(Some(&self.topic), wait::SLICE);
        }
        wait::poll_until(
            Some(Instant::now() + self.warm_up),
            Duration::from_millis(1),
            &mut || shared.hold(),
            settled,
        )?;
        Ok(Clock::start(speed, shared.paused_total()))
    }

    pub(super) fn run(&mut self, shared: &Shared) -> Result<()> {
        let speed = match self.pace {
            Pace::EventTime { speed, .. } => speed,
            _ => 1.0,
        };
        // None until the first message of a paced replay is acknowledged.
        let mut clock: Option<Clock> = None;
        let mut n = 0u64;
        while let Some(batch) = match self.first.take() {
            Some(b) => Some(b),
            None => self.source.next_batch()?,
        } {
            self.share_skipped(shared);
            let times = self.times(&batch)?;
            let reached = |end: usize| {
                if let Some(t) = times.as_ref().and_then(|t| t[..end].iter().flatten().max()) {
                    shared.event_time_us.fetch_max(*t, Relaxed);
                }
            };
            match self.pace {
                Pace::Fast => {
                    shared.hold()?;
                    self.send(shared, &batch)?;
                    reached(batch.num_rows());
                }
                Pace::Every { every, rows } => {
                    let mut start = 0;
                    while start < batch.num_rows() {
                        let len = rows.min(batch.num_rows() - start);
                        match clock.as_mut() {
                            Some(c) => shared.wait_until(c, Clock::nth_offset(n, every))?,
                            None => shared.hold()?,
                        }
                        self.send(shared, &batch.slice(start, len))?;
                        if clock.is_none() {
                            clock = Some(self.start_clock(shared, speed)?);
                        }
                        n += 1;
                        start += len;
                        reached(start);
                    }
                }
                Pace::EventTime { window_us, .. } => {
                    let (_, name) = self
                        .time
                        .as_ref()
                        .expect("event-time pace has a time column");
                    let times = times.as_deref().unwrap_or_default();
                    for (start, end, t) in groups(times, window_us, name)? {
                        match clock.as_mut() {
                            Some(c) => {
                                let offset = c.event_offset(t);
                                shared.wait_until(c, offset)?;
                            }
                            None => shared.hold()?,
                        }
                        self.send(shared, &batch.slice(start, end - start))?;
                        if clock.is_none() {
                            let mut started = self.start_clock(shared, speed)?;
                            // The first group's time is the schedule's start.
                            started.event_offset(t);
                            clock = Some(started);
                        }
                        shared.event_time_us.fetch_max(t, Relaxed);
                    }
                }
            }
        }
        self.share_skipped(shared);
        Ok(())
    }
}

/// The replay thread: send, then wait for the acks of everything sent.
pub(super) fn run(mut job: Job, shared: Arc<Shared>) {
    let sent = job.run(&shared);
    // Acks arrive on librdkafka's threads; after a stop, wait only until its deadline.
    let tally = &shared.tally;
    let _ = wait::poll_until(None, Duration::from_millis(2), &mut wait::unchecked, || {
        tally.pending.load(Relaxed) == 0
            || lock(&shared.stop_deadline).is_some_and(|d| Instant::now() >= d)
    });
    // Dropping the producer fails whatever is still queued, so it is counted.
    let Job {
        producer, topic, ..
    } = job;
    drop(producer);
    let outstanding = Outstanding {
        topic,
        tally: shared.tally.clone(),
        rows_sent: shared.rows_sent.load(Relaxed),
        started: shared.started,
    };
    let delivered = outstanding.report(0.0).map(|_| ());
    let (phase, outcome) = match (sent, delivered) {
        (Err(Error::Stopped), Ok(())) => (Phase::Stopped, None),
        (Ok(()), Ok(())) => (Phase::Done, None),
        (Err(Error::Stopped) | Ok(()), Err(e)) | (Err(e), _) => (Phase::Failed, Some(e)),
    };
    *lock(&shared.outcome) = outcome;
    *lock(&shared.ended) = Some(Instant::now());
    *lock(&shared.phase) = phase;
    shared.finished.notify_all();
}
