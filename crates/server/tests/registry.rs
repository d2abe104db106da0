//! The read-only registry view over real HTTP on loopback: skopeo and podman read a single image
//! and a multi-arch index from a layout store; the error codes, HEAD, ranges, tag pagination and
//! 405 on writes at the HTTP level.

use std::sync::Arc;

use build::run::Forge;
use oci::{Layout, RawManifest, Store};
use serde_json::Value;
use testkit::images::{self, Format, ImageSpec};

mod common;

use common::{forge_from, request, serve, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TAG: &str = "4.17.0-okd-scos.1";

struct Site {
    _dir: tempfile::TempDir,
    port: u16,
    single: RawManifest,
    index: RawManifest,
    docker: RawManifest,
    layer: oci::Descriptor,
}

/// A Forge whose store is `store`.
fn forge(dir: &std::path::Path, store: &str) -> Arc<Forge> {
    forge_from(
        dir,
        &format!("store: {store}\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\n"),
    )
}

/// A layout store (named `okd-forge.local/okd`, so served as `okd`) with an OCI image tagged
/// [`TAG`], an OCI index over amd64 and arm64 images tagged `multi`, and a Docker schema 2 image
/// tagged `docker`; plus tags `t00`…`t04` for pagination.
async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let forge = forge(dir.path(), "var/store");
    let Store::Layout(l) = &forge.store else {
        panic!("a layout store")
    };
    let l: Layout = l.clone();
    let single = images::write_image(&l, &ImageSpec::new(&[(1, 4096), (2, 300_000)]), Some(TAG));
    let amd = images::write_image(&l, &ImageSpec::new(&[(3, 2048)]), None);
    let arm = images::write_image(&l, &ImageSpec::new(&[(4, 2048)]).arch("arm64"), None);
    let index = images::write_index(
        &l,
        Format::Oci,
        &[(amd, "amd64"), (arm, "arm64")],
        Some("multi"),
    );
    let docker = images::write_image(&l, &ImageSpec::new(&[(5, 1000)]).docker(), Some("docker"));
    for i in 0..5 {
        images::write_image(
            &l,
            &ImageSpec::new(&[(100 + i, 10)]),
            Some(&format!("t{i:02}")),
        );
    }
    let layer = match single.parse().unwrap() {
        oci::manifest::Parsed::Image { layers, .. } => layers[1].clone(),
        _ => unreachable!(),
    };
    let port = serve(forge).await;
    Site {
        _dir: dir,
        port,
        single,
        index,
        docker,
        layer,
    }
}

