//! Writing git history without the git CLI: bare repositories, commits of whole file sets, and
//! merge commits, as `okd-forge demo` needs for the upstream repositories it generates.
//!
//! ```no_run
//! use build::gitwrite::{Files, Repo};
//!
//! let repo = Repo::init("var/demo/upstream/installer")?;
//! let mut files = Files::new();
//! files.insert("bin/openshift-install".into(), (b"#!/bin/sh\n".to_vec(), true));
//! let first = repo.commit("release-4.17", &files, "installer: initial import", &[], 1_764_000_000)?;
//! # let _ = first;
//! # Ok::<(), build::gitwrite::WriteError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gix::objs::tree::{Entry, EntryKind};
pub use gix::ObjectId;

/// A whole tree: path (slash-separated, relative) → (content, executable).
pub type Files = BTreeMap<String, (Vec<u8>, bool)>;

/// The author and committer of every commit written here.
const NAME: &str = "OKD demo";
const EMAIL: &str = "demo@okd.invalid";

/// Why a repository could not be written.
#[derive(Debug, thiserror::Error)]
#[error("git repository {}: {what}: {reason}", path.display())]
pub struct WriteError {
    path: PathBuf,
    what: String,
    reason: String,
}

/// A bare repository being written.
pub struct Repo {
    path: PathBuf,
    repo: gix::Repository,
}

impl Repo {
    /// Creates a bare repository at `path` (which must not hold one yet).
    pub fn init(path: impl AsRef<Path>) -> Result<Repo, WriteError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|e| WriteError {
            path: path.clone(),
            what: "create".into(),
            reason: e.to_string(),
        })?;
        let repo = gix::init_bare(&path).map_err(|e| WriteError {
            path: path.clone(),
            what: "init".into(),
            reason: e.to_string(),
        })?;
        Ok(Repo { path, repo })
    }

    fn err(&self, what: &str) -> impl Fn(String) -> WriteError + '_ {
        let what = what.to_string();
        move |reason| WriteError {
            path: self.path.clone(),
            what: what.clone(),
            reason,
        }
    }

    /// Commits exactly `files` onto `branch` (created if missing) with `parents` (the branch's
    /// current head is not added by itself: give it), at `time` (Unix seconds, UTC). Returns the
    /// commit id.
    pub fn commit(
        &self,
        branch: &str,
        files: &Files,
        message: &str,
        parents: &[ObjectId],
        time: i64,
    ) -> Result<ObjectId, WriteError> {
        let tree = self.write_tree(files, "")?;
        let stamp = format!("{time} +0000");
        let sig = gix::actor::SignatureRef {
            name: NAME.into(),
            email: EMAIL.into(),
            time: &stamp,
        };
        let commit = gix::objs::Commit {
            tree,
            parents: parents.iter().copied().collect(),
            author: sig
                .to_owned()
                .map_err(|e| self.err("author")(e.to_string()))?,
            committer: sig
                .to_owned()
                .map_err(|e| self.err("author")(e.to_string()))?,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        let id = self
            .repo
            .write_object(&commit)
            .map_err(|e| self.err("commit")(e.to_string()))?
            .detach();
        self.repo
            .reference(
                format!("refs/heads/{branch}"),
                id,
                gix::refs::transaction::PreviousValue::Any,
                message.lines().next().unwrap_or(""),
            )
            .map_err(|e| self.err(&format!("branch {branch}"))(e.to_string()))?;
        Ok(id)
    }

    /// Writes the tree of the `files` under `prefix` (empty or ending in `/`).
    fn write_tree(&self, files: &Files, prefix: &str) -> Result<ObjectId, WriteError> {
        let mut entries = Vec::new();
        let mut dirs: Vec<&str> = Vec::new();
        for (path, (content, executable)) in files.range(prefix.to_string()..) {
            let Some(rest) = path.strip_prefix(prefix) else {
                break;
            };
            match rest.split_once('/') {
                Some((dir, _)) => {
                    if dirs.last() != Some(&dir) {
                        dirs.push(dir);
                    }
                }
                None => {
                    let oid = self
                        .repo
                        .write_blob(content)
                        .map_err(|e| self.err(path)(e.to_string()))?
                        .detach();
                    let kind = if *executable {
                        EntryKind::BlobExecutable
                    } else {
                        EntryKind::Blob
                    };
                    entries.push(Entry {
                        mode: kind.into(),
                        filename: rest.into(),
                        oid,
                    });
                }
            }
        }
        for dir in dirs {
            let oid = self.write_tree(files, &format!("{prefix}{dir}/"))?;
            entries.push(Entry {
                mode: EntryKind::Tree.into(),
                filename: dir.into(),
                oid,
            });
        }
        entries.sort();
        let tree = gix::objs::Tree { entries };
        Ok(self
            .repo
            .write_object(&tree)
            .map_err(|e| self.err("tree")(e.to_string()))?
            .detach())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Revision;
    use crate::git::GitSources;

    #[test]
    fn written_history_is_read_back_by_the_build_stage() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(dir.path().join("up")).unwrap();
        let mut files = Files::new();
        files.insert("README".into(), (b"one\n".to_vec(), false));
        files.insert("bin/tool".into(), (b"#!/bin/sh\n".to_vec(), true));
        files.insert("manifests/a/b.yaml".into(), (b"kind: A\n".to_vec(), false));
        let first = repo
            .commit("main", &files, "first", &[], 1_700_000_000)
            .unwrap();
        files.insert("README".into(), (b"two\n".to_vec(), false));
        let second = repo
            .commit("main", &files, "second\n\nbody", &[first], 1_700_000_100)
            .unwrap();

        let url = format!("file://{}", dir.path().join("up").display());
        let sources = GitSources::new(dir.path().join("cache"));
        let rev = Revision::Branch("main".into());
        let head = sources.resolve(&url, &rev).unwrap();
        assert_eq!(head, second.to_string());
        sources.fetch(&url, &rev, &head).unwrap();
        let out = dir.path().join("out");
        sources.checkout(&url, &head, &out).unwrap();
        assert_eq!(std::fs::read(out.join("README")).unwrap(), b"two\n");
        assert_eq!(
            std::fs::read(out.join("manifests/a/b.yaml")).unwrap(),
            b"kind: A\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "bin/tool is executable");
    }
}
