//! Polling with a deadline for checks that fail with this crate's errors, on top of the
//! testkit's loop.

use std::time::Duration;

use haproxy_peers_testkit::wait_until;

use crate::error::{Error, Result};

/// Calls `check` until it returns `Some` (returned), an error (returned as is), or `timeout`
/// has passed (a timeout naming `what`).
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let mut failure = None;
    let waited = wait_until(what, timeout, || match check() {
        Ok(value) => Ok(value),
        Err(e) => {
            failure = Some(e);
            // Any error stops the testkit's loop; the real one is `failure`.
            Err(haproxy_peers_testkit::Error::NotRunning)
        }
    });
    match (waited, failure) {
        (_, Some(e)) => Err(e),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(Error::Testkit(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_values_errors_and_timeouts() {
        let mut n = 0;
        assert_eq!(
            poll("n", Duration::from_secs(5), || {
                n += 1;
                Ok((n == 2).then_some(n))
            })
            .unwrap(),
            2
        );
        let err = poll::<()>("x", Duration::from_secs(5), || {
            Err(Error::NoSuchPod("edge-9".into()))
        })
        .unwrap_err();
        assert!(matches!(err, Error::NoSuchPod(_)), "{err}");
        let err = poll::<()>("never", Duration::from_millis(30), || Ok(None)).unwrap_err();
        assert!(err.to_string().contains("waiting for never"), "{err}");
    }
}
