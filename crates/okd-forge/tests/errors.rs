//! Bad input: each case gives one error line that names the reference and says what to do, exits
//! non-zero, and leaves nothing partial in the destination.

mod common;

use common::{auth_json, oci_ref, sample_image, Forge};
use testkit::{skopeo_try, verify_layout, RegistryServer};

#[test]
fn unknown_transports_and_malformed_references() {
    let f = Forge::new();
    let dst = f.path("dst");
    let dst_ref = oci_ref(&dst, "v1");
    for (src, expect) in [
        ("foo:bar", "unknown transport 'foo'"),
        ("quay.io/okd/scos-release:4.17", "no transport given"),
        ("docker://quay.io/OKD/Release:4.17", "lowercase"),
        ("docker://quay.io/okd/release:bad:tag", "is not valid"),
        (
            "docker://quay.io/okd/release@sha256:1234",
            "needs 64 hex digits",
        ),
        ("docker://quay.io:99999/okd/release", "bad port"),
        ("oci:", "layout path is empty"),
    ] {
        let e = f.copy_fails(&[src, &dst_ref]);
        assert!(e.contains(src), "{src}: error does not name it: {e}");
        assert!(e.contains(expect), "{src}: expected '{expect}' in: {e}");
        assert!(
            e.contains("use oci:PATH")
                || e.contains("use up to")
                || e.contains("lowercase")
                || e.contains("needs")
                || e.contains("port"),
            "{src}: no advice in: {e}"
        );
    }
    let e = f.copy_fails(&["oci:/nonexistent/layout:v1", &dst_ref]);
    assert!(
        e.contains("/nonexistent/layout") && e.contains("not an OCI image layout"),
        "{e}"
    );
    assert!(!dst.exists(), "a failed copy created its destination");
    let e = f.fails(&["image", "inspect", "docker//quay.io/x"]);
    assert!(e.contains("docker//quay.io/x"), "{e}");
}

/// A registry whose stored blob no longer matches its digest (same size, other bytes), and one whose blob
/// is cut short: the copy fails naming the blob, and neither an OCI layout nor another registry shows any
/// of it.
#[test]
fn corrupt_and_truncated_blobs_in_a_registry_are_refused() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    sample_image(&src, "v1", 700);
    f.copy(&[&oci_ref(&src, "v1"), &reg.docker("okd/bad:v1")]);
    let inspect = f.json(&["image", "inspect", &reg.docker("okd/bad:v1")]);
    let layers: Vec<String> = inspect["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();

    // Same length, different bytes.
    let data = reg.blob_data(&layers[2]);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let dst = f.path("dst");
    let e = f.copy_fails(&[&reg.docker("okd/bad:v1"), &oci_ref(&dst, "v1")]);
    assert!(
        e.contains(&layers[2]) && e.contains("does not match its digest"),
        "{e}"
    );
    assert!(e.contains("docker://") && e.contains("okd/bad"), "{e}");
    assert_untagged(&dst);
    assert!(!dst.join("blobs/sha256").join(&layers[2][7..]).exists());

    let reg2 = RegistryServer::start();
    let e = f.copy_fails(&[&reg.docker("okd/bad:v1"), &reg2.docker("okd/copy:v1")]);
    assert!(e.contains("does not match its digest"), "{e}");
    assert!(!skopeo_try(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg2.docker("okd/copy:v1")
    ])
    .status
    .success());
    assert!(
        !reg2.blob_data(&layers[2]).exists(),
        "the corrupt blob was committed at the destination"
    );

    // Cut short.
    let data = reg.blob_data(&layers[1]);
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    let dst = f.path("dst-truncated");
    let e = f.copy_fails(&[&reg.docker("okd/bad:v1"), &oci_ref(&dst, "v1")]);
    assert!(e.contains(&layers[1]) || e.contains(&layers[2]), "{e}");
    assert!(
        e.contains("truncated") || e.contains("does not match"),
        "{e}"
    );
    assert_untagged(&dst);
}

