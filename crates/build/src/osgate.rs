//! A stream's OS: the releases its `os:` source gives, which one its OS image is built on, and the
//! gate through which a new OS image enters the stream.
//!
//! ```text
//!  os: source ──poll──► os_releases (version, images by digest, last-modified)   os_polls: last outcome
//!                            │ the newest, or the pinned one (os_pins)
//!                            ▼
//!  build: the OS image (`os: true`) FROM that release, labelled machine-os=<semver>
//!                            │ a digest the stream does not have
//!                            ▼
//!  os_candidates: testing ──► the stream's next payload carries it (Controller::snapshot)
//!                            │
//!        a payload carrying it is Accepted ──► accepted: promoted into the stream's tags
//!        every payload carrying it failed  ──► rejected: the stream keeps its OS, and says why
//!        a newer candidate arrived first, or the build went back to the stream's own ──► superseded
//! ```
//!
//! - [`poll`] reads the source once and records a new release, or why there is none
//!   ([`PollOutcome`]); a failure (unreachable, malformed, going backwards) keeps every recorded
//!   release and is recorded as the last poll's outcome.
//! - [`desired`] is the release the OS image is built on: the pinned one ([`pin`]), else the
//!   newest recorded.
//! - [`propose`] records a built OS image as a candidate; the release controller carries the
//!   newest one ([`testing`]) in its payloads and decides it ([`decide`]).
//!
//! Every record is one row written in one transaction; a poll, a proposal or a decision repeated
//! after a crash writes nothing new.

use std::collections::BTreeMap;

use oci::ImageRef;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::OsSource;
use crate::os::{self, OsState, OsVersion, Poll};
use crate::run::Forge;
use crate::state::{State, StateError};

/// One OS release of a stream, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsReleaseRecord {
    /// The okd-forge stream.
    pub stream: String,
    /// The release version, for the architecture builds run on (`39.20231101.3.0`).
    pub version: String,
    /// The CoreOS stream it came from (`stable`), or the image tag followed.
    pub source: String,
    /// The stream metadata's `last-modified` (RFC 3339), for metadata sources.
    pub last_modified: Option<String>,
    /// The version of each architecture.
    pub versions: BTreeMap<String, String>,
    /// The container image of each architecture, by digest, where known.
    pub images: BTreeMap<String, String>,
    /// The image builds use (`docker://REPO@sha256:…` or `oci:DIR@sha256:…`).
    pub base: String,
    /// When it was recorded (unix seconds).
    pub found: i64,
}

/// The outcome of the last poll of a stream's OS source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollRecord {
    /// When (unix seconds).
    pub at: i64,
    /// Whether the source was read.
    pub ok: bool,
    /// What it found, or why it failed.
    pub message: String,
}

/// A stream's OS pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    /// The pinned release.
    pub version: String,
    /// Why.
    pub reason: String,
    /// When (unix seconds).
    pub at: i64,
}

/// Where a candidate OS image stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateState {
    /// Carried by the stream's payloads until one decides it.
    Testing,
    /// A payload carrying it was Accepted: it is the stream's OS.
    Accepted,
    /// Every payload carrying it failed verification: the stream kept its OS.
    Rejected,
    /// A newer candidate replaced it before it was decided.
    Superseded,
}

impl CandidateState {
    fn as_str(self) -> &'static str {
        match self {
            CandidateState::Testing => "testing",
            CandidateState::Accepted => "accepted",
            CandidateState::Rejected => "rejected",
            CandidateState::Superseded => "superseded",
        }
    }

    fn parse(s: &str) -> CandidateState {
        match s {
            "accepted" => CandidateState::Accepted,
            "rejected" => CandidateState::Rejected,
            "superseded" => CandidateState::Superseded,
            _ => CandidateState::Testing,
        }
    }
}

impl std::fmt::Display for CandidateState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OS image built for a stream, on its way into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Its row.
    pub id: i64,
    /// The stream.
    pub stream: String,
    /// The stream tag of the OS image.
    pub tag: String,
    /// The image.
    pub digest: String,
    /// The OS release it is built on.
    pub version: String,
    /// The build that made it.
    pub build_id: Option<i64>,
    /// Where it stands.
    pub state: CandidateState,
    /// The payload that decided it.
    pub payload: Option<String>,
    /// Why it was rejected or superseded.
    pub reason: Option<String>,
    /// When it was proposed (unix seconds).
    pub created: i64,
    /// When it was decided.
    pub decided: Option<i64>,
}

