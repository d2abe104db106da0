//! Authentication and TLS against a real Distribution registry: basic auth (htpasswd) with credentials
//! from every file podman and docker use, the bearer-token flow with scopes (tokens from a test token
//! server that the real registry verifies), cross-repository mounts with and without access to the
//! source, and https with and without a trusted certificate.

mod common;

use common::{auth_json, oci_ref, sample_image, Forge};
use testkit::{skopeo, skopeo_digest, Grant, Pki, RegistryAuth, RegistryServer, TokenServer};

#[test]
fn basic_auth_with_credentials_from_every_auth_file() {
    let f = Forge::new();
    let reg = RegistryServer::start_htpasswd("okd", "s3cret");
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 800);
    let remote = reg.docker("okd/private:v1");
    let file = f.path("auth.json");
    std::fs::write(&file, auth_json(&[(&reg.host(), "okd", "s3cret")])).unwrap();

    // --authfile
    f.copy(&[
        "--authfile",
        file.to_str().unwrap(),
        &oci_ref(&src, "v1"),
        &remote,
    ]);
    let creds = "--creds=okd:s3cret";
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", creds, &remote]);
    assert_eq!(oci::Digest::sha256_of(raw.as_bytes()).to_string(), digest);

    // $REGISTRY_AUTH_FILE
    let out = f
        .cmd()
        .env("REGISTRY_AUTH_FILE", &file)
        .args(["image", "tags", &reg.docker("okd/private")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v1");

    // $XDG_RUNTIME_DIR/containers/auth.json (podman login's default)
    let run = f.path("run");
    std::fs::create_dir_all(run.join("containers")).unwrap();
    std::fs::copy(&file, run.join("containers/auth.json")).unwrap();
    let out = f
        .cmd()
        .env("XDG_RUNTIME_DIR", &run)
        .args(["image", "inspect", "--raw", &remote])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, raw.as_bytes());

    // ~/.docker/config.json, with docker's URL-style key and a more specific key for the repository.
    std::fs::create_dir_all(f.path(".docker")).unwrap();
    std::fs::write(
        f.path(".docker/config.json"),
        auth_json(&[
            (&format!("https://{}/v1/", reg.host()), "okd", "wrong"),
            (&format!("{}/okd", reg.host()), "okd", "s3cret"),
        ]),
    )
    .unwrap();
    let dst = f.path("dst");
    let report = f.copy(&[&remote, &oci_ref(&dst, "v1")]);
    assert_eq!(report["digest"], digest.as_str());
}

/// The flow of quay.io and Docker Hub: a 401 with a Bearer challenge, a token for exactly the scopes
/// needed (pull, or pull and push, plus pull on the mount source), anonymous pulls of public repositories.
#[test]
fn bearer_tokens_with_scopes() {
    let f = Forge::new();
    let tokens = TokenServer::start(
        &[("alice", "wonderland")],
        vec![
            Grant::new(Some("alice"), "okd/", &["pull", "push"]),
            Grant::new(Some("alice"), "public/", &["pull", "push"]),
            Grant::new(None, "public/", &["pull"]),
        ],
    );
    let reg = RegistryServer::start_with_tokens(&tokens);
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 810);
    let file = f.path("auth.json");
    std::fs::write(&file, auth_json(&[(&reg.host(), "alice", "wonderland")])).unwrap();
    let authfile = file.to_str().unwrap();

    f.copy(&[
        "--authfile",
        authfile,
        &oci_ref(&src, "v1"),
        &reg.docker("okd/app:v1"),
    ]);
    let asked = tokens.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.user.as_deref() == Some("alice")
                && r.scopes == ["repository:okd/app:pull,push"]),
        "no push token was asked for: {asked:?}"
    );
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds=alice:wonderland",
        &reg.docker("okd/app:v1"),
    ]);
    assert_eq!(oci::Digest::sha256_of(raw.as_bytes()).to_string(), digest);

    // A copy within the registry asks for pull on the source too, and mounts.
    let report = f.copy(&[
        "--authfile",
        authfile,
        &reg.docker("okd/app:v1"),
        &reg.docker("public/app:v1"),
    ]);
    assert_eq!(report["blobs_mounted"], 4);
    assert!(tokens
        .requests()
        .iter()
        .any(|r| r.scopes == ["repository:public/app:pull,push", "repository:okd/app:pull"]));

    // Anonymous: public pulls work, private ones say to log in.
    let dst = f.path("anon");
    let report = f.copy(&[&reg.docker("public/app:v1"), &oci_ref(&dst, "v1")]);
    assert_eq!(report["digest"], digest.as_str());
    assert!(tokens
        .requests()
        .iter()
        .any(|r| r.user.is_none() && r.scopes == ["repository:public/app:pull"]));
    let e = f.fails(&["image", "inspect", &reg.docker("okd/app:v1")]);
    assert!(
        e.contains("no credentials found") && e.contains("podman login"),
        "{e}"
    );

    // Wrong password: the token service refuses.
    std::fs::write(&file, auth_json(&[(&reg.host(), "alice", "nope")])).unwrap();
    let e = f.fails(&[
        "image",
        "inspect",
        "--authfile",
        authfile,
        &reg.docker("okd/app:v1"),
    ]);
    assert!(e.contains("rejected the credentials"), "{e}");
}

