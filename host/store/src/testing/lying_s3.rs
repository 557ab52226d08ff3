//! [`LyingS3`]: a tiny in-memory S3 server on loopback that ignores `If-None-Match`, as
//! Garage 2.5 does. Every PUT succeeds and replaces the object, so two "create-only" writes of
//! one key both win. It speaks just enough S3 for Weir's store and manifest: PUT, GET, HEAD,
//! DELETE, bulk delete (`POST ?delete`) and ListObjectsV2 (prefix, delimiter, start-after).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::{S3Options, Store, StoreOptions};

/// Every object's Last-Modified (the stand-in keeps no clock).
const LAST_MODIFIED_HTTP: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
const LAST_MODIFIED_XML: &str = "2015-10-21T07:28:00.000Z";

/// A running stand-in S3 server that ignores conditional writes; stops when dropped.
#[derive(Debug)]
pub struct LyingS3 {
    state: Arc<State>,
    endpoint: String,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct State {
    /// "bucket/key" -> (bytes, ETag).
    objects: Mutex<BTreeMap<String, (Bytes, String)>>,
    /// Every key PUT, in order ("bucket/key").
    put_log: Mutex<Vec<String>>,
    puts: AtomicUsize,
    conditional_puts: AtomicUsize,
}

impl LyingS3 {
    /// Starts a server on a free port of 127.0.0.1, on the current Tokio runtime.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the stand-in S3 server");
        let endpoint = format!(
            "http://{}",
            listener
                .local_addr()
                .expect("a bound listener has an address")
        );
        let state = Arc::new(State::default());
        let shared = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.handle(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            state,
            endpoint,
            server,
        }
    }

    /// The server's address, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A store for `url` (`s3://bucket/prefix`) on this server, without retries.
    ///
    /// # Panics
    /// If `url` is not a valid `s3://` URL.
    pub fn store(&self, url: &str) -> Store {
        let options = StoreOptions {
            s3: S3Options {
                endpoint: Some(self.endpoint.clone()),
                allow_http: true,
                max_retries: 0,
                ..S3Options::default()
            },
            ..StoreOptions::default()
        };
        Store::builder(url)
            .options(options)
            .static_credentials("stand-in", "stand-in")
            .build()
            .unwrap_or_else(|e| panic!("open {url} on the stand-in S3 server: {e}"))
    }

    /// The environment a child process needs to reach this server with `Store::from_url`.
    pub fn process_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "stand-in"),
            ("AWS_SECRET_ACCESS_KEY", "stand-in"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("WEIR_S3_MAX_RETRIES", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// PUT requests served.
    pub fn puts(&self) -> usize {
        self.state.puts.load(Ordering::SeqCst)
    }

    /// PUT requests that carried `If-None-Match` (and were served anyway).
    pub fn conditional_puts(&self) -> usize {
        self.state.conditional_puts.load(Ordering::SeqCst)
    }

    /// The objects stored now, as sorted `bucket/key` strings.
    pub fn keys(&self) -> Vec<String> {
        lock(&self.state.objects).keys().cloned().collect()
    }

    /// Every key ever PUT, in order, as `bucket/key` (including later deleted ones).
    pub fn put_keys(&self) -> Vec<String> {
        lock(&self.state.put_log).clone()
    }
}

impl Drop for LyingS3 {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = percent_decode(request.uri().path().trim_start_matches('/'));
        let query: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let method = request.method().clone();
        let conditional = request.headers().contains_key("if-none-match");
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return status(StatusCode::BAD_REQUEST),
        };
        match method {
            Method::PUT => {
                let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
                if conditional {
                    self.conditional_puts.fetch_add(1, Ordering::SeqCst);
                }
                let e_tag = format!("\"{n}\"");
                lock(&self.put_log).push(path.clone());
                lock(&self.objects).insert(path, (body, e_tag.clone()));
                response(StatusCode::OK)
                    .header("ETag", e_tag)
                    .body(Full::new(Bytes::new()))
                    .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
            }
            Method::GET if param("list-type") == Some("2") => self.list(&path, param),
            Method::GET | Method::HEAD => {
                let Some((data, e_tag)) = lock(&self.objects).get(&path).cloned() else {
                    return response(StatusCode::NOT_FOUND)
                        .body(Full::new(Bytes::from_static(
                            b"<Error><Code>NoSuchKey</Code></Error>",
                        )))
                        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR));
                };
                response(StatusCode::OK)
                    .header("ETag", e_tag)
                    .header("Last-Modified", LAST_MODIFIED_HTTP)
                    .header("Content-Length", data.len())
                    .body(Full::new(if method == Method::GET {
                        data
                    } else {
                        Bytes::new()
                    }))
                    .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
            }
            // object_store deletes through the bulk API: POST /bucket?delete with <Key>s.
            Method::POST if param("delete").is_some() => {
                let body = String::from_utf8_lossy(&body);
                let mut deleted = String::new();
                let mut objects = lock(&self.objects);
                for key in body
                    .split("<Key>")
                    .skip(1)
                    .filter_map(|s| s.split("</Key>").next())
                {
                    objects.remove(&format!("{path}/{}", xml_unescape(key)));
                    deleted.push_str(&format!("<Deleted><Key>{key}</Key></Deleted>"));
                }
                xml(format!("<DeleteResult>{deleted}</DeleteResult>"))
            }
            Method::DELETE => {
                lock(&self.objects).remove(&path);
                status(StatusCode::NO_CONTENT)
            }
            _ => status(StatusCode::NOT_IMPLEMENTED),
        }
    }

    /// ListObjectsV2 of bucket `bucket`: keys under `prefix` after `start-after`; with a
    /// delimiter, keys below the next delimiter are rolled up into common prefixes.
    fn list<'a>(
        &self,
        bucket: &str,
        param: impl Fn(&str) -> Option<&'a str>,
    ) -> Response<Full<Bytes>> {
        let bucket = bucket.trim_end_matches('/');
        let prefix = param("prefix").unwrap_or("");
        let start_after = param("start-after").unwrap_or("");
        let delimiter = param("delimiter").filter(|d| !d.is_empty());
        let mut contents = String::new();
        let mut common = std::collections::BTreeSet::new();
        for (full, (data, e_tag)) in lock(&self.objects).iter() {
            let Some(key) = full.strip_prefix(&format!("{bucket}/")) else {
                continue;
            };
            if !key.starts_with(prefix) || key <= start_after {
                continue;
            }
            if let Some(d) = delimiter
                && let Some(at) = key[prefix.len()..].find(d)
            {
                common.insert(key[..prefix.len() + at + d.len()].to_string());
                continue;
            }
            contents.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>{LAST_MODIFIED_XML}</LastModified>\
                 <ETag>{}</ETag><Size>{}</Size></Contents>",
                xml_escape(key),
                xml_escape(e_tag),
                data.len()
            ));
        }
        let prefixes: String = common
            .iter()
            .map(|p| {
                format!(
                    "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                    xml_escape(p)
                )
            })
            .collect();
        xml(format!(
            "<ListBucketResult><Name>{bucket}</Name><Prefix>{}</Prefix>\
             <IsTruncated>false</IsTruncated>{contents}{prefixes}</ListBucketResult>",
            xml_escape(prefix)
        ))
    }
}

fn response(code: StatusCode) -> hyper::http::response::Builder {
    Response::builder().status(code)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

fn xml(body: String) -> Response<Full<Bytes>> {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}");
    response(StatusCode::OK)
        .header("Content-Type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Decodes `%XX` escapes of a request path (invalid escapes are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
