//! `Background`: a consumer read on a native thread. The GIL is taken only to
//! call the Python callback with a frame.

use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::consumer::Consumer;
use super::convert::frame_to_py;
use super::wait::{detached, interruptible};
use crate::client::consumer::background::{self, BackgroundOptions, Callback, Handed};
use crate::codec::Frame;
use crate::error::Error;
use crate::wait;

/// Reads a [`Consumer`] on a native thread. Built by `tskafka.BackgroundConsumer`.
#[pyclass(frozen, module = "tskafka._tskafka")]
pub struct Background {
    core: background::Background,
    /// The error that ended the thread, as the one Python object every
    /// `status`, `stop()` and `join()` hands out.
    error: Mutex<Option<Py<PyAny>>>,
}

/// The Python callback, called on the reader's thread.
fn callback(callable: Py<PyAny>) -> Callback {
    Box::new(move |frame: &Frame| {
        let called = Python::try_attach(|py| {
            let table = frame_to_py(py, Some(frame.clone()))?;
            callable.call1(py, (table,)).map(drop)
        });
        match called {
            Some(Ok(())) => Ok(Handed::Taken),
            Some(Err(e)) => Err(Error::caller(e)),
            // The interpreter is shutting down.
            None => Ok(Handed::Gone),
        }
    })
}

impl Background {
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let kept = || self.error.lock().unwrap_or_else(PoisonError::into_inner);
        // Made without the lock held: making it runs Python code, which may
        // let another thread run and ask for the error.
        if let Some(e) = self.core.take_error() {
            let value = PyErr::from(e).into_value(py).into_any();
            kept().get_or_insert(value);
        }
        kept().as_ref().map(|e| e.clone_ref(py))
    }

    fn raise_error(&self, py: Python<'_>) -> PyResult<()> {
        match self.error(py) {
            Some(e) => Err(PyErr::from_value(e.into_bound(py))),
            None => Ok(()),
        }
    }

    fn wait_ended(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        interruptible(py, |check| {
            self.core.wait_ended(wait::deadline(timeout)?, check)
        })
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
        consumer: &Bound<'_, Consumer>,
        callback: Option<Py<PyAny>>,
        max_rows: usize,
        buffer_rows: usize,
        drop_oldest: bool,
        previous: Option<&Bound<'_, Background>>,
    ) -> PyResult<Self> {
        let options = BackgroundOptions {
            max_rows,
            buffer_rows,
            drop_oldest,
        };
        let core = background::Background::start(
            consumer.get().core(),
            callback.map(self::callback),
            options,
            previous.map(|p| &p.get().core),
        )?;
        Ok(Self {
            core,
            error: Mutex::new(None),
        })
    }

    /// Asks the thread to stop and waits up to `timeout` seconds for it;
    /// True once it has ended. Raises the error that ended it, if any.
    #[pyo3(signature = (timeout=None, raise_error=true))]
    fn stop(&self, py: Python<'_>, timeout: Option<f64>, raise_error: bool) -> PyResult<bool> {
        self.core.request_stop();
        let ended = self.wait_ended(py, timeout)?;
        if raise_error {
            self.raise_error(py)?;
        }
        Ok(ended)
    }

    /// Waits up to `timeout` seconds (None: until it ends) for the thread to
    /// end by itself; True if it has. Raises the error that ended it, if any.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let ended = self.wait_ended(py, timeout)?;
        self.raise_error(py)?;
        Ok(ended)
    }

    /// {"state": "running" | "stopping" | "stopped" | "failed", "rows", "frames",
    /// "buffered_rows", "dropped_rows", "unconsumed_rows", "error"}
    #[getter]
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let status = self.core.status();
        let d = PyDict::new(py);
        d.set_item("state", status.state())?;
        d.set_item("rows", status.rows)?;
        d.set_item("frames", status.frames)?;
        d.set_item("buffered_rows", status.buffered_rows)?;
        d.set_item("dropped_rows", status.dropped_rows)?;
        d.set_item("unconsumed_rows", status.unconsumed_rows)?;
        d.set_item("error", self.error(py))?;
        Ok(d)
    }

    #[getter]
    fn running(&self) -> bool {
        self.core.running()
    }

    /// The newest `n` buffered rows (of the newest schema) as an Arrow stream,
    /// left in the buffer; None if it is empty.
    fn latest(&self, py: Python<'_>, n: usize) -> PyResult<Py<PyAny>> {
        frame_to_py(py, self.core.latest(n))
    }

    /// Takes the oldest buffered rows out (up to `max_rows`, in frames of one
    /// schema) as an Arrow stream, or None; they count as consumed now.
    #[pyo3(signature = (max_rows=None))]
    fn drain(&self, py: Python<'_>, max_rows: Option<usize>) -> PyResult<Py<PyAny>> {
        let frame = detached(py, || self.core.drain(max_rows))?;
        frame_to_py(py, frame)
    }

    /// Drops every buffered row without consuming it (before a seek); returns how many.
    fn clear(&self) -> usize {
        self.core.clear()
    }

    fn __repr__(&self) -> String {
        let status = self.core.status();
        format!(
            "BackgroundConsumer({}, rows={}, frames={}, buffered_rows={})",
            status.phase.name(),
            status.rows,
            status.frames,
            status.buffered_rows
        )
    }
}
