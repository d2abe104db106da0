//! `okd-forge image …` and `okd-forge store …`: move and look at images in registries and OCI layouts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Args, Subcommand};
use futures_util::{StreamExt, TryStreamExt};
use indicatif::HumanBytes;
use oci::auth::AuthSource;
use oci::manifest::Parsed;
use oci::{
    Copier, CopyReport, Descriptor, ImageRef, Layout, RawManifest, RegistryOptions, Selector,
    Store, Stores,
};
use serde::{Deserialize, Serialize};

use crate::progress::CopyProgress;
use crate::Output;

/// Image commands.
#[derive(Subcommand)]
pub enum ImageCommand {
    /// Copy an image, or a whole index with every child, between registries and OCI layouts.
    ///
    /// References use skopeo's syntax: docker://HOST[:PORT]/REPO[:TAG|@DIGEST] or
    /// oci:PATH[:TAG|@DIGEST]. Blobs the destination already has are skipped, blobs in another
    /// repository of the same registry are mounted, and every byte is checked against its digest.
    Copy(CopyArgs),
    /// Show an image's digest, platform, labels and layers (like `skopeo inspect`).
    Inspect(InspectArgs),
    /// List the tags of a repository or OCI layout.
    Tags(TagsArgs),
}

/// Commands on the embedded content store.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Delete blobs no tag reaches, and leftovers of interrupted writes.
    Gc(GcArgs),
}

/// How to reach registries; shared by every command that talks to one.
#[derive(Args)]
pub struct Access {
    /// Verify TLS certificates and require https (as skopeo's --tls-verify). With
    /// --tls-verify=false, certificates are not checked and plain http is allowed. Loopback
    /// registries may always use plain http.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub(crate) tls_verify: bool,
    /// Credentials file (containers auth.json or docker config.json). Default: $REGISTRY_AUTH_FILE,
    /// $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub(crate) authfile: Option<PathBuf>,
    /// Seconds a request may take, or a transfer may stall, before it is abandoned (a transfer that
    /// keeps moving may take as long as it needs).
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: u64,
    /// How often a failed request or blob transfer is retried, with backoff (429, 5xx, timeouts,
    /// connection errors).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub(crate) retry_times: usize,
}

impl Access {
    pub(crate) fn options(&self, chunk_size: Option<u64>) -> Result<RegistryOptions> {
        if let Some(f) = &self.authfile {
            if !f.is_file() {
                bail!(
                    "--authfile {}: no such file; create it with `podman login --authfile {0} REGISTRY`",
                    f.display()
                );
            }
        }
        Ok(RegistryOptions {
            tls_verify: self.tls_verify,
            auth: AuthSource {
                authfile: self.authfile.clone(),
            },
            timeout: Duration::from_secs(self.timeout),
            retries: self.retry_times,
            chunk_size,
        })
    }
}

/// Arguments of `image copy`.
#[derive(Args)]
pub struct CopyArgs {
    /// The image to copy: docker://HOST/REPO[:TAG|@DIGEST] or oci:PATH[:TAG|@DIGEST].
    src: String,
    /// Where to copy it. A docker:// destination without a tag gets `latest` (as with skopeo); an
    /// oci: destination without a tag gets an untagged entry in index.json.
    dst: String,
    /// Copy every tag of the SRC repository (or layout) to the DST repository, under the same tags.
    #[arg(long)]
    all_tags: bool,
    /// Blob transfers (and, with --all-tags, images) to run at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// Upload blobs larger than this many MiB in chunks of this size (for proxies that limit
    /// request bodies). Default: one request per blob.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..))]
    upload_chunk_mib: Option<u32>,
    /// Write the digest of the copied image to FILE (as skopeo's --digestfile).
    #[arg(long, value_name = "FILE")]
    digestfile: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    access: Access,
}

/// Arguments of `image inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The image: docker://HOST/REPO[:TAG|@DIGEST] or oci:PATH[:TAG|@DIGEST].
    image: String,
    /// Print the manifest exactly as stored (its bytes are what the digest is over).
    #[arg(long, conflicts_with = "config")]
    raw: bool,
    /// Print the image's config blob. For an index, the config of the instance for --arch.
    #[arg(long)]
    config: bool,
    /// Which instance of an index to describe (amd64, arm64, ppc64le, s390x). Default: this machine's.
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// Do not list the repository's tags.
    #[arg(long)]
    no_tags: bool,
    #[command(flatten)]
    access: Access,
}