/// With credentials that may not read the source repository, the registry refuses the mount; the copy
/// falls back to uploading and still succeeds.
#[test]
fn mount_falls_back_to_upload_without_access_to_the_source() {
    let f = Forge::new();
    let tokens = TokenServer::start(
        &[("team1", "p1"), ("team2", "p2")],
        vec![
            Grant::new(Some("team1"), "team1/", &["pull", "push"]),
            Grant::new(Some("team2"), "team2/", &["pull", "push"]),
        ],
    );
    let reg = RegistryServer::start_with_tokens(&tokens);
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 820);
    // Per-repository credentials in one auth file, as podman writes them for `login host/namespace`.
    let file = f.path("auth.json");
    std::fs::write(
        &file,
        auth_json(&[
            (&format!("{}/team1", reg.host()), "team1", "p1"),
            (&format!("{}/team2", reg.host()), "team2", "p2"),
        ]),
    )
    .unwrap();
    let authfile = file.to_str().unwrap();
    f.copy(&[
        "--authfile",
        authfile,
        &oci_ref(&src, "v1"),
        &reg.docker("team1/app:v1"),
    ]);

    let report = f.copy(&[
        "--authfile",
        authfile,
        &reg.docker("team1/app:v1"),
        &reg.docker("team2/app:v1"),
    ]);
    assert_eq!(report["blobs_mounted"], 0);
    assert_eq!(report["blobs_copied"], 4);
    assert!(
        tokens
            .requests()
            .iter()
            .any(|r| r.user.as_deref() == Some("team2")
                && r.scopes
                    == [
                        "repository:team2/app:pull,push",
                        "repository:team1/app:pull"
                    ]),
        "the mount was never tried"
    );
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds=team2:p2",
        &reg.docker("team2/app:v1"),
    ]);
    assert_eq!(oci::Digest::sha256_of(raw.as_bytes()).to_string(), digest);
}

#[test]
fn tls_registries_need_a_trusted_certificate_or_tls_verify_false() {
    let f = Forge::new();
    let pki = Pki::generate();
    let reg = RegistryServer::start_with(RegistryAuth::None, Some(&pki));
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 830);
    let remote = reg.docker("okd/tls:v1");

    let e = f.copy_fails(&["--retry-times", "0", &oci_ref(&src, "v1"), &remote]);
    assert!(
        e.contains("cannot verify the TLS certificate") && e.contains("SSL_CERT_FILE"),
        "{e}"
    );

    // Trusting the CA: verified https.
    let out = f
        .cmd()
        .env("SSL_CERT_FILE", &pki.ca)
        .args([
            "--output",
            "json",
            "image",
            "copy",
            &oci_ref(&src, "v1"),
            &remote,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Not verifying: also works, and skopeo (over https, not verifying either) sees the image.
    let dst = f.path("dst");
    let report = f.copy(&["--tls-verify=false", &remote, &oci_ref(&dst, "v1")]);
    assert_eq!(report["digest"], digest.as_str());
    let cert_dir = f.path("certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(&pki.ca, cert_dir.join("ca.crt")).unwrap();
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        &remote,
    ]);
    assert_eq!(oci::Digest::sha256_of(raw.as_bytes()).to_string(), digest);
    assert_eq!(skopeo_digest(&remote), digest);
}
