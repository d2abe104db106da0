//! The release-controller's JSON API (`../shared/specs/release-controller.md` §3.2), with its
//! paths, field names and shapes, over okd-forge's records.
//!
//! A release stream is named by its release-controller name, the payload prefix
//! (`4.17.0-0.okd-scos`), or by its okd-forge stream name (`okd-scos-4.17`); its tags are its
//! payloads. The stable releases of every stream are the tags of one more release stream,
//! [`STABLE`] (as the release-controller keeps them in a stream of their own, `4-stable`).
//!
//! | path | answer |
//! |---|---|
//! | `/api/v1/releasestream/{s}/latest?in=&rel=&prefix=&format=` | the newest Accepted tag |
//! | `/api/v1/releasestream/{s}/tags?phase=…` | `{name, tags: [APITag]}`, newest first |
//! | `/api/v1/releasestream/{s}/release/{tag}` | phase, job results, upgrades from and to |
//! | `/api/v1/releasestream/{s}/candidate` | the next promotion's candidate, and why promotion stands as it does |
//! | `/api/v1/releasestream/{s}/config?jobType=` | the stream's `ReleaseConfig`, or one kind of its jobs |
//! | `/api/v1/releasestreams/{accepted,rejected,ready,all}` | `{stream: [tags]}` |
//! | `/changelog?from=&to=&format=markdown\|json\|html` | the changelog between two tags |
//!
//! Changelogs read both payloads and fetch each changed component's git repository (into
//! `<cache>/git`, the cache of `okd-forge release diff --changelog`), on a blocking thread;
//! they are kept per (from digest, to digest), as digests name content that never changes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use build::config::{PublishAction, Release, UpgradeFrom, Verify};
use payload::changelog::GitCache;
use payload::diff::ReleaseDiff;
use release::lifecycle::Phase;
use release::state::{PayloadRecord, Records, RunState, UpgradeRun};
use serde::Serialize;
use serde_json::{json, Value};

use crate::AppState;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/releasestream/{stream}/latest", get(latest))
        .route("/api/v1/releasestream/{stream}/tags", get(tags))
        .route("/api/v1/releasestream/{stream}/release/{tag}", get(tag))
        .route("/api/v1/releasestream/{stream}/candidate", get(candidate))
        .route("/api/v1/releasestream/{stream}/config", get(config))
        .route("/api/v1/releasestreams/{which}", get(streams))
        .route("/changelog", get(changelog_endpoint))
}

/// An error answer: a status and one line of text, as the release-controller answers.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    /// Its status and message.
    pub fn parts(self) -> (StatusCode, String) {
        (self.0, self.1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

impl From<build::state::StateError> for ApiError {
    fn from(e: build::state::StateError) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what)
}

fn bad_request(what: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, what)
}

/// A tag as the release-controller's API lists it (`APITag`).
#[derive(Debug, Serialize)]
pub struct ApiTag {
    /// The payload or stable release name.
    pub name: String,
    /// `Pending`, `Ready`, `Accepted`, `Rejected`, `Failed`.
    pub phase: String,
    /// Its pull spec by digest (empty before it is pushed).
    #[serde(rename = "pullSpec")]
    pub pull_spec: String,
    /// Where its tools are downloaded from; okd-forge serves none yet.
    #[serde(rename = "downloadURL", skip_serializing_if = "String::is_empty")]
    pub download_url: String,
}

impl From<&PayloadRecord> for ApiTag {
    fn from(p: &PayloadRecord) -> ApiTag {
        ApiTag {
            name: p.name.clone(),
            phase: p.phase.to_string(),
            pull_spec: p.pull_spec.clone().unwrap_or_default(),
            download_url: String::new(),
        }
    }
}

/// The release stream of every stable release, of all streams (the release-controller's
/// `4-stable`).
pub const STABLE: &str = "stable";

