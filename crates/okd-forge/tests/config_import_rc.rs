//! `okd-forge config import-release-controller` on real release-controller configs (copied from
//! `../shared/fixtures/release-controller` into `tests/config/release-controller`): each one
//! imports with the expected settings and notes, and the printed streams, merged into a minimal
//! forge.yaml, pass `config check`.

mod common;

use std::path::Path;

use common::{s, Forge};
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    s(&Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config/release-controller")
        .join(name))
}

/// Runs the import with `--output json`: (the stream's release block, the notes as
/// `PATH: REASON`).
fn import_json(f: &Forge, file: &str, stream: &str) -> (Value, Vec<String>) {
    let doc = f.json(&["config", "import-release-controller", file]);
    let streams = doc["config"]["streams"].as_object().expect("streams");
    assert_eq!(streams.len(), 1, "{doc}");
    let notes = doc["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| {
            assert_eq!(n["file"], file);
            format!(
                "{}: {}",
                n["path"].as_str().expect("path"),
                n["reason"].as_str().expect("reason")
            )
        })
        .collect();
    (doc["config"]["streams"][stream]["release"].clone(), notes)
}

/// Runs the import as text, merges the printed streams under a minimal forge.yaml (one
/// variant, one component, each stream with its variant and branch, plus `extra` streams that
/// publish actions copy into) and checks the result; returns stderr.
fn import_and_check(f: &Forge, file: &str, stream: &str, branch: &str, extra: &[&str]) -> String {
    let run = f
        .cmd()
        .args(["config", "import-release-controller", file])
        .output()
        .expect("run okd-forge");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "{stderr}");
    let printed = String::from_utf8(run.stdout).expect("utf-8");
    let head = format!("streams:\n  {stream}:\n");
    assert!(printed.starts_with(&head), "{printed}");
    let mut yaml = String::from(
        "variants: { okd: {} }\ncomponents:\n  cli:\n    git: https://github.com/openshift/oc\n    images: [ { to: cli, containerfile: Dockerfile } ]\n",
    );
    yaml.push_str(&head);
    yaml.push_str(&format!("    variant: okd\n    branch: {branch}\n"));
    yaml.push_str(&printed[head.len()..]);
    for s in extra {
        yaml.push_str(&format!("  {s}: {{ variant: okd, branch: {branch} }}\n"));
    }
    let path = f.path("forge.yaml");
    std::fs::write(&path, &yaml).expect("write forge.yaml");
    let out = f.ok(&["config", "check", "--config", &s(&path)]);
    assert!(out.contains(": OK: 1 components"), "{out}");
    for line in stderr.lines() {
        assert!(
            line.starts_with(&format!("{file}: ")) && line.contains(": not mapped ("),
            "{line}"
        );
    }
    stderr
}

fn failing(job: &str, prow: &str) -> Value {
    json!([
        "sh",
        "-c",
        format!(
            "echo 'verify job {job}: give it a command (it was the Prow job {prow})' >&2; exit 1"
        )
    ])
}

const PROW: &str = "okd-forge runs commands, not Prow jobs: replace the command, which fails until then, with what";

fn prow_note(job: &str, prow: &str) -> String {
    format!("verify.{job}.prowJob: {PROW} {prow} runs")
}

const TO: &str = "to: payloads are tagged in okd-forge's store, which has no target image stream";
const MIRROR_PREFIX: &str =
    "mirrorPrefix: payloads pin their images in okd-forge's store, not in snapshot image streams";

/// (job, optional, upgrade, upgrade_from, max_retries, Prow job) → the expected verify block.
type Job<'a> = (&'a str, bool, bool, Option<&'a str>, Option<u32>, &'a str);

fn check_jobs(release: &Value, jobs: &[Job]) {
    let verify = release["verify"].as_object().expect("verify");
    let names: Vec<&str> = verify.keys().map(String::as_str).collect();
    let wanted: Vec<&str> = jobs.iter().map(|j| j.0).collect();
    assert_eq!(names, wanted);
    for (job, optional, upgrade, from, retries, prow) in jobs {
        let v = &verify[*job];
        assert_eq!(v["command"], failing(job, prow), "{job}");
        assert_eq!(v["optional"].as_bool().unwrap_or(false), *optional, "{job}");
        assert_eq!(v["upgrade"].as_bool().unwrap_or(false), *upgrade, "{job}");
        assert_eq!(v["upgrade_from"].as_str(), *from, "{job}");
        assert_eq!(v["max_retries"].as_u64(), retries.map(u64::from), "{job}");
    }
}

