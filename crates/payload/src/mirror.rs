//! Mirroring a release (`oc adm release mirror`, payload-format spec §5): the release image and every
//! image its `image-references` names, copied by digest to one repository, with the mirror rules a
//! cluster needs to keep pulling the original pull specs from there.
//!
//! - [`plan`] reads the release and decides what goes where: component `X` to `REPO:<version><arch>-X`,
//!   the release to `REPO:<version><arch>` (or `--to-release-image`), `<arch>` being `-x86_64`,
//!   `-aarch64`, `-ppc64le`, `-s390x`, or `-multi` for a manifest list. [`plan_from_dir`] reads the same
//!   plan back from a directory [`mirror`] wrote (a disconnected transfer).
//! - [`mirror`] moves everything with one [`Copier`]: blobs shared between images go once, blobs the
//!   destination has are skipped, blobs already in another repository of the destination registry are
//!   mounted, and manifests keep their bytes, so no digest changes and signatures stay valid. Component
//!   images go first and the release last, so a reader never sees a release whose images are missing.
//! - [`MirrorRules::yaml`] prints the install-config `imageDigestSources` snippet and an
//!   `ImageDigestMirrorSet` (or `imageContentSources` and an `ImageContentSourcePolicy`), as oc does.
//!
//! ```no_run
//! # async fn run() -> payload::Result<()> {
//! use std::sync::Arc;
//! use oci::{Copier, NoProgress, RegistryOptions, Stores};
//! use payload::mirror::{self, Destination, RulesKind};
//! use payload::source::Sources;
//!
//! let sources = Sources::new(Arc::new(Stores::new(RegistryOptions::default())), None, None)?;
//! let from = "docker://quay.io/okd/scos-release:4.17.0-okd-scos.1".parse()?;
//! let plan = mirror::plan(&sources, &from).await?;
//! let dst = Destination::registry("docker://mirror.example.com/okd/release".parse()?, None, &plan)?;
//! let copier = Copier::new(24, 3, Arc::new(NoProgress)).with_registry_limit(6);
//! let report = mirror::mirror(&plan, sources.stores(), &copier, &dst, 16).await?;
//! print!("{}", report.rules.yaml(RulesKind::Idms));
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use oci::{
    Copier, CopyReport, CopyTotals, Digest, ImageRef, Layout, RegistryRepo, Selector, Store, Stores,
};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::source::{PullSpec, Sources};

/// The file a mirror into a directory writes next to the OCI layout: the plan, so that
/// `--from-dir` knows each image's original repository (for the mirror rules) and tag.
pub const PLAN_FILE: &str = "okd-forge-mirror.json";

/// One image to mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorImage {
    /// The image-references tag (`cli`, `machine-config-operator`, ...), or `release`.
    pub name: String,
    /// Where it comes from, as the payload names it: `HOST/REPO@sha256:…` (for the release, the
    /// reference it was mirrored from).
    pub source: String,
    /// The repository of `source`, which the mirror rules map to the mirror (`HOST/REPO`); none for a
    /// release read from an OCI layout.
    pub source_repository: Option<String>,
    /// The manifest (or list) digest, kept at the destination.
    pub digest: Digest,
    /// The tag it gets at the destination.
    pub tag: String,
}

/// What a mirror copies and where: decided before anything is copied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The release name (image-references `metadata.name`).
    pub version: String,
    /// `-x86_64`, `-aarch64`, `-ppc64le`, `-s390x` or `-multi`.
    pub arch_suffix: String,
    /// The release image; its tag is the default `<version><arch>`.
    pub release: MirrorImage,
    /// The component images, in image-references order.
    pub images: Vec<MirrorImage>,
    /// Set when the images are read from a directory a mirror wrote (`--from-dir`), not their sources.
    #[serde(skip)]
    pub from_dir: Option<PathBuf>,
}

/// The oc name of an architecture in tags: amd64 is `x86_64`, arm64 is `aarch64`.
pub fn arch_suffix(arch: &str) -> String {
    match arch {
        "amd64" => "-x86_64".into(),
        "arm64" => "-aarch64".into(),
        other => format!("-{other}"),
    }
}