/// The stream named `name` (release-controller or okd-forge name): (okd-forge name, settings).
pub(crate) fn stream(app: &AppState, name: &str) -> Result<(String, Release), ApiError> {
    app.forge
        .config
        .streams
        .iter()
        .find_map(|(key, s)| {
            let r = s.release.as_ref()?;
            (key == name || r.name == name).then(|| (key.clone(), r.clone()))
        })
        .ok_or_else(|| not_found(format!("unable to find release stream {name}")))
}

/// The tags of release stream `name`, newest first by semver (then by creation): a stream's
/// payloads, or for [`STABLE`] every stable release.
pub(crate) fn tags_of(app: &AppState, name: &str) -> Result<Vec<PayloadRecord>, ApiError> {
    let records = Records::new(&app.forge.state);
    let mut tags = Vec::new();
    if name == STABLE {
        for key in app.forge.config.streams.keys() {
            tags.extend(
                records
                    .payloads(key)?
                    .into_iter()
                    .filter(|p| p.stable_of.is_some()),
            );
        }
    } else {
        let (key, _) = stream(app, name)?;
        tags.extend(
            records
                .payloads(&key)?
                .into_iter()
                .filter(|p| p.stable_of.is_none()),
        );
    }
    tags.sort_by(|a, b| {
        let v = |p: &PayloadRecord| semver::Version::parse(&p.name).ok();
        v(b).cmp(&v(a)).then(b.created.cmp(&a.created))
    });
    Ok(tags)
}

/// The query's `key=value` pairs, in order (a key may repeat, as `phase`).
fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A blang/semver range as the release-controller's `in=` takes it: comparators separated by
/// spaces must all hold, alternatives are separated by `||` (`>4.17.0-0 <4.18.0-0`). Unlike Cargo's
/// requirements, pre-release versions (every payload name) match like any other.
pub struct Range(Vec<Vec<(Op, semver::Version)>>);

/// A range comparator.
#[derive(Clone, Copy)]
pub enum Op {
    /// `=` or none.
    Eq,
    /// `!=`.
    Ne,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
}

impl Range {
    /// Parses a range; the error names the comparator at fault.
    pub fn parse(text: &str) -> Result<Range, String> {
        let mut any = Vec::new();
        for alternative in text.split("||") {
            let mut all = Vec::new();
            for c in alternative.split_whitespace() {
                let (op, v) = [
                    (">=", Op::Ge),
                    ("<=", Op::Le),
                    ("!=", Op::Ne),
                    (">", Op::Gt),
                    ("<", Op::Lt),
                    ("==", Op::Eq),
                    ("=", Op::Eq),
                ]
                .iter()
                .find_map(|(s, op)| c.strip_prefix(s).map(|v| (*op, v)))
                .unwrap_or((Op::Eq, c));
                let v = semver::Version::parse(v)
                    .map_err(|e| format!("'{c}' in range '{text}': {e}"))?;
                all.push((op, v));
            }
            if all.is_empty() {
                return Err(format!("range '{text}' has an empty alternative"));
            }
            any.push(all);
        }
        Ok(Range(any))
    }

    /// Whether `v` is in the range.
    pub fn matches(&self, v: &semver::Version) -> bool {
        self.0.iter().any(|all| {
            all.iter().all(|(op, w)| match op {
                Op::Eq => v == w,
                Op::Ne => v != w,
                Op::Gt => v > w,
                Op::Ge => v >= w,
                Op::Lt => v < w,
                Op::Le => v <= w,
            })
        })
    }
}