/// What [`propose`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum Proposal {
    /// A new candidate: the stream's next payload carries it.
    Testing,
    /// Already a candidate being tested.
    StillTesting,
    /// Already rejected (by the payload named): not proposed again.
    Rejected(String),
    /// Accepted or superseded before (e.g. a revert to it): proposed again, as the newest.
    Retesting,
}

/// The current Unix time.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn release_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OsReleaseRecord> {
    let json = |i: usize| -> rusqlite::Result<BTreeMap<String, String>> {
        let text: String = r.get(i)?;
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        })
    };
    Ok(OsReleaseRecord {
        stream: r.get(0)?,
        version: r.get(1)?,
        source: r.get(2)?,
        last_modified: r.get(3)?,
        versions: json(4)?,
        images: json(5)?,
        base: r.get(6)?,
        found: r.get(7)?,
    })
}

const RELEASE_COLUMNS: &str =
    "stream, version, source, last_modified, versions, images, base, found";

/// The recorded releases of `stream`, newest first.
pub fn releases(state: &State, stream: &str) -> Result<Vec<OsReleaseRecord>, StateError> {
    state.query(|c| {
        let mut s = c.prepare_cached(&format!(
            "SELECT {RELEASE_COLUMNS} FROM os_releases WHERE stream = ?1 \
             ORDER BY found DESC, rowid DESC"
        ))?;
        let rows = s.query_map([stream], release_row)?;
        rows.collect()
    })
}

/// The recorded release `version` of `stream`.
pub fn release(
    state: &State,
    stream: &str,
    version: &str,
) -> Result<Option<OsReleaseRecord>, StateError> {
    state.query(|c| {
        c.query_row(
            &format!(
                "SELECT {RELEASE_COLUMNS} FROM os_releases WHERE stream = ?1 AND version = ?2"
            ),
            [stream, version],
            release_row,
        )
        .optional()
    })
}

/// Records a release (a release of the same version is replaced: a respin of a followed tag).
pub fn record_release(state: &State, r: &OsReleaseRecord) -> Result<(), StateError> {
    let versions = serde_json::to_string(&r.versions).expect("a map of strings serialises");
    let images = serde_json::to_string(&r.images).expect("a map of strings serialises");
    state.transaction(|tx| {
        tx.execute(
            &format!(
                "INSERT INTO os_releases ({RELEASE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (stream, version) DO UPDATE SET source = excluded.source, \
                 last_modified = excluded.last_modified, versions = excluded.versions, \
                 images = excluded.images, base = excluded.base, found = excluded.found"
            ),
            params![
                r.stream,
                r.version,
                r.source,
                r.last_modified,
                versions,
                images,
                r.base,
                r.found
            ],
        )?;
        Ok(())
    })
}

/// Records the outcome of a poll.
pub fn record_poll(state: &State, stream: &str, p: &PollRecord) -> Result<(), StateError> {
    state.transaction(|tx| {
        tx.execute(
            "INSERT INTO os_polls (stream, at, ok, message) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (stream) DO UPDATE SET at = excluded.at, ok = excluded.ok, \
             message = excluded.message",
            params![stream, p.at, p.ok, p.message],
        )?;
        Ok(())
    })
}

/// The outcome of the last poll of `stream`.
pub fn last_poll(state: &State, stream: &str) -> Result<Option<PollRecord>, StateError> {
    state.query(|c| {
        c.query_row(
            "SELECT at, ok, message FROM os_polls WHERE stream = ?1",
            [stream],
            |r| {
                Ok(PollRecord {
                    at: r.get(0)?,
                    ok: r.get(1)?,
                    message: r.get(2)?,
                })
            },
        )
        .optional()
    })
}

/// Pins `stream` to `version` (replacing any pin).
pub fn pin(
    state: &State,
    stream: &str,
    version: &str,
    reason: &str,
    at: i64,
) -> Result<(), StateError> {
    state.transaction(|tx| {
        tx.execute(
            "INSERT INTO os_pins (stream, version, reason, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (stream) DO UPDATE SET version = excluded.version, \
             reason = excluded.reason, at = excluded.at",
            params![stream, version, reason, at],
        )?;
        Ok(())
    })
}

