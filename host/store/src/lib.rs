//! One store abstraction for Weir, chosen by URL.
//!
//! - `file:///abs/path` (or a plain path): the embedded default, a local file-backed store.
//! - `s3://bucket/prefix`: Amazon S3 or a compatible server, configured by [`StoreOptions`]
//!   (from `WEIR_S3_*` / `AWS_*` variables, see `docs/s3.md`); credentials come only from the
//!   environment or the EC2 instance profile (IMDSv2).
//! - `memory://name`: an in-process store for tests; every `memory://name` in one process is
//!   the same store, so a table written through one handle is visible through another.
//!
//! A [`Store`] is rooted at the URL's path: every key is relative to it. Errors are a small
//! public enum that callers match on ([`Error::NotFound`], [`Error::AlreadyExists`],
//! [`Error::Precondition`], ...), and every error names the full URL of the key involved.
//!
//! Guarantees the manifest relies on, checked for every backend by [`conformance`] (feature
//! `testing`):
//! - [`Store::put_create`] is create-only: of many concurrent callers for one key, exactly one
//!   succeeds and the others get [`Error::AlreadyExists`]. On S3 this rests on the server
//!   honouring `If-None-Match: *`; [`Store::ensure_conditional_writes`] checks that it does
//!   before anything commits.
//! - Objects are written whole: a reader sees all of an object or none of it, including
//!   multipart uploads, which are invisible until finished and leave nothing when aborted.
//! - Listings are sorted by key on every backend, as S3 sorts them.
//! - `file://` writes are fsynced before they return (unless `WEIR_FILE_FSYNC=false`).
//!
//! Differences between backends that callers must design around:
//! - [`Store::put_if_match`] (compare-and-swap on an ETag) is not supported by `file://`
//!   ([`Error::NotSupported`]): the manifest only uses create-only writes.
//! - Multipart uploads ([`Store::put_multipart`]) are not create-only: they replace an existing
//!   object. Use them for files with unique names (data files), never for log entries.
//! - [`Store::copy_create`] (create-only copy) is O(1) on `file://` (a hard link) and
//!   `memory://`; S3 without a configured copy-if-not-exists mechanism refuses it
//!   ([`Error::NotSupported`]), and callers fall back to [`Store::put_create`].

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, UpdateVersion, WriteMultipart,
};
use url::Url;

mod multipart;
mod options;
mod probe;
mod staging;

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod testing;

pub use multipart::MultipartWriter;
pub use object_store;
pub use options::{MAX_PART_SIZE, MIN_PART_SIZE, S3Options, StoreOptions};
pub use probe::{PROBE_PREFIX, probe_conditional_writes};
pub use staging::StagingWriter;

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
    /// A configuration value (usually an environment variable) is invalid.
    #[error("invalid {variable}={value:?}: {reason}")]
    Config {
        variable: String,
        value: String,
        reason: String,
    },
    /// The backend cannot do this operation (e.g. compare-and-swap on `file://`).
    #[error("{operation} is not supported by this store: {url}")]
    NotSupported { url: String, operation: String },
    /// The store accepted a second create-only write of one key, so it cannot make commits
    /// atomic. Weir refuses to commit to it.
    #[error(
        "this store does not honour conditional writes (If-None-Match); commits would not be \
         atomic: {url}: {detail}"
    )]
    ConditionalWritesNotHonoured { url: String, detail: String },
    /// Writing a staged object's local file (`file://`) failed.
    #[error("cannot write staged object {url}: {source}")]
    StagingIo {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// Reading a local file to upload failed.
    #[error("cannot read {path}: {source}")]
    LocalIo {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
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
            object_store::Error::NotImplemented { operation, .. } => {
                Error::NotSupported { url, operation }
            }
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
    /// Identifies the server and bucket for the once-per-process conditional-write probe.
    probe_scope: Arc<str>,
    multipart_threshold: usize,
    part_size: usize,
    multipart_concurrency: usize,
    /// `file://` stores: the file system, for staged objects written in place.
    local: Option<LocalRoot>,
    /// Whether [`Store::copy_create`] may work (see [`Store::may_copy_create`]).
    copy_create: bool,
}

/// The file system of a `file://` store and whether it fsyncs.
#[derive(Clone)]
struct LocalRoot {
    fs: Arc<LocalFileSystem>,
    fsync: bool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("url", &self.url.as_str())
            .finish()
    }
}

