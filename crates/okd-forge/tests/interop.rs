//! Interoperability with independent clients: what okd-forge writes, skopeo and umoci read with the same
//! digests, and what skopeo writes, okd-forge reads; through OCI layouts and a real Distribution registry.

mod common;

use common::{oci_ref, sample_image, Forge};
use testkit::images::{self, Format, ImageSpec};
use testkit::{skopeo, skopeo_digest, umoci, verify_layout, RegistryServer};

#[test]
fn layout_written_by_okd_forge_is_read_by_skopeo_and_umoci() {
    let f = Forge::new();
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 10);
    let dst = f.path("dst");
    let report = f.copy(&[&oci_ref(&src, "v1"), &oci_ref(&dst, "v1")]);
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["blobs_copied"], 4);
    assert_eq!(verify_layout(&dst), 5, "config, 3 layers, manifest");

    assert_eq!(skopeo_digest(&oci_ref(&dst, "v1")), digest);
    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", &oci_ref(&dst, "v1")])).unwrap();
    assert_eq!(inspect["Labels"]["io.openshift.release.operator"], "true");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3);

    // umoci verifies every blob it reads and unpacks the layers into a root filesystem.
    let stat = umoci(&["stat", "--image", &format!("{}:v1", dst.display())]);
    assert!(stat.contains("LAYER"), "{stat}");
    let bundle = f.path("bundle");
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:v1", dst.display()),
        bundle.to_str().unwrap(),
    ]);
    let unpacked = std::fs::metadata(bundle.join("rootfs/data/12.bin")).unwrap();
    assert_eq!(unpacked.len(), 1 << 20);

    // skopeo copies it on, unchanged.
    let again = f.path("again");
    skopeo(&["copy", &oci_ref(&dst, "v1"), &oci_ref(&again, "v1")]);
    assert_eq!(skopeo_digest(&oci_ref(&again, "v1")), digest);
}

#[test]
fn layout_written_by_skopeo_is_read_by_okd_forge() {
    let f = Forge::new();
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 20);
    let sk = f.path("skopeo-layout");
    skopeo(&["copy", &oci_ref(&src, "v1"), &oci_ref(&sk, "latest")]);
    let sk_digest = skopeo_digest(&oci_ref(&sk, "latest"));
    assert_eq!(sk_digest, digest);

    let inspect = f.json(&["image", "inspect", &oci_ref(&sk, "latest")]);
    assert_eq!(inspect["Digest"], sk_digest.as_str());
    assert_eq!(inspect["Architecture"], "amd64");
    let back = f.path("back");
    let report = f.copy(&[&oci_ref(&sk, "latest"), &oci_ref(&back, "x")]);
    assert_eq!(report["digest"], sk_digest.as_str());
    verify_layout(&back);
}

#[test]
fn image_pushed_by_okd_forge_is_read_by_skopeo() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 30);
    let remote = reg.docker("okd/component:v1");
    let report = f.copy(&[&oci_ref(&src, "v1"), &remote]);
    assert_eq!(report["digest"], digest.as_str());

    assert_eq!(skopeo_digest(&remote), digest);
    let inspect: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &remote])).unwrap();
    assert_eq!(inspect["RepoTags"], serde_json::json!(["v1"]));
    let ours = f.json(&["image", "inspect", &remote]);
    for field in [
        "Name",
        "Digest",
        "RepoTags",
        "Layers",
        "Labels",
        "Architecture",
        "Os",
        "Env",
    ] {
        assert_eq!(
            ours[field], inspect[field],
            "field {field} differs from skopeo inspect"
        );
    }

    let back = f.path("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &remote,
        &oci_ref(&back, "v1"),
    ]);
    assert_eq!(skopeo_digest(&oci_ref(&back, "v1")), digest);
    umoci(&["stat", "--image", &format!("{}:v1", back.display())]);
}

