//! Built-in blocking checks that the release controller runs against every new payload, with no
//! user script: [`consistency`] (the payload and every image it references can be read, and its
//! image-references lists every image its manifests use) and [`base_image_policy`] (every component
//! image's OS base is allowed by a [`Policy`], and no RHEL-only content is present).
//!
//! Both read the payload with [`payload::info::load`] and each component image once, several at a
//! time; they never fail or panic: whatever cannot be read is a problem of the [`CheckResult`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use oci::{Layout, RegistryOptions, Stores};
//! use payload::source::Sources;
//! use release::checks::{self, Policy};
//!
//! let store = Layout::open("var/store")?;
//! let sources = Sources::new(Arc::new(Stores::new(RegistryOptions::default())), Some(store), None)?;
//! let payload = "oci:var/store:4.17.0-0.okd-scos-2026-11-24-101500".parse()?;
//! for result in [
//!     checks::consistency(&sources, &payload).await,
//!     checks::base_image_policy(&sources, &payload, &Policy::default()).await,
//! ] {
//!     println!("{}: {}", result.name, if result.passed { "passed" } else { "failed" });
//!     for p in &result.problems {
//!         println!("  {p}");
//!     }
//! }
//! # Ok(()) }
//! ```

mod base_image;
mod consistency;
mod rootfs;

use oci::manifest::Parsed;
use oci::Descriptor;
use payload::source::{child_arch, Found, Sources};
use serde::Serialize;

pub use base_image::base_image_policy;
/// The policy is part of the configuration; see there.
pub use build::config::policy;
pub use consistency::consistency;
pub use policy::{Policy, Rule};

/// The name of the [`consistency`] check.
pub const CONSISTENCY: &str = "consistency";
/// The name of the [`base_image_policy`] check.
pub const BASE_IMAGE_POLICY: &str = "base-image-policy";

/// How many component images a check reads at once.
pub const PARALLEL: usize = 6;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// [`CONSISTENCY`] or [`BASE_IMAGE_POLICY`].
    pub name: &'static str,
    /// No problems: the payload passes this check.
    pub passed: bool,
    /// What fails the check; each names the tag, the image and the evidence.
    pub problems: Vec<String>,
    /// What is worth knowing but does not fail it (e.g. images without os-release).
    pub notes: Vec<String>,
}

impl CheckResult {
    fn new(name: &'static str, problems: Vec<String>, notes: Vec<String>) -> CheckResult {
        CheckResult {
            name,
            passed: problems.is_empty(),
            problems,
            notes,
        }
    }
}

/// Problems and notes found about one part of a payload.
#[derive(Default)]
struct Findings {
    problems: Vec<String>,
    notes: Vec<String>,
}

impl Findings {
    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    fn extend(&mut self, other: Findings) {
        self.problems.extend(other.problems);
        self.notes.extend(other.notes);
    }
}

/// An error about `who` without its leading `who: ` (errors of [`Sources`] start with the name
/// they were given).
fn reason(who: &str, e: impl std::fmt::Display) -> String {
    let e = e.to_string();
    match e.strip_prefix(who).and_then(|r| r.strip_prefix(": ")) {
        Some(rest) => rest.to_string(),
        None => e,
    }
}

/// An error about `who`, as `who: reason`.
fn named(who: &str, e: impl std::fmt::Display) -> String {
    format!("{who}: {}", reason(who, e))
}

/// How messages name an image: `tag 'cli' (REPO@sha256:…)`, or for a list child
/// `tag 'cli' (REPO@sha256:…, linux/arm64 sha256:…)`.
fn who(tag: &str, spec: &str, child: Option<&Descriptor>) -> String {
    match child {
        None => format!("tag '{tag}' ({spec})"),
        Some(d) => format!("tag '{tag}' ({spec}, {} {})", platform(d), d.digest),
    }
}

/// `os/architecture[/variant]` of a list child.
fn platform(d: &Descriptor) -> String {
    let field = |k: &str| {
        d.platform
            .as_ref()
            .and_then(|p| p.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    match field("variant") {
        v if v.is_empty() => format!("{}/{}", field("os"), field("architecture")),
        v => format!("{}/{}/{v}", field("os"), field("architecture")),
    }
}

/// One image of a component: the image itself, or one child of its manifest list.
struct Image {
    /// How messages name it (see [`who`]).
    who: String,
    /// Its manifest and store.
    found: Found,
}

/// The images the manifest of `tag` (pull spec `spec`) stands for: itself, or each child of a
/// list (attestation entries, platform `unknown`, only with `attestations`). A manifest that does
/// not parse and children that cannot be read are problems.
async fn images(
    sources: &Sources,
    tag: &str,
    spec: &str,
    found: Found,
    attestations: bool,
) -> (Vec<Image>, Findings) {
    let mut findings = Findings::default();
    let whole = who(tag, spec, None);
    let children = match found.manifest.parse() {
        Ok(Parsed::Image { .. }) => {
            let image = Image { who: whole, found };
            return (vec![image], findings);
        }
        Ok(Parsed::Index { manifests }) => manifests,
        Err(e) => {
            findings.problem(format!("{whole}: the manifest does not parse: {e}"));
            return (Vec::new(), findings);
        }
    };
    if children.is_empty() {
        findings.problem(format!("{whole}: the manifest list has no images"));
    }
    let mut out = Vec::new();
    for child in children
        .iter()
        .filter(|d| attestations || child_arch(d).is_some_and(|a| a != "unknown"))
    {
        let child_who = who(tag, spec, Some(child));
        match sources.child(&child_who, &found, child).await {
            Ok(f) => out.push(Image {
                who: child_who,
                found: f,
            }),
            Err(e) => findings.problem(named(&child_who, e)),
        }
    }
    (out, findings)
}
