//! The changelog's git cache and log, against real git repositories each test makes (file:// URLs).

use std::path::{Path, PathBuf};
use std::process::Command;

use payload::changelog::{github_repo, ChangeCommit, ChangelogError, GitCache, GithubRepo};
use serde_json::json;
use tempfile::TempDir;
use testkit::file_names;
use testkit::git::Upstream;

fn commit(pull: Option<u64>, subject: &str, id: &str) -> ChangeCommit {
    ChangeCommit {
        bugs: Default::default(),
        issues: Default::default(),
        subject: subject.to_string(),
        pull_id: pull,
        pull_url: None,
        commit_id: id.to_string(),
        commit_url: None,
    }
}

fn issues(keys: &[&str]) -> std::collections::BTreeMap<String, String> {
    keys.iter()
        .map(|k| {
            (
                k.to_string(),
                format!("https://issues.redhat.com/browse/{k}"),
            )
        })
        .collect()
}

/// A temp dir holding an upstream repository at `repo` (a path below it) and an empty cache at
/// `cache`; returns them with the upstream's initial commit.
fn upstream_and_cache(repo: &str) -> (TempDir, Upstream, GitCache, String) {
    let tmp = TempDir::new().unwrap();
    let up = Upstream::init(tmp.path().join(repo));
    let initial = up.head();
    let cache = GitCache::new(tmp.path().join("cache"));
    (tmp, up, cache, initial)
}

/// A repository with pull requests merged before and inside the range, a direct commit, a merge
/// that is not a pull request, and a pull request branch that itself merged main (a merge off the
/// first parent).
fn merging_repo(dir: PathBuf) -> (Upstream, String, Vec<String>) {
    let up = Upstream::init(dir);
    let from = up.pull_request(11, "before", &["OCPBUGS-11: outside the range"]);
    up.branch("feat", "main");
    up.commit("feat work 1");
    up.checkout("main");
    up.commit("direct push to main");
    let pr12 = up.pull_request(12, "fix", &["OCPBUGS-77: fix the thing", "Details here."]);
    up.checkout("feat");
    up.merge("main", &["Merge branch 'main' into feat"]);
    up.commit("feat work 2");
    up.checkout("main");
    let pr13 = up.merge(
        "feat",
        &[
            "Merge pull request #13 from org/feat",
            "[release-4.16] Bug 1234567: handle the case",
            "Longer text.",
        ],
    );
    up.branch("upstream", "main");
    up.commit("upstream change");
    up.checkout("main");
    let other = up.merge("upstream", &["Merge branch 'upstream' into main"]);
    let pr14 = up.pull_request(14, "two", &["OCPBUGS-1,OCPBUGS-2: two bugs at once"]);
    let pr15 = up.pull_request(15, "nobody", &[]);
    (up, from, vec![pr15, pr14, other, pr13, pr12])
}

#[test]
fn lists_first_parent_merges_in_range_newest_first() {
    let tmp = TempDir::new().unwrap();
    let (up, from, ids) = merging_repo(tmp.path().join("up/repo"));
    let to = up.head();
    let cache = GitCache::new(tmp.path().join("cache"));

    let log = cache.log(&up.url(), &from, &to).unwrap();

    let mut expected = vec![
        commit(Some(15), "Merge pull request #15 from org/nobody", &ids[0]),
        commit(Some(14), "two bugs at once", &ids[1]),
        commit(None, "Merge branch 'upstream' into main", &ids[2]),
        commit(Some(13), "handle the case", &ids[3]),
        commit(Some(12), "fix the thing", &ids[4]),
    ];
    expected[1].issues = issues(&["OCPBUGS-1", "OCPBUGS-2"]);
    expected[3].bugs = [(
        "1234567".to_string(),
        "https://bugzilla.redhat.com/show_bug.cgi?id=1234567".to_string(),
    )]
    .into();
    expected[4].issues = issues(&["OCPBUGS-77"]);
    assert_eq!(log.commits, expected);
    assert_eq!(log.full_changelog, None, "not a GitHub repository");
    assert_eq!(
        serde_json::to_value(&log.commits[3]).unwrap(),
        json!({"bugs": {"1234567": "https://bugzilla.redhat.com/show_bug.cgi?id=1234567"},
               "subject": "handle the case", "pullID": 13, "commitID": ids[3]})
    );

    // The same commit on both sides is an empty log; a sub-range holds only its own merges.
    assert!(cache.log(&up.url(), &to, &to).unwrap().commits.is_empty());
    let sub = cache.log(&up.url(), &ids[3], &ids[1]).unwrap();
    assert_eq!(
        sub.commits.iter().map(|c| c.pull_id).collect::<Vec<_>>(),
        [Some(14), None]
    );
}

