//! Verification jobs run as real local processes: ci-operator's environment, JUnit results, Prow's
//! layout, timeouts that leave no process behind, and lease pools that cap concurrent jobs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use release::jobs::leases::LeasePools;
use release::jobs::{run_job, JobRun, JobState, LocalExecutor, TestResult};
use serde_json::json;

fn local() -> LocalExecutor {
    LocalExecutor::new().with_grace_period(Duration::from_secs(1))
}

#[tokio::test]
async fn failing_job_with_junit_in_prows_layout_and_ci_operators_environment() {
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("aws-quota-slice", 4)]).unwrap();
    let script = format!(
        "env > \"$ARTIFACT_DIR/env.txt\"\n\
         echo 'handed on' > \"$SHARED_DIR/kubeconfig\"\n\
         {WRITE_JUNIT}\
         echo 'running e2e on stdout'\n\
         echo 'a warning on stderr' >&2\n\
         exit 1"
    );
    let mut job = sh("e2e-aws", &script);
    job.leases = vec!["aws-quota-slice".into()];
    job.env.insert("MY_SETTING".into(), "on".into());
    job.env
        .insert("RELEASE_IMAGE_LATEST".into(), "not this".into());
    let run = run_in(root.path(), job);

    let before = release::jobs::now();
    let outcome = run_job(&local(), &pools, &run).await;
    let after = release::jobs::now();

    assert_eq!(outcome.state, JobState::Failed, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(1));
    assert!(
        before <= outcome.started
            && outcome.started <= outcome.finished
            && outcome.finished <= after
    );
    assert_eq!(outcome.leased, ["aws-quota-slice-0"]);
    assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);
    assert_eq!(pools.in_use("aws-quota-slice"), Some(0));

    // The three test cases.
    let t = &outcome.tests;
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(t
        .iter()
        .all(|c| c.suite == "openshift-tests" && c.classname.as_deref() == Some("e2e")));
    assert_eq!(t[0].name, "[sig-network] pods can talk");
    assert_eq!(t[0].result, TestResult::Passed);
    assert_eq!(t[0].duration, Some(12.5));
    assert_eq!(
        t[1].result,
        TestResult::Failed {
            message: "timed out waiting for the volume\nfail <details>".into()
        }
    );
    assert_eq!(
        t[2].result,
        TestResult::Skipped {
            message: "not on this platform".into()
        }
    );

    // Prow's layout.
    let dir = &run.dir;
    assert_eq!(
        testkit::file_names(dir),
        [
            "artifacts",
            "build-log.txt",
            "finished.json",
            "shared",
            "started.json"
        ]
    );
    assert_eq!(outcome.log, dir.join("build-log.txt"));
    assert_eq!(
        json(dir, "started.json"),
        json!({"timestamp": outcome.started})
    );
    let finished = json(dir, "finished.json");
    assert_eq!(finished["timestamp"], outcome.finished);
    assert_eq!(finished["passed"], false);
    assert_eq!(finished["result"], "FAILURE");
    assert_eq!(
        finished["metadata"]["okd-forge"],
        json!({
            "executor": "local",
            "state": "failed",
            "exit-code": 1,
            "job-name": run.job_name,
            "build-id": "1",
            "release-image-latest": PAYLOAD,
            "release-image-initial": PAYLOAD,
            "leased-resources": ["aws-quota-slice-0"],
            "tests": {"passed": 1, "failed": 1, "skipped": 1},
        })
    );
    let log = std::fs::read_to_string(&outcome.log).unwrap();
    assert_eq!(
        log,
        "Acquiring leases for test e2e-aws: [aws-quota-slice]\n\
         Acquired 1 lease(s) for aws-quota-slice: [aws-quota-slice-0]\n\
         running e2e on stdout\n\
         a warning on stderr\n\
         Releasing leases for test e2e-aws: [aws-quota-slice-0]\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("shared/kubeconfig")).unwrap(),
        "handed on\n"
    );

    // What the job saw.
    let env = env_lines(&std::fs::read_to_string(dir.join("artifacts/env.txt")).unwrap());
    let artifacts = dir.join("artifacts").display().to_string();
    let shared = dir.join("shared").display().to_string();
    for (k, v) in [
        ("RELEASE_IMAGE_LATEST", PAYLOAD),
        ("RELEASE_IMAGE_INITIAL", PAYLOAD),
        ("ARTIFACT_DIR", &artifacts),
        ("ARTIFACTS", &artifacts),
        ("SHARED_DIR", &shared),
        ("JOB_NAME", &run.job_name),
        ("BUILD_ID", "1"),
        ("LEASED_RESOURCE", "aws-quota-slice-0"),
        ("LEASED_RESOURCES", "aws-quota-slice-0"),
        ("MY_SETTING", "on"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(
        env.contains_key("PATH"),
        "the local executor keeps the environment"
    );
}

#[tokio::test]
async fn upgrade_job_gets_its_initial_release_and_a_job_without_leases_gets_no_lease_variables() {
    let root = tempfile::tempdir().unwrap();
    let run = JobRun {
        initial: Some(INITIAL.to_string()),
        ..run_in(
            root.path(),
            sh("upgrade", "env > \"$ARTIFACT_DIR/env.txt\""),
        )
    };
    let outcome = run_job(&local(), &LeasePools::default(), &run).await;
    assert_eq!(outcome.state, JobState::Succeeded, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    let env = env_lines(&std::fs::read_to_string(run.dir.join("artifacts/env.txt")).unwrap());
    assert_eq!(env["RELEASE_IMAGE_LATEST"], PAYLOAD);
    assert_eq!(env["RELEASE_IMAGE_INITIAL"], INITIAL);
    assert!(!env.contains_key("LEASED_RESOURCE"), "{env:?}");
    let finished = json(&run.dir, "finished.json");
    assert_eq!(finished["passed"], true);
    assert_eq!(finished["result"], "SUCCESS");
    assert_eq!(
        finished["metadata"]["okd-forge"]["release-image-initial"],
        INITIAL
    );
    assert_eq!(std::fs::read_to_string(&outcome.log).unwrap(), "");
}

#[tokio::test]
async fn timeout_terminates_the_whole_process_group() {
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("quota", 1)]).unwrap();
    let mut job = sh(
        "hangs",
        "echo $$ > \"$ARTIFACT_DIR/pgid\"; echo started; sleep 100 & sleep 100",
    );
    job.timeout = Duration::from_secs(1);
    job.leases = vec!["quota".into()];
    let run = run_in(root.path(), job);
    let t0 = Instant::now();
    let outcome = run_job(&local(), &pools, &run).await;
    assert_eq!(outcome.state, JobState::TimedOut, "{outcome:?}");
    assert_eq!(outcome.exit_code, None);
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_group_gone(read_number(&run.dir.join("artifacts/pgid")));
    assert_eq!(pools.in_use("quota"), Some(0), "the lease is released");

    // Prow's entrypoint counts a timeout as a failure (exit code 127, result FAILURE) and says so
    // in the log.
    let finished = json(&run.dir, "finished.json");
    assert_eq!(finished["passed"], false);
    assert_eq!(finished["result"], "FAILURE");
    assert_eq!(finished["metadata"]["okd-forge"]["state"], "timed-out");
    let log = std::fs::read_to_string(&outcome.log).unwrap();
    assert!(
        log.ends_with("started\nProcess did not finish before 1s timeout\nReleasing leases for test hangs: [quota-0]\n"),
        "{log}"
    );
}

