//! `okd-forge release sign|verify|verification-configmap` and `serve --signatures` against real
//! peers: keys made by gpg (Debian `gnupg`) in a temporary GNUPGHOME, payloads made by
//! `release new`, our signatures checked by `gpg --verify`/`--decrypt`, gpg's own signatures
//! checked by `release verify`, and a store read over HTTP from `okd-forge serve` (the
//! payload-format spec, §6).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{s, Forge};
use oci::Digest;
use serde_json::Value;
use testkit::gpg::Gpg;
use testkit::release::{new_args, ReleaseSet};

/// A payload built by `release new` into `oci:<f>/<out>`; returns the reference and digest.
fn build_payload(f: &Forge, name: &str, out: &str) -> (String, Digest) {
    let inputs = ReleaseSet::standard("amd64").write(&f.path("store"));
    let mapping = inputs.write_mapping(&f.path(&format!("{out}.mapping")));
    let to = format!("oci:{}", f.path(out).display());
    let stdout = f.ok(&new_args(name, &to, mapping, f.path("store"), &[]));
    let digest = stdout.split(' ').next().unwrap().parse().unwrap();
    (format!("{to}:{name}"), digest)
}

/// The signature store file of `digest`'s signature `n` under `store`.
fn signature_file(store: &Path, digest: &Digest, n: u32) -> PathBuf {
    store
        .join(format!("sha256={}", digest.hex()))
        .join(format!("signature-{n}"))
}

/// `okd-forge release sign REF --key KEY --identity quay.io/okd/scos-release --to STORE`, with
/// `extra`; returns the JSON report.
fn sign(f: &Forge, reference: &str, key: &str, store: &Path, extra: &[&str]) -> Value {
    let store = s(store);
    let mut args = vec![
        "release",
        "sign",
        reference,
        "--key",
        key,
        "--identity",
        "quay.io/okd/scos-release",
        "--to",
        &store,
    ];
    args.extend_from_slice(extra);
    f.json(&args)
}

/// `okd-forge release verify REF --keyring KEYRING --store STORE`: Ok(report) or Err(error line).
fn verify(f: &Forge, reference: &str, keyring: &str, store: &str) -> Result<Value, String> {
    let args = [
        "--output",
        "json",
        "release",
        "verify",
        reference,
        "--keyring",
        keyring,
        "--store",
        store,
    ];
    let out = f.cmd().args(args).output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(common::one_error(&String::from_utf8_lossy(&out.stderr)))
    }
}

#[test]
fn a_signing_subkey_signs_when_the_primary_key_only_certifies() {
    let f = Forge::new();
    let gpg = Gpg::with(
        "Subkey signer <sub@okd-forge.invalid>",
        None,
        "rsa3072",
        "cert",
    );
    let fpr = gpg.fingerprint.clone();
    gpg.run(&[
        "--passphrase",
        "",
        "--quick-add-key",
        &fpr,
        "rsa3072",
        "sign",
        "never",
    ]);
    let key = gpg.export("--export-secret-keys", &[], &f.path("key.gpg"));
    let keyring = gpg.export("--export", &[], &f.path("keyring.gpg"));
    let digest = Digest::sha256_of(b"a release manifest").to_string();
    let store = f.path("signatures");
    let report = sign(&f, &digest, &key, &store, &[]);
    assert_ne!(report["key"], fpr.as_str(), "the subkey signs");
    let file = signature_file(&store, &digest.parse().unwrap(), 1);
    let status = String::from_utf8(gpg.run(&["--status-fd", "1", "--verify", &s(&file)])).unwrap();
    assert!(status.contains("[GNUPG:] VALIDSIG"), "{status}");
    let v = verify(&f, &digest, &keyring, &s(&store)).unwrap();
    assert_eq!(v["key"], report["key"]);
}

#[test]
fn an_eddsa_key_signs_with_a_warning_that_clusters_cannot_read_it() {
    let f = Forge::new();
    let gpg = Gpg::with("Ed signer <ed@okd-forge.invalid>", None, "ed25519", "sign");
    let key = gpg.export("--export-secret-keys", &["--armor"], &f.path("key.asc"));
    let keyring = gpg.export("--export", &["--armor"], &f.path("keyring.asc"));
    let digest = Digest::sha256_of(b"a release manifest").to_string();
    let store = s(&f.path("signatures"));
    let args = [
        "release",
        "sign",
        &digest,
        "--key",
        &key,
        "--identity",
        "r/x",
        "--to",
        &store,
    ];
    let out = f.cmd().args(args).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("warning: key {}", gpg.fingerprint)) && stderr.contains("RSA"),
        "{stderr}"
    );
    // rPGP and gpg verify it all the same.
    assert!(verify(&f, &digest, &keyring, &store).is_ok());
    let store_args = ["--store", "https://x.example/sigs"];
    let cm = ["release", "verification-configmap", "--keyring", &keyring];
    let out = f.cmd().args(cm).args(store_args).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: key"));
}

