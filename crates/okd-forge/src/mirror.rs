//! `okd-forge release mirror`: copy a release and every image it names to another registry (or a
//! directory, for a disconnected transfer), and print the mirror rules clusters need, as
//! `oc adm release mirror` does.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::HumanBytes;
use oci::{Copier, Stores};
use payload::inputs::parse_ref;
use payload::mirror::{self, Destination, MirrorReport, RulesKind};
use payload::source::Sources;
use serde_json::json;

use crate::image::{print_json, Access};
use crate::progress::CopyProgress;
use crate::Output;

/// Arguments of `release mirror`.
#[derive(Args)]
pub struct MirrorArgs {
    /// The release: docker://HOST/REPO[:TAG|@DIGEST], HOST/REPO[:TAG|@DIGEST] or oci:DIR[:TAG|@DIGEST].
    #[arg(long, value_name = "REF", required_unless_present = "from_dir")]
    from: Option<String>,
    /// The repository to mirror to, without a tag (HOST/REPO or docker://HOST/REPO). Component X
    /// goes to REPO:<version><arch>-X, the release to REPO:<version><arch>.
    #[arg(long, value_name = "REPO", required_unless_present = "to_dir")]
    to: Option<String>,
    /// Put the release image here instead (HOST/REPO[:TAG]; the tag defaults to <version><arch>).
    #[arg(long, value_name = "REF", conflicts_with = "to_dir")]
    to_release_image: Option<String>,
    /// Mirror into this directory instead (an OCI layout plus the plan, okd-forge-mirror.json), to
    /// carry to a disconnected network and upload there with --from-dir.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["to", "from_dir"])]
    to_dir: Option<PathBuf>,
    /// Upload a directory written by --to-dir to --to (instead of reading --from).
    #[arg(long, value_name = "DIR", conflicts_with = "from")]
    from_dir: Option<PathBuf>,
    /// Blob transfers to run at once with any one registry (as oc's --max-per-registry).
    #[arg(long, value_name = "N", default_value_t = 6,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_per_registry: u16,
    /// Images to work on at once (their blobs share the limits above).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// Print an ImageContentSourcePolicy and imageContentSources instead of an ImageDigestMirrorSet
    /// and imageDigestSources (for clusters older than 4.13).
    #[arg(long)]
    icsp: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    access: Access,
}

/// Run `release mirror`.
pub async fn mirror(a: MirrorArgs, output: Output) -> Result<()> {
    let stores = Arc::new(Stores::new(a.access.options(None)?));
    let sources = Sources::new(stores.clone(), None, None)?;
    let plan = match (&a.from_dir, &a.from) {
        (Some(dir), _) => mirror::plan_from_dir(dir)?,
        (None, Some(from)) => mirror::plan(&sources, &parse_ref(from)?).await?,
        (None, None) => bail!("give --from REF, or --from-dir DIR"),
    };
    let dst = match (&a.to_dir, &a.to) {
        (Some(dir), _) => Destination::Dir(dir.clone()),
        (None, Some(to)) => {
            let release = a.to_release_image.as_deref().map(repo_ref).transpose()?;
            Destination::registry(repo_ref(to)?, release, &plan)?
        }
        (None, None) => bail!("give --to REPO, or --to-dir DIR"),
    };
    if !a.quiet {
        eprintln!(
            "info: Mirroring {} images to {} ...",
            plan.images.len() + 1,
            match &dst {
                Destination::Registry { content, .. } => mirror::repository_name(content),
                Destination::Dir(d) => format!("oci:{}", d.display()),
            }
        );
    }
    let per_registry = usize::from(a.max_per_registry);
    let progress = Arc::new(CopyProgress::new(a.quiet));
    // Four registries at full speed at once, as oc's default --max-registry.
    let copier = Copier::new(per_registry * 4, a.access.retry_times, progress.clone())
        .with_registry_limit(per_registry);
    let report = mirror::mirror(&plan, &stores, &copier, &dst, a.jobs.into()).await;
    progress.finish();
    let report = report?;
    let kind = if a.icsp {
        RulesKind::Icsp
    } else {
        RulesKind::Idms
    };
    match output {
        Output::Json => print_json(&summary_json(&report, &dst, &plan, kind)),
        Output::Text | Output::Markdown => print!("{}", text(&report, &dst, &plan, &a, kind)),
    }
    Ok(())
}

/// A `--to`/`--to-release-image` value as a registry reference (`docker://` optional).
fn repo_ref(s: &str) -> Result<oci::ImageRef> {
    if s.starts_with("oci:") {
        bail!("{s}: mirror to a registry repository (HOST/REPO), or to a directory with --to-dir");
    }
    let with = if s.starts_with("docker://") {
        s.to_string()
    } else {
        format!("docker://{s}")
    };
    Ok(with.parse()?)
}

fn summary_line(r: &MirrorReport) -> String {
    let t = &r.totals;
    let secs = r.seconds.max(0.001);
    format!(
        "Mirrored {} images ({} manifests): {} blobs copied ({}), {} already there, {} mounted; {:.1}s, {}/s",
        r.images.len() + 1,
        r.manifests,
        t.blobs_copied,
        HumanBytes(t.bytes_copied),
        t.blobs_skipped,
        t.blobs_mounted,
        secs,
        HumanBytes((t.bytes_copied as f64 / secs) as u64)
    )
}

fn text(
    r: &MirrorReport,
    dst: &Destination,
    plan: &mirror::Plan,
    a: &MirrorArgs,
    kind: RulesKind,
) -> String {
    let mut s = format!("{}\n", summary_line(r));
    s.push_str(&format!(
        "\nSuccess\nUpdate image:  {}\n",
        dst.release_ref(plan)
    ));
    match dst {
        Destination::Registry { .. } => {
            if let Some(to) = &a.to {
                s.push_str(&format!("Mirror prefix: {to}\n"));
            }
            if let Some(rel) = &a.to_release_image {
                s.push_str(&format!("Mirror prefix: {rel}\n"));
            }
            s.push_str(&r.rules.yaml(kind));
        }
        Destination::Dir(d) => {
            s.push_str(&format!(
                "\nTo upload local images to a registry, run:\n\n    okd-forge release mirror --from-dir={} --to=REGISTRY/REPOSITORY\n\n",
                d.display()
            ));
        }
    }
    s
}

fn summary_json(
    r: &MirrorReport,
    dst: &Destination,
    plan: &mirror::Plan,
    kind: RulesKind,
) -> serde_json::Value {
    let t = &r.totals;
    json!({
        "version": r.version,
        "digest": r.release.digest.to_string(),
        "releaseImage": dst.release_ref(plan),
        "images": r.images.len() + 1,
        "manifests": r.manifests,
        "blobs": t.blobs_copied + t.blobs_skipped + t.blobs_mounted,
        "blobsCopied": t.blobs_copied,
        "blobsSkipped": t.blobs_skipped,
        "blobsMounted": t.blobs_mounted,
        "bytesCopied": t.bytes_copied,
        "seconds": r.seconds,
        "mirrored": std::iter::once(&r.release).chain(&r.images).collect::<Vec<_>>(),
        "mirrorRules": {
            "kind": match kind { RulesKind::Idms => "ImageDigestMirrorSet", RulesKind::Icsp => "ImageContentSourcePolicy" },
            "rules": r.rules.rules,
        },
    })
}