/// Builds a [`Store`]: `Store::builder(url).options(options).build()`.
///
/// Without [`StoreBuilder::options`], options come from the environment
/// ([`StoreOptions::from_env`]).
#[must_use]
pub struct StoreBuilder {
    location: String,
    options: Option<StoreOptions>,
    static_credentials: Option<(String, String)>,
}

impl fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("location", &self.location)
            .field("options", &self.options)
            .field("static_credentials", &self.static_credentials.is_some())
            .finish()
    }
}

impl StoreBuilder {
    /// Uses these options instead of reading them from the environment.
    pub fn options(mut self, options: StoreOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// S3 only: sign with this key pair instead of the environment / instance-profile chain.
    /// For tests and embedders; Weir's own binaries never call it, so operators' credentials
    /// always come from the environment or the instance profile.
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.static_credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// Opens the store.
    pub fn build(self) -> Result<Store> {
        let options = match self.options {
            Some(options) => {
                options.validate()?;
                options
            }
            None => StoreOptions::from_env()?,
        };
        let location = self.location.as_str();
        let url = parse_location(location)?;
        let invalid = |reason: String| Error::InvalidUrl {
            url: location.to_string(),
            reason,
        };
        let mut local = None;
        let (inner, root, probe_scope): (Arc<dyn ObjectStore>, Path, String) = match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| invalid("not an absolute local path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| invalid(format!("cannot create {}: {e}", dir.display())))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| invalid(e.to_string()))?
                    .with_automatic_cleanup(true)
                    .with_fsync(options.file_fsync);
                let fs = Arc::new(fs);
                local = Some(LocalRoot {
                    fs: fs.clone(),
                    fsync: options.file_fsync,
                });
                (fs, Path::default(), url.to_string())
            }
            "memory" => {
                let name = url.host_str().unwrap_or_default().to_string();
                let store = MEMORY_STORES
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .entry(name.clone())
                    .or_default()
                    .clone();
                (store, Path::from(url.path()), format!("memory://{name}"))
            }
            "s3" | "s3a" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| invalid("no bucket name; expected s3://bucket/prefix".into()))?
                    .to_string();
                let store = build_s3(&bucket, &options.s3, self.static_credentials)
                    .map_err(|e| invalid(e.to_string()))?;
                let server = options.s3.endpoint.as_deref().unwrap_or("aws");
                let region = options.s3.region.as_deref().unwrap_or("us-east-1");
                (
                    Arc::new(store),
                    Path::from(url.path()),
                    format!("s3://{bucket} at {server} ({region})"),
                )
            }
            other => {
                return Err(invalid(format!(
                    "unsupported scheme {other:?}; use file://, s3:// or memory://"
                )));
            }
        };
        Ok(Store {
            inner,
            root,
            probe_scope: probe_scope.into(),
            multipart_threshold: options.multipart_threshold_bytes,
            part_size: options.multipart_part_size_bytes,
            multipart_concurrency: options.multipart_concurrency,
            local,
            // Weir configures no copy-if-not-exists mechanism for S3.
            copy_create: !matches!(url.scheme(), "s3" | "s3a"),
            url,
        })
    }
}

/// Environment variables that configure how the S3 client finds credentials (and server-side
/// encryption). Everything else about the client comes from [`S3Options`].
const S3_CREDENTIAL_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_METADATA_ENDPOINT",
    "AWS_IMDSV1_FALLBACK",
    "AWS_SERVER_SIDE_ENCRYPTION",
    "AWS_SSE_KMS_KEY_ID",
    "AWS_SSE_BUCKET_KEY_ENABLED",
    "AWS_REQUEST_PAYER",
];

fn build_s3(
    bucket: &str,
    options: &S3Options,
    static_credentials: Option<(String, String)>,
) -> object_store::Result<object_store::aws::AmazonS3> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    use object_store::{BackoffConfig, ClientOptions, RetryConfig};

    install_crypto_provider();
    let mut builder = AmazonS3Builder::new();
    match static_credentials {
        Some((key, secret)) => {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
        }
        None => {
            for name in S3_CREDENTIAL_ENV {
                let Ok(value) = std::env::var(name) else {
                    continue;
                };
                if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                    builder = builder.with_config(key, value);
                }
            }
        }
    }
    let client = ClientOptions::new()
        .with_allow_http(options.allow_http)
        .with_timeout(options.request_timeout)
        .with_connect_timeout(options.connect_timeout);
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: options.max_retries,
        retry_timeout: options.retry_timeout,
    };
    builder = builder
        .with_bucket_name(bucket)
        .with_region(options.region.as_deref().unwrap_or("us-east-1"))
        .with_virtual_hosted_style_request(options.virtual_hosted_style)
        .with_allow_http(options.allow_http)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    builder.build()
}