/// A harness with a gpg key (no passphrase) exported as `key.asc` (secret) and `keyring.asc`
/// (public), both armored: (harness, gpg, secret key file, keyring file).
fn setup() -> (Forge, Gpg, String, String) {
    let f = Forge::new();
    let gpg = Gpg::new("OKD test signer <signer@okd-forge.invalid>", None);
    let key = gpg.export("--export-secret-keys", &["--armor"], &f.path("key.asc"));
    let keyring = gpg.export("--export", &["--armor"], &f.path("keyring.asc"));
    (f, gpg, key, keyring)
}

#[test]
fn our_signature_verifies_with_gpg_and_with_release_verify() {
    let (f, gpg, key, keyring) = setup();
    let binary_keyring = gpg.export("--export", &[], &f.path("keyring.gpg"));
    let (reference, digest) = build_payload(&f, "4.17.0-okd-scos.1", "payload");
    let store = f.path("signatures");

    let report = sign(&f, &reference, &key, &store, &[]);
    let identity = format!("quay.io/okd/scos-release@{digest}");
    assert_eq!(report["digest"], digest.to_string());
    assert_eq!(report["identity"], identity.as_str());
    assert_eq!(report["key"], gpg.fingerprint.as_str());
    assert_eq!(report["signature"], 1);
    assert_eq!(report["added"], true);
    let file = signature_file(&store, &digest, 1);
    assert_eq!(report["path"], s(&file));

    // gpg checks the signature and gives back exactly the JSON of §6.
    let status = gpg.run(&["--status-fd", "1", "--verify", &s(&file)]);
    let status = String::from_utf8(status).unwrap();
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {}", gpg.fingerprint)),
        "{status}"
    );
    let json: Value = serde_json::from_slice(&gpg.run(&["--decrypt", &s(&file)])).unwrap();
    let timestamp = json["optional"]["timestamp"].as_i64().expect("a timestamp");
    assert_eq!(
        json,
        serde_json::json!({
            "critical": {
                "type": "atomic container signature",
                "image": { "docker-manifest-digest": digest.to_string() },
                "identity": { "docker-reference": identity },
            },
            "optional": {
                "creator": format!("okd-forge {}", env!("CARGO_PKG_VERSION")),
                "timestamp": timestamp,
            },
        })
    );

    // release verify accepts it, with an armored or a binary keyring.
    for k in [&keyring, &binary_keyring] {
        let v = verify(&f, &reference, k, &s(&store)).unwrap();
        assert_eq!(v["verified"], s(&file));
        assert_eq!(v["key"], gpg.fingerprint.as_str());
        assert_eq!(v["identity"], identity.as_str());
        assert_eq!(v["user"], "OKD test signer <signer@okd-forge.invalid>");
    }
    let by_digest = verify(
        &f,
        &digest.to_string(),
        &keyring,
        &format!("file://{}", s(&store)),
    );
    assert!(by_digest.is_ok(), "{by_digest:?}");

    // Signing again with the same key adds nothing.
    let again = sign(&f, &reference, &key, &store, &[]);
    assert_eq!(again["added"], false);
    assert_eq!(again["signature"], 1);
    assert!(!signature_file(&store, &digest, 2).exists());

    // Another key adds signature-2; only temporary files never remain.
    let other = Gpg::new("Another signer <other@okd-forge.invalid>", None);
    let other_key = other.export("--export-secret-keys", &[], &f.path("other.gpg"));
    let report = sign(&f, &reference, &other_key, &store, &[]);
    assert_eq!(report["signature"], 2);
    let names = testkit::file_names(&store.join(format!("sha256={}", digest.hex())));
    assert_eq!(names, ["signature-1", "signature-2"]);
}