/// Read the release `from` and plan its mirror. Every image-references tag must name its image by
/// digest (as `oc adm release mirror` requires).
pub async fn plan(sources: &Sources, from: &ImageRef) -> Result<Plan> {
    let info = crate::info::load(sources, from, None).await?;
    let version = info.references.metadata.name.clone();
    if version.is_empty() {
        return Err(Error::BadRelease {
            image: from.to_string(),
            reason: "image-references has no metadata.name (the release version)".into(),
        });
    }
    let arch_suffix = if info.list_digest.is_some() {
        "-multi".to_string()
    } else {
        let arch = info
            .config
            .0
            .get("architecture")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
            .unwrap_or("amd64");
        arch_suffix(arch)
    };
    let base_tag = format!("{version}{arch_suffix}");
    let mut images = Vec::new();
    for tag in &info.references.spec.tags {
        let Some(pullspec) = tag.pullspec() else {
            continue;
        };
        let what = format!("{from}: image-references tag '{}'", tag.name);
        let spec = PullSpec::parse(&what, pullspec)?;
        let digest = spec.digest().cloned().ok_or_else(|| {
            invalid(format!(
                "{what}: image-references should only contain pointers to images by digest: {pullspec}"
            ))
        })?;
        images.push(MirrorImage {
            name: tag.name.clone(),
            source: pullspec.to_string(),
            source_repository: Some(repository_name(&spec.repo)),
            digest,
            tag: checked_tag(&format!("{base_tag}-{}", tag.name))?,
        });
    }
    let (source, source_repository) = match from {
        ImageRef::Registry { repo, .. } => (
            format!("{}@{}", repository_name(repo), info.digest),
            Some(repository_name(repo)),
        ),
        ImageRef::Layout { path, .. } => (format!("oci:{}@{}", path.display(), info.digest), None),
    };
    Ok(Plan {
        version,
        release: MirrorImage {
            name: "release".into(),
            source,
            source_repository,
            digest: info.digest.clone(),
            tag: checked_tag(&base_tag)?,
        },
        arch_suffix,
        images,
        from_dir: None,
    })
}

/// The plan a mirror into `dir` wrote, to upload what it holds (`--from-dir`).
pub fn plan_from_dir(dir: &Path) -> Result<Plan> {
    let file = dir.join(PLAN_FILE);
    let bytes = std::fs::read(&file).map_err(|e| {
        invalid(format!(
            "{}: {e}; --from-dir takes a directory written by `okd-forge release mirror --to-dir`",
            file.display()
        ))
    })?;
    let mut plan: Plan = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("{}: not a mirror plan: {e}", file.display())))?;
    plan.from_dir = Some(dir.to_path_buf());
    Ok(plan)
}

fn checked_tag(tag: &str) -> Result<String> {
    oci::reference::parse_tag(tag)
        .map_err(|e| invalid(format!("destination tag '{tag}' is not valid: {e}")))
}

/// `HOST/REPO`, as mirror rules name repositories.
pub fn repository_name(repo: &RegistryRepo) -> String {
    format!("{}/{}", repo.registry, repo.repository)
}

/// Where a mirror goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Repositories of a registry.
    Registry {
        /// Where the component images go (`--to`).
        content: RegistryRepo,
        /// Where the release goes, and its tag (`--to-release-image`, default `--to:<version><arch>`).
        release: (RegistryRepo, String),
        /// Whether the release was placed elsewhere by the user (oc then lists it as a mirror too).
        release_elsewhere: bool,
    },
    /// An OCI layout directory, with the plan beside it (`--to-dir`).
    Dir(PathBuf),
}

impl Destination {
    /// Mirror to the repository `to` (no tag or digest), the release to `release` if given (a tag is
    /// required there; without one the release's default tag is used).
    pub fn registry(to: ImageRef, release: Option<ImageRef>, plan: &Plan) -> Result<Destination> {
        let content = match to {
            ImageRef::Registry {
                repo,
                selector: None,
            } => repo,
            other => {
                return Err(invalid(format!(
                    "--to {other}: must be an image repository (HOST/REPO) without a tag or digest"
                )))
            }
        };
        let (release, elsewhere) = match release {
            None => ((content.clone(), plan.release.tag.clone()), false),
            Some(ImageRef::Registry { repo, selector }) => {
                let tag = match selector {
                    None => plan.release.tag.clone(),
                    Some(Selector::Tag(t)) => t,
                    Some(Selector::Digest(_)) => {
                        return Err(invalid(format!(
                            "--to-release-image {}: name a tag, not a digest; the digest is the release's own",
                            repository_name(&repo)
                        )))
                    }
                };
                ((repo, tag), true)
            }
            Some(other) => {
                return Err(invalid(format!(
                    "--to-release-image {other}: must be a registry image (HOST/REPO:TAG)"
                )))
            }
        };
        Ok(Destination::Registry {
            content,
            release,
            release_elsewhere: elsewhere,
        })
    }

