//! Git sources for component builds: resolve a component's branch or ref to a commit, fetch that
//! commit into a per-repository cache, and check its tree out into a build workspace.
//!
//! [`GitSources`] keeps one bare repository per remote under its root, at `<root>/<host>/<path>`
//! (`<root>/file/<path>` for `file://` URLs, the layout of the changelog's cache,
//! [`payload::changelog::cache_dir`]). Caches hold full objects (builds need every blob), so they
//! live under a root of their own, never the changelog's blob-less one. A cache is created on first
//! use and only ever grows: a fetch asks for the one wanted ref (and, if still missing, the commit
//! itself), and the refs already in the cache let the remote send just the new objects.
//!
//! gix does the work, and the `git` CLI takes over when gix fails for any reason other than a
//! missing ref (an unsupported transport, an authentication scheme gix lacks). gix is built without
//! its http(s) transport: that would add reqwest 0.13 and aws-lc (about two minutes of build on two
//! cores) to do what the CLI does with the user's own proxy, TLS and credential settings, so
//! `http(s)://` remotes always take the CLI path; `file://` and `ssh://` remotes use gix.
//!
//! | step | gix | CLI fallback |
//! |---|---|---|
//! | [`resolve`](GitSources::resolve) `file://` | reads the remote's refs in place, no process | `git ls-remote` |
//! | [`resolve`](GitSources::resolve) other URLs | handshake and ref listing, filtered by the server | `git ls-remote` |
//! | [`fetch`](GitSources::fetch) | fetch with one refspec into the cache | `git fetch` into the cache |
//! | [`checkout`](GitSources::checkout) | walks the commit's tree and writes it | `git read-tree` + `git checkout-index` |
//! | [`read_file`](GitSources::read_file) | looks the path up in the commit's tree | `git cat-file --batch` |
//!
//! Credentials come from git's usual places: the credential helpers of the git configuration
//! (`credential.helper`, global or system), `GIT_ASKPASS`, `url.<base>.insteadOf`. Neither gix nor
//! the CLI ever prompts on a terminal (`GIT_TERMINAL_PROMPT=0`). Everything is synchronous: async
//! callers use `spawn_blocking`.
//!
//! ```no_run
//! use build::config::Revision;
//! use build::git::GitSources;
//!
//! let sources = GitSources::new("var/cache/git");
//! let url = "https://github.com/openshift/installer";
//! let rev = Revision::Branch("release-4.17".into());
//! let commit = sources.resolve(url, &rev)?;
//! sources.fetch(url, &rev, &commit)?;
//! sources.checkout(url, &commit, std::path::Path::new("work/installer"))?;
//! # Ok::<(), build::git::GitError>(())
//! ```

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicBool;

use gix::objs::tree::EntryKind;
use gix::remote::Direction;
use gix::ObjectId;

use crate::config::Revision;

/// A git object id, 40 hex chars (sha1), lowercase.
pub type CommitId = String;

use payload::changelog::GIT_REPO_ENV;

/// Where commits fetched by id are kept in a cache, so that they stay referenced.
const COMMIT_REFS: &str = "refs/okd-forge/commits/";

/// What the config entry naming a missing ref should be checked for.
const REF_HINT: &str = "check the component's `ref:` (a tag, a full ref such as \
                        refs/pull/7/head, or a full 40-hex commit id; abbreviated ids are not supported)";

/// What can go wrong with a git source; each error names the repository and the ref or commit
/// involved, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The URL is not one a cache can hold.
    #[error(
        "'{url}' is not a git URL okd-forge can fetch (expected https://HOST/PATH, http://, ssh://, \
         USER@HOST:PATH or file:///PATH); check the component's `git:`"
    )]
    InvalidUrl {
        /// The URL as given.
        url: String,
    },
    /// A branch or ref name git would refuse.
    #[error("'{name}' is not a valid git ref name ({reason}); check the component's branch or `ref:` for {url}")]
    InvalidRefName {
        /// The repository.
        url: String,
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A commit id is not 40 hexadecimal digits.
    #[error("'{commit}' is not a full git commit id (expected 40 hexadecimal digits)")]
    InvalidCommit {
        /// The id as given.
        commit: String,
    },
    /// The branch does not exist in the remote.
    #[error(
        "branch '{branch}' does not exist in {url}; check the stream's branch or the component's \
         `branch:` override"
    )]
    BranchNotFound {
        /// The repository.
        url: String,
        /// The branch, without `refs/heads/`.
        branch: String,
    },
    /// A tag or full ref does not exist in the remote.
    #[error("ref '{reference}' ({full_name}) does not exist in {url}; {REF_HINT}")]
    RefNotFound {
        /// The repository.
        url: String,
        /// The ref as configured.
        reference: String,
        /// The full ref name it was looked up as.
        full_name: String,
    },
    /// The remote could not be reached or refused us, with gix and with the git CLI.
    #[error(
        "cannot {action} {url}: {message}; check the URL, the network and the git credentials \
         (credential helpers in the git configuration, GIT_ASKPASS)"
    )]
    Remote {
        /// What was attempted, e.g. `list the refs of`.
        action: String,
        /// The repository.
        url: String,
        /// What gix and git said.
        message: String,
    },
    /// The fetch worked, but the commit is not among the objects the remote sent.
    #[error(
        "commit {commit} is not in {url} after fetching {fetched} into {}; the branch may have \
         been force-pushed, or the commit was never pushed: resolve the revision again",
        dir.display()
    )]
    CommitNotFound {
        /// The repository.
        url: String,
        /// The missing commit.
        commit: String,
        /// What was fetched.
        fetched: String,
        /// The cache.
        dir: PathBuf,
    },
    /// `checkout` was asked for a commit the cache does not hold.
    #[error(
        "commit {commit} of {url} is not in the git cache {}; fetch it before checking it out",
        dir.display()
    )]
    NotFetched {
        /// The repository.
        url: String,
        /// The missing commit.
        commit: String,
        /// The cache.
        dir: PathBuf,
    },
    /// The checkout destination already holds files.
    #[error(
        "cannot check out into {}: it is not an empty directory; give a new or empty directory",
        dest.display()
    )]
    DestinationNotEmpty {
        /// The destination.
        dest: PathBuf,
    },
    /// The commit's tree holds a path git refuses to check out (`..`, `.git`, a `/` in a name).
    #[error("commit {commit} of {url} holds the path '{path}', which is not checked out (git refuses it too)")]
    UnsafePath {
        /// The repository.
        url: String,
        /// The commit.
        commit: String,
        /// The offending path.
        path: String,
    },
    /// Writing the tree of a commit failed, with gix and with the git CLI.
    #[error("cannot check out commit {commit} of {url} into {}: {message}", dest.display())]
    Checkout {
        /// The repository.
        url: String,
        /// The commit.
        commit: String,
        /// The destination.
        dest: PathBuf,
        /// What gix and git said.
        message: String,
    },
    /// Reading a file of a commit failed, with gix and with the git CLI.
    #[error("cannot read {} at commit {commit} of {url}: {message}", path.display())]
    Read {
        /// The repository.
        url: String,
        /// The commit.
        commit: String,
        /// The file, relative to the repository root.
        path: PathBuf,
        /// What gix and git said.
        message: String,
    },
    /// The `git` program could not be started.
    #[error("cannot run git: {source}; git must be installed and on PATH")]
    GitNotRunnable {
        /// Why it could not be started.
        source: std::io::Error,
    },
    /// A file or directory of the cache or the destination could not be made.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The cache could not be opened or created.
    #[error("git cache {} of {url}: {message}; remove the directory to start it afresh", dir.display())]
    Cache {
        /// The repository.
        url: String,
        /// The cache.
        dir: PathBuf,
        /// What gix said.
        message: String,
    },
}

