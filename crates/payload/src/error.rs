//! One error type for the crate; each variant names the image, file or entry at fault.

/// Everything that can go wrong building or reading a release payload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a name, a flag, a mapping line, a component image or one of its manifests. The message
    /// names what is at fault and what to do.
    #[error("{0}")]
    Invalid(String),
    /// An image that should be a release payload is not a valid one.
    #[error("{image}: {reason}")]
    BadRelease {
        /// The release pull spec or reference.
        image: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `release extract` refused an entry of the release layer.
    #[error("refusing release entry '{entry}': {reason}; nothing was extracted")]
    UnsafeEntry {
        /// The tar entry name, as stored.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// Reading or writing images.
    #[error(transparent)]
    Oci(#[from] oci::Error),
    /// A local file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading commit logs for a changelog.
    #[error(transparent)]
    Changelog(#[from] crate::changelog::ChangelogError),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An [`Error::Io`] for `path`.
pub(crate) fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.as_ref().display().to_string();
    move |source| Error::Io { path, source }
}

/// Shorthand for [`Error::Invalid`].
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}
