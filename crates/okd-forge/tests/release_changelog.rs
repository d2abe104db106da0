//! `okd-forge release diff FROM TO --changelog` end to end, against real git repositories each test
//! makes (file:// URLs) and payloads built from the testkit release fixtures whose images name them
//! in `io.openshift.build.source-location` and `io.openshift.build.commit.id`: the Markdown and JSON
//! changelogs of the release-controller spec (§4.1), a clone reused when the upstream is gone, and a
//! commit missing from its repository.

mod common;

use std::path::Path;

use common::{one_error, s, Forge, CREATED};
use serde_json::{json, Value};
use testkit::git::Upstream;
use testkit::release::{self as fx, new_args, Entry, ReleaseSet};

/// The older release.
const FROM: &str = "4.17.0-okd-scos.0";
/// The newer release.
const TO: &str = "4.17.0-okd-scos.1";
/// A newer release whose `cli` names a commit its repository does not have.
const BROKEN: &str = "4.17.0-okd-scos.2";
/// The `kubectl` version `cli` reports in the newer release.
const KUBECTL_NEW: &str = "1.31.3";
/// A commit id in no repository.
const MISSING: &str = "0123456789abcdef0123456789abcdef01234567";

// ------------------------------------------------------------------------------------------------
// Git repositories
// ------------------------------------------------------------------------------------------------

/// The two upstream repositories and the commits the payloads name.
struct Repos {
    /// Source of `cli` (changed) and `installer` (rebuilt).
    operand: Upstream,
    /// Source of `machine-config-operator` (changed).
    operator: Upstream,
    /// operand-repo: `from` (after pull request #40), pull request #41, `to` (#42).
    operand_from: String,
    pr41: String,
    operand_to: String,
    /// operator-repo: `from` (the initial commit) and `to` (pull request #7).
    operator_from: String,
    operator_to: String,
}

/// Under `root/upstream`: operand-repo with pull request #40 before the range; #41, a direct
/// push and #42 in it; #43 after it. operator-repo with #7 in its range.
fn repos(root: &Path) -> Repos {
    let operand = Upstream::init(root.join("upstream/operand-repo"));
    let operand_from = operand.pull_request(40, "before", &["OCPBUGS-100: outside the range"]);
    let pr41 = operand.pull_request(41, "fix-a", &["OCPBUGS-123: fix the thing"]);
    operand.commit("direct push to main");
    let operand_to = operand.pull_request(
        42,
        "widget",
        &["[release-4.17] add the widget", "Longer description."],
    );
    operand.pull_request(43, "after", &["OCPBUGS-999: after the range"]);

    let operator = Upstream::init(root.join("upstream/operator-repo"));
    let operator_from = operator.head();
    let operator_to = operator.pull_request(7, "op-fix", &["Bug 1234567: operator fix"]);
    Repos {
        operand,
        operator,
        operand_from,
        pr41,
        operand_to,
        operator_from,
        operator_to,
    }
}

// ------------------------------------------------------------------------------------------------
// Payloads
// ------------------------------------------------------------------------------------------------

fn short(commit: &str) -> &str {
    &commit[..7]
}

/// `image` built from `commit` of `repo`.
fn from_source(image: fx::ImageBuilder, repo: &Upstream, commit: &str) -> fx::ImageBuilder {
    image
        .label(fx::LABEL_SOURCE, &repo.url())
        .label(fx::LABEL_COMMIT_ID, commit)
}

/// The older release's images: `cli` and `installer` at operand-repo's `from`,
/// `machine-config-operator` at operator-repo's `from`, the rest as the standard set has them.
fn older(r: &Repos) -> ReleaseSet {
    ReleaseSet::standard("amd64")
        .edit("cli", |i| from_source(i, &r.operand, &r.operand_from))
        .edit("installer", |i| from_source(i, &r.operand, &r.operand_from))
        .edit("machine-config-operator", |i| {
            from_source(i, &r.operator, &r.operator_from)
        })
}

