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

impl Controller {
    /// The OS candidate being tested in `stream`, if the stream follows an OS.
    pub(super) fn os_candidate(&self, stream: &str) -> Result<Option<Candidate>, ControllerError> {
        if !self.follows_os(stream) {
            return Ok(None);
        }
        Ok(osgate::testing(&self.forge.state, stream)?)
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
        for c in &candidates {
            if !matches!(c.state, CandidateState::Testing | CandidateState::Rejected) {
                continue;
            }
            // Newest first, as the records list them.
            let carrying: Vec<_> = payloads
                .iter()
                .filter(|p| p.inputs.get(&c.tag) == Some(&c.digest))
                .collect();
            let now = self.now();
            if let Some(p) = carrying.iter().find(|p| p.phase == Phase::Accepted) {
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
                if osgate::decide(
                    &self.forge.state,
                    c.id,
                    CandidateState::Accepted,
                    &p.name,
                    None,
                    now,
                )? {
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
                    self.records()
                        .note(stream, Some(&p.name), "os-accepted", &what, now)?;
                    report.actions.push(Action::Os {
                        payload: p.name.clone(),
                        version: c.version.clone(),
                        accepted: true,
                        promoted: !newer_accepted,
                    });
                }
            } else if c.state == CandidateState::Testing
                && !carrying.is_empty()
                && carrying
                    .iter()
                    .all(|p| matches!(p.phase, Phase::Rejected | Phase::Failed))
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
                if osgate::decide(
                    &self.forge.state,
                    c.id,
                    CandidateState::Rejected,
                    &p.name,
                    Some(&reason),
                    now,
                )? {
                    let what = format!(
                        "OS {} rejected ({reason}); the stream keeps its OS",
                        c.version
                    );
                    self.records()
                        .note(stream, Some(&p.name), "os-rejected", &what, now)?;
                    report.actions.push(Action::Os {
                        payload: p.name.clone(),
                        version: c.version.clone(),
                        accepted: false,
                        promoted: false,
                    });
                }
            }
        }
        Ok(())
    }
}
