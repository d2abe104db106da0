//! gpg (Debian `gnupg`) as a test peer: a key in a temporary GNUPGHOME, exported for okd-forge
//! to sign with, and gpg's own checks of what okd-forge signed.

use std::path::Path;
use std::process::Command;

/// A gpg home with one key.
pub struct Gpg {
    /// Its GNUPGHOME.
    pub home: tempfile::TempDir,
    /// The key's fingerprint.
    pub fingerprint: String,
}

impl Gpg {
    /// A new RSA key for `uid` (what clusters can verify), protected by `passphrase` if given.
    pub fn new(uid: &str, passphrase: Option<&str>) -> Gpg {
        Gpg::with(uid, passphrase, "rsa3072", "default")
    }

    /// A new key for `uid` of algorithm `algo` with `usage` (gpg --quick-gen-key).
    pub fn with(uid: &str, passphrase: Option<&str>, algo: &str, usage: &str) -> Gpg {
        let home = tempfile::tempdir().unwrap();
        let g = Gpg {
            home,
            fingerprint: String::new(),
        };
        g.run(&[
            "--passphrase",
            passphrase.unwrap_or(""),
            "--quick-gen-key",
            uid,
            algo,
            usage,
            "never",
        ]);
        let listing = String::from_utf8(g.run(&["--with-colons", "--list-keys"])).unwrap();
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.split(':').find(|f| !f.is_empty()))
            .expect("a fingerprint")
            .to_string();
        Gpg { fingerprint, ..g }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
        ]);
        c
    }

    /// Run gpg with `args`, expecting success; returns stdout.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cmd().args(args).output().expect("run gpg");
        assert!(
            out.status.success(),
            "gpg {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Write the key's export (`--export` or `--export-secret-keys`, with `extra` options) to
    /// `path`.
    pub fn export(&self, what: &str, extra: &[&str], path: &Path) -> String {
        let mut args = vec![what];
        args.extend_from_slice(extra);
        args.push(&self.fingerprint);
        std::fs::write(path, self.run(&args)).unwrap();
        path.display().to_string()
    }
}
