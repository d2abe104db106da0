//! Verification jobs in real podman containers (`podman --runtime runc run`) of a busybox-static
//! image: JUnit written into the mounted artifacts directory, the log captured, ci-operator's
//! environment at the in-container paths, timeouts that kill the container, and podman's own
//! failures reported as errors.
//!
//! Needs root, podman, runc and busybox-static (scripts/test.sh installs them); a missing one fails
//! the test. Each test has podman storage of its own in a temp dir (`--root`, `--runroot`,
//! `--tmpdir`, vfs driver), its own containers.conf with `default_ulimits = []` (which these
//! machines need), registries.conf and storage.conf, and runc (crun fails here). The image is a
//! rootfs tar of busybox `podman import`ed into that storage.

mod common;

use std::time::{Duration, Instant};

use common::*;
use release::jobs::leases::LeasePools;
use release::jobs::{run_job, JobState, PodmanExecutor, TestResult};
use testkit::podman::Podman;
use testkit::release::{busybox_userland, tar_bytes};

/// The image the jobs run in.
const IMAGE: &str = "localhost/okd-forge-test/busybox:1";

/// A private podman holding [`IMAGE`], a busybox-static userland.
fn podman() -> Podman {
    let podman = Podman::new();
    let rootfs = podman.dir().join("rootfs.tar");
    std::fs::write(
        &rootfs,
        tar_bytes(&busybox_userland(&["sh", "cat", "env", "sleep", "mkdir"])),
    )
    .expect("write rootfs.tar");
    podman.ok(&["import", &rootfs.display().to_string(), IMAGE]);
    podman
}

/// The executor under test, on `podman`'s storage, with a 1 s grace period.
fn executor(podman: &Podman) -> PodmanExecutor {
    PodmanExecutor::new()
        .with_program(podman.program())
        .with_global_args(podman.global_args())
        .with_env(podman.env())
        .with_run_args(["--pull=never", "--net=none"])
        .with_grace_period(Duration::from_secs(1))
}

/// The IDs of all containers, running or not.
fn containers(podman: &Podman) -> String {
    podman.ok(&["ps", "--all", "--quiet"])
}

fn job(name: &str, script: &str) -> release::jobs::JobSpec {
    let mut job = sh(name, script);
    job.command[0] = "/bin/sh".into();
    job.image = Some(IMAGE.into());
    job
}

#[tokio::test]
async fn podman_job_writes_junit_into_the_mounted_artifacts_and_its_output_is_the_log() {
    let podman = podman();
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("aws-quota-slice", 1)]).unwrap();
    let script = format!(
        "env > \"$ARTIFACT_DIR/env.txt\"\n\
         echo handed-on > \"$SHARED_DIR/kubeconfig\"\n\
         {WRITE_JUNIT}\
         echo 'e2e in a container'\n\
         echo 'warning from the container' >&2\n\
         exit 1"
    );
    let mut spec = job("e2e-aws-upgrade", &script);
    spec.leases = vec!["aws-quota-slice".into()];
    spec.env.insert("MY_SETTING".into(), "on".into());
    let mut run = run_in(root.path(), spec);
    run.initial = Some(INITIAL.into());

    let outcome = run_job(&executor(&podman), &pools, &run).await;
    assert_eq!(outcome.state, JobState::Failed, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(1));
    assert_eq!(pools.in_use("aws-quota-slice"), Some(0));
    let results: Vec<&TestResult> = outcome.tests.iter().map(|t| &t.result).collect();
    assert_eq!(results.len(), 3, "{:?}", outcome.tests);
    assert_eq!(*results[0], TestResult::Passed);
    assert!(matches!(results[1], TestResult::Failed { .. }));
    assert!(matches!(results[2], TestResult::Skipped { .. }));

    let log = std::fs::read_to_string(&outcome.log).unwrap();
    assert_eq!(
        log,
        "Acquiring leases for test e2e-aws-upgrade: [aws-quota-slice]\n\
         Acquired 1 lease(s) for aws-quota-slice: [aws-quota-slice-0]\n\
         e2e in a container\n\
         warning from the container\n\
         Releasing leases for test e2e-aws-upgrade: [aws-quota-slice-0]\n"
    );
    let finished = json(&run.dir, "finished.json");
    assert_eq!(finished["result"], "FAILURE");
    assert_eq!(finished["metadata"]["okd-forge"]["executor"], "podman");
    assert_eq!(
        std::fs::read_to_string(run.dir.join("shared/kubeconfig")).unwrap(),
        "handed-on\n"
    );

    let env = env_lines(&std::fs::read_to_string(run.dir.join("artifacts/env.txt")).unwrap());
    for (k, v) in [
        ("RELEASE_IMAGE_LATEST", PAYLOAD),
        ("RELEASE_IMAGE_INITIAL", INITIAL),
        ("ARTIFACT_DIR", "/logs/artifacts"),
        ("ARTIFACTS", "/logs/artifacts"),
        ("SHARED_DIR", "/tmp/shared"),
        ("JOB_NAME", &run.job_name),
        ("BUILD_ID", "1"),
        ("LEASED_RESOURCE", "aws-quota-slice-0"),
        ("MY_SETTING", "on"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k} in {env:?}");
    }
    assert!(
        !env.contains_key("CONTAINERS_CONF"),
        "podman's own environment stays out"
    );
    assert_eq!(containers(&podman), "", "--rm removed the container");
}

