//! A consumer read on a native thread. Each frame goes to a callback and/or
//! a buffer; the caller takes buffered rows out (`drain`) or looks at the
//! newest (`latest`).
//!
//! - Rows count as consumed once the callback returned for them, once they
//!   are drained, or (dropping the oldest when full) once buffered. A frame
//!   the callback failed on goes back to the consumer: its next read returns
//!   it again.
//! - Without a callback and without dropping, reading waits while the buffer
//!   holds `buffer_rows` unconsumed rows.
//! - The thread's waits look at its stop flag; `stop` ends it within a read
//!   slice, or once a running callback returns.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;

use arrow_array::RecordBatch;

use super::{Consumer, Positions};
use crate::codec::Frame;
use crate::error::{Error, Result};
use crate::wait::{self, Check};

/// How long one read may take before the thread looks at its buffer again (seconds).
const READ_SLICE: f64 = 0.1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    Stopped,
    Failed,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        }
    }
}

/// What a callback did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handed {
    Taken,
    /// Nobody can take frames any more (the interpreter is shutting down).
    Gone,
}

/// Called on the reader's thread with each frame; an error ends the reader
/// and is kept for `take_error`.
pub type Callback = Box<dyn FnMut(&Frame) -> Result<Handed> + Send>;

#[derive(Clone, Copy, Debug)]
pub struct BackgroundOptions {
    /// Rows per frame at most.
    pub max_rows: usize,
    /// Rows the buffer holds (0: no buffer).
    pub buffer_rows: usize,
    /// When the buffer is full, drop its oldest rows instead of waiting.
    pub drop_oldest: bool,
}

/// A buffered frame; `positions` is Some while its rows are not yet consumed.
struct Buffered {
    frame: Frame,
    positions: Option<Positions>,
}

#[derive(Default)]
struct Buffer {
    frames: VecDeque<Buffered>,
    rows: usize,
    dropped: u64,
}

impl Buffer {
    fn push(&mut self, frame: Frame, positions: Option<Positions>) {
        self.rows += frame.num_rows();
        self.frames.push_back(Buffered { frame, positions });
    }

    fn unconsumed_rows(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.positions.is_some())
            .map(|f| f.frame.num_rows())
            .sum()
    }

    /// Drops the oldest frames (already consumed ones only) down to `limit` rows,
    /// cutting the oldest frame rather than dropping more than needed.
    fn trim(&mut self, limit: usize) {
        while self.rows > limit {
            let Some(front) = self.frames.front_mut() else {
                break;
            };
            if front.positions.is_some() {
                break;
            }
            let excess = self.rows - limit;
            let n = front.frame.num_rows();
            if n <= excess {
                self.rows -= n;
                self.dropped += n as u64;
                self.frames.pop_front();
            } else {
                front.frame = slice_frame(&front.frame, excess, n - excess);
                self.rows -= excess;
                self.dropped += excess as u64;
            }
        }
    }

    /// Frames from the oldest on that share its schema (at most `max_rows`
    /// rows, cutting the last if it is consumed already), taken out; and the
    /// positions they consume.
    fn take_front(&mut self, max_rows: usize) -> (Option<Frame>, Vec<Positions>) {
        let mut taken: Vec<RecordBatch> = Vec::new();
        let mut consumed = Vec::new();
        let mut rows = 0;
        let schema = match self.frames.front() {
            Some(f) => f.frame.schema.clone(),
            None => return (None, consumed),
        };
        while rows < max_rows {
            let Some(front) = self.frames.front_mut() else {
                break;
            };
            if front.frame.schema != schema {
                break;
            }
            let n = front.frame.num_rows();
            if rows > 0 && rows + n > max_rows && front.positions.is_some() {
                break;
            }
            if rows + n > max_rows && front.positions.is_none() {
                // Only a consumed frame is cut: positions cannot be split.
                let want = max_rows - rows;
                taken.extend(slice_frame(&front.frame, 0, want).batches);
                front.frame = slice_frame(&front.frame, want, n - want);
                self.rows -= want;
                break;
            }
            let Some(f) = self.frames.pop_front() else {
                break;
            };
            self.rows -= n;
            rows += n;
            taken.extend(f.frame.batches);
            consumed.extend(f.positions);
        }
        (
            Some(Frame {
                schema,
                batches: taken,
            }),
            consumed,
        )
    }

    /// The newest `n` rows (of the newest schema), left in place.
    fn latest(&self, n: usize) -> Option<Frame> {
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut want = n;
        let schema = self.frames.back().map(|f| f.frame.schema.clone());
        for f in self.frames.iter().rev() {
            if want == 0 || Some(&f.frame.schema) != schema.as_ref() {
                break;
            }
            for b in f.frame.batches.iter().rev() {
                if want == 0 {
                    break;
                }
                let take = b.num_rows().min(want);
                batches.push(b.slice(b.num_rows() - take, take));
                want -= take;
            }
        }
        batches.reverse();
        schema.map(|schema| Frame { schema, batches })
    }

    /// Only rows not yet consumed carry over to a new reader; a window of
    /// consumed ones stays with the old one.
    fn split_off_unconsumed(&mut self) -> Buffer {
        let (unconsumed, consumed): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.frames)
            .into_iter()
            .partition(|f| f.positions.is_some());
        self.frames = consumed;
        self.rows = self.frames.iter().map(|f| f.frame.num_rows()).sum();
        let mut carried = Buffer::default();
        for f in unconsumed {
            carried.push(f.frame, f.positions);
        }
        carried
    }
}