/// Arguments of `image tags`.
#[derive(Args)]
pub struct TagsArgs {
    /// The repository (docker://HOST/REPO) or layout (oci:PATH).
    repository: String,
    #[command(flatten)]
    access: Access,
}

/// The embedded store's directory, as every command that uses it takes it.
#[derive(Args)]
pub struct StoreDir {
    /// The OCI layout directory of the embedded store.
    #[arg(
        long,
        value_name = "DIR",
        env = "OKD_FORGE_STORE",
        default_value = "var/store"
    )]
    pub(crate) store: PathBuf,
}

/// Arguments of `store gc`.
#[derive(Args)]
pub struct GcArgs {
    #[command(flatten)]
    store: StoreDir,
}

/// Run an `image` command.
pub async fn run(cmd: ImageCommand, output: Output) -> Result<()> {
    match cmd {
        ImageCommand::Copy(a) => copy(a, output).await,
        ImageCommand::Inspect(a) => inspect(a, output).await,
        ImageCommand::Tags(a) => tags(a, output).await,
    }
}

/// Run a `store` command.
pub async fn run_store(cmd: StoreCommand, output: Output) -> Result<()> {
    match cmd {
        StoreCommand::Gc(a) => {
            let layout = Layout::open(&a.store.store)?;
            let report = tokio::task::spawn_blocking(move || layout.gc()).await??;
            match output {
                Output::Json => print_json(&report),
                Output::Text | Output::Markdown => println!(
                    "Removed {} blobs ({}) and {} leftover temporary files; kept {} blobs.",
                    report.removed,
                    HumanBytes(report.bytes_freed),
                    report.temp_files_removed,
                    report.kept
                ),
            }
            Ok(())
        }
    }
}

async fn copy(a: CopyArgs, output: Output) -> Result<()> {
    let src: ImageRef = a.src.parse()?;
    let dst: ImageRef = a.dst.parse()?;
    let chunk = a.upload_chunk_mib.map(|m| u64::from(m) << 20);
    let stores = Stores::new(a.access.options(chunk)?);
    let progress = Arc::new(CopyProgress::new(a.quiet));
    let copier = Copier::new(a.jobs.into(), a.access.retry_times, progress.clone());
    let started = Instant::now();
    let src_store = stores.open(&src, false)?;

    let reports = if a.all_tags {
        if src.selector().is_some() || dst.selector().is_some() {
            bail!(
                "--all-tags copies whole repositories: give {} and {} without a tag or digest",
                a.src,
                a.dst
            );
        }
        if a.digestfile.is_some() {
            bail!("--digestfile names one image; it cannot be used with --all-tags");
        }
        let tags = src_store.tags().await?;
        if tags.is_empty() {
            bail!("{}: has no tags to copy", a.src);
        }
        let dst_store = stores.open(&dst, true)?;
        dst_store.check_access().await?;
        futures_util::stream::iter(tags)
            .map(|tag| {
                let (copier, src_store, dst_store) = (&copier, &src_store, &dst_store);
                async move {
                    let sel = Selector::Tag(tag.clone());
                    copier
                        .copy(src_store, Some(&sel), dst_store, Some(&tag))
                        .await
                }
            })
            .buffer_unordered(a.jobs.into())
            .try_collect::<Vec<_>>()
            .await?
    } else {
        // Resolve the source before touching the destination, so a bad source leaves no trace there.
        let root = src_store.get_manifest(src.selector()).await?;
        let tag = destination_tag(&dst, &root)?;
        let dst_store = stores.open(&dst, true)?;
        dst_store.check_access().await?;
        let report = copier
            .copy_resolved(
                &src_store,
                src.selector(),
                &root,
                &dst_store,
                tag.as_deref(),
            )
            .await?;
        if let Some(f) = &a.digestfile {
            std::fs::write(f, report.digest.to_string())
                .with_context(|| format!("cannot write --digestfile {}", f.display()))?;
        }
        vec![report]
    };
    progress.finish();
    let elapsed = started.elapsed();
    match output {
        Output::Json => {
            if a.all_tags {
                print_json(&reports)
            } else {
                print_json(&reports[0])
            }
        }
        Output::Text | Output::Markdown => {
            for r in &reports {
                println!("Copied {} to {} ({})", r.source, r.destination, r.digest);
            }
            println!("{}", summary(&reports, elapsed));
        }
    }
    Ok(())
}

