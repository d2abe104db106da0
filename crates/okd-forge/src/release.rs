//! `okd-forge release …`: build, inspect, extract and compare release payloads, as `oc adm release` does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use oci::{ImageRef, Layout, Selector, Stores};
use payload::changelog::GitCache;
use payload::imagestream::{self as is, FROM_RELEASE};
use payload::info::ReleaseInfo;
use payload::inputs::{self, parse_ref};
use payload::metadata::metadata_from_json;
use payload::new::{Base, InputTag, NewRelease};
use payload::source::Sources;
use payload::version::{normalise_versions, ReleaseName, Versions};
use serde_json::json;

use crate::image::{print_json, Access, StoreDir};
use crate::progress::{AssembleBar, CopyProgress};
use crate::Output;

/// Release payload commands.
#[derive(Subcommand)]
pub enum ReleaseCommand {
    /// Build a release payload from component images, like `oc adm release new`.
    ///
    /// Inputs are mapping files (TAG=PULLSPEC lines), an image stream file, an existing release, and
    /// TAG=PULLSPEC arguments, which override the others. Images are looked up by digest in the local
    /// store first, then in their registry. Operator manifests are cached by layer digest, so a rebuild
    /// after one component changed reads only that component.
    New(NewArgs),
    /// Show a payload's name, metadata, component versions and images, like `oc adm release info`.
    Info(InfoArgs),
    /// Write a payload's release-manifests to a directory, like `oc adm release extract`.
    Extract(ExtractArgs),
    /// Compare two payloads: images added, removed, rebuilt and changed, with --changelog the commits.
    Diff(DiffArgs),
    /// Copy a release and every image it names to another repository (or a directory), and print
    /// the ImageDigestMirrorSet clusters need, like `oc adm release mirror`.
    Mirror(crate::mirror::MirrorArgs),
    /// The payloads the controller cut: phase, verification, why rejected.
    List(crate::controller::ListArgs),
    /// One payload of the controller: its verification runs and its event log.
    Show(crate::controller::ShowArgs),
    /// Accept a payload by hand, whatever its jobs say; recorded as an override.
    Accept(crate::controller::DecideArgs),
    /// Reject a payload by hand, whatever its jobs say; recorded as an override.
    Reject(crate::controller::DecideArgs),
    /// Pin a payload so garbage collection never removes it (--unpin undoes it).
    Keep(crate::controller::KeepArgs),
    /// Promote an Accepted payload to a stable release: restamped under the stable name (default:
    /// the stream's next X.Y.Z-SUFFIX.N), `previous` = the stable releases it was upgraded from
    /// successfully, pushed to the store, never garbage-collected.
    Promote(crate::controller::PromoteArgs),
    /// Publish a stable release as `publish:` asks: mirror it to the release and content
    /// repositories, sign it, extract its tools; only the steps not done yet.
    Publish(crate::controller::PublishArgs),
    /// The upgrade edges between stable releases: their runs, and whether blocked by hand.
    Edges(crate::controller::EdgesArgs),
    /// Block an upgrade edge by hand (the update graph serves it as a conditional edge with the
    /// risk), or --unblock it.
    BlockEdge(crate::controller::BlockEdgeArgs),
    /// Sign a payload as the cluster-version-operator verifies it: an atomic container signature
    /// in an OpenPGP message, written to a signature store (DIR/sha256=<hex>/signature-<N>).
    Sign(crate::sign::SignArgs),
    /// Verify a payload's signatures in a store (a URL, as the CVO reads it, or a directory)
    /// against a keyring: the OpenPGP signature, the digest, the type and the identity.
    Verify(crate::sign::VerifyArgs),
    /// Print the verification ConfigMap manifest that makes clusters trust a keyring and a store.
    VerificationConfigmap(crate::sign::ConfigMapArgs),
}

/// Where content and caches live.
#[derive(Args)]
struct Local {
    /// Images by digest are looked up in the embedded store first (skipped if it does not exist).
    #[command(flatten)]
    store: StoreDir,
    /// Cache of manifests, configs, extracted operator manifests and git clones.
    #[arg(
        long,
        value_name = "DIR",
        env = "OKD_FORGE_CACHE",
        default_value = "var/cache"
    )]
    cache: PathBuf,
    #[command(flatten)]
    access: Access,
}

impl Local {
    fn sources(&self) -> Result<Sources> {
        let stores = Arc::new(Stores::new(self.access.options(None)?));
        let local = if self.store.store.join("oci-layout").is_file() {
            Some(Layout::open(&self.store.store)?)
        } else {
            None
        };
        Ok(Sources::new(stores, local, Some(self.cache.clone()))?)
    }
}

