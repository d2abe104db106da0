//! Verification jobs: a user command run against a payload with ci-operator's environment, a
//! timeout, leases from scarce-resource pools, JUnit results, and Prow's artifact layout.
//!
//! [`run_job`] is the one way to run a job. It
//! 1. creates the run directory in Prow's layout ([`prow`]) and writes `started.json`;
//! 2. waits for one lease from each pool the job names ([`leases`]), logging the wait to
//!    `build-log.txt` as ci-operator does;
//! 3. has an [`Executor`] run the command ([`exec`]: a local process group, or a podman container;
//!    [`kube`]: a Kubernetes pod) with the environment of [`ci_env`], its output
//!    appended to `build-log.txt`, killed when it outlives its timeout;
//! 4. gives the leases back (also when the command failed, timed out, or the future was dropped);
//! 5. reads the JUnit files the job left in `ARTIFACT_DIR` ([`junit`]) and writes `finished.json`.
//!
//! It always returns an [`Outcome`]: a command that cannot start, an unknown lease pool or a broken
//! JUnit file are recorded in it, never a panic or an `Err`.
//!
//! ```no_run
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use release::jobs::{run_job, JobRun, JobSpec, JobState, LocalExecutor};
//! use release::jobs::leases::LeasePools;
//!
//! let pools = LeasePools::new([("aws-quota-slice", 2)]).unwrap();
//! let job = JobSpec {
//!     leases: vec!["aws-quota-slice".into()],
//!     timeout: Duration::from_secs(4 * 3600),
//!     ..JobSpec::new("e2e-aws", ["./hack/e2e.sh"])
//! };
//! let run = JobRun {
//!     job,
//!     payload: "quay.io/okd/scos-release:4.17.0-0.okd-scos-2026-11-23-101500".into(),
//!     initial: None,
//!     job_name: "4.17.0-0.okd-scos-2026-11-23-101500-e2e-aws".into(),
//!     build_id: "1".into(),
//!     dir: "var/jobs/4.17.0-0.okd-scos-2026-11-23-101500-e2e-aws/1".into(),
//! };
//! let outcome = run_job(&LocalExecutor::new(), &pools, &run).await;
//! if outcome.state != JobState::Succeeded {
//!     eprintln!("{:?}; log in {}", outcome.state, outcome.log.display());
//! }
//! # });
//! ```

pub mod exec;
pub mod junit;
pub mod kube;
pub mod leases;
pub mod prow;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

pub use self::kube::KubernetesExecutor;
pub use exec::{LocalExecutor, PodmanExecutor};
pub use junit::{TestCase, TestResult};
use leases::{LeasePools, Leases};

/// The directory under a run's directory that is the job's `SHARED_DIR` (ci-operator's directory
/// for handing files between the steps of a job; not part of Prow's layout).
pub const SHARED: &str = "shared";

/// The environment variables okd-forge sets for every job; a job's own `env` cannot override them.
pub const RESERVED_ENV: &[&str] = &[
    "RELEASE_IMAGE_LATEST",
    "RELEASE_IMAGE_INITIAL",
    "ARTIFACT_DIR",
    "ARTIFACTS",
    "SHARED_DIR",
    "JOB_NAME",
    "BUILD_ID",
    "LEASED_RESOURCE",
    "LEASED_RESOURCES",
];

/// Prow's default job timeout (its entrypoint's `DefaultTimeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// What to run for one verification entry of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The verify entry's name, e.g. `e2e-aws`.
    pub name: String,
    /// Program and arguments; run directly, without a shell.
    pub command: Vec<String>,
    /// The image to run the command in (the podman and Kubernetes executors need one; the local
    /// one ignores it).
    pub image: Option<String>,
    /// Extra environment for the command (see [`RESERVED_ENV`] for what it cannot set).
    pub env: BTreeMap<String, String>,
    /// How long the command may run before it is terminated (lease waits do not count).
    pub timeout: Duration,
    /// Lease pools to take one lease from each before starting (`LEASED_RESOURCE`).
    pub leases: Vec<String>,
    /// The directory the command starts in: a host path for the local executor (default: the
    /// current directory), a path in the image for podman and Kubernetes (default: the image's).
    pub workdir: Option<PathBuf>,
}

