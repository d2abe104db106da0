//! The copy engine: the one way okd-forge moves an image, used by `image copy` and later
//! by promotion and publishing.
//!
//! An image is copied bottom-up: blobs first, then manifests, then the tag, so a reader never sees a
//! manifest whose content is missing. Blobs the destination already has are skipped; blobs in another
//! repository of the same registry are mounted; the rest are streamed, verified, never held in memory.
//! Transfers run concurrently up to a limit shared by everything one [`Copier`] does, and each blob is
//! transferred at most once even when several images being copied share it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use backon::Retryable;
use futures_util::future::try_join_all;
use serde::Serialize;
use tokio::sync::{OnceCell, Semaphore};

use crate::manifest::{Parsed, RawManifest};
use crate::reference::Selector;
use crate::registry::retry_policy;
use crate::store::Store;
use crate::{Descriptor, Digest, Error, Result};

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobOutcome {
    /// Streamed from source to destination.
    Copied,
    /// The destination had it already.
    Skipped,
    /// Mounted from another repository of the same registry.
    Mounted,
}

/// Progress callbacks; the CLI draws bars or prints lines from them. All have empty defaults.
pub trait Progress: Send + Sync {
    /// A blob transfer starts.
    fn blob_started(&self, _desc: &Descriptor) {}
    /// `n` more bytes of a blob arrived.
    fn blob_bytes(&self, _n: u64) {}
    /// A failed attempt had passed on `n` bytes that will be sent again.
    fn blob_bytes_discarded(&self, _n: u64) {}
    /// A blob is done.
    fn blob_done(&self, _desc: &Descriptor, _outcome: BlobOutcome) {}
    /// A manifest was written.
    fn manifest_done(&self, _raw: &RawManifest) {}
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What one copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The source as the user named it.
    pub source: String,
    /// The destination as written (with the tag used, if any).
    pub destination: String,
    /// Digest of the top manifest (unchanged by the copy).
    pub digest: Digest,
    /// Media type of the top manifest.
    pub media_type: String,
    /// Manifests written (the top one and any children).
    pub manifests: usize,
    /// Blobs streamed.
    pub blobs_copied: usize,
    /// Blobs the destination had.
    pub blobs_skipped: usize,
    /// Blobs mounted across repositories.
    pub blobs_mounted: usize,
    /// Bytes streamed.
    pub bytes_copied: u64,
}

#[derive(Default)]
struct Stats {
    manifests: AtomicUsize,
    copied: AtomicUsize,
    skipped: AtomicUsize,
    mounted: AtomicUsize,
    bytes: AtomicU64,
}

/// Copies images; share one across many copies to share its concurrency limit and blob de-duplication.
pub struct Copier {
    progress: Arc<dyn Progress>,
    transfers: Semaphore,
    retries: usize,
    blobs: Mutex<HashMap<(String, Digest), BlobCell>>,
}

/// The one transfer of a blob to a destination, shared by every image of a run that needs it.
type BlobCell = Arc<OnceCell<BlobOutcome>>;

impl Copier {
    /// A copier running at most `concurrency` blob transfers at once, retrying a failed transfer up to
    /// `retries` times.
    pub fn new(concurrency: usize, retries: usize, progress: Arc<dyn Progress>) -> Copier {
        Copier {
            progress,
            transfers: Semaphore::new(concurrency.max(1)),
            retries,
            blobs: Mutex::new(HashMap::new()),
        }
    }

    /// Copy the image `sel` names in `src` to `dst`, tagging it `dst_tag` there. Without a tag, the
    /// destination gets the manifest by digest only.
    pub async fn copy(
        &self,
        src: &Store,
        sel: Option<&Selector>,
        dst: &Store,
        dst_tag: Option<&str>,
    ) -> Result<CopyReport> {
        let root = src.get_manifest(sel).await?;
        self.copy_resolved(src, sel, &root, dst, dst_tag).await
    }

    /// Copy the image whose top manifest `root` the caller already fetched from `src` (with `sel`).
    pub async fn copy_resolved(
        &self,
        src: &Store,
        sel: Option<&Selector>,
        root: &RawManifest,
        dst: &Store,
        dst_tag: Option<&str>,
    ) -> Result<CopyReport> {
        // The source's guard is best effort: a read-only layout cannot hold a lock file.
        let _guards = (src.guard().await.ok().flatten(), dst.guard().await?);
        let stats = Stats::default();
        self.copy_manifest(src, dst, root, &stats).await?;
        dst.put_manifest(root, dst_tag, true).await?;
        stats.manifests.fetch_add(1, Ordering::Relaxed);
        self.progress.manifest_done(root);
        let destination = match dst_tag {
            Some(t) => format!("{}:{t}", dst.describe()),
            None => format!("{}@{}", dst.describe(), root.digest),
        };
        Ok(CopyReport {
            source: match sel {
                Some(s) => format!("{}{s}", src.describe()),
                None => src.describe(),
            },
            destination,
            digest: root.digest.clone(),
            media_type: root.media_type.clone(),
            manifests: stats.manifests.load(Ordering::Relaxed),
            blobs_copied: stats.copied.load(Ordering::Relaxed),
            blobs_skipped: stats.skipped.load(Ordering::Relaxed),
            blobs_mounted: stats.mounted.load(Ordering::Relaxed),
            bytes_copied: stats.bytes.load(Ordering::Relaxed),
        })
    }