    /// Where the release image ends up, for people: `HOST/REPO:TAG` or `oci:DIR:TAG`.
    pub fn release_ref(&self, plan: &Plan) -> String {
        match self {
            Destination::Registry {
                release: (repo, tag),
                ..
            } => format!("{}:{tag}", repository_name(repo)),
            Destination::Dir(d) => format!("oci:{}:{}", d.display(), plan.release.tag),
        }
    }
}

/// The mirror rules of a mirrored release: each source repository and the mirrors that serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MirrorRules {
    /// `(source, mirrors)`, sorted by source.
    pub rules: Vec<MirrorRule>,
}

/// One source repository and its mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorRule {
    /// The repository clusters pull from, as the payload names it.
    pub source: String,
    /// Where the content really is.
    pub mirrors: Vec<String>,
}

/// Which cluster object [`MirrorRules::yaml`] prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesKind {
    /// `imageDigestSources` and a `config.openshift.io/v1` `ImageDigestMirrorSet` (OKD 4.13 and later).
    Idms,
    /// `imageContentSources` and an `operator.openshift.io/v1alpha1` `ImageContentSourcePolicy`.
    Icsp,
}

impl MirrorRules {
    /// Every source repository of `plan` (components and the release) mapped to every mirror, as oc
    /// does: the `--to` repository, and the `--to-release-image` one when the release went elsewhere.
    pub fn new(plan: &Plan, mirrors: &[String]) -> MirrorRules {
        let sources: BTreeSet<&str> = plan
            .images
            .iter()
            .chain(std::iter::once(&plan.release))
            .filter_map(|i| i.source_repository.as_deref())
            .collect();
        let mut unique: Vec<String> = Vec::new();
        for m in mirrors {
            if !unique.contains(m) {
                unique.push(m.clone());
            }
        }
        MirrorRules {
            rules: sources
                .into_iter()
                .map(|s| MirrorRule {
                    source: s.to_string(),
                    mirrors: unique.clone(),
                })
                .collect(),
        }
    }

    /// The install-config snippet and the cluster object, with oc's words around them (YAML with
    /// keys sorted, as oc's marshaller writes it).
    pub fn yaml(&self, kind: RulesKind) -> String {
        let (key, api, object, field) = match kind {
            RulesKind::Idms => (
                "imageDigestSources",
                "config.openshift.io/v1",
                "ImageDigestMirrorSet",
                "imageDigestMirrors",
            ),
            RulesKind::Icsp => (
                "imageContentSources",
                "operator.openshift.io/v1alpha1",
                "ImageContentSourcePolicy",
                "repositoryDigestMirrors",
            ),
        };
        let mut s = String::new();
        s.push_str("\nTo use the new mirrored repository to install, add the following section to the install-config.yaml:\n\n");
        s.push_str(&format!("{key}:\n"));
        s.push_str(&self.list(""));
        s.push_str(&format!(
            "\n\nTo use the new mirrored repository for upgrades, use the following to create an {object}:\n\n"
        ));
        s.push_str(&format!(
            "apiVersion: {api}\nkind: {object}\nmetadata:\n  name: example\nspec:\n  {field}:\n"
        ));
        s.push_str(&self.list("  "));
        s
    }

    /// The rules as a YAML sequence at `indent` (go-yaml style: items at the key's indentation).
    fn list(&self, indent: &str) -> String {
        let mut s = String::new();
        for r in &self.rules {
            s.push_str(&format!("{indent}- mirrors:\n"));
            for m in &r.mirrors {
                s.push_str(&format!("{indent}  - {}\n", yaml_scalar(m)));
            }
            s.push_str(&format!("{indent}  source: {}\n", yaml_scalar(&r.source)));
        }
        s
    }
}

