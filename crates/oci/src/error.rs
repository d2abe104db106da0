//! One error type for the crate; every variant names the input at fault and, where it helps, what to do.

use std::path::PathBuf;

use crate::Digest;

/// Everything that can go wrong reading, writing or moving images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference the user typed does not parse.
    #[error("invalid image reference '{input}': {reason}")]
    InvalidReference {
        /// What the user typed.
        input: String,
        /// Why it is wrong and what would be right.
        reason: String,
    },
    /// A digest string does not parse.
    #[error("invalid digest '{input}': {reason}")]
    InvalidDigest {
        /// The digest text.
        input: String,
        /// Why it is wrong.
        reason: String,
    },
    /// Content did not hash to the digest that names it.
    #[error("{what}: content does not match its digest (expected {expected}, got {actual}); the source is corrupt or tampered with, nothing was written")]
    DigestMismatch {
        /// The blob or manifest.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// Content was shorter or longer than its descriptor says (a truncated transfer, usually).
    #[error("{what}: expected {expected} bytes, got {actual} (truncated or oversized transfer); nothing was written")]
    SizeMismatch {
        /// The blob or manifest.
        what: String,
        /// Size from the descriptor.
        expected: u64,
        /// Bytes seen.
        actual: u64,
    },
    /// The registry wants credentials we do not have, or rejected the ones we sent.
    #[error("{target}: {reason}; log in with `podman login {registry}` or pass --authfile FILE with credentials for {registry}")]
    Unauthorized {
        /// The image or repository.
        target: String,
        /// The registry host.
        registry: String,
        /// What the registry said.
        reason: String,
    },
    /// The registry could not be reached at all.
    #[error("{target}: cannot reach registry {registry}: {reason}; check that it is running and the address is right")]
    Unreachable {
        /// The image or repository.
        target: String,
        /// The registry host.
        registry: String,
        /// The connection error.
        reason: String,
    },
    /// The registry's TLS certificate could not be verified.
    #[error("{target}: cannot verify the TLS certificate of {registry}: {reason}; trust its CA with SSL_CERT_FILE=CA.pem, or pass --tls-verify=false for a registry you trust")]
    Tls {
        /// The image or repository.
        target: String,
        /// The registry host.
        registry: String,
        /// The TLS error.
        reason: String,
    },
    /// The registry did not answer, or a transfer stalled, for longer than the timeout.
    #[error("{target}: {registry} timed out (nothing for {seconds}s); try again later, or raise --timeout for a slow registry")]
    Timeout {
        /// The image, repository or blob.
        target: String,
        /// The registry host.
        registry: String,
        /// The timeout.
        seconds: u64,
    },
    /// The registry said something okd-forge cannot follow (a bad redirect, an unreadable answer).
    #[error("{target}: {reason}")]
    Protocol {
        /// The image, repository or blob.
        target: String,
        /// What was wrong.
        reason: String,
    },
    /// A transfer started but was cut short (connection reset, registry stopped mid-body).
    #[error("{target}: the connection to {registry} broke off: {reason}; run the command again (what was copied is kept)")]
    Interrupted {
        /// The blob or manifest.
        target: String,
        /// The registry host.
        registry: String,
        /// The transport error.
        reason: String,
    },
    /// Something does not exist: a tag, a manifest, a blob, a layout.
    #[error("{what}: not found")]
    NotFound {
        /// What was looked up.
        what: String,
    },
    /// A registry answered with an error status we do not handle specially.
    #[error("{target}: registry answered {status} to {url}{detail}")]
    Registry {
        /// The image or repository.
        target: String,
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The registry's error message, with a leading ": ", or empty.
        detail: String,
    },
    /// A manifest we cannot use.
    #[error("{what}: {reason}")]
    BadManifest {
        /// The manifest.
        what: String,
        /// Why.
        reason: String,
    },
    /// An OCI layout directory that is not one, or is damaged.
    #[error("OCI layout {}: {reason}", path.display())]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Credentials file could not be read.
    #[error("auth file {}: {reason}", path.display())]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Whether trying again may succeed: connection trouble, 429, 5xx, a transfer cut short.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Interrupted { .. } | Error::Timeout { .. } => true,
            Error::Registry { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