impl JobSpec {
    /// A job with no image, env, leases or workdir and Prow's default timeout, two hours.
    pub fn new<S: Into<String>>(name: &str, command: impl IntoIterator<Item = S>) -> JobSpec {
        JobSpec {
            name: name.to_string(),
            command: command.into_iter().map(Into::into).collect(),
            image: None,
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            leases: Vec::new(),
            workdir: None,
        }
    }
}

/// One run (one attempt) of a job against a payload.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRun {
    /// What to run.
    pub job: JobSpec,
    /// The payload's pull spec: `RELEASE_IMAGE_LATEST`.
    pub payload: String,
    /// For upgrade jobs, the pull spec to upgrade from: `RELEASE_IMAGE_INITIAL`. For other jobs
    /// `None`, and `RELEASE_IMAGE_INITIAL` is the payload itself, as the release controller sets it
    /// so that ci-operator does not fail.
    pub initial: Option<String>,
    /// `JOB_NAME`, e.g. `<payload tag>-<verify name>`.
    pub job_name: String,
    /// `BUILD_ID`: unique per run and attempt.
    pub build_id: String,
    /// This run's directory, in Prow's layout; a fresh one for each attempt.
    pub dir: PathBuf,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// The command exited 0.
    Succeeded,
    /// The command exited non-zero or was killed by a signal.
    Failed,
    /// The command outlived its timeout and was terminated.
    TimedOut,
    /// The command never ran to an end: it could not start, its lease pool is unknown or was
    /// closed, the run directory could not be written. The text says what happened.
    Error(String),
}

impl JobState {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        *self == JobState::Succeeded
    }

    /// A short name: `succeeded`, `failed`, `timed-out`, `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::TimedOut => "timed-out",
            JobState::Error(_) => "error",
        }
    }
}

/// The result of [`run_job`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// How it ended.
    pub state: JobState,
    /// The command's exit code, when it exited (none when killed by a signal or never started).
    pub exit_code: Option<i32>,
    /// Unix seconds when the run started (`started.json`), before any lease wait.
    pub started: i64,
    /// Unix seconds when it finished (`finished.json`).
    pub finished: i64,
    /// The test cases of the JUnit files in `ARTIFACT_DIR`.
    pub tests: Vec<TestCase>,
    /// `build-log.txt`.
    pub log: PathBuf,
    /// The resources it held, in the job's order of pools.
    pub leased: Vec<String>,
    /// Problems that did not decide the state: unreadable JUnit files, a bad `metadata.json`.
    pub notes: Vec<String>,
}

/// What an [`Executor`] is asked to run: the job, its environment, and where things go on the host.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// The run.
    pub run: &'a JobRun,
    /// The leases it holds.
    pub leases: &'a Leases,
    /// The host directory that is the job's `ARTIFACT_DIR`.
    pub artifacts: &'a Path,
    /// The host directory that is the job's `SHARED_DIR`.
    pub shared: &'a Path,
    /// `build-log.txt`: append the command's stdout and stderr to it.
    pub log: &'a Path,
}

impl Invocation<'_> {
    /// The job's environment when `ARTIFACT_DIR` and `SHARED_DIR` are seen at these paths (the
    /// host's for a local process, mount points in a container).
    pub fn env(&self, artifact_dir: &str, shared_dir: &str) -> BTreeMap<String, String> {
        ci_env(self.run, self.leases, artifact_dir, shared_dir)
    }
}

/// What an [`Executor`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// Succeeded, Failed, TimedOut, or Error when the command could not be run.
    pub state: JobState,
    /// The command's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Anything worth telling that does not change the state.
    pub notes: Vec<String>,
}

impl Execution {
    /// The command could not be run.
    pub fn error(message: impl Into<String>) -> Execution {
        Execution {
            state: JobState::Error(message.into()),
            exit_code: None,
            notes: Vec::new(),
        }
    }
}

