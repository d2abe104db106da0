//! Release signatures as the cluster-version-operator verifies them (`specs/payload-format.md` §6):
//! the "atomic container signature" JSON ([`AtomicSignature`]), signed as an OpenPGP message, as
//! `gpg --sign` makes ([`Signer`]), checked against a keyring ([`Keyring::verify`]); signature
//! stores laid out as `<base>/sha256=<hex>/signature-<N>` ([`SignatureDir`] on disk,
//! [`SignatureStore`] to read one over HTTP as the CVO does); and the verification ConfigMap that a
//! payload carries so that clusters trust the key and the store ([`verification_configmap`]).
//!
//! ```no_run
//! # fn run() -> payload::signature::Result<()> {
//! use payload::signature::{AtomicSignature, Keyring, SignatureDir, Signer};
//!
//! let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
//!     .parse()
//!     .unwrap();
//! let signer = Signer::from_file("release-key.asc".as_ref(), None)?;
//! let json = AtomicSignature::new(&digest, "quay.io/okd/scos-release:4.17.0-okd-scos.1");
//! let written = SignatureDir::new("signatures").sign(&signer, &json)?;
//! let keyring = Keyring::from_file("release-key.pub".as_ref())?;
//! let verified = keyring.verify("signature-1", &std::fs::read(&written.path).unwrap())?;
//! verified.signature.check(&digest, None)?;
//! # Ok(()) }
//! ```

use std::io::{BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci::Digest;
use pgp::composed::{
    ArmorOptions, DetachedSignature, Message, MessageBuilder, PublicOrSecret, SignedPublicKey,
    SignedPublicSubKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, Password, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// `critical.type` of every signature.
pub const SIGNATURE_TYPE: &str = "atomic container signature";
/// The most signatures per digest a store holds: the CVO reads `signature-1` to `signature-9`.
pub const MAX_SIGNATURES: u32 = 9;
/// The annotation that marks the ConfigMap manifest the CVO builds its verifier from.
pub const VERIFICATION_ANNOTATION: &str = "release.openshift.io/verification-config-map";
/// The namespace of the verification ConfigMap.
pub const CONFIG_MAP_NAMESPACE: &str = "openshift-config-managed";
/// The name of the verification ConfigMap: the object the cluster-update-keys operator ships, so
/// that okd-forge's replaces it instead of competing with it.
pub const CONFIG_MAP_NAME: &str = "release-verification";
/// The `release-manifests/` file name of the verification ConfigMap. The CVO takes the **first**
/// annotated ConfigMap in lexical order, so this is the file name of the cluster-update-keys
/// operator's ConfigMap: a payload that carries okd-forge's writes it under this name and so
/// replaces that one (a different name would sort after it and be ignored).
pub const CONFIG_MAP_FILE: &str = "0000_90_cluster-update-keys_configmap.yaml";
/// The largest signature file read (the JSON is a few hundred bytes; an RSA-4096 signature 512).
const MAX_SIGNATURE_BYTES: u64 = 64 << 10;

/// What can go wrong signing, verifying or storing signatures.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// Bad input: a key file, a passphrase, a store URL, a ConfigMap name. The message says what
    /// to do.
    #[error("{0}")]
    Invalid(String),
    /// A signature that does not verify; the message names the signature and what failed.
    #[error("{0}")]
    Rejected(String),
    /// A local file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A signature store that could not be read.
    #[error("signature store {url}: {reason}")]
    Store {
        /// What was requested.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// Results of this module.
pub type Result<T, E = SignatureError> = std::result::Result<T, E>;

fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> SignatureError {
    let path = path.as_ref().display().to_string();
    move |source| SignatureError::Io { path, source }
}

fn invalid(msg: impl Into<String>) -> SignatureError {
    SignatureError::Invalid(msg.into())
}

fn rejected(msg: impl Into<String>) -> SignatureError {
    SignatureError::Rejected(msg.into())
}

// ------------------------------------------------------------------------------------------------
// The JSON
// ------------------------------------------------------------------------------------------------

/// The "atomic container signature" JSON, exactly as containers/image and library-go read it:
/// unknown fields are rejected when parsing, and none are written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtomicSignature {
    /// What the signature vouches for.
    pub critical: Critical,
    /// Informational fields.
    #[serde(default)]
    pub optional: Optional,
}

/// `critical`: the type, the image digest and the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Critical {
    /// Always [`SIGNATURE_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The signed manifest.
    pub image: Image,
    /// The name the image was signed under.
    pub identity: Identity,
}

/// `critical.image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// `sha256:<hex>` of the release manifest (of the list, for a manifest list).
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

/// `critical.identity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// A docker reference, e.g. `quay.io/okd/scos-release:4.17.0-okd-scos.1`. The CVO requires
    /// it non-empty and compares it with nothing.
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

/// `optional`: who signed and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optional {
    /// The signing program, e.g. `okd-forge 0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

impl AtomicSignature {
    /// A signature of `digest` under `identity`, with no creator or timestamp.
    pub fn new(digest: &Digest, identity: &str) -> AtomicSignature {
        AtomicSignature {
            critical: Critical {
                kind: SIGNATURE_TYPE.into(),
                image: Image {
                    docker_manifest_digest: digest.to_string(),
                },
                identity: Identity {
                    docker_reference: identity.into(),
                },
            },
            optional: Optional::default(),
        }
    }

    /// The same with `optional.creator` and `optional.timestamp`.
    pub fn with_optional(mut self, creator: Option<String>, timestamp: Option<i64>) -> Self {
        self.optional = Optional { creator, timestamp };
        self
    }

    /// The JSON as signed: compact, keys in the order of §6.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the signature serializes")
    }

    /// Parse signed content, rejecting unknown fields as the CVO does.
    pub fn parse(bytes: &[u8]) -> Result<AtomicSignature, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The signed digest, as written.
    pub fn digest(&self) -> &str {
        &self.critical.image.docker_manifest_digest
    }

    /// The signed identity.
    pub fn identity(&self) -> &str {
        &self.critical.identity.docker_reference
    }

    /// What the CVO checks of the content: the type, a non-empty identity, and that the signed
    /// digest is `digest`. With `identity`, the signed reference must also be in that repository
    /// (`REPO`: any tag or digest of it) or be exactly that reference (`REPO:TAG`, `REPO@DIGEST`).
    pub fn check(&self, digest: &Digest, identity: Option<&str>) -> Result<()> {
        if self.critical.kind != SIGNATURE_TYPE {
            return Err(rejected(format!(
                "the signature type is '{}', not '{SIGNATURE_TYPE}'",
                self.critical.kind
            )));
        }
        if self.digest() != digest.to_string() {
            return Err(rejected(format!(
                "the signature is for {}, not for {digest}",
                self.digest()
            )));
        }
        let signed = self.identity();
        if signed.is_empty() {
            return Err(rejected(
                "the signature has an empty identity (critical.identity.docker-reference)",
            ));
        }
        if let Some(want) = identity {
            if !identity_matches(signed, want) {
                return Err(rejected(format!(
                    "the signature is for the identity '{signed}', not '{want}'"
                )));
            }
        }
        Ok(())
    }
}

