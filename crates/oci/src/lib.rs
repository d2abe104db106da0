//! OCI images for okd-forge: the image model, the embedded content store (an OCI image-layout
//! directory), a client for the OCI distribution API, and the copy engine that moves images between them.
//!
//! Every byte is checked against its digest, nothing half-written is ever visible, and manifests keep
//! their exact bytes so digests never change in transit.
//!
//! ```no_run
//! # async fn run() -> oci::Result<()> {
//! use std::sync::Arc;
//! use oci::{Copier, ImageRef, NoProgress, RegistryOptions, Stores};
//!
//! let src: ImageRef = "docker://quay.io/okd/scos-release:4.17.0-okd-scos.1".parse()?;
//! let dst: ImageRef = "oci:./var/store:4.17.0-okd-scos.1".parse()?;
//! let stores = Stores::new(RegistryOptions::default());
//! let copier = Copier::new(6, 3, Arc::new(NoProgress));
//! let report = copier
//!     .copy(&stores.open(&src, false)?, src.selector(), &stores.open(&dst, true)?, Some("4.17.0-okd-scos.1"))
//!     .await?;
//! println!("{} blobs copied", report.blobs_copied);
//! # Ok(()) }
//! ```

pub mod auth;
pub mod compose;
pub mod copy;
pub mod digest;
mod error;
pub mod layout;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod store;
pub mod stream;

pub use copy::{BlobOutcome, Copier, CopyReport, CopyTotals, NoProgress, Progress};
pub use digest::Digest;
pub use error::{Error, Result};
pub use layout::Layout;
pub use manifest::{media_type, Descriptor, RawManifest};
pub use reference::{ImageRef, RegistryRepo, Selector};
pub use registry::{Registry, RegistryOptions};
pub use store::{Store, Stores};
