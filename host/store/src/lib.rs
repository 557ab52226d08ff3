//! One store abstraction for Weir, chosen by URL.
//!
//! - `file:///abs/path` (or a plain path): the embedded default, a local file-backed store.
//! - `s3://bucket/prefix`: Amazon S3 or a compatible server, configured from the environment
//!   (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, credentials or the instance profile).
//! - `memory://name`: an in-process store for tests; every `memory://name` in one process is
//!   the same store, so a table written through one handle is visible through another.
//!
//! A [`Store`] is rooted at the URL's path: every key is relative to it. Errors are a small
//! public enum that callers match on ([`Error::NotFound`], [`Error::AlreadyExists`],
//! [`Error::Precondition`]), and every error names the full URL of the key involved.
//!
//! Guarantees the manifest relies on:
//! - [`Store::put_create`] is create-only: of many concurrent callers for one key, exactly one
//!   succeeds and the others get [`Error::AlreadyExists`].
//! - Objects are written whole: a reader sees all of an object or none of it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult,
};
use url::Url;

pub use object_store;

/// Errors from a store. Each names the URL of the object or store involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not found: {url}")]
    NotFound { url: String },
    #[error("already exists: {url}")]
    AlreadyExists { url: String },
    #[error("precondition failed (the object changed or does not exist): {url}")]
    Precondition { url: String },
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("store error at {url}: {source}")]
    Other {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn from_object_store(url: String, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => Error::NotFound { url },
            object_store::Error::AlreadyExists { .. } => Error::AlreadyExists { url },
            object_store::Error::Precondition { .. } => Error::Precondition { url },
            source => Error::Other { url, source },
        }
    }
}

static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(Default::default);

/// A handle on an object store, rooted at a URL. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    url: Url,
    inner: Arc<dyn ObjectStore>,
    root: Path,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("url", &self.url.as_str()).finish()
    }
}

