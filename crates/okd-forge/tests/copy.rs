//! `okd-forge image copy` and `store gc` against a real registry and real layouts: skipping, mounting,
//! whole repositories, concurrent writers, crashes, chunked uploads and retries.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{layout_image, oci_ref, push_sample, sample_image, Forge};
use testkit::images::{self, ImageSpec};
use testkit::{skopeo, skopeo_digest, umoci, verify_layout, Fault, FaultProxy, RegistryServer};

#[test]
fn second_copy_skips_every_blob_and_same_registry_copies_mount() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 100);
    // Not on a terminal: one progress line per blob on stderr, the summary on stdout.
    let out = f
        .cmd()
        .args([
            "image",
            "copy",
            &oci_ref(&src, "v1"),
            &reg.docker("a/img:v1"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let blob_lines = stderr
        .lines()
        .filter(|l| l.starts_with("blob sha256:") && l.contains(" copied ("))
        .count();
    assert_eq!(blob_lines, 4, "{stderr}");
    assert!(
        stderr.contains(&format!("manifest {} written", &digest[..19])),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("({digest})")) && stdout.contains("4 blobs copied"),
        "{stdout}"
    );
    let again = f.copy(&[&oci_ref(&src, "v1"), &reg.docker("a/img:v1")]);
    assert_eq!(again["blobs_copied"], 0);
    assert_eq!(again["blobs_skipped"], 4);
    assert_eq!(again["bytes_copied"], 0);

    // Another repository on the same registry: every blob is mounted, none transferred.
    let mounted = f.copy(&[&reg.docker("a/img:v1"), &reg.docker("b/img:v2")]);
    assert_eq!(mounted["blobs_mounted"], 4);
    assert_eq!(mounted["blobs_copied"], 0);
    assert_eq!(skopeo_digest(&reg.docker("b/img:v2")), digest);

    // The same image again, under another tag, into a layout that has it: every blob is there.
    let dst = f.path("dst");
    f.copy(&[&reg.docker("a/img:v1"), &oci_ref(&dst, "v1")]);
    let again = f.copy(&[&reg.docker("b/img:v2"), &oci_ref(&dst, "v2")]);
    assert_eq!(again["blobs_skipped"], 4);
    verify_layout(&dst);
}

#[test]
fn all_tags_copies_a_repository_moving_shared_blobs_once() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    let layout = oci::Layout::create(&src).unwrap();
    let mut digests = Vec::new();
    for (i, tag) in [
        "4.17.0-0.okd-scos-a",
        "4.17.0-0.okd-scos-b",
        "4.17.0-0.okd-scos-c",
    ]
    .iter()
    .enumerate()
    {
        // One shared base layer, one layer of its own.
        let spec = ImageSpec::new(&[(1, 200 << 10), (50 + i as u64, 100 << 10)]);
        digests.push((
            tag.to_string(),
            images::write_image(&layout, &spec, Some(tag))
                .digest
                .to_string(),
        ));
    }
    let src_repo = format!("oci:{}", src.display());
    let reports = f.copy(&["--all-tags", &src_repo, &reg.docker("okd/content")]);
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 3);
    let copied: u64 = reports
        .iter()
        .map(|r| r["blobs_copied"].as_u64().unwrap())
        .sum();
    assert_eq!(
        copied,
        1 + 3 + 3,
        "the shared base once, 3 configs, 3 own layers"
    );
    for (tag, digest) in &digests {
        assert_eq!(
            &skopeo_digest(&reg.docker(&format!("okd/content:{tag}"))),
            digest
        );
    }

    // And on to a second registry, then back into a layout: the tags come along.
    let reg2 = RegistryServer::start();
    f.copy(&[
        "--all-tags",
        &reg.docker("okd/content"),
        &reg2.docker("mirror/content"),
    ]);
    let tags = f.json(&["image", "tags", &reg2.docker("mirror/content")]);
    assert_eq!(
        tags["Tags"],
        serde_json::json!([
            "4.17.0-0.okd-scos-a",
            "4.17.0-0.okd-scos-b",
            "4.17.0-0.okd-scos-c"
        ])
    );
    let back = f.path("back");
    f.copy(&[
        "--all-tags",
        &reg2.docker("mirror/content"),
        &format!("oci:{}", back.display()),
    ]);
    for (tag, digest) in &digests {
        assert_eq!(&skopeo_digest(&oci_ref(&back, tag)), digest);
    }
    assert!(f
        .fails(&[
            "image",
            "copy",
            "--all-tags",
            &oci_ref(&src, "x"),
            &reg.docker("x/y")
        ])
        .contains("without a tag"));
}

