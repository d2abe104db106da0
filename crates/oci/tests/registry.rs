//! The registry client against a real Distribution registry, where the CLI tests do not reach.

use std::sync::Arc;

use bytes::Bytes;
use oci::manifest::media_type;
use oci::{Descriptor, Digest, RawManifest, Registry, RegistryOptions};
use testkit::RegistryServer;

fn blob_stream(desc: &Descriptor, b: &'static [u8]) -> oci::stream::VerifiedStream {
    let raw: oci::stream::BlobStream =
        Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from_static(b))]));
    oci::stream::verified("test blob".into(), &desc.digest, Some(desc.size), raw)
}

async fn push_config(repo: &oci::registry::Repository, body: &'static [u8]) -> Descriptor {
    let desc = Descriptor::new(
        media_type::OCI_CONFIG,
        Digest::sha256_of(body),
        body.len() as u64,
    );
    repo.put_blob(&desc, blob_stream(&desc, body))
        .await
        .unwrap();
    desc
}

fn registry(reg: &RegistryServer) -> Arc<Registry> {
    Registry::new(&reg.host(), RegistryOptions::default()).unwrap()
}

#[tokio::test]
async fn tag_lists_follow_pagination() {
    let reg = RegistryServer::start();
    let repo = registry(&reg).repository("okd/paged", true);
    let config = push_config(&repo, b"{}").await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": config,
        "layers": [],
    }))
    .unwrap();
    let digest = Digest::sha256_of(&manifest);
    let raw = RawManifest::new("m", manifest.into(), None, digest).unwrap();
    let wanted = ["a", "b", "c", "d", "e"];
    for t in wanted {
        repo.put_manifest(&raw, Some(t)).await.unwrap();
    }
    // Two per page: three requests, joined by the registry's Link headers.
    let mut tags = repo.tags_paged(2).await.unwrap();
    tags.sort();
    assert_eq!(tags, wanted);
    assert_eq!(repo.tags().await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_declined_mount_leaves_nothing_and_an_allowed_one_mounts() {
    let reg = RegistryServer::start();
    let r = registry(&reg);
    let source = r.repository("okd/source", true);
    let target = r.repository("okd/target", true);
    let desc = push_config(&source, b"{\"mounted\":false}").await;
    // The registry declines a mount from a repository that lacks the blob (202, an upload session).
    assert!(!target.mount_blob(&desc.digest, "okd/empty").await.unwrap());
    assert!(!target.has_blob(&desc).await.unwrap());
    // ... and the upload session it opened instead was cancelled. (Distribution 2.8 deletes a
    // cancelled session's `data` and `startedat` but rewrites its `hashstates` as it closes.)
    let uploads = reg
        .storage()
        .join("docker/registry/v2/repositories/okd/target/_uploads");
    let sessions: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(sessions.len(), 1, "the decline opened one session");
    assert!(
        !sessions[0].join("startedat").exists(),
        "the session was not cancelled"
    );
    assert!(
        !sessions[0].join("data").exists(),
        "the session was not cancelled"
    );
    // From the repository that has it, it mounts (201).
    assert!(target.mount_blob(&desc.digest, "okd/source").await.unwrap());
    assert!(target.has_blob(&desc).await.unwrap());
}
