//! The OS gate's decisions (see [`build::osgate`]): a stream's OS candidate rides in its payloads
//! ([`Controller::snapshot`]) until one of them decides it.
//!
//! - A payload carrying the candidate is Accepted (by its jobs, or by hand): the candidate is
//!   accepted and promoted into the stream's tags, unless a newer candidate was accepted already.
//! - Every payload carrying it is Rejected or Failed: it is rejected, with that payload's
//!   reason; the stream keeps its OS, and the next payload goes back to it.
//!
//! The promotion comes first and is idempotent, so a crash between it and the decision is
//! repeated harmlessly by the next pass.

use build::osgate::{self, Candidate, CandidateState};

use super::{Action, Controller, ControllerError, Report};
use crate::lifecycle::Phase;

/// How a payload decides a candidate.
struct Decision<'a> {
    payload: &'a str,
    to: CandidateState,
    /// The event's kind and text.
    kind: &'a str,
    what: &'a str,
    /// Why it was rejected.
    reason: Option<&'a str>,
    /// Whether it entered the stream.
    promoted: bool,
}

impl Controller {
    /// The OS candidate being tested in `stream`, if the stream follows an OS.
    pub(super) fn os_candidate(&self, stream: &str) -> Result<Option<Candidate>, ControllerError> {
        if !self.follows_os(stream) {
            return Ok(None);
        }
        Ok(osgate::testing(&self.forge.state, stream)?)
    }

    /// Records `d` of candidate `c`: the event first (once per payload and kind), then the
    /// decision, so a crash between the two repeats neither.
    fn decide_candidate(
        &self,
        stream: &str,
        c: &Candidate,
        d: &Decision<'_>,
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        let now = self.now();
        if self.records().count_events(d.payload, d.kind)? == 0 {
            self.records()
                .note(stream, Some(d.payload), d.kind, d.what, now)?;
        }
        self.step("os-decide")?;
        if osgate::decide(&self.forge.state, c.id, d.to, d.payload, d.reason, now)? {
            report.actions.push(Action::Os {
                payload: d.payload.to_string(),
                version: c.version.clone(),
                accepted: d.to == CandidateState::Accepted,
                promoted: d.promoted,
            });
        }
        Ok(())
    }

    fn follows_os(&self, stream: &str) -> bool {
        self.forge
            .config
            .streams
            .get(stream)
            .is_some_and(|s| s.os.is_some())
    }

    /// Decides `stream`'s OS candidates from the payloads that carried them.
    pub(super) async fn decide_os(
        &self,
        stream: &str,
        report: &mut Report,
    ) -> Result<(), ControllerError> {
        if !self.follows_os(stream) {
            return Ok(());
        }
        let candidates = osgate::candidates(&self.forge.state, stream)?;
        let payloads: Vec<_> = self
            .records()
            .payloads(stream)?
            .into_iter()
            .filter(|p| p.stable_of.is_none())
            .collect();
        // What the stream's next payload would hold: a payload of exactly that was verified
        // already, and no other will be cut.
        let (_, next) = self.snapshot(stream)?;
        for c in &candidates {
            // The payloads cut since it was proposed decide it (an image tested again after a
            // revert is decided afresh), and one holding exactly what the stream would cut now;
            // newest first, as the records list them.
            let carrying: Vec<_> = payloads
                .iter()
                .filter(|p| p.inputs.get(&c.tag) == Some(&c.digest))
                .filter(|p| p.created >= c.created || p.inputs == next)
                .collect();
            let accepted_by = carrying.iter().find(|p| p.phase == Phase::Accepted);
            match (c.state, accepted_by) {
                (CandidateState::Accepted, _) => {}
                (_, Some(p)) => {
                    let newer_accepted = candidates
                        .iter()
                        .any(|o| o.id > c.id && o.state == CandidateState::Accepted);
                    if !newer_accepted {
                        self.step("os-promote")?;
                        let digest = c.digest.parse().map_err(|e: oci::Error| {
                            ControllerError::Store(format!("OS candidate {}: {e}", c.digest))
                        })?;
                        build::run::promote_tag(&self.forge, stream, &c.tag, &digest, c.build_id)
                            .await
                            .map_err(ControllerError::Store)?;
                    }
                    let what = if newer_accepted {
                        format!(
                            "OS {} ({}) accepted; the stream keeps the newer OS accepted before it",
                            c.version, p.name
                        )
                    } else {
                        format!(
                            "OS {} ({}) accepted: the stream's {} is now {}",
                            c.version, p.name, c.tag, c.digest
                        )
                    };
                    let decision = Decision {
                        payload: &p.name,
                        to: CandidateState::Accepted,
                        kind: "os-accepted",
                        what: &what,
                        reason: None,
                        promoted: !newer_accepted,
                    };
                    self.decide_candidate(stream, c, &decision, report)?;
                }
                (CandidateState::Testing, None)
                    if !carrying.is_empty()
                        && carrying
                            .iter()
                            .all(|p| matches!(p.phase, Phase::Rejected | Phase::Failed)) =>
                {
                    let p = carrying[0];
                    let reason = format!(
                        "{} was {}{}",
                        p.name,
                        p.phase,
                        p.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    );
                    let what = format!(
                        "OS {} rejected ({reason}); the stream keeps its OS",
                        c.version
                    );
                    let decision = Decision {
                        payload: &p.name,
                        to: CandidateState::Rejected,
                        kind: "os-rejected",
                        what: &what,
                        reason: Some(&reason),
                        promoted: false,
                    };
                    self.decide_candidate(stream, c, &decision, report)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
