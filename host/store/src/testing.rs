//! Per-test stores on every backend, so one suite runs against `file://`, `memory://` and
//! `s3://` (feature `testing`).
//!
//! Each [`TestStore`] is fresh and private to its test — its own temporary directory, its own
//! `memory://` name, or its own bucket on the S3 server — so tests run in parallel.
//!
//! The S3 server is the one `scripts/with-s3.sh` starts: its address is in
//! `WEIR_TEST_S3_ENDPOINT`. When that variable is missing an `s3://` test FAILS, naming the
//! script to run, unless `WEIR_SKIP_S3=1` opts out explicitly; CI must not skip by accident.
//!
//! [`store_tests!`](crate::store_tests) turns a list of `async fn(&Store)` into one test per
//! backend:
//!
//! ```ignore
//! async fn commit_twice(store: &weir_store::Store) { /* ... */ }
//! weir_store::store_tests!(commit_twice);
//! // => tests file::commit_twice, memory::commit_twice, s3::commit_twice
//! ```
//! The calling crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
//!
//! Child processes open the same store with `Store::from_url(url)` given [`process_env`].
//! [`LyingS3`] is a stand-in S3 server that ignores `If-None-Match`, for testing that Weir
//! refuses to commit to such a store.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{MIN_PART_SIZE, S3Options, Store, StoreOptions};

mod lying_s3;

pub use lying_s3::LyingS3;

/// The variable that holds the S3 test server's endpoint, e.g. `http://127.0.0.1:41234`.
pub const ENDPOINT_VAR: &str = "WEIR_TEST_S3_ENDPOINT";
/// Set to `1` to skip `s3://` tests deliberately when no server is available.
pub const SKIP_VAR: &str = "WEIR_SKIP_S3";

/// A storage backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    File,
    Memory,
    S3,
}

/// A fresh store private to one test; keep it alive for the test's duration (a `file://`
/// store's directory is deleted when it drops).
#[derive(Debug)]
pub struct TestStore {
    pub store: Store,
    pub backend: Backend,
    dir: Option<tempfile::TempDir>,
    s3: Option<S3Test>,
}

#[derive(Debug, Clone)]
struct S3Test {
    endpoint: String,
    bucket: String,
    access_key_id: String,
    secret_access_key: String,
}

impl TestStore {
    /// A store for `backend`; `None` only for [`Backend::S3`] when skipped via `WEIR_SKIP_S3=1`.
    pub async fn new(backend: Backend, label: &str) -> Option<Self> {
        match backend {
            Backend::File => Some(Self::file(label)),
            Backend::Memory => Some(Self::memory(label)),
            Backend::S3 => Self::s3(label).await,
        }
    }

    /// A `file://` store in a new temporary directory.
    pub fn file(label: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("weir-{}-", sanitize(label, 30)))
            .tempdir()
            .expect("create a temporary directory for a file:// test store");
        let location = dir
            .path()
            .to_str()
            .expect("temporary directory path is UTF-8");
        let store = Store::builder(location)
            .options(test_options())
            .build()
            .expect("open a file:// test store");
        Self {
            store,
            backend: Backend::File,
            dir: Some(dir),
            s3: None,
        }
    }

    /// A `memory://` store under a name no other test uses.
    pub fn memory(label: &str) -> Self {
        let url = format!("memory://weir-test-{}/{}", short_id(), sanitize(label, 40));
        let store = Store::builder(&url)
            .options(test_options())
            .build()
            .expect("open a memory:// test store");
        Self {
            store,
            backend: Backend::Memory,
            dir: None,
            s3: None,
        }
    }

    /// An `s3://` store rooted at a prefix of a new bucket on the test server.
    ///
    /// Panics with instructions if `WEIR_TEST_S3_ENDPOINT` is missing, unless `WEIR_SKIP_S3=1`
    /// (then `None`).
    pub async fn s3(label: &str) -> Option<Self> {
        let endpoint = s3_endpoint()?;
        let bucket = format!("weir-{}-{}", sanitize(label, 40), short_id());
        if let Err(e) = create_bucket(&endpoint, &bucket).await {
            panic!("cannot create test bucket {bucket} on {endpoint}: {e}");
        }
        let test = S3Test {
            access_key_id: env("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "weir-test".into()),
            secret_access_key: env("AWS_SECRET_ACCESS_KEY")
                .unwrap_or_else(|| "weir-test-secret".into()),
            endpoint,
            bucket,
        };
        S3_SERVERS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(test.bucket.clone(), test.clone());
        let url = format!("s3://{}/{}", test.bucket, sanitize(label, 40));
        let store = Store::builder(&url)
            .options(s3_test_options(&test.endpoint))
            .static_credentials(&test.access_key_id, &test.secret_access_key)
            .build()
            .unwrap_or_else(|e| panic!("open s3 test store {url}: {e}"));
        Some(Self {
            store,
            backend: Backend::S3,
            dir: None,
            s3: Some(test),
        })
    }

    /// The local directory of a `file://` store.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// The bucket of an `s3://` store.
    pub fn bucket(&self) -> Option<&str> {
        self.s3.as_ref().map(|s| s.bucket.as_str())
    }

    /// Settings an independent reader needs to open this store: for `s3://`, the keys that
    /// Python `deltalake` takes as `storage_options` (endpoint, credentials, region, HTTP); for
    /// other backends, none. Pass them to a child process as environment variables too.
    pub fn storage_options(&self) -> Vec<(String, String)> {
        self.s3
            .as_ref()
            .map(S3Test::storage_options)
            .unwrap_or_default()
    }
}

