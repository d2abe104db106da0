//! `okd-forge build` and `watch` against local git repositories (file:// remotes made by the tests), the
//! embedded store and SQLite: native builds for two variants, the input-hash cache, rebuilds after one
//! commit, dependent images, failures, pull-request builds, and a real buildah build.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{s, Forge};
use oci::manifest::Parsed;
use oci::{Layout, Selector};
use serde_json::Value;
use testkit::git::Upstream;
use testkit::release::{busybox_userland, ImageBuilder};

/// A workspace: a forge.yaml, upstream repositories, and a busybox base image in `bases/`.
struct Site {
    forge: Forge,
    repos: BTreeMap<&'static str, Upstream>,
}

/// The host's busybox as a one-layer image tagged `busybox` in `<dir>/bases`.
fn busybox_base(dir: &Path) -> String {
    let layout = Layout::create(dir.join("bases")).unwrap();
    ImageBuilder::new(oci::manifest::host_arch())
        .label("base", "busybox")
        .layer(busybox_userland(&["sh"]))
        .write(&layout, Some("busybox"));
    format!("oci:{}:busybox", dir.join("bases").display())
}

impl Site {
    /// Repositories `hello` and `world` with a `release-4.17` branch; `config` is the forge.yaml
    /// template, `{hello}`, `{world}` and `{base}` replaced.
    fn new(config: &str) -> Site {
        let forge = Forge::new();
        let dir = forge.home.path().to_path_buf();
        let base = busybox_base(&dir);
        let mut repos = BTreeMap::new();
        for name in ["hello", "world"] {
            let up = Upstream::init(dir.join("upstream").join(name));
            std::fs::write(up.dir().join("VERSION"), format!("{name} 1\n")).unwrap();
            up.git(&["add", "-A"]);
            up.commit("version 1");
            up.branch("release-4.17", "main");
            repos.insert(name, up);
        }
        let yaml = config
            .replace("{hello}", &repos["hello"].url())
            .replace("{world}", &repos["world"].url())
            .replace("{base}", &base);
        std::fs::write(dir.join("forge.yaml"), yaml).unwrap();
        Site { forge, repos }
    }

    /// Commit a new VERSION to `repo`'s release-4.17 branch; returns the commit.
    fn bump(&self, repo: &str, version: &str) -> String {
        let up = &self.repos[repo];
        std::fs::write(up.dir().join("VERSION"), format!("{repo} {version}\n")).unwrap();
        up.git(&["add", "-A"]);
        up.commit(&format!("version {version}"))
    }

    fn dir(&self) -> &Path {
        self.forge.home.path()
    }

    /// `okd-forge --output json build ARGS…`: (exit success, document).
    fn build(&self, args: &[&str]) -> (bool, Value) {
        let out = self
            .forge
            .cmd()
            .args(["--output", "json", "build"])
            .args(args)
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), doc)
    }

    /// A successful build: (stream/tag → result) of every image.
    fn build_ok(&self, args: &[&str]) -> BTreeMap<String, Value> {
        let (ok, doc) = self.build(args);
        assert!(ok, "build failed: {doc:#}");
        by_key(&doc)
    }

    fn store(&self) -> Layout {
        Layout::open(self.dir().join("var/store")).unwrap()
    }
}

fn by_key(doc: &Value) -> BTreeMap<String, Value> {
    doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!(
                    "{}/{}",
                    r["stream"].as_str().unwrap(),
                    r["tag"].as_str().unwrap()
                ),
                r.clone(),
            )
        })
        .collect()
}

fn result(r: &Value) -> &str {
    r["status"]["result"].as_str().unwrap()
}

