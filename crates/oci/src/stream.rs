//! Byte streams of blobs, and the wrapper that verifies them as they flow.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::digest::Verifier;
use crate::{Digest, Result};

/// A blob's bytes, in chunks, as they arrive; never the whole blob in memory.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Wrap `inner` so that it fails (with a clear error, before ending) unless its bytes match `digest` and
/// `size`. Consumers that write must not commit anything until the stream has ended without error.
pub fn verified(what: String, digest: &Digest, size: Option<u64>, inner: BlobStream) -> BlobStream {
    Box::pin(Verifying {
        inner,
        verifier: Some(Verifier::new(what, digest, size)),
    })
}

struct Verifying {
    inner: BlobStream,
    verifier: Option<Verifier>,
}

impl Stream for Verifying {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(verifier) = self.verifier.as_mut() else {
            return Poll::Ready(None);
        };
        let _ = verifier;
        match self.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                let v = self.verifier.as_mut().expect("checked above");
                match v.update(&chunk) {
                    Ok(()) => Poll::Ready(Some(Ok(chunk))),
                    Err(e) => {
                        self.verifier = None;
                        Poll::Ready(Some(Err(e)))
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                self.verifier = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                let v = self.verifier.take().expect("checked above");
                match v.finish() {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
        }
    }
}
