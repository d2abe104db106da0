//! Image references as users type them, in skopeo's syntax:
//! `oci:PATH[:TAG|@DIGEST]` and `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{Digest, Error};

/// Docker Hub's canonical name, used when a reference names no registry.
pub const DOCKER_HUB: &str = "docker.io";

/// Which manifest of a repository: by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// A tag such as `latest` or `4.17.0-okd-scos.3`.
    Tag(String),
    /// A content digest.
    Digest(Digest),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Tag(t) => write!(f, ":{t}"),
            Selector::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// A repository in a registry: `host[:port]/path/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryRepo {
    /// `host[:port]`, normalised (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path, e.g. `okd/scos-release`.
    pub repository: String,
}

impl fmt::Display for RegistryRepo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker://{}/{}", self.registry, self.repository)
    }
}

/// Where an image lives and which one it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// An OCI image-layout directory.
    Layout {
        /// The directory.
        path: PathBuf,
        /// Tag (the `org.opencontainers.image.ref.name` annotation) or digest; none means "the only image".
        selector: Option<Selector>,
    },
    /// A repository in an OCI distribution registry.
    Registry {
        /// The repository.
        repo: RegistryRepo,
        /// Tag or digest; none means `latest`, as in skopeo.
        selector: Option<Selector>,
    },
}

impl ImageRef {
    /// The tag or digest, if the reference has one.
    pub fn selector(&self) -> Option<&Selector> {
        match self {
            ImageRef::Layout { selector, .. } | ImageRef::Registry { selector, .. } => {
                selector.as_ref()
            }
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Layout { path, selector } => {
                write!(f, "oci:{}", path.display())?;
                if let Some(s) = selector {
                    write!(f, "{s}")?;
                }
                Ok(())
            }
            ImageRef::Registry { repo, selector } => {
                write!(f, "{repo}")?;
                if let Some(s) = selector {
                    write!(f, "{s}")?;
                }
                Ok(())
            }
        }
    }
}

const USAGE: &str = "use oci:PATH[:TAG|@DIGEST] or docker://HOST[:PORT]/REPO[:TAG|@DIGEST]";

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| Error::InvalidReference {
            input: input.to_string(),
            reason,
        };
        if let Some(rest) = input.strip_prefix("docker://") {
            let (name, selector) = split_selector(rest).map_err(&bad)?;
            let repo = parse_repo(name).map_err(bad)?;
            Ok(ImageRef::Registry { repo, selector })
        } else if let Some(rest) = input.strip_prefix("oci:") {
            let (path, selector) = match rest.rsplit_once('@') {
                Some((p, d)) => (p, Some(Selector::Digest(parse_digest(d).map_err(&bad)?))),
                None => match rest.split_once(':') {
                    Some((p, t)) => (p, Some(Selector::Tag(parse_tag(t).map_err(&bad)?))),
                    None => (rest, None),
                },
            };
            if path.is_empty() {
                return Err(bad(format!("the layout path is empty; {USAGE}")));
            }
            Ok(ImageRef::Layout {
                path: PathBuf::from(path),
                selector,
            })
        } else {
            match input.split_once(':') {
                Some((transport, _)) if !transport.contains('/') => {
                    Err(bad(format!("unknown transport '{transport}'; {USAGE}")))
                }
                _ => Err(bad(format!("no transport given; {USAGE}"))),
            }
        }
    }
}

fn split_selector(rest: &str) -> Result<(&str, Option<Selector>), String> {
    if let Some((name, digest)) = rest.rsplit_once('@') {
        return Ok((name, Some(Selector::Digest(parse_digest(digest)?))));
    }
    // A tag follows the last ':' only when that ':' comes after the last '/' (else it is a port).
    match rest.rfind(':') {
        Some(i) if i > rest.rfind('/').unwrap_or(0) => {
            Ok((&rest[..i], Some(Selector::Tag(parse_tag(&rest[i + 1..])?))))
        }
        _ => Ok((rest, None)),
    }
}

fn parse_digest(d: &str) -> Result<Digest, String> {
    d.parse::<Digest>().map_err(|e| e.to_string())
}

/// Tags follow the distribution spec: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn parse_tag(t: &str) -> Result<String, String> {
    let ok_first = t
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let ok_rest = t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok_first || !ok_rest || t.len() > 128 {
        return Err(format!(
            "tag '{t}' is not valid: use up to 128 of A-Z a-z 0-9 _ . - not starting with . or -"
        ));
    }
    Ok(t.to_string())
}

fn parse_repo(name: &str) -> Result<RegistryRepo, String> {
    if name.is_empty() {
        return Err(format!("the repository is empty; {USAGE}"));
    }
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let names_registry =
        !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    let (registry, repository) = if names_registry {
        (first.to_string(), rest.to_string())
    } else if name.contains('/') {
        (DOCKER_HUB.to_string(), name.to_string())
    } else {
        (DOCKER_HUB.to_string(), format!("library/{name}"))
    };
    let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        registry
    };
    if registry.contains(':') {
        let port = registry.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
        if port.parse::<u16>().is_err() && !registry.starts_with('[') {
            return Err(format!("registry '{registry}' has a bad port '{port}'"));
        }
    }
    if repository.is_empty() {
        return Err(format!(
            "no repository after the registry '{registry}'; {USAGE}"
        ));
    }
    for component in repository.split('/') {
        if !valid_component(component) {
            return Err(format!(
                "repository path component '{component}' is not valid: use lowercase a-z 0-9 separated by . _ __ or -"
            ));
        }
    }
    Ok(RegistryRepo {
        registry,
        repository,
    })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution spec's path component.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(s: &str) -> (String, String, Option<Selector>) {
        match s.parse::<ImageRef>().unwrap() {
            ImageRef::Registry { repo, selector } => (repo.registry, repo.repository, selector),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_references() {
        assert_eq!(
            reg("docker://127.0.0.1:5000/okd/release:4.17"),
            (
                "127.0.0.1:5000".into(),
                "okd/release".into(),
                Some(Selector::Tag("4.17".into()))
            )
        );
        assert_eq!(reg("docker://quay.io/okd/scos-release").2, None);
        assert_eq!(reg("docker://busybox").1, "library/busybox");
        assert_eq!(reg("docker://localhost/a/b:c").0, "localhost");
        let d = Digest::sha256_of(b"x");
        assert_eq!(
            reg(&format!("docker://quay.io/a@{d}")).2,
            Some(Selector::Digest(d))
        );
    }

    #[test]
    fn layout_references() {
        let r: ImageRef = "oci:/tmp/store:v1".parse().unwrap();
        assert_eq!(
            r,
            ImageRef::Layout {
                path: "/tmp/store".into(),
                selector: Some(Selector::Tag("v1".into()))
            }
        );
        assert_eq!(r.to_string(), "oci:/tmp/store:v1");
        let r: ImageRef = "oci:rel/dir".parse().unwrap();
        assert_eq!(r.selector(), None);
    }

    #[test]
    fn bad_references_say_what_to_do() {
        for (input, needle) in [
            ("foo:bar", "unknown transport 'foo'"),
            ("quay.io/okd/x", "no transport"),
            ("docker://Quay/UPPER", "not valid"),
            ("docker://quay.io/a:b:c", "not valid"),
            ("docker://quay.io/a@sha256:00", "needs 64"),
            ("oci:", "empty"),
            ("oci:/x:-bad", "not valid"),
        ] {
            let e = input.parse::<ImageRef>().unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
            assert!(e.contains(input), "{input}: {e}");
        }
    }
}