#[tokio::test]
async fn a_job_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let root = tempfile::tempdir().unwrap();
    let mut job = sh(
        "stubborn",
        "trap '' TERM; echo $$ > \"$ARTIFACT_DIR/pgid\"; sleep 100 & sleep 100",
    );
    job.timeout = Duration::from_millis(500);
    let run = run_in(root.path(), job);
    let t0 = Instant::now();
    let outcome = run_job(&local(), &LeasePools::default(), &run).await;
    let took = t0.elapsed();
    assert_eq!(outcome.state, JobState::TimedOut, "{outcome:?}");
    assert!(
        took >= Duration::from_millis(1400),
        "killed before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_group_gone(read_number(&run.dir.join("artifacts/pgid")));
}

#[tokio::test]
async fn processes_left_behind_by_a_finished_job_are_killed() {
    let root = tempfile::tempdir().unwrap();
    let run = run_in(
        root.path(),
        sh(
            "leaves",
            "echo $$ > \"$ARTIFACT_DIR/pgid\"; sleep 100 > /dev/null 2>&1 &",
        ),
    );
    let outcome = run_job(&local(), &LeasePools::default(), &run).await;
    assert_eq!(outcome.state, JobState::Succeeded, "{outcome:?}");
    assert_group_gone(read_number(&run.dir.join("artifacts/pgid")));
}

