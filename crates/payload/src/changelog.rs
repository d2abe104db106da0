//! Commit logs between two commits of a component's git repository, for release changelogs
//! (`okd-forge release diff FROM TO --changelog`), made as `oc adm release info --changelog=DIR`
//! makes them.
//!
//! A [`GitCache`] keeps one bare, blob-less clone per repository under its root, at
//! `<root>/<host>/<path>` (`<root>/file/<path>` for `file://` URLs). A clone is reused, and fetched
//! only when a wanted commit is missing. [`GitCache::log`] lists the pull requests merged between
//! two commits, newest first.
//!
//! This module runs the `git` CLI rather than gix: changelogs need partial clones
//! (`--filter=blob:none`: a clone of a large repository holds only commits and trees), which gix
//! cannot make. `oc` and the release-controller run the same commands. Everything is synchronous:
//! async callers use `spawn_blocking`.
//!
//! ```no_run
//! use payload::changelog::GitCache;
//!
//! let cache = GitCache::new("/var/cache/okd-forge/git");
//! let log = cache.log(
//!     "https://github.com/openshift/oc",
//!     "6f1e2d1c0c4c1b6e0b52b0f4e1f7bc1f6b0f3a11",
//!     "0a8c2f6f5b1d1a6f0e0d4b7f3f6f2d2c9e1b7c42",
//! )?;
//! for commit in &log.commits {
//!     println!("* {} {:?}", commit.subject, commit.pull_url);
//! }
//! # Ok::<(), payload::changelog::ChangelogError>(())
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Where the bug and issue links of a [`ChangeCommit`] point (the same as `oc`).
const BUGZILLA_BROWSE_URL: &str = "https://bugzilla.redhat.com/show_bug.cgi?id=";
const JIRA_BROWSE_URL: &str = "https://issues.redhat.com/browse/";

/// Environment variables that would point git at another repository than the one it is given.
pub const GIT_REPO_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
];

/// A bare clone has no fetch refspec: fetch branches and tags (not GitHub's thousands of PR refs).
const FETCH_ARGS: &[&str] = &[
    "fetch",
    "--quiet",
    "origin",
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
];

/// `git log` of one first-parent commit a record: `id 0x1f subject 0x1f body 0x00`.
const LOG_ARGS: &[&str] = &[
    "log",
    "--first-parent",
    "--topo-order",
    "--no-show-signature",
    "--encoding=UTF-8",
    "-z",
    "--format=%H%x1f%s%x1f%b",
];

static MERGE_PR: LazyLock<Regex> = LazyLock::new(|| re(r"^Merge pull request #([0-9]+) from"));
static SQUASH_PR: LazyLock<Regex> = LazyLock::new(|| re(r"\s*\(#([0-9]+)\)\s*$"));
static PREFIX: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:\[[\w.\-]+\]\s*)+"));
static BUGZILLA: LazyLock<Regex> = LazyLock::new(|| re(r"^[Bb]ugs?\s([0-9\s,]+)[-:]\s*"));
static JIRA: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:[A-Z][A-Z0-9]+-[0-9]+[\s,]*)+[-:]\s*"));
static JIRA_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Z][A-Z0-9]+-[0-9]+"));
static SCP_LIKE: LazyLock<Regex> = LazyLock::new(|| re(r"^[\w.\-]+@([^:/]+):(.+)$"));

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex is valid")
}

