//! [`KubernetesExecutor`]: a job's command run in a Kubernetes pod, one pod per run.
//!
//! The pod has two containers, after Prow's entrypoint/sidecar pair:
//!
//! - `test` runs the job's image. Its command is a small `/bin/sh` wrapper ([`TEST_WRAPPER`]) that
//!   runs the job's command with ci-operator's environment (`ARTIFACT_DIR=/logs/artifacts`,
//!   `SHARED_DIR=/var/run/secrets/ci.openshift.io/multi-stage`, …), forwards SIGTERM to it, writes
//!   its exit code to a marker file, `/okd-forge/marker-file.txt`, and exits with that code. The
//!   executor reports the exit code that Kubernetes records for the container.
//! - `artifacts` (busybox by default, [`KubernetesExecutor::with_artifacts_image`]) waits for the
//!   marker, then prints the artifacts directory as a gzipped tar in base64 between two marker
//!   lines ([`ARTIFACTS_SCRIPT`]) and sleeps until the pod is deleted.
//!
//! The executor follows the `test` container's log into `build-log.txt` and the `artifacts`
//! container's log into the run's `artifacts/` directory, then deletes the pod. Artifacts come
//! back through the pod log API rather than through `exec` (`kubectl cp`): the executor needs no
//! `pods/exec` permission (which lets its holder run anything in any pod of the namespace), no
//! websocket client, and the whole conversation is plain HTTP requests that tests can answer.
//! The price: the artifacts travel base64-encoded (a third larger than the gzipped tar), and if the
//! log stream breaks while they are sent, they are read again from the start of the container's
//! log, which holds only what the kubelet has not rotated away (`containerLogMaxSize`, 10 MiB by
//! default): beyond that the run records a note instead of the artifacts.
//!
//! Time: the job's timeout starts when the `test` container starts (image pulls and scheduling do
//! not count; they have their own limit, [`KubernetesExecutor::with_start_timeout`]). When it
//! passes, the pod is deleted with the grace period: the wrapper forwards SIGTERM to the command,
//! the `artifacts` container waits up to half the grace period for the marker and sends what the
//! job has written, and the run is reported [`JobState::TimedOut`]. The pod's
//! `activeDeadlineSeconds` is a backstop should okd-forge itself go away. When the future returned
//! by [`Executor::execute`] is dropped (the run is cancelled), the pod is deleted by a task spawned
//! on the current Tokio runtime from a drop guard.
//!
//! The job's image needs `/bin/sh`, as ci-operator's multi-stage steps do; the artifacts image
//! needs `sh`, `tar`, `gzip`, `base64` and `sleep` (busybox has them all).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use release::jobs::KubernetesExecutor;
//!
//! // KUBECONFIG, ~/.kube/config, or the pod's service account; the namespace of that config.
//! let kube = KubernetesExecutor::infer(None)
//!     .await?
//!     .with_service_account("okd-forge-jobs")
//!     .with_image_pull_secret("quay-pull-secret")
//!     .with_requests([("cpu", "1"), ("memory", "2Gi")]);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use base64::Engine as _;
use futures_util::future::BoxFuture;
use futures_util::io::{AsyncBufReadExt, AsyncReadExt};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::exec::{CONTAINER_ARTIFACTS, DEFAULT_GRACE_PERIOD};
use super::{Execution, Executor, Invocation, JobState};

/// The `test` container: the job's image running the job's command.
pub const TEST_CONTAINER: &str = "test";

/// The `artifacts` container: sends the artifacts back through its log.
pub const ARTIFACTS_CONTAINER: &str = "artifacts";

/// `SHARED_DIR` in the pod: where ci-operator mounts a multi-stage test's shared directory.
pub const POD_SHARED: &str = "/var/run/secrets/ci.openshift.io/multi-stage";

/// Where both containers mount the volume of the marker file.
pub const POD_TOOLS: &str = "/okd-forge";

/// The marker file the wrapper writes the command's exit code to when it ends (Prow's name).
pub const MARKER_FILE: &str = "/okd-forge/marker-file.txt";

/// The default image of the `artifacts` container.
pub const DEFAULT_ARTIFACTS_IMAGE: &str = "docker.io/library/busybox:1.36";

/// How long a pod may take to be scheduled and pull its images, by default.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long the artifacts and the rest of the log may take to come back after the command ended,
/// by default.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How often the pod's status is read, by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The label every pod of okd-forge carries: `app.kubernetes.io/managed-by=okd-forge`.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The label with the run's `JOB_NAME` (made a valid label value).
pub const JOB_LABEL: &str = "okd-forge.io/job";

/// The label with the run's `BUILD_ID` (made a valid label value).
pub const BUILD_ID_LABEL: &str = "okd-forge.io/build-id";

/// The line the `artifacts` container prints before the base64 of the artifacts tarball.
pub const ARTIFACTS_BEGIN: &str = "okd-forge-artifacts-begin";

/// The line the `artifacts` container prints after it.
pub const ARTIFACTS_END: &str = "okd-forge-artifacts-end";

