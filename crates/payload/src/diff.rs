//! Comparing two releases (`release diff`, like `oc adm release info --changelog`): images added,
//! removed, rebuilt without a code change and changed, component version changes, and with a
//! [`GitCache`] the commit log of every changed component. [`diff_releases`] loads two releases
//! and compares them, as `okd-forge release diff` and the server's `/changelog` do.

use std::collections::BTreeMap;
use std::fmt::Write;

use oci::ImageRef;
use serde::Serialize;

use crate::changelog::{github_repo, ChangeCommit, GitCache};
use crate::error::Result;
use crate::imagestream::{self as is, TagReference};
use crate::info::ReleaseInfo;
use crate::rpmdb::PackageDiff;
use crate::source::Sources;

/// One side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Release name.
    pub name: String,
    /// Created.
    pub created: String,
    /// Release digest.
    pub digest: String,
    /// `release.openshift.io/from-release`, if the release was promoted from another.
    #[serde(rename = "promotedFrom", skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<String>,
}

/// A component version that changed or appeared.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentChange {
    /// Key, e.g. `kubernetes`, `machine-os`.
    pub name: String,
    /// Version in the newer release.
    pub version: String,
    /// Version in the older release, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Display name.
    #[serde(rename = "displayName", skip_serializing_if = "String::is_empty")]
    pub display_name: String,
}

/// An image in the diff.
#[derive(Debug, Clone, Serialize)]
pub struct ImageChange {
    /// Tag.
    pub name: String,
    /// Source repository.
    pub path: String,
    /// First 7 characters of the commit.
    #[serde(rename = "shortCommit")]
    pub short_commit: String,
    /// Commit in this release (the older one for removed images).
    pub commit: String,
    /// Commit in the older release, for changed images.
    #[serde(rename = "fromCommit", skip_serializing_if = "String::is_empty")]
    pub from_commit: String,
    /// Pull spec.
    #[serde(rename = "imageRef")]
    pub image_ref: String,
    /// Commits between the two, with `--changelog`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<ChangeCommit>,
    /// Compare link.
    #[serde(rename = "fullChangeLog", skip_serializing_if = "Option::is_none")]
    pub full_change_log: Option<String>,
}

/// The OS of the two releases: the image whose `io.openshift.build.versions` label names
/// `machine-os` (`fedora-coreos`, `stream-coreos`, `rhel-coreos`, `machine-os-content`).
#[derive(Debug, Clone, Serialize)]
pub struct OsChange {
    /// Its tag in the newer release.
    pub tag: String,
    /// `Fedora CoreOS`, `CentOS Stream CoreOS`.
    #[serde(rename = "displayName", skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    /// The `machine-os` version in the newer release.
    pub version: String,
    /// The `machine-os` version in the older release, if it had an OS image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The newer release's OS image.
    #[serde(rename = "imageRef")]
    pub image_ref: String,
    /// The older release's OS image.
    #[serde(rename = "fromImageRef", skip_serializing_if = "Option::is_none")]
    pub from_image_ref: Option<String>,
    /// The packages that changed between the two OS images' rpm databases, when read
    /// ([`os_packages`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<PackageDiff>,
    /// Why there is no package list, when it was asked for.
    #[serde(rename = "packagesNote", skip_serializing_if = "Option::is_none")]
    pub packages_note: Option<String>,
}