/// The tag to write at the destination, per skopeo's rules; a digest destination must match the source.
fn destination_tag(dst: &ImageRef, root: &RawManifest) -> Result<Option<String>> {
    Ok(match (dst, dst.selector()) {
        (_, Some(Selector::Tag(t))) => Some(t.clone()),
        (_, Some(Selector::Digest(d))) => {
            if *d != root.digest {
                bail!(
                    "{dst}: the source image is {}, not the digest in the destination; drop the digest or name the right one",
                    root.digest
                );
            }
            None
        }
        (ImageRef::Registry { .. }, None) => Some("latest".into()),
        (ImageRef::Layout { .. }, None) => None,
    })
}

fn summary(reports: &[CopyReport], elapsed: Duration) -> String {
    let sum = |f: fn(&CopyReport) -> usize| reports.iter().map(f).sum::<usize>();
    let bytes: u64 = reports.iter().map(|r| r.bytes_copied).sum();
    let secs = elapsed.as_secs_f64().max(0.001);
    format!(
        "{} image(s), {} manifest(s): {} blobs copied ({}), {} already there, {} mounted; {:.1}s, {}/s",
        reports.len(),
        sum(|r| r.manifests),
        sum(|r| r.blobs_copied),
        HumanBytes(bytes),
        sum(|r| r.blobs_skipped),
        sum(|r| r.blobs_mounted),
        secs,
        HumanBytes((bytes as f64 / secs) as u64),
    )
}

