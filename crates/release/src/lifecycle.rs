//! The payload lifecycle's decisions, as pure functions of the stream's payloads, their verification
//! runs and the time (given, never read): when to cut a payload, which job to (re)launch and when,
//! whether a payload is accepted or rejected, and which payloads garbage collection removes. The
//! controller stores the facts and carries the decisions out; everything here follows
//! `specs/release-controller.md` §2.1, §2.3, §2.4 and §2.7.
//!
//! ```text
//!              create ok              every blocking job succeeded (or override)
//!  Pending ─────────────────► Ready ─────────────────────────────────────────► Accepted
//!     │                         │
//!     │ creation failed         │ a blocking job failed 1 + max_retries times (or override)
//!     ▼                         ▼
//!   Failed                   Rejected
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use build::config::Release;

/// Where a payload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Cut, not pushed yet.
    Pending,
    /// Pushed; verification runs.
    Ready,
    /// Every blocking job passed, or accepted by hand.
    Accepted,
    /// A blocking job failed for good, or rejected by hand.
    Rejected,
    /// Creation failed.
    Failed,
}

impl Phase {
    /// Pending and Ready payloads count against `max_unready`.
    pub fn unready(self) -> bool {
        matches!(self, Phase::Pending | Phase::Ready)
    }
}

/// What the lifecycle needs to know of a payload.
#[derive(Debug, Clone)]
pub struct Payload {
    /// `<prefix>-<UTC YYYY-MM-DD-HHMMSS>`.
    pub name: String,
    /// Its phase.
    pub phase: Phase,
    /// When it was cut (unix seconds).
    pub created: i64,
    /// The stream content hash it snapshots.
    pub hash: String,
    /// Pinned: garbage collection never removes it.
    pub keep: bool,
}

/// One run of a verification job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Launched, not finished.
    Running,
    /// Finished successfully at (unix seconds).
    Succeeded(i64),
    /// Finished unsuccessfully (failed, timed out, could not start) at (unix seconds).
    Failed(i64),
}

/// The name of a payload cut at `now` (unix seconds): `<prefix>-<UTC YYYY-MM-DD-HHMMSS>`.
pub fn payload_name(prefix: &str, now: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{prefix}-{}", payload::new::name_stamp(t))
}

/// Whether to cut a payload now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creation {
    /// Cut one now.
    Create,
    /// A payload of this content exists already.
    Unchanged,
    /// Not before this time (unix seconds): `min_interval` since the newest payload.
    WaitUntil(i64),
    /// Not while this holds (a payload is Pending, or `max_unready` are unready).
    Blocked(String),
}

/// The creation rules (§2.1): a new content hash, no Pending payload, fewer than `max_unready`
/// unready ones, and `min_interval` since the newest.
pub fn creation(release: &Release, payloads: &[Payload], hash: &str, now: i64) -> Creation {
    if payloads.iter().any(|p| p.hash == hash) {
        return Creation::Unchanged;
    }
    if let Some(p) = payloads.iter().find(|p| p.phase == Phase::Pending) {
        return Creation::Blocked(format!("{} is still being created", p.name));
    }
    let unready = payloads.iter().filter(|p| p.phase.unready()).count();
    if release.max_unready > 0 && unready >= release.max_unready as usize {
        return Creation::Blocked(format!(
            "{unready} payload(s) await verification (max_unready: {})",
            release.max_unready
        ));
    }
    if let Some(newest) = payloads.iter().map(|p| p.created).max() {
        let at = newest + release.min_interval.as_secs() as i64;
        if at > now {
            return Creation::WaitUntil(at);
        }
    }
    Creation::Create
}

/// Where one job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// A run succeeded.
    Succeeded,
    /// `1 + max_retries` runs failed.
    Failed,
    /// A run is going.
    Running,
    /// Launch (again) at this time (unix seconds).
    LaunchAt(i64),
}

/// The backoff before relaunching after `failures` failed runs: 1 min × 2^(failures−1), at most
/// 15 min (§2.3).
pub fn backoff(failures: u32) -> Duration {
    let minutes = 1u64 << failures.saturating_sub(1).min(4);
    Duration::from_secs((minutes * 60).min(15 * 60))
}