#[test]
fn digest_destinations_and_digestfile() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    let digest = sample_image(&src, "v1", 110);
    let file = f.path("digest.txt");
    f.copy(&[
        "--digestfile",
        file.to_str().unwrap(),
        &oci_ref(&src, "v1"),
        &reg.docker(&format!("okd/by-digest@{digest}")),
    ]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), digest);
    assert_eq!(
        skopeo_digest(&reg.docker(&format!("okd/by-digest@{digest}"))),
        digest
    );
    // No tag was made: skopeo sees no `latest`.
    assert!(!testkit::skopeo_try(&[
        "inspect",
        "--tls-verify=false",
        &reg.docker("okd/by-digest:latest")
    ])
    .status
    .success());

    let wrong = oci::Digest::sha256_of(b"not this image");
    let e = f.copy_fails(&[&oci_ref(&src, "v1"), &reg.docker(&format!("okd/x@{wrong}"))]);
    assert!(e.contains(&digest) && e.contains("drop the digest"), "{e}");

    // A docker:// destination without a tag gets `latest`, as with skopeo.
    f.copy(&[&oci_ref(&src, "v1"), &reg.docker("okd/untagged")]);
    assert_eq!(skopeo_digest(&reg.docker("okd/untagged:latest")), digest);
}

/// Several processes tag images into one layout at once: no tag is lost and index.json stays valid.
#[test]
fn concurrent_processes_tagging_one_layout_lose_nothing() {
    let f = Forge::new();
    let src = f.path("src");
    let layout = oci::Layout::create(&src).unwrap();
    for i in 0..8u64 {
        let spec = ImageSpec::new(&[(1, 100 << 10), (200 + i, 50 << 10)]);
        images::write_image(&layout, &spec, Some(&format!("t{i}")));
    }
    let store = f.path("store");
    let children: Vec<_> = (0..8)
        .map(|i| {
            f.std_cmd()
                .args(["image", "copy", "-q"])
                .args([
                    oci_ref(&src, &format!("t{i}")),
                    oci_ref(&store, &format!("t{i}")),
                ])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    verify_layout(&store);
    let tags = f.json(&["image", "tags", &format!("oci:{}", store.display())]);
    assert_eq!(tags["Tags"].as_array().unwrap().len(), 8);
    for i in 0..8 {
        skopeo(&["inspect", &oci_ref(&store, &format!("t{i}"))]);
    }
}

#[test]
fn gc_removes_what_no_tag_reaches_and_leftovers() {
    let f = Forge::new();
    let src = f.path("src");
    let a = layout_image(&src, &ImageSpec::new(&[(1, 10_000), (2, 20_000)]), "a");
    let b = layout_image(&src, &ImageSpec::new(&[(1, 10_000), (3, 30_000)]), "b");
    let store = f.path("store");
    f.copy(&[&oci_ref(&src, "a"), &oci_ref(&store, "x")]);
    f.copy(&[&oci_ref(&src, "b"), &oci_ref(&store, "keep")]);
    // Point x at b: a's manifest, config and own layer are now unreferenced.
    f.copy(&[&oci_ref(&src, "b"), &oci_ref(&store, "x")]);
    std::fs::write(store.join(".okd-forge-tmp-interrupted"), b"half a blob").unwrap();
    assert_eq!(
        std::fs::read_dir(store.join("blobs/sha256"))
            .unwrap()
            .count(),
        4 + 3
    );

    let report = f.json(&["store", "gc", "--store", store.to_str().unwrap()]);
    assert_eq!(report["removed"], 3);
    assert_eq!(report["kept"], 4);
    assert_eq!(report["temp_files_removed"], 1);
    assert_eq!(verify_layout(&store), 4);
    assert!(!store.join("blobs/sha256").join(a.digest.hex()).exists());
    assert_eq!(skopeo_digest(&oci_ref(&store, "x")), b.digest.to_string());
    umoci(&["stat", "--image", &format!("{}:keep", store.display())]);

    // The default store is var/store, relative to where okd-forge runs; a missing one is an error.
    let e = f.fails(&["store", "gc"]);
    assert!(
        e.contains("var/store") && e.contains("not an OCI image layout"),
        "{e}"
    );
}

/// A copy killed in the middle of a blob leaves no partial blob and no tag; running it again finishes.
#[test]
fn killed_copy_leaves_nothing_partial_and_a_rerun_converges() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    let spec = ImageSpec::new(&[(300, 48 << 20), (301, 48 << 20), (302, 48 << 20)]);
    let m = layout_image(&src, &spec, "big");
    f.copy(&["-q", &oci_ref(&src, "big"), &reg.docker("okd/big:v1")]);

    let store = f.path("store");
    // Kill -9 once the layout exists and a blob is being written (its temp file exists).
    let mut child = copy_until(&f, &reg.docker("okd/big:v1"), &store, "big", |store| {
        store.join("index.json").exists()
            && std::fs::read_dir(store).is_ok_and(|mut d| {
                d.any(|e| {
                    e.is_ok_and(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(".okd-forge-tmp-")
                    })
                })
            })
    });
    child.kill().unwrap();
    child.wait().unwrap();

    // Every visible blob is whole; no tag points anywhere.
    // (A killed writer's temp file may remain; gc removes it.)
    testkit::verify_blobs(&store);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]));

    let report = f.copy(&["-q", &reg.docker("okd/big:v1"), &oci_ref(&store, "big")]);
    assert_eq!(report["digest"], m.digest.to_string());
    f.ok(&["store", "gc", "--store", store.to_str().unwrap()]);
    verify_layout(&store);
    assert_eq!(skopeo_digest(&oci_ref(&store, "big")), m.digest.to_string());
}

