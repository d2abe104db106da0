//! The Kubernetes executor, against a FAKE API server: no Kubernetes API server can run on this
//! machine, so these tests give the executor a `kube::Client` over a hand-written `tower::Service`
//! that plays one pod's life as the API server and kubelet would report it (pod creation, status
//! reads, the two containers' log streams, deletion). They check what the executor asks for (the
//! Pod it creates, the DELETE it sends) and what it makes of the answers (exit codes, timeouts,
//! image pull failures, logs and artifacts in Prow's layout). They cannot check that a real cluster
//! runs that Pod as the fake says; the two shell scripts the Pod runs (the command wrapper and the
//! artifacts sender) are run for real with the local `/bin/sh` at the end of this file.

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use release::jobs::kube::{
    ARTIFACTS_BEGIN, ARTIFACTS_END, ARTIFACTS_SCRIPT, MARKER_FILE, POD_SHARED, TEST_WRAPPER,
};
use release::jobs::leases::LeasePools;
use release::jobs::{run_job, JobRun, JobState, KubernetesExecutor};
use serde_json::{json, Value};

const NS: &str = "okd-ci";
const IMAGE: &str = "quay.io/okd/tests:4.17";

/// How the fake pod lives.
#[derive(Clone, Default)]
struct Script {
    /// Pod statuses answered to the first status reads, before the test container runs.
    pending: Vec<Value>,
    /// What the test container prints, in chunks.
    log: Vec<&'static str>,
    /// How the command exits; `None`: it runs until the pod is deleted.
    exit: Option<i32>,
    /// The files the job leaves in ARTIFACT_DIR, sent by the artifacts container.
    artifacts: Vec<(&'static str, &'static str)>,
    /// The first test log stream breaks after its first chunk (while the container runs on).
    break_log_once: bool,
}

/// What the fake saw and where the pod is in its life.
#[derive(Default)]
struct State {
    /// Method and path with query of every request.
    requests: Vec<String>,
    /// The bodies of the POST (the pod) and of the DELETEs.
    created: Option<Value>,
    delete_bodies: Vec<Value>,
    status_reads: usize,
    test_log_streams: usize,
    test_ended: bool,
    deleted: bool,
}

#[derive(Clone)]
struct Fake {
    script: Arc<Script>,
    state: Arc<Mutex<State>>,
}

type Body = BoxBody<Bytes, Infallible>;

impl Fake {
    fn new(script: Script) -> Fake {
        Fake {
            script: Arc::new(script),
            state: Arc::default(),
        }
    }

