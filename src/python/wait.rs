//! The one way slow native work runs: without the GIL, with a check that
//! lets Ctrl+C / "interrupt kernel" through as KeyboardInterrupt.

use std::time::Instant;

use pyo3::prelude::*;

use crate::error::{Error, Result};
use crate::wait::{Check, SLICE};

/// Runs Python's signal handlers at most once per [`SLICE`]; an exception
/// they raise (KeyboardInterrupt) ends the wait and reaches the caller as it is.
struct Signals {
    last: Instant,
}

impl Signals {
    fn new() -> Self {
        Self {
            last: Instant::now(),
        }
    }

    fn check(&mut self) -> Result<()> {
        if self.last.elapsed() >= SLICE {
            self.last = Instant::now();
            Python::attach(|py| py.check_signals()).map_err(Error::caller)?;
        }
        Ok(())
    }
}

/// Runs `work` without the GIL, handing it the check for its waits, and maps
/// its error to the Python exception tree.
pub fn interruptible<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(Check<'_>) -> Result<T> + Send,
) -> PyResult<T> {
    py.detach(|| {
        let mut signals = Signals::new();
        work(&mut || signals.check())
    })
    .map_err(PyErr::from)
}

/// Runs `work`, which does not wait long, without the GIL.
pub fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> Result<T> + Send) -> PyResult<T> {
    py.detach(work).map_err(PyErr::from)
}