/// Removes the pin of `stream`; whether there was one.
pub fn unpin(state: &State, stream: &str) -> Result<bool, StateError> {
    state.transaction(|tx| Ok(tx.execute("DELETE FROM os_pins WHERE stream = ?1", [stream])? > 0))
}

/// The pin of `stream`.
pub fn pinned(state: &State, stream: &str) -> Result<Option<Pin>, StateError> {
    state.query(|c| {
        c.query_row(
            "SELECT version, reason, at FROM os_pins WHERE stream = ?1",
            [stream],
            |r| {
                Ok(Pin {
                    version: r.get(0)?,
                    reason: r.get(1)?,
                    at: r.get(2)?,
                })
            },
        )
        .optional()
    })
}

/// The release the OS image of `stream` is built on: the pinned one, else the newest recorded.
/// `Err` says why there is none (a pin of a release that is not recorded, or nothing recorded).
pub fn desired(state: &State, stream: &str) -> Result<Result<OsReleaseRecord, String>, StateError> {
    if let Some(p) = pinned(state, stream)? {
        return Ok(release(state, stream, &p.version)?.ok_or_else(|| {
            format!(
                "stream {stream} is pinned to OS {}, which is not a recorded release; \
                 `okd-forge os pin` it again, or `okd-forge os unpin {stream}`",
                p.version
            )
        }));
    }
    Ok(releases(state, stream)?.into_iter().next().ok_or_else(|| {
        format!(
            "stream {stream} has no OS release recorded yet; run `okd-forge os poll --stream {stream}`"
        )
    }))
}

fn candidate_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Candidate> {
    Ok(Candidate {
        id: r.get(0)?,
        stream: r.get(1)?,
        tag: r.get(2)?,
        digest: r.get(3)?,
        version: r.get(4)?,
        build_id: r.get(5)?,
        state: CandidateState::parse(&r.get::<_, String>(6)?),
        payload: r.get(7)?,
        reason: r.get(8)?,
        created: r.get(9)?,
        decided: r.get(10)?,
    })
}

const CANDIDATE_COLUMNS: &str =
    "id, stream, tag, digest, version, build_id, state, payload, reason, created, decided";

/// The candidates of `stream`, newest first.
pub fn candidates(state: &State, stream: &str) -> Result<Vec<Candidate>, StateError> {
    state.query(|c| {
        let mut s = c.prepare_cached(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM os_candidates WHERE stream = ?1 ORDER BY id DESC"
        ))?;
        let rows = s.query_map([stream], candidate_row)?;
        rows.collect()
    })
}

/// The candidate `stream`'s payloads carry: the newest one being tested.
pub fn testing(state: &State, stream: &str) -> Result<Option<Candidate>, StateError> {
    Ok(candidates(state, stream)?
        .into_iter()
        .find(|c| c.state == CandidateState::Testing))
}

/// What the gate knows of the OS image `digest` for `stream`, when it holds it back: being tested
/// ([`Proposal::StillTesting`]) or rejected ([`Proposal::Rejected`], by the payload named).
pub fn known(state: &State, stream: &str, digest: &str) -> Result<Option<Proposal>, StateError> {
    Ok(candidates(state, stream)?
        .into_iter()
        .find(|c| c.digest == digest)
        .and_then(|c| held(c.state, c.payload)))
}

/// The proposal a candidate in `state` (decided by `payload`) stands for, when the gate holds it.
fn held(state: CandidateState, payload: Option<String>) -> Option<Proposal> {
    match state {
        CandidateState::Testing => Some(Proposal::StillTesting),
        CandidateState::Rejected => Some(Proposal::Rejected(
            payload.unwrap_or_else(|| "a payload".into()),
        )),
        _ => None,
    }
}

/// The OS image the build wants for `stream` is the one the stream has: the candidate being
/// tested (if any) is withdrawn, superseded, so that payloads carry the stream's own again (a pin
/// to the OS the stream has holds it there). Whether one was.
pub fn withdraw(state: &State, stream: &str, at: i64) -> Result<bool, StateError> {
    state.transaction(|tx| {
        let n = tx.execute(
            "UPDATE os_candidates SET state = 'superseded', decided = ?2, \
             reason = 'the build went back to the OS image the stream has' \
             WHERE stream = ?1 AND state = 'testing'",
            params![stream, at],
        )?;
        Ok(n > 0)
    })
}

