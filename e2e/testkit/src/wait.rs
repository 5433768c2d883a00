//! Polling with a deadline, for conditions another process brings about.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often a condition is re-checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Calls `check` until it returns `Some`, an error, or `timeout` has passed (then the error names
/// `what`). `check` runs at least once, even with a zero timeout.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_owned(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_some() {
        let mut calls = 0;
        let value = wait_until("third call", Duration::from_secs(5), || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        })
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn times_out_with_the_condition_named() {
        let err = wait_until::<()>("never", Duration::from_millis(50), || Ok(None)).unwrap_err();
        assert!(err.to_string().contains("waiting for never"), "{err}");
    }

    #[test]
    fn errors_stop_the_wait() {
        let err =
            wait_until::<()>("x", Duration::from_secs(5), || Err(Error::NotRunning)).unwrap_err();
        assert!(matches!(err, Error::NotRunning));
    }
}
