//! The S3 test helpers check what they claim: a bucket per test, and pending uploads seen.

use bytes::Bytes;
use weir_store::object_store::{ObjectStoreExt, PutPayload};
use weir_store::testing::{TestStore, pending_multipart_uploads, s3_server_of};

#[tokio::test]
async fn each_s3_test_store_has_its_own_bucket() {
    let Some(a) = TestStore::s3("helpers-a").await else {
        return;
    };
    let Some(b) = TestStore::s3("helpers-a").await else {
        return;
    };
    assert_ne!(a.bucket(), b.bucket());
    a.store.put("k", Bytes::from_static(b"a")).await.unwrap();
    assert!(b.store.list("").await.unwrap().is_empty());
    let options = a.storage_options();
    assert!(
        options
            .iter()
            .any(|(k, v)| k == "AWS_ENDPOINT_URL" && v.starts_with("http://"))
    );
}

#[tokio::test]
async fn pending_multipart_uploads_are_visible_until_aborted() {
    let Some(test) = TestStore::s3("helpers-pending").await else {
        return;
    };
    let (endpoint, bucket) = s3_server_of(&test.store).expect("a test bucket");
    let path = test.store.path("left/behind.bin");
    // An upload started below the Store API and never finished or aborted.
    let mut upload = test
        .store
        .object_store()
        .put_multipart(&path)
        .await
        .unwrap();
    upload
        .put_part(PutPayload::from(vec![7u8; 1024]))
        .await
        .unwrap();
    let pending = pending_multipart_uploads(&endpoint, &bucket).await.unwrap();
    assert_eq!(pending, [path.to_string()]);
    upload.abort().await.unwrap();
    assert!(
        pending_multipart_uploads(&endpoint, &bucket)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_lying_stand_in_lists_like_s3_and_ignores_if_none_match() {
    use weir_store::testing::LyingS3;
    let server = LyingS3::start().await;
    let store = server.store("s3://lying/root");
    for key in ["a/1", "a/2", "a/b/3", "ab/4", "k=v%2F1/5"] {
        store
            .put_create(key, Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    // The second create-only PUT "wins" too: that is the lie.
    store
        .put_create("a/1", Bytes::from_static(b"y"))
        .await
        .unwrap();
    assert_eq!(store.get("a/1").await.unwrap(), "y");
    assert_eq!(server.conditional_puts(), 6);

    let keys = |listed: Vec<(String, weir_store::object_store::ObjectMeta)>| {
        listed.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
    };
    assert_eq!(
        keys(store.list("a").await.unwrap()),
        ["a/1", "a/2", "a/b/3"]
    );
    assert_eq!(
        keys(store.list_after("a", "a/1").await.unwrap()),
        ["a/2", "a/b/3"]
    );
    let (dirs, objects) = store.list_dir("a").await.unwrap();
    assert_eq!(dirs, ["a/b"]);
    assert_eq!(keys(objects), ["a/1", "a/2"]);
    assert_eq!(keys(store.list("k=v%2F1").await.unwrap()), ["k=v%2F1/5"]);
    store.delete("a/2").await.unwrap();
    assert!(matches!(
        store.get("a/2").await,
        Err(weir_store::Error::NotFound { .. })
    ));
    assert_eq!(server.keys().len(), 4);
    assert_eq!(server.put_keys().len(), 6);
}