/// The `test` container's command is `sh -c TEST_WRAPPER okd-forge MARKER COMMAND…`: the job's
/// command with SIGTERM (pod deletion) forwarded to it, then its exit code written to `MARKER`
/// ([`MARKER_FILE`]), and the same exit code.
pub const TEST_WRAPPER: &str = r#"marker=$1
shift
mkdir -p "$ARTIFACT_DIR"
"$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
echo "$rc" > "$marker"
exit "$rc""#;

/// The `artifacts` container's command is `sh -c ARTIFACTS_SCRIPT okd-forge WAIT MARKER DIR`: wait
/// for `MARKER` (once the pod is being deleted, for at most `WAIT` seconds more), print `DIR` as a
/// gzipped tar in base64 between [`ARTIFACTS_BEGIN`] and [`ARTIFACTS_END`], then sleep until the
/// pod is deleted. The last sleep is in the foreground, a second at a time: a background sleep
/// could be forked after the TERM trap ran and outlive the script, holding its stdout open.
pub const ARTIFACTS_SCRIPT: &str = r#"term=0
trap 'term=1' TERM INT
while [ ! -e "$2" ]; do
  if [ "$term" = 1 ]; then
    i=0
    while [ ! -e "$2" ] && [ "$i" -lt "$1" ]; do sleep 1; i=$((i+1)); done
    break
  fi
  sleep 1
done
echo okd-forge-artifacts-begin
tar cf - -C "$3" . | gzip -c | base64
trap 'exit 0' TERM INT
echo okd-forge-artifacts-end
while :; do sleep 1; done"#;

/// Waiting reasons of a container that mean the pod will not start without a change elsewhere.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// How many times a broken log stream is opened again.
const MAX_RESUMES: u32 = 20;

/// How many failed status reads in a row end a run.
const MAX_API_ERRORS: u32 = 10;

/// How many status reads a log follower waits for a container to be reported ended after its
/// log stream ended, before it takes the end for a broken connection.
const SETTLE_POLLS: u32 = 5;

/// After a timeout, how long the artifacts and the log may take beyond the grace period.
const TERMINATION_MARGIN: Duration = Duration::from_secs(30);

/// Runs jobs as Kubernetes pods. See the [module documentation](self).
#[derive(Clone)]
pub struct KubernetesExecutor {
    client: Client,
    namespace: String,
    service_account: Option<String>,
    image_pull_secrets: Vec<String>,
    requests: BTreeMap<String, String>,
    limits: BTreeMap<String, String>,
    artifacts_image: String,
    grace: Duration,
    start_timeout: Duration,
    fetch_timeout: Duration,
    poll: Duration,
}

impl std::fmt::Debug for KubernetesExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesExecutor")
            .field("namespace", &self.namespace)
            .field("service_account", &self.service_account)
            .field("image_pull_secrets", &self.image_pull_secrets)
            .field("requests", &self.requests)
            .field("limits", &self.limits)
            .field("artifacts_image", &self.artifacts_image)
            .field("grace", &self.grace)
            .field("start_timeout", &self.start_timeout)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// Why [`KubernetesExecutor::infer`] found no cluster to talk to.
#[derive(Debug, thiserror::Error)]
pub enum KubeSetupError {
    /// No kubeconfig (`KUBECONFIG`, `~/.kube/config`) and not in a pod.
    #[error(
        "no Kubernetes configuration: set KUBECONFIG, write ~/.kube/config, or run okd-forge in a \
         pod with a service account ({0})"
    )]
    Config(String),
    /// The configuration was found but no client could be made from it (bad certificates, …).
    #[error("cannot make a Kubernetes client from the configuration: {0}")]
    Client(String),
}

impl KubernetesExecutor {
    /// Pods in `namespace`, through `client`; no service account (the namespace's `default`), no
    /// pull secret, no resource requests, the default artifacts image, grace period (15 s), start
    /// timeout (15 min), fetch timeout (10 min) and poll interval (2 s).
    pub fn new(client: Client, namespace: impl Into<String>) -> KubernetesExecutor {
        KubernetesExecutor {
            client,
            namespace: namespace.into(),
            service_account: None,
            image_pull_secrets: Vec::new(),
            requests: BTreeMap::new(),
            limits: BTreeMap::new(),
            artifacts_image: DEFAULT_ARTIFACTS_IMAGE.to_string(),
            grace: DEFAULT_GRACE_PERIOD,
            start_timeout: DEFAULT_START_TIMEOUT,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            poll: DEFAULT_POLL_INTERVAL,
        }
    }