#[test]
fn reuses_the_clone_and_fetches_only_for_missing_commits() {
    let (tmp, up, cache, from) = upstream_and_cache("up/repo.git");
    let to1 = up.pull_request(1, "one", &["first"]);

    let log = cache.log(&up.url(), &from, &to1).unwrap();
    assert_eq!(log.commits, [commit(Some(1), "first", &to1)]);

    // One bare, blob-less clone at <root>/file/<path without .git>; no staging directory is left.
    let dir = cache.repo_dir(&up.url()).unwrap();
    let expected_dir = tmp
        .path()
        .join("cache/file")
        .join(tmp.path().strip_prefix("/").unwrap())
        .join("up/repo");
    assert_eq!(dir, expected_dir);
    assert_eq!(git_in(&dir, &["config", "core.bare"]), "true");
    assert_eq!(
        git_in(&dir, &["config", "remote.origin.partialclonefilter"]),
        "blob:none"
    );
    assert_eq!(file_names(dir.parent().unwrap()), ["repo"]);

    // New upstream commits are fetched into the existing clone.
    let to2 = up.pull_request(2, "two", &["second"]);
    let log = cache.log(&up.url(), &from, &to2).unwrap();
    assert_eq!(
        log.commits,
        [
            commit(Some(2), "second", &to2),
            commit(Some(1), "first", &to1)
        ]
    );

    // A range whose commits are in the clone fetches nothing: a newer upstream commit stays out.
    let to3 = up.pull_request(3, "three", &["third"]);
    assert_eq!(cache.log(&up.url(), &to1, &to2).unwrap().commits.len(), 1);
    let cached = |commit: &str| {
        // GIT_NO_LAZY_FETCH: only what the clone holds, no fetch from the promisor remote.
        let mut cmd = Command::new("git");
        cmd.env("GIT_NO_LAZY_FETCH", "1").arg("--git-dir").arg(&dir);
        cmd.args(["cat-file", "-e", commit])
            .status()
            .unwrap()
            .success()
    };
    assert!(cached(&to2));
    assert!(!cached(&to3), "the cache fetched without need");

    // With the upstream gone, ranges whose commits are in the clone still work.
    std::fs::rename(tmp.path().join("up"), tmp.path().join("gone")).unwrap();
    assert_eq!(cache.log(&up.url(), &from, &to2).unwrap().commits.len(), 2);
    assert_eq!(
        cache.log(&up.url(), &to1, &to2).unwrap().commits,
        [commit(Some(2), "second", &to2)]
    );
    // A commit that is missing now needs the upstream, and says so.
    let err = cache
        .log(&up.url(), &from, "1111111111111111111111111111111111111111")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChangelogError::Git {
                command: "fetch",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&up.url()), "{err}");
}

#[test]
fn missing_commit_is_a_clear_error_and_leaves_the_cache_usable() {
    let (tmp, up, cache, from) = upstream_and_cache("up");
    let to = up.pull_request(5, "five", &["OCPBUGS-5: five"]);
    let missing = "0123456789abcdef0123456789abcdef01234567";

    let err = cache.log(&up.url(), &from, missing).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, ChangelogError::CommitNotFound { commit, url, .. }
            if commit == missing && *url == up.url())
    );
    assert!(
        message.contains(&format!(
            "commit {missing} not found in {} after fetching",
            up.url()
        )),
        "{message}"
    );

    // The failed call left a working clone behind.
    assert_eq!(cache.log(&up.url(), &from, &to).unwrap().commits.len(), 1);

    // Commit ids that are not hex never reach git; an unknown repository fails to clone, leaving
    // nothing behind.
    let err = cache.log(&up.url(), &from, "--output=/tmp/x").unwrap_err();
    assert!(matches!(err, ChangelogError::InvalidCommit { .. }), "{err}");
    let nowhere = format!("file://{}/nowhere", tmp.path().display());
    let err = cache.log(&nowhere, &from, &to).unwrap_err();
    assert!(
        matches!(&err, ChangelogError::Git { command: "clone", stderr, .. } if !stderr.is_empty()),
        "{err}"
    );
    let parent = cache
        .repo_dir(&nowhere)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert_eq!(
        file_names(&parent),
        ["up"],
        "no clone and no staging directory for {nowhere}"
    );
    let err = cache
        .log("https://example.com/../../etc", &from, &to)
        .unwrap_err();
    assert!(matches!(err, ChangelogError::InvalidUrl { .. }), "{err}");
}

