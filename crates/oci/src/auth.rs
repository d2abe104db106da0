//! Registry credentials from the containers and docker auth files, looked up the way podman and skopeo do.
//!
//! Order, first match wins: `--authfile` alone if given; else `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`, `$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`. Within a file, the most specific key wins (`host/ns/repo`, then `host/ns`,
//! then `host`); `credHelpers` and `credsStore` run `docker-credential-<helper> get`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use crate::{Error, Result};

/// A user name and password (or token) for basic auth and token requests.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

#[derive(Deserialize, Default)]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub struct AuthSource {
    /// An explicit `--authfile`; when set, no other file is read.
    pub authfile: Option<PathBuf>,
}

impl AuthSource {
    /// The files to read, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        if let Some(f) = &self.authfile {
            return vec![f.clone()];
        }
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let mut files = Vec::new();
        if let Some(f) = env("REGISTRY_AUTH_FILE") {
            files.push(f);
        }
        if let Some(d) = env("XDG_RUNTIME_DIR") {
            files.push(d.join("containers/auth.json"));
        }
        let home = env("HOME");
        if let Some(h) = &home {
            files.push(h.join(".config/containers/auth.json"));
        }
        match env("DOCKER_CONFIG") {
            Some(d) => files.push(d.join("config.json")),
            None => {
                if let Some(h) = &home {
                    files.push(h.join(".docker/config.json"));
                }
            }
        }
        files
    }

    /// Credentials for `registry` (and, more specifically, `repository`), or none for anonymous access.
    /// A missing file is skipped; a file that exists but does not parse is an error naming it.
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Credentials>> {
        for path in self.files() {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.authfile.is_none() => {
                    continue
                }
                Err(e) => {
                    return Err(Error::AuthFile {
                        path,
                        reason: e.to_string(),
                    })
                }
            };
            let file: AuthFile = serde_json::from_str(&text).map_err(|e| Error::AuthFile {
                path: path.clone(),
                reason: format!("not a valid auth file: {e}"),
            })?;
            if let Some(c) = lookup_in(&path, &file, registry, repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// The keys to try, most specific first.
fn candidate_keys(registry: &str, repository: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut path = format!("{registry}/{repository}");
    loop {
        keys.push(path.clone());
        match path.rsplit_once('/') {
            Some((parent, _)) => path = parent.to_string(),
            None => break,
        }
    }
    keys
}

/// Normalise a key as docker writes them (`https://index.docker.io/v1/`) to `host[/path]`.
fn normalise_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    match k.split_once('/') {
        Some((host, rest)) => format!("{}/{rest}", normalise_host(host)),
        None => normalise_host(k).to_string(),
    }
}

fn normalise_host(h: &str) -> &str {
    match h {
        "index.docker.io" | "registry-1.docker.io" => crate::reference::DOCKER_HUB,
        other => other,
    }
}

fn lookup_in(
    path: &Path,
    file: &AuthFile,
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>> {
    let auths: HashMap<String, &AuthEntry> = file
        .auths
        .iter()
        .map(|(k, v)| (normalise_key(k), v))
        .collect();
    let helpers: HashMap<String, &String> = file
        .cred_helpers
        .iter()
        .map(|(k, v)| (normalise_key(k), v))
        .collect();
    for key in candidate_keys(registry, repository) {
        if let Some(helper) = helpers.get(&key) {
            return run_helper(helper, &helper_server(&key));
        }
        if let Some(entry) = auths.get(&key) {
            if let Some(c) = decode_entry(path, &key, entry)? {
                return Ok(Some(c));
            }
        }
    }
    match &file.creds_store {
        Some(store) => run_helper(store, &helper_server(registry)),
        None => Ok(None),
    }
}

/// The server name credential helpers know a registry by: docker keeps Docker Hub's under its old
/// index URL.
fn helper_server(key: &str) -> String {
    if key == crate::reference::DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        key.to_string()
    }
}

fn decode_entry(path: &Path, key: &str, entry: &AuthEntry) -> Result<Option<Credentials>> {
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let bad = |reason: &str| Error::AuthFile {
        path: path.to_path_buf(),
        reason: format!("auths.\"{key}\".auth {reason}; log in again to rewrite it"),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("is not base64"))?;
    let text = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| bad("is not base64 of USER:PASSWORD"))?;
    Ok(Some(Credentials {
        username: u.to_string(),
        password: p.to_string(),
    }))
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

fn run_helper(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| Error::AuthFile {
        path: PathBuf::from(&program),
        reason,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run credential helper: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(server.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        // Helpers say "credentials not found in native keychain" and exit 1 when they have nothing.
        return Ok(None);
    }
    let h: HelperOutput = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("unreadable helper output: {e}")))?;
    Ok(Some(Credentials {
        username: h.username,
        password: h.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_key_wins_and_docker_keys_normalise() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &f,
            format!(
                r#"{{"auths":{{"quay.io":{{"auth":"{}"}},"quay.io/okd":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
                b64("all:a"),
                b64("okd:o"),
                b64("hub:h")
            ),
        )
        .unwrap();
        let src = AuthSource {
            authfile: Some(f.clone()),
        };
        assert_eq!(
            src.lookup("quay.io", "okd/scos-release")
                .unwrap()
                .unwrap()
                .username,
            "okd"
        );
        assert_eq!(
            src.lookup("quay.io", "other/x").unwrap().unwrap().username,
            "all"
        );
        assert_eq!(
            src.lookup("docker.io", "library/busybox")
                .unwrap()
                .unwrap()
                .username,
            "hub"
        );
        assert!(src.lookup("ghcr.io", "x").unwrap().is_none());

        std::fs::write(&f, "{not json").unwrap();
        let e = src.lookup("quay.io", "x").unwrap_err().to_string();
        assert!(e.contains("auth.json"), "{e}");
    }
}