fn slice_frame(frame: &Frame, offset: usize, len: usize) -> Frame {
    let mut batches = Vec::new();
    let (mut skip, mut want) = (offset, len);
    for b in &frame.batches {
        if want == 0 {
            break;
        }
        let n = b.num_rows();
        if skip >= n {
            skip -= n;
            continue;
        }
        let take = (n - skip).min(want);
        batches.push(b.slice(skip, take));
        want -= take;
        skip = 0;
    }
    Frame {
        schema: frame.schema.clone(),
        batches,
    }
}

struct State {
    phase: Phase,
    error: Option<Error>,
    rows: u64,
    frames: u64,
    buffer: Buffer,
}

struct Shared {
    consumer: Arc<Consumer>,
    has_callback: bool,
    options: BackgroundOptions,
    stop: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn finish(&self, error: Option<Error>) {
        let mut state = self.state();
        state.phase = if error.is_some() {
            Phase::Failed
        } else {
            Phase::Stopped
        };
        state.error = error;
        drop(state);
        self.changed.notify_all();
    }

    /// Waits while the buffer holds unconsumed rows up to its limit.
    /// Returns the rows there is room for, or None once asked to stop.
    fn room(&self) -> Option<usize> {
        let max_rows = self.options.max_rows;
        if self.has_callback || self.options.drop_oldest {
            return (!self.stopping()).then_some(max_rows);
        }
        let mut free = 0;
        // Unchecked: `stop` notifies `changed`, and the result is looked at below.
        let _ = wait::condvar_until(
            &self.state,
            &self.changed,
            None,
            &mut wait::unchecked,
            |state| {
                free = self.options.buffer_rows.saturating_sub(state.buffer.rows);
                self.stopping() || free > 0
            },
        );
        (!self.stopping()).then(|| free.min(max_rows))
    }

    fn run(&self, mut callback: Option<Callback>) {
        let consumer = &self.consumer;
        let mut stop_check = || match self.stopping() {
            true => Err(Error::Stopped),
            false => Ok(()),
        };
        while let Some(room) = self.room() {
            let read = match consumer.read_unconsumed(room, READ_SLICE, &mut stop_check) {
                Ok(Some(read)) => read,
                Ok(None) => continue,
                // Asked to stop, or the consumer closed under us: not a failure.
                Err(Error::Stopped | Error::Closed(_)) => return self.finish(None),
                Err(e) => return self.finish(Some(e)),
            };
            match self.deliver(callback.as_mut(), read) {
                Ok(Handed::Taken) => {}
                Ok(Handed::Gone) => return self.finish(None),
                Err(e) => return self.finish(Some(e)),
            }
        }
        self.finish(None)
    }

    /// Hands one frame to the callback and/or the buffer.
    fn deliver(
        &self,
        callback: Option<&mut Callback>,
        (frame, positions): (Frame, Positions),
    ) -> Result<Handed> {
        let rows = frame.num_rows() as u64;
        let limit = self.options.buffer_rows;
        if let Some(callback) = callback {
            match callback(&frame) {
                Ok(Handed::Taken) => self.consumer.consume(positions)?,
                // Not taken: the consumer's next read delivers these rows again.
                other => {
                    self.consumer.put_back(frame, positions);
                    return other;
                }
            }
            let mut state = self.state();
            if limit > 0 {
                state.buffer.push(frame, None);
                state.buffer.trim(limit);
            }
            state.rows += rows;
            state.frames += 1;
        } else if self.options.drop_oldest {
            self.consumer.consume(positions)?;
            let mut state = self.state();
            state.buffer.push(frame, None);
            state.buffer.trim(limit);
            state.rows += rows;
            state.frames += 1;
        } else {
            let mut state = self.state();
            state.buffer.push(frame, Some(positions));
            state.rows += rows;
            state.frames += 1;
        }
        self.changed.notify_all();
        Ok(Handed::Taken)
    }
}