/// A job's status from its runs (oldest first), given its `max_retries` (§2.3, §2.4).
pub fn job_status(runs: &[Run], max_retries: u32, now: i64) -> JobStatus {
    if runs.iter().any(|r| matches!(r, Run::Succeeded(_))) {
        return JobStatus::Succeeded;
    }
    if runs.iter().any(|r| matches!(r, Run::Running)) {
        return JobStatus::Running;
    }
    let failures = runs.len() as u32;
    if failures > max_retries {
        return JobStatus::Failed;
    }
    match runs.last() {
        Some(Run::Failed(at)) => JobStatus::LaunchAt(at + backoff(failures).as_secs() as i64),
        _ => JobStatus::LaunchAt(now),
    }
}

/// What a payload's verification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accept it.
    Accept,
    /// Reject it, for this reason.
    Reject(String),
    /// Not yet.
    Wait,
}

/// A manual decision, which wins over the jobs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "reason")]
pub enum Override {
    /// `release accept`.
    Accept(String),
    /// `release reject`.
    Reject(String),
}

/// Something a payload must pass, or may fail: a verification job or a built-in check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The `verify:` entry or the check.
    pub name: String,
    /// Informing only: never rejects.
    pub optional: bool,
    /// Relaunches after a failure before it counts as failed.
    pub max_retries: u32,
}

/// The gates of a stream's `verify:` jobs, in file order.
pub fn job_gates(release: &Release) -> Vec<Gate> {
    release
        .verify
        .iter()
        .map(|(name, job)| Gate {
            name: name.clone(),
            optional: job.optional,
            max_retries: job.max_retries,
        })
        .collect()
}

/// The verdict on a Ready payload (§2.4): an override wins; otherwise every blocking gate must
/// succeed, and one that failed for good rejects. With no blocking gate, every optional one must
/// have finished. `runs` has the runs of each gate (absent: none yet).
pub fn verdict(
    gates: &[Gate],
    runs: &BTreeMap<String, Vec<Run>>,
    manual: Option<&Override>,
    now: i64,
) -> Verdict {
    match manual {
        Some(Override::Accept(_)) => return Verdict::Accept,
        Some(Override::Reject(reason)) => {
            return Verdict::Reject(format!("rejected by hand: {reason}"))
        }
        None => {}
    }
    let status = |name: &str, max_retries| {
        job_status(
            runs.get(name).map_or(&[][..], Vec::as_slice),
            max_retries,
            now,
        )
    };
    let mut blocking = 0;
    let mut waiting = false;
    for gate in gates {
        let s = status(&gate.name, gate.max_retries);
        if gate.optional {
            continue;
        }
        blocking += 1;
        match s {
            JobStatus::Failed => {
                return Verdict::Reject(format!(
                    "{} failed {} time(s)",
                    gate.name,
                    1 + gate.max_retries
                ))
            }
            JobStatus::Succeeded => {}
            JobStatus::Running | JobStatus::LaunchAt(_) => waiting = true,
        }
    }
    if waiting {
        return Verdict::Wait;
    }
    if blocking == 0 {
        let all_done = gates.iter().all(|gate| {
            matches!(
                status(&gate.name, gate.max_retries),
                JobStatus::Succeeded | JobStatus::Failed
            )
        });
        if !all_done {
            return Verdict::Wait;
        }
    }
    Verdict::Accept
}

/// How many Accepted, Rejected and Failed payloads garbage collection always keeps.
pub const KEEP: usize = 5;