/// Whether the signed reference `signed` is `want`, or in the repository `want`.
fn identity_matches(signed: &str, want: &str) -> bool {
    signed == want
        || signed
            .strip_prefix(want)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'))
}

// ------------------------------------------------------------------------------------------------
// Keys
// ------------------------------------------------------------------------------------------------

/// Every key of an armored or binary OpenPGP file (a keyring, an export, a secret key file).
fn read_keys(what: &str, bytes: &[u8]) -> Result<Vec<PublicOrSecret>> {
    let (keys, _) = PublicOrSecret::from_reader_many(bytes)
        .map_err(|e| invalid(format!("{what}: not an OpenPGP key file: {e}")))?;
    let keys = keys
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{what}: not an OpenPGP key file: {e}")))?;
    if keys.is_empty() {
        return Err(invalid(format!("{what}: no OpenPGP key in it")));
    }
    Ok(keys)
}

/// The fingerprint as gpg prints it (upper-case hex).
fn fingerprint(k: &(impl KeyDetails + ?Sized)) -> String {
    format!("{:X}", k.fingerprint())
}

/// Whether the CVO's OpenPGP library (Go's golang.org/x/crypto/openpgp) reads a key of this kind:
/// RSA, DSA, ElGamal, and ECDSA or ECDH on NIST curves. It does not read EdDSA or Curve25519/448
/// keys ("unsupported feature: public key type: 22"), and skips a certificate that has one.
fn cvo_reads(k: &(impl KeyDetails + ?Sized)) -> bool {
    use pgp::crypto::public_key::PublicKeyAlgorithm as A;
    use pgp::types::{EcdhPublicParams, PublicParams};
    match k.algorithm() {
        A::RSA
        | A::RSAEncrypt
        | A::RSASign
        | A::DSA
        | A::ECDSA
        | A::Elgamal
        | A::ElgamalEncrypt => true,
        A::ECDH => !matches!(
            k.public_params(),
            PublicParams::ECDH(EcdhPublicParams::Curve25519Legacy { .. })
        ),
        _ => false,
    }
}

/// The first user ID of a key, for messages.
fn user_id(k: &SignedPublicKey) -> String {
    k.details
        .users
        .first()
        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
        .unwrap_or_default()
}

/// Signs with one secret key: the primary key, or its signing subkey when only a subkey may sign.
pub struct Signer {
    key: SignedSecretKey,
    /// The index of the signing subkey in `secret_subkeys`; None: the primary key.
    subkey: Option<usize>,
    passphrase: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.fingerprint())
    }
}

