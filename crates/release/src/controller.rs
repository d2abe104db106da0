//! The release controller: cuts payloads from the streams, verifies them, decides, and collects
//! garbage, following `specs/release-controller.md` §2 with the rules of [`crate::lifecycle`].
//!
//! One [`Controller::pass`] walks every stream that has a `release:` block:
//! 1. runs recorded as running that no task of this controller runs are marked interrupted (a
//!    crashed controller left them; they run again and do not count as attempts);
//! 2. when the stream's content hash is new and the creation rules allow, a Pending payload is
//!    recorded (name, time, the tag → digest snapshot);
//! 3. a Pending payload is assembled from its snapshot with the payload library and pushed to the
//!    store under its name → Ready (or Failed when it cannot be assembled; a failed push is retried
//!    on the next pass, three times);
//! 4. on Ready payloads, the built-in checks run and every job that is due (never run, or its
//!    backoff after a failure has passed) is launched in the background;
//! 5. the verdict moves Ready payloads to Accepted or Rejected;
//! 6. the stream's `publish:` actions are carried out once for its newest Accepted payload: a
//!    floating store tag moved to it (`tag_ref`), or its images copied into another stream
//!    (`stream`, stream inheritance), which then cuts its own payload;
//! 7. garbage collection removes old payloads from the store and the records.
//!
//! Each transition is one transaction with its event ([`crate::state`]); what happens between
//! transitions (an assembly, a push, a job) is repeatable, so a pass after a crash at any point
//! converges to the same records. Time comes from a [`Clock`], which tests inject.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use build::config::{PublishAction, Release, Store as StoreConfig, UpgradeFrom};
use build::run::Forge;
use build::state::StateError;
use oci::Store;
use payload::new::{Base, InputTag, NewRelease};
use payload::source::PullSpec;
use payload::version::{ReleaseName, Versions};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;

use crate::checks;
use crate::jobs::leases::LeasePools;
use crate::jobs::{run_job, Executor, JobRun, JobSpec, JobState, Outcome};
use crate::lifecycle::{self, Creation, Gate, JobStatus, Phase, Run, Verdict};
use crate::state::{
    NewPayload, NewRun, PayloadRecord, Publication, Records, RunEnd, RunKind, RunRecord, RunState,
    TestCounts,
};
pub use publish::PUBLISH_ATTEMPTS;

mod os;
mod publish;

/// Where time comes from.
pub trait Clock: Send + Sync {
    /// Unix seconds now.
    fn now(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        crate::jobs::now()
    }
}

/// A failed push is retried on this many passes before the payload is Failed.
pub const PUSH_ATTEMPTS: usize = 3;

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A store could not be read or written.
    #[error("{0}")]
    Store(String),
    /// The request cannot be carried out as asked (no such stream, nothing to test against).
    #[error("{0}")]
    Usage(String),
    /// A simulated crash (tests).
    #[error("crashed at {0}")]
    Crashed(String),
}

/// A test hook: asked before each step with its name; `true` makes the step fail as if the
/// process had died there.
pub type CrashHook = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a pass did, for people and scripts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Per stream, what creation decided: `created NAME`, `unchanged`, `waiting until …`,
    /// `blocked: …`, `no images yet`.
    pub streams: BTreeMap<String, String>,
    /// Per stream with a `promote:` schedule, where promotion stands: `promoted …`, `next due …`,
    /// or why nothing qualifies although it is due.
    pub promotion: BTreeMap<String, String>,
    /// What it did, in order.
    pub actions: Vec<Action>,
    /// Problems that did not stop the pass.
    pub problems: Vec<String>,
}

/// One thing a pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// A payload entered a phase.
    Phase {
        /// The payload.
        payload: String,
        /// Its new phase.
        phase: Phase,
        /// Why (Rejected, Failed).
        reason: Option<String>,
    },
    /// A check or job started.
    Started {
        /// The payload.
        payload: String,
        /// The check or job.
        job: String,
        /// Its attempt.
        attempt: u32,
    },
    /// A `publish:` action was carried out for an Accepted payload.
    Published {
        /// The payload.
        payload: String,
        /// The action's name.
        name: String,
        /// What it did.
        what: String,
    },
    /// An Accepted payload was promoted to a stable release on schedule.
    Promoted {
        /// The payload.
        payload: String,
        /// The stable release.
        stable: String,
    },
    /// Garbage collection removed a payload.
    Removed {
        /// The payload.
        payload: String,
    },
    /// A payload decided a stream's OS candidate: accepted (now the stream's OS) or rejected
    /// (the stream keeps its OS).
    Os {
        /// The payload.
        payload: String,
        /// The OS release.
        version: String,
        /// Whether it was accepted.
        accepted: bool,
        /// Whether it entered the stream (not when a newer OS was accepted before it).
        promoted: bool,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Phase {
                payload,
                phase,
                reason: None,
            } => write!(f, "{payload}: {phase}"),
            Action::Phase {
                payload,
                phase,
                reason: Some(why),
            } => write!(f, "{payload}: {phase} ({why})"),
            Action::Started {
                payload,
                job,
                attempt,
            } => write!(f, "{payload}: started {job} (attempt {attempt})"),
            Action::Published {
                payload,
                name,
                what,
            } => write!(f, "{payload}: published ({name}): {what}"),
            Action::Promoted { payload, stable } => {
                write!(f, "{payload}: promoted as the stable release {stable}")
            }
            Action::Removed { payload } => write!(f, "{payload}: removed by garbage collection"),
            Action::Os {
                payload,
                version,
                accepted: true,
                promoted: true,
            } => write!(f, "{payload}: OS {version} accepted into the stream"),
            Action::Os {
                payload,
                version,
                accepted: true,
                promoted: false,
            } => write!(
                f,
                "{payload}: OS {version} accepted; the stream keeps the newer OS accepted before it"
            ),
            Action::Os {
                payload, version, ..
            } => write!(
                f,
                "{payload}: OS {version} rejected; the stream keeps its OS"
            ),
        }
    }
}

impl Report {
    /// Whether the pass changed anything.
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }

    fn phase(&mut self, payload: &str, phase: Phase, reason: Option<&str>) {
        self.actions.push(Action::Phase {
            payload: payload.to_string(),
            phase,
            reason: reason.map(str::to_string),
        });
    }

    fn started(&mut self, payload: &str, job: &str, attempt: u32) {
        self.actions.push(Action::Started {
            payload: payload.to_string(),
            job: job.to_string(),
            attempt,
        });
    }
}

/// Built-in checks run against every Ready payload: name → the check.
pub type Check = Arc<
    dyn Fn(Arc<Forge>, PayloadRecord) -> futures_util::future::BoxFuture<'static, CheckOutcome>
        + Send
        + Sync,
>;

/// What a built-in check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Whether it passed.
    pub passed: bool,
    /// What it found, one line each (problems first).
    pub findings: Vec<String>,
}

