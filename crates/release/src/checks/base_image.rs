//! The `base-image-policy` check: every component image's OS base is allowed by the [`Policy`],
//! judged on its config labels and its os-release, and no RHEL-only content is present.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use oci::{Descriptor, Digest, ImageRef, Store};
use payload::source::{PullSpec, Sources};
use tokio::sync::{mpsc, OnceCell};

use super::policy::{parse_os_release, Policy, Verdict, COMPONENT, NAME, VENDOR};
use super::rootfs::{scan_layer, LayerScan, RootFs};
use super::{images, named, reason, CheckResult, Findings, Image, BASE_IMAGE_POLICY, PARALLEL};

/// The host of Red Hat's subscription content: repositories there need an entitlement.
pub const RHSM_CDN: &str = "cdn.redhat.com";
/// Where RHSM entitlement certificates live.
pub const ENTITLEMENT_DIR: &str = "/etc/pki/entitlement";

/// Check every image that the payload's image-references lists (each child of a manifest list,
/// except attestations) against `policy`, and for RHEL-only content:
/// - the OS base: os-release is `/etc/os-release`, else `/usr/lib/os-release`, in the merged
///   layers (links followed, whiteouts applied); with the config labels, [`Policy::judge`] decides.
///   An image without os-release is allowed and noted.
/// - RHEL-only content: an `/etc/yum.repos.d/*.repo` with a `baseurl`, `mirrorlist` or `metalink`
///   on `cdn.redhat.com`, or an `sslclientcert`/`sslclientkey` under `/etc/pki/entitlement`; any
///   file under `/etc/pki/entitlement/`.
///
/// Each layer is read once, however many images share it.
pub async fn base_image_policy(
    sources: &Sources,
    payload: &ImageRef,
    policy: &Policy,
) -> CheckResult {
    let mut f = Findings::default();
    let info = match payload::info::load(sources, payload, None).await {
        Ok(i) => i,
        Err(e) => {
            f.problem(format!(
                "{}: cannot read the payload's image-references: {}",
                payload,
                reason(&payload.to_string(), e)
            ));
            return CheckResult::new(BASE_IMAGE_POLICY, f.problems, f.notes);
        }
    };
    let cache = LayerCache::default();
    let tags = &info.references.spec.tags;
    // The futures are made before they are streamed: a closure in the stream's type would keep
    // the check's future from being Send for every lifetime (the controller boxes it).
    let cache = &cache;
    let reads: Vec<_> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| async move {
            let (f, bases) = component(sources, cache, policy, &t.name, t.pullspec()).await;
            (i, f, bases)
        })
        .collect();
    let mut results: Vec<(usize, Findings, Vec<String>)> = stream::iter(reads)
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    results.sort_by_key(|(i, _, _)| *i);
    let mut bases: BTreeMap<String, usize> = BTreeMap::new();
    for (_, r, b) in results {
        f.extend(r);
        for base in b {
            *bases.entry(base).or_default() += 1;
        }
    }
    let bases: Vec<String> = bases
        .into_iter()
        .map(|(base, n)| format!("{base} ({n} image{})", if n == 1 { "" } else { "s" }))
        .collect();
    f.note(format!(
        "{} images in image-references; OS bases: {}",
        tags.len(),
        if bases.is_empty() {
            "none read".to_string()
        } else {
            bases.join(", ")
        }
    ));
    CheckResult::new(BASE_IMAGE_POLICY, f.problems, f.notes)
}

/// One tag: each of its images. Also returns each image's OS base (`centos 9`, `no os-release`),
/// for the summary.
async fn component(
    sources: &Sources,
    cache: &LayerCache,
    policy: &Policy,
    tag: &str,
    spec: Option<&str>,
) -> (Findings, Vec<String>) {
    let mut f = Findings::default();
    let Some(spec) = spec else {
        f.problem(format!(
            "tag '{tag}': image-references gives no DockerImage pull spec for it, so its base image cannot be checked"
        ));
        return (f, Vec::new());
    };
    let who = super::who(tag, spec, None);
    let found = match PullSpec::parse(&who, spec) {
        Ok(p) => sources.find(&who, &p).await,
        Err(e) => Err(e),
    };
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            f.problem(format!(
                "{who}: cannot be read, so its base image cannot be checked: {}",
                reason(&who, e)
            ));
            return (f, Vec::new());
        }
    };
    let (images, problems) = images(sources, tag, spec, found, false).await;
    f.extend(problems);
    let mut bases = Vec::new();
    for image in &images {
        let (r, base) = check_image(sources, cache, policy, image).await;
        f.extend(r);
        bases.extend(base);
    }
    (f, bases)
}