/// The environment variable that may hold the signing key's passphrase.
pub const PASSPHRASE_ENV: &str = "OKD_FORGE_SIGNING_PASSPHRASE";

impl Signer {
    /// The key of `path`, unlocked with the first line of `passphrase_file`, else with
    /// `$OKD_FORGE_SIGNING_PASSPHRASE` when it is set.
    pub fn load(path: &Path, passphrase_file: Option<&Path>) -> Result<Signer> {
        let passphrase = match passphrase_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        invalid(format!(
                            "cannot read the passphrase file {}: {e}",
                            f.display()
                        ))
                    })?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            None => std::env::var(PASSPHRASE_ENV).ok(),
        };
        Signer::from_file(path, passphrase)
    }

    /// The first secret key of `path` (armored or binary, e.g. `gpg --export-secret-keys`),
    /// unlocked with `passphrase` when it is protected.
    pub fn from_file(path: &Path, passphrase: Option<String>) -> Result<Signer> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Signer::from_bytes(&path.display().to_string(), &bytes, passphrase)
    }

    /// The first secret key of `bytes`; `what` names them in errors.
    pub fn from_bytes(what: &str, bytes: &[u8], passphrase: Option<String>) -> Result<Signer> {
        let key = read_keys(what, bytes)?
            .into_iter()
            .find_map(|k| SignedSecretKey::try_from(k).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "{what} holds public keys only; give the secret key (gpg \
                     --export-secret-keys --armor KEYID)"
                ))
            })?;
        key.verify_bindings().map_err(|e| {
            invalid(format!(
                "{what}: the key's self-signatures do not verify: {e}"
            ))
        })?;
        let subkey = signing_subkey(&key);
        let signer = Signer {
            key,
            subkey,
            passphrase: passphrase.unwrap_or_default(),
        };
        let protected = match signer.subkey {
            Some(i) => signer.key.secret_subkeys[i]
                .key
                .secret_params()
                .is_encrypted(),
            None => signer.key.primary_key.secret_params().is_encrypted(),
        };
        // Unlock once now, so that a missing or wrong passphrase is reported before any work.
        if let Err(e) =
            signer
                .signing_key()
                .sign(&signer.password(), HashAlgorithm::Sha256, &[0; 32])
        {
            return Err(invalid(if protected && signer.passphrase.is_empty() {
                format!(
                    "{what}: the key {} is protected by a passphrase; give it with \
                     --passphrase-file or OKD_FORGE_SIGNING_PASSPHRASE",
                    signer.fingerprint()
                )
            } else if protected {
                format!(
                    "{what}: cannot unlock the key {} with the passphrase given (wrong \
                     passphrase?): {e}",
                    signer.fingerprint()
                )
            } else {
                format!("{what}: the key {} cannot sign: {e}", signer.fingerprint())
            }));
        }
        Ok(signer)
    }

    fn signing_key(&self) -> &dyn SigningKey {
        match self.subkey {
            Some(i) => &self.key.secret_subkeys[i].key,
            None => &self.key.primary_key,
        }
    }

    fn password(&self) -> Password {
        Password::from(self.passphrase.as_str())
    }

    /// The fingerprint of the key that signs (the subkey's, when a subkey signs).
    pub fn fingerprint(&self) -> String {
        match self.subkey {
            Some(i) => fingerprint(&self.key.secret_subkeys[i].key),
            None => fingerprint(&self.key.primary_key),
        }
    }

    /// The public half, to verify with or to publish.
    pub fn keyring(&self) -> Keyring {
        Keyring {
            keys: vec![self.key.to_public_key()],
        }
    }

    /// `data` signed as an OpenPGP message (one-pass signature, literal data, signature), binary,
    /// as stores serve it.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        let key = self.signing_key();
        let mut builder = MessageBuilder::from_bytes("", data.to_vec());
        builder.sign(key, self.password(), key.hash_alg());
        builder
            .to_vec(rand_core::OsRng)
            .map_err(|e| invalid(format!("signing with {}: {e}", self.fingerprint())))
    }

    /// A detached, armored signature of `data` (`gpg --detach-sign --armor`), as
    /// `sha256sum.txt.asc` beside release tools: `gpg --verify sha256sum.txt.asc sha256sum.txt`
    /// checks it.
    pub fn sign_detached(&self, data: &[u8]) -> Result<String> {
        fn detached(
            key: &impl SigningKey,
            password: &Password,
            data: &[u8],
        ) -> pgp::errors::Result<DetachedSignature> {
            DetachedSignature::sign_binary_data(
                rand_core::OsRng,
                key,
                password,
                key.hash_alg(),
                data,
            )
        }
        let signed = match self.subkey {
            Some(i) => detached(&self.key.secret_subkeys[i].key, &self.password(), data),
            None => detached(&self.key.primary_key, &self.password(), data),
        };
        signed
            .and_then(|s| s.to_armored_string(ArmorOptions::default()))
            .map_err(|e| invalid(format!("signing with {}: {e}", self.fingerprint())))
    }
}