    fn client(&self) -> kube::Client {
        let fake = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.answer(req).await) }
        });
        kube::Client::new(service, NS)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    fn deletes(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with("DELETE "))
            .count()
    }

    async fn answer(&self, req: Request<kube::client::Body>) -> Response<Body> {
        let method = req.method().clone();
        let uri = req.uri().clone();
        let path = uri.path().to_string();
        // (kube-rs writes `log?&container=…`: the empty pair is dropped here.)
        let query = uri
            .query()
            .unwrap_or_default()
            .trim_start_matches('&')
            .to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let pods = format!("/api/v1/namespaces/{NS}/pods");
        self.state().requests.push(format!(
            "{method} {path}{}{query}",
            if query.is_empty() { "" } else { "?" }
        ));

        if method == Method::POST && path == pods {
            let pod: Value = serde_json::from_slice(&body).unwrap();
            self.state().created = Some(pod.clone());
            return json_response(StatusCode::CREATED, &pod);
        }
        let Some(rest) = path.strip_prefix(&format!("{pods}/")) else {
            return not_found("no such path");
        };
        let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let created = self.state().created.clone();
        if created.as_ref().map(|p| &p["metadata"]["name"]) != Some(&json!(name)) {
            return not_found("pods \"x\" not found");
        }
        match (method, sub) {
            (Method::GET, "") => match self.status() {
                Some(status) => {
                    let mut pod = created.unwrap_or_default();
                    pod["status"] = status;
                    json_response(StatusCode::OK, &pod)
                }
                None => not_found("pods \"x\" not found"),
            },
            (Method::DELETE, "") => {
                let mut s = self.state();
                s.delete_bodies
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                s.deleted = true;
                json_response(StatusCode::OK, &created.unwrap_or_default())
            }
            (Method::GET, "log") if query.contains("container=test") => self.test_log(),
            (Method::GET, "log") if query.contains("container=artifacts") => self.artifacts_log(),
            _ => not_found("unexpected request"),
        }
    }

    /// The pod's status now; `None` once deleted.
    fn status(&self) -> Option<Value> {
        let mut s = self.state();
        if s.deleted {
            return None;
        }
        s.status_reads += 1;
        if let Some(pending) = self.script.pending.get(s.status_reads - 1) {
            return Some(pending.clone());
        }
        let test = if s.test_ended {
            json!({"terminated": {"exitCode": self.script.exit.unwrap_or(0), "reason": "Completed"}})
        } else {
            json!({"running": {"startedAt": "2026-11-23T10:15:00Z"}})
        };
        Some(json!({
            "phase": "Running",
            "containerStatuses": [
                container_status("test", test),
                container_status("artifacts", json!({"running": {}})),
            ],
        }))
    }

    /// The test container's log: its chunks, then the end of the stream when the command exits
    /// (or the pod is deleted).
    fn test_log(&self) -> Response<Body> {
        let fake = self.clone();
        let stream_no = {
            let mut s = self.state();
            s.test_log_streams += 1;
            s.test_log_streams
        };
        streaming(move |tx| async move {
            let chunks = &fake.script.log;
            let broken = fake.script.break_log_once && stream_no == 1;
            // A resumed stream (sinceSeconds) starts again a little before the break: here, from
            // the first chunk.
            for (i, chunk) in chunks.iter().enumerate() {
                if tx.send(Bytes::from_static(chunk.as_bytes())).await.is_err() {
                    return;
                }
                if broken && i == 0 {
                    return;
                }
            }
            match fake.script.exit {
                Some(_) => fake.state().test_ended = true,
                None => fake.until(|s| s.deleted).await,
            }
        })
    }

    /// The artifacts container's log: the marker lines around the base64 of a tar.gz of the
    /// script's files once the command has ended (or the pod is being deleted), then nothing until
    /// the pod is deleted.
    fn artifacts_log(&self) -> Response<Body> {
        let fake = self.clone();
        streaming(move |tx| async move {
            fake.until(|s| s.test_ended || s.deleted).await;
            let b64 =
                base64::engine::general_purpose::STANDARD.encode(tar_gz(&fake.script.artifacts));
            let mut text = format!("{ARTIFACTS_BEGIN}\n");
            for line in b64.as_bytes().chunks(76) {
                text.push_str(std::str::from_utf8(line).unwrap());
                text.push('\n');
            }
            text.push_str(ARTIFACTS_END);
            text.push('\n');
            // In pieces that do not end at line ends, as a network would cut them.
            for piece in text.as_bytes().chunks(1000) {
                if tx.send(Bytes::copy_from_slice(piece)).await.is_err() {
                    return;
                }
            }
            fake.until(|s| s.deleted).await;
        })
    }

    async fn until(&self, done: impl Fn(&State) -> bool) {
        while !done(&self.state()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn container_status(name: &str, state: Value) -> Value {
    json!({"name": name, "image": IMAGE, "imageID": "", "ready": true, "restartCount": 0,
           "state": state})
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .unwrap()
}

fn not_found(message: &str) -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": message, "reason": "NotFound", "code": 404}),
    )
}

/// A response whose body is what `produce` sends, ending when it returns.
fn streaming<F, Fut>(produce: F) -> Response<Body>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(produce(tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(http_body::Frame::data(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .body(StreamBody::new(stream).boxed())
        .unwrap()
}

fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut tar = tar::Builder::new(&mut gz);
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("./{name}"), content.as_bytes())
                .unwrap();
        }
        tar.finish().unwrap();
    }
    gz.finish().unwrap()
}

