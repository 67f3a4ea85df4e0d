//! The one way slow native work runs: without the GIL, waking regularly to
//! let Ctrl+C / "interrupt kernel" through as KeyboardInterrupt.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::error::{Error, Result};

/// How often a blocking call checks for signals.
pub const WAKE_EVERY: Duration = Duration::from_millis(50);

/// Checks Python's signal handlers at most every [`WAKE_EVERY`].
pub struct Interrupts {
    last: Instant,
    enabled: bool,
}

impl Interrupts {
    pub fn new() -> Self {
        Self {
            last: Instant::now(),
            enabled: true,
        }
    }

    /// For native threads, which never attach just to look for signals.
    pub fn off() -> Self {
        Self {
            last: Instant::now(),
            enabled: false,
        }
    }

    pub fn check(&mut self) -> Result<()> {
        if self.enabled && self.last.elapsed() >= WAKE_EVERY {
            self.last = Instant::now();
            Python::attach(|py| py.check_signals())?;
        }
        Ok(())
    }
}

/// Runs `work` without the GIL and maps its error to the Python exception tree.
pub fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> Result<T> + Send) -> PyResult<T> {
    py.detach(work).map_err(PyErr::from)
}

pub fn deadline(timeout: Option<f64>) -> Result<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => {
            Ok(Some(Instant::now() + Duration::from_secs_f64(t)))
        }
        Some(t) => Err(Error::Config(format!(
            "timeout must be a number of seconds >= 0 or None, got {t}"
        ))),
    }
}

/// The time left before `deadline`, cut to one wake-up slice.
pub fn slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(WAKE_EVERY),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(WAKE_EVERY))
        }
    }
}