impl OsChange {
    /// Whether the OS image changed.
    pub fn changed(&self) -> bool {
        self.from_image_ref.as_deref() != Some(self.image_ref.as_str())
    }
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDiff {
    /// Older release.
    pub from: Side,
    /// Newer release.
    pub to: Side,
    /// Whether the newer release lists the older one in `previous`.
    #[serde(rename = "upgradeFrom")]
    pub upgrade_from: bool,
    /// Component versions that changed or appeared.
    pub components: Vec<ComponentChange>,
    /// The OS, when the newer release has an OS image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<OsChange>,
    /// Images only in the newer release.
    #[serde(rename = "newImages")]
    pub new_images: Vec<ImageChange>,
    /// Images only in the older release.
    #[serde(rename = "removedImages")]
    pub removed_images: Vec<ImageChange>,
    /// Same commit, new digest.
    #[serde(rename = "rebuiltImages")]
    pub rebuilt_images: Vec<ImageChange>,
    /// New commit.
    #[serde(rename = "updatedImages")]
    pub updated_images: Vec<ImageChange>,
    /// Repositories whose commits could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl ImageChange {
    /// The first 7 characters of [`ImageChange::from_commit`].
    pub fn short_from_commit(&self) -> String {
        short(&self.from_commit)
    }
}

fn side(info: &ReleaseInfo) -> Side {
    Side {
        name: info.name().to_string(),
        created: info.config.created().to_string(),
        digest: info.digest.to_string(),
        promoted_from: info
            .references
            .metadata
            .annotations
            .get(is::FROM_RELEASE)
            .cloned(),
    }
}

fn image(tag: &TagReference) -> ImageChange {
    let commit = tag.annotation(is::COMMIT_ID).to_string();
    ImageChange {
        name: tag.name.clone(),
        path: tag.annotation(is::SOURCE_LOCATION).to_string(),
        short_commit: commit.chars().take(7).collect(),
        commit,
        from_commit: String::new(),
        image_ref: tag.pullspec().unwrap_or("").to_string(),
        commits: Vec::new(),
        full_change_log: None,
    }
}

/// Compare `from` → `to`. With `git`, read each changed component's commit log; a repository that
/// cannot be read becomes a warning.
pub fn diff<'a>(from: &'a ReleaseInfo, to: &'a ReleaseInfo, git: Option<&GitCache>) -> ReleaseDiff {
    let tags = |i: &'a ReleaseInfo| -> BTreeMap<&'a str, &'a TagReference> {
        i.references
            .spec
            .tags
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect()
    };
    let (old, new) = (tags(from), tags(to));
    let mut d = ReleaseDiff {
        from: side(from),
        to: side(to),
        upgrade_from: to
            .metadata
            .as_ref()
            .is_some_and(|m| m.previous.iter().any(|p| p == from.name())),
        components: Vec::new(),
        os: os_change(from, to),
        new_images: Vec::new(),
        removed_images: Vec::new(),
        rebuilt_images: Vec::new(),
        updated_images: Vec::new(),
        warnings: Vec::new(),
    };
    for (key, v) in &to.versions {
        let before = from.versions.get(key).map(|c| c.version.clone());
        if before.as_deref() != Some(v.version.as_str()) {
            d.components.push(ComponentChange {
                name: key.clone(),
                version: v.version.clone(),
                from: before,
                display_name: v.display_name.clone(),
            });
        }
    }
    for (name, t) in &new {
        match old.get(name) {
            None => d.new_images.push(image(t)),
            Some(o) if o.pullspec() == t.pullspec() => {}
            Some(o) => {
                let mut c = image(t);
                let before = o.annotation(is::COMMIT_ID);
                if !before.is_empty() && before == c.commit {
                    d.rebuilt_images.push(c);
                } else {
                    c.from_commit = before.to_string();
                    d.updated_images.push(c);
                }
            }
        }
    }
    d.removed_images = old
        .iter()
        .filter(|(n, _)| !new.contains_key(*n))
        .map(|(_, t)| image(t))
        .collect();
    if let Some(git) = git {
        // One log per (repository, range), shared by every image built from it.
        let mut logs: BTreeMap<(String, String, String), Result<Vec<ChangeCommit>, String>> =
            BTreeMap::new();
        for c in &mut d.updated_images {
            if c.path.is_empty() || c.from_commit.is_empty() || c.commit.is_empty() {
                continue;
            }
            if let Some(gh) = github_repo(&c.path) {
                c.full_change_log = Some(gh.compare_url(&c.from_commit, &c.commit));
            }
            let key = (c.path.clone(), c.from_commit.clone(), c.commit.clone());
            let log = logs.entry(key).or_insert_with(|| {
                git.log(&c.path, &c.from_commit, &c.commit)
                    .map(|l| l.commits)
                    .map_err(|e| e.to_string())
            });
            match log {
                Ok(commits) => c.commits = commits.clone(),
                Err(e) => {
                    let w = format!("could not load commits for {} ({}): {e}", c.name, c.path);
                    if !d.warnings.contains(&w) {
                        d.warnings.push(w);
                    }
                }
            }
        }
    }
    d
}

/// The tag of `info`'s OS image (the first whose versions label names `machine-os`), with its
/// version and display name.
fn os_tag(info: &ReleaseInfo) -> Option<(&TagReference, String, String)> {
    info.references.spec.tags.iter().find_map(|t| {
        let versions = t.annotation(is::VERSIONS);
        let version = versions
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("machine-os="))?;
        let display = t
            .annotation(is::DISPLAY_NAMES)
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("machine-os="))
            .unwrap_or("");
        Some((t, version.to_string(), display.to_string()))
    })
}