    /// The client and namespace from the environment, as `kubectl` finds them: `KUBECONFIG` or
    /// `~/.kube/config` (its current context's namespace), else the in-cluster service account
    /// (its pod's namespace). `namespace` overrides the namespace.
    pub async fn infer(namespace: Option<&str>) -> Result<KubernetesExecutor, KubeSetupError> {
        // The errors' texts, not the errors: kube's messages already hold their causes, and a
        // source chain would print them twice.
        let config = kube::Config::infer().await.map_err(|e| {
            // Of kube's "in-cluster: (…), kubeconfig: (…)" the kubeconfig part is what a user
            // outside a cluster needs.
            KubeSetupError::Config(match kube::config::Kubeconfig::read() {
                Err(k) => k.to_string(),
                Ok(_) => e.to_string(),
            })
        })?;
        let namespace = namespace
            .map(String::from)
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| KubeSetupError::Client(e.to_string()))?;
        Ok(KubernetesExecutor::new(client, namespace))
    }

    /// The namespace the pods run in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The service account the pods run as (`serviceAccountName`).
    pub fn with_service_account(mut self, name: impl Into<String>) -> KubernetesExecutor {
        self.service_account = Some(name.into());
        self
    }

    /// A secret to pull the images with (`imagePullSecrets`); may be given more than once.
    pub fn with_image_pull_secret(mut self, name: impl Into<String>) -> KubernetesExecutor {
        self.image_pull_secrets.push(name.into());
        self
    }

    /// Resource requests of the `test` container, e.g. `[("cpu", "1"), ("memory", "2Gi")]`.
    pub fn with_requests<K: Into<String>, V: Into<String>>(
        mut self,
        requests: impl IntoIterator<Item = (K, V)>,
    ) -> KubernetesExecutor {
        self.requests
            .extend(requests.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Resource limits of the `test` container, e.g. `[("memory", "8Gi")]`.
    pub fn with_limits<K: Into<String>, V: Into<String>>(
        mut self,
        limits: impl IntoIterator<Item = (K, V)>,
    ) -> KubernetesExecutor {
        self.limits
            .extend(limits.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// The image of the `artifacts` container (it needs `sh`, `tar`, `gzip`, `base64`, `sleep`);
    /// a mirror of busybox where Docker Hub cannot be reached.
    pub fn with_artifacts_image(mut self, image: impl Into<String>) -> KubernetesExecutor {
        self.artifacts_image = image.into();
        self
    }

    /// The pod's grace period when it is deleted on timeout (`terminationGracePeriodSeconds`),
    /// whole seconds.
    pub fn with_grace_period(mut self, grace: Duration) -> KubernetesExecutor {
        self.grace = grace;
        self
    }

    /// How long a pod may wait to be scheduled and to pull its images before the run is an error.
    pub fn with_start_timeout(mut self, timeout: Duration) -> KubernetesExecutor {
        self.start_timeout = timeout;
        self
    }

    /// How long the artifacts and the end of the log may take to come back after the command
    /// ended.
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> KubernetesExecutor {
        self.fetch_timeout = timeout;
        self
    }

    /// How often the pod's status is read.
    pub fn with_poll_interval(mut self, interval: Duration) -> KubernetesExecutor {
        self.poll = interval;
        self
    }

    /// The pod for a run: see the [module documentation](self).
    fn pod(&self, inv: &Invocation<'_>, name: &str, image: &str) -> Result<Pod, String> {
        let run = inv.run;
        let job = &run.job;
        let env: Vec<Value> = inv
            .env(CONTAINER_ARTIFACTS, POD_SHARED)
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        let mut command = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            TEST_WRAPPER.to_string(),
            "okd-forge".to_string(),
            MARKER_FILE.to_string(),
        ];
        command.extend(job.command.iter().cloned());
        let mut test = json!({
            "name": TEST_CONTAINER,
            "image": image,
            "command": command,
            "env": env,
            "volumeMounts": [
                {"name": "artifacts", "mountPath": CONTAINER_ARTIFACTS},
                {"name": "shared", "mountPath": POD_SHARED},
                {"name": "okd-forge", "mountPath": POD_TOOLS},
            ],
        });
        if let Some(dir) = &job.workdir {
            test["workingDir"] = dir.to_string_lossy().into();
        }
        if !self.requests.is_empty() {
            test["resources"]["requests"] = json!(self.requests);
        }
        if !self.limits.is_empty() {
            test["resources"]["limits"] = json!(self.limits);
        }
        let grace = self.grace.as_secs();
        let artifacts = json!({
            "name": ARTIFACTS_CONTAINER,
            "image": self.artifacts_image,
            "command": [
                "/bin/sh", "-c", ARTIFACTS_SCRIPT, "okd-forge", (grace / 2).max(1).to_string(),
                MARKER_FILE, CONTAINER_ARTIFACTS,
            ],
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
            "volumeMounts": [
                {"name": "artifacts", "mountPath": CONTAINER_ARTIFACTS, "readOnly": true},
                {"name": "okd-forge", "mountPath": POD_TOOLS, "readOnly": true},
            ],
        });
        let deadline = self.start_timeout + job.timeout + self.fetch_timeout + self.grace;
        let mut spec = json!({
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline.as_secs().max(1),
            "terminationGracePeriodSeconds": grace,
            "containers": [test, artifacts],
            "volumes": [
                {"name": "artifacts", "emptyDir": {}},
                {"name": "shared", "emptyDir": {}},
                {"name": "okd-forge", "emptyDir": {}},
            ],
        });
        if let Some(sa) = &self.service_account {
            spec["serviceAccountName"] = sa.as_str().into();
        }
        if !self.image_pull_secrets.is_empty() {
            spec["imagePullSecrets"] = self
                .image_pull_secrets
                .iter()
                .map(|s| json!({"name": s}))
                .collect();
        }
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    MANAGED_BY_LABEL: "okd-forge",
                    JOB_LABEL: label_value(&run.job_name),
                    BUILD_ID_LABEL: label_value(&run.build_id),
                },
                "annotations": {
                    "okd-forge.io/job-name": run.job_name,
                    "okd-forge.io/build-id": run.build_id,
                    "okd-forge.io/test": job.name,
                },
            },
            "spec": spec,
        });
        serde_json::from_value(pod).map_err(|e| format!("cannot make the pod {name}: {e}"))
    }

    async fn run(&self, inv: Invocation<'_>) -> Execution {
        let job = &inv.run.job;
        let Some(image) = &job.image else {
            return Execution::error(format!(
                "job {}: the Kubernetes executor runs jobs in an image, and the job has none",
                job.name
            ));
        };
        if job.command.is_empty() {
            return Execution::error(format!("job {}: the command is empty", job.name));
        }
        let name = pod_name(&inv.run.job_name, &inv.run.build_id);
        let at = format!("{}/{name}", self.namespace);
        if let Err(e) = append_line(inv.log, &format!("Running test {} in pod {at}", job.name)) {
            return Execution::error(format!("cannot write to {}: {e}", inv.log.display()));
        }
        let pod = match self.pod(&inv, &name, image) {
            Ok(p) => p,
            Err(e) => return Execution::error(format!("job {}: {e}", job.name)),
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        if let Err(e) = api.create(&PostParams::default(), &pod).await {
            return Execution::error(format!(
                "job {}: cannot create pod {at}: {}",
                job.name,
                api_error(&e)
            ));
        }
        let mut guard = PodGuard::new(api.clone(), name.clone(), self.grace);
        let pods = Pods {
            api: &api,
            name: &name,
            poll: self.poll,
        };

        // Until the test container starts: scheduling and image pulls.
        let start_deadline = Instant::now() + self.start_timeout;
        let mut errors = 0;
        loop {
            let observed = pods.observe().await;
            if observed.is_ok() {
                errors = 0;
            }
            let why = match observed {
                Ok(Observed::Pending(why)) => why,
                Ok(Observed::Running | Observed::Exited { .. }) => break,
                Ok(Observed::Fatal(why)) => {
                    guard.delete(Duration::ZERO).await;
                    return Execution::error(format!(
                        "job {}: pod {at} cannot run: {why}",
                        job.name
                    ));
                }
                Ok(Observed::DeadlineExceeded) => {
                    guard.delete(Duration::ZERO).await;
                    return timed_out(Vec::new());
                }
                Ok(Observed::Gone) => {
                    guard.disarm();
                    return Execution::error(format!(
                        "job {}: pod {at} was deleted before it started",
                        job.name
                    ));
                }
                Err(e) => {
                    errors += 1;
                    if errors >= MAX_API_ERRORS {
                        return Execution::error(format!(
                            "job {}: cannot read the status of pod {at}: {e}",
                            job.name
                        ));
                    }
                    String::new()
                }
            };
            if Instant::now() >= start_deadline {
                guard.delete(Duration::ZERO).await;
                let why = if why.is_empty() {
                    "pending".into()
                } else {
                    why
                };
                return Execution::error(format!(
                    "job {}: pod {at} did not start within {}: {why}",
                    job.name,
                    super::go_duration(self.start_timeout)
                ));
            }
            tokio::time::sleep(self.poll).await;
        }

        // The command runs: follow its log and the artifacts container's, until it ends or times
        // out.
        let timeout_at = Instant::now() + job.timeout;
        // Removed when this function returns or its future is dropped.
        let scratch = Scratch(scratch_file(inv.log));
        let mut logs = pin!(pods.follow_log(inv.log));
        let mut artifacts = pin!(pods.collect_artifacts(&scratch.0, inv.artifacts));
        let mut logs_done: Option<Vec<String>> = None;
        let mut artifacts_done: Option<Result<(), String>> = None;
        let mut errors = 0;
        let end = loop {
            tokio::select! {
                notes = &mut logs, if logs_done.is_none() => logs_done = Some(notes),
                got = &mut artifacts, if artifacts_done.is_none() => artifacts_done = Some(got),
                _ = tokio::time::sleep_until(timeout_at) => break End::TimedOut,
                _ = tokio::time::sleep(self.poll) => match pods.observe().await {
                    Ok(Observed::Exited { code, reason, .. }) => break End::Exited { code, reason },
                    Ok(Observed::Fatal(why)) => break End::Error(format!("pod {at} failed: {why}")),
                    Ok(Observed::DeadlineExceeded) => break End::TimedOut,
                    Ok(Observed::Gone) => {
                        break End::Error(format!("pod {at} was deleted while the job ran"))
                    }
                    Ok(Observed::Running | Observed::Pending(_)) => errors = 0,
                    Err(e) => {
                        errors += 1;
                        if errors >= MAX_API_ERRORS {
                            break End::Error(format!(
                                "cannot read the status of pod {at}: {e}"
                            ));
                        }
                    }
                },
            }
        };

        // The end: let the log and the artifacts come in, for a while.
        let (fetch_for, deleted) = match &end {
            End::Exited { .. } => (self.fetch_timeout, false),
            End::TimedOut | End::Error(_) => {
                guard.delete(self.grace).await;
                (self.grace + TERMINATION_MARGIN, true)
            }
        };
        let fetch_until = Instant::now() + fetch_for;
        while logs_done.is_none() || artifacts_done.is_none() {
            tokio::select! {
                notes = &mut logs, if logs_done.is_none() => logs_done = Some(notes),
                got = &mut artifacts, if artifacts_done.is_none() => artifacts_done = Some(got),
                _ = tokio::time::sleep_until(fetch_until) => break,
            }
        }
        if !deleted {
            guard.delete(self.grace).await;
        }

        let mut notes = logs_done.unwrap_or_else(|| {
            vec![format!(
                "the log of pod {at} did not end within {} after the command",
                super::go_duration(fetch_for)
            )]
        });
        match artifacts_done {
            Some(Ok(())) => {}
            Some(Err(e)) => notes.push(format!("the artifacts were not copied back: {e}")),
            None => notes.push(format!(
                "the artifacts were not copied back within {} after the command",
                super::go_duration(fetch_for)
            )),
        }
        match end {
            End::TimedOut => timed_out(notes),
            End::Error(message) => Execution {
                state: JobState::Error(format!("job {}: {message}", job.name)),
                exit_code: None,
                notes,
            },
            End::Exited { code, reason } => {
                if reason.as_deref() == Some("OOMKilled") {
                    notes.push(format!(
                        "the test container of pod {at} ran out of memory (OOMKilled)"
                    ));
                }
                Execution {
                    state: if code == 0 {
                        JobState::Succeeded
                    } else {
                        JobState::Failed
                    },
                    exit_code: Some(code),
                    notes,
                }
            }
        }
    }
}