/// Arguments of `release new`.
#[derive(Args)]
pub struct NewArgs {
    /// The release name, strict semver, e.g. 4.17.0-0.okd-scos-2026-11-23-101500. Default: the name of
    /// --from-release, else 0.0.1-<UTC YYYY-MM-DD-HHMMSS>, as oc does.
    #[arg(long)]
    name: Option<String>,
    /// Where to push: oci:DIR[:TAG] or docker://HOST/REPO[:TAG]; the tag defaults to the name.
    #[arg(long, value_name = "REF", required_unless_present = "dry_run")]
    to: Option<String>,
    /// Compute the payload and print its digest without pushing anything.
    #[arg(long)]
    dry_run: bool,
    /// A file of TAG=PULLSPEC lines (repeatable).
    #[arg(long, value_name = "FILE")]
    mapping_file: Vec<PathBuf>,
    /// Take the input tags, previous versions and metadata of an existing release.
    #[arg(long, value_name = "REF")]
    from_release: Option<String>,
    /// Take the input tags of an image.openshift.io/v1 ImageStream file (JSON or YAML).
    #[arg(long, value_name = "FILE")]
    from_image_stream_file: Option<PathBuf>,
    /// TAG=PULLSPEC overrides, annotated io.openshift.release.override.
    #[arg(value_name = "TAG=PULLSPEC")]
    overrides: Vec<String>,
    /// The input tag of the cluster-version-operator image the payload is built on.
    #[arg(long, value_name = "TAG", default_value = "cluster-version-operator")]
    base_tag: String,
    /// Build on this image instead of an input tag.
    #[arg(long, value_name = "PULLSPEC", conflicts_with = "base_tag")]
    to_image_base: Option<String>,
    /// Versions that can upgrade to this one (comma-separated); written to release-metadata.
    #[arg(long, value_name = "V,...", value_delimiter = ',')]
    previous: Option<Vec<String>>,
    /// Release metadata, a JSON object of strings, e.g. '{"url":"https://..."}'.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    /// Drop these input tags.
    #[arg(long, value_name = "TAG,...", value_delimiter = ',')]
    exclude: Vec<String>,
    /// Keep these tags even if no operator references them.
    #[arg(long, value_name = "TAG,...", value_delimiter = ',')]
    include: Vec<String>,
    /// Leave references to tags missing from the input unrewritten instead of failing.
    #[arg(long)]
    allow_missing_images: bool,
    /// Requests and blob transfers to run at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    local: Local,
}

/// Arguments of `release info`.
#[derive(Args)]
pub struct InfoArgs {
    /// The release: oci:DIR[:TAG|@DIGEST], docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO@DIGEST.
    image: String,
    /// List each image's source repository and commit.
    #[arg(long)]
    commits: bool,
    /// For a manifest list, the architecture to read. Default: this machine's, else amd64, else the
    /// first.
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    #[command(flatten)]
    local: Local,
}

/// Arguments of `release extract`.
#[derive(Args)]
pub struct ExtractArgs {
    /// The release: oci:DIR[:TAG|@DIGEST], docker://HOST/REPO[:TAG|@DIGEST] or HOST/REPO@DIGEST.
    image: String,
    /// Directory to write the files to (created if missing).
    #[arg(long, value_name = "DIR", required_unless_present = "file")]
    to: Option<PathBuf>,
    /// Print only this file of release-manifests to stdout.
    #[arg(long, value_name = "NAME")]
    file: Option<String>,
    /// Extract the release tools instead (oc with kubectl, openshift-install, ccoctl, as the
    /// payload has them), stamped with this release, as per-platform tar.gz (zip for windows)
    /// archives with release.txt and sha256sum.txt, as `oc adm release extract --tools` does.
    #[arg(long, conflicts_with_all = ["file", "command"])]
    tools: bool,
    /// Extract one tool's executable (oc, openshift-install, openshift-baremetal-install or
    /// ccoctl), stamped with this release.
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    command: Option<String>,
    /// The platform of the tools: OS (linux, mac, windows; amd64), OS/ARCH (linux/arm64), or '*'
    /// for every platform (archives, also with --command). Default: this machine's.
    #[arg(long, value_name = "OS[/ARCH]|*")]
    command_os: Option<String>,
    /// Sign sha256sum.txt into sha256sum.txt.asc with this secret key (archives only).
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    signing_key: Option<PathBuf>,
    /// A file whose first line is the signing key's passphrase; OKD_FORGE_SIGNING_PASSPHRASE may
    /// hold it instead.
    #[arg(long, value_name = "FILE", requires = "signing_key")]
    passphrase_file: Option<PathBuf>,
    /// For a manifest list, the architecture to read. Default: this machine's, else amd64, else the
    /// first.
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    #[command(flatten)]
    local: Local,
}