/// The subkey to sign with when the primary key may not sign but a subkey may.
fn signing_subkey(key: &SignedSecretKey) -> Option<usize> {
    let self_sigs = key
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(key.details.direct_signatures.iter());
    let primary_flags: Vec<_> = self_sigs.map(Signature::key_flags).collect();
    let primary_signs = primary_flags.iter().any(|f| f.sign())
        || primary_flags
            .iter()
            .all(|f| !f.certify() && !f.encrypt_comms() && !f.encrypt_storage());
    if primary_signs {
        return None;
    }
    key.secret_subkeys
        .iter()
        .position(|s| s.signatures.iter().any(|sig| sig.key_flags().sign()))
}

/// Why a key that made a signature may not be trusted: its certificate (or, for a subkey, the
/// subkey) is revoked, or it expired before `now` (seconds since the epoch). The self-signatures
/// were verified when the keyring was read, so their presence is enough.
fn unusable(
    cert: &SignedPublicKey,
    subkey: Option<&SignedPublicSubKey>,
    now: u64,
) -> Option<String> {
    if !cert.details.revocation_signatures.is_empty() {
        return Some("is revoked".into());
    }
    // The key expiration time of the newest of `sigs`, added to `created`.
    let expiry = |created: pgp::types::Timestamp, sigs: &mut dyn Iterator<Item = &Signature>| {
        sigs.max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))
            .and_then(Signature::key_expiration_time)
            .filter(|d| d.as_secs() > 0)
            .map(|d| u64::from(created.as_secs()) + u64::from(d.as_secs()))
    };
    let mut self_sigs = cert
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(cert.details.direct_signatures.iter());
    let mut expires = expiry(cert.primary_key.created_at(), &mut self_sigs);
    if let Some(s) = subkey {
        let typ = |t| move |g: &&Signature| g.typ() == Some(t);
        if s.signatures
            .iter()
            .any(|g| typ(SignatureType::SubkeyRevocation)(&g))
        {
            return Some("is a revoked subkey".into());
        }
        let mut bindings = s
            .signatures
            .iter()
            .filter(typ(SignatureType::SubkeyBinding));
        let sub = expiry(s.key.created_at(), &mut bindings);
        expires = match (expires, sub) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let expires = expires?;
    (expires <= now).then(|| format!("expired at {expires} (seconds since the epoch)"))
}

/// Public keys to verify signatures with.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

/// A signature that verified: its content and who signed it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The content.
    pub signature: AtomicSignature,
    /// The content as signed.
    pub json: Vec<u8>,
    /// The fingerprint of the key that made it.
    pub key: String,
    /// The user ID of that key's certificate.
    pub user: String,
    /// When it was made (seconds since the epoch).
    pub created: Option<u32>,
}