/// Runs a job's command somewhere: a local process, a container, a Kubernetes pod. It must run
/// [`JobSpec::command`] with [`Invocation::env`], append its output to [`Invocation::log`], end it
/// (and everything it started) when [`JobSpec::timeout`] passes or when the returned future is
/// dropped, and report how it ended. [`run_job`] does everything around it.
pub trait Executor: Send + Sync {
    /// A short name for logs and `finished.json`: `local`, `podman`, `kubernetes`.
    fn name(&self) -> &str;

    /// Run the command of `invocation` to its end.
    fn execute<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Execution>;
}

/// The environment of a job as ci-operator and the release controller give it: the job's own
/// `env`, then (overriding it)
/// - `RELEASE_IMAGE_LATEST`: the payload; `RELEASE_IMAGE_INITIAL`: the upgrade source, or the
///   payload for jobs that are not upgrades;
/// - `ARTIFACT_DIR` (ci-operator) and `ARTIFACTS` (Prow): `artifact_dir`; `SHARED_DIR`:
///   `shared_dir`;
/// - `JOB_NAME`, `BUILD_ID`;
/// - `LEASED_RESOURCE`: the resource leased from the job's first pool (ci-operator's name for its
///   cluster-profile lease), and `LEASED_RESOURCES`: all of them, space-separated, in the job's
///   order of pools (only when the job has leases).
pub fn ci_env(
    run: &JobRun,
    leases: &Leases,
    artifact_dir: &str,
    shared_dir: &str,
) -> BTreeMap<String, String> {
    let mut env = run.job.env.clone();
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_string(), v.to_string());
    };
    set("RELEASE_IMAGE_LATEST", &run.payload);
    set(
        "RELEASE_IMAGE_INITIAL",
        run.initial.as_deref().unwrap_or(&run.payload),
    );
    set("ARTIFACT_DIR", artifact_dir);
    set("ARTIFACTS", artifact_dir);
    set("SHARED_DIR", shared_dir);
    set("JOB_NAME", &run.job_name);
    set("BUILD_ID", &run.build_id);
    let resources = leases.resources();
    if let Some(first) = resources.first() {
        set("LEASED_RESOURCE", first);
        set("LEASED_RESOURCES", &resources.join(" "));
    }
    env
}