/// What can go wrong while making a changelog; each error names the repository or cache involved.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    /// The source location is not a git URL the cache can hold.
    #[error(
        "source location '{url}' is not a git URL the changelog cache can hold \
         (expected https://HOST/PATH, http://, git://, ssh://, file:///PATH or USER@HOST:PATH)"
    )]
    InvalidUrl {
        /// The source location as given.
        url: String,
    },
    /// A commit id is not 4 to 64 hexadecimal digits.
    #[error("'{commit}' is not a git commit id (expected 4 to 64 hexadecimal digits)")]
    InvalidCommit {
        /// The commit id as given.
        commit: String,
    },
    /// A commit is not in the repository, even after fetching its branches, tags and the commit.
    #[error(
        "commit {commit} not found in {url} after fetching (git cache {}); the image was built \
         from a commit that is not in this repository",
        dir.display()
    )]
    CommitNotFound {
        /// The repository URL.
        url: String,
        /// The missing commit.
        commit: String,
        /// The clone that was searched.
        dir: PathBuf,
    },
    /// A git command failed: `clone` (nothing is left in the cache), `fetch` (a wanted commit is
    /// still missing) or `log`.
    #[error("git {command} of {url} (git cache {}) failed: {stderr}", dir.display())]
    Git {
        /// The git subcommand.
        command: &'static str,
        /// The repository URL.
        url: String,
        /// The clone it ran for.
        dir: PathBuf,
        /// What git said.
        stderr: String,
    },
    /// The `git` program could not be started.
    #[error("cannot run git: {source}; git must be installed and on PATH")]
    GitNotRunnable {
        /// Why it could not be started.
        source: std::io::Error,
    },
    /// The cache directory could not be created or updated.
    #[error("git cache {}: {source}", path.display())]
    Cache {
        /// The directory involved.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// One change in a repository's log, with the field names of the release-controller's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCommit {
    /// Bugzilla bugs named at the start of the subject (`Bug 1234567: ...`): id → browse URL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bugs: BTreeMap<String, String>,
    /// Jira issues named at the start of the subject (`OCPBUGS-123: ...`): key → browse URL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub issues: BTreeMap<String, String>,
    /// The pull request's title, without `[release-4.x]` prefixes and bug references.
    pub subject: String,
    /// The pull request number, when the commit names one.
    #[serde(rename = "pullID", default, skip_serializing_if = "Option::is_none")]
    pub pull_id: Option<u64>,
    /// The pull request's page, for GitHub repositories.
    #[serde(rename = "pullURL", default, skip_serializing_if = "Option::is_none")]
    pub pull_url: Option<String>,
    /// The full id of the merge commit (of the commit itself in a squash-merging repository).
    #[serde(rename = "commitID")]
    pub commit_id: String,
    /// The commit's page, for GitHub repositories.
    #[serde(rename = "commitURL", default, skip_serializing_if = "Option::is_none")]
    pub commit_url: Option<String>,
}

/// The changes between two commits of one repository.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RepoLog {
    /// The changes, newest first.
    pub commits: Vec<ChangeCommit>,
    /// The GitHub compare page `FROM...TO`, for GitHub repositories.
    #[serde(
        rename = "fullChangeLog",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub full_changelog: Option<String>,
}

/// A repository on GitHub, which gives pull request, commit and compare links. Displays as
/// `https://github.com/ORG/REPO`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GithubRepo {
    /// The organisation or user, e.g. `openshift`.
    pub org: String,
    /// The repository name without `.git`, e.g. `oc`.
    pub repo: String,
}

impl std::fmt::Display for GithubRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://github.com/{}/{}", self.org, self.repo)
    }
}

impl GithubRepo {
    /// `https://github.com/ORG/REPO/pull/N`.
    pub fn pull_url(&self, number: u64) -> String {
        format!("{self}/pull/{number}")
    }

    /// `https://github.com/ORG/REPO/commit/SHA`.
    pub fn commit_url(&self, commit: &str) -> String {
        format!("{self}/commit/{commit}")
    }

    /// `https://github.com/ORG/REPO/compare/FROM...TO`.
    pub fn compare_url(&self, from: &str, to: &str) -> String {
        format!("{self}/compare/{from}...{to}")
    }
}

/// The GitHub repository a source location (an image's `io.openshift.build.source-location`)
/// names, if any: `https://github.com/ORG/REPO` with or without `.git` or a trailing `/`, and the
/// `ssh://` and `git@github.com:ORG/REPO` forms.
pub fn github_repo(location: &str) -> Option<GithubRepo> {
    match parse_location(location)? {
        (host, path) if host == "github.com" && path.len() == 2 => {
            let [org, repo] = <[String; 2]>::try_from(path).ok()?;
            Some(GithubRepo { org, repo })
        }
        _ => None,
    }
}

/// The directory under `root` for a cache of the repository at `url`: `<root>/<host>/<path>`, the
/// path without `.git` (`<root>/file/<path>` for `file://` URLs). `None` for transports other than
/// http(s), git, ssh (also `USER@HOST:PATH`) and file, and for paths that could leave `root`. Shared
/// with the build stage's git sources, which keep full clones under a root of their own.
pub fn cache_dir(root: &Path, url: &str) -> Option<PathBuf> {
    let (host, segments) = parse_location(url)?;
    Some(segments.iter().fold(root.join(host), |dir, s| dir.join(s)))
}

