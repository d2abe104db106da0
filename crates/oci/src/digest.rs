//! Content digests (`sha256:<hex>`) and streaming verification.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

use crate::Error;

/// A digest algorithm okd-forge can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `sha256`, the algorithm of every registry in practice.
    Sha256,
    /// `sha512`, allowed by the OCI image spec.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears in a digest and in `blobs/<alg>/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest that is always well formed: a known algorithm and lowercase hex of the right length.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// The digest of `bytes` with the same algorithm as `self`.
    pub fn same_algorithm_of(&self, bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(self.algorithm);
        h.update(bytes);
        h.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part, the file name of the blob in an OCI layout.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for progress lines: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm.as_str(), &self.hex[..12])
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| Error::InvalidDigest {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("expected ALGORITHM:HEX, e.g. sha256:<64 hex digits>"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(bad(&format!(
                    "unsupported algorithm '{other}' (use sha256 or sha512)"
                )))
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(bad(&format!(
                "{} needs {} hex digits, got {}",
                alg,
                algorithm.hex_len(),
                hex.len()
            )));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("the hex part must be lowercase 0-9a-f"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hashing for one algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// sha256 state.
    Sha256(Sha256),
    /// sha512 state.
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// Feed bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest {
                algorithm: Algorithm::Sha256,
                hex: hex::encode(h.finalize()),
            },
            Hasher::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                hex: hex::encode(h.finalize()),
            },
        }
    }
}

/// Checks a stream of bytes against an expected digest and size as it passes.
///
/// Call [`Verifier::update`] for each chunk and [`Verifier::finish`] at the end of the stream; a chunk that
/// takes the total past the expected size fails at once, so a lying registry cannot make us read forever.
pub struct Verifier {
    what: String,
    expected: Digest,
    expected_size: Option<u64>,
    seen: u64,
    hasher: Hasher,
}

impl Verifier {
    /// Expect `digest` (and `size`, if known) for the content named `what` in errors.
    pub fn new(what: impl Into<String>, digest: &Digest, size: Option<u64>) -> Verifier {
        Verifier {
            what: what.into(),
            expected: digest.clone(),
            expected_size: size,
            seen: 0,
            hasher: Hasher::new(digest.algorithm()),
        }
    }

    /// Feed one chunk.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), Error> {
        self.seen += chunk.len() as u64;
        if let Some(size) = self.expected_size {
            if self.seen > size {
                return Err(Error::SizeMismatch {
                    what: self.what.clone(),
                    expected: size,
                    actual: self.seen,
                });
            }
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// Whether the expected size is known and every byte of it has been seen.
    pub fn is_complete(&self) -> bool {
        self.expected_size == Some(self.seen)
    }

    /// Check the end of the stream: the size, then the digest.
    pub fn finish(self) -> Result<(), Error> {
        if let Some(size) = self.expected_size {
            if self.seen != size {
                return Err(Error::SizeMismatch {
                    what: self.what,
                    expected: size,
                    actual: self.seen,
                });
            }
        }
        let actual = self.hasher.finish();
        if actual != self.expected {
            return Err(Error::DigestMismatch {
                what: self.what,
                expected: self.expected,
                actual,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "sha256",
            "md5:abcd",
            "sha256:ABC",
            "sha256:e3b0",
            "sha256:zz",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn verifier_catches_truncation_overrun_and_mismatch() {
        let d = Digest::sha256_of(b"hello");
        let mut v = Verifier::new("blob", &d, Some(5));
        v.update(b"hel").unwrap();
        assert!(matches!(v.finish(), Err(Error::SizeMismatch { .. })));
        let mut v = Verifier::new("blob", &d, Some(5));
        assert!(v.update(b"hello!").is_err());
        let mut v = Verifier::new("blob", &d, Some(5));
        v.update(b"jello").unwrap();
        assert!(matches!(v.finish(), Err(Error::DigestMismatch { .. })));
        let mut v = Verifier::new("blob", &d, Some(5));
        v.update(b"hello").unwrap();
        v.finish().unwrap();
    }
}
