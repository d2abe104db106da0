//! The copy engine's run-wide behaviour against a real Distribution registry: the per-registry
//! transfer limit, and blobs mounted from a repository the same run filled.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use oci::{BlobOutcome, Copier, Descriptor, ImageRef, Layout, Progress, RegistryOptions, Stores};
use testkit::images::{self, ImageSpec};
use testkit::{Fault, FaultProxy, RegistryServer};

/// Counts transfers under way (started, not yet done) and the most seen at once.
#[derive(Default)]
struct InFlight {
    started: Mutex<HashSet<String>>,
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Progress for InFlight {
    fn blob_started(&self, desc: &Descriptor) {
        self.started.lock().unwrap().insert(desc.digest.to_string());
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
    }

    fn blob_done(&self, desc: &Descriptor, _: BlobOutcome) {
        if self
            .started
            .lock()
            .unwrap()
            .remove(&desc.digest.to_string())
        {
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A layout at `dir` holding one image of `layers` layers of `size` bytes, tagged `v1`.
fn layout_image(dir: &std::path::Path, layers: u64, size: usize) -> ImageRef {
    let layout = Layout::create(dir).unwrap();
    let spec: Vec<(u64, usize)> = (0..layers).map(|i| (50 + i, size)).collect();
    images::write_image(&layout, &ImageSpec::new(&spec), Some("v1"));
    format!("oci:{}:v1", dir.display()).parse().unwrap()
}

fn open(stores: &Stores, r: &str, write: bool) -> oci::Store {
    stores.open(&r.parse().unwrap(), write).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_with_one_registry_stay_within_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let src = layout_image(dir.path(), 8, 256 << 10);
    let reg = RegistryServer::start();
    // A slow link, so that transfers overlap when they may.
    let slow = FaultProxy::start(
        &reg.host(),
        vec![Fault::Throttle {
            path_contains: "/blobs/uploads/".into(),
            bytes_per_sec: 1 << 20,
        }],
    );
    let stores = Stores::new(RegistryOptions::default());
    let progress = Arc::new(InFlight::default());
    let copier = Copier::new(16, 0, progress.clone()).with_registry_limit(2);
    let report = copier
        .copy(
            &stores.open(&src, false).unwrap(),
            src.selector(),
            &open(&stores, &slow.docker("okd/limited"), true),
            Some("v1"),
        )
        .await
        .unwrap();
    assert_eq!(report.blobs_copied, 9, "8 layers and the config");
    assert_eq!(
        progress.most.load(Ordering::SeqCst),
        2,
        "at most 2, and 2 in parallel"
    );
}

#[tokio::test]
async fn a_blob_this_run_put_in_one_repository_is_mounted_into_another() {
    let dir = tempfile::tempdir().unwrap();
    let src = layout_image(dir.path(), 3, 64 << 10);
    let reg = RegistryServer::start();
    let stores = Stores::new(RegistryOptions::default());
    let copier = Copier::new(4, 0, Arc::new(oci::NoProgress));
    let from = stores.open(&src, false).unwrap();
    let a = copier
        .copy(
            &from,
            src.selector(),
            &open(&stores, &reg.docker("okd/a"), true),
            Some("v1"),
        )
        .await
        .unwrap();
    let b = copier
        .copy(
            &from,
            src.selector(),
            &open(&stores, &reg.docker("okd/b"), true),
            Some("v1"),
        )
        .await
        .unwrap();
    assert_eq!((a.blobs_copied, a.blobs_mounted), (4, 0));
    assert_eq!((b.blobs_copied, b.blobs_mounted), (0, 4), "{b:?}");
    let totals = copier.totals();
    assert_eq!((totals.blobs_copied, totals.blobs_mounted), (4, 4));
    assert_eq!(totals.bytes_copied, a.bytes_copied);
    assert_eq!(
        testkit::skopeo_digest(&reg.docker("okd/b:v1")),
        a.digest.to_string()
    );
}