impl Store {
    /// Opens the store for `location`: a `file://`, `s3://` or `memory://` URL, or a local path.
    pub fn from_url(location: &str) -> Result<Self> {
        let url = parse_location(location)?;
        let invalid = |reason: String| Error::InvalidUrl {
            url: location.to_string(),
            reason,
        };
        match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute local path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| invalid(format!("cannot create {}: {e}", dir.display())))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| invalid(e.to_string()))?
                    .with_automatic_cleanup(true);
                Ok(Self::new(url, Arc::new(fs), Path::default()))
            }
            "memory" => {
                let name = url.host_str().unwrap_or_default().to_string();
                let store = MEMORY_STORES
                    .lock()
                    .expect("memory store registry poisoned")
                    .entry(name)
                    .or_default()
                    .clone();
                let root = Path::from(url.path());
                Ok(Self::new(url, store, root))
            }
            "s3" | "s3a" => {
                install_crypto_provider();
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
                let root = Path::from(url.path());
                Ok(Self::new(url, Arc::new(store), root))
            }
            other => Err(invalid(format!(
                "unsupported scheme {other:?}; use file://, s3:// or memory://"
            ))),
        }
    }

    /// Wraps an existing object store. `url` is used in error messages and by [`Store::url`].
    pub fn new(url: Url, inner: Arc<dyn ObjectStore>, root: Path) -> Self {
        Self { url, inner, root }
    }

    /// The URL this store is rooted at.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The underlying object store (for Parquet readers and writers).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The full object path of `key`, relative to this store's root.
    pub fn path(&self, key: &str) -> Path {
        key.split('/')
            .filter(|part| !part.is_empty())
            .fold(self.root.clone(), |path, part| path.child(part))
    }

    /// The key of `path` relative to this store's root, if it lies under it.
    pub fn key_of(&self, path: &Path) -> Option<String> {
        let parts: Vec<_> = path.prefix_match(&self.root)?.map(|p| p.as_ref().to_string()).collect();
        Some(parts.join("/"))
    }

    /// The URL of `key`, for messages.
    pub fn url_of(&self, key: &str) -> String {
        let base = self.url.as_str().trim_end_matches('/');
        format!("{base}/{}", key.trim_start_matches('/'))
    }

    /// A store rooted at `prefix` below this one.
    pub fn child(&self, prefix: &str) -> Self {
        let mut url = self.url.clone();
        let path = format!("{}/{}", url.path().trim_end_matches('/'), prefix.trim_matches('/'));
        url.set_path(&path);
        Self {
            url,
            inner: self.inner.clone(),
            root: self.path(prefix),
        }
    }

    fn err(&self, key: &str) -> impl FnOnce(object_store::Error) -> Error + '_ {
        let url = self.url_of(key);
        move |e| Error::from_object_store(url, e)
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let result = self.inner.get(&self.path(key)).await.map_err(self.err(key))?;
        result.bytes().await.map_err(self.err(key))
    }

    /// Reads bytes `range` of an object.
    pub async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.inner
            .get_range(&self.path(key), range)
            .await
            .map_err(self.err(key))
    }

    /// The object's metadata.
    pub async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.head(&self.path(key)).await.map_err(self.err(key))
    }

    /// Writes an object, replacing any existing one.
    pub async fn put(&self, key: &str, bytes: impl Into<PutPayload>) -> Result<PutResult> {
        self.inner
            .put(&self.path(key), bytes.into())
            .await
            .map_err(self.err(key))
    }

    /// Writes an object only if no object exists at `key` ([`Error::AlreadyExists`] otherwise).
    pub async fn put_create(&self, key: &str, bytes: impl Into<PutPayload>) -> Result<PutResult> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.inner
            .put_opts(&self.path(key), bytes.into(), opts)
            .await
            .map_err(self.err(key))
    }

    /// Deletes an object. Deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    /// Lists every object below `prefix` (recursively), with keys relative to this store's root.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let path = self.path(prefix);
        let metas: Vec<ObjectMeta> = self
            .inner
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(self.err(prefix))?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| Some((self.key_of(&meta.location)?, meta)))
            .collect())
    }

    /// Lists the immediate children of `prefix`: (common prefixes, objects), keys relative to root.
    pub async fn list_dir(&self, prefix: &str) -> Result<(Vec<String>, Vec<(String, ObjectMeta)>)> {
        let path = self.path(prefix);
        let listing = self
            .inner
            .list_with_delimiter(Some(&path))
            .await
            .map_err(self.err(prefix))?;
        let dirs = listing
            .common_prefixes
            .iter()
            .filter_map(|p| self.key_of(p))
            .collect();
        let objects = listing
            .objects
            .into_iter()
            .filter_map(|meta| Some((self.key_of(&meta.location)?, meta)))
            .collect();
        Ok((dirs, objects))
    }
}

/// Parses a store location: a URL, or a local path (made absolute) for `file://`.
pub fn parse_location(location: &str) -> Result<Url> {
    if location.contains("://") {
        return Url::parse(location).map_err(|e| Error::InvalidUrl {
            url: location.to_string(),
            reason: e.to_string(),
        });
    }
    let path = std::path::absolute(location).map_err(|e| Error::InvalidUrl {
        url: location.to_string(),
        reason: e.to_string(),
    })?;
    Url::from_directory_path(&path).map_err(|()| Error::InvalidUrl {
        url: location.to_string(),
        reason: "not a valid local path".into(),
    })
}

fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another component may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_create_only_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::from_url(dir.path().to_str().unwrap()).unwrap();
        store.put_create("a/b/1.json", Bytes::from_static(b"one")).await.unwrap();
        let err = store.put_create("a/b/1.json", Bytes::from_static(b"two")).await.unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains("a/b/1.json"), "{err}");
        assert_eq!(store.get("a/b/1.json").await.unwrap(), "one");
        let listed = store.list("a").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, "a/b/1.json");
        let err = store.get("missing").await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }));
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[tokio::test]
    async fn memory_stores_are_shared_by_name() {
        let a = Store::from_url("memory://shared-test/root").unwrap();
        let b = Store::from_url("memory://shared-test/root").unwrap();
        a.put("k", Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), "v");
        let child = a.child("sub");
        child.put("x", Bytes::from_static(b"y")).await.unwrap();
        assert_eq!(a.get("sub/x").await.unwrap(), "y");
        assert_eq!(child.url_of("x"), "memory://shared-test/root/sub/x");
    }

    #[test]
    fn bad_scheme_names_the_url() {
        let err = Store::from_url("ftp://host/x").unwrap_err();
        assert!(err.to_string().contains("ftp://host/x"), "{err}");
    }
}