#[tokio::test]
async fn a_command_that_does_not_exist_is_an_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("quota", 1)]).unwrap();
    let mut job = release::jobs::JobSpec::new("e2e", ["/nonexistent/okd-forge-e2e.sh", "--flag"]);
    job.leases = vec!["quota".into()];
    let run = run_in(root.path(), job);
    let outcome = run_job(&local(), &pools, &run).await;
    let JobState::Error(message) = &outcome.state else {
        panic!("{outcome:?}");
    };
    assert!(
        message.contains("cannot start `/nonexistent/okd-forge-e2e.sh`"),
        "{message}"
    );
    assert!(message.contains("No such file"), "{message}");
    assert_eq!(outcome.exit_code, None);
    assert_eq!(pools.in_use("quota"), Some(0));
    let log = std::fs::read_to_string(&outcome.log).unwrap();
    assert!(
        log.ends_with(&format!(
            "{message}\nReleasing leases for test e2e: [quota-0]\n"
        )),
        "{log}"
    );
    let finished = json(&run.dir, "finished.json");
    assert_eq!(finished["result"], "FAILURE");
    assert_eq!(finished["metadata"]["okd-forge"]["error"], message.as_str());

    // A workdir that does not exist is named too.
    let mut job = sh("e2e-in", "true");
    job.workdir = Some(root.path().join("no-such-dir"));
    let outcome = run_job(&local(), &LeasePools::default(), &run_in(root.path(), job)).await;
    let JobState::Error(message) = &outcome.state else {
        panic!("{outcome:?}");
    };
    assert!(message.contains("no-such-dir"), "{message}");
}

#[tokio::test]
async fn workdir_is_where_the_command_starts() {
    let root = tempfile::tempdir().unwrap();
    let mut job = sh("pwd", "pwd > \"$ARTIFACT_DIR/pwd\"");
    job.workdir = Some(root.path().to_path_buf());
    let run = run_in(root.path(), job);
    let outcome = run_job(&local(), &LeasePools::default(), &run).await;
    assert_eq!(outcome.state, JobState::Succeeded, "{outcome:?}");
    assert_eq!(
        std::fs::read_to_string(run.dir.join("artifacts/pwd"))
            .unwrap()
            .trim(),
        root.path().canonicalize().unwrap().display().to_string()
    );
}

#[tokio::test]
async fn capacity_one_runs_two_jobs_one_after_the_other() {
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("quota", 1)]).unwrap();
    let script =
        "date +%s%N > \"$ARTIFACT_DIR/start\"; sleep 1; date +%s%N > \"$ARTIFACT_DIR/end\"";
    let runs: Vec<JobRun> = ["first", "second"]
        .into_iter()
        .map(|name| {
            let mut job = sh(name, script);
            job.leases = vec!["quota".into()];
            run_in(root.path(), job)
        })
        .collect();
    let executor = local();
    let (a, b) = tokio::join!(
        run_job(&executor, &pools, &runs[0]),
        run_job(&executor, &pools, &runs[1])
    );
    assert_eq!(a.state, JobState::Succeeded, "{a:?}");
    assert_eq!(b.state, JobState::Succeeded, "{b:?}");
    assert_eq!(a.leased, ["quota-0"]);
    assert_eq!(b.leased, ["quota-0"]);
    let span = |run: &JobRun| -> (u128, u128) {
        (
            read_number(&run.dir.join("artifacts/start")),
            read_number(&run.dir.join("artifacts/end")),
        )
    };
    let (sa, ea) = span(&runs[0]);
    let (sb, eb) = span(&runs[1]);
    assert!(
        ea <= sb || eb <= sa,
        "the jobs overlapped: {sa}..{ea} and {sb}..{eb}"
    );
    assert_eq!(pools.in_use("quota"), Some(0));
}