/// Splits a git URL into the cache directory's host part and path segments (without `.git`).
/// Refuses transports other than http(s), git, ssh and file, and paths that could leave the cache.
fn parse_location(url: &str) -> Option<(String, Vec<String>)> {
    let (host, path) = if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = authority.rsplit('@').next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "file" => ("file", path),
            "https" | "http" | "git" | "ssh" => (host, path),
            _ => return None,
        }
    } else {
        let caps = SCP_LIKE.captures(url)?;
        (caps.get(1)?.as_str(), caps.get(2)?.as_str())
    };
    let host = host.to_ascii_lowercase().replace(':', "_");
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(Into::into)
        .collect();
    if let Some(last) = segments.last_mut() {
        last.truncate(last.strip_suffix(".git").unwrap_or(last).len());
    }
    let bad = |s: &str| s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\']);
    if bad(&host) || segments.is_empty() || segments.iter().any(|s| bad(s)) {
        return None;
    }
    Some((host, segments))
}

/// Checks a commit id before it goes on a git command line.
fn check_commit(commit: &str) -> Result<(), ChangelogError> {
    if (4..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    Err(ChangelogError::InvalidCommit {
        commit: commit.into(),
    })
}

/// A cache of bare, blob-less clones, one per repository, under one root directory.
///
/// Several processes or threads may share a cache: clones are created atomically, and a fetch
/// that races another still finds the commits the other brought in.
#[derive(Debug, Clone)]
pub struct GitCache {
    root: PathBuf,
    config: Vec<(String, String)>,
}

impl GitCache {
    /// A cache under `root`; directories are created when the first clone is made.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        GitCache {
            root: root.into(),
            config: Vec::new(),
        }
    }

    /// Adds `git -c KEY=VALUE` to every git command, e.g. `url.https://mirror.example/.insteadOf`
    /// to fetch from a mirror. Normal git configuration and credential helpers apply as well.
    pub fn git_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the clone of `url` lives: `<root>/<host>/<path>` (`<root>/file/<path>` for `file://`).
    pub fn repo_dir(&self, url: &str) -> Result<PathBuf, ChangelogError> {
        cache_dir(&self.root, url).ok_or_else(|| ChangelogError::InvalidUrl { url: url.into() })
    }

    /// The changes in `from..to` of the repository at `url`, newest first: its first-parent merge
    /// commits, with the number N of each "Merge pull request #N from ..." and, as subject, the
    /// first line of the merge's body. Merges that name no pull request keep their own subject.
    ///
    /// When the range holds no merge at all (a squash-merging repository), every first-parent
    /// commit is listed instead, with the pull request number of a trailing `(#N)` in its subject.
    ///
    /// Subjects lose leading `[x]` prefixes (e.g. `[release-4.17]`); leading Jira keys
    /// (`OCPBUGS-1,OCPBUGS-2:`) and Bugzilla ids (`Bug 1234567:`) move to [`ChangeCommit::issues`]
    /// and [`ChangeCommit::bugs`]. Clones the repository on first use, and fetches only when `from`
    /// or `to` is missing.
    pub fn log(&self, url: &str, from: &str, to: &str) -> Result<RepoLog, ChangelogError> {
        check_commit(from)?;
        check_commit(to)?;
        if from == to {
            return Ok(RepoLog::default());
        }
        let dir = self.ensure_clone(url)?;
        self.ensure_commits(url, &dir, &[from, to])?;
        let range = format!("{from}..{to}");
        let mut squash = false;
        let mut entries = self.first_parent_log(url, &dir, &range, true)?;
        if entries.is_empty() {
            squash = true;
            entries = self.first_parent_log(url, &dir, &range, false)?;
        }
        let github = github_repo(url);
        let commits = entries
            .iter()
            .map(|(id, subject, body)| change_commit(id, subject, body, squash, github.as_ref()))
            .collect();
        let full_changelog = github.map(|gh| gh.compare_url(from, to));
        Ok(RepoLog {
            commits,
            full_changelog,
        })
    }

    /// Runs git in `cwd` with credential prompts off and stdin closed. `offline` forbids the lazy
    /// fetches of missing objects a partial clone otherwise makes: reads never touch the network.
    fn git(&self, cwd: &Path, args: &[&str], offline: bool) -> Result<Output, ChangelogError> {
        let mut cmd = Command::new("git");
        for (key, value) in &self.config {
            cmd.arg("-c").arg(format!("{key}={value}"));
        }
        cmd.args(args).current_dir(cwd).stdin(Stdio::null());
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        for var in GIT_REPO_ENV {
            cmd.env_remove(var);
        }
        if offline {
            cmd.env("GIT_NO_LAZY_FETCH", "1");
        }
        tracing::debug!(cwd = %cwd.display(), ?args, "running git");
        cmd.output()
            .map_err(|source| ChangelogError::GitNotRunnable { source })
    }

    /// Runs git on the clone at `dir`.
    fn git_in(&self, dir: &Path, args: &[&str], offline: bool) -> Result<Output, ChangelogError> {
        let args: Vec<&str> = std::iter::once("--git-dir=.")
            .chain(args.iter().copied())
            .collect();
        self.git(dir, &args, offline)
    }

    /// Returns the clone of `url`, making it if needed: clone into a temporary directory beside
    /// it, then rename. A concurrent creator that renames first wins, and its clone is used.
    fn ensure_clone(&self, url: &str) -> Result<PathBuf, ChangelogError> {
        let dir = self.repo_dir(url)?;
        if dir.join("HEAD").is_file() {
            return Ok(dir);
        }
        let parent = dir.parent().unwrap_or(&self.root);
        let cache_err = |source| ChangelogError::Cache {
            path: parent.to_path_buf(),
            source,
        };
        fs::create_dir_all(parent).map_err(cache_err)?;
        let staging = tempfile::Builder::new()
            .prefix(".clone-")
            .tempdir_in(parent);
        let staging = staging.map_err(cache_err)?;
        tracing::info!(url, dir = %dir.display(), "cloning for the changelog");
        let args = [
            "clone",
            "--bare",
            "--filter=blob:none",
            "--quiet",
            "--",
            url,
            "git",
        ];
        let out = self.git(staging.path(), &args, false)?;
        if !out.status.success() {
            return Err(git_error("clone", url, &dir, &out));
        }
        match fs::rename(staging.path().join("git"), &dir) {
            Ok(()) => Ok(dir),
            Err(_) if dir.join("HEAD").is_file() => Ok(dir),
            Err(source) => Err(ChangelogError::Cache { path: dir, source }),
        }
    }

    /// Makes sure the commits are in the clone at `dir`: if one is missing, fetches branches and
    /// tags, then the missing full-length ids themselves (commits only on pull request refs).
    fn ensure_commits(
        &self,
        url: &str,
        dir: &Path,
        commits: &[&str],
    ) -> Result<(), ChangelogError> {
        let missing = || -> Vec<&str> {
            let has =
                |c: &str| self.git_in(dir, &["cat-file", "-e", &format!("{c}^{{commit}}")], true);
            commits
                .iter()
                .copied()
                .filter(|c| !has(c).is_ok_and(|o| o.status.success()))
                .collect()
        };
        if missing().is_empty() {
            return Ok(());
        }
        tracing::info!(url, dir = %dir.display(), "fetching for the changelog");
        let out = self.git_in(dir, FETCH_ARGS, false)?;
        let still = missing();
        if still.is_empty() {
            return Ok(());
        } else if !out.status.success() {
            // A concurrent fetch may have held the ref locks; its commits were checked above.
            return Err(git_error("fetch", url, dir, &out));
        }
        for commit in still.iter().filter(|c| c.len() >= 40) {
            // Fetched under a ref of its own, so that gc keeps it.
            let refspec = format!("{commit}:refs/okd-forge/commits/{commit}");
            let out = self.git_in(dir, &["fetch", "--quiet", "origin", &refspec], false)?;
            tracing::debug!(commit, stderr = %stderr(&out), "fetched a commit by id");
        }
        match missing().first() {
            None => Ok(()),
            Some(commit) => Err(ChangelogError::CommitNotFound {
                url: url.into(),
                commit: commit.to_string(),
                dir: dir.to_path_buf(),
            }),
        }
    }

    /// `(id, subject, body)` of each first-parent commit in `range`, newest first; only the merges
    /// if `merges`.
    fn first_parent_log(
        &self,
        url: &str,
        dir: &Path,
        range: &str,
        merges: bool,
    ) -> Result<Vec<(String, String, String)>, ChangelogError> {
        let mut args = LOG_ARGS.to_vec();
        if merges {
            args.push("--merges");
        }
        args.push(range);
        let out = self.git_in(dir, &args, true)?;
        if !out.status.success() {
            return Err(git_error("log", url, dir, &out));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let records = text.split('\0').filter(|record| !record.trim().is_empty());
        let entries = records.map(|record| {
            let mut fields = record.splitn(3, '\x1f').map(|s| s.trim().to_string());
            let mut next = || fields.next().unwrap_or_default();
            (next(), next(), next())
        });
        Ok(entries.collect())
    }
}