/// A repository name as a YAML scalar: plain when it cannot be read as anything else, else quoted.
fn yaml_scalar(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./:_-@".contains(&b))
        && !v.starts_with(['-', ':', '@', '.'])
        && !v.contains(": ");
    if plain {
        v.to_string()
    } else {
        serde_json::to_string(v).expect("a string serialises")
    }
}

/// What one image's copy did.
#[derive(Debug, Clone, Serialize)]
pub struct MirroredImage {
    /// The image-references tag, or `release`.
    pub name: String,
    /// Where it came from.
    pub source: String,
    /// Where it went, `HOST/REPO:TAG` or `oci:DIR:TAG`.
    pub destination: String,
    /// Its digest, the same at both ends.
    pub digest: Digest,
    /// The copy engine's report.
    #[serde(skip)]
    pub report: CopyReport,
}

/// What a mirror did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MirrorReport {
    /// The release version.
    pub version: String,
    /// The release image and where it went.
    pub release: MirroredImage,
    /// The component images.
    pub images: Vec<MirroredImage>,
    /// Manifests written (tops and children, for every image).
    pub manifests: usize,
    /// Blobs, each counted once however many images share it.
    pub totals: CopyTotals,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The mirror rules (empty for a mirror into a directory).
    pub rules: MirrorRules,
}

/// Mirror everything `plan` names to `dst`, up to `jobs` images at once (blob transfers are bounded
/// by `copier`'s limits). Component images first, the release last.
pub async fn mirror(
    plan: &Plan,
    stores: &Stores,
    copier: &Copier,
    dst: &Destination,
    jobs: usize,
) -> Result<MirrorReport> {
    let started = Instant::now();
    let from_layout = match &plan.from_dir {
        Some(d) => Some(Store::Layout(Layout::open(d)?)),
        None => None,
    };
    let (content, release_store, release_tag, mirrors) = match dst {
        Destination::Registry {
            content,
            release: (repo, tag),
            release_elsewhere,
        } => {
            let open = |r: &RegistryRepo| {
                stores.open(
                    &ImageRef::Registry {
                        repo: r.clone(),
                        selector: None,
                    },
                    true,
                )
            };
            let c = open(content)?;
            c.check_access().await?;
            let r = open(repo)?;
            if *release_elsewhere {
                r.check_access().await?;
            }
            let mut mirrors = vec![repository_name(content)];
            if *release_elsewhere {
                mirrors.push(repository_name(repo));
            }
            (c, r, tag.clone(), mirrors)
        }
        Destination::Dir(d) => {
            let layout = Store::Layout(Layout::create(d)?);
            (layout.clone(), layout, plan.release.tag.clone(), Vec::new())
        }
    };
    let describe = |store: &Store, tag: &str| match (store, dst) {
        (Store::Registry(r), _) => format!("{}/{}:{tag}", r.registry().host(), r.name()),
        (Store::Layout(_), Destination::Dir(d)) => format!("oci:{}:{tag}", d.display()),
        (Store::Layout(l), _) => format!("oci:{}:{tag}", l.path().display()),
    };
    let source_store = |image: &MirrorImage| -> Result<Store> {
        match &from_layout {
            Some(l) => Ok(l.clone()),
            None if image.name == "release" && image.source.starts_with("oci:") => {
                let path = image
                    .source
                    .trim_start_matches("oci:")
                    .rsplit_once('@')
                    .map(|(p, _)| p)
                    .unwrap_or_default();
                Ok(Store::Layout(Layout::open(path)?))
            }
            None => {
                let spec = PullSpec::parse(&image.name, &image.source)?;
                Ok(stores.open(&spec.image_ref(), false)?)
            }
        }
    };
    let copy_one = |image: MirrorImage, dst_store: Store, tag: String| {
        let source_store = &source_store;
        let describe = &describe;
        async move {
            let src = source_store(&image)?;
            let sel = Selector::Digest(image.digest.clone());
            let root = src.get_manifest(Some(&sel)).await.map_err(|e| {
                invalid(format!(
                    "{} ({}): {e}",
                    image.name,
                    image.source.split('@').next().unwrap_or_default()
                ))
            })?;
            let report = copier
                .copy_resolved(&src, Some(&sel), &root, &dst_store, Some(&tag))
                .await?;
            Ok::<_, Error>(MirroredImage {
                destination: describe(&dst_store, &tag),
                name: image.name,
                source: image.source,
                digest: report.digest.clone(),
                report,
            })
        }
    };
    let images: Vec<MirroredImage> = futures_util::stream::iter(plan.images.iter().cloned())
        .map(|image| {
            let tag = image.tag.clone();
            copy_one(image, content.clone(), tag)
        })
        .buffered(jobs.max(1))
        .try_collect()
        .await?;
    let release = copy_one(plan.release.clone(), release_store, release_tag).await?;
    if let Destination::Dir(d) = dst {
        write_plan(d, plan)?;
    }
    let manifests = images
        .iter()
        .chain(std::iter::once(&release))
        .map(|i| i.report.manifests)
        .sum();
    Ok(MirrorReport {
        version: plan.version.clone(),
        release,
        images,
        manifests,
        totals: copier.totals(),
        seconds: started.elapsed().as_secs_f64(),
        rules: if mirrors.is_empty() {
            MirrorRules::default()
        } else {
            MirrorRules::new(plan, &mirrors)
        },
    })
}