/// Records the OS image `digest` (of `version`, made by `build_id`) as a candidate for `stream`'s
/// `tag`, superseding any older one being tested. An image rejected before is not proposed again
/// (`release accept` of a payload carrying it still lets it in). An image accepted or superseded
/// before (a revert to it) is proposed anew: a new row, so that it is the newest candidate.
pub fn propose(
    state: &State,
    stream: &str,
    tag: &str,
    digest: &str,
    version: &str,
    build_id: Option<i64>,
    at: i64,
) -> Result<Proposal, StateError> {
    state.transaction(|tx| {
        let existing: Option<(i64, String, Option<String>, Option<i64>)> = tx
            .query_row(
                "SELECT id, state, payload, build_id FROM os_candidates \
                 WHERE stream = ?1 AND digest = ?2",
                [stream, digest],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let supersede = |tx: &rusqlite::Transaction<'_>, keep: i64| {
            tx.execute(
                "UPDATE os_candidates SET state = 'superseded', decided = ?3, \
                 reason = 'a newer OS image was built before a payload decided it' \
                 WHERE stream = ?1 AND state = 'testing' AND id != ?2",
                params![stream, keep, at],
            )
        };
        let insert = |tx: &rusqlite::Transaction<'_>, build_id: Option<i64>| {
            tx.execute(
                "INSERT INTO os_candidates (stream, tag, digest, version, build_id, state, \
                 created) VALUES (?1, ?2, ?3, ?4, ?5, 'testing', ?6)",
                params![stream, tag, digest, version, build_id, at],
            )?;
            supersede(tx, tx.last_insert_rowid())
        };
        match existing {
            Some((id, s, payload, old_build)) => {
                if let Some(p) = held(CandidateState::parse(&s), payload) {
                    return Ok(p);
                }
                // Accepted once and left since (a revert to it), or superseded: test it again, as
                // the newest candidate.
                tx.execute("DELETE FROM os_candidates WHERE id = ?1", [id])?;
                insert(tx, build_id.or(old_build))?;
                Ok(Proposal::Retesting)
            }
            None => {
                insert(tx, build_id)?;
                Ok(Proposal::Testing)
            }
        }
    })
}

/// Decides candidate `id`: `Accepted` or `Rejected` by `payload`, with the reason. A candidate
/// being tested can be rejected; one being tested, superseded (its payload passed after a newer
/// one was built) or rejected (accepted by hand) can be accepted. Returns whether it changed.
pub fn decide(
    state: &State,
    id: i64,
    to: CandidateState,
    payload: &str,
    reason: Option<&str>,
    at: i64,
) -> Result<bool, StateError> {
    state.transaction(|tx| {
        let n = tx.execute(
            "UPDATE os_candidates SET state = ?2, payload = ?3, reason = ?4, decided = ?5 \
             WHERE id = ?1 AND (state = 'testing' OR (state IN ('superseded', 'rejected') \
             AND ?2 = 'accepted'))",
            params![id, to.as_str(), payload, reason, at],
        )?;
        Ok(n > 0)
    })
}

/// Where a stream's OS stands: what `okd-forge os status`, the dashboard and the API show.
#[derive(Debug, Clone, Serialize)]
pub struct OsStatus {
    /// The stream.
    pub stream: String,
    /// Where its releases come from (the metadata URL, or the image tag followed).
    pub source: String,
    /// The stream tag of its OS image.
    pub tag: Option<String>,
    /// The OS image the stream has now.
    pub current: Option<Current>,
    /// The OS release builds use now (the pinned or the newest one).
    pub desired: Option<String>,
    /// Why no release can be built on, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The pin, if any.
    pub pin: Option<Pin>,
    /// The OS image being tested in the stream's payloads.
    pub testing: Option<Candidate>,
    /// The newest rejected OS image, when it is newer than the stream's own.
    pub rejected: Option<Candidate>,
    /// The outcome of the last poll.
    pub poll: Option<PollRecord>,
    /// The recorded releases, newest first.
    pub releases: Vec<OsReleaseRecord>,
}