impl Keyring {
    /// Every key of `path` (armored or binary; secret keys count by their public half).
    pub fn from_file(path: &Path) -> Result<Keyring> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        Keyring::from_bytes(&path.display().to_string(), &bytes)
    }

    /// Every key of `bytes`; `what` names them in errors.
    pub fn from_bytes(what: &str, bytes: &[u8]) -> Result<Keyring> {
        let mut keys = Vec::new();
        for k in read_keys(what, bytes)? {
            let public = match k {
                PublicOrSecret::Secret(k) => k.to_public_key(),
                PublicOrSecret::Public(k) => k,
            };
            public.verify_bindings().map_err(|e| {
                invalid(format!(
                    "{what}: the self-signatures of key {} do not verify: {e}",
                    fingerprint(&public.primary_key)
                ))
            })?;
            keys.push(public);
        }
        Ok(Keyring { keys })
    }

    /// The keys.
    pub fn keys(&self) -> &[SignedPublicKey] {
        &self.keys
    }

    /// The certificates (primary key fingerprints) that the cluster-version-operator cannot read
    /// because they or one of their subkeys use EdDSA or Curve25519/448 (what gpg makes by default
    /// since 2.3): clusters trusting them verify nothing. Use RSA keys for release signing.
    pub fn unreadable_by_cvo(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| {
                !cvo_reads(&k.primary_key) || k.public_subkeys.iter().any(|s| !cvo_reads(&s.key))
            })
            .map(|k| fingerprint(&k.primary_key))
            .collect()
    }

    /// The primary key fingerprints.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| fingerprint(&k.primary_key))
            .collect()
    }

    /// The keys as one ASCII-armored public key block (what `gpg --export --armor` writes).
    pub fn armored(&self) -> String {
        let mut out = Vec::new();
        pgp::armor::write(
            &self.keys,
            pgp::armor::BlockType::PublicKey,
            &mut out,
            None,
            true,
        )
        .expect("writing to memory succeeds");
        String::from_utf8(out).expect("ASCII armor is UTF-8")
    }

    /// Verify the OpenPGP message `message` (binary or armored, compressed or not) against the
    /// keyring: it must be signed by one of its keys (primary or subkey), the key neither revoked
    /// nor expired, the signature unexpired, and its content an atomic container signature.
    /// `what` names the message in errors. The content is not compared with any digest here: see
    /// [`AtomicSignature::check`].
    pub fn verify(&self, what: &str, message: &[u8]) -> Result<Verified> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        self.verify_at(what, message, now)
    }

    /// [`Keyring::verify`] at `now` (since the epoch).
    pub fn verify_at(&self, what: &str, message: &[u8], now: Duration) -> Result<Verified> {
        let not_openpgp = |e: pgp::errors::Error| {
            rejected(format!(
                "{what}: not a valid OpenPGP signed message (corrupt or tampered?): {e}"
            ))
        };
        let (mut msg, _) = Message::from_reader(BufReader::new(message)).map_err(not_openpgp)?;
        while msg.is_compressed() {
            msg = msg.decompress().map_err(not_openpgp)?;
        }
        if !msg.is_signed() {
            return Err(rejected(format!(
                "{what}: the OpenPGP message is not signed"
            )));
        }
        let mut data = Vec::new();
        (&mut msg)
            .take(MAX_SIGNATURE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| {
                rejected(format!(
                    "{what}: the signed content cannot be read (corrupt or tampered?): {e}"
                ))
            })?;
        if data.len() as u64 > MAX_SIGNATURE_BYTES {
            return Err(rejected(format!(
                "{what}: the signed content is larger than {MAX_SIGNATURE_BYTES} bytes"
            )));
        }
        // Every verifying key: each certificate's primary key and subkeys.
        type Candidate<'k> = (
            &'k dyn VerifyingKey,
            &'k SignedPublicKey,
            Option<&'k SignedPublicSubKey>,
        );
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        for k in &self.keys {
            candidates.push((&k.primary_key, k, None));
            for s in &k.public_subkeys {
                candidates.push((&s.key, k, Some(s)));
            }
        }
        let keys: Vec<&dyn VerifyingKey> = candidates.iter().map(|(k, _, _)| *k).collect();
        let results = msg.verify_nested(&keys).map_err(not_openpgp)?;
        let found = results
            .iter()
            .zip(&candidates)
            .find_map(|(r, (k, cert, sub))| match r {
                pgp::composed::VerificationResult::Valid(sig) => {
                    Some((sig.clone(), *k, *cert, *sub))
                }
                pgp::composed::VerificationResult::Invalid => None,
            });
        let Some((sig, key, cert, subkey)) = found else {
            return Err(rejected(self.why_not_verified(what, &msg)));
        };
        if let Some(why) = unusable(cert, subkey, now.as_secs()) {
            return Err(rejected(format!(
                "{what}: signed by key {}, which {why}",
                fingerprint(key)
            )));
        }
        let created = sig.created().map(|t| t.as_secs());
        if let (Some(c), Some(exp)) = (created, sig.signature_expiration_time()) {
            let expires = u64::from(c) + u64::from(exp.as_secs());
            if exp.as_secs() > 0 && expires <= now.as_secs() {
                return Err(rejected(format!(
                    "{what}: the signature by key {} expired at {expires} (seconds since the \
                     epoch)",
                    fingerprint(key)
                )));
            }
        }
        let signature = AtomicSignature::parse(&data).map_err(|e| {
            rejected(format!(
                "{what}: the signed content is not an atomic container signature: {e}"
            ))
        })?;
        Ok(Verified {
            signature,
            json: data,
            key: fingerprint(key),
            user: user_id(cert),
            created,
        })
    }

    /// Why no key verified `msg`: its issuers are unknown, or a known key's signature does not
    /// match the content.
    fn why_not_verified(&self, what: &str, msg: &Message<'_>) -> String {
        let mut issuers: Vec<String> = Vec::new();
        if let Message::Signed { reader, .. } = msg {
            for i in 0..reader.num_signatures() {
                if let Some(sig) = reader.signature(i) {
                    issuers.extend(sig.issuer_fingerprint().iter().map(|f| format!("{f:X}")));
                    if sig.issuer_fingerprint().is_empty() {
                        issuers.extend(
                            sig.issuer_key_id()
                                .iter()
                                .map(|k| hex::encode_upper(k.as_ref())),
                        );
                    }
                }
            }
        }
        let known = issuers.iter().any(|i| {
            self.keys.iter().any(|k| {
                std::iter::once(fingerprint(&k.primary_key))
                    .chain(k.public_subkeys.iter().map(|s| fingerprint(&s.key)))
                    .any(|f| f.ends_with(i.as_str()))
            })
        });
        let issuers = if issuers.is_empty() {
            "an unnamed key".to_string()
        } else {
            format!("key {}", issuers.join(", "))
        };
        if known {
            format!(
                "{what}: the signature by {issuers} does not match the signed content (tampered \
                 or corrupt)"
            )
        } else {
            format!(
                "{what}: signed by {issuers}, which is not in the keyring (keys: {})",
                self.fingerprints().join(", ")
            )
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Stores
// ------------------------------------------------------------------------------------------------

/// The directory of `digest`'s signatures in a store: `sha256=<hex>`.
pub fn digest_dir(digest: &Digest) -> String {
    format!("{}={}", digest.algorithm().as_str(), digest.hex())
}

/// A signature store on disk: `<base>/sha256=<hex>/signature-<N>`, N from 1.
#[derive(Debug, Clone)]
pub struct SignatureDir {
    base: PathBuf,
}

/// Where [`SignatureDir::sign`] left a signature.
#[derive(Debug, Clone)]
pub struct Written {
    /// N of `signature-N`.
    pub n: u32,
    /// The file.
    pub path: PathBuf,
    /// False when the key had signed the same content already (nothing was written).
    pub added: bool,
}

impl SignatureDir {
    /// The store at `base` (created when the first signature is written).
    pub fn new(base: impl Into<PathBuf>) -> SignatureDir {
        SignatureDir { base: base.into() }
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The file of signature `n` of `digest`.
    pub fn path(&self, digest: &Digest, n: u32) -> PathBuf {
        self.base
            .join(digest_dir(digest))
            .join(format!("signature-{n}"))
    }

    /// The signatures of `digest`: `signature-1`, `-2`, … up to the first missing one.
    pub fn read(&self, digest: &Digest) -> Result<Vec<(u32, Vec<u8>)>> {
        let mut out = Vec::new();
        for n in 1..=MAX_SIGNATURES {
            let path = self.path(digest, n);
            match std::fs::read(&path) {
                Ok(b) => out.push((n, b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Ok(out)
    }

    /// Write `bytes` as the next free `signature-N` of `digest`, atomically (a complete file or
    /// none, never overwriting one that appeared meanwhile); returns N.
    pub fn add(&self, digest: &Digest, bytes: &[u8]) -> Result<u32> {
        let dir = self.base.join(digest_dir(digest));
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".signature-")
            .tempfile_in(&dir)
            .map_err(io(&dir))?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        let mut n = self.read(digest)?.len() as u32 + 1;
        loop {
            if n > MAX_SIGNATURES {
                return Err(invalid(format!(
                    "{}: {digest} has {MAX_SIGNATURES} signatures already, as many as the CVO \
                     reads (signature-1 to signature-{MAX_SIGNATURES})",
                    self.base.display()
                )));
            }
            let path = self.path(digest, n);
            match tmp.persist_noclobber(&path) {
                Ok(_) => return Ok(n),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                    tmp = e.file;
                    n += 1;
                }
                Err(e) => return Err(io(&path)(e.error)),
            }
        }
    }

    /// Sign `content` with `signer` into this store. Idempotent: when a signature of `signer`'s
    /// key with the same digest and identity is there already, nothing is written.
    pub fn sign(&self, signer: &Signer, content: &AtomicSignature) -> Result<Written> {
        let digest: Digest = content
            .digest()
            .parse()
            .map_err(|e| invalid(format!("the digest '{}': {e}", content.digest())))?;
        let own = signer.keyring();
        for (n, bytes) in self.read(&digest)? {
            let Ok(v) = own.verify(&format!("signature-{n}"), &bytes) else {
                continue;
            };
            if v.signature.critical == content.critical {
                return Ok(Written {
                    n,
                    path: self.path(&digest, n),
                    added: false,
                });
            }
        }
        let bytes = signer.sign(&content.to_json())?;
        let n = self.add(&digest, &bytes)?;
        Ok(Written {
            n,
            path: self.path(&digest, n),
            added: true,
        })
    }
}

/// A signature store to read: a directory, or a base URL (`https`, `http`, `file`) under which
/// signatures are `<base>/sha256=<hex>/signature-<N>`, as the CVO reads them.
#[derive(Debug, Clone)]
pub enum SignatureStore {
    /// A local store.
    Dir(SignatureDir),
    /// A store served over HTTP(S).
    Http(reqwest::Url),
}

impl SignatureStore {
    /// `https://…`, `http://…`, `file:///…` or a directory.
    pub fn parse(s: &str) -> Result<SignatureStore> {
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(SignatureStore::Dir(SignatureDir::new(path)));
        }
        if s.starts_with("https://") || s.starts_with("http://") {
            let url = reqwest::Url::parse(s.trim_end_matches('/'))
                .map_err(|e| invalid(format!("the signature store URL '{s}': {e}")))?;
            return Ok(SignatureStore::Http(url));
        }
        if s.contains("://") {
            return Err(invalid(format!(
                "the signature store '{s}': use an https://, http:// or file:// URL, or a \
                 directory"
            )));
        }
        Ok(SignatureStore::Dir(SignatureDir::new(s)))
    }

    /// The signatures of `digest`, named (URL or file) for messages: N = 1, 2, … until the first
    /// missing one (at most [`MAX_SIGNATURES`]), as the CVO reads a store.
    pub async fn fetch(&self, digest: &Digest) -> Result<Vec<(String, Vec<u8>)>> {
        match self {
            SignatureStore::Dir(d) => Ok(d
                .read(digest)?
                .into_iter()
                .map(|(n, b)| (d.path(digest, n).display().to_string(), b))
                .collect()),
            SignatureStore::Http(base) => fetch_http(base, digest).await,
        }
    }
}

async fn fetch_http(base: &reqwest::Url, digest: &Digest) -> Result<Vec<(String, Vec<u8>)>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| SignatureError::Store {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    for n in 1..=MAX_SIGNATURES {
        let url = format!("{base}/{}/signature-{n}", digest_dir(digest));
        let fail = |reason: String| SignatureError::Store {
            url: url.clone(),
            reason,
        };
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(format!("{e:#}")))?;
        match resp.status() {
            reqwest::StatusCode::NOT_FOUND => break,
            s if s.is_success() => {}
            s => return Err(fail(format!("HTTP {s}"))),
        }
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_SIGNATURE_BYTES)
        {
            return Err(fail(format!("larger than {MAX_SIGNATURE_BYTES} bytes")));
        }
        let body = resp.bytes().await.map_err(|e| fail(format!("{e:#}")))?;
        if body.len() as u64 > MAX_SIGNATURE_BYTES {
            return Err(fail(format!("larger than {MAX_SIGNATURE_BYTES} bytes")));
        }
        out.push((url, body.to_vec()));
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// The verification ConfigMap
// ------------------------------------------------------------------------------------------------

/// The verification ConfigMap manifest (YAML) that makes a cluster trust `keyring` and read
/// signatures from `store`: `openshift-config-managed/release-verification`, annotated
/// [`VERIFICATION_ANNOTATION`] and included in every cluster profile, with the data keys
/// `verifier-public-key-<name>` (the armored public keys) and `store-<name>` (the base URL).
/// A payload carries it as [`CONFIG_MAP_FILE`].
pub fn verification_configmap(name: &str, keyring: &Keyring, store: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(format!(
            "the verifier name '{name}' must be letters, digits, '-', '_' or '.' (it names \
             ConfigMap keys)"
        )));
    }
    if !["https://", "http://", "file://"]
        .iter()
        .any(|p| store.starts_with(p))
    {
        return Err(invalid(format!(
            "the store '{store}' must be an https://, http:// or file:// URL (clusters fetch \
             <store>/sha256=<hex>/signature-<N> from it)"
        )));
    }
    let key: String = keyring
        .armored()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let store = serde_json::to_string(store.trim_end_matches('/')).expect("a string serializes");
    Ok(format!(
        "apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n  \
           name: {CONFIG_MAP_NAME}\n  \
           namespace: {CONFIG_MAP_NAMESPACE}\n  \
           annotations:\n    \
             include.release.openshift.io/ibm-cloud-managed: \"true\"\n    \
             include.release.openshift.io/self-managed-high-availability: \"true\"\n    \
             include.release.openshift.io/single-node-developer: \"true\"\n    \
             {VERIFICATION_ANNOTATION}: \"\"\n\
         data:\n  \
           store-{name}: {store}\n  \
           verifier-public-key-{name}: |\n{key}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256_of(b"release")
    }

    #[test]
    fn the_json_has_exactly_the_fields_of_the_spec() {
        let s = AtomicSignature::new(&digest(), "quay.io/okd/scos-release:4.17.0-okd-scos.1")
            .with_optional(Some("okd-forge 0.1.0".into()), Some(1700000000));
        let want = format!(
            "{{\"critical\":{{\"type\":\"atomic container signature\",\"image\":\
             {{\"docker-manifest-digest\":\"{}\"}},\"identity\":{{\"docker-reference\":\
             \"quay.io/okd/scos-release:4.17.0-okd-scos.1\"}}}},\"optional\":{{\"creator\":\
             \"okd-forge 0.1.0\",\"timestamp\":1700000000}}}}",
            digest()
        );
        assert_eq!(String::from_utf8(s.to_json()).unwrap(), want);
        assert_eq!(AtomicSignature::parse(want.as_bytes()).unwrap(), s);
        let bare = AtomicSignature::new(&digest(), "r").to_json();
        assert!(String::from_utf8(bare)
            .unwrap()
            .ends_with(",\"optional\":{}}"));
    }

    #[test]
    fn unknown_fields_are_rejected_as_the_cvo_does() {
        for extra in [
            r#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:00"},"identity":{"docker-reference":"r"},"x":1}}"#,
            r#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:00"},"identity":{"docker-reference":"r"}},"optional":{"foo":"bar"}}"#,
            r#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"sha256:00"},"identity":{"docker-reference":"r"}},"more":{}}"#,
        ] {
            assert!(AtomicSignature::parse(extra.as_bytes()).is_err(), "{extra}");
        }
    }

    #[test]
    fn check_names_what_failed() {
        let s = AtomicSignature::new(&digest(), "quay.io/okd/scos-release:4.17.0");
        s.check(&digest(), None).unwrap();
        s.check(&digest(), Some("quay.io/okd/scos-release"))
            .unwrap();
        s.check(&digest(), Some("quay.io/okd/scos-release:4.17.0"))
            .unwrap();
        let other = Digest::sha256_of(b"other");
        let e = s.check(&other, None).unwrap_err().to_string();
        assert!(
            e.contains(&other.to_string()) && e.contains("not for"),
            "{e}"
        );
        let e = s
            .check(&digest(), Some("quay.io/okd/scos"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("identity"), "{e}");
        let mut t = s.clone();
        t.critical.kind = "cosign container image signature".into();
        let e = t.check(&digest(), None).unwrap_err().to_string();
        assert!(e.contains("type"), "{e}");
        let e = AtomicSignature::new(&digest(), "")
            .check(&digest(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty identity"), "{e}");
    }

    #[test]
    fn stores_parse() {
        assert!(matches!(
            SignatureStore::parse("https://example.com/sigs/").unwrap(),
            SignatureStore::Http(u) if u.as_str() == "https://example.com/sigs"
        ));
        assert!(matches!(
            SignatureStore::parse("file:///srv/sigs").unwrap(),
            SignatureStore::Dir(d) if d.base() == Path::new("/srv/sigs")
        ));
        assert!(SignatureStore::parse("s3://bucket").is_err());
        assert_eq!(digest_dir(&digest()), format!("sha256={}", digest().hex()));
    }

    /// An ed25519 public key made with `gpg --quick-gen-key 'okd-forge test <…>' ed25519 sign`.
    const TEST_KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEaxE7vxYJKwYBBAHaRw8BAQdAe1tbUYMpFqV68eCWNeI3N9IpGhwbDk8p1T5Z\nLJ5U9fa0J29rZC1mb3JnZSB0ZXN0IDx0ZXN0QG9rZC1mb3JnZS5pbnZhbGlkPoiQ\nBBMWCAA4FiEErhRPmSLRrwAMygtVvBbQa21Jre8FAmsRO78CGwMFCwkIBwIGFQoJ\nCAsCBBYCAwECHgECF4AACgkQvBbQa21Jre/TfwEAjhFVPqXYasPJw3+OMzevjuRY\n3OLrJeZnxgVGtGTzMM4BAJOCTyPZGv6RYMVlAbrrSm3kQOaGolh6+d7pgWG9rksP\n=Aq/B\n-----END PGP PUBLIC KEY BLOCK-----\n";
    const TEST_FINGERPRINT: &str = "AE144F9922D1AF000CCA0B55BC16D06B6D49ADEF";

    #[test]
    fn the_verification_configmap_is_yaml_with_the_keys_of_the_spec() {
        let keyring = Keyring::from_bytes("test key", TEST_KEY.as_bytes()).unwrap();
        assert_eq!(keyring.fingerprints(), [TEST_FINGERPRINT]);
        assert_eq!(keyring.unreadable_by_cvo(), [TEST_FINGERPRINT], "ed25519");
        let yaml = verification_configmap("ci", &keyring, "https://example.com/sigs/").unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["namespace"], CONFIG_MAP_NAMESPACE);
        assert_eq!(v["metadata"]["name"], CONFIG_MAP_NAME);
        let annotations = v["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(annotations[VERIFICATION_ANNOTATION], "");
        assert_eq!(
            annotations["include.release.openshift.io/self-managed-high-availability"],
            "true"
        );
        let data = v["data"].as_object().unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["store-ci", "verifier-public-key-ci"]);
        assert_eq!(data["store-ci"], "https://example.com/sigs");
        let published = data["verifier-public-key-ci"].as_str().unwrap();
        assert!(published.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let again = Keyring::from_bytes("published", published.as_bytes()).unwrap();
        assert_eq!(again.fingerprints(), [TEST_FINGERPRINT]);
        assert!(verification_configmap("a b", &keyring, "https://x").is_err());
        assert!(verification_configmap("ci", &keyring, "/srv/sigs").is_err());
    }
}