/// The destination layout may hold whole blobs that did arrive (a rerun skips them), but no tag, no
/// temporary file and nothing that fails its digest.
fn assert_untagged(dst: &std::path::Path) {
    if dst.exists() {
        verify_layout(dst);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dst.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"],
            serde_json::json!([]),
            "a failed copy tagged something"
        );
    }
}

#[test]
fn a_registry_that_wants_credentials_we_lack() {
    let f = Forge::new();
    let reg = RegistryServer::start_htpasswd("okd", "secret");
    let dst = f.path("dst");
    let remote = reg.docker("okd/private:v1");
    let e = f.copy_fails(&[&remote, &oci_ref(&dst, "v1")]);
    assert!(e.contains(&remote), "{e}");
    assert!(e.contains("no credentials"), "{e}");
    assert!(
        e.contains(&format!("podman login {}", reg.host())) && e.contains("--authfile"),
        "{e}"
    );
    assert!(!dst.exists());

    let src = f.path("src");
    sample_image(&src, "v1", 710);
    let e = f.copy_fails(&[&oci_ref(&src, "v1"), &remote]);
    assert!(e.contains("podman login"), "{e}");
    let e = f.fails(&["image", "tags", &reg.docker("okd/private")]);
    assert!(e.contains("podman login"), "{e}");

    // Wrong password: rejected, not "missing".
    let auth = f.path("auth.json");
    std::fs::write(&auth, auth_json(&[(&reg.host(), "okd", "wrong")])).unwrap();
    let e = f.copy_fails(&[
        "--authfile",
        auth.to_str().unwrap(),
        &remote,
        &oci_ref(&dst, "v1"),
    ]);
    assert!(e.contains("rejected the credentials"), "{e}");

    let e = f.copy_fails(&[
        "--authfile",
        "/nonexistent/auth.json",
        &remote,
        &oci_ref(&dst, "v1"),
    ]);
    assert!(
        e.contains("/nonexistent/auth.json") && e.contains("podman login"),
        "{e}"
    );
    std::fs::write(&auth, "{not json").unwrap();
    let e = f.copy_fails(&[
        "--authfile",
        auth.to_str().unwrap(),
        &remote,
        &oci_ref(&dst, "v1"),
    ]);
    assert!(
        e.contains("auth.json") && e.contains("not a valid auth file"),
        "{e}"
    );
}

#[test]
fn a_registry_that_is_down() {
    let f = Forge::new();
    let port = testkit::free_port();
    let remote = format!("docker://127.0.0.1:{port}/okd/release:4.17");
    let dst = f.path("dst");
    let started = std::time::Instant::now();
    let e = f.copy_fails(&["--retry-times", "1", &remote, &oci_ref(&dst, "v1")]);
    assert!(e.contains(&remote), "{e}");
    assert!(
        e.contains(&format!("cannot reach registry 127.0.0.1:{port}")),
        "{e}"
    );
    assert!(e.contains("Connection refused"), "{e}");
    assert!(e.contains("check that it is running"), "{e}");
    assert!(!dst.exists());
    assert!(
        started.elapsed().as_secs() < 30,
        "gave up only after {:?}",
        started.elapsed()
    );

    let src = f.path("src");
    sample_image(&src, "v1", 720);
    let e = f.copy_fails(&["--retry-times", "0", &oci_ref(&src, "v1"), &remote]);
    assert!(e.contains("cannot reach registry"), "{e}");
}

/// Not a registry at all: an HTTP server that answers /v2/ with 404.
#[test]
fn a_web_server_that_is_not_a_registry() {
    let f = Forge::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let remote = format!("docker://127.0.0.1:{port}/okd/x:v1");
    let e = f.fails(&["image", "inspect", "--retry-times", "0", &remote]);
    assert!(e.contains("not an OCI distribution API"), "{e}");
}