/// The OS image a stream has.
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    /// Its digest.
    pub digest: String,
    /// The OS release it was built on, when the gate let it in.
    pub version: Option<String>,
    /// The payload that accepted it.
    pub payload: Option<String>,
}

/// Where `stream`'s OS stands; `None` when it follows no OS.
pub fn status(
    config: &crate::config::Config,
    state: &State,
    stream: &str,
) -> Result<Option<OsStatus>, StateError> {
    let Some(source) = config.streams.get(stream).and_then(|s| s.os.as_ref()) else {
        return Ok(None);
    };
    let tag = config.os_tag(stream).map(str::to_string);
    let all = candidates(state, stream)?;
    let current = match &tag {
        Some(t) => state.stream_tag(stream, t)?.map(|st| {
            let c = all
                .iter()
                .find(|c| c.digest == st.digest && c.state == CandidateState::Accepted);
            Current {
                version: c.map(|c| c.version.clone()),
                payload: c.and_then(|c| c.payload.clone()),
                digest: st.digest,
            }
        }),
        None => None,
    };
    let current_id = current
        .as_ref()
        .and_then(|cur| all.iter().find(|c| c.digest == cur.digest))
        .map_or(0, |c| c.id);
    let (desired, problem) = match desired(state, stream)? {
        Ok(r) => (Some(r.version), None),
        Err(e) => (None, Some(e)),
    };
    Ok(Some(OsStatus {
        stream: stream.to_string(),
        source: source.location().to_string(),
        desired,
        problem,
        pin: pinned(state, stream)?,
        testing: all
            .iter()
            .find(|c| c.state == CandidateState::Testing)
            .cloned(),
        rejected: all
            .iter()
            .find(|c| c.state == CandidateState::Rejected && c.id > current_id)
            .cloned(),
        poll: last_poll(state, stream)?,
        releases: releases(state, stream)?,
        current,
        tag,
    }))
}

/// What one [`poll`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum PollOutcome {
    /// A new release, now recorded.
    New {
        /// The release.
        release: OsReleaseRecord,
        /// Disagreements in the source (see [`os::poll`]).
        warnings: Vec<String>,
    },
    /// Nothing new: the newest recorded release is still current.
    Same {
        /// Its version.
        version: String,
    },
    /// The source could not be read, or went backwards: the recorded releases are kept.
    Failed {
        /// Why, naming the source and the field at fault.
        error: String,
    },
}

/// The CoreOS name of this machine's architecture (`x86_64`, `aarch64`, …), whose releases the OS
/// image is built on.
pub fn build_arch() -> &'static str {
    match oci::manifest::host_arch() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    }
}

/// Reads `stream`'s OS source once and records what it found (a new release, and the outcome).
pub async fn poll(forge: &Forge, stream: &str, at: i64) -> Result<PollOutcome, StateError> {
    let Some(source) = forge.config.streams.get(stream).and_then(|s| s.os.clone()) else {
        return Ok(PollOutcome::Failed {
            error: format!("stream {stream} follows no OS: give it an `os:` source in forge.yaml"),
        });
    };
    let outcome = match poll_source(forge, stream, &source, at).await {
        Ok(Some((release, warnings))) => PollOutcome::New { release, warnings },
        Ok(None) => PollOutcome::Same {
            version: releases(&forge.state, stream)?
                .first()
                .map(|r| r.version.clone())
                .unwrap_or_default(),
        },
        Err(error) => PollOutcome::Failed { error },
    };
    let message = match &outcome {
        PollOutcome::New { release, warnings } => {
            let mut m = format!("new OS release {}", release.version);
            for w in warnings {
                m.push_str(&format!("; {w}"));
            }
            m
        }
        PollOutcome::Same { version } => format!("no new OS release (newest {version})"),
        PollOutcome::Failed { error } => error.clone(),
    };
    if let PollOutcome::New { release, .. } = &outcome {
        record_release(&forge.state, release)?;
    }
    let ok = !matches!(outcome, PollOutcome::Failed { .. });
    record_poll(&forge.state, stream, &PollRecord { at, ok, message })?;
    Ok(outcome)
}

type Found = (OsReleaseRecord, Vec<String>);

