//! Whether an admin connection is in the middle of a request head: hyper reports a client that
//! stalled mid-head and an idle keep-alive connection (a Prometheus scraper between scrapes) as
//! the same header timeout, and only the first deserves a warning.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Set when bytes arrive, cleared when a request head has been parsed from them.
#[derive(Debug, Clone, Default)]
pub struct MidHead(Arc<AtomicBool>);

impl MidHead {
    pub fn request_parsed(&self) {
        self.0.store(false, Ordering::Relaxed);
    }

    pub fn is_mid_head(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A stream that marks its [`MidHead`] whenever it reads bytes.
pub struct Watched<S> {
    inner: S,
    mark: MidHead,
}

impl<S> Watched<S> {
    pub fn new(inner: S, mark: MidHead) -> Self {
        Self { inner, mark }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.mark.0.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
