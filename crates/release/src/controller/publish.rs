//! Publishing a stable release, as `publish:` in forge.yaml asks, once it is promoted: mirrored
//! to the public release and content repositories, signed into the signature store, and its tools
//! extracted for the release page. Each step is recorded once it is complete
//! (`release_publications`), so a pass after a crash or a failure does only what is missing, and
//! a step that keeps failing is retried [`PUBLISH_ATTEMPTS`] times by the controller, then left to
//! `okd-forge release publish NAME`.

use std::path::{Path, PathBuf};

use build::config::{PublishRepos, Store as StoreConfig};
use oci::{Digest, ImageRef, Selector};
use payload::mirror::{self, Destination};
use payload::signature::{verification_configmap, AtomicSignature, SignatureDir, Signer};

use super::{Action, Controller, ControllerError, Report};
use crate::state::{PayloadRecord, Publication};

/// How many times a pass retries a failing publication step before leaving it to a person.
pub const PUBLISH_ATTEMPTS: usize = 3;

/// Images mirrored at once (their blobs share the copier's limits).
const MIRROR_JOBS: usize = 8;

/// The signing key and what payloads carry to trust it, loaded once from `publish.signing`.
pub(super) struct Signing {
    signer: Signer,
    /// The verification ConfigMap manifest, when `publish.signing.url` is set.
    pub(super) configmap: Option<Vec<u8>>,
}

impl Signing {
    /// Loads `publish.signing` (the key, its passphrase file or `$OKD_FORGE_SIGNING_PASSPHRASE`).
    pub(super) fn load(config: &build::config::Signing) -> Result<Signing, ControllerError> {
        let bad = |e: String| ControllerError::Usage(format!("publish.signing: {e}"));
        let signer = Signer::load(&config.key, config.passphrase_file.as_deref())
            .map_err(|e| bad(e.to_string()))?;
        let configmap = match &config.url {
            Some(url) => Some(
                verification_configmap("okd-forge", &signer.keyring(), url)
                    .map_err(|e| bad(e.to_string()))?
                    .into_bytes(),
            ),
            None => None,
        };
        Ok(Signing { signer, configmap })
    }
}

impl Controller {
    /// Publishes the stable release `name` as `publish:` configures: mirrors it (`mirror`), signs
    /// it (`signature`), extracts its tools (`tools`), skipping the steps already recorded.
    /// Returns every publication of the release. A step's failure stops the others (the
    /// signature names the mirrored release) and is logged as a `publish-failed` event.
    pub async fn publish_stable(&self, name: &str) -> Result<Vec<Publication>, ControllerError> {
        let p = self.records().payload(name)?.ok_or_else(|| {
            ControllerError::Usage(format!(
                "no stable release named '{name}'; `okd-forge release list` shows them"
            ))
        })?;
        if p.stable_of.is_none() {
            return Err(ControllerError::Usage(format!(
                "{name} is not a stable release: only promoted releases are published \
                 (`okd-forge release promote` promotes one)"
            )));
        }
        if let Err(e) = self.publish_steps(&p).await {
            if !matches!(e, ControllerError::Crashed(_)) {
                self.records().note(
                    &p.stream,
                    Some(&p.name),
                    "publish-failed",
                    &e.to_string(),
                    self.now(),
                )?;
            }
            return Err(e);
        }
        Ok(self.records().publications(name)?)
    }