impl From<checks::CheckResult> for CheckOutcome {
    fn from(r: checks::CheckResult) -> CheckOutcome {
        CheckOutcome {
            passed: r.passed,
            findings: r.problems.into_iter().chain(r.notes).collect(),
        }
    }
}

/// The payload's reference, for the checks; a failed check when it has none.
fn payload_ref(p: &PayloadRecord) -> Result<oci::ImageRef, CheckOutcome> {
    let spec = p.pull_spec.as_deref().unwrap_or_default();
    format!("docker://{spec}")
        .parse()
        .map_err(|e| CheckOutcome {
            passed: false,
            findings: vec![format!("{}: pull spec '{spec}': {e}", p.name)],
        })
}

impl CheckOutcome {
    /// How the run of the check is recorded.
    pub fn end(&self) -> RunEnd {
        RunEnd {
            state: if self.passed {
                RunState::Succeeded
            } else {
                RunState::Failed
            },
            message: (!self.findings.is_empty()).then(|| self.findings.join("\n")),
            tests: None,
        }
    }
}

/// The controller of every stream with a `release:` block.
pub struct Controller {
    forge: Arc<Forge>,
    executor: Arc<dyn Executor>,
    pools: Arc<LeasePools>,
    jobs_dir: PathBuf,
    clock: Arc<dyn Clock>,
    checks: Vec<(String, Check)>,
    crash: Option<CrashHook>,
    crashed: std::sync::atomic::AtomicBool,
    /// Runs this controller's tasks run.
    in_flight: Mutex<HashSet<i64>>,
    tasks: Mutex<JoinSet<()>>,
    /// One pass at a time.
    pass_lock: tokio::sync::Mutex<()>,
    /// The signing key of `publish.signing`.
    signing: Option<publish::Signing>,
}

