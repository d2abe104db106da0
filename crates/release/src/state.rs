//! The release controller's records in the state database (`release_*` tables of
//! [`build::state::MIGRATIONS`]): payloads, verification runs and the event log.
//!
//! Every change here is one transaction that also appends its entry to the event log, so the log
//! and the records never disagree, and a crash leaves either the whole transition or none of it.
//! Transitions check the phase they start from inside the transaction, so repeating one (after a
//! crash, or from a second process) changes nothing. Times are unix seconds from the caller's
//! clock. This is the one module that talks SQL for the release stage: another backend
//! (PostgreSQL) replaces this module's bodies, not its callers.

use std::collections::BTreeMap;

use build::state::rusqlite::{self, params, OptionalExtension, Row};
use build::state::{State, StateError};
use serde::Serialize;

use crate::lifecycle::{Override, Phase};

/// What went wrong with a release record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// No payload of that name (it never existed, or garbage collection removed it).
    #[error("no payload named '{0}'; `okd-forge release list` shows the payloads")]
    NoSuchPayload(String),
    /// A manual decision on a payload that has no image to decide on.
    #[error("{name} is {phase}: only a Ready, Accepted or Rejected payload can be accepted or rejected by hand")]
    CannotOverride {
        /// The payload.
        name: String,
        /// Its phase.
        phase: Phase,
    },
}

impl Phase {
    /// The database's name of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Ready => "ready",
            Phase::Accepted => "accepted",
            Phase::Rejected => "rejected",
            Phase::Failed => "failed",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<Phase> {
        Ok(match s {
            "pending" => Phase::Pending,
            "ready" => Phase::Ready,
            "accepted" => Phase::Accepted,
            "rejected" => Phase::Rejected,
            "failed" => Phase::Failed,
            other => return Err(bad_value(format!("unknown phase '{other}'"))),
        })
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the release controller shows them: Pending, Ready, Accepted, Rejected, Failed.
        let s = self.as_str();
        write!(f, "{}{}", s[..1].to_uppercase(), &s[1..])
    }
}

/// A `release_upgrades` row selected as `from_name, to_name, job, run_id, succeeded, dir, at`.
fn upgrade_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, UpgradeRun)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        UpgradeRun {
            job: r.get(2)?,
            run: r.get(3)?,
            succeeded: r.get::<_, i64>(4)? != 0,
            dir: r.get(5)?,
            at: r.get(6)?,
        },
    ))
}

fn bad_value(message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, message.into())
}

/// A payload as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PayloadRecord {
    /// `<prefix>-<UTC YYYY-MM-DD-HHMMSS>`; also its tag in the store.
    pub name: String,
    /// The stream it was cut from.
    pub stream: String,
    /// Its phase.
    pub phase: Phase,
    /// When it was cut (unix seconds).
    pub created: i64,
    /// The content hash of `inputs`.
    pub hash: String,
    /// The stream's images it snapshots: tag → digest.
    pub inputs: BTreeMap<String, String>,
    /// The payload's digest, once pushed.
    pub digest: Option<String>,
    /// Its pull spec by digest, once pushed.
    pub pull_spec: Option<String>,
    /// Why it was rejected or failed (or the reason given with an override).
    pub reason: Option<String>,
    /// A manual decision.
    pub decided_by_hand: Option<Override>,
    /// Pinned: garbage collection never removes it.
    pub keep: bool,
    /// When it last changed phase (unix seconds).
    pub updated: i64,
    /// For a stable release: the Accepted payload it was promoted from.
    pub stable_of: Option<String>,
    /// For a stable release: the channels it is in.
    pub channels: Vec<String>,
}

impl PayloadRecord {
    /// An Accepted payload of the stream, not a stable release promoted from one.
    pub fn is_accepted_payload(&self) -> bool {
        self.phase == Phase::Accepted && self.stable_of.is_none()
    }

    /// What the lifecycle rules need of it.
    pub fn lifecycle(&self) -> crate::lifecycle::Payload {
        crate::lifecycle::Payload {
            name: self.name.clone(),
            phase: self.phase,
            created: self.created,
            hash: self.hash.clone(),
            keep: self.keep,
        }
    }
}

