//! How the core blocks: never for long. A wait runs in slices of at most
//! [`SLICE`] and calls its `check` between them; an error from the check ends
//! the wait with that error. The bindings' check raises KeyboardInterrupt once
//! Ctrl+C arrives, a background thread's check looks at its stop flag.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The longest a blocking call goes without calling its check.
pub const SLICE: Duration = Duration::from_millis(50);

/// What a blocking call runs between slices (the pattern of a metadata `pump`).
pub type Check<'a> = &'a mut dyn FnMut() -> Result<()>;

/// A check for waits nothing can interrupt.
pub fn unchecked() -> Result<()> {
    Ok(())
}

/// The deadline of a `timeout` in seconds (None: none).
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

/// The time left before `deadline`, cut to one slice; None once it has passed.
pub fn slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

/// Runs `step` until it returns Some (then that), the deadline passes (then
/// None) or `check` fails. `step` gets the longest it may block (one slice,
/// less near the deadline, zero past it) and runs at least once.
pub fn until<T>(
    deadline: Option<Instant>,
    check: Check<'_>,
    mut step: impl FnMut(Duration) -> Result<Option<T>>,
) -> Result<Option<T>> {
    loop {
        let left = slice(deadline);
        if let Some(done) = step(left.unwrap_or(Duration::ZERO))? {
            return Ok(Some(done));
        }
        if left.is_none() {
            return Ok(None);
        }
        check()?;
    }
}

/// Waits until `done()`, looking every `every`; false if the deadline came first.
pub fn poll_until(
    deadline: Option<Instant>,
    every: Duration,
    check: Check<'_>,
    mut done: impl FnMut() -> bool,
) -> Result<bool> {
    let reached = until(deadline, check, |slice| {
        let end = Instant::now() + slice;
        loop {
            if done() {
                return Ok(Some(()));
            }
            let now = Instant::now();
            if now >= end {
                return Ok(None);
            }
            std::thread::sleep(every.min(end - now));
        }
    })?;
    Ok(reached.is_some())
}

/// Waits until `done` holds for the value under `lock`, woken by `changed`;
/// false if the deadline came first. The lock is not held while `check` runs
/// (it may wait for the GIL, which a thread needing the lock may hold).
pub fn condvar_until<T>(
    lock: &Mutex<T>,
    changed: &Condvar,
    deadline: Option<Instant>,
    check: Check<'_>,
    mut done: impl FnMut(&T) -> bool,
) -> Result<bool> {
    let reached = until(deadline, check, |slice| {
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if done(&guard) {
            return Ok(Some(()));
        }
        if slice.is_zero() {
            return Ok(None);
        }
        let guard = changed
            .wait_timeout(guard, slice)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        Ok(done(&guard).then_some(()))
    })?;
    Ok(reached.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn checks_between_slices_until_the_deadline() {
        let started = Instant::now();
        let mut checks = 0;
        let reached = poll_until(
            Some(started + Duration::from_millis(180)),
            Duration::from_millis(5),
            &mut || {
                checks += 1;
                Ok(())
            },
            || false,
        )
        .unwrap();
        let took = started.elapsed();
        assert!(!reached);
        assert!(took >= Duration::from_millis(180), "{took:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");
        // One check per slice: 180 ms is four slices of 50 ms at most.
        assert!((3..=4).contains(&checks), "{checks}");
    }

    #[test]
    fn a_failing_check_ends_the_wait_with_its_error() {
        let started = Instant::now();
        let mut calls = 0;
        let result = until::<()>(
            None,
            &mut || {
                calls += 1;
                if calls == 2 {
                    Err(Error::Stopped)
                } else {
                    Ok(())
                }
            },
            |slice| {
                std::thread::sleep(slice);
                Ok(None)
            },
        );
        assert!(matches!(result, Err(Error::Stopped)));
        let took = started.elapsed();
        assert!(took >= 2 * SLICE && took < 5 * SLICE, "{took:?}");
    }

    #[test]
    fn a_met_condition_returns_at_once_even_past_the_deadline() {
        let past = Instant::now() - Duration::from_secs(1);
        assert!(poll_until(Some(past), SLICE, &mut unchecked, || true).unwrap());
        assert!(!poll_until(Some(past), SLICE, &mut unchecked, || false).unwrap());
        let value = until(Some(past), &mut unchecked, |left| {
            assert_eq!(left, Duration::ZERO);
            Ok(Some(7))
        });
        assert_eq!(value.unwrap(), Some(7));
    }

    #[test]
    fn a_condvar_wait_wakes_on_the_change() {
        let shared = Arc::new((Mutex::new(false), Condvar::new()));
        let setter = shared.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            *setter.0.lock().unwrap() = true;
            setter.1.notify_all();
        });
        let (lock, changed) = &*shared;
        let done = condvar_until(lock, changed, None, &mut unchecked, |set| *set).unwrap();
        assert!(done);
        assert!(
            started.elapsed() < Duration::from_millis(40),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn timeouts_are_checked() {
        assert!(deadline(None).unwrap().is_none());
        assert!(deadline(Some(0.0)).unwrap().is_some());
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let err = deadline(Some(bad)).unwrap_err().to_string();
            assert!(err.starts_with("timeout must be"), "{err}");
        }
        assert_eq!(slice(None), Some(SLICE));
        assert_eq!(slice(Some(Instant::now())), None);
    }
}
