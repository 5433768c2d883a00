//! The accept side of a listener, shared by the HAProxy link and the mesh port.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::state::Shared;

/// The next connection on `listener`, or `None` once shutdown starts. Accept errors (out of
/// descriptors, a connection reset before it was accepted) are logged and waited out, never
/// fatal: a pause keeps a lasting condition from spinning.
pub(crate) async fn next(
    shared: &Shared,
    listener: &TcpListener,
    what: &str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "accept on the {what} failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}