/// git's stderr, trimmed, for an error message.
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn git_error(command: &'static str, url: &str, dir: &Path, out: &Output) -> ChangelogError {
    let (url, dir, stderr) = (url.to_string(), dir.to_path_buf(), stderr(out));
    ChangelogError::Git {
        command,
        url,
        dir,
        stderr,
    }
}

/// One log entry as a [`ChangeCommit`]: the pull request number from the merge subject (from a
/// trailing `(#N)` when `squash`), the subject from the merge's body (else its own subject).
fn change_commit(
    id: &str,
    subject: &str,
    body: &str,
    squash: bool,
    github: Option<&GithubRepo>,
) -> ChangeCommit {
    let pull_id = (if squash { &SQUASH_PR } else { &MERGE_PR })
        .captures(subject)
        .and_then(|caps| caps[1].parse().ok());
    let message = match pull_id {
        Some(_) if squash => SQUASH_PR.replace(subject, ""),
        Some(_) if !body.trim().is_empty() => body.into(),
        _ => subject.into(),
    };
    let (bugs, issues, rest) = extract_refs(&message);
    let subject = match rest.lines().next().map(str::trim) {
        Some(line) if !line.is_empty() => line,
        _ => subject.trim(),
    };
    ChangeCommit {
        bugs,
        issues,
        subject: subject.to_string(),
        pull_id,
        pull_url: github.zip(pull_id).map(|(gh, n)| gh.pull_url(n)),
        commit_id: id.to_string(),
        commit_url: github.map(|gh| gh.commit_url(id)),
    }
}

