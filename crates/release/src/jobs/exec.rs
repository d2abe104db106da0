//! The executors: where a job's command runs.
//!
//! - [`LocalExecutor`] (the default): a process on this machine, in a process group of its own,
//!   with okd-forge's environment plus the job's. On timeout the whole group gets SIGTERM, then
//!   SIGKILL after a grace period; whatever the command leaves running in its group when it ends
//!   is killed, as a pod's teardown would.
//! - [`PodmanExecutor`]: `podman --runtime runc run --rm` of the job's image, with the artifacts
//!   and shared directories mounted at `/logs/artifacts` (Prow's path) and `/tmp/shared`. On
//!   timeout the container gets `podman kill --signal TERM`, then `podman kill` after the grace
//!   period, and is removed.
//!
//! Both append the command's stdout and stderr to `build-log.txt` as they come, and end what they
//! started when the future is dropped (a cancelled run leaves no process or container behind).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::process::{Child, Command};

use super::{Execution, Executor, Invocation, JobState, RESERVED_ENV};

/// How long a command gets between SIGTERM and SIGKILL (Prow's entrypoint default).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(15);

/// Where the podman executor mounts the artifacts directory (Prow's `ARTIFACTS`).
pub const CONTAINER_ARTIFACTS: &str = "/logs/artifacts";

/// Where the podman executor mounts the shared directory.
pub const CONTAINER_SHARED: &str = "/tmp/shared";

/// How long podman itself may take for `kill` and `rm`, and to exit after its container is
/// killed, before okd-forge kills it.
const PODMAN_WAIT: Duration = Duration::from_secs(30);

/// Runs jobs as local processes.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    grace: Duration,
}

impl Default for LocalExecutor {
    fn default() -> Self {
        LocalExecutor::new()
    }
}

impl LocalExecutor {
    /// With the default grace period, [`DEFAULT_GRACE_PERIOD`].
    pub fn new() -> LocalExecutor {
        LocalExecutor {
            grace: DEFAULT_GRACE_PERIOD,
        }
    }

    /// Time between SIGTERM and SIGKILL when a job times out.
    pub fn with_grace_period(mut self, grace: Duration) -> LocalExecutor {
        self.grace = grace;
        self
    }

    async fn run(&self, inv: Invocation<'_>) -> Execution {
        let job = &inv.run.job;
        let Some((program, args)) = job.command.split_first() else {
            return Execution::error(format!("job {}: the command is empty", job.name));
        };
        let (stdout, stderr) = match log_stdio(inv.log) {
            Ok(s) => s,
            Err(e) => return Execution::error(format!("cannot open {}: {e}", inv.log.display())),
        };
        let env = inv.env(&lossy(inv.artifacts), &lossy(inv.shared));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        // okd-forge's own environment may have these (when it runs inside a CI job itself): a job
        // must see only the ones okd-forge gives it.
        for k in RESERVED_ENV {
            cmd.env_remove(k);
        }
        cmd.envs(&env);
        if let Some(dir) = &job.workdir {
            cmd.current_dir(dir);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let place = job
                    .workdir
                    .as_ref()
                    .map(|d| format!(" in {}", d.display()))
                    .unwrap_or_default();
                return Execution::error(format!(
                    "job {}: cannot start `{program}`{place}: {e}",
                    job.name
                ));
            }
        };
        let group = ProcessGroup::of(&child);
        let ended = match tokio::time::timeout(job.timeout, child.wait()).await {
            Ok(waited) => waited,
            Err(_) => {
                group.signal(libc::SIGTERM);
                if tokio::time::timeout(self.grace, child.wait())
                    .await
                    .is_err()
                {
                    group.signal(libc::SIGKILL);
                    let _ = child.wait().await;
                }
                return timed_out();
            }
        };
        match ended {
            Ok(status) => from_status(status),
            Err(e) => Execution::error(format!("job {}: waiting for `{program}`: {e}", job.name)),
        }
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &str {
        "local"
    }

    fn execute<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Execution> {
        Box::pin(self.run(invocation))
    }
}

/// Runs jobs in podman containers: `podman [GLOBAL ARGS] --runtime RUNTIME run --rm --name NAME
/// -v ARTIFACTS:/logs/artifacts -v SHARED:/tmp/shared [--workdir DIR] -e K=V… [RUN ARGS] IMAGE
/// COMMAND…`.
///
/// ```
/// use release::jobs::PodmanExecutor;
///
/// // podman with a storage of its own and the containers.conf these machines need.
/// let podman = PodmanExecutor::new()
///     .with_global_args(["--root", "/var/lib/okd-forge/podman", "--storage-driver", "vfs"])
///     .with_env([("CONTAINERS_CONF", "/etc/okd-forge/containers.conf")])
///     .with_run_args(["--pull=never", "--net=none"]);
/// ```
#[derive(Debug, Clone)]
pub struct PodmanExecutor {
    program: PathBuf,
    runtime: Option<String>,
    global_args: Vec<String>,
    run_args: Vec<String>,
    env: BTreeMap<String, String>,
    grace: Duration,
}