/// Unix seconds now.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A duration as Go prints it (`2h0m0s`, `1m30s`, `2s`, `500ms`), for the log lines Prow's users
/// know.
pub fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let millis = d.subsec_millis();
    let secs = if millis == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{millis:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// Run one job: wait for its leases, run it with `executor`, record it in Prow's layout under
/// [`JobRun::dir`], and release the leases. See the [module documentation](self).
pub async fn run_job(executor: &dyn Executor, pools: &LeasePools, run: &JobRun) -> Outcome {
    let started = now();
    // Absolute, so that ARTIFACT_DIR and SHARED_DIR still hold in another working directory and
    // podman takes them for paths, not volume names.
    let dir = &std::path::absolute(&run.dir).unwrap_or_else(|_| run.dir.clone());
    let log = dir.join(prow::BUILD_LOG);
    let artifacts = dir.join(prow::ARTIFACTS);
    let shared = dir.join(SHARED);
    let mut record = Record {
        run,
        dir: dir.clone(),
        executor: executor.name(),
        started,
        log: log.clone(),
        leased: Vec::new(),
        notes: Vec::new(),
    };

    if let Err(e) = start_layout(dir, &artifacts, &shared, started) {
        // Without a run directory nothing can be recorded there.
        return record.outcome(
            JobState::Error(format!(
                "cannot set up the run directory {}: {e}",
                dir.display()
            )),
            None,
            Vec::new(),
        );
    }

    let leases = if run.job.leases.is_empty() {
        Leases::none()
    } else {
        record.log_line(&format!(
            "Acquiring leases for test {}: [{}]",
            run.job.name,
            run.job.leases.join(" ")
        ));
        match pools.acquire(&run.job.leases).await {
            Ok(l) => {
                for lease in l.iter() {
                    record.log_line(&format!(
                        "Acquired 1 lease(s) for {}: [{}]",
                        lease.pool(),
                        lease.resource()
                    ));
                }
                l
            }
            Err(e) => {
                let message = format!("job {}: cannot acquire leases: {e}", run.job.name);
                record.log_line(&message);
                return record
                    .finish(JobState::Error(message), None, &artifacts)
                    .await;
            }
        }
    };
    record.leased = leases.resources().into_iter().map(String::from).collect();

    let execution = executor
        .execute(Invocation {
            run,
            leases: &leases,
            artifacts: &artifacts,
            shared: &shared,
            log: &log,
        })
        .await;
    match &execution.state {
        JobState::TimedOut => record.log_line(&format!(
            "Process did not finish before {} timeout",
            go_duration(run.job.timeout)
        )),
        JobState::Error(message) => record.log_line(message),
        _ => {}
    }
    drop(leases);
    if !record.leased.is_empty() {
        record.log_line(&format!(
            "Releasing leases for test {}: [{}]",
            run.job.name,
            record.leased.join(" ")
        ));
    }
    record.notes.extend(execution.notes);
    record
        .finish(execution.state, execution.exit_code, &artifacts)
        .await
}

/// Create the run directory, `artifacts/` and `shared/`, remove a stale `finished.json`, write
/// `started.json` and an empty `build-log.txt`.
fn start_layout(dir: &Path, artifacts: &Path, shared: &Path, started: i64) -> std::io::Result<()> {
    std::fs::create_dir_all(artifacts)?;
    std::fs::create_dir_all(shared)?;
    match std::fs::remove_file(dir.join(prow::FINISHED)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::write(dir.join(prow::BUILD_LOG), "")?;
    prow::write_json(
        dir,
        prow::STARTED,
        &prow::Started {
            timestamp: started,
            node: None,
            repo_commit: None,
            metadata: Map::new(),
        },
    )
}

/// What [`run_job`] has gathered so far about a run.
struct Record<'a> {
    run: &'a JobRun,
    dir: PathBuf,
    executor: &'a str,
    started: i64,
    log: PathBuf,
    leased: Vec<String>,
    notes: Vec<String>,
}

impl Record<'_> {
    /// Append a line of okd-forge's own to `build-log.txt`.
    fn log_line(&mut self, line: &str) {
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            self.notes
                .push(format!("cannot write to {}: {e}", self.log.display()));
        }
    }

    /// Read the JUnit results, write `finished.json`, and make the outcome.
    async fn finish(
        mut self,
        state: JobState,
        exit_code: Option<i32>,
        artifacts: &Path,
    ) -> Outcome {
        let dir = artifacts.to_path_buf();
        let results = tokio::task::spawn_blocking(move || junit::parse_dir(&dir)).await;
        let tests = match results {
            Ok(r) => {
                self.notes.extend(r.errors.iter().map(ToString::to_string));
                r.tests
            }
            Err(e) => {
                self.notes
                    .push(format!("reading the JUnit results failed: {e}"));
                Vec::new()
            }
        };
        let mut metadata = match prow::job_metadata(artifacts) {
            Ok(m) => m.unwrap_or_default(),
            Err(e) => {
                self.notes.push(e);
                Map::new()
            }
        };
        let finished = now();
        let passed = state.passed();
        let count = |f: fn(&TestResult) -> bool| tests.iter().filter(|t| f(&t.result)).count();
        let mut ours = json!({
            "executor": self.executor,
            "state": state.as_str(),
            "job-name": self.run.job_name,
            "build-id": self.run.build_id,
            "release-image-latest": self.run.payload,
            "release-image-initial": self.run.initial.as_deref().unwrap_or(&self.run.payload),
            "tests": {
                "passed": count(|r| *r == TestResult::Passed),
                "failed": count(|r| matches!(r, TestResult::Failed { .. })),
                "skipped": count(|r| matches!(r, TestResult::Skipped { .. })),
            },
        });
        if let Value::Object(o) = &mut ours {
            if let Some(code) = exit_code {
                o.insert("exit-code".into(), code.into());
            }
            if let JobState::Error(message) = &state {
                o.insert("error".into(), message.as_str().into());
            }
            if !self.leased.is_empty() {
                o.insert("leased-resources".into(), json!(self.leased));
            }
            if !self.notes.is_empty() {
                o.insert("notes".into(), json!(self.notes));
            }
        }
        metadata.insert("okd-forge".into(), ours);
        let record = prow::Finished {
            timestamp: Some(finished),
            passed: Some(passed),
            result: Some(if passed {
                prow::RunResult::Success
            } else {
                prow::RunResult::Failure
            }),
            revision: None,
            metadata,
        };
        if let Err(e) = prow::write_json(&self.dir, prow::FINISHED, &record) {
            self.notes.push(format!(
                "cannot write {}: {e}",
                self.dir.join(prow::FINISHED).display()
            ));
        }
        let mut outcome = self.outcome(state, exit_code, tests);
        outcome.finished = finished;
        outcome
    }

    fn outcome(self, state: JobState, exit_code: Option<i32>, tests: Vec<TestCase>) -> Outcome {
        Outcome {
            state,
            exit_code,
            started: self.started,
            finished: now(),
            tests,
            log: self.log,
            leased: self.leased,
            notes: self.notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(initial: Option<&str>) -> JobRun {
        JobRun {
            job: JobSpec {
                env: BTreeMap::from([
                    ("RELEASE_IMAGE_LATEST".to_string(), "user's".to_string()),
                    ("MY_VAR".to_string(), "x".to_string()),
                ]),
                ..JobSpec::new("e2e-aws", ["true"])
            },
            payload: "quay.io/okd/release:new".into(),
            initial: initial.map(String::from),
            job_name: "new-e2e-aws".into(),
            build_id: "7".into(),
            dir: "/tmp/x".into(),
        }
    }

    #[test]
    fn ci_env_without_leases() {
        let env = ci_env(&run(None), &Leases::none(), "/a", "/s");
        let want: BTreeMap<String, String> = [
            ("ARTIFACTS", "/a"),
            ("ARTIFACT_DIR", "/a"),
            ("BUILD_ID", "7"),
            ("JOB_NAME", "new-e2e-aws"),
            ("MY_VAR", "x"),
            ("RELEASE_IMAGE_INITIAL", "quay.io/okd/release:new"),
            ("RELEASE_IMAGE_LATEST", "quay.io/okd/release:new"),
            ("SHARED_DIR", "/s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want);
    }

    #[tokio::test]
    async fn ci_env_of_an_upgrade_with_leases() {
        let pools = LeasePools::new([("aws", 1), ("gcp", 1)]).unwrap();
        let leases = pools
            .acquire(&["gcp".to_string(), "aws".to_string()])
            .await
            .unwrap();
        let env = ci_env(&run(Some("quay.io/okd/release:old")), &leases, "/a", "/s");
        assert_eq!(env["RELEASE_IMAGE_INITIAL"], "quay.io/okd/release:old");
        assert_eq!(env["RELEASE_IMAGE_LATEST"], "quay.io/okd/release:new");
        assert_eq!(env["LEASED_RESOURCE"], "gcp-0");
        assert_eq!(env["LEASED_RESOURCES"], "gcp-0 aws-0");
        for k in env.keys() {
            assert!(
                RESERVED_ENV.contains(&k.as_str()) || k == "MY_VAR",
                "{k} is set by okd-forge but not listed in RESERVED_ENV"
            );
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(3_725_250)), "1h2m5.25s");
    }

    #[test]
    fn states() {
        assert!(JobState::Succeeded.passed());
        assert!(!JobState::TimedOut.passed());
        assert_eq!(JobState::Error("x".into()).as_str(), "error");
    }
}