#[test]
fn okd_4_15() {
    let f = Forge::new();
    let file = fixture("release-okd-4.15.json");
    let (r, notes) = import_json(&f, &file, "okd-4.15");
    assert_eq!(r["name"], "4.15.0-0.okd");
    assert_eq!(r["max_unready"], 1);
    assert_eq!(r["min_interval"], "1h");
    assert_eq!(r["expires"], "3d");
    let p = "periodic-ci-openshift-release-master-okd-4.15-e2e";
    let (aws, up, vs) = (
        format!("{p}-aws-ovn"),
        format!("{p}-aws-ovn-upgrade"),
        format!("{p}-vsphere-ovn"),
    );
    check_jobs(
        &r,
        &[
            ("aws", false, false, None, Some(2), &aws),
            ("aws-upgrade", true, true, None, Some(2), &up),
            ("vsphere", true, false, None, Some(2), &vs),
        ],
    );
    assert_eq!(r["publish"], json!({ "tag": { "tag_ref": "4.15" } }));
    assert_eq!(
        notes,
        [
            TO.to_string(),
            MIRROR_PREFIX.to_string(),
            prow_note("aws", &aws),
            prow_note("aws-upgrade", &up),
            prow_note("vsphere", &vs),
        ]
    );
    let stderr = import_and_check(&f, &file, "okd-4.15", "release-4.15", &[]);
    assert!(
        stderr.contains(&format!("{file}: to: not mapped (payloads are tagged")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 5, "{stderr}");
}

#[test]
fn okd_scos_4_16_frozen() {
    let f = Forge::new();
    let file = fixture("release-okd-scos-4.16.json");
    let (r, notes) = import_json(&f, &file, "okd-scos-4.16");
    assert_eq!(r["name"], "4.16.0-0.okd-scos");
    assert_eq!(r["max_unready"], 1);
    // Frozen when 4.17 came: two years between payloads.
    assert_eq!(r["min_interval"], "730d");
    assert_eq!(r["expires"], "3d");
    let p = "periodic-ci-openshift-release-master-okd-scos-4.16-e2e";
    let (aws, up, vs) = (
        format!("{p}-aws-ovn"),
        format!("{p}-aws-ovn-upgrade"),
        format!("{p}-vsphere-ovn"),
    );
    check_jobs(
        &r,
        &[
            ("aws", false, false, None, Some(1), &aws),
            ("aws-upgrade", true, true, None, Some(1), &up),
            ("vsphere", true, false, None, Some(1), &vs),
        ],
    );
    assert_eq!(r["publish"], json!({ "tag": { "tag_ref": "scos-4.16" } }));
    assert_eq!(
        notes,
        [
            TO.to_string(),
            MIRROR_PREFIX.to_string(),
            prow_note("aws", &aws),
            prow_note("aws-upgrade", &up),
            prow_note("vsphere", &vs),
        ]
    );
    import_and_check(&f, &file, "okd-scos-4.16", "release-4.16", &[]);
}

#[test]
fn okd_scos_4_20() {
    let f = Forge::new();
    let file = fixture("release-okd-scos-4.20.json");
    let (r, notes) = import_json(&f, &file, "okd-scos-4.20");
    assert_eq!(r["name"], "4.20.0-0.okd-scos");
    assert_eq!(r["max_unready"], 1);
    assert_eq!(r["min_interval"], "12h");
    assert_eq!(r["expires"], "3d");
    let p = "periodic-ci-openshift-release-main-okd-scos-4.20";
    let jobs = [
        ("aws", false, false, None, Some(1), "e2e-aws-ovn"),
        (
            "aws-upgrade",
            true,
            true,
            None,
            Some(1),
            "e2e-aws-ovn-upgrade",
        ),
        (
            "aws-upgrade-minor",
            true,
            true,
            Some("previous_minor"),
            None,
            "upgrade-from-okd-scos-4.19-e2e-aws-ovn-upgrade",
        ),
        (
            "aws-ovn-techpreview",
            true,
            false,
            None,
            Some(1),
            "e2e-aws-ovn-techpreview",
        ),
        (
            "agent-single-node-ipv6",
            true,
            false,
            None,
            None,
            "e2e-agent-single-node-ipv6",
        ),
        ("gcp", true, false, None, None, "e2e-gcp"),
        ("vsphere", true, false, None, Some(1), "e2e-vsphere-ovn"),
    ];
    let prows: Vec<String> = jobs.iter().map(|j| format!("{p}-{}", j.5)).collect();
    let jobs: Vec<Job> = jobs
        .iter()
        .zip(&prows)
        .map(|(j, prow)| (j.0, j.1, j.2, j.3, j.4, prow.as_str()))
        .collect();
    check_jobs(&r, &jobs);
    assert_eq!(r["publish"], json!({ "tag": { "tag_ref": "scos-4.20" } }));
    let mut wanted = vec![TO.to_string(), MIRROR_PREFIX.to_string()];
    for (job, .., prow) in &jobs {
        wanted.push(prow_note(job, prow));
        if *job == "aws-upgrade-minor" {
            wanted.push("verify.aws-upgrade-minor.upgradeFromRelease.candidate.stream: previous_minor upgrades from the newest Accepted payload of any 4.19 stream; to take it from okd's only, write upgrade_from: okd-4.19".into());
        }
    }
    assert_eq!(notes, wanted);
    import_and_check(&f, &file, "okd-scos-4.20", "release-4.20", &[]);
}

#[test]
fn ocp_ci_4_14_with_stream_inheritance() {
    let f = Forge::new();
    let file = fixture("release-ocp-4.14-ci.json");
    let (r, notes) = import_json(&f, &file, "ci-4.14");
    assert_eq!(r["name"], "4.14.0-0.ci");
    assert_eq!(r["max_unready"], 1);
    assert_eq!(r["min_interval"], "6h");
    assert_eq!(r["expires"], "3d");
    let p = "periodic-ci-openshift-release-master-ci-4.14";
    let m = "upgrade-from-stable-4.13";
    let jobs = [
        (
            "aggregated-aws-ovn-upgrade-4.14-micro",
            false,
            true,
            None,
            None,
            "e2e-aws-ovn-upgrade".to_string(),
        ),
        (
            "aggregated-aws-ovn-upgrade-4.14-minor",
            false,
            true,
            Some("previous_minor"),
            None,
            format!("{m}-e2e-aws-ovn-upgrade"),
        ),
        (
            "aggregated-azure-sdn-upgrade-4.14-minor",
            false,
            true,
            Some("previous_minor"),
            None,
            format!("{m}-e2e-azure-sdn-upgrade"),
        ),
        (
            "aws-sdn-serial",
            false,
            false,
            None,
            Some(3),
            "e2e-aws-sdn-serial".to_string(),
        ),
        (
            "gcp-sdn",
            true,
            false,
            None,
            None,
            "e2e-gcp-sdn".to_string(),
        ),
        (
            "upgrade",
            true,
            true,
            None,
            None,
            "e2e-gcp-sdn-upgrade".to_string(),
        ),
        (
            "upgrade-minor-aws-ovn",
            true,
            true,
            Some("previous_minor"),
            None,
            format!("{m}-e2e-aws-ovn-upgrade"),
        ),
        (
            "upgrade-minor-sdn",
            true,
            true,
            Some("previous_minor"),
            None,
            format!("{m}-e2e-aws-sdn-upgrade"),
        ),
    ];
    let prows: Vec<String> = jobs.iter().map(|j| format!("{p}-{}", j.5)).collect();
    let jobs: Vec<Job> = jobs
        .iter()
        .zip(&prows)
        .map(|(j, prow)| (j.0, j.1, j.2, j.3, j.4, prow.as_str()))
        .collect();
    check_jobs(&r, &jobs);
    let disabled: Vec<&str> = r["verify"]
        .as_object()
        .expect("verify")
        .iter()
        .filter(|(_, v)| v["disabled"] == true)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(disabled, ["upgrade", "upgrade-minor-aws-ovn"]);

    let publish = r["publish"].as_object().expect("publish");
    assert_eq!(
        publish.keys().collect::<Vec<_>>(),
        ["mirror-to-okd-scos", "mirror-to-origin", "tag"]
    );
    assert_eq!(publish["tag"], json!({ "tag_ref": "4.14-ci" }));
    for (action, stream) in [
        ("mirror-to-okd-scos", "okd-scos-4.14"),
        ("mirror-to-origin", "okd-4.14"),
    ] {
        let a = &publish[action];
        assert_eq!(a["stream"], stream);
        assert!(a.get("tags").is_none(), "{a}");
        let excluded = a["exclude_tags"].as_array().expect("exclude_tags");
        assert_eq!(excluded.len(), 28);
        assert_eq!(excluded[0], "rhel-coreos-8");
        assert_eq!(excluded[27], "machine-os-images");
    }

    let mut wanted = vec![
        TO.to_string(),
        "message: the dashboard is not configured per stream".to_string(),
        MIRROR_PREFIX.to_string(),
        "pullSecretName: credentials come from auth files (--authfile, podman login), not secrets".to_string(),
        "publish.mirror-to-okd-scos.imageStreamRef: the image stream origin/scos-4.14 became the stream okd-scos-4.14; rename it if yours is named otherwise".to_string(),
        "publish.mirror-to-origin.imageStreamRef: the image stream origin/4.14 became the stream okd-4.14; rename it if yours is named otherwise".to_string(),
    ];
    for (job, .., prow) in &jobs {
        wanted.push(prow_note(job, prow));
        if job.starts_with("aggregated-") {
            wanted.push(format!("verify.{job}.aggregatedProwJob: aggregated analysis jobs are not supported: the job runs once"));
        }
    }
    assert_eq!(notes, wanted);
    import_and_check(
        &f,
        &file,
        "ci-4.14",
        "release-4.14",
        &["okd-scos-4.14", "okd-4.14"],
    );
}

#[test]
fn all_fixtures_together_and_stream_override() {
    let f = Forge::new();
    let files: Vec<String> = [
        "release-ocp-4.14-ci.json",
        "release-okd-4.15.json",
        "release-okd-scos-4.16.json",
        "release-okd-scos-4.20.json",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    let mut args = vec!["config", "import-release-controller"];
    args.extend(files.iter().map(String::as_str));
    let doc = f.json(&args);
    let names: Vec<&String> = doc["config"]["streams"]
        .as_object()
        .expect("streams")
        .keys()
        .collect();
    assert_eq!(
        names,
        ["ci-4.14", "okd-4.15", "okd-scos-4.16", "okd-scos-4.20"]
    );

    let out = f.ok(&[
        "config",
        "import-release-controller",
        "--stream",
        "okd-fcos-4.15",
        &files[1],
    ]);
    assert!(
        out.starts_with("streams:\n  okd-fcos-4.15:\n    release:\n      name: 4.15.0-0.okd\n"),
        "{out}"
    );
    let err = f.fails(&[
        "config",
        "import-release-controller",
        "--stream",
        "x",
        &files[0],
        &files[1],
    ]);
    assert!(
        err.contains("--stream names the stream of one file"),
        "{err}"
    );
}

#[test]
fn bad_files_fail_naming_the_file_and_field() {
    let f = Forge::new();
    let err = f.fails(&["config", "import-release-controller", "missing.json"]);
    assert!(err.contains("cannot read missing.json"), "{err}");
    let cases = [
        ("{\"name\": ", "line 1, column 9: not JSON"),
        ("[1]", "(document): expected an object, found a list"),
        ("{\"to\": \"release\"}", "name: missing"),
        (
            "{\"name\": \"4.17.0-0.okd\", \"maxUnreadyReleases\": true}",
            "maxUnreadyReleases: expected a whole number ≥ 0, found a boolean",
        ),
        (
            "{\"name\": \"4.17.0-0.okd\", \"expires\": \"1.5h\"}",
            "expires: '1.5h' has a fraction",
        ),
        (
            "{\"name\": \"4.17.0-0.okd\", \"verify\": {\"aws\": {\"upgrade\": \"yes\"}}}",
            "verify.aws.upgrade: expected true or false, found a string",
        ),
        ("{\"name\": \"okd\"}", "name: 'okd' is not X.Y.Z-0.SUFFIX"),
        (
            "{\"name\": \"4-scos-stable\", \"as\": \"Stable\", \"verify\": {}}",
            "as: '4-scos-stable' is a stable stream: stable streams are promotion targets, configured with promote:",
        ),
    ];
    for (text, wanted) in cases {
        let file = s(&f.path("bad.json"));
        std::fs::write(&file, text).expect("write");
        let err = f.fails(&["config", "import-release-controller", &file]);
        assert!(err.contains(&format!("{file}: {wanted}")), "{text}: {err}");
    }
}
