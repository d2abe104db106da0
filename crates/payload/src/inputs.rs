//! The inputs of `release new`: mapping files, image streams, an existing release, `TAG=PULLSPEC`.

use std::collections::BTreeMap;

use oci::ImageRef;

use crate::error::{invalid, Result};
use crate::imagestream::{self as is, ImageStream};
use crate::info::ReleaseInfo;
use crate::new::InputTag;
use crate::source::PullSpec;
use crate::version::{parse_versions, Versions};

fn check_tag(what: &str, tag: &str) -> Result<()> {
    oci::reference::parse_tag(tag)
        .map(|_| ())
        .map_err(|e| invalid(format!("{what}: tag '{tag}': {e}")))
}

/// Parse a `TAG=PULLSPEC` argument.
pub fn parse_override(arg: &str) -> Result<(String, PullSpec)> {
    let (tag, spec) = arg.split_once('=').ok_or_else(|| {
        invalid(format!(
            "'{arg}': expected TAG=PULLSPEC, e.g. cli=quay.io/okd/scos-content@sha256:..."
        ))
    })?;
    let what = format!("'{arg}'");
    check_tag(&what, tag.trim())?;
    Ok((tag.trim().to_string(), PullSpec::parse(&what, spec)?))
}

/// Parse a mapping file: one `TAG=PULLSPEC` per line; blank lines and `#` comments are skipped.
/// Errors name `file:line`. A tag given twice is an error.
pub fn parse_mapping(file: &str, text: &str) -> Result<Vec<(String, PullSpec)>> {
    let mut out: Vec<(String, PullSpec)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{file}:{}", i + 1);
        let (tag, spec) = parse_override(line).map_err(|e| invalid(format!("{at}: {e}")))?;
        if out.iter().any(|(t, _)| *t == tag) {
            return Err(invalid(format!("{at}: tag '{tag}' is mapped twice")));
        }
        out.push((tag, spec));
    }
    Ok(out)
}

/// What an input image stream contributes.
pub struct StreamInputs {
    /// Its `DockerImage` tags.
    pub tags: BTreeMap<String, InputTag>,
    /// Its annotations, carried onto the release's image-references.
    pub annotations: BTreeMap<String, String>,
    /// Its default component versions (`io.openshift.build.versions`).
    pub default_versions: Versions,
}

/// Inputs from an image stream file (as `--from-image-stream-file`).
pub fn from_image_stream(what: &str, bytes: &[u8]) -> Result<StreamInputs> {
    let stream = ImageStream::parse(what, bytes).map_err(invalid)?;
    let mut inputs = BTreeMap::new();
    for tag in &stream.spec.tags {
        let t = format!("{what}: tag '{}'", tag.name);
        check_tag(what, &tag.name)?;
        let spec = tag.pullspec().ok_or_else(|| {
            invalid(format!(
                "{t} has no DockerImage 'from'; it has not been imported yet"
            ))
        })?;
        inputs.insert(
            tag.name.clone(),
            InputTag {
                pullspec: PullSpec::parse(&t, spec)?,
                is_override: false,
                carried: Some(tag.clone()),
            },
        );
    }
    let defaults = match stream.metadata.annotations.get(is::VERSIONS) {
        Some(v) => parse_versions(what, v)?,
        None => Versions::new(),
    };
    Ok(StreamInputs {
        tags: inputs,
        annotations: stream.metadata.annotations,
        default_versions: defaults,
    })
}

/// Inputs from an existing release: its tags, and the tag of its base image (the tag whose digest equals
/// its `io.openshift.release.base-image-digest` label), if one matches.
pub fn from_release(info: &ReleaseInfo) -> Result<(BTreeMap<String, InputTag>, Option<String>)> {
    let base = info.config.label(is::BASE_DIGEST_LABEL).unwrap_or("");
    let mut inputs = BTreeMap::new();
    let mut base_tag = None;
    for tag in &info.references.spec.tags {
        let what = format!("{}: tag '{}'", info.image, tag.name);
        check_tag(&info.image, &tag.name)?;
        let Some(spec) = tag.pullspec() else { continue };
        let spec = PullSpec::parse(&what, spec)?;
        if !base.is_empty() && spec.digest().is_some_and(|d| d.to_string() == base) {
            base_tag = Some(tag.name.clone());
        }
        inputs.insert(
            tag.name.clone(),
            InputTag {
                pullspec: spec,
                is_override: false,
                carried: Some(tag.clone()),
            },
        );
    }
    Ok((inputs, base_tag))
}

/// How a user names a release or image: `oci:DIR[:TAG|@DIGEST]`, `docker://...`, or a bare pull spec.
pub fn parse_ref(s: &str) -> Result<ImageRef> {
    if s.starts_with("oci:") || s.starts_with("docker://") {
        return Ok(s.parse()?);
    }
    Ok(PullSpec::parse(&format!("'{s}'"), s)?.image_ref())
}