fn os_change(from: &ReleaseInfo, to: &ReleaseInfo) -> Option<OsChange> {
    let (tag, version, display_name) = os_tag(to)?;
    let before = os_tag(from);
    Some(OsChange {
        tag: tag.name.clone(),
        display_name,
        version,
        from: before.as_ref().map(|(_, v, _)| v.clone()),
        image_ref: tag.pullspec().unwrap_or("").to_string(),
        from_image_ref: before.map(|(t, _, _)| t.pullspec().unwrap_or("").to_string()),
        packages: None,
        packages_note: None,
    })
}

/// Loads releases `from` and `to` (for a manifest list, the child for `arch`, see
/// [`crate::info::load`]) and compares them with [`diff`]; the git work runs on a blocking
/// thread. With `packages`, a changed OS image's packages are compared too ([`os_packages`]).
pub async fn diff_releases(
    sources: &Sources,
    from: &ImageRef,
    to: &ImageRef,
    arch: Option<&str>,
    git: Option<GitCache>,
    packages: bool,
) -> Result<ReleaseDiff> {
    let (from, to) = tokio::try_join!(
        crate::info::load(sources, from, arch),
        crate::info::load(sources, to, arch),
    )?;
    let mut d = tokio::task::spawn_blocking(move || diff(&from, &to, git.as_ref()))
        .await
        .map_err(|e| crate::error::Error::Invalid(format!("comparing the releases failed: {e}")))?;
    if packages {
        os_packages(sources, &mut d, arch).await;
    }
    Ok(d)
}

/// Fills in the package difference of `d`'s OS images, when the OS image changed: each image's
/// rpm database ([`crate::rpmdb::RPMDB_PATHS`]) is read (for a list, the child for `arch`). An
/// image without one, or one that cannot be read, leaves a note instead; nothing fails.
pub async fn os_packages(sources: &Sources, d: &mut ReleaseDiff, arch: Option<&str>) {
    let Some(os) = d.os.as_mut() else { return };
    let Some(from) = os.from_image_ref.clone().filter(|_| os.changed()) else {
        return;
    };
    let read = |spec: String| async move {
        let what = format!("OS image {spec}");
        crate::rpmdb::packages_of(sources, &what, &spec, arch).await
    };
    match tokio::try_join!(read(from), read(os.image_ref.clone())) {
        Ok((Some(old), Some(new))) => os.packages = Some(crate::rpmdb::diff(&old, &new)),
        Ok((old, _)) => {
            let which = if old.is_none() {
                &os.from_image_ref
            } else {
                &Some(os.image_ref.clone())
            };
            os.packages_note = Some(format!(
                "{} has no rpm database ({}), so its packages are not compared",
                which.as_deref().unwrap_or(""),
                crate::rpmdb::RPMDB_PATHS
                    .map(|p| format!("/{p}"))
                    .join(", ")
            ));
        }
        Err(e) => os.packages_note = Some(format!("the packages could not be compared: {e}")),
    }
}

