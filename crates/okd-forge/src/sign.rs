//! `okd-forge release sign|verify|verification-configmap`: release signatures as the
//! cluster-version-operator verifies them (atomic container signatures in OpenPGP messages, in a
//! signature store), and the ConfigMap that makes a cluster trust the key and the store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use oci::{Digest, ImageRef, Selector, Stores};
use payload::inputs::parse_ref;
use payload::signature::{
    verification_configmap, AtomicSignature, Keyring, SignatureDir, SignatureStore, Signer,
};
use payload::source::Sources;
use serde_json::json;

use crate::image::print_json;
use crate::image::Access;
use crate::Output;

/// Arguments of `release sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The release: oci:DIR[:TAG|@DIGEST], docker://HOST/REPO[:TAG|@DIGEST], HOST/REPO@DIGEST, or
    /// a bare sha256:<hex> (with --identity). A manifest list is signed by its own digest.
    image: String,
    /// The secret key: an armored or binary file (e.g. `gpg --export-secret-keys --armor ID`);
    /// its first secret key signs.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// A file whose first line is the key's passphrase; OKD_FORGE_SIGNING_PASSPHRASE may hold it
    /// instead.
    #[arg(long, value_name = "FILE", env = "OKD_FORGE_SIGNING_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
    /// The identity signed (critical.identity.docker-reference): a reference, or a repository,
    /// to which @DIGEST is added. Default: the release as given (HOST/REPO:TAG, or
    /// HOST/REPO@DIGEST); required for oci: references and bare digests.
    #[arg(long, value_name = "REPO")]
    identity: Option<String>,
    /// The signature store to write to: DIR/sha256=<hex>/signature-<N>, N the next free one.
    /// Signing again with the same key adds nothing.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    #[command(flatten)]
    access: Access,
}

/// Arguments of `release verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The release: oci:DIR[:TAG|@DIGEST], docker://HOST/REPO[:TAG|@DIGEST], HOST/REPO@DIGEST or
    /// a bare sha256:<hex>.
    image: String,
    /// The public keys to trust: an armored or binary keyring (e.g. `gpg --export --armor ID`).
    #[arg(long, value_name = "FILE")]
    keyring: PathBuf,
    /// The signature store: an https://, http:// or file:// base URL, or a directory. Signatures
    /// are read from <store>/sha256=<hex>/signature-1, -2, … until one is missing, as the CVO does.
    #[arg(long, value_name = "URL|DIR")]
    store: String,
    /// Also require the signed identity to be this reference, or in this repository.
    #[arg(long, value_name = "REPO")]
    identity: Option<String>,
    #[command(flatten)]
    access: Access,
}

/// Arguments of `release verification-configmap`.
#[derive(Args)]
pub struct ConfigMapArgs {
    /// The public keys clusters should trust (armored or binary; a secret key file gives its
    /// public half).
    #[arg(long, value_name = "FILE")]
    keyring: PathBuf,
    /// The signature store clusters should read: an https://, http:// or file:// base URL.
    #[arg(long, value_name = "URL")]
    store: String,
    /// The suffix of the data keys verifier-public-key-<NAME> and store-<NAME>.
    #[arg(long, value_name = "NAME", default_value = "okd-forge")]
    name: String,
}

/// A release as `sign` and `verify` take it: its digest, and the identity it would be signed
/// under by default.
async fn resolve(image: &str, access: &Access) -> Result<(Digest, Option<String>)> {
    if let Ok(d) = image.parse::<Digest>() {
        return Ok((d, None));
    }
    let r = parse_ref(image)?;
    let sources = Sources::new(Arc::new(Stores::new(access.options(None)?)), None, None)?;
    let found = sources
        .find_ref(image, &r)
        .await
        .with_context(|| format!("cannot read the release {image}"))?;
    let digest = found.manifest.digest.clone();
    // A docker reference, as clusters pull it: HOST/REPO, no transport prefix.
    let identity = match &r {
        ImageRef::Registry { repo, selector } => {
            let name = format!("{}/{}", repo.registry, repo.repository);
            Some(match selector {
                Some(Selector::Tag(t)) => format!("{name}:{t}"),
                _ => format!("{name}@{digest}"),
            })
        }
        ImageRef::Layout { .. } => None,
    };
    Ok((digest, identity))
}

