//! The OS a stream follows, end to end on the embedded defaults: CentOS Stream CoreOS stream
//! metadata (the real fixture, served over HTTP on loopback), OS base images built here with rpm
//! databases made by the real rpm, the OS image built natively on the stream's release,
//! payloads cut and verified by a real job, and the gate: a new OS release makes a new payload, a
//! failed verification keeps the old OS, a pinned stream ignores new releases, unpinning follows
//! them again, and malformed metadata keeps what was recorded.

mod common;

use std::path::{Path, PathBuf};

use common::{s, Forge};
use serde_json::Value;
use testkit::git::Upstream;
use testkit::release::{Entry, ImageBuilder, ReleaseSet};
use testkit::FileServer;

const STREAM: &str = "okd-scos-4.17";
const V1: &str = "10.0.20250628-0";
const V2: &str = "10.0.20250705-0";
const V3: &str = "10.0.20250712-0";

/// The installer's embedded CentOS Stream CoreOS stream metadata (c10s, at [`V1`]).
fn scos_metadata() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/tests/fixtures/fcos/scos.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same stream moved on to `version`, a week per step later.
fn metadata_at(version: &str, modified: &str) -> String {
    scos_metadata()
        .replace(V1, version)
        .replace("2025-07-01T21:24:39Z", modified)
}

/// The packages of each OS release.
fn packages(version: &str) -> Vec<(&'static str, &'static str, &'static str)> {
    match version {
        V1 => vec![
            ("kernel", "6.12.0", "55.el10"),
            ("NetworkManager", "1.52.0", "1.el10"),
            ("zincati", "0.0.30", "1.el10"),
        ],
        V2 => vec![
            ("kernel", "6.12.0", "60.el10"),
            ("NetworkManager", "1.52.0", "1.el10"),
            ("cri-o", "1.31.1", "1.el10"),
        ],
        _ => vec![
            ("kernel", "6.12.0", "66.el10"),
            ("NetworkManager", "1.52.0", "2.el10"),
            ("cri-o", "1.31.1", "1.el10"),
        ],
    }
}

/// An OS base image of `version` in the layout `dir`, tagged with the version: an os-release, an
/// rpm database, and the `version` label CoreOS images carry.
fn os_base(dir: &Path, version: &str) {
    let layout = oci::Layout::create(dir).unwrap();
    ImageBuilder::new("amd64")
        .layer(vec![
            Entry::dir("etc/"),
            Entry::file(
                "etc/os-release",
                format!(
                    "NAME=\"CentOS Stream CoreOS\"\nID=\"scos\"\nVERSION_ID=\"10\"\n\
                     VERSION=\"{version}\"\n"
                ),
            ),
            Entry::dir("usr/"),
            Entry::dir("usr/share/"),
            Entry::dir("usr/share/rpm/"),
            Entry::file(
                "usr/share/rpm/rpmdb.sqlite",
                testkit::rpm::database(&packages(version)),
            ),
        ])
        .label("version", version)
        .write(&layout, Some(version));
}

struct Site {
    forge: Forge,
    files: FileServer,
    _served: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let forge = Forge::new();
        let home = forge.home.path().to_path_buf();
        for v in [V1, V2, V3] {
            os_base(&home.join("scos"), v);
        }
        let served = tempfile::tempdir().unwrap();
        let files = FileServer::start(served.path());
        files.put("stable.json", scos_metadata());

        // The OS repository: manifests for the payload and a file of the OKD layer.
        let up = Upstream::init(home.join("upstream/os"));
        std::fs::create_dir_all(up.dir().join("manifests")).unwrap();
        std::fs::create_dir_all(up.dir().join("overlay")).unwrap();
        std::fs::write(
            up.dir().join("manifests/0000_80_okd-os_configmap.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: okd-os\n  namespace: openshift-machine-config-operator\ndata:\n  os: okd\n",
        )
        .unwrap();
        std::fs::write(up.dir().join("overlay/release"), "OKD on SCOS\n").unwrap();
        up.git(&["add", "-A"]);
        up.commit("the OKD layer");
        up.branch("release-4.17", "main");

        let config = format!(
            r#"store: var/store
state: var/forge.db
variants: {{ okd-scos: {{}} }}
components:
  os:
    git: {git}
    images:
      - to: stream-coreos
        os: true
        native:
          outputs: ["manifests:/manifests", "overlay:/etc/okd"]
          base: quay.io/okd/centos-stream-coreos-10:placeholder
streams:
  {STREAM}:
    variant: okd-scos
    branch: release-4.17
    os:
      metadata: {metadata}
      image: "oci:{scos}"
    release:
      name: 4.17.0-0.okd-scos
      verify:
        e2e:
          command: [sh, -c, 'test ! -e "$FLAG"']
          env: {{ FLAG: "{flag}" }}
"#,
            git = up.url(),
            metadata = files.url("stable.json"),
            scos = home.join("scos").display(),
            flag = home.join("fail").display(),
        );
        std::fs::write(home.join("forge.yaml"), config).unwrap();

        // Every other component, promoted into the stream as builds do.
        let inputs = ReleaseSet::standard("amd64")
            .remove("stream-coreos")
            .write(&home.join("var/store"));
        let state = build::state::State::open(&home.join("var/forge.db")).unwrap();
        for (tag, c) in &inputs.components {
            state
                .promote(STREAM, tag, &c.digest.to_string(), None)
                .unwrap();
        }
        Site {
            forge,
            files,
            _served: served,
        }
    }