impl Controller {
    /// A controller over `forge`'s configuration, state and store, running jobs with `executor`
    /// (their Prow directories under `jobs_dir`), leases from the configuration's pools.
    pub fn new(
        forge: Arc<Forge>,
        executor: Arc<dyn Executor>,
        jobs_dir: PathBuf,
        clock: Arc<dyn Clock>,
    ) -> Result<Controller, ControllerError> {
        let pools = LeasePools::new(
            forge
                .config
                .leases
                .iter()
                .map(|(name, n)| (name.clone(), *n)),
        )
        .map_err(|e| ControllerError::Usage(e.to_string()))?;
        let signing = forge
            .config
            .publish
            .signing
            .as_ref()
            .map(publish::Signing::load)
            .transpose()?;
        Ok(Controller {
            signing,
            forge,
            executor,
            pools: Arc::new(pools),
            // Recorded with each run: absolute, so it holds from any directory.
            jobs_dir: std::path::absolute(&jobs_dir).unwrap_or(jobs_dir),
            clock,
            checks: Vec::new(),
            crash: None,
            crashed: Default::default(),
            in_flight: Mutex::new(HashSet::new()),
            tasks: Mutex::new(JoinSet::new()),
            pass_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// A controller for what runs no job (`okd-forge release promote`, the server's `…/promote`):
    /// over `forge`, with the system clock and a local executor that is never asked, its jobs
    /// directory the one `controller run` uses (`<var>/jobs`).
    pub fn without_jobs(forge: Arc<Forge>) -> Result<Controller, ControllerError> {
        let jobs = build::run::dirs(&forge.config).0.join("jobs");
        Controller::new(
            forge,
            Arc::new(crate::jobs::LocalExecutor::new()),
            jobs,
            Arc::new(SystemClock),
        )
    }

    /// Adds a blocking check, run once on every Ready payload of every stream, after the built-in
    /// ones a stream's `checks:` turn on.
    pub fn with_check(mut self, name: &str, check: Check) -> Controller {
        self.checks.push((name.to_string(), check));
        self
    }

    /// Installs a crash hook (tests).
    pub fn with_crash_hook(mut self, hook: CrashHook) -> Controller {
        self.crash = Some(hook);
        self
    }

    /// The records this controller keeps.
    pub fn records(&self) -> Records<'_> {
        Records::new(&self.forge.state)
    }

    /// The forge it runs on.
    pub fn forge(&self) -> &Arc<Forge> {
        &self.forge
    }

    fn step(&self, name: &str) -> Result<(), ControllerError> {
        use std::sync::atomic::Ordering;
        if self.crashed.load(Ordering::SeqCst) {
            return Err(ControllerError::Crashed(name.to_string()));
        }
        if let Some(hook) = &self.crash {
            if hook(name) {
                // A dead process does nothing more, in any task.
                self.crashed.store(true, Ordering::SeqCst);
                return Err(ControllerError::Crashed(name.to_string()));
            }
        }
        Ok(())
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The checks of a stream: the built-in ones its `checks:` turn on, then those added with
    /// [`Controller::with_check`].
    fn checks_of(&self, release: &Release) -> Vec<(String, Check)> {
        let mut out: Vec<(String, Check)> = Vec::new();
        if release.checks.consistency {
            out.push((
                checks::CONSISTENCY.to_string(),
                Arc::new(|forge: Arc<Forge>, p: PayloadRecord| {
                    Box::pin(async move {
                        match payload_ref(&p) {
                            Ok(r) => checks::consistency(&forge.sources, &r).await.into(),
                            Err(e) => e,
                        }
                    })
                }),
            ));
        }
        if let Some(policy) = &release.checks.base_image_policy {
            let policy = Arc::new(policy.clone());
            out.push((
                checks::BASE_IMAGE_POLICY.to_string(),
                Arc::new(move |forge: Arc<Forge>, p: PayloadRecord| {
                    let policy = policy.clone();
                    Box::pin(async move {
                        match payload_ref(&p) {
                            Ok(r) => checks::base_image_policy(&forge.sources, &r, &policy)
                                .await
                                .into(),
                            Err(e) => e,
                        }
                    })
                }),
            ));
        }
        out.extend(self.checks.iter().cloned());
        out
    }

    /// The gates of payload `p`: the stream's built-in checks (blocking, no retries) and its jobs,
    /// an `all_previous_stable` upgrade job once per stable release it upgrades from (gate
    /// `<job> from <version>`).
    fn gates(&self, p: &PayloadRecord, release: &Release) -> Result<Vec<Planned>, ControllerError> {
        let mut gates: Vec<Planned> = self
            .checks_of(release)
            .iter()
            .map(|(name, _)| Planned {
                gate: Gate {
                    name: name.clone(),
                    optional: false,
                    max_retries: 0,
                },
                job: name.clone(),
                source: None,
            })
            .collect();
        let mut sources = None;
        for gate in lifecycle::job_gates(release) {
            let job = gate.name.clone();
            if release.verify[&job].upgrade_from == Some(UpgradeFrom::AllPreviousStable) {
                if sources.is_none() {
                    sources = Some(self.stable_sources(p)?);
                }
                let from = sources.as_deref().unwrap_or_default();
                if !from.is_empty() {
                    for (version, spec) in from {
                        gates.push(Planned {
                            gate: Gate {
                                name: format!("{job} from {version}"),
                                ..gate.clone()
                            },
                            job: job.clone(),
                            source: Some(spec.clone()),
                        });
                    }
                    continue;
                }
            }
            gates.push(Planned {
                gate,
                job,
                source: None,
            });
        }
        Ok(gates)
    }

    /// What `all_previous_stable` upgrades `p` from, as (version, pull spec), oldest first: the
    /// newest stable release of the previous minor, then every stable release of `p`'s minor (of
    /// any stream; for a stable release `p`, those older than it).
    fn stable_sources(&self, p: &PayloadRecord) -> Result<Vec<(String, String)>, ControllerError> {
        let Ok(v) = semver::Version::parse(&p.name) else {
            return Ok(Vec::new());
        };
        let stable = p.stable_of.is_some();
        let mut this: Vec<(semver::Version, String)> = Vec::new();
        let mut before: Option<(semver::Version, String)> = None;
        for stream in self.forge.config.streams.keys() {
            for q in self.records().payloads(stream)? {
                let (Some(of), Some(spec)) = (&q.stable_of, &q.pull_spec) else {
                    continue;
                };
                let Ok(qv) = semver::Version::parse(&q.name) else {
                    continue;
                };
                if *of == p.name || q.name == p.name {
                    continue;
                }
                if (qv.major, qv.minor) == (v.major, v.minor) {
                    if !stable || qv < v {
                        this.push((qv, spec.clone()));
                    }
                } else if v.minor > 0
                    && (qv.major, qv.minor) == (v.major, v.minor - 1)
                    && before.as_ref().is_none_or(|(b, _)| qv > *b)
                {
                    before = Some((qv, spec.clone()));
                }
            }
        }
        this.sort();
        Ok(before
            .into_iter()
            .chain(this)
            .map(|(v, spec)| (v.to_string(), spec))
            .collect())
    }

    /// One pass over every stream with a `release:` block (see the module documentation). Jobs it
    /// launches run on in the background; [`Controller::wait`] waits for them.
    pub async fn pass(self: &Arc<Self>) -> Result<Report, ControllerError> {
        let _one = self.pass_lock.lock().await;
        let mut report = Report::default();
        self.interrupt_orphans()?;
        let streams: Vec<(String, Release)> = self
            .forge
            .config
            .streams
            .iter()
            .filter_map(|(name, s)| Some((name.clone(), s.release.clone()?)))
            .collect();
        for (stream, release) in &streams {
            self.create(stream, release, &mut report)?;
            for p in self.records().payloads(stream)? {
                if p.phase == Phase::Pending {
                    self.push(&p, &mut report).await?;
                }
            }
            for p in self.records().payloads(stream)? {
                if p.phase == Phase::Ready {
                    self.verify(&p, release, &mut report).await?;
                }
            }
            self.decide_os(stream, &mut report).await?;
            self.publish(stream, release, &mut report).await?;
            self.promote_due(stream, release, &mut report).await?;
            self.publish_stables(stream, &mut report).await?;
            if let Some(status) = report.promotion.get(stream) {
                self.records()
                    .set_promotion_status(stream, status, self.now())?;
            }
            for s in self.records().payloads(stream)? {
                if s.stable_of.is_some() {
                    let gaps = self.edge_gaps(&s, release)?;
                    self.launch_due(&s, release, &gaps, &mut report).await?;
                }
            }
            self.collect_garbage(stream, release, &mut report).await?;
        }
        Ok(report)
    }

    /// Waits until every job launched so far has finished and been recorded.
    pub async fn wait(&self) {
        loop {
            let mut tasks =
                std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
            if tasks.is_empty() {
                return;
            }
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Whether jobs are running.
    pub fn busy(&self) -> bool {
        !self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Passes until nothing is left to do now: every due job has run and every verdict that can be
    /// reached is recorded (`controller sync`). Retries whose backoff has not passed are left for
    /// a later pass.
    pub async fn settle(self: &Arc<Self>) -> Result<Report, ControllerError> {
        let mut all = Report::default();
        loop {
            let r = self.pass().await?;
            // Jobs finishing, and images published into another stream, give the next pass work.
            let launched = r
                .actions
                .iter()
                .any(|a| matches!(a, Action::Started { .. } | Action::Published { .. }));
            // What the passes decided per stream; a later "unchanged" hides nothing.
            for (stream, decision) in r.streams {
                if decision != "unchanged" || !all.streams.contains_key(&stream) {
                    all.streams.insert(stream, decision);
                }
            }
            all.promotion.extend(r.promotion);
            all.actions.extend(r.actions);
            all.problems.extend(r.problems);
            if !launched {
                return Ok(all);
            }
            self.wait().await;
            self.step("settle")?;
        }
    }

    /// The earliest time at which something is due (a retry, a creation delayed by
    /// `min_interval`), if any.
    pub fn next_due(&self) -> Result<Option<i64>, ControllerError> {
        let now = self.now();
        let mut next: Option<i64> = None;
        let mut at = |t: i64| {
            if t > now {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for (stream, s) in &self.forge.config.streams {
            let Some(release) = &s.release else { continue };
            let payloads = self.records().payloads(stream)?;
            let (hash, _) = self.snapshot(stream)?;
            let lifecycle: Vec<_> = payloads
                .iter()
                .filter(|p| p.stable_of.is_none())
                .map(PayloadRecord::lifecycle)
                .collect();
            if let Creation::WaitUntil(t) = lifecycle::creation(release, &lifecycle, &hash, now) {
                at(t);
            }
            if let Some(promote) = &release.promote {
                let newest_stable = payloads.iter().find(|p| p.stable_of.is_some());
                at(promote.next_due(newest_stable.map(|s| s.created)));
            }
            for p in &payloads {
                let gates = match (p.phase, &p.stable_of) {
                    (_, Some(_)) => self.edge_gaps(p, release)?,
                    (Phase::Ready, None) => self.gates(p, release)?,
                    _ => continue,
                };
                let runs = by_gate(&self.records().runs(&p.name)?, &gates);
                for Planned { gate, .. } in gates {
                    let r = runs.get(&gate.name).map_or(&[][..], Vec::as_slice);
                    if let JobStatus::LaunchAt(t) = lifecycle::job_status(r, gate.max_retries, now)
                    {
                        at(t);
                    }
                }
            }
        }
        Ok(next)
    }

    fn interrupt_orphans(&self) -> Result<(), ControllerError> {
        let live = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for run in self.records().running()? {
            if !live.contains(&run.id) {
                self.step("interrupt")?;
                self.records().interrupt(run.id, self.now())?;
            }
        }
        Ok(())
    }

    /// The stream's images as tag → digest, and their content hash (SHA-256 over the sorted
    /// `tag digest` lines, as the release controller hashes its source stream). The OS image
    /// being tested ([`build::osgate::testing`]) takes the place of the stream's own.
    fn snapshot(
        &self,
        stream: &str,
    ) -> Result<(String, BTreeMap<String, String>), ControllerError> {
        let mut tags: BTreeMap<String, String> = self
            .forge
            .state
            .stream_tags(stream)?
            .into_iter()
            .map(|t| (t.tag, t.digest))
            .collect();
        if let Some(c) = self.os_candidate(stream)? {
            tags.insert(c.tag, c.digest);
        }
        let mut h = Sha256::new();
        for (tag, digest) in &tags {
            h.update(format!("{tag} {digest}\n"));
        }
        Ok((format!("sha256:{}", hex::encode(h.finalize())), tags))
    }

    fn create(
        &self,
        stream: &str,
        release: &Release,
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        let now = self.now();
        let (hash, inputs) = self.snapshot(stream)?;
        let decision = if inputs.is_empty() {
            "no images yet".to_string()
        } else {
            let payloads = self.records().payloads(stream)?;
            let lifecycle: Vec<_> = payloads
                .iter()
                .filter(|p| p.stable_of.is_none())
                .map(PayloadRecord::lifecycle)
                .collect();
            match lifecycle::creation(release, &lifecycle, &hash, now) {
                Creation::Create => {
                    let name = lifecycle::payload_name(&release.name, now);
                    self.step("create")?;
                    let created = self.records().create(&NewPayload {
                        name: &name,
                        stream,
                        created: now,
                        hash: &hash,
                        inputs: &inputs,
                    })?;
                    if created {
                        report.phase(&name, Phase::Pending, None);
                        format!("created {name}")
                    } else {
                        // Another payload of this stream has this name (the same second).
                        "waiting a second for a new name".to_string()
                    }
                }
                Creation::Unchanged => "unchanged".to_string(),
                Creation::WaitUntil(t) => format!("waiting until {} (min_interval)", rfc3339(t)),
                Creation::Blocked(why) => format!("blocked: {why}"),
            }
        };
        report.streams.insert(stream.to_string(), decision);
        Ok(())
    }

    /// The pull spec of an image in the store, by digest.
    fn pull_spec(&self, digest: &str) -> String {
        format!("{}@{digest}", self.forge.config.store_name)
    }

    async fn push(&self, p: &PayloadRecord, report: &mut Report) -> Result<(), ControllerError> {
        let now = self.now();
        let built = match self
            .assemble(p, Vec::new(), &self.forge.config.store_name)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                self.step("fail")?;
                let why = format!("creation failed: {e}");
                if self.records().fail(&p.name, &why, now)? {
                    report.phase(&p.name, Phase::Failed, Some(&why));
                }
                return Ok(());
            }
        };
        self.step("push")?;
        if let Err(e) =
            payload::new::push(&built, &self.forge.copier, &self.forge.store, &p.name).await
        {
            let message = format!("push to {} failed: {e}", self.forge.store.describe());
            self.records()
                .note(&p.stream, Some(&p.name), "push-failed", &message, now)?;
            if self.records().count_events(&p.name, "push-failed")? >= PUSH_ATTEMPTS {
                if self.records().fail(&p.name, &message, now)? {
                    report.phase(&p.name, Phase::Failed, Some(&message));
                }
            } else {
                report
                    .problems
                    .push(format!("{}: {message}; retried on the next pass", p.name));
            }
            return Ok(());
        }
        self.step("ready")?;
        let digest = built.digest.to_string();
        if self
            .records()
            .ready(&p.name, &digest, &self.pull_spec(&digest), now)?
        {
            report.phase(&p.name, Phase::Ready, None);
        }
        Ok(())
    }

    /// Assembles payload `p` from its snapshot, with `previous` as the versions that upgrade to it.
    async fn assemble(
        &self,
        p: &PayloadRecord,
        previous: Vec<String>,
        repository: &str,
    ) -> Result<payload::new::Built, String> {
        let mut inputs = BTreeMap::new();
        for (tag, digest) in &p.inputs {
            let pullspec =
                PullSpec::parse(&format!("tag '{tag}'"), &format!("{repository}@{digest}"))
                    .map_err(|e| e.to_string())?;
            inputs.insert(
                tag.clone(),
                InputTag {
                    pullspec,
                    is_override: false,
                    carried: None,
                },
            );
        }
        let created =
            time::OffsetDateTime::from_unix_timestamp(p.created).map_err(|e| e.to_string())?;
        let req = NewRelease {
            name: ReleaseName::parse(&p.name).map_err(|e| e.to_string())?,
            inputs,
            base: Base::Tag("cluster-version-operator".into()),
            previous,
            metadata: BTreeMap::new(),
            include: Default::default(),
            allow_missing_images: false,
            created,
            annotations: BTreeMap::new(),
            default_versions: Versions::new(),
            extra_manifests: self
                .signing
                .as_ref()
                .and_then(|s| s.configmap.clone())
                .map(|m| (payload::signature::CONFIG_MAP_FILE.to_string(), m))
                .into_iter()
                .collect(),
        };
        payload::new::assemble(&self.forge.sources, &req, 8, &Quiet)
            .await
            .map_err(|e| e.to_string())
    }

    async fn verify(
        self: &Arc<Self>,
        p: &PayloadRecord,
        release: &Release,
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        let planned = self.gates(p, release)?;
        self.launch_due(p, release, &planned, report).await?;
        // The verdict, on what is recorded now (a check that just ran counts).
        let runs = by_gate(&self.records().runs(&p.name)?, &planned);
        let gates: Vec<Gate> = planned.into_iter().map(|g| g.gate).collect();
        match lifecycle::verdict(&gates, &runs, None, self.now()) {
            Verdict::Wait => {}
            Verdict::Accept => {
                self.step("accept")?;
                if self.records().decide(
                    &p.name,
                    true,
                    "every blocking job and check passed",
                    self.now(),
                )? {
                    report.phase(&p.name, Phase::Accepted, None);
                }
            }
            Verdict::Reject(why) => {
                self.step("reject")?;
                if self.records().decide(&p.name, false, &why, self.now())? {
                    report.phase(&p.name, Phase::Rejected, Some(&why));
                }
            }
        }
        Ok(())
    }

    /// Runs the due checks of `gates` and launches their due jobs: never run, or failed with
    /// attempts left and the backoff passed.
    async fn launch_due(
        self: &Arc<Self>,
        p: &PayloadRecord,
        release: &Release,
        gates: &[Planned],
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        let now = self.now();
        let all_runs = self.records().runs(&p.name)?;
        let runs = by_gate(&all_runs, gates);
        // Attempts are numbered per job, over all its upgrade sources.
        let attempts = |job: &str| all_runs.iter().filter(|r| r.job == job).count() as u32;
        let checks = self.checks_of(release);
        let mut launched: Vec<&str> = Vec::new();
        for Planned { gate, job, source } in gates {
            let r = runs.get(&gate.name).map_or(&[][..], Vec::as_slice);
            let JobStatus::LaunchAt(t) = lifecycle::job_status(r, gate.max_retries, now) else {
                continue;
            };
            // One launch per job and pass: attempt numbers stay unique.
            if t > now || launched.contains(&job.as_str()) {
                continue;
            }
            let attempt = attempts(job) + 1;
            if let Some((_, check)) = checks.iter().find(|(n, _)| n == job) {
                report.started(&p.name, job, attempt);
                self.run_check(p, job, check.clone(), attempt).await?;
            } else if let Some(verify) = release.verify.get(job) {
                if self.launch(p, job, verify, source.as_deref(), attempt)? {
                    launched.push(job);
                    report.started(&p.name, &gate.name, attempt);
                }
            }
        }
        Ok(())
    }

    async fn run_check(
        &self,
        p: &PayloadRecord,
        name: &str,
        check: Check,
        attempt: u32,
    ) -> Result<(), ControllerError> {
        self.step("check-start")?;
        let Some(id) = self.records().start_run(
            &NewRun {
                payload: &p.name,
                job: name,
                kind: RunKind::Check,
                attempt,
                initial: None,
                dir: None,
            },
            self.now(),
        )?
        else {
            return Ok(());
        };
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        let end = check(self.forge.clone(), p.clone()).await.end();
        let result = self
            .step("check-finish")
            .and_then(|()| Ok(self.records().finish_run(id, &end, self.now())?));
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        result.map(|_| ())
    }

    /// The pull spec an upgrade job starts from; `Err` says why there is none.
    fn upgrade_source(
        &self,
        p: &PayloadRecord,
        from: &UpgradeFrom,
    ) -> Result<Result<String, String>, ControllerError> {
        let newest_accepted = |stream: &str| -> Result<Option<PayloadRecord>, ControllerError> {
            Ok(self
                .records()
                .payloads(stream)?
                .into_iter()
                .find(|q| q.is_accepted_payload() && q.created < p.created && q.name != p.name))
        };
        let found = match from {
            UpgradeFrom::Previous => newest_accepted(&p.stream)?,
            UpgradeFrom::Stream(s) => newest_accepted(s)?,
            UpgradeFrom::PreviousMinor => {
                let minor = |name: &str| {
                    semver::Version::parse(name)
                        .ok()
                        .map(|v| (v.major, v.minor))
                };
                let Some((major, this)) = minor(&p.name) else {
                    return Ok(Err(format!("{} is not semver", p.name)));
                };
                let mut best: Option<PayloadRecord> = None;
                for (name, s) in &self.forge.config.streams {
                    let Some(r) = &s.release else { continue };
                    if this == 0 || minor(&r.name) != Some((major, this - 1)) {
                        continue;
                    }
                    if let Some(q) = newest_accepted(name)? {
                        if best.as_ref().is_none_or(|b| q.created > b.created) {
                            best = Some(q);
                        }
                    }
                }
                best
            }
            UpgradeFrom::AllPreviousStable => {
                return Ok(Err("no stable release to upgrade from".into()));
            }
        };
        Ok(match found {
            Some(q) => q
                .pull_spec
                .ok_or_else(|| format!("{} has no pull spec", q.name)),
            None => Err(format!("no Accepted payload to upgrade from ({from})")),
        })
    }

    /// What runs for a `verify:` entry: its settings, and with a layout store `OKD_FORGE_STORE`,
    /// so that okd-forge commands in the job find the payload in the store by digest.
    fn job_spec(&self, name: &str, job: &build::config::Verify) -> JobSpec {
        let mut env = job.env.clone();
        if let StoreConfig::Layout(dir) = &self.forge.config.store {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            env.entry("OKD_FORGE_STORE".into())
                .or_insert_with(|| dir.display().to_string());
        }
        JobSpec {
            name: name.to_string(),
            command: job.command.clone(),
            image: job.image.clone(),
            env,
            timeout: job.timeout,
            leases: job.leases.clone(),
            workdir: None,
        }
    }

    /// Records a run and starts it in the background; false if this attempt was started before.
    fn launch(
        self: &Arc<Self>,
        p: &PayloadRecord,
        name: &str,
        job: &build::config::Verify,
        source: Option<&str>,
        attempt: u32,
    ) -> Result<bool, ControllerError> {
        let pull_spec = p.pull_spec.clone().unwrap_or_default();
        let initial = match (&job.upgrade_from, source) {
            (_, Some(spec)) => Some(spec.to_string()),
            (None, None) => None,
            (Some(from), None) => match self.upgrade_source(p, from)? {
                Ok(src) => Some(src),
                Err(why) => {
                    // As the release controller: an upgrade job with nothing to upgrade from
                    // passes without running.
                    self.step("skip")?;
                    let now = self.now();
                    if let Some(id) = self.records().start_run(
                        &NewRun {
                            payload: &p.name,
                            job: name,
                            kind: RunKind::Job,
                            attempt,
                            initial: None,
                            dir: None,
                        },
                        now,
                    )? {
                        self.records().finish_run(
                            id,
                            &RunEnd {
                                state: RunState::Skipped,
                                message: Some(format!("skipped: {why}")),
                                tests: None,
                            },
                            now,
                        )?;
                    }
                    return Ok(true);
                }
            },
        };
        let job_name = format!("{}-{name}", p.name);
        self.step("launch")?;
        let dir_base = self.jobs_dir.join(&job_name);
        // The run id is the BUILD_ID, known once the row exists; the directory is named after it.
        let Some(id) = self.records().start_run(
            &NewRun {
                payload: &p.name,
                job: name,
                kind: RunKind::Job,
                attempt,
                initial: initial.as_deref(),
                dir: Some(&dir_base.display().to_string()),
            },
            self.now(),
        )?
        else {
            return Ok(false);
        };
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        let run = JobRun {
            job: self.job_spec(name, job),
            payload: pull_spec,
            initial,
            job_name,
            build_id: id.to_string(),
            dir: dir_base.join(id.to_string()),
        };
        let this = self.clone();
        let spawn = async move {
            let outcome = run_job(this.executor.as_ref(), &this.pools, &run).await;
            let end = run_end(&outcome);
            if this.step("finish").is_ok() {
                if let Err(e) = this.records().finish_run(id, &end, this.now()) {
                    tracing::error!("recording {}: {e}", run.job_name);
                }
            }
            this.in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        };
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spawn(spawn);
        Ok(true)
    }

    /// What [`Controller::test_payload`] tests on: the stream's release settings and its newest
    /// Accepted payload.
    pub fn test_base(&self, stream: &str) -> Result<(Release, PayloadRecord), ControllerError> {
        let release = self
            .forge
            .config
            .streams
            .get(stream)
            .and_then(|s| s.release.clone())
            .ok_or_else(|| {
                ControllerError::Usage(format!("stream '{stream}' has no `release:` block"))
            })?;
        let base = self
            .records()
            .payloads(stream)?
            .into_iter()
            .find(PayloadRecord::is_accepted_payload)
            .ok_or_else(|| {
                ControllerError::Usage(format!(
                    "stream '{stream}' has no Accepted payload to test against; run `okd-forge controller sync` first"
                ))
            })?;
        Ok((release, base))
    }

    /// Tests a change without promoting anything (`okd-forge test-pr`): the newest Accepted payload
    /// of `stream` with `overlay` (tag → digest of images in the store) replacing its images,
    /// assembled as an ephemeral payload `<its name>-<label>`, pushed to the store, verified once
    /// by every check and job of the stream (upgrade jobs from that Accepted payload), and untagged
    /// again. Nothing is recorded in the stream's payloads; the runs' directories are under
    /// `<jobs dir>/test/`.
    pub async fn test_payload(
        &self,
        stream: &str,
        overlay: &BTreeMap<String, String>,
        label: &str,
    ) -> Result<TestReport, ControllerError> {
        let (release, base) = self.test_base(stream)?;
        let mut inputs = base.inputs.clone();
        inputs.extend(overlay.iter().map(|(t, d)| (t.clone(), d.clone())));
        let now = self.now();
        let ephemeral = PayloadRecord {
            name: format!("{}-{label}", base.name),
            stream: stream.to_string(),
            phase: Phase::Ready,
            created: now,
            hash: String::new(),
            inputs,
            digest: None,
            pull_spec: None,
            reason: None,
            decided_by_hand: None,
            keep: false,
            updated: now,
            stable_of: None,
            channels: Vec::new(),
        };
        let built = self
            .assemble(&ephemeral, Vec::new(), &self.forge.config.store_name)
            .await
            .map_err(ControllerError::Usage)?;
        payload::new::push(
            &built,
            &self.forge.copier,
            &self.forge.store,
            &ephemeral.name,
        )
        .await
        .map_err(|e| ControllerError::Store(format!("push {}: {e}", ephemeral.name)))?;
        let digest = built.digest.to_string();
        let p = PayloadRecord {
            digest: Some(digest.clone()),
            pull_spec: Some(self.pull_spec(&digest)),
            ..ephemeral
        };
        let mut results = Vec::new();
        for (name, check) in &self.checks_of(&release) {
            let end = check(self.forge.clone(), p.clone()).await.end();
            results.push(GateResult {
                name: name.clone(),
                optional: false,
                state: end.state,
                message: end.message,
                tests: None,
                dir: None,
            });
        }
        let runs = release.verify.iter().map(|(name, job)| {
            let p = &p;
            let base = &base;
            async move {
                let job_name = format!("{}-{name}", p.name);
                let dir = self.jobs_dir.join("test").join(&job_name).join("1");
                let run = JobRun {
                    job: self.job_spec(name, job),
                    payload: p.pull_spec.clone().unwrap_or_default(),
                    initial: job
                        .upgrade_from
                        .as_ref()
                        .and_then(|_| base.pull_spec.clone()),
                    job_name,
                    build_id: "1".into(),
                    dir: dir.clone(),
                };
                let end = run_end(&run_job(self.executor.as_ref(), &self.pools, &run).await);
                GateResult {
                    name: name.clone(),
                    optional: job.optional,
                    state: end.state,
                    message: end.message,
                    tests: end.tests,
                    dir: Some(dir),
                }
            }
        });
        results.extend(futures_util::future::join_all(runs).await);
        self.untag(&p.name).await?;
        let passed = results
            .iter()
            .all(|r| r.optional || matches!(r.state, RunState::Succeeded | RunState::Skipped));
        Ok(TestReport {
            payload: p.name,
            pull_spec: p.pull_spec.unwrap_or_default(),
            base: base.name,
            results,
            passed,
        })
    }

    /// Carries out the stream's `publish:` actions for its newest Accepted payload, each once: the
    /// event `published-<action>` on the payload records that it was done (a crash before it
    /// repeats the action, which converges: tags and stream tags are set, not added).
    async fn publish(
        &self,
        stream: &str,
        release: &Release,
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        if release.publish.is_empty() {
            return Ok(());
        }
        let Some(p) = self
            .records()
            .payloads(stream)?
            .into_iter()
            .find(PayloadRecord::is_accepted_payload)
        else {
            return Ok(());
        };
        for (name, action) in &release.publish {
            let kind = format!("published-{name}");
            if self.records().count_events(&p.name, &kind)? > 0 {
                continue;
            }
            self.step("publish")?;
            let what = match action {
                PublishAction::TagRef(tag) => {
                    self.tag(&p, tag).await?;
                    format!("tag {tag} points at it")
                }
                PublishAction::Stream { stream: target, .. } => {
                    let mut copied = 0;
                    for (tag, digest) in p.inputs.iter().filter(|(t, _)| action.takes(t)) {
                        if self.forge.state.promote(target, tag, digest, None)? {
                            copied += 1;
                        }
                    }
                    let skipped = p.inputs.keys().filter(|t| !action.takes(t)).count();
                    format!(
                        "{copied} image(s) copied into stream {target} ({} unchanged, {skipped} excluded)",
                        p.inputs.len() - skipped - copied
                    )
                }
            };
            self.step("published")?;
            self.records()
                .note(stream, Some(&p.name), &kind, &what, self.now())?;
            report.actions.push(Action::Published {
                payload: p.name.clone(),
                name: name.clone(),
                what,
            });
        }
        Ok(())
    }

    /// Points store tag `tag` at payload `p`.
    async fn tag(&self, p: &PayloadRecord, tag: &str) -> Result<(), ControllerError> {
        let fail = |e: oci::Error| ControllerError::Store(format!("tag {tag} → {}: {e}", p.name));
        let digest: oci::Digest = p
            .digest
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| ControllerError::Store(format!("{}: digest: {e}", p.name)))?;
        let raw = self
            .forge
            .store
            .get_manifest(Some(&oci::Selector::Digest(digest)))
            .await
            .map_err(fail)?;
        self.forge
            .store
            .put_manifest(&raw, Some(tag), true)
            .await
            .map_err(fail)
    }

    /// Promotes the Accepted payload `name` to a stable release (`okd-forge release promote`):
    /// restamped under `stable` (default: the stream's next `X.Y.Z-SUFFIX.N` after its payload
    /// prefix `X.Y.Z-0.SUFFIX`, N counting its stable releases from 0), with `previous` = every
    /// stable release that an upgrade job upgraded from successfully into the payload; pushed to
    /// the store under the stable name and recorded as an Accepted payload of the stream that
    /// garbage collection never removes. The component images are the payload's, digest for
    /// digest; only the release layer is new. Promoting again to the same name changes nothing.
    pub async fn promote(
        &self,
        name: &str,
        stable: Option<&str>,
    ) -> Result<Promotion, ControllerError> {
        let p = self.records().payload(name)?.ok_or_else(|| {
            ControllerError::Usage(format!(
                "no payload named '{name}'; `okd-forge release list` shows the payloads"
            ))
        })?;
        if let Some(of) = &p.stable_of {
            return Err(ControllerError::Usage(format!(
                "{name} is a stable release already (promoted from {of})"
            )));
        }
        if p.phase != Phase::Accepted {
            return Err(ControllerError::Usage(format!(
                "{name} is {}: only an Accepted payload can be promoted",
                p.phase
            )));
        }
        let stream = p.stream.clone();
        let release = self
            .forge
            .config
            .streams
            .get(&stream)
            .and_then(|s| s.release.clone())
            .ok_or_else(|| {
                ControllerError::Usage(format!("stream '{stream}' has no `release:` block"))
            })?;
        let prefix = &release.name;
        let stables: Vec<PayloadRecord> = self
            .records()
            .payloads(&stream)?
            .into_iter()
            .filter(|q| q.stable_of.is_some())
            .collect();
        if let Some(done) = stables
            .iter()
            .find(|q| q.stable_of.as_deref() == Some(name) && stable.is_none_or(|s| s == q.name))
        {
            return Ok(Promotion {
                name: done.name.clone(),
                from: p.name,
                pull_spec: done.pull_spec.clone().unwrap_or_default(),
                previous: Vec::new(),
                channels: done.channels.clone(),
                promoted: false,
                published: self.records().publications(&done.name)?,
                publish_error: None,
            });
        }
        let template = match &release.promote {
            Some(p) => Some(p.name.clone()),
            None => build::config::default_stable_template(prefix),
        };
        let stable = match (stable, template) {
            (Some(s), _) => s.to_string(),
            (None, Some(t)) => t.replace("{n}", &stables.len().to_string()),
            (None, None) => {
                return Err(ControllerError::Usage(format!(
                    "cannot derive a stable name from the payload prefix '{prefix}' (not X.Y.Z-0.SUFFIX); give --name"
                )))
            }
        };
        let version = semver::Version::parse(&stable).map_err(|e| {
            ControllerError::Usage(format!("'{stable}' cannot name a stable release: {e}"))
        })?;
        let channels = match &release.promote {
            Some(p) => p.channels.clone(),
            None => vec![
                format!("stable-{}", version.major),
                format!("stable-{}.{}", version.major, version.minor),
            ],
        };
        if self.records().payload(&stable)?.is_some() {
            return Err(ControllerError::Usage(format!(
                "a payload or stable release named '{stable}' exists already"
            )));
        }
        let previous = self.upgraded_from_stable(&p)?;
        let now = self.now();
        let restamped = PayloadRecord {
            name: stable.clone(),
            created: now,
            ..p.clone()
        };
        // A published release names its images where it is published.
        let repository = match &self.forge.config.publish.mirror {
            Some(m) => m.content.as_str(),
            None => self.forge.config.store_name.as_str(),
        };
        let built = self
            .assemble(&restamped, previous.clone(), repository)
            .await
            .map_err(|e| ControllerError::Store(format!("restamp {name} as {stable}: {e}")))?;
        self.step("promote-push")?;
        payload::new::push(&built, &self.forge.copier, &self.forge.store, &stable)
            .await
            .map_err(|e| ControllerError::Store(format!("push {stable}: {e}")))?;
        self.step("promote-record")?;
        let digest = built.digest.to_string();
        let pull_spec = self.pull_spec(&digest);
        let promoted = self
            .records()
            .promote(&p, &stable, &digest, &pull_spec, &channels, now)?;
        let (published, publish_error) = if self.publication_kinds().is_empty() {
            (Vec::new(), None)
        } else {
            match self.publish_stable(&stable).await {
                Ok(all) => (all, None),
                Err(e @ ControllerError::Crashed(_)) => return Err(e),
                Err(e) => (self.records().publications(&stable)?, Some(e.to_string())),
            }
        };
        Ok(Promotion {
            name: stable,
            from: p.name,
            pull_spec,
            previous,
            channels,
            promoted,
            published,
            publish_error,
        })
    }

    /// Promotes on the stream's `promote:` schedule. When due, the candidates are the Accepted
    /// payloads newer than the last promoted one, newest first; the first whose required jobs all
    /// passed (for `all_previous_stable`, from every stable release there is now) is promoted. A
    /// candidate's missing required runs (an upgrade from a stable release promoted after it was
    /// verified) are launched, so that it can qualify on a later pass.
    async fn promote_due(
        self: &Arc<Self>,
        stream: &str,
        release: &Release,
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        let Some(promote) = &release.promote else {
            return Ok(());
        };
        let now = self.now();
        let payloads = self.records().payloads(stream)?;
        let newest_stable = payloads.iter().find(|p| p.stable_of.is_some());
        let due = promote.next_due(newest_stable.map(|s| s.created));
        if due > now {
            report
                .promotion
                .insert(stream.to_string(), format!("next due {}", rfc3339(due)));
            return Ok(());
        }
        let since = newest_stable
            .and_then(|s| {
                payloads
                    .iter()
                    .find(|p| Some(&p.name) == s.stable_of.as_ref())
            })
            .map(|p| p.created);
        let candidates: Vec<&PayloadRecord> = payloads
            .iter()
            .filter(|p| p.is_accepted_payload() && since.is_none_or(|t| p.created > t))
            .collect();
        let mut why: Vec<String> = Vec::new();
        for cand in candidates {
            let planned: Vec<Planned> = self
                .gates(cand, release)?
                .into_iter()
                .filter(|g| promote.require.contains(&g.job))
                .collect();
            let runs = by_gate(&self.records().runs(&cand.name)?, &planned);
            let missing: Vec<&str> = planned
                .iter()
                .filter(|g| {
                    let r = runs.get(&g.gate.name).map_or(&[][..], Vec::as_slice);
                    lifecycle::job_status(r, g.gate.max_retries, now) != JobStatus::Succeeded
                })
                .map(|g| g.gate.name.as_str())
                .collect();
            if missing.is_empty() {
                self.step("promote")?;
                let p = self.promote(&cand.name, None).await?;
                report.promotion.insert(
                    stream.to_string(),
                    format!("promoted {} as {}", p.from, p.name),
                );
                if p.promoted {
                    report.actions.push(Action::Promoted {
                        payload: p.from,
                        stable: p.name,
                    });
                }
                return Ok(());
            }
            why.push(format!("{}: {} not passed", cand.name, missing.join(", ")));
            self.launch_due(cand, release, &planned, report).await?;
        }
        let message = if why.is_empty() {
            match since {
                Some(_) => "due; no Accepted payload newer than the last promoted one".to_string(),
                None => "due; no Accepted payload".to_string(),
            }
        } else {
            format!("due; nothing qualifies: {}", why.join("; "))
        };
        report.promotion.insert(stream.to_string(), message);
        Ok(())
    }

    /// The stable releases that an upgrade job of `p` upgraded from successfully, sorted by
    /// version.
    fn upgraded_from_stable(&self, p: &PayloadRecord) -> Result<Vec<String>, ControllerError> {
        let mut out: Vec<semver::Version> = self
            .records()
            .upgraded_from_stable(&p.name)?
            .iter()
            .filter_map(|v| semver::Version::parse(v).ok())
            .collect();
        out.sort();
        Ok(out.into_iter().map(|v| v.to_string()).collect())
    }

    /// The `all_previous_stable` upgrade gates of stable release `s` that lack a successful run,
    /// into `s` or into the payload it was promoted from: a source promoted after `s` (the newest
    /// stable release of the previous minor), or an upgrade job that promotion did not require.
    /// Their runs are recorded against `s` and retried as any gate; the edges they prove go to
    /// the update graph ([`Records::edges`]), not into `s`'s `previous`, which would change its
    /// digest.
    fn edge_gaps(
        &self,
        s: &PayloadRecord,
        release: &Release,
    ) -> Result<Vec<Planned>, ControllerError> {
        let mut proven = self.records().upgraded_from_stable(&s.name)?;
        if let Some(of) = &s.stable_of {
            proven.extend(self.records().upgraded_from_stable(of)?);
        }
        let wanted: Vec<String> = self
            .stable_sources(s)?
            .into_iter()
            .filter(|(version, _)| !proven.contains(version))
            .map(|(_, spec)| spec)
            .collect();
        Ok(self
            .gates(s, release)?
            .into_iter()
            .filter(|g| g.source.as_ref().is_some_and(|spec| wanted.contains(spec)))
            .collect())
    }

    async fn collect_garbage(
        &self,
        stream: &str,
        release: &Release,
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        let payloads = self.records().payloads(stream)?;
        let lifecycle: Vec<_> = payloads
            .iter()
            .filter(|p| p.stable_of.is_none())
            .map(PayloadRecord::lifecycle)
            .collect();
        for name in lifecycle::garbage(&lifecycle, release.expires, self.now()) {
            self.step("untag")?;
            self.untag(&name).await?;
            self.step("remove")?;
            if self
                .records()
                .remove(&name, "garbage collected", self.now())?
            {
                report.actions.push(Action::Removed { payload: name });
            }
        }
        Ok(())
    }

    /// Removes a payload's tag from the store. A layout store forgets the tag (`store gc` then
    /// frees the blobs); a registry keeps it (the OCI distribution API deletes manifests, not
    /// tags, and would delete every tag of the digest), which the event log says.
    async fn untag(&self, name: &str) -> Result<(), ControllerError> {
        match &self.forge.store {
            Store::Layout(l) => l
                .untag(name)
                .map(|_| ())
                .map_err(|e| ControllerError::Store(format!("untag {name}: {e}"))),
            Store::Registry(_) => Ok(()),
        }
    }
}

/// What [`Controller::promote`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Promotion {
    /// The stable release.
    pub name: String,
    /// The Accepted payload it was promoted from.
    pub from: String,
    /// Its pull spec by digest.
    pub pull_spec: String,
    /// The versions in its `previous` (upgrade edges with a successful run).
    pub previous: Vec<String>,
    /// The channels it joined.
    pub channels: Vec<String>,
    /// False when it had been promoted before (nothing was done).
    pub promoted: bool,
    /// Where it is published (`publish:`), so far.
    pub published: Vec<Publication>,
    /// Why publishing stopped, if it did (the promotion stands; a later pass or
    /// `okd-forge release publish` resumes it).
    pub publish_error: Option<String>,
}

/// The results of [`Controller::test_payload`].
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// The ephemeral payload's name.
    pub payload: String,
    /// Its pull spec (untagged again after the test; `store gc` frees it).
    pub pull_spec: String,
    /// The Accepted payload it was overlaid on.
    pub base: String,
    /// Every check and job.
    pub results: Vec<GateResult>,
    /// Whether every blocking check and job passed.
    pub passed: bool,
}

/// One check or job of a [`TestReport`].
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    /// Its name.
    pub name: String,
    /// Informing only.
    pub optional: bool,
    /// How it ended.
    pub state: RunState,
    /// What happened.
    pub message: Option<String>,
    /// JUnit results.
    pub tests: Option<TestCounts>,
    /// The run's directory in Prow's layout.
    pub dir: Option<PathBuf>,
}

/// A gate of one payload, and what runs for it.
struct Planned {
    /// The gate.
    gate: Gate,
    /// The check or `verify:` job.
    job: String,
    /// For one upgrade source of an `all_previous_stable` job: its pull spec.
    source: Option<String>,
}

/// The counted runs by gate name, oldest first, as the lifecycle sees them (interrupted runs do
/// not count). A run counts for the gate of its job, and of its upgrade source if the gate has one.
fn by_gate(runs: &[RunRecord], gates: &[Planned]) -> BTreeMap<String, Vec<Run>> {
    let mut out: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for r in runs {
        let Some(run) = r.state.lifecycle(r.finished.unwrap_or(r.started)) else {
            continue;
        };
        for g in gates {
            if g.job == r.job && (g.source.is_none() || g.source == r.initial) {
                out.entry(g.gate.name.clone()).or_default().push(run);
            }
        }
    }
    out
}

/// How an outcome is recorded.
fn run_end(o: &Outcome) -> RunEnd {
    let state = match &o.state {
        JobState::Succeeded => RunState::Succeeded,
        JobState::Failed => RunState::Failed,
        JobState::TimedOut => RunState::TimedOut,
        JobState::Error(_) => RunState::Error,
    };
    let mut message = match (&o.state, o.exit_code) {
        (JobState::Error(e), _) => Some(e.clone()),
        (JobState::Failed, Some(code)) => Some(format!("exit code {code}")),
        (JobState::TimedOut, _) => Some("timed out".into()),
        _ => None,
    };
    if !o.notes.is_empty() {
        let notes = o.notes.join("; ");
        message = Some(match message {
            Some(m) => format!("{m}; {notes}"),
            None => notes,
        });
    }
    let tests = (!o.tests.is_empty()).then(|| {
        use crate::jobs::TestResult;
        let mut t = TestCounts::default();
        for case in &o.tests {
            match &case.result {
                TestResult::Passed => t.passed += 1,
                TestResult::Skipped { .. } => t.skipped += 1,
                TestResult::Failed { .. } => {
                    t.failures += 1;
                    if t.failed.len() < 20 {
                        t.failed.push(case.name.clone());
                    }
                }
            }
        }
        t
    });
    RunEnd {
        state,
        message,
        tests,
    }
}

/// RFC 3339 of unix seconds.
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(payload::new::rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

struct Quiet;

impl payload::new::AssembleProgress for Quiet {
    fn step(&self, _: &str, _: &str, _: usize, _: usize) {}
}