const JUNIT: &str = r#"<testsuite name="openshift-tests" tests="2" failures="1">
  <testcase name="[sig-network] pods can talk" classname="e2e" time="12.5"/>
  <testcase name="[sig-storage] volumes mount" classname="e2e"><failure message="timed out">x</failure></testcase>
</testsuite>"#;

/// The executor as the tests use it: polling every 10 ms, no grace period.
fn executor(fake: &Fake) -> KubernetesExecutor {
    KubernetesExecutor::new(fake.client(), NS)
        .with_poll_interval(Duration::from_millis(10))
        .with_grace_period(Duration::ZERO)
        .with_start_timeout(Duration::from_secs(20))
        .with_fetch_timeout(Duration::from_secs(20))
}

/// A run of `e2e-aws` in the job image, `./run-e2e.sh --suite openshift/conformance`.
fn e2e_run(root: &Path) -> JobRun {
    let mut run = run_in(
        root,
        release::jobs::JobSpec {
            image: Some(IMAGE.into()),
            timeout: Duration::from_secs(60),
            ..release::jobs::JobSpec::new(
                "e2e-aws",
                ["./run-e2e.sh", "--suite", "openshift/conformance"],
            )
        },
    );
    run.job.env.insert("MY_SETTING".into(), "on".into());
    run.job.workdir = Some("/go/src/github.com/openshift/origin".into());
    run
}

fn pod_name() -> &'static str {
    "4-17-0-0-okd-scos-2026-11-23-101500-e2e-aws-1"
}

