//! The conditional-write probe against a stand-in S3 server that ignores `If-None-Match`
//! (as Garage does), and against a real one (moto, via `scripts/with-s3.sh`).

use std::collections::HashMap;
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
use weir_store::testing::TestStore;
use weir_store::{Error, S3Options, Store, StoreOptions};

const REFUSAL: &str =
    "this store does not honour conditional writes (If-None-Match); commits would not be atomic";

/// An in-memory S3-ish server: PUT always succeeds (ignoring conditional headers), GET/HEAD
/// serve what was PUT, DELETE and bulk delete remove it.
#[derive(Default)]
struct StandIn {
    objects: Mutex<HashMap<String, Bytes>>,
    puts: AtomicUsize,
    puts_with_if_none_match: AtomicUsize,
}

impl StandIn {
    async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = request.uri().path().to_string();
        let bulk_delete = request.uri().query() == Some("delete");
        let method = request.method().clone();
        let conditional = request.headers().contains_key("if-none-match");
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
        };
        let mut objects = self.objects.lock().unwrap();
        let response = match method {
            Method::PUT => {
                self.puts.fetch_add(1, Ordering::SeqCst);
                if conditional {
                    self.puts_with_if_none_match.fetch_add(1, Ordering::SeqCst);
                }
                let e_tag = format!("\"{}\"", self.puts.load(Ordering::SeqCst));
                objects.insert(path, body);
                Response::builder()
                    .status(StatusCode::OK)
                    .header("ETag", e_tag)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
            Method::GET | Method::HEAD => match objects.get(&path) {
                Some(data) => Response::builder()
                    .status(StatusCode::OK)
                    .header("ETag", "\"stand-in\"")
                    .header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
                    .header("Content-Length", data.len())
                    .body(Full::new(if method == Method::GET {
                        data.clone()
                    } else {
                        Bytes::new()
                    }))
                    .unwrap(),
                None => Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body(Full::new(Bytes::from_static(
                        b"<Error><Code>NoSuchKey</Code></Error>",
                    )))
                    .unwrap(),
            },
            // object_store deletes through the bulk API: POST /bucket?delete with <Key>s.
            Method::POST if bulk_delete => {
                let body = String::from_utf8_lossy(&body);
                let mut deleted = String::new();
                for key in body
                    .split("<Key>")
                    .skip(1)
                    .filter_map(|s| s.split("</Key>").next())
                {
                    objects.remove(&format!("{path}/{key}"));
                    deleted.push_str(&format!("<Deleted><Key>{key}</Key></Deleted>"));
                }
                Response::builder()
                    .status(StatusCode::OK)
                    .body(Full::new(Bytes::from(format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult>{deleted}</DeleteResult>"
                    ))))
                    .unwrap()
            }
            Method::DELETE => {
                objects.remove(&path);
                status(StatusCode::NO_CONTENT)
            }
            _ => status(StatusCode::NOT_IMPLEMENTED),
        };
        Ok(response)
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Starts the stand-in on 127.0.0.1:0; returns its state and endpoint.
async fn start_stand_in() -> (Arc<StandIn>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(StandIn::default());
    let server = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let server = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let server = server.clone();
                    async move { server.handle(request).await }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (state, endpoint)
}

fn stand_in_store(endpoint: &str, url: &str) -> Store {
    let options = StoreOptions {
        s3: S3Options {
            endpoint: Some(endpoint.to_string()),
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
        .unwrap()
}

#[tokio::test]
async fn probe_refuses_a_store_that_ignores_if_none_match() {
    let (server, endpoint) = start_stand_in().await;
    let store = stand_in_store(&endpoint, "s3://garage-like/tables/t1");

    // The hazard itself: both create-only writes "win".
    store
        .put_create("race.json", Bytes::from_static(b"a"))
        .await
        .unwrap();
    store
        .put_create("race.json", Bytes::from_static(b"b"))
        .await
        .unwrap();
    assert_eq!(server.puts_with_if_none_match.load(Ordering::SeqCst), 2);

    let err = store.ensure_conditional_writes().await.unwrap_err();
    assert!(
        matches!(err, Error::ConditionalWritesNotHonoured { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains(REFUSAL), "{message}");
    assert!(message.contains("s3://garage-like/tables/t1"), "{message}");
    assert!(message.contains("_weir/probe/"), "{message}");
    // The client did send If-None-Match on both probe writes; the server ignored it.
    assert_eq!(server.puts_with_if_none_match.load(Ordering::SeqCst), 4);
    // The probe cleaned up after itself.
    let keys: Vec<String> = server.objects.lock().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["/garage-like/tables/t1/race.json"]);

    // Cached per process: asking again, even through a new handle or a child store on the same
    // bucket, refuses again without probing again.
    let puts = server.puts.load(Ordering::SeqCst);
    let again = stand_in_store(&endpoint, "s3://garage-like/tables/t1");
    for store in [again.clone(), again.child("part=1")] {
        let err = store.ensure_conditional_writes().await.unwrap_err();
        assert!(err.to_string().contains(REFUSAL), "{err}");
    }
    assert_eq!(
        server.puts.load(Ordering::SeqCst),
        puts,
        "the probe must not run twice"
    );

    // The uncached probe runs again and says the same.
    let err = weir_store::probe_conditional_writes(&store)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(REFUSAL), "{err}");
    assert_eq!(server.puts.load(Ordering::SeqCst), puts + 2);
}

#[tokio::test]
async fn probe_cache_is_per_server() {
    // Same bucket name on two different servers: each is probed on its own.
    let (first, first_endpoint) = start_stand_in().await;
    let (second, second_endpoint) = start_stand_in().await;
    for endpoint in [&first_endpoint, &second_endpoint] {
        let store = stand_in_store(endpoint, "s3://same-bucket/t");
        let err = store.ensure_conditional_writes().await.unwrap_err();
        assert!(err.to_string().contains(REFUSAL), "{err}");
    }
    assert_eq!(first.puts.load(Ordering::SeqCst), 2);
    assert_eq!(second.puts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn probe_does_not_cache_transport_errors() {
    // Nothing listens on this port: the probe fails with a store error, not a verdict.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let store = stand_in_store(&endpoint, "s3://unreachable/t");
    let err = store.ensure_conditional_writes().await.unwrap_err();
    assert!(matches!(err, Error::Other { .. }), "{err}");
    assert!(
        err.to_string().contains("s3://unreachable/t/_weir/probe/"),
        "{err}"
    );
}

#[tokio::test]
async fn probe_passes_against_moto() {
    let Some(test) = TestStore::s3("probe-moto").await else {
        return;
    };
    test.store.ensure_conditional_writes().await.unwrap();
    // Cached success: a second call is fine too, and nothing is left behind.
    test.store.ensure_conditional_writes().await.unwrap();
    assert!(test.store.list("_weir").await.unwrap().is_empty());
}

#[tokio::test]
async fn probe_passes_on_file_and_memory() {
    for test in [
        TestStore::file("probe-file"),
        TestStore::memory("probe-memory"),
    ] {
        test.store.ensure_conditional_writes().await.unwrap();
        assert!(test.store.list("").await.unwrap().is_empty());
    }
}