/// Whether a run is a user's verification job or a built-in check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A `verify:` entry.
    Job,
    /// A built-in check.
    Check,
}

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Going.
    Running,
    /// Passed.
    Succeeded,
    /// Nothing to run (an upgrade job with no payload to upgrade from); counts as passed, as the
    /// release controller treats it.
    Skipped,
    /// The command failed.
    Failed,
    /// The command outlived its timeout.
    TimedOut,
    /// The command could not run.
    Error,
    /// The controller stopped while it ran; not counted as an attempt.
    Interrupted,
}

impl RunState {
    /// The database's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Skipped => "skipped",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed-out",
            RunState::Error => "error",
            RunState::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> rusqlite::Result<RunState> {
        Ok(match s {
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "skipped" => RunState::Skipped,
            "failed" => RunState::Failed,
            "timed-out" => RunState::TimedOut,
            "error" => RunState::Error,
            "interrupted" => RunState::Interrupted,
            other => return Err(bad_value(format!("unknown run state '{other}'"))),
        })
    }

    /// How the lifecycle rules see a run that ended (or runs) at `at`; `None` for an interrupted
    /// one, which does not count.
    pub fn lifecycle(self, at: i64) -> Option<crate::lifecycle::Run> {
        use crate::lifecycle::Run;
        match self {
            RunState::Running => Some(Run::Running),
            RunState::Succeeded | RunState::Skipped => Some(Run::Succeeded(at)),
            RunState::Failed | RunState::TimedOut | RunState::Error => Some(Run::Failed(at)),
            RunState::Interrupted => None,
        }
    }
}

/// The JUnit results of a run, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TestCounts {
    /// Passed test cases.
    pub passed: usize,
    /// Failed test cases, by name (at most the first 20).
    pub failed: Vec<String>,
    /// How many failed in all.
    pub failures: usize,
    /// Skipped test cases.
    pub skipped: usize,
}

/// One attempt of a job or check against a payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    /// Row id; also the run's `BUILD_ID`.
    pub id: i64,
    /// The payload.
    pub payload: String,
    /// The `verify:` entry or check name.
    pub job: String,
    /// Job or check.
    pub kind: RunKind,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// How it stands.
    pub state: RunState,
    /// The upgrade source (`RELEASE_IMAGE_INITIAL`), for upgrade jobs.
    pub initial: Option<String>,
    /// Its directory in Prow's layout.
    pub dir: Option<String>,
    /// Started (unix seconds).
    pub started: i64,
    /// Finished (unix seconds).
    pub finished: Option<i64>,
    /// What happened, for failures, skips and checks.
    pub message: Option<String>,
    /// The JUnit results.
    pub tests: Option<TestCounts>,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Row id: the log's order.
    pub id: i64,
    /// When (unix seconds).
    pub at: i64,
    /// The stream.
    pub stream: String,
    /// The payload, if the event is about one.
    pub payload: Option<String>,
    /// `created`, `ready`, `failed`, `job-started`, `job-finished`, `accepted`, `rejected`,
    /// `override`, `removed`, `interrupted`, `push-failed`, ...
    pub kind: String,
    /// For people.
    pub message: String,
}

/// An upgrade edge between two stable releases and its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// The version upgraded from.
    pub from: String,
    /// The version upgraded to.
    pub to: String,
    /// Its upgrade runs, oldest first (into `to` or the payload it was promoted from).
    pub runs: Vec<UpgradeRun>,
    /// Blocked by hand: the graph serves it as a conditional edge with this risk.
    pub blocked: Option<Block>,
}

impl Edge {
    fn new(from: &str, to: &str) -> Edge {
        Edge {
            from: from.to_string(),
            to: to.to_string(),
            runs: Vec::new(),
            blocked: None,
        }
    }

    /// A run passed: the edge is in the graph (conditional if blocked).
    pub fn tested(&self) -> bool {
        self.runs.iter().any(|r| r.succeeded)
    }
}

/// One upgrade run of an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradeRun {
    /// The verification job.
    pub job: String,
    /// The run's id (its `BUILD_ID`).
    pub run: i64,
    /// Whether it passed.
    pub succeeded: bool,
    /// Its directory in Prow's layout.
    pub dir: Option<String>,
    /// When it finished (unix seconds).
    pub at: i64,
}