#[test]
fn image_pushed_by_skopeo_is_read_by_okd_forge() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    sample_image(&src, "v1", 40);
    let remote = reg.docker("skopeo/pushed:v1");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci_ref(&src, "v1"),
        &remote,
    ]);
    let digest = skopeo_digest(&remote);

    let dst = f.path("dst");
    let report = f.copy(&[&remote, &oci_ref(&dst, "v1")]);
    assert_eq!(report["digest"], digest.as_str());
    verify_layout(&dst);
    assert_eq!(skopeo_digest(&oci_ref(&dst, "v1")), digest);
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:v1", dst.display()),
        f.path("bundle").to_str().unwrap(),
    ]);
    assert_eq!(
        f.ok(&["image", "tags", &reg.docker("skopeo/pushed")])
            .trim(),
        "v1"
    );
}

/// A multi-arch index (OCI) and manifest list (Docker) with their children, pushed and pulled back: the
/// bytes of every manifest are unchanged, and skopeo sees the same index and instances.
#[test]
fn multi_arch_indexes_round_trip_in_both_formats() {
    let reg = RegistryServer::start();
    for (format, name) in [(Format::Oci, "oci-index"), (Format::Docker, "docker-list")] {
        let f = Forge::new();
        let src = f.path("src");
        let layout = oci::Layout::create(&src).unwrap();
        let amd = ImageSpec::new(&[(1, 4096), (2, 8192)]).arch("amd64");
        let arm = ImageSpec::new(&[(1, 4096), (3, 8192)]).arch("arm64");
        let (amd, arm) = match format {
            Format::Oci => (amd, arm),
            Format::Docker => (amd.docker(), arm.docker()),
        };
        let a = images::write_image(&layout, &amd, None);
        let b = images::write_image(&layout, &arm, None);
        let index = images::write_index(
            &layout,
            format,
            &[(a, "amd64"), (b.clone(), "arm64")],
            Some("multi"),
        );

        let remote = reg.docker(&format!("okd/{name}:multi"));
        let report = f.copy(&[&oci_ref(&src, "multi"), &remote]);
        assert_eq!(report["digest"], index.digest.to_string());
        assert_eq!(report["manifests"], 3);
        assert_eq!(
            report["blobs_copied"], 5,
            "2 configs, shared base once, 2 top layers"
        );

        let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &remote]);
        assert_eq!(
            raw.as_bytes(),
            &index.bytes[..],
            "index bytes changed in transit"
        );
        let arm_inspect = f.json(&["image", "inspect", "--arch", "arm64", &remote]);
        assert_eq!(arm_inspect["Architecture"], "arm64");
        assert_eq!(arm_inspect["Digest"], index.digest.to_string());

        // skopeo copies the whole index on (registry to registry: an OCI layout would make it convert
        // a Docker list) without changing it.
        let sk = reg.docker(&format!("skopeo/{name}:m"));
        skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &remote,
            &sk,
        ]);
        assert_eq!(skopeo_digest(&sk), index.digest.to_string());

        let back = f.path("back");
        f.copy(&[&remote, &oci_ref(&back, "multi")]);
        verify_layout(&back);
        // skopeo 1.9's oci: transport cannot name a child by digest: read the blob file itself.
        let child = std::fs::read(back.join("blobs/sha256").join(b.digest.hex())).unwrap();
        assert_eq!(child, &b.bytes[..]);
    }
}

/// Manifests are never re-serialised: a pretty-printed manifest keeps its exact bytes and digest.
#[test]
fn manifest_bytes_are_kept_exactly() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    let layout = oci::Layout::create(&src).unwrap();
    let m = images::write_image(&layout, &ImageSpec::new(&[(7, 1000)]).docker(), None);
    let value: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    let digest = oci::Digest::sha256_of(&pretty);
    let raw = oci::RawManifest::new("pretty", pretty.clone().into(), None, digest.clone()).unwrap();
    layout.put_manifest(&raw, Some("pretty"), true).unwrap();

    let remote = reg.docker("okd/pretty:v1");
    f.copy(&[&oci_ref(&src, "pretty"), &remote]);
    let back = skopeo(&["inspect", "--raw", "--tls-verify=false", &remote]);
    assert_eq!(back.as_bytes(), &pretty[..]);
    assert_eq!(skopeo_digest(&remote), digest.to_string());
    let inspect = f.json(&["image", "inspect", &remote]);
    assert_eq!(inspect["Digest"], digest.to_string());
    assert_eq!(
        inspect["LayersData"][0]["MIMEType"],
        oci::media_type::DOCKER_LAYER_GZIP
    );
}
