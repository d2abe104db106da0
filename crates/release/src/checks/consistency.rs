//! The `consistency` check: the payload can be read as `oc adm release info` and the CVO read it,
//! every image it references exists and can be read, and its image-references lists every image
//! that its manifests use from its content repositories.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{stream, StreamExt};
use oci::manifest::Parsed;
use oci::{Digest, ImageRef};
use payload::info::ReleaseInfo;
use payload::metadata::KIND;
use payload::source::{PullSpec, Sources};

use super::{images, named, platform, reason, CheckResult, Findings, CONSISTENCY, PARALLEL};

/// Check that the payload `payload` is consistent:
/// - its manifest parses, and its config (each child's, for a manifest list, all of whose children
///   must carry the same release layer);
/// - its top layer has `release-manifests/image-references` and `release-metadata`, which parse and
///   agree (kind `cincinnati-metadata-v0`, version = image-references name), read by
///   [`payload::info::load`]; its other warnings become notes;
/// - no file of `release-manifests/` comes only from a lower layer (the CVO would still apply it),
///   read by [`payload::extract::extract`];
/// - every image-references tag names an image by digest that exists in the local store or its
///   registry, whose manifest parses (for a list, each child's), whose config parses and whose
///   layers are all present;
/// - every `REPO@sha256:…` that a manifest in `release-manifests/` uses, where REPO is a repository
///   of image-references (the payload's content repositories), is the pull spec of a tag.
pub async fn consistency(sources: &Sources, payload: &ImageRef) -> CheckResult {
    let mut f = Findings::default();
    let Some(info) = read_payload(sources, payload, &mut f).await else {
        return CheckResult::new(CONSISTENCY, f.problems, f.notes);
    };

    // What the CVO applies: release-manifests/ over all layers.
    match payload::extract::extract(sources, payload, None).await {
        Ok(all) => {
            for name in all.files.keys().filter(|n| !info.files.contains_key(*n)) {
                f.problem(format!(
                    "{payload}: release-manifests/{name} is in a lower layer, not in the top layer that `oc adm release info` reads; the CVO would still apply it"
                ));
            }
            complete(&info, &all.files, &mut f);
        }
        Err(e) => {
            f.problem(named(&payload.to_string(), e));
            complete(&info, &info.files, &mut f);
        }
    }

    let tags = &info.references.spec.tags;
    let mut seen = BTreeSet::new();
    for t in tags {
        if !seen.insert(t.name.as_str()) {
            f.problem(format!(
                "image-references lists tag '{}' more than once",
                t.name
            ));
        }
    }
    // The futures are made before they are streamed: a closure in the stream's type would keep
    // the check's future from being Send for every lifetime (the controller boxes it).
    let reads: Vec<_> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| async move { (i, component(sources, &t.name, t.pullspec()).await) })
        .collect();
    let mut results: Vec<(usize, Findings)> = stream::iter(reads)
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    for (_, r) in results {
        f.extend(r);
    }
    f.note(format!(
        "{} images in image-references, {} manifest files in release-manifests",
        tags.len(),
        info.manifests().len()
    ));
    CheckResult::new(CONSISTENCY, f.problems, f.notes)
}

/// Read the payload's manifest and config (every child's, for a list) and its top layer; `None`
/// (with the problem recorded) if the payload cannot be read as a release.
async fn read_payload(
    sources: &Sources,
    payload: &ImageRef,
    f: &mut Findings,
) -> Option<ReleaseInfo> {
    let what = payload.to_string();
    let top = match sources.find_ref(&what, payload).await {
        Ok(t) => t,
        Err(e) => {
            f.problem(named(&what, e));
            return None;
        }
    };
    match top.manifest.parse() {
        Err(e) => {
            f.problem(format!("{what}: the manifest does not parse: {e}"));
            return None;
        }
        Ok(Parsed::Image { .. }) => {}
        Ok(Parsed::Index { manifests }) => {
            // Every child carries the same release layer (oc adds one layer to each base child).
            let mut release_layers: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
            for d in &manifests {
                let who = format!("{what} ({} {})", platform(d), d.digest);
                let child = match sources.child(&who, &top, d).await {
                    Ok(c) => c,
                    Err(e) => {
                        f.problem(named(&who, e));
                        continue;
                    }
                };
                match sources.config(&who, &child).await {
                    Ok((_, layers)) => match layers.last() {
                        Some(l) => release_layers
                            .entry(l.digest.clone())
                            .or_default()
                            .push(platform(d)),
                        None => f.problem(format!("{who}: the image has no layers")),
                    },
                    Err(e) => f.problem(named(&who, e)),
                }
            }
            if release_layers.len() > 1 {
                let by: Vec<String> = release_layers
                    .iter()
                    .map(|(l, p)| format!("{} in {l}", p.join(", ")))
                    .collect();
                f.problem(format!(
                    "{what}: the architectures carry different release layers, so different release-manifests: {}",
                    by.join("; ")
                ));
            }
        }
    }
    let info = match payload::info::load(sources, payload, None).await {
        Ok(i) => i,
        Err(e) => {
            f.problem(named(&what, e));
            return None;
        }
    };
    match &info.metadata {
        None => f.problem(format!(
            "{what}: the top layer has no release-manifests/release-metadata; the CVO refuses the payload"
        )),
        Some(m) => {
            if m.kind != KIND {
                f.problem(format!(
                    "{what}: release-metadata has kind '{}'; the CVO and Cincinnati accept only {KIND}",
                    m.kind
                ));
            }
            if m.version != info.references.metadata.name {
                f.problem(format!(
                    "{what}: release-metadata version '{}' differs from image-references name '{}'; the CVO refuses the payload",
                    m.version, info.references.metadata.name
                ));
            }
        }
    }
    // info's other warnings are notes; the two about release-metadata's kind and version (which
    // start "release-metadata ") are the problems above.
    for w in info
        .warnings
        .iter()
        .filter(|w| !w.starts_with("release-metadata "))
    {
        f.note(format!("{what}: {w}"));
    }
    Some(info)
}