/// What a background reader is doing and has done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub phase: Phase,
    /// Running, but asked to stop.
    pub stopping: bool,
    pub rows: u64,
    pub frames: u64,
    pub buffered_rows: usize,
    pub dropped_rows: u64,
    pub unconsumed_rows: usize,
}

impl Status {
    /// 'running', 'stopping', 'stopped' or 'failed'.
    pub fn state(&self) -> &'static str {
        match self.phase {
            Phase::Running if self.stopping => "stopping",
            phase => phase.name(),
        }
    }
}

/// Reads a [`Consumer`] on a native thread until stopped.
pub struct Background {
    shared: Arc<Shared>,
    thread: Mutex<Option<(ThreadId, JoinHandle<()>)>>,
}

impl Background {
    /// Starts reading `consumer` at once. `previous` hands over the rows a
    /// stopped reader of the same consumer still buffers.
    pub fn start(
        consumer: Arc<Consumer>,
        callback: Option<Callback>,
        options: BackgroundOptions,
        previous: Option<&Background>,
    ) -> Result<Self> {
        if callback.is_none() && options.buffer_rows == 0 {
            return Err(Error::Config(
                "a background consumer needs a callback or buffer_rows > 0 to hand rows to".into(),
            ));
        }
        let buffer = match previous {
            Some(p) => {
                let mut state = p.shared.state();
                if state.phase == Phase::Running {
                    return Err(Error::Config(
                        "this consumer is already reading in the background: stop() it first"
                            .into(),
                    ));
                }
                state.buffer.split_off_unconsumed()
            }
            None => Buffer::default(),
        };
        let shared = Arc::new(Shared {
            consumer,
            has_callback: callback.is_some(),
            options: BackgroundOptions {
                max_rows: options.max_rows.max(1),
                ..options
            },
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                phase: Phase::Running,
                error: None,
                rows: 0,
                frames: 0,
                buffer,
            }),
            changed: Condvar::new(),
        });
        let runner = shared.clone();
        let handle = std::thread::Builder::new()
            .name("tskafka-background".into())
            .spawn(move || runner.run(callback))
            .map_err(|e| Error::thread("a background consumer", &e))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some((handle.thread().id(), handle))),
        })
    }

    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.changed.notify_all();
    }

    /// Waits until the thread has ended (true) or the deadline passes
    /// (false). On the thread itself (from the callback) it returns false at
    /// once: the thread ends once the callback returns.
    pub fn wait_ended(&self, deadline: Option<Instant>, check: Check<'_>) -> Result<bool> {
        let on_thread = match lock(&self.thread).as_ref() {
            None => return Ok(true),
            Some((id, _)) => *id == std::thread::current().id(),
        };
        if on_thread {
            return Ok(false);
        }
        let shared = &self.shared;
        let ended = wait::condvar_until(&shared.state, &shared.changed, deadline, check, |s| {
            s.phase != Phase::Running
        })?;
        if ended {
            if let Some((_, handle)) = lock(&self.thread).take() {
                let _ = handle.join();
            }
        }
        Ok(ended)
    }

    /// The error that ended the thread, handed out once.
    pub fn take_error(&self) -> Option<Error> {
        self.shared.state().error.take()
    }

    pub fn status(&self) -> Status {
        let state = self.shared.state();
        Status {
            phase: state.phase,
            stopping: self.shared.stopping(),
            rows: state.rows,
            frames: state.frames,
            buffered_rows: state.buffer.rows,
            dropped_rows: state.buffer.dropped,
            unconsumed_rows: state.buffer.unconsumed_rows(),
        }
    }

    pub fn running(&self) -> bool {
        self.shared.state().phase == Phase::Running
    }

    /// The newest `n` buffered rows (of the newest schema), left in the buffer.
    pub fn latest(&self, n: usize) -> Option<Frame> {
        self.shared.state().buffer.latest(n)
    }

    /// Takes the oldest buffered rows out (up to `max_rows`, in frames of one
    /// schema); they count as consumed now.
    pub fn drain(&self, max_rows: Option<usize>) -> Result<Option<Frame>> {
        let (frame, consumed) = self
            .shared
            .state()
            .buffer
            .take_front(max_rows.unwrap_or(usize::MAX));
        self.shared.changed.notify_all();
        for positions in consumed {
            match self.shared.consumer.consume(positions) {
                Ok(()) | Err(Error::Closed(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(frame)
    }

    /// Drops every buffered row without consuming it (before a seek); returns how many.
    pub fn clear(&self) -> usize {
        let mut state = self.shared.state();
        let rows = state.buffer.rows;
        state.buffer.frames.clear();
        state.buffer.rows = 0;
        drop(state);
        self.shared.changed.notify_all();
        rows
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Nobody can read its rows any more: let the thread end.
        self.request_stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    /// A frame of `values` in batches of `per_batch` rows.
    fn frame(values: std::ops::Range<i64>, per_batch: usize) -> Frame {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let all: Vec<i64> = values.collect();
        let batches = all
            .chunks(per_batch)
            .map(|c| {
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(c.to_vec()))])
                    .unwrap()
            })
            .collect();
        Frame { schema, batches }
    }

    fn values(frame: &Frame) -> Vec<i64> {
        frame
            .batches
            .iter()
            .flat_map(|b| {
                let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                col.values().to_vec()
            })
            .collect()
    }

    fn positions(offset: i64) -> Positions {
        Positions::from([(("t".to_owned(), 0), offset)])
    }

    #[test]
    fn trimming_drops_the_oldest_consumed_rows_cutting_a_frame() {
        let mut b = Buffer::default();
        b.push(frame(0..4, 4), None);
        b.push(frame(4..10, 3), None);
        b.trim(5);
        assert_eq!((b.rows, b.dropped), (5, 5));
        assert_eq!(values(&b.frames[0].frame), vec![5, 6, 7, 8, 9]);
        // Unconsumed rows are never dropped.
        let mut b = Buffer::default();
        b.push(frame(0..4, 4), Some(positions(4)));
        b.push(frame(4..6, 2), None);
        b.trim(1);
        assert_eq!((b.rows, b.dropped), (6, 0));
    }

    #[test]
    fn taking_frames_stops_at_a_schema_change_and_cuts_only_consumed_ones() {
        let mut b = Buffer::default();
        b.push(frame(0..3, 2), Some(positions(3)));
        b.push(frame(3..8, 5), None);
        let (taken, consumed) = b.take_front(5);
        assert_eq!(values(&taken.unwrap()), vec![0, 1, 2, 3, 4]);
        assert_eq!(consumed, vec![positions(3)]);
        assert_eq!((b.rows, values(&b.frames[0].frame)), (3, vec![5, 6, 7]));

        // An unconsumed frame goes whole, or waits for the next take.
        let mut b = Buffer::default();
        b.push(frame(0..2, 2), None);
        b.push(frame(2..6, 4), Some(positions(6)));
        let (taken, consumed) = b.take_front(3);
        assert_eq!((values(&taken.unwrap()), consumed.len()), (vec![0, 1], 0));
        let (taken, consumed) = b.take_front(1);
        assert_eq!(
            (values(&taken.unwrap()), consumed.len()),
            (vec![2, 3, 4, 5], 1)
        );
        assert_eq!((b.take_front(10).0.is_none(), b.rows), (true, 0));

        // Another schema ends the frame.
        let text = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let other = Frame {
            schema: text.clone(),
            batches: vec![
                RecordBatch::try_new(text, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap(),
            ],
        };
        let mut b = Buffer::default();
        b.push(frame(0..2, 2), None);
        b.push(other, None);
        b.push(frame(2..4, 2), None);
        let (taken, _) = b.take_front(100);
        assert_eq!(values(&taken.unwrap()), vec![0, 1]);
        assert_eq!((b.frames.len(), b.rows), (2, 3));
    }

    #[test]
    fn latest_rows_stay_buffered() {
        let mut b = Buffer::default();
        b.push(frame(0..5, 2), None);
        b.push(frame(5..7, 2), Some(positions(7)));
        assert_eq!(values(&b.latest(4).unwrap()), vec![3, 4, 5, 6]);
        assert_eq!(b.rows, 7);
        assert!(Buffer::default().latest(3).is_none());
    }

    #[test]
    fn only_unconsumed_rows_carry_over() {
        let mut b = Buffer::default();
        b.push(frame(0..2, 2), None);
        b.push(frame(2..5, 3), Some(positions(5)));
        let carried = b.split_off_unconsumed();
        assert_eq!((carried.rows, b.rows), (3, 2));
        assert_eq!(carried.unconsumed_rows(), 3);
        assert_eq!(b.unconsumed_rows(), 0);
    }
}
