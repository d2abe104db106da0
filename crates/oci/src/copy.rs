//! The copy engine: the one way okd-forge moves an image, used by `image copy` and later
//! by promotion and publishing.
//!
//! An image is copied bottom-up: blobs first, then manifests, then the tag, so a reader never sees a
//! manifest whose content is missing. Blobs the destination already has are skipped; blobs in another
//! repository of the same registry are mounted; the rest are streamed, verified, never held in memory.
//! Transfers run concurrently up to a limit shared by everything one [`Copier`] does (and, optionally, a
//! lower limit per registry), and each blob is transferred at most once even when several images being
//! copied share it. A blob one copy put into a repository of a registry is mounted from there, not
//! uploaded again, when a later copy of the same run needs it in another repository of that registry.

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

/// What every copy of one [`Copier`] did together: each blob counted once, however many images share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CopyTotals {
    /// Blobs streamed.
    pub blobs_copied: usize,
    /// Blobs the destination had.
    pub blobs_skipped: usize,
    /// Blobs mounted across repositories.
    pub blobs_mounted: usize,
    /// Bytes streamed.
    pub bytes_copied: u64,
}

/// Copies images; share one across many copies to share its concurrency limits and blob de-duplication.
pub struct Copier {
    progress: Arc<dyn Progress>,
    transfers: Semaphore,
    retries: usize,
    blobs: Mutex<HashMap<(String, Digest), BlobCell>>,
    /// At most this many transfers at once to or from one registry host.
    per_registry: Option<usize>,
    registries: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// (registry host, digest) → a repository of that registry this run put (or found) the blob in.
    placed: Mutex<HashMap<(String, Digest), String>>,
    totals: Stats,
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
            per_registry: None,
            registries: Mutex::new(HashMap::new()),
            placed: Mutex::new(HashMap::new()),
            totals: Stats::default(),
        }
    }

    /// The same copier, also running at most `n` transfers at once that read from or write to any one
    /// registry host (as `oc image mirror --max-per-registry`); the overall limit still holds.
    pub fn with_registry_limit(mut self, n: usize) -> Copier {
        self.per_registry = Some(n.max(1));
        self
    }

    /// What all copies so far moved, each blob counted once.
    pub fn totals(&self) -> CopyTotals {
        let t = &self.totals;
        CopyTotals {
            blobs_copied: t.copied.load(Ordering::Relaxed),
            blobs_skipped: t.skipped.load(Ordering::Relaxed),
            blobs_mounted: t.mounted.load(Ordering::Relaxed),
            bytes_copied: t.bytes.load(Ordering::Relaxed),
        }
    }

    /// Permits of the per-registry limits of the hosts a transfer touches, taken in host order so that
    /// two transfers between the same two registries in opposite directions never wait on each other.
    async fn registry_permits(
        &self,
        src: &Store,
        dst: &Store,
    ) -> Vec<tokio::sync::OwnedSemaphorePermit> {
        let Some(n) = self.per_registry else {
            return Vec::new();
        };
        let mut hosts: Vec<&str> = [src, dst]
            .into_iter()
            .filter_map(|s| match s {
                Store::Registry(r) => Some(r.registry().host()),
                Store::Layout(_) => None,
            })
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        let semaphores: Vec<Arc<Semaphore>> = {
            let mut map = self.registries.lock().expect("lock");
            hosts
                .iter()
                .map(|h| {
                    map.entry(h.to_string())
                        .or_insert_with(|| Arc::new(Semaphore::new(n)))
                        .clone()
                })
                .collect()
        };
        let mut permits = Vec::with_capacity(semaphores.len());
        for s in semaphores {
            permits.push(s.acquire_owned().await.expect("semaphore open"));
        }
        permits
    }

    /// Repositories of `dst`'s registry to mount `digest` from: the source's, when it is on the same
    /// registry, then one this run already put the blob in.
    fn mount_sources(&self, src: &Store, dst: &Store, digest: &Digest) -> Vec<String> {
        let Store::Registry(d) = dst else {
            return Vec::new();
        };
        let mut from = Vec::new();
        if let Store::Registry(s) = src {
            if s.registry().host() == d.registry().host() && s.name() != d.name() {
                from.push(s.name().to_string());
            }
        }
        let key = (d.registry().host().to_string(), digest.clone());
        if let Some(repo) = self.placed.lock().expect("lock").get(&key) {
            if repo != d.name() && !from.contains(repo) {
                from.push(repo.clone());
            }
        }
        from
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
        let _registry_permits = self.registry_permits(src, dst).await;
        let started = AtomicBool::new(false);
        let attempt = || async {
            if dst.has_blob(desc).await? {
                return Ok(BlobOutcome::Skipped);
            }
            if let Store::Registry(d) = dst {
                for from in self.mount_sources(src, dst, &desc.digest) {
                    match d.mount_blob(&desc.digest, &from).await {
                        Ok(true) => return Ok(BlobOutcome::Mounted),
                        Ok(false) => tracing::debug!(
                            "mount of {} from {from} ignored, uploading instead",
                            desc.digest
                        ),
                        Err(e) => tracing::debug!(
                            "mount of {} from {from} refused, uploading instead: {e}",
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
            self.totals.bytes.fetch_add(desc.size, Ordering::Relaxed);
        }
        match outcome {
            BlobOutcome::Copied => &self.totals.copied,
            BlobOutcome::Skipped => &self.totals.skipped,
            BlobOutcome::Mounted => &self.totals.mounted,
        }
        .fetch_add(1, Ordering::Relaxed);
        if let Store::Registry(d) = dst {
            self.placed
                .lock()
                .expect("lock")
                .entry((d.registry().host().to_string(), desc.digest.clone()))
                .or_insert_with(|| d.name().to_string());
        }
        self.progress.blob_done(desc, outcome);
        Ok(outcome)
    }
}