impl S3Test {
    fn storage_options(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// The environment a child process needs so that `Store::from_url(store.url())` (options and
/// credentials from the environment, as in Weir's binaries) opens the same store as `store`,
/// which is a [`TestStore`] or a child of one.
///
/// For `s3://`: the test server's endpoint, credentials, region and HTTP permission, plus the
/// test stores' retry limits; for `file://`: nothing. A `memory://` store lives in one process
/// and cannot be shared, so this panics for one (a test bug, not a runtime condition).
pub fn process_env(store: &Store) -> Vec<(String, String)> {
    match store.url().scheme() {
        "s3" | "s3a" => {
            let bucket = store.url().host_str().unwrap_or_default();
            let test = S3_SERVERS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(bucket)
                .cloned()
                .unwrap_or_else(|| {
                    panic!(
                        "{} was not made by TestStore::s3 in this process",
                        store.url()
                    )
                });
            let options = s3_test_options(&test.endpoint).s3;
            let mut env = test.storage_options();
            env.push((
                "WEIR_S3_MAX_RETRIES".into(),
                options.max_retries.to_string(),
            ));
            env.push((
                "WEIR_S3_RETRY_TIMEOUT_SECS".into(),
                options.retry_timeout.as_secs().to_string(),
            ));
            env
        }
        "memory" => panic!(
            "{} is a memory:// store: it exists only in this process, so a child process \
             cannot open it; run multi-process tests on file:// and s3:// only",
            store.url()
        ),
        _ => Vec::new(),
    }
}

/// Options for test stores: the smallest multipart part and threshold (5 MiB), so multipart
/// paths run on modest data.
pub fn test_options() -> StoreOptions {
    StoreOptions {
        multipart_threshold_bytes: MIN_PART_SIZE,
        multipart_part_size_bytes: MIN_PART_SIZE,
        ..StoreOptions::default()
    }
}

fn s3_test_options(endpoint: &str) -> StoreOptions {
    StoreOptions {
        s3: S3Options {
            endpoint: Some(endpoint.to_string()),
            region: Some("us-east-1".into()),
            allow_http: endpoint.starts_with("http://"),
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
            ..S3Options::default()
        },
        ..test_options()
    }
}

/// The S3 test server's endpoint from `WEIR_TEST_S3_ENDPOINT`.
///
/// # Panics
/// If the variable is missing and `WEIR_SKIP_S3=1` is not set: S3 tests must not pass silently
/// without a server. Returns `None` (after saying so on stderr) when skipping deliberately.
pub fn s3_endpoint() -> Option<String> {
    if let Some(endpoint) = env(ENDPOINT_VAR) {
        return Some(endpoint.trim_end_matches('/').to_string());
    }
    if env(SKIP_VAR).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        eprintln!("skipping an s3:// test: {SKIP_VAR} is set and {ENDPOINT_VAR} is not");
        return None;
    }
    panic!(
        "{ENDPOINT_VAR} is not set, so this s3:// test has no S3 server. Run the tests under \
         scripts/with-s3.sh (after scripts/python-env.sh), e.g. \
         `scripts/with-s3.sh cargo test -p weir-store`, or set {SKIP_VAR}=1 to skip the s3:// \
         tests deliberately."
    )
}

/// Creates `bucket` on the S3-compatible server at `endpoint` with an unsigned
/// `PUT /bucket` (moto accepts it). An existing bucket owned by us is fine.
pub async fn create_bucket(endpoint: &str, bucket: &str) -> Result<(), String> {
    let (status, body) = unsigned_request(endpoint, "PUT", &format!("/{bucket}")).await?;
    match status {
        200 => Ok(()),
        409 if body.contains("BucketAlreadyOwnedByYou") => Ok(()),
        _ => Err(format!("PUT /{bucket} answered {status}: {}", body.trim())),
    }
}

/// The keys of multipart uploads started but neither completed nor aborted in `bucket`
/// (an unsigned `GET /bucket?uploads`, which moto answers).
pub async fn pending_multipart_uploads(
    endpoint: &str,
    bucket: &str,
) -> Result<Vec<String>, String> {
    let (status, body) = unsigned_request(endpoint, "GET", &format!("/{bucket}?uploads")).await?;
    if status != 200 {
        return Err(format!(
            "GET /{bucket}?uploads answered {status}: {}",
            body.trim()
        ));
    }
    Ok(body
        .split("<Upload>")
        .skip(1)
        .filter_map(|upload| upload.split("<Key>").nth(1)?.split("</Key>").next())
        .map(str::to_string)
        .collect())
}

/// The S3 test server and bucket behind a store made by [`TestStore::s3`] (or a child of one).
pub fn s3_server_of(store: &Store) -> Option<(String, String)> {
    let bucket = store.url().host_str()?.to_string();
    let servers = S3_SERVERS.lock().unwrap_or_else(|p| p.into_inner());
    let endpoint = servers.get(&bucket)?.endpoint.clone();
    Some((endpoint, bucket))
}

/// Bucket name -> server and credentials of every bucket [`TestStore::s3`] created in this
/// process.
static S3_SERVERS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, S3Test>>,
> = std::sync::LazyLock::new(Default::default);

/// One HTTP/1.1 request without a body or signature; returns (status, body).
async fn unsigned_request(
    endpoint: &str,
    method: &str,
    target: &str,
) -> Result<(u16, String), String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("bad endpoint {endpoint}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("test endpoint {endpoint} must be plain http://"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("no host in {endpoint}"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("no answer from {endpoint} within 10 s"))?
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{method} {target}: not an HTTP response from {endpoint}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Lowercase letters, digits and dashes only (valid in bucket names and keys), at most `max`.
fn sanitize(label: &str, max: usize) -> String {
    let cleaned: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "t".into()
    } else {
        trimmed.to_string()
    }
}

/// Generates one test per backend (`file::NAME`, `memory::NAME`, `s3::NAME`) for each
/// `async fn NAME(&weir_store::Store)` in scope. Each test gets a fresh [`TestStore`]; the `s3`
/// ones fail unless `WEIR_TEST_S3_ENDPOINT` is set (or `WEIR_SKIP_S3=1`). Needs `tokio` with
/// `macros` and `rt-multi-thread` in the calling crate.
///
/// `NAME in [file, s3]` limits a test to some backends (e.g. tests with child processes, which
/// cannot share a `memory://` store):
///
/// ```ignore
/// weir_store::store_tests!(commit_twice, crash_the_writer in [file, s3]);
/// ```
#[macro_export]
macro_rules! store_tests {
    // Sort the names into one list per backend, then emit one module per backend.
    (@munch $f:tt $m:tt $s:tt) => {
        $crate::store_tests!(@emit file $f);
        $crate::store_tests!(@emit memory $m);
        $crate::store_tests!(@emit s3 $s);
    };
    (@munch $f:tt $m:tt $s:tt $name:ident in [$($b:ident),+ $(,)?] $(, $($rest:tt)*)?) => {
        $crate::store_tests!(@route $f $m $s $name [$($b)+] [$($($rest)*)?]);
    };
    (@munch $f:tt $m:tt $s:tt $name:ident $(, $($rest:tt)*)?) => {
        $crate::store_tests!(@route $f $m $s $name [file memory s3] [$($($rest)*)?]);
    };
    (@route $f:tt $m:tt $s:tt $name:ident [] [$($rest:tt)*]) => {
        $crate::store_tests!(@munch $f $m $s $($rest)*);
    };
    (@route [$($f:ident)*] $m:tt $s:tt $name:ident [file $($b:ident)*] $rest:tt) => {
        $crate::store_tests!(@route [$($f)* $name] $m $s $name [$($b)*] $rest);
    };
    (@route $f:tt [$($m:ident)*] $s:tt $name:ident [memory $($b:ident)*] $rest:tt) => {
        $crate::store_tests!(@route $f [$($m)* $name] $s $name [$($b)*] $rest);
    };
    (@route $f:tt $m:tt [$($s:ident)*] $name:ident [s3 $($b:ident)*] $rest:tt) => {
        $crate::store_tests!(@route $f $m [$($s)* $name] $name [$($b)*] $rest);
    };
    (@emit $backend:ident []) => {};
    (@emit file [$($name:ident)+]) => {
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = $crate::testing::TestStore::file(stringify!($name));
                    super::$name(&test.store).await;
                }
            )+
        }
    };
    (@emit memory [$($name:ident)+]) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = $crate::testing::TestStore::memory(stringify!($name));
                    super::$name(&test.store).await;
                }
            )+
        }
    };
    (@emit s3 [$($name:ident)+]) => {
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(test) = $crate::testing::TestStore::s3(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&test.store).await;
                }
            )+
        }
    };
    ($first:ident $($tests:tt)*) => {
        $crate::store_tests!(@munch [] [] [] $first $($tests)*);
    };
}