type Links = BTreeMap<String, String>;

/// Strips leading `[x]` prefixes and takes the leading Bugzilla ids or Jira keys off a message:
/// `(bugs, issues, rest of the message)`, bugs and issues mapped to their browse URLs.
fn extract_refs(message: &str) -> (Links, Links, &str) {
    let message = message.trim();
    let message = &message[PREFIX.find(message).map_or(0, |m| m.end())..];
    let links = |base: &str, ids: Vec<&str>| {
        ids.into_iter()
            .map(|id| (id.into(), format!("{base}{id}")))
            .collect()
    };
    if let Some(caps) = BUGZILLA.captures(message) {
        let ids = caps[1]
            .split([',', ' ', '\t', '\n'])
            .filter(|s| !s.is_empty())
            .collect();
        return (
            links(BUGZILLA_BROWSE_URL, ids),
            Links::new(),
            &message[caps[0].len()..],
        );
    }
    if let Some(m) = JIRA.find(message) {
        let keys = JIRA_KEY.find_iter(m.as_str()).map(|k| k.as_str()).collect();
        return (
            Links::new(),
            links(JIRA_BROWSE_URL, keys),
            &message[m.end()..],
        );
    }
    (Links::new(), Links::new(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_prefixes_come_off_the_subject() {
        let cases: &[(&str, &[&str], &[&str], &str)] = &[
            (
                "OCPBUGS-123: fix the thing",
                &[],
                &["OCPBUGS-123"],
                "fix the thing",
            ),
            (
                "OCPBUGS-1,OCPBUGS-2: two",
                &[],
                &["OCPBUGS-1", "OCPBUGS-2"],
                "two",
            ),
            (
                "[release-4.17] [wip] OCPBUGS-9 - backport\nmore",
                &[],
                &["OCPBUGS-9"],
                "backport\nmore",
            ),
            ("Bug 1234567: old style", &["1234567"], &[], "old style"),
            ("bugs 1, 2: lower case", &["1", "2"], &[], "lower case"),
            ("HTTP handling: no refs", &[], &[], "HTTP handling: no refs"),
            ("[release-4.16] plain", &[], &[], "plain"),
        ];
        for (message, bugs, issues, rest) in cases {
            let (b, i, r) = extract_refs(message);
            assert_eq!(b.keys().collect::<Vec<_>>(), *bugs, "{message}");
            assert_eq!(i.keys().collect::<Vec<_>>(), *issues, "{message}");
            assert_eq!(r, *rest, "{message}");
        }
    }

    #[test]
    fn locations_map_to_cache_paths() {
        let seg = |url| parse_location(url).map(|(h, s)| format!("{h}/{}", s.join("/")));
        assert_eq!(
            seg("https://github.com/openshift/oc.git").as_deref(),
            Some("github.com/openshift/oc")
        );
        assert_eq!(
            seg("https://user@GitHub.com/openshift/oc/").as_deref(),
            Some("github.com/openshift/oc")
        );
        assert_eq!(
            seg("git@github.com:openshift/oc.git").as_deref(),
            Some("github.com/openshift/oc")
        );
        assert_eq!(
            seg("https://git.example:8443/a/b").as_deref(),
            Some("git.example_8443/a/b")
        );
        assert_eq!(
            seg("file:///srv/git/x.git").as_deref(),
            Some("file/srv/git/x")
        );
        for bad in [
            "https://example.com/../etc",
            "https://../x",
            "ext::sh -c id",
            "/local/path",
            "https://h/",
        ] {
            assert_eq!(seg(bad), None, "{bad}");
        }
    }
}