#[test]
fn squash_merging_repo_takes_pull_numbers_from_subjects() {
    let (_tmp, up, cache, from) = upstream_and_cache("up");
    let c21 = up.commit("Fix the widget (#21)\n\nbody text");
    let c22 = up.commit("[release-4.17] OCPBUGS-5: tidy up (#22)");
    let direct = up.commit("direct commit without a pull request");
    let c23 = up.commit("Revert \"Fix the widget (#21)\" (#23)");

    let log = cache.log(&up.url(), &from, &c23).unwrap();

    let mut tidy = commit(Some(22), "tidy up", &c22);
    tidy.issues = issues(&["OCPBUGS-5"]);
    let expected = vec![
        commit(Some(23), "Revert \"Fix the widget (#21)\"", &c23),
        commit(None, "direct commit without a pull request", &direct),
        tidy,
        commit(Some(21), "Fix the widget", &c21),
    ];
    assert_eq!(log.commits, expected);
}

#[test]
fn fetches_a_commit_that_only_a_pull_request_ref_holds() {
    let (_tmp, up, cache, from) = upstream_and_cache("up");
    let to = up.pull_request(1, "one", &["first"]);
    cache.log(&up.url(), &from, &to).unwrap();

    up.branch("pr", "main");
    let pr_head = up.commit("Try something (#7)");
    up.checkout("main");
    up.git(&["update-ref", "refs/pull/7/head", &pr_head]);
    up.git(&["branch", "--quiet", "-D", "pr"]);

    let log = cache.log(&up.url(), &to, &pr_head).unwrap();
    assert_eq!(log.commits, [commit(Some(7), "Try something", &pr_head)]);
}

#[test]
fn concurrent_first_calls_share_one_clone() {
    let (_tmp, up, cache, from) = upstream_and_cache("up");
    let to = up.pull_request(3, "three", &["third"]);

    let url = up.url();
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..4)
            .map(|_| s.spawn(|| cache.log(&url, &from, &to)))
            .collect();
        for call in calls {
            assert_eq!(
                call.join().unwrap().unwrap().commits,
                [commit(Some(3), "third", &to)]
            );
        }
    });
    let dir = cache.repo_dir(&up.url()).unwrap();
    assert_eq!(
        file_names(dir.parent().unwrap()),
        ["up"],
        "losers' staging clones are removed"
    );
}

#[test]
fn github_locations_give_pull_commit_and_compare_links() {
    let oc = Some(GithubRepo {
        org: "openshift".into(),
        repo: "oc".into(),
    });
    assert_eq!(github_repo("https://github.com/openshift/oc"), oc);
    assert_eq!(github_repo("https://github.com/openshift/oc.git"), oc);
    assert_eq!(github_repo("https://github.com/openshift/oc/"), oc);
    assert_eq!(github_repo("git@github.com:openshift/oc.git"), oc);
    assert_eq!(github_repo("https://gitlab.com/openshift/oc"), None);
    assert_eq!(github_repo("https://github.com/openshift"), None);
    assert_eq!(
        github_repo("https://github.com/openshift/oc/tree/main"),
        None
    );

    // End to end: a GitHub URL (redirected to a local upstream with url.*.insteadOf) gets links.
    let tmp = TempDir::new().unwrap();
    let (up, from, ids) = merging_repo(tmp.path().join("mirror/openshift/demo.git"));
    let to = up.head();
    let mirror = format!("file://{}/mirror/openshift/", tmp.path().display());
    let cache = GitCache::new(tmp.path().join("cache")).git_config(
        format!("url.{mirror}.insteadOf"),
        "https://github.com/openshift/",
    );

    let log = cache
        .log("https://github.com/openshift/demo.git", &from, &to)
        .unwrap();

    assert_eq!(
        log.full_changelog,
        Some(format!(
            "https://github.com/openshift/demo/compare/{from}...{to}"
        ))
    );
    assert_eq!(log.commits.len(), 5);
    assert_eq!(
        serde_json::to_value(&log.commits[1]).unwrap(),
        json!({
            "issues": {"OCPBUGS-1": "https://issues.redhat.com/browse/OCPBUGS-1",
                       "OCPBUGS-2": "https://issues.redhat.com/browse/OCPBUGS-2"},
            "subject": "two bugs at once",
            "pullID": 14,
            "pullURL": "https://github.com/openshift/demo/pull/14",
            "commitID": ids[1],
            "commitURL": format!("https://github.com/openshift/demo/commit/{}", ids[1]),
        })
    );
    assert!(tmp
        .path()
        .join("cache/github.com/openshift/demo/HEAD")
        .is_file());
}

/// Reads from a clone in the cache.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir").arg(dir).args(args);
    testkit::run_ok(&mut cmd).trim().to_string()
}