#[tokio::test]
async fn podman_job_that_outlives_its_timeout_is_killed_and_removed() {
    let podman = podman();
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("quota", 1)]).unwrap();
    // sh is PID 1 in the container: it ignores SIGTERM, so only the kill after the grace period
    // ends it.
    let mut spec = job("hangs", "echo started; sleep 100 & sleep 100");
    spec.timeout = Duration::from_secs(2);
    spec.leases = vec!["quota".into()];
    let run = run_in(root.path(), spec);
    let t0 = Instant::now();
    let outcome = run_job(&executor(&podman), &pools, &run).await;
    assert_eq!(outcome.state, JobState::TimedOut, "{outcome:?}");
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    assert_eq!(pools.in_use("quota"), Some(0));
    assert_eq!(containers(&podman), "", "the container is gone");
    let log = std::fs::read_to_string(&outcome.log).unwrap();
    assert!(
        log.ends_with(
            "started\nProcess did not finish before 2s timeout\n\
             Releasing leases for test hangs: [quota-0]\n"
        ),
        "{log}"
    );
    assert_eq!(json(&run.dir, "finished.json")["result"], "FAILURE");
}

#[tokio::test]
async fn podman_failures_are_errors_and_the_commands_own_exit_codes_are_failures() {
    let podman = podman();
    let root = tempfile::tempdir().unwrap();
    let executor = executor(&podman);
    let pools = LeasePools::default();

    let mut missing = job("missing-command", "");
    missing.command = vec!["/nonexistent/e2e.sh".into()];
    let outcome = run_job(&executor, &pools, &run_in(root.path(), missing)).await;
    let JobState::Error(message) = &outcome.state else {
        panic!("{outcome:?}");
    };
    assert!(
        message.contains("podman could not run `/nonexistent/e2e.sh`")
            && message.contains("exit 127"),
        "{message}"
    );

    let mut no_image = job("missing-image", "true");
    no_image.image = Some("localhost/okd-forge-test/none:1".into());
    let outcome = run_job(&executor, &pools, &run_in(root.path(), no_image)).await;
    let JobState::Error(message) = &outcome.state else {
        panic!("{outcome:?}");
    };
    assert!(
        message.contains("exit 125") && message.contains("image not known"),
        "{message}"
    );

    let mut unset = job("no-image", "true");
    unset.image = None;
    let outcome = run_job(&executor, &pools, &run_in(root.path(), unset)).await;
    assert!(
        matches!(&outcome.state, JobState::Error(m) if m.contains("the job has none")),
        "{outcome:?}"
    );

    // A script whose own command is missing exits 127 too: that is the job failing.
    let outcome = run_job(
        &executor,
        &pools,
        &run_in(root.path(), job("script-127", "no-such-tool")),
    )
    .await;
    assert_eq!(outcome.state, JobState::Failed, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(127));
    assert_eq!(containers(&podman), "");
}