#[tokio::test]
async fn a_passing_job_runs_in_a_pod_and_its_log_and_artifacts_come_back_in_prows_layout() {
    let fake = Fake::new(Script {
        pending: vec![json!({"phase": "Pending", "containerStatuses": [
            container_status("test", json!({"waiting": {"reason": "ContainerCreating"}})),
        ]})],
        log: vec!["running e2e\n", "a warning on stderr\n", "done\n"],
        exit: Some(0),
        artifacts: vec![
            ("junit_e2e.xml", JUNIT),
            ("must-gather/pods.txt", "pod a\n"),
        ],
        ..Script::default()
    });
    let root = tempfile::tempdir().unwrap();
    let pools = LeasePools::new([("aws-quota-slice", 1)]).unwrap();
    let mut run = e2e_run(root.path());
    run.job.leases = vec!["aws-quota-slice".into()];
    let kube = executor(&fake)
        .with_service_account("okd-forge-jobs")
        .with_image_pull_secret("quay-pull")
        .with_requests([("cpu", "1"), ("memory", "2Gi")])
        .with_limits([("memory", "8Gi")])
        .with_artifacts_image("registry.example/busybox:1.36");

    let outcome = run_job(&kube, &pools, &run).await;

    assert_eq!(outcome.state, JobState::Succeeded, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);
    assert_eq!(outcome.tests.len(), 2, "the JUnit file came back");

    // The pod.
    let pod = fake.state().created.clone().unwrap();
    let meta = &pod["metadata"];
    assert_eq!(meta["name"], pod_name());
    assert_eq!(meta["namespace"], NS);
    assert_eq!(
        meta["labels"],
        json!({
            "app.kubernetes.io/managed-by": "okd-forge",
            "okd-forge.io/job": "4.17.0-0.okd-scos-2026-11-23-101500-e2e-aws",
            "okd-forge.io/build-id": "1",
        })
    );
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    // start timeout + job timeout + fetch timeout + grace: 20 + 60 + 20 + 0.
    assert_eq!(spec["activeDeadlineSeconds"], 100);
    assert_eq!(spec["serviceAccountName"], "okd-forge-jobs");
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "quay-pull"}]));
    assert_eq!(
        spec["volumes"],
        json!([
            {"name": "artifacts", "emptyDir": {}},
            {"name": "shared", "emptyDir": {}},
            {"name": "okd-forge", "emptyDir": {}},
        ])
    );
    let test = &spec["containers"][0];
    assert_eq!(test["name"], "test");
    assert_eq!(test["image"], IMAGE);
    assert_eq!(
        test["command"],
        json!([
            "/bin/sh",
            "-c",
            TEST_WRAPPER,
            "okd-forge",
            MARKER_FILE,
            "./run-e2e.sh",
            "--suite",
            "openshift/conformance"
        ])
    );
    assert_eq!(test["workingDir"], "/go/src/github.com/openshift/origin");
    assert_eq!(
        test["resources"],
        json!({"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}})
    );
    assert_eq!(
        test["volumeMounts"],
        json!([
            {"name": "artifacts", "mountPath": "/logs/artifacts"},
            {"name": "shared", "mountPath": POD_SHARED},
            {"name": "okd-forge", "mountPath": "/okd-forge"},
        ])
    );
    let env: Vec<(String, String)> = test["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("ARTIFACTS", "/logs/artifacts"),
        ("ARTIFACT_DIR", "/logs/artifacts"),
        ("BUILD_ID", "1"),
        ("JOB_NAME", "4.17.0-0.okd-scos-2026-11-23-101500-e2e-aws"),
        ("LEASED_RESOURCE", "aws-quota-slice-0"),
        ("LEASED_RESOURCES", "aws-quota-slice-0"),
        ("MY_SETTING", "on"),
        ("RELEASE_IMAGE_INITIAL", PAYLOAD),
        ("RELEASE_IMAGE_LATEST", PAYLOAD),
        ("SHARED_DIR", "/var/run/secrets/ci.openshift.io/multi-stage"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env, want);
    let sidecar = &spec["containers"][1];
    assert_eq!(sidecar["name"], "artifacts");
    assert_eq!(sidecar["image"], "registry.example/busybox:1.36");
    assert_eq!(
        sidecar["command"],
        json!([
            "/bin/sh",
            "-c",
            ARTIFACTS_SCRIPT,
            "okd-forge",
            "1",
            MARKER_FILE,
            "/logs/artifacts"
        ])
    );
    assert!(
        sidecar.get("env").is_none(),
        "the job's env is not the sidecar's"
    );

    // The conversation: create, status, the two followed logs, delete.
    let requests = fake.requests();
    let base = format!("/api/v1/namespaces/{NS}/pods");
    assert!(
        requests[0].starts_with(&format!("POST {base}")),
        "{requests:?}"
    );
    for container in ["test", "artifacts"] {
        let follow = format!(
            "GET {base}/{}/log?container={container}&follow=true",
            pod_name()
        );
        assert!(requests.contains(&follow), "{follow} in {requests:#?}");
    }
    assert_eq!(
        requests.last().unwrap(),
        &format!("DELETE {base}/{}", pod_name())
    );
    assert_eq!(fake.deletes(), 1);

    // Prow's layout, with the log and the artifacts.
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
    assert_eq!(
        json(dir, "started.json"),
        json!({"timestamp": outcome.started})
    );
    let finished = json(dir, "finished.json");
    assert_eq!(finished["passed"], true);
    assert_eq!(finished["result"], "SUCCESS");
    assert_eq!(finished["metadata"]["okd-forge"]["executor"], "kubernetes");
    assert_eq!(finished["metadata"]["okd-forge"]["exit-code"], 0);
    assert_eq!(
        std::fs::read_to_string(&outcome.log).unwrap(),
        format!(
            "Acquiring leases for test e2e-aws: [aws-quota-slice]\n\
             Acquired 1 lease(s) for aws-quota-slice: [aws-quota-slice-0]\n\
             Running test e2e-aws in pod {NS}/{}\n\
             running e2e\n\
             a warning on stderr\n\
             done\n\
             Releasing leases for test e2e-aws: [aws-quota-slice-0]\n",
            pod_name()
        )
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("artifacts/junit_e2e.xml")).unwrap(),
        JUNIT
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("artifacts/must-gather/pods.txt")).unwrap(),
        "pod a\n"
    );
}

