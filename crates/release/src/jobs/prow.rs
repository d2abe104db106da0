//! Prow's artifact layout for one job run, so that tools made for Prow's GCS buckets (Spyglass,
//! TestGrid, Sippy-like scrapers) and people who know them find everything where they expect it:
//!
//! ```text
//! <run dir>/
//!   started.json     {"timestamp": 1700000000}                      written when the run starts
//!   build-log.txt    the command's stdout and stderr, interleaved
//!   artifacts/       the job's ARTIFACT_DIR (JUnit files, metadata.json, anything else)
//!   finished.json    {"timestamp": …, "passed": false, "result": "FAILURE", "metadata": {…}}
//! ```
//!
//! The fields are those of TestGrid's `metadata.Started` / `metadata.Finished`
//! (`GoogleCloudPlatform/testgrid:metadata/job.go`), which Prow's pod utilities write
//! (`kubernetes-sigs/prow:pkg/initupload/run.go`, `pkg/sidecar/run.go`). As Prow's sidecar does,
//! the keys of the job's own `artifacts/metadata.json` (an object) are merged into finished.json's
//! `metadata`. `result` is `SUCCESS` or `FAILURE`; Prow writes `ABORTED` only when the job is
//! interrupted from outside (its entrypoint treats a timeout as a failure: exit code 127,
//! `FAILURE`), which okd-forge's runner never does. `finished.json` is written last and atomically:
//! its presence means the run is over.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `started.json`.
pub const STARTED: &str = "started.json";
/// `finished.json`.
pub const FINISHED: &str = "finished.json";
/// `build-log.txt`.
pub const BUILD_LOG: &str = "build-log.txt";
/// `artifacts/`: the job's `ARTIFACT_DIR`.
pub const ARTIFACTS: &str = "artifacts";
/// The file in `artifacts/` whose keys Prow merges into finished.json's `metadata`.
pub const METADATA: &str = "metadata.json";

/// `started.json` (TestGrid's `metadata.Started`; periodic jobs, which check out no repository,
/// only have the timestamp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    /// Unix seconds when the run started.
    pub timestamp: i64,
    /// The machine that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The commit checked out (none for release verification jobs).
    #[serde(
        rename = "repo-commit",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub repo_commit: Option<String>,
    /// Deprecated by TestGrid in favour of finished.json's; kept so reading never loses it.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// The `result` of a finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunResult {
    /// Passed.
    Success,
    /// Failed, timed out, or could not run.
    Failure,
    /// Interrupted from outside (Prow's entrypoint got a signal).
    Aborted,
}

/// `finished.json` (TestGrid's `metadata.Finished`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Unix seconds when the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Whether the job passed (always written, as Prow's `*bool` without omitempty).
    pub passed: Option<bool>,
    /// `SUCCESS`, `FAILURE` or `ABORTED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// The commit tested (none for release verification jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Free-form data about the run: the job's `artifacts/metadata.json`, and okd-forge's own under
    /// the `okd-forge` key.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// Write `value` as JSON to `dir/name` atomically: a temp file in `dir`, synced, then renamed.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))
}

/// Read `dir/started.json`.
pub fn read_started(dir: &Path) -> std::io::Result<Started> {
    read_json(&dir.join(STARTED))
}

/// Read `dir/finished.json`.
pub fn read_finished(dir: &Path) -> std::io::Result<Finished> {
    read_json(&dir.join(FINISHED))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// The job's `metadata.json` in its artifacts, for finished.json: `Ok(None)` when there is none,
/// `Err` when it is not a JSON object.
pub fn job_metadata(artifacts: &Path) -> Result<Option<Map<String, Value>>, String> {
    let path = artifacts.join(METADATA);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(format!("{}: not a JSON object", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_names_are_testgrids() {
        let started = Started {
            timestamp: 1700000000,
            node: None,
            repo_commit: None,
            metadata: Map::new(),
        };
        assert_eq!(
            serde_json::to_value(&started).unwrap(),
            json!({"timestamp": 1700000000})
        );
        let mut metadata = Map::new();
        metadata.insert(
            "job-version".into(),
            json!("4.17.0-0.okd-scos-2026-01-01-000000"),
        );
        let finished = Finished {
            timestamp: Some(1700000100),
            passed: Some(false),
            result: Some(RunResult::Failure),
            revision: None,
            metadata,
        };
        assert_eq!(
            serde_json::to_value(&finished).unwrap(),
            json!({
                "timestamp": 1700000100,
                "passed": false,
                "result": "FAILURE",
                "metadata": {"job-version": "4.17.0-0.okd-scos-2026-01-01-000000"}
            })
        );
        // An incomplete record as Prow's Go types write it: passed null, no timestamp.
        let empty = Finished {
            timestamp: None,
            passed: None,
            result: None,
            revision: None,
            metadata: Map::new(),
        };
        assert_eq!(
            serde_json::to_value(&empty).unwrap(),
            json!({"passed": null})
        );
    }

    #[test]
    fn reads_what_prow_writes() {
        // Examples from Prow's "Understanding started.json and finished.json" page.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(STARTED),
            r#"{"timestamp":1595277241,"pull":"93264","repos":{"kubernetes/kubernetes":"master:5feab0a"},
               "metadata":{"resultstore":"https://example"},"repo-version":"30f64c5","Pending":false}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(FINISHED),
            r#"{"timestamp":1595279434,"passed":true,"result":"SUCCESS","revision":"5dd9241d"}"#,
        )
        .unwrap();
        let s = read_started(dir.path()).unwrap();
        assert_eq!(s.timestamp, 1595277241);
        assert_eq!(s.metadata["resultstore"], "https://example");
        let f = read_finished(dir.path()).unwrap();
        assert_eq!(f.result, Some(RunResult::Success));
        assert_eq!(f.passed, Some(true));
        assert_eq!(f.revision.as_deref(), Some("5dd9241d"));
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        write_json(dir.path(), FINISHED, &json!({"passed": true})).unwrap();
        assert_eq!(testkit::file_names(dir.path()), [FINISHED]);
    }

    #[test]
    fn job_metadata_object_or_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(job_metadata(dir.path()), Ok(None));
        std::fs::write(dir.path().join(METADATA), r#"{"work-namespace":"ci-op-1"}"#).unwrap();
        assert_eq!(
            job_metadata(dir.path()).unwrap().unwrap()["work-namespace"],
            "ci-op-1"
        );
        std::fs::write(dir.path().join(METADATA), "[1]").unwrap();
        assert!(job_metadata(dir.path())
            .unwrap_err()
            .contains("not a JSON object"));
    }
}