    /// Publishes, in each pass, the stable releases of `stream` that lack a configured
    /// publication, unless they failed [`PUBLISH_ATTEMPTS`] times already.
    pub(super) async fn publish_stables(
        &self,
        stream: &str,
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        let wanted = self.publication_kinds();
        if wanted.is_empty() {
            return Ok(());
        }
        for p in self.records().payloads(stream)? {
            if p.stable_of.is_none() {
                continue;
            }
            let done = self.records().publications(&p.name)?;
            if wanted.iter().all(|k| done.iter().any(|d| d.kind == *k))
                || self.records().count_events(&p.name, "publish-failed")? >= PUBLISH_ATTEMPTS
            {
                continue;
            }
            match self.publish_stable(&p.name).await {
                Ok(all) => {
                    for d in all.iter().filter(|d| !done.contains(d)) {
                        report.actions.push(Action::Published {
                            payload: p.name.clone(),
                            name: d.kind.clone(),
                            what: format!("{}: {}", d.location, d.detail),
                        });
                    }
                }
                Err(e @ ControllerError::Crashed(_)) => return Err(e),
                Err(e) => report.problems.push(format!("publishing {}: {e}", p.name)),
            }
        }
        Ok(())
    }

    /// The publication kinds `publish:` asks for, in order.
    pub(super) fn publication_kinds(&self) -> Vec<&'static str> {
        let p = &self.forge.config.publish;
        [
            (p.mirror.is_some(), "mirror"),
            (p.signing.is_some(), "signature"),
            (p.tools.is_some(), "tools"),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect()
    }

