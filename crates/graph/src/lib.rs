//! The update graph that clusters follow (Cincinnati protocol, `../shared/specs/cincinnati.md`).
