//! A real Distribution registry process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require, Pki, TokenServer};

/// How the registry authenticates clients.
#[derive(Clone)]
pub enum RegistryAuth {
    /// Anyone may pull and push.
    None,
    /// HTTP basic auth against an htpasswd file with one user.
    Htpasswd {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// Bearer tokens issued by a [`TokenServer`] (the flow of quay.io and Docker Hub).
    Token {
        /// The realm URL clients get tokens from.
        realm: String,
        /// The service name in token requests.
        service: String,
        /// The issuer the registry trusts.
        issuer: String,
        /// The CA of the token-signing certificate (PEM).
        cert: PathBuf,
    },
}

/// A `docker-registry serve` process on 127.0.0.1 with its storage in a temp dir; killed on drop.
pub struct RegistryServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    config: PathBuf,
}

impl RegistryServer {
    /// A registry without auth.
    pub fn start() -> RegistryServer {
        RegistryServer::start_with(RegistryAuth::None, None)
    }

    /// A registry with HTTP basic auth for one user.
    pub fn start_htpasswd(user: &str, password: &str) -> RegistryServer {
        let auth = RegistryAuth::Htpasswd {
            user: user.into(),
            password: password.into(),
        };
        RegistryServer::start_with(auth, None)
    }

    /// A registry that takes bearer tokens from `tokens`.
    pub fn start_with_tokens(tokens: &TokenServer) -> RegistryServer {
        RegistryServer::start_with(tokens.registry_auth(), None)
    }

    /// A registry with the given auth and, with `tls`, serving https with that certificate.
    pub fn start_with(auth: RegistryAuth, tls: Option<&Pki>) -> RegistryServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut yaml = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: okd-forge-test\n  relativeurls: true\n",
            root = dir.path().join("data").display(),
        );
        if let Some(pki) = tls {
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                pki.cert.display(),
                pki.key.display()
            ));
        }
        match auth {
            RegistryAuth::None => {}
            RegistryAuth::Htpasswd { user, password } => {
                let hash = bcrypt::hash(&password, 5).expect("bcrypt");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).expect("write htpasswd");
                yaml.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: okd-forge-test\n    path: {}\n",
                    file.display()
                ));
            }
            RegistryAuth::Token {
                realm,
                service,
                issuer,
                cert,
            } => yaml.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                cert.display()
            )),
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml).expect("write registry config");
        let mut server = RegistryServer {
            child: None,
            dir,
            port,
            config,
        };
        server.restart();
        server
    }

    /// Stop the process (as if the registry went down); [`RegistryServer::restart`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the process again on the same port and storage, and wait until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.path().join("registry.log")).expect("log file");
        let child = Command::new(require("docker-registry"))
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "docker-registry exited ({status}) at start:\n{}",
                    std::fs::read_to_string(self.dir.path().join("registry.log"))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start listening within 20s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU seconds (user + system) the registry process has used so far, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.child.as_ref().expect("running").id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
        // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: f64 =
            fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/{name}`, e.g. `reg.docker("okd/release:4.17")`.
    pub fn docker(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.host())
    }

    /// Where the registry keeps a blob's bytes on disk (to corrupt it in tests).
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's storage root.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        self.stop();
    }
}