async fn poll_source(
    forge: &Forge,
    stream: &str,
    source: &OsSource,
    at: i64,
) -> Result<Option<Found>, String> {
    let recorded = releases(&forge.state, stream).map_err(|e| e.to_string())?;
    let newest = recorded.first().cloned();
    match source {
        OsSource::Metadata {
            metadata,
            index,
            image,
        } => {
            let s = os::fetch_stream(metadata)
                .await
                .map_err(|e| e.to_string())?;
            let index_url = index.clone();
            let index = match index {
                Some(i) => Some(os::fetch_index(i).await.map_err(|e| e.to_string())?),
                None => None,
            };
            // What the metadata is compared with: the newest release a poll recorded (one a pin
            // recorded has no metadata state).
            let previous = recorded.iter().find_map(|r| recorded_state(r).ok());
            let release = match os::poll(previous.as_ref(), &s, index.as_ref()) {
                Poll::Same => return Ok(None),
                Poll::Rejected { reason } => {
                    return Err(format!(
                        "{metadata}: {reason}; the recorded OS releases are kept"
                    ))
                }
                Poll::New(r) => r,
            };
            let arch = build_arch();
            let version = release.versions.get(arch).ok_or_else(|| {
                format!(
                    "{metadata}: the stream has no release for {arch} (it has {}); okd-forge \
                     builds the OS image for the machine it runs on",
                    release
                        .versions
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let base = match (release.digests.get(arch), image) {
                (Some(d), _) => format!("docker://{d}"),
                (None, Some(repo)) => release_image(forge, repo, &version.to_string()).await?,
                (None, None) => {
                    return Err(format!(
                        "{}: no container image of {version} for {arch}, and stream {stream}'s \
                         os: gives no `image` repository to find it in",
                        index_url.as_deref().unwrap_or("the release index")
                    ))
                }
            };
            Ok(Some((
                OsReleaseRecord {
                    stream: stream.to_string(),
                    version: version.to_string(),
                    source: release.stream.clone(),
                    last_modified: Some(
                        release
                            .last_modified
                            .format(&Rfc3339)
                            .unwrap_or_else(|_| release.last_modified.to_string()),
                    ),
                    versions: release
                        .versions
                        .iter()
                        .map(|(a, v)| (a.clone(), v.to_string()))
                        .collect(),
                    images: release
                        .digests
                        .iter()
                        .map(|(a, d)| (a.clone(), d.to_string()))
                        .collect(),
                    base,
                    found: at,
                },
                release.warnings,
            )))
        }
        OsSource::Image { image } => {
            let (digest, config) = resolve(forge, image).await?;
            let repo = image_repository(image);
            let base = by_digest(&repo, &digest);
            if newest.as_ref().is_some_and(|r| r.base == base) {
                return Ok(None);
            }
            let label = ["version", "org.opencontainers.image.version"]
                .iter()
                .find_map(|l| config.label(l))
                .ok_or_else(|| {
                    format!(
                        "{image}: the image has no `version` or `org.opencontainers.image.version` \
                         label naming its OS release; follow CoreOS stream metadata instead"
                    )
                })?;
            let version: OsVersion = label.parse().map_err(|e| format!("{image}: {e}"))?;
            if let Some(prev) = newest
                .as_ref()
                .and_then(|r| r.version.parse::<OsVersion>().ok())
            {
                if version.partial_cmp(&prev) == Some(std::cmp::Ordering::Less) {
                    return Err(format!(
                        "{image}: now at {version}, older than the recorded {prev}: not a new OS \
                         release; the recorded OS releases are kept"
                    ));
                }
            }
            let arch = build_arch();
            Ok(Some((
                OsReleaseRecord {
                    stream: stream.to_string(),
                    version: version.to_string(),
                    source: image.clone(),
                    last_modified: None,
                    versions: BTreeMap::from([(arch.to_string(), version.to_string())]),
                    images: BTreeMap::from([(arch.to_string(), base.clone())]),
                    base,
                    found: at,
                },
                Vec::new(),
            )))
        }
    }
}

/// Records release `version` of `stream` from its source's image repository (`image:` with
/// `metadata:`), as found now: for a pin of a release the poller never saw. Other sources cannot
/// name an arbitrary release, and say so.
pub async fn record_version(
    forge: &Forge,
    stream: &str,
    version: &str,
    at: i64,
) -> Result<Result<OsReleaseRecord, String>, StateError> {
    let v: OsVersion = match version.parse() {
        Ok(v) => v,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let source = forge.config.streams.get(stream).and_then(|s| s.os.clone());
    let Some(OsSource::Metadata {
        image: Some(repo), ..
    }) = source
    else {
        let known: Vec<String> = releases(&forge.state, stream)?
            .into_iter()
            .map(|r| r.version)
            .collect();
        return Ok(Err(format!(
            "{version} is not a recorded OS release of stream {stream} (recorded: {}); only a \
             stream whose os: has `metadata` and an `image` repository can take another",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let base = match release_image(forge, &repo, &v.to_string()).await {
        Ok(b) => b,
        Err(e) => return Ok(Err(e)),
    };
    let arch = build_arch().to_string();
    let r = OsReleaseRecord {
        stream: stream.to_string(),
        version: v.to_string(),
        source: "os pin".to_string(),
        last_modified: None,
        versions: BTreeMap::from([(arch.clone(), v.to_string())]),
        images: BTreeMap::from([(arch, base.clone())]),
        base,
        // Found now, but older than what was polled: it must not become the newest.
        found: releases(&forge.state, stream)?
            .iter()
            .map(|r| r.found)
            .min()
            .map_or(at, |f| f.min(at) - 1),
    };
    record_release(&forge.state, &r)?;
    Ok(Ok(r))
}

/// Release `version`'s image in the repository `repo` (`REPO:VERSION`), by digest.
async fn release_image(forge: &Forge, repo: &str, version: &str) -> Result<String, String> {
    let (digest, _) = resolve(forge, &format!("{repo}:{version}")).await?;
    Ok(by_digest(repo, &digest))
}

/// The state [`os::poll`] compares with, from a recorded release.
fn recorded_state(r: &OsReleaseRecord) -> Result<OsState, String> {
    let last_modified = r
        .last_modified
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .ok_or("no last-modified")?;
    let versions = r
        .versions
        .iter()
        .map(|(a, v)| {
            Ok((
                a.clone(),
                v.parse::<OsVersion>().map_err(|e| e.to_string())?,
            ))
        })
        .collect::<Result<_, String>>()?;
    Ok(OsState {
        stream: r.source.clone(),
        last_modified,
        versions,
    })
}

/// The repository of an image reference (`docker://R:T` → `docker://R`, `oci:D:T` → `oci:D`).
fn image_repository(image: &str) -> String {
    match image.parse::<ImageRef>() {
        Ok(ImageRef::Registry { repo, .. }) => format!("docker://{repo}"),
        Ok(ImageRef::Layout { path, .. }) => format!("oci:{}", path.display()),
        Err(_) => image.to_string(),
    }
}

fn by_digest(repo: &str, digest: &oci::Digest) -> String {
    format!("{repo}@{digest}")
}

/// The digest `image` names now, and the config of its image for this machine.
async fn resolve(
    forge: &Forge,
    image: &str,
) -> Result<(oci::Digest, payload::source::Config), String> {
    let what = format!("OS image {image}");
    let r: ImageRef = image.parse().map_err(|e| format!("{what}: {e}"))?;
    let (top, _, config, _) = forge
        .sources
        .image_config(&what, &r, Some(oci::manifest::host_arch()))
        .await
        .map_err(|e| e.to_string())?;
    Ok((top.manifest.digest, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(stream: &str, version: &str, found: i64) -> OsReleaseRecord {
        OsReleaseRecord {
            stream: stream.into(),
            version: version.into(),
            source: "stable".into(),
            last_modified: Some("2020-12-17T14:18:43Z".into()),
            versions: BTreeMap::from([("x86_64".into(), version.into())]),
            images: BTreeMap::new(),
            base: format!(
                "docker://quay.io/fedora/fedora-coreos@sha256:{:064x}",
                found
            ),
            found,
        }
    }

    #[test]
    fn the_desired_release_is_the_newest_unless_one_is_pinned() {
        let state = State::open_in_memory().unwrap();
        let e = desired(&state, "okd-4.17").unwrap().unwrap_err();
        assert!(
            e.contains("run `okd-forge os poll --stream okd-4.17`"),
            "{e}"
        );
        record_release(&state, &rec("okd-4.17", "39.20231101.3.0", 1)).unwrap();
        record_release(&state, &rec("okd-4.17", "39.20231119.3.0", 2)).unwrap();
        record_release(&state, &rec("okd-4.18", "40.20240416.3.1", 3)).unwrap();
        let d = desired(&state, "okd-4.17").unwrap().unwrap();
        assert_eq!(d.version, "39.20231119.3.0");

        pin(
            &state,
            "okd-4.17",
            "39.20231101.3.0",
            "NetworkManager regression",
            5,
        )
        .unwrap();
        assert_eq!(
            desired(&state, "okd-4.17").unwrap().unwrap().version,
            "39.20231101.3.0"
        );
        // A newer release recorded later does not move a pinned stream.
        record_release(&state, &rec("okd-4.17", "39.20231204.3.0", 6)).unwrap();
        assert_eq!(
            desired(&state, "okd-4.17").unwrap().unwrap().version,
            "39.20231101.3.0"
        );
        pin(&state, "okd-4.17", "38.1.3.0", "typo", 7).unwrap();
        let e = desired(&state, "okd-4.17").unwrap().unwrap_err();
        assert!(
            e.contains("pinned to OS 38.1.3.0, which is not a recorded release"),
            "{e}"
        );
        assert!(unpin(&state, "okd-4.17").unwrap());
        assert!(!unpin(&state, "okd-4.17").unwrap());
        assert_eq!(
            desired(&state, "okd-4.17").unwrap().unwrap().version,
            "39.20231204.3.0"
        );
    }

    #[test]
    fn candidates_are_tested_once_superseded_by_newer_ones_and_decided_once() {
        let state = State::open_in_memory().unwrap();
        let s = "okd-4.17";
        assert_eq!(
            propose(&state, s, "fedora-coreos", "sha256:a", "39.1.3.0", None, 1).unwrap(),
            Proposal::Testing
        );
        assert_eq!(
            propose(&state, s, "fedora-coreos", "sha256:a", "39.1.3.0", None, 2).unwrap(),
            Proposal::StillTesting
        );
        assert_eq!(testing(&state, s).unwrap().unwrap().digest, "sha256:a");
        // A newer OS image replaces the one being tested.
        propose(&state, s, "fedora-coreos", "sha256:b", "39.2.3.0", None, 3).unwrap();
        let all = candidates(&state, s).unwrap();
        assert_eq!(
            all.iter()
                .map(|c| (c.digest.as_str(), c.state))
                .collect::<Vec<_>>(),
            [
                ("sha256:b", CandidateState::Testing),
                ("sha256:a", CandidateState::Superseded)
            ]
        );
        let b = testing(&state, s).unwrap().unwrap();
        assert!(decide(
            &state,
            b.id,
            CandidateState::Rejected,
            "p1",
            Some("e2e failed"),
            4
        )
        .unwrap());
        assert!(!decide(&state, b.id, CandidateState::Rejected, "p2", None, 5).unwrap());
        assert_eq!(testing(&state, s).unwrap(), None);
        // Rejected once, never proposed again; an accept by hand still decides it.
        assert_eq!(
            propose(&state, s, "fedora-coreos", "sha256:b", "39.2.3.0", None, 6).unwrap(),
            Proposal::Rejected("p1".into())
        );
        assert!(decide(&state, b.id, CandidateState::Accepted, "p1", None, 7).unwrap());
        // A superseded image built again (a revert) is tested again.
        assert_eq!(
            propose(&state, s, "fedora-coreos", "sha256:a", "39.1.3.0", None, 8).unwrap(),
            Proposal::Retesting
        );
        let a = testing(&state, s).unwrap().unwrap();
        assert_eq!((a.digest.as_str(), a.created), ("sha256:a", 8));
    }

    #[test]
    fn polls_are_recorded_one_per_stream() {
        let state = State::open_in_memory().unwrap();
        assert_eq!(last_poll(&state, "s").unwrap(), None);
        let failed = PollRecord {
            at: 1,
            ok: false,
            message: "stable.json:3:5: metadata.last-modified: bad".into(),
        };
        record_poll(&state, "s", &failed).unwrap();
        assert_eq!(last_poll(&state, "s").unwrap(), Some(failed));
        let ok = PollRecord {
            at: 2,
            ok: true,
            message: "no new OS release".into(),
        };
        record_poll(&state, "s", &ok).unwrap();
        assert_eq!(last_poll(&state, "s").unwrap(), Some(ok));
    }
}
