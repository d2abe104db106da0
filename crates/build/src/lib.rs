//! The build stage of okd-forge: the `forge.yaml` configuration ([`config`], parsed into raw types and
//! validated into the model the rest of the program uses, [`import`] from ci-operator configs and
//! [`import_rc`] of stream release settings from release-controller configs),
//! git sources ([`git`]), the two builders ([`buildah`], [`native`]), the state database ([`state`]),
//! one reconcile of the streams with their branches ([`run`]): resolve, hash, build what changed,
//! promote; and the OS content ([`os`]): Fedora CoreOS and CentOS Stream CoreOS stream metadata, the
//! poll decision, and the machine-os version and labels.
//!
//! ```
//! let yaml = "
//! variants: { okd-scos: { build_args: { TAGS: scos } } }
//! components:
//!   installer:
//!     git: https://github.com/openshift/installer
//!     images: [ { to: installer, containerfile: images/installer/Dockerfile.ci } ]
//! streams:
//!   okd-scos-4.17: { variant: okd-scos, branch: release-4.17 }
//! ";
//! let config = build::config::parse(yaml, "forge.yaml", std::path::Path::new(".")).unwrap();
//! assert_eq!(config.streams["okd-scos-4.17"].minor.to_string(), "4.17");
//! ```

pub mod buildah;
pub mod config;
pub mod git;
pub mod gitwrite;
pub mod import;
pub mod import_rc;
pub mod native;
pub mod os;
pub mod osgate;
pub mod run;
pub mod state;