/// Which implementation does the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// gix, falling back to the git CLI.
    Gix,
    /// The git CLI only (tests of the fallback).
    #[cfg_attr(not(test), allow(dead_code))]
    Cli,
}

/// Per-repository git caches under one root, for resolving, fetching and checking out the
/// sources of component builds. Cheap to clone; several threads and processes may share a root.
#[derive(Debug, Clone)]
pub struct GitSources {
    root: PathBuf,
    backend: Backend,
}

/// What a [`Revision`] names on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// A ref by full name (`refs/heads/main`, `refs/tags/v1.0`, `refs/pull/7/head`).
    Ref(String),
    /// A commit by id.
    Commit(ObjectId),
}

impl GitSources {
    /// Per-repository bare caches live under `root` (e.g. `var/cache/git`), one directory per URL
    /// (`<root>/<host>/<path>`, `<root>/file/<path>` for `file://` URLs). Created on demand.
    pub fn new(root: impl Into<PathBuf>) -> GitSources {
        GitSources {
            root: root.into(),
            backend: Backend::Gix,
        }
    }

    /// The same caches, handled by the git CLI alone (to test the fallback).
    #[cfg(test)]
    pub(crate) fn cli_only(mut self) -> GitSources {
        self.backend = Backend::Cli;
        self
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache directory of `url`.
    pub fn repo_dir(&self, url: &str) -> Result<PathBuf, GitError> {
        payload::changelog::cache_dir(&self.root, url)
            .ok_or_else(|| GitError::InvalidUrl { url: url.into() })
    }

    /// The remote's current commit for `rev`, without fetching objects (like `git ls-remote`).
    ///
    /// [`Revision::Branch`] names `refs/heads/<name>`. [`Revision::Ref`] is a tag
    /// (`refs/tags/<r>`, an annotated tag peeled to its commit), a full ref (`refs/...`, e.g.
    /// `refs/pull/7/head`), or a full 40-hex commit id, returned as is without asking the remote.
    ///
    /// Made to run for every component on every reconcile: a `file://` remote is opened in place
    /// and its refs read directly (well under a millisecond); other remotes get a handshake and a
    /// ref listing filtered to the one ref. When gix fails for a reason other than a missing ref,
    /// `git ls-remote` is asked instead.
    pub fn resolve(&self, url: &str, rev: &Revision) -> Result<CommitId, GitError> {
        let name = match Wanted::of(url, rev)? {
            Wanted::Commit(id) => return Ok(id.to_string()),
            Wanted::Ref(name) => name,
        };
        let mut gix_error = None;
        if self.backend == Backend::Gix {
            let found = match file_path(url) {
                Some(path) => resolve_in_place(&path, &name),
                None => self.resolve_remote(url, &name),
            };
            match found {
                Ok(Some(id)) => return Ok(id.to_string()),
                Ok(None) => return Err(not_found(url, rev, &name)),
                Err(e) => {
                    tracing::debug!(url, error = %e, "gix failed, trying the git CLI");
                    gix_error = Some(e);
                }
            }
        }
        let dir = self.repo_dir(url)?;
        match ls_remote(url, &name, &dir) {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(not_found(url, rev, &name)),
            Err(cli) => Err(GitError::Remote {
                action: "list the refs of".into(),
                url: url.into(),
                message: combine(gix_error, cli),
            }),
        }
    }

    /// Makes sure `commit` is in the cache of `url`, fetching when it is not: the ref `rev` names
    /// (as a branch, tag or full ref under the same name in the cache), then, if the commit is
    /// still missing (the branch moved on and dropped it), the commit by id. A fetch adds to the
    /// existing cache: the remote sends only objects the cache lacks.
    ///
    /// gix fetches; the git CLI (`git fetch` into the bare cache) takes over when gix fails.
    /// Concurrent calls for one URL, from threads or processes, take turns on a lock file next to
    /// the cache (`<cache>.lock`).
    pub fn fetch(&self, url: &str, rev: &Revision, commit: &str) -> Result<(), GitError> {
        let id = parse_commit(commit)?;
        let wanted = Wanted::of(url, rev)?;
        let dir = self.repo_dir(url)?;
        if has_commit(&dir, id) {
            return Ok(());
        }
        let _lock = lock(&dir)?;
        ensure_cache(url, &dir)?;
        if has_commit(&dir, id) {
            // Another thread or process fetched it while this one waited for the lock.
            return Ok(());
        }
        let by_id = format!("+{id}:{COMMIT_REFS}{id}");
        let (fetched, specs) = match &wanted {
            Wanted::Ref(name) => {
                let fetched = format!("{name} and the commit by id");
                // The ref stays in the second request: it lets the server filter what it lists.
                let by_ref = format!("+{name}:{name}");
                (fetched, vec![vec![by_ref.clone()], vec![by_ref, by_id]])
            }
            Wanted::Commit(_) => ("the commit by id".to_string(), vec![vec![by_id]]),
        };
        for specs in &specs {
            match self.fetch_specs(url, rev, &wanted, &dir, specs) {
                // The remote refuses commits it does not advertise, or does not have this one.
                Err(GitError::Remote { message, .. }) if message.contains("not our ref") => {}
                result => result?,
            }
            if has_commit(&dir, id) {
                gc_auto(&dir);
                return Ok(());
            }
        }
        Err(GitError::CommitNotFound {
            url: url.into(),
            commit: id.to_string(),
            fetched,
            dir,
        })
    }

    /// Writes the tree of `commit` (fetched before) into `dest`, which must not exist or be empty:
    /// regular files with their exec bit, symlinks as symlinks, no `.git`. Blobs are written as
    /// stored: no `.gitattributes` filters or end-of-line conversion.
    ///
    /// Submodules are skipped: each becomes an empty directory, as in a clone without
    /// `--recurse-submodules`.
    ///
    /// gix walks the tree; the git CLI (`git read-tree` and `git checkout-index` with a throwaway
    /// index) takes over when gix fails.
    pub fn checkout(&self, url: &str, commit: &str, dest: &Path) -> Result<(), GitError> {
        let (id, dir) = self.fetched(url, commit)?;
        prepare_destination(dest)?;
        let mut gix_error = None;
        if self.backend == Backend::Gix {
            match write_commit(&dir, id, dest) {
                Ok(()) => return Ok(()),
                Err(TreeError::Unsafe(path)) => {
                    return Err(GitError::UnsafePath {
                        url: url.into(),
                        commit: id.to_string(),
                        path,
                    });
                }
                Err(TreeError::Gix(e)) => {
                    tracing::debug!(url, error = %e, "gix checkout failed, trying the git CLI");
                    gix_error = Some(e);
                }
            }
            clear_directory(dest)?;
        }
        cli_checkout(&dir, id, dest).map_err(|cli| GitError::Checkout {
            url: url.into(),
            commit: id.to_string(),
            dest: dest.to_path_buf(),
            message: combine(gix_error, cli),
        })
    }

    /// The content of the file at `path` (relative to the repository root) in `commit` (fetched
    /// before), `None` if the commit has no file there. A symlink is followed when it points to
    /// another file of the commit.
    ///
    /// gix reads the tree; the git CLI (`git cat-file --batch --follow-symlinks`) takes over when
    /// gix fails.
    pub fn read_file(
        &self,
        url: &str,
        commit: &str,
        path: &Path,
    ) -> Result<Option<Vec<u8>>, GitError> {
        let (id, dir) = self.fetched(url, commit)?;
        let mut gix_error = None;
        if self.backend == Backend::Gix {
            match gix_read_file(&dir, id, path) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    tracing::debug!(url, error = %e, "gix failed, trying the git CLI");
                    gix_error = Some(e);
                }
            }
        }
        cli_read_file(&dir, id, path).map_err(|cli| GitError::Read {
            url: url.into(),
            commit: id.to_string(),
            path: path.to_path_buf(),
            message: combine(gix_error, cli),
        })
    }

    /// The id of `commit` and the cache of `url`, which must have it.
    fn fetched(&self, url: &str, commit: &str) -> Result<(ObjectId, PathBuf), GitError> {
        let id = parse_commit(commit)?;
        let dir = self.repo_dir(url)?;
        if !dir.join("HEAD").is_file() || !has_commit(&dir, id) {
            return Err(GitError::NotFetched {
                url: url.into(),
                commit: id.to_string(),
                dir,
            });
        }
        Ok((id, dir))
    }

    /// Lists the remote's refs with gix, filtered to `name`: its peeled id, `None` if the remote
    /// has no such ref, `Err` (gix's message) when the listing failed.
    fn resolve_remote(&self, url: &str, name: &str) -> Result<Option<ObjectId>, String> {
        let dir = self.repo_dir(url).map_err(|e| e.to_string())?;
        if !dir.join("HEAD").is_file() {
            let _lock = lock(&dir).map_err(|e| e.to_string())?;
            ensure_cache(url, &dir).map_err(|e| e.to_string())?;
        }
        let repo = gix::open(&dir).map_err(|e| chain(&e))?;
        let remote = repo
            .remote_at(url)
            .and_then(|r| r.with_refspecs([name], Direction::Fetch))
            .map(|r| r.with_fetch_tags(gix::remote::fetch::Tags::None))
            .map_err(|e| chain(&e))?;
        let connection = remote.connect(Direction::Fetch).map_err(|e| chain(&e))?;
        let connection = with_credentials(connection, &repo, url)?;
        let options = gix::remote::ref_map::Options::default();
        let (ref_map, _) = connection
            .ref_map(gix::progress::Discard, options)
            .map_err(|e| chain(&e))?;
        Ok(find_ref(&ref_map.remote_refs, name))
    }

    /// Fetches `specs` into the cache at `dir`, with gix then the CLI. A missing ref is reported
    /// as such, without falling back.
    fn fetch_specs(
        &self,
        url: &str,
        rev: &Revision,
        wanted: &Wanted,
        dir: &Path,
        specs: &[String],
    ) -> Result<(), GitError> {
        let mut gix_error = None;
        if self.backend == Backend::Gix {
            match gix_fetch(url, wanted, dir, specs) {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(not_found_wanted(url, rev, wanted)),
                Err(e) => {
                    tracing::debug!(url, error = %e, "gix failed, trying the git CLI");
                    gix_error = Some(e);
                }
            }
        }
        let mut args = vec![
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--",
        ];
        args.push(url);
        args.extend(specs.iter().map(String::as_str));
        let out = git_in(dir, &args, None)?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = stderr(&out);
        if stderr.contains("couldn't find remote ref") {
            return Err(not_found_wanted(url, rev, wanted));
        }
        let what: Vec<&str> = specs
            .iter()
            .filter_map(|spec| spec.trim_start_matches('+').split(':').next())
            .collect();
        Err(GitError::Remote {
            action: format!("fetch {} from", what.join(" and ")),
            url: url.into(),
            message: combine(gix_error, format!("git fetch: {stderr}")),
        })
    }
}

