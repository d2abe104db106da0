//! The release stage of okd-forge:
//! - [`controller`], the release controller: cuts payloads from the streams, runs their
//!   verification, accepts or rejects them, and collects garbage;
//! - [`lifecycle`], its decisions (when to cut a payload, when to (re)launch a job, accept or
//!   reject, what garbage collection removes) as pure functions of the facts and the time;
//! - [`state`], its records (payloads, runs, the event log) in the state database;
//! - [`checks`], the built-in blocking checks run against every payload with no user script (its
//!   consistency, and the base-image policy of its component images);
//! - [`jobs`], the verification jobs run against a payload — user commands with ci-operator's
//!   environment (`RELEASE_IMAGE_LATEST`, `RELEASE_IMAGE_INITIAL`, `ARTIFACT_DIR`, `SHARED_DIR`,
//!   `JOB_NAME`, `BUILD_ID`, `LEASED_RESOURCE`), a timeout, leases from scarce-resource pools,
//!   JUnit results, and Prow's artifact layout, run by a local process, a podman container or a
//!   Kubernetes pod behind one [`jobs::Executor`] trait.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use release::jobs::{leases::LeasePools, run_job, JobRun, JobSpec, JobState, LocalExecutor};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let run = JobRun {
//!     job: JobSpec {
//!         timeout: Duration::from_secs(60),
//!         ..JobSpec::new("check", ["sh", "-c", "echo testing $RELEASE_IMAGE_LATEST"])
//!     },
//!     payload: "quay.io/okd/scos-release:4.17.0-okd-scos.1".into(),
//!     initial: None,
//!     job_name: "4.17.0-okd-scos.1-check".into(),
//!     build_id: "1".into(),
//!     dir: dir.path().join("run"),
//! };
//! let outcome = run_job(&LocalExecutor::new(), &LeasePools::default(), &run).await;
//! assert_eq!(outcome.state, JobState::Succeeded);
//! let log = std::fs::read_to_string(&outcome.log).unwrap();
//! assert_eq!(log, "testing quay.io/okd/scos-release:4.17.0-okd-scos.1\n");
//! # });
//! ```

pub mod checks;
pub mod controller;
pub mod jobs;
pub mod lifecycle;
pub mod state;