impl ReleaseDiff {
    /// The changelog as Markdown, in the release-controller's shape.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# {}\n", self.to.name);
        let _ = writeln!(s, "Created: {}\n", self.to.created);
        let _ = writeln!(s, "Image Digest: `{}`\n", self.to.digest);
        if let Some(p) = &self.to.promoted_from {
            let _ = writeln!(s, "Promoted from {p}\n");
        }
        let _ = writeln!(s, "## Changes from {}\n", self.from.name);
        if !self.components.is_empty() {
            let _ = writeln!(s, "### Components\n");
            for c in &self.components {
                let name = if c.display_name.is_empty() {
                    &c.name
                } else {
                    &c.display_name
                };
                match &c.from {
                    Some(f) => {
                        let _ = writeln!(s, "* {name} {} (upgraded from {f})", c.version);
                    }
                    None => {
                        let _ = writeln!(s, "* {name} {}", c.version);
                    }
                }
            }
            s.push('\n');
        }
        // The OS section when the OS image changed (the components already list its version).
        if let Some(os) = self.os.as_ref().filter(|o| o.changed()) {
            let name = if os.display_name.is_empty() {
                "OS"
            } else {
                os.display_name.as_str()
            };
            let _ = writeln!(s, "### OS\n");
            match &os.from {
                Some(f) => {
                    let _ = writeln!(s, "* {name} {} (upgraded from {f})", os.version);
                }
                None => {
                    let _ = writeln!(s, "* {name} {} (new)", os.version);
                }
            }
            if let Some(p) = &os.packages {
                let _ = writeln!(
                    s,
                    "* Packages: {} changed, {} added, {} removed",
                    p.changed.len(),
                    p.added.len(),
                    p.removed.len()
                );
                for c in &p.changed {
                    let _ = writeln!(s, "  * {}.{} {} → {}", c.name, c.arch, c.from, c.to);
                }
                for a in &p.added {
                    let _ = writeln!(s, "  * added {a}");
                }
                for r in &p.removed {
                    let _ = writeln!(s, "  * removed {r}");
                }
            }
            if let Some(n) = &os.packages_note {
                let _ = writeln!(s, "* {n}");
            }
            s.push('\n');
        }
        let link = |c: &ImageChange| match github_repo(&c.path) {
            Some(gh) if !c.commit.is_empty() => {
                format!(
                    "[{}]({}) git [{}]({})",
                    c.name,
                    c.path,
                    c.short_commit,
                    gh.commit_url(&c.commit)
                )
            }
            _ if !c.path.is_empty() => format!("[{}]({}) {}", c.name, c.path, c.short_commit),
            _ => c.name.clone(),
        };
        for (title, list) in [
            ("New images", &self.new_images),
            ("Removed images", &self.removed_images),
            ("Rebuilt images without code change", &self.rebuilt_images),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(s, "### {title}\n");
            for c in list {
                let _ = writeln!(s, "* {} `{}`", link(c), c.image_ref);
            }
            s.push('\n');
        }
        for c in &self.updated_images {
            let _ = match github_repo(&c.path) {
                Some(gh) => writeln!(s, "### [{}]({gh}/tree/{})\n", c.name, c.commit),
                None => writeln!(s, "### {}\n", c.name),
            };
            for commit in &c.commits {
                s.push_str("* ");
                for (key, url) in &commit.issues {
                    let _ = write!(s, "[{key}]({url}): ");
                }
                for (id, url) in &commit.bugs {
                    let _ = write!(s, "[Bug {id}]({url}): ");
                }
                s.push_str(&escape_html(&commit.subject));
                match (commit.pull_id, &commit.pull_url) {
                    (Some(n), Some(u)) => {
                        let _ = write!(s, " [#{n}]({u})");
                    }
                    (Some(n), None) => {
                        let _ = write!(s, " (#{n})");
                    }
                    _ => {}
                }
                s.push('\n');
            }
            match &c.full_change_log {
                Some(u) => {
                    let _ = writeln!(s, "* [Full changelog]({u})\n");
                }
                None => {
                    let _ = writeln!(s, "* {} → {}\n", c.short_from_commit(), c.short_commit);
                }
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "> Could not load commits: {w}\n");
        }
        s
    }
}

/// Subjects are written by anyone who opens a pull request: keep them from adding HTML to a page that
/// renders this Markdown.
fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn short(c: &str) -> String {
    c.chars().take(7).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_sections_link_the_tree_pull_requests_and_escape_subjects() {
        let side = |name: &str| Side {
            name: name.into(),
            created: "2026-01-01T00:00:00Z".into(),
            digest: "sha256:00".into(),
            promoted_from: None,
        };
        let commit = ChangeCommit {
            bugs: Default::default(),
            issues: [(
                "OCPBUGS-1".to_string(),
                "https://issues.redhat.com/browse/OCPBUGS-1".to_string(),
            )]
            .into(),
            subject: "fix <script> & more".into(),
            pull_id: Some(5),
            pull_url: Some("https://github.com/openshift/oc/pull/5".into()),
            commit_id: "b".repeat(40),
            commit_url: None,
        };
        let d = ReleaseDiff {
            from: side("4.17.0"),
            to: side("4.17.1"),
            upgrade_from: true,
            components: vec![],
            os: None,
            new_images: vec![],
            removed_images: vec![],
            rebuilt_images: vec![],
            updated_images: vec![ImageChange {
                name: "cli".into(),
                path: "https://github.com/openshift/oc".into(),
                short_commit: "bbbbbbb".into(),
                commit: "b".repeat(40),
                from_commit: "a".repeat(40),
                image_ref: "q.io/x@sha256:11".into(),
                commits: vec![commit],
                full_change_log: Some("https://github.com/openshift/oc/compare/a...b".into()),
            }],
            warnings: vec![],
        };
        let md = d.markdown();
        let tree = format!(
            "### [cli](https://github.com/openshift/oc/tree/{})",
            "b".repeat(40)
        );
        assert!(md.contains(&tree), "{md}");
        assert!(md.contains("* [OCPBUGS-1](https://issues.redhat.com/browse/OCPBUGS-1): fix &lt;script&gt; &amp; more [#5](https://github.com/openshift/oc/pull/5)\n"), "{md}");
        assert!(
            md.contains("* [Full changelog](https://github.com/openshift/oc/compare/a...b)\n"),
            "{md}"
        );
    }
}