impl Wanted {
    /// What `rev` names in the repository at `url`; refuses names git would refuse.
    fn of(url: &str, rev: &Revision) -> Result<Wanted, GitError> {
        let (given, full) = match rev {
            Revision::Branch(name) => (name, format!("refs/heads/{name}")),
            Revision::Ref(r) if is_full_commit_id(r) => {
                return parse_commit(r).map(Wanted::Commit);
            }
            Revision::Ref(r) if r.starts_with("refs/") => (r, r.clone()),
            Revision::Ref(r) => (r, format!("refs/tags/{r}")),
        };
        let invalid = |reason: String| GitError::InvalidRefName {
            url: url.into(),
            name: given.clone(),
            reason,
        };
        if given.is_empty() || given.starts_with('-') || given.ends_with('/') {
            return Err(invalid(
                "empty, starting with '-' or ending with '/'".into(),
            ));
        }
        gix::validate::reference::name(full.as_bytes().into())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Wanted::Ref(full))
    }
}

/// Why writing a tree with gix stopped.
enum TreeError {
    /// A path git refuses (final: the CLI would refuse it too).
    Unsafe(String),
    /// Anything else (the CLI may do better).
    Gix(String),
}

/// A gix failure while writing a tree.
fn gix_err(e: impl std::error::Error) -> TreeError {
    TreeError::Gix(chain(&e))
}

