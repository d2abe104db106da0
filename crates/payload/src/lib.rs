//! OpenShift/OKD release payloads, compatible with `oc adm release` and the cluster-version-operator:
//! assemble one ([`new::assemble`], [`new::push`]), read it ([`info::load`]), extract its manifests
//! ([`extract::extract`]) and compare two ([`diff::diff`], with commit logs from [`changelog`]);
//! sign it and verify its signatures as the cluster-version-operator does ([`signature`]).
//!
//! The format is described in `specs/payload-format.md`: the CVO image plus one gzip layer holding
//! `release-manifests/` (image-references, release-metadata and the operators' manifests).
//!
//! ```no_run
//! # async fn run() -> payload::Result<()> {
//! use std::sync::Arc;
//! use oci::{RegistryOptions, Stores};
//! use payload::source::Sources;
//!
//! let sources = Sources::new(Arc::new(Stores::new(RegistryOptions::default())), None, None)?;
//! let r = "docker://quay.io/okd/scos-release:4.17.0-okd-scos.1".parse()?;
//! let info = payload::info::load(&sources, &r, None).await?;
//! println!("{} has {} images", info.name(), info.references.spec.tags.len());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod changelog;
pub mod diff;
mod error;
pub mod extract;
pub mod imagestream;
pub mod info;
pub mod inputs;
pub mod layer;
pub mod manifests;
pub mod metadata;
pub mod mirror;
pub mod new;
pub mod rpmdb;
pub mod signature;
pub mod source;
pub mod tools;
pub mod version;

pub use error::{Error, Result};