/// Warn about keys the cluster-version-operator cannot read (EdDSA, Curve25519).
fn warn_unreadable(keyring: &Keyring) {
    for k in keyring.unreadable_by_cvo() {
        eprintln!(
            "warning: key {k} uses EdDSA or Curve25519, which the cluster-version-operator's \
             OpenPGP library cannot read: clusters will not verify with it (use an RSA key, e.g. \
             gpg --quick-gen-key UID rsa4096 sign never)"
        );
    }
}

/// A docker reference without the `docker://` transport.
fn bare(reference: &str) -> &str {
    reference.strip_prefix("docker://").unwrap_or(reference)
}

/// Whether a reference names a tag or a digest (else it is a repository).
fn has_selector(reference: &str) -> bool {
    reference.contains('@')
        || reference
            .rsplit('/')
            .next()
            .is_some_and(|l| l.contains(':'))
}

/// `release sign`.
pub async fn sign(a: SignArgs, output: Output) -> Result<()> {
    let signer = Signer::load(&a.key, a.passphrase_file.as_deref())?;
    warn_unreadable(&signer.keyring());
    let (digest, default_identity) = resolve(&a.image, &a.access).await?;
    let given = a.identity.map(|i| bare(&i).to_string());
    let identity = match (given, default_identity) {
        (Some(i), _) if has_selector(&i) => i,
        (Some(repo), _) => format!("{repo}@{digest}"),
        (None, Some(i)) => i,
        (None, None) => bail!(
            "{}: give --identity REPO, the name clusters pull the release by (e.g. \
             quay.io/okd/scos-release); an oci: reference or a digest has none",
            a.image
        ),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let content =
        AtomicSignature::new(&digest, &identity).with_optional(Some(creator()), Some(now));
    let written = SignatureDir::new(&a.to).sign(&signer, &content)?;
    match output {
        Output::Json => print_json(&json!({
            "digest": digest.to_string(),
            "identity": identity,
            "key": signer.fingerprint(),
            "signature": written.n,
            "path": written.path,
            "added": written.added,
        })),
        _ if written.added => println!(
            "signed {digest} as {identity} with key {}: {}",
            signer.fingerprint(),
            written.path.display()
        ),
        _ => println!(
            "already signed {digest} as {identity} with key {}: {}",
            signer.fingerprint(),
            written.path.display()
        ),
    }
    Ok(())
}

/// `optional.creator`.
fn creator() -> String {
    format!("okd-forge {}", env!("CARGO_PKG_VERSION"))
}

/// `release verify`: succeeds when one signature of the store verifies, as the CVO accepts a
/// release; the others' failures are reported as warnings.
pub async fn verify(a: VerifyArgs, output: Output) -> Result<()> {
    let keyring = Keyring::from_file(&a.keyring)?;
    let store = SignatureStore::parse(&a.store)?;
    let (digest, _) = resolve(&a.image, &a.access).await?;
    let signatures = store.fetch(&digest).await?;
    if signatures.is_empty() {
        bail!(
            "no signature of {digest} in the store {} (looked for {}/{}/signature-1)",
            a.store,
            a.store.trim_end_matches('/'),
            payload::signature::digest_dir(&digest)
        );
    }
    let mut failures = Vec::new();
    let mut verified = None;
    for (name, bytes) in &signatures {
        let checked = keyring.verify(name, bytes).and_then(|v| {
            v.signature
                .check(&digest, a.identity.as_deref().map(bare))
                .map_err(|e| payload::signature::SignatureError::Rejected(format!("{name}: {e}")))
                .map(|()| v)
        });
        match checked {
            Ok(v) if verified.is_none() => verified = Some((name, v)),
            Ok(_) => {}
            Err(e) => failures.push(e.to_string()),
        }
    }
    let Some((name, v)) = verified else {
        bail!(
            "no valid signature of {digest} in {}: {}",
            a.store,
            failures.join("; ")
        );
    };
    for f in &failures {
        eprintln!("warning: {f}");
    }
    match output {
        Output::Json => print_json(&json!({
            "digest": digest.to_string(),
            "verified": name,
            "key": v.key,
            "user": v.user,
            "identity": v.signature.identity(),
            "created": v.created,
            "signature": v.signature,
            "rejected": failures,
        })),
        _ => println!(
            "verified {digest}: {name}, signed by {} ({}) as {}",
            v.key,
            v.user,
            v.signature.identity()
        ),
    }
    Ok(())
}

/// `release verification-configmap`.
pub fn configmap(a: ConfigMapArgs) -> Result<()> {
    let keyring = Keyring::from_file(&a.keyring)?;
    warn_unreadable(&keyring);
    print!("{}", verification_configmap(&a.name, &keyring, &a.store)?);
    Ok(())
}