/// Writes the tree of commit `id` of the cache at `dir` into the existing, empty `dest`.
fn write_commit(dir: &Path, id: ObjectId, dest: &Path) -> Result<(), TreeError> {
    let mut repo = gix::open_opts(dir, gix::open::Options::isolated()).map_err(gix_err)?;
    repo.object_cache_size_if_unset(16 * 1024 * 1024);
    let tree = repo
        .find_commit(id)
        .map_err(gix_err)?
        .tree_id()
        .map_err(gix_err)?;
    write_tree(&repo, tree.detach(), dest, "")
}

/// Writes the entries of `tree` into the existing directory `dir`, which is `prefix` in the
/// commit. Never follows or replaces what is already there: every entry is created new.
fn write_tree(
    repo: &gix::Repository,
    tree: ObjectId,
    dir: &Path,
    prefix: &str,
) -> Result<(), TreeError> {
    let tree = repo.find_tree(tree).map_err(gix_err)?;
    let io = |path: &Path, e: std::io::Error| TreeError::Gix(format!("{}: {e}", path.display()));
    for entry in tree.iter() {
        let entry = entry.map_err(gix_err)?;
        let name = entry.filename();
        let shown = format!("{prefix}{name}");
        if !is_safe_name(name) {
            return Err(TreeError::Unsafe(shown));
        }
        let path = dir.join(OsStr::from_bytes(name));
        let id = entry.oid().to_owned();
        match entry.kind() {
            EntryKind::Tree => {
                fs::create_dir(&path).map_err(|e| io(&path, e))?;
                write_tree(repo, id, &path, &format!("{shown}/"))?;
            }
            kind @ (EntryKind::Blob | EntryKind::BlobExecutable) => {
                let blob = repo.find_blob(id).map_err(gix_err)?;
                let mode = if kind == EntryKind::BlobExecutable {
                    0o777
                } else {
                    0o666
                };
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
                    .map_err(|e| io(&path, e))?;
                file.write_all(&blob.data).map_err(|e| io(&path, e))?;
            }
            EntryKind::Link => {
                let blob = repo.find_blob(id).map_err(gix_err)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&blob.data), &path)
                    .map_err(|e| io(&path, e))?;
            }
            EntryKind::Commit => fs::create_dir(&path).map_err(|e| io(&path, e))?,
        }
    }
    Ok(())
}

