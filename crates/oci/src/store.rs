//! [`Store`]: one interface over the two places images live, an OCI layout and a registry repository.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use backon::Retryable;
use futures_util::StreamExt;

use crate::layout::{Layout, UseGuard};
use crate::manifest::RawManifest;
use crate::reference::{ImageRef, Selector};
use crate::registry::{retry_policy, Registry, RegistryOptions, Repository};
use crate::stream::VerifiedStream;
use crate::{Descriptor, Error, Result};

/// Where images are read from or written to.
#[derive(Clone)]
pub enum Store {
    /// An OCI image-layout directory.
    Layout(Layout),
    /// A repository of a registry.
    Registry(Repository),
}

/// Opens stores, sharing one connection pool and token cache per registry host.
pub struct Stores {
    opts: RegistryOptions,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
}

impl Stores {
    /// Stores that talk to registries with `opts`.
    pub fn new(opts: RegistryOptions) -> Stores {
        Stores {
            opts,
            registries: Mutex::new(HashMap::new()),
        }
    }

    /// Open the store of `r`: for writing, a layout is created if missing and registry tokens ask for push.
    pub fn open(&self, r: &ImageRef, write: bool) -> Result<Store> {
        match r {
            ImageRef::Layout { path, .. } => Ok(Store::Layout(if write {
                Layout::create(path.clone())?
            } else {
                Layout::open(path.clone())?
            })),
            ImageRef::Registry { repo, .. } => {
                let reg = {
                    let mut map = self.registries.lock().expect("lock");
                    match map.get(&repo.registry) {
                        Some(r) => r.clone(),
                        None => {
                            let r = Registry::new(&repo.registry, self.opts.clone())?;
                            map.insert(repo.registry.clone(), r.clone());
                            r
                        }
                    }
                };
                Ok(Store::Registry(reg.repository(&repo.repository, write)))
            }
        }
    }
}

impl Store {
    /// A name for progress lines and errors.
    pub fn describe(&self) -> String {
        match self {
            Store::Layout(l) => format!("oci:{}", l.path().display()),
            Store::Registry(r) => format!("docker://{}/{}", r.registry().host(), r.name()),
        }
    }

    /// The manifest a selector names (none: the layout's only image, or a registry's `latest`).
    pub async fn get_manifest(&self, sel: Option<&Selector>) -> Result<RawManifest> {
        match self {
            Store::Layout(l) => {
                let l = l.clone();
                let sel = sel.cloned();
                blocking(move || l.get_manifest(sel.as_ref())).await
            }
            Store::Registry(r) => {
                let latest = Selector::Tag("latest".into());
                r.get_manifest(sel.unwrap_or(&latest)).await
            }
        }
    }

    /// The manifest a descriptor (an index entry) names.
    pub async fn get_child_manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        match self {
            Store::Layout(l) => {
                let l = l.clone();
                let desc = desc.clone();
                blocking(move || l.manifest_for(&desc)).await
            }
            Store::Registry(r) => {
                let m = r
                    .get_manifest(&Selector::Digest(desc.digest.clone()))
                    .await?;
                Ok(m)
            }
        }
    }

    /// Store a manifest; with `tag`, point the tag at it. `root` marks the image the user named (a layout
    /// lists it in `index.json` even without a tag).
    pub async fn put_manifest(
        &self,
        raw: &RawManifest,
        tag: Option<&str>,
        root: bool,
    ) -> Result<()> {
        match self {
            Store::Layout(l) => {
                let l = l.clone();
                let raw = raw.clone();
                let tag = tag.map(str::to_string);
                blocking(move || l.put_manifest(&raw, tag.as_deref(), root)).await
            }
            Store::Registry(r) => r.put_manifest(raw, tag).await,
        }
    }

    /// Whether the store has the blob a descriptor names, with its size.
    pub async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        match self {
            Store::Layout(l) => Ok(l.has_blob(desc)),
            Store::Registry(r) => r.has_blob(desc).await,
        }
    }

    /// Stream a blob out, verified against the descriptor.
    pub async fn get_blob(&self, desc: &Descriptor) -> Result<VerifiedStream> {
        match self {
            Store::Layout(l) => l.read_blob(&desc.digest, Some(desc.size)).await,
            Store::Registry(r) => r.get_blob(desc).await,
        }
    }

    /// Read a small blob (an image config) into memory, verified; refuses blobs over
    /// [`MAX_MANIFEST`](crate::layout::MAX_MANIFEST) bytes.
    pub async fn get_blob_bytes(&self, desc: &Descriptor) -> Result<bytes::Bytes> {
        if desc.size > crate::layout::MAX_MANIFEST {
            return Err(Error::BadManifest {
                what: format!("blob {} of {}", desc.digest, self.describe()),
                reason: format!(
                    "is {} bytes, more than the {} a config may have",
                    desc.size,
                    crate::layout::MAX_MANIFEST
                ),
            });
        }
        match self {
            Store::Layout(l) => {
                let (l, digest) = (l.clone(), desc.digest.clone());
                blocking(move || l.read_blob_bytes(&digest)).await
            }
            Store::Registry(r) => {
                let once = || async {
                    let mut stream = r.get_blob(desc).await?;
                    let mut buf = Vec::with_capacity(desc.size as usize);
                    while let Some(chunk) = stream.next().await {
                        buf.extend_from_slice(&chunk?);
                    }
                    Ok(bytes::Bytes::from(buf))
                };
                once.retry(retry_policy(r.registry().options().retries))
                    .when(Error::is_transient)
                    .await
            }
        }
    }

    /// Stream a blob in; nothing becomes visible unless every byte matches the descriptor.
    pub async fn put_blob(&self, desc: &Descriptor, stream: VerifiedStream) -> Result<()> {
        match self {
            Store::Layout(l) => l.write_blob(desc, stream).await.map(|_| ()),
            Store::Registry(r) => r.put_blob(desc, stream).await,
        }
    }

    /// For a layout: the shared lock that keeps `gc` away while a copy reads from it or writes to it
    /// (until what it wrote is tagged).
    pub async fn guard(&self) -> Result<Option<UseGuard>> {
        match self {
            Store::Layout(l) => {
                let l = l.clone();
                blocking(move || l.guard()).await.map(Some)
            }
            Store::Registry(_) => Ok(None),
        }
    }

    /// Fail early, with a clear error, if the store cannot be reached or we may not use it.
    pub async fn check_access(&self) -> Result<()> {
        match self {
            Store::Layout(_) => Ok(()),
            Store::Registry(r) => r.check_access().await,
        }
    }

    /// Tags of the repository or layout.
    pub async fn tags(&self) -> Result<Vec<String>> {
        match self {
            Store::Layout(l) => l.tags(),
            Store::Registry(r) => r.tags().await,
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            path: "<blocking task>".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}