#[test]
fn a_passphrase_comes_from_a_file_or_the_environment() {
    let f = Forge::new();
    let gpg = Gpg::new(
        "Protected <protected@okd-forge.invalid>",
        Some("s3cret words"),
    );
    let key = gpg.export(
        "--export-secret-keys",
        &["--armor", "--passphrase", "s3cret words"],
        &f.path("key.asc"),
    );
    let keyring = gpg.export("--export", &["--armor"], &f.path("keyring.asc"));
    let digest = Digest::sha256_of(b"a release manifest").to_string();
    let store = f.path("signatures");
    let store_s = s(&store);
    let base = [
        "release",
        "sign",
        &digest,
        "--key",
        &key,
        "--identity",
        "quay.io/okd/scos-release:4.17.0-okd-scos.1",
        "--to",
        &store_s,
    ];

    let e = f.fails(&base);
    assert!(
        e.contains(&gpg.fingerprint) && e.contains("passphrase") && e.contains("--passphrase-file"),
        "{e}"
    );
    let wrong = f.path("wrong");
    std::fs::write(&wrong, "not it\n").unwrap();
    let e = f.fails(&[&base[..], &["--passphrase-file", &s(&wrong)]].concat());
    assert!(e.contains("wrong passphrase"), "{e}");
    assert!(!store.exists(), "nothing written");

    let right = f.path("passphrase");
    std::fs::write(&right, "s3cret words\n").unwrap();
    f.ok(&[&base[..], &["--passphrase-file", &s(&right)]].concat());
    let from_env = Forge::new().with_env("OKD_FORGE_SIGNING_PASSPHRASE", "s3cret words");
    let env_store = f.path("env-signatures");
    let env_args = [&base[..8], &[env_store.to_str().unwrap()]].concat();
    from_env.ok(&env_args);

    for st in [&store, &env_store] {
        let v = verify(&f, &digest, &keyring, &s(st)).unwrap();
        assert_eq!(v["identity"], "quay.io/okd/scos-release:4.17.0-okd-scos.1");
    }
}