/// Start `image copy -q -j 1 FROM oci:STORE:TAG` in the background and return once `ready(store)` holds,
/// failing if the copy ends first or nothing happens within 30 s.
fn copy_until(
    f: &Forge,
    from: &str,
    store: &std::path::Path,
    tag: &str,
    ready: impl Fn(&std::path::Path) -> bool,
) -> std::process::Child {
    let mut child = f
        .std_cmd()
        .args(["image", "copy", "-q", "-j", "1", from, &oci_ref(store, tag)])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(store) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before it was caught in flight"
        );
        assert!(Instant::now() < deadline, "the copy did not get going");
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

#[test]
fn chunked_uploads_are_read_back_by_skopeo() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    // 3.5 MiB of file content in 1 MiB chunks: three full chunks and a short one.
    let m = layout_image(&src, &ImageSpec::new(&[(400, 3_500_000), (401, 1000)]), "c");
    // Through a proxy that only watches, to count the upload requests.
    let proxy = FaultProxy::start(&reg.host(), vec![]);
    let report = f.copy(&[
        "--upload-chunk-mib",
        "1",
        &oci_ref(&src, "c"),
        &proxy.docker("okd/chunked:v1"),
    ]);
    assert_eq!(report["blobs_copied"], 3);
    // The big layer in 4 PATCHes and a closing PUT; the small layer and the config in one PUT each.
    assert_eq!(proxy.count("PATCH", "/blobs/uploads/"), 4);
    assert_eq!(proxy.count("PUT", "/blobs/uploads/"), 3);
    assert_eq!(
        skopeo_digest(&reg.docker("okd/chunked:v1")),
        m.digest.to_string()
    );
    let back = f.path("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &reg.docker("okd/chunked:v1"),
        &oci_ref(&back, "c"),
    ]);
    verify_layout(&back);
}

