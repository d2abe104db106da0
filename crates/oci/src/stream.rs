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
pub fn verified(
    what: String,
    digest: &Digest,
    size: Option<u64>,
    inner: BlobStream,
) -> VerifiedStream {
    VerifiedStream {
        digest: digest.clone(),
        inner,
        verifier: Some(Verifier::new(what, digest, size)),
        progress: None,
    }
}

/// A blob stream that fails, before it ends, unless its bytes match the digest it was made for. The
/// only way to make one is [`verified`], so whoever receives one for the digest it wants need not hash
/// the bytes again: a copy hashes every byte exactly once.
pub struct VerifiedStream {
    digest: Digest,
    inner: BlobStream,
    /// `None` once the stream has ended, failed, or been verified complete.
    verifier: Option<Verifier>,
    progress: Option<Box<dyn Fn(u64) + Send + Sync>>,
}

impl VerifiedStream {
    /// Call `f` with the size of each chunk that passes (for progress bars).
    pub fn with_progress(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> VerifiedStream {
        self.progress = Some(Box::new(f));
        self
    }

    /// Fail unless this stream is verified against `digest`: a store must not accept bytes checked
    /// against some other blob's digest.
    pub(crate) fn expect_digest(&self, what: &str, digest: &Digest) -> Result<()> {
        if &self.digest == digest {
            return Ok(());
        }
        Err(crate::Error::DigestMismatch {
            what: what.to_string(),
            expected: digest.clone(),
            actual: self.digest.clone(),
        })
    }

    /// Check one chunk. With a known size, the digest is checked as the last byte arrives and a wrong
    /// last chunk is withheld: a consumer that stops at the expected length (an HTTP body with a
    /// Content-Length) then never sends or commits a complete but wrong blob.
    fn check(&mut self, chunk: Bytes) -> Result<Bytes> {
        let v = self.verifier.as_mut().expect("checked by the caller");
        if let Err(e) = v.update(&chunk) {
            self.verifier = None;
            return Err(e);
        }
        if v.is_complete() {
            self.verifier.take().expect("present").finish()?;
        }
        if let Some(f) = &self.progress {
            f(chunk.len() as u64);
        }
        Ok(chunk)
    }
}

impl Stream for VerifiedStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.verifier.is_none() {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(self.check(chunk))),
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(s: VerifiedStream) -> Vec<Result<Bytes>> {
        s.collect().await
    }

    #[tokio::test]
    async fn a_wrong_last_chunk_is_withheld() {
        let d = Digest::sha256_of(b"hello world");
        let chunks = |parts: &[&'static [u8]]| -> BlobStream {
            let items: Vec<Result<Bytes>> =
                parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
            Box::pin(futures_util::stream::iter(items))
        };
        let out = collect(verified(
            "b".into(),
            &d,
            Some(11),
            chunks(&[b"hello ", b"world"]),
        ))
        .await;
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|c| c.is_ok()));

        let out = collect(verified(
            "b".into(),
            &d,
            Some(11),
            chunks(&[b"hello ", b"WORLD"]),
        ))
        .await;
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        assert!(
            matches!(out[1], Err(crate::Error::DigestMismatch { .. })),
            "the bad chunk was passed on"
        );

        // Without a size the check happens at the end of the stream.
        let out = collect(verified(
            "b".into(),
            &d,
            None,
            chunks(&[b"hello ", b"WORLD"]),
        ))
        .await;
        assert!(matches!(
            out.last(),
            Some(Err(crate::Error::DigestMismatch { .. }))
        ));
    }
}