#[tokio::test]
async fn a_failing_command_is_failed_with_its_exit_code() {
    let fake = Fake::new(Script {
        log: vec!["FAIL: 3 tests\n"],
        exit: Some(3),
        artifacts: vec![("junit_e2e.xml", JUNIT)],
        ..Script::default()
    });
    let root = tempfile::tempdir().unwrap();
    let run = e2e_run(root.path());
    let outcome = run_job(&executor(&fake), &LeasePools::default(), &run).await;
    assert_eq!(outcome.state, JobState::Failed, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.tests.len(), 2);
    assert_eq!(fake.deletes(), 1);
    let finished = json(&run.dir, "finished.json");
    assert_eq!(finished["result"], "FAILURE");
    assert_eq!(finished["metadata"]["okd-forge"]["exit-code"], 3);
    assert!(std::fs::read_to_string(&outcome.log)
        .unwrap()
        .contains("FAIL: 3 tests\n"));
}

#[tokio::test]
async fn a_job_past_its_timeout_is_deleted_and_timed_out_and_its_artifacts_still_come_back() {
    let fake = Fake::new(Script {
        log: vec!["still running\n"],
        exit: None,
        artifacts: vec![("partial.txt", "what it had\n")],
        ..Script::default()
    });
    let root = tempfile::tempdir().unwrap();
    let mut run = e2e_run(root.path());
    run.job.timeout = Duration::from_millis(300);
    let kube = executor(&fake).with_grace_period(Duration::from_secs(2));
    let began = Instant::now();
    let outcome = run_job(&kube, &LeasePools::default(), &run).await;
    assert_eq!(outcome.state, JobState::TimedOut, "{outcome:?}");
    assert_eq!(outcome.exit_code, None);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(fake.deletes(), 1);
    assert_eq!(
        fake.state().delete_bodies[0]["gracePeriodSeconds"],
        2,
        "deleted with the grace period"
    );
    assert_eq!(
        std::fs::read_to_string(run.dir.join("artifacts/partial.txt")).unwrap(),
        "what it had\n"
    );
    let log = std::fs::read_to_string(&outcome.log).unwrap();
    assert!(log.contains("still running\n"), "{log}");
    assert!(
        log.ends_with("Process did not finish before 300ms timeout\n"),
        "{log}"
    );
    assert_eq!(
        json(&run.dir, "finished.json")["metadata"]["okd-forge"]["state"],
        "timed-out"
    );
}

#[tokio::test]
async fn a_job_without_an_image_is_an_error_before_any_request() {
    let fake = Fake::new(Script::default());
    let root = tempfile::tempdir().unwrap();
    let mut run = e2e_run(root.path());
    run.job.image = None;
    let outcome = run_job(&executor(&fake), &LeasePools::default(), &run).await;
    let JobState::Error(message) = &outcome.state else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        message,
        "job e2e-aws: the Kubernetes executor runs jobs in an image, and the job has none"
    );
    assert!(fake.requests().is_empty());
    assert_eq!(json(&run.dir, "finished.json")["result"], "FAILURE");
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_an_error_with_kubernetes_reason_and_the_pod_is_deleted()
{
    let fake = Fake::new(Script {
        pending: vec![
            json!({"phase": "Pending", "containerStatuses": [
                container_status("test", json!({"waiting": {"reason": "ContainerCreating"}})),
            ]}),
            json!({"phase": "Pending", "containerStatuses": [
                container_status("test", json!({"waiting": {
                    "reason": "ImagePullBackOff",
                    "message": "Back-off pulling image \"quay.io/okd/tests:4.17\"",
                }})),
            ]}),
        ],
        ..Script::default()
    });
    let root = tempfile::tempdir().unwrap();
    let run = e2e_run(root.path());
    let outcome = run_job(&executor(&fake), &LeasePools::default(), &run).await;
    assert_eq!(
        outcome.state,
        JobState::Error(format!(
            "job e2e-aws: pod {NS}/{} cannot run: container test: ImagePullBackOff: Back-off \
             pulling image \"quay.io/okd/tests:4.17\"",
            pod_name()
        ))
    );
    assert_eq!(fake.deletes(), 1);
    assert!(
        !fake.requests().iter().any(|r| r.contains("/log?")),
        "no log is read from a pod that never ran"
    );
}