/// `latest`: the newest Accepted tag by semver matching `in` and `prefix`, after skipping `rel`
/// newer ones; as JSON, or one line (`format=pullSpec|name|downloadURL`).
async fn latest(
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let tags = tags_of(&app, &name)?;
    let pairs = query_pairs(&q);
    let range = param(&pairs, "in")
        .filter(|r| !r.is_empty())
        .map(Range::parse)
        .transpose()
        .map_err(|e| bad_request(format!("in: {e}")))?;
    let rel: usize = match param(&pairs, "rel") {
        None | Some("") => 0,
        Some(n) => n
            .parse()
            .map_err(|_| bad_request(format!("rel: '{n}' is not a whole number")))?,
    };
    let prefix = param(&pairs, "prefix").unwrap_or("");
    let found = tags
        .iter()
        .filter(|p| p.phase == Phase::Accepted && p.name.starts_with(prefix))
        .filter(|p| match &range {
            None => true,
            Some(r) => semver::Version::parse(&p.name).is_ok_and(|v| r.matches(&v)),
        })
        .nth(rel)
        .ok_or_else(|| not_found(format!("no tag matches in release stream {name}")))?;
    let tag = ApiTag::from(found);
    Ok(match param(&pairs, "format").unwrap_or("json") {
        "" | "json" => Json(tag).into_response(),
        "pullSpec" => format!("{}\n", tag.pull_spec).into_response(),
        "name" => format!("{}\n", tag.name).into_response(),
        "downloadURL" => format!("{}\n", tag.download_url).into_response(),
        other => {
            return Err(bad_request(format!(
                "format: '{other}' is not json, pullSpec, name or downloadURL"
            )))
        }
    })
}

/// `tags`: every tag of the stream (or those in the `phase` given, which may repeat), newest
/// first.
async fn tags(
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let all = tags_of(&app, &name)?;
    let phases: Vec<String> = query_pairs(&q)
        .into_iter()
        .filter(|(k, _)| k == "phase")
        .map(|(_, v)| v)
        .collect();
    let tags: Vec<ApiTag> = all
        .iter()
        .filter(|p| phases.is_empty() || phases.contains(&p.phase.to_string()))
        .map(ApiTag::from)
        .collect();
    let name = match stream(&app, &name) {
        Ok((_, r)) => r.name,
        Err(_) => name,
    };
    Ok(Json(json!({ "name": name, "tags": tags })))
}

/// One job's result as the release-controller reports it (`VerificationStatus`).
#[derive(Debug, Serialize)]
struct JobResult {
    state: &'static str,
    url: String,
    retries: u32,
    #[serde(rename = "transitionTime")]
    transition_time: String,
}

/// An upgrade summary between two tags, with the release-controller's capitalised keys.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Upgrade {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) success: usize,
    pub(crate) failure: usize,
    total: usize,
    history: BTreeMap<String, Value>,
}

/// The upgrade runs of `name` ([`Records::upgrades_of`]) summed per other tag: those into it,
/// and those from it.
pub(crate) fn upgrades_to_and_from(
    name: &str,
    runs: Vec<(String, String, UpgradeRun)>,
) -> (Vec<Upgrade>, Vec<Upgrade>) {
    let mut to: BTreeMap<String, Upgrade> = BTreeMap::new();
    let mut from: BTreeMap<String, Upgrade> = BTreeMap::new();
    for (f, t, run) in runs {
        let (map, other) = if t == name {
            (&mut to, f.clone())
        } else {
            (&mut from, t.clone())
        };
        let u = map.entry(other).or_insert_with(|| Upgrade {
            from: f,
            to: t,
            ..Default::default()
        });
        u.total += 1;
        if run.succeeded {
            u.success += 1;
        } else {
            u.failure += 1;
        }
        let url = run.dir.clone().unwrap_or_else(|| run.run.to_string());
        let state = if run.succeeded { "Succeeded" } else { "Failed" };
        u.history
            .insert(url.clone(), json!({ "state": state, "url": url }));
    }
    (to.into_values().collect(), from.into_values().collect())
}