impl Executor for KubernetesExecutor {
    fn name(&self) -> &str {
        "kubernetes"
    }

    fn execute<'a>(&'a self, invocation: Invocation<'a>) -> BoxFuture<'a, Execution> {
        Box::pin(self.run(invocation))
    }
}

/// How the command's part of a run ended.
enum End {
    Exited { code: i32, reason: Option<String> },
    TimedOut,
    Error(String),
}

/// What a pod's status says about a run.
#[derive(Debug, Clone, PartialEq)]
enum Observed {
    /// Not started yet; why, when the status says (`Unschedulable: 0/3 nodes are available…`).
    Pending(String),
    /// It will not start or run on: an image that cannot be pulled, an eviction.
    Fatal(String),
    /// The test container runs.
    Running,
    /// The test container ended.
    Exited {
        code: i32,
        reason: Option<String>,
        message: Option<String>,
    },
    /// Kubernetes ended the pod at its `activeDeadlineSeconds`.
    DeadlineExceeded,
    /// The pod no longer exists.
    Gone,
}

/// Read a pod's status as it concerns the run.
fn observe(pod: &Pod) -> Observed {
    let Some(status) = &pod.status else {
        return Observed::Pending(String::new());
    };
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    let state = |name: &str| {
        containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.state.as_ref())
    };
    if let Some(t) = state(TEST_CONTAINER).and_then(|s| s.terminated.as_ref()) {
        let reason = t.reason.as_deref().unwrap_or_default();
        if matches!(reason, "StartError" | "ContainerCannotRun") {
            // The runtime could not start /bin/sh (or the image is broken): no command ran.
            return Observed::Fatal(format!(
                "container {TEST_CONTAINER}: {}",
                reason_message(reason, t.message.as_deref())
            ));
        }
        return Observed::Exited {
            code: t.exit_code,
            reason: t.reason.clone(),
            message: t.message.clone(),
        };
    }
    let phase = status.phase.as_deref().unwrap_or_default();
    if phase == "Failed" || phase == "Succeeded" {
        let reason = status.reason.as_deref().unwrap_or_default();
        if reason == "DeadlineExceeded" {
            return Observed::DeadlineExceeded;
        }
        return Observed::Fatal(reason_message(
            if reason.is_empty() { phase } else { reason },
            status.message.as_deref(),
        ));
    }
    for c in containers {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            if FATAL_WAITING.contains(&reason) {
                return Observed::Fatal(format!(
                    "container {}: {}",
                    c.name,
                    reason_message(reason, w.message.as_deref())
                ));
            }
        }
    }
    if state(TEST_CONTAINER).is_some_and(|s| s.running.is_some()) {
        return Observed::Running;
    }
    if let Some(w) = state(TEST_CONTAINER).and_then(|s| s.waiting.as_ref()) {
        if let Some(reason) = &w.reason {
            return Observed::Pending(reason_message(reason, w.message.as_deref()));
        }
    }
    let unscheduled = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(c) = unscheduled {
        return Observed::Pending(reason_message(
            c.reason.as_deref().unwrap_or("not scheduled"),
            c.message.as_deref(),
        ));
    }
    Observed::Pending(phase.to_string())
}

