//! Drives the real `okd-forge` binary with no credentials or settings from the machine's user.
#![allow(dead_code)] // each test binary uses a different part

use std::ffi::OsStr;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use base64::Engine;
use testkit::images::{self, ImageSpec};

/// `SOURCE_DATE_EPOCH` of [`Forge::reproducible`]: 2026-01-01T00:00:00Z.
pub const EPOCH: &str = "1767225600";
/// The `created` time of what a [`Forge::reproducible`] builds ([`EPOCH`]).
pub const CREATED: &str = "2026-01-01T00:00:00Z";

/// A clean environment for `okd-forge`: its own HOME, no auth files unless a test adds them.
pub struct Forge {
    pub home: tempfile::TempDir,
    /// Extra environment for every command (e.g. `SOURCE_DATE_EPOCH`).
    pub env: Vec<(String, String)>,
}

impl Forge {
    pub fn new() -> Forge {
        Forge {
            home: tempfile::tempdir().expect("temp dir"),
            env: Vec::new(),
        }
    }

    /// A harness whose builds are reproducible: `SOURCE_DATE_EPOCH` is [`EPOCH`].
    pub fn reproducible() -> Forge {
        Forge::new().with_env("SOURCE_DATE_EPOCH", EPOCH)
    }

    /// The same harness with `key=value` in the environment of every command.
    pub fn with_env(mut self, key: &str, value: &str) -> Forge {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A command for the binary, run in the temp HOME.
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_cmd())
    }

    /// The same as a `std::process::Command`, to spawn and kill.
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_okd-forge"));
        c.env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("OKD_FORGE_STORE")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SOURCE_DATE_EPOCH")
            .env("HOME", self.home.path())
            .current_dir(self.home.path());
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Run and expect success; returns stdout.
    pub fn ok<S: AsRef<OsStr> + Debug>(&self, args: &[S]) -> String {
        let out = self.cmd().args(args).output().expect("run okd-forge");
        assert!(
            out.status.success(),
            "okd-forge {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run with `--output json` and expect success; returns the parsed document.
    pub fn json<S: AsRef<OsStr> + Debug>(&self, args: &[S]) -> serde_json::Value {
        let mut all: Vec<&OsStr> = vec!["--output".as_ref(), "json".as_ref()];
        all.extend(args.iter().map(AsRef::as_ref));
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// `okd-forge --output json image copy ARGS…`, expected to succeed; returns the report.
    pub fn copy(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["image", "copy"];
        all.extend_from_slice(args);
        self.json(&all)
    }

    /// `okd-forge image copy ARGS…`, expected to fail; returns its one error line.
    pub fn copy_fails(&self, args: &[&str]) -> String {
        let mut all = vec!["image", "copy"];
        all.extend_from_slice(args);
        self.fails(&all)
    }

    /// Run and expect failure; returns the one-line error, checked to be exactly one line.
    pub fn fails<S: AsRef<OsStr> + Debug>(&self, args: &[S]) -> String {
        let out = self.cmd().args(args).output().expect("run okd-forge");
        assert!(
            !out.status.success(),
            "okd-forge {args:?} should have failed; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        one_error(&String::from_utf8_lossy(&out.stderr))
    }

    /// `okd-forge release extract REFERENCE EXTRA… --to DIR` into `name` in the temp HOME, expected
    /// to succeed; returns the directory.
    pub fn extract_to(&self, reference: &str, extra: &[&str], name: &str) -> PathBuf {
        let dir = self.path(name);
        let mut args = vec!["release", "extract", reference];
        args.extend_from_slice(extra);
        let to = s(&dir);
        args.extend(["--to", &to]);
        self.ok(&args);
        dir
    }

    /// A path inside the temp HOME.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
}

/// The one `error:` line of `stderr`, checked to be exactly one.
pub fn one_error(stderr: &str) -> String {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got:\n{stderr}");
    errors[0].to_string()
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The image `spec` describes, tagged `tag` in the layout at `dir` (created if needed).
pub fn layout_image(dir: &Path, spec: &ImageSpec, tag: &str) -> oci::RawManifest {
    let layout = oci::Layout::create(dir).expect("layout");
    images::write_image(&layout, spec, Some(tag))
}

/// A three-layer OCI image, tagged `tag` in a new layout at `dir`; returns its digest.
pub fn sample_image(dir: &Path, tag: &str, seed: u64) -> String {
    let spec = ImageSpec::new(&[(seed, 64 << 10), (seed + 1, 300 << 10), (seed + 2, 1 << 20)])
        .label("io.openshift.release.operator", "true");
    layout_image(dir, &spec, tag).digest.to_string()
}

/// A sample image (as [`sample_image`], in `f`'s `src` layout, tag `v1`) pushed to `reg` as `name`;
/// returns the layout and the digest.
pub fn push_sample(
    f: &Forge,
    reg: &testkit::RegistryServer,
    name: &str,
    seed: u64,
) -> (PathBuf, String) {
    let src = f.path("src");
    let digest = sample_image(&src, "v1", seed);
    f.copy(&[&oci_ref(&src, "v1"), &reg.docker(name)]);
    (src, digest)
}

/// `oci:DIR:TAG`.
pub fn oci_ref(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// An auth.json with `auths` entries (key, user, password), as `podman login` writes them.
pub fn auth_json(entries: &[(&str, &str, &str)]) -> String {
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, user, pass)| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            (key.to_string(), serde_json::json!({ "auth": b64 }))
        })
        .collect();
    serde_json::json!({ "auths": auths }).to_string()
}