    fn home(&self) -> PathBuf {
        self.forge.home.path().to_path_buf()
    }

    /// `os poll`: this stream's outcome.
    fn poll(&self) -> Value {
        self.forge.json(&["os", "poll"])[STREAM].clone()
    }

    /// `build`: the stream-coreos result.
    fn build(&self) -> Value {
        let doc = self.forge.json(&["build"]);
        doc["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tag"] == "stream-coreos")
            .cloned()
            .unwrap_or_else(|| panic!("no stream-coreos in {doc:#}"))
    }

    fn status(&self) -> Value {
        self.forge.json(&["os", "status"])[0].clone()
    }

    /// `controller sync`, again after a moment when it only had to wait for a new payload name
    /// (a payload of the same second as the previous one); its output.
    fn sync(&self) -> String {
        loop {
            let out = self.forge.ok(&["controller", "sync"]);
            if out.lines().count() > 1 || !out.contains("waiting a second") {
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// The payloads, newest first: (name, phase, pull spec).
    fn payloads(&self) -> Vec<(String, String, String)> {
        self.forge
            .json(&["release", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let p = &l["payload"];
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["phase"].as_str().unwrap().to_string(),
                    p["pull_spec"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The stream's stream-coreos digest.
    fn stream_os(&self) -> Option<String> {
        let tags = self.forge.ok(&["stream", "tags", STREAM]);
        tags.lines()
            .find_map(|l| l.strip_prefix("stream-coreos="))
            .map(|spec| spec.rsplit_once('@').unwrap().1.to_string())
    }
}

#[test]
fn a_new_os_release_is_gated_by_its_payload_pinned_and_followed_again() {
    let site = Site::new();
    let f = &site.forge;
    let store = s(&site.home().join("var/store"));

    // The first poll records the release the metadata names, with its image by digest.
    let polled = site.poll();
    assert_eq!(polled["result"], "new", "{polled:#}");
    assert_eq!(polled["release"]["version"], V1);
    assert!(
        polled["release"]["base"]
            .as_str()
            .unwrap()
            .contains("/scos@sha256:"),
        "{polled:#}"
    );
    assert_eq!(site.poll()["result"], "same");

    // The OS image is built on it, labelled, and held back for a payload to verify.
    let built = site.build();
    assert_eq!(built["status"]["result"], "built", "{built:#}");
    assert_eq!(built["promoted"], false);
    assert_eq!(built["os"]["version"], V1);
    assert_eq!(built["os"]["gate"]["result"], "testing");
    let os1 = built["digest"].as_str().unwrap().to_string();
    let inspect = f.json(&["image", "inspect", &format!("oci:{store}@{os1}")]);
    let labels = &inspect["Labels"];
    assert_eq!(
        labels["io.openshift.build.versions"],
        format!("machine-os={V1}")
    );
    assert_eq!(
        labels["io.openshift.build.version-display-names"],
        "machine-os=CentOS Stream CoreOS"
    );
    // Its top layer holds /manifests, so it is an operator image of the payload.
    assert_eq!(labels["io.openshift.release.operator"], "true");
    assert_eq!(labels["version"], V1, "the base's labels are kept");
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        2,
        "base + OKD layer"
    );
    assert_eq!(site.stream_os(), None);
    let st = site.status();
    assert_eq!(st["testing"]["version"], V1, "{st:#}");
    assert!(st["current"].is_null(), "{st:#}");

    // The payload carrying it is verified and Accepted: the OS enters the stream.
    let out = site.sync();
    assert!(
        out.contains(&format!("OS {V1} accepted into the stream")),
        "{out}"
    );
    let payloads = site.payloads();
    assert_eq!(payloads.len(), 1);
    let (p1, phase, spec1) = payloads[0].clone();
    assert_eq!(phase, "accepted");
    assert_eq!(site.stream_os().as_deref(), Some(os1.as_str()));
    let st = site.status();
    assert_eq!(st["current"]["version"], V1, "{st:#}");
    assert_eq!(st["current"]["payload"], p1.as_str());
    assert!(st["testing"].is_null());
    let info = f.ok(&["release", "info", &spec1, "--store", &store]);
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["machine-os", V1, "CentOS", "Stream", "CoreOS"]),
        "{info}"
    );
    // The OS image's manifests are in the payload (named as oc names a run-level manifest).
    let extracted = f.extract_to(&spec1, &["--store", &store], "p1");
    let cm = std::fs::read_to_string(extracted.join("0000_80_okd-os_configmap.yaml")).unwrap();
    assert!(cm.contains("name: okd-os"), "{cm}");

    // A new OS release, and verification fails: the payload carrying it is Rejected, and the
    // stream keeps its OS.
    site.files
        .put("stable.json", metadata_at(V2, "2025-07-08T00:00:00Z"));
    std::fs::write(site.home().join("fail"), "").unwrap();
    assert_eq!(site.poll()["release"]["version"], V2);
    let built = site.build();
    assert_eq!(built["os"]["version"], V2, "{built:#}");
    assert_eq!(built["os"]["gate"]["result"], "testing");
    let os2 = built["digest"].as_str().unwrap().to_string();
    assert_ne!(os2, os1);
    let out = site.sync();
    assert!(
        out.contains(&format!("OS {V2} rejected; the stream keeps its OS")),
        "{out}"
    );
    let payloads = site.payloads();
    let (p2, phase, spec2) = payloads[0].clone();
    assert_eq!(phase, "rejected");
    assert_eq!(site.stream_os().as_deref(), Some(os1.as_str()));
    let st = site.status();
    assert_eq!(st["current"]["version"], V1, "{st:#}");
    assert_eq!(st["rejected"]["version"], V2);
    assert!(
        st["rejected"]["reason"].as_str().unwrap().contains(&p2),
        "{st:#}"
    );
    let text = f.ok(&["os", "status", STREAM]);
    assert!(text.contains(&format!("rejected:  {V2}")), "{text}");
    // Built again, the rejected image is not proposed again, and no payload is cut.
    let again = site.build();
    assert_eq!(again["status"]["result"], "unchanged", "{again:#}");
    assert_eq!(again["os"]["gate"]["result"], "rejected");
    assert_eq!(site.sync().trim(), format!("{STREAM}: unchanged"));

    // The OS change between the payloads: versions and packages from the rpm databases.
    let diff_args = [
        "release",
        "diff",
        &spec1,
        &spec2,
        "--rpmdb-diff",
        "--store",
        &store,
    ];
    let diff = f.json(&diff_args);
    let os = &diff["os"];
    assert_eq!(os["tag"], "stream-coreos", "{os:#}");
    assert_eq!(
        (os["from"].as_str(), os["version"].as_str()),
        (Some(V1), Some(V2))
    );
    let names = |key: &str| -> Vec<String> {
        os["packages"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("changed"), ["kernel"]);
    assert_eq!(names("added"), ["cri-o"]);
    assert_eq!(names("removed"), ["zincati"]);
    assert_eq!(os["packages"]["changed"][0]["from"], "6.12.0-55.el10");
    assert_eq!(os["packages"]["changed"][0]["to"], "6.12.0-60.el10");
    let md = f.ok(&diff_args);
    assert!(
        md.contains(&format!("* CentOS Stream CoreOS {V2} (upgraded from {V1})")),
        "{md}"
    );
    assert!(
        md.contains("  * kernel.noarch 6.12.0-55.el10 → 6.12.0-60.el10"),
        "{md}"
    );

    // Malformed metadata: a clear error naming the source and the place, and nothing lost.
    site.files
        .put("stable.json", "{\"stream\": \"c10s\",\n \"metadata\": 7}");
    let err = f.fails(&["os", "poll"]);
    assert!(
        err.contains("could not be polled; what was recorded is kept"),
        "{err}"
    );
    let out = f.cmd().args(["os", "poll"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&site.files.url("stable.json")) && stdout.contains("metadata"),
        "{stdout}"
    );
    let st = site.status();
    assert_eq!(st["poll"]["ok"], false, "{st:#}");
    let versions: Vec<&str> = st["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, [V2, V1]);

    // A newer release is built on and waits for a payload; pinned to the release in the stream
    // before one is cut, the stream holds: the candidate is withdrawn, nothing is cut, and newer
    // releases are recorded but not built on.
    std::fs::remove_file(site.home().join("fail")).unwrap();
    site.files
        .put("stable.json", metadata_at(V3, "2025-07-15T00:00:00Z"));
    assert_eq!(site.poll()["release"]["version"], V3);
    assert_eq!(site.build()["os"]["gate"]["result"], "testing");
    assert_eq!(site.status()["testing"]["version"], V3);
    f.ok(&[
        "os",
        "pin",
        STREAM,
        V1,
        "--reason",
        "NetworkManager regression",
    ]);
    let pinned = site.build();
    assert_eq!(pinned["status"]["result"], "unchanged", "{pinned:#}");
    assert_eq!(pinned["os"]["version"], V1);
    assert!(site.status()["testing"].is_null(), "{:#}", site.status());
    assert_eq!(site.sync().trim(), format!("{STREAM}: unchanged"));
    let st = site.status();
    assert_eq!(st["pin"]["version"], V1, "{st:#}");
    assert_eq!(st["desired"], V1);
    assert_eq!(site.payloads().len(), 2);

    // Unpinned, the stream follows its source again: the newest release passes and enters.
    f.ok(&["os", "unpin", STREAM]);
    let built = site.build();
    assert_eq!(built["os"]["version"], V3, "{built:#}");
    assert_eq!(built["os"]["gate"]["result"], "retesting");
    let out = site.sync();
    assert!(
        out.contains(&format!("OS {V3} accepted into the stream")),
        "{out}"
    );
    assert_eq!(site.payloads().len(), 3);
    assert_eq!(site.payloads()[0].1, "accepted");
    assert_eq!(site.status()["current"]["version"], V3);
    assert_eq!(
        site.stream_os().as_deref(),
        built["digest"].as_str(),
        "the stream has the new OS image"
    );

    // Accepting the rejected payload by hand decides its OS too, but the newer OS accepted
    // since stays in the stream.
    f.ok(&["release", "accept", &p2, "--reason", "infra flake"]);
    let out = site.sync();
    assert!(
        out.contains(&format!(
            "OS {V2} accepted; the stream keeps the newer OS accepted before it"
        )),
        "{out}"
    );
    assert_eq!(site.stream_os().as_deref(), built["digest"].as_str());
    assert!(site.status()["rejected"].is_null());

    // A revert: pinned back to the first release, its image (built before) is proposed again.
    // With everything else as it was, the stream's next payload would be the first one again:
    // that payload's verdict decides, no new payload is cut, and the image enters.
    f.ok(&["os", "pin", STREAM, V1, "--reason", "revert"]);
    let reverted = site.build();
    assert_eq!(
        reverted["digest"].as_str(),
        Some(os1.as_str()),
        "{reverted:#}"
    );
    assert_eq!(reverted["os"]["gate"]["result"], "retesting");
    let out = site.sync();
    assert!(
        out.contains(&format!("{p1}: OS {V1} accepted into the stream")),
        "{out}"
    );
    assert_eq!(site.payloads().len(), 3);
    assert_eq!(site.stream_os().as_deref(), Some(os1.as_str()));
    assert_eq!(site.status()["current"]["version"], V1);
}

#[test]
fn a_pin_of_a_release_the_poller_never_saw_is_looked_up_in_the_image_repository() {
    let site = Site::new();
    let f = &site.forge;
    // Nothing recorded yet: a pin finds V2 as REPO:V2 and records it; builds use it.
    f.ok(&["os", "pin", STREAM, V2]);
    let built = site.build();
    assert_eq!(built["os"]["version"], V2, "{built:#}");
    // A release the repository does not have is refused, and the pin stays.
    let err = f.fails(&["os", "pin", STREAM, "10.0.20990101-0"]);
    assert!(
        err.starts_with(&format!(
            "error: cannot pin {STREAM} to OS 10.0.20990101-0: "
        )),
        "{err}"
    );
    assert_eq!(site.status()["pin"]["version"], V2);
    // A stream that follows no OS says so.
    let err = f.fails(&["os", "pin", "nope", V1]);
    assert!(
        err.contains("no stream 'nope' in the configuration"),
        "{err}"
    );
}