#[test]
fn tampered_wrong_digest_and_unknown_key_signatures_are_rejected() {
    let (f, gpg, _, keyring) = setup();
    let key = gpg.export("--export-secret-keys", &[], &f.path("key.gpg"));
    let (a, a_digest) = build_payload(&f, "4.17.0-okd-scos.1", "a");
    let (b, b_digest) = build_payload(&f, "4.17.0-okd-scos.2", "b");
    assert_ne!(a_digest, b_digest);
    let store = f.path("signatures");
    sign(&f, &a, &key, &store, &[]);
    let good = std::fs::read(signature_file(&store, &a_digest, 1)).unwrap();

    // One byte of the signed JSON changed: the digest's last hex digit.
    let mut tampered = good.clone();
    let hex = a_digest.hex().as_bytes();
    let at = tampered
        .windows(hex.len())
        .position(|w| w == hex)
        .expect("the JSON is in the message")
        + hex.len()
        - 1;
    tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
    let t = f.path("tampered");
    std::fs::create_dir_all(signature_file(&t, &a_digest, 1).parent().unwrap()).unwrap();
    std::fs::write(signature_file(&t, &a_digest, 1), &tampered).unwrap();
    let e = verify(&f, &a, &keyring, &s(&t)).unwrap_err();
    assert!(
        e.contains("does not match the signed content") && e.contains(&gpg.fingerprint),
        "{e}"
    );
    // gpg agrees.
    let out = gpg
        .cmd()
        .args(["--verify", &s(&signature_file(&t, &a_digest, 1))])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // A's signature filed under B: the digest in the JSON is not B's.
    let w = f.path("wrong-digest");
    std::fs::create_dir_all(signature_file(&w, &b_digest, 1).parent().unwrap()).unwrap();
    std::fs::write(signature_file(&w, &b_digest, 1), &good).unwrap();
    let e = verify(&f, &b, &keyring, &s(&w)).unwrap_err();
    assert!(
        e.contains(&format!("is for {a_digest}, not for {b_digest}")),
        "{e}"
    );

    // A key the keyring does not have.
    let stranger = Gpg::new("Stranger <stranger@okd-forge.invalid>", None);
    let stranger_keyring = stranger.export("--export", &[], &f.path("stranger.gpg"));
    let e = verify(&f, &a, &stranger_keyring, &s(&store)).unwrap_err();
    assert!(
        e.contains("not in the keyring") && e.contains(&stranger.fingerprint),
        "{e}"
    );

    // No signature at all.
    let e = verify(&f, &b, &keyring, &s(&store)).unwrap_err();
    assert!(
        e.contains("no signature of") && e.contains("signature-1"),
        "{e}"
    );

    // A valid signature next to a tampered one is enough, as for the CVO.
    std::fs::write(signature_file(&store, &a_digest, 2), &tampered).unwrap();
    let v = verify(&f, &a, &keyring, &s(&store)).unwrap();
    assert_eq!(v["rejected"].as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn a_signature_made_by_gpg_verifies() {
    let f = Forge::new();
    let gpg = Gpg::new("gpg signer <gpg@okd-forge.invalid>", None);
    let keyring = gpg.export("--export", &["--armor"], &f.path("keyring.asc"));
    let (reference, digest) = build_payload(&f, "4.17.0-okd-scos.1", "payload");
    let json = f.path("signature.json");
    std::fs::write(
        &json,
        format!(
            r#"{{"critical":{{"type":"atomic container signature","image":{{"docker-manifest-digest":"{digest}"}},"identity":{{"docker-reference":"quay.io/okd/scos-release:4.17.0-okd-scos.1"}}}},"optional":{{"creator":"gpg","timestamp":1700000000}}}}"#
        ),
    )
    .unwrap();
    // gpg's default (compressed, binary) and an armored, uncompressed one.
    for (name, extra) in [("binary", vec![]), ("armored", vec!["--armor", "-z", "0"])] {
        let store = f.path(name);
        let file = signature_file(&store, &digest, 1);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let mut args = vec!["--sign"];
        args.extend(extra);
        args.extend(["--output", file.to_str().unwrap(), json.to_str().unwrap()]);
        gpg.run(&args);
        let v = verify(&f, &reference, &keyring, &s(&store)).unwrap();
        assert_eq!(v["key"], gpg.fingerprint.as_str(), "{name}");
        assert_eq!(v["signature"]["optional"]["creator"], "gpg", "{name}");
    }
    // A JSON with a field the CVO does not know is refused.
    std::fs::write(
        &json,
        format!(
            r#"{{"critical":{{"type":"atomic container signature","image":{{"docker-manifest-digest":"{digest}"}},"identity":{{"docker-reference":"r"}},"extra":1}}}}"#
        ),
    )
    .unwrap();
    let store = f.path("extra");
    let file = signature_file(&store, &digest, 1);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    gpg.run(&["--sign", "--output", &s(&file), &s(&json)]);
    let e = verify(&f, &reference, &keyring, &s(&store)).unwrap_err();
    assert!(
        e.contains("not an atomic container signature") && e.contains("extra"),
        "{e}"
    );
}

/// `okd-forge serve --signatures DIR` on a free port; returns the process and `HOST:PORT`.
fn serve(f: &Forge, signatures: &Path) -> (Child, String) {
    let cfg = f.path("forge.yaml");
    std::fs::write(
        &cfg,
        "store: var/store\nstate: var/forge.db\nvariants: { okd-scos: {} }\nstreams:\n  \
         okd-scos-4.17:\n    variant: okd-scos\n    branch: release-4.17\n    \
         release: { name: 4.17.0-0.okd-scos }\n",
    )
    .unwrap();
    let mut child = f
        .std_cmd()
        .args(["serve", "--listen", "127.0.0.1:0", "--config", &s(&cfg)])
        .args(["--signatures", &s(signatures)])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("serving http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    (child, addr)
}

/// A GET over a fresh connection: (status line, body).
fn get(addr: &str, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    (
        head.lines().next().unwrap().to_string(),
        all[end + 4..].to_vec(),
    )
}

#[test]
fn serve_serves_the_store_as_the_cvo_reads_it() {
    let (f, _gpg, key, keyring) = setup();
    let (reference, digest) = build_payload(&f, "4.17.0-okd-scos.1", "payload");
    let store = f.path("signatures");
    sign(&f, &reference, &key, &store, &[]);
    let (mut child, addr) = serve(&f, &store);

    let url = format!("http://{addr}/signatures");
    let v = verify(&f, &reference, &keyring, &url);
    let signature_url = format!("{url}/sha256={}/signature-1", digest.hex());
    assert_eq!(
        v.as_ref().map(|v| v["verified"].clone()),
        Ok(signature_url.clone().into())
    );
    let (status, body) = get(&addr, &signature_url[url.len() - "/signatures".len()..]);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        body,
        std::fs::read(signature_file(&store, &digest, 1)).unwrap()
    );
    for missing in [
        format!("/signatures/sha256={}/signature-2", digest.hex()),
        format!(
            "/signatures/sha256={}/signature-1",
            Digest::sha256_of(b"x").hex()
        ),
        "/signatures/sha256=..%2F..%2Fforge.yaml/signature-1".to_string(),
    ] {
        assert_eq!(
            get(&addr, &missing).0,
            "HTTP/1.1 404 Not Found",
            "{missing}"
        );
    }
    // A release with no signature there.
    let e = verify(&f, &Digest::sha256_of(b"x").to_string(), &keyring, &url).unwrap_err();
    assert!(e.contains("no signature of"), "{e}");

    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_verification_configmap_names_the_key_and_the_store() {
    let (f, gpg, _, keyring) = setup();
    let secret = gpg.export("--export-secret-keys", &[], &f.path("key.gpg"));
    let args = |k: &str| {
        [
            "release",
            "verification-configmap",
            "--keyring",
            k,
            "--store",
            "https://okd.example.com/signatures",
            "--name",
            "okd",
        ]
        .map(String::from)
    };
    let out = f.cmd().args(args(&keyring)).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no warning for an RSA key"
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    // The library function payload creation uses gives the same manifest.
    let lib = payload::signature::verification_configmap(
        "okd",
        &payload::signature::Keyring::from_file(Path::new(&keyring)).unwrap(),
        "https://okd.example.com/signatures",
    )
    .unwrap();
    assert_eq!(yaml, lib);
    assert!(
        yaml.contains("  store-okd: \"https://okd.example.com/signatures\"\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains("  verifier-public-key-okd: |\n    -----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    );
    assert!(yaml.contains("    release.openshift.io/verification-config-map: \"\"\n"));
    // A secret key file publishes only its public half.
    let from_secret = f.ok(&args(&secret));
    assert_eq!(from_secret, yaml);
    assert!(!yaml.contains("PRIVATE"));
    // gpg reads the published key back.
    let published: String = yaml
        .split("verifier-public-key-okd: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    let fresh = tempfile::tempdir().unwrap();
    let mut import = Command::new("gpg")
        .env("GNUPGHOME", fresh.path())
        .args([
            "--batch",
            "--with-colons",
            "--import-options",
            "show-only",
            "--import",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    import
        .stdin
        .take()
        .unwrap()
        .write_all(published.as_bytes())
        .unwrap();
    let out = import.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&gpg.fingerprint));
}

#[test]
fn a_manifest_list_in_a_registry_is_signed_by_its_list_digest_under_its_pull_spec() {
    let (f, _gpg, key, keyring) = setup();
    let reg = testkit::RegistryServer::start();
    let inputs = testkit::release::standard_multi(&f.path("store"));
    let mapping = inputs.write_mapping(&f.path("mapping.txt"));
    let name = "4.17.0-okd-scos.1";
    let to = reg.docker(&format!("okd/release:{name}"));
    let tls = ["--tls-verify=false"];
    let out = f.ok(&new_args(name, &to, &mapping, f.path("store"), &tls));
    let digest: Digest = out.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        testkit::skopeo_digest(&to),
        digest.to_string(),
        "the list's digest"
    );

    let store = s(&f.path("signatures"));
    let report = f.json(&[
        "release", "sign", &to, "--key", &key, "--to", &store, tls[0],
    ]);
    assert_eq!(report["digest"], digest.to_string());
    let identity = format!("{}/okd/release:{name}", reg.host());
    assert_eq!(report["identity"], identity.as_str());

    let by_digest = format!("{}/okd/release@{digest}", reg.host());
    let v = f.json(&[
        "release",
        "verify",
        &by_digest,
        "--keyring",
        &keyring,
        "--store",
        &store,
        tls[0],
        "--identity",
        &reg.docker("okd/release"),
    ]);
    assert_eq!(v["identity"], identity.as_str());
}

#[test]
fn a_revoked_or_expired_key_is_not_trusted() {
    let (f, gpg, key, keyring) = setup();
    let digest = Digest::sha256_of(b"a release manifest").to_string();
    let store = s(&f.path("signatures"));
    sign(&f, &digest, &key, &f.path("signatures"), &[]);
    assert!(verify(&f, &digest, &keyring, &store).is_ok());

    // The key expires a second after it was made.
    gpg.run(&["--quick-set-expire", &gpg.fingerprint, "seconds=1"]);
    let expired = gpg.export("--export", &[], &f.path("expired.gpg"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let e = verify(&f, &digest, &expired, &store).unwrap_err();
    assert!(
        e.contains(&gpg.fingerprint) && e.contains("expired at"),
        "{e}"
    );

    // gpg's revocation certificate, imported.
    let rev = gpg
        .home
        .path()
        .join("openpgp-revocs.d")
        .join(format!("{}.rev", gpg.fingerprint));
    let text = std::fs::read_to_string(rev).unwrap();
    let cert = f.path("revocation.asc");
    std::fs::write(&cert, text.replace(":-----BEGIN", "-----BEGIN")).unwrap();
    gpg.run(&["--import", &s(&cert)]);
    let revoked = gpg.export("--export", &[], &f.path("revoked.gpg"));
    let e = verify(&f, &digest, &revoked, &store).unwrap_err();
    assert!(
        e.contains(&gpg.fingerprint) && e.contains("is revoked"),
        "{e}"
    );
}