/// `release extract --tools|--command`.
async fn extract_tools(sources: &Sources, a: ExtractArgs, output: Output) -> Result<()> {
    use payload::tools::{Options, Platform};
    let platform = match &a.command_os {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let signer = match &a.signing_key {
        Some(k) => Some(payload::signature::Signer::load(
            k,
            a.passphrase_file.as_deref(),
        )?),
        None => None,
    };
    let opts = Options {
        command: a.command.as_deref(),
        platform,
        signer: signer.as_ref(),
    };
    if signer.is_some() && !opts.archives() {
        bail!("--signing-key signs the archives' sha256sum.txt: use it with --tools or --command-os '*'");
    }
    let info = payload::info::load(sources, &parse_ref(&a.image)?, a.arch.as_deref()).await?;
    let dir = a.to.as_deref().unwrap_or(Path::new("."));
    let out = payload::tools::extract(sources, &info, &opts, dir).await?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    match output {
        Output::Json => print_json(&json!({
            "release": info.name(),
            "to": dir,
            "files": out.files,
            "signed": out.signed,
            "warnings": out.warnings,
        })),
        _ => {
            for w in &out.files {
                let stamped = if w.stamped.is_empty() && !w.command.is_empty() {
                    " (no release markers in the binary: not stamped)".to_string()
                } else {
                    String::new()
                };
                println!("{} {}{stamped}", w.sha256, dir.join(&w.name).display());
            }
            if out.signed {
                println!("signed {}", dir.join("sha256sum.txt.asc").display());
            }
        }
    }
    Ok(())
}

/// Arguments of `release diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// The older release.
    from: String,
    /// The newer release.
    to: String,
    /// Add each changed component's commits, read from its git repository (cached clones under
    /// CACHE/git; file:// and https work).
    #[arg(long)]
    changelog: bool,
    /// When the OS image changed, compare the packages of the two OS images' rpm databases
    /// (reads both images' layers).
    #[arg(long)]
    rpmdb_diff: bool,
    /// For manifest lists, the architecture to read. Default: this machine's, else amd64, else the
    /// first.
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    #[command(flatten)]
    local: Local,
}

/// Run a `release` command.
pub async fn run(cmd: ReleaseCommand, output: Output) -> Result<()> {
    match cmd {
        ReleaseCommand::New(a) => new(a, output).await,
        ReleaseCommand::Info(a) => info(a, output).await,
        ReleaseCommand::Extract(a) => extract(a, output).await,
        ReleaseCommand::Diff(a) => diff(a, output).await,
        ReleaseCommand::Mirror(a) => crate::mirror::mirror(a, output).await,
        ReleaseCommand::List(a) => crate::controller::list(a, output),
        ReleaseCommand::Show(a) => crate::controller::show(a, output),
        ReleaseCommand::Accept(a) => crate::controller::decide(a, true, output),
        ReleaseCommand::Reject(a) => crate::controller::decide(a, false, output),
        ReleaseCommand::Keep(a) => crate::controller::keep(a, output),
        ReleaseCommand::Promote(a) => crate::controller::promote(a, output).await,
        ReleaseCommand::Publish(a) => crate::controller::publish(a, output).await,
        ReleaseCommand::Edges(a) => crate::controller::edges(a, output),
        ReleaseCommand::BlockEdge(a) => crate::controller::block_edge(a, output),
        ReleaseCommand::Sign(a) => crate::sign::sign(a, output).await,
        ReleaseCommand::Verify(a) => crate::sign::verify(a, output).await,
        ReleaseCommand::VerificationConfigmap(a) => crate::sign::configmap(a),
    }
}

/// The creation time: `SOURCE_DATE_EPOCH` (reproducible builds) or now, in whole seconds.
fn created() -> Result<time::OffsetDateTime> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: i64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH '{s}' is not a number of seconds"))?;
            Ok(time::OffsetDateTime::from_unix_timestamp(secs)?)
        }
        Err(_) => {
            let now = time::OffsetDateTime::now_utc();
            Ok(now.replace_nanosecond(0).expect("0 is a valid nanosecond"))
        }
    }
}