impl Store {
    /// Opens the store for `location`: a `file://`, `s3://` or `memory://` URL, or a local path,
    /// with options from the environment. Same as `Store::builder(location).build()`.
    pub fn from_url(location: &str) -> Result<Self> {
        Self::builder(location).build()
    }

    /// Starts building the store for `location`; see [`StoreBuilder`].
    pub fn builder(location: &str) -> StoreBuilder {
        StoreBuilder {
            location: location.to_string(),
            options: None,
            static_credentials: None,
        }
    }

    /// Wraps an existing object store. `url` is used in error messages and by [`Store::url`].
    pub fn new(url: Url, inner: Arc<dyn ObjectStore>, root: Path) -> Self {
        let defaults = StoreOptions::default();
        Self {
            probe_scope: url.as_str().into(),
            url,
            inner,
            root,
            multipart_threshold: defaults.multipart_threshold_bytes,
            part_size: defaults.multipart_part_size_bytes,
            multipart_concurrency: defaults.multipart_concurrency,
            local: None,
            copy_create: true,
        }
    }

    /// The URL this store is rooted at.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The underlying object store (for Parquet readers and writers).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Objects larger than this many bytes are uploaded in parts.
    pub fn multipart_threshold(&self) -> usize {
        self.multipart_threshold
    }

    /// The full object path of `key`, relative to this store's root.
    ///
    /// Key segments are taken as given, so an already-escaped hive directory such as
    /// `k=a%2Fb` is stored under that exact name (not escaped twice). A segment that is not a
    /// valid object path segment (`.` or `..`, say) is percent-encoded instead.
    pub fn path(&self, key: &str) -> Path {
        let segments: Vec<&str> = key.split('/').filter(|part| !part.is_empty()).collect();
        let joined = std::iter::once(self.root.as_ref())
            .chain(segments.iter().copied())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        Path::parse(&joined).unwrap_or_else(|_| {
            segments
                .iter()
                .fold(self.root.clone(), |path, part| path.join(*part))
        })
    }