/// An image in a layout by tag: (config, files of its top layer).
fn image(layout: &Layout, tag: &str) -> (Value, BTreeMap<String, String>) {
    let m = layout
        .get_manifest(Some(&Selector::Tag(tag.into())))
        .unwrap_or_else(|e| panic!("tag {tag}: {e}"));
    let Parsed::Image { config, layers } = m.parse().unwrap() else {
        panic!("{tag} is not an image");
    };
    let config: Value =
        serde_json::from_slice(&layout.read_blob_bytes(&config.digest).unwrap()).unwrap();
    let top = layout
        .read_blob_bytes(&layers.last().unwrap().digest)
        .unwrap();
    let mut files = BTreeMap::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&top[..]));
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            files.insert(e.path().unwrap().display().to_string(), body);
        }
    }
    (config, files)
}

/// The regular files of `layers` (gzip tars in `store`), a later layer's replacing an earlier's.
fn layer_files(store: &Layout, layers: &[oci::Descriptor]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for l in layers {
        let blob = store.read_blob_bytes(&l.digest).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.header().entry_type().is_file() {
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                files.insert(e.path().unwrap().display().to_string(), body);
            }
        }
    }
    files
}

fn label<'a>(config: &'a Value, key: &str) -> &'a str {
    config["config"]["Labels"][key]
        .as_str()
        .unwrap_or_else(|| panic!("label {key} in {config:#}"))
}

const NATIVE: &str = r#"
parallelism: 2
variants:
  okd-scos: { build_args: { TAGS: scos } }
  okd: { build_args: { TAGS: fcos }, tag_renames: { world: world-fcos } }
components:
  hello:
    git: {hello}
    images:
      - to: hello
        versions: { hello: "1.2.3" }
        labels: { io.openshift.release.operator: "true", base: "overridden" }
        native:
          command: [sh, -c, 'mkdir -p _out && echo "$TAGS" > _out/tags && cp VERSION _out/']
          outputs: ["_out:/usr/share/hello"]
          base: "{base}"
  world:
    git: {world}
    images:
      - to: world
        native:
          command: [sh, -c, 'echo "world for $TAGS" > world.txt']
          outputs: ["world.txt:/etc/world.txt", "VERSION:/etc/world-version"]
          base: hello
streams:
  okd-scos-4.17: { variant: okd-scos, branch: release-4.17 }
  okd-4.17: { variant: okd, branch: release-4.17 }
"#;

