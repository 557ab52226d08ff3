//! The manifest refuses to commit, create a table or take a lease on a store that ignores
//! `If-None-Match` (a stand-in S3 server that behaves like Garage 2.5), and writes nothing to
//! `_delta_log/` or `_weir/leases/` there. In-process and through the writer binary.

mod common;

use common::{committed_rows, write_file};
use weir_manifest::{Error, Table};
use weir_store::Store;
use weir_store::testing::{LyingS3, TestStore};

const REFUSAL: &str =
    "this store does not honour conditional writes (If-None-Match); commits would not be atomic";

/// A table created on a store that honours conditional writes, copied onto `lying` with plain
/// PUTs (the manifest itself would refuse to create it there).
async fn copy_of_a_table(lying: &Store) {
    let origin = TestStore::memory("probe-origin");
    common::new_table(&origin.store).await;
    for (key, _) in origin.store.list("").await.unwrap() {
        let bytes = origin.store.get(&key).await.unwrap();
        lying.put(&key, bytes).await.unwrap();
    }
}

fn assert_refused(err: &Error, url: &str) {
    assert!(
        matches!(err, Error::ConditionalWritesNotHonoured { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(REFUSAL), "{message}");
    assert!(message.contains(url), "{message}");
}

/// The keys below `bucket/prefix` the server was ever asked to PUT.
fn puts_below(server: &LyingS3, prefix: &str) -> Vec<String> {
    server
        .put_keys()
        .into_iter()
        .filter(|k| k.starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn no_commit_table_or_lease_on_a_store_that_ignores_if_none_match() {
    let server = LyingS3::start().await;
    let lying = server.store("s3://lying/tables/t");
    copy_of_a_table(&lying).await;
    let seeded = puts_below(&server, "lying/tables/t/_delta_log/");
    assert_eq!(
        seeded,
        ["lying/tables/t/_delta_log/00000000000000000000.json"]
    );

    // Reading works; data files are plain PUTs; the commit is refused before any log write.
    let table = Table::open(lying.clone()).await.unwrap();
    let file = write_file(&lying, "d1", "f.parquet", &[1, 2]).await;
    let err = table.commit().add_files([file]).await.unwrap_err();
    assert_refused(&err, "s3://lying/tables/t");
    assert_eq!(puts_below(&server, "lying/tables/t/_delta_log/"), seeded);
    let log: Vec<String> = lying
        .list("_delta_log")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(log, ["_delta_log/00000000000000000000.json"]);
    assert!(committed_rows(&table).await.is_empty());

    // Leases rely on create-only PUTs too.
    let err = table.lease("dt=d1").holder("job-1").await.unwrap_err();
    assert_refused(&err, "s3://lying/tables/t");
    assert!(puts_below(&server, "lying/tables/t/_weir/leases/").is_empty());

    // Creating a table is a commit (log version 0).
    let fresh = server.store("s3://lying/tables/new");
    let err = Table::create(fresh)
        .schema(common::schema())
        .await
        .unwrap_err();
    assert_refused(&err, "s3://lying/tables/new");
    assert!(puts_below(&server, "lying/tables/new/").is_empty());

    // The probe ran once for this server and bucket (two create-only PUTs of one probe key),
    // and cleaned up after itself.
    let probes = puts_below(&server, "lying/tables/t/_weir/probe/");
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(probes[0], probes[1]);
    assert!(server.keys().iter().all(|k| !k.contains("/_weir/probe/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_process_refuses_a_store_that_ignores_if_none_match() {
    let server = LyingS3::start().await;
    let lying = server.store("s3://lying/tables/w");
    copy_of_a_table(&lying).await;

    // The endpoint and credentials reach the writer through its environment.
    let mut writer = std::process::Command::new(common::WRITER);
    writer
        .envs(server.process_env())
        .args(["--table", lying.url().as_str()])
        .args(["--job", "load", "--partition", "dt=d1"]);
    let out = tokio::task::spawn_blocking(move || writer.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains(REFUSAL), "{stderr}");
    assert!(stderr.contains("s3://lying/tables/w"), "{stderr}");
    assert_eq!(
        puts_below(&server, "lying/tables/w/_delta_log/"),
        ["lying/tables/w/_delta_log/00000000000000000000.json"]
    );
    assert!(puts_below(&server, "lying/tables/w/_weir/leases/").is_empty());
    assert!(puts_below(&server, "lying/tables/w/dt=d1/").is_empty());
}