/// The payloads garbage collection removes (§2.7), newest first: never pinned ones or unready ones;
/// Failed and Rejected ones older than the oldest Accepted one, and beyond the newest [`KEEP`] of
/// each; Accepted ones beyond the newest [`KEEP`] once older than `expires` (never without it).
pub fn garbage(payloads: &[Payload], expires: Option<Duration>, now: i64) -> Vec<String> {
    let mut sorted: Vec<&Payload> = payloads.iter().collect();
    sorted.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    let oldest_accepted = sorted
        .iter()
        .filter(|p| p.phase == Phase::Accepted)
        .map(|p| p.created)
        .min();
    let mut seen: BTreeMap<Phase, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for p in sorted {
        if p.keep || p.phase.unready() {
            continue;
        }
        let n = seen.entry(p.phase).or_default();
        *n += 1;
        let remove = match p.phase {
            Phase::Accepted => {
                *n > KEEP && expires.is_some_and(|e| p.created + e.as_secs() as i64 <= now)
            }
            Phase::Failed | Phase::Rejected => {
                *n > KEEP || oldest_accepted.is_some_and(|oldest| p.created < oldest)
            }
            Phase::Pending | Phase::Ready => false,
        };
        if remove {
            out.push(p.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use build::config::Verify;
    use indexmap::IndexMap;

    const T0: i64 = 1_795_478_400; // 2026-11-24T00:00:00Z

    fn release(max_unready: u32, min_interval: u64, jobs: &[(&str, bool, u32)]) -> Release {
        Release {
            name: "4.17.0-0.okd-scos".into(),
            max_unready,
            min_interval: Duration::from_secs(min_interval),
            expires: None,
            verify: jobs
                .iter()
                .map(|(name, optional, max_retries)| {
                    (
                        name.to_string(),
                        Verify {
                            command: vec!["true".into()],
                            image: None,
                            env: BTreeMap::new(),
                            optional: *optional,
                            upgrade_from: None,
                            max_retries: *max_retries,
                            timeout: Duration::from_secs(60),
                            leases: Vec::new(),
                        },
                    )
                })
                .collect::<IndexMap<_, _>>(),
            checks: Default::default(),
            publish: Default::default(),
            promote: None,
        }
    }

    fn payload(name: &str, phase: Phase, created: i64, hash: &str) -> Payload {
        Payload {
            name: name.into(),
            phase,
            created,
            hash: hash.into(),
            keep: false,
        }
    }

    #[test]
    fn names_are_the_prefix_and_the_utc_time() {
        assert_eq!(
            payload_name("4.17.0-0.okd-scos", T0 + 12 * 3600 + 34 * 60 + 56),
            "4.17.0-0.okd-scos-2026-11-24-123456"
        );
    }

    #[test]
    fn creation_rules() {
        let r = release(1, 3600, &[]);
        assert_eq!(creation(&r, &[], "h1", T0), Creation::Create);
        let accepted = payload("a", Phase::Accepted, T0, "h1");
        assert_eq!(
            creation(&r, std::slice::from_ref(&accepted), "h1", T0 + 9999),
            Creation::Unchanged
        );
        assert_eq!(
            creation(&r, std::slice::from_ref(&accepted), "h2", T0 + 60),
            Creation::WaitUntil(T0 + 3600)
        );
        assert_eq!(
            creation(&r, std::slice::from_ref(&accepted), "h2", T0 + 3600),
            Creation::Create
        );
        let ready = payload("b", Phase::Ready, T0, "h1");
        assert_eq!(
            creation(&r, std::slice::from_ref(&ready), "h2", T0 + 3600),
            Creation::Blocked("1 payload(s) await verification (max_unready: 1)".into())
        );
        assert_eq!(
            creation(&release(0, 0, &[]), &[ready], "h2", T0),
            Creation::Create,
            "0: no limit"
        );
        let pending = payload("c", Phase::Pending, T0, "h1");
        assert_eq!(
            creation(&release(0, 0, &[]), &[pending], "h2", T0 + 10),
            Creation::Blocked("c is still being created".into())
        );
    }

    #[test]
    fn retries_back_off_then_the_job_fails() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(4), Duration::from_secs(480));
        assert_eq!(backoff(5), Duration::from_secs(900));
        assert_eq!(backoff(30), Duration::from_secs(900));
        assert_eq!(job_status(&[], 2, T0), JobStatus::LaunchAt(T0));
        assert_eq!(job_status(&[Run::Running], 2, T0), JobStatus::Running);
        assert_eq!(
            job_status(&[Run::Failed(T0)], 2, T0 + 5),
            JobStatus::LaunchAt(T0 + 60)
        );
        assert_eq!(
            job_status(&[Run::Failed(T0), Run::Failed(T0 + 100)], 2, T0 + 101),
            JobStatus::LaunchAt(T0 + 220)
        );
        let three = [Run::Failed(T0), Run::Failed(T0 + 1), Run::Failed(T0 + 2)];
        assert_eq!(job_status(&three, 2, T0 + 3), JobStatus::Failed);
        assert_eq!(
            job_status(&[Run::Failed(T0), Run::Succeeded(T0 + 9)], 0, T0),
            JobStatus::Succeeded
        );
    }

    #[test]
    fn verdicts() {
        let r = release(0, 0, &[("e2e", false, 1), ("upgrade", true, 0)]);
        let runs = |e2e: &[Run], upgrade: &[Run]| {
            BTreeMap::from([
                ("e2e".to_string(), e2e.to_vec()),
                ("upgrade".to_string(), upgrade.to_vec()),
            ])
        };
        assert_eq!(
            verdict(&job_gates(&r), &BTreeMap::new(), None, T0),
            Verdict::Wait
        );
        assert_eq!(
            verdict(&job_gates(&r), &runs(&[Run::Succeeded(T0)], &[]), None, T0),
            Verdict::Accept,
            "optional jobs do not hold it back"
        );
        assert_eq!(
            verdict(&job_gates(&r), &runs(&[Run::Failed(T0)], &[]), None, T0),
            Verdict::Wait,
            "a retry is due"
        );
        assert_eq!(
            verdict(
                &job_gates(&r),
                &runs(
                    &[Run::Failed(T0), Run::Failed(T0 + 1)],
                    &[Run::Succeeded(T0)]
                ),
                None,
                T0
            ),
            Verdict::Reject("e2e failed 2 time(s)".into())
        );
        assert_eq!(
            verdict(
                &job_gates(&r),
                &runs(&[Run::Succeeded(T0)], &[Run::Failed(T0)]),
                None,
                T0
            ),
            Verdict::Accept,
            "a failed optional job never rejects"
        );
        // Overrides win over the jobs.
        let failed = runs(&[Run::Failed(T0), Run::Failed(T0 + 1)], &[]);
        assert_eq!(
            verdict(
                &job_gates(&r),
                &failed,
                Some(&Override::Accept("known flake".into())),
                T0
            ),
            Verdict::Accept
        );
        assert_eq!(
            verdict(
                &job_gates(&r),
                &runs(&[Run::Succeeded(T0)], &[]),
                Some(&Override::Reject("bad kernel".into())),
                T0
            ),
            Verdict::Reject("rejected by hand: bad kernel".into())
        );
        // Only optional jobs: every one must have finished.
        let informing = release(0, 0, &[("upgrade", true, 0)]);
        assert_eq!(
            verdict(&job_gates(&informing), &BTreeMap::new(), None, T0),
            Verdict::Wait
        );
        let done = BTreeMap::from([("upgrade".to_string(), vec![Run::Failed(T0)])]);
        assert_eq!(
            verdict(&job_gates(&informing), &done, None, T0),
            Verdict::Accept
        );
        assert_eq!(
            verdict(&job_gates(&release(0, 0, &[])), &BTreeMap::new(), None, T0),
            Verdict::Accept,
            "no jobs"
        );
    }

    #[test]
    fn garbage_collection_rules() {
        let day = 86_400;
        let mut all = Vec::new();
        // Seven Accepted payloads, one a day; the oldest is pinned.
        for i in 0..7 {
            all.push(payload(
                &format!("a{i}"),
                Phase::Accepted,
                T0 + i * day,
                "h",
            ));
        }
        all[0].keep = true;
        // A Rejected one older than the oldest Accepted, and seven newer Rejected ones.
        all.push(payload("r-old", Phase::Rejected, T0 - day, "h"));
        for i in 0..7 {
            all.push(payload(
                &format!("r{i}"),
                Phase::Rejected,
                T0 + i * day + 1,
                "h",
            ));
        }
        all.push(payload("ready", Phase::Ready, T0 - 9 * day, "h"));
        let now = T0 + 10 * day;
        // Without `expires`, Accepted payloads stay.
        let mut gone = garbage(&all, None, now);
        gone.sort();
        assert_eq!(gone, ["r-old", "r0", "r1"]);
        // With 72h: Accepted beyond the newest five and older than 72h go (a0 is pinned).
        let mut gone = garbage(&all, Some(Duration::from_secs(3 * day as u64)), now);
        gone.sort();
        assert_eq!(gone, ["a1", "r-old", "r0", "r1"]);
        // Young enough: kept even beyond five.
        assert!(
            !garbage(&all, Some(Duration::from_secs(30 * day as u64)), now)
                .contains(&"a1".to_string())
        );
    }
}
