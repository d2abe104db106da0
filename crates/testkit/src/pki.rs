//! Throwaway keys and self-signed certificates, made with the `openssl` command.

use std::path::PathBuf;
use std::process::Command;

use crate::{require, run_ok};

/// An RSA key and a self-signed certificate for `127.0.0.1`/`localhost`, in a temp dir.
pub struct Pki {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8).
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pki {
    /// Generate a new key and certificate.
    pub fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        run_ok(
            Command::new(require("openssl"))
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=okd-forge-test"])
                .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        Pki {
            cert,
            key,
            _dir: dir,
        }
    }

    /// The certificate as the base64 DER that a JWS `x5c` header carries.
    pub fn cert_der_base64(&self) -> String {
        let pem = std::fs::read_to_string(&self.cert).expect("read cert");
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    }
}