#[test]
fn native_builds_per_variant_then_reuse_then_rebuild_what_changed() {
    let site = Site::new(NATIVE);
    let hello_commit = site.repos["hello"].head();

    // First run: everything is built and promoted.
    let first = site.build_ok(&[]);
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "okd-4.17/hello",
            "okd-4.17/world-fcos",
            "okd-scos-4.17/hello",
            "okd-scos-4.17/world"
        ]
    );
    for r in first.values() {
        assert_eq!(result(r), "built", "{r:#}");
        assert_eq!(r["promoted"], true, "{r:#}");
        let log = PathBuf::from(r["log"].as_str().unwrap());
        assert!(site.dir().join(&log).is_file() || log.is_file(), "{log:?}");
    }

    // The images: the variant's build args, the stamped labels, the base underneath.
    let store = site.store();
    let (scos, scos_files) = image(&store, "okd-scos-4.17_hello");
    let (fcos, fcos_files) = image(&store, "okd-4.17_hello");
    assert_eq!(scos_files["usr/share/hello/tags"], "scos\n");
    assert_eq!(fcos_files["usr/share/hello/tags"], "fcos\n");
    assert_eq!(scos_files["usr/share/hello/VERSION"], "hello 1\n");
    assert_eq!(label(&scos, "io.openshift.build.commit.id"), hello_commit);
    assert_eq!(
        label(&scos, "io.openshift.build.commit.ref"),
        "release-4.17"
    );
    assert_eq!(
        label(&scos, "io.openshift.build.source-location"),
        site.repos["hello"].url()
    );
    assert_eq!(label(&scos, "io.openshift.build.versions"), "hello=1.2.3");
    assert_eq!(label(&scos, "io.openshift.release.operator"), "true");
    assert_eq!(
        label(&scos, "base"),
        "overridden",
        "configured labels win over the base's"
    );
    let (world_cfg, _) = image(&store, "okd-scos-4.17_world");
    assert_eq!(
        label(&world_cfg, "base"),
        "overridden",
        "labels of the base image are kept"
    );
    assert_eq!(label(&fcos, "io.openshift.build.versions"), "hello=1.2.3");
    assert_ne!(
        first["okd-scos-4.17/hello"]["digest"],
        first["okd-4.17/hello"]["digest"]
    );
    // `world` is built on this stream's `hello`: its layers are hello's plus one.
    let (world, world_files) = image(&store, "okd-4.17_world-fcos");
    assert_eq!(world_files["etc/world.txt"], "world for fcos\n");
    assert_eq!(world_files["etc/world-version"], "world 1\n");
    assert_eq!(world["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert_eq!(scos["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // Nothing changed: nothing is built, fetched or promoted.
    let second = site.build_ok(&[]);
    for r in second.values() {
        assert_eq!(result(r), "unchanged", "{r:#}");
        assert_eq!(r["build_id"], Value::Null);
    }

    // One commit to world: only world is rebuilt, in both streams.
    let world_commit = site.bump("world", "2");
    let third = site.build_ok(&[]);
    assert_eq!(result(&third["okd-scos-4.17/hello"]), "unchanged");
    assert_eq!(result(&third["okd-4.17/hello"]), "unchanged");
    for k in ["okd-scos-4.17/world", "okd-4.17/world-fcos"] {
        assert_eq!(result(&third[k]), "built", "{k}");
        assert_eq!(third[k]["commit"], world_commit.as_str());
    }
    let (_, world_files) = image(&store, "okd-scos-4.17_world");
    assert_eq!(world_files["etc/world-version"], "world 2\n");

    // One commit to hello: hello is rebuilt, and world with it (its base changed).
    site.bump("hello", "2");
    let fourth = site.build_ok(&["--stream", "okd-scos-4.17"]);
    assert_eq!(fourth.len(), 2, "only the selected stream");
    assert_eq!(result(&fourth["okd-scos-4.17/hello"]), "built");
    assert_eq!(result(&fourth["okd-scos-4.17/world"]), "built");
    let (world, _) = image(&store, "okd-scos-4.17_world");
    let (hello, _) = image(&store, "okd-scos-4.17_hello");
    assert_eq!(
        world["rootfs"]["diff_ids"].as_array().unwrap()[..2],
        hello["rootfs"]["diff_ids"].as_array().unwrap()[..2],
        "world is built on the new hello"
    );

    // The state database has the history of each promotion.
    let state = build::state::State::open(&site.dir().join("var/forge.db")).unwrap();
    let history = state.tag_history("okd-scos-4.17", "world").unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(
        history[0].digest,
        fourth["okd-scos-4.17/world"]["digest"].as_str().unwrap()
    );
    assert_eq!(
        history[0].previous.as_deref(),
        third["okd-scos-4.17/world"]["digest"].as_str()
    );
}

#[test]
fn the_same_inputs_reuse_the_image_built_for_another_stream() {
    // Two streams of the same variant and branch: the second gets the first one's image from the cache.
    let site = Site::new(&NATIVE.replace(
        "okd: { build_args: { TAGS: fcos }, tag_renames: { world: world-fcos } }",
        "okd: { build_args: { TAGS: scos } }",
    ));
    let first = site.build_ok(&["--jobs", "1", "--stream", "okd-scos-4.17"]);
    let second = site.build_ok(&["--stream", "okd-4.17"]);
    for tag in ["hello", "world"] {
        assert_eq!(result(&second[&format!("okd-4.17/{tag}")]), "cached");
        assert_eq!(second[&format!("okd-4.17/{tag}")]["promoted"], true);
        assert_eq!(
            second[&format!("okd-4.17/{tag}")]["digest"],
            first[&format!("okd-scos-4.17/{tag}")]["digest"]
        );
    }
    // --force rebuilds anyway, and the native builder is deterministic: the same digest.
    let forced = site.build_ok(&["--stream", "okd-4.17", "--force", "--component", "hello"]);
    assert_eq!(result(&forced["okd-4.17/hello"]), "built");
    assert_eq!(
        forced["okd-4.17/hello"]["digest"],
        first["okd-scos-4.17/hello"]["digest"]
    );
}

#[test]
fn a_failing_build_fails_the_run_but_the_others_promote() {
    let site = Site::new(&NATIVE.replace(
        r#"command: [sh, -c, 'echo "world for $TAGS" > world.txt']"#,
        r#"command: [sh, -c, 'echo compiling world; exit 7']"#,
    ));
    let (ok, doc) = site.build(&["--stream", "okd-scos-4.17"]);
    assert!(!ok);
    let r = by_key(&doc);
    assert_eq!(result(&r["okd-scos-4.17/hello"]), "built");
    assert_eq!(r["okd-scos-4.17/hello"]["promoted"], true);
    let world = &r["okd-scos-4.17/world"];
    assert_eq!(result(world), "failed");
    let detail = world["status"]["detail"].as_str().unwrap();
    let log = world["log"].as_str().unwrap();
    assert!(detail.contains("failed (exit status: 7)"), "{detail}");
    assert!(detail.contains(log), "the error names the log: {detail}");
    assert_eq!(
        std::fs::read_to_string(site.dir().join(log).as_path())
            .or_else(|_| std::fs::read_to_string(log))
            .unwrap(),
        "compiling world\n"
    );
    assert_eq!(doc["failed"], 1);
    // The text summary says so too, and the error line counts the failures.
    let out = site
        .forge
        .cmd()
        .args(["build", "--stream", "okd-scos-4.17"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error: 1 image(s) failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_branch_that_does_not_exist_is_named() {
    let site = Site::new(&NATIVE.replace(
        "    git: {hello}\n",
        "    git: {hello}\n    branch: { okd-scos-4.17: release-4.99 }\n",
    ));
    let (ok, doc) = site.build(&["--stream", "okd-scos-4.17", "--component", "hello"]);
    assert!(!ok);
    let detail = by_key(&doc)["okd-scos-4.17/hello"]["status"]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("release-4.99"), "{detail}");
    assert!(detail.contains(&site.repos["hello"].url()), "{detail}");
    assert!(detail.contains("does not exist"), "{detail}");
}

#[test]
fn a_pull_request_ref_is_built_but_not_promoted() {
    let site = Site::new(NATIVE);
    let first = site.build_ok(&["--stream", "okd-scos-4.17", "--component", "hello"]);
    let up = &site.repos["hello"];
    up.branch("pr-7", "release-4.17");
    std::fs::write(up.dir().join("VERSION"), "hello pr\n").unwrap();
    up.git(&["add", "-A"]);
    let pr = up.commit("a pull request");
    up.git(&["update-ref", "refs/pull/7/head", &pr]);
    up.checkout("release-4.17");

    let r = site.build_ok(&[
        "--stream",
        "okd-scos-4.17",
        "--component",
        "hello",
        "--ref",
        "refs/pull/7/head",
    ]);
    let hello = &r["okd-scos-4.17/hello"];
    assert_eq!(result(hello), "built");
    assert_eq!(hello["commit"], pr.as_str());
    assert_eq!(hello["promoted"], false);
    // The stream still has the branch build; the PR image is in the store by digest.
    let store = site.store();
    let (_, files) = image(&store, "okd-scos-4.17_hello");
    assert_eq!(files["usr/share/hello/VERSION"], "hello 1\n");
    let digest: oci::Digest = hello["digest"].as_str().unwrap().parse().unwrap();
    assert!(store.get_manifest(Some(&Selector::Digest(digest))).is_ok());
    assert_ne!(hello["digest"], first["okd-scos-4.17/hello"]["digest"]);
    // --ref without --component is refused.
    let out = site
        .forge
        .cmd()
        .args(["build", "--ref", "refs/pull/7/head"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--component"), "{e}");
}

#[test]
fn watch_builds_new_commits_as_they_land() {
    let site = Site::new(NATIVE);
    let mut child = site
        .forge
        .std_cmd()
        .args(["watch", "--interval", "1", "--stream", "okd-scos-4.17"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(std::mem::replace(&mut child, dummy()));
    let db = site.dir().join("var/forge.db");
    let promoted = |tag: &str| -> Option<String> {
        let state = build::state::State::open(&db).ok()?;
        state
            .stream_tags("okd-scos-4.17")
            .ok()?
            .into_iter()
            .find(|t| t.tag == tag)
            .map(|t| t.digest)
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait("the first builds", &|| promoted("world").is_some());
    let before = promoted("world").unwrap();
    let hello_before = promoted("hello").unwrap();
    site.bump("world", "2");
    wait("the rebuild of world", &|| {
        promoted("world").is_some_and(|d| d != before)
    });
    assert_eq!(
        promoted("hello").unwrap(),
        hello_before,
        "hello did not change"
    );
}

fn dummy() -> std::process::Child {
    std::process::Command::new("true").spawn().unwrap()
}

#[test]
fn a_rebuild_schedule_must_be_a_cron_expression() {
    let site = Site::new(&NATIVE.replace(
        "okd-4.17: { variant: okd, branch: release-4.17 }",
        "okd-4.17: { variant: okd, branch: release-4.17, rebuild: 'every day' }",
    ));
    let e = site.forge.fails(&["build"]);
    assert!(e.contains("streams.okd-4.17.rebuild"), "{e}");
    assert!(e.contains("'every day' is not a cron expression"), "{e}");
}

#[test]
fn buildah_builds_a_containerfile_with_the_variants_substitutions() {
    let site = Site::new(
        r#"
variants:
  okd-scos:
    build_args: { TAGS: scos }
    base_images: { "registry.ci.openshift.org/ocp/4.17:base-rhel9": "{base}" }
components:
  hello:
    git: {hello}
    images:
      - to: hello
        containerfile: Containerfile
        build_args: { EXTRA: "yes" }
streams:
  okd-scos-4.17: { variant: okd-scos, branch: release-4.17 }
"#,
    );
    let up = &site.repos["hello"];
    std::fs::write(
        up.dir().join("Containerfile"),
        "FROM registry.ci.openshift.org/ocp/4.17:base-rhel9\nARG TAGS\nARG EXTRA\nCOPY VERSION /hello/VERSION\nRUN echo \"tags=$TAGS extra=$EXTRA\" > /hello/args\n",
    )
    .unwrap();
    up.git(&["add", "-A"]);
    let commit = up.commit("containerfile");

    let r = site.build_ok(&[]);
    let hello = &r["okd-scos-4.17/hello"];
    assert_eq!(result(hello), "built", "{hello:#}");
    let store = site.store();
    let m = store
        .get_manifest(Some(&Selector::Tag("okd-scos-4.17_hello".into())))
        .unwrap();
    let Parsed::Image { config, layers } = m.parse().unwrap() else {
        panic!("not an image")
    };
    let config: Value =
        serde_json::from_slice(&store.read_blob_bytes(&config.digest).unwrap()).unwrap();
    assert_eq!(label(&config, "io.openshift.build.commit.id"), commit);
    assert_eq!(
        label(&config, "io.openshift.build.commit.ref"),
        "release-4.17"
    );
    assert_eq!(label(&config, "base"), "busybox");
    // Every file the build wrote, across its layers.
    let files = layer_files(&store, &layers);
    assert_eq!(files["hello/args"], b"tags=scos extra=yes\n");
    assert_eq!(files["hello/VERSION"], b"hello 1\n");
    assert!(
        files.contains_key("bin/busybox"),
        "the substituted base is underneath"
    );
    // Nothing changed: buildah is not run again.
    let again = site.build_ok(&[]);
    assert_eq!(result(&again["okd-scos-4.17/hello"]), "unchanged");
    let _ = s(site.dir());
}

/// A Fedora CoreOS stand-in tagged `stable` in `<dir>/fcos`: busybox, labelled with `version`.
fn fcos_stable(dir: &Path, version: &str) {
    let layout = Layout::create(dir.join("fcos")).unwrap();
    ImageBuilder::new(oci::manifest::host_arch())
        .label("version", version)
        .layer(busybox_userland(&["sh", "echo", "mkdir"]))
        .write(&layout, Some("stable"));
}

#[test]
fn buildah_layers_the_os_image_on_the_followed_os_tag_and_holds_it_for_verification() {
    let site = Site::new(
        r#"
variants: { okd: { tag_renames: { hello: fedora-coreos } } }
components:
  hello:
    git: {hello}
    images:
      - { to: hello, containerfile: Containerfile, os: true }
streams:
  okd-4.17:
    variant: okd
    branch: release-4.17
    os: { image: "oci:fcos:stable" }
    release: { name: 4.17.0-0.okd }
"#,
    );
    fcos_stable(site.dir(), "39.20231101.3.0");
    let up = &site.repos["hello"];
    std::fs::create_dir_all(up.dir().join("manifests")).unwrap();
    std::fs::write(
        up.dir().join("manifests/0000_80_okd.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: okd, namespace: openshift-config }\n",
    )
    .unwrap();
    std::fs::write(
        up.dir().join("Containerfile"),
        "FROM quay.io/fedora/fedora-coreos:stable\nCOPY manifests /manifests\nRUN mkdir -p /etc && echo okd > /etc/okd-release\n",
    )
    .unwrap();
    up.git(&["add", "-A"]);
    up.commit("the OKD layer");

    // `build` polls the followed tag first: its `version` label names the release.
    let r = site.build_ok(&[]);
    let os = &r["okd-4.17/fedora-coreos"];
    assert_eq!(result(os), "built", "{os:#}");
    assert_eq!(os["promoted"], false);
    assert_eq!(os["os"]["version"], "39.20231101.3.0");
    assert_eq!(os["os"]["gate"]["result"], "testing");
    let store = site.store();
    assert!(
        store
            .get_manifest(Some(&Selector::Tag("okd-4.17_fedora-coreos".into())))
            .is_err(),
        "not in the stream before a payload accepts it"
    );
    let digest: oci::Digest = os["digest"].as_str().unwrap().parse().unwrap();
    let m = store.get_manifest(Some(&Selector::Digest(digest))).unwrap();
    let Parsed::Image { config, layers } = m.parse().unwrap() else {
        panic!("not an image")
    };
    let config: Value =
        serde_json::from_slice(&store.read_blob_bytes(&config.digest).unwrap()).unwrap();
    assert_eq!(
        label(&config, "io.openshift.build.versions"),
        "machine-os=39.20231101.3"
    );
    assert_eq!(
        label(&config, "io.openshift.build.version-display-names"),
        "machine-os=Fedora CoreOS"
    );
    assert_eq!(label(&config, "io.openshift.release.operator"), "true");
    assert_eq!(label(&config, "version"), "39.20231101.3.0");
    let files = layer_files(&store, &layers);
    for f in [
        "bin/busybox",
        "etc/okd-release",
        "manifests/0000_80_okd.yaml",
    ] {
        assert!(files.contains_key(f), "{f} missing: {:?}", files.keys());
    }

    // The tag moves to a new release: a new OS image replaces the one being tested.
    fcos_stable(site.dir(), "39.20231119.3.0");
    let r = site.build_ok(&[]);
    let os2 = &r["okd-4.17/fedora-coreos"];
    assert_eq!(os2["os"]["version"], "39.20231119.3.0", "{os2:#}");
    assert_ne!(os2["digest"], os["digest"]);
    let status = site.forge.json(&["os", "status"]);
    assert_eq!(
        status[0]["testing"]["version"], "39.20231119.3.0",
        "{status:#}"
    );
    let again = site.build_ok(&[]);
    assert_eq!(result(&again["okd-4.17/fedora-coreos"]), "unchanged");
}

#[test]
fn additional_images_are_promoted_and_streams_list_their_tags() {
    let site = Site::new(&NATIVE.replace(
        "okd-scos-4.17: { variant: okd-scos, branch: release-4.17 }",
        "okd-scos-4.17:\n    variant: okd-scos\n    branch: release-4.17\n    promotion: { additional_images: { must-gather: \"{base}\" }, excluded_images: [world] }",
    ));

    let first = site.build_ok(&["--stream", "okd-scos-4.17"]);
    assert_eq!(result(&first["okd-scos-4.17/must-gather"]), "imported");
    assert_eq!(first["okd-scos-4.17/must-gather"]["promoted"], true);
    // Excluded: built, not promoted.
    assert_eq!(result(&first["okd-scos-4.17/world"]), "built");
    assert_eq!(first["okd-scos-4.17/world"]["promoted"], false);
    let base = site
        .store()
        .get_manifest(Some(&Selector::Tag("okd-scos-4.17_must-gather".into())))
        .unwrap();
    assert_eq!(
        first["okd-scos-4.17/must-gather"]["digest"],
        base.digest.to_string().as_str()
    );

    let again = site.build_ok(&["--stream", "okd-scos-4.17"]);
    for r in again.values() {
        assert_eq!(result(r), "unchanged", "{r:#}");
    }

    // `stream tags`: one TAG=PULLSPEC line per promoted tag, the excluded one absent; a layout
    // store's images are named by the default store_name.
    let store = build::config::DEFAULT_STORE_NAME;
    let lines = site.forge.ok(&["stream", "tags", "okd-scos-4.17"]);
    let want = format!(
        "hello={store}@{}\nmust-gather={store}@{}\n",
        first["okd-scos-4.17/hello"]["digest"].as_str().unwrap(),
        base.digest
    );
    assert_eq!(lines, want);
    let history = site
        .forge
        .json(&["stream", "history", "okd-scos-4.17", "hello"]);
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["digest"], first["okd-scos-4.17/hello"]["digest"]);
    // `stream builds`: the excluded world and hello were built; the additional image was not.
    let builds = site.forge.json(&["stream", "builds", "okd-scos-4.17"]);
    let tags: Vec<&str> = builds
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 2, "{builds:#}");
    assert!(
        tags.contains(&"hello") && tags.contains(&"world"),
        "{tags:?}"
    );
    assert!(builds
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["status"] == "succeeded"));
    let text = site.forge.ok(&["stream", "builds", "okd-scos-4.17"]);
    assert!(text.contains("succeeded"), "{text}");
    let e = site.forge.fails(&["stream", "tags", "nope"]);
    assert!(e.contains("no stream 'nope'"), "{e}");
}

#[test]
fn config_check_with_git_names_every_missing_branch() {
    let site = Site::new(&NATIVE.replace(
        "    git: {world}\n",
        "    git: {world}\n    branch: { okd-4.17: release-4.99 }\n",
    ));
    // Without --git, only the file is checked.
    site.forge.ok(&["config", "check"]);
    let out = site
        .forge
        .cmd()
        .args(["config", "check", "--git"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "error: branch 'release-4.99' does not exist in {}; check the stream's branch or the component's `branch:` override\nerror: 1 branch(es) or ref(s) could not be resolved\n",
        site.repos["world"].url()
    );
    assert_eq!(stderr, want);
    // Once the branch exists, the check passes.
    site.repos["world"].branch("release-4.99", "main");
    site.forge.ok(&["config", "check", "--git"]);
}