async fn get(port: u16, target: &str) -> Reply {
    request(port, "GET", target, &[]).await
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_inspects_and_copies_an_image_and_an_index() {
    let s = site().await;
    let base = format!("docker://127.0.0.1:{}/okd", s.port);

    // Inspect: the digest skopeo reports is the stored manifest's, for a tag and for a digest.
    let out = blocking({
        let r = format!("{base}:{TAG}");
        move || testkit::skopeo(&["inspect", "--tls-verify=false", &r])
    })
    .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], s.single.digest.to_string(), "{out}");
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    for (reference, want) in [
        (format!("{base}:multi"), &s.index),
        (format!("{base}@{}", s.index.digest), &s.index),
        (format!("{base}:docker"), &s.docker),
        (format!("{base}@{}", s.single.digest), &s.single),
    ] {
        let got = blocking(move || testkit::skopeo_digest(&reference)).await;
        assert_eq!(got, want.digest.to_string());
    }
    let tags = blocking({
        let r = base.clone();
        move || testkit::skopeo(&["list-tags", "--tls-verify=false", &r])
    })
    .await;
    let tags: Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags["Tags"].as_array().unwrap().len(), 8, "{tags}");

    // Copy: the single image and the whole index land with the same digests, and every blob checks.
    let out = tempfile::tempdir().unwrap();
    for (src, tag, all, want) in [
        (
            format!("{base}:{TAG}"),
            "single",
            false,
            s.single.digest.to_string(),
        ),
        (
            format!("{base}:multi"),
            "multi",
            true,
            s.index.digest.to_string(),
        ),
    ] {
        let dst = format!("oci:{}:{tag}", out.path().display());
        blocking(move || {
            let mut args = vec!["copy", "--tls-verify=false", "--preserve-digests"];
            if all {
                args.push("--all");
            }
            args.extend([src.as_str(), dst.as_str()]);
            testkit::skopeo(&args)
        })
        .await;
        let copied = blocking({
            let r = format!("oci:{}:{tag}", out.path().display());
            move || testkit::skopeo_digest(&r)
        })
        .await;
        assert_eq!(copied, want, "{tag}");
    }
    assert!(testkit::verify_layout(out.path()) >= 10);

    // A Docker schema 2 image, copied to a dir: (an OCI layout would need converting it).
    let dir = tempfile::tempdir().unwrap();
    blocking({
        let (src, dst) = (
            format!("{base}:docker"),
            format!("dir:{}", dir.path().display()),
        );
        move || testkit::skopeo(&["copy", "--tls-verify=false", &src, &dst])
    })
    .await;
    let manifest = std::fs::read(dir.path().join("manifest.json")).unwrap();
    assert_eq!(manifest, s.docker.bytes.as_ref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_pulls_from_the_view() {
    let s = site().await;
    let reference = format!("127.0.0.1:{}/okd:{TAG}", s.port);
    let multi = format!("127.0.0.1:{}/okd:multi", s.port);
    let (want, want_multi) = (s.single.digest.to_string(), s.index.digest.to_string());
    blocking(move || {
        let podman = testkit::podman::Podman::new();
        podman.ok(&["pull", "--tls-verify=false", &reference]);
        let digest = podman.ok(&["image", "inspect", "--format", "{{.Digest}}", &reference]);
        assert_eq!(digest.trim(), want);
        // From the index, podman picks the amd64 image and records the index's digest.
        podman.ok(&["pull", "--tls-verify=false", "--arch", "amd64", &multi]);
        let out = podman.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Digest}} {{.Architecture}}",
            &multi,
        ]);
        assert_eq!(out.trim(), format!("{want_multi} amd64"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_heads_and_accept() {
    let s = site().await;
    let p = s.port;
    let r = get(p, "/v2/").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(r.json(), serde_json::json!({}));

    for (reference, m) in [
        (TAG.to_string(), &s.single),
        ("multi".to_string(), &s.index),
        (s.index.digest.to_string(), &s.index),
        ("docker".to_string(), &s.docker),
    ] {
        let path = format!("/v2/okd/manifests/{reference}");
        let r = get(p, &path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, m.bytes.as_ref(), "{path}: served as stored");
        assert_eq!(r.header("content-type"), Some(m.media_type.as_str()));
        assert_eq!(
            r.header("docker-content-digest"),
            Some(m.digest.to_string().as_str())
        );
        assert_eq!(
            r.header("content-length"),
            Some(m.bytes.len().to_string().as_str())
        );
        let h = request(p, "HEAD", &path, &[]).await;
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("content-length"),
            r.header("content-length"),
            "HEAD {path}"
        );
        assert_eq!(
            h.header("docker-content-digest"),
            r.header("docker-content-digest")
        );
        assert_eq!(h.header("content-type"), r.header("content-type"));
    }

    // Accept: an index is not served to a client that lists only image manifests (never converted);
    // wildcards and the stored type are fine.
    let only_manifests = [("Accept", oci::media_type::OCI_MANIFEST)];
    let r = request(p, "GET", "/v2/okd/manifests/multi", &only_manifests).await;
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = request(
        p,
        "GET",
        &format!("/v2/okd/manifests/{TAG}"),
        &only_manifests,
    )
    .await;
    assert_eq!(r.status, 200);
    let both = format!(
        "{}, {};q=0.5",
        oci::media_type::OCI_MANIFEST,
        oci::media_type::OCI_INDEX
    );
    let r = request(p, "GET", "/v2/okd/manifests/multi", &[("Accept", &both)]).await;
    assert_eq!(r.status, 200);
    let r = request(p, "GET", "/v2/okd/manifests/multi", &[("Accept", "*/*")]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_heads_and_ranges() {
    let s = site().await;
    let p = s.port;
    let path = format!("/v2/okd/blobs/{}", s.layer.digest);
    let r = get(p, &path).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, s.layer.size);
    assert_eq!(oci::Digest::sha256_of(&r.body), s.layer.digest);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(s.layer.digest.to_string().as_str())
    );
    assert_eq!(
        r.header("content-length"),
        Some(s.layer.size.to_string().as_str())
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));

    let h = request(p, "HEAD", &path, &[]).await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(
        h.header("content-length"),
        Some(s.layer.size.to_string().as_str())
    );

    let size = s.layer.size;
    let part = request(p, "GET", &path, &[("Range", "bytes=10-109")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &r.body[10..110]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-109/{size}").as_str())
    );
    let tail = request(p, "GET", &path, &[("Range", "bytes=-7")]).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &r.body[r.body.len() - 7..]);
    let bad = request(p, "GET", &path, &[("Range", &format!("bytes={size}-"))]).await;
    assert_eq!(bad.status, 416);
    assert_eq!(
        bad.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );

    // Manifests and configs are blobs too.
    let r = get(p, &format!("/v2/okd/blobs/{}", s.index.digest)).await;
    assert_eq!(r.body, s.index.bytes.as_ref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes() {
    let s = site().await;
    let p = s.port;
    let missing = format!("sha256:{}", "0".repeat(64));
    for (target, status, code) in [
        (
            "/v2/okd/manifests/nope".to_string(),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/okd/manifests/{missing}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        // A layer is a blob, not a manifest.
        (
            format!("/v2/okd/manifests/{}", s.layer.digest),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/okd/manifests/sha256:abc".to_string(),
            400,
            "DIGEST_INVALID",
        ),
        (
            "/v2/okd/manifests/md5:0123".to_string(),
            400,
            "DIGEST_INVALID",
        ),
        (format!("/v2/okd/blobs/{missing}"), 404, "BLOB_UNKNOWN"),
        (
            "/v2/okd/blobs/sha256:..%2F..%2Findex.json".to_string(),
            400,
            "DIGEST_INVALID",
        ),
        (
            "/v2/okd/blobs/sha256:../../oci-layout".to_string(),
            400,
            "NAME_INVALID",
        ),
        ("/v2/okd/blobs/latest".to_string(), 400, "DIGEST_INVALID"),
        ("/v2/other/tags/list".to_string(), 404, "NAME_UNKNOWN"),
        (
            "/v2/okd-forge.local/okd/manifests/multi".to_string(),
            404,
            "NAME_UNKNOWN",
        ),
        (
            format!("/v2/other/blobs/{}", s.layer.digest),
            404,
            "NAME_UNKNOWN",
        ),
        ("/v2/../okd/tags/list".to_string(), 400, "NAME_INVALID"),
        ("/v2/okd/../okd/tags/list".to_string(), 400, "NAME_INVALID"),
        ("/v2/OKD/tags/list".to_string(), 400, "NAME_INVALID"),
        (
            "/v2/okd/tags/list?n=x".to_string(),
            400,
            "PAGINATION_NUMBER_INVALID",
        ),
    ] {
        let r = get(p, &target).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{target}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{target}"
        );
    }

    // Every write is refused: the view is read-only.
    for (method, target) in [
        ("POST", "/v2/okd/blobs/uploads/".to_string()),
        ("PUT", format!("/v2/okd/manifests/{TAG}")),
        ("PATCH", "/v2/okd/blobs/uploads/x".to_string()),
        ("DELETE", format!("/v2/okd/manifests/{}", s.single.digest)),
        ("DELETE", format!("/v2/okd/blobs/{}", s.layer.digest)),
        ("PUT", "/v2/".to_string()),
    ] {
        let r = request(p, method, &target, &[]).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (405, "UNSUPPORTED"),
            "{method} {target}"
        );
    }
    // The store is untouched.
    let r = get(p, &format!("/v2/okd/manifests/{TAG}")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_pagination() {
    let s = site().await;
    let p = s.port;
    let all = [
        "4.17.0-okd-scos.1",
        "docker",
        "multi",
        "t00",
        "t01",
        "t02",
        "t03",
        "t04",
    ];
    let r = get(p, "/v2/okd/tags/list").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"name": "okd", "tags": all}));
    assert_eq!(r.header("link"), None);

    // Follow the Link headers three at a time.
    let mut seen = Vec::new();
    let mut next = Some("/v2/okd/tags/list?n=3".to_string());
    while let Some(target) = next.take() {
        let r = get(p, &target).await;
        assert_eq!(r.status, 200, "{target}");
        let page: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
        assert!(page.len() <= 3);
        seen.extend(page);
        next = r.header("link").map(|l| {
            assert!(l.ends_with("; rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_string()
        });
    }
    assert_eq!(seen, all);

    let r = get(p, "/v2/okd/tags/list?last=multi").await;
    assert_eq!(
        r.json()["tags"],
        serde_json::json!(["t00", "t01", "t02", "t03", "t04"])
    );
    let r = get(p, "/v2/okd/tags/list?n=2&last=t02").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["t03", "t04"]));
    assert_eq!(r.header("link"), None);
    let r = get(p, "/v2/okd/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_store_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let port = serve(forge(dir.path(), "docker://127.0.0.1:1/okd/content")).await;
    let r = get(port, "/v2/").await;
    assert_eq!(r.status, 200);
    for target in ["/v2/okd/content/tags/list", "/v2/content/manifests/latest"] {
        let r = get(port, target).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (404, "NAME_UNKNOWN"),
            "{target}"
        );
        let message = r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("127.0.0.1:1/okd/content"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_corrupted_on_disk_is_never_served_whole() {
    let s = site().await;
    let file = s
        ._dir
        .path()
        .join("var/store/blobs/sha256")
        .join(s.layer.digest.hex());
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    // The wrong last chunk is withheld and the connection dropped: the client gets a short body,
    // or (when hyper had not flushed yet) nothing at all, never the whole wrong blob.
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    let req = format!(
        "GET /v2/okd/blobs/{} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        s.layer.digest
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw).await;
    assert!(
        (raw.len() as u64) < s.layer.size,
        "{} bytes received for a {}-byte blob",
        raw.len(),
        s.layer.size
    );
}