async fn new(a: NewArgs, output: Output) -> Result<()> {
    let given = a.name.as_deref().map(ReleaseName::parse).transpose()?;
    let created = created()?;
    let sources = a.local.sources()?;
    let mut tags: BTreeMap<String, InputTag> = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut defaults = Versions::new();
    let mut base = match &a.to_image_base {
        Some(p) => Base::Image(payload::source::PullSpec::parse("--to-image-base", p)?),
        None => Base::Tag(a.base_tag.clone()),
    };
    let mut previous = Vec::new();
    let mut metadata = BTreeMap::new();
    let mut from_name = None;
    if let Some(r) = &a.from_release {
        let info = payload::info::load(&sources, &parse_ref(r)?, None).await?;
        let (inputs, base_tag) = inputs::from_release(&info)?;
        tags.extend(inputs);
        match (base_tag, &a.to_image_base) {
            (_, Some(_)) => {}
            (Some(t), None) => base = Base::Tag(t),
            (None, None) => bail!(
                "--from-release {r}: none of its tags is its base image (label {}); pass --to-image-base PULLSPEC",
                is::BASE_DIGEST_LABEL
            ),
        }
        if let Some(m) = &info.metadata {
            previous = m.previous.clone();
            metadata = m.metadata.clone();
        }
        // As oc, the release's own annotations carry over, and its component versions are the
        // defaults for 0.0.1-snapshot-<key>.
        annotations = info.references.metadata.annotations.clone();
        annotations.remove(FROM_RELEASE);
        if let Some(v) = annotations.get(is::VERSIONS) {
            defaults = payload::version::parse_versions(r, v)?;
        }
        // A rebuild with changes records where it came from (oc's "Promoted from").
        let changed = a.name.as_deref().is_some_and(|n| n != info.name())
            || !a.overrides.is_empty()
            || !a.mapping_file.is_empty()
            || a.from_image_stream_file.is_some()
            || a.metadata.is_some()
            || a.previous.is_some()
            || !a.exclude.is_empty()
            || a.to_image_base.is_some();
        if changed {
            annotations.insert(FROM_RELEASE.to_string(), info.pull_spec.clone());
        }
        from_name = Some(info.name().to_string());
    }
    if let Some(f) = &a.from_image_stream_file {
        let bytes = std::fs::read(f)
            .with_context(|| format!("--from-image-stream-file {}", f.display()))?;
        let stream = inputs::from_image_stream(&f.display().to_string(), &bytes)?;
        tags.extend(stream.tags);
        annotations.extend(stream.annotations);
        defaults = stream.default_versions;
    }
    for f in &a.mapping_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("--mapping-file {}", f.display()))?;
        for (tag, pullspec) in inputs::parse_mapping(&f.display().to_string(), &text)? {
            tags.insert(
                tag,
                InputTag {
                    pullspec,
                    is_override: false,
                    carried: None,
                },
            );
        }
    }
    for o in &a.overrides {
        let (tag, pullspec) = inputs::parse_override(o)?;
        tags.insert(
            tag,
            InputTag {
                pullspec,
                is_override: true,
                carried: None,
            },
        );
    }
    for t in &a.exclude {
        tags.remove(t);
    }
    if tags.is_empty() {
        bail!("no input images; give --mapping-file, --from-release, --from-image-stream-file or TAG=PULLSPEC arguments");
    }
    if let Some(p) = &a.previous {
        previous = normalise_versions(p, "--previous")?;
    } else {
        previous = normalise_versions(&previous, "previous of --from-release")?;
    }
    if let Some(m) = &a.metadata {
        let v: serde_json::Value =
            serde_json::from_str(m).with_context(|| format!("--metadata '{m}' is not JSON"))?;
        metadata = metadata_from_json("--metadata", &v)?;
    }
    let name = match (given, from_name) {
        (Some(n), _) => n,
        (None, Some(n)) => ReleaseName::parse(&n)?,
        (None, None) => {
            // oc's default: 0.0.1-YYYY-MM-DD-HHMMSS.
            ReleaseName::parse(&format!("0.0.1-{}", payload::new::name_stamp(created)))?
        }
    };
    let req = NewRelease {
        name: name.clone(),
        inputs: tags,
        base,
        previous,
        metadata,
        include: a.include.iter().cloned().collect::<BTreeSet<_>>(),
        allow_missing_images: a.allow_missing_images,
        created,
        annotations,
        default_versions: defaults,
        extra_manifests: Default::default(),
    };
    let jobs = usize::from(a.jobs);
    let bar = AssembleBar::new(a.quiet);
    let built = payload::new::assemble(&sources, &req, jobs, &bar).await;
    bar.finish();
    let built = built?;
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    if !a.quiet {
        eprintln!(
            "Included {} images, {} manifests; pruned {} unreferenced tags{}",
            built.image_references.spec.tags.len(),
            built.manifest_names.len(),
            built.pruned.len(),
            if built.pruned.is_empty() {
                String::new()
            } else {
                format!(" ({})", built.pruned.join(", "))
            }
        );
    }
    let mut pull_spec = None;
    if let (Some(to), false) = (&a.to, a.dry_run) {
        let dst = parse_ref(to)?;
        let tag = match dst.selector() {
            Some(Selector::Tag(t)) => t.clone(),
            None => name.to_string(),
            Some(Selector::Digest(_)) => {
                bail!("--to {to}: name a tag, not a digest; the digest is the payload's own")
            }
        };
        oci::reference::parse_tag(&tag)
            .map_err(|e| anyhow::anyhow!("--to {to}: tag '{tag}': {e}"))?;
        let store = sources.stores().open(&dst, true)?;
        let progress = Arc::new(CopyProgress::new(a.quiet));
        let copier = oci::Copier::new(jobs, a.local.access.retry_times, progress.clone());
        payload::new::push(&built, &copier, &store, &tag).await?;
        progress.finish();
        pull_spec = Some(match &dst {
            ImageRef::Registry { repo, .. } => {
                format!("{}/{}@{}", repo.registry, repo.repository, built.digest)
            }
            ImageRef::Layout { path, .. } => format!("oci:{}@{}", path.display(), built.digest),
        });
    }
    match output {
        Output::Json => print_json(&json!({
            "digest": built.digest.to_string(),
            "name": built.name,
            "created": built.created,
            "pullSpec": pull_spec,
            "pruned": built.pruned,
            "warnings": built.warnings,
        })),
        _ => println!("{} {} {}", built.digest, built.name, built.created),
    }
    Ok(())
}

