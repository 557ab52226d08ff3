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