/// `release/{tag}`: the tag's phase, its job results (blocking, informing, pending), and the
/// upgrades from and to it.
async fn tag(
    State(app): State<AppState>,
    Path((name, tag)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = tags_of(&app, &name)?
        .into_iter()
        .find(|p| p.name == tag)
        .ok_or_else(|| not_found(format!("unable to find release tag {tag} in stream {name}")))?;
    let (_, release) = stream(&app, &p.stream)?;
    let records = Records::new(&app.forge.state);
    let mut blocking = BTreeMap::new();
    let mut informing = BTreeMap::new();
    let mut pending = BTreeMap::new();
    // The newest attempt of each job stands; earlier ones count as retries.
    // An `all_previous_stable` job has a result per source, as its gates are named.
    let upgrades = records.upgrades_of(&p.name)?;
    let source = |id: i64| {
        upgrades
            .iter()
            .find(|(_, to, u): &&(String, String, UpgradeRun)| u.run == id && *to == p.name)
            .map(|(from, _, _)| from.clone())
    };
    let mut newest: BTreeMap<String, release::state::RunRecord> = BTreeMap::new();
    for r in records.runs(&p.name)? {
        let per_source = release
            .verify
            .get(&r.job)
            .is_some_and(|v| v.upgrade_from == Some(UpgradeFrom::AllPreviousStable));
        let job = match source(r.id).filter(|_| per_source) {
            Some(from) => format!("{} from {from}", r.job),
            None => r.job.clone(),
        };
        if newest.get(&job).is_none_or(|n| n.attempt < r.attempt) {
            newest.insert(job, r);
        }
    }
    for (job, r) in newest {
        let state = match r.state {
            RunState::Succeeded | RunState::Skipped => "Success",
            RunState::Failed | RunState::TimedOut | RunState::Error => "Failure",
            _ => "Pending",
        };
        let result = JobResult {
            state,
            url: r.dir.clone().unwrap_or_default(),
            retries: r.attempt.saturating_sub(1),
            transition_time: release::controller::rfc3339(r.finished.unwrap_or(r.started)),
        };
        let optional = release.verify.get(&r.job).is_some_and(|v| v.optional);
        if state == "Pending" {
            pending.insert(job, result);
        } else if optional {
            informing.insert(job, result);
        } else {
            blocking.insert(job, result);
        }
    }
    let (to, from) = upgrades_to_and_from(&p.name, upgrades);
    let pairs = query_pairs(&q);
    let changes = match param(&pairs, "format") {
        Some("short") => None,
        _ => tag_changelog(&app, &p, param(&pairs, "from")).await?,
    };
    let mut reply = json!({
        "name": p.name,
        "phase": p.phase.to_string(),
        "pullSpec": p.pull_spec.clone().unwrap_or_default(),
        "reason": p.reason,
        "stableOf": p.stable_of,
        "channels": p.channels,
        "results": {
            "blockingJobs": blocking,
            "informingJobs": informing,
            "pendingJobs": pending,
        },
        "upgradesTo": to,
        "upgradesFrom": from,
        "published": records.publications(&p.name)?,
    });
    if let Some(d) = changes {
        use base64::Engine as _;
        let html = crate::dashboard::changelog_html(&d);
        reply["changeLog"] = json!(base64::engine::general_purpose::STANDARD.encode(html));
        reply["changeLogJson"] = serde_json::to_value(&*d).unwrap_or_default();
    }
    Ok(Json(reply))
}

/// The changelog of a tag for its API entry: against `from` when given (an unknown tag is an
/// error), else against the tag the payload page compares with by default. None when there is
/// nothing to compare with, or when it cannot be made (the page says why; the API leaves the
/// fields out, as the release-controller does).
async fn tag_changelog(
    app: &AppState,
    p: &PayloadRecord,
    from: Option<&str>,
) -> Result<Option<Arc<ReleaseDiff>>, ApiError> {
    let base = match from.filter(|f| !f.is_empty()) {
        Some(f) => any_tag(app, f)?,
        None => match crate::dashboard::comparable(app, p)
            .map_err(|(status, why)| ApiError(status, why))?
            .1
        {
            Some(b) => b,
            None => return Ok(None),
        },
    };
    match tokio::time::timeout(crate::dashboard::CHANGELOG_WAIT, changelog(app, &base, p)).await {
        Ok(Ok(d)) => Ok(Some(d)),
        Ok(Err(e)) => {
            tracing::warn!(tag = %p.name, from = %base.name, "no changelog: {}", e.parts().1);
            Ok(None)
        }
        Err(_) => Ok(None),
    }
}

/// `candidate`: the Accepted payload the next promotion would take (the newest newer than the
/// last promoted one), the stable release it would follow, the stable releases that upgrade to it,
/// and where promotion stands (`promotion.status`, as `controller sync` prints it).
async fn candidate(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (key, _) = stream(&app, &name)?;
    let records = Records::new(&app.forge.state);
    let payloads = records.payloads(&key)?;
    let last = payloads.iter().find(|p| p.stable_of.is_some());
    let since = last
        .and_then(|s| {
            payloads
                .iter()
                .find(|p| Some(&p.name) == s.stable_of.as_ref())
        })
        .map(|p| p.created);
    let candidate = match payloads
        .iter()
        .find(|p| p.is_accepted_payload() && since.is_none_or(|t| p.created > t))
    {
        Some(c) => {
            let mut upgrade_from = records.upgraded_from_stable(&c.name)?;
            upgrade_from.sort();
            json!({
                "fromTag": last.map(|s| s.name.clone()).unwrap_or_default(),
                "name": c.name,
                "pullSpec": c.pull_spec.clone().unwrap_or_default(),
                "upgradeFrom": upgrade_from,
            })
        }
        None => Value::Null,
    };
    let promotion = records
        .promotion_status(&key)?
        .map(|(status, at)| json!({ "status": status, "since": release::controller::rfc3339(at) }));
    Ok(Json(
        json!({ "candidate": candidate, "promotion": promotion }),
    ))
}

/// A duration as Go's `time.Duration` prints it, as the release-controller's JSON has it
/// (`72h0m0s`, `1h30m0s`, `45s`, `0s`).
pub fn go_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

/// A verification job as a `ReleaseVerification`: okd-forge runs commands, not Prow jobs, so
/// `prowJob.name` is the job's own name.
fn verification(name: &str, v: &Verify) -> Value {
    let mut job = json!({ "prowJob": { "name": name } });
    let o = job.as_object_mut().expect("an object");
    if v.optional {
        o.insert("optional".into(), json!(true));
    }
    if v.max_retries > 0 {
        o.insert("maxRetries".into(), json!(v.max_retries));
    }
    match &v.upgrade_from {
        None => {}
        Some(UpgradeFrom::Stream(stream)) => {
            o.insert("upgrade".into(), json!(true));
            o.insert(
                "upgradeFromRelease".into(),
                json!({ "candidate": { "stream": stream } }),
            );
        }
        Some(from) => {
            o.insert("upgrade".into(), json!(true));
            let from = match from {
                UpgradeFrom::PreviousMinor => "PreviousMinor",
                // Every earlier stable release of the minor: the release-controller's nearest is
                // the newest one of them.
                UpgradeFrom::AllPreviousStable => "PreviousPatch",
                _ => "Previous",
            };
            o.insert("upgradeFrom".into(), json!(from));
        }
    }
    job
}

/// The stream's settings as the release-controller's `ReleaseConfig` (spec §1.1): `name`, `to`
/// (the store payloads are pushed to), `mirrorPrefix` (the okd-forge stream), `expires`,
/// `maxUnreadyReleases`, `minCreationIntervalSeconds`, `verify` and `publish`.
pub fn release_config(app: &AppState, key: &str, r: &Release) -> Value {
    let mut c = json!({
        "name": r.name,
        "to": app.forge.config.store_name,
        "mirrorPrefix": key,
        "verify": r.verify.iter().map(|(n, v)| (n.clone(), verification(n, v))).collect::<serde_json::Map<_, _>>(),
        "publish": r.publish.iter().map(|(n, p)| {
            let action = match p {
                PublishAction::TagRef(tag) => json!({ "tagRef": { "name": tag } }),
                PublishAction::Stream { stream, tags, exclude_tags } => json!({
                    "imageStreamRef": { "name": stream, "tags": tags, "excludeTags": exclude_tags }
                }),
            };
            (n.clone(), action)
        }).collect::<serde_json::Map<_, _>>(),
    });
    let o = c.as_object_mut().expect("an object");
    if let Some(e) = r.expires {
        o.insert("expires".into(), json!(go_duration(e)));
    }
    if r.max_unready > 0 {
        o.insert("maxUnreadyReleases".into(), json!(r.max_unready));
    }
    if !r.min_interval.is_zero() {
        o.insert(
            "minCreationIntervalSeconds".into(),
            json!(r.min_interval.as_secs()),
        );
    }
    c
}

/// `config`: the stream's `ReleaseConfig`, or with `jobType=blocking|informing|disabled|periodic`
/// only those jobs, by name. okd-forge drops disabled jobs when it reads `forge.yaml` and has no
/// periodic jobs, so those two maps are empty. The stable releases' stream is `as: Stable`.
async fn config(
    State(app): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(&q);
    let job_type = param(&pairs, "jobType").filter(|t| !t.is_empty());
    if name == STABLE {
        return Ok(Json(match job_type {
            Some(_) => json!({}),
            None => json!({ "name": STABLE, "as": "Stable", "verify": {}, "publish": {} }),
        }));
    }
    let (key, r) = stream(&app, &name)?;
    let optional = match job_type {
        None => return Ok(Json(release_config(&app, &key, &r))),
        Some("blocking") => Some(false),
        Some("informing") => Some(true),
        Some("disabled" | "periodic") => None,
        Some(other) => {
            return Err(bad_request(format!(
                "jobType: '{other}' is not blocking, informing, disabled or periodic"
            )))
        }
    };
    let jobs: serde_json::Map<String, Value> = r
        .verify
        .iter()
        .filter(|(_, v)| Some(v.optional) == optional)
        .map(|(n, v)| (n.clone(), verification(n, v)))
        .collect();
    Ok(Json(Value::Object(jobs)))
}

/// `releasestreams/{accepted|rejected|ready|all}`: every stream's tags in that phase.
async fn streams(
    State(app): State<AppState>,
    Path(which): Path<String>,
) -> Result<Json<BTreeMap<String, Vec<String>>>, ApiError> {
    let phase = match which.as_str() {
        "accepted" => Some(Phase::Accepted),
        "rejected" => Some(Phase::Rejected),
        "ready" => Some(Phase::Ready),
        "all" => None,
        other => {
            return Err(not_found(format!(
                "'{other}' is not accepted, rejected, ready or all"
            )))
        }
    };
    let mut names: Vec<String> = app
        .forge
        .config
        .streams
        .values()
        .filter_map(|s| Some(s.release.as_ref()?.name.clone()))
        .collect();
    names.push(STABLE.to_string());
    let mut out = BTreeMap::new();
    for name in names {
        let tags: Vec<String> = tags_of(&app, &name)?
            .into_iter()
            .filter(|p| phase.is_none_or(|ph| p.phase == ph))
            .map(|p| p.name)
            .collect();
        out.insert(name, tags);
    }
    Ok(Json(out))
}

/// How many changelogs are kept; the oldest goes first.
pub const CHANGELOGS_KEPT: usize = 64;

/// How long a changelog that failed, or could not read a repository, is kept before it is made
/// again.
pub const CHANGELOG_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

type Made = Result<Arc<ReleaseDiff>, String>;

/// A changelog being made, or made, and since when.
type Cell = (Arc<tokio::sync::OnceCell<Made>>, std::time::Instant);

fn failed(made: &Made) -> bool {
    made.as_ref().map_or(true, |d| !d.warnings.is_empty())
}

/// The changelogs made, by (from digest, to digest), oldest first in `order`. A changelog being
/// made is a cell that every request for the same pair waits on.
#[derive(Default)]
struct Changelogs {
    made: HashMap<(String, String), Cell>,
    order: VecDeque<(String, String)>,
}

static CHANGELOGS: LazyLock<Mutex<Changelogs>> = LazyLock::new(Default::default);

/// The digest (else the pull spec) a payload's changelog is kept by; an error for a payload
/// that is not pushed yet.
fn content(p: &PayloadRecord) -> Result<(String, String), ApiError> {
    let spec = p
        .pull_spec
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad_request(format!(
                "{} has no pull spec yet ({}): there is nothing to compare",
                p.name, p.phase
            ))
        })?;
    Ok((p.digest.clone().unwrap_or_else(|| spec.clone()), spec))
}

