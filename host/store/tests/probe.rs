//! The conditional-write probe against a stand-in S3 server that ignores `If-None-Match`
//! (as Garage does), and against a real one (moto, via `scripts/with-s3.sh`).

use bytes::Bytes;
use weir_store::Error;
use weir_store::testing::{LyingS3, TestStore};

const REFUSAL: &str =
    "this store does not honour conditional writes (If-None-Match); commits would not be atomic";

#[tokio::test]
async fn probe_refuses_a_store_that_ignores_if_none_match() {
    let server = LyingS3::start().await;
    let store = server.store("s3://garage-like/tables/t1");

    // The hazard itself: both create-only writes "win".
    store
        .put_create("race.json", Bytes::from_static(b"a"))
        .await
        .unwrap();
    store
        .put_create("race.json", Bytes::from_static(b"b"))
        .await
        .unwrap();
    assert_eq!(server.conditional_puts(), 2);

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
    assert_eq!(server.conditional_puts(), 4);
    // The probe cleaned up after itself.
    assert_eq!(server.keys(), ["garage-like/tables/t1/race.json"]);

    // Cached per process: asking again, even through a new handle or a child store on the same
    // bucket, refuses again without probing again.
    let puts = server.puts();
    let again = server.store("s3://garage-like/tables/t1");
    for store in [again.clone(), again.child("part=1")] {
        let err = store.ensure_conditional_writes().await.unwrap_err();
        assert!(err.to_string().contains(REFUSAL), "{err}");
    }
    assert_eq!(server.puts(), puts, "the probe must not run twice");

    // The uncached probe runs again and says the same.
    let err = weir_store::probe_conditional_writes(&store)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(REFUSAL), "{err}");
    assert_eq!(server.puts(), puts + 2);
}

#[tokio::test]
async fn probe_cache_is_per_server() {
    // Same bucket name on two different servers: each is probed on its own.
    let first = LyingS3::start().await;
    let second = LyingS3::start().await;
    for server in [&first, &second] {
        let store = server.store("s3://same-bucket/t");
        let err = store.ensure_conditional_writes().await.unwrap_err();
        assert!(err.to_string().contains(REFUSAL), "{err}");
    }
    assert_eq!(first.puts(), 2);
    assert_eq!(second.puts(), 2);
}

#[tokio::test]
async fn probe_does_not_cache_transport_errors() {
    // Nothing listens on this port: the probe fails with a store error, not a verdict.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut options = weir_store::StoreOptions::default();
    options.s3.endpoint = Some(endpoint);
    options.s3.allow_http = true;
    options.s3.max_retries = 0;
    let store = weir_store::Store::builder("s3://unreachable/t")
        .options(options)
        .static_credentials("k", "s")
        .build()
        .unwrap();
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