/// 503s, a 429 and connections dropped mid-blob are retried; a registry that keeps failing is given up
/// on after --retry-times, with its status in the error.
#[test]
fn transient_failures_are_retried_with_a_bound() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let (src, digest) = push_sample(&f, &reg, "okd/flaky:v1", 500);

    let proxy = FaultProxy::start(
        &reg.host(),
        vec![
            Fault::Status {
                method: "GET",
                path_contains: "/manifests/".into(),
                status: 503,
                times: 1,
            },
            Fault::Status {
                method: "HEAD",
                path_contains: "/blobs/".into(),
                status: 429,
                times: 1,
            },
            Fault::Truncate {
                path_contains: "/blobs/".into(),
                after: 1000,
                times: 2,
            },
            Fault::Status {
                method: "GET",
                path_contains: "/blobs/".into(),
                status: 502,
                times: 1,
            },
        ],
    );
    let dst = f.path("dst");
    let report = f.copy(&[&proxy.docker("okd/flaky:v1"), &oci_ref(&dst, "v1")]);
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(
        proxy.injected(),
        4,
        "every injected failure was hit and survived"
    );
    verify_layout(&dst);
    assert_eq!(skopeo_digest(&oci_ref(&dst, "v1")), digest);

    // Pushing through failures: a 500 on an upload and on the manifest PUT.
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![
            Fault::Status {
                method: "PUT",
                path_contains: "/blobs/uploads/".into(),
                status: 500,
                times: 1,
            },
            Fault::Status {
                method: "PUT",
                path_contains: "/manifests/".into(),
                status: 503,
                times: 1,
            },
        ],
    );
    f.copy(&[&oci_ref(&src, "v1"), &proxy.docker("okd/pushed:v1")]);
    assert_eq!(proxy.injected(), 2);
    assert_eq!(skopeo_digest(&reg.docker("okd/pushed:v1")), digest);

    // One blob that always fails: tried once and retried --retry-times times, exactly.
    let layers = f.json(&["image", "inspect", &reg.docker("okd/flaky:v1")])["Layers"].clone();
    let broken = layers[1].as_str().unwrap().to_string();
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Fault::Status {
            method: "GET",
            path_contains: format!("/blobs/{broken}"),
            status: 503,
            times: 1000,
        }],
    );
    let dst2 = f.path("dst2");
    let e = f.copy_fails(&[
        "--retry-times",
        "2",
        &proxy.docker("okd/flaky:v1"),
        &oci_ref(&dst2, "v1"),
    ]);
    assert!(e.contains("503") && e.contains(&broken), "{e}");
    assert_eq!(proxy.injected(), 3, "one try and two retries");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dst2.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"], serde_json::json!([]));
}