#[tokio::test]
async fn the_lease_is_held_while_the_job_runs_and_released_when_it_fails() {
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("quota", 1)]).unwrap();
    let mut job = sh(
        "waits",
        "while [ ! -e \"$SHARED_DIR/go\" ]; do sleep 0.05; done; exit 3",
    );
    job.leases = vec!["quota".into()];
    let run = run_in(root.path(), job);
    let task = {
        let (pools, run) = (pools.clone(), run.clone());
        tokio::spawn(async move { run_job(&local(), &pools, &run).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while pools.in_use("quota") != Some(1) {
        assert!(Instant::now() < deadline, "the job never took its lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(run.dir.join("shared/go"), "").unwrap();
    let outcome = task.await.unwrap();
    assert_eq!(outcome.state, JobState::Failed, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(pools.in_use("quota"), Some(0));
    // The next job gets the lease at once.
    let next = tokio::time::timeout(
        Duration::from_secs(10),
        run_job(
            &local(),
            &pools,
            &run_in(root.path(), {
                let mut j = sh("next", "true");
                j.leases = vec!["quota".into()];
                j
            }),
        ),
    )
    .await
    .expect("the lease was released");
    assert_eq!(next.state, JobState::Succeeded);
}

#[tokio::test]
async fn a_cancelled_run_kills_its_job_and_releases_its_lease() {
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("quota", 1)]).unwrap();
    let mut job = sh(
        "cancelled",
        "echo $$ > \"$ARTIFACT_DIR/pgid\"; sleep 100 & sleep 100",
    );
    job.leases = vec!["quota".into()];
    let run = run_in(root.path(), job);
    let task = {
        let (pools, run) = (pools.clone(), run.clone());
        tokio::spawn(async move { run_job(&local(), &pools, &run).await })
    };
    let pgid_file = run.dir.join("artifacts/pgid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pgid_file).map_or(true, |s| !s.ends_with('\n')) {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pgid: i32 = read_number(&pgid_file);
    assert!(
        !group_members(pgid).is_empty(),
        "the job's processes are running"
    );
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_group_gone(pgid);
    assert_eq!(pools.in_use("quota"), Some(0));
}

#[tokio::test]
async fn an_unknown_pool_is_an_error_naming_it_and_the_known_pools() {
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("aws-quota-slice", 1), ("gcp-quota-slice", 1)]).unwrap();
    let mut job = sh("e2e-azure", "touch \"$ARTIFACT_DIR/ran\"");
    job.leases = vec!["aws-quota-slice".into(), "azure-quota-slice".into()];
    let run = run_in(root.path(), job);
    let outcome = run_job(&local(), &pools, &run).await;
    assert_eq!(
        outcome.state,
        JobState::Error(
            "job e2e-azure: cannot acquire leases: unknown lease pool 'azure-quota-slice'; the \
             configured pools are: aws-quota-slice, gcp-quota-slice"
                .into()
        )
    );
    assert!(
        !run.dir.join("artifacts/ran").exists(),
        "the command must not run"
    );
    assert_eq!(pools.in_use("aws-quota-slice"), Some(0));
    assert_eq!(json(&run.dir, "finished.json")["result"], "FAILURE");
    assert!(json(&run.dir, "started.json")["timestamp"].is_i64());
}

#[tokio::test]
async fn broken_junit_is_a_note_and_job_metadata_goes_into_finished_json() {
    let root = tempfile::tempdir().unwrap();
    let script = format!(
        "{WRITE_JUNIT}\
         mkdir -p \"$ARTIFACT_DIR/sub\"\n\
         printf '<testsuite name=\"cut\"><testcase name=\"half\"/><testcase name=\"x\">' > \"$ARTIFACT_DIR/sub/junit_cut.xml\"\n\
         printf '<project><testcase name=\"not junit\"/></project>' > \"$ARTIFACT_DIR/pom.xml\"\n\
         printf '{{\"work-namespace\": \"ci-op-1234\", \"okd-forge\": \"cannot override\"}}' > \"$ARTIFACT_DIR/metadata.json\"\n"
    );
    let run = run_in(root.path(), sh("junit", &script));
    let outcome = run_job(&local(), &LeasePools::default(), &run).await;
    assert_eq!(outcome.state, JobState::Succeeded, "{outcome:?}");
    let names: Vec<&str> = outcome.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "[sig-network] pods can talk",
            "[sig-storage] volumes mount",
            "[sig-arch] only on metal",
            "half"
        ]
    );
    assert_eq!(outcome.notes.len(), 1, "{:?}", outcome.notes);
    assert!(
        outcome.notes[0].contains("sub/junit_cut.xml"),
        "{:?}",
        outcome.notes
    );
    let finished = json(&run.dir, "finished.json");
    assert_eq!(finished["passed"], true);
    assert_eq!(finished["metadata"]["work-namespace"], "ci-op-1234");
    assert_eq!(finished["metadata"]["okd-forge"]["state"], "succeeded");
    assert_eq!(
        finished["metadata"]["okd-forge"]["notes"],
        json!(outcome.notes)
    );
}