/// One image: its verdict and its RHEL-only content; and its OS base, if its layers could be read.
async fn check_image(
    sources: &Sources,
    cache: &LayerCache,
    policy: &Policy,
    image: &Image,
) -> (Findings, Option<String>) {
    let mut f = Findings::default();
    let who = &image.who;
    let (config, layers) = match sources.config(who, &image.found).await {
        Ok(c) => c,
        Err(e) => {
            f.problem(named(who, e));
            return (f, None);
        }
    };
    let labels: BTreeMap<String, String> = config
        .0
        .pointer("/config/Labels")
        .and_then(|l| l.as_object())
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let mut scans = Vec::with_capacity(layers.len());
    for l in &layers {
        match cache.scan(&image.found.store, l).await {
            Ok(s) => scans.push(s),
            Err(e) => {
                f.problem(format!(
                    "{who}: cannot read layer {}, so its base image cannot be checked: {e}",
                    l.digest
                ));
                return (f, None);
            }
        }
    }
    let fs = RootFs::new(
        layers
            .iter()
            .map(|l| &l.digest)
            .zip(scans.iter().map(|s| s.as_ref()))
            .collect(),
    );
    let os = fs
        .file("etc/os-release")
        .or_else(|| fs.file("usr/lib/os-release"));
    let fields = os
        .as_ref()
        .map(|o| parse_os_release(&String::from_utf8_lossy(o.data)));
    let mut evidence = Vec::new();
    let base = match (&os, &fields) {
        (Some(o), Some(fields)) => {
            let field = |k: &str| fields.get(k).map_or("", String::as_str);
            let mut e = format!("{} ID={}", o.path(), field("ID"));
            for k in ["VERSION_ID", "ID_LIKE"] {
                if !field(k).is_empty() {
                    e.push_str(&format!(" {k}={}", field(k)));
                }
            }
            evidence.push(format!("{e} in layer {}", o.layer));
            format!("{} {}", field("ID"), field("VERSION_ID"))
                .trim()
                .to_string()
        }
        _ => "no os-release".to_string(),
    };
    let label_evidence: Vec<String> = [VENDOR, NAME, COMPONENT]
        .iter()
        .filter_map(|k| Some(format!("label {k}={}", labels.get(*k)?)))
        .collect();
    if label_evidence.is_empty() {
        evidence.push(format!("no {VENDOR}, {NAME} or {COMPONENT} label"));
    }
    evidence.extend(label_evidence);
    match policy.judge(fields.as_ref(), &labels) {
        Verdict::Denied { rule, matched } => f.problem(format!(
            "{who}: denied by base-image policy rule {rule} ({}); evidence: {}",
            matched.join(", "),
            evidence.join(", ")
        )),
        Verdict::NotAllowed => f.problem(format!(
            "{who}: OS base not allowed (no allow rule of the base-image policy matches); evidence: {}",
            evidence.join(", ")
        )),
        Verdict::Allowed { .. } => {}
        Verdict::NoOsRelease => f.note(format!(
            "{who}: no /etc/os-release or /usr/lib/os-release (a scratch or static image); allowed"
        )),
    }
    for c in rhel_content(&fs) {
        f.problem(format!("{who}: RHEL-only content: {c}"));
    }
    (f, Some(base))
}

/// RHEL-only content in a filesystem: rpm repositories that need a Red Hat subscription, and
/// entitlement certificates.
fn rhel_content(fs: &RootFs) -> Vec<String> {
    let mut out = Vec::new();
    for path in fs.list("etc/yum.repos.d") {
        let Some(file) = fs.file(&path) else { continue };
        let hits = repo_evidence(&String::from_utf8_lossy(file.data));
        if !hits.is_empty() {
            out.push(format!(
                "{} in layer {}: {} (Red Hat subscription content)",
                file.path(),
                file.layer,
                hits.join(", ")
            ));
        }
    }
    let dir = ENTITLEMENT_DIR.trim_start_matches('/');
    for path in fs.list(dir) {
        if let Some(file) = fs.file(&path) {
            out.push(format!(
                "{} in layer {}: a Red Hat entitlement certificate (RHSM)",
                file.path(),
                file.layer
            ));
        }
    }
    out
}

