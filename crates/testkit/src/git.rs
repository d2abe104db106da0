//! Git repositories made by a test, for code that reads them through `file://` URLs (the changelog's
//! git cache, `release diff --changelog`).
//!
//! [`Upstream`] runs `git` with no user or system configuration (`GIT_CONFIG_GLOBAL=/dev/null`,
//! `GIT_CONFIG_NOSYSTEM`, no inherited `GIT_DIR` and friends), a fixed identity, unsigned commits and a
//! clock of its own (each git call one minute after the previous, starting just after
//! 2023-11-14T22:13:20Z), so what a test builds is the same on every machine.
//!
//! ```no_run
//! let tmp = tempfile::tempdir().unwrap();
//! let up = testkit::git::Upstream::init(tmp.path().join("repo"));
//! let from = up.head();
//! let to = up.pull_request(7, "fix", &["OCPBUGS-7: fix the thing"]);
//! println!("{} {from}..{to}", up.url());
//! ```

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `git` with no user or system configuration and no inherited `GIT_DIR` and friends.
pub fn command() -> Command {
    let mut cmd = Command::new("git");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    cmd
}

/// An upstream repository on disk, on branch `main`, with deterministic commit dates.
pub struct Upstream {
    dir: PathBuf,
    clock: Cell<u64>,
}

impl Upstream {
    /// A new repository at `dir` (created if needed) on branch `main`, with one empty commit
    /// "initial". It serves partial clones and fetches of commits by id, as GitHub does.
    pub fn init(dir: PathBuf) -> Upstream {
        std::fs::create_dir_all(&dir).expect("create the repository directory");
        let up = Upstream {
            dir,
            clock: Cell::new(1_700_000_000),
        };
        up.git(&["init", "--quiet", "-b", "main"]);
        up.git(&["config", "uploadpack.allowFilter", "true"]);
        up.git(&["config", "uploadpack.allowAnySHA1InWant", "true"]);
        up.commit("initial");
        up
    }

    /// The repository's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `file://DIR`.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// Run `git ARGS…` in the repository, one minute after the previous call; panics with git's
    /// output unless it succeeds. Returns stdout, trimmed.
    pub fn git(&self, args: &[&str]) -> String {
        let time = self.clock.get() + 60;
        self.clock.set(time);
        let date = format!("{time} +0000");
        let mut cmd = command();
        cmd.args(["-c", "user.name=t", "-c", "user.email=t@e"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        crate::run_ok(&mut cmd).trim().to_string()
    }

    /// The id of `HEAD`.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// An empty commit on the current branch; returns its id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.head()
    }

    /// Check out the existing branch `name`.
    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "--quiet", name]);
    }

    /// Create branch `name` at `from` and check it out.
    pub fn branch(&self, name: &str, from: &str) {
        self.git(&["checkout", "--quiet", "-b", name, from]);
    }

    /// `git merge --no-ff` of `branch` into the current branch, the message made of `paragraphs`;
    /// returns the merge commit.
    pub fn merge(&self, branch: &str, paragraphs: &[&str]) -> String {
        let mut args = vec!["merge", "--quiet", "--no-ff"];
        for p in paragraphs {
            args.extend(["-m", p]);
        }
        args.push(branch);
        self.git(&args);
        self.head()
    }

    /// A pull request: branch `name` off `main` with one commit ("work on NAME"), merged back into
    /// `main` with `--no-ff` as GitHub does ("Merge pull request #NUMBER from org/NAME", then the
    /// `body` paragraphs); returns the merge commit.
    pub fn pull_request(&self, number: u32, name: &str, body: &[&str]) -> String {
        self.branch(name, "main");
        self.commit(&format!("work on {name}"));
        self.checkout("main");
        let subject = format!("Merge pull request #{number} from org/{name}");
        let paragraphs: Vec<&str> = std::iter::once(subject.as_str())
            .chain(body.iter().copied())
            .collect();
        self.merge(name, &paragraphs)
    }
}