async fn info(a: InfoArgs, output: Output) -> Result<()> {
    let sources = a.local.sources()?;
    let info = payload::info::load(&sources, &parse_ref(&a.image)?, a.arch.as_deref()).await?;
    match output {
        Output::Json => print_json(&info_json(&info)),
        _ => print!("{}", info.describe(a.commits)),
    }
    Ok(())
}

fn info_json(i: &ReleaseInfo) -> serde_json::Value {
    json!({
        "image": i.image,
        "digest": i.digest.to_string(),
        "contentDigest": i.content_digest.to_string(),
        "listDigest": i.list_digest.as_ref().map(|d| d.to_string()),
        "pullSpec": i.pull_spec,
        "config": i.config.0,
        "metadata": i.metadata,
        "references": i.references,
        "displayVersions": i.versions,
        "manifests": i.manifests().len(),
        "metadataFiles": i.metadata_files(),
        "warnings": i.warnings,
    })
}

async fn extract(a: ExtractArgs, output: Output) -> Result<()> {
    let sources = a.local.sources()?;
    if a.tools || a.command.is_some() {
        return extract_tools(&sources, a, output).await;
    }
    let out = payload::extract::extract(&sources, &parse_ref(&a.image)?, a.arch.as_deref()).await?;
    if let Some(name) = &a.file {
        let f = out.files.get(name).with_context(|| {
            let names: Vec<&str> = out.files.keys().map(String::as_str).collect();
            format!(
                "{}: release-manifests has no file '{name}'; it has: {}",
                a.image,
                names.join(", ")
            )
        })?;
        std::io::stdout().write_all(&f.data)?;
        return Ok(());
    }
    let dir = a.to.as_deref().unwrap_or(Path::new("."));
    payload::extract::write_files(dir, &out.files)?;
    match output {
        Output::Json => print_json(&json!({
            "digest": out.digest.to_string(),
            "created": out.created,
            "to": dir,
            "files": out.files.keys().collect::<Vec<_>>(),
        })),
        _ => println!(
            "Extracted release payload from digest {} created at {} ({} files to {})",
            out.digest,
            out.created,
            out.files.len(),
            dir.display()
        ),
    }
    Ok(())
}

async fn diff(a: DiffArgs, output: Output) -> Result<()> {
    let sources = a.local.sources()?;
    let (from, to) = (parse_ref(&a.from)?, parse_ref(&a.to)?);
    let git = a
        .changelog
        .then(|| GitCache::new(a.local.cache.join("git")));
    let d =
        payload::diff::diff_releases(&sources, &from, &to, a.arch.as_deref(), git, a.rpmdb_diff)
            .await?;
    match output {
        Output::Json => print_json(&d),
        _ => print!("{}", d.markdown()),
    }
    if !d.warnings.is_empty() {
        bail!("{}", d.warnings.join("\n"));
    }
    Ok(())
}