    async fn publish_steps(&self, p: &PayloadRecord) -> Result<(), ControllerError> {
        let done = self.records().publications(&p.name)?;
        let has = |kind: &str| done.iter().any(|d| d.kind == kind);
        let digest: Digest = p
            .digest
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| ControllerError::Store(format!("{}: digest: {e}", p.name)))?;
        let publish = &self.forge.config.publish;
        // The name clusters pull the release by: the published one, else the store's.
        let (identity, pull_spec) = match &publish.mirror {
            Some(m) => (
                format!("{}:{}", m.release, p.name),
                format!("{}@{digest}", m.release),
            ),
            None => (
                format!("{}:{}", self.forge.config.store_name, p.name),
                self.pull_spec(&digest.to_string()),
            ),
        };
        if let Some(m) = &publish.mirror {
            if !has("mirror") {
                self.step("publish-mirror")?;
                let detail = self.mirror_to(p, &digest, m).await?;
                self.records()
                    .published(p, "mirror", &identity, &detail, self.now())?;
            }
        }
        if let (Some(signing), Some(config)) = (&self.signing, &publish.signing) {
            if !has("signature") {
                self.step("publish-sign")?;
                let content = AtomicSignature::new(&digest, &identity).with_optional(
                    Some(format!("okd-forge {}", env!("CARGO_PKG_VERSION"))),
                    Some(self.now()),
                );
                let written = SignatureDir::new(&config.store)
                    .sign(&signing.signer, &content)
                    .map_err(|e| ControllerError::Store(format!("sign {}: {e}", p.name)))?;
                self.records().published(
                    p,
                    "signature",
                    &written.path.display().to_string(),
                    &format!(
                        "signed {digest} as {identity} with key {}",
                        signing.signer.fingerprint()
                    ),
                    self.now(),
                )?;
            }
        }
        if let Some(dir) = &publish.tools {
            if !has("tools") {
                self.step("publish-tools")?;
                let (at, detail) = self.tools(p, &digest, &pull_spec, dir).await?;
                self.records().published(
                    p,
                    "tools",
                    &at.display().to_string(),
                    &detail,
                    self.now(),
                )?;
            }
        }
        Ok(())
    }

    /// The release `digest` in the store.
    fn stored(&self, digest: &Digest) -> Result<ImageRef, ControllerError> {
        let selector = Some(Selector::Digest(digest.clone()));
        Ok(match &self.forge.config.store {
            StoreConfig::Layout(path) => ImageRef::Layout {
                path: path.clone(),
                selector,
            },
            StoreConfig::Registry(repo) => {
                let r: ImageRef =
                    format!("docker://{repo}@{digest}")
                        .parse()
                        .map_err(|e: oci::Error| {
                            ControllerError::Store(format!("the store {repo}: {e}"))
                        })?;
                r
            }
        })
    }

    /// Mirrors stable release `p` from the store: its component images to `m.content`, by
    /// digest (the release names them there), the release to `m.release:<name>`.
    async fn mirror_to(
        &self,
        p: &PayloadRecord,
        digest: &Digest,
        m: &PublishRepos,
    ) -> Result<String, ControllerError> {
        let fail = |e: payload::Error| ControllerError::Store(format!("mirror {}: {e}", p.name));
        let from = self.stored(digest)?;
        let mut plan = mirror::plan(&self.forge.sources, &from)
            .await
            .map_err(fail)?;
        // Read everything from the store, whatever repository the release names its images by.
        match &self.forge.config.store {
            StoreConfig::Layout(path) => plan.from_dir = Some(path.clone()),
            StoreConfig::Registry(repo) => {
                for image in &mut plan.images {
                    image.source = format!("{repo}@{}", image.digest);
                }
            }
        }
        let repo = |r: &str| -> Result<ImageRef, ControllerError> {
            format!("docker://{r}")
                .parse()
                .map_err(|e: oci::Error| ControllerError::Store(format!("publish {r}: {e}")))
        };
        let release = repo(&format!("{}:{}", m.release, p.name))?;
        let dst = Destination::registry(repo(&m.content)?, Some(release), &plan).map_err(fail)?;
        let stores = self.forge.sources.stores();
        let report = mirror::mirror(&plan, stores, &self.forge.copier, &dst, MIRROR_JOBS)
            .await
            .map_err(fail)?;
        if report.release.digest != *digest {
            return Err(ControllerError::Store(format!(
                "mirror {}: the mirrored release is {}, not {digest}",
                p.name, report.release.digest
            )));
        }
        let t = &report.totals;
        Ok(format!(
            "{} images to {}, {} blobs copied ({} bytes), {} already there, {} mounted",
            report.images.len() + 1,
            m.content,
            t.blobs_copied,
            t.bytes_copied,
            t.blobs_skipped,
            t.blobs_mounted
        ))
    }

    /// Extracts the tools of stable release `p` (stamped with `pull_spec`) into `<dir>/<name>/`,
    /// with `sha256sum.txt` and, when signing, its detached signature `sha256sum.txt.asc`. The
    /// directory appears complete or not at all.
    async fn tools(
        &self,
        p: &PayloadRecord,
        digest: &Digest,
        pull_spec: &str,
        dir: &Path,
    ) -> Result<(PathBuf, String), ControllerError> {
        let fail = |e: String| ControllerError::Store(format!("tools of {}: {e}", p.name));
        let at = dir.join(&p.name);
        let mut files: Vec<String> = Vec::new();
        if !at.is_dir() {
            let tmp = dir.join(format!(".{}.tmp", p.name));
            let _ = std::fs::remove_dir_all(&tmp);
            let mut info = payload::info::load(&self.forge.sources, &self.stored(digest)?, None)
                .await
                .map_err(|e| fail(e.to_string()))?;
            info.pull_spec = pull_spec.to_string();
            let opts = payload::tools::Options {
                command: None,
                platform: payload::tools::Platform::All,
                signer: self.signing.as_ref().map(|s| &s.signer),
            };
            let out = payload::tools::extract(&self.forge.sources, &info, &opts, &tmp)
                .await
                .map_err(|e| fail(e.to_string()))?;
            for w in &out.warnings {
                tracing::info!(release = %p.name, "tools: {w}");
            }
            std::fs::rename(&tmp, &at)
                .map_err(|e| fail(format!("{} → {}: {e}", tmp.display(), at.display())))?;
            files = out.files.into_iter().map(|w| w.name).collect();
        }
        if files.is_empty() {
            let mut names: Vec<String> = std::fs::read_dir(&at)
                .map_err(|e| fail(format!("{}: {e}", at.display())))?
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with("sha256sum.txt"))
                .collect();
            names.sort();
            files = names;
        }
        let signed = if self.signing.is_some() {
            ", sha256sum.txt signed"
        } else {
            ""
        };
        Ok((at, format!("{}{signed}", files.join(", "))))
    }
}