fn reason_message(reason: &str, message: Option<&str>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("{reason}: {m}"),
        _ => reason.to_string(),
    }
}

/// Whether a container has ended, by its state in the pod's status.
fn container_ended(pod: &Pod, container: &str) -> bool {
    let state: Option<&ContainerState> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.state.as_ref());
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default();
    state.is_some_and(|s| s.terminated.is_some()) || matches!(phase, "Failed" | "Succeeded")
}

/// One run's pod, as seen through the API.
struct Pods<'a> {
    api: &'a Api<Pod>,
    name: &'a str,
    poll: Duration,
}

impl Pods<'_> {
    /// The pod, or `None` when it no longer exists.
    async fn get(&self) -> Result<Option<Pod>, String> {
        match self.api.get(self.name).await {
            Ok(p) => Ok(Some(p)),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
            Err(e) => Err(api_error(&e)),
        }
    }

    async fn observe(&self) -> Result<Observed, String> {
        Ok(match self.get().await? {
            Some(pod) => observe(&pod),
            None => Observed::Gone,
        })
    }

    /// Whether `container` has ended (or the pod is gone), waiting a few polls for the status to
    /// say so: a log stream can end a moment before the status is updated.
    async fn settled(&self, container: &str) -> bool {
        for i in 0..SETTLE_POLLS {
            if i > 0 {
                tokio::time::sleep(self.poll).await;
            }
            match self.get().await {
                Ok(None) => return true,
                Ok(Some(pod)) if container_ended(&pod, container) => return true,
                _ => {}
            }
        }
        false
    }

    /// Append the test container's log to `log` until the container has ended. A stream that
    /// breaks while the container runs is opened again from a little before the break (lines
    /// around it may then appear twice), which the returned notes tell.
    async fn follow_log(&self, log: &Path) -> Vec<String> {
        let mut notes = Vec::new();
        let mut file = match OpenOptions::new().create(true).append(true).open(log) {
            Ok(f) => f,
            Err(e) => return vec![format!("cannot write to {}: {e}", log.display())],
        };
        let mut since = None;
        let mut last_data = Instant::now();
        let mut resumed = 0;
        let mut buf = vec![0; 64 * 1024];
        loop {
            let params = LogParams {
                container: Some(TEST_CONTAINER.into()),
                follow: true,
                since_seconds: since,
                ..LogParams::default()
            };
            match self.api.log_stream(self.name, &params).await {
                Ok(stream) => {
                    let mut stream = pin!(stream);
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if let Err(e) = file.write_all(&buf[..n]) {
                            notes.push(format!("cannot write to {}: {e}", log.display()));
                            return notes;
                        }
                        last_data = Instant::now();
                    }
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => break,
                Err(_) => tokio::time::sleep(self.poll).await,
            }
            if self.settled(TEST_CONTAINER).await {
                break;
            }
            if resumed == MAX_RESUMES {
                notes.push(format!(
                    "gave up following the log of pod {} after {MAX_RESUMES} broken streams",
                    self.name
                ));
                return notes;
            }
            resumed += 1;
            since = i64::try_from(last_data.elapsed().as_secs() + 2).ok();
        }
        if resumed > 0 {
            notes.push(format!(
                "the log stream of pod {} broke {resumed} time(s) and was resumed; lines around \
                 the breaks may appear twice",
                self.name
            ));
        }
        notes
    }

    /// Read the artifacts tarball the artifacts container prints and unpack it into `into`,
    /// through the file `scratch`. A stream that breaks is read again from the start.
    async fn collect_artifacts(&self, scratch: &Path, into: &Path) -> Result<(), String> {
        let mut last_problem = String::from("the artifacts container ended without sending them");
        // Streams that were opened and broke; failures to open one (the container has not
        // started yet) do not count.
        let mut broken = 0;
        while broken <= MAX_RESUMES {
            let params = LogParams {
                container: Some(ARTIFACTS_CONTAINER.into()),
                follow: true,
                ..LogParams::default()
            };
            match self.api.log_stream(self.name, &params).await {
                Ok(stream) => {
                    broken += 1;
                    match read_artifacts(stream, scratch).await {
                        Ok(true) => return unpack(scratch, into).await,
                        Ok(false) => {}
                        Err(e) => last_problem = e,
                    }
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {
                    return Err(format!("pod {} is gone", self.name))
                }
                Err(e) => last_problem = api_error(&e),
            }
            if self.settled(ARTIFACTS_CONTAINER).await {
                return Err(last_problem);
            }
            tokio::time::sleep(self.poll).await;
        }
        Err(format!("{last_problem} ({broken} broken log streams)"))
    }
}