#[tokio::test]
async fn a_pod_that_stays_unschedulable_is_an_error_after_the_start_timeout() {
    let unschedulable = json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient cpu."},
    ]});
    let fake = Fake::new(Script {
        pending: vec![unschedulable; 1000],
        ..Script::default()
    });
    let root = tempfile::tempdir().unwrap();
    let run = e2e_run(root.path());
    let kube = executor(&fake).with_start_timeout(Duration::from_millis(200));
    let outcome = run_job(&kube, &LeasePools::default(), &run).await;
    assert_eq!(
        outcome.state,
        JobState::Error(format!(
            "job e2e-aws: pod {NS}/{} did not start within 200ms: Unschedulable: 0/3 nodes are \
             available: 3 Insufficient cpu.",
            pod_name()
        ))
    );
    assert_eq!(fake.deletes(), 1);
}

#[tokio::test]
async fn a_cancelled_run_deletes_its_pod() {
    let fake = Fake::new(Script {
        log: vec!["running\n"],
        exit: None,
        ..Script::default()
    });
    let root = tempfile::tempdir().unwrap();
    let run = e2e_run(root.path());
    let kube = executor(&fake);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        run_job(&kube, &LeasePools::default(), &run),
    )
    .await;
    assert!(cancelled.is_err(), "the job was still running");
    assert!(fake.state().status_reads > 0, "the pod was running");
    // The drop guard's deletion runs on the runtime, a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.deletes() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.deletes(), 1, "{:?}", fake.requests());
}

#[tokio::test]
async fn a_broken_log_stream_is_resumed() {
    let fake = Fake::new(Script {
        log: vec!["first\n", "second\n"],
        exit: Some(0),
        break_log_once: true,
        ..Script::default()
    });
    let root = tempfile::tempdir().unwrap();
    let run = e2e_run(root.path());
    let outcome = run_job(&executor(&fake), &LeasePools::default(), &run).await;
    assert_eq!(outcome.state, JobState::Succeeded, "{outcome:?}");
    let requests = fake.requests();
    let resumed: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("container=test") && r.contains("sinceSeconds="))
        .collect();
    assert_eq!(resumed.len(), 1, "{requests:?}");
    let log = std::fs::read_to_string(&outcome.log).unwrap();
    assert!(log.contains("first\nfirst\nsecond\n"), "{log}");
    assert_eq!(
        outcome.notes,
        [format!(
            "the log stream of pod {} broke 1 time(s) and was resumed; lines around the breaks \
             may appear twice",
            pod_name()
        )]
    );
}

// The pod's two scripts, run for real with the local /bin/sh (dash here, busybox ash in busybox
// images: both POSIX shells).

/// The wrapper runs the command with its arguments, writes its exit code to the marker and
/// exits with it; SIGTERM (pod deletion) reaches the command.
#[test]
fn the_wrapper_reports_the_exit_code_in_the_marker_and_forwards_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker-file.txt");
    let artifacts = dir.path().join("artifacts");
    let status = Command::new("/bin/sh")
        .args(["-c", TEST_WRAPPER, "okd-forge"])
        .arg(&marker)
        .args([
            "sh",
            "-c",
            "echo \"$1 $2\" > \"$ARTIFACT_DIR/args.txt\"; exit 7",
            "-",
            "a b",
            "c",
        ])
        .env("ARTIFACT_DIR", &artifacts)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "7\n");
    assert_eq!(
        std::fs::read_to_string(artifacts.join("args.txt")).unwrap(),
        "a b c\n"
    );

    std::fs::remove_file(&marker).unwrap();
    let mut child = Command::new("/bin/sh")
        .args(["-c", TEST_WRAPPER, "okd-forge"])
        .arg(&marker)
        .args([
            "sh",
            "-c",
            "trap 'echo terminated > \"$ARTIFACT_DIR/term.txt\"; exit 143' TERM; \
             touch \"$ARTIFACT_DIR/started\"; while :; do sleep 0.05; done",
        ])
        .env("ARTIFACT_DIR", &artifacts)
        .spawn()
        .unwrap();
    wait_for(&artifacts.join("started"));
    terminate(child.id());
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "143\n");
    assert_eq!(
        std::fs::read_to_string(artifacts.join("term.txt")).unwrap(),
        "terminated\n"
    );
}

