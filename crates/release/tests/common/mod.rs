//! Helpers shared by the job tests: runs of shell scripts, the JUnit file they write, Prow's JSON
//! files as raw JSON, and process-group inspection through /proc.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use release::jobs::{JobRun, JobSpec};
use serde_json::Value;

/// The payload every test run verifies.
pub const PAYLOAD: &str = "quay.io/okd/scos-release:4.17.0-0.okd-scos-2026-11-23-101500";

/// The upgrade source of upgrade runs.
pub const INITIAL: &str = "quay.io/okd/scos-release:4.17.0-okd-scos.3";

/// A JUnit file with one passed, one failed and one skipped test case, written to
/// `$ARTIFACT_DIR/junit_e2e.xml` by [`WRITE_JUNIT`].
pub const WRITE_JUNIT: &str = r#"cat > "$ARTIFACT_DIR/junit_e2e.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="openshift-tests" tests="3" failures="1" skipped="1">
  <testcase name="[sig-network] pods can talk" classname="e2e" time="12.5"/>
  <testcase name="[sig-storage] volumes mount" classname="e2e" time="3">
    <failure message="timed out waiting for the volume">fail &lt;details&gt;</failure>
  </testcase>
  <testcase name="[sig-arch] only on metal" classname="e2e"><skipped message="not on this platform"/></testcase>
</testsuite>
EOF
"#;

/// A job running `sh -c SCRIPT`, timeout 60 s.
pub fn sh(name: &str, script: &str) -> JobSpec {
    JobSpec {
        timeout: Duration::from_secs(60),
        ..JobSpec::new(name, ["sh", "-c", script])
    }
}

/// A run of `job` against [`PAYLOAD`] in `root/<job name>`, BUILD_ID 1.
pub fn run_in(root: &Path, job: JobSpec) -> JobRun {
    JobRun {
        payload: PAYLOAD.to_string(),
        initial: None,
        job_name: format!("4.17.0-0.okd-scos-2026-11-23-101500-{}", job.name),
        build_id: "1".to_string(),
        dir: root.join(&job.name),
        job,
    }
}

/// `dir/name` as raw JSON.
pub fn json(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// `KEY=VALUE` lines (as `env` prints them) as pairs.
pub fn env_lines(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The live (not zombie) processes whose process group is `pgid`, from /proc.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return members;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse() == Ok(pgid) {
            members.push(pid);
        }
    }
    members
}

/// Wait (up to 10 s) until no live process is left in group `pgid`; panics naming the survivors.
pub fn assert_group_gone(pgid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let cmdlines: Vec<String> = left
                .iter()
                .map(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ")
                })
                .collect();
            panic!("processes of group {pgid} survived: {left:?} {cmdlines:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A number the job wrote to a file.
pub fn read_number<T: std::str::FromStr>(path: &Path) -> T
where
    T::Err: std::fmt::Debug,
{
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e:?}", path.display()))
}