/// Read an artifacts container's log: the base64 between [`ARTIFACTS_BEGIN`] and
/// [`ARTIFACTS_END`], decoded into `scratch`. `Ok(false)` when the stream ended before the end
/// marker.
async fn read_artifacts(
    stream: impl futures_util::io::AsyncBufRead,
    scratch: &Path,
) -> Result<bool, String> {
    let mut lines = pin!(stream.lines());
    let mut decoder: Option<Base64File> = None;
    while let Some(line) = lines.next().await {
        let Ok(line) = line else {
            return Ok(false);
        };
        let line = line.trim();
        match &mut decoder {
            None if line == ARTIFACTS_BEGIN => decoder = Some(Base64File::create(scratch)?),
            None => {}
            Some(_) if line == ARTIFACTS_END => {
                if let Some(d) = decoder.take() {
                    d.finish()?;
                }
                return Ok(true);
            }
            Some(d) => d.push(line)?,
        }
    }
    Ok(false)
}

/// Base64 text decoded into a file as it comes, in any line lengths.
struct Base64File {
    file: File,
    path: PathBuf,
    pending: String,
}

impl Base64File {
    fn create(path: &Path) -> Result<Base64File, String> {
        let file =
            File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Base64File {
            file,
            path: path.to_path_buf(),
            pending: String::new(),
        })
    }

    fn push(&mut self, text: &str) -> Result<(), String> {
        self.pending.push_str(text);
        let whole = self.pending.len() / 4 * 4;
        if whole >= 4096 {
            self.decode(whole)?;
        }
        Ok(())
    }

    fn decode(&mut self, len: usize) -> Result<(), String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.pending[..len])
            .map_err(|e| format!("the artifacts are not valid base64: {e}"))?;
        self.file
            .write_all(&bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        self.pending.drain(..len);
        Ok(())
    }

    fn finish(mut self) -> Result<(), String> {
        if !self.pending.is_empty() {
            if !self.pending.len().is_multiple_of(4) {
                return Err("the artifacts' base64 is cut short".into());
            }
            self.decode(self.pending.len())?;
        }
        self.file
            .sync_all()
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// Unpack the gzipped tarball `tarball` into `into` (entries that would land outside it are
/// refused by `tar`).
async fn unpack(tarball: &Path, into: &Path) -> Result<(), String> {
    let (tarball, into) = (tarball.to_path_buf(), into.to_path_buf());
    let unpacked = tokio::task::spawn_blocking(move || unpack_blocking(&tarball, &into)).await;
    unpacked.unwrap_or_else(|e| Err(format!("unpacking the artifacts failed: {e}")))
}

/// Unpack the gzipped tarball `tarball` into `into`.
fn unpack_blocking(tarball: &Path, into: &Path) -> Result<(), String> {
    let file =
        File::open(tarball).map_err(|e| format!("cannot read {}: {e}", tarball.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive.set_overwrite(true);
    archive
        .unpack(into)
        .map_err(|e| format!("cannot unpack the artifacts into {}: {e}", into.display()))
}

/// Where the artifacts tarball is written on its way: beside `build-log.txt`, in the run's
/// directory.
fn scratch_file(log: &Path) -> PathBuf {
    log.with_file_name(".okd-forge-artifacts.tar.gz")
}

/// The artifacts tarball on its way, removed when the run ends, however it ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A pod that is deleted when this is dropped while armed: when the run is cancelled, the
/// deletion is spawned on the current Tokio runtime (a drop cannot wait). Outside a runtime the
/// pod is left to its `activeDeadlineSeconds`.
struct PodGuard {
    api: Api<Pod>,
    name: Option<String>,
    grace: Duration,
}

impl PodGuard {
    fn new(api: Api<Pod>, name: String, grace: Duration) -> PodGuard {
        PodGuard {
            api,
            name: Some(name),
            grace,
        }
    }

    /// Delete the pod now; if that fails, it is tried again when the guard is dropped.
    async fn delete(&mut self, grace: Duration) {
        if let Some(name) = &self.name {
            match self.api.delete(name, &delete_params(grace)).await {
                Ok(_) => self.name = None,
                Err(kube::Error::Api(s)) if s.is_not_found() => self.name = None,
                Err(_) => {}
            }
        }
    }

    fn disarm(&mut self) {
        self.name = None;
    }
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let params = delete_params(self.grace);
            runtime.spawn(async move {
                let _ = api.delete(&name, &params).await;
            });
        }
    }
}

fn delete_params(grace: Duration) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(u32::try_from(grace.as_secs()).unwrap_or(u32::MAX)),
        ..DeleteParams::background()
    }
}