    /// The key of `path` relative to this store's root, if it lies under it.
    pub fn key_of(&self, path: &Path) -> Option<String> {
        let parts: Vec<_> = path
            .prefix_match(&self.root)?
            .map(|p| p.as_ref().to_string())
            .collect();
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
        let path = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            prefix.trim_matches('/')
        );
        url.set_path(&path);
        Self {
            url,
            inner: self.inner.clone(),
            root: self.path(prefix),
            probe_scope: self.probe_scope.clone(),
            multipart_threshold: self.multipart_threshold,
            part_size: self.part_size,
            multipart_concurrency: self.multipart_concurrency,
            local: self.local.clone(),
            copy_create: self.copy_create,
        }
    }

    fn err(&self, key: &str) -> impl FnOnce(object_store::Error) -> Error + '_ {
        let url = self.url_of(key);
        move |e| Error::from_object_store(url, e)
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let result = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(self.err(key))?;
        result.bytes().await.map_err(self.err(key))
    }

    /// Reads bytes `range` of an object. A range that starts inside the object but ends past
    /// it returns the bytes up to the end; one that starts at or past the end is an error.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner
            .get_range(&self.path(key), range)
            .await
            .map_err(self.err(key))
    }

    /// Reads several ranges of one object (adjacent ranges are fetched together).
    pub async fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner
            .get_ranges(&self.path(key), ranges)
            .await
            .map_err(self.err(key))
    }

    /// The object's metadata.
    pub async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner
            .head(&self.path(key))
            .await
            .map_err(self.err(key))
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

    /// Replaces an object only if its current ETag is `e_tag` (compare-and-swap). A changed or
    /// missing object gives [`Error::Precondition`]. `file://` gives [`Error::NotSupported`].
    pub async fn put_if_match(
        &self,
        key: &str,
        bytes: impl Into<PutPayload>,
        e_tag: &str,
    ) -> Result<PutResult> {
        let opts = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag.to_string()),
                version: None,
            }),
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&self.path(key), bytes.into(), opts)
            .await
        {
            Ok(result) => Ok(result),
            // S3 answers 404 for If-Match on a missing key; the caller's view is the same.
            Err(object_store::Error::NotFound { .. }) => Err(Error::Precondition {
                url: self.url_of(key),
            }),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    /// Starts a multipart upload to `key`, for objects too large to buffer. The object appears
    /// whole when [`MultipartWriter::finish`] succeeds; [`MultipartWriter::abort`], a failed
    /// part, or dropping the writer unfinished removes the uploaded parts. Replaces any
    /// existing object (not create-only).
    pub async fn put_multipart(&self, key: &str) -> Result<MultipartWriter> {
        let upload = self
            .inner
            .put_multipart_opts(&self.path(key), PutMultipartOptions::default())
            .await
            .map_err(self.err(key))?;
        Ok(MultipartWriter::new(
            self.url_of(key),
            WriteMultipart::new_with_chunk_size(upload, self.part_size),
            self.multipart_concurrency,
        ))
    }

    /// Starts staging an object at `key` (a unique key private to the caller): appended to in
    /// pieces, finished, then typically published with [`Store::copy_create`]. See
    /// [`StagingWriter`] for what each backend does. On `file://` an existing object at `key`
    /// is an error (its file may already be published by a hard link); elsewhere it is
    /// replaced when the staged object is finished.
    pub async fn stage(&self, key: &str) -> Result<StagingWriter> {
        let Some(local) = &self.local else {
            return Ok(StagingWriter::multipart(self.put_multipart(key).await?));
        };
        let path = local
            .fs
            .path_to_filesystem(&self.path(key))
            .map_err(self.err(key))?;
        let url = self.url_of(key);
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                // Never reuse a file: once published by a hard link it is a log entry.
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
            })
            .await
        };
        match opened {
            Ok(Ok(file)) => Ok(StagingWriter::local(url, file, path, local.fsync)),
            Ok(Err(source)) => Err(Error::StagingIo { url, source }),
            Err(e) => Err(Error::StagingIo {
                url,
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// Whether [`Store::copy_create`] may work here: false for `s3://` stores opened by URL
    /// (Weir configures no copy-if-not-exists mechanism for S3, so it would only refuse);
    /// true otherwise (a store wrapped with [`Store::new`] is tried).
    pub fn may_copy_create(&self) -> bool {
        self.copy_create
    }

    /// Copies `from` to `to` only if no object exists at `to` ([`Error::AlreadyExists`]
    /// otherwise; a missing `from` is [`Error::NotFound`]). Atomic and O(1) on `file://` (a
    /// hard link; with fsync on, `to`'s directory is fsynced) and `memory://`. A backend that
    /// cannot do it atomically (S3 without a copy-if-not-exists configuration) gives
    /// [`Error::NotSupported`] and copies nothing.
    pub async fn copy_create(&self, from: &str, to: &str) -> Result<()> {
        match self
            .inner
            .copy_if_not_exists(&self.path(from), &self.path(to))
            .await
        {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotSupported { source }) => Err(Error::NotSupported {
                url: self.url_of(to),
                operation: format!("create-only copy from {from} ({source})"),
            }),
            Err(object_store::Error::NotFound { .. }) => Err(Error::NotFound {
                url: self.url_of(from),
            }),
            Err(e) => Err(self.err(to)(e)),
        }
    }

    /// An [`AsyncWrite`](tokio::io::AsyncWrite) for `key` that buffers up to the multipart
    /// threshold and switches to a multipart upload beyond it (for Parquet writers:
    /// `ParquetObjectWriter::from_buf_writer`). Call `shutdown` to finish, `abort` to abandon.
    pub fn buf_writer(&self, key: &str) -> BufWriter {
        BufWriter::with_capacity(self.inner.clone(), self.path(key), self.multipart_threshold)
            .with_max_concurrency(self.multipart_concurrency)
    }

    /// Uploads the local file `local` to `key`: one PUT up to the multipart threshold, a
    /// multipart upload above it (aborted if reading or uploading fails).
    pub async fn put_file(&self, key: &str, local: &std::path::Path) -> Result<PutResult> {
        use tokio::io::AsyncReadExt;

        let io_err = |source| Error::LocalIo {
            path: local.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::open(local).await.map_err(io_err)?;
        let size = file.metadata().await.map_err(io_err)?.len();
        if size <= self.multipart_threshold as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await.map_err(io_err)?;
            return self.put(key, Bytes::from(buf)).await;
        }
        let mut writer = self.put_multipart(key).await?;
        loop {
            let mut chunk = Vec::with_capacity(self.part_size);
            let read = (&mut file)
                .take(self.part_size as u64)
                .read_to_end(&mut chunk)
                .await;
            match read {
                Ok(0) => break,
                Ok(_) => writer.write(chunk).await?,
                Err(source) => {
                    // Dropping would also abort, but in the background; do it before returning.
                    let _ = writer.abort().await;
                    return Err(io_err(source));
                }
            }
        }
        writer.finish().await
    }

    /// Deletes an object. Deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    /// Lists every object below `prefix` (recursively; whole path segments, so `a` matches
    /// `a/x` but not `ab`), sorted by key, with keys relative to this store's root. A prefix
    /// with nothing below it gives an empty list.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let path = self.path(prefix);
        let metas: Vec<ObjectMeta> = self
            .inner
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(self.err(prefix))?;
        Ok(self.keyed_sorted(metas))
    }

    /// Like [`Store::list`], but only keys sorting after `offset` (a key relative to this
    /// store's root): e.g. Delta log entries after a known version.
    pub async fn list_after(
        &self,
        prefix: &str,
        offset: &str,
    ) -> Result<Vec<(String, ObjectMeta)>> {
        let path = self.path(prefix);
        let offset_path = self.path(offset);
        let metas: Vec<ObjectMeta> = self
            .inner
            .list_with_offset(Some(&path), &offset_path)
            .try_collect()
            .await
            .map_err(self.err(prefix))?;
        Ok(self.keyed_sorted(metas))
    }

    /// Lists the immediate children of `prefix`: (common prefixes, objects), keys relative to
    /// root, each sorted.
    pub async fn list_dir(&self, prefix: &str) -> Result<(Vec<String>, Vec<(String, ObjectMeta)>)> {
        let path = self.path(prefix);
        let listing = self
            .inner
            .list_with_delimiter(Some(&path))
            .await
            .map_err(self.err(prefix))?;
        let mut dirs: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| self.key_of(p))
            .collect();
        dirs.sort();
        Ok((dirs, self.keyed_sorted(listing.objects)))
    }

    fn keyed_sorted(&self, metas: Vec<ObjectMeta>) -> Vec<(String, ObjectMeta)> {
        let mut keyed: Vec<_> = metas
            .into_iter()
            .filter_map(|meta| Some((self.key_of(&meta.location)?, meta)))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed
    }

    /// Checks, once per process for this store's server and bucket, that the store refuses a
    /// second create-only write of one key. Call before the first commit: if the store ignores
    /// `If-None-Match`, this is [`Error::ConditionalWritesNotHonoured`] and nothing may commit.
    /// The probe writes and then deletes one small object under [`PROBE_PREFIX`].
    pub async fn ensure_conditional_writes(&self) -> Result<()> {
        probe::ensure(self).await
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
        store
            .put_create("a/b/1.json", Bytes::from_static(b"one"))
            .await
            .unwrap();
        let err = store
            .put_create("a/b/1.json", Bytes::from_static(b"two"))
            .await
            .unwrap_err();
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
    fn keys_are_stored_as_given_not_escaped_twice() {
        let store = Store::from_url("memory://paths/root").unwrap();
        assert_eq!(
            store.path("k=a%2Fb/x.parquet").as_ref(),
            "root/k=a%2Fb/x.parquet"
        );
        assert_eq!(
            store.key_of(&store.path("k=a%2Fb/x.parquet")).unwrap(),
            "k=a%2Fb/x.parquet"
        );
        assert_eq!(store.path("/a//b/").as_ref(), "root/a/b");
        assert_ne!(store.path("a/../b").as_ref(), "root/b", "no traversal");
    }

    #[test]
    fn bad_scheme_names_the_url() {
        let err = Store::from_url("ftp://host/x").unwrap_err();
        assert!(err.to_string().contains("ftp://host/x"), "{err}");
    }

    #[test]
    fn builder_validates_options_and_s3_urls() {
        let options = StoreOptions {
            multipart_threshold_bytes: 10,
            ..Default::default()
        };
        let err = Store::builder("memory://x")
            .options(options)
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Config { variable, .. } if variable == "WEIR_MULTIPART_THRESHOLD_BYTES"),
            "{err}"
        );

        let mut options = StoreOptions::default();
        options.s3.endpoint = Some("http://127.0.0.1:1".into());
        let err = Store::builder("s3://bucket/p")
            .options(options.clone())
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("WEIR_S3_ALLOW_HTTP"), "{err}");

        options.s3.allow_http = true;
        let store = Store::builder("s3://bucket/p/q")
            .options(options.clone())
            .static_credentials("k", "s")
            .build()
            .unwrap();
        assert_eq!(store.url_of("x"), "s3://bucket/p/q/x");
        assert_eq!(store.path("x/y").as_ref(), "p/q/x/y");

        let err = Store::builder("s3:///no-bucket")
            .options(options)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
    }
}
