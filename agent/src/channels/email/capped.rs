//! A stream that refuses to read more than a budget of bytes between two resets: an IMAP server
//! (broken or hostile) that sends an endless answer gets a clear error instead of the gateway's
//! memory (async-imap would buffer up to 512 MiB for one response).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The budget shared by a stream and whoever resets it before each exchange.
#[derive(Debug, Clone)]
pub struct Budget {
    left: Arc<AtomicU64>,
    limit: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Budget {
        Budget {
            left: Arc::new(AtomicU64::new(limit)),
            limit,
        }
    }

    pub fn reset(&self) {
        self.left.store(self.limit, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Capped<T> {
    inner: T,
    budget: Budget,
}

impl<T> Capped<T> {
    pub fn new(inner: T, budget: Budget) -> Capped<T> {
        Capped { inner, budget }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Capped<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = (buf.filled().len() - before) as u64;
            let left = this.budget.left.load(Ordering::Relaxed);
            if n > left {
                return Poll::Ready(Err(io::Error::other(format!(
                    "the server sent more than {} bytes in one answer",
                    this.budget.limit
                ))));
            }
            this.budget.left.store(left - n, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Capped<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn reads_stop_at_the_budget_until_reset() {
        let budget = Budget::new(10);
        let data: &[u8] = &[7u8; 25];
        let mut s = Capped::new(data, budget.clone());
        let mut buf = [0u8; 6];
        s.read_exact(&mut buf).await.unwrap();
        let mut more = [0u8; 6];
        let e = s.read_exact(&mut more).await.unwrap_err();
        assert!(e.to_string().contains("more than 10 bytes"), "{e}");
        budget.reset();
        s.read_exact(&mut more).await.unwrap();
    }
}