    /// Copy blobs (e.g. the base layers of a new image) that a manifest the caller writes afterwards will
    /// reference. The caller holds the destination's [`guard`](Store::guard) until that manifest is
    /// stored. Returns (copied, skipped or mounted).
    pub async fn copy_blobs(
        &self,
        src: &Store,
        dst: &Store,
        blobs: Vec<Descriptor>,
    ) -> Result<(usize, usize)> {
        let stats = Stats::default();
        try_join_all(
            blobs
                .into_iter()
                .map(|b| self.copy_blob(src, dst, b, &stats)),
        )
        .await?;
        let other = stats.skipped.load(Ordering::Relaxed) + stats.mounted.load(Ordering::Relaxed);
        Ok((stats.copied.load(Ordering::Relaxed), other))
    }

    /// Copy everything `raw` references (recursively for an index), but not `raw` itself.
    async fn copy_manifest(
        &self,
        src: &Store,
        dst: &Store,
        raw: &RawManifest,
        stats: &Stats,
    ) -> Result<()> {
        match raw.parse()? {
            Parsed::Image { config, layers } => {
                let blobs = std::iter::once(*config).chain(layers);
                try_join_all(blobs.map(|b| self.copy_blob(src, dst, b, stats))).await?;
            }
            Parsed::Index { manifests } => {
                try_join_all(manifests.iter().map(|child| async move {
                    let m = src.get_child_manifest(child).await?;
                    Box::pin(self.copy_manifest(src, dst, &m, stats)).await?;
                    dst.put_manifest(&m, None, false).await?;
                    stats.manifests.fetch_add(1, Ordering::Relaxed);
                    self.progress.manifest_done(&m);
                    Ok::<_, Error>(())
                }))
                .await?;
            }
        }
        Ok(())
    }

    async fn copy_blob(
        &self,
        src: &Store,
        dst: &Store,
        desc: Descriptor,
        stats: &Stats,
    ) -> Result<()> {
        let cell = {
            let mut blobs = self.blobs.lock().expect("lock");
            blobs
                .entry((dst.describe(), desc.digest.clone()))
                .or_default()
                .clone()
        };
        let mut ran = false;
        let outcome = *cell
            .get_or_try_init(|| {
                ran = true;
                self.transfer(src, dst, &desc, stats)
            })
            .await?;
        // A blob another image of this run already moved counts as skipped for this one.
        let outcome = if ran { outcome } else { BlobOutcome::Skipped };
        match outcome {
            BlobOutcome::Copied => &stats.copied,
            BlobOutcome::Skipped => &stats.skipped,
            BlobOutcome::Mounted => &stats.mounted,
        }
        .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Move one blob, unless the destination has it or can mount it. The whole transfer is one attempt
    /// (the registry client does not retry blob requests), retried here on transient errors.
    async fn transfer(
        &self,
        src: &Store,
        dst: &Store,
        desc: &Descriptor,
        stats: &Stats,
    ) -> Result<BlobOutcome> {
        let _permit = self.transfers.acquire().await.expect("semaphore open");
        let started = AtomicBool::new(false);
        let attempt = || async {
            if dst.has_blob(desc).await? {
                return Ok(BlobOutcome::Skipped);
            }
            if let (Store::Registry(s), Store::Registry(d)) = (src, dst) {
                if s.registry().host() == d.registry().host() && s.name() != d.name() {
                    match d.mount_blob(&desc.digest, s.name()).await {
                        Ok(true) => return Ok(BlobOutcome::Mounted),
                        Ok(false) => {}
                        Err(e) => tracing::debug!(
                            "mount of {} refused, uploading instead: {e}",
                            desc.digest
                        ),
                    }
                }
            }
            if !started.swap(true, Ordering::Relaxed) {
                self.progress.blob_started(desc);
            }
            let sent = Arc::new(AtomicU64::new(0));
            let (progress, counter) = (self.progress.clone(), sent.clone());
            let stream = src.get_blob(desc).await?.with_progress(move |n| {
                counter.fetch_add(n, Ordering::Relaxed);
                progress.blob_bytes(n);
            });
            let result = dst.put_blob(desc, stream).await;
            if result.is_err() {
                self.progress
                    .blob_bytes_discarded(sent.load(Ordering::Relaxed));
            }
            result.map(|()| BlobOutcome::Copied)
        };
        let outcome = attempt
            .retry(retry_policy(self.retries))
            .when(Error::is_transient)
            .notify(|e, d| tracing::warn!("retrying blob {} in {d:?}: {e}", desc.digest.short()))
            .await?;
        if outcome == BlobOutcome::Copied {
            stats.bytes.fetch_add(desc.size, Ordering::Relaxed);
        }
        self.progress.blob_done(desc, outcome);
        Ok(outcome)
    }
}
