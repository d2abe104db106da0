//! podman for tests: as root, with storage, state, `containers.conf` (`default_ulimits = []`, which
//! these machines need), `registries.conf`, `storage.conf` (vfs) and an empty auth file of its own in
//! a temp dir, and runc (crun fails here). Removes its containers and images when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A private podman.
pub struct Podman {
    dir: tempfile::TempDir,
    program: PathBuf,
}

impl Podman {
    /// A new private podman; fails the test if podman or runc is missing.
    pub fn new() -> Podman {
        let program = crate::require("podman");
        crate::require("runc");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let write = |name: &str, text: String| {
            std::fs::write(d.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"))
        };
        write(
            "containers.conf",
            "[containers]\ndefault_ulimits = []\n".into(),
        );
        write(
            "registries.conf",
            "unqualified-search-registries = []\n".into(),
        );
        write(
            "storage.conf",
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                d.join("root").display(),
                d.join("runroot").display()
            ),
        );
        write("auth.json", "{\"auths\":{}}\n".into());
        Podman { dir, program }
    }

    /// The podman binary.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment that points podman at this configuration.
    pub fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.path();
        [
            ("CONTAINERS_CONF", "containers.conf"),
            ("CONTAINERS_REGISTRIES_CONF", "registries.conf"),
            ("CONTAINERS_STORAGE_CONF", "storage.conf"),
            ("REGISTRY_AUTH_FILE", "auth.json"),
        ]
        .into_iter()
        .map(|(k, f)| (k.to_string(), d.join(f).display().to_string()))
        .collect()
    }

    /// Global options before the subcommand: this storage, vfs, no events, runc.
    pub fn global_args(&self) -> Vec<String> {
        let d = self.dir.path();
        let mut args = Vec::new();
        for (flag, sub) in [
            ("--root", "root"),
            ("--runroot", "runroot"),
            ("--tmpdir", "tmp"),
        ] {
            args.push(flag.to_string());
            args.push(d.join(sub).display().to_string());
        }
        args.extend(["--storage-driver", "vfs", "--events-backend", "none"].map(String::from));
        args
    }

    /// `podman` with [`Podman::env`], [`Podman::global_args`] and `--runtime runc`.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.envs(self.env())
            .args(self.global_args())
            .args(["--runtime", "runc"]);
        c
    }

    /// Runs `podman ARGS…`, whatever the outcome.
    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman {args:?}: {e}"))
    }

    /// Runs `podman ARGS…`, expecting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        crate::run_ok(self.cmd().args(args))
    }
}

impl Default for Podman {
    fn default() -> Podman {
        Podman::new()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "--all", "--force"]).output();
        let _ = self.cmd().args(["rmi", "--all", "--force"]).output();
    }
}
