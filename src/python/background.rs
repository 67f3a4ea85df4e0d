//! A consumer read on a native thread: polling and decoding run without the
//! GIL; the GIL is taken only to call the Python callback with a frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use arrow::array::RecordBatch;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::consumer::{Consumer, Positions};
use super::convert::frame_to_py;
use super::wait::{deadline, slice, Interrupts};
use crate::decode::Frame;
use crate::error::{Error, Result};

/// How long one read may take before the thread looks at its stop flag again.
const READ_SLICE: f64 = 0.1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Stopped,
    Failed,
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
}

struct State {
    phase: Phase,
    error: Option<Py<PyAny>>,
    rows: u64,
    frames: u64,
    buffer: Buffer,
}

struct Shared {
    consumer: Py<Consumer>,
    callback: Option<Py<PyAny>>,
    max_rows: usize,
    buffer_rows: usize,
    drop_oldest: bool,
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

    fn finish(&self, error: Option<Py<PyAny>>) {
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
        let mut state = self.state();
        loop {
            if self.stopping() {
                return None;
            }
            if self.callback.is_some() || self.drop_oldest {
                return Some(self.max_rows);
            }
            let free = self.buffer_rows.saturating_sub(state.buffer.rows);
            if free > 0 {
                return Some(free.min(self.max_rows));
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn run(&self) {
        let consumer = self.consumer.get();
        while let Some(room) = self.room() {
            let read = match consumer.read_unattached(room, READ_SLICE) {
                Ok(Some(read)) => read,
                Ok(None) => continue,
                // A consumer closed under us ends the run; it is not a failure.
                Err(Error::Closed(_)) => return self.finish(None),
                Err(e) => return self.fail(e),
            };
            match self.deliver(consumer, read) {
                Ok(true) => {}
                // The interpreter is shutting down: leave without touching Python.
                Ok(false) => return self.finish(None),
                Err(e) => return self.fail(e),
            }
        }
        self.finish(None)
    }

    fn fail(&self, e: Error) {
        let error = Python::try_attach(|py| PyErr::from(e).into_value(py).into_any());
        self.finish(error);
    }

    /// Hands one frame to the callback and/or the buffer. Ok(false): no interpreter.
    fn deliver(&self, consumer: &Consumer, (frame, positions): (Frame, Positions)) -> Result<bool> {
        let rows = frame.num_rows() as u64;
        let keep = self.buffer_rows > 0;
        if let Some(callback) = &self.callback {
            let called = Python::try_attach(|py| {
                let table = frame_to_py(py, Some(frame.clone()))?;
                callback.call1(py, (table,)).map(drop)
            });
            match called {
                Some(Ok(())) => consumer.consume(positions)?,
                // Not taken: the consumer's next read delivers these rows again.
                Some(Err(e)) => {
                    consumer.put_back(frame, positions);
                    return Err(Error::Python(e));
                }
                None => {
                    consumer.put_back(frame, positions);
                    return Ok(false);
                }
            }
            let mut state = self.state();
            if keep {
                state.buffer.push(frame, None);
                state.buffer.trim(self.buffer_rows);
            }
            state.rows += rows;
            state.frames += 1;
        } else if self.drop_oldest {
            consumer.consume(positions)?;
            let mut state = self.state();
            state.buffer.push(frame, None);
            state.buffer.trim(self.buffer_rows);
            state.rows += rows;
            state.frames += 1;
        } else {
            let mut state = self.state();
            state.buffer.push(frame, Some(positions));
            state.rows += rows;
            state.frames += 1;
        }
        self.changed.notify_all();
        Ok(true)
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

/// Reads a [`Consumer`] on a native thread. Built by `tskafka.BackgroundConsumer`.
#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Background {
    shared: Arc<Shared>,
    thread: Mutex<Option<(ThreadId, JoinHandle<()>)>>,
}

impl Background {
    fn join_thread(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        // The lock is never held while the GIL is released, so no one waits on both.
        let on_thread = match self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            None => return Ok(true),
            Some((id, _)) => *id == std::thread::current().id(),
        };
        if on_thread {
            // Called from the callback: the thread ends once the callback returns.
            return Ok(false);
        }
        let shared = self.shared.clone();
        let ended = py.detach(|| -> Result<bool> {
            let deadline = deadline(timeout)?;
            let mut interrupts = Interrupts::new();
            let mut state = shared.state();
            while state.phase == Phase::Running {
                let Some(wait) = slice(deadline) else {
                    return Ok(false);
                };
                state = shared
                    .changed
                    .wait_timeout(state, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                if state.phase == Phase::Running {
                    drop(state);
                    interrupts.check()?;
                    state = shared.state();
                }
            }
            Ok(true)
        })?;
        if ended {
            let handle = self
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some((_, handle)) = handle {
                py.detach(|| handle.join()).ok();
            }
        }
        Ok(ended)
    }

    fn raise_error(&self, py: Python<'_>) -> PyResult<()> {
        match &self.shared.state().error {
            Some(e) => Err(PyErr::from_value(e.bind(py).clone())),
            None => Ok(()),
        }
    }

    /// Frames from the oldest on that share its schema (at most `max_rows` rows,
    /// cutting the last), taken out of the buffer; and the positions they consume.
    fn take_front(buffer: &mut Buffer, max_rows: usize) -> (Option<Frame>, Vec<Positions>) {
        let mut taken: Vec<RecordBatch> = Vec::new();
        let mut consumed = Vec::new();
        let mut rows = 0;
        let schema = match buffer.frames.front() {
            Some(f) => f.frame.schema.clone(),
            None => return (None, consumed),
        };
        while rows < max_rows {
            let Some(front) = buffer.frames.front() else {
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
                let rest = slice_frame(&front.frame, want, n - want);
                buffer.frames.front_mut().expect("front").frame = rest;
                buffer.rows -= want;
                break;
            }
            let f = buffer.frames.pop_front().expect("front");
            buffer.rows -= n;
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
}

#[pymethods]
impl Background {
    /// Starts reading `consumer` at once. `previous` hands over the rows a
    /// stopped reader of the same consumer still buffers.
    #[new]
    #[pyo3(signature = (consumer, callback=None, *, max_rows=100_000, buffer_rows=0,
                        drop_oldest=false, previous=None))]
    fn new(
        consumer: Py<Consumer>,
        callback: Option<Py<PyAny>>,
        max_rows: usize,
        buffer_rows: usize,
        drop_oldest: bool,
        previous: Option<&Bound<'_, Background>>,
    ) -> PyResult<Self> {
        if callback.is_none() && buffer_rows == 0 {
            return Err(Error::Config(
                "a background consumer needs a callback or buffer_rows > 0 to hand rows to".into(),
            )
            .into());
        }
        let buffer = match previous {
            Some(p) => {
                let mut state = p.get().shared.state();
                if state.phase == Phase::Running {
                    return Err(Error::Config(
                        "this consumer is already reading in the background: stop() it first"
                            .into(),
                    )
                    .into());
                }
                // Only rows not yet consumed carry over; a window of consumed ones stays.
                let (unconsumed, consumed): (VecDeque<_>, VecDeque<_>) =
                    std::mem::take(&mut state.buffer.frames)
                        .into_iter()
                        .partition(|f| f.positions.is_some());
                state.buffer.frames = consumed;
                state.buffer.rows = state.buffer.frames.iter().map(|f| f.frame.num_rows()).sum();
                let mut carried = Buffer::default();
                for f in unconsumed {
                    carried.push(f.frame, f.positions);
                }
                carried
            }
            None => Buffer::default(),
        };
        let shared = Arc::new(Shared {
            consumer,
            callback,
            max_rows: max_rows.max(1),
            buffer_rows,
            drop_oldest,
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
            .spawn(move || runner.run())
            .map_err(|e| Error::Config(format!("cannot start a thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some((handle.thread().id(), handle))),
        })
    }

    /// Asks the thread to stop and waits up to `timeout` seconds for it;
    /// True once it has ended. Raises the error that ended it, if any.
    #[pyo3(signature = (timeout=None, raise_error=true))]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>, raise_error: bool) -> PyResult<bool> {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.changed.notify_all();
        let ended = self.join_thread(py, timeout)?;
        if raise_error {
            self.raise_error(py)?;
        }
        Ok(ended)
    }

    /// Waits up to `timeout` seconds (None: until it ends) for the thread to
    /// end by itself; True if it has. Raises the error that ended it, if any.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let ended = self.join_thread(py, timeout)?;
        self.raise_error(py)?;
        Ok(ended)
    }

    /// {"state": "running" | "stopping" | "stopped" | "failed", "rows", "frames",
    /// "buffered_rows", "dropped_rows", "unconsumed_rows", "error"}
    #[getter]
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let state = self.shared.state();
        let d = PyDict::new(py);
        let phase = match state.phase {
            Phase::Running if self.shared.stopping() => "stopping",
            Phase::Running => "running",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        };
        d.set_item("state", phase)?;
        d.set_item("rows", state.rows)?;
        d.set_item("frames", state.frames)?;
        d.set_item("buffered_rows", state.buffer.rows)?;
        d.set_item("dropped_rows", state.buffer.dropped)?;
        let unconsumed: usize = state
            .buffer
            .frames
            .iter()
            .filter(|f| f.positions.is_some())
            .map(|f| f.frame.num_rows())
            .sum();
        d.set_item("unconsumed_rows", unconsumed)?;
        d.set_item("error", state.error.as_ref().map(|e| e.clone_ref(py)))?;
        Ok(d)
    }

    #[getter]
    fn running(&self) -> bool {
        self.shared.state().phase == Phase::Running
    }

    /// The newest `n` buffered rows (of the newest schema) as a pyarrow.Table,
    /// left in the buffer; None if it is empty.
    fn latest(&self, py: Python<'_>, n: usize) -> PyResult<Py<PyAny>> {
        let picked = {
            let state = self.shared.state();
            let mut batches: Vec<RecordBatch> = Vec::new();
            let mut want = n;
            let schema = state.buffer.frames.back().map(|f| f.frame.schema.clone());
            for f in state.buffer.frames.iter().rev() {
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
        };
        frame_to_py(py, picked)
    }

    /// Takes the oldest buffered rows out (up to `max_rows`, in frames of one
    /// schema) as a pyarrow.Table, or None; they count as consumed now.
    #[pyo3(signature = (max_rows=None))]
    fn drain(&self, py: Python<'_>, max_rows: Option<usize>) -> PyResult<Py<PyAny>> {
        let shared = self.shared.clone();
        let frame = py.detach(move || -> Result<Option<Frame>> {
            let (frame, consumed) = {
                let mut state = shared.state();
                Self::take_front(&mut state.buffer, max_rows.unwrap_or(usize::MAX))
            };
            shared.changed.notify_all();
            let consumer = shared.consumer.get();
            for positions in consumed {
                match consumer.consume(positions) {
                    Ok(()) | Err(Error::Closed(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(frame)
        })?;
        frame_to_py(py, frame)
    }

    /// Drops every buffered row without consuming it (before a seek); returns how many.
    fn clear(&self) -> usize {
        let mut state = self.shared.state();
        let rows = state.buffer.rows;
        state.buffer.frames.clear();
        state.buffer.rows = 0;
        drop(state);
        self.shared.changed.notify_all();
        rows
    }

    fn __repr__(&self) -> String {
        let state = self.shared.state();
        let phase = match state.phase {
            Phase::Running => "running",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        };
        format!(
            "BackgroundConsumer({phase}, rows={}, frames={}, buffered_rows={})",
            state.rows, state.frames, state.buffer.rows
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Unreachable from Python: nobody can read its rows, so let the thread end.
        self.shared.stop.store(true, Ordering::Release);
        self.shared.changed.notify_all();
    }
}