/// Why an edge is blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    /// The risk, for people.
    pub reason: String,
    /// A link about it (a bug).
    pub url: Option<String>,
    /// When it was blocked (unix seconds).
    pub at: i64,
}

/// Where a stable release was published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publication {
    /// `mirror`, `signature` or `tools`.
    pub kind: String,
    /// The release image's pull spec, the signature file, or the tools directory.
    pub location: String,
    /// One line on what was done.
    pub detail: String,
    /// When (seconds since the epoch).
    pub at: i64,
}

/// A new payload, as cut.
#[derive(Debug, Clone)]
pub struct NewPayload<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its stream.
    pub stream: &'a str,
    /// When it was cut.
    pub created: i64,
    /// The content hash.
    pub hash: &'a str,
    /// tag → digest.
    pub inputs: &'a BTreeMap<String, String>,
}

/// A run being started.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// The payload.
    pub payload: &'a str,
    /// The job or check.
    pub job: &'a str,
    /// Job or check.
    pub kind: RunKind,
    /// Attempt number (1-based).
    pub attempt: u32,
    /// Upgrade source.
    pub initial: Option<&'a str>,
    /// Prow directory.
    pub dir: Option<&'a str>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// The state (not Running).
    pub state: RunState,
    /// What happened.
    pub message: Option<String>,
    /// JUnit results.
    pub tests: Option<TestCounts>,
}

const PAYLOAD_COLUMNS: &str = "name, stream, phase, created, hash, inputs, digest, pull_spec, \
     reason, override, keep, updated, stable_of, channels";
const RUN_COLUMNS: &str =
    "id, payload, job, kind, attempt, state, initial, dir, started, finished, message, tests";

fn payload_row(r: &Row<'_>) -> rusqlite::Result<PayloadRecord> {
    let inputs: String = r.get(5)?;
    let over: Option<String> = r.get(9)?;
    let reason: Option<String> = r.get(8)?;
    let decided_by_hand = match over.as_deref() {
        Some("accepted") => Some(Override::Accept(reason.clone().unwrap_or_default())),
        Some("rejected") => Some(Override::Reject(reason.clone().unwrap_or_default())),
        _ => None,
    };
    Ok(PayloadRecord {
        name: r.get(0)?,
        stream: r.get(1)?,
        phase: Phase::parse(&r.get::<_, String>(2)?)?,
        created: r.get(3)?,
        hash: r.get(4)?,
        inputs: serde_json::from_str(&inputs).map_err(|e| bad_value(e.to_string()))?,
        digest: r.get(6)?,
        pull_spec: r.get(7)?,
        reason,
        decided_by_hand,
        keep: r.get::<_, i64>(10)? != 0,
        updated: r.get(11)?,
        stable_of: r.get(12)?,
        channels: match r.get::<_, Option<String>>(13)? {
            Some(c) => serde_json::from_str(&c).map_err(|e| bad_value(e.to_string()))?,
            None => Vec::new(),
        },
    })
}

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRecord> {
    let kind: String = r.get(3)?;
    let tests: Option<String> = r.get(11)?;
    Ok(RunRecord {
        id: r.get(0)?,
        payload: r.get(1)?,
        job: r.get(2)?,
        kind: if kind == "check" {
            RunKind::Check
        } else {
            RunKind::Job
        },
        attempt: r.get(4)?,
        state: RunState::parse(&r.get::<_, String>(5)?)?,
        initial: r.get(6)?,
        dir: r.get(7)?,
        started: r.get(8)?,
        finished: r.get(9)?,
        message: r.get(10)?,
        tests: tests
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| bad_value(e.to_string()))?,
    })
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        at: r.get(1)?,
        stream: r.get(2)?,
        payload: r.get(3)?,
        kind: r.get(4)?,
        message: r.get(5)?,
    })
}

fn log(
    tx: &rusqlite::Transaction<'_>,
    at: i64,
    stream: &str,
    payload: Option<&str>,
    kind: &str,
    message: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO release_events (at, stream, payload, kind, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![at, stream, payload, kind, message],
    )?;
    Ok(())
}