/// The newer release's images: `cli` (with a new kubectl) and `machine-config-operator` at their
/// `to` commits; `installer` rebuilt from the same commit; the rest identical.
fn newer(r: &Repos, cli_commit: &str) -> ReleaseSet {
    older(r)
        .edit("cli", |i| {
            i.label(fx::LABEL_COMMIT_ID, cli_commit)
                .label(fx::LABEL_VERSIONS, &format!("kubectl={KUBECTL_NEW}"))
                .add_to_top(Entry::file("usr/share/cli/changed", "2"))
        })
        .edit("installer", |i| {
            i.add_to_top(Entry::file("usr/share/installer/rebuilt", "2"))
        })
        .edit("machine-config-operator", |i| {
            i.label(fx::LABEL_COMMIT_ID, &r.operator_to)
        })
}

/// A payload built by `release new`.
struct Built {
    /// `oci:DIR:NAME`.
    reference: String,
    /// The digest `release new` printed.
    digest: String,
    /// The input images.
    inputs: fx::Inputs,
}

/// `release new --name NAME` of `set` (all tags kept) into `oci:<home>/payload`.
fn build(f: &Forge, set: &ReleaseSet, name: &str, extra: &[&str]) -> Built {
    let inputs = set.write(&f.path("store"));
    let mapping = inputs.write_mapping(&f.path(&format!("{name}.txt")));
    let dir = f.path("payload");
    let to = format!("oci:{}", dir.display());
    let extra = [&["--include", "installer,pod"], extra].concat();
    let out = f.ok(&new_args(name, &to, &mapping, f.path("store"), &extra));
    let digest = out.split(' ').next().unwrap().trim().to_string();
    assert!(digest.starts_with("sha256:"), "{out}");
    Built {
        reference: format!("oci:{}:{name}", dir.display()),
        digest,
        inputs,
    }
}

/// The repositories and the two releases, `TO` listing `FROM` as a previous version.
fn setup(f: &Forge) -> (Repos, Built, Built) {
    let r = repos(f.home.path());
    let from = build(f, &older(&r), FROM, &[]);
    let to = build(f, &newer(&r, &r.operand_to), TO, &["--previous", FROM]);
    (r, from, to)
}