/// One image-references tag: its pull spec names an image by digest that exists, whose manifest
/// (each child's), config and layers can be read.
async fn component(sources: &Sources, tag: &str, spec: Option<&str>) -> Findings {
    let mut f = Findings::default();
    let Some(spec) = spec else {
        f.problem(format!(
            "tag '{tag}': image-references gives no DockerImage pull spec for it"
        ));
        return f;
    };
    let who = super::who(tag, spec, None);
    let pull = match PullSpec::parse(&who, spec) {
        Ok(p) => p,
        Err(e) => {
            f.problem(named(&who, e));
            return f;
        }
    };
    if pull.digest().is_none() {
        f.problem(format!(
            "{who}: not a pull spec by digest; a payload must pin its images (REPO@sha256:…)"
        ));
    }
    let found = match sources.find(&who, &pull).await {
        Ok(found) => found,
        Err(e) => {
            f.problem(format!(
                "{who}: not found in the local store or its registry: {}",
                reason(&who, e)
            ));
            return f;
        }
    };
    let (images, found_problems) = images(sources, tag, spec, found, true).await;
    f.extend(found_problems);
    for image in images {
        let layers = match sources.config(&image.who, &image.found).await {
            Ok((_, layers)) => layers,
            Err(e) => {
                f.problem(named(&image.who, e));
                continue;
            }
        };
        for l in &layers {
            match image.found.store.has_blob(l).await {
                Ok(true) => {}
                Ok(false) => f.problem(format!(
                    "{}: layer {} is missing from {}",
                    image.who,
                    l.digest,
                    image.found.store.describe()
                )),
                Err(e) => f.problem(format!("{}: layer {}: {e}", image.who, l.digest)),
            }
        }
    }
    f
}

/// Every `REPO@sha256:…` that a manifest of `files` uses, where REPO is a repository of
/// image-references, must be the pull spec of one of its tags.
fn complete(
    info: &ReleaseInfo,
    files: &BTreeMap<String, payload::manifests::ManifestFile>,
    f: &mut Findings,
) {
    let mut repos = BTreeSet::new();
    let mut listed = BTreeSet::new();
    for spec in info
        .references
        .spec
        .tags
        .iter()
        .filter_map(|t| t.pullspec())
    {
        if let Ok(p) = PullSpec::parse("image-references", spec) {
            if let Some(d) = p.digest() {
                listed.insert(p.by_digest(d));
            }
            repos.insert(format!("{}/{}", p.repo.registry, p.repo.repository));
        }
    }
    for file in files
        .values()
        .filter(|m| payload::manifests::is_manifest(&m.name))
    {
        let text = String::from_utf8_lossy(&file.data);
        let mut reported = BTreeSet::new();
        for reference in digest_references(&text) {
            let Ok(p) = PullSpec::parse(&file.name, &reference) else {
                continue;
            };
            let repo = format!("{}/{}", p.repo.registry, p.repo.repository);
            let Some(d) = p.digest() else { continue };
            let spec = p.by_digest(d);
            if repos.contains(&repo) && !listed.contains(&spec) && reported.insert(spec.clone()) {
                f.problem(format!(
                    "release-manifests/{} uses {spec}, which is not the image of any tag in image-references (incomplete image-references: the cluster would run an image the payload does not list)",
                    file.name
                ));
            }
        }
    }
}

/// The `NAME@sha256:<64 hex>` references in `text`: the digest with the name written before it
/// (the characters of a repository, host and port; a `scheme://` prefix is dropped).
fn digest_references(text: &str) -> Vec<String> {
    const AT: &str = "@sha256:";
    let b = text.as_bytes();
    let name_char =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'/' | b':');
    let mut out = Vec::new();
    for (at, _) in text.match_indices(AT) {
        let hex_start = at + AT.len();
        let hex_end = hex_start + 64;
        let hex_ok = b.get(hex_start..hex_end).is_some_and(|h| {
            h.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        }) && !b.get(hex_end).is_some_and(|c| c.is_ascii_hexdigit());
        if !hex_ok {
            continue;
        }
        let mut start = at;
        while start > 0 && name_char(b[start - 1]) {
            start -= 1;
        }
        let name = &text[start..at];
        let name = name.rsplit_once("://").map_or(name, |(_, n)| n);
        let name = name.trim_start_matches([':', '/']);
        if name.contains('/') {
            out.push(format!("{name}@{}", &text[at + 1..hex_end]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references_by_digest_however_they_are_quoted() {
        let h = "0123456789abcdef".repeat(4);
        let text = format!(
            "image: quay.io/okd/scos-content@sha256:{h}\n\
             \"img\":\"registry.example.com:5000/a/b@sha256:{h}\",\n\
             - --image=docker://quay.io/x/y@sha256:{h}\n\
             short: quay.io/x/y@sha256:abc\n\
             long: quay.io/x/y@sha256:{h}0\n\
             bare: @sha256:{h}\n"
        );
        assert_eq!(
            digest_references(&text),
            [
                format!("quay.io/okd/scos-content@sha256:{h}"),
                format!("registry.example.com:5000/a/b@sha256:{h}"),
                format!("quay.io/x/y@sha256:{h}"),
            ]
        );
    }
}