fn phase_of(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
) -> rusqlite::Result<Option<(Phase, String)>> {
    tx.query_row(
        "SELECT phase, stream FROM release_payloads WHERE name = ?1",
        [name],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )
    .optional()?
    .map(|(p, s)| Ok((Phase::parse(&p)?, s)))
    .transpose()
}

/// The release records of a state database.
pub struct Records<'a> {
    state: &'a State,
}

impl<'a> Records<'a> {
    /// The records in `state`.
    pub fn new(state: &'a State) -> Records<'a> {
        Records { state }
    }

    /// A stream's payloads, newest first.
    pub fn payloads(&self, stream: &str) -> Result<Vec<PayloadRecord>, StateError> {
        self.state.query(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {PAYLOAD_COLUMNS} FROM release_payloads WHERE stream = ?1 \
                 ORDER BY created DESC, name DESC"
            ))?;
            let rows = s.query_map([stream], payload_row)?;
            rows.collect()
        })
    }

    /// One payload.
    pub fn payload(&self, name: &str) -> Result<Option<PayloadRecord>, StateError> {
        self.state.query(|c| {
            c.query_row(
                &format!("SELECT {PAYLOAD_COLUMNS} FROM release_payloads WHERE name = ?1"),
                [name],
                payload_row,
            )
            .optional()
        })
    }

    /// A payload's runs, oldest first.
    pub fn runs(&self, payload: &str) -> Result<Vec<RunRecord>, StateError> {
        self.state.query(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM release_runs WHERE payload = ?1 ORDER BY id"
            ))?;
            let rows = s.query_map([payload], run_row)?;
            rows.collect()
        })
    }

    /// The event log, newest first: of one payload, or of one stream, or all.
    pub fn events(
        &self,
        stream: Option<&str>,
        payload: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>, StateError> {
        self.state.query(|c| {
            let mut s = c.prepare_cached(
                "SELECT id, at, stream, payload, kind, message FROM release_events \
                 WHERE (?1 IS NULL OR stream = ?1) AND (?2 IS NULL OR payload = ?2) \
                 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = s.query_map(params![stream, payload, limit as i64], event_row)?;
            rows.collect()
        })
    }

    /// Cut a payload: a Pending row and its `created` event. False when it exists already.
    pub fn create(&self, p: &NewPayload<'_>) -> Result<bool, StateError> {
        let inputs = serde_json::to_string(p.inputs).expect("a string map serialises");
        self.state.transaction(|tx| {
            let n = tx.execute(
                "INSERT INTO release_payloads (name, stream, phase, created, hash, inputs, updated) \
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?3) ON CONFLICT (name) DO NOTHING",
                params![p.name, p.stream, p.created, p.hash, inputs],
            )?;
            if n == 1 {
                log(
                    tx,
                    p.created,
                    p.stream,
                    Some(p.name),
                    "created",
                    &format!("cut from {} images of {}", p.inputs.len(), p.stream),
                )?;
            }
            Ok(n == 1)
        })
    }

    /// Records a stable release: `stable`, pushed as `pull_spec`, promoted from the Accepted
    /// payload `from` (an Accepted payload of `from`'s stream, kept forever), with its `promoted`
    /// event on both. False, changing nothing, when `stable` exists already.
    pub fn promote(
        &self,
        from: &PayloadRecord,
        stable: &str,
        digest: &str,
        pull_spec: &str,
        channels: &[String],
        now: i64,
    ) -> Result<bool, StateError> {
        let inputs = serde_json::to_string(&from.inputs).expect("a string map serialises");
        let channels = serde_json::to_string(channels).expect("strings serialise");
        self.state.transaction(|tx| {
            let n = tx.execute(
                "INSERT INTO release_payloads (name, stream, phase, created, hash, inputs, digest, \
                 pull_spec, keep, updated, stable_of, channels) \
                 VALUES (?1, ?2, 'accepted', ?3, ?4, ?5, ?6, ?7, 1, ?3, ?8, ?9) \
                 ON CONFLICT (name) DO NOTHING",
                params![
                    stable,
                    from.stream,
                    now,
                    from.hash,
                    inputs,
                    digest,
                    pull_spec,
                    from.name,
                    channels
                ],
            )?;
            if n == 1 {
                log(
                    tx,
                    now,
                    &from.stream,
                    Some(stable),
                    "promoted",
                    &format!(
                        "stable release promoted from {}, pushed as {pull_spec}",
                        from.name
                    ),
                )?;
                log(
                    tx,
                    now,
                    &from.stream,
                    Some(&from.name),
                    "promoted",
                    &format!("promoted as the stable release {stable}"),
                )?;
            }
            Ok(n == 1)
        })
    }

    /// Pending → Ready, with where it was pushed.
    pub fn ready(
        &self,
        name: &str,
        digest: &str,
        pull_spec: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        self.state.transaction(|tx| {
            let Some((Phase::Pending, stream)) = phase_of(tx, name)? else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE release_payloads SET phase = 'ready', digest = ?2, pull_spec = ?3, \
                 updated = ?4 WHERE name = ?1",
                params![name, digest, pull_spec, now],
            )?;
            log(
                tx,
                now,
                &stream,
                Some(name),
                "ready",
                &format!("pushed as {pull_spec}"),
            )?;
            Ok(true)
        })
    }

    /// Pending → Failed: creation failed.
    pub fn fail(&self, name: &str, reason: &str, now: i64) -> Result<bool, StateError> {
        self.state.transaction(|tx| {
            let Some((Phase::Pending, stream)) = phase_of(tx, name)? else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE release_payloads SET phase = 'failed', reason = ?2, updated = ?3 WHERE name = ?1",
                params![name, reason, now],
            )?;
            log(tx, now, &stream, Some(name), "failed", reason)?;
            Ok(true)
        })
    }

    /// Ready → Accepted or Rejected, by the verification's verdict.
    pub fn decide(
        &self,
        name: &str,
        accept: bool,
        reason: &str,
        now: i64,
    ) -> Result<bool, StateError> {
        let (phase, kind) = if accept {
            (Phase::Accepted, "accepted")
        } else {
            (Phase::Rejected, "rejected")
        };
        self.state.transaction(|tx| {
            let Some((Phase::Ready, stream)) = phase_of(tx, name)? else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE release_payloads SET phase = ?2, reason = ?3, updated = ?4 WHERE name = ?1",
                params![name, phase.as_str(), (!accept).then_some(reason), now],
            )?;
            log(tx, now, &stream, Some(name), kind, reason)?;
            Ok(true)
        })
    }

    /// A manual decision (`release accept|reject`): recorded as an override, and the phase set to
    /// it at once. Returns the phase it had.
    pub fn decide_by_hand(
        &self,
        name: &str,
        decision: &Override,
        now: i64,
    ) -> Result<Phase, RecordError> {
        let (phase, over, reason) = match decision {
            Override::Accept(r) => (Phase::Accepted, "accepted", r),
            Override::Reject(r) => (Phase::Rejected, "rejected", r),
        };
        let result = self.state.transaction(|tx| {
            let Some((before, stream)) = phase_of(tx, name)? else {
                return Ok(Err(RecordError::NoSuchPayload(name.to_string())));
            };
            if matches!(before, Phase::Pending | Phase::Failed) {
                return Ok(Err(RecordError::CannotOverride {
                    name: name.to_string(),
                    phase: before,
                }));
            }
            tx.execute(
                "UPDATE release_payloads SET phase = ?2, override = ?3, reason = ?4, updated = ?5 \
                 WHERE name = ?1",
                params![name, phase.as_str(), over, reason, now],
            )?;
            log(
                tx,
                now,
                &stream,
                Some(name),
                "override",
                &format!("{before} → {phase} by hand: {reason}"),
            )?;
            Ok(Ok(before))
        })?;
        result
    }

    /// Start a run: false if this attempt was started before.
    pub fn start_run(&self, run: &NewRun<'_>, now: i64) -> Result<Option<i64>, StateError> {
        self.state.transaction(|tx| {
            let Some((_, stream)) = phase_of(tx, run.payload)? else {
                return Ok(None);
            };
            let n = tx.execute(
                "INSERT INTO release_runs (payload, job, kind, attempt, state, initial, dir, started) \
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7) \
                 ON CONFLICT (payload, job, attempt) DO NOTHING",
                params![
                    run.payload,
                    run.job,
                    match run.kind {
                        RunKind::Job => "job",
                        RunKind::Check => "check",
                    },
                    run.attempt,
                    run.initial,
                    run.dir,
                    now
                ],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let id = tx.last_insert_rowid();
            let what = match run.initial {
                Some(from) => format!("{} attempt {} (upgrade from {from})", run.job, run.attempt),
                None => format!("{} attempt {}", run.job, run.attempt),
            };
            log(tx, now, &stream, Some(run.payload), "run-started", &what)?;
            Ok(Some(id))
        })
    }

    /// Finish a running run; false if it was not running (finished or interrupted before).
    pub fn finish_run(&self, id: i64, end: &RunEnd, now: i64) -> Result<bool, StateError> {
        let tests = end
            .tests
            .as_ref()
            .map(|t| serde_json::to_string(t).expect("counts serialise"));
        self.state.transaction(|tx| {
            type Row = (String, String, u32, String, Option<String>, Option<String>);
            let row: Option<Row> = tx
                .query_row(
                    "SELECT r.payload, r.job, r.attempt, p.stream, r.initial, r.dir \
                     FROM release_runs r JOIN release_payloads p ON p.name = r.payload \
                     WHERE r.id = ?1 AND r.state = 'running'",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .optional()?;
            let Some((payload, job, attempt, stream, initial, dir)) = row else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE release_runs SET state = ?2, finished = ?3, message = ?4, tests = ?5 \
                 WHERE id = ?1",
                params![id, end.state.as_str(), now, end.message, tests],
            )?;
            // An upgrade run from a recorded payload or stable release is evidence for its edge.
            let counts = match end.state {
                RunState::Succeeded => Some(true),
                RunState::Failed | RunState::TimedOut | RunState::Error => Some(false),
                _ => None,
            };
            if let (Some(spec), Some(succeeded)) = (initial, counts) {
                let from: Option<String> = tx
                    .query_row(
                        "SELECT name FROM release_payloads WHERE pull_spec = ?1 \
                         ORDER BY stable_of IS NULL LIMIT 1",
                        [&spec],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(from) = from {
                    tx.execute(
                        "INSERT INTO release_upgrades (from_name, to_name, job, run_id, succeeded, dir, at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run_id) DO NOTHING",
                        params![from, payload, job, id, succeeded as i64, dir.map(|d| format!("{d}/{id}")), now],
                    )?;
                }
            }
            let mut what = format!("{job} attempt {attempt}: {}", end.state.as_str());
            if let Some(m) = &end.message {
                what.push_str(&format!(" ({m})"));
            }
            log(tx, now, &stream, Some(&payload), "run-finished", &what)?;
            Ok(true)
        })
    }

    /// The upgrade edges between stable releases, by (from, to) version: an upgrade run into a
    /// payload counts for the stable releases promoted from it. Edges blocked by hand are listed
    /// even without runs.
    pub fn edges(&self) -> Result<Vec<Edge>, StateError> {
        self.state.query(|c| {
            let mut stable_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut stable = std::collections::BTreeSet::new();
            let mut s = c.prepare_cached(
                "SELECT name, stable_of FROM release_payloads WHERE stable_of IS NOT NULL",
            )?;
            for row in s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                let (name, of) = row?;
                stable.insert(name.clone());
                stable_of.entry(of).or_default().push(name);
            }
            let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
            let mut s = c.prepare_cached(
                "SELECT from_name, to_name, job, run_id, succeeded, dir, at FROM release_upgrades ORDER BY id",
            )?;
            let rows = s.query_map([], upgrade_row)?;
            for row in rows {
                let (from, to, run) = row?;
                if !stable.contains(&from) {
                    continue;
                }
                let tos: Vec<String> = if stable.contains(&to) {
                    vec![to]
                } else {
                    stable_of.get(&to).cloned().unwrap_or_default()
                };
                for to in tos {
                    edges
                        .entry((from.clone(), to.clone()))
                        .or_insert_with(|| Edge::new(&from, &to))
                        .runs
                        .push(run.clone());
                }
            }
            let mut s = c.prepare_cached(
                "SELECT from_name, to_name, reason, url, at FROM release_edge_blocks",
            )?;
            let rows = s.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    Block {
                        reason: r.get(2)?,
                        url: r.get(3)?,
                        at: r.get(4)?,
                    },
                ))
            })?;
            for row in rows {
                let (from, to, block) = row?;
                edges
                    .entry((from.clone(), to.clone()))
                    .or_insert_with(|| Edge::new(&from, &to))
                    .blocked = Some(block);
            }
            Ok(edges.into_values().collect())
        })
    }

    /// The stable releases that an upgrade run into payload `to` upgraded from successfully.
    pub fn upgraded_from_stable(&self, to: &str) -> Result<Vec<String>, StateError> {
        self.state.query(|c| {
            let mut s = c.prepare_cached(
                "SELECT DISTINCT u.from_name FROM release_upgrades u \
                 JOIN release_payloads s ON s.name = u.from_name AND s.stable_of IS NOT NULL \
                 WHERE u.to_name = ?1 AND u.succeeded = 1",
            )?;
            let rows = s.query_map([to], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Records why `stream`'s promotion did or did not happen on this pass (see
    /// [`Records::promotion_status`]); the time is kept while the status stays the same.
    pub fn set_promotion_status(
        &self,
        stream: &str,
        status: &str,
        now: i64,
    ) -> Result<(), StateError> {
        self.state.transaction(|tx| {
            tx.execute(
                "INSERT INTO release_promotion_status (stream, status, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (stream) DO UPDATE SET status = ?2, at = ?3 WHERE status != ?2",
                params![stream, status, now],
            )?;
            Ok(())
        })
    }

    /// The promotion status of `stream` as of the last controller pass ("promoted X as Y", "next
    /// due T", "due; nothing qualifies: …"), and since when it has been so.
    pub fn promotion_status(&self, stream: &str) -> Result<Option<(String, i64)>, StateError> {
        self.state.query(|c| {
            c.query_row(
                "SELECT status, at FROM release_promotion_status WHERE stream = ?1",
                [stream],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    /// Record that stable release `payload` was published as `kind` (`mirror`, `signature`,
    /// `tools`) at `location`, with a one-line `detail`; publishing again replaces the record.
    pub fn published(
        &self,
        p: &PayloadRecord,
        kind: &str,
        location: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), StateError> {
        self.state.transaction(|tx| {
            tx.execute(
                "INSERT INTO release_publications (payload, kind, location, detail, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (payload, kind) DO UPDATE \
                 SET location = ?3, detail = ?4, at = ?5",
                params![p.name, kind, location, detail, now],
            )?;
            log(
                tx,
                now,
                &p.stream,
                Some(&p.name),
                &format!("published-{kind}"),
                &format!("{location}: {detail}"),
            )
        })
    }

    /// Where `payload` was published, in the order of [`Records::published`]'s kinds.
    pub fn publications(&self, payload: &str) -> Result<Vec<Publication>, StateError> {
        self.state.query(|c| {
            let mut s = c.prepare_cached(
                "SELECT kind, location, detail, at FROM release_publications WHERE payload = ?1 \
                 ORDER BY CASE kind WHEN 'mirror' THEN 0 WHEN 'signature' THEN 1 ELSE 2 END, kind",
            )?;
            let rows = s.query_map([payload], |r| {
                Ok(Publication {
                    kind: r.get(0)?,
                    location: r.get(1)?,
                    detail: r.get(2)?,
                    at: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The recorded upgrade runs from or into `name` (a payload or stable release), as
    /// (from, to, run), oldest first.
    pub fn upgrades_of(&self, name: &str) -> Result<Vec<(String, String, UpgradeRun)>, StateError> {
        self.state.query(|c| {
            let mut s = c.prepare_cached(
                "SELECT from_name, to_name, job, run_id, succeeded, dir, at FROM release_upgrades \
                 WHERE from_name = ?1 OR to_name = ?1 ORDER BY id",
            )?;
            let rows = s.query_map([name], upgrade_row)?;
            rows.collect()
        })
    }

    /// Blocks the upgrade edge `from` → `to` by hand (the update graph keeps it as a conditional
    /// edge with this risk), or with `None` unblocks it. False when nothing changed.
    pub fn block_edge(
        &self,
        from: &str,
        to: &str,
        block: Option<(&str, Option<&str>)>,
        now: i64,
    ) -> Result<bool, StateError> {
        self.state.transaction(|tx| {
            let stream: Option<String> = tx
                .query_row(
                    "SELECT stream FROM release_payloads WHERE name = ?1",
                    [to],
                    |r| r.get(0),
                )
                .optional()?;
            let n = match block {
                Some((reason, url)) => tx.execute(
                    "INSERT INTO release_edge_blocks (from_name, to_name, reason, url, at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (from_name, to_name) DO UPDATE SET \
                     reason = excluded.reason, url = excluded.url, at = excluded.at",
                    params![from, to, reason, url, now],
                )?,
                None => tx.execute(
                    "DELETE FROM release_edge_blocks WHERE from_name = ?1 AND to_name = ?2",
                    [from, to],
                )?,
            };
            if n > 0 {
                let what = match block {
                    Some((reason, _)) => format!("upgrade edge {from} → {to} blocked: {reason}"),
                    None => format!("upgrade edge {from} → {to} unblocked"),
                };
                let kind = if block.is_some() {
                    "edge-blocked"
                } else {
                    "edge-unblocked"
                };
                log(
                    tx,
                    now,
                    stream.as_deref().unwrap_or(""),
                    Some(to),
                    kind,
                    &what,
                )?;
            }
            Ok(n > 0)
        })
    }

    /// Runs that are recorded as running.
    pub fn running(&self) -> Result<Vec<RunRecord>, StateError> {
        self.state.query(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM release_runs WHERE state = 'running' ORDER BY id"
            ))?;
            let rows = s.query_map([], run_row)?;
            rows.collect()
        })
    }

    /// Mark a run that no live controller runs as interrupted.
    pub fn interrupt(&self, id: i64, now: i64) -> Result<bool, StateError> {
        self.finish_run(
            id,
            &RunEnd {
                state: RunState::Interrupted,
                message: Some("the controller stopped while it ran; it runs again".into()),
                tests: None,
            },
            now,
        )
    }

    /// Log an event that changes no record (a problem, a decision not to act).
    pub fn note(
        &self,
        stream: &str,
        payload: Option<&str>,
        kind: &str,
        message: &str,
        now: i64,
    ) -> Result<(), StateError> {
        self.state
            .transaction(|tx| log(tx, now, stream, payload, kind, message))
    }

    /// How many events of `kind` a payload has.
    pub fn count_events(&self, payload: &str, kind: &str) -> Result<usize, StateError> {
        self.state.query(|c| {
            c.query_row(
                "SELECT count(*) FROM release_events WHERE payload = ?1 AND kind = ?2",
                [payload, kind],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
        })
    }

    /// Remove a payload (garbage collection) with its runs; the event log keeps its history.
    pub fn remove(&self, name: &str, why: &str, now: i64) -> Result<bool, StateError> {
        self.state.transaction(|tx| {
            let Some((_, stream)) = phase_of(tx, name)? else {
                return Ok(false);
            };
            tx.execute("DELETE FROM release_payloads WHERE name = ?1", [name])?;
            log(tx, now, &stream, Some(name), "removed", why)?;
            Ok(true)
        })
    }

    /// Pin a payload so garbage collection keeps it, or unpin it.
    pub fn keep(&self, name: &str, keep: bool, now: i64) -> Result<bool, StateError> {
        self.state.transaction(|tx| {
            let Some((_, stream)) = phase_of(tx, name)? else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE release_payloads SET keep = ?2 WHERE name = ?1",
                params![name, keep as i64],
            )?;
            let what = if keep { "pinned" } else { "unpinned" };
            log(tx, now, &stream, Some(name), what, what)?;
            Ok(true)
        })
    }

    /// The id of the newest event (0 with none): every change of the records logs one, so the
    /// records changed exactly when this did (the update graph recomputes on that).
    pub fn last_event(&self) -> Result<i64, StateError> {
        self.state.query(|c| {
            c.query_row("SELECT coalesce(max(id), 0) FROM release_events", [], |r| {
                r.get(0)
            })
        })
    }
}