/// How many symlinks [`GitSources::read_file`] follows before giving up, as a loop.
const MAX_SYMLINKS: usize = 8;

/// The path components of `path` relative to the repository root, with `.` and `..` resolved;
/// `None` if it leaves the root.
fn tree_path(path: &Path) -> Option<Vec<Vec<u8>>> {
    use std::path::Component;
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => parts.push(name.as_bytes().to_vec()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts)
}

/// Reads the file at `path` of commit `id` with gix, following symlinks inside the commit.
fn gix_read_file(dir: &Path, id: ObjectId, path: &Path) -> Result<Option<Vec<u8>>, String> {
    let repo = gix::open_opts(dir, gix::open::Options::isolated()).map_err(|e| chain(&e))?;
    let tree = repo
        .find_commit(id)
        .and_then(|c| c.tree())
        .map_err(|e| chain(&e))?;
    let mut path = path.to_path_buf();
    for _ in 0..=MAX_SYMLINKS {
        let Some(parts) = tree_path(&path) else {
            return Ok(None);
        };
        let entry = tree
            .lookup_entry(parts.iter().map(|p| p.as_slice()))
            .map_err(|e| chain(&e))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let blob = match entry.mode().kind() {
            EntryKind::Blob | EntryKind::BlobExecutable | EntryKind::Link => {
                repo.find_blob(entry.object_id()).map_err(|e| chain(&e))?
            }
            EntryKind::Tree | EntryKind::Commit => return Ok(None),
        };
        if entry.mode().kind() != EntryKind::Link {
            return Ok(Some(blob.detach().data));
        }
        let target = Path::new(OsStr::from_bytes(&blob.data));
        path = path.parent().unwrap_or(Path::new("")).join(target);
    }
    Ok(None)
}

/// Reads the file at `path` of commit `id` with the git CLI (`git cat-file`, which follows
/// symlinks inside the commit with `--follow-symlinks`).
fn cli_read_file(dir: &Path, id: ObjectId, path: &Path) -> Result<Option<Vec<u8>>, String> {
    let Some(parts) = tree_path(path) else {
        return Ok(None);
    };
    let parts: Vec<String> = parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let spec = format!("{id}:{}", parts.join("/"));
    let out = git_in(
        dir,
        &["cat-file", "--batch", "--follow-symlinks"],
        Some(&spec),
    )
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("git cat-file: {}", stderr(&out)));
    }
    // `<id> blob <size>\n<content>\n`, or `<spec> missing` / `dangling` / `loop` / `notdir`.
    let Some(newline) = out.stdout.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let header = String::from_utf8_lossy(&out.stdout[..newline]);
    let mut fields = header.split(' ');
    let (Some(_), Some("blob"), Some(size)) = (fields.next(), fields.next(), fields.next()) else {
        return Ok(None);
    };
    let size: usize = size
        .parse()
        .map_err(|_| format!("git cat-file: bad header '{header}'"))?;
    let content = out.stdout.get(newline + 1..newline + 1 + size);
    content
        .map(|c| Some(c.to_vec()))
        .ok_or_else(|| "git cat-file: short output".to_string())
}

/// Whether a tree entry name is safe to create: not empty, `.`, `..` or `.git` (in any case), and
/// without `/` or NUL.
fn is_safe_name(name: &[u8]) -> bool {
    !(name.is_empty()
        || name == b"."
        || name == b".."
        || name.eq_ignore_ascii_case(b".git")
        || name.contains(&b'/')
        || name.contains(&0))
}

/// Reads the ref `name` of the repository at `path` in place: its peeled id, `None` if there is
/// no such ref.
fn resolve_in_place(path: &Path, name: &str) -> Result<Option<ObjectId>, String> {
    let repo = gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| chain(&e))?;
    let Some(mut reference) = repo.try_find_reference(name).map_err(|e| chain(&e))? else {
        return Ok(None);
    };
    if reference.name().as_bstr() != name {
        return Ok(None);
    }
    let id = reference.peel_to_id().map_err(|e| chain(&e))?;
    Ok(Some(id.detach()))
}

/// The peeled id of the ref `name` among `refs` as a remote listed them.
fn find_ref(refs: &[gix::protocol::handshake::Ref], name: &str) -> Option<ObjectId> {
    refs.iter().find_map(|r| match r.unpack() {
        (n, Some(id), peeled) if n == name => Some(peeled.unwrap_or(id).to_owned()),
        _ => None,
    })
}

/// `git ls-remote URL NAME`: the peeled id of `name`, `None` if the remote has no such ref. Runs
/// in the cache at `dir` if there is one, so that its configuration applies too.
fn ls_remote(url: &str, name: &str, dir: &Path) -> Result<Option<CommitId>, String> {
    // A pattern matches the ends of ref names; the peeled line of a tag needs its own.
    let peeled = format!("{name}^{{}}");
    let args = ["ls-remote", "--", url, name, &peeled];
    let out = if dir.join("HEAD").is_file() {
        git_in(dir, &args, None)
    } else {
        git(Path::new("/"), &args, None)
    };
    let out = out.map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("git ls-remote: {}", stderr(&out)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let listed = |wanted: &str| {
        text.lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(_, n)| *n == wanted)
            .map(|(id, _)| id.to_string())
    };
    let Some(id) = listed(&peeled).or_else(|| listed(name)) else {
        return Ok(None);
    };
    match parse_commit(&id) {
        Ok(id) => Ok(Some(id.to_string())),
        Err(_) => Err(format!(
            "git ls-remote listed '{id}' for {name}, which is not a commit id"
        )),
    }
}