/// `skopeo inspect`'s document, field for field, so scripts written for it keep working.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspection {
    name: String,
    digest: String,
    repo_tags: Vec<String>,
    created: Option<String>,
    docker_version: String,
    labels: Option<BTreeMap<String, String>>,
    architecture: String,
    os: String,
    layers: Vec<String>,
    layers_data: Vec<LayerData>,
    env: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LayerData {
    #[serde(rename = "MIMEType")]
    mime_type: String,
    digest: String,
    size: u64,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
struct ImageConfig {
    created: Option<String>,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    docker_version: String,
    #[serde(default)]
    config: ContainerConfig,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig {
    labels: Option<BTreeMap<String, String>>,
    env: Option<Vec<String>>,
}

async fn inspect(a: InspectArgs, output: Output) -> Result<()> {
    let r: ImageRef = a.image.parse()?;
    let stores = Stores::new(a.access.options(None)?);
    let store = stores.open(&r, false)?;
    let top = store.get_manifest(r.selector()).await?;
    if a.raw {
        use std::io::Write;
        std::io::stdout().write_all(&top.bytes)?;
        return Ok(());
    }
    let (image, index_entries) = match top.parse()? {
        Parsed::Image { .. } => (top.clone(), vec![]),
        Parsed::Index { manifests } => {
            let arch = a
                .arch
                .clone()
                .unwrap_or_else(|| oci::manifest::host_arch().to_string());
            let entry = pick_platform(&manifests, &arch)
                .with_context(|| format!("{}: index has no linux/{arch} image", a.image))?;
            (store.get_child_manifest(entry).await?, manifests)
        }
    };
    let Parsed::Image { config, layers } = image.parse()? else {
        bail!(
            "{}: the index's {} entry is itself an index",
            a.image,
            image.digest
        );
    };
    let config_bytes = store.get_blob_bytes(&config).await?;
    if a.config {
        use std::io::Write;
        std::io::stdout().write_all(&config_bytes)?;
        return Ok(());
    }
    let cfg: ImageConfig = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("{}: config {} is not valid JSON", a.image, config.digest))?;
    let repo_tags = if a.no_tags {
        vec![]
    } else {
        // Some registries let you pull but not list: say so, and still describe the image.
        store.tags().await.unwrap_or_else(|e| {
            tracing::warn!("cannot list the repository's tags ({e}); --no-tags skips this");
            vec![]
        })
    };
    let doc = Inspection {
        name: match &r {
            ImageRef::Registry { repo, .. } => format!("{}/{}", repo.registry, repo.repository),
            ImageRef::Layout { path, .. } => path.display().to_string(),
        },
        digest: top.digest.to_string(),
        repo_tags,
        created: cfg.created,
        docker_version: cfg.docker_version,
        labels: cfg.config.labels,
        architecture: cfg.architecture,
        os: cfg.os,
        layers: layers.iter().map(|l| l.digest.to_string()).collect(),
        layers_data: layers
            .iter()
            .map(|l| LayerData {
                mime_type: l.media_type.clone(),
                digest: l.digest.to_string(),
                size: l.size,
                annotations: l.annotations.clone(),
            })
            .collect(),
        env: cfg.config.env,
    };
    match output {
        Output::Json => print_json(&doc),
        Output::Text | Output::Markdown => print_inspection(&doc, &top, &index_entries, &layers),
    }
    Ok(())
}

fn print_inspection(
    doc: &Inspection,
    top: &RawManifest,
    index: &[Descriptor],
    layers: &[Descriptor],
) {
    println!("Name:         {}", doc.name);
    println!("Digest:       {}", doc.digest);
    println!("Media type:   {}", top.media_type);
    if !index.is_empty() {
        println!("Instances:");
        for m in index {
            println!(
                "  {:<14} {}",
                platform_of(m).unwrap_or_else(|| "?".into()),
                m.digest
            );
        }
    }
    println!("Platform:     {}/{}", doc.os, doc.architecture);
    if let Some(c) = &doc.created {
        println!("Created:      {c}");
    }
    let total: u64 = layers.iter().map(|l| l.size).sum();
    println!("Layers:       {} ({})", layers.len(), HumanBytes(total));
    for l in layers {
        println!(
            "  {} {:>10}  {}",
            l.digest,
            HumanBytes(l.size).to_string(),
            l.media_type
        );
    }
    if let Some(labels) = doc.labels.as_ref().filter(|l| !l.is_empty()) {
        println!("Labels:");
        for (k, v) in labels {
            println!("  {k}={v}");
        }
    }
    if !doc.repo_tags.is_empty() {
        println!("Tags:         {}", doc.repo_tags.join(" "));
    }
}

fn platform_of(d: &Descriptor) -> Option<String> {
    let p = d.platform.as_ref()?;
    Some(format!(
        "{}/{}",
        p.get("os")?.as_str()?,
        p.get("architecture")?.as_str()?
    ))
}

fn pick_platform<'a>(entries: &'a [Descriptor], arch: &str) -> Option<&'a Descriptor> {
    entries
        .iter()
        .find(|d| platform_of(d).as_deref() == Some(&format!("linux/{arch}")))
}

async fn tags(a: TagsArgs, output: Output) -> Result<()> {
    let r: ImageRef = a.repository.parse()?;
    if r.selector().is_some() {
        bail!(
            "{}: name a repository, without a tag or digest",
            a.repository
        );
    }
    let stores = Stores::new(a.access.options(None)?);
    let store: Store = stores.open(&r, false)?;
    let mut tags = store.tags().await?;
    tags.sort();
    match output {
        Output::Json => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct TagList<'a> {
                repository: String,
                tags: &'a [String],
            }
            print_json(&TagList {
                repository: store.describe(),
                tags: &tags,
            })
        }
        Output::Text | Output::Markdown => {
            for t in &tags {
                println!("{t}");
            }
        }
    }
    Ok(())
}

pub(crate) fn print_json<T: Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("plain data serialises")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_tags_follow_skopeo() {
        let b = bytes::Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#);
        let root = RawManifest::new("x", b.clone(), None, oci::Digest::sha256_of(&b)).unwrap();
        let tag = |s: &str| destination_tag(&s.parse().unwrap(), &root);
        assert_eq!(tag("docker://h.io/a").unwrap().as_deref(), Some("latest"));
        assert_eq!(tag("docker://h.io/a:v1").unwrap().as_deref(), Some("v1"));
        assert_eq!(tag("oci:/tmp/x").unwrap(), None);
        assert_eq!(tag(&format!("oci:/tmp/x@{}", root.digest)).unwrap(), None);
        let other = oci::Digest::sha256_of(b"other");
        let e = tag(&format!("docker://h.io/a@{other}")).unwrap_err();
        assert!(e.to_string().contains("not the digest"), "{e}");
    }
}