fn timed_out(notes: Vec<String>) -> Execution {
    Execution {
        state: JobState::TimedOut,
        exit_code: None,
        notes,
    }
}

/// An API error as a short text: the API server's message when it sent one.
fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            format!("{} ({} {})", s.message, s.code, s.reason)
        }
        e => e.to_string(),
    }
}

fn append_line(log: &Path, line: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(f, "{line}")
}

/// The pod name of a run: `<JOB_NAME>-<BUILD_ID>` as a DNS-1123 label (lower case letters, digits
/// and `-`, starting and ending with a letter or digit, at most 63 characters). A longer name is
/// cut and ends in `-` and 8 hex digits of its SHA-256, as Prow shortens names, so that different
/// long names stay different.
pub fn pod_name(job_name: &str, build_id: &str) -> String {
    let raw = format!("{job_name}-{build_id}");
    let clean: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let clean = clean.trim_matches('-');
    if !clean.is_empty() && clean.len() <= 63 {
        return clean.to_string();
    }
    let keep = clean[..clean.len().min(63 - 9)].trim_end_matches('-');
    if keep.is_empty() {
        format!("job-{}", short_hash(&raw))
    } else {
        format!("{keep}-{}", short_hash(&raw))
    }
}

/// `value` as a valid label value: letters, digits, `-`, `_` and `.`, starting and ending with a
/// letter or digit, at most 63 characters (cut and ended with a hash like [`pod_name`]).
pub fn label_value(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let edge = |c: char| !c.is_ascii_alphanumeric();
    let clean = clean.trim_matches(edge);
    if clean.len() <= 63 {
        return clean.to_string();
    }
    let keep = clean[..63 - 9].trim_end_matches(edge);
    format!("{keep}-{}", short_hash(value))
}

