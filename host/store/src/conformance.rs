//! The store conformance suite: what Weir's manifest and lake rely on, checked per backend
//! (feature `testing`).
//!
//! In the style of `object_store`'s `integration.rs`: each function takes a fresh, empty
//! `&Store` and panics on a violation. Run them for every backend with
//! [`store_tests!`](crate::store_tests), as `tests/conformance.rs` does; other crates can run
//! them too. [`ALL`] names every function, so a suite can check it runs them all.
//!
//! Where backends legitimately differ, the function asserts each backend's documented
//! behaviour: `file://` has no compare-and-swap ([`Store::put_if_match`] is
//! [`Error::NotSupported`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::Barrier;

use crate::{Error, PROBE_PREFIX, Store};

/// The names of every conformance function, in the order they are defined.
pub const ALL: &[&str] = &[
    "put_get_head_delete",
    "create_only_race_has_one_winner",
    "already_exists_keeps_the_first_write",
    "missing_objects_are_not_found",
    "put_if_match_is_compare_and_swap",
    "list_with_prefix",
    "list_with_delimiter",
    "list_after_offset",
    "ranged_reads",
    "multipart_upload_large_object",
    "multipart_abort_leaves_nothing",
    "multipart_dropped_writer_aborts",
    "put_file_and_buf_writer_above_threshold",
    "child_stores_share_objects",
    "conditional_write_probe_passes",
];

/// Writes, reads back, inspects and deletes one object.
pub async fn put_get_head_delete(store: &Store) {
    let data = Bytes::from_static(b"hello, weir");
    let put = store.put("dir/hello.txt", data.clone()).await.unwrap();
    assert_eq!(store.get("dir/hello.txt").await.unwrap(), data);
    let meta = store.head("dir/hello.txt").await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(
        store.key_of(&meta.location).as_deref(),
        Some("dir/hello.txt")
    );
    if let (Some(put_tag), Some(head_tag)) = (&put.e_tag, &meta.e_tag) {
        assert_eq!(put_tag, head_tag, "the ETag from PUT must match HEAD");
    }

    // A plain put replaces.
    store
        .put("dir/hello.txt", Bytes::from_static(b"v2"))
        .await
        .unwrap();
    assert_eq!(store.get("dir/hello.txt").await.unwrap(), "v2");

    store.delete("dir/hello.txt").await.unwrap();
    assert!(matches!(
        store.get("dir/hello.txt").await,
        Err(Error::NotFound { .. })
    ));
    // Deleting again is not an error.
    store.delete("dir/hello.txt").await.unwrap();
}