/// The lines of a `.repo` file that need a Red Hat subscription: `baseurl`, `mirrorlist` or
/// `metalink` URLs on [`RHSM_CDN`], and `sslclientcert`/`sslclientkey` under [`ENTITLEMENT_DIR`].
fn repo_evidence(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with(['#', ';']) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        match key.as_str() {
            "baseurl" | "mirrorlist" | "metalink" => {
                for url in value.split(|c: char| c.is_whitespace() || c == ',') {
                    if host(url).is_some_and(|h| h.eq_ignore_ascii_case(RHSM_CDN)) {
                        out.push(format!("{key}={url}"));
                    }
                }
            }
            "sslclientcert" | "sslclientkey" if value.starts_with(ENTITLEMENT_DIR) => {
                out.push(format!("{key}={value}"));
            }
            _ => {}
        }
    }
    out
}

/// The host of a URL (`https://user@host:443/path` → `host`).
fn host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(host.split(':').next().unwrap_or(host))
}

/// A layer's scan, or why it could not be read; set once, by whichever image reads it first.
type ScanCell = Arc<OnceCell<Result<Arc<LayerScan>, String>>>;

/// Layer scans by digest, each read once however many images share the layer.
#[derive(Default)]
struct LayerCache {
    scans: Mutex<HashMap<Digest, ScanCell>>,
}

impl LayerCache {
    async fn scan(&self, store: &Store, desc: &Descriptor) -> Result<Arc<LayerScan>, String> {
        let cell = {
            let mut scans = self.scans.lock().unwrap_or_else(|e| e.into_inner());
            scans.entry(desc.digest.clone()).or_default().clone()
        };
        cell.get_or_init(|| read_layer(store, desc)).await.clone()
    }
}

/// Stream a layer blob (verified against its digest) into [`scan_layer`], on a blocking thread.
async fn read_layer(store: &Store, desc: &Descriptor) -> Result<Arc<LayerScan>, String> {
    let mut blob = store.get_blob(desc).await.map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let scan = tokio::task::spawn_blocking(move || {
        scan_layer(ChannelReader {
            rx,
            chunk: Bytes::new(),
        })
    });
    while let Some(item) = blob.next().await {
        let item = item.map_err(|e| std::io::Error::other(e.to_string()));
        let failed = item.is_err();
        // The scanner stops early only on an error, which it reports.
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    match scan.await {
        Ok(Ok(s)) => Ok(Arc::new(s)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("internal error: the layer reader failed: {e}")),
    }
}

/// The chunks of a blob stream as a blocking [`Read`].
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(c)) => self.chunk = c,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_files_that_need_a_subscription() {
        let redhat = "[rhel-9-for-x86_64-baseos-rpms]\n\
                      name = Red Hat Enterprise Linux 9 for x86_64 - BaseOS (RPMs)\n\
                      baseurl = https://cdn.redhat.com/content/dist/rhel9/$releasever/x86_64/baseos/os\n\
                      enabled = 1\n\
                      sslclientkey = /etc/pki/entitlement/1234-key.pem\n\
                      sslclientcert = /etc/pki/entitlement/1234.pem\n\
                      sslcacert = /etc/rhsm/ca/redhat-uep.pem\n";
        assert_eq!(
            repo_evidence(redhat),
            [
                "baseurl=https://cdn.redhat.com/content/dist/rhel9/$releasever/x86_64/baseos/os",
                "sslclientkey=/etc/pki/entitlement/1234-key.pem",
                "sslclientcert=/etc/pki/entitlement/1234.pem",
            ]
        );
        let ubi = "[ubi-9-baseos-rpms]\n\
                   baseurl = https://cdn-ubi.redhat.com/content/public/ubi/dist/ubi9/9/$basearch/baseos/os\n\
                   gpgkey = file:///etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release\n";
        assert!(repo_evidence(ubi).is_empty());
        let centos =
            "[baseos]\nmetalink=https://mirrors.centos.org/metalink?repo=centos-baseos-$stream\n\
                      #baseurl=https://cdn.redhat.com/commented/out\n";
        assert!(repo_evidence(centos).is_empty());
        assert_eq!(
            host("https://user@CDN.redhat.com:443/x"),
            Some("CDN.redhat.com")
        );
        assert_eq!(host("file:///etc/x"), Some(""));
        assert_eq!(host("not a url"), None);
    }
}