/// The artifacts script waits for the marker, prints the directory as base64 of a tar.gz between
/// the marker lines, then waits for SIGTERM and exits 0.
#[test]
fn the_artifacts_script_sends_the_directory_once_the_marker_is_there() {
    for tool in ["tar", "gzip", "base64"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "{tool} is needed"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker-file.txt");
    let artifacts = dir.path().join("artifacts");
    std::fs::create_dir_all(artifacts.join("sub")).unwrap();
    std::fs::write(artifacts.join("junit.xml"), JUNIT).unwrap();
    std::fs::write(artifacts.join("sub/data.bin"), vec![1u8; 50_000]).unwrap();
    let mut child = Command::new("/bin/sh")
        .args(["-c", ARTIFACTS_SCRIPT, "okd-forge", "1"])
        .arg(&marker)
        .arg(&artifacts)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&marker, "0\n").unwrap();

    // Read up to the end marker, then stop the script.
    let mut lines = VecDeque::new();
    let mut reader = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    for line in reader.by_ref() {
        let line = line.unwrap();
        let end = line == ARTIFACTS_END;
        lines.push_back(line);
        if end {
            break;
        }
    }
    terminate(child.id());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // Its sleep went with it: nothing holds the pipe open any more.
    assert!(reader.next().is_none(), "the script left a process behind");
    assert_eq!(lines.pop_front().as_deref(), Some(ARTIFACTS_BEGIN));
    assert_eq!(lines.pop_back().as_deref(), Some(ARTIFACTS_END));
    let b64: String = lines.into_iter().collect();
    let tgz = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let out = dir.path().join("out");
    tar::Archive::new(flate2::read::GzDecoder::new(&tgz[..]))
        .unpack(&out)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("junit.xml")).unwrap(),
        JUNIT
    );
    assert_eq!(
        std::fs::read(out.join("sub/data.bin")).unwrap().len(),
        50_000
    );
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGTERM to `pid`.
fn terminate(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    let sent = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
}

/// `infer` reads a kubeconfig (here from KUBECONFIG; no other test of this file reads it) and
/// makes a rustls client from it, with the context's namespace unless one is given. No request
/// is sent.
#[tokio::test]
async fn the_executor_is_configured_from_a_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: ci\n  cluster:\n    server: https://127.0.0.1:6443\n\
         users:\n\
         - name: okd-forge\n  user:\n    token: not-a-real-token\n\
         contexts:\n\
         - name: ci\n  context:\n    cluster: ci\n    user: okd-forge\n    namespace: okd-forge-jobs\n\
         current-context: ci\n",
    )
    .unwrap();
    std::env::set_var("KUBECONFIG", &kubeconfig);
    let from_context = KubernetesExecutor::infer(None).await.unwrap();
    assert_eq!(from_context.namespace(), "okd-forge-jobs");
    let given = KubernetesExecutor::infer(Some("elsewhere")).await.unwrap();
    assert_eq!(given.namespace(), "elsewhere");

    // Without a kubeconfig and outside a pod (in a pod, in-cluster configuration would be found).
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        std::env::set_var("KUBECONFIG", dir.path().join("missing"));
        let missing = KubernetesExecutor::infer(None).await.unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("no Kubernetes configuration"),
            "{missing}"
        );
    }
}