/// Many tasks race create-only PUTs of one key: exactly one wins, every other gets
/// `AlreadyExists`, and the object holds the winner's bytes. Repeated over several keys.
pub async fn create_only_race_has_one_winner(store: &Store) {
    const TASKS: usize = 16;
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        let key = format!("_delta_log/{round:020}.json");
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::with_capacity(TASKS);
        for writer in 0..TASKS {
            let store = store.clone();
            let key = key.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let body = Bytes::from(format!("writer {writer} round {round}"));
                barrier.wait().await;
                (writer, body.clone(), store.put_create(&key, body).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (writer, body, result) = task.await.expect("racing task panicked");
            match result {
                Ok(_) => winners.push((writer, body)),
                Err(Error::AlreadyExists { url }) => {
                    assert!(url.ends_with(&key), "error must name the key: {url}");
                }
                Err(other) => panic!("writer {writer}: unexpected error {other}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one create-only PUT must win, winners: {:?}",
            winners.iter().map(|w| w.0).collect::<Vec<_>>()
        );
        assert_eq!(store.get(&key).await.unwrap(), winners[0].1);
    }
}

/// A refused create-only PUT names the key and leaves the first write intact.
pub async fn already_exists_keeps_the_first_write(store: &Store) {
    store
        .put_create("log/0.json", Bytes::from_static(b"first"))
        .await
        .unwrap();
    let err = store
        .put_create("log/0.json", Bytes::from_static(b"second"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(
        err.to_string().contains(&store.url_of("log/0.json")),
        "{err}"
    );
    assert_eq!(store.get("log/0.json").await.unwrap(), "first");
    // After a delete, the key can be created again.
    store.delete("log/0.json").await.unwrap();
    store
        .put_create("log/0.json", Bytes::from_static(b"third"))
        .await
        .unwrap();
    assert_eq!(store.get("log/0.json").await.unwrap(), "third");
}

/// Reads of a missing object are `NotFound`, naming the key.
pub async fn missing_objects_are_not_found(store: &Store) {
    let key = "no/such/object.parquet";
    let url = store.url_of(key);
    let results = [
        ("get", store.get(key).await.map(drop)),
        ("get_range", store.get_range(key, 0..4).await.map(drop)),
        ("head", store.head(key).await.map(drop)),
    ];
    for (operation, result) in results {
        match result {
            Err(Error::NotFound { url: named }) => assert_eq!(named, url, "{operation}"),
            other => panic!("{operation} of a missing object: expected NotFound, got {other:?}"),
        }
    }
    let listed = store.list("no/such").await.unwrap();
    assert!(listed.is_empty(), "{listed:?}");
}

/// `put_if_match` replaces only the version it names: a stale or missing ETag is
/// `Precondition`. `file://` cannot do this atomically and says so with `NotSupported`.
pub async fn put_if_match_is_compare_and_swap(store: &Store) {
    let first = store
        .put("state.json", Bytes::from_static(b"v1"))
        .await
        .unwrap();
    let first_tag = first.e_tag.clone().expect("PUT returns an ETag");
    let result = store
        .put_if_match("state.json", Bytes::from_static(b"v2"), &first_tag)
        .await;
    if store.url().scheme() == "file" {
        match result {
            Err(Error::NotSupported { url, operation }) => {
                assert!(url.ends_with("state.json"), "{url}");
                assert!(operation.contains("Update"), "{operation}");
            }
            other => panic!("file:// put_if_match: expected NotSupported, got {other:?}"),
        }
        assert_eq!(store.get("state.json").await.unwrap(), "v1");
        return;
    }
    let second = result.expect("put_if_match with the current ETag succeeds");
    assert_eq!(store.get("state.json").await.unwrap(), "v2");
    assert_ne!(second.e_tag.as_deref(), Some(first_tag.as_str()));

    // The first ETag is stale now.
    let err = store
        .put_if_match("state.json", Bytes::from_static(b"v3"), &first_tag)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Precondition { .. }), "{err}");
    assert!(err.to_string().contains("state.json"), "{err}");
    assert_eq!(store.get("state.json").await.unwrap(), "v2");

    // A missing object fails the precondition too.
    let err = store
        .put_if_match("absent.json", Bytes::from_static(b"x"), &first_tag)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Precondition { .. }), "{err}");
    assert!(matches!(
        store.head("absent.json").await,
        Err(Error::NotFound { .. })
    ));
}

async fn put_keys(store: &Store, keys: &[&str]) {
    for key in keys {
        store.put(key, Bytes::from(key.to_string())).await.unwrap();
    }
}

fn keys_of(listed: &[(String, object_store::ObjectMeta)]) -> Vec<&str> {
    listed.iter().map(|(k, _)| k.as_str()).collect()
}

/// Recursive listing below a prefix matches whole path segments and is sorted by key.
pub async fn list_with_prefix(store: &Store) {
    put_keys(
        store,
        &[
            "t/part=b/2.parquet",
            "t/part=a/1.parquet",
            "t/part=a/sub/3.parquet",
            "t/_delta_log/00000000000000000000.json",
            "tx/other.parquet",
            "top.json",
        ],
    )
    .await;
    let listed = store.list("t").await.unwrap();
    assert_eq!(
        keys_of(&listed),
        [
            "t/_delta_log/00000000000000000000.json",
            "t/part=a/1.parquet",
            "t/part=a/sub/3.parquet",
            "t/part=b/2.parquet",
        ],
        "prefix `t` must not match `tx/` or `top.json`, and results are sorted"
    );
    for (key, meta) in &listed {
        assert_eq!(meta.size, key.len() as u64, "{key}");
    }
    let listed = store.list("t/part=a").await.unwrap();
    assert_eq!(
        keys_of(&listed),
        ["t/part=a/1.parquet", "t/part=a/sub/3.parquet"]
    );
    let all = store.list("").await.unwrap();
    assert_eq!(all.len(), 6, "{:?}", keys_of(&all));
    assert!(store.list("t/part=c").await.unwrap().is_empty());
}