/// `okd-forge [--output json] release diff FROM TO --changelog --cache CACHE`: (success, stdout,
/// stderr).
fn diff(f: &Forge, from: &Built, to: &Built, cache: &Path, json: bool) -> (bool, String, String) {
    let cache = s(cache);
    let mut args = if json {
        vec!["--output", "json"]
    } else {
        vec![]
    };
    args.extend(["release", "diff", &from.reference, &to.reference]);
    args.extend(["--changelog", "--cache", &cache]);
    let out = f.cmd().args(&args).output().expect("run okd-forge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`diff`], expected to succeed; returns stdout.
fn diff_ok(f: &Forge, from: &Built, to: &Built, cache: &Path, json: bool) -> String {
    let (ok, stdout, stderr) = diff(f, from, to, cache, json);
    assert!(ok, "release diff failed:\n{stderr}\nstdout:\n{stdout}");
    stdout
}

/// The Markdown of `FROM` → `to` (named `name`) up to and including the `cli` section's heading,
/// which no git failure changes.
fn markdown_head(r: &Repos, name: &str, to: &Built) -> String {
    let (url, a) = (r.operand.url(), &r.operand_from);
    let installer = to.inputs.pullspec("installer");
    format!(
        "# {name}\n\nCreated: {CREATED}\n\nImage Digest: `{digest}`\n\n## Changes from {FROM}\n\n\
         ### Components\n\n* kubectl {KUBECTL_NEW} (upgraded from {kubectl})\n\n\
         ### Rebuilt images without code change\n\n\
         * [installer]({url}) {a7} `{installer}`\n\n\
         ### cli\n\n",
        digest = to.digest,
        kubectl = fx::KUBECTL,
        a7 = short(a),
    )
}

/// The `machine-config-operator` section: its Bugzilla bug, pull request #7 without a link (not
/// GitHub) and the commit range instead of a compare link.
fn markdown_operator(r: &Repos) -> String {
    format!(
        "### machine-config-operator\n\n* [Bug 1234567](https://bugzilla.redhat.com/show_bug.cgi?id=1234567): \
         operator fix (#7)\n* {} → {}\n\n",
        short(&r.operator_from),
        short(&r.operator_to)
    )
}

/// The operator's commits in JSON.
fn operator_commits(r: &Repos) -> Value {
    json!([{
        "bugs": {"1234567": "https://bugzilla.redhat.com/show_bug.cgi?id=1234567"},
        "subject": "operator fix",
        "pullID": 7,
        "commitID": r.operator_to,
    }])
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[test]
fn changelog_lists_merged_pull_requests_and_reuses_the_clone() {
    let f = Forge::reproducible();
    let (r, from, to) = setup(&f);
    let cache = f.path("cache");

    // Markdown: components, the rebuilt image, then one section per changed image with one line per
    // pull request merged in from..to, newest first: #42 and #41, not #40 (before the range), #43
    // (after it), the direct push or the pull requests' own commits. The subject is the merge's
    // body without `[release-4.17]`, with its Jira key as a link; a file:// repository has no pull
    // or tree links, so the lines name the pull request as (#N), headings are plain, and the range
    // replaces the "Full changelog" link.
    let md = diff_ok(&f, &from, &to, &cache, false);
    let expected = format!(
        "{head}* add the widget (#42)\n\
         * [OCPBUGS-123](https://issues.redhat.com/browse/OCPBUGS-123): fix the thing (#41)\n\
         * {a7} → {b7}\n\n{operator}",
        head = markdown_head(&r, TO, &to),
        a7 = short(&r.operand_from),
        b7 = short(&r.operand_to),
        operator = markdown_operator(&r),
    );
    assert_eq!(md, expected);
    for outside in [
        "outside the range",
        "after the range",
        "direct push",
        "work on",
        "Merge pull request",
        "initial",
        "hyperkube",
    ] {
        assert!(!md.contains(outside), "{outside:?} in:\n{md}");
    }

    // JSON: the same, with pull request numbers, full commit ids and Jira/Bugzilla references.
    let j: Value = serde_json::from_str(&diff_ok(&f, &from, &to, &cache, true)).unwrap();
    let url = r.operand.url();
    let expected = json!({
        "from": {"name": FROM, "created": CREATED, "digest": from.digest},
        "to": {"name": TO, "created": CREATED, "digest": to.digest},
        "upgradeFrom": true,
        "components": [{"name": "kubectl", "version": KUBECTL_NEW, "from": fx::KUBECTL}],
        // The OS, unchanged.
        "os": {
            "tag": "stream-coreos",
            "displayName": fx::MACHINE_OS_NAME,
            "version": fx::MACHINE_OS,
            "from": fx::MACHINE_OS,
            "imageRef": to.inputs.pullspec("stream-coreos"),
            "fromImageRef": from.inputs.pullspec("stream-coreos"),
        },
        "newImages": [],
        "removedImages": [],
        "rebuiltImages": [{
            "name": "installer",
            "path": url,
            "shortCommit": short(&r.operand_from),
            "commit": r.operand_from,
            "imageRef": to.inputs.pullspec("installer"),
        }],
        "updatedImages": [
            {
                "name": "cli",
                "path": url,
                "shortCommit": short(&r.operand_to),
                "commit": r.operand_to,
                "fromCommit": r.operand_from,
                "imageRef": to.inputs.pullspec("cli"),
                "commits": [
                    {"subject": "add the widget", "pullID": 42, "commitID": r.operand_to},
                    {
                        "issues": {"OCPBUGS-123": "https://issues.redhat.com/browse/OCPBUGS-123"},
                        "subject": "fix the thing",
                        "pullID": 41,
                        "commitID": r.pr41,
                    },
                ],
            },
            {
                "name": "machine-config-operator",
                "path": r.operator.url(),
                "shortCommit": short(&r.operator_to),
                "commit": r.operator_to,
                "fromCommit": r.operator_from,
                "imageRef": to.inputs.pullspec("machine-config-operator"),
                "commits": operator_commits(&r),
            },
        ],
    });
    assert_eq!(j, expected, "{j:#}");

    // The clones are bare and under CACHE/git/file/<path of the repository>.
    for up in [&r.operand, &r.operator] {
        let clone = cache
            .join("git/file")
            .join(up.dir().strip_prefix("/").unwrap());
        assert!(clone.join("HEAD").is_file(), "no clone at {clone:?}");
        assert!(!clone.join(".git").exists(), "{clone:?} is not bare");
    }

    // With the upstreams gone, the same diff is answered from the clones, unchanged...
    std::fs::rename(f.path("upstream"), f.path("gone")).unwrap();
    assert_eq!(diff_ok(&f, &from, &to, &cache, false), md);
    let again: Value = serde_json::from_str(&diff_ok(&f, &from, &to, &cache, true)).unwrap();
    assert_eq!(again, j);
    // ...which only the clones make possible: a new cache cannot clone them.
    let (ok, stdout, stderr) = diff(&f, &from, &to, &f.path("new-cache"), false);
    assert!(!ok, "diff without the upstreams succeeded:\n{stdout}");
    let error = one_error(&stderr);
    assert!(error.contains(&url) && error.contains("clone"), "{stderr}");
}

#[test]
fn a_commit_missing_from_its_repository_fails_after_printing_the_rest() {
    let f = Forge::reproducible();
    let (r, from, _) = setup(&f);
    let broken = build(&f, &newer(&r, MISSING), BROKEN, &[]);
    let cache = f.path("cache");
    let url = r.operand.url();

    let (ok, md, stderr) = diff(&f, &from, &broken, &cache, false);
    assert!(!ok, "a missing commit must fail the diff:\n{md}");
    // stderr names the image, the repository and the commit.
    let error = one_error(&stderr);
    let not_found = format!("commit {MISSING} not found in {url}");
    assert!(
        error.contains(&not_found) && error.contains("cli"),
        "{stderr}"
    );
    // stdout is the whole diff: the cli section without commits, the operator's commits, and a note.
    let head = markdown_head(&r, BROKEN, &broken);
    let prefix = format!(
        "{head}* {a7} → {m7}\n\n{operator}> Could not load commits: could not load commits for cli \
         ({url}): {not_found}",
        a7 = short(&r.operand_from),
        m7 = short(MISSING),
        operator = markdown_operator(&r),
    );
    assert!(
        md.starts_with(&prefix),
        "expected\n{prefix}\n---- got\n{md}"
    );
    assert_eq!(md.matches("> Could not load commits").count(), 1, "{md}");

    // JSON: the same, with the failure under `warnings`.
    let (ok, out, stderr) = diff(&f, &from, &broken, &cache, true);
    assert!(!ok, "a missing commit must fail the diff:\n{out}");
    assert!(one_error(&stderr).contains(&not_found), "{stderr}");
    let j: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(j["to"]["name"], BROKEN);
    assert_eq!(j["updatedImages"][0]["name"], "cli");
    assert_eq!(j["updatedImages"][0]["commit"], MISSING);
    assert_eq!(j["updatedImages"][0].get("commits"), None, "{j:#}");
    assert_eq!(j["updatedImages"][1]["commits"], operator_commits(&r));
    assert_eq!(j["rebuiltImages"][0]["name"], "installer");
    let warnings = j["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{j:#}");
    let w = warnings[0].as_str().unwrap();
    assert!(w.contains(&not_found) && w.contains(&url), "{w}");
}
