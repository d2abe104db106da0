//! Throwaway keys and certificates, made with the `openssl` command: a CA and a leaf it signs.

use std::path::PathBuf;
use std::process::Command;

use crate::{require, run_ok};

/// A CA and a leaf certificate for `127.0.0.1`/`localhost` signed by it, in a temp dir.
pub struct Pki {
    /// The CA certificate (PEM): what clients trust, what a registry's `rootcertbundle` names.
    pub ca: PathBuf,
    /// The leaf certificate (PEM): what a TLS server presents, what signs tokens.
    pub cert: PathBuf,
    /// The leaf's private key (PEM, PKCS#8).
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pki {
    /// Generate a new CA and leaf.
    pub fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = |name: &str| dir.path().join(name);
        let openssl = || Command::new(require("openssl"));
        run_ok(
            openssl()
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=okd-forge test CA", "-keyout"])
                .args([p("ca.key"), "-out".into(), p("ca.pem")]),
        );
        run_ok(
            openssl()
                .args([
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                ])
                .args(["-keyout".into(), p("key.pem"), "-out".into(), p("leaf.csr")]),
        );
        std::fs::write(
            p("leaf.ext"),
            "basicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write extensions");
        run_ok(
            openssl()
                .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
                .args([
                    p("leaf.csr"),
                    "-CA".into(),
                    p("ca.pem"),
                    "-CAkey".into(),
                    p("ca.key"),
                ])
                .args([
                    "-extfile".into(),
                    p("leaf.ext"),
                    "-out".into(),
                    p("cert.pem"),
                ]),
        );
        Pki {
            ca: p("ca.pem"),
            cert: p("cert.pem"),
            key: p("key.pem"),
            _dir: dir,
        }
    }

    /// The leaf certificate as the base64 DER that a JWS `x5c` header carries.
    pub fn cert_der_base64(&self) -> String {
        let pem = std::fs::read_to_string(&self.cert).expect("read cert");
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    }
}