/// Fetches `specs` from `url` into the cache at `dir` with gix. `Ok(false)` when the remote does
/// not have the ref `wanted` names.
fn gix_fetch(url: &str, wanted: &Wanted, dir: &Path, specs: &[String]) -> Result<bool, String> {
    let repo = gix::open(dir).map_err(|e| chain(&e))?;
    let remote = repo
        .remote_at(url)
        .and_then(|r| r.with_refspecs(specs.iter().map(String::as_str), Direction::Fetch))
        .map(|r| r.with_fetch_tags(gix::remote::fetch::Tags::None))
        .map_err(|e| chain(&e))?;
    let connection = remote.connect(Direction::Fetch).map_err(|e| chain(&e))?;
    let connection = with_credentials(connection, &repo, url)?;
    let options = gix::remote::ref_map::Options::default();
    let prepare = connection
        .prepare_fetch(gix::progress::Discard, options)
        .map_err(|e| chain(&e))?;
    if let Wanted::Ref(name) = wanted {
        if find_ref(&prepare.ref_map().remote_refs, name).is_none() {
            return Ok(false);
        }
    }
    prepare
        .receive(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(|e| chain(&e))?;
    Ok(true)
}

/// `connection` with the credential helpers the git configuration names for `url`, and no
/// terminal prompt.
fn with_credentials<'remote, 'repo, T>(
    connection: gix::remote::Connection<'remote, 'static, 'repo, T>,
    repo: &gix::Repository,
    url: &str,
) -> Result<gix::remote::Connection<'remote, 'static, 'repo, T>, String>
where
    T: gix::protocol::transport::client::blocking_io::Transport,
{
    let url = gix::Url::try_from(url).map_err(|e| chain(&e))?;
    let (mut cascade, _, mut prompt) = repo
        .config_snapshot()
        .credential_helpers(url)
        .map_err(|e| chain(&e))?;
    prompt.mode = gix::prompt::Mode::Disable;
    Ok(connection.with_credentials(move |action| cascade.invoke(action, prompt.clone())))
}

/// Takes the lock of the cache at `dir` (`<dir>.lock`), waiting for other holders; released when
/// the returned file is dropped.
fn lock(dir: &Path) -> Result<fs::File, GitError> {
    let mut path = dir.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| GitError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let io = |source| GitError::Io {
        path: path.clone(),
        source,
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// Creates the bare cache at `dir` if it does not exist: initialized beside it, then renamed into
/// place. Called with the cache's lock held.
fn ensure_cache(url: &str, dir: &Path) -> Result<(), GitError> {
    if dir.join("HEAD").is_file() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let io = |source| GitError::Io {
        path: parent.to_path_buf(),
        source,
    };
    fs::create_dir_all(parent).map_err(io)?;
    let staging = tempfile::Builder::new()
        .prefix(".init-")
        .tempdir_in(parent)
        .map_err(io)?;
    let new = staging.path().join("git");
    gix::init_bare(&new).map_err(|e| GitError::Cache {
        url: url.into(),
        dir: dir.to_path_buf(),
        message: chain(&e),
    })?;
    fs::rename(&new, dir).map_err(|source| GitError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Whether the cache at `dir` holds the commit `id`.
fn has_commit(dir: &Path, id: ObjectId) -> bool {
    let Ok(repo) = gix::open_opts(dir, gix::open::Options::isolated()) else {
        return false;
    };
    let header = repo.try_find_header(id).ok().flatten();
    header.is_some_and(|h| h.kind() == gix::object::Kind::Commit)
}

/// `git gc --auto` in the foreground: packs received by fetches are merged once there are many
/// (`gc.autoPackLimit`, 50). Best effort: a failure leaves the cache as it was.
fn gc_auto(dir: &Path) {
    let _ = git_in(
        dir,
        &["-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"],
        None,
    );
}

/// Makes `dest` an empty directory: creates it, or checks that it is empty.
fn prepare_destination(dest: &Path) -> Result<(), GitError> {
    let io = |source| GitError::Io {
        path: dest.to_path_buf(),
        source,
    };
    match fs::read_dir(dest).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(GitError::DestinationNotEmpty {
            dest: dest.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(dest).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(GitError::DestinationNotEmpty {
                dest: dest.to_path_buf(),
            })
        }
        Err(e) => Err(io(e)),
    }
}

/// Removes everything inside `dir` (after a failed checkout), without following symlinks.
fn clear_directory(dir: &Path) -> Result<(), GitError> {
    let io = |path: &Path, source| GitError::Io {
        path: path.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// Checks commit `id` of the cache at `dir` out into `dest` with the git CLI, through an index
/// file of its own.
fn cli_checkout(dir: &Path, id: ObjectId, dest: &Path) -> Result<(), String> {
    let index = tempfile::tempdir().map_err(|e| format!("temporary index: {e}"))?;
    let index = index.path().join("index");
    let work_tree = format!("--work-tree={}", dest.display());
    let id = id.to_string();
    for args in [
        vec!["--git-dir=.", &work_tree, "read-tree", &id],
        vec![
            "--git-dir=.",
            &work_tree,
            "checkout-index",
            "--all",
            "--force",
        ],
    ] {
        let out = git(dir, &args, Some(&index)).map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("git {}: {}", args[2], stderr(&out)));
        }
    }
    Ok(())
}

/// Runs git on the cache at `dir`, with `input` (a line) on stdin if given.
fn git_in(dir: &Path, args: &[&str], input: Option<&str>) -> Result<Output, GitError> {
    let args: Vec<&str> = std::iter::once("--git-dir=.")
        .chain(args.iter().copied())
        .collect();
    let mut cmd = git_command(dir, &args);
    let Some(input) = input else {
        return run(&mut cmd);
    };
    let spawned = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = spawned.map_err(|source| GitError::GitNotRunnable { source })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A git that exits early closes the pipe; its status and stderr tell why.
        let _ = writeln!(stdin, "{input}");
    }
    child
        .wait_with_output()
        .map_err(|source| GitError::GitNotRunnable { source })
}

/// Runs git in `cwd`, with `GIT_INDEX_FILE` set to `index` if given.
fn git(cwd: &Path, args: &[&str], index: Option<&Path>) -> Result<Output, GitError> {
    let mut cmd = git_command(cwd, args);
    if let Some(index) = index {
        cmd.env("GIT_INDEX_FILE", index);
    }
    run(&mut cmd)
}

/// `git ARGS` in `cwd` with stdin closed, no terminal prompt and no inherited repository
/// variables.
fn git_command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    for var in GIT_REPO_ENV {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    cmd
}

/// Runs `cmd` to completion, capturing its output.
fn run(cmd: &mut Command) -> Result<Output, GitError> {
    cmd.output()
        .map_err(|source| GitError::GitNotRunnable { source })
}

/// git's stderr, trimmed.
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// An error and its sources, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// The message of a CLI failure, after gix's if gix was tried.
fn combine(gix_error: Option<String>, cli: String) -> String {
    match gix_error {
        Some(gix_error) => format!("{cli} (gix: {gix_error})"),
        None => cli,
    }
}

/// The path of a `file://` URL.
fn file_path(url: &str) -> Option<PathBuf> {
    let parsed = url::Url::parse(url).ok()?;
    (parsed.scheme() == "file")
        .then(|| parsed.to_file_path().ok())
        .flatten()
}

/// Whether `s` is a full sha1 commit id (any case).
fn is_full_commit_id(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A full commit id, lowercase.
fn parse_commit(commit: &str) -> Result<ObjectId, GitError> {
    let invalid = || GitError::InvalidCommit {
        commit: commit.into(),
    };
    if !is_full_commit_id(commit) {
        return Err(invalid());
    }
    ObjectId::from_hex(commit.to_ascii_lowercase().as_bytes()).map_err(|_| invalid())
}

/// The error for a ref `rev` names that the remote does not have.
fn not_found(url: &str, rev: &Revision, full_name: &str) -> GitError {
    match rev {
        Revision::Branch(branch) => GitError::BranchNotFound {
            url: url.into(),
            branch: branch.clone(),
        },
        Revision::Ref(reference) => GitError::RefNotFound {
            url: url.into(),
            reference: reference.clone(),
            full_name: full_name.into(),
        },
    }
}

/// The error for the ref `wanted` names when the remote does not have it.
fn not_found_wanted(url: &str, rev: &Revision, wanted: &Wanted) -> GitError {
    match wanted {
        Wanted::Ref(name) => not_found(url, rev, name),
        Wanted::Commit(id) => not_found(url, rev, &id.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::git::Upstream;

    /// An upstream with a file, an executable, a symlink and a nested file on `main`.
    fn upstream(tmp: &Path) -> Upstream {
        let up = Upstream::init(tmp.join("repo"));
        let dir = up.dir();
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::write(dir.join("README.md"), "hello\n").unwrap();
        fs::write(dir.join("a/b/c.txt"), "nested\n").unwrap();
        fs::write(dir.join("run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(dir.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a/b/c.txt", dir.join("link")).unwrap();
        up.git(&["add", "-A"]);
        up.git(&["commit", "--quiet", "-m", "files"]);
        up
    }

    use std::os::unix::fs::PermissionsExt;

    /// path → (mode bits or `l` for links, content or target), for comparing checkouts.
    fn snapshot(root: &Path) -> Vec<(String, String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&path).unwrap();
                    out.push((rel, "l".into(), target.as_os_str().as_bytes().to_vec()));
                } else if meta.is_dir() {
                    out.push((rel, "d".into(), Vec::new()));
                    stack.push(path);
                } else {
                    let exec = meta.permissions().mode() & 0o111 != 0;
                    out.push((rel, format!("x={exec}"), fs::read(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn main_branch() -> Revision {
        Revision::Branch("main".into())
    }

    #[test]
    fn revisions_name_full_refs_or_commits() {
        let url = "https://example.com/org/repo";
        let of = |rev: Revision| Wanted::of(url, &rev).ok();
        let full = |s: &str| Some(Wanted::Ref(s.into()));
        assert_eq!(
            of(Revision::Branch("release-4.17".into())),
            full("refs/heads/release-4.17")
        );
        assert_eq!(of(Revision::Ref("v1.0".into())), full("refs/tags/v1.0"));
        assert_eq!(
            of(Revision::Ref("refs/pull/7/head".into())),
            full("refs/pull/7/head")
        );
        let id = "0123456789ABCDEF0123456789abcdef01234567";
        let Some(Wanted::Commit(commit)) = of(Revision::Ref(id.into())) else {
            panic!("a commit id")
        };
        assert_eq!(commit.to_string(), id.to_ascii_lowercase());
        for bad in ["", "-x", "a..b", "a b", "x/", "x.lock", "a~1", "@{u}"] {
            let err = Wanted::of(url, &Revision::Branch(bad.into())).unwrap_err();
            assert!(
                matches!(err, GitError::InvalidRefName { .. }),
                "{bad}: {err:?}"
            );
        }
        // An abbreviated id is looked up as a tag (and reported as missing, with a hint).
        assert_eq!(
            of(Revision::Ref("0123456".into())),
            full("refs/tags/0123456")
        );
        assert!(parse_commit("0123456").is_err());
    }

    #[test]
    fn unsafe_tree_names_and_paths_are_refused() {
        for name in ["", ".", "..", ".git", ".GIT", "a/b", "a\0b"] {
            assert!(!is_safe_name(name.as_bytes()), "{name:?}");
        }
        for name in [".gitignore", "...", "git", ".github"] {
            assert!(is_safe_name(name.as_bytes()), "{name:?}");
        }
        let parts = |p: &str| tree_path(Path::new(p));
        assert_eq!(
            parts("a/./b/../c"),
            Some(vec![b"a".to_vec(), b"c".to_vec()])
        );
        assert_eq!(parts("../x"), None);
        assert_eq!(parts("/etc/passwd"), None);
    }

    /// The gix paths work on their own (the public API would hide a failure behind the CLI).
    #[test]
    fn gix_does_the_work_without_the_cli() {
        let tmp = tempfile::tempdir().unwrap();
        let up = upstream(tmp.path());
        let url = up.url();
        let sources = GitSources::new(tmp.path().join("cache"));
        let head: ObjectId = up.head().parse().unwrap();

        assert_eq!(
            resolve_in_place(up.dir(), "refs/heads/main"),
            Ok(Some(head))
        );
        assert_eq!(resolve_in_place(up.dir(), "refs/heads/nope"), Ok(None));
        // The handshake path, as for https (gix runs git-upload-pack for file://).
        assert_eq!(
            sources.resolve_remote(&url, "refs/heads/main"),
            Ok(Some(head))
        );
        assert_eq!(sources.resolve_remote(&url, "refs/heads/nope"), Ok(None));

        let dir = sources.repo_dir(&url).unwrap();
        let wanted = Wanted::Ref("refs/heads/main".into());
        let spec = ["+refs/heads/main:refs/heads/main".to_string()];
        assert_eq!(gix_fetch(&url, &wanted, &dir, &spec), Ok(true));
        assert!(has_commit(&dir, head));
        let missing = Wanted::Ref("refs/heads/nope".into());
        let spec = ["+refs/heads/nope:refs/heads/nope".to_string()];
        assert_eq!(gix_fetch(&url, &missing, &dir, &spec), Ok(false));

        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        assert!(write_commit(&dir, head, &dest).is_ok());
        assert_eq!(
            fs::read_to_string(dest.join("a/b/c.txt")).unwrap(),
            "nested\n"
        );
        let read = gix_read_file(&dir, head, Path::new("link"));
        assert_eq!(read, Ok(Some(b"nested\n".to_vec())));
    }

    /// The CLI alone gives the same results as gix, fetching into the same kind of cache.
    #[test]
    fn the_cli_fallback_matches_gix() {
        let tmp = tempfile::tempdir().unwrap();
        let up = upstream(tmp.path());
        let url = up.url();
        let gix = GitSources::new(tmp.path().join("gix"));
        let cli = GitSources::new(tmp.path().join("cli")).cli_only();
        let rev = main_branch();

        let commit = gix.resolve(&url, &rev).unwrap();
        assert_eq!(cli.resolve(&url, &rev).unwrap(), commit);
        up.git(&["tag", "-a", "v1", "-m", "v1"]);
        let tag = Revision::Ref("v1".into());
        assert_eq!(cli.resolve(&url, &tag).unwrap(), commit, "peeled");
        let missing = Revision::Branch("release-4.99".into());
        let (g, c) = (gix.resolve(&url, &missing), cli.resolve(&url, &missing));
        assert_eq!(g.unwrap_err().to_string(), c.unwrap_err().to_string());

        let err = cli.fetch(&url, &missing, &commit).unwrap_err();
        assert!(matches!(err, GitError::BranchNotFound { .. }), "{err:?}");
        gix.fetch(&url, &rev, &commit).unwrap();
        cli.fetch(&url, &rev, &commit).unwrap();
        let (gix_out, cli_out) = (tmp.path().join("gix-out"), tmp.path().join("cli-out"));
        gix.checkout(&url, &commit, &gix_out).unwrap();
        cli.checkout(&url, &commit, &cli_out).unwrap();
        assert_eq!(snapshot(&cli_out), snapshot(&gix_out));
        assert!(!cli_out.join(".git").exists());
        let link = Path::new("link");
        assert_eq!(
            cli.read_file(&url, &commit, link).unwrap(),
            gix.read_file(&url, &commit, link).unwrap()
        );
        assert_eq!(
            cli.read_file(&url, &commit, Path::new("nope")).unwrap(),
            None
        );

        // Incremental with the CLI too: only the new commit, root tree and blob arrive (git
        // keeps so few objects loose rather than in a pack).
        let cache = cli.repo_dir(&url).unwrap();
        let objects = || {
            let out = git_in(&cache, &["count-objects", "-v"], None).unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let field = |name: &str| -> usize {
                let line = text.lines().find(|l| l.starts_with(name)).unwrap();
                line[name.len()..].trim().parse().unwrap()
            };
            field("count:") + field("in-pack:")
        };
        let before = objects();
        fs::write(up.dir().join("README.md"), "again\n").unwrap();
        up.git(&["commit", "--quiet", "-am", "again"]);
        let second = cli.resolve(&url, &rev).unwrap();
        cli.fetch(&url, &rev, &second).unwrap();
        assert_eq!(objects(), before + 3);
        let out = tmp.path().join("cli-second");
        cli.checkout(&url, &second, &out).unwrap();
        assert_eq!(
            fs::read_to_string(out.join("README.md")).unwrap(),
            "again\n"
        );
    }
}