/// Write the plan beside the layout, atomically, so `--from-dir` can map every image back.
fn write_plan(dir: &Path, plan: &Plan) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(plan).expect("a plan serialises");
    crate::extract::write_atomic(dir, PLAN_FILE, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, repo: Option<&str>) -> MirrorImage {
        MirrorImage {
            name: name.into(),
            source: format!("{}@sha256:{}", repo.unwrap_or("oci:/x"), "0".repeat(64)),
            source_repository: repo.map(str::to_string),
            digest: format!("sha256:{}", "0".repeat(64)).parse().unwrap(),
            tag: format!("4.17.0-x86_64-{name}"),
        }
    }

    fn plan() -> Plan {
        Plan {
            version: "4.17.0".into(),
            arch_suffix: "-x86_64".into(),
            release: image("release", Some("quay.io/okd/scos-release")),
            images: vec![
                image("cli", Some("quay.io/okd/scos-content")),
                image("installer", Some("quay.io/okd/scos-content")),
                image("pod", Some("registry.ci.openshift.org/origin/pod")),
            ],
            from_dir: None,
        }
    }

    #[test]
    fn arch_suffixes_follow_oc() {
        assert_eq!(arch_suffix("amd64"), "-x86_64");
        assert_eq!(arch_suffix("arm64"), "-aarch64");
        assert_eq!(arch_suffix("ppc64le"), "-ppc64le");
        assert_eq!(arch_suffix("s390x"), "-s390x");
    }

    #[test]
    fn every_source_maps_to_every_mirror_sorted() {
        let rules = MirrorRules::new(
            &plan(),
            &[
                "m.example/okd".into(),
                "m.example/rel".into(),
                "m.example/okd".into(),
            ],
        );
        let sources: Vec<&str> = rules.rules.iter().map(|r| r.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                "quay.io/okd/scos-content",
                "quay.io/okd/scos-release",
                "registry.ci.openshift.org/origin/pod"
            ]
        );
        assert!(rules
            .rules
            .iter()
            .all(|r| r.mirrors == ["m.example/okd", "m.example/rel"]));
    }

    #[test]
    fn idms_and_icsp_have_ocs_shape() {
        let rules = MirrorRules::new(&plan(), &["127.0.0.1:5000/okd/mirror".into()]);
        let idms = rules.yaml(RulesKind::Idms);
        assert!(idms.contains(
            "imageDigestSources:\n- mirrors:\n  - 127.0.0.1:5000/okd/mirror\n  source: quay.io/okd/scos-content\n"
        ));
        assert!(idms.contains(
            "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: example\nspec:\n  imageDigestMirrors:\n  - mirrors:\n    - 127.0.0.1:5000/okd/mirror\n    source: quay.io/okd/scos-content\n"
        ));
        let icsp = rules.yaml(RulesKind::Icsp);
        assert!(icsp.contains("imageContentSources:\n- mirrors:\n"));
        assert!(icsp.contains(
            "apiVersion: operator.openshift.io/v1alpha1\nkind: ImageContentSourcePolicy\n"
        ));
        assert!(icsp.contains("  repositoryDigestMirrors:\n  - mirrors:\n"));
        assert_eq!(yaml_scalar("a: b"), "\"a: b\"");
    }
}