impl Default for PodmanExecutor {
    fn default() -> Self {
        PodmanExecutor::new()
    }
}

impl PodmanExecutor {
    /// `podman` from `PATH`, runtime `runc` (crun fails on some machines), the default grace
    /// period.
    pub fn new() -> PodmanExecutor {
        PodmanExecutor {
            program: PathBuf::from("podman"),
            runtime: Some("runc".to_string()),
            global_args: Vec::new(),
            run_args: Vec::new(),
            env: BTreeMap::new(),
            grace: DEFAULT_GRACE_PERIOD,
        }
    }

    /// The podman program to run.
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> PodmanExecutor {
        self.program = program.into();
        self
    }

    /// The OCI runtime (`--runtime`); `None` for podman's configured default.
    pub fn with_runtime(mut self, runtime: Option<&str>) -> PodmanExecutor {
        self.runtime = runtime.map(String::from);
        self
    }

    /// Arguments before the subcommand, for every podman call (`--root`, `--runroot`,
    /// `--storage-driver`, …).
    pub fn with_global_args<S: Into<String>>(
        mut self,
        args: impl IntoIterator<Item = S>,
    ) -> PodmanExecutor {
        self.global_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Arguments for `podman run`, before the image (`--pull=never`, `--net=none`, …).
    pub fn with_run_args<S: Into<String>>(
        mut self,
        args: impl IntoIterator<Item = S>,
    ) -> PodmanExecutor {
        self.run_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Environment for podman itself (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`, …), not for the
    /// job.
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> PodmanExecutor {
        self.env
            .extend(env.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Time between `podman kill --signal TERM` and `podman kill` when a job times out.
    pub fn with_grace_period(mut self, grace: Duration) -> PodmanExecutor {
        self.grace = grace;
        self
    }

    /// `podman [global args] [--runtime R] ARGS…` with podman's environment.
    fn podman<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = std::process::Command::new(&self.program);
        c.envs(&self.env).args(&self.global_args);
        if let Some(r) = &self.runtime {
            c.args(["--runtime", r]);
        }
        c.args(args);
        c
    }

    /// Run a podman housekeeping command (`kill`, `rm`), output discarded, for at most
    /// [`PODMAN_WAIT`].
    async fn quietly(&self, args: &[&str]) {
        let mut c = Command::from(self.podman(args));
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Ok(mut child) = c.spawn() {
            let _ = tokio::time::timeout(PODMAN_WAIT, child.wait()).await;
        }
    }

    async fn run(&self, inv: Invocation<'_>) -> Execution {
        let job = &inv.run.job;
        let Some(image) = &job.image else {
            return Execution::error(format!(
                "job {}: the podman executor runs jobs in an image, and the job has none",
                job.name
            ));
        };
        if job.command.is_empty() {
            return Execution::error(format!("job {}: the command is empty", job.name));
        }
        let (stdout, stderr) = match log_stdio(inv.log) {
            Ok(s) => s,
            Err(e) => return Execution::error(format!("cannot open {}: {e}", inv.log.display())),
        };
        let name = container_name(&inv.run.job_name, &inv.run.build_id);
        let mut args: Vec<String> =
            vec!["run".into(), "--rm".into(), "--name".into(), name.clone()];
        for (host, inside) in [
            (inv.artifacts, CONTAINER_ARTIFACTS),
            (inv.shared, CONTAINER_SHARED),
        ] {
            args.push("--volume".into());
            args.push(format!("{}:{inside}", lossy(host)));
        }
        if let Some(dir) = &job.workdir {
            args.push("--workdir".into());
            args.push(lossy(dir));
        }
        for (k, v) in inv.env(CONTAINER_ARTIFACTS, CONTAINER_SHARED) {
            args.push("--env".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(self.run_args.iter().cloned());
        args.push(image.clone());
        args.extend(job.command.iter().cloned());

        let mut cmd = Command::from(self.podman(&args));
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Execution::error(format!(
                    "job {}: cannot start {}: {e}; the podman executor needs podman and runc \
                     (Debian/Ubuntu: apt-get install podman runc)",
                    job.name,
                    self.program.display()
                ))
            }
        };
        let group = ProcessGroup::of(&child);
        let mut container = Container {
            remove: Some(self.podman(["rm", "--force", "--time", "0", "--ignore", &name])),
        };
        let ended = match tokio::time::timeout(job.timeout, child.wait()).await {
            Ok(waited) => waited,
            Err(_) => {
                self.quietly(&["kill", "--signal", "TERM", &name]).await;
                if tokio::time::timeout(self.grace, child.wait())
                    .await
                    .is_err()
                {
                    self.quietly(&["kill", "--signal", "KILL", &name]).await;
                    if tokio::time::timeout(PODMAN_WAIT, child.wait())
                        .await
                        .is_err()
                    {
                        group.signal(libc::SIGKILL);
                        let _ = child.wait().await;
                    }
                }
                self.quietly(&["rm", "--force", "--time", "0", "--ignore", &name])
                    .await;
                container.remove = None;
                return timed_out();
            }
        };
        // `--rm`: podman removed the container when it ended.
        container.remove = None;
        let status = match ended {
            Ok(s) => s,
            Err(e) => {
                return Execution::error(format!("job {}: waiting for podman: {e}", job.name))
            }
        };
        // podman's own failures: 125 (podman failed), 126/127 (the command cannot be run in the
        // image), told apart from the command's own 126/127 by podman's "Error: " message.
        if let Some(code @ (125..=127)) = status.code() {
            let last = last_line(inv.log);
            if code == 125 || last.starts_with("Error: ") {
                return Execution {
                    state: JobState::Error(format!(
                        "job {}: podman could not run `{}` in {image} (exit {code}): {last}",
                        job.name, job.command[0]
                    )),
                    exit_code: Some(code),
                    notes: Vec::new(),
                };
            }
        }
        from_status(status)
    }
}

impl Executor for PodmanExecutor {
    fn name(&self) -> &str {
        "podman"
    }

    fn execute<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Execution> {
        Box::pin(self.run(invocation))
    }
}

/// The process group of a spawned job (its leader's pid). Everything still in the group is killed
/// when this is dropped: after the command ends, on timeout, and when the run is cancelled.
struct ProcessGroup(Option<libc::pid_t>);

impl ProcessGroup {
    fn of(child: &Child) -> ProcessGroup {
        ProcessGroup(child.id().and_then(|id| libc::pid_t::try_from(id).ok()))
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(pgid) = self.0 {
            // SAFETY: killpg has no memory-safety preconditions; a group that is already gone
            // gives ESRCH, which is what we want to ignore.
            unsafe {
                libc::killpg(pgid, signal);
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// A container that may still exist: removed (on a thread of its own, since dropping cannot wait)
/// when dropped with `remove` set, i.e. when the run was cancelled.
struct Container {
    remove: Option<std::process::Command>,
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut rm) = self.remove.take() {
            std::thread::spawn(move || {
                let _ = rm
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            });
        }
    }
}

/// Stdout and stderr appending to the log file.
fn log_stdio(log: &Path) -> std::io::Result<(Stdio, Stdio)> {
    let f = OpenOptions::new().create(true).append(true).open(log)?;
    Ok((Stdio::from(f.try_clone()?), Stdio::from(f)))
}

fn timed_out() -> Execution {
    Execution {
        state: JobState::TimedOut,
        exit_code: None,
        notes: Vec::new(),
    }
}

fn from_status(status: ExitStatus) -> Execution {
    match (status.code(), status.signal()) {
        (Some(0), _) => Execution {
            state: JobState::Succeeded,
            exit_code: Some(0),
            notes: Vec::new(),
        },
        (Some(code), _) => Execution {
            state: JobState::Failed,
            exit_code: Some(code),
            notes: Vec::new(),
        },
        (None, signal) => Execution {
            state: JobState::Failed,
            exit_code: None,
            notes: vec![format!(
                "the command was killed by signal {}",
                signal.unwrap_or_default()
            )],
        },
    }
}

/// The last non-empty line of the log (podman's error message when it could not run a container).
fn last_line(log: &Path) -> String {
    let mut tail = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
        let _ = f.read_to_end(&mut tail);
    }
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A container name unique on this machine: `okd-forge-<job name>-<build id>-<pid>-<n>`, with
/// characters podman does not accept replaced by `-`.
fn container_name(job_name: &str, build_id: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .take(max)
            .collect()
    };
    format!(
        "okd-forge-{}-{}-{}-{}",
        clean(job_name, 100),
        clean(build_id, 40),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_valid_and_unique() {
        let a = container_name("4.17.0-0.okd-scos-2026 e2e/aws", "1:2");
        let b = container_name("4.17.0-0.okd-scos-2026 e2e/aws", "1:2");
        assert_ne!(a, b);
        assert!(
            a.starts_with("okd-forge-4.17.0-0.okd-scos-2026-e2e-aws-1-2-"),
            "{a}"
        );
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')));
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(
            from_status(ExitStatus::from_raw(0)).state,
            JobState::Succeeded
        );
        let failed = from_status(ExitStatus::from_raw(3 << 8));
        assert_eq!(
            (failed.state, failed.exit_code),
            (JobState::Failed, Some(3))
        );
        let killed = from_status(ExitStatus::from_raw(libc::SIGKILL));
        assert_eq!(killed.state, JobState::Failed);
        assert_eq!(killed.exit_code, None);
        assert_eq!(killed.notes, ["the command was killed by signal 9"]);
    }

    #[test]
    fn last_line_of_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "output\nError: no such image\n\n").unwrap();
        assert_eq!(last_line(&log), "Error: no such image");
        assert_eq!(last_line(&dir.path().join("missing")), "");
    }
}