/// The changelog `from` → `to`: images added, removed, rebuilt and changed, component versions,
/// and the commits of each changed component (`payload::diff::diff_releases`). Made once per
/// digest pair, on a blocking thread; one with warnings (a repository that could not be read) or
/// an error is made again after [`CHANGELOG_RETRY`].
pub async fn changelog(
    app: &AppState,
    from: &PayloadRecord,
    to: &PayloadRecord,
) -> Result<Arc<ReleaseDiff>, ApiError> {
    let ((from_key, from_spec), (to_key, to_spec)) = (content(from)?, content(to)?);
    let key = (from_key, to_key);
    let cell = {
        let mut kept = CHANGELOGS.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |(cell, since): &Cell| {
            cell.get().is_none_or(|m| !failed(m)) || since.elapsed() < CHANGELOG_RETRY
        };
        if let Some(cell) = kept.made.get(&key).filter(|c| fresh(c)) {
            cell.0.clone()
        } else {
            kept.order.retain(|k| *k != key);
            while kept.order.len() >= CHANGELOGS_KEPT {
                let Some(old) = kept.order.pop_front() else {
                    break;
                };
                kept.made.remove(&old);
            }
            let cell = Arc::new(tokio::sync::OnceCell::new());
            let since = std::time::Instant::now();
            kept.made.insert(key.clone(), (cell.clone(), since));
            kept.order.push_back(key.clone());
            cell
        }
    };
    let forge = app.forge.clone();
    // Spawned, so that a request that stops waiting (the dashboard's) leaves it to finish.
    let task = tokio::spawn(async move {
        let made = cell
            .get_or_init(|| async move {
                let sources = forge.sources.clone();
                let git = GitCache::new(build::run::dirs(&forge.config).1.join("git"));
                let made = tokio::task::spawn_blocking(move || {
                    let from = payload::inputs::parse_ref(&from_spec)?;
                    let to = payload::inputs::parse_ref(&to_spec)?;
                    let diff =
                        payload::diff::diff_releases(&sources, &from, &to, None, Some(git), true);
                    tokio::runtime::Handle::current().block_on(diff)
                })
                .await;
                match made {
                    Ok(Ok(d)) => Ok(Arc::new(d)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("making the changelog failed: {e}")),
                }
            })
            .await;
        made.clone()
    });
    let made = task
        .await
        .unwrap_or_else(|e| Err(format!("making the changelog failed: {e}")));
    made.map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("changelog from {} to {}: {e}", from.name, to.name),
        )
    })
}