/// Listing with a delimiter gives the immediate sub-prefixes and objects, each sorted.
pub async fn list_with_delimiter(store: &Store) {
    put_keys(
        store,
        &[
            "t/part=b/2.parquet",
            "t/part=a/1.parquet",
            "t/part=a/sub/3.parquet",
            "t/_delta_log/0.json",
            "t/z.txt",
            "t/a.txt",
            "tx/other.parquet",
        ],
    )
    .await;
    let (dirs, objects) = store.list_dir("t").await.unwrap();
    assert_eq!(dirs, ["t/_delta_log", "t/part=a", "t/part=b"]);
    assert_eq!(keys_of(&objects), ["t/a.txt", "t/z.txt"]);
    let (dirs, objects) = store.list_dir("t/part=a").await.unwrap();
    assert_eq!(dirs, ["t/part=a/sub"]);
    assert_eq!(keys_of(&objects), ["t/part=a/1.parquet"]);
    let (dirs, objects) = store.list_dir("").await.unwrap();
    assert_eq!(dirs, ["t", "tx"]);
    assert!(objects.is_empty());
    let (dirs, objects) = store.list_dir("nothing/here").await.unwrap();
    assert!(dirs.is_empty() && objects.is_empty());
}

/// `list_after` returns only keys sorting after the offset, sorted (a Delta log tail).
pub async fn list_after_offset(store: &Store) {
    let keys: Vec<String> = (0..6).map(|v| format!("_delta_log/{v:020}.json")).collect();
    for key in &keys {
        store
            .put_create(key, Bytes::from_static(b"{}"))
            .await
            .unwrap();
    }
    let listed = store.list_after("_delta_log", &keys[2]).await.unwrap();
    let expected: Vec<&str> = keys[3..].iter().map(String::as_str).collect();
    assert_eq!(keys_of(&listed), expected);
    assert!(
        store
            .list_after("_delta_log", &keys[5])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Deterministic bytes whose value depends on the position, so a wrong range shows.
pub fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Ranged reads (as the Parquet scan does): single, several at once, and at the edges.
pub async fn ranged_reads(store: &Store) {
    let data = pattern(10_000);
    store.put("f.parquet", data.clone()).await.unwrap();
    for range in [0..1, 0..10_000, 4_096..8_192, 9_990..10_000, 1234..1235] {
        let got = store.get_range("f.parquet", range.clone()).await.unwrap();
        assert_eq!(
            got,
            data.slice(range.start as usize..range.end as usize),
            "{range:?}"
        );
    }
    let ranges = [0..8, 8..16, 100..200, 9_000..10_000, 50..60];
    let got = store.get_ranges("f.parquet", &ranges).await.unwrap();
    assert_eq!(got.len(), ranges.len());
    for (range, bytes) in ranges.iter().zip(&got) {
        assert_eq!(
            *bytes,
            data.slice(range.start as usize..range.end as usize),
            "{range:?}"
        );
    }
    // A range that runs past the end is cut at the end (the Parquet footer read relies on it).
    let tail = store.get_range("f.parquet", 9_000..20_000).await.unwrap();
    assert_eq!(tail, data.slice(9_000..));
    // A range that starts past the end is an error naming the key.
    let err = store
        .get_range("f.parquet", 20_000..20_010)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("f.parquet"), "{err}");
}

/// A large object uploaded in several parts reads back whole, across part boundaries.
pub async fn multipart_upload_large_object(store: &Store) {
    let size = 2 * crate::MIN_PART_SIZE + 123_457;
    let data = pattern(size);
    let mut writer = store.put_multipart("big/data.parquet").await.unwrap();
    // Uneven writes, so parts are cut from several writes.
    let mut offset = 0;
    let mut step = 700_001;
    while offset < size {
        let end = (offset + step).min(size);
        writer.write(data.slice(offset..end)).await.unwrap();
        offset = end;
        step = step * 3 / 2;
    }
    assert_eq!(writer.bytes_written(), size as u64);
    // Not visible before it is finished.
    assert!(matches!(
        store.head("big/data.parquet").await,
        Err(Error::NotFound { .. })
    ));
    writer.finish().await.unwrap();
    let meta = store.head("big/data.parquet").await.unwrap();
    assert_eq!(meta.size, size as u64);
    let got = store.get("big/data.parquet").await.unwrap();
    assert!(
        got == data,
        "multipart object differs from what was written"
    );
    let boundary = crate::MIN_PART_SIZE as u64;
    let range = boundary - 10..boundary + 10;
    let got = store
        .get_range("big/data.parquet", range.clone())
        .await
        .unwrap();
    assert_eq!(got, data.slice(range.start as usize..range.end as usize));
}

/// An aborted multipart upload leaves no object and (on `file://`) no staging files.
pub async fn multipart_abort_leaves_nothing(store: &Store) {
    let mut writer = store.put_multipart("big/aborted.parquet").await.unwrap();
    writer
        .write(pattern(crate::MIN_PART_SIZE + 1))
        .await
        .unwrap();
    writer.abort().await.unwrap();
    assert!(matches!(
        store.head("big/aborted.parquet").await,
        Err(Error::NotFound { .. })
    ));
    assert!(store.list("").await.unwrap().is_empty());
    assert_no_upload_leftovers(store).await;
}

/// A writer dropped unfinished (a cancelled task, an early `?`) aborts its upload.
pub async fn multipart_dropped_writer_aborts(store: &Store) {
    async fn fails_midway(store: &Store) -> crate::Result<()> {
        let mut writer = store.put_multipart("big/dropped.parquet").await?;
        writer.write(pattern(crate::MIN_PART_SIZE + 7)).await?;
        Err(Error::NotFound {
            url: "simulated failure".into(),
        })
    }
    assert!(fails_midway(store).await.is_err());
    assert!(matches!(
        store.head("big/dropped.parquet").await,
        Err(Error::NotFound { .. })
    ));
    assert!(store.list("").await.unwrap().is_empty());
    assert_no_upload_leftovers(store).await;
}

/// Polls (briefly: a dropped writer aborts in the background) until no part of an aborted
/// upload remains: on `file://` no staging file (`name#N`) under the store's directory; on an
/// S3 test server ([`crate::testing::TestStore::s3`]) no pending multipart upload.
async fn assert_no_upload_leftovers(store: &Store) {
    let mut leftovers = Vec::new();
    for _ in 0..50 {
        leftovers = if let Ok(dir) = store.url().to_file_path() {
            files_below(&dir)
                .into_iter()
                .map(|p| p.display().to_string())
                .collect()
        } else if let Some((endpoint, bucket)) = crate::testing::s3_server_of(store) {
            crate::testing::pending_multipart_uploads(&endpoint, &bucket)
                .await
                .unwrap_or_else(|e| panic!("cannot list multipart uploads: {e}"))
        } else {
            return;
        };
        if leftovers.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("parts of an aborted multipart upload left behind: {leftovers:?}");
}

fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Files above the multipart threshold go up in parts, smaller ones in one PUT; both read
/// back whole. The same through `buf_writer` (the Parquet writer's path).
pub async fn put_file_and_buf_writer_above_threshold(store: &Store) {
    let threshold = store.multipart_threshold();
    let dir = tempfile::tempdir().unwrap();
    for (name, size) in [("small.bin", 1000), ("large.bin", threshold * 2 + 99)] {
        let data = pattern(size);
        let local = dir.path().join(name);
        std::fs::write(&local, &data).unwrap();
        let key = format!("files/{name}");
        store.put_file(&key, &local).await.unwrap();
        assert_eq!(store.head(&key).await.unwrap().size, size as u64, "{key}");
        assert!(store.get(&key).await.unwrap() == data, "{key} differs");
    }
    let err = store
        .put_file("files/missing.bin", &dir.path().join("missing.bin"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LocalIo { .. }), "{err}");
    assert!(err.to_string().contains("missing.bin"), "{err}");

    let data = pattern(threshold + 4321);
    let mut writer = store.buf_writer("files/buffered.bin");
    for chunk in data.chunks(1 << 20) {
        writer.write_all(chunk).await.unwrap();
    }
    writer.shutdown().await.unwrap();
    assert!(store.get("files/buffered.bin").await.unwrap() == data);
}

/// A child store sees its parent's objects under its prefix, with keys relative to itself.
pub async fn child_stores_share_objects(store: &Store) {
    store
        .put("tables/t1/a.json", Bytes::from_static(b"a"))
        .await
        .unwrap();
    let child = store.child("tables/t1");
    assert_eq!(child.get("a.json").await.unwrap(), "a");
    child.put("b.json", Bytes::from_static(b"b")).await.unwrap();
    assert_eq!(store.get("tables/t1/b.json").await.unwrap(), "b");
    assert_eq!(
        keys_of(&child.list("").await.unwrap()),
        ["a.json", "b.json"]
    );
    assert_eq!(
        child.url_of("b.json"),
        store.url_of("tables/t1/b.json"),
        "child URLs extend the parent's"
    );
}

/// The conditional-write probe passes and leaves no probe object behind.
pub async fn conditional_write_probe_passes(store: &Store) {
    crate::probe_conditional_writes(store)
        .await
        .expect("this store honours If-None-Match");
    store.ensure_conditional_writes().await.unwrap();
    let leftovers: BTreeSet<String> = store
        .list(PROBE_PREFIX)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(leftovers.is_empty(), "probe objects left: {leftovers:?}");
}