/// A request that hangs is abandoned after --timeout and retried; a registry that always hangs is
/// given up on, in bounded time, saying it timed out.
#[test]
fn hanging_requests_time_out() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let (_, digest) = push_sample(&f, &reg, "okd/slow:v1", 550);

    let stall = |times| {
        FaultProxy::start(
            &reg.host(),
            vec![Fault::Stall {
                path_contains: "/manifests/".into(),
                seconds: 30,
                times,
            }],
        )
    };
    let proxy = stall(1);
    let dst = f.path("dst");
    let started = Instant::now();
    let report = f.copy(&[
        "--timeout",
        "1",
        &proxy.docker("okd/slow:v1"),
        &oci_ref(&dst, "v1"),
    ]);
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(proxy.injected(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    let proxy = stall(1000);
    let started = Instant::now();
    let e = f.fails(&[
        "image",
        "inspect",
        "--timeout",
        "1",
        "--retry-times",
        "1",
        &proxy.docker("okd/slow:v1"),
    ]);
    assert!(e.contains("timed out"), "{e}");
    assert!(e.contains("okd/slow:v1"), "{e}");
    assert_eq!(proxy.injected(), 2, "one try and one retry");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A transfer that keeps moving may take far longer than --timeout, both ways; only a stall fails it.
#[test]
fn slow_transfers_outlast_the_timeout_and_stalled_uploads_are_retried() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    let m = layout_image(&src, &ImageSpec::new(&[(560, 24 << 20)]), "v1");
    // Pushed at 8 MiB/s: 3 s for the layer, with --timeout 1.
    let slow = FaultProxy::start(
        &reg.host(),
        vec![Fault::Throttle {
            path_contains: "/blobs/".into(),
            bytes_per_sec: 8 << 20,
        }],
    );
    let started = Instant::now();
    f.copy(&[
        "-q",
        "--timeout",
        "1",
        &oci_ref(&src, "v1"),
        &slow.docker("okd/slow:v1"),
    ]);
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "not throttled: {:?}",
        started.elapsed()
    );
    assert_eq!(
        slow.count("PUT", "/blobs/uploads/"),
        2,
        "no upload was retried"
    );
    // Pulled at 8 MiB/s.
    let dst = f.path("dst");
    let report = f.copy(&[
        "-q",
        "--timeout",
        "1",
        &slow.docker("okd/slow:v1"),
        &oci_ref(&dst, "v1"),
    ]);
    assert_eq!(report["digest"], m.digest.to_string());
    assert_eq!(
        slow.count("GET", "/blobs/sha256:"),
        2,
        "no download was retried"
    );

    // A download that stops moving half-way for 30 s is abandoned after 1 s and tried again.
    let layer = f.json(&["image", "inspect", &reg.docker("okd/slow:v1")])["Layers"][0]
        .as_str()
        .unwrap()
        .to_string();
    let paused = FaultProxy::start(
        &reg.host(),
        vec![Fault::Pause {
            path_contains: layer,
            seconds: 30,
            times: 1,
        }],
    );
    let started = Instant::now();
    let dst = f.path("dst-paused");
    let report = f.copy(&[
        "-q",
        "-j",
        "1",
        "--timeout",
        "1",
        &paused.docker("okd/slow:v1"),
        &oci_ref(&dst, "v1"),
    ]);
    assert_eq!(report["digest"], m.digest.to_string());
    assert_eq!(paused.injected(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    // An upload whose registry stops reading for 30 s is abandoned after 1 s and tried again.
    let stalled = FaultProxy::start(
        &reg.host(),
        vec![Fault::Stall {
            path_contains: "/blobs/uploads/".into(),
            seconds: 30,
            times: 1,
        }],
    );
    let started = Instant::now();
    f.copy(&[
        "-q",
        "--timeout",
        "1",
        &oci_ref(&src, "v1"),
        &stalled.docker("okd/stalled:v1"),
    ]);
    assert_eq!(stalled.injected(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        skopeo_digest(&reg.docker("okd/stalled:v1")),
        m.digest.to_string()
    );
}

/// gc waits for a copy in flight: the blobs it has written but not yet tagged survive.
#[test]
fn gc_waits_for_a_running_copy() {
    let f = Forge::new();
    let reg = RegistryServer::start();
    let src = f.path("src");
    let spec = ImageSpec::new(&[(570, 10_000), (571, 10_000), (572, 4 << 20)]);
    let m = layout_image(&src, &spec, "v1");
    f.copy(&["-q", &oci_ref(&src, "v1"), &reg.docker("okd/gc:v1")]);
    let last = f.json(&["image", "inspect", &reg.docker("okd/gc:v1")])["Layers"][2]
        .as_str()
        .unwrap()
        .to_string();
    // The last layer comes slowly (2 s); the others are in the store, untagged, meanwhile.
    let proxy = FaultProxy::start(
        &reg.host(),
        vec![Fault::Throttle {
            path_contains: last.clone(),
            bytes_per_sec: 2 << 20,
        }],
    );
    let store = f.path("store");
    let mut copy = copy_until(&f, &proxy.docker("okd/gc:v1"), &store, "v1", |store| {
        std::fs::read_dir(store.join("blobs/sha256")).is_ok_and(|d| d.count() >= 3)
    });
    let report = f.json(&["store", "gc", "--store", store.to_str().unwrap()]);
    assert!(copy.wait().unwrap().success());
    assert_eq!(
        report["removed"], 0,
        "gc deleted blobs of the copy in flight"
    );
    verify_layout(&store);
    let again = f.path("again");
    skopeo(&["copy", &oci_ref(&store, "v1"), &oci_ref(&again, "v1")]);
    assert_eq!(skopeo_digest(&oci_ref(&again, "v1")), m.digest.to_string());
}

/// A registry that is down when the copy starts and comes back within the retries is waited for.
#[test]
fn a_registry_restarting_during_the_copy_is_waited_for() {
    let f = Forge::new();
    let mut reg = RegistryServer::start();
    let (_, digest) = push_sample(&f, &reg, "okd/restart:v1", 600);
    reg.stop();
    let dst = f.path("dst");
    let child = f
        .std_cmd()
        .args([
            "--output",
            "json",
            "image",
            "copy",
            "-q",
            "--retry-times",
            "8",
        ])
        .args([&reg.docker("okd/restart:v1"), &oci_ref(&dst, "v1")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    reg.restart();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["digest"], digest.as_str());
}
