//! Drives the real `okd-forge` binary with no credentials or settings from the machine's user.
#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};

use base64::Engine;
use testkit::images::{self, ImageSpec};

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
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run okd-forge");
        assert!(
            out.status.success(),
            "okd-forge {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run with `--output json` and expect success; returns the parsed document.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
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
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run okd-forge");
        assert!(
            !out.status.success(),
            "okd-forge {args:?} should have failed; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "expected one error line, got:\n{stderr}");
        errors[0].to_string()
    }

    /// A path inside the temp HOME.
    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
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