/// The first 8 hex digits of the SHA-256 of `text`.
fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn pod_names() {
        assert_eq!(
            pod_name("4.17.0-0.okd-scos-2026-11-23-101500-e2e-aws", "1"),
            "4-17-0-0-okd-scos-2026-11-23-101500-e2e-aws-1"
        );
        assert_eq!(pod_name("E2E_aws", "7"), "e2e-aws-7");
        let long = "4.17.0-0.okd-scos-2026-11-23-101500-e2e-aws-ovn-upgrade-from-stable-4.16";
        let a = pod_name(long, "1");
        let b = pod_name(long, "2");
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(is_dns_label(n), "{n}");
            assert_eq!(n.len(), 63, "{n}");
        }
        assert!(a.starts_with("4-17-0-0-okd-scos-2026-11-23-101500-e2e-aws-ovn-upgrad-"));
        assert_eq!(a, pod_name(long, "1"), "the same run gets the same name");
        let odd = pod_name("///", "_");
        assert!(is_dns_label(&odd) && odd.starts_with("job-"), "{odd}");
    }

    #[test]
    fn label_values() {
        assert_eq!(label_value("4.17.0-0.okd-e2e_aws"), "4.17.0-0.okd-e2e_aws");
        assert_eq!(label_value("-a b/c."), "a-b-c");
        // Cut at 54 characters, less the `.` it would end with, then `-` and the hash.
        let long = "x.".repeat(50);
        assert_eq!(
            label_value(&long),
            format!("{}x-{}", "x.".repeat(26), short_hash(&long))
        );
    }

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn observations() {
        let waiting = |container: &str, reason: &str| {
            pod(json!({"phase": "Pending", "containerStatuses": [
                {"name": container, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": reason, "message": "it says why"}}},
            ]}))
        };
        assert_eq!(
            observe(&waiting("test", "ContainerCreating")),
            Observed::Pending("ContainerCreating: it says why".into())
        );
        assert_eq!(
            observe(&waiting("artifacts", "ImagePullBackOff")),
            Observed::Fatal("container artifacts: ImagePullBackOff: it says why".into())
        );
        let unschedulable = pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient cpu."},
        ]}));
        assert_eq!(
            observe(&unschedulable),
            Observed::Pending("Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.".into())
        );
        let exited = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "test", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 3, "reason": "Error"}}},
        ]}));
        assert_eq!(
            observe(&exited),
            Observed::Exited {
                code: 3,
                reason: Some("Error".into()),
                message: None
            }
        );
        assert!(container_ended(&exited, "test"));
        assert!(!container_ended(&exited, "artifacts"));
        let no_shell = pod(json!({"phase": "Failed", "containerStatuses": [
            {"name": "test", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 128, "reason": "StartError",
                                      "message": "exec: \"/bin/sh\": no such file"}}},
        ]}));
        assert_eq!(
            observe(&no_shell),
            Observed::Fatal("container test: StartError: exec: \"/bin/sh\": no such file".into())
        );
        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted",
                                 "message": "The node was low on resource: memory."}));
        assert_eq!(
            observe(&evicted),
            Observed::Fatal("Evicted: The node was low on resource: memory.".into())
        );
        let deadline = pod(json!({"phase": "Failed", "reason": "DeadlineExceeded"}));
        assert_eq!(observe(&deadline), Observed::DeadlineExceeded);
        assert_eq!(observe(&pod(json!({}))), Observed::Pending(String::new()));
    }

    #[tokio::test]
    async fn artifacts_from_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("junit.xml"), "<testsuite/>").unwrap();
        std::fs::write(src.join("sub/big.bin"), vec![7u8; 100_000]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        {
            let mut tar = tar::Builder::new(&mut gz);
            tar.append_dir_all(".", &src).unwrap();
            tar.finish().unwrap();
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let mut log = String::from("something before\n");
        log.push_str(ARTIFACTS_BEGIN);
        log.push('\n');
        for chunk in b64.as_bytes().chunks(76) {
            log.push_str(std::str::from_utf8(chunk).unwrap());
            log.push('\n');
        }
        log.push_str(ARTIFACTS_END);
        log.push('\n');

        let scratch = dir.path().join("scratch.tar.gz");
        let cut = &log[..log.len() / 2];
        assert_eq!(
            read_artifacts(futures_util::io::Cursor::new(cut), &scratch).await,
            Ok(false)
        );
        assert_eq!(
            read_artifacts(futures_util::io::Cursor::new(log.as_bytes()), &scratch).await,
            Ok(true)
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack(&scratch, &out).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("junit.xml")).unwrap(),
            "<testsuite/>"
        );
        assert_eq!(
            std::fs::read(out.join("sub/big.bin")).unwrap().len(),
            100_000
        );
    }
}