/// A tag of any stream, or a stable release, by name.
pub(crate) fn any_tag(app: &AppState, name: &str) -> Result<PayloadRecord, ApiError> {
    Records::new(&app.forge.state)
        .payload(name)?
        .ok_or_else(|| not_found(format!("unable to find release tag {name}")))
}

/// `/changelog?from=&to=&format=`: Markdown (the default, as `oc adm release info --changelog`
/// writes it), `json` (the same fields as `oc`'s JSON) or `html` (the dashboard's rendering).
/// Readable from any origin.
async fn changelog_endpoint(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query_pairs(&q);
    let tag = |key: &str| {
        let name = param(&pairs, key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad_request(format!("{key}: a release tag is required")))?;
        any_tag(&app, name)
    };
    let (from, to) = (tag("from")?, tag("to")?);
    let format = param(&pairs, "format").unwrap_or("markdown");
    if !matches!(format, "" | "markdown" | "json" | "html") {
        return Err(bad_request(format!(
            "format: '{format}' is not markdown, json or html"
        )));
    }
    let diff = changelog(&app, &from, &to).await?;
    let mut response = match format {
        "json" => Json(&*diff).into_response(),
        "html" => crate::dashboard::changelog_page(&diff),
        _ => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            diff.markdown(),
        )
            .into_response(),
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(response)
}
